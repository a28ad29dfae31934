/*
 * Unit tests of the auth service's tables: the failure penalty per
 * address (auth/auth_penalty.c) and the one-time login tickets
 * (auth/auth_ticket.c).  Both take the time as a parameter, so the
 * tests walk the clock by hand.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_penalty.h"
#include "auth_ticket.h"
#include "test.h"

#define BASE	1000		/* auth_failure_delay of 1 s */

static void
test_penalty_doubling(void)
{
	struct auth_penalty *p = auth_penalty_new(0);
	uint64_t t = 1000000;

	test_begin("penalty: delay doubles per failure, capped at 15 s");
	test_assert(auth_penalty_ready_at(p, "192.0.2.1", t) == t);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t, BASE) == 1000);
	test_assert(auth_penalty_ready_at(p, "192.0.2.1", t) == t + 1000);
	test_assert(auth_penalty_ready_at(p, "192.0.2.1", t + 1000) ==
	    t + 1000);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t + 1000, BASE) == 2000);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t + 3000, BASE) == 4000);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t + 7000, BASE) == 8000);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t + 15000, BASE) ==
	    AUTH_PENALTY_MAX_MS);
	test_assert(auth_penalty_fail(p, "192.0.2.1", t + 30000, BASE) ==
	    AUTH_PENALTY_MAX_MS);
	test_assert(auth_penalty_failures(p, "192.0.2.1", t + 30000) == 6);
	/* Other addresses are not touched. */
	test_assert(auth_penalty_fail(p, "192.0.2.2", t + 30000, BASE) == 1000);
	test_assert(auth_penalty_ready_at(p, "192.0.2.3", t + 30000) ==
	    t + 30000);
	/* A base above the cap is capped; a zero base means no delay. */
	test_assert(auth_penalty_fail(p, "192.0.2.4", t, 60000) ==
	    AUTH_PENALTY_MAX_MS);
	test_assert(auth_penalty_fail(p, "192.0.2.5", t, 0) == 0);
	test_assert(auth_penalty_fail(p, "192.0.2.5", t, 0) == 0);
	test_assert(auth_penalty_ready_at(p, "192.0.2.5", t) == t);
	auth_penalty_free(&p);
	test_assert(p == NULL);
	test_end();
}

static void
test_penalty_parallel(void)
{
	struct auth_penalty *p = auth_penalty_new(0);
	uint64_t t = 5000;

	test_begin("penalty: parallel failures hold later attempts");
	/* Three failures at once: 1, 2, 4 s; the next attempt waits 4 s. */
	test_assert(auth_penalty_fail(p, "198.51.100.7", t, BASE) == 1000);
	test_assert(auth_penalty_fail(p, "198.51.100.7", t, BASE) == 2000);
	test_assert(auth_penalty_fail(p, "198.51.100.7", t, BASE) == 4000);
	test_assert(auth_penalty_ready_at(p, "198.51.100.7", t + 10) ==
	    t + 4000);
	auth_penalty_free(&p);
	test_end();
}

static void
test_penalty_window(void)
{
	struct auth_penalty *p = auth_penalty_new(0);
	uint64_t t = 1;

	test_begin("penalty: failures count within 5 minutes only");
	test_assert(auth_penalty_fail(p, "192.0.2.9", t, BASE) == 1000);
	t += AUTH_PENALTY_WINDOW_MS - 1;
	test_assert(auth_penalty_fail(p, "192.0.2.9", t, BASE) == 2000);
	/* The window runs from the last failure. */
	t += AUTH_PENALTY_WINDOW_MS - 1;
	test_assert(auth_penalty_fail(p, "192.0.2.9", t, BASE) == 4000);
	t += AUTH_PENALTY_WINDOW_MS;
	test_assert(auth_penalty_failures(p, "192.0.2.9", t) == 0);
	test_assert(auth_penalty_ready_at(p, "192.0.2.9", t) == t);
	test_assert(auth_penalty_fail(p, "192.0.2.9", t, BASE) == 1000);
	/* A stale entry is forgotten when met. */
	t += AUTH_PENALTY_WINDOW_MS;
	(void)auth_penalty_ready_at(p, "192.0.2.9", t);
	test_assert(auth_penalty_count(p) == 0);
	auth_penalty_free(&p);
	test_end();
}

static void
test_penalty_keys(void)
{
	struct auth_penalty *p = auth_penalty_new(0);
	uint64_t t = 100;

	test_begin("penalty: IPv6 per /64, IPv4-mapped as IPv4");
	test_assert(auth_penalty_fail(p, "2001:db8:1:2::1", t, BASE) == 1000);
	test_assert(auth_penalty_fail(p, "2001:db8:1:2:ffff::99", t, BASE) ==
	    2000);
	test_assert(auth_penalty_fail(p, "2001:DB8:1:2::7", t, BASE) == 4000);
	test_assert(auth_penalty_fail(p, "2001:db8:1:3::1", t, BASE) == 1000);
	test_assert(auth_penalty_fail(p, "192.0.2.77", t, BASE) == 1000);
	test_assert(auth_penalty_fail(p, "::ffff:192.0.2.77", t, BASE) == 2000);
	/* Not an address (no such client, but it must not break). */
	test_assert(auth_penalty_fail(p, "", t, BASE) == 1000);
	test_assert(auth_penalty_fail(p, "unknown", t, BASE) == 1000);
	test_assert(auth_penalty_count(p) == 5);
	auth_penalty_free(&p);
	test_end();
}

static void
test_penalty_bounded(void)
{
	struct auth_penalty *p = auth_penalty_new(3);
	struct auth_penalty *big = auth_penalty_new(0);
	char ip[64];
	uint64_t t = 10;
	int i;

	test_begin("penalty: bounded table, least recently used goes");
	(void)auth_penalty_fail(p, "192.0.2.1", t, BASE);
	(void)auth_penalty_fail(p, "192.0.2.2", t, BASE);
	(void)auth_penalty_fail(p, "192.0.2.3", t, BASE);
	/* .1 used again: .2 is now the oldest. */
	(void)auth_penalty_fail(p, "192.0.2.1", t + 1, BASE);
	(void)auth_penalty_fail(p, "192.0.2.4", t + 2, BASE);
	test_assert(auth_penalty_count(p) == 3);
	test_assert(auth_penalty_failures(p, "192.0.2.2", t + 2) == 0);
	test_assert(auth_penalty_failures(p, "192.0.2.1", t + 2) == 2);
	test_assert(auth_penalty_failures(p, "192.0.2.3", t + 2) == 1);
	test_assert(auth_penalty_failures(p, "192.0.2.4", t + 2) == 1);
	/* A flood of addresses stays within the default bound. */
	for (i = 0; i < 3 * AUTH_PENALTY_MAX_ENTRIES; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16,
		    i & 0xffff);
		(void)auth_penalty_fail(big, ip, t, BASE);
	}
	test_assert(auth_penalty_count(big) == AUTH_PENALTY_MAX_ENTRIES);
	auth_penalty_free(&p);
	auth_penalty_free(&big);
	test_end();
}

static bool
is_hex(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' &&
		    s[i] <= 'f')))
			return false;
	return true;
}

static void
test_tickets(void)
{
	struct auth_tickets *t = auth_tickets_new(0);
	char a[AUTH_TICKET_LEN + 1], b[AUTH_TICKET_LEN + 1];
	char *user;
	uint64_t now = 50000;

	test_begin("tickets: random, single use, 30 s");
	auth_tickets_issue(t, "alice", now, a);
	auth_tickets_issue(t, "bob", now + 1, b);
	test_assert(is_hex(a, AUTH_TICKET_LEN) && is_hex(b, AUTH_TICKET_LEN));
	test_assert(strcmp(a, b) != 0);
	test_assert(auth_tickets_count(t, now + 1) == 2);
	user = auth_tickets_redeem(t, b, now + 2);
	test_assert_streq(user, "bob");
	free(user);
	test_assert(auth_tickets_redeem(t, b, now + 3) == NULL);
	test_assert(auth_tickets_redeem(t, "", now) == NULL);
	test_assert(auth_tickets_redeem(t, "0123", now) == NULL);
	a[0] = a[0] == '0' ? '1' : '0';
	test_assert(auth_tickets_redeem(t, a, now) == NULL);
	a[0] = a[0] == '0' ? '1' : '0';
	/* Expired at 30 s. */
	test_assert(auth_tickets_redeem(t, a, now + AUTH_TICKET_TTL_MS) ==
	    NULL);
	test_assert(auth_tickets_count(t, now + AUTH_TICKET_TTL_MS) == 0);
	/* Just before: still good. */
	auth_tickets_issue(t, "carol", now, a);
	user = auth_tickets_redeem(t, a, now + AUTH_TICKET_TTL_MS - 1);
	test_assert_streq(user, "carol");
	free(user);
	/* After a redeem in the middle, the list still works at its end. */
	auth_tickets_issue(t, "u1", now, a);
	auth_tickets_issue(t, "u2", now, b);
	user = auth_tickets_redeem(t, b, now);
	test_assert_streq(user, "u2");
	free(user);
	auth_tickets_issue(t, "u3", now, b);
	user = auth_tickets_redeem(t, b, now);
	test_assert_streq(user, "u3");
	free(user);
	user = auth_tickets_redeem(t, a, now);
	test_assert_streq(user, "u1");
	free(user);
	test_assert(auth_tickets_count(t, now) == 0);
	auth_tickets_free(&t);
	test_assert(t == NULL);
	test_end();
}

static void
test_tickets_bounded(void)
{
	struct auth_tickets *t = auth_tickets_new(2);
	char a[AUTH_TICKET_LEN + 1], b[AUTH_TICKET_LEN + 1];
	char c[AUTH_TICKET_LEN + 1];
	char *user;

	test_begin("tickets: bounded, the oldest goes first");
	auth_tickets_issue(t, "a", 1, a);
	auth_tickets_issue(t, "b", 2, b);
	auth_tickets_issue(t, "c", 3, c);
	test_assert(auth_tickets_count(t, 3) == 2);
	test_assert(auth_tickets_redeem(t, a, 4) == NULL);
	user = auth_tickets_redeem(t, c, 4);
	test_assert_streq(user, "c");
	free(user);
	user = auth_tickets_redeem(t, b, 4);
	test_assert_streq(user, "b");
	free(user);
	auth_tickets_free(&t);
	test_end();
}

int
main(void)
{
	test_penalty_doubling();
	test_penalty_parallel();
	test_penalty_window();
	test_penalty_keys();
	test_penalty_bounded();
	test_tickets();
	test_tickets_bounded();
	return test_done();
}
