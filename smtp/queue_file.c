/*
 * queue_file: writer and reader of Postern queue files (format in
 * queue_file.h).  The writer is used by smtpd (possibly from a worker
 * thread for the commit) and must not touch global state besides the
 * thread-local error buffer; the reader is used by qmgr, local and the
 * admin command.  This module does not schedule or deliver anything.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "fdio.h"
#include "queue_file.h"
#include "str.h"
#include "xmalloc.h"

#define QF_HDR_LEN	5		/* type byte + 4-byte length */
#define QF_WBUF_SIZE	(64 * 1024)
#define QF_MAX_RECORD	(64 * 1024)	/* envelope records */

const char *const queue_subdirs[] = {
	"tmp", "incoming", "deferred", "hold", "corrupt", "private",
	"public", NULL
};

static __thread char qf_errbuf[512];

static const char *__attribute__((format(printf, 1, 0)))
qf_error(const char *fmt, const char *arg, int err)
{
	struct buf b;

	/* Built in a buffer, then clipped to the error buffer's size. */
	buf_init(&b, 0);
	buf_printf(&b, fmt, arg);
	buf_printf(&b, ": %s", strerror(err));
	str_lcpy(qf_errbuf, buf_cstr(&b), sizeof(qf_errbuf));
	buf_free(&b);
	return qf_errbuf;
}

int
queue_dirs_create(const char *queue_dir, uid_t uid, gid_t gid,
    const char **error_r)
{
	char path[PATH_MAX];
	size_t i;

	if (mkdir(queue_dir, 0755) < 0 && errno != EEXIST) {
		*error_r = qf_error("mkdir(%s)", queue_dir, errno);
		return -1;
	}
	for (i = 0; queue_subdirs[i] != NULL; i++) {
		mode_t mode = strcmp(queue_subdirs[i], "public") == 0 ?
		    0711 : 0700;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_dir,
		    queue_subdirs[i]) >= sizeof(path)) {
			*error_r = "queue_directory path too long";
			return -1;
		}
		if (mkdir(path, mode) < 0 && errno != EEXIST) {
			*error_r = qf_error("mkdir(%s)", path, errno);
			return -1;
		}
		if (uid != (uid_t)-1 && chown(path, uid, gid) < 0) {
			*error_r = qf_error("chown(%s)", path, errno);
			return -1;
		}
		if (chmod(path, mode) < 0) {
			*error_r = qf_error("chmod(%s)", path, errno);
			return -1;
		}
	}
	return 0;
}

char *
queue_client_get(const char *client, const char *key)
{
	size_t klen = strlen(key);
	const char *p = client;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '\t');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
			return xstrndup(p + klen + 1, len - klen - 1);
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* ---- writer ---- */

struct queue_writer {
	char	 id[QUEUE_ID_MAX];
	char	*queue_dir;
	char	*tmp_path;
	int	 fd;
	off_t	 pos;		/* bytes written to the file so far */
	off_t	 msg_len_pos;	/* offset of the M record length field */
	off_t	 msg_size;
	bool	 in_msg;
	bool	 finished;	/* E written (queue_writer_finish()) */
	bool	 failed;
	int	 error;
	char	*wbuf;
	size_t	 wlen;
	const char *dest_dir;	/* "incoming", or set_dir()'s "hold" */
};

static int
qw_flush(struct queue_writer *w)
{
	size_t off = 0;

	while (off < w->wlen) {
		ssize_t n = write(w->fd, w->wbuf + off, w->wlen - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->failed = true;
			w->error = errno;
			return -1;
		}
		off += (size_t)n;
	}
	w->wlen = 0;
	return 0;
}

static int
qw_put(struct queue_writer *w, const void *data, size_t len)
{
	const char *p = data;

	if (w->failed)
		return -1;
	while (len > 0) {
		size_t n = QF_WBUF_SIZE - w->wlen;

		if (n > len)
			n = len;
		memcpy(w->wbuf + w->wlen, p, n);
		w->wlen += n;
		w->pos += (off_t)n;
		p += n;
		len -= n;
		if (w->wlen == QF_WBUF_SIZE && qw_flush(w) < 0)
			return -1;
	}
	return 0;
}

static void
qf_put_len(unsigned char *hdr, char type, uint32_t len)
{
	uint32_t be = htonl(len);

	hdr[0] = (unsigned char)type;
	memcpy(hdr + 1, &be, 4);
}

static void
queue_make_id(char *id, size_t size, unsigned attempt)
{
	static __thread unsigned counter;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	/* Sortable by time: seconds, microseconds, then a uniquifier. */
	snprintf(id, size, "%09llX%05lX%04X",
	    (unsigned long long)tv.tv_sec & 0xFFFFFFFFFull,
	    (long)tv.tv_usec & 0xFFFFF,
	    (unsigned)(((unsigned)getpid() * 131u + counter++ + attempt * 7919u)
	    & 0xFFFF));
}

struct queue_writer *
queue_writer_new(const char *queue_dir, const char **error_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	unsigned attempt;

	w->queue_dir = xstrdup(queue_dir);
	w->fd = -1;
	for (attempt = 0; attempt < 100; attempt++) {
		queue_make_id(w->id, sizeof(w->id), attempt);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/tmp/%s", queue_dir, w->id);
		w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		*error_r = qf_error("create %s", w->tmp_path, errno);
		free(w->tmp_path);
		free(w->queue_dir);
		free(w);
		return NULL;
	}
	w->wbuf = xmalloc(QF_WBUF_SIZE);
	if (queue_writer_record(w, 'V', QUEUE_FORMAT_VERSION,
	    strlen(QUEUE_FORMAT_VERSION)) < 0) {
		*error_r = qf_error("write %s", w->tmp_path, w->error);
		queue_writer_abort(&w);
		return NULL;
	}
	return w;
}

const char *
queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

int
queue_writer_record(struct queue_writer *w, char type, const void *data,
    size_t len)
{
	unsigned char hdr[QF_HDR_LEN];

	if (w->in_msg || len > UINT32_MAX)
		return -1;
	qf_put_len(hdr, type, (uint32_t)len);
	if (qw_put(w, hdr, sizeof(hdr)) < 0)
		return -1;
	return qw_put(w, data, len);
}

int
queue_writer_begin_msg(struct queue_writer *w)
{
	unsigned char hdr[QF_HDR_LEN];

	if (w->in_msg)
		return -1;
	qf_put_len(hdr, 'M', 0);
	w->msg_len_pos = w->pos + 1;
	if (qw_put(w, hdr, sizeof(hdr)) < 0)
		return -1;
	w->in_msg = true;
	return 0;
}

int
queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	if (!w->in_msg)
		return -1;
	if (qw_put(w, data, len) < 0)
		return -1;
	w->msg_size += (off_t)len;
	return 0;
}

off_t
queue_writer_msg_size(const struct queue_writer *w)
{
	return w->msg_size;
}


/* Write E, flush, patch the message length: complete, not durable. */
static int
qw_end(struct queue_writer *w, const char **error_r)
{
	unsigned char hdr[QF_HDR_LEN];
	uint32_t be;

	if (!w->in_msg) {
		*error_r = "queue file has no message";
		return -1;
	}
	if (w->msg_size > (off_t)UINT32_MAX) {
		*error_r = "message too large for the queue file format";
		return -1;
	}
	w->in_msg = false;
	qf_put_len(hdr, 'E', 0);
	if (qw_put(w, hdr, sizeof(hdr)) < 0 || qw_flush(w) < 0) {
		*error_r = qf_error("write %s", w->tmp_path, w->error);
		return -1;
	}
	be = htonl((uint32_t)w->msg_size);
	if (pwrite(w->fd, &be, 4, w->msg_len_pos) != 4) {
		*error_r = qf_error("write %s", w->tmp_path, errno);
		return -1;
	}
	w->finished = true;
	return 0;
}

int
queue_writer_finish(struct queue_writer *w, const char **error_r)
{
	if (w->finished)
		return 0;
	return qw_end(w, error_r);
}

int
queue_writer_add_status(struct queue_writer *w, char type, const void *data,
    size_t len)
{
	unsigned char hdr[QF_HDR_LEN];

	if (!w->finished || len > QF_MAX_RECORD)
		return -1;
	qf_put_len(hdr, type, (uint32_t)len);
	if (qw_put(w, hdr, sizeof(hdr)) < 0)
		return -1;
	return qw_put(w, data, len);
}

int
queue_writer_commit(struct queue_writer **wp, const char **error_r)
{
	struct queue_writer *w = *wp;
	char *dest = NULL, *dir = NULL;

	if (!w->finished) {
		if (qw_end(w, error_r) < 0)
			goto fail;
	} else if (w->failed || qw_flush(w) < 0) {
		/* Status records appended after queue_writer_finish(). */
		*error_r = qf_error("write %s", w->tmp_path, w->error);
		goto fail;
	}
	if (fdatasync(w->fd) < 0) {
		*error_r = qf_error("fsync %s", w->tmp_path, errno);
		goto fail;
	}
	if (close(w->fd) < 0) {
		w->fd = -1;
		*error_r = qf_error("close %s", w->tmp_path, errno);
		goto fail;
	}
	w->fd = -1;
	dest = xasprintf("%s/%s/%s", w->queue_dir,
	    w->dest_dir != NULL ? w->dest_dir : "incoming", w->id);
	if (rename(w->tmp_path, dest) < 0) {
		*error_r = qf_error("rename %s", w->tmp_path, errno);
		goto fail;
	}
	/* DESIGN §3: the directory entry must be durable before 250. */
	dir = xasprintf("%s/%s", w->queue_dir,
	    w->dest_dir != NULL ? w->dest_dir : "incoming");
	if (fdio_fsync_dir(dir) < 0) {
		*error_r = qf_error("fsync %s", dir, errno);
		/* The file is complete; leaving it is safer than deleting an
		 * entry that may already be durable.  Report failure: the
		 * client retries, a duplicate is possible, a loss is not. */
		free(dir);
		free(dest);
		free(w->tmp_path);
		w->tmp_path = NULL;
		queue_writer_abort(wp);
		return -1;
	}
	free(dir);
	free(dest);
	free(w->tmp_path);
	w->tmp_path = NULL;
	queue_writer_abort(wp);
	return 0;
fail:
	free(dest);
	queue_writer_abort(wp);
	return -1;
}

void
queue_writer_abort(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path != NULL)
		(void)unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->queue_dir);
	free(w->wbuf);
	free(w);
}

/* ---- reader ---- */

static unsigned
parse_notify(const char *v)
{
	unsigned bits = 0;
	char **words = strv_split(v, ",");
	size_t i;

	for (i = 0; words[i] != NULL; i++) {
		if (str_case_eq(words[i], "NEVER"))
			bits |= QUEUE_NOTIFY_NEVER;
		else if (str_case_eq(words[i], "SUCCESS"))
			bits |= QUEUE_NOTIFY_SUCCESS;
		else if (str_case_eq(words[i], "FAILURE"))
			bits |= QUEUE_NOTIFY_FAILURE;
		else if (str_case_eq(words[i], "DELAY"))
			bits |= QUEUE_NOTIFY_DELAY;
	}
	strv_free(&words);
	return bits;
}

static void
add_rcpt(struct queue_msg *msg, const char *data, bool added)
{
	struct queue_rcpt *r;
	char **fields = strv_split(data, "\t");
	size_t i;

	msg->rcpts = xreallocarray(msg->rcpts, msg->rcpt_count + 1,
	    sizeof(*msg->rcpts));
	r = &msg->rcpts[msg->rcpt_count++];
	memset(r, 0, sizeof(*r));
	r->parent = -1;
	/* An empty address cannot come from smtpd; keep the record anyway. */
	r->addr = xstrdup(fields[0] != NULL && data[0] != '\t' ?
	    fields[0] : "");
	for (i = r->addr[0] != '\0' ? 1 : 0; fields[i] != NULL; i++) {
		if (str_starts_case(fields[i], "ORCPT=")) {
			free(r->orcpt);	/* a damaged file may repeat it */
			r->orcpt = xstrdup(fields[i] + 6);
		}
		else if (str_starts_case(fields[i], "NOTIFY="))
			r->notify = parse_notify(fields[i] + 7);
		else if (added && strncmp(fields[i], "parent=", 7) == 0) {
			long long p;

			/* Only an earlier recipient can be the parent: no
			 * cycles, whatever a damaged file says. */
			if (str_to_ll(fields[i] + 7, 0, INT_MAX, &p) == 0 &&
			    (size_t)p < msg->rcpt_count - 1)
				r->parent = (int)p;
		}
	}
	strv_free(&fields);
}

static void
parse_sender_params(struct queue_msg *msg)
{
	char **words = strv_split(msg->sender_params, " ");
	size_t i;

	for (i = 0; words[i] != NULL; i++) {
		if (str_case_eq(words[i], "RET=FULL"))
			msg->ret = QUEUE_RET_FULL;
		else if (str_case_eq(words[i], "RET=HDRS"))
			msg->ret = QUEUE_RET_HDRS;
		else if (str_case_eq(words[i], "SMTPUTF8"))
			msg->smtputf8 = true;
		else if (str_case_eq(words[i], "BODY=8BITMIME"))
			msg->body_8bit = true;
		else if (str_starts_case(words[i], "ENVID=")) {
			free(msg->envid);
			msg->envid = xtext_decode(words[i] + 6);
		}
	}
	strv_free(&words);
}

static int
rcpt_index(const struct queue_msg *msg, const char *s)
{
	long long idx;

	if (str_to_ll(s, 0, INT_MAX, &idx) < 0 ||
	    (size_t)idx >= msg->rcpt_count)
		return -1;
	return (int)idx;
}

static void
apply_status(struct queue_msg *msg, char type, const char *data)
{
	char **f;
	int idx;

	switch (type) {
	case 'D':
		idx = rcpt_index(msg, data);
		if (idx >= 0)
			msg->rcpts[idx].state = QUEUE_RCPT_DONE;
		break;
	case 'r':
		add_rcpt(msg, data, true);
		break;
	case 'W':
		f = strv_split(data, "\t");
		if (f[0] != NULL && (idx = rcpt_index(msg, f[0])) >= 0) {
			struct queue_rcpt *r = &msg->rcpts[idx];

			free(r->defer_dsn);
			free(r->defer_text);
			r->defer_dsn = xstrdup(f[1] != NULL ? f[1] : "4.0.0");
			r->defer_text = xstrdup(f[1] != NULL && f[2] != NULL ?
			    f[2] : "");
		}
		strv_free(&f);
		break;
	case 'w':
		msg->warned = true;
		break;
	default:
		break;	/* unknown status records: newer format, ignore */
	}
}

int
queue_file_read(int fd, struct queue_msg *msg, const char **error_r)
{
	struct stat st;
	unsigned char hdr[QF_HDR_LEN];
	off_t pos = 0;
	bool seen_v = false, seen_m = false, seen_e = false;
	char *data = NULL;

	memset(msg, 0, sizeof(*msg));
	msg->sender_params = xstrdup("");
	msg->client = xstrdup("");
	if (fstat(fd, &st) < 0) {
		*error_r = qf_error("fstat%s", "", errno);
		return -1;
	}
	while (pos + QF_HDR_LEN <= st.st_size) {
		uint32_t be, len;
		char type;

		if (pread(fd, hdr, QF_HDR_LEN, pos) != QF_HDR_LEN) {
			*error_r = qf_error("read%s", "", errno);
			goto corrupt;
		}
		type = (char)hdr[0];
		memcpy(&be, hdr + 1, 4);
		len = ntohl(be);
		pos += QF_HDR_LEN;
		if ((off_t)len > st.st_size - pos) {
			if (seen_e)
				break;	/* truncated status append: ignore */
			if (!seen_m || type == 'M')
				goto incomplete;	/* still being written */
			*error_r = "record extends past end of file";
			goto corrupt;
		}
		if (!seen_v && type != 'V') {
			*error_r = "not a queue file (no version record)";
			goto corrupt;
		}
		if (type == 'M') {
			if (seen_m || seen_e) {
				*error_r = "duplicate message record";
				goto corrupt;
			}
			seen_m = true;
			msg->msg_offset = pos;
			msg->msg_size = len;
			pos += len;
			continue;
		}
		if (len > QF_MAX_RECORD) {
			*error_r = "envelope record too long";
			goto corrupt;
		}
		data = xmalloc(len + 1);
		if (len > 0 && pread(fd, data, len, pos) != (ssize_t)len) {
			*error_r = qf_error("read%s", "", errno);
			goto corrupt;
		}
		data[len] = '\0';
		pos += len;
		if (memchr(data, '\0', len) != NULL) {
			*error_r = "NUL byte in envelope record";
			goto corrupt;
		}
		/* Addresses reach logs, bounces and the environment of
		 * commands: a line break can only be damage. */
		if ((type == 'F' || type == 'R' || type == 'r') &&
		    strpbrk(data, "\r\n") != NULL) {
			*error_r = "line break in an address record";
			goto corrupt;
		}
		if (seen_e) {
			apply_status(msg, type, data);
			free(data);
			data = NULL;
			continue;
		}
		switch (type) {
		case 'V':
			if (strcmp(data, QUEUE_FORMAT_VERSION) != 0) {
				*error_r = "unknown queue file version";
				goto corrupt;
			}
			seen_v = true;
			break;
		case 'A': {
			char *dot = strchr(data, '.');
			long long v;

			if (dot != NULL)
				*dot = '\0';
			if (str_to_ll(data, 0, LLONG_MAX, &v) == 0)
				msg->arrival = (time_t)v;
			if (dot != NULL &&
			    str_to_ll(dot + 1, 0, 999999, &v) == 0)
				msg->arrival_usec = (long)v;
			break;
		}
		case 'F':
			free(msg->sender);
			msg->sender = data;
			data = NULL;
			break;
		case 'f':
			free(msg->sender_params);
			msg->sender_params = data;
			data = NULL;
			parse_sender_params(msg);
			break;
		case 'C':
			free(msg->client);
			msg->client = data;
			data = NULL;
			break;
		case 'R':
			add_rcpt(msg, data, false);
			break;
		case 'E':
			if (!seen_m) {
				*error_r = "end record before message";
				goto corrupt;
			}
			seen_e = true;
			break;
		default:
			*error_r = "unknown envelope record type";
			goto corrupt;
		}
		free(data);
		data = NULL;
	}
	if (!seen_e)
		goto incomplete;
	if (msg->sender == NULL) {
		*error_r = "no sender record";
		goto corrupt;
	}
	return 1;
incomplete:
	/* msg is left empty, as on -1: nothing for the caller to free. */
	queue_msg_free(msg);
	return 0;
corrupt:
	free(data);
	queue_msg_free(msg);
	return -1;
}

void
queue_msg_free(struct queue_msg *msg)
{
	size_t i;

	for (i = 0; i < msg->rcpt_count; i++) {
		free(msg->rcpts[i].addr);
		free(msg->rcpts[i].orcpt);
		free(msg->rcpts[i].defer_dsn);
		free(msg->rcpts[i].defer_text);
	}
	free(msg->rcpts);
	free(msg->sender);
	free(msg->sender_params);
	free(msg->envid);
	free(msg->client);
	memset(msg, 0, sizeof(*msg));
}

off_t
queue_file_trim_tail(int fd)
{
	unsigned char h[5];
	struct stat st;
	off_t pos = 0;

	if (fstat(fd, &st) < 0)
		return -1;
	while (pos + 5 <= st.st_size) {
		uint32_t len;

		if (pread(fd, h, 5, pos) != 5)
			return -1;
		len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
		    (uint32_t)h[3] << 8 | h[4];
		if ((off_t)len > st.st_size - pos - 5)
			break;
		pos += 5 + (off_t)len;
	}
	if (pos < st.st_size && ftruncate(fd, pos) < 0)
		return -1;
	return st.st_size - pos;
}

int
queue_file_append(int fd, char type, const char *data, size_t len, bool sync)
{
	unsigned char *rec;
	ssize_t n;

	if (len > QF_MAX_RECORD) {
		errno = EINVAL;
		return -1;
	}
	rec = xmalloc(QF_HDR_LEN + len);
	qf_put_len(rec, type, (uint32_t)len);
	memcpy(rec + QF_HDR_LEN, data, len);
	/* One write(2) with O_APPEND semantics: a crash leaves the whole
	 * record or a truncated tail that the reader ignores. */
	if (lseek(fd, 0, SEEK_END) < 0) {
		free(rec);
		return -1;
	}
	n = write(fd, rec, QF_HDR_LEN + len);
	free(rec);
	if (n != (ssize_t)(QF_HDR_LEN + len)) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	if (sync && fdatasync(fd) < 0)
		return -1;
	return 0;
}

void
queue_notify_qmgr(const char *queue_dir, const char *id)
{
	struct sockaddr_un sun;
	char msg[QUEUE_ID_MAX + 8];
	int fd, len;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/private/qmgr", queue_dir) >= sizeof(sun.sun_path))
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	len = snprintf(msg, sizeof(msg), "NEW %s", id);
	/* Lost datagrams are caught by qmgr's periodic scan. */
	(void)sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&sun,
	    sizeof(sun));
	close(fd);
}

void
queue_writer_set_dir(struct queue_writer *w, const char *subdir)
{
	w->dest_dir = subdir;
}
