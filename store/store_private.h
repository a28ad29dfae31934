/*
 * store_private: what the store's own files share and nobody else sees:
 * the mailbox object, the two backends' hooks, the UID map
 * (store_uidmap.c), the CRLF/unquoting filter (store_msg.c), a string
 * hash table and the locking helpers.  Protocol code uses store.h only.
 */
#ifndef POSTERN_STORE_PRIVATE_H
#define POSTERN_STORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "limits_pst.h"
#include "store.h"

/* Seconds to wait for the UID map lock or an mbox lock. */
#define STORE_LOCK_WAIT		10
/* A dotlock older than this is stale and removed (as local does). */
#define STORE_DOTLOCK_STALE	300
/* Bytes read from a message or mailbox file at a time. */
#define STORE_IO_CHUNK		(64 * 1024)
/* Unknown vsize in a UID map record. */
#define STORE_VSIZE_UNKNOWN	UINT64_MAX

/* ---- string hash (store_hash.c): key -> pointer, no deletion ---- */
struct store_hash;

struct store_hash *store_hash_new(size_t expect);
void	store_hash_free(struct store_hash **hp);
/* The key is borrowed: it must live as long as its entry. */
void	store_hash_set(struct store_hash *h, const char *key, size_t keylen,
	    void *value);
void	*store_hash_get(const struct store_hash *h, const char *key,
	    size_t keylen);
size_t	store_hash_count(const struct store_hash *h);
/* 64-bit FNV-1a, also the mbox fingerprint hash. */
uint64_t store_hash_fnv(uint64_t h, const void *data, size_t len);
#define STORE_FNV_INIT	0xcbf29ce484222325ULL

/* ---- UID map (store_uidmap.c) ---- */
struct store_uidrec {
	uint32_t	 uid;
	bool		 dead;		/* tombstoned: expunged */
	char		*key;		/* Maildir base name, mbox print */
	uint64_t	 vsize;		/* STORE_VSIZE_UNKNOWN when absent */
	int64_t		 mtime;		/* -1 when absent */
	int64_t		 save_date;	/* -1 when absent */
	/* mbox: flags kept in the map (H = header flags they replaced) */
	bool		 has_flags;
	uint32_t	 flags;
	uint32_t	 hdr_flags;
	uint64_t	 keywords;
};

struct store_uidmap {
	char		*path;
	char		*lock_path;
	bool		 exists;	/* the file was found and read */
	uint32_t	 uidvalidity;
	uint32_t	 next_uid;
	struct store_uidrec **recs;	/* sorted by uid */
	size_t		 count, cap;
	size_t		 dead;
	struct store_hash *by_key;	/* key -> live record */
	/* what was read of the file */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 read_off;	/* end of the last complete line */
	int		 lock_fd;	/* >= 0 while locked */
	struct buf	 pending;	/* lines to append at commit */
	char		*error;
};

/* One parsed line of our uidlist or of a dovecot-uidlist. */
struct store_uidline {
	enum {
		STORE_UIDLINE_RECORD,
		STORE_UIDLINE_TOMBSTONE
	} type;
	struct store_uidrec rec;	/* key points into the line */
	size_t		 keylen;
};

/* Header of a uidlist file (ours or Dovecot's v1/v3). */
struct store_uidhdr {
	int		 version;	/* ours: 1; Dovecot: 1 or 3 */
	uint32_t	 uidvalidity;
	uint32_t	 next_uid;
};

/*
 * Pure parsers (no I/O; also run by the fuzz harness).  line excludes
 * the LF.  Return 0 and fill the result, or -1 for a malformed line.
 */
int	store_uidlist_parse_header(const char *line, size_t len,
	    struct store_uidhdr *hdr_r);
int	store_uidlist_parse_line(const char *line, size_t len,
	    struct store_uidline *out_r);
int	store_dovecot_parse_header(const char *line, size_t len,
	    struct store_uidhdr *hdr_r);
int	store_dovecot_parse_line(int version, const char *line, size_t len,
	    struct store_uidline *out_r);

void	store_uidmap_init(struct store_uidmap *m, const char *path,
	    const char *lock_path);
void	store_uidmap_deinit(struct store_uidmap *m);
/* Read what changed in the file (everything when it was replaced). */
int	store_uidmap_refresh(struct store_uidmap *m, const char **error_r);
/* fcntl lock on lock_path, waited for up to STORE_LOCK_WAIT seconds;
 * refreshes the map once locked. */
int	store_uidmap_lock(struct store_uidmap *m, const char **error_r);
void	store_uidmap_unlock(struct store_uidmap *m);
/* Locked: create the file (fresh UIDVALIDITY) when it does not exist. */
int	store_uidmap_create(struct store_uidmap *m, uint32_t uidvalidity,
	    const char **error_r);
struct store_uidrec *store_uidmap_find(const struct store_uidmap *m,
	    const char *key, size_t keylen);
struct store_uidrec *store_uidmap_find_uid(const struct store_uidmap *m,
	    uint32_t uid);
/*
 * Locked: give key the next UID; the record is queued for
 * store_uidmap_commit().  NULL when the UID space is used up.
 */
struct store_uidrec *store_uidmap_add(struct store_uidmap *m,
	    const char *key, uint64_t vsize, int64_t mtime);
/* Locked: queue a tombstone for uid. */
void	store_uidmap_expunge(struct store_uidmap *m, uint32_t uid);
/* Locked: queue the flag record of rec (mbox). */
void	store_uidmap_put_flags(struct store_uidmap *m,
	    struct store_uidrec *rec);
/* Locked: append the queued lines (fsync when sync), cutting off a torn
 * tail first. */
int	store_uidmap_commit(struct store_uidmap *m, bool sync,
	    const char **error_r);
/* Locked: rewrite the file with the live records only. */
int	store_uidmap_compact(struct store_uidmap *m, const char **error_r);
/* Whether compaction is worth it now. */
bool	store_uidmap_wants_compact(const struct store_uidmap *m);
/*
 * Locked, file absent: import a Dovecot uidlist.  exists(key, ctx)
 * fills vsize/mtime of a record whose file exists and returns false for
 * one that is gone (not imported).  Returns 1 imported, 0 no such file,
 * -1 error.
 */
int	store_uidmap_import_dovecot(struct store_uidmap *m, const char *path,
	    bool (*exists)(struct store_uidrec *rec, void *ctx), void *ctx,
	    const char **error_r);

/* ---- message filter (store_msg.c) ---- */
/*
 * Turns stored bytes into what clients get: bare LF -> CRLF, and for
 * mbox one level of mboxrd ">From " quoting removed (a line ">>From "
 * becomes ">From ").  Resumable on any byte boundary of input and output.
 */
struct store_filter {
	bool		 unquote;
	bool		 bol;		/* at a line start */
	bool		 prev_cr;	/* last input byte was CR */
	bool		 checking;	/* examining a line start for >From */
	uint64_t	 gt;		/* '>' seen at this line start */
	unsigned int	 from;		/* bytes of "From " matched after */
	uint64_t	 owe_gt;	/* '>' still to output */
	char		 pend[8];	/* other bytes still to output */
	unsigned int	 pend_len, pend_pos;
	uint64_t	 out_count;	/* bytes output so far */
};

void	store_filter_init(struct store_filter *f, bool unquote);
/*
 * Feed in[0..inlen) and write at most outsize bytes to out (out NULL:
 * count only, no limit).  Returns the input bytes consumed; *outlen_r
 * the bytes written.
 */
size_t	store_filter_run(struct store_filter *f, const char *in, size_t inlen,
	    char *out, size_t outsize, size_t *outlen_r);
/* End of input: flush what a line start held back.  Returns bytes
 * written; call again while store_filter_pending(). */
size_t	store_filter_finish(struct store_filter *f, char *out,
	    size_t outsize);
bool	store_filter_pending(const struct store_filter *f);
/* vsize of len bytes of fd from offset (mbox unquoting when unquote). */
int	store_vsize_fd(int fd, off_t offset, off_t len, bool unquote,
	    uint64_t *vsize_r);

/* ---- locks (store_lock.c) ---- */
long long store_mono_ms(void);
/* fcntl lock of type F_RDLCK/F_WRLCK on fd, waited for up to wait s. */
int	store_fcntl_lock(int fd, short type, unsigned int wait);
/* Dotlock path.lock: 1 taken, 0 impossible here (no permission), -1
 * timeout (errno EAGAIN). */
int	store_dotlock(const char *lock, unsigned int wait);

/* ---- the mailbox ---- */
struct store_msg_priv {
	char		*name;		/* Maildir: file name in cur/ or new/ */
	bool		 in_new;
	/* mbox */
	off_t		 from_off;	/* the "From " line */
	off_t		 body_off;	/* first byte of the message */
	off_t		 end_off;	/* after its last byte */
	uint64_t	 from_hash;
	uint32_t	 hdr_flags;
	char		*key;		/* mbox: fingerprint key */
};

struct store_backend {
	int	(*open)(struct store_mailbox *mb, const char **error_r);
	void	(*close)(struct store_mailbox *mb);
	int	(*sync)(struct store_mailbox *mb,
		    const struct store_sync_cb *cb, const char **error_r);
	int	(*notify_fd)(struct store_mailbox *mb);
	int	(*msg_open)(struct store_mailbox *mb, uint32_t idx, int *fd_r,
		    off_t *off_r, off_t *len_r, const char **error_r);
	/* Apply the change (store_flags_apply) to the message's flags as
	 * they are on disk now, which another process may have changed
	 * since the view was built; the result in *flags_r, *kw_r. */
	int	(*set_flags)(struct store_mailbox *mb, uint32_t idx,
		    uint32_t flags, uint64_t keywords, int mode,
		    uint32_t *flags_r, uint64_t *kw_r, const char **error_r);
	int	(*expunge_uids)(struct store_mailbox *mb, const uint32_t *uids,
		    size_t count, const char **error_r);
};

extern const struct store_backend store_maildir_backend;
extern const struct store_backend store_mbox_backend;

struct store_user {
	struct store_location loc;
	char		*user;
	char		*home;
	char		*index_dir;	/* mbox: UID maps and expunge backups */
	char		*error;
};

struct store_mailbox {
	struct store_user *user;
	const struct store_backend *be;
	char		*name;		/* "INBOX" or the folder name */
	char		*path;		/* Maildir folder dir, or mbox file */
	bool		 readonly;
	bool		 unquote;	/* mbox */

	/* the view: messages in UID order */
	struct store_msg *msgs;
	struct store_msg_priv *priv;
	uint32_t	 count, cap;
	uint32_t	 recent;
	uint64_t	 highest_modseq;
	uint32_t	 shown_uid_max;	/* highest UID the view ever had */
	uint32_t	 view_uidvalidity;

	struct store_uidmap map;
	char		*keywords[STORE_MAX_KEYWORDS];
	int		 notify_fd;
	char		*error;
	void		*be_ctx;
};

/* Set mb->error (or u->error) from a format; returns the string. */
const char *store_error(char **slot, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Free the view's per-message data (not the arrays). */
void	store_view_clear(struct store_mailbox *mb);
/*
 * While a backend builds a new view, with mb still holding the old one:
 * carry the session state of a message the old view had (\Recent,
 * modseq, bumped when the flags differ).  false for a new message.
 */
bool	store_view_carry(struct store_mailbox *mb, struct store_msg *nm);
/*
 * Replace the view with msgs/priv (count entries, malloc'ed, taken
 * over), tell cb what changed: expunges (highest index first), flag
 * changes, new messages; everything as expunged and new when
 * UIDVALIDITY changed.
 */
void	store_view_install(struct store_mailbox *mb, struct store_msg *msgs,
	    struct store_msg_priv *priv, uint32_t count,
	    const struct store_sync_cb *cb);
/* Read the pending inotify events: the sync that follows sees it all. */
void	store_notify_drain(struct store_mailbox *mb);
/* mode 0 replace, 1 add, -1 remove (store_msg_set_flags()). */
void	store_flags_apply(uint32_t *flags, uint64_t *kw, uint32_t set_flags,
	    uint64_t set_kw, int mode);
/* Maildir flag letters <-> STORE_* bits. */
uint32_t store_maildir_letter_flag(char c);
/* Create dir and missing parents, mode 0700. */
int	store_mkdirs(const char *dir);

#endif
