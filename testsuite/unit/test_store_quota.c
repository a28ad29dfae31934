/*
 * Unit tests of store_quota.c: quota_rule values as Dovecot writes them,
 * the limit check, and the Maildir++ maildirsize file (counted from the
 * file names, kept up to date by changes, rebuilt when it lies).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "test.h"
#include "xmalloc.h"

static char root[] = "/tmp/test_store_quota.XXXXXX";

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static char *
read_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void
test_rules(void)
{
	struct store_quota_limit l;
	const char *error;

	test_begin("quota_rule values");
	test_assert(store_quota_rule_parse("", &l, &error) == 0 &&
	    !store_quota_limited(&l));
	test_assert(store_quota_rule_parse(NULL, &l, &error) == 0 &&
	    !store_quota_limited(&l));
	test_assert(store_quota_rule_parse("*:storage=1G:messages=100000",
	    &l, &error) == 0);
	test_assert(l.bytes == 1024ULL * 1024 * 1024 && l.messages == 100000);
	/* storage without a unit is KiB, as Dovecot reads it */
	test_assert(store_quota_rule_parse("*:storage=100", &l,
	    &error) == 0 && l.bytes == 102400 && l.messages == 0);
	test_assert(store_quota_rule_parse("*:storage=200M", &l,
	    &error) == 0 && l.bytes == 200ULL * 1024 * 1024);
	test_assert(store_quota_rule_parse("*:storage=512k", &l,
	    &error) == 0 && l.bytes == 512 * 1024);
	test_assert(store_quota_rule_parse("*:storage=1GB", &l,
	    &error) == 0 && l.bytes == 1024ULL * 1024 * 1024);
	test_assert(store_quota_rule_parse("*:bytes=1000", &l,
	    &error) == 0 && l.bytes == 1000);
	test_assert(store_quota_rule_parse("*:storage=10b", &l,
	    &error) == 0 && l.bytes == 10);
	test_assert(store_quota_rule_parse("?:messages=5", &l,
	    &error) == 0 && l.messages == 5);
	/* mailbox rules, relative and percentage limits: ignored */
	test_assert(store_quota_rule_parse("Trash:storage=+100M", &l,
	    &error) == 0 && !store_quota_limited(&l));
	test_assert(store_quota_rule_parse("*:storage=+100M", &l,
	    &error) == 0 && !store_quota_limited(&l));
	test_assert(store_quota_rule_parse("*:storage=10%", &l,
	    &error) == 0 && !store_quota_limited(&l));
	test_assert(store_quota_rule_parse("*:ignore", &l, &error) == 0 &&
	    !store_quota_limited(&l));
	/* errors */
	test_assert(store_quota_rule_parse("storage=1G", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:storage=", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:storage=1X", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:storage=G", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:size=1", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:storage", &l, &error) < 0);
	test_assert(store_quota_rule_parse(
	    "*:storage=99999999999999999999T", &l, &error) < 0);
	test_assert(store_quota_rule_parse("*:storage=18014398509481984T",
	    &l, &error) < 0);
	test_end();
}

static void
test_fits(void)
{
	struct store_quota_limit l = { 1000, 3 };
	struct store_quota_usage u = { 900, 2 };

	test_begin("quota check");
	test_assert(store_quota_fits(&l, &u, 100, 1));
	test_assert(!store_quota_fits(&l, &u, 101, 1));
	test_assert(!store_quota_fits(&l, &u, 0, 2));
	test_assert(store_quota_fits(&l, &u, 0, 0));
	test_assert(!store_quota_fits(&l, &u, UINT64_MAX, 0));
	l.bytes = 0;
	test_assert(store_quota_fits(&l, &u, UINT64_MAX - 1000, 1));
	test_end();
}

static void
test_maildirsize(void)
{
	struct store_location loc;
	struct store_quota_limit l = { 10000, 10 };
	struct store_quota_usage u;
	const char *error;
	char *path, *ms, *text;

	test_begin("maildirsize");
	memset(&loc, 0, sizeof(loc));
	loc.format = STORE_FORMAT_MAILDIR;
	loc.root = xasprintf("%s/Maildir", root);
	loc.inbox = loc.root;
	ms = xasprintf("%s/maildirsize", loc.root);
	/* no Maildir yet: nothing used, nothing written */
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 0 && u.messages == 0);
	test_assert(access(ms, F_OK) < 0);

	(void)mkdir(loc.root, 0700);
	path = xasprintf("%s/tmp", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/cur", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/new", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/.Sent", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/.Sent/cur", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/cur/1.a.host,S=1200:2,S", loc.root);
	write_file(path, "x");
	free(path);
	path = xasprintf("%s/new/2.b.host,S=300", loc.root);
	write_file(path, "y");
	free(path);
	/* no S=: the file's size */
	path = xasprintf("%s/.Sent/cur/3.c.host:2,", loc.root);
	write_file(path, "12345");
	free(path);

	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	text = read_file(ms);
	test_assert(text != NULL && strcmp(text, "10000S,10C\n1505 3\n") == 0);
	/* changes are lines */
	store_quota_update_loc(&loc, 100, 1);
	store_quota_update_loc(&loc, -1200, -1);
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 405 && u.messages == 3);
	/* another limit: rebuilt from the files */
	l.messages = 0;
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	text = read_file(ms);
	test_assert(text != NULL && strcmp(text, "10000S\n1505 3\n") == 0);
	/* garbage and a negative sum: rebuilt */
	write_file(ms, "10000S\nfoo bar\n");
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	write_file(ms, "10000S\n-5000 -9\n");
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	/* sums past INT64_MAX (found by fuzz_store_quota; wrapped, they
	 * came back as 0 and overflowed): rebuilt */
	write_file(ms, "10000S\n9223372036854775807 0\n"
	    "9223372036854775807 0\n2 0\n");
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	write_file(ms, "10000S\n0 9223372036854775807\n"
	    "0 9223372036854775807\n0 2\n");
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	/* a half-written last line: rebuilt */
	write_file(ms, "10000S\n1505 3\n100");
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505 && u.messages == 3);
	/* too big (Maildir++: over 5120 bytes): rebuilt */
	{
		FILE *f = fopen(ms, "w");
		int i;

		fputs("10000S\n", f);
		for (i = 0; i < 2000; i++)
			fputs("1 0\n", f);
		fclose(f);
	}
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 1505);
	/* without the file, changes are not recorded */
	(void)unlink(ms);
	store_quota_update_loc(&loc, 100, 1);
	test_assert(access(ms, F_OK) < 0);
	free(ms);
	free(loc.root);
	test_end();
}

static void
test_mbox(void)
{
	struct store_location loc;
	struct store_quota_limit l = { 10000, 0 };
	struct store_quota_usage u;
	const char *error;
	char *path;

	test_begin("mbox sizes");
	memset(&loc, 0, sizeof(loc));
	loc.format = STORE_FORMAT_MBOX;
	loc.root = xasprintf("%s/mail", root);
	loc.inbox = xasprintf("%s/inbox-spool", root);
	(void)mkdir(loc.root, 0700);
	write_file(loc.inbox, "From a\n\nhello\n");		/* 14 */
	path = xasprintf("%s/Sent", loc.root);
	write_file(path, "From b\n\nx\n");			/* 10 */
	free(path);
	path = xasprintf("%s/.subscriptions", loc.root);
	write_file(path, "Sent\n");				/* hidden */
	free(path);
	path = xasprintf("%s/dir", loc.root);
	(void)mkdir(path, 0700);
	free(path);
	path = xasprintf("%s/dir/Old", loc.root);
	write_file(path, "From c\n\nyy\n");			/* 11 */
	free(path);
	test_assert(store_quota_usage_loc(&loc, &l, &u, &error) == 0);
	test_assert(u.bytes == 35 && u.messages == 0);
	free(loc.root);
	free(loc.inbox);
	test_end();
}

int
main(void)
{
	log_init("test_store_quota", true);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_rules();
	test_fits();
	test_maildirsize();
	test_mbox();
	{
		char *cmd = xasprintf("rm -rf %s", root);

		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", root);
		free(cmd);
	}
	return test_done();
}
