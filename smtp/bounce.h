/*
 * bounce: delivery status notifications (RFC 3464) written by qmgr into
 * the queue as new messages: non-delivery reports ("bounces"), delay
 * warnings and success reports (NOTIFY=SUCCESS, RFC 3461 §4.1).  Each is
 * a multipart/report with a human-readable part, a message/delivery-status
 * part and the original message (or its headers).  The notice has the
 * null envelope sender, so a notice that cannot be delivered never causes
 * another one (RFC 5321 §4.5.5).  This module decides nothing about
 * whether a notice is wanted (NOTIFY, null senders): qmgr does.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "queue_file.h"

enum bounce_type {
	BOUNCE_FAILED,		/* Action: failed */
	BOUNCE_DELAYED,		/* Action: delayed (delay warning) */
	BOUNCE_DELIVERED	/* Action: delivered (NOTIFY=SUCCESS) */
};

/* One recipient of the report; all strings are borrowed. */
struct bounce_rcpt {
	const char	*addr;		/* Final-Recipient */
	const char	*orcpt;		/* ORCPT value, or NULL */
	const char	*dsn;		/* "5.1.1" */
	bool		 relayed;	/* BOUNCE_DELIVERED: "Action: relayed"
					 * (RFC 3464 §2.3.3) */
	const char	*text;		/* why; one line of text */
	const char	*remote;	/* the server that answered,
					 * "host[ip]:port", or NULL */
};

/*
 * Write a report about msg (its queue file open on fd, for copying the
 * original) for rcpts[0..n-1] into queue_dir, addressed to `to` with the
 * null sender, and commit it to incoming/ (fsynced, like any accepted
 * message).  postmaster: the report goes to the postmaster instead of the
 * sender (the sender was <>); it is then marked so that its own failure
 * is dropped (bounce_is_postmaster_notice()).  On success returns 0 and
 * the new queue ID in id_r (QUEUE_ID_MAX bytes).  Returns -1 with
 * *error_r (valid until the next call) on failure.
 */
int	bounce_write(const char *queue_dir, const struct queue_msg *msg,
	    int fd, enum bounce_type type, const struct bounce_rcpt *rcpts,
	    size_t n, const char *to, bool postmaster, char *id_r,
	    const char **error_r);

/* Whether msg is a report we wrote (sender <>, from this module). */
bool	bounce_is_notice(const struct queue_msg *msg);
/* Whether msg is a report sent to the postmaster about a null-sender
 * message: if it fails too, it is dropped (a "double bounce"). */
bool	bounce_is_postmaster_notice(const struct queue_msg *msg);

#endif
