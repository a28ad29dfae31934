/*
 * store_cache_fill: computing the cache record of one message
 * (store.h, enum store_cache_field) from its bytes as clients see them,
 * in one pass: the bytes go to the MIME parser of common/mime (the same
 * parse and rendering an uncached FETCH does, so the strings are
 * byte-identical), and the header block is kept, up to
 * STORE_CACHE_MAX_HEADER and read in the chunks IMAP SEARCH reads, so the
 * header-derived values are exactly what SEARCH would compute itself.
 *
 * Also here: the RFC 5256 §2.1 base subject.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mime.h"
#include "str.h"
#include "store_private.h"
#include "xmalloc.h"

/* ---- RFC 5256 base subject ---- */

static bool
store_subj_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP: its length at s, or 0. */
static size_t
store_subj_blob(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] != '[')
		return 0;
	for (i = 1; i < len && s[i] != '[' && s[i] != ']'; i++)
		;
	if (i == len || s[i] != ']')
		return 0;
	for (i++; i < len && store_subj_wsp(s[i]); i++)
		;
	return i;
}

/* subj-leader = (*subj-blob subj-refwd) / WSP, where subj-refwd =
 * ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" (case-insensitive). */
static size_t
store_subj_leader(const char *s, size_t len)
{
	size_t i = 0, b;

	if (len > 0 && store_subj_wsp(s[0]))
		return 1;
	while ((b = store_subj_blob(s + i, len - i)) > 0)
		i += b;
	if (len - i >= 2 && strncasecmp(s + i, "re", 2) == 0)
		i += 2;
	else if (len - i >= 2 && strncasecmp(s + i, "fw", 2) == 0) {
		i += 2;
		/* "fwd" rather than "fw" followed by 'd', which could only
		 * fail (a 'd' is neither WSP, blob nor ':'). */
		if (i < len && (s[i] == 'd' || s[i] == 'D'))
			i++;
	} else
		return 0;
	while (i < len && store_subj_wsp(s[i]))
		i++;
	i += store_subj_blob(s + i, len - i);
	return i < len && s[i] == ':' ? i + 1 : 0;
}

void
store_subject_base(const char *s, size_t len, struct buf *out)
{
	char *t = xmalloc(len + 1);
	size_t n = 0, i, start, end;
	bool changed;

	/* (1) (decoding was done by the caller) tabs and line breaks to
	 * a space, runs of spaces to one. */
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ' && n > 0 && t[n - 1] == ' ')
			continue;
		t[n++] = c;
	}
	start = 0;
	end = n;
	for (;;) {
		/* (2) subj-trailer = "(fwd)" / WSP, from the end. */
		for (;;) {
			if (end > start && store_subj_wsp(t[end - 1]))
				end--;
			else if (end - start >= 5 &&
			    strncasecmp(t + end - 5, "(fwd)", 5) == 0)
				end -= 5;
			else
				break;
		}
		/* (3)-(5) leaders, and a blob that is not all there is. */
		do {
			size_t l;

			changed = false;
			while ((l = store_subj_leader(t + start,
			    end - start)) > 0) {
				start += l;
				changed = true;
			}
			l = store_subj_blob(t + start, end - start);
			if (l > 0 && start + l < end) {
				start += l;
				changed = true;
			}
		} while (changed);
		/* (6) "[fwd:" ... "]" around it all: unwrap, again. */
		if (end - start >= 6 &&
		    strncasecmp(t + start, "[fwd:", 5) == 0 &&
		    t[end - 1] == ']') {
			start += 5;
			end--;
			continue;
		}
		break;
	}
	(void)buf_append(out, t + start, end - start);
	free(t);
}

/* ---- one message ---- */

struct store_fill {
	struct buf	 v[STORE_CACHE_FIELD_COUNT];
	bool		 ok[STORE_CACHE_FIELD_COUNT];
};

static void
store_fill_num(struct store_fill *f, enum store_cache_field id, int64_t v)
{
	unsigned char b[8];

	store_le64_put(b, (uint64_t)v);
	buf_append(&f->v[id], b, sizeof(b));
	f->ok[id] = true;
}

/* Every value of name, RFC 2047-decoded, joined by a space (what IMAP
 * SEARCH matches FROM, TO, CC, BCC, SUBJECT against). */
static void
store_fill_search(struct store_fill *f, enum store_cache_field id,
    const struct buf *hdr, const char *name)
{
	char **vals;
	size_t n, i;
	bool ok = true;

	n = mime_header_get_all(hdr->data, hdr->len, name, &vals);
	for (i = 0; i < n && ok; i++) {
		if (i > 0 && buf_append_char(&f->v[id], ' ') < 0)
			ok = false;
		else if (mime_decode_words(vals[i], strlen(vals[i]),
		    &f->v[id]) < 0)
			ok = false;
	}
	strv_free(&vals);
	f->ok[id] = ok;
}

/* The unfolded value of the first occurrence of name ("" if none). */
static void
store_fill_raw(struct store_fill *f, enum store_cache_field id,
    const struct buf *hdr, const char *name)
{
	f->ok[id] = mime_header_get(hdr->data, hdr->len, name, 0,
	    &f->v[id]) >= 0;
}

/* RFC 5256 SORT FROM/TO/CC and RFC 5957 DISPLAYFROM/DISPLAYTO of the
 * first address of an envelope field. */
static void
store_fill_addr(struct store_fill *f, const char *value,
    enum store_cache_field mbox_id, enum store_cache_field disp_id)
{
	struct mime_address *list = NULL;
	size_t n = value != NULL ? mime_address_parse(value, strlen(value),
	    &list) : 0;
	const struct mime_address *a = n > 0 ? &list[0] : NULL;
	struct buf *d = disp_id != 0 ? &f->v[disp_id] : NULL;
	bool ok = true;

	if (a != NULL && a->mailbox != NULL)
		ok = buf_append_str(&f->v[mbox_id], a->mailbox) == 0;
	f->ok[mbox_id] = ok;
	if (d != NULL) {
		ok = true;
		if (a != NULL && a->name != NULL)
			ok = mime_decode_words(a->name, strlen(a->name),
			    d) == 0;
		if (ok && d->len == 0 && a != NULL && a->mailbox != NULL) {
			ok = buf_append_str(d, a->mailbox) == 0;
			if (ok && a->host != NULL)
				ok = buf_printf(d, "@%s", a->host) == 0;
		}
		f->ok[disp_id] = ok;
	}
	mime_addresses_free(&list, n);
}

int
store_cache_compute(struct store_mailbox *mb, uint32_t idx, struct buf *rec,
    const char **error_r)
{
	const struct store_msg *m = store_mailbox_msg(mb, idx);
	struct store_cache_field_val vals[STORE_CACHE_FIELD_COUNT];
	const struct mime_envelope *env;
	struct store_msg_stream *st;
	struct mime_parser *p;
	struct mime_part *tree;
	struct store_fill f;
	struct buf hdr, subj;
	char *chunk;
	bool hdr_done = false;
	size_t i, n;
	ssize_t r;

	if (store_msg_open(mb, idx, &st, error_r) < 0)
		return -1;
	chunk = xmalloc(STORE_CACHE_READ_CHUNK);
	buf_init(&hdr, 0);
	p = mime_parser_new();
	while ((r = store_msg_read(st, chunk, STORE_CACHE_READ_CHUNK)) > 0) {
		mime_parser_feed(p, chunk, (size_t)r);
		/* The header block as IMAP SEARCH reads it: through the
		 * chunk where it passes the bound, cut after its blank
		 * line. */
		if (!hdr_done && hdr.len < STORE_CACHE_MAX_HEADER) {
			size_t from = hdr.len > 3 ? hdr.len - 3 : 0;
			char *end;

			buf_append(&hdr, chunk, (size_t)r);
			end = memmem(hdr.data + from, hdr.len - from,
			    "\r\n\r\n", 4);
			if (end != NULL) {
				hdr.len = (size_t)(end - hdr.data) + 4;
				hdr_done = true;
			}
		}
	}
	store_msg_close(&st);
	free(chunk);
	if (r < 0) {
		mime_parser_free(&p);
		buf_free(&hdr);
		*error_r = store_error(&mb->error, "reading message %u "
		    "failed", m->uid);
		return -1;
	}
	tree = mime_parser_finish(&p);

	for (i = 0; i < STORE_CACHE_FIELD_COUNT; i++) {
		buf_init(&f.v[i], STORE_CACHE_MAX_FIELD);
		f.ok[i] = false;
	}
	f.ok[STORE_CACHE_ENVELOPE] = mime_render_envelope(tree,
	    &f.v[STORE_CACHE_ENVELOPE]) == 0;
	f.ok[STORE_CACHE_BODYSTRUCTURE] = mime_render_bodystructure(tree,
	    true, &f.v[STORE_CACHE_BODYSTRUCTURE]) == 0;
	f.ok[STORE_CACHE_BODY] = mime_render_bodystructure(tree, false,
	    &f.v[STORE_CACHE_BODY]) == 0;
	store_fill_num(&f, STORE_CACHE_HEADER_SIZE, (int64_t)tree->header.vlen);
	store_fill_num(&f, STORE_CACHE_BODY_SIZE, (int64_t)tree->body.vlen);
	store_fill_num(&f, STORE_CACHE_BODY_LINES, (int64_t)tree->lines);

	/* Sort and thread keys (RFC 5256, RFC 5957). */
	env = tree->envelope;
	store_fill_addr(&f, env != NULL ? env->from : NULL,
	    STORE_CACHE_FROM_MAILBOX, STORE_CACHE_FROM_DISPLAY);
	store_fill_addr(&f, env != NULL ? env->to : NULL,
	    STORE_CACHE_TO_MAILBOX, STORE_CACHE_TO_DISPLAY);
	store_fill_addr(&f, env != NULL ? env->cc : NULL,
	    STORE_CACHE_CC_MAILBOX, 0);
	store_fill_raw(&f, STORE_CACHE_MESSAGE_ID, &hdr, "Message-ID");
	store_fill_raw(&f, STORE_CACHE_IN_REPLY_TO, &hdr, "In-Reply-To");
	store_fill_raw(&f, STORE_CACHE_REFERENCES, &hdr, "References");
	buf_init(&subj, STORE_CACHE_MAX_FIELD);
	if (mime_header_get(hdr.data, hdr.len, "Subject", 0, &subj) >= 0) {
		struct buf dec;

		buf_init(&dec, STORE_CACHE_MAX_FIELD);
		if (mime_decode_words(subj.data != NULL ? subj.data : "",
		    subj.len, &dec) == 0) {
			store_subject_base(dec.data != NULL ? dec.data : "",
			    dec.len, &f.v[STORE_CACHE_SUBJECT_BASE]);
			f.ok[STORE_CACHE_SUBJECT_BASE] = true;
		}
		buf_free(&dec);
	}
	buf_free(&subj);
	{
		struct buf date;
		time_t t;
		int tz;

		buf_init(&date, 0);
		if (mime_header_get(hdr.data, hdr.len, "Date", 0,
		    &date) == 1 && mime_date_parse(date.data, date.len, &t,
		    &tz) == 0) {
			store_fill_num(&f, STORE_CACHE_SENT_DATE, (int64_t)t);
			store_fill_num(&f, STORE_CACHE_SENT_TZ, tz);
		} else {
			store_fill_num(&f, STORE_CACHE_SENT_DATE,
			    STORE_CACHE_NO_DATE);
			store_fill_num(&f, STORE_CACHE_SENT_TZ, 0);
		}
		buf_free(&date);
	}

	/* What SEARCH matches header keys against (RFC 3501 §6.4.4). */
	store_fill_search(&f, STORE_CACHE_SEARCH_FROM, &hdr, "From");
	store_fill_search(&f, STORE_CACHE_SEARCH_TO, &hdr, "To");
	store_fill_search(&f, STORE_CACHE_SEARCH_CC, &hdr, "Cc");
	store_fill_search(&f, STORE_CACHE_SEARCH_BCC, &hdr, "Bcc");
	store_fill_search(&f, STORE_CACHE_SEARCH_SUBJECT, &hdr, "Subject");

	n = 0;
	for (i = 1; i < STORE_CACHE_FIELD_COUNT; i++) {
		if (!f.ok[i])
			continue;
		vals[n].id = (unsigned int)i;
		vals[n].data = f.v[i].data;
		vals[n].len = f.v[i].len;
		n++;
	}
	store_cache_frame(rec, m->uid, m->vsize, STORE_CACHE_FIELDSET, vals,
	    n);
	for (i = 0; i < STORE_CACHE_FIELD_COUNT; i++)
		buf_free(&f.v[i]);
	buf_free(&hdr);
	mime_part_free(&tree);
	return 0;
}
