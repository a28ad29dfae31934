/*
 * local_client: smtpd's side of delivery at accept (doc/internals.md,
 * "Delivery at accept").  When a message is complete in tmp/ID (every
 * record including E written to the kernel, nothing fsynced), smtpd asks
 * local over $queue_directory/private/local to deliver what it can right
 * away: local writes every recipient that is a plain Maildir or mbox
 * delivery of one existing user durably into its mailbox and reports it
 * "sent"; everything else is reported "queue" and left untouched.
 *
 * The client keeps a pool of up to local_delivery_at_accept_limit
 * connections, driven by the event loop (ioloop.h); requests wait in
 * order when every connection is busy.  The answer is handed to a
 * callback, always from the loop (never from inside
 * local_client_deliver_now()).
 *
 * A recipient that is not reported "sent" was not delivered: it goes
 * through the queue.  That covers every recipient when local cannot be
 * reached, the connection breaks, the answer is malformed or does not
 * come within LOCAL_CLIENT_TIMEOUT_MS.  So the caller, in the callback:
 *   - every recipient sent: unlink tmp/ID, answer 250 (the copies are
 *     durable, a stronger state than a durable queue file);
 *   - otherwise: append a D record for each sent recipient, then commit
 *     the queue file as usual (fsync, rename into incoming/, fsync
 *     incoming/, notify qmgr) and answer 250 only after that.
 * Mail is never lost through this module: it only ever turns "queue"
 * into "sent" on local's explicit word.
 */
#ifndef POSTERN_LOCAL_CLIENT_H
#define POSTERN_LOCAL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest wait for local's answer; then every unanswered recipient is
 * "queue".  An SMTP client waits 10 minutes (RFC 5321 §4.5.3.2.6). */
#define LOCAL_CLIENT_TIMEOUT_MS	120000
/* An unused connection is closed after this (local's worker exits). */
#define LOCAL_CLIENT_IDLE_MS	60000
/* Most recipients one answer may report. */
#define LOCAL_CLIENT_MAX_RCPTS	100000

enum local_client_status {
	LOCAL_CLIENT_QUEUE = 0,		/* not delivered: use the queue */
	LOCAL_CLIENT_SENT		/* durably in its final mailbox */
};

/* One "RESULT idx sent|queue dsn text" line. */
struct local_client_rcpt {
	size_t			 idx;	/* recipient index in the file */
	enum local_client_status status;
	char			 dsn[16];
	char			 text[512];	/* decoded, no controls */
};

struct local_client_result {
	const struct local_client_rcpt *rcpts;	/* in local's order */
	size_t		 count;
	size_t		 nsent;		/* entries with LOCAL_CLIENT_SENT */
	bool		 complete;	/* local answered END */
	const char	*error;		/* why not complete; NULL if it is */
};

/* Called once per request from the loop; res is valid during the call. */
typedef void local_client_done_t(void *ctx,
	    const struct local_client_result *res);

struct local_client_req;

/*
 * Ask local to deliver tmp_rel_path ("tmp/ID", relative to queue_dir)
 * now.  done(ctx, res) is called exactly once, from the loop, unless the
 * request is cancelled first.  The returned handle is valid until done is
 * called or local_client_cancel().
 */
struct local_client_req *local_client_deliver_now(const char *queue_dir,
	    const char *tmp_rel_path, local_client_done_t *done, void *ctx);

/*
 * Forget a request (the session went away): done is not called.  A
 * request already sent to local may still deliver copies; the caller must
 * then not commit the queue file without knowing which (it can only
 * discard it: the client never saw 250 and will send again).  Sets *reqp
 * to NULL.
 */
void	local_client_cancel(struct local_client_req **reqp);

/* Whether res reports recipient idx as sent. */
bool	local_client_result_sent(const struct local_client_result *res,
	    size_t idx);

/* Close idle connections (at shutdown); busy ones finish first. */
void	local_client_shutdown(void);

#endif
