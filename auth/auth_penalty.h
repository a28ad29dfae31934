/*
 * auth_penalty: the failure delay of the auth service, per remote address
 * (DESIGN §7, doc/internals.md "Authentication").
 *
 * Every failed authentication from an address holds its FAIL reply for
 * auth_failure_delay, doubled for each further failure from the same
 * address within AUTH_PENALTY_WINDOW_MS of the previous one, at most
 * AUTH_PENALTY_MAX_MS.  A new attempt from that address does not even
 * start before the last FAIL was released, so hanging up early and
 * trying again gains nothing.  A success does not reset the count: one
 * valid account must not let an attacker clear his penalty; it decays
 * only when an address has had no failure for the whole window.
 *
 * IPv6 addresses are counted per /64 (one customer's network), IPv4 per
 * address.  The table is bounded (AUTH_PENALTY_MAX_ENTRIES): when full,
 * the address used least recently is forgotten.  Pure bookkeeping: the
 * caller passes the monotonic time in milliseconds and does the waiting.
 */
#ifndef POSTERN_AUTH_PENALTY_H
#define POSTERN_AUTH_PENALTY_H

#include <stddef.h>
#include <stdint.h>

/* Failures count together when less than this apart. */
#define AUTH_PENALTY_WINDOW_MS		(5 * 60 * 1000)
/* Longest hold of a FAIL reply. */
#define AUTH_PENALTY_MAX_MS		(15 * 1000)
/* Addresses remembered at once. */
#define AUTH_PENALTY_MAX_ENTRIES	10000

struct auth_penalty;

/* max_entries 0 = AUTH_PENALTY_MAX_ENTRIES. */
struct auth_penalty *auth_penalty_new(size_t max_entries);
void	auth_penalty_free(struct auth_penalty **pp);

/*
 * When a new attempt from rip may start: now, or the time the last FAIL
 * for that address is released if that is later.
 */
uint64_t auth_penalty_ready_at(struct auth_penalty *p, const char *rip,
	    uint64_t now);

/*
 * Count a failure from rip at now; returns how long to hold its FAIL
 * reply: base_ms for the first failure in the window, doubled for each
 * further one, capped at AUTH_PENALTY_MAX_MS.
 */
uint64_t auth_penalty_fail(struct auth_penalty *p, const char *rip,
	    uint64_t now, uint64_t base_ms);

/* Failures counted for rip in its current window (tests, logs). */
unsigned int auth_penalty_failures(struct auth_penalty *p, const char *rip,
	    uint64_t now);
/* Addresses currently remembered. */
size_t	auth_penalty_count(const struct auth_penalty *p);

#endif
