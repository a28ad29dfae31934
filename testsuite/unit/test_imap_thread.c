/*
 * Unit tests of imap/imap_thread.c: THREAD=ORDEREDSUBJECT,
 * THREAD=REFERENCES (RFC 5256 §3: reference chains, dummies, pruning,
 * subject merging, broken and looping References) and THREAD=REFS, and
 * the reply test of base subject extraction (RFC 5256 §2.1).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_thread.h"
#include "test.h"

#define M(num, date, subj, reply, id, irt, refs) \
	{ (num), (date), (subj), (reply), (id), (irt), (refs) }

static void
check(enum imap_thread_alg alg, const struct imap_thread_msg *m, size_t n,
    const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	imap_thread_write(alg, m, n, &b);
	test_assert_streq(buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_orderedsubject(void)
{
	const struct imap_thread_msg m[] = {
		M(1, 10, "B", false, "", "", ""),
		M(2, 20, "A", false, "", "", ""),
		M(3, 5, "B", true, "", "", ""),
		M(4, 30, "A", false, "", "", ""),
		M(5, 1, "C", false, "", "", ""),
		M(6, 40, "A", false, "", "", ""),
		M(7, 20, "D", false, "", "", ""),
	};

	test_begin("thread: ORDEREDSUBJECT");
	/* Threads by their first date; the second message is the child
	 * of the first, later ones its siblings; equal dates keep the
	 * mailbox order (2 before 7). */
	check(IMAP_THREAD_ORDEREDSUBJECT, m, 7,
	    "(5)(3 1)(2 (4)(6))(7)");
	check(IMAP_THREAD_ORDEREDSUBJECT, m, 0, "");
	test_end();
}

static void
test_references(void)
{
	const struct imap_thread_msg chain[] = {
		M(1, 10, "HELLO", false, "<a@x>", "", ""),
		M(2, 20, "HELLO", true, "<b@x>", "<a@x>", ""),
		M(3, 30, "HELLO", true, "<c@x>", "", "<a@x> <b@x>"),
		M(4, 25, "HELLO", true, "<d@x>", "<a@x>", ""),
	};
	/* The parent is missing: a dummy holds the siblings. */
	const struct imap_thread_msg orphans[] = {
		M(3, 10, "X", true, "<p@x>", "", "<gone@x>"),
		M(5, 20, "Y", true, "<q@x>", "", "<gone@x>"),
	};
	/* Quoting does not matter (RFC 5256 §3). */
	const struct imap_thread_msg quoted[] = {
		M(1, 10, "", false, "<\"01KF8\"@xxx.yyy.com>", "", ""),
		M(2, 20, "", false, "<z@x>", "<01KF8@xxx.yyy.com>", ""),
	};
	/* Subject merging (step 5): a reply joins the original; two
	 * originals get a dummy. */
	const struct imap_thread_msg subj[] = {
		M(1, 10, "LUNCH", false, "<1@x>", "", ""),
		M(2, 20, "LUNCH", true, "<2@x>", "", ""),
		M(3, 30, "PLAN", false, "<3@x>", "", ""),
		M(4, 40, "PLAN", false, "<4@x>", "", ""),
		M(5, 50, "", false, "<5@x>", "", ""),
		M(6, 60, "", false, "<6@x>", "", ""),
	};

	test_begin("thread: REFERENCES");
	check(IMAP_THREAD_REFERENCES, chain, 4, "(1 (2 3)(4))");
	check(IMAP_THREAD_REFERENCES, orphans, 2, "((3)(5))");
	check(IMAP_THREAD_REFERENCES, quoted, 2, "(1 2)");
	check(IMAP_THREAD_REFERENCES, subj, 6, "(1 2)((3)(4))(5)(6)");
	test_end();
}

static void
test_broken(void)
{
	/* 1 and 2 reference each other: no loop is made. */
	const struct imap_thread_msg loop[] = {
		M(1, 10, "", false, "<a@x>", "", "<b@x>"),
		M(2, 20, "", false, "<b@x>", "", "<a@x>"),
	};
	/* A message referencing itself; one whose References go through
	 * itself (t s t): s becomes its child, t never its own parent. */
	const struct imap_thread_msg self[] = {
		M(1, 10, "", false, "<s@x>", "", "<s@x>"),
		M(2, 20, "", false, "<t@x>", "", "<t@x> <s@x> <t@x>"),
	};
	/* Duplicate Message IDs: only the first keeps it. */
	const struct imap_thread_msg dup[] = {
		M(1, 10, "", false, "<d@x>", "", ""),
		M(2, 20, "", false, "<d@x>", "", ""),
		M(3, 30, "", false, "<e@x>", "<d@x>", ""),
	};
	/* Garbage in References: In-Reply-To is used; only its first
	 * Message ID; ids without '@' are not Message IDs. */
	const struct imap_thread_msg junk[] = {
		M(1, 10, "", false, "<r@x>", "", ""),
		M(2, 20, "", false, "<w@x>", "", ""),
		M(3, 30, "", false, "<u@x>", "<r@x> <w@x>", "<noat> junk <"),
		M(4, 40, "", false, "noangle@x", "", "<<<>>>"),
	};
	/* A truncated References: the later, fuller one wins for the
	 * message's own parent (step 1.B). */
	const struct imap_thread_msg trunc[] = {
		M(1, 10, "", false, "<m1@x>", "", ""),
		M(2, 20, "", false, "<m2@x>", "", "<m1@x>"),
		M(3, 30, "", false, "<m3@x>", "", "<m2@x>"),
		M(4, 40, "", false, "<m4@x>", "", "<m1@x> <m3@x>"),
	};

	test_begin("thread: broken and looping references");
	check(IMAP_THREAD_REFERENCES, loop, 2, "(2 1)");
	check(IMAP_THREAD_REFERENCES, self, 2, "(2 1)");
	check(IMAP_THREAD_REFERENCES, dup, 3, "(1 3)(2)");
	check(IMAP_THREAD_REFERENCES, junk, 4, "(1 3)(2)(4)");
	check(IMAP_THREAD_REFERENCES, trunc, 4, "(1 2 3 4)");
	test_end();
}

static void
test_refs(void)
{
	/* Thread 1 (1, 3 at 50) is newer than thread 2 (2 at 20): REFS
	 * puts it last; REFERENCES orders by the first message.  Equal
	 * subjects are not merged by REFS. */
	const struct imap_thread_msg m[] = {
		M(1, 10, "A", false, "<1@x>", "", ""),
		M(2, 20, "B", false, "<2@x>", "", ""),
		M(3, 50, "A", true, "<3@x>", "<1@x>", ""),
		M(4, 30, "B", true, "<4@x>", "", ""),
	};

	test_begin("thread: REFS");
	check(IMAP_THREAD_REFERENCES, m, 4, "(1 3)(2 4)");
	check(IMAP_THREAD_REFS, m, 4, "(2)(4)(1 3)");
	test_end();
}

/* Bounds: a reply chain deeper than IMAP_THREAD_MAX_DEPTH is cut, a
 * References field of "<<<<..." is read in linear time, many messages
 * with one subject merge in linear time. */
static void
test_bounds(void)
{
	enum { N = 3000 };
	static struct imap_thread_msg m[N];
	static char ids[N][32], refs[N][32];
	char *lts = malloc(200001);
	struct buf b;
	size_t i, opens = 0;

	test_begin("thread: bounds");
	for (i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "<%zu@x>", i);
		snprintf(refs[i], sizeof(refs[i]), "<%zu@x>", i - 1);
		m[i].num = (uint32_t)i + 1;
		m[i].date = (int64_t)i;
		m[i].subject = "SAME";
		m[i].reply = i > 0;
		m[i].message_id = ids[i];
		m[i].in_reply_to = i > 0 ? refs[i] : "";
		m[i].references = "";
	}
	buf_init(&b, 0);
	imap_thread_write(IMAP_THREAD_REFERENCES, m, N, &b);
	/* The chain is cut at the depth bound; the pieces are replies of
	 * the same subject, so they hang under the first message:
	 * "(1 (2 3 ...)(1002 ...)(2003 ...))". */
	test_assert(strncmp(buf_cstr(&b), "(1 (2 3 4 ", 10) == 0);
	for (i = 0; i < b.len; i++)
		if (b.data[i] == '(')
			opens++;
	test_assert(opens >= 3 && opens < 10);
	buf_free(&b);

	memset(lts, '<', 200000);
	lts[200000] = '\0';
	for (i = 0; i < N; i++) {
		m[i].in_reply_to = "";
		m[i].references = lts;
		m[i].reply = false;
	}
	buf_init(&b, 0);
	imap_thread_write(IMAP_THREAD_REFERENCES, m, 20, &b);
	/* No references: twenty originals of one subject, one dummy. */
	test_assert(strncmp(buf_cstr(&b), "((1)(2)(3)", 10) == 0);
	buf_free(&b);
	free(lts);
	test_end();
}

static void
test_reply(void)
{
	const char *yes[] = { "Re: x", "RE:x", "[list] Re: x", "Fwd: x",
	    "fw: x", "x (fwd)", "[Fwd: x]", "  re[2]: x", "Re :x" };
	const char *no[] = { "x", "[list] x", "Reply", "Fwd x", "[x]",
	    "", "re", "x (fw)" };
	size_t i;

	test_begin("thread: reply or forward (RFC 5256 §2.1)");
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		test_assert(imap_thread_subject_is_reply(yes[i],
		    strlen(yes[i])));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		test_assert(!imap_thread_subject_is_reply(no[i],
		    strlen(no[i])));
	test_end();
}

int
main(void)
{
	test_orderedsubject();
	test_references();
	test_broken();
	test_refs();
	test_bounds();
	test_reply();
	return test_done();
}
