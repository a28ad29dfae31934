/*
 * store_uidmap: the UID map of one mailbox (DESIGN §12), the one file of
 * the store that cannot be rebuilt.  It is text, one LF-terminated line
 * per entry:
 *
 *   postern-uidlist 1 V<uidvalidity> N<nextuid> G<guid>
 *   <uid> [<field>...] :<key>
 *   -<uid>
 *
 * The first line is the header.  N is the next UID when the file was
 * written; records appended later raise it (the next UID is the larger of
 * N and the highest UID in the file + 1, so a UID is never given twice).
 * G is the mailbox's id (store_mailbox_guid()): 32 lower-case hex digits,
 * random, written when the map is made and at every compaction, so the
 * id lives exactly as long as the map, which moves with the folder on a
 * rename and goes with it on a delete.  Maps written before G existed
 * get one at their next rewrite; a G that does not parse is ignored.
 *
 * A record maps a UID (1 .. 2^32-2, decimal) to a key: for Maildir the
 * base name of the message file (its name without the ":2,flags" part,
 * which changes with the flags), for mbox a fingerprint of the message
 * (store_mbox.c).  The key is the rest of the line after " :", so it may
 * hold spaces.  Fields are a letter and a value without spaces; unknown
 * letters are skipped, so later versions can add fields:
 *
 *   W<n>  vsize: the size with CRLF line ends (computed once, here)
 *   M<n>  internal date, seconds since the epoch (the file's mtime)
 *   D<n>  save date: when the UID was given
 *   F<n>  mbox: the flags (STORE_* bits) kept in the map, because the
 *   H<n>        mbox file is not rewritten for a flag change; H is the
 *   K<x>        flags of the Status:/X-Status: headers they replace, K
 *               the keyword bits in hex (see store_mbox.c)
 *
 * A record whose UID is already in the file updates that record's fields
 * when the key is the same (mbox flag changes), and is ignored otherwise.
 * "-<uid>" is a tombstone: the message was expunged; its key is free
 * again and gets a new UID if it ever appears again (UIDs are never
 * reused, RFC 3501 §2.3.1.1).
 *
 * Writers hold an fcntl lock on a separate lock file (the map itself is
 * replaced by rename, which would leave a lock on the old inode
 * useless), re-read what others appended, then append their lines with
 * one write().  A line counts only when it ends in LF and parses: a crash
 * in the middle of an append leaves a last line without LF, which
 * readers ignore and the next writer cuts off before appending.  New
 * records are fsynced before the UIDs are shown to anyone.  Tombstones
 * and mbox flag records are not: losing one in a power failure costs
 * nothing a later sync does not repair.
 *
 * Compaction writes the header and the live records to ".tmp", fsyncs
 * it, renames it over the map and fsyncs the directory, so a reader
 * always sees either the old or the new file.
 *
 * This file also reads Dovecot's dovecot-uidlist (versions 1 and 3) for
 * the one-time import at a mailbox's first open.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fdio.h"
#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

#define STORE_UIDLIST_MAGIC	"postern-uidlist 1"
/* UIDs are 32-bit and nonzero; 2^32-1 stays unused so that
 * "next UID" always fits. */
#define STORE_UID_MAX		(UINT32_MAX - 1)

/* ---- the pure parsers ---- */

/* Decimal at *p (advanced past it) up to end; -1 without digits or
 * above max. */
static int
store_parse_dec(const char **p, const char *end, uint64_t max,
    uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	/* 19 digits cannot overflow 64 bits: check only beyond (a map of
	 * 100,000 messages has half a million numbers). */
	for (; s < end && *s >= '0' && *s <= '9'; s++, n++) {
		if (n >= 19 && (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)))
			return -1;
		if (n < 19)
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return -1;
	*p = s;
	*v_r = v;
	return 0;
}

static int
store_parse_hex(const char **p, const char *end, uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0;

	for (; s < end; s++, n++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (n == 16)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -1;
	*p = s;
	*v_r = v;
	return 0;
}

/*
 * A G token's value (p..tend, after the 'G') into guid: exactly
 * STORE_GUID_LEN hex digits, kept in lower case.  Anything else leaves
 * guid empty: the id is then made anew rather than the map set aside.
 */
static void
store_parse_guid(const char *p, const char *tend,
    char guid[STORE_GUID_LEN + 1])
{
	size_t i;

	guid[0] = '\0';
	if (tend - p != STORE_GUID_LEN)
		return;
	for (i = 0; i < STORE_GUID_LEN; i++) {
		char c = p[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return;
		guid[i] = c;
	}
	guid[STORE_GUID_LEN] = '\0';
}

/* A fresh random id into guid; "" when the kernel gives no randomness
 * (the map is then written without one and gets it later). */
static void
store_guid_new(char guid[STORE_GUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[STORE_GUID_LEN / 2];
	size_t i;

	guid[0] = '\0';
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return;
	for (i = 0; i < sizeof(r); i++) {
		guid[2 * i] = hex[r[i] >> 4];
		guid[2 * i + 1] = hex[r[i] & 0xf];
	}
	guid[STORE_GUID_LEN] = '\0';
}

/* End of the space-separated token at p. */
static const char *
store_token_end(const char *p, const char *end)
{
	const char *sp = memchr(p, ' ', (size_t)(end - p));

	return sp != NULL ? sp : end;
}

int
store_uidlist_parse_header(const char *line, size_t len,
    struct store_uidhdr *hdr_r)
{
	const char *p = line, *end = line + len;
	size_t mlen = strlen(STORE_UIDLIST_MAGIC);
	bool have_v = false, have_n = false;

	memset(hdr_r, 0, sizeof(*hdr_r));
	if (len < mlen || memcmp(line, STORE_UIDLIST_MAGIC, mlen) != 0 ||
	    (len > mlen && line[mlen] != ' '))
		return -1;
	hdr_r->version = 1;
	p += mlen;
	while (p < end) {
		const char *tend;
		uint64_t v;

		if (*p++ != ' ')
			return -1;
		tend = store_token_end(p, end);
		if (p < tend && (*p == 'V' || *p == 'N')) {
			char c = *p++;

			if (store_parse_dec(&p, tend, UINT32_MAX, &v) < 0 ||
			    p != tend)
				return -1;
			if (c == 'V') {
				hdr_r->uidvalidity = (uint32_t)v;
				have_v = true;
			} else {
				hdr_r->next_uid = (uint32_t)v;
				have_n = true;
			}
		} else if (p < tend && *p == 'G')
			store_parse_guid(p + 1, tend, hdr_r->guid);
		p = tend;
	}
	if (!have_v || !have_n || hdr_r->uidvalidity == 0 ||
	    hdr_r->next_uid == 0)
		return -1;
	return 0;
}

/* One field token of a record; unknown letters are fine. */
static int
store_uidlist_field(const char *p, const char *tend, struct store_uidrec *r)
{
	char c = *p++;
	uint64_t v;

	switch (c) {
	case 'W':
		if (store_parse_dec(&p, tend, UINT64_MAX - 1, &v) < 0)
			return -1;
		r->vsize = v;
		break;
	case 'M':
	case 'D':
		if (store_parse_dec(&p, tend, INT64_MAX, &v) < 0)
			return -1;
		if (c == 'M')
			r->mtime = (int64_t)v;
		else
			r->save_date = (int64_t)v;
		break;
	case 'F':
	case 'H':
		if (store_parse_dec(&p, tend, UINT32_MAX, &v) < 0)
			return -1;
		if (c == 'F') {
			r->flags = (uint32_t)v & ~STORE_RECENT;
			r->has_flags = true;
		} else
			r->hdr_flags = (uint32_t)v & ~STORE_RECENT;
		break;
	case 'K':
		if (store_parse_hex(&p, tend, &v) < 0)
			return -1;
		r->keywords = v;
		break;
	default:
		return 0;
	}
	return p == tend ? 0 : -1;
}

static void
store_uidline_init(struct store_uidline *out)
{
	memset(out, 0, sizeof(*out));
	out->rec.vsize = STORE_VSIZE_UNKNOWN;
	out->rec.mtime = -1;
	out->rec.save_date = -1;
}

int
store_uidlist_parse_line(const char *line, size_t len,
    struct store_uidline *out_r)
{
	const char *p = line, *end = line + len;
	uint64_t uid;

	store_uidline_init(out_r);
	if (len > 0 && *p == '-') {
		p++;
		if (store_parse_dec(&p, end, STORE_UID_MAX, &uid) < 0 ||
		    p != end || uid == 0)
			return -1;
		out_r->type = STORE_UIDLINE_TOMBSTONE;
		out_r->rec.uid = (uint32_t)uid;
		return 0;
	}
	if (store_parse_dec(&p, end, STORE_UID_MAX, &uid) < 0 || uid == 0)
		return -1;
	out_r->type = STORE_UIDLINE_RECORD;
	out_r->rec.uid = (uint32_t)uid;
	while (p < end) {
		const char *tend;

		if (*p++ != ' ' || p == end)
			return -1;
		if (*p == ':') {
			p++;
			/* The key: the rest of the line, never empty. */
			if (p == end || memchr(p, '\0', (size_t)(end - p)))
				return -1;
			out_r->rec.key = (char *)p;
			out_r->keylen = (size_t)(end - p);
			return 0;
		}
		tend = store_token_end(p, end);
		if (store_uidlist_field(p, tend, &out_r->rec) < 0)
			return -1;
		p = tend;
	}
	return -1;
}

/*
 * Dovecot's header: version 3 "3 V<uidvalidity> N<nextuid> G<guid> ..."
 * (any order, other fields possible), version 1 "1 <uidvalidity>
 * <nextuid>" (the Courier courierimapuiddb layout).
 */
int
store_dovecot_parse_header(const char *line, size_t len,
    struct store_uidhdr *hdr_r)
{
	const char *p = line, *end = line + len;
	uint64_t v;

	memset(hdr_r, 0, sizeof(*hdr_r));
	if (store_parse_dec(&p, end, 100, &v) < 0)
		return -1;
	hdr_r->version = (int)v;
	if (v == 1) {
		uint64_t uv, nu;

		if (p == end || *p++ != ' ' ||
		    store_parse_dec(&p, end, UINT32_MAX, &uv) < 0 ||
		    p == end || *p++ != ' ' ||
		    store_parse_dec(&p, end, UINT32_MAX, &nu) < 0)
			return -1;
		hdr_r->uidvalidity = (uint32_t)uv;
		hdr_r->next_uid = (uint32_t)nu;
	} else if (v == 3) {
		while (p < end) {
			const char *tend;

			if (*p++ != ' ')
				return -1;
			tend = store_token_end(p, end);
			if (p < tend && (*p == 'V' || *p == 'N')) {
				char c = *p++;

				if (store_parse_dec(&p, tend, UINT32_MAX,
				    &v) < 0 || p != tend)
					return -1;
				if (c == 'V')
					hdr_r->uidvalidity = (uint32_t)v;
				else
					hdr_r->next_uid = (uint32_t)v;
			} else if (p < tend && *p == 'G')
				/* Dovecot's mailbox GUID: the same id. */
				store_parse_guid(p + 1, tend, hdr_r->guid);
			p = tend;
		}
	} else
		return -1;
	if (hdr_r->uidvalidity == 0)
		return -1;
	if (hdr_r->next_uid == 0)
		hdr_r->next_uid = 1;
	return 0;
}

/*
 * A Dovecot record: version 3 "<uid> [<ext>...] :<filename>" with
 * extension fields such as W<vsize> and S<size>; version 1 "<uid>
 * <filename>".  The key is the file name without its ":2,flags" part.
 */
int
store_dovecot_parse_line(int version, const char *line, size_t len,
    struct store_uidline *out_r)
{
	const char *p = line, *end = line + len, *name = NULL, *colon;
	uint64_t uid, v;

	store_uidline_init(out_r);
	out_r->type = STORE_UIDLINE_RECORD;
	if (store_parse_dec(&p, end, STORE_UID_MAX, &uid) < 0 || uid == 0 ||
	    p == end || *p++ != ' ')
		return -1;
	out_r->rec.uid = (uint32_t)uid;
	if (version == 1)
		name = p;
	while (name == NULL && p < end) {
		const char *tend;

		if (*p == ':') {
			name = p + 1;
			break;
		}
		tend = store_token_end(p, end);
		if (*p == 'W') {
			const char *q = p + 1;

			if (store_parse_dec(&q, tend, UINT64_MAX - 1,
			    &v) == 0 && q == tend)
				out_r->rec.vsize = v;
		}
		p = tend;
		if (p < end)
			p++;
	}
	if (name == NULL || name >= end)
		return -1;
	colon = memchr(name, ':', (size_t)(end - name));
	if (colon != NULL)
		end = colon;
	if (name == end || memchr(name, '\0', (size_t)(end - name)) != NULL ||
	    memchr(name, '/', (size_t)(end - name)) != NULL)
		return -1;
	out_r->rec.key = (char *)name;
	out_r->keylen = (size_t)(end - name);
	return 0;
}

/* ---- the map in memory ---- */

static const char *
store_uidmap_error(struct store_uidmap *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *
store_uidmap_error(struct store_uidmap *m, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		log_panic("out of memory");
	va_end(ap);
	free(m->error);
	m->error = s;
	return s;
}

void
store_uidmap_init(struct store_uidmap *m, const char *path,
    const char *lock_path)
{
	memset(m, 0, sizeof(*m));
	m->path = xstrdup(path);
	m->lock_path = xstrdup(lock_path);
	m->lock_fd = -1;
	m->by_key = store_hash_new(0);
	buf_init(&m->pending, 0);
}

static void
store_uidmap_clear(struct store_uidmap *m)
{
	size_t i;

	for (i = 0; i < m->count; i++) {
		free(m->recs[i]->key);
		free(m->recs[i]);
	}
	m->count = 0;
	m->dead = 0;
	m->exists = false;
	m->uidvalidity = 0;
	m->next_uid = 0;
	m->guid[0] = '\0';
	m->dev = 0;
	m->ino = 0;
	m->read_off = 0;
	store_hash_free(&m->by_key);
	m->by_key = store_hash_new(0);
}

void
store_uidmap_deinit(struct store_uidmap *m)
{
	store_uidmap_unlock(m);
	store_uidmap_clear(m);
	store_hash_free(&m->by_key);
	free(m->recs);
	free(m->path);
	free(m->lock_path);
	free(m->error);
	buf_free(&m->pending);
	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
}

struct store_uidrec *
store_uidmap_find_uid(const struct store_uidmap *m, uint32_t uid)
{
	size_t lo = 0, hi = m->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->recs[mid]->uid == uid)
			return m->recs[mid];
		if (m->recs[mid]->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct store_uidrec *
store_uidmap_find(const struct store_uidmap *m, const char *key,
    size_t keylen)
{
	struct store_uidrec *r = store_hash_get(m->by_key, key, keylen);

	return r != NULL && !r->dead ? r : NULL;
}

/* Insert a copy of r (key copied) in UID order. */
static struct store_uidrec *
store_uidmap_insert(struct store_uidmap *m, const struct store_uidrec *r,
    size_t keylen)
{
	struct store_uidrec *n = xmalloc(sizeof(*n)), *old;
	size_t pos = m->count;

	*n = *r;
	n->key = xstrndup(r->key, keylen);
	n->dead = false;
	if (m->count == m->cap) {
		m->cap = m->cap == 0 ? 256 : m->cap * 2;
		m->recs = xreallocarray(m->recs, m->cap, sizeof(*m->recs));
	}
	/* Appends come in UID order; anything else is placed by search. */
	if (m->count > 0 && m->recs[m->count - 1]->uid > n->uid) {
		size_t lo = 0, hi = m->count;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (m->recs[mid]->uid < n->uid)
				lo = mid + 1;
			else
				hi = mid;
		}
		pos = lo;
		memmove(m->recs + pos + 1, m->recs + pos,
		    (m->count - pos) * sizeof(*m->recs));
	}
	m->recs[pos] = n;
	m->count++;
	/* One live record per key: a later one replaces an earlier.  (An
	 * earlier record lives as long as the table, so the table may go
	 * on borrowing its copy of the key.) */
	{
		bool found;
		void **ref = store_hash_ref(m->by_key, n->key, keylen,
		    &found);

		old = *ref;
		if (old != NULL && !old->dead) {
			old->dead = true;
			m->dead++;
		}
		*ref = n;
	}
	if (n->uid >= m->next_uid)
		m->next_uid = n->uid + 1;
	return n;
}

static void
store_uidmap_kill(struct store_uidmap *m, struct store_uidrec *r)
{
	if (r->dead)
		return;
	r->dead = true;
	m->dead++;
	if (store_hash_get(m->by_key, r->key, strlen(r->key)) == r)
		store_hash_set(m->by_key, r->key, strlen(r->key), NULL);
}

/* Apply one complete line (without LF). */
static void
store_uidmap_apply(struct store_uidmap *m, const char *line, size_t len)
{
	struct store_uidline l;
	struct store_uidrec *r;

	if (len > MAX_STORE_UIDLIST_LINE ||
	    store_uidlist_parse_line(line, len, &l) < 0) {
		char esc[128];

		log_warning("%s: ignoring damaged line \"%s\"", m->path,
		    log_escape(esc, sizeof(esc), line, len));
		return;
	}
	r = store_uidmap_find_uid(m, l.rec.uid);
	if (l.type == STORE_UIDLINE_TOMBSTONE) {
		if (r != NULL)
			store_uidmap_kill(m, r);
		if (l.rec.uid >= m->next_uid)
			m->next_uid = l.rec.uid + 1;
		return;
	}
	if (r == NULL) {
		(void)store_uidmap_insert(m, &l.rec, l.keylen);
		return;
	}
	if (r->dead || strlen(r->key) != l.keylen ||
	    memcmp(r->key, l.rec.key, l.keylen) != 0)
		return;
	/* An update of a record we have. */
	if (l.rec.vsize != STORE_VSIZE_UNKNOWN)
		r->vsize = l.rec.vsize;
	if (l.rec.mtime >= 0)
		r->mtime = l.rec.mtime;
	if (l.rec.has_flags) {
		r->has_flags = true;
		r->flags = l.rec.flags;
		r->hdr_flags = l.rec.hdr_flags;
		r->keywords = l.rec.keywords;
	}
}

/* Move a damaged map aside, so a fresh one (new UIDVALIDITY) replaces
 * it and the old one stays for the admin. */
static void
store_uidmap_set_aside(struct store_uidmap *m, const char *why)
{
	char *aside = xasprintf("%s.broken.%lld", m->path,
	    (long long)time(NULL));

	log_error("%s: %s; moved to %s, UIDVALIDITY changes", m->path, why,
	    aside);
	if (rename(m->path, aside) < 0)
		log_error("rename(%s, %s) failed: %m", m->path, aside);
	free(aside);
}

static int
store_uidmap_read(struct store_uidmap *m, bool force, const char **error_r)
{
	struct stat st;
	char *data = NULL;
	size_t len, pos, start;
	ssize_t n;
	int fd;

	fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) {
			*error_r = store_uidmap_error(m, "open(%s) failed: %s",
			    m->path, strerror(errno));
			return -1;
		}
		store_uidmap_clear(m);
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = store_uidmap_error(m, "fstat(%s) failed: %s",
		    m->path, strerror(errno));
		close(fd);
		return -1;
	}
	if (force || !m->exists || st.st_dev != m->dev ||
	    st.st_ino != m->ino || st.st_size < m->read_off)
		store_uidmap_clear(m);
	if (st.st_size > MAX_STORE_UIDLIST_SIZE) {
		*error_r = store_uidmap_error(m, "%s: larger than %d bytes",
		    m->path, MAX_STORE_UIDLIST_SIZE);
		close(fd);
		return -1;
	}
	if (m->exists && st.st_size == m->read_off) {
		close(fd);
		return 0;
	}
	len = (size_t)(st.st_size - m->read_off);
	data = xmalloc(len + 1);
	pos = 0;
	while (pos < len) {
		n = pread(fd, data + pos, len - pos, m->read_off + (off_t)pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = store_uidmap_error(m, "read(%s) failed: %s",
			    m->path, strerror(errno));
			free(data);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;	/* shrunk meanwhile: take what is there */
		pos += (size_t)n;
	}
	close(fd);
	len = pos;
	start = 0;
	if (!m->exists) {
		/* A whole file: size the table once, for its lines. */
		size_t lines = 0;
		const char *q = data, *qend = data + len;

		while ((q = memchr(q, '\n', (size_t)(qend - q))) != NULL) {
			lines++;
			q++;
		}
		if (lines > store_hash_count(m->by_key)) {
			store_hash_free(&m->by_key);
			m->by_key = store_hash_new(lines);
		}
	}
	if (!m->exists) {
		struct store_uidhdr hdr;
		char *nl = memchr(data, '\n', len);

		if (nl == NULL || store_uidlist_parse_header(data,
		    (size_t)(nl - data), &hdr) < 0) {
			free(data);
			store_uidmap_set_aside(m, "damaged header");
			store_uidmap_clear(m);
			return 0;
		}
		m->exists = true;
		m->dev = st.st_dev;
		m->ino = st.st_ino;
		m->uidvalidity = hdr.uidvalidity;
		memcpy(m->guid, hdr.guid, sizeof(m->guid));
		if (hdr.next_uid > m->next_uid)
			m->next_uid = hdr.next_uid;
		start = (size_t)(nl - data) + 1;
	}
	/* Complete lines only: a last line without LF is a torn append. */
	for (pos = start; pos < len; ) {
		char *nl = memchr(data + pos, '\n', len - pos);

		if (nl == NULL)
			break;
		if (nl > data + pos)
			store_uidmap_apply(m, data + pos,
			    (size_t)(nl - (data + pos)));
		pos = (size_t)(nl - data) + 1;
	}
	m->read_off += (off_t)pos;
	free(data);
	return 0;
}

int
store_uidmap_refresh(struct store_uidmap *m, const char **error_r)
{
	return store_uidmap_read(m, false, error_r);
}

int
store_uidmap_lock(struct store_uidmap *m, const char **error_r)
{
	int fd;

	if (m->lock_fd >= 0)
		log_panic("store_uidmap_lock: %s already locked", m->path);
	fd = open(m->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		*error_r = store_uidmap_error(m, "open(%s) failed: %s",
		    m->lock_path, strerror(errno));
		return -1;
	}
	if (store_fcntl_lock(fd, F_WRLCK, STORE_LOCK_WAIT) < 0) {
		*error_r = store_uidmap_error(m, "cannot lock %s: %s",
		    m->lock_path, errno == EAGAIN ? "held too long by "
		    "another process" : strerror(errno));
		close(fd);
		return -1;
	}
	m->lock_fd = fd;
	buf_reset(&m->pending);
	if (store_uidmap_refresh(m, error_r) < 0) {
		store_uidmap_unlock(m);
		return -1;
	}
	return 0;
}

void
store_uidmap_unlock(struct store_uidmap *m)
{
	if (m->lock_fd < 0)
		return;
	if (m->pending.len > 0) {
		/* Not committed: memory has records the file lacks. */
		const char *err;

		buf_reset(&m->pending);
		if (store_uidmap_read(m, true, &err) < 0)
			log_error("%s", err);
	}
	close(m->lock_fd);	/* releases the lock */
	m->lock_fd = -1;
}

/* Write data to path.tmp, fsync, rename over path, fsync the dir. */
static int
store_uidmap_replace(struct store_uidmap *m, const char *data, size_t len,
    const char **error_r)
{
	char *tmp = xasprintf("%s.tmp", m->path);
	char *dir, *slash;
	int fd, e;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		*error_r = store_uidmap_error(m, "open(%s) failed: %s", tmp,
		    strerror(errno));
		free(tmp);
		return -1;
	}
	if (fdio_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		(void)unlink(tmp);
		*error_r = store_uidmap_error(m, "write(%s) failed: %s", tmp,
		    strerror(e));
		free(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, m->path) < 0) {
		e = errno;
		(void)unlink(tmp);
		*error_r = store_uidmap_error(m, "rename(%s) failed: %s", tmp,
		    strerror(e));
		free(tmp);
		return -1;
	}
	free(tmp);
	dir = xstrdup(m->path);
	slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (fdio_fsync_dir(dir[0] != '\0' ? dir : "/") < 0) {
			*error_r = store_uidmap_error(m, "fsync(%s) failed: %s",
			    dir, strerror(errno));
			free(dir);
			return -1;
		}
	}
	free(dir);
	return 0;
}

int
store_uidmap_create(struct store_uidmap *m, uint32_t uidvalidity,
    const char **error_r)
{
	char hdr[128], guid[STORE_GUID_LEN + 1];
	int len;

	if (m->exists)
		return 0;
	if (uidvalidity == 0)
		uidvalidity = 1;
	store_guid_new(guid);
	len = snprintf(hdr, sizeof(hdr), "%s V%" PRIu32 " N1%s%s\n",
	    STORE_UIDLIST_MAGIC, uidvalidity, guid[0] != '\0' ? " G" : "",
	    guid);
	if (store_uidmap_replace(m, hdr, (size_t)len, error_r) < 0)
		return -1;
	return store_uidmap_read(m, true, error_r);
}

static void
store_uidmap_format(struct buf *b, const struct store_uidrec *r)
{
	buf_printf(b, "%" PRIu32, r->uid);
	if (r->vsize != STORE_VSIZE_UNKNOWN)
		buf_printf(b, " W%" PRIu64, r->vsize);
	if (r->mtime >= 0)
		buf_printf(b, " M%" PRId64, r->mtime);
	if (r->save_date >= 0)
		buf_printf(b, " D%" PRId64, r->save_date);
	if (r->has_flags)
		buf_printf(b, " F%" PRIu32 " H%" PRIu32 " K%" PRIx64,
		    r->flags, r->hdr_flags, r->keywords);
	buf_printf(b, " :%s\n", r->key);
}

struct store_uidrec *
store_uidmap_add(struct store_uidmap *m, const char *key, uint64_t vsize,
    int64_t mtime)
{
	struct store_uidrec r;

	if (m->lock_fd < 0)
		log_panic("store_uidmap_add: %s not locked", m->path);
	if (m->next_uid == 0 || m->next_uid > STORE_UID_MAX)
		return NULL;
	memset(&r, 0, sizeof(r));
	r.uid = m->next_uid;
	r.key = (char *)key;
	r.vsize = vsize;
	r.mtime = mtime;
	r.save_date = (int64_t)time(NULL);
	store_uidmap_format(&m->pending, &r);
	return store_uidmap_insert(m, &r, strlen(key));
}

void
store_uidmap_expunge(struct store_uidmap *m, uint32_t uid)
{
	struct store_uidrec *r = store_uidmap_find_uid(m, uid);

	if (m->lock_fd < 0)
		log_panic("store_uidmap_expunge: %s not locked", m->path);
	if (r == NULL || r->dead)
		return;
	buf_printf(&m->pending, "-%" PRIu32 "\n", uid);
	store_uidmap_kill(m, r);
}

void
store_uidmap_put_flags(struct store_uidmap *m, struct store_uidrec *r)
{
	if (m->lock_fd < 0)
		log_panic("store_uidmap_put_flags: %s not locked", m->path);
	store_uidmap_format(&m->pending, r);
}

int
store_uidmap_commit(struct store_uidmap *m, bool sync, const char **error_r)
{
	struct stat st;
	int fd, e;

	if (m->lock_fd < 0)
		log_panic("store_uidmap_commit: %s not locked", m->path);
	if (m->pending.len == 0)
		return 0;
	fd = open(m->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		goto fail;
	}
	if (st.st_dev != m->dev || st.st_ino != m->ino ||
	    st.st_size < m->read_off) {
		e = ESTALE;
		goto fail;
	}
	/* Beyond the last complete line: a torn append.  Cut it off, or
	 * our first line would be glued to it. */
	if (st.st_size > m->read_off) {
		log_warning("%s: cutting off %lld bytes of an interrupted "
		    "update", m->path, (long long)(st.st_size - m->read_off));
		if (ftruncate(fd, m->read_off) < 0) {
			e = errno;
			goto fail;
		}
	}
	if (fdio_write_all(fd, m->pending.data, m->pending.len) < 0 ||
	    (sync && fsync(fd) < 0)) {
		e = errno;
		/* Leave no partial line behind us. */
		(void)!ftruncate(fd, m->read_off);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		e = errno;
		goto fail;
	}
	m->read_off += (off_t)m->pending.len;
	buf_reset(&m->pending);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	*error_r = store_uidmap_error(m, "append to %s failed: %s", m->path,
	    strerror(e));
	/* Forget what was not written (store_uidmap_unlock re-reads). */
	return -1;
}

bool
store_uidmap_wants_compact(const struct store_uidmap *m)
{
	return m->dead >= 100 && m->dead >= (m->count - m->dead) / 2;
}

int
store_uidmap_compact(struct store_uidmap *m, const char **error_r)
{
	struct buf b;
	size_t i;
	int ret;

	if (m->lock_fd < 0)
		log_panic("store_uidmap_compact: %s not locked", m->path);
	if (store_uidmap_commit(m, true, error_r) < 0)
		return -1;
	/* A map from before mailbox ids gets one now (see the top). */
	if (m->guid[0] == '\0')
		store_guid_new(m->guid);
	buf_init(&b, 0);
	buf_printf(&b, "%s V%" PRIu32 " N%" PRIu32 "%s%s\n",
	    STORE_UIDLIST_MAGIC, m->uidvalidity, m->next_uid,
	    m->guid[0] != '\0' ? " G" : "", m->guid);
	for (i = 0; i < m->count; i++) {
		if (!m->recs[i]->dead)
			store_uidmap_format(&b, m->recs[i]);
	}
	ret = store_uidmap_replace(m, b.data, b.len, error_r);
	buf_free(&b);
	if (ret == 0)
		ret = store_uidmap_read(m, true, error_r);
	return ret;
}

static int
store_uidrec_cmp(const void *a, const void *b)
{
	const struct store_uidrec *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

int
store_uidmap_import_dovecot(struct store_uidmap *m, const char *path,
    bool (*exists)(struct store_uidrec *rec, void *ctx), void *ctx,
    const char **error_r)
{
	struct store_uidhdr hdr;
	struct store_uidrec *recs = NULL;
	struct store_hash *seen;
	size_t n = 0, cap = 0, i, pos, len;
	struct buf b;
	struct stat st;
	uint32_t next;
	char *data, *nl;
	ssize_t r;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = store_uidmap_error(m, "open(%s) failed: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || st.st_size > MAX_STORE_UIDLIST_SIZE) {
		log_warning("%s: unreadable or too large, not imported", path);
		close(fd);
		return 0;
	}
	len = (size_t)st.st_size;
	data = xmalloc(len + 1);
	for (pos = 0; pos < len; pos += (size_t)r) {
		r = read(fd, data + pos, len - pos);
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0)
			break;
	}
	close(fd);
	len = pos;
	nl = memchr(data, '\n', len);
	if (nl == NULL || store_dovecot_parse_header(data,
	    (size_t)(nl - data), &hdr) < 0) {
		log_warning("%s: unknown format, not imported", path);
		free(data);
		return 0;
	}
	next = hdr.next_uid;
	seen = store_hash_new(0);
	for (pos = (size_t)(nl - data) + 1; pos < len; ) {
		struct store_uidline l;
		size_t llen;

		nl = memchr(data + pos, '\n', len - pos);
		if (nl == NULL)
			break;	/* Dovecot's own torn append */
		llen = (size_t)(nl - (data + pos));
		if (llen <= MAX_STORE_UIDLIST_LINE &&
		    store_dovecot_parse_line(hdr.version, data + pos, llen,
		    &l) == 0) {
			if (l.rec.uid >= next)
				next = l.rec.uid + 1;
			/* The key is NUL-terminated in place (the LF). */
			l.rec.key[l.keylen] = '\0';
			if (store_hash_get(seen, l.rec.key, l.keylen) == NULL &&
			    exists(&l.rec, ctx)) {
				store_hash_set(seen, l.rec.key, l.keylen,
				    l.rec.key);
				if (n == cap) {
					cap = cap == 0 ? 256 : cap * 2;
					recs = xreallocarray(recs, cap,
					    sizeof(*recs));
				}
				recs[n++] = l.rec;
			}
		}
		pos = (size_t)(nl - data) + 1;
	}
	store_hash_free(&seen);
	if (n > 0)
		qsort(recs, n, sizeof(*recs), store_uidrec_cmp);
	if (next > STORE_UID_MAX)
		next = STORE_UID_MAX + 1;
	if (hdr.guid[0] == '\0')
		store_guid_new(hdr.guid);
	buf_init(&b, 0);
	buf_printf(&b, "%s V%" PRIu32 " N%" PRIu32 "%s%s\n",
	    STORE_UIDLIST_MAGIC, hdr.uidvalidity, next,
	    hdr.guid[0] != '\0' ? " G" : "", hdr.guid);
	for (i = 0; i < n; i++) {
		if (i > 0 && recs[i].uid == recs[i - 1].uid)
			continue;
		recs[i].save_date = -1;
		store_uidmap_format(&b, &recs[i]);
	}
	ret = store_uidmap_replace(m, b.data, b.len, error_r);
	buf_free(&b);
	free(recs);
	free(data);
	if (ret < 0)
		return -1;
	log_info("%s: imported %zu UIDs and UIDVALIDITY %" PRIu32 " from %s",
	    m->path, n, hdr.uidvalidity, path);
	if (store_uidmap_read(m, true, error_r) < 0)
		return -1;
	return 1;
}

const char *
store_mailbox_guid(struct store_mailbox *mb)
{
	struct store_uidmap *m = &mb->map;
	const char *error;

	if (m->guid[0] != '\0')
		return m->guid;
	/* A view from the snapshot leaves the map unread. */
	if (!m->exists && store_uidmap_refresh(m, &error) < 0) {
		log_error("%s", error);
		return NULL;
	}
	if (!m->exists)
		return NULL;
	if (m->guid[0] == '\0') {
		/*
		 * A map from before mailbox ids: rewrite it with one now,
		 * under the lock (another process may be doing the same:
		 * the lock re-reads the map, and the first id written is
		 * the one that stays).
		 */
		if (store_uidmap_lock(m, &error) < 0) {
			log_error("%s", error);
			return NULL;
		}
		if (m->exists && m->guid[0] == '\0' &&
		    store_uidmap_compact(m, &error) < 0)
			log_error("%s", error);
		store_uidmap_unlock(m);
	}
	return m->guid[0] != '\0' ? m->guid : NULL;
}
