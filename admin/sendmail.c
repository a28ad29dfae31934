/*
 * sendmail: the Sendmail-compatible front end, also answering as mailq
 * and newaliases, with the options of Postfix's sendmail(1).
 *
 * A message is submitted to smtpd over $queue_directory/public/pickup as
 * an ordinary SMTP session (doc/internals.md "Local submission"): smtpd
 * validates the recipients, adds Received, Date and Message-ID, and
 * writes the queue file.  Only the things smtpd cannot know are done
 * here: recipients from the headers (-t), Bcc removal, the full name in
 * an added From: header, the end of input at a lone "." without -i.
 * Input is streamed: only the header block is held in memory.
 *
 * When posternd is not running and the caller may write the queue (its
 * owner, or root), the queue file is written here directly and qmgr picks
 * it up when it starts; the headers smtpd would add are added here then.
 * Otherwise the exit status is EX_TEMPFAIL and the message says postern
 * is not running.  Exit statuses follow sysexits.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "buf.h"
#include "fdio.h"
#include "cfg.h"
#include "limits_pst.h"
#include "queue_file.h"
#include "str.h"
#include "xmalloc.h"

/* Header block bounds: more than this and the rest is body. */
#define SM_MAX_HEADER_BYTES	(1024 * 1024)
#define SM_MAX_HEADERS		10000
/* Recipients one submission may name. */
#define SM_MAX_RCPTS		10000
/* Body is read in pieces of at most this size. */
#define SM_BODY_CHUNK		65536
/* Seconds to wait for an SMTP reply from smtpd. */
#define SM_REPLY_TIMEOUT	600
/* Longest SMTP reply line accepted from smtpd. */
#define SM_MAX_REPLY_LINE	4096

enum sm_mode {
	SM_MODE_DELIVER,	/* -bm */
	SM_MODE_SMTP,		/* -bs */
	SM_MODE_MAILQ,		/* -bp, mailq */
	SM_MODE_ALIASES,	/* -bi, -I, newaliases */
	SM_MODE_FLUSH,		/* -q */
	SM_MODE_DAEMON		/* -bd, -bD */
};

struct sm_opts {
	enum sm_mode	 mode;
	bool		 extract;	/* -t */
	bool		 ignore_dots;	/* -i, -oi */
	const char	*sender;	/* -f, -r */
	const char	*fullname;	/* -F */
	char		*notify;	/* -N, as NOTIFY= value */
	const char	*ret;		/* -R: FULL or HDRS */
	const char	*envid;		/* -V */
	bool		 body_8bit;	/* -B 8BITMIME */
	char		**rcpts;	/* command line, parsed */
};

/* One header field: physical lines joined by '\n', no final line end. */
struct sm_header {
	struct buf text;
	size_t	 name_len;
	bool	 drop;
};

/* What was read of the message before the body is streamed. */
struct sm_message {
	struct sm_header *headers;
	size_t		 header_count;
	size_t		 header_bytes;
	struct buf	 pending;	/* first body line, already read */
	bool		 have_pending;
	bool		 pending_complete;	/* it ended with a LF */
	bool		 blank_seen;	/* headers ended with an empty line */
	bool		 input_done;	/* EOF or "." line reached */
	bool		 ignore_dots;
};

/*
 * Where the message goes: smtpd over SMTP (CRLF, dot-stuffing) or a queue
 * file (LF).  mid_line: the last piece did not end its line.
 */
struct sm_sink {
	bool		 smtp;
	bool		 mid_line;
	off_t		 size;
	off_t		 limit;		/* queue: message_size_limit, 0 none */
	int		 fd;		/* smtp */
	struct buf	 out;		/* smtp write buffer */
	struct queue_writer *qw;	/* queue */
	bool		 failed;
};

/* ---- small helpers ---- */

static void __attribute__((noreturn, format(printf, 2, 3)))
sm_fatal(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: fatal: ", admin_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static bool
sm_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* An address usable in MAIL FROM/RCPT TO: no controls, no <>, bounded. */
static bool
sm_addr_ok(const char *a)
{
	const unsigned char *p;

	if (strlen(a) > MAX_ADDRESS)
		return false;
	for (p = (const unsigned char *)a; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return false;
	return true;
}

/* ---- address lists (RFC 5322 §3.4) ---- */

/*
 * Add the addresses of an address-list ("a@b, Name <c@d>, group: e@f;",
 * comments and quoted strings allowed) to *v.  Display names, comments
 * and group names are dropped; a source route in <@x,@y:a@b> is dropped.
 * Returns -1 when the list names too many addresses.
 */
static int
sm_parse_addresses(const char *s, char ***v)
{
	struct buf plain, angle;
	bool quoted = false, in_angle = false, have_angle = false;
	int depth = 0, ret = 0;
	const char *p;

	buf_init(&plain, MAX_ADDRESS + 1);
	buf_init(&angle, MAX_ADDRESS + 1);
	for (p = s;; p++) {
		char c = *p;
		bool end = c == '\0';

		if (!end && quoted) {
			if (c == '\\' && p[1] != '\0') {
				(void)buf_append(in_angle ? &angle : &plain,
				    p, 2);
				p++;
				continue;
			}
			if (c == '"')
				quoted = false;
			(void)buf_append_char(in_angle ? &angle : &plain, c);
			continue;
		}
		if (!end && depth > 0) {
			if (c == '\\' && p[1] != '\0')
				p++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (!end && c == '(') {
			depth = 1;
			continue;
		}
		if (!end && c == '"') {
			quoted = true;
			(void)buf_append_char(in_angle ? &angle : &plain, c);
			continue;
		}
		if (!end && in_angle) {
			if (c == '>')
				in_angle = false;
			else if (!isspace((unsigned char)c))
				(void)buf_append_char(&angle, c);
			continue;
		}
		if (!end && c == '<') {
			in_angle = true;
			have_angle = true;
			buf_reset(&angle);
			continue;
		}
		if (!end && c == ':') {
			/* A group name (or a display name) ends here. */
			buf_reset(&plain);
			continue;
		}
		if (!end && c != ',' && c != ';') {
			if (!isspace((unsigned char)c))
				(void)buf_append_char(&plain, c);
			continue;
		}
		/* End of one element. */
		{
			const char *a = have_angle ? buf_cstr(&angle) :
			    buf_cstr(&plain);

			if (have_angle && a[0] == '@' && strchr(a, ':') != NULL)
				a = strrchr(a, ':') + 1;
			if (*a != '\0') {
				if (strv_len(*v) >= SM_MAX_RCPTS) {
					ret = -1;
					break;
				}
				strv_push(v, a);
			}
		}
		buf_reset(&plain);
		buf_reset(&angle);
		have_angle = false;
		if (end)
			break;
	}
	buf_free(&plain);
	buf_free(&angle);
	return ret;
}

/* ---- reading the message ---- */

/*
 * Read one physical line of at most max bytes into line (without the
 * line end; a CR before the LF is dropped too).  Returns 0 at EOF with
 * nothing read, else 1; *complete_r says whether a LF ended the line.
 */
static int
sm_read_line(FILE *in, struct buf *line, size_t max, bool *complete_r)
{
	int c;

	buf_reset(line);
	*complete_r = false;
	while (line->len < max && (c = getc_unlocked(in)) != EOF) {
		if (c == '\n') {
			if (line->len > 0 && line->data[line->len - 1] == '\r')
				line->len--;
			*complete_r = true;
			return 1;
		}
		(void)buf_append_char(line, (char)c);
	}
	return line->len > 0 ? 1 : 0;
}

/* "Name:" with a field name of printable ASCII (RFC 5322 §2.2). */
static size_t
sm_header_name_len(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ':')
			return i;
		if (c <= 32 || c >= 127)
			return 0;
	}
	return 0;
}

static bool
sm_header_is(const struct sm_header *h, const char *name)
{
	return h->name_len == strlen(name) &&
	    strncasecmp(h->text.data, name, h->name_len) == 0;
}

static bool
sm_has_header(const struct sm_message *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->header_count; i++)
		if (!m->headers[i].drop && sm_header_is(&m->headers[i], name))
			return true;
	return false;
}

/* Without -i, a line holding only "." ends the input. */
static bool
sm_is_dot_line(const struct sm_message *m, const struct buf *line,
    bool at_line_start)
{
	return !m->ignore_dots && at_line_start && line->len == 1 &&
	    line->data[0] == '.';
}

/*
 * Read the header block.  It ends at an empty line, at the first line
 * that is not a header (kept as the first body line), at EOF, at a lone
 * "." without -i, or when a bound is reached.
 */
static void
sm_read_headers(FILE *in, struct sm_message *m)
{
	struct buf line;
	bool complete, first = true;

	buf_init(&line, 0);
	buf_init(&m->pending, 0);
	for (;;) {
		size_t nlen;

		if (sm_read_line(in, &line, MAX_HEADER_LINE, &complete) == 0) {
			m->input_done = true;
			break;
		}
		if (sm_is_dot_line(m, &line, true)) {
			m->input_done = true;
			break;
		}
		/* A mailbox "From " line before the headers is not mail. */
		if (first && line.len >= 5 &&
		    memcmp(line.data, "From ", 5) == 0) {
			first = false;
			continue;
		}
		first = false;
		if (line.len == 0 && complete) {
			m->blank_seen = true;
			break;
		}
		if (!complete && !feof(in))
			goto body;	/* over-long line */
		if (m->header_bytes + line.len > SM_MAX_HEADER_BYTES ||
		    m->header_count >= SM_MAX_HEADERS)
			goto body;
		if ((line.data[0] == ' ' || line.data[0] == '\t') &&
		    m->header_count > 0) {
			struct sm_header *h =
			    &m->headers[m->header_count - 1];

			(void)buf_append_char(&h->text, '\n');
			(void)buf_append(&h->text, line.data, line.len);
			m->header_bytes += line.len + 1;
			continue;
		}
		nlen = sm_header_name_len(line.data, line.len);
		if (nlen == 0)
			goto body;
		m->headers = xreallocarray(m->headers, m->header_count + 1,
		    sizeof(*m->headers));
		buf_init(&m->headers[m->header_count].text, 0);
		(void)buf_append(&m->headers[m->header_count].text, line.data,
		    line.len);
		m->headers[m->header_count].name_len = nlen;
		m->headers[m->header_count].drop = false;
		m->header_count++;
		m->header_bytes += line.len + 1;
		if (!complete) {
			m->input_done = true;	/* EOF right after */
			break;
		}
	}
	buf_free(&line);
	return;
body:
	(void)buf_append(&m->pending, line.data, line.len);
	m->have_pending = true;
	m->pending_complete = complete;
	buf_free(&line);
}

/* -t: recipients from To/Cc/Bcc (Resent-* when present). */
static int
sm_extract_rcpts(struct sm_message *m, char ***rcpts)
{
	static const char *const plain[] = { "To", "Cc", "Bcc", NULL };
	static const char *const resent[] = {
		"Resent-To", "Resent-Cc", "Resent-Bcc", NULL
	};
	const char *const *names = plain;
	size_t i, j;

	for (i = 0; i < m->header_count; i++)
		for (j = 0; resent[j] != NULL; j++)
			if (sm_header_is(&m->headers[i], resent[j]))
				names = resent;
	for (i = 0; i < m->header_count; i++) {
		for (j = 0; names[j] != NULL; j++) {
			struct sm_header *h = &m->headers[i];

			if (!sm_header_is(h, names[j]))
				continue;
			if (sm_parse_addresses(buf_cstr(&h->text) +
			    h->name_len + 1, rcpts) < 0)
				return -1;
		}
	}
	return 0;
}

/* ---- sinks ---- */

static int
sm_sink_flush(struct sm_sink *s)
{
	size_t off = 0;

	if (!s->smtp || s->failed)
		return s->failed ? -1 : 0;
	while (off < s->out.len) {
		ssize_t n = send(s->fd, s->out.data + off, s->out.len - off,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->failed = true;
			return -1;
		}
		off += (size_t)n;
	}
	buf_reset(&s->out);
	return 0;
}

static int
sm_sink_raw(struct sm_sink *s, const char *data, size_t len)
{
	if (s->failed)
		return -1;
	if (!s->smtp) {
		if (queue_writer_write(s->qw, data, len) < 0) {
			s->failed = true;
			return -1;
		}
		return 0;
	}
	(void)buf_append(&s->out, data, len);
	if (s->out.len >= SM_BODY_CHUNK)
		return sm_sink_flush(s);
	return 0;
}

/*
 * One piece of message text.  at_start: it begins a line (dot-stuffing
 * applies, RFC 5321 §4.5.2); complete: the line ends after it.
 */
static int
sm_sink_piece(struct sm_sink *s, const char *data, size_t len, bool complete)
{
	if (s->smtp && !s->mid_line && len > 0 && data[0] == '.')
		(void)sm_sink_raw(s, ".", 1);
	(void)sm_sink_raw(s, data, len);
	s->size += (off_t)len;
	if (complete) {
		(void)sm_sink_raw(s, s->smtp ? "\r\n" : "\n",
		    s->smtp ? 2 : 1);
		s->size++;
	}
	s->mid_line = !complete;
	if (s->limit > 0 && s->size > s->limit)
		s->failed = true;
	return s->failed ? -1 : 0;
}

/* A header field, its physical lines split on '\n'. */
static int
sm_sink_header(struct sm_sink *s, const char *text)
{
	const char *p = text;

	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (sm_sink_piece(s, p, len, true) < 0)
			return -1;
		if (nl == NULL)
			return 0;
		p = nl + 1;
	}
}

/* ---- the From: header ---- */

/* A display name as an RFC 5322 phrase: atoms, a quoted string, or an
 * RFC 2047 encoded word when it is not ASCII. */
static char *
sm_display_name(const char *name)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)name;
	bool special = false;
	struct buf b;

	buf_init(&b, 0);
	if (sm_has_8bit(name)) {
		size_t len = strlen(name), i;

		buf_append_str(&b, "=?UTF-8?B?");
		for (i = 0; i < len; i += 3) {
			unsigned v = p[i] << 16;

			if (i + 1 < len)
				v |= p[i + 1] << 8;
			if (i + 2 < len)
				v |= p[i + 2];
			buf_append_char(&b, b64[(v >> 18) & 63]);
			buf_append_char(&b, b64[(v >> 12) & 63]);
			buf_append_char(&b, i + 1 < len ? b64[(v >> 6) & 63] :
			    '=');
			buf_append_char(&b, i + 2 < len ? b64[v & 63] : '=');
		}
		buf_append_str(&b, "?=");
		return buf_steal(&b);
	}
	for (; *p != '\0'; p++)
		if (strchr("()<>[]:;@\\,.\"", *p) != NULL || *p < 0x20)
			special = true;
	if (!special)
		return xstrdup(name);
	buf_append_char(&b, '"');
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (*p == '"' || *p == '\\')
			buf_append_char(&b, '\\');
		buf_append_char(&b, (char)*p);
	}
	buf_append_char(&b, '"');
	return buf_steal(&b);
}

/* The full name from the GECOS field: up to the first comma, '&' = the
 * capitalised login name (BSD convention). */
static char *
sm_gecos_name(const struct passwd *pw)
{
	const char *g = pw->pw_gecos != NULL ? pw->pw_gecos : "";
	struct buf b;

	buf_init(&b, 256);
	for (; *g != '\0' && *g != ','; g++) {
		if (*g == '&') {
			if (pw->pw_name[0] != '\0') {
				(void)buf_append_char(&b,
				    (char)toupper((unsigned char)pw->pw_name[0]));
				(void)buf_append_str(&b, pw->pw_name + 1);
			}
		} else
			(void)buf_append_char(&b, *g);
	}
	return buf_steal(&b);
}

static char *
sm_from_header(const char *sender, const char *fullname)
{
	char *addr, *name, *h;

	addr = addr_qualify(*sender != '\0' ? sender : "MAILER-DAEMON");
	if (fullname == NULL || *fullname == '\0')
		h = xasprintf("From: %s", addr);
	else {
		name = sm_display_name(fullname);
		h = xasprintf("From: %s <%s>", name, addr);
		free(name);
	}
	free(addr);
	return h;
}

/* ---- sending the message text ---- */

/*
 * Headers (with the additions), the empty line, the body from in.
 * Returns 0, or -1 when the sink failed.
 */
static int
sm_send_message(struct sm_sink *s, struct sm_message *m, FILE *in,
    char *const *added)
{
	struct buf line;
	size_t i;
	bool complete;

	for (i = 0; i < m->header_count; i++)
		if (!m->headers[i].drop &&
		    sm_sink_header(s, buf_cstr(&m->headers[i].text)) < 0)
			return -1;
	for (i = 0; added != NULL && added[i] != NULL; i++)
		if (sm_sink_header(s, added[i]) < 0)
			return -1;
	/* The empty line, also when the body began without one. */
	if (m->blank_seen || m->have_pending || !m->input_done)
		if (sm_sink_piece(s, "", 0, true) < 0)
			return -1;
	if (m->have_pending &&
	    sm_sink_piece(s, m->pending.data, m->pending.len,
	    m->pending_complete) < 0)
		return -1;
	if (m->input_done)
		goto out;
	buf_init(&line, 0);
	while (sm_read_line(in, &line, SM_BODY_CHUNK, &complete) == 1) {
		if (sm_is_dot_line(m, &line, !s->mid_line))
			break;
		if (sm_sink_piece(s, line.data, line.len, complete) < 0) {
			buf_free(&line);
			return -1;
		}
	}
	buf_free(&line);
out:
	/* A last line without LF still gets its line end. */
	if (s->mid_line && sm_sink_piece(s, "", 0, true) < 0)
		return -1;
	return s->failed ? -1 : 0;
}

/* ---- SMTP to smtpd over public/pickup ---- */

struct sm_smtp {
	int		 fd;
	struct buf	 in;
	struct buf	 reply;		/* last reply, lines joined by '\n' */
	int		 code;
	bool		 dsn, smtputf8, eightbit;
};

/* Connect to public/pickup; -1 with errno when nobody listens. */
static int
sm_pickup_connect(void)
{
	struct sockaddr_un sun;
	int fd, err;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/public/pickup", cfg_get("queue_directory")) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno;
		(void)close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Seconds to wait for pickup while posternd runs but smtpd is starting. */
#define SM_PICKUP_WAIT		10

/*
 * Connect to pickup; while posternd runs, give a starting or restarting
 * smtpd some time to (re)create the socket.
 */
static int
sm_pickup_connect_wait(void)
{
	pid_t pid;
	int fd, i, err;

	for (i = 0;; i++) {
		if ((fd = sm_pickup_connect()) >= 0)
			return fd;
		err = errno;
		if (i >= SM_PICKUP_WAIT * 10 || (err != ENOENT &&
		    err != ECONNREFUSED) || admin_daemon_pid(&pid) != 1)
			break;
		(void)usleep(100 * 1000);
	}
	errno = err;
	return -1;
}

/* Read one reply (all its lines).  Returns 0, or -1 on EOF/timeout. */
static int
sm_smtp_reply(struct sm_smtp *c)
{
	buf_reset(&c->reply);
	c->code = 0;
	for (;;) {
		char *nl = c->in.len > 0 ? memchr(c->in.data, '\n',
		    c->in.len) : NULL;

		if (nl != NULL) {
			size_t len = (size_t)(nl - c->in.data);
			bool last;

			if (len > 0 && c->in.data[len - 1] == '\r')
				len--;
			if (len < 3) {
				buf_consume(&c->in, (size_t)(nl - c->in.data)
				    + 1);
				return -1;
			}
			last = len == 3 || c->in.data[3] != '-';
			if (c->reply.len > 0)
				(void)buf_append_char(&c->reply, '\n');
			(void)buf_append(&c->reply, c->in.data, len);
			c->code = atoi(c->in.data);
			buf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
			if (last)
				return 0;
			continue;
		}
		if (c->in.len >= SM_MAX_REPLY_LINE)
			return -1;
		{
			struct pollfd pfd = { c->fd, POLLIN, 0 };
			char tmp[4096];
			ssize_t n;
			int r = poll(&pfd, 1, SM_REPLY_TIMEOUT * 1000);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			n = read(c->fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			(void)buf_append(&c->in, tmp, (size_t)n);
		}
	}
}

static int
sm_smtp_write(struct sm_smtp *c, const char *text)
{
	size_t len = strlen(text), off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Send a command line and read its reply; -1 when the connection broke. */
static int __attribute__((format(printf, 2, 3)))
sm_smtp_cmd(struct sm_smtp *c, const char *fmt, ...)
{
	va_list ap;
	char *cmd, *line;
	int rc;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	line = xasprintf("%s\r\n", cmd);
	free(cmd);
	rc = sm_smtp_write(c, line);
	free(line);
	if (rc < 0)
		return -1;
	return sm_smtp_reply(c);
}

/* sysexits status for a failed reply. */
static int
sm_reply_status(struct sm_smtp *c)
{
	if (c->code >= 400 && c->code < 500)
		return EX_TEMPFAIL;
	if (c->code == 550 || c->code == 551 || c->code == 553) {
		const char *r = buf_cstr(&c->reply);

		if (strlen(r) > 4 && strncmp(r + 4, "5.1.", 4) == 0)
			return EX_NOUSER;
	}
	return EX_SOFTWARE;
}

static void
sm_smtp_ehlo(struct sm_smtp *c)
{
	const char *r, *p;

	if (sm_smtp_cmd(c, "EHLO localhost") < 0)
		sm_fatal(EX_TEMPFAIL, "lost connection to postern");
	if (c->code != 250) {
		if (sm_smtp_cmd(c, "HELO localhost") < 0)
			sm_fatal(EX_TEMPFAIL, "lost connection to postern");
		if (c->code != 250)
			sm_fatal(sm_reply_status(c), "HELO: %s",
			    buf_cstr(&c->reply));
		return;
	}
	r = buf_cstr(&c->reply);
	for (p = r; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strlen(p) < 4)
			continue;
		if (str_starts_case(p + 4, "DSN") &&
		    (p[7] == '\0' || p[7] == '\n' || p[7] == ' '))
			c->dsn = true;
		else if (str_starts_case(p + 4, "SMTPUTF8"))
			c->smtputf8 = true;
		else if (str_starts_case(p + 4, "8BITMIME"))
			c->eightbit = true;
	}
}

/* ---- the direct queue write when postern is not running ---- */

static void
sm_rfc5322_date(char *dst, size_t size, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(dst, size, "%a, %e %b %Y %H:%M:%S %z (%Z)", &tm);
}

/*
 * Become the owner of the queue for writing into it (root, or the owner
 * itself).  Returns 0 and the ids to go back to, or -1 when this user
 * may not write the queue.
 */
static int
sm_queue_become_owner(const char *qdir, uid_t *olduid, gid_t *oldgid)
{
	char *incoming = xasprintf("%s/incoming", qdir);
	char *tmp = xasprintf("%s/tmp", qdir);
	struct stat st;
	int ret = -1;

	*olduid = geteuid();
	*oldgid = getegid();
	if (stat(incoming, &st) < 0)
		goto out;
	if (geteuid() == 0) {
		if (st.st_uid != 0 && (setegid(st.st_gid) < 0 ||
		    seteuid(st.st_uid) < 0)) {
			(void)seteuid(*olduid);
			(void)setegid(*oldgid);
			goto out;
		}
		ret = 0;
	} else if (access(incoming, W_OK) == 0 && access(tmp, W_OK) == 0)
		ret = 0;
out:
	free(incoming);
	free(tmp);
	return ret;
}

static int
sm_queue_direct(struct sm_opts *o, struct sm_message *m, FILE *in,
    const char *sender, char **rcpts, const char *login, const char *from)
{
	const char *qdir = cfg_get("queue_directory"), *error;
	struct sm_sink s;
	struct timeval tv;
	char date[64], stamp[32], *added[5], *rec, *qsender, *received;
	char *notice_id;
	uid_t olduid;
	gid_t oldgid;
	size_t i, n = 0;
	int status = 0;
	struct buf params;

	if (sm_queue_become_owner(qdir, &olduid, &oldgid) < 0)
		sm_fatal(EX_TEMPFAIL, "postern is not running (cannot connect "
		    "to %s/public/pickup)", qdir);
	memset(&s, 0, sizeof(s));
	s.smtp = false;
	s.limit = cfg_get_size("message_size_limit");
	if ((s.qw = queue_writer_new(qdir, &error)) == NULL)
		sm_fatal(EX_TEMPFAIL, "%s", error);
	notice_id = xstrdup(queue_writer_id(s.qw));

	gettimeofday(&tv, NULL);
	rec = xasprintf("%lld.%06ld", (long long)tv.tv_sec, (long)tv.tv_usec);
	(void)queue_writer_record(s.qw, 'A', rec, strlen(rec));
	free(rec);
	qsender = *sender != '\0' ? addr_qualify(sender) : xstrdup("");
	(void)queue_writer_record(s.qw, 'F', qsender, strlen(qsender));
	buf_init(&params, 0);
	if (o->ret != NULL)
		buf_printf(&params, "RET=%s", o->ret);
	if (o->envid != NULL) {
		char *x = xtext_encode(o->envid, strlen(o->envid));

		buf_printf(&params, "%sENVID=%s", params.len > 0 ? " " : "", x);
		free(x);
	}
	if (o->body_8bit)
		buf_printf(&params, "%sBODY=8BITMIME",
		    params.len > 0 ? " " : "");
	if (params.len > 0)
		(void)queue_writer_record(s.qw, 'f', params.data, params.len);
	buf_free(&params);
	rec = xasprintf("proto=LOCAL\tuser=%s\tuid=%ld", login,
	    (long)getuid());
	(void)queue_writer_record(s.qw, 'C', rec, strlen(rec));
	free(rec);
	for (i = 0; rcpts[i] != NULL; i++) {
		char *q = addr_qualify(rcpts[i]);

		rec = o->notify != NULL ? xasprintf("%s\tNOTIFY=%s", q,
		    o->notify) : xstrdup(q);
		(void)queue_writer_record(s.qw, 'R', rec, strlen(rec));
		free(rec);
		free(q);
	}

	/* What smtpd and cleanup would add (Postfix's cleanup(8)). */
	sm_rfc5322_date(date, sizeof(date), tv.tv_sec);
	received = xasprintf("Received: by %s (%s, from userid %ld)\n"
	    "\tid %s; %s", cfg_get("myhostname"), cfg_get("mail_name"),
	    (long)getuid(), notice_id, date);
	if (from != NULL)
		added[n++] = xstrdup(from);
	if (!sm_has_header(m, "Date"))
		added[n++] = xasprintf("Date: %s", date);
	if (!sm_has_header(m, "Message-ID")) {
		struct tm tm;

		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		added[n++] = xasprintf("Message-ID: <%s.%s@%s>", stamp,
		    notice_id, cfg_get("myhostname"));
	}
	added[n] = NULL;
	(void)queue_writer_begin_msg(s.qw);
	if (sm_sink_header(&s, received) < 0 ||
	    sm_send_message(&s, m, in, added) < 0) {
		queue_writer_abort(&s.qw);
		if (s.limit > 0 && s.size > s.limit)
			sm_fatal(EX_SOFTWARE, "message too large "
			    "(message_size_limit is %lld bytes)",
			    (long long)s.limit);
		sm_fatal(EX_TEMPFAIL, "cannot write the queue file");
	}
	if (queue_writer_commit(&s.qw, &error) < 0) {
		admin_err("fatal: cannot queue the message: %s", error);
		status = EX_TEMPFAIL;
	} else
		queue_notify_qmgr(qdir, notice_id);
	(void)seteuid(olduid);
	(void)setegid(oldgid);
	for (i = 0; i < n; i++)
		free(added[i]);
	free(received);
	free(qsender);
	free(notice_id);
	return status;
}

/* ---- deliver mode ---- */

static int
sm_deliver(struct sm_opts *o)
{
	struct sm_message m;
	struct sm_smtp c;
	struct sm_sink s;
	struct passwd *pw;
	char **rcpts = NULL, *sender, *login, *fullname = NULL;
	char *added[2] = { NULL, NULL }, *params;
	size_t i, accepted = 0;
	int status = 0, worst = 0;
	bool utf8;

	if ((pw = getpwuid(getuid())) == NULL)
		sm_fatal(EX_OSERR, "no login name for user ID %ld",
		    (long)getuid());
	login = xstrdup(pw->pw_name);

	/* Envelope sender: -f, else who runs us. */
	if (o->sender != NULL) {
		char **v = NULL;

		if (strcmp(o->sender, "<>") == 0 || *o->sender == '\0')
			sender = xstrdup("");
		else if (sm_parse_addresses(o->sender, &v) == 0 && v != NULL &&
		    v[0] != NULL)
			sender = xstrdup(v[0]);
		else
			sm_fatal(EX_USAGE, "bad sender address \"%s\"",
			    o->sender);
		if (v != NULL)
			strv_free(&v);
	} else
		sender = xstrdup(login);
	if (!sm_addr_ok(sender))
		sm_fatal(EX_USAGE, "bad sender address");
	if (o->fullname != NULL)
		fullname = xstrdup(o->fullname);
	else if (o->sender == NULL || strcmp(o->sender, login) == 0)
		fullname = sm_gecos_name(pw);

	memset(&m, 0, sizeof(m));
	m.ignore_dots = o->ignore_dots;
	sm_read_headers(stdin, &m);

	for (i = 0; o->rcpts != NULL && o->rcpts[i] != NULL; i++)
		strv_push(&rcpts, o->rcpts[i]);
	if (o->extract && sm_extract_rcpts(&m, &rcpts) < 0)
		sm_fatal(EX_DATAERR, "too many recipients (at most %d)",
		    SM_MAX_RCPTS);
	if (rcpts == NULL || rcpts[0] == NULL)
		sm_fatal(EX_USAGE, "no recipients specified (name them on the "
		    "command line or use -t)");
	for (i = 0; rcpts[i] != NULL; i++)
		if (!sm_addr_ok(rcpts[i]))
			sm_fatal(EX_DATAERR, "bad recipient address \"%.100s\"",
			    rcpts[i]);
	/* Bcc recipients get the message, not the header (cleanup(8)). */
	for (i = 0; i < m.header_count; i++)
		if (sm_header_is(&m.headers[i], "Bcc") ||
		    sm_header_is(&m.headers[i], "Resent-Bcc"))
			m.headers[i].drop = true;
	if (!sm_has_header(&m, "From"))
		added[0] = sm_from_header(sender, fullname);

	memset(&c, 0, sizeof(c));
	if ((c.fd = sm_pickup_connect_wait()) < 0) {
		if (errno != ENOENT && errno != ECONNREFUSED &&
		    errno != ENOTDIR)
			sm_fatal(EX_TEMPFAIL, "cannot connect to %s/public/"
			    "pickup: %s", cfg_get("queue_directory"),
			    strerror(errno));
		status = sm_queue_direct(o, &m, stdin, sender, rcpts, login,
		    added[0]);
		goto out;
	}
	buf_init(&c.in, SM_MAX_REPLY_LINE * 2);
	buf_init(&c.reply, 0);
	if (sm_smtp_reply(&c) < 0)
		sm_fatal(EX_TEMPFAIL, "lost connection to postern");
	if (c.code != 220)
		sm_fatal(sm_reply_status(&c), "%s", buf_cstr(&c.reply));
	sm_smtp_ehlo(&c);

	utf8 = sm_has_8bit(sender);
	for (i = 0; rcpts[i] != NULL; i++)
		utf8 = utf8 || sm_has_8bit(rcpts[i]);
	{
		struct buf p;

		buf_init(&p, 0);
		if (c.dsn && o->ret != NULL)
			buf_printf(&p, " RET=%s", o->ret);
		if (c.dsn && o->envid != NULL) {
			char *x = xtext_encode(o->envid, strlen(o->envid));

			buf_printf(&p, " ENVID=%s", x);
			free(x);
		}
		if (c.eightbit && o->body_8bit)
			buf_append_str(&p, " BODY=8BITMIME");
		if (c.smtputf8 && utf8)
			buf_append_str(&p, " SMTPUTF8");
		params = buf_steal(&p);
	}
	if (sm_smtp_cmd(&c, "MAIL FROM:<%s>%s", sender, params) < 0)
		sm_fatal(EX_TEMPFAIL, "lost connection to postern");
	free(params);
	if (c.code != 250)
		sm_fatal(sm_reply_status(&c), "MAIL FROM:<%s>: %s", sender,
		    buf_cstr(&c.reply));
	for (i = 0; rcpts[i] != NULL; i++) {
		if (c.dsn && o->notify != NULL)
			status = sm_smtp_cmd(&c, "RCPT TO:<%s> NOTIFY=%s",
			    rcpts[i], o->notify);
		else
			status = sm_smtp_cmd(&c, "RCPT TO:<%s>", rcpts[i]);
		if (status < 0)
			sm_fatal(EX_TEMPFAIL, "lost connection to postern");
		if (c.code == 250 || c.code == 251) {
			accepted++;
			continue;
		}
		admin_err("%s: %s", rcpts[i], buf_cstr(&c.reply));
		/* Report the most telling failure: unknown user first. */
		status = sm_reply_status(&c);
		if (worst == 0 || status == EX_NOUSER ||
		    (status == EX_TEMPFAIL && worst == EX_SOFTWARE))
			worst = status;
	}
	status = 0;
	if (accepted == 0) {
		(void)sm_smtp_cmd(&c, "QUIT");
		status = worst;
		goto close;
	}
	if (sm_smtp_cmd(&c, "DATA") < 0)
		sm_fatal(EX_TEMPFAIL, "lost connection to postern");
	if (c.code != 354)
		sm_fatal(sm_reply_status(&c), "DATA: %s", buf_cstr(&c.reply));

	memset(&s, 0, sizeof(s));
	s.smtp = true;
	s.fd = c.fd;
	buf_init(&s.out, 0);
	if (sm_send_message(&s, &m, stdin, added) < 0 ||
	    sm_sink_raw(&s, ".\r\n", 3) < 0 || sm_sink_flush(&s) < 0) {
		/* smtpd may have said why before closing. */
		if (sm_smtp_reply(&c) == 0 && c.code >= 400)
			sm_fatal(sm_reply_status(&c), "%s",
			    buf_cstr(&c.reply));
		sm_fatal(EX_TEMPFAIL, "lost connection to postern while "
		    "sending the message");
	}
	buf_free(&s.out);
	if (sm_smtp_reply(&c) < 0)
		sm_fatal(EX_TEMPFAIL, "lost connection to postern after the "
		    "message (it may or may not have been queued)");
	if (c.code != 250)
		sm_fatal(sm_reply_status(&c), "%s", buf_cstr(&c.reply));
	(void)sm_smtp_cmd(&c, "QUIT");
	status = worst;
close:
	(void)close(c.fd);
	buf_free(&c.in);
	buf_free(&c.reply);
out:
	for (i = 0; i < m.header_count; i++)
		buf_free(&m.headers[i].text);
	free(m.headers);
	buf_free(&m.pending);
	free(added[0]);
	strv_free(&rcpts);
	free(sender);
	free(login);
	free(fullname);
	return status;
}

/* ---- -bs: an SMTP session on stdin/stdout ---- */


static int
sm_smtp_session(void)
{
	struct pollfd pfd[2];
	char buf[16384];
	bool in_open = true;
	int fd;

	if ((fd = sm_pickup_connect_wait()) < 0)
		sm_fatal(EX_TEMPFAIL, "postern is not running (cannot connect "
		    "to %s/public/pickup)", cfg_get("queue_directory"));
	(void)signal(SIGPIPE, SIG_IGN);
	for (;;) {
		ssize_t n;
		int nfds = 0;

		pfd[nfds].fd = fd;
		pfd[nfds++].events = POLLIN;
		if (in_open) {
			pfd[nfds].fd = STDIN_FILENO;
			pfd[nfds++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			sm_fatal(EX_OSERR, "poll: %s", strerror(errno));
		}
		if (pfd[0].revents != 0) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (fdio_write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (in_open && nfds > 1 && pfd[1].revents != 0) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				in_open = false;
				(void)shutdown(fd, SHUT_WR);
			} else if (fdio_write_all(fd, buf, (size_t)n) < 0)
				break;
		}
	}
	(void)close(fd);
	return 0;
}

/* ---- options ---- */

static void __attribute__((noreturn))
sm_usage(void)
{
	fprintf(stderr, "usage: %s [-t] [-i] [-f SENDER] [-F FULLNAME] "
	    "[-N DSN] [-R RET] [-V ENVID]\n"
	    "       [-bm|-bs|-bp|-bi|-bd] [-q] [-C CONFIG] [--] "
	    "[ADDRESS...]\n", admin_progname);
	exit(EX_USAGE);
}

/* -N: "never" or a list of success, delay, failure. */
static char *
sm_parse_notify(const char *v)
{
	char **words = strv_split(v, ", \t");
	struct buf b;
	size_t i;
	bool never = false;

	buf_init(&b, 0);
	for (i = 0; words != NULL && words[i] != NULL; i++) {
		const char *w = words[i];

		if (str_case_eq(w, "never"))
			never = true;
		else if (str_case_eq(w, "success") ||
		    str_case_eq(w, "delay") || str_case_eq(w, "failure")) {
			if (b.len > 0)
				buf_append_char(&b, ',');
			for (; *w != '\0'; w++)
				buf_append_char(&b,
				    (char)toupper((unsigned char)*w));
		} else
			sm_fatal(EX_USAGE, "bad -N value \"%s\": expected "
			    "never, or success, delay, failure", v);
	}
	if (words != NULL)
		strv_free(&words);
	if (never && b.len > 0)
		sm_fatal(EX_USAGE, "-N never cannot be combined with other "
		    "values");
	if (never) {
		buf_free(&b);
		return xstrdup("NEVER");
	}
	if (b.len == 0)
		sm_fatal(EX_USAGE, "empty -N value");
	return buf_steal(&b);
}

/* -C: a config file, or a directory holding postern.conf. */
static void
sm_set_config(const char *v)
{
	struct stat st;

	if (stat(v, &st) == 0 && S_ISDIR(st.st_mode))
		admin_config_override = xasprintf("%s/postern.conf", v);
	else
		admin_config_override = v;
}

static void
sm_mode_option(struct sm_opts *o, const char *v)
{
	if (strcmp(v, "m") == 0)
		o->mode = SM_MODE_DELIVER;
	else if (strcmp(v, "s") == 0)
		o->mode = SM_MODE_SMTP;
	else if (strcmp(v, "p") == 0)
		o->mode = SM_MODE_MAILQ;
	else if (strcmp(v, "i") == 0)
		o->mode = SM_MODE_ALIASES;
	else if (strcmp(v, "d") == 0 || strcmp(v, "D") == 0)
		o->mode = SM_MODE_DAEMON;
	else
		sm_fatal(EX_USAGE, "-b%s is not supported", v);
}

/*
 * Sendmail's option syntax: flags may be grouped ("-ti"); an option's
 * value follows it directly ("-ffoo") or as the next word ("-f foo");
 * -q takes an optional value only in the same word.  Options end at the
 * first non-option word or at "--".  Returns the index of the first
 * address.
 */
static int
sm_parse_options(int argc, char **argv, struct sm_opts *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		size_t j;

		if (strcmp(arg, "--") == 0)
			return i + 1;
		if (arg[0] != '-' || arg[1] == '\0')
			return i;
		for (j = 1; arg[j] != '\0'; j++) {
			char opt = arg[j];
			const char *val = NULL;

			if (strchr("BCFLNORVXbefhopr", opt) != NULL) {
				if (arg[j + 1] != '\0')
					val = arg + j + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					sm_fatal(EX_USAGE, "option -%c needs a "
					    "value", opt);
			} else if (opt == 'q')
				val = arg + j + 1;
			switch (opt) {
			case 't':
				o->extract = true;
				break;
			case 'i':
				o->ignore_dots = true;
				break;
			case 'I':
				o->mode = SM_MODE_ALIASES;
				break;
			case 'f':
			case 'r':
				o->sender = val;
				break;
			case 'F':
				o->fullname = val;
				break;
			case 'N':
				free(o->notify);
				o->notify = sm_parse_notify(val);
				break;
			case 'R':
				if (str_case_eq(val, "full"))
					o->ret = "FULL";
				else if (str_case_eq(val, "hdrs"))
					o->ret = "HDRS";
				else
					sm_fatal(EX_USAGE, "bad -R value "
					    "\"%s\": expected full or hdrs",
					    val);
				break;
			case 'V':
				o->envid = val;
				break;
			case 'B':
				o->body_8bit = str_case_eq(val, "8BITMIME");
				break;
			case 'C':
				sm_set_config(val);
				break;
			case 'b':
				sm_mode_option(o, val);
				break;
			case 'o':
				/* -oi is -i; other -oX options are ignored
				 * as Postfix does. */
				if (strcmp(val, "i") == 0)
					o->ignore_dots = true;
				break;
			case 'q':
				o->mode = SM_MODE_FLUSH;
				break;
			case 'G': case 'U': case 'c': case 'm': case 'n':
			case 'v': case 'x':
			case 'L': case 'O': case 'X': case 'e': case 'h':
			case 'p':
				/* Accepted and ignored (Postfix compatible). */
				break;
			default:
				admin_err("unknown option -%c", opt);
				sm_usage();
			}
			if (val != NULL)
				break;	/* the rest of the word was the value */
		}
	}
	return i;
}

int
sendmail_main(int argc, char **argv)
{
	struct sm_opts o;
	const char *name = strrchr(argv[0], '/');
	int first, i, status;

	name = name != NULL ? name + 1 : argv[0];
	memset(&o, 0, sizeof(o));
	if (strcmp(name, "mailq") == 0) {
		admin_progname = "mailq";
		o.mode = SM_MODE_MAILQ;
	} else if (strcmp(name, "newaliases") == 0) {
		admin_progname = "newaliases";
		o.mode = SM_MODE_ALIASES;
	} else {
		admin_progname = "sendmail";
		o.mode = SM_MODE_DELIVER;
	}
	first = sm_parse_options(argc, argv, &o);

	switch (o.mode) {
	case SM_MODE_MAILQ:
		return admin_queue_list();
	case SM_MODE_ALIASES:
		return admin_cmd_aliases(0, NULL);
	case SM_MODE_FLUSH:
		return admin_queue_flush();
	case SM_MODE_DAEMON: {
		char *args[] = { (char *)"start", NULL };

		return admin_cmd_start(1, args);
	}
	default:
		break;
	}
	if (admin_load_config() < 0)
		return EX_CONFIG;
	if (o.mode == SM_MODE_SMTP)
		return sm_smtp_session();
	for (i = first; i < argc; i++)
		if (sm_parse_addresses(argv[i], &o.rcpts) < 0)
			sm_fatal(EX_USAGE, "too many recipients (at most %d)",
			    SM_MAX_RCPTS);
	status = sm_deliver(&o);
	if (o.rcpts != NULL)
		strv_free(&o.rcpts);
	free(o.notify);
	return status;
}
