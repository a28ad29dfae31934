/*
 * fuzz_pop3_parse: the pure POP3 parsers of pop3/pop3_parse.c, behind
 * the line splitter that feeds them (common/linebuf.c).  Byte 0 gives a
 * chunk size (byte 0 + 1) and, through its top bit, whether the
 * multi-line encoder runs as RETR or as TOP with (byte 0 & 0x0f) lines;
 * the rest is client bytes (command lines) and, at the same time, a
 * message to encode.
 *
 * Checked beyond "no crash":
 *   - the line splitter gives the same lines and overlong-line errors
 *     on the whole input, one byte at a time and in chunks;
 *   - the encoder gives the same bytes each way; its output has CRLF
 *     line ends only, ends in CRLF "." CRLF, and undoing the
 *     byte-stuffing gives a message with no line starting "." CRLF
 *     before the end;
 *   - every line goes through the keyword/argument split and the
 *     number parsers, and is tried as pop3_uidl_format (an accepted
 *     format must expand to 1..70 characters "!".."~") and as
 *     pop3_logout_format.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "linebuf.h"
#include "pop3_parse.h"
#include "xmalloc.h"

#define MAX_FUZZ_POP3_INPUT	(16 * 1024)

static void __attribute__((noreturn))
fuzz_pop3_fail(const char *what, size_t chunk)
{
	fprintf(stderr, "pop3_parse: %s (chunk size %zu)\n", what, chunk);
	abort();
}

static void
fuzz_pop3_command(const char *line, size_t len)
{
	struct pop3_command cmd;
	struct pop3_logout_stats st;
	char *argv[3];
	const char *error;
	char *copy;
	uint32_t n;
	uint64_t c;
	int argc, i;

	copy = xmalloc(len + 1);
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (pop3_command_parse(copy, len, &cmd) == 0) {
		if (strlen(cmd.keyword) >= POP3_KEYWORD_MAX)
			fuzz_pop3_fail("keyword too long", 0);
		argc = pop3_args_split(cmd.args, argv, 3);
		if (argc > 3)
			fuzz_pop3_fail("too many arguments", 0);
		for (i = 0; i < argc; i++) {
			if (pop3_parse_msgnum(argv[i], &n) == 0 && n == 0)
				fuzz_pop3_fail("message number 0", 0);
			(void)pop3_parse_count(argv[i], &c);
		}
	}
	free(copy);

	/* The line as a configured format. */
	copy = xmalloc(len + 1);
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (pop3_uidl_format_check(copy, &error) == 0) {
		struct buf b;
		size_t k;

		buf_init(&b, 0);
		pop3_uidl_expand(&b, copy, 12345, 0xdeadbeef);
		if (b.len == 0 || b.len > POP3_MAX_UIDL)
			fuzz_pop3_fail("UIDL length", 0);
		for (k = 0; k < b.len; k++)
			if (b.data[k] < '!' || b.data[k] > '~')
				fuzz_pop3_fail("UIDL character", 0);
		buf_free(&b);
	} else if (error == NULL)
		fuzz_pop3_fail("format refused without a reason", 0);
	memset(&st, 0x5a, sizeof(st));
	{
		struct buf b;

		buf_init(&b, 0);
		pop3_logout_expand(&b, copy, &st);
		if (b.len > 512)
			fuzz_pop3_fail("logout text too long", 0);
		buf_free(&b);
	}
	free(copy);
}

static void
fuzz_pop3_lines(const uint8_t *data, size_t size, size_t chunk, bool parse,
    struct buf *rec)
{
	struct linebuf p;
	struct buf in;
	size_t off = 0, take, consumed, line_len;
	const char *line;
	int rc;

	linebuf_init(&p);
	buf_init(&in, 0);
	while (off < size) {
		take = size - off < chunk ? size - off : chunk;
		buf_append(&in, data + off, take);
		off += take;
		while (in.len > 0) {
			rc = linebuf_parse(&p, in.data, in.len, 256,
			    &consumed, &line, &line_len);
			if (consumed > in.len)
				fuzz_pop3_fail("consumed past the input",
				    chunk);
			if (rc == 1) {
				if (line < in.data || line_len > consumed ||
				    line_len > 256)
					fuzz_pop3_fail("bad line", chunk);
				buf_printf(rec, "L%zu:", line_len);
				buf_append(rec, line, line_len);
				if (parse)
					fuzz_pop3_command(line, line_len);
			} else if (rc < 0)
				buf_append_str(rec, "E;");
			if (rc != 0 && consumed == 0)
				fuzz_pop3_fail("no progress", chunk);
			buf_consume(&in, consumed);
			if (rc == 0)
				break;
		}
	}
	buf_free(&in);
}

static void
fuzz_pop3_stuff(const uint8_t *data, size_t size, size_t chunk, int64_t top,
    struct buf *out)
{
	struct pop3_stuffer st;
	size_t off = 0, take;

	pop3_stuffer_init(&st, top);
	while (off < size) {
		take = size - off < chunk ? size - off : chunk;
		if (pop3_stuff(&st, (const char *)data + off, take, out))
			break;
		off += take;
	}
	pop3_stuff_finish(&st, out);
}

/* The encoder's output is a well-formed multi-line response body. */
static void
fuzz_pop3_check_response(const struct buf *b)
{
	size_t i, bol = 0;

	if (b->len < 3 || memcmp(b->data + b->len - 3, ".\r\n", 3) != 0)
		fuzz_pop3_fail("no terminator", 0);
	for (i = 0; i < b->len; i++) {
		if (b->data[i] != '\n')
			continue;
		if (i == 0 || b->data[i - 1] != '\r')
			fuzz_pop3_fail("bare LF in the output", 0);
		/* A line ".": only the terminator may be one. */
		if (i - bol == 2 && b->data[bol] == '.' && i + 1 != b->len)
			fuzz_pop3_fail("terminator inside the response", 0);
		bol = i + 1;
	}
}

static void
fuzz_pop3_compare(const char *what, struct buf *a, struct buf *b,
    size_t chunk)
{
	if (a->len != b->len || (a->len > 0 &&
	    memcmp(a->data, b->data, a->len) != 0))
		fuzz_pop3_fail(what, chunk);
	buf_reset(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole, part;
	size_t chunk;
	int64_t top;

	if (size < 1 || size > MAX_FUZZ_POP3_INPUT)
		return 0;
	chunk = (size_t)data[0] + 1;
	top = (data[0] & 0x80) != 0 ? (int64_t)(data[0] & 0x0f) : -1;
	data++;
	size--;
	buf_init(&whole, 0);
	buf_init(&part, 0);

	fuzz_pop3_lines(data, size, size > 0 ? size : 1, true, &whole);
	fuzz_pop3_lines(data, size, 1, false, &part);
	fuzz_pop3_compare("lines differ byte by byte", &whole, &part, 1);
	fuzz_pop3_lines(data, size, chunk, false, &part);
	fuzz_pop3_compare("lines differ in chunks", &whole, &part, chunk);
	buf_reset(&whole);

	fuzz_pop3_stuff(data, size, size > 0 ? size : 1, top, &whole);
	fuzz_pop3_check_response(&whole);
	fuzz_pop3_stuff(data, size, 1, top, &part);
	fuzz_pop3_compare("response differs byte by byte", &whole, &part, 1);
	fuzz_pop3_stuff(data, size, chunk, top, &part);
	fuzz_pop3_compare("response differs in chunks", &whole, &part, chunk);

	buf_free(&whole);
	buf_free(&part);
	return 0;
}
