/*
 * queue_file: the on-disk queue file format and its writer and reader
 * (DESIGN §3, §4).  One file per message under $queue_directory:
 *
 *   tmp/ID       being written by smtpd or sendmail (never read by qmgr)
 *   incoming/ID  complete and durable; not yet tried
 *   deferred/ID  tried, some recipients still pending
 *   hold/ID      on hold (postern queue hold)
 *   corrupt/ID   unreadable, kept for the admin
 *
 * A file is a sequence of records: one type byte, a 4-byte big-endian
 * length, then that many bytes.  The envelope comes first, then exactly one
 * message record, then an end record.  A file without the end record is
 * incomplete and ignored.  After the end record, qmgr appends status
 * records; a truncated trailing record (crash while appending) is ignored.
 *
 *   V  "1"                          format version, first record
 *   A  "SECONDS.MICROSECONDS"       arrival time
 *   F  sender address ("" = null sender <>)
 *   f  sender ESMTP params, space separated as sent: "RET=HDRS ENVID=x
 *      BODY=8BITMIME SMTPUTF8" (ENVID stays xtext-encoded)
 *   C  client facts, TAB separated key=value: name= addr= port= helo=
 *      proto=(SMTP|ESMTP|ESMTPS|ESMTPA|LOCAL) user= (SASL or local user)
 *      uid= (local submission)
 *   R  recipient: "ADDRESS" then optional TAB-separated ORCPT=type;xtext
 *      and NOTIFY=SUCCESS,FAILURE,DELAY|NEVER.  Index = order of R and r
 *      records, from 0.
 *   M  the message: headers and body with LF line ends, as delivered
 *      (our Received header already prepended); length = message size
 *   E  ""                           end of the written part
 *   -- appended by qmgr after E --
 *   D  "IDX"                        recipient IDX done (delivered, or its
 *                                   failure already turned into a bounce)
 *   r  "ADDRESS\tparent=IDX[\tORCPT=..][\tNOTIFY=..]"  recipient added by
 *      alias/.forward expansion; gets the next index
 *   W  "IDX\tDSN\tTEXT"             latest deferral reason (for mailq)
 *   w  ""                           delay warning sent
 *
 * Addresses are stored as received (no quoting changes); they never pass
 * through a shell.
 */
#ifndef POSTERN_QUEUE_FILE_H
#define POSTERN_QUEUE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define QUEUE_ID_MAX	32
#define QUEUE_FORMAT_VERSION "1"

/* DSN NOTIFY bits (RFC 3461 §4.1); 0 = not given (default behaviour). */
#define QUEUE_NOTIFY_NEVER	0x1
#define QUEUE_NOTIFY_SUCCESS	0x2
#define QUEUE_NOTIFY_FAILURE	0x4
#define QUEUE_NOTIFY_DELAY	0x8

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,
	QUEUE_RCPT_DONE
};

enum queue_ret {
	QUEUE_RET_DEFAULT = 0,
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS
};

struct queue_rcpt {
	char			*addr;
	char			*orcpt;		/* "rfc822;xtext" or NULL */
	unsigned		 notify;	/* QUEUE_NOTIFY_* bits */
	int			 parent;	/* -1, or index it expanded from */
	enum queue_rcpt_state	 state;
	char			*defer_dsn;	/* latest W record, or NULL */
	char			*defer_text;
};

struct queue_msg {
	char		 id[QUEUE_ID_MAX];
	time_t		 arrival;
	long		 arrival_usec;
	char		*sender;	/* "" for <> */
	char		*sender_params;	/* raw 'f' record, "" if none */
	char		*envid;		/* decoded from ENVID=, or NULL */
	enum queue_ret	 ret;
	bool		 smtputf8;
	bool		 body_8bit;	/* BODY=8BITMIME */
	char		*client;	/* raw 'C' record */
	struct queue_rcpt *rcpts;
	size_t		 rcpt_count;
	off_t		 msg_offset;	/* offset of message bytes in file */
	off_t		 msg_size;
	bool		 warned;	/* 'w' seen */
};

/* Name of the queue subdirectories, created by queue_dirs_create(). */
extern const char *const queue_subdirs[];

/*
 * Create queue_dir and its subdirectories (tmp incoming deferred hold
 * corrupt private public) if missing, owned by uid/gid when running as
 * root (uid (uid_t)-1: leave ownership), mode 0700 except public 0711.
 * Returns 0 or -1 with *error_r set (static or borrowed string).
 */
int	queue_dirs_create(const char *queue_dir, uid_t uid, gid_t gid,
	    const char **error_r);

/* Get a client fact from a 'C' record value ("addr" etc.), malloc'ed. */
char	*queue_client_get(const char *client, const char *key);

/* ---- writer (smtpd, sendmail) ---- */

struct queue_writer;

/*
 * Create tmp/ID with a fresh unique ID (O_EXCL).  NULL + *error_r on
 * failure (the caller answers 451 4.3.0).
 */
struct queue_writer *queue_writer_new(const char *queue_dir,
	    const char **error_r);
const char *queue_writer_id(const struct queue_writer *w);
/* Append one record (envelope records, before queue_writer_begin_msg()). */
int	queue_writer_record(struct queue_writer *w, char type,
	    const void *data, size_t len);
/* Start the message record (length patched at commit). */
int	queue_writer_begin_msg(struct queue_writer *w);
/* Message bytes (buffered). */
int	queue_writer_write(struct queue_writer *w, const void *data,
	    size_t len);
/* Bytes of message written so far. */
off_t	queue_writer_msg_size(const struct queue_writer *w);
/*
 * Finish: patch the message length, write E, fsync the file, rename it to
 * incoming/ID, fsync incoming/.  Only after a 0 return may the client be
 * told 250.  Frees w in all cases.  On -1, *error_r says why (ENOSPC etc.)
 * and the tmp file is removed.
 */
int	queue_writer_commit(struct queue_writer **w, const char **error_r);
/*
 * Finish without committing (delivery at accept, doc/internals.md): patch
 * the message length and write E, all of it handed to the kernel, no
 * fsync; the file stays in tmp/ID, complete for a reader.  Afterwards
 * only queue_writer_add_status(), queue_writer_commit() (which then just
 * writes the status records, fsyncs and renames) and queue_writer_abort()
 * may be used.  Returns 0, or -1 with *error_r (w is kept: abort it).
 */
int	queue_writer_finish(struct queue_writer *w, const char **error_r);
/*
 * Append a status record after E (e.g. 'D' for a recipient delivered at
 * accept) to a finished writer; buffered, written and fsynced by
 * queue_writer_commit().  Returns 0, or -1 (the commit then fails too).
 */
int	queue_writer_add_status(struct queue_writer *w, char type,
	    const void *data, size_t len);
/*
 * Commit into another queue subdirectory than incoming/ ("hold": the
 * HOLD action of smtpd's access tables).  subdir must be a static string.
 */
void	queue_writer_set_dir(struct queue_writer *w, const char *subdir);
/* Throw away the tmp file and free w (also after queue_writer_finish()). */
void	queue_writer_abort(struct queue_writer **w);

/* ---- reader (qmgr, local, admin) ---- */

/*
 * Parse a whole queue file from fd (position irrelevant; uses pread).
 * Returns 1 ok, 0 incomplete (no end record: ignore the file), -1 corrupt
 * (*error_r says why).  After 1, free msg with queue_msg_free(); after 0
 * or -1 it is left empty (freeing it again is harmless).
 */
int	queue_file_read(int fd, struct queue_msg *msg, const char **error_r);
void	queue_msg_free(struct queue_msg *msg);

/*
 * Append one status record after the end record, in one write(2).  fsync is
 * the caller's choice (sync=true fsyncs).  Returns 0 or -1 (errno set).
 */
int	queue_file_append(int fd, char type, const char *data, size_t len,
	    bool sync);

/*
 * Cut a torn last record (a crash while appending) off the file, so that
 * records appended after it are read.  Returns the bytes removed (0 when
 * the file ends on a record boundary), or -1 (errno set).
 */
off_t	queue_file_trim_tail(int fd);

/* Notify qmgr that incoming/ID exists (datagram, never blocks). */
void	queue_notify_qmgr(const char *queue_dir, const char *id);

#endif
