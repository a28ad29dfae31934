/*
 * master_handoff: posternd's side of the login hand-off (DESIGN §12,
 * doc/internals.md "Handing a logged-in session to the mail process").
 *
 * Every login process (pop3-login, imap-login) has a SOCK_SEQPACKET
 * socketpair to posternd.  A HANDOFF packet carries one client descriptor
 * and the one-time ticket the auth service issued for the login.  posternd
 * redeems the ticket on private/auth-master: it never takes a user name or
 * a uid from a login process, which reads network bytes and must be
 * assumed compromised.  It then finds or starts the mail process (pop3,
 * imap) that serves that uid, passes the descriptor on in a SESSION packet
 * and answers the login process OK (with the mail process's pid, for its
 * log line) or FAIL.  A malformed packet from a login process is logged
 * and the process is stopped (posternd restarts it); posternd itself never
 * exits over what a child says.
 *
 * Mail processes run as their user (root mode: never uid or gid 0, never
 * below first_valid_uid) and are not restarted: an exit is normal (they
 * leave after mail_process_max_idle seconds without sessions, saying BYE
 * first so that no session is sent into a process on its way out), a
 * crash is logged.
 *
 * Everything here runs from posternd's event loop and never waits, except
 * for the fork and exec of a mail process: posternd reads a close-on-exec
 * pipe until the exec happened (a few milliseconds), so that a failure to
 * become the user or to exec is a FAIL for the login instead of a client
 * handed to a process that never existed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "fdpass.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "log.h"
#include "mailproc.h"
#include "master.h"
#include "master_handoff.h"
#include "str.h"
#include "xmalloc.h"

/* Seconds posternd waits for the auth service to redeem a ticket. */
#define HANDOFF_AUTH_TIMEOUT	10
/* Mail processes at most (one per uid and protocol). */
#define HANDOFF_MAX_MAIL_PROCS	1024
/* Hand-offs of one login process waiting for the auth service. */
#define HANDOFF_MAX_PENDING	256
/* Packets read from one socket per readiness event. */
#define HANDOFF_READ_BATCH	32
/* Bytes of the auth-master output queue. */
#define HANDOFF_AM_OUT_MAX	(1024 * 1024)

struct handoff_login {
	struct handoff_login	*next;
	pid_t			 pid;
	char			 proto[8];	/* "pop3", "imap" */
	int			 fd;
	struct io		*io;
	unsigned		 pending;	/* requests in flight */
};

struct handoff_req {
	struct handoff_req	*next, *prev;
	struct handoff_login	*login;	/* NULL: the login process is gone */
	unsigned long		 login_id;
	unsigned		 am_id;
	int			 fd;	/* the client (or relay) socket */
	char			 proto[8];
	char			*fields;	/* validated, for SESSION */
	struct timer		*timer;
};

struct mail_proc {
	struct mail_proc	*next;
	char			 proto[8];
	uid_t			 uid;
	gid_t			 gid;
	pid_t			 pid;
	int			 fd;		/* -1 once it said BYE */
	struct io		*io;
	char			*user;	/* the first user, for the log */
	unsigned long		 sessions;
};

static struct handoff_login *handoff_logins;
static struct handoff_req *handoff_reqs;
static struct mail_proc *handoff_procs;
static size_t handoff_nprocs;

/* The connection to private/auth-master. */
static int am_fd = -1;
static struct io *am_io;
static struct buf am_in, am_out;
static unsigned am_next_id = 1;

static void handoff_am_io(int fd, int events, void *ctx);
static void handoff_mail_io(int fd, int events, void *ctx);
static void handoff_login_io(int fd, int events, void *ctx);

/* ---- small helpers ---- */

/* Send one packet, optionally with a descriptor.  0, or -1 with errno. */
static int
handoff_send(int sock, const char *text, int fd)
{
	return fdpass_send(sock, text, strlen(text), fd);
}

/*
 * Receive one packet of at most MAILPROC_MAX_MSG bytes into buf (size
 * MAILPROC_MAX_MSG + 1, NUL-terminated), as fdpass_recv() says.
 */
static ssize_t
handoff_recv(int sock, char *buf, int *fds, size_t maxfds, size_t *nfds_r)
{
	ssize_t n = fdpass_recv(sock, buf, MAILPROC_MAX_MSG, fds, maxfds,
	    nfds_r);

	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* ---- requests ---- */

static struct handoff_req *
handoff_req_by_am_id(unsigned id)
{
	struct handoff_req *r;

	for (r = handoff_reqs; r != NULL; r = r->next)
		if (r->am_id == id)
			return r;
	return NULL;
}

static void
handoff_req_free(struct handoff_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		handoff_reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	if (r->login != NULL)
		r->login->pending--;
	timer_remove(&r->timer);
	if (r->fd >= 0)
		(void)close(r->fd);
	free(r->fields);
	free(r);
}

/* Answer the login process (when it is still there) and forget r. */
static void
handoff_req_reply(struct handoff_req *r, bool ok, pid_t mpid,
    const char *reason)
{
	if (r->login != NULL && r->login->fd >= 0) {
		char *text;

		if (ok)
			text = xasprintf("OK %lu %ld", r->login_id, (long)mpid);
		else {
			char *x = xtext_encode(reason, strlen(reason));

			text = xasprintf("FAIL %lu %s", r->login_id, x);
			free(x);
		}
		/*
		 * The login process reads its socket all the time; a full
		 * socket buffer means it hangs, and its client with it.
		 */
		if (handoff_send(r->login->fd, text, -1) < 0)
			log_warning("%s-login pid %ld: cannot answer a "
			    "hand-off: %m", r->login->proto,
			    (long)r->login->pid);
		free(text);
	}
	handoff_req_free(r);
}

/* ---- auth-master client ---- */

static void
handoff_am_close(const char *why)
{
	struct handoff_req *r, *next;

	if (am_fd >= 0) {
		/* An idle connection closes when the auth service
		 * restarts (reload): news only when requests were lost. */
		for (r = handoff_reqs; r != NULL; r = r->next)
			if (r->am_id != 0)
				break;
		if (why != NULL && r != NULL)
			log_warning("auth-master: %s", why);
		else if (why != NULL)
			log_debug("auth-master: %s", why);
		io_remove(&am_io);
		(void)close(am_fd);
		am_fd = -1;
	}
	buf_free(&am_in);
	buf_free(&am_out);
	for (r = handoff_reqs; r != NULL; r = next) {
		next = r->next;
		if (r->am_id != 0)
			handoff_req_reply(r, false, 0,
			    "auth service unavailable");
	}
}

static int
handoff_am_connect(void)
{
	struct sockaddr_un sun;
	char *path;
	size_t len;
	int fd;

	if (am_fd >= 0)
		return 0;
	path = xasprintf("%s/private/auth-master",
	    cfg_get("queue_directory"));
	len = strlen(path);
	if (len >= sizeof(sun.sun_path)) {
		log_error("%s: path too long", path);
		free(path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %m");
		free(path);
		return -1;
	}
	/* A UNIX socket connects at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		log_warning("connect %s: %m", path);
		(void)close(fd);
		free(path);
		return -1;
	}
	free(path);
	am_fd = fd;
	buf_init(&am_in, MAX_IPC_LINE);
	buf_init(&am_out, HANDOFF_AM_OUT_MAX);
	am_io = io_add(fd, IOLOOP_READ, handoff_am_io, NULL);
	return 0;
}

static void
handoff_am_flush(void)
{
	while (am_out.len > 0) {
		ssize_t n = send(am_fd, am_out.data, am_out.len,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			handoff_am_close("write failed");
			return;
		}
		buf_consume(&am_out, (size_t)n);
	}
	io_set_events(am_io, IOLOOP_READ | (am_out.len > 0 ?
	    IOLOOP_WRITE : 0));
}

static void
handoff_req_timeout(void *ctx)
{
	struct handoff_req *r = ctx;

	r->timer = NULL;
	log_warning("auth-master: no answer for a ticket within %d s",
	    HANDOFF_AUTH_TIMEOUT);
	handoff_req_reply(r, false, 0, "auth service timeout");
}

/* Ask the auth service who the ticket belongs to. */
static void
handoff_am_ticket(struct handoff_req *r, const char *ticket)
{
	if (handoff_am_connect() < 0) {
		handoff_req_reply(r, false, 0, "auth service unavailable");
		return;
	}
	r->am_id = am_next_id++;
	if (am_next_id == 0)
		am_next_id = 1;
	if (buf_printf(&am_out, "TICKET %u %s\n", r->am_id, ticket) < 0) {
		handoff_req_reply(r, false, 0, "auth service busy");
		return;
	}
	r->timer = timer_add((uint64_t)HANDOFF_AUTH_TIMEOUT * 1000,
	    handoff_req_timeout, r);
	handoff_am_flush();
}

static void handoff_deliver(struct handoff_req *r,
    struct master_handoff_user *u);

static void
handoff_am_line(char *line)
{
	char **f = strv_split(line, " ");
	struct handoff_req *r;
	long long id;

	if (f[0] == NULL)
		goto out;
	if (strcmp(f[0], "USER") != 0 && strcmp(f[0], "NOTFOUND") != 0)
		goto out;	/* VERSION, MECH, DONE: not for us */
	if (f[1] == NULL || str_to_ll(f[1], 1, 0xffffffffLL, &id) < 0) {
		strv_free(&f);
		handoff_am_close("malformed reply");
		return;
	}
	if ((r = handoff_req_by_am_id((unsigned)id)) == NULL)
		goto out;	/* timed out meanwhile */
	r->am_id = 0;
	timer_remove(&r->timer);
	if (strcmp(f[0], "NOTFOUND") == 0) {
		log_warning("%s hand-off with an unknown or expired ticket",
		    r->proto);
		handoff_req_reply(r, false, 0, "invalid ticket");
	} else {
		struct master_handoff_user u;

		if (master_handoff_user_parse(f + 2, &u) < 0) {
			strv_free(&f);
			handoff_req_reply(r, false, 0, "bad user record");
			handoff_am_close("malformed USER reply");
			return;
		}
		handoff_deliver(r, &u);
		master_handoff_user_free(&u);
	}
out:
	strv_free(&f);
}

static void
handoff_am_io(int fd, int events, void *ctx)
{
	(void)ctx;
	if (events & IOLOOP_WRITE) {
		handoff_am_flush();
		if (am_fd < 0)
			return;
	}
	if (!(events & IOLOOP_READ))
		return;
	for (;;) {
		char *nl;
		ssize_t n;

		size_t room = am_in.max - am_in.len;

		if (room == 0) {
			handoff_am_close("reply line too long");
			return;
		}
		if (room > 4096)
			room = 4096;
		if (buf_reserve(&am_in, room) < 0)
			log_panic("auth-master input buffer");
		n = read(fd, am_in.data + am_in.len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			handoff_am_close(n == 0 ? "connection closed" :
			    "read failed");
			return;
		}
		am_in.len += (size_t)n;
		while (am_fd >= 0 &&
		    (nl = memchr(am_in.data, '\n', am_in.len)) != NULL) {
			size_t len = (size_t)(nl - am_in.data);
			char *line = xstrndup(am_in.data, len);

			buf_consume(&am_in, len + 1);
			handoff_am_line(line);
			free(line);
		}
		if (am_fd < 0)
			return;
	}
}

/* ---- mail processes ---- */

static struct mail_proc *
handoff_proc_find(const char *proto, uid_t uid, gid_t gid)
{
	struct mail_proc *mp;

	for (mp = handoff_procs; mp != NULL; mp = mp->next)
		if (mp->fd >= 0 && mp->uid == uid && mp->gid == gid &&
		    strcmp(mp->proto, proto) == 0)
			return mp;
	return NULL;
}

/* It said BYE or went away: no more sessions for it. */
static void
handoff_proc_retire(struct mail_proc *mp)
{
	if (mp->fd < 0)
		return;
	io_remove(&mp->io);
	/* What it has not read yet stays readable after this close: it
	 * serves those sessions, then sees the end of the stream. */
	(void)close(mp->fd);
	mp->fd = -1;
}

/* In the child: become the user.  Returns NULL or what failed. */
static const char *
handoff_child_become(const char *user, uid_t uid, gid_t gid)
{
	static char why[256];
	struct passwd *pw;

	if (!master.root_mode)
		return NULL;
	/*
	 * The user's supplementary groups when the system knows the name
	 * with this uid (mail_privileged_group-style access to /var/mail
	 * goes through them); only the primary group otherwise.
	 */
	pw = getpwnam(user);
	if (pw != NULL && pw->pw_uid == uid) {
		if (initgroups(user, gid) < 0) {
			snprintf(why, sizeof(why), "initgroups(%s): %s", user,
			    strerror(errno));
			return why;
		}
	} else if (setgroups(1, &gid) < 0) {
		snprintf(why, sizeof(why), "setgroups: %s", strerror(errno));
		return why;
	}
	if (setgid(gid) < 0) {
		snprintf(why, sizeof(why), "setgid(%ld): %s", (long)gid,
		    strerror(errno));
		return why;
	}
	if (setuid(uid) < 0) {
		snprintf(why, sizeof(why), "setuid(%ld): %s", (long)uid,
		    strerror(errno));
		return why;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid || setuid(0) == 0)
		return "privileges not dropped";
	return NULL;
}

static struct mail_proc *
handoff_proc_spawn(const char *proto, const struct master_handoff_user *u,
    uid_t uid, gid_t gid, const char **error_r)
{
	static char errbuf[512];
	struct mail_proc *mp;
	char *path, *home, *mail_env;
	int sp[2], ep[2];
	pid_t pid, parent = getpid();
	ssize_t n;

	path = xasprintf("%s/%s", cfg_get("daemon_directory"), proto);
	if (master_executable(path) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s: %s", path,
		    strerror(errno));
		free(path);
		*error_r = errbuf;
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(errbuf, sizeof(errbuf), "socketpair: %s",
		    strerror(errno));
		free(path);
		*error_r = errbuf;
		return NULL;
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(errbuf, sizeof(errbuf), "pipe: %s", strerror(errno));
		(void)close(sp[0]);
		(void)close(sp[1]);
		free(path);
		*error_r = errbuf;
		return NULL;
	}
	home = xtext_decode(u->home);
	mail_env = xasprintf("%d", 3);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		const char *why;
		char *argv[4];
		int fds[2];

		(void)close(sp[0]);
		(void)close(ep[0]);
		/* The error pipe goes along above the master socket. */
		fds[0] = sp[1];
		fds[1] = ep[1];
		master_child_setup(fds, 2);
		ep[1] = 4;
		(void)fcntl(ep[1], F_SETFD, FD_CLOEXEC);
		master_child_env();
		unsetenv("POSTERN_LISTEN");
		setenv("POSTERN_MASTER_FD", mail_env, 1);
		setenv("HOME", home, 1);
		setenv("USER", u->name_plain, 1);
		setenv("LOGNAME", u->name_plain, 1);
		if ((why = handoff_child_become(u->name_plain, uid, gid))
		    != NULL) {
			(void)write(ep[1], why, strlen(why));
			_exit(127);
		}
		/* After the uid change, which clears it. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		if (chdir("/") < 0)
			_exit(127);
		argv[0] = path;
		argv[1] = (char *)"-c";
		argv[2] = (char *)master.config_path;
		argv[3] = NULL;
		execv(path, argv);
		why = strerror(errno);
		(void)write(ep[1], "exec: ", 6);
		(void)write(ep[1], why, strlen(why));
		_exit(127);
	}
	free(home);
	free(mail_env);
	(void)close(sp[1]);
	(void)close(ep[1]);
	if (pid < 0) {
		snprintf(errbuf, sizeof(errbuf), "fork: %s", strerror(errno));
		(void)close(sp[0]);
		(void)close(ep[0]);
		free(path);
		*error_r = errbuf;
		return NULL;
	}
	/* Returns 0 (EOF) once the exec closed the pipe. */
	do
		n = read(ep[0], errbuf, sizeof(errbuf) - 1);
	while (n < 0 && errno == EINTR);
	(void)close(ep[0]);
	if (n > 0) {
		char why[256];

		/* The child writes one short line (handoff_child_become). */
		if ((size_t)n >= sizeof(why))
			n = (ssize_t)sizeof(why) - 1;
		memcpy(why, errbuf, (size_t)n);
		why[n] = '\0';
		snprintf(errbuf, sizeof(errbuf), "%.200s for %.40s: %.200s",
		    path, u->name_plain, why);
		(void)close(sp[0]);
		free(path);
		*error_r = errbuf;
		return NULL;	/* the child is reaped as an unknown pid */
	}
	free(path);
	mp = xcalloc(1, sizeof(*mp));
	str_lcpy(mp->proto, proto, sizeof(mp->proto));
	mp->uid = uid;
	mp->gid = gid;
	mp->pid = pid;
	mp->fd = sp[0];
	(void)fcntl(mp->fd, F_SETFL, O_NONBLOCK);
	mp->user = xstrdup(u->name_plain);
	mp->io = io_add(mp->fd, IOLOOP_READ, handoff_mail_io, mp);
	mp->next = handoff_procs;
	handoff_procs = mp;
	handoff_nprocs++;
	log_debug("started %s pid %ld for %s (uid %ld)", proto, (long)pid,
	    mp->user, (long)uid);
	return mp;
}

static void
handoff_mail_io(int fd, int events, void *ctx)
{
	struct mail_proc *mp = ctx;
	char buf[MAILPROC_MAX_MSG + 1];
	int fds[1];
	size_t nfds, i;
	ssize_t n;

	(void)events;
	for (i = 0; i < HANDOFF_READ_BATCH && mp->fd >= 0; i++) {
		n = handoff_recv(fd, buf, fds, 0, &nfds);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* Gone (it crashed, or exited: reaped later). */
			handoff_proc_retire(mp);
			return;
		}
		if (strcmp(buf, "BYE") == 0) {
			log_debug("%s pid %ld is leaving (idle)", mp->proto,
			    (long)mp->pid);
		} else {
			char text[128];

			log_warning("%s pid %ld: unexpected message \"%s\"",
			    mp->proto, (long)mp->pid,
			    log_escape(text, sizeof(text), buf, (size_t)n));
		}
		handoff_proc_retire(mp);
		return;
	}
}

/* ---- delivering a session ---- */

/*
 * The ticket was good: check the uid, find or start the mail process and
 * send it the session.  Answers the login process either way.
 */
static void
handoff_deliver(struct handoff_req *r, struct master_handoff_user *u)
{
	struct mail_proc *mp;
	const char *error = NULL;
	char *text, *mail = NULL;
	uid_t uid;
	gid_t gid;
	int attempt;

	if (r->login == NULL) {
		handoff_req_free(r);	/* its login process is gone */
		return;
	}
	if (master.root_mode) {
		long long first = cfg_get_int("first_valid_uid");

		uid = u->uid;
		gid = u->gid;
		if (uid == 0 || gid == 0 || (long long)uid < first) {
			log_error("%s: user %s has uid %ld gid %ld: mail "
			    "processes never run as root or below "
			    "first_valid_uid (%lld): login refused",
			    r->proto, u->name_plain, (long)uid, (long)gid,
			    first);
			handoff_req_reply(r, false, 0, "invalid uid");
			return;
		}
	} else {
		/* Unprivileged mode: every user is served as ourselves. */
		uid = getuid();
		gid = getgid();
	}
	if (u->mail == NULL || *u->mail == '\0') {
		const char *loc = cfg_get("mail_location");

		mail = xtext_encode(loc, strlen(loc));
	}
	text = xasprintf("SESSION %s user=%s home=%s mail=%s %s", r->proto,
	    u->name, u->home, mail != NULL ? mail : u->mail, r->fields);
	free(mail);
	if (strlen(text) > MAILPROC_MAX_MSG) {
		log_warning("%s: session of %s too large to pass on",
		    r->proto, u->name_plain);
		free(text);
		handoff_req_reply(r, false, 0, "session too large");
		return;
	}
	/* A process that just said BYE or died gets one replacement. */
	for (attempt = 0; attempt < 2; attempt++) {
		mp = handoff_proc_find(r->proto, uid, gid);
		if (mp == NULL) {
			if (handoff_nprocs >= HANDOFF_MAX_MAIL_PROCS) {
				log_warning("%s: %zu mail processes: limit "
				    "reached, login of %s refused", r->proto,
				    handoff_nprocs, u->name_plain);
				break;
			}
			mp = handoff_proc_spawn(r->proto, u, uid, gid, &error);
			if (mp == NULL) {
				log_error("cannot start %s: %s", r->proto,
				    error);
				break;
			}
		}
		if (handoff_send(mp->fd, text, r->fd) == 0) {
			mp->sessions++;
			free(text);
			handoff_req_reply(r, true, mp->pid, NULL);
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			log_warning("%s pid %ld does not take sessions "
			    "(socket full): login of %s refused", mp->proto,
			    (long)mp->pid, u->name_plain);
			break;
		}
		handoff_proc_retire(mp);
	}
	free(text);
	handoff_req_reply(r, false, 0, "mail process unavailable");
}

/* ---- login processes ---- */

static void
handoff_login_close(struct handoff_login *l)
{
	if (l->fd < 0)
		return;
	io_remove(&l->io);
	(void)close(l->fd);
	l->fd = -1;
}

/* A login process broke the protocol: stop it (it is restarted). */
static void
handoff_login_bad(struct handoff_login *l, const char *why)
{
	log_error("%s-login pid %ld: bad hand-off message (%s): stopping it",
	    l->proto, (long)l->pid, why);
	handoff_login_close(l);
	(void)kill(l->pid, SIGTERM);
}

/*
 * A HANDOFF packet with its descriptor: checked (master_handoff_parse.c
 * for the text), made a request.  Returns NULL, or why it is malformed.
 */
static const char *
handoff_login_parse(struct handoff_login *l, char *text, int fd,
    struct handoff_req **req_r, char **ticket_r)
{
	struct master_handoff_msg m;
	struct handoff_req *r;
	struct stat st;
	int type;
	socklen_t tlen = sizeof(type);
	const char *why;

	*req_r = NULL;
	if ((why = master_handoff_parse(text, l->proto, &m)) != NULL)
		return why;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
	    type != SOCK_STREAM) {
		master_handoff_msg_free(&m);
		return "descriptor is not a stream socket";
	}
	r = xcalloc(1, sizeof(*r));
	r->login = l;
	r->login_id = m.id;
	r->fd = fd;
	str_lcpy(r->proto, l->proto, sizeof(r->proto));
	r->fields = m.fields;
	*ticket_r = m.ticket;
	*req_r = r;
	return NULL;
}

static void
handoff_login_io(int fd, int events, void *ctx)
{
	struct handoff_login *l = ctx;
	char buf[MAILPROC_MAX_MSG + 1];
	size_t i;

	(void)events;
	for (i = 0; i < HANDOFF_READ_BATCH && l->fd >= 0; i++) {
		struct handoff_req *r;
		char *ticket;
		const char *why;
		int fds[1];
		size_t nfds;
		ssize_t n;

		n = handoff_recv(fd, buf, fds, 1, &nfds);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EMSGSIZE) {
			handoff_login_bad(l, "too large or too many "
			    "descriptors");
			return;
		}
		if (n <= 0) {
			/* It exited (reaped later) or closed its end. */
			handoff_login_close(l);
			return;
		}
		if (nfds != 1) {
			handoff_login_bad(l, "no descriptor");
			return;
		}
		why = handoff_login_parse(l, buf, fds[0], &r, &ticket);
		if (why != NULL) {
			(void)close(fds[0]);
			handoff_login_bad(l, why);
			return;
		}
		r->next = handoff_reqs;
		if (handoff_reqs != NULL)
			handoff_reqs->prev = r;
		handoff_reqs = r;
		l->pending++;
		if (l->pending > HANDOFF_MAX_PENDING) {
			handoff_req_reply(r, false, 0, "too many hand-offs "
			    "in progress");
			free(ticket);
			continue;
		}
		handoff_am_ticket(r, ticket);
		explicit_bzero(ticket, strlen(ticket));
		free(ticket);
	}
}

void
master_handoff_login_add(pid_t pid, const char *proto, int fd)
{
	struct handoff_login *l = xcalloc(1, sizeof(*l));

	l->pid = pid;
	str_lcpy(l->proto, proto, sizeof(l->proto));
	l->fd = fd;
	(void)fcntl(fd, F_SETFL, O_NONBLOCK);
	l->io = io_add(fd, IOLOOP_READ, handoff_login_io, l);
	l->next = handoff_logins;
	handoff_logins = l;
}

void
master_handoff_login_gone(pid_t pid)
{
	struct handoff_login *l, **lp;
	struct handoff_req *r;

	for (lp = &handoff_logins; (l = *lp) != NULL; lp = &l->next)
		if (l->pid == pid)
			break;
	if (l == NULL)
		return;
	*lp = l->next;
	for (r = handoff_reqs; r != NULL; r = r->next)
		if (r->login == l)
			r->login = NULL;
	handoff_login_close(l);
	free(l);
}

/* ---- supervision ---- */

bool
master_handoff_reaped(pid_t pid, int status)
{
	struct mail_proc *mp, **mpp;
	char *path;

	for (mpp = &handoff_procs; (mp = *mpp) != NULL; mpp = &mp->next)
		if (mp->pid == pid)
			break;
	if (mp == NULL)
		return false;
	*mpp = mp->next;
	handoff_nprocs--;
	path = xasprintf("%s/%s", cfg_get("daemon_directory"), mp->proto);
	if (WIFSIGNALED(status) && !(master.stopping &&
	    WTERMSIG(status) == SIGTERM))
		log_warning("process %s pid %ld (user %s) killed by signal "
		    "%d", path, (long)pid, mp->user, WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_warning("process %s pid %ld (user %s) exit status %d",
		    path, (long)pid, mp->user, WEXITSTATUS(status));
	else
		log_debug("process %s pid %ld (user %s) exited after %lu "
		    "sessions", path, (long)pid, mp->user, mp->sessions);
	free(path);
	handoff_proc_retire(mp);
	free(mp->user);
	free(mp);
	return true;
}

void
master_handoff_signal(int signo)
{
	struct mail_proc *mp;

	for (mp = handoff_procs; mp != NULL; mp = mp->next)
		(void)kill(mp->pid, signo);
}

size_t
master_handoff_running(void)
{
	return handoff_nprocs;
}

void
master_handoff_stop(void)
{
	struct handoff_req *r, *next;

	for (r = handoff_reqs; r != NULL; r = next) {
		next = r->next;
		handoff_req_reply(r, false, 0, "shutting down");
	}
	handoff_am_close(NULL);
	master_handoff_signal(SIGTERM);
}
