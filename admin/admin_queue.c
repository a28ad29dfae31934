/*
 * admin_queue: postern queue and mailq.
 *
 * While qmgr runs it owns the queue, so list, flush, delete, hold and
 * release are requests on its admin socket $queue_directory/public/qmgr
 * (doc/internals.md: one request line, answer lines ending with ".").
 * When nobody answers there, the operations work on the queue files
 * directly (smtp/queue_list.c), which needs root or the queue owner.
 * "show" always reads the file itself: it prints the envelope and the
 * message of one queue file, like Postfix's postcat -q.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "cfg.h"
#include "limits_pst.h"
#include "queue_file.h"
#include "queue_list.h"
#include "str.h"
#include "xmalloc.h"

/* Seconds to wait for each answer line of qmgr. */
#define ADMIN_QMGR_TIMEOUT	60

/* Queue subdirectories where a message can be found, in search order. */
static const char *const admin_queue_dirs[] = {
	"incoming", "deferred", "hold", "corrupt", NULL
};

/* Connect to public/qmgr; -1 when qmgr does not answer there. */
static int
admin_qmgr_connect(void)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/public/qmgr", cfg_get("queue_directory")) >=
	    sizeof(sun.sun_path))
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

static int
admin_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read one LF-terminated line of at most MAX_IPC_LINE bytes into line
 * (without the LF).  Returns 1, 0 at EOF before a line, -1 on error,
 * timeout or an over-long line.
 */
static int
admin_read_line(int fd, struct buf *in, struct buf *line)
{
	for (;;) {
		char *nl = in->len > 0 ? memchr(in->data, '\n', in->len) :
		    NULL;
		struct pollfd pfd;
		char tmp[4096];
		ssize_t n;

		if (nl != NULL) {
			size_t len = (size_t)(nl - in->data);

			buf_reset(line);
			if (buf_append(line, in->data, len) < 0)
				return -1;
			buf_consume(in, len + 1);
			return 1;
		}
		if (in->len >= MAX_IPC_LINE)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, ADMIN_QMGR_TIMEOUT * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (buf_append(in, tmp, (size_t)n) < 0)
			return -1;
	}
}

/*
 * Fields on internal lines are xtext (doc/internals.md); the mailq text
 * lines of LIST may come as they are.  A line without spaces is taken
 * as one xtext field when it decodes.
 */
static char *
admin_decode_text(const char *s)
{
	char *d;

	if (strchr(s, ' ') == NULL && strchr(s, '+') != NULL &&
	    (d = xtext_decode(s)) != NULL)
		return d;
	return xstrdup(s);
}

/*
 * Send one request to qmgr and copy its answer: mailq text to stdout,
 * "OK text" to stdout, "ERR text" to stderr.  Returns -2 when qmgr is
 * not reachable, 1 when an ERR came back, -1 on a broken answer, else 0.
 */
static int
admin_qmgr_request(const char *request, bool verbose_ok)
{
	struct buf in, line;
	char *req;
	int fd, rc, ret = 0;
	bool ended = false;

	if ((fd = admin_qmgr_connect()) < 0)
		return -2;
	req = xasprintf("%s\n", request);
	if (admin_write_all(fd, req, strlen(req)) < 0) {
		free(req);
		(void)close(fd);
		return -2;
	}
	free(req);
	buf_init(&in, MAX_IPC_LINE * 2);
	buf_init(&line, MAX_IPC_LINE);
	while ((rc = admin_read_line(fd, &in, &line)) == 1) {
		const char *l = buf_cstr(&line);
		char *text;

		if (strcmp(l, ".") == 0) {
			ended = true;
			break;
		}
		if (strncmp(l, "OK", 2) == 0 && (l[2] == '\0' || l[2] == ' ')) {
			text = admin_decode_text(l[2] == ' ' ? l + 3 : "");
			if (verbose_ok && *text != '\0')
				printf("%s: %s\n", admin_progname, text);
			free(text);
		} else if (strncmp(l, "ERR", 3) == 0 &&
		    (l[3] == '\0' || l[3] == ' ')) {
			text = admin_decode_text(l[3] == ' ' ? l + 4 : "");
			admin_err("%s", *text != '\0' ? text : "failed");
			free(text);
			ret = 1;
		} else {
			text = admin_decode_text(l);
			printf("%s\n", text);
			free(text);
		}
	}
	buf_free(&in);
	buf_free(&line);
	(void)close(fd);
	if (!ended) {
		admin_err("qmgr: %s", rc == 0 ? "connection closed early" :
		    "bad or late answer");
		return -1;
	}
	return ret;
}

int
admin_queue_list(void)
{
	int rc;

	if (admin_load_config() < 0)
		return 1;
	rc = admin_qmgr_request("LIST", true);
	if (rc == -2) {
		const char *error;

		/* qmgr is not running: read the queue ourselves. */
		if (queue_list_print(stdout, cfg_get("queue_directory"),
		    NULL, &error) < 0) {
			admin_err("%s", error);
			return 1;
		}
		return 0;
	}
	return rc == 0 ? 0 : 1;
}

int
admin_queue_flush(void)
{
	int rc;

	if (admin_load_config() < 0)
		return 1;
	rc = admin_qmgr_request("FLUSH", false);
	if (rc == -2) {
		admin_err("cannot flush the queue: postern is not running "
		    "(queued mail is tried when it starts)");
		return 1;
	}
	return rc == 0 ? 0 : 1;
}

/* delete / hold / release for each ID (or ALL). */
static int
admin_queue_op(const char *op, int argc, char **argv)
{
	int i, rc, ret = 0;

	if (argc < 3) {
		admin_err("usage: postern queue %s ID...|ALL", op);
		return 2;
	}
	if (admin_load_config() < 0)
		return 1;
	for (i = 2; i < argc; i++) {
		const char *id = argv[i];
		char *req, *upper;
		int n;

		if (strcmp(id, "ALL") != 0 && !queue_list_id_valid(id)) {
			admin_err("bad queue ID \"%s\"", id);
			ret = 1;
			continue;
		}
		upper = xstrdup(op);
		for (n = 0; upper[n] != '\0'; n++)
			upper[n] = (char)toupper((unsigned char)upper[n]);
		req = xasprintf("%s %s", upper, id);
		free(upper);
		rc = admin_qmgr_request(req, true);
		free(req);
		if (rc == -2) {
			const char *qdir = cfg_get("queue_directory");
			const char *error;

			if (strcmp(op, "delete") == 0)
				n = queue_list_delete(qdir, id, &error);
			else if (strcmp(op, "hold") == 0)
				n = queue_list_hold(qdir, id, &error);
			else
				n = queue_list_release(qdir, id, &error);
			if (n < 0) {
				admin_err("%s %s: %s", op, id, error);
				ret = 1;
			} else if (n == 0 && strcmp(id, "ALL") != 0) {
				admin_err("%s: no such message in the queue",
				    id);
				ret = 1;
			} else
				printf("%s: %d message%s %s\n",
				    admin_progname, n, n == 1 ? "" : "s",
				    strcmp(op, "delete") == 0 ? "deleted" :
				    strcmp(op, "hold") == 0 ?
				    "placed on hold" : "released");
		} else if (rc != 0)
			ret = 1;
	}
	return ret;
}

static void
admin_show_time(const char *label, time_t t, long usec)
{
	char text[64];
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(text, sizeof(text), "%a %b %e %H:%M:%S %Y", &tm);
	printf("%s: %s (%lld.%06ld)\n", label, text, (long long)t, usec);
}

static void
admin_show_envelope(const char *where, const struct queue_msg *msg)
{
	size_t i;

	printf("*** ENVELOPE RECORDS %s ***\n", where);
	printf("message_size: %lld\n", (long long)msg->msg_size);
	admin_show_time("message_arrival_time", msg->arrival,
	    msg->arrival_usec);
	printf("sender: %s\n", msg->sender);
	if (msg->sender_params != NULL && *msg->sender_params != '\0')
		printf("sender_params: %s\n", msg->sender_params);
	if (msg->client != NULL && *msg->client != '\0') {
		char *c = xstrdup(msg->client), *p;

		for (p = c; *p != '\0'; p++)
			if (*p == '\t')
				*p = ' ';
		printf("client: %s\n", c);
		free(c);
	}
	for (i = 0; i < msg->rcpt_count; i++) {
		const struct queue_rcpt *r = &msg->rcpts[i];

		printf("recipient: %s (%s)", r->addr,
		    r->state == QUEUE_RCPT_DONE ? "done" : "pending");
		if (r->parent >= 0)
			printf(" parent=%d", r->parent);
		if (r->orcpt != NULL)
			printf(" ORCPT=%s", r->orcpt);
		if (r->notify != 0) {
			printf(" NOTIFY=");
			if (r->notify & QUEUE_NOTIFY_NEVER)
				printf("NEVER");
			else {
				const char *sep = "";

				if (r->notify & QUEUE_NOTIFY_SUCCESS) {
					printf("SUCCESS");
					sep = ",";
				}
				if (r->notify & QUEUE_NOTIFY_FAILURE) {
					printf("%sFAILURE", sep);
					sep = ",";
				}
				if (r->notify & QUEUE_NOTIFY_DELAY)
					printf("%sDELAY", sep);
			}
		}
		printf("\n");
		if (r->defer_text != NULL)
			printf("  deferred: %s %s\n",
			    r->defer_dsn != NULL ? r->defer_dsn : "",
			    r->defer_text);
	}
}

static int
admin_queue_show(int argc, char **argv)
{
	const char *qdir, *error, *id;
	struct queue_msg msg;
	char *path = NULL, *where = NULL, buf[65536];
	off_t off, end;
	size_t i;
	int fd = -1, rc;

	if (argc != 3) {
		admin_err("usage: postern queue show ID");
		return 2;
	}
	id = argv[2];
	if (!queue_list_id_valid(id)) {
		admin_err("bad queue ID \"%s\"", id);
		return 1;
	}
	if (admin_load_config() < 0)
		return 1;
	qdir = cfg_get("queue_directory");
	for (i = 0; admin_queue_dirs[i] != NULL; i++) {
		free(path);
		free(where);
		where = xasprintf("%s/%s", admin_queue_dirs[i], id);
		path = xasprintf("%s/%s", qdir, where);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
			break;
		if (errno == EACCES) {
			admin_err("%s: %s (run as root or the queue owner)",
			    path, strerror(errno));
			free(path);
			free(where);
			return 1;
		}
	}
	if (fd < 0) {
		admin_err("%s: no such message in the queue", id);
		free(path);
		free(where);
		return 1;
	}
	memset(&msg, 0, sizeof(msg));
	rc = queue_file_read(fd, &msg, &error);
	if (rc <= 0) {
		admin_err("%s: %s", path, rc == 0 ?
		    "incomplete queue file" : error);
		queue_msg_free(&msg);	/* an incomplete read keeps some */
		(void)close(fd);
		free(path);
		free(where);
		return 1;
	}
	admin_show_envelope(where, &msg);
	printf("*** MESSAGE CONTENTS %s ***\n", where);
	fflush(stdout);
	off = msg.msg_offset;
	end = msg.msg_offset + msg.msg_size;
	while (off < end) {
		size_t want = (size_t)(end - off) < sizeof(buf) ?
		    (size_t)(end - off) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			admin_err("%s: read error", path);
			break;
		}
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
		off += n;
	}
	if (msg.msg_size > 0) {
		/* The message ends in LF; keep the trailer on its own line. */
		char last;

		if (pread(fd, &last, 1, end - 1) == 1 && last != '\n')
			printf("\n");
	}
	printf("*** END OF MESSAGE %s ***\n", where);
	queue_msg_free(&msg);
	(void)close(fd);
	free(path);
	free(where);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
admin_cmd_queue(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "list";

	if (strcmp(sub, "list") == 0 && argc <= 2)
		return admin_queue_list();
	if (strcmp(sub, "flush") == 0 && argc == 2)
		return admin_queue_flush();
	if (strcmp(sub, "show") == 0)
		return admin_queue_show(argc, argv);
	if (strcmp(sub, "delete") == 0 || strcmp(sub, "hold") == 0 ||
	    strcmp(sub, "release") == 0)
		return admin_queue_op(sub, argc, argv);
	admin_err("usage: postern queue [list | show ID | flush | "
	    "delete ID...|ALL | hold ID...|ALL | release ID...|ALL]");
	return 2;
}
