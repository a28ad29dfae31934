/*
 * Unit tests for qmgr_proto: the reply lines of the smtp delivery agent
 * (doc/internals.md, "Delivery: qmgr -> smtp") as qmgr parses them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits_pst.h"
#include "qmgr.h"
#include "test.h"

static void
test_good(void)
{
	struct qmgr_agent_reply r;
	const char *err = NULL;

	test_begin("agent reply: RCPT and DONE lines");
	test_assert(qmgr_agent_reply_parse("RCPT 3 sent 2.0.0 "
	    "mx.example.org[192.0.2.1]:25 250+202.0.0+20Ok:+20queued+20as+20X",
	    &r, &err) == 0);
	test_assert(!r.done);
	test_assert(r.idx == 3);
	test_assert(r.status == QMGR_STATUS_SENT);
	test_assert_streq(r.dsn, "2.0.0");
	test_assert_streq(r.relay, "mx.example.org[192.0.2.1]:25");
	test_assert_streq(r.text, "250 2.0.0 Ok: queued as X");
	test_assert(!r.relayed);
	qmgr_agent_reply_free(&r);

	/* sent to a server without DSN */
	test_assert(qmgr_agent_reply_parse("RCPT 2 relayed 2.0.0 "
	    "mx.example.org[192.0.2.1]:25 250+20Ok", &r, &err) == 0);
	test_assert(r.status == QMGR_STATUS_SENT);
	test_assert(r.relayed);
	qmgr_agent_reply_free(&r);
	test_assert(qmgr_agent_reply_parse("RCPT 2 relayed 4.0.0 "
	    "mx.example.org[192.0.2.1]:25 x", &r, &err) == -1);

	test_assert(qmgr_agent_reply_parse("RCPT 0 defer 4.4.1 none "
	    "connect+20to+20x[192.0.2.1]:25:+20Connection+20refused", &r,
	    &err) == 0);
	test_assert(r.status == QMGR_STATUS_DEFER);
	test_assert_streq(r.relay, "none");
	qmgr_agent_reply_free(&r);

	/* an empty text is allowed */
	test_assert(qmgr_agent_reply_parse("RCPT 12 bounce 5.1.1 none ", &r,
	    &err) == 0);
	test_assert(r.status == QMGR_STATUS_BOUNCE && r.idx == 12);
	test_assert_streq(r.text, "");
	qmgr_agent_reply_free(&r);

	test_assert(qmgr_agent_reply_parse("DONE 0.52 1", &r, &err) == 0);
	test_assert(r.done);
	test_assert(r.conn_s > 0.51 && r.conn_s < 0.53);
	test_assert(r.xfer_s > 0.99 && r.xfer_s < 1.01);
	qmgr_agent_reply_free(&r);
	test_end();
}

static void
test_bad(void)
{
	static const char *const bad[] = {
		"",
		"RCPT",
		"DONE",
		"DONE 1",
		"DONE 1 2 3",
		"DONE -1 2",
		"DONE 1. 2",
		"DONE .5 2",
		"DONE 1e3 2",
		"DONE 99999999 1",
		"DONE  1 2",
		"done 1 2",
		"RCPT 1 sent 2.0.0 relay",
		"RCPT 1 sent 2.0.0 relay text extra",
		"RCPT  1 sent 2.0.0 relay text",
		"RCPT -1 sent 2.0.0 relay text",
		"RCPT x sent 2.0.0 relay text",
		"RCPT 99999999999999999999 sent 2.0.0 relay text",
		"RCPT 1 delivered 2.0.0 relay text",
		"RCPT 1 sent 4.0.0 relay text",
		"RCPT 1 defer 5.0.0 relay text",
		"RCPT 1 bounce 2.0.0 relay text",
		"RCPT 1 sent 2.0 relay text",
		"RCPT 1 sent 2.0.0.0 relay text",
		"RCPT 1 sent 2.1000.0 relay text",
		"RCPT 1 sent 2.0.0 +00 text",
		"RCPT 1 sent 2.0.0 relay +0",
		"RCPT 1 sent 2.0.0 relay +zz",
		"RCPT 1 sent 2.0.0  text",
		"RCPT 1 sent 2.0.0 a+20b text",
		"RCPT 1 sent 2.0.0 a+0Ab text",
		"RCPT 1 sent 2.0.0 relay text\r",
		"SEND x y z -",
	};
	struct qmgr_agent_reply r;
	const char *err;
	size_t i;

	test_begin("agent reply: malformed lines are refused");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (qmgr_agent_reply_parse(bad[i], &r, &err) == 0) {
			fprintf(stderr, "# accepted: \"%s\"\n", bad[i]);
			test_assert(false);
			qmgr_agent_reply_free(&r);
		} else
			test_assert(err != NULL);
	}
	test_end();
}

static void
test_bounds(void)
{
	struct qmgr_agent_reply r;
	const char *err;
	char *line;
	size_t n;

	test_begin("agent reply: bounds");
	/* a relay name longer than QMGR_MAX_RELAY */
	n = QMGR_MAX_RELAY + 1;
	line = malloc(n + 64);
	memcpy(line, "RCPT 1 sent 2.0.0 ", 18);
	memset(line + 18, 'a', n);
	strcpy(line + 18 + n, " text");
	test_assert(qmgr_agent_reply_parse(line, &r, &err) < 0);
	free(line);
	/* a line longer than MAX_IPC_LINE */
	n = MAX_IPC_LINE + 1;
	line = malloc(n + 64);
	memcpy(line, "RCPT 1 sent 2.0.0 relay ", 24);
	memset(line + 24, 'a', n);
	line[24 + n] = '\0';
	test_assert(qmgr_agent_reply_parse(line, &r, &err) < 0);
	free(line);
	test_assert(qmgr_dsn_valid("5.1.10"));
	test_assert(qmgr_dsn_valid("4.999.999"));
	test_assert(!qmgr_dsn_valid("3.0.0"));
	test_assert(!qmgr_dsn_valid("5.1.1 "));
	test_end();
}

int
main(void)
{
	test_good();
	test_bad();
	test_bounds();
	return test_done();
}
