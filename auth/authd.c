/*
 * auth: the authentication service (DESIGN §2, §7; doc/internals.md
 * "Authentication" and "auth <-> posternd").
 *
 * Runs as root in root mode (PAM and the shadow file need it) and never
 * reads bytes from the network: its clients are smtpd and the login
 * processes on private/auth (also bound as $data_directory/login/auth
 * for the chrooted login processes) and posternd on private/auth-master.
 * This file starts the service: configuration, the sockets and their
 * owners, signals.  auth_conn.c serves the connections.
 *
 * Reload (SIGHUP) waits for the password checks running in worker
 * threads to finish (authd_cfg_lock), so a check never sees the
 * configuration change under it; the sockets stay as they are.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"
#include "fdio.h"
#include "ioloop.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

#include "authd.h"
#include "passdb.h"
#include "sasl.h"

struct authd_settings authd_set;
pthread_rwlock_t authd_cfg_lock;

struct authd_listener {
	char		*path;
	int		 fd;
	struct io	*io;
	bool		 master;
};

static struct authd_listener listeners[3];
static size_t listener_count;
static bool root_mode;

/* ---- settings ---- */

static void
authd_settings_clear(void)
{
	free(authd_set.hostname);
	free(authd_set.mail_location);
	free(authd_set.username_format);
	strv_free(&authd_set.mechs);
	memset(&authd_set, 0, sizeof(authd_set));
}

/*
 * Copy the settings the loop uses, and work out the mechanisms to offer:
 * those of auth_mechanisms this service implements, the ones that need
 * a stored secret (CRAM-MD5, SCRAM-SHA-256) only when the passdb keeps
 * secrets (passwd-file).  Called before the workers start or with
 * authd_cfg_lock held for writing.
 */
static void
authd_settings_load(void)
{
	char **list, **p, *name, *c;

	authd_settings_clear();
	authd_set.hostname = xstrdup(cfg_get("myhostname"));
	authd_set.mail_location = xstrdup(cfg_get("mail_location"));
	authd_set.username_format = xstrdup(cfg_get("auth_username_format"));
	authd_set.disable_plaintext = cfg_get_bool("disable_plaintext_auth");
	authd_set.failure_delay_ms =
	    (uint64_t)cfg_get_time("auth_failure_delay") * 1000;
	authd_set.mechs = xcalloc(1, sizeof(*authd_set.mechs));
	list = cfg_get_list("auth_mechanisms");
	for (p = list; *p != NULL; p++) {
		name = xstrdup(*p);
		for (c = name; *c != '\0'; c++)
			if (*c >= 'a' && *c <= 'z')
				*c -= 'a' - 'A';
		if (!sasl_mech_known(name))
			log_warning("auth_mechanisms: %s is not supported: "
			    "not offered", name);
		else if (sasl_mech_needs_secret(name) &&
		    !passdb_has_secrets())
			log_warning("auth_mechanisms: %s needs stored "
			    "secrets (passdb = passwd-file:...): not offered",
			    name);
		else if (!strv_contains_case(authd_set.mechs, name))
			strv_push(&authd_set.mechs, name);
		free(name);
	}
	cfg_list_free(&list);
	/*
	 * cfg_get() fills a cache on first use: fill it now for what the
	 * worker threads read (passdb.c, userdb.c), so that they only read.
	 */
	(void)cfg_get("passdb");
	(void)cfg_get("userdb");
	(void)cfg_get("data_directory");
}

bool
authd_mech_offered(const char *name)
{
	return authd_set.mechs != NULL &&
	    strv_contains_case(authd_set.mechs, name);
}

bool
authd_mech_plaintext(const char *name)
{
	return strcasecmp(name, "PLAIN") == 0 ||
	    strcasecmp(name, "LOGIN") == 0;
}

/* ---- sockets ---- */

static void
authd_accept_cb(int fd, int events, void *ctx)
{
	struct authd_listener *l = ctx;

	(void)events;
	auth_conn_accept(fd, l->master);
}

/* Bind path (mode 0600); in root mode give it to owner (NULL: root). */
static void
authd_bind(const char *path, bool master, const struct passwd *owner)
{
	struct authd_listener *l = &listeners[listener_count++];

	l->fd = fdio_unix_bind(path, SOCK_STREAM, 0600, 128);
	if (l->fd < 0)
		log_fatal("cannot listen on %s: %m", path);
	if (owner != NULL && chown(path, owner->pw_uid, owner->pw_gid) < 0)
		log_fatal("chown %s: %m", path);
	l->path = xstrdup(path);
	l->master = master;
	l->io = io_add(l->fd, IOLOOP_READ, authd_accept_cb, l);
}

/*
 * $data_directory/login: the root of the chrooted login processes.  It
 * holds only our socket, so it belongs to root and nobody else may put
 * anything into it.
 */
static void
authd_login_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %m", dir);
	if (lstat(dir, &st) < 0)
		log_fatal("lstat %s: %m", dir);
	if (!S_ISDIR(st.st_mode))
		log_fatal("%s is not a directory", dir);
	if ((st.st_uid != 0 || st.st_gid != 0) && chown(dir, 0, 0) < 0)
		log_fatal("chown %s: %m", dir);
	if ((st.st_mode & 07777) != 0755 && chmod(dir, 0755) < 0)
		log_fatal("chmod %s: %m", dir);
}

static void
authd_listen(void)
{
	const char *qdir = cfg_get("queue_directory");
	struct passwd *pw = NULL, run;
	char *path;

	if (root_mode) {
		/* Only run_user's processes may ask; root may anyway. */
		if ((pw = getpwnam(cfg_get("run_user"))) == NULL)
			log_fatal("run_user %s does not exist",
			    cfg_get("run_user"));
		run = *pw;
		pw = &run;
	}
	path = xasprintf("%s/private/auth", qdir);
	authd_bind(path, false, pw);
	free(path);
	path = xasprintf("%s/private/auth-master", qdir);
	authd_bind(path, true, NULL);
	free(path);
	if (root_mode) {
		char *dir = xasprintf("%s/login", cfg_get("data_directory"));

		authd_login_dir(dir);
		path = xasprintf("%s/auth", dir);
		authd_bind(path, false, pw);
		free(path);
		free(dir);
	}
}

/* ---- signals ---- */

static void
authd_sigterm(int signo, void *ctx)
{
	(void)ctx;
	log_info("stopping on signal %d", signo);
	ioloop_stop();
}

static void
authd_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	pthread_rwlock_wrlock(&authd_cfg_lock);
	if (cfg_load(cfg_path()) != 0)
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
	else {
		authd_settings_load();
		log_info("configuration reloaded");
	}
	pthread_rwlock_unlock(&authd_cfg_lock);
}

static void
authd_lock_init(void)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	/* A reload must not starve behind a stream of checks. */
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (pthread_rwlock_init(&authd_cfg_lock, &attr) != 0)
		log_fatal("pthread_rwlock_init failed");
	pthread_rwlockattr_destroy(&attr);
}

int
main(int argc, char **argv)
{
	const char *config = CFG_DEFAULT_PATH;
	char *started;
	size_t i;
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		default:
			fprintf(stderr, "usage: auth [-c CONFIG]\n");
			return 2;
		}
	}
	log_init("auth", false);
	if (cfg_load(config) != 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "cannot load the configuration");
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	root_mode = geteuid() == 0;

	ioloop_init();
	authd_lock_init();
	authd_settings_load();
	authd_listen();
	/* Before the worker threads: they inherit the blocked signals. */
	ioloop_signal(SIGTERM, authd_sigterm, NULL);
	ioloop_signal(SIGINT, authd_sigterm, NULL);
	ioloop_signal(SIGHUP, authd_sighup, NULL);
	/* Logged once every socket is in place (tests wait for it). */
	started = xasprintf("started (%s mode, passdb %s)",
	    root_mode ? "root" : "unprivileged", cfg_get("passdb"));
	auth_conn_init((int)cfg_get_int("auth_worker_count"));
	log_info("%s", started);
	free(started);
	ioloop_run();

	auth_conn_deinit();
	for (i = 0; i < listener_count; i++) {
		io_remove(&listeners[i].io);
		(void)close(listeners[i].fd);
		free(listeners[i].path);
	}
	authd_settings_clear();
	log_info("stopped");
	return 0;
}
