/*
 * dns: MX, address, A, TXT and PTR lookups through the system resolver
 * library (see dns.h).
 *
 * Every call builds its own struct __res_state (res_ninit), so lookups in
 * several worker threads never share resolver state.  When $dns_servers
 * is set, the name servers read from /etc/resolv.conf are replaced in
 * that private state; IPv6 servers go into the glibc extension
 * (_u._ext.nsaddrs) the way res_ninit itself stores them.  Retransmission
 * is short and bounded (2 tries per server, about 2 s each: 4 s in all
 * with one server) so a dead name server costs a delivery attempt
 * seconds, not minutes.
 *
 * Answers are parsed with ns_initparse()/ns_parserr() and checked: the
 * records used are those of the asked type whose owner is the query name
 * or the end of a CNAME chain inside the answer (at most DNS_MAX_CNAME
 * links), so stray records from a broken or hostile server are ignored.
 * A record of the asked type that does not parse makes the whole answer
 * DNS_FAIL.  Names taken from answers must look like host names (letters,
 * digits, '-', '_', '.'): they end up in logs, Received: headers and
 * connection attempts.
 *
 * Not done here: DNSSEC/DANE, caching (the qmgr and the system's resolver
 * cache), forward confirmation of PTR names (the caller looks the name up
 * again with dns_lookup_host()).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "dns.h"
#include "xmalloc.h"

/* Largest DNS message (TCP length prefix is 16 bits). */
#define DNS_MAX_ANSWER	65536
/* CNAME links followed inside one answer (resolvers stop near 8-16). */
#define DNS_MAX_CNAME	16
/* Seconds before the first retransmission, and tries per server. */
#define DNS_RETRANS	2
#define DNS_RETRY	2
/* Text form of a name: 255 wire bytes with every byte as "\DDD". */
#define DNS_NAME_TEXT	(NS_MAXDNAME)

static const char dns_why_notfound[] = "Host not found";
static const char dns_why_nodata[] =
    "Host found but no data record of the requested type";
static const char dns_why_tempfail[] =
    "Host or domain name not found. "
    "Name service error: Host not found, try again";
static const char dns_why_fail[] =
    "Name service error: Non-recoverable error";
static const char dns_why_badname[] = "Malformed domain name";
static const char dns_why_badreply[] =
    "Malformed or unexpected name server reply";
static const char dns_why_nullmx[] =
    "Domain does not accept mail (null MX, RFC 7505)";
static const char dns_why_family[] =
    "Address family not enabled by inet_protocols";
static const char dns_why_native[] = "Host not found (getaddrinfo)";
static const char dns_why_native_temp[] =
    "Host not found, try again (getaddrinfo)";

/*
 * Settings read by dns_init().  Worker threads copy them under the lock
 * at the start of each lookup, so a reload never changes a query midway.
 */
struct dns_conf {
	bool			 loaded;
	int			 nservers;
	struct sockaddr_storage	 servers[MAXNS];
	bool			 ipv4, ipv6;	/* $inet_protocols */
	int			 prefer;	/* 0 any, 4, 6 */
	bool			 native_only;	/* no DNS: MX, hosts */
	bool			 native_fallback; /* "dns, native" */
};

static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_conf dns_conf;

/* One parsed answer: the message and the name its records must carry. */
struct dns_answer {
	ns_msg		 msg;
	char		 owner[DNS_NAME_TEXT];
};

/*
 * "192.0.2.53", "[192.0.2.53]:5353", "[2001:db8::53]", "[::1]:53",
 * "2001:db8::53" (no port without brackets: the colons are the
 * address's).
 */
static int
dns_parse_server(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *end, *p;
	unsigned long port = NAMESERVER_PORT;
	size_t len;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		len = end - (s + 1);
		p = end + 1;
		if (*p == ':') {
			char *ep;

			if (p[1] < '0' || p[1] > '9')
				return -1;
			port = strtoul(p + 1, &ep, 10);
			if (*ep != '\0' || port == 0 || port > 65535)
				return -1;
		} else if (*p != '\0')
			return -1;
		s++;
	} else
		len = strlen(s);
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return 0;
	}
	return -1;
}

static int
dns_conf_read(struct dns_conf *c, const char **error_r)
{
	const char *pref = cfg_get("smtp_address_preference");
	bool use_dns = false, use_native = false;
	char **list, **p;

	memset(c, 0, sizeof(*c));
	list = cfg_get_list("dns_servers");
	for (p = list; *p != NULL; p++) {
		if (c->nservers == MAXNS) {
			*error_r = "dns_servers: at most 3 name servers";
			cfg_list_free(&list);
			return -1;
		}
		if (dns_parse_server(*p, &c->servers[c->nservers]) < 0) {
			*error_r = "dns_servers: expected \"ip\", "
			    "\"[ip]\" or \"[ip]:port\"";
			cfg_list_free(&list);
			return -1;
		}
		c->nservers++;
	}
	cfg_list_free(&list);

	list = cfg_get_list("inet_protocols");
	for (p = list; *p != NULL; p++) {
		if (strcasecmp(*p, "all") == 0)
			c->ipv4 = c->ipv6 = true;
		else if (strcasecmp(*p, "ipv4") == 0)
			c->ipv4 = true;
		else if (strcasecmp(*p, "ipv6") == 0)
			c->ipv6 = true;
	}
	cfg_list_free(&list);
	if (!c->ipv4 && !c->ipv6)
		c->ipv4 = c->ipv6 = true;

	c->prefer = strcasecmp(pref, "ipv4") == 0 ? 4 :
	    strcasecmp(pref, "ipv6") == 0 ? 6 : 0;

	/* Postfix: "dns, native" asks DNS first, getaddrinfo() if not found. */
	list = cfg_get_list("smtp_host_lookup");
	for (p = list; *p != NULL; p++) {
		if (strcasecmp(*p, "dns") == 0)
			use_dns = true;
		else if (strcasecmp(*p, "native") == 0)
			use_native = true;
	}
	cfg_list_free(&list);
	if (cfg_get_bool("disable_dns_lookups") || (use_native && !use_dns))
		c->native_only = true;
	else if (use_native)
		c->native_fallback = true;
	c->loaded = true;
	return 0;
}

int
dns_init(const char **error_r)
{
	struct dns_conf c;

	if (dns_conf_read(&c, error_r) < 0)
		return -1;
	pthread_mutex_lock(&dns_lock);
	dns_conf = c;
	pthread_mutex_unlock(&dns_lock);
	return 0;
}

/* Copy of the settings for one lookup; loads defaults on first use. */
static void
dns_conf_get(struct dns_conf *c)
{
	const char *error;

	pthread_mutex_lock(&dns_lock);
	if (!dns_conf.loaded && dns_conf_read(&dns_conf, &error) < 0) {
		/* A bad $dns_servers was reported by dns_init(). */
		memset(&dns_conf, 0, sizeof(dns_conf));
		dns_conf.ipv4 = dns_conf.ipv6 = true;
		dns_conf.loaded = true;
	}
	*c = dns_conf;
	pthread_mutex_unlock(&dns_lock);
}

/*
 * A private resolver state: /etc/resolv.conf, then $dns_servers in place
 * of its name servers.  Release with res_nclose().
 */
static int
dns_res_open(res_state rs, const struct dns_conf *c)
{
	int i;

	memset(rs, 0, sizeof(*rs));
	if (res_ninit(rs) != 0) {
		res_nclose(rs);
		return -1;
	}
	rs->retrans = DNS_RETRANS;
	rs->retry = DNS_RETRY;
	/*
	 * No search list or default domain: callers pass complete names.
	 * res_nquery() does not search anyway; this also keeps the options
	 * from resolv.conf from adding any.
	 */
	rs->options &= ~(RES_DEFNAMES | RES_DNSRCH);
	if (c->nservers == 0)
		return 0;

	/*
	 * Replace the servers.  glibc keeps an IPv6 server as
	 * nsaddr_list[i].sin_family == 0 plus a malloc'ed sockaddr_in6 in
	 * _u._ext.nsaddrs[i], and rebuilds its own copies of IPv4 servers
	 * when _u._ext.nscount is 0; res_nclose() frees nsaddrs[].
	 */
	for (i = 0; i < rs->nscount && i < MAXNS; i++) {
		free(rs->_u._ext.nsaddrs[i]);
		rs->_u._ext.nsaddrs[i] = NULL;
	}
	for (i = 0; i < c->nservers; i++) {
		const struct sockaddr_storage *ss = &c->servers[i];

		rs->_u._ext.nssocks[i] = -1;
		if (ss->ss_family == AF_INET) {
			memcpy(&rs->nsaddr_list[i], ss,
			    sizeof(struct sockaddr_in));
			rs->_u._ext.nsaddrs[i] = NULL;
		} else {
			struct sockaddr_in6 *sin6 = xmalloc(sizeof(*sin6));

			memcpy(sin6, ss, sizeof(*sin6));
			memset(&rs->nsaddr_list[i], 0,
			    sizeof(rs->nsaddr_list[i]));
			rs->_u._ext.nsaddrs[i] = sin6;
		}
	}
	rs->nscount = c->nservers;
	rs->_u._ext.nscount = 0;
	return 0;
}

/*
 * Text name without a trailing dot, checked for length and characters a
 * DNS name can carry in a query (RFC 1035 §2.3.4: 63-byte labels, 255
 * bytes in all).  Copies into buf.
 */
static bool
dns_name_ok(const char *name, char *buf, size_t size)
{
	size_t len = strlen(name), label = 0, i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= size)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = name[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		/* Escapes, spaces and controls have no place in a query. */
		if (ch <= ' ' || ch >= 0x7f || ch == '\\' || ch == '"')
			return false;
		if (++label > 63)
			return false;
	}
	memcpy(buf, name, len);
	buf[len] = '\0';
	return true;
}

/*
 * Whether a name from an answer is usable as a host name: letters,
 * digits, '-', '_' and '.' only (dn_expand writes other bytes as
 * "\DDD", which would end up in logs and headers).  "" is the root.
 */
static bool
dns_host_ok(const char *name)
{
	const char *p;

	for (p = name; *p != '\0'; p++) {
		unsigned char ch = *p;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.'))
			return false;
	}
	return true;
}

static void
dns_strip_dot(char *name)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		name[len - 1] = '\0';
}

/* An rdata name: expands, must end exactly at the end of rdata. */
static int
dns_rdata_name(const ns_msg *msg, const unsigned char *rd, size_t rdlen,
    char *name, size_t size)
{
	const unsigned char *end = rd + rdlen;
	int n;

	if (rdlen == 0)
		return -1;
	n = dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), rd, name, size);
	if (n < 0 || (size_t)n != rdlen || rd + n != end)
		return -1;
	dns_strip_dot(name);
	if (strcmp(name, ".") == 0)
		name[0] = '\0';
	return 0;
}

/*
 * Ask for type at name.  On DNS_OK ans holds a parsed answer whose owner
 * is the end of the CNAME chain; buf (DNS_MAX_ANSWER bytes) backs it.
 */
static enum dns_status
dns_query(const char *name, int type, unsigned char *buf,
    struct dns_answer *ans, const char **why_r)
{
	struct __res_state rs;
	struct dns_conf c;
	HEADER *hp = (HEADER *)buf;
	char qname[DNS_NAME_TEXT];
	size_t hops = 0;
	bool moved = true;
	int n, herr;

	if (!dns_name_ok(name, qname, sizeof(qname))) {
		*why_r = dns_why_badname;
		return DNS_FAIL;
	}
	dns_conf_get(&c);
	if (dns_res_open(&rs, &c) < 0) {
		*why_r = dns_why_tempfail;
		return DNS_TEMPFAIL;
	}
	/* A header of zeros tells "no reply at all" from a reply's rcode. */
	memset(buf, 0, HFIXEDSZ);
	n = res_nquery(&rs, qname, ns_c_in, type, buf, DNS_MAX_ANSWER);
	herr = rs.res_h_errno;
	res_nclose(&rs);
	if (n < 0) {
		switch (herr) {
		case HOST_NOT_FOUND:
			*why_r = dns_why_notfound;
			return DNS_NOTFOUND;
		case NO_DATA:
			*why_r = dns_why_nodata;
			return DNS_NOTFOUND;
		case NO_RECOVERY:
			/*
			 * FORMERR or NOTIMP: our query or their software;
			 * REFUSED is a server's policy of the moment (a
			 * resolver not configured for us), so retry later
			 * rather than bounce mail.
			 */
			if (hp->rcode == ns_r_refused) {
				*why_r = dns_why_tempfail;
				return DNS_TEMPFAIL;
			}
			*why_r = dns_why_fail;
			return DNS_FAIL;
		default:	/* TRY_AGAIN: SERVFAIL, timeout, no server */
			*why_r = dns_why_tempfail;
			return DNS_TEMPFAIL;
		}
	}
	/* res_nquery() reports a reply's full length even if truncated. */
	if (n > DNS_MAX_ANSWER)
		n = DNS_MAX_ANSWER;
	if (ns_initparse(buf, n, &ans->msg) < 0) {
		*why_r = dns_why_badreply;
		return DNS_FAIL;
	}

	/* Follow the CNAME chain inside the answer (RFC 1034 §3.6.2). */
	memcpy(ans->owner, qname, sizeof(ans->owner));	/* same size */
	while (moved && type != ns_t_cname) {
		int i, count = ns_msg_count(ans->msg, ns_s_an);
		ns_rr rr;

		moved = false;
		for (i = 0; i < count; i++) {
			char owner[DNS_NAME_TEXT], target[DNS_NAME_TEXT];

			if (ns_parserr(&ans->msg, ns_s_an, i, &rr) < 0) {
				*why_r = dns_why_badreply;
				return DNS_FAIL;
			}
			if (ns_rr_type(rr) != ns_t_cname ||
			    ns_rr_class(rr) != ns_c_in)
				continue;
			/* Both hold NS_MAXDNAME bytes: no truncation. */
			(void)snprintf(owner, sizeof(owner), "%s",
			    ns_rr_name(rr));
			dns_strip_dot(owner);
			if (strcasecmp(owner, ans->owner) != 0)
				continue;
			if (dns_rdata_name(&ans->msg, ns_rr_rdata(rr),
			    ns_rr_rdlen(rr), target, sizeof(target)) < 0 ||
			    target[0] == '\0') {
				*why_r = dns_why_badreply;
				return DNS_FAIL;
			}
			if (++hops > DNS_MAX_CNAME) {
				*why_r = dns_why_badreply;
				return DNS_FAIL;
			}
			(void)snprintf(ans->owner, sizeof(ans->owner), "%s",
			    target);
			moved = true;
			break;
		}
	}
	return DNS_OK;
}

/*
 * The i-th answer record if it is of type at the chain's end; 0 skip,
 * 1 use, -1 malformed message.
 */
static int
dns_answer_rr(struct dns_answer *ans, int i, int type, ns_rr *rr)
{
	char owner[DNS_NAME_TEXT];

	if (ns_parserr(&ans->msg, ns_s_an, i, rr) < 0)
		return -1;
	if ((int)ns_rr_type(*rr) != type || ns_rr_class(*rr) != ns_c_in)
		return 0;
	(void)snprintf(owner, sizeof(owner), "%s", ns_rr_name(*rr));
	dns_strip_dot(owner);
	return strcasecmp(owner, ans->owner) == 0 ? 1 : 0;
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

enum dns_status
dns_lookup_mx(const char *domain, struct dns_mx **mx_r, size_t *count_r,
    const char **why_r)
{
	struct dns_answer ans;
	struct dns_mx *mx = NULL;
	struct dns_conf c;
	unsigned char *buf;
	const char *why;
	enum dns_status st;
	size_t count = 0, i, j;
	bool nullmx = false;
	int k, total;

	if (why_r == NULL)
		why_r = &why;
	*mx_r = NULL;
	*count_r = 0;
	dns_conf_get(&c);
	if (c.native_only) {
		/* The caller falls back to the domain's addresses. */
		*why_r = dns_why_notfound;
		return DNS_NOTFOUND;
	}

	buf = xmalloc(DNS_MAX_ANSWER);
	st = dns_query(domain, ns_t_mx, buf, &ans, why_r);
	if (st != DNS_OK)
		goto out;
	total = ns_msg_count(ans.msg, ns_s_an);
	for (k = 0; k < total; k++) {
		char host[DNS_NAME_TEXT];
		ns_rr rr;
		int r;

		if ((r = dns_answer_rr(&ans, k, ns_t_mx, &rr)) < 0)
			goto bad;
		if (r == 0)
			continue;
		if (ns_rr_rdlen(rr) < 3 ||
		    dns_rdata_name(&ans.msg, ns_rr_rdata(rr) + 2,
		    ns_rr_rdlen(rr) - 2, host, sizeof(host)) < 0)
			goto bad;
		/*
		 * RFC 7505 §3: "0 ." says the domain takes no mail.  A
		 * root exchange is never a host to connect to, so it is
		 * dropped whatever its preference, and a list left empty
		 * is a null MX.
		 */
		if (host[0] == '\0') {
			nullmx = true;
			continue;
		}
		if (!dns_host_ok(host))
			continue;
		/*
		 * Keep all of them for now (the message bounds the count):
		 * the best DNS_MAX_RR are kept after sorting.
		 */
		mx = xreallocarray(mx, count + 1, sizeof(*mx));
		mx[count].pref = ns_get16(ns_rr_rdata(rr));
		mx[count].host = xstrdup(host);
		count++;
	}
	if (count == 0) {
		if (nullmx) {
			*why_r = dns_why_nullmx;
			st = DNS_NULLMX;
		} else {
			*why_r = dns_why_nodata;
			st = DNS_NOTFOUND;
		}
		goto out;
	}

	/*
	 * Lowest preference first; hosts of equal preference in random
	 * order to spread the load (RFC 5321 §5.1).
	 */
	qsort(mx, count, sizeof(*mx), dns_mx_cmp);
	for (i = 0; i < count; i = j) {
		for (j = i + 1; j < count && mx[j].pref == mx[i].pref; j++)
			;
		for (size_t n = j - i; n > 1; n--) {
			size_t r = arc4random_uniform(n);
			struct dns_mx t = mx[i + n - 1];

			mx[i + n - 1] = mx[i + r];
			mx[i + r] = t;
		}
	}
	for (i = DNS_MAX_RR; i < count; i++)
		free(mx[i].host);
	if (count > DNS_MAX_RR)
		count = DNS_MAX_RR;
	*mx_r = mx;
	*count_r = count;
	mx = NULL;
	count = 0;
	st = DNS_OK;
	goto out;
bad:
	*why_r = dns_why_badreply;
	st = DNS_FAIL;
out:
	dns_mx_free(mx, count);
	free(buf);
	return st;
}

void
dns_mx_free(struct dns_mx *mx, size_t count)
{
	size_t i;

	if (mx == NULL)
		return;
	for (i = 0; i < count; i++)
		free(mx[i].host);
	free(mx);
}

/*
 * Records of one address type, appended to *addrs (at most DNS_MAX_RR
 * in all).  rrtype ns_t_a or ns_t_aaaa.
 */
static enum dns_status
dns_query_addr(const char *host, int rrtype, unsigned char *buf,
    struct dns_addr **addrs, size_t *count, const char **why_r)
{
	struct dns_answer ans;
	enum dns_status st;
	size_t want = rrtype == ns_t_a ? 4 : 16, found = 0;
	int k, total;

	st = dns_query(host, rrtype, buf, &ans, why_r);
	if (st != DNS_OK)
		return st;
	total = ns_msg_count(ans.msg, ns_s_an);
	for (k = 0; k < total; k++) {
		struct dns_addr *a;
		ns_rr rr;
		int r;

		if ((r = dns_answer_rr(&ans, k, rrtype, &rr)) < 0 ||
		    (r == 1 && ns_rr_rdlen(rr) != want)) {
			*why_r = dns_why_badreply;
			return DNS_FAIL;
		}
		if (r == 0)
			continue;
		found++;
		if (*count == DNS_MAX_RR)
			continue;
		*addrs = xreallocarray(*addrs, *count + 1, sizeof(**addrs));
		a = &(*addrs)[(*count)++];
		memset(a, 0, sizeof(*a));
		if (rrtype == ns_t_a) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, ns_rr_rdata(rr), 4);
			a->len = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 =
			    (struct sockaddr_in6 *)&a->ss;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, ns_rr_rdata(rr), 16);
			a->len = sizeof(*sin6);
		}
	}
	if (found == 0) {
		*why_r = dns_why_nodata;
		return DNS_NOTFOUND;
	}
	return DNS_OK;
}

/* "192.0.2.1", "2001:db8::1", "[192.0.2.1]", "[IPv6:2001:db8::1]". */
static bool
dns_ip_literal(const char *host, struct dns_addr *a)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(host);
	const char *p = host;

	if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		p++;
		len -= 2;
		if (len > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
			p += 5;
			len -= 5;
		}
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		a->len = sizeof(*sin);
		return true;
	}
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		a->len = sizeof(*sin6);
		return true;
	}
	return false;
}

/* getaddrinfo(): /etc/hosts and whatever nsswitch.conf says. */
static enum dns_status
dns_native_host(const char *host, bool v4, bool v6,
    struct dns_addr **addrs, size_t *count, const char **why_r)
{
	struct addrinfo hints, *res, *ai;
	char name[DNS_NAME_TEXT];
	int err;

	if (!dns_name_ok(host, name, sizeof(name))) {
		*why_r = dns_why_badname;
		return DNS_FAIL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	err = getaddrinfo(name, NULL, &hints, &res);
	if (err != 0) {
		if (err == EAI_AGAIN || err == EAI_SYSTEM ||
		    err == EAI_MEMORY) {
			*why_r = dns_why_native_temp;
			return DNS_TEMPFAIL;
		}
		*why_r = dns_why_native;
		return DNS_NOTFOUND;
	}
	for (ai = res; ai != NULL && *count < DNS_MAX_RR; ai = ai->ai_next) {
		struct dns_addr *a;

		if ((ai->ai_family != AF_INET || !v4) &&
		    (ai->ai_family != AF_INET6 || !v6))
			continue;
		if (ai->ai_addrlen > sizeof(a->ss))
			continue;
		*addrs = xreallocarray(*addrs, *count + 1, sizeof(**addrs));
		a = &(*addrs)[(*count)++];
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
		a->len = ai->ai_addrlen;
		/* The port is the caller's business. */
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)&a->ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&a->ss)->sin6_port = 0;
	}
	freeaddrinfo(res);
	if (*count == 0) {
		*why_r = dns_why_native;
		return DNS_NOTFOUND;
	}
	return DNS_OK;
}

/* Worst-first order of statuses when combining the A and AAAA answers. */
static int
dns_status_rank(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return 4;
	case DNS_TEMPFAIL:
		return 3;
	case DNS_FAIL:
		return 2;
	case DNS_NOTFOUND:
	case DNS_NULLMX:
		break;
	}
	return 1;
}

/* Stable: IPv6 addresses first (prefer 6) or IPv4 first (prefer 4). */
static void
dns_addr_order(struct dns_addr *addrs, size_t count, int prefer)
{
	struct dns_addr *tmp;
	size_t i, n = 0;
	int first = prefer == 6 ? AF_INET6 : AF_INET;

	if (prefer == 0 || count < 2)
		return;
	tmp = xreallocarray(NULL, count, sizeof(*tmp));
	for (i = 0; i < count; i++)
		if (addrs[i].ss.ss_family == first)
			tmp[n++] = addrs[i];
	for (i = 0; i < count; i++)
		if (addrs[i].ss.ss_family != first)
			tmp[n++] = addrs[i];
	/* UNSAFE: n == count, both arrays hold count entries. */
	memcpy(addrs, tmp, count * sizeof(*tmp));
	free(tmp);
}

enum dns_status
dns_lookup_host(const char *host, int family, struct dns_addr **addrs_r,
    size_t *count_r, const char **why_r)
{
	struct dns_addr lit, *addrs = NULL;
	struct dns_conf c;
	unsigned char *buf;
	const char *why, *why1 = NULL;
	enum dns_status st, best = DNS_NOTFOUND;
	size_t count = 0;
	bool v4, v6;
	int order[2], i;

	if (why_r == NULL)
		why_r = &why;
	*addrs_r = NULL;
	*count_r = 0;
	dns_conf_get(&c);
	v4 = c.ipv4 && family != 6;
	v6 = c.ipv6 && family != 4;

	if (dns_ip_literal(host, &lit)) {
		if ((lit.ss.ss_family == AF_INET && !v4) ||
		    (lit.ss.ss_family == AF_INET6 && !v6)) {
			*why_r = dns_why_family;
			return DNS_NOTFOUND;
		}
		*addrs_r = xmalloc(sizeof(lit));
		**addrs_r = lit;
		*count_r = 1;
		return DNS_OK;
	}
	if (!v4 && !v6) {
		*why_r = dns_why_family;
		return DNS_NOTFOUND;
	}
	if (c.native_only) {
		st = dns_native_host(host, v4, v6, &addrs, &count, why_r);
		goto done;
	}

	/* "any" keeps the resolver's usual order: IPv4 then IPv6. */
	order[0] = c.prefer == 6 ? ns_t_aaaa : ns_t_a;
	order[1] = c.prefer == 6 ? ns_t_a : ns_t_aaaa;
	buf = xmalloc(DNS_MAX_ANSWER);
	for (i = 0; i < 2; i++) {
		if ((order[i] == ns_t_a && !v4) ||
		    (order[i] == ns_t_aaaa && !v6))
			continue;
		st = dns_query_addr(host, order[i], buf, &addrs, &count,
		    &why);
		if (dns_status_rank(st) > dns_status_rank(best) ||
		    why1 == NULL) {
			best = st;
			why1 = why;
		}
		/*
		 * No such name: no other type to ask for.  A failed server
		 * fails the other question too, after another timeout.
		 */
		if (st == DNS_NOTFOUND && why == dns_why_notfound)
			break;
		if (st == DNS_TEMPFAIL)
			break;
		if (st == DNS_FAIL && why == dns_why_badname)
			break;
	}
	free(buf);
	st = count > 0 ? DNS_OK : best;
	*why_r = why1;
	if (st == DNS_NOTFOUND && c.native_fallback) {
		free(addrs);
		addrs = NULL;
		count = 0;
		st = dns_native_host(host, v4, v6, &addrs, &count, why_r);
	}
done:
	if (st != DNS_OK) {
		free(addrs);
		return st;
	}
	dns_addr_order(addrs, count, c.prefer);
	*addrs_r = addrs;
	*count_r = count;
	return DNS_OK;
}

static void
dns_strv_add(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 2, sizeof(**v));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

void
dns_strv_free(char ***v)
{
	char **p;

	if (*v == NULL)
		return;
	for (p = *v; *p != NULL; p++)
		free(*p);
	free(*v);
	*v = NULL;
}

enum dns_status
dns_lookup_a(const char *name, char ***addrs_r, const char **why_r)
{
	struct dns_addr *addrs = NULL;
	unsigned char *buf;
	const char *why;
	enum dns_status st;
	size_t count = 0, i, n = 0;
	char **v = NULL;

	if (why_r == NULL)
		why_r = &why;
	*addrs_r = NULL;
	buf = xmalloc(DNS_MAX_ANSWER);
	st = dns_query_addr(name, ns_t_a, buf, &addrs, &count, why_r);
	free(buf);
	if (st != DNS_OK)
		return st;
	for (i = 0; i < count; i++) {
		char text[INET_ADDRSTRLEN];
		const struct sockaddr_in *sin =
		    (const struct sockaddr_in *)&addrs[i].ss;

		if (inet_ntop(AF_INET, &sin->sin_addr, text,
		    sizeof(text)) == NULL)
			continue;
		dns_strv_add(&v, &n, xstrdup(text));
	}
	free(addrs);
	*addrs_r = v;
	return DNS_OK;
}

enum dns_status
dns_lookup_txt(const char *name, char ***txt_r, const char **why_r)
{
	struct dns_answer ans;
	unsigned char *buf;
	const char *why;
	enum dns_status st;
	size_t n = 0;
	char **v = NULL;
	int k, total;

	if (why_r == NULL)
		why_r = &why;
	*txt_r = NULL;
	buf = xmalloc(DNS_MAX_ANSWER);
	st = dns_query(name, ns_t_txt, buf, &ans, why_r);
	if (st != DNS_OK)
		goto out;
	total = ns_msg_count(ans.msg, ns_s_an);
	for (k = 0; k < total; k++) {
		const unsigned char *rd, *end;
		char text[DNS_MAX_TXT + 1];
		size_t len = 0;
		ns_rr rr;
		int r;

		if ((r = dns_answer_rr(&ans, k, ns_t_txt, &rr)) < 0)
			goto bad;
		if (r == 0)
			continue;
		/*
		 * <character-string>s, each a length byte and that many
		 * bytes (RFC 1035 §3.3.14), joined without a separator as
		 * SPF and DKIM read them (RFC 7208 §3.3).  Control bytes
		 * become '?': the text may be quoted in an SMTP reply.
		 */
		rd = ns_rr_rdata(rr);
		end = rd + ns_rr_rdlen(rr);
		if (rd == end)
			goto bad;
		while (rd < end) {
			size_t slen = *rd++, i;

			if (slen > (size_t)(end - rd))
				goto bad;
			for (i = 0; i < slen && len < DNS_MAX_TXT; i++) {
				unsigned char ch = rd[i];

				text[len++] = ch < ' ' || ch == 0x7f ?
				    '?' : ch;
			}
			rd += slen;
		}
		text[len] = '\0';
		if (n < DNS_MAX_RR)
			dns_strv_add(&v, &n, xstrdup(text));
	}
	if (n == 0) {
		*why_r = dns_why_nodata;
		st = DNS_NOTFOUND;
		goto out;
	}
	*txt_r = v;
	v = NULL;
	goto out;
bad:
	*why_r = dns_why_badreply;
	st = DNS_FAIL;
out:
	dns_strv_free(&v);
	free(buf);
	return st;
}

enum dns_status
dns_lookup_ns(const char *domain, char ***hosts_r, const char **why_r)
{
	struct dns_answer ans;
	unsigned char *buf;
	const char *why;
	enum dns_status st;
	size_t n = 0;
	char **v = NULL;
	int k, total;

	if (why_r == NULL)
		why_r = &why;
	*hosts_r = NULL;
	buf = xmalloc(DNS_MAX_ANSWER);
	st = dns_query(domain, ns_t_ns, buf, &ans, why_r);
	if (st != DNS_OK)
		goto out;
	total = ns_msg_count(ans.msg, ns_s_an);
	for (k = 0; k < total; k++) {
		char host[DNS_NAME_TEXT];
		ns_rr rr;
		int r;

		if ((r = dns_answer_rr(&ans, k, ns_t_ns, &rr)) < 0)
			goto bad;
		if (r == 0)
			continue;
		if (dns_rdata_name(&ans.msg, ns_rr_rdata(rr), ns_rr_rdlen(rr),
		    host, sizeof(host)) < 0)
			goto bad;
		if (host[0] == '\0' || !dns_host_ok(host))
			continue;
		if (n < DNS_MAX_RR)
			dns_strv_add(&v, &n, xstrdup(host));
	}
	if (n == 0) {
		*why_r = dns_why_nodata;
		st = DNS_NOTFOUND;
		goto out;
	}
	*hosts_r = v;
	v = NULL;
	goto out;
bad:
	*why_r = dns_why_badreply;
	st = DNS_FAIL;
out:
	dns_strv_free(&v);
	free(buf);
	return st;
}

/* 4.3.2.1.in-addr.arpa or the nibbles of ip6.arpa (RFC 3596 §2.5). */
static int
dns_reverse_name(const struct sockaddr *sa, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b;
	size_t len = 0;
	int i, r;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)sa;

		b = sin6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			if (size < 16 * 4 + sizeof("ip6.arpa"))
				return -1;
			for (i = 15; i >= 0; i--) {
				buf[len++] = hex[b[i] & 0xf];
				buf[len++] = '.';
				buf[len++] = hex[b[i] >> 4];
				buf[len++] = '.';
			}
			memcpy(buf + len, "ip6.arpa", sizeof("ip6.arpa"));
			return 0;
		}
		/* An IPv4 client on a dual-stack socket. */
		b += 12;
	} else if (sa->sa_family == AF_INET)
		b = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
	else
		return -1;
	r = snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa",
	    b[3], b[2], b[1], b[0]);
	return r < 0 || (size_t)r >= size ? -1 : 0;
}

enum dns_status
dns_lookup_ptr(const struct sockaddr *sa, char **name_r, const char **why_r)
{
	struct dns_answer ans;
	unsigned char *buf;
	const char *why;
	char rname[DNS_NAME_TEXT];
	enum dns_status st;
	int k, total;

	if (why_r == NULL)
		why_r = &why;
	*name_r = NULL;
	if (dns_reverse_name(sa, rname, sizeof(rname)) < 0) {
		*why_r = dns_why_badname;
		return DNS_FAIL;
	}
	buf = xmalloc(DNS_MAX_ANSWER);
	st = dns_query(rname, ns_t_ptr, buf, &ans, why_r);
	if (st != DNS_OK)
		goto out;
	total = ns_msg_count(ans.msg, ns_s_an);
	st = DNS_NOTFOUND;
	*why_r = dns_why_nodata;
	for (k = 0; k < total; k++) {
		char host[DNS_NAME_TEXT];
		ns_rr rr;
		int r;

		if ((r = dns_answer_rr(&ans, k, ns_t_ptr, &rr)) < 0 ||
		    (r == 1 && dns_rdata_name(&ans.msg, ns_rr_rdata(rr),
		    ns_rr_rdlen(rr), host, sizeof(host)) < 0)) {
			*why_r = dns_why_badreply;
			st = DNS_FAIL;
			break;
		}
		if (r == 0)
			continue;
		/* Several PTRs: the first usable one, like getnameinfo(). */
		if (host[0] == '\0' || !dns_host_ok(host)) {
			*why_r = dns_why_badreply;
			st = DNS_FAIL;
			continue;
		}
		*name_r = xstrdup(host);
		st = DNS_OK;
		break;
	}
out:
	free(buf);
	return st;
}

const char *
dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NOTFOUND:
		return "notfound";
	case DNS_NULLMX:
		return "nullmx";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_FAIL:
		return "fail";
	}
	return "unknown";
}
