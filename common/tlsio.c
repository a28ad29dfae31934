/*
 * tlsio: reading and writing a client connection that is plaintext or
 * TLS (see tlsio.h).  One place for the EAGAIN and want-the-other-
 * direction rules of tls_conn_read() and tls_conn_write(), and for the
 * OpenSSL rule that a write retried after EAGAIN must offer the same
 * bytes again: the output is consumed from the buffer only after the
 * loop, never shrinking what the next call offers.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <unistd.h>

#include "ioloop.h"
#include "tlsio.h"

ssize_t
tlsio_read(struct tls_conn *tls, int fd, struct buf *b, size_t step,
    int *rwant_r)
{
	size_t room = step;
	ssize_t n;

	/* max 0: the buffer is unbounded. */
	if (b->max > 0 && b->max - b->len < room)
		room = b->max - b->len;
	if (room == 0 || buf_reserve(b, room) < 0) {
		errno = EAGAIN;
		return -1;
	}
	for (;;) {
		if (tls != NULL) {
			*rwant_r = 0;
			n = tls_conn_read(tls, b->data + b->len, room);
			if (n < 0 && errno == EAGAIN)
				*rwant_r = tls_conn_want(tls);
		} else
			n = read(fd, b->data + b->len, room);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0) {
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		return -1;
	}
	b->len += (size_t)n;
	return n;
}

ssize_t
tlsio_flush(struct tls_conn *tls, int fd, struct buf *b, int *wwant_r)
{
	size_t off = 0;
	int saved;

	while (off < b->len) {
		ssize_t n;

		if (tls != NULL) {
			*wwant_r = 0;
			n = tls_conn_write(tls, b->data + off, b->len - off);
			if (n < 0 && errno == EAGAIN)
				*wwant_r = tls_conn_want(tls);
		} else
			n = send(fd, b->data + off, b->len - off,
			    MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			saved = errno;
			buf_consume(b, off);
			errno = saved;
			return -1;
		}
		off += (size_t)n;
	}
	buf_consume(b, off);
	return (ssize_t)off;
}

int
tlsio_events(bool rd, int rwant, bool wr, int wwant)
{
	int ev = 0;

	if (rd)
		ev |= rwant != 0 ? rwant : IOLOOP_READ;
	if (wr)
		ev |= wwant != 0 ? wwant : IOLOOP_WRITE;
	return ev;
}

int
tlsio_handshake_events(const struct tls_conn *tls)
{
	int ev = tls_conn_want(tls);

	return ev != 0 ? ev : IOLOOP_READ;
}

bool
tlsio_pending(const struct tls_conn *tls)
{
	return tls != NULL && tls_conn_pending(tls) > 0;
}
