/*
 * Unit tests for addr: SMTP path syntax (RFC 5321 §4.1.2), splitting,
 * extensions, qualification and the local-domain test.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "limits_pst.h"
#include "test.h"

#define ERR_SYNTAX	"501 5.1.3 Bad recipient address syntax"
#define ERR_UTF8	\
	"553 5.6.7 Must declare SMTPUTF8 to send unicode address"

struct path_case {
	const char	*in;
	bool		 utf8;
	const char	*addr;	/* NULL: error */
	const char	*rest;	/* or the error text */
};

static const struct path_case path_cases[] = {
	{ "<user@example.com>", false, "user@example.com", "" },
	{ " <user@example.com>", false, "user@example.com", "" },
	{ "<user@example.com> SIZE=10 BODY=8BITMIME", false,
	    "user@example.com", "SIZE=10 BODY=8BITMIME" },
	{ "<>", false, "", "" },
	{ "<> SIZE=1", false, "", "SIZE=1" },
	{ "user@example.com", false, "user@example.com", "" },
	{ "user@example.com SIZE=5", false, "user@example.com", "SIZE=5" },
	{ "<postmaster>", false, "postmaster", "" },
	{ "<Postmaster>", false, "Postmaster", "" },
	{ "<user>", false, "user", "" },
	{ "<first.last+tag@sub.example.com>", false,
	    "first.last+tag@sub.example.com", "" },
	{ "<!#$%&'*+-/=?^_`{|}~@example.com>", false,
	    "!#$%&'*+-/=?^_`{|}~@example.com", "" },
	{ "<\"john doe\"@example.com>", false, "\"john doe\"@example.com",
	    "" },
	{ "<\"a\\\"b@c\"@example.com>", false, "\"a\\\"b@c\"@example.com",
	    "" },
	{ "<\"\"@example.com>", false, "\"\"@example.com", "" },
	{ "<user@[192.0.2.1]>", false, "user@[192.0.2.1]", "" },
	{ "<user@[IPv6:2001:db8::1]>", false, "user@[IPv6:2001:db8::1]",
	    "" },
	{ "<user@[x-tag:abc]>", false, "user@[x-tag:abc]", "" },
	{ "<@a.example,@b.example:user@c.example>", false,
	    "user@c.example", "" },
	{ "<@a.example:user@c.example>", false, "user@c.example", "" },
	{ "<user@example.com.>", false, "user@example.com", "" },
	{ "<user@my_host.example>", false, "user@my_host.example", "" },
	{ "<first..last@example.com>", false, "first..last@example.com",
	    "" },
	/* SMTPUTF8 (RFC 6531 §3.3) */
	{ "<j\xc3\xb6rg@example.com>", true, "j\xc3\xb6rg@example.com", "" },
	{ "<user@b\xc3\xbc" "cher.example>", true,
	    "user@b\xc3\xbc" "cher.example", "" },
	{ "<j\xc3\xb6rg@example.com>", false, NULL, ERR_UTF8 },
	{ "<user@b\xc3\xbc" "cher.example>", false, NULL, ERR_UTF8 },
	{ "<j\xf6rg@example.com>", true, NULL, ERR_SYNTAX },
	{ "<j\xc0\xafrg@example.com>", true, NULL, ERR_SYNTAX },
	/* syntax errors */
	{ "", false, NULL, ERR_SYNTAX },
	{ "<", false, NULL, ERR_SYNTAX },
	{ "<user@example.com", false, NULL, ERR_SYNTAX },
	{ "<user@example.com>x", false, NULL, ERR_SYNTAX },
	{ "<user@>", false, NULL, ERR_SYNTAX },
	{ "<@example.com>", false, NULL, ERR_SYNTAX },
	{ "<user@exa mple.com>", false, NULL, ERR_SYNTAX },
	{ "<us er@example.com>", false, NULL, ERR_SYNTAX },
	{ "<user@@example.com>", false, NULL, ERR_SYNTAX },
	{ "<user@example..com>", false, NULL, ERR_SYNTAX },
	{ "<user@.example.com>", false, NULL, ERR_SYNTAX },
	{ "<user@example.com..>", false, NULL, ERR_SYNTAX },
	{ "<user@[192.0.2.300]>", false, NULL, ERR_SYNTAX },
	{ "<user@[IPv6:zz::1]>", false, NULL, ERR_SYNTAX },
	{ "<user@[1.2.3.4>", false, NULL, ERR_SYNTAX },
	{ "<us\ter@example.com>", false, NULL, ERR_SYNTAX },
	{ "<us\x01" "er@example.com>", false, NULL, ERR_SYNTAX },
	{ "<\"us\x01" "er\"@example.com>", false, NULL, ERR_SYNTAX },
	{ "<\"unterminated@example.com>", false, NULL, ERR_SYNTAX },
	{ "<user@example.com>>", false, NULL, ERR_SYNTAX },
	{ "<a<b@example.com>", false, NULL, ERR_SYNTAX },
	{ "<a,b@example.com>", false, NULL, ERR_SYNTAX },
	{ "<@a.example:>", false, NULL, ERR_SYNTAX },
	{ "<@a.example,user@c.example>", false, NULL, ERR_SYNTAX },
	{ "<user@example.com;x>", false, NULL, ERR_SYNTAX },
};

static void
test_parse_path(void)
{
	size_t i;

	test_begin("parse_path: RFC 5321 paths");
	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		char *addr = NULL;
		const char *rest = NULL, *error = NULL;
		int r = addr_parse_path(c->in, c->utf8, &addr, &rest, &error);

		if (c->addr != NULL) {
			if (r != 1)
				printf("# case %zu \"%s\": %s\n", i, c->in,
				    error);
			test_assert(r == 1);
			test_assert_streq(addr, c->addr);
			test_assert_streq(rest, c->rest);
		} else {
			if (r != -1)
				printf("# case %zu \"%s\": accepted as %s\n",
				    i, c->in, addr);
			test_assert(r == -1);
			test_assert_streq(error, c->rest);
		}
		free(addr);
	}
	test_end();

	test_begin("parse_path: length bound");
	{
		size_t n = MAX_ADDRESS + 10;
		char *in = malloc(n + 20), *addr = NULL;
		const char *rest, *error;

		in[0] = '<';
		memset(in + 1, 'a', n);
		memcpy(in + 1 + n, "@x.example>", 12);
		test_assert(addr_parse_path(in, false, &addr, &rest,
		    &error) == -1);
		free(addr);
		free(in);
	}
	test_end();
}

static void
test_split(void)
{
	char *l, *d;

	test_begin("split: local part and domain");
	addr_split("user@example.com", &l, &d);
	test_assert_streq(l, "user");
	test_assert_streq(d, "example.com");
	free(l);
	free(d);
	addr_split("user", &l, &d);
	test_assert_streq(l, "user");
	test_assert_streq(d, "");
	free(l);
	free(d);
	addr_split("\"a@b\"@example.com", &l, &d);
	test_assert_streq(l, "\"a@b\"");
	test_assert_streq(d, "example.com");
	free(l);
	free(d);
	addr_split("\"a@b\"", &l, &d);
	test_assert_streq(l, "\"a@b\"");
	test_assert_streq(d, "");
	free(l);
	free(d);
	test_end();
}

static void
test_config_dependent(void)
{
	const char *error;
	char *s, *ext;

	cfg_load(NULL);
	test_begin("qualify and normalize");
	test_assert(cfg_set("myorigin", "origin.example", &error) == 0);
	s = addr_qualify("user");
	test_assert_streq(s, "user@origin.example");
	free(s);
	s = addr_qualify("user@other.example");
	test_assert_streq(s, "user@other.example");
	free(s);
	s = addr_qualify("");
	test_assert_streq(s, "");
	free(s);
	s = addr_normalize("User@Example.COM");
	test_assert_streq(s, "User@example.com");
	free(s);
	test_end();

	test_begin("strip_ext: recipient_delimiter");
	test_assert(cfg_set("recipient_delimiter", "", &error) == 0);
	s = addr_strip_ext("user+ext", &ext);
	test_assert_streq(s, "user+ext");
	test_assert(ext == NULL);
	free(s);
	test_assert(cfg_set("recipient_delimiter", "+-", &error) == 0);
	s = addr_strip_ext("user+ext", &ext);
	test_assert_streq(s, "user");
	test_assert_streq(ext, "ext");
	free(s);
	free(ext);
	s = addr_strip_ext("user-a+b", &ext);
	test_assert_streq(s, "user");
	test_assert_streq(ext, "a+b");
	free(s);
	free(ext);
	s = addr_strip_ext("+user", &ext);
	test_assert_streq(s, "+user");
	test_assert(ext == NULL);
	free(s);
	s = addr_strip_ext("user", NULL);
	test_assert_streq(s, "user");
	free(s);
	test_end();

	test_begin("domain_is_local: mydestination");
	test_assert(cfg_set("myhostname", "mail.example.com", &error) == 0);
	test_assert(cfg_set("mydestination",
	    "$myhostname, localhost, Example.COM", &error) == 0);
	test_assert(addr_domain_is_local("mail.example.com"));
	test_assert(addr_domain_is_local("MAIL.Example.Com"));
	test_assert(addr_domain_is_local("example.com"));
	test_assert(addr_domain_is_local("example.com."));
	test_assert(addr_domain_is_local("localhost"));
	test_assert(!addr_domain_is_local("other.example"));
	test_assert(!addr_domain_is_local("sub.example.com"));
	test_assert(!addr_domain_is_local(""));
	test_assert(cfg_set("inet_interfaces", "loopback-only", &error) == 0);
	test_assert(addr_domain_is_local("[127.0.0.1]"));
	test_assert(addr_domain_is_local("[IPv6:::1]"));
	test_assert(!addr_domain_is_local("[192.0.2.1]"));
	test_end();
}

int
main(void)
{
	test_parse_path();
	test_split();
	test_config_dependent();
	return test_done();
}
