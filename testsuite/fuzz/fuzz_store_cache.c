/*
 * fuzz_store_cache: the readers of the store's cache and modseq index
 * (store_cache.c, store_index.c), files that a crash, a full disk or
 * another program may leave in any state.  Byte 0 modulo 4 picks what
 * the rest of the input is:
 *   0  a postern-cache of a Maildir holding four messages,
 *   1  a postern-index of that Maildir,
 *   2  one cache record: the harness makes its length and checksum right,
 *      so the field parser sees any field layout,
 *   3  a subject for the RFC 5256 base subject.
 * 0: every field of every message is asked for twice (the same answer
 * both times, strings within STORE_CACHE_MAX_FIELD); the store writes
 * what it computed, and a new open must then find every message in the
 * file and give the same values again.  1: every modseq is at most
 * HIGHESTMODSEQ; a flag change gets a modseq above the old HIGHESTMODSEQ
 * that a new open still finds; a damaged index never makes the mailbox
 * fail to open.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "store.h"
#include "store_private.h"
#include "xmalloc.h"

#define MAX_FUZZ_CACHE_INPUT	(256 * 1024)
#define FUZZ_MSGS		4

static char *fuzz_dir;		/* the Maildir */

static const char *const fuzz_files[FUZZ_MSGS] = {
	"cur/1.a:2,S", "cur/2.b:2,", "cur/3.c:2,F", "cur/4.d:2,"
};

static const char *const fuzz_texts[FUZZ_MSGS] = {
	"From: A <a@example.org>\nTo: b@example.test\nSubject: Re: hi\n"
	"Date: Mon, 3 Feb 2025 10:00:00 +0100\nMessage-ID: <1@x>\n\nbody\n",
	"Subject: =?UTF-8?Q?J=C3=B6rg?= [fwd: x]\n\nno date\n",
	"From: c@example.org\nContent-Type: multipart/mixed; boundary=b\n\n"
	"--b\nContent-Type: text/plain\n\none\n--b\nContent-Type: "
	"application/pdf\n\nx\n--b--\n",
	"",
};

/*
 * Durability is not what is fuzzed here, and an fsync per file written
 * would keep the harness at a few runs a second: in this program fsync()
 * (of files and directories alike) returns at once.
 */
int
fsync(int fd)
{
	(void)fd;
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_dir = fuzz_scratch_path("Maildir");
	return 0;
}

static void
fuzz_clean_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		(void)unlink(p);
		free(p);
	}
	closedir(d);
}

/* A Maildir with its UID map made: the same UIDs 1..4 every time. */
static void
fuzz_reset_maildir(void)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	static const char map[] = "postern-uidlist 1 V1234 N5\n"
	    "1 :1.a\n2 :2.b\n3 :3.c\n4 :4.d\n";
	size_t i;
	char *p;

	(void)mkdir(fuzz_dir, 0700);
	for (i = 0; i < 3; i++) {
		p = xasprintf("%s/%s", fuzz_dir, subs[i]);
		(void)mkdir(p, 0700);
		fuzz_clean_dir(p);
		free(p);
	}
	fuzz_clean_dir(fuzz_dir);
	for (i = 0; i < FUZZ_MSGS; i++) {
		p = xasprintf("%s/%s", fuzz_dir, fuzz_files[i]);
		fuzz_write_file(p, (const uint8_t *)fuzz_texts[i],
		    strlen(fuzz_texts[i]));
		free(p);
	}
	p = xasprintf("%s/postern-uidlist", fuzz_dir);
	fuzz_write_file(p, (const uint8_t *)map, strlen(map));
	free(p);
}

static struct store_user *fuzz_user;

static struct store_mailbox *
fuzz_open(void)
{
	struct store_mailbox *mb = NULL;
	const char *err;

	if (fuzz_user == NULL) {
		char *loc = xasprintf("maildir:%s", fuzz_dir);

		if (store_user_open(loc, "fuzz", "/nonexistent", &fuzz_user,
		    &err) < 0)
			abort();
		free(loc);
	}
	/* A damaged cache or index must never keep the mailbox shut. */
	if (store_mailbox_open(fuzz_user, "INBOX", 0, &mb, &err) < 0)
		abort();
	if (store_mailbox_count(mb) != FUZZ_MSGS)
		abort();
	return mb;
}

/* Every field of every message into out (as one string), checking the
 * answers; *computed_r counts the messages computed, not read. */
static void
fuzz_all_fields(struct store_mailbox *mb, struct buf *out,
    unsigned int *computed_r)
{
	uint32_t i;
	int f;

	*computed_r = 0;
	for (i = 0; i < FUZZ_MSGS; i++) {
		for (f = 1; f < STORE_CACHE_FIELD_COUNT; f++) {
			const char *v, *err;
			size_t len;
			int64_t num;
			int r;

			if (f < STORE_CACHE_HEADER_SIZE) {
				r = store_msg_cached(mb, i, f, &v, &len, &err);
				if (r > 0 && len > STORE_CACHE_MAX_FIELD)
					abort();
				if (r > 0)
					buf_append(out, v, len);
			} else {
				r = store_msg_cached_num(mb, i, f, &num, &err);
				if (r > 0)
					buf_printf(out, "%lld",
					    (long long)num);
			}
			if (r < 0)
				abort();	/* the messages are there */
			if (r == 2 && f == 1)
				(*computed_r)++;
			buf_printf(out, "|%d|", r > 0);
		}
	}
}

static void
fuzz_cache_file(const uint8_t *data, size_t size)
{
	struct store_mailbox *mb;
	struct buf a, b, c;
	unsigned int computed;
	char *p;

	fuzz_reset_maildir();
	p = xasprintf("%s/postern-cache", fuzz_dir);
	fuzz_write_file(p, data, size);
	free(p);
	mb = fuzz_open();
	buf_init(&a, 0);
	buf_init(&b, 0);
	buf_init(&c, 0);
	fuzz_all_fields(mb, &a, &computed);
	fuzz_all_fields(mb, &b, &computed);
	if (computed != 0 || a.len != b.len || memcmp(a.data, b.data,
	    a.len) != 0)
		abort();
	store_mailbox_close(&mb);
	/* What was computed is in the file now: all read from there. */
	mb = fuzz_open();
	fuzz_all_fields(mb, &c, &computed);
	if (computed != 0 || c.len != a.len || memcmp(a.data, c.data,
	    a.len) != 0)
		abort();
	store_mailbox_close(&mb);
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
}

static void
fuzz_index_file(const uint8_t *data, size_t size)
{
	struct store_mailbox *mb;
	uint64_t highest, modseq;
	const char *err;
	uint32_t i, *uids;
	size_t n;
	char *p;

	fuzz_reset_maildir();
	p = xasprintf("%s/postern-index", fuzz_dir);
	fuzz_write_file(p, data, size);
	free(p);
	mb = fuzz_open();
	highest = store_mailbox_highestmodseq(mb);
	for (i = 0; i < FUZZ_MSGS; i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);

		if (m->modseq == 0 || m->modseq > highest)
			abort();
	}
	(void)store_mailbox_expunged_since(mb, 0, 1, UINT32_MAX, &uids, &n);
	for (i = 0; i < n; i++)
		if (store_mailbox_find_uid(mb, uids[i]) >= 0 ||
		    (i > 0 && uids[i] <= uids[i - 1]))
			abort();
	free(uids);
	if (store_msg_set_flags(mb, 1, STORE_FLAGGED, 0, 1, &err) < 0)
		abort();
	modseq = store_mailbox_msg(mb, 1)->modseq;
	if (modseq <= highest || store_mailbox_highestmodseq(mb) != modseq)
		abort();
	if (!store_mailbox_modseq_persistent(mb)) {
		/* Only a claim of the largest modseqs there are may make
		 * the index unusable. */
		if (mb->index.highest < (UINT64_C(1) << 62))
			abort();
		store_mailbox_close(&mb);
		return;
	}
	store_mailbox_close(&mb);
	mb = fuzz_open();
	if (store_mailbox_msg(mb, 1)->modseq != modseq ||
	    store_mailbox_highestmodseq(mb) < modseq)
		abort();
	store_mailbox_close(&mb);
}

/* The input as one record with a right length and checksum. */
static void
fuzz_record(const uint8_t *data, size_t size)
{
	struct store_cache_field_val vals[STORE_CACHE_FIELD_COUNT];
	unsigned char *rec;
	size_t len = (size + STORE_CACHE_REC_HDR + 4 + 7) & ~(size_t)7;
	unsigned int fieldset;
	uint64_t vsize;
	uint32_t uid, hlen;
	size_t k;

	if (len > STORE_CACHE_MAX_RECORD)
		return;
	rec = xcalloc(1, len);
	memcpy(rec, "PCR1", 4);
	store_le32_put(rec + 4, (uint32_t)len);
	store_le32_put(rec + 8, 7);
	memcpy(rec + 12, data, size < len - 16 ? size : len - 16);
	store_le32_put(rec + len - 4, store_crc32c(0, rec, len - 4));
	if (store_cache_parse_rec_header(rec, &hlen, &uid) != 1 ||
	    hlen != len)
		abort();
	if (store_cache_parse_record(rec, len, &uid, &vsize, &fieldset, vals,
	    STORE_CACHE_FIELD_COUNT) == 0) {
		for (k = 0; k < STORE_CACHE_FIELD_COUNT; k++) {
			const unsigned char *d = vals[k].data;

			if (d == NULL)
				continue;
			if (d < rec + STORE_CACHE_REC_HDR ||
			    d + vals[k].len > rec + len - 4)
				abort();
		}
	}
	/* Every damaged byte is found by the checksum. */
	rec[len / 2] ^= 0x01;
	if (store_cache_parse_record(rec, len, &uid, &vsize, &fieldset, vals,
	    STORE_CACHE_FIELD_COUNT) == 0)
		abort();
	free(rec);
}

static void
fuzz_subject(const uint8_t *data, size_t size)
{
	struct buf b;

	buf_init(&b, 0);
	store_subject_base((const char *)data, size, &b);
	if (b.len > size)
		abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;

	if (size < 1 || size > MAX_FUZZ_CACHE_INPUT)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode % 4) {
	case 0:
		fuzz_cache_file(data, size);
		break;
	case 1:
		fuzz_index_file(data, size);
		break;
	case 2:
		fuzz_record(data, size);
		break;
	case 3:
		fuzz_subject(data, size);
		break;
	}
	return 0;
}
