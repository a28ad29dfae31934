/*
 * mailload: the POP3 and IMAP load client of bench/pop3 and bench/imap.
 *
 * One process, one thread, non-blocking sockets on epoll: CONCURRENCY
 * connections at a time, each running one scripted session after the
 * other against 127.0.0.1:PORT until a time or session count is reached.
 * It is written in C so that the client is not what limits the rate on a
 * small machine: a session costs it a few tens of microseconds of CPU.
 *
 * Every reply is checked, so that a server which answers quickly but
 * wrongly is not counted: a POP3 session must see +OK for every command,
 * a UIDL line per message, RETR bodies whose sizes add up to what STAT
 * said, each ending in the line the bench's messages end with; an IMAP
 * session a tagged OK for every command, FETCH responses whose numbers
 * stay within EXISTS, a body literal as long as RFC822.SIZE said, an
 * APPENDUID for its APPEND.  A session that fails is counted as an
 * error, closed, and the connection starts the next one.  One answer
 * that is allowed but not what a client wants is counted apart: FETCH
 * 1:* ending in NO [EXPUNGEISSUED] because messages another session
 * expunged were left out (RFC 2180 4.1.2), provided every message the
 * bench never expunges was answered.
 *
 * Modes (what one session does):
 *   pop3  USER, PASS, STAT, UIDL, RETR 1..n (at most -r), QUIT
 *   imap  LOGIN, SELECT INBOX, FETCH 1:* (FLAGS), FETCH of the header
 *         fields of 10 messages, FETCH of one whole message, STORE
 *         +/-FLAGS (\Flagged), APPEND, UID STORE +FLAGS.SILENT (\Deleted)
 *         of the appended message, EXPUNGE, LOGOUT
 *   idle  LOGIN, SELECT INBOX, IDLE, then nothing: -n connections are
 *         opened (at most -c logging in at once), "ready" is printed when
 *         all are idling, and the program exits when its standard input
 *         reaches its end.
 *
 * Users: -u NAME -U N means NAME1..NAMEN; connection w runs its k-th
 * session as user (w + k * concurrency) mod N, so that with N a multiple
 * of the concurrency two connections never use one user at the same
 * time (POP3 locks the maildrop).  -U 0 means everyone is NAME.
 *
 * It prints key=value lines on standard output: sessions, ops, errors,
 * seconds, its own CPU seconds, and p50/p99 latency per command.  It does
 * not try to be a general client: anything unexpected is an error.
 */

#define _GNU_SOURCE		/* memrchr */

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest response line (without literals) and longest IMAP response. */
#define MAX_LINE	(256 * 1024)
#define MAX_RESP	(1024 * 1024)
/* Seconds one reply may take. */
#define REPLY_TIMEOUT	60
/* Errors after which the run is given up (the server is probably down). */
#define MAX_ERRORS	200
/* Distinct error texts kept for the report. */
#define MAX_ERRTEXT	5
/* Largest number of connections and of messages in a mailbox. */
#define MAX_CONNS	20000
#define MAX_MSGS	10000000
/* Header fields fetched per session and how many messages. */
#define HDR_FETCH_N	10
/* The last line of every message the bench generates or appends. */
#define TRAILER		"end of bench message\r\n"
#define TRAILER_LEN	(sizeof(TRAILER) - 1)

enum mode { MODE_POP3, MODE_IMAP, MODE_IDLE };

/* Operations timed separately; one histogram each. */
enum op {
	OP_CONNECT, OP_LOGIN, OP_STAT, OP_UIDL, OP_RETR, OP_QUIT,
	OP_SELECT, OP_FETCH_FLAGS, OP_FETCH_HDR, OP_FETCH_BODY, OP_STORE,
	OP_APPEND, OP_DELETE, OP_EXPUNGE, OP_LOGOUT, OP_IDLE, OP_SESSION,
	OP_COUNT
};

static const char *op_names[OP_COUNT] = {
	"connect", "login", "stat", "uidl", "retr", "quit",
	"select", "fetch_flags", "fetch_hdr", "fetch_body", "store",
	"append", "delete", "expunge", "logout", "idle", "session"
};

/* Latency histogram: 20 buckets per decade from 1 us to 1000 s. */
#define HIST_PER_DEC	20
#define HIST_N		(9 * HIST_PER_DEC + 1)

struct hist {
	unsigned long long n;
	unsigned long long b[HIST_N];
};

/* Steps of a session; the mode decides which follow which. */
enum step {
	S_CONNECTING, S_GREETING,
	/* POP3 */
	S_USER, S_PASS, S_STAT, S_UIDL_OK, S_UIDL_LIST, S_RETR_OK,
	S_RETR_BODY, S_QUIT,
	/* IMAP */
	S_LOGIN, S_SELECT, S_FETCH_FLAGS, S_FETCH_HDR, S_FETCH_BODY,
	S_STORE, S_APPEND_CONT, S_APPEND, S_DELETE, S_EXPUNGE, S_LOGOUT,
	S_IDLE_CONT, S_IDLING,
	S_CLOSING
};

struct conn {
	int		 fd;
	unsigned	 gen;		/* sessions begun here */
	int		 worker;	/* 0..concurrency-1 */
	unsigned	 nsess;		/* its sessions */
	int		 user;		/* of this session */
	enum step	 step;
	double		 t_session;	/* session start */
	double		 t_op;		/* command start */
	double		 deadline;	/* reply timeout */
	uint64_t	 rng;

	char		*in;		/* unread input */
	size_t		 inlen, incap;
	char		*out;		/* unsent output */
	size_t		 outlen, outoff, outcap;
	int		 want_out;	/* EPOLLOUT on */

	/* POP3 */
	long		 nmsg;		/* STAT */
	long long	 size;		/* STAT */
	long		 uidl_lines;
	long		 retr_i;	/* 1-based */
	long long	 retr_total;	/* octets, all */
	long long	 retr_bytes;	/* this message */
	char		 tail[TRAILER_LEN];
	size_t		 taillen;	/* of a body */

	/* IMAP */
	unsigned	 tagn;
	char		 tag[16];
	size_t		 lit_left;	/* to skip */
	char		*resp;		/* no literals */
	size_t		 resplen, respcap;
	size_t		 lits[8];	/* literal sizes */
	int		 nlit;
	long		 exists;	/* -1: none yet */
	long		 exists_sent;	/* at command */
	long		 expunged;	/* during it */
	unsigned char	*seen;		/* FETCH 1:* seqs */
	size_t		 seencap;	/* bits */
	long		 nseen;
	long		 win_lo, win_hi;	/* header FETCH */
	long		 nhdr;
	long		 body_seq;
	int		 body_ok;
	int		 store_add;
	unsigned long	 appended_uid;
	int		 bye;
};

static struct {
	enum mode	 mode;
	int		 port;
	int		 concurrency;
	double		 duration;	/* 0: by count */
	long		 count;		/* sessions */
	const char	*user;
	int		 nusers;
	const char	*password;
	long		 expect_msgs;	/* -m */
	long		 retr_max;	/* -r */
	size_t		 append_size;	/* -A */
	unsigned	 seed;
	int		 ep;
	double		 t0, t_end;
	int		 stopping;	/* no new ones */
	long		 started, sessions, errors, idling, open;
	long		 expungeissued;	/* FETCH NO */
	unsigned long long ops;
	unsigned long long bytes_in;
	struct hist	 hist[OP_COUNT];
	char		*errtext[MAX_ERRTEXT];
	long		 errcount[MAX_ERRTEXT];
	int		 nerrtext;
	char		*append_msg;	/* APPEND */
	size_t		 append_len;
} g;

static struct conn *conns;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL) {
		fprintf(stderr, "mailload: out of memory\n");
		exit(2);
	}
	return q;
}

static void __attribute__((noreturn))
fatal(const char *msg)
{
	fprintf(stderr, "mailload: %s\n", msg);
	exit(2);
}

static uint64_t
rnd(struct conn *c)
{
	/* xorshift64*: reproducible per connection, good enough to pick
	 * messages. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ULL;
}

static void
hist_add(enum op op, double secs)
{
	struct hist *h = &g.hist[op];
	double us = secs * 1e6;
	int i = 0;

	if (us >= 1) {
		/* log10 without libm: count decades, then steps within. */
		double d = us;
		int dec = 0;

		while (d >= 10 && dec < 8) {
			d /= 10;
			dec++;
		}
		i = dec * HIST_PER_DEC;
		while (i < HIST_N - 1 && d >= 1.1220184543019633) {
			/* 10^(1/20) */
			d /= 1.1220184543019633;
			i++;
		}
	}
	h->b[i]++;
	h->n++;
}

/* Upper edge of histogram bucket i, in microseconds. */
static double
hist_edge(int i)
{
	double v = 1;
	int k;

	for (k = 0; k <= i; k++)
		v *= 1.1220184543019633;
	return v;
}

static double
hist_pct(enum op op, double pct)
{
	struct hist *h = &g.hist[op];
	unsigned long long want, sum = 0;
	int i;

	if (h->n == 0)
		return -1;
	want = (unsigned long long)(h->n * pct / 100.0);
	if (want >= h->n)
		want = h->n - 1;
	for (i = 0; i < HIST_N; i++) {
		sum += h->b[i];
		if (sum > want)
			return hist_edge(i);
	}
	return hist_edge(HIST_N - 1);
}

static void
op_done(struct conn *c, enum op op)
{
	double t = now();

	/* Connecting and the greeting are timed but are no command. */
	if (g.duration == 0 || t <= g.t_end) {
		hist_add(op, t - c->t_op);
		if (op != OP_CONNECT)
			g.ops++;
	}
	c->t_op = t;
	c->deadline = t + REPLY_TIMEOUT;
}

static void
note_error(const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	int i;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Keep the texts printable: a server reply may hold anything. */
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	g.errors++;
	for (i = 0; i < g.nerrtext; i++)
		if (strcmp(g.errtext[i], buf) == 0) {
			g.errcount[i]++;
			return;
		}
	if (g.nerrtext < MAX_ERRTEXT) {
		g.errtext[g.nerrtext] = strdup(buf);
		g.errcount[g.nerrtext++] = 1;
	}
}

static void start_session(struct conn *);

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		g.open--;
	}
	c->inlen = c->outlen = c->outoff = 0;
	c->want_out = 0;
	c->lit_left = 0;
	c->resplen = 0;
	c->nlit = 0;
}

/* The session failed: count it, close, start the next one. */
static void
session_fail(struct conn *c, const char *fmt, ...)
{
	char buf[240];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note_error("%s (step %d, user %d)", buf, (int)c->step, c->user);
	conn_close(c);
	if (g.errors >= MAX_ERRORS)
		g.stopping = 1;
	if (g.mode != MODE_IDLE)
		start_session(c);
}

static void
session_done(struct conn *c)
{
	double t = now();

	if (g.duration == 0 || t <= g.t_end) {
		g.sessions++;
		hist_add(OP_SESSION, t - c->t_session);
	}
	conn_close(c);
	start_session(c);
}

static int
flush_out(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff,
		    c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		c->outoff += n;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		if (c->want_out) {
			struct epoll_event ev = { .events = EPOLLIN };

			ev.data.ptr = c;
			epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
			c->want_out = 0;
		}
	} else if (!c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };

		ev.data.ptr = c;
		epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = 1;
	}
	return 0;
}

static void
put(struct conn *c, const char *data, size_t len)
{
	if (c->outlen + len > c->outcap) {
		c->outcap = c->outlen + len + 1024;
		c->out = xrealloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
}

static void
putf(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		fatal("command too long");
	put(c, buf, n);
}

/* An IMAP command with the next tag. */
static void
imap_cmd(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagn);
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		fatal("command too long");
	putf(c, "%s %s\r\n", c->tag, buf);
	c->exists_sent = c->exists;
	c->expunged = 0;
}

static void
user_name(struct conn *c, char *buf, size_t len)
{
	int n;

	if (g.nusers == 0)
		n = snprintf(buf, len, "%s", g.user);
	else
		n = snprintf(buf, len, "%s%d", g.user, c->user + 1);
	if (n < 0 || (size_t)n >= len)
		fatal("user name too long");
}

static void
start_session(struct conn *c)
{
	struct sockaddr_in sin;
	struct epoll_event ev;
	int fd, one = 1;

	if (g.stopping)
		return;
	if (g.duration > 0 && now() >= g.t_end) {
		g.stopping = 1;
		return;
	}
	if (g.duration == 0 && g.started >= g.count)
		return;
	g.started++;
	c->gen++;
	c->user = g.nusers > 0 ? (int)((c->worker +
	    (unsigned long long)c->nsess * g.concurrency) % g.nusers) : 0;
	c->nsess++;
	c->t_session = c->t_op = now();
	c->deadline = c->t_op + REPLY_TIMEOUT;
	c->exists = -1;
	c->tagn = 0;
	c->bye = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		note_error("socket: %s", strerror(errno));
		g.stopping = 1;
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(g.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = fd;
	g.open++;
	c->step = S_CONNECTING;
	memset(&ev, 0, sizeof(ev));
	ev.data.ptr = c;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		c->step = S_GREETING;
		ev.events = EPOLLIN;
	} else if (errno == EINPROGRESS) {
		ev.events = EPOLLOUT;
		c->want_out = 1;
	} else {
		session_fail(c, "connect: %s", strerror(errno));
		return;
	}
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fatal("epoll_ctl");
}

/* ------------------------------------------------------------------ */
/* POP3 */

/* One line from the input: its length with CRLF, 0 when incomplete,
 * -1 when overlong or not ending in CRLF. */
static long
line_at(struct conn *c, size_t off)
{
	char *nl = memchr(c->in + off, '\n', c->inlen - off);
	size_t len;

	if (nl == NULL)
		return c->inlen - off > MAX_LINE ? -1 : 0;
	len = nl - (c->in + off) + 1;
	if (len < 2 || nl[-1] != '\r')
		return -1;
	return (long)len;
}

static void
pop3_retr_next(struct conn *c)
{
	if (c->retr_i < c->nmsg && c->retr_i < g.retr_max) {
		c->retr_i++;
		c->retr_bytes = 0;
		c->taillen = 0;
		putf(c, "RETR %ld\r\n", c->retr_i);
		c->step = S_RETR_OK;
	} else {
		/* Only when every message was read can the sizes be
		 * compared with STAT (RFC 1939 section 5: the drop listing
		 * counts octets as RETR sends them, un-stuffed). */
		if (c->retr_i == c->nmsg && c->retr_total != c->size) {
			session_fail(c, "RETR sent %lld octets in all, "
			    "STAT said %lld", c->retr_total, c->size);
			return;
		}
		put(c, "QUIT\r\n", 6);
		c->step = S_QUIT;
	}
}

/* Keeps the last TRAILER_LEN bytes of a message body. */
static void
tail_add(struct conn *c, const char *p, size_t n)
{
	if (n >= TRAILER_LEN) {
		memcpy(c->tail, p + n - TRAILER_LEN, TRAILER_LEN);
		c->taillen = TRAILER_LEN;
		return;
	}
	if (c->taillen + n > TRAILER_LEN) {
		size_t drop = c->taillen + n - TRAILER_LEN;

		memmove(c->tail, c->tail + drop, c->taillen - drop);
		c->taillen -= drop;
	}
	memcpy(c->tail + c->taillen, p, n);
	c->taillen += n;
}

static int
tail_ok(struct conn *c)
{
	return c->taillen == TRAILER_LEN &&
	    memcmp(c->tail, TRAILER, TRAILER_LEN) == 0;
}

/* Handles what is in the input buffer; returns the bytes consumed, or -1
 * after the session failed (the connection is then closed). */
static long
pop3_input(struct conn *c)
{
	size_t off = 0;
	char user[128];

	for (;;) {
		long len = line_at(c, off);
		char *l = c->in + off;

		if (len == 0)
			return off;
		if (len < 0) {
			session_fail(c, "overlong line or bare LF");
			return -1;
		}
		off += len;
		if (c->step == S_UIDL_LIST || c->step == S_RETR_BODY) {
			/* Multi-line: ".CRLF" ends it, a leading dot of
			 * any other line is a stuffed one (RFC 1939 3). */
			if (len == 3 && l[0] == '.') {
				if (c->step == S_UIDL_LIST) {
					if (c->uidl_lines != c->nmsg) {
						session_fail(c, "UIDL listed "
						    "%ld of %ld messages",
						    c->uidl_lines, c->nmsg);
						return -1;
					}
					op_done(c, OP_UIDL);
					c->retr_i = 0;
					c->retr_total = 0;
					pop3_retr_next(c);
				} else {
					if (!tail_ok(c)) {
						session_fail(c, "message %ld "
						    "does not end in the "
						    "bench trailer",
						    c->retr_i);
						return -1;
					}
					c->retr_total += c->retr_bytes;
					op_done(c, OP_RETR);
					pop3_retr_next(c);
				}
				continue;
			}
			if (l[0] == '.') {
				l++;
				len--;
			}
			if (c->step == S_UIDL_LIST) {
				long n = strtol(l, NULL, 10);

				if (n != c->uidl_lines + 1) {
					session_fail(c, "UIDL line %ld "
					    "numbered %ld", c->uidl_lines + 1,
					    n);
					return -1;
				}
				c->uidl_lines++;
			} else {
				c->retr_bytes += len;
				tail_add(c, l, len);
			}
			continue;
		}
		if (len < 5 || memcmp(l, "+OK", 3) != 0) {
			session_fail(c, "%.*s", (int)(len > 100 ? 100 :
			    len - 2), l);
			return -1;
		}
		switch (c->step) {
		case S_GREETING:
			op_done(c, OP_CONNECT);
			user_name(c, user, sizeof(user));
			putf(c, "USER %s\r\n", user);
			c->step = S_USER;
			break;
		case S_USER:
			putf(c, "PASS %s\r\n", g.password);
			c->step = S_PASS;
			break;
		case S_PASS:
			op_done(c, OP_LOGIN);
			put(c, "STAT\r\n", 6);
			c->step = S_STAT;
			break;
		case S_STAT:
			/* sscanf wants a terminated string. */
			snprintf(user, sizeof(user), "%.*s", (int)(len - 2),
			    l);
			if (sscanf(user, "+OK %ld %lld", &c->nmsg,
			    &c->size) != 2 || c->nmsg < 0 ||
			    (g.expect_msgs >= 0 && c->nmsg !=
			    g.expect_msgs)) {
				session_fail(c, "STAT: %.*s (expected %ld "
				    "messages)", (int)(len - 2), l,
				    g.expect_msgs);
				return -1;
			}
			op_done(c, OP_STAT);
			put(c, "UIDL\r\n", 6);
			c->uidl_lines = 0;
			c->step = S_UIDL_OK;
			break;
		case S_UIDL_OK:
			c->step = S_UIDL_LIST;
			break;
		case S_RETR_OK:
			c->step = S_RETR_BODY;
			break;
		case S_QUIT:
			op_done(c, OP_QUIT);
			session_done(c);
			return -1;
		default:
			session_fail(c, "unexpected +OK");
			return -1;
		}
	}
}

/* ------------------------------------------------------------------ */
/* IMAP */

static void
resp_add(struct conn *c, const char *p, size_t n)
{
	if (c->resplen + n + 1 > c->respcap) {
		c->respcap = (c->resplen + n + 1) * 2;
		c->resp = xrealloc(c->resp, c->respcap);
	}
	memcpy(c->resp + c->resplen, p, n);
	c->resplen += n;
	c->resp[c->resplen] = '\0';
}

static int
seen_mark(struct conn *c, long seq)
{
	if (seq < 1 || seq > MAX_MSGS)
		return -1;
	if ((size_t)seq >= c->seencap) {
		size_t old = c->seencap, n = (size_t)seq * 2 + 64;

		c->seen = xrealloc(c->seen, n / 8 + 1);
		memset(c->seen + old / 8, 0, n / 8 + 1 - old / 8);
		c->seencap = n;
	}
	if (!(c->seen[seq / 8] & (1 << (seq % 8)))) {
		c->seen[seq / 8] |= 1 << (seq % 8);
		c->nseen++;
	}
	return 0;
}

static long
num_after(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	if (p == NULL)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

/* An untagged response; -1 after a failure. */
static int
imap_untagged(struct conn *c)
{
	char *r = c->resp + 2, *end;
	long n;

	if (strncmp(r, "BYE", 3) == 0) {
		c->bye = 1;
		return 0;
	}
	if (*r < '0' || *r > '9')
		return 0;		/* OK, FLAGS, CAPABILITY, ... */
	n = strtol(r, &end, 10);
	if (*end != ' ')
		return 0;
	end++;
	if (strncmp(end, "EXISTS", 6) == 0) {
		c->exists = n;
	} else if (strncmp(end, "EXPUNGE", 7) == 0) {
		if (n < 1 || n > c->exists) {
			session_fail(c, "* %ld EXPUNGE with %ld messages",
			    n, c->exists);
			return -1;
		}
		c->exists--;
		c->expunged++;
	} else if (strncmp(end, "FETCH", 5) == 0) {
		if (n < 1 || n > c->exists) {
			session_fail(c, "* %ld FETCH with %ld messages", n,
			    c->exists);
			return -1;
		}
		switch (c->step) {
		case S_FETCH_FLAGS:
			if (strstr(end, "FLAGS (") != NULL &&
			    seen_mark(c, n) < 0) {
				session_fail(c, "bad sequence number");
				return -1;
			}
			break;
		case S_FETCH_HDR:
			if (c->nlit == 1 && n >= c->win_lo &&
			    n <= c->win_hi && c->lits[0] > 0)
				c->nhdr++;
			break;
		case S_FETCH_BODY:
			if (c->nlit >= 1 && n == c->body_seq) {
				long sz = num_after(c->resp, "RFC822.SIZE ");

				if (sz < 0 || (size_t)sz != c->lits[0]) {
					session_fail(c, "BODY[] of %ld is "
					    "%zu octets, RFC822.SIZE %ld", n,
					    c->lits[0], sz);
					return -1;
				}
				if (!tail_ok(c)) {
					session_fail(c, "BODY[] of %ld does "
					    "not end in the bench trailer",
					    n);
					return -1;
				}
				c->body_ok = 1;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

static void
imap_next_session_step(struct conn *c)
{
	long n, m;
	char user[128];

	switch (c->step) {
	case S_GREETING:
		op_done(c, OP_CONNECT);
		user_name(c, user, sizeof(user));
		imap_cmd(c, "LOGIN \"%s\" \"%s\"", user, g.password);
		c->step = S_LOGIN;
		break;
	case S_LOGIN:
		op_done(c, OP_LOGIN);
		imap_cmd(c, "SELECT INBOX");
		c->step = S_SELECT;
		break;
	case S_SELECT:
		op_done(c, OP_SELECT);
		if (g.mode == MODE_IDLE) {
			imap_cmd(c, "IDLE");
			c->step = S_IDLE_CONT;
			break;
		}
		c->nseen = 0;
		if (c->seen != NULL)
			memset(c->seen, 0, c->seencap / 8 + 1);
		imap_cmd(c, "FETCH 1:* (FLAGS)");
		c->step = S_FETCH_FLAGS;
		break;
	case S_FETCH_FLAGS:
		op_done(c, OP_FETCH_FLAGS);
		n = c->exists;
		m = g.expect_msgs > 0 && g.expect_msgs < n ?
		    g.expect_msgs : n;
		c->win_lo = m > HDR_FETCH_N ?
		    1 + (long)(rnd(c) % (m - HDR_FETCH_N + 1)) : 1;
		c->win_hi = c->win_lo + HDR_FETCH_N - 1;
		if (c->win_hi > n)
			c->win_hi = n;
		c->nhdr = 0;
		imap_cmd(c, "FETCH %ld:%ld (UID RFC822.SIZE BODY.PEEK["
		    "HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID "
		    "CONTENT-TYPE)])", c->win_lo, c->win_hi);
		c->step = S_FETCH_HDR;
		break;
	case S_FETCH_HDR:
		op_done(c, OP_FETCH_HDR);
		n = c->exists;
		m = g.expect_msgs > 0 && g.expect_msgs < n ?
		    g.expect_msgs : n;
		c->body_seq = 1 + (long)(rnd(c) % m);
		c->body_ok = 0;
		c->taillen = 0;
		imap_cmd(c, "FETCH %ld (RFC822.SIZE BODY[])", c->body_seq);
		c->step = S_FETCH_BODY;
		break;
	case S_FETCH_BODY:
		op_done(c, OP_FETCH_BODY);
		n = c->exists;
		m = g.expect_msgs > 0 && g.expect_msgs < n ?
		    g.expect_msgs : n;
		c->store_add = rnd(c) & 1;
		imap_cmd(c, "STORE %ld %sFLAGS (\\Flagged)",
		    1 + (long)(rnd(c) % m), c->store_add ? "+" : "-");
		c->step = S_STORE;
		break;
	case S_STORE:
		op_done(c, OP_STORE);
		/* A synchronizing literal (RFC 3501 7.5): what a client
		 * does that does not rely on LITERAL+. */
		imap_cmd(c, "APPEND INBOX (\\Seen) {%zu}", g.append_len);
		c->appended_uid = 0;
		c->step = S_APPEND_CONT;
		break;
	case S_APPEND:
		op_done(c, OP_APPEND);
		imap_cmd(c, "UID STORE %lu +FLAGS.SILENT (\\Deleted)",
		    c->appended_uid);
		c->step = S_DELETE;
		break;
	case S_DELETE:
		op_done(c, OP_DELETE);
		imap_cmd(c, "EXPUNGE");
		c->step = S_EXPUNGE;
		break;
	case S_EXPUNGE:
		op_done(c, OP_EXPUNGE);
		imap_cmd(c, "LOGOUT");
		c->step = S_LOGOUT;
		break;
	default:
		break;
	}
}

/* A tagged response to the current command; -1 after a failure or at
 * the end of the session. */
static int
imap_tagged(struct conn *c)
{
	size_t tl = strlen(c->tag);
	char *r = c->resp;

	if (c->resplen < tl + 3 || strncmp(r, c->tag, tl) != 0 ||
	    r[tl] != ' ') {
		session_fail(c, "unexpected line: %.100s", r);
		return -1;
	}
	r += tl + 1;
	if (c->step == S_FETCH_FLAGS &&
	    strncmp(r, "NO [EXPUNGEISSUED]", 18) == 0) {
		/* Messages another session expunged and this one has not
		 * been told of yet may be left out with a NO (RFC 2180
		 * 4.1.2, RFC 5530 3): allowed, counted, and every message
		 * the bench never expunges must still have been answered. */
		g.expungeissued++;
		if (g.expect_msgs < 0 || c->nseen < g.expect_msgs) {
			session_fail(c, "FETCH 1:* answered %ld messages with "
			    "%.100s", c->nseen, r);
			return -1;
		}
		imap_next_session_step(c);
		return 0;
	}
	if (strncmp(r, "OK", 2) != 0) {
		session_fail(c, "%s: %.120s", c->tag, r);
		return -1;
	}
	switch (c->step) {
	case S_SELECT:
		if (c->exists < 1 || (g.expect_msgs >= 0 &&
		    c->exists < g.expect_msgs)) {
			session_fail(c, "SELECT: %ld messages, expected %ld",
			    c->exists, g.expect_msgs);
			return -1;
		}
		break;
	case S_FETCH_FLAGS:
		/* Every message that existed when the command was sent,
		 * less those expunged before their answer, has its FLAGS
		 * (RFC 3501 6.4.5; no EXPUNGE is sent during FETCH). */
		if (c->nseen < c->exists_sent - c->expunged ||
		    (g.expect_msgs >= 0 && c->nseen < g.expect_msgs)) {
			session_fail(c, "FETCH 1:* answered %ld of %ld "
			    "messages", c->nseen, c->exists_sent);
			return -1;
		}
		break;
	case S_FETCH_HDR:
		if (c->nhdr != c->win_hi - c->win_lo + 1) {
			session_fail(c, "header FETCH %ld:%ld answered %ld",
			    c->win_lo, c->win_hi, c->nhdr);
			return -1;
		}
		break;
	case S_FETCH_BODY:
		if (!c->body_ok) {
			session_fail(c, "FETCH %ld BODY[]: no body",
			    c->body_seq);
			return -1;
		}
		break;
	case S_APPEND:
		{
			const char *p = strstr(r, "[APPENDUID ");
			unsigned long v;

			if (p == NULL || sscanf(p, "[APPENDUID %lu %lu]",
			    &v, &c->appended_uid) != 2 ||
			    c->appended_uid == 0) {
				session_fail(c, "APPEND without APPENDUID: "
				    "%.100s", r);
				return -1;
			}
		}
		break;
	case S_LOGOUT:
		if (!c->bye) {
			session_fail(c, "LOGOUT without BYE");
			return -1;
		}
		op_done(c, OP_LOGOUT);
		session_done(c);
		return -1;
	case S_IDLING:
		session_fail(c, "tagged reply while idling: %.100s", r);
		return -1;
	default:
		break;
	}
	imap_next_session_step(c);
	return 0;
}

static int
imap_response(struct conn *c)
{
	char *r = c->resp;

	if (c->step == S_GREETING) {
		if (strncmp(r, "* OK", 4) != 0) {
			session_fail(c, "greeting: %.100s", r);
			return -1;
		}
		imap_next_session_step(c);
		return 0;
	}
	if (r[0] == '*' && r[1] == ' ')
		return imap_untagged(c);
	if (r[0] == '+') {
		if (c->step == S_APPEND_CONT) {
			put(c, g.append_msg, g.append_len);
			put(c, "\r\n", 2);
			c->step = S_APPEND;
			return 0;
		}
		if (c->step == S_IDLE_CONT) {
			op_done(c, OP_IDLE);
			c->step = S_IDLING;
			c->deadline = 1e300;
			g.idling++;
			return 0;
		}
		session_fail(c, "unexpected continuation");
		return -1;
	}
	return imap_tagged(c);
}

/* Splits the input into responses (lines plus literals, RFC 3501 4.3);
 * returns the bytes consumed or -1 after a failure. */
static long
imap_input(struct conn *c)
{
	size_t off = 0;

	for (;;) {
		long len;
		char *l, *b;

		if (c->lit_left > 0) {
			size_t n = c->inlen - off;

			if (n > c->lit_left)
				n = c->lit_left;
			if (n == 0)
				return off;
			tail_add(c, c->in + off, n);
			off += n;
			c->lit_left -= n;
			continue;
		}
		len = line_at(c, off);
		if (len == 0)
			return off;
		if (len < 0) {
			session_fail(c, "overlong line or bare LF");
			return -1;
		}
		l = c->in + off;
		off += len;
		if (c->resplen + len > MAX_RESP) {
			session_fail(c, "response too long");
			return -1;
		}
		resp_add(c, l, len - 2);
		/* A line ending in {N} announces N octets of literal. */
		if (len >= 5 && l[len - 3] == '}' &&
		    (b = memrchr(l, '{', len - 3)) != NULL && b[1] >= '0' &&
		    b[1] <= '9') {
			char *e;
			unsigned long long n = strtoull(b + 1, &e, 10);

			if (*e != '}' || n > 100 * 1024 * 1024) {
				session_fail(c, "bad literal");
				return -1;
			}
			if (c->nlit < 8)
				c->lits[c->nlit] = n;
			c->nlit++;
			c->lit_left = n;
			c->taillen = 0;
			continue;
		}
		if (imap_response(c) < 0)
			return -1;
		c->resplen = 0;
		c->nlit = 0;
	}
}

/* ------------------------------------------------------------------ */

static void
conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;
		long used;

		if (c->incap - c->inlen < 16384) {
			c->incap = c->incap ? c->incap * 2 : 65536;
			if (c->incap > 2 * MAX_LINE + 65536) {
				session_fail(c, "input buffer full");
				return;
			}
			c->in = xrealloc(c->in, c->incap);
		}
		n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			session_fail(c, "recv: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			session_fail(c, "connection closed by the server");
			return;
		}
		g.bytes_in += n;
		c->inlen += n;
		used = g.mode == MODE_POP3 ? pop3_input(c) : imap_input(c);
		if (used < 0)
			return;		/* closed and maybe restarted */
		if (used > 0) {
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
		}
		if (c->outlen > 0 && flush_out(c) < 0) {
			session_fail(c, "send: %s", strerror(errno));
			return;
		}
		if ((size_t)n < 16384)
			return;
	}
}

static void
conn_writable(struct conn *c)
{
	if (c->step == S_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct epoll_event ev = { .events = EPOLLIN };

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			session_fail(c, "connect: %s", strerror(err));
			return;
		}
		ev.data.ptr = c;
		epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = 0;
		c->step = S_GREETING;
		return;
	}
	if (flush_out(c) < 0)
		session_fail(c, "send: %s", strerror(errno));
}

static void
usage(void)
{
	fprintf(stderr, "usage: mailload pop3|imap|idle -p PORT -c CONC "
	    "(-t SECONDS | -n COUNT) -u USER [-U USERS] -w PASSWORD\n"
	    "       [-m MESSAGES] [-r RETR_MAX] [-A APPEND_SIZE] "
	    "[-s SEED]\n");
	exit(2);
}

static long
num_arg(const char *s, long lo, long hi)
{
	char *e;
	long v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (errno != 0 || *e != '\0' || e == s || v < lo || v > hi)
		usage();
	return v;
}

/* The APPEND literal: a small mail with CRLF lines, ending in the
 * bench trailer. */
static void
make_append(size_t size)
{
	static const char head[] =
	    "From: Bench Sender <sender@bench.example>\r\n"
	    "To: Bench Reader <reader@bench.example>\r\n"
	    "Subject: appended by mailload\r\n"
	    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
	    "Message-ID: <append@bench.example>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
	size_t n;

	g.append_msg = xrealloc(NULL, size + sizeof(head) + 200);
	memcpy(g.append_msg, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	while (n + 74 + TRAILER_LEN <= size) {
		memset(g.append_msg + n, 'a' + (int)(n % 26), 72);
		memcpy(g.append_msg + n + 72, "\r\n", 2);
		n += 74;
	}
	memcpy(g.append_msg + n, TRAILER, TRAILER_LEN);
	g.append_len = n + TRAILER_LEN;
}

static void
report(void)
{
	struct rusage ru;
	double el = (g.duration > 0 ? g.t_end : now()) - g.t0;
	int i;

	getrusage(RUSAGE_SELF, &ru);
	printf("sessions=%ld\nops=%llu\nerrors=%ld\nseconds=%.3f\n",
	    g.sessions, g.ops, g.errors, el);
	printf("cpu=%.3f\nbytes_in=%llu\n", ru.ru_utime.tv_sec +
	    ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6, g.bytes_in);
	if (g.mode == MODE_IDLE)
		printf("idling=%ld\n", g.idling);
	if (g.mode == MODE_IMAP)
		printf("expungeissued=%ld\n", g.expungeissued);
	for (i = 0; i < OP_COUNT; i++)
		if (g.hist[i].n > 0)
			printf("op_%s=%llu %.0f %.0f\n", op_names[i],
			    g.hist[i].n, hist_pct(i, 50), hist_pct(i, 99));
	for (i = 0; i < g.nerrtext; i++)
		printf("error=%ld %s\n", g.errcount[i], g.errtext[i]);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct rlimit rl;
	double last_scan = 0;
	unsigned gen;
	int ch, i, stdin_open = 0;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "pop3") == 0)
		g.mode = MODE_POP3;
	else if (strcmp(argv[1], "imap") == 0)
		g.mode = MODE_IMAP;
	else if (strcmp(argv[1], "idle") == 0)
		g.mode = MODE_IDLE;
	else
		usage();
	g.concurrency = 10;
	g.expect_msgs = -1;
	g.retr_max = 100;
	g.seed = 1;
	g.nusers = 0;
	optind = 2;
	while ((ch = getopt(argc, argv, "A:c:m:n:p:r:s:t:u:U:w:")) != -1) {
		switch (ch) {
		case 'A':
			g.append_size = num_arg(optarg, 100, 10000000);
			break;
		case 'c':
			g.concurrency = num_arg(optarg, 1, MAX_CONNS);
			break;
		case 'm':
			g.expect_msgs = num_arg(optarg, 0, MAX_MSGS);
			break;
		case 'n':
			g.count = num_arg(optarg, 1, LONG_MAX);
			break;
		case 'p':
			g.port = num_arg(optarg, 1, 65535);
			break;
		case 'r':
			g.retr_max = num_arg(optarg, 0, MAX_MSGS);
			break;
		case 's':
			g.seed = num_arg(optarg, 0, INT_MAX);
			break;
		case 't':
			g.duration = num_arg(optarg, 1, 86400);
			break;
		case 'u':
			g.user = optarg;
			break;
		case 'U':
			g.nusers = num_arg(optarg, 0, 10000000);
			break;
		case 'w':
			g.password = optarg;
			break;
		default:
			usage();
		}
	}
	if (g.port == 0 || g.user == NULL || g.password == NULL ||
	    (g.duration == 0) == (g.count == 0) ||
	    (g.mode == MODE_IDLE && g.count == 0))
		usage();
	if (g.mode == MODE_IDLE) {
		if (g.count > MAX_CONNS)
			usage();
		/* -c is how many log in at once; every connection stays. */
	}
	make_append(g.append_size ? g.append_size : 4096);
	signal(SIGPIPE, SIG_IGN);
	/* Room for every connection. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		fatal("epoll_create1");
	{
		int n = g.mode == MODE_IDLE ? (int)g.count : g.concurrency;

		conns = calloc(n, sizeof(*conns));
		if (conns == NULL)
			fatal("out of memory");
		g.t0 = now();
		g.t_end = g.t0 + g.duration;
		for (i = 0; i < n; i++) {
			conns[i].fd = -1;
			conns[i].worker = i;
			conns[i].rng = 0x9E3779B97F4A7C15ULL *
			    (uint64_t)(i + 1) + g.seed;
		}
		if (g.mode == MODE_IDLE) {
			/* At most -c connections logging in at once; the
			 * rest start as those reach IDLE. */
			for (i = 0; i < n && i < g.concurrency; i++)
				start_session(&conns[i]);
		} else {
			for (i = 0; i < n; i++)
				start_session(&conns[i]);
		}
	}
	for (;;) {
		int n, k;
		double t = now();

		if (g.mode == MODE_IDLE) {
			long next = g.started;

			/* Keep -c logins under way. */
			while (next < g.count &&
			    g.started - g.idling - (g.errors) < g.concurrency &&
			    !g.stopping) {
				start_session(&conns[next]);
				next = g.started;
			}
			if (!stdin_open && g.idling + g.errors >= g.count) {
				struct epoll_event ev = { .events = EPOLLIN };

				printf("ready idle=%ld errors=%ld\n",
				    g.idling, g.errors);
				fflush(stdout);
				ev.data.ptr = NULL;
				if (epoll_ctl(g.ep, EPOLL_CTL_ADD, 0, &ev) < 0)
					break;
				stdin_open = 1;
			}
			if (g.stopping && g.open == 0)
				break;
		} else if (g.open == 0 && (g.stopping || (g.duration == 0 &&
		    g.started >= g.count)))
			break;
		if (t - last_scan > 0.1) {
			int nc = g.mode == MODE_IDLE ? (int)g.count :
			    g.concurrency;

			last_scan = t;
			for (i = 0; i < nc; i++)
				if (conns[i].fd >= 0 && t > conns[i].deadline)
					session_fail(&conns[i], "no reply "
					    "within %d s", REPLY_TIMEOUT);
			if (g.duration > 0 && t >= g.t_end)
				g.stopping = 1;
			/* A session still running 30 s after the end is
			 * given up: it cannot count any more. */
			if (g.stopping && g.duration > 0 &&
			    t > g.t_end + 30) {
				for (i = 0; i < nc; i++)
					if (conns[i].fd >= 0)
						note_error("session still "
						    "running 30 s after the "
						    "end (step %d)",
						    (int)conns[i].step);
				break;
			}
		}
		n = epoll_wait(g.ep, evs, 256, 100);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;

			if (c == NULL) {
				char buf[256];

				if (read(0, buf, sizeof(buf)) <= 0)
					goto out;
				continue;
			}
			gen = c->gen;
			if (c->fd < 0)
				continue;
			if (evs[k].events & (EPOLLOUT | EPOLLERR))
				conn_writable(c);
			/* A failed session may have started the next one on
			 * a new socket: these events were for the old. */
			if (c->gen == gen && c->fd >= 0 &&
			    (evs[k].events & (EPOLLIN | EPOLLHUP)))
				conn_readable(c);
		}
	}
out:
	report();
	return 0;
}
