/*
 * store_mbox: the mbox backend (DESIGN §6).  An mbox is one file of
 * messages, each starting with a "From " line at the start of the file
 * or after a blank line (RFC 4155); the blank line before a "From " line
 * (and at the end of the file) separates messages and is no part of
 * them.  Messages written by local, mail(1), procmail or mutt all read
 * this way; Content-Length headers are not trusted.
 *
 * UIDs cannot live in the mbox (we may not rewrite a spool file for
 * them, and other programs rewrite it at will), so the UID map
 * (store_uidmap.c) is a file outside it, in ROOT/.postern/NAME.uidlist,
 * keyed by a fingerprint that does not depend on where the message is:
 * a hash of the "From " line, the Message-ID: and Date: values and the
 * size of the body.  The body size rather than the message size, because
 * mutt and others add or rewrite Status: headers when they mark a message
 * read.  Identical messages (same fingerprint) are told apart by their
 * order ("<hash>-<n>" for the n-th copy), so deleting one of two
 * identical copies may move the first copy's UID to the second; nothing
 * else can make a message change its UID, and deletions or appends by
 * other programs keep the UIDs of every other message.
 *
 * Flags: the Status: (R seen) and X-Status: (A answered, F flagged, D
 * deleted, T draft) headers are read.  Changes made through the store are
 * kept in the UID map together with the header flags they replace, and
 * not written into the mbox: when another program later changes the
 * headers, the headers win again.  Keywords live in the map only.
 *
 * Locking as local, mutt and procmail do it: a sync reads the file under
 * an fcntl read lock; an expunge takes the dotlock PATH.lock (when the
 * directory lets us) and an fcntl write lock.
 *
 * Expunge compacts the file in place, as MUAs do, since another program
 * may hold the file open (a writer waiting for the lock would otherwise
 * append to a replaced file and its mail would be lost).  Mail must not
 * be lost on a crash in the middle, so the part behind the first deleted
 * message is first written, without the deleted messages, to
 * ROOT/.postern/NAME.expunge (fsynced, with the offset and the old size
 * in its first line), then copied back over the mbox, which is truncated
 * and fsynced; then the copy is removed.  When a crash interrupted the
 * copy back, the next read-write open under the mbox lock finds the
 * file: if the mbox still has its old size, the copy back is done again;
 * if it already has the new size, the copy is simply removed; otherwise
 * (someone appended to a damaged mbox) it is kept as
 * NAME.expunge.failed.TIME, logged, for the admin to merge.
 *
 * Reading a message rechecks its "From " line first, so a message moved
 * by a rewrite since the last sync is an error, not wrong bytes.  A
 * rewrite by another program while a message is being read is not
 * noticed (no lock is held while a client drains a message).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

/* Bytes a line start can see ahead of it: a header value we keep fits. */
#define MBOX_LOOKAHEAD		1024
#define MBOX_EXPUNGE_MAGIC	"postern-mbox-expunge 1"

struct mbox_msg {
	off_t		 from_off;
	off_t		 body_off;
	off_t		 end_off;
	uint64_t	 vsize;
	uint64_t	 fp;		/* fingerprint */
	uint64_t	 from_hash;	/* of the "From " line */
	uint32_t	 hdr_flags;
	int64_t		 date;		/* of the "From " line, or -1 */
	char		 key[40];
};

struct mbox_ctx {
	char		*lock_path;	/* the dotlock */
	char		*backup;	/* NAME.expunge */
	/* the last parse */
	bool		 parsed;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
	time_t		 parse_time;
	bool		 ends_blank;	/* ended with a separator line */
	struct mbox_msg	*msgs;		/* file order */
	size_t		 count, cap;
	ino_t		 map_ino;
	off_t		 map_off;
	ino_t		 watched_ino;
};

static const char *
mbox_err(struct store_mailbox *mb, const char *what, const char *path)
{
	return store_error(&mb->error, "%s(%s) failed: %s", what, path,
	    strerror(errno));
}

/* ---- parsing ---- */

struct mbox_parser {
	int		 fd;
	char		*buf;
	size_t		 len, pos;
	off_t		 buf_off;	/* file offset of buf[0] */
	bool		 eof;
	/* the message being read */
	bool		 active;
	bool		 in_from;	/* rest of a long "From " line */
	bool		 in_hdr;
	struct mbox_msg	 cur;
	struct store_filter f;
	off_t		 body_start;	/* after the header's blank line */
	char		 msgid[MAX_STORE_MBOX_HDR];
	size_t		 msgid_len;
	char		 date[MAX_STORE_MBOX_HDR];
	size_t		 date_len;
	/* the line before */
	bool		 prev_blank;
	off_t		 prev_blank_off;
};

static uint64_t
mbox_from_hash(const char *line, size_t len)
{
	const char *nl = memchr(line, '\n', len);

	if (nl != NULL)
		len = (size_t)(nl - line);
	if (len > MAX_STORE_MBOX_HDR)
		len = MAX_STORE_MBOX_HDR;
	return store_hash_fnv(STORE_FNV_INIT, line, len);
}

/* The asctime date of a "From sender date" line (RFC 4155), local time
 * as local writes it. */
static int64_t
mbox_from_date(const char *line, size_t len)
{
	char copy[MAX_STORE_MBOX_HDR + 1];
	const char *nl = memchr(line, '\n', len);
	char *p;

	if (nl != NULL)
		len = (size_t)(nl - line);
	if (len > MAX_STORE_MBOX_HDR)
		len = MAX_STORE_MBOX_HDR;
	memcpy(copy, line, len);
	copy[len] = '\0';
	for (p = copy + 5; (p = strchr(p, ' ')) != NULL; p++) {
		struct tm tm;
		char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(p + 1, "%a %b %e %H:%M:%S %Y", &tm);
		if (end != NULL) {
			tm.tm_isdst = -1;
			return (int64_t)mktime(&tm);
		}
	}
	return -1;
}

static void
mbox_header(struct mbox_parser *ps, const char *line, size_t len)
{
	static const struct {
		const char *name;
		int what;
	} names[] = {
		{ "status:", 0 }, { "x-status:", 1 }, { "message-id:", 2 },
		{ "date:", 3 }
	};
	size_t i, nlen, vlen;
	const char *v;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		nlen = strlen(names[i].name);
		if (len >= nlen && strncasecmp(line, names[i].name, nlen) == 0)
			break;
	}
	if (i == sizeof(names) / sizeof(names[0]))
		return;
	v = line + nlen;
	vlen = len - nlen;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	if (vlen > MAX_STORE_MBOX_HDR)
		vlen = MAX_STORE_MBOX_HDR;
	switch (names[i].what) {
	case 0:
		if (memchr(v, 'R', vlen) != NULL)
			ps->cur.hdr_flags |= STORE_SEEN;
		break;
	case 1:
		if (memchr(v, 'A', vlen) != NULL)
			ps->cur.hdr_flags |= STORE_ANSWERED;
		if (memchr(v, 'F', vlen) != NULL)
			ps->cur.hdr_flags |= STORE_FLAGGED;
		if (memchr(v, 'D', vlen) != NULL)
			ps->cur.hdr_flags |= STORE_DELETED;
		if (memchr(v, 'T', vlen) != NULL)
			ps->cur.hdr_flags |= STORE_DRAFT;
		break;
	case 2:
		memcpy(ps->msgid, v, vlen);
		ps->msgid_len = vlen;
		break;
	case 3:
		memcpy(ps->date, v, vlen);
		ps->date_len = vlen;
		break;
	}
}

static void
mbox_push(struct mbox_ctx *c, const struct mbox_msg *m)
{
	if (c->count == c->cap) {
		c->cap = c->cap == 0 ? 64 : c->cap * 2;
		c->msgs = xreallocarray(c->msgs, c->cap, sizeof(*c->msgs));
	}
	c->msgs[c->count++] = *m;
}

/* The current message ends at end; the blank line before end (if
 * sep) was fed to the filter and is no part of it. */
static void
mbox_finish(struct mbox_parser *ps, struct mbox_ctx *c, off_t end, bool sep)
{
	char num[32];
	uint64_t h;
	int n;

	(void)store_filter_finish(&ps->f, NULL, 0);
	ps->cur.end_off = end;
	ps->cur.vsize = ps->f.out_count - (sep ? 2 : 0);
	if (ps->in_hdr)
		ps->body_start = end;
	h = store_hash_fnv(ps->cur.from_hash, "", 1);
	h = store_hash_fnv(h, ps->msgid, ps->msgid_len);
	h = store_hash_fnv(h, "", 1);
	h = store_hash_fnv(h, ps->date, ps->date_len);
	n = snprintf(num, sizeof(num), "%c%lld", '\0',
	    (long long)(end - ps->body_start));
	ps->cur.fp = store_hash_fnv(h, num, (size_t)n);
	mbox_push(c, &ps->cur);
	ps->active = false;
}

static int
mbox_fill(struct mbox_parser *ps)
{
	ssize_t n;

	if (ps->pos > 0) {
		memmove(ps->buf, ps->buf + ps->pos, ps->len - ps->pos);
		ps->buf_off += (off_t)ps->pos;
		ps->len -= ps->pos;
		ps->pos = 0;
	}
	while (!ps->eof && ps->len < STORE_IO_CHUNK) {
		n = pread(ps->fd, ps->buf + ps->len, STORE_IO_CHUNK - ps->len,
		    ps->buf_off + (off_t)ps->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			ps->eof = true;
		ps->len += (size_t)n;
	}
	return 0;
}

/*
 * Parse fd from start (a message start, or 0) to its end, appending to
 * c->msgs.  Returns 0 or -1 (errno).
 */
static int
mbox_parse(struct mbox_ctx *c, int fd, off_t start)
{
	struct mbox_parser ps;
	bool bol = true;
	int ret = -1;

	memset(&ps, 0, sizeof(ps));
	ps.fd = fd;
	ps.buf = xmalloc(STORE_IO_CHUNK);
	ps.buf_off = start;
	ps.prev_blank = true;	/* the file start, or after a separator */
	c->ends_blank = false;
	for (;;) {
		size_t seg;
		off_t line_off;
		const char *line, *nl;

		if (ps.len - ps.pos < MBOX_LOOKAHEAD && !ps.eof &&
		    mbox_fill(&ps) < 0)
			goto out;
		if (ps.pos == ps.len)
			break;
		line = ps.buf + ps.pos;
		line_off = ps.buf_off + (off_t)ps.pos;
		nl = memchr(line, '\n', ps.len - ps.pos);
		seg = nl != NULL ? (size_t)(nl - line) + 1 : ps.len - ps.pos;
		if (!bol) {
			/* The rest of a line longer than the buffer. */
			if (ps.in_from) {
				if (nl != NULL) {
					ps.in_from = false;
					ps.cur.body_off = line_off +
					    (off_t)seg;
				}
			} else if (ps.active)
				(void)store_filter_run(&ps.f, line, seg, NULL,
				    0, &(size_t){ 0 });
		} else if (ps.prev_blank && seg >= 5 &&
		    memcmp(line, "From ", 5) == 0) {
			if (ps.active)
				mbox_finish(&ps, c, ps.prev_blank_off, true);
			if (c->count >= MAX_STORE_MESSAGES) {
				errno = EFBIG;
				goto out;
			}
			memset(&ps.cur, 0, sizeof(ps.cur));
			ps.active = true;
			ps.in_hdr = true;
			ps.msgid_len = ps.date_len = 0;
			ps.cur.from_off = line_off;
			ps.cur.from_hash = mbox_from_hash(line, seg);
			ps.cur.date = mbox_from_date(line, seg);
			ps.in_from = nl == NULL;
			ps.cur.body_off = line_off + (off_t)seg;
			store_filter_init(&ps.f, true);
		} else if (ps.active) {
			(void)store_filter_run(&ps.f, line, seg, NULL, 0,
			    &(size_t){ 0 });
			if (ps.in_hdr) {
				if ((seg == 1 && line[0] == '\n') ||
				    (seg == 2 && line[0] == '\r' &&
				    line[1] == '\n')) {
					ps.in_hdr = false;
					ps.body_start = line_off + (off_t)seg;
				} else
					mbox_header(&ps, line, seg);
			}
		}
		if (bol) {
			ps.prev_blank = nl != NULL && ((seg == 1) ||
			    (seg == 2 && line[0] == '\r'));
			if (ps.prev_blank)
				ps.prev_blank_off = line_off;
		}
		bol = nl != NULL;
		ps.pos += seg;
	}
	if (ps.active) {
		/* The last separator line belongs to the format too. */
		bool sep = ps.prev_blank && bol &&
		    ps.prev_blank_off >= ps.cur.body_off;

		mbox_finish(&ps, c, sep ? ps.prev_blank_off :
		    ps.buf_off + (off_t)ps.pos, sep);
		c->ends_blank = sep;
	}
	ret = 0;
out:
	free(ps.buf);
	return ret;
}

/* Keys: the fingerprint, "-n" added for the n-th identical copy. */
static void
mbox_keys(struct mbox_ctx *c)
{
	struct store_hash *seen = store_hash_new(c->count);
	char (*hex)[17] = xreallocarray(NULL, c->count + 1, sizeof(*hex));
	size_t i;

	for (i = 0; i < c->count; i++) {
		uintptr_t n;

		(void)snprintf(hex[i], sizeof(hex[i]), "%016" PRIx64,
		    c->msgs[i].fp);
		n = (uintptr_t)store_hash_get(seen, hex[i], 16);
		if (n == 0)
			(void)snprintf(c->msgs[i].key, sizeof(c->msgs[i].key),
			    "%s", hex[i]);
		else
			(void)snprintf(c->msgs[i].key, sizeof(c->msgs[i].key),
			    "%s-%lu", hex[i], (unsigned long)n);
		store_hash_set(seen, hex[i], 16, (void *)(n + 1));
	}
	store_hash_free(&seen);
	free(hex);
}

/* ---- open and close ---- */

static char *
mbox_index_path(struct store_mailbox *mb, const char *suffix)
{
	return xasprintf("%s/%s%s", mb->user->index_dir, mb->name, suffix);
}

static int mbox_recover(struct store_mailbox *mb, const char **error_r);

static int
mbox_open(struct store_mailbox *mb, const char **error_r)
{
	struct mbox_ctx *c = xcalloc(1, sizeof(*c));
	char *map, *lock, *dir, *slash;

	mb->be_ctx = c;
	if (mb->user->index_dir == NULL) {
		*error_r = store_error(&mb->error, "no directory for the UID "
		    "map of %s (no mail folder directory and no home)",
		    mb->path);
		return -1;
	}
	c->lock_path = xasprintf("%s.lock", mb->path);
	c->backup = mbox_index_path(mb, ".expunge");
	map = mbox_index_path(mb, ".uidlist");
	lock = mbox_index_path(mb, ".uidlist.lock");
	store_uidmap_init(&mb->map, map, lock);
	free(lock);
	dir = map;
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (store_mkdirs(dir) < 0) {
		*error_r = mbox_err(mb, "mkdir", dir);
		free(dir);
		return -1;
	}
	free(dir);
	if (!mb->readonly && mbox_recover(mb, error_r) < 0)
		return -1;
	return 0;
}

static void
mbox_close(struct store_mailbox *mb)
{
	struct mbox_ctx *c = mb->be_ctx;

	if (c == NULL)
		return;
	free(c->lock_path);
	free(c->backup);
	free(c->msgs);
	free(c);
	mb->be_ctx = NULL;
}

static int
mbox_notify_fd(struct store_mailbox *mb)
{
	struct mbox_ctx *c = mb->be_ctx;
	char *dir, *slash;
	struct stat st;
	int fd;

	if (mb->notify_fd >= 0)
		return mb->notify_fd;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	/* The directory too: the file may be created or replaced. */
	dir = xstrdup(mb->path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir)
		*slash = '\0';
	if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) < 0) {
		free(dir);
		close(fd);
		return -1;
	}
	free(dir);
	if (stat(mb->path, &st) == 0 && inotify_add_watch(fd, mb->path,
	    IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) >= 0)
		c->watched_ino = st.st_ino;
	mb->notify_fd = fd;
	return fd;
}

/* ---- locking the mbox for a rewrite ---- */

struct mbox_lock {
	int		 fd;
	int		 dot;
};

static int
mbox_lock_write(struct store_mailbox *mb, struct mbox_lock *l,
    const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;

	l->fd = -1;
	l->dot = store_dotlock(c->lock_path, STORE_LOCK_WAIT);
	if (l->dot < 0) {
		*error_r = store_error(&mb->error, "cannot lock %s: dotlock "
		    "held too long", mb->path);
		return -1;
	}
	l->fd = open(mb->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (l->fd < 0) {
		int e = errno;

		*error_r = mbox_err(mb, "open", mb->path);
		if (l->dot > 0)
			(void)unlink(c->lock_path);
		l->dot = 0;
		errno = e;
		return -1;
	}
	if (store_fcntl_lock(l->fd, F_WRLCK, STORE_LOCK_WAIT) < 0) {
		*error_r = store_error(&mb->error, "cannot lock %s: %s",
		    mb->path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (l->fd >= 0)
		close(l->fd);
	if (l->dot > 0)
		(void)unlink(c->lock_path);
	l->fd = -1;
	l->dot = 0;
	return -1;
}

static void
mbox_unlock(struct store_mailbox *mb, struct mbox_lock *l)
{
	struct mbox_ctx *c = mb->be_ctx;

	if (l->fd >= 0)
		close(l->fd);	/* releases the fcntl lock */
	if (l->dot > 0)
		(void)unlink(c->lock_path);
	l->fd = -1;
	l->dot = 0;
}

/* Copy len bytes from in at ioff to out at ooff. */
static int
mbox_copy(int in, off_t ioff, int out, off_t ooff, off_t len)
{
	char *chunk = xmalloc(STORE_IO_CHUNK);
	off_t done = 0;

	while (done < len) {
		size_t want = (size_t)(len - done) < STORE_IO_CHUNK ?
		    (size_t)(len - done) : STORE_IO_CHUNK;
		ssize_t n = pread(in, chunk, want, ioff + done), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			free(chunk);
			return -1;
		}
		while (w < n) {
			ssize_t k = pwrite(out, chunk + w, (size_t)(n - w),
			    ooff + done + w);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				free(chunk);
				return -1;
			}
			w += k;
		}
		done += n;
	}
	free(chunk);
	return 0;
}

struct mbox_backup_hdr {
	off_t		 offset;	/* where the tail starts */
	off_t		 old_size;	/* the mbox before */
	off_t		 tail_len;	/* bytes of tail after the header */
};

#define MBOX_BACKUP_HDR_LEN	(sizeof(MBOX_EXPUNGE_MAGIC) - 1 + 3 * 22 + 1)

static void
mbox_backup_hdr(char *out, const struct mbox_backup_hdr *h)
{
	/* Fixed width, so it can be written before its values are known. */
	(void)snprintf(out, MBOX_BACKUP_HDR_LEN + 1, "%s O%020lld S%020lld "
	    "L%020lld\n", MBOX_EXPUNGE_MAGIC, (long long)h->offset,
	    (long long)h->old_size, (long long)h->tail_len);
}

static int
mbox_backup_parse(const char *s, struct mbox_backup_hdr *h)
{
	long long o, sz, l;
	char nl;

	if (sscanf(s, MBOX_EXPUNGE_MAGIC " O%lld S%lld L%lld%c", &o, &sz, &l,
	    &nl) != 4 || nl != '\n' || o < 0 || sz < o || l < 0 ||
	    l > sz - o)
		return -1;
	h->offset = o;
	h->old_size = sz;
	h->tail_len = l;
	return 0;
}

/* Locked: copy the backup's tail over the mbox, truncate, fsync. */
static int
mbox_restore(int mfd, int bfd, const struct mbox_backup_hdr *h)
{
	if (mbox_copy(bfd, (off_t)MBOX_BACKUP_HDR_LEN, mfd, h->offset,
	    h->tail_len) < 0 || ftruncate(mfd, h->offset + h->tail_len) < 0 ||
	    fsync(mfd) < 0)
		return -1;
	return 0;
}

/* Whether the backup fd is complete; fills h. */
static bool
mbox_backup_valid(int bfd, struct mbox_backup_hdr *h)
{
	char hdr[MBOX_BACKUP_HDR_LEN + 1];
	struct stat bst;

	memset(hdr, 0, sizeof(hdr));
	return pread(bfd, hdr, MBOX_BACKUP_HDR_LEN, 0) ==
	    (ssize_t)MBOX_BACKUP_HDR_LEN && mbox_backup_parse(hdr, h) == 0 &&
	    fstat(bfd, &bst) == 0 &&
	    bst.st_size == (off_t)MBOX_BACKUP_HDR_LEN + h->tail_len;
}

/* A backup left by a crash in the middle of an expunge (see above). */
static int
mbox_recover(struct store_mailbox *mb, const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;
	struct mbox_backup_hdr h;
	struct mbox_lock l;
	struct stat st;
	bool keep = false;
	char *tmp;
	int bfd;

	tmp = xasprintf("%s.tmp", c->backup);
	(void)unlink(tmp);	/* never complete: the mbox is intact */
	free(tmp);
	bfd = open(c->backup, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (bfd < 0)
		return 0;
	if (mbox_lock_write(mb, &l, error_r) < 0) {
		int e = errno;

		close(bfd);
		bfd = -1;
		if (e != ENOENT)
			return -1;
		/* No mbox at all: keep the backup for the admin. */
		keep = true;
	} else if (!mbox_backup_valid(bfd, &h) || fstat(l.fd, &st) < 0)
		keep = true;
	else if (st.st_size == h.old_size) {
		if (mbox_restore(l.fd, bfd, &h) < 0) {
			*error_r = store_error(&mb->error, "restoring %s from "
			    "%s failed: %s", mb->path, c->backup,
			    strerror(errno));
			close(bfd);
			mbox_unlock(mb, &l);
			return -1;
		}
		log_info("%s: interrupted expunge completed from %s",
		    mb->path, c->backup);
	} else if (st.st_size != h.offset + h.tail_len)
		keep = true;
	if (bfd >= 0)
		close(bfd);
	if (keep) {
		char *aside = xasprintf("%s.failed.%lld", c->backup,
		    (long long)time(NULL));

		log_error("%s: an interrupted expunge left %s that no longer "
		    "matches the mailbox; kept as %s, merge it by hand",
		    mb->path, c->backup, aside);
		if (rename(c->backup, aside) < 0)
			log_error("rename(%s, %s) failed: %m", c->backup,
			    aside);
		free(aside);
	} else if (unlink(c->backup) < 0)
		log_error("unlink(%s) failed: %m", c->backup);
	mbox_unlock(mb, &l);
	return 0;
}

/* ---- sync ---- */

/* Whether the earlier parse still holds for the first part of the
 * file, which only grew (appends). */
static bool
mbox_can_continue(struct mbox_ctx *c, int fd, const struct stat *st)
{
	char buf[MAX_STORE_MBOX_HDR + 8];
	const struct mbox_msg *last;
	ssize_t n;

	if (!c->parsed || c->count == 0 || !c->ends_blank ||
	    st->st_dev != c->dev || st->st_ino != c->ino ||
	    st->st_size <= c->size)
		return false;
	n = pread(fd, buf, 5, c->size);
	if (n != 5 || memcmp(buf, "From ", 5) != 0)
		return false;
	last = &c->msgs[c->count - 1];
	n = pread(fd, buf, sizeof(buf), last->from_off);
	return n > 5 && mbox_from_hash(buf, (size_t)n) == last->from_hash;
}

/* Read the mbox (all of it, or what was appended). */
static int
mbox_read(struct store_mailbox *mb, const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;
	struct stat st;
	int fd;

	fd = open(mb->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) {
			*error_r = mbox_err(mb, "open", mb->path);
			return -1;
		}
		/* No mail delivered yet: an empty INBOX. */
		c->count = 0;
		c->parsed = true;
		c->dev = 0;
		c->ino = 0;
		c->size = 0;
		c->ends_blank = false;
		return 0;
	}
	if (store_fcntl_lock(fd, F_RDLCK, STORE_LOCK_WAIT) < 0) {
		*error_r = store_error(&mb->error, "cannot lock %s: %s",
		    mb->path, strerror(errno));
		close(fd);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = mbox_err(mb, "fstat", mb->path);
		close(fd);
		return -1;
	}
	if (mbox_can_continue(c, fd, &st)) {
		if (mbox_parse(c, fd, c->size) < 0)
			goto fail;
	} else {
		c->count = 0;
		if (mbox_parse(c, fd, 0) < 0)
			goto fail;
	}
	close(fd);	/* releases the read lock */
	c->parsed = true;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->size = st.st_size;
	c->mtime = st.st_mtim;
	c->parse_time = time(NULL);
	mbox_keys(c);
	return 0;
fail:
	*error_r = errno == EFBIG ? store_error(&mb->error, "%s: more than %d "
	    "messages", mb->path, MAX_STORE_MESSAGES) :
	    mbox_err(mb, "read", mb->path);
	close(fd);
	c->parsed = false;
	c->count = 0;
	return -1;
}

static bool
mbox_unchanged(struct store_mailbox *mb)
{
	struct mbox_ctx *c = mb->be_ctx;
	struct stat st;

	if (!c->parsed || mb->map.ino != c->map_ino ||
	    mb->map.read_off != c->map_off || !mb->map.exists)
		return false;
	if (stat(mb->path, &st) < 0)
		return errno == ENOENT && c->ino == 0;
	/* A change in the same second as the parse may keep the mtime. */
	return st.st_dev == c->dev && st.st_ino == c->ino &&
	    st.st_size == c->size && st.st_mtim.tv_sec == c->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->mtime.tv_nsec &&
	    c->mtime.tv_sec < c->parse_time - 1;
}

static bool
mbox_is_late(const struct store_mailbox *mb, const struct store_uidrec *r)
{
	return mb->view_uidvalidity == mb->map.uidvalidity &&
	    r->uid <= mb->shown_uid_max &&
	    store_mailbox_find_uid(mb, r->uid) < 0;
}

/* Under the map lock: tombstones for what is gone, UIDs for what is
 * new (file order).  The UIDs given go into added. */
static int
mbox_assign(struct store_mailbox *mb, struct store_hash *keys,
    const uint32_t *gone, size_t ngone, struct store_hash *added,
    const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;
	bool any = false;
	size_t i;

	if (store_uidmap_lock(&mb->map, error_r) < 0)
		return -1;
	if (!mb->map.exists && store_uidmap_create(&mb->map,
	    (uint32_t)time(NULL), error_r) < 0)
		goto fail;
	for (i = 0; i < ngone; i++) {
		struct store_uidrec *r = store_uidmap_find_uid(&mb->map,
		    gone[i]);

		if (r != NULL && !r->dead &&
		    store_hash_get(keys, r->key, strlen(r->key)) == NULL)
			store_uidmap_expunge(&mb->map, gone[i]);
	}
	for (i = 0; i < c->count; i++) {
		struct mbox_msg *m = &c->msgs[i];
		struct store_uidrec *r = store_uidmap_find(&mb->map, m->key,
		    strlen(m->key));

		if (r != NULL && !mbox_is_late(mb, r))
			continue;
		if (r != NULL)
			store_uidmap_expunge(&mb->map, r->uid);
		r = store_uidmap_add(&mb->map, m->key, m->vsize, m->date);
		if (r == NULL) {
			*error_r = store_error(&mb->error, "%s: UID space "
			    "used up", mb->map.path);
			goto fail;
		}
		/* Keyed by the parse's string: a compaction below frees
		 * the map's. */
		store_hash_set(added, m->key, strlen(m->key), m);
		any = true;
	}
	if (store_uidmap_commit(&mb->map, any, error_r) < 0)
		goto fail;
	if (store_uidmap_wants_compact(&mb->map) &&
	    store_uidmap_compact(&mb->map, error_r) < 0)
		log_error("%s", *error_r);
	store_uidmap_unlock(&mb->map);
	return 0;
fail:
	store_uidmap_unlock(&mb->map);
	return -1;
}

static int
mbox_view_cmp(const void *a, const void *b)
{
	const struct store_msg *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int
mbox_sync(struct store_mailbox *mb, const struct store_sync_cb *cb,
    const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;
	struct store_hash *keys = NULL, *added = NULL;
	struct store_msg *msgs = NULL;
	struct store_msg_priv *priv = NULL;
	uint32_t *gone = NULL, count = 0, *order = NULL;
	size_t i, ngone = 0;
	bool need_assign;
	struct stat st;
	int ret = -1;

	store_notify_drain(mb);
	if (store_uidmap_refresh(&mb->map, error_r) < 0)
		return -1;
	if (mbox_unchanged(mb))
		return 0;
	if (mbox_read(mb, error_r) < 0)
		return -1;
	if (mb->notify_fd >= 0 && stat(mb->path, &st) == 0 &&
	    st.st_ino != c->watched_ino &&
	    inotify_add_watch(mb->notify_fd, mb->path, IN_MODIFY | IN_ATTRIB |
	    IN_DELETE_SELF | IN_MOVE_SELF) >= 0)
		c->watched_ino = st.st_ino;
	keys = store_hash_new(c->count);
	for (i = 0; i < c->count; i++)
		store_hash_set(keys, c->msgs[i].key, strlen(c->msgs[i].key),
		    &c->msgs[i]);
	gone = xreallocarray(NULL, mb->count + 1, sizeof(*gone));
	for (i = 0; i < mb->count; i++) {
		const char *k = mb->priv[i].key;
		struct store_uidrec *r = store_uidmap_find_uid(&mb->map,
		    mb->msgs[i].uid);

		if (store_hash_get(keys, k, strlen(k)) == NULL &&
		    r != NULL && !r->dead)
			gone[ngone++] = mb->msgs[i].uid;
	}
	need_assign = ngone > 0 || !mb->map.exists;
	for (i = 0; i < c->count && !need_assign; i++) {
		struct store_uidrec *r = store_uidmap_find(&mb->map,
		    c->msgs[i].key, strlen(c->msgs[i].key));

		need_assign = r == NULL || mbox_is_late(mb, r);
	}
	added = store_hash_new(0);
	if (need_assign && mbox_assign(mb, keys, gone, ngone, added,
	    error_r) < 0)
		goto out;

	msgs = xreallocarray(NULL, c->count + 1, sizeof(*msgs));
	priv = xreallocarray(NULL, c->count + 1, sizeof(*priv));
	order = xreallocarray(NULL, c->count + 1, sizeof(*order));
	for (i = 0; i < c->count; i++) {
		const struct mbox_msg *pm = &c->msgs[i];
		struct store_uidrec *r = store_uidmap_find(&mb->map, pm->key,
		    strlen(pm->key));
		struct store_msg *m = &msgs[count];

		if (r == NULL || mbox_is_late(mb, r))
			continue;
		memset(m, 0, sizeof(*m));
		m->uid = r->uid;
		m->flags = pm->hdr_flags;
		if (r->has_flags) {
			/* Our change stands until the headers change. */
			if (r->hdr_flags == pm->hdr_flags)
				m->flags = r->flags;
			m->keywords = r->keywords;
		}
		m->vsize = pm->vsize;
		m->internal_date = r->mtime >= 0 ? (time_t)r->mtime :
		    pm->date >= 0 ? (time_t)pm->date : 0;
		m->save_date = r->save_date >= 0 ? (time_t)r->save_date :
		    m->internal_date;
		if (!store_view_carry(mb, m) && !mb->readonly &&
		    store_hash_get(added, pm->key, strlen(pm->key)) != NULL)
			m->flags |= STORE_RECENT;
		/* The parsed message of each view entry, through the sort. */
		order[count] = (uint32_t)i;
		count++;
	}
	/* File order is nearly always UID order; sort when it is not. */
	for (i = 1; i < count && msgs[i - 1].uid < msgs[i].uid; i++)
		;
	if (i < count) {
		struct { struct store_msg m; uint32_t o; } *tmp =
		    xreallocarray(NULL, count, sizeof(*tmp));

		for (i = 0; i < count; i++) {
			tmp[i].m = msgs[i];
			tmp[i].o = order[i];
		}
		qsort(tmp, count, sizeof(*tmp), mbox_view_cmp);
		for (i = 0; i < count; i++) {
			msgs[i] = tmp[i].m;
			order[i] = tmp[i].o;
		}
		free(tmp);
	}
	for (i = 0; i < count; i++) {
		const struct mbox_msg *pm = &c->msgs[order[i]];

		memset(&priv[i], 0, sizeof(priv[i]));
		priv[i].from_off = pm->from_off;
		priv[i].body_off = pm->body_off;
		priv[i].end_off = pm->end_off;
		priv[i].from_hash = pm->from_hash;
		priv[i].hdr_flags = pm->hdr_flags;
		priv[i].key = xstrdup(pm->key);
	}
	store_view_install(mb, msgs, priv, count, cb);
	msgs = NULL;
	priv = NULL;
	c->map_ino = mb->map.ino;
	c->map_off = mb->map.read_off;
	ret = 0;
out:
	free(msgs);
	free(priv);
	free(order);
	free(gone);
	store_hash_free(&keys);
	store_hash_free(&added);
	return ret;
}

/* ---- messages ---- */

static int
mbox_msg_open(struct store_mailbox *mb, uint32_t idx, int *fd_r,
    off_t *off_r, off_t *len_r, const char **error_r)
{
	const struct store_msg_priv *p = &mb->priv[idx];
	char buf[MAX_STORE_MBOX_HDR + 8];
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(mb->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = mbox_err(mb, "open", mb->path);
		return -1;
	}
	n = pread(fd, buf, sizeof(buf), p->from_off);
	if (fstat(fd, &st) < 0 || st.st_size < p->end_off || n < 5 ||
	    memcmp(buf, "From ", 5) != 0 ||
	    mbox_from_hash(buf, (size_t)n) != p->from_hash) {
		*error_r = store_error(&mb->error, "%s was changed by another "
		    "program; message %u is not where it was", mb->path,
		    mb->msgs[idx].uid);
		close(fd);
		return -1;
	}
	*fd_r = fd;
	*off_r = p->body_off;
	*len_r = p->end_off - p->body_off;
	return 0;
}

static int
mbox_set_flags(struct store_mailbox *mb, uint32_t idx, uint32_t flags,
    uint64_t keywords, int mode, uint32_t *flags_r, uint64_t *kw_r,
    const char **error_r)
{
	const struct store_msg_priv *p = &mb->priv[idx];
	struct store_uidrec *r;
	int ret = 0;

	*flags_r = mb->msgs[idx].flags & ~STORE_RECENT;
	*kw_r = mb->msgs[idx].keywords;
	if (store_uidmap_lock(&mb->map, error_r) < 0)
		return -1;
	r = store_uidmap_find_uid(&mb->map, mb->msgs[idx].uid);
	if (r != NULL && !r->dead) {
		/* The flags as the map has them now (another process may
		 * have changed them), then the change. */
		*flags_r = r->has_flags && r->hdr_flags == p->hdr_flags ?
		    r->flags : p->hdr_flags;
		*kw_r = r->has_flags ? r->keywords : 0;
		store_flags_apply(flags_r, kw_r, flags, keywords, mode);
		r->has_flags = true;
		r->flags = *flags_r;
		r->hdr_flags = p->hdr_flags;
		r->keywords = *kw_r;
		store_uidmap_put_flags(&mb->map, r);
		ret = store_uidmap_commit(&mb->map, false, error_r);
	}
	store_uidmap_unlock(&mb->map);
	return ret;
}

static int
mbox_write_backup(struct store_mailbox *mb, int mfd,
    const struct mbox_ctx *pc, const bool *del, off_t first, off_t size,
    struct mbox_backup_hdr *h, const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx;
	char hdr[MBOX_BACKUP_HDR_LEN + 1], *tmp, *dir, *slash;
	off_t out = (off_t)MBOX_BACKUP_HDR_LEN;
	size_t i;
	int bfd, ret = -1;

	tmp = xasprintf("%s.tmp", c->backup);
	bfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (bfd < 0) {
		*error_r = mbox_err(mb, "open", tmp);
		free(tmp);
		return -1;
	}
	for (i = 0; i < pc->count; i++) {
		off_t s = pc->msgs[i].from_off;
		off_t e = i + 1 < pc->count ? pc->msgs[i + 1].from_off : size;

		if (s < first || del[i])
			continue;
		if (mbox_copy(mfd, s, bfd, out, e - s) < 0) {
			*error_r = mbox_err(mb, "write", tmp);
			goto out;
		}
		out += e - s;
	}
	h->offset = first;
	h->old_size = size;
	h->tail_len = out - (off_t)MBOX_BACKUP_HDR_LEN;
	mbox_backup_hdr(hdr, h);
	if (pwrite(bfd, hdr, MBOX_BACKUP_HDR_LEN, 0) !=
	    (ssize_t)MBOX_BACKUP_HDR_LEN || fsync(bfd) < 0) {
		*error_r = mbox_err(mb, "write", tmp);
		goto out;
	}
	if (rename(tmp, c->backup) < 0) {
		*error_r = mbox_err(mb, "rename", tmp);
		goto out;
	}
	dir = xstrdup(c->backup);
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (fdio_fsync_dir(dir) < 0) {
		*error_r = mbox_err(mb, "fsync", dir);
		free(dir);
		(void)unlink(c->backup);
		goto out;
	}
	free(dir);
	ret = bfd;
	bfd = -1;
out:
	if (bfd >= 0) {
		close(bfd);
		(void)unlink(tmp);
	}
	free(tmp);
	return ret;
}

static int
mbox_expunge_uids(struct store_mailbox *mb, const uint32_t *uids,
    size_t count, const char **error_r)
{
	struct mbox_ctx *c = mb->be_ctx, pc;
	struct store_hash *want = store_hash_new(count);
	struct mbox_backup_hdr h;
	struct mbox_lock l;
	uint32_t *done = NULL;
	char (*ukeys)[16] = xreallocarray(NULL, count, sizeof(*ukeys));
	bool *del = NULL;
	off_t first = -1;
	struct stat st;
	size_t i, ndone = 0;
	int bfd, ret = -1;

	memset(&pc, 0, sizeof(pc));
	for (i = 0; i < count; i++) {
		(void)snprintf(ukeys[i], sizeof(ukeys[i]), "%" PRIu32,
		    uids[i]);
		store_hash_set(want, ukeys[i], strlen(ukeys[i]), ukeys[i]);
	}
	if (store_uidmap_refresh(&mb->map, error_r) < 0)
		goto out_nolock;
	if (mbox_lock_write(mb, &l, error_r) < 0) {
		if (errno == ENOENT)
			ret = 0;	/* no mbox, nothing to remove */
		goto out_nolock;
	}
	/* Where the messages are now, under the lock. */
	if (fstat(l.fd, &st) < 0 || mbox_parse(&pc, l.fd, 0) < 0) {
		*error_r = mbox_err(mb, "read", mb->path);
		goto out;
	}
	mbox_keys(&pc);
	del = xcalloc(pc.count + 1, sizeof(*del));
	done = xreallocarray(NULL, pc.count + 1, sizeof(*done));
	for (i = 0; i < pc.count; i++) {
		struct store_uidrec *r = store_uidmap_find(&mb->map,
		    pc.msgs[i].key, strlen(pc.msgs[i].key));
		char k[16];

		if (r == NULL)
			continue;
		(void)snprintf(k, sizeof(k), "%" PRIu32, r->uid);
		if (store_hash_get(want, k, strlen(k)) == NULL)
			continue;
		del[i] = true;
		done[ndone++] = r->uid;
		if (first < 0)
			first = pc.msgs[i].from_off;
	}
	if (ndone == 0) {
		ret = 0;
		goto out;
	}
	bfd = mbox_write_backup(mb, l.fd, &pc, del, first, st.st_size, &h,
	    error_r);
	if (bfd < 0)
		goto out;
	if (mbox_restore(l.fd, bfd, &h) < 0) {
		/* The backup stays: the next open finishes the job. */
		*error_r = store_error(&mb->error, "rewriting %s failed: %s "
		    "(its messages are kept in %s)", mb->path, strerror(errno),
		    c->backup);
		close(bfd);
		goto out;
	}
	close(bfd);
	if (unlink(c->backup) < 0)
		log_error("unlink(%s) failed: %m", c->backup);
	ret = 0;
out:
	mbox_unlock(mb, &l);
	if (ret == 0 && ndone > 0) {
		const char *err;

		/* Tombstones, after the lock: never two locks at once. */
		if (store_uidmap_lock(&mb->map, &err) == 0) {
			for (i = 0; i < ndone; i++)
				store_uidmap_expunge(&mb->map, done[i]);
			if (store_uidmap_commit(&mb->map, false, &err) < 0)
				log_error("%s", err);
			store_uidmap_unlock(&mb->map);
		} else
			log_error("%s", err);
		/* The next sync reads the file again. */
		c->parsed = false;
	}
out_nolock:
	store_hash_free(&want);
	free(ukeys);
	free(del);
	free(done);
	free(pc.msgs);
	return ret;
}

const struct store_backend store_mbox_backend = {
	.open = mbox_open,
	.close = mbox_close,
	.sync = mbox_sync,
	.notify_fd = mbox_notify_fd,
	.msg_open = mbox_msg_open,
	.set_flags = mbox_set_flags,
	.expunge_uids = mbox_expunge_uids,
};
