/*
 * Unit tests for smtpd's restriction helpers: access(5) table lookups in
 * Postfix's order, the meaning of table answers, status code fixing,
 * where an address goes (relay tricks), DNS block list queries and
 * patterns, reply templates, and policy server answers.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "smtpd.h"
#include "str.h"
#include "test.h"

static char tmpdir[] = "/tmp/test_smtpd_access.XXXXXX";

static char *
write_table(const char *name, const char *text)
{
	char *path = NULL;
	FILE *f;

	if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
		abort();
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(text, f);
	fclose(f);
	return path;
}

/* The value found for key through find (NULL: none). */
static char *
lookup(int (*find)(struct smtpd_access_map *, const char *, char **),
    struct smtpd_access_map *am, const char *key)
{
	char *value = NULL;

	if (find(am, key, &value) <= 0) {
		free(value);
		return NULL;
	}
	return value;
}

static void
check_lookup(int (*find)(struct smtpd_access_map *, const char *, char **),
    struct smtpd_access_map *am, const char *key, const char *want)
{
	char *got = lookup(find, am, key);

	test_assert_streq(got, want);
	free(got);
}

static void
test_mail_lookups(void)
{
	char *path = write_table("mail",
	    "full+ext@example.com   full-ext\n"
	    "full@example.com       full\n"
	    "example.com            domain\n"
	    "parent.example         parent\n"
	    "user+tag@              localpart-ext\n"
	    "user@                  localpart\n"
	    "quoted.user@q.example  quoted\n"
	    "<>                     null\n");
	char *spec = NULL;
	struct smtpd_access_map *am;

	test_begin("access: mail address lookup order");
	cfg_set("recipient_delimiter", "+", NULL);
	cfg_set("parent_domain_matches_subdomains", "smtpd_access_maps",
	    NULL);
	if (asprintf(&spec, "texthash:%s", path) < 0)
		abort();
	am = smtpd_access_map_new(spec);
	/* user+ext@domain, then user@domain */
	check_lookup(smtpd_access_find_mail, am, "full+ext@example.com",
	    "full-ext");
	check_lookup(smtpd_access_find_mail, am, "full+other@example.com",
	    "full");
	check_lookup(smtpd_access_find_mail, am, "FULL@Example.COM", "full");
	/* the domain, and parent domains (smtpd_access_maps style) */
	check_lookup(smtpd_access_find_mail, am, "x@example.com", "domain");
	check_lookup(smtpd_access_find_mail, am, "x@sub.example.com",
	    "domain");
	check_lookup(smtpd_access_find_mail, am, "x@a.b.parent.example",
	    "parent");
	/* a trailing dot is not part of the name */
	check_lookup(smtpd_access_find_mail, am, "x@example.com.", "domain");
	/* user+ext@ then user@, after the domain */
	check_lookup(smtpd_access_find_mail, am, "user+tag@else.example",
	    "localpart-ext");
	check_lookup(smtpd_access_find_mail, am, "user+x@else.example",
	    "localpart");
	check_lookup(smtpd_access_find_mail, am, "user@example.com", "domain");
	/* quoted local parts are looked up unquoted */
	check_lookup(smtpd_access_find_mail, am, "\"quoted.user\"@q.example",
	    "quoted");
	check_lookup(smtpd_access_find_mail, am, "nobody@else.example",
	    NULL);
	check_lookup(smtpd_access_find, am, "<>", "null");
	smtpd_access_map_free(&am);
	test_assert(am == NULL);

	/* ".domain" style when parent matching is off for access maps */
	cfg_set("parent_domain_matches_subdomains", "relay_domains", NULL);
	free(path);
	path = write_table("dot",
	    "example.com   exact\n"
	    ".example.com  subdomain\n");
	free(spec);
	if (asprintf(&spec, "texthash:%s", path) < 0)
		abort();
	am = smtpd_access_map_new(spec);
	check_lookup(smtpd_access_find_mail, am, "x@example.com", "exact");
	check_lookup(smtpd_access_find_mail, am, "x@a.example.com",
	    "subdomain");
	check_lookup(smtpd_access_find_domain, am, "a.b.example.com",
	    "subdomain");
	smtpd_access_map_free(&am);
	cfg_set("parent_domain_matches_subdomains", "smtpd_access_maps",
	    NULL);
	free(spec);
	free(path);
	test_end();
}

static void
test_host_lookups(void)
{
	char *path = write_table("hosts",
	    "192.168.1.5       host\n"
	    "192.168.2         net24\n"
	    "10                net8\n"
	    "2001:db8:1::5     v6host\n"
	    "2001:db8:2        v6net\n"
	    "bad.example       badname\n"
	    "friend.bad.example DUNNO\n");
	char *spec = NULL, *v = NULL;
	struct smtpd_access_map *am;

	test_begin("access: client address and name lookups");
	if (asprintf(&spec, "texthash:%s", path) < 0)
		abort();
	am = smtpd_access_map_new(spec);
	check_lookup(smtpd_access_find_ip, am, "192.168.1.5", "host");
	check_lookup(smtpd_access_find_ip, am, "192.168.1.6", NULL);
	check_lookup(smtpd_access_find_ip, am, "192.168.2.77", "net24");
	check_lookup(smtpd_access_find_ip, am, "10.1.2.3", "net8");
	check_lookup(smtpd_access_find_ip, am, "2001:db8:1::5", "v6host");
	check_lookup(smtpd_access_find_ip, am, "2001:db8:2::9", "v6net");
	check_lookup(smtpd_access_find_domain, am, "x.bad.example",
	    "badname");
	check_lookup(smtpd_access_find_domain, am, "friend.bad.example",
	    "DUNNO");
	/* no subdomain magic for numerical names */
	check_lookup(smtpd_access_find_domain, am, "10.1.2.3", NULL);
	/* the name first, then the address; "unknown" is no name */
	test_assert(smtpd_access_find_host(am, "x.bad.example", "10.0.0.1",
	    &v) == 1);
	test_assert_streq(v, "badname");
	free(v);
	test_assert(smtpd_access_find_host(am, "unknown", "10.0.0.1",
	    &v) == 1);
	test_assert_streq(v, "net8");
	free(v);
	smtpd_access_map_free(&am);
	/* a missing table is an error, not "not found" */
	am = smtpd_access_map_new("hash:/nonexistent/table");
	test_assert(smtpd_access_find(am, "x", &v) < 0);
	smtpd_access_map_free(&am);
	free(spec);
	free(path);
	test_end();
}

/* Tutorial spellings: ".domain", "192.168.2.", sendmail's tags. */
static void
test_tutorial_keys(void)
{
	char *path = write_table("tutorial",
	    ".edu.example           OK\n"
	    "192.168.7.             REJECT\n"
	    "10.1.2.3.4.            odd\n"
	    "from:boss@example.com  REJECT from\n"
	    "to:boss@example.com    REJECT to\n"
	    "connect:192.0.2.9      REJECT connect\n"
	    "boss@example.com       plain\n");
	char *spec = NULL;
	const char *error = NULL;
	struct smtpd_access_map *am;

	test_begin("access: tutorial keys and sendmail tags");
	if (asprintf(&spec, "texthash:%s", path) < 0)
		abort();
	am = smtpd_access_map_new(spec);
	/* ".domain" matches subdomains with the default parent style */
	check_lookup(smtpd_access_find_domain, am, "www.cs.edu.example",
	    "OK");
	check_lookup(smtpd_access_find_domain, am, "edu.example", NULL);
	/* "192.168.7." is the network 192.168.7 */
	check_lookup(smtpd_access_find_ip, am, "192.168.7.20", "REJECT");
	check_lookup(smtpd_access_find_ip, am, "192.168.70.1", NULL);
	check_lookup(smtpd_access_find_ip, am, "10.1.2.3", NULL);
	/* tags count only with sendmail_access_tags = yes */
	smtpd_access_map_tag(am, "from");
	check_lookup(smtpd_access_find_mail, am, "boss@example.com",
	    "plain");
	smtpd_access_map_free(&am);
	test_assert(cfg_set("sendmail_access_tags", "yes", &error) == 0);
	am = smtpd_access_map_new(spec);
	smtpd_access_map_tag(am, "from");
	check_lookup(smtpd_access_find_mail, am, "boss@example.com",
	    "REJECT from");
	smtpd_access_map_tag(am, "to");
	check_lookup(smtpd_access_find_mail, am, "Boss@Example.com",
	    "REJECT to");
	smtpd_access_map_tag(am, "connect");
	check_lookup(smtpd_access_find_ip, am, "192.0.2.9", "REJECT connect");
	check_lookup(smtpd_access_find_mail, am, "boss@example.com",
	    "plain");
	smtpd_access_map_tag(am, NULL);
	check_lookup(smtpd_access_find_ip, am, "192.0.2.9", NULL);
	check_lookup(smtpd_access_find_mail, am, "boss@example.com",
	    "plain");
	smtpd_access_map_free(&am);
	test_assert(cfg_set("sendmail_access_tags", "no", &error) == 0);
	free(spec);
	free(path);
	test_end();
}

static void
test_parse(void)
{
	static const struct {
		const char		*value;
		enum smtpd_access_verb	 verb;
		int			 code;
		const char		*text;
	} cases[] = {
		{ "OK", SMTPD_ACCESS_OK, 0, "" },
		{ "ok", SMTPD_ACCESS_OK, 0, "" },
		{ "RELAY", SMTPD_ACCESS_OK, 0, "" },
		{ "PERMIT", SMTPD_ACCESS_OK, 0, "" },
		{ "1234567", SMTPD_ACCESS_OK, 0, "" },
		{ "REJECT", SMTPD_ACCESS_REJECT, 0, "" },
		{ "REJECT go away", SMTPD_ACCESS_REJECT, 0, "go away" },
		{ "DEFER  later", SMTPD_ACCESS_DEFER, 0, "later" },
		{ "DEFER_IF_PERMIT Greylisted", SMTPD_ACCESS_DEFER_IF_PERMIT,
		    0, "Greylisted" },
		{ "DEFER_IF_REJECT", SMTPD_ACCESS_DEFER_IF_REJECT, 0, "" },
		{ "DUNNO", SMTPD_ACCESS_DUNNO, 0, "" },
		{ "DISCARD spam", SMTPD_ACCESS_DISCARD, 0, "spam" },
		{ "HOLD", SMTPD_ACCESS_HOLD, 0, "" },
		{ "WARN look", SMTPD_ACCESS_WARN, 0, "look" },
		{ "INFO x", SMTPD_ACCESS_INFO, 0, "x" },
		{ "FILTER smtp:[127.0.0.1]:10025", SMTPD_ACCESS_IGNORED, 0,
		    "smtp:[127.0.0.1]:10025" },
		{ "PREPEND X-Test: 1", SMTPD_ACCESS_PREPEND, 0, "X-Test: 1" },
		{ "550 5.1.1 no such user", SMTPD_ACCESS_CODE, 550,
		    "5.1.1 no such user" },
		{ "450 try later", SMTPD_ACCESS_CODE, 450, "try later" },
		/* a code needs text: alone it is all digits, which Postfix
		 * takes for OK; other codes are no codes */
		{ "550", SMTPD_ACCESS_OK, 0, "" },
		{ "250 fine", SMTPD_ACCESS_RESTRICTIONS, 0, "fine" },
		{ "permit_mynetworks, reject", SMTPD_ACCESS_RESTRICTIONS, 0,
		    "reject" },
		{ "check_client_access hash:/x", SMTPD_ACCESS_BAD, 0,
		    "hash:/x" },
		{ "", SMTPD_ACCESS_OK, 0, "" },
	};
	struct smtpd_access_action a;
	size_t i;

	test_begin("access: table answers");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		smtpd_access_parse(cases[i].value, &a);
		if (a.verb != cases[i].verb)
			printf("# \"%s\": verb %d\n", cases[i].value,
			    (int)a.verb);
		test_assert(a.verb == cases[i].verb);
		test_assert(a.code == cases[i].code);
		test_assert_streq(a.text, cases[i].text);
	}
	test_end();
}

static void
test_dsn(void)
{
	char dsn[16];
	const char *rest;

	test_begin("access: status codes in texts");
	rest = smtpd_access_dsn_split("5.1.1 No such user", "5.7.1", dsn,
	    sizeof(dsn));
	test_assert_streq(dsn, "5.1.1");
	test_assert_streq(rest, "No such user");
	rest = smtpd_access_dsn_split("No such user", "4.7.1", dsn,
	    sizeof(dsn));
	test_assert_streq(dsn, "4.7.1");
	test_assert_streq(rest, "No such user");
	rest = smtpd_access_dsn_split("5.1.1", "4.7.1", dsn, sizeof(dsn));
	test_assert_streq(dsn, "5.1.1");
	test_assert_streq(rest, "");
	/* not a status: a version number, a bad class, too many digits */
	rest = smtpd_access_dsn_split("1.2.3 text", "5.7.1", dsn, sizeof(dsn));
	test_assert_streq(dsn, "5.7.1");
	test_assert_streq(rest, "1.2.3 text");
	rest = smtpd_access_dsn_split("5.1234.1 x", "5.7.1", dsn, sizeof(dsn));
	test_assert_streq(dsn, "5.7.1");
	rest = smtpd_access_dsn_split("5.1.1x y", "5.7.1", dsn, sizeof(dsn));
	test_assert_streq(dsn, "5.7.1");

	/* Postfix's smtpd_dsn_fix() per reply class */
	strcpy(dsn, "5.1.2");
	smtpd_access_dsn_fix(dsn, SMTPD_CLASS_SENDER);
	test_assert_streq(dsn, "5.1.8");
	strcpy(dsn, "5.1.3");
	smtpd_access_dsn_fix(dsn, SMTPD_CLASS_SENDER);
	test_assert_streq(dsn, "5.1.7");
	strcpy(dsn, "5.1.1");
	smtpd_access_dsn_fix(dsn, SMTPD_CLASS_SENDER);
	test_assert_streq(dsn, "5.1.0");
	strcpy(dsn, "5.1.8");
	smtpd_access_dsn_fix(dsn, SMTPD_CLASS_RECIPIENT);
	test_assert_streq(dsn, "5.1.2");
	strcpy(dsn, "5.1.1");
	smtpd_access_dsn_fix(dsn, SMTPD_CLASS_RECIPIENT);
	test_assert_streq(dsn, "5.1.1");
	strcpy(dsn, "4.1.4");
	smtpd_access_dsn_fix(dsn, "Client host");
	test_assert_streq(dsn, "4.0.0");
	strcpy(dsn, "5.7.1");
	smtpd_access_dsn_fix(dsn, "Client host");
	test_assert_streq(dsn, "5.7.1");
	test_end();
}

static void
check_route(const char *addr, const char *want_addr,
    enum smtpd_access_class want_cls, bool want_routed)
{
	struct smtpd_route_opts o = { true, true, false };
	struct smtpd_access_route r;

	smtpd_access_resolve(addr, &o, &r);
	test_assert_streq(r.addr, want_addr);
	if (r.cls != want_cls || r.routed != want_routed)
		printf("# %s: class %d routed %d\n", addr, (int)r.cls,
		    (int)r.routed);
	test_assert(r.cls == want_cls);
	test_assert(r.routed == want_routed);
	smtpd_access_route_free(&r);
}

static void
test_resolve(void)
{
	test_begin("access: where addresses go (relay tricks)");
	cfg_set("mydestination", "example.test, localhost", NULL);
	cfg_set("relay_domains", "partner.example", NULL);
	cfg_set("inet_interfaces", "127.0.0.1", NULL);
	cfg_set("parent_domain_matches_subdomains", "relay_domains, "
	    "smtpd_access_maps", NULL);
	check_route("user@example.test", "user@example.test",
	    SMTPD_CLASS_LOCAL, false);
	check_route("user@EXAMPLE.Test", "user@EXAMPLE.Test",
	    SMTPD_CLASS_LOCAL, false);
	check_route("user@example.test.", "user@example.test.",
	    SMTPD_CLASS_LOCAL, false);
	check_route("user@remote.example", "user@remote.example",
	    SMTPD_CLASS_DEFAULT, false);
	check_route("user@partner.example", "user@partner.example",
	    SMTPD_CLASS_RELAY, false);
	check_route("user@mx.partner.example", "user@mx.partner.example",
	    SMTPD_CLASS_RELAY, false);
	/* the percent hack, bang paths and quoted '@' leave the server */
	check_route("user%remote.example@example.test", "user@remote.example",
	    SMTPD_CLASS_DEFAULT, true);
	check_route("remote.example!user@example.test", "user@remote.example",
	    SMTPD_CLASS_DEFAULT, true);
	check_route("\"user@remote.example\"@example.test",
	    "user@remote.example", SMTPD_CLASS_DEFAULT, true);
	check_route("a%b%remote.example@localhost", "a%b@remote.example",
	    SMTPD_CLASS_DEFAULT, true);
	/* routed back into a local domain: still flagged */
	check_route("user%localhost@example.test", "user@localhost",
	    SMTPD_CLASS_LOCAL, true);
	/* address literals: ours (inet_interfaces) or not */
	check_route("user@[127.0.0.1]", "user@[127.0.0.1]",
	    SMTPD_CLASS_LOCAL, false);
	check_route("user@[192.0.2.1]", "user@[192.0.2.1]",
	    SMTPD_CLASS_DEFAULT, false);
	/* a loop of local rewrites ends */
	check_route("a%example.test@example.test", "a@example.test",
	    SMTPD_CLASS_LOCAL, true);
	test_assert(smtpd_access_domain_listed("relay_domains",
	    "Partner.Example."));
	test_assert(!smtpd_access_domain_listed("relay_domains",
	    "xpartner.example"));
	cfg_set("relay_domains", "!no.partner.example, partner.example",
	    NULL);
	test_assert(!smtpd_access_domain_listed("relay_domains",
	    "no.partner.example"));
	test_assert(smtpd_access_domain_listed("relay_domains",
	    "yes.partner.example"));
	test_end();
}

static void
test_rbl(void)
{
	char *q;
	char *listed[] = { "127.0.0.4", NULL };
	char *none[] = { NULL };

	test_begin("rbl: queries and reply patterns");
	q = smtpd_rbl_query_addr("192.0.2.10", "zen.example");
	test_assert_streq(q, "10.2.0.192.zen.example");
	free(q);
	q = smtpd_rbl_query_addr("2001:db8::1", "bl.example");
	test_assert_streq(q, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "8.b.d.0.1.0.0.2.bl.example");
	free(q);
	test_assert(smtpd_rbl_query_addr("not-an-ip", "x") == NULL);
	q = smtpd_rbl_query_domain("user@Spam.Example.", "dbl.example");
	test_assert_streq(q, "spam.example.dbl.example");
	free(q);
	test_assert(smtpd_rbl_query_domain("user@[192.0.2.1]", "x") == NULL);
	test_assert(smtpd_rbl_query_domain("user@192.0.2.1", "x") == NULL);
	test_assert(smtpd_rbl_query_domain("user@bad_name!.ex", "x") == NULL);
	test_assert(smtpd_rbl_query_domain("", "x") == NULL);

	test_assert(smtpd_rbl_pattern_match("127.0.0.2", "127.0.0.2") == 1);
	test_assert(smtpd_rbl_pattern_match("127.0.0.2", "127.0.0.3") == 0);
	test_assert(smtpd_rbl_pattern_match("127.0.0.[2..11]", "127.0.0.11")
	    == 1);
	test_assert(smtpd_rbl_pattern_match("127.0.0.[2..11]", "127.0.0.12")
	    == 0);
	test_assert(smtpd_rbl_pattern_match("127.0.[0;1].[2;4..5]",
	    "127.0.1.5") == 1);
	test_assert(smtpd_rbl_pattern_match("127.0.[0;1].[2;4..5]",
	    "127.0.1.3") == 0);
	test_assert(!smtpd_rbl_pattern_valid("127.0.0"));
	test_assert(!smtpd_rbl_pattern_valid("127.0.0.256"));
	test_assert(!smtpd_rbl_pattern_valid("127.0.0.[5..2]"));
	test_assert(!smtpd_rbl_pattern_valid("127.0.0.[2"));
	test_assert(smtpd_rbl_listed(NULL, listed));
	test_assert(smtpd_rbl_listed("127.0.0.[2..4]", listed));
	test_assert(!smtpd_rbl_listed("127.0.0.2", listed));
	test_assert(!smtpd_rbl_listed(NULL, none));
	test_end();
}

static void
test_rbl_template(void)
{
	struct smtpd_rbl_vars v = {
		.code = "554", .cls = "Client host", .what = "192.0.2.10",
		.domain = "zen.example", .reason = "listed: see x",
		.client_address = "192.0.2.10", .client_name = "unknown",
	};
	const char *def = "$rbl_code Service unavailable; $rbl_class "
	    "[$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}";
	char *r;

	test_begin("rbl: reply templates");
	r = smtpd_rbl_expand(def, &v);
	test_assert_streq(r, "554 Service unavailable; Client host "
	    "[192.0.2.10] blocked using zen.example; listed: see x");
	free(r);
	v.reason = NULL;
	r = smtpd_rbl_expand(def, &v);
	test_assert_streq(r, "554 Service unavailable; Client host "
	    "[192.0.2.10] blocked using zen.example");
	free(r);
	r = smtpd_rbl_expand("550 ${rbl_reason:no reason} $$ ${client_name}",
	    &v);
	test_assert_streq(r, "550 no reason $ unknown");
	free(r);
	/* unknown names and bad braces do not expand */
	test_assert(smtpd_rbl_expand("554 $nosuch", &v) == NULL);
	test_assert(smtpd_rbl_expand("554 ${rbl_reason?x", &v) == NULL);
	test_end();
}

static void
test_policy_reply(void)
{
	char *action = NULL;
	struct buf b;

	test_begin("policy: answers and requests");
	test_assert(smtpd_policy_parse_reply("action=DUNNO\n\n", 14,
	    &action) == 0);
#define R2 "foo=bar\naction=DEFER_IF_PERMIT Greylisted\r\n\r\n"
	test_assert_streq(action, "DUNNO");
	free(action);
	test_assert(smtpd_policy_parse_reply(R2, strlen(R2), &action) == 0);
	test_assert_streq(action, "DEFER_IF_PERMIT Greylisted");
	free(action);
	/* no action, a line without '=', a missing end */
	test_assert(smtpd_policy_parse_reply("foo=bar\n\n", 9, &action) < 0);
	test_assert(action == NULL);
	test_assert(smtpd_policy_parse_reply("garbage\n\n", 9, &action) < 0);
	test_assert(smtpd_policy_parse_reply("action=OK\n", 10, &action) < 0);
	test_assert(action == NULL);

	buf_init(&b, 0);
	smtpd_policy_attr(&b, "helo_name", "evil\nrecipient=x@y");
	smtpd_policy_attr(&b, "sender", NULL);
	test_assert_streq(buf_cstr(&b), "helo_name=evil?recipient=x@y\n"
	    "sender=\n");
	buf_free(&b);
	test_end();
}

int
main(void)
{
	char cmd[64];

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	cfg_load(NULL);
	test_mail_lookups();
	test_host_lookups();
	test_tutorial_keys();
	test_parse();
	test_dsn();
	test_resolve();
	test_rbl();
	test_rbl_template();
	test_policy_reply();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return test_done();
}
