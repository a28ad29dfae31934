/*
 * dns: blocking DNS lookups for delivery agents and smtpd checks, through
 * the system resolver library (res_nquery on a per-call resolver state,
 * so it is thread-safe).  Callers that must not block (an event loop)
 * run these in a worker thread (common/workpool).
 *
 * Which servers are asked: $dns_servers when set (a list of "ip" or
 * "[ip]:port"; tests point it at a server of their own on loopback),
 * else /etc/resolv.conf.  $disable_dns_lookups = yes or
 * $smtp_host_lookup = native make dns_lookup_mx() answer DNS_NOTFOUND and
 * dns_lookup_host() use getaddrinfo() (so /etc/hosts applies).
 *
 * Every answer is bounded: at most DNS_MAX_RR records are returned, names
 * are at most 255 bytes, TXT strings are truncated to DNS_MAX_TXT.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define DNS_MAX_RR	100
#define DNS_MAX_TXT	512

enum dns_status {
	DNS_OK = 0,
	DNS_NOTFOUND,	/* NXDOMAIN, or the name has no record of that type */
	DNS_NULLMX,	/* dns_lookup_mx only: RFC 7505 "0 ." */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout, no server: try again later */
	DNS_FAIL	/* malformed name or answer, other permanent error */
};

struct dns_mx {
	unsigned	 pref;
	char		*host;		/* without the trailing dot */
};

struct dns_addr {
	struct sockaddr_storage ss;	/* port 0 */
	socklen_t	 len;
};

/* Read $dns_servers & co.; call once after cfg_load (and after reload). */
int	dns_init(const char **error_r);

/*
 * MX records of domain, sorted by preference (equal preferences in
 * random order, RFC 5321 §5.1).  On DNS_OK *mx_r holds *count_r >= 1
 * entries (free with dns_mx_free).  CNAMEs are followed by the resolver.
 * why_r (may be NULL) gets a static text for logs ("Host not found",
 * "Host or domain name not found. Name service error ...").
 */
enum dns_status dns_lookup_mx(const char *domain, struct dns_mx **mx_r,
	    size_t *count_r, const char **why_r);
void	dns_mx_free(struct dns_mx *mx, size_t count);

/*
 * Addresses of host: AF_INET and/or AF_INET6 as $inet_protocols allows
 * (families: 4, 6 or 0 for both), IPv6 first when both are present and
 * $smtp_address_preference says so (default "any": as returned).
 * A host that is an IP literal ("192.0.2.1", "2001:db8::1") is returned
 * as is without a query.
 */
enum dns_status dns_lookup_host(const char *host, int family,
	    struct dns_addr **addrs_r, size_t *count_r, const char **why_r);

/* A records of a name (DNSBL: "4.3.2.1.zen.example"), as dotted quads. */
enum dns_status dns_lookup_a(const char *name, char ***addrs_r,
	    const char **why_r);
/* TXT records of a name, each record's strings joined. */
enum dns_status dns_lookup_txt(const char *name, char ***txt_r,
	    const char **why_r);
/* NS records of a domain (check_*_ns_access), as host names. */
enum dns_status dns_lookup_ns(const char *domain, char ***hosts_r,
	    const char **why_r);
/* PTR of an address (reverse lookup for smtpd's client name). */
enum dns_status dns_lookup_ptr(const struct sockaddr *sa, char **name_r,
	    const char **why_r);

/*
 * Ownership of the results above: *addrs_r of dns_lookup_host() is one
 * malloc'ed array (free()); the vectors of dns_lookup_a(),
 * dns_lookup_ns() and dns_lookup_txt() are NULL-terminated arrays of
 * malloc'ed strings, freed by dns_strv_free() (which sets *v to NULL);
 * the name of dns_lookup_ptr() is malloc'ed (free()).  Nothing is
 * allocated unless DNS_OK.
 */
void	dns_strv_free(char ***v);
/* "ok", "notfound", "nullmx", "tempfail", "fail": for logs and tests. */
const char *dns_status_str(enum dns_status st);

#endif
