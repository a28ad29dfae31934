/*
 * password: hashing and checking of stored passwords in Dovecot's
 * "{SCHEME}data" notation, as found in passwd-file lines (DESIGN §7).
 *
 * Schemes: SHA512-CRYPT ($6$), SHA256-CRYPT ($5$), BLF-CRYPT ($2y$),
 * MD5-CRYPT ($1$), CRYPT (traditional DES crypt; also any crypt(3) string
 * the system library understands) and PLAIN (also spelled CLEAR or
 * CLEARTEXT).  The crypt schemes go through libcrypt (crypt_r,
 * crypt_gensalt_rn); salts come from the kernel's random source.
 *
 * This module does not read files or decide who may log in: it only turns
 * a password into a stored string and compares a password with one.
 */
#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

#include <stdbool.h>

/* The scheme password_hash() uses when none is asked for. */
#define PASSWORD_DEFAULT_SCHEME "SHA512-CRYPT"

/* Whether scheme (case-insensitive, without braces) is supported. */
bool	password_scheme_known(const char *scheme);

/*
 * Hash pw with scheme (NULL: PASSWORD_DEFAULT_SCHEME) and a fresh random
 * salt.  Returns a malloc'ed "{SCHEME}hash", e.g. "{SHA512-CRYPT}$6$...",
 * or NULL when the scheme is unknown or libcrypt fails.
 */
char	*password_hash(const char *scheme, const char *pw);

/*
 * Check pw against a stored "{SCHEME}data" string; a string without a
 * "{SCHEME}" prefix is taken as CRYPT, as Dovecot does for passwd-files.
 * The final comparison takes the same time wherever the strings differ.
 * Returns 1 match, 0 mismatch, -1 unknown scheme or malformed hash.
 */
int	password_verify(const char *stored, const char *pw);

#endif
