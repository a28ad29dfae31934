/*
 * auth_penalty: failures per remote address (see auth_penalty.h).
 *
 * A chained hash table keyed by the normalised address, plus a list in
 * order of last use so the least recently used entry is the one evicted
 * when the table is full.  The hash is seeded at random: the keys come
 * from the network (an IPv6 attacker chooses his /64 prefixes), and a
 * guessable hash would let him pile them into one chain.
 */
#include "config.h"

#include <sys/random.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "str.h"
#include "xmalloc.h"

#include "auth_penalty.h"

/* Longest key: an IPv6 address in text, or a clipped other string. */
#define AUTH_PENALTY_KEY	64

struct auth_penalty_entry {
	struct auth_penalty_entry *hnext;	/* hash chain */
	struct auth_penalty_entry *lprev;	/* use order, newest first */
	struct auth_penalty_entry *lnext;
	char		 key[AUTH_PENALTY_KEY];
	unsigned int	 failures;
	uint64_t	 last_fail;	/* ms */
	uint64_t	 release_at;	/* ms: latest FAIL release */
};

struct auth_penalty {
	struct auth_penalty_entry **buckets;
	size_t		 nbuckets;	/* power of two */
	size_t		 count;
	size_t		 max;
	uint64_t	 seed;
	struct auth_penalty_entry *newest;
	struct auth_penalty_entry *oldest;
};

struct auth_penalty *
auth_penalty_new(size_t max_entries)
{
	struct auth_penalty *p = xcalloc(1, sizeof(*p));

	p->max = max_entries != 0 ? max_entries : AUTH_PENALTY_MAX_ENTRIES;
	p->nbuckets = 64;
	while (p->nbuckets < p->max)
		p->nbuckets *= 2;
	p->buckets = xcalloc(p->nbuckets, sizeof(*p->buckets));
	if (getrandom(&p->seed, sizeof(p->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(p->seed))
		p->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
	return p;
}

void
auth_penalty_free(struct auth_penalty **pp)
{
	struct auth_penalty *p = *pp;
	struct auth_penalty_entry *e, *next;

	if (p == NULL)
		return;
	*pp = NULL;
	for (e = p->newest; e != NULL; e = next) {
		next = e->lnext;
		free(e);
	}
	free(p->buckets);
	free(p);
}

/*
 * The key of an address: IPv4 as is, IPv6 cut to its /64 (an
 * IPv4-mapped IPv6 address counts as the IPv4 address), anything else
 * (not expected from our clients) as its clipped text.
 */
static void
auth_penalty_key(const char *rip, char key[AUTH_PENALTY_KEY])
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, rip, &a4) == 1 &&
	    inet_ntop(AF_INET, &a4, key, AUTH_PENALTY_KEY) != NULL)
		return;
	if (inet_pton(AF_INET6, rip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
			if (inet_ntop(AF_INET, &a4, key, AUTH_PENALTY_KEY) !=
			    NULL)
				return;
		}
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, key, AUTH_PENALTY_KEY) != NULL)
			return;
	}
	(void)str_lcpy(key, rip, AUTH_PENALTY_KEY);
}

static size_t
auth_penalty_hash(const struct auth_penalty *p, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ p->seed;

	/* FNV-1a over the seeded basis, then a final mix. */
	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (size_t)(h & (p->nbuckets - 1));
}

static void
auth_penalty_unlink_use(struct auth_penalty *p, struct auth_penalty_entry *e)
{
	if (e->lprev != NULL)
		e->lprev->lnext = e->lnext;
	else
		p->newest = e->lnext;
	if (e->lnext != NULL)
		e->lnext->lprev = e->lprev;
	else
		p->oldest = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void
auth_penalty_link_newest(struct auth_penalty *p, struct auth_penalty_entry *e)
{
	e->lprev = NULL;
	e->lnext = p->newest;
	if (p->newest != NULL)
		p->newest->lprev = e;
	p->newest = e;
	if (p->oldest == NULL)
		p->oldest = e;
}

static void
auth_penalty_remove(struct auth_penalty *p, struct auth_penalty_entry *e)
{
	struct auth_penalty_entry **pp;

	for (pp = &p->buckets[auth_penalty_hash(p, e->key)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	auth_penalty_unlink_use(p, e);
	p->count--;
	free(e);
}

/* Whether an entry no longer matters: window over, nothing held. */
static bool
auth_penalty_stale(const struct auth_penalty_entry *e, uint64_t now)
{
	return now >= e->release_at &&
	    now - e->last_fail >= AUTH_PENALTY_WINDOW_MS;
}

/* The entry of key, or NULL; a stale one is dropped on the way. */
static struct auth_penalty_entry *
auth_penalty_find(struct auth_penalty *p, const char *key, uint64_t now)
{
	struct auth_penalty_entry *e;

	for (e = p->buckets[auth_penalty_hash(p, key)]; e != NULL;
	    e = e->hnext) {
		if (strcmp(e->key, key) != 0)
			continue;
		if (auth_penalty_stale(e, now)) {
			auth_penalty_remove(p, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

uint64_t
auth_penalty_ready_at(struct auth_penalty *p, const char *rip, uint64_t now)
{
	struct auth_penalty_entry *e;
	char key[AUTH_PENALTY_KEY];

	auth_penalty_key(rip, key);
	e = auth_penalty_find(p, key, now);
	return e != NULL && e->release_at > now ? e->release_at : now;
}

uint64_t
auth_penalty_fail(struct auth_penalty *p, const char *rip, uint64_t now,
    uint64_t base_ms)
{
	struct auth_penalty_entry *e;
	char key[AUTH_PENALTY_KEY];
	uint64_t delay;
	unsigned int i;
	size_t b;

	auth_penalty_key(rip, key);
	if ((e = auth_penalty_find(p, key, now)) == NULL) {
		/* Drop stale entries from the old end, then make room. */
		while (p->oldest != NULL &&
		    (p->count >= p->max || auth_penalty_stale(p->oldest, now)))
			auth_penalty_remove(p, p->oldest);
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, sizeof(e->key));
		b = auth_penalty_hash(p, key);
		e->hnext = p->buckets[b];
		p->buckets[b] = e;
		p->count++;
	} else {
		auth_penalty_unlink_use(p, e);
		if (now - e->last_fail >= AUTH_PENALTY_WINDOW_MS)
			e->failures = 0;
	}
	auth_penalty_link_newest(p, e);
	if (e->failures < 64)
		e->failures++;
	e->last_fail = now;
	delay = base_ms < AUTH_PENALTY_MAX_MS ? base_ms : AUTH_PENALTY_MAX_MS;
	for (i = 1; i < e->failures && delay < AUTH_PENALTY_MAX_MS; i++)
		delay *= 2;
	if (delay > AUTH_PENALTY_MAX_MS)
		delay = AUTH_PENALTY_MAX_MS;
	if (now + delay > e->release_at)
		e->release_at = now + delay;
	return delay;
}

unsigned int
auth_penalty_failures(struct auth_penalty *p, const char *rip, uint64_t now)
{
	struct auth_penalty_entry *e;
	char key[AUTH_PENALTY_KEY];

	auth_penalty_key(rip, key);
	e = auth_penalty_find(p, key, now);
	if (e == NULL || now - e->last_fail >= AUTH_PENALTY_WINDOW_MS)
		return 0;
	return e->failures;
}

size_t
auth_penalty_count(const struct auth_penalty *p)
{
	return p->count;
}
