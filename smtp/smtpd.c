/*
 * smtpd: the SMTP server process (DESIGN §2).  Started by posternd as
 * "smtpd -c CONFIG" with its listening sockets inherited and described by
 * POSTERN_LISTEN="FD:SERVICE:ADDR:PORT,..." (doc/internals.md).  It also
 * serves local submission on $queue_directory/public/pickup, where the
 * client is identified by its uid (SO_PEERCRED) and trusted to relay.
 *
 * One event loop serves every session; queue commits run in a thread pool
 * and local mail may be delivered at accept by local (smtpd_data.c).
 * SMTP AUTH asks the auth service over $smtpd_sasl_path (smtpd_auth.c).
 * SIGHUP re-reads the configuration for new sessions; SIGTERM closes the
 * listeners, says 421 to idle sessions, lets transactions in progress
 * (a commit, a delivery at accept) finish and exits when no session is
 * left (at most SMTPD_SHUTDOWN_WAIT seconds).
 *
 * This file holds the process plumbing only: sessions are in
 * smtpd_session.c, commands in smtpd_cmd.c.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth_client.h"
#include "cfg.h"
#include "ioloop.h"
#include "local_client.h"
#include "fdio.h"
#include "listener.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

static struct smtpd_settings *smtpd_settings;
static const char *smtpd_config_path;
static char *smtpd_pickup_path;
static bool smtpd_stopping;
static uint64_t smtpd_stop_deadline;

/* ---- settings ---- */

/*
 * TLS for the sessions of these settings (DESIGN §8).  The certificate:
 * smtpd_tls_cert_file/key_file, else Dovecot's ssl_cert/ssl_key, else
 * the self-signed pair posternd made in data_directory.  The level:
 * smtpd_tls_security_level when set, else none for ssl = no, else may.
 * ssl_min_protocol and ssl_cipher_list apply as to every server context.
 * posternd refuses to start when a configured pair cannot be loaded, so
 * a failure here (files changed since) only costs TLS.
 */
static void
smtpd_settings_tls(struct smtpd_settings *set)
{
	const char *level = cfg_get("smtpd_tls_security_level");
	const char *cert = cfg_get("smtpd_tls_cert_file");
	const char *key = cfg_get("smtpd_tls_key_file");
	const char *error = NULL, *tlsfd;
	char *dcert = NULL, *dkey = NULL;

	if (strcmp(level, "none") == 0)
		set->tls_level = SMTPD_TLS_NONE;
	else if (strcmp(level, "encrypt") == 0)
		set->tls_level = SMTPD_TLS_ENCRYPT;
	else if (strcmp(level, "may") == 0)
		set->tls_level = SMTPD_TLS_MAY;
	else
		set->tls_level = strcmp(cfg_get("ssl"), "no") == 0 ?
		    SMTPD_TLS_NONE : SMTPD_TLS_MAY;
	if (set->tls_level == SMTPD_TLS_NONE)
		return;
	if (*cert == '\0') {
		cert = cfg_get("ssl_cert");
		key = cfg_get("ssl_key");
	}
	if (*cert == '\0') {
		const char *dir = cfg_get("data_directory");

		dcert = xasprintf("%s/%s", dir, SMTPD_TLS_DEFAULT_CERT);
		dkey = xasprintf("%s/%s", dir, SMTPD_TLS_DEFAULT_KEY);
		cert = dcert;
		key = dkey;
	}
	if (*key == '\0')
		key = cert;	/* Postfix: the key may be in the cert file */
	/*
	 * posternd read the same pair as root and passes its bytes, so a
	 * key readable by root only works too (master/master_tls.c); it
	 * refreshes them before it signals a reload.
	 */
	if ((tlsfd = getenv("POSTERN_TLS_FD")) != NULL &&
	    strspn(tlsfd, "0123456789") == strlen(tlsfd) && *tlsfd != '\0') {
		free(dcert);
		dcert = xasprintf("/proc/self/fd/%s", tlsfd);
		cert = key = dcert;
	}
	set->tls_ctx = tls_server_ctx_new(cert, key, &error);
	if (set->tls_ctx != NULL &&
	    tls_server_ctx_set_policy(set->tls_ctx, cfg_get("ssl_min_protocol"),
	    cfg_get("ssl_cipher_list"), &error) < 0)
		tls_server_ctx_free(&set->tls_ctx);
	if (set->tls_ctx == NULL)
		log_warning("TLS unavailable: %s", error != NULL ? error :
		    "cannot load the certificate");
	free(dcert);
	free(dkey);
}

static struct smtpd_settings *
smtpd_settings_load(void)
{
	struct smtpd_settings *set = xcalloc(1, sizeof(*set));
	const char *error = NULL;
	long long v;

	set->refcount = 1;
	set->myhostname = xstrdup(cfg_get("myhostname"));
	set->banner = xstrdup(cfg_get("smtpd_banner"));
	set->mail_name = xstrdup(cfg_get("mail_name"));
	set->queue_dir = xstrdup(cfg_get("queue_directory"));
	v = cfg_get_size("message_size_limit");
	set->size_limit = v > 0 ? (uint64_t)v : 0;
	/* The queue file's M record holds at most 4 GiB; leave room for
	 * the headers we add. */
	if (set->size_limit == 0 || set->size_limit > 0xFFF00000ULL)
		set->size_limit = 0xFFF00000ULL;
	set->rcpt_limit = (unsigned)cfg_get_int("smtpd_recipient_limit");
	set->soft_error_limit =
	    (unsigned)cfg_get_int("smtpd_soft_error_limit");
	set->hard_error_limit =
	    (unsigned)cfg_get_int("smtpd_hard_error_limit");
	set->error_sleep_ms =
	    (uint64_t)cfg_get_time("smtpd_error_sleep_time") * 1000;
	set->timeout_ms = (uint64_t)cfg_get_time("smtpd_timeout") * 1000;
	if (set->timeout_ms == 0)
		set->timeout_ms = 1000;
	set->hopcount_limit = (unsigned)cfg_get_int("hopcount_limit");
	set->vrfy_disabled = cfg_get_bool("disable_vrfy_command");
	set->smtputf8 = cfg_get_bool("smtputf8_enable");
	set->helo_required = cfg_get_bool("smtpd_helo_required");
	set->local_at_accept = cfg_get_bool("local_delivery_at_accept");
	set->in_flow_delay_ms =
	    (uint64_t)cfg_get_time("in_flow_delay") * 1000;
	set->mynetworks = netaddr_mynetworks(&error);
	if (set->mynetworks == NULL) {
		log_warning("mynetworks: %s: relaying only for local "
		    "submission", error != NULL ? error : "unusable");
		set->mynetworks = xcalloc(1, sizeof(*set->mynetworks));
	}
	set->lrm = smtpd_check_lrm_new();
	smtpd_settings_tls(set);
	set->sasl_enable = cfg_get_bool("smtpd_sasl_auth_enable");
	set->sasl_broken = cfg_get_bool("broken_sasl_auth_clients");
	set->sasl_header = cfg_get_bool("smtpd_sasl_authenticated_header");
	set->tls_auth_only = cfg_get_bool("smtpd_tls_auth_only");
	set->plaintext_disabled = cfg_get_bool("disable_plaintext_auth");
	set->plaintext_loopback = cfg_get_bool("plaintext_auth_loopback");
	set->submission_auth = cfg_get_bool("submission_auth_required");
	set->delay_reject = cfg_get_bool("smtpd_delay_reject");
	smtpd_check_settings_load(set);
	return set;
}

struct smtpd_settings *
smtpd_settings_get(void)
{
	smtpd_settings->refcount++;
	return smtpd_settings;
}

void
smtpd_settings_unref(struct smtpd_settings **setp)
{
	struct smtpd_settings *set = *setp;

	if (set == NULL)
		return;
	*setp = NULL;
	if (--set->refcount > 0)
		return;
	free(set->myhostname);
	free(set->banner);
	free(set->mail_name);
	free(set->queue_dir);
	free(set->mynetworks);
	smtpd_check_lrm_free(&set->lrm);
	smtpd_check_settings_free(set);
	tls_server_ctx_free(&set->tls_ctx);
	free(set);
}

/* ---- listeners ---- */

static void
smtpd_accept(int fd, int kind, const struct sockaddr_storage *peer,
    socklen_t peerlen)
{
	(void)peer;
	(void)peerlen;
	smtpd_session_new(fd, (enum smtpd_service)kind);
}

static int
smtpd_listen_kind(const char *service)
{
	if (strcmp(service, "smtp") == 0)
		return SMTPD_SERVICE_SMTP;
	if (strcmp(service, "submission") == 0)
		return SMTPD_SERVICE_SUBMISSION;
	if (strcmp(service, "smtps") == 0)
		return SMTPD_SERVICE_SMTPS;
	return -1;
}

static void
smtpd_listen_pickup(void)
{
	int fd;

	smtpd_pickup_path = xasprintf("%s/public/pickup",
	    smtpd_settings->queue_dir);
	fd = fdio_unix_bind(smtpd_pickup_path, SOCK_STREAM, 0666, 128);
	if (fd < 0) {
		log_error("%s: %m; no local submission", smtpd_pickup_path);
		return;
	}
	listener_add(fd, SMTPD_SERVICE_PICKUP);
}

/* ---- signals ---- */

static void
smtpd_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	if (cfg_load(smtpd_config_path) > 0) {
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
		return;
	}
	smtpd_settings_unref(&smtpd_settings);
	smtpd_settings = smtpd_settings_load();
	log_info("reload: configuration %s", smtpd_config_path);
}

static void
smtpd_stop_check(void *ctx)
{
	(void)ctx;
	if (smtpd_session_count() == 0) {
		ioloop_stop();
		return;
	}
	if (ioloop_now_ms() >= smtpd_stop_deadline) {
		log_warning("stopping with %u sessions still open",
		    smtpd_session_count());
		ioloop_stop();
		return;
	}
	(void)timer_add(100, smtpd_stop_check, NULL);
}

static void
smtpd_sigterm(int signo, void *ctx)
{
	(void)ctx;
	if (smtpd_stopping)
		return;
	log_info("terminating on signal %d", signo);
	smtpd_stopping = true;
	smtpd_stop_deadline = ioloop_now_ms() + SMTPD_SHUTDOWN_WAIT * 1000;
	listener_close_all();
	smtpd_sessions_shutdown();
	/* Deliveries at accept under way finish first (in-flight work). */
	local_client_shutdown();
	smtpd_stop_check(NULL);
}

/* ---- main ---- */

static void __attribute__((noreturn))
smtpd_usage(void)
{
	fprintf(stderr, "usage: smtpd [-c config]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int ch;

	smtpd_config_path = getenv("POSTERN_CONFIG");
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			smtpd_config_path = optarg;
			break;
		default:
			smtpd_usage();
		}
	}
	if (optind != argc)
		smtpd_usage();
	log_init("smtpd", false);
	if (cfg_load(smtpd_config_path) > 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "configuration error");
	tzset();
	signal(SIGPIPE, SIG_IGN);
	ioloop_init();
	smtpd_settings = smtpd_settings_load();
	/* Connected at the first EHLO that offers AUTH; a reload does not
	 * move the socket (smtpd_sasl_path takes a restart). */
	auth_client_init(cfg_get("smtpd_sasl_path"));

	listener_add_env(smtpd_listen_kind);
	smtpd_listen_pickup();
	if (listener_count() == 0)
		log_fatal("no listeners (POSTERN_LISTEN unset, no pickup "
		    "socket)");
	listener_start(smtpd_accept);

	/* Signals first: the worker threads inherit the blocked mask, so
	 * signalfd sees every signal. */
	ioloop_signal(SIGHUP, smtpd_sighup, NULL);
	ioloop_signal(SIGTERM, smtpd_sigterm, NULL);
	ioloop_signal(SIGINT, smtpd_sigterm, NULL);
	smtpd_data_pool_init();

	ioloop_run();
	smtpd_sessions_exit();
	auth_client_deinit();
	smtpd_data_pool_stop();
	/* Closes the lookup tables (sessions still open keep their own). */
	smtpd_settings_unref(&smtpd_settings);
	return 0;
}
