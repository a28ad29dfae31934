/*
 * store_append: saving new messages (IMAP APPEND, COPY, MOVE) and
 * naming new keywords (store.h, "Saving", store_keyword_slot()).
 *
 * Durability follows DESIGN §3: a message is written into a file of its
 * own and fsynced before anything makes it visible; a transaction (one
 * APPEND with several messages, one COPY) becomes visible at once in
 * store_append_commit().
 *
 *   Maildir: the files are written in tmp/ with LF line ends (as local
 *   and Dovecot write them; readers turn them back into CRLF), named
 *   "SEC.MUSECPPID_N.HOST,S=SIZE,W=VSIZE", and at commit, under the
 *   UID map lock, renamed into cur/ with their flags in the ":2," suffix,
 *   cur/ fsynced, then their UID records appended to the map and the map
 *   fsynced.  Another process that lists cur/ meanwhile waits for the
 *   lock before it gives UIDs, and then finds ours.  A crash after the
 *   rename and before the map record leaves messages that the next sync
 *   numbers itself: the client saw no OK and may save them again, the
 *   one window of duplicates (DESIGN §3).  A COPY between Maildirs on one
 *   file system is a hard link, not a copy of the bytes.
 *
 *   mbox: the messages wait in files beside the UID maps until the
 *   commit appends them all under the mbox locks (dotlock and fcntl, as
 *   local takes them), with a "From " line, mboxrd quoting and a blank
 *   line after each, then fsyncs; on error the mbox is truncated back to
 *   its old size.  The flags are set through the store once the sync
 *   after the append has found the messages (they live in the UID map
 *   for mbox), so the bytes stay exactly what the client sent.
 *
 * Keywords (RFC 3501 §2.3.2) are the letters a..z of Maildir file names,
 * named in "dovecot-keywords"; a new name takes the first free letter,
 * written under the UID map lock.  mbox keeps the same file as
 * ROOT/.postern/NAME.keywords.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "str.h"
#include "store_private.h"
#include "xmalloc.h"

/* Bytes buffered before a write(2) to the message file. */
#define STORE_APPEND_WBUF	(64 * 1024)
/* Messages in one transaction (an APPEND with many, a big COPY). */
#define STORE_APPEND_MAX_MSGS	(1024 * 1024)

struct store_append_msg {
	char		*tmp;		/* the file written */
	char		*base;		/* Maildir: name in cur/ */
	uint64_t	 size;		/* bytes in the file */
	uint64_t	 vsize;		/* as readers see them (CRLF) */
	bool		 last_lf;	/* the last byte is a LF */
	uint32_t	 flags;
	uint64_t	 keywords;
	time_t		 date;
};

struct store_append {
	struct store_mailbox *mb;
	bool		 maildir;
	char		*tmpdir;
	struct store_append_msg *msgs;
	size_t		 count, cap;
	/* the message being written */
	int		 fd;
	bool		 cr;		/* a CR waits for the next */
	char		 last;		/* last byte in the file */
	uint64_t	 size, vsize;
	struct buf	 wb;
};

static unsigned long store_append_seq;

static const char *
store_append_err(struct store_mailbox *mb, const char *what,
    const char *path)
{
	return store_error(&mb->error, "%s(%s) failed: %s", what, path,
	    strerror(errno));
}

/* The host part of Maildir names: '/' and ':' cannot be in it. */
static const char *
store_append_host(void)
{
	static char host[256];
	char *p;

	if (host[0] != '\0')
		return host;
	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		(void)str_lcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (p = host; *p != '\0'; p++)
		if (*p == '/' || *p == ':' || *p == ',')
			*p = '_';
	return host;
}

/* ---- keywords ---- */

/* Parse "dovecot-keywords" text into names[] (NULL where unused). */
static void
store_keywords_parse(const char *data, size_t n,
    char *names[STORE_MAX_KEYWORDS])
{
	const char *p = data, *end = data + n;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *q = p;
		unsigned long slot = 0;

		while (q < le && *q >= '0' && *q <= '9' && slot < 100)
			slot = slot * 10 + (unsigned long)(*q++ - '0');
		if (q > p && q < le && *q == ' ' &&
		    slot < STORE_MAX_KEYWORDS && names[slot] == NULL) {
			size_t len = (size_t)(le - q - 1);

			if (len > 0 && memchr(q + 1, ' ', len) == NULL &&
			    memchr(q + 1, '\0', len) == NULL)
				names[slot] = xstrndup(q + 1, len);
		}
		p = le + 1;
	}
}

static char *
store_keywords_path(const struct store_mailbox *mb)
{
	if (mb->be == &store_maildir_backend)
		return xasprintf("%s/dovecot-keywords", mb->path);
	if (mb->user->index_dir == NULL)
		return NULL;
	return xasprintf("%s/%s.keywords", mb->user->index_dir, mb->name);
}

/* Read the keyword file into names[]; false when it cannot be read. */
static bool
store_keywords_read(const char *path, char *names[STORE_MAX_KEYWORDS])
{
	char *data;
	ssize_t n;
	int fd;

	memset(names, 0, sizeof(char *) * STORE_MAX_KEYWORDS);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT;
	data = xmalloc(MAX_STORE_KEYWORDS_FILE);
	n = read(fd, data, MAX_STORE_KEYWORDS_FILE);
	close(fd);
	if (n > 0)
		store_keywords_parse(data, (size_t)n, names);
	free(data);
	return n >= 0;
}

void
store_keywords_load(struct store_mailbox *mb)
{
	char *names[STORE_MAX_KEYWORDS], *path;
	unsigned int i;

	if (mb->be == &store_maildir_backend ||
	    (path = store_keywords_path(mb)) == NULL)
		return;
	if (store_keywords_read(path, names)) {
		for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
			free(mb->keywords[i]);
			mb->keywords[i] = names[i];
		}
	}
	free(path);
}

int
store_keyword_slot(struct store_mailbox *mb, const char *name, bool create,
    const char **error_r)
{
	char *names[STORE_MAX_KEYWORDS], *path, *tmp;
	unsigned int i;
	struct buf b;
	int slot = -1, fd;

	for (i = 0; i < STORE_MAX_KEYWORDS; i++)
		if (mb->keywords[i] != NULL &&
		    strcasecmp(mb->keywords[i], name) == 0)
			return (int)i;
	if (!create || (path = store_keywords_path(mb)) == NULL)
		return -1;
	/* Our writers take turns under the UID map lock; the file is read
	 * again under it, as another process may have added names. */
	if (store_uidmap_lock(&mb->map, error_r) < 0) {
		free(path);
		return -1;
	}
	if (!store_keywords_read(path, names)) {
		*error_r = store_append_err(mb, "read", path);
		goto out;
	}
	for (i = 0; i < STORE_MAX_KEYWORDS && slot < 0; i++)
		if (names[i] != NULL && strcasecmp(names[i], name) == 0)
			slot = (int)i;
	if (slot < 0) {
		for (i = 0; i < STORE_MAX_KEYWORDS; i++)
			if (names[i] == NULL && mb->keywords[i] == NULL)
				break;
		if (i == STORE_MAX_KEYWORDS) {
			*error_r = store_error(&mb->error, "No more room for "
			    "keywords in this mailbox");
			goto out;
		}
		names[i] = xstrdup(name);
		buf_init(&b, 0);
		for (i = 0; i < STORE_MAX_KEYWORDS; i++)
			if (names[i] != NULL)
				buf_printf(&b, "%u %s\n", i, names[i]);
		tmp = xasprintf("%s.tmp", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd < 0 || fdio_write_all(fd, b.data, b.len) < 0 ||
		    fsync(fd) < 0 || rename(tmp, path) < 0) {
			*error_r = store_append_err(mb, "write", tmp);
			if (fd >= 0)
				(void)unlink(tmp);
		} else {
			for (i = 0; i < STORE_MAX_KEYWORDS; i++)
				if (names[i] != NULL &&
				    strcasecmp(names[i], name) == 0)
					slot = (int)i;
		}
		if (fd >= 0)
			close(fd);
		free(tmp);
		buf_free(&b);
	}
	if (slot >= 0) {
		for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
			if (names[i] == NULL)
				continue;
			free(mb->keywords[i]);
			mb->keywords[i] = names[i];
			names[i] = NULL;
		}
	}
out:
	for (i = 0; i < STORE_MAX_KEYWORDS; i++)
		free(names[i]);
	store_uidmap_unlock(&mb->map);
	free(path);
	return slot;
}

/* ---- writing messages ---- */

int
store_append_begin(struct store_mailbox *mb, struct store_append **ctx_r,
    const char **error_r)
{
	struct store_append *ctx;

	if (mb->readonly) {
		*error_r = store_error(&mb->error, "Mailbox is read-only");
		return -1;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->mb = mb;
	ctx->fd = -1;
	ctx->maildir = mb->be == &store_maildir_backend;
	if (ctx->maildir)
		ctx->tmpdir = xasprintf("%s/tmp", mb->path);
	else if (mb->user->index_dir != NULL)
		ctx->tmpdir = xstrdup(mb->user->index_dir);
	else {
		*error_r = store_error(&mb->error, "no directory for "
		    "messages being saved into %s", mb->path);
		free(ctx);
		return -1;
	}
	if (store_mkdirs(ctx->tmpdir) < 0) {
		*error_r = store_append_err(mb, "mkdir", ctx->tmpdir);
		free(ctx->tmpdir);
		free(ctx);
		return -1;
	}
	buf_init(&ctx->wb, 0);
	*ctx_r = ctx;
	return 0;
}

size_t
store_append_count(const struct store_append *ctx)
{
	return ctx->count;
}

/* A new entry with a fresh unique base name. */
static struct store_append_msg *
store_append_new_msg(struct store_append *ctx, const char **error_r)
{
	struct store_append_msg *m;
	struct timeval tv;

	if (ctx->count >= STORE_APPEND_MAX_MSGS) {
		*error_r = store_error(&ctx->mb->error, "Too many messages "
		    "in one transaction");
		return NULL;
	}
	if (ctx->count == ctx->cap) {
		ctx->cap = ctx->cap == 0 ? 4 : ctx->cap * 2;
		ctx->msgs = xreallocarray(ctx->msgs, ctx->cap,
		    sizeof(*ctx->msgs));
	}
	m = &ctx->msgs[ctx->count];
	memset(m, 0, sizeof(*m));
	(void)gettimeofday(&tv, NULL);
	/* Unique as the Maildir specification asks: time, pid, counter
	 * and host. */
	m->base = xasprintf("%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), ++store_append_seq,
	    store_append_host());
	m->tmp = xasprintf("%s/%s%s", ctx->tmpdir, ctx->maildir ? "" :
	    ".append.", m->base);
	return m;
}

int
store_append_msg_begin(struct store_append *ctx, const char **error_r)
{
	struct store_append_msg *m;

	if (ctx->fd >= 0)
		log_panic("store_append_msg_begin: a message is open");
	if ((m = store_append_new_msg(ctx, error_r)) == NULL)
		return -1;
	ctx->fd = open(m->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (ctx->fd < 0) {
		*error_r = store_append_err(ctx->mb, "open", m->tmp);
		free(m->tmp);
		free(m->base);
		return -1;
	}
	ctx->count++;
	ctx->cr = false;
	ctx->last = '\0';
	ctx->size = ctx->vsize = 0;
	buf_reset(&ctx->wb);
	return 0;
}

static int
store_append_flush(struct store_append *ctx, const char **error_r)
{
	if (ctx->wb.len == 0)
		return 0;
	if (fdio_write_all(ctx->fd, ctx->wb.data, ctx->wb.len) < 0) {
		*error_r = store_append_err(ctx->mb, "write",
		    ctx->msgs[ctx->count - 1].tmp);
		return -1;
	}
	buf_reset(&ctx->wb);
	return 0;
}

/* Append a run of bytes without CR to the file buffer. */
static void
store_append_run(struct store_append *ctx, const char *p, size_t n)
{
	const char *q, *end = p + n;

	if (n == 0)
		return;
	buf_append(&ctx->wb, p, n);
	ctx->size += n;
	ctx->vsize += n;
	/* Readers turn each LF not after a CR into CRLF (store_msg.c). */
	for (q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		if ((q == p ? ctx->last : q[-1]) != '\r')
			ctx->vsize++;
	ctx->last = end[-1];
}

int
store_append_write(struct store_append *ctx, const void *data, size_t len,
    const char **error_r)
{
	const char *p = data, *end = p + len;

	if (ctx->fd < 0)
		log_panic("store_append_write without a message");
	while (p < end) {
		const char *cr;

		if (ctx->cr) {
			/* CRLF is stored as LF; any other CR as it is. */
			ctx->cr = false;
			if (*p != '\n')
				store_append_run(ctx, "\r", 1);
		}
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL) {
			store_append_run(ctx, p, (size_t)(end - p));
			break;
		}
		store_append_run(ctx, p, (size_t)(cr - p));
		ctx->cr = true;
		p = cr + 1;
	}
	if (ctx->wb.len >= STORE_APPEND_WBUF)
		return store_append_flush(ctx, error_r);
	return 0;
}

int
store_append_msg_end(struct store_append *ctx, uint32_t flags,
    uint64_t keywords, time_t internal_date, const char **error_r)
{
	struct store_append_msg *m = &ctx->msgs[ctx->count - 1];
	struct timespec ts[2];
	int ret = 0;

	if (ctx->fd < 0)
		log_panic("store_append_msg_end without a message");
	if (ctx->cr) {
		ctx->cr = false;
		store_append_run(ctx, "\r", 1);
	}
	if (internal_date <= 0)
		internal_date = time(NULL);
	m->size = ctx->size;
	m->vsize = ctx->vsize;
	m->last_lf = ctx->size == 0 || ctx->last == '\n';
	m->flags = flags & ~STORE_RECENT;
	m->keywords = keywords;
	m->date = internal_date;
	/* The internal date is the file's mtime, as Dovecot keeps it. */
	ts[0].tv_sec = ts[1].tv_sec = internal_date;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (store_append_flush(ctx, error_r) < 0)
		ret = -1;
	else if (fdatasync(ctx->fd) < 0) {
		*error_r = store_append_err(ctx->mb, "fdatasync", m->tmp);
		ret = -1;
	} else
		(void)futimens(ctx->fd, ts);
	close(ctx->fd);
	ctx->fd = -1;
	return ret;
}

/* Maildir path of message idx of src. */
static char *
store_append_src_path(struct store_mailbox *src, uint32_t idx)
{
	const struct store_msg_priv *p = &src->priv[idx];

	return xasprintf("%s/%s/%s", src->path, p->in_new ? "new" : "cur",
	    p->name);
}

int
store_append_copy(struct store_append *ctx, struct store_mailbox *src,
    uint32_t idx, uint32_t flags, uint64_t keywords, time_t internal_date,
    const char **error_r)
{
	const struct store_msg *sm;
	struct store_msg_stream *st;
	char buf[STORE_IO_CHUNK];
	ssize_t n;

	if (idx >= src->count)
		log_panic("store_append_copy: index %u of %u", idx,
		    src->count);
	sm = &src->msgs[idx];
	if (internal_date <= 0)
		internal_date = sm->internal_date;
	if (ctx->maildir && src->be == &store_maildir_backend) {
		struct store_append_msg *m;
		struct stat sst;
		char *path = store_append_src_path(src, idx);

		if ((m = store_append_new_msg(ctx, error_r)) == NULL) {
			free(path);
			return -1;
		}
		/* The same bytes: a link, no copy, no fsync of data. */
		if (link(path, m->tmp) == 0 && stat(m->tmp, &sst) == 0) {
			free(path);
			ctx->count++;
			m->size = (uint64_t)sst.st_size;
			m->vsize = sm->vsize;
			m->last_lf = true;
			m->flags = flags & ~STORE_RECENT;
			m->keywords = keywords;
			m->date = internal_date;
			return 0;
		}
		(void)unlink(m->tmp);
		free(m->tmp);
		free(m->base);
		free(path);
	}
	if (store_msg_open(src, idx, &st, error_r) < 0)
		return -1;
	if (store_append_msg_begin(ctx, error_r) < 0) {
		store_msg_close(&st);
		return -1;
	}
	while ((n = store_msg_read(st, buf, sizeof(buf))) > 0)
		if (store_append_write(ctx, buf, (size_t)n, error_r) < 0)
			break;
	store_msg_close(&st);
	if (n != 0) {
		if (n < 0)
			*error_r = store_error(&ctx->mb->error, "reading "
			    "message %u failed", sm->uid);
		close(ctx->fd);
		ctx->fd = -1;
		return -1;
	}
	return store_append_msg_end(ctx, flags, keywords, internal_date,
	    error_r);
}

/* ---- commit ---- */

static int	fsync_cur(struct store_mailbox *mb);

static void
store_append_free(struct store_append **ctxp, bool unlink_files)
{
	struct store_append *ctx = *ctxp;
	size_t i;

	if (ctx == NULL)
		return;
	if (ctx->fd >= 0)
		close(ctx->fd);
	for (i = 0; i < ctx->count; i++) {
		if (unlink_files && ctx->msgs[i].tmp != NULL)
			(void)unlink(ctx->msgs[i].tmp);
		free(ctx->msgs[i].tmp);
		free(ctx->msgs[i].base);
	}
	free(ctx->msgs);
	free(ctx->tmpdir);
	buf_free(&ctx->wb);
	free(ctx);
	*ctxp = NULL;
}

void
store_append_abort(struct store_append **ctxp)
{
	store_append_free(ctxp, true);
}

/* The ":2," info of flags and keywords, letters in ASCII order. */
static void
store_append_info(uint32_t flags, uint64_t keywords, char *out)
{
	static const char sys[] = "DFRST";
	size_t o = 0;
	int i;

	for (i = 0; sys[i] != '\0'; i++)
		if ((flags & store_maildir_letter_flag(sys[i])) != 0)
			out[o++] = sys[i];
	for (i = 0; i < STORE_MAX_KEYWORDS; i++)
		if ((keywords & (1ULL << i)) != 0)
			out[o++] = (char)('a' + i);
	out[o] = '\0';
}

static int
store_append_commit_maildir(struct store_append *ctx, uint32_t *uids,
    const char **error_r)
{
	struct store_mailbox *mb = ctx->mb;
	char info[STORE_MAX_KEYWORDS + 8], **dest;
	size_t i, moved = 0;
	int ret = -1;

	dest = xcalloc(ctx->count + 1, sizeof(*dest));
	if (store_uidmap_lock(&mb->map, error_r) < 0)
		goto out;
	if (!mb->map.exists && store_uidmap_create(&mb->map,
	    (uint32_t)time(NULL), error_r) < 0)
		goto unlock;
	for (i = 0; i < ctx->count; i++) {
		struct store_append_msg *m = &ctx->msgs[i];
		char *b = xasprintf("%s,S=%llu,W=%llu", m->base,
		    (unsigned long long)m->size,
		    (unsigned long long)m->vsize);

		free(m->base);
		m->base = b;
		store_append_info(m->flags, m->keywords, info);
		dest[i] = xasprintf("%s/cur/%s:2,%s", mb->path, m->base, info);
		if (rename(m->tmp, dest[i]) < 0) {
			*error_r = store_append_err(mb, "rename", m->tmp);
			goto undo;
		}
		moved++;
	}
	if (fsync_cur(mb) < 0) {
		*error_r = store_append_err(mb, "fsync", mb->path);
		goto undo;
	}
	for (i = 0; i < ctx->count; i++) {
		struct store_append_msg *m = &ctx->msgs[i];
		struct store_uidrec *r = store_uidmap_add(&mb->map, m->base,
		    m->vsize, (int64_t)m->date);

		if (r == NULL) {
			*error_r = store_error(&mb->error, "%s: UID space "
			    "used up", mb->map.path);
			goto undo;
		}
		uids[i] = r->uid;
	}
	if (store_uidmap_commit(&mb->map, true, error_r) < 0)
		goto undo;
	ret = 0;
	goto unlock;
undo:
	/* Nothing was acknowledged: take the files out again. */
	for (i = 0; i < moved; i++)
		(void)unlink(dest[i]);
unlock:
	store_uidmap_unlock(&mb->map);
out:
	for (i = 0; i < ctx->count; i++)
		free(dest[i]);
	free(dest);
	if (ret == 0) {
		/* Renamed: nothing left in tmp/ to remove. */
		for (i = 0; i < ctx->count; i++) {
			free(ctx->msgs[i].tmp);
			ctx->msgs[i].tmp = NULL;
		}
	}
	return ret;
}

/* Copy one saved message into the mbox with mboxrd quoting (RFC 4155:
 * every line that starts with ">*From " gets one more '>'). */
static int
store_append_mbox_copy(int out, const struct store_append_msg *m,
    struct buf *b)
{
	char in[STORE_IO_CHUNK];
	bool bol = true;
	size_t gt = 0;		/* '>' held at a line start */
	size_t from = 0;	/* bytes of "From " matched after them */
	char last = '\n';
	ssize_t n;
	int fd;

	fd = open(m->tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	buf_reset(b);
	while ((n = read(fd, in, sizeof(in))) > 0) {
		ssize_t i;

		for (i = 0; i < n; i++) {
			char c = in[i];

			if (bol) {
				if (from == 0 && c == '>') {
					gt++;
					continue;
				}
				if (c == "From "[from]) {
					if (++from == 5) {
						/* Quote: one '>' more. */
						buf_append_char(b, '>');
						while (gt-- > 0)
							buf_append_char(b,
							    '>');
						buf_append(b, "From ", 5);
						gt = from = 0;
						bol = false;
					}
					continue;
				}
				while (gt > 0) {
					buf_append_char(b, '>');
					gt--;
				}
				buf_append(b, "From ", from);
				from = 0;
				bol = false;
			}
			buf_append_char(b, c);
			if (c == '\n')
				bol = true;
		}
		if (b->len >= STORE_APPEND_WBUF) {
			last = b->data[b->len - 1];
			if (fdio_write_all(out, b->data, b->len) < 0) {
				close(fd);
				return -1;
			}
			buf_reset(b);
		}
	}
	close(fd);
	if (n < 0)
		return -1;
	while (gt > 0) {
		buf_append_char(b, '>');
		gt--;
	}
	buf_append(b, "From ", from);
	if (b->len > 0)
		last = b->data[b->len - 1];
	/* The message ends with a line end, then the blank separator. */
	if (last != '\n')
		buf_append_char(b, '\n');
	buf_append_char(b, '\n');
	return fdio_write_all(out, b->data, b->len);
}

static int
store_append_commit_mbox(struct store_append *ctx,
    const struct store_sync_cb *cb, uint32_t *uids, bool *have_uids_r,
    const char **error_r)
{
	struct store_mailbox *mb = ctx->mb;
	char *lock = xasprintf("%s.lock", mb->path);
	uint32_t next_before, count_before, i;
	int fd = -1, dot, ret = -1;
	struct stat st;
	struct buf b;
	size_t k;

	*have_uids_r = false;
	buf_init(&b, 0);
	next_before = store_mailbox_uidnext(mb);
	count_before = mb->count;
	dot = store_dotlock(lock, STORE_LOCK_WAIT);
	if (dot < 0) {
		*error_r = store_error(&mb->error, "cannot lock %s: dotlock "
		    "held too long", mb->path);
		goto out;
	}
	fd = open(mb->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = store_append_err(mb, "open", mb->path);
		goto out;
	}
	if (store_fcntl_lock(fd, F_WRLCK, STORE_LOCK_WAIT) < 0 ||
	    fstat(fd, &st) < 0) {
		*error_r = store_append_err(mb, "lock", mb->path);
		goto out;
	}
	if (lseek(fd, st.st_size, SEEK_SET) < 0) {
		*error_r = store_append_err(mb, "lseek", mb->path);
		goto out;
	}
	if (st.st_size > 0) {
		/* A blank line must separate us from the message before. */
		char tail[2] = { '\n', '\n' };
		ssize_t n = pread(fd, tail, st.st_size >= 2 ? 2 : 1,
		    st.st_size >= 2 ? st.st_size - 2 : 0);

		if (n == 1) {
			tail[1] = tail[0];
			tail[0] = '\n';
		}
		if (tail[1] != '\n')
			buf_append(&b, "\n\n", 2);
		else if (tail[0] != '\n')
			buf_append(&b, "\n", 1);
		if (b.len > 0 && fdio_write_all(fd, b.data, b.len) < 0)
			goto werr;
	}
	for (k = 0; k < ctx->count; k++) {
		struct store_append_msg *m = &ctx->msgs[k];
		char line[128];
		struct tm tm;
		time_t t = m->date;

		(void)gmtime_r(&t, &tm);
		(void)strftime(line, sizeof(line),
		    "From MAILER-DAEMON %a %b %e %H:%M:%S %Y\n", &tm);
		if (fdio_write_all(fd, line, strlen(line)) < 0 ||
		    store_append_mbox_copy(fd, m, &b) < 0)
			goto werr;
	}
	if (fsync(fd) < 0)
		goto werr;
	ret = 0;
	goto out;
werr:
	*error_r = store_append_err(mb, "write", mb->path);
	/* DESIGN §3: no partial message stays behind. */
	if (ftruncate(fd, st.st_size) < 0 || fsync(fd) < 0)
		log_error("ftruncate(%s) failed: %m", mb->path);
out:
	if (fd >= 0)
		close(fd);
	if (dot > 0)
		(void)unlink(lock);
	free(lock);
	buf_free(&b);
	if (ret < 0)
		return -1;
	/* Not under our lock any more: the read lock of the sync would
	 * share our process's fcntl lock and its close would drop it. */
	if (store_mailbox_sync(mb, cb, error_r) < 0) {
		log_error("store: %s", *error_r);
		return 0;	/* appended all the same */
	}
	/*
	 * Ours are the last new messages (appended at the end, numbered
	 * in file order), unless a delivery came right behind them: the
	 * sizes tell.  Messages before them may have new UIDs too (one
	 * whose last line got its line end from our separator).
	 */
	(void)count_before;
	k = 0;
	for (i = mb->count; i-- > 0 && k < ctx->count; ) {
		const struct store_msg *m = &mb->msgs[i];
		const struct store_append_msg *am =
		    &ctx->msgs[ctx->count - 1 - k];

		if (m->uid < next_before || m->vsize != am->vsize +
		    (am->last_lf ? 0 : 2))
			break;
		uids[ctx->count - 1 - k] = m->uid;
		k++;
	}
	*have_uids_r = k == ctx->count;
	/* Their flags go where the store keeps mbox flags (the UID map),
	 * so the message bytes stay as the client sent them. */
	for (k = 0; *have_uids_r && k < ctx->count; k++) {
		int64_t idx = store_mailbox_find_uid(mb, uids[k]);
		const char *err;

		if (idx >= 0 && (ctx->msgs[k].flags != 0 ||
		    ctx->msgs[k].keywords != 0) &&
		    store_msg_set_flags(mb, (uint32_t)idx, ctx->msgs[k].flags,
		    ctx->msgs[k].keywords, 0, &err) < 0)
			log_error("store: flags of appended message %u: %s",
			    uids[k], err);
	}
	return 0;
}

/* fsync of a Maildir's cur/ (a renamed file's entry). */
static int
fsync_cur(struct store_mailbox *mb)
{
	char *cur = xasprintf("%s/cur", mb->path);
	int r = fdio_fsync_dir(cur);

	free(cur);
	return r;
}

int
store_append_commit(struct store_append **ctxp,
    const struct store_sync_cb *cb, uint32_t **uids_r, size_t *count_r,
    const char **error_r)
{
	struct store_append *ctx = *ctxp;
	uint32_t *uids;
	bool have = true;
	int ret;

	*uids_r = NULL;
	*count_r = 0;
	if (ctx->fd >= 0)
		log_panic("store_append_commit with a message open");
	if (ctx->count == 0) {
		store_append_free(ctxp, true);
		return 0;
	}
	uids = xcalloc(ctx->count, sizeof(*uids));
	if (ctx->maildir)
		ret = store_append_commit_maildir(ctx, uids, error_r);
	else
		ret = store_append_commit_mbox(ctx, cb, uids, &have, error_r);
	if (ret == 0 && have) {
		*uids_r = uids;
		*count_r = ctx->count;
	} else
		free(uids);
	/* mbox: the saved copies are in the mbox now, or unusable. */
	store_append_free(ctxp, true);
	return ret;
}
