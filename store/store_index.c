/*
 * store_index: the persistent modification sequences of a mailbox
 * (CONDSTORE and QRESYNC, RFC 7162): HIGHESTMODSEQ, the modseq of every
 * message, and the UIDs expunged with the modseq of their expunge.
 *
 * The file is "postern-index" in a Maildir folder, ROOT/.postern/
 * NAME.index for mbox.  It is a log: a header, then fixed-size records
 * appended under the UID map's lock (the one lock of the mailbox's
 * files), little-endian, each with its own CRC-32C:
 *
 *   header (64 bytes)
 *     0  "PSTNIDX1"             magic
 *     8  u32 version (1)        12 u32 record size (32)
 *    16  u32 UIDVALIDITY        20 u32 0
 *    24  u64 highest modseq when the file was written
 *    32  u64 floor: expunges with a modseq up to it are not remembered
 *    40  zero                   60 u32 CRC-32C of bytes 0..59
 *
 *   record (32 bytes)
 *     0  u8 type: 1 message, 2 expunge; three zero bytes
 *     4  u32 UID                 8 u64 modseq
 *    16  u64 keyword bits       24 u32 flags (STORE_*)
 *    28  u32 CRC-32C of bytes 0..27
 *
 * A message record says "UID has these flags since modseq"; an expunge
 * record "UID was expunged at modseq".  For one UID the record with the
 * higher modseq wins, whatever the order in the file.  A record with a
 * bad checksum is skipped (the next sync sees the flags on disk differ
 * and records them again); a torn last record is ignored and cut off by
 * the next writer.  A new modseq is the highest one in the file plus
 * one, taken under the lock, so it is unique and ascends across every
 * process (RFC 7162 §3.1).
 *
 * The index follows the view (store_view_install() calls
 * store_index_view()): a message new to the index gets a new modseq, as
 * RFC 7162 §3.1 asks for appends by any means (APPEND, COPY, a delivery
 * by local); flags on disk that differ from the index's (mutt renamed a
 * file, a crash lost a record) get a new modseq; a UID the index has
 * whose UID map record is gone or tombstoned is expunged with a new
 * modseq.  Flag changes through the store get theirs at once
 * (store_index_changed()).  So the index is the last state any view
 * saw, and every process agrees on the modseqs.
 *
 * Flag and expunge records are not fsynced: a power failure may lose the
 * last ones, and the sync after it gives the changes new modseqs again.
 *
 * Rebuilding: when the file is missing, damaged in its header, or of
 * another UIDVALIDITY, a new one is written (write-fsync-rename) with
 * every message at one new modseq, the base, and the expunge floor at
 * the base.  The base is the current time in microseconds (and above
 * any modseq this process knew), so it is above every modseq an earlier
 * index could have given unless that index made more than one change a
 * microsecond over its life; clients then see every message as changed
 * and every unknown UID as possibly vanished, which is what RFC 7162
 * §3.2.5.2 and §5 allow when the server has lost state.  Values stay
 * below 2^53 until the year 2255, for clients that keep modseqs in a
 * double.
 *
 * Compaction (write-fsync-rename) keeps one record per live message and
 * the remembered expunges once the file holds more than twice that.  At
 * most STORE_MAX_EXPUNGED expunges are remembered; older ones raise the
 * floor (RFC 7162 §5.3).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

#define STORE_INDEX_MAGIC	"PSTNIDX1"
#define STORE_INDEX_VERSION	1
#define STORE_INDEX_T_MSG	1
#define STORE_INDEX_T_EXPUNGE	2
/* RFC 7162 §3.1: modseqs are 63-bit. */
#define STORE_MODSEQ_MAX	((UINT64_C(1) << 63) - 1)
#define STORE_INDEX_FLAGS	(STORE_SEEN | STORE_ANSWERED | \
	STORE_FLAGGED | STORE_DELETED | STORE_DRAFT)
/* Marks a message entry whose expunge came later (removed in bulk). */
#define STORE_INDEX_DEAD	0x80000000U
/* Records read per read(2). */
#define STORE_INDEX_CHUNK	(2048 * STORE_INDEX_REC)

/* ---- the pure format ---- */

static void
store_index_format_header(unsigned char *p, uint32_t uidvalidity,
    uint64_t highest, uint64_t floor)
{
	memset(p, 0, STORE_INDEX_HDR);
	memcpy(p, STORE_INDEX_MAGIC, 8);
	store_le32_put(p + 8, STORE_INDEX_VERSION);
	store_le32_put(p + 12, STORE_INDEX_REC);
	store_le32_put(p + 16, uidvalidity);
	store_le64_put(p + 24, highest);
	store_le64_put(p + 32, floor);
	store_le32_put(p + 60, store_crc32c(0, p, 60));
}

int
store_index_parse_header(const unsigned char *p, uint32_t *uidvalidity_r,
    uint64_t *highest_r, uint64_t *floor_r)
{
	if (memcmp(p, STORE_INDEX_MAGIC, 8) != 0 ||
	    store_le32_get(p + 8) != STORE_INDEX_VERSION ||
	    store_le32_get(p + 12) != STORE_INDEX_REC ||
	    store_le32_get(p + 60) != store_crc32c(0, p, 60))
		return -1;
	*uidvalidity_r = store_le32_get(p + 16);
	*highest_r = store_le64_get(p + 24);
	*floor_r = store_le64_get(p + 32);
	if (*uidvalidity_r == 0 || *highest_r > STORE_MODSEQ_MAX ||
	    *floor_r > *highest_r)
		return -1;
	return 0;
}

static void
store_index_format_record(unsigned char *p, int type, uint32_t uid,
    uint32_t flags, uint64_t kw, uint64_t modseq)
{
	memset(p, 0, STORE_INDEX_REC);
	p[0] = (unsigned char)type;
	store_le32_put(p + 4, uid);
	store_le64_put(p + 8, modseq);
	store_le64_put(p + 16, kw);
	store_le32_put(p + 24, flags);
	store_le32_put(p + 28, store_crc32c(0, p, 28));
}

int
store_index_parse_record(const unsigned char *p, int *type_r,
    uint32_t *uid_r, uint32_t *flags_r, uint64_t *kw_r, uint64_t *modseq_r)
{
	if ((p[0] != STORE_INDEX_T_MSG && p[0] != STORE_INDEX_T_EXPUNGE) ||
	    p[1] != 0 || p[2] != 0 || p[3] != 0 ||
	    store_le32_get(p + 28) != store_crc32c(0, p, 28))
		return -1;
	*type_r = p[0];
	*uid_r = store_le32_get(p + 4);
	*modseq_r = store_le64_get(p + 8);
	*kw_r = store_le64_get(p + 16);
	*flags_r = store_le32_get(p + 24) & STORE_INDEX_FLAGS;
	if (*uid_r == 0 || *modseq_r == 0 || *modseq_r > STORE_MODSEQ_MAX)
		return -1;
	if (STORE_MAX_KEYWORDS < 64)
		*kw_r &= (UINT64_C(1) << STORE_MAX_KEYWORDS) - 1;
	return 0;
}

/* ---- the state in memory ---- */

void
store_index_init(struct store_index *ix, const char *path)
{
	memset(ix, 0, sizeof(*ix));
	ix->path = xstrdup(path);
	ix->fd = -1;
	buf_init(&ix->pending, 0);
}

static void
store_index_forget(struct store_index *ix)
{
	if (ix->fd >= 0)
		close(ix->fd);
	ix->fd = -1;
	ix->loaded = false;
	ix->dev = 0;
	ix->ino = 0;
	ix->read_off = 0;
	ix->uidvalidity = 0;
	ix->floor = 0;
	ix->file_records = 0;
	ix->count = 0;
	ix->nexp = 0;
	/* highest is kept: a rebuilt index starts above it. */
}

void
store_index_deinit(struct store_index *ix)
{
	store_index_forget(ix);
	free(ix->msgs);
	free(ix->exp);
	free(ix->path);
	buf_free(&ix->pending);
	memset(ix, 0, sizeof(*ix));
	ix->fd = -1;
}

static struct store_index_msg *
store_index_find(const struct store_index *ix, uint32_t uid)
{
	size_t lo = 0, hi = ix->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->msgs[mid].uid == uid)
			return &ix->msgs[mid];
		if (ix->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void
store_index_push_msg(struct store_index *ix, uint32_t uid, uint32_t flags,
    uint64_t kw, uint64_t modseq)
{
	struct store_index_msg *m;

	if (ix->count == ix->cap) {
		ix->cap = ix->cap == 0 ? 256 : ix->cap * 2;
		ix->msgs = xreallocarray(ix->msgs, ix->cap, sizeof(*ix->msgs));
	}
	m = &ix->msgs[ix->count++];
	m->uid = uid;
	m->flags = flags;
	m->keywords = kw;
	m->modseq = modseq;
}

static int
store_index_msg_cmp(const void *a, const void *b)
{
	const struct store_index_msg *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	/* The same UID twice: the later change first. */
	return x->modseq > y->modseq ? -1 : x->modseq < y->modseq;
}

static int
store_index_exp_cmp(const void *a, const void *b)
{
	const struct store_index_exp *x = a, *y = b;

	if (x->modseq != y->modseq)
		return x->modseq < y->modseq ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Remember at most STORE_MAX_EXPUNGED expunges (RFC 7162 §5.3). */
static void
store_index_bound_exp(struct store_index *ix)
{
	size_t drop;

	if (ix->nexp <= STORE_MAX_EXPUNGED + STORE_MAX_EXPUNGED / 4)
		return;
	drop = ix->nexp - STORE_MAX_EXPUNGED;
	if (ix->exp[drop - 1].modseq > ix->floor)
		ix->floor = ix->exp[drop - 1].modseq;
	memmove(ix->exp, ix->exp + drop,
	    (ix->nexp - drop) * sizeof(*ix->exp));
	ix->nexp -= drop;
}

/*
 * Apply n whole records.  Message records update in place or append
 * (UIDs nearly always come in ascending order); the rare out-of-order
 * UID makes one sort at the end.  Expunges are applied after that, by
 * modseq against the message's.
 */
static void
store_index_apply(struct store_index *ix, const unsigned char *p, size_t n)
{
	struct store_index_exp *bexp = NULL;
	size_t nb = 0, capb = 0, i, j;
	bool resort = false, exp_sorted = true, dead = false;

	for (i = 0; i < n; i++, p += STORE_INDEX_REC) {
		struct store_index_msg *m;
		uint32_t uid, flags;
		uint64_t kw, modseq;
		int type;

		ix->file_records++;
		if (store_index_parse_record(p, &type, &uid, &flags, &kw,
		    &modseq) < 0)
			continue;
		if (modseq > ix->highest)
			ix->highest = modseq;
		if (type == STORE_INDEX_T_EXPUNGE) {
			if (nb == capb) {
				capb = capb == 0 ? 64 : capb * 2;
				bexp = xreallocarray(bexp, capb,
				    sizeof(*bexp));
			}
			bexp[nb].uid = uid;
			bexp[nb].modseq = modseq;
			nb++;
			continue;
		}
		m = resort ? NULL : store_index_find(ix, uid);
		if (m != NULL) {
			if (modseq >= m->modseq) {
				m->flags = flags;
				m->keywords = kw;
				m->modseq = modseq;
			}
			continue;
		}
		if (ix->count > 0 && ix->msgs[ix->count - 1].uid >= uid)
			resort = true;
		store_index_push_msg(ix, uid, flags, kw, modseq);
	}
	if (resort) {
		qsort(ix->msgs, ix->count, sizeof(*ix->msgs),
		    store_index_msg_cmp);
		for (i = 0, j = 0; i < ix->count; i++) {
			if (j > 0 && ix->msgs[j - 1].uid == ix->msgs[i].uid)
				continue;
			ix->msgs[j++] = ix->msgs[i];
		}
		ix->count = j;
	}
	for (i = 0; i < nb; i++) {
		struct store_index_msg *m = store_index_find(ix, bexp[i].uid);

		if (m != NULL && bexp[i].modseq > m->modseq &&
		    (m->flags & STORE_INDEX_DEAD) == 0) {
			m->flags |= STORE_INDEX_DEAD;
			m->modseq = bexp[i].modseq;
			dead = true;
		}
		if (ix->nexp == ix->capexp) {
			ix->capexp = ix->capexp == 0 ? 64 : ix->capexp * 2;
			ix->exp = xreallocarray(ix->exp, ix->capexp,
			    sizeof(*ix->exp));
		}
		if (ix->nexp > 0 &&
		    ix->exp[ix->nexp - 1].modseq > bexp[i].modseq)
			exp_sorted = false;
		ix->exp[ix->nexp++] = bexp[i];
	}
	free(bexp);
	if (!exp_sorted)
		qsort(ix->exp, ix->nexp, sizeof(*ix->exp),
		    store_index_exp_cmp);
	if (dead) {
		for (i = 0, j = 0; i < ix->count; i++)
			if ((ix->msgs[i].flags & STORE_INDEX_DEAD) == 0)
				ix->msgs[j++] = ix->msgs[i];
		ix->count = j;
	}
	store_index_bound_exp(ix);
}

/*
 * Bring the state up to date with the file: read what was appended, or
 * all of it when the file was replaced.  A missing file or a damaged
 * header leaves the index not loaded.  -1 (errno) on I/O errors.
 */
static int
store_index_read(struct store_index *ix)
{
	unsigned char hdr[STORE_INDEX_HDR], *chunk;
	struct stat st;
	off_t end;

	if (ix->fd >= 0) {
		if (stat(ix->path, &st) < 0) {
			if (errno != ENOENT)
				return -1;
			store_index_forget(ix);	/* removed */
		} else if (st.st_dev != ix->dev || st.st_ino != ix->ino)
			store_index_forget(ix);	/* replaced */
	}
	if (ix->fd < 0) {
		store_index_forget(ix);
		ix->fd = open(ix->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (ix->fd < 0)
			return errno == ENOENT ? 0 : -1;
	}
	if (fstat(ix->fd, &st) < 0)
		return -1;
	if (ix->loaded && st.st_size < ix->read_off) {
		/* Shorter than what we read: replaced in place. */
		int fd = ix->fd;

		ix->fd = -1;
		store_index_forget(ix);
		ix->fd = fd;
	}
	if (!ix->loaded) {
		ix->dev = st.st_dev;
		ix->ino = st.st_ino;
		if (st.st_size > STORE_INDEX_MAX_FILE ||
		    store_file_pread_all(ix->fd, hdr, sizeof(hdr), 0) !=
		    (ssize_t)sizeof(hdr) ||
		    store_index_parse_header(hdr, &ix->uidvalidity,
		    &ix->highest, &ix->floor) < 0)
			return 0;	/* damaged: written anew */
		ix->loaded = true;
		ix->read_off = STORE_INDEX_HDR;
	}
	if (st.st_size > STORE_INDEX_MAX_FILE) {
		/* Grown past any sense since we read it: written anew. */
		int fd = ix->fd;

		ix->fd = -1;
		store_index_forget(ix);
		ix->fd = fd;
		return 0;
	}
	end = st.st_size - (st.st_size - STORE_INDEX_HDR) % STORE_INDEX_REC;
	if (end <= ix->read_off)
		return 0;
	chunk = xmalloc(STORE_INDEX_CHUNK);
	while (ix->read_off < end) {
		size_t want = (size_t)(end - ix->read_off);
		ssize_t n;

		if (want > STORE_INDEX_CHUNK)
			want = STORE_INDEX_CHUNK;
		n = store_file_pread_all(ix->fd, chunk, want, ix->read_off);
		if (n < 0) {
			free(chunk);
			return -1;
		}
		n -= n % STORE_INDEX_REC;
		if (n == 0)
			break;	/* shrunk meanwhile: the next read sees it */
		store_index_apply(ix, chunk, (size_t)n / STORE_INDEX_REC);
		ix->read_off += n;
	}
	free(chunk);
	return 0;
}

/* ---- writing (under the UID map lock) ---- */

static void
store_index_log_error(struct store_mailbox *mb, const char *what)
{
	struct store_index *ix = &mb->index;

	log_error("%s: %s failed: %m; modseqs of %s are kept in memory only",
	    ix->path, what, mb->path);
	ix->broken = true;
}

/* Lock the UID map unless the caller holds it: 1 taken, 0 held
 * already, -1 error. */
static int
store_index_lock(struct store_mailbox *mb)
{
	const char *err;

	if (mb->map.lock_fd >= 0)
		return 0;
	if (store_uidmap_lock(&mb->map, &err) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 1;
}

/* Append the pending records.  0, or -1 (errno). */
static int
store_index_commit(struct store_index *ix)
{
	struct stat st;
	int fd, e;

	if (ix->pending.len == 0)
		return 0;
	fd = open(ix->path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (st.st_dev != ix->dev || st.st_ino != ix->ino ||
	    st.st_size < ix->read_off) {
		errno = ESTALE;
		goto fail;
	}
	/* A torn record of a writer that crashed: cut it off. */
	if (st.st_size > ix->read_off && ftruncate(fd, ix->read_off) < 0)
		goto fail;
	if (pwrite(fd, ix->pending.data, ix->pending.len, ix->read_off) !=
	    (ssize_t)ix->pending.len) {
		e = errno != 0 ? errno : ENOSPC;
		(void)!ftruncate(fd, ix->read_off);
		close(fd);
		errno = e;
		return -1;
	}
	if (close(fd) < 0)
		return -1;
	/* What we appended is what we already applied in memory. */
	ix->read_off += (off_t)ix->pending.len;
	ix->file_records += ix->pending.len / STORE_INDEX_REC;
	buf_reset(&ix->pending);
	return 0;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static void
store_index_put(struct store_index *ix, int type, uint32_t uid,
    uint32_t flags, uint64_t kw, uint64_t modseq)
{
	unsigned char rec[STORE_INDEX_REC];

	store_index_format_record(rec, type, uid, flags, kw, modseq);
	buf_append(&ix->pending, rec, sizeof(rec));
}

/*
 * Write the whole state as a new file: header, live messages, the
 * remembered expunges; then read it back.  0 or -1 (errno).
 */
static int
store_index_rewrite(struct store_index *ix)
{
	unsigned char hdr[STORE_INDEX_HDR];
	struct buf b;
	size_t i;
	int fd, ret;

	fd = store_file_tmp_open(ix->path);
	if (fd < 0)
		return -1;
	buf_init(&b, 0);
	store_index_format_header(hdr, ix->uidvalidity, ix->highest,
	    ix->floor);
	buf_append(&b, hdr, sizeof(hdr));
	for (i = 0; i <= ix->count + ix->nexp; i++) {
		if (b.len >= STORE_INDEX_CHUNK || i == ix->count + ix->nexp) {
			if (fdio_write_all(fd, b.data, b.len) < 0) {
				int e = errno;

				buf_free(&b);
				store_file_tmp_abort(ix->path, fd);
				errno = e;
				return -1;
			}
			buf_reset(&b);
			if (i == ix->count + ix->nexp)
				break;
		}
		if (i < ix->count) {
			const struct store_index_msg *m = &ix->msgs[i];
			unsigned char rec[STORE_INDEX_REC];

			store_index_format_record(rec, STORE_INDEX_T_MSG,
			    m->uid, m->flags, m->keywords, m->modseq);
			buf_append(&b, rec, sizeof(rec));
		} else {
			const struct store_index_exp *x =
			    &ix->exp[i - ix->count];
			unsigned char rec[STORE_INDEX_REC];

			store_index_format_record(rec, STORE_INDEX_T_EXPUNGE,
			    x->uid, 0, 0, x->modseq);
			buf_append(&b, rec, sizeof(rec));
		}
	}
	buf_free(&b);
	ret = store_file_tmp_commit(ix->path, fd);
	if (ret < 0)
		return -1;
	/* Read it back: offsets, inode and record count from the file. */
	{
		uint64_t highest = ix->highest;

		store_index_forget(ix);
		ix->highest = highest;
		if (store_index_read(ix) < 0 || !ix->loaded)
			return -1;
	}
	return 0;
}

/* The base modseq of a new index (see the top of the file). */
static uint64_t
store_index_base(const struct store_mailbox *mb)
{
	struct timespec ts;
	uint64_t base;

	clock_gettime(CLOCK_REALTIME, &ts);
	base = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	if (base <= mb->index.highest)
		base = mb->index.highest + 1;
	if (base <= mb->highest_modseq)
		base = mb->highest_modseq + 1;
	/* Only a forged file comes near the end of the 63 bits: start
	 * again from the clock rather than give invalid modseqs. */
	if (base > STORE_MODSEQ_MAX / 2)
		base = (uint64_t)ts.tv_sec * 1000000 +
		    (uint64_t)ts.tv_nsec / 1000;
	return base;
}

/* Locked: a new index holding msgs, all at one new modseq. */
static int
store_index_create(struct store_mailbox *mb, const struct store_msg *msgs,
    uint32_t count)
{
	struct store_index *ix = &mb->index;
	uint64_t base = store_index_base(mb);
	uint32_t i;

	if (ix->loaded)
		log_warning("%s: UIDVALIDITY changed; modseqs start again",
		    ix->path);
	store_index_forget(ix);
	buf_reset(&ix->pending);
	ix->uidvalidity = mb->map.uidvalidity;
	ix->highest = base;
	ix->floor = base;
	for (i = 0; i < count; i++)
		store_index_push_msg(ix, msgs[i].uid,
		    msgs[i].flags & STORE_INDEX_FLAGS, msgs[i].keywords, base);
	return store_index_rewrite(ix);
}

static bool
store_index_wants_compact(const struct store_index *ix)
{
	return ix->file_records > 1024 &&
	    ix->file_records > 2 * (ix->count + ix->nexp);
}

/* An index entry not in the view: expunged, unless the UID map still
 * has the message (a file the scan missed, to be seen again). */
static bool
store_index_gone(const struct store_mailbox *mb, uint32_t uid)
{
	const struct store_uidrec *r = store_uidmap_find_uid(&mb->map, uid);

	return r == NULL || r->dead;
}

/*
 * Walk the view and the index side by side.  With write false, only
 * tell whether anything differs (1) or not (0).  With write true
 * (locked), record every difference with a new modseq, and leave the
 * index equal to the view.
 */
static int
store_index_diff(struct store_mailbox *mb, const struct store_msg *msgs,
    uint32_t count, bool write)
{
	struct store_index *ix = &mb->index;
	struct store_index_msg *old = NULL;
	size_t nold = 0, i = 0, j = 0;
	bool any = false;

	if (write) {
		/* Build the new message list from the old one. */
		old = ix->msgs;
		nold = ix->count;
		ix->msgs = NULL;
		ix->count = ix->cap = 0;
	} else {
		old = ix->msgs;
		nold = ix->count;
	}
	while (i < count || j < nold) {
		if (j < nold && (i == count || old[j].uid < msgs[i].uid)) {
			/* In the index, not in the view. */
			if (!store_index_gone(mb, old[j].uid)) {
				if (write)
					store_index_push_msg(ix, old[j].uid,
					    old[j].flags, old[j].keywords,
					    old[j].modseq);
			} else {
				any = true;
				if (!write)
					return 1;
				store_index_put(ix, STORE_INDEX_T_EXPUNGE,
				    old[j].uid, 0, 0, ++ix->highest);
				if (ix->nexp == ix->capexp) {
					ix->capexp = ix->capexp == 0 ? 64 :
					    ix->capexp * 2;
					ix->exp = xreallocarray(ix->exp,
					    ix->capexp, sizeof(*ix->exp));
				}
				ix->exp[ix->nexp].uid = old[j].uid;
				ix->exp[ix->nexp].modseq = ix->highest;
				ix->nexp++;
			}
			j++;
			continue;
		}
		if (j < nold && old[j].uid == msgs[i].uid) {
			uint32_t f = msgs[i].flags & STORE_INDEX_FLAGS;

			if (f == old[j].flags &&
			    msgs[i].keywords == old[j].keywords) {
				if (write)
					store_index_push_msg(ix, old[j].uid,
					    f, old[j].keywords,
					    old[j].modseq);
				i++;
				j++;
				continue;
			}
			j++;
		}
		/* New to the index, or changed on disk. */
		any = true;
		if (!write)
			return 1;
		ix->highest++;
		store_index_push_msg(ix, msgs[i].uid,
		    msgs[i].flags & STORE_INDEX_FLAGS, msgs[i].keywords,
		    ix->highest);
		store_index_put(ix, STORE_INDEX_T_MSG, msgs[i].uid,
		    msgs[i].flags & STORE_INDEX_FLAGS, msgs[i].keywords,
		    ix->highest);
		i++;
	}
	if (write) {
		free(old);
		store_index_bound_exp(ix);
	}
	return any ? 1 : 0;
}

/* Copy the index's modseqs into the view (both in UID order). */
static void
store_index_fill(const struct store_index *ix, struct store_msg *msgs,
    uint32_t count)
{
	size_t i, j = 0;

	for (i = 0; i < count; i++) {
		while (j < ix->count && ix->msgs[j].uid < msgs[i].uid)
			j++;
		if (j < ix->count && ix->msgs[j].uid == msgs[i].uid)
			msgs[i].modseq = ix->msgs[j].modseq;
	}
}

int
store_index_view(struct store_mailbox *mb, struct store_msg *msgs,
    uint32_t count)
{
	struct store_index *ix = &mb->index;
	int locked, ret = -1;

	if (ix->broken)
		return -1;
	if (store_index_read(ix) < 0) {
		store_index_log_error(mb, "read");
		return -1;
	}
	if (ix->loaded && ix->uidvalidity == mb->map.uidvalidity &&
	    store_index_diff(mb, msgs, count, false) == 0) {
		/* The common case: nothing new, no lock, no write. */
		store_index_fill(ix, msgs, count);
		return 0;
	}
	if ((locked = store_index_lock(mb)) < 0)
		return -1;
	if (store_index_read(ix) < 0) {
		store_index_log_error(mb, "read");
		goto out;
	}
	if (!ix->loaded || ix->uidvalidity != mb->map.uidvalidity) {
		if (store_index_create(mb, msgs, count) < 0) {
			store_index_log_error(mb, "writing");
			goto out;
		}
	} else {
		/* Room for a modseq per message and per expunge (a damaged
		 * file could claim the largest modseq there is). */
		if (ix->highest > STORE_MODSEQ_MAX - count - ix->count) {
			errno = EOVERFLOW;
			store_index_log_error(mb, "new modseqs");
			goto out;
		}
		(void)store_index_diff(mb, msgs, count, true);
		if (store_index_commit(ix) < 0) {
			store_index_log_error(mb, "append");
			goto out;
		}
		if (store_index_wants_compact(ix) &&
		    store_index_rewrite(ix) < 0)
			log_error("%s: compaction failed: %m", ix->path);
	}
	store_index_fill(ix, msgs, count);
	ret = 0;
out:
	if (locked > 0)
		store_uidmap_unlock(&mb->map);
	return ret;
}

int
store_index_changed(struct store_mailbox *mb, uint32_t idx, uint32_t flags,
    uint64_t keywords, uint64_t *modseq_r)
{
	struct store_index *ix = &mb->index;
	const struct store_msg *vm = &mb->msgs[idx];
	struct store_index_msg *m;
	int locked, ret = -1;

	if (ix->broken)
		return -1;
	if ((locked = store_index_lock(mb)) < 0)
		return -1;
	if (store_index_read(ix) < 0) {
		store_index_log_error(mb, "read");
		goto out;
	}
	if (!ix->loaded || ix->uidvalidity != mb->map.uidvalidity) {
		/* Lost under us: start again from the view as it is. */
		if (store_index_create(mb, mb->msgs, mb->count) < 0) {
			store_index_log_error(mb, "writing");
			goto out;
		}
	}
	m = store_index_find(ix, vm->uid);
	if (m == NULL && store_index_gone(mb, vm->uid)) {
		/* Expunged meanwhile: the change went nowhere. */
		ret = 1;
		goto out;
	}
	if (ix->highest >= STORE_MODSEQ_MAX) {
		errno = EOVERFLOW;
		store_index_log_error(mb, "a new modseq");
		goto out;
	}
	ix->highest++;
	if (m != NULL) {
		m->flags = flags & STORE_INDEX_FLAGS;
		m->keywords = keywords;
		m->modseq = ix->highest;
	} else {
		/* Saved after the view was recorded: place it by UID. */
		size_t pos = ix->count;

		store_index_push_msg(ix, vm->uid, flags & STORE_INDEX_FLAGS,
		    keywords, ix->highest);
		while (pos > 0 && ix->msgs[pos - 1].uid > vm->uid) {
			struct store_index_msg t = ix->msgs[pos];

			ix->msgs[pos] = ix->msgs[pos - 1];
			ix->msgs[pos - 1] = t;
			pos--;
		}
	}
	store_index_put(ix, STORE_INDEX_T_MSG, vm->uid,
	    flags & STORE_INDEX_FLAGS, keywords, ix->highest);
	if (store_index_commit(ix) < 0) {
		store_index_log_error(mb, "append");
		goto out;
	}
	if (store_index_wants_compact(ix) && store_index_rewrite(ix) < 0)
		log_error("%s: compaction failed: %m", ix->path);
	*modseq_r = ix->highest;
	ret = 0;
out:
	buf_reset(&ix->pending);
	if (locked > 0)
		store_uidmap_unlock(&mb->map);
	return ret;
}

/* ---- reading for QRESYNC (store.h) ---- */

static int
store_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

bool
store_mailbox_expunged_since(struct store_mailbox *mb, uint64_t modseq,
    uint32_t uid_lo, uint32_t uid_hi, uint32_t **uids_r, size_t *count_r)
{
	const struct store_index *ix = &mb->index;
	size_t lo = 0, hi = ix->nexp, i, n = 0;
	uint32_t *uids;

	*uids_r = NULL;
	*count_r = 0;
	if (ix->broken || !ix->loaded)
		return false;
	/* The first expunge after modseq. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->exp[mid].modseq <= modseq)
			lo = mid + 1;
		else
			hi = mid;
	}
	uids = xreallocarray(NULL, ix->nexp - lo + 1, sizeof(*uids));
	for (i = lo; i < ix->nexp; i++) {
		uint32_t uid = ix->exp[i].uid;

		/* Still in the view: this view has not seen it go yet. */
		if (uid < uid_lo || uid > uid_hi ||
		    store_mailbox_find_uid(mb, uid) >= 0)
			continue;
		uids[n++] = uid;
	}
	qsort(uids, n, sizeof(*uids), store_u32_cmp);
	for (i = 0, lo = 0; i < n; i++)
		if (lo == 0 || uids[lo - 1] != uids[i])
			uids[lo++] = uids[i];
	*uids_r = uids;
	*count_r = lo;
	return modseq >= ix->floor;
}

bool
store_mailbox_modseq_persistent(const struct store_mailbox *mb)
{
	return !mb->index.broken && mb->index.loaded;
}
