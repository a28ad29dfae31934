/*
 * fdio: the few file descriptor helpers every role needs: writing a whole
 * buffer through short writes and EINTR, and making a directory entry
 * durable.  Nothing here buffers or allocates.
 */
#ifndef POSTERN_FDIO_H
#define POSTERN_FDIO_H

#include <stddef.h>
#include <sys/types.h>

/* Write all len bytes; 0, or -1 with errno set (EPIPE etc.). */
int	fdio_write_all(int fd, const void *data, size_t len);
/*
 * fsync the directory dir, so that entries created or renamed in it
 * survive a crash (DESIGN §3).  0, or -1 with errno set.
 */
int	fdio_fsync_dir(const char *dir);

/*
 * Create a non-blocking, close-on-exec UNIX socket of type (SOCK_STREAM,
 * SOCK_DGRAM) bound to path (a stale socket file is removed first), with
 * permissions mode; stream sockets also listen with backlog.  Returns the
 * fd, or -1 with errno set (ENAMETOOLONG when path does not fit).
 */
int	fdio_unix_bind(const char *path, int type, mode_t mode, int backlog);

#endif
