/*
 * dnsq: ask common/dns.c one question and print the answer, for the
 * integration tests (test_dns.py runs it against fakedns.py).
 *
 *   dnsq [-c config] [-o name=value]... [-f 4|6] mx|host|a|txt|ptr NAME
 *
 * Prints one result per line ("10 mx.example.test" for mx, an address for
 * host and a, the joined text for txt, the name for ptr, whose NAME is an
 * IP address), then "why: TEXT" when the lookup did not succeed, and last
 * "status: ok|notfound|nullmx|tempfail|fail".  Exit status 0 for ok, 1
 * for any other answer, 2 for usage or config errors.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "dns.h"

static void
usage(void)
{
	fprintf(stderr, "usage: dnsq [-c config] [-o name=value] "
	    "[-f 4|6] mx|host|a|txt|ptr NAME\n");
	exit(2);
}

static void
print_addr(const struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];
	const void *p;

	if (ss->ss_family == AF_INET)
		p = &((const struct sockaddr_in *)ss)->sin_addr;
	else
		p = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (inet_ntop(ss->ss_family, p, text, sizeof(text)) != NULL)
		printf("%s\n", text);
}

static void
print_strv(char **v)
{
	char **p;

	for (p = v; p != NULL && *p != NULL; p++)
		printf("%s\n", *p);
}

int
main(int argc, char **argv)
{
	const char *config = NULL, *why = NULL, *error;
	enum dns_status st;
	int ch, family = 0;
	char *overrides[32];
	int noverrides = 0, i;

	while ((ch = getopt(argc, argv, "c:o:f:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (noverrides == (int)(sizeof(overrides) /
			    sizeof(overrides[0])))
				usage();
			overrides[noverrides++] = optarg;
			break;
		case 'f':
			family = atoi(optarg);
			if (family != 4 && family != 6)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		usage();

	if (cfg_load(config) != 0) {
		cfg_print_errors(stderr);
		return 2;
	}
	for (i = 0; i < noverrides; i++) {
		char *eq = strchr(overrides[i], '=');

		if (eq == NULL)
			usage();
		*eq = '\0';
		if (cfg_set(overrides[i], eq + 1, &error) < 0) {
			fprintf(stderr, "dnsq: %s: %s\n", overrides[i], error);
			return 2;
		}
	}
	if (dns_init(&error) < 0) {
		fprintf(stderr, "dnsq: %s\n", error);
		return 2;
	}

	const char *what = argv[0], *name = argv[1];
	if (strcmp(what, "mx") == 0) {
		struct dns_mx *mx;
		size_t n, k;

		st = dns_lookup_mx(name, &mx, &n, &why);
		for (k = 0; st == DNS_OK && k < n; k++)
			printf("%u %s\n", mx[k].pref, mx[k].host);
		if (st == DNS_OK)
			dns_mx_free(mx, n);
	} else if (strcmp(what, "host") == 0) {
		struct dns_addr *addrs;
		size_t n, k;

		st = dns_lookup_host(name, family, &addrs, &n, &why);
		for (k = 0; st == DNS_OK && k < n; k++)
			print_addr(&addrs[k].ss);
		if (st == DNS_OK)
			free(addrs);
	} else if (strcmp(what, "a") == 0 || strcmp(what, "txt") == 0) {
		char **v;

		st = what[0] == 'a' ? dns_lookup_a(name, &v, &why) :
		    dns_lookup_txt(name, &v, &why);
		if (st == DNS_OK) {
			print_strv(v);
			dns_strv_free(&v);
		}
	} else if (strcmp(what, "ptr") == 0) {
		struct sockaddr_storage ss;
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		char *host;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, name, &sin->sin_addr) == 1)
			sin->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1)
			sin6->sin6_family = AF_INET6;
		else
			usage();
		st = dns_lookup_ptr((struct sockaddr *)&ss, &host, &why);
		if (st == DNS_OK) {
			printf("%s\n", host);
			free(host);
		}
	} else
		usage();

	if (st != DNS_OK)
		printf("why: %s\n", why != NULL ? why : "");
	printf("status: %s\n", dns_status_str(st));
	return st == DNS_OK ? 0 : 1;
}
