/*
 * fdpass: a packet and a descriptor over a SOCK_SEQPACKET socket (see
 * fdpass.h).  The control buffer takes a few descriptors more than the
 * callers accept, so that a peer sending too many is told apart from a
 * truncated packet and every descriptor it sent can be closed.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"

/* Descriptors one packet may bring before the rest is cut (MSG_CTRUNC). */
#define FDPASS_MAX_FDS	8

int
fdpass_send(int sock, const void *data, size_t len, int fd)
{
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

ssize_t
fdpass_recv(int sock, void *buf, size_t size, int *fds, size_t maxfds,
    size_t *nfds_r)
{
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX_FDS)];
	} cm;
	struct cmsghdr *c;
	bool cut;
	ssize_t n;

	*nfds_r = 0;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = buf;
	iov.iov_len = size;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		return -1;
	}
	cut = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		size_t i, k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
			    sizeof(int));
			if (*nfds_r < maxfds)
				fds[(*nfds_r)++] = fd;
			else {
				(void)close(fd);
				cut = true;
			}
		}
	}
	if (cut) {
		size_t i;

		for (i = 0; i < *nfds_r; i++)
			(void)close(fds[i]);
		*nfds_r = 0;
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}
