/*
 * Unit tests of the mail store (store/): mail_location parsing, Maildir
 * and mbox mailboxes in a temporary directory, changed behind the
 * store's back the way a delivery, mutt or another Postern process
 * changes them, the UID map and its Dovecot import, the CRLF/unquoting
 * filter, and a 10,000-message Maildir (timed, no assertion on time).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_private.h"
#include "test.h"
#include "xmalloc.h"

static char root[] = "/tmp/test_store.XXXXXX";

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

static void
write_str(const char *path, const char *data)
{
	write_file(path, data, strlen(data));
}

static char *
read_path(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	data = xmalloc((size_t)st.st_size + 1);
	*len_r = (size_t)read(fd, data, (size_t)st.st_size);
	data[*len_r] = '\0';
	close(fd);
	return data;
}

static void
append_str(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);

	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		exit(1);
	close(fd);
}

static void
make_maildir(const char *dir)
{
	char *p;

	test_assert(store_mkdirs(dir) == 0);
	p = xasprintf("%s/cur", dir);
	(void)mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/new", dir);
	(void)mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/tmp", dir);
	(void)mkdir(p, 0700);
	free(p);
}

/* A delivery as local makes it: tmp/, then rename into new/ (or cur/),
 * with the given mtime when mtime > 0. */
static void
deliver(const char *dir, const char *sub, const char *name, const char *msg,
    time_t mtime)
{
	char *tmp = xasprintf("%s/tmp/%s", dir, name);
	char *dst = xasprintf("%s/%s/%s", dir, sub, name);

	write_str(tmp, msg);
	if (mtime > 0) {
		struct timespec ts[2];

		ts[0].tv_sec = ts[1].tv_sec = mtime;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		(void)utimensat(AT_FDCWD, tmp, ts, 0);
	}
	if (rename(tmp, dst) < 0)
		exit(1);
	free(tmp);
	free(dst);
}

/* Find the file of base in dir/cur (or new): its name, malloc'ed. */
static char *
find_file(const char *dir, const char *sub, const char *base)
{
	char *path = xasprintf("%s/%s", dir, sub), *found = NULL;
	size_t blen = strlen(base);
	struct dirent *de;
	DIR *d = opendir(path);

	free(path);
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, blen) == 0 &&
		    (de->d_name[blen] == '\0' || de->d_name[blen] == ':')) {
			found = xstrdup(de->d_name);
			break;
		}
	}
	closedir(d);
	return found;
}

static size_t
count_files(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static size_t
count_sub(const char *dir, const char *sub)
{
	char *p = xasprintf("%s/%s", dir, sub);
	size_t n = count_files(p);

	free(p);
	return n;
}

/* The whole message through store_msg_read, chunk bytes at a time. */
static char *
read_msg(struct store_mailbox *mb, uint32_t idx, size_t chunk,
    size_t *len_r)
{
	struct store_msg_stream *s;
	const char *err;
	struct buf b;
	char *tmp = xmalloc(chunk);
	ssize_t n;

	*len_r = 0;
	if (store_msg_open(mb, idx, &s, &err) < 0) {
		printf("# store_msg_open: %s\n", err);
		free(tmp);
		return NULL;
	}
	buf_init(&b, 0);
	while ((n = store_msg_read(s, tmp, chunk)) > 0)
		buf_append(&b, tmp, (size_t)n);
	store_msg_close(&s);
	free(tmp);
	*len_r = b.len;
	return buf_steal(&b);
}

struct events {
	uint32_t	 expunged_uid[64];
	uint32_t	 expunged_idx[64];
	unsigned int	 n_expunged;
	uint32_t	 changed[64];
	unsigned int	 n_changed;
	uint32_t	 new_count;
	unsigned int	 n_new;
};

static void
ev_expunged(uint32_t idx, uint32_t uid, void *ctx)
{
	struct events *e = ctx;

	if (e->n_expunged < 64) {
		e->expunged_idx[e->n_expunged] = idx;
		e->expunged_uid[e->n_expunged] = uid;
	}
	e->n_expunged++;
}

static void
ev_changed(uint32_t idx, void *ctx)
{
	struct events *e = ctx;

	if (e->n_changed < 64)
		e->changed[e->n_changed] = idx;
	e->n_changed++;
}

static void
ev_new(uint32_t count, void *ctx)
{
	struct events *e = ctx;

	e->new_count = count;
	e->n_new++;
}

static int
sync_ev(struct store_mailbox *mb, struct events *e)
{
	struct store_sync_cb cb = { ev_expunged, ev_changed, ev_new, e };
	const char *err;
	int ret;

	memset(e, 0, sizeof(*e));
	ret = store_mailbox_sync(mb, &cb, &err);
	if (ret < 0)
		printf("# sync: %s\n", err);
	return ret;
}

static struct store_mailbox *
open_box(struct store_user *u, const char *name, unsigned int flags)
{
	struct store_mailbox *mb = NULL;
	const char *err;

	if (store_mailbox_open(u, name, flags, &mb, &err) < 0) {
		printf("# open %s: %s\n", name, err);
		return NULL;
	}
	return mb;
}

static struct store_user *open_user(const char *location, const char *home);

/* open_user() of "maildir:DIR" / "mbox:PATH". */
static struct store_user *
open_user_at(const char *type, const char *path, const char *home)
{
	char *loc = xasprintf("%s:%s", type, path);
	struct store_user *u = open_user(loc, home);

	free(loc);
	return u;
}

static struct store_user *
open_user(const char *location, const char *home)
{
	struct store_user *u = NULL;
	const char *err;

	if (store_user_open(location, "tester", home, &u, &err) < 0) {
		printf("# user: %s\n", err);
		return NULL;
	}
	return u;
}

/* ---- mail_location ---- */

static void
test_location(void)
{
	struct store_location loc;
	const char *err;
	char *spool = xasprintf("%s/spool", root);
	char *mail = xasprintf("%s/home/mail", root);
	char *want;

	test_begin("mail_location parsing");
	test_assert(store_location_parse("maildir:~/Maildir", "u", "/home/u",
	    "/var/mail", &loc, &err) == 0);
	test_assert(loc.format == STORE_FORMAT_MAILDIR);
	test_assert_streq(loc.inbox, "/home/u/Maildir");
	test_assert_streq(loc.root, "/home/u/Maildir");
	store_location_free(&loc);

	test_assert(store_location_parse("mbox:~/mail:INBOX=/var/mail/%u",
	    "u", "/home/u", "/var/mail", &loc, &err) == 0);
	test_assert(loc.format == STORE_FORMAT_MBOX);
	test_assert_streq(loc.inbox, "/var/mail/u");
	test_assert_streq(loc.root, "/home/u/mail");
	test_assert(loc.inbox_in_spool);
	store_location_free(&loc);

	/* A directory without INBOX=: the inbox is the spool file. */
	test_assert(store_mkdirs(mail) == 0);
	want = xasprintf("%s/home", root);
	test_assert(store_location_parse("MBOX:~/mail", "u", want, spool,
	    &loc, &err) == 0);
	free(want);
	want = xasprintf("%s/u", spool);
	test_assert_streq(loc.inbox, want);
	test_assert_streq(loc.root, mail);
	test_assert(loc.inbox_in_spool);
	free(want);
	store_location_free(&loc);

	/* A file (home_mailbox = Mailbox): the inbox, no folders. */
	test_assert(store_location_parse("mbox:~/Mailbox", "u", "/home/u",
	    "/var/mail", &loc, &err) == 0);
	test_assert_streq(loc.inbox, "/home/u/Mailbox");
	test_assert(loc.root == NULL);
	test_assert(!loc.inbox_in_spool);
	store_location_free(&loc);

	test_assert(store_location_parse("mdbox:~/mdbox", "u", "/home/u",
	    "/var/mail", &loc, &err) < 0);
	test_assert_streq(err, "unsupported mail_location: mdbox:~/mdbox");
	test_assert(store_location_parse("maildir:Maildir", "u", "/home/u",
	    "/var/mail", &loc, &err) < 0);
	test_assert_streq(err, "mail_location gives no absolute path for u");
	test_assert(store_location_parse("maildir:", "u", "/home/u",
	    "/var/mail", &loc, &err) < 0);
	test_end();
	free(spool);
	free(mail);
}

/* ---- Maildir ---- */

static void
test_maildir_basic(void)
{
	char *home = xasprintf("%s/h1", root);
	char *md = xasprintf("%s/Maildir", home);
	struct store_user *u;
	struct store_mailbox *mb;
	struct events ev;
	char *f;
	uint32_t uidv;
	time_t now = time(NULL);

	test_begin("maildir: empty, deliveries, stable UIDs");
	test_assert(store_mkdirs(home) == 0);
	u = open_user("maildir:~/Maildir", home);
	test_assert(u != NULL);
	mb = open_box(u, "inbox", 0);
	test_assert(mb != NULL);
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_count(mb) == 0);
	uidv = store_mailbox_uidvalidity(mb);
	test_assert(uidv != 0);
	test_assert(store_mailbox_uidnext(mb) == 1);

	/* Three deliveries; "c" is oldest, so it gets UID 1. */
	deliver(md, "new", "1700000001.a.host,S=10", "Subject: a\n\nA\n",
	    now - 100);
	deliver(md, "new", "1700000002.b.host,S=10", "Subject: b\n\nB\n",
	    now - 50);
	deliver(md, "new", "1700000000.c.host,S=10", "Subject: c\n\nC\n",
	    now - 200);
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_new == 1 && ev.new_count == 3);
	test_assert(ev.n_expunged == 0);
	test_assert(store_mailbox_count(mb) == 3);
	test_assert(store_mailbox_msg(mb, 0)->uid == 1);
	test_assert(store_mailbox_msg(mb, 2)->uid == 3);
	test_assert(store_mailbox_uidnext(mb) == 4);
	test_assert(store_mailbox_recent(mb) == 3);
	test_assert((store_mailbox_msg(mb, 0)->flags & STORE_RECENT) != 0);
	test_assert(store_mailbox_find_uid(mb, 2) == 1);
	test_assert(store_mailbox_find_uid(mb, 9) == -1);
	test_assert(store_mailbox_msg(mb, 0)->internal_date == now - 200);
	test_assert(store_mailbox_msg(mb, 0)->vsize ==
	    strlen("Subject: c\r\n\r\nC\r\n"));
	/* Moved to cur/ with ":2," (read-write open). */
	f = find_file(md, "cur", "1700000000.c.host,S=10");
	test_assert_streq(f, "1700000000.c.host,S=10:2,");
	free(f);
	test_assert(count_sub(md, "new") == 0);
	store_mailbox_close(&mb);

	/* Reopen: the same UIDs, nothing \Recent any more. */
	mb = open_box(u, "INBOX", 0);
	test_assert(mb != NULL);
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_count(mb) == 3);
	test_assert(store_mailbox_uidvalidity(mb) == uidv);
	test_assert(store_mailbox_recent(mb) == 0);
	{
		size_t len;
		char *m = read_msg(mb, 0, 4096, &len);

		test_assert_streq(m, "Subject: c\r\n\r\nC\r\n");
		free(m);
		m = read_msg(mb, 2, 3, &len);
		test_assert_streq(m, "Subject: b\r\n\r\nB\r\n");
		free(m);
	}

	/* Deleted outside (mutt): reported as an expunge. */
	f = xasprintf("%s/cur/1700000001.a.host,S=10:2,", md);
	test_assert(unlink(f) == 0);
	free(f);
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_expunged == 1);
	test_assert(ev.expunged_uid[0] == 2 && ev.expunged_idx[0] == 1);
	test_assert(ev.n_new == 0);
	test_assert(store_mailbox_count(mb) == 2);
	test_assert(store_mailbox_msg(mb, 1)->uid == 3);

	/* Another delivery: the next UID. */
	deliver(md, "new", "1700000003.d.host", "Subject: d\n\nD\n", 0);
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_new == 1 && ev.new_count == 3);
	test_assert(store_mailbox_msg(mb, 2)->uid == 4);
	test_assert(store_mailbox_recent(mb) == 1);
	test_assert(store_mailbox_uidnext(mb) == 5);
	store_mailbox_close(&mb);

	/* The deleted name coming back gets a new UID, never 2 again. */
	deliver(md, "cur", "1700000001.a.host,S=10:2,S", "Subject: a\n\nA\n",
	    0);
	mb = open_box(u, "INBOX", STORE_OPEN_READONLY);
	test_assert(mb != NULL);
	if (mb != NULL) {
		test_assert(store_mailbox_count(mb) == 4);
		test_assert(store_mailbox_msg(mb, 3)->uid == 5);
		test_assert(store_mailbox_find_uid(mb, 2) == -1);
		test_assert(store_mailbox_msg(mb, 3)->flags == STORE_SEEN);
		store_mailbox_close(&mb);
	}
out:
	store_user_close(&u);
	test_end();
	free(home);
	free(md);
}

static void
test_maildir_crlf(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "Subject: lf\n\nline\n", "Subject: lf\r\n\r\nline\r\n" },
		{ "Subject: crlf\r\n\r\nline\r\n",
		    "Subject: crlf\r\n\r\nline\r\n" },
		{ "Subject: mixed\r\n\nbare\rcr\nend", 
		    "Subject: mixed\r\n\r\nbare\rcr\r\nend" },
		{ "\n\n\n", "\r\n\r\n\r\n" },
		{ ">From x\n", ">From x\r\n" },	/* Maildir: no unquoting */
		{ "", "" },
	};
	char *md = xasprintf("%s/crlf", root);
	struct store_user *u;
	struct store_mailbox *mb;
	size_t i;

	test_begin("maildir: CRLF conversion, vsize = bytes read");
	make_maildir(md);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];

		snprintf(name, sizeof(name), "17000000%02zu.x.host", i);
		deliver(md, "cur", name, cases[i].in, 1700000000 + (time_t)i);
	}
	u = open_user_at("maildir", md, "/nonexistent");
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 6);
	for (i = 0; mb != NULL && i < store_mailbox_count(mb); i++) {
		size_t len, len1;
		char *m = read_msg(mb, (uint32_t)i, 65536, &len);
		char *m1 = read_msg(mb, (uint32_t)i, 1, &len1);

		test_assert(m != NULL && m1 != NULL);
		test_assert(len == strlen(cases[i].out));
		test_assert(m != NULL && memcmp(m, cases[i].out, len) == 0);
		test_assert(len1 == len && m1 != NULL &&
		    memcmp(m, m1, len) == 0);
		test_assert(store_mailbox_msg(mb, (uint32_t)i)->vsize == len);
		free(m);
		free(m1);
	}
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
}

static void
test_maildir_flags(void)
{
	char *md = xasprintf("%s/flags", root);
	struct store_user *u;
	struct store_mailbox *mb, *mb2;
	struct events ev;
	const char *err;
	char *f, *kw;

	test_begin("maildir: flags from :2, names, set_flags renames");
	make_maildir(md);
	kw = xasprintf("%s/dovecot-keywords", md);
	write_str(kw, "0 $Forwarded\n1 Junk\n3 work\nbad line\n30 toolarge\n");
	free(kw);
	deliver(md, "cur", "100.a.host:2,FS", "a\n", 1000);
	deliver(md, "cur", "101.b.host:2,PTb", "b\n", 1001);
	deliver(md, "cur", "102.c.host,W=3:2,", "c\n", 1002);
	u = open_user_at("maildir", md, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	mb2 = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && mb2 != NULL);
	if (mb == NULL || mb2 == NULL)
		goto out;
	test_assert(store_mailbox_msg(mb, 0)->flags ==
	    (STORE_FLAGGED | STORE_SEEN));
	test_assert(store_mailbox_msg(mb, 1)->flags == STORE_DELETED);
	test_assert(store_mailbox_msg(mb, 1)->keywords == 2);
	test_assert(store_mailbox_msg(mb, 2)->vsize == 3);
	test_assert_streq(store_keyword_name(mb, 0), "$Forwarded");
	test_assert_streq(store_keyword_name(mb, 1), "Junk");
	test_assert(store_keyword_name(mb, 2) == NULL);
	test_assert_streq(store_keyword_name(mb, 3), "work");
	test_assert(store_keyword_count(mb) == 4);

	/* Add \Answered: R joins the letters, in ASCII order. */
	test_assert(store_msg_set_flags(mb, 0, STORE_ANSWERED, 0, 1,
	    &err) == 0);
	f = find_file(md, "cur", "100.a.host");
	test_assert_streq(f, "100.a.host:2,FRS");
	free(f);
	test_assert(store_mailbox_msg(mb, 0)->flags ==
	    (STORE_FLAGGED | STORE_SEEN | STORE_ANSWERED));
	/* Remove \Seen, add keyword 3 ("work" = letter d). */
	test_assert(store_msg_set_flags(mb, 0, STORE_SEEN, 0, -1, &err) == 0);
	test_assert(store_msg_set_flags(mb, 0, 0, 1ULL << 3, 1, &err) == 0);
	f = find_file(md, "cur", "100.a.host");
	test_assert_streq(f, "100.a.host:2,FRd");
	free(f);
	/* Replace; P (passed) is not ours and stays. */
	test_assert(store_msg_set_flags(mb, 1, STORE_SEEN | STORE_DRAFT, 1,
	    0, &err) == 0);
	f = find_file(md, "cur", "101.b.host");
	test_assert_streq(f, "101.b.host:2,DPSa");
	free(f);
	test_assert(store_mailbox_highestmodseq(mb) > 1);

	/* The other view sees the changes at its sync. */
	test_assert(sync_ev(mb2, &ev) == 0);
	test_assert(ev.n_changed == 2 && ev.changed[0] == 0 &&
	    ev.changed[1] == 1);
	test_assert(store_mailbox_msg(mb2, 0)->flags ==
	    (STORE_FLAGGED | STORE_ANSWERED));
	test_assert(store_mailbox_msg(mb2, 0)->keywords == 8);
	/* Our own changes are no news to us. */
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_changed == 0 && ev.n_expunged == 0 && ev.n_new == 0);

	/* mb2 renames a file mb has not seen renamed: mb still finds it. */
	test_assert(store_msg_set_flags(mb2, 2, STORE_FLAGGED, 0, 1,
	    &err) == 0);
	test_assert(store_msg_set_flags(mb, 2, STORE_SEEN, 0, 1, &err) == 0);
	f = find_file(md, "cur", "102.c.host,W=3");
	test_assert_streq(f, "102.c.host,W=3:2,FS");
	free(f);
	{
		size_t len;
		char *m = read_msg(mb2, 2, 100, &len);	/* renamed since */

		test_assert_streq(m, "c\r\n");
		free(m);
	}

	/* Read-only views refuse changes. */
	store_mailbox_close(&mb2);
	mb2 = open_box(u, "INBOX", STORE_OPEN_READONLY);
	test_assert(mb2 != NULL);
	test_assert(mb2 != NULL && store_msg_set_flags(mb2, 0, STORE_SEEN, 0,
	    1, &err) < 0);
	test_assert(mb2 != NULL && store_mailbox_expunge_uids(mb2,
	    &(uint32_t){ 1 }, 1, &err) < 0);
out:
	store_mailbox_close(&mb);
	store_mailbox_close(&mb2);
	store_user_close(&u);
	test_end();
	free(md);
}

static void
test_maildir_expunge(void)
{
	char *md = xasprintf("%s/exp", root);
	struct store_user *u;
	struct store_mailbox *a, *b;
	struct events ev;
	const char *err;
	uint32_t uids[3];
	int i;

	test_begin("maildir: expunge_uids, two views see each other");
	make_maildir(md);
	for (i = 0; i < 5; i++) {
		char name[32];

		snprintf(name, sizeof(name), "20%d.m.host", i);
		deliver(md, "new", name, "x\n", 2000 + i);
	}
	u = open_user_at("maildir", md, NULL);
	a = u == NULL ? NULL : open_box(u, "INBOX", 0);
	b = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	/* Only the first opener moved the files: \Recent is its own. */
	test_assert(store_mailbox_recent(a) == 5);
	test_assert(store_mailbox_recent(b) == 0);
	uids[0] = 2;
	uids[1] = 4;
	uids[2] = 99;	/* not there: no error */
	test_assert(store_mailbox_expunge_uids(a, uids, 3, &err) == 0);
	test_assert(count_sub(md, "cur") == 3);
	/* Nothing changes in a view before its sync. */
	test_assert(store_mailbox_count(a) == 5);
	test_assert(sync_ev(a, &ev) == 0);
	test_assert(ev.n_expunged == 2);
	test_assert(ev.expunged_idx[0] == 3 && ev.expunged_uid[0] == 4);
	test_assert(ev.expunged_idx[1] == 1 && ev.expunged_uid[1] == 2);
	test_assert(store_mailbox_count(a) == 3);
	test_assert(sync_ev(b, &ev) == 0);
	test_assert(ev.n_expunged == 2 && ev.expunged_uid[0] == 4);
	test_assert(store_mailbox_count(b) == 3);
	test_assert(store_mailbox_msg(b, 2)->uid == 5);

	/* b expunges what a flagged meanwhile (renamed under b). */
	test_assert(store_msg_set_flags(a, 0, STORE_DELETED, 0, 1, &err) == 0);
	uids[0] = 1;
	test_assert(store_mailbox_expunge_uids(b, uids, 1, &err) == 0);
	test_assert(sync_ev(a, &ev) == 0);
	test_assert(ev.n_expunged == 1 && ev.expunged_uid[0] == 1);
	test_assert(count_sub(md, "cur") == 2);
out:
	store_mailbox_close(&a);
	store_mailbox_close(&b);
	store_user_close(&u);
	test_end();
	free(md);
}

static void
test_maildir_folders(void)
{
	char *home = xasprintf("%s/h2", root);
	char *md = xasprintf("%s/Maildir", home);
	char *sub = xasprintf("%s/.Work.2024", md);
	struct store_user *u;
	struct store_mailbox *mb;
	const char *err;

	test_begin("maildir: Maildir++ folders, bad names");
	make_maildir(md);
	make_maildir(sub);
	deliver(sub, "new", "300.f.host", "folder\n", 0);
	u = open_user("maildir:~/Maildir", home);
	test_assert(u != NULL);
	mb = open_box(u, "Work/2024", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 1);
	store_mailbox_close(&mb);
	test_assert(store_mailbox_open(u, "Nope", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "a.b", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "../x", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "Work//2024", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "/Work", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "Work/", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "", 0, &mb, &err) < 0);
	test_assert(store_mailbox_open(u, "a\tb", 0, &mb, &err) < 0);
	store_user_close(&u);
	test_end();
	free(home);
	free(md);
	free(sub);
}

static void
test_dovecot_import(void)
{
	char *md = xasprintf("%s/dove", root);
	char *md1 = xasprintf("%s/dove1", root);
	char *p;
	struct store_user *u;
	struct store_mailbox *mb;
	char uidl[32];

	test_begin("maildir: dovecot-uidlist v3 and v1 import");
	make_maildir(md);
	deliver(md, "cur", "1511442247.M1P1.mail,S=201,W=206:2,S",
	    "first\n", 100);
	deliver(md, "cur", "1511442438.M2P2.mail,S=201:2,", "second\n", 200);
	deliver(md, "new", "1511442999.M3P3.mail", "third\n", 300);
	deliver(md, "new", "1511443000.M4P4.mail", "unknown\n", 50);
	p = xasprintf("%s/dovecot-uidlist", md);
	write_str(p, "3 V1446660062 N893 Gc9411e16de473a566f06000061f01900\n"
	    "889 :1511442000.gone.mail,S=10\n"
	    "891 :1511442247.M1P1.mail,S=201,W=206\n"
	    "892 W9 S7 :1511442438.M2P2.mail,S=201\n"
	    "bad line\n"
	    "890 :1511442999.M3P3.mail\n"
	    "999 :torn-without-lf");
	free(p);
	u = open_user_at("maildir", md, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL);
	if (mb != NULL) {
		test_assert(store_mailbox_uidvalidity(mb) == 1446660062);
		test_assert(store_mailbox_count(mb) == 4);
		test_assert(store_mailbox_msg(mb, 0)->uid == 890);
		test_assert(store_mailbox_msg(mb, 1)->uid == 891);
		test_assert(store_mailbox_msg(mb, 2)->uid == 892);
		/* The unknown file: after N, never below a Dovecot UID. */
		test_assert(store_mailbox_msg(mb, 3)->uid == 893);
		test_assert(store_mailbox_uidnext(mb) == 894);
		/* W from the name and from the uidlist line (trusted as
		 * Dovecot trusts it), computed for the third. */
		test_assert(store_mailbox_msg(mb, 1)->vsize == 206);
		test_assert(store_mailbox_msg(mb, 2)->vsize == 9);
		test_assert(store_mailbox_msg(mb, 0)->vsize == 7);
		test_assert(store_mailbox_msg(mb, 0)->internal_date == 300);
		/* POP3 UIDL %08Xu%08Xv as Dovecot makes it. */
		snprintf(uidl, sizeof(uidl), "%08X%08X",
		    store_mailbox_msg(mb, 1)->uid,
		    store_mailbox_uidvalidity(mb));
		test_assert_streq(uidl, "0000037B563A47DE");
		store_mailbox_close(&mb);
	}
	/* Reopen: our map now, same UIDs. */
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_msg(mb, 0)->uid == 890 &&
	    store_mailbox_uidvalidity(mb) == 1446660062);
	store_mailbox_close(&mb);
	store_user_close(&u);

	/* A header and no records (regression: qsort of nothing). */
	{
		char *md2 = xasprintf("%s/dove2", root);

		make_maildir(md2);
		deliver(md2, "cur", "1.x.host:2,", "x\n", 100);
		p = xasprintf("%s/dovecot-uidlist", md2);
		write_str(p, "3 V77 N40\n");
		free(p);
		u = open_user_at("maildir", md2, NULL);
		mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
		test_assert(mb != NULL && store_mailbox_uidvalidity(mb) == 77 &&
		    store_mailbox_count(mb) == 1 &&
		    store_mailbox_msg(mb, 0)->uid == 40);
		store_mailbox_close(&mb);
		store_user_close(&u);
		free(md2);
	}

	/* Version 1 (Courier-compatible). */
	make_maildir(md1);
	deliver(md1, "cur", "1000.a.host:2,S", "v1\n", 100);
	p = xasprintf("%s/dovecot-uidlist", md1);
	write_str(p, "1 1234567 12\n7 1000.a.host:2,S\n");
	free(p);
	u = open_user_at("maildir", md1, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 1 &&
	    store_mailbox_msg(mb, 0)->uid == 7 &&
	    store_mailbox_uidvalidity(mb) == 1234567 &&
	    store_mailbox_uidnext(mb) == 12);
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(md1);
}

static void
test_uidlist_torn(void)
{
	char *md = xasprintf("%s/torn", root);
	char *map = xasprintf("%s/postern-uidlist", md);
	struct store_user *u;
	struct store_mailbox *mb;
	char *data;
	size_t len;

	test_begin("uidlist: torn append ignored and cut off, bad lines");
	make_maildir(md);
	deliver(md, "cur", "400.a.host:2,", "a\n", 400);
	u = open_user_at("maildir", md, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 1);
	store_mailbox_close(&mb);
	/* A crash in the middle of an append by another process. */
	append_str(map, "2 W2 M401 :401.b.ho");
	deliver(md, "cur", "401.b.host:2,", "b\n", 401);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 2);
	test_assert(mb != NULL && store_mailbox_msg(mb, 1)->uid == 2);
	store_mailbox_close(&mb);
	data = read_path(map, &len);
	test_assert(data != NULL && strstr(data, ":401.b.ho2") == NULL);
	test_assert(data != NULL && strstr(data, ":401.b.host\n") != NULL);
	test_assert(data != NULL && data[len - 1] == '\n');
	free(data);
	/* A damaged line in the middle is skipped, the rest read. */
	append_str(map, "zz garbage\n");
	deliver(md, "cur", "402.c.host:2,", "c\n", 402);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 3 &&
	    store_mailbox_msg(mb, 2)->uid == 3);
	store_mailbox_close(&mb);
	/* A damaged header: set aside, new UIDVALIDITY, mail still there. */
	write_str(map, "garbage\n");
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 3);
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(map);
}

static void
test_uidlist_parse(void)
{
	struct store_uidhdr h;
	struct store_uidline l;

	test_begin("uidlist: line parsers");
	test_assert(store_uidlist_parse_header("postern-uidlist 1 V5 N7", 23,
	    &h) == 0 && h.uidvalidity == 5 && h.next_uid == 7);
	test_assert(store_uidlist_parse_header("postern-uidlist 1 V0 N7", 23,
	    &h) < 0);
	test_assert(store_uidlist_parse_header("postern-uidlist 1 V5", 20,
	    &h) < 0);
	test_assert(store_uidlist_parse_header("postern-uidlist 1 V99999999999 "
	    "N1", 33, &h) < 0);
	test_assert(store_uidlist_parse_line("12 W34 M5 X9 :a b:2", 19,
	    &l) == 0 && l.rec.uid == 12 && l.rec.vsize == 34 &&
	    l.rec.mtime == 5 && l.keylen == 5 &&
	    memcmp(l.rec.key, "a b:2", 5) == 0);
	test_assert(store_uidlist_parse_line("-12", 3, &l) == 0 &&
	    l.type == STORE_UIDLINE_TOMBSTONE && l.rec.uid == 12);
	test_assert(store_uidlist_parse_line("0 :x", 4, &l) < 0);
	test_assert(store_uidlist_parse_line("4294967295 :x", 13, &l) < 0);
	test_assert(store_uidlist_parse_line("5 :", 3, &l) < 0);
	test_assert(store_uidlist_parse_line("5 W :x", 6, &l) < 0);
	test_assert(store_uidlist_parse_line("5 Kffffffffffffffffff :x", 24,
	    &l) < 0);
	test_assert(store_uidlist_parse_line("5 F3 H1 Kff :x", 14, &l) == 0 &&
	    l.rec.has_flags && l.rec.flags == 3 && l.rec.hdr_flags == 1 &&
	    l.rec.keywords == 0xff);
	test_assert(store_dovecot_parse_header("3 V1 N2 Gab", 11, &h) == 0 &&
	    h.version == 3 && h.uidvalidity == 1 && h.next_uid == 2);
	test_assert(store_dovecot_parse_header("2 V1 N2", 7, &h) < 0);
	test_assert(store_dovecot_parse_line(3, "5 W10 S9 :n:2,S", 15,
	    &l) == 0 && l.rec.vsize == 10 && l.keylen == 1);
	test_assert(store_dovecot_parse_line(1, "5 name", 6, &l) == 0 &&
	    l.keylen == 4);
	test_assert(store_dovecot_parse_line(3, "5 W10", 5, &l) < 0);
	test_end();
}

/* ---- the filter ---- */

/* The rules written out simply, line by line, as a reference. */
static char *
reference_filter(const char *in, size_t len, bool unquote, size_t *len_r)
{
	struct buf b;
	size_t i = 0;

	buf_init(&b, 0);
	while (i < len) {
		const char *nl = memchr(in + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - in) : len, gt = 0, j;

		for (j = i; j < end && in[j] == '>'; j++)
			gt++;
		if (unquote && gt > 0 && end - j >= 5 &&
		    memcmp(in + j, "From ", 5) == 0)
			i++;	/* drop one '>' */
		buf_append(&b, in + i, end - i);
		if (nl != NULL) {
			if (end == 0 || in[end - 1] != '\r' || end == i)
				buf_append(&b, "\r\n", 2);
			else
				buf_append(&b, "\n", 1);
			/* an empty line after CR: "\r" was the previous
			 * line's, handled above */
		}
		i = end + 1;
	}
	*len_r = b.len;
	return buf_steal(&b);
}

static void
test_filter(void)
{
	static const char alphabet[] = ">>>From \n\r\nxF";
	unsigned int seed = 12345, round;
	bool ok = true;

	test_begin("filter: random input, any cut, equals the reference");
	for (round = 0; round < 3000 && ok; round++) {
		char in[200], *ref;
		char out[400], out1[400];
		size_t len = (size_t)(rand_r(&seed) % sizeof(in)), i, reflen;
		size_t olen, o1 = 0, pos = 0, n, w;
		bool unquote = (round & 1) != 0;
		struct store_filter f;

		for (i = 0; i < len; i++)
			in[i] = alphabet[rand_r(&seed) %
			    (sizeof(alphabet) - 1)];
		/* Reference semantics need "\r\n" judged on raw bytes: a
		 * line "\r" followed by LF is CRLF. */
		ref = reference_filter(in, len, unquote, &reflen);
		/* All at once. */
		store_filter_init(&f, unquote);
		n = store_filter_run(&f, in, len, out, sizeof(out), &olen);
		olen += store_filter_finish(&f, out + olen,
		    sizeof(out) - olen);
		if (n != len || olen != reflen || memcmp(out, ref, olen) != 0)
			ok = false;
		/* Random input and output cuts. */
		store_filter_init(&f, unquote);
		while (pos < len || store_filter_pending(&f)) {
			size_t icut = 1 + (size_t)rand_r(&seed) % 7;
			size_t ocut = 1 + (size_t)rand_r(&seed) % 5;

			if (icut > len - pos)
				icut = len - pos;
			if (pos < len) {
				n = store_filter_run(&f, in + pos, icut,
				    out1 + o1, ocut, &w);
				pos += n;
			} else
				w = store_filter_finish(&f, out1 + o1, ocut);
			o1 += w;
			if (o1 > sizeof(out1) - 8) {
				ok = false;
				break;
			}
		}
		if (o1 != reflen || memcmp(out1, ref, o1) != 0)
			ok = false;
		/* Counting mode agrees. */
		store_filter_init(&f, unquote);
		(void)store_filter_run(&f, in, len, NULL, 0, &w);
		(void)store_filter_finish(&f, NULL, 0);
		if (f.out_count != reflen)
			ok = false;
		if (!ok)
			printf("# round %u (unquote %d) differs\n", round,
			    unquote);
		free(ref);
	}
	test_assert(ok);
	test_end();
}

/* ---- mbox ---- */

static const char mbox3[] =
    "From alice@example.test Mon Nov 20 10:00:00 2023\n"
    "Return-Path: <alice@example.test>\n"
    "Message-ID: <1@example.test>\n"
    "Status: RO\n"
    "Subject: one\n"
    "\n"
    "first body\n"
    ">From the start of a line\n"
    ">>From deeper\n"
    "From inside (mboxo did not quote it, no blank line before)\n"
    "\n"
    "From bob@example.test Mon Nov 20 11:00:00 2023\n"
    "Message-ID: <2@example.test>\n"
    "X-Status: AF\n"
    "Subject: two\n"
    "\n"
    "second body\n"
    "\n"
    "From carol@example.test Mon Nov 20 12:00:00 2023\n"
    "Message-ID: <3@example.test>\n"
    "Subject: three\n"
    "\n"
    "third body\r\n"
    "\n";

static void
test_mbox(void)
{
	char *home = xasprintf("%s/h3", root);
	char *spool = xasprintf("%s/spool", root);
	char *inbox = xasprintf("%s/tester", spool);
	char *loc = xasprintf("mbox:~/mail:INBOX=%s", inbox);
	char *mail = xasprintf("%s/mail", home);
	struct store_user *u;
	struct store_mailbox *mb, *mb2;
	struct events ev;
	const char *err, *second;
	char *m, *data;
	size_t len;
	uint32_t uidv;

	test_begin("mbox: messages, quoting, UIDs across outside changes");
	test_assert(store_mkdirs(mail) == 0 && store_mkdirs(spool) == 0);
	u = open_user(loc, home);
	test_assert(u != NULL);
	if (u == NULL)
		goto out;
	/* No mail yet: an empty INBOX. */
	mb = open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 0);
	store_mailbox_close(&mb);

	write_str(inbox, mbox3);
	mb = open_box(u, "INBOX", 0);
	test_assert(mb != NULL);
	if (mb == NULL)
		goto out;
	uidv = store_mailbox_uidvalidity(mb);
	test_assert(store_mailbox_count(mb) == 3);
	test_assert(store_mailbox_msg(mb, 0)->uid == 1);
	test_assert(store_mailbox_msg(mb, 2)->uid == 3);
	test_assert(store_mailbox_msg(mb, 0)->flags ==
	    (STORE_SEEN | STORE_RECENT));
	test_assert((store_mailbox_msg(mb, 1)->flags & ~STORE_RECENT) ==
	    (STORE_ANSWERED | STORE_FLAGGED));
	test_assert(store_mailbox_msg(mb, 0)->internal_date != 0);
	m = read_msg(mb, 0, 5, &len);
	test_assert_streq(m, "Return-Path: <alice@example.test>\r\n"
	    "Message-ID: <1@example.test>\r\n"
	    "Status: RO\r\n"
	    "Subject: one\r\n"
	    "\r\n"
	    "first body\r\n"
	    "From the start of a line\r\n"
	    ">From deeper\r\n"
	    "From inside (mboxo did not quote it, no blank line before)\r\n");
	test_assert(len == store_mailbox_msg(mb, 0)->vsize);
	free(m);
	m = read_msg(mb, 2, 4096, &len);
	test_assert_streq(m, "Message-ID: <3@example.test>\r\n"
	    "Subject: three\r\n\r\nthird body\r\n");
	test_assert(len == store_mailbox_msg(mb, 2)->vsize);
	free(m);
	m = read_msg(mb, 1, 1, &len);
	test_assert(len == store_mailbox_msg(mb, 1)->vsize);
	free(m);
	store_mailbox_close(&mb);

	/* mutt deletes the middle one and marks the first read anew. */
	second = strstr(mbox3, "From bob");
	data = xasprintf("%.*s%s", (int)(second - mbox3), mbox3,
	    strstr(mbox3, "From carol"));
	{
		/* Marked unread: the headers (and the size) change, the
		 * UID does not. */
		char *st = strstr(data, "Status: RO\n"), *nd;

		nd = xasprintf("%.*sStatus: O\n%s", (int)(st - data), data,
		    st + 11);
		free(data);
		data = nd;
	}
	mb = open_box(u, "INBOX", 0);
	mb2 = open_box(u, "INBOX", 0);
	test_assert(mb != NULL && mb2 != NULL);
	if (mb == NULL || mb2 == NULL)
		goto out;
	write_str(inbox, data);
	free(data);
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_expunged == 1 && ev.expunged_uid[0] == 2 &&
	    ev.expunged_idx[0] == 1);
	test_assert(ev.n_changed == 1 && ev.changed[0] == 0);
	test_assert(store_mailbox_msg(mb, 0)->flags == 0);
	test_assert(store_mailbox_count(mb) == 2);
	test_assert(store_mailbox_msg(mb, 0)->uid == 1);
	test_assert(store_mailbox_msg(mb, 1)->uid == 3);
	test_assert(store_mailbox_uidvalidity(mb) == uidv);

	/* A delivery appended: the next UID. */
	append_str(inbox, "From dave@example.test Mon Nov 20 13:00:00 2023\n"
	    "Subject: four\n\n>From quoted\n\n");
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_new == 1 && ev.new_count == 3);
	test_assert(store_mailbox_msg(mb, 2)->uid == 4);
	m = read_msg(mb, 2, 7, &len);
	test_assert_streq(m, "Subject: four\r\n\r\nFrom quoted\r\n");
	test_assert(len == store_mailbox_msg(mb, 2)->vsize);
	free(m);

	/* Flags: kept in the map, seen by the other view. */
	test_assert(store_msg_set_flags(mb, 1, STORE_FLAGGED | STORE_DELETED,
	    0, 1, &err) == 0);
	test_assert(sync_ev(mb2, &ev) == 0);
	test_assert(store_mailbox_count(mb2) == 3);
	test_assert(ev.n_expunged == 1 && ev.n_new == 1);
	test_assert(ev.n_changed == 2 && ev.changed[0] == 0 &&
	    ev.changed[1] == 1);
	test_assert((store_mailbox_msg(mb2, 1)->flags & ~STORE_RECENT) ==
	    (STORE_FLAGGED | STORE_DELETED));

	/* Expunge through the store: the file is rewritten in place. */
	test_assert(store_mailbox_expunge_uids(mb2, &(uint32_t){ 3 }, 1,
	    &err) == 0);
	data = read_path(inbox, &len);
	test_assert(data != NULL && strstr(data, "carol") == NULL &&
	    strstr(data, "alice") != NULL && strstr(data, "dave") != NULL);
	test_assert(data != NULL && strstr(data, "\n\nFrom dave") != NULL);
	free(data);
	test_assert(sync_ev(mb, &ev) == 0);
	test_assert(ev.n_expunged == 1 && ev.expunged_uid[0] == 3);
	test_assert(store_mailbox_count(mb) == 2 &&
	    store_mailbox_msg(mb, 1)->uid == 4);
	m = read_msg(mb, 1, 4096, &len);
	test_assert_streq(m, "Subject: four\r\n\r\nFrom quoted\r\n");
	free(m);
	test_assert(sync_ev(mb2, &ev) == 0 && ev.n_expunged == 1);

	/* A message moved by a rewrite since the last sync: an error,
	 * not somebody else's bytes. */
	write_str(inbox, "From x Mon Nov 20 14:00:00 2023\n\nnew\n\n");
	{
		struct store_msg_stream *s;

		test_assert(store_msg_open(mb, 1, &s, &err) < 0);
	}
	store_mailbox_close(&mb);
	store_mailbox_close(&mb2);

	/* Folders live in ~/mail; the maps in ~/mail/.postern. */
	data = xasprintf("%s/Sent", mail);
	write_str(data, "From me Mon Nov 20 14:00:00 2023\nSubject: s\n\nx\n");
	free(data);
	mb = open_box(u, "Sent", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 1);
	if (mb != NULL) {
		m = read_msg(mb, 0, 100, &len);
		/* No final blank line: the last line is still part of it. */
		test_assert_streq(m, "Subject: s\r\n\r\nx\r\n");
		free(m);
	}
	store_mailbox_close(&mb);
	test_assert(store_mailbox_open(u, ".postern/INBOX.uidlist", 0, &mb,
	    &err) < 0);
	data = xasprintf("%s/.postern/INBOX.uidlist", mail);
	test_assert(access(data, F_OK) == 0);
	free(data);
out:
	store_user_close(&u);
	test_end();
	free(home);
	free(spool);
	free(inbox);
	free(loc);
	free(mail);
}

static void
test_mbox_duplicates(void)
{
	char *path = xasprintf("%s/dups", root);
	char *loc = xasprintf("mbox:%s", path);
	static const char one[] =
	    "From a Mon Nov 20 10:00:00 2023\nSubject: same\n\nbody\n\n";
	struct store_user *u;
	struct store_mailbox *mb;
	struct events ev;
	char *data;

	test_begin("mbox: identical copies, garbage before the first From");
	data = xasprintf("junk line\n\n%s%s%s", one, one, one);
	write_str(path, data);
	free(data);
	u = open_user(loc, root);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 3);
	if (mb != NULL) {
		/* One copy removed: two remain, nothing else renumbered. */
		data = xasprintf("%s%s", one, one);
		write_str(path, data);
		free(data);
		test_assert(sync_ev(mb, &ev) == 0);
		test_assert(ev.n_expunged == 1 && ev.expunged_uid[0] == 3);
		test_assert(store_mailbox_count(mb) == 2);
	}
	store_mailbox_close(&mb);
	store_user_close(&u);
	/* A single-file location and no home: nowhere for the UID map. */
	u = open_user(loc, NULL);
	test_assert(u != NULL);
	if (u != NULL) {
		const char *err;
		int nul = open("/dev/null", O_RDONLY);

		/* fd 0 open, to see that the failed open leaves it alone
		 * (regression: an unset lock descriptor 0 was closed). */
		test_assert(nul >= 0 && dup2(nul, 0) == 0);
		if (nul > 0)
			close(nul);
		test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &err) < 0);
		test_assert(strstr(err, "no directory for the UID map") !=
		    NULL);
		test_assert(fcntl(0, F_GETFD) >= 0);
	}
	store_user_close(&u);
	test_end();
	free(path);
	free(loc);
}

static void
test_mbox_recover(void)
{
	char *path = xasprintf("%s/rec", root);
	char *home = xasprintf("%s/h4", root);
	char *loc = xasprintf("mbox:%s", path);
	char *backup = xasprintf("%s/.postern/INBOX.expunge", home);
	static const char a[] = "From a Mon Nov 20 10:00:00 2023\n\nA\n\n";
	static const char b[] = "From b Mon Nov 20 10:00:00 2023\n\nB\n\n";
	static const char c[] = "From c Mon Nov 20 10:00:00 2023\n\nC\n\n";
	struct store_user *u;
	struct store_mailbox *mb;
	char hdr[256], *data, *want;
	size_t len;
	int fd;

	test_begin("mbox: an expunge interrupted by a crash is completed");
	test_assert(store_mkdirs(home) == 0);
	/* The mbox of a crash while b was being removed: a, then c
	 * partly copied over b, old size. */
	data = xasprintf("%s%s%s", a, b, c);
	len = strlen(data);
	memcpy(data + strlen(a), "From c Mon", 10);
	write_str(path, data);
	free(data);
	data = xasprintf("%s/.postern", home);
	test_assert(store_mkdirs(data) == 0);
	free(data);
	fd = open(backup, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	snprintf(hdr, sizeof(hdr), "postern-mbox-expunge 1 O%020zu S%020zu "
	    "L%020zu\n", strlen(a), len, strlen(c));
	test_assert(write(fd, hdr, strlen(hdr)) == (ssize_t)strlen(hdr));
	test_assert(write(fd, c, strlen(c)) == (ssize_t)strlen(c));
	close(fd);
	u = open_user(loc, home);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 2);
	store_mailbox_close(&mb);
	data = read_path(path, &len);
	want = xasprintf("%s%s", a, c);
	test_assert_streq(data, want);
	test_assert(access(backup, F_OK) < 0);
	free(data);
	free(want);
	store_user_close(&u);
	test_end();
	free(path);
	free(home);
	free(loc);
	free(backup);
}

static void
set_mtime(const char *dir, const char *sub, time_t t)
{
	struct timespec ts[2];
	char *p = xasprintf("%s/%s", dir, sub);

	ts[0].tv_sec = ts[1].tv_sec = t;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	(void)utimensat(AT_FDCWD, p, ts, 0);
	free(p);
}

static void
test_maildir_quiet(void)
{
	char *md = xasprintf("%s/quiet", root);
	struct store_user *u;
	struct store_mailbox *mb;
	struct events ev;
	char *from, *to;

	test_begin("maildir: a sync with nothing changed, then changes");
	make_maildir(md);
	deliver(md, "cur", "600.a.host:2,", "a\n", 600);
	deliver(md, "cur", "601.b.host:2,", "b\n", 601);
	u = open_user_at("maildir", md, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 2);
	if (mb == NULL)
		goto out;
	/* Directories untouched for a while: the quick check applies. */
	set_mtime(md, "cur", time(NULL) - 100);
	set_mtime(md, "new", time(NULL) - 100);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_new == 0);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_new == 0 &&
	    ev.n_changed == 0 && ev.n_expunged == 0);
	/* A delivery changes new/: seen. */
	deliver(md, "new", "602.c.host", "c\n", 0);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_new == 1 &&
	    store_mailbox_count(mb) == 3);
	set_mtime(md, "cur", time(NULL) - 100);
	set_mtime(md, "new", time(NULL) - 100);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_new == 0);
	/* mutt marks a message read: cur/ changes, seen. */
	from = xasprintf("%s/cur/600.a.host:2,", md);
	to = xasprintf("%s/cur/600.a.host:2,S", md);
	test_assert(rename(from, to) == 0);
	free(from);
	free(to);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_changed == 1 &&
	    ev.changed[0] == 0);
	test_assert(store_mailbox_msg(mb, 0)->flags == STORE_SEEN);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
}

static void
test_mbox_expunge_ends(void)
{
	char *path = xasprintf("%s/ends", root);
	char *home = xasprintf("%s/h5", root);
	static const char a[] = "From a Mon Nov 20 10:00:00 2023\n\nA\n\n";
	static const char b[] = "From b Mon Nov 20 10:00:00 2023\n\nB\n\n";
	static const char c[] = "From c Mon Nov 20 10:00:00 2023\n\nC\n\n";
	struct store_user *u;
	struct store_mailbox *mb;
	struct events ev;
	const char *err;
	char *data;
	size_t len;

	test_begin("mbox: expunge of the first and the last message");
	test_assert(store_mkdirs(home) == 0);
	data = xasprintf("%s%s%s", a, b, c);
	write_str(path, data);
	free(data);
	u = open_user_at("mbox", path, home);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL && store_mailbox_count(mb) == 3);
	if (mb == NULL)
		goto out;
	test_assert(store_mailbox_expunge_uids(mb, (uint32_t[]){ 1, 3 }, 2,
	    &err) == 0);
	data = read_path(path, &len);
	test_assert_streq(data, b);
	free(data);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_expunged == 2);
	test_assert(store_mailbox_count(mb) == 1 &&
	    store_mailbox_msg(mb, 0)->uid == 2);
	/* Everything: an empty file. */
	test_assert(store_mailbox_expunge_uids(mb, (uint32_t[]){ 2 }, 1,
	    &err) == 0);
	data = read_path(path, &len);
	test_assert(data != NULL && len == 0);
	free(data);
	test_assert(sync_ev(mb, &ev) == 0 && ev.n_expunged == 1 &&
	    store_mailbox_count(mb) == 0);
	/* The backup is gone after a good expunge. */
	data = xasprintf("%s/.postern/INBOX.expunge", home);
	test_assert(access(data, F_OK) < 0);
	free(data);
out:
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(path);
	free(home);
}

/* ---- processes, notification, size ---- */

static void
test_concurrent(void)
{
	char *md = xasprintf("%s/conc", root);
	char *loc = xasprintf("maildir:%s", md);
	struct store_user *u;
	struct store_mailbox *mb;
	uint32_t i, prev = 0;
	bool ok = true;
	pid_t pids[3];
	int k, status;

	test_begin("maildir: three processes give UIDs at once, none twice");
	make_maildir(md);
	for (k = 0; k < 3; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			struct store_user *cu = open_user(loc, NULL);
			struct store_mailbox *cm = cu == NULL ? NULL :
			    open_box(cu, "INBOX", 0);
			int j;

			for (j = 0; j < 40 && cm != NULL; j++) {
				char name[64];
				const char *err;

				snprintf(name, sizeof(name), "%d.P%dQ%d.host",
				    1000 + j, k, j);
				deliver(md, "new", name, "m\n", 0);
				if (store_mailbox_sync(cm, NULL, &err) < 0)
					_exit(1);
			}
			store_mailbox_close(&cm);
			store_user_close(&cu);
			_exit(j == 40 ? 0 : 1);
		}
	}
	for (k = 0; k < 3; k++) {
		test_assert(waitpid(pids[k], &status, 0) == pids[k]);
		test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	u = open_user(loc, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	test_assert(mb != NULL);
	if (mb != NULL) {
		test_assert(store_mailbox_count(mb) == 120);
		for (i = 0; i < store_mailbox_count(mb); i++) {
			if (store_mailbox_msg(mb, i)->uid <= prev)
				ok = false;
			prev = store_mailbox_msg(mb, i)->uid;
		}
		test_assert(ok);
		/* At least one UID each; more only when a view had to
		 * renumber a file it saw late (readdir racing a rename). */
		test_assert(store_mailbox_uidnext(mb) >= 121);
		if (store_mailbox_uidnext(mb) != 121)
			printf("# uidnext %u\n", store_mailbox_uidnext(mb));
	}
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
	free(loc);
}

static void
test_notify(void)
{
	char *md = xasprintf("%s/notify", root);
	char *mboxp = xasprintf("%s/notify.mbox", root);
	struct store_user *u, *u2;
	struct store_mailbox *mb, *mb2;
	struct pollfd pfd;
	int fd;

	test_begin("notify fd: inotify on new/, cur/ and the mbox");
	make_maildir(md);
	u = open_user_at("maildir", md, NULL);
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	fd = mb == NULL ? -1 : store_mailbox_notify_fd(mb);
	test_assert(fd >= 0);
	pfd.fd = fd;
	pfd.events = POLLIN;
	test_assert(poll(&pfd, 1, 0) == 0);
	deliver(md, "new", "500.n.host", "n\n", 0);
	test_assert(poll(&pfd, 1, 1000) == 1);
	test_assert(mb != NULL && store_mailbox_sync(mb, NULL,
	    &(const char *){ NULL }) == 0 && store_mailbox_count(mb) == 1);
	/* The sync read the events (our own rename may add one more). */
	store_mailbox_close(&mb);
	store_user_close(&u);

	write_str(mboxp, "");
	u2 = open_user_at("mbox", mboxp, root);
	mb2 = u2 == NULL ? NULL : open_box(u2, "INBOX", 0);
	fd = mb2 == NULL ? -1 : store_mailbox_notify_fd(mb2);
	test_assert(fd >= 0);
	pfd.fd = fd;
	test_assert(poll(&pfd, 1, 0) == 0);
	append_str(mboxp, "From x Mon Nov 20 10:00:00 2023\n\nx\n\n");
	test_assert(poll(&pfd, 1, 1000) == 1);
	test_assert(mb2 != NULL && store_mailbox_sync(mb2, NULL,
	    &(const char *){ NULL }) == 0 && store_mailbox_count(mb2) == 1);
	test_assert(poll(&pfd, 1, 0) == 0);
	store_mailbox_close(&mb2);
	store_user_close(&u2);
	test_end();
	free(md);
	free(mboxp);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_big(void)
{
	char *md = xasprintf("%s/big", root);
	struct store_user *u;
	struct store_mailbox *mb;
	double t0, t1, t2;
	struct events ev;
	int i;

	test_begin("maildir: 10,000 messages (times printed)");
	make_maildir(md);
	for (i = 0; i < 10000; i++) {
		char *p = xasprintf("%s/cur/%d.M%dP1.host,S=40:2,S", md,
		    1700000000 + i, i);

		write_str(p, "Subject: bulk\nTo: x@example.test\n\nbody\n");
		free(p);
	}
	u = open_user_at("maildir", md, NULL);
	t0 = now_s();
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	t1 = now_s();
	test_assert(mb != NULL && store_mailbox_count(mb) == 10000);
	store_mailbox_close(&mb);
	t1 = now_s() - t0;
	t0 = now_s();
	mb = u == NULL ? NULL : open_box(u, "INBOX", 0);
	t2 = now_s() - t0;
	test_assert(mb != NULL && store_mailbox_count(mb) == 10000);
	t0 = now_s();
	test_assert(mb != NULL && sync_ev(mb, &ev) == 0 && ev.n_new == 0);
	printf("# 10000 messages: first open+sync %.3f s (UIDs given, sizes "
	    "read), reopen %.3f s, resync %.3f s\n", t1, t2, now_s() - t0);
	store_mailbox_close(&mb);
	store_user_close(&u);
	test_end();
	free(md);
}

int
main(void)
{
	log_init("test_store", true);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_location();
	test_uidlist_parse();
	test_filter();
	test_maildir_basic();
	test_maildir_crlf();
	test_maildir_flags();
	test_maildir_expunge();
	test_maildir_folders();
	test_maildir_quiet();
	test_dovecot_import();
	test_uidlist_torn();
	test_mbox();
	test_mbox_duplicates();
	test_mbox_recover();
	test_mbox_expunge_ends();
	test_concurrent();
	test_notify();
	test_big();
	if (getenv("TEST_STORE_KEEP") == NULL) {
		char *cmd = xasprintf("rm -rf '%s'", root);

		(void)!system(cmd);
		free(cmd);
	}
	return test_done();
}
