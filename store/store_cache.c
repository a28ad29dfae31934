/*
 * store_cache: the cache of parsed message data of one mailbox (store.h
 * "Cache of parsed message data", DESIGN §12 "Mailbox index"), in
 * "postern-cache" of a Maildir folder or ROOT/.postern/NAME.cache for
 * mbox.  What goes into a record is computed in store_cache_fill.c; this
 * file is the file format, its reading and writing, and the lookup.
 *
 * The file is append-only, little-endian, 8-byte aligned:
 *
 *   header (64 bytes)
 *     0  "PSTNCCH1"              8  u32 version (1)
 *    12  u32 0                  16  u32 UIDVALIDITY
 *    20  zero                   60  u32 CRC-32C of bytes 0..59
 *
 *   record (a multiple of 8 bytes, at most STORE_CACHE_MAX_RECORD)
 *     0  "PCR1"                  4  u32 length of the record
 *     8  u32 UID                12  u16 field set, u16 number of fields
 *    16  u64 vsize of the message the record was computed from
 *    24  fields: u16 id (enum store_cache_field), u16 0, u32 length,
 *        the bytes; then zero padding to 4 bytes before the end
 *   -4  u32 CRC-32C of everything before it
 *
 * The last record of a UID counts; earlier ones are dead.  A record is
 * used only when its checksum, UID, vsize (an mbox message whose
 * headers another program rewrote has another vsize) and field set
 * match; anything else is computed again and appended.  A field too
 * large for STORE_CACHE_MAX_FIELD is left out of the record and computed
 * by the caller each time.
 *
 * Opening reads the records into a table UID -> offset, taking only
 * those whose checksum is right (it is checked again at every use: the
 * disk may change under us).  Anything else (damage in the middle) makes
 * the scan look for the next record at every 8 bytes; a record that
 * would end past the end of the file ends the scan while another
 * process holds the write lock (it is being written), and is damage
 * like any other otherwise.  A writer
 * holds an fcntl lock on the file, reads what others appended, cuts off
 * a torn tail and appends its records with one write; records computed
 * by a session wait in memory until STORE_CACHE_FLUSH bytes, a sync or
 * the close.  When more than half the file is dead (expunged or
 * replaced records, damage) and it is worth it, the live records are
 * copied to a new file, fsynced and renamed over the old one.  A file
 * that is removed, replaced, of another UIDVALIDITY or with a damaged
 * header is noticed at the next sync or miss and started again.
 *
 * Nothing of this is precious: any error leaves the cache empty or
 * unwritten, logged once, and values are computed from the messages.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

#define STORE_CACHE_MAGIC	"PSTNCCH1"
#define STORE_CACHE_REC_MAGIC	"PCR1"
#define STORE_CACHE_VERSION	1
/* An offset in the pending buffer, not in the file. */
#define STORE_CACHE_PENDING	(UINT64_C(1) << 63)
/* Bytes read at once when a record is not in the read-ahead window. */
#define STORE_CACHE_WINDOW	(256 * 1024)
/* Files smaller than this are never compacted. */
#define STORE_CACHE_COMPACT_MIN	(1024 * 1024)
/* Bytes read at a time while scanning (a whole record fits). */
#define STORE_CACHE_SCAN_CHUNK	(STORE_CACHE_MAX_RECORD + 64 * 1024)

struct store_cache_ent {
	uint32_t	 uid;		/* 0: a free slot */
	uint32_t	 len;
	uint64_t	 off;
};

struct store_cache_pend {
	uint32_t	 uid;
	uint32_t	 len;
	uint64_t	 rel;		/* offset in pending */
};

struct store_cache {
	char		*path;
	int		 fd;		/* the file, or -1 */
	bool		 exists;	/* fd has a usable header */
	bool		 broken;	/* cannot be written: logged once */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 scan_off;	/* after the last record read */
	uint32_t	 uidvalidity;	/* of the file */
	/* UID -> record, open addressing */
	struct store_cache_ent *tab;
	size_t		 tab_size, tab_count;
	uint64_t	 live_bytes, dead_bytes;
	/* records computed, to be appended */
	struct buf	 pending;
	struct store_cache_pend *pend;
	size_t		 npend, cappend;
	/* file bytes read ahead: records are read in file order mostly */
	unsigned char	*win;
	size_t		 win_cap, win_len;
	uint64_t	 win_off;
	/* the record of the message asked for last */
	struct buf	 cur;
	bool		 cur_valid;
	uint32_t	 cur_uid;
	uint64_t	 cur_vsize;
	struct store_cache_field_val vals[STORE_CACHE_FIELD_COUNT];
};

/* ---- the pure format ---- */

static void
store_cache_format_header(unsigned char *p, uint32_t uidvalidity)
{
	memset(p, 0, STORE_CACHE_HDR);
	memcpy(p, STORE_CACHE_MAGIC, 8);
	store_le32_put(p + 8, STORE_CACHE_VERSION);
	store_le32_put(p + 16, uidvalidity);
	store_le32_put(p + 60, store_crc32c(0, p, 60));
}

static int
store_cache_parse_header(const unsigned char *p, uint32_t *uidvalidity_r)
{
	if (memcmp(p, STORE_CACHE_MAGIC, 8) != 0 ||
	    store_le32_get(p + 8) != STORE_CACHE_VERSION ||
	    store_le32_get(p + 60) != store_crc32c(0, p, 60))
		return -1;
	*uidvalidity_r = store_le32_get(p + 16);
	return *uidvalidity_r == 0 ? -1 : 0;
}

int
store_cache_parse_rec_header(const unsigned char *p, uint32_t *len_r,
    uint32_t *uid_r)
{
	uint32_t len = store_le32_get(p + 4);

	if (memcmp(p, STORE_CACHE_REC_MAGIC, 4) != 0 ||
	    len < STORE_CACHE_REC_HDR + 4 || len > STORE_CACHE_MAX_RECORD ||
	    len % 8 != 0 || store_le32_get(p + 8) == 0)
		return 0;
	*len_r = len;
	*uid_r = store_le32_get(p + 8);
	return 1;
}

int
store_cache_parse_record(const unsigned char *p, size_t len,
    uint32_t *uid_r, uint64_t *vsize_r, unsigned int *fieldset_r,
    struct store_cache_field_val *vals, size_t nvals)
{
	uint32_t rlen, uid;
	size_t pos, end, k, nfields;

	for (k = 0; k < nvals; k++) {
		vals[k].id = (unsigned int)k;
		vals[k].data = NULL;
		vals[k].len = 0;
	}
	if (len < STORE_CACHE_REC_HDR + 4 ||
	    store_cache_parse_rec_header(p, &rlen, &uid) != 1 ||
	    rlen != len ||
	    store_le32_get(p + len - 4) != store_crc32c(0, p, len - 4))
		return -1;
	*uid_r = uid;
	*fieldset_r = (unsigned int)p[12] | (unsigned int)p[13] << 8;
	nfields = (size_t)p[14] | (size_t)p[15] << 8;
	*vsize_r = store_le64_get(p + 16);
	end = len - 4;
	pos = STORE_CACHE_REC_HDR;
	for (k = 0; k < nfields; k++) {
		unsigned int id;
		uint32_t flen;

		if (end - pos < 8)
			return -1;
		id = (unsigned int)p[pos] | (unsigned int)p[pos + 1] << 8;
		flen = store_le32_get(p + pos + 4);
		if (p[pos + 2] != 0 || p[pos + 3] != 0 ||
		    flen > end - pos - 8)
			return -1;
		if (id < nvals) {
			if (vals[id].data != NULL)
				return -1;	/* twice */
			vals[id].data = p + pos + 8;
			vals[id].len = flen;
		}
		pos += 8 + flen;
	}
	/* Only the padding may follow. */
	if (end - pos >= 8)
		return -1;
	for (; pos < end; pos++)
		if (p[pos] != 0)
			return -1;
	return 0;
}

void
store_cache_frame(struct buf *rec, uint32_t uid, uint64_t vsize,
    unsigned int fieldset, const struct store_cache_field_val *f, size_t n)
{
	unsigned char hdr[STORE_CACHE_REC_HDR], fh[8], crc[4];
	bool *skip = xcalloc(n + 1, sizeof(*skip));
	size_t total, i, nfields;
	static const unsigned char zero[8];

	/* Leave out the largest fields until the record fits. */
	for (;;) {
		size_t big = n;

		total = STORE_CACHE_REC_HDR + 4;
		for (i = 0; i < n; i++) {
			if (skip[i])
				continue;
			total += 8 + f[i].len;	/* UNSAFE: each len is
						 * bounded by MAX_FIELD */
			if (big == n || f[i].len > f[big].len)
				big = i;
		}
		total = (total + 7) & ~(size_t)7;
		if (total <= STORE_CACHE_MAX_RECORD || big == n)
			break;
		skip[big] = true;
	}
	nfields = 0;
	for (i = 0; i < n; i++)
		if (!skip[i])
			nfields++;
	buf_reset(rec);
	memcpy(hdr, STORE_CACHE_REC_MAGIC, 4);
	store_le32_put(hdr + 4, (uint32_t)total);
	store_le32_put(hdr + 8, uid);
	hdr[12] = (unsigned char)fieldset;
	hdr[13] = (unsigned char)(fieldset >> 8);
	hdr[14] = (unsigned char)nfields;
	hdr[15] = (unsigned char)(nfields >> 8);
	store_le64_put(hdr + 16, vsize);
	buf_append(rec, hdr, sizeof(hdr));
	for (i = 0; i < n; i++) {
		if (skip[i])
			continue;
		fh[0] = (unsigned char)f[i].id;
		fh[1] = (unsigned char)(f[i].id >> 8);
		fh[2] = fh[3] = 0;
		store_le32_put(fh + 4, (uint32_t)f[i].len);
		buf_append(rec, fh, sizeof(fh));
		if (f[i].len > 0)
			buf_append(rec, f[i].data, f[i].len);
	}
	buf_append(rec, zero, total - 4 - rec->len);
	store_le32_put(crc, store_crc32c(0, rec->data, rec->len));
	buf_append(rec, crc, sizeof(crc));
	free(skip);
}

/* ---- the UID table ---- */

static size_t
store_cache_slot(uint32_t uid, size_t mask)
{
	uint64_t h = (uint64_t)uid * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & mask;
}

static struct store_cache_ent *
store_cache_find(const struct store_cache *c, uint32_t uid)
{
	size_t mask, i;

	if (c->tab_size == 0)
		return NULL;
	mask = c->tab_size - 1;
	for (i = store_cache_slot(uid, mask); ; i = (i + 1) & mask) {
		if (c->tab[i].uid == uid)
			return &c->tab[i];
		if (c->tab[i].uid == 0)
			return NULL;
	}
}

static void store_cache_put(struct store_cache *c, uint32_t uid,
    uint64_t off, uint32_t len);

static void
store_cache_grow(struct store_cache *c)
{
	struct store_cache_ent *old = c->tab;
	size_t i, n = c->tab_size;

	c->tab_size = n == 0 ? 1024 : n * 2;
	c->tab = xcalloc(c->tab_size, sizeof(*c->tab));
	c->tab_count = 0;
	for (i = 0; i < n; i++)
		if (old[i].uid != 0)
			store_cache_put(c, old[i].uid, old[i].off, old[i].len);
	free(old);
}

/* Set the record of uid (no byte accounting). */
static void
store_cache_put(struct store_cache *c, uint32_t uid, uint64_t off,
    uint32_t len)
{
	size_t mask, i;

	/* Load at most 3/4. */
	if ((c->tab_count + 1) * 4 > c->tab_size * 3)
		store_cache_grow(c);
	mask = c->tab_size - 1;
	for (i = store_cache_slot(uid, mask); ; i = (i + 1) & mask) {
		if (c->tab[i].uid == uid || c->tab[i].uid == 0)
			break;
	}
	if (c->tab[i].uid == 0)
		c->tab_count++;
	c->tab[i].uid = uid;
	c->tab[i].off = off;
	c->tab[i].len = len;
}

/* Remove the entry e points to (backward-shift deletion, so lookups
 * stay correct without tombstones). */
static void
store_cache_del(struct store_cache *c, struct store_cache_ent *e)
{
	size_t mask = c->tab_size - 1, i = (size_t)(e - c->tab), j = i;

	for (;;) {
		size_t k;

		c->tab[i].uid = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (c->tab[j].uid == 0) {
				c->tab_count--;
				return;
			}
			k = store_cache_slot(c->tab[j].uid, mask);
			/* Can the entry at j move to the hole at i? */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		c->tab[i] = c->tab[j];
		i = j;
	}
}

/* A record read from the file: it replaces an earlier one of uid. */
static void
store_cache_add(struct store_cache *c, uint32_t uid, uint64_t off,
    uint32_t len)
{
	struct store_cache_ent *e = store_cache_find(c, uid);

	if (e != NULL && (e->off & STORE_CACHE_PENDING) == 0) {
		c->dead_bytes += e->len;
		c->live_bytes -= e->len;
	}
	store_cache_put(c, uid, off, len);
	c->live_bytes += len;
}

/* uid's record is no use any more (expunged, stale, damaged). */
static void
store_cache_kill(struct store_cache *c, struct store_cache_ent *e)
{
	if ((e->off & STORE_CACHE_PENDING) == 0) {
		c->dead_bytes += e->len;
		c->live_bytes -= e->len;
	}
	store_cache_del(c, e);
}

/* ---- reading the file ---- */

struct store_cache *
store_cache_new(const char *path)
{
	struct store_cache *c = xcalloc(1, sizeof(*c));

	c->path = xstrdup(path);
	c->fd = -1;
	buf_init(&c->pending, 0);
	buf_init(&c->cur, 0);
	return c;
}

/* Forget what the file held (entries of pending records too: they are
 * put back when written). */
static void
store_cache_reset(struct store_cache *c)
{
	free(c->tab);
	c->tab = NULL;
	c->tab_size = c->tab_count = 0;
	c->live_bytes = c->dead_bytes = 0;
	c->exists = false;
	c->dev = 0;
	c->ino = 0;
	c->scan_off = 0;
	c->win_len = 0;
}

/* After a reset: the records waiting to be written are found again. */
static void
store_cache_repend(struct store_cache *c)
{
	size_t i;

	for (i = 0; i < c->npend; i++)
		store_cache_put(c, c->pend[i].uid,
		    STORE_CACHE_PENDING | c->pend[i].rel, c->pend[i].len);
}

static void
store_cache_close_fd(struct store_cache *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->win_len = 0;
}

/*
 * The UID map read: a view from the snapshot (store_snap.c) leaves it
 * unread, and without it every record would look dead.
 */
static void
store_cache_map_ready(struct store_mailbox *mb)
{
	const char *err;

	if (!mb->map.exists && store_uidmap_refresh(&mb->map, &err) < 0)
		log_error("%s", err);
}

/* Whether uid is a message of the mailbox as far as the UID map knows:
 * records of others are dead. */
static bool
store_cache_uid_live(const struct store_mailbox *mb, uint32_t uid)
{
	const struct store_uidrec *r;

	if (uid >= mb->map.next_uid)
		return true;	/* newer than our map: maybe */
	r = store_uidmap_find_uid(&mb->map, uid);
	return r != NULL && !r->dead;
}

/* Whether another process holds the write lock (is appending). */
static bool
store_cache_write_locked(const struct store_cache *c)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(c->fd, F_GETLK, &fl) < 0)
		return true;	/* cannot tell: assume so, read it later */
	return fl.l_type != F_UNLCK;
}

/*
 * Read the record headers from scan_off to size.  locked: no writer can
 * be half-way, so a record past the end of the file is damage too.
 */
static int
store_cache_scan(struct store_cache *c, off_t size, bool locked)
{
	unsigned char *chunk;
	off_t pos = c->scan_off, garbage = -1;
	bool resync = false;

	if (size - pos < STORE_CACHE_REC_HDR)
		return 0;
	chunk = xmalloc(STORE_CACHE_SCAN_CHUNK);
	while (size - pos >= STORE_CACHE_REC_HDR) {
		size_t want = size - pos > STORE_CACHE_SCAN_CHUNK ?
		    STORE_CACHE_SCAN_CHUNK : (size_t)(size - pos);
		ssize_t n = store_file_pread_all(c->fd, chunk, want, pos);
		size_t i = 0;

		if (n < 0) {
			free(chunk);
			return -1;
		}
		if ((size_t)n < STORE_CACHE_REC_HDR)
			break;	/* shrunk meanwhile */
		while (i + STORE_CACHE_REC_HDR <= (size_t)n) {
			uint32_t len, uid;
			off_t at = pos + (off_t)i;

			if (store_cache_parse_rec_header(chunk + i, &len,
			    &uid) == 1) {
				if (at + len > size) {
					/* Being written now (a writer holds
					 * the lock), else torn or damaged. */
					if (!resync && !locked &&
					    store_cache_write_locked(c))
						goto done;
				} else if (i + len > (size_t)n) {
					break;	/* read it whole next */
				} else if (c->tab_count >= MAX_STORE_MESSAGES &&
				    store_cache_find(c, uid) == NULL) {
					goto done;	/* the limit: enough */
				} else if (store_le32_get(chunk + i + len -
				    4) == store_crc32c(0, chunk + i,
				    len - 4)) {
					if (garbage >= 0)
						c->dead_bytes +=
						    (uint64_t)(at - garbage);
					garbage = -1;
					resync = false;
					store_cache_add(c, uid, (uint64_t)at,
					    len);
					i += len;
					c->scan_off = pos + (off_t)i;
					continue;
				}
			}
			/* Not a record here: look at every 8 bytes. */
			if (garbage < 0)
				garbage = at;
			resync = true;
			i += 8;
		}
		if (i == 0)
			break;
		pos += (off_t)i;
	}
done:
	free(chunk);
	return 0;
}

static int
store_cache_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Records of messages expunged while nobody had the file open are dead.
 * The UIDs of the table, sorted, are walked beside the UID map's (also
 * in UID order): one pass, not a search per record.
 */
static void
store_cache_drop_dead(struct store_mailbox *mb, struct store_cache *c)
{
	const struct store_uidmap *map = &mb->map;
	uint32_t *uids = xreallocarray(NULL, c->tab_count + 1, sizeof(*uids));
	size_t n = 0, i, j = 0;

	for (i = 0; i < c->tab_size; i++)
		if (c->tab[i].uid != 0)
			uids[n++] = c->tab[i].uid;
	qsort(uids, n, sizeof(*uids), store_cache_u32_cmp);
	for (i = 0; i < n; i++) {
		struct store_cache_ent *e;

		if (uids[i] >= map->next_uid)
			break;	/* newer than our map: maybe live */
		while (j < map->count && map->recs[j]->uid < uids[i])
			j++;
		if (j < map->count && map->recs[j]->uid == uids[i] &&
		    !map->recs[j]->dead)
			continue;
		if ((e = store_cache_find(c, uids[i])) != NULL)
			store_cache_kill(c, e);
	}
	free(uids);
}

/*
 * Bring the table up to date with the file c->fd is open on (the
 * current file: the caller checked or holds the lock).
 */
static int
store_cache_load(struct store_mailbox *mb, struct store_cache *c,
    bool locked)
{
	unsigned char hdr[STORE_CACHE_HDR];
	struct stat st;
	bool fresh = false;
	uint32_t uv;

	store_cache_map_ready(mb);
	if (fstat(c->fd, &st) < 0)
		return -1;
	if (c->exists && (st.st_dev != c->dev || st.st_ino != c->ino ||
	    st.st_size < c->scan_off))
		store_cache_reset(c);
	if (!c->exists) {
		store_cache_reset(c);
		store_cache_repend(c);
		c->dev = st.st_dev;
		c->ino = st.st_ino;
		if (st.st_size < STORE_CACHE_HDR ||
		    st.st_size > STORE_CACHE_MAX_FILE ||
		    store_file_pread_all(c->fd, hdr, sizeof(hdr), 0) !=
		    (ssize_t)sizeof(hdr) ||
		    store_cache_parse_header(hdr, &uv) < 0 ||
		    uv != mb->map.uidvalidity)
			return 0;	/* started again by the next writer */
		c->exists = true;
		c->scan_off = STORE_CACHE_HDR;
		c->uidvalidity = uv;
		fresh = true;
	}
	if (store_cache_scan(c, st.st_size, locked) < 0)
		return -1;
	if (fresh && c->tab_count > 0)
		store_cache_drop_dead(mb, c);
	return 0;
}

/* Without the lock: notice a removed or replaced file, read what was
 * appended. */
static void
store_cache_refresh(struct store_mailbox *mb, struct store_cache *c)
{
	struct stat st;

	if (c->fd >= 0) {
		/* Removed, replaced, or the mailbox got a new UIDVALIDITY:
		 * what we know is of no use. */
		if (stat(c->path, &st) < 0 || st.st_dev != c->dev ||
		    st.st_ino != c->ino || (c->exists &&
		    c->uidvalidity != mb->map.uidvalidity)) {
			store_cache_close_fd(c);
			store_cache_reset(c);
		}
	}
	if (c->fd < 0) {
		c->fd = open(c->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (c->fd < 0 && (errno == EACCES || errno == EROFS))
			c->fd = open(c->path, O_RDONLY | O_CLOEXEC |
			    O_NOFOLLOW);
		if (c->fd < 0)
			return;	/* none yet (or unreadable): compute */
	}
	if (store_cache_load(mb, c, false) < 0) {
		log_warning("%s: reading failed: %m; starting again",
		    c->path);
		store_cache_close_fd(c);
		store_cache_reset(c);
	}
}

/* ---- writing ---- */

static void
store_cache_broken(struct store_cache *c, const char *what)
{
	if (!c->broken)
		log_error("%s: %s failed: %m; the cache of this mailbox is "
		    "not written", c->path, what);
	c->broken = true;
}

static void
store_cache_drop_pending(struct store_cache *c)
{
	size_t i;

	for (i = 0; i < c->npend; i++) {
		struct store_cache_ent *e = store_cache_find(c,
		    c->pend[i].uid);

		if (e != NULL && (e->off & STORE_CACHE_PENDING) != 0)
			store_cache_del(c, e);
	}
	c->npend = 0;
	buf_reset(&c->pending);
}

static int
store_cache_off_cmp(const void *a, const void *b)
{
	const struct store_cache_ent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Locked: copy the live records to a new file.  The lock is on the old
 * file, which is closed at the end (others then find the new one). */
static int
store_cache_compact(struct store_mailbox *mb, struct store_cache *c)
{
	struct store_cache_ent *live;
	unsigned char hdr[STORE_CACHE_HDR];
	struct buf b;
	size_t n = 0, i;
	int fd, e;

	live = xreallocarray(NULL, c->tab_count + 1, sizeof(*live));
	for (i = 0; i < c->tab_size; i++)
		if (c->tab[i].uid != 0 &&
		    (c->tab[i].off & STORE_CACHE_PENDING) == 0 &&
		    store_cache_uid_live(mb, c->tab[i].uid))
			live[n++] = c->tab[i];
	/* File order: one pass forward over the old file. */
	qsort(live, n, sizeof(*live), store_cache_off_cmp);
	fd = store_file_tmp_open(c->path);
	if (fd < 0) {
		free(live);
		return -1;
	}
	buf_init(&b, 0);
	store_cache_format_header(hdr, mb->map.uidvalidity);
	buf_append(&b, hdr, sizeof(hdr));
	for (i = 0; i <= n; i++) {
		if (i == n || b.len >= STORE_CACHE_FLUSH) {
			if (fdio_write_all(fd, b.data, b.len) < 0)
				goto fail;
			buf_reset(&b);
			if (i == n)
				break;
		}
		uint32_t len = live[i].len;

		if (buf_reserve(&b, len) < 0 ||
		    store_file_pread_all(c->fd, b.data + b.len, len,
		    (off_t)live[i].off) != (ssize_t)len)
			goto fail;
		b.len += len;
	}
	buf_free(&b);
	free(live);
	if (store_file_tmp_commit(c->path, fd) < 0)
		return -1;
	/* Closing the old file releases the lock others wait on. */
	store_cache_close_fd(c);
	store_cache_reset(c);
	store_cache_refresh(mb, c);
	return 0;
fail:
	e = errno;
	buf_free(&b);
	free(live);
	store_file_tmp_abort(c->path, fd);
	errno = e;
	return -1;
}

static bool
store_cache_wants_compact(const struct store_cache *c)
{
	return c->dead_bytes > c->live_bytes &&
	    c->dead_bytes + c->live_bytes > STORE_CACHE_COMPACT_MIN;
}

/* Append the pending records (and compact when worth it). */
static void
store_cache_flush(struct store_mailbox *mb, struct store_cache *c,
    bool compact)
{
	unsigned char hdr[STORE_CACHE_HDR];
	struct stat st;
	size_t i;

	if (c->npend == 0 && !compact)
		return;
	store_cache_map_ready(mb);
	if (c->broken) {
		store_cache_drop_pending(c);
		return;
	}
	if (store_file_lock(c->path, &c->fd, STORE_LOCK_WAIT) < 0) {
		if (errno == EAGAIN) {
			/* Busy for long: keep computing, try later. */
			log_warning("%s: locked by another process for "
			    "long; records not written", c->path);
			store_cache_drop_pending(c);
		} else {
			store_cache_broken(c, "lock");
			store_cache_drop_pending(c);
		}
		return;
	}
	if (store_cache_load(mb, c, true) < 0)
		goto fail;
	if (!c->exists) {
		/*
		 * New, damaged, or of another UIDVALIDITY: start again.  An
		 * empty file (made by our lock) gets the header in place;
		 * anything else is replaced by rename, so that no other
		 * reader finds new bytes where it knew old ones.
		 */
		store_cache_reset(c);
		store_cache_repend(c);
		store_cache_format_header(hdr, mb->map.uidvalidity);
		if (fstat(c->fd, &st) < 0)
			goto fail;
		if (st.st_size == 0) {
			if (pwrite(c->fd, hdr, sizeof(hdr), 0) !=
			    (ssize_t)sizeof(hdr))
				goto fail;
		} else {
			int nfd = store_file_tmp_open(c->path);

			if (nfd < 0)
				goto fail;
			if (fdio_write_all(nfd, hdr, sizeof(hdr)) < 0) {
				store_file_tmp_abort(c->path, nfd);
				goto fail;
			}
			if (store_file_tmp_commit(c->path, nfd) < 0)
				goto fail;
			/* Our lock is on the old file: take the new one. */
			if (store_file_lock(c->path, &c->fd,
			    STORE_LOCK_WAIT) < 0)
				goto fail;
			if (store_cache_load(mb, c, true) < 0 || !c->exists)
				goto fail;
		}
		if (fstat(c->fd, &st) < 0)
			goto fail;
		c->exists = true;
		c->dev = st.st_dev;
		c->ino = st.st_ino;
		c->scan_off = STORE_CACHE_HDR;
		c->uidvalidity = mb->map.uidvalidity;
	}
	if (c->npend > 0) {
		if (fstat(c->fd, &st) < 0)
			goto fail;
		/* A torn append (or damage) at the end: cut it off. */
		if (st.st_size > c->scan_off &&
		    ftruncate(c->fd, c->scan_off) < 0)
			goto fail;
		if (pwrite(c->fd, c->pending.data, c->pending.len,
		    c->scan_off) != (ssize_t)c->pending.len) {
			if (errno == 0)
				errno = ENOSPC;
			(void)!ftruncate(c->fd, c->scan_off);
			goto fail;
		}
		for (i = 0; i < c->npend; i++) {
			const struct store_cache_pend *p = &c->pend[i];

			if (!store_cache_uid_live(mb, p->uid)) {
				c->dead_bytes += p->len;
				continue;
			}
			store_cache_add(c, p->uid,
			    (uint64_t)c->scan_off + p->rel, p->len);
		}
		c->scan_off += (off_t)c->pending.len;
		c->win_len = 0;		/* it may hold what we cut off */
		c->npend = 0;
		buf_reset(&c->pending);
	}
	if (store_cache_wants_compact(c)) {
		if (store_cache_compact(mb, c) < 0)
			log_error("%s: compaction failed: %m", c->path);
		return;	/* unlocked: the old file was closed */
	}
	store_file_unlock(c->fd);
	return;
fail:
	store_cache_broken(c, "write");
	store_file_unlock(c->fd);
	store_cache_drop_pending(c);
	store_cache_close_fd(c);
	store_cache_reset(c);
}

/* ---- the mailbox's side ---- */

void
store_cache_free(struct store_mailbox *mb, struct store_cache **cp)
{
	struct store_cache *c = *cp;

	if (c == NULL)
		return;
	store_cache_flush(mb, c, false);
	store_cache_close_fd(c);
	store_cache_reset(c);
	buf_free(&c->pending);
	buf_free(&c->cur);
	free(c->win);
	free(c->pend);
	free(c->path);
	free(c);
	*cp = NULL;
}

void
store_cache_sync(struct store_mailbox *mb)
{
	struct store_cache *c = mb->cache;

	if (c == NULL)
		return;
	c->cur_valid = false;
	store_cache_flush(mb, c, false);
	store_cache_refresh(mb, c);
}

void
store_cache_expunged(struct store_mailbox *mb, const uint32_t *uids,
    size_t n)
{
	struct store_cache *c = mb->cache;
	size_t i;

	if (c == NULL || n == 0)
		return;
	for (i = 0; i < n; i++) {
		struct store_cache_ent *e = store_cache_find(c, uids[i]);

		if (e != NULL)
			store_cache_kill(c, e);
	}
	if (store_cache_wants_compact(c))
		store_cache_flush(mb, c, true);
}

static struct store_cache *
store_cache_get(struct store_mailbox *mb)
{
	if (mb->cache == NULL) {
		mb->cache = store_cache_new(mb->cache_path);
		store_cache_refresh(mb, mb->cache);
	}
	return mb->cache;
}

/*
 * len bytes of the file at off, through the read-ahead window: a FETCH
 * or SEARCH of every message reads the records in file order, so one
 * read(2) serves many.  NULL when they cannot be read.
 */
static const unsigned char *
store_cache_bytes(struct store_cache *c, uint64_t off, uint32_t len)
{
	size_t want = STORE_CACHE_WINDOW;
	ssize_t n;

	if (c->win_len > 0 && off >= c->win_off &&
	    off + len <= c->win_off + c->win_len)
		return c->win + (off - c->win_off);
	if (c->fd < 0)
		return NULL;
	if ((uint64_t)c->scan_off > off && (uint64_t)c->scan_off - off < want)
		want = (size_t)((uint64_t)c->scan_off - off);
	if (want < len)
		want = len;
	if (c->win_cap < want) {
		free(c->win);
		c->win = xmalloc(want);
		c->win_cap = want;
	}
	c->win_len = 0;
	n = store_file_pread_all(c->fd, c->win, want, (off_t)off);
	if (n < (ssize_t)len)
		return NULL;
	c->win_off = off;
	c->win_len = (size_t)n;
	return c->win;
}

/* Read the record of e into cur; 0 when it is usable for m. */
static int
store_cache_read(struct store_cache *c, struct store_cache_ent *e,
    const struct store_msg *m)
{
	uint32_t len = e->len, uid;
	const unsigned char *src;
	unsigned int fieldset;
	uint64_t vsize;

	buf_reset(&c->cur);
	if (buf_reserve(&c->cur, len) < 0)
		return -1;
	if ((e->off & STORE_CACHE_PENDING) != 0) {
		uint64_t rel = e->off & ~STORE_CACHE_PENDING;

		if (rel + len > c->pending.len)
			return -1;
		src = (const unsigned char *)c->pending.data + rel;
	} else if ((src = store_cache_bytes(c, e->off, len)) == NULL)
		return -1;
	memcpy(c->cur.data, src, len);
	c->cur.len = len;
	/* Checked at every use: the bytes on disk may have been damaged
	 * since the last (CRC-32C costs little next to the read). */
	if (store_cache_parse_record((const unsigned char *)c->cur.data,
	    c->cur.len, &uid, &vsize, &fieldset, c->vals,
	    STORE_CACHE_FIELD_COUNT) < 0)
		return -1;
	if (uid != m->uid || vsize != m->vsize ||
	    fieldset != STORE_CACHE_FIELDSET)
		return -1;
	return 0;
}

/* Make c->vals the fields of message idx: 1 from the cache, 2 computed,
 * -1 error. */
static int
store_cache_lookup(struct store_mailbox *mb, uint32_t idx,
    const char **error_r)
{
	struct store_cache *c = store_cache_get(mb);
	const struct store_msg *m = store_mailbox_msg(mb, idx);
	struct store_cache_ent *e;
	unsigned int fieldset;
	uint64_t vsize;
	uint32_t uid;

	if (c->cur_valid && c->cur_uid == m->uid && c->cur_vsize == m->vsize)
		return 1;
	c->cur_valid = false;
	e = store_cache_find(c, m->uid);
	if (e == NULL && c->fd >= 0 && c->exists) {
		/* Another process may have computed it meanwhile: read
		 * what it appended (a replaced file waits for the sync). */
		struct stat st;

		if (fstat(c->fd, &st) == 0 && st.st_size > c->scan_off &&
		    store_cache_load(mb, c, false) == 0)
			e = store_cache_find(c, m->uid);
	}
	if (e != NULL) {
		if (store_cache_read(c, e, m) == 0) {
			c->cur_valid = true;
			c->cur_uid = m->uid;
			c->cur_vsize = m->vsize;
			return 1;
		}
		/* Damaged or stale: compute it again. */
		store_cache_kill(c, e);
	}
	if (store_cache_compute(mb, idx, &c->cur, error_r) < 0)
		return -1;
	if (store_cache_parse_record((const unsigned char *)c->cur.data,
	    c->cur.len, &uid, &vsize, &fieldset, c->vals,
	    STORE_CACHE_FIELD_COUNT) < 0)
		log_panic("store_cache: a record we made does not parse");
	c->cur_valid = true;
	c->cur_uid = m->uid;
	c->cur_vsize = m->vsize;
	if (!c->broken) {
		if (c->npend == c->cappend) {
			c->cappend = c->cappend == 0 ? 64 : c->cappend * 2;
			c->pend = xreallocarray(c->pend, c->cappend,
			    sizeof(*c->pend));
		}
		c->pend[c->npend].uid = m->uid;
		c->pend[c->npend].len = (uint32_t)c->cur.len;
		c->pend[c->npend].rel = c->pending.len;
		store_cache_put(c, m->uid, STORE_CACHE_PENDING |
		    (uint64_t)c->pending.len, (uint32_t)c->cur.len);
		c->npend++;
		buf_append(&c->pending, c->cur.data, c->cur.len);
		if (c->pending.len >= STORE_CACHE_FLUSH)
			store_cache_flush(mb, c, false);
	}
	return 2;
}

int
store_msg_cached(struct store_mailbox *mb, uint32_t idx,
    enum store_cache_field field, const char **val_r, size_t *len_r,
    const char **error_r)
{
	const struct store_cache_field_val *v;
	int r;

	if ((unsigned int)field >= STORE_CACHE_FIELD_COUNT || field <= 0 ||
	    field >= STORE_CACHE_HEADER_SIZE)
		log_panic("store_msg_cached: field %d is not a string",
		    (int)field);
	if ((r = store_cache_lookup(mb, idx, error_r)) < 0)
		return -1;
	v = &mb->cache->vals[field];
	if (v->data == NULL)
		return 0;
	*val_r = v->len > 0 ? v->data : "";
	*len_r = v->len;
	return r;
}

int
store_msg_cached_num(struct store_mailbox *mb, uint32_t idx,
    enum store_cache_field field, int64_t *val_r, const char **error_r)
{
	const struct store_cache_field_val *v;
	int r;

	if ((unsigned int)field >= STORE_CACHE_FIELD_COUNT ||
	    field < STORE_CACHE_HEADER_SIZE)
		log_panic("store_msg_cached_num: field %d is not a number",
		    (int)field);
	if ((r = store_cache_lookup(mb, idx, error_r)) < 0)
		return -1;
	v = &mb->cache->vals[field];
	if (v->data == NULL || v->len != 8)
		return 0;
	*val_r = (int64_t)store_le64_get(v->data);
	return r;
}
