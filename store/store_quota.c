/*
 * store_quota: a user's quota (RFC 9208 resources STORAGE and MESSAGE),
 * shared by imap (GETQUOTA, APPEND/COPY/MOVE refusal) and local (delivery
 * refusal), see store.h "Quota".
 *
 * Limits are written as Dovecot's quota_rule: "*:storage=1G:messages=1000".
 * Usage is kept cheaply:
 *   Maildir: the Maildir++ "maildirsize" file in the Maildir root, as
 *            Courier and Dovecot's maildir quota keep it.  Its first line
 *            is the limit ("1073741824S,1000C"); every other line is a
 *            change "BYTES COUNT" (negative for removals), appended with
 *            one write(2) to an O_APPEND descriptor so concurrent writers
 *            never mix lines.  It is rebuilt from the file names
 *            (",S=size") of every folder when it is missing, unreadable,
 *            written for another limit, larger than 5120 bytes (Maildir++
 *            rule), or over quota and older than 15 minutes (another
 *            program may have removed messages without telling it).
 *   mbox:    the sizes of the mbox files; no message count.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "str.h"
#include "store_private.h"
#include "xmalloc.h"

/* Maildir++: a maildirsize larger than this is rebuilt. */
#define STORE_QUOTA_MAX_FILE	5120
/* Maildir++: an over-quota maildirsize older than this is rebuilt. */
#define STORE_QUOTA_STALE_SEC	(15 * 60)
/* Directories walked at most to sum an mbox tree, and their depth. */
#define STORE_QUOTA_MAX_DIRS	10000
#define STORE_QUOTA_MAX_DEPTH	16

static char quota_error[512];

static const char *
quota_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(quota_error, sizeof(quota_error), fmt, ap);
	va_end(ap);
	return quota_error;
}

/* ---- rules ---- */

/*
 * "1G", "200M", "512k", "100b", "1024" (KiB without a unit, as Dovecot
 * reads storage=) into bytes.  -1 on a bad or overflowing value.
 */
static int
quota_parse_size(const char *s, size_t len, uint64_t unit_default,
    uint64_t *bytes_r)
{
	uint64_t v = 0, mul = unit_default;
	size_t i = 0;

	if (len == 0)
		return -1;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return -1;
	if (i < len) {
		if (len - i > 2)
			return -1;
		switch (s[i]) {
		case 'b': case 'B': mul = 1; break;
		case 'k': case 'K': mul = 1024ULL; break;
		case 'm': case 'M': mul = 1024ULL * 1024; break;
		case 'g': case 'G': mul = 1024ULL * 1024 * 1024; break;
		case 't': case 'T': mul = 1024ULL * 1024 * 1024 * 1024; break;
		default: return -1;
		}
		/* "1GB" and "1GiB"-like tails: only a trailing B is allowed. */
		if (len - i == 2 && s[i + 1] != 'b' && s[i + 1] != 'B')
			return -1;
	}
	if (mul != 0 && v > UINT64_MAX / mul)
		return -1;
	*bytes_r = v * mul;
	return 0;
}

int
store_quota_rule_parse(const char *rule, struct store_quota_limit *l,
    const char **error_r)
{
	const char *p, *colon, *eq;

	memset(l, 0, sizeof(*l));
	if (rule == NULL || *rule == '\0')
		return 0;
	colon = strchr(rule, ':');
	if (colon == NULL) {
		*error_r = quota_err("quota_rule \"%.100s\": expected "
		    "MAILBOX:LIMITS", rule);
		return -1;
	}
	/* Only the default rule ("*", or "?" which Dovecot applies when
	 * maildirsize gives none) sets the user's quota; mailbox-specific
	 * rules are not supported and leave the limits alone. */
	if (colon - rule != 1 || (rule[0] != '*' && rule[0] != '?'))
		return 0;
	for (p = colon + 1; *p != '\0';
	    p = *colon == '\0' ? colon : colon + 1) {
		size_t len;
		uint64_t v;

		colon = strchr(p, ':');
		if (colon == NULL)
			colon = p + strlen(p);
		len = (size_t)(colon - p);
		if (len == 0)
			continue;
		if (len == 6 && strncasecmp(p, "ignore", 6) == 0) {
			memset(l, 0, sizeof(*l));
			return 0;
		}
		eq = memchr(p, '=', len);
		if (eq == NULL)
			goto bad;
		if (eq[1] == '+' || eq[1] == '-' || colon[-1] == '%') {
			/* Relative and percentage limits adjust another
			 * rule: only meaningful with mailbox rules. */
			continue;
		}
		if (eq - p == 7 && strncasecmp(p, "storage", 7) == 0) {
			if (quota_parse_size(eq + 1, (size_t)(colon - eq - 1),
			    1024, &v) < 0)
				goto bad;
			l->bytes = v;
		} else if (eq - p == 5 && strncasecmp(p, "bytes", 5) == 0) {
			if (quota_parse_size(eq + 1, (size_t)(colon - eq - 1),
			    1, &v) < 0)
				goto bad;
			l->bytes = v;
		} else if (eq - p == 8 && strncasecmp(p, "messages", 8) == 0) {
			if (quota_parse_size(eq + 1, (size_t)(colon - eq - 1),
			    1, &v) < 0)
				goto bad;
			l->messages = v;
		} else
			goto bad;
	}
	return 0;
bad:
	*error_r = quota_err("quota_rule \"%.100s\": bad limit", rule);
	memset(l, 0, sizeof(*l));
	return -1;
}

bool
store_quota_limited(const struct store_quota_limit *l)
{
	return l->bytes > 0 || l->messages > 0;
}

bool
store_quota_fits(const struct store_quota_limit *l,
    const struct store_quota_usage *u, uint64_t bytes, uint64_t messages)
{
	if (l->bytes > 0 && (u->bytes + bytes > l->bytes ||
	    u->bytes + bytes < u->bytes))
		return false;
	if (l->messages > 0 && messages > 0 &&
	    u->messages + messages > l->messages)
		return false;
	return true;
}

/* ---- Maildir++ maildirsize ---- */

/* The size a Maildir file name carries (",S=123"), else from stat. */
static uint64_t
quota_file_size(int dfd, const char *name)
{
	const char *s = strstr(name, ",S=");
	struct stat st;

	if (s != NULL) {
		uint64_t v = 0;
		const char *p = s + 3;

		for (; *p >= '0' && *p <= '9' && v < UINT64_MAX / 10; p++)
			v = v * 10 + (uint64_t)(*p - '0');
		if (p > s + 3 && (*p == '\0' || *p == ',' || *p == ':'))
			return v;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	return 0;
}

/* Add up dir/cur and dir/new. */
static void
quota_sum_maildir(const char *dir, struct store_quota_usage *u)
{
	static const char *const subs[] = { "cur", "new" };
	size_t i;

	for (i = 0; i < 2; i++) {
		char *path = xasprintf("%s/%s", dir, subs[i]);
		DIR *d = opendir(path);
		struct dirent *de;

		free(path);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			u->bytes += quota_file_size(dirfd(d), de->d_name);
			u->messages++;
		}
		closedir(d);
	}
}

/* Sum every folder of a Maildir++ root: INBOX and each ROOT/.Name. */
static int
quota_maildir_count(const char *root, struct store_quota_usage *u,
    const char **error_r)
{
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	memset(u, 0, sizeof(*u));
	d = opendir(root);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;	/* no mail delivered yet */
		*error_r = quota_err("opendir(%s) failed: %s", root,
		    strerror(errno));
		return -1;
	}
	quota_sum_maildir(root, u);
	while ((de = readdir(d)) != NULL && n < STORE_MAX_FOLDERS) {
		char *path;

		/* Maildir++ folders are ".Name"; store_folder.c's deleted
		 * folders ("..postern-deleted-") are being removed. */
		if (de->d_name[0] != '.' || de->d_name[1] == '\0' ||
		    de->d_name[1] == '.')
			continue;
		path = xasprintf("%s/%s", root, de->d_name);
		quota_sum_maildir(path, u);
		free(path);
		n++;
	}
	closedir(d);
	return 0;
}

/* The first line of maildirsize for l: "1073741824S,1000C". */
static void
quota_header(const struct store_quota_limit *l, char *out, size_t size)
{
	if (l->bytes > 0 && l->messages > 0)
		snprintf(out, size, "%" PRIu64 "S,%" PRIu64 "C", l->bytes,
		    l->messages);
	else if (l->messages > 0)
		snprintf(out, size, "%" PRIu64 "C", l->messages);
	else
		snprintf(out, size, "%" PRIu64 "S", l->bytes);
}

/*
 * Read maildirsize: 1 with the sum when it is usable for l, 0 when it
 * must be rebuilt.
 */
static int
quota_maildirsize_read(const char *path, const struct store_quota_limit *l,
    struct store_quota_usage *u)
{
	char buf[STORE_QUOTA_MAX_FILE + 2], hdr[64], *line, *nl;
	struct stat st;
	ssize_t n;
	int64_t bytes = 0, count = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > STORE_QUOTA_MAX_FILE) {
		close(fd);
		return 0;
	}
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0 || n > STORE_QUOTA_MAX_FILE)
		return 0;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL)
		return 0;
	*nl = '\0';
	quota_header(l, hdr, sizeof(hdr));
	if (strcmp(buf, hdr) != 0)
		return 0;	/* written for another limit */
	for (line = nl + 1; *line != '\0'; line = nl + 1) {
		long long b, c;
		char *end;

		nl = strchr(line, '\n');
		if (nl == NULL)
			return 0;	/* a line being written: recount */
		*nl = '\0';
		errno = 0;
		b = strtoll(line, &end, 10);
		if (end == line || *end != ' ' || errno != 0)
			return 0;
		line = end + 1;
		c = strtoll(line, &end, 10);
		if (end == line || *end != '\0' || errno != 0)
			return 0;
		/* Sums that do not fit are a damaged file: recount. */
		if (__builtin_add_overflow(bytes, b, &bytes) ||
		    __builtin_add_overflow(count, c, &count))
			return 0;
	}
	if (bytes < 0 || count < 0)
		return 0;
	u->bytes = (uint64_t)bytes;
	u->messages = (uint64_t)count;
	if (!store_quota_fits(l, u, 0, 0) &&
	    st.st_mtime + STORE_QUOTA_STALE_SEC < time(NULL))
		return 0;
	return 1;
}

/* Rebuild maildirsize (written aside in tmp/, then renamed). */
static int
quota_maildirsize_rebuild(const char *root, const struct store_quota_limit *l,
    struct store_quota_usage *u, const char **error_r)
{
	char hdr[64], *tmp, *path, *text;
	int fd, ret = 0;

	if (quota_maildir_count(root, u, error_r) < 0)
		return -1;
	quota_header(l, hdr, sizeof(hdr));
	text = xasprintf("%s\n%" PRIu64 " %" PRIu64 "\n", hdr, u->bytes,
	    u->messages);
	tmp = xasprintf("%s/tmp/%lld.%ld_maildirsize", root,
	    (long long)time(NULL), (long)getpid());
	path = xasprintf("%s/maildirsize", root);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		/* No tmp/ (nothing delivered yet): the count stands, the
		 * file is written once the Maildir exists. */
		if (errno != ENOENT)
			log_warning("open(%s) failed: %s", tmp,
			    strerror(errno));
	} else if (fdio_write_all(fd, text, strlen(text)) < 0 ||
	    close(fd) < 0 || rename(tmp, path) < 0) {
		*error_r = quota_err("writing %s failed: %s", path,
		    strerror(errno));
		(void)unlink(tmp);
		ret = -1;
	}
	free(text);
	free(tmp);
	free(path);
	return ret;
}

/* ---- mbox ---- */

static void
quota_mbox_file(int dfd, const char *name, struct store_quota_usage *u)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		u->bytes += (uint64_t)st.st_size;
}

static void
quota_mbox_walk(const char *dir, unsigned depth, size_t *ndirs,
    struct store_quota_usage *u)
{
	DIR *d;
	struct dirent *de;

	if (depth > STORE_QUOTA_MAX_DEPTH || ++*ndirs > STORE_QUOTA_MAX_DIRS)
		return;
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		/* Dot files are indexes and subscriptions, not mail. */
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			char *sub = xasprintf("%s/%s", dir, de->d_name);

			quota_mbox_walk(sub, depth + 1, ndirs, u);
			free(sub);
		} else if (S_ISREG(st.st_mode))
			u->bytes += (uint64_t)st.st_size;
	}
	closedir(d);
}

/* ---- the interface ---- */

int
store_quota_usage_loc(const struct store_location *loc,
    const struct store_quota_limit *l, struct store_quota_usage *u,
    const char **error_r)
{
	char *path;
	int r;

	memset(u, 0, sizeof(*u));
	if (loc->format == STORE_FORMAT_MBOX) {
		size_t ndirs = 0;

		size_t rlen = loc->root != NULL ? strlen(loc->root) : 0;

		/* An inbox inside the folder directory is counted there. */
		if (loc->root == NULL || strncmp(loc->inbox, loc->root,
		    rlen) != 0 || loc->inbox[rlen] != '/')
			quota_mbox_file(AT_FDCWD, loc->inbox, u);
		if (loc->root != NULL)
			quota_mbox_walk(loc->root, 0, &ndirs, u);
		return 0;
	}
	path = xasprintf("%s/maildirsize", loc->root);
	r = quota_maildirsize_read(path, l, u);
	free(path);
	if (r == 1)
		return 0;
	return quota_maildirsize_rebuild(loc->root, l, u, error_r);
}

int
store_quota_usage(struct store_user *su, const struct store_quota_limit *l,
    struct store_quota_usage *u, const char **error_r)
{
	return store_quota_usage_loc(&su->loc, l, u, error_r);
}

const struct store_location *
store_user_location(const struct store_user *su)
{
	return &su->loc;
}

void
store_quota_update_loc(const struct store_location *loc, int64_t bytes,
    int64_t messages)
{
	char line[64], *path;
	int fd, len;

	if (loc->format != STORE_FORMAT_MAILDIR || (bytes == 0 &&
	    messages == 0))
		return;
	path = xasprintf("%s/maildirsize", loc->root);
	/* Only a file that exists is kept up to date: without one there
	 * is no quota, or the next reader counts afresh anyway. */
	fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		free(path);
		return;
	}
	len = snprintf(line, sizeof(line), "%lld %lld\n", (long long)bytes,
	    (long long)messages);
	/* One write: Maildir++ writers append whole lines. */
	if (len > 0 && (size_t)len < sizeof(line) &&
	    write(fd, line, (size_t)len) != len)
		log_warning("write(%s) failed: %s", path, strerror(errno));
	close(fd);
	free(path);
}

void
store_quota_update(struct store_user *su, int64_t bytes, int64_t messages)
{
	store_quota_update_loc(&su->loc, bytes, messages);
}

uint64_t
store_quota_msg_size(struct store_mailbox *mb, uint32_t idx)
{
	const char *s;

	if (idx >= mb->count)
		return 0;
	if (mb->user->loc.format == STORE_FORMAT_MAILDIR &&
	    mb->priv[idx].name != NULL &&
	    (s = strstr(mb->priv[idx].name, ",S=")) != NULL)
		return strtoull(s + 3, NULL, 10);
	return mb->msgs[idx].vsize;
}

void
store_quota_expunging(struct store_mailbox *mb, const uint32_t *uids,
    size_t count)
{
	int64_t bytes = 0, n = 0;
	size_t i;

	if (mb->user == NULL || mb->user->loc.format != STORE_FORMAT_MAILDIR)
		return;
	for (i = 0; i < count; i++) {
		int64_t idx = store_mailbox_find_uid(mb, uids[i]);
		if (idx < 0)
			continue;
		bytes += (int64_t)store_quota_msg_size(mb, (uint32_t)idx);
		n++;
	}
	store_quota_update_loc(&mb->user->loc, -bytes, -n);
}
