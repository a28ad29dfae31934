/*
 * fuzz_mime: the MIME parser and everything built on it (common/mime.c,
 * mime_header.c, mime_decode.c).  Byte 0 is a chunk size - 1, the rest
 * is a message.  The message is parsed whole and in chunks of that size;
 * both trees must render the same BODYSTRUCTURE, BODY and ENVELOPE, and
 * every rendering must be one well-formed IMAP list (balanced
 * parentheses, valid quoted strings and literals).  Every part's ranges
 * must lie inside the input, in order, with virtual sizes between the
 * raw size and twice it.  Then each part is resolved by its section
 * number, its header block subset with HEADER.FIELDS[.NOT], its body
 * decoded for SEARCH (output must be UTF-8) and searched, its envelope
 * fields decoded and its date parsed.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "mime.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_MIME_INPUT	(256 * 1024)

static void __attribute__((noreturn))
fuzz_mime_fail(const char *what, const char *detail)
{
	fprintf(stderr, "mime: %s%s%s\n", what, detail != NULL ? ": " : "",
	    detail != NULL ? detail : "");
	abort();
}

/* One IMAP parenthesized list of NIL, numbers, strings and lists. */
static bool
fuzz_imap_list_ok(const char *s, size_t len)
{
	size_t i = 0;
	int depth = 0;
	bool need_sep = false;

	if (len == 0 || s[0] != '(')
		return false;
	while (i < len) {
		char c = s[i];

		if (c == ')') {
			if (--depth < 0)
				return false;
			i++;
			need_sep = true;
			if (depth == 0)
				return i == len;
			continue;
		}
		if (c == ' ') {
			if (!need_sep)
				return false;
			need_sep = false;
			i++;
			continue;
		}
		if (need_sep && !(c == '(' && s[i - 1] == ')'))
			return false;
		if (c == '(') {
			depth++;
			i++;
			need_sep = false;
			continue;
		}
		if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				unsigned char q = (unsigned char)s[i];

				if (q == '\\') {
					i++;
					if (i >= len || (s[i] != '"' &&
					    s[i] != '\\'))
						return false;
				} else if (q == '\r' || q == '\n' || q == 0 ||
				    q >= 0x80) {
					return false;
				}
			}
			if (i >= len)
				return false;
			i++;
		} else if (c == '{') {
			size_t n = 0, digits = 0;

			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
				if (++digits > 9)
					return false;
				n = n * 10 + (size_t)(s[i] - '0');
			}
			if (digits == 0 || i + 3 > len || s[i] != '}' ||
			    s[i + 1] != '\r' || s[i + 2] != '\n' ||
			    len - (i + 3) < n ||
			    memchr(s + i + 3, '\0', n) != NULL)
				return false;
			i += 3 + n;
		} else if (c >= '0' && c <= '9') {
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
		} else if (len - i >= 3 && memcmp(s + i, "NIL", 3) == 0) {
			i += 3;
		} else {
			return false;
		}
		need_sep = true;
	}
	return false;
}

/* BODYSTRUCTURE, BODY and ENVELOPE of root, checked, in one string. */
static char *
fuzz_mime_render(const struct mime_part *root)
{
	struct buf all, one;
	int k;

	buf_init(&all, 0);
	buf_init(&one, 0);
	for (k = 0; k < 3; k++) {
		int ret;

		buf_reset(&one);
		ret = k < 2 ? mime_render_bodystructure(root, k == 0, &one) :
		    mime_render_envelope(root, &one);
		if (ret != 0)
			fuzz_mime_fail("rendering failed", NULL);
		if (!fuzz_imap_list_ok(one.data, one.len))
			fuzz_mime_fail("not an IMAP list", buf_cstr(&one));
		buf_append(&all, one.data, one.len);
		buf_append_char(&all, '\n');
	}
	buf_free(&one);
	return buf_steal(&all);
}

static void
fuzz_mime_check_range(const struct mime_range *r, size_t size)
{
	if (r->off > size || r->len > size - r->off)
		fuzz_mime_fail("range outside the input", NULL);
	if (r->vlen < r->len || r->vlen > 2 * r->len || r->voff < r->off ||
	    r->voff > 2 * r->off)
		fuzz_mime_fail("virtual range out of bounds", NULL);
}

static void
fuzz_mime_utf8(const struct buf *b, const char *what)
{
	if (b->len > 0 && !str_utf8_valid(b->data, b->len))
		fuzz_mime_fail("not UTF-8", what);
}

/* Decode and search what SEARCH would look at in part. */
static void
fuzz_mime_part(const struct mime_part *part, const uint8_t *msg,
    size_t size, size_t chunk)
{
	static const char *const names[] = { "subject", "content-type",
	    "FROM" };
	const struct mime_envelope *e = part->envelope;
	struct mime_body_decoder *d;
	struct mime_search *s;
	const char *hdr;
	struct buf out;
	size_t i;
	time_t t;
	int tz;

	fuzz_mime_check_range(&part->header, size);
	fuzz_mime_check_range(&part->body, size);
	if (part->body.off != part->header.off + part->header.len ||
	    part->body.voff != part->header.voff + part->header.vlen)
		fuzz_mime_fail("body does not follow header", NULL);
	if (part->lines > part->body.len)
		fuzz_mime_fail("more lines than bytes", NULL);
	if (part->parent != NULL && (part->header.off <
	    part->parent->body.off || part->body.off + part->body.len >
	    part->parent->body.off + part->parent->body.len))
		fuzz_mime_fail("part outside its parent", NULL);
	if (part->depth > MAX_MIME_DEPTH)
		fuzz_mime_fail("too deep", NULL);

	buf_init(&out, 0);
	hdr = (const char *)msg + part->header.off;
	(void)mime_header_fields(hdr, part->header.len, names, 3, false,
	    &out);
	(void)mime_header_fields(hdr, part->header.len, names, 3, true,
	    &out);
	buf_reset(&out);
	if (mime_header_get(hdr, part->header.len, "subject", 0, &out) == 1) {
		buf_reset(&out);
		(void)mime_header_get(hdr, part->header.len, "subject", 0,
		    &out);
	}
	{
		char **v;

		(void)mime_header_get_all(hdr, part->header.len, "received",
		    &v);
		strv_free(&v);
	}

	buf_reset(&out);
	d = mime_body_decoder_new(part->encoding, mime_part_charset(part));
	for (i = 0; i < part->body.len; i += chunk) {
		size_t n = part->body.len - i < chunk ? part->body.len - i :
		    chunk;

		(void)mime_body_decoder_feed(d, msg + part->body.off + i, n,
		    &out);
	}
	(void)mime_body_decoder_finish(d, &out);
	mime_body_decoder_free(&d);
	fuzz_mime_utf8(&out, "body");

	/* Search the decoded body, fed in two halves, for its own first
	 * characters: they must be found. */
	if (out.len > 0) {
		size_t nlen = out.len < 8 ? out.len : 8;

		while (nlen < out.len && (out.data[nlen] & 0xC0) == 0x80)
			nlen--;
		s = mime_search_new(out.data, nlen);
		(void)mime_search_feed(s, out.data, out.len / 2);
		if (!mime_search_feed(s, out.data + out.len / 2,
		    out.len - out.len / 2))
			fuzz_mime_fail("needle not found in its text", NULL);
		mime_search_free(&s);
		if (!mime_search_contains(out.data, out.len, out.data, nlen))
			fuzz_mime_fail("needle not found", NULL);
	}

	buf_reset(&out);
	(void)mime_part_filename(part, &out);
	fuzz_mime_utf8(&out, "filename");
	if (part->description != NULL) {
		buf_reset(&out);
		(void)mime_decode_words(part->description,
		    strlen(part->description), &out);
		fuzz_mime_utf8(&out, "description");
	}
	if (e != NULL) {
		if (e->subject != NULL) {
			buf_reset(&out);
			(void)mime_decode_words(e->subject, strlen(e->subject),
			    &out);
			fuzz_mime_utf8(&out, "subject");
			buf_reset(&out);
			(void)mime_fold_utf8(e->subject, strlen(e->subject),
			    &out);
			fuzz_mime_utf8(&out, "folded subject");
		}
		if (e->date != NULL)
			(void)mime_date_parse(e->date, strlen(e->date), &t,
			    &tz);
	}
	buf_free(&out);
}

/* Walk the tree with section numbers, checking each resolves to it. */
static void
fuzz_mime_walk(const struct mime_part *root, const uint8_t *msg,
    size_t size, size_t chunk)
{
	const struct mime_part *part = root;
	struct mime_section sec;
	char spec[MAX_MIME_DEPTH * 12 + 32];

	while (part != NULL) {
		fuzz_mime_part(part, msg, size, chunk);
		if (part->children != NULL) {
			part = part->children;
			continue;
		}
		while (part != NULL && part->next == NULL)
			part = part->parent;
		if (part != NULL)
			part = part->next;
	}
	/* Sections: every child of the top multipart, and keywords. */
	if ((root->flags & MIME_PART_MULTIPART) != 0) {
		const struct mime_part *c;
		unsigned int n = 1;

		for (c = root->children; c != NULL; c = c->next, n++) {
			snprintf(spec, sizeof(spec), "%u", n);
			if (mime_section_find(root, spec, &sec) != 1 ||
			    sec.part != c)
				fuzz_mime_fail("section number", spec);
			snprintf(spec, sizeof(spec), "%u.MIME", n);
			if (mime_section_find(root, spec, &sec) != 1)
				fuzz_mime_fail("section MIME", spec);
			snprintf(spec, sizeof(spec), "%u.1.HEADER", n);
			(void)mime_section_find(root, spec, &sec);
		}
	} else if (mime_section_find(root, "1", &sec) != 1 ||
	    sec.part != root) {
		fuzz_mime_fail("section 1", NULL);
	}
	if (mime_section_find(root, "", &sec) != 1 || sec.range.off != 0 ||
	    sec.range.len != size)
		fuzz_mime_fail("section \"\" is not the whole message", NULL);
	if (mime_section_find(root, "HEADER", &sec) != 1 ||
	    mime_section_find(root, "TEXT", &sec) != 1)
		fuzz_mime_fail("HEADER/TEXT", NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_parser *p;
	struct mime_part *whole, *chunked;
	char *r1, *r2, *spec;
	size_t chunk, i;
	struct mime_section sec;

	if (size < 1 || size > MAX_FUZZ_MIME_INPUT)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++;
	size--;

	whole = mime_parse(data, size);
	p = mime_parser_new();
	for (i = 0; i < size; i += chunk)
		mime_parser_feed(p, data + i, size - i < chunk ? size - i :
		    chunk);
	chunked = mime_parser_finish(&p);

	r1 = fuzz_mime_render(whole);
	r2 = fuzz_mime_render(chunked);
	if (strcmp(r1, r2) != 0)
		fuzz_mime_fail("chunked parse differs", r2);
	fuzz_mime_walk(whole, data, size, chunk);

	/* The input's first line as a section-spec. */
	spec = fuzz_cstring(data, size < 64 ? size : 64);
	spec[strcspn(spec, "\r\n")] = '\0';
	(void)mime_section_find(whole, spec, &sec);
	free(spec);

	free(r1);
	free(r2);
	mime_part_free(&whole);
	mime_part_free(&chunked);
	return 0;
}
