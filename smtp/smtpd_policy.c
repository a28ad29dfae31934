/*
 * smtpd_policy: the client of Postfix's policy delegation protocol
 * (check_policy_service), so policy servers written for Postfix, such as
 * postgrey, work unchanged.
 *
 * A request is a block of "name=value" lines ended by an empty line; the
 * server answers with such a block holding "action=...", which smtpd
 * reads as an access(5) table result.  Servers are reached over
 * "inet:host:port" or "unix:/path" ("unix:private/x" is relative to
 * $queue_directory, as in Postfix).
 *
 * Queries run in worker threads (smtpd_check.c): they block, with every
 * step bounded by $smtpd_policy_service_timeout.  Connections are kept
 * open for the next request, at most SMTPD_POLICY_MAX_IDLE per server, and
 * closed after $smtpd_policy_service_max_idle seconds unused or
 * $smtpd_policy_service_max_ttl seconds of age.  A failed exchange is
 * tried again on a new connection, up to $smtpd_policy_service_try_limit
 * times $smtpd_policy_service_retry_delay apart; then the caller uses
 * $smtpd_policy_service_default_action.
 *
 * The server's answer is bounded (SMTPD_POLICY_MAX_REPLY bytes); anything
 * else in it than attribute lines is a protocol error.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

/* Idle connections kept per server. */
#define SMTPD_POLICY_MAX_IDLE	16
/* Bytes of one answer (Postfix's attribute lines are short). */
#define SMTPD_POLICY_MAX_REPLY	8192
/* Bytes of the "host" or "/path" part of an endpoint. */
#define SMTPD_POLICY_MAX_ENDPOINT 512

struct smtpd_policy_conn {
	int		 fd;
	time_t		 born;
	time_t		 used;
	unsigned	 requests;
};

struct smtpd_policy_server {
	char		*spec;
	bool		 inet;
	char		*host;		/* inet */
	char		*port;
	char		*path;		/* unix */
	uint64_t	 timeout_ms;
	time_t		 max_idle;
	time_t		 max_ttl;
	unsigned	 try_limit;
	uint64_t	 retry_delay_ms;
	unsigned	 request_limit;	/* 0: unlimited */
	char		*def_action;
	pthread_mutex_t	 lock;
	struct smtpd_policy_conn idle[SMTPD_POLICY_MAX_IDLE];
	size_t		 nidle;
};

static uint64_t
smtpd_policy_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static time_t
smtpd_policy_now(void)
{
	return (time_t)(smtpd_policy_now_ms() / 1000);
}

struct smtpd_policy_server *
smtpd_policy_server_new(const char *spec, const char **error_r)
{
	struct smtpd_policy_server *ps;
	const char *rest;

	if (strncmp(spec, "inet:", 5) != 0 && strncmp(spec, "unix:", 5) != 0) {
		*error_r = "expected inet:host:port or unix:path";
		return NULL;
	}
	rest = spec + 5;
	if (rest[0] == '\0' || strlen(rest) > SMTPD_POLICY_MAX_ENDPOINT) {
		*error_r = "bad endpoint";
		return NULL;
	}
	ps = xcalloc(1, sizeof(*ps));
	ps->spec = xstrdup(spec);
	if (spec[0] == 'i') {
		const char *colon;

		ps->inet = true;
		if (rest[0] == '[') {
			const char *end = strchr(rest, ']');

			if (end == NULL || end[1] != ':') {
				*error_r = "bad [address]:port";
				goto fail;
			}
			ps->host = xstrndup(rest + 1, (size_t)(end - rest - 1));
			colon = end + 1;
		} else {
			colon = strrchr(rest, ':');
			if (colon == NULL) {
				*error_r = "missing :port";
				goto fail;
			}
			ps->host = xstrndup(rest, (size_t)(colon - rest));
		}
		if (colon[1] == '\0' || ps->host[0] == '\0') {
			*error_r = "missing host or port";
			goto fail;
		}
		ps->port = xstrdup(colon + 1);
	} else if (rest[0] == '/')
		ps->path = xstrdup(rest);
	else
		ps->path = xasprintf("%s/%s", cfg_get("queue_directory"), rest);
	if (ps->path != NULL &&
	    strlen(ps->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*error_r = "socket path too long";
		goto fail;
	}
	ps->timeout_ms = (uint64_t)cfg_get_time("smtpd_policy_service_timeout")
	    * 1000;
	if (ps->timeout_ms == 0)
		ps->timeout_ms = 1000;
	ps->max_idle = (time_t)cfg_get_time("smtpd_policy_service_max_idle");
	ps->max_ttl = (time_t)cfg_get_time("smtpd_policy_service_max_ttl");
	ps->try_limit = (unsigned)cfg_get_int("smtpd_policy_service_try_limit");
	ps->retry_delay_ms =
	    (uint64_t)cfg_get_time("smtpd_policy_service_retry_delay") * 1000;
	ps->request_limit =
	    (unsigned)cfg_get_int("smtpd_policy_service_request_limit");
	ps->def_action =
	    xstrdup(cfg_get("smtpd_policy_service_default_action"));
	pthread_mutex_init(&ps->lock, NULL);
	return ps;
fail:
	free(ps->spec);
	free(ps->host);
	free(ps->port);
	free(ps->path);
	free(ps);
	return NULL;
}

void
smtpd_policy_server_free(struct smtpd_policy_server **psp)
{
	struct smtpd_policy_server *ps = *psp;
	size_t i;

	if (ps == NULL)
		return;
	*psp = NULL;
	for (i = 0; i < ps->nidle; i++)
		close(ps->idle[i].fd);
	pthread_mutex_destroy(&ps->lock);
	free(ps->spec);
	free(ps->host);
	free(ps->port);
	free(ps->path);
	free(ps->def_action);
	free(ps);
}

const char *
smtpd_policy_server_spec(const struct smtpd_policy_server *ps)
{
	return ps->spec;
}

const char *
smtpd_policy_default_action(const struct smtpd_policy_server *ps)
{
	return ps->def_action;
}

void
smtpd_policy_attr(struct buf *b, const char *name, const char *value)
{
	const char *p;

	buf_append_str(b, name);
	buf_append_char(b, '=');
	/* A value never holds a line end (it would end the attribute or the
	 * request); client text that does is not sent as it is. */
	for (p = value != NULL ? value : ""; *p != '\0'; p++)
		buf_append_char(b, *p == '\n' || *p == '\r' ? '?' : *p);
	buf_append_char(b, '\n');
}

/* Wait for events on fd until deadline; 1 ready, 0 timeout, -1 error. */
static int
smtpd_policy_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = smtpd_policy_now_ms();
		struct pollfd pfd;
		int r;

		if (now >= deadline)
			return 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		return 1;
	}
}

static int
smtpd_policy_connect_addr(const struct sockaddr *sa, socklen_t len,
    uint64_t deadline, const char **why_r)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	int err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0) {
		*why_r = "socket failed";
		return -1;
	}
	if (connect(fd, sa, len) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		*why_r = "connection refused";
		close(fd);
		return -1;
	}
	if (smtpd_policy_wait(fd, POLLOUT, deadline) != 1) {
		*why_r = "connect timeout";
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 ||
	    err != 0) {
		*why_r = "connection refused";
		close(fd);
		return -1;
	}
	return fd;
}

static int
smtpd_policy_connect(struct smtpd_policy_server *ps, uint64_t deadline,
    const char **why_r)
{
	if (!ps->inet) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		str_lcpy(sun.sun_path, ps->path, sizeof(sun.sun_path));
		return smtpd_policy_connect_addr((struct sockaddr *)&sun,
		    sizeof(sun), deadline, why_r);
	} else {
		struct addrinfo hints, *res = NULL, *ai;
		int fd = -1;

		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_ADDRCONFIG;
		if (getaddrinfo(ps->host, ps->port, &hints, &res) != 0 ||
		    res == NULL) {
			*why_r = "host or service not found";
			return -1;
		}
		for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
			fd = smtpd_policy_connect_addr(ai->ai_addr,
			    ai->ai_addrlen, deadline, why_r);
		freeaddrinfo(res);
		return fd;
	}
}

/* An idle connection still worth using, or -1. */
static int
smtpd_policy_take_idle(struct smtpd_policy_server *ps,
    struct smtpd_policy_conn *c)
{
	time_t now = smtpd_policy_now();
	int fd = -1;

	pthread_mutex_lock(&ps->lock);
	while (ps->nidle > 0 && fd < 0) {
		*c = ps->idle[--ps->nidle];
		if ((ps->max_idle > 0 && now - c->used > ps->max_idle) ||
		    (ps->max_ttl > 0 && now - c->born > ps->max_ttl))
			close(c->fd);
		else
			fd = c->fd;
	}
	pthread_mutex_unlock(&ps->lock);
	return fd;
}

static void
smtpd_policy_put_idle(struct smtpd_policy_server *ps,
    struct smtpd_policy_conn *c)
{
	c->used = smtpd_policy_now();
	if (ps->request_limit > 0 && c->requests >= ps->request_limit) {
		close(c->fd);
		return;
	}
	pthread_mutex_lock(&ps->lock);
	if (ps->nidle < SMTPD_POLICY_MAX_IDLE) {
		ps->idle[ps->nidle++] = *c;
		c = NULL;
	}
	pthread_mutex_unlock(&ps->lock);
	if (c != NULL)
		close(c->fd);
}

static int
smtpd_policy_send(int fd, const char *data, size_t len, uint64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    smtpd_policy_wait(fd, POLLOUT, deadline) == 1)
			continue;
		return -1;
	}
	return 0;
}

int
smtpd_policy_parse_reply(const char *data, size_t len, char **action_r)
{
	const char *p = data, *end = data + len;

	*action_r = NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t llen;

		if (nl == NULL)
			break;
		llen = (size_t)(nl - p);
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if (llen == 0) {
			if (*action_r == NULL)
				return -1;	/* no action= */
			return 0;
		}
		if (memchr(p, '=', llen) == NULL || memchr(p, '\0', llen)) {
			free(*action_r);
			*action_r = NULL;
			return -1;
		}
		if (llen >= 7 && memcmp(p, "action=", 7) == 0) {
			free(*action_r);
			*action_r = xstrndup(p + 7, llen - 7);
		}
		p = nl + 1;
	}
	free(*action_r);
	*action_r = NULL;
	return -1;
}

/* Read until the empty line; 0 with *action_r, -1 with *why_r. */
static int
smtpd_policy_recv(int fd, uint64_t deadline, char **action_r,
    const char **why_r)
{
	char buf[SMTPD_POLICY_MAX_REPLY];
	size_t len = 0;

	for (;;) {
		ssize_t n;

		if (len >= 2 && ((buf[len - 1] == '\n' &&
		    buf[len - 2] == '\n') || (len >= 4 &&
		    memcmp(buf + len - 4, "\r\n\r\n", 4) == 0))) {
			if (smtpd_policy_parse_reply(buf, len, action_r) < 0) {
				*why_r = "malformed response";
				return -1;
			}
			return 0;
		}
		if (len == sizeof(buf)) {
			*why_r = "response too long";
			return -1;
		}
		n = recv(fd, buf + len, 1, 0);
		if (n > 0) {
			len++;
			continue;
		}
		if (n == 0) {
			*why_r = "connection closed by server";
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int r = smtpd_policy_wait(fd, POLLIN, deadline);

			if (r == 1)
				continue;
			*why_r = r == 0 ? "timeout" : "read error";
			return -1;
		}
		*why_r = "read error";
		return -1;
	}
}

int
smtpd_policy_query(struct smtpd_policy_server *ps, const char *request,
    char **action_r, char *why, size_t why_size)
{
	int try, tries = ps->try_limit > 0 ? (int)ps->try_limit : 1;
	const char *w = "no attempt";

	*action_r = NULL;
	for (try = 0; try < tries; try++) {
		uint64_t deadline = smtpd_policy_now_ms() + ps->timeout_ms;
		struct smtpd_policy_conn c;
		bool reused = true;

		if (try > 0 && ps->retry_delay_ms > 0) {
			struct timespec ts;

			ts.tv_sec = (time_t)(ps->retry_delay_ms / 1000);
			ts.tv_nsec = (long)(ps->retry_delay_ms % 1000) *
			    1000000;
			nanosleep(&ts, NULL);
		}
		memset(&c, 0, sizeof(c));
		c.fd = smtpd_policy_take_idle(ps, &c);
		if (c.fd < 0) {
			reused = false;
			c.fd = smtpd_policy_connect(ps, deadline, &w);
			if (c.fd < 0)
				continue;
			c.born = smtpd_policy_now();
		}
		if (smtpd_policy_send(c.fd, request, strlen(request),
		    deadline) < 0) {
			w = "write error";
			close(c.fd);
			/* A kept connection the server closed meanwhile is
			 * no failure of the server: try a new one now. */
			if (reused)
				try--;
			continue;
		}
		if (smtpd_policy_recv(c.fd, deadline, action_r, &w) < 0) {
			close(c.fd);
			if (reused && strcmp(w, "connection closed by server")
			    == 0)
				try--;
			continue;
		}
		c.requests++;
		smtpd_policy_put_idle(ps, &c);
		return 0;
	}
	str_lcpy(why, w, why_size);
	return -1;
}
