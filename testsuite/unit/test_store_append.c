/*
 * Unit tests of what the IMAP server added to the store: saving
 * messages (store_append.c: CRLF to LF, sizes as readers see them, all
 * or nothing, UIDs, hard-linked copies, mbox quoting) and keywords, and
 * the folders of a user (store_folder.c: list, create, delete, rename
 * with children and the INBOX rule, subscriptions in Dovecot's
 * formats), for Maildir and mbox, in a temporary directory.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "store.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

static char root[] = "/tmp/test_store_append.XXXXXX";

static char *
read_path(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	data = xmalloc((size_t)st.st_size + 1);
	if (read(fd, data, (size_t)st.st_size) != st.st_size) {
		close(fd);
		free(data);
		return NULL;
	}
	close(fd);
	data[st.st_size] = '\0';
	*len_r = (size_t)st.st_size;
	return data;
}

static void
write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		printf("# cannot write %s\n", path);
		exit(1);
	}
	close(fd);
}

/* The whole message idx as a client reads it. */
static char *
msg_text(struct store_mailbox *mb, uint32_t idx, size_t *len_r)
{
	struct store_msg_stream *st;
	const char *error;
	struct buf b;
	char chunk[100];
	ssize_t n;

	buf_init(&b, 0);
	if (store_msg_open(mb, idx, &st, &error) < 0)
		return NULL;
	while ((n = store_msg_read(st, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	store_msg_close(&st);
	*len_r = b.len;
	buf_append_char(&b, '\0');
	return buf_steal(&b);
}

static size_t
count_dir(const char *dir)
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

/* Directory entries whose names start with prefix ("." and ".."
 * aside). */
static size_t
count_prefix(const char *dir, const char *prefix)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* ---- saving into a Maildir ---- */

static void
test_maildir_append(void)
{
	struct store_user *u;
	struct store_mailbox *mb;
	struct store_append *ctx;
	const char *error;
	char *home = xasprintf("%s/md", root), *path, *text;
	uint32_t *uids;
	size_t n, len;

	test_begin("maildir append: CRLF to LF, vsize, flags, UIDs");
	test_assert(store_user_open("maildir:~/Maildir", "u", home, &u,
	    &error) == 0);
	test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &error) == 0);
	test_assert(store_append_begin(mb, &ctx, &error) == 0);
	/* One message in two pieces, split inside a CRLF; a bare CR and a
	 * bare LF stay as they are. */
	test_assert(store_append_msg_begin(ctx, &error) == 0);
	test_assert(store_append_write(ctx, "Subject: a\r", 11, &error) == 0);
	test_assert(store_append_write(ctx, "\n\r\nx\ry\nz\r\n", 10,
	    &error) == 0);
	test_assert(store_append_msg_end(ctx, STORE_SEEN | STORE_FLAGGED, 0,
	    1500000000, &error) == 0);
	test_assert(store_append_msg_begin(ctx, &error) == 0);
	test_assert(store_append_write(ctx, "Subject: b\r\n\r\nb\r\n", 17,
	    &error) == 0);
	test_assert(store_append_msg_end(ctx, 0, 0, 0, &error) == 0);
	test_assert(store_append_count(ctx) == 2);
	/* Nothing visible before the commit. */
	path = xasprintf("%s/Maildir/cur", home);
	test_assert(count_dir(path) == 0);
	test_assert(store_append_commit(&ctx, NULL, &uids, &n, &error) == 0);
	test_assert(ctx == NULL);
	test_assert(n == 2 && uids != NULL && uids[0] == 1 && uids[1] == 2);
	test_assert(count_dir(path) == 2);
	free(uids);
	test_assert(store_mailbox_sync(mb, NULL, &error) == 0);
	test_assert(store_mailbox_count(mb) == 2);
	text = msg_text(mb, 0, &len);
	/* CRLF came back as CRLF, the bare CR as it was, the bare LF as
	 * CRLF; vsize is exactly what a reader gets. */
	test_assert_streq(text, "Subject: a\r\n\r\nx\ry\r\nz\r\n");
	test_assert(store_mailbox_msg(mb, 0)->vsize == len);
	test_assert(store_mailbox_msg(mb, 0)->flags ==
	    (STORE_SEEN | STORE_FLAGGED));
	test_assert(store_mailbox_msg(mb, 0)->internal_date == 1500000000);
	free(text);
	text = msg_text(mb, 1, &len);
	test_assert_streq(text, "Subject: b\r\n\r\nb\r\n");
	test_assert(store_mailbox_msg(mb, 1)->vsize == 17);
	free(text);
	/* Abort: the tmp/ files go, nothing appears. */
	test_assert(store_append_begin(mb, &ctx, &error) == 0);
	test_assert(store_append_msg_begin(ctx, &error) == 0);
	test_assert(store_append_write(ctx, "x", 1, &error) == 0);
	test_assert(store_append_msg_end(ctx, 0, 0, 0, &error) == 0);
	store_append_abort(&ctx);
	free(path);
	path = xasprintf("%s/Maildir/tmp", home);
	test_assert(count_dir(path) == 0);
	test_assert(store_mailbox_sync(mb, NULL, &error) == 0);
	test_assert(store_mailbox_count(mb) == 2);
	test_assert(store_mailbox_uidnext(mb) == 3);
	free(path);
	store_mailbox_close(&mb);
	store_user_close(&u);
	free(home);
	test_end();
}

static void
test_maildir_copy_keywords(void)
{
	struct store_user *u;
	struct store_mailbox *in, *dst;
	struct store_append *ctx;
	const char *error;
	char *home = xasprintf("%s/md", root), *kwfile, *data, *text;
	uint32_t *uids;
	size_t n, len;
	struct stat a, b;
	char *pa, *pb;
	int slot;

	test_begin("maildir copy by hard link, keywords by name");
	test_assert(store_user_open("maildir:~/Maildir", "u", home, &u,
	    &error) == 0);
	test_assert(store_folder_create(u, "Copies", &error) == 0);
	test_assert(store_mailbox_open(u, "INBOX", 0, &in, &error) == 0);
	test_assert(store_mailbox_open(u, "Copies", 0, &dst, &error) == 0);
	slot = store_keyword_slot(dst, "$Forwarded", true, &error);
	test_assert(slot == 0);
	test_assert(store_keyword_slot(dst, "$forwarded", true, &error) == 0);
	test_assert(store_keyword_slot(dst, "Work", false, &error) == -1);
	test_assert(store_keyword_slot(dst, "Work", true, &error) == 1);
	kwfile = xasprintf("%s/Maildir/.Copies/dovecot-keywords", home);
	data = read_path(kwfile, &len);
	test_assert_streq(data, "0 $Forwarded\n1 Work\n");
	free(data);
	test_assert(store_append_begin(dst, &ctx, &error) == 0);
	test_assert(store_append_copy(ctx, in, 0, STORE_SEEN, 1ULL << 1, 0,
	    &error) == 0);
	test_assert(store_append_commit(&ctx, NULL, &uids, &n, &error) == 0);
	test_assert(n == 1 && uids[0] == 1);
	free(uids);
	test_assert(store_mailbox_sync(dst, NULL, &error) == 0);
	test_assert(store_mailbox_count(dst) == 1);
	test_assert(store_mailbox_msg(dst, 0)->keywords == (1ULL << 1));
	test_assert(store_mailbox_msg(dst, 0)->internal_date == 1500000000);
	text = msg_text(dst, 0, &len);
	test_assert_streq(text, "Subject: a\r\n\r\nx\ry\r\nz\r\n");
	test_assert(store_mailbox_msg(dst, 0)->vsize == len);
	free(text);
	/* The same inode: a link, not a copy. */
	pa = xasprintf("%s/Maildir/cur", home);
	pb = xasprintf("%s/Maildir/.Copies/cur", home);
	{
		DIR *d = opendir(pb);
		struct dirent *de;
		char *f = NULL;

		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				f = xasprintf("%s/%s", pb, de->d_name);
		if (d != NULL)
			closedir(d);
		test_assert(f != NULL && stat(f, &b) == 0 && b.st_nlink == 2);
		test_assert(f != NULL && strstr(f, ":2,Sb") != NULL);
		free(f);
	}
	(void)a;
	free(pa);
	free(pb);
	free(kwfile);
	store_mailbox_close(&in);
	store_mailbox_close(&dst);
	store_user_close(&u);
	free(home);
	test_end();
}

/* ---- folders ---- */

static void
test_maildir_folders(void)
{
	struct store_user *u;
	struct store_folder *f;
	struct store_mailbox *mb;
	const char *error;
	char *home = xasprintf("%s/fd", root), *p, *data;
	size_t n, len;

	test_begin("maildir folders: list, create, delete, rename");
	test_assert(store_user_open("maildir:~/Maildir", "u", home, &u,
	    &error) == 0);
	/* A Maildir that does not exist yet lists INBOX only. */
	test_assert(store_folder_list(u, &f, &n, &error) == 0);
	test_assert(n == 1 && strcmp(f[0].name, "INBOX") == 0);
	store_folder_list_free(&f, n);
	test_assert(store_folder_create(u, "a/b/c", &error) == 0);
	test_assert(store_folder_create(u, "a/b/c", &error) ==
	    STORE_ERR_EXISTS);
	test_assert(store_folder_create(u, "inbox", &error) ==
	    STORE_ERR_EXISTS);
	test_assert(store_folder_create(u, "x.y", &error) == STORE_ERR_CANNOT);
	test_assert(store_folder_create(u, "../up", &error) ==
	    STORE_ERR_CANNOT);
	test_assert(store_folder_create(u, "z", &error) == 0);
	p = xasprintf("%s/Maildir/.a.b.c/maildirfolder", home);
	test_assert(access(p, F_OK) == 0);
	free(p);
	test_assert(store_folder_list(u, &f, &n, &error) == 0);
	test_assert(n == 5);
	test_assert(n == 5 && strcmp(f[0].name, "INBOX") == 0 &&
	    strcmp(f[1].name, "a") == 0 && strcmp(f[2].name, "a/b") == 0 &&
	    strcmp(f[3].name, "a/b/c") == 0 && strcmp(f[4].name, "z") == 0);
	test_assert(n == 5 && f[1].flags == (STORE_FOLDER_NOSELECT |
	    STORE_FOLDER_NONEXISTENT | STORE_FOLDER_CHILDREN));
	test_assert(n == 5 && f[3].flags == 0 && f[4].flags == 0);
	store_folder_list_free(&f, n);
	test_assert(store_folder_exists(u, "a/b/c") == 1);
	test_assert(store_folder_exists(u, "a/b") == 0);
	/* RENAME takes the children along. */
	test_assert(store_folder_rename(u, "a", "q", &error) == 0);
	test_assert(store_folder_exists(u, "q/b/c") == 1);
	test_assert(store_folder_exists(u, "a/b/c") == 0);
	test_assert(store_folder_rename(u, "nosuch", "w", &error) ==
	    STORE_ERR_NONEXISTENT);
	test_assert(store_folder_rename(u, "z", "q/b/c", &error) ==
	    STORE_ERR_EXISTS);
	test_assert(store_folder_rename(u, "z", "z/in", &error) ==
	    STORE_ERR_CANNOT);
	/* INBOX: the messages move, INBOX stays. */
	test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &error) == 0);
	store_mailbox_close(&mb);
	p = xasprintf("%s/Maildir/new/1.msg", home);
	write_str(p, "Subject: moved\n\nm\n");
	free(p);
	test_assert(store_folder_rename(u, "INBOX", "Old", &error) == 0);
	test_assert(store_mailbox_open(u, "Old", 0, &mb, &error) == 0);
	test_assert(store_mailbox_count(mb) == 1);
	store_mailbox_close(&mb);
	test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &error) == 0);
	test_assert(store_mailbox_count(mb) == 0);
	store_mailbox_close(&mb);
	/* DELETE: the folder and its messages go; children stay. */
	test_assert(store_folder_delete(u, "Old", &error) == 0);
	test_assert(store_folder_exists(u, "Old") == 0);
	test_assert(store_folder_delete(u, "q/b", &error) ==
	    STORE_ERR_NONEXISTENT);
	test_assert(store_folder_delete(u, "INBOX", &error) ==
	    STORE_ERR_CANNOT);
	p = xasprintf("%s/Maildir", home);
	/* Nothing left over of the deleted folder. */
	test_assert(count_prefix(p, "..") == 0);
	test_assert(count_prefix(p, ".Old") == 0);
	test_assert(count_prefix(p, ".q.b.c") == 1);
	free(p);
	/* Subscriptions, written in Dovecot's v2 format. */
	test_assert(store_subscription_set(u, "q/b/c", true, &error) == 0);
	test_assert(store_subscription_set(u, "INBOX", true, &error) == 0);
	test_assert(store_subscription_set(u, "q/b/c", true, &error) == 0);
	p = xasprintf("%s/Maildir/subscriptions", home);
	data = read_path(p, &len);
	test_assert_streq(data, "V\t2\n\nq\tb\tc\nINBOX\n");
	free(data);
	test_assert(store_subscription_set(u, "q/b/c", false, &error) == 0);
	data = read_path(p, &len);
	test_assert_streq(data, "V\t2\n\nINBOX\n");
	free(data);
	/* An older Dovecot or Courier file: '.' between levels. */
	write_str(p, "INBOX.Sent\nLists.imap\n\n");
	{
		char **v;
		bool exists;

		test_assert(store_subscriptions_read(u, &v, &exists,
		    &error) == 0);
		test_assert(exists && strv_len(v) == 2 &&
		    strcmp(v[0], "Sent") == 0 &&
		    strcmp(v[1], "Lists/imap") == 0);
		strv_free(&v);
	}
	free(p);
	store_user_close(&u);
	free(home);
	test_end();
}

/* ---- mbox ---- */

static void
test_mbox(void)
{
	struct store_user *u;
	struct store_mailbox *mb;
	struct store_append *ctx;
	const char *error;
	char *home = xasprintf("%s/mb", root), *spool, *loc, *data, *text;
	uint32_t *uids;
	size_t n, len;
	static const char msg[] = "Subject: q\r\n\r\nFrom here\r\n>From there"
	    "\r\n>>From far\r\nend";

	test_begin("mbox append: quoting, separators, flags, folders");
	spool = xasprintf("%s/spool", root);
	(void)mkdir(spool, 0700);
	(void)mkdir(home, 0700);
	loc = xasprintf("mbox:~/mail:INBOX=%s/%%u", spool);
	test_assert(cfg_set("mail_spool_directory", spool, &error) == 0);
	test_assert(store_user_open(loc, "u", home, &u, &error) == 0);
	/* An mbox another program left without a final blank line. */
	data = xasprintf("%s/u", spool);
	write_str(data, "From a@b Mon Jan  1 00:00:00 2024\n"
	    "Subject: old\n\nold");
	test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &error) == 0);
	test_assert(store_mailbox_count(mb) == 1);
	test_assert(store_append_begin(mb, &ctx, &error) == 0);
	test_assert(store_append_msg_begin(ctx, &error) == 0);
	test_assert(store_append_write(ctx, msg, sizeof(msg) - 1,
	    &error) == 0);
	test_assert(store_append_msg_end(ctx, STORE_FLAGGED, 0, 0,
	    &error) == 0);
	test_assert(store_append_commit(&ctx, NULL, &uids, &n, &error) == 0);
	/* UID 2: the old message, whose last line our separator ended,
	 * got a new key (its body grew by the line end) and UID first. */
	test_assert(n == 1 && uids != NULL && uids[0] == 3);
	free(uids);
	test_assert(store_mailbox_count(mb) == 2);
	/* Both new to this view: \Recent, which is not stored. */
	test_assert(store_mailbox_msg(mb, 0)->flags == STORE_RECENT);
	text = msg_text(mb, 1, &len);
	/* Read back as sent (a line end added at the end only). */
	test_assert_streq(text, "Subject: q\r\n\r\nFrom here\r\n>From there"
	    "\r\n>>From far\r\nend\r\n");
	test_assert(store_mailbox_msg(mb, 1)->flags ==
	    (STORE_FLAGGED | STORE_RECENT));
	free(text);
	text = msg_text(mb, 0, &len);
	test_assert_streq(text, "Subject: old\r\n\r\nold\r\n");
	free(text);
	store_mailbox_close(&mb);
	text = read_path(data, &len);
	test_assert(text != NULL && strstr(text, "\nold\n\nFrom MAILER-DAEMON ")
	    != NULL);
	test_assert(text != NULL && strstr(text, "\n>From here\n>>From there\n"
	    ">>>From far\nend\n\n") != NULL);
	free(text);
	free(data);
	/* Folders are files; a parent is a directory. */
	test_assert(store_folder_create(u, "L/x", &error) == 0);
	test_assert(store_folder_create(u, "L/x/y", &error) ==
	    STORE_ERR_CANNOT);
	test_assert(store_folder_delete(u, "L", &error) == STORE_ERR_CANNOT);
	test_assert(store_folder_rename(u, "L/x", "M/x", &error) == 0);
	test_assert(store_folder_exists(u, "M/x") == 1);
	test_assert(store_folder_rename(u, "INBOX", "Saved", &error) == 0);
	test_assert(store_mailbox_open(u, "Saved", 0, &mb, &error) == 0);
	test_assert(store_mailbox_count(mb) == 2);
	store_mailbox_close(&mb);
	test_assert(store_mailbox_open(u, "INBOX", 0, &mb, &error) == 0);
	test_assert(store_mailbox_count(mb) == 0);
	store_mailbox_close(&mb);
	store_user_close(&u);
	free(loc);
	free(spool);
	free(home);
	test_end();
}

int
main(void)
{
	log_init("test_store_append", true);
	(void)cfg_load(NULL);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_maildir_append();
	test_maildir_copy_keywords();
	test_maildir_folders();
	test_mbox();
	if (getenv("TEST_STORE_KEEP") == NULL) {
		char *cmd = xasprintf("rm -rf '%s'", root);

		(void)!system(cmd);
		free(cmd);
	}
	return test_done();
}
