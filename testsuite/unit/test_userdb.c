/*
 * Unit tests of common/userdb.c: passwd-file lookups (empty uid, gid and
 * home take the defaults, extra fields, comments and malformed lines),
 * which file userdb_passwd_file() names, and editing with
 * userdb_file_set/del read back with userdb_file_list and lookups.
 */
#include "config.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "test.h"
#include "userdb.h"
#include "xmalloc.h"

static char tmpdir[] = "/tmp/test_userdb.XXXXXX";

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

static char *
read_file(const char *path)
{
	struct buf b;
	char chunk[512];
	size_t n;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		return NULL;
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	buf_cstr(&b);
	return buf_steal(&b);
}

static void
set(const char *name, const char *value)
{
	const char *err;

	if (cfg_set(name, value, &err) != 0) {
		printf("# cfg_set %s: %s\n", name, err);
		abort();
	}
}

static void
test_lookup(void)
{
	struct userdb_user u;
	const char *err = NULL;
	char *path, *spec, *home;

	test_begin("passwd-file lookup");
	path = write_file("users",
	    "# users of the test\n"
	    "\n"
	    "alice:{PLAIN}secret:::Alice A::\n"
	    "bob:{PLAIN}pw:1234:5678:Bob:/home/bob:/bin/sh:extra:fields\n"
	    "carol:\n"
	    "bad:x:notanumber::::\n"
	    "bad2:x::-1:::\n"
	    ":nobody:::::\n"
	    "last:{PLAIN}x:42:43:::");
	spec = xasprintf("passwd-file:%s", path);
	test_assert(cfg_load(NULL) == 0);
	set("data_directory", tmpdir);
	set("userdb", spec);
	test_assert_streq(userdb_passwd_file(), path);

	test_assert(userdb_lookup("alice", &u, &err) == 1);
	test_assert_streq(u.name, "alice");
	test_assert_streq(u.password, "{PLAIN}secret");
	test_assert(u.uid == getuid());
	test_assert(u.gid == getgid());
	test_assert_streq(u.gecos, "Alice A");
	home = xasprintf("%s/home/alice", tmpdir);
	test_assert_streq(u.home, home);
	free(home);
	userdb_user_free(&u);
	test_assert(u.name == NULL && u.password == NULL);

	test_assert(userdb_lookup("bob", &u, &err) == 1);
	test_assert(u.uid == 1234 && u.gid == 5678);
	test_assert_streq(u.home, "/home/bob");
	test_assert_streq(u.gecos, "Bob");
	userdb_user_free(&u);

	/* Only a name: no password, every other field defaulted. */
	test_assert(userdb_lookup("carol", &u, &err) == 1);
	test_assert(u.password == NULL);
	test_assert(u.uid == getuid() && u.gid == getgid());
	test_assert_streq(u.gecos, "");
	userdb_user_free(&u);

	/* No line end after the last line. */
	test_assert(userdb_lookup("last", &u, &err) == 1);
	test_assert(u.uid == 42 && u.gid == 43);
	userdb_user_free(&u);

	/* Malformed lines are skipped; names match exactly. */
	test_assert(userdb_lookup("bad", &u, &err) == 0);
	test_assert(userdb_lookup("bad2", &u, &err) == 0);
	test_assert(userdb_lookup("Alice", &u, &err) == 0);
	test_assert(userdb_lookup("", &u, &err) == 0);
	test_assert(userdb_lookup("alice:x", &u, &err) == 0);
	test_assert(userdb_lookup("../alice", &u, &err) == 0);
	test_assert(userdb_lookup("nobody", &u, &err) == 0);
	test_assert(userdb_lookup("# users of the test", &u, &err) == 0);

	/* An unreadable file is a temporary error, not "no such user". */
	set("userdb", "passwd-file:/nonexistent/users");
	err = NULL;
	test_assert(userdb_lookup("alice", &u, &err) == -1);
	test_assert(err != NULL && strstr(err, "/nonexistent/users") != NULL);

	/* userdb = passwd, passdb = passwd-file: the file names the users
	 * when we are not root. */
	set("userdb", "passwd");
	set("passdb", spec);
	test_assert_streq(userdb_passwd_file(), path);
	if (geteuid() != 0) {
		test_assert(userdb_lookup("bob", &u, &err) == 1);
		userdb_user_free(&u);
	}
	set("passdb", "pam");
	test_assert(userdb_passwd_file() == NULL);
	/* The system database: root exists everywhere. */
	test_assert(userdb_lookup("root", &u, &err) == 1);
	test_assert(u.uid == 0 && u.password == NULL);
	userdb_user_free(&u);
	test_assert(userdb_lookup("no-such-user-here", &u, &err) == 0);

	unlink(path);
	free(path);
	free(spec);
	test_end();
}

struct names {
	char	text[256];
};

static void
list_cb(const struct userdb_user *u, void *ctx)
{
	struct names *n = ctx;
	size_t len = strlen(n->text);

	snprintf(n->text + len, sizeof(n->text) - len, "%s%s=%s",
	    len > 0 ? " " : "", u->name,
	    u->password != NULL ? u->password : "-");
}

static void
test_edit(void)
{
	struct userdb_user u;
	struct names n;
	struct stat st;
	const char *err = NULL;
	char *path, *spec, *text, *tmp;

	test_begin("passwd-file set, del, list");
	path = xasprintf("%s/edited", tmpdir);
	tmp = xasprintf("%s.tmp", path);
	spec = xasprintf("passwd-file:%s", path);
	test_assert(cfg_load(NULL) == 0);
	set("data_directory", tmpdir);
	set("userdb", spec);

	/* A missing file is created, mode 0600. */
	test_assert(userdb_file_set(path, "alice", "{PLAIN}one", &err) == 0);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(userdb_file_set(path, "bob", "{PLAIN}two", &err) == 0);
	text = read_file(path);
	test_assert_streq(text, "alice:{PLAIN}one::::::\n"
	    "bob:{PLAIN}two::::::\n");
	free(text);

	/* Replacing a password keeps the other fields and the order. */
	free(write_file("edited",
	    "# kept comment\n"
	    "alice:{PLAIN}one:1001:1002:Alice:/home/alice:/bin/sh\n"
	    "alicex:{PLAIN}other:::::\n"
	    "bob:{PLAIN}two::::::"));
	chmod(path, 0640);
	test_assert(userdb_file_set(path, "alice", "{PLAIN}new", &err) == 0);
	text = read_file(path);
	test_assert_streq(text, "# kept comment\n"
	    "alice:{PLAIN}new:1001:1002:Alice:/home/alice:/bin/sh\n"
	    "alicex:{PLAIN}other:::::\n"
	    "bob:{PLAIN}two::::::\n");
	free(text);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
	test_assert(access(tmp, F_OK) != 0);
	test_assert(userdb_lookup("alice", &u, &err) == 1);
	test_assert_streq(u.password, "{PLAIN}new");
	test_assert(u.uid == 1001);
	userdb_user_free(&u);

	memset(&n, 0, sizeof(n));
	test_assert(userdb_file_list(path, list_cb, &n) == 0);
	test_assert_streq(n.text,
	    "alice={PLAIN}new alicex={PLAIN}other bob={PLAIN}two");

	/* Delete, then the rest is still there. */
	test_assert(userdb_file_del(path, "alice", &err) == 0);
	test_assert(userdb_lookup("alice", &u, &err) == 0);
	test_assert(userdb_lookup("alicex", &u, &err) == 1);
	userdb_user_free(&u);
	memset(&n, 0, sizeof(n));
	test_assert(userdb_file_list(path, list_cb, &n) == 0);
	test_assert_streq(n.text, "alicex={PLAIN}other bob={PLAIN}two");
	test_assert(userdb_file_del(path, "alice", &err) == -1);
	test_assert(err != NULL && strstr(err, "no user alice") != NULL);

	/* Names and hashes that would break the file are refused. */
	test_assert(userdb_file_set(path, "a:b", "{PLAIN}x", &err) == -1);
	test_assert(userdb_file_set(path, "", "{PLAIN}x", &err) == -1);
	test_assert(userdb_file_set(path, "#x", "{PLAIN}x", &err) == -1);
	test_assert(userdb_file_set(path, "a b", "{PLAIN}x", &err) == -1);
	test_assert(userdb_file_set(path, "a/b", "{PLAIN}x", &err) == -1);
	test_assert(userdb_file_set(path, "eve", "{PLAIN}x:y", &err) == -1);
	test_assert(userdb_file_set(path, "eve", "{PLAIN}x\ny", &err) == -1);
	test_assert(userdb_file_del(path, "a:b", &err) == -1);
	memset(&n, 0, sizeof(n));
	test_assert(userdb_file_list(path, list_cb, &n) == 0);
	test_assert_streq(n.text, "alicex={PLAIN}other bob={PLAIN}two");
	test_assert(userdb_file_list("/nonexistent/x", list_cb, &n) == -1);

	unlink(path);
	text = xasprintf("%s.lock", path);
	unlink(text);
	free(text);
	free(tmp);
	free(path);
	free(spec);
	test_end();
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		abort();
	test_lookup();
	test_edit();
	rmdir(tmpdir);
	return test_done();
}
