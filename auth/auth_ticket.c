/*
 * auth_ticket: one-time login tickets (see auth_ticket.h).
 *
 * Tickets expire in the order they were issued, so one FIFO list is both
 * the store and the expiry schedule: expired tickets are cut from its
 * head on every call.  Few are alive at once (the logins of the last 30
 * seconds), so a redeem walks the list; tickets are compared in constant
 * time all the same.
 */
#include "config.h"

#include <sys/random.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "xmalloc.h"

#include "auth_ticket.h"

struct auth_ticket {
	struct auth_ticket	*next;
	char			 ticket[AUTH_TICKET_LEN + 1];
	char			*user;
	uint64_t		 expires;
};

struct auth_tickets {
	struct auth_ticket	*head;		/* oldest */
	struct auth_ticket	**tail;
	size_t			 count;
	size_t			 max;
};

struct auth_tickets *
auth_tickets_new(size_t max)
{
	struct auth_tickets *t = xcalloc(1, sizeof(*t));

	t->tail = &t->head;
	t->max = max != 0 ? max : AUTH_TICKET_MAX;
	return t;
}

static void
auth_ticket_free(struct auth_ticket *k)
{
	free(k->user);
	explicit_bzero(k, sizeof(*k));
	free(k);
}

/* Drop the oldest ticket. */
static void
auth_tickets_pop(struct auth_tickets *t)
{
	struct auth_ticket *k = t->head;

	t->head = k->next;
	if (t->head == NULL)
		t->tail = &t->head;
	t->count--;
	auth_ticket_free(k);
}

static void
auth_tickets_expire(struct auth_tickets *t, uint64_t now)
{
	while (t->head != NULL && t->head->expires <= now)
		auth_tickets_pop(t);
}

void
auth_tickets_free(struct auth_tickets **tp)
{
	struct auth_tickets *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	while (t->head != NULL)
		auth_tickets_pop(t);
	free(t);
}

static void
auth_tickets_random(unsigned char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("getrandom: %m");
		}
		p += r;
		n -= (size_t)r;
	}
}

void
auth_tickets_issue(struct auth_tickets *t, const char *user, uint64_t now,
    char ticket_r[AUTH_TICKET_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[AUTH_TICKET_LEN / 2];
	struct auth_ticket *k;
	size_t i;

	auth_tickets_expire(t, now);
	while (t->count >= t->max)
		auth_tickets_pop(t);
	auth_tickets_random(rnd, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++) {
		ticket_r[2 * i] = hex[rnd[i] >> 4];
		ticket_r[2 * i + 1] = hex[rnd[i] & 0xf];
	}
	ticket_r[AUTH_TICKET_LEN] = '\0';
	explicit_bzero(rnd, sizeof(rnd));

	k = xcalloc(1, sizeof(*k));
	memcpy(k->ticket, ticket_r, sizeof(k->ticket));
	k->user = xstrdup(user);
	k->expires = now + AUTH_TICKET_TTL_MS;
	*t->tail = k;
	t->tail = &k->next;
	t->count++;
}

char *
auth_tickets_redeem(struct auth_tickets *t, const char *ticket, uint64_t now)
{
	struct auth_ticket **kp, *k;
	char *user;

	auth_tickets_expire(t, now);
	if (strlen(ticket) != AUTH_TICKET_LEN)
		return NULL;
	for (kp = &t->head; (k = *kp) != NULL; kp = &k->next) {
		if (CRYPTO_memcmp(k->ticket, ticket, AUTH_TICKET_LEN) != 0)
			continue;
		*kp = k->next;
		if (t->tail == &k->next)
			t->tail = kp;
		t->count--;
		user = k->user;
		k->user = NULL;
		auth_ticket_free(k);
		return user;
	}
	return NULL;
}

size_t
auth_tickets_count(struct auth_tickets *t, uint64_t now)
{
	auth_tickets_expire(t, now);
	return t->count;
}
