/*
 * local_client: the DELIVER-NOW client smtpd uses for delivery at accept
 * (see local_client.h; protocol in doc/internals.md).
 *
 * Connections live in one list; each is connecting, busy with exactly one
 * request, or idle.  Requests wait in a FIFO until a connection for their
 * socket path is idle or a new one may be opened (at most
 * local_delivery_at_accept_limit in all).  A request that cannot be sent
 * (no local listening, socket errors) fails from a zero timer, so the
 * callback always runs from the loop.  A broken connection fails its
 * request with what was parsed so far: RESULT lines already received are
 * true statements ("sent" is only said after the copy is durable), so
 * they are kept; the rest is "queue".  Idle connections are watched for
 * EOF (local restarted) and closed after LOCAL_CLIENT_IDLE_MS.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "local_client.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

struct local_client_conn;

struct local_client_req {
	struct local_client_req	*next;		/* waiting list */
	char			*sock_path;
	char			*line;		/* the request, with LF */
	local_client_done_t	*done;		/* NULL: cancelled */
	void			*ctx;
	struct local_client_conn *conn;		/* while in flight */
	struct timer		*fail_timer;	/* failing from the loop */
	const char		*error;
	struct local_client_rcpt *rcpts;
	size_t			 count;
	size_t			 cap;
	size_t			 nsent;
};

struct local_client_conn {
	struct local_client_conn *next;
	struct local_client_conn *prev;
	int			 fd;
	struct io		*io;
	char			*sock_path;
	bool			 connecting;
	struct buf		 in;
	struct buf		 out;
	struct local_client_req	*req;
	struct timer		*timer;		/* answer timeout or idle */
};

static struct local_client_conn *conns;
static size_t conn_count;
static struct local_client_req *wait_head;
static struct local_client_req **wait_tail = &wait_head;

static void local_client_dispatch(void);

/* ---- requests ---- */

static void
local_client_req_free(struct local_client_req *req)
{
	timer_remove(&req->fail_timer);
	free(req->sock_path);
	free(req->line);
	free(req->rcpts);
	free(req);
}

/* Hand the outcome to the caller and free req. */
static void
local_client_finish(struct local_client_req *req, const char *error)
{
	struct local_client_result res;

	req->conn = NULL;
	memset(&res, 0, sizeof(res));
	res.rcpts = req->rcpts;
	res.count = req->count;
	res.nsent = req->nsent;
	res.complete = error == NULL;
	res.error = error;
	if (req->done != NULL)
		req->done(req->ctx, &res);
	local_client_req_free(req);
}

static void
local_client_fail_cb(void *ctx)
{
	struct local_client_req *req = ctx;

	req->fail_timer = NULL;		/* the loop removed it */
	local_client_finish(req, req->error);
}

/* Fail req from the loop (the caller may be inside deliver_now). */
static void
local_client_fail_later(struct local_client_req *req, const char *error)
{
	req->error = error;
	req->fail_timer = timer_add(0, local_client_fail_cb, req);
}

/*
 * Parse one answer line into req.  Returns 1 for END, 0 for a RESULT,
 * -1 for anything else.
 */
static int
local_client_parse(struct local_client_req *req, const char *line)
{
	struct local_client_rcpt *r;
	char **f;
	char *dsn = NULL, *text = NULL, *p;
	long long idx;
	int ret = -1;

	if (strcmp(line, "END") == 0)
		return 1;
	f = strv_split(line, " ");
	/* An empty text leaves out the last field. */
	if ((strv_len(f) != 5 && strv_len(f) != 4) ||
	    strcmp(f[0], "RESULT") != 0 ||
	    str_to_ll(f[1], 0, LOCAL_CLIENT_MAX_RCPTS, &idx) < 0 ||
	    (strcmp(f[2], "sent") != 0 && strcmp(f[2], "queue") != 0) ||
	    (dsn = xtext_decode(f[3])) == NULL ||
	    (text = xtext_decode(f[4] != NULL ? f[4] : "")) == NULL ||
	    req->count >= LOCAL_CLIENT_MAX_RCPTS)
		goto out;
	if (req->count == req->cap) {
		req->cap = req->cap == 0 ? 8 : req->cap * 2;
		req->rcpts = xreallocarray(req->rcpts, req->cap,
		    sizeof(*req->rcpts));
	}
	r = &req->rcpts[req->count++];
	memset(r, 0, sizeof(*r));
	r->idx = (size_t)idx;
	r->status = strcmp(f[2], "sent") == 0 ? LOCAL_CLIENT_SENT :
	    LOCAL_CLIENT_QUEUE;
	str_lcpy(r->dsn, dsn, sizeof(r->dsn));
	str_lcpy(r->text, text, sizeof(r->text));
	for (p = r->text; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	if (r->status == LOCAL_CLIENT_SENT)
		req->nsent++;
	ret = 0;
out:
	free(dsn);
	free(text);
	strv_free(&f);
	return ret;
}

/* ---- connections ---- */

static void
local_client_conn_close(struct local_client_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	conn_count--;
	io_remove(&c->io);
	timer_remove(&c->timer);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->sock_path);
	free(c);
}

/* The connection broke: its request fails with what it has. */
static void
local_client_conn_fail(struct local_client_conn *c, const char *error)
{
	struct local_client_req *req = c->req;

	c->req = NULL;
	local_client_conn_close(c);
	if (req != NULL) {
		log_warning("delivery at accept: %s: %s; recipients not "
		    "reported are queued", req->sock_path, error);
		local_client_finish(req, error);
	}
	local_client_dispatch();
}

static void
local_client_idle_cb(void *ctx)
{
	struct local_client_conn *c = ctx;

	c->timer = NULL;
	local_client_conn_close(c);
}

static void
local_client_timeout_cb(void *ctx)
{
	struct local_client_conn *c = ctx;

	c->timer = NULL;
	local_client_conn_fail(c, "no answer from local in time");
}

/* Consume complete lines; 1 when the request is answered, -1 on error. */
static int
local_client_conn_lines(struct local_client_conn *c)
{
	char *nl;

	while (c->in.len > 0 &&
	    (nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
		char *line = xstrndup(c->in.data, (size_t)(nl - c->in.data));
		int ret;

		buf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
		ret = c->req != NULL ? local_client_parse(c->req, line) : -1;
		free(line);
		if (ret != 0)
			return ret;
	}
	return 0;
}

static void
local_client_conn_io(int fd, int events, void *ctx)
{
	struct local_client_conn *c = ctx;

	if (c->connecting && (events & IOLOOP_WRITE)) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			local_client_conn_fail(c, strerror(err));
			return;
		}
		c->connecting = false;
	}
	if (!c->connecting && (events & IOLOOP_WRITE) && c->out.len > 0) {
		ssize_t n = send(fd, c->out.data, c->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			local_client_conn_fail(c, strerror(errno));
			return;
		}
		if (n > 0)
			buf_consume(&c->out, (size_t)n);
		if (c->out.len == 0)
			io_set_events(c->io, IOLOOP_READ);
	}
	if (events & IOLOOP_READ) {
		ssize_t n;
		int ret;

		if (c->req == NULL && !c->connecting) {
			/* Idle: EOF (local restarted) or stray bytes. */
			local_client_conn_close(c);
			return;
		}
		if (buf_reserve(&c->in, 4096) < 0) {
			local_client_conn_fail(c, "answer line too long");
			return;
		}
		n = read(fd, c->in.data + c->in.len, 4096);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				local_client_conn_fail(c, strerror(errno));
			return;
		}
		if (n == 0) {
			local_client_conn_fail(c, "local closed the "
			    "connection");
			return;
		}
		c->in.len += (size_t)n;
		ret = local_client_conn_lines(c);
		if (ret < 0) {
			local_client_conn_fail(c, "malformed answer");
			return;
		}
		if (ret == 1) {
			struct local_client_req *req = c->req;

			if (c->in.len > 0) {
				local_client_conn_fail(c, "unexpected data "
				    "after END");
				return;
			}
			c->req = NULL;
			timer_remove(&c->timer);
			c->timer = timer_add(LOCAL_CLIENT_IDLE_MS,
			    local_client_idle_cb, c);
			local_client_finish(req, NULL);
			local_client_dispatch();
		}
	}
}

/* Open a connection to path; NULL with *error_r on failure. */
static struct local_client_conn *
local_client_conn_open(const char *path, const char **error_r)
{
	struct local_client_conn *c;
	struct sockaddr_un sun;
	bool connecting = false;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_lcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		*error_r = "socket path too long";
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = strerror(errno);
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EINPROGRESS) {
			/* EAGAIN: local's backlog is full; the queue it is. */
			*error_r = strerror(errno);
			close(fd);
			return NULL;
		}
		connecting = true;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->sock_path = xstrdup(path);
	c->connecting = connecting;
	buf_init(&c->in, MAX_IPC_LINE + 4096);
	buf_init(&c->out, 0);
	c->io = io_add(fd, IOLOOP_READ, local_client_conn_io, c);
	c->next = conns;
	if (conns != NULL)
		conns->prev = c;
	conns = c;
	conn_count++;
	return c;
}

static void
local_client_conn_start(struct local_client_conn *c,
    struct local_client_req *req)
{
	c->req = req;
	req->conn = c;
	buf_reset(&c->in);
	buf_append_str(&c->out, req->line);
	timer_remove(&c->timer);
	c->timer = timer_add(LOCAL_CLIENT_TIMEOUT_MS, local_client_timeout_cb,
	    c);
	io_set_events(c->io, IOLOOP_READ | IOLOOP_WRITE);
}

/* Give waiting requests to idle or new connections. */
static void
local_client_dispatch(void)
{
	size_t limit = (size_t)cfg_get_int("local_delivery_at_accept_limit");

	while (wait_head != NULL) {
		struct local_client_req *req = wait_head;
		struct local_client_conn *c, *next;
		const char *error = NULL;

		for (c = conns; c != NULL; c = next) {
			next = c->next;
			if (c->req != NULL)
				continue;
			if (strcmp(c->sock_path, req->sock_path) == 0)
				break;
			/* queue_directory changed: not for this one. */
			local_client_conn_close(c);
		}
		if (c == NULL && conn_count >= limit)
			return;		/* all busy: wait for one */
		wait_head = req->next;
		if (wait_head == NULL)
			wait_tail = &wait_head;
		req->next = NULL;
		if (c == NULL &&
		    (c = local_client_conn_open(req->sock_path,
		    &error)) == NULL) {
			log_warning("delivery at accept: connect to %s: %s; "
			    "queueing", req->sock_path, error);
			local_client_fail_later(req, error);
			continue;
		}
		local_client_conn_start(c, req);
	}
}

/* ---- API ---- */

struct local_client_req *
local_client_deliver_now(const char *queue_dir, const char *tmp_rel_path,
    local_client_done_t *done, void *ctx)
{
	struct local_client_req *req = xcalloc(1, sizeof(*req));
	char *xpath = xtext_encode(tmp_rel_path, strlen(tmp_rel_path));

	req->sock_path = xasprintf("%s/private/local", queue_dir);
	req->line = xasprintf("DELIVER-NOW %s -\n", xpath);
	req->done = done;
	req->ctx = ctx;
	free(xpath);
	if (strlen(req->line) > MAX_IPC_LINE) {
		local_client_fail_later(req, "queue path too long");
		return req;
	}
	*wait_tail = req;
	wait_tail = &req->next;
	local_client_dispatch();
	return req;
}

void
local_client_cancel(struct local_client_req **reqp)
{
	struct local_client_req *req = *reqp, **pp;

	if (req == NULL)
		return;
	*reqp = NULL;
	if (req->conn != NULL) {
		/* In flight: the answer is read and dropped. */
		req->done = NULL;
		return;
	}
	if (req->fail_timer != NULL) {
		local_client_req_free(req);
		return;
	}
	for (pp = &wait_head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			if (*pp == NULL)
				wait_tail = pp;
			break;
		}
	}
	local_client_req_free(req);
}

bool
local_client_result_sent(const struct local_client_result *res, size_t idx)
{
	size_t i;

	for (i = 0; i < res->count; i++) {
		if (res->rcpts[i].idx == idx)
			return res->rcpts[i].status == LOCAL_CLIENT_SENT;
	}
	return false;
}

void
local_client_shutdown(void)
{
	struct local_client_conn *c, *next;

	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->req == NULL)
			local_client_conn_close(c);
	}
}
