/*
 * local: the local delivery agent (DESIGN §2, §3; protocol in
 * doc/internals.md).  The listener forks one worker per connection from
 * qmgr; a worker serves "DELIVER queue-path index flags" requests one at
 * a time.  For one recipient it resolves, in Postfix local(8) order,
 * aliases (with :include:, |command, /file, \user), the user, ~/.forward
 * and finally the mailbox of mail_location (Maildir or mbox), writes the
 * copies, and answers FORWARD lines for addresses elsewhere and one
 * STATUS line.  It never updates the queue file: qmgr does.
 *
 * A recipient of a $virtual_mailbox_domains domain is delivered as
 * Postfix's virtual(8) does: into the mailbox $virtual_mailbox_maps names
 * under $virtual_mailbox_base, as the uid/gid of $virtual_uid_maps and
 * $virtual_gid_maps (or a passwd-file user's own mailbox, rewrite.h); no
 * aliases, no .forward.
 *
 * "DELIVER-NOW tmp/ID flags" from smtpd delivers a message that is not
 * queued yet (delivery at accept): every recipient that is a plain
 * mailbox delivery of one user is written durably and reported "sent",
 * everything else "queue" without any delivery.
 *
 * This header is shared by the local_*.c files only.
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "queue_file.h"

/* Seconds to wait for an mbox lock before deferring. */
#define LOCAL_LOCK_WAIT		30
/* The same at accept time, where the client is waiting (DELIVER-NOW). */
#define LOCAL_LOCK_WAIT_NOW	5
/* A dotlock older than this is stale and removed. */
#define LOCAL_DOTLOCK_STALE	300
/* Bytes of the header block scanned for Delivered-To and Received. */
#define LOCAL_MAX_HEADER_SCAN	(1024 * 1024)
/* Bytes of an :include: or .forward file. */
#define LOCAL_MAX_INCLUDE	(256 * 1024)
/* Bytes of a command's output kept for the bounce text. */
#define LOCAL_MAX_CMD_OUTPUT	1024
/* Bytes of copy buffers. */
#define LOCAL_IO_CHUNK		(64 * 1024)

enum local_status {
	LOCAL_SENT = 0,
	LOCAL_DEFER,
	LOCAL_BOUNCE
};

/* The outcome of one destination. */
struct local_result {
	enum local_status status;
	char		 dsn[16];
	char		 text[512];
};

/* Who a destination is written as.  In unprivileged mode always us. */
struct local_privs {
	uid_t		 uid;
	gid_t		 gid;
	char		*user;
	char		*home;
};

/* The message and recipient of one DELIVER request. */
struct local_msg {
	const char	*qid;
	int		 fd;		/* queue file, read-only */
	struct queue_msg qm;
	size_t		 idx;
	bool		 recover;
	unsigned	 lock_wait;	/* mbox lock wait, seconds */
	const char	*sender;	/* "" for <> */
	const char	*rcpt;		/* the queue recipient */
	char		*orig_rcpt;	/* X-Original-To */
	char		*rcpt_domain;	/* "" when unqualified */
	char		**delivered_to;	/* lowercase values */
	unsigned	 received;	/* Received: headers */
	char		*hostname;	/* for Maildir names */
	/* Size limit of the mailbox written: NULL = mailbox_size_limit,
	 * "virtual_mailbox_limit" for virtual mailbox domains. */
	const char	*limit_param;
};

/* local.c */
void	local_result_set(struct local_result *r, enum local_status st,
	    const char *dsn, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* A write error as a result: ENOSPC and EDQUOT have their own codes. */
void	local_result_errno(struct local_result *r, int err,
	    const char *what);
bool	local_root_mode(void);
/*
 * Become p (root mode: setgroups, setegid, seteuid) for file work; in
 * unprivileged mode only check that p is us.  Returns 0, or -1 with r set
 * to a deferral.  local_privs_leave() returns to root.
 */
int	local_privs_enter(const struct local_privs *p,
	    struct local_result *r);
void	local_privs_leave(void);
void	local_privs_free(struct local_privs *p);
/*
 * The lines local prepends to every copy (Postfix order):
 * "Return-Path: <sender>", "X-Original-To:", "Delivered-To: final".
 * malloc'ed.
 */
char	*local_prepend_headers(const struct local_msg *m,
	    const char *final);
/* The envelope "From sender asctime-date" line with its LF; malloc'ed. */
char	*local_from_line(const struct local_msg *m);
/*
 * Split addr into local part and domain (both malloc'ed), the local part
 * unquoted: "\"a b\"@x" gives "a b" (RFC 5321 §4.1.2 quoted-string).
 */
void	local_split(const char *addr, char **local_r, char **domain_r);
/* Whether "class" (alias, forward, include) is in the list parameter. */
bool	local_allowed(const char *param, const char *class);

/* local_alias.c: expansion of aliases, :include: and .forward. */
enum local_item_type {
	LOCAL_ITEM_MAILBOX,	/* target: user name */
	LOCAL_ITEM_FILE,	/* target: path; a trailing '/' is a Maildir */
	LOCAL_ITEM_COMMAND,	/* target: shell command */
	LOCAL_ITEM_FORWARD,	/* target: address elsewhere */
	LOCAL_ITEM_FAILED	/* result says why */
};

struct local_item {
	enum local_item_type type;
	char		*target;
	char		*address;	/* address it was reached by */
	struct local_privs privs;
	struct local_result result;
};

struct local_expansion {
	struct local_item *items;
	size_t		 count;
	bool		 indirect;	/* an alias or a .forward was used */
};

/*
 * Resolve the recipient of m into destinations.  Failures of one branch
 * (unknown user in an alias list, a loop) become LOCAL_ITEM_FAILED items,
 * so the caller sees every outcome.  Free with local_expansion_free().
 */
void	local_expand(const struct local_msg *m, struct local_expansion *x);
void	local_expansion_free(struct local_expansion *x);
/* Called once per request: reopen alias tables that changed on disk. */
void	local_alias_refresh(void);

/* The size limit parameter that applies to m (see limit_param). */
const char *local_limit_param(const struct local_msg *m);

/* local_maildir.c */
void	local_maildir_deliver(const struct local_msg *m, const char *dir,
	    const char *final, const struct local_privs *p,
	    struct local_result *r);

/* local_mbox.c: mbox append with dotlock + fcntl locking, mboxrd quoting.
 * spool: the mailbox is in mail_spool_directory (created and locked as
 * root, owned by the user, group mail); check_owner: refuse a file that
 * is not the user's (mailboxes, not /file destinations). */
void	local_mbox_deliver(const struct local_msg *m, const char *path,
	    const char *final, const struct local_privs *p, bool spool,
	    bool check_owner, struct local_result *r);

/* local_command.c: "|command" through /bin/sh -c, as p. */
void	local_command_deliver(const struct local_msg *m, const char *cmd,
	    const char *final, const struct local_privs *p,
	    struct local_result *r);

#endif
