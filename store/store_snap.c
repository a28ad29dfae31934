/*
 * store_snap: the view snapshot of a Maildir folder ("postern-view"), so
 * that opening a large mailbox nobody changed since needs neither a
 * listing of cur/ nor a parse of every UID map line (DESIGN §6, §12).
 *
 * It holds what a sync built: every message's UID, flags, keywords,
 * vsize, dates and file name, and the stamps of what the view was built
 * from (new/, cur/ and the UID map: device, inode, size, mtime to the
 * nanosecond).  A reader whose stat() of the three gives the same stamps
 * takes the view as it is; any difference, a short or damaged file (CRC
 * over everything), makes it build the view the usual way and write the
 * snapshot anew.  Only views built from directories whose mtime was at
 * least two seconds old when they were listed are written: a rename in
 * the same clock tick as the listing may leave a directory's mtime as it
 * was (store_maildir.c keeps to the same rule for its own skip).
 *
 * Like the index and the cache it can be deleted at any time.  It is not
 * fsynced: after a power loss a short or zeroed file fails the checks.
 * Writers take a lock on "postern-view.tmp" (checking that they locked
 * the file still under that name), so two writers never mix their bytes;
 * the finished file replaces the old one by rename.
 *
 * Layout (little-endian):
 *   0   "PSTVIEW1"
 *   8   u32 CRC-32C of bytes 16 .. end
 *   12  u32 message count
 *   16  u32 UIDVALIDITY, u32 next UID
 *   24  u64 length of the name block
 *   32  3 stamps of 40 bytes: u64 dev, u64 ino, u64 size, i64 mtime
 *       seconds, u32 nanoseconds, u32 zero
 *   152 u64 file size
 *   160 records of 48 bytes: u32 uid, u32 flags, u64 keywords, u64
 *       vsize, i64 internal date, i64 save date, u32 name offset, u16
 *       name length, u8 1 when in new/, u8 zero
 *   ... the name block: every name followed by NUL
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fdio.h"
#include "store_private.h"
#include "xmalloc.h"

#define SNAP_MAGIC	"PSTVIEW1"
#define SNAP_HDR	160
#define SNAP_REC	48
#define SNAP_STAMP	40
/* A file name is at most NAME_MAX bytes. */
#define SNAP_MAX_NAME	255
/* Flags a message may have on disk (no \Recent: that is per view). */
#define SNAP_FLAGS	(STORE_SEEN | STORE_ANSWERED | STORE_FLAGGED | \
	STORE_DELETED | STORE_DRAFT)

void
store_stamp_of(const struct stat *st, struct store_stamp *s)
{
	memset(s, 0, sizeof(*s));
	s->dev = (uint64_t)st->st_dev;
	s->ino = (uint64_t)st->st_ino;
	s->size = (uint64_t)st->st_size;
	s->sec = (int64_t)st->st_mtim.tv_sec;
	s->nsec = (uint32_t)st->st_mtim.tv_nsec;
}

int
store_stamp_path(const char *path, struct store_stamp *s)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		memset(s, 0, sizeof(*s));
		return -1;
	}
	store_stamp_of(&st, s);
	return 0;
}

bool
store_stamp_eq(const struct store_stamp *a, const struct store_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->sec == b->sec && a->nsec == b->nsec;
}

static void
snap_stamp_put(unsigned char *p, const struct store_stamp *s)
{
	store_le64_put(p, s->dev);
	store_le64_put(p + 8, s->ino);
	store_le64_put(p + 16, s->size);
	store_le64_put(p + 24, (uint64_t)s->sec);
	store_le32_put(p + 32, s->nsec);
	store_le32_put(p + 36, 0);
}

static void
snap_stamp_get(const unsigned char *p, struct store_stamp *s)
{
	s->dev = store_le64_get(p);
	s->ino = store_le64_get(p + 8);
	s->size = store_le64_get(p + 16);
	s->sec = (int64_t)store_le64_get(p + 24);
	s->nsec = store_le32_get(p + 32);
}

int
store_snap_parse_header(const unsigned char *p, struct store_snap_hdr *h)
{
	unsigned int i;

	if (memcmp(p, SNAP_MAGIC, 8) != 0)
		return -1;
	h->crc = store_le32_get(p + 8);
	h->count = store_le32_get(p + 12);
	h->uidvalidity = store_le32_get(p + 16);
	h->next_uid = store_le32_get(p + 20);
	h->names_len = store_le64_get(p + 24);
	for (i = 0; i < STORE_SNAP_STAMPS; i++)
		snap_stamp_get(p + 32 + i * SNAP_STAMP, &h->stamps[i]);
	h->file_size = store_le64_get(p + 152);
	if (h->count > MAX_STORE_MESSAGES || h->uidvalidity == 0 ||
	    h->names_len > (uint64_t)h->count * (SNAP_MAX_NAME + 1) ||
	    h->file_size != SNAP_HDR + (uint64_t)h->count * SNAP_REC +
	    h->names_len)
		return -1;
	return 0;
}

/* One record against the name block: 0 valid, -1 not. */
static int
snap_parse_record(const unsigned char *p, const char *names,
    uint64_t names_len, uint32_t prev_uid, uint32_t next_uid,
    struct store_msg *m, struct store_msg_priv *priv)
{
	uint32_t off = store_le32_get(p + 40);
	unsigned int len = (unsigned int)p[44] | (unsigned int)p[45] << 8;

	memset(m, 0, sizeof(*m));
	memset(priv, 0, sizeof(*priv));
	m->uid = store_le32_get(p);
	m->flags = store_le32_get(p + 4);
	m->keywords = store_le64_get(p + 8);
	m->vsize = store_le64_get(p + 16);
	m->internal_date = (time_t)(int64_t)store_le64_get(p + 24);
	m->save_date = (time_t)(int64_t)store_le64_get(p + 32);
	/* UIDs ascend (RFC 3501 §2.3.1.1) and are below the next one. */
	if (m->uid <= prev_uid || m->uid >= next_uid ||
	    (m->flags & ~SNAP_FLAGS) != 0 ||
	    (STORE_MAX_KEYWORDS < 64 &&
	    (m->keywords >> STORE_MAX_KEYWORDS) != 0) ||
	    m->vsize == STORE_VSIZE_UNKNOWN || p[46] > 1 || p[47] != 0 ||
	    len == 0 || len > SNAP_MAX_NAME ||
	    (uint64_t)off + len >= names_len || names[off + len] != '\0' ||
	    memchr(names + off, '\0', len) != NULL ||
	    memchr(names + off, '/', len) != NULL ||
	    memchr(names + off, '\n', len) != NULL ||
	    names[off] == '.' || names[off] == ':')
		return -1;	/* not a name a listing would give */
	priv->name = (char *)names + off;
	priv->in_new = p[46] != 0;
	return 0;
}

int
store_snap_read(const char *path, const struct store_stamp *stamps,
    struct store_snap_view *v)
{
	unsigned char hdr[SNAP_HDR], *recs = NULL;
	struct store_snap_hdr h;
	struct stat st;
	uint32_t crc, i;
	size_t rlen;
	int fd;

	memset(v, 0, sizeof(*v));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size < SNAP_HDR ||
	    store_file_pread_all(fd, hdr, SNAP_HDR, 0) != SNAP_HDR ||
	    store_snap_parse_header(hdr, &h) < 0 ||
	    (uint64_t)st.st_size != h.file_size)
		goto fail;
	for (i = 0; i < STORE_SNAP_STAMPS; i++)
		if (!store_stamp_eq(&h.stamps[i], &stamps[i]))
			goto fail;	/* stale: something changed */
	rlen = (size_t)h.count * SNAP_REC;
	recs = xmalloc(rlen + 1);
	v->names = xmalloc(h.names_len + 1);
	v->names_len = (size_t)h.names_len;
	if (store_file_pread_all(fd, recs, rlen, SNAP_HDR) != (ssize_t)rlen ||
	    store_file_pread_all(fd, v->names, v->names_len,
	    SNAP_HDR + (off_t)rlen) != (ssize_t)v->names_len)
		goto fail;
	crc = store_crc32c(0, hdr + 16, SNAP_HDR - 16);
	crc = store_crc32c(crc, recs, rlen);
	crc = store_crc32c(crc, v->names, v->names_len);
	if (crc != h.crc)
		goto fail;
	v->msgs = xreallocarray(NULL, h.count + 1, sizeof(*v->msgs));
	v->priv = xreallocarray(NULL, h.count + 1, sizeof(*v->priv));
	for (i = 0; i < h.count; i++) {
		if (snap_parse_record(recs + (size_t)i * SNAP_REC, v->names,
		    v->names_len, i == 0 ? 0 : v->msgs[i - 1].uid, h.next_uid,
		    &v->msgs[i], &v->priv[i]) < 0)
			goto fail;
	}
	v->count = h.count;
	v->uidvalidity = h.uidvalidity;
	v->next_uid = h.next_uid;
	free(recs);
	close(fd);
	return 0;
fail:
	free(recs);
	close(fd);
	store_snap_view_free(v);
	return -1;
}

void
store_snap_view_free(struct store_snap_view *v)
{
	free(v->msgs);
	free(v->priv);
	free(v->names);
	memset(v, 0, sizeof(*v));
}

/* Lock path.tmp for writing: the descriptor, or -1 when it cannot be
 * had now (another writer is at it: let it). */
static int
snap_tmp_lock(const char *tmp)
{
	struct flock fl;
	struct stat st, st2;
	int fd;

	fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	/* The file may have been renamed into place by its previous
	 * holder between our open and our lock: then it is not ours. */
	if (fcntl(fd, F_SETLK, &fl) < 0 || fstat(fd, &st) < 0 ||
	    stat(tmp, &st2) < 0 || st.st_dev != st2.st_dev ||
	    st.st_ino != st2.st_ino || ftruncate(fd, 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
store_snap_write(const char *path, const struct store_stamp *stamps,
    uint32_t uidvalidity, uint32_t next_uid, const struct store_msg *msgs,
    const struct store_msg_priv *priv, uint32_t count)
{
	struct buf names;
	unsigned char *p;
	char *tmp;
	uint32_t i, crc;
	int fd, ret = -1;

	if (uidvalidity == 0)
		return -1;
	buf_init(&names, 0);
	p = xcalloc(1, SNAP_HDR + (size_t)count * SNAP_REC);
	for (i = 0; i < count; i++) {
		unsigned char *r = p + SNAP_HDR + (size_t)i * SNAP_REC;
		size_t len = strlen(priv[i].name);

		if (len == 0 || len > SNAP_MAX_NAME || names.len > UINT32_MAX ||
		    msgs[i].vsize == STORE_VSIZE_UNKNOWN)
			goto out;
		store_le32_put(r, msgs[i].uid);
		store_le32_put(r + 4, msgs[i].flags & SNAP_FLAGS);
		store_le64_put(r + 8, msgs[i].keywords);
		store_le64_put(r + 16, msgs[i].vsize);
		store_le64_put(r + 24, (uint64_t)(int64_t)msgs[i].internal_date);
		store_le64_put(r + 32, (uint64_t)(int64_t)msgs[i].save_date);
		store_le32_put(r + 40, (uint32_t)names.len);
		r[44] = (unsigned char)(len & 0xff);
		r[45] = (unsigned char)(len >> 8);
		r[46] = priv[i].in_new ? 1 : 0;
		buf_append(&names, priv[i].name, len + 1);
	}
	memcpy(p, SNAP_MAGIC, 8);
	store_le32_put(p + 12, count);
	store_le32_put(p + 16, uidvalidity);
	store_le32_put(p + 20, next_uid);
	store_le64_put(p + 24, names.len);
	for (i = 0; i < STORE_SNAP_STAMPS; i++)
		snap_stamp_put(p + 32 + i * SNAP_STAMP, &stamps[i]);
	store_le64_put(p + 152, SNAP_HDR + (uint64_t)count * SNAP_REC +
	    names.len);
	crc = store_crc32c(0, p + 16, SNAP_HDR + (size_t)count * SNAP_REC - 16);
	crc = store_crc32c(crc, names.data, names.len);
	store_le32_put(p + 8, crc);

	tmp = xasprintf("%s.tmp", path);
	if ((fd = snap_tmp_lock(tmp)) < 0) {
		free(tmp);
		goto out;
	}
	if (fdio_write_all(fd, p, SNAP_HDR + (size_t)count * SNAP_REC) < 0 ||
	    fdio_write_all(fd, names.data, names.len) < 0 ||
	    rename(tmp, path) < 0)
		(void)unlink(tmp);
	else
		ret = 0;
	close(fd);	/* releases the lock */
	free(tmp);
out:
	free(p);
	buf_free(&names);
	return ret;
}
