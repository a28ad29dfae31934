/*
 * tlsio: the byte moving of a server's client connection that is either
 * plaintext or TLS (common/tls.h), for the servers driven by the ioloop
 * (smtpd, the login processes): reading into a bounded buffer, flushing
 * an output buffer, and which events to wait for when a TLS read needs
 * the socket writable or a TLS write needs it readable (a TLS 1.3 key
 * update, a renegotiation attempt, a handshake record).
 *
 * The caller keeps its tls_conn (NULL while the connection is
 * plaintext), its descriptor and, per direction, the event the last TLS
 * call waits for (0: none); these functions take them as arguments.  They
 * do not log, close, or touch the ioloop.
 */
#ifndef POSTERN_TLSIO_H
#define POSTERN_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "tls.h"

/*
 * Read what is there into b, at most step bytes and never past b->max
 * (when b has one), from tls or, when tls is NULL, from fd.  Returns the
 * bytes appended; 0 at the end of the stream; -1 with errno EAGAIN when
 * nothing can be read now (b full, or wait for the event *rwant_r says,
 * IOLOOP_READ when 0); -1 with another errno when the connection broke.
 */
ssize_t	tlsio_read(struct tls_conn *tls, int fd, struct buf *b, size_t step,
	    int *rwant_r);
/*
 * Write b from its start until it is empty or the socket is full; what
 * was written is consumed from b.  Returns the bytes written (0 too), or
 * -1 with errno when the connection broke (what was written before is
 * consumed all the same).  When output is left, *wwant_r is the event
 * TLS waits for (0: IOLOOP_WRITE).
 */
ssize_t	tlsio_flush(struct tls_conn *tls, int fd, struct buf *b,
	    int *wwant_r);
/*
 * The events to wait for when the caller wants to read (rd) and/or to
 * write (wr): IOLOOP_READ / IOLOOP_WRITE, or what the last TLS read
 * (rwant) or write (wwant) waits for.
 */
int	tlsio_events(bool rd, int rwant, bool wr, int wwant);
/* The events a TLS handshake under way waits for. */
int	tlsio_handshake_events(const struct tls_conn *tls);
/*
 * Whether OpenSSL holds received data that epoll cannot see: read again
 * from the loop (a zero timer) before waiting for IOLOOP_READ.
 */
bool	tlsio_pending(const struct tls_conn *tls);

#endif
