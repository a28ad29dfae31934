/*
 * login: what imap-login and pop3-login share (DESIGN §2, §12): accepting
 * clients on the inherited listeners, TLS (implicit on pop3s/imaps,
 * STARTTLS/STLS on request), bounded input, SASL through the auth
 * service, and the hand-off of a logged-in client to posternd, which
 * passes it to the user's mail process (doc/internals.md).  A TLS client
 * stays connected through this process, which relays decrypted bytes.
 *
 * The protocol module (pop3-login.c, imap-login.c) supplies a struct
 * login_proto and calls login_main(); everything else is here.
 */
#ifndef POSTERN_LOGIN_H
#define POSTERN_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "auth_client.h"

struct buf;
struct login_client;

/* Longest pre-login command line a client may send. */
#define LOGIN_MAX_LINE		8192
/* Bad commands before the client is disconnected. */
#define LOGIN_MAX_BAD		10
/* Pre-login idle limit in seconds. */
#define LOGIN_IDLE_TIMEOUT	180

struct login_proto {
	const char	*name;		/* "pop3" or "imap": log prefix
					 * "pop3-login", auth service name */
	/* Plaintext and implicit-TLS listener service names
	 * (POSTERN_LISTEN), e.g. "pop3" and "pop3s". */
	const char	*plain_service;
	const char	*tls_service;
	size_t		 client_size;	/* bytes of protocol state per client,
					 * login_client_ctx() */
	/* Connection ready (after the implicit-TLS handshake): greet. */
	void	(*greet)(struct login_client *c);
	/*
	 * New input is in login_client_input(c); consume what forms whole
	 * commands with login_client_consume().  Not called while the
	 * auth service or posternd is being waited for, nor after close;
	 * called while a SASL exchange waits for the client's response
	 * (after AUTH_CLIENT_CONTINUE: pass the line on with
	 * login_client_auth_continue()).  Called again as long as it
	 * consumes input and the output queue is not long.
	 */
	void	(*input)(struct login_client *c);
	/* STARTTLS/STLS handshake finished (no greeting is sent again). */
	void	(*tls_done)(struct login_client *c);
	/*
	 * The hand-off failed (posternd could not start the mail process):
	 * tell the client; the connection stays in the pre-login state.
	 */
	void	(*handoff_failed)(struct login_client *c, const char *reason);
	/* Connection is being freed: release protocol state. */
	void	(*destroy)(struct login_client *c);
};

/* Run the login process: never returns. */
int	login_main(const struct login_proto *proto, int argc, char **argv);

/* The protocol's per-client state (client_size bytes, zeroed). */
void	*login_client_ctx(struct login_client *c);

/* Send bytes (queued; flushed by the loop). */
void	login_client_write(struct login_client *c, const void *data,
	    size_t len);
void	login_client_printf(struct login_client *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Unconsumed input bytes. */
struct buf *login_client_input(struct login_client *c);
void	login_client_consume(struct login_client *c, size_t n);
/*
 * Find one CRLF- (or LF-) terminated line at the start of the input:
 * returns its length without the line end and sets *consume_r to the
 * bytes including it; 0 with *consume_r 0 when no whole line yet;
 * -1 when the line is longer than LOGIN_MAX_LINE (consume *consume_r
 * and answer with an error: the rest of that line, still to come, is
 * dropped by the library before input() sees anything again).
 */
ssize_t	login_client_line(struct login_client *c, size_t *consume_r);

/* Connection facts. */
const char *login_client_rip(const struct login_client *c);
const char *login_client_lip(const struct login_client *c);
bool	login_client_is_tls(const struct login_client *c);
/* TLS is possible on this connection now (certificate loaded, not yet
 * TLS). */
bool	login_client_tls_available(const struct login_client *c);
/* Whether plaintext passwords may be sent now: TLS, or
 * disable_plaintext_auth = no, or a loopback client (unless the
 * login_trusted_loopback test setting says otherwise). */
bool	login_client_plaintext_ok(const struct login_client *c);
/* Whether ssl = required forbids any login before TLS. */
bool	login_client_tls_required(const struct login_client *c);

/*
 * Start TLS now: any input bytes already received are discarded (the
 * STARTTLS injection rule) and logged; tls_done is called after the
 * handshake.  The caller has already queued its "OK, begin TLS" reply,
 * which is flushed in plaintext first.
 */
void	login_client_starttls(struct login_client *c);

/*
 * Authenticate: wraps auth_request_new() with this client's service, rip,
 * lip and secured flag.  cb gets the struct login_client * as its ctx.
 * On AUTH_CLIENT_OK with a ticket, the protocol normally calls
 * login_client_handoff() at once.  While the auth service is being
 * waited for input() is not called.  The attempt, the user name and the
 * mechanism go into the Disconnected/Login log lines.
 */
void	login_client_auth(struct login_client *c, const char *mech,
	    const char *initial, auth_request_cb *cb);
/* The client's answer to a challenge ("*" cancels). */
void	login_client_auth_continue(struct login_client *c, const char *line);

/*
 * Hand the logged-in client to its mail process.  tag is the IMAP tag of
 * the login command (NULL for POP3); unconsumed input goes along as
 * pipelined bytes.  mech is for the login log line.  On success the
 * client is gone from the protocol's view (destroy is called); on
 * failure handoff_failed is called.
 */
void	login_client_handoff(struct login_client *c, const char *user,
	    const char *ticket, const char *mech, const char *tag);

/*
 * Disconnect after flushing output; reason goes into the log line:
 * "Disconnected: REASON (no auth attempts in 2 secs): user=<>, ..."
 * (a reason that starts with "Disconnected" is used as it is).  NULL:
 * "Disconnected (...)".
 */
void	login_client_close(struct login_client *c, const char *reason);
/* Count a bad command; true when the client was disconnected for it. */
bool	login_client_bad(struct login_client *c);

#endif
