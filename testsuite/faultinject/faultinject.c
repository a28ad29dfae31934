/*
 * faultinject: an LD_PRELOAD library that makes file system calls fail,
 * so that the tests can show what a client sees when a disk breaks or
 * fills up (testsuite/integration/test_faultinject.py).
 *
 * The calls that write or commit data -- write, pwrite, writev, fsync,
 * fdatasync, rename, link and open/openat with O_CREAT -- fail with a
 * chosen errno when they touch a path matching a glob, in processes whose
 * name matches, after a number of such calls have been let through.
 * Configured by the environment, read once per process:
 *
 *   POSTERN_FI_PATH     fnmatch(3) glob of absolute paths (required; a
 *                       relative path is taken from the working
 *                       directory, an fd's path from /proc/self/fd)
 *   POSTERN_FI_PROC     comma list of globs of process names (the base
 *                       name of argv[0]); default every process
 *   POSTERN_FI_ERRNO    ENOSPC (default), EIO or EDQUOT
 *   POSTERN_FI_CALLS    comma list of the calls above that may fail
 *                       (write covers pwrite and writev; open covers
 *                       openat); default all but unlink, which fails
 *                       only when named (deleting a Maildir message)
 *   POSTERN_FI_AFTER    let this many matching calls of each process
 *                       succeed before the failures start (default 0)
 *   POSTERN_FI_CONTROL  a file: the faults are armed only while it
 *                       exists, so a test can remove a fault from
 *                       running processes
 *
 * Each injected failure is written as one line to stderr (it lands in the
 * server log): "faultinject: PROC: CALL PATH: ERRNO".  Writes to sockets,
 * pipes and terminals never match (their /proc names are not paths).
 *
 * Deliberately not covered: stdio's own buffered writes (Postern does not
 * write files through stdio) and mmap'd stores.  This is test code: it
 * is never installed.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FI_WRITE	0x01
#define FI_FSYNC	0x02
#define FI_FDATASYNC	0x04
#define FI_RENAME	0x08
#define FI_LINK		0x10
#define FI_OPEN		0x20
#define FI_UNLINK	0x40

static int fi_ready;		/* 1 = configured, -1 = off here */
static const char *fi_path;
static const char *fi_control;
static int fi_errno = ENOSPC;
static unsigned fi_calls = ~0u & ~FI_UNLINK;
static long fi_after;
static long fi_seen;
static char fi_proc[64];

static const struct {
	const char *name;
	unsigned bit;
} fi_call_names[] = {
	{ "write", FI_WRITE }, { "fsync", FI_FSYNC },
	{ "fdatasync", FI_FDATASYNC }, { "rename", FI_RENAME },
	{ "link", FI_LINK }, { "open", FI_OPEN }, { "unlink", FI_UNLINK },
};

#define FI_NCALLS	(sizeof(fi_call_names) / sizeof(fi_call_names[0]))

/* Does name match one of the globs in a comma list? */
static int
fi_list_match(const char *list, const char *name)
{
	char glob[256];
	const char *p, *e;
	size_t n;

	for (p = list; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		n = (size_t)(e - p);
		if (n == 0 || n >= sizeof(glob))
			continue;
		memcpy(glob, p, n);
		glob[n] = '\0';
		if (fnmatch(glob, name, 0) == 0)
			return 1;
	}
	return 0;
}

static void
fi_init(void)
{
	const char *s, *procs;
	size_t i;

	if (fi_ready != 0)
		return;
	fi_ready = -1;
	if ((fi_path = getenv("POSTERN_FI_PATH")) == NULL || *fi_path == '\0')
		return;
	/* program_invocation_short_name is argv[0]'s base name. */
	snprintf(fi_proc, sizeof(fi_proc), "%s",
	    program_invocation_short_name);
	if ((procs = getenv("POSTERN_FI_PROC")) != NULL && *procs != '\0' &&
	    !fi_list_match(procs, fi_proc))
		return;
	if ((s = getenv("POSTERN_FI_ERRNO")) != NULL) {
		if (strcmp(s, "EIO") == 0)
			fi_errno = EIO;
		else if (strcmp(s, "EDQUOT") == 0)
			fi_errno = EDQUOT;
		else
			fi_errno = ENOSPC;
	}
	if ((s = getenv("POSTERN_FI_CALLS")) != NULL && *s != '\0') {
		fi_calls = 0;
		for (i = 0; i < FI_NCALLS; i++)
			if (fi_list_match(s, fi_call_names[i].name))
				fi_calls |= fi_call_names[i].bit;
	}
	if ((s = getenv("POSTERN_FI_AFTER")) != NULL)
		fi_after = strtol(s, NULL, 10);
	fi_control = getenv("POSTERN_FI_CONTROL");
	if (fi_control != NULL && *fi_control == '\0')
		fi_control = NULL;
	fi_ready = 1;
}

/* The absolute form of a path given to a call (relative to dirfd). */
static void
fi_abs(int dirfd, const char *path, char *out, size_t size)
{
	char dir[PATH_MAX], link[64];
	ssize_t n;

	if (path[0] == '/' || size == 0) {
		snprintf(out, size, "%s", path);
		return;
	}
	if (dirfd == AT_FDCWD) {
		if (getcwd(dir, sizeof(dir)) == NULL)
			dir[0] = '\0';
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		if ((n = readlink(link, dir, sizeof(dir) - 1)) < 0)
			n = 0;
		dir[n] = '\0';
	}
	snprintf(out, size, "%s/%s", dir, path);
}

static void
fi_fd_path(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, out, size - 1)) < 0)
		n = 0;
	out[n] = '\0';
}

/*
 * Should this call fail?  Sets errno and logs when it should.  path2 is
 * the second path of rename and link (either matching is enough).
 */
static int
fi_fail(unsigned call, const char *name, const char *path,
    const char *path2)
{
	char line[PATH_MAX + 128];
	int saved = errno, n;
	const char *hit;

	fi_init();
	if (fi_ready != 1 || (fi_calls & call) == 0)
		return 0;
	if (fnmatch(fi_path, path, 0) == 0)
		hit = path;
	else if (path2 != NULL && fnmatch(fi_path, path2, 0) == 0)
		hit = path2;
	else
		return 0;
	if (fi_control != NULL && access(fi_control, F_OK) < 0) {
		errno = saved;
		return 0;
	}
	if (fi_seen++ < fi_after) {
		errno = saved;
		return 0;
	}
	n = snprintf(line, sizeof(line), "faultinject: %s: %s %s: %s\n",
	    fi_proc, name, hit, strerror(fi_errno));
	if (n > 0)
		(void)!write(2, line, (size_t)n < sizeof(line) ?
		    (size_t)n : sizeof(line) - 1);
	errno = fi_errno;
	return 1;
}

static int
fi_fail_fd(unsigned call, const char *name, int fd)
{
	char path[PATH_MAX];

	fi_init();
	if (fi_ready != 1 || (fi_calls & call) == 0)
		return 0;
	fi_fd_path(fd, path, sizeof(path));
	if (path[0] != '/')
		return 0;
	return fi_fail(call, name, path, NULL);
}

#define FI_NEXT(type, name) \
	static type next; \
	if (next == NULL) \
		next = (type)dlsym(RTLD_NEXT, name)

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*link_fn)(const char *, const char *);
typedef int (*linkat_fn)(int, const char *, int, const char *, int);
typedef int (*unlink_fn)(const char *);
typedef int (*unlinkat_fn)(int, const char *, int);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

ssize_t
write(int fd, const void *buf, size_t len)
{
	FI_NEXT(write_fn, "write");
	/* fd 2 is where the log line goes. */
	if (fd != 2 && fi_fail_fd(FI_WRITE, "write", fd))
		return -1;
	return next(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	FI_NEXT(pwrite_fn, "pwrite");
	if (fi_fail_fd(FI_WRITE, "pwrite", fd))
		return -1;
	return next(fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	FI_NEXT(pwrite_fn, "pwrite64");
	if (fi_fail_fd(FI_WRITE, "pwrite", fd))
		return -1;
	return next(fd, buf, len, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	FI_NEXT(writev_fn, "writev");
	if (fi_fail_fd(FI_WRITE, "writev", fd))
		return -1;
	return next(fd, iov, cnt);
}

int
fsync(int fd)
{
	FI_NEXT(sync_fn, "fsync");
	if (fi_fail_fd(FI_FSYNC, "fsync", fd))
		return -1;
	return next(fd);
}

int
fdatasync(int fd)
{
	FI_NEXT(sync_fn, "fdatasync");
	if (fi_fail_fd(FI_FDATASYNC, "fdatasync", fd))
		return -1;
	return next(fd);
}

int
rename(const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	FI_NEXT(rename_fn, "rename");
	fi_init();
	if (fi_ready == 1) {
		fi_abs(AT_FDCWD, from, a, sizeof(a));
		fi_abs(AT_FDCWD, to, b, sizeof(b));
		if (fi_fail(FI_RENAME, "rename", a, b))
			return -1;
	}
	return next(from, to);
}

int
renameat(int fd1, const char *from, int fd2, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	FI_NEXT(renameat_fn, "renameat");
	fi_init();
	if (fi_ready == 1) {
		fi_abs(fd1, from, a, sizeof(a));
		fi_abs(fd2, to, b, sizeof(b));
		if (fi_fail(FI_RENAME, "rename", a, b))
			return -1;
	}
	return next(fd1, from, fd2, to);
}

int
link(const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	FI_NEXT(link_fn, "link");
	fi_init();
	if (fi_ready == 1) {
		fi_abs(AT_FDCWD, from, a, sizeof(a));
		fi_abs(AT_FDCWD, to, b, sizeof(b));
		if (fi_fail(FI_LINK, "link", a, b))
			return -1;
	}
	return next(from, to);
}

int
linkat(int fd1, const char *from, int fd2, const char *to, int flags)
{
	char a[PATH_MAX], b[PATH_MAX];

	FI_NEXT(linkat_fn, "linkat");
	fi_init();
	if (fi_ready == 1) {
		fi_abs(fd1, from, a, sizeof(a));
		fi_abs(fd2, to, b, sizeof(b));
		if (fi_fail(FI_LINK, "link", a, b))
			return -1;
	}
	return next(fd1, from, fd2, to, flags);
}

int
unlink(const char *path)
{
	char a[PATH_MAX];

	FI_NEXT(unlink_fn, "unlink");
	fi_init();
	if (fi_ready == 1 && (fi_calls & FI_UNLINK) != 0) {
		fi_abs(AT_FDCWD, path, a, sizeof(a));
		if (fi_fail(FI_UNLINK, "unlink", a, NULL))
			return -1;
	}
	return next(path);
}

int
unlinkat(int dirfd, const char *path, int flags)
{
	char a[PATH_MAX];

	FI_NEXT(unlinkat_fn, "unlinkat");
	fi_init();
	if (fi_ready == 1 && (fi_calls & FI_UNLINK) != 0) {
		fi_abs(dirfd, path, a, sizeof(a));
		if (fi_fail(FI_UNLINK, "unlink", a, NULL))
			return -1;
	}
	return next(dirfd, path, flags);
}

static int
fi_open_fails(int dirfd, const char *path, int flags)
{
	char a[PATH_MAX];

	if ((flags & O_CREAT) == 0)
		return 0;
	fi_init();
	if (fi_ready != 1 || (fi_calls & FI_OPEN) == 0)
		return 0;
	fi_abs(dirfd, path, a, sizeof(a));
	return fi_fail(FI_OPEN, "open", a, NULL);
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	FI_NEXT(open_fn, "open");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fi_open_fails(AT_FDCWD, path, flags))
		return -1;
	return next(path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	FI_NEXT(open_fn, "open64");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fi_open_fails(AT_FDCWD, path, flags))
		return -1;
	return next(path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	FI_NEXT(openat_fn, "openat");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fi_open_fails(dirfd, path, flags))
		return -1;
	return next(dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	FI_NEXT(openat_fn, "openat64");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fi_open_fails(dirfd, path, flags))
		return -1;
	return next(dirfd, path, flags, mode);
}
