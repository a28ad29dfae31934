/*
 * store_maildir: the Maildir backend (DESIGN §6, §12).  A mailbox is a
 * directory with tmp/, new/ and cur/; INBOX is the Maildir root and
 * folders are Maildir++ ".Name" directories beside its cur/.  The file
 * names stay the truth for flags (":2,<letters>": D draft, F flagged,
 * P passed, R replied = \Answered, S seen, T trashed = \Deleted, a..z
 * the keywords named in "dovecot-keywords"), so mutt and other readers
 * of the same Maildir interoperate.  UIDs live in "postern-uidlist"
 * (store_uidmap.c), keyed by the base name (the name without ":2,...").
 *
 * A sync lists new/ and then cur/ (a file moving from new/ to cur/
 * meanwhile is seen in one of the two), reads what the UID map gained,
 * and gives the files the map does not know the next UIDs, in the order
 * of their mtime and then name, under the map's lock.  A message whose
 * file is gone from both directories is listed once more before it
 * counts as expunged (readdir may miss a file renamed while it runs);
 * the map then gets a tombstone for it, so the same name showing up
 * again later gets a new UID.
 *
 * Opened read-write, a sync first moves the files of new/ into cur/
 * (adding ":2,"), as IMAP servers do; the messages it moved are \Recent
 * for this view only (RFC 3501 §2.3.2: another session that finds them
 * in cur/ does not see them as \Recent).  Read-only views leave new/
 * alone and count what is in new/ as \Recent.
 *
 * A sync that finds new/, cur/ and the UID map as the last one left them
 * (device, inode, size, mtime to the nanosecond; directories only when
 * their mtime was two seconds old at that listing) does nothing.  The
 * first sync of a mailbox object takes its view from the snapshot a
 * settled sync wrote ("postern-view", store_snap.c) when the stamps are
 * still those, without listing cur/ or reading the UID map; the map is
 * then read when something first needs it.
 *
 * vsize is the ",W=" of the file name when present, else computed once
 * and kept in the map; the internal date is the file's mtime when the
 * UID was given, also kept in the map.
 *
 * Not done here: cleaning old files out of tmp/, creating, renaming or
 * deleting folders, quota.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

/* Files in a listing above which the memory it used is given back. */
#define STORE_TRIM_SCAN		10000

struct maildir_ent {
	char		*name;
	size_t		 baselen;
	bool		 in_new;
};

struct maildir_scan {
	struct maildir_ent *ents;
	size_t		 count, cap;
	struct store_hash *by_base;	/* base -> index + 1 */
};

struct maildir_ctx {
	char		*cur, *new, *tmp;
	char		*kw_path;
	struct stat	 kw_st;
	bool		 kw_read;
	/*
	 * To skip a sync when nothing changed since the last full one:
	 * the stamps of new/, cur/ and the UID map the view was built from
	 * (scanned: the directories were settled then, see maildir_sync()).
	 */
	bool		 scanned;
	struct store_stamp view_st[STORE_SNAP_STAMPS];
	/* the view snapshot (store_snap.c) and the stamps it was last
	 * read or written with */
	char		*snap_path;
	struct store_stamp snap_st[STORE_SNAP_STAMPS];
	/* names as listed for maildir_find_base(), until the next sync */
	struct maildir_scan *lookup;
	bool		 lookup_fresh;	/* listed for the current lookup */
};

static const char *
maildir_err(struct store_mailbox *mb, const char *what, const char *path)
{
	return store_error(&mb->error, "%s(%s) failed: %s", what, path,
	    strerror(errno));
}

/* Length of the base name: up to the ':' of the info part. */
static size_t
maildir_baselen(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

/* Flags and keywords of a file name. */
static void
maildir_parse_info(const char *name, uint32_t *flags_r, uint64_t *kw_r)
{
	const char *info = strchr(name, ':');

	*flags_r = 0;
	*kw_r = 0;
	if (info == NULL || strncmp(info, ":2,", 3) != 0)
		return;
	for (info += 3; *info != '\0'; info++) {
		if (*info >= 'a' && *info <= 'z')
			*kw_r |= 1ULL << (*info - 'a');
		else
			*flags_r |= store_maildir_letter_flag(*info);
	}
}

/* ",W=<vsize>" in a base name, as Dovecot writes it. */
static bool
maildir_name_vsize(const char *name, size_t baselen, uint64_t *vsize_r)
{
	const char *p = name, *end = name + baselen;

	while ((p = memchr(p, ',', (size_t)(end - p))) != NULL) {
		uint64_t v = 0;
		const char *q;

		p++;
		if (end - p < 3 || p[0] != 'W' || p[1] != '=')
			continue;
		for (q = p + 2; q < end && *q >= '0' && *q <= '9'; q++) {
			if (v > (UINT64_MAX - 10) / 10)
				return false;
			v = v * 10 + (uint64_t)(*q - '0');
		}
		if (q == p + 2 || (q < end && *q != ','))
			continue;
		*vsize_r = v;
		return true;
	}
	return false;
}

static char *
maildir_path(const struct maildir_ctx *c, const struct maildir_ent *e)
{
	return xasprintf("%s/%s", e->in_new ? c->new : c->cur, e->name);
}

/* ---- directory scans ---- */

static void
maildir_scan_init(struct maildir_scan *s, size_t expect)
{
	memset(s, 0, sizeof(*s));
	s->by_base = store_hash_new(expect);
}

static void
maildir_scan_free(struct maildir_scan *s)
{
	size_t i;

	for (i = 0; i < s->count; i++)
		free(s->ents[i].name);
	free(s->ents);
	store_hash_free(&s->by_base);
}

static struct maildir_ent *
maildir_scan_get(const struct maildir_scan *s, const char *base,
    size_t baselen)
{
	uintptr_t i = (uintptr_t)store_hash_get(s->by_base, base, baselen);

	return i == 0 ? NULL : &s->ents[i - 1];
}

static void
maildir_scan_add(struct maildir_scan *s, const char *name, bool in_new)
{
	size_t baselen = maildir_baselen(name);
	char *copy = xstrdup(name);
	bool found;
	void **ref = store_hash_ref(s->by_base, copy, baselen, &found);
	struct maildir_ent *e;

	if (found) {
		e = &s->ents[(uintptr_t)*ref - 1];
		free(copy);
		/* The same message in new/ and cur/: cur/ wins; a second
		 * scan brings the current name. */
		if (!in_new && (e->in_new || strcmp(e->name, name) != 0)) {
			char *old = e->name;

			e->name = xstrdup(name);
			e->in_new = false;
			/* The table still points at old: replace, then free. */
			store_hash_set(s->by_base, e->name, baselen,
			    (void *)(uintptr_t)(e - s->ents + 1));
			free(old);
		}
		return;
	}
	if (s->count == s->cap) {
		s->cap = s->cap == 0 ? 256 : s->cap * 2;
		s->ents = xreallocarray(s->ents, s->cap, sizeof(*s->ents));
	}
	e = &s->ents[s->count++];
	e->name = copy;		/* the table's key */
	e->baselen = baselen;
	e->in_new = in_new;
	*ref = (void *)(uintptr_t)s->count;
}

static bool
maildir_name_ok(const char *name)
{
	/* Dot files are not messages; a name with LF cannot be a map
	 * key. */
	return name[0] != '.' && strchr(name, '\n') == NULL &&
	    maildir_baselen(name) > 0;
}

static int
maildir_scan_dir(struct store_mailbox *mb, struct maildir_scan *s,
    const char *dir, bool in_new, const char **error_r)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL) {
		*error_r = maildir_err(mb, "opendir", dir);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!maildir_name_ok(de->d_name))
			continue;
		if (s->count >= MAX_STORE_MESSAGES) {
			*error_r = store_error(&mb->error, "%s: more than %d "
			    "messages", mb->path, MAX_STORE_MESSAGES);
			closedir(d);
			return -1;
		}
		maildir_scan_add(s, de->d_name, in_new);
	}
	if (errno != 0) {
		*error_r = maildir_err(mb, "readdir", dir);
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

static int
maildir_scan(struct store_mailbox *mb, struct maildir_scan *s,
    const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;

	/* new/ first: a file moved to cur/ meanwhile is then in cur/. */
	if (maildir_scan_dir(mb, s, c->new, true, error_r) < 0 ||
	    maildir_scan_dir(mb, s, c->cur, false, error_r) < 0)
		return -1;
	return 0;
}

static void
maildir_lookup_free(struct maildir_ctx *c)
{
	if (c->lookup != NULL) {
		maildir_scan_free(c->lookup);
		free(c->lookup);
		c->lookup = NULL;
	}
}

/*
 * Find the file of base now (renamed by someone since our scan).  The
 * directories are listed once into a table kept until the next sync, so
 * that a client reading every message of a mailbox whose files mutt
 * renamed all meanwhile costs one listing, not one per message; the
 * table is listed again when a name it gives is gone or it lacks base.
 */
static bool
maildir_find_base(struct store_mailbox *mb, const char *base, size_t baselen,
    char **name_r, bool *in_new_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	const char *err;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		struct maildir_ent *e = NULL;
		struct stat st;
		char *path;

		if (c->lookup != NULL)
			e = maildir_scan_get(c->lookup, base, baselen);
		if (e == NULL) {
			if (tries > 0 && c->lookup_fresh)
				break;
			maildir_lookup_free(c);
			c->lookup = xmalloc(sizeof(*c->lookup));
			maildir_scan_init(c->lookup, mb->count);
			if (maildir_scan(mb, c->lookup, &err) < 0) {
				maildir_lookup_free(c);
				return false;
			}
			c->lookup_fresh = true;
			e = maildir_scan_get(c->lookup, base, baselen);
			if (e == NULL)
				break;
		}
		path = maildir_path(c, e);
		if (stat(path, &st) == 0) {
			free(path);
			*name_r = xstrdup(e->name);
			*in_new_r = e->in_new;
			/* Used once: the next lookup lists again if need
			 * be. */
			c->lookup_fresh = false;
			return true;
		}
		free(path);
		/* Renamed again since the listing. */
		maildir_lookup_free(c);
	}
	return false;
}

/* ---- keywords ---- */

/* "dovecot-keywords": lines "<slot> <name>", slot 0..25 = letter a..z. */
static void
maildir_read_keywords(struct store_mailbox *mb)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct stat st;
	char *data, *p, *end;
	unsigned int i;
	ssize_t n;
	int fd;

	if (stat(c->kw_path, &st) < 0) {
		if (!c->kw_read)
			return;
		memset(&st, 0, sizeof(st));
	} else if (c->kw_read && st.st_ino == c->kw_st.st_ino &&
	    st.st_size == c->kw_st.st_size &&
	    st.st_mtim.tv_sec == c->kw_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->kw_st.st_mtim.tv_nsec)
		return;
	c->kw_st = st;
	c->kw_read = true;
	for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
		free(mb->keywords[i]);
		mb->keywords[i] = NULL;
	}
	fd = open(c->kw_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	data = xmalloc(MAX_STORE_KEYWORDS_FILE + 1);
	n = read(fd, data, MAX_STORE_KEYWORDS_FILE);
	close(fd);
	if (n <= 0) {
		free(data);
		return;
	}
	end = data + n;
	for (p = data; p < end; ) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line_end = nl != NULL ? nl : end;
		unsigned long slot = 0;
		char *q = p;
		size_t len;

		/* A line cut by the size bound is dropped. */
		if (nl == NULL && n == MAX_STORE_KEYWORDS_FILE)
			break;
		while (q < line_end && *q >= '0' && *q <= '9' && slot < 100)
			slot = slot * 10 + (unsigned long)(*q++ - '0');
		if (q > p && q < line_end && *q == ' ' &&
		    slot < STORE_MAX_KEYWORDS && mb->keywords[slot] == NULL) {
			q++;
			len = (size_t)(line_end - q);
			/* RFC 3501 §9 flag-keyword: atom characters. */
			if (len > 0 && memchr(q, '\0', len) == NULL &&
			    memchr(q, ' ', len) == NULL)
				mb->keywords[slot] = xstrndup(q, len);
		}
		p = line_end + 1;
	}
	free(data);
}

/* ---- open and close ---- */

static int
maildir_open(struct store_mailbox *mb, const char **error_r)
{
	struct maildir_ctx *c = xcalloc(1, sizeof(*c));
	char *map, *lock, *subs[3];
	int i;

	mb->be_ctx = c;
	c->cur = xasprintf("%s/cur", mb->path);
	c->new = xasprintf("%s/new", mb->path);
	c->tmp = xasprintf("%s/tmp", mb->path);
	c->kw_path = xasprintf("%s/dovecot-keywords", mb->path);
	c->snap_path = xasprintf("%s/postern-view", mb->path);
	map = xasprintf("%s/postern-uidlist", mb->path);
	lock = xasprintf("%s/postern-uidlist.lock", mb->path);
	store_uidmap_init(&mb->map, map, lock);
	free(map);
	free(lock);
	/* INBOX is made at its first use, as local makes it at the first
	 * delivery; a folder's missing subdirectories too. */
	if (store_mkdirs(mb->path) < 0) {
		*error_r = maildir_err(mb, "mkdir", mb->path);
		return -1;
	}
	subs[0] = c->tmp;
	subs[1] = c->new;
	subs[2] = c->cur;
	for (i = 0; i < 3; i++) {
		if (mkdir(subs[i], 0700) < 0 && errno != EEXIST) {
			*error_r = maildir_err(mb, "mkdir", subs[i]);
			return -1;
		}
	}
	maildir_read_keywords(mb);
	return 0;
}

static void
maildir_close(struct store_mailbox *mb)
{
	struct maildir_ctx *c = mb->be_ctx;

	if (c == NULL)
		return;
	maildir_lookup_free(c);
	free(c->cur);
	free(c->new);
	free(c->tmp);
	free(c->kw_path);
	free(c->snap_path);
	free(c);
	mb->be_ctx = NULL;
}

static int
maildir_notify_fd(struct store_mailbox *mb)
{
	struct maildir_ctx *c = mb->be_ctx;
	uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
	int fd;

	if (mb->notify_fd >= 0)
		return mb->notify_fd;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, c->new, mask) < 0 ||
	    inotify_add_watch(fd, c->cur, mask) < 0) {
		close(fd);
		return -1;
	}
	mb->notify_fd = fd;
	return fd;
}

/* ---- sync ---- */

/*
 * Move new/ into cur/ (read-write views): adds ":2," to each name.
 * Bases of what we moved go into claimed: they are \Recent for us.
 */
static void
maildir_claim_new(struct store_mailbox *mb, struct store_hash *claimed,
    char ***names_r, size_t *count_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct dirent *de;
	DIR *d = opendir(c->new);
	size_t cap = 0;

	*names_r = NULL;
	*count_r = 0;
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *from, *to, *base;

		if (!maildir_name_ok(de->d_name))
			continue;
		from = xasprintf("%s/%s", c->new, de->d_name);
		to = xasprintf("%s/%s%s", c->cur, de->d_name,
		    strchr(de->d_name, ':') != NULL ? "" : ":2,");
		if (rename(from, to) == 0) {
			base = xstrndup(de->d_name,
			    maildir_baselen(de->d_name));
			if (*count_r == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				*names_r = xreallocarray(*names_r, cap,
				    sizeof(**names_r));
			}
			(*names_r)[(*count_r)++] = base;
			store_hash_set(claimed, base, strlen(base), base);
		} else if (errno != ENOENT)
			log_warning("rename(%s, %s) failed: %m", from, to);
		free(from);
		free(to);
	}
	closedir(d);
}

struct maildir_newfile {
	struct maildir_ent *e;
	struct timespec	 mtime;
};

static int
maildir_newfile_cmp(const void *a, const void *b)
{
	const struct maildir_newfile *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->e->name, y->e->name);
}

/* vsize of a file: ",W=" in its name, else computed from its bytes. */
static int
maildir_file_vsize(const struct maildir_ctx *c, const struct maildir_ent *e,
    uint64_t *vsize_r)
{
	char *path;
	struct stat st;
	int fd, ret;

	if (maildir_name_vsize(e->name, e->baselen, vsize_r))
		return 0;
	path = maildir_path(c, e);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -1;
	ret = fstat(fd, &st) < 0 ? -1 :
	    store_vsize_fd(fd, 0, st.st_size, false, vsize_r);
	close(fd);
	return ret;
}

struct maildir_import_ctx {
	struct store_mailbox *mb;
	struct maildir_scan *scan;
};

static bool
maildir_import_exists(struct store_uidrec *rec, void *ctx)
{
	struct maildir_import_ctx *ic = ctx;
	struct maildir_ctx *c = ic->mb->be_ctx;
	struct maildir_ent *e = maildir_scan_get(ic->scan, rec->key,
	    strlen(rec->key));
	struct stat st;
	char *path;

	if (e == NULL)
		return false;
	path = maildir_path(c, e);
	if (stat(path, &st) < 0) {
		free(path);
		return false;
	}
	free(path);
	rec->mtime = (int64_t)st.st_mtime;
	if (rec->vsize == STORE_VSIZE_UNKNOWN &&
	    maildir_file_vsize(c, e, &rec->vsize) < 0)
		return false;
	return true;
}

/* Whether rec must get a new UID: the view already showed higher UIDs,
 * so showing this one now would put it in the middle (RFC 3501
 * §2.3.1.1: UIDs of new messages ascend). */
static bool
maildir_is_late(const struct store_mailbox *mb, const struct store_uidrec *r)
{
	return mb->view_uidvalidity == mb->map.uidvalidity &&
	    r->uid <= mb->shown_uid_max &&
	    store_mailbox_find_uid(mb, r->uid) < 0;
}

/*
 * Under the map lock: create or import the map, tombstone the messages
 * that are gone, give UIDs to files without one.
 */
static int
maildir_assign(struct store_mailbox *mb, struct maildir_scan *scan,
    const uint32_t *gone, size_t ngone, const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct maildir_newfile *nf = NULL;
	size_t i, n = 0;
	bool added = false;

	if (store_uidmap_lock(&mb->map, error_r) < 0)
		return -1;
	if (!mb->map.exists) {
		struct maildir_import_ctx ic = { mb, scan };
		char *dove = xasprintf("%s/dovecot-uidlist", mb->path);
		int r = store_uidmap_import_dovecot(&mb->map, dove,
		    maildir_import_exists, &ic, error_r);

		free(dove);
		if (r == 0)
			r = store_uidmap_create(&mb->map, (uint32_t)time(NULL),
			    error_r);
		if (r < 0)
			goto fail;
	}
	for (i = 0; i < ngone; i++) {
		struct store_uidrec *r = store_uidmap_find_uid(&mb->map,
		    gone[i]);

		/* Still gone now that we hold the lock? */
		if (r != NULL && !r->dead &&
		    maildir_scan_get(scan, r->key, strlen(r->key)) == NULL)
			store_uidmap_expunge(&mb->map, gone[i]);
	}
	nf = xreallocarray(NULL, scan->count + 1, sizeof(*nf));
	for (i = 0; i < scan->count; i++) {
		struct maildir_ent *e = &scan->ents[i];
		struct store_uidrec *r = store_uidmap_find(&mb->map, e->name,
		    e->baselen);
		struct stat st;
		char *path;

		if (r != NULL && !maildir_is_late(mb, r))
			continue;
		path = maildir_path(c, e);
		if (stat(path, &st) < 0) {
			free(path);
			continue;	/* renamed or gone: next sync */
		}
		free(path);
		if (r != NULL)
			store_uidmap_expunge(&mb->map, r->uid);
		nf[n].e = e;
		nf[n].mtime = st.st_mtim;
		n++;
	}
	qsort(nf, n, sizeof(*nf), maildir_newfile_cmp);
	for (i = 0; i < n; i++) {
		struct maildir_ent *e = nf[i].e;
		uint64_t vsize;
		char *key;

		if (maildir_file_vsize(c, e, &vsize) < 0)
			continue;
		key = xstrndup(e->name, e->baselen);
		if (store_uidmap_add(&mb->map, key, vsize,
		    (int64_t)nf[i].mtime.tv_sec) == NULL) {
			free(key);
			*error_r = store_error(&mb->error, "%s: UID space "
			    "used up", mb->map.path);
			goto fail;
		}
		free(key);
		added = true;
	}
	/* New UIDs must be on disk before anyone sees them. */
	if (store_uidmap_commit(&mb->map, added, error_r) < 0)
		goto fail;
	if (store_uidmap_wants_compact(&mb->map) &&
	    store_uidmap_compact(&mb->map, error_r) < 0)
		log_error("%s", *error_r);
	store_uidmap_unlock(&mb->map);
	free(nf);
	return 0;
fail:
	store_uidmap_unlock(&mb->map);
	free(nf);
	return -1;
}

/*
 * The view from the map (UID order) and the files found: msgs and priv
 * have room for every file.  *matched_r counts the files that have a
 * live record (shown, or skipped for a reason the next sync settles);
 * fewer than scan->count means some file still needs a UID.
 */
static uint32_t
maildir_view(struct store_mailbox *mb, struct maildir_scan *scan,
    struct store_hash *claimed, struct store_msg *msgs,
    struct store_msg_priv *priv, struct buf *names, size_t *matched_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	uint32_t count = 0;
	size_t i;

	*matched_r = 0;
	buf_reset(names);
	for (i = 0; i < mb->map.count; i++) {
		const struct store_uidrec *r = mb->map.recs[i];
		struct maildir_ent *e;
		struct store_msg *m;

		if (r->dead || (e = maildir_scan_get(scan, r->key,
		    strlen(r->key))) == NULL)
			continue;
		if (maildir_is_late(mb, r))
			continue;	/* could not be renumbered: hide */
		(*matched_r)++;
		m = &msgs[count];
		memset(m, 0, sizeof(*m));
		memset(&priv[count], 0, sizeof(priv[count]));
		m->uid = r->uid;
		maildir_parse_info(e->name, &m->flags, &m->keywords);
		m->vsize = r->vsize;
		if (m->vsize == STORE_VSIZE_UNKNOWN &&
		    maildir_file_vsize(c, e, &m->vsize) < 0)
			continue;	/* vanished: next sync */
		m->internal_date = r->mtime >= 0 ? (time_t)r->mtime : 0;
		m->save_date = r->save_date >= 0 ? (time_t)r->save_date :
		    m->internal_date;
		if (!store_view_carry(mb, m)) {
			if (store_hash_get(claimed, r->key,
			    strlen(r->key)) != NULL ||
			    (mb->readonly && e->in_new))
				m->flags |= STORE_RECENT;
		}
		/* The names go into one block (one allocation, not one per
		 * message); until it stops growing, name holds the offset
		 * (maildir_view_names()). */
		priv[count].name = (char *)(uintptr_t)names->len;
		(void)buf_append(names, e->name, strlen(e->name) + 1);
		priv[count].in_new = e->in_new;
		count++;
	}
	return count;
}

/* The names of a view from maildir_view() into place: the block becomes
 * the one the view installed next owns. */
static void
maildir_view_names(struct store_mailbox *mb, struct store_msg_priv *priv,
    uint32_t count, struct buf *names)
{
	uint32_t i;

	mb->names_next_len = names->len;
	/* Exactly as long as the names: the view keeps it for long. */
	mb->names_next = xrealloc(buf_steal(names), mb->names_next_len + 1);
	for (i = 0; i < count; i++)
		priv[i].name = mb->names_next + (uintptr_t)priv[i].name;
}

/* Stamps of new/ and cur/ now (the map's are taken after the sync). */
static void
maildir_dir_stamps(const struct maildir_ctx *c, struct store_stamp *st)
{
	(void)store_stamp_path(c->new, &st[0]);
	(void)store_stamp_path(c->cur, &st[1]);
}

/*
 * The stamp of the UID map as the view knows it: only when the file is
 * what the map read (nothing appended by others since), else one that
 * never matches, so the next sync looks again.
 */
static void
maildir_map_stamp(struct store_mailbox *mb, struct store_stamp *st)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	st->size = UINT64_MAX;
	if (mb->map.exists && stat(mb->map.path, &sb) == 0 &&
	    sb.st_dev == mb->map.dev && sb.st_ino == mb->map.ino &&
	    sb.st_size == mb->map.read_off)
		store_stamp_of(&sb, st);
}

static bool
maildir_stamps_eq(const struct store_stamp *a, const struct store_stamp *b)
{
	unsigned int i;

	for (i = 0; i < STORE_SNAP_STAMPS; i++)
		if (!store_stamp_eq(&a[i], &b[i]))
			return false;
	return true;
}

/*
 * The first view of this mailbox object from the snapshot, when its
 * stamps are those of now: no listing, and the UID map is left unread
 * until something needs it (a later sync that finds a change, a writer
 * taking its lock, the cache).  st: stamps of new/, cur/, map.
 */
static bool
maildir_snap_load(struct store_mailbox *mb, const struct store_stamp *st,
    const struct store_sync_cb *cb)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct store_snap_view v;
	uint32_t i;

	if (mb->map.exists || st[2].size == 0 ||
	    store_snap_read(c->snap_path, st, &v) < 0)
		return false;
	mb->map.uidvalidity = v.uidvalidity;
	mb->map.next_uid = v.next_uid;
	for (i = 0; i < v.count; i++) {
		/* The first view: every message is new to it. */
		(void)store_view_carry(mb, &v.msgs[i]);
		if (mb->readonly && v.priv[i].in_new)
			v.msgs[i].flags |= STORE_RECENT;
	}
	mb->names_next = v.names;
	mb->names_next_len = v.names_len;
	store_view_install(mb, v.msgs, v.priv, v.count, cb);
	memcpy(c->view_st, st, sizeof(c->view_st));
	memcpy(c->snap_st, st, sizeof(c->snap_st));
	c->scanned = true;	/* the snapshot's directories were settled */
	return true;
}

static int
maildir_sync(struct store_mailbox *mb, const struct store_sync_cb *cb,
    const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct maildir_scan scan;
	struct store_hash *claimed = store_hash_new(0);
	struct store_msg *msgs = NULL;
	struct store_msg_priv *priv = NULL;
	struct store_stamp now_st[STORE_SNAP_STAMPS];
	struct buf names;
	char **claimed_names = NULL;
	size_t nclaimed = 0, i, ngone = 0;
	uint32_t *gone = NULL, count = 0;
	size_t matched = 0;
	time_t start = time(NULL);
	bool big;
	bool need_assign;
	int ret = -1;

	memset(&scan, 0, sizeof(scan));
	buf_init(&names, 0);
	maildir_lookup_free(c);
	store_notify_drain(mb);
	maildir_read_keywords(mb);
	if (!mb->readonly)
		maildir_claim_new(mb, claimed, &claimed_names, &nclaimed);
	/*
	 * Nothing to do when neither directory nor the map changed since
	 * a scan that was not within a second of a change to a directory:
	 * a rename right after our readdir, in the same clock tick, may
	 * leave the directory's mtime as it was, so only an mtime older
	 * than that is trusted (ns precision for the rest).  The stamps
	 * are taken before anything is read: a change after them shows
	 * at the next sync.
	 */
	maildir_dir_stamps(c, now_st);
	(void)store_stamp_path(mb->map.path, &now_st[2]);
	if (nclaimed == 0 && c->scanned &&
	    maildir_stamps_eq(now_st, c->view_st)) {
		ret = 0;
		goto out;
	}
	if (nclaimed == 0 && mb->count == 0 && mb->view_uidvalidity == 0 &&
	    maildir_snap_load(mb, now_st, cb)) {
		ret = 0;
		goto out;
	}
	if (store_uidmap_refresh(&mb->map, error_r) < 0)
		goto out;
	/* Sized once for what the map knows, so the table never grows. */
	maildir_scan_init(&scan, (mb->count > mb->map.count - mb->map.dead ?
	    mb->count : mb->map.count - mb->map.dead) + 64);
	if (maildir_scan(mb, &scan, error_r) < 0)
		goto out;
	/* Messages of the view whose file we did not find. */
	gone = xreallocarray(NULL, mb->count + 1, sizeof(*gone));
	for (i = 0; i < mb->count; i++) {
		size_t bl = maildir_baselen(mb->priv[i].name);

		if (maildir_scan_get(&scan, mb->priv[i].name, bl) == NULL)
			gone[ngone++] = mb->msgs[i].uid;
	}
	if (ngone > 0) {
		/* Once more: readdir can miss a file renamed meanwhile. */
		if (maildir_scan(mb, &scan, error_r) < 0)
			goto out;
		for (i = 0; i < ngone; ) {
			int64_t idx = store_mailbox_find_uid(mb, gone[i]);
			const char *nm = mb->priv[idx].name;

			if (maildir_scan_get(&scan, nm, maildir_baselen(nm)) !=
			    NULL)
				gone[i] = gone[--ngone];
			else
				i++;
		}
	}
	/* Gone and not yet tombstoned by whoever removed it. */
	for (i = 0; i < ngone; ) {
		struct store_uidrec *r = store_uidmap_find_uid(&mb->map,
		    gone[i]);

		if (r == NULL || r->dead)
			gone[i] = gone[--ngone];
		else
			i++;
	}
	msgs = xreallocarray(NULL, scan.count + 1, sizeof(*msgs));
	priv = xreallocarray(NULL, scan.count + 1, sizeof(*priv));
	need_assign = ngone > 0 || !mb->map.exists;
	if (!need_assign) {
		/* Build the view straight away: when every file found a
		 * record, no UID is to be given (the usual case), and the
		 * files were looked up only once. */
		count = maildir_view(mb, &scan, claimed, msgs, priv, &names,
		    &matched);
		if (matched < scan.count)
			need_assign = true;
	}
	if (need_assign) {
		if (maildir_assign(mb, &scan, gone, ngone, error_r) < 0)
			goto out;
		count = maildir_view(mb, &scan, claimed, msgs, priv, &names,
		    &matched);
	}
	maildir_view_names(mb, priv, count, &names);
	store_view_install(mb, msgs, priv, count, cb);
	msgs = NULL;
	priv = NULL;
	/* Remember what this view was built from (see above). */
	c->scanned = now_st[0].sec < (int64_t)start - 1 &&
	    now_st[1].sec < (int64_t)start - 1;
	c->view_st[0] = now_st[0];
	c->view_st[1] = now_st[1];
	maildir_map_stamp(mb, &c->view_st[2]);
	/* A settled view of every file is worth keeping for the next
	 * open (store_snap.c); not when the snapshot has it already. */
	if (c->scanned && count == scan.count &&
	    c->view_st[2].size != UINT64_MAX &&
	    !maildir_stamps_eq(c->view_st, c->snap_st) &&
	    store_snap_write(c->snap_path, c->view_st, mb->map.uidvalidity,
	    mb->map.next_uid, mb->msgs, mb->priv, mb->count) == 0)
		memcpy(c->snap_st, c->view_st, sizeof(c->snap_st));
	ret = 0;
out:
	for (i = 0; i < nclaimed; i++)
		free(claimed_names[i]);
	free(claimed_names);
	store_hash_free(&claimed);
	big = scan.count > STORE_TRIM_SCAN;
	maildir_scan_free(&scan);
	free(gone);
	free(msgs);
	free(priv);
	buf_free(&names);
#ifdef __GLIBC__
	/* A large listing freed megabytes the process (which serves its
	 * user for long) would otherwise keep: give them back. */
	if (big)
		(void)malloc_trim(0);
#endif
	return ret;
}

/* ---- messages ---- */

static int
maildir_msg_open(struct store_mailbox *mb, uint32_t idx, int *fd_r,
    off_t *off_r, off_t *len_r, const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct store_msg_priv *p = &mb->priv[idx];
	struct maildir_ent e;
	struct stat st;
	char *path;
	int fd;

	e.name = p->name;
	e.in_new = p->in_new;
	path = maildir_path(c, &e);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* Renamed by another process (flags): look it up. */
		char *name;
		bool in_new;

		if (maildir_find_base(mb, p->name, maildir_baselen(p->name),
		    &name, &in_new)) {
			store_view_name_free(mb, p->name);
			p->name = name;
			p->in_new = in_new;
			e.name = p->name;
			e.in_new = in_new;
			free(path);
			path = maildir_path(c, &e);
			fd = open(path, O_RDONLY | O_CLOEXEC);
		}
	}
	if (fd < 0) {
		if (errno == ENOENT)
			*error_r = store_error(&mb->error, "Message %u was "
			    "expunged", mb->msgs[idx].uid);
		else
			*error_r = maildir_err(mb, "open", path);
		free(path);
		return -1;
	}
	free(path);
	if (fstat(fd, &st) < 0) {
		*error_r = store_error(&mb->error, "fstat failed: %s",
		    strerror(errno));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	*off_r = 0;
	*len_r = st.st_size;
	return 0;
}

/* The info part for flags and keywords, keeping letters we do not
 * model (P, and any other) from the old name; ASCII order as the
 * Maildir specification asks. */
static void
maildir_info(const char *old, uint32_t flags, uint64_t keywords,
    char *out, size_t outsize)
{
	static const char sys[] = "DFRST";
	const char *info = strchr(old, ':');
	bool have[128];
	size_t o = 0;
	int ch;

	memset(have, 0, sizeof(have));
	if (info != NULL && strncmp(info, ":2,", 3) == 0) {
		for (info += 3; *info != '\0'; info++) {
			unsigned char u = (unsigned char)*info;

			if (u < 128 && u > ' ' && u != ',' && u != '/' &&
			    strchr(sys, u) == NULL && !(u >= 'a' && u <= 'z'))
				have[u] = true;
		}
	}
	for (ch = 0; sys[ch] != '\0'; ch++)
		if ((flags & store_maildir_letter_flag(sys[ch])) != 0)
			have[(unsigned char)sys[ch]] = true;
	for (ch = 0; ch < STORE_MAX_KEYWORDS; ch++)
		if ((keywords & (1ULL << ch)) != 0)
			have['a' + ch] = true;
	for (ch = 33; ch < 127 && o + 1 < outsize; ch++)
		if (have[ch])
			out[o++] = (char)ch;
	out[o] = '\0';
}

static int
maildir_set_flags(struct store_mailbox *mb, uint32_t idx, uint32_t flags,
    uint64_t keywords, int mode, uint32_t *flags_r, uint64_t *kw_r,
    const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	struct store_msg_priv *p = &mb->priv[idx];
	size_t baselen = maildir_baselen(p->name);
	char info[128], *newname, *from, *to, *name;
	bool in_new;
	int tries, e;

	for (tries = 0; tries < 2; tries++) {
		/* From the flags of the name as we know it now. */
		maildir_parse_info(p->name, flags_r, kw_r);
		store_flags_apply(flags_r, kw_r, flags, keywords, mode);
		maildir_info(p->name, *flags_r, *kw_r, info, sizeof(info));
		newname = xasprintf("%.*s:2,%s", (int)baselen, p->name, info);
		from = xasprintf("%s/%s", p->in_new ? c->new : c->cur,
		    p->name);
		to = xasprintf("%s/%s", c->cur, newname);
		if (strcmp(from, to) == 0 || rename(from, to) == 0) {
			free(from);
			free(to);
			store_view_name_free(mb, p->name);
			p->name = newname;
			p->in_new = false;
			return 0;
		}
		e = errno;
		free(newname);
		if (e != ENOENT) {
			*error_r = store_error(&mb->error, "rename(%s, %s) "
			    "failed: %s", from, to, strerror(e));
			free(from);
			free(to);
			return -1;
		}
		free(from);
		free(to);
		/* Renamed by another process meanwhile (its own flag
		 * change): start again from its current name, so that
		 * change is kept. */
		if (tries > 0 || !maildir_find_base(mb, p->name, baselen,
		    &name, &in_new))
			break;
		store_view_name_free(mb, p->name);
		p->name = name;
		p->in_new = in_new;
	}
	/* Expunged meanwhile: nothing to flag; the next sync reports it
	 * (RFC 3501 §6.4.6 lets STORE on such a message be ignored). */
	return 0;
}

static int
maildir_expunge_uids(struct store_mailbox *mb, const uint32_t *uids,
    size_t count, const char **error_r)
{
	struct maildir_ctx *c = mb->be_ctx;
	uint32_t *done = xreallocarray(NULL, count, sizeof(*done));
	size_t i, ndone = 0;
	int ret = 0;

	for (i = 0; i < count && ret == 0; i++) {
		int64_t idx = store_mailbox_find_uid(mb, uids[i]);
		struct store_msg_priv *p;
		char *path, *name;
		bool in_new;

		if (idx < 0)
			continue;	/* not in the view: nothing of ours */
		p = &mb->priv[idx];
		path = xasprintf("%s/%s", p->in_new ? c->new : c->cur,
		    p->name);
		if (unlink(path) < 0) {
			if (errno != ENOENT) {
				*error_r = maildir_err(mb, "unlink", path);
				ret = -1;
			} else if (maildir_find_base(mb, p->name,
			    maildir_baselen(p->name), &name, &in_new)) {
				/* Renamed by someone else meanwhile. */
				free(path);
				path = xasprintf("%s/%s", in_new ? c->new :
				    c->cur, name);
				free(name);
				if (unlink(path) < 0 && errno != ENOENT) {
					*error_r = maildir_err(mb, "unlink",
					    path);
					ret = -1;
				}
			}
		}
		free(path);
		if (ret == 0)
			done[ndone++] = uids[i];
	}
	/* Tombstones: the names are free for new UIDs from now on.  A
	 * failure here is repaired by the next sync of any view. */
	if (ndone > 0) {
		const char *err;

		if (store_uidmap_lock(&mb->map, &err) == 0) {
			for (i = 0; i < ndone; i++)
				store_uidmap_expunge(&mb->map, done[i]);
			if (store_uidmap_commit(&mb->map, false, &err) < 0)
				log_error("%s", err);
			store_uidmap_unlock(&mb->map);
		} else
			log_error("%s", err);
	}
	free(done);
	return ret;
}

const struct store_backend store_maildir_backend = {
	.open = maildir_open,
	.close = maildir_close,
	.sync = maildir_sync,
	.notify_fd = maildir_notify_fd,
	.msg_open = maildir_msg_open,
	.set_flags = maildir_set_flags,
	.expunge_uids = maildir_expunge_uids,
};
