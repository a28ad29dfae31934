/*
 * netaddr: IPv4/IPv6 address and network matching for mynetworks and
 * cidr: tables.  Accepts "192.168.1.0/24", "127.0.0.1", "[::1]/128",
 * "[2001:db8::]/32", "::1"; IPv4-mapped IPv6 addresses match IPv4 nets.
 */
#ifndef POSTERN_NETADDR_H
#define POSTERN_NETADDR_H

#include <stdbool.h>
#include <sys/socket.h>

struct netaddr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	int		prefix;		/* bits */
};

/* Parse a network or host; returns 0 or -1. */
int	netaddr_parse(const char *s, struct netaddr *n);
/* Parse a plain address string (as from getnameinfo). */
int	netaddr_parse_host(const char *s, struct netaddr *n);
bool	netaddr_match(const struct netaddr *net, const struct netaddr *host);
/* Fill from a sockaddr. */
int	netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *n);

/*
 * mynetworks: parse the effective value of the config parameter
 * (networks, and Postfix's mynetworks_style when mynetworks is unset:
 * host = this machine's addresses, subnet = their subnets, class = same).
 * Returns a malloc'ed array terminated by family 0.
 */
struct netaddr *netaddr_mynetworks(const char **error_r);
bool	netaddr_list_match(const struct netaddr *list,
	    const struct netaddr *host);

#endif
