/*
 * store_hash: a string-keyed open-addressing hash table for the store's
 * two lookups by name: UID map records by key, and the files of a
 * Maildir scan by base name.  Entries are never deleted (a map's dead
 * record is marked dead and replaced in place by a later one with the
 * same key); the table only grows.  Keys are borrowed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store_private.h"
#include "xmalloc.h"

struct store_hash_ent {
	const char	*key;
	size_t		 keylen;
	uint64_t	 hash;
	void		*value;
};

struct store_hash {
	struct store_hash_ent *ents;
	size_t		 size;		/* power of two */
	size_t		 count;
};

uint64_t
store_hash_fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct store_hash *
store_hash_new(size_t expect)
{
	struct store_hash *h = xcalloc(1, sizeof(*h));

	h->size = 64;
	while (h->size < expect * 2)
		h->size *= 2;
	h->ents = xcalloc(h->size, sizeof(*h->ents));
	return h;
}

void
store_hash_free(struct store_hash **hp)
{
	if (*hp == NULL)
		return;
	free((*hp)->ents);
	free(*hp);
	*hp = NULL;
}

/*
 * The low bits of FNV-1a depend only on the low bits of the input bytes,
 * which are much alike in Maildir names; mix all bits into them (the
 * MurmurHash3 finaliser) before taking the slot.
 */
static size_t
store_hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (size_t)h;
}

static struct store_hash_ent *
store_hash_slot(const struct store_hash *h, const char *key, size_t keylen,
    uint64_t hash)
{
	size_t mask = h->size - 1, i = store_hash_mix(hash) & mask;

	for (;;) {
		struct store_hash_ent *e = &h->ents[i];

		if (e->key == NULL || (e->hash == hash && e->keylen == keylen &&
		    memcmp(e->key, key, keylen) == 0))
			return e;
		i = (i + 1) & mask;
	}
}

static void
store_hash_grow(struct store_hash *h)
{
	struct store_hash_ent *old = h->ents;
	size_t i, oldsize = h->size;

	h->size *= 2;
	h->ents = xcalloc(h->size, sizeof(*h->ents));
	for (i = 0; i < oldsize; i++) {
		if (old[i].key != NULL)
			*store_hash_slot(h, old[i].key, old[i].keylen,
			    old[i].hash) = old[i];
	}
	free(old);
}

void
store_hash_set(struct store_hash *h, const char *key, size_t keylen,
    void *value)
{
	uint64_t hash = store_hash_fnv(STORE_FNV_INIT, key, keylen);
	struct store_hash_ent *e;

	/* Keep the load under 1/2 so probes stay short. */
	if ((h->count + 1) * 2 > h->size)
		store_hash_grow(h);
	e = store_hash_slot(h, key, keylen, hash);
	if (e->key == NULL)
		h->count++;
	e->key = key;
	e->keylen = keylen;
	e->hash = hash;
	e->value = value;
}

void **
store_hash_ref(struct store_hash *h, const char *key, size_t keylen,
    bool *found_r)
{
	uint64_t hash = store_hash_fnv(STORE_FNV_INIT, key, keylen);
	struct store_hash_ent *e;

	if ((h->count + 1) * 2 > h->size)
		store_hash_grow(h);
	e = store_hash_slot(h, key, keylen, hash);
	*found_r = e->key != NULL;
	if (e->key == NULL) {
		h->count++;
		e->key = key;
		e->keylen = keylen;
		e->hash = hash;
		e->value = NULL;
	}
	return &e->value;
}

void *
store_hash_get(const struct store_hash *h, const char *key, size_t keylen)
{
	uint64_t hash = store_hash_fnv(STORE_FNV_INIT, key, keylen);

	return store_hash_slot(h, key, keylen, hash)->value;
}

size_t
store_hash_count(const struct store_hash *h)
{
	return h->count;
}
