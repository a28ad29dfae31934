/*
 * queue_list: mailq listing and delete/hold/release straight on the queue
 * files (see queue_list.h).  The listing follows Postfix's showq output
 * (postqueue -p, short queue ID layout) so that scripts written for
 * Postfix's mailq keep working; longer queue IDs simply widen the first
 * column.  Moving a file between queue directories is a rename(2) within
 * one file system, so a crash leaves the message in one place or the
 * other, never in both or neither.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue_file.h"
#include "queue_list.h"
#include "str.h"
#include "xmalloc.h"

/* Postfix's showq_compat layout for short queue IDs. */
#define QL_STRING_FORMAT	"%-11s %7s %-20s %s\n"
#define QL_SENDER_FORMAT	"%-11s %7lld %20.20s %s\n"
/* A reason is right-aligned so that its ')' ends in column 78. */
#define QL_REASON_WIDTH		76

static char ql_errbuf[512];

bool
queue_list_id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++) {
		char c = id[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z')))
			return false;
	}
	return i > 0 && i < QUEUE_ID_MAX;
}

static int
ql_id_cmp(const void *a, const void *b)
{
	const char *const *pa = a, *const *pb = b;

	return strcmp(*pa, *pb);
}

/*
 * The valid queue IDs in queue_dir/sub, sorted; NULL (errno set) when the
 * directory cannot be read.  A missing directory is an empty queue.
 */
static char **
ql_read_ids(const char *queue_dir, const char *sub)
{
	char path[PATH_MAX];
	char **ids = xcalloc(1, sizeof(*ids));
	struct dirent *de;
	DIR *d;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_dir, sub) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		strv_free(&ids);
		return NULL;
	}
	if ((d = opendir(path)) == NULL) {
		if (errno == ENOENT)
			return ids;
		strv_free(&ids);
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (queue_list_id_valid(de->d_name))
			strv_push(&ids, de->d_name);
	}
	closedir(d);
	qsort(ids, strv_len(ids), sizeof(*ids), ql_id_cmp);
	return ids;
}

static const char *
ql_error(const char *what, const char *arg)
{
	snprintf(ql_errbuf, sizeof(ql_errbuf), "%s %s: %s", what, arg,
	    strerror(errno));
	return ql_errbuf;
}

/* Printable copy of an address: control bytes become '?', as showq does. */
static char *
ql_printable(const char *s)
{
	char *p, *out = xstrdup(s);

	for (p = out; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return out;
}

static void
ql_print_msg(FILE *out, const char *id, char mark, const struct queue_msg *m)
{
	char id_status[QUEUE_ID_MAX + 2];
	const char *last_reason = "";
	char *sender;
	size_t i;

	snprintf(id_status, sizeof(id_status), "%s%s", id,
	    mark == ' ' ? "" : (mark == '*' ? "*" : "!"));
	sender = ql_printable(m->sender[0] == '\0' ? "MAILER-DAEMON" :
	    m->sender);
	/* asctime(): "%20.20s" keeps "Mon Nov 23 16:00:00 ", no year. */
	{
		struct tm tm;
		char tbuf[64];
		time_t t = m->arrival;

		localtime_r(&t, &tm);
		if (asctime_r(&tm, tbuf) == NULL)
			str_lcpy(tbuf, "??", sizeof(tbuf));
		fprintf(out, QL_SENDER_FORMAT, id_status,
		    (long long)m->msg_size, tbuf, sender);
	}
	free(sender);
	for (i = 0; i < m->rcpt_count; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		const char *why;
		char *addr;

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		why = r->defer_text != NULL ? r->defer_text : "";
		/* Like Postfix: print a reason only when it changes. */
		if (strcmp(why, last_reason) != 0) {
			const char *show = *why != '\0' ? why :
			    "reason unavailable";
			char *p = ql_printable(show);
			int pad = QL_REASON_WIDTH - (int)strlen(p);

			fprintf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", p);
			free(p);
			last_reason = why;
		}
		addr = ql_printable(r->addr);
		fprintf(out, QL_STRING_FORMAT, "", "", "", addr);
		free(addr);
	}
}

int
queue_list_print(FILE *out, const char *queue_dir,
    bool (*is_active)(const char *id), const char **error_r)
{
	static const char *const subs[] = { "incoming", "deferred", "hold",
	    NULL };
	unsigned long long total = 0;
	unsigned long count = 0;
	size_t s, i;

	for (s = 0; subs[s] != NULL; s++) {
		char **ids = ql_read_ids(queue_dir, subs[s]);

		if (ids == NULL) {
			*error_r = ql_error("read directory", subs[s]);
			return -1;
		}
		for (i = 0; ids[i] != NULL; i++) {
			struct queue_msg m;
			const char *err;
			char path[PATH_MAX];
			char mark;
			int fd, ret;

			if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s",
			    queue_dir, subs[s], ids[i]) >= sizeof(path))
				continue;
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
				continue;	/* delivered meanwhile */
			ret = queue_file_read(fd, &m, &err);
			close(fd);
			if (ret != 1) {
				queue_msg_free(&m);
				continue;	/* incomplete or corrupt */
			}
			if (strcmp(subs[s], "hold") == 0)
				mark = '!';
			else if (is_active != NULL && is_active(ids[i]))
				mark = '*';
			else
				mark = ' ';
			if (count == 0)
				fprintf(out, QL_STRING_FORMAT, "-Queue ID-",
				    "--Size--", "----Arrival Time----",
				    "-Sender/Recipient-------");
			else
				fputc('\n', out);
			ql_print_msg(out, ids[i], mark, &m);
			total += (unsigned long long)m.msg_size;
			count++;
			queue_msg_free(&m);
		}
		strv_free(&ids);
	}
	if (count == 0)
		fprintf(out, "Mail queue is empty\n");
	else
		/* Rounded up, as Postfix's showq does: never "0 Kbytes". */
		fprintf(out, "\n-- %llu Kbytes in %lu Request%s.\n",
		    (total + 1023) / 1024, count, count == 1 ? "" : "s");
	return (int)(count > INT_MAX ? INT_MAX : count);
}

/* Act on one file; 1 done, 0 not there, -1 error (errno). */
static int
ql_apply_one(const char *queue_dir, enum queue_list_op op, const char *sub,
    const char *id)
{
	char from[PATH_MAX], to[PATH_MAX];

	if ((size_t)snprintf(from, sizeof(from), "%s/%s/%s", queue_dir, sub,
	    id) >= sizeof(from)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	switch (op) {
	case QUEUE_LIST_DELETE:
		if (unlink(from) < 0)
			return errno == ENOENT ? 0 : -1;
		log_info("%s: removed", id);
		return 1;
	case QUEUE_LIST_HOLD:
		if ((size_t)snprintf(to, sizeof(to), "%s/hold/%s", queue_dir,
		    id) >= sizeof(to)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (rename(from, to) < 0)
			return errno == ENOENT ? 0 : -1;
		log_info("%s: placed on hold", id);
		return 1;
	case QUEUE_LIST_RELEASE:
		if ((size_t)snprintf(to, sizeof(to), "%s/deferred/%s",
		    queue_dir, id) >= sizeof(to)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (rename(from, to) < 0)
			return errno == ENOENT ? 0 : -1;
		/* qmgr treats the mtime of a deferred file as its next retry
		 * time: make the released message due now. */
		(void)utimes(to, NULL);
		log_info("%s: released from hold", id);
		return 1;
	}
	return 0;
}

int
queue_list_apply(const char *queue_dir, enum queue_list_op op,
    const char *id, bool (*skip)(const char *id), const char **error_r)
{
	static const char *const del_subs[] = { "incoming", "deferred",
	    "hold", NULL };
	static const char *const hold_subs[] = { "incoming", "deferred",
	    NULL };
	static const char *const rel_subs[] = { "hold", NULL };
	const char *const *subs;
	bool all = strcmp(id, "ALL") == 0;
	int count = 0;
	size_t s, i;

	if (!all && !queue_list_id_valid(id)) {
		snprintf(ql_errbuf, sizeof(ql_errbuf),
		    "invalid queue ID: %.64s", id);
		*error_r = ql_errbuf;
		return -1;
	}
	subs = op == QUEUE_LIST_DELETE ? del_subs :
	    op == QUEUE_LIST_HOLD ? hold_subs : rel_subs;
	for (s = 0; subs[s] != NULL; s++) {
		char **ids;
		int ret;

		if (!all) {
			if (skip != NULL && skip(id))
				return 0;
			ret = ql_apply_one(queue_dir, op, subs[s], id);
			if (ret < 0) {
				*error_r = ql_error(subs[s], id);
				return -1;
			}
			if (ret > 0)
				return 1;
			continue;
		}
		if ((ids = ql_read_ids(queue_dir, subs[s])) == NULL) {
			*error_r = ql_error("read directory", subs[s]);
			return -1;
		}
		for (i = 0; ids[i] != NULL; i++) {
			if (skip != NULL && skip(ids[i]))
				continue;
			ret = ql_apply_one(queue_dir, op, subs[s], ids[i]);
			if (ret < 0) {
				*error_r = ql_error(subs[s], ids[i]);
				strv_free(&ids);
				return -1;
			}
			count += ret;
		}
		strv_free(&ids);
	}
	return count;
}

int
queue_list_delete(const char *queue_dir, const char *id,
    const char **error_r)
{
	return queue_list_apply(queue_dir, QUEUE_LIST_DELETE, id, NULL,
	    error_r);
}

int
queue_list_hold(const char *queue_dir, const char *id, const char **error_r)
{
	return queue_list_apply(queue_dir, QUEUE_LIST_HOLD, id, NULL, error_r);
}

int
queue_list_release(const char *queue_dir, const char *id,
    const char **error_r)
{
	return queue_list_apply(queue_dir, QUEUE_LIST_RELEASE, id, NULL,
	    error_r);
}
