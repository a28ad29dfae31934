/*
 * imap_cmd_search: SEARCH and UID SEARCH (RFC 9051 §6.4.4, RFC 3501
 * §6.4.4), with the result options of ESEARCH (RFC 4731) and SEARCHRES
 * (RFC 5182), every search key of IMAP4rev1/rev2, and CHARSET (UTF-8,
 * US-ASCII, and whatever else common/mime converts).
 *
 * Keys about flags, sizes, dates and numbers come from the index;
 * FROM, TO, CC, BCC, SUBJECT and the SENT* dates from the store's cache
 * (store.h); other keys about headers read the header block of each
 * message (stopping at its blank line); BODY and TEXT decode every text
 * part (base64, quoted-printable, charset to UTF-8) while the message
 * streams by, so nothing is held whole.  Substrings match
 * case-insensitively after Unicode folding (mime_search_*).  A SEARCH
 * that reads messages does IMAP_SEARCH_BATCH of them per turn of the
 * event loop, so the other sessions of the process are not starved.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "str.h"
#include "xmalloc.h"

/* A compiled key (struct imap_search_key plus what we prepared). */
struct imap_sk {
	const struct imap_search_key *k;
	struct imap_sk	*child, *next;
	char		*needle;	/* UTF-8 search text */
	int		 slot;		/* KEYWORD: its slot or -1 */
	unsigned int	 body_i;	/* BODY/TEXT: its matcher */
	struct imap_seq_range *r;	/* SEQSET/UID resolved */
	size_t		 nr;
	bool		 saved;		/* "$" */
};

struct imap_search {
	const struct imap_cmd_search *c;
	bool		 uid;
	struct imap_sk	*root;
	unsigned int	 nbody;		/* BODY/TEXT keys */
	uint32_t	 i;		/* next view position */
	uint32_t	*hits;		/* view positions */
	size_t		 nhits;
	/* the message being looked at */
	uint32_t	 idx;
	bool		 have_header;
	struct buf	 header;
	bool		 have_body;
	bool		 computed;	/* the store's cache read the message */
	bool		*body_found;
	bool		 read_error;
	time_t		 now;
};

static void
imap_sk_free(struct imap_sk *k)
{
	while (k != NULL) {
		struct imap_sk *next = k->next;

		imap_sk_free(k->child);
		free(k->needle);
		free(k->r);
		free(k);
		k = next;
	}
}

static void
imap_search_free(void *ctx)
{
	struct imap_search *sc = ctx;

	imap_sk_free(sc->root);
	buf_free(&sc->header);
	free(sc->body_found);
	free(sc->hits);
	free(sc);
}

/* ---- compiling ---- */

static bool
imap_search_charset_utf8(const char *cs)
{
	return cs == NULL || strcasecmp(cs, "UTF-8") == 0 ||
	    strcasecmp(cs, "US-ASCII") == 0;
}

/*
 * Compile key (and its siblings).  Returns NULL with *error_r for a key
 * we do not support.
 */
static struct imap_sk *
imap_sk_compile(struct imap_session *s, struct imap_search *sc,
    const struct imap_search_key *key, const char **error_r)
{
	struct imap_sk *first = NULL, **tail = &first;

	for (; key != NULL; key = key->next) {
		struct imap_sk *k = xcalloc(1, sizeof(*k));

		*tail = k;
		tail = &k->next;
		k->k = key;
		k->slot = -1;
		switch (key->type) {
		case IMAP_SEARCH_AND:
		case IMAP_SEARCH_OR:
		case IMAP_SEARCH_NOT:
			k->child = imap_sk_compile(s, sc, key->child, error_r);
			if (k->child == NULL && key->child != NULL)
				goto fail;
			break;
		case IMAP_SEARCH_KEYWORD:
		case IMAP_SEARCH_UNKEYWORD:
			k->slot = store_keyword_slot(s->sel->mb, key->str,
			    false, error_r);
			break;
		case IMAP_SEARCH_BCC:
		case IMAP_SEARCH_CC:
		case IMAP_SEARCH_FROM:
		case IMAP_SEARCH_SUBJECT:
		case IMAP_SEARCH_TO:
		case IMAP_SEARCH_HEADER:
		case IMAP_SEARCH_BODY:
		case IMAP_SEARCH_TEXT: {
			struct buf u8;

			buf_init(&u8, 0);
			if (imap_search_charset_utf8(sc->c->charset))
				buf_append_str(&u8, key->str);
			else
				(void)mime_charset_to_utf8(sc->c->charset,
				    key->str, strlen(key->str), &u8);
			k->needle = buf_steal(&u8);
			if (key->type == IMAP_SEARCH_BODY ||
			    key->type == IMAP_SEARCH_TEXT)
				k->body_i = sc->nbody++;
			break;
		}
		case IMAP_SEARCH_SEQSET:
		case IMAP_SEARCH_UID:
			if (key->set.saved) {
				k->saved = true;
				break;
			}
			k->r = xreallocarray(NULL, key->set.count + 1,
			    sizeof(*k->r));
			k->nr = imap_seqset_resolve(&key->set,
			    key->type == IMAP_SEARCH_UID ? (s->count > 0 ?
			    s->view[s->count - 1].uid : 0) : s->count, k->r);
			break;
		case IMAP_SEARCH_MODSEQ:
		case IMAP_SEARCH_EMAILID:
		case IMAP_SEARCH_THREADID:
			*error_r = "Search key not supported";
			goto fail;
		default:
			break;
		}
	}
	return first;
fail:
	imap_sk_free(first);
	return NULL;
}

/* ---- message content ---- */

/* The header block of the message: up to its blank line. */
static void
imap_search_load_header(struct imap_session *s, struct imap_search *sc)
{
	struct store_msg_stream *st;
	char chunk[IMAP_MSG_CHUNK];
	const char *error;
	ssize_t n;

	sc->have_header = true;
	buf_reset(&sc->header);
	if (store_msg_open(s->sel->mb, sc->idx, &st, &error) < 0) {
		sc->read_error = true;
		return;
	}
	while (sc->header.len < IMAP_MAX_HEADER &&
	    (n = store_msg_read(st, chunk, sizeof(chunk))) > 0) {
		size_t from = sc->header.len > 3 ? sc->header.len - 3 : 0;
		char *end;

		buf_append(&sc->header, chunk, (size_t)n);
		end = memmem(sc->header.data + from, sc->header.len - from,
		    "\r\n\r\n", 4);
		if (end != NULL) {
			sc->header.len = (size_t)(end - sc->header.data) + 4;
			break;
		}
	}
	store_msg_close(&st);
}

/* Every value of field name, RFC 2047-decoded, space separated. */
static void
imap_search_field(struct imap_search *sc, const char *name, struct buf *out)
{
	char **vals;
	size_t n, i;

	n = mime_header_get_all(sc->header.data, sc->header.len, name, &vals);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_append_char(out, ' ');
		(void)mime_decode_words(vals[i], strlen(vals[i]), out);
	}
	strv_free(&vals);
}

struct imap_leaf {
	uint64_t		 off, len;
	const struct mime_part	*part;
};

static void
imap_search_leaves(const struct mime_part *p, struct imap_leaf **v,
    size_t *n)
{
	const struct mime_part *c;

	if ((p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) != 0) {
		for (c = p->children; c != NULL; c = c->next)
			imap_search_leaves(c, v, n);
		return;
	}
	/* Text parts only: a base64 image would match by chance. */
	if ((p->flags & MIME_PART_TEXT) == 0 || *n >= MAX_MIME_PARTS)
		return;
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].off = p->body.voff;
	(*v)[*n].len = p->body.vlen;
	(*v)[*n].part = p;
	(*n)++;
}

/* Collect the BODY/TEXT needles of the key tree into m[]. */
static void
imap_search_matchers(struct imap_sk *k, struct mime_search **m)
{
	for (; k != NULL; k = k->next) {
		if (k->child != NULL)
			imap_search_matchers(k->child, m);
		if (k->k->type == IMAP_SEARCH_BODY ||
		    k->k->type == IMAP_SEARCH_TEXT)
			m[k->body_i] = mime_search_new(k->needle,
			    strlen(k->needle));
	}
}

/* One pass over the message: which BODY/TEXT needles its text parts
 * hold (TEXT also looks at the header, in imap_search_eval()). */
static void
imap_search_load_body(struct imap_session *s, struct imap_search *sc)
{
	const struct mime_part *tree;
	struct mime_search **m;
	struct store_msg_stream *st;
	struct imap_leaf *leaves = NULL;
	struct mime_body_decoder *d = NULL;
	size_t nleaves = 0, li = 0, i;
	char chunk[IMAP_MSG_CHUNK];
	const char *error;
	uint64_t pos = 0;
	struct buf out;
	ssize_t n;

	sc->have_body = true;
	memset(sc->body_found, 0, sc->nbody * sizeof(*sc->body_found));
	if (imap_msg_tree(s->sel, sc->idx, &tree, &error) < 0) {
		sc->read_error = true;
		return;
	}
	imap_search_leaves(tree, &leaves, &nleaves);
	if (nleaves == 0)
		return;
	if (store_msg_open(s->sel->mb, sc->idx, &st, &error) < 0) {
		free(leaves);
		sc->read_error = true;
		return;
	}
	m = xcalloc(sc->nbody, sizeof(*m));
	imap_search_matchers(sc->root, m);
	buf_init(&out, 0);
	while (li < nleaves && (n = store_msg_read(st, chunk,
	    sizeof(chunk))) > 0) {
		uint64_t c0 = pos, c1 = pos + (uint64_t)n;

		pos = c1;
		while (li < nleaves) {
			struct imap_leaf *l = &leaves[li];
			uint64_t a = l->off > c0 ? l->off : c0;
			uint64_t b = l->off + l->len < c1 ? l->off + l->len :
			    c1;

			if (l->off >= c1)
				break;
			if (d == NULL)
				d = mime_body_decoder_new(l->part->encoding,
				    mime_part_charset(l->part));
			if (b > a)
				(void)mime_body_decoder_feed(d,
				    chunk + (a - c0), (size_t)(b - a), &out);
			if (l->off + l->len <= c1) {
				(void)mime_body_decoder_finish(d, &out);
				mime_body_decoder_free(&d);
				li++;
			}
			for (i = 0; i < sc->nbody; i++)
				if (mime_search_feed(m[i], out.data, out.len))
					sc->body_found[i] = true;
			buf_reset(&out);
			if (b == c1)
				break;
		}
	}
	mime_body_decoder_free(&d);
	store_msg_close(&st);
	buf_free(&out);
	for (i = 0; i < sc->nbody; i++)
		mime_search_free(&m[i]);
	free(m);
	free(leaves);
}

/* ---- evaluation ---- */

/* Day number of t as seen in the zone tz (minutes east). */
static long long
imap_search_day(time_t t, int tz)
{
	long long x = (long long)t + (long long)tz * 60;

	return x >= 0 ? x / 86400 : (x - 86399) / 86400;
}

static int
imap_search_local_tz(time_t t)
{
	struct tm tm;

	return localtime_r(&t, &tm) != NULL ? (int)(tm.tm_gmtoff / 60) : 0;
}

static bool
imap_search_in_ranges(const struct imap_sk *k, uint32_t n)
{
	size_t i;

	for (i = 0; i < k->nr; i++)
		if (n >= k->r[i].lo && n <= k->r[i].hi)
			return true;
	return false;
}

static bool imap_search_eval(struct imap_session *s, struct imap_search *sc,
    struct imap_sk *k, uint32_t pos);

static bool
imap_search_all(struct imap_session *s, struct imap_search *sc,
    struct imap_sk *k, uint32_t pos)
{
	for (; k != NULL; k = k->next)
		if (!imap_search_eval(s, sc, k, pos))
			return false;
	return true;
}

static bool
imap_search_header_key(struct imap_search *sc, struct imap_sk *k)
{
	static const char *const fields[] = {
		[IMAP_SEARCH_BCC] = "Bcc", [IMAP_SEARCH_CC] = "Cc",
		[IMAP_SEARCH_FROM] = "From", [IMAP_SEARCH_SUBJECT] = "Subject",
		[IMAP_SEARCH_TO] = "To",
	};
	const char *name = k->k->type == IMAP_SEARCH_HEADER ? k->k->field :
	    fields[k->k->type];
	struct buf v;
	bool found;

	buf_init(&v, 0);
	if (k->k->type == IMAP_SEARCH_HEADER && k->needle[0] == '\0') {
		/* RFC 9051 §6.4.4: an empty string matches any message
		 * that has the field. */
		found = mime_header_get(sc->header.data, sc->header.len, name,
		    0, &v) == 1;
	} else {
		imap_search_field(sc, name, &v);
		found = mime_search_contains(v.data, v.len, k->needle,
		    strlen(k->needle));
	}
	buf_free(&v);
	return found;
}

/*
 * FROM, TO, CC, BCC, SUBJECT from the store's cache, which holds exactly
 * what imap_search_field() would build (store.h): 1 match, 0 no match,
 * -1 not cached (the header is read instead).
 */
static int
imap_search_cached_key(struct imap_session *s, struct imap_search *sc,
    struct imap_sk *k)
{
	enum store_cache_field field;
	const char *v, *error;
	size_t len;
	int r;

	switch (k->k->type) {
	case IMAP_SEARCH_BCC:
		field = STORE_CACHE_SEARCH_BCC;
		break;
	case IMAP_SEARCH_CC:
		field = STORE_CACHE_SEARCH_CC;
		break;
	case IMAP_SEARCH_FROM:
		field = STORE_CACHE_SEARCH_FROM;
		break;
	case IMAP_SEARCH_SUBJECT:
		field = STORE_CACHE_SEARCH_SUBJECT;
		break;
	case IMAP_SEARCH_TO:
		field = STORE_CACHE_SEARCH_TO;
		break;
	default:
		return -1;
	}
	r = store_msg_cached(s->sel->mb, sc->idx, field, &v, &len, &error);
	if (r == 2)
		sc->computed = true;
	if (r <= 0)
		return -1;
	return mime_search_contains(v, len, k->needle, strlen(k->needle)) ?
	    1 : 0;
}

/* The sent date's day for SENTBEFORE/SENTON/SENTSINCE from the cache:
 * true with *day_r, false when not cached. */
static bool
imap_search_cached_sent(struct imap_session *s, struct imap_search *sc,
    const struct store_msg *m, long long *day_r)
{
	const char *error;
	int64_t t, tz;
	int r;

	r = store_msg_cached_num(s->sel->mb, sc->idx, STORE_CACHE_SENT_DATE,
	    &t, &error);
	if (r == 2)
		sc->computed = true;
	if (r <= 0 || store_msg_cached_num(s->sel->mb, sc->idx,
	    STORE_CACHE_SENT_TZ, &tz, &error) <= 0)
		return false;
	if (t == STORE_CACHE_NO_DATE)	/* the internal date stands in */
		*day_r = imap_search_day(m->internal_date, 0);
	else
		*day_r = imap_search_day((time_t)t, (int)tz);
	return true;
}

static bool
imap_search_eval(struct imap_session *s, struct imap_search *sc,
    struct imap_sk *k, uint32_t pos)
{
	const struct store_msg *m = store_mailbox_msg(s->sel->mb, sc->idx);
	bool recent = (s->view[pos].flags & IMAP_VIEW_RECENT) != 0;
	const struct imap_search_key *key = k->k;
	long long kday = (long long)key->date / 86400;
	long long day;
	struct imap_sk *c;

	switch (key->type) {
	case IMAP_SEARCH_AND:
		return imap_search_all(s, sc, k->child, pos);
	case IMAP_SEARCH_OR:
		for (c = k->child; c != NULL; c = c->next)
			if (imap_search_eval(s, sc, c, pos))
				return true;
		return false;
	case IMAP_SEARCH_NOT:
		return !imap_search_eval(s, sc, k->child, pos);
	case IMAP_SEARCH_ALL:
	case IMAP_SEARCH_SAVEDATESUPPORTED:
		return true;
	case IMAP_SEARCH_ANSWERED:
		return (m->flags & STORE_ANSWERED) != 0;
	case IMAP_SEARCH_DELETED:
		return (m->flags & STORE_DELETED) != 0;
	case IMAP_SEARCH_DRAFT:
		return (m->flags & STORE_DRAFT) != 0;
	case IMAP_SEARCH_FLAGGED:
		return (m->flags & STORE_FLAGGED) != 0;
	case IMAP_SEARCH_SEEN:
		return (m->flags & STORE_SEEN) != 0;
	case IMAP_SEARCH_UNANSWERED:
		return (m->flags & STORE_ANSWERED) == 0;
	case IMAP_SEARCH_UNDELETED:
		return (m->flags & STORE_DELETED) == 0;
	case IMAP_SEARCH_UNDRAFT:
		return (m->flags & STORE_DRAFT) == 0;
	case IMAP_SEARCH_UNFLAGGED:
		return (m->flags & STORE_FLAGGED) == 0;
	case IMAP_SEARCH_UNSEEN:
		return (m->flags & STORE_SEEN) == 0;
	case IMAP_SEARCH_RECENT:
		return recent;
	case IMAP_SEARCH_NEW:
		return recent && (m->flags & STORE_SEEN) == 0;
	case IMAP_SEARCH_OLD:
		return !recent;
	case IMAP_SEARCH_KEYWORD:
		return k->slot >= 0 && (m->keywords & (1ULL << k->slot)) != 0;
	case IMAP_SEARCH_UNKEYWORD:
		return k->slot < 0 || (m->keywords & (1ULL << k->slot)) == 0;
	case IMAP_SEARCH_LARGER:
		return m->vsize > key->num;
	case IMAP_SEARCH_SMALLER:
		return m->vsize < key->num;
	case IMAP_SEARCH_OLDER:
		return sc->now - m->internal_date >= (time_t)key->num;
	case IMAP_SEARCH_YOUNGER:
		return sc->now - m->internal_date <= (time_t)key->num;
	case IMAP_SEARCH_BEFORE:
	case IMAP_SEARCH_ON:
	case IMAP_SEARCH_SINCE:
		/* RFC 9051 §6.4.4: the date, ignoring time and zone. */
		day = imap_search_day(m->internal_date,
		    imap_search_local_tz(m->internal_date));
		goto cmp;
	case IMAP_SEARCH_SAVEDBEFORE:
	case IMAP_SEARCH_SAVEDON:
	case IMAP_SEARCH_SAVEDSINCE:
		day = imap_search_day(m->save_date,
		    imap_search_local_tz(m->save_date));
		goto cmp;
	case IMAP_SEARCH_SENTBEFORE:
	case IMAP_SEARCH_SENTON:
	case IMAP_SEARCH_SENTSINCE: {
		struct buf v;
		time_t t;
		int tz;

		if (imap_search_cached_sent(s, sc, m, &day))
			goto cmp;
		if (!sc->have_header)
			imap_search_load_header(s, sc);
		buf_init(&v, 0);
		if (mime_header_get(sc->header.data, sc->header.len, "Date",
		    0, &v) == 1 && mime_date_parse(v.data, v.len, &t,
		    &tz) == 0)
			day = imap_search_day(t, tz);
		else	/* no usable Date: the internal date stands in */
			day = imap_search_day(m->internal_date, 0);
		buf_free(&v);
		goto cmp;
	}
	case IMAP_SEARCH_BCC:
	case IMAP_SEARCH_CC:
	case IMAP_SEARCH_FROM:
	case IMAP_SEARCH_SUBJECT:
	case IMAP_SEARCH_TO:
	case IMAP_SEARCH_HEADER:
		switch (imap_search_cached_key(s, sc, k)) {
		case 1:
			return true;
		case 0:
			return false;
		}
		if (!sc->have_header)
			imap_search_load_header(s, sc);
		return imap_search_header_key(sc, k);
	case IMAP_SEARCH_TEXT:
		if (!sc->have_header)
			imap_search_load_header(s, sc);
		{
			struct buf dec;
			bool hit;

			buf_init(&dec, 0);
			(void)mime_decode_words(sc->header.data,
			    sc->header.len, &dec);
			hit = mime_search_contains(dec.data, dec.len,
			    k->needle, strlen(k->needle));
			buf_free(&dec);
			if (hit)
				return true;
		}
		/* FALLTHROUGH */
	case IMAP_SEARCH_BODY:
		if (!sc->have_body)
			imap_search_load_body(s, sc);
		return sc->body_found[k->body_i];
	case IMAP_SEARCH_SEQSET:
		if (k->saved)
			goto saved;
		return imap_search_in_ranges(k, pos + 1);
	case IMAP_SEARCH_UID:
		if (k->saved)
			goto saved;
		return imap_search_in_ranges(k, m->uid);
	default:
		return false;
	}
cmp:
	switch (key->type) {
	case IMAP_SEARCH_BEFORE:
	case IMAP_SEARCH_SAVEDBEFORE:
	case IMAP_SEARCH_SENTBEFORE:
		return day < kday;
	case IMAP_SEARCH_ON:
	case IMAP_SEARCH_SAVEDON:
	case IMAP_SEARCH_SENTON:
		return day == kday;
	default:
		return day >= kday;
	}
saved:
	{
		size_t i;

		for (i = 0; i < s->nsaved; i++)
			if (s->saved[i] == m->uid)
				return true;
		return false;
	}
}

/* ---- the answer ---- */

static void
imap_search_answer(struct imap_session *s, struct imap_search *sc)
{
	const struct imap_cmd_search *c = sc->c;
	unsigned int ret = c->ret;
	bool esearch = c->esearch || s->rev2;
	struct buf b;
	size_t i;

	/* RFC 4731 §3.1: RETURN () is ALL; rev2 answers ESEARCH ALL. */
	if (esearch && (ret & ~IMAP_SEARCH_RET_SAVE) == 0 &&
	    !(c->esearch && ret == IMAP_SEARCH_RET_SAVE))
		ret |= IMAP_SEARCH_RET_ALL;
	if ((ret & IMAP_SEARCH_RET_SAVE) != 0) {
		/* RFC 5182 §2.4: with only MIN/MAX, only they are kept. */
		bool only_mm = (ret & (IMAP_SEARCH_RET_ALL |
		    IMAP_SEARCH_RET_COUNT)) == 0 && (ret &
		    (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) != 0;

		free(s->saved);
		s->saved = xreallocarray(NULL, sc->nhits + 1,
		    sizeof(*s->saved));
		s->nsaved = 0;
		for (i = 0; i < sc->nhits; i++) {
			if (only_mm && !(((ret & IMAP_SEARCH_RET_MIN) != 0 &&
			    i == 0) || ((ret & IMAP_SEARCH_RET_MAX) != 0 &&
			    i == sc->nhits - 1)))
				continue;
			s->saved[s->nsaved++] = s->view[sc->hits[i]].uid;
		}
	}
	buf_init(&b, 0);
	if (!esearch) {
		buf_append_str(&b, "* SEARCH");
		for (i = 0; i < sc->nhits; i++)
			buf_printf(&b, " %u", sc->uid ?
			    s->view[sc->hits[i]].uid : sc->hits[i] + 1);
		imap_reply(s, "%s", buf_cstr(&b));
	} else if ((ret & ~IMAP_SEARCH_RET_SAVE) != 0) {
		buf_append_str(&b, "* ESEARCH (TAG ");
		imap_astring_write(&b, s->tag);
		buf_append_char(&b, ')');
		if (sc->uid)
			buf_append_str(&b, " UID");
#define NUM(i) (sc->uid ? s->view[sc->hits[i]].uid : sc->hits[i] + 1)
		if ((ret & IMAP_SEARCH_RET_MIN) != 0 && sc->nhits > 0)
			buf_printf(&b, " MIN %u", NUM(0));
		if ((ret & IMAP_SEARCH_RET_MAX) != 0 && sc->nhits > 0)
			buf_printf(&b, " MAX %u", NUM(sc->nhits - 1));
		if ((ret & IMAP_SEARCH_RET_COUNT) != 0)
			buf_printf(&b, " COUNT %zu", sc->nhits);
		if ((ret & IMAP_SEARCH_RET_ALL) != 0 && sc->nhits > 0) {
			struct imap_seq_range *r = xreallocarray(NULL,
			    sc->nhits, sizeof(*r));
			size_t nr = 0;

			for (i = 0; i < sc->nhits; i++) {
				uint32_t v = NUM(i);

				if (nr > 0 && r[nr - 1].hi + 1 == v)
					r[nr - 1].hi = v;
				else {
					r[nr].lo = r[nr].hi = v;
					nr++;
				}
			}
			buf_append_str(&b, " ALL ");
			imap_seqset_format(r, nr, &b);
			free(r);
		}
#undef NUM
		imap_reply(s, "%s", buf_cstr(&b));
	}
	buf_free(&b);
}

static int
imap_search_cont(struct imap_session *s)
{
	struct imap_search *sc = s->cont_ctx;
	unsigned int reads = 0;

	while (sc->i < s->count) {
		uint32_t pos = sc->i++;
		int64_t idx = imap_view_index(s, pos);

		if (idx < 0)
			continue;	/* expunged: not reported yet */
		sc->idx = (uint32_t)idx;
		sc->have_header = sc->have_body = sc->computed = false;
		if (imap_search_all(s, sc, sc->root, pos))
			sc->hits[sc->nhits++] = pos;
		if (sc->have_header || sc->have_body || sc->computed)
			reads++;
		if (reads >= IMAP_SEARCH_BATCH && sc->i < s->count)
			return 0;	/* the others get a turn */
	}
	imap_search_answer(s, sc);
	if (sc->read_error)
		log_warning("imap(%s): SEARCH could not read some messages",
		    s->log_user);
	imap_tagged(s, "OK", "Search completed.");
	return 1;
}

void
imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_search *c = &cmd->u.search;
	struct imap_search *sc;
	const char *error = NULL;

	if (!imap_search_charset_utf8(c->charset) &&
	    !mime_charset_known(c->charset)) {
		imap_tagged(s, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unknown "
		    "charset.");
		return;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->c = c;
	sc->uid = cmd->uid;
	sc->now = time(NULL);
	buf_init(&sc->header, 0);
	sc->root = imap_sk_compile(s, sc, c->key, &error);
	if (sc->root == NULL && error != NULL) {
		imap_search_free(sc);
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	sc->hits = xreallocarray(NULL, s->count + 1, sizeof(*sc->hits));
	sc->body_found = xcalloc(sc->nbody + 1, sizeof(*sc->body_found));
	imap_session_continue(s, imap_search_cont, sc, imap_search_free);
}
