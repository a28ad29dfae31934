/*
 * Unit tests for smtp_parse: SMTP replies (whole and multi-line, bad
 * lines), EHLO keywords, the message encoder fed whole, one byte at a
 * time and split at every position, and next-hop syntax.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_parse.h"
#include "test.h"
#include "xmalloc.h"

/* Feed lines separated by '\n'; return the last add_line result. */
static int
reply_feed(struct smtp_reply *r, const char *text)
{
	const char *why = NULL;
	int ret = -1;

	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t len = nl != NULL ? (size_t)(nl - text) : strlen(text);

		ret = smtp_reply_add_line(r, text, len, &why);
		if (ret != 0)
			return ret;
		text += len + (nl != NULL ? 1 : 0);
	}
	return ret;
}

static void
test_replies(void)
{
	struct smtp_reply r;

	smtp_reply_init(&r);

	test_begin("reply: one line with enhanced code");
	test_assert(reply_feed(&r, "250 2.1.5 Ok") == 1);
	test_assert(r.code == 250);
	test_assert_streq(r.dsn, "2.1.5");
	test_assert_streq(buf_cstr(&r.text), "250 2.1.5 Ok");
	test_end();

	test_begin("reply: multi-line joined as Postfix logs it");
	test_assert(reply_feed(&r, "550-5.1.1 The account\n"
	    "550-5.1.1 does not\n550 5.1.1 exist") == 1);
	test_assert(r.code == 550);
	test_assert_streq(r.dsn, "5.1.1");
	test_assert_streq(buf_cstr(&r.text), "550-5.1.1 The account "
	    "550-5.1.1 does not 550 5.1.1 exist");
	test_assert(r.nlines == 3);
	test_end();

	test_begin("reply: no enhanced code, class fallback");
	test_assert(reply_feed(&r, "451 try later") == 1);
	test_assert_streq(r.dsn, "");
	test_assert_streq(smtp_reply_dsn(&r), "4.0.0");
	test_assert(reply_feed(&r, "250") == 1);
	test_assert_streq(smtp_reply_dsn(&r), "2.0.0");
	test_end();

	test_begin("reply: enhanced code of another class is text");
	test_assert(reply_feed(&r, "550 2.0.0 odd") == 1);
	test_assert_streq(r.dsn, "");
	test_assert(reply_feed(&r, "550 5.1234.1 odd") == 1);
	test_assert_streq(r.dsn, "");
	test_assert(reply_feed(&r, "550 5.7.1") == 1);
	test_assert_streq(r.dsn, "5.7.1");
	test_end();

	test_begin("reply: malformed lines");
	test_assert(reply_feed(&r, "25") == -1);
	test_assert(reply_feed(&r, "abc def") == -1);
	test_assert(reply_feed(&r, "650 nope") == -1);
	test_assert(reply_feed(&r, "250x") == -1);
	test_assert(reply_feed(&r, "250-a\n251 b") == -1);
	{
		const char *why;

		smtp_reply_reset(&r);
		test_assert(smtp_reply_add_line(&r, "250 a\0b", 7, &why) ==
		    -1);
	}
	test_end();

	test_begin("reply: control bytes are spaces in the text");
	test_assert(reply_feed(&r, "250 a\tb\x1b" "c") == 1);
	test_assert_streq(buf_cstr(&r.text), "250 a b c");
	test_end();

	test_begin("reply: too many lines");
	{
		const char *why;
		int i, ret = 0;

		smtp_reply_reset(&r);
		for (i = 0; i < SMTP_MAX_REPLY_LINES + 5 && ret == 0; i++)
			ret = smtp_reply_add_line(&r, "250-x", 5, &why);
		test_assert(ret == -1);
	}
	test_end();

	test_begin("reply: text is clipped");
	{
		char line[SMTP_MAX_REPLY_LINE];
		const char *why;
		int i;

		memset(line, 'a', sizeof(line));
		memcpy(line, "250-", 4);
		smtp_reply_reset(&r);
		for (i = 0; i < 5; i++)
			test_assert(smtp_reply_add_line(&r, line, sizeof(line),
			    &why) == 0);
		test_assert(r.text.len <= SMTP_MAX_REPLY_TEXT);
		test_assert(memcmp(r.text.data + r.text.len - 3, "...", 3) ==
		    0);
	}
	test_end();

	/* Found by fuzz_smtp_reply: a line that ends just short of the
	 * clip, then one more line, passed the bound by up to 3 bytes.
	 * (The text holds whole lines: 1004, then " " and 1040.) */
	test_begin("reply: text bounded after a line that just fits");
	{
		char line[1040];
		const char *why;

		smtp_reply_reset(&r);
		memset(line, 'a', sizeof(line));
		memcpy(line, "250-", 4);
		test_assert(smtp_reply_add_line(&r, line, 1004, &why) == 0);
		test_assert(smtp_reply_add_line(&r, line, sizeof(line), &why) ==
		    0);
		test_assert(r.text.len == SMTP_MAX_REPLY_TEXT - 3);
		test_assert(smtp_reply_add_line(&r, "250 c", 5, &why) == 1);
		test_assert(r.text.len <= SMTP_MAX_REPLY_TEXT);
	}
	test_end();
	smtp_reply_free(&r);
}

static void
test_ehlo(void)
{
	struct smtp_reply r;
	struct smtp_features f;

	memset(&f, 0, sizeof(f));
	smtp_reply_init(&r);
	test_begin("ehlo: keywords");
	test_assert(reply_feed(&r, "250-mx.example.com Hello there\n"
	    "250-PIPELINING\n250-SIZE 10240000\n250-8bitmime\n"
	    "250-AUTH PLAIN LOGIN CRAM-MD5\n250-AUTH=LOGIN XOAUTH2\n"
	    "250-ENHANCEDSTATUSCODES\n250-DSN\n250-STARTTLS\n"
	    "250-SMTPUTF8\n250-X-UNKNOWN foo\n250 CHUNKING") == 1);
	smtp_features_parse(&f, &r);
	test_assert_streq(f.name, "mx.example.com");
	test_assert(f.flags == (SMTP_FEAT_PIPELINING | SMTP_FEAT_SIZE |
	    SMTP_FEAT_8BITMIME | SMTP_FEAT_AUTH | SMTP_FEAT_ENHANCED |
	    SMTP_FEAT_DSN | SMTP_FEAT_STARTTLS | SMTP_FEAT_SMTPUTF8 |
	    SMTP_FEAT_CHUNKING));
	test_assert(f.size_max == 10240000);
	test_assert(f.nauth == 4);
	test_assert(smtp_features_has_auth(&f, "plain"));
	test_assert(smtp_features_has_auth(&f, "XOAUTH2"));
	test_assert(!smtp_features_has_auth(&f, "GSSAPI"));
	test_end();

	test_begin("ehlo: SIZE without a number, bad mechanisms");
	test_assert(reply_feed(&r, "250-x\n250-SIZE\n"
	    "250 AUTH PL\xc3\xa4IN TOOLONGMECHANISMNAME12345 OK") == 1);
	smtp_features_parse(&f, &r);
	test_assert((f.flags & SMTP_FEAT_SIZE) != 0);
	test_assert(f.size_max == 0);
	test_assert(f.nauth == 1);
	test_assert(smtp_features_has_auth(&f, "OK"));
	test_end();

	test_begin("ehlo: one line, overflowing SIZE");
	test_assert(reply_feed(&r, "250 only.name") == 1);
	smtp_features_parse(&f, &r);
	test_assert(f.flags == 0);
	test_assert_streq(f.name, "only.name");
	test_assert(reply_feed(&r, "250-x\n250 SIZE 99999999999999999999999")
	    == 1);
	smtp_features_parse(&f, &r);
	test_assert(f.size_max == 0);
	test_end();

	test_begin("ehlo: many AUTH mechanisms are bounded");
	{
		struct buf b;
		int i;

		buf_init(&b, 0);
		buf_append_str(&b, "250-x\n250 AUTH");
		for (i = 0; i < 100; i++)
			buf_printf(&b, " M%d", i);
		test_assert(reply_feed(&r, buf_cstr(&b)) == 1);
		smtp_features_parse(&f, &r);
		test_assert(f.nauth == SMTP_MAX_AUTH_MECHS);
		buf_free(&b);
	}
	test_end();
	smtp_features_free(&f);
	smtp_reply_free(&r);
}

/* Encode in pieces of step bytes (0: whole); malloc'ed result. */
static char *
enc_run(const char *in, size_t len, bool data, size_t step)
{
	struct smtp_enc e;
	struct buf out;
	size_t off = 0;

	smtp_enc_init(&e, data);
	buf_init(&out, 0);
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		smtp_enc_feed(&e, in + off, n, &out);
		off += n;
	}
	smtp_enc_finish(&e, &out);
	(void)buf_cstr(&out);
	return buf_steal(&out);
}

/* Whole, byte by byte, and split in two at every position: all equal. */
static void
enc_check(const char *in, bool data, const char *want)
{
	size_t len = strlen(in), cut;
	char *got;

	got = enc_run(in, len, data, 0);
	test_assert_streq(got, want);
	free(got);
	got = enc_run(in, len, data, 1);
	test_assert_streq(got, want);
	free(got);
	for (cut = 1; cut < len; cut++) {
		struct smtp_enc e;
		struct buf out;

		smtp_enc_init(&e, data);
		buf_init(&out, 0);
		smtp_enc_feed(&e, in, cut, &out);
		smtp_enc_feed(&e, in + cut, len - cut, &out);
		smtp_enc_finish(&e, &out);
		test_assert_streq(buf_cstr(&out), want);
		buf_free(&out);
	}
}

/* No CR or LF on its own, and no "." line but the terminator. */
static bool
wire_clean(const char *s, bool data)
{
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
			return false;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return false;
	}
	if (data) {
		const char *end = strstr(s, "\r\n.\r\n");

		if (strncmp(s, ".\r\n", 3) == 0 && len > 3)
			return false;
		if (end != NULL && end + 5 != s + len)
			return false;
	}
	return true;
}

static void
test_encoder(void)
{
	test_begin("encoder: LF to CRLF, dot-stuffing, terminator");
	enc_check("Subject: x\n\nhello\n.\n..two\n.end\n", true,
	    "Subject: x\r\n\r\nhello\r\n..\r\n...two\r\n..end\r\n.\r\n");
	enc_check("", true, ".\r\n");
	enc_check(".", true, "..\r\n.\r\n");
	enc_check("no newline", true, "no newline\r\n.\r\n");
	test_end();

	test_begin("encoder: CR LF stored is one line end");
	enc_check("a\r\nb\r\n", true, "a\r\nb\r\n.\r\n");
	test_end();

	test_begin("encoder: stray CR becomes a space (no smuggling)");
	enc_check("a\rb\n", true, "a b\r\n.\r\n");
	enc_check("x\n.\r\n", true, "x\r\n..\r\n.\r\n");
	enc_check("x\r.\rmore\n", true, "x . more\r\n.\r\n");
	enc_check("end\r", true, "end \r\n.\r\n");
	enc_check("a\r\r\nb", true, "a \r\nb\r\n.\r\n");
	enc_check("\r.\r\n", true, " .\r\n.\r\n");
	test_end();

	test_begin("encoder: BDAT mode does not stuff or terminate");
	enc_check("a\n.\nb", false, "a\r\n.\r\nb\r\n");
	enc_check("", false, "");
	enc_check("x\r\n", false, "x\r\n");
	test_end();

	test_begin("encoder: hostile inputs come out clean");
	{
		static const char *const evil[] = {
			"a\n.\r\nMAIL FROM:<x>\n", "a\r.\r\nb", "\n.\n",
			"a\r\n.\r\r\n", "a\n\r.\r\n\r\n", ".\r", "\r\r\r",
			"..\n.\n...\n", NULL
		};
		size_t i;

		for (i = 0; evil[i] != NULL; i++) {
			char *d = enc_run(evil[i], strlen(evil[i]), true, 0);
			char *b = enc_run(evil[i], strlen(evil[i]), false, 0);

			test_assert(wire_clean(d, true));
			test_assert(wire_clean(b, false));
			free(d);
			free(b);
		}
	}
	test_end();
}

static void
test_nexthop(void)
{
	char host[256];
	unsigned port;
	bool mx;

	test_begin("nexthop: domain, port, brackets");
	test_assert(smtp_nexthop_parse("example.com", host, sizeof(host),
	    &port, &mx) == 0);
	test_assert_streq(host, "example.com");
	test_assert(port == 25 && mx);
	test_assert(smtp_nexthop_parse("example.com.:2525", host,
	    sizeof(host), &port, &mx) == 0);
	test_assert_streq(host, "example.com");
	test_assert(port == 2525 && mx);
	test_assert(smtp_nexthop_parse("[mx.example.com]", host, sizeof(host),
	    &port, &mx) == 0);
	test_assert_streq(host, "mx.example.com");
	test_assert(port == 25 && !mx);
	test_assert(smtp_nexthop_parse("[192.0.2.1]:587", host, sizeof(host),
	    &port, &mx) == 0);
	test_assert_streq(host, "192.0.2.1");
	test_assert(port == 587 && !mx);
	test_assert(smtp_nexthop_parse("[2001:db8::1]:submission", host,
	    sizeof(host), &port, &mx) == 0);
	test_assert_streq(host, "2001:db8::1");
	test_assert(port == 587 && !mx);
	test_end();

	test_begin("nexthop: malformed");
	test_assert(smtp_nexthop_parse("", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("[]", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("[x", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("[x]y", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("x:0", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("x:65536", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("x:", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("a b", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("a@b", host, sizeof(host), &port,
	    &mx) < 0);
	test_assert(smtp_nexthop_parse("example.com", host, 5, &port,
	    &mx) < 0);
	test_end();
}

/* Quoted-printable of in, fed in pieces of step bytes (0: whole). */
static char *
qp_run(const char *in, size_t step)
{
	struct smtp_qp q;
	struct buf out;
	size_t len = strlen(in), off, n;
	char *r;

	buf_init(&out, 0);
	smtp_qp_init(&q);
	for (off = 0; off < len; off += n) {
		n = step == 0 || len - off < step ? len - off : step;
		smtp_qp_feed(&q, in + off, n, &out);
	}
	smtp_qp_finish(&q, &out);
	r = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return r;
}

static void
qp_check(const char *in, const char *want)
{
	char *got;
	size_t step;

	for (step = 0; step < 4; step++) {
		got = qp_run(in, step);
		test_assert_streq(got, want);
		free(got);
	}
}

static void
test_qp(void)
{
	char in[200], want[300];
	size_t i;

	test_begin("qp: 8-bit bytes and '=' encoded, ASCII kept");
	qp_check("caf\xc3\xa9 = 100%\n", "caf=C3=A9 =3D 100%\n");
	test_end();

	test_begin("qp: white space at a line end encoded (rule 3)");
	qp_check("a \nb\t\nc d", "a=20\nb=09\nc d");
	qp_check("end ", "end=20");
	test_end();

	test_begin("qp: CR LF is a line end, a bare CR content");
	qp_check("a\r\nb\rc\r", "a\nb=0Dc=0D");
	test_end();

	test_begin("qp: long lines get soft breaks, 76 at most");
	memset(in, 'x', 160);
	in[160] = '\n';
	in[161] = '\0';
	memset(want, 'x', 75);
	memcpy(want + 75, "=\n", 2);
	memset(want + 77, 'x', 75);
	memcpy(want + 152, "=\n", 2);
	memset(want + 154, 'x', 10);
	memcpy(want + 164, "\n", 2);
	qp_check(in, want);
	for (i = 0; i < 40; i++)
		in[i] = (char)0xe9;
	in[40] = '\0';
	{
		char *got = qp_run(in, 1);
		char *line = got, *nl;

		while ((nl = strchr(line, '\n')) != NULL) {
			test_assert(nl - line <= 76);
			line = nl + 1;
		}
		test_assert(strlen(line) <= 76);
		free(got);
	}
	test_end();
}

int
main(void)
{
	test_replies();
	test_ehlo();
	test_encoder();
	test_nexthop();
	test_qp();
	return test_done();
}
