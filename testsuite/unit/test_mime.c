/*
 * Unit tests for mime: the streaming parser (offsets, line counts, limits,
 * broken input), BODYSTRUCTURE and ENVELOPE strings (RFC 3501 §7.4.2; the
 * expected strings are written out from the RFC's formal syntax, two of
 * them are the RFC's own examples), BODY[section] lookup, header blocks,
 * RFC 2231 parameters, addresses, dates, and the SEARCH decoders.
 *
 * Every message is parsed whole, one byte at a time and in chunks of
 * seven bytes; the three trees must render the same.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "mime.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/*
 * Whether s is one well-formed IMAP parenthesized list of NIL, numbers,
 * quoted strings and literals (RFC 3501 §9), parentheses balanced.
 */
static bool
imap_list_ok(const char *s, size_t len)
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
		/* Items follow '(' or ' ' directly; "((" and ")(" too. */
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
				if (s[i] == '\\') {
					i++;
					if (i >= len || (s[i] != '"' &&
					    s[i] != '\\'))
						return false;
				} else if (s[i] == '\r' || s[i] == '\n' ||
				    (unsigned char)s[i] >= 0x80) {
					return false;
				}
			}
			if (i >= len)
				return false;
			i++;
		} else if (c == '{') {
			size_t n = 0;

			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
				n = n * 10 + (size_t)(s[i] - '0');
			if (i + 3 > len || s[i] != '}' || s[i + 1] != '\r' ||
			    s[i + 2] != '\n' || len - (i + 3) < n)
				return false;
			if (memchr(s + i + 3, '\0', n) != NULL)
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

/* Parse with chunks of size step (0: whole). */
static struct mime_part *
parse_chunked(const char *msg, size_t len, size_t step)
{
	struct mime_parser *p;
	size_t i;

	if (step == 0)
		return mime_parse(msg, len);
	p = mime_parser_new();
	for (i = 0; i < len; i += step)
		mime_parser_feed(p, msg + i, len - i < step ? len - i : step);
	return mime_parser_finish(&p);
}

static char *
render_bs(const struct mime_part *root, bool ext)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(mime_render_bodystructure(root, ext, &b) == 0);
	test_assert(imap_list_ok(b.data, b.len));
	return buf_steal(&b);
}

static char *
render_env(const struct mime_part *msg)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(mime_render_envelope(msg, &b) == 0);
	test_assert(imap_list_ok(b.data, b.len));
	return buf_steal(&b);
}

/* Every part lies inside the message and inside its parent, its body
 * right after its header, virtual sizes between raw and twice raw. */
static bool
tree_ok(const struct mime_part *p, size_t size)
{
	const struct mime_part *c;
	const struct mime_range *h = &p->header, *b = &p->body;

	if (h->off + h->len != b->off || h->voff + h->vlen != b->voff ||
	    b->off + b->len > size || h->vlen < h->len ||
	    h->vlen > 2 * h->len || b->vlen < b->len || b->vlen > 2 * b->len ||
	    p->lines > b->len)
		return false;
	if (p->parent != NULL && (h->off < p->parent->body.off ||
	    b->off + b->len > p->parent->body.off + p->parent->body.len))
		return false;
	for (c = p->children; c != NULL; c = c->next) {
		if (!tree_ok(c, size))
			return false;
	}
	return true;
}

/*
 * Parse msg whole, byte by byte and in 7-byte chunks; check the three
 * give the same BODYSTRUCTURE, BODY and ENVELOPE, and that they are the
 * expected ones (NULL: not checked).  Returns the tree of the whole
 * parse.
 */
static struct mime_part *
check_msg(const char *msg, const char *bs, const char *body, const char *env)
{
	static const size_t steps[] = { 0, 1, 7 };
	struct mime_part *root = NULL;
	char *first[3] = { NULL, NULL, NULL };
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct mime_part *t = parse_chunked(msg, strlen(msg), steps[i]);
		char *got[3];
		size_t k;

		test_assert(tree_ok(t, strlen(msg)));
		got[0] = render_bs(t, true);
		got[1] = render_bs(t, false);
		got[2] = render_env(t);
		for (k = 0; k < 3; k++) {
			if (i == 0)
				first[k] = got[k];
			else {
				test_assert_streq(got[k], first[k]);
				free(got[k]);
			}
		}
		if (i == 0)
			root = t;
		else
			mime_part_free(&t);
	}
	if (bs != NULL)
		test_assert_streq(first[0], bs);
	if (body != NULL)
		test_assert_streq(first[1], body);
	if (env != NULL)
		test_assert_streq(first[2], env);
	for (i = 0; i < 3; i++)
		free(first[i]);
	return root;
}

static void
check_range(const struct mime_part *root, const char *spec, int want,
    uint64_t off, uint64_t len, uint64_t voff, uint64_t vlen)
{
	struct mime_section sec;
	int ret = mime_section_find(root, spec, &sec);

	if (ret != want)
		printf("# section \"%s\": got %d, want %d\n", spec, ret, want);
	test_assert(ret == want);
	if (ret != 1 || want != 1)
		return;
	if (sec.range.off != off || sec.range.len != len ||
	    sec.range.voff != voff || sec.range.vlen != vlen)
		printf("# section \"%s\": got %llu+%llu v%llu+%llu\n", spec,
		    (unsigned long long)sec.range.off,
		    (unsigned long long)sec.range.len,
		    (unsigned long long)sec.range.voff,
		    (unsigned long long)sec.range.vlen);
	test_assert(sec.range.off == off && sec.range.len == len &&
	    sec.range.voff == voff && sec.range.vlen == vlen);
}

/* LF-only copy of a CRLF message. */
static char *
to_lf(const char *s)
{
	struct buf b;

	buf_init(&b, 0);
	for (; *s != '\0'; s++) {
		if (s[0] == '\r' && s[1] == '\n')
			continue;
		buf_append_char(&b, *s);
	}
	return buf_steal(&b);
}

static size_t
count_parts(const struct mime_part *p)
{
	const struct mime_part *c;
	size_t n = 1;

	for (c = p->children; c != NULL; c = c->next)
		n += count_parts(c);
	return n;
}

static unsigned int
max_depth(const struct mime_part *p)
{
	const struct mime_part *c;
	unsigned int d = p->depth;

	for (c = p->children; c != NULL; c = c->next) {
		unsigned int cd = max_depth(c);

		if (cd > d)
			d = cd;
	}
	return d;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

#define SIMPLE \
	"From: Alice <alice@example.com>\r\n" \
	"To: bob@example.org\r\n" \
	"Subject: Hello\r\n" \
	"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n" \
	"Message-ID: <B27397-0100000@cac.washington.edu>\r\n" \
	"\r\n" \
	"Hi Bob,\r\n" \
	"how are you?\r\n"

#define ALICE "((\"Alice\" NIL \"alice\" \"example.com\"))"

static void
test_simple(void)
{
	struct mime_part *root;
	char *lf;

	test_begin("simple text message");
	/* Body: "Hi Bob,\r\n" 9 + "how are you?\r\n" 14 = 23 octets, 2
	 * lines; no Content-Type: text/plain; charset=us-ascii, 7bit. */
	root = check_msg(SIMPLE,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "23 2 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "23 2)",
	    "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" " ALICE " " ALICE
	    " " ALICE " ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL "
	    "\"<B27397-0100000@cac.washington.edu>\")");
	/* Header: 33 + 21 + 16 + 38 + 49 + 2 = 159. */
	test_assert(root->header.off == 0 && root->header.len == 159);
	test_assert(root->body.off == 159 && root->body.len == 23);
	test_assert(root->lines == 2);
	test_assert((root->flags & MIME_PART_EOH) != 0);
	test_assert((root->flags & MIME_PART_TEXT) != 0);
	test_assert(root->children == NULL && root->envelope != NULL);
	check_range(root, "", 1, 0, 182, 0, 182);
	check_range(root, "HEADER", 1, 0, 159, 0, 159);
	check_range(root, "header.fields", 1, 0, 159, 0, 159);
	check_range(root, "TEXT", 1, 159, 23, 159, 23);
	check_range(root, "1", 1, 159, 23, 159, 23);
	check_range(root, "1.MIME", 1, 0, 159, 0, 159);
	check_range(root, "2", 0, 0, 0, 0, 0);
	check_range(root, "1.1", 0, 0, 0, 0, 0);
	check_range(root, "1.HEADER", 0, 0, 0, 0, 0);
	check_range(root, "MIME", -1, 0, 0, 0, 0);
	check_range(root, "0", -1, 0, 0, 0, 0);
	check_range(root, "1.", -1, 0, 0, 0, 0);
	check_range(root, "1x", -1, 0, 0, 0, 0);
	check_range(root, "BODY", -1, 0, 0, 0, 0);
	mime_part_free(&root);
	test_assert(root == NULL);
	test_end();

	test_begin("LF-only message: virtual sizes count CRLF");
	lf = to_lf(SIMPLE);
	root = check_msg(lf,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "23 2 NIL NIL NIL NIL)", NULL, NULL);
	/* 6 header lines, 2 body lines, one byte less each raw. */
	test_assert(root->header.len == 153 && root->header.vlen == 159);
	test_assert(root->body.off == 153 && root->body.voff == 159);
	test_assert(root->body.len == 21 && root->body.vlen == 23);
	check_range(root, "", 1, 0, 174, 0, 182);
	check_range(root, "TEXT", 1, 153, 21, 159, 23);
	mime_part_free(&root);
	free(lf);
	test_end();
}

/* A body of n lines (CRLF) of total octets, all 'A's. */
static void
append_lines(struct buf *b, unsigned int n, size_t total)
{
	size_t each = total / n, i;
	unsigned int l;

	for (l = 0; l < n; l++) {
		size_t w = (l == n - 1 ? total - each * (n - 1) : each) - 2;

		for (i = 0; i < w; i++)
			buf_append_char(b, 'A');
		buf_append_str(b, "\r\n");
	}
}

static void
test_rfc3501_examples(void)
{
	struct mime_part *root;
	struct buf m;
	char *s;

	/* RFC 3501 §7.4.2 BODYSTRUCTURE: "a simple text message of 48
	 * lines and 2279 octets". */
	test_begin("RFC 3501 example: simple text message");
	buf_init(&m, 0);
	buf_append_str(&m, "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
	    "Content-Transfer-Encoding: 7BIT\r\n\r\n");
	append_lines(&m, 48, 2279);
	root = mime_parse(m.data, m.len);
	s = render_bs(root, false);
	test_assert_streq(s, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") "
	    "NIL NIL \"7BIT\" 2279 48)");
	free(s);
	mime_part_free(&root);
	buf_free(&m);
	test_end();

	/* "a two part message consisting of a text and a BASE64-encoded
	 * text attachment". */
	test_begin("RFC 3501 example: text and base64 attachment");
	buf_init(&m, 0);
	buf_append_str(&m, "MIME-Version: 1.0\r\n"
	    "Content-Type: MULTIPART/MIXED; BOUNDARY=\"=_x\"\r\n\r\n"
	    "--=_x\r\n"
	    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
	    "Content-Transfer-Encoding: 7BIT\r\n\r\n");
	append_lines(&m, 23, 1152);
	/* The CRLF before a delimiter belongs to the delimiter. */
	buf_append_str(&m, "\r\n--=_x\r\n"
	    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
	    "Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
	    "Content-Description: Compiler diff\r\n"
	    "Content-Transfer-Encoding: BASE64\r\n\r\n");
	append_lines(&m, 73, 4554);
	buf_append_str(&m, "\r\n--=_x--\r\n");
	root = mime_parse(m.data, m.len);
	s = render_bs(root, false);
	test_assert_streq(s, "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") "
	    "NIL NIL \"7BIT\" 1152 23)(\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	    "\"US-ASCII\" \"NAME\" \"cc.diff\") "
	    "\"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" "
	    "\"BASE64\" 4554 73) \"MIXED\")");
	free(s);
	test_assert(root->children->encoding == MIME_ENC_7BIT);
	test_assert(root->children->next->encoding == MIME_ENC_BASE64);
	mime_part_free(&root);
	buf_free(&m);
	test_end();
}

static void
test_alternative(void)
{
	struct mime_part *root;

	test_begin("multipart/alternative, groups, encoded subject");
	root = check_msg(
	    "From: \"Doe, John\" <john.doe@example.com>\r\n"
	    "To: Mary Smith <mary@example.net>, jdoe@example.org\r\n"
	    "Cc: undisclosed-recipients:;\r\n"
	    "Subject: =?UTF-8?B?SGVsbG8gV29ybGQ=?=\r\n"
	    "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	    "Message-ID: <1234@local.machine.example>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative;\r\n"
	    "\tboundary=\"000000000000abcdef\"\r\n"
	    "\r\n"
	    "--000000000000abcdef\r\n"
	    "Content-Type: text/plain; charset=\"UTF-8\"\r\n"
	    "\r\n"
	    "Hello World\r\n"
	    "\r\n"
	    "--000000000000abcdef\r\n"
	    "Content-Type: text/html; charset=\"UTF-8\"\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "<div dir=3D\"ltr\">Hello World</div>\r\n"
	    "\r\n"
	    "--000000000000abcdef--\r\n",
	    "((\"text\" \"plain\" (\"charset\" \"UTF-8\") NIL NIL \"7bit\" "
	    "13 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"UTF-8\") "
	    "NIL NIL \"quoted-printable\" 36 1 NIL NIL NIL NIL) "
	    "\"alternative\" (\"boundary\" \"000000000000abcdef\") NIL NIL "
	    "NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"UTF-8\") NIL NIL \"7bit\" "
	    "13 1)(\"text\" \"html\" (\"charset\" \"UTF-8\") NIL NIL "
	    "\"quoted-printable\" 36 1) \"alternative\")",
	    "(\"Tue, 1 Jul 2003 10:52:37 +0200\" "
	    "\"=?UTF-8?B?SGVsbG8gV29ybGQ=?=\" "
	    "((\"Doe, John\" NIL \"john.doe\" \"example.com\")) "
	    "((\"Doe, John\" NIL \"john.doe\" \"example.com\")) "
	    "((\"Doe, John\" NIL \"john.doe\" \"example.com\")) "
	    "((\"Mary Smith\" NIL \"mary\" \"example.net\")"
	    "(NIL NIL \"jdoe\" \"example.org\")) "
	    "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
	    "NIL NIL \"<1234@local.machine.example>\")");
	test_assert((root->flags & MIME_PART_MULTIPART) != 0);
	test_assert(root->children->encoding == MIME_ENC_7BIT);
	test_assert(root->children->next->encoding == MIME_ENC_QP);
	test_assert(strcmp(mime_part_charset(root->children), "UTF-8") == 0);
	test_assert(root->children->envelope == NULL);
	/* SEARCH SUBJECT sees the decoded text. */
	{
		const char *subj = root->envelope->subject;
		struct buf b;

		buf_init(&b, 0);
		test_assert(mime_decode_words(subj, strlen(subj), &b) == 0);
		test_assert_streq(buf_cstr(&b), "Hello World");
		test_assert(mime_search_contains(b.data, b.len, "WORLD", 5));
		buf_free(&b);
	}
	mime_part_free(&root);
	test_end();
}

static void
test_attachment(void)
{
	struct mime_part *root, *att;
	struct buf b;

	test_begin("multipart/mixed with an RFC 2231 attachment");
	root = check_msg(
	    "From: a@example.com\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "\r\n"
	    "This is a multi-part message in MIME format.\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "See attached.\r\n"
	    "--b1\r\n"
	    "Content-Type: application/pdf;\r\n"
	    " name*=utf-8''na%C3%AFve.pdf\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename*0*=utf-8''na%C3%AF;\r\n"
	    " filename*1*=ve%20report;\r\n"
	    " filename*2=\".pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Language: en, de\r\n"
	    "Content-Location: http://example.com/r.pdf\r\n"
	    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
	    "\r\n"
	    "JVBERi0xLjQK\r\n"
	    "--b1--\r\n",
	    /* "See attached." has no line end of its own: 13 octets, 0
	     * lines. */
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" "
	    "\"flowed\") NIL NIL \"7bit\" 13 0 NIL NIL NIL NIL)"
	    "(\"application\" \"pdf\" (\"name*\" \"utf-8''na%C3%AFve.pdf\") "
	    "NIL NIL \"base64\" 12 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
	    "(\"attachment\" (\"filename*\" "
	    "\"utf-8''na%C3%AFve%20report.pdf\")) (\"en\" \"de\") "
	    "\"http://example.com/r.pdf\") \"mixed\" (\"boundary\" \"b1\") "
	    "NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" "
	    "\"flowed\") NIL NIL \"7bit\" 13 0)"
	    "(\"application\" \"pdf\" (\"name*\" \"utf-8''na%C3%AFve.pdf\") "
	    "NIL NIL \"base64\" 12) \"mixed\")",
	    "(NIL NIL ((NIL NIL \"a\" \"example.com\")) "
	    "((NIL NIL \"a\" \"example.com\")) "
	    "((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)");
	att = root->children->next;
	buf_init(&b, 0);
	test_assert(mime_part_filename(att, &b) == 1);
	test_assert_streq(buf_cstr(&b), "na\xc3\xafve report.pdf");
	buf_reset(&b);
	test_assert(mime_part_filename(root->children, &b) == 0);
	buf_free(&b);
	mime_part_free(&root);
	test_end();
}

/* LF-only, with a forwarded message; offsets worked out by hand. */
#define FORWARD \
	"From: carol@example.com\n" \
	"To: dave@example.com\n" \
	"Subject: Fwd: report\n" \
	"Date: Wed, 2 Jan 2019 08:00:00 +0000\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=outer\n" \
	"\n" \
	"--outer\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"Forwarded below.\n" \
	"\n" \
	"--outer\n" \
	"Content-Type: message/rfc822\n" \
	"Content-Disposition: inline\n" \
	"\n" \
	"From: Eve <eve@example.org>\n" \
	"Sender: list@example.org\n" \
	"To: Group: a@x.example, \"B\" <b@y.example>;\n" \
	"Subject: report\n" \
	"Message-ID: <r1@example.org>\n" \
	"In-Reply-To: <q@example.org>\n" \
	"Content-Type: text/plain; charset=iso-8859-1\n" \
	"Content-Transfer-Encoding: quoted-printable\n" \
	"\n" \
	"Caf=E9 ok\n" \
	"Bye\n" \
	"\n" \
	"--outer--\n"

#define CAROL "((NIL NIL \"carol\" \"example.com\"))"
#define EVE "((\"Eve\" NIL \"eve\" \"example.org\"))"
#define NESTED_ENV \
	"(NIL \"report\" " EVE " ((NIL NIL \"list\" \"example.org\")) " EVE \
	" ((NIL NIL \"Group\" NIL)(NIL NIL \"a\" \"x.example\")" \
	"(\"B\" NIL \"b\" \"y.example\")(NIL NIL NIL NIL)) NIL NIL " \
	"\"<q@example.org>\" \"<r1@example.org>\")"

static void
test_nested(void)
{
	struct mime_part *root, *msg;
	char *s;

	test_begin("nested message/rfc822, LF-only");
	root = check_msg(FORWARD,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "18 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "
	    "285 " NESTED_ENV " (\"text\" \"plain\" (\"charset\" "
	    "\"iso-8859-1\") NIL NIL \"quoted-printable\" 16 2 NIL NIL NIL NIL)"
	    " 11 NIL (\"inline\" NIL) NIL NIL) \"mixed\" (\"boundary\" "
	    "\"outer\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "18 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 285 "
	    NESTED_ENV " (\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL "
	    "NIL \"quoted-printable\" 16 2) 11) \"mixed\")",
	    "(\"Wed, 2 Jan 2019 08:00:00 +0000\" \"Fwd: report\" " CAROL " "
	    CAROL " " CAROL " ((NIL NIL \"dave\" \"example.com\")) NIL NIL NIL "
	    "NIL)");
	msg = root->children->next;
	test_assert((msg->flags & MIME_PART_MESSAGE) != 0);
	test_assert(msg->children != NULL && msg->children->next == NULL);
	test_assert(msg->children->depth == 2 && msg->depth == 1);
	s = render_env(msg->children);
	test_assert_streq(s, NESTED_ENV);
	free(s);

	check_range(root, "", 1, 0, 571, 0, 600);
	check_range(root, "HEADER", 1, 0, 168, 0, 175);
	check_range(root, "TEXT", 1, 168, 403, 175, 425);
	check_range(root, "1", 1, 202, 17, 212, 18);
	check_range(root, "1.MIME", 1, 176, 26, 184, 28);
	check_range(root, "2", 1, 286, 274, 302, 285);
	check_range(root, "2.MIME", 1, 228, 58, 241, 61);
	check_range(root, "2.HEADER", 1, 286, 260, 302, 269);
	check_range(root, "2.header.fields.not", 1, 286, 260, 302, 269);
	check_range(root, "2.TEXT", 1, 546, 14, 571, 16);
	/* The encapsulated message is not multipart: its part 1 is its
	 * body, and the MIME header of that is the message header. */
	check_range(root, "2.1", 1, 546, 14, 571, 16);
	check_range(root, "2.1.MIME", 1, 286, 260, 302, 269);
	check_range(root, "2.2", 0, 0, 0, 0, 0);
	check_range(root, "3", 0, 0, 0, 0, 0);
	check_range(root, "1.HEADER", 0, 0, 0, 0, 0);
	check_range(root, "1.TEXT", 0, 0, 0, 0, 0);
	check_range(root, "3.MIME", 0, 0, 0, 0, 0);
	check_range(root, "3.FOO", -1, 0, 0, 0, 0);
	mime_part_free(&root);
	test_end();
}

/* RFC 3501 §6.4.5's example of part numbers, as a message. */
static void
test_part_numbers(void)
{
	static const char msg[] =
	    "Subject: parts\r\n"
	    "Content-Type: MULTIPART/MIXED; boundary=x1\r\n\r\n"
	    "--x1\r\nContent-Type: TEXT/PLAIN\r\n\r\none\r\n"
	    "--x1\r\nContent-Type: APPLICATION/OCTET-STREAM\r\n\r\ntwo\r\n"
	    "--x1\r\nContent-Type: MESSAGE/RFC822\r\n\r\n"
	    "Subject: three\r\n"
	    "Content-Type: MULTIPART/MIXED; boundary=x3\r\n\r\n"
	    "--x3\r\nContent-Type: TEXT/PLAIN\r\n\r\n3.1\r\n"
	    "--x3\r\nContent-Type: APPLICATION/OCTET-STREAM\r\n\r\n3.2\r\n"
	    "--x3--\r\n"
	    "--x1\r\nContent-Type: MULTIPART/MIXED; boundary=x4\r\n\r\n"
	    "--x4\r\nContent-Type: IMAGE/GIF\r\n\r\nGIF\r\n"
	    "--x4\r\nContent-Type: MESSAGE/RFC822\r\n\r\n"
	    "Subject: four-two\r\n"
	    "Content-Type: MULTIPART/MIXED; boundary=x42\r\n\r\n"
	    "--x42\r\nContent-Type: TEXT/PLAIN\r\n\r\n4.2.1\r\n"
	    "--x42\r\nContent-Type: MULTIPART/ALTERNATIVE; boundary=x422\r\n"
	    "\r\n"
	    "--x422\r\nContent-Type: TEXT/PLAIN\r\n\r\n4.2.2.1\r\n"
	    "--x422\r\nContent-Type: TEXT/RICHTEXT\r\n\r\n4.2.2.2\r\n"
	    "--x422--\r\n"
	    "--x42--\r\n"
	    "--x4--\r\n"
	    "--x1--\r\n";
	static const struct {
		const char	*spec;
		const char	*text;	/* what the range holds */
	} cases[] = {
		{ "1", "one" },
		{ "2", "two" },
		{ "3.HEADER", "Subject: three\r\n"
		    "Content-Type: MULTIPART/MIXED; boundary=x3\r\n\r\n" },
		{ "3.1", "3.1" },
		{ "3.2", "3.2" },
		{ "4.1", "GIF" },
		{ "4.1.MIME", "Content-Type: IMAGE/GIF\r\n\r\n" },
		{ "4.2.HEADER", "Subject: four-two\r\n"
		    "Content-Type: MULTIPART/MIXED; boundary=x42\r\n\r\n" },
		{ "4.2.1", "4.2.1" },
		{ "4.2.2.1", "4.2.2.1" },
		{ "4.2.2.2", "4.2.2.2" },
		{ "4.2.2.2.MIME", "Content-Type: TEXT/RICHTEXT\r\n\r\n" },
	};
	struct mime_part *root;
	size_t i;

	test_begin("RFC 3501 §6.4.5 part numbers");
	root = check_msg(msg, NULL, NULL, NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mime_section sec;
		size_t n = strlen(cases[i].text);

		test_assert(mime_section_find(root, cases[i].spec, &sec) == 1);
		if (sec.range.len != n ||
		    memcmp(msg + sec.range.off, cases[i].text, n) != 0) {
			printf("# %s: %.*s\n", cases[i].spec,
			    (int)sec.range.len, msg + sec.range.off);
			test_assert(false);
		}
	}
	/* 3.TEXT is the body of the encapsulated multipart. */
	{
		struct mime_section sec;

		test_assert(mime_section_find(root, "3.TEXT", &sec) == 1);
		test_assert(sec.range.len > 4 &&
		    memcmp(msg + sec.range.off, "--x3", 4) == 0);
		test_assert(mime_section_find(root, "4.3", &sec) == 0);
		test_assert(mime_section_find(root, "4.2.2.3", &sec) == 0);
		test_assert(mime_section_find(root, "1.1", &sec) == 0);
		test_assert(mime_section_find(root, "4.HEADER", &sec) == 0);
	}
	mime_part_free(&root);
	test_end();
}

#define SPACES20	"                    "
#define SPACES40	SPACES20 SPACES20
#define SPACES60	SPACES40 SPACES20

static void
test_broken(void)
{
	struct mime_part *root;
	char *s;

	/* Found by fuzz_mime: white space before the colon took a field
	 * name past the name bound in some chunkings only, so the parts
	 * differed with how the message was fed.  check_msg() feeds it
	 * whole, byte by byte and in 7-byte chunks. */
	test_begin("broken: a field name padded past the bound, any chunking");
	root = check_msg("c\r\nContent-Type" SPACES60 ":text/html\r\n\r\nx",
	    NULL, NULL, NULL);
	test_assert_streq(root->type, "text");
	test_assert_streq(root->subtype, "plain");
	mime_part_free(&root);
	root = check_msg("c\r\nContent-Type" SPACES40 ":text/html\r\n\r\nx",
	    NULL, NULL, NULL);
	test_assert_streq(root->subtype, "html");
	mime_part_free(&root);
	test_end();

	test_begin("broken: multipart without boundary is text/plain");
	root = check_msg("Content-Type: multipart/mixed\r\n\r\nhello\r\n",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "7 1 NIL NIL NIL NIL)", NULL, NULL);
	test_assert((root->flags & MIME_PART_DEGRADED) != 0);
	mime_part_free(&root);
	test_end();

	test_begin("broken: boundary never found, empty boundary");
	root = check_msg("Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
	    "no parts\r\n--z\r\n",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "15 2 NIL NIL NIL NIL)", NULL, NULL);
	mime_part_free(&root);
	root = check_msg("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n"
	    "--\r\nx\r\n", "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
	    "NIL NIL \"7bit\" 7 2 NIL NIL NIL NIL)", NULL, NULL);
	mime_part_free(&root);
	test_end();

	test_begin("broken: no close delimiter, last line without LF");
	root = check_msg("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: text/plain\r\n\r\none\r\n"
	    "--b\r\n\r\ntwo",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 3 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) \"mixed\" "
	    "(\"boundary\" \"b\") "
	    "NIL NIL NIL)", NULL, NULL);
	mime_part_free(&root);
	/* A close delimiter as the last line, without line end. */
	root = check_msg("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\none\r\n--b--",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 3 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") "
	    "NIL NIL NIL)",
	    NULL, NULL);
	mime_part_free(&root);
	test_end();

	test_begin("broken: part header cut by a delimiter");
	/* The header of part 1 has no blank line: it ends before the line
	 * end of "X-A: 1", and the body is empty.  Part 2 is a
	 * message/rfc822 cut off the same way: an empty message. */
	root = check_msg("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nX-A: 1\r\n--b\r\nContent-Type: message/rfc822\r\n"
	    "--b--\r\n",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 0 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL "
	    "NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" "
	    "\"b\") NIL NIL NIL)",
	    NULL, NULL);
	test_assert(root->children->header.len == 6);
	test_assert((root->children->flags & MIME_PART_EOH) == 0);
	check_range(root, "1.MIME", 1, 50, 6, 50, 6);
	mime_part_free(&root);
	test_end();

	test_begin("broken: delimiter right after a header's blank line");
	/* The blank line stays in the encapsulated header; the delimiter
	 * takes no line end from it (found by fuzz_mime). */
	root = check_msg("Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: message/rfc822\n\nSubject: s\n\n--b--\n",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 14 (NIL \"s\" NIL "
	    "NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 2 NIL NIL NIL "
	    "NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", NULL, NULL);
	check_range(root, "1", 1, 77, 12, 82, 14);
	check_range(root, "1.HEADER", 1, 77, 12, 82, 14);
	check_range(root, "1.TEXT", 1, 89, 0, 96, 0);
	mime_part_free(&root);
	test_end();

	test_begin("broken: no header, no body, header without blank line");
	root = check_msg("", "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
	    "NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)", NULL,
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	mime_part_free(&root);
	root = check_msg("\r\nbody only\r\n", "(\"text\" \"plain\" "
	    "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL)",
	    NULL, NULL);
	test_assert(root->header.len == 2 && root->body.off == 2);
	mime_part_free(&root);
	root = check_msg("Subject: x\r\nFrom: y@z", NULL, NULL,
	    "(NIL \"x\" ((NIL NIL \"y\" \"z\")) ((NIL NIL \"y\" \"z\")) "
	    "((NIL NIL \"y\" \"z\")) NIL NIL NIL NIL NIL)");
	test_assert(root->header.len == 21 && root->body.len == 0);
	test_assert((root->flags & MIME_PART_EOH) == 0);
	check_range(root, "TEXT", 1, 21, 0, 21, 0);
	mime_part_free(&root);
	test_end();

	test_begin("broken: invalid Content-Type and encoding");
	root = check_msg("Content-Type: text\r\n"
	    "Content-Transfer-Encoding: ?bad\r\n\r\nx\r\n",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "3 1 NIL NIL NIL NIL)", NULL, NULL);
	mime_part_free(&root);
	/* The first Content-Type counts; folding and comments. */
	root = check_msg("Content-Type: (c) text/html (c);\r\n"
	    " charset=\"utf-8\" (Unicode)\r\n"
	    "Content-Type: image/png\r\n"
	    "Content-Transfer-Encoding: (x) Base64\r\n\r\nx\r\n",
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"Base64\" 3 1 "
	    "NIL NIL NIL NIL)", NULL, NULL);
	test_assert(root->encoding == MIME_ENC_BASE64);
	mime_part_free(&root);
	test_end();

	test_begin("broken: NUL bytes and 8-bit in headers");
	{
		static const char m[] = "Subject: a\0b\r\nFrom: J\xc3\xb6rg "
		    "<j@x>\r\n\r\n";

		root = mime_parse(m, sizeof(m) - 1);
		s = render_env(root);
		test_assert_streq(s, "(NIL \"a?b\" (({5}\r\nJ\xc3\xb6rg NIL "
		    "\"j\" \"x\")) (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x\")) "
		    "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x\")) NIL NIL NIL NIL "
		    "NIL)");
		free(s);
		mime_part_free(&root);
	}
	test_end();
}

static void
test_boundaries(void)
{
	struct mime_part *root;

	test_begin("boundaries: outer ends inner, longest match, padding");
	/* "--ab" is a prefix of "--abc": the longer boundary wins, and
	 * the outer delimiter closes the inner multipart (RFC 2046
	 * §5.1.2).  Trailing white space after a delimiter is allowed. */
	root = check_msg("Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
	    "--ab  \r\n"
	    "Content-Type: multipart/alternative; boundary=abc\r\n\r\n"
	    "--abc\r\n\r\ninner one\r\n"
	    "--abc\r\n\r\ninner two\r\n"
	    "--ab\r\n\r\nouter two\r\n"
	    "--ab--\r\nepilogue\r\n",
	    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 9 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL) "
	    "\"alternative\" (\"boundary\" \"abc\") NIL NIL NIL)(\"text\" "
	    "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL "
	    "NIL NIL NIL) \"mixed\" (\"boundary\" "
	    "\"ab\") NIL NIL NIL)", NULL, NULL);
	mime_part_free(&root);
	test_end();

	test_begin("boundaries: multipart/digest defaults to message/rfc822");
	root = check_msg("Content-Type: multipart/digest; boundary=d\n\n"
	    "--d\n\nSubject: one\n\nbody\n"
	    "--d\nContent-Type: text/plain\n\nplain\n"
	    "--d--\n",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 (NIL \"one\" "
	    "NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	    "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL "
	    "NIL) 2 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"digest\" "
	    "(\"boundary\" \"d\") NIL NIL NIL)",
	    NULL, NULL);
	mime_part_free(&root);
	test_end();
}

static void
test_limits(void)
{
	struct mime_part *root;
	struct buf m, out;
	unsigned int i;
	char *s;

	test_begin("limits: nesting depth");
	buf_init(&m, 0);
	for (i = 0; i < 40; i++)
		buf_printf(&m, "Content-Type: multipart/mixed; boundary=n%u\r\n"
		    "\r\n--n%u\r\n", i, i);
	buf_append_str(&m, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (i = 40; i-- > 0;)
		buf_printf(&m, "--n%u--\r\n", i);
	root = mime_parse(m.data, m.len);
	test_assert(max_depth(root) == MAX_MIME_DEPTH);
	s = render_bs(root, true);
	free(s);
	mime_part_free(&root);
	buf_reset(&m);
	/* message/rfc822 inside message/rfc822 ... */
	for (i = 0; i < 40; i++)
		buf_append_str(&m, "Content-Type: message/rfc822\n\n");
	buf_append_str(&m, "\ntext\n");
	root = mime_parse(m.data, m.len);
	test_assert(max_depth(root) == MAX_MIME_DEPTH);
	s = render_bs(root, true);
	test_assert(strstr(s, "\"application\" \"octet-stream\"") != NULL);
	free(s);
	mime_part_free(&root);
	test_end();

	test_begin("limits: number of parts");
	buf_reset(&m);
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=p\n\n");
	for (i = 0; i < 3000; i++)
		buf_printf(&m, "--p\n\npart %u\n", i);
	buf_append_str(&m, "--p--\n");
	root = mime_parse(m.data, m.len);
	test_assert(count_parts(root) == MAX_MIME_PARTS);
	s = render_bs(root, false);
	free(s);
	mime_part_free(&root);
	test_end();

	test_begin("limits: long header fields, many fields, output max");
	buf_reset(&m);
	buf_append_str(&m, "Subject: ");
	for (i = 0; i < 200000; i++)
		buf_append_char(&m, 'x');
	buf_append_str(&m, "\r\n");
	for (i = 0; i < 5000; i++)
		buf_printf(&m, "X-F%u: v\r\n", i);
	buf_append_str(&m, "To: late@example.com\r\n\r\nbody\r\n");
	root = mime_parse(m.data, m.len);
	test_assert(root->envelope->subject != NULL &&
	    strlen(root->envelope->subject) < MAX_MIME_FIELD);
	/* Past MAX_MIME_FIELDS fields are no longer read. */
	test_assert(root->envelope->to == NULL);
	test_assert(root->body.len == 6);
	buf_init(&out, 100);
	test_assert(mime_render_envelope(root, &out) == -1);
	buf_free(&out);
	mime_part_free(&root);
	buf_free(&m);
	test_end();
}

/* ------------------------------------------------------------------ */
/* Header blocks, parameters, addresses, dates                         */

static void
test_header_block(void)
{
	static const char hdr[] = "Subject: a\r\n b\r\nX-A: 1\r\n"
	    "Received: r1\r\nx-a : 2\r\nReceived: r2\n\r\nbody";
	static const char *const names[] = { "subject", "RECEIVED" };
	static const char *const xa[] = { "x-a" };
	struct buf b;
	char **v;

	test_begin("header: get, get all, HEADER.FIELDS[.NOT]");
	buf_init(&b, 0);
	test_assert(mime_header_get(hdr, sizeof(hdr) - 1, "subject", 0,
	    &b) == 1);
	test_assert_streq(buf_cstr(&b), "a b");
	buf_reset(&b);
	test_assert(mime_header_get(hdr, sizeof(hdr) - 1, "X-A", 1, &b) == 1);
	test_assert_streq(buf_cstr(&b), "2");
	test_assert(mime_header_get(hdr, sizeof(hdr) - 1, "X-A", 2, &b) == 0);
	/* The body is not header. */
	test_assert(mime_header_get(hdr, sizeof(hdr) - 1, "body", 0, &b) == 0);
	test_assert(mime_header_get_all(hdr, sizeof(hdr) - 1, "received",
	    &v) == 2);
	test_assert_streq(v[0], "r1");
	test_assert_streq(v[1], "r2");
	test_assert(v[2] == NULL);
	strv_free(&v);

	buf_reset(&b);
	test_assert(mime_header_fields(hdr, sizeof(hdr) - 1, names, 2, false,
	    &b) == 0);
	test_assert_streq(buf_cstr(&b), "Subject: a\r\n b\r\nReceived: r1\r\n"
	    "Received: r2\r\n\r\n");
	buf_reset(&b);
	test_assert(mime_header_fields(hdr, sizeof(hdr) - 1, names, 2, true,
	    &b) == 0);
	test_assert_streq(buf_cstr(&b), "X-A: 1\r\nx-a : 2\r\n\r\n");
	buf_reset(&b);
	/* No blank line in the block: none in the answer (RFC 3501
	 * §6.4.5). */
	test_assert(mime_header_fields("A: 1\nX-a: 2", 11, xa, 1, false,
	    &b) == 0);
	test_assert_streq(buf_cstr(&b), "X-a: 2\r\n");
	buf_reset(&b);
	test_assert(mime_header_fields("A: 1\r\n", 6, xa, 1, false, &b) == 0);
	test_assert_streq(buf_cstr(&b), "");
	buf_free(&b);
	test_end();
}

static void
test_params(void)
{
	char *type, *subtype;
	struct mime_param *p;
	size_t n;
	struct buf b;

	test_begin("RFC 2231 parameters and lenient values");
	buf_init(&b, 0);
	{
		static const char v[] = "application/x-stuff; title*=us-ascii"
		    "'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A";

		test_assert(mime_content_parse(v, sizeof(v) - 1, true, &type,
		    &subtype, &p, &n) == 0);
	}
	test_assert_streq(type, "application");
	test_assert_streq(subtype, "x-stuff");
	test_assert(n == 1 && p[0].extended);
	test_assert_streq(p[0].name, "title*");
	test_assert(mime_param_decode(&p[0], &b) == 0);
	test_assert_streq(buf_cstr(&b), "This is ***fun***");
	mime_params_free(&p, n);
	free(type);
	free(subtype);

	/* Out of order pieces, not extended (RFC 2231 §3 example). */
	{
		static const char v[] = "message/external-body; "
		    "access-type=URL; URL*1=\"cale.com/\"; URL*0=\"ftp://\"";

		test_assert(mime_content_parse(v, sizeof(v) - 1, true, &type,
		    &subtype, &p, &n) == 0);
		test_assert(n == 2);
		test_assert_streq(p[1].name, "URL");
		test_assert_streq(p[1].value, "ftp://cale.com/");
		test_assert(!p[1].extended);
		test_assert(mime_param_find(p, n, "url") == &p[1]);
		mime_params_free(&p, n);
		free(type);
		free(subtype);
	}
	/* Mixed pieces: plain ones are %-encoded into the joined value. */
	{
		static const char v[] = "attachment; filename*0*=iso-8859-1''"
		    "%E9t%E9; filename*1=\" 2024.txt\"; size=12";

		test_assert(mime_content_parse(v, sizeof(v) - 1, false, &type,
		    NULL, &p, &n) == 0);
		test_assert_streq(type, "attachment");
		test_assert(n == 2);
		test_assert_streq(p[0].value, "iso-8859-1''%E9t%E9%202024.txt");
		buf_reset(&b);
		test_assert(mime_param_decode(&p[0], &b) == 0);
		test_assert_streq(buf_cstr(&b), "\xc3\xa9t\xc3\xa9 2024.txt");
		test_assert_streq(p[1].name, "size");
		mime_params_free(&p, n);
		free(type);
	}
	/* Unquoted value with spaces; RFC 2047 words in a quoted value;
	 * no ';' between parameters; a parameter without value. */
	{
		static const char v[] = "text/plain; name=My File.pdf;"
		    "x=\"=?utf-8?q?caf=C3=A9.txt?=\" y=\"q\\\"q\"; novalue; z";

		test_assert(mime_content_parse(v, sizeof(v) - 1, true, &type,
		    &subtype, &p, &n) == 0);
		test_assert(n == 3);
		test_assert_streq(p[0].value, "My File.pdf");
		test_assert_streq(p[1].value, "=?utf-8?q?caf=C3=A9.txt?=");
		buf_reset(&b);
		test_assert(mime_param_decode(&p[1], &b) == 0);
		test_assert_streq(buf_cstr(&b), "caf\xc3\xa9.txt");
		test_assert_streq(p[2].name, "y");
		test_assert_streq(p[2].value, "q\"q");
		mime_params_free(&p, n);
		free(type);
		free(subtype);
	}
	/* At most MAX_MIME_PARAMS parameters are read. */
	{
		struct buf v;
		int i;

		buf_init(&v, 0);
		buf_append_str(&v, "text/plain");
		for (i = 0; i < 3 * MAX_MIME_PARAMS; i++)
			buf_printf(&v, "; p%d=v", i);
		test_assert(mime_content_parse(v.data, v.len, true, &type,
		    &subtype, &p, &n) == 0);
		test_assert(n == MAX_MIME_PARAMS);
		mime_params_free(&p, n);
		free(type);
		free(subtype);
		buf_free(&v);
	}
	test_assert(mime_content_parse("text", 4, true, &type, &subtype, &p,
	    &n) == -1);
	test_assert(mime_content_parse("/plain", 6, true, &type, &subtype,
	    &p, &n) == -1);
	test_assert(mime_content_parse("", 0, false, &type, NULL, &p,
	    &n) == -1);
	buf_free(&b);
	test_end();
}

static void
check_addr(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(mime_render_addresses(&b, in, strlen(in)) == 0);
	test_assert_streq(buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_addresses(void)
{
	test_begin("address lists (RFC 5322 §3.4, appendix A)");
	check_addr("A Group:Ed Jones <c@a.test>,joe@where.test,John "
	    "<jdoe@one.test>;",
	    "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")"
	    "(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" "
	    "\"one.test\")(NIL NIL NIL NIL))");
	check_addr("Undisclosed recipients:;",
	    "((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL))");
	check_addr("Pete(A nice \\) chap) <pete(his account)@silly.test"
	    "(his host)>", "((\"Pete\" NIL \"pete\" \"silly.test\"))");
	check_addr("\"Joe Q. Public\" <john.q.public@example.com>",
	    "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))");
	check_addr("Joe Q. Public <j@x>", "((\"Joe Q. Public\" NIL \"j\" "
	    "\"x\"))");
	check_addr("Mary Smith <@node.test,@relay.test:mary@example.net>",
	    "((\"Mary Smith\" \"@node.test,@relay.test\" \"mary\" "
	    "\"example.net\"))");
	check_addr("user@host (Real Name)", "((\"Real Name\" NIL \"user\" "
	    "\"host\"))");
	check_addr("root", "((NIL NIL \"root\" \"MISSING_DOMAIN\"))");
	check_addr("<@example.com>", "((NIL NIL \"MISSING_MAILBOX\" "
	    "\"example.com\"))");
	check_addr("\"john doe\"@example.com, ",
	    "((NIL NIL \"john doe\" \"example.com\"))");
	check_addr("\"Joe \\\"Q\\\"\" <j@[192.0.2.1]>",
	    "((\"Joe \\\"Q\\\"\" NIL \"j\" \"[192.0.2.1]\"))");
	check_addr("a@b, , c@d", "((NIL NIL \"a\" \"b\")(NIL NIL \"c\" "
	    "\"d\"))");
	check_addr("Group: a@b", "((NIL NIL \"Group\" NIL)(NIL NIL \"a\" "
	    "\"b\")(NIL NIL NIL NIL))");
	/* Encoded words stay as they are in ENVELOPE. */
	check_addr("=?utf-8?q?J=C3=B6rg?= <j@x>",
	    "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\"))");
	check_addr("", "NIL");
	check_addr("  (just a comment) ", "NIL");
	check_addr(";;,,<<>>@@", "((NIL NIL \"MISSING_MAILBOX\" "
	    "\"MISSING_DOMAIN\"))");
	test_end();
}

static void
check_date(const char *s, int want_ret, long long want_t, int want_tz)
{
	time_t t = 0;
	int tz = 0;
	int ret = mime_date_parse(s, strlen(s), &t, &tz);

	if (ret != want_ret || (ret == 0 && ((long long)t != want_t ||
	    tz != want_tz)))
		printf("# date \"%s\": ret %d t %lld tz %d\n", s, ret,
		    (long long)t, tz);
	test_assert(ret == want_ret);
	if (ret == 0 && want_ret == 0)
		test_assert((long long)t == want_t && tz == want_tz);
}

static void
test_dates(void)
{
	test_begin("dates (RFC 5322 §3.3, obsolete forms)");
	check_date("Mon, 7 Feb 1994 21:52:25 -0800", 0, 760686745, -480);
	check_date("7 Feb 94 21:52 PST", 0, 760686720, -480);
	check_date("Tue, 1 Jul 2003 10:52:37 +0200 (CEST)", 0, 1057049557,
	    120);
	check_date("  Tue , 01 Jul 2003 10 : 52 : 37 +0200", 0, 1057049557,
	    120);
	check_date("Mon Jan  2 15:04:05 2006", 0, 1136214245, 0);
	check_date("Mon Jan  2 15:04:05 UTC 2006", 0, 1136214245, 0);
	check_date("Sat, 29 Feb 2020 00:00:00 Z", 0, 1582934400, 0);
	check_date("Sat, 29 Feb 2020 00:00:00 EDT", 0, 1582934400 + 4 * 3600,
	    -240);
	check_date("29-Feb-2020", 0, 1582934400, 0);
	check_date("1 Jan 49 00:00 +0000", 0, 2493072000LL, 0);
	check_date("1 Jan 50 00:00 GMT", 0, -631152000LL, 0);
	check_date("Thu, 01 Jan 1970 00:00:00 GMT", 0, 0, 0);
	check_date("Fri, 31 Dec 1999 23:59:59 -0430", 0, 946700999, -270);
	check_date("Wed, 2 Jan 2019 08:00:00 +0000", 0, 1546416000, 0);
	check_date("Sat, 30 Feb 2020 00:00:00 +0000", -1, 0, 0);
	check_date("Sat, 1 Foo 2020 00:00:00 +0000", -1, 0, 0);
	check_date("1 Jan 2020 25:00:00 +0000", -1, 0, 0);
	check_date("1 Jan 0 00:00:00", -1, 0, 0);
	check_date("garbage", -1, 0, 0);
	check_date("", -1, 0, 0);
	test_end();
}

/* ------------------------------------------------------------------ */
/* Decoding for SEARCH                                                 */

static void
check_words(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(mime_decode_words(in, strlen(in), &b) == 0);
	test_assert_streq(buf_cstr(&b), want);
	test_assert(str_utf8_valid(b.data != NULL ? b.data : "", b.len));
	buf_free(&b);
}

static void
test_words(void)
{
	test_begin("RFC 2047 encoded words");
	check_words("=?UTF-8?B?SGVsbG8gV29ybGQ=?=", "Hello World");
	check_words("=?ISO-8859-1?Q?Caf=E9?= au lait", "Caf\xc3\xa9 au lait");
	check_words("=?utf-8?q?Hello_World?=", "Hello World");
	/* Adjacent words are joined without the white space between. */
	check_words("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
	check_words("=?utf-8?q?a?=\r\n =?utf-8?b?Yg==?=", "ab");
	check_words("a =?utf-8?q?b?= c", "a b c");
	/* A character split between two words. */
	check_words("=?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?=", "\xc3\xa9");
	check_words("=?iso-8859-2?q?=B1?=", "\xc4\x85");	/* iconv */
	check_words("=?iso-8859-15?q?=A4?=", "\xe2\x82\xac");
	check_words("=?windows-1252?q?=93hi=94?=",
	    "\xe2\x80\x9chi\xe2\x80\x9d");
	check_words("=?utf-8*en?q?x?=", "x");
	check_words("=?bogus?q?caf=C3=A9?=", "caf\xc3\xa9");
	check_words("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	check_words("=?utf-8?q?no end", "=?utf-8?q?no end");
	check_words("Caf\xe9", "Caf\xc3\xa9");	/* raw Latin-1 */
	check_words("=?utf-8?q?bad=FF?=", "bad\xc3\xbf");
	check_words("=?koi8-r?b?8NLJ18XU?=",
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	check_words("", "");
	test_end();
}

/* Decode in in pieces of step bytes. */
static char *
decode_body(enum mime_encoding enc, const char *cs, const char *in,
    size_t step)
{
	struct mime_body_decoder *d = mime_body_decoder_new(enc, cs);
	struct buf out;
	size_t len = strlen(in), i;

	buf_init(&out, 0);
	for (i = 0; i < len; i += step)
		test_assert(mime_body_decoder_feed(d, in + i,
		    len - i < step ? len - i : step, &out) == 0);
	test_assert(mime_body_decoder_finish(d, &out) == 0);
	mime_body_decoder_free(&d);
	test_assert(d == NULL);
	return buf_steal(&out);
}

static void
check_body(enum mime_encoding enc, const char *cs, const char *in,
    const char *want)
{
	static const size_t steps[] = { 1, 2, 3, 5, 1000 };
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *s = decode_body(enc, cs, in, steps[i]);

		test_assert_streq(s, want);
		free(s);
	}
}

static void
test_bodies(void)
{
	test_begin("body decoding: base64, quoted-printable, charsets");
	check_body(MIME_ENC_BASE64, "utf-8", "SGVsbG8s\r\nIFdvcmxkIQ==\r\n",
	    "Hello, World!");
	check_body(MIME_ENC_BASE64, NULL, "SGk\r\n", "Hi");
	check_body(MIME_ENC_BASE64, "utf-8", "w6k=", "\xc3\xa9");
	check_body(MIME_ENC_QP, "iso-8859-1",
	    "Caf=E9 =\r\nok  \r\nend=\r\n", "Caf\xc3\xa9 ok\nend");
	check_body(MIME_ENC_QP, "utf-8", "a=3Db =ZZ =\nc=\r\n  \r\nd",
	    "a=b =ZZ c\nd");
	check_body(MIME_ENC_QP, NULL, "x=4", "x=4");
	check_body(MIME_ENC_7BIT, "iso-8859-2", "\xb1\xb1", "\xc4\x85\xc4\x85");
	check_body(MIME_ENC_8BIT, "utf-8", "\xc3\xa9\xe2\x82",
	    "\xc3\xa9\xc3\xa2\xe2\x80\x9a");
	check_body(MIME_ENC_8BIT, "shift_jis", "\x93\xfa\x96\x7b",
	    "\xe6\x97\xa5\xe6\x9c\xac");
	/* Feeds that decode to nothing (found by fuzz_mime: NULL data). */
	check_body(MIME_ENC_QP, "utf-7", "=\r\n", "");
	check_body(MIME_ENC_BASE64, "iso-8859-2", "!", "");
	test_assert(mime_encoding_parse("Quoted-Printable") == MIME_ENC_QP);
	test_assert(mime_encoding_parse("x-uuencode") == MIME_ENC_7BIT);
	test_assert(mime_encoding_parse(NULL) == MIME_ENC_7BIT);
	test_assert(mime_charset_known("UTF-8"));
	test_assert(mime_charset_known("iso-8859-7"));
	test_assert(!mime_charset_known("no-such-charset"));
	test_assert(!mime_charset_known("../../etc/passwd"));
	test_assert(!mime_charset_known("utf-8//TRANSLIT"));
	test_end();
}

#define CONTAINS(h, n) mime_search_contains((h), strlen(h), (n), strlen(n))

static void
test_search(void)
{
	struct mime_search *s;
	struct buf b;

	test_begin("case-insensitive search");
	test_assert(CONTAINS("Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\x96LN",
	    "k\xc3\xb6ln"));
	test_assert(CONTAINS("\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95"
	    "\xd0\xa2", "\xd0\xbf\xd1\x80\xd0\xb8"));
	test_assert(CONTAINS("\xce\xa3\xce\x9f\xce\xa6",
	    "\xcf\x83\xce\xbf\xcf\x86"));
	test_assert(!CONTAINS("abc", "abd"));
	test_assert(CONTAINS("aaab", "aab"));
	test_assert(CONTAINS("x", ""));
	test_assert(!CONTAINS("", "x"));
	test_assert(CONTAINS("HELLO", "hello"));
	test_assert(!CONTAINS("stra\xc3\x9f" "e", "STRASSE"));
	/* A match across feeds, split inside a character. */
	s = mime_search_new("K\xc3\xb6ln", 5);
	test_assert(!mime_search_feed(s, "in k\xc3", 5));
	test_assert(!mime_search_feed(s, "\x96", 1));
	test_assert(mime_search_feed(s, "ln!", 3));
	test_assert(mime_search_feed(s, "", 0));
	mime_search_reset(s);
	test_assert(!mime_search_feed(s, "kol", 3));
	mime_search_free(&s);
	test_assert(s == NULL);
	buf_init(&b, 0);
	test_assert(mime_fold_utf8("A\xc3\x84\xc4\xb0\xe1\xba\x9e\xff", 9,
	    &b) == 0);
	test_assert_streq(buf_cstr(&b), "a\xc3\xa4i\xc3\x9f\xef\xbf\xbd");
	buf_free(&b);
	test_end();
}

static void
test_misc(void)
{
	struct buf b;
	struct mime_part *root;
	const char *err;
	char path[] = "/tmp/test_mime.XXXXXX";
	int fd;

	test_begin("IMAP strings, parse from fd");
	buf_init(&b, 0);
	mime_imap_nstring(&b, NULL);
	mime_imap_nstring(&b, "a\"b\\c");
	mime_imap_nstring(&b, "");
	mime_imap_nstring(&b, "\xc3\xa9");
	mime_imap_nstring(&b, "a\rb");
	test_assert_streq(buf_cstr(&b), "NIL\"a\\\"b\\\\c\"\"\"{2}\r\n\xc3\xa9"
	    "{3}\r\na\rb");
	buf_free(&b);

	fd = mkstemp(path);
	test_assert(fd >= 0);
	if (fd >= 0) {
		test_assert(write(fd, FORWARD, sizeof(FORWARD) - 1) ==
		    (ssize_t)(sizeof(FORWARD) - 1));
		test_assert(lseek(fd, 0, SEEK_SET) == 0);
		test_assert(mime_parse_fd(fd, &root, &err) == 0);
		test_assert(root->body.len == 403);
		mime_part_free(&root);
		close(fd);
		unlink(path);
	}
	test_assert(mime_parse_fd(-1, &root, &err) == -1);
	test_end();
}

int
main(void)
{
	test_simple();
	test_rfc3501_examples();
	test_alternative();
	test_attachment();
	test_nested();
	test_part_numbers();
	test_broken();
	test_boundaries();
	test_limits();
	test_header_block();
	test_params();
	test_addresses();
	test_dates();
	test_words();
	test_bodies();
	test_search();
	test_misc();
	return test_done();
}
