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
 * Deliveries go to local(8) over private/local: one request in flight per
 * connection, up to local_destination_concurrency_limit connections.
 * Recipients in other domains have no transport yet: qmgr_route() defers
 * them, and is the one place where an SMTP client will plug in.
 *
 * Not done here: reading message content (except for notices), address
 * rewriting (smtpd does it before queueing), anything as root.
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
#include "str.h"
#include "xmalloc.h"

/* Characters of a deferral reason kept in a W record and in logs. */
#define QMGR_MAX_REASON		1000

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

struct qmgr_rcpt {
	enum qmgr_rstate st;
	char		*dsn;
	char		*text;
};

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

struct qmgr_conn {
	int		 fd;
	struct io	*io;
	struct buf	 in;
	struct qmgr_msg	*msg;		/* in flight, or NULL */
	size_t		 idx;
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

const char *qmgr_queue_dir;

static struct qmgr_table known, warned;
static struct qmgr_msg *active_head;
static unsigned active_count;
static struct qmgr_job *job_head, *job_tail;
static struct qmgr_pendq pend_incoming, pend_deferred;
static bool pend_toggle;
static struct qmgr_conn *conns;
static unsigned conn_count;
static time_t local_down_since;
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
    char **fwd, const char *relay, double sent_at);

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

static bool
qmgr_dsn_valid(const char *dsn)
{
	const char *p = dsn;
	int part;

	/* RFC 3463 §2: class "." subject "." detail, 1-3 digits each. */
	if (*p != '2' && *p != '4' && *p != '5')
		return false;
	p++;
	for (part = 0; part < 2; part++) {
		int n = 0;

		if (*p++ != '.')
			return false;
		while (*p >= '0' && *p <= '9' && n < 4) {
			p++;
			n++;
		}
		if (n == 0 || n > 3)
			return false;
	}
	return *p == '\0';
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
qmgr_log_rcpt(const struct qmgr_msg *m, size_t idx, const char *relay,
    double sent_at, const char *dsn, const char *status, const char *text)
{
	char to[MAX_ADDRESS + 8], orig_to[MAX_ADDRESS + 32];
	char why[QMGR_MAX_REASON + 8];
	char d_all[32], d_a[32], d_b[32], d_d[32];
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
	/*
	 * Postfix's delays=a/b/c/d: before the queue manager, in the queue
	 * manager, connection setup, transmission.
	 */
	log_fmt_delay(d_all, sizeof(d_all), now - arrival);
	log_fmt_delay(d_a, sizeof(d_a), m->active_at - arrival);
	if (sent_at > 0) {
		log_fmt_delay(d_b, sizeof(d_b), sent_at - m->active_at);
		log_fmt_delay(d_d, sizeof(d_d), now - sent_at);
	} else {
		log_fmt_delay(d_b, sizeof(d_b), now - m->active_at);
		str_lcpy(d_d, "0", sizeof(d_d));
	}
	log_info("%s: to=<%s>%s, relay=%s, delay=%s, delays=%s/%s/0/%s, "
	    "dsn=%s, status=%s (%s)", m->id, to, orig_to, relay, d_all, d_a,
	    d_b, d_d, dsn, status, why);
}

/* ---- jobs ---- */

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

/* Take the jobs of m (or of every message: m == NULL) off the queue. */
static void
qmgr_jobs_drop(struct qmgr_msg *m)
{
	struct qmgr_job **jp = &job_head, *j;

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
}

/* ---- routing ---- */

/*
 * Where a recipient goes.  Local: $mydestination or no domain at all.
 * Everything else would go to the SMTP client, which does not exist yet:
 * those recipients are deferred with 4.4.1 until it does.
 */
enum qmgr_transport {
	QMGR_TRANSPORT_LOCAL,
	QMGR_TRANSPORT_NONE
};

static enum qmgr_transport
qmgr_route(const char *addr, const char **dsn_r, const char **why_r)
{
	char *local, *domain;
	enum qmgr_transport t;

	addr_split(addr, &local, &domain);
	if (domain[0] == '\0' || addr_domain_is_local(domain))
		t = QMGR_TRANSPORT_LOCAL;
	else {
		t = QMGR_TRANSPORT_NONE;
		*dsn_r = "4.4.1";
		*why_r = "remote delivery is not available yet";
	}
	free(local);
	free(domain);
	return t;
}

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
	const char *dsn = NULL, *why = NULL;

	if (m->qm.rcpts[idx].state != QUEUE_RCPT_PENDING)
		return;
	if (qmgr_rcpt_depth(m, idx) > MAX_ALIAS_DEPTH) {
		qmgr_outcome(m, idx, QMGR_BOUNCE, "5.4.6",
		    "mail forwarding loop: too many levels of forwarding",
		    NULL, "none", 0);
		return;
	}
	switch (qmgr_route(m->qm.rcpts[idx].addr, &dsn, &why)) {
	case QMGR_TRANSPORT_LOCAL:
		qmgr_job_add(m, idx);
		break;
	case QMGR_TRANSPORT_NONE:
		qmgr_outcome(m, idx, QMGR_DEFER, dsn, why, NULL, "none", 0);
		break;
	}
}

/* ---- outcomes of one recipient ---- */

static void
qmgr_rcpt_set(struct qmgr_msg *m, size_t idx, enum qmgr_rstate st,
    const char *dsn, const char *text)
{
	struct qmgr_rcpt *rs = &m->rs[idx];

	rs->st = st;
	free(rs->dsn);
	free(rs->text);
	rs->dsn = dsn != NULL ? xstrdup(dsn) : NULL;
	rs->text = text != NULL ? xstrdup(text) : NULL;
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
    const char *dsn, const char *text, char **fwd, const char *relay,
    double sent_at)
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
	case QMGR_SENT: {
		char num[32];

		snprintf(num, sizeof(num), "%zu", idx);
		qmgr_rec(&b, 'D', num);
		(void)qmgr_append(m, &b);
		m->qm.rcpts[idx].state = QUEUE_RCPT_DONE;
		qmgr_rcpt_set(m, idx, QR_SENT, dsn, clean);
		qmgr_log_rcpt(m, idx, relay, sent_at, dsn, "sent", clean);
		break;
	}
	case QMGR_BOUNCE:
		/* The D record follows the notice (qmgr_msg_finish()). */
		(void)qmgr_append(m, &b);
		qmgr_rcpt_set(m, idx, QR_BOUNCED, dsn, clean);
		qmgr_log_rcpt(m, idx, relay, sent_at, dsn, "bounced", clean);
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
		qmgr_rcpt_set(m, idx, QR_DEFERRED, dsn, clean);
		qmgr_log_rcpt(m, idx, relay, sent_at, dsn, "deferred", clean);
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
	/* maximal_queue_lifetime = 0: one attempt only, as in Postfix. */
	if (now - m->qm.arrival >= qmgr_lifetime(m))
		m->expired = true;
	for (i = 0; i < m->qm.rcpt_count; i++)
		qmgr_route_rcpt(m, i);
	qmgr_msg_maybe_finish(m);
}

static void
qmgr_feed(void)
{
	struct qmgr_pend *p;
	unsigned n = 0;

	while (!shutting_down && active_count < QMGR_MAX_ACTIVE &&
	    n < QMGR_LOAD_BATCH && (p = qmgr_pend_pop()) != NULL) {
		qmgr_load(p);
		free(p);
		n++;
	}
	if (!shutting_down && active_count < QMGR_MAX_ACTIVE &&
	    (pend_incoming.head != NULL || pend_deferred.head != NULL))
		qmgr_kick();
}

/* ---- connections to local ---- */

static void qmgr_conn_read(int fd, int events, void *ctx);

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
	conn_count--;
	io_remove(&c->io);
	close(c->fd);
	buf_free(&c->in);
	strv_free(&c->fwd);
	free(c);
}

/* The connection broke: the request in flight has an unknown outcome. */
static void
qmgr_conn_fail(struct qmgr_conn *c, const char *why)
{
	struct qmgr_msg *m = c->msg;
	size_t idx = c->idx;
	double sent_at = c->sent_at;

	c->msg = NULL;
	qmgr_conn_close(c);
	if (m == NULL)
		return;
	log_warning("%s: %s", m->id, why);
	m->inflight--;
	/* local may have delivered before the connection broke. */
	m->recover = true;
	qmgr_outcome(m, idx, QMGR_DEFER, "4.3.0",
	    "lost connection with local delivery agent", NULL, "local",
	    sent_at);
	qmgr_msg_maybe_finish(m);
	qmgr_kick();
}

static struct qmgr_conn *
qmgr_conn_open(void)
{
	struct sockaddr_un sun;
	struct qmgr_conn *c;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/private/local", qmgr_queue_dir) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	/* Non-blocking: a UNIX connect then either completes at once or
	 * fails (EAGAIN: local's backlog is full); it never stalls us. */
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
	c->fd = fd;
	buf_init(&c->in, 0);
	c->idle_since = time(NULL);
	c->io = io_add(fd, IOLOOP_READ, qmgr_conn_read, c);
	c->next = conns;
	conns = c;
	conn_count++;
	return c;
}

static void
qmgr_conn_status(struct qmgr_conn *c, const char *status, const char *dsn,
    const char *text)
{
	struct qmgr_msg *m = c->msg;
	size_t idx = c->idx;
	char **fwd = c->fwd;
	enum qmgr_outcome what;
	double sent_at = c->sent_at;

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
	qmgr_outcome(m, idx, what, dsn, text, fwd, "local", sent_at);
	strv_free(&fwd);
	qmgr_msg_maybe_finish(m);
	qmgr_kick();
}

/* One reply line from local (doc/internals.md); malformed is fatal. */
static void
qmgr_conn_line(struct qmgr_conn *c, const char *line)
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

static void
qmgr_conn_read(int fd, int events, void *ctx)
{
	struct qmgr_conn *c = ctx;

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
			qmgr_conn_fail(c, n == 0 ?
			    "local delivery agent closed the connection" :
			    "read from local delivery agent failed");
			return;
		}
		c->in.len += (size_t)n;
		while ((nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
			size_t len = (size_t)(nl - c->in.data);
			char *line = xstrndup(c->in.data, len);

			buf_consume(&c->in, len + 1);
			if (memchr(line, '\0', len) != NULL)
				log_fatal("local: NUL byte in reply");
			qmgr_conn_line(c, line);
			free(line);
		}
		if (c->in.len > MAX_IPC_LINE)
			log_fatal("local: reply line too long");
	}
}

/* Local cannot be reached: keep trying briefly, then defer its jobs. */
static void
qmgr_local_down(int err)
{
	time_t now = time(NULL);
	struct qmgr_job *j;

	if (conn_count > 0)
		return;		/* the open connections carry on */
	if (local_down_since == 0) {
		local_down_since = now;
		log_warning("connect to %s/private/local: %s", qmgr_queue_dir,
		    strerror(err));
		return;
	}
	if (now - local_down_since < QMGR_LOCAL_GRACE)
		return;
	while ((j = job_head) != NULL) {
		struct qmgr_msg *m = j->msg;
		size_t idx = j->idx;
		char why[256];

		job_head = j->next;
		if (job_head == NULL)
			job_tail = NULL;
		free(j);
		m->queued--;
		snprintf(why, sizeof(why), "local delivery agent is not "
		    "available: %s", strerror(err));
		qmgr_outcome(m, idx, QMGR_DEFER, "4.3.0", why, NULL, "none", 0);
		qmgr_msg_maybe_finish(m);
	}
}

static void
qmgr_dispatch(void)
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

		for (c = conns; c != NULL; c = c->next) {
			if (c->msg == NULL)
				break;
		}
		if (c == NULL) {
			if ((long long)conn_count >= limit)
				return;
			if ((c = qmgr_conn_open()) == NULL) {
				qmgr_local_down(errno);
				return;
			}
			if (local_down_since != 0)
				log_info("local delivery agent is available "
				    "again");
			local_down_since = 0;
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
		if (c->msg != NULL)
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

	(void)ctx;
	tick_timer = timer_add(1000, qmgr_tick, NULL);
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->msg != NULL && now > c->deadline)
			qmgr_conn_fail(c, "timeout waiting for the local "
			    "delivery agent");
		else if (c->msg == NULL && now - c->idle_since >
		    QMGR_LOCAL_IDLE)
			qmgr_conn_close(c);
	}
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
	/* New local workers pick up the new configuration. */
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->msg == NULL)
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

	ioloop_init();
	qmgr_dgram_init();
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
	io_remove(&dgram_io);
	if (dgram_fd >= 0)
		close(dgram_fd);
	log_info("stopped");
	return 0;
}
