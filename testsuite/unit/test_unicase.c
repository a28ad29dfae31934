/*
 * Unit tests of common/unicase.c: the i;unicode-casemap mapping of
 * RFC 5051 (titlecase, then compatibility decomposition) and the
 * comparison SORT and SEARCH use under I18NLEVEL=1 (RFC 5255 §4).
 */
#include "config.h"

#include <string.h>

#include "buf.h"
#include "test.h"
#include "unicase.h"

static void
check_fold(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(unicase_fold(in, strlen(in), &b) == 0);
	test_assert_streq(buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_fold(void)
{
	test_begin("unicase: titlecase and decomposition");
	check_fold("", "");
	check_fold("Hello, World 42!", "HELLO, WORLD 42!");
	/* Latin-1: é is E + COMBINING ACUTE ACCENT (U+0301). */
	check_fold("caf\xc3\xa9", "CAFE\xcc\x81");
	check_fold("CAF\xc3\x89", "CAFE\xcc\x81");
	/* ß has no single titlecase character: it stays. */
	check_fold("stra\xc3\x9f" "e", "STRA\xc3\x9f" "E");
	/* Latin Extended: ł to Ł; ǆ's titlecase is ǅ, whose NFKD is "Dz"
	 * and U+030C. */
	check_fold("\xc5\x82\xc3\xb3" "d\xc5\xba",
	    "\xc5\x81O\xcc\x81" "DZ\xcc\x81");
	check_fold("\xc7\x86", "Dz\xcc\x8c");
	/* Greek: ά to Α + U+0301; final sigma and sigma agree. */
	check_fold("\xce\xac", "\xce\x91\xcc\x81");
	check_fold("\xcf\x82", "\xce\xa3");
	check_fold("\xcf\x83", "\xce\xa3");
	/* Cyrillic: привет to ПРИВЕТ; ё to Е + U+0308. */
	check_fold("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
	    "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2");
	check_fold("\xd1\x91", "\xd0\x95\xcc\x88");
	/* Compatibility forms: ﬁ to "fi", fullwidth Ａ to A, NBSP to
	 * a space. */
	check_fold("\xef\xac\x81", "fi");
	check_fold("\xef\xbc\xa1\xef\xbd\x82", "AB");
	check_fold("a\xc2\xa0" "b", "A B");
	/* Outside the covered blocks: unchanged (CJK). */
	check_fold("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac");
	/* Invalid UTF-8 (a lone continuation, an overlong form, a cut
	 * sequence) becomes U+FFFD. */
	check_fold("a\x80" "b", "A\xef\xbf\xbd" "B");
	check_fold("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
	check_fold("x\xe2\x82", "X\xef\xbf\xbd\xef\xbf\xbd");
	check_fold("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	test_end();
}

static int
cmp(const char *a, const char *b)
{
	return unicase_cmp(a, strlen(a), b, strlen(b));
}

static void
test_cmp(void)
{
	test_begin("unicase: comparison");
	test_assert(cmp("abc", "ABC") == 0);
	test_assert(cmp("", "a") < 0);
	test_assert(cmp("a", "") > 0);
	test_assert(cmp("abc", "abd") < 0);
	test_assert(cmp("ab", "abc") < 0);
	/* Titlecase, not lower case: "_" (0x5F) sorts after letters. */
	test_assert(cmp("_x", "a") > 0);
	test_assert(cmp("\xc3\xa9t\xc3\xa9", "\xc3\x89T\xc3\x89") == 0);
	/* E + accent sorts after plain E followed by a letter. */
	test_assert(cmp("\xc3\x89mile", "Eve") > 0);
	test_assert(cmp("\xd0\x90", "\xd0\xb0") == 0);	/* А а */
	test_end();
}

static void
test_bounded(void)
{
	struct buf b;

	test_begin("unicase: output bound");
	buf_init(&b, 4);
	test_assert(unicase_fold("abcdefgh", 8, &b) == -1);
	test_assert(b.len <= 4);
	buf_free(&b);
	test_end();
}

int
main(void)
{
	test_fold();
	test_cmp();
	test_bounded();
	return test_done();
}
