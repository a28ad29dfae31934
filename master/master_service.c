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
 * This module does not bind sockets or read the configuration: posternd.c
 * does both and hands over master.listeners.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "master.h"
#include "xmalloc.h"

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
};

static const char *const smtpd_listen_services[] = {
	"smtp", "submission", "smtps", NULL
};

/* Start order: the delivery side first, so mail never waits for it. */
static struct master_service master_services[] = {
	{ "local", true, NULL, 0, 0, 0, 0, 0, NULL, false },
	{ "qmgr", false, NULL, 0, 0, 0, 0, 0, NULL, false },
	{ "smtpd", false, smtpd_listen_services, 0, 0, 0, 0, 0, NULL, false },
};

#define MASTER_SERVICE_COUNT \
	(sizeof(master_services) / sizeof(master_services[0]))

void
master_services_init(void)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++)
		master_services[i].backoff = MASTER_BACKOFF_MIN;
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
		char *path = master_service_path(&master_services[i]);
		int err = 0;

		if (access(path, X_OK) < 0)
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

static void
master_service_spawn(struct master_service *svc)
{
	struct buf env;
	int *fds;
	size_t i, n = 0;
	char *path;
	pid_t pid, parent = getpid();

	if (svc->listen_services != NULL)
		master_listeners_bind_pending();
	path = master_service_path(svc);
	buf_init(&env, 0);
	fds = xreallocarray(NULL, master.listener_count + 1, sizeof(int));
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
		free(path);
		free(fds);
		buf_free(&env);
		/* The caller schedules another try. */
		svc->pid = 0;
		return;
	}
	if (pid == 0) {
		char *argv[4];

		(void)setpgid(0, 0);	/* terminal ^C goes to posternd only */
		master_child_signals();
		if (n > 0)
			setenv("POSTERN_LISTEN", buf_cstr(&env), 1);
		else
			unsetenv("POSTERN_LISTEN");
		if (master.foreground)
			setenv("POSTERN_LOG_STDERR", "1", 1);
		else
			unsetenv("POSTERN_LOG_STDERR");
		if (master.debug)
			setenv("POSTERN_DEBUG", "1", 1);
		setenv("POSTERN_MODE", master.root_mode ? "root" : "user", 1);
		setenv("POSTERN_CONFIG", master.config_path, 1);
		master_child_fds(fds, n);
		if (master.root_mode && !svc->needs_root)
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
	if (master.stopping)
		return;
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

void
master_services_reap(void)
{
	struct master_service *svc;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((svc = master_service_by_pid(pid)) != NULL)
			master_service_exited(svc, pid, status);
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
}

void
master_services_reload(bool listeners_changed)
{
	size_t i;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++) {
		struct master_service *svc = &master_services[i];

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
}

size_t
master_services_running(void)
{
	size_t i, n = 0;

	for (i = 0; i < MASTER_SERVICE_COUNT; i++)
		if (master_services[i].pid > 0)
			n++;
	return n;
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
