/*
 * fuzz_smtp_reply: the pure parts of the outbound SMTP client,
 * smtp/smtp_parse.c.  The input (after byte 0) is what a hostile server
 * sends, and also a stored message.
 *
 *   - Replies: the input is split into lines at LF (a CR before it is
 *     dropped, as smtp_conn does) and fed to smtp_reply_add_line(); every
 *     complete reply must have a code 200..599, an enhanced code of its
 *     own class or none, bounded text and line count; a complete 2xx
 *     reply is parsed as an EHLO answer, whose mechanism list must stay
 *     bounded, upper case and free of duplicates.
 *   - The message encoder: the input run whole, one byte at a time and in
 *     chunks of byte 0 + 1 bytes must give the same bytes, in DATA and in
 *     BDAT mode; the result never holds a bare CR or LF, and in DATA mode
 *     its only "." line is the terminator at the very end (no smuggled
 *     end of data, whatever the stored message holds).
 *   - The next-hop parser, on the input up to its first NUL: an accepted
 *     next hop has a host without brackets or spaces and a port 1..65535.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "smtp_parse.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_SMTP_INPUT	(64 * 1024)

static void __attribute__((noreturn))
fuzz_smtp_fail(const char *what)
{
	fprintf(stderr, "smtp_parse: %s\n", what);
	abort();
}

static void
fuzz_smtp_check_reply(const struct smtp_reply *r)
{
	if (r->code < 200 || r->code > 599)
		fuzz_smtp_fail("reply code out of range");
	if (r->dsn[0] != '\0' && r->dsn[0] != '0' + r->code / 100)
		fuzz_smtp_fail("enhanced code of another class");
	if (r->text.len > SMTP_MAX_REPLY_TEXT)
		fuzz_smtp_fail("reply text not bounded");
	if (r->nlines == 0 || r->nlines > SMTP_MAX_REPLY_LINES)
		fuzz_smtp_fail("reply line count");
}

static void
fuzz_smtp_check_features(const struct smtp_reply *r)
{
	struct smtp_features f;
	size_t i, j;

	memset(&f, 0, sizeof(f));
	smtp_features_parse(&f, r);
	if (f.nauth > SMTP_MAX_AUTH_MECHS)
		fuzz_smtp_fail("too many mechanisms");
	if (strlen(f.name) >= sizeof(f.name))
		fuzz_smtp_fail("server name not terminated");
	for (i = 0; i < f.nauth; i++) {
		const char *m = f.auth[i];

		if (strlen(m) == 0 || strlen(m) > 20)
			fuzz_smtp_fail("mechanism length");
		for (j = 0; m[j] != '\0'; j++)
			if (m[j] >= 'a' && m[j] <= 'z')
				fuzz_smtp_fail("mechanism not upper case");
		for (j = 0; j < i; j++)
			if (strcmp(f.auth[j], m) == 0)
				fuzz_smtp_fail("duplicate mechanism");
		if (!smtp_features_has_auth(&f, m))
			fuzz_smtp_fail("mechanism not found again");
	}
	smtp_features_free(&f);
}

static void
fuzz_smtp_replies(const char *in, size_t len)
{
	struct smtp_reply r;
	size_t pos = 0;

	smtp_reply_init(&r);
	while (pos < len) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - in) : len;
		size_t llen = end - pos;
		const char *why = NULL;
		int ret;

		if (llen > 0 && in[pos + llen - 1] == '\r')
			llen--;
		if (llen > SMTP_MAX_REPLY_LINE) {
			/* smtp_conn refuses such a line before parsing. */
			smtp_reply_reset(&r);
			pos = end + 1;
			continue;
		}
		ret = smtp_reply_add_line(&r, in + pos, llen, &why);
		if (ret < 0) {
			if (why == NULL)
				fuzz_smtp_fail("error without a reason");
			smtp_reply_reset(&r);
		} else if (ret == 1) {
			fuzz_smtp_check_reply(&r);
			(void)smtp_reply_dsn(&r);
			if (r.code / 100 == 2)
				fuzz_smtp_check_features(&r);
		}
		pos = end + 1;
	}
	smtp_reply_free(&r);
}

static void
fuzz_smtp_encode(const char *in, size_t len, bool data, size_t step,
    struct buf *out)
{
	struct smtp_enc e;
	size_t off = 0;

	smtp_enc_init(&e, data);
	buf_reset(out);
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		smtp_enc_feed(&e, in + off, n, out);
		off += n;
	}
	smtp_enc_finish(&e, out);
}

static void
fuzz_smtp_check_wire(const struct buf *b, bool data)
{
	const char *s = b->data;
	size_t i, len = b->len;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
			fuzz_smtp_fail("bare CR on the wire");
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			fuzz_smtp_fail("bare LF on the wire");
	}
	if (len > 0 && (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n'))
		fuzz_smtp_fail("no line end at the end");
	if (!data)
		return;
	/* The only "." line is the last one. */
	for (i = 0; i + 3 <= len; i++) {
		if ((i == 0 || s[i - 1] == '\n') &&
		    memcmp(s + i, ".\r\n", 3) == 0 && i + 3 != len)
			fuzz_smtp_fail("dot line before the terminator");
	}
	if (len < 3 || memcmp(s + len - 3, ".\r\n", 3) != 0 ||
	    (len > 3 && s[len - 4] != '\n'))
		fuzz_smtp_fail("no terminator");
}

static void
fuzz_smtp_encoder(const char *in, size_t len, size_t step)
{
	struct buf a, b;
	int mode;

	buf_init(&a, 0);
	buf_init(&b, 0);
	for (mode = 0; mode < 2; mode++) {
		bool data = mode == 0;

		fuzz_smtp_encode(in, len, data, 0, &a);
		fuzz_smtp_check_wire(&a, data);
		fuzz_smtp_encode(in, len, data, 1, &b);
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			fuzz_smtp_fail("byte-by-byte encoding differs");
		fuzz_smtp_encode(in, len, data, step, &b);
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			fuzz_smtp_fail("chunked encoding differs");
	}
	buf_free(&a);
	buf_free(&b);
}

static void
fuzz_smtp_nexthop(const char *in, size_t len)
{
	char *s = xstrndup(in, len), host[300];
	unsigned port = 0;
	bool mx;
	size_t i;

	if (smtp_nexthop_parse(s, host, sizeof(host), &port, &mx) == 0) {
		if (port < 1 || port > 65535)
			fuzz_smtp_fail("port out of range");
		if (host[0] == '\0' || strlen(host) > 255)
			fuzz_smtp_fail("host length");
		for (i = 0; host[i] != '\0'; i++)
			if ((unsigned char)host[i] <= ' ' || host[i] == '[' ||
			    host[i] == ']')
				fuzz_smtp_fail("bad byte in host");
		if (mx == (s[0] == '['))
			fuzz_smtp_fail("brackets and MX lookup disagree");
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in;
	size_t len, step;

	if (size < 1 || size > MAX_FUZZ_SMTP_INPUT)
		return 0;
	step = (size_t)data[0] + 1;
	in = (const char *)data + 1;
	len = size - 1;
	fuzz_smtp_replies(in, len);
	fuzz_smtp_encoder(in, len, step);
	fuzz_smtp_nexthop(in, strnlen(in, len));
	return 0;
}
