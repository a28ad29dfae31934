/*
 * Unit tests of common/buf.c: growth, the hard maximum, printf, consume,
 * NUL-safe data, steal.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "test.h"

static void
test_basic(void)
{
	struct buf b;
	size_t i;

	test_begin("buf append and grow");
	buf_init(&b, 0);
	test_assert(b.len == 0);
	test_assert_streq(buf_cstr(&b), "");
	test_assert(buf_append_str(&b, "hello") == 0);
	test_assert(buf_append_char(&b, ' ') == 0);
	test_assert(buf_printf(&b, "%s %d", "world", 42) == 0);
	test_assert_streq(buf_cstr(&b), "hello world 42");
	test_assert(b.len == 14);
	for (i = 0; i < 10000; i++)
		test_assert(buf_append(&b, "0123456789", 10) == 0);
	test_assert(b.len == 14 + 100000);
	test_assert(b.cap > b.len);
	test_assert(buf_append(&b, NULL, 0) == 0);
	buf_reset(&b);
	test_assert(b.len == 0);
	test_assert_streq(buf_cstr(&b), "");
	buf_free(&b);
	test_assert(b.data == NULL);
	test_end();
}

static void
test_max(void)
{
	struct buf b;

	test_begin("buf maximum");
	buf_init(&b, 8);
	test_assert(buf_append_str(&b, "12345678") == 0);
	test_assert(buf_append_char(&b, '9') == -1);
	test_assert(b.len == 8);
	test_assert_streq(buf_cstr(&b), "12345678");
	buf_consume(&b, 4);
	test_assert(buf_append_str(&b, "abcde") == -1);
	test_assert(buf_printf(&b, "%s", "abcde") == -1);
	test_assert_streq(buf_cstr(&b), "5678");
	test_assert(buf_printf(&b, "%d", 1234) == 0);
	test_assert_streq(buf_cstr(&b), "56781234");
	test_assert(buf_reserve(&b, (size_t)-1) == -1);
	buf_free(&b);
	test_end();
}

static void
test_binary(void)
{
	struct buf b;
	char *s;

	test_begin("buf NUL bytes, consume, steal");
	buf_init(&b, 0);
	test_assert(buf_append(&b, "a\0b\0c", 5) == 0);
	test_assert(b.len == 5);
	test_assert(memcmp(b.data, "a\0b\0c", 5) == 0);
	buf_consume(&b, 2);
	test_assert(b.len == 3 && memcmp(b.data, "b\0c", 3) == 0);
	buf_consume(&b, 100);
	test_assert(b.len == 0);
	test_assert(buf_append_str(&b, "kept") == 0);
	s = buf_steal(&b);
	test_assert_streq(s, "kept");
	test_assert(b.data == NULL && b.len == 0);
	free(s);
	s = buf_steal(&b);
	test_assert_streq(s, "");
	free(s);
	test_end();
}

int
main(void)
{
	test_basic();
	test_max();
	test_binary();
	return test_done();
}
