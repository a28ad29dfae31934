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
/* The value slot of key, made (value NULL, key borrowed as by
 * store_hash_set()) when absent: one lookup for a get-then-set. */
void	**store_hash_ref(struct store_hash *h, const char *key,
	    size_t keylen, bool *found_r);
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
	char		 guid[STORE_GUID_LEN + 1];	/* "" when none */
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
	char		 guid[STORE_GUID_LEN + 1];	/* G: "" when none */
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

/* ---- binary file helpers (store_file.c) ---- */
/* CRC-32C of data, continuing crc (0 to start). */
uint32_t store_crc32c(uint32_t crc, const void *data, size_t len);
/* The same without special instructions (tests compare the two). */
uint32_t store_crc32c_sw(uint32_t crc, const void *data, size_t len);
void	store_le32_put(unsigned char *p, uint32_t v);
void	store_le64_put(unsigned char *p, uint64_t v);
uint32_t store_le32_get(const unsigned char *p);
uint64_t store_le64_get(const unsigned char *p);
/* path.tmp created empty for writing, or -1 (errno). */
int	store_file_tmp_open(const char *path);
/* fsync and close fd (from store_file_tmp_open), rename path.tmp over
 * path, fsync the directory.  -1 (errno) on failure; path.tmp is gone
 * either way. */
int	store_file_tmp_commit(const char *path, int fd);
void	store_file_tmp_abort(const char *path, int fd);
/*
 * fcntl write lock on path through *fdp (opened read-write, created
 * when missing, when *fdp is -1), waited for up to wait seconds.  When
 * the file was replaced by rename meanwhile, the new one is opened and
 * locked instead.  -1 (errno) on failure.
 */
int	store_file_lock(const char *path, int *fdp, unsigned int wait);
void	store_file_unlock(int fd);
/* pread until len bytes or end of file: bytes read, or -1. */
ssize_t	store_file_pread_all(int fd, void *buf, size_t len, off_t off);

/* ---- modseq index (store_index.c) ---- */
/* Expunges remembered for QRESYNC (RFC 7162 §5.3); older ones are
 * forgotten and raise the floor. */
#define STORE_MAX_EXPUNGED	100000
/* Bytes of one index record; the header is as long as STORE_INDEX_HDR. */
#define STORE_INDEX_REC		32
#define STORE_INDEX_HDR		64
/* An index larger than this is damaged (a record per message of
 * MAX_STORE_MESSAGES, twice over): written anew. */
#define STORE_INDEX_MAX_FILE	((off_t)MAX_STORE_MESSAGES * 2 * \
	STORE_INDEX_REC + STORE_INDEX_HDR)

struct store_index_msg {
	uint32_t	 uid;
	uint32_t	 flags;		/* STORE_* without STORE_RECENT */
	uint64_t	 keywords;
	uint64_t	 modseq;
};

struct store_index_exp {
	uint32_t	 uid;
	uint64_t	 modseq;
};

struct store_index {
	char		*path;
	int		 fd;		/* for reading, or -1 */
	bool		 loaded;	/* the state below is the file's */
	bool		 broken;	/* unwritable: modseqs in memory only */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 read_off;	/* after the last whole record read */
	uint32_t	 uidvalidity;
	uint64_t	 highest;
	uint64_t	 floor;		/* expunges up to it are not known */
	uint64_t	 file_records;	/* records in the file */
	struct store_index_msg *msgs;	/* live messages, by UID */
	size_t		 count, cap;
	struct store_index_exp *exp;	/* expunges, by modseq */
	size_t		 nexp, capexp;
	struct buf	 pending;	/* records to append, under the lock */
};

/* Pure parsers for the fuzz harness: 0 valid, -1 not. */
int	store_index_parse_header(const unsigned char *p,
	    uint32_t *uidvalidity_r, uint64_t *highest_r, uint64_t *floor_r);
int	store_index_parse_record(const unsigned char *p, int *type_r,
	    uint32_t *uid_r, uint32_t *flags_r, uint64_t *kw_r,
	    uint64_t *modseq_r);

void	store_index_init(struct store_index *ix, const char *path);
void	store_index_deinit(struct store_index *ix);
/*
 * A new view msgs[0..count) is about to be installed: give every message
 * its modseq from the index, recording new messages, flag changes seen
 * on disk and expunges with new modseqs first.  -1 when the index cannot
 * be used (the caller keeps the modseqs it has; logged once).
 */
int	store_index_view(struct store_mailbox *mb, struct store_msg *msgs,
	    uint32_t count);
/* The flags of message idx were changed through the store: its new
 * modseq in *modseq_r.  -1 as above. */
int	store_index_changed(struct store_mailbox *mb, uint32_t idx,
	    uint32_t flags, uint64_t keywords, uint64_t *modseq_r);

/* ---- cache of parsed message data (store_cache.c) ---- */
/* Header of the cache file, and the header of one record before its
 * fields. */
#define STORE_CACHE_HDR		64
#define STORE_CACHE_REC_HDR	24
/* Bytes of message header read for the header-derived fields: IMAP's
 * bound for HEADER.FIELDS and SEARCH (IMAP_MAX_HEADER), so a cached
 * value is what those would compute. */
#define STORE_CACHE_MAX_HEADER	(1024 * 1024)
/* The message is read in chunks of this size (as IMAP SEARCH reads it,
 * so the header block ends at the same byte). */
#define STORE_CACHE_READ_CHUNK	(32 * 1024)
/* One field and one record at most; a larger field is left out (the
 * caller computes it from the message each time). */
#define STORE_CACHE_MAX_FIELD	(256 * 1024)
#define STORE_CACHE_MAX_RECORD	(1024 * 1024)
/* A cache file larger than this is not read (and replaced by the next
 * writer); records beyond MAX_STORE_MESSAGES are not kept in memory. */
#define STORE_CACHE_MAX_FILE	((off_t)8 * 1024 * 1024 * 1024)
/* Records computed and not yet written, in bytes, before a write. */
#define STORE_CACHE_FLUSH	(256 * 1024)
/* The fields this version writes into every record it computes;
 * records of an older set are computed again. */
#define STORE_CACHE_FIELDSET	1

struct store_cache;

struct store_cache *store_cache_new(const char *path);
/* Write what waits and free. */
void	store_cache_free(struct store_mailbox *mb, struct store_cache **cp);
/* At a sync: notice a file removed or replaced by someone else, write
 * what waits. */
void	store_cache_sync(struct store_mailbox *mb);
/* These UIDs left the view: their records are dead. */
void	store_cache_expunged(struct store_mailbox *mb, const uint32_t *uids,
	    size_t n);
/*
 * Compute the record of message idx from its bytes into rec (record
 * header with crc and padding included).  -1 with *error_r when the
 * message cannot be read.
 */
int	store_cache_compute(struct store_mailbox *mb, uint32_t idx,
	    struct buf *rec, const char **error_r);
/* Frame fields[] (id, bytes) as a record: header, fields, padding,
 * crc.  Fields that do not fit STORE_CACHE_MAX_RECORD are left out. */
struct store_cache_field_val {
	unsigned int	 id;
	const void	*data;
	size_t		 len;
};
void	store_cache_frame(struct buf *rec, uint32_t uid, uint64_t vsize,
	    unsigned int fieldset, const struct store_cache_field_val *f,
	    size_t n);
/*
 * Pure parsers (no I/O; the fuzz harness runs them).  A record header:
 * 1 valid (length in *len_r, UID in *uid_r), 0 not a record header.
 * A whole record of len bytes: 0 with the fields in vals[id] (data NULL
 * when absent), -1 damaged.
 */
int	store_cache_parse_rec_header(const unsigned char *p, uint32_t *len_r,
	    uint32_t *uid_r);
int	store_cache_parse_record(const unsigned char *p, size_t len,
	    uint32_t *uid_r, uint64_t *vsize_r, unsigned int *fieldset_r,
	    struct store_cache_field_val *vals, size_t nvals);
/* RFC 5256 §2.1 base subject of a decoded (UTF-8) subject, appended. */
void	store_subject_base(const char *s, size_t len, struct buf *out);

/* ---- view snapshot of a Maildir folder (store_snap.c) ---- */
/* What a view was built from: a file's identity, size and mtime. */
struct store_stamp {
	uint64_t	 dev, ino, size;
	int64_t		 sec;
	uint32_t	 nsec;
};

/* new/, cur/ and the UID map, in this order. */
#define STORE_SNAP_STAMPS	3

struct stat;
void	store_stamp_of(const struct stat *st, struct store_stamp *s);
/* stat() of path as a stamp; -1 (all zero) when it cannot be had. */
int	store_stamp_path(const char *path, struct store_stamp *s);
bool	store_stamp_eq(const struct store_stamp *a,
	    const struct store_stamp *b);

struct store_snap_hdr {
	uint32_t	 crc;
	uint32_t	 count;
	uint32_t	 uidvalidity;
	uint32_t	 next_uid;
	uint64_t	 names_len;
	uint64_t	 file_size;
	struct store_stamp stamps[STORE_SNAP_STAMPS];
};

/* A view read from a snapshot: the names point into one block. */
struct store_snap_view {
	struct store_msg *msgs;
	struct store_msg_priv *priv;
	uint32_t	 count;
	uint32_t	 uidvalidity;
	uint32_t	 next_uid;
	char		*names;
	size_t		 names_len;
};

/* Pure parser of the 160-byte header (fuzz harness): 0 valid, -1 not. */
int	store_snap_parse_header(const unsigned char *p,
	    struct store_snap_hdr *h);
/* 0 with the view when the file is whole and its stamps equal stamps;
 * -1 otherwise (missing, stale, damaged). */
int	store_snap_read(const char *path, const struct store_stamp *stamps,
	    struct store_snap_view *v);
void	store_snap_view_free(struct store_snap_view *v);
/* Replace the snapshot at path; -1 when it could not be written (not an
 * error: the next sync tries again). */
int	store_snap_write(const char *path, const struct store_stamp *stamps,
	    uint32_t uidvalidity, uint32_t next_uid,
	    const struct store_msg *msgs, const struct store_msg_priv *priv,
	    uint32_t count);

/* ---- the mailbox ---- */
struct store_msg_priv {
	char		*name;		/* Maildir: file name in cur/ or new/
					 * (malloc'ed, or in the view's
					 * name block) */
	/* mbox */
	off_t		 from_off;	/* the "From " line */
	off_t		 body_off;	/* first byte of the message */
	off_t		 end_off;	/* after its last byte */
	uint64_t	 from_hash;
	char		*key;		/* mbox: fingerprint key */
	uint32_t	 hdr_flags;
	/* Maildir (here, not above, so that no padding follows it: one
	 * of these per message) */
	bool		 in_new;
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
	/* One block holding the names of many messages (not freed one by
	 * one); the backend sets names_next for the view it installs. */
	char		*names;
	size_t		 names_len;
	char		*names_next;
	size_t		 names_next_len;
	uint32_t	 recent;
	uint64_t	 highest_modseq;
	uint32_t	 shown_uid_max;	/* highest UID the view ever had */
	uint32_t	 view_uidvalidity;

	struct store_uidmap map;
	struct store_index index;	/* modseqs (store_index.c) */
	struct store_cache *cache;	/* opened at the first use */
	char		*cache_path;
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
/* Free the name of a message of the current view (unless it is in the
 * view's name block). */
void	store_view_name_free(struct store_mailbox *mb, char *name);
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
