/*
 * Unit tests of login/mailconn.c: a small line protocol (OK for every
 * line, BIG/SLOW for long answers, QUIT) on one end of a socketpair, the
 * test as the client on the other, in the real event loop.  Pipelined
 * commands answered in order, the last answers flushed before close, a
 * client that stops reading stops the long answer at the high-water mark
 * and the reading of its next commands, answers resumed as it reads
 * again, the autologout timer, a client that goes away, and the byte
 * counts of the logout line.  Compression (Z turns it on, as IMAP
 * COMPRESS does): answers sync-flushed, commands pipelined after Z,
 * input a byte at a time, a decompression bomb kept within the input
 * buffer, invalid data ending the session.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "ioloop.h"
#include "linebuf.h"
#include "mailconn.h"
#include "test.h"
#include "xmalloc.h"

#define OUT_HIGH	(16 * 1024)
#define CHUNK		4096

struct sess {
	struct mailconn	 conn;
	enum mailconn_mode mode;
	struct linebuf	 lb;
	size_t		 big_left;
	bool		 yield;
};

/* What the last session left behind. */
static bool freed;
static char freed_reason[64];
static uint64_t freed_in, freed_out;
/* The most output one session held, and commands it executed. */
static size_t max_out;
static unsigned executed;
static unsigned sessions_ended;

/* The client's end. */
static int client_fd = -1;
static struct io *client_io;
static struct buf client_in;
static bool client_reading;
static const char *client_wait_for;	/* stop the loop once seen */

/* mailconn tells mailproc; this test is its mailproc. */
void	mailproc_session_ended(void);

void
mailproc_session_ended(void)
{
	sessions_ended++;
}

static enum mailconn_mode
sess_mode(void *ctx)
{
	return ((struct sess *)ctx)->mode;
}

static enum mailconn_step
sess_step(void *ctx)
{
	struct sess *s = ctx;
	size_t n = s->big_left < CHUNK ? s->big_left : CHUNK;
	char chunk[CHUNK];

	memset(chunk, 'x', n);
	mailconn_write(&s->conn, chunk, n);
	s->big_left -= n;
	if (s->conn.out.len > max_out)
		max_out = s->conn.out.len;
	if (s->big_left > 0)
		return s->yield ? MAILCONN_STEP_YIELD : MAILCONN_STEP_MORE;
	mailconn_write(&s->conn, "\r\n.\r\n", 5);
	s->mode = MAILCONN_READ;
	return MAILCONN_STEP_DONE;
}

static bool
sess_input(void *ctx)
{
	struct sess *s = ctx;
	struct buf *in = &s->conn.in;
	const char *line;
	size_t consumed, len;
	char cmd[128];
	unsigned long n;
	int r;

	r = linebuf_parse(&s->lb, in->data, in->len, 100, &consumed, &line,
	    &len);
	if (r == 0) {
		buf_consume(in, consumed);
		return false;
	}
	if (r < 0) {
		buf_consume(in, consumed);
		mailconn_reply(&s->conn, "ERR too long");
		return true;
	}
	snprintf(cmd, sizeof(cmd), "%.*s", (int)len, line);
	buf_consume(in, consumed);
	executed++;
	if (strcmp(cmd, "Z") == 0) {
		const char *error;

		/* The answer first: it goes out uncompressed. */
		if (mailconn_compressed(&s->conn))
			mailconn_reply(&s->conn, "NO active");
		else {
			mailconn_reply(&s->conn, "OK Z");
			if (mailconn_compress(&s->conn, &error) < 0)
				abort();
		}
	} else if (strcmp(cmd, "QUIT") == 0) {
		mailconn_reply(&s->conn, "BYE");
		mailconn_close(&s->conn, "Logged out");
		s->mode = MAILCONN_CLOSE;
	} else if (sscanf(cmd, "BIG %lu", &n) == 1 ||
	    sscanf(cmd, "SLOW %lu", &n) == 1) {
		mailconn_reply(&s->conn, "+OK");
		s->big_left = n;
		s->yield = cmd[0] == 'S';
		s->mode = MAILCONN_CONT;
	} else
		mailconn_reply(&s->conn, "OK %s", cmd);
	return true;
}

static void
sess_free(void *ctx)
{
	struct sess *s = ctx;

	freed = true;
	snprintf(freed_reason, sizeof(freed_reason), "%s",
	    s->conn.reason != NULL ? s->conn.reason : "(none)");
	freed_in = s->conn.bytes_in;
	freed_out = s->conn.bytes_out;
	mailconn_deinit(&s->conn);
	free(s);
	ioloop_stop();
}

static struct mailconn_proto test_proto = {
	.name = "test",
	.max_inbuf = 1024,
	.out_high = OUT_HIGH,
	.read_size = 512,
	.idle_ms = 10 * 1000,
	.idle_line = "* BYE idle",
	.mode = sess_mode,
	.step = sess_step,
	.input = sess_input,
	.free = sess_free,
};

/* ---- the client ---- */

static void
client_update(void)
{
	io_set_events(client_io, client_reading ? IOLOOP_READ : 0);
}

static void
client_event(int fd, int events, void *ctx)
{
	char tmp[8192];
	ssize_t n;

	(void)events;
	(void)ctx;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(&client_in, tmp, (size_t)n);
	if (n == 0)
		client_reading = false;
	client_update();
	if (client_wait_for != NULL &&
	    strstr(buf_cstr(&client_in), client_wait_for) != NULL)
		ioloop_stop();
}

static struct sess *pending_sess;
static const char *pending_pre;

static void
start_session(void *ctx)
{
	struct sess *s = pending_sess;

	(void)ctx;
	if (pending_pre != NULL)
		mailconn_preload(&s->conn, pending_pre, strlen(pending_pre));
	mailconn_start(&s->conn);
}

static void
give_up(void *ctx)
{
	*(bool *)ctx = true;
	ioloop_stop();
}

/*
 * A new session on a fresh socketpair; pre is what the login process
 * read already.  The session starts from the loop.
 */
static void
setup(const char *pre)
{
	int sv[2];
	struct sess *s;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	(void)fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	client_fd = sv[1];
	buf_free(&client_in);
	buf_init(&client_in, 0);
	client_io = io_add(client_fd, 0, client_event, NULL);
	client_reading = true;
	client_update();
	client_wait_for = NULL;
	freed = false;
	max_out = 0;
	executed = 0;
	s = xcalloc(1, sizeof(*s));
	linebuf_init(&s->lb);
	s->mode = MAILCONN_READ;
	mailconn_init(&s->conn, sv[0], &test_proto, s, "tester");
	pending_sess = s;
	pending_pre = pre;
	(void)timer_add(0, start_session, NULL);
}

/* Run the loop until it is stopped or ms passed: false on time out. */
static bool
run_for(unsigned ms)
{
	struct timer *t;
	bool timed_out = false;

	t = timer_add(ms, give_up, &timed_out);
	ioloop_run();
	if (!timed_out)
		timer_remove(&t);
	return !timed_out;
}

/* Run until the session is over (its free callback stops the loop). */
static bool
run_until_freed(unsigned ms)
{
	while (!freed)
		if (!run_for(ms))
			return false;
	return true;
}

static void
teardown(void)
{
	io_remove(&client_io);
	if (client_fd >= 0)
		close(client_fd);
	client_fd = -1;
}

static void
client_send(const char *s)
{
	size_t len = strlen(s);

	if (write(client_fd, s, len) != (ssize_t)len)
		abort();
}

static void
client_send_len(const void *data, size_t len)
{
	const char *p = data;

	/* The socket takes it in pieces while the loop runs. */
	while (len > 0) {
		ssize_t n = write(client_fd, p, len);

		if (n < 0 && errno == EAGAIN) {
			(void)run_for(5);
			continue;
		}
		if (n <= 0)
			abort();
		p += n;
		len -= (size_t)n;
	}
}

/* ---- tests ---- */

static void
test_pipelining(void)
{
	test_begin("mailconn: pipelined commands, answers flushed, close");
	setup("A\r\n");
	client_send("B\r\nQUIT\r\nC\r\n");
	test_assert(run_until_freed(5000));
	/* What is left after the close is read by nobody. */
	client_event(client_fd, IOLOOP_READ, NULL);
	test_assert_streq(buf_cstr(&client_in), "OK A\r\nOK B\r\nBYE\r\n");
	test_assert_streq(freed_reason, "Logged out");
	test_assert(executed == 3);
	/* The pre-read "A\r\n" did not come through the socket. */
	test_assert(freed_in == strlen("B\r\nQUIT\r\nC\r\n"));
	test_assert(freed_out == strlen("OK A\r\nOK B\r\nBYE\r\n"));
	teardown();
	test_end();
}

static void
test_backpressure(void)
{
	size_t big = 1024 * 1024;
	char want[64];

	test_begin("mailconn: a client that does not read stops the answer");
	setup(NULL);
	client_reading = false;
	client_update();
	snprintf(want, sizeof(want), "BIG %zu\r\nAFTER\r\n", big);
	client_send(want);
	test_assert(!run_for(300));	/* nothing can finish */
	test_assert(!freed);
	/* Bounded: the high-water mark plus one step. */
	test_assert(max_out > 0 && max_out <= OUT_HIGH + CHUNK);
	/* AFTER waits: no command is read during a long answer. */
	test_assert(executed == 1);
	test_end();

	test_begin("mailconn: the answer goes on as the client reads");
	client_reading = true;
	client_update();
	client_wait_for = "OK AFTER\r\n";
	test_assert(run_for(5000));
	test_assert(executed == 2);
	test_assert(client_in.len == strlen("+OK\r\n") + big +
	    strlen("\r\n.\r\nOK AFTER\r\n"));
	test_assert(max_out <= OUT_HIGH + CHUNK);
	client_send("QUIT\r\n");
	test_assert(run_until_freed(5000));
	teardown();
	test_end();
}

static void
test_yield(void)
{
	test_begin("mailconn: a step that yields is resumed from the loop");
	setup("SLOW 100000\r\nQUIT\r\n");
	test_assert(run_until_freed(5000));
	client_event(client_fd, IOLOOP_READ, NULL);
	test_assert(client_in.len == strlen("+OK\r\n") + 100000 +
	    strlen("\r\n.\r\nBYE\r\n"));
	test_assert(strcmp(buf_cstr(&client_in) + client_in.len - 5,
	    "BYE\r\n") == 0);
	teardown();
	test_end();
}

static void
test_client_gone(void)
{
	test_begin("mailconn: a client that goes away ends the session");
	setup(NULL);
	client_send("A\r\nB");
	shutdown(client_fd, SHUT_WR);
	test_assert(run_until_freed(5000));
	/* The whole command was answered; the partial one never runs. */
	test_assert(executed == 1);
	test_assert_streq(freed_reason, "(none)");
	teardown();
	test_end();
}

static void
test_idle(void)
{
	test_begin("mailconn: the autologout timer");
	test_proto.idle_ms = 100;
	setup(NULL);
	client_send("A\r\n");
	test_assert(run_until_freed(5000));
	client_event(client_fd, IOLOOP_READ, NULL);
	test_assert_streq(buf_cstr(&client_in), "OK A\r\n* BYE idle\r\n");
	test_assert_streq(freed_reason, "Disconnected for inactivity");
	test_proto.idle_ms = 10 * 1000;
	teardown();
	test_end();
}

static void
test_overlong(void)
{
	char line[3000];

	test_begin("mailconn: input is bounded; the protocol sees the rest");
	setup(NULL);
	memset(line, 'z', sizeof(line) - 3);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	client_send(line);
	client_send("QUIT\r\n");
	test_assert(run_until_freed(5000));
	client_event(client_fd, IOLOOP_READ, NULL);
	test_assert_streq(buf_cstr(&client_in), "ERR too long\r\nBYE\r\n");
	teardown();
	test_end();
}

/* ---- compression ---- */

/* Raw deflate of text, sync-flushed, as a client sends it. */
static void
zcompress(z_stream *zs, const void *data, size_t len, struct buf *out)
{
	char tmp[4096];

	zs->next_in = (Bytef *)data;
	zs->avail_in = (uInt)len;
	do {
		zs->next_out = (Bytef *)tmp;
		zs->avail_out = sizeof(tmp);
		if (deflate(zs, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
			abort();
		buf_append(out, tmp, sizeof(tmp) - zs->avail_out);
	} while (zs->avail_out == 0);
}

/* What the server sent after skip bytes of clear text, inflated. */
static void
zplain(size_t skip, struct buf *out)
{
	z_stream zs;
	char tmp[4096];
	int ret;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, -15) != Z_OK)
		abort();
	buf_reset(out);
	zs.next_in = (Bytef *)client_in.data + skip;
	zs.avail_in = (uInt)(client_in.len - skip);
	do {
		zs.next_out = (Bytef *)tmp;
		zs.avail_out = sizeof(tmp);
		ret = inflate(&zs, Z_SYNC_FLUSH);
		buf_append(out, tmp, sizeof(tmp) - zs.avail_out);
	} while (ret == Z_OK && zs.avail_out == 0);
	(void)inflateEnd(&zs);
}

static void
zinit(z_stream *zs)
{
	memset(zs, 0, sizeof(*zs));
	if (deflateInit2(zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		abort();
}

/* Run until the inflated answers end with want (or ms passed). */
static bool
zwait(const char *want, struct buf *plain, unsigned ms)
{
	size_t wl = strlen(want);
	unsigned waited;

	for (waited = 0; waited < ms; waited += 20) {
		(void)run_for(20);
		if (client_in.len < 6)
			continue;
		zplain(6, plain);
		if (plain->len >= wl && memcmp(plain->data + plain->len - wl,
		    want, wl) == 0)
			return true;
		if (freed)
			break;
	}
	return false;
}

static void
test_compress(void)
{
	struct buf z, plain;
	z_stream zs;
	size_t i;

	test_begin("mailconn: compression both ways, pipelined after Z");
	buf_init(&z, 0);
	buf_init(&plain, 0);
	zinit(&zs);
	setup(NULL);
	buf_append(&z, "Z\r\n", 3);
	zcompress(&zs, "A\r\nBIG 100000\r\nZ\r\n", 18, &z);
	client_send_len(z.data, z.len);
	test_assert(zwait("NO active\r\n", &plain, 5000));
	test_assert(memcmp(client_in.data, "OK Z\r\n", 6) == 0);
	test_assert(plain.len == strlen("OK A\r\n+OK\r\n") + 100000 +
	    strlen("\r\n.\r\nNO active\r\n"));
	test_assert(memcmp(plain.data, "OK A\r\n+OK\r\nxxx", 14) == 0);
	/* 100000 x's: the compressed answer is much smaller. */
	test_assert(client_in.len < 10000);
	test_end();

	test_begin("mailconn: compressed input a byte at a time");
	buf_reset(&z);
	zcompress(&zs, "B\r\nC\r\n", 6, &z);
	for (i = 0; i < z.len; i++) {
		client_send_len(z.data + i, 1);
		(void)run_for(2);
	}
	test_assert(zwait("OK B\r\nOK C\r\n", &plain, 5000));
	test_end();

	test_begin("mailconn: a decompression bomb stays in the buffer");
	buf_reset(&z);
	{
		char *mb = xmalloc(1024 * 1024);

		memset(mb, 'a', 1024 * 1024);
		for (i = 0; i < 16; i++)
			zcompress(&zs, mb, 1024 * 1024, &z);
		free(mb);
	}
	zcompress(&zs, "\r\nQUIT\r\n", 8, &z);
	/* 16 MB in about 16 KB. */
	test_assert(z.len < 64 * 1024);
	client_send_len(z.data, z.len);
	test_assert(run_until_freed(10000));
	client_event(client_fd, IOLOOP_READ, NULL);
	zplain(6, &plain);
	test_assert(strstr(buf_cstr(&plain), "ERR too long\r\nBYE\r\n") !=
	    NULL);
	test_assert_streq(freed_reason, "Logged out");
	teardown();
	test_end();

	test_begin("mailconn: invalid compressed data end the session");
	setup(NULL);
	client_send("Z\r\n\xff\xff\xff\xff" "A\r\n");
	test_assert(run_until_freed(5000));
	client_event(client_fd, IOLOOP_READ, NULL);
	test_assert(client_in.len >= 6 &&
	    memcmp(client_in.data, "OK Z\r\n", 6) == 0);
	test_assert_streq(freed_reason, "Disconnected: Invalid compressed "
	    "data");
	test_assert(executed == 1);
	teardown();
	test_end();
	(void)deflateEnd(&zs);
	buf_free(&z);
	buf_free(&plain);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	ioloop_init();
	test_pipelining();
	test_backpressure();
	test_yield();
	test_client_gone();
	test_idle();
	test_overlong();
	test_compress();
	test_assert(sessions_ended == 8);
	buf_free(&client_in);
	return test_done();
}
