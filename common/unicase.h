/*
 * unicase: the "i;unicode-casemap" collation of RFC 5051, which IMAP
 * I18NLEVEL=1 (RFC 5255 §4) makes the comparator of SEARCH and SORT.
 *
 * A string is mapped one character at a time to its titlecase (the
 * simple titlecase mapping of the Unicode data) and then to its
 * compatibility decomposition (NFKD); two strings compare as the octets
 * of their mapped UTF-8.  Covered: ASCII, Latin-1 Supplement, Latin
 * Extended-A and -B, Latin Extended Additional, Greek and Coptic, Greek
 * Extended, Cyrillic and its Supplement, the Latin ligatures at U+FB00
 * and the fullwidth ASCII forms; other characters map to themselves.
 * Combining marks are not reordered (canonical ordering of NFKD), which
 * only matters for text that stacks several marks on one letter.
 * Invalid UTF-8 bytes become U+FFFD, as RFC 5051 §2 asks.
 */
#ifndef POSTERN_UNICASE_H
#define POSTERN_UNICASE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Append the casemap of UTF-8 s[0..len) to out; 0, or -1 past out's
 * max. */
int	unicase_fold(const char *s, size_t len, struct buf *out);
/* Whether s[0..len) is ASCII only: its casemap is its upper case, so a
 * matcher that folds case anyway (mime_search) may take it as it is. */
bool	unicase_is_ascii(const char *s, size_t len);
/* Compare two UTF-8 strings under i;unicode-casemap: <0, 0, >0. */
int	unicase_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
