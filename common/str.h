/*
 * str: small string helpers shared by every role: bounded copies, case
 * folding, vectors of strings, RFC 3461 xtext, and the escaping used on
 * internal line protocols.
 */
#ifndef POSTERN_STR_H
#define POSTERN_STR_H

#include <stdbool.h>
#include <stddef.h>

/* strlcpy semantics; returns strlen(src).  Check >= size for truncation. */
size_t	str_lcpy(char *dst, const char *src, size_t size);
/* In-place ASCII lowercase; returns s. */
char	*str_lower(char *s);
bool	str_case_eq(const char *a, const char *b);
bool	str_starts_case(const char *s, const char *prefix);
/* Trim ASCII whitespace at both ends, in place; returns start. */
char	*str_trim(char *s);

/* NULL-terminated malloc'ed string vectors. */
char	**strv_split(const char *s, const char *seps);	/* skips empties */
size_t	 strv_len(char *const *v);
void	 strv_push(char ***v, const char *s);		/* copies s */
bool	 strv_contains_case(char *const *v, const char *s);
void	 strv_free(char ***v);

/*
 * xtext (RFC 3461 §4): bytes outside "!".."~", '+' and '=' become +HH.
 * Used for DSN ENVID/ORCPT and as the field escaping of every internal
 * protocol line, so a field never holds a space, TAB, CR or LF.
 * Both return malloc'ed strings; decode returns NULL on malformed input.
 */
char	*xtext_encode(const char *s, size_t len);
char	*xtext_decode(const char *s);

/*
 * Parse a decimal number with overflow check and range [min, max].
 * The whole string must be digits (optional leading '-' if min < 0).
 * Returns 0 and *val_r, or -1.
 */
int	str_to_ll(const char *s, long long min, long long max, long long *val_r);

/* Whether s[0..len) is well-formed UTF-8 (RFC 3629). */
bool	str_utf8_valid(const char *s, size_t len);

#endif
