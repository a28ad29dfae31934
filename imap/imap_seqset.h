/*
 * imap_seqset: IMAP sequence sets (RFC 3501 §9 sequence-set, RFC 9051
 * §9, RFC 5182 "$").  "1:3,5,7:*" becomes sorted, merged ranges plus
 * one "n:*" part, because '*' means "the largest number in use" and is
 * only known when the set is applied to a mailbox.  Membership tests
 * and resolution take that largest number (the message count for
 * sequence numbers, the highest UID for UIDs).
 *
 * This module does not know mailboxes: checking that sequence numbers
 * exist (RFC 9051 §6.4.4: a number past the count is an error) is the
 * caller's, with imap_seqset_highest().
 */
#ifndef POSTERN_IMAP_SEQSET_H
#define POSTERN_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* An inclusive range, lo <= hi, both >= 1. */
struct imap_seq_range {
	uint32_t	lo;
	uint32_t	hi;
};

struct imap_seqset {
	/* The ranges without '*': sorted, non-overlapping, non-adjacent. */
	struct imap_seq_range	*ranges;
	size_t			 count;
	/*
	 * Ranges with '*': "n:*" (or "*:n") is every number from
	 * min(n, max) to max (RFC 9051 §9: the range holds its ends
	 * whatever their order), and "*" alone is "4294967295:*", which
	 * comes to max.  Several such ranges merge into the smallest n.
	 */
	bool			 star;
	uint32_t		 star_from;
	/* "$": the saved search result (RFC 5182); nothing else is set. */
	bool			 saved;
};

/* IMAP_SEQSET_STAR_ONLY: star_from of a lone "*". */
#define IMAP_SEQSET_STAR_ONLY	UINT32_MAX

/* Flags of imap_seqset_parse(). */
#define IMAP_SEQSET_NO_STAR	0x1	/* '*' is a syntax error (QRESYNC
					 * known-uids, RFC 7162 §7) */
#define IMAP_SEQSET_NO_SAVED	0x2	/* "$" is a syntax error */

/*
 * Parse s[0..len) (no NUL needed).  Numbers are nz-number (1 to
 * 4294967295, no sign, no leading zero); elements are separated by
 * single commas.  On success set_r->ranges is malloc'ed (free with
 * imap_seqset_free()) and 0 is returned; on bad syntax -1 with a short
 * English reason in *error_r (static text).  The number of ranges is
 * bounded by len / 2.
 */
int	imap_seqset_parse(const char *s, size_t len, unsigned int flags,
	    struct imap_seqset *set_r, const char **error_r);
/* Free what imap_seqset_parse() allocated; the set becomes empty. */
void	imap_seqset_free(struct imap_seqset *set);

/* Whether n is in set, where '*' stands for max (0: empty mailbox, in
 * which '*' matches nothing).  A saved set ("$") contains nothing: the
 * caller substitutes its saved result first. */
bool	imap_seqset_contains(const struct imap_seqset *set, uint32_t n,
	    uint32_t max);

/*
 * The set as sorted, merged ranges with '*' replaced by max.  out must
 * have room for set->count + 1 ranges; returns the number written.
 * With max 0 the '*' part vanishes.
 */
size_t	imap_seqset_resolve(const struct imap_seqset *set, uint32_t max,
	    struct imap_seq_range *out);

/* The highest number the set names given max (0 when it names none):
 * for sequence numbers, a result above the message count is the
 * client's error. */
uint32_t imap_seqset_highest(const struct imap_seqset *set, uint32_t max);

/* Append ranges as "1:3,5,7:9" (the form COPYUID, VANISHED and ESEARCH
 * answer with); nothing for count 0. */
void	imap_seqset_format(const struct imap_seq_range *ranges, size_t count,
	    struct buf *out);

#endif
