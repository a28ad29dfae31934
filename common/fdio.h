/*
 * fdio: the few file descriptor helpers every role needs: writing a whole
 * buffer through short writes and EINTR, and making a directory entry
 * durable.  Nothing here buffers or allocates.
 */
#ifndef POSTERN_FDIO_H
#define POSTERN_FDIO_H

#include <stddef.h>

/* Write all len bytes; 0, or -1 with errno set (EPIPE etc.). */
int	fdio_write_all(int fd, const void *data, size_t len);
/*
 * fsync the directory dir, so that entries created or renamed in it
 * survive a crash (DESIGN §3).  0, or -1 with errno set.
 */
int	fdio_fsync_dir(const char *dir);

#endif
