/*
 * imap_cmd_fetch: FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2; RFC 3501
 * §6.4.5 for the RFC822 items; BINARY of RFC 3516).
 *
 * One message at a time, as a continuation of the session (STYLE §6):
 * the small items (UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE,
 * BODY, BODYSTRUCTURE; the last three from the store's cache) are
 * rendered into the output at once; a body
 * section is a literal whose bytes are streamed from the message file
 * as the output drains (DESIGN §12 "One pass over message bytes"), so
 * a 50 MB attachment never sits in memory.  Offsets come from the MIME
 * tree of the bytes as the client sees them (CRLF line ends), which the
 * open mailbox caches.  Only HEADER.FIELDS[.NOT] and BINARY, which
 * transform the bytes, are built in memory (bounded by IMAP_MAX_HEADER
 * and the message size).
 *
 * Fetching a body section without .PEEK sets \Seen (RFC 9051 §6.4.5) on
 * a read-write mailbox; the new flags then come with the response, and
 * the other sessions of the mailbox hear of it.
 *
 * Also here: MODSEQ and the CHANGEDSINCE and VANISHED modifiers (RFC
 * 7162 §3.1.4, §3.2.6), with the VANISHED (EARLIER) and changed-flags
 * answers that SELECT (QRESYNC ...) shares; SAVEDATE (RFC 8514), EMAILID
 * and THREADID (RFC 8474), PREVIEW (RFC 8970).  A message another
 * session expunged, which this one may not be told of yet (RFC 9051
 * §7.5.1), is answered with the flags kept at the expunge and empty
 * contents, and the tagged OK says [EXPUNGEISSUED].
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap.h"
#include "imap_date.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "xmalloc.h"

/* Decoded BINARY data kept in memory at most. */
#define IMAP_FETCH_MAX_BINARY	(64 * 1024 * 1024)

struct imap_fetch {
	const struct imap_cmd_fetch *f;
	uint32_t	*pos;
	size_t		 n, i;
	bool		 unknown_cte;	/* a BINARY answered NIL */
	bool		 any_gone;	/* a message answered as gone */
	/* MODSEQ in every response (RFC 7162 §3.1.4.1: CHANGEDSINCE adds
	 * it) */
	bool		 modseq;
	/* SELECT (QRESYNC): its own item list and tagged text */
	struct imap_cmd_fetch own;
	char		*done_text;

	/* the message being answered */
	bool		 in_msg;
	uint32_t	 cur;		/* view position */
	uint32_t	 uid;
	/* store index, looked up again after every pause: a sync moves
	 * it */
	uint32_t	 idx;
	bool		 vanished;	/* expunged meanwhile */
	/* expunged before the command, not yet told: answered from the
	 * flags the mailbox kept (imap_mbox_ghost()) or empty ones */
	bool		 gone;
	struct store_msg ghost;
	size_t		 item;		/* next body item (below) */
	bool		 sep;		/* small items were written */
	/* a literal being streamed */
	struct store_msg_stream *st;
	uint64_t	 skip, left;
};

static void
imap_fetch_free(void *ctx)
{
	struct imap_fetch *fc = ctx;

	store_msg_close(&fc->st);
	free(fc->pos);
	free(fc->done_text);
	free(fc);
}

/* The local offset of t in minutes, for INTERNALDATE. */
static int
imap_fetch_tz(time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return (int)(tm.tm_gmtoff / 60);
}

/* ---- the small items ---- */

/*
 * ENVELOPE, BODY or BODYSTRUCTURE of the message: from the mailbox's
 * cache (store.h), which computes and keeps it at the first request;
 * a value too large for the cache is rendered from the MIME tree.
 */
static int
imap_fetch_rendered(struct imap_session *s, struct imap_fetch *fc,
    enum store_cache_field field, const struct mime_part **tree,
    struct buf *b, const char **error_r)
{
	const char *val;
	size_t len;
	int r;

	r = store_msg_cached(s->sel->mb, fc->idx, field, &val, &len, error_r);
	if (r < 0)
		return -1;
	if (r > 0) {
		buf_append(b, val, len);
		return 0;
	}
	if (*tree == NULL &&
	    imap_msg_tree(s->sel, fc->idx, tree, error_r) < 0)
		return -1;
	if (field == STORE_CACHE_ENVELOPE)
		(void)mime_render_envelope(*tree, b);
	else
		(void)mime_render_bodystructure(*tree,
		    field == STORE_CACHE_BODYSTRUCTURE, b);
	return 0;
}

/* Append s as an IMAP string: quoted when it is printable ASCII, else
 * a literal (RFC 9051 §4.3). */
static void
imap_fetch_string(struct buf *b, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			break;
	if (i < len) {
		buf_printf(b, "{%zu}\r\n", len);
		buf_append(b, s, len);
		return;
	}
	buf_append_char(b, '"');
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, s[i]);
	}
	buf_append_char(b, '"');
}

/* Bytes of the well-formed UTF-8 character at p (1 to 4), 0 if none. */
static size_t
imap_utf8_len(const unsigned char *p, size_t avail)
{
	size_t n, k;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (avail < n)
		return 0;
	for (k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	/* No overlong forms, surrogates or values past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* The first part a reader would see as the text: text/plain, else
 * text/html, not an attachment (RFC 8970 §3 leaves the choice to us). */
static const struct mime_part *
imap_preview_part(const struct mime_part *p, bool html)
{
	const struct mime_part *c, *r;

	if ((p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) != 0) {
		/* Not into an attached message: its text is not ours. */
		if ((p->flags & MIME_PART_MESSAGE) != 0 && p->depth > 0)
			return NULL;
		for (c = p->children; c != NULL; c = c->next)
			if ((r = imap_preview_part(c, html)) != NULL)
				return r;
		return NULL;
	}
	if (strcasecmp(p->type, "text") != 0 ||
	    strcasecmp(p->subtype, html ? "html" : "plain") != 0)
		return NULL;
	if (p->disposition != NULL &&
	    strcasecmp(p->disposition, "attachment") == 0)
		return NULL;
	return p;
}

/* HTML to text, roughly: tags dropped (and what style and script hold),
 * the common entities replaced. */
static void
imap_preview_html(const struct buf *in, struct buf *out)
{
	static const struct {
		const char *name, *text;
	} ents[] = {
		{ "&nbsp;", " " }, { "&amp;", "&" }, { "&lt;", "<" },
		{ "&gt;", ">" }, { "&quot;", "\"" }, { "&#39;", "'" },
	};
	const char *p = in->data, *end = in->data + in->len;
	size_t k;

	while (p < end) {
		if (*p == '<') {
			bool skip = (size_t)(end - p) > 6 &&
			    (strncasecmp(p, "<style", 6) == 0 ||
			    strncasecmp(p, "<scrip", 6) == 0);
			const char *close = memchr(p, '>', (size_t)(end - p));

			if (close == NULL)
				break;
			p = close + 1;
			if (skip) {
				/* Up to the closing tag. */
				while (p < end && !(*p == '<' && p + 1 < end &&
				    p[1] == '/'))
					p++;
			}
			buf_append_char(out, ' ');
			continue;
		}
		if (*p == '&') {
			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
				size_t n = strlen(ents[k].name);

				if ((size_t)(end - p) >= n &&
				    strncasecmp(p, ents[k].name, n) == 0) {
					buf_append_str(out, ents[k].text);
					p += n;
					break;
				}
			}
			if (k < sizeof(ents) / sizeof(ents[0]))
				continue;
		}
		buf_append_char(out, *p++);
	}
}

/*
 * PREVIEW (RFC 8970): the start of the message's text, decoded to
 * UTF-8, white space collapsed, at most IMAP_PREVIEW_CHARS characters;
 * "" for a message without text.
 */
static int
imap_fetch_preview(struct imap_session *s, struct imap_fetch *fc,
    const struct mime_part **tree, struct buf *b, const char **error_r)
{
	const struct mime_part *part;
	const char *charset = NULL;
	struct mime_body_decoder *d;
	struct buf raw, dec, html, txt;
	const struct buf *src;
	size_t i, len, chars = 0;
	bool html_part = false, space = false;

	if (*tree == NULL &&
	    imap_msg_tree(s->sel, fc->idx, tree, error_r) < 0)
		return -1;
	part = imap_preview_part(*tree, false);
	if (part == NULL) {
		part = imap_preview_part(*tree, true);
		html_part = part != NULL;
	}
	if (part == NULL) {
		buf_append_str(b, "\"\"");
		return 0;
	}
	for (i = 0; i < part->nparams; i++)
		if (strcasecmp(part->params[i].name, "charset") == 0)
			charset = part->params[i].value;
	if (charset != NULL && !mime_charset_known(charset))
		charset = NULL;
	buf_init(&raw, 0);
	if (imap_msg_read_range(s->sel->mb, fc->idx, part->body.voff,
	    part->body.vlen, IMAP_PREVIEW_READ, &raw, error_r) < 0) {
		buf_free(&raw);
		return -1;
	}
	/* Bounded: decoding never makes more than 4 bytes of one. */
	buf_init(&dec, 4 * IMAP_PREVIEW_READ + 16);
	d = mime_body_decoder_new(part->encoding, charset);
	(void)mime_body_decoder_feed(d, raw.data, raw.len, &dec);
	(void)mime_body_decoder_finish(d, &dec);
	mime_body_decoder_free(&d);
	buf_free(&raw);
	src = &dec;
	buf_init(&html, 0);
	if (html_part) {
		imap_preview_html(&dec, &html);
		src = &html;
	}
	buf_init(&txt, 0);
	for (i = 0; i < src->len; i += len) {
		const unsigned char *c = (const unsigned char *)src->data + i;

		len = imap_utf8_len(c, src->len - i);
		if (len == 1 && (*c <= 0x20 || *c == 0x7f)) {
			/* White space and controls: one space between
			 * words. */
			space = txt.len > 0;
			continue;
		}
		if (chars + (space ? 1 : 0) >= IMAP_PREVIEW_CHARS)
			break;
		if (space) {
			buf_append_char(&txt, ' ');
			chars++;
			space = false;
		}
		chars++;
		if (len == 0) {
			/* Not UTF-8 (a charset we could not convert). */
			buf_append_char(&txt, '?');
			len = 1;
		} else
			buf_append(&txt, c, len);
	}
	imap_fetch_string(b, txt.data != NULL ? txt.data : "", txt.len);
	buf_free(&txt);
	buf_free(&html);
	buf_free(&dec);
	return 0;
}

/* What a message gone from the store still answers (RFC 9051 §7.5.1
 * lets the server send what it can): empty structures. */
static void
imap_fetch_gone_item(uint32_t item, struct buf *b)
{
	if (item == IMAP_FETCH_ENVELOPE)
		buf_append_str(b, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	else if (item == IMAP_FETCH_PREVIEW)
		buf_append_str(b, "NIL");
	else
		buf_append_str(b, "(\"text\" \"plain\" NIL NIL NIL "
		    "\"7bit\" 0 0)");
}

static int
imap_fetch_small(struct imap_session *s, struct imap_fetch *fc,
    bool seen_changed, struct buf *b, const char **error_r)
{
	const struct imap_cmd_fetch *f = fc->f;
	const struct store_msg *m = fc->gone ? &fc->ghost :
	    store_mailbox_msg(s->sel->mb, fc->idx);
	const struct mime_part *tree = NULL;
	bool first = true;
	/* RFC 7162 §3.2.4: a FETCH that sets \Seen says UID and MODSEQ
	 * once CONDSTORE is on. */
	bool cs = seen_changed && s->condstore && imap_session_modseq_ok(s);

#define SEP() do { \
	if (!first) \
		buf_append_char(b, ' '); \
	first = false; \
} while (0)
	if ((f->items & IMAP_FETCH_UID) != 0 || cs) {
		SEP();
		buf_printf(b, "UID %u", m->uid);
	}
	if ((f->items & IMAP_FETCH_FLAGS) != 0 || seen_changed) {
		SEP();
		buf_append_str(b, "FLAGS ");
		imap_flags_format(s, m, (s->view[fc->cur].flags &
		    IMAP_VIEW_RECENT) != 0, b);
		/* Said now: not again as an unsolicited update. */
		if ((s->view[fc->cur].flags & IMAP_VIEW_FLAGCHG) != 0) {
			s->view[fc->cur].flags &= ~IMAP_VIEW_FLAGCHG;
			s->flagchg--;
		}
	}
	if (fc->modseq || cs) {
		SEP();
		buf_printf(b, "MODSEQ (%llu)", (unsigned long long)m->modseq);
	}
	if ((f->items & IMAP_FETCH_INTERNALDATE) != 0) {
		char date[IMAP_DATETIME_SIZE];

		imap_date_format_datetime(m->internal_date,
		    imap_fetch_tz(m->internal_date), date);
		SEP();
		buf_printf(b, "INTERNALDATE \"%s\"", date);
	}
	if ((f->items & IMAP_FETCH_RFC822_SIZE) != 0) {
		SEP();
		buf_printf(b, "RFC822.SIZE %llu",
		    (unsigned long long)m->vsize);
	}
	if ((f->items & IMAP_FETCH_SAVEDATE) != 0) {
		/* RFC 8514 §4: NIL when the date is not known. */
		SEP();
		if (m->save_date != 0) {
			char date[IMAP_DATETIME_SIZE];

			imap_date_format_datetime(m->save_date,
			    imap_fetch_tz(m->save_date), date);
			buf_printf(b, "SAVEDATE \"%s\"", date);
		} else
			buf_append_str(b, "SAVEDATE NIL");
	}
	if ((f->items & IMAP_FETCH_EMAILID) != 0) {
		char id[IMAP_OBJECTID_MAX];

		imap_msg_emailid(s->sel, m, id, sizeof(id));
		SEP();
		buf_printf(b, "EMAILID (%s)", id);
	}
	if ((f->items & IMAP_FETCH_THREADID) != 0) {
		/* RFC 8474 §5.2: NIL, threads are not identified. */
		SEP();
		buf_append_str(b, "THREADID NIL");
	}
	if ((f->items & IMAP_FETCH_ENVELOPE) != 0) {
		SEP();
		buf_append_str(b, "ENVELOPE ");
		if (fc->gone)
			imap_fetch_gone_item(IMAP_FETCH_ENVELOPE, b);
		else if (imap_fetch_rendered(s, fc, STORE_CACHE_ENVELOPE,
		    &tree, b, error_r) < 0)
			return -1;
	}
	if ((f->items & IMAP_FETCH_BODY) != 0) {
		SEP();
		buf_append_str(b, "BODY ");
		if (fc->gone)
			imap_fetch_gone_item(IMAP_FETCH_BODY, b);
		else if (imap_fetch_rendered(s, fc, STORE_CACHE_BODY, &tree,
		    b, error_r) < 0)
			return -1;
	}
	if ((f->items & IMAP_FETCH_BODYSTRUCTURE) != 0) {
		SEP();
		buf_append_str(b, "BODYSTRUCTURE ");
		if (fc->gone)
			imap_fetch_gone_item(IMAP_FETCH_BODYSTRUCTURE, b);
		else if (imap_fetch_rendered(s, fc, STORE_CACHE_BODYSTRUCTURE,
		    &tree, b, error_r) < 0)
			return -1;
	}
	if ((f->items & IMAP_FETCH_PREVIEW) != 0) {
		SEP();
		buf_append_str(b, "PREVIEW ");
		if (fc->gone)
			imap_fetch_gone_item(IMAP_FETCH_PREVIEW, b);
		else if (imap_fetch_preview(s, fc, &tree, b, error_r) < 0)
			return -1;
	}
#undef SEP
	return first ? 0 : 1;
}

/* ---- body items ---- */

/*
 * The body items of one message, in this order: RFC822.HEADER,
 * RFC822.TEXT, RFC822 (when asked), then f->bodies[].  item counts them.
 */
struct imap_fetch_item {
	const char	*name;		/* reply name, no <origin> */
	const struct imap_fetch_body *body;	/* NULL: RFC822 forms */
	enum imap_section_text text;	/* for the RFC822 forms */
};

static bool
imap_fetch_item_get(const struct imap_fetch *fc, size_t i,
    struct imap_fetch_item *it)
{
	static const struct {
		uint32_t		 bit;
		const char		*name;
		enum imap_section_text	 text;
	} rfc822[] = {
		{ IMAP_FETCH_RFC822_HEADER, "RFC822.HEADER",
		    IMAP_SECTION_HEADER },
		{ IMAP_FETCH_RFC822_TEXT, "RFC822.TEXT", IMAP_SECTION_TEXT },
		{ IMAP_FETCH_RFC822, "RFC822", IMAP_SECTION_ALL },
	};
	size_t k;

	for (k = 0; k < 3; k++) {
		if ((fc->f->items & rfc822[k].bit) == 0)
			continue;
		if (i-- == 0) {
			it->name = rfc822[k].name;
			it->body = NULL;
			it->text = rfc822[k].text;
			return true;
		}
	}
	if (i >= fc->f->body_count)
		return false;
	it->body = &fc->f->bodies[i];
	it->name = it->body->name;
	it->text = it->body->text;
	return true;
}

/* "1.2.HEADER.FIELDS" for mime_section_find(). */
static void
imap_fetch_spec(const struct imap_fetch_item *it, struct buf *spec)
{
	static const char *const texts[] = {
		[IMAP_SECTION_ALL] = "",
		[IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT",
		[IMAP_SECTION_MIME] = "MIME",
	};
	size_t i;

	if (it->body != NULL)
		for (i = 0; i < it->body->part_count; i++)
			buf_printf(spec, i > 0 ? ".%u" : "%u",
			    it->body->part[i]);
	if (it->text != IMAP_SECTION_ALL) {
		if (spec->len > 0)
			buf_append_char(spec, '.');
		buf_append_str(spec, texts[it->text]);
	}
}

/* Content-Transfer-Encoding a BINARY fetch can undo (RFC 3516 §4.2). */
static bool
imap_fetch_cte_known(const struct mime_part *part)
{
	static const char *const known[] = {
		"7bit", "8bit", "binary", "base64", "quoted-printable"
	};
	size_t i;

	if (part->encoding_name == NULL)
		return true;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(part->encoding_name, known[i]) == 0)
			return true;
	return false;
}

/*
 * Write one body item.  A section streamed from the file leaves
 * fc->st/skip/left set for imap_fetch_stream().  Returns 0, or -1 with
 * *error_r when the message cannot be read; *unknown_cte_r for a
 * BINARY fetch of an encoding we cannot undo.
 */
static int
imap_fetch_item_write(struct imap_session *s, struct imap_fetch *fc,
    const struct imap_fetch_item *it, struct buf *b, bool *unknown_cte_r,
    const char **error_r)
{
	struct store_mailbox *mb = s->sel->mb;
	const struct store_msg *m = store_mailbox_msg(mb, fc->idx);
	const struct imap_fetch_body *body = it->body;
	enum imap_fetch_kind kind = body != NULL ? body->kind :
	    IMAP_FETCH_KIND_BODY;
	struct mime_section sec;
	struct buf data, spec;
	uint64_t off, len;
	bool memory = false, nul = false;
	int r;

	*unknown_cte_r = false;
	buf_init(&data, 0);
	buf_init(&spec, 0);
	imap_fetch_spec(it, &spec);
	if (spec.len == 0 && kind != IMAP_FETCH_KIND_BINARY_SIZE) {
		/* BODY[] and RFC822: the whole message, no parse. */
		off = 0;
		len = m->vsize;
	} else {
		const struct mime_part *tree;

		if (imap_msg_tree(s->sel, fc->idx, &tree, error_r) < 0) {
			buf_free(&spec);
			return -1;
		}
		r = mime_section_find(tree, buf_cstr(&spec), &sec);
		if (r < 0) {
			/* The parser checked the syntax already. */
			r = 0;
		}
		if (r == 0) {
			/* RFC 9051 §6.4.5: no such part: an empty string
			 * (a NIL would upset some clients). */
			off = len = 0;
		} else if (it->text == IMAP_SECTION_HEADER_FIELDS ||
		    it->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
			struct buf hdr;

			buf_init(&hdr, 0);
			if (imap_msg_read_range(mb, fc->idx, sec.range.voff,
			    sec.range.vlen, IMAP_MAX_HEADER, &hdr,
			    error_r) < 0) {
				buf_free(&hdr);
				buf_free(&spec);
				return -1;
			}
			(void)mime_header_fields(hdr.data, hdr.len,
			    body->fields, body->field_count,
			    it->text == IMAP_SECTION_HEADER_FIELDS_NOT,
			    &data);
			buf_free(&hdr);
			memory = true;
			off = 0;
			len = data.len;
		} else if (kind != IMAP_FETCH_KIND_BODY &&
		    sec.kind == MIME_SECTION_PART &&
		    (sec.part->flags & (MIME_PART_MULTIPART |
		    MIME_PART_MESSAGE)) == 0) {
			/* BINARY of a leaf part: its content decoded. */
			struct mime_body_decoder *d;
			struct buf raw;

			if (!imap_fetch_cte_known(sec.part)) {
				*unknown_cte_r = true;
				buf_free(&spec);
				buf_free(&data);
				return 0;
			}
			buf_init(&raw, 0);
			if (imap_msg_read_range(mb, fc->idx, sec.range.voff,
			    sec.range.vlen, IMAP_FETCH_MAX_BINARY, &raw,
			    error_r) < 0) {
				buf_free(&raw);
				buf_free(&spec);
				return -1;
			}
			buf_init(&data, IMAP_FETCH_MAX_BINARY);
			d = mime_body_decoder_new(sec.part->encoding, NULL);
			(void)mime_body_decoder_feed(d, raw.data, raw.len,
			    &data);
			(void)mime_body_decoder_finish(d, &data);
			mime_body_decoder_free(&d);
			buf_free(&raw);
			memory = true;
			off = 0;
			len = data.len;
		} else {
			off = sec.range.voff;
			len = sec.range.vlen;
		}
	}
	buf_free(&spec);
	if (kind == IMAP_FETCH_KIND_BINARY_SIZE) {
		buf_printf(b, "%s %llu", it->name, (unsigned long long)len);
		buf_free(&data);
		return 0;
	}
	if (body != NULL && body->partial) {
		/* RFC 9051 §6.4.5: <origin.octets> of the section. */
		uint64_t o = body->offset < len ? body->offset : len;
		uint64_t l = len - o < body->length ? len - o : body->length;

		off += o;
		len = l;
		buf_printf(b, "%s<%llu> ", it->name,
		    (unsigned long long)body->offset);
	} else
		buf_printf(b, "%s ", it->name);
	/* RFC 3516 §4.2: literal8 when the data sent hold a NUL. */
	if (memory && kind == IMAP_FETCH_KIND_BINARY && len > 0)
		nul = memchr(data.data + off, '\0', (size_t)len) != NULL;
	buf_printf(b, "%s{%llu}\r\n", nul ? "~" : "", (unsigned long long)len);
	if (memory) {
		if (len > 0)
			buf_append(b, data.data + off, (size_t)len);
		buf_free(&data);
		return 0;
	}
	buf_free(&data);
	if (len > 0) {
		if (store_msg_open(mb, fc->idx, &fc->st, error_r) < 0) {
			/* Announced already: keep the protocol right. */
			log_error("imap(%s): message %u: %s", s->log_user,
			    m->uid, *error_r);
			fc->skip = 0;
			fc->left = len;
			return 0;
		}
		fc->skip = off;
		fc->left = len;
	}
	return 0;
}

/*
 * Stream the literal of fc into the output until it is done (1) or the
 * output is full (0).
 */
static int
imap_fetch_stream(struct imap_session *s, struct imap_fetch *fc)
{
	char chunk[IMAP_MSG_CHUNK];

	while (fc->left > 0) {
		ssize_t n;

		if (imap_session_out_full(s))
			return 0;
		if (fc->st == NULL) {
			/* The message went away under us: the length was
			 * promised, so pad it. */
			size_t k = fc->left < sizeof(chunk) ? (size_t)fc->left :
			    sizeof(chunk);

			memset(chunk, ' ', k);
			imap_write(s, chunk, k);
			fc->left -= k;
			continue;
		}
		n = store_msg_read(fc->st, chunk, sizeof(chunk));
		if (n <= 0) {
			if (n < 0)
				log_error("imap(%s): reading a message failed",
				    s->log_user);
			store_msg_close(&fc->st);
			continue;
		}
		if (fc->skip > 0) {
			if ((uint64_t)n <= fc->skip) {
				fc->skip -= (uint64_t)n;
				continue;
			}
			memmove(chunk, chunk + fc->skip,
			    (size_t)((uint64_t)n - fc->skip));
			n -= (ssize_t)fc->skip;
			fc->skip = 0;
		}
		if ((uint64_t)n > fc->left)
			n = (ssize_t)fc->left;
		imap_write(s, chunk, (size_t)n);
		fc->left -= (uint64_t)n;
	}
	store_msg_close(&fc->st);
	return 1;
}

/* ---- one message ---- */

/*
 * Start the response of the next message.  Returns 1 when one was
 * started, 0 when there are no more, -1 on an error (told to the client).
 */
static int
imap_fetch_msg_start(struct imap_session *s, struct imap_fetch *fc)
{
	struct store_mailbox *mb = s->sel->mb;
	bool seen_changed = false;
	const char *error;
	struct buf b;
	int64_t idx;
	int r;

	if (fc->i >= fc->n)
		return 0;
	fc->cur = fc->pos[fc->i++];
	fc->uid = s->view[fc->cur].uid;
	idx = imap_view_index(s, fc->cur);
	fc->gone = idx < 0;
	fc->vanished = fc->gone;
	if (fc->gone) {
		fc->any_gone = true;
		/*
		 * Expunged by someone else; we may not say so yet.  RFC 9051
		 * §7.5.1 lets us answer what we still know: the flags kept
		 * at the expunge, empty contents.
		 */
		const struct store_msg *g = imap_mbox_ghost(s->sel, fc->uid);

		if (g != NULL)
			fc->ghost = *g;
		else {
			memset(&fc->ghost, 0, sizeof(fc->ghost));
			fc->ghost.uid = fc->uid;
		}
		fc->idx = 0;
	} else
		fc->idx = (uint32_t)idx;
	if (!fc->gone && fc->f->sets_seen && !s->readonly &&
	    (store_mailbox_msg(mb, fc->idx)->flags & STORE_SEEN) == 0) {
		if (store_msg_set_flags(mb, fc->idx, STORE_SEEN, 0, 1,
		    &error) < 0)
			log_error("imap(%s): cannot set \\Seen: %s",
			    s->log_user, error);
		else {
			seen_changed = true;
			imap_mbox_flags_changed(s->sel, s->view[fc->cur].uid,
			    s);
		}
	}
	buf_init(&b, 0);
	buf_printf(&b, "* %u FETCH (", fc->cur + 1);
	r = imap_fetch_small(s, fc, seen_changed, &b, &error);
	if (r < 0) {
		/* Unreadable (removed by another program, not synced yet):
		 * answered as a message gone. */
		log_debug("imap(%s): FETCH of message %u: %s", s->log_user,
		    s->view[fc->cur].uid, error);
		fc->ghost = *store_mailbox_msg(mb, fc->idx);
		fc->gone = fc->vanished = fc->any_gone = true;
		buf_reset(&b);
		buf_printf(&b, "* %u FETCH (", fc->cur + 1);
		r = imap_fetch_small(s, fc, seen_changed, &b, &error);
	}
	imap_write(s, b.data, b.len);
	buf_free(&b);
	fc->in_msg = true;
	fc->item = 0;
	/* The first body item needs a separator only after small items. */
	fc->sep = r > 0;
	return 1;
}

static int
imap_fetch_cont(struct imap_session *s)
{
	struct imap_fetch *fc = s->cont_ctx;

	if (fc->in_msg && !fc->vanished) {
		/* A sync while we paused may have moved or removed it. */
		int64_t idx = store_mailbox_find_uid(s->sel->mb, fc->uid);

		if (idx < 0)
			fc->vanished = fc->any_gone = true;
		else
			fc->idx = (uint32_t)idx;
	}
	for (;;) {
		struct imap_fetch_item it;
		const char *error;
		bool unknown_cte;
		struct buf b;

		if (imap_session_out_full(s))
			return 0;
		if (fc->in_msg && fc->left > 0) {
			if (imap_fetch_stream(s, fc) == 0)
				return 0;
			continue;
		}
		if (!fc->in_msg) {
			int r = imap_fetch_msg_start(s, fc);

			if (r == 0)
				break;
			continue;
		}
		if (!imap_fetch_item_get(fc, fc->item, &it)) {
			imap_write(s, ")\r\n", 3);
			fc->in_msg = false;
			continue;
		}
		buf_init(&b, 0);
		if (fc->item > 0 || fc->sep)
			buf_append_char(&b, ' ');
		fc->item++;
		if (fc->vanished) {
			/* Gone under us: the response still ends well. */
			if (it.body != NULL &&
			    it.body->kind == IMAP_FETCH_KIND_BINARY_SIZE)
				buf_printf(&b, "%s 0", it.name);
			else
				buf_printf(&b, "%s {0}\r\n", it.name);
		} else if (imap_fetch_item_write(s, fc, &it, &b, &unknown_cte,
		    &error) < 0) {
			/* Nothing of this item is out yet: an empty
			 * string keeps the response well-formed. */
			log_error("imap(%s): FETCH of message %u: %s",
			    s->log_user, s->view[fc->cur].uid, error);
			buf_printf(&b, "%s {0}\r\n", it.name);
		} else if (unknown_cte) {
			/* RFC 3516 §4.2: NIL; the tagged NO tells why. */
			buf_printf(&b, "%s NIL", it.name);
			fc->unknown_cte = true;
		}
		imap_write(s, b.data, b.len);
		buf_free(&b);
	}
	if (fc->done_text != NULL)
		imap_tagged_only(s, "OK", "%s", fc->done_text);
	else if (fc->unknown_cte)
		imap_tagged(s, "NO", "[UNKNOWN-CTE] Unknown "
		    "Content-Transfer-Encoding.");
	else if (fc->any_gone)
		/* RFC 9051 §7.1: OK with the data we could give; the code
		 * says some of it may be empty. */
		imap_tagged(s, "OK", "[EXPUNGEISSUED] Some of the requested "
		    "messages no longer exist.");
	else
		imap_tagged(s, "OK", "Fetch completed.");
	return 1;
}

/*
 * RFC 7162 §3.1.4.1: only the messages whose modseq is above
 * changedsince (those gone from the store by their kept flags, unless
 * VANISHED (EARLIER) named them already: vanished).
 */
static void
imap_fetch_filter_changed(struct imap_session *s, struct imap_fetch *fc,
    uint64_t changedsince, bool vanished)
{
	size_t i, o = 0;

	for (i = 0; i < fc->n; i++) {
		int64_t idx = imap_view_index(s, fc->pos[i]);
		const struct store_msg *m;

		if (idx >= 0)
			m = store_mailbox_msg(s->sel->mb, (uint32_t)idx);
		else if (!vanished)
			m = imap_mbox_ghost(s->sel, s->view[fc->pos[i]].uid);
		else
			m = NULL;
		if (m != NULL && m->modseq > changedsince)
			fc->pos[o++] = fc->pos[i];
	}
	fc->n = o;
}

/* "* VANISHED (EARLIER) ..." lines of at most IMAP_VANISHED_LINE ranges. */
static void
imap_vanished_send(struct imap_session *s, const struct imap_seq_range *r,
    size_t n)
{
	struct buf b;
	size_t i, k;

	buf_init(&b, 0);
	for (i = 0; i < n; i += k) {
		k = n - i < IMAP_VANISHED_LINE ? n - i : IMAP_VANISHED_LINE;
		buf_reset(&b);
		buf_append_str(&b, "* VANISHED (EARLIER) ");
		imap_seqset_format(r + i, k, &b);
		imap_reply(s, "%s", buf_cstr(&b));
	}
	buf_free(&b);
}

/* Append [lo, hi] to the ranges, merged with the last when adjacent. */
static void
imap_range_add(struct imap_seq_range **r, size_t *n, size_t *cap,
    uint32_t lo, uint32_t hi)
{
	if (*n > 0 && (*r)[*n - 1].hi + 1 == lo) {
		(*r)[*n - 1].hi = hi;
		return;
	}
	if (*n == *cap) {
		*cap = *cap > 0 ? *cap * 2 : 64;
		*r = xreallocarray(*r, *cap, sizeof(**r));
	}
	(*r)[*n].lo = lo;
	(*r)[(*n)++].hi = hi;
}

/* First store index with a UID of at least uid. */
static uint32_t
imap_store_lower(struct store_mailbox *mb, uint32_t uid)
{
	uint32_t lo = 0, hi = store_mailbox_count(mb);

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (store_mailbox_msg(mb, mid)->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
imap_vanished_earlier(struct imap_session *s, const struct imap_seqset *set,
    uint32_t max, uint64_t modseq, uint32_t min_uid)
{
	struct store_mailbox *mb = s->sel->mb;
	uint32_t uidnext = store_mailbox_uidnext(mb), n32, *uids = NULL;
	struct imap_seq_range *r, *out = NULL;
	size_t nr, i, n = 0, nout = 0, cap = 0, k;

	r = xreallocarray(NULL, set->count + 1, sizeof(*r));
	nr = imap_seqset_resolve(set, max, r);
	/* Only UIDs that were given out can have gone. */
	for (i = 0, k = 0; i < nr; i++) {
		if (r[i].lo <= min_uid)
			r[i].lo = min_uid + 1;
		if (r[i].hi >= uidnext)
			r[i].hi = uidnext - 1;
		if (r[i].lo <= r[i].hi && r[i].lo > min_uid)
			r[k++] = r[i];
	}
	nr = k;
	if (nr == 0) {
		free(r);
		return;
	}
	if (store_mailbox_expunged_since(mb, modseq, r[0].lo, r[nr - 1].hi,
	    &uids, &n)) {
		/* Complete (at most what the index remembers): those in
		 * the ranges. */
		for (i = 0; i < n; i++)
			if (imap_seqset_contains(set, uids[i], max))
				imap_range_add(&out, &nout, &cap, uids[i],
				    uids[i]);
	} else {
		/*
		 * The mailbox does not remember that far back (RFC 7162
		 * §3.2.6 note): every UID of the ranges that is not in the
		 * mailbox may have gone.  Walked by the messages, not the
		 * UIDs, so a range of 4 billion UIDs costs no more than
		 * the mailbox.
		 */
		for (i = 0; i < nr; i++) {
			uint32_t idx = imap_store_lower(mb, r[i].lo);
			uint64_t next = r[i].lo;

			n32 = store_mailbox_count(mb);
			for (; idx < n32; idx++) {
				uint32_t u = store_mailbox_msg(mb, idx)->uid;

				if (u > r[i].hi)
					break;
				if (u > next)
					imap_range_add(&out, &nout, &cap,
					    (uint32_t)next, u - 1);
				next = (uint64_t)u + 1;
			}
			if (next <= r[i].hi)
				imap_range_add(&out, &nout, &cap,
				    (uint32_t)next, r[i].hi);
		}
	}
	imap_vanished_send(s, out, nout);
	free(out);
	free(uids);
	free(r);
}

void
imap_fetch_changed(struct imap_session *s, const struct imap_seqset *set,
    uint64_t modseq, const char *text)
{
	struct imap_fetch *fc = xcalloc(1, sizeof(*fc));
	const char *error;

	fc->own.items = IMAP_FETCH_UID | IMAP_FETCH_FLAGS;
	fc->own.has_changedsince = true;
	fc->own.changedsince = modseq;
	fc->f = &fc->own;
	fc->modseq = true;
	fc->done_text = xstrdup(text);
	/* UIDs of the view: never an error. */
	if (imap_set_resolve(s, set, true, &fc->pos, &fc->n, &error) < 0)
		fc->n = 0;
	imap_fetch_filter_changed(s, fc, modseq, true);
	imap_session_continue(s, imap_fetch_cont, fc, imap_fetch_free);
}

void
imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_fetch *f = &cmd->u.fetch;
	struct imap_fetch *fc;
	const char *error;

	if (f->has_changedsince || (f->items & IMAP_FETCH_MODSEQ) != 0) {
		/* RFC 7162 §3.1.2.2 */
		if (!imap_session_modseq_ok(s)) {
			imap_tagged(s, "BAD", "Mailbox has no modsequences "
			    "(NOMODSEQ).");
			(void)imap_session_bad(s);
			return;
		}
	}
	/* RFC 7162 §3.2.6: VANISHED only after ENABLE QRESYNC. */
	if (f->vanished && !s->qresync) {
		imap_tagged(s, "BAD", "QRESYNC is not enabled.");
		(void)imap_session_bad(s);
		return;
	}
	fc = xcalloc(1, sizeof(*fc));
	fc->f = f;
	if (imap_set_resolve(s, &f->set, cmd->uid, &fc->pos, &fc->n,
	    &error) < 0) {
		imap_fetch_free(fc);
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	if (f->has_changedsince || (f->items & IMAP_FETCH_MODSEQ) != 0) {
		/* §3.1: both enable CONDSTORE. */
		imap_session_condstore(s);
		fc->modseq = true;
	}
	/*
	 * '*' is the highest UID of the mailbox (RFC 9051 §9), but the
	 * messages after it that went are exactly what a client of
	 * "1:*" misses: for VANISHED it stands for UIDNEXT - 1.
	 */
	if (f->vanished)
		imap_vanished_earlier(s, &f->set,
		    store_mailbox_uidnext(s->sel->mb) - 1, f->changedsince, 0);
	if (f->has_changedsince)
		imap_fetch_filter_changed(s, fc, f->changedsince,
		    f->vanished);
	imap_session_continue(s, imap_fetch_cont, fc, imap_fetch_free);
}
