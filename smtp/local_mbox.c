/*
 * local_mbox: append to an mbox mailbox or to a /file destination
 * (DESIGN §3).  Locking is what mutt, Dovecot and procmail understand:
 * a dotlock PATH.lock (created with O_EXCL, stale after
 * LOCAL_DOTLOCK_STALE seconds) and an fcntl write lock, each waited for
 * at most LOCAL_LOCK_WAIT seconds (LOCAL_LOCK_WAIT_NOW for a delivery at
 * accept, where an SMTP client waits), polling at short intervals that
 * grow.  The copy is "From sender date", our headers, the message with
 * mboxrd quoting (">From " and ">>From " ..., RFC 4155) and a blank line;
 * it is fsynced (and its directory too when the mailbox was created)
 * before "sent", and any error truncates the file back to its old size so
 * no partial message remains.
 *
 * A mailbox in mail_spool_directory is created and locked as root (the
 * spool is root:mail 1777 or 2775) and owned by the user, group mail;
 * everything else is written with the recipient's privileges.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "local.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

struct local_out {
	int	 fd;
	char	*buf;
	size_t	 len;
	int	 error;
};

static void
local_out_flush(struct local_out *o)
{
	size_t off = 0;

	while (o->error == 0 && off < o->len) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			o->error = errno;
		else
			off += (size_t)n;
	}
	o->len = 0;
}

static void
local_out_put(struct local_out *o, const char *p, size_t len)
{
	while (len > 0 && o->error == 0) {
		size_t n = LOCAL_IO_CHUNK - o->len;

		if (n > len)
			n = len;
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		p += n;
		len -= n;
		if (o->len == LOCAL_IO_CHUNK)
			local_out_flush(o);
	}
}

/*
 * Copy the message with mboxrd quoting (RFC 4155 §2): a line matching
 * ^>*From  gets one more '>'.  Ensures the copy ends with a newline.
 * Returns 0, or -1 (errno) on a read error.
 */
static int
local_mbox_copy(const struct local_msg *m, struct local_out *o)
{
	char *chunk = xmalloc(LOCAL_IO_CHUNK);
	char pending[256];	/* ">*From" prefix seen at a line start */
	size_t plen = 0;
	off_t pos = 0;
	bool bol = true;
	char last = '\n';

	while (pos < m->qm.msg_size) {
		size_t want = (size_t)(m->qm.msg_size - pos) < LOCAL_IO_CHUNK ?
		    (size_t)(m->qm.msg_size - pos) : LOCAL_IO_CHUNK;
		ssize_t n = pread(m->fd, chunk, want, m->qm.msg_offset + pos);
		size_t i = 0;

		if (n <= 0) {
			free(chunk);
			if (n == 0)
				errno = EIO;
			return -1;
		}
		while (i < (size_t)n) {
			size_t gt, rlen;
			char c;

			if (!bol) {
				char *nl = memchr(chunk + i, '\n',
				    (size_t)n - i);
				size_t end = nl != NULL ?
				    (size_t)(nl - chunk) + 1 : (size_t)n;

				local_out_put(o, chunk + i, end - i);
				i = end;
				bol = nl != NULL;
				continue;
			}
			c = chunk[i++];
			pending[plen++] = c;
			for (gt = 0; gt < plen && pending[gt] == '>'; gt++)
				;
			rlen = plen - gt;
			if (rlen <= 5 &&
			    memcmp(pending + gt, "From ", rlen) == 0) {
				if (rlen == 5) {
					local_out_put(o, ">", 1);
					local_out_put(o, pending, plen);
					plen = 0;
					bol = false;
				} else if (plen == sizeof(pending)) {
					local_out_put(o, pending, plen);
					plen = 0;
					bol = false;
				}
				continue;
			}
			local_out_put(o, pending, plen);
			plen = 0;
			bol = c == '\n';
		}
		last = chunk[n - 1];
		pos += n;
	}
	if (plen > 0)
		local_out_put(o, pending, plen);
	if (last != '\n')
		local_out_put(o, "\n", 1);
	free(chunk);
	return 0;
}

static long long
local_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait before trying a held lock again: 2 ms doubling to 250 ms, so that
 * deliveries queued behind each other on one mailbox follow closely.
 */
static void
local_lock_pause(unsigned *pause_ms)
{
	if (*pause_ms == 0)
		*pause_ms = 2;
	usleep(*pause_ms * 1000);
	if (*pause_ms < 250)
		*pause_ms *= 2;
}

/* Take the dotlock; 1 locked, 0 no dotlock possible here, -1 timeout. */
static int
local_dotlock(const char *lock, unsigned wait)
{
	long long start = local_mono_ms();
	unsigned pause_ms = 0;

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
		if (errno == EACCES || errno == EPERM || errno == EROFS)
			return 0;	/* fcntl locking only */
		if (errno != EEXIST)
			return 0;
		if (lstat(lock, &st) == 0 &&
		    time(NULL) - st.st_mtime > LOCAL_DOTLOCK_STALE) {
			log_warning("removing stale lock file %s", lock);
			(void)unlink(lock);
			continue;
		}
		if (local_mono_ms() - start >= (long long)wait * 1000)
			return -1;
		local_lock_pause(&pause_ms);
	}
}

static int
local_fcntl_lock(int fd, unsigned wait)
{
	long long start = local_mono_ms();
	unsigned pause_ms = 0;
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -1;
		if (local_mono_ms() - start >= (long long)wait * 1000) {
			errno = EAGAIN;
			return -1;
		}
		local_lock_pause(&pause_ms);
	}
	return 0;
}

/* fsync the directory that holds path. */
static int
local_fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL || slash == path ? xstrdup(slash == path ?
	    "/" : ".") : xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	/* A directory we may not open (a /file destination): as before. */
	if (fd >= 0) {
		ret = fsync(fd);
		close(fd);
	}
	free(dir);
	return ret;
}

/* Open (creating if needed) the mailbox; -1 with r set on failure. */
static int
local_mbox_open(const char *path, const struct local_privs *p, bool spool,
    bool check_owner, bool *created_r, struct local_result *r)
{
	struct stat st;
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	*created_r = fd >= 0;
	if (fd >= 0 && spool && local_root_mode()) {
		struct group *gr = getgrnam("mail");

		if (fchown(fd, p->uid, gr != NULL ? gr->gr_gid : p->gid) < 0 ||
		    fchmod(fd, 0600) < 0) {
			local_result_errno(r, errno, "create mailbox");
			close(fd);
			(void)unlink(path);
			return -1;
		}
	} else if (fd < 0 && errno == EEXIST)
		fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			local_result_set(r, LOCAL_DEFER, "4.3.0",
			    "mailbox %s is a symbolic link", path);
		else
			local_result_errno(r, errno, "open mailbox");
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		local_result_errno(r, errno, "fstat mailbox");
		close(fd);
		return -1;
	}
	/* Postfix's checks: no devices, no hard links, not someone else's. */
	if (!S_ISREG(st.st_mode) && !(!check_owner && S_ISCHR(st.st_mode))) {
		local_result_set(r, LOCAL_BOUNCE, "5.2.0",
		    "%s is not a regular file", path);
		close(fd);
		return -1;
	}
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "%s has more than one hard link", path);
		close(fd);
		return -1;
	}
	if (check_owner && local_root_mode() && st.st_uid != p->uid) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "mailbox %s is not owned by %s", path, p->user);
		close(fd);
		return -1;
	}
	return fd;
}

void
local_mbox_deliver(const struct local_msg *m, const char *path,
    const char *final, const struct local_privs *p, bool spool,
    bool check_owner, struct local_result *r)
{
	long long limit = cfg_get_size(local_limit_param(m));
	char *lock = xasprintf("%s.lock", path);
	char *from = NULL, *hdr = NULL;
	struct local_out o;
	struct stat st;
	off_t old_size;
	bool as_user = !(spool && local_root_mode()), created = false;
	unsigned wait = m->lock_wait > 0 ? m->lock_wait : LOCAL_LOCK_WAIT;
	int dot = 0, fd = -1;

	memset(&o, 0, sizeof(o));
	if (as_user && local_privs_enter(p, r) < 0) {
		free(lock);
		return;
	}
	/* A device such as /dev/null takes no locks. */
	if (!check_owner && stat(path, &st) == 0 && S_ISCHR(st.st_mode))
		dot = 0;
	else if ((dot = local_dotlock(lock, wait)) < 0) {
		local_result_set(r, LOCAL_DEFER, "4.2.0",
		    "cannot lock mailbox %s: dotlock held too long", path);
		goto out;
	}
	if ((fd = local_mbox_open(path, p, spool, check_owner, &created,
	    r)) < 0)
		goto out;
	if (fstat(fd, &st) < 0) {
		local_result_errno(r, errno, "fstat mailbox");
		goto out;
	}
	if (S_ISREG(st.st_mode) && local_fcntl_lock(fd, wait) < 0) {
		local_result_set(r, LOCAL_DEFER, "4.2.0",
		    "cannot lock mailbox %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		local_result_errno(r, errno, "fstat mailbox");
		goto out;
	}
	old_size = st.st_size;
	o.fd = fd;
	o.buf = xmalloc(LOCAL_IO_CHUNK);
	from = local_from_line(m);
	hdr = local_prepend_headers(m, final);
	local_out_put(&o, from, strlen(from));
	local_out_put(&o, hdr, strlen(hdr));
	if (local_mbox_copy(m, &o) < 0 && o.error == 0)
		o.error = errno;
	/* The blank line that ends a message in an mbox. */
	local_out_put(&o, "\n", 1);
	local_out_flush(&o);
	if (o.error == 0 && S_ISREG(st.st_mode) && fsync(fd) < 0)
		o.error = errno;
	/* A new mailbox is durable only with its directory entry. */
	if (o.error == 0 && created && local_fsync_parent(path) < 0)
		o.error = errno;
	if (o.error == 0 && S_ISREG(st.st_mode) && limit > 0 &&
	    fstat(fd, &st) == 0 && st.st_size > limit) {
		if (ftruncate(fd, old_size) < 0)
			log_error("%s: cannot truncate %s back to %lld "
			    "bytes: %m", m->qid, path, (long long)old_size);
		local_result_set(r, LOCAL_BOUNCE, "5.2.2", "mailbox full: %s "
		    "would exceed %s", path, local_limit_param(m));
		goto out;
	}
	if (o.error != 0) {
		if (S_ISREG(st.st_mode) && ftruncate(fd, old_size) < 0)
			log_error("%s: cannot truncate %s back to %lld "
			    "bytes: %m", m->qid, path, (long long)old_size);
		local_result_errno(r, o.error, "write mailbox");
		goto out;
	}
	local_result_set(r, LOCAL_SENT, "2.0.0", "delivered to mailbox");
out:
	if (fd >= 0)
		close(fd);	/* releases the fcntl lock */
	if (dot > 0)
		(void)unlink(lock);
	if (as_user)
		local_privs_leave();
	free(o.buf);
	free(from);
	free(hdr);
	free(lock);
}
