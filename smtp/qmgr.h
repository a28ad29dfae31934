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
#include <stddef.h>

struct buf;

/* Messages held in memory and being delivered at once: the default of
 * qmgr_message_active_limit (Postfix's, scaled to one open file per
 * message). */
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
/* Seconds to keep retrying to reach a delivery agent (local, smtp)
 * before deferring its mail. */
#define QMGR_AGENT_GRACE	10
/* Seconds an idle connection to a delivery agent is kept. */
#define QMGR_AGENT_IDLE		60
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

/* ---- qmgr_route.c: where a recipient goes (DESIGN §4) ---- */

/* Seconds a set of open transport tables is used before reopening it
 * (an edited hash: or texthash: table is picked up without a reload). */
#define QMGR_ROUTE_REOPEN	30
/* Domains remembered while one message is routed. */
#define QMGR_ROUTE_CACHE	64
/* Bytes of a next hop (a host name is at most 255; room for a port). */
#define QMGR_ROUTE_MAX_NEXTHOP	300

enum qmgr_transport {
	QMGR_T_LOCAL,		/* local(8): "local", "virtual" */
	QMGR_T_SMTP,		/* the smtp agent: "smtp", "relay" */
	QMGR_T_ERROR,		/* bounce at once */
	QMGR_T_RETRY,		/* defer (also: table failures, unknown
				 * transports) */
	QMGR_T_DISCARD		/* pretend delivery */
};

struct qmgr_route {
	enum qmgr_transport transport;
	/* QMGR_T_SMTP: the next hop as the agent takes it ("example.com",
	 * "[192.0.2.1]:587"), lower case; NULL otherwise. */
	char		*nexthop;
	/* ERROR, RETRY, DISCARD: RFC 3463 code and reason; NULL otherwise. */
	char		*dsn;
	char		*text;
};

/*
 * Decide the route of one recipient address, in Postfix's order:
 * $transport_maps (user+ext@domain, user@domain, domain, .parent
 * domains, "*"), then the address class: local ($mydestination or no
 * domain: $local_transport), virtual mailbox domain ($virtual_transport),
 * $relay_domains ($relay_transport), anything else ($default_transport),
 * with $relayhost or the recipient domain as the default next hop.  Never
 * fails: a table error is a QMGR_T_RETRY route.  Free with
 * qmgr_route_free().
 */
void	qmgr_route_resolve(const char *addr, struct qmgr_route *r);
void	qmgr_route_free(struct qmgr_route *r);
/*
 * Per-domain results are remembered between qmgr_route_cache_begin()
 * and qmgr_route_cache_end() (one message load), so that a message to
 * many recipients in few domains asks the tables once per domain.
 */
void	qmgr_route_cache_begin(void);
void	qmgr_route_cache_end(void);
/* The configuration changed: close the tables, forget everything. */
void	qmgr_route_reset(void);

/* ---- qmgr_proto.c: reply lines of the smtp agent (doc/internals.md) ---- */

/* Bytes of a relay name ("host[ip]:port") from the smtp agent. */
#define QMGR_MAX_RELAY		512

enum qmgr_status {
	QMGR_STATUS_SENT,
	QMGR_STATUS_DEFER,
	QMGR_STATUS_BOUNCE
};

struct qmgr_agent_reply {
	bool		 done;		/* DONE; else RCPT */
	/* RCPT: */
	size_t		 idx;
	enum qmgr_status status;
	bool		 relayed;	/* "relayed": sent, to a server that
					 * does not do DSN (RFC 3461 §5.2.2) */
	char		*dsn;		/* decoded; malloc'ed */
	char		*relay;
	char		*text;
	/* DONE: */
	double		 conn_s;
	double		 xfer_s;
};

/*
 * Parse one reply line (without its LF): 0 and *r filled (free with
 * qmgr_agent_reply_free()), or -1 with a static *error_r.  Checks syntax,
 * xtext, that the DSN code's class matches the status, and bounds.
 */
int	qmgr_agent_reply_parse(const char *line, struct qmgr_agent_reply *r,
	    const char **error_r);
void	qmgr_agent_reply_free(struct qmgr_agent_reply *r);
/* An RFC 3463 status code "X.Y.Z" and nothing else? */
bool	qmgr_dsn_valid(const char *dsn);

#endif
