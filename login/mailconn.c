/*
 * mailconn: the connection of a logged-in session in a mail process (see
 * mailconn.h).  Written once for pop3 and imap: non-blocking reads into a
 * bounded buffer, the output queue and its back-pressure, the autologout
 * timer, continuation of long answers, and the end of the session.  What
 * a line means, which state the session is in and what goes into the
 * logout line are the protocol's.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "ioloop.h"
#include "log.h"
#include "mailconn.h"
#include "mailproc.h"

static void	mailconn_io(int fd, int events, void *ctx);
static void	mailconn_run(struct mailconn *c);
static void	mailconn_done(struct mailconn *c);

/* ---- output ---- */

void
mailconn_write(struct mailconn *c, const void *data, size_t len)
{
	if (!c->dead)
		buf_append(&c->out, data, len);
}

void
mailconn_vreply(struct mailconn *c, const char *fmt, va_list ap)
{
	if (c->dead)
		return;
	buf_vprintf(&c->out, fmt, ap);
	buf_append(&c->out, "\r\n", 2);
}

void
mailconn_reply(struct mailconn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mailconn_vreply(c, fmt, ap);
	va_end(ap);
}

bool
mailconn_out_full(const struct mailconn *c)
{
	return c->out.len >= c->proto->out_high;
}

static void	mailconn_arm_timeout(struct mailconn *c);

/* Output is queued: in c->out, or compressed and not yet written. */
static bool
mailconn_out_pending(const struct mailconn *c)
{
	return c->out.len > 0 ||
	    (c->z != NULL && mailconn_zlib_pending(c->z));
}

/* Write what we can without blocking. */
static void
mailconn_flush(struct mailconn *c)
{
	bool progress = false;

	while (!c->dead) {
		struct buf *wb = &c->out;
		ssize_t n;

		if (c->z != NULL) {
			/* Compressed a part at a time: what the socket
			 * does not take stays plaintext in c->out. */
			if (mailconn_zlib_deflate(c->z, &c->out) < 0) {
				if (c->reason == NULL)
					c->reason = "Disconnected: "
					    "Compression failed";
				c->dead = true;
				break;
			}
			wb = mailconn_zlib_out(c->z);
		}
		if (wb->len == 0)
			break;
		n = send(c->fd, wb->data, wb->len, MSG_NOSIGNAL);
		/* send() for MSG_NOSIGNAL; write() should the
		 * descriptor not be a socket. */
		if (n < 0 && errno == ENOTSOCK)
			n = write(c->fd, wb->data, wb->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (c->reason == NULL)
				c->reason = "Disconnected: Connection closed";
			c->dead = true;
			break;
		}
		buf_consume(wb, (size_t)n);
		c->bytes_out += (uint64_t)n;
		progress = true;
	}
	/* A client that reads its answer is not idle. */
	if (progress)
		mailconn_arm_timeout(c);
}

/* ---- timers, end ---- */

static void
mailconn_timeout(void *ctx)
{
	struct mailconn *c = ctx;

	c->timeout = NULL;
	/*
	 * RFC 1939 §3, RFC 9051 §5.4: the autologout timer.  Nothing the
	 * session did is completed (no POP3 UPDATE state).
	 */
	mailconn_reply(c, "%s", c->proto->idle_line);
	mailconn_flush(c);
	c->reason = "Disconnected for inactivity";
	c->dead = true;
	mailconn_done(c);
}

static void
mailconn_arm_timeout(struct mailconn *c)
{
	timer_remove(&c->timeout);
	if (!c->dead)
		c->timeout = timer_add(c->proto->idle_ms, mailconn_timeout, c);
}

void
mailconn_close(struct mailconn *c, const char *reason)
{
	if (c->reason == NULL)
		c->reason = reason;
}

/* The session wants client input now. */
static bool
mailconn_wants_input(const struct mailconn *c)
{
	return c->proto->mode(c->ctx) == MAILCONN_READ && !c->eof &&
	    !c->dead && c->out.len < c->proto->out_high &&
	    c->in.len < c->in.max;
}

static void
mailconn_update_io(struct mailconn *c)
{
	int ev = 0;

	if (mailconn_wants_input(c))
		ev |= IOLOOP_READ;
	if (mailconn_out_pending(c) || c->dead)
		ev |= IOLOOP_WRITE;
	io_set_events(c->io, ev);
}

void
mailconn_update(struct mailconn *c)
{
	if (c->busy == 0)
		mailconn_update_io(c);
}

/*
 * End of every callback that touched c: free the session when it is
 * finished, else recompute what to wait for.
 */
static void
mailconn_done(struct mailconn *c)
{
	enum mailconn_mode mode;

	if (c->busy > 0)
		return;
	mode = c->proto->mode(c->ctx);
	if (!c->dead && mode == MAILCONN_CLOSE && !mailconn_out_pending(c))
		c->dead = true;
	/* The client went away between commands: nothing to finish
	 * (RFC 1939 §6: no UPDATE state without QUIT). */
	if (!c->dead && c->eof && mode == MAILCONN_READ &&
	    !mailconn_out_pending(c))
		c->dead = true;
	if (c->dead) {
		c->proto->free(c->ctx);
		return;
	}
	mailconn_update_io(c);
}

/* ---- input ---- */

/*
 * Decompress what was read into c->in as far as it has room.  Returns
 * true when that changed something the protocol may take.  Invalid data
 * end the input as if the client had closed: nothing after them can be
 * understood, so nothing more is read, while what is queued (and the
 * commands complete before them) is answered, then the session ends.
 */
static bool
mailconn_inflate(struct mailconn *c)
{
	int r;

	if (c->z == NULL || c->dead)
		return false;
	r = mailconn_zlib_inflate(c->z, &c->in);
	if (r < 0) {
		if (c->reason == NULL)
			c->reason = "Disconnected: Invalid compressed data";
		c->eof = true;
		return false;
	}
	if (r == 0 && mailconn_zlib_ended(c->z))
		c->eof = true;
	return r > 0;
}

static void
mailconn_read(struct mailconn *c)
{
	while (mailconn_wants_input(c)) {
		/* Compressed, the bytes go to the compressed input and
		 * are inflated into c->in before more are read. */
		struct buf *rb = &c->in;
		size_t room;
		ssize_t n;

		if (c->z != NULL) {
			if (mailconn_inflate(c))
				continue;
			if (c->dead || c->eof)
				break;
			rb = mailconn_zlib_in(c->z);
		}
		room = rb->max - rb->len;
		if (room == 0)
			break;
		if (room > c->proto->read_size)
			room = c->proto->read_size;
		if (buf_reserve(rb, room) < 0)
			break;
		n = read(c->fd, rb->data + rb->len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				c->eof = true;
				if (c->reason == NULL)
					c->reason = "Disconnected: "
					    "Connection closed";
			}
			break;
		}
		if (n == 0) {
			c->eof = true;
			break;
		}
		rb->len += (size_t)n;
		c->bytes_in += (uint64_t)n;
		mailconn_arm_timeout(c);
	}
}

static void
mailconn_resume(void *ctx)
{
	struct mailconn *c = ctx;

	c->resume_timer = NULL;
	c->busy++;
	mailconn_run(c);
	c->busy--;
	mailconn_done(c);
}

/*
 * Execute what can be executed now: continue a long answer, then the
 * commands already in the input buffer.  Returns true when it stopped
 * only because the output reached its high-water mark.
 */
static bool
mailconn_run_once(struct mailconn *c)
{
	while (!c->dead) {
		enum mailconn_mode mode = c->proto->mode(c->ctx);

		if (c->out.len >= c->proto->out_high)
			return mode != MAILCONN_CLOSE;
		if (mode == MAILCONN_CONT) {
			switch (c->proto->step(c->ctx)) {
			case MAILCONN_STEP_FAIL:
				c->dead = true;
				if (c->reason == NULL)
					c->reason = "Disconnected: "
					    "Internal error";
				return false;
			case MAILCONN_STEP_MORE:
			case MAILCONN_STEP_DONE:
				continue;
			case MAILCONN_STEP_YIELD:
				break;
			}
			if (c->out.len >= c->proto->out_high)
				return true;	/* when output drained */
			if (c->resume_timer == NULL)
				c->resume_timer = timer_add(0, mailconn_resume,
				    c);
			return false;
		}
		if (mode != MAILCONN_READ)
			break;
		/* A command needs more: compressed bytes read earlier
		 * may hold it. */
		if (!c->proto->input(c->ctx) && !mailconn_inflate(c))
			break;
	}
	return false;
}

/* Run and write until the client must catch up or nothing is left. */
static void
mailconn_run(struct mailconn *c)
{
	bool more;

	do {
		more = mailconn_run_once(c);
		mailconn_flush(c);
	} while (more && !c->dead && c->out.len < c->proto->out_high);
}

static void
mailconn_io(int fd, int events, void *ctx)
{
	struct mailconn *c = ctx;

	(void)fd;
	c->busy++;
	if ((events & IOLOOP_WRITE) != 0)
		mailconn_flush(c);
	if ((events & IOLOOP_READ) != 0)
		mailconn_read(c);
	mailconn_run(c);
	c->busy--;
	mailconn_done(c);
}

/* ---- life cycle ---- */

void
mailconn_init(struct mailconn *c, int fd, const struct mailconn_proto *proto,
    void *ctx, const char *log_user)
{
	int fl;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->proto = proto;
	c->ctx = ctx;
	buf_init(&c->in, proto->max_inbuf);
	buf_init(&c->out, 0);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_warning("%s(%s): O_NONBLOCK: %s", proto->name, log_user,
		    strerror(errno));
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	c->io = io_add(fd, 0, mailconn_io, c);
	/* Held until mailconn_start(). */
	c->busy = 1;
}

void
mailconn_preload(struct mailconn *c, const void *data, size_t len)
{
	size_t room = c->in.max - c->in.len;

	buf_append(&c->in, data, len < room ? len : room);
}

void
mailconn_start(struct mailconn *c)
{
	mailconn_arm_timeout(c);
	mailconn_run(c);
	c->busy--;
	mailconn_done(c);
}

void
mailconn_deinit(struct mailconn *c)
{
	io_remove(&c->io);
	timer_remove(&c->timeout);
	timer_remove(&c->resume_timer);
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
	mailconn_zlib_free(&c->z);
	mailproc_session_ended();
}

int
mailconn_compress(struct mailconn *c, const char **error_r)
{
	struct mailconn_zlib *z;
	struct buf *zin;

	if (c->z != NULL) {
		*error_r = "Compression is active already";
		return -1;
	}
	z = mailconn_zlib_new(c->in.max, error_r);
	if (z == NULL)
		return -1;
	/*
	 * RFC 4978 §3: compression starts right after the CRLF of the
	 * tagged OK, so what is queued goes out as it is; the client
	 * compresses from the first command after COMPRESS, so what is
	 * buffered after it is compressed.
	 */
	(void)buf_append(mailconn_zlib_out(z), c->out.data, c->out.len);
	buf_reset(&c->out);
	zin = mailconn_zlib_in(z);
	(void)buf_append(zin, c->in.data, c->in.len);
	buf_reset(&c->in);
	c->z = z;
	return 0;
}

bool
mailconn_compressed(const struct mailconn *c)
{
	return c->z != NULL;
}
