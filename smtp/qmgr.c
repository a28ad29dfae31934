/*
 * qmgr: the queue manager (see qmgr.h).
 *
 * A message is "active" while it is loaded in memory: its queue file is
 * open for appending status records and each of its pending recipients is
 * either waiting for a delivery agent (a job), being delivered (in
 * flight), or finished for this attempt.  When the attempt is over the
 * message is removed (all recipients done), or moved to deferred/ with its
 * mtime set to the next retry time (Postfix's trick: the schedule lives in
 * the file system and survives restarts).  Notices (bounce.c) are written
 * before the 'D' records of the recipients they report, so a crash can
 * repeat a notice but never lose one.
 *
 * Routing (qmgr_route.c) gives each pending recipient a transport.
 * Local recipients go to local(8) over private/local: one recipient per
 * request, one request in flight per connection, up to
 * local_destination_concurrency_limit connections, from one job queue.
 * Remote recipients go to the smtp agent over private/smtp, scheduled per
 * destination (the next hop): a job is one message's recipients for one
 * next hop (at most smtp_destination_recipient_limit), each destination
 * has at most its concurrency window of requests in flight (slow start
 * from initial_destination_concurrency up to
 * smtp_destination_concurrency_limit), destinations take turns, and at
 * most default_process_limit connections to the agent are open.  A
 * destination that could not be reached at all is "dead" for
 * minimal_backoff_time: its queued mail is deferred without another
 * connection, as Postfix does, until then or until a flush.
 *
 * Flow control (in_flow_delay, smtpd_data.c): qmgr keeps the FIFO
 * private/flow stocked with one-byte tokens for smtpd.  It writes one
 * token for each message it takes in from incoming/, and, while nothing
 * waits in incoming/, tops the FIFO up to the free room in the active set
 * (at most QMGR_FLOW_TOKENS).  When delivery falls behind and the active
 * set is full, no tokens come and smtpd slows down by up to in_flow_delay
 * per message, as Postfix's qmgr and cleanup do with their pipe.
 *
 * Not done here: reading message content (except for notices), address
 * rewriting (smtpd does it before queueing), DNS, anything as root.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "addr.h"
#include "bounce.h"
#include "buf.h"
#include "cfg.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "fdio.h"
#include "log.h"
#include "qmgr.h"
#include "queue_file.h"
#include "queue_list.h"
#include "rewrite.h"
#include "str.h"
#include "xmalloc.h"

/* Characters of a deferral reason kept in a W record and in logs. */
#define QMGR_MAX_REASON		1000
/* Bytes of the recipient index list of one SEND (MAX_IPC_LINE bounds
 * the whole line; the path and the next hop take the rest). */
#define QMGR_SEND_IDX_BYTES	4096
/* Seconds an unused destination's state (window, dead mark) is kept. */
#define QMGR_DEST_IDLE		60
/* Most flow tokens kept in private/flow (Postfix keeps its process
 * limit's worth, 100). */
#define QMGR_FLOW_TOKENS	100

/* ---- the set of queue IDs qmgr knows (pending load or active) ---- */

struct qmgr_msg;

struct qmgr_ent {
	char		 id[QUEUE_ID_MAX];
	struct qmgr_msg	*msg;		/* NULL: not loaded yet */
	struct qmgr_ent	*next;
};

struct qmgr_table {
	struct qmgr_ent	**buckets;
	size_t		  size;
	size_t		  count;
};

/* ---- messages, recipients of this attempt, jobs, connections ---- */

enum qmgr_rstate {
	QR_IDLE = 0,	/* done before this attempt, or not tried */
	QR_QUEUED,	/* waiting for a connection to local */
	QR_INFLIGHT,
	QR_SENT,
	QR_DEFERRED,
	QR_BOUNCED	/* failed; the D record waits for the notice */
};

/* Which success notice a sent recipient gets (RFC 3461 §5.2.2). */
enum qmgr_notice {
	QMGR_NOTICE_DELIVERED = 0,	/* into a mailbox: "delivered" */
	QMGR_NOTICE_RELAYED,		/* to a server without DSN */
	QMGR_NOTICE_PASSED		/* to a DSN server: its notice */
};

struct qmgr_rcpt {
	enum qmgr_rstate st;
	enum qmgr_notice notice;	/* when st is QR_SENT */
	char		*dsn;
	char		*text;
	/* Who answered ("host[ip]:port"), or NULL: for notices. */
	char		*relay;
};

struct qmgr_sjob;

struct qmgr_msg {
	char		 id[QUEUE_ID_MAX];
	bool		 in_deferred;	/* else in incoming/ */
	int		 fd;
	struct queue_msg qm;
	struct qmgr_rcpt *rs;		/* qm.rcpt_count entries */
	unsigned	 queued;
	unsigned	 inflight;
	bool		 recover;	/* ask local to look for copies */
	bool		 expired;	/* a deferral now means a bounce */
	bool		 deleted;
	bool		 hold;
	bool		 aborted;	/* shutdown: leave the file */
	double		 active_at;	/* wall clock when loaded */
	struct qmgr_sjob *sjobs;	/* its smtp jobs waiting in queues */
	struct qmgr_msg	*prev, *next;
};

struct qmgr_job {
	struct qmgr_msg	*msg;
	size_t		 idx;
	struct qmgr_job	*next;
};

struct qmgr_pend {
	char		 id[QUEUE_ID_MAX];
	bool		 deferred;
	bool		 recover;
	struct qmgr_pend *next;
};

struct qmgr_pendq {
	struct qmgr_pend *head, *tail;
};

/* One outcome of an smtp request, kept until DONE (for the delays). */
struct qmgr_sres {
	bool		 got;
	int		 what;		/* enum qmgr_outcome */
	enum qmgr_notice notice;	/* for QMGR_SENT */
	char		*dsn;
	char		*relay;
	char		*text;
};

/*
 * A destination: the smtp next hop and its queue of jobs.  Kept while it
 * has jobs or requests in flight, is dead, or was used in the last
 * QMGR_DEST_IDLE seconds (its concurrency window survives short gaps).
 */
struct qmgr_dest {
	char		*nexthop;
	struct qmgr_sjob *head, *tail;	/* jobs waiting, oldest first */
	unsigned	 inflight;
	unsigned	 window;	/* requests allowed in flight */
	unsigned	 wins;		/* successes since it grew */
	double		 last_ok;	/* wall clock, last success */
	time_t		 dead_until;	/* 0: alive */
	char		*dead_dsn;
	char		*dead_text;
	time_t		 used_at;
	bool		 ready;		/* on the ready list */
	struct qmgr_dest *rprev, *rnext;	/* ready list */
	struct qmgr_dest *hnext;	/* hash chain */
};

/* An smtp job: recipients of one message for one next hop (one SEND). */
struct qmgr_sjob {
	struct qmgr_msg	*msg;
	struct qmgr_dest *dest;
	size_t		*idx;
	size_t		 n, cap;
	size_t		 idx_bytes;	/* length of the index list */
	struct qmgr_sres *res;		/* n entries, while in flight */
	size_t		 nres;
	double		 sent_at;
	struct qmgr_sjob *dprev, *dnext;	/* destination queue */
	struct qmgr_sjob *mprev, *mnext;	/* the message's queued jobs */
};

enum qmgr_agent {
	QMGR_AGENT_LOCAL,
	QMGR_AGENT_SMTP
};
#define QMGR_AGENTS	2

struct qmgr_conn {
	enum qmgr_agent	 agent;
	int		 fd;
	struct io	*io;
	struct buf	 in;
	struct qmgr_msg	*msg;		/* local: in flight or NULL */
	size_t		 idx;
	struct qmgr_sjob *sjob;		/* smtp: in flight, or NULL */
	double		 sent_at;	/* wall clock */
	time_t		 deadline;	/* in-flight request ends by */
	time_t		 idle_since;
	char		**fwd;		/* FORWARDs: "addr\torcpt" */
	struct qmgr_conn *next;
};

enum qmgr_outcome {
	QMGR_SENT,
	QMGR_DEFER,
	QMGR_BOUNCE
};

/* What the log line and a notice say about one delivery attempt. */
struct qmgr_attempt {
	const char	*relay;		/* "local", "none", "host[ip]:port" */
	double		 sent_at;	/* request sent (wall); 0: none */
	double		 conn_s;	/* connection setup; < 0: unknown */
	double		 xfer_s;	/* transfer; < 0: since sent_at */
};

static const struct qmgr_attempt qmgr_no_attempt = { "none", 0, -1, -1 };

static const char *const qmgr_agent_names[QMGR_AGENTS] = { "local",
	"smtp" };

const char *qmgr_queue_dir;

static struct qmgr_table known, warned;
static struct qmgr_msg *active_head;
static unsigned active_count;
/* qmgr_message_active_limit */
static unsigned active_limit = QMGR_MAX_ACTIVE;
/* private/flow, write side; -1 when it could not be made */
static int flow_fd = -1;
static struct qmgr_job *job_head, *job_tail;
static struct qmgr_pendq pend_incoming, pend_deferred;
static bool pend_toggle;
static struct qmgr_conn *conns;
static unsigned conn_count[QMGR_AGENTS];
static time_t agent_down_since[QMGR_AGENTS];
static struct qmgr_dest **dest_buckets;
static size_t dest_size, dest_count;
static struct qmgr_dest *ready_head, *ready_tail;
static int dgram_fd = -1;
static struct io *dgram_io;
static struct timer *kick_timer, *tick_timer;
static time_t next_incoming_scan, next_deferred_scan;
static bool flush_requested;
static bool shutting_down;
static time_t shutdown_deadline;

static void qmgr_kick(void);
static void qmgr_msg_maybe_finish(struct qmgr_msg *m);
static void qmgr_outcome(struct qmgr_msg *m, size_t idx,
    enum qmgr_outcome what, const char *dsn, const char *text,
    char **fwd, const struct qmgr_attempt *at);

/* ---- small helpers ---- */

static double
qmgr_wall(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}


/* A one-line reason: controls become spaces, clipped. */
static char *
qmgr_clean_text(const char *s)
{
	size_t len = strlen(s);
	char *out, *p;

	if (len > QMGR_MAX_REASON)
		len = QMGR_MAX_REASON;
	out = xstrndup(s, len);
	for (p = out; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return out;
}

static char *
qmgr_path(const char *sub, const char *id)
{
	return xasprintf("%s/%s/%s", qmgr_queue_dir, sub, id);
}

/* ---- the ID tables ---- */

static size_t
qmgr_hash(const char *id, size_t size)
{
	unsigned long h = 2166136261UL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619UL;
	return (size_t)(h % size);
}

static struct qmgr_ent *
qmgr_table_find(struct qmgr_table *t, const char *id)
{
	struct qmgr_ent *e;

	if (t->size == 0)
		return NULL;
	for (e = t->buckets[qmgr_hash(id, t->size)]; e != NULL; e = e->next) {
		if (strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

static struct qmgr_ent *
qmgr_table_add(struct qmgr_table *t, const char *id)
{
	struct qmgr_ent *e;
	size_t h;

	if (t->count >= t->size * 2) {
		size_t nsize = t->size == 0 ? 256 : t->size * 4;
		struct qmgr_ent **nb = xcalloc(nsize, sizeof(*nb));
		size_t i;

		for (i = 0; i < t->size; i++) {
			while ((e = t->buckets[i]) != NULL) {
				t->buckets[i] = e->next;
				h = qmgr_hash(e->id, nsize);
				e->next = nb[h];
				nb[h] = e;
			}
		}
		free(t->buckets);
		t->buckets = nb;
		t->size = nsize;
	}
	e = xcalloc(1, sizeof(*e));
	str_lcpy(e->id, id, sizeof(e->id));
	h = qmgr_hash(id, t->size);
	e->next = t->buckets[h];
	t->buckets[h] = e;
	t->count++;
	return e;
}

static void
qmgr_table_del(struct qmgr_table *t, const char *id)
{
	struct qmgr_ent **ep, *e;

	if (t->size == 0)
		return;
	for (ep = &t->buckets[qmgr_hash(id, t->size)]; (e = *ep) != NULL;
	    ep = &e->next) {
		if (strcmp(e->id, id) == 0) {
			*ep = e->next;
			free(e);
			t->count--;
			return;
		}
	}
}

bool
qmgr_is_active(const char *id)
{
	struct qmgr_ent *e = qmgr_table_find(&known, id);

	return e != NULL && e->msg != NULL;
}

/* ---- messages waiting to be loaded ---- */

static void
qmgr_pend_push(const char *id, bool deferred, bool recover)
{
	struct qmgr_pendq *q = deferred ? &pend_deferred : &pend_incoming;
	struct qmgr_pend *p;

	if (!queue_list_id_valid(id) || qmgr_table_find(&known, id) != NULL)
		return;
	qmgr_table_add(&known, id);
	p = xcalloc(1, sizeof(*p));
	str_lcpy(p->id, id, sizeof(p->id));
	p->deferred = deferred;
	p->recover = recover;
	if (q->tail != NULL)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	qmgr_kick();
}

static struct qmgr_pend *
qmgr_pend_pop(void)
{
	struct qmgr_pendq *q;
	struct qmgr_pend *p;

	/* Alternate, so a large deferred backlog cannot starve new mail. */
	pend_toggle = !pend_toggle;
	if (pend_incoming.head == NULL)
		q = &pend_deferred;
	else if (pend_deferred.head == NULL)
		q = &pend_incoming;
	else
		q = pend_toggle ? &pend_incoming : &pend_deferred;
	if ((p = q->head) == NULL)
		return NULL;
	q->head = p->next;
	if (q->head == NULL)
		q->tail = NULL;
	return p;
}

/* ---- queue file updates ---- */

static void
qmgr_rec(struct buf *b, char type, const char *data)
{
	size_t len = strlen(data);
	uint32_t be = htonl((uint32_t)len);

	buf_append_char(b, type);
	buf_append(b, &be, 4);
	buf_append(b, data, len);
}

/*
 * Append the records in b in one write(2) (queue_file.h: a crash leaves
 * all of them or a truncated tail the reader ignores).  A short write is
 * cut back so that later appends stay readable.  No fsync: a lost D
 * record means one more delivery attempt, which local's recover check
 * turns into no duplicate for Maildir (doc/internals.md).
 */
static int
qmgr_append(struct qmgr_msg *m, const struct buf *b)
{
	off_t end;
	ssize_t n;

	if (b->len == 0)
		return 0;
	if ((end = lseek(m->fd, 0, SEEK_END)) < 0) {
		log_warning("%s: cannot update queue file: lseek: %m", m->id);
		return -1;
	}
	n = write(m->fd, b->data, b->len);
	if (n != (ssize_t)b->len) {
		if (n >= 0)
			errno = ENOSPC;
		log_warning("%s: cannot update queue file: %m", m->id);
		if (n > 0)
			(void)ftruncate(m->fd, end);
		return -1;
	}
	return 0;
}

/* Cut off a status record that a crash left half written. */
static void
qmgr_trim_tail(int fd, const char *id)
{
	unsigned char h[5];
	struct stat st;
	off_t pos = 0;

	if (fstat(fd, &st) < 0)
		return;
	while (pos + 5 <= st.st_size) {
		uint32_t be;

		if (pread(fd, h, 5, pos) != 5)
			return;
		memcpy(&be, h + 1, 4);
		if ((off_t)ntohl(be) > st.st_size - pos - 5)
			break;
		pos += 5 + (off_t)ntohl(be);
	}
	if (pos < st.st_size) {
		log_warning("%s: removing a truncated status record", id);
		if (ftruncate(fd, pos) < 0)
			log_warning("%s: ftruncate: %m", id);
	}
}

static const char *
qmgr_notify_str(unsigned bits, char *dst, size_t size)
{
	dst[0] = '\0';
	if (bits & QUEUE_NOTIFY_NEVER) {
		str_lcpy(dst, "NEVER", size);
		return dst;
	}
	snprintf(dst, size, "%s%s%s%s%s",
	    bits & QUEUE_NOTIFY_SUCCESS ? "SUCCESS" : "",
	    (bits & QUEUE_NOTIFY_SUCCESS) &&
	    (bits & (QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY)) ? "," : "",
	    bits & QUEUE_NOTIFY_FAILURE ? "FAILURE" : "",
	    (bits & QUEUE_NOTIFY_FAILURE) && (bits & QUEUE_NOTIFY_DELAY) ?
	    "," : "",
	    bits & QUEUE_NOTIFY_DELAY ? "DELAY" : "");
	return dst;
}

/* ---- logging ---- */

/* The address the recipient had before aliasing, if it differs. */
static char *
qmgr_orig_to(const struct qmgr_msg *m, size_t idx)
{
	const struct queue_rcpt *r = &m->qm.rcpts[idx];
	char *orig = NULL;

	if (r->orcpt != NULL) {
		const char *semi = strchr(r->orcpt, ';');

		if (semi != NULL)
			orig = xtext_decode(semi + 1);
	}
	if (orig == NULL && r->parent >= 0 &&
	    (size_t)r->parent < m->qm.rcpt_count)
		orig = xstrdup(m->qm.rcpts[r->parent].addr);
	if (orig != NULL && str_case_eq(orig, r->addr)) {
		free(orig);
		orig = NULL;
	}
	return orig;
}

static void
qmgr_log_rcpt(const struct qmgr_msg *m, size_t idx,
    const struct qmgr_attempt *at, const char *dsn, const char *status,
    const char *text)
{
	char to[MAX_ADDRESS + 8], orig_to[MAX_ADDRESS + 32];
	char why[QMGR_MAX_REASON + 8], relay[QMGR_MAX_RELAY + 8];
	char d_all[32], d_a[32], d_b[32], d_c[32], d_d[32];
	double now = qmgr_wall();
	double arrival = (double)m->qm.arrival +
	    (double)m->qm.arrival_usec / 1e6;
	const char *a = m->qm.rcpts[idx].addr;
	char *orig = qmgr_orig_to(m, idx);

	log_escape(to, sizeof(to), a, strlen(a));
	orig_to[0] = '\0';
	if (orig != NULL) {
		char esc[MAX_ADDRESS + 8];

		log_escape(esc, sizeof(esc), orig, strlen(orig));
		snprintf(orig_to, sizeof(orig_to), ", orig_to=<%s>", esc);
		free(orig);
	}
	log_escape(why, sizeof(why), text, strlen(text));
	log_escape(relay, sizeof(relay), at->relay, strlen(at->relay));
	/*
	 * Postfix's delays=a/b/c/d: before the queue manager, in the queue
	 * manager, connection setup, transmission.  c and d come from the
	 * delivery agent when it measured them.
	 */
	log_fmt_delay(d_all, sizeof(d_all), now - arrival);
	log_fmt_delay(d_a, sizeof(d_a), m->active_at - arrival);
	log_fmt_delay(d_c, sizeof(d_c), at->conn_s > 0 ? at->conn_s : 0);
	if (at->sent_at > 0) {
		log_fmt_delay(d_b, sizeof(d_b), at->sent_at - m->active_at);
		log_fmt_delay(d_d, sizeof(d_d), at->xfer_s >= 0 ? at->xfer_s :
		    now - at->sent_at);
	} else {
		log_fmt_delay(d_b, sizeof(d_b), now - m->active_at);
		str_lcpy(d_d, "0", sizeof(d_d));
	}
	log_info("%s: to=<%s>%s, relay=%s, delay=%s, delays=%s/%s/%s/%s, "
	    "dsn=%s, status=%s (%s)", m->id, to, orig_to, relay, d_all, d_a,
	    d_b, d_c, d_d, dsn, status, why);
}

/* ---- local jobs ---- */

static void
qmgr_job_add(struct qmgr_msg *m, size_t idx)
{
	struct qmgr_job *j = xcalloc(1, sizeof(*j));

	j->msg = m;
	j->idx = idx;
	if (job_tail != NULL)
		job_tail->next = j;
	else
		job_head = j;
	job_tail = j;
	m->queued++;
	m->rs[idx].st = QR_QUEUED;
}

/* ---- destinations and smtp jobs ---- */

static size_t
qmgr_dest_hash(const char *s, size_t size)
{
	return qmgr_hash(s, size);
}

static struct qmgr_dest *
qmgr_dest_find(const char *nexthop)
{
	struct qmgr_dest *d;

	if (dest_size == 0)
		return NULL;
	for (d = dest_buckets[qmgr_dest_hash(nexthop, dest_size)]; d != NULL;
	    d = d->hnext) {
		if (strcmp(d->nexthop, nexthop) == 0)
			return d;
	}
	return NULL;
}

static unsigned
qmgr_dest_limit(void)
{
	return (unsigned)cfg_get_int("smtp_destination_concurrency_limit");
}

static struct qmgr_dest *
qmgr_dest_get(const char *nexthop)
{
	struct qmgr_dest *d = qmgr_dest_find(nexthop);
	unsigned init;
	size_t h;

	if (d != NULL)
		return d;
	if (dest_count >= dest_size * 2) {
		size_t nsize = dest_size == 0 ? 256 : dest_size * 4, i;
		struct qmgr_dest **nb = xcalloc(nsize, sizeof(*nb));

		for (i = 0; i < dest_size; i++) {
			while ((d = dest_buckets[i]) != NULL) {
				dest_buckets[i] = d->hnext;
				h = qmgr_dest_hash(d->nexthop, nsize);
				d->hnext = nb[h];
				nb[h] = d;
			}
		}
		free(dest_buckets);
		dest_buckets = nb;
		dest_size = nsize;
	}
	d = xcalloc(1, sizeof(*d));
	d->nexthop = xstrdup(nexthop);
	/* Slow start (Postfix): begin with a few connections, grow. */
	init = (unsigned)cfg_get_int("initial_destination_concurrency");
	d->window = init < qmgr_dest_limit() ? init : qmgr_dest_limit();
	d->used_at = time(NULL);
	h = qmgr_dest_hash(nexthop, dest_size);
	d->hnext = dest_buckets[h];
	dest_buckets[h] = d;
	dest_count++;
	return d;
}

static bool
qmgr_dest_is_dead(struct qmgr_dest *d, time_t now)
{
	return d->dead_until != 0 && now < d->dead_until;
}

/*
 * Put d on the ready list (at the tail) or take it off, as its state
 * says: jobs waiting, room in its window, alive.
 */
static void
qmgr_dest_update(struct qmgr_dest *d)
{
	unsigned limit = qmgr_dest_limit();
	bool ready;

	if (d->window > limit)
		d->window = limit;
	if (d->window < 1)
		d->window = 1;
	ready = d->head != NULL && d->inflight < d->window &&
	    !qmgr_dest_is_dead(d, time(NULL));
	if (ready == d->ready)
		return;
	if (ready) {
		d->rprev = ready_tail;
		d->rnext = NULL;
		if (ready_tail != NULL)
			ready_tail->rnext = d;
		else
			ready_head = d;
		ready_tail = d;
	} else {
		if (d->rprev != NULL)
			d->rprev->rnext = d->rnext;
		else
			ready_head = d->rnext;
		if (d->rnext != NULL)
			d->rnext->rprev = d->rprev;
		else
			ready_tail = d->rprev;
		d->rprev = d->rnext = NULL;
	}
	d->ready = ready;
}

static void
qmgr_dest_free_idle(bool all)
{
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i < dest_size; i++) {
		struct qmgr_dest **dp = &dest_buckets[i], *d;

		while ((d = *dp) != NULL) {
			if (d->head != NULL || d->inflight > 0 ||
			    (!all && (qmgr_dest_is_dead(d, now) ||
			    now - d->used_at < QMGR_DEST_IDLE))) {
				dp = &d->hnext;
				continue;
			}
			*dp = d->hnext;
			if (d->ready) {
				d->head = NULL;
				qmgr_dest_update(d);
			}
			dest_count--;
			free(d->nexthop);
			free(d->dead_dsn);
			free(d->dead_text);
			free(d);
		}
	}
}

static void
qmgr_sjob_free(struct qmgr_sjob *j)
{
	size_t i;

	if (j->res != NULL) {
		for (i = 0; i < j->n; i++) {
			free(j->res[i].dsn);
			free(j->res[i].relay);
			free(j->res[i].text);
		}
		free(j->res);
	}
	free(j->idx);
	free(j);
}

/* Take j off its destination's queue and its message's list. */
static void
qmgr_sjob_unlink(struct qmgr_sjob *j)
{
	struct qmgr_dest *d = j->dest;
	struct qmgr_msg *m = j->msg;

	if (j->dprev != NULL)
		j->dprev->dnext = j->dnext;
	else
		d->head = j->dnext;
	if (j->dnext != NULL)
		j->dnext->dprev = j->dprev;
	else
		d->tail = j->dprev;
	if (j->mprev != NULL)
		j->mprev->mnext = j->mnext;
	else
		m->sjobs = j->mnext;
	if (j->mnext != NULL)
		j->mnext->mprev = j->mprev;
	j->dprev = j->dnext = j->mprev = j->mnext = NULL;
	m->queued--;
	d->used_at = time(NULL);
}

/* Put j back at the head of its destination's queue (not sent after all). */
static void
qmgr_sjob_requeue(struct qmgr_sjob *j)
{
	struct qmgr_dest *d = j->dest;
	struct qmgr_msg *m = j->msg;

	j->dprev = NULL;
	j->dnext = d->head;
	if (d->head != NULL)
		d->head->dprev = j;
	else
		d->tail = j;
	d->head = j;
	j->mprev = NULL;
	j->mnext = m->sjobs;
	if (m->sjobs != NULL)
		m->sjobs->mprev = j;
	m->sjobs = j;
	m->queued++;
}

/* Decimal digits of idx plus a comma. */
static size_t
qmgr_idx_bytes(size_t idx)
{
	size_t n = 2;

	while (idx >= 10) {
		idx /= 10;
		n++;
	}
	return n;
}

static void
qmgr_sjob_add(struct qmgr_msg *m, size_t idx, const char *nexthop)
{
	struct qmgr_dest *d = qmgr_dest_get(nexthop);
	size_t limit = (size_t)cfg_get_int("smtp_destination_recipient_limit");
	size_t bytes = qmgr_idx_bytes(idx);
	struct qmgr_sjob *j = d->tail;

	d->used_at = time(NULL);
	if (qmgr_dest_is_dead(d, d->used_at)) {
		char *why = xasprintf("delivery temporarily suspended: %s",
		    d->dead_text);

		qmgr_outcome(m, idx, QMGR_DEFER, d->dead_dsn, why, NULL,
		    &qmgr_no_attempt);
		free(why);
		return;
	}
	/*
	 * The recipients of one message for one next hop share a job while
	 * it has room: routing handles one message at a time, so the
	 * queue's last job is this message's if it has one.
	 */
	if (j == NULL || j->msg != m || j->n >= limit ||
	    j->idx_bytes + bytes > QMGR_SEND_IDX_BYTES) {
		j = xcalloc(1, sizeof(*j));
		j->msg = m;
		j->dest = d;
		j->dprev = d->tail;
		if (d->tail != NULL)
			d->tail->dnext = j;
		else
			d->head = j;
		d->tail = j;
		j->mnext = m->sjobs;
		if (m->sjobs != NULL)
			m->sjobs->mprev = j;
		m->sjobs = j;
		m->queued++;
	}
	if (j->n == j->cap) {
		j->cap = j->cap == 0 ? 8 : j->cap * 2;
		j->idx = xreallocarray(j->idx, j->cap, sizeof(*j->idx));
	}
	j->idx[j->n++] = idx;
	j->idx_bytes += bytes;
	m->rs[idx].st = QR_QUEUED;
	qmgr_dest_update(d);
	qmgr_kick();
}

/* Take the jobs of m (or of every message: m == NULL) off the queues. */
static void
qmgr_jobs_drop(struct qmgr_msg *m)
{
	struct qmgr_job **jp = &job_head, *j;
	struct qmgr_msg *mm;

	job_tail = NULL;
	while ((j = *jp) != NULL) {
		if (m == NULL || j->msg == m) {
			*jp = j->next;
			j->msg->queued--;
			j->msg->rs[j->idx].st = QR_IDLE;
			free(j);
		} else {
			job_tail = j;
			jp = &j->next;
		}
	}
	for (mm = m != NULL ? m : active_head; mm != NULL;
	    mm = m != NULL ? NULL : mm->next) {
		struct qmgr_sjob *sj;

		while ((sj = mm->sjobs) != NULL) {
			struct qmgr_dest *d = sj->dest;
			size_t i;

			qmgr_sjob_unlink(sj);
			for (i = 0; i < sj->n; i++)
				mm->rs[sj->idx[i]].st = QR_IDLE;
			qmgr_sjob_free(sj);
			qmgr_dest_update(d);
		}
	}
}

/*
 * Defer every job waiting for d with the same reason, without a
 * connection (a dead destination, or no smtp agent).
 */
static void
qmgr_dest_defer_all(struct qmgr_dest *d, const char *dsn, const char *why)
{
	struct qmgr_sjob *j;

	while ((j = d->head) != NULL) {
		struct qmgr_msg *m = j->msg;
		size_t i;

		qmgr_sjob_unlink(j);
		for (i = 0; i < j->n; i++)
			qmgr_outcome(m, j->idx[i], QMGR_DEFER, dsn, why, NULL,
			    &qmgr_no_attempt);
		qmgr_sjob_free(j);
		qmgr_msg_maybe_finish(m);
	}
	qmgr_dest_update(d);
}

/*
 * No server of d could be reached: d is dead for minimal_backoff_time
 * (Postfix's dead destination).  Its waiting mail is deferred now, and
 * mail routed to it meanwhile is deferred at once, with the reason of
 * the failure, until it is due again or the queue is flushed.
 */
static void
qmgr_dest_dead(struct qmgr_dest *d, const char *dsn, const char *text)
{
	long long backoff = cfg_get_time("minimal_backoff_time");
	char esc[QMGR_MAX_RELAY + 8], *why;

	if (backoff < 1)
		backoff = 1;
	if (!qmgr_dest_is_dead(d, time(NULL)))
		log_info("delivery to %s suspended for %llds: %s",
		    log_escape(esc, sizeof(esc), d->nexthop,
		    strlen(d->nexthop)), backoff, text);
	d->dead_until = time(NULL) + (time_t)backoff;
	free(d->dead_dsn);
	free(d->dead_text);
	d->dead_dsn = xstrdup(dsn);
	d->dead_text = xstrndup(text, QMGR_MAX_REASON / 2);
	/* It starts slowly again when it comes back. */
	d->window = 1;
	d->wins = 0;
	why = xasprintf("delivery temporarily suspended: %s", d->dead_text);
	qmgr_dest_defer_all(d, d->dead_dsn, why);
	free(why);
}

/* Flush: every destination gets another chance. */
static void
qmgr_dest_revive_all(void)
{
	size_t i;
	struct qmgr_dest *d;

	for (i = 0; i < dest_size; i++) {
		for (d = dest_buckets[i]; d != NULL; d = d->hnext) {
			d->dead_until = 0;
			qmgr_dest_update(d);
		}
	}
}

/* ---- routing ---- */

static unsigned
qmgr_rcpt_depth(const struct qmgr_msg *m, size_t idx)
{
	unsigned depth = 0;
	int p = m->qm.rcpts[idx].parent;

	while (p >= 0 && (size_t)p < m->qm.rcpt_count &&
	    depth <= MAX_ALIAS_DEPTH) {
		depth++;
		p = m->qm.rcpts[p].parent;
	}
	return depth;
}

static void
qmgr_route_rcpt(struct qmgr_msg *m, size_t idx)
{
	struct qmgr_route r;

	if (m->qm.rcpts[idx].state != QUEUE_RCPT_PENDING)
		return;
	if (qmgr_rcpt_depth(m, idx) > MAX_ALIAS_DEPTH) {
		qmgr_outcome(m, idx, QMGR_BOUNCE, "5.4.6",
		    "mail forwarding loop: too many levels of forwarding",
		    NULL, &qmgr_no_attempt);
		return;
	}
	qmgr_route_resolve(m->qm.rcpts[idx].addr, &r);
	switch (r.transport) {
	case QMGR_T_LOCAL:
		qmgr_job_add(m, idx);
		break;
	case QMGR_T_SMTP:
		qmgr_sjob_add(m, idx, r.nexthop);
		break;
	case QMGR_T_ERROR:
		qmgr_outcome(m, idx, QMGR_BOUNCE, r.dsn, r.text, NULL,
		    &qmgr_no_attempt);
		break;
	case QMGR_T_RETRY:
		qmgr_outcome(m, idx, QMGR_DEFER, r.dsn, r.text, NULL,
		    &qmgr_no_attempt);
		break;
	case QMGR_T_DISCARD:
		qmgr_outcome(m, idx, QMGR_SENT, r.dsn, r.text, NULL,
		    &qmgr_no_attempt);
		break;
	}
	qmgr_route_free(&r);
}

/* ---- outcomes of one recipient ---- */

static void
qmgr_rcpt_set(struct qmgr_msg *m, size_t idx, enum qmgr_rstate st,
    const char *dsn, const char *text, const char *relay)
{
	struct qmgr_rcpt *rs = &m->rs[idx];

	rs->st = st;
	rs->notice = QMGR_NOTICE_DELIVERED;	/* the smtp job says else */
	free(rs->dsn);
	free(rs->text);
	free(rs->relay);
	rs->dsn = dsn != NULL ? xstrdup(dsn) : NULL;
	rs->text = text != NULL ? xstrdup(text) : NULL;
	/* Only a remote server's answer is worth a Remote-MTA field. */
	rs->relay = relay != NULL && strcmp(relay, "none") != 0 &&
	    strcmp(relay, "local") != 0 ? xstrdup(relay) : NULL;
}

/*
 * Write the D record of a recipient delivered by the smtp agent as soon
 * as the agent says so, before the request is over: a connection lost
 * afterwards must not send it again.
 */
static void
qmgr_rcpt_done(struct qmgr_msg *m, size_t idx)
{
	char num[32];
	struct buf b;

	if (m->qm.rcpts[idx].state == QUEUE_RCPT_DONE)
		return;
	buf_init(&b, 0);
	snprintf(num, sizeof(num), "%zu", idx);
	qmgr_rec(&b, 'D', num);
	(void)qmgr_append(m, &b);
	buf_free(&b);
	m->qm.rcpts[idx].state = QUEUE_RCPT_DONE;
}

/*
 * A recipient added by alias or .forward expansion: the 'r' record goes
 * into b, the recipient into memory.  It inherits NOTIFY, and ORCPT
 * (RFC 3461 §6.2: the original recipient survives forwarding).
 */
static void
qmgr_add_forward(struct qmgr_msg *m, size_t parent, const char *line,
    struct buf *b)
{
	const char *tab = strchr(line, '\t');
	struct queue_rcpt *pr = &m->qm.rcpts[parent], *r;
	char *addr = xstrndup(line, tab != NULL ? (size_t)(tab - line) :
	    strlen(line));
	char *orcpt = NULL, *data;
	char notify[64];
	unsigned bits = pr->notify;

	if (tab != NULL && tab[1] != '\0')
		orcpt = xstrdup(tab + 1);
	else if (pr->orcpt != NULL)
		orcpt = xstrdup(pr->orcpt);
	else {
		char *x = xtext_encode(pr->addr, strlen(pr->addr));

		orcpt = xasprintf("rfc822;%s", x);
		free(x);
	}
	data = xasprintf("%s\tparent=%zu\tORCPT=%s%s%s", addr, parent, orcpt,
	    bits != 0 ? "\tNOTIFY=" : "",
	    bits != 0 ? qmgr_notify_str(bits, notify, sizeof(notify)) : "");
	qmgr_rec(b, 'r', data);
	free(data);

	m->qm.rcpts = xreallocarray(m->qm.rcpts, m->qm.rcpt_count + 1,
	    sizeof(*m->qm.rcpts));
	m->rs = xreallocarray(m->rs, m->qm.rcpt_count + 1, sizeof(*m->rs));
	r = &m->qm.rcpts[m->qm.rcpt_count];
	memset(r, 0, sizeof(*r));
	memset(&m->rs[m->qm.rcpt_count], 0, sizeof(m->rs[0]));
	r->addr = addr;
	r->orcpt = orcpt;
	r->notify = bits;
	r->parent = (int)parent;
	r->state = QUEUE_RCPT_PENDING;
	m->qm.rcpt_count++;
}

static void
qmgr_outcome(struct qmgr_msg *m, size_t idx, enum qmgr_outcome what,
    const char *dsn, const char *text, char **fwd,
    const struct qmgr_attempt *at)
{
	size_t first_new = m->qm.rcpt_count, i;
	char *clean = qmgr_clean_text(text);
	char *expired = NULL;
	struct buf b;

	buf_init(&b, 0);
	if (what == QMGR_DEFER && m->expired) {
		/* The last attempt of an expired message: give up. */
		expired = xasprintf("message expired: %s", clean);
		what = QMGR_BOUNCE;
		dsn = "5.4.7";
		free(clean);
		clean = expired;
	}
	if (what != QMGR_DEFER && fwd != NULL) {
		for (i = 0; fwd[i] != NULL; i++)
			qmgr_add_forward(m, idx, fwd[i], &b);
	} else if (fwd != NULL && fwd[0] != NULL)
		log_warning("%s: ignoring forwarded addresses of a deferred "
		    "delivery", m->id);

	switch (what) {
	case QMGR_SENT:
		/* The smtp agent's successes are written at once. */
		if (m->qm.rcpts[idx].state != QUEUE_RCPT_DONE) {
			char num[32];

			snprintf(num, sizeof(num), "%zu", idx);
			qmgr_rec(&b, 'D', num);
		}
		(void)qmgr_append(m, &b);
		m->qm.rcpts[idx].state = QUEUE_RCPT_DONE;
		qmgr_rcpt_set(m, idx, QR_SENT, dsn, clean, at->relay);
		qmgr_log_rcpt(m, idx, at, dsn, "sent", clean);
		break;
	case QMGR_BOUNCE:
		/* The D record follows the notice (qmgr_msg_finish()). */
		(void)qmgr_append(m, &b);
		qmgr_rcpt_set(m, idx, QR_BOUNCED, dsn, clean, at->relay);
		qmgr_log_rcpt(m, idx, at, dsn, "bounced", clean);
		break;
	case QMGR_DEFER: {
		char *data = xasprintf("%zu\t%s\t%s", idx, dsn, clean);
		struct queue_rcpt *r = &m->qm.rcpts[idx];

		qmgr_rec(&b, 'W', data);
		free(data);
		(void)qmgr_append(m, &b);
		free(r->defer_dsn);
		free(r->defer_text);
		r->defer_dsn = xstrdup(dsn);
		r->defer_text = xstrdup(clean);
		qmgr_rcpt_set(m, idx, QR_DEFERRED, dsn, clean, at->relay);
		qmgr_log_rcpt(m, idx, at, dsn, "deferred", clean);
		break;
	}
	}
	buf_free(&b);
	free(clean);
	for (i = first_new; i < m->qm.rcpt_count; i++)
		qmgr_route_rcpt(m, i);
}

/* ---- end of an attempt ---- */

static void
qmgr_msg_free(struct qmgr_msg *m)
{
	size_t i;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		active_head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	active_count--;
	qmgr_table_del(&known, m->id);
	if (m->fd >= 0)
		close(m->fd);
	for (i = 0; i < m->qm.rcpt_count; i++) {
		free(m->rs[i].dsn);
		free(m->rs[i].text);
		free(m->rs[i].relay);
	}
	free(m->rs);
	queue_msg_free(&m->qm);
	free(m);
	qmgr_kick();
}

static bool
qmgr_notify_wants(unsigned notify, unsigned bit)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	/* RFC 3461 §4.1: no NOTIFY means FAILURE (and DELAY at our
	 * discretion), never SUCCESS. */
	if (notify == 0)
		return bit != QUEUE_NOTIFY_SUCCESS;
	return (notify & bit) != 0;
}

/*
 * Write one notice for the recipients of m whose state is st and who
 * asked for it.  Returns 0 when the notice was written or not wanted,
 * -1 when writing it failed.
 */
static int
qmgr_notice(struct qmgr_msg *m, enum bounce_type type, enum qmgr_rstate st,
    unsigned bit)
{
	static const char *const what[] = { "non-delivery", "delay",
	    "delivery status" };
	struct bounce_rcpt *list;
	size_t i, n = 0;
	const char *to = NULL, *err;
	char *pm_to = NULL;
	bool postmaster = false;
	char newid[QUEUE_ID_MAX];
	int ret = 0;

	list = xcalloc(m->qm.rcpt_count + 1, sizeof(*list));
	for (i = 0; i < m->qm.rcpt_count; i++) {
		struct queue_rcpt *r = &m->qm.rcpts[i];

		if (type == BOUNCE_DELAYED) {
			if (r->state != QUEUE_RCPT_PENDING ||
			    m->rs[i].st == QR_BOUNCED)
				continue;
		} else if (m->rs[i].st != st)
			continue;
		if (!qmgr_notify_wants(r->notify, bit))
			continue;
		/* RFC 3461 §5.2.2: a server that took NOTIFY reports the
		 * delivery itself; one that did not gets "relayed". */
		if (type == BOUNCE_DELIVERED &&
		    m->rs[i].notice == QMGR_NOTICE_PASSED)
			continue;
		list[n].relayed = type == BOUNCE_DELIVERED &&
		    m->rs[i].notice == QMGR_NOTICE_RELAYED;
		list[n].addr = r->addr;
		list[n].orcpt = r->orcpt;
		list[n].dsn = type == BOUNCE_DELAYED ? (r->defer_dsn != NULL ?
		    r->defer_dsn : "4.0.0") : m->rs[i].dsn;
		list[n].text = type == BOUNCE_DELAYED ? (r->defer_text != NULL ?
		    r->defer_text : "delivery temporarily suspended") :
		    m->rs[i].text;
		if (list[n].dsn == NULL)
			list[n].dsn = type == BOUNCE_DELIVERED ? "2.0.0" :
			    "5.0.0";
		if (list[n].text == NULL)
			list[n].text = "";
		if (type != BOUNCE_DELAYED || m->rs[i].st == QR_DEFERRED)
			list[n].remote = m->rs[i].relay;
		n++;
	}
	if (n == 0)
		goto out;
	if (m->qm.sender[0] != '\0')
		to = m->qm.sender;
	else if (type == BOUNCE_FAILED &&
	    !bounce_is_postmaster_notice(&m->qm)) {
		char **classes = cfg_get_list("notify_classes");

		/* Postfix: failed mail from <> goes to the postmaster only
		 * when notify_classes has "2bounce". */
		if (strv_contains_case(classes, "2bounce")) {
			pm_to = addr_qualify(
			    cfg_get("2bounce_notice_recipient"));
			to = pm_to;
			postmaster = true;
		}
		cfg_list_free(&classes);
		if (to == NULL)
			log_info("%s: undeliverable mail from <> discarded",
			    m->id);
	}
	if (to == NULL)
		goto out;
	if (bounce_write(qmgr_queue_dir, &m->qm, m->fd, type, list, n, to,
	    postmaster, newid, &err) < 0) {
		log_warning("%s: cannot write %s notification: %s", m->id,
		    what[type], err);
		ret = -1;
		goto out;
	}
	log_info("%s: %s %s notification: %s", m->id,
	    postmaster ? "postmaster" : "sender", what[type], newid);
	qmgr_pend_push(newid, false, false);
out:
	free(pm_to);
	free(list);
	return ret;
}

static time_t
qmgr_lifetime(const struct qmgr_msg *m)
{
	return (time_t)(m->qm.sender[0] == '\0' ?
	    cfg_get_time("bounce_queue_lifetime") :
	    cfg_get_time("maximal_queue_lifetime"));
}

static void
qmgr_msg_defer(struct qmgr_msg *m)
{
	time_t now = time(NULL), age, backoff, next, limit;
	long long warn = cfg_get_time("delay_warning_time");
	struct timeval tv[2];
	char *from, *to;

	/* Delay warning, once (RFC 3461 §4.1 NOTIFY=DELAY). */
	if (warn > 0 && !m->qm.warned && now - m->qm.arrival >= warn) {
		struct buf b;

		if (m->qm.sender[0] != '\0')
			(void)qmgr_notice(m, BOUNCE_DELAYED, QR_IDLE,
			    QUEUE_NOTIFY_DELAY);
		buf_init(&b, 0);
		qmgr_rec(&b, 'w', "");
		if (qmgr_append(m, &b) == 0)
			m->qm.warned = true;
		buf_free(&b);
	}
	/*
	 * Postfix's backoff: wait as long as the message is old, between
	 * minimal_backoff_time and maximal_backoff_time, so the interval
	 * doubles with every attempt; never past the expiry time.
	 */
	age = now - m->qm.arrival;
	backoff = age;
	if (backoff > (time_t)cfg_get_time("maximal_backoff_time"))
		backoff = (time_t)cfg_get_time("maximal_backoff_time");
	if (backoff < (time_t)cfg_get_time("minimal_backoff_time"))
		backoff = (time_t)cfg_get_time("minimal_backoff_time");
	if (backoff < 1)
		backoff = 1;
	next = now + backoff;
	limit = m->qm.arrival + qmgr_lifetime(m);
	if (next > limit && limit > now)
		next = limit;

	from = qmgr_path(m->in_deferred ? "deferred" : "incoming", m->id);
	to = qmgr_path("deferred", m->id);
	if (!m->in_deferred && rename(from, to) < 0) {
		log_error("%s: rename %s to %s: %m", m->id, from, to);
		free(from);
		free(to);
		return;
	}
	m->in_deferred = true;
	tv[0].tv_sec = now;
	tv[0].tv_usec = 0;
	tv[1].tv_sec = next;
	tv[1].tv_usec = 0;
	if (utimes(to, tv) < 0)
		log_warning("%s: utimes %s: %m", m->id, to);
	log_info("%s: deferred, next attempt in %llds", m->id,
	    (long long)(next - now));
	free(from);
	free(to);
}

static void
qmgr_msg_finish(struct qmgr_msg *m)
{
	bool pending = false, bounced = false;
	size_t i;

	if (m->deleted) {
		qmgr_msg_free(m);
		return;
	}
	/* Success reports (NOTIFY=SUCCESS) are best effort. */
	(void)qmgr_notice(m, BOUNCE_DELIVERED, QR_SENT, QUEUE_NOTIFY_SUCCESS);

	for (i = 0; i < m->qm.rcpt_count; i++) {
		if (m->rs[i].st == QR_BOUNCED)
			bounced = true;
	}
	if (bounced) {
		struct buf b;

		buf_init(&b, 0);
		if (qmgr_notice(m, BOUNCE_FAILED, QR_BOUNCED,
		    QUEUE_NOTIFY_FAILURE) == 0) {
			/* The notice is durable: the recipients are done. */
			for (i = 0; i < m->qm.rcpt_count; i++) {
				char num[32];

				if (m->rs[i].st != QR_BOUNCED)
					continue;
				snprintf(num, sizeof(num), "%zu", i);
				qmgr_rec(&b, 'D', num);
			}
			if (qmgr_append(m, &b) == 0) {
				for (i = 0; i < m->qm.rcpt_count; i++) {
					if (m->rs[i].st == QR_BOUNCED)
						m->qm.rcpts[i].state =
						    QUEUE_RCPT_DONE;
				}
			}
		}
		buf_free(&b);
	}
	for (i = 0; i < m->qm.rcpt_count; i++) {
		if (m->qm.rcpts[i].state == QUEUE_RCPT_PENDING)
			pending = true;
	}
	if (!pending) {
		char *path = qmgr_path(m->in_deferred ? "deferred" :
		    "incoming", m->id);

		if (unlink(path) < 0 && errno != ENOENT)
			log_error("%s: unlink %s: %m", m->id, path);
		else
			log_info("%s: removed", m->id);
		free(path);
	} else if (m->hold) {
		char *from = qmgr_path(m->in_deferred ? "deferred" :
		    "incoming", m->id);
		char *to = qmgr_path("hold", m->id);

		if (rename(from, to) < 0)
			log_error("%s: rename %s to %s: %m", m->id, from, to);
		else
			log_info("%s: placed on hold", m->id);
		free(from);
		free(to);
	} else if (!m->aborted)
		qmgr_msg_defer(m);
	qmgr_msg_free(m);
}

static void
qmgr_msg_maybe_finish(struct qmgr_msg *m)
{
	if (m->queued == 0 && m->inflight == 0)
		qmgr_msg_finish(m);
}

/* ---- flow control tokens (private/flow) ---- */

static void
qmgr_flow_init(void)
{
	char *path = xasprintf("%s/private/flow", qmgr_queue_dir);
	struct stat st;

	/*
	 * An existing FIFO is kept: smtpd processes hold it open across a
	 * restart of qmgr.  Opened read-write so that writing never fails
	 * for want of a reader.
	 */
	if (mkfifo(path, 0600) < 0 && errno != EEXIST)
		log_warning("mkfifo %s: %m; no flow control", path);
	else if (lstat(path, &st) < 0 || !S_ISFIFO(st.st_mode))
		log_warning("%s is not a FIFO; no flow control", path);
	else if ((flow_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
		log_warning("open %s: %m; no flow control", path);
	free(path);
}

/* Add n tokens (a full FIFO just takes fewer). */
static void
qmgr_flow_put(unsigned n)
{
	char tokens[QMGR_FLOW_TOKENS];

	if (flow_fd < 0 || n == 0)
		return;
	if (n > sizeof(tokens))
		n = sizeof(tokens);
	memset(tokens, 'T', n);
	(void)!write(flow_fd, tokens, n);
}

/* Nothing waits in incoming/: as many tokens as the active set has room
 * for, so that smtpd is not slowed while we keep up. */
static void
qmgr_flow_refill(void)
{
	unsigned want;
	int have;

	if (flow_fd < 0 || shutting_down || pend_incoming.head != NULL ||
	    active_count >= active_limit)
		return;
	want = active_limit - active_count;
	if (want > QMGR_FLOW_TOKENS)
		want = QMGR_FLOW_TOKENS;
	if (ioctl(flow_fd, FIONREAD, &have) < 0 || have < 0)
		return;
	if ((unsigned)have < want)
		qmgr_flow_put(want - (unsigned)have);
}

/* ---- loading a message ---- */

static void
qmgr_load(const struct qmgr_pend *p)
{
	const char *sub = p->deferred ? "deferred" : "incoming";
	char *path = qmgr_path(sub, p->id);
	char sender[MAX_ADDRESS + 8];
	struct qmgr_ent *e;
	struct qmgr_msg *m;
	struct queue_msg qm;
	const char *err;
	time_t now = time(NULL);
	size_t i;
	int fd, ret;

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		/* ENOENT: delivered, deleted or held meanwhile.  Other
		 * errors (a file written by root) are logged once. */
		if (errno != ENOENT &&
		    qmgr_table_find(&warned, p->id) == NULL) {
			log_warning("%s: open %s: %m", p->id, path);
			qmgr_table_add(&warned, p->id);
		}
		qmgr_table_del(&known, p->id);
		free(path);
		return;
	}
	ret = queue_file_read(fd, &qm, &err);
	if (ret <= 0) {
		struct stat st;

		if (ret == 0 && fstat(fd, &st) == 0 &&
		    now - st.st_mtime > QMGR_INCOMPLETE_WARN &&
		    qmgr_table_find(&warned, p->id) == NULL) {
			qmgr_table_add(&warned, p->id);
			log_warning("%s: %s is incomplete (no end record) and "
			    "older than an hour; ignored", p->id, path);
		}
		if (ret < 0) {
			char *to = qmgr_path("corrupt", p->id);

			log_error("%s: corrupt queue file: %s; moved to "
			    "corrupt/", p->id, err);
			if (rename(path, to) < 0)
				log_error("%s: rename %s to %s: %m", p->id,
				    path, to);
			free(to);
		}
		queue_msg_free(&qm);
		close(fd);
		qmgr_table_del(&known, p->id);
		free(path);
		return;
	}
	free(path);
	qmgr_trim_tail(fd, p->id);

	m = xcalloc(1, sizeof(*m));
	str_lcpy(m->id, p->id, sizeof(m->id));
	str_lcpy(qm.id, p->id, sizeof(qm.id));
	m->qm = qm;
	m->fd = fd;
	m->in_deferred = p->deferred;
	m->recover = p->recover;
	m->active_at = qmgr_wall();
	m->rs = xcalloc(m->qm.rcpt_count + 1, sizeof(*m->rs));
	m->next = active_head;
	if (active_head != NULL)
		active_head->prev = m;
	active_head = m;
	active_count++;
	if ((e = qmgr_table_find(&known, m->id)) == NULL)
		e = qmgr_table_add(&known, m->id);
	e->msg = m;

	/*
	 * smtpd already logged "from=..." for a message it just queued; log
	 * it again, as Postfix's qmgr does, when the message comes back
	 * from deferred/ or is picked up after a restart.
	 */
	if (p->deferred || p->recover) {
		log_escape(sender, sizeof(sender), m->qm.sender,
		    strlen(m->qm.sender));
		log_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)",
		    m->id, sender, (long long)m->qm.msg_size,
		    m->qm.rcpt_count);
	}
	/* Taken in from incoming/: room for one more there. */
	if (!p->deferred)
		qmgr_flow_put(1);
	/* maximal_queue_lifetime = 0: one attempt only, as in Postfix. */
	if (now - m->qm.arrival >= qmgr_lifetime(m))
		m->expired = true;
	qmgr_route_cache_begin();
	for (i = 0; i < m->qm.rcpt_count; i++)
		qmgr_route_rcpt(m, i);
	qmgr_route_cache_end();
	qmgr_msg_maybe_finish(m);
}

static void
qmgr_feed(void)
{
	struct qmgr_pend *p;
	unsigned n = 0;

	while (!shutting_down && active_count < active_limit &&
	    n < QMGR_LOAD_BATCH && (p = qmgr_pend_pop()) != NULL) {
		qmgr_load(p);
		free(p);
		n++;
	}
	if (!shutting_down && active_count < active_limit &&
	    (pend_incoming.head != NULL || pend_deferred.head != NULL))
		qmgr_kick();
	qmgr_flow_refill();
}

/* ---- connections to the delivery agents ---- */

static void qmgr_conn_read(int fd, int events, void *ctx);

static bool
qmgr_conn_busy(const struct qmgr_conn *c)
{
	return c->msg != NULL || c->sjob != NULL;
}

static void
qmgr_conn_close(struct qmgr_conn *c)
{
	struct qmgr_conn **cp;

	for (cp = &conns; *cp != NULL; cp = &(*cp)->next) {
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	}
	conn_count[c->agent]--;
	io_remove(&c->io);
	close(c->fd);
	buf_free(&c->in);
	strv_free(&c->fwd);
	free(c);
}

/*
 * The end of an smtp request: log and record every recipient's outcome
 * (those the agent did not report are deferred with lost's reason), then
 * learn from it about the destination.  lost: NULL after DONE.
 */
static void
qmgr_sjob_finish(struct qmgr_sjob *j, double conn_s, double xfer_s,
    const char *lost)
{
	struct qmgr_msg *m = j->msg;
	struct qmgr_dest *d = j->dest;
	const struct qmgr_sres *fail = NULL;
	bool reached = false, site_fail = lost == NULL;
	size_t k;

	m->inflight--;
	d->inflight--;
	d->used_at = time(NULL);
	for (k = 0; k < j->n; k++) {
		const struct qmgr_sres *r = &j->res[k];

		if (r->got) {
			struct qmgr_attempt at = { r->relay, j->sent_at,
			    conn_s, xfer_s };

			if (strcmp(r->relay, "none") != 0)
				reached = true;
			if (r->what != QMGR_DEFER || reached)
				site_fail = false;
			if (fail == NULL)
				fail = r;
			qmgr_outcome(m, j->idx[k], (enum qmgr_outcome)r->what,
			    r->dsn, r->text, NULL, &at);
			if (r->what == QMGR_SENT)
				m->rs[j->idx[k]].notice = r->notice;
		} else {
			struct qmgr_attempt at = { "none", j->sent_at, -1, -1 };

			site_fail = false;
			qmgr_outcome(m, j->idx[k], QMGR_DEFER, "4.3.0", lost,
			    NULL, &at);
		}
	}
	/* m may be gone after this; d stays (freed only by the tick). */
	qmgr_msg_maybe_finish(m);
	if (site_fail && fail != NULL && d->last_ok < j->sent_at) {
		/* No server answered, and none did for another request
		 * meanwhile: the destination is down. */
		qmgr_dest_dead(d, fail->dsn, fail->text);
	} else if (lost == NULL && reached) {
		/* Slow start: one more connection per window of successes. */
		d->last_ok = qmgr_wall();
		if (++d->wins >= d->window && d->window < qmgr_dest_limit()) {
			d->window++;
			d->wins = 0;
		}
	}
	qmgr_dest_update(d);
	qmgr_sjob_free(j);
}

/* The connection broke: the request in flight has an unknown outcome. */
static void
qmgr_conn_fail(struct qmgr_conn *c, const char *why)
{
	struct qmgr_msg *m = c->msg;
	struct qmgr_sjob *sj = c->sjob;
	size_t idx = c->idx;
	struct qmgr_attempt at = { "local", c->sent_at, -1, -1 };

	c->msg = NULL;
	c->sjob = NULL;
	qmgr_conn_close(c);
	if (sj != NULL) {
		log_warning("%s: %s", sj->msg->id, why);
		/* Recipients reported sent are already written as done. */
		qmgr_sjob_finish(sj, -1, -1,
		    "lost connection with smtp delivery agent");
		qmgr_kick();
		return;
	}
	if (m == NULL)
		return;
	log_warning("%s: %s", m->id, why);
	m->inflight--;
	/* local may have delivered before the connection broke. */
	m->recover = true;
	qmgr_outcome(m, idx, QMGR_DEFER, "4.3.0",
	    "lost connection with local delivery agent", NULL, &at);
	qmgr_msg_maybe_finish(m);
	qmgr_kick();
}

static struct qmgr_conn *
qmgr_conn_open(enum qmgr_agent agent)
{
	struct sockaddr_un sun;
	struct qmgr_conn *c;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/private/%s", qmgr_queue_dir, qmgr_agent_names[agent]) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	/* Non-blocking: a UNIX connect then either completes at once or
	 * fails (EAGAIN: the agent's backlog is full); it never stalls us. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->agent = agent;
	c->fd = fd;
	buf_init(&c->in, 0);
	c->idle_since = time(NULL);
	c->io = io_add(fd, IOLOOP_READ, qmgr_conn_read, c);
	c->next = conns;
	conns = c;
	conn_count[agent]++;
	return c;
}

static struct qmgr_conn *
qmgr_conn_idle(enum qmgr_agent agent)
{
	struct qmgr_conn *c;

	for (c = conns; c != NULL; c = c->next) {
		if (c->agent == agent && !qmgr_conn_busy(c))
			return c;
	}
	return NULL;
}

static void
qmgr_conn_status(struct qmgr_conn *c, const char *status, const char *dsn,
    const char *text)
{
	struct qmgr_msg *m = c->msg;
	size_t idx = c->idx;
	char **fwd = c->fwd;
	enum qmgr_outcome what;
	struct qmgr_attempt at = { "local", c->sent_at, -1, -1 };

	if (strcmp(status, "sent") == 0)
		what = QMGR_SENT;
	else if (strcmp(status, "defer") == 0)
		what = QMGR_DEFER;
	else if (strcmp(status, "bounce") == 0)
		what = QMGR_BOUNCE;
	else
		log_fatal("local: bad STATUS value: %.32s", status);
	if (!qmgr_dsn_valid(dsn) || dsn[0] != (what == QMGR_SENT ? '2' :
	    what == QMGR_DEFER ? '4' : '5'))
		log_fatal("local: bad DSN code in STATUS: %.32s", dsn);
	c->msg = NULL;
	c->fwd = NULL;
	c->idle_since = time(NULL);
	m->inflight--;
	qmgr_outcome(m, idx, what, dsn, text, fwd, &at);
	strv_free(&fwd);
	qmgr_msg_maybe_finish(m);
	qmgr_kick();
}

/* One reply line from local (doc/internals.md); malformed is fatal. */
static void
qmgr_local_line(struct qmgr_conn *c, const char *line)
{
	char **f = strv_split(line, " ");
	size_t n = strv_len(f);

	if (c->msg == NULL)
		log_fatal("local: reply without a request: %.64s", line);
	if (n == 3 && strcmp(f[0], "FORWARD") == 0) {
		char *addr = xtext_decode(f[1]);
		char *orcpt = strcmp(f[2], "-") == 0 ? xstrdup("") :
		    xtext_decode(f[2]);

		if (addr == NULL || orcpt == NULL || addr[0] == '\0' ||
		    strlen(addr) > MAX_ADDRESS || strlen(orcpt) > MAX_ADDRESS ||
		    strpbrk(addr, "\t\r\n") != NULL ||
		    strpbrk(orcpt, "\t\r\n") != NULL)
			log_fatal("local: bad FORWARD line: %.64s", line);
		if (strv_len(c->fwd) >= MAX_ALIAS_EXPANSION)
			log_fatal("local: too many FORWARD lines");
		{
			char *entry = xasprintf("%s\t%s", addr, orcpt);

			if (c->fwd == NULL)
				c->fwd = xcalloc(1, sizeof(*c->fwd));
			strv_push(&c->fwd, entry);
			free(entry);
		}
		free(addr);
		free(orcpt);
	} else if ((n == 3 || n == 4) && strcmp(f[0], "STATUS") == 0) {
		char *dsn = xtext_decode(f[2]);
		char *text = n == 4 ? xtext_decode(f[3]) : xstrdup("");

		if (dsn == NULL || text == NULL)
			log_fatal("local: bad STATUS line: %.64s", line);
		qmgr_conn_status(c, f[1], dsn, text);
		free(dsn);
		free(text);
	} else
		log_fatal("local: unexpected reply: %.64s", line);
	strv_free(&f);
}

/*
 * One reply line from the smtp agent (doc/internals.md, "Delivery: qmgr
 * -> smtp"): RCPT lines, one per recipient of the request, then DONE.
 * Anything else is a broken agent: fatal, like local's parser (the
 * recipients in flight stay pending in their queue files; the ones
 * reported sent already have their D records).
 */
static void
qmgr_smtp_line(struct qmgr_conn *c, const char *line)
{
	struct qmgr_sjob *j = c->sjob;
	struct qmgr_agent_reply r;
	const char *err;
	char esc[80];
	size_t k;

	log_escape(esc, sizeof(esc), line, strlen(line) < 64 ?
	    strlen(line) : 64);
	if (j == NULL)
		log_fatal("smtp: reply without a request: %s", esc);
	if (qmgr_agent_reply_parse(line, &r, &err) < 0)
		log_fatal("smtp: %s: %s", err, esc);
	if (r.done) {
		if (j->nres != j->n)
			log_fatal("smtp: DONE without the outcome of %zu "
			    "recipients", j->n - j->nres);
		c->sjob = NULL;
		c->idle_since = time(NULL);
		qmgr_sjob_finish(j, r.conn_s, r.xfer_s, NULL);
		qmgr_kick();
		return;
	}
	for (k = 0; k < j->n && j->idx[k] != r.idx; k++)
		;
	if (k == j->n || j->res[k].got)
		log_fatal("smtp: RCPT for a recipient not asked for or "
		    "answered twice: %s", esc);
	j->res[k].got = true;
	j->res[k].what = r.status == QMGR_STATUS_SENT ? QMGR_SENT :
	    r.status == QMGR_STATUS_DEFER ? QMGR_DEFER : QMGR_BOUNCE;
	j->res[k].notice = r.relayed ? QMGR_NOTICE_RELAYED :
	    QMGR_NOTICE_PASSED;
	j->res[k].dsn = r.dsn;
	j->res[k].relay = r.relay;
	j->res[k].text = r.text;
	j->nres++;
	/* Written at once: a connection lost now must not repeat it. */
	if (r.status == QMGR_STATUS_SENT)
		qmgr_rcpt_done(j->msg, j->idx[k]);
}

static void
qmgr_conn_read(int fd, int events, void *ctx)
{
	struct qmgr_conn *c = ctx;
	const char *name = qmgr_agent_names[c->agent];

	(void)events;
	for (;;) {
		ssize_t n;
		char *nl;

		if (buf_reserve(&c->in, 4096) < 0)
			log_panic("buf_reserve");
		n = read(fd, c->in.data + c->in.len, 4096);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			char why[128];

			snprintf(why, sizeof(why), n == 0 ?
			    "%s delivery agent closed the connection" :
			    "read from %s delivery agent failed", name);
			qmgr_conn_fail(c, why);
			return;
		}
		c->in.len += (size_t)n;
		while ((nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
			size_t len = (size_t)(nl - c->in.data);
			char *line = xstrndup(c->in.data, len);
			enum qmgr_agent agent = c->agent;

			buf_consume(&c->in, len + 1);
			if (memchr(line, '\0', len) != NULL)
				log_fatal("%s: NUL byte in reply", name);
			if (len > MAX_IPC_LINE)
				log_fatal("%s: reply line too long", name);
			if (agent == QMGR_AGENT_LOCAL)
				qmgr_local_line(c, line);
			else
				qmgr_smtp_line(c, line);
			free(line);
		}
		if (c->in.len > MAX_IPC_LINE)
			log_fatal("%s: reply line too long", name);
	}
}

static void
qmgr_agent_up(enum qmgr_agent agent)
{
	if (agent_down_since[agent] != 0)
		log_info("%s delivery agent is available again",
		    qmgr_agent_names[agent]);
	agent_down_since[agent] = 0;
}

/* An agent cannot be reached: keep trying briefly, then defer its jobs. */
static void
qmgr_agent_down(enum qmgr_agent agent, int err)
{
	time_t now = time(NULL);
	struct qmgr_job *j;
	char why[256];
	size_t i;

	if (conn_count[agent] > 0)
		return;		/* the open connections carry on */
	if (agent_down_since[agent] == 0) {
		agent_down_since[agent] = now;
		log_warning("connect to %s/private/%s: %s", qmgr_queue_dir,
		    qmgr_agent_names[agent], strerror(err));
		return;
	}
	if (now - agent_down_since[agent] < QMGR_AGENT_GRACE)
		return;
	snprintf(why, sizeof(why), "%s delivery agent is not available: %s",
	    qmgr_agent_names[agent], strerror(err));
	if (agent == QMGR_AGENT_SMTP) {
		for (i = 0; i < dest_size; i++) {
			struct qmgr_dest *d;

			for (d = dest_buckets[i]; d != NULL; d = d->hnext)
				qmgr_dest_defer_all(d, "4.3.0", why);
		}
		return;
	}
	while ((j = job_head) != NULL) {
		struct qmgr_msg *m = j->msg;
		size_t idx = j->idx;

		job_head = j->next;
		if (job_head == NULL)
			job_tail = NULL;
		free(j);
		m->queued--;
		qmgr_outcome(m, idx, QMGR_DEFER, "4.3.0", why, NULL,
		    &qmgr_no_attempt);
		qmgr_msg_maybe_finish(m);
	}
}

static void
qmgr_dispatch_local(void)
{
	long long limit = cfg_get_int("local_destination_concurrency_limit");
	long long tlimit = cfg_get_time("command_time_limit");

	while (!shutting_down && job_head != NULL) {
		struct qmgr_conn *c;
		struct qmgr_job *j;
		struct qmgr_msg *m;
		struct queue_rcpt *r;
		char *path, *xpath, *line;
		bool recover;
		ssize_t n;

		if ((c = qmgr_conn_idle(QMGR_AGENT_LOCAL)) == NULL) {
			if ((long long)conn_count[QMGR_AGENT_LOCAL] >= limit)
				return;
			if ((c = qmgr_conn_open(QMGR_AGENT_LOCAL)) == NULL) {
				qmgr_agent_down(QMGR_AGENT_LOCAL, errno);
				return;
			}
			qmgr_agent_up(QMGR_AGENT_LOCAL);
		}
		j = job_head;
		job_head = j->next;
		if (job_head == NULL)
			job_tail = NULL;
		m = j->msg;
		r = &m->qm.rcpts[j->idx];
		m->queued--;
		/* A recipient deferred before may have been delivered in
		 * part (an alias list): let local look for copies. */
		recover = m->recover || r->defer_dsn != NULL;
		path = xasprintf("%s/%s", m->in_deferred ? "deferred" :
		    "incoming", m->id);
		xpath = xtext_encode(path, strlen(path));
		line = xasprintf("DELIVER %s %zu %s\n", xpath, j->idx,
		    recover ? "recover" : "-");
		n = write(c->fd, line, strlen(line));
		if (n != (ssize_t)strlen(line)) {
			/* Nothing was asked yet: put the job back. */
			j->next = job_head;
			job_head = j;
			if (job_tail == NULL)
				job_tail = j;
			m->queued++;
			qmgr_conn_close(c);
		} else {
			m->rs[j->idx].st = QR_INFLIGHT;
			m->inflight++;
			c->msg = m;
			c->idx = j->idx;
			c->sent_at = qmgr_wall();
			c->deadline = time(NULL) + (time_t)tlimit + 120;
			free(j);
		}
		free(line);
		free(xpath);
		free(path);
	}
}

/*
 * How long an smtp request may take before qmgr gives up on it: every
 * address tried with its connect timeout, and each stage of the SMTP
 * dialogue twice over.  The agent enforces the real limits; this only
 * keeps a stuck agent from holding mail forever.
 */
static time_t
qmgr_smtp_time_limit(void)
{
	static const char *const stages[] = { "smtp_helo_timeout",
		"smtp_starttls_timeout", "smtp_mail_timeout",
		"smtp_rcpt_timeout", "smtp_data_init_timeout",
		"smtp_data_xfer_timeout", "smtp_data_done_timeout",
		"smtp_quit_timeout" };
	long long t = (cfg_get_int("smtp_mx_address_limit") + 1) *
	    cfg_get_time("smtp_connect_timeout");
	size_t i;

	for (i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		t += 2 * cfg_get_time(stages[i]);
	return (time_t)t + 300;
}

/* Let the other ready destinations have a turn before d again. */
static void
qmgr_dest_rotate(struct qmgr_dest *d)
{
	if (d->ready && d != ready_tail) {
		if (d->rprev != NULL)
			d->rprev->rnext = d->rnext;
		else
			ready_head = d->rnext;
		d->rnext->rprev = d->rprev;
		d->rprev = ready_tail;
		d->rnext = NULL;
		ready_tail->rnext = d;
		ready_tail = d;
	}
	qmgr_dest_update(d);
}

static void
qmgr_dispatch_smtp(void)
{
	long long plimit = cfg_get_int("default_process_limit");

	while (!shutting_down && ready_head != NULL) {
		struct qmgr_dest *d = ready_head;
		struct qmgr_sjob *j = d->head;
		struct qmgr_msg *m = j->msg;
		struct qmgr_conn *c;
		struct buf line;
		char *path, *xpath, *xhop;
		size_t k;
		ssize_t n;

		if ((c = qmgr_conn_idle(QMGR_AGENT_SMTP)) == NULL) {
			if ((long long)conn_count[QMGR_AGENT_SMTP] >= plimit)
				return;
			if ((c = qmgr_conn_open(QMGR_AGENT_SMTP)) == NULL) {
				qmgr_agent_down(QMGR_AGENT_SMTP, errno);
				return;
			}
			qmgr_agent_up(QMGR_AGENT_SMTP);
		}
		qmgr_sjob_unlink(j);
		path = xasprintf("%s/%s", m->in_deferred ? "deferred" :
		    "incoming", m->id);
		xpath = xtext_encode(path, strlen(path));
		xhop = xtext_encode(d->nexthop, strlen(d->nexthop));
		buf_init(&line, 0);
		buf_printf(&line, "SEND %s %s ", xpath, xhop);
		for (k = 0; k < j->n; k++)
			buf_printf(&line, "%s%zu", k > 0 ? "," : "", j->idx[k]);
		buf_printf(&line, " -\n");
		free(path);
		free(xpath);
		free(xhop);
		n = line.len <= MAX_IPC_LINE ?
		    write(c->fd, line.data, line.len) : -1;
		if (n != (ssize_t)line.len) {
			/* Nothing was asked yet: put the job back, and try
			 * again at the next tick. */
			if (line.len > MAX_IPC_LINE)
				log_panic("SEND line too long");
			buf_free(&line);
			qmgr_sjob_requeue(j);
			qmgr_conn_close(c);
			qmgr_dest_update(d);
			return;
		}
		buf_free(&line);
		j->res = xcalloc(j->n, sizeof(*j->res));
		j->nres = 0;
		j->sent_at = qmgr_wall();
		for (k = 0; k < j->n; k++)
			m->rs[j->idx[k]].st = QR_INFLIGHT;
		m->inflight++;
		d->inflight++;
		c->sjob = j;
		c->sent_at = j->sent_at;
		c->deadline = time(NULL) + qmgr_smtp_time_limit();
		qmgr_dest_rotate(d);
	}
}

static void
qmgr_dispatch(void)
{
	qmgr_dispatch_local();
	qmgr_dispatch_smtp();
}

/* ---- scans, datagrams, the periodic tick ---- */

static void
qmgr_scan(bool deferred, bool due_only, bool recover)
{
	const char *sub = deferred ? "deferred" : "incoming";
	char *dir = xasprintf("%s/%s", qmgr_queue_dir, sub);
	time_t now = time(NULL);
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		log_error("opendir %s: %m", dir);
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!queue_list_id_valid(de->d_name) ||
		    qmgr_table_find(&known, de->d_name) != NULL)
			continue;
		if (due_only) {
			struct stat st;

			if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
			    st.st_mtime > now)
				continue;
		}
		qmgr_pend_push(de->d_name, deferred, recover);
	}
	closedir(d);
	free(dir);
}

static void
qmgr_dgram_read(int fd, int events, void *ctx)
{
	char msg[128];
	ssize_t n;

	(void)events;
	(void)ctx;
	while ((n = recv(fd, msg, sizeof(msg) - 1, 0)) >= 0) {
		msg[n] = '\0';
		if (n > 0 && msg[n - 1] == '\n')
			msg[--n] = '\0';
		if (strncmp(msg, "NEW ", 4) == 0 &&
		    queue_list_id_valid(msg + 4))
			qmgr_pend_push(msg + 4, false, false);
		else if (strcmp(msg, "SCAN") == 0)
			next_incoming_scan = 0;
		else {
			/* Lost or bad datagrams are caught by the periodic
			 * scan: never worth dying for. */
			char esc[64];

			log_warning("ignoring bad notification: %s",
			    log_escape(esc, sizeof(esc), msg, (size_t)n));
		}
	}
	if (next_incoming_scan == 0)
		qmgr_kick();
}

static void
qmgr_shutdown_check(void)
{
	struct qmgr_conn *c, *next;
	unsigned inflight = 0;

	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (qmgr_conn_busy(c))
			inflight++;
		else
			qmgr_conn_close(c);
	}
	if (inflight == 0 || time(NULL) >= shutdown_deadline) {
		if (inflight > 0)
			log_warning("exiting with %u deliveries in flight",
			    inflight);
		ioloop_stop();
	}
}

static void
qmgr_kick_cb(void *ctx)
{
	time_t now = time(NULL);

	(void)ctx;
	if (shutting_down) {
		qmgr_shutdown_check();
		return;
	}
	if (now >= next_incoming_scan) {
		next_incoming_scan = now + QMGR_INCOMING_SCAN;
		qmgr_scan(false, false, false);
	}
	if (flush_requested || now >= next_deferred_scan) {
		next_deferred_scan = now + QMGR_DEFERRED_SCAN;
		if (flush_requested)
			qmgr_dest_revive_all();
		qmgr_scan(true, !flush_requested, false);
		flush_requested = false;
	}
	qmgr_feed();
	qmgr_dispatch();
}

static void
qmgr_kick_fire(void *ctx)
{
	kick_timer = NULL;
	qmgr_kick_cb(ctx);
}

static void
qmgr_kick(void)
{
	if (kick_timer == NULL)
		kick_timer = timer_add(0, qmgr_kick_fire, NULL);
}

static void
qmgr_tick(void *ctx)
{
	time_t now = time(NULL);
	struct qmgr_conn *c, *next;
	size_t i;

	(void)ctx;
	tick_timer = timer_add(1000, qmgr_tick, NULL);
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (qmgr_conn_busy(c) && now > c->deadline) {
			char why[128];

			snprintf(why, sizeof(why), "timeout waiting for the %s "
			    "delivery agent", qmgr_agent_names[c->agent]);
			qmgr_conn_fail(c, why);
		} else if (!qmgr_conn_busy(c) && now - c->idle_since >
		    QMGR_AGENT_IDLE)
			qmgr_conn_close(c);
	}
	/* A dead destination that is due again takes mail again. */
	for (i = 0; i < dest_size; i++) {
		struct qmgr_dest *d;

		for (d = dest_buckets[i]; d != NULL; d = d->hnext) {
			if (d->dead_until != 0 && now >= d->dead_until) {
				d->dead_until = 0;
				qmgr_dest_update(d);
			}
		}
	}
	qmgr_dest_free_idle(false);
	qmgr_kick_cb(NULL);
}

/* ---- admin operations (called from qmgr_admin.c) ---- */

static void
qmgr_mark(struct qmgr_msg *m, enum queue_list_op op)
{
	if (op == QUEUE_LIST_DELETE) {
		char *path = qmgr_path(m->in_deferred ? "deferred" :
		    "incoming", m->id);

		m->deleted = true;
		if (unlink(path) == 0)
			log_info("%s: removed", m->id);
		free(path);
	} else
		m->hold = true;
	qmgr_jobs_drop(m);
	qmgr_msg_maybe_finish(m);
}

static void
qmgr_admin_op(const char *id, enum queue_list_op op, struct buf *out)
{
	static const char *const done[] = { "deleted", "placed on hold",
	    "released" };
	const char *err;
	int n = 0, ret;

	if (strcmp(id, "ALL") != 0 && !queue_list_id_valid(id)) {
		buf_printf(out, "ERR invalid queue ID");
		return;
	}
	if (op != QUEUE_LIST_RELEASE) {
		struct qmgr_msg *m, *next;

		for (m = active_head; m != NULL; m = next) {
			next = m->next;
			if (m->deleted || (op == QUEUE_LIST_HOLD && m->hold))
				continue;
			if (strcmp(id, "ALL") == 0 || strcmp(id, m->id) == 0) {
				qmgr_mark(m, op);
				n++;
			}
		}
	}
	ret = queue_list_apply(qmgr_queue_dir, op, id, qmgr_is_active, &err);
	if (ret < 0) {
		buf_printf(out, "ERR %s", err);
		return;
	}
	n += ret;
	if (op == QUEUE_LIST_RELEASE && n > 0) {
		next_deferred_scan = 0;
		qmgr_kick();
	}
	if (n == 0 && strcmp(id, "ALL") != 0)
		buf_printf(out, "ERR %s: no such message%s", id,
		    op == QUEUE_LIST_RELEASE ? " on hold" : "");
	else
		buf_printf(out, "OK %d message%s %s", n, n == 1 ? "" : "s",
		    done[op]);
}

void
qmgr_delete(const char *id, struct buf *out)
{
	qmgr_admin_op(id, QUEUE_LIST_DELETE, out);
}

void
qmgr_hold(const char *id, struct buf *out)
{
	qmgr_admin_op(id, QUEUE_LIST_HOLD, out);
}

void
qmgr_release(const char *id, struct buf *out)
{
	qmgr_admin_op(id, QUEUE_LIST_RELEASE, out);
}

void
qmgr_flush(struct buf *out)
{
	flush_requested = true;
	qmgr_kick();
	buf_printf(out, "OK flushing the deferred queue");
}

/* ---- startup, signals ---- */

static void
qmgr_dgram_init(void)
{
	char *path = xasprintf("%s/private/qmgr", qmgr_queue_dir);
	int fd;

	/* 0622: sendmail run by another local user in unprivileged setups. */
	fd = fdio_unix_bind(path, SOCK_DGRAM, 0622, 0);
	if (fd < 0)
		log_fatal("cannot bind %s: %m", path);
	free(path);
	dgram_fd = fd;
	dgram_io = io_add(fd, IOLOOP_READ, qmgr_dgram_read, NULL);
}

static void
qmgr_sigterm(int signo, void *ctx)
{
	struct qmgr_msg *m, *next;

	(void)ctx;
	if (shutting_down)
		return;
	log_info("stopping on signal %d", signo);
	shutting_down = true;
	shutdown_deadline = time(NULL) + QMGR_SHUTDOWN_WAIT;
	qmgr_admin_deinit();
	/* Not yet dispatched: leave those messages where they are. */
	for (m = active_head; m != NULL; m = m->next)
		m->aborted = true;
	qmgr_jobs_drop(NULL);
	for (m = active_head; m != NULL; m = next) {
		next = m->next;
		qmgr_msg_maybe_finish(m);
	}
	qmgr_kick();
}

static void
qmgr_sighup(int signo, void *ctx)
{
	struct qmgr_conn *c, *next;

	(void)signo;
	(void)ctx;
	if (cfg_load(cfg_path()) != 0) {
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
		return;
	}
	log_info("configuration reloaded");
	active_limit = (unsigned)cfg_get_int("qmgr_message_active_limit");
	qmgr_route_reset();
	rewrite_reset();
	/* New local workers pick up the new configuration. */
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (!qmgr_conn_busy(c))
			qmgr_conn_close(c);
	}
	qmgr_kick();
}

int
main(int argc, char **argv)
{
	const char *config = CFG_DEFAULT_PATH;
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		default:
			fprintf(stderr, "usage: qmgr [-c CONFIG]\n");
			return 2;
		}
	}
	log_init("qmgr", false);
	if (cfg_load(config) != 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "cannot load the configuration");
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	qmgr_queue_dir = xstrdup(cfg_get("queue_directory"));
	active_limit = (unsigned)cfg_get_int("qmgr_message_active_limit");
	{
		const char *err;

		/* Virtual mailbox domains route to local (qmgr_route.c). */
		if (rewrite_init(&err) < 0)
			log_warning("address rewriting: %s", err);
	}

	ioloop_init();
	qmgr_dgram_init();
	qmgr_flow_init();
	qmgr_admin_init();
	ioloop_signal(SIGTERM, qmgr_sigterm, NULL);
	ioloop_signal(SIGINT, qmgr_sigterm, NULL);
	ioloop_signal(SIGHUP, qmgr_sighup, NULL);

	/* A previous run may have died in the middle of a delivery. */
	qmgr_scan(false, false, true);
	qmgr_scan(true, false, true);
	next_incoming_scan = time(NULL) + QMGR_INCOMING_SCAN;
	next_deferred_scan = time(NULL) + QMGR_DEFERRED_SCAN;
	tick_timer = timer_add(1000, qmgr_tick, NULL);
	qmgr_kick();
	log_info("started, queue %s", qmgr_queue_dir);
	ioloop_run();

	timer_remove(&tick_timer);
	timer_remove(&kick_timer);
	qmgr_dest_free_idle(true);
	free(dest_buckets);
	qmgr_route_reset();
	io_remove(&dgram_io);
	if (dgram_fd >= 0)
		close(dgram_fd);
	log_info("stopped");
	return 0;
}
