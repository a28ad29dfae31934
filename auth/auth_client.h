/*
 * auth_client: the client side of the auth protocol (doc/internals.md,
 * "Authentication"), for processes that run an event loop (smtpd,
 * imap-login, pop3-login).  One connection per process, opened lazily
 * and reopened after the auth process restarts; many exchanges at once.
 *
 * Usage for one login:
 *   req = auth_request_new(mech, &info, initial, cb, ctx);
 *   cb(..., AUTH_CLIENT_CONTINUE, challenge) -> send it to the client
 *   auth_request_continue(req, client_line)   -> the client's answer
 *   cb(..., AUTH_CLIENT_OK / _FAIL / _TEMPFAIL) -> the request is freed
 *     by the library right after cb returns.
 * auth_request_abort() drops a request whose client went away (cb is not
 * called again).
 */
#ifndef POSTERN_AUTH_CLIENT_H
#define POSTERN_AUTH_CLIENT_H

#include <stdbool.h>

struct auth_request;

enum auth_client_result {
	AUTH_CLIENT_CONTINUE,	/* data: base64 challenge to send */
	AUTH_CLIENT_OK,		/* user: authenticated name */
	AUTH_CLIENT_FAIL,	/* user: claimed name or NULL */
	AUTH_CLIENT_TEMPFAIL,	/* auth unavailable / passdb down */
};

struct auth_request_info {
	const char	*service;	/* "smtp", "pop3", "imap" */
	const char	*rip;		/* remote address, numeric */
	const char	*lip;		/* local address, numeric */
	bool		 secured;	/* TLS, or loopback counted as secure */
};

/*
 * user: see above.  data: the challenge (base64, may be "") for CONTINUE;
 * for OK the ticket (hex) when the server issued one, else NULL.
 * reason: for the log only (FAIL/TEMPFAIL), may be NULL.
 */
typedef void auth_request_cb(enum auth_client_result result,
    const char *user, const char *data, const char *reason, void *ctx);

/*
 * Where the auth socket is: an absolute path, or relative to
 * queue_directory (smtpd_sasl_path).  Call once after the config is read;
 * the connection is made at the first request.
 */
void	auth_client_init(const char *socket_path);
/* Connect now (login processes before chroot).  Returns 0 or -1. */
int	auth_client_connect(void);
void	auth_client_deinit(void);

/*
 * Mechanisms the auth service offers, upper case, space separated, as of
 * the last connection ("" when it could not be reached).  With
 * plaintext_ok false the plaintext ones (PLAIN, LOGIN) are left out.
 * Connects (blocking, bounded by 5 s) when not yet connected.
 */
const char *auth_client_mechs(bool plaintext_ok);
/* Whether mech (case-insensitive) is offered, as above. */
bool	auth_client_mech_offered(const char *mech, bool plaintext_ok);

/*
 * Start an exchange.  initial is the client's initial response in base64
 * ("=" for an empty one), or NULL for none.  Never calls cb before
 * returning; a broken connection is reported as TEMPFAIL from the loop.
 */
struct auth_request *auth_request_new(const char *mech,
	    const struct auth_request_info *info, const char *initial,
	    auth_request_cb *cb, void *ctx);
/* The client's answer to a challenge: base64 text, or "*" to cancel. */
void	auth_request_continue(struct auth_request *req, const char *line);
/* Forget a request; its callback is not called any more. */
void	auth_request_abort(struct auth_request **reqp);

#endif
