/*
 * rewrite: address rewriting and virtual domains (see rewrite.h), in
 * Postfix's terms:
 *
 *   canonical(5)   $sender_canonical_maps / $recipient_canonical_maps,
 *                  then $canonical_maps, each applied until the address
 *                  stops changing (at most REWRITE_MAX_CANONICAL_ROUNDS),
 *                  for the address classes of $*canonical_classes;
 *   masquerading   $masquerade_domains ("!" exceptions) and
 *                  $masquerade_exceptions, for $masquerade_classes;
 *   virtual(5)     $virtual_alias_maps, expanded recursively into a list;
 *   generic(5)     $smtp_generic_maps, for the SMTP client.
 *
 * Keys are tried as mail_addr_find() does: user+ext@domain,
 * user@domain, user+ext and user (only when the domain is $myorigin,
 * $mydestination or a local address literal), @domain.  regexp: and
 * pcre: tables see the whole address only.  A result "@otherdomain"
 * keeps the user; a result without '@' gets "@$myorigin"; an extension
 * the matching key did not contain is appended again when the table's
 * class is in $propagate_unmatched_extensions.  For sendmail users,
 * virtusertable habits work in $virtual_alias_maps too: "%1" in a
 * result is the user part (%2 the extension, %3 the delimiter and the
 * extension), and "error:[D.S.N:][CODE ]text" (or "error:nouser text")
 * rejects the address with that text.
 *
 * Header addresses are found with a small RFC 5322 §3.4 tokenizer:
 * quoted strings, comments (nested, counted, never recursed), domain
 * literals, angle addresses with obsolete routes, groups.  Only the
 * bytes of an addr-spec that changes are replaced, so display names,
 * comments, encoded words (RFC 2047) and folding stay as they were.
 *
 * Not here: the decision what to do with the results (smtpd, local),
 * address syntax checks of the envelope (addr.c), and header_checks.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "buf.h"
#include "cfg.h"
#include "cfg_params.h"
#include "limits_pst.h"
#include "log.h"
#include "map.h"
#include "rewrite.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

/* ---- tables ---- */

enum rw_tab {
	RW_CANONICAL,
	RW_SENDER_CANONICAL,
	RW_RECIPIENT_CANONICAL,
	RW_VIRTUAL_ALIAS,
	RW_VIRTUAL_MAILBOX,
	RW_VIRTUAL_UID,
	RW_VIRTUAL_GID,
	RW_SENDER_BCC,
	RW_RECIPIENT_BCC,
	RW_GENERIC,
	RW_NTAB
};

static const char *const rw_tab_param[RW_NTAB] = {
	"canonical_maps",
	"sender_canonical_maps",
	"recipient_canonical_maps",
	"virtual_alias_maps",
	"virtual_mailbox_maps",
	"virtual_uid_maps",
	"virtual_gid_maps",
	"sender_bcc_maps",
	"recipient_bcc_maps",
	"smtp_generic_maps"
};

struct rw_map {
	struct map	*map;		/* NULL for a passwd-file */
	char		*pwfile;	/* passwd-file:PATH */
	bool		 pattern;	/* regexp:, pcre: whole addresses only */
};

struct rw_table {
	char		*value;		/* opened from this; NULL: closed */
	struct rw_map	*maps;
	size_t		 n;
	char		*error;		/* open or refresh failed */
	time_t		 checked;	/* last look at the files */
};

static pthread_mutex_t rw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rw_table rw_tabs[RW_NTAB];
/* Tables named in the domain lists ($virtual_*_domains). */
static struct rw_table *rw_spec_tabs;
static size_t rw_spec_count;

/* Why the last call failed; per thread, read by the caller after it. */
static __thread char rw_why[512];

static const char * __attribute__((format(printf, 1, 2)))
rw_whyf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	(void)vsnprintf(rw_why, sizeof(rw_why), fmt, ap);
	va_end(ap);
	for (p = rw_why; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return rw_why;
}

static void
rw_table_close(struct rw_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		map_close(&t->maps[i].map);
		free(t->maps[i].pwfile);
	}
	free(t->maps);
	free(t->value);
	free(t->error);
	memset(t, 0, sizeof(*t));
}

static bool
rw_spec_is_pattern(const char *spec)
{
	if (str_starts_case(spec, "proxy:"))
		spec += 6;
	return str_starts_case(spec, "regexp:") ||
	    str_starts_case(spec, "pcre:");
}

/*
 * Open the tables of a list value.  A failure is remembered in t->error
 * (and logged): every lookup is then a temporary failure, never a silent
 * miss (DESIGN §5).
 */
static bool rw_atexit_set;

/* Tables still open at exit are closed: a Berkeley DB handle left open
 * looks like a leak to LeakSanitizer, whatever the service forgot. */
static void
rw_atexit(void)
{
	rewrite_reset();
}

static void
rw_table_open(struct rw_table *t, const char *value, const char *what,
    bool allow_pwfile)
{
	char **specs = cfg_list_split(value);
	size_t i;

	if (!rw_atexit_set) {
		rw_atexit_set = true;
		(void)atexit(rw_atexit);
	}

	t->value = xstrdup(value);
	t->checked = time(NULL);
	for (i = 0; specs[i] != NULL && t->error == NULL; i++) {
		struct rw_map rm;
		const char *err = NULL;

		memset(&rm, 0, sizeof(rm));
		if (str_starts_case(specs[i], "passwd-file:")) {
			if (!allow_pwfile || specs[i][12] != '/') {
				t->error = xasprintf("%s: passwd-file: needs "
				    "an absolute path and is allowed in "
				    "virtual_mailbox_maps only", specs[i]);
				break;
			}
			rm.pwfile = xstrdup(specs[i] + 12);
		} else {
			rm.map = map_open(specs[i], MAP_KIND_PLAIN, &err);
			if (rm.map == NULL) {
				t->error = xstrdup(err != NULL ? err :
				    "cannot open table");
				break;
			}
			rm.pattern = rw_spec_is_pattern(specs[i]);
		}
		t->maps = xreallocarray(t->maps, t->n + 1, sizeof(*t->maps));
		t->maps[t->n++] = rm;
	}
	strv_free(&specs);
	if (t->error != NULL)
		log_warning("%s: %s", what, t->error);
}

/*
 * Make t match value: reopen when the value changed (a reload) or the
 * last open failed; otherwise let each table notice a changed file, at
 * most every REWRITE_REFRESH_INTERVAL seconds.
 */
static struct rw_table *
rw_table_sync(struct rw_table *t, const char *value, const char *what,
    bool allow_pwfile)
{
	time_t now = time(NULL);
	size_t i;

	if (t->value == NULL || strcmp(t->value, value) != 0) {
		rw_table_close(t);
		rw_table_open(t, value, what, allow_pwfile);
		return t;
	}
	if (now >= t->checked && now - t->checked < REWRITE_REFRESH_INTERVAL)
		return t;
	t->checked = now;
	if (t->error != NULL) {
		rw_table_close(t);
		rw_table_open(t, value, what, allow_pwfile);
		return t;
	}
	for (i = 0; i < t->n; i++) {
		const char *err = NULL;

		if (t->maps[i].map != NULL &&
		    map_refresh(t->maps[i].map, &err) < 0) {
			t->error = xstrdup(err != NULL ? err :
			    "cannot reopen table");
			log_warning("%s: %s", what, t->error);
			break;
		}
	}
	return t;
}

static struct rw_table *
rw_table_get(enum rw_tab id)
{
	return rw_table_sync(&rw_tabs[id], cfg_get(rw_tab_param[id]),
	    rw_tab_param[id], id == RW_VIRTUAL_MAILBOX);
}

static bool
rw_table_empty(const struct rw_table *t)
{
	return t->n == 0 && t->error == NULL;
}

/* passwd-file users: names are full addresses, compared without case. */
struct rw_pwfind {
	const char		*key;	/* a name, or "@domain" */
	bool			 found;
	struct userdb_user	 u;
};

static void
rw_pwfind_cb(const struct userdb_user *u, void *ctx)
{
	struct rw_pwfind *f = ctx;
	size_t nlen, klen;

	if (f->found)
		return;
	nlen = strlen(u->name);
	klen = strlen(f->key);
	if (f->key[0] == '@' ? !(nlen > klen &&
	    str_case_eq(u->name + nlen - klen, f->key)) :
	    !str_case_eq(u->name, f->key))
		return;
	f->found = true;
	f->u.name = xstrdup(u->name);
	f->u.home = xstrdup(u->home != NULL ? u->home : "/");
	f->u.uid = u->uid;
	f->u.gid = u->gid;
}

/* 1 found (pw_r filled when not NULL), 0 not, -1 unreadable. */
static int
rw_pwfile_find(const char *path, const char *key, struct userdb_user *pw_r)
{
	struct rw_pwfind f;

	memset(&f, 0, sizeof(f));
	f.key = key;
	if (userdb_file_list(path, rw_pwfind_cb, &f) < 0)
		return -1;
	if (!f.found)
		return 0;
	if (pw_r != NULL)
		*pw_r = f.u;
	else
		userdb_user_free(&f.u);
	return 1;
}

/* What a key is: pattern tables see only whole addresses (Postfix). */
enum rw_key {
	RW_KEY_FULL,		/* the address as it is */
	RW_KEY_STRIPPED,	/* user@domain of user+ext@domain */
	RW_KEY_PART		/* "user", "@domain", a domain name */
};

/*
 * One key in every table of t, in order; passwd-files are asked for
 * addresses only.  Returns 1 with *value_r (malloc'ed), 0, or -1 with
 * rw_why set.
 */
static int
rw_table_lookup(struct rw_table *t, const char *what, const char *key,
    enum rw_key kind, char **value_r, struct userdb_user *pw_r)
{
	size_t i;

	*value_r = NULL;
	if (t->error != NULL) {
		rw_whyf("%s: %s", what, t->error);
		return -1;
	}
	for (i = 0; i < t->n; i++) {
		const struct rw_map *rm = &t->maps[i];
		int rc;

		if ((kind != RW_KEY_FULL && rm->pattern) ||
		    (kind == RW_KEY_PART && rm->pwfile != NULL))
			continue;
		if (rm->pwfile != NULL) {
			rc = rw_pwfile_find(rm->pwfile, key, pw_r);
			if (rc > 0)
				*value_r = xstrdup(key);
		} else
			rc = map_lookup(rm->map, key, value_r);
		if (rc < 0) {
			free(*value_r);
			*value_r = NULL;
			rw_whyf("%s: lookup of \"%.200s\" failed", what, key);
			return -1;
		}
		if (rc > 0)
			return 1;
	}
	return 0;
}

/* ---- address forms ---- */

/* RFC 5322 §3.2.3 atext; bytes >= 0x80 as RFC 6532 allows. */
static bool
rw_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Whether a local part must be written as a quoted string. */
static bool
rw_needs_quotes(const char *local)
{
	const char *p;

	if (local[0] == '\0' || local[0] == '.')
		return true;
	for (p = local; *p != '\0'; p++) {
		if (*p == '.') {
			if (p[1] == '.' || p[1] == '\0')
				return true;
		} else if (!rw_atext((unsigned char)*p))
			return true;
	}
	return false;
}

/* local@domain in external form (quoted local part when needed). */
static char *
rw_join(const char *local, const char *domain)
{
	struct buf b;
	const char *p;

	buf_init(&b, 0);
	if (rw_needs_quotes(local)) {
		buf_append_char(&b, '"');
		for (p = local; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				buf_append_char(&b, '\\');
			buf_append_char(&b, *p);
		}
		buf_append_char(&b, '"');
	} else
		buf_append_str(&b, local);
	if (domain[0] != '\0')
		buf_printf(&b, "@%s", domain);
	return buf_steal(&b);
}

/*
 * Split an external address at its last '@' outside double quotes; the
 * local part comes back unquoted (quoted-pairs resolved).
 */
static void
rw_split(const char *addr, char **local_r, char **domain_r)
{
	const char *p, *at = NULL;
	size_t len, i;
	bool quoted = false;
	struct buf b;

	for (p = addr; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	len = at != NULL ? (size_t)(at - addr) : strlen(addr);
	buf_init(&b, 0);
	quoted = false;
	for (i = 0; i < len; i++) {
		char c = addr[i];

		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && c == '\\' && i + 1 < len)
			c = addr[++i];
		buf_append_char(&b, c);
	}
	*local_r = buf_steal(&b);
	*domain_r = xstrdup(at != NULL ? at + 1 : "");
}

/*
 * List parameters, parsed once and kept while their value stays the
 * same (re-read every REWRITE_REFRESH_INTERVAL seconds when a "/file"
 * element may have changed): splitting them for every address would
 * cost more than the table lookups.
 */
struct rw_list {
	const char	*param;		/* a string literal */
	char		*value;
	char		**list;
	time_t		 at;
};
#define RW_MAX_LISTS	16
static struct rw_list rw_lists[RW_MAX_LISTS];

static char *const *
rw_list_get(const char *param)
{
	const char *v = cfg_get(param);
	time_t now = time(NULL);
	struct rw_list *l = NULL;
	size_t i;

	for (i = 0; i < RW_MAX_LISTS && rw_lists[i].param != NULL; i++) {
		if (strcmp(rw_lists[i].param, param) == 0) {
			l = &rw_lists[i];
			break;
		}
	}
	if (l == NULL) {
		if (i == RW_MAX_LISTS)
			log_panic("rewrite: more than %d list parameters",
			    RW_MAX_LISTS);
		l = &rw_lists[i];
		l->param = param;
	} else if (strcmp(l->value, v) == 0 && (strchr(v, '/') == NULL ||
	    (now >= l->at && now - l->at < REWRITE_REFRESH_INTERVAL)))
		return l->list;
	free(l->value);
	cfg_list_free(&l->list);
	l->value = xstrdup(v);
	l->list = cfg_get_list(param);
	l->at = now;
	return l->list;
}

static bool
rw_class_on(const char *param, const char *class)
{
	return strv_contains_case(rw_list_get(param), class);
}

/* Recent answers of addr_domain_is_local(), for at most a second. */
struct rw_local {
	char	*domain;
	bool	 local;
	time_t	 at;
};
#define RW_LOCAL_CACHE	8
static struct rw_local rw_locals[RW_LOCAL_CACHE];
static size_t rw_local_next;
static char *rw_local_dest;	/* $mydestination they were made with */

static void
rw_local_flush(void)
{
	size_t i;

	for (i = 0; i < RW_LOCAL_CACHE; i++) {
		free(rw_locals[i].domain);
		rw_locals[i].domain = NULL;
	}
	free(rw_local_dest);
	rw_local_dest = NULL;
}

/* The domain is one whose bare user names are ours ("user" keys). */
static bool
rw_localish(const char *domain)
{
	const char *dest = cfg_get("mydestination");
	time_t now = time(NULL);
	struct rw_local *e;
	size_t i;

	if (domain[0] == '\0' || str_case_eq(domain, cfg_get("myorigin")))
		return true;
	if (rw_local_dest == NULL || strcmp(rw_local_dest, dest) != 0) {
		rw_local_flush();
		rw_local_dest = xstrdup(dest);
	}
	for (i = 0; i < RW_LOCAL_CACHE; i++) {
		e = &rw_locals[i];
		if (e->domain != NULL && str_case_eq(e->domain, domain) &&
		    now >= e->at && now - e->at < REWRITE_REFRESH_INTERVAL)
			return e->local;
	}
	e = &rw_locals[rw_local_next++ % RW_LOCAL_CACHE];
	free(e->domain);
	e->domain = xstrdup(domain);
	e->local = addr_domain_is_local(domain);
	e->at = now;
	return e->local;
}

/*
 * Look local@domain up in t with Postfix's keys (see the top).  Returns
 * 1 with *value_r and *ext_r (the extension the matching key did not
 * contain, malloc'ed, or NULL), 0, or -1 with rw_why set.
 */
static int
rw_find(struct rw_table *t, const char *what, const char *local,
    const char *domain, bool user_keys, char **value_r, char **ext_r,
    struct userdb_user *pw_r)
{
	char *ext = NULL, *base, *key;
	bool has_ext;
	int rc = 0;

	*value_r = NULL;
	*ext_r = NULL;
	if (rw_table_empty(t))
		return 0;
	/* Nothing longer than an address is a key (and costs no lookup). */
	if (strlen(local) + strlen(domain) + 1 > MAX_ADDRESS)
		return 0;
	base = addr_strip_ext(local, &ext);
	has_ext = ext != NULL && strcmp(base, local) != 0;
	if (domain[0] != '\0') {
		key = xasprintf("%s@%s", local, domain);
		rc = rw_table_lookup(t, what, key, RW_KEY_FULL, value_r,
		    pw_r);
		free(key);
		if (rc == 0 && has_ext) {
			key = xasprintf("%s@%s", base, domain);
			rc = rw_table_lookup(t, what, key, RW_KEY_STRIPPED,
			    value_r, pw_r);
			free(key);
			if (rc > 0) {
				*ext_r = ext;
				ext = NULL;
			}
		}
	}
	if (rc == 0 && (user_keys || domain[0] == '\0')) {
		rc = rw_table_lookup(t, what, local,
		    domain[0] == '\0' ? RW_KEY_FULL : RW_KEY_PART, value_r,
		    pw_r);
		if (rc == 0 && has_ext) {
			rc = rw_table_lookup(t, what, base, RW_KEY_PART,
			    value_r, pw_r);
			if (rc > 0) {
				*ext_r = ext;
				ext = NULL;
			}
		}
	}
	if (rc == 0 && domain[0] != '\0') {
		key = xasprintf("@%s", domain);
		rc = rw_table_lookup(t, what, key, RW_KEY_PART, value_r,
		    pw_r);
		free(key);
	}
	free(base);
	free(ext);
	return rc;
}

/*
 * The elements of a table result: commas and white space separate,
 * double quotes group.  multi: all of them, else only the first.
 */
static char **
rw_result_split(const char *value, bool multi)
{
	char **v = xcalloc(1, sizeof(*v));
	struct buf cur;
	const char *p;
	bool quoted = false;

	buf_init(&cur, 0);
	for (p = value;; p++) {
		if (*p == '\0' || (!quoted && (*p == ',' || *p == ' ' ||
		    *p == '\t' || *p == '\n' || *p == '\r'))) {
			if (cur.len > 0) {
				strv_push(&v, buf_cstr(&cur));
				buf_reset(&cur);
				if (!multi)
					break;
			}
			if (*p == '\0')
				break;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (quoted && *p == '\\' && p[1] != '\0')
			buf_append_char(&cur, *p++);
		buf_append_char(&cur, *p);
	}
	buf_free(&cur);
	return v;
}

/* sendmail virtusertable: %1 user, %2 extension, %3 "+extension". */
static char *
rw_percent(const char *elem, const char *local, bool *used_r)
{
	char *ext = NULL, *base = addr_strip_ext(local, &ext);
	struct buf b;
	const char *p;

	buf_init(&b, 0);
	for (p = elem; *p != '\0'; p++) {
		if (p[0] != '%' || p[1] == '\0') {
			buf_append_char(&b, *p);
			continue;
		}
		if (p[1] >= '1' && p[1] <= '3')
			*used_r = true;
		switch (p[1]) {
		case '1':
			buf_append_str(&b, base);
			break;
		case '2':
			if (ext != NULL)
				buf_append_str(&b, ext);
			break;
		case '3':
			if (ext != NULL)
				buf_append(&b, local + strlen(base),
				    strlen(local) - strlen(base));
			break;
		case '%':
			buf_append_char(&b, '%');
			break;
		default:
			buf_append_char(&b, '%');
			continue;
		}
		p++;
	}
	free(base);
	free(ext);
	return buf_steal(&b);
}

/*
 * One result element for the address local@... that matched, as
 * (*nlocal_r, *ndomain_r): "@other" keeps the user, no '@' gets
 * "@$myorigin", ext (not NULL) is propagated.
 */
static void
rw_result_addr(const char *elem, const char *local, const char *ext,
    bool percent, char **nlocal_r, char **ndomain_r)
{
	bool used = false;
	char *e = percent ? rw_percent(elem, local, &used) : xstrdup(elem);

	/* A result that placed the extension itself gets it only once. */
	if (used)
		ext = NULL;
	if (e[0] == '@') {
		*nlocal_r = xstrdup(local);
		*ndomain_r = xstrdup(e[1] != '\0' ? e + 1 :
		    cfg_get("myorigin"));
		free(e);
		return;
	}
	rw_split(e, nlocal_r, ndomain_r);
	if ((*ndomain_r)[0] == '\0' && strchr(e, '@') == NULL) {
		free(*ndomain_r);
		*ndomain_r = xstrdup(cfg_get("myorigin"));
	}
	if (ext != NULL) {
		/* The delimiter the address used, before its extension. */
		char *base = addr_strip_ext(local, NULL);
		char delim = local[strlen(base)];
		char *n = xasprintf("%s%c%s", *nlocal_r, delim, ext);

		free(base);
		free(*nlocal_r);
		*nlocal_r = n;
	}
	free(e);
}

static bool
rw_same(const char *l1, const char *d1, const char *l2, const char *d2)
{
	return strcmp(l1, l2) == 0 && str_case_eq(d1, d2);
}

/*
 * A one-to-one table (canonical, generic) applied to *local and *domain
 * until nothing changes.  Returns 0 (*changed_r set when it did), or -1
 * with rw_why set.
 */
static int
rw_map11(enum rw_tab id, const char *prop_class, char **local,
    char **domain, bool *changed_r)
{
	struct rw_table *t = rw_table_get(id);
	bool prop;
	unsigned round;

	if (rw_table_empty(t))
		return 0;
	prop = rw_class_on("propagate_unmatched_extensions", prop_class);
	for (round = 0; round < REWRITE_MAX_CANONICAL_ROUNDS; round++) {
		char *value, *ext, *nl, *nd;
		char **elems;
		int rc;

		rc = rw_find(t, rw_tab_param[id], *local, *domain,
		    rw_localish(*domain), &value, &ext, NULL);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		elems = rw_result_split(value, false);
		free(value);
		if (elems[0] == NULL || str_starts_case(elems[0], "error:")) {
			strv_free(&elems);
			free(ext);
			break;
		}
		rw_result_addr(elems[0], *local, prop ? ext : NULL, false, &nl,
		    &nd);
		strv_free(&elems);
		free(ext);
		if (rw_same(nl, nd, *local, *domain)) {
			free(nl);
			free(nd);
			break;
		}
		free(*local);
		free(*domain);
		*local = nl;
		*domain = nd;
		*changed_r = true;
	}
	return 0;
}

/* Postfix masquerade_domains: strip subdomains of the listed domains. */
static void
rw_masquerade(const char *local, char **domain, bool *changed_r)
{
	char *const *list, *const *exc;
	char *lower;
	size_t i, dlen = strlen(*domain);

	if (dlen == 0)
		return;
	list = rw_list_get("masquerade_domains");
	if (list[0] == NULL)
		return;
	exc = rw_list_get("masquerade_exceptions");
	lower = str_lower(xstrdup(local));
	if (strv_contains_case(exc, lower)) {
		free(lower);
		return;
	}
	for (i = 0; list[i] != NULL; i++) {
		const char *m = list[i];
		bool excluded = m[0] == '!';
		size_t mlen;

		if (excluded)
			m++;
		mlen = strlen(m);
		if (mlen == 0)
			continue;
		/* The domain itself is left alone; so is everything under an
		 * excluded name. */
		if (mlen == dlen) {
			if (str_case_eq(m, *domain))
				break;
		} else if (mlen < dlen) {
			const char *parent = *domain + dlen - mlen;

			if (parent[-1] == '.' && str_case_eq(m, parent)) {
				if (!excluded) {
					free(*domain);
					*domain = xstrdup(m);
					*changed_r = true;
				}
				break;
			}
		}
	}
	free(lower);
}

/*
 * Canonical mapping and masquerading of one address of class
 * "envelope_sender", "header_recipient", ...  Returns 0 or -1 (rw_why).
 */
static int
rw_canonical(bool sender, const char *class, char **local, char **domain,
    bool *changed_r)
{
	enum rw_tab own = sender ? RW_SENDER_CANONICAL : RW_RECIPIENT_CANONICAL;

	/* The cheap test first: most settings are empty. */
	if (cfg_get(rw_tab_param[own])[0] != '\0' &&
	    rw_class_on(sender ? "sender_canonical_classes" :
	    "recipient_canonical_classes", class) &&
	    rw_map11(own, "canonical", local, domain, changed_r) < 0)
		return -1;
	if (cfg_get(rw_tab_param[RW_CANONICAL])[0] != '\0' &&
	    rw_class_on("canonical_classes", class) &&
	    rw_map11(RW_CANONICAL, "canonical", local, domain, changed_r) < 0)
		return -1;
	if (cfg_get("masquerade_domains")[0] != '\0' &&
	    rw_class_on("masquerade_classes", class))
		rw_masquerade(*local, domain, changed_r);
	return 0;
}

/* ---- domain lists ---- */

static struct rw_table *
rw_spec_table(const char *spec, const char *what)
{
	size_t i;

	for (i = 0; i < rw_spec_count; i++) {
		if (rw_spec_tabs[i].value != NULL &&
		    strcmp(rw_spec_tabs[i].value, spec) == 0)
			return rw_table_sync(&rw_spec_tabs[i], spec, what,
			    false);
	}
	rw_spec_tabs = xreallocarray(rw_spec_tabs, rw_spec_count + 1,
	    sizeof(*rw_spec_tabs));
	memset(&rw_spec_tabs[rw_spec_count], 0, sizeof(*rw_spec_tabs));
	return rw_table_sync(&rw_spec_tabs[rw_spec_count++], spec, what,
	    false);
}

/*
 * Is domain in the list parameter param?  Elements: a domain, ".domain"
 * for its subdomains, "!element" to exclude, "type:name" looked up by
 * the domain and then ".parent" names (Postfix match_list), and
 * "passwd-file:PATH" when a user name in that file ends in @domain.
 * A table that cannot be read is logged and does not match.
 */
static bool
rw_domain_listed(const char *param, const char *domain)
{
	char *const *list;
	char *d;
	size_t i, len;
	bool found = false;

	if (domain[0] == '\0' || domain[0] == '[')
		return false;
	d = str_lower(xstrdup(domain));
	len = strlen(d);
	if (len > 1 && d[len - 1] == '.')
		d[--len] = '\0';
	list = rw_list_get(param);
	for (i = 0; list[i] != NULL; i++) {
		const char *e = list[i];
		bool neg = e[0] == '!', match = false;
		const char *colon;

		if (neg)
			e++;
		colon = strchr(e, ':');
		if (str_starts_case(e, "passwd-file:")) {
			char *key = xasprintf("@%s", d);

			match = rw_pwfile_find(e + 12, key, NULL) > 0;
			free(key);
		} else if (colon != NULL && colon != e) {
			struct rw_table *t = rw_spec_table(e, param);
			const char *p = d;
			char *value = NULL;

			while (!match && p != NULL) {
				int rc = rw_table_lookup(t, param, p,
				    RW_KEY_FULL, &value, NULL);

				free(value);
				value = NULL;
				if (rc < 0) {
					log_warning("%s", rw_why);
					break;
				}
				match = rc > 0;
				/* Then ".parent" keys: ".example.com". */
				p = strchr(p + 1, '.');
			}
		} else if (e[0] == '.') {
			size_t elen = strlen(e);

			match = len > elen && str_case_eq(d + len - elen, e);
		} else
			match = str_case_eq(e, d);
		if (match) {
			found = !neg;
			break;
		}
	}
	free(d);
	return found;
}

bool
rewrite_is_virtual_alias_domain(const char *domain)
{
	bool r;

	pthread_mutex_lock(&rw_lock);
	r = rw_domain_listed("virtual_alias_domains", domain);
	pthread_mutex_unlock(&rw_lock);
	return r;
}

bool
rewrite_is_virtual_mailbox_domain(const char *domain)
{
	bool r;

	pthread_mutex_lock(&rw_lock);
	r = rw_domain_listed("virtual_mailbox_domains", domain);
	pthread_mutex_unlock(&rw_lock);
	return r;
}

/* ---- init ---- */

int
rewrite_init(const char **error_r)
{
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&rw_lock);
	for (i = 0; i < RW_NTAB; i++) {
		struct rw_table *t = rw_table_get((enum rw_tab)i);

		if (t->error != NULL && ret == 0) {
			*error_r = rw_whyf("%s: %s", rw_tab_param[i],
			    t->error);
			ret = -1;
		}
	}
	pthread_mutex_unlock(&rw_lock);
	return ret;
}

void
rewrite_reset(void)
{
	size_t i;

	pthread_mutex_lock(&rw_lock);
	for (i = 0; i < RW_NTAB; i++)
		rw_table_close(&rw_tabs[i]);
	for (i = 0; i < rw_spec_count; i++)
		rw_table_close(&rw_spec_tabs[i]);
	free(rw_spec_tabs);
	rw_spec_tabs = NULL;
	rw_spec_count = 0;
	for (i = 0; i < RW_MAX_LISTS; i++) {
		free(rw_lists[i].value);
		cfg_list_free(&rw_lists[i].list);
		memset(&rw_lists[i], 0, sizeof(rw_lists[i]));
	}
	rw_local_flush();
	pthread_mutex_unlock(&rw_lock);
}

/* ---- envelope ---- */

char *
rewrite_sender(const char *addr, const char **why_r)
{
	char *local, *domain, *out;
	bool changed = false;

	if (addr[0] == '\0')
		return xstrdup("");
	rw_split(addr, &local, &domain);
	pthread_mutex_lock(&rw_lock);
	if (rw_canonical(true, "envelope_sender", &local, &domain,
	    &changed) < 0) {
		pthread_mutex_unlock(&rw_lock);
		*why_r = rw_why;
		free(local);
		free(domain);
		return NULL;
	}
	pthread_mutex_unlock(&rw_lock);
	out = changed ? rw_join(local, domain) : xstrdup(addr);
	free(local);
	free(domain);
	return out;
}

/*
 * A sendmail "error:" result as "CODE D.S.N text": "error:nouser No
 * such user", "error:550 text", "error:5.7.1:550 text", "error:text".
 */
static const char *
rw_error_result(const char *value)
{
	static const struct {
		const char *word, *code, *dsn;
	} words[] = {
		{ "nouser", "550", "5.1.1" },
		{ "nohost", "550", "5.1.2" },
		{ "noperm", "550", "5.7.1" },
		{ "unavailable", "550", "5.0.0" },
		{ "tempfail", "450", "4.0.0" },
	};
	const char *p = value + 6, *code = NULL, *dsn = NULL;
	char dsnbuf[16], codebuf[4];
	size_t i, n;

	while (*p == ' ' || *p == '\t')
		p++;
	/* D.S.N: */
	n = strspn(p, "0123456789.");
	if (n >= 5 && n < sizeof(dsnbuf) && p[n] == ':' &&
	    (p[0] == '4' || p[0] == '5') && p[1] == '.') {
		memcpy(dsnbuf, p, n);
		dsnbuf[n] = '\0';
		dsn = dsnbuf;
		p += n + 1;
	}
	if ((p[0] == '4' || p[0] == '5') && strspn(p, "0123456789") == 3 &&
	    (p[3] == ' ' || p[3] == '\0')) {
		memcpy(codebuf, p, 3);
		codebuf[3] = '\0';
		code = codebuf;
		p += 3;
	} else {
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			size_t wl = strlen(words[i].word);

			if (strncmp(p, words[i].word, wl) == 0 &&
			    (p[wl] == ' ' || p[wl] == '\0')) {
				code = words[i].code;
				if (dsn == NULL)
					dsn = words[i].dsn;
				p += wl;
				break;
			}
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (code == NULL)
		code = dsn != NULL && dsn[0] == '4' ? "450" : "550";
	if (dsn == NULL || dsn[0] != code[0])
		dsn = code[0] == '4' ? "4.0.0" : "5.1.1";
	return rw_whyf("%s %s %.300s", code, dsn,
	    *p != '\0' ? p : "User unknown");
}

/* Expansion state of one recipient. */
struct rw_vexp {
	char	**qlocal, **qdomain;	/* queue of addresses to expand */
	unsigned *qdepth;
	size_t	  qn, qi;
	char	**seen;			/* expanded already (lowercase) */
	char	**out;			/* final addresses, external form */
	size_t	  nout;
	bool	  truncated;
};

static void
rw_vexp_push(struct rw_vexp *v, const char *local, const char *domain,
    unsigned depth)
{
	v->qlocal = xreallocarray(v->qlocal, v->qn + 1, sizeof(char *));
	v->qdomain = xreallocarray(v->qdomain, v->qn + 1, sizeof(char *));
	v->qdepth = xreallocarray(v->qdepth, v->qn + 1, sizeof(unsigned));
	v->qlocal[v->qn] = xstrdup(local);
	v->qdomain[v->qn] = xstrdup(domain);
	v->qdepth[v->qn] = depth;
	v->qn++;
}

static void
rw_vexp_final(struct rw_vexp *v, const char *external)
{
	if (strv_contains_case(v->out, external))
		return;
	if (v->nout >= MAX_ALIAS_EXPANSION) {
		v->truncated = true;
		return;
	}
	strv_push(&v->out, external);
	v->nout++;
}

static void
rw_vexp_free(struct rw_vexp *v)
{
	size_t i;

	for (i = 0; i < v->qn; i++) {
		free(v->qlocal[i]);
		free(v->qdomain[i]);
	}
	free(v->qlocal);
	free(v->qdomain);
	free(v->qdepth);
	strv_free(&v->seen);
	strv_free(&v->out);
}

/*
 * $virtual_alias_maps for local@domain (whose external form is orig),
 * breadth first.  Returns 1 with v->out, 0 with rw_why (unknown, or an
 * error: result), -1 with rw_why.
 */
static int
rw_virtual(struct rw_vexp *v, const char *local, const char *domain,
    const char *orig)
{
	struct rw_table *t = rw_table_get(RW_VIRTUAL_ALIAS);
	bool prop = rw_class_on("propagate_unmatched_extensions", "virtual");

	v->out = xcalloc(1, sizeof(char *));
	v->seen = xcalloc(1, sizeof(char *));
	rw_vexp_push(v, local, domain, 0);
	for (v->qi = 0; v->qi < v->qn; v->qi++) {
		const char *l = v->qlocal[v->qi], *d = v->qdomain[v->qi];
		unsigned depth = v->qdepth[v->qi];
		char *key, *value = NULL, *ext = NULL, *ext_out;
		const char *vv;
		char **elems;
		size_t i;
		int rc;

		key = rw_join(l, d);
		if (depth == 0)
			ext_out = xstrdup(orig);
		else
			ext_out = xstrdup(key);
		str_lower(key);
		if (depth > MAX_ALIAS_DEPTH ||
		    v->nout + (v->qn - v->qi) > MAX_ALIAS_EXPANSION)
			v->truncated = true;
		if (v->truncated || strv_contains_case(v->seen, key)) {
			/* Seen: a loop ends here, the address stays. */
			rw_vexp_final(v, ext_out);
			free(key);
			free(ext_out);
			continue;
		}
		strv_push(&v->seen, key);
		free(key);
		rc = rw_find(t, "virtual_alias_maps", l, d, rw_localish(d),
		    &value, &ext, NULL);
		if (rc < 0) {
			free(ext_out);
			return -1;
		}
		if (rc == 0) {
			if (d[0] != '\0' &&
			    rw_domain_listed("virtual_alias_domains", d)) {
				if (depth == 0) {
					free(ext_out);
					rw_whyf("550 5.1.1 User unknown in "
					    "virtual alias table");
					return 0;
				}
				log_warning("<%s>: expanded from <%s>: User "
				    "unknown in virtual alias table: dropped",
				    ext_out, orig);
			} else
				rw_vexp_final(v, ext_out);
			free(ext_out);
			continue;
		}
		vv = value;
		while (*vv == ' ' || *vv == '\t')
			vv++;
		if (str_starts_case(vv, "error:")) {
			/* sendmail virtusertable: reject with this text. */
			free(ext);
			if (depth == 0) {
				rw_error_result(vv);
				free(value);
				free(ext_out);
				return 0;
			}
			log_warning("<%s>: expanded from <%s>: rejected by "
			    "virtual_alias_maps: dropped", ext_out, orig);
			free(value);
			free(ext_out);
			continue;
		}
		elems = rw_result_split(value, true);
		free(value);
		if (elems[0] == NULL)
			rw_vexp_final(v, ext_out);
		for (i = 0; elems[i] != NULL; i++) {
			char *nl, *nd;

			rw_result_addr(elems[i], l, prop ? ext : NULL, true,
			    &nl, &nd);
			if (rw_same(nl, nd, l, d))
				rw_vexp_final(v, ext_out);	/* kept */
			else if (v->nout + (v->qn - v->qi - 1) >=
			    MAX_ALIAS_EXPANSION)
				v->truncated = true;
			else
				rw_vexp_push(v, nl, nd, depth + 1);
			free(nl);
			free(nd);
		}
		strv_free(&elems);
		free(ext);
		free(ext_out);
	}
	if (v->truncated)
		log_warning("<%s>: virtual alias expansion stopped at %d "
		    "levels or %d addresses", orig, MAX_ALIAS_DEPTH,
		    MAX_ALIAS_EXPANSION);
	if (v->out[0] == NULL) {
		rw_whyf("550 5.1.1 User unknown in virtual alias table");
		return 0;
	}
	return 1;
}

int
rewrite_recipient(const char *addr, char ***addrs_r, const char **why_r)
{
	struct rw_vexp v;
	char *local, *domain, *orig;
	bool changed = false;
	int rc;

	*addrs_r = NULL;
	rw_split(addr, &local, &domain);
	memset(&v, 0, sizeof(v));
	pthread_mutex_lock(&rw_lock);
	if (rw_canonical(false, "envelope_recipient", &local, &domain,
	    &changed) < 0) {
		pthread_mutex_unlock(&rw_lock);
		*why_r = rw_why;
		free(local);
		free(domain);
		return -1;
	}
	orig = changed ? rw_join(local, domain) : xstrdup(addr);
	rc = rw_virtual(&v, local, domain, orig);
	pthread_mutex_unlock(&rw_lock);
	if (rc > 0) {
		*addrs_r = v.out;
		v.out = NULL;
	} else
		*why_r = rw_why;
	rw_vexp_free(&v);
	free(orig);
	free(local);
	free(domain);
	return rc;
}

char *
rewrite_recipient_reply(const char *addr, int ret, const char *why)
{
	char code[4] = "550", dsn[16] = "5.1.1";
	const char *text = "User unknown in virtual alias table";
	size_t n;

	if (ret < 0)
		return xasprintf("451 4.3.0 <%s>: Temporary lookup failure",
		    addr);
	if (why != NULL && strspn(why, "0123456789") == 3 && why[3] == ' ') {
		memcpy(code, why, 3);
		why += 4;
		n = strcspn(why, " ");
		if (n > 0 && n < sizeof(dsn) && why[n] == ' ') {
			memcpy(dsn, why, n);
			dsn[n] = '\0';
			text = why + n + 1;
		}
	}
	return xasprintf("%s %s <%s>: Recipient address rejected: %s", code,
	    dsn, addr, text);
}

/* ---- virtual mailboxes ---- */

static int
rw_virtual_id(enum rw_tab id, const char *local, const char *domain,
    long long *v_r)
{
	struct rw_table *t = rw_table_get(id);
	char *value = NULL, *ext = NULL;
	int rc;

	if (rw_table_empty(t)) {
		rw_whyf("%s is not set", rw_tab_param[id]);
		return REWRITE_VMBOX_UNUSABLE;
	}
	rc = rw_find(t, rw_tab_param[id], local, domain, false, &value, &ext,
	    NULL);
	free(ext);
	if (rc < 0)
		return REWRITE_VMBOX_TEMPFAIL;
	if (rc == 0) {
		free(value);
		rw_whyf("%s: no entry for %s@%s", rw_tab_param[id], local,
		    domain);
		return REWRITE_VMBOX_UNUSABLE;
	}
	if (str_to_ll(str_trim(value), 0, UINT_MAX - 1, v_r) < 0) {
		rw_whyf("%s: bad number \"%.40s\" for %s@%s",
		    rw_tab_param[id], value, local, domain);
		free(value);
		return REWRITE_VMBOX_UNUSABLE;
	}
	free(value);
	return 0;
}

void
rewrite_vmbox_free(struct rewrite_vmbox *vb)
{
	free(vb->path);
	free(vb->user);
	free(vb->home);
	memset(vb, 0, sizeof(*vb));
}

int
rewrite_virtual_lookup(const char *addr, struct rewrite_vmbox *vb,
    const char **why_r)
{
	struct userdb_user pw;
	struct rw_table *t;
	char *local, *domain, *value = NULL, *ext = NULL;
	long long id, minimum;
	int rc;

	memset(vb, 0, sizeof(*vb));
	memset(&pw, 0, sizeof(pw));
	rw_split(addr, &local, &domain);
	pthread_mutex_lock(&rw_lock);
	t = rw_table_get(RW_VIRTUAL_MAILBOX);
	/* virtual(8): user+ext@domain, user@domain, @domain; no bare user. */
	rc = rw_find(t, "virtual_mailbox_maps", local, domain, false, &value,
	    &ext, &pw);
	free(ext);
	if (rc <= 0)
		goto out;
	if (pw.name != NULL) {
		vb->user = pw.name;
		vb->home = pw.home;
		vb->uid = pw.uid;
		vb->gid = pw.gid;
		pw.name = pw.home = NULL;
	} else {
		const char *base = cfg_get("virtual_mailbox_base");
		char *v = str_trim(value);

		if (*v == '\0' || (base[0] != '/' && v[0] != '/')) {
			rw_whyf("virtual_mailbox_maps: %s for %s", *v == '\0' ?
			    "empty result" : "virtual_mailbox_base is not an "
			    "absolute path", addr);
			rc = REWRITE_VMBOX_UNUSABLE;
			goto out;
		}
		vb->path = base[0] != '\0' ? xasprintf("%s/%s", base, v) :
		    xstrdup(v);
		if ((rc = rw_virtual_id(RW_VIRTUAL_UID, local, domain,
		    &id)) < 0)
			goto out;
		vb->uid = (uid_t)id;
		if ((rc = rw_virtual_id(RW_VIRTUAL_GID, local, domain,
		    &id)) < 0)
			goto out;
		vb->gid = (gid_t)id;
		rc = REWRITE_VMBOX_FOUND;
	}
	minimum = cfg_get_int("virtual_minimum_uid");
	if ((long long)vb->uid < minimum) {
		rw_whyf("uid %lu of %s is below virtual_minimum_uid %lld",
		    (unsigned long)vb->uid, addr, minimum);
		rc = REWRITE_VMBOX_UNUSABLE;
	}
out:
	pthread_mutex_unlock(&rw_lock);
	if (rc < 0) {
		*why_r = rw_why;
		rewrite_vmbox_free(vb);
	} else if (rc == 0)
		rewrite_vmbox_free(vb);
	userdb_user_free(&pw);
	free(value);
	free(local);
	free(domain);
	return rc;
}

/* The inbox mail_location names for a user (maildir ends in '/'). */
static char *
rw_user_inbox(const char *user, const char *home)
{
	const char *loc = cfg_get("mail_location");
	const char *inbox = strstr(loc, ":INBOX=");
	char *path, *tmpl, *out;
	bool maildir = str_starts_case(loc, "maildir:");

	if (!maildir && inbox != NULL)
		tmpl = xstrndup(inbox + 7, strcspn(inbox + 7, ":"));
	else {
		const char *p = strchr(loc, ':');

		p = p != NULL ? p + 1 : loc;
		tmpl = xstrndup(p, strcspn(p, ":"));
	}
	path = cfg_expand_user(tmpl, user, home);
	out = maildir ? xasprintf("%s/", path) : xstrdup(path);
	free(path);
	free(tmpl);
	return out;
}

int
rewrite_virtual_mailbox(const char *addr, char **path_r, uid_t *uid_r,
    gid_t *gid_r, const char **why_r)
{
	struct rewrite_vmbox vb;
	int rc = rewrite_virtual_lookup(addr, &vb, why_r);

	if (rc <= 0)
		return rc;
	*path_r = vb.path != NULL ? xstrdup(vb.path) :
	    rw_user_inbox(vb.user, vb.home);
	*uid_r = vb.uid;
	*gid_r = vb.gid;
	rewrite_vmbox_free(&vb);
	return 1;
}

/* ---- BCC ---- */

static int
rw_bcc_one(enum rw_tab id, const char *addr, char ***out)
{
	struct rw_table *t = rw_table_get(id);
	char *local, *domain, *value = NULL, *ext = NULL;
	char **elems;
	int rc;

	if (rw_table_empty(t))
		return 0;
	rw_split(addr, &local, &domain);
	rc = rw_find(t, rw_tab_param[id], local, domain, rw_localish(domain),
	    &value, &ext, NULL);
	if (rc > 0) {
		elems = rw_result_split(value, false);
		if (elems[0] != NULL) {
			char *nl, *nd, *a;

			rw_result_addr(elems[0], local, NULL, false, &nl, &nd);
			a = rw_join(nl, nd);
			if (!strv_contains_case(*out, a))
				strv_push(out, a);
			free(a);
			free(nl);
			free(nd);
		}
		strv_free(&elems);
	}
	free(value);
	free(ext);
	free(local);
	free(domain);
	return rc < 0 ? -1 : 0;
}

int
rewrite_bcc_lookup(const char *sender, char *const *rcpts, char ***bcc_r,
    const char **why_r)
{
	char **out = xcalloc(1, sizeof(*out));
	const char *always;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&rw_lock);
	always = cfg_get("always_bcc");
	if (always[0] != '\0') {
		char *a = addr_qualify(always);

		strv_push(&out, a);
		free(a);
	}
	if (sender[0] != '\0')
		rc = rw_bcc_one(RW_SENDER_BCC, sender, &out);
	for (i = 0; rc == 0 && rcpts != NULL && rcpts[i] != NULL; i++)
		rc = rw_bcc_one(RW_RECIPIENT_BCC, rcpts[i], &out);
	pthread_mutex_unlock(&rw_lock);
	if (rc < 0) {
		*why_r = rw_why;
		strv_free(&out);
		*bcc_r = NULL;
		return -1;
	}
	*bcc_r = out;
	return 0;
}

char **
rewrite_bcc(const char *sender, char *const *rcpts)
{
	const char *why;
	char **out;

	if (rewrite_bcc_lookup(sender, rcpts, &out, &why) < 0) {
		log_warning("BCC lookup failed: %s", why);
		return xcalloc(1, sizeof(char *));
	}
	return out;
}

/* ---- generic ---- */

char *
rewrite_generic(const char *addr)
{
	char *local, *domain, *out = NULL;
	bool changed = false;

	if (addr[0] == '\0')
		return NULL;
	rw_split(addr, &local, &domain);
	pthread_mutex_lock(&rw_lock);
	if (rw_map11(RW_GENERIC, "generic", &local, &domain, &changed) < 0) {
		log_warning("%s", rw_why);
		changed = false;
	}
	pthread_mutex_unlock(&rw_lock);
	if (changed)
		out = rw_join(local, domain);
	free(local);
	free(domain);
	return out;
}

/* ---- header addresses ---- */

/* Postfix's header_opts: which fields hold sender or recipient lists. */
static const struct {
	const char	*name;
	bool		 sender;
} rw_hdrs[] = {
	{ "Apparently-To", false },
	{ "Bcc", false },
	{ "Cc", false },
	{ "Disposition-Notification-To", true },
	{ "Errors-To", true },
	{ "From", true },
	{ "Mail-Followup-To", true },
	{ "Reply-To", true },
	{ "Resent-Bcc", false },
	{ "Resent-Cc", false },
	{ "Resent-From", true },
	{ "Resent-Reply-To", false },
	{ "Resent-Sender", true },
	{ "Resent-To", false },
	{ "Return-Receipt-To", true },
	{ "Sender", true },
	{ "To", false },
};

/* Index into rw_hdrs, or -1. */
static int
rw_hdr_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(rw_hdrs) / sizeof(rw_hdrs[0]); i++) {
		if (strlen(rw_hdrs[i].name) == len &&
		    strncasecmp(rw_hdrs[i].name, name, len) == 0)
			return (int)i;
	}
	return -1;
}

bool
rewrite_header_is_address(const char *name, size_t len)
{
	return rw_hdr_find(name, len) >= 0;
}

bool
rewrite_header_active(enum rewrite_hdr how)
{
	bool on = false;

	if (how == REWRITE_HDR_GENERIC)
		return cfg_get("smtp_generic_maps")[0] != '\0';
	pthread_mutex_lock(&rw_lock);
	if (cfg_get("sender_canonical_maps")[0] != '\0')
		on = rw_class_on("sender_canonical_classes", "header_sender");
	if (!on && cfg_get("recipient_canonical_maps")[0] != '\0')
		on = rw_class_on("recipient_canonical_classes",
		    "header_recipient");
	if (!on && cfg_get("canonical_maps")[0] != '\0')
		on = rw_class_on("canonical_classes", "header_sender") ||
		    rw_class_on("canonical_classes", "header_recipient");
	if (!on && cfg_get("masquerade_domains")[0] != '\0')
		on = rw_class_on("masquerade_classes", "header_sender") ||
		    rw_class_on("masquerade_classes", "header_recipient");
	pthread_mutex_unlock(&rw_lock);
	return on;
}

enum rw_tok_type {
	RW_TOK_ATOM,
	RW_TOK_QSTR,
	RW_TOK_DLIT,
	RW_TOK_SPECIAL
};

struct rw_tok {
	enum rw_tok_type type;
	size_t		 start, end;	/* bytes of the value */
	char		 c;		/* RW_TOK_SPECIAL: which one */
	bool		 space_before;	/* white space or comment before */
};

static bool
rw_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 5322 §3.2.3 specials, except '.' (kept inside atoms). */
static bool
rw_special(char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,\"", c) != NULL;
}

/*
 * Tokens of a header value.  Comments count as white space; unclosed
 * quotes, literals and comments end at the end of the value.
 */
static struct rw_tok *
rw_tokenize(const char *v, size_t len, size_t *n_r)
{
	struct rw_tok *toks = NULL;
	size_t i = 0, n = 0, cap = 0;
	bool sp = false;

	while (i < len) {
		struct rw_tok t;
		char c = v[i];

		if (rw_wsp(c)) {
			sp = true;
			i++;
			continue;
		}
		if (c == '(') {
			size_t depth = 1;

			for (i++; i < len && depth > 0; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')')
					depth--;
			}
			sp = true;
			continue;
		}
		memset(&t, 0, sizeof(t));
		t.start = i;
		t.space_before = sp;
		sp = false;
		if (c == '"' || c == '[') {
			char close = c == '"' ? '"' : ']';

			t.type = c == '"' ? RW_TOK_QSTR : RW_TOK_DLIT;
			for (i++; i < len && v[i] != close; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
			}
			if (i < len)
				i++;
		} else if (rw_special(c)) {
			t.type = RW_TOK_SPECIAL;
			t.c = c;
			i++;
		} else {
			t.type = RW_TOK_ATOM;
			while (i < len && !rw_wsp(v[i]) && !rw_special(v[i]))
				i++;
		}
		t.end = i;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			toks = xreallocarray(toks, cap, sizeof(*toks));
		}
		toks[n++] = t;
	}
	*n_r = n;
	return toks;
}

static bool
rw_tok_is(const struct rw_tok *t, char c)
{
	return t->type == RW_TOK_SPECIAL && t->c == c;
}

/* An RFC 2047 encoded word: never an address. */
static bool
rw_encoded_word(const char *s, size_t len)
{
	return len >= 4 && s[0] == '=' && s[1] == '?' && s[len - 2] == '?' &&
	    s[len - 1] == '=';
}

/* Rewrite one header address (internal form); true when it changed. */
static bool
rw_hdr_addr(enum rewrite_hdr how, bool sender, char **local, char **domain)
{
	bool changed = false, bare = (*domain)[0] == '\0';
	int rc;

	/* A bare name in a header is looked up as name@$myorigin. */
	if (bare) {
		free(*domain);
		*domain = xstrdup(cfg_get("myorigin"));
	}
	if (how == REWRITE_HDR_GENERIC)
		rc = rw_map11(RW_GENERIC, "generic", local, domain, &changed);
	else
		rc = rw_canonical(sender, sender ? "header_sender" :
		    "header_recipient", local, domain, &changed);
	if (rc < 0) {
		/* No error path in a header: the address stays. */
		log_warning("header address not rewritten: %s", rw_why);
		return false;
	}
	return changed;
}

/*
 * One mailbox: tokens [a, b) should be an addr-spec.  When it is one and
 * it changes, its bytes are replaced in out (copied up to it from *pos).
 */
static void
rw_hdr_mailbox(const char *v, const struct rw_tok *toks, size_t a,
    size_t b, enum rewrite_hdr how, bool sender, struct buf *out,
    size_t *pos, bool *changed_r)
{
	struct buf local;
	char *l, *d = NULL, *ext;
	size_t k = a;

	buf_init(&local, 0);
	while (k < b && (toks[k].type == RW_TOK_ATOM ||
	    toks[k].type == RW_TOK_QSTR)) {
		const struct rw_tok *t = &toks[k];

		/* "Bob Smith" is a phrase, not a local part. */
		if (k > a && t->space_before)
			goto skip;
		if (t->type == RW_TOK_ATOM)
			buf_append(&local, v + t->start, t->end - t->start);
		else {
			size_t i;

			for (i = t->start + 1; i < t->end; i++) {
				if (v[i] == '"' && i == t->end - 1)
					break;
				if (v[i] == '\\' && i + 1 < t->end)
					i++;
				buf_append_char(&local, v[i]);
			}
		}
		k++;
	}
	if (k == a || (k == a + 1 && toks[a].type == RW_TOK_ATOM &&
	    rw_encoded_word(v + toks[a].start, toks[a].end - toks[a].start)))
		goto skip;
	if (k < b) {
		if (!rw_tok_is(&toks[k], '@') || k + 1 >= b ||
		    (toks[k + 1].type != RW_TOK_ATOM &&
		    toks[k + 1].type != RW_TOK_DLIT) || k + 2 != b)
			goto skip;
		d = xstrndup(v + toks[k + 1].start,
		    toks[k + 1].end - toks[k + 1].start);
	} else
		d = xstrdup("");
	l = buf_steal(&local);
	if (rw_hdr_addr(how, sender, &l, &d)) {
		ext = rw_join(l, d);
		buf_append(out, v + *pos, toks[a].start - *pos);
		buf_append_str(out, ext);
		*pos = toks[b - 1].end;
		*changed_r = true;
		free(ext);
	}
	free(l);
skip:
	free(d);
	buf_free(&local);
}

char *
rewrite_header_value(const char *name, const char *value,
    enum rewrite_hdr how)
{
	struct rw_tok *toks;
	struct buf out;
	size_t n, i = 0, pos = 0, len = strlen(value), count = 0;
	bool sender, changed = false;
	int h = rw_hdr_find(name, strlen(name));

	if (h < 0 || len > REWRITE_MAX_HEADER_VALUE)
		return NULL;
	sender = rw_hdrs[h].sender;
	toks = rw_tokenize(value, len, &n);
	buf_init(&out, 0);
	pthread_mutex_lock(&rw_lock);
	while (i < n && count < REWRITE_MAX_HEADER_ADDRS) {
		size_t seg = i, j, lt = SIZE_MAX, gt = SIZE_MAX, a, b;
		bool in_angle = false;

		for (j = i; j < n; j++) {
			const struct rw_tok *t = &toks[j];

			if (t->type != RW_TOK_SPECIAL)
				continue;
			if (in_angle) {
				if (t->c == '>') {
					in_angle = false;
					gt = j;
				}
				continue;
			}
			if (t->c == '<' && lt == SIZE_MAX) {
				lt = j;
				in_angle = true;
			} else if (t->c == ':') {
				/* "group-name:" (RFC 5322 §3.4): its name
				 * is a phrase, the members follow. */
				seg = j + 1;
				lt = gt = SIZE_MAX;
			} else if (t->c == ',' || t->c == ';')
				break;
		}
		if (lt != SIZE_MAX) {
			a = lt + 1;
			b = gt != SIZE_MAX ? gt : j;
			/* obs-route (RFC 5322 §4.4): "@a,@b:" is dropped
			 * from the lookup, kept in the bytes. */
			if (a < b && rw_tok_is(&toks[a], '@')) {
				while (a < b && !rw_tok_is(&toks[a], ':'))
					a++;
				a++;
			}
		} else {
			a = seg;
			b = j;
		}
		if (a < b) {
			count++;
			rw_hdr_mailbox(value, toks, a, b, how, sender, &out,
			    &pos, &changed);
		}
		i = j + 1;
	}
	pthread_mutex_unlock(&rw_lock);
	free(toks);
	if (!changed) {
		buf_free(&out);
		return NULL;
	}
	buf_append(&out, value + pos, len - pos);
	return buf_steal(&out);
}
