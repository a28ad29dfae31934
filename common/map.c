/*
 * map: Postfix-style lookup tables (see map.h, DESIGN §5).
 *
 *   hash:PATH       Berkeley DB hash PATH.db, built from PATH by map_build()
 *   texthash:PATH   PATH read into a sorted in-memory table
 *   cidr:PATH       "network/len value" lines, first match wins
 *   inline:{ k=v, { key = text with spaces } }
 *   static:VALUE    VALUE for every key (static:{ text } for spaces)
 *   regexp:PATH     regexp_table(5) rules, first match wins; also
 *                   regexp:{ {/pattern/ result}, ... } written inline
 *   pcre:PATH       the same with the common subset of Perl syntax,
 *                   translated to POSIX (no PCRE library is used)
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
 * Not here: a proxymap service (proxy: tables are opened in the process
 * that uses them), and Perl-only regular expression features (pcre: is
 * read with the POSIX regcomp()).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
/* regexp:, pcre: the weight of a pattern (about the states regcomp()
 * builds, see map_re_check), parentheses nested in one pattern, the
 * largest $n in a result, and the bytes of a result after $n
 * substitution. */
#define MAX_REGEXP_WEIGHT	20000
#define MAX_REGEXP_NESTING	64
#define MAX_REGEXP_SUB		99
#define MAX_REGEXP_RESULT	(64 * 1024)

enum map_type {
	MAP_HASH,
	MAP_TEXTHASH,
	MAP_CIDR,
	MAP_INLINE,
	MAP_STATIC,
	MAP_UNIX,
	MAP_REGEXP,
	MAP_PCRE
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
	struct map_re_rule *re;		/* regexp:, pcre: in file order */
	size_t		 nre;
	regmatch_t	*re_pmatch;	/* room for the largest $n */
	size_t		 re_nmatch;
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
 * Returns 1, 0 at end of file, -1 on read error, 2 when the line was too
 * long and skipped (map_reader_next() then reads on).
 */
static int
map_reader_next_once(struct map_reader *r, int *start_r)
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
		return 2;
	}
	return have ? 1 : 0;
}

/* Next logical line: 1, 0 at end of file, -1 on read error. */
static int
map_reader_next(struct map_reader *r, int *start_r)
{
	int rc;

	while ((rc = map_reader_next_once(r, start_r)) == 2)
		continue;
	return rc;
}

/*
 * "192.168.2." is how some tutorials write the network 192.168.2 in an
 * access table; lookups (access(5)) ask for "192.168.2", so the key
 * loses its dot.  Only one to three numeric fields with a final dot:
 * nothing else can be read that way.
 */
static void
map_ip_prefix_key(char *key)
{
	size_t len = strlen(key), i, fields = 0, digits = 0;

	if (len < 2 || key[len - 1] != '.')
		return;
	for (i = 0; i < len; i++) {
		if (key[i] >= '0' && key[i] <= '9') {
			if (++digits > 3)
				return;
		} else if (key[i] == '.' && digits > 0) {
			digits = 0;
			fields++;
		} else
			return;
	}
	if (fields >= 1 && fields <= 3)
		key[len - 1] = '\0';
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
	if (kind == MAP_KIND_PLAIN)
		map_ip_prefix_key(*key_r);
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

static char *map_unbrace(const char *s);

/*
 * regexp: and pcre: tables (Postfix regexp_table(5); pcre_table(5) for
 * the subset POSIX regular expressions can express).
 *
 *   /pattern/flags  result       first matching rule wins
 *   !/pattern/      result       the rule matches when pattern does not
 *   /p1/!/p2/       result       p1 matches and p2 does not (regexp: only)
 *   if /pattern/ ... endif       rules inside apply only when it matches
 *
 * Flags toggle: i case (insensitive by default), m REG_NEWLINE, x
 * extended syntax (regexp: only).  A result may use $1..$N, ${N} or $(N)
 * for the text of a parenthesized group; "$$" is a '$'.  Keys are whole
 * strings (a header line), matched as they are, never case-folded.
 *
 * Patterns that would make regcomp() build a huge automaton (nested
 * bounded repetition such as "(a{255}){255}") and back-references, whose
 * matching time can grow exponentially with the input, are refused: the
 * rule is skipped with a warning, as Postfix skips rules it cannot use.
 */

enum map_re_op {
	MAP_RE_MATCH,
	MAP_RE_IF,
	MAP_RE_ENDIF
};

struct map_re_pat {
	regex_t		 re;
	bool		 compiled;
	bool		 match;		/* false: "!/pattern/" */
	/*
	 * "$n" is group groups[n] of re: pcre: (?:...) groups become
	 * POSIX groups; identity for regexp:.
	 */
	size_t		 ncap;		/* groups "$n" may name */
	size_t		*groups;	/* [0..ncap], NULL when identity */
};

struct map_re_rule {
	enum map_re_op	 op;
	int		 lineno;
	struct map_re_pat pat;		/* MATCH, IF */
	struct map_re_pat pat2;		/* MATCH: "/p1/!/p2/" when compiled */
	char		*result;	/* MATCH */
	size_t		 max_sub;	/* MATCH: largest $n in result */
	size_t		 endif;		/* IF: index of its ENDIF or SIZE_MAX */
};

/* While a table is read: the IF rules still open. */
struct map_re_parser {
	const char	*file;		/* for messages */
	size_t		*ifs;
	size_t		 nifs;
};

/*
 * Characters that are special in a POSIX extended regular expression
 * outside brackets; a literal one is written with a backslash.
 */
#define MAP_RE_SPECIALS	".[]()*+?{}|^$\\"

static void
map_re_pat_free(struct map_re_pat *pat)
{
	if (pat->compiled)
		regfree(&pat->re);
	pat->compiled = false;
	free(pat->groups);
	pat->groups = NULL;
}

static void
map_re_free(struct map *m)
{
	size_t i;

	for (i = 0; i < m->nre; i++) {
		map_re_pat_free(&m->re[i].pat);
		map_re_pat_free(&m->re[i].pat2);
		free(m->re[i].result);
	}
	free(m->re);
	m->re = NULL;
	m->nre = 0;
	free(m->re_pmatch);
	m->re_pmatch = NULL;
	m->re_nmatch = 0;
}

/* Length of a valid interval "{m}", "{m,}" or "{m,n}" at p, else 0. */
static size_t
map_re_interval_len(const char *p, bool bre, long *max_r)
{
	const char *q = p + (bre ? 2 : 1);
	long lo = 0, hi = -1;
	size_t digits = 0;

	while (*q >= '0' && *q <= '9') {
		if (lo < 100000)
			lo = lo * 10 + (*q - '0');
		q++;
		digits++;
	}
	if (digits == 0)
		return 0;
	if (*q == ',') {
		q++;
		if (*q >= '0' && *q <= '9') {
			hi = 0;
			while (*q >= '0' && *q <= '9') {
				if (hi < 100000)
					hi = hi * 10 + (*q - '0');
				q++;
			}
		}
	}
	if (bre) {
		if (q[0] != '\\' || q[1] != '}')
			return 0;
		q += 2;
	} else {
		if (*q != '}')
			return 0;
		q++;
	}
	*max_r = hi > lo ? hi : lo;
	return (size_t)(q - p);
}

/* After a bracket expression starting at p ('['), or at the string end. */
static const char *
map_re_skip_bracket(const char *p)
{
	const char *q = p + 1;

	if (*q == '^')
		q++;
	if (*q == ']')
		q++;
	while (*q != '\0' && *q != ']') {
		if (q[0] == '[' && (q[1] == ':' || q[1] == '.' ||
		    q[1] == '=')) {
			char t = q[1];

			q += 2;
			while (*q != '\0' && !(q[0] == t && q[1] == ']'))
				q++;
			if (*q != '\0')
				q += 2;
			continue;
		}
		q++;
	}
	return *q == ']' ? q + 1 : q;
}

/*
 * Refuse what regcomp()/regexec() would spend unbounded memory or time
 * on.  The weight of a pattern is an upper bound of the automaton
 * regcomp() builds: an atom is 1, a group the sum of what it holds, and
 * {m,n} multiplies what it repeats by the larger bound (glibc copies
 * it).  Back-references make matching exponential and are refused.
 */
static int
map_re_check(const char *re, bool ere, const char **why_r)
{
	unsigned long long stack[MAX_REGEXP_NESTING];
	unsigned long long cur = 0, last = 0, atom;
	size_t depth = 0, n;
	const char *p = re;
	long mult;

	while (*p != '\0') {
		atom = 1;
		if (*p == '\\' && p[1] == '\0')
			break;			/* regcomp() says why */
		if (*p == '\\' && p[1] >= '1' && p[1] <= '9') {
			*why_r = "back-references are not supported";
			return -1;
		}
		if ((ere && *p == '(') || (!ere && p[0] == '\\' &&
		    p[1] == '(')) {
			if (depth >= MAX_REGEXP_NESTING) {
				*why_r = "groups nested too deeply";
				return -1;
			}
			stack[depth++] = cur;
			cur = 0;
			last = 0;
			p += ere ? 1 : 2;
			continue;
		}
		if (depth > 0 && ((ere && *p == ')') || (!ere &&
		    p[0] == '\\' && p[1] == ')'))) {
			atom = cur + 1;
			cur = stack[--depth];
			p += ere ? 1 : 2;
		} else if ((ere && *p == '{') || (!ere && p[0] == '\\' &&
		    p[1] == '{')) {
			if ((n = map_re_interval_len(p, !ere, &mult)) == 0) {
				p += ere ? 1 : 2;
			} else {
				if (mult < 1)
					mult = 1;
				/* UNSAFE: last <= MAX_REGEXP_WEIGHT, mult
				 * < 1e6: no overflow. */
				cur += last * (unsigned long long)(mult - 1);
				last *= (unsigned long long)mult;
				p += n;
				if (cur > MAX_REGEXP_WEIGHT)
					goto heavy;
				continue;
			}
		} else if (*p == '*' || (ere && (*p == '+' || *p == '?'))) {
			p++;
			continue;
		} else if (ere && *p == '|') {
			p++;
			last = 0;
			continue;
		} else if (*p == '[') {
			p = map_re_skip_bracket(p);
		} else if (*p == '\\') {
			p += 2;
		} else
			p++;
		cur += atom;
		last = atom;
		if (cur > MAX_REGEXP_WEIGHT)
			goto heavy;
	}
	return 0;
heavy:
	*why_r = "regular expression too large (nested or large "
	    "repetition counts)";
	return -1;
}

/* Append byte c as a literal outside brackets. */
static int
map_re_literal(struct buf *out, unsigned char c)
{
	if (strchr(MAP_RE_SPECIALS, c) != NULL && buf_append_char(out,
	    '\\') < 0)
		return -1;
	return buf_append_char(out, (char)c);
}

/*
 * A character escape shared by both sides of brackets: \t \n \r \f \v \e
 * \a and \xHH / \x{HH}.  p points after the backslash.  Returns the byte
 * (1..255) and advances *pp, 0 when p is not such an escape, -1 bad.
 */
static int
map_re_pcre_char_escape(const char **pp, const char **why_r)
{
	const char *p = *pp;
	int v = 0, digits = 0;

	switch (*p) {
	case 't':
		*pp = p + 1;
		return '\t';
	case 'n':
		*pp = p + 1;
		return '\n';
	case 'r':
		*pp = p + 1;
		return '\r';
	case 'f':
		*pp = p + 1;
		return '\f';
	case 'v':
		*pp = p + 1;
		return '\v';
	case 'e':
		*pp = p + 1;
		return 0x1b;
	case 'a':
		*pp = p + 1;
		return 0x07;
	case 'x':
		break;
	default:
		return 0;
	}
	p++;
	if (*p == '{') {
		p++;
		while (strchr("0123456789abcdefABCDEF", *p) != NULL &&
		    *p != '\0' && digits < 3) {
			v = v * 16 + (*p <= '9' ? *p - '0' :
			    (*p | 0x20) - 'a' + 10);
			p++;
			digits++;
		}
		if (*p != '}' || digits == 0 || v > 0xff) {
			*why_r = "\\x{...} beyond one byte is not supported";
			return -1;
		}
		p++;
	} else {
		while (*p != '\0' && strchr("0123456789abcdefABCDEF", *p) !=
		    NULL && digits < 2) {
			v = v * 16 + (*p <= '9' ? *p - '0' :
			    (*p | 0x20) - 'a' + 10);
			p++;
			digits++;
		}
	}
	if (v == 0) {
		*why_r = "a NUL character cannot be matched";
		return -1;
	}
	*pp = p;
	return v;
}

/*
 * One item of a Perl bracket expression at *pp: a character (returned,
 * 1..255), or a class appended to cls (returns 0).  -1: not supported.
 */
static int
map_re_pcre_bracket_item(const char **pp, struct buf *cls,
    const char **why_r)
{
	const char *p = *pp;
	const char *e;
	int c;

	if (p[0] == '[' && p[1] == ':') {
		if ((e = strstr(p + 2, ":]")) == NULL) {
			*why_r = "missing :] in [...]";
			return -1;
		}
		if (buf_append(cls, p, (size_t)(e + 2 - p)) < 0)
			goto long_re;
		*pp = e + 2;
		return 0;
	}
	if (*p != '\\') {
		*pp = p + 1;
		return (unsigned char)*p;
	}
	p++;
	if (*p == '\0') {
		*why_r = "missing ] after [";
		return -1;
	}
	if ((c = map_re_pcre_char_escape(&p, why_r)) != 0) {
		*pp = p;
		return c;
	}
	*pp = p + 1;
	switch (*p) {
	case 'd':
		return buf_append_str(cls, "[:digit:]") < 0 ? -1 : 0;
	case 's':
		return buf_append_str(cls, "[:space:]") < 0 ? -1 : 0;
	case 'w':
		return buf_append_str(cls, "[:alnum:]_") < 0 ? -1 : 0;
	case 'b':
		return 0x08;
	default:
		break;
	}
	if (isalnum((unsigned char)*p)) {
		*why_r = "unsupported escape inside [...]";
		return -1;
	}
	return (unsigned char)*p;
long_re:
	*why_r = "regular expression too long";
	return -1;
}

/*
 * A Perl bracket expression at *pp ('[') as a POSIX one: escapes inside
 * become literal characters or classes, and ']', '^', '-' and '[' move to
 * where POSIX reads them literally.
 */
static int
map_re_pcre_bracket(const char **pp, struct buf *out, const char **why_r)
{
	const char *p = *pp + 1;
	bool neg = false, first = true;
	bool rb = false, caret = false, hyphen = false, lb = false;
	struct buf items;
	int c, d, rc = -1;

	buf_init(&items, MAX_MAP_LINE);
	if (*p == '^') {
		neg = true;
		p++;
	}
	for (;;) {
		if (*p == '\0') {
			*why_r = "missing ] after [";
			goto out;
		}
		if (*p == ']' && !first)
			break;
		first = false;
		if ((c = map_re_pcre_bracket_item(&p, &items, why_r)) < 0)
			goto out;
		if (c == 0)
			continue;
		if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
			p++;
			if ((d = map_re_pcre_bracket_item(&p, &items,
			    why_r)) < 0)
				goto out;
			if (d == 0 || d < c ||
			    strchr("]-[^", c) != NULL ||
			    strchr("]-[^", d) != NULL) {
				*why_r = "unsupported range in [...]";
				goto out;
			}
			if (buf_append_char(&items, (char)c) < 0 ||
			    buf_append_char(&items, '-') < 0 ||
			    buf_append_char(&items, (char)d) < 0)
				goto long_re;
			continue;
		}
		if (c == ']')
			rb = true;
		else if (c == '^')
			caret = true;
		else if (c == '-')
			hyphen = true;
		else if (c == '[')
			lb = true;
		else if (buf_append_char(&items, (char)c) < 0)
			goto long_re;
	}
	p++;
	if (!neg && !rb && !lb && items.len == 0 && caret) {
		/* Only '^' (and '-'): '^' may not come first. */
		if (buf_append_str(out, hyphen ? "[-^]" : "\\^") < 0)
			goto long_re;
	} else if (buf_append_char(out, '[') < 0 ||
	    (neg && buf_append_char(out, '^') < 0) ||
	    (rb && buf_append_char(out, ']') < 0) ||
	    buf_append(out, items.data, items.len) < 0 ||
	    (lb && buf_append_char(out, '[') < 0) ||
	    (caret && buf_append_char(out, '^') < 0) ||
	    (hyphen && buf_append_char(out, '-') < 0) ||
	    buf_append_char(out, ']') < 0)
		goto long_re;
	*pp = p;
	rc = 0;
	goto out;
long_re:
	*why_r = "regular expression too long";
out:
	buf_free(&items);
	return rc;
}

/*
 * A pcre: pattern in the POSIX extended syntax regcomp() reads.  The
 * common part of Perl syntax is translated: \d \s \w and their negations,
 * \t \n \r \f \v \e \a \xHH, \A \z \Z, \b \B, escapes inside [...],
 * (?:...) groups, and lazy quantifiers (the "?" changes only which text
 * $n receives, not whether a line matches).  The rest (look-around,
 * (?i), back-references, possessive quantifiers, \Q..\E, \p{..}) is
 * refused rather than silently meaning something else.  groups[n] gets
 * the POSIX group of Perl group n, for n <= MAX_REGEXP_SUB.
 */
static int
map_re_pcre_translate(const char *src, struct buf *out, size_t *groups,
    size_t *ncap_r, const char **why_r)
{
	const char *p = src;
	size_t posix = 0, ncap = 0, n;
	bool after_quant = false;
	long mult;
	int c;

	while (*p != '\0') {
		if (after_quant) {
			after_quant = false;
			if (*p == '?') {
				p++;
				continue;
			}
			if (*p == '+') {
				*why_r = "possessive quantifiers are not "
				    "supported";
				return -1;
			}
		}
		switch (*p) {
		case '\\':
			p++;
			if (*p == '\0') {
				*why_r = "trailing backslash";
				return -1;
			}
			if ((c = map_re_pcre_char_escape(&p, why_r)) < 0)
				return -1;
			if (c > 0) {
				if (map_re_literal(out, (unsigned char)c) < 0)
					goto long_re;
				continue;
			}
			switch (*p) {
			case 'd':
				c = buf_append_str(out, "[[:digit:]]");
				break;
			case 'D':
				c = buf_append_str(out, "[^[:digit:]]");
				break;
			case 's':
				c = buf_append_str(out, "[[:space:]]");
				break;
			case 'S':
				c = buf_append_str(out, "[^[:space:]]");
				break;
			case 'w':
				c = buf_append_str(out, "[[:alnum:]_]");
				break;
			case 'W':
				c = buf_append_str(out, "[^[:alnum:]_]");
				break;
			case 'b':
				c = buf_append_str(out, "\\b");
				break;
			case 'B':
				c = buf_append_str(out, "\\B");
				break;
			case 'A':
				c = buf_append_char(out, '^');
				break;
			case 'z':
			case 'Z':
				c = buf_append_char(out, '$');
				break;
			default:
				if (isalnum((unsigned char)*p)) {
					*why_r = *p >= '0' && *p <= '9' ?
					    "back-references and octal "
					    "escapes are not supported" :
					    "unsupported escape";
					return -1;
				}
				c = map_re_literal(out, (unsigned char)*p);
				break;
			}
			if (c < 0)
				goto long_re;
			p++;
			break;
		case '[':
			if (map_re_pcre_bracket(&p, out, why_r) < 0)
				return -1;
			break;
		case '(':
			posix++;
			if (p[1] == '?') {
				if (p[2] != ':') {
					*why_r = "(?...) other than (?:...) "
					    "is not supported";
					return -1;
				}
				p += 3;
			} else {
				ncap++;
				if (ncap <= MAX_REGEXP_SUB)
					groups[ncap] = posix;
				p++;
			}
			if (buf_append_char(out, '(') < 0)
				goto long_re;
			break;
		case '*':
		case '+':
		case '?':
			if (buf_append_char(out, *p++) < 0)
				goto long_re;
			after_quant = true;
			break;
		case '{':
			if ((n = map_re_interval_len(p, false, &mult)) == 0) {
				/* Perl reads a '{' that starts no count as
				 * a character. */
				if (buf_append_str(out, "\\{") < 0)
					goto long_re;
				p++;
				break;
			}
			if (buf_append(out, p, n) < 0)
				goto long_re;
			p += n;
			after_quant = true;
			break;
		case '}':
			if (buf_append_str(out, "\\}") < 0)
				goto long_re;
			p++;
			break;
		default:
			if (buf_append_char(out, *p++) < 0)
				goto long_re;
			break;
		}
	}
	*ncap_r = ncap;
	return 0;
long_re:
	*why_r = "regular expression too long";
	return -1;
}

/*
 * Compile pattern into pat.  Returns 0, or -1 after a warning (the rule
 * is skipped).
 */
static int
map_re_compile(const struct map *m, const struct map_re_parser *ps,
    int lineno, const char *pattern, int cflags, struct map_re_pat *pat)
{
	size_t groups[MAX_REGEXP_SUB + 1];
	const char *why = NULL, *posix = pattern;
	struct buf tr;
	int rc;

	buf_init(&tr, MAX_MAP_LOGICAL);
	pat->ncap = 0;
	if (m->type == MAP_PCRE) {
		if (map_re_pcre_translate(pattern, &tr, groups, &pat->ncap,
		    &why) < 0)
			goto bad;
		posix = buf_cstr(&tr);
	}
	if (map_re_check(posix, (cflags & REG_EXTENDED) != 0, &why) < 0)
		goto bad;
	if ((rc = regcomp(&pat->re, posix, cflags)) != 0) {
		char err[256];

		(void)regerror(rc, &pat->re, err, sizeof(err));
		log_warning("%s:%d: %s: skipping this rule", ps->file, lineno,
		    err);
		buf_free(&tr);
		return -1;
	}
	pat->compiled = true;
	if (m->type == MAP_PCRE) {
		size_t n = pat->ncap < MAX_REGEXP_SUB ? pat->ncap :
		    MAX_REGEXP_SUB;

		pat->ncap = n;
		pat->groups = xreallocarray(NULL, n + 1, sizeof(size_t));
		memcpy(pat->groups, groups, (n + 1) * sizeof(size_t));
		pat->groups[0] = 0;
	} else
		pat->ncap = pat->re.re_nsub < MAX_REGEXP_SUB ?
		    pat->re.re_nsub : MAX_REGEXP_SUB;
	buf_free(&tr);
	return 0;
bad:
	log_warning("%s:%d: %s: skipping this rule", ps->file, lineno, why);
	buf_free(&tr);
	return -1;
}

/*
 * "!/pattern/flags" at *pp: the pattern is cut out of the line in place.
 * Sets *cflags_r and pat->match.  Returns 0 or -1 (warned).
 */
static int
map_re_get_pat(const struct map *m, const struct map_re_parser *ps,
    int lineno, char **pp, char **pattern_r, int *cflags_r,
    struct map_re_pat *pat)
{
	char *p = *pp, delim;

	pat->match = true;
	for (;; p++) {
		if (*p == '!')
			pat->match = !pat->match;
		else if (*p != ' ' && *p != '\t')
			break;
	}
	if (*p == '\0') {
		log_warning("%s:%d: no regular expression: skipping this rule",
		    ps->file, lineno);
		return -1;
	}
	delim = *p++;
	*pattern_r = p;
	while (*p != '\0' && *p != delim) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		p++;
	}
	if (*p == '\0') {
		char d[8];

		log_warning("%s:%d: no closing delimiter \"%s\": skipping "
		    "this rule", ps->file, lineno,
		    log_escape(d, sizeof(d), &delim, 1));
		return -1;
	}
	*p++ = '\0';
	*cflags_r = REG_EXTENDED | REG_ICASE;
	for (; *p != '\0' && *p != ' ' && *p != '\t' && *p != '!'; p++) {
		if (*p == 'i')
			*cflags_r ^= REG_ICASE;
		else if (*p == 'm')
			*cflags_r ^= REG_NEWLINE;
		else if (*p == 'x' && m->type == MAP_REGEXP)
			*cflags_r ^= REG_EXTENDED;
		else if (*p == 's' && m->type == MAP_PCRE)
			continue;	/* '.' matches newlines already */
		else {
			char o[8];

			log_warning("%s:%d: unsupported flag \"%s\": "
			    "skipping this rule", ps->file, lineno,
			    log_escape(o, sizeof(o), p, 1));
			return -1;
		}
	}
	*pp = p;
	return 0;
}

enum map_re_ref {
	MAP_RE_REF_TEXT,	/* a '$' that is just a character */
	MAP_RE_REF_DOLLAR,	/* "$$" */
	MAP_RE_REF_GROUP,	/* $n, ${n}, $(n) */
	MAP_RE_REF_BAD
};

/* What the '$' at s starts; *len_r its length, *n_r the group. */
static enum map_re_ref
map_re_ref_parse(const char *s, size_t *len_r, size_t *n_r)
{
	const char *p = s + 1, *name, *end;
	char close = '\0';
	size_t n = 0;

	if (*p == '$') {
		*len_r = 2;
		return MAP_RE_REF_DOLLAR;
	}
	if (*p == '{' || *p == '(') {
		close = *p == '{' ? '}' : ')';
		p++;
	}
	name = p;
	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	end = p;
	if (close != '\0') {
		if (*p != close || end == name)
			return MAP_RE_REF_BAD;
		p++;
	} else if (end == name) {
		*len_r = 1;
		return MAP_RE_REF_TEXT;
	}
	for (; name < end; name++) {
		if (*name < '0' || *name > '9')
			return MAP_RE_REF_BAD;
		if (n <= MAX_REGEXP_SUB)
			n = n * 10 + (size_t)(*name - '0');
	}
	if (n < 1 || n > MAX_REGEXP_SUB)
		return MAP_RE_REF_BAD;
	*len_r = (size_t)(p - s);
	*n_r = n;
	return MAP_RE_REF_GROUP;
}

/* Largest $n in a result; -1 if a reference is malformed. */
static ssize_t
map_re_max_sub(const char *result)
{
	size_t max = 0, len, n;
	const char *p;

	for (p = result; (p = strchr(p, '$')) != NULL; p += len) {
		switch (map_re_ref_parse(p, &len, &n)) {
		case MAP_RE_REF_BAD:
			return -1;
		case MAP_RE_REF_GROUP:
			if (n > max)
				max = n;
			break;
		default:
			break;
		}
	}
	return (ssize_t)max;
}

static struct map_re_rule *
map_re_add(struct map *m, enum map_re_op op, int lineno)
{
	struct map_re_rule *r;

	m->re = xreallocarray(m->re, m->nre + 1, sizeof(*m->re));
	r = &m->re[m->nre++];
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->lineno = lineno;
	r->endif = SIZE_MAX;
	return r;
}

/* "/p1/flags[!/p2/flags] result" */
static void
map_re_parse_match(struct map *m, struct map_re_parser *ps, int lineno,
    char *p)
{
	struct map_re_pat pat, pat2;
	char *pattern, *pattern2 = NULL;
	int cflags, cflags2 = 0;
	ssize_t max_sub;
	struct map_re_rule *r;

	memset(&pat, 0, sizeof(pat));
	memset(&pat2, 0, sizeof(pat2));
	if (map_re_get_pat(m, ps, lineno, &p, &pattern, &cflags, &pat) < 0)
		return;
	if (*p == '!') {
		if (m->type == MAP_PCRE) {
			log_warning("%s:%d: /pattern/!/pattern/ is not "
			    "supported in pcre: tables: skipping this rule",
			    ps->file, lineno);
			return;
		}
		if (map_re_get_pat(m, ps, lineno, &p, &pattern2, &cflags2,
		    &pat2) < 0)
			return;
	}
	p += strspn(p, " \t");
	if (*p == '\0')
		log_warning("%s:%d: no result text: using an empty string",
		    ps->file, lineno);
	if ((max_sub = map_re_max_sub(p)) < 0) {
		log_warning("%s:%d: bad $number in the result: skipping this "
		    "rule", ps->file, lineno);
		return;
	}
	if (max_sub > 0 && !pat.match) {
		log_warning("%s:%d: $number in the result of a negated "
		    "pattern: skipping this rule", ps->file, lineno);
		return;
	}
	if (max_sub == 0)
		cflags |= REG_NOSUB;
	if (map_re_compile(m, ps, lineno, pattern, cflags, &pat) < 0)
		return;
	if ((size_t)max_sub > pat.ncap) {
		log_warning("%s:%d: $%zd names a group the pattern does not "
		    "have: skipping this rule", ps->file, lineno, max_sub);
		map_re_pat_free(&pat);
		return;
	}
	if (pattern2 != NULL && map_re_compile(m, ps, lineno, pattern2,
	    cflags2 | REG_NOSUB, &pat2) < 0) {
		map_re_pat_free(&pat);
		return;
	}
	r = map_re_add(m, MAP_RE_MATCH, lineno);
	r->pat = pat;
	r->pat2 = pat2;
	r->result = xstrdup(p);
	r->max_sub = (size_t)max_sub;
	if (max_sub > 0) {
		size_t need = (pat.groups != NULL ?
		    pat.groups[max_sub] : (size_t)max_sub) + 1;

		if (need > m->re_nmatch) {
			m->re_pmatch = xreallocarray(m->re_pmatch, need,
			    sizeof(*m->re_pmatch));
			m->re_nmatch = need;
		}
	}
}

/* Is word (case-insensitive) at p, followed by a non-alphanumeric? */
static bool
map_re_keyword(const char *p, const char *word)
{
	size_t len = strlen(word);

	return strncasecmp(p, word, len) == 0 &&
	    !isalnum((unsigned char)p[len]);
}

/* One logical line (or inline element) of a regexp: or pcre: table. */
static void
map_re_parse_line(struct map *m, struct map_re_parser *ps, int lineno,
    char *text)
{
	char *p = str_trim(text);

	if (*p == '\0')
		return;
	if (m->nre >= MAX_MAP_ENTRIES) {
		log_warning("%s:%d: too many rules: skipping this rule",
		    ps->file, lineno);
		return;
	}
	if (!isalnum((unsigned char)*p)) {
		map_re_parse_match(m, ps, lineno, p);
	} else if (map_re_keyword(p, "if")) {
		struct map_re_pat pat;
		char *pattern;
		int cflags;

		memset(&pat, 0, sizeof(pat));
		p += 2;
		p += strspn(p, " \t");
		if (map_re_get_pat(m, ps, lineno, &p, &pattern, &cflags,
		    &pat) < 0)
			return;
		p += strspn(p, " \t");
		if (*p != '\0')
			log_warning("%s:%d: ignoring text after if /pattern/ "
			    "(rules inside if ... endif may not start with "
			    "whitespace)", ps->file, lineno);
		if (map_re_compile(m, ps, lineno, pattern, cflags | REG_NOSUB,
		    &pat) < 0)
			return;
		map_re_add(m, MAP_RE_IF, lineno)->pat = pat;
		ps->ifs = xreallocarray(ps->ifs, ps->nifs + 1,
		    sizeof(*ps->ifs));
		ps->ifs[ps->nifs++] = m->nre - 1;
	} else if (map_re_keyword(p, "endif")) {
		if (ps->nifs == 0) {
			log_warning("%s:%d: ignoring endif without if",
			    ps->file, lineno);
			return;
		}
		p += 5;
		p += strspn(p, " \t");
		if (*p != '\0')
			log_warning("%s:%d: ignoring text after endif",
			    ps->file, lineno);
		map_re_add(m, MAP_RE_ENDIF, lineno);
		m->re[ps->ifs[--ps->nifs]].endif = m->nre - 1;
	} else
		log_warning("%s:%d: expected /pattern/ result, if /pattern/ "
		    "or endif: skipping this line", ps->file, lineno);
}

static void
map_re_parse_finish(struct map *m, struct map_re_parser *ps)
{
	while (ps->nifs > 0)
		log_warning("%s:%d: if without endif", ps->file,
		    m->re[ps->ifs[--ps->nifs]].lineno);
	free(ps->ifs);
	ps->ifs = NULL;
}

/* regexp:{ {rule}, {rule}, ... } */
static int
map_re_open_inline(struct map *m, const char *arg, const char **error_r)
{
	struct map_re_parser ps;
	char *inner = map_unbrace(arg);
	char **elems;
	size_t i;

	if (inner == NULL) {
		*error_r = map_error("%s: expected a file name or { {rule}, "
		    "... }", m->spec);
		return -1;
	}
	memset(&ps, 0, sizeof(ps));
	ps.file = m->spec;
	elems = cfg_list_split(inner);
	free(inner);
	for (i = 0; elems[i] != NULL; i++)
		map_re_parse_line(m, &ps, (int)(i + 1), elems[i]);
	strv_free(&elems);
	map_re_parse_finish(m, &ps);
	return 0;
}

/*
 * Whether pat holds for key: 1 yes, 0 no.  An error of regexec() (out of
 * memory) is logged and counts as no, as Postfix does.
 */
static int
map_re_test(const struct map *m, const struct map_re_rule *r,
    const struct map_re_pat *pat, const char *key, size_t nmatch,
    regmatch_t *pmatch)
{
	int rc = regexec(&pat->re, key, nmatch, pmatch, 0);

	if (rc == 0)
		return pat->match ? 1 : 0;
	if (rc == REG_NOMATCH)
		return pat->match ? 0 : 1;
	{
		char err[256];

		(void)regerror(rc, &pat->re, err, sizeof(err));
		log_warning("%s, rule at line %d: %s", m->spec, r->lineno,
		    err);
	}
	return 0;
}

/* The result of rule r for key with its groups in pmatch. */
static int
map_re_expand(const struct map *m, const struct map_re_rule *r,
    const char *key, const regmatch_t *pmatch, char **value_r)
{
	struct buf out;
	const char *p = r->result, *d;
	size_t len, n, g;

	if (r->max_sub == 0 && strchr(p, '$') == NULL) {
		*value_r = xstrdup(p);
		return 1;
	}
	buf_init(&out, MAX_REGEXP_RESULT);
	while ((d = strchr(p, '$')) != NULL) {
		if (buf_append(&out, p, (size_t)(d - p)) < 0)
			goto long_result;
		switch (map_re_ref_parse(d, &len, &n)) {
		case MAP_RE_REF_GROUP:
			g = r->pat.groups != NULL ? r->pat.groups[n] : n;
			/* A group that did not take part is empty. */
			if (pmatch[g].rm_so >= 0 && pmatch[g].rm_eo >=
			    pmatch[g].rm_so && buf_append(&out, key +
			    pmatch[g].rm_so, (size_t)(pmatch[g].rm_eo -
			    pmatch[g].rm_so)) < 0)
				goto long_result;
			break;
		case MAP_RE_REF_DOLLAR:
		case MAP_RE_REF_TEXT:
			if (buf_append_char(&out, '$') < 0)
				goto long_result;
			break;
		default:
			/* Checked when the table was read. */
			log_panic("%s, rule at line %d: bad $ reference",
			    m->spec, r->lineno);
		}
		p = d + len;
	}
	if (buf_append_str(&out, p) < 0)
		goto long_result;
	*value_r = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return 1;
long_result:
	log_warning("%s, rule at line %d: result longer than %d bytes",
	    m->spec, r->lineno, MAX_REGEXP_RESULT);
	buf_free(&out);
	return -1;
}

static int
map_lookup_regexp(struct map *m, const char *key, char **value_r)
{
	size_t i = 0;

	while (i < m->nre) {
		const struct map_re_rule *r = &m->re[i];
		size_t nmatch = 0;

		switch (r->op) {
		case MAP_RE_IF:
			if (map_re_test(m, r, &r->pat, key, 0, NULL)) {
				i++;
				break;
			}
			/* An if without endif hides the rest. */
			if (r->endif == SIZE_MAX)
				return 0;
			i = r->endif + 1;
			break;
		case MAP_RE_ENDIF:
			i++;
			break;
		case MAP_RE_MATCH:
			if (r->max_sub > 0)
				nmatch = (r->pat.groups != NULL ?
				    r->pat.groups[r->max_sub] : r->max_sub) +
				    1;
			if (!map_re_test(m, r, &r->pat, key, nmatch,
			    m->re_pmatch) || (r->pat2.compiled &&
			    !map_re_test(m, r, &r->pat2, key, 0, NULL))) {
				i++;
				break;
			}
			return map_re_expand(m, r, key, m->re_pmatch, value_r);
		}
	}
	return 0;
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
	map_re_free(m);
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

/* Read a text source (texthash, cidr, regexp, pcre) with its parser. */
static int
map_read_source(struct map *m, const char **error_r)
{
	struct map_reader r;
	struct map_re_parser ps;
	int start = 0, rc;
	char *key, *value;

	memset(&ps, 0, sizeof(ps));
	ps.file = m->path;
	memset(&r, 0, sizeof(r));
	r.path = m->path;
	if ((r.fp = cfg_fopen_regular(m->path)) == NULL) {
		*error_r = map_error("%s: cannot open %s: %s", m->spec,
		    m->path, errno == EINVAL ? "not a regular file" :
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(r.fp), &m->st) < 0)
		memset(&m->st, 0, sizeof(m->st));
	buf_init(&r.logical, MAX_MAP_LOGICAL);
	while ((rc = map_reader_next(&r, &start)) > 0) {
		char *text = (char *)buf_cstr(&r.logical);

		if (m->type == MAP_REGEXP || m->type == MAP_PCRE) {
			map_re_parse_line(m, &ps, start, text);
			continue;
		}
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
	map_re_parse_finish(m, &ps);
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
	} else if ((tlen == 6 && strncmp(spec, "regexp", 6) == 0) ||
	    (tlen == 4 && strncmp(spec, "pcre", 4) == 0)) {
		m->type = tlen == 4 ? MAP_PCRE : MAP_REGEXP;
		if (arg[0] == '{')
			rc = map_re_open_inline(m, arg, error_r);
		else {
			m->path = xstrdup(arg);
			rc = map_read_source(m, error_r);
		}
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
	case MAP_REGEXP:
	case MAP_PCRE:
		/* The whole string; case is up to each pattern's flags. */
		return map_lookup_regexp(m, key, value_r);
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

	if (m->path == NULL || (m->type != MAP_HASH &&
	    m->type != MAP_TEXTHASH && m->type != MAP_CIDR &&
	    m->type != MAP_REGEXP && m->type != MAP_PCRE))
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
	if ((r.fp = cfg_fopen_regular(path)) == NULL) {
		*error_r = map_error("%s: cannot open: %s", path,
		    errno == EINVAL ? "not a regular file" : strerror(errno));
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
