/*
 * imap_cmd_list: the mailbox namespace: LIST (RFC 9051 §6.3.9, with the
 * LIST-EXTENDED selection and return options of RFC 5258, LIST-STATUS of
 * RFC 5819, the special-use attributes of RFC 6154 and the child
 * attributes of RFC 3348), LSUB (RFC 3501 §6.3.9), CREATE, DELETE,
 * RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.4 to §6.3.8).
 *
 * One personal namespace with "/" between levels (NAMESPACE says so).
 * Names reach the store in modified UTF-7 (imap_name_to_store()); the
 * listing turns the store's names back into UTF-8 to match them against
 * the client's patterns, and into modified UTF-7 again for the wire.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "imap.h"
#include "log.h"
#include "store.h"
#include "str.h"
#include "xmalloc.h"

/* Patterns longer than this match nothing (the matcher is quadratic). */
#define IMAP_LIST_MAX_PATTERN	512
/* The special-use file: at most this many bytes are read. */
#define IMAP_USES_MAX_FILE	(64 * 1024)
/* Its name in the Maildir root (mbox: the folder directory, hidden). */
#define IMAP_USES_FILE		"postern-special-use"

/*
 * Special-use attributes given by CREATE (RFC 6154 §3) are kept in a
 * small file of the store root, one line per mailbox: "ATTRS<TAB>NAME"
 * (store name; attributes separated by spaces).  The default folders
 * (IMAP_SPECIAL_FOLDERS: Drafts, Sent, Trash, Junk, Archive at the top)
 * keep their use by name without an entry, so a Maildir made by another
 * server shows them too.
 */
struct imap_uses {
	char		**names;
	char		**attrs;
	size_t		 n;
};

static char *
imap_uses_path(struct imap_session *s)
{
	const struct store_location *loc = store_user_location(s->u->su);

	if (loc->root == NULL)
		return NULL;
	return xasprintf("%s/%s%s", loc->root,
	    loc->format == STORE_FORMAT_MBOX ? "." : "", IMAP_USES_FILE);
}

static void
imap_uses_free(struct imap_uses *u)
{
	size_t i;

	for (i = 0; i < u->n; i++) {
		free(u->names[i]);
		free(u->attrs[i]);
	}
	free(u->names);
	free(u->attrs);
	memset(u, 0, sizeof(*u));
}

static void
imap_uses_add(struct imap_uses *u, const char *name, const char *attrs)
{
	u->names = xreallocarray(u->names, u->n + 1, sizeof(*u->names));
	u->attrs = xreallocarray(u->attrs, u->n + 1, sizeof(*u->attrs));
	u->names[u->n] = xstrdup(name);
	u->attrs[u->n] = xstrdup(attrs);
	u->n++;
}

/* Read the file (a missing or unreadable one is an empty list). */
static void
imap_uses_load(struct imap_session *s, struct imap_uses *u)
{
	char *path = imap_uses_path(s), *buf, *line, *nl, *tab;
	struct stat st;
	ssize_t n;
	int fd;

	memset(u, 0, sizeof(*u));
	if (path == NULL)
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > IMAP_USES_MAX_FILE) {
		if (fd >= 0) {
			log_warning("imap(%s): %s: not a regular file or too "
			    "large: ignored", s->log_user, path);
			close(fd);
		}
		free(path);
		return;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	do
		n = read(fd, buf, (size_t)st.st_size);
	while (n < 0 && errno == EINTR);
	close(fd);
	free(path);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	for (line = buf; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;		/* a partial last line: ignored */
		*nl = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL || tab == line || tab[1] == '\0')
			continue;
		*tab = '\0';
		imap_uses_add(u, tab + 1, line);
	}
	free(buf);
}

/* Replace the file with u (written aside, then renamed). */
static int
imap_uses_save(struct imap_session *s, const struct imap_uses *u,
    const char **error_r)
{
	static char err[300];
	char *path = imap_uses_path(s), *tmp;
	struct buf b;
	size_t i;
	int fd, ret = 0;

	if (path == NULL) {
		*error_r = "the mail location has no folder directory";
		return -1;
	}
	buf_init(&b, 0);
	for (i = 0; i < u->n; i++)
		buf_printf(&b, "%s\t%s\n", u->attrs[i], u->names[i]);
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0 || fdio_write_all(fd, b.data, b.len) < 0 ||
	    fsync(fd) < 0 || close(fd) < 0 || (fd = -1, rename(tmp,
	    path) < 0)) {
		snprintf(err, sizeof(err), "writing %s failed: %s", path,
		    strerror(errno));
		*error_r = err;
		if (fd >= 0)
			close(fd);
		(void)unlink(tmp);
		ret = -1;
	}
	buf_free(&b);
	free(tmp);
	free(path);
	return ret;
}

static ssize_t
imap_uses_find(const struct imap_uses *u, const char *store_name)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcmp(u->names[i], store_name) == 0)
			return (ssize_t)i;
	return -1;
}

/* Drop the entry of name, and rename those at and below it (RENAME:
 * to is the new name; DELETE: NULL drops only name itself). */
static void
imap_uses_moved(struct imap_session *s, const char *from, const char *to)
{
	struct imap_uses u;
	const char *error;
	size_t i, flen = strlen(from);
	bool changed = false;

	imap_uses_load(s, &u);
	for (i = 0; i < u.n; i++) {
		char *old = u.names[i];

		if (strcmp(old, from) == 0 && to == NULL) {
			free(u.names[i]);
			free(u.attrs[i]);
			u.names[i] = u.names[u.n - 1];
			u.attrs[i] = u.attrs[u.n - 1];
			u.n--;
			i--;
			changed = true;
		} else if (to != NULL && strncmp(old, from, flen) == 0 &&
		    (old[flen] == '\0' || old[flen] == '/')) {
			u.names[i] = xasprintf("%s%s", to, old + flen);
			free(old);
			changed = true;
		}
	}
	if (changed && imap_uses_save(s, &u, &error) < 0)
		log_error("imap(%s): %s", s->log_user, error);
	imap_uses_free(&u);
}

/* ---- patterns (RFC 9051 §6.3.9: '*' anything, '%' not the '/') ---- */

static bool
imap_list_match(const char *name, const char *pat)
{
	size_t n = strlen(name), m = strlen(pat), i, j;
	bool *prev, *cur, *t, ok;

	if (m > IMAP_LIST_MAX_PATTERN)
		return false;
	/* prev[j]: name[0..i) matches pat[0..j). */
	prev = xcalloc(m + 1, sizeof(*prev));
	cur = xcalloc(m + 1, sizeof(*cur));
	prev[0] = true;
	for (j = 1; j <= m; j++)
		prev[j] = prev[j - 1] && (pat[j - 1] == '*' ||
		    pat[j - 1] == '%');
	for (i = 1; i <= n; i++) {
		cur[0] = false;
		for (j = 1; j <= m; j++) {
			char pc = pat[j - 1], nc = name[i - 1];

			if (pc == '*')
				cur[j] = cur[j - 1] || prev[j];
			else if (pc == '%')
				cur[j] = cur[j - 1] || (prev[j] && nc != '/');
			else
				cur[j] = prev[j - 1] && pc == nc;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	ok = prev[m];
	free(prev);
	free(cur);
	return ok;
}

/* reference + pattern, with a leading "inbox" spelled as the name is. */
static char *
imap_list_pattern(const char *ref, const char *pat)
{
	char *full = xasprintf("%s%s", ref, pat);

	if (strncasecmp(full, "INBOX", 5) == 0 &&
	    (full[5] == '\0' || full[5] == '/'))
		memcpy(full, "INBOX", 5);
	return full;
}

/* ---- names on the wire ---- */

void
imap_session_name_write(struct imap_session *s, struct buf *out,
    const char *utf8)
{
	const char *p;

	if (!s->utf8_accept) {
		imap_name_write(out, utf8);
		return;
	}
	/* Names hold no control characters (imap_name_to_store()), so a
	 * quoted string always does. */
	buf_append_char(out, '"');
	for (p = utf8; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, *p);
	}
	buf_append_char(out, '"');
}

/* ---- the entries ---- */

struct imap_list_entry {
	char		*name;		/* UTF-8 */
	char		*store;		/* store name */
	unsigned int	 flags;		/* STORE_FOLDER_* */
	bool		 exists;	/* a folder (maybe \Noselect) */
	bool		 subscribed;
	bool		 child_subscribed;
};

struct imap_list {
	struct imap_list_entry *e;
	size_t		 n;
};

static int
imap_list_entry_cmp(const void *a, const void *b)
{
	const struct imap_list_entry *x = a, *y = b;

	if (strcmp(x->name, "INBOX") == 0)
		return strcmp(y->name, "INBOX") == 0 ? 0 : -1;
	if (strcmp(y->name, "INBOX") == 0)
		return 1;
	return strcmp(x->name, y->name);
}

/* The entry name among the first n (sorted) entries of l. */
static struct imap_list_entry *
imap_list_find(struct imap_list *l, size_t n, const char *name)
{
	struct imap_list_entry key;

	memset(&key, 0, sizeof(key));
	key.name = (char *)name;
	return bsearch(&key, l->e, n, sizeof(*l->e), imap_list_entry_cmp);
}

static void
imap_list_free(struct imap_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->e[i].name);
		free(l->e[i].store);
	}
	free(l->e);
	l->e = NULL;
	l->n = 0;
}

/* Folders and subscriptions as one sorted list. */
static int
imap_list_build(struct imap_session *s, struct imap_list *l,
    const char **error_r)
{
	struct store_folder *f;
	size_t nf, i, nsorted;
	char **subs;
	bool exists;

	memset(l, 0, sizeof(*l));
	if (store_folder_list(s->u->su, &f, &nf, error_r) < 0)
		return -1;
	if (store_subscriptions_read(s->u->su, &subs, &exists, error_r) < 0) {
		store_folder_list_free(&f, nf);
		return -1;
	}
	l->e = xcalloc(nf + strv_len(subs) + 1, sizeof(*l->e));
	for (i = 0; i < nf; i++) {
		char *u8 = strcmp(f[i].name, "INBOX") == 0 ? xstrdup("INBOX") :
		    imap_name_from_store(f[i].name);

		/* A name on disk that is not modified UTF-7 (written by
		 * another program) cannot be named by clients: skip. */
		if (u8 == NULL)
			continue;
		l->e[l->n].name = u8;
		l->e[l->n].store = xstrdup(f[i].name);
		l->e[l->n].flags = f[i].flags;
		l->e[l->n].exists = (f[i].flags &
		    STORE_FOLDER_NONEXISTENT) == 0;
		l->n++;
	}
	store_folder_list_free(&f, nf);
	qsort(l->e, l->n, sizeof(*l->e), imap_list_entry_cmp);
	/* Subscribed names that are not folders come after these. */
	nsorted = l->n;
	for (i = 0; subs[i] != NULL; i++) {
		char *u8 = strcmp(subs[i], "INBOX") == 0 ? xstrdup("INBOX") :
		    imap_name_from_store(subs[i]);
		struct imap_list_entry *e;

		if (u8 == NULL)
			continue;
		if ((e = imap_list_find(l, nsorted, u8)) != NULL) {
			e->subscribed = true;
			free(u8);
			continue;
		}
		e = &l->e[l->n++];
		e->name = u8;
		e->store = xstrdup(subs[i]);
		e->flags = STORE_FOLDER_NONEXISTENT | STORE_FOLDER_NOSELECT;
		e->subscribed = true;
	}
	strv_free(&subs);
	qsort(l->e, l->n, sizeof(*l->e), imap_list_entry_cmp);
	/* Parents of subscribed names (RFC 5258 §3.5 CHILDINFO). */
	for (i = 0; i < l->n; i++) {
		char *copy, *slash;

		if (!l->e[i].subscribed)
			continue;
		copy = xstrdup(l->e[i].name);
		while ((slash = strrchr(copy, '/')) != NULL) {
			struct imap_list_entry *p;

			*slash = '\0';
			if ((p = imap_list_find(l, l->n, copy)) != NULL)
				p->child_subscribed = true;
		}
		free(copy);
	}
	return 0;
}

/* RFC 6154 §2: the special use of a top-level folder, by its name. */
static const char *
imap_list_default_use(const char *name)
{
	static const struct {
		const char	*name;
		const char	*attr;
	} uses[] = {
		{ "Drafts", "\\Drafts" },
		{ "Sent", "\\Sent" },
		{ "Trash", "\\Trash" },
		{ "Junk", "\\Junk" },
		{ "Archive", "\\Archive" },
	};
	size_t i;

	for (i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		if (strcmp(name, uses[i].name) == 0)
			return uses[i].attr;
	return NULL;
}

/* The use of a listed mailbox: what CREATE gave it, else its name's. */
static const char *
imap_list_special_use(const struct imap_uses *u,
    const struct imap_list_entry *e)
{
	ssize_t i = imap_uses_find(u, e->store);

	if (i >= 0)
		return u->attrs[i];
	return imap_list_default_use(e->name);
}

static void
imap_list_attrs(struct imap_session *s, const struct imap_list_entry *e,
    const struct imap_uses *uses, bool show_subscribed, bool extended,
    struct buf *b)
{
	const char *use = e->exists ? imap_list_special_use(uses, e) : NULL;
	size_t start = b->len;

#define ATTR(x) do { \
	if (b->len > start) \
		buf_append_char(b, ' '); \
	buf_append_str(b, (x)); \
} while (0)
	if ((e->flags & STORE_FOLDER_NONEXISTENT) != 0) {
		/* RFC 9051 §7.3.1: \NonExistent implies \Noselect; an
		 * IMAP4rev1 client knows only the latter, unless it asked
		 * in the extended way (RFC 5258 §3.4: "MUST be supported
		 * and accurately computed"). */
		ATTR(s->rev2 || extended ? "\\NonExistent" : "\\Noselect");
	} else if ((e->flags & STORE_FOLDER_NOSELECT) != 0)
		ATTR("\\Noselect");
	/* RFC 3348 */
	ATTR((e->flags & STORE_FOLDER_CHILDREN) != 0 ? "\\HasChildren" :
	    "\\HasNoChildren");
	if (show_subscribed && e->subscribed)
		ATTR("\\Subscribed");
	if (use != NULL)
		ATTR(use);
#undef ATTR
}

static void
imap_list_line(struct imap_session *s, const char *what,
    const struct imap_list_entry *e, const struct imap_uses *uses,
    bool show_subscribed, bool extended, bool childinfo,
    unsigned int status)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "* %s (", what);
	imap_list_attrs(s, e, uses, show_subscribed, extended, &b);
	buf_append_str(&b, ") \"/\" ");
	imap_session_name_write(s, &b, e->name);
	if (childinfo)
		buf_append_str(&b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	imap_reply(s, "%s", buf_cstr(&b));
	/* RFC 5819: the STATUS of each selectable mailbox listed. */
	if (status != 0 && e->exists &&
	    (e->flags & STORE_FOLDER_NOSELECT) == 0) {
		struct imap_mbox *m;
		const char *error;
		int kind;

		m = imap_status_open(s, e->store, &kind, &error);
		if (m != NULL) {
			buf_reset(&b);
			buf_append_str(&b, "* STATUS ");
			imap_session_name_write(s, &b, e->name);
			buf_append_str(&b, " (");
			imap_status_items(s, m, status, &b);
			buf_append_char(&b, ')');
			imap_reply(s, "%s", buf_cstr(&b));
			imap_mbox_unref(&m);
		}
	}
	buf_free(&b);
}

void
imap_cmd_list(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_list *c = &cmd->u.list;
	bool lsub = cmd->type == IMAP_CMD_LSUB;
	bool sel_sub = (c->select & IMAP_LIST_SEL_SUBSCRIBED) != 0;
	bool recursive = (c->select & IMAP_LIST_SEL_RECURSIVEMATCH) != 0;
	bool sel_use = (c->select & IMAP_LIST_SEL_SPECIAL_USE) != 0;
	bool show_sub = sel_sub || (c->ret & IMAP_LIST_RET_SUBSCRIBED) != 0;
	unsigned int status = (c->ret & IMAP_LIST_RET_STATUS) != 0 ?
	    c->status : 0;
	struct imap_list l;
	struct imap_uses uses;
	const char *error;
	struct buf lb;
	char **pats;
	size_t i, j;

	if (c->pattern_count == 1 && c->patterns[0][0] == '\0' &&
	    !c->extended) {
		/* RFC 9051 §6.3.9: the delimiter and the root. */
		imap_reply(s, "* %s (\\Noselect) \"/\" \"\"", lsub ? "LSUB" :
		    "LIST");
		imap_tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
		return;
	}
	if (recursive && !sel_sub) {
		/* RFC 5258 §3.1: RECURSIVEMATCH needs another option. */
		imap_tagged(s, "BAD", "RECURSIVEMATCH needs SUBSCRIBED.");
		(void)imap_session_bad(s);
		return;
	}
	if (imap_list_build(s, &l, &error) < 0) {
		imap_tagged_fail(s, "LIST", error);
		return;
	}
	imap_uses_load(s, &uses);
	buf_init(&lb, 0);
	pats = xcalloc(c->pattern_count + 1, sizeof(*pats));
	for (i = 0; i < c->pattern_count; i++)
		pats[i] = imap_list_pattern(c->reference, c->patterns[i]);
	for (i = 0; i < l.n; i++) {
		struct imap_list_entry *e = &l.e[i];
		bool match = false, childinfo = false;

		for (j = 0; j < c->pattern_count && !match; j++)
			match = imap_list_match(e->name, pats[j]);
		if (!match)
			continue;
		if (lsub) {
			/* RFC 3501 §6.3.9: a parent of a subscribed name
			 * that is not itself subscribed is \Noselect; LSUB
			 * says nothing else about the names. */
			if (!e->subscribed && !e->child_subscribed)
				continue;
			buf_reset(&lb);
			buf_printf(&lb, "* LSUB (%s) \"/\" ", e->subscribed ?
			    "" : "\\Noselect");
			imap_session_name_write(s, &lb, e->name);
			imap_reply(s, "%s", buf_cstr(&lb));
			continue;
		}
		if (sel_sub && !e->subscribed) {
			if (!(recursive && e->child_subscribed))
				continue;
			childinfo = true;
		}
		if (!sel_sub && (e->flags & STORE_FOLDER_NONEXISTENT) != 0 &&
		    !e->exists && (e->flags & STORE_FOLDER_CHILDREN) == 0)
			continue;	/* only subscribed, not there */
		if (sel_use && (!e->exists ||
		    imap_list_special_use(&uses, e) == NULL))
			continue;
		imap_list_line(s, "LIST", e, &uses, show_sub,
		    c->extended || c->select != 0, childinfo, status);
	}
	for (i = 0; i < c->pattern_count; i++)
		free(pats[i]);
	free(pats);
	buf_free(&lb);
	imap_list_free(&l);
	imap_uses_free(&uses);
	imap_tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE ---- */

static bool
imap_store_name(struct imap_session *s, const char *utf8, struct buf *out)
{
	buf_init(out, 0);
	if (imap_name_to_store(utf8, out) < 0) {
		buf_free(out);
		imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name.");
		return false;
	}
	return true;
}

/*
 * The MAILBOXID of a folder just made, for CREATE's OK (RFC 8474 §4.1):
 * its first sync makes the UID map, which holds the id.  false when
 * there is none to give (a name ending in the separator makes no
 * mailbox in mbox; a map that cannot be written): the code is then left
 * out rather than an id given that would change later.
 */
static bool
imap_create_id(struct imap_session *s, const char *name, char *id,
    size_t size)
{
	struct store_mailbox *mb;
	const char *error, *guid = NULL;
	char *plain = xstrdup(name);
	size_t len = strlen(plain);
	int r;

	/* "a/" (RFC 3501 §6.3.3) made the mailbox "a" in Maildir. */
	if (len > 1 && plain[len - 1] == '/')
		plain[len - 1] = '\0';
	r = store_mailbox_open(s->u->su, plain, 0, &mb, &error);
	free(plain);
	if (r < 0)
		return false;
	if (store_mailbox_sync(mb, NULL, &error) == 0)
		guid = store_mailbox_guid(mb);
	if (guid != NULL)
		(void)snprintf(id, size, "%s", guid);
	store_mailbox_close(&mb);
	return guid != NULL;
}

void
imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
	char id[IMAP_OBJECTID_MAX];
	const struct imap_cmd_create *c = &cmd->u.create;
	const char *error = "";
	struct buf name, attrs;
	struct imap_uses uses;
	int r;

	if (!imap_store_name(s, c->mailbox, &name))
		return;
	buf_init(&attrs, 0);
	if (c->use != 0) {
		/* RFC 6154 §3: the uses of real mailboxes can be given to
		 * any name; \All and \Flagged are virtual mailboxes we do
		 * not have, and extension uses we do not know. */
		static const struct {
			unsigned int	 bit;
			const char	*attr;
		} bits[] = {
			{ IMAP_USE_ARCHIVE, "\\Archive" },
			{ IMAP_USE_DRAFTS, "\\Drafts" },
			{ IMAP_USE_JUNK, "\\Junk" },
			{ IMAP_USE_SENT, "\\Sent" },
			{ IMAP_USE_TRASH, "\\Trash" },
		};
		size_t i;

		if ((c->use & (IMAP_USE_ALL | IMAP_USE_FLAGGED |
		    IMAP_USE_OTHER)) != 0 || strcmp(buf_cstr(&name),
		    "INBOX") == 0 || store_user_location(s->u->su)->root ==
		    NULL) {
			buf_free(&name);
			buf_free(&attrs);
			imap_tagged(s, "NO", "[USEATTR] This special use is "
			    "not supported here.");
			return;
		}
		for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
			if ((c->use & bits[i].bit) != 0) {
				if (attrs.len > 0)
					buf_append_char(&attrs, ' ');
				buf_append_str(&attrs, bits[i].attr);
			}
	}
	r = store_folder_create(s->u->su, buf_cstr(&name), &error);
	if (r == 0 && attrs.len > 0) {
		/* Kept only once the folder exists; a folder whose use
		 * cannot be kept is removed again (RFC 6154 §3: no
		 * mailbox without its use). */
		ssize_t k;

		imap_uses_load(s, &uses);
		/* An entry left by a folder deleted outside is replaced. */
		if ((k = imap_uses_find(&uses, buf_cstr(&name))) < 0)
			imap_uses_add(&uses, buf_cstr(&name),
			    buf_cstr(&attrs));
		else {
			free(uses.attrs[k]);
			uses.attrs[k] = xstrdup(buf_cstr(&attrs));
		}
		if (imap_uses_save(s, &uses, &error) < 0) {
			const char *e2;

			log_error("imap(%s): CREATE: %s", s->log_user, error);
			(void)store_folder_delete(s->u->su, buf_cstr(&name),
			    &e2);
			r = STORE_ERR_TEMP;
		}
		imap_uses_free(&uses);
	} else if (r == 0)
		imap_uses_moved(s, buf_cstr(&name), NULL);	/* stale */
	if (r == 0 && !imap_create_id(s, buf_cstr(&name), id, sizeof(id)))
		id[0] = '\0';
	buf_free(&attrs);
	buf_free(&name);
	switch (r) {
	case 0:
		if (id[0] != '\0')
			imap_tagged(s, "OK", "[MAILBOXID (%s)] Create "
			    "completed.", id);
		else
			imap_tagged(s, "OK", "Create completed.");
		break;
	case STORE_ERR_EXISTS:
		imap_tagged(s, "NO", "[ALREADYEXISTS] Mailbox already "
		    "exists.");
		break;
	case STORE_ERR_CANNOT:
		imap_tagged(s, "NO", "[CANNOT] %s.", error);
		break;
	default:
		imap_tagged_fail(s, "CREATE", error);
		break;
	}
}

void
imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error = "";
	struct buf name;
	int r;

	if (!imap_store_name(s, cmd->u.mailbox.mailbox, &name))
		return;
	if (s->sel != NULL && strcmp(s->sel->name, buf_cstr(&name)) == 0) {
		buf_free(&name);
		imap_tagged(s, "NO", "[INUSE] Can't delete the selected "
		    "mailbox.");
		return;
	}
	r = store_folder_delete(s->u->su, buf_cstr(&name), &error);
	if (r == 0) {
		imap_mbox_gone(s->u, buf_cstr(&name));
		imap_uses_moved(s, buf_cstr(&name), NULL);
	}
	buf_free(&name);
	switch (r) {
	case 0:
		imap_tagged(s, "OK", "Delete completed.");
		break;
	case STORE_ERR_NONEXISTENT:
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
		break;
	case STORE_ERR_CANNOT:
		imap_tagged(s, "NO", "[%s] %s.", strstr(error, "children") !=
		    NULL ? "HASCHILDREN" : "CANNOT", error);
		break;
	default:
		imap_tagged_fail(s, "DELETE", error);
		break;
	}
}

void
imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error = "";
	struct buf from, to;
	int r;

	if (!imap_store_name(s, cmd->u.rename.from, &from))
		return;
	if (!imap_store_name(s, cmd->u.rename.to, &to)) {
		buf_free(&from);
		return;
	}
	r = store_folder_rename(s->u->su, buf_cstr(&from), buf_cstr(&to),
	    &error);
	if (r == 0) {
		imap_mbox_gone(s->u, buf_cstr(&from));
		/* RENAME INBOX moves messages, not the use (it has none). */
		imap_uses_moved(s, buf_cstr(&from), buf_cstr(&to));
	}
	buf_free(&from);
	buf_free(&to);
	switch (r) {
	case 0:
		imap_tagged(s, "OK", "Rename completed.");
		break;
	case STORE_ERR_EXISTS:
		imap_tagged(s, "NO", "[ALREADYEXISTS] Target mailbox already "
		    "exists.");
		break;
	case STORE_ERR_NONEXISTENT:
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
		break;
	case STORE_ERR_CANNOT:
		imap_tagged(s, "NO", "[CANNOT] %s.", error);
		break;
	default:
		imap_tagged_fail(s, "RENAME", error);
		break;
	}
}

void
imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd)
{
	bool on = cmd->type == IMAP_CMD_SUBSCRIBE;
	const char *error = "";
	struct buf name;
	int r;

	if (!imap_store_name(s, cmd->u.mailbox.mailbox, &name))
		return;
	r = store_subscription_set(s->u->su, buf_cstr(&name), on, &error);
	buf_free(&name);
	if (r == 0)
		imap_tagged(s, "OK", "%s completed.", on ? "Subscribe" :
		    "Unsubscribe");
	else if (r == STORE_ERR_CANNOT)
		imap_tagged(s, "NO", "[CANNOT] %s.", error);
	else
		imap_tagged_fail(s, on ? "SUBSCRIBE" : "UNSUBSCRIBE", error);
}
