/*
 * qmgr_route: the routing decision of the queue manager (see qmgr.h),
 * what Postfix's trivial-rewrite resolve service and transport(5) do.
 * For one recipient address it gives a transport (local, smtp, error,
 * retry, discard) and, for smtp, the next hop the delivery agent is to
 * use.
 *
 * Order (DESIGN §4):
 *   1. $transport_maps: "user+ext@domain", "user@domain", "domain",
 *      ".parent" for each parent domain, "*"; the first hit wins.  A
 *      result is "transport:nexthop" with transport(5)'s rules for empty
 *      fields: both empty = no change; an empty next hop = the recipient
 *      domain; an empty transport = the address class's transport with
 *      the given next hop.
 *   2. The address class: no domain or $mydestination ->
 *      $local_transport; $virtual_mailbox_domains -> $virtual_transport;
 *      $relay_domains -> $relay_transport; else $default_transport.
 *      The next hop of the last two is the transport's own when it names
 *      one ("smtp:[gw]"), else $relayhost, else the recipient domain.
 *
 * Not done here: address rewriting (smtpd did it before queueing) and
 * any DNS; the smtp agent looks up the next hop.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "map.h"
#include "qmgr.h"
#include "rewrite.h"
#include "str.h"
#include "xmalloc.h"

enum qmgr_route_class {
	QMGR_CLASS_LOCAL,
	QMGR_CLASS_VIRTUAL,
	QMGR_CLASS_RELAY,
	QMGR_CLASS_DEFAULT
};

/* The open $transport_maps, reopened every QMGR_ROUTE_REOPEN seconds. */
static struct map_list *tmaps;
static char *tmaps_spec;
static char *tmaps_error;
static time_t tmaps_opened;

/* Tables named in $relay_domains. */
struct qmgr_route_dmap {
	char		*spec;
	struct map	*map;
};
static struct qmgr_route_dmap *dmaps;
static size_t dmap_count;

/* Per-domain results while one message is routed. */
struct qmgr_route_cached {
	char		*domain;
	struct qmgr_route route;
};
static struct qmgr_route_cached route_cache[QMGR_ROUTE_CACHE];
static size_t cache_count;
static bool cache_on;

static char *warned_transport;

void
qmgr_route_free(struct qmgr_route *r)
{
	free(r->nexthop);
	free(r->dsn);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

static void
qmgr_route_copy(struct qmgr_route *dst, const struct qmgr_route *src)
{
	dst->transport = src->transport;
	dst->nexthop = src->nexthop != NULL ? xstrdup(src->nexthop) : NULL;
	dst->dsn = src->dsn != NULL ? xstrdup(src->dsn) : NULL;
	dst->text = src->text != NULL ? xstrdup(src->text) : NULL;
}

static void
qmgr_route_set(struct qmgr_route *r, enum qmgr_transport t, const char *dsn,
    const char *text)
{
	r->transport = t;
	r->nexthop = NULL;
	r->dsn = xstrdup(dsn);
	r->text = xstrdup(text);
}

/* Length of an RFC 3463 code at the start of s ("5.1.1"), or 0. */
static size_t
qmgr_route_dsn_len(const char *s)
{
	const char *p = s;
	int part;

	if (*p != '2' && *p != '4' && *p != '5')
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		int n = 0;

		if (*p++ != '.')
			return 0;
		while (*p >= '0' && *p <= '9' && n < 4) {
			p++;
			n++;
		}
		if (n == 0 || n > 3)
			return 0;
	}
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return 0;
	return (size_t)(p - s);
}

/*
 * The reason of an error:, retry: or discard: route.  Postfix's error(8)
 * and discard(8) take an optional RFC 3463 code before the text; we use
 * it when its class fits the outcome (5 bounce, 4 defer, 2 sent).
 */
static void
qmgr_route_reason(struct qmgr_route *r, enum qmgr_transport t,
    const char *s, const char *def_dsn)
{
	size_t n = qmgr_route_dsn_len(s);

	r->transport = t;
	if (n > 0 && s[0] == def_dsn[0]) {
		r->dsn = xstrndup(s, n);
		s += n;
		s += strspn(s, " \t");
	} else
		r->dsn = xstrdup(def_dsn);
	r->text = xstrdup(s);
}

/* Split "transport:nexthop" at the first ':'; no ':' = a bare name. */
static void
qmgr_route_split(const char *spec, char **name_r, char **nexthop_r)
{
	const char *colon = strchr(spec, ':');
	char *name, *nh;

	if (colon == NULL) {
		name = xstrdup(spec);
		nh = xstrdup("");
	} else {
		name = xstrndup(spec, (size_t)(colon - spec));
		nh = xstrdup(colon + 1);
	}
	*name_r = xstrdup(str_trim(name));
	*nexthop_r = xstrdup(str_trim(nh));
	free(name);
	free(nh);
}

/* ---- tables ---- */

/* The open $transport_maps: 1 (*l_r), 0 none configured, -1 error. */
static int
qmgr_route_tables(struct map_list **l_r, const char **error_r)
{
	const char *spec = cfg_get("transport_maps");
	time_t now = time(NULL);
	const char *err;

	*l_r = NULL;
	if (spec[0] == '\0') {
		map_list_free(&tmaps);
		free(tmaps_spec);
		tmaps_spec = NULL;
		return 0;
	}
	if (tmaps_spec == NULL || strcmp(tmaps_spec, spec) != 0 ||
	    now - tmaps_opened >= QMGR_ROUTE_REOPEN || now < tmaps_opened) {
		char *old_error = tmaps_error;

		map_list_free(&tmaps);
		free(tmaps_spec);
		tmaps_spec = xstrdup(spec);
		tmaps_opened = now;
		tmaps_error = NULL;
		if ((tmaps = map_list_open(spec, MAP_KIND_PLAIN, &err)) ==
		    NULL) {
			tmaps_error = xstrdup(err);
			/* Once per new problem, not once per reopen. */
			if (old_error == NULL || strcmp(old_error, err) != 0)
				log_error("transport_maps: %s", err);
		}
		free(old_error);
	}
	if (tmaps == NULL) {
		*error_r = tmaps_error;
		return -1;
	}
	*l_r = tmaps;
	return 1;
}

static int
qmgr_route_lookup_key(struct map_list *l, const char *key, char **value_r)
{
	char *k = str_lower(xstrdup(key));
	int ret = map_list_lookup(l, k, value_r);

	free(k);
	return ret;
}

/* transport(5) address keys: user+ext@domain, then user@domain. */
static int
qmgr_route_lookup_addr(struct map_list *l, const char *local,
    const char *domain, char **value_r)
{
	char *key, *base, *ext = NULL;
	int ret;

	if (domain[0] == '\0')
		return 0;
	key = xasprintf("%s@%s", local, domain);
	ret = qmgr_route_lookup_key(l, key, value_r);
	free(key);
	if (ret != 0)
		return ret;
	base = addr_strip_ext(local, &ext);
	if (ext != NULL && strcmp(base, local) != 0) {
		key = xasprintf("%s@%s", base, domain);
		ret = qmgr_route_lookup_key(l, key, value_r);
		free(key);
	}
	free(base);
	free(ext);
	return ret;
}

/* transport(5) domain keys: domain, .parent (each), then "*". */
static int
qmgr_route_lookup_domain(struct map_list *l, const char *domain,
    char **value_r)
{
	const char *p;
	int ret;

	if (domain[0] != '\0') {
		if ((ret = qmgr_route_lookup_key(l, domain, value_r)) != 0)
			return ret;
		/* No parents of an address literal "[192.0.2.1]". */
		for (p = domain[0] == '[' ? NULL : strchr(domain + 1, '.');
		    p != NULL && p[1] != '\0'; p = strchr(p + 1, '.')) {
			if ((ret = qmgr_route_lookup_key(l, p, value_r)) != 0)
				return ret;
		}
	}
	return qmgr_route_lookup_key(l, "*", value_r);
}

static int
qmgr_route_dmap_lookup(const char *spec, const char *key)
{
	struct map *m = NULL;
	const char *err;
	char *value = NULL;
	size_t i;
	int ret;

	for (i = 0; i < dmap_count; i++) {
		if (strcmp(dmaps[i].spec, spec) == 0) {
			m = dmaps[i].map;
			break;
		}
	}
	if (m == NULL) {
		if ((m = map_open(spec, MAP_KIND_PLAIN, &err)) == NULL) {
			log_error("relay_domains: %s", err);
			return -1;
		}
		dmaps = xreallocarray(dmaps, dmap_count + 1, sizeof(*dmaps));
		dmaps[dmap_count].spec = xstrdup(spec);
		dmaps[dmap_count].map = m;
		dmap_count++;
	} else if (map_refresh(m, &err) < 0) {
		log_error("relay_domains: %s", err);
		return -1;
	}
	ret = map_lookup(m, key, &value);
	free(value);
	return ret;
}

/*
 * Does one $relay_domains element match domain?  Postfix's
 * parent_domain_matches_subdomains includes relay_domains by default:
 * "example.com" also matches its subdomains, as ".example.com" does.
 * Returns 1, 0, or -1 on a table error.
 */
static int
qmgr_route_domain_match(const char *e, const char *domain)
{
	const char *colon = strchr(e, ':');
	size_t dlen = strlen(domain), elen;
	bool sub_only = false;
	const char *p;
	int ret;

	if (colon != NULL && colon != e && e[0] != '[') {
		if ((ret = qmgr_route_dmap_lookup(e, domain)) != 0)
			return ret;
		for (p = domain[0] == '[' ? NULL : strchr(domain, '.');
		    p != NULL && p[1] != '\0'; p = strchr(p + 1, '.')) {
			if ((ret = qmgr_route_dmap_lookup(e, p + 1)) != 0 ||
			    (ret = qmgr_route_dmap_lookup(e, p)) != 0)
				return ret;
		}
		return 0;
	}
	/* ".example.com": its subdomains only. */
	if (e[0] == '.') {
		e++;
		sub_only = true;
	}
	elen = strlen(e);
	if (elen == 0)
		return 0;
	if (!sub_only && str_case_eq(domain, e))
		return 1;
	return dlen > elen && domain[dlen - elen - 1] == '.' &&
	    str_case_eq(domain + dlen - elen, e);
}

static int
qmgr_route_is_relay_domain(const char *domain)
{
	char **list;
	size_t i;
	int ret = 0;

	if (domain[0] == '\0')
		return 0;
	list = cfg_get_list("relay_domains");
	for (i = 0; list[i] != NULL && ret == 0; i++) {
		const char *e = list[i];

		if (e[0] == '!') {
			/* A negated element ends the search when it matches. */
			ret = qmgr_route_domain_match(e + 1, domain);
			if (ret > 0) {
				ret = 0;
				break;
			}
			continue;
		}
		ret = qmgr_route_domain_match(e, domain);
	}
	cfg_list_free(&list);
	return ret;
}

/* ---- the decision ---- */

static enum qmgr_route_class
qmgr_route_class(const char *domain, int *relay_err_r)
{
	int r;

	*relay_err_r = 0;
	if (domain[0] == '\0' || addr_domain_is_local(domain))
		return QMGR_CLASS_LOCAL;
	if (rewrite_is_virtual_mailbox_domain(domain))
		return QMGR_CLASS_VIRTUAL;
	if ((r = qmgr_route_is_relay_domain(domain)) < 0)
		*relay_err_r = -1;
	else if (r > 0)
		return QMGR_CLASS_RELAY;
	return QMGR_CLASS_DEFAULT;
}

static const char *
qmgr_route_class_param(enum qmgr_route_class c)
{
	switch (c) {
	case QMGR_CLASS_LOCAL:
		return "local_transport";
	case QMGR_CLASS_VIRTUAL:
		return "virtual_transport";
	case QMGR_CLASS_RELAY:
		return "relay_transport";
	case QMGR_CLASS_DEFAULT:
		break;
	}
	return "default_transport";
}

/* The first element of a next-hop list ("[a]:25, [b]:25" -> "[a]:25"). */
static char *
qmgr_route_first_hop(const char *nh)
{
	size_t n;

	nh += strspn(nh, ", \t");
	n = strcspn(nh, ", \t");
	return str_lower(xstrndup(nh, n));
}

/*
 * Turn a transport name and next hop into a route.  nh_reset: an
 * explicit "transport:" from transport_maps, whose empty next hop means
 * the recipient domain rather than $relayhost.
 */
static void
qmgr_route_finish(const char *name, const char *nh, bool nh_reset,
    enum qmgr_route_class c, const char *domain, struct qmgr_route *r)
{
	const char *relayhost = cfg_get("relayhost");

	memset(r, 0, sizeof(*r));
	if (strcmp(name, "local") == 0 || strcmp(name, "virtual") == 0) {
		r->transport = QMGR_T_LOCAL;
	} else if (strcmp(name, "smtp") == 0 || strcmp(name, "relay") == 0) {
		r->transport = QMGR_T_SMTP;
		if (nh[0] != '\0')
			r->nexthop = qmgr_route_first_hop(nh);
		else if (!nh_reset && relayhost[0] != '\0' &&
		    (c == QMGR_CLASS_RELAY || c == QMGR_CLASS_DEFAULT))
			r->nexthop = qmgr_route_first_hop(relayhost);
		else if (domain[0] != '\0')
			r->nexthop = str_lower(xstrdup(domain));
		else
			r->nexthop = qmgr_route_first_hop(cfg_get("myorigin"));
		if (r->nexthop[0] == '\0' ||
		    strlen(r->nexthop) > QMGR_ROUTE_MAX_NEXTHOP) {
			qmgr_route_free(r);
			qmgr_route_set(r, QMGR_T_RETRY, "4.3.5",
			    "bad next hop for the smtp transport");
		}
	} else if (strcmp(name, "error") == 0) {
		qmgr_route_reason(r, QMGR_T_ERROR, nh[0] != '\0' ? nh : domain,
		    "5.0.0");
	} else if (strcmp(name, "retry") == 0) {
		qmgr_route_reason(r, QMGR_T_RETRY, nh[0] != '\0' ? nh : domain,
		    "4.0.0");
	} else if (strcmp(name, "discard") == 0) {
		qmgr_route_reason(r, QMGR_T_DISCARD,
		    nh[0] != '\0' ? nh : domain, "2.0.0");
	} else {
		/* Postfix logs the missing master.cf service and defers. */
		if (warned_transport == NULL ||
		    strcmp(warned_transport, name) != 0) {
			char esc[128];

			log_warning("unknown mail transport \"%s\": mail for "
			    "it is deferred", log_escape(esc, sizeof(esc),
			    name, strlen(name)));
			free(warned_transport);
			warned_transport = xstrdup(name);
		}
		qmgr_route_set(r, QMGR_T_RETRY, "4.3.5",
		    "mail transport unavailable");
	}
}

/*
 * The route of domain's class, changed by a transport_maps result
 * (value, or NULL for none).
 */
static void
qmgr_route_apply(const char *domain, const char *value, struct qmgr_route *r)
{
	enum qmgr_route_class c;
	char *name, *nh, *vname = NULL, *vnh = NULL;
	bool nh_reset = false;
	int relay_err;

	c = qmgr_route_class(domain, &relay_err);
	if (relay_err < 0) {
		qmgr_route_set(r, QMGR_T_RETRY, "4.3.0",
		    "relay_domains lookup failure");
		return;
	}
	qmgr_route_split(cfg_get(qmgr_route_class_param(c)), &name, &nh);
	if (value != NULL) {
		qmgr_route_split(value, &vname, &vnh);
		if (vname[0] != '\0') {
			/* transport(5): a transport with an empty next hop
			 * resets the next hop to the recipient domain. */
			free(name);
			name = vname;
			vname = NULL;
			free(nh);
			nh = vnh;
			vnh = NULL;
			nh_reset = true;
		} else if (vnh[0] != '\0') {
			free(nh);
			nh = vnh;
			vnh = NULL;
		}
		free(vname);
		free(vnh);
	}
	qmgr_route_finish(name, nh, nh_reset, c, domain, r);
	free(name);
	free(nh);
}

static bool
qmgr_route_cache_get(const char *domain, struct qmgr_route *r)
{
	size_t i;

	if (!cache_on)
		return false;
	for (i = 0; i < cache_count; i++) {
		if (strcmp(route_cache[i].domain, domain) == 0) {
			qmgr_route_copy(r, &route_cache[i].route);
			return true;
		}
	}
	return false;
}

static void
qmgr_route_cache_put(const char *domain, const struct qmgr_route *r)
{
	if (!cache_on || cache_count >= QMGR_ROUTE_CACHE)
		return;
	route_cache[cache_count].domain = xstrdup(domain);
	qmgr_route_copy(&route_cache[cache_count].route, r);
	cache_count++;
}

void
qmgr_route_resolve(const char *addr, struct qmgr_route *r)
{
	struct map_list *l;
	char *local, *domain, *value = NULL;
	const char *err = NULL;
	size_t len;
	int ret;

	memset(r, 0, sizeof(*r));
	addr_split(addr, &local, &domain);
	str_lower(domain);
	len = strlen(domain);
	if (len > 1 && domain[len - 1] == '.')
		domain[len - 1] = '\0';

	if ((ret = qmgr_route_tables(&l, &err)) < 0) {
		char *why = xasprintf("transport_maps: %s", err);

		qmgr_route_set(r, QMGR_T_RETRY, "4.3.0", why);
		free(why);
		goto out;
	}
	if (l != NULL) {
		ret = qmgr_route_lookup_addr(l, local, domain, &value);
		if (ret < 0) {
			qmgr_route_set(r, QMGR_T_RETRY, "4.3.0",
			    "transport_maps lookup failure");
			goto out;
		}
		if (ret > 0) {
			qmgr_route_apply(domain, str_trim(value), r);
			goto out;
		}
	}
	if (qmgr_route_cache_get(domain, r))
		goto out;
	if (l != NULL) {
		ret = qmgr_route_lookup_domain(l, domain, &value);
		if (ret < 0) {
			qmgr_route_set(r, QMGR_T_RETRY, "4.3.0",
			    "transport_maps lookup failure");
			goto out;
		}
	}
	qmgr_route_apply(domain, value != NULL ? str_trim(value) : NULL, r);
	qmgr_route_cache_put(domain, r);
out:
	free(value);
	free(local);
	free(domain);
}

void
qmgr_route_cache_begin(void)
{
	qmgr_route_cache_end();
	cache_on = true;
}

void
qmgr_route_cache_end(void)
{
	size_t i;

	for (i = 0; i < cache_count; i++) {
		free(route_cache[i].domain);
		qmgr_route_free(&route_cache[i].route);
	}
	cache_count = 0;
	cache_on = false;
}

void
qmgr_route_reset(void)
{
	size_t i;

	qmgr_route_cache_end();
	map_list_free(&tmaps);
	free(tmaps_spec);
	tmaps_spec = NULL;
	free(tmaps_error);
	tmaps_error = NULL;
	for (i = 0; i < dmap_count; i++) {
		map_close(&dmaps[i].map);
		free(dmaps[i].spec);
	}
	free(dmaps);
	dmaps = NULL;
	dmap_count = 0;
	free(warned_transport);
	warned_transport = NULL;
}
