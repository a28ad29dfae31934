/*
 * posternd: the master process (DESIGN §2, doc/internals.md).
 *
 *   posternd [-c FILE] [-f|--foreground] [-d]
 *
 * Reads the configuration (refusing to start on any error, printed as
 * "FILE:LINE: message"), binds every configured listener, takes the pid
 * file lock, daemonizes (unless in the foreground) only once all that
 * worked so that every start-up error reaches the terminal, then starts
 * and supervises the services (master_service.c).  SIGHUP re-reads the
 * configuration, re-binds only the listeners that changed and passes the
 * signal on; SIGTERM/SIGINT stop the services gracefully and exit.
 *
 * Started by root, posternd keeps root for itself (bind, spawn) and the
 * local delivery agent, and runs the other services as run_user.  Started
 * by anybody else, everything runs as that user (unprivileged mode).
 *
 * posternd never reads from the network itself.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "ioloop.h"
#include "log.h"
#include "master.h"
#include "queue_file.h"
#include "str.h"
#include "tls.h"
#include "xmalloc.h"

struct master_state master;

/* The *_listen parameters, the listener service names they stand for,
 * and whether this version has a service behind them (the login
 * services also need their executable: master_services_listener_ok). */
struct master_listen_param {
	const char	*param;
	const char	*service;
	bool		 available;
	bool		 skipped;	/* configured but not available */
	bool		 warned;	/* "not available" logged once */
	const char	*why;		/* why skipped (static storage) */
};

static struct master_listen_param master_listen_params[] = {
	{ "smtp_listen",	"smtp",		true,	false,	false, NULL },
	{ "submission_listen",	"submission",	true,	false,	false, NULL },
	{ "smtps_listen",	"smtps",	true,	false,	false, NULL },
	{ "pop3_listen",	"pop3",		true,	false,	false, NULL },
	{ "pop3s_listen",	"pop3s",	true,	false,	false, NULL },
	{ "imap_listen",	"imap",		true,	false,	false, NULL },
	{ "imaps_listen",	"imaps",	true,	false,	false, NULL },
};

#define MASTER_LISTEN_PARAM_COUNT \
	(sizeof(master_listen_params) / sizeof(master_listen_params[0]))

static bool master_daemonized;
static int master_pid_fd = -1;
static char *master_pid_path;
static struct timer *master_stop_timer;

static void __attribute__((noreturn, format(printf, 1, 2)))
master_fatal(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!master_daemonized)
		fprintf(stderr, "posternd: fatal: %s\n", msg);
	if (!master.foreground)
		log_fatal("%s", msg);	/* syslog; exits */
	exit(1);
}

char *
master_data_path(const char *name)
{
	return xasprintf("%s/%s", master.data_dir, name);
}

/* Send each error of the last cfg_load() to the log, one line each. */
static void
master_log_cfg_errors(void)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return;
	cfg_print_errors(fp);
	(void)fclose(fp);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_error("%s", line);
	free(text);
}

/* mkdir -p with mode for the directories created. */
static int
master_mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	char *p;

	if (str_lcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* ---- users and directories ---- */

/* Root mode: look up run_user.  Returns 0 or -1 with a message. */
static int
master_lookup_run_user(const char **error_r)
{
	static char errbuf[512];
	const char *name = cfg_get("run_user");
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		snprintf(errbuf, sizeof(errbuf), "run_user %s does not exist: "
		    "create it with useradd --system %s or make install",
		    name, name);
		*error_r = errbuf;
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(errbuf, sizeof(errbuf), "run_user %s has uid 0: "
		    "services must not run as root", name);
		*error_r = errbuf;
		return -1;
	}
	free(master.run_user);
	master.run_user = xstrdup(name);
	master.run_uid = pw->pw_uid;
	master.run_gid = pw->pw_gid;
	return 0;
}

/*
 * Root mode: $data_directory/login, the directory the login processes
 * chroot to.  It holds nothing but the auth socket the auth service binds
 * there, and must belong to root and be writable by root only: a login
 * process, were it taken over, must not be able to plant anything in it.
 */
static void
master_make_login_dir(void)
{
	char *dir = master_data_path("login");
	struct stat st;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		master_fatal("cannot create %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) < 0)
		master_fatal("%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		master_fatal("%s is not a directory", dir);
	if ((st.st_uid != 0 || st.st_gid != 0) && chown(dir, 0, 0) < 0)
		master_fatal("chown %s: %s", dir, strerror(errno));
	if ((st.st_mode & 07777) != 0755 && chmod(dir, 0755) < 0)
		master_fatal("chmod %s: %s", dir, strerror(errno));
	free(dir);
}

static void
master_make_dirs(void)
{
	const char *qdir = cfg_get("queue_directory");
	const char *error;

	if (master_mkdirs(master.data_dir, 0755) < 0)
		master_fatal("cannot create data_directory %s: %s",
		    master.data_dir, strerror(errno));
	if (master_mkdirs(qdir, 0755) < 0)
		master_fatal("cannot create queue_directory %s: %s", qdir,
		    strerror(errno));
	if (queue_dirs_create(qdir, master.root_mode ? master.run_uid :
	    (uid_t)-1, master.root_mode ? master.run_gid : (gid_t)-1,
	    &error) < 0)
		master_fatal("queue_directory %s: %s", qdir, error);
	if (master.root_mode)
		master_make_login_dir();
}

/*
 * TLS is wanted (ssl != no, smtpd_tls_security_level != none) but no
 * certificate is configured: make a self-signed one for $myhostname in
 * $data_directory/ssl at the first start (DESIGN §8).  smtpd finds it
 * there by the same rule.  In root mode the key goes to run_user, whom
 * smtpd runs as.  A failure only costs TLS, so it is a warning.
 */
static void
master_make_cert(void)
{
	const char *level = cfg_get("smtpd_tls_security_level");
	const char *host = cfg_get("myhostname");
	const char *error = NULL;
	char *dir, *cert, *key;

	if (strcmp(cfg_get("ssl"), "no") == 0 && *level == '\0')
		return;
	if (strcmp(level, "none") == 0 ||
	    *cfg_get("smtpd_tls_cert_file") != '\0' ||
	    *cfg_get("ssl_cert") != '\0')
		return;
	dir = xasprintf("%s/ssl", master.data_dir);
	cert = xasprintf("%s/postern.crt", dir);
	key = xasprintf("%s/postern.key", dir);
	if (access(cert, F_OK) == 0 && access(key, F_OK) == 0)
		;	/* made at an earlier start */
	else if (master_mkdirs(dir, 0755) < 0)
		log_warning("cannot create %s: %s; no TLS", dir,
		    strerror(errno));
	else if (tls_make_self_signed(cert, key, host, &error) < 0)
		log_warning("cannot create a self-signed certificate for %s "
		    "in %s: %s; no TLS", host, dir,
		    error != NULL ? error : "?");
	else
		log_info("created a self-signed certificate for %s in %s",
		    host, cert);
	if (master.root_mode && access(key, F_OK) == 0 &&
	    (chown(key, master.run_uid, master.run_gid) < 0 ||
	    chmod(key, 0600) < 0))
		log_warning("%s: cannot give it to %s: %s", key,
		    master.run_user, strerror(errno));
	free(dir);
	free(cert);
	free(key);
}

/*
 * A certificate or key the admin configured (smtpd_tls_cert_file/key_file,
 * ssl_cert/ssl_key) that cannot be loaded, or an unusable
 * ssl_min_protocol / ssl_cipher_list, fails the start with one line
 * naming the file or the setting, instead of services running without
 * TLS.  The policy is also tried on the self-signed pair.
 */
static void
master_check_tls(void)
{
	const char *level = cfg_get("smtpd_tls_security_level");
	bool ssl = strcmp(cfg_get("ssl"), "no") != 0;
	const char *cert[2], *key[2], *error = NULL;
	char *dcert = NULL, *dkey = NULL;
	struct tls_server_ctx *ctx;
	int i, n = 0;

	if (strcmp(level, "none") == 0 && !ssl)
		return;
	if (*level == '\0' && !ssl)
		return;
	/* The second pairs load with their first ones below. */
	if (tls_server_alt_check(&error) < 0)
		master_fatal("TLS: %s", error);
	cert[n] = cfg_get("smtpd_tls_cert_file");
	key[n] = cfg_get("smtpd_tls_key_file");
	if (*cert[n] != '\0')
		n++;
	cert[n] = cfg_get("ssl_cert");
	key[n] = cfg_get("ssl_key");
	if (*cert[n] != '\0')
		n++;
	if (n == 0) {
		dcert = master_data_path("ssl/postern.crt");
		dkey = master_data_path("ssl/postern.key");
		if (access(dcert, F_OK) == 0 && access(dkey, F_OK) == 0) {
			cert[n] = dcert;
			key[n++] = dkey;
		}
	}
	for (i = 0; i < n; i++) {
		/* Postfix: the key may be in the certificate file. */
		ctx = tls_server_ctx_new(cert[i], *key[i] != '\0' ? key[i] :
		    cert[i], &error);
		if (ctx == NULL || tls_server_ctx_set_policy(ctx,
		    cfg_get("ssl_min_protocol"), cfg_get("ssl_cipher_list"),
		    &error) < 0)
			master_fatal("TLS: %s", error != NULL ? error : "?");
		tls_server_ctx_free(&ctx);
	}
	free(dcert);
	free(dkey);
}

/*
 * Remove what a crash left in tmp/: queue files being written when their
 * writer died.  None of them was acknowledged (smtpd answers 250 only
 * after the rename into incoming/), and no writer runs yet: the services
 * start later, and a sendmail writing the queue itself at this moment
 * sees its rename fail and reports a temporary error.  Like the clean-up
 * Postfix's postsuper does at "postfix start".
 */
static void
master_clean_tmp(void)
{
	char *dir = xasprintf("%s/tmp", cfg_get("queue_directory"));
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL) {
		log_warning("opendir %s: %m", dir);
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
		else
			log_warning("unlink %s/%s: %m", dir, de->d_name);
	}
	(void)closedir(d);
	if (n > 0)
		log_info("removed %d unfinished queue file%s from %s", n,
		    n == 1 ? "" : "s", dir);
	free(dir);
}

/* ---- pid file ---- */

/* Take the lock on the pid file; fatal when another posternd holds it. */
static void
master_pid_lock(void)
{
	struct flock fl;

	master_pid_path = master_data_path("posternd.pid");
	master_pid_fd = open(master_pid_path, O_RDWR | O_CREAT | O_CLOEXEC,
	    0644);
	if (master_pid_fd < 0)
		master_fatal("open %s: %s", master_pid_path, strerror(errno));
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	/*
	 * An open file description lock: it belongs to the descriptor, not
	 * to the process, so it survives the fork of daemonizing.
	 */
	if (fcntl(master_pid_fd, F_OFD_SETLK, &fl) < 0) {
		char text[32];
		ssize_t n;
		long long pid = 0;

		if (errno != EAGAIN && errno != EACCES)
			master_fatal("lock %s: %s", master_pid_path,
			    strerror(errno));
		n = pread(master_pid_fd, text, sizeof(text) - 1, 0);
		if (n > 0) {
			text[n] = '\0';
			(void)str_to_ll(str_trim(text), 1, INT_MAX, &pid);
		}
		if (pid > 0)
			master_fatal("posternd is already running (pid %lld)",
			    pid);
		master_fatal("posternd is already running");
	}
}

static void
master_pid_write(void)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

	if (ftruncate(master_pid_fd, 0) < 0 ||
	    pwrite(master_pid_fd, text, (size_t)len, 0) != len)
		log_warning("write %s: %m", master_pid_path);
}

/* ---- listeners ---- */

static void
master_protocols(bool *v4_r, bool *v6_r, bool *all_r)
{
	char **list = cfg_get_list("inet_protocols");
	size_t i;

	*v4_r = *v6_r = *all_r = false;
	for (i = 0; list[i] != NULL; i++) {
		if (str_case_eq(list[i], "all"))
			*v4_r = *v6_r = *all_r = true;
		else if (str_case_eq(list[i], "ipv4"))
			*v4_r = true;
		else if (str_case_eq(list[i], "ipv6"))
			*v6_r = true;
	}
	cfg_list_free(&list);
}

static void
master_want_add(struct master_listener **v, size_t *n, const char *service,
    int family, const char *addr, int port, bool optional)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		struct master_listener *l = &(*v)[i];

		if (strcmp(l->service, service) == 0 && l->family == family &&
		    strcmp(l->addr, addr) == 0 && l->port == port)
			return;
	}
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].service = xstrdup(service);
	(*v)[*n].family = family;
	(*v)[*n].addr = xstrdup(addr);
	(*v)[*n].port = port;
	(*v)[*n].fd = -1;
	(*v)[*n].optional = optional;
	(*n)++;
}

/*
 * Add the addresses host stands for: a numeric IPv4 or IPv6 address (in
 * brackets or not), or a name resolved now.  Only families allowed by
 * inet_protocols are kept.
 */
static int
master_want_host(struct master_listener **v, size_t *n, const char *service,
    const char *host, int port, const char **error_r)
{
	static char errbuf[512];
	struct addrinfo hints, *res, *ai;
	char name[256];
	bool v4, v6, all;
	size_t len = strlen(host);
	int rc, added = 0;

	master_protocols(&v4, &v6, &all);
	if (host[0] == '[' && len >= 2 && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= sizeof(name)) {
		*error_r = "address too long";
		return -1;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
		snprintf(errbuf, sizeof(errbuf), "cannot resolve %s: %s", name,
		    gai_strerror(rc));
		*error_r = errbuf;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char text[INET6_ADDRSTRLEN];

		if ((ai->ai_family == AF_INET && !v4) ||
		    (ai->ai_family == AF_INET6 && !v6) ||
		    (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
			continue;
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text,
		    sizeof(text), NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		master_want_add(v, n, service, ai->ai_family, text, port,
		    false);
		added++;
	}
	freeaddrinfo(res);
	if (added == 0) {
		snprintf(errbuf, sizeof(errbuf), "%s has no address allowed by "
		    "inet_protocols", name);
		*error_r = errbuf;
		return -1;
	}
	return 0;
}

/* A bare port: every $inet_interfaces address. */
static int
master_want_port(struct master_listener **v, size_t *n, const char *service,
    int port, bool wildcard, const char **error_r)
{
	char **ifs;
	bool v4, v6, all;
	size_t i;
	int ret = 0;

	master_protocols(&v4, &v6, &all);
	ifs = wildcard ? NULL : cfg_get_list("inet_interfaces");
	if (ifs == NULL || ifs[0] == NULL ||
	    strv_contains_case(ifs, "all")) {
		if (v4)
			master_want_add(v, n, service, AF_INET, "0.0.0.0", port,
			    false);
		if (v6)
			master_want_add(v, n, service, AF_INET6, "::", port,
			    all);
	} else if (strv_contains_case(ifs, "loopback-only")) {
		if (v4)
			master_want_add(v, n, service, AF_INET, "127.0.0.1",
			    port, false);
		if (v6)
			master_want_add(v, n, service, AF_INET6, "::1", port,
			    all);
	} else {
		for (i = 0; ifs[i] != NULL && ret == 0; i++)
			ret = master_want_host(v, n, service, ifs[i], port,
			    error_r);
	}
	if (ifs != NULL)
		cfg_list_free(&ifs);
	return ret;
}

/* One element of a *_listen list: PORT, ADDR:PORT, [V6]:PORT, *:PORT. */
static int
master_want_elem(struct master_listener **v, size_t *n, const char *service,
    const char *elem, const char **error_r)
{
	static char errbuf[512];
	const char *colon;
	long long port;
	char *host;
	int ret;

	if (str_to_ll(elem, 1, 65535, &port) == 0)
		return master_want_port(v, n, service, (int)port, false,
		    error_r);
	colon = strrchr(elem, ':');
	if (colon == NULL || colon == elem ||
	    str_to_ll(colon + 1, 1, 65535, &port) < 0) {
		snprintf(errbuf, sizeof(errbuf), "bad listener \"%s\": "
		    "expected PORT, ADDR:PORT or [IPV6]:PORT", elem);
		*error_r = errbuf;
		return -1;
	}
	host = xstrndup(elem, (size_t)(colon - elem));
	if (strcmp(host, "*") == 0)
		ret = master_want_port(v, n, service, (int)port, true,
		    error_r);
	else
		ret = master_want_host(v, n, service, host, (int)port,
		    error_r);
	free(host);
	return ret;
}

/*
 * The listeners the configuration asks for, not yet bound.  A service
 * this version does not have is logged once and skipped.
 */
static int
master_listeners_wanted(struct master_listener **v_r, size_t *n_r,
    const char **error_r)
{
	static char errbuf[1024];
	struct master_listener *v = NULL;
	size_t n = 0, i, j;

	for (i = 0; i < MASTER_LISTEN_PARAM_COUNT; i++) {
		struct master_listen_param *p = &master_listen_params[i];
		char **elems = cfg_get_list(p->param);

		p->why = "not available in this version";
		if (elems[0] != NULL && (!p->available ||
		    !master_services_listener_ok(p->service, &p->why))) {
			/* Logged once the listeners are bound, so that a
			 * bind error is the only line of a failed start. */
			p->skipped = true;
		} else {
			for (j = 0; elems[j] != NULL; j++) {
				const char *why;

				if (master_want_elem(&v, &n, p->service,
				    elems[j], &why) < 0) {
					snprintf(errbuf, sizeof(errbuf),
					    "%s: %s", p->param, why);
					*error_r = errbuf;
					cfg_list_free(&elems);
					*v_r = v;
					*n_r = n;
					return -1;
				}
			}
		}
		cfg_list_free(&elems);
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* "not starting SERVICE: ..." once per service and posternd run. */
static void
master_log_skipped(void)
{
	size_t i;

	for (i = 0; i < MASTER_LISTEN_PARAM_COUNT; i++) {
		struct master_listen_param *p = &master_listen_params[i];

		if (p->skipped && !p->warned)
			log_info("not starting %s: %s", p->service, p->why);
		if (p->skipped)
			p->warned = true;
		p->skipped = false;
	}
}

static void
master_listener_name(const struct master_listener *l, char *dst,
    size_t size)
{
	if (l->family == AF_INET6)
		snprintf(dst, size, "[%s]:%d", l->addr, l->port);
	else
		snprintf(dst, size, "%s:%d", l->addr, l->port);
}

/*
 * Bind and listen.  Returns 0, 1 when an optional IPv6 listener cannot
 * exist on this host (skipped), or -1 with a one-line message (and the
 * errno in *err_r when err_r is not NULL).
 */
static int
master_listener_bind(struct master_listener *l, int *err_r,
    const char **error_r)
{
	static char errbuf[512];
	struct sockaddr_storage ss;
	socklen_t sslen;
	char name[INET6_ADDRSTRLEN + 16];
	int fd, on = 1, err;

	memset(&ss, 0, sizeof(ss));
	if (l->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		if (inet_pton(AF_INET6, l->addr, &sin6->sin6_addr) != 1)
			goto bad_addr;
		sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		if (inet_pton(AF_INET, l->addr, &sin->sin_addr) != 1)
			goto bad_addr;
		sslen = sizeof(*sin);
	}
	fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (l->family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 ||
	    listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
		err = errno;
		(void)close(fd);
		goto fail;
	}
	l->fd = fd;
	return 0;

fail:
	if (l->optional && (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) {
		master_listener_name(l, name, sizeof(name));
		log_warning("not listening on %s: %s (no IPv6 on this host?)",
		    name, strerror(err));
		return 1;
	}
	if (err_r != NULL)
		*err_r = err;
	master_listener_name(l, name, sizeof(name));
	snprintf(errbuf, sizeof(errbuf), "cannot listen on %s: %s%s", name,
	    strerror(err), err == EACCES && l->port < 1024 &&
	    geteuid() != 0 ? " (ports below 1024 need root)" : "");
	*error_r = errbuf;
	return -1;

bad_addr:
	if (err_r != NULL)
		*err_r = EINVAL;
	snprintf(errbuf, sizeof(errbuf), "bad listen address %s", l->addr);
	*error_r = errbuf;
	return -1;
}

static void
master_listener_free(struct master_listener *l)
{
	if (l->fd >= 0)
		(void)close(l->fd);
	l->fd = -1;
	free(l->service);
	free(l->addr);
	l->service = l->addr = NULL;
}

static void
master_listeners_free(struct master_listener **v, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		master_listener_free(&(*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
}

/* Drop skipped entries (fd -1, not pending) from a bound list. */
static void
master_listeners_compact(struct master_listener *v, size_t *n)
{
	size_t i, o = 0;

	for (i = 0; i < *n; i++) {
		if (v[i].fd < 0 && !v[i].pending) {
			master_listener_free(&v[i]);
			continue;
		}
		v[o++] = v[i];
	}
	*n = o;
}

/* Start-up: bind everything or die with one clear line. */
static void
master_listeners_open(void)
{
	struct master_listener *v;
	size_t n, i;
	const char *error;

	if (master_listeners_wanted(&v, &n, &error) < 0)
		master_fatal("%s", error);
	for (i = 0; i < n; i++) {
		if (master_listener_bind(&v[i], NULL, &error) < 0)
			master_fatal("%s", error);
	}
	master_listeners_compact(v, &n);
	master.listeners = v;
	master.listener_count = n;
	master_log_skipped();
}

/*
 * Reload: keep the sockets of listeners that did not change (so nothing
 * in their backlog is lost), close the ones no longer wanted, then bind
 * the new ones.  Returns whether the set changed.
 *
 * The service still running holds its own copies of the dropped sockets
 * until it exits, and on Linux a bound wildcard address blocks binding
 * a specific address on the same port (0.0.0.0:587 -> 127.0.0.1:587).
 * A new listener that fails with EADDRINUSE is therefore kept "pending"
 * and bound again just before the service is started with the new set
 * (master_listeners_bind_pending), when the old process has let go.
 * Any other failure is logged and the listener left out; the others
 * still work.
 */
static bool
master_listeners_reload(void)
{
	struct master_listener *v;
	size_t n, i, j;
	const char *error;
	bool changed = false;
	int err;

	if (master_listeners_wanted(&v, &n, &error) < 0) {
		log_error("%s: keeping the old listeners", error);
		master_listeners_free(&v, &n);
		return false;
	}
	for (j = 0; j < master.listener_count; j++)
		master.listeners[j].keep = false;
	for (i = 0; i < n; i++) {
		for (j = 0; j < master.listener_count; j++) {
			struct master_listener *o = &master.listeners[j];

			if (!o->keep && (o->fd >= 0 || o->pending) &&
			    strcmp(o->service, v[i].service) == 0 &&
			    o->family == v[i].family &&
			    strcmp(o->addr, v[i].addr) == 0 &&
			    o->port == v[i].port) {
				o->keep = true;
				v[i].fd = o->fd;
				v[i].pending = o->pending;
				o->fd = -1;
				break;
			}
		}
	}
	/* Let go of the dropped addresses before binding the new ones. */
	for (j = 0; j < master.listener_count; j++) {
		if (master.listeners[j].keep)
			continue;
		changed = true;
		master_listener_free(&master.listeners[j]);
	}
	for (i = 0; i < n; i++) {
		if (v[i].fd >= 0 || v[i].pending)
			continue;
		changed = true;
		if (master_listener_bind(&v[i], &err, &error) < 0) {
			if (err == EADDRINUSE)
				v[i].pending = true;
			else
				log_error("%s", error);
		}
	}
	master_listeners_free(&master.listeners, &master.listener_count);
	master_listeners_compact(v, &n);
	master.listeners = v;
	master.listener_count = n;
	master_log_skipped();
	return changed;
}

void
master_listeners_bind_pending(void)
{
	const char *error;
	size_t i;
	bool dropped = false;

	for (i = 0; i < master.listener_count; i++) {
		struct master_listener *l = &master.listeners[i];

		if (!l->pending)
			continue;
		l->pending = false;
		if (master_listener_bind(l, NULL, &error) < 0) {
			log_error("%s", error);
			dropped = true;
		}
	}
	if (dropped)
		master_listeners_compact(master.listeners,
		    &master.listener_count);
}

/* ---- daemon ---- */

/*
 * Fork into the background.  The parent waits on a pipe until the child
 * says it is up (pid file written, services started) and exits 0, or
 * exits 1 when the child dies first, so "posternd && echo up" is true.
 * Returns the write end the child uses to say so.
 */
static int
master_daemonize(void)
{
	int p[2], fd;
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		master_fatal("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		master_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		ssize_t n;

		(void)close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	(void)close(p[0]);
	if (setsid() < 0)
		log_warning("setsid: %m");
	if (chdir("/") < 0)
		log_warning("chdir(/): %m");
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		(void)dup2(fd, 0);
		(void)dup2(fd, 1);
		(void)dup2(fd, 2);
		if (fd > 2)
			(void)close(fd);
	}
	master_daemonized = true;
	return p[1];
}

static void
master_finish(void)
{
	master_status_remove();
	if (master_pid_path != NULL)
		(void)unlink(master_pid_path);
	if (master_pid_fd >= 0)
		(void)close(master_pid_fd);
	exit(0);
}

static void
master_stop_timeout(void *ctx)
{
	(void)ctx;
	master_stop_timer = NULL;
	master_services_kill();
}

static void
master_on_stop(int signo, void *ctx)
{
	(void)ctx;
	if (master.stopping) {
		/* A second ^C: do not wait any longer. */
		if (signo == SIGINT)
			master_services_kill();
		return;
	}
	log_info("terminating on signal %d", signo);
	master.stopping = true;
	/* No new connections queue up behind a stopping smtpd. */
	master_listeners_free(&master.listeners, &master.listener_count);
	if (master_services_stop() == 0)
		master_finish();
	master_stop_timer = timer_add((uint64_t)MASTER_STOP_TIMEOUT * 1000,
	    master_stop_timeout, NULL);
}

static void
master_on_child(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	master_services_reap();
	if (master.stopping && master_services_running() == 0)
		master_finish();
}

static void
master_on_reload(int signo, void *ctx)
{
	const char *error;
	bool changed;

	(void)signo;
	(void)ctx;
	if (master.stopping)
		return;
	if (cfg_load(master.config_path) != 0) {
		master_log_cfg_errors();
		log_error("reload failed: keeping the previous configuration");
		return;
	}
	if (master.root_mode && master_lookup_run_user(&error) < 0)
		log_error("%s: services keep running as the previous run_user",
		    error);
	changed = master_listeners_reload();
	master_tls_refresh();
	master_services_reload(changed);
	log_info("reload -- version %s, configuration %s", PACKAGE_VERSION,
	    master.config_path);
	master_status_write();
}

static void __attribute__((noreturn))
master_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: posternd [-c FILE] [-f|--foreground] [-d]\n"
	    "  -c FILE         configuration file (default %s,\n"
	    "                  or $POSTERN_CONFIG)\n"
	    "  -f, --foreground  stay in the foreground, log to stderr\n"
	    "  -d              debug logging\n", CFG_DEFAULT_PATH);
	exit(status);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *config = NULL, *error;
	char *abs;
	int c, ready_fd = -1;

	while ((c = getopt_long(argc, argv, "c:dfhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			master.debug = true;
			break;
		case 'f':
			master.foreground = true;
			break;
		case 'h':
			master_usage(0);
		case 'V':
			printf("posternd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			master_usage(1);
		}
	}
	if (optind != argc)
		master_usage(1);
	if (config == NULL && (config = getenv("POSTERN_CONFIG")) == NULL)
		config = CFG_DEFAULT_PATH;
	/* Services are started with this path after a chdir("/"). */
	abs = realpath(config, NULL);
	master.config_path = abs != NULL ? abs : xstrdup(config);

	log_init("master", master.foreground);
	if (master.debug)
		log_set_debug(true);
	if (cfg_load(master.config_path) != 0) {
		cfg_print_errors(stderr);
		if (!master.foreground)
			master_log_cfg_errors();
		exit(1);
	}
	master.root_mode = geteuid() == 0;
	if (master.root_mode && master_lookup_run_user(&error) < 0)
		master_fatal("%s", error);
	master.data_dir = xstrdup(cfg_get("data_directory"));
	umask(022);
	(void)signal(SIGPIPE, SIG_IGN);

	master_make_dirs();
	master_pid_lock();
	master_clean_tmp();
	master_services_init();
	if (master_services_check(&error) < 0)
		master_fatal("%s", error);
	ioloop_init();
	master_listeners_open();
	/* After the listeners: a bind error stays the only line of a
	 * failed start. */
	master_make_cert();
	master_check_tls();
	master_tls_refresh();

	if (!master.foreground)
		ready_fd = master_daemonize();
	master_pid_write();

	/* Registered before any child exists, so no exit goes unnoticed. */
	ioloop_signal(SIGCHLD, master_on_child, NULL);
	ioloop_signal(SIGHUP, master_on_reload, NULL);
	ioloop_signal(SIGTERM, master_on_stop, NULL);
	ioloop_signal(SIGINT, master_on_stop, NULL);

	log_info("daemon started -- version %s, configuration %s",
	    PACKAGE_VERSION, master.config_path);
	master_services_start();
	if (ready_fd >= 0) {
		if (write(ready_fd, "", 1) < 0)
			log_warning("cannot tell the parent we are up: %m");
		(void)close(ready_fd);
	}
	ioloop_run();
	return 0;
}
