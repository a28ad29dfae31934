/*
 * Unit tests for qmgr_route: the routing decision of the queue manager
 * (transport(5) lookups and their empty-field rules, the address
 * classes, $relayhost, $relay_domains, error/retry/discard reasons).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "qmgr.h"
#include "test.h"

static void
set(const char *name, const char *value)
{
	const char *error = NULL;

	if (cfg_set(name, value, &error) != 0)
		fprintf(stderr, "# cfg_set %s: %s\n", name, error);
	qmgr_route_reset();
}

static void
base_config(void)
{
	cfg_load(NULL);
	set("myhostname", "mail.example.test");
	set("mydomain", "example.test");
	set("mydestination", "$myhostname, localhost, $mydomain");
	set("relayhost", "");
	set("relay_domains", "");
	set("transport_maps", "");
}

/* Route addr and compare: transport, next hop (SMTP) or dsn + text. */
static void
check_at(const char *addr, enum qmgr_transport t, const char *a,
    const char *b, const char *file, int line)
{
	struct qmgr_route r;

	qmgr_route_resolve(addr, &r);
	test_assert_at(r.transport == t, "transport", file, line);
	if (r.transport != t)
		fprintf(stderr, "# %s: transport %d, want %d (%s %s)\n", addr,
		    (int)r.transport, (int)t, r.dsn ? r.dsn : "-",
		    r.text ? r.text : "-");
	if (t == QMGR_T_SMTP)
		test_assert_streq_at(r.nexthop, a, file, line);
	else if (t != QMGR_T_LOCAL) {
		test_assert_streq_at(r.dsn, a, file, line);
		test_assert_streq_at(r.text, b, file, line);
	}
	qmgr_route_free(&r);
}
#define check(addr, t, a, b) check_at(addr, t, a, b, __FILE__, __LINE__)

static void
test_classes(void)
{
	test_begin("route: address classes and relayhost");
	base_config();
	check("bob@example.test", QMGR_T_LOCAL, NULL, NULL);
	check("bob@MAIL.Example.Test", QMGR_T_LOCAL, NULL, NULL);
	check("bob", QMGR_T_LOCAL, NULL, NULL);
	check("bob@example.org", QMGR_T_SMTP, "example.org", NULL);
	check("bob@Sub.Example.ORG.", QMGR_T_SMTP, "sub.example.org", NULL);
	check("bob@[192.0.2.1]", QMGR_T_SMTP, "[192.0.2.1]", NULL);
	/* relayhost: kept as written (brackets, port), lower case */
	set("relayhost", "[Smtp.Provider.example]:587");
	check("bob@example.org", QMGR_T_SMTP, "[smtp.provider.example]:587",
	    NULL);
	check("bob@example.test", QMGR_T_LOCAL, NULL, NULL);
	set("relayhost", "[192.0.2.9]:2525, [192.0.2.10]:2525");
	check("bob@example.org", QMGR_T_SMTP, "[192.0.2.9]:2525", NULL);
	/* default_transport's own next hop wins over relayhost */
	set("default_transport", "smtp:[gw.example.net]");
	check("bob@example.org", QMGR_T_SMTP, "[gw.example.net]", NULL);
	set("default_transport", "error:5.7.1 no mail to the outside");
	check("bob@example.org", QMGR_T_ERROR, "5.7.1",
	    "no mail to the outside");
	set("default_transport", "retry:remote mail is paused");
	check("bob@example.org", QMGR_T_RETRY, "4.0.0",
	    "remote mail is paused");
	set("default_transport", "smtp");
	test_end();
}

static void
test_relay_domains(void)
{
	test_begin("route: relay_domains and relay_transport");
	base_config();
	/* Postfix lists: the first match wins, so a negation goes first */
	set("relay_domains",
	    "!no.backup.example, backup.example, .sub.example");
	set("relayhost", "[relay.example]");
	set("relay_transport", "smtp:[inner.example]:25");
	check("a@backup.example", QMGR_T_SMTP, "[inner.example]:25", NULL);
	/* parent_domain_matches_subdomains has relay_domains in Postfix */
	check("a@x.backup.example", QMGR_T_SMTP, "[inner.example]:25", NULL);
	check("a@no.backup.example", QMGR_T_SMTP, "[relay.example]", NULL);
	check("a@sub.example", QMGR_T_SMTP, "[relay.example]", NULL);
	check("a@y.sub.example", QMGR_T_SMTP, "[inner.example]:25", NULL);
	/* without a next hop of its own, relay_transport uses relayhost */
	set("relay_transport", "relay");
	check("a@backup.example", QMGR_T_SMTP, "[relay.example]", NULL);
	set("relay_transport", "error:not relaying now");
	check("a@backup.example", QMGR_T_ERROR, "5.0.0", "not relaying now");
	test_end();
}

static void
test_transport_maps(void)
{
	test_begin("route: transport_maps lookups and results");
	base_config();
	set("relayhost", "[relay.example]:25");
	set("recipient_delimiter", "+");
	set("transport_maps", "inline:{ "
	    "vip@example.org=smtp:[10.0.0.1]:2525, "
	    "example.org=smtp:[10.0.0.2], "
	    ".example.net=relay:backup.example:26, "
	    "example.com=smtp:, "
	    "{ bounce.example = error:5.1.1 mailbox unavailable }, "
	    "{ later.example = retry:4.4.1 wait a bit }, "
	    "null.example=discard:, "
	    "{ quiet.example = discard:2.0.0 spam trap }, "
	    "{ other.example = error:4.1.1 looks temporary }, "
	    "here.example=local:, "
	    "hop.example=:[hop.example.net], "
	    "same.example=:, "
	    "local-out@example.test=smtp:[10.0.0.3], "
	    "lmtp.example=lmtp:unix:private/dovecot-lmtp }");
	check("vip@example.org", QMGR_T_SMTP, "[10.0.0.1]:2525", NULL);
	check("VIP+news@Example.org", QMGR_T_SMTP, "[10.0.0.1]:2525", NULL);
	check("other@example.org", QMGR_T_SMTP, "[10.0.0.2]", NULL);
	/* "example.org" does not match subdomains; ".example.net" does */
	check("a@x.example.org", QMGR_T_SMTP, "[relay.example]:25", NULL);
	check("a@deep.x.example.net", QMGR_T_SMTP, "backup.example:26", NULL);
	check("a@example.net", QMGR_T_SMTP, "[relay.example]:25", NULL);
	/* transport(5): a transport with an empty next hop = the domain */
	check("a@example.com", QMGR_T_SMTP, "example.com", NULL);
	check("a@bounce.example", QMGR_T_ERROR, "5.1.1",
	    "mailbox unavailable");
	check("a@later.example", QMGR_T_RETRY, "4.4.1", "wait a bit");
	check("a@null.example", QMGR_T_DISCARD, "2.0.0", "null.example");
	check("a@quiet.example", QMGR_T_DISCARD, "2.0.0", "spam trap");
	/* a code of the wrong class is text, not a code */
	check("a@other.example", QMGR_T_ERROR, "5.0.0",
	    "4.1.1 looks temporary");
	check("a@here.example", QMGR_T_LOCAL, NULL, NULL);
	/* empty transport: the class's transport with this next hop */
	check("a@hop.example", QMGR_T_SMTP, "[hop.example.net]", NULL);
	check("a@same.example", QMGR_T_SMTP, "[relay.example]:25", NULL);
	/* transport_maps comes before $mydestination */
	check("local-out@example.test", QMGR_T_SMTP, "[10.0.0.3]", NULL);
	check("other@example.test", QMGR_T_LOCAL, NULL, NULL);
	/* a transport Postern does not have: deferred */
	check("a@lmtp.example", QMGR_T_RETRY, "4.3.5",
	    "mail transport unavailable");
	set("transport_maps", "inline:{ *=smtp:[catchall.example], "
	    "example.test=local: }");
	check("a@anything.example", QMGR_T_SMTP, "[catchall.example]", NULL);
	check("a@example.test", QMGR_T_LOCAL, NULL, NULL);
	test_end();
}

static void
test_table_errors(void)
{
	struct qmgr_route r;
	char path[] = "/tmp/test_qmgr_route.XXXXXX";
	char *spec;
	FILE *f;
	int fd;

	test_begin("route: table errors defer, tables are reread");
	base_config();
	set("transport_maps", "hash:/nonexistent/transport");
	qmgr_route_resolve("a@example.org", &r);
	test_assert(r.transport == QMGR_T_RETRY);
	test_assert_streq(r.dsn, "4.3.0");
	test_assert(r.text != NULL && strstr(r.text, "transport_maps") !=
	    NULL);
	qmgr_route_free(&r);
	/* a local recipient is deferred too: the table may say otherwise */
	qmgr_route_resolve("a@example.test", &r);
	test_assert(r.transport == QMGR_T_RETRY);
	qmgr_route_free(&r);

	fd = mkstemp(path);
	test_assert(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "example.org  smtp:[192.0.2.7]:25\n");
	fclose(f);
	spec = NULL;
	test_assert(asprintf(&spec, "texthash:%s", path) > 0);
	set("transport_maps", spec);
	check("a@example.org", QMGR_T_SMTP, "[192.0.2.7]:25", NULL);
	unlink(path);
	free(spec);
	test_end();
}

static void
test_cache(void)
{
	test_begin("route: per-message domain cache");
	base_config();
	set("transport_maps", "inline:{ a@example.org=local:, "
	    "example.org=smtp:[10.1.1.1] }");
	qmgr_route_cache_begin();
	check("b@example.org", QMGR_T_SMTP, "[10.1.1.1]", NULL);
	/* the address key is still asked while the domain is cached */
	check("a@example.org", QMGR_T_LOCAL, NULL, NULL);
	check("c@example.org", QMGR_T_SMTP, "[10.1.1.1]", NULL);
	qmgr_route_cache_end();
	check("c@example.org", QMGR_T_SMTP, "[10.1.1.1]", NULL);
	test_end();
}

int
main(void)
{
	test_classes();
	test_relay_domains();
	test_transport_maps();
	test_table_errors();
	test_cache();
	qmgr_route_reset();
	return test_done();
}
