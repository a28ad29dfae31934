/*
 * Unit tests of common/tlsio.c over a plaintext non-blocking socketpair
 * (its TLS paths run in the TLS integration tests): reads bounded by the
 * step and the buffer's maximum, EAGAIN with nothing there or a full
 * buffer, the end of the stream, flushing into a full socket (what was
 * taken is consumed, the rest waits), a broken connection, and the
 * events to wait for.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "ioloop.h"
#include "test.h"
#include "tlsio.h"

static void
pair(int sv[2])
{
	int i;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	for (i = 0; i < 2; i++)
		(void)fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
}

static void
test_read(void)
{
	struct buf b;
	int sv[2], want = 123;
	ssize_t n;

	pair(sv);
	buf_init(&b, 10);
	test_begin("tlsio_read: nothing there is EAGAIN");
	n = tlsio_read(NULL, sv[0], &b, 4, &want);
	test_assert(n == -1 && errno == EAGAIN && b.len == 0);
	test_end();

	test_begin("tlsio_read: at most step bytes, never past max");
	test_assert(write(sv[1], "0123456789abcdef", 16) == 16);
	test_assert(tlsio_read(NULL, sv[0], &b, 4, &want) == 4);
	test_assert(b.len == 4 && memcmp(b.data, "0123", 4) == 0);
	test_assert(tlsio_read(NULL, sv[0], &b, 100, &want) == 6);
	test_assert(b.len == 10 && memcmp(b.data, "0123456789", 10) == 0);
	/* Full: EAGAIN, and the rest stays in the socket. */
	n = tlsio_read(NULL, sv[0], &b, 100, &want);
	test_assert(n == -1 && errno == EAGAIN && b.len == 10);
	buf_consume(&b, 10);
	test_assert(tlsio_read(NULL, sv[0], &b, 100, &want) == 6);
	test_assert(b.len == 6 && memcmp(b.data, "abcdef", 6) == 0);
	/* A plaintext read leaves the TLS wait alone. */
	test_assert(want == 123);
	test_end();

	test_begin("tlsio_read: end of the stream is 0");
	close(sv[1]);
	test_assert(tlsio_read(NULL, sv[0], &b, 100, &want) == 0);
	test_assert(b.len == 6);
	test_end();
	close(sv[0]);
	buf_free(&b);
}

static void
test_flush(void)
{
	struct buf b, sink;
	int sv[2], want = 0;
	size_t total = 4 * 1024 * 1024, got = 0, sent = 0;
	ssize_t n;

	pair(sv);
	buf_init(&b, 0);
	buf_init(&sink, 0);
	test_begin("tlsio_flush: an empty buffer writes nothing");
	test_assert(tlsio_flush(NULL, sv[0], &b, &want) == 0);
	test_end();

	test_begin("tlsio_flush: a full socket keeps the rest");
	if (buf_reserve(&b, total) == 0) {
		size_t i;

		for (i = 0; i < total; i++)
			b.data[i] = (char)('a' + i % 26);
		b.len = total;
	}
	n = tlsio_flush(NULL, sv[0], &b, &want);
	test_assert(n > 0 && (size_t)n < total);
	test_assert(b.len == total - (size_t)n);
	sent = (size_t)n;
	/* The bytes left are the ones not sent, in order. */
	test_assert(b.len > 0 && b.data[0] == (char)('a' + sent % 26));
	while (b.len > 0 || got < total) {
		n = tlsio_read(NULL, sv[1], &sink, 65536, &want);
		if (n > 0) {
			got += (size_t)n;
			buf_consume(&sink, (size_t)n);
		}
		n = tlsio_flush(NULL, sv[0], &b, &want);
		if (n < 0)
			break;
		sent += (size_t)n;
	}
	test_assert(sent == total && got == total && b.len == 0);
	test_end();

	test_begin("tlsio_flush: a broken connection is an error");
	close(sv[1]);
	buf_append(&b, "hello", 5);
	n = tlsio_flush(NULL, sv[0], &b, &want);
	test_assert(n == -1 && errno == EPIPE);
	test_end();
	close(sv[0]);
	buf_free(&b);
	buf_free(&sink);
}

static void
test_events(void)
{
	test_begin("tlsio_events");
	test_assert(tlsio_events(false, 0, false, 0) == 0);
	test_assert(tlsio_events(true, 0, false, 0) == IOLOOP_READ);
	test_assert(tlsio_events(false, 0, true, 0) == IOLOOP_WRITE);
	test_assert(tlsio_events(true, 0, true, 0) ==
	    (IOLOOP_READ | IOLOOP_WRITE));
	/* A TLS read that waits for the socket to be writable. */
	test_assert(tlsio_events(true, IOLOOP_WRITE, false, 0) ==
	    IOLOOP_WRITE);
	test_assert(tlsio_events(false, IOLOOP_WRITE, true, IOLOOP_READ) ==
	    IOLOOP_READ);
	test_assert(!tlsio_pending(NULL));
	test_end();
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_read();
	test_flush();
	test_events();
	return test_done();
}
