/*
 * netaddr: IPv4/IPv6 addresses and networks (see netaddr.h).
 *
 * Parses "192.168.1.0/24", "10.1.2.3", "::1", "[::1]/128" and
 * "[2001:db8::]/32"; host bits under the prefix are ignored, as when
 * matching.  An IPv4-mapped IPv6 client (::ffff:a.b.c.d) matches IPv4
 * networks, so a dual-stack listener does not change who is trusted.
 * Builds $mynetworks the Postfix way: the listed networks, or the
 * machine's own addresses (mynetworks_style = host) or networks (subnet,
 * class) taken from getifaddrs().  Table elements (type:name) of
 * mynetworks are left to the caller, which can look them up by address.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "netaddr.h"
#include "str.h"
#include "xmalloc.h"

/* Longest text form of an IPv6 address with brackets and a prefix. */
#define NETADDR_MAX_TEXT	64

static const unsigned char netaddr_v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Parse a bare address (no brackets, no prefix); zone "%eth0" ignored. */
static int
netaddr_parse_addr(const char *s, size_t len, struct netaddr *n)
{
	char buf[NETADDR_MAX_TEXT];
	char *pct;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		n->prefix = 32;
		return 0;
	}
	if ((pct = strchr(buf, '%')) != NULL)
		*pct = '\0';
	if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		n->prefix = 128;
		return 0;
	}
	return -1;
}

int
netaddr_parse_host(const char *s, struct netaddr *n)
{
	return netaddr_parse_addr(s, strlen(s), n);
}

int
netaddr_parse(const char *s, struct netaddr *n)
{
	const char *slash, *addr = s;
	size_t alen;
	long long bits;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != '/'))
			return -1;
		addr = s + 1;
		alen = (size_t)(close - addr);
		slash = close[1] == '/' ? close + 1 : NULL;
		if (netaddr_parse_addr(addr, alen, n) < 0 ||
		    n->family != AF_INET6)
			return -1;
	} else {
		slash = strchr(s, '/');
		alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
		if (netaddr_parse_addr(addr, alen, n) < 0)
			return -1;
	}
	if (slash != NULL) {
		if (str_to_ll(slash + 1, 0, n->family == AF_INET ? 32 : 128,
		    &bits) < 0)
			return -1;
		n->prefix = (int)bits;
	}
	return 0;
}

/* Compare the first bits bits of a and b. */
static bool
netaddr_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

bool
netaddr_match(const struct netaddr *net, const struct netaddr *host)
{
	unsigned char mapped[16];

	if (net->family == host->family)
		return netaddr_prefix_eq(net->addr, host->addr, net->prefix);
	if (net->family == AF_INET && host->family == AF_INET6 &&
	    memcmp(host->addr, netaddr_v4mapped, 12) == 0)
		return netaddr_prefix_eq(net->addr, host->addr + 12,
		    net->prefix);
	if (net->family == AF_INET6 && host->family == AF_INET) {
		memcpy(mapped, netaddr_v4mapped, 12);
		memcpy(mapped + 12, host->addr, 4);
		return netaddr_prefix_eq(net->addr, mapped, net->prefix);
	}
	return false;
}

int
netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *n)
{
	memset(n, 0, sizeof(*n));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		n->family = AF_INET;
		memcpy(n->addr, &in->sin_addr, 4);
		n->prefix = 32;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		n->family = AF_INET6;
		memcpy(n->addr, &in6->sin6_addr, 16);
		n->prefix = 128;
		return 0;
	}
	return -1;
}

bool
netaddr_list_match(const struct netaddr *list, const struct netaddr *host)
{
	if (list == NULL)
		return false;
	for (; list->family != 0; list++) {
		if (netaddr_match(list, host))
			return true;
	}
	return false;
}

static void
netaddr_push(struct netaddr **list, size_t *n, const struct netaddr *a)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if ((*list)[i].family == a->family &&
		    (*list)[i].prefix == a->prefix &&
		    memcmp((*list)[i].addr, a->addr, 16) == 0)
			return;
	}
	*list = xreallocarray(*list, *n + 2, sizeof(**list));
	(*list)[*n] = *a;
	(*n)++;
	memset(&(*list)[*n], 0, sizeof(**list));
}

/* Prefix length of a netmask sockaddr. */
static int
netaddr_mask_bits(const struct sockaddr *mask)
{
	struct netaddr m;
	int bits = 0, i, max;

	if (netaddr_from_sockaddr(mask, &m) < 0)
		return -1;
	max = m.family == AF_INET ? 4 : 16;
	for (i = 0; i < max; i++) {
		unsigned char c = m.addr[i];

		while (c & 0x80) {
			bits++;
			c = (unsigned char)(c << 1);
		}
		if (c != 0 || m.addr[i] != 0xff)
			break;
	}
	return bits;
}

/* Zero the bits after the prefix. */
static void
netaddr_mask(struct netaddr *a)
{
	int i, max = a->family == AF_INET ? 4 : 16;

	for (i = 0; i < max; i++) {
		int keep = a->prefix - i * 8;

		if (keep >= 8)
			continue;
		a->addr[i] &= keep <= 0 ? 0 :
		    (unsigned char)(0xff << (8 - keep));
	}
}

/* Postfix mynetworks_style = class: the classful network of an IPv4
 * address; IPv6 uses the interface's subnet. */
static int
netaddr_class_bits(const struct netaddr *a)
{
	if (a->addr[0] < 128)
		return 8;
	if (a->addr[0] < 192)
		return 16;
	return 24;
}

static int
netaddr_from_interfaces(const char *style, bool v4, bool v6,
    struct netaddr **list, size_t *n)
{
	struct ifaddrs *ifa, *i;
	struct netaddr a;

	if (getifaddrs(&ifa) < 0)
		return -1;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (netaddr_from_sockaddr(i->ifa_addr, &a) < 0)
			continue;
		if ((a.family == AF_INET && !v4) ||
		    (a.family == AF_INET6 && !v6))
			continue;
		if (strcmp(style, "host") != 0) {
			int bits = netaddr_mask_bits(i->ifa_netmask);

			if (bits >= 0)
				a.prefix = bits;
			if (strcmp(style, "class") == 0 &&
			    a.family == AF_INET)
				a.prefix = netaddr_class_bits(&a);
			netaddr_mask(&a);
		}
		netaddr_push(list, n, &a);
	}
	freeifaddrs(ifa);
	return 0;
}

struct netaddr *
netaddr_mynetworks(const char **error_r)
{
	static char errbuf[256];
	struct netaddr *list = xcalloc(1, sizeof(*list));
	struct netaddr a;
	size_t n = 0, i;
	char **protos, **words;
	bool v4, v6;

	protos = cfg_get_list("inet_protocols");
	v4 = strv_contains_case(protos, "all") ||
	    strv_contains_case(protos, "ipv4");
	v6 = strv_contains_case(protos, "all") ||
	    strv_contains_case(protos, "ipv6");
	cfg_list_free(&protos);

	if (cfg_is_set("mynetworks")) {
		words = cfg_get_list("mynetworks");
		for (i = 0; words[i] != NULL; i++) {
			const char *w = words[i], *p = w;

			if (netaddr_parse(w, &a) == 0) {
				netaddr_mask(&a);
				netaddr_push(&list, &n, &a);
				continue;
			}
			/* type:table elements are looked up by the caller. */
			while ((*p >= 'a' && *p <= 'z') ||
			    (*p >= 'A' && *p <= 'Z'))
				p++;
			if (p > w && *p == ':')
				continue;
			(void)snprintf(errbuf, sizeof(errbuf),
			    "mynetworks: %s \"%.100s\"", *w == '!' ?
			    "negated elements are not supported:" :
			    "bad network", w);
			*error_r = errbuf;
			cfg_list_free(&words);
			free(list);
			return NULL;
		}
		cfg_list_free(&words);
		return list;
	}

	if (netaddr_from_interfaces(cfg_get("mynetworks_style"), v4, v6,
	    &list, &n) < 0 || n == 0) {
		/* No interface list: trust at least the loopback host. */
		if (v4 && netaddr_parse("127.0.0.0/8", &a) == 0)
			netaddr_push(&list, &n, &a);
		if (v6 && netaddr_parse("[::1]/128", &a) == 0)
			netaddr_push(&list, &n, &a);
	}
	return list;
}
