/*
 * mailproc: the side of the pop3 and imap mail processes that receives
 * logged-in sessions from posternd (see mailproc.h and doc/internals.md,
 * "Handing a logged-in session to the mail process").
 *
 * posternd starts a mail process as the user, with POSTERN_MASTER_FD a
 * SOCK_SEQPACKET socket on which every packet is one SESSION message with
 * the client's descriptor attached.  posternd is trusted here (it runs as
 * root and checked everything), so a malformed packet is our bug or
 * posternd's and fatal, as for every internal protocol.
 *
 * The process leaves on its own after mail_process_max_idle seconds
 * without a session.  It says BYE first and goes on reading: posternd
 * closes its end when it reads BYE, and a SESSION it sent before that is
 * still served; the process exits when the end of the stream is reached
 * and no session is left.  The protocols themselves are not here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "cfg.h"
#include "fdpass.h"
#include "ioloop.h"
#include "log.h"
#include "mailproc.h"
#include "str.h"
#include "xmalloc.h"

static const char *mailproc_name;
static const char *mailproc_config;
static mailproc_session_cb *mailproc_cb;
static int mailproc_fd = -1;
static struct io *mailproc_io;
static unsigned int mailproc_nsessions;
static struct timer *mailproc_idle_timer;
static bool mailproc_bye_sent;
static bool mailproc_master_gone;

static void
mailproc_idle_expired(void *ctx)
{
	(void)ctx;
	mailproc_idle_timer = NULL;
	if (mailproc_nsessions > 0 || mailproc_master_gone)
		return;
	/*
	 * Tell posternd first and wait for the end of the stream: a
	 * session it sends meanwhile must not be lost with this process.
	 */
	if (send(mailproc_fd, "BYE", 3, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		log_warning("cannot say BYE to posternd: %m: exiting");
		ioloop_stop();
		return;
	}
	mailproc_bye_sent = true;
	log_debug("idle for %lld s: leaving",
	    cfg_get_time("mail_process_max_idle"));
}

static void
mailproc_arm_idle(void)
{
	long long secs = cfg_get_time("mail_process_max_idle");

	timer_remove(&mailproc_idle_timer);
	if (mailproc_bye_sent || mailproc_master_gone)
		return;
	if (secs <= 0)
		secs = MAILPROC_IDLE_EXIT;
	mailproc_idle_timer = timer_add((uint64_t)secs * 1000,
	    mailproc_idle_expired, NULL);
}

static void __attribute__((noreturn))
mailproc_bad(const char *why)
{
	log_fatal("malformed SESSION message from posternd: %s", why);
}

/* A decoded xtext field, or fatal. */
static char *
mailproc_xtext(const char *key, const char *value)
{
	char *s = xtext_decode(value);

	if (s == NULL) {
		char why[128];

		snprintf(why, sizeof(why), "bad %s", key);
		mailproc_bad(why);
	}
	return s;
}

/*
 * SESSION <proto> user=<x> home=<x> mail=<x> rip=<x> rport=<n> lip=<x>
 *     lport=<n> [tls=<x>] [pre=<base64>] [tag=<x>]
 */
static void
mailproc_session(char *text, int fd)
{
	struct mailproc_session s;
	char **f = strv_split(text, " ");
	char *user = NULL, *home = NULL, *mail = NULL, *rip = NULL;
	char *lip = NULL, *tls = NULL, *tag = NULL;
	struct buf pre;
	long long port;
	bool have_rport = false, have_lport = false;
	size_t i;

	memset(&s, 0, sizeof(s));
	buf_init(&pre, MAILPROC_MAX_MSG);
	if (strv_len(f) < 2 || strcmp(f[0], "SESSION") != 0)
		mailproc_bad("not a SESSION");
	if (strcmp(f[1], mailproc_name) != 0)
		mailproc_bad("wrong protocol");
	for (i = 2; f[i] != NULL; i++) {
		char *eq = strchr(f[i], '='), **dst = NULL;
		const char *v;

		if (eq == NULL)
			mailproc_bad("field without a value");
		*eq = '\0';
		v = eq + 1;
		if (strcmp(f[i], "user") == 0)
			dst = &user;
		else if (strcmp(f[i], "home") == 0)
			dst = &home;
		else if (strcmp(f[i], "mail") == 0)
			dst = &mail;
		else if (strcmp(f[i], "rip") == 0)
			dst = &rip;
		else if (strcmp(f[i], "lip") == 0)
			dst = &lip;
		else if (strcmp(f[i], "tls") == 0)
			dst = &tls;
		else if (strcmp(f[i], "tag") == 0)
			dst = &tag;
		else if (strcmp(f[i], "rport") == 0 ||
		    strcmp(f[i], "lport") == 0) {
			if (str_to_ll(v, 0, 65535, &port) < 0)
				mailproc_bad("bad port");
			if (f[i][0] == 'r') {
				s.rport = (int)port;
				have_rport = true;
			} else {
				s.lport = (int)port;
				have_lport = true;
			}
		} else if (strcmp(f[i], "pre") == 0) {
			if (pre.len > 0 ||
			    base64_decode(&pre, v, strlen(v)) < 0)
				mailproc_bad("bad pre");
		}
		/* Unknown fields: a newer posternd; ignored. */
		if (dst != NULL) {
			if (*dst != NULL)
				mailproc_bad("repeated field");
			*dst = mailproc_xtext(f[i], v);
		}
	}
	if (user == NULL || home == NULL || mail == NULL || rip == NULL ||
	    lip == NULL || !have_rport || !have_lport)
		mailproc_bad("missing field");
	s.fd = fd;
	s.user = user;
	s.home = home;
	s.mail = mail;
	s.rip = rip;
	s.lip = lip;
	s.tls = tls;
	s.tag = tag;
	s.pre = (const unsigned char *)(pre.len > 0 ? pre.data : "");
	s.prelen = pre.len;
	mailproc_nsessions++;
	timer_remove(&mailproc_idle_timer);
	mailproc_cb(&s);
	strv_free(&f);
	free(user);
	free(home);
	free(mail);
	free(rip);
	free(lip);
	free(tls);
	free(tag);
	buf_free(&pre);
}

static void
mailproc_master_io(int fd, int events, void *ctx)
{
	char buf[MAILPROC_MAX_MSG + 1];
	int i;

	(void)events;
	(void)ctx;
	/* A few at a time: the sessions already here get their turn. */
	for (i = 0; i < 16; i++) {
		int cfd;
		size_t nfds;
		ssize_t n;

		n = fdpass_recv(fd, buf, MAILPROC_MAX_MSG, &cfd, 1, &nfds);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EMSGSIZE)
			mailproc_bad("truncated, or more than one descriptor");
		if (n <= 0) {
			if (n < 0)
				log_warning("posternd socket: %m");
			io_remove(&mailproc_io);
			(void)close(mailproc_fd);
			mailproc_fd = -1;
			mailproc_master_gone = true;
			timer_remove(&mailproc_idle_timer);
			if (mailproc_nsessions == 0)
				ioloop_stop();
			return;
		}
		if (nfds != 1)
			mailproc_bad("not exactly one descriptor");
		buf[n] = '\0';
		if (fcntl(cfd, F_SETFL, O_NONBLOCK) < 0)
			log_fatal("fcntl: %m");
		mailproc_session(buf, cfd);
		if (mailproc_fd < 0)
			return;
	}
}

void
mailproc_session_ended(void)
{
	if (mailproc_nsessions == 0)
		log_panic("mailproc_session_ended without a session");
	if (--mailproc_nsessions > 0)
		return;
	if (mailproc_master_gone)
		ioloop_stop();
	else
		mailproc_arm_idle();
}

unsigned int
mailproc_sessions(void)
{
	return mailproc_nsessions;
}

static void
mailproc_sigterm(int signo, void *ctx)
{
	(void)ctx;
	log_info("terminating on signal %d with %u sessions", signo,
	    mailproc_nsessions);
	ioloop_stop();
}

static void
mailproc_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	if (cfg_load(mailproc_config) > 0) {
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
		return;
	}
	log_info("reload: configuration %s", mailproc_config);
}

static void __attribute__((noreturn))
mailproc_usage(void)
{
	fprintf(stderr, "usage: %s [-c config]\n", mailproc_name);
	exit(2);
}

int
mailproc_main(const char *name, int argc, char **argv,
    mailproc_session_cb *new_session)
{
	const char *env;
	long long fd;
	struct stat st;
	int ch;

	mailproc_name = name;
	mailproc_cb = new_session;
	mailproc_config = getenv("POSTERN_CONFIG");
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			mailproc_config = optarg;
			break;
		default:
			mailproc_usage();
		}
	}
	if (optind != argc)
		mailproc_usage();
	log_init(name, false);
	if (cfg_load(mailproc_config) > 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "configuration error");
	tzset();
	(void)signal(SIGPIPE, SIG_IGN);
	ioloop_init();

	env = getenv("POSTERN_MASTER_FD");
	if (env == NULL || str_to_ll(env, 3, 65535, &fd) < 0 ||
	    fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("POSTERN_MASTER_FD unset or not a socket: %s is "
		    "started by posternd", name);
	mailproc_fd = (int)fd;
	if (fcntl(mailproc_fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(mailproc_fd, F_SETFL, O_NONBLOCK) < 0)
		log_fatal("fcntl: %m");
	unsetenv("POSTERN_MASTER_FD");
	mailproc_io = io_add(mailproc_fd, IOLOOP_READ, mailproc_master_io,
	    NULL);

	ioloop_signal(SIGTERM, mailproc_sigterm, NULL);
	ioloop_signal(SIGINT, mailproc_sigterm, NULL);
	ioloop_signal(SIGHUP, mailproc_sighup, NULL);
	mailproc_arm_idle();
	ioloop_run();
	return 0;
}
