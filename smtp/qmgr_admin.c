/*
 * qmgr_admin: the admin socket public/qmgr (doc/internals.md).  One
 * request line per connection, answered by lines ending with a "." line:
 *
 *   LIST                 the mailq text (anyone, like Postfix's mailq)
 *   DELETE <id>|ALL      OK <text> | ERR <text>
 *   HOLD <id>|ALL
 *   RELEASE <id>|ALL
 *   FLUSH
 *
 * Everything but LIST needs a peer uid (SO_PEERCRED) of 0 or our own.
 * Requests are bounded (QMGR_ADMIN_LINE bytes, QMGR_ADMIN_TIMEOUT
 * seconds); answers are written without blocking the event loop.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "ioloop.h"
#include "fdio.h"
#include "log.h"
#include "qmgr.h"
#include "queue_list.h"
#include "str.h"
#include "xmalloc.h"

struct qmgr_admin_conn {
	int		 fd;
	struct io	*io;
	struct timer	*timer;
	struct buf	 in;
	struct buf	 out;
	size_t		 out_pos;
	uid_t		 uid;
	bool		 answered;
};

static int admin_fd = -1;
static struct io *admin_io;
static char *admin_path;

static void
qmgr_admin_close(struct qmgr_admin_conn *c)
{
	io_remove(&c->io);
	timer_remove(&c->timer);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void
qmgr_admin_timeout(void *ctx)
{
	struct qmgr_admin_conn *c = ctx;

	c->timer = NULL;
	qmgr_admin_close(c);
}

/* "OK some text" -> "OK some+20text\n": fields are xtext (internals.md). */
static void
qmgr_admin_answer(struct buf *out, const char *answer)
{
	const char *sp = strchr(answer, ' ');
	char *x;

	if (sp == NULL) {
		buf_printf(out, "%s\n", answer);
		return;
	}
	x = xtext_encode(sp + 1, strlen(sp + 1));
	buf_printf(out, "%.*s %s\n", (int)(sp - answer), answer, x);
	free(x);
}

static void
qmgr_admin_list(struct buf *out)
{
	char *text = NULL;
	size_t len = 0;
	const char *err;
	FILE *f = open_memstream(&text, &len);
	int ret;

	if (f == NULL) {
		qmgr_admin_answer(out, "ERR cannot list the queue");
		return;
	}
	ret = queue_list_print(f, qmgr_queue_dir, qmgr_is_active, &err);
	fclose(f);
	if (ret < 0) {
		char *e = xasprintf("ERR %s", err);

		qmgr_admin_answer(out, e);
		free(e);
	} else
		buf_append(out, text, len);
	free(text);
}

/* Run one request line; the answer goes to c->out. */
static void
qmgr_admin_request(struct qmgr_admin_conn *c, char *line)
{
	char **w = strv_split(line, " \t\r");
	size_t n = strv_len(w);
	bool privileged = c->uid == 0 || c->uid == geteuid();

	if (n == 1 && strcmp(w[0], "LIST") == 0)
		qmgr_admin_list(&c->out);
	else if (!privileged && n >= 1 && (strcmp(w[0], "DELETE") == 0 ||
	    strcmp(w[0], "HOLD") == 0 || strcmp(w[0], "RELEASE") == 0 ||
	    strcmp(w[0], "FLUSH") == 0))
		qmgr_admin_answer(&c->out, "ERR permission denied");
	else {
		struct buf answer;

		buf_init(&answer, 0);
		if (n == 2 && strcmp(w[0], "DELETE") == 0)
			qmgr_delete(w[1], &answer);
		else if (n == 2 && strcmp(w[0], "HOLD") == 0)
			qmgr_hold(w[1], &answer);
		else if (n == 2 && strcmp(w[0], "RELEASE") == 0)
			qmgr_release(w[1], &answer);
		else if (n == 1 && strcmp(w[0], "FLUSH") == 0)
			qmgr_flush(&answer);
		else
			buf_append_str(&answer, "ERR unknown request");
		qmgr_admin_answer(&c->out, buf_cstr(&answer));
		buf_free(&answer);
	}
	buf_append_str(&c->out, ".\n");
	strv_free(&w);
}

static void
qmgr_admin_io(int fd, int events, void *ctx)
{
	struct qmgr_admin_conn *c = ctx;

	if (!c->answered && (events & IOLOOP_READ)) {
		char tmp[512];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			qmgr_admin_close(c);
			return;
		}
		if (buf_append(&c->in, tmp, (size_t)n) < 0) {
			/* Longer than any valid request. */
			qmgr_admin_close(c);
			return;
		}
		if ((nl = memchr(c->in.data, '\n', c->in.len)) == NULL)
			return;
		*nl = '\0';
		if (memchr(c->in.data, '\0', (size_t)(nl - c->in.data)) !=
		    NULL) {
			qmgr_admin_close(c);
			return;
		}
		c->answered = true;
		qmgr_admin_request(c, c->in.data);
		/* A long listing may go to a slow reader (a pager). */
		timer_remove(&c->timer);
		c->timer = timer_add(QMGR_ADMIN_TIMEOUT * 6000ULL,
		    qmgr_admin_timeout, c);
		io_set_events(c->io, IOLOOP_WRITE);
		return;
	}
	if (c->answered && (events & IOLOOP_WRITE)) {
		while (c->out_pos < c->out.len) {
			ssize_t n = write(fd, c->out.data + c->out_pos,
			    c->out.len - c->out_pos);

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				qmgr_admin_close(c);
				return;
			}
			c->out_pos += (size_t)n;
		}
		qmgr_admin_close(c);
	}
}

static void
qmgr_admin_accept(int fd, int events, void *ctx)
{
	(void)events;
	(void)ctx;
	for (;;) {
		struct qmgr_admin_conn *c;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warning("accept on public/qmgr: %m");
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		/* Unknown peers are unprivileged. */
		c->uid = (uid_t)-1;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			c->uid = cred.uid;
		buf_init(&c->in, QMGR_ADMIN_LINE);
		buf_init(&c->out, 0);
		c->io = io_add(cfd, IOLOOP_READ, qmgr_admin_io, c);
		c->timer = timer_add(QMGR_ADMIN_TIMEOUT * 1000ULL,
		    qmgr_admin_timeout, c);
	}
}

void
qmgr_admin_init(void)
{
	char *path = xasprintf("%s/public/qmgr", qmgr_queue_dir);
	int fd;

	/* Anyone may list the queue, as with Postfix's mailq. */
	fd = fdio_unix_bind(path, SOCK_STREAM, 0666, 16);
	if (fd < 0)
		log_fatal("cannot listen on %s: %m", path);
	admin_fd = fd;
	admin_path = path;
	admin_io = io_add(fd, IOLOOP_READ, qmgr_admin_accept, NULL);
}

void
qmgr_admin_deinit(void)
{
	if (admin_fd < 0)
		return;
	io_remove(&admin_io);
	close(admin_fd);
	admin_fd = -1;
	(void)unlink(admin_path);
	free(admin_path);
	admin_path = NULL;
}
