/*
 * imap: the IMAP mail process (DESIGN §2, §12).  It runs as one user's
 * uid and serves every logged-in IMAP session of that uid, handed over
 * by posternd (login/mailproc.h), in one event loop: the authenticated,
 * selected and logout states of RFC 9051 §3 (the not-authenticated state
 * is imap-login's).  This header is shared by the imap*.c files of the
 * mail process; imap-login takes only the capability strings from it.
 *
 *   imap.c             process: main, the users and the mailboxes that
 *                      are open (shared by every session that selected
 *                      them), syncing and telling sessions what changed
 *   imap_session.c     session: parser, states, command table,
 *                      continuations, untagged updates, the session's
 *                      view; its connection (buffers, output with
 *                      back-pressure, autologout) is a struct mailconn
 *                      (login/mailconn.h)
 *   imap_msg.c         message data: sets, flags, names, MIME trees
 *   imap_cmd_misc.c    CAPABILITY NOOP LOGOUT ENABLE ID NAMESPACE CHECK
 *   imap_cmd_select.c  SELECT EXAMINE CLOSE UNSELECT EXPUNGE STATUS
 *   imap_cmd_list.c    LIST LSUB CREATE DELETE RENAME (UN)SUBSCRIBE
 *   imap_cmd_fetch.c   FETCH
 *   imap_cmd_store.c   STORE
 *   imap_cmd_search.c  SEARCH
 *   imap_cmd_append.c  APPEND COPY MOVE
 *   imap_cmd_idle.c    IDLE
 */
#ifndef POSTERN_IMAP_H
#define POSTERN_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_parse.h"
#include "mailconn.h"

/* ---- capabilities (RFC 9051 §7.2.2) ---- */

/* Before login (imap-login adds STARTTLS, LOGINDISABLED, AUTH=). */
#define IMAP_CAPABILITY_PRELOGIN \
	"IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+"
/* After login. */
#define IMAP_CAPABILITY \
	"IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE " \
	"UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE MULTIAPPEND ESEARCH " \
	"SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY " \
	"CONDSTORE QRESYNC OBJECTID SAVEDATE PREVIEW " \
	"COMPRESS=DEFLATE " \
	"QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE CREATE-SPECIAL-USE UTF8=ACCEPT CATENATE " \
	"SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES " \
	"THREAD=REFS ESORT CONTEXT=SEARCH WITHIN I18NLEVEL=1"
/* RFC 2971: what ID says about us. */
#define IMAP_ID_REPLY	"(\"name\" \"Postern\" \"version\" \"" \
	PACKAGE_VERSION "\")"

/* ---- limits ---- */

/* Client input buffered per session: pipelined commands wait here. */
#define IMAP_MAX_INBUF		(64 * 1024)
/* Output queued before we stop producing and reading (back-pressure). */
#define IMAP_OUT_HIGH		(64 * 1024)
/* Bytes asked from the kernel per read(2). */
#define IMAP_READ_SIZE		(16 * 1024)
/* Message bytes read from the store per step of a FETCH. */
#define IMAP_MSG_CHUNK		(32 * 1024)
/* RFC 9051 §5.4: the autologout timer is at least 30 minutes. */
#define IMAP_AUTOLOGOUT_MS	(30 * 60 * 1000)
/* Bad commands in a row before the client is disconnected. */
#define IMAP_MAX_BAD		20
/* A change noticed on disk is synced this long after (coalescing). */
#define IMAP_SYNC_DELAY_MS	30
/* Without inotify, an idling session looks this often. */
#define IMAP_IDLE_POLL_MS	5000
/* Messages whose MIME tree one open mailbox keeps parsed. */
#define IMAP_MIME_CACHE		32
/* Header bytes read into memory for HEADER.FIELDS and SEARCH. */
#define IMAP_MAX_HEADER		(1024 * 1024)
/* Messages a SEARCH that reads messages handles per event loop turn. */
#define IMAP_SEARCH_BATCH	200
/* Messages FETCH answers per turn before it lets other sessions run. */
#define IMAP_FETCH_BATCH	100

/* Expunged messages whose flags FETCH still knows, per mailbox. */
#define IMAP_MAX_GHOSTS		100000
/* PREVIEW (RFC 8970): characters given, bytes of the part read. */
#define IMAP_PREVIEW_CHARS	200
#define IMAP_PREVIEW_READ	(16 * 1024)
/* UIDs or ranges in one VANISHED line (more lines follow). */
#define IMAP_VANISHED_LINE	1000

/* Special-use folders made (and subscribed) at the first login. */
#define IMAP_SPECIAL_FOLDERS	{ "Drafts", "Sent", "Trash", "Junk", \
	"Archive" }

struct io;
struct timer;
struct mailproc_session;
struct mime_part;
struct store_user;
struct store_mailbox;
struct store_msg;
struct store_msg_stream;
struct store_sync_cb;
struct imap_session;

/* ---- users and open mailboxes (imap.c) ---- */

struct imap_mbox;

/* One user of this process (several in unprivileged mode). */
struct imap_user {
	struct imap_user *next;
	char		*user;
	char		*home;
	char		*mail;
	struct store_user *su;
	unsigned int	 refs;
	struct imap_mbox *mboxes;
};

struct imap_mime_cached {
	uint32_t	 uid;
	struct mime_part *tree;
};

/*
 * A mailbox open in this process, shared by the sessions that selected
 * it (DESIGN §12): one store view, synced once, its changes queued to
 * every session.  Read-only opens (EXAMINE, STATUS) are separate
 * objects, so they never claim \Recent.
 */
struct imap_mbox {
	struct imap_mbox *next;
	struct imap_user *u;
	char		*name;		/* "INBOX", "a/b" (store) */
	bool		 readonly;
	struct store_mailbox *mb;
	unsigned int	 refs;
	struct imap_session *sessions;	/* those that selected it */
	struct io	*notify_io;
	struct timer	*sync_timer;
	struct timer	*poke_timer;	/* idling sessions to be told */
	/* Running while no one has it: kept open a while (imap.c). */
	struct timer	*linger_timer;
	bool		 gone;		/* deleted or renamed: never reused */
	/* Bumped whenever messages left the store view. */
	uint64_t	 expunge_gen;
	/* \Recent of UIDs up to this was given to a session already. */
	uint32_t	 recent_upto;
	/* Saved here by APPEND, COPY, MOVE up to this UID: \Recent too
	 * (RFC 3501 §6.3.11, §6.4.7), though not from new/. */
	uint32_t	 fresh_upto;
	uint32_t	 uidvalidity;
	/* Messages this process expunged that some session still shows
	 * (not yet told of the expunge): what FETCH still answers for
	 * them (RFC 9051 §7.5.1); at most IMAP_MAX_GHOSTS. */
	struct store_msg *ghosts;
	size_t		 nghosts, capghosts;
	struct imap_mime_cached cache[IMAP_MIME_CACHE];
	unsigned int	 cache_next;
};

/* The user's store (opened once per process and user). */
struct imap_user *imap_user_get(const char *user, const char *home,
	    const char *mail, const char **error_r);
void	imap_user_unref(struct imap_user **up);
/*
 * First login: make the special-use folders that are missing and
 * subscribe them, unless the user has a subscriptions file already.
 */
void	imap_user_autocreate(struct imap_user *u);

/*
 * The open mailbox name (store name), opened and synced when no session
 * has it open yet.  Returns NULL with *error_r and *kind_r (STORE_ERR_*)
 * when it cannot be opened.
 */
struct imap_mbox *imap_mbox_get(struct imap_user *u, const char *name,
	    bool readonly, int *kind_r, const char **error_r);
void	imap_mbox_unref(struct imap_mbox **mp);
/* The open mailbox name if any session or command has it open. */
struct imap_mbox *imap_mbox_find(struct imap_user *u, const char *name,
	    bool readonly);
/*
 * Sync with the disk now and queue what changed to the sessions that
 * selected it (idling ones get it at once).  0 or -1 with *error_r.
 */
int	imap_mbox_sync(struct imap_mbox *m, const char **error_r);
/* The callbacks a sync of m runs with (store_append_commit() of mbox). */
void	imap_mbox_sync_cb(struct imap_mbox *m, struct store_sync_cb *cb);
/* A session changed the flags of uid: the others report it. */
void	imap_mbox_flags_changed(struct imap_mbox *m, uint32_t uid,
	    struct imap_session *except);
/* Tell every session of this mailbox to send what waits, where the
 * protocol allows it now (idling ones). */
void	imap_mbox_poke(struct imap_mbox *m);
/* uid is being expunged by this process: keep sm (a ghost). */
void	imap_mbox_ghost_add(struct imap_mbox *m, const struct store_msg *sm);
/* The flags a message gone from the store had (a ghost), or NULL. */
const struct store_msg *imap_mbox_ghost(const struct imap_mbox *m,
	    uint32_t uid);
/* Forget the ghosts once every session was told of the expunges. */
void	imap_mbox_ghosts_prune(struct imap_mbox *m);
/* Whether a message new to the sessions is \Recent (RFC 3501 §2.3.2). */
bool	imap_mbox_is_recent(const struct imap_mbox *m,
	    const struct store_msg *sm);
/* Messages up to uid were saved into m by this process. */
void	imap_mbox_saved(struct imap_mbox *m, const uint32_t *uids,
	    size_t n);
/* Drop what the cache knows of uid (expunged). */
struct mime_part *imap_mbox_cache_get(struct imap_mbox *m, uint32_t uid);
void	imap_mbox_cache_put(struct imap_mbox *m, uint32_t uid,
	    struct mime_part *tree);
/* Every session of every mailbox of u whose name is name (or is below
 * it) must forget it: DELETE or RENAME by another session. */
void	imap_mbox_gone(struct imap_user *u, const char *name);

/* ---- sessions (imap_session.c) ---- */

enum imap_state {
	IMAP_STATE_AUTH = 0,	/* authenticated */
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT
};

/* What the connection does with input (imap_session_enter_io()). */
enum imap_io {
	IMAP_IO_CMD = 0,	/* reading commands */
	IMAP_IO_CONT,		/* a command is being answered */
	IMAP_IO_IDLE,		/* IDLE: waiting for DONE */
	IMAP_IO_CLOSE		/* last response going out, then close */
};

/* Session flags of one message of the view. */
#define IMAP_VIEW_RECENT	0x01	/* \Recent for this session */
#define IMAP_VIEW_FLAGCHG	0x02	/* its flags must be reported */

struct imap_view_msg {
	uint32_t	 uid;
	uint8_t		 flags;		/* IMAP_VIEW_* */
};

/*
 * One step of a long answer: append output, return 1 when the command
 * is complete (its tagged reply queued), 0 to be called again (once the
 * output has drained when it is full, else at the next turn of the
 * event loop, so other sessions run meanwhile), -1 on an error that
 * ends the session.
 */
typedef int imap_cont_fn(struct imap_session *s);

struct imap_append_ctx;

struct imap_session {
	struct mailconn	 conn;
	uint64_t	 id;
	struct timer	*idle_timer;
	enum imap_state	 state;
	enum imap_io	 io_state;
	struct imap_parser *parser;

	/* who */
	char		*user;
	char		*log_user;	/* user, escaped for log lines */
	char		*rip;
	struct imap_user *u;

	/* ENABLE (RFC 5161) */
	bool		 rev2;		/* IMAP4rev2 */
	/* CONDSTORE enabled (RFC 7162 §3.1: by ENABLE CONDSTORE or any
	 * command that uses it; QRESYNC implies it). */
	bool		 condstore;
	bool		 qresync;	/* ENABLE QRESYNC (RFC 7162 §3.2.3) */
	bool		 utf8_accept;	/* ENABLE UTF8=ACCEPT (RFC 6855) */

	/* the selected mailbox and this session's view of it */
	struct imap_mbox *sel;
	bool		 readonly;
	struct imap_view_msg *view;	/* sequence number - 1 -> UID */
	uint32_t	 count, cap;
	uint32_t	 flagchg;	/* entries with IMAP_VIEW_FLAGCHG */
	uint64_t	 expunge_gen;
	uint32_t	 uidvalidity;	/* of the view */
	struct imap_session *sel_next, *sel_prev;
	/* SEARCHRES (RFC 5182): UIDs of the saved result */
	uint32_t	*saved;
	size_t		 nsaved;

	/* the command being answered */
	char		*tag;
	const struct imap_command *cmd;
	bool		 cmd_no_expunge;	/* RFC 9051 §7.5.1 */
	imap_cont_fn	*cont;
	void		*cont_ctx;
	void		(*cont_free)(void *ctx);
	struct imap_append_ctx *append;

	unsigned	 bad;
	struct imap_session *prev, *next;
};

/* A session handed over by posternd (mailproc_session_cb). */
void	imap_session_new(const struct mailproc_session *ms);
/* Queue bytes as they are. */
void	imap_write(struct imap_session *s, const void *data, size_t len);
/* Queue one line (CRLF added). */
void	imap_reply(struct imap_session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * The tagged completion of the current command ("OK", "NO", "BAD"):
 * first what waits for the client (EXISTS, EXPUNGE, flag changes: RFC
 * 9051 §7.5.1), then "TAG STATUS text".  text may hold a response code.
 */
void	imap_tagged(struct imap_session *s, const char *status,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same without the pending updates (LOGOUT, CLOSE, SELECT). */
void	imap_tagged_only(struct imap_session *s, const char *status,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "NO [SERVERBUG]" for an error of ours or of the disk (STYLE §4). */
void	imap_tagged_fail(struct imap_session *s, const char *what,
	    const char *error);
/* Count a client error; true when the session is closed for it. */
bool	imap_session_bad(struct imap_session *s);
/* Start a long answer produced by fn (ctx freed with free_fn). */
void	imap_session_continue(struct imap_session *s, imap_cont_fn *fn,
	    void *ctx, void (*free_fn)(void *ctx));
/* Flush the queued responses, then close; reason for the logout line. */
void	imap_session_close(struct imap_session *s, const char *reason);
void	imap_session_enter_io(struct imap_session *s, enum imap_io io);
/* Whether the output is full: a long answer pauses. */
bool	imap_session_out_full(const struct imap_session *s);

/* Select mbox (taking the caller's reference), build the view. */
void	imap_session_select(struct imap_session *s, struct imap_mbox *mbox,
	    bool readonly);
/* Back to the authenticated state; expunge nothing. */
void	imap_session_unselect(struct imap_session *s);
/*
 * Send the untagged updates of the selected mailbox: new messages
 * (EXISTS, RECENT), flag changes (FETCH), and with allow_expunge the
 * messages gone (EXPUNGE).
 */
void	imap_session_updates(struct imap_session *s, bool allow_expunge);
/* The mailbox changed: idling sessions send at once. */
void	imap_session_poke(struct imap_session *s);
/* Mark uid of the view as changed (flags to report). */
void	imap_session_mark_flags(struct imap_session *s, uint32_t uid);
/*
 * CONDSTORE (RFC 7162): whether the selected mailbox keeps modseqs (else
 * NOMODSEQ was said and MODSEQ commands are BAD, §3.1.2.2); and a
 * CONDSTORE enabling command (§3.1): from now on every FETCH carries
 * MODSEQ; the first one with a mailbox selected says HIGHESTMODSEQ.
 */
bool	imap_session_modseq_ok(const struct imap_session *s);
void	imap_session_condstore(struct imap_session *s);

/* ---- message helpers (imap_msg.c) ---- */

/*
 * The view positions (sequence number - 1) a set names, ascending and
 * unique, malloc'ed in *pos_r.  uid: the set holds UIDs (UIDs that are
 * not in the view are skipped, RFC 9051 §6.4.9); otherwise sequence
 * numbers, where one past the count is the client's error (-1 with
 * *error_r).  "$" is the saved search result (RFC 5182).
 */
int	imap_set_resolve(struct imap_session *s,
	    const struct imap_seqset *set,
	    bool uid, uint32_t **pos_r, size_t *count_r, const char **error_r);
/* The store index of view position pos, or -1 when it was expunged. */
int64_t	imap_view_index(const struct imap_session *s, uint32_t pos);
/* The view position of uid, or -1. */
int64_t	imap_view_find(const struct imap_session *s, uint32_t uid);
/* "(\Seen $Work)" of a message (\Recent when the session has it). */
void	imap_flags_format(const struct imap_session *s,
	    const struct store_msg *m,
	    bool recent, struct buf *out);
/* "(\Answered \Flagged \Deleted \Seen \Draft kw...)" of the mailbox. */
void	imap_flags_all(struct store_mailbox *mb, bool permanent,
	    struct buf *out);
/*
 * Flags of a command as store bits and keyword bits of mb; keywords
 * without a slot get one when create is set (else they are left out).
 * -1 with *error_r when the mailbox has no room for a new keyword.
 */
int	imap_flags_to_store(struct store_mailbox *mb,
	    const struct imap_flags *f, bool create, uint32_t *flags_r,
	    uint64_t *kw_r, const char **error_r);
/* Keywords of src (bits) as bits of dst, new slots made as needed. */
uint64_t imap_keywords_map(struct store_mailbox *src, uint64_t kw,
	    struct store_mailbox *dst);
/*
 * Mailbox names.  Clients use UTF-8 (the parser decoded modified UTF-7)
 * with "INBOX" in any case; the store (and the disk, as Dovecot keeps
 * it) takes modified UTF-7.  -1 when the name cannot be a mailbox.
 */
int	imap_name_to_store(const char *utf8, struct buf *out);
/* A store name as UTF-8 (NULL when it is not valid modified UTF-7). */
char	*imap_name_from_store(const char *store);
/* Append a mailbox name for the client: modified UTF-7 in a quoted
 * string (or a literal). */
void	imap_name_write(struct buf *out, const char *utf8);
/* A mailbox name for s: as imap_name_write(), or after ENABLE
 * UTF8=ACCEPT as UTF-8 in a quoted string (RFC 6855 §3);
 * imap_cmd_list.c. */
void	imap_session_name_write(struct imap_session *s, struct buf *out,
	    const char *utf8);
/* Append s as an IMAP quoted string or a literal. */
void	imap_astring_write(struct buf *out, const char *s);
/*
 * The MIME tree of message idx of the selected (or given) mailbox,
 * parsed from the bytes the client sees (cached per mailbox).  Owned by
 * the cache: valid until the next imap_msg_tree() call.
 */
int	imap_msg_tree(struct imap_mbox *m, uint32_t idx,
	    const struct mime_part **tree_r, const char **error_r);
/* Bytes [off, off+len) of message idx as the client sees them, into out
 * (at most max bytes, the rest dropped). */
int	imap_msg_read_range(struct store_mailbox *mb, uint32_t idx,
	    uint64_t off, uint64_t len, size_t max, struct buf *out,
	    const char **error_r);

/* ---- object ids (imap_objectid.c, RFC 8474) ---- */

/* Room for an EMAILID or a MAILBOXID (a store id, STORE_GUID_LEN) with
 * its NUL. */
#define IMAP_OBJECTID_MAX	48
/*
 * The EMAILID of message sm of m (RFC 8474 §5.1) into out (size >=
 * IMAP_OBJECTID_MAX): "M" and 16 hex digits of the mailbox's UIDVALIDITY
 * and the UID, so it survives restarts and is never reused within the
 * mailbox (a new UIDVALIDITY gives new ids).
 */
void	imap_msg_emailid(const struct imap_mbox *m, const struct store_msg *sm,
	    char *out, size_t size);

/* Append ascending numbers v[0..n) as a set "1:3,5" (VANISHED,
 * MODIFIED). */
void	imap_numbers_format(const uint32_t *v, size_t n, struct buf *out);
/* The MAILBOXID of m (RFC 8474 §4) into out (size >= IMAP_OBJECTID_MAX). */
void	imap_mbox_id(const struct imap_mbox *m, char *out, size_t size);
/*
 * QRESYNC (RFC 7162 §3.2.5, §3.2.6): "* VANISHED (EARLIER)" for the UIDs
 * of set (max stands for '*') expunged after modseq, leaving out UIDs
 * up to min_uid.
 */
void	imap_vanished_earlier(struct imap_session *s,
	    const struct imap_seqset *set, uint32_t max, uint64_t modseq,
	    uint32_t min_uid);
/*
 * SELECT (QRESYNC ...): the flags of the messages of set (UIDs) changed
 * after modseq, as UID FETCH set (FLAGS) (CHANGEDSINCE modseq) answers
 * them, then the tagged OK with text (a continuation: output bounded).
 */
void	imap_fetch_changed(struct imap_session *s,
	    const struct imap_seqset *set, uint64_t modseq, const char *text);

/* ---- commands (imap_cmd_*.c) ---- */

typedef void imap_cmd_fn(struct imap_session *s,
    const struct imap_command *cmd);

imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout,
    imap_cmd_enable, imap_cmd_id, imap_cmd_namespace, imap_cmd_check;
imap_cmd_fn imap_cmd_select, imap_cmd_close, imap_cmd_unselect,
    imap_cmd_expunge, imap_cmd_status;
imap_cmd_fn imap_cmd_list, imap_cmd_create, imap_cmd_delete,
    imap_cmd_rename, imap_cmd_subscribe;
imap_cmd_fn imap_cmd_fetch;
imap_cmd_fn imap_cmd_store;
imap_cmd_fn imap_cmd_search;
imap_cmd_fn imap_cmd_append, imap_cmd_copy;
imap_cmd_fn imap_cmd_idle;
imap_cmd_fn imap_cmd_sort, imap_cmd_thread;		/* imap_cmd_sort.c */
imap_cmd_fn imap_cmd_cancelupdate;			/* imap_cmd_search.c */
/*
 * SEARCH RETURN (UPDATE) contexts (RFC 5267 §4.3), kept per session
 * while its mailbox is selected.  imap_session_updates() calls _expunge
 * before it sends EXPUNGEs (REMOVEFROM must come first, §4.3.4) and
 * _update after EXISTS and the flag changes (ADDTO, REMOVEFROM);
 * imap_session_unselect() calls _free.
 */
void	imap_search_context_expunge(struct imap_session *s);
void	imap_search_context_update(struct imap_session *s);
void	imap_search_context_free(struct imap_session *s);
imap_cmd_fn imap_cmd_getquota, imap_cmd_getquotaroot,
    imap_cmd_setquota;					/* imap_cmd_quota.c */
imap_cmd_fn imap_cmd_compress;				/* imap_cmd_compress.c */
/*
 * The quota of s's user (imap_cmd_quota.c): 0 when none is set, 1 with
 * the limits and the usage now, -1 with *error_r.
 */
struct store_quota_limit;
struct store_quota_usage;
int	imap_quota_get(struct imap_session *s, struct store_quota_limit *l,
	    struct store_quota_usage *u, const char **error_r);
/* message_size_limit for STATUS APPENDLIMIT ("NIL" for none) and the
 * capability (" APPENDLIMIT=n", RFC 7889), imap_cmd_append.c. */
const char *imap_append_limit_text(void);
void	imap_append_limit_capability(struct buf *out);
imap_cmd_fn imap_cmd_notify;				/* imap_cmd_notify.c */

/* The full capability list of the authenticated state. */
void	imap_capability_write(struct buf *out);
/* STATUS items of an open mailbox: "MESSAGES 3 UIDNEXT 4 ...". */
void	imap_status_items(struct imap_session *s, struct imap_mbox *m,
	    unsigned int items, struct buf *out);
/* Open name for STATUS (the open copy when there is one). */
struct imap_mbox *imap_status_open(struct imap_session *s,
	    const char *store_name, int *kind_r, const char **error_r);

/*
 * APPEND arrives in pieces (IMAP_PARSE_APPEND, _DATA, _END, then the
 * command): imap_session.c hands each to imap_cmd_append.c.
 */
void	imap_append_begin(struct imap_session *s,
	    const struct imap_append_msg *msg);
void	imap_append_data(struct imap_session *s, const void *data,
	    size_t len);
void	imap_append_end(struct imap_session *s,
	    const struct imap_append_msg *msg);
void	imap_append_free(struct imap_session *s);
/* IDLE: the line that ended it (DONE, or anything else). */
void	imap_idle_line(struct imap_session *s, const char *line,
	    size_t len);
void	imap_idle_stop(struct imap_session *s);

/* imap_parse_tag.c: the tag of the command being read (APPEND). */
const char *imap_parser_tag(const struct imap_parser *p);

#endif
