/*
 * Unit tests of common/str.c: bounded copy, case helpers, trimming,
 * string vectors, RFC 3461 xtext and the checked decimal parser.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "test.h"

static void
test_lcpy(void)
{
	char small[4];

	test_begin("str_lcpy");
	test_assert(str_lcpy(small, "abcdef", sizeof(small)) == 6);
	test_assert_streq(small, "abc");
	test_assert(str_lcpy(small, "ab", sizeof(small)) == 2);
	test_assert_streq(small, "ab");
	test_assert(str_lcpy(small, "xyz", 0) == 3);
	test_end();
}

static void
test_case(void)
{
	char s[] = "MiXeD Case 123";
	char t[] = " \t padded \r\n";

	test_begin("str case and trim");
	test_assert_streq(str_lower(s), "mixed case 123");
	test_assert(str_case_eq("PostMaster", "postmaster"));
	test_assert(!str_case_eq("postmaster", "postmaste"));
	test_assert(!str_case_eq("a", "ab"));
	test_assert(str_starts_case("ENVID=abc", "envid="));
	test_assert(!str_starts_case("ENV", "envid="));
	test_assert(str_starts_case("x", ""));
	test_assert_streq(str_trim(t), "padded");
	test_end();
}

static void
test_strv(void)
{
	char **v;

	test_begin("strv");
	v = strv_split(" a, b,,c ", ", ");
	test_assert(strv_len(v) == 3);
	test_assert_streq(v[0], "a");
	test_assert_streq(v[1], "b");
	test_assert_streq(v[2], "c");
	test_assert(v[3] == NULL);
	test_assert(strv_contains_case(v, "B"));
	test_assert(!strv_contains_case(v, "d"));
	strv_push(&v, "d");
	test_assert(strv_len(v) == 4);
	test_assert(strv_contains_case(v, "D"));
	strv_free(&v);
	test_assert(v == NULL);

	v = strv_split("", ",");
	test_assert(v != NULL && v[0] == NULL);
	strv_free(&v);
	v = strv_split(",,,", ",");
	test_assert(strv_len(v) == 0);
	strv_free(&v);
	test_end();
}

static void
test_xtext(void)
{
	char all[256];
	char *e, *d;
	size_t i;

	test_begin("xtext");
	e = xtext_encode("a+b=c d\r\n", 9);
	test_assert_streq(e, "a+2Bb+3Dc+20d+0D+0A");
	d = xtext_decode(e);
	test_assert_streq(d, "a+b=c d\r\n");
	free(e);
	free(d);

	/* Every byte but NUL survives a round trip. */
	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	e = xtext_encode(all, 255);
	test_assert(strchr(e, ' ') == NULL && strchr(e, '\n') == NULL);
	d = xtext_decode(e);
	test_assert(d != NULL && strcmp(d, all) == 0);
	free(e);
	free(d);

	e = xtext_encode("", 0);
	test_assert_streq(e, "");
	free(e);

	/* Lower case hex is accepted on input. */
	d = xtext_decode("x+2by");
	test_assert_streq(d, "x+y");
	free(d);

	/* Malformed input. */
	test_assert(xtext_decode("+") == NULL);
	test_assert(xtext_decode("+4") == NULL);
	test_assert(xtext_decode("+G0") == NULL);
	test_assert(xtext_decode("a b") == NULL);
	test_assert(xtext_decode("a=b") == NULL);
	test_assert(xtext_decode("+00") == NULL);
	test_assert(xtext_decode("\x80") == NULL);
	test_end();
}

static void
test_to_ll(void)
{
	long long v = 0;

	test_begin("str_to_ll");
	test_assert(str_to_ll("0", 0, 10, &v) == 0 && v == 0);
	test_assert(str_to_ll("10", 0, 10, &v) == 0 && v == 10);
	test_assert(str_to_ll("11", 0, 10, &v) == -1);
	test_assert(str_to_ll("", 0, 10, &v) == -1);
	test_assert(str_to_ll("-", -10, 10, &v) == -1);
	test_assert(str_to_ll("-5", 0, 10, &v) == -1);
	test_assert(str_to_ll("-5", -10, 10, &v) == 0 && v == -5);
	test_assert(str_to_ll("+5", 0, 10, &v) == -1);
	test_assert(str_to_ll(" 5", 0, 10, &v) == -1);
	test_assert(str_to_ll("5x", 0, 10, &v) == -1);
	test_assert(str_to_ll("9223372036854775807", 0, LLONG_MAX, &v) == 0 &&
	    v == LLONG_MAX);
	test_assert(str_to_ll("9223372036854775808", 0, LLONG_MAX, &v) == -1);
	test_assert(str_to_ll("99999999999999999999999", 0, LLONG_MAX,
	    &v) == -1);
	test_assert(str_to_ll("-9223372036854775808", LLONG_MIN, LLONG_MAX,
	    &v) == 0 && v == LLONG_MIN);
	test_assert(str_to_ll("-9223372036854775809", LLONG_MIN, LLONG_MAX,
	    &v) == -1);
	test_end();
}

int
main(void)
{
	test_lcpy();
	test_case();
	test_strv();
	test_xtext();
	test_to_ll();
	return test_done();
}
