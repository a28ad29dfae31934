/*
 * store_lock: the two kinds of lock the store takes.  fcntl locks, for
 * the UID map's lock file and for reading or rewriting an mbox; and the
 * dotlock PATH.lock that mutt, procmail and local take on an mbox
 * (created with O_EXCL, stale after STORE_DOTLOCK_STALE seconds).  Both
 * are polled with short pauses that grow, for at most a given time: the
 * holders (local appending one message, another mail process updating
 * the map) keep them for milliseconds.
 *
 * fcntl locks belong to the process and go away when any descriptor of
 * the file is closed, so the store opens a lock's descriptor just for
 * the locked work and closes it at the end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_private.h"

long long
store_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 ms doubling to 100 ms: a lock is usually free again very soon. */
static void
store_lock_pause(unsigned int *pause_ms)
{
	if (*pause_ms == 0)
		*pause_ms = 1;
	usleep(*pause_ms * 1000);
	if (*pause_ms < 100)
		*pause_ms *= 2;
}

int
store_fcntl_lock(int fd, short type, unsigned int wait)
{
	long long start = store_mono_ms();
	unsigned int pause_ms = 0;
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -1;
		if (store_mono_ms() - start >= (long long)wait * 1000) {
			errno = EAGAIN;
			return -1;
		}
		store_lock_pause(&pause_ms);
	}
	return 0;
}

int
store_dotlock(const char *lock, unsigned int wait)
{
	long long start = store_mono_ms();
	unsigned int pause_ms = 0;

	for (;;) {
		struct stat st;
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);

		if (fd >= 0) {
			char pid[32];
			int len = snprintf(pid, sizeof(pid), "%ld\n",
			    (long)getpid());

			(void)!write(fd, pid, (size_t)len);
			close(fd);
			return 1;
		}
		/* A spool directory we may not create files in: fcntl
		 * locking only, as local does. */
		if (errno != EEXIST)
			return 0;
		if (lstat(lock, &st) == 0 &&
		    time(NULL) - st.st_mtime > STORE_DOTLOCK_STALE) {
			log_warning("removing stale lock file %s", lock);
			(void)unlink(lock);
			continue;
		}
		if (store_mono_ms() - start >= (long long)wait * 1000) {
			errno = EAGAIN;
			return -1;
		}
		store_lock_pause(&pause_ms);
	}
}
