/*
 * store: the backend-independent half of the mail store (store.h):
 * mail_location parsing (shared with local), users, opening a mailbox by
 * name, the view of a mailbox and what changed between two views.
 * Reading the disk is the backends' work (store_maildir.c,
 * store_mbox.c); reading a message is store_msg.c's.
 *
 * Mailbox names: "INBOX" in any case, or a folder name with '/' as the
 * hierarchy separator.  Maildir++ stores folder "a/b" as "ROOT/.a.b", so
 * a Maildir folder name may not contain '.'; an mbox folder "a/b" is the
 * file "ROOT/a/b".  Names are checked here so that no name can leave the
 * root (no "..", no empty or hidden component, no control character).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "str.h"
#include "store_private.h"
#include "xmalloc.h"

/* Longest folder name accepted (a file name component is 255). */
#define STORE_MAX_NAME		200

const char *
store_error(char **slot, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		log_panic("out of memory");
	va_end(ap);
	free(*slot);
	*slot = s;
	return s;
}

int
store_mkdirs(const char *dir)
{
	char *copy, *p;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -1;
	copy = xstrdup(dir);
	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* ---- mail_location ---- */

static bool
store_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int
store_location_parse(const char *location, const char *user,
    const char *home, const char *spool_dir, struct store_location *loc_r,
    const char **error_r)
{
	static char errbuf[256];
	char **parts, *path = NULL, *root = NULL;
	const char *first = NULL, *inbox = NULL;
	size_t i;

	memset(loc_r, 0, sizeof(*loc_r));
	if (str_starts_case(location, "maildir:"))
		loc_r->format = STORE_FORMAT_MAILDIR;
	else if (str_starts_case(location, "mbox:"))
		loc_r->format = STORE_FORMAT_MBOX;
	else {
		(void)snprintf(errbuf, sizeof(errbuf),
		    "unsupported mail_location: %.100s", location);
		*error_r = errbuf;
		return -1;
	}
	/* Dovecot syntax: TYPE:PATH[:KEY=VALUE]...; INBOX= names the inbox,
	 * other keys (INDEX=, LAYOUT=, ...) are not ours. */
	parts = strv_split(strchr(location, ':') + 1, ":");
	for (i = 0; parts[i] != NULL; i++) {
		if (i == 0 && strchr(parts[i], '=') == NULL)
			first = parts[i];
		else if (str_starts_case(parts[i], "INBOX="))
			inbox = parts[i] + 6;
	}
	if (inbox != NULL || first != NULL)
		path = cfg_expand_user(inbox != NULL ? inbox : first, user,
		    home);
	if (first != NULL)
		root = cfg_expand_user(first, user, home);
	strv_free(&parts);
	if (loc_r->format == STORE_FORMAT_MBOX && path != NULL &&
	    store_is_dir(path)) {
		/*
		 * "mbox:~/Mailbox" (home_mailbox = Mailbox) names the inbox
		 * file; "mbox:~/mail" names a directory of folders, whose
		 * inbox is the spool file, as Dovecot finds it.
		 */
		free(path);
		path = xasprintf("%s/%s", spool_dir, user);
	}
	if (path == NULL || path[0] != '/') {
		(void)snprintf(errbuf, sizeof(errbuf),
		    "mail_location gives no absolute path for %.100s", user);
		*error_r = errbuf;
		free(path);
		free(root);
		return -1;
	}
	if (root != NULL && root[0] != '/') {
		free(root);
		root = NULL;
	}
	if (loc_r->format == STORE_FORMAT_MAILDIR) {
		if (root == NULL)
			root = xstrdup(path);
	} else if (root != NULL && strcmp(root, path) == 0) {
		/* The location names the inbox file itself: no folders. */
		free(root);
		root = NULL;
	}
	if (loc_r->format == STORE_FORMAT_MBOX) {
		size_t sl = strlen(spool_dir);

		loc_r->inbox_in_spool = sl > 0 &&
		    strncmp(path, spool_dir, sl) == 0 && path[sl] == '/' &&
		    strchr(path + sl + 1, '/') == NULL;
	}
	loc_r->inbox = path;
	loc_r->root = root;
	return 0;
}

void
store_location_free(struct store_location *loc)
{
	free(loc->root);
	free(loc->inbox);
	loc->root = loc->inbox = NULL;
}

/* ---- users ---- */

int
store_user_open(const char *location, const char *user, const char *home,
    struct store_user **user_r, const char **error_r)
{
	struct store_user *u = xcalloc(1, sizeof(*u));

	if (store_location_parse(location, user, home,
	    cfg_get("mail_spool_directory"), &u->loc, error_r) < 0) {
		free(u);
		return -1;
	}
	u->user = xstrdup(user);
	u->home = xstrdup(home != NULL ? home : "");
	/*
	 * mbox UID maps live outside the mbox files: in ROOT/.postern,
	 * or for a location without a folder directory in ~/.postern (the
	 * spool directory is not ours to write in).
	 */
	if (u->loc.format == STORE_FORMAT_MBOX) {
		if (u->loc.root != NULL)
			u->index_dir = xasprintf("%s/.postern", u->loc.root);
		else if (u->home[0] == '/')
			u->index_dir = xasprintf("%s/.postern", u->home);
	}
	*user_r = u;
	return 0;
}

void
store_user_close(struct store_user **userp)
{
	struct store_user *u = *userp;

	if (u == NULL)
		return;
	store_location_free(&u->loc);
	free(u->user);
	free(u->home);
	free(u->index_dir);
	free(u->error);
	free(u);
	*userp = NULL;
}

/* ---- mailboxes ---- */

static const char *
store_check_name(const char *name, bool maildir)
{
	const char *p, *comp = name;
	size_t len = strlen(name);

	if (len == 0 || len > STORE_MAX_NAME)
		return "invalid mailbox name length";
	for (p = name; ; p++) {
		if (*p == '/' || *p == '\0') {
			if (p == comp)
				return "empty hierarchy level in mailbox name";
			if (*comp == '.')
				return "mailbox name component starts with '.'";
			if (*p == '\0')
				break;
			comp = p + 1;
			continue;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "control character in mailbox name";
		if (maildir && *p == '.')
			return "'.' is the Maildir++ separator and cannot be "
			    "part of a mailbox name";
	}
	return NULL;
}

int
store_mailbox_open(struct store_user *u, const char *name,
    unsigned int flags, struct store_mailbox **mb_r, const char **error_r)
{
	bool maildir = u->loc.format == STORE_FORMAT_MAILDIR;
	struct store_mailbox *mb;
	struct stat st;
	const char *why;
	char *path;

	if (str_case_eq(name, "INBOX")) {
		path = xstrdup(u->loc.inbox);
		name = "INBOX";
	} else {
		char *dots, *p;

		if ((why = store_check_name(name, maildir)) != NULL) {
			*error_r = store_error(&u->error, "%s", why);
			return -1;
		}
		if (u->loc.root == NULL) {
			*error_r = store_error(&u->error, "Mailbox doesn't "
			    "exist: %s (no folders in this mail_location)",
			    name);
			return -1;
		}
		if (maildir) {
			dots = xstrdup(name);
			for (p = dots; *p != '\0'; p++)
				if (*p == '/')
					*p = '.';
			path = xasprintf("%s/.%s", u->loc.root, dots);
			free(dots);
		} else
			path = xasprintf("%s/%s", u->loc.root, name);
		if (stat(path, &st) < 0 ||
		    (maildir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
			*error_r = store_error(&u->error,
			    "Mailbox doesn't exist: %s", name);
			free(path);
			return -1;
		}
	}
	mb = xcalloc(1, sizeof(*mb));
	mb->user = u;
	mb->be = maildir ? &store_maildir_backend : &store_mbox_backend;
	mb->name = xstrdup(name);
	mb->path = path;
	mb->readonly = (flags & STORE_OPEN_READONLY) != 0;
	mb->unquote = !maildir;
	mb->notify_fd = -1;
	mb->map.lock_fd = -1;	/* the backend's open sets up the map */
	mb->highest_modseq = 1;
	/* The index and cache files beside the UID map (store_index.c,
	 * store_cache.c). */
	if (maildir) {
		char *ip = xasprintf("%s/postern-index", path);

		store_index_init(&mb->index, ip);
		free(ip);
		mb->cache_path = xasprintf("%s/postern-cache", path);
	} else if (u->index_dir != NULL) {
		char *ip = xasprintf("%s/%s.index", u->index_dir, name);

		store_index_init(&mb->index, ip);
		free(ip);
		mb->cache_path = xasprintf("%s/%s.cache", u->index_dir, name);
	} else {
		store_index_init(&mb->index, "");
		mb->index.broken = true;
		mb->cache_path = xstrdup("");
	}
	if (mb->be->open(mb, error_r) < 0 ||
	    mb->be->sync(mb, NULL, error_r) < 0) {
		/* The message lives in the mailbox: copy it to the user. */
		*error_r = store_error(&u->error, "%s", *error_r);
		store_mailbox_close(&mb);
		return -1;
	}
	*mb_r = mb;
	return 0;
}

void
store_mailbox_close(struct store_mailbox **mbp)
{
	struct store_mailbox *mb = *mbp;
	unsigned int i;

	if (mb == NULL)
		return;
	store_cache_free(mb, &mb->cache);
	mb->be->close(mb);
	store_view_clear(mb);
	free(mb->msgs);
	free(mb->priv);
	store_uidmap_deinit(&mb->map);
	store_index_deinit(&mb->index);
	free(mb->cache_path);
	for (i = 0; i < STORE_MAX_KEYWORDS; i++)
		free(mb->keywords[i]);
	if (mb->notify_fd >= 0)
		close(mb->notify_fd);
	free(mb->name);
	free(mb->path);
	free(mb->error);
	free(mb);
	*mbp = NULL;
}

int
store_mailbox_sync(struct store_mailbox *mb, const struct store_sync_cb *cb,
    const char **error_r)
{
	if (mb->be->sync(mb, cb, error_r) < 0)
		return -1;
	store_cache_sync(mb);
	return 0;
}

int
store_mailbox_notify_fd(struct store_mailbox *mb)
{
	return mb->be->notify_fd(mb);
}

uint32_t
store_mailbox_count(const struct store_mailbox *mb)
{
	return mb->count;
}

uint32_t
store_mailbox_uidvalidity(const struct store_mailbox *mb)
{
	return mb->map.uidvalidity;
}

uint32_t
store_mailbox_uidnext(const struct store_mailbox *mb)
{
	uint32_t next = mb->map.next_uid;

	/* What the view has shown is the floor (RFC 3501 §2.3.1.1). */
	if (mb->count > 0 && mb->msgs[mb->count - 1].uid >= next)
		next = mb->msgs[mb->count - 1].uid + 1;
	return next == 0 ? 1 : next;
}

uint64_t
store_mailbox_highestmodseq(const struct store_mailbox *mb)
{
	return mb->highest_modseq;
}

uint32_t
store_mailbox_recent(const struct store_mailbox *mb)
{
	return mb->recent;
}

int64_t
store_mailbox_find_uid(const struct store_mailbox *mb, uint32_t uid)
{
	uint32_t lo = 0, hi = mb->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (mb->msgs[mid].uid == uid)
			return mid;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const struct store_msg *
store_mailbox_msg(const struct store_mailbox *mb, uint32_t idx)
{
	if (idx >= mb->count)
		log_panic("store_mailbox_msg: index %u of %u", idx, mb->count);
	return &mb->msgs[idx];
}

unsigned int
store_keyword_count(const struct store_mailbox *mb)
{
	unsigned int n = STORE_MAX_KEYWORDS;

	while (n > 0 && mb->keywords[n - 1] == NULL)
		n--;
	return n;
}

const char *
store_keyword_name(const struct store_mailbox *mb, unsigned int i)
{
	return i < STORE_MAX_KEYWORDS ? mb->keywords[i] : NULL;
}

void
store_flags_apply(uint32_t *flags, uint64_t *kw, uint32_t set_flags,
    uint64_t set_kw, int mode)
{
	set_flags &= ~STORE_RECENT;
	if (mode > 0) {
		*flags |= set_flags;
		*kw |= set_kw;
	} else if (mode < 0) {
		*flags &= ~set_flags;
		*kw &= ~set_kw;
	} else {
		*flags = set_flags;
		*kw = set_kw;
	}
}

int
store_msg_set_flags(struct store_mailbox *mb, uint32_t idx, uint32_t flags,
    uint64_t keywords, int mode, const char **error_r)
{
	struct store_msg *m;
	uint32_t nf;
	uint64_t nk, modseq;

	if (idx >= mb->count)
		log_panic("store_msg_set_flags: index %u of %u", idx,
		    mb->count);
	if (mb->readonly) {
		*error_r = store_error(&mb->error, "Mailbox is read-only");
		return -1;
	}
	m = &mb->msgs[idx];
	if (mb->be->set_flags(mb, idx, flags & ~STORE_RECENT, keywords, mode,
	    &nf, &nk, error_r) < 0)
		return -1;
	nf &= ~STORE_RECENT;
	if (nf == (m->flags & ~STORE_RECENT) && nk == m->keywords)
		return 0;
	m->flags = nf | (m->flags & STORE_RECENT);
	m->keywords = nk;
	switch (store_index_changed(mb, idx, nf, nk, &modseq)) {
	case 0:
		m->modseq = modseq;
		if (modseq > mb->highest_modseq)
			mb->highest_modseq = modseq;
		break;
	case 1:
		break;	/* expunged meanwhile: gone at the next sync */
	default:
		/* No usable index: modseqs in memory (RFC 7162
		 * §3.1.2.2). */
		m->modseq = ++mb->highest_modseq;
		break;
	}
	return 0;
}

int
store_mailbox_expunge_uids(struct store_mailbox *mb, const uint32_t *uids,
    size_t count, const char **error_r)
{
	if (count == 0)
		return 0;
	if (mb->readonly) {
		*error_r = store_error(&mb->error, "Mailbox is read-only");
		return -1;
	}
	store_quota_expunging(mb, uids, count);	/* maildirsize */
	return mb->be->expunge_uids(mb, uids, count, error_r);
}

/* ---- views ---- */

static bool
store_in_block(const char *block, size_t len, const char *p)
{
	return block != NULL && p >= block && p < block + len;
}

void
store_view_name_free(struct store_mailbox *mb, char *name)
{
	if (!store_in_block(mb->names, mb->names_len, name))
		free(name);
}

void
store_view_clear(struct store_mailbox *mb)
{
	uint32_t i;

	for (i = 0; i < mb->count; i++) {
		store_view_name_free(mb, mb->priv[i].name);
		free(mb->priv[i].key);
	}
	free(mb->names);
	mb->names = NULL;
	mb->names_len = 0;
	mb->count = 0;
	mb->recent = 0;
}

bool
store_view_carry(struct store_mailbox *mb, struct store_msg *nm)
{
	int64_t i = store_mailbox_find_uid(mb, nm->uid);
	const struct store_msg *om;

	if (i < 0) {
		/* The first view starts every modseq at 1 (RFC 7162 §3.1.1
		 * allows any nonzero start). */
		nm->modseq = mb->view_uidvalidity == 0 ? 1 :
		    ++mb->highest_modseq;
		return false;
	}
	om = &mb->msgs[i];
	nm->flags |= om->flags & STORE_RECENT;
	nm->modseq = om->modseq;
	if (((om->flags ^ nm->flags) & ~STORE_RECENT) != 0 ||
	    om->keywords != nm->keywords)
		nm->modseq = ++mb->highest_modseq;
	return true;
}

static void
store_view_report(struct store_mailbox *mb, const struct store_msg *old,
    uint32_t old_count, const struct store_sync_cb *cb)
{
	uint32_t i, j, kept = 0;

	/* Expunges first, highest index first, so each index is still
	 * right when it is reported (RFC 3501 §7.4.1). */
	for (i = old_count; i-- > 0; ) {
		if (store_mailbox_find_uid(mb, old[i].uid) < 0) {
			if (cb != NULL && cb->expunged != NULL)
				cb->expunged(i, old[i].uid, cb->ctx);
		} else
			kept++;
	}
	/* The survivors keep their order and come first in the new view
	 * (the backends give new messages UIDs above every old one). */
	for (i = 0, j = 0; i < old_count && j < mb->count; ) {
		if (old[i].uid < mb->msgs[j].uid) {
			i++;
			continue;
		}
		if (old[i].uid > mb->msgs[j].uid) {
			j++;
			continue;
		}
		if (((old[i].flags ^ mb->msgs[j].flags) & ~STORE_RECENT) != 0 ||
		    old[i].keywords != mb->msgs[j].keywords) {
			if (cb != NULL && cb->flags_changed != NULL)
				cb->flags_changed(j, cb->ctx);
		}
		i++;
		j++;
	}
	if (mb->count > kept && cb != NULL && cb->new_messages != NULL)
		cb->new_messages(mb->count, cb->ctx);
}

void
store_view_install(struct store_mailbox *mb, struct store_msg *msgs,
    struct store_msg_priv *priv, uint32_t count,
    const struct store_sync_cb *cb)
{
	struct store_msg *old = mb->msgs;
	struct store_msg_priv *old_priv = mb->priv;
	char *old_names = mb->names;
	size_t old_names_len = mb->names_len;
	uint32_t old_count = mb->count, i, j, *gone, ngone = 0;
	bool reset = mb->view_uidvalidity != 0 &&
	    mb->view_uidvalidity != mb->map.uidvalidity;
	bool indexed;

	/* Modseqs from the index, which records what is new first. */
	indexed = store_index_view(mb, msgs, count) == 0;
	/* UIDs that left the view: their cache records are dead. */
	gone = xreallocarray(NULL, old_count + 1, sizeof(*gone));
	for (i = 0, j = 0; i < old_count; i++) {
		while (j < count && msgs[j].uid < old[i].uid)
			j++;
		if (reset || j == count || msgs[j].uid != old[i].uid)
			gone[ngone++] = old[i].uid;
	}
	store_cache_expunged(mb, gone, ngone);
	free(gone);

	mb->msgs = msgs;
	mb->priv = priv;
	mb->count = count;
	mb->cap = count;
	mb->names = mb->names_next;
	mb->names_len = mb->names_next_len;
	mb->names_next = NULL;
	mb->names_next_len = 0;
	mb->recent = 0;
	for (i = 0; i < count; i++) {
		if ((msgs[i].flags & STORE_RECENT) != 0)
			mb->recent++;
		if (msgs[i].modseq > mb->highest_modseq)
			mb->highest_modseq = msgs[i].modseq;
	}
	/* The index's HIGHESTMODSEQ counts expunges too, and is what the
	 * next change builds on (the in-memory bumps of store_view_carry()
	 * are only the fallback). */
	if (indexed)
		mb->highest_modseq = mb->index.highest;
	if (reset)
		mb->shown_uid_max = 0;
	if (count > 0 && msgs[count - 1].uid > mb->shown_uid_max)
		mb->shown_uid_max = msgs[count - 1].uid;
	if (reset) {
		/* Every old UID means nothing now: all gone, all new. */
		for (i = old_count; i-- > 0; )
			if (cb != NULL && cb->expunged != NULL)
				cb->expunged(i, old[i].uid, cb->ctx);
		if (count > 0 && cb != NULL && cb->new_messages != NULL)
			cb->new_messages(count, cb->ctx);
	} else
		store_view_report(mb, old, old_count, cb);
	mb->view_uidvalidity = mb->map.uidvalidity;
	for (i = 0; i < old_count; i++) {
		if (!store_in_block(old_names, old_names_len,
		    old_priv[i].name))
			free(old_priv[i].name);
		free(old_priv[i].key);
	}
	free(old_names);
	free(old);
	free(old_priv);
}

void
store_notify_drain(struct store_mailbox *mb)
{
	char buf[4096];

	if (mb->notify_fd < 0)
		return;
	while (read(mb->notify_fd, buf, sizeof(buf)) > 0)
		;
}

uint32_t
store_maildir_letter_flag(char c)
{
	switch (c) {
	case 'D':
		return STORE_DRAFT;
	case 'F':
		return STORE_FLAGGED;
	case 'R':
		return STORE_ANSWERED;
	case 'S':
		return STORE_SEEN;
	case 'T':
		return STORE_DELETED;
	default:
		return 0;
	}
}
