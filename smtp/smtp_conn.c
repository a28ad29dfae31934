/*
 * smtp_conn: the socket of one outbound SMTP session (see smtp.h):
 * connect with a timeout, read replies and write commands with poll()
 * timeouts, plaintext or TLS through common/tls (whose calls never block:
 * EAGAIN is turned into a poll for what OpenSSL wants), and the cache of
 * idle sessions per next hop with its expiry thread.
 *
 * Wording of errors is Postfix's where admins know it ("connect to
 * host[ip]:port: Connection refused"); the dialogue (smtp_proto.c) adds
 * the stage for timeouts and lost connections.  Nothing here logs.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "smtp.h"
#include "str.h"
#include "tls.h"
#include "xmalloc.h"

uint64_t
smtp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 3, 4)))
smtp_conn_error(struct smtp_conn *c, enum smtp_conn_err kind,
    const char *fmt, ...)
{
	va_list ap;

	c->err = kind;
	va_start(ap, fmt);
	(void)vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/*
 * Wait until fd is ready for events or the deadline passes.  1 ready,
 * 0 timeout, -1 error (errno).
 */
static int
smtp_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = smtp_now_ms();
		int r, ms;

		if (now >= deadline)
			return 0;
		ms = deadline - now > 60000 ? 60000 : (int)(deadline - now);
		r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 1;
	}
}

static short
smtp_tls_events(const struct tls_conn *t)
{
	return tls_conn_want(t) == IOLOOP_WRITE ? POLLOUT : POLLIN;
}

/* ---- connect ---- */

static int
smtp_bind_source(int fd, int family, const struct smtp_settings *set)
{
	const char *src = family == AF_INET6 ? set->bind6 : set->bind4;
	struct sockaddr_storage ss;
	socklen_t len;

	if (src == NULL)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, src, &s6->sin6_addr) != 1)
			return -1;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, src, &s4->sin_addr) != 1)
			return -1;
		len = sizeof(*s4);
	}
	return bind(fd, (struct sockaddr *)&ss, len);
}

struct smtp_conn *
smtp_conn_connect(const struct smtp_settings *set, const struct sockaddr *sa,
    socklen_t salen, const char *host, char *errbuf, size_t errsize)
{
	struct smtp_conn *c;
	char ip[INET6_ADDRSTRLEN + 1], port[16];
	uint64_t deadline;
	socklen_t elen;
	int fd, err = 0, r;

	if (getnameinfo(sa, salen, ip, sizeof(ip), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		(void)snprintf(errbuf, errsize, "connect to %s: bad address",
		    host);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = -1;
	buf_init(&c->in, SMTP_MAX_INBUF);
	(void)str_lcpy(c->host, host, sizeof(c->host));
	(void)str_lcpy(c->ip, ip, sizeof(c->ip));
	c->port = (unsigned)strtoul(port, NULL, 10);
	(void)snprintf(c->hostip, sizeof(c->hostip), "%s[%s]", c->host,
	    c->ip);
	(void)snprintf(c->relay, sizeof(c->relay), "%s:%u", c->hostip,
	    c->port);
	c->born_ms = smtp_now_ms();

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	c->fd = fd;
	if (smtp_bind_source(fd, sa->sa_family, set) < 0) {
		err = errno != 0 ? errno : EINVAL;
		(void)snprintf(errbuf, errsize, "connect to %s: cannot bind "
		    "to the source address: %s", c->relay, strerror(err));
		smtp_conn_free(&c);
		return NULL;
	}
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			err = errno;
			goto fail;
		}
		deadline = smtp_now_ms() + (uint64_t)set->connect_timeout *
		    1000;
		r = smtp_wait(fd, POLLOUT, deadline);
		if (r == 0) {
			err = ETIMEDOUT;
			goto fail;
		}
		if (r < 0) {
			err = errno;
			goto fail;
		}
		elen = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err != 0)
			goto fail;
	}
	return c;
fail:
	(void)snprintf(errbuf, errsize, "connect to %s: %s", c->relay,
	    strerror(err));
	smtp_conn_free(&c);
	return NULL;
}

void
smtp_conn_free(struct smtp_conn **cp)
{
	struct smtp_conn *c = *cp;

	if (c == NULL)
		return;
	if (c->tls != NULL) {
		/* close_notify if it fits in the socket buffer; no wait. */
		(void)tls_conn_shutdown(c->tls);
		tls_conn_free(&c->tls);
	}
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->in);
	smtp_features_free(&c->feat);
	free(c->tls_info);
	free(c->nexthop);
	free(c);
	*cp = NULL;
}

/* ---- reading ---- */

/* Read more input before deadline.  1 got bytes, -1 error (c->error). */
static int
smtp_conn_fill(struct smtp_conn *c, uint64_t deadline)
{
	for (;;) {
		char tmp[4096];
		size_t room = sizeof(tmp);
		ssize_t n;
		int r;

		if (c->in.max - c->in.len < room)
			room = c->in.max - c->in.len;
		if (room == 0) {
			smtp_conn_error(c, SMTP_CONN_PROTO,
			    "reply line too long");
			return -1;
		}
		if (c->tls != NULL)
			n = tls_conn_read(c->tls, tmp, room);
		else
			n = read(c->fd, tmp, room);
		if (n > 0) {
			(void)buf_append(&c->in, tmp, (size_t)n);
			return 1;
		}
		if (n == 0) {
			smtp_conn_error(c, SMTP_CONN_LOST, "lost connection");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			smtp_conn_error(c, SMTP_CONN_LOST, "lost connection: "
			    "%s", c->tls != NULL ? tls_conn_error(c->tls) :
			    strerror(errno));
			return -1;
		}
		r = smtp_wait(c->fd, c->tls != NULL ? smtp_tls_events(c->tls) :
		    POLLIN, deadline);
		if (r == 0) {
			smtp_conn_error(c, SMTP_CONN_TIMEOUT, "timed out");
			return -1;
		}
		if (r < 0) {
			smtp_conn_error(c, SMTP_CONN_LOST, "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
}

int
smtp_conn_read_reply(struct smtp_conn *c, struct smtp_reply *r,
    unsigned timeout)
{
	uint64_t deadline = smtp_now_ms() + (uint64_t)timeout * 1000;

	smtp_reply_reset(r);
	for (;;) {
		char *nl = NULL;
		size_t len;
		const char *why;
		int ret;

		while (c->in.len == 0 ||
		    (nl = memchr(c->in.data, '\n', c->in.len)) == NULL) {
			if (c->in.len > SMTP_MAX_REPLY_LINE + 1) {
				smtp_conn_error(c, SMTP_CONN_PROTO,
				    "reply line too long");
				return -1;
			}
			if (smtp_conn_fill(c, deadline) < 0)
				return -1;
		}
		len = (size_t)(nl - c->in.data);
		if (len > SMTP_MAX_REPLY_LINE + 1) {
			smtp_conn_error(c, SMTP_CONN_PROTO,
			    "reply line too long");
			return -1;
		}
		ret = smtp_reply_add_line(r, c->in.data,
		    len > 0 && c->in.data[len - 1] == '\r' ? len - 1 : len,
		    &why);
		buf_consume(&c->in, len + 1);
		if (ret < 0) {
			smtp_conn_error(c, SMTP_CONN_PROTO, "%s", why);
			return -1;
		}
		if (ret == 1)
			return 0;
	}
}

/* ---- writing ---- */

int
smtp_conn_write(struct smtp_conn *c, const void *data, size_t len,
    unsigned timeout)
{
	uint64_t deadline = smtp_now_ms() + (uint64_t)timeout * 1000;
	const char *p = data;

	while (len > 0) {
		ssize_t n;
		int r;

		if (c->tls != NULL)
			n = tls_conn_write(c->tls, p, len);
		else
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			smtp_conn_error(c, SMTP_CONN_LOST, "lost connection: "
			    "%s", c->tls != NULL ? tls_conn_error(c->tls) :
			    strerror(errno));
			return -1;
		}
		r = smtp_wait(c->fd, c->tls != NULL ? smtp_tls_events(c->tls) :
		    POLLOUT, deadline);
		if (r == 0) {
			smtp_conn_error(c, SMTP_CONN_TIMEOUT, "timed out");
			return -1;
		}
		if (r < 0) {
			smtp_conn_error(c, SMTP_CONN_LOST, "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
smtp_conn_flush(struct smtp_conn *c, struct buf *b, unsigned timeout)
{
	int r = 0;

	if (b->len > 0)
		r = smtp_conn_write(c, b->data, b->len, timeout);
	buf_reset(b);
	return r;
}

/* ---- TLS ---- */

int
smtp_conn_starttls(struct smtp_conn *c, struct tls_client_ctx *ctx,
    const char *servername, unsigned timeout)
{
	uint64_t deadline = smtp_now_ms() + (uint64_t)timeout * 1000;

	/* RFC 3207 §4.2: nothing the server sent before TLS counts. */
	buf_reset(&c->in);
	c->tls = tls_client_conn_new(ctx, c->fd, servername);
	for (;;) {
		int r;

		if (tls_conn_handshake(c->tls) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			smtp_conn_error(c, SMTP_CONN_TLS, "%s",
			    tls_conn_error(c->tls));
			tls_conn_free(&c->tls);
			return -1;
		}
		r = smtp_wait(c->fd, smtp_tls_events(c->tls), deadline);
		if (r <= 0) {
			smtp_conn_error(c, r == 0 ? SMTP_CONN_TIMEOUT :
			    SMTP_CONN_LOST, "%s", r == 0 ? "timed out" :
			    strerror(errno));
			tls_conn_free(&c->tls);
			return -1;
		}
	}
	free(c->tls_info);
	c->tls_info = xstrdup(tls_conn_info(c->tls));
	return 0;
}

bool
smtp_conn_tls_verified(const struct smtp_conn *c)
{
	return c->tls != NULL && tls_conn_verified(c->tls);
}

void
smtp_conn_quit(struct smtp_conn **cp, unsigned timeout)
{
	struct smtp_conn *c = *cp;
	struct smtp_reply r;

	if (c == NULL)
		return;
	if (smtp_conn_write(c, "QUIT\r\n", 6, timeout) == 0) {
		smtp_reply_init(&r);
		(void)smtp_conn_read_reply(c, &r, timeout);
		smtp_reply_free(&r);
	}
	smtp_conn_free(cp);
}

/* ---- the session cache ---- */

static pthread_mutex_t smtp_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t smtp_cache_cond = PTHREAD_COND_INITIALIZER;
static struct smtp_conn *smtp_cache_head;
static unsigned smtp_cache_count;
/* A cached session's QUIT waits this long for the 221 at most. */
#define SMTP_CACHE_QUIT_TIMEOUT	2

/*
 * Whether an idle session still looks usable: nothing to read (no EOF,
 * no unsolicited 421) and no error on the socket.
 */
static bool
smtp_conn_idle_ok(struct smtp_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (c->in.len > 0)
		return false;
	if (c->tls != NULL && tls_conn_pending(c->tls) > 0)
		return false;
	return poll(&p, 1, 0) == 0;
}

struct smtp_conn *
smtp_cache_take(const char *nexthop)
{
	struct smtp_conn **pp, *c = NULL;
	uint64_t now = smtp_now_ms();

	pthread_mutex_lock(&smtp_cache_lock);
	for (pp = &smtp_cache_head; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->expires_ms > now &&
		    strcmp((*pp)->nexthop, nexthop) == 0) {
			c = *pp;
			*pp = c->next;
			c->next = NULL;
			smtp_cache_count--;
			break;
		}
	}
	pthread_mutex_unlock(&smtp_cache_lock);
	if (c != NULL && !smtp_conn_idle_ok(c)) {
		smtp_conn_free(&c);
		return NULL;
	}
	if (c != NULL)
		c->uses++;
	return c;
}

void
smtp_cache_put(struct smtp_conn *c, const char *nexthop, unsigned ttl)
{
	uint64_t now = smtp_now_ms();

	if (ttl == 0 || now - c->born_ms >= SMTP_REUSE_TIME_LIMIT * 1000ULL) {
		smtp_conn_quit(&c, SMTP_CACHE_QUIT_TIMEOUT);
		return;
	}
	pthread_mutex_lock(&smtp_cache_lock);
	if (smtp_cache_count >= SMTP_MAX_CACHED) {
		pthread_mutex_unlock(&smtp_cache_lock);
		smtp_conn_quit(&c, SMTP_CACHE_QUIT_TIMEOUT);
		return;
	}
	free(c->nexthop);
	c->nexthop = xstrdup(nexthop);
	c->expires_ms = now + (uint64_t)ttl * 1000;
	c->next = smtp_cache_head;
	smtp_cache_head = c;
	smtp_cache_count++;
	pthread_cond_signal(&smtp_cache_cond);
	pthread_mutex_unlock(&smtp_cache_lock);
}

/* Unlink the sessions expired by now (all when now is UINT64_MAX). */
static struct smtp_conn *
smtp_cache_unlink_expired(uint64_t now, uint64_t *next_r)
{
	struct smtp_conn **pp = &smtp_cache_head, *out = NULL, *c;

	*next_r = UINT64_MAX;
	while ((c = *pp) != NULL) {
		if (c->expires_ms <= now) {
			*pp = c->next;
			c->next = out;
			out = c;
			smtp_cache_count--;
		} else {
			if (c->expires_ms < *next_r)
				*next_r = c->expires_ms;
			pp = &c->next;
		}
	}
	return out;
}

static void
smtp_cache_quit_list(struct smtp_conn *list)
{
	while (list != NULL) {
		struct smtp_conn *c = list;

		list = c->next;
		c->next = NULL;
		smtp_conn_quit(&c, SMTP_CACHE_QUIT_TIMEOUT);
	}
}

static bool smtp_cache_stopping;
static pthread_t smtp_cache_tid;

static void *
smtp_cache_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct smtp_conn *expired;
		uint64_t next;
		struct timespec ts;

		pthread_mutex_lock(&smtp_cache_lock);
		if (smtp_cache_stopping) {
			pthread_mutex_unlock(&smtp_cache_lock);
			return NULL;
		}
		expired = smtp_cache_unlink_expired(smtp_now_ms(), &next);
		if (expired == NULL) {
			/* The condition uses CLOCK_REALTIME: wait at most a
			 * second at a time, then look again. */
			uint64_t now = smtp_now_ms();

			clock_gettime(CLOCK_REALTIME, &ts);
			if (next != UINT64_MAX && next > now &&
			    next - now < 1000)
				ts.tv_nsec += (long)(next - now + 1) * 1000000;
			else if (next == UINT64_MAX || next > now)
				ts.tv_sec += 1;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			(void)pthread_cond_timedwait(&smtp_cache_cond,
			    &smtp_cache_lock, &ts);
		}
		pthread_mutex_unlock(&smtp_cache_lock);
		smtp_cache_quit_list(expired);
	}
	return NULL;
}

void
smtp_cache_start(void)
{
	int e;

	if ((e = pthread_create(&smtp_cache_tid, NULL, smtp_cache_thread,
	    NULL)) != 0)
		log_fatal("pthread_create: %s", strerror(e));
}

void
smtp_cache_stop(void)
{
	pthread_mutex_lock(&smtp_cache_lock);
	smtp_cache_stopping = true;
	pthread_cond_signal(&smtp_cache_cond);
	pthread_mutex_unlock(&smtp_cache_lock);
	(void)pthread_join(smtp_cache_tid, NULL);
	smtp_cache_flush(true);
}

void
smtp_cache_flush(bool wait)
{
	struct smtp_conn *all = NULL, *c;
	uint64_t next;

	pthread_mutex_lock(&smtp_cache_lock);
	if (wait)
		all = smtp_cache_unlink_expired(UINT64_MAX, &next);
	else {
		/* Expire them all: the cache thread says QUIT, so the caller
		 * (the main thread, on reload) does not wait for servers. */
		for (c = smtp_cache_head; c != NULL; c = c->next)
			c->expires_ms = 0;
		pthread_cond_signal(&smtp_cache_cond);
	}
	pthread_mutex_unlock(&smtp_cache_lock);
	smtp_cache_quit_list(all);
}
