/*
 * cfg: postern.conf in Postfix main.cf language (see cfg.h).
 *
 * Reading: physical lines are joined into logical "name = value" lines
 * (a line starting with whitespace continues the previous one; blank and
 * '#' lines are skipped without ending it).  The last setting of a name
 * wins.  Values are kept raw; $name references are expanded when a value
 * is looked up and the result is cached until the next load or set, so
 * the order of lines in the file does not matter, as in Postfix.
 *
 * Checking: after a file is read every value set in it is expanded and
 * checked against its type.  Unknown names, unknown $names, reference
 * loops, bad values and syntax errors become "FILE:LINE: message" errors;
 * a file with errors never replaces the configuration in use.  A name that
 * is not a parameter but is used as $name by another value is a
 * user-defined parameter (Postfix allows those); otherwise it is an error.
 *
 * Not done here: reading master.cf-style service overrides, and parsing
 * the contents of lookup tables (map.c) or restriction lists (smtpd).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "cfg_params.h"
#include "log.h"
#include "netaddr.h"
#include "str.h"
#include "xmalloc.h"

/* One physical line, one logical line, one expanded value. */
#define MAX_CFG_LINE		(64 * 1024)
#define MAX_CFG_LOGICAL		(256 * 1024)
#define MAX_CFG_EXPANDED	(1024 * 1024)
/* $name references inside one another. */
#define MAX_CFG_DEPTH		32
/* Lines of a config file, and words of a "/file" list element. */
#define MAX_CFG_LINES		100000
#define MAX_CFG_FILE_WORDS	100000
/* Bytes of a value quoted in an error message. */
#define MAX_CFG_ERR_VALUE	200

struct cfg_slot {
	const struct cfg_param *param;	/* NULL: user-defined parameter */
	char	*name;			/* user-defined only */
	char	*raw;			/* value from the file, NULL = unset */
	int	 line;			/* 0: set by cfg_set() */
	bool	 used;			/* user-defined: referenced */
	bool	 busy;			/* being expanded (loop check) */
	char	*cache;			/* expanded value */
};

struct cfg_state {
	char		*path;		/* "" for built-in defaults */
	struct cfg_slot	*known;		/* one per cfg_params[] entry */
	struct cfg_slot	*user;
	size_t		 nuser;
};

struct cfg_error {
	int	 line;
	char	*text;
};

struct cfg_errors {
	struct cfg_error *v;
	size_t		  n;
};

static struct cfg_state *cfg_cur;	/* the configuration in use */
static struct cfg_state *cfg_eval;	/* the one expansion looks at */
static struct cfg_errors cfg_errs;	/* errors of the last load */
static struct cfg_errors *cfg_sink;	/* where expansion errors go */

static const char *cfg_slot_value(struct cfg_slot *slot, int depth);

/*
 * State.
 */

static struct cfg_state *
cfg_state_new(const char *path)
{
	struct cfg_state *st = xcalloc(1, sizeof(*st));
	size_t i;

	st->path = xstrdup(path == NULL ? "" : path);
	st->known = xcalloc(cfg_params_count, sizeof(*st->known));
	for (i = 0; i < cfg_params_count; i++)
		st->known[i].param = &cfg_params[i];
	return st;
}

static void
cfg_state_clear_cache(struct cfg_state *st)
{
	size_t i;

	for (i = 0; i < cfg_params_count; i++) {
		free(st->known[i].cache);
		st->known[i].cache = NULL;
	}
	for (i = 0; i < st->nuser; i++) {
		free(st->user[i].cache);
		st->user[i].cache = NULL;
	}
}

static void
cfg_state_free(struct cfg_state **stp)
{
	struct cfg_state *st = *stp;
	size_t i;

	if (st == NULL)
		return;
	cfg_state_clear_cache(st);
	for (i = 0; i < cfg_params_count; i++)
		free(st->known[i].raw);
	for (i = 0; i < st->nuser; i++) {
		free(st->user[i].name);
		free(st->user[i].raw);
	}
	free(st->known);
	free(st->user);
	free(st->path);
	free(st);
	*stp = NULL;
}

static struct cfg_state *
cfg_current(void)
{
	if (cfg_cur == NULL)
		cfg_cur = cfg_state_new(NULL);
	/* Written only when it changes: worker threads read the config. */
	if (cfg_eval != cfg_cur)
		cfg_eval = cfg_cur;
	return cfg_cur;
}

/*
 * Expand every known parameter now, so that later lookups only read
 * (services call cfg_get() from worker threads).
 */
static void
cfg_state_fill_cache(struct cfg_state *st)
{
	size_t i;

	for (i = 0; i < cfg_params_count; i++)
		(void)cfg_slot_value(&st->known[i], 0);
}

static struct cfg_slot *
cfg_slot_find(struct cfg_state *st, const char *name)
{
	const struct cfg_param *p = cfg_param_find(name);
	size_t i;

	if (p != NULL)
		return &st->known[p - cfg_params];
	for (i = 0; i < st->nuser; i++) {
		if (strcmp(st->user[i].name, name) == 0)
			return &st->user[i];
	}
	return NULL;
}

static const char *
cfg_slot_name(const struct cfg_slot *slot)
{
	return slot->param != NULL ? slot->param->name : slot->name;
}

/*
 * Errors.
 */

static void __attribute__((format(printf, 3, 4)))
cfg_error_add(struct cfg_errors *e, int line, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (e == NULL)
		return;
	buf_init(&b, 0);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	e->v = xreallocarray(e->v, e->n + 1, sizeof(*e->v));
	e->v[e->n].line = line;
	e->v[e->n].text = buf_steal(&b);
	e->n++;
}

static void
cfg_errors_free(struct cfg_errors *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i].text);
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

/* Stable sort by line: insertion sort, error lists are short. */
static void
cfg_errors_sort(struct cfg_errors *e)
{
	size_t i, j;

	for (i = 1; i < e->n; i++) {
		struct cfg_error t = e->v[i];

		for (j = i; j > 0 && e->v[j - 1].line > t.line; j--)
			e->v[j] = e->v[j - 1];
		e->v[j] = t;
	}
}

/* Where a message about slot goes: "FILE:LINE" or "FILE" or "-o". */
static void
cfg_where(const struct cfg_slot *slot, char *dst, size_t size)
{
	const char *path = cfg_eval != NULL ? cfg_eval->path : "";

	if (slot->line > 0)
		(void)snprintf(dst, size, "%s:%d", path, slot->line);
	else if (*path != '\0')
		(void)snprintf(dst, size, "%s", path);
	else
		(void)snprintf(dst, size, "%s", "postern.conf");
}

/* Clip and escape a value for an error message. */
static char *
cfg_quote(char *dst, size_t size, const char *value)
{
	return log_escape(dst, size, value, strlen(value));
}

/*
 * Expansion: $name ${name} $(name) ${name?text} ${name:text}
 * ${name?{text1}:{text2}} and $$.  Postfix mac_expand semantics, with a
 * depth bound and a loop check instead of unbounded recursion.
 */

static bool
cfg_is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

/* Position of the '}' that closes the '{' just before s, or NULL. */
static const char *
cfg_match_brace(const char *s)
{
	int depth = 1;

	for (; *s != '\0'; s++) {
		if (*s == '{')
			depth++;
		else if (*s == '}' && --depth == 0)
			return s;
	}
	return NULL;
}

static int cfg_expand(struct cfg_slot *owner, const char *s, size_t len,
    struct buf *out, int depth);

/* Value of $name for owner's expansion; NULL after reporting an error. */
static const char *
cfg_ref_value(struct cfg_slot *owner, const char *name, bool conditional,
    int depth)
{
	struct cfg_slot *slot = cfg_slot_find(cfg_eval, name);
	char where[512];
	const char *v;

	if (slot == NULL || (slot->param == NULL && slot->raw == NULL)) {
		/* Postfix: undefined is empty; only a plain $name warns. */
		if (!conditional && owner->raw != NULL) {
			cfg_where(owner, where, sizeof(where));
			cfg_error_add(cfg_sink, owner->line,
			    "%s: unknown parameter $%s in value of %s",
			    where, name, cfg_slot_name(owner));
		}
		return "";
	}
	if (slot->param == NULL)
		slot->used = true;
	if (slot->busy) {
		if (owner->raw != NULL) {
			cfg_where(owner, where, sizeof(where));
			cfg_error_add(cfg_sink, owner->line,
			    "%s: parameter %s refers to itself through $%s",
			    where, cfg_slot_name(owner), name);
		}
		return NULL;
	}
	if (depth >= MAX_CFG_DEPTH) {
		if (owner->raw != NULL) {
			cfg_where(owner, where, sizeof(where));
			cfg_error_add(cfg_sink, owner->line,
			    "%s: $name references nested too deeply in "
			    "value of %s", where, cfg_slot_name(owner));
		}
		return NULL;
	}
	v = cfg_slot_value(slot, depth + 1);
	return v;
}

/* Expand one ${name...} or $(name); s points after the '{' or '('. */
static int
cfg_expand_braced(struct cfg_slot *owner, const char *s, const char *end,
    char close, struct buf *out, int depth)
{
	const char *p = s, *v, *text, *text_end, *t1, *t1e, *t2, *t2e;
	char *name;
	char op;
	int rc = 0;

	while (p < end && cfg_is_name_char((unsigned char)*p))
		p++;
	name = xstrndup(s, (size_t)(p - s));
	if (*p == close) {
		v = cfg_ref_value(owner, name, false, depth);
		if (v != NULL && buf_append_str(out, v) < 0)
			rc = -1;
		free(name);
		return rc;
	}
	/* Only ${name?text} and ${name:text}: p is '?' or ':'. */
	op = *p;
	text = p + 1;
	text_end = end;
	v = cfg_ref_value(owner, name, true, depth);
	free(name);
	if (v == NULL)
		return 0;
	t1 = text;
	t1e = text_end;
	t2 = t2e = NULL;
	/* Postfix 3.0: ${name?{text1}:{text2}} */
	if (op == '?' && *text == '{') {
		const char *c1 = cfg_match_brace(text + 1);

		if (c1 != NULL && c1 < text_end && c1[1] == ':' &&
		    c1[2] == '{' && text_end[-1] == '}' &&
		    cfg_match_brace(c1 + 3) == text_end - 1) {
			t1 = text + 1;
			t1e = c1;
			t2 = c1 + 3;
			t2e = text_end - 1;
		}
	} else if (op == ':' && *text == '{' &&
	    cfg_match_brace(text + 1) == text_end - 1) {
		t1 = text + 1;
		t1e = text_end - 1;
	}
	if (*v != '\0' && op == '?')
		return cfg_expand(owner, t1, (size_t)(t1e - t1), out, depth);
	if (*v == '\0' && op == ':')
		return cfg_expand(owner, t1, (size_t)(t1e - t1), out, depth);
	if (*v == '\0' && op == '?' && t2 != NULL)
		return cfg_expand(owner, t2, (size_t)(t2e - t2), out, depth);
	return 0;
}

/*
 * Append the expansion of s[0..len) to out.  Returns 0, or -1 when the
 * result would pass MAX_CFG_EXPANDED.
 */
static int
cfg_expand(struct cfg_slot *owner, const char *s, size_t len,
    struct buf *out, int depth)
{
	const char *p = s, *end = s + len;
	char where[512];

	while (p < end) {
		const char *dollar = memchr(p, '$', (size_t)(end - p));

		if (dollar == NULL) {
			if (buf_append(out, p, (size_t)(end - p)) < 0)
				return -1;
			break;
		}
		if (buf_append(out, p, (size_t)(dollar - p)) < 0)
			return -1;
		p = dollar + 1;
		if (p < end && *p == '$') {
			if (buf_append_char(out, '$') < 0)
				return -1;
			p++;
		} else if (p < end && (*p == '{' || *p == '(')) {
			char close = *p == '{' ? '}' : ')';
			const char *q = p + 1, *c;

			while (q < end && cfg_is_name_char((unsigned char)*q))
				q++;
			if (q == p + 1 || q >= end ||
			    (*q != close && (close != '}' ||
			    (*q != '?' && *q != ':')))) {
				cfg_where(owner, where, sizeof(where));
				if (owner->raw != NULL)
					cfg_error_add(cfg_sink, owner->line,
					    "%s: bad $%c...%c reference in "
					    "value of %s", where, *p, close,
					    cfg_slot_name(owner));
				if (buf_append_char(out, '$') < 0)
					return -1;
				continue;
			}
			if (*q == close)
				c = q;
			else {
				/* The '}' closing the whole ${name?text}. */
				c = cfg_match_brace(p + 1);
				if (c == NULL || c >= end) {
					cfg_where(owner, where, sizeof(where));
					if (owner->raw != NULL)
						cfg_error_add(cfg_sink,
						    owner->line, "%s: missing "
						    "'}' in value of %s", where,
						    cfg_slot_name(owner));
					return 0;
				}
			}
			if (cfg_expand_braced(owner, p + 1, c, close, out,
			    depth) < 0)
				return -1;
			p = c + 1;
		} else if (p < end && cfg_is_name_char((unsigned char)*p)) {
			const char *q = p;
			const char *v;
			char *name;

			while (q < end && cfg_is_name_char((unsigned char)*q))
				q++;
			name = xstrndup(p, (size_t)(q - p));
			v = cfg_ref_value(owner, name, false, depth);
			free(name);
			if (v != NULL && buf_append_str(out, v) < 0)
				return -1;
			p = q;
		} else {
			/* A lone '$' stays as it is. */
			if (buf_append_char(out, '$') < 0)
				return -1;
		}
	}
	return 0;
}

/* The expanded value of a slot in cfg_eval, cached; NULL inside a loop. */
static const char *
cfg_slot_value(struct cfg_slot *slot, int depth)
{
	const struct cfg_param *p = slot->param;
	const char *raw;
	char where[512];
	struct buf b;

	if (slot->cache != NULL)
		return slot->cache;
	if (slot->busy)
		return NULL;
	slot->busy = true;
	raw = slot->raw;
	if (raw == NULL && p != NULL && p->def == NULL && p->compute != NULL) {
		slot->cache = p->compute();
	} else if (p != NULL && (p->flags & CFG_F_RAW)) {
		slot->cache = xstrdup(raw != NULL ? raw : p->def);
	} else {
		if (raw == NULL)
			raw = p != NULL ? p->def : "";
		buf_init(&b, MAX_CFG_EXPANDED);
		if (cfg_expand(slot, raw, strlen(raw), &b, depth) < 0 &&
		    slot->raw != NULL) {
			cfg_where(slot, where, sizeof(where));
			cfg_error_add(cfg_sink, slot->line,
			    "%s: value of %s is too long after expansion",
			    where, cfg_slot_name(slot));
		}
		slot->cache = buf_steal(&b);
	}
	slot->busy = false;
	return slot->cache;
}

/*
 * Lists.
 */

char **
cfg_list_split(const char *value)
{
	static const char seps[] = " \t\r\n,";
	char **v = xcalloc(1, sizeof(*v));
	const char *p = value;

	for (;;) {
		const char *start;
		char *elem;

		p += strspn(p, seps);
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && strchr(seps, *p) == NULL) {
			if (*p == '{') {
				const char *c = cfg_match_brace(p + 1);

				p = c == NULL ? p + strlen(p) : c + 1;
			} else
				p++;
		}
		elem = xstrndup(start, (size_t)(p - start));
		/* A bare "{ text }" element is its text. */
		if (elem[0] == '{' && cfg_match_brace(elem + 1) ==
		    elem + strlen(elem) - 1) {
			char *inner;

			elem[strlen(elem) - 1] = '\0';
			inner = str_trim(elem + 1);
			if (*inner != '\0')
				strv_push(&v, inner);
		} else
			strv_push(&v, elem);
		free(elem);
	}
	return v;
}

FILE *
cfg_fopen_regular(const char *path)
{
	struct stat st;
	FILE *fp;
	int fd, flags, e;

	/* O_NONBLOCK: opening a FIFO does not wait for a writer. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		errno = EINVAL;
		return NULL;
	}
	if ((flags = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	if ((fp = fdopen(fd, "r")) == NULL) {
		e = errno;
		(void)close(fd);
		errno = e;
	}
	return fp;
}

/* Append the words of a "/file" list element to *v; -1 if unreadable. */
static int
cfg_list_read_file(const char *path, char ***v)
{
	FILE *fp = cfg_fopen_regular(path);
	char *line = NULL;
	size_t cap = 0, words = 0;
	ssize_t n;

	if (fp == NULL)
		return -1;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char **w;
		size_t i;
		char *t = str_trim(line);

		if (*t == '#' || *t == '\0' || n > MAX_CFG_LINE)
			continue;
		w = cfg_list_split(t);
		for (i = 0; w[i] != NULL && words < MAX_CFG_FILE_WORDS; i++) {
			strv_push(v, w[i]);
			words++;
		}
		strv_free(&w);
	}
	free(line);
	(void)fclose(fp);
	return 0;
}

/*
 * Values: parsers shared by the checker and the getters.
 */

int
cfg_parse_size(const char *s, long long *val_r)
{
	const char *p = s;
	long long n, mult = 1;
	char digits[32];
	size_t len;

	while (*p >= '0' && *p <= '9')
		p++;
	len = (size_t)(p - s);
	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len);
	digits[len] = '\0';
	if (str_to_ll(digits, 0, LLONG_MAX, &n) < 0)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	/* Dovecot style units: k, kb, m, mb, ... (powers of 1024). */
	if (*p != '\0') {
		switch (*p | 0x20) {
		case 'b':
			mult = 1;
			break;
		case 'k':
			mult = 1024;
			break;
		case 'm':
			mult = 1024 * 1024;
			break;
		case 'g':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return -1;
		}
		p++;
		if (mult > 1 && (*p | 0x20) == 'b')
			p++;
		if (*p != '\0' && !str_case_eq(p - 1, "bytes"))
			return -1;
	}
	/* UNSAFE: checked multiplication. */
	if (n > LLONG_MAX / mult)
		return -1;
	*val_r = n * mult;
	return 0;
}

static long long
cfg_time_unit(const char *u)
{
	static const struct {
		const char	*name;
		long long	 secs;
	} units[] = {
		{ "s", 1 }, { "sec", 1 }, { "secs", 1 }, { "second", 1 },
		{ "seconds", 1 },
		{ "m", 60 }, { "min", 60 }, { "mins", 60 }, { "minute", 60 },
		{ "minutes", 60 },
		{ "h", 3600 }, { "hour", 3600 }, { "hours", 3600 },
		{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
		{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
	};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (str_case_eq(u, units[i].name))
			return units[i].secs;
	}
	return -1;
}

int
cfg_parse_time(const char *s, long long unit, long long *val_r)
{
	const char *p = s;
	long long n, mult = unit;
	char digits[32];
	size_t len;

	while (*p >= '0' && *p <= '9')
		p++;
	len = (size_t)(p - s);
	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len);
	digits[len] = '\0';
	if (str_to_ll(digits, 0, LLONG_MAX, &n) < 0)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' && (mult = cfg_time_unit(p)) < 0)
		return -1;
	/* UNSAFE: checked multiplication. */
	if (mult <= 0 || n > LLONG_MAX / mult)
		return -1;
	*val_r = n * mult;
	return 0;
}

int
cfg_parse_bool(const char *s, bool *val_r)
{
	if (str_case_eq(s, "yes") || str_case_eq(s, "true") ||
	    strcmp(s, "1") == 0)
		*val_r = true;
	else if (str_case_eq(s, "no") || str_case_eq(s, "false") ||
	    strcmp(s, "0") == 0)
		*val_r = false;
	else
		return -1;
	return 0;
}

/* Seconds of a bare number for a time parameter: its default's unit. */
static long long
cfg_param_time_unit(const struct cfg_param *p)
{
	const char *d = p->def;
	long long u;

	if (d == NULL)
		return 1;
	while (*d >= '0' && *d <= '9')
		d++;
	u = *d == '\0' ? 1 : cfg_time_unit(d);
	return u > 0 ? u : 1;
}

/*
 * Checking.
 */

static char cfg_why[256];

/* Lookup table types map.c knows (DESIGN §5). */
static const char *const cfg_map_types[] = {
	"hash", "texthash", "cidr", "inline", "static", "unix", "proxy",
	"regexp", "pcre", NULL
};

/* Check one "type:name" element; 0 or -1 with a reason. */
static int
cfg_map_spec_check(const char *spec, const char **why_r)
{
	const char *colon = strchr(spec, ':');
	const char *name;
	size_t i, tlen;

	if (colon == NULL || colon == spec) {
		*why_r = "expected type:name";
		return -1;
	}
	tlen = (size_t)(colon - spec);
	name = colon + 1;
	for (i = 0; cfg_map_types[i] != NULL; i++) {
		if (strlen(cfg_map_types[i]) == tlen &&
		    strncmp(spec, cfg_map_types[i], tlen) == 0)
			break;
	}
	if (cfg_map_types[i] == NULL) {
		char t[64];

		(void)snprintf(cfg_why, sizeof(cfg_why),
		    "unsupported lookup table type \"%s\"",
		    log_escape(t, sizeof(t), spec, tlen));
		*why_r = cfg_why;
		return -1;
	}
	if (*name == '\0') {
		*why_r = "expected type:name";
		return -1;
	}
	if (strcmp(cfg_map_types[i], "proxy") == 0) {
		if (strncmp(name, "proxy:", 6) == 0) {
			*why_r = "proxy:proxy: is not a table";
			return -1;
		}
		return cfg_map_spec_check(name, why_r);
	}
	if (strcmp(cfg_map_types[i], "inline") == 0 &&
	    (name[0] != '{' || cfg_match_brace(name + 1) !=
	    name + strlen(name) - 1)) {
		*why_r = "expected inline:{ key=value, ... }";
		return -1;
	}
	/* regexp:{ {rule}, ... } is written inline, else it is a file. */
	if ((strcmp(cfg_map_types[i], "regexp") == 0 ||
	    strcmp(cfg_map_types[i], "pcre") == 0) && name[0] == '{' &&
	    cfg_match_brace(name + 1) != name + strlen(name) - 1) {
		*why_r = "expected { {/pattern/ result}, ... }";
		return -1;
	}
	return 0;
}

/* Looks like "type:..." with a type of letters (not an IPv6 address). */
static bool
cfg_looks_like_map(const char *s)
{
	const char *p = s;

	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
		p++;
	return p > s && *p == ':';
}

static int
cfg_check_port(const char *s)
{
	long long port;

	return str_to_ll(s, 1, 65535, &port);
}

static int
cfg_check_listen_elem(const char *e)
{
	const char *colon;

	if (cfg_check_port(e) == 0)
		return 0;
	if (e[0] == '[') {
		const char *close = strchr(e, ']');
		char host[64];
		struct netaddr n;
		size_t len;

		if (close == NULL || close[1] != ':')
			return -1;
		len = (size_t)(close - e - 1);
		if (len == 0 || len >= sizeof(host))
			return -1;
		memcpy(host, e + 1, len);
		host[len] = '\0';
		if (netaddr_parse_host(host, &n) < 0 || n.family != AF_INET6)
			return -1;
		return cfg_check_port(close + 2);
	}
	colon = strrchr(e, ':');
	if (colon == NULL || colon == e || strchr(e, ':') != colon)
		return -1;
	/* ADDR: an IPv4 address, a host name or "*". */
	{
		const char *p;

		for (p = e; p < colon; p++) {
			if (!cfg_is_name_char((unsigned char)*p) && *p != '.' &&
			    *p != '-' && *p != '*')
				return -1;
		}
	}
	return cfg_check_port(colon + 1);
}

static int
cfg_check_network_elem(const char *e, const char **why_r)
{
	struct netaddr n;

	if (*e == '!')
		e++;
	if (*e == '/')
		return 0;
	if (netaddr_parse(e, &n) == 0)
		return 0;
	if (cfg_looks_like_map(e))
		return cfg_map_spec_check(e, why_r);
	*why_r = "expected network/length, host address, /file or type:table";
	return -1;
}

static int
cfg_check_domain_elem(const char *e, const char **why_r)
{
	const unsigned char *p;

	if (*e == '!')
		e++;
	if (*e == '/')
		return 0;
	if (cfg_looks_like_map(e))
		return cfg_map_spec_check(e, why_r);
	for (p = (const unsigned char *)e; *p != '\0'; p++) {
		if (*p < 0x80 && !cfg_is_name_char(*p) && *p != '.' &&
		    *p != '-' && *p != '*' && *p != '[' && *p != ']' &&
		    *p != ':') {
			*why_r = "expected domain names, /file or type:table";
			return -1;
		}
	}
	return 0;
}

static bool
cfg_enum_has(const char *words, const char *w)
{
	const char *p = words;
	size_t wl = strlen(w);

	for (;;) {
		const char *bar = strchr(p, '|');
		size_t len = bar == NULL ? strlen(p) : (size_t)(bar - p);

		if (len == wl && strncasecmp(p, w, len) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

static const char *
cfg_enum_why(const char *words)
{
	struct buf b;
	const char *p;

	buf_init(&b, sizeof(cfg_why) - 1);
	(void)buf_append_str(&b, "expected one of: ");
	for (p = words; *p != '\0'; p++) {
		if (*p == '|') {
			if (buf_append_str(&b, ", ") < 0)
				break;
		} else if (buf_append_char(&b, *p) < 0)
			break;
	}
	str_lcpy(cfg_why, buf_cstr(&b), sizeof(cfg_why));
	buf_free(&b);
	return cfg_why;
}

/* "maildir:PATH[:opts]" or "mbox:PATH[:opts]"; -1 otherwise. */
static int
cfg_check_mail_location(const char *v)
{
	const char *colon = strchr(v, ':');

	if (colon == NULL || colon[1] == '\0' || colon[1] == ':')
		return -1;
	if ((size_t)(colon - v) == 7 && strncasecmp(v, "maildir", 7) == 0)
		return 0;
	if ((size_t)(colon - v) == 4 && strncasecmp(v, "mbox", 4) == 0)
		return 0;
	return -1;
}

/*
 * virtual_mailbox_maps, and the domain list that defaults to it, may name
 * a Dovecot passwd-file whose users are full addresses (smtp/rewrite.h).
 */
static bool
cfg_passwd_file_elem(const struct cfg_param *p, const char *e)
{
	return (strcmp(p->name, "virtual_mailbox_maps") == 0 ||
	    strcmp(p->name, "virtual_mailbox_domains") == 0) &&
	    strncmp(e, "passwd-file:/", 13) == 0;
}

int
cfg_param_check(const struct cfg_param *p, const char *value,
    const char **why_r)
{
	long long n;
	bool b;
	char **list = NULL;
	size_t i;
	int rc = 0;

	switch (p->type) {
	case CFG_T_STRING:
	case CFG_T_LIST:
		return 0;
	case CFG_T_INT:
		if (str_to_ll(value, p->min, p->max, &n) < 0) {
			(void)snprintf(cfg_why, sizeof(cfg_why),
			    "expected an integer from %lld to %lld",
			    p->min, p->max);
			*why_r = cfg_why;
			return -1;
		}
		return 0;
	case CFG_T_SIZE:
		if (cfg_parse_size(value, &n) < 0) {
			*why_r = "expected a size";
			return -1;
		}
		if (n < p->min || n > p->max) {
			*why_r = "size out of range";
			return -1;
		}
		return 0;
	case CFG_T_TIME:
		if (cfg_parse_time(value, cfg_param_time_unit(p), &n) < 0) {
			*why_r = "expected a time";
			return -1;
		}
		if (n < p->min || n > p->max) {
			*why_r = "time out of range";
			return -1;
		}
		return 0;
	case CFG_T_BOOL:
		if (cfg_parse_bool(value, &b) < 0) {
			*why_r = "expected yes or no";
			return -1;
		}
		return 0;
	case CFG_T_ENUM:
		if (!(p->flags & CFG_F_MULTI)) {
			if (!cfg_enum_has(p->words, value)) {
				*why_r = cfg_enum_why(p->words);
				return -1;
			}
			return 0;
		}
		list = cfg_list_split(value);
		for (i = 0; list[i] != NULL && rc == 0; i++) {
			if (!cfg_enum_has(p->words, list[i])) {
				*why_r = cfg_enum_why(p->words);
				rc = -1;
			}
		}
		break;
	case CFG_T_LISTEN:
		list = cfg_list_split(value);
		for (i = 0; list[i] != NULL && rc == 0; i++) {
			if (cfg_check_listen_elem(list[i]) < 0) {
				*why_r = "expected PORT, ADDR:PORT or "
				    "[IPV6]:PORT";
				rc = -1;
			}
		}
		break;
	case CFG_T_MAPS:
		list = cfg_list_split(value);
		for (i = 0; list[i] != NULL && rc == 0; i++)
			rc = cfg_passwd_file_elem(p, list[i]) ? 0 :
			    cfg_map_spec_check(list[i], why_r);
		break;
	case CFG_T_NETWORKS:
		list = cfg_list_split(value);
		for (i = 0; list[i] != NULL && rc == 0; i++)
			rc = cfg_check_network_elem(list[i], why_r);
		break;
	case CFG_T_DOMAINS:
		list = cfg_list_split(value);
		for (i = 0; list[i] != NULL && rc == 0; i++)
			rc = cfg_passwd_file_elem(p, list[i]) ? 0 :
			    cfg_check_domain_elem(list[i], why_r);
		break;
	case CFG_T_PASSDB:
		if (strcmp(value, "pam") == 0 || strcmp(value, "shadow") == 0 ||
		    (strncmp(value, "passwd-file:", 12) == 0 &&
		    value[12] != '\0'))
			return 0;
		*why_r = "expected pam, shadow or passwd-file:PATH";
		return -1;
	case CFG_T_USERDB:
		if (strcmp(value, "passwd") == 0 ||
		    (strncmp(value, "passwd-file:", 12) == 0 &&
		    value[12] != '\0'))
			return 0;
		*why_r = "expected passwd or passwd-file:PATH";
		return -1;
	case CFG_T_MAILLOC:
		if (cfg_check_mail_location(value) < 0) {
			*why_r = "expected maildir:PATH or mbox:PATH";
			return -1;
		}
		return 0;
	}
	strv_free(&list);
	return rc;
}

/* Check the expanded value of a set slot; errors go to cfg_sink. */
static int
cfg_slot_check(struct cfg_slot *slot)
{
	const char *v = cfg_slot_value(slot, 0);
	const char *why = NULL;
	char where[512], q[MAX_CFG_ERR_VALUE];

	if (slot->param == NULL || v == NULL)
		return 0;
	if (cfg_param_check(slot->param, v, &why) == 0)
		return 0;
	cfg_where(slot, where, sizeof(where));
	cfg_error_add(cfg_sink, slot->line,
	    "%s: bad value for %s: \"%s\" (%s)", where, slot->param->name,
	    cfg_quote(q, sizeof(q), v), why);
	return -1;
}

/*
 * Derived defaults.  They run inside an expansion of cfg_eval.
 */

static const char *
cfg_eval_get(const char *name)
{
	struct cfg_slot *slot = cfg_slot_find(cfg_eval, name);
	const char *v;

	if (slot == NULL)
		log_panic("cfg: unknown parameter %s", name);
	v = cfg_slot_value(slot, 1);
	return v == NULL ? "" : v;
}

/* This machine's name, and its canonical name when the first has no dot. */
static char *
cfg_system_hostname(bool canonical)
{
	static char *shortname, *canonname;
	char host[256];

	if (shortname == NULL) {
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			str_lcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		shortname = xstrdup(host);
	}
	if (!canonical || strchr(shortname, '.') != NULL)
		return shortname;
	if (canonname == NULL) {
		struct addrinfo hints, *res = NULL;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_CANONNAME;
		if (getaddrinfo(shortname, NULL, &hints, &res) == 0 &&
		    res != NULL && res->ai_canonname != NULL &&
		    strchr(res->ai_canonname, '.') != NULL)
			canonname = xstrdup(res->ai_canonname);
		else
			canonname = xasprintf("%s.localdomain", shortname);
		if (res != NULL)
			freeaddrinfo(res);
	}
	return canonname;
}

char *
cfg_default_myhostname(void)
{
	const char *host = cfg_system_hostname(false);
	struct cfg_slot *md;

	if (strchr(host, '.') != NULL)
		return xstrdup(host);
	/* Postfix: a short hostname gets $mydomain when that is set. */
	md = cfg_slot_find(cfg_eval, "mydomain");
	if (md->raw != NULL && !md->busy) {
		const char *d = cfg_slot_value(md, 1);

		if (d != NULL && *d != '\0')
			return xasprintf("%s.%s", host, d);
	}
	return xstrdup(cfg_system_hostname(true));
}

char *
cfg_default_mydomain(void)
{
	const char *host = cfg_eval_get("myhostname");
	const char *dot = strchr(host, '.');

	/* Postfix: "host" and "example.com" give localdomain. */
	if (dot == NULL || strchr(dot + 1, '.') == NULL)
		return xstrdup("localdomain");
	return xstrdup(dot + 1);
}

/* mail_location named by home_mailbox (Postfix) when that is set. */
static char *
cfg_home_mailbox_location(const char *hm)
{
	size_t len = strlen(hm);

	if (len > 0 && hm[len - 1] == '/') {
		while (len > 0 && hm[len - 1] == '/')
			len--;
		return xasprintf("maildir:~/%.*s", (int)len, hm);
	}
	return xasprintf("mbox:~/%s", hm);
}

char *
cfg_default_mail_location(void)
{
	const char *hm = cfg_eval_get("home_mailbox");

	if (*hm == '\0')
		return xstrdup("maildir:~/Maildir");
	return cfg_home_mailbox_location(hm);
}

/*
 * The mailbox a mail_location delivers INBOX to, normalised for
 * comparison: "maildir:~/Maildir", "mbox:/var/mail/%u".  For mbox the
 * INBOX= option names the inbox when present (Dovecot).
 */
static char *
cfg_inbox_of(const char *loc)
{
	const char *colon = strchr(loc, ':');
	char *type, *path = NULL, *opts, *o, *res;
	char **parts;
	size_t i, len;

	if (colon == NULL)
		return xstrdup(loc);
	type = str_lower(xstrndup(loc, (size_t)(colon - loc)));
	opts = xstrdup(colon + 1);
	parts = strv_split(opts, ":");
	for (i = 0; parts[i] != NULL; i++) {
		if (i == 0)
			path = parts[0];
		else if (str_starts_case(parts[i], "INBOX=") &&
		    strcmp(type, "mbox") == 0)
			path = parts[i] + 6;
	}
	if (path == NULL)
		path = "";
	if (strncmp(path, "%h", 2) == 0)
		o = xasprintf("~%s", path + 2);
	else
		o = xstrdup(path);
	len = strlen(o);
	while (len > 1 && o[len - 1] == '/')
		o[--len] = '\0';
	res = xasprintf("%s:%s", type, o);
	free(o);
	free(type);
	free(opts);
	strv_free(&parts);
	return res;
}

/* home_mailbox and mail_location both set must name the same store. */
static void
cfg_check_store(void)
{
	struct cfg_slot *hm = cfg_slot_find(cfg_eval, "home_mailbox");
	struct cfg_slot *ml = cfg_slot_find(cfg_eval, "mail_location");
	struct cfg_slot *later;
	const char *hv, *mv;
	char *a, *b, *derived;
	char where[512];

	if (hm->raw == NULL || ml->raw == NULL)
		return;
	hv = cfg_slot_value(hm, 0);
	mv = cfg_slot_value(ml, 0);
	if (hv == NULL || mv == NULL || *hv == '\0' ||
	    cfg_check_mail_location(mv) < 0)
		return;
	derived = cfg_home_mailbox_location(hv);
	a = cfg_inbox_of(derived);
	b = cfg_inbox_of(mv);
	if (strcmp(a, b) != 0) {
		later = hm->line > ml->line ? hm : ml;
		cfg_where(later, where, sizeof(where));
		cfg_error_add(cfg_sink, later->line,
		    "%s: home_mailbox and mail_location name different "
		    "mailboxes (home_mailbox = %s means %s, "
		    "mail_location = %s)",
		    where, hv, derived, mv);
	}
	free(a);
	free(b);
	free(derived);
}

/*
 * Reading a file.
 */

/* Value as stored: trimmed; Dovecot quotes and '<' removed. */
static char *
cfg_normalize(const struct cfg_param *p, const char *value)
{
	char *v = xstrdup(value);
	char *t = str_trim(v), *res;
	size_t len = strlen(t);

	if (p != NULL && (p->flags & CFG_F_DOVECOT) && len >= 2 &&
	    t[0] == '"' && t[len - 1] == '"') {
		t[len - 1] = '\0';
		t = str_trim(t + 1);
	}
	if (p != NULL && (p->flags & CFG_F_LTPATH) && t[0] == '<')
		t = str_trim(t + 1);
	res = xstrdup(t);
	free(v);
	return res;
}

static void
cfg_state_set(struct cfg_state *st, const char *name, const char *value,
    int line)
{
	struct cfg_slot *slot = cfg_slot_find(st, name);

	if (slot == NULL) {
		st->user = xreallocarray(st->user, st->nuser + 1,
		    sizeof(*st->user));
		slot = &st->user[st->nuser++];
		memset(slot, 0, sizeof(*slot));
		slot->name = xstrdup(name);
	}
	free(slot->raw);
	slot->raw = cfg_normalize(slot->param, value);
	slot->line = line;
}

/* One logical line "name = value" that started at line. */
static void
cfg_parse_logical(struct cfg_state *st, struct cfg_errors *errs,
    char *text, int line)
{
	char *eq = strchr(text, '=');
	char *name, *p;
	char q[MAX_CFG_ERR_VALUE];

	if (eq == NULL) {
		cfg_error_add(errs, line, "%s:%d: missing '=' after "
		    "parameter name: \"%s\"", st->path, line,
		    cfg_quote(q, sizeof(q), text));
		return;
	}
	*eq = '\0';
	name = str_trim(text);
	if (*name == '\0') {
		cfg_error_add(errs, line, "%s:%d: missing parameter name "
		    "before '='", st->path, line);
		return;
	}
	for (p = name; *p != '\0'; p++) {
		if (!cfg_is_name_char((unsigned char)*p)) {
			cfg_error_add(errs, line, "%s:%d: bad parameter "
			    "name: \"%s\"", st->path, line,
			    cfg_quote(q, sizeof(q), name));
			return;
		}
	}
	cfg_state_set(st, name, eq + 1, line);
}

static int
cfg_read_file(struct cfg_state *st, FILE *fp, struct cfg_errors *errs)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, start = 0;
	struct buf logical;
	bool have = false, skipping = false;

	buf_init(&logical, MAX_CFG_LOGICAL);
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *t;

		if (++lineno > MAX_CFG_LINES) {
			cfg_error_add(errs, lineno, "%s:%d: too many lines",
			    st->path, lineno);
			break;
		}
		if ((size_t)n != strlen(line)) {
			cfg_error_add(errs, lineno, "%s:%d: NUL byte in line",
			    st->path, lineno);
			continue;
		}
		if (n > MAX_CFG_LINE) {
			cfg_error_add(errs, lineno, "%s:%d: line too long",
			    st->path, lineno);
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		t = line + strspn(line, " \t\f\v");
		if (*t == '\0' || *t == '#')
			continue;
		if (t != line) {
			/* Continuation of the previous logical line. */
			if (skipping)
				continue;
			if (!have) {
				cfg_error_add(errs, lineno, "%s:%d: "
				    "continuation line without a parameter "
				    "before it", st->path, lineno);
				skipping = true;
				continue;
			}
			if (buf_append_char(&logical, ' ') < 0 ||
			    buf_append_str(&logical, str_trim(t)) < 0) {
				cfg_error_add(errs, start, "%s:%d: value too "
				    "long", st->path, start);
				have = false;
				skipping = true;
			}
			continue;
		}
		if (have)
			cfg_parse_logical(st, errs, (char *)buf_cstr(&logical),
			    start);
		buf_reset(&logical);
		skipping = false;
		have = true;
		start = lineno;
		if (buf_append_str(&logical, line) < 0) {
			have = false;
			skipping = true;
		}
	}
	if (have)
		cfg_parse_logical(st, errs, (char *)buf_cstr(&logical), start);
	if (ferror(fp))
		cfg_error_add(errs, lineno, "%s: read error: %s", st->path,
		    strerror(errno));
	free(line);
	buf_free(&logical);
	return 0;
}

/* Check every value set in st; errors to errs. */
static void
cfg_state_check(struct cfg_state *st, struct cfg_errors *errs)
{
	struct cfg_state *saved = cfg_eval;
	size_t i;
	char where[512];

	cfg_eval = st;
	cfg_sink = errs;
	cfg_state_clear_cache(st);
	for (i = 0; i < cfg_params_count; i++) {
		if (st->known[i].raw != NULL)
			(void)cfg_slot_check(&st->known[i]);
	}
	/* Restriction class names (smtpd_restriction_classes) are
	 * parameters the file defines for itself, as in Postfix. */
	if (cfg_param_find("smtpd_restriction_classes") != NULL) {
		const char *v = cfg_slot_value(&st->known[
		    cfg_param_find("smtpd_restriction_classes") - cfg_params],
		    0);
		char **names = cfg_list_split(v != NULL ? v : "");

		for (i = 0; i < st->nuser; i++)
			if (strv_contains_case(names, st->user[i].name))
				st->user[i].used = true;
		strv_free(&names);
	}
	/* User-defined values only count when something uses them. */
	for (i = 0; i < st->nuser; i++) {
		if (st->user[i].used)
			(void)cfg_slot_value(&st->user[i], 0);
	}
	for (i = 0; i < st->nuser; i++) {
		if (!st->user[i].used) {
			cfg_where(&st->user[i], where, sizeof(where));
			cfg_error_add(errs, st->user[i].line,
			    "%s: unknown parameter name \"%s\"", where,
			    st->user[i].name);
		}
	}
	cfg_check_store();
	cfg_sink = NULL;
	/* Values expanded while checking may hold error placeholders. */
	cfg_state_clear_cache(st);
	cfg_eval = saved;
}

int
cfg_load(const char *path)
{
	struct cfg_state *st;
	FILE *fp;

	cfg_errors_free(&cfg_errs);
	st = cfg_state_new(path);
	if (path != NULL) {
		if ((fp = fopen(path, "r")) == NULL) {
			cfg_error_add(&cfg_errs, 0, "%s: cannot open: %s",
			    path, strerror(errno));
			cfg_state_free(&st);
			return (int)cfg_errs.n;
		}
		(void)cfg_read_file(st, fp, &cfg_errs);
		(void)fclose(fp);
	}
	cfg_state_check(st, &cfg_errs);
	cfg_errors_sort(&cfg_errs);
	if (cfg_errs.n > 0) {
		cfg_state_free(&st);
		return (int)cfg_errs.n;
	}
	cfg_state_free(&cfg_cur);
	cfg_cur = st;
	cfg_eval = st;
	cfg_state_fill_cache(st);
	return 0;
}

void
cfg_print_errors(FILE *out)
{
	size_t i;

	for (i = 0; i < cfg_errs.n; i++)
		fprintf(out, "%s\n", cfg_errs.v[i].text);
}

const char *
cfg_first_error(void)
{
	return cfg_errs.n > 0 ? cfg_errs.v[0].text : NULL;
}

const char *
cfg_path(void)
{
	return cfg_current()->path;
}

int
cfg_set(const char *name, const char *value, const char **error_r)
{
	static char errbuf[512];
	struct cfg_state *st = cfg_current();
	struct cfg_slot *slot;
	struct cfg_errors errs = { NULL, 0 };
	char *old_raw;
	int old_line;

	slot = cfg_slot_find(st, name);
	if (slot == NULL || slot->param == NULL) {
		(void)snprintf(errbuf, sizeof(errbuf),
		    "unknown parameter name \"%s\"", name);
		*error_r = errbuf;
		return -1;
	}
	old_raw = slot->raw;
	old_line = slot->line;
	slot->raw = cfg_normalize(slot->param, value);
	slot->line = 0;
	cfg_state_clear_cache(st);
	cfg_sink = &errs;
	(void)cfg_slot_check(slot);
	cfg_sink = NULL;
	cfg_state_clear_cache(st);
	if (errs.n > 0) {
		const char *msg = errs.v[0].text;
		const char *colon = strstr(msg, ": ");

		/* Drop the "postern.conf: " location prefix. */
		str_lcpy(errbuf, colon != NULL ? colon + 2 : msg,
		    sizeof(errbuf));
		*error_r = errbuf;
		cfg_errors_free(&errs);
		free(slot->raw);
		slot->raw = old_raw;
		slot->line = old_line;
		return -1;
	}
	free(old_raw);
	cfg_state_fill_cache(st);
	return 0;
}

/*
 * Lookups.
 */

static struct cfg_slot *
cfg_known_slot(const char *name)
{
	struct cfg_state *st = cfg_current();
	const struct cfg_param *p = cfg_param_find(name);

	if (p == NULL)
		log_panic("cfg: unknown parameter %s", name);
	return &st->known[p - cfg_params];
}

const char *
cfg_get(const char *name)
{
	const char *v = cfg_slot_value(cfg_known_slot(name), 0);

	return v == NULL ? "" : v;
}

/* A numeric value of any numeric type; falls back to the default. */
static long long
cfg_get_number(const char *name)
{
	struct cfg_slot *slot = cfg_known_slot(name);
	const struct cfg_param *p = slot->param;
	const char *v = cfg_get(name);
	long long n;
	int pass;
	bool b;

	for (pass = 0; pass < 2; pass++) {
		switch (p->type) {
		case CFG_T_TIME:
			if (cfg_parse_time(v, cfg_param_time_unit(p), &n) == 0)
				return n;
			break;
		case CFG_T_BOOL:
			if (cfg_parse_bool(v, &b) == 0)
				return b ? 1 : 0;
			break;
		case CFG_T_INT:
			if (str_to_ll(v, LLONG_MIN, LLONG_MAX, &n) == 0)
				return n;
			break;
		default:
			if (cfg_parse_size(v, &n) == 0)
				return n;
			break;
		}
		if (p->def == NULL)
			break;
		v = p->def;
	}
	log_panic("cfg: %s has no numeric value", name);
}

long long
cfg_get_int(const char *name)
{
	return cfg_get_number(name);
}

long long
cfg_get_size(const char *name)
{
	return cfg_get_number(name);
}

long long
cfg_get_time(const char *name)
{
	return cfg_get_number(name);
}

bool
cfg_get_bool(const char *name)
{
	const char *v = cfg_get(name);
	bool b;

	if (cfg_parse_bool(v, &b) == 0)
		return b;
	if (cfg_known_slot(name)->param->def != NULL &&
	    cfg_parse_bool(cfg_known_slot(name)->param->def, &b) == 0)
		return b;
	log_panic("cfg: %s is not a boolean", name);
}

char **
cfg_get_list(const char *name)
{
	struct cfg_slot *slot = cfg_known_slot(name);
	char **words = cfg_list_split(cfg_get(name));
	char **out;
	size_t i;

	if (!(slot->param->flags & CFG_F_FILES))
		return words;
	out = xcalloc(1, sizeof(*out));
	for (i = 0; words[i] != NULL; i++) {
		if (words[i][0] != '/') {
			strv_push(&out, words[i]);
			continue;
		}
		if (cfg_list_read_file(words[i], &out) < 0)
			log_error("%s: cannot read %s: %m", name, words[i]);
	}
	strv_free(&words);
	return out;
}

void
cfg_list_free(char ***list)
{
	strv_free(list);
}

bool
cfg_is_set(const char *name)
{
	struct cfg_slot *slot = cfg_slot_find(cfg_current(), name);

	return slot != NULL && slot->raw != NULL;
}

const char *
cfg_get_user(const char *name)
{
	struct cfg_slot *slot = cfg_slot_find(cfg_current(), name);

	if (slot == NULL || slot->param != NULL || slot->raw == NULL)
		return NULL;
	return cfg_slot_value(slot, 0);
}

bool
cfg_known(const char *name)
{
	return cfg_param_find(name) != NULL;
}

static int
cfg_slot_cmp(const void *a, const void *b)
{
	const struct cfg_slot *const *sa = a, *const *sb = b;

	return strcmp(cfg_slot_name(*sa), cfg_slot_name(*sb));
}

static void
cfg_dump_slot(FILE *out, struct cfg_slot *slot, bool raw)
{
	const struct cfg_param *p = slot->param;
	const char *v;

	if (!raw)
		v = cfg_slot_value(slot, 0);
	else if (slot->raw != NULL)
		v = slot->raw;
	else if (p != NULL && p->def != NULL)
		v = p->def;
	else
		v = cfg_slot_value(slot, 0);
	fprintf(out, "%s = %s\n", cfg_slot_name(slot), v == NULL ? "" : v);
}

int
cfg_dump(FILE *out, bool only_set, bool raw, char *const names[])
{
	struct cfg_state *st = cfg_current();
	struct cfg_slot **all;
	size_t i, n = 0;
	int rc = 0;

	if (names != NULL && names[0] != NULL) {
		for (i = 0; names[i] != NULL; i++) {
			struct cfg_slot *slot = cfg_slot_find(st, names[i]);

			if (slot == NULL || (slot->param == NULL &&
			    slot->raw == NULL)) {
				fprintf(stderr, "postern: unknown parameter: "
				    "%s\n", names[i]);
				rc = -1;
				continue;
			}
			if (only_set && slot->raw == NULL)
				continue;
			cfg_dump_slot(out, slot, raw);
		}
		return rc;
	}
	all = xreallocarray(NULL, cfg_params_count + st->nuser + 1,
	    sizeof(*all));
	for (i = 0; i < cfg_params_count; i++) {
		if (!only_set || st->known[i].raw != NULL)
			all[n++] = &st->known[i];
	}
	for (i = 0; i < st->nuser; i++)
		all[n++] = &st->user[i];
	qsort(all, n, sizeof(*all), cfg_slot_cmp);
	for (i = 0; i < n; i++)
		cfg_dump_slot(out, all[i], raw);
	free(all);
	return 0;
}

char *
cfg_expand_user(const char *tmpl, const char *user, const char *home)
{
	const char *p = tmpl, *at;
	struct buf b;

	if (user == NULL)
		user = "";
	if (home == NULL)
		home = "";
	at = strchr(user, '@');
	buf_init(&b, 0);
	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
		(void)buf_append_str(&b, home);
		p++;
	}
	for (; *p != '\0'; p++) {
		if (*p != '%' || p[1] == '\0') {
			(void)buf_append_char(&b, *p);
			continue;
		}
		switch (*++p) {
		case 'u':
			(void)buf_append_str(&b, user);
			break;
		case 'n':
			if (at != NULL)
				(void)buf_append(&b, user, (size_t)(at - user));
			else
				(void)buf_append_str(&b, user);
			break;
		case 'd':
			if (at != NULL)
				(void)buf_append_str(&b, at + 1);
			break;
		case 'h':
			(void)buf_append_str(&b, home);
			break;
		case '%':
			(void)buf_append_char(&b, '%');
			break;
		default:
			/* Unknown: keep it as written. */
			(void)buf_append_char(&b, '%');
			(void)buf_append_char(&b, *p);
			break;
		}
	}
	return buf_steal(&b);
}
