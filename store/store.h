/*
 * store: a user's mailboxes on disk, shared by pop3 and imap (DESIGN §6,
 * §12 "Mailbox index").  Backends: Maildir (with Maildir++ folders) and
 * mbox, chosen by mail_location.
 *
 * A mailbox is opened, then synced with the disk: messages are numbered
 * 0..count-1 in UID order (IMAP sequence number = index + 1).  Changes
 * made by other processes (a delivery, mutt, another Postern process)
 * become visible only at store_mailbox_sync(), which reports them to the
 * caller, so a session decides when its view changes (RFC 3501 §7.4.1).
 *
 * UIDs are stable and never reused; the UID map is the one precious file
 * and is updated under an fcntl lock so several processes may have the
 * same mailbox open.  An existing Dovecot "dovecot-uidlist" is imported at
 * the first open, keeping UIDVALIDITY and every UID.
 *
 * Functions returning int give 0 on success and -1 with a message in
 * *error_r (valid until the next call on the same object); the message
 * is for the log and, where the protocol allows, for the client.
 */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct store_user;
struct store_mailbox;

/* System flags (RFC 3501 §2.3.2) as bits; Maildir letters in brackets. */
#define STORE_SEEN	0x01	/* S */
#define STORE_ANSWERED	0x02	/* R */
#define STORE_FLAGGED	0x04	/* F */
#define STORE_DELETED	0x08	/* T */
#define STORE_DRAFT	0x10	/* D */
#define STORE_RECENT	0x20	/* session-local, never stored */

/* One message as the index knows it. */
struct store_msg {
	uint32_t	 uid;
	uint32_t	 flags;		/* STORE_* */
	uint64_t	 keywords;	/* bit i = store_keyword_name(mb, i) */
	uint64_t	 modseq;	/* RFC 7162, from the index (see
					   "Modification sequences") */
	/*
	 * Size with CRLF line ends: what POP3 RETR/LIST and IMAP
	 * RFC822.SIZE report and what store_msg_read() yields.  Taken
	 * from ",W=" in a Maildir name, else computed once and indexed.
	 */
	uint64_t	 vsize;
	time_t		 internal_date;	/* delivery time (file mtime) */
	time_t		 save_date;
};

/* What store_mailbox_sync() found changed since the last sync. */
struct store_sync_cb {
	/* Message at index idx vanished (reported highest index first,
	 * so each idx is valid at the time of its call). */
	void	(*expunged)(uint32_t idx, uint32_t uid, void *ctx);
	/* Flags or keywords of message idx changed. */
	void	(*flags_changed)(uint32_t idx, void *ctx);
	/* New messages were appended; count is the new total. */
	void	(*new_messages)(uint32_t count, void *ctx);
	void	*ctx;
};

/*
 * The mail store of one user: location is mail_location ("maildir:~/Maildir",
 * "mbox:~/mail:INBOX=/var/mail/%u"), expanded with user and home.  The
 * caller runs as the user (imap/pop3 mail process).
 */
int	store_user_open(const char *location, const char *user,
	    const char *home, struct store_user **user_r,
	    const char **error_r);
void	store_user_close(struct store_user **userp);

#define STORE_OPEN_READONLY	0x1	/* IMAP EXAMINE, POP3 unaffected */

/* name: "INBOX" (any case) or a folder name with '/' as separator. */
int	store_mailbox_open(struct store_user *u, const char *name,
	    unsigned int flags, struct store_mailbox **mb_r,
	    const char **error_r);
void	store_mailbox_close(struct store_mailbox **mbp);

/*
 * Bring the view up to date with the disk: import new files, notice
 * vanished ones and flag changes made outside.  cb may be NULL (first
 * sync after open, or a caller that re-reads everything).
 */
int	store_mailbox_sync(struct store_mailbox *mb,
	    const struct store_sync_cb *cb, const char **error_r);
/* A descriptor that becomes readable when the mailbox may have changed
 * on disk (inotify), or -1.  Owned by the mailbox; store_mailbox_sync()
 * reads the pending events, so call it when the descriptor is readable
 * (a sync that renames files may cause one more, empty, wakeup). */
int	store_mailbox_notify_fd(struct store_mailbox *mb);

uint32_t store_mailbox_count(const struct store_mailbox *mb);
uint32_t store_mailbox_uidvalidity(const struct store_mailbox *mb);
uint32_t store_mailbox_uidnext(const struct store_mailbox *mb);
uint64_t store_mailbox_highestmodseq(const struct store_mailbox *mb);
/*
 * The mailbox's own id: 128 random bits in lower-case hex, made once
 * when its UID map is made (or taken from a Dovecot uidlist's G field)
 * and kept in the map's header, so it follows the folder through a
 * rename and a folder made again under an old name gets a new one (an
 * IMAP MAILBOXID, RFC 8474 §4).  A map from before ids is given one
 * here.  NULL when the mailbox has no map or it cannot be written.
 */
#define STORE_GUID_LEN	32
const char *store_mailbox_guid(struct store_mailbox *mb);
/* Number of messages that are \Recent for this opener (RFC 3501). */
uint32_t store_mailbox_recent(const struct store_mailbox *mb);
/* Index of uid, or -1 when it is not in the view. */
int64_t	store_mailbox_find_uid(const struct store_mailbox *mb, uint32_t uid);
const struct store_msg *store_mailbox_msg(const struct store_mailbox *mb,
	    uint32_t idx);

/*
 * Open message idx for reading: a file descriptor positioned at the
 * first byte, plus the stored length (for Maildir the whole file; for
 * mbox the message without its "From " line, with ">From" unquoting left
 * to store_msg_read()).  Close with store_msg_close().
 */
struct store_msg_stream;
int	store_msg_open(struct store_mailbox *mb, uint32_t idx,
	    struct store_msg_stream **s_r, const char **error_r);
/*
 * Read up to size bytes of the message with CRLF line ends (a bare LF
 * becomes CRLF; mbox ">From" quoting undone).  Returns bytes read, 0 at
 * the end, -1 on error.  The total equals store_msg.vsize.
 */
ssize_t	store_msg_read(struct store_msg_stream *s, void *buf, size_t size);
void	store_msg_close(struct store_msg_stream **sp);

/*
 * Change flags of message idx: mode 0 replace, 1 add, -1 remove.  For
 * Maildir this renames the file (":2," suffix stays the truth).
 */
int	store_msg_set_flags(struct store_mailbox *mb, uint32_t idx,
	    uint32_t flags, uint64_t keywords, int mode, const char **error_r);

/*
 * Remove the messages with the given UIDs from disk now (POP3 UPDATE
 * state, IMAP EXPUNGE).  UIDs already gone are not an error.  The view
 * changes at the next sync.
 */
int	store_mailbox_expunge_uids(struct store_mailbox *mb,
	    const uint32_t *uids, size_t count, const char **error_r);

/*
 * Keywords of a mailbox (RFC 3501 §2.3.2): slot i is bit i of
 * store_msg.keywords.  For Maildir the slots are the letters a..z of the
 * file names and their names come from the folder's "dovecot-keywords"
 * file.  store_keyword_name() gives NULL for an unused slot; the string
 * is borrowed until the next sync or close.
 */
#define STORE_MAX_KEYWORDS	26
unsigned int store_keyword_count(const struct store_mailbox *mb);
const char *store_keyword_name(const struct store_mailbox *mb,
	    unsigned int i);

/*
 * mail_location parsed (Dovecot syntax TYPE:PATH[:KEY=VALUE]...), shared
 * with local so that delivery and reading always agree on the inbox.
 * inbox: "INBOX=" when given, else PATH; for mbox, when that names a
 * directory the inbox is spool_dir/user (Dovecot's way of finding the
 * spool file).  root: Maildir root (folders are "root/.Name"), or the mbox
 * folder directory, NULL when the mbox location names a single file.
 * Strings are malloc'ed; free with store_location_free().
 * Errors: "unsupported mail_location: ...", "mail_location gives no
 * absolute path for USER".
 */
enum store_format {
	STORE_FORMAT_MAILDIR,
	STORE_FORMAT_MBOX
};

struct store_location {
	enum store_format format;
	char		*root;
	char		*inbox;
	bool		 inbox_in_spool;	/* mbox inbox in spool_dir */
};

int	store_location_parse(const char *location, const char *user,
	    const char *home, const char *spool_dir,
	    struct store_location *loc_r, const char **error_r);
void	store_location_free(struct store_location *loc);

/* ==== Folders, subscriptions, keywords, saving (store_folder.c,
 * store_append.c): added for the IMAP server.  Additive only. ==== */

/*
 * Results of the folder operations beyond 0 (done): -1 is an error of
 * the environment (I/O, permissions; *error_r says which), the others are
 * the client's: the name exists already, does not exist, or the
 * operation is not possible on it (an invalid name, deleting INBOX, a
 * parent of other folders in mbox).
 */
#define STORE_ERR_TEMP		(-1)
#define STORE_ERR_EXISTS	(-2)
#define STORE_ERR_NONEXISTENT	(-3)
#define STORE_ERR_CANNOT	(-4)

/* Folders one listing returns at most; the rest is logged and left out. */
#define STORE_MAX_FOLDERS	10000
/* Subscriptions kept at most. */
#define STORE_MAX_SUBSCRIPTIONS	10000

#define STORE_FOLDER_NOSELECT		0x1	/* holds no messages (an mbox
						 * directory) */
#define STORE_FOLDER_NONEXISTENT	0x2	/* only implied by a child */
#define STORE_FOLDER_CHILDREN		0x4	/* has folders below it */

struct store_folder {
	char		*name;		/* "INBOX" or "a/b", as on disk */
	unsigned int	 flags;		/* STORE_FOLDER_* */
};

/*
 * Every folder of the user, INBOX first, then by name (byte order), with
 * the parents that exist only because of a child (Maildir++ ".a.b"
 * without ".a") as STORE_FOLDER_NONEXISTENT.  Names are those of
 * store_mailbox_open(); names on disk that store_mailbox_open() would
 * refuse are left out.  Free with store_folder_list_free().
 */
int	store_folder_list(struct store_user *u, struct store_folder **list_r,
	    size_t *count_r, const char **error_r);
void	store_folder_list_free(struct store_folder **list, size_t count);
/* 1 when name is a mailbox that store_mailbox_open() can open, 0 when
 * not (or not a valid name). */
int	store_folder_exists(struct store_user *u, const char *name);
/*
 * Create a folder (Maildir: ROOT/.a.b with tmp/, new/, cur/; mbox: an
 * empty file, its directories made as needed; a name ending in '/' makes
 * only the directory).  0 or STORE_ERR_*.
 */
int	store_folder_create(struct store_user *u, const char *name,
	    const char **error_r);
/*
 * Delete a folder and its messages.  Maildir: the folder directory is
 * renamed aside first, so clients never see half of it; its children
 * stay.  mbox: a directory is removed only when empty.  INBOX cannot be
 * deleted.  0 or STORE_ERR_*.
 */
int	store_folder_delete(struct store_user *u, const char *name,
	    const char **error_r);
/*
 * Rename a folder with its children (RFC 3501 §6.3.5).  Renaming INBOX
 * moves its messages into a new folder and leaves INBOX empty.  The
 * moved messages keep their UIDs only for a plain rename.  0 or
 * STORE_ERR_*.
 */
int	store_folder_rename(struct store_user *u, const char *from,
	    const char *to, const char **error_r);

/*
 * Subscriptions (Dovecot's "subscriptions" file in the Maildir root or
 * ".subscriptions" in the mbox folder directory): names as
 * store_mailbox_open() takes them.  store_subscriptions_read() gives a
 * NULL-terminated vector (strv_free()); a missing file is an empty list
 * and sets *exists_r false.  store_subscription_set() adds (on) or
 * removes a name; the file is replaced atomically.
 */
int	store_subscriptions_read(struct store_user *u, char ***names_r,
	    bool *exists_r, const char **error_r);
int	store_subscription_set(struct store_user *u, const char *name,
	    bool on, const char **error_r);

/*
 * The keyword slot of name (compared ignoring case, RFC 3501 §2.3.2),
 * given a free slot when it has none yet and create is set (Maildir:
 * "dovecot-keywords", written under the UID map lock; mbox: a
 * NAME.keywords file beside its UID map).  Returns the slot, or -1 when
 * every slot is used (or, without create, the name has none).
 */
int	store_keyword_slot(struct store_mailbox *mb, const char *name,
	    bool create, const char **error_r);
/* mbox: read the keyword names (Maildir reads them at every sync). */
void	store_keywords_load(struct store_mailbox *mb);

/*
 * Saving new messages into a mailbox (APPEND, COPY, MOVE; DESIGN §3).
 * Each message is written into a file of its own first (Maildir: tmp/,
 * with LF line ends; fsynced at store_append_msg_end()); nothing is
 * visible until store_append_commit(), which makes every message of the
 * transaction visible at once and gives them consecutive UIDs under the
 * UID map lock (Maildir: rename into cur/, fsync of cur/, then the UID
 * map record, fsynced; mbox: appended under the mbox locks with
 * mboxrd quoting and fsynced, or truncated back on error).  The mailbox
 * must be open read-write; after the commit a store_mailbox_sync()
 * shows the messages.
 */
struct store_append;

int	store_append_begin(struct store_mailbox *mb, struct store_append **ctx_r,
	    const char **error_r);
/* A new message: its bytes follow with store_append_write(). */
int	store_append_msg_begin(struct store_append *ctx, const char **error_r);
int	store_append_write(struct store_append *ctx, const void *data,
	    size_t len, const char **error_r);
/* The message is complete: flags (STORE_* without STORE_RECENT),
 * keywords (slots of this mailbox), internal date (0: now). */
int	store_append_msg_end(struct store_append *ctx, uint32_t flags,
	    uint64_t keywords, time_t internal_date, const char **error_r);
/*
 * Copy message idx of src as a whole new message (a hard link between
 * Maildirs of one file system, else the bytes).
 */
int	store_append_copy(struct store_append *ctx, struct store_mailbox *src,
	    uint32_t idx, uint32_t flags, uint64_t keywords,
	    time_t internal_date, const char **error_r);
/* Messages added to the transaction so far. */
size_t	store_append_count(const struct store_append *ctx);
/*
 * Make the messages visible.  *uids_r (malloc'ed, *count_r entries, in
 * the order they were added) gets their UIDs when the backend knows them
 * (Maildir always; mbox when the sync it runs after the append, with cb,
 * finds exactly these messages), else NULL.  For mbox the flags and
 * keywords are set only in that case.  The context is freed either way.
 */
int	store_append_commit(struct store_append **ctxp,
	    const struct store_sync_cb *cb, uint32_t **uids_r,
	    size_t *count_r, const char **error_r);
/* Drop the transaction and its files. */
void	store_append_abort(struct store_append **ctxp);

/* ==== Modification sequences (RFC 7162; store_index.c) ==== */
/*
 * Every message has a modseq (store_msg.modseq) and the mailbox a
 * HIGHESTMODSEQ (store_mailbox_highestmodseq()), kept in the mailbox's
 * index file so they survive restarts and agree between processes.  A
 * flag or keyword change through store_msg_set_flags() gets a new modseq
 * at once; a message new to the index (APPEND, COPY, a delivery) and a
 * flag change made outside (mutt renaming a Maildir file) get one at the
 * sync that finds them; an expunge gets one at the sync that finds the
 * message gone, and is remembered with it.  Modseqs only grow.  When the
 * index is lost or damaged it is rebuilt with every message at a new
 * modseq above the old ones (clients resynchronise fully).
 */

/*
 * UIDs between uid_lo and uid_hi expunged with a modseq above modseq,
 * ascending, in *uids_r (malloc'ed, *count_r entries; free it), for
 * QRESYNC's VANISHED (EARLIER) (RFC 7162 §3.2.5.2, §3.2.10.1).  UIDs the
 * view still shows (not yet synced away) are left out.  Returns true
 * when the list is complete; false when the mailbox remembers expunges
 * only after a later point (at most STORE_MAX_EXPUNGED are kept, and a
 * rebuilt index knows none before it): the caller must then treat every
 * UID of its range that is not in the view as possibly expunged (RFC
 * 7162 §3.2.6 note, §5.1).
 */
bool	store_mailbox_expunged_since(struct store_mailbox *mb,
	    uint64_t modseq, uint32_t uid_lo, uint32_t uid_hi,
	    uint32_t **uids_r, size_t *count_r);
/* false when the index cannot be written (e.g. a read-only directory):
 * modseqs then last only while the mailbox is open, and IMAP should
 * answer NOMODSEQ (RFC 7162 §3.1.2.2). */
bool	store_mailbox_modseq_persistent(const struct store_mailbox *mb);

/* ==== Cache of parsed message data (store_cache.c) ==== */
/*
 * What FETCH, SEARCH, SORT and THREAD need of a message without reading
 * it again: computed from the message bytes at the first request (the
 * MIME parse of common/mime, the same code an uncached FETCH runs), then
 * kept per UID in the mailbox's cache file, shared by every process and
 * session.  The cache can be deleted at any time: it is rebuilt as
 * messages are asked for.
 *
 * The values of the enum are stored in the file: never renumber, only
 * add at the end (and raise STORE_CACHE_FIELDSET in store_private.h).
 *
 * Strings (store_msg_cached()):
 *   ENVELOPE, BODYSTRUCTURE, BODY  the IMAP renderings (RFC 3501 §7.4.2)
 *                                  by mime_render_envelope() and
 *                                  mime_render_bodystructure()
 *   SUBJECT_BASE    RFC 5256 §2.1 base subject, UTF-8 (SORT SUBJECT,
 *                   THREAD); empty when there is no Subject:
 *   FROM_MAILBOX, TO_MAILBOX, CC_MAILBOX
 *                   addr-mailbox of the first address of the envelope's
 *                   From, To, Cc (RFC 5256 SORT FROM, TO, CC); may be
 *                   empty
 *   FROM_DISPLAY, TO_DISPLAY
 *                   RFC 5957 §3 display value of that address: decoded
 *                   display name, else mailbox@host, else mailbox
 *   MESSAGE_ID, IN_REPLY_TO, REFERENCES
 *                   the fields' values unfolded (THREAD=REFERENCES,
 *                   RFC 5256 §2.2); empty when absent
 *   SEARCH_FROM .. SEARCH_SUBJECT
 *                   every occurrence of the field, RFC 2047-decoded,
 *                   joined by a space: what SEARCH FROM/TO/CC/BCC/SUBJECT
 *                   match against (RFC 3501 §6.4.4)
 * Numbers (store_msg_cached_num()):
 *   HEADER_SIZE, BODY_SIZE   bytes of the header (with its blank line) and
 *                   of the body as clients see them (RFC822.HEADER, TEXT)
 *   BODY_LINES      line ends in the body
 *   SENT_DATE       Date: as seconds since the epoch (UTC), or
 *                   STORE_CACHE_NO_DATE without a usable Date: (SORT
 *                   then uses the internal date, RFC 5256 §2.2)
 *   SENT_TZ         its zone in minutes east of UTC (SENTBEFORE and
 *                   friends compare the date as written, RFC 3501
 *                   §6.4.4)
 */
enum store_cache_field {
	STORE_CACHE_ENVELOPE = 1,
	STORE_CACHE_BODYSTRUCTURE = 2,
	STORE_CACHE_BODY = 3,
	STORE_CACHE_SUBJECT_BASE = 4,
	STORE_CACHE_FROM_MAILBOX = 5,
	STORE_CACHE_FROM_DISPLAY = 6,
	STORE_CACHE_TO_MAILBOX = 7,
	STORE_CACHE_TO_DISPLAY = 8,
	STORE_CACHE_CC_MAILBOX = 9,
	STORE_CACHE_MESSAGE_ID = 10,
	STORE_CACHE_IN_REPLY_TO = 11,
	STORE_CACHE_REFERENCES = 12,
	STORE_CACHE_SEARCH_FROM = 13,
	STORE_CACHE_SEARCH_TO = 14,
	STORE_CACHE_SEARCH_CC = 15,
	STORE_CACHE_SEARCH_BCC = 16,
	STORE_CACHE_SEARCH_SUBJECT = 17,
	STORE_CACHE_HEADER_SIZE = 18,
	STORE_CACHE_BODY_SIZE = 19,
	STORE_CACHE_BODY_LINES = 20,
	STORE_CACHE_SENT_DATE = 21,
	STORE_CACHE_SENT_TZ = 22,
	STORE_CACHE_FIELD_COUNT		/* one past the last */
};

#define STORE_CACHE_NO_DATE	INT64_MIN

/*
 * A string field of message idx.  Returns 1 (from the cache) or 2
 * (computed from the message now, and stored) with *val_r and *len_r: bytes
 * not NUL-terminated, borrowed until the next store_msg_cached*() call
 * for another message, or a sync or close of the mailbox.  Returns 0 when
 * the value is not cached because it is too large (more than
 * STORE_CACHE_MAX_FIELD bytes; the caller computes it from the message),
 * -1 with *error_r when the message cannot be read (expunged meanwhile,
 * I/O error).  A damaged or missing cache is never an error: it is
 * rebuilt.
 */
int	store_msg_cached(struct store_mailbox *mb, uint32_t idx,
	    enum store_cache_field field, const char **val_r, size_t *len_r,
	    const char **error_r);
/* A number field: as store_msg_cached(), the value in *val_r. */
int	store_msg_cached_num(struct store_mailbox *mb, uint32_t idx,
	    enum store_cache_field field, int64_t *val_r,
	    const char **error_r);

/* ==== Quota (store_quota.c; RFC 9208 STORAGE and MESSAGE) ==== */
/*
 * Limits as Dovecot's quota_rule writes them: "*:storage=1G:messages=1000"
 * (storage without a unit is in KiB; units b, k, M, G, T; "bytes=" is in
 * bytes).  Only the default rule ("*" or "?") counts: rules for one
 * mailbox, relative ("+100M") and percentage limits are ignored.  A limit
 * of 0 is none.  Usage: Maildir keeps it in the Maildir++ "maildirsize"
 * file (rebuilt when missing, stale or too big); mbox adds up the sizes
 * of its files and counts no messages.
 */
struct store_quota_limit {
	uint64_t	 bytes;
	uint64_t	 messages;
};

struct store_quota_usage {
	uint64_t	 bytes;
	uint64_t	 messages;
};

/* Parse one quota_rule value into *l (all 0 for "" or NULL). */
int	store_quota_rule_parse(const char *rule, struct store_quota_limit *l,
	    const char **error_r);
/* Whether any limit is set. */
bool	store_quota_limited(const struct store_quota_limit *l);
/* Whether adding bytes and messages to u stays within l. */
bool	store_quota_fits(const struct store_quota_limit *l,
	    const struct store_quota_usage *u, uint64_t bytes,
	    uint64_t messages);
/* The usage of a user's store (maildirsize written for l when rebuilt);
 * the caller runs as the user. */
int	store_quota_usage(struct store_user *su,
	    const struct store_quota_limit *l, struct store_quota_usage *u,
	    const char **error_r);
int	store_quota_usage_loc(const struct store_location *loc,
	    const struct store_quota_limit *l, struct store_quota_usage *u,
	    const char **error_r);
/* Record messages saved (positive) or removed (negative): a line added
 * to an existing maildirsize; nothing for mbox. */
void	store_quota_update(struct store_user *su, int64_t bytes,
	    int64_t messages);
void	store_quota_update_loc(const struct store_location *loc,
	    int64_t bytes, int64_t messages);
/* What message idx counts for (Maildir: its ",S=" size on disk). */
uint64_t store_quota_msg_size(struct store_mailbox *mb, uint32_t idx);
/* Hook of store_mailbox_expunge_uids(): the messages about to go. */
void	store_quota_expunging(struct store_mailbox *mb, const uint32_t *uids,
	    size_t count);
/* The mail_location of a user's store. */
const struct store_location *store_user_location(const struct store_user *su);

#endif
