/*
 * sasl: server side of the SASL mechanisms Postern offers (RFC 4422):
 * PLAIN (RFC 4616), LOGIN (the de facto "Username:"/"Password:" exchange),
 * CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677; no channel
 * binding, so no -PLUS variant).  One implementation serves SMTP AUTH,
 * POP3 AUTH and IMAP AUTHENTICATE.
 *
 * The mechanisms are pure state machines: decoded client bytes in,
 * decoded challenge bytes out, no I/O.  Credentials are checked through a
 * lookup callback (passdb_sasl_lookup() in production) so the same code
 * runs in the auth service and in tests.  sasl_server_step_base64() adds
 * the wire form the protocols share: base64 lines, "*" to cancel and "="
 * for an empty initial response (RFC 4954 §4, RFC 4959).
 *
 * CRAM-MD5 works from a stored {CRAM-MD5} secret (the HMAC-MD5 contexts,
 * password.h) or {PLAIN}; SCRAM-SHA-256 from {SCRAM-SHA-256} or {PLAIN}.
 * Any other stored scheme (a crypt hash) cannot serve them: the exchange
 * then fails as a wrong password would.
 *
 * Every mechanism finishes with the server sending nothing more: SCRAM's
 * server-final message ("v=...") is sent as one more challenge, answered
 * by an empty response, which works in SMTP, POP3 and IMAP alike.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "password.h"	/* MAX_SCRAM_ITERATIONS, the stored secrets */

struct buf;
struct sasl_server;

/* Decoded client data accepted in one step (RFC 4954 lines are 12288). */
#define MAX_SASL_INPUT		8192
/* Longest authentication or authorization identity. */
#define MAX_SASL_USER		255
/* Iteration count used when deriving SCRAM keys from a {PLAIN} secret. */
#define SASL_SCRAM_ITERATIONS	PASSWORD_SCRAM_ITERATIONS

enum sasl_result {
	SASL_CONTINUE,		/* send *out as a challenge, await more */
	SASL_OK,		/* authenticated as sasl_server_user() */
	SASL_FAIL,		/* bad credentials, bad input or cancelled */
	SASL_TEMPFAIL,		/* passdb unavailable: try again later */
};

enum sasl_lookup_op {
	/* Check password for user: return 1 ok, 0 wrong, -1 temp failure. */
	SASL_LOOKUP_VERIFY,
	/*
	 * Fetch user's stored secret as a malloc'ed "{SCHEME}data" string in
	 * *secret_r: return 1 found, 0 unknown user or no usable secret,
	 * -1 temp failure.
	 */
	SASL_LOOKUP_SECRET,
};

typedef int sasl_lookup_cb(enum sasl_lookup_op op, const char *user,
    const char *password, char **secret_r, void *ctx, const char **error_r);

/* Whether name (case-insensitive) is a mechanism this module implements. */
bool	sasl_mech_known(const char *name);
/* Whether the mechanism needs the stored secret (CRAM-MD5, SCRAM-*). */
bool	sasl_mech_needs_secret(const char *name);

/*
 * Start an exchange for mech; NULL if the mechanism is unknown.
 * service ("smtp", "imap", "pop") and hostname go into the CRAM-MD5
 * challenge.  lookup/ctx are used during the steps.
 */
struct sasl_server *sasl_server_new(const char *mech, const char *service,
	    const char *hostname, sasl_lookup_cb *lookup, void *ctx);
void	sasl_server_free(struct sasl_server **s);

/*
 * For tests only: fix the server's random part.  CRAM-MD5 uses nonce as
 * its whole challenge; SCRAM-SHA-256 appends it to the client nonce (it
 * must then hold no ','). Call before the first step.
 */
void	sasl_server_set_nonce(struct sasl_server *s, const char *nonce);

/*
 * One step.  in is the decoded client data, or NULL for "no data" (the
 * first step without an initial response); an empty initial response is
 * in != NULL with inlen 0.  The challenge to send is appended to out
 * (decoded; may be empty).  *error_r says why on SASL_FAIL/SASL_TEMPFAIL;
 * it is for the log, never for the client, and holds no secrets.
 */
enum sasl_result sasl_server_step(struct sasl_server *s,
	    const unsigned char *in, size_t inlen, struct buf *out,
	    const char **error_r);

/*
 * The same on the wire form: line is the client's base64 text (without
 * CRLF), "*" cancels, "=" is an empty initial response, NULL is no data.
 * The challenge is appended to out base64-encoded (empty challenge: "").
 */
enum sasl_result sasl_server_step_base64(struct sasl_server *s,
	    const char *line, struct buf *out, const char **error_r);

/*
 * The authenticated user after SASL_OK, or the claimed user once known
 * (for the failure log line), else NULL.  Valid until sasl_server_free().
 */
const char *sasl_server_user(const struct sasl_server *s);
/* The authorization identity the client asked for, or NULL (= user). */
const char *sasl_server_authzid(const struct sasl_server *s);
/* Canonical mechanism name ("PLAIN", ...). */
const char *sasl_server_mech(const struct sasl_server *s);

/*
 * Derive a stored SCRAM-SHA-256 secret from a password, in Dovecot's
 * format "{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY" (base64 fields).
 * salt NULL = 16 random bytes.  Returns a malloc'ed string.  The same as
 * password_scram_sha256_secret().
 */
char	*sasl_scram_sha256_secret(const char *password,
	    const unsigned char *salt, size_t saltlen, unsigned int iter);

#endif
