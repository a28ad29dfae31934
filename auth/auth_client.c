/*
 * auth_client: the client side of the auth protocol (see auth_client.h,
 * doc/internals.md "Authentication").
 *
 * One connection per process.  It is opened when first needed and is
 * connecting, reading the server's mechanism list (handshake) or ready;
 * requests are written as soon as the socket is connected, since the
 * server sends its list before it reads anything.  Every request lives
 * in one of two lists: in flight (sent, waiting for the server) or
 * failing (to be failed from a zero timer, so that a callback never runs
 * inside auth_request_new() or auth_client_mechs()).  A request the
 * caller aborted stays in flight without a callback until the server
 * finishes it (a challenge it gets is answered "*"), so the server never
 * keeps an exchange nobody will finish.
 *
 * When the connection breaks, every request in flight fails with
 * TEMPFAIL "auth service unavailable"; the next request connects again.
 * The mechanism list of the last handshake stays known meanwhile.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

#include "auth_client.h"

/* How long auth_client_mechs()/auth_client_connect() may block. */
#define AUTH_CLIENT_CONNECT_MS	5000
/* A request with no word from the server this long fails (TEMPFAIL). */
#define AUTH_CLIENT_TIMEOUT_MS	(60 * 1000)
/* Pause between connection attempts while waiting for a first start. */
#define AUTH_CLIENT_RETRY_MS	50

#define AUTH_CLIENT_UNAVAILABLE	"auth service unavailable"

enum auth_client_state {
	AUTH_CLIENT_DISCONNECTED,
	AUTH_CLIENT_CONNECTING,
	AUTH_CLIENT_HANDSHAKE,
	AUTH_CLIENT_READY,
};

enum auth_request_where {
	AUTH_REQ_INFLIGHT,
	AUTH_REQ_FAILING,
};

struct auth_request {
	struct auth_request	*next;
	struct auth_request	*prev;
	enum auth_request_where	 where;
	unsigned long long	 id;
	auth_request_cb		*cb;		/* NULL: aborted */
	void			*ctx;
	/* The server sent a challenge and waits for our answer. */
	bool			 awaiting_answer;
	/* Failing: how. */
	enum auth_client_result	 fail_result;
	const char		*fail_reason;	/* static text */
	/* We cancelled the exchange ourselves; the server's FAIL is
	 * reported with this reason. */
	const char		*local_reason;
	struct timer		*timer;		/* answer timeout */
};

static struct {
	char			*path;
	enum auth_client_state	 state;
	int			 fd;
	struct io		*io;
	struct buf		 in;
	struct buf		 out;
	struct auth_request	*inflight;
	struct auth_request	*failing;
	struct timer		*fail_timer;
	struct timer		*drain_timer;	/* lines left unread */
	unsigned long long	 next_id;
	bool			 ever_ready;
	bool			 version_seen;
	/* Mechanisms of the last handshake, and the one being read. */
	char			*mechs_all;
	char			*mechs_secure;	/* no plaintext ones */
	struct buf		 hs_all;
	struct buf		 hs_secure;
} ac = { .fd = -1 };

static void auth_client_io(int fd, int events, void *ctx);
static void auth_client_disconnect(const char *why);

/* ---- request lists ---- */

static void
auth_req_unlink(struct auth_request *req)
{
	struct auth_request **head = req->where == AUTH_REQ_INFLIGHT ?
	    &ac.inflight : &ac.failing;

	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		*head = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->next = req->prev = NULL;
}

static void
auth_req_link(struct auth_request *req, enum auth_request_where where)
{
	struct auth_request **head = where == AUTH_REQ_INFLIGHT ?
	    &ac.inflight : &ac.failing;

	req->where = where;
	req->prev = NULL;
	req->next = *head;
	if (*head != NULL)
		(*head)->prev = req;
	*head = req;
}

static void
auth_req_free(struct auth_request *req)
{
	timer_remove(&req->timer);
	free(req);
}

static void
auth_client_fail_cb(void *ctx)
{
	(void)ctx;
	ac.fail_timer = NULL;
	/* Callbacks may add more failing requests: take them one by one. */
	while (ac.failing != NULL) {
		struct auth_request *req = ac.failing;

		auth_req_unlink(req);
		if (req->cb != NULL)
			req->cb(req->fail_result, NULL, NULL, req->fail_reason,
			    req->ctx);
		auth_req_free(req);
	}
}

/* Fail req from the loop with result and reason. */
static void
auth_req_fail_later(struct auth_request *req, enum auth_client_result result,
    const char *reason)
{
	timer_remove(&req->timer);
	req->fail_result = result;
	req->fail_reason = reason;
	auth_req_link(req, AUTH_REQ_FAILING);
	if (ac.fail_timer == NULL)
		ac.fail_timer = timer_add(0, auth_client_fail_cb, NULL);
}

static struct auth_request *
auth_req_find(unsigned long long id)
{
	struct auth_request *req;

	for (req = ac.inflight; req != NULL; req = req->next)
		if (req->id == id)
			return req;
	return NULL;
}

/* ---- output ---- */

static void
auth_client_update_io(void)
{
	int ev = IOLOOP_READ;

	if (ac.io == NULL)
		return;
	if (ac.state == AUTH_CLIENT_CONNECTING || ac.out.len > 0)
		ev |= IOLOOP_WRITE;
	io_set_events(ac.io, ev);
}

/* Queue a line (without LF) for the server. */
static void
auth_client_send(const char *line)
{
	buf_append_str(&ac.out, line);
	buf_append_char(&ac.out, '\n');
	auth_client_update_io();
}

/* Write what the socket takes; -1 when the connection broke. */
static int
auth_client_flush(void)
{
	ssize_t n;

	while (ac.out.len > 0) {
		n = send(ac.fd, ac.out.data, ac.out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		buf_consume(&ac.out, (size_t)n);
	}
	auth_client_update_io();
	return 0;
}

static void
auth_req_timeout_cb(void *ctx)
{
	struct auth_request *req = ctx;
	auth_request_cb *cb = req->cb;

	req->timer = NULL;
	log_warning("auth service did not answer request %llu within %d s",
	    req->id, AUTH_CLIENT_TIMEOUT_MS / 1000);
	/* The request stays, without a callback, until the server ends it. */
	req->cb = NULL;
	if (req->awaiting_answer) {
		char line[64];

		req->awaiting_answer = false;
		snprintf(line, sizeof(line), "CONT %llu *", req->id);
		auth_client_send(line);
	}
	if (cb != NULL)
		cb(AUTH_CLIENT_TEMPFAIL, NULL, NULL, "auth service timed out",
		    req->ctx);
}

static void
auth_req_arm(struct auth_request *req)
{
	timer_remove(&req->timer);
	if (req->cb != NULL)
		req->timer = timer_add(AUTH_CLIENT_TIMEOUT_MS,
		    auth_req_timeout_cb, req);
}

/* ---- the mechanism list ---- */

static void
auth_client_mech_line(char **f)
{
	bool plaintext = f[2] != NULL && strcmp(f[2], "plaintext") == 0;
	char name[64];
	size_t i;

	if (str_lcpy(name, f[1], sizeof(name)) >= sizeof(name))
		return;
	for (i = 0; name[i] != '\0'; i++) {
		if (name[i] >= 'a' && name[i] <= 'z')
			name[i] -= 'a' - 'A';
		else if (!((name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
		    name[i] == '_'))
			return;	/* not a SASL name (RFC 4422 §3.1) */
	}
	if (ac.hs_all.len > 0)
		buf_append_char(&ac.hs_all, ' ');
	buf_append_str(&ac.hs_all, name);
	if (!plaintext) {
		if (ac.hs_secure.len > 0)
			buf_append_char(&ac.hs_secure, ' ');
		buf_append_str(&ac.hs_secure, name);
	}
}

static void
auth_client_ready(void)
{
	free(ac.mechs_all);
	free(ac.mechs_secure);
	ac.mechs_all = xstrdup(buf_cstr(&ac.hs_all));
	ac.mechs_secure = xstrdup(buf_cstr(&ac.hs_secure));
	buf_reset(&ac.hs_all);
	buf_reset(&ac.hs_secure);
	ac.state = AUTH_CLIENT_READY;
	ac.ever_ready = true;
}

/* ---- replies ---- */

/* The value of "key=..." among fields f (xtext-decoded, malloc'ed). */
static char *
auth_client_field(char **f, const char *key, bool *bad)
{
	size_t klen = strlen(key);
	char *v;

	for (; *f != NULL; f++) {
		if (strncmp(*f, key, klen) == 0 && (*f)[klen] == '=') {
			v = xtext_decode(*f + klen + 1);
			if (v == NULL)
				*bad = true;
			return v;
		}
	}
	return NULL;
}

static bool
auth_client_has_flag(char **f, const char *flag)
{
	for (; *f != NULL; f++)
		if (strcmp(*f, flag) == 0)
			return true;
	return false;
}

/* CONT, OK or FAIL for a request.  Returns 0, or -1 if malformed. */
static int
auth_client_reply(char **f, size_t n)
{
	struct auth_request *req;
	long long id;
	char *user = NULL, *ticket = NULL, *reason = NULL;
	bool bad = false;

	if (n < 2 || str_to_ll(f[1], 0, LLONG_MAX, &id) < 0 ||
	    (req = auth_req_find((unsigned long long)id)) == NULL)
		return -1;
	if (strcmp(f[0], "CONT") == 0) {
		char line[64];

		if (n > 3 || req->awaiting_answer)
			return -1;
		timer_remove(&req->timer);
		if (req->cb == NULL) {
			/* Aborted: end the exchange on the server. */
			snprintf(line, sizeof(line), "CONT %llu *", req->id);
			auth_client_send(line);
			return 0;
		}
		req->awaiting_answer = true;
		req->cb(AUTH_CLIENT_CONTINUE, NULL, n == 3 ? f[2] : "", NULL,
		    req->ctx);
		return 0;
	}
	if (strcmp(f[0], "OK") == 0) {
		user = auth_client_field(f + 2, "user", &bad);
		ticket = auth_client_field(f + 2, "ticket", &bad);
		if (bad || user == NULL) {
			free(user);
			free(ticket);
			return -1;
		}
		auth_req_unlink(req);
		if (req->cb != NULL)
			req->cb(AUTH_CLIENT_OK, user, ticket, NULL, req->ctx);
	} else if (strcmp(f[0], "FAIL") == 0) {
		bool temp = auth_client_has_flag(f + 2, "temp");

		user = auth_client_field(f + 2, "user", &bad);
		reason = auth_client_field(f + 2, "reason", &bad);
		if (bad) {
			free(user);
			free(reason);
			return -1;
		}
		auth_req_unlink(req);
		if (req->cb != NULL)
			req->cb(temp ? AUTH_CLIENT_TEMPFAIL : AUTH_CLIENT_FAIL,
			    user, NULL, req->local_reason != NULL ?
			    req->local_reason : reason, req->ctx);
	} else
		return -1;
	auth_req_free(req);
	free(user);
	free(ticket);
	free(reason);
	return 0;
}

/*
 * One line from the server.  Returns 0, 1 when the handshake just ended
 * (DONE), -1 for a protocol error.
 */
static int
auth_client_line(const char *line)
{
	char **f = strv_split(line, " ");
	size_t n = strv_len(f);
	int ret = 0;

	if (n == 0)
		ret = -1;
	else if (ac.state == AUTH_CLIENT_HANDSHAKE) {
		if (strcmp(f[0], "VERSION") == 0 && n >= 2 &&
		    !ac.version_seen) {
			/* Same major version; minor additions are fine. */
			if (strcmp(f[1], "1") != 0 &&
			    strncmp(f[1], "1.", 2) != 0) {
				log_error("auth service speaks protocol "
				    "version %.20s, not 1", f[1]);
				ret = -1;
			}
			ac.version_seen = true;
		} else if (strcmp(f[0], "MECH") == 0 && n >= 2 &&
		    ac.version_seen)
			auth_client_mech_line(f);
		else if (strcmp(f[0], "DONE") == 0 && ac.version_seen) {
			auth_client_ready();
			ret = 1;
		} else if (!ac.version_seen)
			ret = -1;
		/* Other lines in the handshake: later additions. */
	} else if (ac.state == AUTH_CLIENT_READY)
		ret = auth_client_reply(f, n);
	else
		ret = -1;
	strv_free(&f);
	return ret;
}

/*
 * Handle the complete lines in ac.in.  handshake_only: stop after DONE
 * (the rest waits for the loop).  Returns 0, or -1 after a protocol
 * error (the connection is then closed).
 */
static int
auth_client_lines(bool handshake_only)
{
	char *nl, *line;
	int ret;

	while (ac.state != AUTH_CLIENT_DISCONNECTED &&
	    (nl = memchr(ac.in.data, '\n', ac.in.len)) != NULL) {
		size_t len = (size_t)(nl - ac.in.data);

		if (memchr(ac.in.data, '\0', len) != NULL) {
			auth_client_disconnect("NUL byte in a reply");
			return -1;
		}
		line = xstrndup(ac.in.data, len);
		buf_consume(&ac.in, len + 1);
		ret = auth_client_line(line);
		free(line);
		if (ret < 0) {
			auth_client_disconnect("malformed reply");
			return -1;
		}
		if (ret == 1 && handshake_only)
			return 0;
	}
	if (ac.state != AUTH_CLIENT_DISCONNECTED &&
	    ac.in.len > MAX_IPC_LINE) {
		auth_client_disconnect("reply line too long");
		return -1;
	}
	return 0;
}

static void
auth_client_drain_cb(void *ctx)
{
	(void)ctx;
	ac.drain_timer = NULL;
	(void)auth_client_lines(false);
	if (ac.state != AUTH_CLIENT_DISCONNECTED && auth_client_flush() < 0)
		auth_client_disconnect(strerror(errno));
}

/*
 * One read (the lines are handled before the next, which keeps the
 * buffer bounded).  0 ok, -1 when the connection ended (closed).
 */
static int
auth_client_read(void)
{
	ssize_t n;

	if (buf_reserve(&ac.in, 4096) < 0) {
		auth_client_disconnect("reply line too long");
		return -1;
	}
	do {
		n = read(ac.fd, ac.in.data + ac.in.len, 4096);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		auth_client_disconnect(strerror(errno));
		return -1;
	}
	if (n == 0) {
		auth_client_disconnect("connection closed");
		return -1;
	}
	ac.in.len += (size_t)n;
	return 0;
}

/* ---- the connection ---- */

static void
auth_client_disconnect(const char *why)
{
	struct auth_request *req;

	if (ac.state == AUTH_CLIENT_DISCONNECTED)
		return;
	if (ac.state == AUTH_CLIENT_READY || ac.inflight != NULL)
		log_warning("auth service %s: %s", ac.path, why);
	io_remove(&ac.io);
	timer_remove(&ac.drain_timer);
	(void)close(ac.fd);
	ac.fd = -1;
	ac.state = AUTH_CLIENT_DISCONNECTED;
	buf_reset(&ac.in);
	buf_reset(&ac.out);
	buf_reset(&ac.hs_all);
	buf_reset(&ac.hs_secure);
	while ((req = ac.inflight) != NULL) {
		auth_req_unlink(req);
		auth_req_fail_later(req, AUTH_CLIENT_TEMPFAIL,
		    AUTH_CLIENT_UNAVAILABLE);
	}
}

/* The connect finished (writable while connecting): 0, or -1 closed. */
static int
auth_client_connected(void)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(ac.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		auth_client_disconnect(strerror(err));
		return -1;
	}
	ac.state = AUTH_CLIENT_HANDSHAKE;
	auth_client_update_io();
	return 0;
}

static void
auth_client_io(int fd, int events, void *ctx)
{
	(void)fd;
	(void)ctx;
	if (ac.state == AUTH_CLIENT_CONNECTING) {
		if ((events & (IOLOOP_WRITE | IOLOOP_READ)) == 0 ||
		    auth_client_connected() < 0)
			return;
	}
	if ((events & IOLOOP_WRITE) && auth_client_flush() < 0) {
		auth_client_disconnect(strerror(errno));
		return;
	}
	if (events & IOLOOP_READ) {
		if (auth_client_read() < 0)
			return;
		if (auth_client_lines(false) < 0)
			return;
	}
	if (ac.state != AUTH_CLIENT_DISCONNECTED && auth_client_flush() < 0)
		auth_client_disconnect(strerror(errno));
}

/* Start connecting (non-blocking).  0, or -1 when it failed at once. */
static int
auth_client_open(void)
{
	struct sockaddr_un sun;
	int fd;

	if (ac.state != AUTH_CLIENT_DISCONNECTED)
		return 0;
	if (ac.path == NULL) {
		errno = EINVAL;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_lcpy(sun.sun_path, ac.path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ac.state = AUTH_CLIENT_HANDSHAKE;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		/* EAGAIN: the listen queue is full, nothing in progress. */
		if (errno != EINPROGRESS) {
			int e = errno;

			(void)close(fd);
			ac.state = AUTH_CLIENT_DISCONNECTED;
			errno = e;
			return -1;
		}
		ac.state = AUTH_CLIENT_CONNECTING;
	}
	ac.fd = fd;
	ac.version_seen = false;
	buf_reset(&ac.in);
	buf_reset(&ac.out);
	buf_reset(&ac.hs_all);
	buf_reset(&ac.hs_secure);
	ac.io = io_add(fd, IOLOOP_READ, auth_client_io, NULL);
	auth_client_update_io();
	return 0;
}

static uint64_t
auth_client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Block until the handshake is done or timeout_ms passed.  Before the
 * first successful handshake a refused connection is retried (the auth
 * service may be starting right now); later a refusal ends the wait.
 * Only handshake lines are handled here: replies stay buffered for the
 * loop, so no callback runs inside this call.
 */
static int
auth_client_wait_ready(int timeout_ms)
{
	uint64_t deadline = auth_client_now_ms() + (uint64_t)timeout_ms;

	while (ac.state != AUTH_CLIENT_READY) {
		uint64_t now = auth_client_now_ms();
		struct pollfd pfd;
		int r;

		if (now >= deadline)
			return -1;
		if (ac.state == AUTH_CLIENT_DISCONNECTED) {
			if (auth_client_open() < 0) {
				if (ac.ever_ready || now + AUTH_CLIENT_RETRY_MS
				    >= deadline)
					return -1;
				(void)poll(NULL, 0, AUTH_CLIENT_RETRY_MS);
			}
			continue;
		}
		pfd.fd = ac.fd;
		pfd.events = ac.state == AUTH_CLIENT_CONNECTING ? POLLOUT :
		    POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		if (ac.state == AUTH_CLIENT_CONNECTING) {
			(void)auth_client_connected();
			continue;
		}
		if (auth_client_read() < 0 || auth_client_lines(true) < 0) {
			if (ac.ever_ready)
				return -1;
			continue;
		}
	}
	if (ac.in.len > 0 && ac.drain_timer == NULL)
		ac.drain_timer = timer_add(0, auth_client_drain_cb, NULL);
	return 0;
}

/* ---- API ---- */

void
auth_client_init(const char *socket_path)
{
	ioloop_init();
	free(ac.path);
	if (socket_path[0] == '/')
		ac.path = xstrdup(socket_path);
	else
		ac.path = xasprintf("%s/%s", cfg_get("queue_directory"),
		    socket_path);
	if (ac.in.max == 0) {
		/* A line, its LF, and one read's worth of the next. */
		buf_init(&ac.in, MAX_IPC_LINE + 1 + 4096);
		buf_init(&ac.out, 0);
		buf_init(&ac.hs_all, 0);
		buf_init(&ac.hs_secure, 0);
	}
}

int
auth_client_connect(void)
{
	return auth_client_wait_ready(AUTH_CLIENT_CONNECT_MS);
}

void
auth_client_deinit(void)
{
	struct auth_request *req;

	if (ac.state != AUTH_CLIENT_DISCONNECTED) {
		io_remove(&ac.io);
		(void)close(ac.fd);
		ac.fd = -1;
		ac.state = AUTH_CLIENT_DISCONNECTED;
	}
	timer_remove(&ac.drain_timer);
	timer_remove(&ac.fail_timer);
	while ((req = ac.inflight) != NULL) {
		auth_req_unlink(req);
		auth_req_free(req);
	}
	while ((req = ac.failing) != NULL) {
		auth_req_unlink(req);
		auth_req_free(req);
	}
	buf_free(&ac.in);
	buf_free(&ac.out);
	buf_free(&ac.hs_all);
	buf_free(&ac.hs_secure);
	free(ac.path);
	free(ac.mechs_all);
	free(ac.mechs_secure);
	ac.path = ac.mechs_all = ac.mechs_secure = NULL;
	ac.ever_ready = false;
}

const char *
auth_client_mechs(bool plaintext_ok)
{
	if (ac.state != AUTH_CLIENT_READY &&
	    auth_client_wait_ready(AUTH_CLIENT_CONNECT_MS) < 0)
		return "";
	if (plaintext_ok)
		return ac.mechs_all != NULL ? ac.mechs_all : "";
	return ac.mechs_secure != NULL ? ac.mechs_secure : "";
}

bool
auth_client_mech_offered(const char *mech, bool plaintext_ok)
{
	const char *list = auth_client_mechs(plaintext_ok), *p = list;
	size_t len = strlen(mech);

	if (len == 0)
		return false;
	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t wlen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (wlen == len && strncasecmp(p, mech, len) == 0)
			return true;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return false;
}

/*
 * Whether s is one protocol field of base64 text: the base64 alphabet
 * only (RFC 4648 §4), so it can never split the line.
 */
static bool
auth_client_b64_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '+' || *s == '/' ||
		    *s == '='))
			return false;
	}
	return true;
}

static void
auth_client_add_field(struct buf *b, const char *key, const char *value)
{
	char *x = xtext_encode(value, strlen(value));

	buf_printf(b, " %s=%s", key, x);
	free(x);
}

struct auth_request *
auth_request_new(const char *mech, const struct auth_request_info *info,
    const char *initial, auth_request_cb *cb, void *ctx)
{
	struct auth_request *req = xcalloc(1, sizeof(*req));
	struct buf line;
	char *xmech;

	req->id = ++ac.next_id;
	req->cb = cb;
	req->ctx = ctx;
	if (initial != NULL && (!auth_client_b64_ok(initial) ||
	    initial[0] == '\0')) {
		auth_req_fail_later(req, AUTH_CLIENT_FAIL,
		    "invalid base64 in the initial response");
		return req;
	}
	buf_init(&line, 0);
	xmech = xtext_encode(mech, strlen(mech));
	buf_printf(&line, "AUTH %llu %s", req->id, xmech);
	free(xmech);
	auth_client_add_field(&line, "service",
	    info->service != NULL ? info->service : "smtp");
	if (info->rip != NULL && info->rip[0] != '\0')
		auth_client_add_field(&line, "rip", info->rip);
	if (info->lip != NULL && info->lip[0] != '\0')
		auth_client_add_field(&line, "lip", info->lip);
	if (info->secured)
		buf_append_str(&line, " secured");
	if (initial != NULL)
		buf_printf(&line, " resp=%s", initial);
	if (line.len > MAX_IPC_LINE) {
		buf_free(&line);
		auth_req_fail_later(req, AUTH_CLIENT_FAIL,
		    "initial response too long");
		return req;
	}
	if (ac.state == AUTH_CLIENT_DISCONNECTED && auth_client_open() < 0) {
		log_warning("auth service %s: connect: %s",
		    ac.path != NULL ? ac.path : "(not configured)",
		    strerror(errno));
		buf_free(&line);
		auth_req_fail_later(req, AUTH_CLIENT_TEMPFAIL,
		    AUTH_CLIENT_UNAVAILABLE);
		return req;
	}
	auth_req_link(req, AUTH_REQ_INFLIGHT);
	auth_client_send(buf_cstr(&line));
	buf_free(&line);
	auth_req_arm(req);
	return req;
}

void
auth_request_continue(struct auth_request *req, const char *line)
{
	char head[64];

	if (req->where != AUTH_REQ_INFLIGHT || !req->awaiting_answer) {
		log_error("auth request %llu: answer without a challenge",
		    req->id);
		return;
	}
	req->awaiting_answer = false;
	snprintf(head, sizeof(head), "CONT %llu", req->id);
	if (strcmp(line, "*") == 0 || line[0] == '\0') {
		/* Cancel, or an empty response: no data field. */
		buf_append_str(&ac.out, head);
		if (line[0] != '\0')
			buf_append_str(&ac.out, " *");
	} else if (!auth_client_b64_ok(line) ||
	    strlen(line) > MAX_IPC_LINE - strlen(head) - 2) {
		/* Never sent: the server ends the exchange, we say why. */
		req->local_reason = auth_client_b64_ok(line) ?
		    "response too long" : "invalid base64 in the response";
		buf_printf(&ac.out, "%s *", head);
	} else
		buf_printf(&ac.out, "%s %s", head, line);
	buf_append_char(&ac.out, '\n');
	auth_client_update_io();
	auth_req_arm(req);
}

void
auth_request_abort(struct auth_request **reqp)
{
	struct auth_request *req = *reqp;
	char line[64];

	if (req == NULL)
		return;
	*reqp = NULL;
	if (req->where == AUTH_REQ_FAILING) {
		auth_req_unlink(req);
		auth_req_free(req);
		return;
	}
	/* In flight: the server's answer is read and dropped. */
	req->cb = NULL;
	timer_remove(&req->timer);
	if (req->awaiting_answer) {
		req->awaiting_answer = false;
		snprintf(line, sizeof(line), "CONT %llu *", req->id);
		auth_client_send(line);
	}
}
