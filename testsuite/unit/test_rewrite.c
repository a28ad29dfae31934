/*
 * Unit tests for rewrite: header address rewriting with
 * $smtp_generic_maps and canonical/masquerading (table-driven: display
 * names, comments, groups, quoted local parts, routes, encoded words,
 * folded values, broken syntax), envelope canonical mapping, virtual
 * alias expansion (catch-all, lists, loops, sendmail %1 and error:),
 * domain lists, BCC and virtual mailboxes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "rewrite.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

static void
set(const char *name, const char *value)
{
	const char *error = NULL;

	if (cfg_set(name, value, &error) != 0) {
		printf("# cfg_set(%s, %s): %s\n", name, value,
		    error != NULL ? error : "?");
		exit(1);
	}
}

struct hdr_case {
	const char	*name;
	const char	*in;
	const char	*out;	/* NULL: unchanged */
};

/* The rockylinux tutorial's generic table, and a few more entries. */
static const struct hdr_case generic_cases[] = {
	{ "From", "root@somehost.localdomain", "root@bruno.ourdomain.com" },
	{ "From", " root@somehost.localdomain", " root@bruno.ourdomain.com" },
	{ "From", "ROOT@SomeHost.LocalDomain", "root@bruno.ourdomain.com" },
	{ "From", "cron@somehost.localdomain", "root@bruno.ourdomain.com" },
	{ "From", " Root User <root@somehost.localdomain>",
	    " Root User <root@bruno.ourdomain.com>" },
	{ "From", " \"Root, the User\" <root@somehost.localdomain>",
	    " \"Root, the User\" <root@bruno.ourdomain.com>" },
	{ "From", " root@somehost.localdomain (Cron Daemon)",
	    " root@bruno.ourdomain.com (Cron Daemon)" },
	{ "From", " (a (nested) comment) root@somehost.localdomain",
	    " (a (nested) comment) root@bruno.ourdomain.com" },
	{ "From", " =?UTF-8?B?5byg5LiJ?= <root@somehost.localdomain>",
	    " =?UTF-8?B?5byg5LiJ?= <root@bruno.ourdomain.com>" },
	{ "To", " a@x.example, root@somehost.localdomain, b@y.example",
	    " a@x.example, root@bruno.ourdomain.com, b@y.example" },
	{ "To", " Friends: root@somehost.localdomain, a@x.example;, c@y",
	    " Friends: root@bruno.ourdomain.com, a@x.example;, c@y" },
	{ "To", " undisclosed-recipients:;", NULL },
	{ "To", " \"root\"@somehost.localdomain", " root@bruno.ourdomain.com" },
	{ "To", " <@relay.example,@r2.example:root@somehost.localdomain>",
	    " <@relay.example,@r2.example:root@bruno.ourdomain.com>" },
	{ "To", " Root\n <root@somehost.localdomain>,\n\tother@x.example",
	    " Root\n <root@bruno.ourdomain.com>,\n\tother@x.example" },
	{ "Cc", " Root\r\n <root@somehost.localdomain>",
	    " Root\r\n <root@bruno.ourdomain.com>" },
	{ "Reply-To", " old@generic.example", " \"new user\"@generic.example" },
	{ "Sender", " \"a b\"@quoted.example", " ab@quoted.example" },
	{ "Resent-From", " x@keep.example, <old@generic.example>",
	    " x@keep.example, <\"new user\"@generic.example>" },
	{ "From", " nobody@elsewhere.example", NULL },
	{ "From", " Bob Smith", NULL },
	{ "From", "", NULL },
	{ "From", " <>", NULL },
	{ "From", " \"unterminated <root@somehost.localdomain>", NULL },
	{ "From", " (unclosed comment root@somehost.localdomain", NULL },
	{ "From", " root@[192.0.2.1]", NULL },
	{ "From", " root @ somehost.localdomain", " root@bruno.ourdomain.com" },
	{ "From", " =?utf-8?q?root?=", NULL },
	{ "From", " <root@somehost.localdomain", " <root@bruno.ourdomain.com" },
	{ "From", " a@b@somehost.localdomain", NULL },
	{ "From", ",,,;;;::<<>>", NULL },
	{ "Subject", " root@somehost.localdomain", NULL },
	{ "X-Mailer", " root@somehost.localdomain", NULL },
};

static void
test_generic_headers(void)
{
	size_t i;

	set("smtp_generic_maps", "inline:{ "
	    "root@somehost.localdomain=root@bruno.ourdomain.com, "
	    "@somehost.localdomain=root@bruno.ourdomain.com, "
	    "{ old@generic.example = \"new user\"@generic.example }, "
	    "{ a b@quoted.example = ab@quoted.example } }");
	test_begin("header: generic maps, every header shape");
	test_assert(rewrite_header_active(REWRITE_HDR_GENERIC));
	test_assert(!rewrite_header_active(REWRITE_HDR_CANONICAL));
	for (i = 0; i < sizeof(generic_cases) / sizeof(generic_cases[0]);
	    i++) {
		const struct hdr_case *c = &generic_cases[i];
		char *got = rewrite_header_value(c->name, c->in,
		    REWRITE_HDR_GENERIC);

		if ((got == NULL) != (c->out == NULL) ||
		    (got != NULL && strcmp(got, c->out) != 0))
			printf("# case %zu: %s:%s\n", i, c->name, c->in);
		test_assert_streq(got, c->out);
		free(got);
	}
	test_end();

	test_begin("header: address header names");
	test_assert(rewrite_header_is_address("From", 4));
	test_assert(rewrite_header_is_address("rEsEnT-tO", 9));
	test_assert(rewrite_header_is_address("Disposition-Notification-To",
	    27));
	test_assert(!rewrite_header_is_address("Subject", 7));
	test_assert(!rewrite_header_is_address("Fro", 3));
	test_end();

	test_begin("envelope: generic");
	{
		char *a = rewrite_generic("root@somehost.localdomain");
		char *b = rewrite_generic("root@bruno.ourdomain.com");
		char *c = rewrite_generic("old@generic.example");
		char *d = rewrite_generic("");

		test_assert_streq(a, "root@bruno.ourdomain.com");
		test_assert(b == NULL);
		test_assert_streq(c, "\"new user\"@generic.example");
		test_assert(d == NULL);
		free(a);
		free(b);
		free(c);
	}
	test_end();
	set("smtp_generic_maps", "");
}

static const struct hdr_case canonical_cases[] = {
	{ "From", " alice@example.com", " Alice.Liddell@example.com" },
	{ "From", " Alice <alice+news@example.com>",
	    " Alice <Alice.Liddell+news@example.com>" },
	{ "From", " bob@old.example", " bob@new.example" },
	{ "From", " bob@host.example.com", " bob@example.com" },
	{ "From", " bob@a.b.example.com", " bob@example.com" },
	{ "From", " bob@example.com", NULL },
	{ "From", " root@host.example.com", NULL },
	{ "From", " bob@dev.example.com", NULL },
	{ "From", " bob@x.dev.example.com", NULL },
	{ "From", " bob@notexample.com", NULL },
	{ "From", " carol@example.com", " c.sender@example.com" },
	{ "To", " carol@example.com", " c.rcpt@example.com" },
	{ "To", " Bob <bob@host.example.com>", " Bob <bob@example.com>" },
	/* A bare name is looked up as name@$myorigin (mail.example.com). */
	{ "To", " bob", " bob@example.com" },
};

static void
test_canonical(void)
{
	const char *why = NULL;
	char **addrs = NULL;
	char *s;
	size_t i;

	set("myhostname", "mail.example.com");
	set("mydestination", "$myhostname, localhost");
	set("recipient_delimiter", "+");
	set("canonical_maps", "inline:{ alice@example.com=Alice.Liddell@"
	    "example.com, @old.example=@new.example }");
	set("sender_canonical_maps", "inline:{ carol@example.com="
	    "c.sender@example.com }");
	set("recipient_canonical_maps", "inline:{ carol@example.com="
	    "c.rcpt@example.com }");
	set("masquerade_domains", "!dev.example.com, example.com");
	set("masquerade_exceptions", "root");

	test_begin("header: canonical and masquerading");
	test_assert(rewrite_header_active(REWRITE_HDR_CANONICAL));
	for (i = 0; i < sizeof(canonical_cases) /
	    sizeof(canonical_cases[0]); i++) {
		const struct hdr_case *c = &canonical_cases[i];
		char *got = rewrite_header_value(c->name, c->in,
		    REWRITE_HDR_CANONICAL);

		if ((got == NULL) != (c->out == NULL) ||
		    (got != NULL && strcmp(got, c->out) != 0))
			printf("# case %zu: %s:%s\n", i, c->name, c->in);
		test_assert_streq(got, c->out);
		free(got);
	}
	test_end();

	test_begin("envelope sender: canonical, masquerade");
	s = rewrite_sender("alice@example.com", &why);
	test_assert_streq(s, "Alice.Liddell@example.com");
	free(s);
	s = rewrite_sender("carol@example.com", &why);
	test_assert_streq(s, "c.sender@example.com");
	free(s);
	s = rewrite_sender("bob@host.example.com", &why);
	test_assert_streq(s, "bob@example.com");
	free(s);
	s = rewrite_sender("root@host.example.com", &why);
	test_assert_streq(s, "root@host.example.com");
	free(s);
	s = rewrite_sender("", &why);
	test_assert_streq(s, "");
	free(s);
	/* Unchanged addresses come back exactly as given. */
	s = rewrite_sender("\"odd\"@nowhere.example", &why);
	test_assert_streq(s, "\"odd\"@nowhere.example");
	free(s);
	test_end();

	test_begin("envelope recipient: canonical, no masquerade");
	test_assert(rewrite_recipient("carol@example.com", &addrs, &why) == 1);
	test_assert(addrs != NULL && strv_len(addrs) == 1);
	test_assert_streq(addrs != NULL ? addrs[0] : NULL,
	    "c.rcpt@example.com");
	strv_free(&addrs);
	/* masquerade_classes has no envelope_recipient by default. */
	test_assert(rewrite_recipient("bob@host.example.com", &addrs,
	    &why) == 1);
	test_assert_streq(addrs != NULL ? addrs[0] : NULL,
	    "bob@host.example.com");
	strv_free(&addrs);
	set("masquerade_classes", "envelope_recipient");
	test_assert(rewrite_recipient("bob@host.example.com", &addrs,
	    &why) == 1);
	test_assert_streq(addrs != NULL ? addrs[0] : NULL, "bob@example.com");
	strv_free(&addrs);
	/* Nor header classes now. */
	s = rewrite_header_value("From", "bob@host.example.com",
	    REWRITE_HDR_CANONICAL);
	test_assert(s == NULL);
	free(s);
	test_end();

	test_begin("canonical: classes, loops end");
	set("canonical_classes", "envelope_sender");
	set("sender_canonical_maps", "");
	set("recipient_canonical_maps", "");
	set("masquerade_domains", "");
	test_assert(!rewrite_header_active(REWRITE_HDR_CANONICAL));
	s = rewrite_header_value("From", "alice@example.com",
	    REWRITE_HDR_CANONICAL);
	test_assert(s == NULL);
	free(s);
	set("canonical_maps", "inline:{ a@x.example=b@x.example, "
	    "b@x.example=a@x.example }");
	s = rewrite_sender("a@x.example", &why);
	test_assert(s != NULL && (strcmp(s, "a@x.example") == 0 ||
	    strcmp(s, "b@x.example") == 0));
	free(s);
	test_end();

	set("canonical_maps", "");
	set("canonical_classes", "envelope_sender, envelope_recipient, "
	    "header_sender, header_recipient");
	set("masquerade_classes", "envelope_sender, header_sender, "
	    "header_recipient");
	set("masquerade_exceptions", "");
}

/* Expand addr; the results joined with " " (or "=N why" on 0/-1). */
static char *
expand(const char *addr)
{
	const char *why = NULL;
	char **addrs = NULL;
	struct buf b;
	int rc = rewrite_recipient(addr, &addrs, &why);
	size_t i;

	if (rc <= 0)
		return xasprintf("=%d %s", rc, why != NULL ? why : "");
	buf_init(&b, 0);
	for (i = 0; addrs[i] != NULL; i++)
		buf_printf(&b, "%s%s", i > 0 ? " " : "", addrs[i]);
	strv_free(&addrs);
	return buf_steal(&b);
}

static void
expect_expand(const char *addr, const char *want)
{
	char *got = expand(addr);

	if (strcmp(got, want) != 0)
		printf("# %s\n", addr);
	test_assert_streq(got, want);
	free(got);
}

static void
test_virtual(void)
{
	char *reply;

	set("myhostname", "mail.example.test");
	set("mydestination", "$myhostname, localhost");
	set("recipient_delimiter", "+");
	set("virtual_alias_domains", "example.net, tonk.com, empty.example, "
	    ".sub.example");
	set("virtual_alias_maps", "inline:{ @example.net=bob, "
	    "postmaster@example.net=carol, "
	    "dave@example.net=dave.d@x.example, "
	    "{ list@example.net = a@x.example, b@x.example a@x.example }, "
	    "{ lee@tonk.com = error:nouser No such user here }, "
	    "{ tmp@tonk.com = error:4.2.1:450 Try later }, "
	    "dl@tonk.com=dongliang, "
	    "@tonk.com=%1@linux.example, "
	    "pct@x.example=%1.%2.%3@y.example, "
	    "loop1@example.org=loop2@example.org, "
	    "loop2@example.org=loop1@example.org, "
	    "{ self@example.org = self@example.org, other@example.org }, "
	    "alias1=someone@x.example, "
	    "chain1@example.org=chain2@example.org, "
	    "chain2@example.org=@example.net, "
	    "chain3@example.org=@example.com, "
	    "ghost@example.org=nobody@empty.example }");

	test_begin("virtual: catch-all and specific entries");
	expect_expand("anyone@example.net", "bob@mail.example.test");
	expect_expand("AnyOne@Example.NET", "bob@mail.example.test");
	expect_expand("postmaster@example.net", "carol@mail.example.test");
	expect_expand("dave@example.net", "dave.d@x.example");
	/* The extension comes along (propagate_unmatched_extensions). */
	expect_expand("dave+tag@example.net", "dave.d+tag@x.example");
	expect_expand("bob+tag@example.net", "bob@mail.example.test");
	expect_expand("list@example.net", "a@x.example b@x.example");
	test_end();

	test_begin("virtual: sendmail virtusertable forms");
	expect_expand("dl@tonk.com", "dongliang@mail.example.test");
	expect_expand("test@tonk.com", "test@linux.example");
	expect_expand("test+ext@tonk.com", "test@linux.example");
	expect_expand("pct+d@x.example", "pct.d.+d@y.example");
	expect_expand("lee@tonk.com", "=0 550 5.1.1 No such user here");
	expect_expand("tmp@tonk.com", "=0 450 4.2.1 Try later");
	reply = rewrite_recipient_reply("lee@tonk.com", 0,
	    "550 5.1.1 No such user here");
	test_assert_streq(reply, "550 5.1.1 <lee@tonk.com>: Recipient address "
	    "rejected: No such user here");
	free(reply);
	test_end();

	test_begin("virtual: unknown users, recursion, loops");
	expect_expand("x@empty.example",
	    "=0 550 5.1.1 User unknown in virtual alias table");
	reply = rewrite_recipient_reply("x@empty.example", 0,
	    "550 5.1.1 User unknown in virtual alias table");
	test_assert_streq(reply, "550 5.1.1 <x@empty.example>: Recipient "
	    "address rejected: User unknown in virtual alias table");
	free(reply);
	expect_expand("x@a.sub.example",
	    "=0 550 5.1.1 User unknown in virtual alias table");
	expect_expand("x@sub.example", "x@sub.example");
	expect_expand("nobody@unrelated.example", "nobody@unrelated.example");
	expect_expand("\"odd one\"@unrelated.example",
	    "\"odd one\"@unrelated.example");
	expect_expand("loop1@example.org", "loop1@example.org");
	expect_expand("self@example.org",
	    "self@example.org other@example.org");
	/* chain2@example.net goes on to the example.net catch-all. */
	expect_expand("chain1@example.org", "bob@mail.example.test");
	expect_expand("chain3@example.org", "chain3@example.com");
	expect_expand("ghost@example.org",
	    "=0 550 5.1.1 User unknown in virtual alias table");
	/* "user" keys only for local domains. */
	expect_expand("alias1@mail.example.test", "someone@x.example");
	expect_expand("alias1@localhost", "someone@x.example");
	expect_expand("alias1@unrelated.example", "alias1@unrelated.example");
	test_end();

	test_begin("virtual: domain lists");
	test_assert(rewrite_is_virtual_alias_domain("example.net"));
	test_assert(rewrite_is_virtual_alias_domain("EXAMPLE.NET."));
	test_assert(!rewrite_is_virtual_alias_domain("x.example.net"));
	test_assert(rewrite_is_virtual_alias_domain("a.sub.example"));
	test_assert(!rewrite_is_virtual_alias_domain("sub.example"));
	test_assert(!rewrite_is_virtual_alias_domain(""));
	test_assert(!rewrite_is_virtual_alias_domain("[127.0.0.1]"));
	set("virtual_alias_domains", "!bad.example, inline:{ "
	    "example.net=x, .parent.example=x, bad.example=x }");
	test_assert(rewrite_is_virtual_alias_domain("example.net"));
	test_assert(rewrite_is_virtual_alias_domain("a.parent.example"));
	test_assert(!rewrite_is_virtual_alias_domain("parent.example"));
	test_assert(!rewrite_is_virtual_alias_domain("bad.example"));
	test_assert(!rewrite_is_virtual_mailbox_domain("example.net"));
	test_end();

	test_begin("virtual: deep and wide expansions are bounded");
	{
		char **addrs = NULL;
		const char *why;
		struct buf b;
		size_t i;
		int rc;

		/* A chain longer than MAX_ALIAS_DEPTH. */
		buf_init(&b, 0);
		buf_append_str(&b, "inline:{ ");
		for (i = 0; i < 40; i++)
			buf_printf(&b, "c%zu@d.example=c%zu@d.example, ", i,
			    i + 1);
		buf_append_str(&b, "}");
		set("virtual_alias_maps", buf_cstr(&b));
		rc = rewrite_recipient("c0@d.example", &addrs, &why);
		test_assert(rc == 1 && strv_len(addrs) == 1);
		strv_free(&addrs);
		/* A list of 3000 addresses. */
		buf_reset(&b);
		buf_append_str(&b, "inline:{ { w@d.example = ");
		for (i = 0; i < 3000; i++)
			buf_printf(&b, "w%zu@e.example ", i);
		buf_append_str(&b, "} }");
		set("virtual_alias_maps", buf_cstr(&b));
		rc = rewrite_recipient("w@d.example", &addrs, &why);
		test_assert(rc == 1 && strv_len(addrs) == 1000);
		strv_free(&addrs);
		buf_free(&b);
	}
	test_end();

	test_begin("virtual: a table that cannot be read fails temporarily");
	set("virtual_alias_maps", "hash:/nonexistent/postern-test/virtual");
	{
		char *got = expand("x@example.net");

		test_assert(str_starts_case(got, "=-1 virtual_alias_maps: "
		    "hash:/nonexistent/postern-test/virtual: "));
		free(got);
	}
	reply = rewrite_recipient_reply("x@example.net", -1, "x");
	test_assert_streq(reply, "451 4.3.0 <x@example.net>: Temporary "
	    "lookup failure");
	free(reply);
	test_end();
	set("virtual_alias_maps", "");
	set("virtual_alias_domains", "$virtual_alias_maps");
}

static void
test_bcc(void)
{
	char *const rcpts[] = { "x@example.net", "y@example.net",
	    "z@other.example", NULL };
	char **bcc;
	const char *why;

	set("myhostname", "mail.example.test");
	set("always_bcc", "archive");
	set("sender_bcc_maps", "inline:{ alice@example.com=boss@example.com }");
	set("recipient_bcc_maps", "inline:{ @example.net=netwatch@example.com,"
	    " z@other.example=archive@mail.example.test }");
	test_begin("bcc: always, sender, recipients; no duplicates");
	bcc = rewrite_bcc("alice@example.com", rcpts);
	test_assert(strv_len(bcc) == 3);
	test_assert_streq(bcc[0], "archive@mail.example.test");
	test_assert_streq(bcc[1], "boss@example.com");
	test_assert_streq(bcc[2], "netwatch@example.com");
	strv_free(&bcc);
	bcc = rewrite_bcc("", NULL);
	test_assert(strv_len(bcc) == 1);
	strv_free(&bcc);
	set("always_bcc", "");
	set("recipient_bcc_maps", "hash:/nonexistent/postern-test/bcc");
	test_assert(rewrite_bcc_lookup("a@b.example", rcpts, &bcc, &why) < 0);
	test_assert(strstr(why, "recipient_bcc_maps") != NULL);
	bcc = rewrite_bcc("a@b.example", rcpts);
	test_assert(bcc != NULL && bcc[0] == NULL);
	strv_free(&bcc);
	test_end();
	set("sender_bcc_maps", "");
	set("recipient_bcc_maps", "");
}

static void
test_virtual_mailbox(void)
{
	char path[] = "/tmp/postern-test-rewrite-XXXXXX";
	struct rewrite_vmbox vb;
	const char *why = NULL;
	char *mb = NULL;
	uid_t uid = 0;
	gid_t gid = 0;
	FILE *fp;
	int fd;

	set("virtual_mailbox_domains", "vm.example");
	set("virtual_mailbox_base", "/var/vmail");
	set("virtual_mailbox_maps", "inline:{ v1@vm.example=vm.example/v1/, "
	    "@vm.example=vm.example/catchall }");
	set("virtual_uid_maps", "static:5000");
	set("virtual_gid_maps", "inline:{ @vm.example=5001 }");
	set("virtual_minimum_uid", "100");

	test_begin("virtual mailbox: tables");
	test_assert(rewrite_is_virtual_mailbox_domain("vm.example"));
	test_assert(!rewrite_is_virtual_mailbox_domain("other.example"));
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == 1);
	test_assert_streq(mb, "/var/vmail/vm.example/v1/");
	test_assert(uid == 5000 && gid == 5001);
	free(mb);
	mb = NULL;
	test_assert(rewrite_virtual_mailbox("v1+x@vm.example", &mb, &uid,
	    &gid, &why) == 1);
	test_assert_streq(mb, "/var/vmail/vm.example/v1/");
	free(mb);
	mb = NULL;
	test_assert(rewrite_virtual_mailbox("zz@vm.example", &mb, &uid, &gid,
	    &why) == 1);
	test_assert_streq(mb, "/var/vmail/vm.example/catchall");
	free(mb);
	mb = NULL;
	test_assert(rewrite_virtual_mailbox("zz@other.example", &mb, &uid,
	    &gid, &why) == 0);
	/* An entry local cannot use is not a table failure: smtpd
	 * accepts the first, answers 451 to the second. */
	set("virtual_minimum_uid", "6000");
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_UNUSABLE);
	test_assert(strstr(why, "virtual_minimum_uid") != NULL);
	set("virtual_minimum_uid", "100");
	set("virtual_uid_maps", "");
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_UNUSABLE);
	test_assert(strstr(why, "virtual_uid_maps") != NULL);
	set("virtual_uid_maps", "inline:{ v1@vm.example=5000 }");
	test_assert(rewrite_virtual_mailbox("zz@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_UNUSABLE);
	test_assert(strstr(why, "no entry") != NULL);
	set("virtual_uid_maps", "inline:{ @vm.example=x5 }");
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_UNUSABLE);
	test_assert(strstr(why, "bad number") != NULL);
	set("virtual_uid_maps", "static:5000");
	/* A table that cannot be read: nothing is known. */
	set("virtual_mailbox_maps", "hash:/nonexistent/postern-vmbox");
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_TEMPFAIL);
	test_assert(mb == NULL);
	set("virtual_uid_maps", "hash:/nonexistent/postern-uid");
	set("virtual_mailbox_maps", "inline:{ v1@vm.example=vm.example/v1/ }");
	test_assert(rewrite_virtual_mailbox("v1@vm.example", &mb, &uid, &gid,
	    &why) == REWRITE_VMBOX_TEMPFAIL);
	test_assert(mb == NULL);
	set("virtual_uid_maps", "static:5000");
	test_end();

	test_begin("virtual mailbox: passwd-file users");
	fd = mkstemp(path);
	test_assert(fd >= 0);
	fp = fdopen(fd, "w");
	fprintf(fp, "bob@vm2.example:{PLAIN}x:1234:1235::/home/vbob::\n"
	    "bob@vm3.example:{PLAIN}x:1236:1236::/home/vbob3::\n");
	fclose(fp);
	mb = xasprintf("passwd-file:%s", path);
	set("virtual_mailbox_maps", mb);
	set("virtual_mailbox_domains", "$virtual_mailbox_maps");
	free(mb);
	mb = NULL;
	set("mail_location", "maildir:~/Maildir");
	test_assert(rewrite_is_virtual_mailbox_domain("vm2.example"));
	test_assert(rewrite_is_virtual_mailbox_domain("VM3.example"));
	test_assert(!rewrite_is_virtual_mailbox_domain("vm.example"));
	test_assert(rewrite_virtual_lookup("Bob@vm2.example", &vb, &why) == 1);
	test_assert_streq(vb.user, "bob@vm2.example");
	test_assert_streq(vb.home, "/home/vbob");
	test_assert(vb.path == NULL && vb.uid == 1234 && vb.gid == 1235);
	rewrite_vmbox_free(&vb);
	test_assert(rewrite_virtual_lookup("bob+tag@vm3.example", &vb,
	    &why) == 1);
	test_assert_streq(vb.user, "bob@vm3.example");
	rewrite_vmbox_free(&vb);
	test_assert(rewrite_virtual_lookup("alice@vm2.example", &vb,
	    &why) == 0);
	test_assert(rewrite_virtual_mailbox("bob@vm2.example", &mb, &uid,
	    &gid, &why) == 1);
	test_assert_streq(mb, "/home/vbob/Maildir/");
	free(mb);
	unlink(path);
	test_end();
	set("virtual_mailbox_maps", "");
	set("virtual_mailbox_domains", "$virtual_mailbox_maps");
}

int
main(void)
{
	log_init("test_rewrite", true);
	if (cfg_load(NULL) != 0)
		return 1;
	set("myhostname", "mail.example.test");
	set("mydomain", "example.test");
	test_generic_headers();
	test_canonical();
	test_virtual();
	test_bcc();
	test_virtual_mailbox();
	rewrite_reset();
	return test_done();
}
