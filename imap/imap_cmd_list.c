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

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap.h"
#include "log.h"
#include "store.h"
#include "str.h"
#include "xmalloc.h"

/* Patterns longer than this match nothing (the matcher is quadratic). */
#define IMAP_LIST_MAX_PATTERN	512

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
imap_list_special_use(const char *name)
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

static void
imap_list_attrs(struct imap_session *s, const struct imap_list_entry *e,
    bool show_subscribed, struct buf *b)
{
	const char *use = e->exists ? imap_list_special_use(e->name) : NULL;
	size_t start = b->len;

#define ATTR(x) do { \
	if (b->len > start) \
		buf_append_char(b, ' '); \
	buf_append_str(b, (x)); \
} while (0)
	if ((e->flags & STORE_FOLDER_NONEXISTENT) != 0) {
		/* RFC 9051 §7.3.1: \NonExistent implies \Noselect; an
		 * IMAP4rev1 client knows only the latter. */
		ATTR(s->rev2 ? "\\NonExistent" : "\\Noselect");
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
    const struct imap_list_entry *e, bool show_subscribed,
    bool childinfo, unsigned int status)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "* %s (", what);
	imap_list_attrs(s, e, show_subscribed, &b);
	buf_append_str(&b, ") \"/\" ");
	imap_name_write(&b, e->name);
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
			imap_name_write(&b, e->name);
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
			imap_name_write(&lb, e->name);
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
		    imap_list_special_use(e->name) == NULL))
			continue;
		imap_list_line(s, "LIST", e, show_sub, childinfo, status);
	}
	for (i = 0; i < c->pattern_count; i++)
		free(pats[i]);
	free(pats);
	buf_free(&lb);
	imap_list_free(&l);
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

void
imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_create *c = &cmd->u.create;
	const char *error = "", *use;
	struct buf name;
	int r;

	if (!imap_store_name(s, c->mailbox, &name))
		return;
	if (c->use != 0) {
		/* RFC 6154 §3: a use we can give this name, or none. */
		static const struct {
			unsigned int	 bit;
			const char	*attr;
		} bits[] = {
			{ IMAP_USE_DRAFTS, "\\Drafts" },
			{ IMAP_USE_SENT, "\\Sent" },
			{ IMAP_USE_TRASH, "\\Trash" },
			{ IMAP_USE_JUNK, "\\Junk" },
			{ IMAP_USE_ARCHIVE, "\\Archive" },
		};
		size_t i;
		bool ok = false;

		use = imap_list_special_use(buf_cstr(&name));
		for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
			if (c->use == bits[i].bit && use != NULL &&
			    strcmp(use, bits[i].attr) == 0)
				ok = true;
		if (!ok) {
			buf_free(&name);
			imap_tagged(s, "NO", "[USEATTR] This special use is "
			    "not possible for this name.");
			return;
		}
	}
	r = store_folder_create(s->u->su, buf_cstr(&name), &error);
	buf_free(&name);
	switch (r) {
	case 0:
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
	if (r == 0)
		imap_mbox_gone(s->u, buf_cstr(&name));
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
	if (r == 0)
		imap_mbox_gone(s->u, buf_cstr(&from));
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
