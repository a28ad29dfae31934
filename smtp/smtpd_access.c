/*
 * smtpd_access: access(5) tables as the smtpd restrictions read them, and
 * the address facts the relay decision needs.
 *
 *   - With $sendmail_access_tags, sendmail's tagged keys: the check sets
 *     the tag of its lookups ("connect", "from", "to") and each key is
 *     looked up with the tag ("from:user@example.com") before without.
 *   - Lookups in Postfix's order.  A mail address: user+ext@domain,
 *     user@domain, the domain and its parent domains, user+ext@, user@.
 *     A host name: the name and its parents.  An IP address: the address,
 *     then its networks with one field less each time (1.2.3.4, 1.2.3,
 *     1.2, 1; 2001:db8::1, 2001:db8:, 2001:db8, 2001).  Parent domains are
 *     looked up as "example.com" when $parent_domain_matches_subdomains
 *     names smtpd_access_maps (Postfix's default), else as ".example.com";
 *     ".example.com" matches subdomains in both cases.
 *   - What a table's answer means (OK, REJECT text, 4NN text, a list of
 *     restrictions, ...), parsed into a struct, not acted upon.
 *   - Where an address goes (Postfix's trivial-rewrite resolver): a local
 *     domain is stripped and a quoted local part holding '@', a bang path
 *     (site!user) or the percent hack (user%site) is followed, so
 *     "user%remote@local" is known to go to remote, and that it was
 *     routed by its sender.
 *
 * Nothing here talks to the client or the network; lookups may block on
 * local files (Berkeley DB), as every table lookup in smtpd does.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "map.h"
#include "rewrite.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

/* Seconds between checks whether a table's file changed. */
#define SMTPD_ACCESS_REFRESH_MS	1000
/* Rewriting steps of one address before we stop following it. */
#define SMTPD_ACCESS_MAX_ROUTE	10

struct smtpd_access_map {
	char		*spec;
	struct map	*map;
	uint64_t	 checked_ms;	/* last open or refresh */
	bool		 parent_match;	/* "example.com" matches subdomains */
	bool		 tags;		/* $sendmail_access_tags */
	const char	*tag;		/* of the lookups under way, or NULL */
};

static uint64_t
smtpd_access_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool
smtpd_access_parent_style(const char *name)
{
	char **list = cfg_get_list("parent_domain_matches_subdomains");
	bool found = strv_contains_case(list, name);

	cfg_list_free(&list);
	return found;
}

struct smtpd_access_map *
smtpd_access_map_new(const char *spec)
{
	struct smtpd_access_map *am = xcalloc(1, sizeof(*am));
	const char *error;

	am->spec = xstrdup(spec);
	am->parent_match = smtpd_access_parent_style("smtpd_access_maps");
	am->tags = cfg_get_bool("sendmail_access_tags");
	/* Open now, so a missing table is reported at start, not at the
	 * first client; a failure is retried at each use. */
	am->map = map_open(spec, MAP_KIND_PLAIN, &error);
	if (am->map == NULL)
		log_warning("%s is unavailable: %s", spec, error);
	am->checked_ms = smtpd_access_now_ms();
	return am;
}

void
smtpd_access_map_free(struct smtpd_access_map **amp)
{
	struct smtpd_access_map *am = *amp;

	if (am == NULL)
		return;
	*amp = NULL;
	map_close(&am->map);
	free(am->spec);
	free(am);
}

const char *
smtpd_access_map_spec(const struct smtpd_access_map *am)
{
	return am->spec;
}

/* The table, opened or refreshed as needed; NULL after logging. */
static struct map *
smtpd_access_map_get(struct smtpd_access_map *am)
{
	uint64_t now = smtpd_access_now_ms();
	const char *error;

	if (am->map != NULL && now - am->checked_ms < SMTPD_ACCESS_REFRESH_MS)
		return am->map;
	am->checked_ms = now;
	if (am->map == NULL) {
		am->map = map_open(am->spec, MAP_KIND_PLAIN, &error);
		if (am->map == NULL)
			log_warning("%s is unavailable: %s", am->spec, error);
	} else if (map_refresh(am->map, &error) < 0) {
		log_warning("%s is unavailable: %s", am->spec, error);
		map_close(&am->map);
	}
	return am->map;
}

void
smtpd_access_map_tag(struct smtpd_access_map *am, const char *tag)
{
	am->tag = tag;
}

int
smtpd_access_find(struct smtpd_access_map *am, const char *key,
    char **value_r)
{
	struct map *m = smtpd_access_map_get(am);
	int r;

	*value_r = NULL;
	if (m == NULL)
		return -1;
	/* Berkeley DB cannot hold the empty key (Postfix avoids it too). */
	if (key[0] == '\0')
		return 0;
	/* sendmail's access file: "From:key" (etc.) before "key", so one
	 * table can serve the client, sender and recipient checks. */
	if (am->tags && am->tag != NULL) {
		char *tkey = xasprintf("%s:%s", am->tag, key);

		r = map_lookup(m, tkey, value_r);
		if (r < 0)
			log_warning("%s: lookup of \"%s\" failed", am->spec,
			    tkey);
		free(tkey);
		if (r != 0)
			return r;
	}
	r = map_lookup(m, key, value_r);
	if (r < 0)
		log_warning("%s: lookup of \"%s\" failed", am->spec, key);
	return r;
}

/* Is s an IPv4 or IPv6 address (no brackets)? */
static bool
smtpd_access_is_ip(const char *s)
{
	struct netaddr n;

	return netaddr_parse_host(s, &n) == 0;
}

int
smtpd_access_find_domain(struct smtpd_access_map *am, const char *domain,
    char **value_r)
{
	char *name = str_lower(xstrdup(domain));
	size_t len = strlen(name);
	const char *p;
	int r;

	/* A HELO name may end in a dot (not two). */
	if (len > 1 && name[len - 1] == '.' && name[len - 2] != '.')
		name[len - 1] = '\0';
	r = smtpd_access_find(am, name, value_r);
	/* No subdomain magic for numerical names. */
	if (r != 0 || smtpd_access_is_ip(name)) {
		free(name);
		return r;
	}
	for (p = strchr(name + 1, '.'); p != NULL && r == 0;
	    p = strchr(p + 1, '.')) {
		const char *key = am->parent_match ? p + 1 : p;

		if (*key == '\0' || (am->parent_match && *key == '.'))
			continue;
		r = smtpd_access_find(am, key, value_r);
		/*
		 * ".example.com" (subdomains only) is what Postfix reads
		 * without smtpd_access_maps in parent_domain_matches_
		 * subdomains; tutorials write it with the default too and
		 * mean the same, so it matches in both settings.
		 */
		if (r == 0 && am->parent_match)
			r = smtpd_access_find(am, p, value_r);
	}
	free(name);
	return r;
}

int
smtpd_access_find_ip(struct smtpd_access_map *am, const char *ip,
    char **value_r)
{
	char *key = xstrdup(ip);
	char delim = strchr(key, ':') != NULL ? ':' : '.';
	int r;

	for (;;) {
		char *cut;

		r = smtpd_access_find(am, key, value_r);
		if (r != 0 || (cut = strrchr(key, delim)) == NULL)
			break;
		*cut = '\0';
		if (key[0] == '\0')
			break;
	}
	free(key);
	return r;
}

int
smtpd_access_find_host(struct smtpd_access_map *am, const char *name,
    const char *ip, char **value_r)
{
	int r = 0;

	if (name != NULL && strcmp(name, "unknown") != 0)
		r = smtpd_access_find_domain(am, name, value_r);
	if (r == 0 && ip != NULL)
		r = smtpd_access_find_ip(am, ip, value_r);
	return r;
}

char *
smtpd_access_unquote(const char *local)
{
	size_t len = strlen(local), i, o = 0;
	char *out;

	if (len < 2 || local[0] != '"' || local[len - 1] != '"')
		return xstrdup(local);
	out = xmalloc(len);
	for (i = 1; i < len - 1; i++) {
		if (local[i] == '\\' && i + 1 < len - 1)
			i++;
		out[o++] = local[i];
	}
	out[o] = '\0';
	return out;
}

int
smtpd_access_find_mail(struct smtpd_access_map *am, const char *addr,
    char **value_r)
{
	char *quoted, *domain, *local, *base, *keys[4];
	size_t i, n = 0, len;
	int r = 0;

	*value_r = NULL;
	addr_split(addr, &quoted, &domain);
	local = smtpd_access_unquote(quoted);
	base = addr_strip_ext(local, NULL);
	len = strlen(domain);
	if (len > 1 && domain[len - 1] == '.' && domain[len - 2] != '.')
		domain[len - 1] = '\0';
	/* user+ext@domain, user@domain (an address without a domain is
	 * looked up as it is). */
	if (domain[0] != '\0') {
		keys[n++] = xasprintf("%s@%s", local, domain);
		if (strcmp(base, local) != 0)
			keys[n++] = xasprintf("%s@%s", base, domain);
	} else
		keys[n++] = xstrdup(local);
	for (i = 0; i < n && r == 0; i++)
		r = smtpd_access_find(am, keys[i], value_r);
	for (i = 0; i < n; i++)
		free(keys[i]);
	/* domain and parents; Postfix skips address literals' parents. */
	if (r == 0 && domain[0] != '\0') {
		if (domain[0] == '[')
			r = smtpd_access_find(am, domain, value_r);
		else
			r = smtpd_access_find_domain(am, domain, value_r);
	}
	/* user+ext@, user@ */
	if (r == 0 && local[0] != '\0') {
		char *k = xasprintf("%s@", local);

		r = smtpd_access_find(am, k, value_r);
		free(k);
		if (r == 0 && strcmp(base, local) != 0) {
			k = xasprintf("%s@", base);
			r = smtpd_access_find(am, k, value_r);
			free(k);
		}
	}
	free(quoted);
	free(domain);
	free(local);
	free(base);
	return r;
}

/* ---- what an answer means ---- */

/* "X.Y.Z" with X in 2, 4, 5, Y and Z one to three digits: its length. */
static size_t
smtpd_access_dsn_len(const char *s)
{
	size_t i = 0, digits, part;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; isdigit((unsigned char)s[i]) && digits < 4;
		    digits++)
			i++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	return i;
}

const char *
smtpd_access_dsn_split(const char *text, const char *def_dsn, char *dsn,
    size_t size)
{
	size_t n = smtpd_access_dsn_len(text);

	if (n > 0 && (text[n] == '\0' || text[n] == ' ' || text[n] == '\t') &&
	    n < size) {
		memcpy(dsn, text, n);
		dsn[n] = '\0';
		text += n;
		while (*text == ' ' || *text == '\t')
			text++;
		return text;
	}
	str_lcpy(dsn, def_dsn, size);
	return text;
}

void
smtpd_access_dsn_fix(char *dsn, const char *reply_class)
{
	/* Postfix's smtpd_dsn_fix(): an address status (X.1.Y) means
	 * something else for a sender than for a recipient, and nothing for
	 * a client or HELO name. */
	if (strncmp(dsn + 1, ".1.", 3) != 0)
		return;
	if (strcmp(reply_class, SMTPD_CLASS_SENDER) == 0) {
		const char *d = dsn + 4;

		if (strcmp(d, "2") == 0)
			dsn[4] = '8';
		else if (strcmp(d, "3") == 0)
			dsn[4] = '7';
		else if (strcmp(d, "7") != 0 && strcmp(d, "8") != 0) {
			dsn[4] = '0';
			dsn[5] = '\0';
		}
	} else if (strcmp(reply_class, SMTPD_CLASS_RECIPIENT) == 0) {
		if (strcmp(dsn + 4, "7") == 0)
			dsn[4] = '3';
		else if (strcmp(dsn + 4, "8") == 0)
			dsn[4] = '2';
	} else {
		dsn[2] = '0';
		dsn[3] = '.';
		dsn[4] = '0';
		dsn[5] = '\0';
	}
}

void
smtpd_access_parse(const char *value, struct smtpd_access_action *a)
{
	static const struct {
		const char		*word;
		enum smtpd_access_verb	 verb;
	} words[] = {
		{ "OK", SMTPD_ACCESS_OK },
		{ "RELAY", SMTPD_ACCESS_OK },
		{ "PERMIT", SMTPD_ACCESS_OK },
		{ "REJECT", SMTPD_ACCESS_REJECT },
		{ "DEFER", SMTPD_ACCESS_DEFER },
		{ "DEFER_IF_REJECT", SMTPD_ACCESS_DEFER_IF_REJECT },
		{ "DEFER_IF_PERMIT", SMTPD_ACCESS_DEFER_IF_PERMIT },
		{ "DUNNO", SMTPD_ACCESS_DUNNO },
		{ "DISCARD", SMTPD_ACCESS_DISCARD },
		{ "HOLD", SMTPD_ACCESS_HOLD },
		{ "WARN", SMTPD_ACCESS_WARN },
		{ "INFO", SMTPD_ACCESS_INFO },
		{ "FILTER", SMTPD_ACCESS_IGNORED },
		{ "REDIRECT", SMTPD_ACCESS_IGNORED },
		{ "BCC", SMTPD_ACCESS_IGNORED },
		{ "PREPEND", SMTPD_ACCESS_PREPEND },
	};
	size_t wlen, i;
	const char *text;

	memset(a, 0, sizeof(*a));
	while (*value == ' ' || *value == '\t')
		value++;
	wlen = strcspn(value, " \t");
	text = value + wlen;
	while (*text == ' ' || *text == '\t')
		text++;
	a->word = value;
	a->word_len = wlen;
	a->text = text;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strlen(words[i].word) == wlen &&
		    strncasecmp(value, words[i].word, wlen) == 0) {
			a->verb = words[i].verb;
			return;
		}
	}
	/* All digits: Postfix takes it for OK (an out-of-band timestamp). */
	if (wlen > 0 && strspn(value, "0123456789") == wlen &&
	    value[wlen] == '\0') {
		a->verb = SMTPD_ACCESS_OK;
		return;
	}
	/* "4NN text" / "5NN text": the text is required. */
	if (wlen == 3 && (value[0] == '4' || value[0] == '5') &&
	    isdigit((unsigned char)value[1]) &&
	    isdigit((unsigned char)value[2]) && *text != '\0') {
		a->verb = SMTPD_ACCESS_CODE;
		a->code = (value[0] - '0') * 100 + (value[1] - '0') * 10 +
		    (value[2] - '0');
		return;
	}
	/* A lookup table inside a table is refused, as in Postfix: the
	 * admin meant a restriction class. */
	if (strchr(value, ':') != NULL) {
		a->verb = SMTPD_ACCESS_BAD;
		return;
	}
	if (*value == '\0') {
		/* Postfix: an empty value meant OK in the dark ages. */
		a->verb = SMTPD_ACCESS_OK;
		return;
	}
	a->verb = SMTPD_ACCESS_RESTRICTIONS;
}

/* ---- where an address goes ---- */

/* Strip one trailing dot of a domain, not two ("a.b." but not "a.."). */
static void
smtpd_access_strip_dot(char *domain)
{
	size_t len = strlen(domain);

	if (len > 1 && domain[len - 1] == '.' && domain[len - 2] != '.' &&
	    domain[len - 2] != '@')
		domain[len - 1] = '\0';
}

bool
smtpd_access_domain_listed(const char *param, const char *domain)
{
	char **list = cfg_get_list(param);
	bool parent = smtpd_access_parent_style(param);
	char *d = str_lower(xstrdup(domain));
	bool found = false, done = false;
	size_t i;

	smtpd_access_strip_dot(d);
	for (i = 0; list[i] != NULL && !done; i++) {
		const char *e = list[i];
		bool negate = false;
		const char *colon;
		char *value = NULL;
		const char *p;

		if (*e == '!') {
			negate = true;
			e++;
		}
		colon = strchr(e, ':');
		if (colon != NULL && colon != e && e[0] != '[') {
			struct map *m;
			const char *error;
			int r = 0;

			m = map_open(e, MAP_KIND_PLAIN, &error);
			if (m == NULL) {
				log_warning("%s: %s: %s", param, e, error);
				continue;
			}
			r = map_lookup(m, d, &value);
			for (p = strchr(d, '.'); r == 0 && parent && p != NULL;
			    p = strchr(p + 1, '.')) {
				free(value);
				value = NULL;
				r = map_lookup(m, p + 1, &value);
			}
			free(value);
			map_close(&m);
			if (r > 0) {
				found = !negate;
				done = true;
			}
			continue;
		}
		if (str_case_eq(e, d) || (e[0] == '.' &&
		    strlen(d) > strlen(e) &&
		    str_case_eq(d + strlen(d) - strlen(e), e))) {
			found = !negate;
			done = true;
		} else if (parent && e[0] != '.') {
			size_t el = strlen(e), dl = strlen(d);

			if (dl > el && d[dl - el - 1] == '.' &&
			    str_case_eq(d + dl - el, e)) {
				found = !negate;
				done = true;
			}
		}
	}
	cfg_list_free(&list);
	free(d);
	return found;
}

enum smtpd_access_class
smtpd_access_domain_class(const char *domain)
{
	if (domain[0] == '\0' || addr_domain_is_local(domain))
		return SMTPD_CLASS_LOCAL;
	if (rewrite_is_virtual_alias_domain(domain))
		return SMTPD_CLASS_VIRTUAL_ALIAS;
	if (rewrite_is_virtual_mailbox_domain(domain))
		return SMTPD_CLASS_VIRTUAL_MAILBOX;
	if (smtpd_access_domain_listed("relay_domains", domain))
		return SMTPD_CLASS_RELAY;
	return SMTPD_CLASS_DEFAULT;
}

void
smtpd_access_resolve(const char *addr, const struct smtpd_route_opts *o,
    struct smtpd_access_route *r)
{
	char *cur = xstrdup(addr);
	unsigned steps;

	memset(r, 0, sizeof(*r));
	for (steps = 0; steps < SMTPD_ACCESS_MAX_ROUTE; steps++) {
		char *quoted, *domain, *local, *p, *next = NULL;

		addr_split(cur, &quoted, &domain);
		smtpd_access_strip_dot(domain);
		if (domain[0] != '\0' && !addr_domain_is_local(domain)) {
			free(quoted);
			free(domain);
			break;
		}
		/* A local domain: what is left of the address decides. */
		local = smtpd_access_unquote(quoted);
		/* "user@remote"@local: the unquoted part is an address. */
		if (strchr(local, '@') != NULL)
			next = xstrdup(local);
		else if (o->swap_bangpath && (p = strchr(local, '!')) != NULL &&
		    p != local && p[1] != '\0') {
			*p = '\0';
			next = xasprintf("%s@%s", p + 1, local);
		} else if (o->percent_hack &&
		    (p = strrchr(local, '%')) != NULL && p != local &&
		    p[1] != '\0') {
			*p = '@';
			next = xstrdup(local);
		}
		free(quoted);
		free(domain);
		free(local);
		if (next == NULL)
			break;
		free(cur);
		cur = next;
		r->routed = true;
	}
	r->addr = cur;
	{
		char *quoted, *domain;

		addr_split(cur, &quoted, &domain);
		smtpd_access_strip_dot(domain);
		str_lower(domain);
		free(quoted);
		r->domain = domain;
	}
	/* Still routing after the last step: treat as remote. */
	if (steps == SMTPD_ACCESS_MAX_ROUTE)
		r->cls = SMTPD_CLASS_DEFAULT;
	else
		r->cls = smtpd_access_domain_class(r->domain);
}

void
smtpd_access_route_free(struct smtpd_access_route *r)
{
	free(r->addr);
	free(r->domain);
	r->addr = r->domain = NULL;
}
