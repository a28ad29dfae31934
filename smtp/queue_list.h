/*
 * queue_list: the queue as the administrator sees it, read straight from
 * the queue files: the mailq listing in Postfix's format, and delete /
 * hold / release of messages.  qmgr uses it to answer LIST and for the
 * messages it does not hold in memory; `postern queue` uses it directly
 * when qmgr is not running.  Nothing here schedules a delivery: a released
 * message is found by qmgr's next scan of deferred/.
 */
#ifndef POSTERN_QUEUE_LIST_H
#define POSTERN_QUEUE_LIST_H

#include <stdbool.h>
#include <stdio.h>

enum queue_list_op {
	QUEUE_LIST_DELETE,	/* unlink from incoming, deferred, hold */
	QUEUE_LIST_HOLD,	/* incoming, deferred -> hold */
	QUEUE_LIST_RELEASE	/* hold -> deferred, due now */
};

/*
 * Whether id is a well-formed queue ID (letters and digits only, shorter
 * than QUEUE_ID_MAX), so it can be used as a file name.
 */
bool	queue_list_id_valid(const char *id);

/*
 * Print the queue in Postfix's mailq format to out:
 *
 * -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 * 4B5C8A12F3*    1234 Mon Nov 23 16:00:00  alice@example.com
 *                                   (connect: timed out)  <- column 78
 *                                          bob@example.com
 *
 * -- 1 Kbytes in 1 Request.
 *
 * or "Mail queue is empty".  A deferral reason is printed before the
 * recipients it applies to, right-aligned to column 78.  Messages of
 * incoming/, deferred/ and hold/ are listed in queue ID (arrival) order;
 * a '*' marks messages for which is_active(id) is true (may be NULL), '!'
 * messages on hold.  Only pending recipients are listed.  Returns the
 * number of messages listed, or -1 when a queue directory cannot be read
 * (*error_r says why).
 */
int	queue_list_print(FILE *out, const char *queue_dir,
	    bool (*is_active)(const char *id), const char **error_r);

/*
 * Apply op to the message id, or to every message when id is "ALL".
 * Messages for which skip(id) is true are left alone (skip may be NULL;
 * qmgr passes a test for the messages it is delivering and handles those
 * in memory).  Each deleted message is logged as "ID: removed", each held
 * one as "ID: placed on hold", each released one as "ID: released from
 * hold".  Returns the number of messages acted on (0: no such message),
 * or -1 with *error_r (a bad ID, an unreadable directory).  *error_r
 * points to a static buffer valid until the next call.
 */
int	queue_list_apply(const char *queue_dir, enum queue_list_op op,
	    const char *id, bool (*skip)(const char *id),
	    const char **error_r);

/* Shorthands for queue_list_apply() without a skip test. */
int	queue_list_delete(const char *queue_dir, const char *id,
	    const char **error_r);
int	queue_list_hold(const char *queue_dir, const char *id,
	    const char **error_r);
int	queue_list_release(const char *queue_dir, const char *id,
	    const char **error_r);

#endif
