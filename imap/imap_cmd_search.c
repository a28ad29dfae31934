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
 * streams by.  A message is read once per SEARCH: one up to
 * IMAP_SEARCH_WHOLE_MAX bytes is read whole and parsed in memory when
 * the program has BODY or TEXT keys (only its header block otherwise);
 * a larger one is streamed, never held whole.  Substrings match under
 * i;unicode-casemap (RFC 5255 §4 I18NLEVEL=1, common/unicase.h), then
 * mime_search_*'s own folding.  A SEARCH that reads messages does
 * IMAP_SEARCH_BATCH of them per turn of the event loop, so the other
 * sessions of the process are not starved.
 *
 * Also here, for SORT and THREAD (imap_search.h): running a program and
 * writing ESEARCH answers; MODSEQ (RFC 7162 §3.1.5), EMAILID and
 * THREADID (RFC 8474 §6), PARTIAL (RFC 5267 §4.4); and CONTEXT=SEARCH
 * (RFC 5267 §4.3): a SEARCH with RETURN (UPDATE) keeps its program and
 * result while the mailbox stays selected, and the session's untagged
 * updates (imap_session_updates()) call in to send ADDTO and REMOVEFROM
 * for the messages that joined or left it.  Only messages whose modseq
 * passed the one last looked at, or that are new, are evaluated again.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap.h"
#include "imap_search.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "str.h"
#include "unicase.h"
#include "xmalloc.h"

/* Messages up to this size are read whole for BODY/TEXT (one read of
 * the file); larger ones are streamed. */
#define IMAP_SEARCH_WHOLE_MAX	(1024 * 1024)

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
	bool		 read_error;	/* some message could not be read */
	bool		 msg_error;	/* this one */
	time_t		 now;
	/* MODSEQ was used: the answer ends with (MODSEQ n) */
	bool		 modseq_used;
	uint64_t	 modseq_max;
	/* SORT, THREAD: what runs once the program was evaluated */
	imap_search_done_fn *done;
	void		*done_ctx;
	void		(*done_free)(void *);
	bool		 evaluated;
	/* the mailbox when the search began (UPDATE contexts) */
	uint64_t	 start_modseq;
	uint32_t	 start_uidnext;
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

	if (sc->done_free != NULL)
		sc->done_free(sc->done_ctx);
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

			struct buf cm;

			buf_init(&u8, 0);
			buf_init(&cm, 0);
			if (imap_search_charset_utf8(sc->c->charset))
				buf_append_str(&u8, key->str);
			else
				(void)mime_charset_to_utf8(sc->c->charset,
				    key->str, strlen(key->str), &u8);
			/* RFC 5255 §4: i;unicode-casemap. */
			(void)unicase_fold(u8.data != NULL ? u8.data : "",
			    u8.len, &cm);
			buf_free(&u8);
			k->needle = buf_steal(&cm);
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
			/* RFC 7162 §3.1.2.2: not in a NOMODSEQ mailbox. */
			if (!imap_session_modseq_ok(s)) {
				*error_r = "No modseqs in this mailbox";
				goto fail;
			}
			/* §3.1: a command using MODSEQ enables CONDSTORE;
			 * §3.1.5: the answer reports the highest modseq. */
			imap_session_condstore(s);
			sc->modseq_used = true;
			break;
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

/* Cut sc->header after the header block's blank line, if it holds it
 * (from: where to look from); true when it did. */
static bool
imap_search_cut_header(struct buf *h, size_t from)
{
	char *end = memmem(h->data + from, h->len - from, "\r\n\r\n", 4);

	if (end == NULL)
		return false;
	h->len = (size_t)(end - h->data) + 4;
	return true;
}

/*
 * The header block of the message: up to its blank line, read in
 * IMAP_MSG_CHUNK pieces up to IMAP_MAX_HEADER (the same bytes the store's
 * cache computes its SEARCH fields from).  With whole set, the whole
 * message goes into *whole too (it is small, and BODY/TEXT keys will
 * need it): one read of the file either way.
 */
static void
imap_search_read(struct imap_session *s, struct imap_search *sc,
    struct buf *whole)
{
	struct store_msg_stream *st;
	char chunk[IMAP_MSG_CHUNK];
	const char *error;
	bool hdr_done = false;
	ssize_t n;

	sc->have_header = true;
	buf_reset(&sc->header);
	if (store_msg_open(s->sel->mb, sc->idx, &st, &error) < 0) {
		sc->read_error = sc->msg_error = true;
		return;
	}
	while ((n = store_msg_read(st, chunk, sizeof(chunk))) > 0) {
		if (whole != NULL)
			buf_append(whole, chunk, (size_t)n);
		if (!hdr_done && sc->header.len < IMAP_MAX_HEADER) {
			size_t from = sc->header.len > 3 ?
			    sc->header.len - 3 : 0;

			buf_append(&sc->header, chunk, (size_t)n);
			hdr_done = imap_search_cut_header(&sc->header, from);
		}
		if (whole == NULL && (hdr_done ||
		    sc->header.len >= IMAP_MAX_HEADER))
			break;
	}
	if (n < 0)
		sc->read_error = sc->msg_error = true;
	store_msg_close(&st);
}

static void imap_search_body_mem(struct imap_search *sc, const char *data,
    size_t len);

/* The header, and with BODY/TEXT keys in a small message, the body's
 * matches too, from one read. */
static void
imap_search_load_header(struct imap_session *s, struct imap_search *sc)
{
	const struct store_msg *m = store_mailbox_msg(s->sel->mb, sc->idx);
	struct buf whole;

	if (sc->nbody == 0 || m->vsize > IMAP_SEARCH_WHOLE_MAX) {
		imap_search_read(s, sc, NULL);
		return;
	}
	buf_init(&whole, 0);
	imap_search_read(s, sc, &whole);
	if (!sc->msg_error)
		imap_search_body_mem(sc, whole.data != NULL ? whole.data : "",
		    whole.len);
	buf_free(&whole);
}

/* Whether needle (casemapped already) occurs in hay (UTF-8). */
static bool
imap_search_contains(const char *hay, size_t len, const char *needle)
{
	struct buf f;
	bool hit;

	if (needle[0] == '\0')
		return true;
	/* mime_search folds case itself: ASCII needs no casemap. */
	if (unicase_is_ascii(hay, len))
		return mime_search_contains(hay, len, needle, strlen(needle));
	buf_init(&f, 0);
	(void)unicase_fold(hay, len, &f);
	hit = mime_search_contains(f.data != NULL ? f.data : "", f.len,
	    needle, strlen(needle));
	buf_free(&f);
	return hit;
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

/*
 * Which BODY/TEXT needles the text parts of a message hold, from its
 * bytes fed in order (TEXT also looks at the header, in
 * imap_search_eval()).  Each part is decoded (transfer encoding,
 * charset to UTF-8), casemapped and matched as it goes by.
 */
struct imap_body_scan {
	struct imap_leaf *leaves;
	size_t		 nleaves, li;
	struct mime_body_decoder *d;
	struct mime_search **m;
	struct buf	 out, fold;
	uint64_t	 pos;
};

static void
imap_scan_init(struct imap_search *sc, struct imap_body_scan *bs,
    const struct mime_part *tree)
{
	memset(bs, 0, sizeof(*bs));
	sc->have_body = true;
	memset(sc->body_found, 0, sc->nbody * sizeof(*sc->body_found));
	imap_search_leaves(tree, &bs->leaves, &bs->nleaves);
	bs->m = xcalloc(sc->nbody + 1, sizeof(*bs->m));
	imap_search_matchers(sc->root, bs->m);
	buf_init(&bs->out, 0);
	buf_init(&bs->fold, 0);
}

/* Bytes [bs->pos, bs->pos + n) of the message; false once every text
 * part was seen. */
static bool
imap_scan_feed(struct imap_search *sc, struct imap_body_scan *bs,
    const char *chunk, size_t n)
{
	uint64_t c0 = bs->pos, c1 = bs->pos + (uint64_t)n;
	size_t i;

	bs->pos = c1;
	while (bs->li < bs->nleaves) {
		struct imap_leaf *l = &bs->leaves[bs->li];
		uint64_t a = l->off > c0 ? l->off : c0;
		uint64_t b = l->off + l->len < c1 ? l->off + l->len : c1;

		if (l->off >= c1)
			break;
		if (bs->d == NULL)
			bs->d = mime_body_decoder_new(l->part->encoding,
			    mime_part_charset(l->part));
		if (b > a)
			(void)mime_body_decoder_feed(bs->d, chunk + (a - c0),
			    (size_t)(b - a), &bs->out);
		if (l->off + l->len <= c1) {
			(void)mime_body_decoder_finish(bs->d, &bs->out);
			mime_body_decoder_free(&bs->d);
			bs->li++;
		}
		/* The decoder gives whole characters, so each piece can
		 * be casemapped alone; ASCII needs none (mime_search folds
		 * case itself). */
		if (bs->out.len > 0) {
			struct buf *t = &bs->out;

			if (!unicase_is_ascii(bs->out.data, bs->out.len)) {
				(void)unicase_fold(bs->out.data, bs->out.len,
				    &bs->fold);
				t = &bs->fold;
			}
			for (i = 0; i < sc->nbody; i++)
				if (mime_search_feed(bs->m[i], t->data,
				    t->len))
					sc->body_found[i] = true;
		}
		buf_reset(&bs->out);
		buf_reset(&bs->fold);
		if (b == c1)
			break;
	}
	return bs->li < bs->nleaves;
}

static void
imap_scan_free(struct imap_search *sc, struct imap_body_scan *bs)
{
	size_t i;

	mime_body_decoder_free(&bs->d);
	buf_free(&bs->out);
	buf_free(&bs->fold);
	for (i = 0; i < sc->nbody; i++)
		mime_search_free(&bs->m[i]);
	free(bs->m);
	free(bs->leaves);
}

/* The body of a message held whole in memory (read once). */
static void
imap_search_body_mem(struct imap_search *sc, const char *data, size_t len)
{
	struct imap_body_scan bs;
	struct mime_part *tree;

	tree = mime_parse(data, len);
	imap_scan_init(sc, &bs, tree);
	(void)imap_scan_feed(sc, &bs, data, len);
	imap_scan_free(sc, &bs);
	mime_part_free(&tree);
}

/* The body of a large message, streamed (its MIME tree from the
 * mailbox's cache of trees, or parsed first). */
static void
imap_search_load_body(struct imap_session *s, struct imap_search *sc)
{
	const struct mime_part *tree;
	struct store_msg_stream *st;
	struct imap_body_scan bs;
	char chunk[IMAP_MSG_CHUNK];
	const char *error;
	ssize_t n;

	sc->have_body = true;
	memset(sc->body_found, 0, sc->nbody * sizeof(*sc->body_found));
	if (imap_msg_tree(s->sel, sc->idx, &tree, &error) < 0) {
		sc->read_error = sc->msg_error = true;
		return;
	}
	imap_scan_init(sc, &bs, tree);
	if (bs.nleaves > 0) {
		if (store_msg_open(s->sel->mb, sc->idx, &st, &error) < 0)
			sc->read_error = sc->msg_error = true;
		else {
			while ((n = store_msg_read(st, chunk,
			    sizeof(chunk))) > 0 &&
			    imap_scan_feed(sc, &bs, chunk, (size_t)n))
				;
			store_msg_close(&st);
		}
	}
	imap_scan_free(sc, &bs);
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
		found = imap_search_contains(v.data != NULL ? v.data : "",
		    v.len, k->needle);
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
	return imap_search_contains(v, len, k->needle) ? 1 : 0;
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
			hit = imap_search_contains(dec.data != NULL ?
			    dec.data : "", dec.len, k->needle);
			buf_free(&dec);
			if (hit)
				return true;
		}
		/* FALLTHROUGH */
	case IMAP_SEARCH_BODY:
		if (!sc->have_header && !sc->have_body)
			imap_search_load_header(s, sc);
		if (!sc->have_body && !sc->msg_error)
			imap_search_load_body(s, sc);
		return sc->have_body && sc->body_found[k->body_i];
	case IMAP_SEARCH_MODSEQ:
		/* RFC 7162 §3.1.5: modseq >= the value.  Flags have no
		 * modseq of their own here: the entry name is allowed and
		 * the message's modseq used for it. */
		return m->modseq >= key->num;
	case IMAP_SEARCH_EMAILID: {
		char id[IMAP_OBJECTID_MAX];

		imap_msg_emailid(s->sel, m, id, sizeof(id));
		return strcmp(id, key->str) == 0;
	}
	case IMAP_SEARCH_THREADID:
		/* RFC 8474 §5.2: no THREADID is kept (FETCH gives NIL), so
		 * none matches. */
		return false;
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

void
imap_search_set_write(struct imap_session *s, bool uid, const uint32_t *pos,
    size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		uint32_t lo = uid ? s->view[pos[i]].uid : pos[i] + 1, hi = lo;

		for (i++; i < n; i++) {
			uint32_t v = uid ? s->view[pos[i]].uid : pos[i] + 1;

			if (v != hi + 1)
				break;
			hi = v;
		}
		if (out->len > 0 && out->data[out->len - 1] != ' ' &&
		    out->data[out->len - 1] != '(')
			buf_append_char(out, ',');
		if (lo == hi)
			buf_printf(out, "%u", lo);
		else
			buf_printf(out, "%u:%u", lo, hi);
	}
}

void
imap_search_esearch(struct imap_session *s, const struct imap_cmd_search *c,
    bool uid, const uint32_t *pos, size_t n, bool sorted, uint64_t modseq)
{
	unsigned int ret = c->ret;
	struct buf b;

	/* RFC 4731 §3.1: without a result option, ALL. */
	if ((ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX |
	    IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT |
	    IMAP_SEARCH_RET_PARTIAL)) == 0 && !(c->esearch &&
	    (ret & IMAP_SEARCH_RET_SAVE) != 0))
		ret |= IMAP_SEARCH_RET_ALL;
	buf_init(&b, 0);
	buf_append_str(&b, "* ESEARCH (TAG ");
	imap_astring_write(&b, s->tag);
	buf_append_char(&b, ')');
	if (uid)
		buf_append_str(&b, " UID");
#define NUM(i) (uid ? s->view[pos[i]].uid : pos[i] + 1)
	if ((ret & IMAP_SEARCH_RET_MIN) != 0 && n > 0)
		buf_printf(&b, " MIN %u", NUM(0));
	if ((ret & IMAP_SEARCH_RET_MAX) != 0 && n > 0)
		buf_printf(&b, " MAX %u", NUM(n - 1));
#undef NUM
	if ((ret & IMAP_SEARCH_RET_COUNT) != 0)
		buf_printf(&b, " COUNT %zu", n);
	if ((ret & IMAP_SEARCH_RET_ALL) != 0 && n > 0) {
		buf_append_str(&b, " ALL ");
		imap_search_set_write(s, uid, pos, n, &b);
	}
	if ((ret & IMAP_SEARCH_RET_PARTIAL) != 0) {
		/* RFC 5267 §4.4: results lo..hi (1-based) of the list;
		 * NIL when none of them exists. */
		buf_printf(&b, " PARTIAL (%u:%u ", c->partial_lo,
		    c->partial_hi);
		if (c->partial_lo > n)
			buf_append_str(&b, "NIL");
		else {
			size_t hi = c->partial_hi < n ? c->partial_hi : n;

			imap_search_set_write(s, uid, pos + c->partial_lo - 1,
			    hi - (c->partial_lo - 1), &b);
		}
		buf_append_char(&b, ')');
	}
	if (modseq != 0)
		buf_printf(&b, " MODSEQ %llu", (unsigned long long)modseq);
	if ((ret & ~(IMAP_SEARCH_RET_SAVE | IMAP_SEARCH_RET_CONTEXT |
	    IMAP_SEARCH_RET_UPDATE)) != 0 || modseq != 0)
		imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
	/* RFC 5267 §4.3.1: no updating contexts for SORT (CONTEXT=SORT
	 * is not offered); tags are atoms: no quote or backslash. */
	if (sorted && (ret & IMAP_SEARCH_RET_UPDATE) != 0)
		imap_reply(s, "* NO [NOUPDATE \"%s\"] No updates of sorted "
		    "results.", s->tag);
}

void
imap_search_save(struct imap_session *s, const struct imap_cmd_search *c,
    const uint32_t *pos, size_t n)
{
	unsigned int ret = c->ret;
	bool only_mm = (ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT |
	    IMAP_SEARCH_RET_PARTIAL)) == 0 && (ret & (IMAP_SEARCH_RET_MIN |
	    IMAP_SEARCH_RET_MAX)) != 0;
	size_t i;

	free(s->saved);
	s->saved = xreallocarray(NULL, n + 1, sizeof(*s->saved));
	s->nsaved = 0;
	for (i = 0; i < n; i++) {
		if (only_mm && !(((ret & IMAP_SEARCH_RET_MIN) != 0 &&
		    i == 0) || ((ret & IMAP_SEARCH_RET_MAX) != 0 &&
		    i == n - 1)))
			continue;
		s->saved[s->nsaved++] = s->view[pos[i]].uid;
	}
}

static void imap_search_context_new(struct imap_session *s,
    struct imap_search *sc);
static bool imap_search_context_find(struct imap_session *s,
    const char *tag);

static void
imap_search_answer(struct imap_session *s, struct imap_search *sc)
{
	const struct imap_cmd_search *c = sc->c;
	uint64_t modseq = imap_search_modseq(sc);
	struct buf b;
	size_t i;

	if ((c->ret & IMAP_SEARCH_RET_SAVE) != 0)
		imap_search_save(s, c, sc->hits, sc->nhits);
	if (c->esearch || s->rev2) {
		/* A rev2 SEARCH without RETURN answers ESEARCH ALL. */
		imap_search_esearch(s, c, sc->uid, sc->hits, sc->nhits, false,
		    modseq);
		if ((c->ret & IMAP_SEARCH_RET_UPDATE) != 0)
			imap_search_context_new(s, sc);
		return;
	}
	buf_init(&b, 0);
	buf_append_str(&b, "* SEARCH");
	for (i = 0; i < sc->nhits; i++)
		buf_printf(&b, " %u", sc->uid ? s->view[sc->hits[i]].uid :
		    sc->hits[i] + 1);
	/* RFC 7162 §3.1.5: only when something matched. */
	if (modseq != 0)
		buf_printf(&b, " (MODSEQ %llu)", (unsigned long long)modseq);
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
}

const uint32_t *
imap_search_hits(const struct imap_search *sc, size_t *count_r)
{
	*count_r = sc->nhits;
	return sc->hits;
}

uint64_t
imap_search_modseq(const struct imap_search *sc)
{
	return sc->modseq_used && sc->nhits > 0 ? sc->modseq_max : 0;
}

static int
imap_search_cont(struct imap_session *s)
{
	struct imap_search *sc = s->cont_ctx;
	unsigned int reads = 0;

	while (!sc->evaluated && sc->i < s->count) {
		uint32_t pos = sc->i++;
		int64_t idx = imap_view_index(s, pos);

		if (idx < 0)
			continue;	/* expunged: not reported yet */
		sc->idx = (uint32_t)idx;
		sc->have_header = sc->have_body = sc->computed = false;
		sc->msg_error = false;
		if (imap_search_all(s, sc, sc->root, pos)) {
			const struct store_msg *m =
			    store_mailbox_msg(s->sel->mb, sc->idx);

			sc->hits[sc->nhits++] = pos;
			if (m->modseq > sc->modseq_max)
				sc->modseq_max = m->modseq;
		}
		if (sc->have_header || sc->have_body || sc->computed)
			reads++;
		if (reads >= IMAP_SEARCH_BATCH && sc->i < s->count)
			return 0;	/* the others get a turn */
	}
	if (!sc->evaluated) {
		sc->evaluated = true;
		if (sc->read_error)
			log_warning("imap(%s): SEARCH could not read some "
			    "messages", s->log_user);
	}
	if (sc->done != NULL)
		return sc->done(s, sc, sc->done_ctx);
	imap_search_answer(s, sc);
	imap_tagged(s, "OK", "Search completed.");
	return 1;
}

bool
imap_search_run(struct imap_session *s, const struct imap_cmd_search *c,
    bool uid, imap_search_done_fn *done, void *ctx,
    void (*ctx_free)(void *))
{
	struct imap_search *sc;
	const char *error = NULL;

	if (!imap_search_charset_utf8(c->charset) &&
	    !mime_charset_known(c->charset)) {
		if (ctx_free != NULL)
			ctx_free(ctx);
		imap_tagged(s, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unknown "
		    "charset.");
		return false;
	}
	/* RFC 5267 §4.3: a tag with updates already is BAD. */
	if ((c->ret & IMAP_SEARCH_RET_UPDATE) != 0 &&
	    imap_search_context_find(s, s->tag)) {
		imap_tagged(s, "BAD", "Tag reuse.");
		(void)imap_session_bad(s);
		return false;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->c = c;
	sc->uid = uid;
	sc->now = time(NULL);
	sc->done = done;
	sc->done_ctx = ctx;
	sc->done_free = ctx_free;
	buf_init(&sc->header, 0);
	sc->root = imap_sk_compile(s, sc, c->key, &error);
	if (sc->root == NULL && error != NULL) {
		imap_search_free(sc);
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return false;
	}
	sc->hits = xreallocarray(NULL, s->count + 1, sizeof(*sc->hits));
	sc->body_found = xcalloc(sc->nbody + 1, sizeof(*sc->body_found));
	sc->start_modseq = store_mailbox_highestmodseq(s->sel->mb);
	sc->start_uidnext = s->count > 0 ? s->view[s->count - 1].uid + 1 : 1;
	imap_session_continue(s, imap_search_cont, sc, imap_search_free);
	return true;
}

void
imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
	(void)imap_search_run(s, &cmd->u.search, cmd->uid, NULL, NULL, NULL);
}

/* ---- updating contexts (RFC 5267 §4.3, CONTEXT=SEARCH) ---- */

/* Contexts one session may hold; more are refused with NOUPDATE. */
#define IMAP_SEARCH_MAX_CONTEXTS	8

struct imap_search_context {
	struct imap_search_context *next;
	struct imap_session *s;
	char		*tag;
	struct imap_cmd_search c;	/* a copy of the program */
	struct imap_search_key *keys;	/* its key tree (owned) */
	struct imap_search *sc;		/* compiled for evaluation */
	uint32_t	*uids;		/* the result, ascending */
	size_t		 n, cap;
	/* Messages changed after this modseq, or with a UID from
	 * uidnext on, are looked at again. */
	uint64_t	 modseq;
	uint32_t	 uidnext;
};

/* Every context of every session of the process. */
static struct imap_search_context *imap_search_contexts;

static struct imap_search_key *
imap_search_key_copy(const struct imap_search_key *k)
{
	struct imap_search_key *first = NULL, **tail = &first;

	for (; k != NULL; k = k->next) {
		struct imap_search_key *c = xcalloc(1, sizeof(*c));

		*c = *k;
		c->next = NULL;
		c->child = imap_search_key_copy(k->child);
		c->str = k->str != NULL ? xstrdup(k->str) : NULL;
		c->field = k->field != NULL ? xstrdup(k->field) : NULL;
		if (k->set.count > 0) {
			struct imap_seq_range *r = xreallocarray(NULL,
			    k->set.count, sizeof(*r));

			memcpy(r, k->set.ranges, k->set.count * sizeof(*r));
			c->set.ranges = r;
		} else
			c->set.ranges = NULL;
		*tail = c;
		tail = (struct imap_search_key **)&c->next;
	}
	return first;
}

static void
imap_search_key_free(struct imap_search_key *k)
{
	while (k != NULL) {
		struct imap_search_key *next =
		    (struct imap_search_key *)k->next;

		imap_search_key_free((struct imap_search_key *)k->child);
		free((char *)k->str);
		free((char *)k->field);
		free(k->set.ranges);
		free(k);
		k = next;
	}
}

static void
imap_search_context_drop(struct imap_search_context **pp)
{
	struct imap_search_context *x = *pp;

	*pp = x->next;
	imap_search_free(x->sc);
	imap_search_key_free(x->keys);
	free((char *)x->c.charset);
	free(x->tag);
	free(x->uids);
	free(x);
}

static bool
imap_search_context_find(struct imap_session *s, const char *tag)
{
	struct imap_search_context *x;

	for (x = imap_search_contexts; x != NULL; x = x->next)
		if (x->s == s && strcmp(x->tag, tag) == 0)
			return true;
	return false;
}

static void
imap_search_context_new(struct imap_session *s, struct imap_search *sc)
{
	struct imap_search_context *x;
	const char *error = NULL;
	unsigned int n = 0;
	size_t i;

	for (x = imap_search_contexts; x != NULL; x = x->next)
		if (x->s == s)
			n++;
	if (n >= IMAP_SEARCH_MAX_CONTEXTS) {
		imap_reply(s, "* NO [NOUPDATE \"%s\"] Too many contexts.",
		    s->tag);
		return;
	}
	x = xcalloc(1, sizeof(*x));
	x->s = s;
	x->tag = xstrdup(s->tag);
	x->c = *sc->c;
	x->c.charset = sc->c->charset != NULL ?
	    xstrdup(sc->c->charset) : NULL;
	x->keys = imap_search_key_copy(sc->c->key);
	x->c.key = x->keys;
	x->sc = xcalloc(1, sizeof(*x->sc));
	x->sc->c = &x->c;
	x->sc->uid = sc->uid;
	x->sc->now = time(NULL);
	buf_init(&x->sc->header, 0);
	x->sc->root = imap_sk_compile(s, x->sc, x->keys, &error);
	x->sc->body_found = xcalloc(x->sc->nbody + 1,
	    sizeof(*x->sc->body_found));
	x->cap = sc->nhits + 1;
	x->uids = xreallocarray(NULL, x->cap, sizeof(*x->uids));
	for (i = 0; i < sc->nhits; i++)
		x->uids[x->n++] = s->view[sc->hits[i]].uid;
	/* What changed while the search ran is looked at again at the
	 * next update: the result as of the search's start. */
	x->modseq = sc->start_modseq;
	x->uidnext = sc->start_uidnext;
	x->next = imap_search_contexts;
	imap_search_contexts = x;
}

/* Whether uid is in the result; *at_r: where it is or would go. */
static bool
imap_search_context_has(const struct imap_search_context *x, uint32_t uid,
    size_t *at_r)
{
	size_t lo = 0, hi = x->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->uids[mid] == uid) {
			*at_r = mid;
			return true;
		}
		if (x->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at_r = lo;
	return false;
}

/* "* ESEARCH (TAG "t") [UID] what (0 set)" for view positions pos[]. */
static void
imap_search_context_send(struct imap_session *s,
    const struct imap_search_context *x, const char *what,
    const uint32_t *pos, size_t n)
{
	struct buf b;

	if (n == 0)
		return;
	buf_init(&b, 0);
	buf_append_str(&b, "* ESEARCH (TAG ");
	imap_astring_write(&b, x->tag);
	buf_append_char(&b, ')');
	if (x->sc->uid)
		buf_append_str(&b, " UID");
	/* RFC 5267 §4.3.3: position 0 for SEARCH, in mailbox order. */
	buf_printf(&b, " %s (0 ", what);
	imap_search_set_write(s, x->sc->uid, pos, n, &b);
	buf_append_char(&b, ')');
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
}

void
imap_search_context_expunge(struct imap_session *s)
{
	struct imap_search_context *x;
	bool all = s->sel != NULL && s->uidvalidity != s->sel->uidvalidity;

	for (x = imap_search_contexts; x != NULL; x = x->next) {
		uint32_t *gone;
		size_t i, n = 0, kept = 0;

		if (x->s != s || x->n == 0)
			continue;
		gone = xreallocarray(NULL, x->n, sizeof(*gone));
		for (i = 0; i < x->n; i++) {
			int64_t pos = imap_view_find(s, x->uids[i]);

			if (pos >= 0 && (all ||
			    imap_view_index(s, (uint32_t)pos) < 0))
				gone[n++] = (uint32_t)pos;
			else if (pos >= 0)
				x->uids[kept++] = x->uids[i];
		}
		x->n = kept;
		/* RFC 5267 §4.3.4: before the EXPUNGEs, while the
		 * sequence numbers still hold. */
		imap_search_context_send(s, x, "REMOVEFROM", gone, n);
		free(gone);
	}
}

void
imap_search_context_update(struct imap_session *s)
{
	struct imap_search_context *x;

	if (s->sel == NULL)
		return;
	for (x = imap_search_contexts; x != NULL; x = x->next) {
		struct store_mailbox *mb = s->sel->mb;
		uint64_t hms = store_mailbox_highestmodseq(mb);
		uint32_t next = s->count > 0 ? s->view[s->count - 1].uid + 1 :
		    x->uidnext;
		uint32_t *add = NULL, *del = NULL, pos;
		size_t nadd = 0, ndel = 0, at;

		if (x->s != s || (hms == x->modseq && next == x->uidnext))
			continue;
		for (pos = 0; pos < s->count; pos++) {
			int64_t idx = imap_view_index(s, pos);
			const struct store_msg *m;
			bool hit, had;

			if (idx < 0)
				continue;	/* expunged: told later */
			m = store_mailbox_msg(mb, (uint32_t)idx);
			if (m->modseq <= x->modseq && m->uid < x->uidnext)
				continue;
			x->sc->idx = (uint32_t)idx;
			x->sc->have_header = x->sc->have_body = false;
			x->sc->computed = x->sc->msg_error = false;
			x->sc->now = time(NULL);
			hit = imap_search_all(s, x->sc, x->sc->root, pos);
			had = imap_search_context_has(x, m->uid, &at);
			if (hit == had)
				continue;
			if (hit) {
				if (x->n == x->cap) {
					x->cap = x->cap * 2 + 16;
					x->uids = xreallocarray(x->uids,
					    x->cap, sizeof(*x->uids));
				}
				memmove(x->uids + at + 1, x->uids + at,
				    (x->n - at) * sizeof(*x->uids));
				x->uids[at] = m->uid;
				x->n++;
				add = xreallocarray(add, nadd + 1,
				    sizeof(*add));
				add[nadd++] = pos;
			} else {
				memmove(x->uids + at, x->uids + at + 1,
				    (x->n - at - 1) * sizeof(*x->uids));
				x->n--;
				del = xreallocarray(del, ndel + 1,
				    sizeof(*del));
				del[ndel++] = pos;
			}
		}
		x->modseq = hms;
		x->uidnext = next;
		imap_search_context_send(s, x, "REMOVEFROM", del, ndel);
		imap_search_context_send(s, x, "ADDTO", add, nadd);
		free(add);
		free(del);
	}
}

void
imap_search_context_free(struct imap_session *s)
{
	struct imap_search_context **pp = &imap_search_contexts;

	while (*pp != NULL) {
		if ((*pp)->s == s)
			imap_search_context_drop(pp);
		else
			pp = &(*pp)->next;
	}
}

/* CANCELUPDATE "tag"... (RFC 5267 §4.3.5). */
void
imap_cmd_cancelupdate(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_enable *c = &cmd->u.enable;
	struct imap_search_context **pp;
	size_t i;

	for (i = 0; i < c->count; i++)
		for (pp = &imap_search_contexts; *pp != NULL;
		    pp = &(*pp)->next)
			if ((*pp)->s == s &&
			    strcmp((*pp)->tag, c->caps[i]) == 0) {
				imap_search_context_drop(pp);
				break;
			}
	imap_tagged(s, "OK", "No further updates.");
}
