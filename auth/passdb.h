/*
 * passdb: does this password belong to this user?  The source is the
 * config parameter passdb (DESIGN §7):
 *   "pam"               PAM service "postern" (auth + account)
 *   "shadow"            getspnam(3) and crypt(3): yescrypt, sha512-crypt,
 *                       bcrypt, whatever libcrypt knows
 *   "passwd-file:PATH"  Dovecot-format file, "{SCHEME}..." passwords
 * Unknown user and wrong password give the same result and take about
 * the same work, so answers do not reveal which names exist.  pam and
 * shadow need root; they run in the auth service.
 */
#ifndef POSTERN_PASSDB_H
#define POSTERN_PASSDB_H

#include "sasl.h"

struct userdb_user;

/*
 * Check password for user.  Returns 1 ok (and, when u_r is not NULL,
 * fills *u_r: free with userdb_user_free()), 0 unknown user or wrong
 * password, -1 temporary failure (*error_r, for the log).
 */
int	passdb_verify(const char *user, const char *password,
	    struct userdb_user *u_r, const char **error_r);

/*
 * The stored secret of user as a malloc'ed "{SCHEME}data" string, for
 * mechanisms that need it (CRAM-MD5 takes {PLAIN} or {CRAM-MD5};
 * SCRAM-SHA-256 takes {PLAIN} or {SCRAM-SHA-256}).  Only passwd-file
 * keeps such secrets.
 * Returns 1 found, 0 unknown user or passdb without secrets, -1
 * temporary failure.  Wipe (explicit_bzero) and free the string.
 */
int	passdb_lookup_secret(const char *user, char **secret_r,
	    const char **error_r);

/* Whether the configured passdb can give secrets (advertise CRAM/SCRAM). */
bool	passdb_has_secrets(void);

/* A sasl_lookup_cb over the configured passdb; ctx is unused. */
int	passdb_sasl_lookup(enum sasl_lookup_op op, const char *user,
	    const char *password, char **secret_r, void *ctx,
	    const char **error_r);

#endif
