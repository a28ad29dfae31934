/*
 * Unit tests of common/netaddr.c: parsing networks and hosts, matching
 * (including IPv4-mapped IPv6 clients), and $mynetworks.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "netaddr.h"
#include "test.h"

static bool
matches(const char *net, const char *host)
{
	struct netaddr n, h;

	if (netaddr_parse(net, &n) < 0 || netaddr_parse_host(host, &h) < 0)
		return false;
	return netaddr_match(&n, &h);
}

static void
test_parse(void)
{
	struct netaddr n;

	test_begin("netaddr_parse");
	test_assert(netaddr_parse("192.168.1.0/24", &n) == 0 &&
	    n.family == AF_INET && n.prefix == 24);
	test_assert(netaddr_parse("10.1.2.3", &n) == 0 && n.prefix == 32);
	test_assert(netaddr_parse("::1", &n) == 0 && n.family == AF_INET6 &&
	    n.prefix == 128);
	test_assert(netaddr_parse("[::1]/128", &n) == 0 && n.prefix == 128);
	test_assert(netaddr_parse("[2001:db8::]/32", &n) == 0 &&
	    n.prefix == 32);
	test_assert(netaddr_parse("2001:db8::/48", &n) == 0 &&
	    n.prefix == 48);
	test_assert(netaddr_parse("[::1]", &n) == 0);
	test_assert(netaddr_parse("0.0.0.0/0", &n) == 0 && n.prefix == 0);
	test_assert(netaddr_parse("10.0.0.0/33", &n) == -1);
	test_assert(netaddr_parse("10.0.0.0/-1", &n) == -1);
	test_assert(netaddr_parse("10.0.0.0/", &n) == -1);
	test_assert(netaddr_parse("10.0.0/8", &n) == -1);
	test_assert(netaddr_parse("[10.0.0.1]", &n) == -1);
	test_assert(netaddr_parse("[::1", &n) == -1);
	test_assert(netaddr_parse("[::1]x", &n) == -1);
	test_assert(netaddr_parse("::1/129", &n) == -1);
	test_assert(netaddr_parse("example.com", &n) == -1);
	test_assert(netaddr_parse("", &n) == -1);
	test_assert(netaddr_parse_host("fe80::1%eth0", &n) == 0);
	test_assert(netaddr_parse_host("10.0.0.0/8", &n) == -1);
	test_end();
}

static void
test_match(void)
{
	struct netaddr n, h;
	struct sockaddr_in sin;

	test_begin("netaddr_match");
	test_assert(matches("192.168.1.0/24", "192.168.1.77"));
	test_assert(!matches("192.168.1.0/24", "192.168.2.1"));
	test_assert(matches("192.168.1.0/23", "192.168.0.9"));
	test_assert(matches("10.0.0.0/8", "10.255.255.255"));
	test_assert(matches("10.1.2.3", "10.1.2.3"));
	test_assert(!matches("10.1.2.3", "10.1.2.4"));
	/* Host bits under the prefix do not matter. */
	test_assert(matches("192.168.1.1/24", "192.168.1.200"));
	test_assert(matches("0.0.0.0/0", "8.8.8.8"));
	test_assert(matches("[2001:db8::]/32", "2001:db8:1::5"));
	test_assert(!matches("[2001:db8::]/32", "2001:db9::5"));
	test_assert(matches("::1", "::1"));
	test_assert(!matches("::1", "127.0.0.1"));
	/* IPv4-mapped IPv6 clients match IPv4 networks. */
	test_assert(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
	test_assert(!matches("127.0.0.0/8", "::ffff:10.0.0.1"));
	test_assert(matches("[::ffff:10.0.0.0]/104", "10.0.0.1"));
	test_assert(!matches("10.0.0.0/8", "::1"));

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "172.16.5.4", &sin.sin_addr);
	test_assert(netaddr_from_sockaddr((struct sockaddr *)&sin, &h) == 0);
	test_assert(netaddr_parse("172.16.0.0/12", &n) == 0 &&
	    netaddr_match(&n, &h));
	test_end();
}

static void
test_mynetworks(void)
{
	struct netaddr *l, h;
	const char *err = NULL;

	test_begin("netaddr_mynetworks");
	test_assert(cfg_load(NULL) == 0);
	/* host style: this machine's addresses, loopback among them. */
	l = netaddr_mynetworks(&err);
	test_assert(l != NULL);
	test_assert(netaddr_parse_host("127.0.0.1", &h) == 0 &&
	    netaddr_list_match(l, &h));
	test_assert(netaddr_parse_host("192.0.2.99", &h) == 0 &&
	    !netaddr_list_match(l, &h));
	free(l);

	test_assert(cfg_set("mynetworks", "192.168.1.0/24, 127.0.0.0/8 "
	    "[::1]/128 hash:/etc/postern/access", &err) == 0);
	l = netaddr_mynetworks(&err);
	test_assert(l != NULL);
	test_assert(netaddr_parse_host("192.168.1.9", &h) == 0 &&
	    netaddr_list_match(l, &h));
	test_assert(netaddr_parse_host("::1", &h) == 0 &&
	    netaddr_list_match(l, &h));
	test_assert(netaddr_parse_host("::ffff:127.0.0.5", &h) == 0 &&
	    netaddr_list_match(l, &h));
	test_assert(netaddr_parse_host("192.168.2.9", &h) == 0 &&
	    !netaddr_list_match(l, &h));
	free(l);

	/* An empty mynetworks trusts nobody. */
	test_assert(cfg_set("mynetworks", "", &err) == 0);
	l = netaddr_mynetworks(&err);
	test_assert(l != NULL && l[0].family == 0);
	free(l);
	test_assert(!netaddr_list_match(NULL, &h));
	test_end();
}

int
main(void)
{
	test_parse();
	test_match();
	test_mynetworks();
	return test_done();
}
