/*
 * store_folder: the folders of a user's store as a whole, for IMAP's
 * LIST, CREATE, DELETE, RENAME and SUBSCRIBE (store.h, "Folders").
 *
 * Layout, as Dovecot and Courier keep it (DESIGN §1 "Drop-in"):
 *   Maildir: folder "a/b" is the Maildir++ directory ROOT/.a.b beside
 *            INBOX's cur/; a parent needs no directory of its own.
 *            Subscriptions are ROOT/subscriptions.
 *   mbox:    folder "a/b" is the file ROOT/a/b; "a" is then a directory
 *            and holds no messages.  The UID maps of the folders live in
 *            ROOT/.postern (store_mbox.c), which renames and deletes
 *            here carry along.  Subscriptions are ROOT/.subscriptions.
 *
 * Names are checked with the rules of store_mailbox_open() (no empty or
 * hidden component, no control character, no '.' in Maildir names), so
 * no name can leave the root.  What this file does not do: open
 * mailboxes, or encode names (the IMAP side keeps names in modified
 * UTF-7 on disk, as Dovecot does).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "str.h"
#include "store_private.h"
#include "xmalloc.h"

/* Longest folder name (as store.c's check). */
#define STORE_FOLDER_MAX_NAME	200
/* mbox folder directories are walked this deep at most. */
#define STORE_FOLDER_MAX_DEPTH	16
/* Bytes of a subscriptions file read at most. */
#define STORE_SUBS_MAX_FILE	(1024 * 1024)
/* Prefix of a Maildir folder being deleted: never a valid name. */
#define STORE_FOLDER_TRASH	"..postern-deleted-"

static bool
store_folder_is_maildir(const struct store_user *u)
{
	return u->loc.format == STORE_FORMAT_MAILDIR;
}

/* The rules of store.c's store_check_name(), plus INBOX. */
static bool
store_folder_name_ok(const struct store_user *u, const char *name)
{
	const char *p, *comp = name;
	size_t len = strlen(name);

	if (len == 0 || len > STORE_FOLDER_MAX_NAME)
		return false;
	for (p = name; ; p++) {
		if (*p == '/' || *p == '\0') {
			if (p == comp || *comp == '.')
				return false;
			if (*p == '\0')
				break;
			comp = p + 1;
			continue;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
		if (store_folder_is_maildir(u) && *p == '.')
			return false;
	}
	return true;
}

/* ROOT/.a.b (Maildir) or ROOT/a/b (mbox); NULL without a root. */
static char *
store_folder_path(const struct store_user *u, const char *name)
{
	char *dots, *p, *path;

	if (u->loc.root == NULL)
		return NULL;
	if (!store_folder_is_maildir(u))
		return xasprintf("%s/%s", u->loc.root, name);
	dots = xstrdup(name);
	for (p = dots; *p != '\0'; p++)
		if (*p == '/')
			*p = '.';
	path = xasprintf("%s/.%s", u->loc.root, dots);
	free(dots);
	return path;
}

static const char *
store_folder_err(struct store_user *u, const char *what, const char *path)
{
	return store_error(&u->error, "%s(%s) failed: %s", what, path,
	    strerror(errno));
}

int
store_folder_exists(struct store_user *u, const char *name)
{
	struct stat st;
	char *path;
	bool ok;

	if (str_case_eq(name, "INBOX"))
		return 1;
	if (!store_folder_name_ok(u, name) ||
	    (path = store_folder_path(u, name)) == NULL)
		return 0;
	ok = stat(path, &st) == 0 && (store_folder_is_maildir(u) ?
	    S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
	free(path);
	return ok ? 1 : 0;
}

/* ---- listing ---- */

struct store_folder_acc {
	struct store_folder *list;
	size_t		 count, cap;
	bool		 truncated;
};

static void
store_folder_acc_add(struct store_folder_acc *a, const char *name,
    unsigned int flags)
{
	if (a->count >= STORE_MAX_FOLDERS) {
		a->truncated = true;
		return;
	}
	if (a->count == a->cap) {
		a->cap = a->cap == 0 ? 32 : a->cap * 2;
		a->list = xreallocarray(a->list, a->cap, sizeof(*a->list));
	}
	a->list[a->count].name = xstrdup(name);
	a->list[a->count].flags = flags;
	a->count++;
}

static int
store_folder_cmp(const void *x, const void *y)
{
	const struct store_folder *a = x, *b = y;

	/* INBOX first; then byte order, which puts "a" before "a/b". */
	if (strcmp(a->name, "INBOX") == 0)
		return strcmp(b->name, "INBOX") == 0 ? 0 : -1;
	if (strcmp(b->name, "INBOX") == 0)
		return 1;
	return strcmp(a->name, b->name);
}

static void
store_folder_list_maildir(struct store_user *u, struct store_folder_acc *a)
{
	struct dirent *de;
	DIR *d;

	if (u->loc.root == NULL || (d = opendir(u->loc.root)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *name, *p, *path;
		struct stat st;

		if (de->d_name[0] != '.' || de->d_name[1] == '\0' ||
		    de->d_name[1] == '.')
			continue;
		name = xstrdup(de->d_name + 1);
		for (p = name; *p != '\0'; p++)
			if (*p == '.')
				*p = '/';
		path = xasprintf("%s/%s", u->loc.root, de->d_name);
		if (store_folder_name_ok(u, name) && !str_case_eq(name,
		    "INBOX") && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			store_folder_acc_add(a, name, 0);
		free(path);
		free(name);
	}
	closedir(d);
}

static void
store_folder_walk_mbox(struct store_user *u, struct store_folder_acc *a,
    const char *dir, const char *prefix, unsigned int depth)
{
	struct dirent *de;
	DIR *d;

	if (depth > STORE_FOLDER_MAX_DEPTH || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL && !a->truncated) {
		char *name, *path;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		name = prefix[0] != '\0' ? xasprintf("%s/%s", prefix,
		    de->d_name) : xstrdup(de->d_name);
		path = xasprintf("%s/%s", dir, de->d_name);
		if (!store_folder_name_ok(u, name) ||
		    (depth == 0 && str_case_eq(name, "INBOX")) ||
		    (u->loc.inbox != NULL && strcmp(path, u->loc.inbox) == 0) ||
		    lstat(path, &st) < 0) {
			free(name);
			free(path);
			continue;
		}
		if (S_ISREG(st.st_mode))
			store_folder_acc_add(a, name, 0);
		else if (S_ISDIR(st.st_mode)) {
			store_folder_acc_add(a, name, STORE_FOLDER_NOSELECT);
			store_folder_walk_mbox(u, a, path, name, depth + 1);
		}
		free(name);
		free(path);
	}
	closedir(d);
}

int
store_folder_list(struct store_user *u, struct store_folder **list_r,
    size_t *count_r, const char **error_r)
{
	struct store_folder_acc a;
	struct store_hash *seen;
	size_t i, n;

	(void)error_r;
	memset(&a, 0, sizeof(a));
	store_folder_acc_add(&a, "INBOX", 0);
	if (store_folder_is_maildir(u))
		store_folder_list_maildir(u, &a);
	else if (u->loc.root != NULL)
		store_folder_walk_mbox(u, &a, u->loc.root, "", 0);
	/* Parents that exist only as a level of a child's name. */
	seen = store_hash_new(a.count * 2 + 1);
	for (i = 0; i < a.count; i++)
		store_hash_set(seen, a.list[i].name, strlen(a.list[i].name),
		    (void *)1);
	n = a.count;
	for (i = 0; i < n; i++) {
		char *copy = xstrdup(a.list[i].name), *slash;

		while ((slash = strrchr(copy, '/')) != NULL) {
			*slash = '\0';
			if (store_hash_get(seen, copy, strlen(copy)) != NULL)
				break;
			store_folder_acc_add(&a, copy, STORE_FOLDER_NOSELECT |
			    STORE_FOLDER_NONEXISTENT);
			if (a.truncated)
				break;
			/* The key lives as long as the list entry. */
			store_hash_set(seen, a.list[a.count - 1].name,
			    strlen(copy), (void *)1);
		}
		free(copy);
	}
	store_hash_free(&seen);
	qsort(a.list, a.count, sizeof(*a.list), store_folder_cmp);
	/*
	 * Children: sorted, the names that start with "name" follow it
	 * together ("a b" may come between "a" and "a/b"); INBOX, sorted
	 * first, is looked for everywhere.
	 */
	for (i = 0; i < a.count; i++) {
		const char *base = a.list[i].name;
		size_t len = strlen(base), j;

		for (j = i == 0 ? 1 : i + 1; j < a.count; j++) {
			int c = strncmp(a.list[j].name, base, len);

			if (c == 0 && a.list[j].name[len] == '/') {
				a.list[i].flags |= STORE_FOLDER_CHILDREN;
				break;
			}
			if (c != 0 && i > 0)
				break;
		}
	}
	if (a.truncated)
		log_warning("store: %s has more than %d folders; the rest "
		    "is not listed", u->user, STORE_MAX_FOLDERS);
	*list_r = a.list;
	*count_r = a.count;
	return 0;
}

void
store_folder_list_free(struct store_folder **list, size_t count)
{
	size_t i;

	if (*list == NULL)
		return;
	for (i = 0; i < count; i++)
		free((*list)[i].name);
	free(*list);
	*list = NULL;
}

/* ---- create ---- */

static int
store_folder_create_maildir(struct store_user *u, const char *path,
    const char **error_r)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char *sub;
	size_t i;
	int fd;

	/* The Maildir itself is made at its first use, as local makes
	 * it at the first delivery. */
	if (store_mkdirs(u->loc.root) < 0) {
		*error_r = store_folder_err(u, "mkdir", u->loc.root);
		return STORE_ERR_TEMP;
	}
	if (mkdir(path, 0700) < 0) {
		if (errno == EEXIST)
			return STORE_ERR_EXISTS;
		*error_r = store_folder_err(u, "mkdir", path);
		return STORE_ERR_TEMP;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		sub = xasprintf("%s/%s", path, subs[i]);
		if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
			*error_r = store_folder_err(u, "mkdir", sub);
			free(sub);
			return STORE_ERR_TEMP;
		}
		free(sub);
	}
	/* Maildir++: marks a folder for delivery agents that look. */
	sub = xasprintf("%s/maildirfolder", path);
	fd = open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	free(sub);
	/* The new directory entry must survive a crash like a message. */
	(void)fdio_fsync_dir(u->loc.root);
	return 0;
}

static int
store_folder_create_mbox(struct store_user *u, const char *name,
    const char *path, bool dir_only, const char **error_r)
{
	char *parent, *slash;
	struct stat st;
	int fd;

	if (stat(path, &st) == 0)
		return STORE_ERR_EXISTS;
	parent = xstrdup(path);
	slash = strrchr(parent, '/');
	*slash = '\0';
	/* A parent that is a file cannot hold folders. */
	if (stat(parent, &st) == 0 && !S_ISDIR(st.st_mode)) {
		free(parent);
		*error_r = store_error(&u->error, "%s holds messages and "
		    "cannot have folders below it", name);
		return STORE_ERR_CANNOT;
	}
	if (store_mkdirs(parent) < 0) {
		*error_r = store_folder_err(u, "mkdir", parent);
		free(parent);
		return errno == ENOTDIR ? STORE_ERR_CANNOT : STORE_ERR_TEMP;
	}
	if (dir_only) {
		free(parent);
		if (mkdir(path, 0700) < 0) {
			if (errno == EEXIST)
				return STORE_ERR_EXISTS;
			*error_r = store_folder_err(u, "mkdir", path);
			return STORE_ERR_TEMP;
		}
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		free(parent);
		if (errno == EEXIST)
			return STORE_ERR_EXISTS;
		*error_r = store_folder_err(u, "open", path);
		return STORE_ERR_TEMP;
	}
	close(fd);
	(void)fdio_fsync_dir(parent);
	free(parent);
	return 0;
}

int
store_folder_create(struct store_user *u, const char *name,
    const char **error_r)
{
	char *copy = xstrdup(name), *path;
	size_t len = strlen(copy);
	bool dir_only = false;
	int ret;

	/* RFC 3501 §6.3.3: a trailing separator asks for a parent. */
	if (len > 0 && copy[len - 1] == '/') {
		copy[len - 1] = '\0';
		dir_only = true;
	}
	if (str_case_eq(copy, "INBOX")) {
		free(copy);
		return STORE_ERR_EXISTS;
	}
	if (!store_folder_name_ok(u, copy)) {
		*error_r = store_error(&u->error, "Invalid mailbox name");
		free(copy);
		return STORE_ERR_CANNOT;
	}
	if ((path = store_folder_path(u, copy)) == NULL) {
		*error_r = store_error(&u->error, "This mail_location has no "
		    "folders");
		free(copy);
		return STORE_ERR_CANNOT;
	}
	if (store_folder_is_maildir(u))
		ret = store_folder_create_maildir(u, path, error_r);
	else
		ret = store_folder_create_mbox(u, copy, path, dir_only,
		    error_r);
	free(path);
	free(copy);
	return ret;
}

/* ---- delete ---- */

/* Remove dir and what is in it, depth bounded (a Maildir folder holds
 * tmp/, new/, cur/ and files). */
static int
store_folder_rmtree(const char *dir, unsigned int depth)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (depth > 4 || (d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *p;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (store_folder_rmtree(p, depth + 1) < 0)
				ret = -1;
		} else if (unlink(p) < 0 && errno != ENOENT)
			ret = -1;
		free(p);
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

/* mbox: the UID map and its companions of a folder file. */
static void
store_folder_mbox_index_unlink(struct store_user *u, const char *name)
{
	static const char *const sfx[] = {
		".uidlist", ".uidlist.lock", ".keywords", ".index", ".cache"
	};
	size_t i;

	if (u->index_dir == NULL)
		return;
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char *p = xasprintf("%s/%s%s", u->index_dir, name, sfx[i]);

		(void)unlink(p);
		free(p);
	}
}

int
store_folder_delete(struct store_user *u, const char *name,
    const char **error_r)
{
	struct stat st;
	char *path;
	int ret = 0;

	if (str_case_eq(name, "INBOX")) {
		*error_r = store_error(&u->error, "INBOX can't be deleted");
		return STORE_ERR_CANNOT;
	}
	if (!store_folder_name_ok(u, name) ||
	    (path = store_folder_path(u, name)) == NULL)
		return STORE_ERR_NONEXISTENT;
	if (lstat(path, &st) < 0) {
		free(path);
		return STORE_ERR_NONEXISTENT;
	}
	if (store_folder_is_maildir(u)) {
		char *aside;

		if (!S_ISDIR(st.st_mode)) {
			free(path);
			return STORE_ERR_NONEXISTENT;
		}
		/*
		 * Out of sight in one step (a name no listing shows), then
		 * removed at leisure: a crash leaves a hidden directory,
		 * never a folder with half its messages.
		 */
		aside = xasprintf("%s/%s%ld.%ld", u->loc.root,
		    STORE_FOLDER_TRASH, (long)getpid(), (long)time(NULL));
		if (rename(path, aside) < 0) {
			*error_r = store_folder_err(u, "rename", path);
			free(aside);
			free(path);
			return STORE_ERR_TEMP;
		}
		(void)fdio_fsync_dir(u->loc.root);
		if (store_folder_rmtree(aside, 0) < 0)
			log_warning("store: could not remove all of %s: %m",
			    aside);
		free(aside);
	} else if (S_ISDIR(st.st_mode)) {
		if (rmdir(path) < 0) {
			if (errno == ENOTEMPTY || errno == EEXIST) {
				*error_r = store_error(&u->error, "Mailbox "
				    "has children, delete them first");
				ret = STORE_ERR_CANNOT;
			} else {
				*error_r = store_folder_err(u, "rmdir", path);
				ret = STORE_ERR_TEMP;
			}
		}
	} else {
		if (unlink(path) < 0) {
			*error_r = store_folder_err(u, "unlink", path);
			ret = STORE_ERR_TEMP;
		} else
			store_folder_mbox_index_unlink(u, name);
	}
	free(path);
	return ret;
}

/* ---- rename ---- */

/* Maildir INBOX: move every message file into the new folder. */
static int
store_folder_move_inbox_maildir(struct store_user *u, const char *to_path,
    const char **error_r)
{
	static const char *const subs[] = { "new", "cur" };
	size_t i;
	int ret = 0;

	for (i = 0; i < 2 && ret == 0; i++) {
		char *src = xasprintf("%s/%s", u->loc.inbox, subs[i]);
		char *dst = xasprintf("%s/%s", to_path, subs[i]);
		struct dirent *de;
		DIR *d = opendir(src);

		while (d != NULL && (de = readdir(d)) != NULL) {
			char *f, *t;

			if (de->d_name[0] == '.')
				continue;
			f = xasprintf("%s/%s", src, de->d_name);
			t = xasprintf("%s/%s", dst, de->d_name);
			if (rename(f, t) < 0 && errno != ENOENT) {
				*error_r = store_folder_err(u, "rename", f);
				ret = STORE_ERR_TEMP;
			}
			free(f);
			free(t);
			if (ret != 0)
				break;
		}
		if (d != NULL)
			closedir(d);
		(void)fdio_fsync_dir(dst);
		(void)fdio_fsync_dir(src);
		free(src);
		free(dst);
	}
	return ret;
}

/* mbox INBOX: copy the spool file into the new folder, then empty it,
 * both under the mbox locks (as local takes them). */
static int
store_folder_move_inbox_mbox(struct store_user *u, const char *to_path,
    const char **error_r)
{
	char *lock = xasprintf("%s.lock", u->loc.inbox);
	int in = -1, out = -1, dot, ret = STORE_ERR_TEMP;
	char buf[STORE_IO_CHUNK];
	ssize_t n;

	dot = store_dotlock(lock, STORE_LOCK_WAIT);
	if (dot < 0) {
		*error_r = store_error(&u->error, "cannot lock %s",
		    u->loc.inbox);
		free(lock);
		return STORE_ERR_TEMP;
	}
	in = open(u->loc.inbox, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0 && errno == ENOENT) {
		ret = 0;	/* an empty INBOX: the folder stays empty */
		goto out;
	}
	if (in < 0 || store_fcntl_lock(in, F_WRLCK, STORE_LOCK_WAIT) < 0) {
		*error_r = store_folder_err(u, "lock", u->loc.inbox);
		goto out;
	}
	out = open(to_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (out < 0) {
		*error_r = store_folder_err(u, "open", to_path);
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (fdio_write_all(out, buf, (size_t)n) < 0) {
			*error_r = store_folder_err(u, "write", to_path);
			(void)ftruncate(out, 0);
			goto out;
		}
	}
	if (n < 0 || fsync(out) < 0) {
		*error_r = store_folder_err(u, "copy", to_path);
		(void)ftruncate(out, 0);
		goto out;
	}
	if (ftruncate(in, 0) < 0 || fsync(in) < 0) {
		*error_r = store_folder_err(u, "ftruncate", u->loc.inbox);
		goto out;
	}
	ret = 0;
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (dot > 0)
		(void)unlink(lock);
	free(lock);
	return ret;
}

/* Maildir: the children ".from.x" become ".to.x".  Returns how many
 * were renamed, or STORE_ERR_TEMP. */
static int
store_folder_rename_children(struct store_user *u, const char *from,
    const char *to, const char **error_r)
{
	char *fdots = xasprintf(".%s.", from), *p;
	size_t flen = strlen(fdots);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i;
	int ret = 0;
	DIR *d;

	for (p = fdots; *p != '\0'; p++)
		if (*p == '/')
			*p = '.';
	if ((d = opendir(u->loc.root)) == NULL) {
		free(fdots);
		return 0;
	}
	/* Collect first: renaming while readdir runs may show an entry
	 * twice. */
	while ((de = readdir(d)) != NULL && n < STORE_MAX_FOLDERS)
		if (strncmp(de->d_name, fdots, flen) == 0) {
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	closedir(d);
	for (i = 0; i < n; i++) {
		char *tdots = xasprintf("%s/%s", to, names[i] + flen);
		char *src, *dst;

		for (p = tdots; *p != '\0'; p++)
			if (*p == '/')
				*p = '.';
		src = xasprintf("%s/%s", u->loc.root, names[i]);
		dst = xasprintf("%s/.%s", u->loc.root, tdots);
		if (ret == 0 && rename(src, dst) < 0) {
			*error_r = store_folder_err(u, "rename", src);
			ret = STORE_ERR_TEMP;
		}
		free(src);
		free(dst);
		free(tdots);
		free(names[i]);
	}
	free(names);
	free(fdots);
	return ret < 0 ? ret : (int)n;
}

/* mbox: UID maps follow their folder (ROOT/.postern/NAME.*). */
static void
store_folder_mbox_index_rename(struct store_user *u, const char *from,
    const char *to)
{
	static const char *const sfx[] = { ".uidlist", ".keywords",
	    ".index", ".cache", "" };
	size_t i;

	if (u->index_dir == NULL)
		return;
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char *f = xasprintf("%s/%s%s", u->index_dir, from, sfx[i]);
		char *t = xasprintf("%s/%s%s", u->index_dir, to, sfx[i]);
		char *slash = strrchr(t, '/');

		*slash = '\0';
		(void)store_mkdirs(t);
		*slash = '/';
		(void)rename(f, t);
		free(f);
		free(t);
	}
}

int
store_folder_rename(struct store_user *u, const char *from, const char *to,
    const char **error_r)
{
	char *fpath = NULL, *tpath = NULL;
	struct stat st;
	int ret;

	if (str_case_eq(to, "INBOX"))
		return STORE_ERR_EXISTS;
	if (!store_folder_name_ok(u, to)) {
		*error_r = store_error(&u->error, "Invalid mailbox name");
		return STORE_ERR_CANNOT;
	}
	if (!str_case_eq(from, "INBOX") && !store_folder_name_ok(u, from))
		return STORE_ERR_NONEXISTENT;
	if (!str_case_eq(from, "INBOX") && strncmp(to, from,
	    strlen(from)) == 0 && to[strlen(from)] == '/') {
		*error_r = store_error(&u->error, "Can't rename a mailbox "
		    "into itself");
		return STORE_ERR_CANNOT;
	}
	if ((tpath = store_folder_path(u, to)) == NULL) {
		*error_r = store_error(&u->error, "This mail_location has no "
		    "folders");
		return STORE_ERR_CANNOT;
	}
	if (lstat(tpath, &st) == 0) {
		free(tpath);
		return STORE_ERR_EXISTS;
	}
	if (str_case_eq(from, "INBOX")) {
		/* RFC 3501 §6.3.5: the messages move, INBOX stays. */
		ret = store_folder_create(u, to, error_r);
		if (ret == 0)
			ret = store_folder_is_maildir(u) ?
			    store_folder_move_inbox_maildir(u, tpath,
			    error_r) :
			    store_folder_move_inbox_mbox(u, tpath, error_r);
		free(tpath);
		return ret;
	}
	fpath = store_folder_path(u, from);
	if (lstat(fpath, &st) < 0 && !store_folder_is_maildir(u)) {
		ret = STORE_ERR_NONEXISTENT;
		goto out;
	}
	if (store_folder_is_maildir(u)) {
		bool exists = lstat(fpath, &st) == 0;

		if (exists && rename(fpath, tpath) < 0) {
			*error_r = store_folder_err(u, "rename", fpath);
			ret = STORE_ERR_TEMP;
			goto out;
		}
		ret = store_folder_rename_children(u, from, to, error_r);
		/* A name that is neither a folder nor a parent. */
		if (!exists && ret == 0)
			ret = STORE_ERR_NONEXISTENT;
		else if (ret > 0)
			ret = 0;
		(void)fdio_fsync_dir(u->loc.root);
	} else {
		char *parent = xstrdup(tpath), *slash = strrchr(parent, '/');

		*slash = '\0';
		if (store_mkdirs(parent) < 0) {
			*error_r = store_folder_err(u, "mkdir", parent);
			free(parent);
			ret = errno == ENOTDIR ? STORE_ERR_CANNOT :
			    STORE_ERR_TEMP;
			goto out;
		}
		if (rename(fpath, tpath) < 0) {
			*error_r = store_folder_err(u, "rename", fpath);
			free(parent);
			ret = STORE_ERR_TEMP;
			goto out;
		}
		(void)fdio_fsync_dir(parent);
		free(parent);
		store_folder_mbox_index_rename(u, from, to);
		ret = 0;
	}
out:
	free(fpath);
	free(tpath);
	return ret;
}

/* ---- subscriptions ---- */

/* Read up to size bytes (less only at the end of the file). */
static ssize_t
store_folder_read(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static char *
store_subs_path(const struct store_user *u)
{
	if (u->loc.root != NULL)
		return xasprintf("%s/%s", u->loc.root,
		    store_folder_is_maildir(u) ? "subscriptions" :
		    ".subscriptions");
	if (u->index_dir != NULL)
		return xasprintf("%s/subscriptions", u->index_dir);
	return NULL;
}

/* Names differ in case: "Sent" and "sent" are two mailboxes. */
static bool
store_subs_have(char *const *names, const char *name)
{
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

int
store_subscriptions_read(struct store_user *u, char ***names_r,
    bool *exists_r, const char **error_r)
{
	char *path = store_subs_path(u), *data, *p, *end;
	char **names = xcalloc(1, sizeof(*names));
	bool v2 = false, header = true;
	size_t count = 0;
	ssize_t n;
	int fd;

	*names_r = names;
	*exists_r = false;
	if (path == NULL)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		*error_r = store_folder_err(u, "open", path);
		free(path);
		return -1;
	}
	*exists_r = true;
	data = xmalloc(STORE_SUBS_MAX_FILE + 1);
	n = store_folder_read(fd, data, STORE_SUBS_MAX_FILE);
	close(fd);
	if (n < 0) {
		*error_r = store_folder_err(u, "read", path);
		free(data);
		free(path);
		return -1;
	}
	free(path);
	end = data + n;
	/*
	 * Dovecot 2.3 writes "V\t2", an empty line, then one name a line
	 * with TAB for the hierarchy separator; older versions and Courier
	 * one name a line with the separator of the layout ('.' for
	 * Maildir++).
	 */
	if (n >= 4 && memcmp(data, "V\t2\n", 4) == 0)
		v2 = true;
	for (p = data; p < end; ) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl != NULL ? nl : end, *name, *q;

		if (nl == NULL && n == STORE_SUBS_MAX_FILE)
			break;	/* cut by the bound */
		if (v2 && header) {
			if (le == p)
				header = false;
			p = le + 1;
			continue;
		}
		if (le > p && le[-1] == '\r')
			le--;
		name = xstrndup(p, (size_t)(le - p));
		for (q = name; *q != '\0'; q++) {
			if (v2 && *q == '\t')
				*q = '/';
			else if (!v2 && store_folder_is_maildir(u) &&
			    *q == '.')
				*q = '/';
		}
		/* Courier's "INBOX.Sent" is our "Sent". */
		if (!v2 && store_folder_is_maildir(u) &&
		    strncmp(name, "INBOX/", 6) == 0) {
			size_t nl = strlen(name);

			memmove(name, name + 6, nl - 6 + 1);
		}
		if (name[0] != '\0' && (str_case_eq(name, "INBOX") ||
		    store_folder_name_ok(u, name)) &&
		    !store_subs_have(names, name) &&
		    count < STORE_MAX_SUBSCRIPTIONS) {
			strv_push(&names, str_case_eq(name, "INBOX") ?
			    "INBOX" : name);
			count++;
		}
		free(name);
		p = (nl != NULL ? nl : end) + 1;
	}
	free(data);
	*names_r = names;
	return 0;
}

static int
store_subs_write(struct store_user *u, char **names, const char **error_r)
{
	char *path = store_subs_path(u), *tmp;
	struct buf b;
	size_t i;
	int fd, ret = -1;

	if (path == NULL) {
		*error_r = store_error(&u->error, "no place for the "
		    "subscriptions of %s", u->user);
		return -1;
	}
	buf_init(&b, 0);
	buf_append_str(&b, "V\t2\n\n");
	for (i = 0; names[i] != NULL; i++) {
		const char *q;

		for (q = names[i]; *q != '\0'; q++)
			buf_append_char(&b, *q == '/' ? '\t' : *q);
		buf_append_char(&b, '\n');
	}
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		/* The directory may not exist yet (mbox without folders). */
		char *dir = xstrdup(path), *slash = strrchr(dir, '/');

		*slash = '\0';
		if (store_mkdirs(dir) == 0)
			fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC |
			    O_CLOEXEC | O_NOFOLLOW, 0600);
		free(dir);
	}
	if (fd < 0) {
		*error_r = store_folder_err(u, "open", tmp);
		goto out;
	}
	if (fdio_write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		*error_r = store_folder_err(u, "write", tmp);
		close(fd);
		(void)unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		*error_r = store_folder_err(u, "rename", tmp);
		(void)unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	buf_free(&b);
	free(tmp);
	free(path);
	return ret;
}

int
store_subscription_set(struct store_user *u, const char *name, bool on,
    const char **error_r)
{
	char **names, **kept;
	bool exists, have;
	size_t i;
	int ret;

	if (str_case_eq(name, "INBOX"))
		name = "INBOX";
	else if (!store_folder_name_ok(u, name)) {
		*error_r = store_error(&u->error, "Invalid mailbox name");
		return STORE_ERR_CANNOT;
	}
	if (store_subscriptions_read(u, &names, &exists, error_r) < 0)
		return STORE_ERR_TEMP;
	have = false;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			have = true;
	if (have == on && exists) {
		strv_free(&names);
		return 0;
	}
	if (on && strv_len(names) >= STORE_MAX_SUBSCRIPTIONS) {
		strv_free(&names);
		*error_r = store_error(&u->error, "Too many subscriptions");
		return STORE_ERR_CANNOT;
	}
	kept = xcalloc(1, sizeof(*kept));
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) != 0)
			strv_push(&kept, names[i]);
	if (on)
		strv_push(&kept, name);
	ret = store_subs_write(u, kept, error_r) < 0 ? STORE_ERR_TEMP : 0;
	strv_free(&kept);
	strv_free(&names);
	return ret;
}
