/*
 * Unit tests of the view snapshot of a Maildir folder (store_snap.c):
 * written after a sync of settled directories, taken at the next open
 * only while new/, cur/ and the UID map are as they were (to the
 * nanosecond), rebuilt when it is stale, cut short or damaged, and a
 * view taken from it behaves like one built by listing (new messages get
 * the next UIDs, the cache keeps its records).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_private.h"
#include "test.h"
#include "xmalloc.h"

static char root[] = "/tmp/test_store_snap.XXXXXX";

/* ---- helpers ---- */

static void
write_str(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, strlen(data)) !=
	    (ssize_t)strlen(data)) {
		printf("# cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

static void
make_maildir(const char *dir)
{
	static const char *subs[] = { "cur", "new", "tmp" };
	unsigned int i;

	test_assert(store_mkdirs(dir) == 0);
	for (i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);

		(void)mkdir(p, 0700);
		free(p);
	}
}

/* A delivery as local makes it: tmp/, then rename into sub/. */
static void
deliver(const char *dir, const char *sub, const char *name, const char *msg)
{
	char *tmp = xasprintf("%s/tmp/%s", dir, name);
	char *dst = xasprintf("%s/%s/%s", dir, sub, name);

	write_str(tmp, msg);
	if (rename(tmp, dst) < 0)
		exit(1);
	free(tmp);
	free(dst);
}

static void
mv(const char *dir, const char *from, const char *to)
{
	char *a = xasprintf("%s/%s", dir, from);
	char *b = xasprintf("%s/%s", dir, to);

	test_assert(rename(a, b) == 0);
	free(a);
	free(b);
}

/* Set dir/sub's mtime: sec, nsec. */
static void
set_mtime(const char *dir, const char *sub, time_t sec, long nsec)
{
	struct timespec ts[2];
	char *p = xasprintf("%s/%s", dir, sub);

	ts[0].tv_sec = ts[1].tv_sec = sec;
	ts[0].tv_nsec = ts[1].tv_nsec = nsec;
	test_assert(utimensat(AT_FDCWD, p, ts, 0) == 0);
	free(p);
}

/* new/ and cur/ untouched for a while: what a snapshot needs. */
static void
settle(const char *dir)
{
	set_mtime(dir, "cur", time(NULL) - 100, 0);
	set_mtime(dir, "new", time(NULL) - 100, 0);
}

static struct stat
stat_of(const char *dir, const char *name)
{
	struct stat st;
	char *p = xasprintf("%s/%s", dir, name);

	memset(&st, 0, sizeof(st));
	(void)stat(p, &st);
	free(p);
	return st;
}

static bool
exists(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	bool ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

static struct store_user *
open_user(const char *dir)
{
	struct store_user *u = NULL;
	char *loc = xasprintf("maildir:%s", dir);
	const char *err;

	if (store_user_open(loc, "tester", NULL, &u, &err) < 0)
		printf("# user: %s\n", err);
	free(loc);
	return u;
}

static struct store_mailbox *
open_box(struct store_user *u, unsigned int flags)
{
	struct store_mailbox *mb = NULL;
	const char *err;

	if (store_mailbox_open(u, "INBOX", flags, &mb, &err) < 0)
		printf("# open: %s\n", err);
	return mb;
}

/*
 * The view as one string: "uid:flags" for each message, flags as
 * letters (R recent, S seen, F flagged), e.g. "1:S 2: 3:FR".
 */
static char *
view_str(struct store_mailbox *mb)
{
	struct buf b;
	uint32_t i;

	buf_init(&b, 0);
	for (i = 0; i < store_mailbox_count(mb); i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);

		buf_printf(&b, "%s%u:%s%s%s", i > 0 ? " " : "", m->uid,
		    (m->flags & STORE_FLAGGED) != 0 ? "F" : "",
		    (m->flags & STORE_RECENT) != 0 ? "R" : "",
		    (m->flags & STORE_SEEN) != 0 ? "S" : "");
	}
	return buf_steal(&b);
}

/* Open INBOX, take its view as a string, close. */
static char *
open_view(const char *dir, unsigned int flags)
{
	struct store_user *u = open_user(dir);
	struct store_mailbox *mb = u == NULL ? NULL : open_box(u, flags);
	char *s = mb == NULL ? xstrdup("(open failed)") : view_str(mb);

	store_mailbox_close(&mb);
	store_user_close(&u);
	return s;
}

static void
assert_view(const char *dir, unsigned int flags, const char *want)
{
	char *got = open_view(dir, flags);

	test_assert_streq(got, want);
	free(got);
}

/* A Maildir of three messages, settled, opened once (snapshot made). */
static char *
setup(const char *name)
{
	char *md = xasprintf("%s/%s", root, name);

	make_maildir(md);
	deliver(md, "cur", "700.a.host:2,S", "Subject: a\n\na\n");
	deliver(md, "cur", "701.b.host:2,", "Subject: b\n\nb\n");
	deliver(md, "cur", "702.c.host:2,F", "Subject: c\n\nc\n");
	settle(md);
	assert_view(md, 0, "1:S 2: 3:F");
	test_assert(exists(md, "postern-view"));
	return md;
}

/* ---- tests ---- */

static void
test_used(void)
{
	char *md;
	struct stat cur;
	struct timespec ts[2];
	char *p;

	test_begin("snapshot: taken at the next open while nothing changed");
	md = setup("used");
	/*
	 * mutt marks b seen, and cur/'s mtime is put back as it was: only
	 * a view from the snapshot still shows b unseen (nothing listed).
	 */
	cur = stat_of(md, "cur");
	mv(md, "cur/701.b.host:2,", "cur/701.b.host:2,S");
	p = xasprintf("%s/cur", md);
	ts[0] = cur.st_atim;
	ts[1] = cur.st_mtim;
	test_assert(utimensat(AT_FDCWD, p, ts, 0) == 0);
	free(p);
	assert_view(md, 0, "1:S 2: 3:F");
	/* The real mtime: noticed, listed, right. */
	set_mtime(md, "cur", time(NULL) - 50, 0);
	assert_view(md, 0, "1:S 2:S 3:F");
	test_end();
	free(md);
}

static void
test_stale(void)
{
	struct store_user *u;
	struct store_mailbox *mb;
	struct stat cur;
	char *md, *s;
	int fd;

	test_begin("snapshot: stale stamps are noticed");
	md = setup("stale");
	/* A rename in the same second as the snapshot's stamp: only the
	 * nanoseconds tell. */
	cur = stat_of(md, "cur");
	mv(md, "cur/701.b.host:2,", "cur/701.b.host:2,F");
	set_mtime(md, "cur", cur.st_mtim.tv_sec,
	    (cur.st_mtim.tv_nsec + 1) % 1000000000L);
	assert_view(md, 0, "1:S 2:F 3:F");
	/* A delivery into new/ (a read-only view leaves it there and sees
	 * it \Recent, also when it comes from the snapshot). */
	settle(md);
	assert_view(md, 0, "1:S 2:F 3:F");
	deliver(md, "new", "703.d.host", "Subject: d\n\nd\n");
	assert_view(md, STORE_OPEN_READONLY, "1:S 2:F 3:F 4:R");
	settle(md);
	assert_view(md, STORE_OPEN_READONLY, "1:S 2:F 3:F 4:R");
	assert_view(md, STORE_OPEN_READONLY, "1:S 2:F 3:F 4:R");
	/* A read-write view moves it to cur/: \Recent once. */
	assert_view(md, 0, "1:S 2:F 3:F 4:R");
	settle(md);
	assert_view(md, 0, "1:S 2:F 3:F 4:");
	/* The UID map appended to by another process (a tombstone for b,
	 * as if it had been expunged and its name then came back): only
	 * the map's stamp changed, and b gets a new UID. */
	settle(md);
	assert_view(md, 0, "1:S 2:F 3:F 4:");
	s = xasprintf("%s/postern-uidlist", md);
	fd = open(s, O_WRONLY | O_APPEND);
	test_assert(fd >= 0 && write(fd, "-2\n", 3) == 3);
	close(fd);
	settle(md);
	assert_view(md, 0, "1:S 3:F 4: 5:F");
	assert_view(md, 0, "1:S 3:F 4: 5:F");
	/* The UID map lost: new UIDVALIDITY, never the snapshot's. */
	u = open_user(md);
	mb = u == NULL ? NULL : open_box(u, 0);
	if (mb != NULL) {
		uint32_t uv = store_mailbox_uidvalidity(mb);

		store_mailbox_close(&mb);
		test_assert(unlink(s) == 0);
		sleep(1);	/* UIDVALIDITY is the time */
		mb = open_box(u, 0);
		test_assert(mb != NULL &&
		    store_mailbox_uidvalidity(mb) != uv &&
		    store_mailbox_uidvalidity(mb) != 0 &&
		    store_mailbox_count(mb) == 4);
		store_mailbox_close(&mb);
	}
	store_user_close(&u);
	free(s);
	test_end();
	free(md);
}

static void
test_damaged(void)
{
	static const long cuts[] = { 0, 1, 8, 16, 159, 160, 161, 200, -1 };
	char *md, *path, *data;
	struct stat st;
	size_t i, len;
	int fd;

	test_begin("snapshot: cut short or damaged, rebuilt");
	md = setup("damaged");
	path = xasprintf("%s/postern-view", md);
	st = stat_of(md, "postern-view");
	len = (size_t)st.st_size;
	data = xmalloc(len);
	fd = open(path, O_RDONLY);
	test_assert(fd >= 0 && read(fd, data, len) == (ssize_t)len);
	close(fd);
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t cut = cuts[i] < 0 ? len - 1 : (size_t)cuts[i];

		test_assert(truncate(path, (off_t)cut) == 0);
		assert_view(md, 0, "1:S 2: 3:F");
		/* Written again whole by that open. */
		test_assert((size_t)stat_of(md, "postern-view").st_size ==
		    len);
	}
	/* A byte changed anywhere: the CRC says no. */
	for (i = 8; i < len; i += len / 7) {
		char c = (char)(data[i] ^ 0x20);

		fd = open(path, O_WRONLY);
		test_assert(fd >= 0 && pwrite(fd, &c, 1, (off_t)i) == 1);
		close(fd);
		assert_view(md, 0, "1:S 2: 3:F");
	}
	/* Garbage of the right length. */
	memset(data, 'x', len);
	fd = open(path, O_WRONLY | O_TRUNC);
	test_assert(fd >= 0 && write(fd, data, len) == (ssize_t)len);
	close(fd);
	assert_view(md, 0, "1:S 2: 3:F");
	{
		unsigned char hdr[160];
		struct store_snap_hdr h;

		memset(hdr, 0, sizeof(hdr));
		test_assert(store_snap_parse_header(hdr, &h) < 0);
		memcpy(hdr, "PSTVIEW1", 8);
		hdr[12] = 0xff;		/* count without records */
		hdr[16] = 1;
		test_assert(store_snap_parse_header(hdr, &h) < 0);
	}
	free(data);
	free(path);
	test_end();
	free(md);
}

static void
test_after_load(void)
{
	struct store_user *u;
	struct store_mailbox *mb;
	const char *err, *val;
	size_t len;
	char *md, *s;

	test_begin("snapshot: a view from it gives new UIDs, keeps the cache");
	md = setup("after");
	u = open_user(md);
	mb = u == NULL ? NULL : open_box(u, 0);
	test_assert(mb != NULL);
	if (mb == NULL)
		goto out;
	/* The cache is filled through a view from the snapshot... */
	test_assert(store_msg_cached(mb, 1, STORE_CACHE_ENVELOPE, &val, &len,
	    &err) == 2);
	store_mailbox_close(&mb);
	/* ...and its record is alive for the next one (the UID map was
	 * read for it, not taken as empty). */
	mb = open_box(u, 0);
	test_assert(mb != NULL && store_msg_cached(mb, 1,
	    STORE_CACHE_ENVELOPE, &val, &len, &err) == 1);
	/* A delivery: the next UID, not one the map gave before. */
	deliver(md, "new", "704.e.host", "Subject: e\n\ne\n");
	test_assert(mb != NULL && store_mailbox_sync(mb, NULL, &err) == 0);
	s = mb == NULL ? NULL : view_str(mb);
	test_assert_streq(s, "1:S 2: 3:F 4:R");
	free(s);
	test_assert(mb != NULL && store_mailbox_uidnext(mb) == 5);
	store_mailbox_close(&mb);
out:
	store_user_close(&u);
	test_end();
	free(md);
}

/*
 * Deliveries while views are opened: every view shows UIDs in order and
 * no fewer messages than the one before; after the last delivery, all
 * of them.
 */
static void
test_concurrent(void)
{
	char *md;
	pid_t pid;
	int i, status, bad = 0;
	uint32_t last = 0;

	test_begin("snapshot: deliveries during opens");
	md = setup("conc");
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < 200; i++) {
			char name[64];

			snprintf(name, sizeof(name), "%d.x%d.host", 800 + i, i);
			deliver(md, "new", name, "Subject: x\n\nx\n");
		}
		_exit(0);
	}
	for (i = 0; i < 40; i++) {
		struct store_user *u = open_user(md);
		struct store_mailbox *mb = u == NULL ? NULL :
		    open_box(u, i % 2 == 0 ? STORE_OPEN_READONLY : 0);
		uint32_t j, n = mb == NULL ? 0 : store_mailbox_count(mb);

		if (mb == NULL || n < last)
			bad++;
		for (j = 1; j < n; j++)
			if (store_mailbox_msg(mb, j)->uid <=
			    store_mailbox_msg(mb, j - 1)->uid)
				bad++;
		last = n;
		store_mailbox_close(&mb);
		store_user_close(&u);
	}
	test_assert(waitpid(pid, &status, 0) == pid && status == 0);
	test_assert(bad == 0);
	settle(md);
	{
		struct store_user *u = open_user(md);
		struct store_mailbox *mb = u == NULL ? NULL : open_box(u, 0);

		test_assert(mb != NULL && store_mailbox_count(mb) == 203 &&
		    store_mailbox_msg(mb, 202)->uid == 203);
		store_mailbox_close(&mb);
		/* Again, from the snapshot. */
		mb = u == NULL ? NULL : open_box(u, 0);
		test_assert(mb != NULL && store_mailbox_count(mb) == 203 &&
		    store_mailbox_msg(mb, 202)->uid == 203);
		store_mailbox_close(&mb);
		store_user_close(&u);
	}
	test_end();
	free(md);
}

int
main(void)
{
	char *cmd;

	if (mkdtemp(root) == NULL)
		return 1;
	test_used();
	test_stale();
	test_damaged();
	test_after_load();
	test_concurrent();
	cmd = xasprintf("rm -rf %s", root);
	(void)!system(cmd);
	free(cmd);
	return test_done();
}
