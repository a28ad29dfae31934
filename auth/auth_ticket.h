/*
 * auth_ticket: the one-time tokens that tell posternd who logged in on a
 * login process (doc/internals.md "Authentication").  A successful
 * login for service pop3 or imap gets a ticket: 128 random bits in hex,
 * naming the user, valid AUTH_TICKET_TTL_MS and redeemable once.  The
 * table is bounded: when AUTH_TICKET_MAX are alive the oldest is dropped
 * (its login then fails as if it had expired).  Pure bookkeeping; the
 * caller passes the monotonic time in milliseconds.
 */
#ifndef POSTERN_AUTH_TICKET_H
#define POSTERN_AUTH_TICKET_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_TICKET_LEN		32		/* hex digits */
#define AUTH_TICKET_TTL_MS	(30 * 1000)
#define AUTH_TICKET_MAX		10000

struct auth_tickets;

/* max 0 = AUTH_TICKET_MAX. */
struct auth_tickets *auth_tickets_new(size_t max);
void	auth_tickets_free(struct auth_tickets **tp);

/* Make a ticket for user; ticket_r gets AUTH_TICKET_LEN hex digits. */
void	auth_tickets_issue(struct auth_tickets *t, const char *user,
	    uint64_t now, char ticket_r[AUTH_TICKET_LEN + 1]);
/*
 * Redeem a ticket: the user it names (malloc'ed), or NULL when it is
 * unknown, already used or expired.  A redeemed ticket is gone.
 */
char	*auth_tickets_redeem(struct auth_tickets *t, const char *ticket,
	    uint64_t now);
/* Tickets alive (tests). */
size_t	auth_tickets_count(struct auth_tickets *t, uint64_t now);

#endif
