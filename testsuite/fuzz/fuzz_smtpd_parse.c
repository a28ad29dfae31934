/*
 * fuzz_smtpd_parse: the pure SMTP parsers of smtp/smtpd_parse.c.  The
 * input is client bytes.  Resumability is checked differentially: the
 * command line splitter, the DATA decoder and the BDAT decoder are run on
 * the whole input at once, one byte at a time, and in chunks of a size
 * taken from the first byte, and must give the same lines (and errors),
 * the same decoded message and the same end position every time.  Each
 * line is then split into verb and arguments, its ESMTP parameters
 * parsed and their values checked as xtext and numbers, and it is tried
 * as a header field name.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "smtpd_parse.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_SMTPD_INPUT	(16 * 1024)

static void __attribute__((noreturn))
fuzz_smtpd_fail(const char *what, size_t chunk)
{
	fprintf(stderr, "smtpd_parse: %s (chunk size %zu)\n", what, chunk);
	abort();
}

/* What one command line says, through every line-level parser. */
static void
fuzz_smtpd_command(const char *line, size_t len)
{
	struct smtpd_param params[SMTPD_MAX_PARAMS];
	struct smtpd_command cmd;
	const char *after;
	char *copy, *pcopy;
	size_t name_len;
	uint64_t v;
	int n, i;

	(void)str_utf8_valid(line, len);
	if (smtpd_header_name(line, len, &name_len) && name_len > len)
		fuzz_smtpd_fail("header name longer than the line", 0);
	/* The line may hold NUL bytes: copy all len of them. */
	copy = xmalloc(len + 1);
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (smtpd_command_parse(copy, len, &cmd) < 0) {
		free(copy);
		return;
	}
	if (cmd.args == NULL)
		fuzz_smtpd_fail("command without args", 0);
	after = smtpd_parse_path_keyword(cmd.args, strcmp(cmd.verb,
	    "RCPT") == 0 ? "TO" : "FROM");
	pcopy = xstrdup(after != NULL ? after : cmd.args);
	n = smtpd_params_parse(pcopy, params, SMTPD_MAX_PARAMS);
	if (n > SMTPD_MAX_PARAMS)
		fuzz_smtpd_fail("too many parameters returned", 0);
	for (i = 0; i < n; i++) {
		if (params[i].value == NULL)
			continue;
		(void)smtpd_xtext_valid(params[i].value);
		(void)smtpd_parse_number(params[i].value, UINT64_MAX, &v);
		(void)smtpd_parse_number(params[i].value, 10240000, &v);
	}
	(void)smtpd_xtext_valid(cmd.args);
	(void)smtpd_parse_number(cmd.args, 65535, &v);
	free(pcopy);
	free(copy);
}

/*
 * Split data into command lines as a session would, given chunk bytes
 * at a time; the record lists each line and each overlong-line error.
 * Every line is handed to fuzz_smtpd_command() when parse is set.
 */
static void
fuzz_smtpd_lines(const uint8_t *data, size_t size, size_t chunk,
    bool parse, struct buf *rec)
{
	struct smtpd_line_parser p;
	struct buf in;
	size_t off = 0, take, consumed, line_len;
	const char *line;
	int rc;

	smtpd_line_parser_init(&p);
	buf_init(&in, 0);
	while (off < size) {
		take = size - off < chunk ? size - off : chunk;
		buf_append(&in, data + off, take);
		off += take;
		while (in.len > 0) {
			rc = smtpd_line_parse(&p, in.data, in.len, &consumed,
			    &line, &line_len);
			if (consumed > in.len)
				fuzz_smtpd_fail("consumed past the input",
				    chunk);
			if (rc == 1) {
				if (line < in.data || line_len > consumed ||
				    line + line_len > in.data + in.len)
					fuzz_smtpd_fail("line outside the "
					    "input", chunk);
				buf_printf(rec, "L%zu:", line_len);
				buf_append(rec, line, line_len);
				if (parse)
					fuzz_smtpd_command(line, line_len);
			} else if (rc < 0)
				buf_append_str(rec, "E;");
			if (rc != 0 && consumed == 0)
				fuzz_smtpd_fail("no progress", chunk);
			buf_consume(&in, consumed);
			if (rc == 0)
				break;
		}
	}
	buf_free(&in);
}

/* DATA: the decoded message, then the end position if the end came. */
static void
fuzz_smtpd_data(const uint8_t *data, size_t size, size_t chunk,
    struct buf *out)
{
	struct smtpd_data_decoder d;
	size_t off = 0, take, consumed;

	smtpd_data_decoder_init(&d);
	while (off < size) {
		take = size - off < chunk ? size - off : chunk;
		if (smtpd_data_decode(&d, (const char *)data + off, take,
		    &consumed, out) == 1) {
			if (consumed > take)
				fuzz_smtpd_fail("DATA consumed past the input",
				    chunk);
			buf_printf(out, "[end at %zu]", off + consumed);
			return;
		}
		if (consumed != take)
			fuzz_smtpd_fail("DATA did not take all input",
			    chunk);
		off += take;
	}
	buf_append_str(out, "[no end]");
}

static void
fuzz_smtpd_bdat(const uint8_t *data, size_t size, size_t chunk,
    struct buf *out)
{
	struct smtpd_bdat_decoder d;
	size_t off = 0, take;

	smtpd_bdat_decoder_init(&d);
	while (off < size) {
		take = size - off < chunk ? size - off : chunk;
		smtpd_bdat_decode(&d, (const char *)data + off, take, out);
		off += take;
	}
	smtpd_bdat_finish(&d, out);
}

static void
fuzz_smtpd_compare(const char *what, struct buf *a, struct buf *b,
    size_t chunk)
{
	if (a->len != b->len || (a->len > 0 &&
	    memcmp(a->data, b->data, a->len) != 0))
		fuzz_smtpd_fail(what, chunk);
	buf_reset(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole, part;
	size_t chunk;

	if (size < 1 || size > MAX_FUZZ_SMTPD_INPUT)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++;
	size--;
	buf_init(&whole, 0);
	buf_init(&part, 0);

	fuzz_smtpd_lines(data, size, size > 0 ? size : 1, true, &whole);
	fuzz_smtpd_lines(data, size, 1, false, &part);
	fuzz_smtpd_compare("lines differ byte by byte", &whole, &part, 1);
	fuzz_smtpd_lines(data, size, chunk, false, &part);
	fuzz_smtpd_compare("lines differ in chunks", &whole, &part, chunk);
	buf_reset(&whole);

	fuzz_smtpd_data(data, size, size > 0 ? size : 1, &whole);
	fuzz_smtpd_data(data, size, 1, &part);
	fuzz_smtpd_compare("DATA differs byte by byte", &whole, &part, 1);
	fuzz_smtpd_data(data, size, chunk, &part);
	fuzz_smtpd_compare("DATA differs in chunks", &whole, &part, chunk);
	buf_reset(&whole);

	fuzz_smtpd_bdat(data, size, size > 0 ? size : 1, &whole);
	fuzz_smtpd_bdat(data, size, 1, &part);
	fuzz_smtpd_compare("BDAT differs byte by byte", &whole, &part, 1);
	fuzz_smtpd_bdat(data, size, chunk, &part);
	fuzz_smtpd_compare("BDAT differs in chunks", &whole, &part, chunk);

	buf_free(&whole);
	buf_free(&part);
	return 0;
}
