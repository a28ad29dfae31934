/*
 * fuzz_imap_thread: the THREAD algorithms of RFC 5256 (imap/imap_thread.c:
 * Message-ID, In-Reply-To and References parsing, the threading itself,
 * "is it a reply" of the base subject) and the i;unicode-casemap
 * collation of RFC 5051 (common/unicase.c) that SORT and THREAD use.
 *
 * Byte 0 bit 2 clear: bits 0-1 pick ORDEREDSUBJECT, REFERENCES or REFS
 * (3 is REFERENCES too); the rest is messages, one a line, with fields
 * separated by tabs: subject, Message-ID, In-Reply-To, References.
 * Bits 3-7 give the dates some ties.  Byte 0 bit 2 set: the rest is
 * two strings for the casemap, split at the first NUL (or the middle).
 *
 * Checked beyond "no crash":
 *   - the answer is a list of non-empty parenthesized threads where
 *     every message appears exactly once (RFC 5256 §4);
 *   - the casemap gives valid UTF-8, maps ASCII to upper case, and the
 *     comparison is a total order consistent with the mapped octets.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "imap_thread.h"
#include "str.h"
#include "unicase.h"

#define MAX_FUZZ_THREAD_INPUT	(64 * 1024)
#define MAX_FUZZ_THREAD_MSGS	500

static void __attribute__((noreturn))
fuzz_thread_fail(const char *what, const struct buf *out)
{
	fprintf(stderr, "imap_thread: %s: \"%.*s\"\n", what,
	    out != NULL ? (int)(out->len > 300 ? 300 : out->len) : 0,
	    out != NULL && out->data != NULL ? out->data : "");
	abort();
}

static int
fuzz_sign(int v)
{
	return (v > 0) - (v < 0);
}

static void
fuzz_casemap(const char *s, size_t len)
{
	struct buf fa, fb;
	const char *nul = memchr(s, '\0', len);
	size_t alen = nul != NULL ? (size_t)(nul - s) : len / 2, i;
	const char *b = nul != NULL ? nul + 1 : s + alen;
	size_t blen = len - (size_t)(b - s);
	int c, m;

	buf_init(&fa, 0);
	buf_init(&fb, 0);
	if (unicase_fold(s, alen, &fa) < 0 || unicase_fold(b, blen, &fb) < 0)
		fuzz_thread_fail("fold failed without a limit", NULL);
	if (!str_utf8_valid(fa.data, fa.len))
		fuzz_thread_fail("fold gave invalid UTF-8", &fa);
	if (unicase_is_ascii(s, alen)) {
		if (fa.len != alen)
			fuzz_thread_fail("ASCII changed length", &fa);
		for (i = 0; i < alen; i++)
			if (fa.data[i] != toupper((unsigned char)s[i]))
				fuzz_thread_fail("ASCII not upper case", &fa);
	}
	if (unicase_cmp(s, alen, s, alen) != 0)
		fuzz_thread_fail("a string differs from itself", &fa);
	c = unicase_cmp(s, alen, b, blen);
	if (fuzz_sign(c) != -fuzz_sign(unicase_cmp(b, blen, s, alen)))
		fuzz_thread_fail("comparison not antisymmetric", &fa);
	m = memcmp(fa.data != NULL ? fa.data : "", fb.data != NULL ?
	    fb.data : "", fa.len < fb.len ? fa.len : fb.len);
	if (m == 0)
		m = (fa.len > fb.len) - (fa.len < fb.len);
	if (fuzz_sign(c) != fuzz_sign(m))
		fuzz_thread_fail("comparison differs from the mapped octets",
		    &fa);
	buf_free(&fa);
	buf_free(&fb);
}

/* The answer: threads, each "(" members ")", every number once. */
static void
fuzz_thread_check(const struct buf *out, size_t n)
{
	unsigned char *seen = calloc(n + 1, 1);
	size_t i = 0, depth = 0;

	if (seen == NULL)
		abort();
	while (i < out->len) {
		char ch = out->data[i];

		if (ch == '(') {
			if (i + 1 < out->len && out->data[i + 1] == ')')
				fuzz_thread_fail("an empty thread", out);
			depth++;
			i++;
		} else if (ch == ')') {
			if (depth == 0)
				fuzz_thread_fail("unbalanced", out);
			depth--;
			i++;
		} else if (ch == ' ') {
			if (depth == 0)
				fuzz_thread_fail("space between threads", out);
			i++;
		} else if (ch >= '1' && ch <= '9') {
			size_t v = 0;

			if (depth == 0)
				fuzz_thread_fail("a number outside a thread",
				    out);
			while (i < out->len && out->data[i] >= '0' &&
			    out->data[i] <= '9' && v <= n)
				v = v * 10 + (size_t)(out->data[i++] - '0');
			if (v > n || seen[v])
				fuzz_thread_fail("a message twice or unknown",
				    out);
			seen[v] = 1;
		} else
			fuzz_thread_fail("a stray character", out);
	}
	if (depth != 0)
		fuzz_thread_fail("unbalanced at the end", out);
	for (i = 1; i <= n; i++)
		if (!seen[i])
			fuzz_thread_fail("a message missing", out);
	free(seen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum imap_thread_alg algs[4] = {
		IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES,
		IMAP_THREAD_REFS, IMAP_THREAD_REFERENCES,
	};
	struct imap_thread_msg *msgs;
	char *text, *line, *next, *f[4];
	unsigned ties;
	struct buf out;
	size_t n = 0, k;

	if (size < 1 || size > MAX_FUZZ_THREAD_INPUT)
		return 0;
	if (data[0] & 4) {
		fuzz_casemap((const char *)data + 1, size - 1);
		return 0;
	}
	ties = (data[0] >> 3) + 1;
	text = fuzz_cstring(data + 1, size - 1);
	msgs = calloc(MAX_FUZZ_THREAD_MSGS, sizeof(*msgs));
	if (msgs == NULL)
		abort();
	for (line = text; line != NULL && *line != '\0' &&
	    n < MAX_FUZZ_THREAD_MSGS; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		for (k = 0; k < 4; k++) {
			f[k] = line;
			if (line == NULL)
				f[k] = "";
			else if ((line = strchr(line, '\t')) != NULL)
				*line++ = '\0';
		}
		msgs[n].num = (uint32_t)(n + 1);
		msgs[n].date = (int64_t)((n * 7919) % ties);
		msgs[n].subject = f[0];
		msgs[n].reply = imap_thread_subject_is_reply(f[0],
		    strlen(f[0]));
		msgs[n].message_id = f[1];
		msgs[n].in_reply_to = f[2];
		msgs[n].references = f[3];
		n++;
	}
	buf_init(&out, 0);
	imap_thread_write(algs[data[0] & 3], msgs, n, &out);
	fuzz_thread_check(&out, n);
	buf_free(&out);
	free(msgs);
	free(text);
	return 0;
}
