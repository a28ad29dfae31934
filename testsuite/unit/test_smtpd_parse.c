/*
 * Unit tests for smtpd_parse: every parser is fed its input whole, one
 * byte at a time, and split at every position, and must give the same
 * result each way (STYLE §8).
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

/* Line length limit run_lines() sets (0: the parser's default). */
static size_t lines_max;

/*
 * Feed input in pieces of at most step bytes (0: whole) through a buffer,
 * the way smtpd_session does; return the lines joined by '|', an error as
 * "!ERR".  Malloc'ed.
 */
static char *
run_lines(const char *input, size_t len, size_t step)
{
	struct smtpd_line_parser p;
	struct buf in, out;
	size_t off = 0, items = 0;

	smtpd_line_parser_init(&p);
	if (lines_max > 0)
		p.max = lines_max;
	buf_init(&in, 0);
	buf_init(&out, 0);
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		buf_append(&in, input + off, n);
		off += n;
		for (;;) {
			const char *line;
			size_t consumed, llen;
			int r = smtpd_line_parse(&p, in.data, in.len,
			    &consumed, &line, &llen);

			if (r != 0 && items++ > 0)
				buf_append_char(&out, '|');
			if (r == 1)
				buf_append(&out, line, llen);
			else if (r < 0)
				buf_append_str(&out, "!ERR");
			buf_consume(&in, consumed);
			if (r == 0)
				break;
		}
	}
	buf_free(&in);
	return buf_steal(&out);
}

static void
check_lines(const char *name, const char *input, size_t len,
    const char *want)
{
	size_t steps[] = { 0, 1, 2, 7, 100, 1000 };
	size_t i;

	test_begin(name);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *got = run_lines(input, len, steps[i]);

		test_assert_streq(got, want);
		free(got);
	}
	test_end();
}

static void
test_lines(void)
{
	static const char pipelined[] =
	    "EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\nDATA\r\n";
	static char big[MAX_SMTP_LINE * 3];
	static char want[MAX_SMTP_LINE + 10];
	size_t n;

	check_lines("line: pipelined commands", pipelined,
	    sizeof(pipelined) - 1, "EHLO a|MAIL FROM:<x@y>|RCPT TO:<z@y>|DATA");
	check_lines("line: partial line waits", "NOOP\r\nQU", 8, "NOOP");
	check_lines("line: empty lines", "\r\n\n", 3, "|");
	check_lines("line: bare CR stays in the line", "A\rB\r\n", 5,
	    "A\rB");

	/* Longest legal line: MAX_SMTP_LINE bytes with its CRLF. */
	memset(big, 'a', MAX_SMTP_LINE - 2);
	memcpy(big + MAX_SMTP_LINE - 2, "\r\nNOOP\r\n", 8);
	memset(want, 'a', MAX_SMTP_LINE - 2);
	memcpy(want + MAX_SMTP_LINE - 2, "|NOOP", 6);
	check_lines("line: MAX_SMTP_LINE is accepted", big, MAX_SMTP_LINE + 6,
	    want);
	/* One byte more is too long; the rest of the line is skipped. */
	memset(big, 'a', MAX_SMTP_LINE - 1);
	memcpy(big + MAX_SMTP_LINE - 1, "\r\nNOOP\r\n", 8);
	check_lines("line: MAX_SMTP_LINE + 1 is too long", big,
	    MAX_SMTP_LINE + 7, "!ERR|NOOP");
	/* Far too long: one error, then the next command. */
	n = MAX_SMTP_LINE * 2 + 17;
	memset(big, 'b', n);
	memcpy(big + n, "\nQUIT\r\n", 7);
	check_lines("line: overlong line skipped to its LF", big, n + 7,
	    "!ERR|QUIT");
}

/* A SASL exchange line may be longer than a command (RFC 4954 §4). */
static void
test_lines_max(void)
{
	static char big[3 * MAX_SMTP_LINE + 16];
	static char want[3 * MAX_SMTP_LINE + 16];
	size_t max = 3 * MAX_SMTP_LINE;

	test_begin("line: default maximum is MAX_SMTP_LINE");
	{
		struct smtpd_line_parser p;

		smtpd_line_parser_init(&p);
		test_assert(p.max == MAX_SMTP_LINE);
	}
	test_end();

	lines_max = max;
	memset(big, 'c', max - 2);
	memcpy(big + max - 2, "\r\nNOOP\r\n", 8);
	memset(want, 'c', max - 2);
	memcpy(want + max - 2, "|NOOP", 6);
	check_lines("line: a larger maximum is accepted", big, max + 6, want);
	memset(big, 'c', max - 1);
	memcpy(big + max - 1, "\r\nNOOP\r\n", 8);
	check_lines("line: one byte past a larger maximum", big, max + 7,
	    "!ERR|NOOP");
	lines_max = 0;
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

static void
test_line_nul(void)
{
	const char *line;
	size_t consumed, llen;
	struct smtpd_line_parser p;

	test_begin("line: NUL bytes are passed to the command parser");
	smtpd_line_parser_init(&p);
	test_assert(smtpd_line_parse(&p, "A\0B\r\n", 5, &consumed, &line,
	    &llen) == 1);
	test_assert(llen == 3 && consumed == 5);
	test_assert(memcmp(line, "A\0B", 3) == 0);
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
	test_lines_max();
	test_line_nul();
	test_sasl_mech();
	test_command();
	test_params();
	test_data();
	test_data_one_end();
	test_bdat();
	test_header_name();
	return test_done();
}
