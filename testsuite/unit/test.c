/*
 * TAP harness for the C unit tests (see test.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static const char *cur_name;
static bool cur_ok;
static int n_tests, n_failed;

void
test_begin(const char *name)
{
	cur_name = name;
	cur_ok = true;
}

void
test_assert_at(bool ok, const char *expr, const char *file, int line)
{
	if (ok)
		return;
	cur_ok = false;
	printf("# %s: assertion failed: %s (%s:%d)\n", cur_name, expr, file,
	    line);
}

void
test_assert_streq_at(const char *got, const char *want, const char *file,
    int line)
{
	if (got != NULL && want != NULL && strcmp(got, want) == 0)
		return;
	if (got == NULL && want == NULL)
		return;
	cur_ok = false;
	printf("# %s: got \"%s\", want \"%s\" (%s:%d)\n", cur_name,
	    got ? got : "(null)", want ? want : "(null)", file, line);
}

void
test_end(void)
{
	n_tests++;
	if (!cur_ok)
		n_failed++;
	printf("%s %d - %s\n", cur_ok ? "ok" : "not ok", n_tests, cur_name);
	fflush(stdout);
}

int
test_done(void)
{
	printf("1..%d\n", n_tests);
	return n_failed == 0 ? 0 : 1;
}
