/*
 * A tiny unit test harness with TAP output:
 *
 *   test_begin("name");  test_assert(expr);  test_end();
 *   return test_done();   (from main: exit status 0 only if all passed)
 *
 * Each test_begin/test_end pair is one TAP test point; a failed assertion
 * prints the expression, file and line as a TAP diagnostic.
 */
#ifndef POSTERN_TEST_H
#define POSTERN_TEST_H

#include <stdbool.h>

void	test_begin(const char *name);
void	test_assert_at(bool ok, const char *expr, const char *file, int line);
void	test_end(void);
/* Prints the TAP plan; returns the exit status for main(). */
int	test_done(void);
/* Compare strings (NULL-safe) and print both when they differ. */
void	test_assert_streq_at(const char *got, const char *want,
	    const char *file, int line);

#define test_assert(expr) test_assert_at((expr), #expr, __FILE__, __LINE__)
#define test_assert_streq(got, want) \
	test_assert_streq_at((got), (want), __FILE__, __LINE__)

#endif
