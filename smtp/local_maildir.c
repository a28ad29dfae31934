/*
 * local_maildir: delivery into a Maildir (DESIGN §3).  The copy is
 * written to tmp/, fsynced, renamed into new/ and new/ is fsynced; only
 * then is "sent" reported, so qmgr's D record never precedes a durable
 * copy.  The file name is derived from the message and the recipient:
 *
 *   ARRIVALSEC.Q<queue-id>R<index>.<host>,S=<size>
 *
 * so that an attempt repeated after a crash (the "recover" flag) finds
 * the copy it made before and does not write a second one.  The host part
 * has '/' and ':' (and ',') escaped as octal, as Maildir readers expect.
 * The message bytes are copied kernel-side (copy_file_range, sendfile)
 * from the queue file when possible.  Runs with the recipient's
 * privileges (local_privs_enter()).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fdio.h"
#include "cfg.h"
#include "local.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

/* Create dir and its missing parents, mode 0700. */
static int
local_mkdirs(const char *dir)
{
	char *copy, *p;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -1;
	copy = xstrdup(dir);
	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
}


/* Whether dir/sub holds a file whose name starts with prefix. */
static bool
local_maildir_has(const char *dir, const char *sub, const char *prefix)
{
	char *path = xasprintf("%s/%s", dir, sub);
	size_t plen = strlen(prefix);
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(path);

	free(path);
	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) == 0) {
			found = true;
			break;
		}
	}
	closedir(d);
	return found;
}

static char *
local_maildir_host(const char *host)
{
	struct buf b;
	const char *p;

	buf_init(&b, 0);
	for (p = host; *p != '\0'; p++) {
		if (*p == '/')
			buf_append_str(&b, "\\057");
		else if (*p == ':')
			buf_append_str(&b, "\\072");
		else if (*p == ',')
			buf_append_str(&b, "\\054");
		else
			buf_append_char(&b, *p);
	}
	return buf_steal(&b);
}


/*
 * Copy len bytes of the queue file from offset to out: copy_file_range,
 * else sendfile, else read/write.  Returns 0 or -1 (errno).
 */
static int
local_copy_range(int in, off_t offset, off_t len, int out)
{
	off_t done = 0;
	int mode = 0;		/* 0 copy_file_range, 1 sendfile, 2 r/w */
	char *chunk = NULL;

	while (done < len) {
		size_t want = (size_t)(len - done) > LOCAL_IO_CHUNK * 16 ?
		    LOCAL_IO_CHUNK * 16 : (size_t)(len - done);
		off_t pos = offset + done;
		ssize_t n;

		if (mode == 0) {
			n = copy_file_range(in, &pos, out, NULL, want, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL ||
			    errno == ENOSYS || errno == EOPNOTSUPP ||
			    errno == EBADF)) {
				mode = 1;
				continue;
			}
		} else if (mode == 1) {
			n = sendfile(out, in, &pos, want);
			if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
				mode = 2;
				continue;
			}
		} else {
			if (chunk == NULL)
				chunk = xmalloc(LOCAL_IO_CHUNK);
			if (want > LOCAL_IO_CHUNK)
				want = LOCAL_IO_CHUNK;
			n = pread(in, chunk, want, pos);
			if (n > 0 && fdio_write_all(out, chunk, (size_t)n) < 0)
				n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;	/* queue file shorter */
			free(chunk);
			return -1;
		}
		done += n;
	}
	free(chunk);
	return 0;
}

/* Create tmp/NAME; a leftover of an interrupted attempt is replaced. */
static int
local_maildir_create(const char *tmp)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST) {
		(void)unlink(tmp);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	}
	return fd;
}

void
local_maildir_deliver(const struct local_msg *m, const char *dir,
    const char *final, const struct local_privs *p, struct local_result *r)
{
	char *hdr = local_prepend_headers(m, final);
	size_t hlen = strlen(hdr);
	long long limit = cfg_get_size(local_limit_param(m));
	long long size = (long long)hlen + (long long)m->qm.msg_size;
	char *host = NULL, *prefix = NULL, *tmp = NULL, *new = NULL;
	char *sub = NULL, *base;
	size_t dlen;
	int fd = -1, ret;

	base = xstrdup(dir);
	dlen = strlen(base);
	while (dlen > 1 && base[dlen - 1] == '/')
		base[--dlen] = '\0';
	if (limit > 0 && size > limit) {
		local_result_set(r, LOCAL_BOUNCE, "5.2.2", "mailbox full: "
		    "message of %lld bytes exceeds %s", size,
		    local_limit_param(m));
		free(hdr);
		free(base);
		return;
	}
	if (local_privs_enter(p, r) < 0) {
		free(hdr);
		free(base);
		return;
	}
	host = local_maildir_host(m->hostname);
	prefix = xasprintf("%lld.Q%sR%zu.", (long long)m->qm.arrival, m->qid,
	    m->idx);
	/* Exactly-once after a crash (doc/internals.md). */
	if (m->recover && (local_maildir_has(base, "new", prefix) ||
	    local_maildir_has(base, "cur", prefix))) {
		local_result_set(r, LOCAL_SENT, "2.0.0", "delivered to maildir "
		    "(already delivered before restart)");
		goto out;
	}
	tmp = xasprintf("%s/tmp/%s%s,S=%lld", base, prefix, host, size);
	new = xasprintf("%s/new/%s%s,S=%lld", base, prefix, host, size);
	fd = local_maildir_create(tmp);
	if (fd < 0 && errno == ENOENT) {
		/* First delivery: make the Maildir (and missing parents). */
		static const char *const subs[] = { "tmp", "new", "cur" };
		size_t i;

		if (local_mkdirs(base) < 0) {
			local_result_errno(r, errno, "create maildir");
			goto out;
		}
		for (i = 0; i < 3; i++) {
			free(sub);
			sub = xasprintf("%s/%s", base, subs[i]);
			if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
				local_result_errno(r, errno, "create maildir");
				goto out;
			}
		}
		fd = local_maildir_create(tmp);
	}
	if (fd < 0) {
		local_result_errno(r, errno, "create maildir file");
		goto out;
	}
	if (fdio_write_all(fd, hdr, hlen) < 0 ||
	    local_copy_range(m->fd, m->qm.msg_offset, m->qm.msg_size, fd) < 0 ||
	    fsync(fd) < 0) {
		int e = errno;

		close(fd);
		fd = -1;
		(void)unlink(tmp);
		local_result_errno(r, e, "write maildir file");
		goto out;
	}
	if (close(fd) < 0) {
		int e = errno;

		fd = -1;
		(void)unlink(tmp);
		local_result_errno(r, e, "write maildir file");
		goto out;
	}
	fd = -1;
	ret = rename(tmp, new);
	if (ret < 0 && errno == ENOENT) {
		/* tmp/ without new/ (made by hand or by another tool). */
		free(sub);
		sub = xasprintf("%s/cur", base);
		(void)mkdir(sub, 0700);
		free(sub);
		sub = xasprintf("%s/new", base);
		(void)mkdir(sub, 0700);
		ret = rename(tmp, new);
	}
	if (ret < 0) {
		int e = errno;

		(void)unlink(tmp);
		local_result_errno(r, e, "rename into maildir new/");
		goto out;
	}
	free(sub);
	sub = xasprintf("%s/new", base);
	if (fdio_fsync_dir(sub) < 0) {
		/* The copy may not survive a power loss: try again later,
		 * the recover check prevents a duplicate. */
		local_result_errno(r, errno, "fsync maildir new/");
		goto out;
	}
	local_result_set(r, LOCAL_SENT, "2.0.0", "delivered to maildir");
out:
	if (fd >= 0)
		close(fd);
	local_privs_leave();
	free(hdr);
	free(host);
	free(prefix);
	free(tmp);
	free(new);
	free(sub);
	free(base);
}
