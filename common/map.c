/*
 * map: Postfix-style lookup tables (see map.h, DESIGN §5).
 *
 *   hash:PATH       Berkeley DB hash PATH.db, built from PATH by map_build()
 *   texthash:PATH   PATH read into a sorted in-memory table
 *   cidr:PATH       "network/len value" lines, first match wins
 *   inline:{ k=v, { key = text with spaces } }
 *   static:VALUE    VALUE for every key (static:{ text } for spaces)
 *   unix:passwd.byname, unix:group.byname
 *   proxy:TYPE:NAME the table TYPE:NAME, opened directly
 *
 * Source files are Postfix's: '#' comment lines, a line starting with
 * whitespace continues the previous one, keys folded to lower case.
 * Plain tables are "key value"; aliases are "name: value" where the value
 * is kept as written (local splits it into addresses).  Malformed source
 * lines are logged and skipped, as postmap and postalias do.
 *
 * A hash: table whose .db is missing, or older than its source, does not
 * open: a stale table is an error, never silently old answers.
 *
 * Not here: regexp/pcre tables, and a proxymap service (proxy: tables are
 * opened in the process that uses them).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg_params.h"
#include "log.h"
#include "map.h"
#include "netaddr.h"
#include "str.h"
#include "xmalloc.h"

/* A physical source line; a logical (continued) line; entries of a table
 * kept in memory. */
#define MAX_MAP_LINE		(64 * 1024)
#define MAX_MAP_LOGICAL		(1024 * 1024)
#define MAX_MAP_ENTRIES		(4 * 1024 * 1024)
/* Tables in one list value (alias_maps = a, b, c ...). */
#define MAX_MAP_LIST		64

enum map_type {
	MAP_HASH,
	MAP_TEXTHASH,
	MAP_CIDR,
	MAP_INLINE,
	MAP_STATIC,
	MAP_UNIX
};

struct map_entry {
	char	*key;
	char	*value;
	size_t	 pos;		/* line order: of equal keys the first wins */
};

struct map_cidr {
	struct netaddr	 net;
	char		*value;
};

struct map {
	enum map_type	 type;
	enum map_kind	 kind;
	char		*spec;		/* as given, for messages */
	char		*path;		/* source file (hash, texthash, cidr) */
	char		*dbpath;	/* hash: PATH.db */
	DB		*db;
	struct map_entry *entries;	/* texthash, inline: sorted by key */
	size_t		 nentries;
	struct map_cidr	*cidr;
	size_t		 ncidr;
	char		*value;		/* static: */
	bool		 group;		/* unix:group.byname */
	struct stat	 st;		/* of the file read (db or source) */
};

struct map_list {
	struct map	**maps;
	size_t		  n;
};

static char map_errbuf[1024];

static const char * __attribute__((format(printf, 1, 2)))
map_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(map_errbuf, sizeof(map_errbuf), fmt, ap);
	va_end(ap);
	return map_errbuf;
}

/*
 * Source files.
 */

struct map_reader {
	FILE		*fp;
	const char	*path;
	char		*line;
	size_t		 cap;
	int		 lineno;
	bool		 pending;	/* line holds the next logical start */
	struct buf	 logical;
};

/*
 * Next logical line into r->logical; *start_r its first line number.
 * Returns 1, 0 at end of file, -1 on read error.
 */
static int
map_reader_next(struct map_reader *r, int *start_r)
{
	ssize_t n;
	bool have = false, skip = false;

	buf_reset(&r->logical);
	if (r->pending) {
		r->pending = false;
		have = true;
		*start_r = r->lineno;
		if (buf_append_str(&r->logical, r->line) < 0)
			skip = true;
	}
	while ((n = getline(&r->line, &r->cap, r->fp)) >= 0) {
		char *t;

		r->lineno++;
		if (n > MAX_MAP_LINE || (size_t)n != strlen(r->line)) {
			log_warning("%s:%d: line too long or holds a NUL "
			    "byte: skipped", r->path, r->lineno);
			continue;
		}
		while (n > 0 && (r->line[n - 1] == '\n' ||
		    r->line[n - 1] == '\r'))
			r->line[--n] = '\0';
		t = r->line + strspn(r->line, " \t");
		if (*t == '\0' || *t == '#')
			continue;
		if (t != r->line) {
			if (!have) {
				log_warning("%s:%d: continuation line without "
				    "a line before it: skipped", r->path,
				    r->lineno);
				continue;
			}
			if (!skip && (buf_append_char(&r->logical, ' ') < 0 ||
			    buf_append_str(&r->logical, str_trim(t)) < 0))
				skip = true;
			continue;
		}
		if (have) {
			r->pending = true;
			break;
		}
		have = true;
		*start_r = r->lineno;
		if (buf_append_str(&r->logical, r->line) < 0)
			skip = true;
	}
	if (n < 0 && ferror(r->fp))
		return -1;
	if (have && skip) {
		log_warning("%s:%d: entry too long: skipped", r->path,
		    *start_r);
		return map_reader_next(r, start_r);
	}
	return have ? 1 : 0;
}

/*
 * Split a logical line into a malloc'ed lowercase key and value.
 * Returns 0, or -1 (logged) for a malformed line.
 */
static int
map_split_line(const char *path, int lineno, enum map_kind kind, char *text,
    char **key_r, char **value_r)
{
	char *k, *v;

	if (kind == MAP_KIND_ALIASES) {
		char *colon;

		if (*text == '"') {
			/* aliases(5): a quoted name may hold spaces. */
			char *close = strchr(text + 1, '"');

			colon = close == NULL ? NULL : strchr(close, ':');
		} else
			colon = strchr(text, ':');
		if (colon == NULL) {
			log_warning("%s:%d: need name:value pair", path,
			    lineno);
			return -1;
		}
		*colon = '\0';
		k = str_trim(text);
		if (k[0] == '"' && strlen(k) >= 2 && k[strlen(k) - 1] == '"') {
			k[strlen(k) - 1] = '\0';
			k++;
		}
		v = str_trim(colon + 1);
		if (*k == '\0') {
			log_warning("%s:%d: missing alias name", path, lineno);
			return -1;
		}
	} else {
		size_t klen = strcspn(text, " \t");

		k = text;
		v = text + klen;
		if (*v != '\0')
			*v++ = '\0';
		v = str_trim(v);
		if (*v == '\0') {
			log_warning("%s:%d: expected format: key whitespace "
			    "value", path, lineno);
			return -1;
		}
	}
	*key_r = str_lower(xstrdup(k));
	*value_r = xstrdup(v);
	return 0;
}

static int
map_entry_cmp(const void *a, const void *b)
{
	const struct map_entry *ea = a, *eb = b;
	int c = strcmp(ea->key, eb->key);

	if (c != 0)
		return c;
	return ea->pos < eb->pos ? -1 : ea->pos > eb->pos;
}

/* Sort entries by key; of equal keys the first one in the file wins. */
static void
map_entries_finish(struct map *m)
{
	size_t i, out = 0;

	if (m->nentries == 0)
		return;
	qsort(m->entries, m->nentries, sizeof(*m->entries), map_entry_cmp);
	for (i = 0; i < m->nentries; i++) {
		if (out > 0 &&
		    strcmp(m->entries[out - 1].key, m->entries[i].key) == 0) {
			log_warning("%s: duplicate entry \"%s\": first one "
			    "used", m->spec, m->entries[i].key);
			free(m->entries[i].key);
			free(m->entries[i].value);
			continue;
		}
		m->entries[out++] = m->entries[i];
	}
	m->nentries = out;
}

static void
map_entries_add(struct map *m, char *key, char *value)
{
	m->entries = xreallocarray(m->entries, m->nentries + 1,
	    sizeof(*m->entries));
	m->entries[m->nentries].key = key;
	m->entries[m->nentries].value = value;
	m->entries[m->nentries].pos = m->nentries;
	m->nentries++;
}

static int
map_entry_key_cmp(const void *key, const void *elem)
{
	const struct map_entry *e = elem;

	return strcmp(key, e->key);
}

static const char *
map_entries_find(const struct map *m, const char *key)
{
	const struct map_entry *e;

	if (m->nentries == 0)
		return NULL;
	e = bsearch(key, m->entries, m->nentries, sizeof(*m->entries),
	    map_entry_key_cmp);
	return e == NULL ? NULL : e->value;
}

/*
 * Opening.
 */

static void
map_free_contents(struct map *m)
{
	size_t i;

	if (m->db != NULL) {
		(void)m->db->close(m->db, 0);
		m->db = NULL;
	}
	for (i = 0; i < m->nentries; i++) {
		free(m->entries[i].key);
		free(m->entries[i].value);
	}
	free(m->entries);
	m->entries = NULL;
	m->nentries = 0;
	for (i = 0; i < m->ncidr; i++)
		free(m->cidr[i].value);
	free(m->cidr);
	m->cidr = NULL;
	m->ncidr = 0;
}

static bool
map_stat_older(const struct stat *a, const struct stat *b)
{
	if (a->st_mtim.tv_sec != b->st_mtim.tv_sec)
		return a->st_mtim.tv_sec < b->st_mtim.tv_sec;
	return a->st_mtim.tv_nsec < b->st_mtim.tv_nsec;
}

static const char *
map_rebuild_hint(const struct map *m)
{
	static char hint[600];

	if (m->kind == MAP_KIND_ALIASES)
		return "run postern aliases";
	(void)snprintf(hint, sizeof(hint), "run postern map build hash:%s",
	    m->path);
	return hint;
}

static int
map_open_hash(struct map *m, const char **error_r)
{
	struct stat src;
	int rc, fd;

	if (stat(m->dbpath, &m->st) < 0) {
		*error_r = map_error("%s: cannot open %s: %s (%s)", m->spec,
		    m->dbpath, strerror(errno), map_rebuild_hint(m));
		return -1;
	}
	if (stat(m->path, &src) == 0 && map_stat_older(&m->st, &src)) {
		*error_r = map_error("%s: %s is older than %s: %s", m->spec,
		    m->dbpath, m->path, map_rebuild_hint(m));
		return -1;
	}
	if ((rc = db_create(&m->db, NULL, 0)) != 0) {
		*error_r = map_error("%s: db_create: %s", m->spec,
		    db_strerror(rc));
		m->db = NULL;
		return -1;
	}
	if ((rc = m->db->open(m->db, NULL, m->dbpath, NULL, DB_HASH,
	    DB_RDONLY, 0)) != 0) {
		*error_r = map_error("%s: cannot open %s: %s", m->spec,
		    m->dbpath, db_strerror(rc));
		(void)m->db->close(m->db, 0);
		m->db = NULL;
		return -1;
	}
	/* Remember the file the handle reads, for map_refresh(). */
	if (m->db->fd(m->db, &fd) != 0 || fstat(fd, &m->st) < 0)
		(void)stat(m->dbpath, &m->st);
	return 0;
}

/* Read a text source (texthash, cidr) with its parser. */
static int
map_read_source(struct map *m, const char **error_r)
{
	struct map_reader r;
	int start = 0, rc;
	char *key, *value;

	memset(&r, 0, sizeof(r));
	r.path = m->path;
	if ((r.fp = fopen(m->path, "r")) == NULL) {
		*error_r = map_error("%s: cannot open %s: %s", m->spec,
		    m->path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(r.fp), &m->st) < 0)
		memset(&m->st, 0, sizeof(m->st));
	buf_init(&r.logical, MAX_MAP_LOGICAL);
	while ((rc = map_reader_next(&r, &start)) > 0) {
		char *text = (char *)buf_cstr(&r.logical);

		if (m->type == MAP_CIDR) {
			struct netaddr net;
			size_t plen = strcspn(text, " \t");
			char *v = text + plen;

			if (*v != '\0')
				*v++ = '\0';
			v = str_trim(v);
			if (netaddr_parse(text, &net) < 0 || *v == '\0') {
				log_warning("%s:%d: expected network/length "
				    "and a value: skipped", m->path, start);
				continue;
			}
			if (m->ncidr >= MAX_MAP_ENTRIES)
				break;
			m->cidr = xreallocarray(m->cidr, m->ncidr + 1,
			    sizeof(*m->cidr));
			m->cidr[m->ncidr].net = net;
			m->cidr[m->ncidr].value = xstrdup(v);
			m->ncidr++;
			continue;
		}
		if (map_split_line(m->path, start, m->kind, text, &key,
		    &value) < 0)
			continue;
		if (m->nentries >= MAX_MAP_ENTRIES) {
			free(key);
			free(value);
			break;
		}
		map_entries_add(m, key, value);
	}
	if (rc < 0)
		*error_r = map_error("%s: read %s: %s", m->spec, m->path,
		    strerror(errno));
	free(r.line);
	buf_free(&r.logical);
	(void)fclose(r.fp);
	map_entries_finish(m);
	return rc < 0 ? -1 : 0;
}

/* Strip "{ ... }" around a static: or inline: argument; NULL if not. */
static char *
map_unbrace(const char *s)
{
	size_t len = strlen(s);
	char *inner, *t, *res;

	if (len < 2 || s[0] != '{' || s[len - 1] != '}')
		return NULL;
	inner = xstrndup(s + 1, len - 2);
	t = str_trim(inner);
	res = xstrdup(t);
	free(inner);
	return res;
}

static int
map_open_inline(struct map *m, const char *arg, const char **error_r)
{
	char *inner = map_unbrace(arg);
	char **elems;
	size_t i;

	if (inner == NULL) {
		*error_r = map_error("%s: expected inline:{ key=value, ... }",
		    m->spec);
		return -1;
	}
	elems = cfg_list_split(inner);
	free(inner);
	for (i = 0; elems[i] != NULL; i++) {
		char *eq = strchr(elems[i], '=');
		char *k, *v;

		if (eq == NULL) {
			*error_r = map_error("%s: missing '=' in \"%.100s\"",
			    m->spec, elems[i]);
			strv_free(&elems);
			return -1;
		}
		*eq = '\0';
		k = str_trim(elems[i]);
		v = str_trim(eq + 1);
		if (*k == '\0') {
			*error_r = map_error("%s: empty key", m->spec);
			strv_free(&elems);
			return -1;
		}
		map_entries_add(m, str_lower(xstrdup(k)), xstrdup(v));
	}
	strv_free(&elems);
	map_entries_finish(m);
	return 0;
}

struct map *
map_open(const char *spec, enum map_kind kind, const char **error_r)
{
	struct map *m;
	const char *colon, *arg;
	size_t tlen;
	int rc = 0;

	/* proxy:TYPE:NAME is TYPE:NAME here: there is no proxymap. */
	while (strncmp(spec, "proxy:", 6) == 0)
		spec += 6;
	colon = strchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0') {
		*error_r = map_error("%s: expected type:name", spec);
		return NULL;
	}
	tlen = (size_t)(colon - spec);
	arg = colon + 1;
	m = xcalloc(1, sizeof(*m));
	m->spec = xstrdup(spec);
	m->kind = kind;
	if (tlen == 4 && strncmp(spec, "hash", 4) == 0) {
		m->type = MAP_HASH;
		m->path = xstrdup(arg);
		m->dbpath = xasprintf("%s.db", arg);
		rc = map_open_hash(m, error_r);
	} else if (tlen == 8 && strncmp(spec, "texthash", 8) == 0) {
		m->type = MAP_TEXTHASH;
		m->path = xstrdup(arg);
		rc = map_read_source(m, error_r);
	} else if (tlen == 4 && strncmp(spec, "cidr", 4) == 0) {
		m->type = MAP_CIDR;
		m->path = xstrdup(arg);
		rc = map_read_source(m, error_r);
	} else if (tlen == 6 && strncmp(spec, "inline", 6) == 0) {
		m->type = MAP_INLINE;
		rc = map_open_inline(m, arg, error_r);
	} else if (tlen == 6 && strncmp(spec, "static", 6) == 0) {
		m->type = MAP_STATIC;
		m->value = map_unbrace(arg);
		if (m->value == NULL)
			m->value = xstrdup(arg);
	} else if (tlen == 4 && strncmp(spec, "unix", 4) == 0) {
		m->type = MAP_UNIX;
		if (strcmp(arg, "group.byname") == 0)
			m->group = true;
		else if (strcmp(arg, "passwd.byname") != 0) {
			*error_r = map_error("%s: unknown unix: table "
			    "(expected passwd.byname or group.byname)", spec);
			rc = -1;
		}
	} else {
		*error_r = map_error("%s: unsupported lookup table type "
		    "\"%.*s\"", spec, (int)(tlen > 64 ? 64 : tlen), spec);
		rc = -1;
	}
	if (rc < 0) {
		/* The error text may quote m->spec: it is in map_errbuf. */
		map_close(&m);
		return NULL;
	}
	return m;
}

void
map_close(struct map **mp)
{
	struct map *m = *mp;

	if (m == NULL)
		return;
	map_free_contents(m);
	free(m->spec);
	free(m->path);
	free(m->dbpath);
	free(m->value);
	free(m);
	*mp = NULL;
}

/*
 * Lookups.
 */

static int
map_lookup_hash(struct map *m, const char *key, char **value_r)
{
	DBT k, d;
	size_t klen = strlen(key);
	int rc, pass;

	/* Postfix and sendmail store the NUL; tables from other tools may
	 * not. */
	for (pass = 0; pass < 2; pass++) {
		memset(&k, 0, sizeof(k));
		memset(&d, 0, sizeof(d));
		k.data = (void *)key;
		k.size = (u_int32_t)(klen + (pass == 0 ? 1 : 0));
		d.flags = DB_DBT_MALLOC;
		rc = m->db->get(m->db, NULL, &k, &d, 0);
		if (rc == DB_NOTFOUND)
			continue;
		if (rc != 0) {
			log_error("%s: lookup of \"%s\": %s", m->spec, key,
			    db_strerror(rc));
			return -1;
		}
		*value_r = xstrndup(d.data, d.size);
		free(d.data);
		return 1;
	}
	return 0;
}

static int
map_lookup_unix(struct map *m, const char *key, char **value_r)
{
	char buf[16384];
	int rc;

	if (m->group) {
		struct group gr, *res = NULL;

		rc = getgrnam_r(key, &gr, buf, sizeof(buf), &res);
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			return -1;
		if (res == NULL)
			return 0;
		*value_r = xasprintf("%s:%s:%ld:", gr.gr_name, "*",
		    (long)gr.gr_gid);
		return 1;
	} else {
		struct passwd pw, *res = NULL;

		rc = getpwnam_r(key, &pw, buf, sizeof(buf), &res);
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			return -1;
		if (res == NULL)
			return 0;
		*value_r = xasprintf("%s:*:%ld:%ld:%s:%s:%s", pw.pw_name,
		    (long)pw.pw_uid, (long)pw.pw_gid, pw.pw_gecos,
		    pw.pw_dir, pw.pw_shell);
		return 1;
	}
}

int
map_lookup(struct map *m, const char *key, char **value_r)
{
	char *lkey;
	const char *v;
	int rc = 0;

	*value_r = NULL;
	switch (m->type) {
	case MAP_STATIC:
		*value_r = xstrdup(m->value);
		return 1;
	case MAP_UNIX:
		/* System user names are case-sensitive. */
		return map_lookup_unix(m, key, value_r);
	case MAP_CIDR: {
		struct netaddr host;
		size_t i;

		if (netaddr_parse_host(key, &host) < 0)
			return 0;
		for (i = 0; i < m->ncidr; i++) {
			if (netaddr_match(&m->cidr[i].net, &host)) {
				*value_r = xstrdup(m->cidr[i].value);
				return 1;
			}
		}
		return 0;
	}
	default:
		break;
	}
	lkey = str_lower(xstrdup(key));
	if (m->type == MAP_HASH)
		rc = map_lookup_hash(m, lkey, value_r);
	else if ((v = map_entries_find(m, lkey)) != NULL) {
		*value_r = xstrdup(v);
		rc = 1;
	}
	free(lkey);
	return rc;
}

int
map_refresh(struct map *m, const char **error_r)
{
	struct stat st;
	const char *file;

	if (m->type != MAP_HASH && m->type != MAP_TEXTHASH &&
	    m->type != MAP_CIDR)
		return 0;
	file = m->type == MAP_HASH ? m->dbpath : m->path;
	if (stat(file, &st) == 0 && st.st_ino == m->st.st_ino &&
	    st.st_dev == m->st.st_dev && st.st_size == m->st.st_size &&
	    st.st_mtim.tv_sec == m->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == m->st.st_mtim.tv_nsec) {
		struct stat src;

		/* Same table; but an edited source makes a hash: stale. */
		if (m->type == MAP_HASH && stat(m->path, &src) == 0 &&
		    map_stat_older(&m->st, &src)) {
			*error_r = map_error("%s: %s is older than %s: %s",
			    m->spec, m->dbpath, m->path, map_rebuild_hint(m));
			return -1;
		}
		return 0;
	}
	map_free_contents(m);
	if (m->type == MAP_HASH)
		return map_open_hash(m, error_r);
	return map_read_source(m, error_r);
}

/*
 * Building hash: tables.
 */

static int
map_fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	(void)close(fd);
	return rc;
}

int
map_build(const char *spec, enum map_kind kind, const char **error_r)
{
	struct map_reader r;
	const char *path = spec;
	char *dbpath = NULL, *tmppath = NULL, *dir = NULL, *slash;
	DB *db = NULL;
	int rc, start = 0, count = 0, ret = -1;

	if (strncmp(spec, "hash:", 5) == 0)
		path = spec + 5;
	else if (strchr(spec, ':') != NULL && spec[0] != '/' &&
	    spec[0] != '.') {
		*error_r = map_error("%s: only hash: tables are built", spec);
		return -1;
	}
	if (*path == '\0') {
		*error_r = map_error("%s: missing file name", spec);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.path = path;
	if ((r.fp = fopen(path, "r")) == NULL) {
		*error_r = map_error("%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	buf_init(&r.logical, MAX_MAP_LOGICAL);
	dbpath = xasprintf("%s.db", path);
	tmppath = xasprintf("%s.db.tmp", path);
	(void)unlink(tmppath);
	if ((rc = db_create(&db, NULL, 0)) != 0) {
		db = NULL;
		*error_r = map_error("%s: db_create: %s", path,
		    db_strerror(rc));
		goto out;
	}
	if ((rc = db->open(db, NULL, tmppath, NULL, DB_HASH,
	    DB_CREATE | DB_TRUNCATE, 0644)) != 0) {
		*error_r = map_error("%s: cannot create: %s", tmppath,
		    db_strerror(rc));
		goto out;
	}
	while ((rc = map_reader_next(&r, &start)) > 0) {
		char *key, *value;
		DBT k, d;

		if (map_split_line(path, start, kind,
		    (char *)buf_cstr(&r.logical), &key, &value) < 0)
			continue;
		memset(&k, 0, sizeof(k));
		memset(&d, 0, sizeof(d));
		/* With the trailing NUL, as Postfix and sendmail store. */
		k.data = key;
		k.size = (u_int32_t)(strlen(key) + 1);
		d.data = value;
		d.size = (u_int32_t)(strlen(value) + 1);
		rc = db->put(db, NULL, &k, &d, DB_NOOVERWRITE);
		if (rc == DB_KEYEXIST)
			log_warning("%s:%d: duplicate entry \"%s\": first "
			    "one used", path, start, key);
		else if (rc != 0) {
			*error_r = map_error("%s: write: %s", tmppath,
			    db_strerror(rc));
			free(key);
			free(value);
			goto out;
		} else
			count++;
		free(key);
		free(value);
	}
	if (rc < 0) {
		*error_r = map_error("%s: read: %s", path, strerror(errno));
		goto out;
	}
	rc = db->close(db, 0);
	db = NULL;
	if (rc != 0) {
		*error_r = map_error("%s: close: %s", tmppath,
		    db_strerror(rc));
		goto out;
	}
	if (map_fsync_path(tmppath, O_RDONLY) < 0 ||
	    rename(tmppath, dbpath) < 0) {
		*error_r = map_error("%s: cannot install %s: %s", path,
		    dbpath, strerror(errno));
		goto out;
	}
	dir = xstrdup(dbpath);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		str_lcpy(dir, ".", strlen(dir) + 1);
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	(void)map_fsync_path(dir, O_RDONLY | O_DIRECTORY);
	ret = count;
out:
	if (db != NULL)
		(void)db->close(db, 0);
	if (ret < 0)
		(void)unlink(tmppath);
	free(r.line);
	buf_free(&r.logical);
	(void)fclose(r.fp);
	free(dbpath);
	free(tmppath);
	free(dir);
	return ret;
}

/*
 * Lists of tables.
 */

struct map_list *
map_list_open(const char *value, enum map_kind kind, const char **error_r)
{
	struct map_list *l = xcalloc(1, sizeof(*l));
	char **specs = cfg_list_split(value);
	size_t i;

	for (i = 0; specs[i] != NULL; i++) {
		struct map *m;

		if (i >= MAX_MAP_LIST) {
			*error_r = map_error("too many tables in \"%.100s\"",
			    value);
			goto bad;
		}
		if ((m = map_open(specs[i], kind, error_r)) == NULL)
			goto bad;
		l->maps = xreallocarray(l->maps, l->n + 1, sizeof(*l->maps));
		l->maps[l->n++] = m;
	}
	strv_free(&specs);
	return l;
bad:
	strv_free(&specs);
	map_list_free(&l);
	return NULL;
}

int
map_list_lookup(struct map_list *l, const char *key, char **value_r)
{
	size_t i;

	*value_r = NULL;
	for (i = 0; i < l->n; i++) {
		int rc = map_lookup(l->maps[i], key, value_r);

		if (rc != 0)
			return rc;
	}
	return 0;
}

void
map_list_free(struct map_list **lp)
{
	struct map_list *l = *lp;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		map_close(&l->maps[i]);
	free(l->maps);
	free(l);
	*lp = NULL;
}
