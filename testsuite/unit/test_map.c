/*
 * Unit tests of common/map.c: building and reading hash: tables (with
 * and without the trailing NUL), the stale and missing .db errors,
 * aliases syntax with continuation lines, texthash, cidr, inline, static,
 * unix, proxy, lists of tables and refresh after a rebuild; regexp: and
 * pcre: tables (flags, $n, if/endif, skipped bad rules, inline rules).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "map.h"
#include "test.h"
#include "xmalloc.h"

static char tmpdir[] = "/tmp/test_map.XXXXXX";

static char *
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		abort();
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Look key up; returns the value (static copy) or NULL. */
static const char *
get(struct map *m, const char *key)
{
	static char last[1024];
	char *v = NULL;
	int rc = map_lookup(m, key, &v);

	if (rc != 1)
		return rc == 0 ? NULL : "(error)";
	snprintf(last, sizeof(last), "%s", v);
	free(v);
	return last;
}

static void
set_mtime(const char *path, time_t t)
{
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };

	utimes(path, tv);
}

static void
test_hash_aliases(void)
{
	const char *err = NULL;
	char *src, *spec, *db;
	struct map *m;

	test_begin("hash: aliases build and lookup");
	src = write_file("aliases",
	    "# aliases\n"
	    "postmaster: root\n"
	    "MAILER-DAEMON: postmaster\n"
	    "staff: alice,\n"
	    "    bob,\n"
	    "\t# a comment inside the list\n"
	    "    carol@example.com\n"
	    "prog: \"|/usr/bin/vacation alice\"\n"
	    "inc: :include:/etc/postern/list\n"
	    "\n"
	    "broken line without colon\n"
	    "postmaster: duplicate\n");
	spec = xasprintf("hash:%s", src);
	db = xasprintf("%s.db", src);
	test_assert(map_build(spec, MAP_KIND_ALIASES, &err) == 5);
	test_assert(access(db, R_OK) == 0);
	m = map_open(spec, MAP_KIND_ALIASES, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "postmaster"), "root");
		test_assert_streq(get(m, "mailer-daemon"), "postmaster");
		test_assert_streq(get(m, "MAILER-DAEMON"), "postmaster");
		test_assert_streq(get(m, "staff"),
		    "alice, bob, carol@example.com");
		test_assert_streq(get(m, "prog"),
		    "\"|/usr/bin/vacation alice\"");
		test_assert_streq(get(m, "inc"), ":include:/etc/postern/list");
		test_assert(get(m, "nobody") == NULL);
		test_assert(get(m, "broken") == NULL);
		map_close(&m);
		test_assert(m == NULL);
	}
	test_end();

	test_begin("hash: stale and missing .db");
	set_mtime(db, 1000000000);
	set_mtime(src, 1000000100);
	test_assert(map_open(spec, MAP_KIND_ALIASES, &err) == NULL);
	{
		char *want = xasprintf("%s: %s is older than %s: run postern "
		    "aliases", spec, db, src);

		test_assert_streq(err, want);
		free(want);
	}
	test_assert(map_open(spec, MAP_KIND_PLAIN, &err) == NULL &&
	    strstr(err, "run postern map build hash:") != NULL);
	unlink(db);
	test_assert(map_open(spec, MAP_KIND_ALIASES, &err) == NULL &&
	    strstr(err, "cannot open") != NULL);
	/* A .db without its source (source removed) still opens. */
	test_assert(map_build(spec, MAP_KIND_ALIASES, &err) == 5);
	unlink(src);
	m = map_open(spec, MAP_KIND_ALIASES, &err);
	test_assert(m != NULL && get(m, "postmaster") != NULL);
	map_close(&m);
	unlink(db);
	free(src);
	free(spec);
	free(db);
	test_end();
}

static void
test_hash_plain(void)
{
	const char *err = NULL;
	char *src, *spec, *db;
	struct map *m;
	DB *h;
	DBT k, d;

	test_begin("hash: plain tables, refresh, keys without NUL");
	src = write_file("access",
	    "spam.example    REJECT go away\n"
	    "[relay.example]:587 user:secret\n"
	    "Friend@Example.COM OK\n"
	    "lonelykey\n");
	spec = xasprintf("hash:%s", src);
	db = xasprintf("%s.db", src);
	/* A bare path builds a hash: table. */
	test_assert(map_build(src, MAP_KIND_PLAIN, &err) == 3);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	test_assert_streq(get(m, "spam.example"), "REJECT go away");
	test_assert_streq(get(m, "[relay.example]:587"), "user:secret");
	test_assert_streq(get(m, "friend@example.com"), "OK");
	test_assert(get(m, "lonelykey") == NULL);

	/* Rebuild with new content: refresh picks it up. */
	free(write_file("access", "spam.example DISCARD\n"));
	test_assert(map_build(spec, MAP_KIND_PLAIN, &err) == 1);
	test_assert(map_refresh(m, &err) == 0);
	test_assert_streq(get(m, "spam.example"), "DISCARD");
	test_assert(get(m, "friend@example.com") == NULL);
	/* Edited source, .db not rebuilt: stale. */
	set_mtime(db, 1000000000);
	set_mtime(src, 1000000200);
	test_assert(map_refresh(m, &err) == -1 &&
	    strstr(err, "is older than") != NULL);
	map_close(&m);

	/* Keys stored without a NUL (tables written by other tools). */
	unlink(db);
	test_assert(db_create(&h, NULL, 0) == 0);
	test_assert(h->open(h, NULL, db, NULL, DB_HASH, DB_CREATE, 0644)
	    == 0);
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = "nonul";
	k.size = 5;
	d.data = "value";
	d.size = 5;
	test_assert(h->put(h, NULL, &k, &d, 0) == 0);
	h->close(h, 0);
	unlink(src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL)
		test_assert_streq(get(m, "NoNul"), "value");
	map_close(&m);
	unlink(db);
	free(src);
	free(spec);
	free(db);

	test_assert(map_build("hash:/nonexistent/file", MAP_KIND_PLAIN,
	    &err) == -1);
	test_assert(map_build("cidr:/x", MAP_KIND_PLAIN, &err) == -1);
	test_end();
}

static void
test_text_tables(void)
{
	const char *err = NULL;
	char *src, *spec;
	struct map *m;

	test_begin("texthash:");
	src = write_file("virtual",
	    "info@example.com   alice\n"
	    "sales@example.com  bob,\n"
	    "  carol\n"
	    "info@example.com   ignored-duplicate\n");
	spec = xasprintf("texthash:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	test_assert_streq(get(m, "INFO@example.com"), "alice");
	test_assert_streq(get(m, "sales@example.com"), "bob, carol");
	test_assert(get(m, "x@example.com") == NULL);
	map_close(&m);
	unlink(src);
	free(src);
	free(spec);
	test_end();

	test_begin("cidr:");
	src = write_file("clients.cidr",
	    "# clients\n"
	    "192.168.1.128/25   REJECT\n"
	    "192.168.1.0/24     OK\n"
	    "[2001:db8::]/32    OK v6\n"
	    "not-a-network      REJECT\n"
	    "10.0.0.0/8\n");
	spec = xasprintf("cidr:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	test_assert_streq(get(m, "192.168.1.200"), "REJECT");
	test_assert_streq(get(m, "192.168.1.20"), "OK");
	test_assert_streq(get(m, "::ffff:192.168.1.20"), "OK");
	test_assert_streq(get(m, "2001:db8::25"), "OK v6");
	test_assert(get(m, "10.1.1.1") == NULL);
	test_assert(get(m, "192.168.2.1") == NULL);
	test_assert(get(m, "hostname.example") == NULL);
	map_close(&m);
	unlink(src);
	free(src);
	free(spec);
	test_assert(map_open("cidr:/nonexistent", MAP_KIND_PLAIN, &err) ==
	    NULL);
	test_end();

	test_begin("inline:, static:, unix:, proxy:, bad types");
	m = map_open("inline:{ a@x=b, { c@x = d e }, F=g }", MAP_KIND_PLAIN,
	    &err);
	test_assert(m != NULL);
	test_assert_streq(get(m, "a@x"), "b");
	test_assert_streq(get(m, "c@x"), "d e");
	test_assert_streq(get(m, "f"), "g");
	test_assert(get(m, "z") == NULL);
	map_close(&m);
	test_assert(map_open("inline:{ novalue }", MAP_KIND_PLAIN, &err) ==
	    NULL);
	test_assert(map_open("inline:a=b", MAP_KIND_PLAIN, &err) == NULL);
	m = map_open("static:5000", MAP_KIND_PLAIN, &err);
	test_assert(m != NULL && strcmp(get(m, "anything"), "5000") == 0);
	map_close(&m);
	m = map_open("static:{ text with spaces }", MAP_KIND_PLAIN, &err);
	test_assert(m != NULL &&
	    strcmp(get(m, "x"), "text with spaces") == 0);
	map_close(&m);
	m = map_open("proxy:unix:passwd.byname", MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	test_assert(get(m, "root") != NULL &&
	    strncmp(get(m, "root"), "root:*:0:0:", 11) == 0);
	test_assert(get(m, "no-such-user-here") == NULL);
	map_close(&m);
	test_assert(map_open("unix:shadow.byname", MAP_KIND_PLAIN, &err) ==
	    NULL);
	test_assert(map_open("ldap:/etc/x", MAP_KIND_PLAIN, &err) ==
	    NULL && strstr(err, "unsupported lookup table type "
	    "\"ldap\"") != NULL);
	test_assert(map_open("/etc/aliases", MAP_KIND_PLAIN, &err) == NULL);
	test_end();
}

static void
test_lists(void)
{
	const char *err = NULL;
	struct map_list *l;
	char *src, *value, *v = NULL;

	test_begin("map_list");
	src = write_file("list.txt", "shared from-texthash\nonly t\n");
	value = xasprintf("inline:{ shared=from-inline, { k = v, w } }, "
	    "texthash:%s static:fallback", src);
	l = map_list_open(value, MAP_KIND_PLAIN, &err);
	test_assert(l != NULL);
	test_assert(map_list_lookup(l, "shared", &v) == 1);
	test_assert_streq(v, "from-inline");
	free(v);
	test_assert(map_list_lookup(l, "k", &v) == 1);
	test_assert_streq(v, "v, w");
	free(v);
	test_assert(map_list_lookup(l, "only", &v) == 1);
	test_assert_streq(v, "t");
	free(v);
	test_assert(map_list_lookup(l, "else", &v) == 1);
	test_assert_streq(v, "fallback");
	free(v);
	map_list_free(&l);
	test_assert(l == NULL);
	l = map_list_open("", MAP_KIND_PLAIN, &err);
	test_assert(l != NULL && map_list_lookup(l, "x", &v) == 0);
	map_list_free(&l);
	test_assert(map_list_open("texthash:/nonexistent, static:x",
	    MAP_KIND_PLAIN, &err) == NULL);
	unlink(src);
	free(src);
	free(value);
	test_end();
}

static void
test_regexp(void)
{
	const char *err = NULL;
	char *src, *spec, *big, *v = NULL;
	struct map *m;

	test_begin("regexp: rules, flags, $n, if/endif, bad rules skipped");
	src = write_file("header_checks",
	    "# header checks, first match wins\n"
	    "/^Subject:.*A funny game/   DISCARD drop header deny\n"
	    "/^Subject: (.*) viagra/     REJECT no $1 please\n"
	    "/^From:.*@(example)\\.(com)/ OK ${1}-$(2) $$5 $ end\n"
	    "/^X-Case: abc/i             case-sensitive\n"
	    "if /^To:/\n"
	    "/@example\\.org/            REJECT inner\n"
	    "endif\n"
	    "/@example\\.org/            OK outer\n"
	    "/^X-Two: a/!/b/             two-pattern\n"
	    "/^X-Long: (.*)$/            $1$1$1$1$1$1$1$1\n"
	    "/^X-Cont:/                  continued\n"
	    "  result\n"
	    "|^X-Delim: a/b|             other delimiter\n"
	    "/unclosed                   REJECT\n"
	    "/a/q                        REJECT bad flag\n"
	    "/(a)/                       $2\n"
	    "!/(a)/                      $1\n"
	    "/a/                         $foo\n"
	    "/a/                         $1x\n"
	    "/((a{100}){100}){100}/      too big\n"
	    "/(a)\\1/                    back-reference\n"
	    "/[/                         bad regex\n"
	    "endif\n"
	    "bogus line\n"
	    "!/^Received:/               WARN not received\n");
	spec = xasprintf("regexp:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "Subject: A funny game tonight"),
		    "DISCARD drop header deny");
		test_assert_streq(get(m, "subject: a FUNNY GAME"),
		    "DISCARD drop header deny");
		test_assert_streq(get(m, "Subject: buy viagra"),
		    "REJECT no buy please");
		test_assert_streq(get(m, "From: Bob <bob@EXAMPLE.com>"),
		    "OK EXAMPLE-com $5 $ end");
		test_assert_streq(get(m, "X-Case: abc"), "case-sensitive");
		test_assert_streq(get(m, "X-CASE: ABC"), "WARN not received");
		test_assert_streq(get(m, "To: x@example.org"),
		    "REJECT inner");
		test_assert_streq(get(m, "Cc: x@example.org"), "OK outer");
		test_assert_streq(get(m, "Received: from x@example.org"),
		    "OK outer");
		test_assert_streq(get(m, "X-Two: a c"), "two-pattern");
		test_assert_streq(get(m, "X-Two: a b"), "WARN not received");
		test_assert_streq(get(m, "X-Cont: x"), "continued result");
		test_assert_streq(get(m, "X-Delim: a/b"), "other delimiter");
		test_assert_streq(get(m, "X-Long: abc"),
		    "abcabcabcabcabcabcabcabc");
		test_assert(get(m, "Received: from mx") == NULL);
		/* Skipped rules do not match anything. */
		test_assert(get(m, "Received: a") == NULL);
		test_assert(get(m, "Received: aa") == NULL);
		test_assert(get(m, "Received: [") == NULL);
		/* A result past MAX_REGEXP_RESULT is an error, not a
		 * truncation. */
		big = xmalloc(20000);
		memcpy(big, "X-Long: ", 8);
		memset(big + 8, 'x', 20000 - 9);
		big[20000 - 1] = '\0';
		test_assert(map_lookup(m, big, &v) == -1 && v == NULL);
		free(big);
		map_close(&m);
	}
	unlink(src);
	free(src);
	free(spec);

	/* if without endif hides the rest; nested ifs. */
	src = write_file("nested",
	    "/^A/ first\n"
	    "if /a/\n"
	    "if !/b/\n"
	    "/c/ a-not-b-c\n"
	    "endif\n"
	    "/c/ a-c\n"
	    "ENDIF\n"
	    "If /^B/\n"
	    "/C/ inner\n");
	spec = xasprintf("regexp:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "A"), "first");
		test_assert_streq(get(m, "x a c"), "a-not-b-c");
		test_assert_streq(get(m, "x a b c"), "a-c");
		test_assert_streq(get(m, "B C"), "inner");
		test_assert(get(m, "Z C") == NULL);
		map_close(&m);
	}
	/* Refresh picks up an edited file. */
	unlink(src);
	free(src);
	free(spec);
	src = write_file("refresh", "/x/ one\n");
	spec = xasprintf("regexp:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "x"), "one");
		free(write_file("refresh", "/x/ two, longer\n"));
		set_mtime(src, time(NULL) + 10);
		test_assert(map_refresh(m, &err) == 0);
		test_assert_streq(get(m, "x"), "two, longer");
		map_close(&m);
	}
	unlink(src);
	free(src);
	free(spec);

	/* Inline rules (Postfix 3.7 syntax). */
	m = map_open("regexp:{ {/^a(b)/ got $1}, {if /c/}, {/d/ cd}, "
	    "{endif}, {/c/ cee} }", MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "abx"), "got b");
		test_assert_streq(get(m, "c d"), "cd");
		test_assert_streq(get(m, "c"), "cee");
		test_assert(get(m, "d") == NULL);
		map_close(&m);
	}
	test_assert(map_open("regexp:{ /a/ b", MAP_KIND_PLAIN, &err) == NULL);
	test_assert(map_open("regexp:/nonexistent/file", MAP_KIND_PLAIN,
	    &err) == NULL);
	/* Devices are not tables: getline() would read /dev/zero forever. */
	test_assert(map_open("texthash:/dev/zero", MAP_KIND_PLAIN, &err) ==
	    NULL && strstr(err, "not a regular file") != NULL);
	test_assert(map_open("regexp:/dev/zero", MAP_KIND_PLAIN, &err) ==
	    NULL);
	test_assert(map_build("hash:/dev/zero", MAP_KIND_PLAIN, &err) < 0);
	test_end();
}

static void
test_pcre(void)
{
	const char *err = NULL;
	char *src, *spec;
	struct map *m;

	test_begin("pcre: the common Perl subset");
	src = write_file("pcre",
	    "/^Subject:\\s+(\\d+)\\s*%\\s+off/   REJECT $1 percent\n"
	    "/^(?:X|Y)-Spam:\\s*(\\w+)/          WARN $1\n"
	    "/^X-Br:\\s*[\\]\\-\\d]+$/            bracket\n"
	    "/^X-Caret:[\\^]$/                   caret\n"
	    "/^X-Lazy:(.*?)end/                  lazy $1\n"
	    "/^X-Hex:\\x41\\t\\x{42}/            hex\n"
	    "/^X-Brace:a{2}x{/                   brace\n"
	    "/^X-Word:\\W\\S+\\W\\bz/             word\n"
	    "/^X-Dollar: \\$5/s                  dollar\n"
	    "/(?=a)/                             look-ahead\n"
	    "/a++/                               possessive\n"
	    "/\\p{L}/                            property\n"
	    "/a/x                                extended flag\n"
	    "/a/!/b/                             two patterns\n"
	    "/(a)\\1/                            back-reference\n"
	    "/[\\D]/                             negated class\n");
	spec = xasprintf("pcre:%s", src);
	m = map_open(spec, MAP_KIND_PLAIN, &err);
	test_assert(m != NULL);
	if (m != NULL) {
		test_assert_streq(get(m, "Subject:  50 % off"),
		    "REJECT 50 percent");
		test_assert_streq(get(m, "Y-Spam: yes please"), "WARN yes");
		test_assert_streq(get(m, "X-Br: ]-5"), "bracket");
		test_assert(get(m, "X-Br: a") == NULL);
		test_assert_streq(get(m, "X-Caret:^"), "caret");
		test_assert_streq(get(m, "X-Lazy: abend"), "lazy  ab");
		test_assert_streq(get(m, "X-Hex:A\tB"), "hex");
		test_assert_streq(get(m, "X-Brace:aax{"), "brace");
		test_assert_streq(get(m, "X-Word: yy z"), "word");
		test_assert_streq(get(m, "X-Dollar: $5"), "dollar");
		/* The unsupported rules were skipped. */
		test_assert(get(m, "a") == NULL);
		test_assert(get(m, "aa") == NULL);
		map_close(&m);
	}
	unlink(src);
	free(src);
	free(spec);
	test_end();
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		abort();
	test_hash_aliases();
	test_hash_plain();
	test_text_tables();
	test_lists();
	test_regexp();
	test_pcre();
	rmdir(tmpdir);
	return test_done();
}
