/*
 * Unit tests for smtpd_parse: every parser is fed its input whole, one
 * byte at a time, and split at every position, and must give the same
 * result each way (STYLE §8).  Command lines are split by linebuf
 * (test_linebuf.c); here only the bounds smtpd sets.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "limits_pst.h"
#include "smtpd_parse.h"
#include "str.h"
#include "test.h"

/* ---- command lines ---- */

/*
 * The splitting itself (pieces, CR, skipping) is linebuf's and tested in
 * test_linebuf.c; here the bounds smtpd gives it.  One line of len bytes
 * ('a' and CRLF) and "NOOP" CRLF, at the parser's maximum max (0: the
 * default): true when the first call gives the line (or, with
 * too_long, the error) and the second gives NOOP.
 */
static bool
line_at(size_t len, size_t max, bool too_long)
{
	struct smtpd_line_parser p;
	const char *line;
	size_t consumed, llen, off;
	char *input = malloc(len + 6);
	bool ok;
	int r;

	if (input == NULL)
		return false;
	memset(input, 'a', len - 2);
	memcpy(input + len - 2, "\r\nNOOP\r\n", 8);
	smtpd_line_parser_init(&p);
	if (max > 0)
		p.max = max;
	r = smtpd_line_parse(&p, input, len + 6, &consumed, &line, &llen);
	ok = too_long ? r == -1 : r == 1 && llen == len - 2;
	off = consumed;
	r = smtpd_line_parse(&p, input + off, len + 6 - off, &consumed, &line,
	    &llen);
	ok = ok && r == 1 && llen == 4 && memcmp(line, "NOOP", 4) == 0;
	free(input);
	return ok;
}

static void
test_lines(void)
{
	test_begin("line: default maximum is MAX_SMTP_LINE");
	{
		struct smtpd_line_parser p;

		smtpd_line_parser_init(&p);
		test_assert(p.max == MAX_SMTP_LINE);
	}
	/* Longest legal line: MAX_SMTP_LINE bytes with its CRLF. */
	test_assert(line_at(MAX_SMTP_LINE, 0, false));
	/* One byte more is too long; the rest of the line is skipped. */
	test_assert(line_at(MAX_SMTP_LINE + 1, 0, true));
	test_assert(line_at(MAX_SMTP_LINE * 2 + 17, 0, true));
	test_end();

	/* A SASL exchange line may be longer than a command (RFC 4954 §4). */
	test_begin("line: a larger maximum");
	test_assert(line_at(3 * MAX_SMTP_LINE, 3 * MAX_SMTP_LINE, false));
	test_assert(line_at(3 * MAX_SMTP_LINE + 1, 3 * MAX_SMTP_LINE, true));
	test_end();
}

static void
test_sasl_mech(void)
{
	char twenty[21], long21[22];

	memset(twenty, 'A', 20);
	twenty[20] = '\0';
	memset(long21, 'A', 21);
	long21[21] = '\0';
	test_begin("sasl: mechanism names (RFC 4422 §3.1)");
	test_assert(smtpd_sasl_mech_valid("PLAIN"));
	test_assert(smtpd_sasl_mech_valid("login"));
	test_assert(smtpd_sasl_mech_valid("CRAM-MD5"));
	test_assert(smtpd_sasl_mech_valid("SCRAM-SHA-256"));
	test_assert(smtpd_sasl_mech_valid("X_TEST"));
	test_assert(smtpd_sasl_mech_valid(twenty));
	test_assert(!smtpd_sasl_mech_valid(long21));
	test_assert(!smtpd_sasl_mech_valid(""));
	test_assert(!smtpd_sasl_mech_valid("PLA IN"));
	test_assert(!smtpd_sasl_mech_valid("PLAIN="));
	test_assert(!smtpd_sasl_mech_valid("PL\xc3\x84IN"));
	test_end();
}

/* ---- command parse ---- */

static void
test_command(void)
{
	struct smtpd_command cmd;
	char line[300];

	test_begin("command: verb and arguments");
	strcpy(line, "mail FROM:<a@b>  SIZE=10  ");
	test_assert(smtpd_command_parse(line, strlen(line), &cmd) == 0);
	test_assert_streq(cmd.verb, "MAIL");
	test_assert_streq(cmd.args, "FROM:<a@b>  SIZE=10");
	test_assert(!cmd.eight_bit);
	strcpy(line, "QUIT");
	test_assert(smtpd_command_parse(line, 4, &cmd) == 0);
	test_assert_streq(cmd.verb, "QUIT");
	test_assert_streq(cmd.args, "");
	strcpy(line, "");
	test_assert(smtpd_command_parse(line, 0, &cmd) == 0);
	test_assert_streq(cmd.verb, "");
	test_end();

	test_begin("command: NUL is rejected");
	memcpy(line, "NOOP\0x", 6);
	test_assert(smtpd_command_parse(line, 6, &cmd) == -1);
	test_end();

	test_begin("command: overlong verb");
	strcpy(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZ x");
	test_assert(smtpd_command_parse(line, strlen(line), &cmd) == 0);
	test_assert(cmd.verb_too_long);
	test_assert_streq(cmd.verb, "");
	test_end();

	test_begin("command: 8-bit and UTF-8");
	strcpy(line, "RCPT TO:<j\xc3\xb6rg@example.org>");
	test_assert(smtpd_command_parse(line, strlen(line), &cmd) == 0);
	test_assert(cmd.eight_bit && cmd.utf8_valid);
	strcpy(line, "RCPT TO:<j\xf6rg@example.org>");
	test_assert(smtpd_command_parse(line, strlen(line), &cmd) == 0);
	test_assert(cmd.eight_bit && !cmd.utf8_valid);
	test_end();

	test_begin("command: path keyword");
	test_assert_streq(smtpd_parse_path_keyword("FROM:<a>", "FROM"), "<a>");
	test_assert_streq(smtpd_parse_path_keyword("from: <a>", "FROM"),
	    " <a>");
	test_assert(smtpd_parse_path_keyword("FROM <a>", "FROM") == NULL);
	test_assert(smtpd_parse_path_keyword("FRO:<a>", "FROM") == NULL);
	test_assert(smtpd_parse_path_keyword("TO:<a>", "FROM") == NULL);
	test_assert(smtpd_parse_path_keyword("", "TO") == NULL);
	test_end();
}

/* ---- ESMTP parameters ---- */

static void
test_params(void)
{
	struct smtpd_param p[SMTPD_MAX_PARAMS];
	char s[600];
	int i;

	test_begin("params: keys, values, flags");
	strcpy(s, "size=100 Body=8BITMIME SMTPUTF8  ret=HDRS");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == 4);
	test_assert_streq(p[0].key, "SIZE");
	test_assert_streq(p[0].value, "100");
	test_assert_streq(p[1].key, "BODY");
	test_assert_streq(p[1].value, "8BITMIME");
	test_assert_streq(p[2].key, "SMTPUTF8");
	test_assert(p[2].value == NULL);
	test_assert_streq(p[3].key, "RET");
	test_assert_streq(p[3].value, "HDRS");
	strcpy(s, "");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == 0);
	strcpy(s, "X-FOO=a+2Bb");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == 1);
	test_end();

	test_begin("params: bad syntax");
	strcpy(s, "=x");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	strcpy(s, "SIZE=");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	strcpy(s, "A=b=c");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	strcpy(s, "-A=b");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	strcpy(s, "A_B=c");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	strcpy(s, "A=b\tc");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	s[0] = '\0';
	for (i = 0; i <= SMTPD_MAX_PARAMS; i++)
		strcat(s, "X=1 ");
	test_assert(smtpd_params_parse(s, p, SMTPD_MAX_PARAMS) == -1);
	test_end();

	test_begin("params: xtext");
	test_assert(smtpd_xtext_valid("abc"));
	test_assert(smtpd_xtext_valid("a+2Bb+3d"));
	test_assert(smtpd_xtext_valid(""));
	test_assert(!smtpd_xtext_valid("a+2"));
	test_assert(!smtpd_xtext_valid("a+G0"));
	test_assert(!smtpd_xtext_valid("a=b"));
	test_assert(!smtpd_xtext_valid("a b"));
	test_assert(!smtpd_xtext_valid("a\xc3\xa4"));
	test_end();

	test_begin("params: numbers");
	{
		uint64_t v;

		test_assert(smtpd_parse_number("0", 10, &v) == 0 && v == 0);
		test_assert(smtpd_parse_number("10240000", UINT64_MAX, &v) == 0
		    && v == 10240000);
		test_assert(smtpd_parse_number("18446744073709551615",
		    UINT64_MAX, &v) == 0 && v == UINT64_MAX);
		test_assert(smtpd_parse_number("18446744073709551616",
		    UINT64_MAX, &v) == -1);
		test_assert(smtpd_parse_number("11", 10, &v) == -1);
		test_assert(smtpd_parse_number("9", 5, &v) == -1);
		test_assert(smtpd_parse_number("", 10, &v) == -1);
		test_assert(smtpd_parse_number("-1", 10, &v) == -1);
		test_assert(smtpd_parse_number("1x", 10, &v) == -1);
	}
	test_end();

	test_begin("params: UTF-8 validation");
	test_assert(str_utf8_valid("abc", 3));
	test_assert(str_utf8_valid("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80",
	    9));
	/* overlong forms, a surrogate, above U+10FFFF, truncated */
	test_assert(!str_utf8_valid("\xc0\xaf", 2));
	test_assert(!str_utf8_valid("\xe0\x80\xaf", 3));
	test_assert(!str_utf8_valid("\xed\xa0\x80", 3));
	test_assert(!str_utf8_valid("\xf4\x90\x80\x80", 4));
	test_assert(!str_utf8_valid("\xc3", 1));
	test_assert(!str_utf8_valid("\x80", 1));
	test_end();
}

/* ---- DATA decoder ---- */

struct data_case {
	const char	*name;
	const char	*in;
	const char	*out;		/* stored message */
	int		 end;		/* end of data found */
	const char	*rest;		/* bytes after the end */
};

static const struct data_case data_cases[] = {
	{ "data: simple message", "Subject: x\r\n\r\nbody\r\n.\r\n",
	    "Subject: x\n\nbody\n", 1, "" },
	{ "data: empty message", ".\r\n", "", 1, "" },
	{ "data: empty line then end", "\r\n.\r\n", "\n", 1, "" },
	{ "data: dot-unstuffing", "..dot\r\n...\r\n.x\r\n.\r\n",
	    ".dot\n..\nx\n", 1, "" },
	{ "data: pipelined command after the end",
	    "a\r\n.\r\nQUIT\r\n", "a\n", 1, "QUIT\r\n" },
	{ "data: smuggling \\n.\\n is content",
	    "a\n.\nMAIL FROM:<x>\r\n.\r\n", "a\n.\nMAIL FROM:<x>\n", 1, "" },
	{ "data: smuggling \\r\\n.\\n is content",
	    "a\r\n.\nb\r\n.\r\n", "a\n.\nb\n", 1, "" },
	{ "data: smuggling \\n.\\r\\n is content",
	    "a\n.\r\nb\r\n.\r\n", "a\n.\nb\n", 1, "" },
	{ "data: smuggling \\r.\\r is content",
	    "a\r.\rb\r\n.\r\n", "a\r.\rb\n", 1, "" },
	{ "data: smuggling \\r\\n.\\r is not an end",
	    "a\r\n.\rX\r\n.\r\n", "a\n\rX\n", 1, "" },
	{ "data: smuggling \\r\\n.\\r\\r\\n",
	    "a\r\n.\r\r\n.\r\n", "a\n\r\n", 1, "" },
	{ "data: bare LF alone never ends", "a\n.\n", "a\n.\n", 0, "" },
	{ "data: bare LF end at start", "\n.\n", "\n.\n", 0, "" },
	{ "data: \\n.\\r\\n at start", "\n.\r\n", "\n.\n", 0, "" },
	{ "data: CRLF after a bare-LF line is clean",
	    "x\n\r\n.\r\n", "x\n\n", 1, "" },
	{ "data: dot line after bare LF then end",
	    "x\n.\r\n.\r\n", "x\n.\n", 1, "" },
	{ "data: bare CR kept", "a\rb\r\r\n.\r\n", "a\rb\r\n", 1, "" },
	{ "data: no end yet", "Subject: x\r\n\r\nbody", "Subject: x\n\nbody",
	    0, "" },
	{ "data: CR pending at the end", "abc\r", "abc", 0, "" },
	{ "data: dot pending", "abc\r\n.", "abc\n", 0, "" },
	{ "data: binary bytes", "\x01\xff\x7f\r\n.\r\n", "\x01\xff\x7f\n", 1,
	    "" },
};

static bool
run_data(const struct data_case *c, size_t split1, size_t split2,
    bool bytewise)
{
	struct smtpd_data_decoder d;
	struct buf out;
	size_t len = strlen(c->in), off = 0, consumed = 0;
	int r = 0;
	bool ok;

	smtpd_data_decoder_init(&d);
	buf_init(&out, 0);
	while (off < len && r == 0) {
		size_t n;

		if (bytewise)
			n = 1;
		else if (off < split1)
			n = split1 - off;
		else if (off < split2)
			n = split2 - off;
		else
			n = len - off;
		r = smtpd_data_decode(&d, c->in + off, n, &consumed, &out);
		off += consumed;
		if (r == 0 && consumed != n)
			r = -2;
	}
	ok = r == c->end && out.len == strlen(c->out) &&
	    (out.len == 0 || memcmp(out.data, c->out, out.len) == 0) &&
	    strcmp(c->in + off, c->rest) == 0;
	if (!ok)
		printf("# %s: split %zu/%zu%s: r=%d out=\"%.*s\" rest=\"%s\"\n",
		    c->name, split1, split2, bytewise ? " bytewise" : "", r,
		    (int)out.len, out.data, c->in + off);
	buf_free(&out);
	return ok;
}

static void
test_data(void)
{
	size_t i, a, b;

	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *c = &data_cases[i];
		size_t len = strlen(c->in);

		test_begin(c->name);
		test_assert(run_data(c, len, len, false));
		test_assert(run_data(c, 0, 0, true));
		for (a = 0; a <= len; a++)
			for (b = a; b <= len; b++)
				test_assert(run_data(c, a, b, false));
		test_end();
	}
}

static void
test_data_one_end(void)
{
	/* The classic smuggling payload: one message, never two. */
	static const char in[] =
	    "Subject: one\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n"
	    "RCPT TO:<victim@y>\r\nDATA\r\nSubject: two\r\n\r\nbad\r\n"
	    ".\r\nQUIT\r\n";
	struct smtpd_data_decoder d;
	struct buf out;
	size_t consumed;
	int r;

	test_begin("data: smuggling payload gives one message");
	smtpd_data_decoder_init(&d);
	buf_init(&out, 0);
	r = smtpd_data_decode(&d, in, sizeof(in) - 1, &consumed, &out);
	test_assert(r == 1);
	test_assert_streq(in + consumed, "QUIT\r\n");
	test_assert(memmem(out.data, out.len, "MAIL FROM:<evil@x>\n", 19)
	    != NULL);
	test_assert(memmem(out.data, out.len, "bad\n", 4) != NULL);
	buf_free(&out);
	test_end();
}

/* ---- BDAT decoder ---- */

static void
test_bdat(void)
{
	struct smtpd_bdat_decoder d;
	struct buf out;
	const char *msg = "Subject: x\r\n\r\nline1\r\nline2\r\n";
	size_t len = strlen(msg), a, i;

	test_begin("bdat: CRLF -> LF across every chunk split");
	for (a = 0; a <= len; a++) {
		buf_init(&out, 0);
		smtpd_bdat_decoder_init(&d);
		smtpd_bdat_decode(&d, msg, a, &out);
		smtpd_bdat_decode(&d, msg + a, len - a, &out);
		smtpd_bdat_finish(&d, &out);
		test_assert_streq(buf_cstr(&out),
		    "Subject: x\n\nline1\nline2\n");
		buf_free(&out);
	}
	buf_init(&out, 0);
	smtpd_bdat_decoder_init(&d);
	for (i = 0; i < len; i++)
		smtpd_bdat_decode(&d, msg + i, 1, &out);
	smtpd_bdat_finish(&d, &out);
	test_assert_streq(buf_cstr(&out), "Subject: x\n\nline1\nline2\n");
	buf_free(&out);
	test_end();

	test_begin("bdat: no dot handling, bare CR kept");
	buf_init(&out, 0);
	smtpd_bdat_decoder_init(&d);
	smtpd_bdat_decode(&d, ".\r\n..x\r", 7, &out);
	smtpd_bdat_decode(&d, "y\r", 2, &out);
	smtpd_bdat_decode(&d, "\r", 1, &out);
	smtpd_bdat_finish(&d, &out);
	test_assert_streq(buf_cstr(&out), ".\n..x\ry\r\r");
	buf_free(&out);
	test_end();
}

/* ---- header names ---- */

static void
test_header_name(void)
{
	size_t n = 0;

	test_begin("header: field names");
	test_assert(smtpd_header_name("Subject: x", 10, &n) && n == 7);
	test_assert(smtpd_header_name("Message-ID:<a@b>", 16, &n) && n == 10);
	test_assert(smtpd_header_name("X-Obs :y", 8, &n) && n == 5);
	test_assert(!smtpd_header_name(" folded", 7, &n));
	test_assert(!smtpd_header_name("no colon here", 13, &n));
	test_assert(!smtpd_header_name(":empty", 6, &n));
	test_assert(!smtpd_header_name("From foo@bar Mon", 16, &n));
	test_assert(!smtpd_header_name("", 0, &n));
	test_end();
}

int
main(void)
{
	test_lines();
	test_sasl_mech();
	test_command();
	test_params();
	test_data();
	test_data_one_end();
	test_bdat();
	test_header_name();
	return test_done();
}
