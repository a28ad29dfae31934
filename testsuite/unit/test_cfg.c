/*
 * Unit tests of common/cfg.c: main.cf syntax (comments, continuation
 * lines), $name expansion (nested, conditional, loops), derived defaults,
 * typed values, lists, error messages with FILE:LINE, the mail_location /
 * home_mailbox rule, reload keeping the old settings on error, and a
 * main.cf fragment from a tutorial used unchanged.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "cfg_params.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

static char tmpdir[] = "/tmp/test_cfg.XXXXXX";
static char *conf_path;

/* Write text to the test config file and load it; returns the errors. */
static int
load(const char *text)
{
	FILE *fp = fopen(conf_path, "w");

	if (fp == NULL)
		abort();
	fputs(text, fp);
	fclose(fp);
	return cfg_load(conf_path);
}

/* Whether some error of the last load equals want (after the path). */
static bool
has_error(const char *want)
{
	char *s = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&s, &len);
	bool found;
	char *full;

	cfg_print_errors(mem);
	fclose(mem);
	full = xasprintf("%s%s\n", conf_path, want);
	found = strstr(s, full) != NULL;
	if (!found)
		printf("# errors:\n# %s# wanted: %s", s, full);
	free(full);
	free(s);
	return found;
}

static void
test_syntax(void)
{
	test_begin("syntax: comments, continuation, last wins");
	test_assert(load(
	    "# comment\n"
	    "\n"
	    "myhostname = mail.example.com\n"
	    "mydestination = $myhostname,\n"
	    "    localhost.$mydomain\n"
	    "  # an indented comment does not end the value\n"
	    "\tlocalhost   \n"
	    "relayhost=[smtp.example.net]:587\n"
	    "mail_name = First\n"
	    "mail_name = Second  \n") == 0);
	test_assert_streq(cfg_get("mydestination"),
	    "mail.example.com, localhost.example.com localhost");
	test_assert_streq(cfg_get("relayhost"), "[smtp.example.net]:587");
	test_assert_streq(cfg_get("mail_name"), "Second");
	test_assert(cfg_is_set("mail_name"));
	test_assert(!cfg_is_set("biff"));
	test_assert_streq(cfg_path(), conf_path);
	test_end();
}

static void
test_expansion(void)
{
	test_begin("expansion");
	test_assert(load(
	    "myhostname = mx.example.org\n"
	    "smtpd_banner = ${myhostname} $(mail_name) $$5 cost $\n"
	    "always_bcc = ${recipient_delimiter?has}"
	    "${recipient_delimiter:none}\n"
	    "default_privs = ${mail_name?{yes $mydomain}:{no}}\n"
	    "mail_owner = ${relayhost?{set}:{unset}}\n"
	    "bounce_notice_recipient = a$mail_name_x\n"
	    "mail_name_x = X\n") == 0);
	test_assert_streq(cfg_get("smtpd_banner"),
	    "mx.example.org Postern $5 cost $");
	test_assert_streq(cfg_get("always_bcc"), "none");
	test_assert_streq(cfg_get("default_privs"), "yes example.org");
	test_assert_streq(cfg_get("mail_owner"), "unset");
	/* A user-defined parameter used by $name is accepted. */
	test_assert_streq(cfg_get("bounce_notice_recipient"), "aX");

	/* Nested, and independent of the order of lines. */
	test_assert(load(
	    "myorigin = $relay_domains\n"
	    "relay_domains = $mydestination\n"
	    "mydestination = $myhostname, ${mydomain}\n"
	    "myhostname = a.b.example\n") == 0);
	test_assert_streq(cfg_get("myorigin"), "a.b.example, b.example");

	/* Raw parameters keep their delivery-time $names. */
	test_assert_streq(cfg_get("forward_path"), "$home/.forward");
	test_end();

	test_begin("expansion errors: unknown names, loops");
	test_assert(load(
	    "myhostname = h.example.com\n"
	    "smtpd_banner = $myhostname $nosuchthing\n") == 1);
	test_assert(has_error(":2: unknown parameter $nosuchthing in value "
	    "of smtpd_banner"));
	test_assert(load(
	    "mail_name = $smtpd_banner\n"
	    "smtpd_banner = x $mail_name\n") >= 1);
	test_assert(cfg_first_error() != NULL &&
	    strstr(cfg_first_error(), "refers to itself") != NULL);
	test_assert(load("mail_name = $mail_name\n") == 1);
	test_assert(has_error(":1: parameter mail_name refers to itself "
	    "through $mail_name"));
	/* A conditional on an unknown name is empty, not an error. */
	test_assert(load("mail_name = a${nothing?x}b\n") == 0);
	test_assert_streq(cfg_get("mail_name"), "ab");
	test_end();
}

static void
test_defaults(void)
{
	const char *h;

	test_begin("derived defaults");
	test_assert(cfg_load(NULL) == 0);
	test_assert_streq(cfg_path(), "");
	h = cfg_get("myhostname");
	test_assert(strchr(h, '.') != NULL);
	test_assert_streq(cfg_get("myorigin"), h);
	test_assert_streq(cfg_get("inet_interfaces"), "all");
	test_assert_streq(cfg_get("inet_protocols"), "all");
	test_assert_streq(cfg_get("mynetworks_style"), "host");
	test_assert_streq(cfg_get("mail_location"), "maildir:~/Maildir");
	test_assert_streq(cfg_get("mail_owner"), "postern");
	test_assert(cfg_get_size("message_size_limit") == 10240000);
	test_assert(cfg_get_time("maximal_queue_lifetime") == 5 * 86400);
	test_assert(cfg_get_time("smtpd_timeout") == 300);
	test_assert(cfg_get_bool("disable_vrfy_command"));
	test_assert(cfg_get_int("smtpd_recipient_limit") == 1000);

	test_assert(load("myhostname = mail.example.com\n") == 0);
	test_assert_streq(cfg_get("mydomain"), "example.com");
	test_assert_streq(cfg_get("mydestination"),
	    "mail.example.com, localhost.example.com, localhost");
	test_assert_streq(cfg_get("smtpd_banner"),
	    "mail.example.com ESMTP Postern");
	test_assert(load("myhostname = example.com\n") == 0);
	test_assert_streq(cfg_get("mydomain"), "localdomain");
	test_assert(load("myhostname = solo\n") == 0);
	test_assert_streq(cfg_get("mydomain"), "localdomain");
	test_assert(load("mydomain = corp.example\n") == 0);
	test_assert(strstr(cfg_get("mydestination"),
	    "localhost.corp.example") != NULL);
	test_end();
}

static void
test_types(void)
{
	char **l;

	test_begin("typed values");
	test_assert(load(
	    "message_size_limit = 20m\n"
	    "mailbox_size_limit = 0\n"
	    "bounce_size_limit = 4k\n"
	    "maximal_queue_lifetime = 3\n"
	    "bounce_queue_lifetime = 12h\n"
	    "smtpd_timeout = 2m\n"
	    "auth_failure_delay = 3 secs\n"
	    "biff = false\n"
	    "smtpd_helo_required = YES\n"
	    "ssl = \"required\"\n"
	    "protocols = \" imap pop3\"\n"
	    "inet_protocols = ipv4, ipv6\n"
	    "smtp_listen = 127.0.0.1:2525, [::1]:2525 2526 localhost:25\n"
	    "passdb = passwd-file:/etc/postern/users\n"
	    "ssl_cert = </etc/ssl/certs/mail.pem\n") == 0);
	test_assert(cfg_get_size("message_size_limit") == 20 * 1024 * 1024);
	test_assert(cfg_get_size("mailbox_size_limit") == 0);
	test_assert(cfg_get_size("bounce_size_limit") == 4096);
	test_assert(cfg_get_time("maximal_queue_lifetime") == 3 * 86400);
	test_assert(cfg_get_time("bounce_queue_lifetime") == 12 * 3600);
	test_assert(cfg_get_time("smtpd_timeout") == 120);
	test_assert(cfg_get_time("auth_failure_delay") == 3);
	test_assert(!cfg_get_bool("biff"));
	test_assert(cfg_get_bool("smtpd_helo_required"));
	test_assert_streq(cfg_get("ssl"), "required");
	test_assert_streq(cfg_get("ssl_cert"), "/etc/ssl/certs/mail.pem");
	l = cfg_get_list("protocols");
	test_assert(strv_len(l) == 2 && strcmp(l[0], "imap") == 0 &&
	    strcmp(l[1], "pop3") == 0);
	cfg_list_free(&l);
	l = cfg_get_list("smtp_listen");
	test_assert(strv_len(l) == 4);
	test_assert_streq(l[1], "[::1]:2525");
	cfg_list_free(&l);
	test_end();

	test_begin("bad values");
	test_assert(load("myhostname = a.b.c\n"
	    "message_size_limit = 10MBx\n") == 1);
	test_assert(has_error(":2: bad value for message_size_limit: "
	    "\"10MBx\" (expected a size)"));
	test_assert(load("biff = maybe\n") == 1);
	test_assert(has_error(":1: bad value for biff: \"maybe\" "
	    "(expected yes or no)"));
	test_assert(load("ssl = sometimes\n") == 1);
	test_assert(has_error(":1: bad value for ssl: \"sometimes\" "
	    "(expected one of: yes, no, required)"));
	test_assert(load("smtpd_recipient_limit = 99999999999999999999\n")
	    == 1);
	test_assert(load("smtpd_recipient_limit = -1\n") == 1);
	test_assert(load("unknown_local_recipient_reject_code = 250\n") == 1);
	test_assert(load("smtpd_timeout = 5 fortnights\n") == 1);
	test_assert(load("smtp_listen = 70000\n") == 1);
	test_assert(load("smtp_listen = ::1:25\n") == 1);
	test_assert(load("alias_maps = ldap:/etc/x\n") == 1);
	test_assert(has_error(":1: bad value for alias_maps: "
	    "\"ldap:/etc/x\" (unsupported lookup table type \"ldap\")"));
	test_assert(load("header_checks = regexp:/etc/postern/header_checks, "
	    "pcre:/etc/x\nbody_checks = regexp:{ {/a/ REJECT}, "
	    "{/b/ DISCARD} }\n") == 0);
	test_assert(load("header_checks = regexp:{ {/a/ REJECT}\n") == 1);
	test_assert(load("alias_maps = /etc/aliases\n") == 1);
	test_assert(load("mynetworks = 10.0.0.0/33\n") == 1);
	test_assert(load("mynetworks = 10.0.0.0/8, bogus\n") == 1);
	test_assert(load("passdb = ldap\n") == 1);
	test_assert(load("userdb = passwd-file:\n") == 1);
	test_assert(load("mail_location = sdbox:~/mail\n") == 1);
	test_assert(load("inet_protocols = ipv5\n") == 1);
	test_end();
}

static void
test_lists(void)
{
	char **l;
	char *file;
	FILE *fp;

	test_begin("lists, inline tables, /file elements");
	file = xasprintf("%s/local-host-names", tmpdir);
	fp = fopen(file, "w");
	fputs("# names\nfoo.example bar.example,\n\nbaz.example\n", fp);
	fclose(fp);
	{
		char *text = xasprintf(
		    "myhostname = mx.example.com\n"
		    "mydestination = $myhostname, %s\n"
		    "virtual_alias_maps = inline:{ a@x=b, { c@x = d } },"
		    " hash:/etc/postern/virtual\n"
		    "mynetworks = 127.0.0.0/8 [::1]/128, 192.168.1.0/24,"
		    " hash:/etc/postern/access ::1\n", file);

		test_assert(load(text) == 0);
		free(text);
	}
	l = cfg_get_list("mydestination");
	test_assert(strv_len(l) == 4);
	test_assert_streq(l[0], "mx.example.com");
	test_assert_streq(l[1], "foo.example");
	test_assert_streq(l[3], "baz.example");
	cfg_list_free(&l);
	l = cfg_get_list("virtual_alias_maps");
	test_assert(strv_len(l) == 2);
	test_assert_streq(l[0], "inline:{ a@x=b, { c@x = d } }");
	test_assert_streq(l[1], "hash:/etc/postern/virtual");
	cfg_list_free(&l);
	l = cfg_get_list("mynetworks");
	test_assert(strv_len(l) == 5);
	cfg_list_free(&l);
	l = cfg_list_split(" { a b } ,c{d,e}f,, ");
	test_assert(strv_len(l) == 2);
	test_assert_streq(l[0], "a b");
	test_assert_streq(l[1], "c{d,e}f");
	strv_free(&l);
	/* A device is not a list file (getline() would never end). */
	test_assert(load("mydestination = localhost, /dev/zero\n") == 0);
	l = cfg_get_list("mydestination");
	test_assert(strv_len(l) == 1);
	cfg_list_free(&l);
	unlink(file);
	free(file);
	test_end();
}

static void
test_errors(void)
{
	test_begin("errors: FILE:LINE");
	test_assert(load(
	    "myhostname = a.b.c\n"
	    "\n"
	    "mydestinaton = $myhostname\n"
	    "this line has no equals\n"
	    "  continued\n"
	    "= value\n"
	    "bad name = x\n") == 4);
	test_assert(has_error(":3: unknown parameter name \"mydestinaton\""));
	test_assert(has_error(":4: missing '=' after parameter name: "
	    "\"this line has no equals continued\""));
	test_assert(has_error(":6: missing parameter name before '='"));
	test_assert(has_error(":7: bad parameter name: \"bad name\""));
	test_assert(load("  leading continuation\nbiff = no\n") == 1);
	test_assert(has_error(":1: continuation line without a parameter "
	    "before it"));
	test_assert(cfg_load("/nonexistent/postern.conf") == 1);
	test_assert(cfg_first_error() != NULL &&
	    strstr(cfg_first_error(), "/nonexistent/postern.conf: ") ==
	    cfg_first_error());
	test_end();

	test_begin("reload keeps old settings on error");
	test_assert(load("mail_name = Good\n") == 0);
	test_assert(load("mail_name = Bad\nbiff = perhaps\n") == 1);
	test_assert_streq(cfg_get("mail_name"), "Good");
	test_assert_streq(cfg_path(), conf_path);
	test_end();
}

static void
test_mail_location(void)
{
	test_begin("mail_location and home_mailbox");
	test_assert(load("home_mailbox = Maildir/\n") == 0);
	test_assert_streq(cfg_get("mail_location"), "maildir:~/Maildir");
	test_assert(load("home_mailbox = .Mail/\n") == 0);
	test_assert_streq(cfg_get("mail_location"), "maildir:~/.Mail");
	test_assert(load("home_mailbox = Mailbox\n") == 0);
	test_assert_streq(cfg_get("mail_location"), "mbox:~/Mailbox");
	test_assert(load("mail_location = mbox:~/mail:INBOX=/var/mail/%u\n")
	    == 0);
	test_assert_streq(cfg_get("mail_location"),
	    "mbox:~/mail:INBOX=/var/mail/%u");
	/* The Dovecot half of the tutorial matches the Postfix half. */
	test_assert(load("home_mailbox = .Mail/\n"
	    "mail_location = maildir:~/.Mail\n") == 0);
	test_assert(load("home_mailbox = Maildir/\n"
	    "mail_location = maildir:%h/Maildir/:LAYOUT=fs\n") == 0);
	test_assert(load("home_mailbox = Mailbox\n"
	    "mail_location = mbox:~/mail:INBOX=~/Mailbox\n") == 0);
	test_assert(load("home_mailbox = Maildir/\n"
	    "mail_location = maildir:~/.Mail\n") == 1);
	test_assert(has_error(":2: home_mailbox and mail_location name "
	    "different mailboxes (home_mailbox = Maildir/ means "
	    "maildir:~/Maildir, mail_location = maildir:~/.Mail)"));
	test_end();
}

static void
test_tutorial(void)
{
	char **l;

	/* From a Postfix tutorial's main.cf, copied unchanged. */
	test_begin("tutorial main.cf fragment");
	test_assert(load(
	    "myhostname = server1.crazytechgeek.info\n"
	    "mydomain = crazytechgeek.info\n"
	    "myorigin = $mydomain\n"
	    "inet_interfaces = all\n"
	    "inet_protocols = all\n"
	    "mydestination = $myhostname, localhost.$mydomain, localhost,"
	    " $mydomain\n"
	    "mynetworks = 192.168.1.0/24, 127.0.0.0/8\n"
	    "home_mailbox = Maildir/\n"
	    "message_size_limit = 10485760\n"
	    "relay_domains = $mydestination\n"
	    "alias_maps = hash:/etc/aliases\n"
	    "alias_database = hash:/etc/aliases\n"
	    "mynetworks_style = host\n") == 0);
	test_assert_streq(cfg_get("myorigin"), "crazytechgeek.info");
	l = cfg_get_list("mydestination");
	test_assert(strv_len(l) == 4);
	test_assert_streq(l[0], "server1.crazytechgeek.info");
	test_assert_streq(l[1], "localhost.crazytechgeek.info");
	test_assert_streq(l[3], "crazytechgeek.info");
	cfg_list_free(&l);
	test_assert(cfg_get_size("message_size_limit") == 10485760);
	test_assert_streq(cfg_get("mail_location"), "maildir:~/Maildir");

	/* The other main.cf settings of the tutorials. */
	test_assert(load(
	    "smtpd_use_tls = yes\n"
	    "smtpd_tls_cert_file = /etc/postfix/mail.crt\n"
	    "smtpd_tls_key_file = /etc/postfix/mail.key\n"
	    "smtpd_tls_security_level = may\n"
	    "smtpd_sender_restrictions = permit_mynetworks, "
	    "check_sender_access hash:/etc/postfix/sender_access, permit\n"
	    "smtpd_recipient_restrictions =\n"
	    "    permit_mynetworks,\n"
	    "    permit_sasl_authenticated,\n"
	    "    reject_unknown_sender_domain,\n"
	    "    reject_unauth_destination,\n"
	    "    reject_rbl_client cbl.abuseat.org,\n"
	    "    check_policy_service unix:/var/spool/postfix/postgrey/socket\n"
	    "smtpd_client_restrictions =\n"
	    "    check_client_access hash:/etc/postfix/access,\n"
	    "    reject_rbl_client bl.spamcop.net\n"
	    "header_checks = regexp:/etc/postfix/header_checks\n"
	    "body_checks = regexp:/etc/postfix/body_checks\n"
	    "smtpd_sasl_auth_enable = yes\n"
	    "smtpd_sasl_security_options = noanonymous\n"
	    "broken_sasl_auth_clients = yes\n"
	    "relayhost = [ms1.hinet.net]\n"
	    "message_size_limit =   40000000\n"
	    "mailbox_size_limit = 1000000000\n"
	    "always_bcc = some@host.name\n"
	    "smtp_generic_maps = hash:/etc/postfix/generic\n") == 0);
	test_assert_streq(cfg_get("header_checks"),
	    "regexp:/etc/postfix/header_checks");
	test_assert(cfg_get_size("mailbox_size_limit") == 1000000000);
	test_end();
}

static void
test_param_table(void)
{
	size_t i, j;
	const char *why;
	bool dup = false, bad = false;

	/* Every default passes its own check, and no name is listed twice
	 * (a duplicate would make cfg_param_find() ambiguous). */
	test_begin("parameter table");
	test_assert(cfg_load(NULL) == 0);
	for (i = 0; i < cfg_params_count; i++) {
		for (j = i + 1; j < cfg_params_count; j++) {
			if (strcmp(cfg_params[i].name,
			    cfg_params[j].name) == 0) {
				printf("# duplicate %s\n", cfg_params[i].name);
				dup = true;
			}
		}
		if (cfg_param_check(&cfg_params[i],
		    cfg_get(cfg_params[i].name), &why) < 0) {
			printf("# default of %s: %s\n", cfg_params[i].name,
			    why);
			bad = true;
		}
	}
	test_assert(!dup);
	test_assert(!bad);
	test_assert(cfg_get_size("header_size_limit") == 102400);
	test_assert(cfg_get_int("line_length_limit") == 2048);
	test_assert(cfg_get_int("unknown_client_reject_code") == 450);
	test_assert(cfg_get_int("non_fqdn_reject_code") == 504);
	test_assert(cfg_get_time("smtp_connect_timeout") == 30);
	test_assert(cfg_get_time("smtpd_tls_session_cache_timeout") == 3600);
	test_assert(cfg_get_int("smtp_destination_concurrency_limit") == 20);
	test_assert(load("default_destination_concurrency_limit = 7\n") == 0);
	test_assert(cfg_get_int("smtp_destination_concurrency_limit") == 7);
	test_assert_streq(cfg_get("smtp_sasl_tls_security_options"),
	    "noplaintext, noanonymous");
	test_assert(load("smtpd_tls_loglevel = 5\n") == 1);
	test_assert(load("smtpd_tls_ciphers = strong\n") == 1);
	test_end();
}

static void
test_set_dump(void)
{
	const char *err = NULL;
	char *s = NULL;
	size_t len = 0;
	FILE *mem;
	char *names[] = { "myorigin", "mail_name", NULL };

	test_begin("cfg_set and cfg_dump");
	test_assert(load("myhostname = h.example.net\n"
	    "myorigin = $mydomain\n") == 0);
	test_assert(cfg_set("mail_name", "Test", &err) == 0);
	test_assert_streq(cfg_get("mail_name"), "Test");
	test_assert(cfg_set("biff", "nah", &err) == -1);
	test_assert_streq(err, "bad value for biff: \"nah\" (expected yes "
	    "or no)");
	test_assert(cfg_get_bool("biff"));
	test_assert(cfg_set("nonsense", "1", &err) == -1);

	mem = open_memstream(&s, &len);
	test_assert(cfg_dump(mem, true, false, NULL) == 0);
	fclose(mem);
	test_assert_streq(s, "mail_name = Test\nmyhostname = h.example.net\n"
	    "myorigin = example.net\n");
	free(s);
	mem = open_memstream(&s, &len);
	test_assert(cfg_dump(mem, false, true, names) == 0);
	fclose(mem);
	test_assert_streq(s, "myorigin = $mydomain\nmail_name = Test\n");
	free(s);
	mem = open_memstream(&s, &len);
	test_assert(cfg_dump(mem, false, false, NULL) == 0);
	fclose(mem);
	test_assert(strstr(s, "\nbiff = yes\n") != NULL);
	test_assert(strstr(s, "2bounce_notice_recipient = postmaster\n") == s);
	free(s);
	test_end();
}

static void
test_expand_user(void)
{
	char *s;

	test_begin("cfg_expand_user");
	s = cfg_expand_user("~/Maildir", "joe", "/home/joe");
	test_assert_streq(s, "/home/joe/Maildir");
	free(s);
	s = cfg_expand_user("/var/mail/%u", "joe", "/home/joe");
	test_assert_streq(s, "/var/mail/joe");
	free(s);
	s = cfg_expand_user("%h/%d/%n 100%% %x", "joe@example.com", "/h");
	test_assert_streq(s, "/h/example.com/joe 100% %x");
	free(s);
	test_end();
}

/* smtpd_restriction_classes makes user-defined names known. */
static void
test_restriction_classes(void)
{
	test_begin("cfg: restriction classes");
	test_assert(load("smtpd_restriction_classes = inside, $extra\n"
	    "extra = strict\n"
	    "inside = permit_mynetworks, reject\n"
	    "strict = reject_unknown_sender_domain\n") == 0);
	test_assert_streq(cfg_get_user("inside"), "permit_mynetworks, reject");
	test_assert_streq(cfg_get_user("strict"),
	    "reject_unknown_sender_domain");
	test_assert(cfg_get_user("nothere") == NULL);
	test_assert(cfg_get_user("myhostname") == NULL);
	test_assert(load("inside = reject\n") == 1);
	test_assert(has_error(":1: unknown parameter name \"inside\""));
	test_end();
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		abort();
	conf_path = xasprintf("%s/postern.conf", tmpdir);
	test_syntax();
	test_expansion();
	test_defaults();
	test_types();
	test_lists();
	test_errors();
	test_mail_location();
	test_tutorial();
	test_param_table();
	test_set_dump();
	test_expand_user();
	test_restriction_classes();
	unlink(conf_path);
	rmdir(tmpdir);
	free(conf_path);
	return test_done();
}
