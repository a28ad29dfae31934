/*
 * Unit tests of the store's index and cache (store_index.c,
 * store_cache.c, store_cache_fill.c): modseqs that survive a reopen and
 * agree between two openers, flag changes made outside (a rename, as
 * mutt does) and expunges getting new modseqs, the expunges remembered
 * for QRESYNC, an index that is lost or damaged; the cache computing a
 * record once and then reading it, surviving a torn append, a damaged
 * record, a damaged record header, deletion, and compaction, always
 * giving what the MIME code renders from the message itself; RFC 5256
 * base subjects; the pure parsers of both files.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "store.h"
#include "store_private.h"
#include "test.h"
#include "xmalloc.h"

static char root[] = "/tmp/test_store_index.XXXXXX";

/* ---- helpers ---- */

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		printf("# cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void
make_maildir(const char *dir)
{
	const char *subs[] = { "cur", "new", "tmp" };
	size_t i;

	if (store_mkdirs(dir) < 0)
		exit(1);
	for (i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);

		(void)mkdir(p, 0700);
		free(p);
	}
}

/* A message with realistic headers; n makes it unique. */
static char *
make_message(unsigned int n)
{
	return xasprintf(
	    "Return-Path: <sender%u@example.org>\n"
	    "Received: from mx.example.org by mail.example.test; "
	    "Mon, 3 Feb 2025 10:%02u:00 +0000\n"
	    "From: =?UTF-8?Q?J=C3=B6rg_Sender?= <sender%u@example.org>\n"
	    "To: Alice <alice@example.test>, bob@example.test\n"
	    "Cc: carol@example.test\n"
	    "Subject: Re: [list] Fwd: report number %u (fwd)\n"
	    "Date: Mon, 3 Feb 2025 11:%02u:00 +0100\n"
	    "Message-ID: <msg%u@example.org>\n"
	    "In-Reply-To: <msg%u@example.org>\n"
	    "References: <root@example.org>\n <msg%u@example.org>\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b%u\"\n"
	    "\n"
	    "--b%u\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "\n"
	    "Body of message %u.\n"
	    "--b%u\n"
	    "Content-Type: application/pdf; name=\"r%u.pdf\"\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "JVBERi0xLjQK\n"
	    "--b%u--\n",
	    n, n % 60, n, n, n % 60, n, n > 0 ? n - 1 : 0, n > 0 ? n - 1 : 0,
	    n, n, n, n, n, n);
}

/* Deliver message n into dir/cur with the given info suffix. */
static void
deliver(const char *dir, unsigned int n, const char *info)
{
	char *msg = make_message(n);
	char *tmp = xasprintf("%s/tmp/%u.M%uP1.host", dir, 1000 + n, n);
	char *dst = xasprintf("%s/cur/%u.M%uP1.host%s", dir, 1000 + n, n,
	    info);
	struct timespec ts[2];

	write_file(tmp, msg, strlen(msg));
	ts[0].tv_sec = ts[1].tv_sec = 1700000000 + n;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	(void)utimensat(AT_FDCWD, tmp, ts, 0);
	if (rename(tmp, dst) < 0)
		exit(1);
	free(msg);
	free(tmp);
	free(dst);
}

/* The file of message n in dir/cur (malloc'ed name), or NULL. */
static char *
find_msg(const char *dir, unsigned int n)
{
	char *cur = xasprintf("%s/cur", dir), *base, *found = NULL;
	struct dirent *de;
	DIR *d = opendir(cur);

	base = xasprintf("%u.M%uP1.host", 1000 + n, n);
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, strlen(base)) == 0) {
			found = xasprintf("%s/%s", cur, de->d_name);
			break;
		}
	}
	if (d != NULL)
		closedir(d);
	free(cur);
	free(base);
	return found;
}

static struct store_user *
open_user(const char *type, const char *path, const char *home)
{
	char *loc = xasprintf("%s:%s", type, path);
	struct store_user *u = NULL;
	const char *err;

	if (store_user_open(loc, "tester", home, &u, &err) < 0)
		printf("# user: %s\n", err);
	free(loc);
	return u;
}

static struct store_mailbox *
open_box(struct store_user *u, const char *name)
{
	struct store_mailbox *mb = NULL;
	const char *err;

	if (store_mailbox_open(u, name, 0, &mb, &err) < 0)
		printf("# open %s: %s\n", name, err);
	return mb;
}

static int
sync_box(struct store_mailbox *mb)
{
	const char *err;
	int r = store_mailbox_sync(mb, NULL, &err);

	if (r < 0)
		printf("# sync: %s\n", err);
	return r;
}

/* What an uncached FETCH renders: the MIME parse of the message. */
static char *
render_direct(struct store_mailbox *mb, uint32_t idx,
    enum store_cache_field field)
{
	struct store_msg_stream *st;
	struct mime_parser *p = mime_parser_new();
	struct mime_part *tree;
	const char *err;
	char chunk[4096];
	struct buf b;
	ssize_t n;

	if (store_msg_open(mb, idx, &st, &err) < 0) {
		mime_parser_free(&p);
		return NULL;
	}
	while ((n = store_msg_read(st, chunk, sizeof(chunk))) > 0)
		mime_parser_feed(p, chunk, (size_t)n);
	store_msg_close(&st);
	tree = mime_parser_finish(&p);
	buf_init(&b, 0);
	if (field == STORE_CACHE_ENVELOPE)
		(void)mime_render_envelope(tree, &b);
	else
		(void)mime_render_bodystructure(tree,
		    field == STORE_CACHE_BODYSTRUCTURE, &b);
	mime_part_free(&tree);
	return buf_steal(&b);
}

/* A cached string field as a malloc'ed string; *r_r the return. */
static char *
cached(struct store_mailbox *mb, uint32_t idx, enum store_cache_field f,
    int *r_r)
{
	const char *v, *err;
	size_t len;
	int r = store_msg_cached(mb, idx, f, &v, &len, &err);

	if (r_r != NULL)
		*r_r = r;
	if (r <= 0) {
		if (r < 0)
			printf("# cached: %s\n", err);
		return NULL;
	}
	return xstrndup(v, len);
}

/* Every message's ENVELOPE and BODYSTRUCTURE from the cache equal the
 * direct rendering; counts how many came from the file (1) and how many
 * were computed (2). */
static bool
check_all(struct store_mailbox *mb, unsigned int *hits_r,
    unsigned int *computed_r)
{
	static const enum store_cache_field fields[] = {
		STORE_CACHE_ENVELOPE, STORE_CACHE_BODYSTRUCTURE,
		STORE_CACHE_BODY
	};
	uint32_t i, n = store_mailbox_count(mb);
	bool ok = true;
	size_t k;

	*hits_r = *computed_r = 0;
	for (i = 0; i < n; i++) {
		for (k = 0; k < 3; k++) {
			char *want = render_direct(mb, i, fields[k]);
			int r;
			char *got = cached(mb, i, fields[k], &r);

			if (got == NULL || want == NULL ||
			    strcmp(got, want) != 0) {
				printf("# message %u field %d: got %s want "
				    "%s\n", i, (int)fields[k],
				    got ? got : "(null)",
				    want ? want : "(null)");
				ok = false;
			}
			if (k == 0) {
				if (r == 1)
					(*hits_r)++;
				else if (r == 2)
					(*computed_r)++;
			}
			free(got);
			free(want);
		}
	}
	return ok;
}

/* ---- base subject (RFC 5256 §2.1) ---- */

static void
check_base(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	store_subject_base(in, strlen(in), &b);
	test_assert_streq(buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_subject_base(void)
{
	test_begin("cache: RFC 5256 base subject");
	check_base("Hello", "Hello");
	check_base("Re: Hello", "Hello");
	check_base("RE:  re: Fwd:Hello", "Hello");
	check_base("Re[2]: Hello", "Hello");
	check_base("[list] Re: Hello", "Hello");
	check_base("[list] [other] Re: Fw: Hello", "Hello");
	check_base("Hello (fwd)", "Hello");
	check_base("Hello (FWD) (fwd)  ", "Hello");
	check_base("[Fwd: Re: Hello]", "Hello");
	check_base("Re: [Fwd: [list] Hello (fwd)]", "Hello");
	/* A blob that is all there is stays. */
	check_base("[just a blob]", "[just a blob]");
	check_base("Re: [just a blob]", "[just a blob]");
	check_base("\tmany   \t spaces  here ", "many spaces here");
	check_base("", "");
	check_base("Re:", "");
	check_base("Reply to this", "Reply to this");
	check_base("fwd", "fwd");
	check_base("Fwd Hello", "Fwd Hello");
	check_base("[unclosed Re: x", "[unclosed Re: x");
	test_end();
}

/* ---- cache ---- */

static void
test_cache_basic(void)
{
	char *md = xasprintf("%s/c1", root);
	char *cpath = xasprintf("%s/postern-cache", md);
	struct store_user *u;
	struct store_mailbox *mb;
	unsigned int hits, computed, i;
	const char *v, *err;
	size_t len;
	int64_t num;
	char *s;
	int r;

	test_begin("cache: computed once, then read; fields for SORT, "
	    "THREAD, SEARCH");
	make_maildir(md);
	for (i = 1; i <= 20; i++)
		deliver(md, i, ":2,");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	test_assert(mb != NULL && store_mailbox_count(mb) == 20);
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 0 && computed == 20);
	/* Asked again in the same open: from the cache. */
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 20 && computed == 0);
	store_mailbox_close(&mb);
	test_assert(file_size(cpath) > STORE_CACHE_HDR);

	/* A new open reads the file; no message is parsed. */
	mb = open_box(u, "INBOX");
	test_assert(mb != NULL);
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 20 && computed == 0);

	/* The other fields of message 3 (index 2). */
	s = cached(mb, 2, STORE_CACHE_SUBJECT_BASE, &r);
	test_assert_streq(s, "report number 3");
	test_assert(r == 1);
	free(s);
	s = cached(mb, 2, STORE_CACHE_FROM_MAILBOX, NULL);
	test_assert_streq(s, "sender3");
	free(s);
	s = cached(mb, 2, STORE_CACHE_FROM_DISPLAY, NULL);
	test_assert_streq(s, "J\xc3\xb6rg Sender");
	free(s);
	s = cached(mb, 2, STORE_CACHE_TO_MAILBOX, NULL);
	test_assert_streq(s, "alice");
	free(s);
	s = cached(mb, 2, STORE_CACHE_TO_DISPLAY, NULL);
	test_assert_streq(s, "Alice");
	free(s);
	s = cached(mb, 2, STORE_CACHE_CC_MAILBOX, NULL);
	test_assert_streq(s, "carol");
	free(s);
	s = cached(mb, 2, STORE_CACHE_MESSAGE_ID, NULL);
	test_assert_streq(s, "<msg3@example.org>");
	free(s);
	s = cached(mb, 2, STORE_CACHE_IN_REPLY_TO, NULL);
	test_assert_streq(s, "<msg2@example.org>");
	free(s);
	s = cached(mb, 2, STORE_CACHE_REFERENCES, NULL);
	test_assert_streq(s, "<root@example.org> <msg2@example.org>");
	free(s);
	s = cached(mb, 2, STORE_CACHE_SEARCH_FROM, NULL);
	test_assert_streq(s, "J\xc3\xb6rg Sender <sender3@example.org>");
	free(s);
	s = cached(mb, 2, STORE_CACHE_SEARCH_SUBJECT, NULL);
	test_assert_streq(s, "Re: [list] Fwd: report number 3 (fwd)");
	free(s);
	s = cached(mb, 2, STORE_CACHE_SEARCH_BCC, NULL);
	test_assert_streq(s, "");
	free(s);
	test_assert(store_msg_cached_num(mb, 2, STORE_CACHE_SENT_DATE, &num,
	    &err) == 1);
	/* Mon, 3 Feb 2025 11:03:00 +0100 = 10:03:00 UTC */
	test_assert(num == 1738576980);
	test_assert(store_msg_cached_num(mb, 2, STORE_CACHE_SENT_TZ, &num,
	    &err) == 1 && num == 60);
	test_assert(store_msg_cached_num(mb, 2, STORE_CACHE_HEADER_SIZE,
	    &num, &err) == 1 && num > 100);
	test_assert(store_msg_cached_num(mb, 2, STORE_CACHE_BODY_SIZE, &num,
	    &err) == 1 && num > 50 && (uint64_t)num <
	    store_mailbox_msg(mb, 2)->vsize);
	test_assert(store_msg_cached(mb, 2, STORE_CACHE_ENVELOPE, &v, &len,
	    &err) == 1 && len > 0 && v[0] == '(');

	/* A message without Date: or Subject:. */
	{
		char *p = xasprintf("%s/cur/2000.nodate.host:2,", md);

		write_file(p, "From: x@y\n\nbody\n", 16);
		free(p);
	}
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 21);
	test_assert(store_msg_cached_num(mb, 20, STORE_CACHE_SENT_DATE, &num,
	    &err) == 2 && num == STORE_CACHE_NO_DATE);
	s = cached(mb, 20, STORE_CACHE_SUBJECT_BASE, NULL);
	test_assert_streq(s, "");
	free(s);
	s = cached(mb, 20, STORE_CACHE_TO_DISPLAY, NULL);
	test_assert_streq(s, "");
	free(s);
	s = cached(mb, 20, STORE_CACHE_FROM_DISPLAY, NULL);
	test_assert_streq(s, "x@y");
	free(s);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(cpath);
}

/* Offsets of the records in a cache file (by scanning headers). */
static size_t
record_offsets(const char *path, off_t *offs, size_t max)
{
	size_t len, n = 0;
	unsigned char *data;
	off_t pos = STORE_CACHE_HDR;
	int fd = open(path, O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	len = (size_t)st.st_size;
	data = xmalloc(len + 1);
	if (read(fd, data, len) != (ssize_t)len)
		len = 0;
	close(fd);
	while ((size_t)pos + STORE_CACHE_REC_HDR <= len && n < max) {
		uint32_t rlen, uid;

		if (store_cache_parse_rec_header(data + pos, &rlen, &uid) != 1)
			break;
		offs[n++] = pos;
		pos += rlen;
	}
	free(data);
	return n;
}

static void
poke_byte(const char *path, off_t off, unsigned char xor)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	if (fd < 0 || pread(fd, &c, 1, off) != 1)
		exit(1);
	c ^= xor;
	if (pwrite(fd, &c, 1, off) != 1)
		exit(1);
	close(fd);
}

static void
test_cache_damage(void)
{
	char *md = xasprintf("%s/c2", root);
	char *cpath = xasprintf("%s/postern-cache", md);
	struct store_user *u;
	struct store_mailbox *mb = NULL;
	unsigned int hits, computed, i;
	off_t offs[16], size;
	size_t n;

	test_begin("cache: torn append, damaged record, damaged header, "
	    "removed file");
	make_maildir(md);
	for (i = 1; i <= 10; i++)
		deliver(md, i, ":2,S");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed) && computed == 10);
	store_mailbox_close(&mb);
	n = record_offsets(cpath, offs, 16);
	test_assert(n == 10);
	if (n != 10)
		goto out;

	/* A torn last record (a crash in the middle of the append). */
	size = file_size(cpath);
	test_assert(truncate(cpath, size - 13) == 0);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 9 && computed == 1);
	store_mailbox_close(&mb);
	/* The writer cut the torn part and appended the record again. */
	test_assert(file_size(cpath) == size);
	test_assert(record_offsets(cpath, offs, 16) == 10);

	/* A damaged byte in the body of the fourth record. */
	poke_byte(cpath, offs[3] + 40, 0x55);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 9 && computed == 1);
	store_mailbox_close(&mb);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 10 && computed == 0);
	store_mailbox_close(&mb);

	/* A damaged length in the header of the second record: the scan
	 * finds the records after it again. */
	poke_byte(cpath, offs[1] + 5, 0x7f);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 9 && computed == 1);
	store_mailbox_close(&mb);

	/* A damaged file header: started again. */
	poke_byte(cpath, 3, 0x01);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 0 && computed == 10);
	store_mailbox_close(&mb);
	test_assert(record_offsets(cpath, offs, 16) == 10);

	/* Removed while open: noticed at the sync, rebuilt, same values. */
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed) && hits == 10);
	test_assert(unlink(cpath) == 0);
	test_assert(sync_box(mb) == 0);
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 0 && computed == 10);
	store_mailbox_close(&mb);
	test_assert(record_offsets(cpath, offs, 16) == 10);

	/* Garbage instead of a cache. */
	write_file(cpath, "not a cache file at all\n", 24);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed) && computed == 10);
	store_mailbox_close(&mb);
	test_assert(record_offsets(cpath, offs, 16) == 10);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(cpath);
}

static void
test_cache_compact(void)
{
	char *md = xasprintf("%s/c3", root);
	char *cpath = xasprintf("%s/postern-cache", md);
	struct store_user *u;
	struct store_mailbox *mb = NULL, *mb2 = NULL;
	unsigned int hits, computed, i;
	uint32_t *uids = NULL;
	off_t before, after;
	const char *err;

	test_begin("cache: compaction after expunges, shared by two "
	    "openers");
	make_maildir(md);
	for (i = 1; i <= 1500; i++)
		deliver(md, i, ":2,");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	mb2 = open_box(u, "INBOX");
	if (mb == NULL || mb2 == NULL)
		goto out;
	test_assert(check_all(mb, &hits, &computed) && computed == 1500);
	test_assert(sync_box(mb) == 0);		/* writes the records */
	/* The other opener reads what the first computed. */
	test_assert(check_all(mb2, &hits, &computed) && hits == 1500);
	before = file_size(cpath);
	test_assert(before > 1024 * 1024);
	/* Expunge all but every fourth message. */
	uids = xcalloc(1500, sizeof(*uids));
	for (i = 0; i < 1500; i++)
		uids[i] = i % 4 == 0 ? 0 : store_mailbox_msg(mb, i)->uid;
	{
		size_t k = 0;

		for (i = 0; i < 1500; i++)
			if (uids[i] != 0)
				uids[k++] = uids[i];
		test_assert(store_mailbox_expunge_uids(mb, uids, k,
		    &err) == 0);
	}
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 375);
	after = file_size(cpath);
	test_assert(after > 0 && after < before / 2);
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 375 && computed == 0);
	/* The other opener finds the new file at its sync. */
	test_assert(sync_box(mb2) == 0 && store_mailbox_count(mb2) == 375);
	test_assert(check_all(mb2, &hits, &computed));
	test_assert(hits == 375 && computed == 0);
	store_mailbox_close(&mb2);
	store_mailbox_close(&mb);
	mb = open_box(u, "INBOX");
	test_assert(mb != NULL && check_all(mb, &hits, &computed) &&
	    hits == 375);
out:
	free(uids);
	store_mailbox_close(&mb);
	store_mailbox_close(&mb2);
	store_user_close(&u);
	test_end();
	free(md);
	free(cpath);
}

/* ---- modseqs ---- */

static uint64_t
modseq_of(struct store_mailbox *mb, uint32_t uid)
{
	int64_t i = store_mailbox_find_uid(mb, uid);

	return i < 0 ? 0 : store_mailbox_msg(mb, (uint32_t)i)->modseq;
}

static void
test_modseq(void)
{
	char *md = xasprintf("%s/m1", root);
	char *ipath = xasprintf("%s/postern-index", md);
	struct store_user *u;
	struct store_mailbox *mb = NULL, *mb2 = NULL;
	uint64_t h0, h1, h2, h3, m1, m2;
	uint32_t uv, uid3, uid4, *vanished;
	size_t nv;
	const char *err;
	unsigned int i;
	char *f, *g;

	test_begin("modseq: persistent, monotonic, shared, external "
	    "changes, expunges remembered");
	make_maildir(md);
	for (i = 1; i <= 5; i++)
		deliver(md, i, ":2,");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_modseq_persistent(mb));
	h0 = store_mailbox_highestmodseq(mb);
	uv = store_mailbox_uidvalidity(mb);
	/* A new index: every message at one modseq, the highest. */
	for (i = 0; i < 5; i++)
		test_assert(store_mailbox_msg(mb, i)->modseq == h0);
	test_assert(h0 > 1 && h0 < (UINT64_C(1) << 53));
	uid3 = store_mailbox_msg(mb, 2)->uid;
	uid4 = store_mailbox_msg(mb, 3)->uid;

	/* A change through the store gets the next modseq at once. */
	test_assert(store_msg_set_flags(mb, 2, STORE_SEEN, 0, 1, &err) == 0);
	m1 = modseq_of(mb, uid3);
	test_assert(m1 == h0 + 1);
	test_assert(store_mailbox_highestmodseq(mb) == m1);
	/* Setting a flag that is set changes nothing (RFC 7162 §3.1). */
	test_assert(store_msg_set_flags(mb, 2, STORE_SEEN, 0, 1, &err) == 0);
	test_assert(modseq_of(mb, uid3) == m1);

	/* A second opener (another process) agrees, and its change comes
	 * after ours. */
	mb2 = open_box(u, "INBOX");
	if (mb2 == NULL)
		goto out;
	test_assert(modseq_of(mb2, uid3) == m1);
	test_assert(store_mailbox_highestmodseq(mb2) == m1);
	test_assert(store_msg_set_flags(mb2, 3, STORE_FLAGGED, 0, 1,
	    &err) == 0);
	m2 = modseq_of(mb2, uid4);
	test_assert(m2 == m1 + 1);
	test_assert(sync_box(mb) == 0);
	test_assert(modseq_of(mb, uid4) == m2);
	test_assert(store_mailbox_highestmodseq(mb) == m2);
	test_assert(store_msg_set_flags(mb, 0, STORE_ANSWERED, 0, 1,
	    &err) == 0);
	test_assert(modseq_of(mb, store_mailbox_msg(mb, 0)->uid) == m2 + 1);
	store_mailbox_close(&mb2);

	/* Reopen: the same modseqs. */
	h1 = store_mailbox_highestmodseq(mb);
	store_mailbox_close(&mb);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_highestmodseq(mb) == h1);
	test_assert(modseq_of(mb, uid3) == m1);
	test_assert(modseq_of(mb, uid4) == m2);
	test_assert(store_mailbox_uidvalidity(mb) == uv);

	/* mutt renames a file: seen with a new modseq at the sync. */
	f = find_msg(md, 5);
	test_assert(f != NULL);
	if (f == NULL)
		goto out;
	g = xasprintf("%.*s:2,FS", (int)(strchr(f, ':') - f), f);
	test_assert(rename(f, g) == 0);
	free(f);
	free(g);
	test_assert(sync_box(mb) == 0);
	test_assert(modseq_of(mb, store_mailbox_msg(mb, 4)->uid) == h1 + 1);
	test_assert(store_mailbox_msg(mb, 4)->flags ==
	    (STORE_FLAGGED | STORE_SEEN));
	test_assert(store_mailbox_highestmodseq(mb) == h1 + 1);
	/* ... also when nobody had the mailbox open. */
	store_mailbox_close(&mb);
	f = find_msg(md, 1);
	g = f != NULL ? xasprintf("%.*s:2,", (int)(strchr(f, ':') - f), f) :
	    NULL;
	test_assert(f != NULL && rename(f, g) == 0);
	free(f);
	free(g);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_highestmodseq(mb) == h1 + 2);
	test_assert(store_mailbox_msg(mb, 0)->modseq == h1 + 2);
	test_assert(store_mailbox_msg(mb, 0)->flags == 0);

	/* A new message gets a new modseq. */
	deliver(md, 6, ":2,");
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 6);
	test_assert(store_mailbox_msg(mb, 5)->modseq == h1 + 3);

	/* Expunge: bumps HIGHESTMODSEQ, remembered. */
	h2 = store_mailbox_highestmodseq(mb);
	test_assert(store_mailbox_expunge_uids(mb, &uid3, 1, &err) == 0);
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 5);
	h3 = store_mailbox_highestmodseq(mb);
	test_assert(h3 == h2 + 1);
	test_assert(store_mailbox_expunged_since(mb, h2, 1, UINT32_MAX,
	    &vanished, &nv));
	test_assert(nv == 1 && vanished[0] == uid3);
	free(vanished);
	test_assert(store_mailbox_expunged_since(mb, h3, 1, UINT32_MAX,
	    &vanished, &nv));
	test_assert(nv == 0);
	free(vanished);
	/* Outside the UID range asked for: left out. */
	test_assert(store_mailbox_expunged_since(mb, h2, uid3 + 1,
	    UINT32_MAX, &vanished, &nv) && nv == 0);
	free(vanished);
	/* Older than the index: incomplete. */
	test_assert(!store_mailbox_expunged_since(mb, 5, 1, UINT32_MAX,
	    &vanished, &nv));
	free(vanished);
	/* A file removed by mutt: an expunge at the sync. */
	f = find_msg(md, 2);
	test_assert(f != NULL && unlink(f) == 0);
	free(f);
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 4);
	test_assert(store_mailbox_highestmodseq(mb) == h3 + 1);
	store_mailbox_close(&mb);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_expunged_since(mb, h2, 1, UINT32_MAX,
	    &vanished, &nv));
	test_assert(nv == 2 && vanished[0] < vanished[1] &&
	    (vanished[0] == uid3 || vanished[1] == uid3));
	free(vanished);

	/* The index removed: rebuilt above every old modseq; expunges
	 * before it are unknown. */
	h3 = store_mailbox_highestmodseq(mb);
	store_mailbox_close(&mb);
	test_assert(unlink(ipath) == 0);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_highestmodseq(mb) > h3);
	test_assert(store_mailbox_msg(mb, 0)->modseq ==
	    store_mailbox_highestmodseq(mb));
	test_assert(!store_mailbox_expunged_since(mb, h2, 1, UINT32_MAX,
	    &vanished, &nv));
	free(vanished);
	test_assert(store_mailbox_uidvalidity(mb) == uv);
	h3 = store_mailbox_highestmodseq(mb);
	test_assert(store_mailbox_expunged_since(mb, h3, 1, UINT32_MAX,
	    &vanished, &nv) && nv == 0);
	free(vanished);
	store_mailbox_close(&mb);

	/* A damaged record: skipped, the state comes back at the sync. */
	{
		off_t sz = file_size(ipath);

		test_assert(sz == STORE_INDEX_HDR + 4 * STORE_INDEX_REC);
		poke_byte(ipath, STORE_INDEX_HDR + STORE_INDEX_REC + 9, 0x10);
		mb = open_box(u, "INBOX");
		test_assert(mb != NULL && store_mailbox_count(mb) == 4);
		if (mb == NULL)
			goto out;
		test_assert(store_mailbox_msg(mb, 1)->modseq == h3 + 1);
		test_assert(store_mailbox_msg(mb, 0)->modseq == h3);
		/* A torn record at the end is cut off by the next writer. */
		store_mailbox_close(&mb);
		sz = file_size(ipath);
		test_assert(truncate(ipath, sz - 7) == 0);
		mb = open_box(u, "INBOX");
		if (mb == NULL)
			goto out;
		test_assert(store_msg_set_flags(mb, 0, STORE_DRAFT, 0, 1,
		    &err) == 0);
		test_assert((file_size(ipath) - STORE_INDEX_HDR) %
		    STORE_INDEX_REC == 0);
		store_mailbox_close(&mb);
	}
out:
	store_mailbox_close(&mb);
	store_mailbox_close(&mb2);
	store_user_close(&u);
	test_end();
	free(md);
	free(ipath);
}

/* A new UIDVALIDITY (the UID map lost): index and cache start again. */
static void
test_uidvalidity(void)
{
	char *md = xasprintf("%s/m2", root);
	char *map = xasprintf("%s/postern-uidlist", md);
	struct store_user *u;
	struct store_mailbox *mb = NULL;
	unsigned int hits, computed, i;
	uint32_t uv;
	uint64_t h;

	test_begin("modseq and cache: kept with UIDVALIDITY, dropped when "
	    "it changes");
	make_maildir(md);
	for (i = 1; i <= 3; i++)
		deliver(md, i, ":2,");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	uv = store_mailbox_uidvalidity(mb);
	h = store_mailbox_highestmodseq(mb);
	test_assert(check_all(mb, &hits, &computed) && computed == 3);
	store_mailbox_close(&mb);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_uidvalidity(mb) == uv);
	test_assert(store_mailbox_highestmodseq(mb) == h);
	test_assert(check_all(mb, &hits, &computed) && hits == 3);
	store_mailbox_close(&mb);
	/* A UIDVALIDITY one second later (the clock is what gives it). */
	sleep(1);
	test_assert(unlink(map) == 0);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_uidvalidity(mb) != uv);
	test_assert(store_mailbox_highestmodseq(mb) > h);
	test_assert(check_all(mb, &hits, &computed));
	test_assert(hits == 0 && computed == 3);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(map);
}

static void
test_mbox(void)
{
	char *home = xasprintf("%s/mh", root);
	char *mail = xasprintf("%s/mh/mail", root);
	char *inbox = xasprintf("%s/mh/inbox", root);
	char *loc = xasprintf("%s:INBOX=%s", mail, inbox);
	struct store_user *u;
	struct store_mailbox *mb = NULL;
	unsigned int hits, computed;
	struct buf b;
	unsigned int i;
	uint64_t h;
	const char *err;

	test_begin("mbox: index and cache in ROOT/.postern");
	(void)store_mkdirs(mail);
	buf_init(&b, 0);
	for (i = 1; i <= 4; i++) {
		char *m = make_message(i);

		buf_printf(&b, "From sender%u@example.org Mon Feb  3 10:00:0%u "
		    "2025\n%s\n", i, i, m);
		free(m);
	}
	write_file(inbox, b.data, b.len);
	buf_free(&b);
	u = open_user("mbox", loc, home);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_count(mb) == 4);
	test_assert(check_all(mb, &hits, &computed) && computed == 4);
	h = store_mailbox_highestmodseq(mb);
	test_assert(store_msg_set_flags(mb, 1, STORE_SEEN, 0, 1, &err) == 0);
	test_assert(store_mailbox_highestmodseq(mb) == h + 1);
	store_mailbox_close(&mb);
	{
		char *ip = xasprintf("%s/.postern/INBOX.index", mail);
		char *cp = xasprintf("%s/.postern/INBOX.cache", mail);

		test_assert(file_size(ip) > STORE_INDEX_HDR);
		test_assert(file_size(cp) > STORE_CACHE_HDR);
		free(ip);
		free(cp);
	}
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_highestmodseq(mb) == h + 1);
	test_assert(store_mailbox_msg(mb, 1)->modseq == h + 1);
	test_assert(check_all(mb, &hits, &computed) && hits == 4);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(home);
	free(mail);
	free(inbox);
	free(loc);
}

/* mutt marked every message read: every file renamed behind the view,
 * and each is still found (from one listing of the directory). */
static void
test_renamed_all(void)
{
	char *md = xasprintf("%s/r1", root);
	struct store_user *u;
	struct store_mailbox *mb = NULL;
	unsigned int i, ok = 0;

	test_begin("maildir: every file renamed behind the view");
	make_maildir(md);
	for (i = 1; i <= 300; i++)
		deliver(md, i, ":2,");
	u = open_user("maildir", md, root);
	mb = open_box(u, "INBOX");
	if (mb == NULL)
		goto out;
	for (i = 1; i <= 300; i++) {
		char *f = find_msg(md, i), *g;

		g = xasprintf("%.*s:2,S", (int)(strrchr(f, ':') - f), f);
		if (rename(f, g) < 0)
			exit(1);
		free(f);
		free(g);
	}
	for (i = 0; i < 300; i++) {
		struct store_msg_stream *st;
		const char *err;
		char buf[64];

		if (store_msg_open(mb, i, &st, &err) == 0) {
			if (store_msg_read(st, buf, sizeof(buf)) > 0)
				ok++;
			store_msg_close(&st);
		}
	}
	test_assert(ok == 300);
	/* A flag change finds the renamed file and keeps its \Seen. */
	{
		const char *err;
		char *f;

		test_assert(store_msg_set_flags(mb, 7, STORE_FLAGGED, 0, 1,
		    &err) == 0);
		f = find_msg(md, 8);
		test_assert(f != NULL && strcmp(strrchr(f, ':'), ":2,FS") ==
		    0);
		free(f);
	}
	test_assert(sync_box(mb) == 0 && store_mailbox_count(mb) == 300);
	test_assert((store_mailbox_msg(mb, 0)->flags & STORE_SEEN) != 0);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
}

/* ---- the pure parsers ---- */

static void
test_parsers(void)
{
	struct store_cache_field_val in[3], out[STORE_CACHE_FIELD_COUNT];
	unsigned char rec[STORE_INDEX_REC];
	unsigned int fieldset;
	uint64_t vsize;
	uint32_t uid, len;
	struct buf b;

	test_begin("cache and index: record parsers");
	/* CRC-32C check value (RFC 3720 B.4), and the table version equal
	 * to the instruction for every length and alignment. */
	test_assert(store_crc32c(0, "123456789", 9) == 0xe3069283);
	test_assert(store_crc32c_sw(0, "123456789", 9) == 0xe3069283);
	{
		char data[100];
		size_t i, l, bad = 0;

		for (i = 0; i < sizeof(data); i++)
			data[i] = (char)(i * 37 + 11);
		for (i = 0; i < 8; i++)
			for (l = 0; l + i <= sizeof(data); l++)
				if (store_crc32c(5, data + i, l) !=
				    store_crc32c_sw(5, data + i, l))
					bad++;
		test_assert(bad == 0);
	}
	in[0].id = STORE_CACHE_ENVELOPE;
	in[0].data = "(NIL)";
	in[0].len = 5;
	in[1].id = STORE_CACHE_BODY;
	in[1].data = "";
	in[1].len = 0;
	in[2].id = 200;		/* unknown to this version: skipped */
	in[2].data = "x";
	in[2].len = 1;
	buf_init(&b, 0);
	store_cache_frame(&b, 42, 1234, 7, in, 3);
	test_assert(b.len % 8 == 0);
	test_assert(store_cache_parse_rec_header((unsigned char *)b.data,
	    &len, &uid) == 1 && len == b.len && uid == 42);
	test_assert(store_cache_parse_record((unsigned char *)b.data, b.len,
	    &uid, &vsize, &fieldset, out, STORE_CACHE_FIELD_COUNT) == 0);
	test_assert(uid == 42 && vsize == 1234 && fieldset == 7);
	test_assert(out[STORE_CACHE_ENVELOPE].len == 5 &&
	    memcmp(out[STORE_CACHE_ENVELOPE].data, "(NIL)", 5) == 0);
	test_assert(out[STORE_CACHE_BODY].data != NULL &&
	    out[STORE_CACHE_BODY].len == 0);
	test_assert(out[STORE_CACHE_BODYSTRUCTURE].data == NULL);
	/* Every single damaged byte is noticed. */
	{
		size_t i, bad = 0;

		for (i = 0; i < b.len; i++) {
			b.data[i] ^= 0x20;
			if (store_cache_parse_record((unsigned char *)b.data,
			    b.len, &uid, &vsize, &fieldset, out,
			    STORE_CACHE_FIELD_COUNT) < 0)
				bad++;
			b.data[i] ^= 0x20;
		}
		test_assert(bad == b.len);
	}
	/* Too short. */
	test_assert(store_cache_parse_record((unsigned char *)b.data, 8,
	    &uid, &vsize, &fieldset, out, STORE_CACHE_FIELD_COUNT) < 0);
	buf_free(&b);

	memset(rec, 0, sizeof(rec));
	{
		int type;
		uint32_t flags;
		uint64_t kw, ms;

		test_assert(store_index_parse_record(rec, &type, &uid, &flags,
		    &kw, &ms) < 0);
	}
	test_end();
}

int
main(void)
{
	log_init("test_store_index", true);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_subject_base();
	test_parsers();
	test_cache_basic();
	test_cache_damage();
	test_cache_compact();
	test_modseq();
	test_uidvalidity();
	test_mbox();
	test_renamed_all();
	if (getenv("TEST_STORE_KEEP") == NULL) {
		char *cmd = xasprintf("rm -rf '%s'", root);

		(void)!system(cmd);
		free(cmd);
	}
	return test_done();
}
