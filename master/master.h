/*
 * master: the pieces of posternd shared between posternd.c (start-up,
 * listeners, signals, reload, stop) and master_service.c (starting,
 * supervising and restarting the services of DESIGN §2).
 *
 * posternd is the only process that binds the network listeners; a
 * service gets the sockets it serves as inherited descriptors 3, 4, ...
 * described by POSTERN_LISTEN (doc/internals.md).
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* Restart backoff: 1 s doubling to 60 s, reset after 60 s of uptime. */
#define MASTER_BACKOFF_MIN	1
#define MASTER_BACKOFF_MAX	60
#define MASTER_BACKOFF_RESET	60
/* How long services get to finish in-flight work at stop. */
#define MASTER_STOP_TIMEOUT	30
/* Listen backlog of every listener. */
#define MASTER_LISTEN_BACKLOG	511

/* One bound listening socket. */
struct master_listener {
	char	*service;	/* "smtp", "submission", ... */
	char	*addr;		/* numeric address: "127.0.0.1", "::1" */
	int	 family;	/* AF_INET or AF_INET6 */
	int	 port;
	int	 fd;
	/* An IPv6 listener implied by inet_protocols = all: skipped with a
	 * warning when the host has no IPv6. */
	bool	 optional;
	bool	 keep;		/* reload: still wanted */
	/* Reload: not bound yet because the address is still in use by
	 * the service being restarted; bound before its next start. */
	bool	 pending;
};

/* Settings shared by the whole master process. */
struct master_state {
	const char	*config_path;	/* absolute */
	char		*data_dir;	/* $data_directory at start */
	bool		 foreground;
	bool		 debug;
	bool		 root_mode;
	uid_t		 run_uid;	/* root mode: run_user */
	gid_t		 run_gid;
	char		*run_user;
	bool		 stopping;
	struct master_listener *listeners;
	size_t		 listener_count;
};

extern struct master_state master;

/* ---- master_service.c ---- */

/* Prepare the service table (smtpd, qmgr, local). */
void	master_services_init(void);
/*
 * Check that every service executable exists in $daemon_directory.
 * Returns 0, or -1 with a message in *error_r (static storage).
 */
int	master_services_check(const char **error_r);
/* Start every service that is not running, in the order local, qmgr,
 * smtpd. */
void	master_services_start(void);
/* Reap exited children and schedule restarts (called on SIGCHLD). */
void	master_services_reap(void);
/* Forward a signal to every running service. */
void	master_services_signal(int signo);
/*
 * Reload: restart services whose set of inherited listeners changed
 * (gracefully, SIGTERM then a fresh start), forward SIGHUP to the others.
 */
void	master_services_reload(bool listeners_changed);
/* Stop: SIGTERM everybody, cancel restarts.  Returns the number still
 * running. */
size_t	master_services_stop(void);
size_t	master_services_running(void);
/* SIGKILL whatever still runs (stop timeout). */
void	master_services_kill(void);
/* Rewrite $data_directory/status ("NAME PID STARTED RESTARTS" lines). */
void	master_status_write(void);
/* Remove the status file (stop). */
void	master_status_remove(void);
/*
 * In a child between fork and exec: own process group, default signal
 * dispositions and mask, fds[0..n) moved to descriptors 3, 4, ...
 * (close-on-exec cleared), every other descriptor above 2 closed, stdin
 * from /dev/null.
 */
void	master_child_setup(const int *fds, size_t n);
/* 0 when path is a regular file we may execute, else -1 with errno. */
int	master_executable(const char *path);
/* In a child: POSTERN_MODE, POSTERN_CONFIG, POSTERN_LOG_STDERR,
 * POSTERN_DEBUG as every service gets them. */
void	master_child_env(void);
/*
 * Whether the listeners of listen_service ("pop3", "imaps", ...) have a
 * process to serve them: the login services are optional and run only
 * when their executable is in $daemon_directory.  false with the reason
 * in *why_r (static storage).
 */
bool	master_services_listener_ok(const char *listen_service,
	    const char **why_r);

/* ---- master_handoff.c: login -> posternd -> mail process ---- */

/* A login process was started; fd is posternd's end of its socketpair. */
void	master_handoff_login_add(pid_t pid, const char *proto, int fd);
/* A login process exited: forget it (hand-offs in flight are dropped). */
void	master_handoff_login_gone(pid_t pid);
/* A child exited: true when it was a mail process (then logged). */
bool	master_handoff_reaped(pid_t pid, int status);
/* Send signo to every mail process. */
void	master_handoff_signal(int signo);
/* Mail processes still running. */
size_t	master_handoff_running(void);
/* Stop: fail hand-offs in flight, SIGTERM every mail process. */
void	master_handoff_stop(void);

/* ---- posternd.c ---- */

/* Path of a file in $data_directory; malloc'ed. */
char	*master_data_path(const char *name);
/* Bind the listeners a reload left pending (before starting smtpd). */
void	master_listeners_bind_pending(void);
/* master_tls.c: smtpd's certificate and key, read as root (POSTERN_TLS_FD). */
void	master_tls_refresh(void);
int	master_tls_fd(void);

#endif
