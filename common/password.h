/*
 * password: hashing and checking of stored passwords in Dovecot's
 * "{SCHEME}data" notation, as found in passwd-file lines (DESIGN §7).
 *
 * Schemes, with the names Dovecot gives them:
 *   SHA512-CRYPT ($6$), SHA256-CRYPT ($5$), BLF-CRYPT ($2y$), MD5-CRYPT
 *     ($1$), CRYPT (also DES-CRYPT: traditional DES crypt; when checking,
 *     any crypt(3) string the system library understands, so yescrypt
 *     ($y$) hashes copied from Debian's shadow file work too).  These go
 *     through libcrypt (crypt_r, crypt_gensalt_rn); salts come from the
 *     kernel's random source.
 *   CRAM-MD5 (also HMAC-MD5): the HMAC-MD5 inner and outer MD5 states
 *     after the key block (RFC 2104 §2), as 64 hex digits: the outer
 *     state's four words, then the inner state's, each little-endian, as
 *     `doveadm pw -s CRAM-MD5` writes them.  Enough to answer CRAM-MD5
 *     (RFC 2195) without storing the password itself.
 *   SCRAM-SHA-256: "ITER,SALT,STOREDKEY,SERVERKEY" (base64 fields,
 *     RFC 5802 §3, RFC 7677), Dovecot's format.  Enough for the
 *     SCRAM-SHA-256 mechanism and for checking a plaintext password.
 *   PLAIN (also CLEAR, CLEARTEXT): the password itself.
 *
 * This module does not read files or decide who may log in: it only turns
 * a password into a stored string and compares a password with one.  The
 * SASL mechanisms (auth/sasl.c) use the CRAM-MD5 and SCRAM helpers below.
 */
#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The scheme password_hash() uses when none is asked for. */
#define PASSWORD_DEFAULT_SCHEME "SHA512-CRYPT"

/* Highest SCRAM iteration count accepted from a stored secret. */
#define MAX_SCRAM_ITERATIONS	1000000
/* Longest SCRAM salt accepted from a stored secret, in bytes. */
#define MAX_SCRAM_SALT		256
/* Iterations of a new SCRAM-SHA-256 secret (Dovecot's default too). */
#define PASSWORD_SCRAM_ITERATIONS 4096
/* Length of SCRAM-SHA-256 keys (SHA-256 output). */
#define PASSWORD_SCRAM_KEY_LEN	32
/* Length of an HMAC-MD5 result. */
#define PASSWORD_MD5_LEN	16

/* Whether scheme (case-insensitive, without braces) is supported. */
bool	password_scheme_known(const char *scheme);

/*
 * The i-th scheme name (0, 1, ...), aliases included, in a stable order;
 * NULL after the last.  For "postern pw -l".
 */
const char *password_scheme_name(size_t i);

/*
 * Hash pw with scheme (NULL: PASSWORD_DEFAULT_SCHEME) and a fresh random
 * salt.  Returns a malloc'ed "{SCHEME}hash", e.g. "{SHA512-CRYPT}$6$...",
 * with the scheme's canonical name, or NULL when the scheme is unknown or
 * libcrypt fails.
 */
char	*password_hash(const char *scheme, const char *pw);

/*
 * Check pw against a stored "{SCHEME}data" string; a string without a
 * "{SCHEME}" prefix is taken as CRYPT, as Dovecot does for passwd-files.
 * The final comparison takes the same time wherever the strings differ.
 * Returns 1 match, 0 mismatch, -1 unknown scheme or malformed hash.
 */
int	password_verify(const char *stored, const char *pw);

/*
 * If stored is "{SCHEME}data" with the given scheme (or one of its
 * aliases: "PLAIN" also matches {CLEAR} and {CLEARTEXT}), return data;
 * else NULL.  The result points into stored.
 */
const char *password_scheme_data(const char *stored, const char *scheme);

/*
 * CRAM-MD5 contexts: the MD5 chaining values after HMAC-MD5 has hashed
 * its key block, for the inner (key XOR ipad) and the outer (key XOR
 * opad) hash (RFC 2104 §2).
 */
struct password_cram_md5 {
	uint32_t	inner[4];
	uint32_t	outer[4];
};

/* The contexts of key pw (a key over 64 bytes is first hashed). */
void	password_cram_md5_init(struct password_cram_md5 *ctx,
	    const void *pw, size_t len);
/*
 * Parse the data of a {CRAM-MD5} secret: exactly 64 hex digits (either
 * case).  Returns 0, or -1 when malformed.
 */
int	password_cram_md5_parse(const char *data,
	    struct password_cram_md5 *ctx_r);
/* Finish HMAC-MD5(key, msg) from the key's contexts. */
void	password_cram_md5_hmac(const struct password_cram_md5 *ctx,
	    const void *msg, size_t len, unsigned char mac_r[PASSWORD_MD5_LEN]);

/*
 * SCRAM-SHA-256 key derivation (RFC 5802 §3):
 *   SaltedPassword = PBKDF2-HMAC-SHA-256(pw, salt, iter)
 *   StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))
 *   ServerKey = HMAC(SaltedPassword, "Server Key")
 */
void	password_scram_sha256_keys(const char *pw,
	    const unsigned char *salt, size_t saltlen, unsigned int iter,
	    unsigned char stored_r[PASSWORD_SCRAM_KEY_LEN],
	    unsigned char server_r[PASSWORD_SCRAM_KEY_LEN]);
/*
 * A stored secret "{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY" for pw.
 * salt NULL = 16 random bytes.  Returns a malloc'ed string.
 */
char	*password_scram_sha256_secret(const char *pw,
	    const unsigned char *salt, size_t saltlen, unsigned int iter);
/*
 * Parse the data of a {SCRAM-SHA-256} secret (after the braces) into
 * iterations (1..MAX_SCRAM_ITERATIONS), salt (1..MAX_SCRAM_SALT bytes,
 * into a buffer of that size) and the two keys.  Returns 0, or -1 when
 * malformed.
 */
int	password_scram_sha256_parse(const char *data, unsigned int *iter_r,
	    unsigned char salt_r[MAX_SCRAM_SALT], size_t *saltlen_r,
	    unsigned char stored_r[PASSWORD_SCRAM_KEY_LEN],
	    unsigned char server_r[PASSWORD_SCRAM_KEY_LEN]);

#endif
