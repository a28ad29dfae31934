/*
 * fdpass: one packet with a descriptor over a SOCK_SEQPACKET socket
 * (SCM_RIGHTS), as posternd, the login processes and the mail processes
 * pass clients to each other (doc/internals.md, "Handing a logged-in
 * session").  Never blocks; what a packet says is the caller's business.
 */
#ifndef POSTERN_FDPASS_H
#define POSTERN_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Send len bytes as one packet, with descriptor fd attached unless it is
 * -1 (fd stays the caller's).  0, or -1 with errno (EAGAIN: the socket
 * is full; EMSGSIZE: the packet did not go out whole).
 */
int	fdpass_send(int sock, const void *data, size_t len, int fd);
/*
 * Receive one packet of at most size bytes into buf.  The descriptors
 * that came with it (close-on-exec) go to fds, at most maxfds.  Returns
 * the length, 0 at the end of the stream (or for an empty packet, which
 * no sender of ours sends), -1 with errno (EAGAIN: nothing there;
 * EMSGSIZE: the packet was longer than size or carried more than maxfds
 * descriptors, which is a protocol error: every descriptor that came
 * with it is closed).
 */
ssize_t	fdpass_recv(int sock, void *buf, size_t size, int *fds,
	    size_t maxfds, size_t *nfds_r);

#endif
