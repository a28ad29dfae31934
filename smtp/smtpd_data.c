/*
 * smtpd_data: the message of a transaction, from DATA or BDAT into the
 * queue file (DESIGN §3, §12 "One pass over message bytes").
 *
 * At DATA (or the first BDAT) the queue file is created and the envelope
 * written (A F f C R records, see queue_file.h), then our Received header.
 * Decoded message bytes are streamed into the file while the header block
 * is scanned line by line (bounded by MAX_HEADER_LINE): Date:,
 * Message-ID: and From: are noted, Received: headers counted, and at the
 * end of the header block the missing ones are inserted, as Postfix's
 * cleanup does.  message_size_limit is enforced on the bytes received; an
 * oversized message is read to its end and dropped.
 *
 * The commit (fsync of the file, rename, fsync of the directory) runs in a
 * small pool of threads so the event loop never waits for the disk and
 * many sessions' fsyncs proceed concurrently (workpool.h); the session
 * stays parked until the worker reports back.  Only then is 250 sent.
 *
 * Address rewriting (rewrite.h), as Postfix's cleanup does it: the
 * envelope is already rewritten by the RCPT/MAIL handlers; here BCC
 * recipients ($always_bcc, $sender_bcc_maps, $recipient_bcc_maps, with
 * NOTIFY=NEVER so that the sender never learns of them, and expanded by
 * $virtual_alias_maps) are added to the envelope before it is written,
 * and, when canonical mapping or masquerading is set for header classes
 * and the client is one $local_header_rewrite_clients names, address
 * header fields are held back until their continuation lines are in,
 * then written rewritten (only the addresses that change; folding,
 * display names and comments stay).  Without those settings the header
 * path costs nothing more.
 *
 * Delivery at accept (local_delivery_at_accept, doc/internals.md): when a
 * recipient is local, the complete but not yet durable file in tmp/ID is
 * first handed to local (local_client.h) while the session stays parked.
 * If local delivered every recipient durably, the file is removed and
 * 250 sent; otherwise a D record is added for each recipient it delivered
 * and the file is committed as above, so qmgr does only the rest.
 *
 * Flow control (in_flow_delay, as in Postfix): before a message is
 * committed into incoming/, smtpd takes a token from the FIFO
 * private/flow that qmgr fills as it takes messages in (qmgr.c).  With
 * no token there, the session waits up to in_flow_delay for one, then
 * commits all the same: a queue that falls behind slows the senders down
 * instead of growing without bound, and mail is never refused for it.  A
 * message delivered whole at accept never enters the queue and takes no
 * token.
 */
#include "config.h"

#include <sys/time.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "ioloop.h"
#include "local_client.h"
#include "log.h"
#include "queue_file.h"
#include "rewrite.h"
#include "smtpd.h"
#include "str.h"
#include "workpool.h"
#include "xmalloc.h"

/* ---- commit pool ---- */

struct smtpd_commit_job {
	struct smtpd_session	*session;
	struct queue_writer	*qw;
	int			 ret;
	char			 error[256];
};

static struct workpool *smtpd_pool;

static void
smtpd_pool_work(void *ctx)
{
	struct smtpd_commit_job *job = ctx;
	const char *error = "";

	job->ret = queue_writer_commit(&job->qw, &error);
	/* error is this thread's buffer: copy it here. */
	if (job->ret < 0)
		str_lcpy(job->error, error, sizeof(job->error));
}

static void
smtpd_pool_done(void *ctx)
{
	struct smtpd_commit_job *job = ctx;

	smtpd_session_commit_done(job->session, job->ret, job->error);
	free(job);
}

void
smtpd_data_pool_init(void)
{
	smtpd_pool = workpool_new("smtpd commit", SMTPD_COMMIT_THREADS);
}

void
smtpd_data_pool_stop(void)
{
	workpool_stop(&smtpd_pool);
}

static void
smtpd_pool_submit(struct smtpd_session *s, struct queue_writer *qw)
{
	struct smtpd_commit_job *job = xcalloc(1, sizeof(*job));

	job->session = s;
	job->qw = qw;
	workpool_submit(smtpd_pool, smtpd_pool_work, smtpd_pool_done, job);
}

/* ---- flow control: tokens from qmgr ---- */

/* A session waiting for a token (in arrival order). */
struct smtpd_flow_wait {
	struct smtpd_session	*session;
	struct queue_writer	*qw;
	struct timer		*timer;
	struct smtpd_flow_wait	*next;
};

static int smtpd_flow_fd = -1;
static struct io *smtpd_flow_io;
static struct smtpd_flow_wait *smtpd_flow_head, **smtpd_flow_tail =
    &smtpd_flow_head;

/*
 * Take one token; false when there is none now.  The FIFO is opened when
 * first needed (qmgr creates it and never removes it, so a qmgr restart
 * keeps us connected); read-write so that opening never blocks and a
 * missing writer is not end of file.
 */
static bool
smtpd_flow_get(const char *queue_dir)
{
	char c, *path;

	if (smtpd_flow_fd < 0) {
		path = xasprintf("%s/private/flow", queue_dir);
		smtpd_flow_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		free(path);
		if (smtpd_flow_fd < 0)
			return true;	/* no qmgr yet: no flow control */
	}
	return read(smtpd_flow_fd, &c, 1) == 1;
}

static void
smtpd_flow_unlink(struct smtpd_flow_wait *w)
{
	struct smtpd_flow_wait **pp;

	for (pp = &smtpd_flow_head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	smtpd_flow_tail = &smtpd_flow_head;
	while (*smtpd_flow_tail != NULL)
		smtpd_flow_tail = &(*smtpd_flow_tail)->next;
	if (smtpd_flow_head == NULL && smtpd_flow_io != NULL)
		io_set_events(smtpd_flow_io, 0);
}

static void
smtpd_flow_release(struct smtpd_flow_wait *w)
{
	smtpd_flow_unlink(w);
	timer_remove(&w->timer);
	smtpd_pool_submit(w->session, w->qw);
	free(w);
}

/* in_flow_delay is over: commit without a token. */
static void
smtpd_flow_timeout(void *ctx)
{
	struct smtpd_flow_wait *w = ctx;

	w->timer = NULL;
	smtpd_flow_release(w);
}

/* Tokens arrived: one for each waiting session, oldest first. */
static void
smtpd_flow_ready(int fd, int events, void *ctx)
{
	char c;

	(void)events;
	(void)ctx;
	while (smtpd_flow_head != NULL && read(fd, &c, 1) == 1)
		smtpd_flow_release(smtpd_flow_head);
}

/* Commit qw for s now, or once a token or in_flow_delay has passed. */
static void
smtpd_flow_commit(struct smtpd_session *s, struct queue_writer *qw)
{
	struct smtpd_flow_wait *w;

	/* Sessions already waiting come first. */
	if (s->set->in_flow_delay_ms == 0 || (smtpd_flow_head == NULL &&
	    smtpd_flow_get(s->set->queue_dir))) {
		smtpd_pool_submit(s, qw);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->session = s;
	w->qw = qw;
	w->timer = timer_add(s->set->in_flow_delay_ms, smtpd_flow_timeout, w);
	*smtpd_flow_tail = w;
	smtpd_flow_tail = &w->next;
	if (smtpd_flow_io == NULL)
		smtpd_flow_io = io_add(smtpd_flow_fd, IOLOOP_READ,
		    smtpd_flow_ready, NULL);
	else
		io_set_events(smtpd_flow_io, IOLOOP_READ);
}

/* ---- dates ---- */

static const char *const smtpd_days[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const smtpd_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
	"Nov", "Dec"
};

/* RFC 5322 §3.3 date-time in the local time zone, locale independent. */
static void
smtpd_data_date(char *buf, size_t size, time_t when)
{
	struct tm tm;
	long off;
	char sign = '+';

	localtime_r(&when, &tm);
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(buf, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    smtpd_days[tm.tm_wday % 7], tm.tm_mday,
	    smtpd_months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* ---- writing ---- */

static void
smtpd_data_write(struct smtpd_session *s, const char *data, size_t len)
{
	struct smtpd_txn *t = s->txn;

	if (t->status != SMTPD_DATA_OK || len == 0)
		return;
	if (queue_writer_write(t->qw, data, len) < 0) {
		log_warning("%s: queue file write error", t->qid);
		t->status = SMTPD_DATA_WRITE_ERR;
		return;
	}
	t->ends_in_lf = data[len - 1] == '\n';
}

static void
smtpd_data_write_str(struct smtpd_session *s, const char *str)
{
	smtpd_data_write(s, str, strlen(str));
}

static int
smtpd_data_record(struct smtpd_session *s, char type, const char *value)
{
	return queue_writer_record(s->txn->qw, type, value, strlen(value));
}

static void
smtpd_data_received(struct smtpd_session *s, struct buf *b, size_t nrcpt)
{
	struct smtpd_txn *t = s->txn;
	char date[64];

	smtpd_data_date(date, sizeof(date), time(NULL));
	if (s->local) {
		/* Local submission, as Postfix's pickup writes it. */
		buf_printf(b, "Received: by %s (%s, from userid %ld)\n"
		    "\tid %s; %s\n", s->set->myhostname, s->set->mail_name,
		    (long)s->uid, t->qid, date);
		return;
	}
	buf_printf(b, "Received: from %s (%s [%s])\n",
	    s->helo != NULL ? s->helo : s->name, s->name, s->rfc_addr);
	/* Like Postfix's smtpd_tls_received_header. */
	if (smtpd_session_tls_info(s) != NULL)
		buf_printf(b, "\t(using %s)\n"
		    "\t(No client certificate requested)\n",
		    smtpd_session_tls_info(s));
	/* Postfix smtpd_sasl_authenticated_header (off by default: it
	 * tells the world a login name). */
	if (s->sasl_user != NULL && s->set->sasl_header)
		buf_printf(b, "\t(Authenticated sender: %s)\n", s->sasl_user);
	buf_printf(b, "\tby %s (%s) with %s id %s", s->set->myhostname,
	    s->set->mail_name, smtpd_session_proto(s), t->qid);
	/* The client's own recipient, not a BCC copy we added. */
	if (nrcpt == 1)
		buf_printf(b, "\n\tfor <%s>", t->rcpts[0].addr);
	buf_printf(b, "; %s\n", date);
}

/* ---- address rewriting ---- */

/* Is the client address one of this host's own (permit_inet_interfaces)? */
static bool
smtpd_data_client_is_us(const struct smtpd_session *s)
{
	struct ifaddrs *ifa, *a;
	struct netaddr n;
	bool found = false;

	if (s->loopback)
		return true;
	if (getifaddrs(&ifa) < 0)
		return false;
	for (a = ifa; a != NULL && !found; a = a->ifa_next) {
		if (a->ifa_addr != NULL &&
		    netaddr_from_sockaddr(a->ifa_addr, &n) == 0)
			found = netaddr_match(&n, &s->naddr);
	}
	freeifaddrs(ifa);
	return found;
}

/*
 * Postfix's local_header_rewrite_clients: the header addresses of whose
 * mail are rewritten.  Mail from other clients keeps its headers unless
 * remote_header_rewrite_domain is set (Postfix then rewrites them too).
 */
static bool
smtpd_data_rewrite_client(const struct smtpd_session *s)
{
	char **list;
	size_t i;
	bool ok = false;

	if (s->local || cfg_get("remote_header_rewrite_domain")[0] != '\0')
		return true;
	list = cfg_get_list("local_header_rewrite_clients");
	for (i = 0; list[i] != NULL && !ok; i++) {
		const char *e = list[i];

		if (str_case_eq(e, "permit_inet_interfaces"))
			ok = smtpd_data_client_is_us(s);
		else if (str_case_eq(e, "permit_mynetworks"))
			ok = s->set->mynetworks != NULL &&
			    netaddr_list_match(s->set->mynetworks, &s->naddr);
		else if (str_case_eq(e, "permit_sasl_authenticated"))
			ok = s->sasl_user != NULL;
		else if (str_case_eq(e, "static:all") ||
		    str_case_eq(e, "permit"))
			ok = true;
	}
	cfg_list_free(&list);
	return ok;
}

/* Add one BCC recipient unless the envelope has that address already. */
static void
smtpd_data_bcc_rcpt(struct smtpd_txn *t, const char *addr)
{
	char *norm = addr_normalize(addr);
	struct smtpd_rcpt *r;
	size_t i;

	for (i = 0; i < t->rcpt_count; i++) {
		char *other = addr_normalize(t->rcpts[i].addr);
		bool same = strcmp(other, norm) == 0;

		free(other);
		if (same) {
			free(norm);
			return;
		}
	}
	t->rcpts = xreallocarray(t->rcpts, t->rcpt_count + 1,
	    sizeof(*t->rcpts));
	r = &t->rcpts[t->rcpt_count++];
	r->addr = xstrdup(addr);
	/* postconf(5) always_bcc: "as if it was specified with
	 * NOTIFY=NONE": no DSN tells the sender about the copy. */
	r->record = xasprintf("%s\tNOTIFY=NEVER", addr);
	r->key = xasprintf("%s\tNOTIFY=NEVER", norm);
	free(norm);
}

/*
 * The BCC recipients of the transaction, expanded by the virtual alias
 * tables like any recipient.  Returns 0, or -1 after logging (a table
 * failed: 451, the client tries again; a missing archive copy would be
 * silent).
 */
static int
smtpd_data_add_bcc(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	char **rcpts, **bcc = NULL;
	const char *why = "";
	size_t i, j, n = t->rcpt_count;
	int ret = 0;

	if (cfg_get("always_bcc")[0] == '\0' &&
	    cfg_get("sender_bcc_maps")[0] == '\0' &&
	    cfg_get("recipient_bcc_maps")[0] == '\0')
		return 0;
	rcpts = xcalloc(n + 1, sizeof(*rcpts));
	for (i = 0; i < n; i++)
		rcpts[i] = t->rcpts[i].addr;
	if (rewrite_bcc_lookup(t->sender, rcpts, &bcc, &why) < 0) {
		log_warning("%s: BCC table lookup failed: %s", t->qid, why);
		free(rcpts);
		return -1;
	}
	free(rcpts);
	for (i = 0; bcc[i] != NULL && ret == 0; i++) {
		char **addrs = NULL;
		int rc = rewrite_recipient(bcc[i], &addrs, &why);

		if (rc < 0) {
			log_warning("%s: BCC <%s>: %s", t->qid, bcc[i], why);
			ret = -1;
		} else if (rc == 0)
			log_warning("%s: BCC <%s> dropped: %s", t->qid,
			    bcc[i], why);
		for (j = 0; rc > 0 && addrs[j] != NULL; j++) {
			if (t->rcpt_count >= s->set->rcpt_limit +
			    (size_t)MAX_ALIAS_EXPANSION)
				break;
			smtpd_data_bcc_rcpt(t, addrs[j]);
		}
		strv_free(&addrs);
	}
	strv_free(&bcc);
	return ret;
}

/*
 * Write the address field held in hdrline (its first hdr_pending bytes,
 * name, colon, value and continuation lines, each ending in LF),
 * rewritten when an address in it changes, and drop it from hdrline.
 */
static void
smtpd_data_flush_pending(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	size_t n = t->hdr_pending, nlen = 0;
	const char *data = t->hdrline.data, *colon;
	char *name, *value, *nv = NULL;

	if (n == 0)
		return;
	t->hdr_pending = 0;
	colon = memchr(data, ':', n);
	if (colon != NULL && memchr(data, '\0', n) == NULL &&
	    smtpd_header_name(data, n - 1, &nlen)) {
		name = xstrndup(data, nlen);
		/* The value with its folding, without the last LF. */
		value = xstrndup(colon + 1, n - 1 - (size_t)(colon + 1 - data));
		nv = rewrite_header_value(name, value, REWRITE_HDR_CANONICAL);
		free(name);
		free(value);
	}
	if (nv == NULL)
		smtpd_data_write(s, data, n);
	else {
		smtpd_data_write(s, data, (size_t)(colon + 1 - data));
		smtpd_data_write_str(s, nv);
		smtpd_data_write_str(s, "\n");
		free(nv);
	}
	buf_consume(&t->hdrline, n);
}

int
smtpd_data_begin(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	const char *error;
	struct timeval tv;
	struct buf b;
	size_t i, nrcpt;
	int ret = 0;

	t->qw = queue_writer_new(s->set->queue_dir, &error);
	if (t->qw == NULL) {
		log_warning("queue file create failed: %s", error);
		return -1;
	}
	str_lcpy(t->qid, queue_writer_id(t->qw), sizeof(t->qid));
	if (s->local)
		log_info("%s: uid=%ld from=<%s>", t->qid, (long)s->uid,
		    t->sender);
	else if (s->sasl_user != NULL)
		/* Postfix's line, which log tools parse for the login. */
		log_info("%s: client=%s, sasl_method=%s, sasl_username=%s",
		    t->qid, smtpd_session_client(s), s->sasl_method,
		    s->sasl_user);
	else
		log_info("%s: client=%s", t->qid, smtpd_session_client(s));

	buf_init(&b, 0);
	gettimeofday(&tv, NULL);
	buf_printf(&b, "%lld.%06ld", (long long)tv.tv_sec, (long)tv.tv_usec);
	ret |= smtpd_data_record(s, 'A', buf_cstr(&b));
	ret |= smtpd_data_record(s, 'F', t->sender);
	ret |= smtpd_data_record(s, 'f', t->params);
	buf_reset(&b);
	buf_printf(&b, "name=%s", s->name);
	if (!s->local)
		buf_printf(&b, "\taddr=%s\tport=%u", s->addr, s->port);
	if (s->helo != NULL)
		buf_printf(&b, "\thelo=%s", s->helo);
	buf_printf(&b, "\tproto=%s", smtpd_session_proto(s));
	if (s->local)
		buf_printf(&b, "\tuid=%ld", (long)s->uid);
	else if (s->sasl_user != NULL)
		buf_printf(&b, "\tuser=%s", s->sasl_user);
	ret |= smtpd_data_record(s, 'C', buf_cstr(&b));
	nrcpt = t->rcpt_count;
	if (smtpd_data_add_bcc(s) < 0) {
		buf_free(&b);
		queue_writer_abort(&t->qw);
		return -1;
	}
	t->hdr_pending = 0;
	t->rewrite_hdrs = rewrite_header_active(REWRITE_HDR_CANONICAL) &&
	    smtpd_data_rewrite_client(s);
	for (i = 0; i < t->rcpt_count; i++)
		ret |= smtpd_data_record(s, 'R', t->rcpts[i].record);
	ret |= queue_writer_begin_msg(t->qw);
	if (ret != 0) {
		log_warning("%s: queue file write error", t->qid);
		buf_free(&b);
		queue_writer_abort(&t->qw);
		return -1;
	}
	buf_reset(&b);
	/* PREPEND headers of access tables and policy servers come first,
	 * above our Received: header, as Postfix writes them. */
	for (i = 0; t->prepend != NULL && t->prepend[i] != NULL; i++)
		buf_printf(&b, "%s\n", t->prepend[i]);
	smtpd_data_received(s, &b, nrcpt);
	t->status = SMTPD_DATA_OK;
	t->received = 0;
	t->in_headers = true;
	t->last_was_header = false;
	smtpd_data_write(s, b.data, b.len);
	buf_free(&b);
	return t->status == SMTPD_DATA_OK ? 0 : -1;
}

/* ---- header block ---- */

static bool
smtpd_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Keep the Message-ID value (unfolded, trimmed) for the log. */
static void
smtpd_data_msgid_add(struct smtpd_txn *t, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = p[i];

		if (c == '\n' || c == '\r')
			continue;
		if ((c == ' ' || c == '\t') &&
		    (t->msgid.len == 0 ||
		    t->msgid.data[t->msgid.len - 1] == ' '))
			continue;
		if (buf_append_char(&t->msgid, c == '\t' ? ' ' : c) < 0)
			break;
	}
}

/*
 * The header block ends: add what is missing (Postfix cleanup order:
 * Message-ID, Date, From), and the empty separator line when the body
 * starts without one.
 */
static void
smtpd_data_headers_end(struct smtpd_session *s, bool add_separator)
{
	struct smtpd_txn *t = s->txn;
	char date[64], stamp[32], esc[SMTPD_MAX_MSGID + 4];
	struct buf b;
	time_t now = time(NULL);

	smtpd_data_flush_pending(s);
	t->in_headers = false;
	if (!t->ends_in_lf)
		smtpd_data_write_str(s, "\n");
	buf_init(&b, 0);
	if (!t->have_msgid) {
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		buf_reset(&t->msgid);
		buf_printf(&t->msgid, "<%s.%s@%s>", stamp, t->qid,
		    s->set->myhostname);
		buf_printf(&b, "Message-ID: %s\n", buf_cstr(&t->msgid));
	}
	if (!t->have_date) {
		smtpd_data_date(date, sizeof(date), now);
		buf_printf(&b, "Date: %s\n", date);
	}
	if (!t->have_from && t->sender[0] != '\0')
		buf_printf(&b, "From: %s\n", t->sender);
	else if (!t->have_from)
		buf_printf(&b, "From: MAILER-DAEMON@%s\n", s->set->myhostname);
	if (add_separator)
		buf_append_char(&b, '\n');
	smtpd_data_write(s, b.data, b.len);
	buf_free(&b);

	if (t->msgid.len > 0)
		log_info("%s: message-id=%s", t->qid,
		    log_escape(esc, sizeof(esc), t->msgid.data,
		    t->msgid.len));
	/* Postfix hopcount_limit: a mail loop. */
	if (t->received_hdrs >= s->set->hopcount_limit &&
	    t->status == SMTPD_DATA_OK)
		t->status = SMTPD_DATA_HOPS;
}

/* One complete physical line (ending in LF) of the header block. */
static void
smtpd_data_header_line(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	const char *line = t->hdrline.data + t->hdr_pending;
	size_t len = t->hdrline.len - t->hdr_pending - 1, nlen;

	if (len > 0 && (line[0] == ' ' || line[0] == '\t') &&
	    t->last_was_header) {
		/* Folded continuation (RFC 5322 §2.2.3). */
		if (t->hdr_pending > 0) {
			/* Part of the address field held back. */
			t->hdr_pending = t->hdrline.len;
			return;
		}
		if (t->in_msgid)
			smtpd_data_msgid_add(t, line, len);
		smtpd_data_write(s, line, t->hdrline.len);
		buf_reset(&t->hdrline);
		return;
	}
	if (t->hdr_pending > 0) {
		/* The held field is complete: this line is not part of it. */
		smtpd_data_flush_pending(s);
		line = t->hdrline.data;
	}
	if (len == 0) {
		smtpd_data_headers_end(s, false);
		smtpd_data_write(s, line, t->hdrline.len);
	} else if (smtpd_header_name(line, len, &nlen)) {
		const char *colon = memchr(line, ':', len);

		t->in_msgid = false;
		t->last_was_header = true;
		if (smtpd_name_is(line, nlen, "Date"))
			t->have_date = true;
		else if (smtpd_name_is(line, nlen, "From"))
			t->have_from = true;
		else if (smtpd_name_is(line, nlen, "To") ||
		    smtpd_name_is(line, nlen, "Cc") ||
		    smtpd_name_is(line, nlen, "Bcc"))
			t->have_to = true;
		else if (smtpd_name_is(line, nlen, "Received") ||
		    smtpd_name_is(line, nlen, "Delivered-To"))
			t->received_hdrs++;
		else if (smtpd_name_is(line, nlen, "Message-ID") &&
		    !t->have_msgid) {
			t->have_msgid = true;
			t->in_msgid = true;
			buf_reset(&t->msgid);
			smtpd_data_msgid_add(t, colon + 1,
			    len - (size_t)(colon + 1 - line));
		}
		if (t->rewrite_hdrs && rewrite_header_is_address(line, nlen)) {
			/* Held back until its continuation lines are in. */
			t->hdr_pending = t->hdrline.len;
			return;
		}
		smtpd_data_write(s, line, t->hdrline.len);
	} else {
		/* Not a header: the body starts without a separator. */
		smtpd_data_headers_end(s, true);
		smtpd_data_write(s, line, t->hdrline.len);
	}
	buf_reset(&t->hdrline);
}

void
smtpd_data_input(struct smtpd_session *s, const char *data, size_t len)
{
	struct smtpd_txn *t = s->txn;

	t->received += len;
	if (t->status != SMTPD_DATA_OK)
		return;
	if (s->set->size_limit > 0 && t->received > s->set->size_limit) {
		t->status = SMTPD_DATA_TOO_BIG;
		return;
	}
	while (len > 0 && t->in_headers) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - data) + 1 : len;

		if (buf_append(&t->hdrline, data, n) < 0) {
			if (t->hdr_pending > 0) {
				/* The held field and this line do not fit
				 * together: the field goes out unchanged,
				 * the line is tried again. */
				smtpd_data_write(s, t->hdrline.data,
				    t->hdr_pending);
				buf_consume(&t->hdrline, t->hdr_pending);
				t->hdr_pending = 0;
				continue;
			}
			/* A header line over MAX_HEADER_LINE: the header
			 * block ends here, the rest is body. */
			smtpd_data_headers_end(s, true);
			smtpd_data_write(s, t->hdrline.data, t->hdrline.len);
			buf_reset(&t->hdrline);
			break;
		}
		data += n;
		len -= n;
		if (lf != NULL)
			smtpd_data_header_line(s);
	}
	if (len > 0 && !t->in_headers)
		smtpd_data_write(s, data, len);
}

bool
smtpd_data_failed(const struct smtpd_session *s)
{
	return s->txn == NULL || s->txn->status != SMTPD_DATA_OK;
}

const char *
smtpd_data_error_reply(const struct smtpd_session *s)
{
	switch (s->txn->status) {
	case SMTPD_DATA_TOO_BIG:
		return "552 5.3.4 Message size exceeds fixed maximum message "
		    "size";
	case SMTPD_DATA_HOPS:
		return "554 5.4.0 Error: too many hops";
	case SMTPD_DATA_WRITE_ERR:
	case SMTPD_DATA_OK:
		break;
	}
	return "451 4.3.0 Error: queue file write error";
}

void
smtpd_data_log_reject(struct smtpd_session *s, const char *stage,
    const char *reply)
{
	char helo[256];
	const char *h = s->helo != NULL ? s->helo : "";

	log_escape(helo, sizeof(helo), h, strlen(h));
	log_info("%s: reject: %s from %s: %s; from=<%s> proto=%s helo=<%s>",
	    s->txn->qid, stage, smtpd_session_client(s), reply,
	    s->txn->sender, smtpd_session_proto(s), helo);
}

void
smtpd_data_log_from(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	if (t->from_logged)
		return;
	t->from_logged = true;
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)",
	    t->qid, t->sender, (unsigned long long)t->msg_size,
	    t->rcpt_count);
}

/* ---- delivery at accept ---- */

/*
 * qmgr's routing rule: a local recipient has no domain or one of ours;
 * local delivers virtual mailbox domains too.
 */
static bool
smtpd_data_has_local(const struct smtpd_txn *t)
{
	bool local = false;
	size_t i;

	for (i = 0; i < t->rcpt_count && !local; i++) {
		char *lp, *domain;

		addr_split(t->rcpts[i].addr, &lp, &domain);
		local = domain[0] == '\0' || addr_domain_is_local(domain) ||
		    rewrite_is_virtual_mailbox_domain(domain);
		free(lp);
		free(domain);
	}
	return local;
}

/* The transaction failed before the queue took the message: 451. */
static void
smtpd_data_fail(struct smtpd_session *s, const char *error)
{
	struct smtpd_txn *t = s->txn;
	enum smtpd_stat stat = t->bdat ? SMTPD_STAT_BDAT : SMTPD_STAT_DATA;

	log_warning("%s: queue file write failed: %s", t->qid, error);
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	smtpd_session_count_stat(s, stat, false);
	smtpd_session_reply(s, "451 4.3.0 Error: queue file write error");
	smtpd_txn_free(&s->txn);
	s->phase = s->helo != NULL ? SMTPD_PHASE_HELO : SMTPD_PHASE_INIT;
}

static void
smtpd_data_commit(struct smtpd_session *s)
{
	struct queue_writer *qw = s->txn->qw;

	s->txn->qw = NULL;
	smtpd_session_enter_state(s, SMTPD_STATE_COMMIT);
	smtpd_flow_commit(s, qw);
}

/* local's answer (from the loop; a session that ended cancelled it). */
static void
smtpd_data_local_done(void *ctx, const struct local_client_result *res)
{
	struct smtpd_session *s = ctx;
	struct smtpd_txn *t = s->txn;
	size_t i, nsent = 0;

	t->lreq = NULL;
	for (i = 0; i < t->rcpt_count; i++) {
		if (local_client_result_sent(res, i))
			nsent++;
	}
	if (nsent == t->rcpt_count) {
		/* Every copy is durable in its mailbox: nothing to queue. */
		queue_writer_abort(&t->qw);
		log_info("%s: removed", t->qid);
		t->removed = true;
		smtpd_session_commit_done(s, 0, NULL);
		return;
	}
	/* The D records are fsynced with the file: qmgr skips those.  A
	 * write error here makes the commit fail (451). */
	for (i = 0; i < t->rcpt_count; i++) {
		char idx[32];
		int len;

		if (!local_client_result_sent(res, i))
			continue;
		len = snprintf(idx, sizeof(idx), "%zu", i);
		if (queue_writer_add_status(t->qw, 'D', idx, (size_t)len) < 0)
			break;
	}
	smtpd_data_commit(s);
}

/*
 * Hand the finished file to local.  Returns false when delivery at
 * accept does not apply (the caller commits as usual).
 */
static bool
smtpd_data_local(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	const char *error;
	char *path;

	/* A held message waits in hold/ (HOLD action): no delivery. */
	if (!s->set->local_at_accept || t->hold || !smtpd_data_has_local(t))
		return false;
	if (queue_writer_finish(t->qw, &error) < 0) {
		smtpd_data_fail(s, error);
		return true;
	}
	smtpd_data_log_from(s);
	smtpd_session_enter_state(s, SMTPD_STATE_LOCAL);
	path = xasprintf("tmp/%s", t->qid);
	t->lreq = local_client_deliver_now(s->set->queue_dir, path,
	    smtpd_data_local_done, s);
	free(path);
	return true;
}

void
smtpd_data_end(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	enum smtpd_stat stat = t->bdat ? SMTPD_STAT_BDAT : SMTPD_STAT_DATA;

	if (t->status == SMTPD_DATA_OK && t->in_headers) {
		/* Only headers (or nothing): finish the last line. */
		if (t->hdrline.len > t->hdr_pending) {
			int rc = buf_append_char(&t->hdrline, '\n');

			if (rc < 0 && t->hdr_pending > 0) {
				/* As in smtpd_data_input(). */
				smtpd_data_write(s, t->hdrline.data,
				    t->hdr_pending);
				buf_consume(&t->hdrline, t->hdr_pending);
				t->hdr_pending = 0;
				rc = buf_append_char(&t->hdrline, '\n');
			}
			if (rc == 0)
				smtpd_data_header_line(s);
			else {
				smtpd_data_headers_end(s, true);
				smtpd_data_write(s, t->hdrline.data,
				    t->hdrline.len);
			}
		}
		if (t->in_headers)
			smtpd_data_headers_end(s, false);
	}
	/* Every stored line ends in LF (a BDAT message may not). */
	if (t->status == SMTPD_DATA_OK && !t->ends_in_lf)
		smtpd_data_write_str(s, "\n");
	if (t->status != SMTPD_DATA_OK) {
		const char *reply = smtpd_data_error_reply(s);

		smtpd_data_log_reject(s, "END-OF-MESSAGE", reply);
		smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		smtpd_session_count_stat(s, stat, false);
		smtpd_session_reply(s, "%s", reply);
		smtpd_txn_free(&s->txn);
		s->phase = s->helo != NULL ? SMTPD_PHASE_HELO :
		    SMTPD_PHASE_INIT;
		return;
	}
	t->msg_size = (uint64_t)queue_writer_msg_size(t->qw);
	/* smtpd_end_of_data_restrictions, DISCARD and HOLD (smtpd_check.c);
	 * a lookup there parks the session, smtpd_data_accept() follows. */
	if (smtpd_check_eod(s) != 0)
		return;
	smtpd_data_accept(s);
}

void
smtpd_data_accept(struct smtpd_session *s)
{
	if (smtpd_data_local(s))
		return;
	smtpd_data_commit(s);
}
