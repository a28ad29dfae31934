/*
 * fuzz_qmgr_reply: qmgr's parser of the smtp delivery agent's reply
 * lines (smtp/qmgr_proto.c).  The input is split into lines at LF; a
 * line holding a NUL byte is skipped (qmgr refuses those before
 * parsing).
 *
 * Checked beyond "no crash", for every line the parser accepts:
 *   - RCPT: the DSN code is valid and its class matches the status, the
 *     relay is 1..QMGR_MAX_RELAY printable characters without spaces,
 *     and the fields, encoded again, parse to the same values;
 *   - DONE: both numbers are between 0 and 1e7.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stubs.h"
#include "qmgr.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_QMGR_INPUT	(64 * 1024)

static void __attribute__((noreturn))
fuzz_qmgr_fail(const char *what, const char *line)
{
	fprintf(stderr, "qmgr_proto: %s: \"%.200s\"\n", what, line);
	abort();
}

static void
fuzz_qmgr_line(const char *line)
{
	static const char *const names[] = { "sent", "defer", "bounce" };
	struct qmgr_agent_reply r, again;
	const char *err = NULL, *p;
	char *xd, *xr, *xt, *line2;

	if (qmgr_agent_reply_parse(line, &r, &err) < 0) {
		if (err == NULL)
			fuzz_qmgr_fail("refused without a reason", line);
		return;
	}
	if (r.done) {
		if (!(r.conn_s >= 0 && r.conn_s <= 1e7 && r.xfer_s >= 0 &&
		    r.xfer_s <= 1e7))
			fuzz_qmgr_fail("DONE number out of range", line);
		qmgr_agent_reply_free(&r);
		return;
	}
	if (!qmgr_dsn_valid(r.dsn) ||
	    r.dsn[0] != "245"[(int)r.status])
		fuzz_qmgr_fail("DSN code does not fit the status", line);
	if (r.relay[0] == '\0' || strlen(r.relay) > QMGR_MAX_RELAY)
		fuzz_qmgr_fail("relay length", line);
	for (p = r.relay; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			fuzz_qmgr_fail("relay character", line);
	}
	xd = xtext_encode(r.dsn, strlen(r.dsn));
	xr = xtext_encode(r.relay, strlen(r.relay));
	xt = xtext_encode(r.text, strlen(r.text));
	line2 = xasprintf("RCPT %zu %s %s %s %s", r.idx, names[r.status], xd,
	    xr, xt);
	if (strlen(line2) <= 8192) {
		if (qmgr_agent_reply_parse(line2, &again, &err) < 0)
			fuzz_qmgr_fail("encoded again, refused", line);
		if (again.done || again.idx != r.idx ||
		    again.status != r.status ||
		    strcmp(again.dsn, r.dsn) != 0 ||
		    strcmp(again.relay, r.relay) != 0 ||
		    strcmp(again.text, r.text) != 0)
			fuzz_qmgr_fail("encoded again, different", line);
		qmgr_agent_reply_free(&again);
	}
	free(line2);
	free(xd);
	free(xr);
	free(xt);
	qmgr_agent_reply_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0, i;

	if (size > MAX_FUZZ_QMGR_INPUT)
		return 0;
	for (i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			size_t len = i - start;

			if (memchr(data + start, '\0', len) == NULL) {
				char *line = xstrndup((const char *)data +
				    start, len);

				fuzz_qmgr_line(line);
				free(line);
			}
			start = i + 1;
		}
	}
	return 0;
}
