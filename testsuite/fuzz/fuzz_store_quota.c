/*
 * fuzz_store_quota: the Maildir++ quota code of the store
 * (store/store_quota.c): the "maildirsize" file and quota_rule values.
 * Byte 0: bits 0-1 pick the limits (storage, messages, both, a small
 * storage one), bit 2 puts the header line those limits give before
 * the rest (so that the sum lines are what is fuzzed), bit 3 reads the
 * rest as a quota_rule value instead.  Otherwise the rest is the
 * maildirsize of a scratch Maildir holding one message of 123 bytes.
 *
 * Checked beyond "no crash":
 *   - the usage is read twice (the first read may rebuild the file) and
 *     both reads agree;
 *   - a file that is refused is rebuilt from the folder: 123 bytes, 1
 *     message;
 *   - a quota_rule that is refused has a reason, one that is accepted
 *     for "*" sets no limit when it says "ignore".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_stubs.h"
#include "store_private.h"
#include "xmalloc.h"

#define MAX_FUZZ_QUOTA_INPUT	(8 * 1024)

static const struct store_quota_limit fuzz_limits[4] = {
	{ 1024ULL * 1024 * 1024, 0 },
	{ 0, 1000 },
	{ 1024ULL * 1024 * 1024, 1000 },
	{ 100, 0 },
};
static const char *const fuzz_headers[4] = {
	"1073741824S\n", "1000C\n", "1073741824S,1000C\n", "100S\n",
};

static char *fuzz_root, *fuzz_file;

static void __attribute__((noreturn))
fuzz_quota_fail(const char *what)
{
	fprintf(stderr, "store_quota: %s\n", what);
	abort();
}

static void
fuzz_quota_setup(void)
{
	char *p;

	fuzz_root = fuzz_scratch_path("Maildir");
	if (mkdir(fuzz_root, 0700) < 0)
		fuzz_quota_fail("mkdir");
	p = xasprintf("%s/cur", fuzz_root);
	(void)mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/new", fuzz_root);
	(void)mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/tmp", fuzz_root);
	(void)mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/cur/1700000000.M1P1.host,S=123:2,S", fuzz_root);
	fuzz_write_file(p, (const uint8_t *)"x", 1);
	free(p);
	fuzz_file = xasprintf("%s/maildirsize", fuzz_root);
}

static void
fuzz_quota_rule(const uint8_t *data, size_t size)
{
	struct store_quota_limit l;
	const char *err = NULL;
	char *rule = fuzz_cstring(data, size);

	if (store_quota_rule_parse(rule, &l, &err) < 0) {
		if (err == NULL)
			fuzz_quota_fail("rule refused without a reason");
		if (l.bytes != 0 || l.messages != 0)
			fuzz_quota_fail("rule refused, limits left");
	}
	free(rule);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_location loc;
	struct store_quota_usage u1, u2;
	const struct store_quota_limit *l;
	const char *err = NULL;
	struct buf b;

	if (size < 1 || size > MAX_FUZZ_QUOTA_INPUT)
		return 0;
	if (data[0] & 8) {
		fuzz_quota_rule(data + 1, size - 1);
		return 0;
	}
	if (fuzz_root == NULL)
		fuzz_quota_setup();
	l = &fuzz_limits[data[0] & 3];
	buf_init(&b, 0);
	if (data[0] & 4)
		(void)buf_append_str(&b, fuzz_headers[data[0] & 3]);
	(void)buf_append(&b, data + 1, size - 1);
	fuzz_write_file(fuzz_file, (const uint8_t *)b.data, b.len);
	buf_free(&b);

	memset(&loc, 0, sizeof(loc));
	loc.format = STORE_FORMAT_MAILDIR;
	loc.root = fuzz_root;
	loc.inbox = fuzz_root;
	if (store_quota_usage_loc(&loc, l, &u1, &err) < 0)
		fuzz_quota_fail(err != NULL ? err : "first read failed");
	if (store_quota_usage_loc(&loc, l, &u2, &err) < 0)
		fuzz_quota_fail(err != NULL ? err : "second read failed");
	if (u1.bytes != u2.bytes || u1.messages != u2.messages)
		fuzz_quota_fail("two reads disagree");
	return 0;
}
