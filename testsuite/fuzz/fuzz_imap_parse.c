/*
 * fuzz_imap_parse: the IMAP parser of imap/ (tokenizer, command parsers,
 * sequence sets, modified UTF-7, dates).  The input is client bytes
 * after two control bytes:
 *
 *   byte 0: chunk size - 1 for the third run (see below);
 *   byte 1: bit 0 UTF8=ACCEPT, bit 1 LITERAL-, bit 2 small limits
 *           (64-byte lines and literals, depth 4, 16 arguments),
 *           bits 3-7: APPEND messages whose size modulo 32 equals this
 *           value are refused by the "session": for values 0 and 2
 *           modulo 4 before their data, for 1 after their first byte,
 *           for 3 after their end.
 *
 * Resumability is checked differentially: the bytes are fed whole, one
 * byte at a time and in chunks, through a driver that acts like a
 * session (continuations, raw lines after IDLE and AUTHENTICATE, APPEND
 * messages passed through or refused), and the three transcripts of
 * events, parsed commands and message bytes must be identical.  Every
 * event must make progress.  Parsed mailbox names must survive a modified
 * UTF-7 round trip, and sequence sets must agree with their resolved
 * form.  The whole input is also tried as a modified UTF-7 name (a name
 * the decoder accepts must encode back to itself, the form being
 * canonical) and as a date-time (which must format back to itself).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "imap_date.h"
#include "imap_parse.h"
#include "imap_seqset.h"
#include "imap_utf7.h"
#include "xmalloc.h"

#define MAX_FUZZ_IMAP_INPUT	(64 * 1024)

static void __attribute__((noreturn))
fuzz_imap_fail(const char *what, size_t chunk)
{
	fprintf(stderr, "imap_parse: %s (chunk size %zu)\n", what, chunk);
	abort();
}

/* A UTF-8 mailbox name must go to modified UTF-7 and back unchanged. */
static void
fuzz_imap_name(const char *name)
{
	struct buf a, b;

	if (name == NULL)
		return;
	buf_init(&a, 0);
	buf_init(&b, 0);
	if (imap_utf7_from_utf8(name, strlen(name), &a) < 0 ||
	    imap_utf7_to_utf8(a.data != NULL ? a.data : "", a.len, &b) < 0 ||
	    b.len != strlen(name) ||
	    (b.len > 0 && memcmp(b.data, name, b.len) != 0))
		fuzz_imap_fail("mailbox name round trip", 0);
	buf_free(&a);
	buf_free(&b);
}

/* Membership agrees with the resolved ranges, for a few maxima. */
static void
fuzz_imap_seqset(const struct imap_seqset *set)
{
	static const uint32_t maxes[] = { 0, 1, 5, 1000, UINT32_MAX };
	struct imap_seq_range *r;
	size_t i, j, n;

	if (set->saved)
		return;
	r = xreallocarray(NULL, set->count + 1, sizeof(*r));
	for (i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		uint32_t highest = 0;

		n = imap_seqset_resolve(set, maxes[i], r);
		for (j = 0; j < n; j++) {
			if (r[j].lo == 0 || r[j].lo > r[j].hi ||
			    (j > 0 && r[j].lo <= r[j - 1].hi + 1ULL))
				fuzz_imap_fail("resolved ranges not sorted", 0);
			if (!imap_seqset_contains(set, r[j].lo, maxes[i]) ||
			    !imap_seqset_contains(set, r[j].hi, maxes[i]))
				fuzz_imap_fail("range end not contained", 0);
			if (r[j].lo > 1 && (j == 0 ||
			    r[j].lo - 1 > r[j - 1].hi) &&
			    imap_seqset_contains(set, r[j].lo - 1, maxes[i]))
				fuzz_imap_fail("number before a range", 0);
			highest = r[j].hi;
		}
		if (imap_seqset_highest(set, maxes[i]) != highest)
			fuzz_imap_fail("highest differs", 0);
	}
	free(r);
}

static void
fuzz_imap_search_key(const struct imap_search_key *k, unsigned int depth)
{
	if (depth > 1000)
		fuzz_imap_fail("search tree too deep", 0);
	for (; k != NULL; k = k->next) {
		if (k->type == IMAP_SEARCH_SEQSET || k->type == IMAP_SEARCH_UID)
			fuzz_imap_seqset(&k->set);
		fuzz_imap_search_key(k->child, depth + 1);
	}
}

/* Checks on a parsed command beyond the transcript. */
static void
fuzz_imap_command(const struct imap_command *cmd, bool utf8)
{
	size_t i;

	switch (cmd->type) {
	case IMAP_CMD_SELECT:
	case IMAP_CMD_EXAMINE:
		if (!utf8)
			fuzz_imap_name(cmd->u.select.mailbox);
		fuzz_imap_seqset(&cmd->u.select.known_uids);
		break;
	case IMAP_CMD_LIST:
	case IMAP_CMD_LSUB:
		for (i = 0; i < cmd->u.list.pattern_count && !utf8; i++)
			fuzz_imap_name(cmd->u.list.patterns[i]);
		break;
	case IMAP_CMD_FETCH:
		fuzz_imap_seqset(&cmd->u.fetch.set);
		break;
	case IMAP_CMD_STORE:
		fuzz_imap_seqset(&cmd->u.store.set);
		break;
	case IMAP_CMD_COPY:
	case IMAP_CMD_MOVE:
		fuzz_imap_seqset(&cmd->u.copy.set);
		if (!utf8)
			fuzz_imap_name(cmd->u.copy.mailbox);
		break;
	case IMAP_CMD_SEARCH:
		fuzz_imap_search_key(cmd->u.search.key, 0);
		break;
	case IMAP_CMD_SORT:
		fuzz_imap_search_key(cmd->u.sort.search.key, 0);
		break;
	case IMAP_CMD_THREAD:
		fuzz_imap_search_key(cmd->u.thread.search.key, 0);
		break;
	default:
		break;
	}
}

/*
 * Feed data chunk bytes at a time through a session-like driver; the
 * transcript goes to rec.  check: run the extra command checks (once is
 * enough).
 */
static void
fuzz_imap_run(const uint8_t *data, size_t size, size_t chunk, uint8_t ctl,
    bool check, struct buf *rec)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct buf in, msg;
	size_t off = 0;
	unsigned int reject = ctl >> 3, zero_runs = 0;
	/* A message refused after its first byte: the parser is given no
	 * more than that byte, so the point is the same however the input
	 * is split. */
	uint64_t refuse_at = 0;
	bool utf8 = (ctl & 1) != 0, eof = false;

	imap_parser_limits_default(&lim);
	lim.literal_minus = (ctl & 2) != 0;
	if ((ctl & 4) != 0) {
		lim.max_line = 64;
		lim.max_literal = 64;
		lim.max_depth = 4;
		lim.max_args = 16;
	}
	p = imap_parser_new(&lim);
	imap_parser_set_utf8(p, utf8);
	buf_init(&in, 0);
	buf_init(&msg, 0);
	while (!eof) {
		size_t take = size - off < chunk ? size - off : chunk;

		buf_append(&in, data + off, take);
		off += take;
		eof = off == size;
		for (;;) {
			const struct imap_parse_error *e;
			const struct imap_append_msg *am;
			const struct imap_command *cmd;
			const char *line;
			size_t used, llen, give = in.len;
			enum imap_parse_result r;

			if (refuse_at > 0) {
				if (msg.len == refuse_at) {
					imap_parser_append_reject(p);
					buf_append_str(rec, "R:");
					buf_append(rec, msg.data, msg.len);
					buf_append_char(rec, '\n');
					refuse_at = 0;
				} else if (give > refuse_at - msg.len)
					give = (size_t)(refuse_at - msg.len);
			}
			r = imap_parser_feed(p, in.data, give, &used);
			if (used > give)
				fuzz_imap_fail("consumed past the input",
				    chunk);
			if (r != IMAP_PARSE_MORE && used == 0) {
				if (++zero_runs > 1)
					fuzz_imap_fail("no progress", chunk);
			} else
				zero_runs = 0;
			if (r == IMAP_PARSE_MORE && used != give)
				fuzz_imap_fail("MORE without using the input",
				    chunk);
			switch (r) {
			case IMAP_PARSE_MORE:
				break;
			case IMAP_PARSE_COMMAND:
				cmd = imap_parser_command(p);
				buf_append_str(rec, "C:");
				imap_command_dump(cmd, true, rec);
				buf_append_char(rec, '\n');
				if (check)
					fuzz_imap_command(cmd, utf8);
				if (cmd->type == IMAP_CMD_IDLE ||
				    cmd->type == IMAP_CMD_AUTHENTICATE) {
					buf_consume(&in, used);
					imap_parser_expect_line(p);
					continue;
				}
				break;
			case IMAP_PARSE_CONTINUE:
				buf_append_str(rec, "+\n");
				break;
			case IMAP_PARSE_ERROR:
				e = imap_parser_error(p);
				if (e->text == NULL)
					fuzz_imap_fail("error without text",
					    chunk);
				buf_printf(rec, "E:%d%d %s %s %s\n", e->no,
				    e->fatal, e->tag != NULL ? e->tag : "*",
				    e->code != NULL ? e->code : "-", e->text);
				break;
			case IMAP_PARSE_APPEND:
				am = imap_parser_append(p);
				buf_printf(rec, "A:%u %llu %d\n", am->index,
				    (unsigned long long)am->size, am->sync);
				if (check && !utf8)
					fuzz_imap_name(am->mailbox);
				buf_reset(&msg);
				if (am->size % 32 == reject && reject % 4 != 3) {
					if (reject % 4 != 1 || am->size == 0) {
						imap_parser_append_reject(p);
						buf_append_str(rec, "R:\n");
					} else
						refuse_at = 1;
				}
				break;
			case IMAP_PARSE_APPEND_DATA:
				if (used == 0 || used > give)
					fuzz_imap_fail("empty message data",
					    chunk);
				buf_append(&msg, in.data, used);
				break;
			case IMAP_PARSE_APPEND_END:
				am = imap_parser_append(p);
				if (msg.len != am->size ||
				    (msg.len > 0 && memchr(msg.data, '\0',
				    msg.len) != NULL) != am->nul_seen)
					fuzz_imap_fail("message data differs",
					    chunk);
				buf_append_str(rec, "D:");
				buf_append(rec, msg.data, msg.len);
				buf_printf(rec, "\nZ:%d\n", am->nul_seen);
				if (am->tag == NULL || am->mailbox == NULL)
					fuzz_imap_fail("message without tag",
					    chunk);
				if (am->size % 32 == reject && reject % 4 == 3) {
					imap_parser_append_reject(p);
					buf_append_str(rec, "R:end\n");
				}
				break;
			case IMAP_PARSE_LINE:
				line = imap_parser_line(p, &llen);
				buf_append_str(rec, "L:");
				buf_append(rec, line, llen);
				buf_append_char(rec, '\n');
				break;
			}
			buf_consume(&in, used);
			if (r == IMAP_PARSE_MORE)
				break;
		}
	}
	imap_parser_free(&p);
	buf_free(&in);
	buf_free(&msg);
}

/* The input as a modified UTF-7 name and as a date-time. */
static void
fuzz_imap_strings(const uint8_t *data, size_t size)
{
	struct buf a, b;
	char *s, d[IMAP_DATETIME_SIZE];
	time_t t, t2;
	int tz, tz2;

	buf_init(&a, 0);
	buf_init(&b, 0);
	if (imap_utf7_to_utf8((const char *)data, size, &a) == 0) {
		if (imap_utf7_from_utf8(a.data != NULL ? a.data : "", a.len,
		    &b) < 0 || b.len != size ||
		    (size > 0 && memcmp(b.data, data, size) != 0))
			fuzz_imap_fail("modified UTF-7 not canonical", 0);
	}
	buf_free(&a);
	buf_free(&b);

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (imap_date_parse_datetime(s, &t, &tz) == 0) {
		imap_date_format_datetime(t, tz, d);
		if (imap_date_parse_datetime(d, &t2, &tz2) < 0 || t2 != t ||
		    tz2 != tz)
			fuzz_imap_fail("date-time round trip", 0);
	}
	(void)imap_date_parse(s, &t);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole, part;
	size_t chunk;
	uint8_t ctl;

	if (size < 2 || size > MAX_FUZZ_IMAP_INPUT)
		return 0;
	chunk = (size_t)data[0] + 1;
	ctl = data[1];
	data += 2;
	size -= 2;
	buf_init(&whole, 0);
	buf_init(&part, 0);

	fuzz_imap_run(data, size, size > 0 ? size : 1, ctl, true, &whole);
	fuzz_imap_run(data, size, 1, ctl, false, &part);
	if (whole.len != part.len || (whole.len > 0 &&
	    memcmp(whole.data, part.data, whole.len) != 0))
		fuzz_imap_fail("transcripts differ byte by byte", 1);
	buf_reset(&part);
	fuzz_imap_run(data, size, chunk, ctl, false, &part);
	if (whole.len != part.len || (whole.len > 0 &&
	    memcmp(whole.data, part.data, whole.len) != 0))
		fuzz_imap_fail("transcripts differ in chunks", chunk);

	fuzz_imap_strings(data, size < 256 ? size : 256);
	buf_free(&whole);
	buf_free(&part);
	return 0;
}
