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
	uint64_t	 modseq;	/* RFC 7162; 1 when never changed */
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
 * on disk (inotify), or -1. */
int	store_mailbox_notify_fd(struct store_mailbox *mb);

uint32_t store_mailbox_count(const struct store_mailbox *mb);
uint32_t store_mailbox_uidvalidity(const struct store_mailbox *mb);
uint32_t store_mailbox_uidnext(const struct store_mailbox *mb);
uint64_t store_mailbox_highestmodseq(const struct store_mailbox *mb);
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

#endif
