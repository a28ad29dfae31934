/*
 * addr: mail addresses as the MTA sees them (see addr.h).
 *
 * The path parser follows RFC 5321 §4.1.2 with Postfix's tolerance where
 * real clients need it: spaces before '<', a missing pair of angle
 * brackets, dots anywhere in an unquoted local part, a trailing dot after
 * the domain (removed), underscores in domain labels.  Control characters
 * are never accepted, and non-ASCII only when the client declared
 * SMTPUTF8 (RFC 6531 §3.3), as well-formed UTF-8.  Source routes are
 * parsed and dropped (RFC 5321 §4.1.2, Appendix C).
 *
 * This module does not decide policy (relaying, which users exist): it
 * only parses and answers questions about the configured local domains.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <ifaddrs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "limits_pst.h"
#include "map.h"
#include "netaddr.h"
#include "str.h"
#include "xmalloc.h"

#define ADDR_ERR_SYNTAX	"501 5.1.3 Bad recipient address syntax"
#define ADDR_ERR_UTF8	\
	"553 5.6.7 Must declare SMTPUTF8 to send unicode address"

/* RFC 5322 §3.2.3 atext, as used by RFC 5321 Atom. */
static bool
addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
addr_is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

struct addr_scan {
	const unsigned char	*p;
	bool			 utf8;
	bool			 non_ascii;	/* seen a byte >= 0x80 */
};

/* Non-ASCII byte: only with SMTPUTF8; remembered for the error text. */
static bool
addr_scan_8bit(struct addr_scan *sc)
{
	sc->non_ascii = true;
	return sc->utf8;
}

/*
 * address-literal (RFC 5321 §4.1.3): "[" IPv4 | "IPv6:" IPv6 | tag ":"
 * dcontent "]".  sc->p is at '['.
 */
static bool
addr_scan_literal(struct addr_scan *sc)
{
	const unsigned char *start = sc->p + 1, *q = start;
	char text[128];
	struct netaddr n;
	size_t len;

	while (*q != ']') {
		/* dtext: %d33-90 / %d94-126 */
		if (*q < 33 || *q > 126 || *q == '[' || *q == '\\')
			return false;
		q++;
	}
	len = (size_t)(q - start);
	if (len == 0 || len >= sizeof(text))
		return false;
	memcpy(text, start, len);
	text[len] = '\0';
	if (str_starts_case(text, "IPv6:")) {
		if (netaddr_parse_host(text + 5, &n) < 0 ||
		    n.family != AF_INET6)
			return false;
	} else if (strchr(text, ':') != NULL) {
		/* General-address-literal: Standardized-tag ":" dcontent */
		const char *c;

		for (c = text; *c != ':'; c++)
			if (!addr_is_ldh((unsigned char)*c) || *c == '_')
				return false;
		if (c == text || c[1] == '\0')
			return false;
	} else if (netaddr_parse_host(text, &n) < 0 || n.family != AF_INET)
		return false;
	sc->p = q + 1;
	return true;
}

/*
 * Domain = sub-domain *("." sub-domain) (RFC 5321 §4.1.2), U-labels with
 * SMTPUTF8 (RFC 6531 §3.3), or an address literal.  A single trailing dot
 * is accepted; *end_r is where the domain text ends without it.
 */
static bool
addr_scan_domain(struct addr_scan *sc, const unsigned char **end_r)
{
	bool label_empty = true;

	if (*sc->p == '[') {
		if (!addr_scan_literal(sc))
			return false;
		*end_r = sc->p;
		return true;
	}
	for (;; sc->p++) {
		unsigned char c = *sc->p;

		if (c == '.') {
			if (label_empty)
				return false;
			label_empty = true;
			continue;
		}
		if (c >= 0x80) {
			if (!addr_scan_8bit(sc))
				return false;
		} else if (!addr_is_ldh(c))
			break;
		label_empty = false;
	}
	if (label_empty) {
		/* Empty domain, or a trailing dot (only one allowed). */
		if (sc->p[-1] != '.' || sc->p[-2] == '.' || sc->p[-2] == '@' ||
		    sc->p[-2] == ',')
			return false;
		*end_r = sc->p - 1;
		return true;
	}
	*end_r = sc->p;
	return true;
}

/* Local-part = Dot-string / Quoted-string (RFC 5321 §4.1.2). */
static bool
addr_scan_local(struct addr_scan *sc)
{
	const unsigned char *start = sc->p;

	if (*sc->p == '"') {
		sc->p++;
		for (;;) {
			unsigned char c = *sc->p;

			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				c = *++sc->p;
				if (c >= 0x80) {
					if (!addr_scan_8bit(sc))
						return false;
				} else if (c < 32 || c > 126)
					return false;
			} else if (c >= 0x80) {
				if (!addr_scan_8bit(sc))
					return false;
			} else if (c < 32 || c > 126)
				return false;	/* control, or no end */
			sc->p++;
		}
		sc->p++;
		return true;
	}
	/* Dot-string; Postfix also takes leading/double/trailing dots. */
	for (;; sc->p++) {
		unsigned char c = *sc->p;

		if (c >= 0x80) {
			if (!addr_scan_8bit(sc))
				return false;
		} else if (!addr_is_atext(c) && c != '.')
			break;
	}
	return sc->p != start;
}

int
addr_parse_path(const char *s, bool utf8, char **addr_r,
    const char **rest_r, const char **error_r)
{
	struct addr_scan sc;
	const unsigned char *start, *end;
	bool bracket;
	size_t len;

	sc.p = (const unsigned char *)s;
	sc.utf8 = utf8;
	sc.non_ascii = false;
	while (*sc.p == ' ' || *sc.p == '\t')
		sc.p++;
	bracket = *sc.p == '<';
	if (bracket) {
		sc.p++;
		if (*sc.p == '>') {
			/* The null reverse-path <> */
			sc.p++;
			start = end = sc.p;
			goto done;
		}
	}
	/* A-d-l ":" (source route): parsed, then dropped. */
	if (bracket && *sc.p == '@') {
		for (;;) {
			const unsigned char *dend;

			if (*sc.p != '@')
				goto syntax;
			sc.p++;
			if (!addr_scan_domain(&sc, &dend))
				goto syntax;
			if (*sc.p == ',') {
				sc.p++;
				continue;
			}
			if (*sc.p != ':')
				goto syntax;
			sc.p++;
			break;
		}
	}
	start = sc.p;
	if (!addr_scan_local(&sc))
		goto syntax;
	end = sc.p;
	if (*sc.p == '@') {
		sc.p++;
		if (!addr_scan_domain(&sc, &end))
			goto syntax;
	}
	if (bracket) {
		if (*sc.p != '>')
			goto syntax;
		sc.p++;
	}
done:
	if (*sc.p != '\0' && *sc.p != ' ')
		goto syntax;
	len = (size_t)(end - start);
	if (len > MAX_ADDRESS)
		goto syntax;
	if (sc.non_ascii && !str_utf8_valid((const char *)start, len))
		goto syntax;
	while (*sc.p == ' ')
		sc.p++;
	*addr_r = xstrndup((const char *)start, len);
	*rest_r = (const char *)sc.p;
	return 1;
syntax:
	*error_r = sc.non_ascii && !utf8 ? ADDR_ERR_UTF8 : ADDR_ERR_SYNTAX;
	return -1;
}

/* The '@' that separates local part and domain: the last one outside a
 * quoted string, or NULL. */
static const char *
addr_find_at(const char *addr)
{
	const char *p, *at = NULL;
	bool quoted = false;

	for (p = addr; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	return at;
}

void
addr_split(const char *addr, char **local_r, char **domain_r)
{
	const char *at = addr_find_at(addr);

	if (at == NULL) {
		*local_r = xstrdup(addr);
		*domain_r = xstrdup("");
		return;
	}
	*local_r = xstrndup(addr, (size_t)(at - addr));
	*domain_r = xstrdup(at + 1);
}

/* ---- local domains ---- */

/* Lookup tables named in $mydestination, kept open across calls. */
struct addr_map_cache {
	char		*spec;
	struct map	*map;
};
static struct addr_map_cache *addr_maps;
static size_t addr_map_count;
/* Threads (smtpd's pool, the smtp agent) share the tables: one at a
 * time, as a Berkeley DB handle wants. */
static pthread_mutex_t addr_maps_lock = PTHREAD_MUTEX_INITIALIZER;
static bool addr_maps_atexit;

/* Close the tables at exit: an open handle looks like a leak. */
static void
addr_maps_close(void)
{
	size_t i;

	pthread_mutex_lock(&addr_maps_lock);
	for (i = 0; i < addr_map_count; i++) {
		map_close(&addr_maps[i].map);
		free(addr_maps[i].spec);
	}
	free(addr_maps);
	addr_maps = NULL;
	addr_map_count = 0;
	pthread_mutex_unlock(&addr_maps_lock);
}

static int addr_map_lookup_locked(const char *spec, const char *key);

static int
addr_map_lookup(const char *spec, const char *key)
{
	int ret;

	pthread_mutex_lock(&addr_maps_lock);
	if (!addr_maps_atexit) {
		addr_maps_atexit = true;
		(void)atexit(addr_maps_close);
	}
	ret = addr_map_lookup_locked(spec, key);
	pthread_mutex_unlock(&addr_maps_lock);
	return ret;
}

static int
addr_map_lookup_locked(const char *spec, const char *key)
{
	struct map *m = NULL;
	const char *error;
	char *value = NULL;
	size_t i;
	int ret;

	for (i = 0; i < addr_map_count; i++)
		if (strcmp(addr_maps[i].spec, spec) == 0) {
			m = addr_maps[i].map;
			break;
		}
	if (m == NULL) {
		m = map_open(spec, MAP_KIND_PLAIN, &error);
		if (m == NULL)
			return -1;
		addr_maps = xreallocarray(addr_maps, addr_map_count + 1,
		    sizeof(*addr_maps));
		addr_maps[addr_map_count].spec = xstrdup(spec);
		addr_maps[addr_map_count].map = m;
		addr_map_count++;
	} else if (map_refresh(m, &error) < 0)
		return -1;
	ret = map_lookup(m, key, &value);
	free(value);
	return ret;
}

/* Does the literal "[...]" name one of this host's addresses? */
static bool
addr_literal_is_local(const char *literal)
{
	char text[128];
	const char *inner = literal + 1;
	size_t len = strlen(inner);
	struct netaddr lit, n;
	char **ifs;
	bool all = false, found = false;
	size_t i;

	if (len < 2 || inner[len - 1] != ']' || len >= sizeof(text))
		return false;
	memcpy(text, inner, len - 1);
	text[len - 1] = '\0';
	if (str_starts_case(text, "IPv6:"))
		memmove(text, text + 5, strlen(text + 5) + 1);
	if (netaddr_parse_host(text, &lit) < 0)
		return false;

	ifs = cfg_get_list("inet_interfaces");
	for (i = 0; ifs[i] != NULL && !found; i++) {
		const char *e = ifs[i];

		if (str_case_eq(e, "all"))
			all = true;
		else if (str_case_eq(e, "loopback-only") ||
		    str_case_eq(e, "localhost")) {
			found = (netaddr_parse_host("127.0.0.1", &n) == 0 &&
			    netaddr_match(&n, &lit)) ||
			    (netaddr_parse_host("::1", &n) == 0 &&
			    netaddr_match(&n, &lit));
		} else if (netaddr_parse(e, &n) == 0) {
			n.prefix = n.family == AF_INET ? 32 : 128;
			found = netaddr_match(&n, &lit);
		}
	}
	cfg_list_free(&ifs);
	if (!found && all) {
		struct ifaddrs *ifa, *a;

		if (getifaddrs(&ifa) < 0)
			return false;
		for (a = ifa; a != NULL && !found; a = a->ifa_next)
			if (a->ifa_addr != NULL &&
			    netaddr_from_sockaddr(a->ifa_addr, &n) == 0)
				found = netaddr_match(&n, &lit);
		freeifaddrs(ifa);
	}
	return found;
}

bool
addr_domain_is_local(const char *domain)
{
	char **dests;
	char *d;
	size_t i, len;
	bool local = false;

	if (domain[0] == '\0')
		return false;
	if (domain[0] == '[')
		return addr_literal_is_local(domain);
	d = xstrdup(domain);
	len = strlen(d);
	if (len > 1 && d[len - 1] == '.')
		d[len - 1] = '\0';
	str_lower(d);
	dests = cfg_get_list("mydestination");
	for (i = 0; dests[i] != NULL && !local; i++) {
		const char *e = dests[i];
		const char *colon = strchr(e, ':');

		/* "type:name" table (Postfix allows them here). */
		if (colon != NULL && colon != e && e[0] != '[') {
			local = addr_map_lookup(e, d) == 1;
			continue;
		}
		local = str_case_eq(e, d);
	}
	cfg_list_free(&dests);
	free(d);
	return local;
}

char *
addr_strip_ext(const char *local, char **ext_r)
{
	const char *delims = cfg_get("recipient_delimiter");
	size_t n;

	if (ext_r != NULL)
		*ext_r = NULL;
	if (delims[0] == '\0' || local[0] == '\0')
		return xstrdup(local);
	/* Never split at the first character: "+foo" has no base. */
	n = 1 + strcspn(local + 1, delims);
	if (local[n] == '\0')
		return xstrdup(local);
	if (ext_r != NULL)
		*ext_r = xstrdup(local + n + 1);
	return xstrndup(local, n);
}

char *
addr_normalize(const char *addr)
{
	char *copy = xstrdup(addr);
	const char *at = addr_find_at(addr);

	if (at != NULL)
		str_lower(copy + (at - addr) + 1);
	return copy;
}

char *
addr_qualify(const char *addr)
{
	if (addr[0] == '\0' || addr_find_at(addr) != NULL)
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, cfg_get("myorigin"));
}
