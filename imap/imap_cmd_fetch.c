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
	bool		 any_gone;

	/* the message being answered */
	bool		 in_msg;
	uint32_t	 cur;		/* view position */
	uint32_t	 uid;
	/* store index, looked up again after every pause: a sync moves
	 * it */
	uint32_t	 idx;
	bool		 vanished;	/* expunged meanwhile */
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

static int
imap_fetch_small(struct imap_session *s, struct imap_fetch *fc,
    bool seen_changed, struct buf *b, const char **error_r)
{
	const struct imap_cmd_fetch *f = fc->f;
	const struct store_msg *m = store_mailbox_msg(s->sel->mb, fc->idx);
	const struct mime_part *tree = NULL;
	bool first = true;

#define SEP() do { \
	if (!first) \
		buf_append_char(b, ' '); \
	first = false; \
} while (0)
	if ((f->items & IMAP_FETCH_UID) != 0) {
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
	if ((f->items & IMAP_FETCH_ENVELOPE) != 0) {
		SEP();
		buf_append_str(b, "ENVELOPE ");
		if (imap_fetch_rendered(s, fc, STORE_CACHE_ENVELOPE, &tree, b,
		    error_r) < 0)
			return -1;
	}
	if ((f->items & IMAP_FETCH_BODY) != 0) {
		SEP();
		buf_append_str(b, "BODY ");
		if (imap_fetch_rendered(s, fc, STORE_CACHE_BODY, &tree, b,
		    error_r) < 0)
			return -1;
	}
	if ((f->items & IMAP_FETCH_BODYSTRUCTURE) != 0) {
		SEP();
		buf_append_str(b, "BODYSTRUCTURE ");
		if (imap_fetch_rendered(s, fc, STORE_CACHE_BODYSTRUCTURE,
		    &tree, b, error_r) < 0)
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

	for (;;) {
		if (fc->i >= fc->n)
			return 0;
		fc->cur = fc->pos[fc->i++];
		idx = imap_view_index(s, fc->cur);
		if (idx >= 0)
			break;
		/* Expunged by someone else; not reported yet. */
		fc->any_gone = true;
	}
	fc->idx = (uint32_t)idx;
	fc->uid = s->view[fc->cur].uid;
	fc->vanished = false;
	if (fc->f->sets_seen && !s->readonly &&
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
		buf_free(&b);
		log_error("imap(%s): FETCH of message %u: %s", s->log_user,
		    s->view[fc->cur].uid, error);
		fc->any_gone = true;
		return 1;	/* skip it; the others may be fine */
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

		if (idx < 0) {
			fc->vanished = true;
			fc->any_gone = true;
		} else
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
			fc->any_gone = true;
		}
		imap_write(s, b.data, b.len);
		buf_free(&b);
	}
	if (fc->any_gone)
		imap_tagged(s, "NO", "[EXPUNGEISSUED] Some of the requested "
		    "messages no longer exist.");
	else
		imap_tagged(s, "OK", "Fetch completed.");
	return 1;
}

void
imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_fetch *f = &cmd->u.fetch;
	struct imap_fetch *fc;
	const char *error;

	if (f->has_changedsince || (f->items & (IMAP_FETCH_MODSEQ |
	    IMAP_FETCH_EMAILID | IMAP_FETCH_THREADID |
	    IMAP_FETCH_SAVEDATE)) != 0) {
		imap_tagged(s, "BAD", "FETCH item not supported.");
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
	imap_session_continue(s, imap_fetch_cont, fc, imap_fetch_free);
}
