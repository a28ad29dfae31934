/*
 * userdb: the local users (see userdb.h).
 *
 * "passwd" asks the system (getpwnam_r).  "passwd-file:PATH" reads a
 * Dovecot passwd-file, one user per line:
 *
 *     user:password:uid:gid:gecos:home:shell:extra
 *
 * where empty uid/gid mean the uid/gid Postern runs as and an empty home
 * means $data_directory/home/USER (DESIGN §1).  When userdb is "passwd"
 * but passdb is a passwd-file and we are not root, the passwd-file is the
 * user database too: an unprivileged Postern cannot deliver to system
 * users anyway.
 *
 * Editing (postern user add|passwd|del) takes an fcntl lock on PATH.lock,
 * writes PATH.tmp, fsyncs it, renames it over PATH and fsyncs the
 * directory, so a reader sees the old file or the new one, never half.
 * Passwords are never checked here (password.c, auth).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "cfg_params.h"
#include "log.h"
#include "str.h"
#include "fdio.h"
#include "userdb.h"
#include "xmalloc.h"

/* A passwd-file line, and the user names we accept into one. */
#define MAX_USERDB_LINE		8192
#define MAX_USERDB_NAME		256

static char userdb_errbuf[1024];

static const char * __attribute__((format(printf, 1, 2)))
userdb_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(userdb_errbuf, sizeof(userdb_errbuf), fmt, ap);
	va_end(ap);
	return userdb_errbuf;
}

void
userdb_user_free(struct userdb_user *u)
{
	free(u->name);
	if (u->password != NULL) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->home);
	free(u->gecos);
	free(u->extra);
	memset(u, 0, sizeof(*u));
}

char *
userdb_extra_get(const struct userdb_user *u, const char *key)
{
	const char *p = u->extra;
	size_t klen = strlen(key);

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ' ');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		const char *f = p;

		/* Dovecot: "userdb_" marks a userdb field in a file that
		 * serves as passdb and userdb. */
		if (len > 7 && strncmp(f, "userdb_", 7) == 0) {
			f += 7;
			len -= 7;
		}
		if (len > klen && strncmp(f, key, klen) == 0 && f[klen] == '=')
			return xstrndup(f + klen + 1, len - klen - 1);
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

static const char *
userdb_file_of(const char *spec)
{
	if (strncmp(spec, "passwd-file:", 12) == 0 && spec[12] != '\0')
		return spec + 12;
	return NULL;
}

const char *
userdb_passwd_file(void)
{
	const char *p = userdb_file_of(cfg_get("userdb"));

	if (p == NULL)
		p = userdb_file_of(cfg_get("passdb"));
	return p;
}

/* Which source lookups use: NULL = system passwd, else a file path. */
static const char *
userdb_source(void)
{
	const char *file = userdb_file_of(cfg_get("userdb"));

	if (file != NULL)
		return file;
	if (geteuid() != 0)
		return userdb_file_of(cfg_get("passdb"));
	return NULL;
}

/*
 * Parse one passwd-file line (modified in place) into u.  Returns 1, or
 * 0 for a comment, blank or malformed line (malformed ones are logged).
 */
static int
userdb_parse_line(const char *path, int lineno, char *line,
    struct userdb_user *u)
{
	char *f[8];
	char *p = line;
	size_t n = 0, len = strlen(line);
	long long v;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (*line == '\0' || *line == '#')
		return 0;
	/* Fields after the eighth belong to "extra". */
	while (n < 8) {
		char *colon = n < 7 ? strchr(p, ':') : NULL;

		f[n++] = p;
		if (colon == NULL)
			break;
		*colon = '\0';
		p = colon + 1;
	}
	while (n < 8)
		f[n++] = "";
	if (*f[0] == '\0') {
		log_warning("%s:%d: missing user name: line ignored", path,
		    lineno);
		return 0;
	}
	memset(u, 0, sizeof(*u));
	if (*f[2] == '\0')
		u->uid = getuid();
	else if (str_to_ll(f[2], 0, UINT_MAX - 1, &v) == 0)
		u->uid = (uid_t)v;
	else {
		log_warning("%s:%d: bad uid \"%.20s\": line ignored", path,
		    lineno, f[2]);
		return 0;
	}
	if (*f[3] == '\0')
		u->gid = getgid();
	else if (str_to_ll(f[3], 0, UINT_MAX - 1, &v) == 0)
		u->gid = (gid_t)v;
	else {
		log_warning("%s:%d: bad gid \"%.20s\": line ignored", path,
		    lineno, f[3]);
		return 0;
	}
	u->name = xstrdup(f[0]);
	u->password = *f[1] == '\0' ? NULL : xstrdup(f[1]);
	u->gecos = xstrdup(f[4]);
	u->extra = *f[7] == '\0' ? NULL : xstrdup(f[7]);
	if (*f[5] != '\0')
		u->home = xstrdup(f[5]);
	else
		u->home = xasprintf("%s/home/%s", cfg_get("data_directory"),
		    f[0]);
	return 1;
}

/*
 * Walk the file: cb gets each user; a nonzero return stops the walk and
 * is returned.  -1 with *error_r when the file cannot be read.
 */
static int
userdb_file_walk(const char *path,
    int (*cb)(struct userdb_user *u, void *ctx), void *ctx,
    const char **error_r)
{
	FILE *fp = cfg_fopen_regular(path);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;

	if (fp == NULL) {
		*error_r = userdb_error("%s: cannot open: %s", path,
		    errno == EINVAL ? "not a regular file" : strerror(errno));
		return -1;
	}
	while (rc == 0 && (n = getline(&line, &cap, fp)) >= 0) {
		struct userdb_user u;

		lineno++;
		if (n > MAX_USERDB_LINE || (size_t)n != strlen(line)) {
			log_warning("%s:%d: line too long or holds a NUL "
			    "byte: ignored", path, lineno);
			continue;
		}
		if (userdb_parse_line(path, lineno, line, &u) <= 0)
			continue;
		rc = cb(&u, ctx);
		userdb_user_free(&u);
	}
	if (rc == 0 && ferror(fp)) {
		*error_r = userdb_error("%s: read error: %s", path,
		    strerror(errno));
		rc = -1;
	}
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	(void)fclose(fp);
	return rc;
}

struct userdb_find {
	const char		*name;
	struct userdb_user	*out;
};

static int
userdb_find_cb(struct userdb_user *u, void *ctx)
{
	struct userdb_find *f = ctx;

	if (strcmp(u->name, f->name) != 0)
		return 0;
	*f->out = *u;
	memset(u, 0, sizeof(*u));
	return 1;
}

static int
userdb_lookup_passwd(const char *name, struct userdb_user *u,
    const char **error_r)
{
	struct passwd pw, *res = NULL;
	char *buf;
	long size = sysconf(_SC_GETPW_R_SIZE_MAX);
	int rc;

	if (size < 1024 || size > 1024 * 1024)
		size = 16384;
	buf = xmalloc((size_t)size);
	rc = getpwnam_r(name, &pw, buf, (size_t)size, &res);
	if (res == NULL) {
		free(buf);
		if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF ||
		    rc == EPERM)
			return 0;
		*error_r = userdb_error("getpwnam(%s): %s", name,
		    strerror(rc));
		return -1;
	}
	memset(u, 0, sizeof(*u));
	u->name = xstrdup(pw.pw_name);
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	u->home = xstrdup(pw.pw_dir != NULL ? pw.pw_dir : "/");
	u->gecos = xstrdup(pw.pw_gecos != NULL ? pw.pw_gecos : "");
	free(buf);
	return 1;
}

int
userdb_lookup(const char *name, struct userdb_user *u, const char **error_r)
{
	const char *file = userdb_source();
	struct userdb_find f = { name, u };
	int rc;

	memset(u, 0, sizeof(*u));
	if (*name == '\0' || strlen(name) > MAX_USERDB_NAME ||
	    strchr(name, ':') != NULL || strchr(name, '/') != NULL)
		return 0;
	if (file == NULL)
		return userdb_lookup_passwd(name, u, error_r);
	rc = userdb_file_walk(file, userdb_find_cb, &f, error_r);
	return rc < 0 ? -1 : rc;
}

struct userdb_list {
	void	(*cb)(const struct userdb_user *u, void *ctx);
	void	*ctx;
};

static int
userdb_list_cb(struct userdb_user *u, void *ctx)
{
	struct userdb_list *l = ctx;

	l->cb(u, l->ctx);
	return 0;
}

int
userdb_file_list(const char *path,
    void (*cb)(const struct userdb_user *u, void *ctx), void *ctx)
{
	struct userdb_list l = { cb, ctx };
	const char *error;

	if (userdb_file_walk(path, userdb_list_cb, &l, &error) < 0) {
		log_error("%s", error);
		return -1;
	}
	return 0;
}

/*
 * Editing.
 */

static bool
userdb_name_ok(const char *name)
{
	const unsigned char *p;

	if (*name == '\0' || *name == '#' || *name == '-' ||
	    strlen(name) > MAX_USERDB_NAME)
		return false;
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p <= ' ' || *p == ':' || *p == '/' || *p == 0x7f)
			return false;
	}
	return true;
}

static int
userdb_fsync_dir(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int rc;

	if (slash == NULL)
		str_lcpy(dir, ".", strlen(dir) + 1);
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = fdio_fsync_dir(dir);
	free(dir);
	return rc;
}

/*
 * Rewrite path: every line is copied except NAME's; with set, NAME's line
 * gets the new password (keeping its other fields) or is appended.
 */
static int
userdb_file_edit(const char *path, const char *name, const char *hash,
    bool set, const char **error_r)
{
	char *lockpath = xasprintf("%s.lock", path);
	char *tmppath = xasprintf("%s.tmp", path);
	struct flock fl;
	struct stat st;
	struct buf out;
	FILE *in;
	char *line = NULL;
	size_t cap = 0, nlen = strlen(name);
	ssize_t n;
	int lockfd, fd = -1, ret = -1;
	bool found = false, have_st;
	mode_t mode = 0600;

	buf_init(&out, 0);
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		*error_r = userdb_error("%s: cannot open: %s", lockpath,
		    strerror(errno));
		goto out_nolock;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(lockfd, F_SETLKW, &fl) < 0) {
		if (errno != EINTR) {
			*error_r = userdb_error("%s: cannot lock: %s",
			    lockpath, strerror(errno));
			goto out;
		}
	}

	have_st = stat(path, &st) == 0;
	if (have_st)
		mode = st.st_mode & 07777;
	if ((in = fopen(path, "r")) == NULL && errno != ENOENT) {
		*error_r = userdb_error("%s: cannot open: %s", path,
		    strerror(errno));
		goto out;
	}
	while (in != NULL && (n = getline(&line, &cap, in)) >= 0) {
		bool mine = strncmp(line, name, nlen) == 0 &&
		    line[nlen] == ':';

		if (!mine) {
			(void)buf_append(&out, line, (size_t)n);
			if (n > 0 && line[n - 1] != '\n')
				(void)buf_append_char(&out, '\n');
			continue;
		}
		if (found || !set) {
			found = true;
			continue;
		}
		found = true;
		{
			/* Keep uid, gid, gecos, home, ... of the line. */
			char *rest = strchr(line + nlen + 1, ':');

			(void)buf_printf(&out, "%s:%s", name, hash);
			if (rest != NULL) {
				(void)buf_append_str(&out, rest);
				if (out.len > 0 &&
				    out.data[out.len - 1] != '\n')
					(void)buf_append_char(&out, '\n');
			} else
				(void)buf_append_str(&out, "::::::\n");
		}
	}
	if (in != NULL) {
		if (ferror(in)) {
			*error_r = userdb_error("%s: read error: %s", path,
			    strerror(errno));
			(void)fclose(in);
			goto out;
		}
		(void)fclose(in);
	}
	if (!set && !found) {
		*error_r = userdb_error("%s: no user %s", path, name);
		goto out;
	}
	if (set && !found)
		(void)buf_printf(&out, "%s:%s::::::\n", name, hash);

	(void)unlink(tmppath);
	fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = userdb_error("%s: cannot create: %s", tmppath,
		    strerror(errno));
		goto out;
	}
	{
		const char *p = out.data;
		size_t left = out.len;

		while (left > 0) {
			ssize_t w = write(fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				*error_r = userdb_error("%s: write: %s",
				    tmppath, strerror(errno));
				goto out_unlink;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	if (have_st && geteuid() == 0)
		(void)fchown(fd, st.st_uid, st.st_gid);
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		*error_r = userdb_error("%s: %s", tmppath, strerror(errno));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = userdb_error("%s: close: %s", tmppath,
		    strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmppath, path) < 0) {
		*error_r = userdb_error("rename(%s, %s): %s", tmppath, path,
		    strerror(errno));
		goto out_unlink;
	}
	(void)userdb_fsync_dir(path);
	ret = 0;
	goto out;
out_unlink:
	if (fd >= 0)
		(void)close(fd);
	fd = -1;
	(void)unlink(tmppath);
out:
	(void)close(lockfd);	/* releases the lock */
out_nolock:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (out.data != NULL)
		explicit_bzero(out.data, out.cap);
	buf_free(&out);
	free(lockpath);
	free(tmppath);
	return ret;
}

int
userdb_file_set(const char *path, const char *name, const char *hash,
    const char **error_r)
{
	if (!userdb_name_ok(name)) {
		*error_r = userdb_error("bad user name \"%.64s\"", name);
		return -1;
	}
	if (strpbrk(hash, ":\r\n") != NULL) {
		*error_r = userdb_error("password hash holds ':' or a line "
		    "end");
		return -1;
	}
	return userdb_file_edit(path, name, hash, true, error_r);
}

int
userdb_file_del(const char *path, const char *name, const char **error_r)
{
	if (!userdb_name_ok(name)) {
		*error_r = userdb_error("bad user name \"%.64s\"", name);
		return -1;
	}
	return userdb_file_edit(path, name, NULL, false, error_r);
}
