/*
 * Unit tests for linebuf, the bounded line splitter of smtpd and the pop3
 * mail process: input fed whole, one byte at a time and split at every
 * position must give the same lines (STYLE §8); an overlong line is one
 * error however it arrives, and its rest is dropped as it comes in.  The
 * keyword / arguments split of command lines.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "linebuf.h"
#include "test.h"

/* Most input the feeder below held at once in its last run. */
static size_t peak_inbuf;

/*
 * Feed input in pieces of at most step bytes (0: whole) through a buffer
 * the way the sessions do; return the lines joined by '|', an error as
 * "!ERR".  Malloc'ed.
 */
static char *
run_lines(const char *input, size_t len, size_t step, size_t max)
{
	struct linebuf lb;
	struct buf in, out;
	size_t off = 0, items = 0;

	linebuf_init(&lb);
	buf_init(&in, 0);
	buf_init(&out, 0);
	peak_inbuf = 0;
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		buf_append(&in, input + off, n);
		off += n;
		if (in.len > peak_inbuf)
			peak_inbuf = in.len;
		for (;;) {
			const char *line;
			size_t consumed, llen;
			int r = linebuf_parse(&lb, in.data, in.len, max,
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

/* Every split of input gives want. */
static void
check_lines(const char *input, size_t max, const char *want)
{
	size_t len = strlen(input), step;

	for (step = 0; step <= len; step++) {
		char *got = run_lines(input, len, step, max);

		test_assert_streq(got, want);
		free(got);
	}
}

static void
test_lines(void)
{
	test_begin("linebuf: lines, CRLF and LF");
	check_lines("STAT\r\nLIST\r\n", 64, "STAT|LIST");
	check_lines("stat\nlist 1\r\nQUIT", 64, "stat|list 1");
	check_lines("\r\n\r\nNOOP\r\n", 64, "||NOOP");
	check_lines("EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\nDATA\r\n",
	    64, "EHLO a|MAIL FROM:<x@y>|RCPT TO:<z@y>|DATA");
	test_end();

	test_begin("linebuf: a lone CR is content");
	check_lines("NO\rOP\r\r\n", 64, "NO\rOP\r");
	check_lines("A\rB\r\n", 64, "A\rB");
	test_end();

	test_begin("linebuf: partial line waits");
	check_lines("NOOP\r\nQU", 64, "NOOP");
	check_lines("NOOP\r", 64, "");
	test_end();
}

static void
test_bound(void)
{
	static char big[3000];
	static char want[3000];

	test_begin("linebuf: max counts the terminator");
	/* 6 bytes + CRLF fit in 8; 7 + CRLF do not. */
	check_lines("ABCDEF\r\nNOOP\r\n", 8, "ABCDEF|NOOP");
	check_lines("ABCDEFG\nNOOP\r\n", 8, "ABCDEFG|NOOP");
	check_lines("ABCDEFG\r\nNOOP\r\n", 8, "!ERR|NOOP");
	check_lines("ABCDEFGH\nNOOP\r\n", 8, "!ERR|NOOP");
	test_end();

	test_begin("linebuf: overlong line is one error, then the next line");
	check_lines("ABCDEFGHIJKLMNOP\r\nNOOP\r\n", 8, "!ERR|NOOP");
	check_lines("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\nRETR 1\n", 8,
	    "!ERR|RETR 1");
	check_lines("ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\nABCDEFGHIJ\r\nOK\r\n", 8,
	    "!ERR|!ERR|OK");
	test_end();

	test_begin("linebuf: longest line at a larger bound");
	memset(big, 'a', 2046);
	memcpy(big + 2046, "\r\nNOOP\r\n", 9);
	memset(want, 'a', 2046);
	memcpy(want + 2046, "|NOOP", 6);
	check_lines(big, 2048, want);
	memset(big, 'a', 2047);
	memcpy(big + 2047, "\r\nNOOP\r\n", 9);
	check_lines(big, 2048, "!ERR|NOOP");
	test_end();
}

/* A client that never ends its line costs at most one piece plus max. */
static void
test_skip_bounded(void)
{
	size_t len = 1024 * 1024, step;
	char *input = malloc(len + 8);
	char *got;

	test_begin("linebuf: an endless line is dropped as it arrives");
	test_assert(input != NULL);
	if (input != NULL) {
		memset(input, 'x', len);
		memcpy(input + len, "\nQUIT\n", 7);
		for (step = 1000; step <= 64 * 1024; step *= 4) {
			got = run_lines(input, len + 6, step, 256);
			test_assert_streq(got, "!ERR|QUIT");
			test_assert(peak_inbuf <= step + 256);
			free(got);
		}
	}
	free(input);
	test_end();
}

static void
test_edges(void)
{
	struct linebuf lb;
	const char *line;
	size_t consumed, llen;

	test_begin("linebuf: an empty buffer without storage");
	linebuf_init(&lb);
	test_assert(linebuf_parse(&lb, NULL, 0, 64, &consumed, &line,
	    &llen) == 0 && consumed == 0);
	test_end();

	test_begin("linebuf: NUL bytes are left to the command parser");
	linebuf_init(&lb);
	test_assert(linebuf_parse(&lb, "A\0B\r\n", 5, 64, &consumed, &line,
	    &llen) == 1);
	test_assert(llen == 3 && consumed == 5);
	test_assert(memcmp(line, "A\0B", 3) == 0);
	test_end();

	test_begin("linebuf: skipping ends at the LF of the long line");
	linebuf_init(&lb);
	test_assert(linebuf_parse(&lb, "0123456789", 10, 4, &consumed, &line,
	    &llen) == -1 && consumed == 10);
	test_assert(linebuf_parse(&lb, "abc", 3, 4, &consumed, &line,
	    &llen) == 0 && consumed == 3);
	test_assert(linebuf_parse(&lb, "d\nOK\n", 5, 4, &consumed, &line,
	    &llen) == 1 && consumed == 5 && llen == 2 &&
	    memcmp(line, "OK", 2) == 0);
	test_end();
}

/* line split into "KEYWORD|args|too_long" in out. */
static void
split(const char *line, size_t ksize, char *out, size_t outsize)
{
	char copy[128], keyword[16], *args;
	bool too_long;

	snprintf(copy, sizeof(copy), "%s", line);
	linebuf_split_command(copy, strlen(copy), keyword, ksize, &too_long,
	    &args);
	snprintf(out, outsize, "%s|%s|%d", keyword, args, too_long);
}

static void
test_split(void)
{
	char got[256];

	test_begin("linebuf: keyword and arguments");
	split("retr 1", 16, got, sizeof(got));
	test_assert_streq(got, "RETR|1|0");
	split("  mail FROM:<a@b>  SIZE=10 \t ", 16, got, sizeof(got));
	test_assert_streq(got, "MAIL|FROM:<a@b>  SIZE=10|0");
	split("\tQuit", 16, got, sizeof(got));
	test_assert_streq(got, "QUIT||0");
	split("", 16, got, sizeof(got));
	test_assert_streq(got, "||0");
	split("   ", 16, got, sizeof(got));
	test_assert_streq(got, "||0");
	/* Only ASCII letters change case. */
	split("n\xc3\xa4 x", 16, got, sizeof(got));
	test_assert_streq(got, "N\xc3\xa4|x|0");
	test_end();

	test_begin("linebuf: a keyword longer than its buffer");
	split("ABCD x", 5, got, sizeof(got));
	test_assert_streq(got, "ABCD|x|0");
	split("ABCDE x", 5, got, sizeof(got));
	test_assert_streq(got, "|x|1");
	split("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 16, got, sizeof(got));
	test_assert_streq(got, "||1");
	test_end();
}

int
main(void)
{
	test_lines();
	test_bound();
	test_skip_bounded();
	test_edges();
	test_split();
	return test_done();
}
