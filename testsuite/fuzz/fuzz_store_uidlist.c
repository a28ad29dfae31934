/*
 * fuzz_store_uidlist: the store's readers of files that other programs
 * (or a crash) may have left in any state.  Byte 0 modulo 4 picks what
 * the rest of the input is:
 *   0  a postern-uidlist of a Maildir holding three messages,
 *   1  a dovecot-uidlist of that Maildir (the first-open import),
 *   2  an mbox file,
 *   3  message bytes for the CRLF/unquoting filter (byte 0 bit 2:
 *      unquote), cut at every position.
 * For 0-2 the mailbox is opened through store.h and the view checked:
 * UIDs strictly ascending and below UIDNEXT, every message readable
 * (an mbox message with exactly vsize bytes), a new delivery getting a
 * UID at or above the old UIDNEXT, an expunge through the store removing
 * that UID.
 * Every line also goes through the line parsers.  3 checks that the
 * filter's output does not depend on how input and output are cut.
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

#include "fuzz_stubs.h"
#include "store.h"
#include "store_private.h"
#include "xmalloc.h"

#define MAX_FUZZ_STORE_INPUT	(64 * 1024)

static char *fuzz_dir;		/* the Maildir */
static char *fuzz_mbox;

static const char *const fuzz_files[] = {
	"cur/1.a:2,S", "cur/2.b:2,", "new/3.c"
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *p;

	(void)argc;
	(void)argv;
	fuzz_dir = fuzz_scratch_path("Maildir");
	p = xasprintf("%s.mbox", fuzz_dir);
	fuzz_mbox = p;
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

static void
fuzz_reset_maildir(void)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	size_t i;

	(void)mkdir(fuzz_dir, 0700);
	for (i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", fuzz_dir, subs[i]);

		(void)mkdir(p, 0700);
		fuzz_clean_dir(p);
		free(p);
	}
	fuzz_clean_dir(fuzz_dir);
	for (i = 0; i < sizeof(fuzz_files) / sizeof(fuzz_files[0]); i++) {
		char *p = xasprintf("%s/%s", fuzz_dir, fuzz_files[i]);

		fuzz_write_file(p, (const uint8_t *)"Subject: x\n\nbody\n", 17);
		free(p);
	}
}

static void
fuzz_lines(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct store_uidline l;
	struct store_uidhdr h;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);

		(void)store_uidlist_parse_header(p, len, &h);
		(void)store_dovecot_parse_header(p, len, &h);
		if (store_uidlist_parse_line(p, len, &l) == 0 &&
		    l.type == STORE_UIDLINE_RECORD &&
		    (l.rec.uid == 0 || l.keylen == 0 ||
		    l.rec.key < p || l.rec.key + l.keylen > p + len))
			abort();
		if (store_dovecot_parse_line(3, p, len, &l) == 0 &&
		    (l.rec.uid == 0 || l.keylen == 0 ||
		    memchr(l.rec.key, ':', l.keylen) != NULL))
			abort();
		(void)store_dovecot_parse_line(1, p, len, &l);
		p += len + 1;
	}
}

/*
 * exact: every vsize must be what reading yields (the mbox, whose sizes
 * the store computes; a UID map's W field is trusted as Dovecot trusts
 * it, so a fuzzed map may well lie).
 */
static void
fuzz_check_view(struct store_mailbox *mb, bool exact)
{
	uint32_t i, n = store_mailbox_count(mb), prev = 0;
	uint32_t next = store_mailbox_uidnext(mb);

	for (i = 0; i < n; i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);
		struct store_msg_stream *s;
		const char *err;
		uint64_t total = 0;
		char buf[61];
		ssize_t r;

		if (m->uid <= prev || m->uid >= next)
			abort();
		prev = m->uid;
		if (store_mailbox_find_uid(mb, m->uid) != (int64_t)i)
			abort();
		if (store_msg_open(mb, i, &s, &err) < 0)
			continue;
		while ((r = store_msg_read(s, buf, sizeof(buf))) > 0)
			total += (uint64_t)r;
		store_msg_close(&s);
		if (exact && total != m->vsize)
			abort();
	}
}

/* Open, check, deliver one more, check, expunge one, check. */
static void
fuzz_mailbox(const char *location, bool maildir)
{
	struct store_user *u;
	struct store_mailbox *mb;
	const char *err;
	uint32_t next, n;

	if (store_user_open(location, "fuzz", "/nonexistent", &u, &err) < 0)
		abort();
	if (store_mailbox_open(u, "INBOX", 0, &mb, &err) < 0) {
		store_user_close(&u);
		return;
	}
	fuzz_check_view(mb, !maildir);
	next = store_mailbox_uidnext(mb);
	if (maildir) {
		char *p = xasprintf("%s/new/4.d", fuzz_dir);

		fuzz_write_file(p, (const uint8_t *)"new\n", 4);
		free(p);
	} else {
		static const char more[] = "\n\nFrom new Mon Nov 20 "
		    "10:00:00 2023\n\nnew\n\n";
		int fd = open(fuzz_mbox, O_WRONLY | O_APPEND);

		if (fd >= 0) {
			(void)!write(fd, more, strlen(more));
			close(fd);
		}
	}
	if (store_mailbox_sync(mb, NULL, &err) == 0) {
		fuzz_check_view(mb, !maildir);
		n = store_mailbox_count(mb);
		if (n > 0 && store_mailbox_msg(mb, n - 1)->uid < next &&
		    maildir)
			abort();
		if (n > 0) {
			uint32_t uid = store_mailbox_msg(mb, 0)->uid;

			if (store_mailbox_expunge_uids(mb, &uid, 1,
			    &err) == 0 && store_mailbox_sync(mb, NULL,
			    &err) == 0) {
				fuzz_check_view(mb, !maildir);
				if (store_mailbox_find_uid(mb, uid) >= 0)
					abort();
			}
		}
	}
	store_mailbox_close(&mb);
	store_user_close(&u);
}

static void
fuzz_filter(const uint8_t *data, size_t size, bool unquote)
{
	struct store_filter f;
	char *whole = xmalloc(size * 2 + 16), *cut = xmalloc(size * 2 + 16);
	size_t wlen, clen = 0, pos = 0, w, k;

	store_filter_init(&f, unquote);
	k = store_filter_run(&f, (const char *)data, size, whole,
	    size * 2 + 16, &wlen);
	if (k != size)
		abort();
	wlen += store_filter_finish(&f, whole + wlen, size * 2 + 16 - wlen);
	/* One byte in, one byte out at a time. */
	store_filter_init(&f, unquote);
	while (pos < size || store_filter_pending(&f)) {
		if (pos < size)
			pos += store_filter_run(&f, (const char *)data + pos, 1,
			    cut + clen, 1, &w);
		else
			w = store_filter_finish(&f, cut + clen, 1);
		clen += w;
		if (clen > size * 2 + 8)
			abort();
	}
	if (clen != wlen || memcmp(whole, cut, wlen) != 0)
		abort();
	store_filter_init(&f, unquote);
	(void)store_filter_run(&f, (const char *)data, size, NULL, 0, &w);
	(void)store_filter_finish(&f, NULL, 0);
	if (f.out_count != wlen)
		abort();
	free(whole);
	free(cut);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path, *loc;
	uint8_t mode;

	if (size < 1 || size > MAX_FUZZ_STORE_INPUT)
		return 0;
	mode = data[0];
	data++;
	size--;
	fuzz_lines(data, size);
	switch (mode % 4) {
	case 0:
	case 1:
		fuzz_reset_maildir();
		path = xasprintf("%s/%s", fuzz_dir, mode % 4 == 0 ?
		    "postern-uidlist" : "dovecot-uidlist");
		fuzz_write_file(path, data, size);
		free(path);
		loc = xasprintf("maildir:%s", fuzz_dir);
		fuzz_mailbox(loc, true);
		free(loc);
		break;
	case 2:
		/* The mbox's UID map: in the Maildir dir's .postern. */
		fuzz_reset_maildir();
		fuzz_write_file(fuzz_mbox, data, size);
		path = xasprintf("%s/.postern", fuzz_dir);
		fuzz_clean_dir(path);
		free(path);
		loc = xasprintf("mbox:%s:INBOX=%s", fuzz_dir, fuzz_mbox);
		fuzz_mailbox(loc, false);
		free(loc);
		break;
	case 3:
		fuzz_filter(data, size, (mode & 4) != 0);
		break;
	}
	return 0;
}
