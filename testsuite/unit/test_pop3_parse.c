/*
 * Unit tests for pop3_parse: keyword/argument splitting; number parsing with
 * overflow; the multi-line encoder (byte-stuffing, CRLF, TOP line
 * counting) in every split of its input; pop3_uidl_format against
 * values Dovecot produces; pop3_logout_format (STYLE §8).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pop3_parse.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

/* ---- command lines (split by linebuf: test_linebuf.c) ---- */

static void
test_command(void)
{
	struct pop3_command cmd;
	char line[128];
	char *argv[3];

	test_begin("pop3_command_parse");
	strcpy(line, "retr 1");
	test_assert(pop3_command_parse(line, strlen(line), &cmd) == 0);
	test_assert_streq(cmd.keyword, "RETR");
	test_assert_streq(cmd.args, "1");

	strcpy(line, "  Top  2   10  ");
	test_assert(pop3_command_parse(line, strlen(line), &cmd) == 0);
	test_assert_streq(cmd.keyword, "TOP");
	test_assert_streq(cmd.args, "2   10");
	test_assert(pop3_args_split(cmd.args, argv, 2) == 2);
	test_assert_streq(argv[0], "2");
	test_assert_streq(argv[1], "10");

	strcpy(line, "QUIT");
	test_assert(pop3_command_parse(line, strlen(line), &cmd) == 0);
	test_assert_streq(cmd.keyword, "QUIT");
	test_assert_streq(cmd.args, "");
	test_assert(pop3_args_split(cmd.args, argv, 2) == 0);

	strcpy(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZ x");
	test_assert(pop3_command_parse(line, strlen(line), &cmd) == 0);
	test_assert(cmd.keyword_too_long);
	test_assert_streq(cmd.keyword, "");

	memcpy(line, "NO\0OP", 6);
	test_assert(pop3_command_parse(line, 5, &cmd) < 0);

	strcpy(line, "1 2 3");
	test_assert(pop3_args_split(line, argv, 2) == -1);
	test_end();
}

static void
test_numbers(void)
{
	uint32_t n;
	uint64_t c;

	test_begin("pop3_parse_msgnum / pop3_parse_count");
	test_assert(pop3_parse_msgnum("1", &n) == 0 && n == 1);
	test_assert(pop3_parse_msgnum("4294967295", &n) == 0 &&
	    n == 4294967295u);
	test_assert(pop3_parse_msgnum("4294967296", &n) < 0);
	test_assert(pop3_parse_msgnum("99999999999999999999999", &n) < 0);
	test_assert(pop3_parse_msgnum("0", &n) < 0);
	test_assert(pop3_parse_msgnum("-1", &n) < 0);
	test_assert(pop3_parse_msgnum("+1", &n) < 0);
	test_assert(pop3_parse_msgnum("1x", &n) < 0);
	test_assert(pop3_parse_msgnum("", &n) < 0);
	test_assert(pop3_parse_msgnum(" 1", &n) < 0);
	test_assert(pop3_parse_count("0", &c) == 0 && c == 0);
	test_assert(pop3_parse_count("9223372036854775807", &c) == 0 &&
	    c == 9223372036854775807ull);
	test_assert(pop3_parse_count("9223372036854775808", &c) < 0);
	test_assert(pop3_parse_count("-5", &c) < 0);
	test_end();
}

/* ---- multi-line encoder ---- */

/* Encode msg in pieces of step bytes (0: whole); malloc'ed result. */
static char *
run_stuff(const char *msg, size_t len, size_t step, int64_t top)
{
	struct pop3_stuffer st;
	struct buf out;
	size_t off = 0;

	pop3_stuffer_init(&st, top);
	buf_init(&out, 0);
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		if (pop3_stuff(&st, msg + off, n, &out))
			break;
		off += n;
	}
	pop3_stuff_finish(&st, &out);
	return buf_steal(&out);
}

static void
check_stuff(const char *msg, int64_t top, const char *want)
{
	size_t len = strlen(msg), step;

	for (step = 0; step <= len; step++) {
		char *got = run_stuff(msg, len, step, top);

		test_assert_streq(got, want);
		free(got);
	}
}

static void
test_stuff(void)
{
	test_begin("pop3_stuff: RETR");
	check_stuff("", -1, ".\r\n");
	check_stuff("a\r\nb\r\n", -1, "a\r\nb\r\n.\r\n");
	/* LF-only files: CRLF on the wire */
	check_stuff("a\nb\n", -1, "a\r\nb\r\n.\r\n");
	/* no final line end: one is added before the terminator */
	check_stuff("a\r\nb", -1, "a\r\nb\r\n.\r\n");
	check_stuff("a\r", -1, "a\r\n.\r\n");
	/* byte-stuffing of every line that starts with "." */
	check_stuff(".\r\n..x\r\n.y\n", -1, "..\r\n...x\r\n..y\r\n.\r\n");
	check_stuff("Subject: x\r\n\r\n.\r\n", -1,
	    "Subject: x\r\n\r\n..\r\n.\r\n");
	/* a bare CR is content: the "." after it does not start a line */
	check_stuff("a\r.b\r\n", -1, "a\r.b\r\n.\r\n");
	check_stuff("\r\r\n.\r\n", -1, "\r\r\n..\r\n.\r\n");
	test_end();

	test_begin("pop3_stuff: TOP");
	check_stuff("H: 1\r\nI: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", 0,
	    "H: 1\r\nI: 2\r\n\r\n.\r\n");
	check_stuff("H: 1\r\nI: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", 2,
	    "H: 1\r\nI: 2\r\n\r\nb1\r\nb2\r\n.\r\n");
	check_stuff("H: 1\n\nb1\n.b2\nb3\n", 2,
	    "H: 1\r\n\r\nb1\r\n..b2\r\n.\r\n");
	check_stuff("H: 1\r\n\r\nb1\r\nb2", 10,
	    "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n");
	/* no empty line: everything is header */
	check_stuff("H: 1\r\nI: 2", 0, "H: 1\r\nI: 2\r\n.\r\n");
	/* an empty body line counts as a line */
	check_stuff("H: 1\r\n\r\n\r\n\r\nx\r\n", 2,
	    "H: 1\r\n\r\n\r\n\r\n.\r\n");
	test_end();
}

/* ---- pop3_uidl_format ---- */

static char *
uidl(const char *fmt, uint32_t uid, uint32_t uidv)
{
	struct buf b;

	buf_init(&b, 0);
	pop3_uidl_expand(&b, fmt, uid, uidv);
	return buf_steal(&b);
}

static void
check_uidl(const char *fmt, uint32_t uid, uint32_t uidv, const char *want)
{
	char *got = uidl(fmt, uid, uidv);

	test_assert_streq(got, want);
	free(got);
}

static void
test_uidl(void)
{
	const char *error;

	test_begin("pop3_uidl_expand");
	/* Dovecot's default: lower-case hex, zero-padded to 8 */
	check_uidl("%08Xu%08Xv", 1, 1487321712, "0000000158a6ba70");
	check_uidl("%08Xu%08Xv", 4294967295u, 4294967295u,
	    "ffffffffffffffff");
	check_uidl("%08Xu%08Xv", 0x1234, 0xabcdef01u, "00001234abcdef01");
	/* UW-IMAP / Courier styles */
	check_uidl("%v.%u", 42, 1700000000, "1700000000.42");
	check_uidl("%u", 7, 1, "7");
	check_uidl("%{uidvalidity}-%{uid}", 7, 9, "9-7");
	/* width without zero truncates, with zero pads */
	check_uidl("%3v", 7, 123456, "123");
	check_uidl("%05u", 42, 1, "00042");
	check_uidl("%Uv%Xu", 255, 1, "1ff");
	/* modifiers apply left to right, as in Dovecot */
	check_uidl("%XUu", 255, 1, "FF");
	check_uidl("%UXu", 255, 1, "ff");
	/* offsets: skip, or keep the last n */
	check_uidl("%2.3v", 1, 1234567, "345");
	check_uidl("%-2.0v", 1, 1234567, "67");
	check_uidl("%%%u", 5, 1, "%5");
	test_end();

	test_begin("pop3_uidl_format_check");
	test_assert(pop3_uidl_format_check("%08Xu%08Xv", &error) == 0);
	test_assert(pop3_uidl_format_check("%v.%u", &error) == 0);
	test_assert(pop3_uidl_format_check("%m", &error) < 0);
	test_assert(error != NULL);
	test_assert(pop3_uidl_format_check("%f", &error) < 0);
	test_assert(pop3_uidl_format_check("%{guid}", &error) < 0);
	test_assert(pop3_uidl_format_check("", &error) < 0);
	test_assert(pop3_uidl_format_check("u %u", &error) < 0);
	test_assert(pop3_uidl_format_check("%080u", &error) < 0);
	test_assert(pop3_uidl_format_check("%u%", &error) == 0);
	test_end();
}

static void
test_logout(void)
{
	struct pop3_logout_stats st = {
		.top_count = 0, .top_bytes = 0,
		.retr_count = 1, .retr_bytes = 123,
		.deleted_count = 0, .message_count = 1,
		.message_bytes = 456, .input = 40, .output = 600,
	};
	struct buf b;

	test_begin("pop3_logout_expand");
	buf_init(&b, 0);
	pop3_logout_expand(&b, POP3_LOGOUT_FORMAT_DEFAULT, &st);
	test_assert_streq(buf_cstr(&b),
	    "top=0/0, retr=1/123, del=0/1, size=456");
	buf_reset(&b);
	pop3_logout_expand(&b, "in=%i out=%o %{retr_bytes} %% %z.", &st);
	test_assert_streq(buf_cstr(&b), "in=40 out=600 123 % .");
	buf_free(&b);
	test_end();
}

int
main(void)
{
	test_command();
	test_numbers();
	test_stuff();
	test_uidl();
	test_logout();
	return test_done();
}
