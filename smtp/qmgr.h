/*
 * qmgr: the queue manager (DESIGN §2, §4; protocols in doc/internals.md).
 * One process, one event loop.  It finds new messages (datagrams on
 * private/qmgr and periodic scans of incoming/), retries deferred ones
 * (a deferred file's mtime is its next retry time), hands each pending
 * recipient to a delivery agent, records the outcome in the queue file,
 * sends delivery status notifications (bounce.c), and answers the admin
 * socket public/qmgr (qmgr_admin.c).  It never reads message bodies except
 * to copy them into a notice, and never runs as root.
 *
 * This header is shared by qmgr.c and qmgr_admin.c only.
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stdbool.h>

struct buf;

/* Messages held in memory and being delivered at once (Postfix's
 * qmgr_message_active_limit, scaled to one open file per message). */
#define QMGR_MAX_ACTIVE		500
/*
 * Seconds between safety-net scans of incoming/.  Notifications are
 * datagrams; the kernel queues only net.unix.max_dgram_qlen (often 10) of
 * them, so under load some are lost and this scan is what picks those
 * messages up: keep it short.  A scan of incoming/ is one readdir of a
 * directory that holds only messages not yet picked up.
 */
#define QMGR_INCOMING_SCAN	1
/* Seconds between scans of deferred/ for messages that are due. */
#define QMGR_DEFERRED_SCAN	5
/* Messages loaded per event loop pass (keeps the loop responsive). */
#define QMGR_LOAD_BATCH		100
/* Seconds SIGTERM waits for deliveries in flight. */
#define QMGR_SHUTDOWN_WAIT	10
/* Seconds to keep retrying to reach local before deferring its mail. */
#define QMGR_LOCAL_GRACE	10
/* Seconds an idle connection to local is kept. */
#define QMGR_LOCAL_IDLE		60
/* An incomplete file in incoming/ older than this is worth a warning. */
#define QMGR_INCOMPLETE_WARN	3600
/* Bytes of one admin request line. */
#define QMGR_ADMIN_LINE		1024
/* Seconds an admin client may take to send its request. */
#define QMGR_ADMIN_TIMEOUT	10

/* qmgr.c */
extern const char *qmgr_queue_dir;

/* Whether id is loaded in memory (being delivered): '*' in mailq. */
bool	qmgr_is_active(const char *id);
/*
 * Admin operations on one message or "ALL"; each appends its one-line
 * answer ("OK ..." or "ERR ...", no newline) to out.
 */
void	qmgr_delete(const char *id, struct buf *out);
void	qmgr_hold(const char *id, struct buf *out);
void	qmgr_release(const char *id, struct buf *out);
void	qmgr_flush(struct buf *out);

/* qmgr_admin.c */
void	qmgr_admin_init(void);
void	qmgr_admin_deinit(void);

#endif
