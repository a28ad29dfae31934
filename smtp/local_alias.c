/*
 * local_alias: what a local recipient expands to (see local.h), in
 * Postfix local(8) order:
 *
 *   1. alias_maps (aliases(5)): the local part, then without its
 *      extension.  The value is a comma-separated list of "|command",
 *      "/file", ":include:/file", "\user" and addresses.
 *   2. the user (userdb), extension stripped; postmaster, mailer-daemon
 *      and root fall back to root (root mode) or to the user Postern runs
 *      as (unprivileged mode) when there is no such alias or user.
 *   3. the user's forward_path file (~/.forward), same syntax; "\user"
 *      or the user's own name means the mailbox.
 *   4. the mailbox.
 *
 * An alias name already being expanded is not expanded again (so
 * "root: root, admin" delivers to root's mailbox), every destination is
 * listed once, and depth and size of the expansion are bounded
 * (MAX_ALIAS_DEPTH, MAX_ALIAS_EXPANSION).  Commands and files are allowed
 * only from the classes in allow_mail_to_commands / allow_mail_to_files;
 * they run as default_privs for aliases, as the owner of an :include:
 * file, and as the user for .forward.  Nothing is delivered here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "cfg.h"
#include "limits_pst.h"
#include "local.h"
#include "log.h"
#include "map.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

/* What an open alias table was built from: reopened when this changes. */
struct local_alias_stamp {
	char		*path;
	bool		 exists;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
};

static struct map_list *alias_list;
static bool alias_open_done;
static char *alias_spec;		/* alias_maps when opened */
static struct local_alias_stamp *alias_stamps;
static size_t alias_nstamps;
static char alias_error[300];

struct local_exp {
	const struct local_msg	*m;
	struct local_expansion	*x;
	char			**chain;	/* being expanded: loops */
	char			**seen;		/* listed */
	size_t			  steps;
};

enum local_class {
	LOCAL_CLASS_ALIAS,
	LOCAL_CLASS_FORWARD,
	LOCAL_CLASS_INCLUDE
};

static const char *const class_names[] = { "alias", "forward", "include" };

static void local_exp_address(struct local_exp *e, const char *addr,
    unsigned depth, bool top);
static void local_exp_list(struct local_exp *e, const char *value,
    unsigned depth, enum local_class class, const struct local_privs *privs,
    const char *owner, const char *context);

/* ---- alias tables ---- */

static void
local_alias_stamp_take(struct local_alias_stamp *st)
{
	struct stat sb;

	st->exists = stat(st->path, &sb) == 0;
	st->ino = st->exists ? sb.st_ino : 0;
	st->size = st->exists ? sb.st_size : 0;
	if (st->exists)
		st->mtime = sb.st_mtim;
	else
		memset(&st->mtime, 0, sizeof(st->mtime));
}

static void
local_alias_stamp_add(const char *path)
{
	struct local_alias_stamp *st;

	alias_stamps = xreallocarray(alias_stamps, alias_nstamps + 1,
	    sizeof(*alias_stamps));
	st = &alias_stamps[alias_nstamps++];
	st->path = xstrdup(path);
	local_alias_stamp_take(st);
}

static void
local_alias_close(void)
{
	size_t i;

	map_list_free(&alias_list);
	for (i = 0; i < alias_nstamps; i++)
		free(alias_stamps[i].path);
	free(alias_stamps);
	alias_stamps = NULL;
	alias_nstamps = 0;
	free(alias_spec);
	alias_spec = NULL;
	alias_open_done = false;
}

/*
 * Reopen the alias tables when alias_maps or one of its files (the
 * source or its .db) changed, so `postern aliases` takes effect with the
 * next delivery, as with Postfix.  A few stat(2) calls per request.
 */
void
local_alias_refresh(void)
{
	size_t i;

	if (!alias_open_done)
		return;
	if (strcmp(alias_spec, cfg_get("alias_maps")) != 0) {
		local_alias_close();
		return;
	}
	for (i = 0; i < alias_nstamps; i++) {
		struct local_alias_stamp now = alias_stamps[i];

		local_alias_stamp_take(&now);
		if (now.exists != alias_stamps[i].exists ||
		    now.ino != alias_stamps[i].ino ||
		    now.size != alias_stamps[i].size ||
		    now.mtime.tv_sec != alias_stamps[i].mtime.tv_sec ||
		    now.mtime.tv_nsec != alias_stamps[i].mtime.tv_nsec) {
			local_alias_close();
			return;
		}
	}
}

/*
 * Open alias_maps, leaving out tables whose source does not exist at all
 * (no aliases file is the same as no aliases: postmaster must still
 * work).  A source without its .db, or a stale one, stays an error.
 */
static int
local_alias_open(void)
{
	char **specs;
	struct buf val;
	const char *err = NULL;
	size_t i;

	if (alias_open_done)
		return alias_list != NULL || alias_error[0] == '\0' ? 0 : -1;
	alias_open_done = true;
	alias_spec = xstrdup(cfg_get("alias_maps"));
	alias_error[0] = '\0';
	specs = cfg_get_list("alias_maps");
	buf_init(&val, 0);
	for (i = 0; specs[i] != NULL; i++) {
		const char *colon = strchr(specs[i], ':');
		const char *path = colon != NULL ? colon + 1 : specs[i];
		struct stat st;

		if (path[0] == '/') {
			char *db = xasprintf("%s.db", path);

			local_alias_stamp_add(path);
			local_alias_stamp_add(db);
			free(db);
		}
		if (path[0] == '/' && stat(path, &st) < 0 && errno == ENOENT) {
			char *db = xasprintf("%s.db", path);
			bool missing = stat(db, &st) < 0 && errno == ENOENT;

			free(db);
			if (missing)
				continue;
		}
		if (val.len > 0)
			buf_append_str(&val, ", ");
		buf_append_str(&val, specs[i]);
	}
	cfg_list_free(&specs);
	if (val.len > 0) {
		alias_list = map_list_open(buf_cstr(&val), MAP_KIND_ALIASES,
		    &err);
		if (alias_list == NULL)
			snprintf(alias_error, sizeof(alias_error), "%s",
			    err != NULL ? err : "cannot open alias_maps");
	}
	buf_free(&val);
	return alias_error[0] == '\0' ? 0 : -1;
}

/* 1 found (*value_r malloc'ed), 0 not found, -1 error (*error_r). */
static int
local_alias_lookup(const char *key, char **value_r, const char **error_r)
{
	int ret;

	if (local_alias_open() < 0) {
		*error_r = alias_error;
		return -1;
	}
	if (alias_list == NULL)
		return 0;
	ret = map_list_lookup(alias_list, key, value_r);
	if (ret < 0)
		*error_r = "alias table lookup failed";
	return ret;
}

/* ---- items ---- */

static void
local_privs_copy(struct local_privs *dst, const struct local_privs *src)
{
	dst->uid = src->uid;
	dst->gid = src->gid;
	dst->user = xstrdup(src->user != NULL ? src->user : "");
	dst->home = xstrdup(src->home != NULL ? src->home : "/");
}

static struct local_item *
local_exp_item(struct local_exp *e, enum local_item_type type,
    const char *target, const char *address)
{
	struct local_expansion *x = e->x;
	struct local_item *it;

	x->items = xreallocarray(x->items, x->count + 1, sizeof(*x->items));
	it = &x->items[x->count++];
	memset(it, 0, sizeof(*it));
	it->type = type;
	it->target = xstrdup(target);
	it->address = xstrdup(address);
	it->privs.user = xstrdup("");
	it->privs.home = xstrdup("/");
	return it;
}

static void __attribute__((format(printf, 5, 6)))
local_exp_fail(struct local_exp *e, const char *address,
    enum local_status st, const char *dsn, const char *fmt, ...)
{
	struct local_item *it = local_exp_item(e, LOCAL_ITEM_FAILED, "",
	    address);
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	local_result_set(&it->result, st, dsn, "%s", text);
}

/* Whether key was listed already; lists it otherwise. */
static bool
local_exp_seen(struct local_exp *e, const char *key)
{
	size_t i;

	for (i = 0; e->seen != NULL && e->seen[i] != NULL; i++) {
		if (strcmp(e->seen[i], key) == 0)
			return true;
	}
	if (e->seen == NULL)
		e->seen = xcalloc(1, sizeof(*e->seen));
	strv_push(&e->seen, key);
	return false;
}

static bool
local_chain_has(const struct local_exp *e, const char *key)
{
	size_t i;

	for (i = 0; e->chain != NULL && e->chain[i] != NULL; i++) {
		if (strcmp(e->chain[i], key) == 0)
			return true;
	}
	return false;
}

static void
local_chain_push(struct local_exp *e, const char *key)
{
	if (e->chain == NULL)
		e->chain = xcalloc(1, sizeof(*e->chain));
	strv_push(&e->chain, key);
}

static void
local_chain_pop(struct local_exp *e)
{
	size_t n = strv_len(e->chain);

	if (n > 0) {
		free(e->chain[n - 1]);
		e->chain[n - 1] = NULL;
	}
}

/* "local@domain": the domain of the recipient, or $myorigin. */
static char *
local_qualify(const struct local_msg *m, const char *local)
{
	if (m->rcpt_domain[0] != '\0')
		return xasprintf("%s@%s", local, m->rcpt_domain);
	return addr_qualify(local);
}

/* Privileges of the user Postern runs as (unprivileged mode). */
static void
local_privs_self(struct local_privs *p)
{
	struct passwd *pw = getpwuid(geteuid());

	p->uid = geteuid();
	p->gid = getegid();
	p->user = xstrdup(pw != NULL ? pw->pw_name : "postern");
	p->home = xstrdup(pw != NULL ? pw->pw_dir : "/");
}

/* default_privs for commands and files named in aliases. */
static int
local_privs_default(struct local_privs *p, struct local_result *r)
{
	struct passwd *pw;

	if (!local_root_mode()) {
		local_privs_self(p);
		return 0;
	}
	if ((pw = getpwnam(cfg_get("default_privs"))) == NULL) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "default_privs user %s does not exist",
		    cfg_get("default_privs"));
		return -1;
	}
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	p->user = xstrdup(pw->pw_name);
	p->home = xstrdup(pw->pw_dir);
	return 0;
}

/* ---- users ---- */

static bool
local_is_special(const char *name)
{
	return str_case_eq(name, "postmaster") ||
	    str_case_eq(name, "mailer-daemon") || str_case_eq(name, "root");
}

/*
 * Look up a local user: exact, then lowercase; the postmaster names fall
 * back as described above.  Returns 1 (u filled), or 0 with r set.
 */
static int
local_user(const char *name, struct userdb_user *u, struct local_result *r)
{
	const char *err = NULL;
	char *lower = str_lower(xstrdup(name));
	int ret;

	ret = userdb_lookup(name, u, &err);
	if (ret == 0 && strcmp(lower, name) != 0)
		ret = userdb_lookup(lower, u, &err);
	if (ret == 0 && local_is_special(name)) {
		struct local_privs self;

		if (local_root_mode())
			ret = userdb_lookup("root", u, &err);
		else {
			local_privs_self(&self);
			ret = userdb_lookup(self.user, u, &err);
			local_privs_free(&self);
		}
	}
	free(lower);
	if (ret < 0) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "user database unavailable: %s",
		    err != NULL ? err : "lookup failed");
		return 0;
	}
	if (ret == 0) {
		local_result_set(r, LOCAL_BOUNCE, "5.1.1",
		    "unknown user: \"%s\"", name);
		return 0;
	}
	return 1;
}

static void
local_user_privs(const struct userdb_user *u, struct local_privs *p)
{
	p->uid = u->uid;
	p->gid = u->gid;
	p->user = xstrdup(u->name);
	p->home = xstrdup(u->home != NULL && u->home[0] != '\0' ?
	    u->home : "/");
}

static void
local_exp_mailbox(struct local_exp *e, const struct userdb_user *u,
    const char *address)
{
	struct local_item *it;
	char *key = xasprintf("m:%s", u->name);

	if (!local_exp_seen(e, key)) {
		it = local_exp_item(e, LOCAL_ITEM_MAILBOX, u->name, address);
		local_privs_free(&it->privs);
		local_user_privs(u, &it->privs);
	}
	free(key);
}

/* ---- .forward ---- */

/* Value of a forward_path variable; NULL if unknown.  Borrowed. */
static const char *
local_fwd_var(const char *name, size_t len, const char *const vars[][2])
{
	size_t i;

	for (i = 0; vars[i][0] != NULL; i++) {
		if (strlen(vars[i][0]) == len &&
		    strncmp(vars[i][0], name, len) == 0)
			return vars[i][1];
	}
	return NULL;
}

/*
 * Expand $name, ${name}, ${name?text} and ${name:text} in one
 * forward_path element (Postfix local(8) semantics: ?text when the value
 * is non-empty, :text when it is empty).  NULL when the result is not
 * usable (an address-derived value with '/' in it).
 */
static char *
local_fwd_expand(const char *tmpl, const char *const vars[][2])
{
	struct buf b;
	const char *p = tmpl;

	buf_init(&b, 0);
	while (*p != '\0') {
		const char *name, *val, *alt = NULL;
		size_t nlen, alen = 0;
		char op = '\0';

		if (*p != '$') {
			buf_append_char(&b, *p++);
			continue;
		}
		p++;
		if (*p == '{') {
			const char *end = strchr(p, '}');

			if (end == NULL)
				break;
			name = p + 1;
			nlen = strcspn(name, "?:}");
			if (name[nlen] == '?' || name[nlen] == ':') {
				op = name[nlen];
				alt = name + nlen + 1;
				alen = (size_t)(end - alt);
			}
			p = end + 1;
		} else {
			name = p;
			nlen = 0;
			while ((p[nlen] >= 'a' && p[nlen] <= 'z') ||
			    p[nlen] == '_')
				nlen++;
			p += nlen;
		}
		val = local_fwd_var(name, nlen, vars);
		if (val == NULL)
			val = "";
		if (op == '?') {
			if (val[0] != '\0')
				buf_append(&b, alt, alen);
		} else if (op == ':') {
			if (val[0] == '\0')
				buf_append(&b, alt, alen);
		} else {
			/* Only $home may hold a '/': the others come from
			 * the address and must not walk the file system. */
			if (strchr(val, '/') != NULL &&
			    !(nlen == 4 && strncmp(name, "home", 4) == 0)) {
				buf_free(&b);
				return NULL;
			}
			buf_append_str(&b, val);
		}
	}
	return buf_steal(&b);
}

/*
 * Read the user's forward file: the first forward_path element that
 * exists.  Returns its contents (malloc'ed), or NULL (none, or unsafe:
 * not the user's, or group/world writable, which is logged).
 */
static char *
local_forward_read(const struct local_msg *m, const struct userdb_user *u,
    const char *local, const char *ext, struct local_result *r)
{
	const char *recipient_delim = cfg_get("recipient_delimiter");
	char delim[2] = { recipient_delim[0], '\0' };
	const char *const vars[][2] = {
		{ "home", u->home != NULL ? u->home : "" },
		{ "user", u->name },
		{ "local", local },
		{ "extension", ext != NULL ? ext : "" },
		{ "recipient", m->rcpt },
		{ "domain", m->rcpt_domain },
		{ "recipient_delimiter", delim },
		{ "shell", "/bin/sh" },
		{ NULL, NULL }
	};
	char **paths = strv_split(cfg_get("forward_path"), ", \t\r\n");
	struct local_privs p;
	char *content = NULL;
	size_t i;

	local_user_privs(u, &p);
	if (local_privs_enter(&p, r) < 0) {
		/* Not our uid (unprivileged mode): no .forward to read. */
		local_privs_free(&p);
		strv_free(&paths);
		return NULL;
	}
	for (i = 0; paths[i] != NULL && content == NULL; i++) {
		char *path = local_fwd_expand(paths[i], vars);
		struct stat st;
		int fd;

		if (path == NULL || path[0] != '/') {
			free(path);
			continue;
		}
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			if (errno != ENOENT && errno != ENOTDIR)
				log_warning("%s: cannot open %s: %m", m->qid,
				    path);
			free(path);
			continue;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != u->uid || (st.st_mode & 022) != 0) {
			log_warning("%s: ignoring %s: not a regular file owned "
			    "by %s and writable only by its owner", m->qid,
			    path, u->name);
		} else {
			struct buf b;
			char chunk[4096];
			ssize_t n;

			buf_init(&b, LOCAL_MAX_INCLUDE);
			while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
				if (buf_append(&b, chunk, (size_t)n) < 0)
					break;
			}
			content = buf_steal(&b);
		}
		close(fd);
		free(path);
	}
	local_privs_leave();
	local_privs_free(&p);
	strv_free(&paths);
	return content;
}

/* ---- list elements ---- */

/*
 * Split an alias value or file into elements: commas and newlines
 * separate, double quotes group, '#' starts a comment line.
 */
static char **
local_split_elements(const char *value)
{
	char **v = xcalloc(1, sizeof(*v));
	struct buf cur;
	const char *p;
	bool quoted = false, line_start = true;

	buf_init(&cur, 0);
	for (p = value;; p++) {
		if (line_start && !quoted) {
			const char *q = p;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '#') {
				p = q + strcspn(q, "\n");
				if (*p == '\0')
					break;
				continue;
			}
		}
		line_start = false;
		if (*p == '\0' || (!quoted && (*p == ',' || *p == '\n'))) {
			char *raw = xstrdup(buf_cstr(&cur));
			char *t = str_trim(raw);

			if (*t != '\0')
				strv_push(&v, t);
			free(raw);
			buf_reset(&cur);
			if (*p == '\0')
				break;
			if (*p == '\n')
				line_start = true;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		if (*p == '\\' && p[1] != '\0' && quoted) {
			buf_append_char(&cur, *p++);
		}
		buf_append_char(&cur, *p);
	}
	buf_free(&cur);
	return v;
}

/* Remove one level of double quotes and <angle brackets>. */
static char *
local_unquote(const char *s)
{
	size_t len = strlen(s);
	struct buf b;
	size_t i;

	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	buf_init(&b, 0);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' && (i == 0 || i == len - 1 ||
		    (i == 1 && s[0] == '|')))
			continue;
		buf_append_char(&b, s[i]);
	}
	return buf_steal(&b);
}

static void
local_exp_include(struct local_exp *e, const char *path, unsigned depth,
    const struct local_privs *privs, const char *context)
{
	struct local_result r;
	struct local_privs owner;
	struct stat st;
	struct buf b;
	char *key = xasprintf("i:%s", path);
	char chunk[4096];
	ssize_t n;
	int fd;

	if (local_chain_has(e, key)) {
		free(key);
		return;		/* an include loop */
	}
	if (local_privs_enter(privs, &r) < 0) {
		local_exp_fail(e, context, r.status, r.dsn, "%s", r.text);
		free(key);
		return;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = fd < 0 ? errno : EINVAL;

		if (fd >= 0)
			close(fd);
		local_privs_leave();
		if (err == ENOENT)
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.3.0",
			    ":include: %s: no such file", path);
		else
			local_exp_fail(e, context, LOCAL_DEFER, "4.3.0",
			    ":include: %s: %s", path, strerror(err));
		free(key);
		return;
	}
	buf_init(&b, LOCAL_MAX_INCLUDE);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			close(fd);
			local_privs_leave();
			buf_free(&b);
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.3.0",
			    ":include: %s: file too large", path);
			free(key);
			return;
		}
	}
	close(fd);
	local_privs_leave();

	/* Commands and files in the file run as its owner (Postfix). */
	memset(&owner, 0, sizeof(owner));
	if (!local_root_mode())
		local_privs_self(&owner);
	else if (st.st_uid == 0)
		local_privs_copy(&owner, privs);
	else {
		struct passwd *pw = getpwuid(st.st_uid);

		owner.uid = st.st_uid;
		owner.gid = pw != NULL ? pw->pw_gid : st.st_gid;
		owner.user = xstrdup(pw != NULL ? pw->pw_name : "nobody");
		owner.home = xstrdup(pw != NULL ? pw->pw_dir : "/");
	}
	local_chain_push(e, key);
	local_exp_list(e, buf_cstr(&b), depth + 1, LOCAL_CLASS_INCLUDE,
	    &owner, NULL, context);
	local_chain_pop(e);
	local_privs_free(&owner);
	buf_free(&b);
	free(key);
}

/*
 * One element of an alias value, :include: file or .forward.  owner: the
 * user whose .forward this is (for "\user" and self references); context:
 * the address being expanded (for Delivered-To and the logs).
 */
static void
local_exp_element(struct local_exp *e, const char *elem, unsigned depth,
    enum local_class class, const struct local_privs *privs,
    const char *owner, const char *context)
{
	char *v = local_unquote(elem);
	char *key;
	struct local_item *it;

	if (++e->steps > MAX_ALIAS_EXPANSION) {
		if (e->steps == MAX_ALIAS_EXPANSION + 1)
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.3.4",
			    "alias expansion has more than %d destinations",
			    MAX_ALIAS_EXPANSION);
		free(v);
		return;
	}
	if (v[0] == '|') {
		const char *cmd = v + 1;

		while (*cmd == ' ' || *cmd == '\t')
			cmd++;
		if (!local_allowed("allow_mail_to_commands",
		    class_names[class]))
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.7.1",
			    "mail to command is restricted");
		else if (*cmd != '\0') {
			key = xasprintf("c:%lu:%s", (unsigned long)privs->uid,
			    cmd);
			if (!local_exp_seen(e, key)) {
				it = local_exp_item(e, LOCAL_ITEM_COMMAND, cmd,
				    context);
				local_privs_free(&it->privs);
				local_privs_copy(&it->privs, privs);
			}
			free(key);
		}
	} else if (str_starts_case(v, ":include:")) {
		const char *path = v + 9;

		while (*path == ' ' || *path == '\t')
			path++;
		if (path[0] != '/')
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.3.0",
			    ":include: needs an absolute path: %s", path);
		else
			local_exp_include(e, path, depth, privs, context);
	} else if (v[0] == '/') {
		if (!local_allowed("allow_mail_to_files", class_names[class]))
			local_exp_fail(e, context, LOCAL_BOUNCE, "5.7.1",
			    "mail to file is restricted");
		else {
			key = xasprintf("f:%s", v);
			if (!local_exp_seen(e, key)) {
				it = local_exp_item(e, LOCAL_ITEM_FILE, v,
				    context);
				local_privs_free(&it->privs);
				local_privs_copy(&it->privs, privs);
			}
			free(key);
		}
	} else if (v[0] == '\\') {
		/* \user: the mailbox, no alias and no .forward. */
		struct userdb_user u;
		struct local_result r;

		if (local_user(v + 1, &u, &r)) {
			char *addr = local_qualify(e->m, u.name);

			local_exp_mailbox(e, &u, addr);
			free(addr);
			userdb_user_free(&u);
		} else
			local_exp_fail(e, v + 1, r.status, r.dsn, "%s",
			    r.text);
	} else if (owner != NULL && (strcmp(v, owner) == 0 ||
	    (str_starts_case(v, owner) && v[strlen(owner)] == '@' &&
	    addr_domain_is_local(v + strlen(owner) + 1)))) {
		/* A .forward naming its owner: keep a copy in the mailbox. */
		struct userdb_user u;
		struct local_result r;

		if (local_user(owner, &u, &r)) {
			local_exp_mailbox(e, &u, context);
			userdb_user_free(&u);
		} else
			local_exp_fail(e, context, r.status, r.dsn, "%s",
			    r.text);
	} else if (v[0] != '\0')
		local_exp_address(e, v, depth + 1, false);
	free(v);
}

static void
local_exp_list(struct local_exp *e, const char *value, unsigned depth,
    enum local_class class, const struct local_privs *privs,
    const char *owner, const char *context)
{
	char **elems = local_split_elements(value);
	size_t i;

	for (i = 0; elems[i] != NULL; i++)
		local_exp_element(e, elems[i], depth, class, privs, owner,
		    context);
	strv_free(&elems);
}

/* ---- addresses ---- */

/* Delivered-To already naming addr: the message went round in a loop. */
static bool
local_exp_loop(const struct local_exp *e, const char *addr)
{
	char *lower = str_lower(xstrdup(addr));
	bool loop = strv_contains_case(e->m->delivered_to, lower);

	free(lower);
	return loop;
}

static void
local_exp_user_stage(struct local_exp *e, const char *local,
    const char *address, unsigned depth)
{
	struct userdb_user u;
	struct local_result r;
	char *ext = NULL, *base = addr_strip_ext(local, &ext);
	char *fkey;

	if (!local_user(base, &u, &r)) {
		local_exp_fail(e, address, r.status, r.dsn, "%s", r.text);
		free(base);
		free(ext);
		return;
	}
	fkey = xasprintf("w:%s", u.name);
	if (!local_chain_has(e, fkey)) {
		char *fwd = local_forward_read(e->m, &u, base, ext, &r);

		if (fwd != NULL) {
			e->x->indirect = true;
			char **elems = local_split_elements(fwd);
			bool any = elems[0] != NULL;

			strv_free(&elems);
			if (any) {
				struct local_privs p;

				local_user_privs(&u, &p);
				local_chain_push(e, fkey);
				local_exp_list(e, fwd, depth + 1,
				    LOCAL_CLASS_FORWARD, &p, u.name, address);
				local_chain_pop(e);
				local_privs_free(&p);
				free(fwd);
				free(fkey);
				free(base);
				free(ext);
				userdb_user_free(&u);
				return;
			}
			free(fwd);
		}
	}
	local_exp_mailbox(e, &u, address);
	free(fkey);
	free(base);
	free(ext);
	userdb_user_free(&u);
}

/*
 * Expand one address.  top: the queue recipient itself, which qmgr
 * already found to be local.
 */
static void
local_exp_address(struct local_exp *e, const char *addr, unsigned depth,
    bool top)
{
	char *local, *domain, *qualified, *key, *lower, *value = NULL;
	const char *err = NULL;
	int ret;

	if (depth > MAX_ALIAS_DEPTH) {
		local_exp_fail(e, addr, LOCAL_BOUNCE, "5.4.6",
		    "alias expansion too deep (loop?) at %s", addr);
		return;
	}
	local_split(addr, &local, &domain);
	if (!top && domain[0] != '\0' && !addr_domain_is_local(domain)) {
		key = xasprintf("a:%s", addr);
		if (!local_exp_seen(e, key))
			local_exp_item(e, LOCAL_ITEM_FORWARD, addr, addr);
		free(key);
		goto out;
	}
	if (local[0] == '\0') {
		local_exp_fail(e, addr, LOCAL_BOUNCE, "5.1.3",
		    "bad address syntax: %s", addr);
		goto out;
	}
	qualified = domain[0] != '\0' ? xstrdup(addr) :
	    local_qualify(e->m, local);
	/* RFC 5321 §6.3 style loop detection, as Postfix local(8) does. */
	if (local_exp_loop(e, qualified) ||
	    (top && local_exp_loop(e, e->m->rcpt))) {
		local_exp_fail(e, qualified, LOCAL_BOUNCE, "5.4.6",
		    "mail forwarding loop for %s", qualified);
		free(qualified);
		goto out;
	}
	lower = str_lower(xstrdup(local));
	key = xasprintf("a:%s", lower);
	if (!local_chain_has(e, key)) {
		/* aliases(5) names are case-insensitive. */
		ret = local_alias_lookup(lower, &value, &err);
		if (ret == 0) {
			char *ext = NULL, *base = addr_strip_ext(lower, &ext);

			if (ext != NULL && strcmp(base, lower) != 0) {
				char *bkey = xasprintf("a:%s", base);

				if (!local_chain_has(e, bkey))
					ret = local_alias_lookup(base, &value,
					    &err);
				free(bkey);
			}
			free(base);
			free(ext);
		}
		if (ret < 0) {
			local_exp_fail(e, qualified, LOCAL_DEFER, "4.3.0",
			    "alias database unavailable: %s", err);
			free(key);
			free(lower);
			free(qualified);
			goto out;
		}
		if (ret > 0) {
			struct local_privs p;
			struct local_result r;

			e->x->indirect = true;
			memset(&p, 0, sizeof(p));
			if (local_privs_default(&p, &r) < 0)
				local_exp_fail(e, qualified, r.status, r.dsn,
				    "%s", r.text);
			else {
				local_chain_push(e, key);
				local_exp_list(e, value, depth,
				    LOCAL_CLASS_ALIAS, &p, NULL, qualified);
				local_chain_pop(e);
			}
			local_privs_free(&p);
			free(value);
			free(key);
			free(lower);
			free(qualified);
			goto out;
		}
	}
	free(key);
	free(lower);
	/* The recipient keeps its form in Delivered-To: user+ext@domain. */
	local_exp_user_stage(e, local, top ? e->m->rcpt : qualified, depth);
	free(qualified);
out:
	free(local);
	free(domain);
}

void
local_expand(const struct local_msg *m, struct local_expansion *x)
{
	struct local_exp e;

	memset(x, 0, sizeof(*x));
	memset(&e, 0, sizeof(e));
	e.m = m;
	e.x = x;
	local_exp_address(&e, m->rcpt, 0, true);
	strv_free(&e.chain);
	strv_free(&e.seen);
}

void
local_expansion_free(struct local_expansion *x)
{
	size_t i;

	for (i = 0; i < x->count; i++) {
		free(x->items[i].target);
		free(x->items[i].address);
		local_privs_free(&x->items[i].privs);
	}
	free(x->items);
	x->items = NULL;
	x->count = 0;
}
