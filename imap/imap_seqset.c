/*
 * imap_seqset: parsing, membership and formatting of IMAP sequence sets
 * (see imap_seqset.h).  Parsing sorts and merges the ranges once, so a
 * membership test is a binary search and a huge "1,2,3,...,n" costs no
 * more than its text.  It does not look at mailboxes.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_parse_private.h"
#include "imap_seqset.h"
#include "xmalloc.h"

static void *
seqset_malloc(void *ctx, size_t n, size_t size)
{
	(void)ctx;
	return xreallocarray(NULL, n, size);
}

/* nz-number (RFC 9051 §9): digit-nz *DIGIT, below 2^32. */
static int
seqset_number(const char *s, size_t len, uint32_t *n_r)
{
	uint64_t v;

	if (len == 0 || s[0] == '0')
		return -1;
	if (imap_parse_u64(s, len, UINT32_MAX, &v) < 0)
		return -1;
	*n_r = (uint32_t)v;
	return 0;
}

static int
seqset_range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

/* Sort and merge overlapping or adjacent ranges in place; new count. */
static size_t
seqset_normalize(struct imap_seq_range *r, size_t count)
{
	size_t i, n = 0;

	if (count == 0)
		return 0;
	qsort(r, count, sizeof(*r), seqset_range_cmp);
	for (i = 1; i < count; i++) {
		/* Adjacent when r[n].hi + 1 == r[i].lo; hi may be
		 * UINT32_MAX, so compare without adding. */
		if (r[i].lo <= r[n].hi || r[i].lo - 1 == r[n].hi) {
			if (r[i].hi > r[n].hi)
				r[n].hi = r[i].hi;
		} else
			r[++n] = r[i];
	}
	return n + 1;
}

int
imap_seqset_parse_with(const char *s, size_t len, unsigned int flags,
    void *(*alloc)(void *ctx, size_t n, size_t size), void *ctx,
    struct imap_seqset *set_r, const char **error_r)
{
	struct imap_seq_range *r;
	size_t i, start, elems = 1, n = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (len == 0) {
		*error_r = "Empty sequence set";
		return -1;
	}
	if (len == 1 && s[0] == '$') {
		/* RFC 5182 §2: "$" stands alone for the saved result. */
		if ((flags & IMAP_SEQSET_NO_SAVED) != 0) {
			*error_r = "Saved search result not allowed here";
			return -1;
		}
		set_r->saved = true;
		return 0;
	}
	for (i = 0; i < len; i++)
		if (s[i] == ',')
			elems++;
	/* At most one range per element; at least 2 bytes per element
	 * but the last, so this is bounded by the command line. */
	r = alloc(ctx, elems, sizeof(*r));

	start = 0;
	for (i = 0; i <= len; i++) {
		const char *e, *colon;
		size_t elen;
		uint32_t a = 0, b = 0;
		bool a_star, b_star;

		if (i < len && s[i] != ',')
			continue;
		e = s + start;
		elen = i - start;
		start = i + 1;
		colon = memchr(e, ':', elen);
		if (colon == NULL) {
			a_star = elen == 1 && e[0] == '*';
			if (!a_star && seqset_number(e, elen, &a) < 0)
				goto bad;
			b_star = a_star;
			b = a;
		} else {
			size_t alen = (size_t)(colon - e);
			size_t blen = elen - alen - 1;

			a_star = alen == 1 && e[0] == '*';
			b_star = blen == 1 && colon[1] == '*';
			if (!a_star && seqset_number(e, alen, &a) < 0)
				goto bad;
			if (!b_star && seqset_number(colon + 1, blen, &b) < 0)
				goto bad;
		}
		if (a_star || b_star) {
			uint32_t from;

			if ((flags & IMAP_SEQSET_NO_STAR) != 0) {
				*error_r = "'*' not allowed here";
				goto fail;
			}
			/* "*" and "*:*" are max; "n:*" and "*:n" run from
			 * min(n, max) to max (RFC 9051 §9 seq-range). */
			if (a_star && b_star)
				from = IMAP_SEQSET_STAR_ONLY;
			else
				from = a_star ? b : a;
			if (!set_r->star || from < set_r->star_from)
				set_r->star_from = from;
			set_r->star = true;
			continue;
		}
		if (a > b) {
			uint32_t t = a;

			a = b;
			b = t;
		}
		r[n].lo = a;
		r[n].hi = b;
		n++;
	}
	set_r->ranges = r;
	set_r->count = seqset_normalize(r, n);
	return 0;
bad:
	*error_r = "Invalid sequence set";
fail:
	if (alloc == seqset_malloc)
		free(r);
	memset(set_r, 0, sizeof(*set_r));
	return -1;
}

int
imap_seqset_parse(const char *s, size_t len, unsigned int flags,
    struct imap_seqset *set_r, const char **error_r)
{
	return imap_seqset_parse_with(s, len, flags, seqset_malloc, NULL,
	    set_r, error_r);
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	memset(set, 0, sizeof(*set));
}

bool
imap_seqset_contains(const struct imap_seqset *set, uint32_t n,
    uint32_t max)
{
	size_t lo = 0, hi = set->count;

	if (n == 0)
		return false;
	if (set->star && max > 0) {
		uint32_t from = set->star_from < max ? set->star_from : max;

		if (n >= from && n <= max)
			return true;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (n < set->ranges[mid].lo)
			hi = mid;
		else if (n > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

size_t
imap_seqset_resolve(const struct imap_seqset *set, uint32_t max,
    struct imap_seq_range *out)
{
	size_t n = set->count;

	if (n > 0)
		memcpy(out, set->ranges, n * sizeof(*out));
	if (set->star && max > 0) {
		out[n].lo = set->star_from < max ? set->star_from : max;
		out[n].hi = max;
		n++;
	}
	return seqset_normalize(out, n);
}

uint32_t
imap_seqset_highest(const struct imap_seqset *set, uint32_t max)
{
	uint32_t h = 0;

	if (set->count > 0)
		h = set->ranges[set->count - 1].hi;
	/* The '*' part only names numbers in use, even "n:*" with n past
	 * max (RFC 9051 §6.4.9: "559:*" includes the last UID). */
	if (set->star && max > 0 && max > h)
		h = max;
	return h;
}

void
imap_seqset_format(const struct imap_seq_range *ranges, size_t count,
    struct buf *out)
{
	size_t i;

	for (i = 0; i < count; i++) {
		if (i > 0)
			buf_append_char(out, ',');
		if (ranges[i].lo == ranges[i].hi)
			buf_printf(out, "%u", ranges[i].lo);
		else
			buf_printf(out, "%u:%u", ranges[i].lo, ranges[i].hi);
	}
}
