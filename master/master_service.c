/*
 * master_service: the services posternd starts and keeps running
 * (DESIGN §2, doc/internals.md "posternd -> services").
 *
 * A service is started fresh with fork + exec of
 * "$daemon_directory/NAME -c CONFIG".  The child gets its listeners as
 * descriptors 3, 4, ... (POSTERN_LISTEN says which is which), drops to
 * run_user in root mode unless the service needs root (local), and
 * asks the kernel for SIGTERM should posternd die, so no service outlives
 * its master.  A service that exits without being asked to is logged the
 * way Postfix's master logs it and restarted after a backoff of 1 s,
 * doubling up to 60 s, back to 1 s once a run lasted 60 s.
 *
 * A login service runs as $imap_login_process_min_avail (or pop3_...)
 * processes, one per CPU by default, that accept on the same inherited
 * listeners (the kernel gives each connection to one of them).  Each is
 * an entry of its own in the service table, so restarts, reloads and
 * stops treat them one by one.  Their connections per remote address
 * are counted in memory shared by the processes of the protocol
 * (login/login_ipshare.h): posternd makes it and gives each process a
 * slot, which it clears when the process is gone.
 *
 * This module does not bind sockets or read the configuration (but for
 * the number of login processes, read once at start): posternd.c does
 * both and hands over master.listeners.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "ioloop.h"
#include "log.h"
#include "login_ipshare.h"
#include "master.h"
#include "xmalloc.h"

/* Login processes per protocol at most, and by default at most (one per
 * CPU).  Twice the most leaves slots for retired processes finishing
 * their sessions after a reload. */
#define MASTER_LOGIN_PROCS_MAX		16
#define MASTER_LOGIN_PROCS_DEFAULT_MAX	4

/* The per-IP counts shared by the login processes of one protocol. */
struct master_ipshare {
	const char	*proto;
	int		 fd;		/* -1: one process, none needed */
	uint32_t	*map;
	pid_t		 slot_pid[LOGIN_IPSHARE_SLOTS];
};

static struct master_ipshare master_ipshares[] = {
	{ .proto = "pop3", .fd = -1 },
	{ .proto = "imap", .fd = -1 },
};
#define MASTER_IPSHARE_COUNT \
	(sizeof(master_ipshares) / sizeof(master_ipshares[0]))

struct master_service {
	const char		*name;
	bool			 needs_root;
	/* Listener services this one serves (NULL-terminated), or NULL. */
	const char *const	*listen_services;
	pid_t			 pid;
	time_t			 started;	/* wall clock, for status */
	uint64_t		 started_ms;	/* monotonic, for backoff */
	unsigned		 restarts;
	unsigned		 backoff;	/* seconds before next restart */
	struct timer		*restart_timer;
	bool			 restart_now;	/* reload asked for a restart */
	/*
	 * Login services (pop3-login, imap-login): the protocol whose
	 * sessions they hand to posternd over a socketpair
	 * (master_handoff.c), or NULL.  They are optional: started only
	 * when their executable exists and they have a listener.
	 */
	const char		*login_proto;
	bool			 disabled;	/* login service not wanted */
	unsigned		 instance;	/* of a login service: 0, 1.. */
};

static const char *const smtpd_listen_services[] = {
	"smtp", "submission", "smtps", NULL
};
static const char *const pop3_login_listen_services[] = {
	"pop3", "pop3s", NULL
};
static const char *const imap_login_listen_services[] = {
	"imap", "imaps", NULL
};

/*
 * Start order: auth first (root: PAM and shadow need it), so smtpd and
 * the login processes find its socket; then the delivery side, so mail
 * never waits for it.
 */
static const struct master_service master_service_defs[] = {
	{ .name = "auth", .needs_root = true },
	{ .name = "local", .needs_root = true },
	/* The outbound SMTP client: network bytes, never root. */
	{ .name = "smtp" },
	{ .name = "qmgr" },
	{ .name = "smtpd", .listen_services = smtpd_listen_services },
	/* Started as root: they chroot and drop to run_user themselves
	 * once their certificate is loaded (doc/internals.md). */
	{ .name = "pop3-login", .listen_services = pop3_login_listen_services,
	    .login_proto = "pop3" },
	{ .name = "imap-login", .listen_services = imap_login_listen_services,
	    .login_proto = "imap" },
};

/* The services with one entry per login process (master_services_init()). */
static struct master_service *master_services;
static size_t master_service_count;
#define MASTER_SERVICE_COUNT	master_service_count

/* How many login processes of proto to run (read at start only). */
static unsigned
master_login_procs(const char *proto)
{
	char name[64];
	long long n;
	long cpus;

	snprintf(name, sizeof(name), "%s_login_process_min_avail", proto);
	n = cfg_get_int(name);
	if (n <= 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? cpus : 1;
		if (n > MASTER_LOGIN_PROCS_DEFAULT_MAX)
			n = MASTER_LOGIN_PROCS_DEFAULT_MAX;
	}
	if (n > MASTER_LOGIN_PROCS_MAX)
		n = MASTER_LOGIN_PROCS_MAX;
	return (unsigned)n;
}

static struct master_ipshare *
master_ipshare_of(const char *proto)
{
	size_t i;

	for (i = 0; i < MASTER_IPSHARE_COUNT; i++)
		if (strcmp(master_ipshares[i].proto, proto) == 0)
			return &master_ipshares[i];
	return NULL;
}

/* The shared per-IP counts of proto's login processes. */
static void
master_ipshare_init(struct master_ipshare *sh)
{
	char name[64];
	void *map;
	int fd;

	snprintf(name, sizeof(name), "postern-%s-login-ip", sh->proto);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)LOGIN_IPSHARE_SIZE) < 0) {
		log_warning("memfd for %s login processes: %m: each counts "
		    "login_max_connections_per_ip by itself", sh->proto);
		if (fd >= 0)
			(void)close(fd);
		return;
	}
	map = mmap(NULL, LOGIN_IPSHARE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		log_warning("mmap for %s login processes: %m: each counts "
		    "login_max_connections_per_ip by itself", sh->proto);
		(void)close(fd);
		return;
	}
	sh->fd = fd;
	sh->map = map;
}

/* A slot for the login process about to start; -1 when none is free
 * (it then counts by itself). */
static int
master_ipshare_slot(struct master_ipshare *sh)
{
	int i;

	if (sh == NULL || sh->fd < 0)
		return -1;
	for (i = 0; i < LOGIN_IPSHARE_SLOTS; i++)
		if (sh->slot_pid[i] == 0)
			return i;
	return -1;
}

/* A login process is gone: what it counted goes with it. */
static void
master_ipshare_release(pid_t pid)
{
	size_t i;
	unsigned s;

	for (i = 0; i < MASTER_IPSHARE_COUNT; i++) {
		struct master_ipshare *sh = &master_ipshares[i];

		if (sh->fd < 0)
			continue;
		for (s = 0; s < LOGIN_IPSHARE_SLOTS; s++) {
			if (sh->slot_pid[s] != pid)
				continue;
			login_ipshare_clear_slot(sh->map, s);
			sh->slot_pid[s] = 0;
			return;
		}
	}
}

void
master_services_init(void)
{
	size_t i, n = 0;

	for (i = 0; i < sizeof(master_service_defs) /
	    sizeof(master_service_defs[0]); i++) {
		const struct master_service *def = &master_service_defs[i];
		unsigned k, procs = 1;

		if (def->login_proto != NULL) {
			procs = master_login_procs(def->login_proto);
			if (procs > 1)
				master_ipshare_init(
				    master_ipshare_of(def->login_proto));
		}
		for (k = 0; k < procs; k++) {
			master_services = xreallocarray(master_services, n + 1,
			    sizeof(*master_services));
			master_services[n] = *def;
			master_services[n].instance = k;
			master_services[n].backoff = MASTER_BACKOFF_MIN;
			n++;
		}
	}
	master_service_count = n;
}

static char *
master_service_path(const struct master_service *svc)
{
	return xasprintf("%s/%s", cfg_get("daemon_directory"), svc->name);
}

int
master_services_check(const char **error_r)
{
	static char errbuf[1024];
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		char *path;
		int err = 0;

		if (master_services[i].login_proto != NULL)
			continue;	/* optional: master_service_wanted() */
		path = master_service_path(&master_services[i]);
		if (master_executable(path) < 0)
			err = errno;
		if (err != 0) {
			snprintf(errbuf, sizeof(errbuf),
			    "cannot start %s: %s: %s (check daemon_directory)",
			    master_services[i].name, path, strerror(err));
			free(path);
			*error_r = errbuf;
			return -1;
		}
		free(path);
	}
	return 0;
}

int
master_executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	/* A directory passes access(X_OK): say what exec would. */
	if (!S_ISREG(st.st_mode)) {
		errno = EACCES;
		return -1;
	}
	return access(path, X_OK);
}

static bool
master_service_takes(const struct master_service *svc, const char *service)
{
	const char *const *s;

	if (svc->listen_services == NULL)
		return false;
	for (s = svc->listen_services; *s != NULL; s++)
		if (strcmp(*s, service) == 0)
			return true;
	return false;
}

/*
 * In the child: put the listeners at 3, 4, ... and close everything
 * else.  Sources are first copied above the target range so that a
 * listener already sitting at 3..3+n-1 is not overwritten too early.
 */
static void
master_child_fds(const int *fds, size_t n)
{
	int *tmp = xreallocarray(NULL, n == 0 ? 1 : n, sizeof(int));
	int devnull;
	size_t i;

	for (i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, (int)(3 + n));
		if (tmp[i] < 0)
			log_fatal("fcntl(F_DUPFD): %m");
	}
	for (i = 0; i < n; i++)
		if (dup2(tmp[i], (int)(3 + i)) < 0)	/* clears CLOEXEC */
			log_fatal("dup2: %m");
	if (close_range((unsigned)(3 + n), ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX), fd;

		for (fd = (long)(3 + n); fd < max && fd < 65536; fd++)
			(void)close((int)fd);
	}
	free(tmp);
	if ((devnull = open("/dev/null", O_RDONLY)) >= 0) {
		if (devnull != 0) {
			(void)dup2(devnull, 0);
			(void)close(devnull);
		}
	}
}

/* In the child: become run_user for good, and make sure of it. */
static void
master_child_drop(void)
{
	if (initgroups(master.run_user, master.run_gid) < 0)
		log_fatal("initgroups(%s): %m", master.run_user);
	if (setgid(master.run_gid) < 0)
		log_fatal("setgid(%ld): %m", (long)master.run_gid);
	if (setuid(master.run_uid) < 0)
		log_fatal("setuid(%ld): %m", (long)master.run_uid);
	if (getuid() != master.run_uid || geteuid() != master.run_uid ||
	    getgid() != master.run_gid || getegid() != master.run_gid)
		log_fatal("privileges not dropped to %s", master.run_user);
	if (master.run_uid != 0 && setuid(0) == 0)
		log_fatal("could regain root after dropping to %s",
		    master.run_user);
}

static void
master_child_signals(void)
{
	static const int sigs[] = {
		SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGPIPE, SIGQUIT, SIGUSR1,
		SIGUSR2
	};
	sigset_t all;
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)signal(sigs[i], SIG_DFL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
}

/*
 * In the child of a login service: the socketpair end to posternd goes
 * to descriptor fdnum (after the listeners), and in root mode the
 * process learns where to chroot and whom to become.  It starts as
 * root: it must load its certificate and configuration before it
 * chroots, and chroot(2) needs root; it reads no network byte before
 * it has dropped to run_user (login.c).
 */
static void
master_child_login_env(int master_fd, size_t fdnum, int *slot)
{
	char num[32];

	*slot = master_fd;
	snprintf(num, sizeof(num), "%zu", fdnum);
	setenv("POSTERN_MASTER_FD", num, 1);
	if (master.root_mode) {
		char *dir = master_data_path("login");

		setenv("POSTERN_LOGIN_CHROOT", dir, 1);
		free(dir);
		snprintf(num, sizeof(num), "%ld", (long)master.run_uid);
		setenv("POSTERN_LOGIN_UID", num, 1);
		snprintf(num, sizeof(num), "%ld", (long)master.run_gid);
		setenv("POSTERN_LOGIN_GID", num, 1);
	} else {
		unsetenv("POSTERN_LOGIN_CHROOT");
		unsetenv("POSTERN_LOGIN_UID");
		unsetenv("POSTERN_LOGIN_GID");
	}
}

void
master_child_setup(const int *fds, size_t n)
{
	(void)setpgid(0, 0);	/* terminal ^C goes to posternd only */
	master_child_signals();
	master_child_fds(fds, n);
}

void
master_child_env(void)
{
	if (master.foreground)
		setenv("POSTERN_LOG_STDERR", "1", 1);
	else
		unsetenv("POSTERN_LOG_STDERR");
	if (master.debug)
		setenv("POSTERN_DEBUG", "1", 1);
	setenv("POSTERN_MODE", master.root_mode ? "root" : "user", 1);
	setenv("POSTERN_CONFIG", master.config_path, 1);
}

/* Whether svc has at least one listener (bound, or bound before start). */
static bool
master_service_has_listener(const struct master_service *svc)
{
	size_t i;

	for (i = 0; i < master.listener_count; i++) {
		const struct master_listener *l = &master.listeners[i];

		if ((l->fd >= 0 || l->pending) &&
		    master_service_takes(svc, l->service))
			return true;
	}
	return false;
}

/* Whether svc should run now: always, except login services without
 * listeners or without their executable. */
static bool
master_service_wanted(const struct master_service *svc)
{
	char *path;
	bool ok;

	if (svc->login_proto == NULL)
		return true;
	if (!master_service_has_listener(svc))
		return false;
	path = master_service_path(svc);
	ok = master_executable(path) == 0;
	free(path);
	return ok;
}

bool
master_services_listener_ok(const char *listen_service, const char **why_r)
{
	static char why[512];
	size_t i;

	/* The table of definitions: this may run before
	 * master_services_init(). */
	for (i = 0; i < sizeof(master_service_defs) /
	    sizeof(master_service_defs[0]); i++) {
		const struct master_service *svc = &master_service_defs[i];
		char *path;
		int err = 0;

		if (!master_service_takes(svc, listen_service))
			continue;
		if (svc->login_proto == NULL)
			return true;
		path = master_service_path(svc);
		if (master_executable(path) < 0)
			err = errno;
		if (err != 0)
			snprintf(why, sizeof(why), "%s: %s", path,
			    strerror(err));
		free(path);
		if (err == 0)
			return true;
		*why_r = why;
		return false;
	}
	*why_r = "not available in this version";
	return false;
}

static void
master_service_spawn(struct master_service *svc)
{
	struct buf env;
	int *fds;
	size_t i, n = 0;
	char *path;
	pid_t pid, parent = getpid();
	int sp[2] = { -1, -1 };
	int tls_fd = master_tls_fd();
	struct master_ipshare *sh = NULL;
	int slot = -1;

	if (svc->listen_services != NULL)
		master_listeners_bind_pending();
	if (svc->login_proto != NULL && socketpair(AF_UNIX,
	    SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_error("socketpair for %s: %m", svc->name);
		svc->pid = 0;
		return;
	}
	path = master_service_path(svc);
	buf_init(&env, 0);
	if (svc->login_proto != NULL) {
		sh = master_ipshare_of(svc->login_proto);
		slot = master_ipshare_slot(sh);
	}
	fds = xreallocarray(NULL, master.listener_count + 3, sizeof(int));
	for (i = 0; i < master.listener_count; i++) {
		const struct master_listener *l = &master.listeners[i];

		if (l->fd < 0 || !master_service_takes(svc, l->service))
			continue;
		buf_printf(&env, "%s%zu:%s:%s%s%s:%d", n > 0 ? "," : "",
		    3 + n, l->service, l->family == AF_INET6 ? "[" : "",
		    l->addr, l->family == AF_INET6 ? "]" : "", l->port);
		fds[n++] = l->fd;
	}

	fflush(NULL);	/* nothing buffered may be written twice */
	pid = fork();
	if (pid < 0) {
		log_error("fork for %s: %m", path);
		if (sp[0] >= 0) {
			(void)close(sp[0]);
			(void)close(sp[1]);
		}
		free(path);
		free(fds);
		buf_free(&env);
		/* The caller schedules another try. */
		svc->pid = 0;
		return;
	}
	if (pid == 0) {
		char *argv[4];

		if (n > 0)
			setenv("POSTERN_LISTEN", buf_cstr(&env), 1);
		else
			unsetenv("POSTERN_LISTEN");
		master_child_env();
		if (svc->login_proto != NULL) {
			master_child_login_env(sp[1], 3 + n, &fds[n]);
			if (slot >= 0) {
				char num[32];

				/* Its column of the shared per-IP counts. */
				snprintf(num, sizeof(num), "%zu", 3 + n + 1);
				setenv("POSTERN_LOGIN_IPSHARE_FD", num, 1);
				snprintf(num, sizeof(num), "%d", slot);
				setenv("POSTERN_LOGIN_IPSHARE_SLOT", num, 1);
				fds[n + 1] = sh->fd;
			} else {
				unsetenv("POSTERN_LOGIN_IPSHARE_FD");
				unsetenv("POSTERN_LOGIN_IPSHARE_SLOT");
			}
		} else if (svc->listen_services == smtpd_listen_services &&
		    tls_fd >= 0) {
			char num[32];

			/* smtpd: its certificate and key (master_tls.c). */
			snprintf(num, sizeof(num), "%zu", 3 + n);
			setenv("POSTERN_TLS_FD", num, 1);
			fds[n] = tls_fd;
		} else
			unsetenv("POSTERN_TLS_FD");
		master_child_setup(fds, slot >= 0 ? n + 2 :
		    svc->login_proto != NULL ||
		    getenv("POSTERN_TLS_FD") != NULL ? n + 1 : n);
		if (master.root_mode && !svc->needs_root &&
		    svc->login_proto == NULL)
			master_child_drop();
		/* Set after the uid change: a credential change clears it. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		argv[0] = path;
		argv[1] = (char *)"-c";
		argv[2] = (char *)master.config_path;
		argv[3] = NULL;
		execv(path, argv);
		log_error("exec %s: %m", path);
		_exit(127);
	}
	svc->pid = pid;
	svc->started = time(NULL);
	svc->started_ms = ioloop_now_ms();
	if (svc->login_proto != NULL) {
		(void)close(sp[1]);
		master_handoff_login_add(pid, svc->login_proto, sp[0]);
		if (slot >= 0)
			sh->slot_pid[slot] = pid;
	}
	log_debug("started %s pid %ld", path, (long)pid);
	free(path);
	free(fds);
	buf_free(&env);
}

static void
master_service_restart_cb(void *ctx)
{
	struct master_service *svc = ctx;

	svc->restart_timer = NULL;
	if (master.stopping || svc->pid != 0)
		return;
	if (!master_service_wanted(svc)) {
		svc->disabled = true;
		master_status_write();
		return;
	}
	svc->restarts++;
	master_service_spawn(svc);
	if (svc->pid != 0)
		log_info("restarted %s (pid %ld)", svc->name, (long)svc->pid);
	else
		svc->restart_timer = timer_add(
		    (uint64_t)MASTER_BACKOFF_MAX * 1000,
		    master_service_restart_cb, svc);
	master_status_write();
}

void
master_services_start(void)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		struct master_service *svc = &master_services[i];

		if (svc->pid != 0 || svc->restart_timer != NULL)
			continue;
		svc->disabled = !master_service_wanted(svc);
		if (svc->disabled)
			continue;
		master_service_spawn(svc);
		if (svc->pid == 0)
			svc->restart_timer = timer_add(
			    (uint64_t)svc->backoff * 1000,
			    master_service_restart_cb, svc);
	}
	master_status_write();
}

static struct master_service *
master_service_by_pid(pid_t pid)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++)
		if (master_services[i].pid == pid)
			return &master_services[i];
	return NULL;
}

/* A service ended: log it the way Postfix's master does, plan a restart. */
static void
master_service_exited(struct master_service *svc, pid_t pid, int status)
{
	uint64_t up_ms = ioloop_now_ms() - svc->started_ms;
	char *path;
	unsigned delay;

	svc->pid = 0;
	if (svc->login_proto != NULL)
		master_handoff_login_gone(pid);
	if (master.stopping)
		return;
	if (svc->disabled) {
		/* A reload took its listeners away: it was asked to go. */
		svc->restart_now = false;
		return;
	}
	if (svc->restart_now) {
		/* It was asked to exit by a reload that changed its
		 * listeners: start it again at once. */
		svc->restart_now = false;
		master_service_spawn(svc);
		if (svc->pid != 0)
			log_info("restarted %s with new listeners (pid %ld)",
			    svc->name, (long)svc->pid);
		else
			svc->restart_timer = timer_add(
			    (uint64_t)svc->backoff * 1000,
			    master_service_restart_cb, svc);
		return;
	}
	path = master_service_path(svc);
	if (WIFSIGNALED(status))
		log_warning("process %s pid %ld killed by signal %d", path,
		    (long)pid, WTERMSIG(status));
	else
		log_warning("process %s pid %ld exit status %d", path,
		    (long)pid, WEXITSTATUS(status));
	free(path);
	if (up_ms >= (uint64_t)MASTER_BACKOFF_RESET * 1000)
		svc->backoff = MASTER_BACKOFF_MIN;
	delay = svc->backoff;
	svc->backoff *= 2;
	if (svc->backoff > MASTER_BACKOFF_MAX)
		svc->backoff = MASTER_BACKOFF_MAX;
	log_info("restarting %s in %u s", svc->name, delay);
	svc->restart_timer = timer_add((uint64_t)delay * 1000,
	    master_service_restart_cb, svc);
}

/*
 * Login processes replaced by a reload: they closed their listeners and
 * finish the clients they have (TLS sessions they relay may last long),
 * while a fresh one serves new connections.
 */
static pid_t *master_retired;
static size_t master_retired_count;

static bool
master_retired_remove(pid_t pid)
{
	size_t i;

	for (i = 0; i < master_retired_count; i++) {
		if (master_retired[i] == pid) {
			master_retired[i] =
			    master_retired[--master_retired_count];
			return true;
		}
	}
	return false;
}

/* Whether a listener of svc waits to be bound until the old one lets go. */
static bool
master_service_has_pending(const struct master_service *svc)
{
	size_t i;

	for (i = 0; i < master.listener_count; i++)
		if (master.listeners[i].pending &&
		    master_service_takes(svc, master.listeners[i].service))
			return true;
	return false;
}

/*
 * Reload of a login service.  A login process is chrooted: it cannot
 * read the configuration or its certificate again, so every reload
 * replaces it.  The old one gets SIGTERM (it stops accepting and ends
 * when its clients are gone) and a new one starts at once, unless one of
 * its new listeners can only be bound once the old process let go of
 * the address: then the new one starts when the old one exited.
 */
static void
master_service_reload_login(struct master_service *svc)
{
	bool wanted = master_service_wanted(svc);

	if (svc->pid <= 0) {
		if (wanted && svc->restart_timer == NULL) {
			svc->disabled = false;
			master_service_spawn(svc);
			if (svc->pid == 0)
				svc->restart_timer = timer_add(
				    (uint64_t)svc->backoff * 1000,
				    master_service_restart_cb, svc);
		} else if (!wanted) {
			timer_remove(&svc->restart_timer);
			svc->disabled = true;
		}
		return;
	}
	if (!wanted) {
		svc->disabled = true;
		(void)kill(svc->pid, SIGTERM);
		return;
	}
	svc->disabled = false;
	if (master_service_has_pending(svc)) {
		svc->restart_now = true;
		(void)kill(svc->pid, SIGTERM);
		return;
	}
	(void)kill(svc->pid, SIGTERM);
	master_retired = xreallocarray(master_retired,
	    master_retired_count + 1, sizeof(*master_retired));
	master_retired[master_retired_count++] = svc->pid;
	svc->pid = 0;
	master_service_spawn(svc);
	if (svc->pid != 0)
		log_debug("restarted %s for the new configuration (pid %ld)",
		    svc->name, (long)svc->pid);
	else
		svc->restart_timer = timer_add((uint64_t)svc->backoff * 1000,
		    master_service_restart_cb, svc);
}

void
master_services_reap(void)
{
	struct master_service *svc;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		master_ipshare_release(pid);
		if ((svc = master_service_by_pid(pid)) != NULL)
			master_service_exited(svc, pid, status);
		else if (master_retired_remove(pid))
			master_handoff_login_gone(pid);
		else
			(void)master_handoff_reaped(pid, status);
	}
	master_status_write();
}

void
master_services_signal(int signo)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++)
		if (master_services[i].pid > 0)
			(void)kill(master_services[i].pid, signo);
	master_handoff_signal(signo);
}

void
master_services_reload(bool listeners_changed)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		struct master_service *svc = &master_services[i];

		if (svc->login_proto != NULL) {
			master_service_reload_login(svc);
			continue;
		}
		if (svc->pid <= 0)
			continue;
		if (listeners_changed && svc->listen_services != NULL) {
			/*
			 * Inherited descriptors cannot be added to a running
			 * process: let it finish its sessions (SIGTERM is a
			 * graceful stop) and start it again with the new set.
			 */
			svc->restart_now = true;
			(void)kill(svc->pid, SIGTERM);
		} else
			(void)kill(svc->pid, SIGHUP);
	}
	/* Mail processes re-read the configuration for new sessions. */
	master_handoff_signal(SIGHUP);
}

size_t
master_services_running(void)
{
	size_t i, n = 0;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++)
		if (master_services[i].pid > 0)
			n++;
	return n + master_retired_count + master_handoff_running();
}

size_t
master_services_stop(void)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		struct master_service *svc = &master_services[i];

		timer_remove(&svc->restart_timer);
		svc->restart_now = false;
		if (svc->pid > 0)
			(void)kill(svc->pid, SIGTERM);
	}
	for (i = 0; i < master_retired_count; i++)
		(void)kill(master_retired[i], SIGTERM);
	master_handoff_stop();
	return master_services_running();
}

void
master_services_kill(void)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		struct master_service *svc = &master_services[i];

		if (svc->pid > 0) {
			log_warning("process %s pid %ld did not stop in %d s: "
			    "killing it", svc->name, (long)svc->pid,
			    MASTER_STOP_TIMEOUT);
			(void)kill(svc->pid, SIGKILL);
		}
	}
	for (i = 0; i < master_retired_count; i++)
		(void)kill(master_retired[i], SIGKILL);
	master_handoff_signal(SIGKILL);
}

void
master_status_write(void)
{
	char *path = master_data_path("status");
	char *tmp = master_data_path("status.tmp");
	FILE *fp;
	size_t i;

	if ((fp = fopen(tmp, "w")) == NULL) {
		log_warning("open %s: %m", tmp);
		goto out;
	}
	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		const struct master_service *svc = &master_services[i];

		if (svc->disabled)
			continue;
		fprintf(fp, "%s %ld %lld %u\n", svc->name,
		    (long)(svc->pid > 0 ? svc->pid : 0),
		    (long long)svc->started, svc->restarts);
	}
	if (fclose(fp) != 0) {
		log_warning("write %s: %m", tmp);
		(void)unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		log_warning("rename(%s, %s): %m", tmp, path);
		(void)unlink(tmp);
	}
out:
	free(path);
	free(tmp);
}

void
master_status_remove(void)
{
	char *path = master_data_path("status");

	(void)unlink(path);
	free(path);
}
