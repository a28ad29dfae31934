/*
 * local: the local delivery agent (see local.h).
 *
 * The listener runs in the event loop and forks a worker per connection
 * from qmgr.  A worker reads one request, delivers, answers, and waits for
 * the next; it exits when qmgr closes the connection.  In root mode a
 * worker stays root and switches its effective uid to the recipient for
 * file work (local_privs_enter()); commands run in a child with real uid
 * changes.  In unprivileged mode every delivery runs as the invoking user
 * and a recipient with another uid is deferred.
 *
 * One recipient may expand to several destinations (an alias list).  They
 * are all delivered in one request and summed up in one STATUS line:
 * any deferral defers the recipient (no FORWARD lines are sent then, so
 * qmgr's retry does not duplicate them; Maildir copies are recognised by
 * the recover check), otherwise a failure of some destinations bounces
 * the recipient with that failure, otherwise it is sent.  Each destination
 * reached through an alias or .forward is logged here with orig_to.
 *
 * Recipients in $virtual_mailbox_domains (and not in $mydestination)
 * skip all of that: they are the one mailbox $virtual_mailbox_maps gives
 * (rewrite_virtual_lookup()), written as its uid/gid, or "unknown user"
 * (5.1.1), as Postfix's virtual(8) does.
 *
 * The same connection also takes "DELIVER-NOW tmp/ID flags" from smtpd
 * (delivery at accept, doc/internals.md): every recipient of the not yet
 * committed queue file that is a plain Maildir or mbox delivery of one
 * existing user is delivered durably, answered "RESULT idx sent" and
 * logged with the status line qmgr would write; all others are answered
 * "RESULT idx queue" untouched.  Requests may be pipelined: the worker
 * reads the next line only after answering the previous one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "fdio.h"
#include "cfg.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "local.h"
#include "log.h"
#include "qmgr.h"
#include "queue_list.h"
#include "rewrite.h"
#include "store.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

static bool root_mode;
static char *queue_dir;
static int listen_fd = -1;
static struct io *listen_io;
static unsigned worker_count;
static struct timespec cfg_mtime;
static off_t cfg_size;

/* ---- results, privileges, shared helpers ---- */

void
local_result_set(struct local_result *r, enum local_status st,
    const char *dsn, const char *fmt, ...)
{
	va_list ap;
	char *p;

	r->status = st;
	str_lcpy(r->dsn, dsn, sizeof(r->dsn));
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	for (p = r->text; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
}

void
local_result_errno(struct local_result *r, int err, const char *what)
{
	if (err == ENOSPC)
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "write error: No space left on device");
	else if (err == EDQUOT)
		local_result_set(r, LOCAL_DEFER, "4.2.2",
		    "mailbox full: disk quota exceeded");
	else if (err == EFBIG)
		local_result_set(r, LOCAL_BOUNCE, "5.2.2",
		    "mailbox full: %s", strerror(err));
	else
		local_result_set(r, LOCAL_DEFER, "4.3.0", "%s: %s", what,
		    strerror(err));
}

bool
local_root_mode(void)
{
	return root_mode;
}

int
local_privs_enter(const struct local_privs *p, struct local_result *r)
{
	if (!root_mode) {
		if (p->uid != geteuid()) {
			local_result_set(r, LOCAL_DEFER, "4.3.0",
			    "cannot deliver as uid %lu: not root",
			    (unsigned long)p->uid);
			return -1;
		}
		return 0;
	}
	if (setgroups(1, &p->gid) < 0 || setegid(p->gid) < 0 ||
	    seteuid(p->uid) < 0) {
		int e = errno;

		local_privs_leave();
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "cannot switch to uid %lu: %s", (unsigned long)p->uid,
		    strerror(e));
		return -1;
	}
	return 0;
}

void
local_privs_leave(void)
{
	gid_t root_gid = 0;

	if (!root_mode)
		return;
	if (seteuid(0) < 0 || setegid(0) < 0 || setgroups(1, &root_gid) < 0)
		log_fatal("cannot return to root privileges: %m");
}

void
local_privs_free(struct local_privs *p)
{
	free(p->user);
	free(p->home);
	p->user = NULL;
	p->home = NULL;
}

char *
local_prepend_headers(const struct local_msg *m, const char *final)
{
	return xasprintf("Return-Path: <%s>\nX-Original-To: %s\n"
	    "Delivered-To: %s\n", m->sender, m->orig_rcpt, final);
}

char *
local_from_line(const struct local_msg *m)
{
	char tbuf[64];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	/* asctime() format, "Mon Nov 23 16:00:00 2025\n" (RFC 4155). */
	if (asctime_r(&tm, tbuf) == NULL)
		str_lcpy(tbuf, "Thu Jan  1 00:00:00 1970\n", sizeof(tbuf));
	return xasprintf("From %s %s", m->sender[0] != '\0' ? m->sender :
	    "MAILER-DAEMON", tbuf);
}

void
local_split(const char *addr, char **local_r, char **domain_r)
{
	char *local;
	size_t len;

	addr_split(addr, &local, domain_r);
	len = strlen(local);
	if (len >= 2 && local[0] == '"' && local[len - 1] == '"') {
		char *out = xmalloc(len), *o = out;
		size_t i;

		/* quoted-pair: a backslash takes the next byte literally. */
		for (i = 1; i < len - 1; i++) {
			if (local[i] == '\\' && i + 1 < len - 1)
				i++;
			*o++ = local[i];
		}
		*o = '\0';
		free(local);
		local = out;
	}
	*local_r = local;
}

const char *
local_limit_param(const struct local_msg *m)
{
	return m->limit_param != NULL ? m->limit_param : "mailbox_size_limit";
}

bool
local_allowed(const char *param, const char *class)
{
	char **list = cfg_get_list(param);
	bool ok = strv_contains_case(list, class);

	cfg_list_free(&list);
	return ok;
}

/* ---- one request ---- */

/* Scan the header block for Delivered-To and Received (loop checks). */
static void
local_scan_headers(struct local_msg *m)
{
	off_t limit = m->qm.msg_size < LOCAL_MAX_HEADER_SCAN ?
	    m->qm.msg_size : LOCAL_MAX_HEADER_SCAN;
	char *hdr = xmalloc((size_t)limit + 1);
	struct buf field;
	size_t i, start = 0, len = 0;
	bool in_dt = false;

	m->delivered_to = xcalloc(1, sizeof(*m->delivered_to));
	/* Read in pieces up to the end of the header block, not more. */
	while ((off_t)len < limit) {
		size_t want = (size_t)limit - len < 16384 ?
		    (size_t)limit - len : 16384;
		ssize_t n = pread(m->fd, hdr + len, want,
		    m->qm.msg_offset + (off_t)len);

		if (n <= 0)
			break;
		len += (size_t)n;
		hdr[len] = '\0';
		if (hdr[0] == '\n' || strstr(hdr + (len - (size_t)n > 0 ?
		    len - (size_t)n - 1 : 0), "\n\n") != NULL)
			break;
	}
	if (len == 0) {
		free(hdr);
		return;
	}
	hdr[len] = '\0';
	buf_init(&field, 0);
	for (i = 0; i <= len; i++) {
		const char *line;
		size_t llen;

		if (i < len && hdr[i] != '\n')
			continue;
		line = hdr + start;
		llen = i - start;
		start = i + 1;
		/* A continuation line belongs to the field before it. */
		if (llen > 0 && (line[0] == ' ' || line[0] == '\t')) {
			if (in_dt)
				buf_append(&field, line, llen);
			if (i < len)
				continue;
			line = "";
			llen = 0;
		}
		if (in_dt) {
			char *raw = xstrdup(buf_cstr(&field));

			strv_push(&m->delivered_to, str_lower(str_trim(raw)));
			free(raw);
			buf_reset(&field);
			in_dt = false;
		}
		if (llen == 0)
			break;		/* end of the header block */
		if (llen >= 9 && str_starts_case(line, "Received:"))
			m->received++;
		else if (llen >= 13 && str_starts_case(line, "Delivered-To:")) {
			in_dt = true;
			buf_reset(&field);
			buf_append(&field, line + 13, llen - 13);
		}
		if (i >= len)
			break;
	}
	buf_free(&field);
	free(hdr);
}

static void
local_msg_free(struct local_msg *m)
{
	free(m->orig_rcpt);
	free(m->rcpt_domain);
	strv_free(&m->delivered_to);
	free(m->hostname);
	queue_msg_free(&m->qm);
}

/* dovecot-lda's words for a delivery refused by quota. */
#define LOCAL_QUOTA_TEXT	"Quota exceeded (mailbox for user is full)"

/*
 * The quota of the user of it (quota_rule, or the passwd-file field
 * userdb_quota_rule; store_quota.c).  A copy that would take the mailbox
 * over its limit bounces at once with 5.2.2, as dovecot-lda's does, so
 * the sender learns it and nothing waits in the queue for a mailbox
 * that may stay full.  Returns 0 to deliver (*size_r set when the
 * delivery must be counted in maildirsize), -1 with it->result set.
 */
static int
local_quota_check(const struct local_msg *m, struct local_item *it,
    const struct store_location *sl, uint64_t *size_r)
{
	struct store_quota_limit l;
	struct store_quota_usage u;
	struct userdb_user uu;
	const char *err;
	char *rule = NULL, *hdr;
	int r;

	*size_r = 0;
	/* After a crash the copy may be there already: the recover check
	 * of the delivery finds it, and it must not bounce now. */
	if (m->recover)
		return 0;
	/* Only a passwd-file has extra fields. */
	if (userdb_passwd_file() != NULL &&
	    userdb_lookup(it->privs.user, &uu, &err) == 1) {
		rule = userdb_extra_get(&uu, "quota_rule");
		userdb_user_free(&uu);
	}
	r = store_quota_rule_parse(rule != NULL ? rule :
	    cfg_get("quota_rule"), &l, &err);
	free(rule);
	if (r < 0) {
		local_result_set(&it->result, LOCAL_DEFER, "4.3.5",
		    "server configuration error: %s", err);
		return -1;
	}
	if (!store_quota_limited(&l))
		return 0;
	hdr = local_prepend_headers(m, it->address);
	/* The size the Maildir file gets (its ",S="). */
	*size_r = (uint64_t)strlen(hdr) + (uint64_t)m->qm.msg_size;
	free(hdr);
	if (local_privs_enter(&it->privs, &it->result) < 0)
		return -1;
	r = store_quota_usage_loc(sl, &l, &u, &err);
	local_privs_leave();
	if (r < 0) {
		local_result_set(&it->result, LOCAL_DEFER, "4.3.0",
		    "quota: %s", err);
		return -1;
	}
	if (!store_quota_fits(&l, &u, *size_r, 1)) {
		local_result_set(&it->result, LOCAL_BOUNCE, "5.2.2", "%s",
		    LOCAL_QUOTA_TEXT);
		return -1;
	}
	return 0;
}

/* Write a Maildir, mbox, command or file destination of one item. */
static void
local_deliver_mailbox(const struct local_msg *m, struct local_item *it)
{
	const char *cmd = cfg_get("mailbox_command");
	struct store_location sl;
	const char *err;
	struct local_result scratch;
	uint64_t qsize;

	/* Postfix: mailbox_command comes before home_mailbox and the spool. */
	if (cmd[0] != '\0') {
		local_command_deliver(m, cmd, it->address, &it->privs,
		    &it->result);
		return;
	}
	/* The store's reading of mail_location, so that pop3 and imap find
	 * exactly the inbox delivered to. */
	if (store_location_parse(cfg_get("mail_location"), it->privs.user,
	    it->privs.home, cfg_get("mail_spool_directory"), &sl,
	    &err) < 0) {
		local_result_set(&it->result, LOCAL_DEFER, "4.3.0", "%s", err);
		return;
	}
	if (local_quota_check(m, it, &sl, &qsize) < 0) {
		store_location_free(&sl);
		return;
	}
	if (sl.format == STORE_FORMAT_MAILDIR)
		local_maildir_deliver(m, sl.inbox, it->address, &it->privs,
		    &it->result);
	else
		local_mbox_deliver(m, sl.inbox, it->address, &it->privs,
		    sl.inbox_in_spool, true, &it->result);
	if (it->result.status == LOCAL_SENT && qsize > 0 &&
	    local_privs_enter(&it->privs, &scratch) == 0) {
		store_quota_update_loc(&sl, (int64_t)qsize, 1);
		local_privs_leave();
	}
	store_location_free(&sl);
}

static void
local_deliver_item(const struct local_msg *m, struct local_item *it)
{
	size_t len;

	switch (it->type) {
	case LOCAL_ITEM_MAILBOX:
		local_deliver_mailbox(m, it);
		break;
	case LOCAL_ITEM_FILE:
		len = strlen(it->target);
		if (len > 0 && it->target[len - 1] == '/') {
			local_maildir_deliver(m, it->target, it->address,
			    &it->privs, &it->result);
			if (it->result.status == LOCAL_SENT)
				local_result_set(&it->result, LOCAL_SENT,
				    "2.0.0", "delivered to maildir: %s",
				    it->target);
		} else {
			local_mbox_deliver(m, it->target, it->address,
			    &it->privs, false, false, &it->result);
			if (it->result.status == LOCAL_SENT)
				local_result_set(&it->result, LOCAL_SENT,
				    "2.0.0", "delivered to file: %s",
				    it->target);
		}
		break;
	case LOCAL_ITEM_COMMAND:
		local_command_deliver(m, it->target, it->address, &it->privs,
		    &it->result);
		break;
	case LOCAL_ITEM_FORWARD:
		local_result_set(&it->result, LOCAL_SENT, "2.0.0",
		    "forwarded as %s", it->target);
		break;
	case LOCAL_ITEM_FAILED:
		break;
	}
}

static void
local_log_item(const struct local_msg *m, const struct local_item *it)
{
	static const char *const words[] = { "sent", "deferred", "bounced" };
	char to[MAX_ADDRESS + 8], orig[MAX_ADDRESS + 8], why[600];

	log_escape(to, sizeof(to), it->address, strlen(it->address));
	log_escape(orig, sizeof(orig), m->rcpt, strlen(m->rcpt));
	log_escape(why, sizeof(why), it->result.text, strlen(it->result.text));
	log_info("%s: to=<%s>%s%s%s, relay=local, dsn=%s, status=%s (%s)",
	    m->qid, to, str_case_eq(to, orig) ? "" : ", orig_to=<",
	    str_case_eq(to, orig) ? "" : orig,
	    str_case_eq(to, orig) ? "" : ">", it->result.dsn,
	    words[it->result.status], why);
}

static void
local_reply_line(struct buf *out, const char *word, const char *a,
    const char *b, const char *c)
{
	char *xa = xtext_encode(a, strlen(a));
	char *xb = xtext_encode(b, strlen(b));

	buf_printf(out, "%s %s %s", word, xa, xb);
	if (c != NULL) {
		char *xc = xtext_encode(c, strlen(c));

		buf_printf(out, " %s", xc);
		free(xc);
	}
	buf_append_char(out, '\n');
	free(xa);
	free(xb);
}

static void
local_status(struct buf *out, const char *status, const char *dsn,
    const char *text)
{
	local_reply_line(out, "STATUS", status, dsn, text);
}

/* Deliver everything the recipient expands to; one STATUS in out. */
static void
local_deliver_rcpt(struct local_msg *m, struct buf *out)
{
	struct local_expansion x;
	const struct local_item *defer = NULL, *fail = NULL, *ok = NULL;
	size_t i, nok = 0;
	bool indirect;

	local_expand(m, &x);
	for (i = 0; i < x.count; i++) {
		struct local_item *it = &x.items[i];

		local_deliver_item(m, it);
		indirect = x.count > 1 || !str_case_eq(it->address, m->rcpt);
		if (indirect && it->type != LOCAL_ITEM_FORWARD)
			local_log_item(m, it);
		if (it->result.status == LOCAL_DEFER && defer == NULL)
			defer = it;
		else if (it->result.status == LOCAL_BOUNCE && fail == NULL)
			fail = it;
		else if (it->result.status == LOCAL_SENT) {
			if (ok == NULL)
				ok = it;
			nok++;
		}
	}
	if (defer != NULL)
		local_status(out, "defer", defer->result.dsn,
		    defer->result.text);
	else {
		struct buf text;

		for (i = 0; i < x.count; i++) {
			const struct local_item *it = &x.items[i];
			char *orcpt = NULL;

			if (it->type != LOCAL_ITEM_FORWARD)
				continue;
			if (m->qm.rcpts[m->idx].orcpt != NULL)
				orcpt = xstrdup(m->qm.rcpts[m->idx].orcpt);
			else {
				char *xr = xtext_encode(m->rcpt,
				    strlen(m->rcpt));

				orcpt = xasprintf("rfc822;%s", xr);
				free(xr);
			}
			local_reply_line(out, "FORWARD", it->target, orcpt,
			    NULL);
			free(orcpt);
		}
		buf_init(&text, 0);
		if (fail != NULL) {
			if (x.count > 1)
				buf_printf(&text, "%s: %s", fail->address !=
				    NULL && fail->type == LOCAL_ITEM_FAILED ?
				    fail->address : fail->target,
				    fail->result.text);
			else
				buf_append_str(&text, fail->result.text);
			local_status(out, "bounce", fail->result.dsn,
			    buf_cstr(&text));
		} else if (ok != NULL) {
			if (nok == 1)
				buf_append_str(&text, ok->result.text);
			else
				buf_printf(&text, "delivered to %zu "
				    "destinations", nok);
			local_status(out, "sent", "2.0.0", buf_cstr(&text));
		} else
			local_status(out, "bounce", "5.3.0",
			    "alias expands to no destination");
		buf_free(&text);
	}
	local_expansion_free(&x);
}

/* ---- virtual mailbox domains ---- */

/* A recipient local delivers as virtual(8) does (see local.h). */
static bool
local_is_virtual(const struct local_msg *m)
{
	return m->rcpt_domain[0] != '\0' &&
	    !addr_domain_is_local(m->rcpt_domain) &&
	    rewrite_is_virtual_mailbox_domain(m->rcpt_domain);
}

/*
 * Find the mailbox of the current (virtual) recipient of m.  Returns 1
 * with *vb and *p filled (free both), or 0 with r set: a loop, an
 * unknown user (bounce), a table failure or a uid below
 * virtual_minimum_uid (defer).
 */
static int
local_virtual_resolve(const struct local_msg *m, struct rewrite_vmbox *vb,
    struct local_privs *p, struct local_result *r)
{
	const char *why = "lookup failed";
	char *lower = str_lower(xstrdup(m->rcpt));
	bool loop = strv_contains_case(m->delivered_to, lower);
	int rc;

	free(lower);
	memset(p, 0, sizeof(*p));
	if (loop) {
		/* RFC 5321 §6.3: our Delivered-To came back. */
		local_result_set(r, LOCAL_BOUNCE, "5.4.6",
		    "mail forwarding loop for %s", m->rcpt);
		return 0;
	}
	rc = rewrite_virtual_lookup(m->rcpt, vb, &why);
	if (rc < 0) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "virtual mailbox lookup failed: %s", why);
		return 0;
	}
	if (rc == 0) {
		local_result_set(r, LOCAL_BOUNCE, "5.1.1", "unknown user: "
		    "\"%s\"", m->rcpt);
		return 0;
	}
	p->uid = vb->uid;
	p->gid = vb->gid;
	p->user = xstrdup(vb->user != NULL ? vb->user : m->rcpt);
	p->home = xstrdup(vb->home != NULL ? vb->home : "/");
	return 1;
}

/* Write the copy for a resolved virtual recipient; r says how it went. */
static void
local_virtual_write(struct local_msg *m, const struct rewrite_vmbox *vb,
    const struct local_privs *p, struct local_result *r)
{
	m->limit_param = "virtual_mailbox_limit";
	if (vb->user != NULL) {
		/* A passwd-file user: the inbox POP3 and IMAP open for it. */
		struct store_location sl;
		const char *err;

		if (store_location_parse(cfg_get("mail_location"), vb->user,
		    vb->home, cfg_get("mail_spool_directory"), &sl,
		    &err) < 0)
			local_result_set(r, LOCAL_DEFER, "4.3.0", "%s", err);
		else {
			if (sl.format == STORE_FORMAT_MAILDIR)
				local_maildir_deliver(m, sl.inbox, m->rcpt, p,
				    r);
			else
				local_mbox_deliver(m, sl.inbox, m->rcpt, p,
				    sl.inbox_in_spool, true, r);
			store_location_free(&sl);
		}
	} else {
		size_t len = strlen(vb->path);

		/* virtual(8): a trailing '/' is a Maildir, else mbox. */
		if (len > 0 && vb->path[len - 1] == '/')
			local_maildir_deliver(m, vb->path, m->rcpt, p, r);
		else
			local_mbox_deliver(m, vb->path, m->rcpt, p, false,
			    true, r);
	}
	m->limit_param = NULL;
}

/* The queue path: one STATUS line for a virtual recipient. */
static void
local_deliver_virtual(struct local_msg *m, struct buf *out)
{
	static const char *const words[] = { "sent", "defer", "bounce" };
	struct rewrite_vmbox vb;
	struct local_privs p;
	struct local_result r;

	memset(&r, 0, sizeof(r));
	if (local_virtual_resolve(m, &vb, &p, &r)) {
		local_virtual_write(m, &vb, &p, &r);
		rewrite_vmbox_free(&vb);
		local_privs_free(&p);
	}
	local_status(out, words[r.status], r.dsn, r.text);
}

/*
 * Open and parse the queue file at path (relative to queue_directory)
 * into m, with the facts all its recipients share.  Returns 0, or -1 with
 * text saying why (m is then freed).
 */
static int
local_msg_open(const char *path, struct local_msg *m, char *text,
    size_t size)
{
	char *full = xasprintf("%s/%s", queue_dir, path);
	const char *err;
	char host[256];
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(full);
	if (m->fd < 0) {
		snprintf(text, size, "cannot open queue file: %s",
		    strerror(errno));
		return -1;
	}
	ret = queue_file_read(m->fd, &m->qm, &err);
	if (ret != 1) {
		snprintf(text, size, "cannot read queue file: %s",
		    ret == 0 ? "incomplete" : err);
		/* Safe for every return value: the reader zeroes on -1. */
		queue_msg_free(&m->qm);
		close(m->fd);
		m->fd = -1;
		return -1;
	}
	m->qid = strchr(path, '/') + 1;
	str_lcpy(m->qm.id, m->qid, sizeof(m->qm.id));
	m->sender = m->qm.sender;
	if (gethostname(host, sizeof(host)) < 0)
		str_lcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	m->hostname = xstrdup(host);
	local_scan_headers(m);
	return 0;
}

/* Make recipient idx the one m is about. */
static void
local_msg_rcpt(struct local_msg *m, size_t idx)
{
	char *lp;

	free(m->rcpt_domain);
	free(m->orig_rcpt);
	m->orig_rcpt = NULL;
	m->idx = idx;
	m->rcpt = m->qm.rcpts[idx].addr;
	local_split(m->rcpt, &lp, &m->rcpt_domain);
	free(lp);
	/* X-Original-To: the address the sender used (ORCPT, RFC 3461). */
	if (m->qm.rcpts[idx].orcpt != NULL &&
	    str_starts_case(m->qm.rcpts[idx].orcpt, "rfc822;"))
		m->orig_rcpt = xtext_decode(m->qm.rcpts[idx].orcpt + 7);
	if (m->orig_rcpt == NULL || m->orig_rcpt[0] == '\0' ||
	    strpbrk(m->orig_rcpt, "\r\n") != NULL) {
		free(m->orig_rcpt);
		m->orig_rcpt = xstrdup(m->rcpt);
	}
}

static void
local_request(const char *path, size_t idx, bool recover, struct buf *out)
{
	struct local_msg m;
	char text[300];

	if (local_msg_open(path, &m, text, sizeof(text)) < 0) {
		local_status(out, "defer", "4.3.0", text);
		return;
	}
	if (idx >= m.qm.rcpt_count)
		log_fatal("request for recipient %zu of %s, which has %zu",
		    idx, path, m.qm.rcpt_count);
	m.recover = recover;
	local_msg_rcpt(&m, idx);
	if (m.received > (unsigned)cfg_get_int("hopcount_limit")) {
		snprintf(text, sizeof(text), "mail forwarding loop: too many "
		    "hops (%u Received: headers)", m.received);
		local_status(out, "bounce", "5.4.6", text);
	} else if (local_is_virtual(&m))
		local_deliver_virtual(&m, out);
	else
		local_deliver_rcpt(&m, out);
	close(m.fd);
	local_msg_free(&m);
}

/* ---- delivery at accept (DELIVER-NOW) ---- */

static double
local_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/*
 * The status line qmgr would have logged for this delivery: delays=a/b/c/d
 * is time before delivery, 0 (no queue manager), 0 (no connection setup),
 * the delivery itself.
 */
static void
local_log_now(const struct local_msg *m, double started, const char *text)
{
	const struct queue_rcpt *r = &m->qm.rcpts[m->idx];
	char to[MAX_ADDRESS + 8], orig_to[MAX_ADDRESS + 32], why[600];
	char d_all[32], d_a[32], d_d[32];
	double now = local_wall();
	double arrival = (double)m->qm.arrival +
	    (double)m->qm.arrival_usec / 1e6;
	char *orig = NULL;

	log_escape(to, sizeof(to), r->addr, strlen(r->addr));
	orig_to[0] = '\0';
	if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL)
		orig = xtext_decode(strchr(r->orcpt, ';') + 1);
	if (orig != NULL && !str_case_eq(orig, r->addr)) {
		char esc[MAX_ADDRESS + 8];

		log_escape(esc, sizeof(esc), orig, strlen(orig));
		snprintf(orig_to, sizeof(orig_to), ", orig_to=<%s>", esc);
	}
	free(orig);
	log_escape(why, sizeof(why), text, strlen(text));
	log_fmt_delay(d_all, sizeof(d_all), now - arrival);
	log_fmt_delay(d_a, sizeof(d_a), started - arrival);
	log_fmt_delay(d_d, sizeof(d_d), now - started);
	log_info("%s: to=<%s>%s, relay=local, delay=%s, delays=%s/0/0/%s, "
	    "dsn=2.0.0, status=sent (%s)", m->qid, to, orig_to, d_all, d_a,
	    d_d, why);
}

/*
 * Whether qmgr would hand the recipient to local: $transport_maps (or
 * $local_transport) may send a local domain elsewhere (smtp:[host],
 * error:), which delivery at accept must not bypass.
 */
static bool
local_now_routed_local(const char *addr)
{
	struct qmgr_route r;
	bool local;

	qmgr_route_resolve(addr, &r);
	local = r.transport == QMGR_T_LOCAL;
	qmgr_route_free(&r);
	return local;
}

/* qmgr's routing decision (qmgr_route()): a local recipient? */
static bool
local_now_is_local(const char *addr)
{
	char *lp, *domain;
	bool local;

	addr_split(addr, &lp, &domain);
	local = domain[0] == '\0' || addr_domain_is_local(domain);
	free(lp);
	free(domain);
	return local;
}

/*
 * Whether the expansion x of the current recipient of m is exactly one
 * mailbox delivery to the user the address names: no alias, no .forward,
 * no postmaster fallback, no failure.  Otherwise *why_r says why not.
 */
static bool
local_now_plain(const struct local_msg *m, const struct local_expansion *x,
    const char **why_r)
{
	const struct local_item *it = &x->items[0];
	char *lp, *domain, *base;
	bool same;

	if (x->count != 1 || x->indirect) {
		*why_r = "resolved through an alias or a forward file";
		return false;
	}
	if (it->type == LOCAL_ITEM_FAILED) {
		*why_r = it->result.text;
		return false;
	}
	if (it->type != LOCAL_ITEM_MAILBOX) {
		*why_r = "not a mailbox delivery";
		return false;
	}
	local_split(m->rcpt, &lp, &domain);
	base = addr_strip_ext(lp, NULL);
	same = str_case_eq(base, it->target);
	free(lp);
	free(domain);
	free(base);
	if (!same) {
		*why_r = "resolved to another user's mailbox";
		return false;
	}
	return true;
}

static void
local_result_line(struct buf *out, size_t idx, bool sent, const char *dsn,
    const char *text)
{
	char *xd = xtext_encode(dsn, strlen(dsn));
	char *xt = xtext_encode(text, strlen(text));

	buf_printf(out, "RESULT %zu %s %s %s\n", idx, sent ? "sent" : "queue",
	    xd, xt);
	free(xd);
	free(xt);
}

/*
 * Delivery at accept of a virtual mailbox recipient: an existing
 * mailbox is written ("sent"), everything else goes to the queue
 * untouched, which produces the bounce or deferral.
 */
static void
local_now_virtual(struct local_msg *m, double started, struct buf *out)
{
	const struct queue_rcpt *r = &m->qm.rcpts[m->idx];
	const char *loc = cfg_get("mail_location");
	struct rewrite_vmbox vb;
	struct local_privs p;
	struct local_result res;
	char esc[MAX_ADDRESS + 8], wesc[600];

	memset(&res, 0, sizeof(res));
	if (!local_virtual_resolve(m, &vb, &p, &res)) {
		log_escape(esc, sizeof(esc), r->addr, strlen(r->addr));
		log_escape(wesc, sizeof(wesc), res.text, strlen(res.text));
		log_debug("%s: to=<%s>: not delivered at accept: %s", m->qid,
		    esc, wesc);
		local_result_line(out, m->idx, false, "4.0.0", res.text);
		return;
	}
	if (vb.user != NULL && !str_starts_case(loc, "maildir:") &&
	    !str_starts_case(loc, "mbox:")) {
		local_result_line(out, m->idx, false, "4.0.0",
		    "mailbox is not a plain Maildir or mbox");
		rewrite_vmbox_free(&vb);
		local_privs_free(&p);
		return;
	}
	local_virtual_write(m, &vb, &p, &res);
	rewrite_vmbox_free(&vb);
	local_privs_free(&p);
	if (res.status == LOCAL_SENT) {
		local_log_now(m, started, res.text);
		local_result_line(out, m->idx, true, res.dsn, res.text);
		return;
	}
	log_escape(esc, sizeof(esc), r->addr, strlen(r->addr));
	log_escape(wesc, sizeof(wesc), res.text, strlen(res.text));
	log_info("%s: to=<%s>: delivery at accept failed, left to the "
	    "queue: %s", m->qid, esc, wesc);
	local_result_line(out, m->idx, false, res.dsn, res.text);
}

/*
 * Delivery at accept (doc/internals.md): path is tmp/ID, a complete queue
 * file that smtpd has not committed.  One RESULT line per recipient, then
 * END.  "sent" only for a copy that is durable in its mailbox; anything
 * that is not a plain Maildir or mbox delivery of one existing user, and
 * every error, is "queue" and left entirely to the queue path, which
 * redoes it and produces the right bounce or deferral.
 */
static void
local_request_now(const char *path, struct buf *out)
{
	const char *loc = cfg_get("mail_location");
	bool mailbox_ok = cfg_get("mailbox_command")[0] == '\0' &&
	    (str_starts_case(loc, "maildir:") || str_starts_case(loc, "mbox:"));
	struct local_msg m;
	char text[300];
	size_t i;

	if (local_msg_open(path, &m, text, sizeof(text)) < 0) {
		/* No RESULT lines: every recipient goes to the queue. */
		log_warning("%s: delivery at accept: %s", strchr(path, '/') + 1,
		    text);
		buf_append_str(out, "END\n");
		return;
	}
	m.lock_wait = LOCAL_LOCK_WAIT_NOW;
	for (i = 0; i < m.qm.rcpt_count; i++) {
		const struct queue_rcpt *r = &m.qm.rcpts[i];
		struct local_expansion x;
		const char *why = NULL;
		double started = local_wall();
		bool expanded = false;

		memset(&x, 0, sizeof(x));
		local_msg_rcpt(&m, i);
		if (r->state != QUEUE_RCPT_PENDING)
			why = "recipient already done";
		else if (r->notify & QUEUE_NOTIFY_SUCCESS)
			why = "success notification requested";
		else if (m.received > (unsigned)cfg_get_int("hopcount_limit"))
			why = "too many hops";
		else if (!local_now_routed_local(r->addr))
			why = "not routed to local delivery";
		else if (!local_now_is_local(r->addr) && local_is_virtual(&m)) {
			local_now_virtual(&m, started, out);
			continue;
		} else if (!local_now_is_local(r->addr))
			why = "not a local recipient";
		else if (!mailbox_ok)
			why = "mailbox is not a plain Maildir or mbox";
		else {
			local_expand(&m, &x);
			expanded = true;
			(void)local_now_plain(&m, &x, &why);
		}
		if (why != NULL) {
			char esc[MAX_ADDRESS + 8], wesc[600];

			log_escape(esc, sizeof(esc), r->addr, strlen(r->addr));
			log_escape(wesc, sizeof(wesc), why, strlen(why));
			log_debug("%s: to=<%s>: not delivered at accept: %s",
			    m.qid, esc, wesc);
			local_result_line(out, i, false, "4.0.0", why);
		} else {
			struct local_item *it = &x.items[0];

			local_deliver_mailbox(&m, it);
			if (it->result.status == LOCAL_SENT) {
				local_log_now(&m, started, it->result.text);
				local_result_line(out, i, true,
				    it->result.dsn, it->result.text);
			} else {
				char esc[MAX_ADDRESS + 8], wesc[600];

				log_escape(esc, sizeof(esc), r->addr,
				    strlen(r->addr));
				log_escape(wesc, sizeof(wesc), it->result.text,
				    strlen(it->result.text));
				log_info("%s: to=<%s>: delivery at accept "
				    "failed, left to the queue: %s", m.qid,
				    esc, wesc);
				local_result_line(out, i, false,
				    it->result.dsn, it->result.text);
			}
		}
		if (expanded)
			local_expansion_free(&x);
	}
	buf_append_str(out, "END\n");
	close(m.fd);
	local_msg_free(&m);
}

/* ---- the worker ---- */

/* Re-read the configuration when the file changed (SIGHUP reaches only
 * the listener; workers live as long as qmgr's connection). */
static void
local_worker_refresh(void)
{
	struct stat st;

	if (cfg_path()[0] != '\0' && stat(cfg_path(), &st) == 0 &&
	    (st.st_mtim.tv_sec != cfg_mtime.tv_sec ||
	    st.st_mtim.tv_nsec != cfg_mtime.tv_nsec ||
	    st.st_size != cfg_size)) {
		cfg_mtime = st.st_mtim;
		cfg_size = st.st_size;
		if (cfg_load(cfg_path()) != 0)
			log_warning("reload failed, keeping the old "
			    "configuration: %s", cfg_first_error() != NULL ?
			    cfg_first_error() : "?");
	}
	local_alias_refresh();
}


/* Serve one connection from qmgr; never returns. */
static void __attribute__((noreturn))
local_worker(int fd)
{
	struct buf in, out;

	buf_init(&in, 0);
	buf_init(&out, 0);
	for (;;) {
		char *nl = NULL, *line, *path, *flags;
		char **f;
		long long idx;
		ssize_t n;
		bool now;

		while (in.len == 0 ||
		    (nl = memchr(in.data, '\n', in.len)) == NULL) {
			if (in.len > MAX_IPC_LINE)
				log_fatal("request line too long");
			if (buf_reserve(&in, 4096) < 0)
				log_panic("buf_reserve");
			n = read(fd, in.data + in.len, 4096);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				log_fatal("read request: %m");
			if (n == 0)
				_exit(0);	/* qmgr is done with us */
			in.len += (size_t)n;
		}
		line = xstrndup(in.data, (size_t)(nl - in.data));
		buf_consume(&in, (size_t)(nl - in.data) + 1);
		f = strv_split(line, " ");
		now = strv_len(f) == 3 && strcmp(f[0], "DELIVER-NOW") == 0;
		idx = 0;
		if ((!now && (strv_len(f) != 4 ||
		    strcmp(f[0], "DELIVER") != 0)) ||
		    (path = xtext_decode(f[1])) == NULL ||
		    (!now && str_to_ll(f[2], 0, INT_MAX, &idx) < 0) ||
		    (flags = xtext_decode(f[now ? 2 : 3])) == NULL)
			log_fatal("malformed request: %.64s", line);
		/* Only queue files, never another path. */
		if (now ? strncmp(path, "tmp/", 4) != 0 ||
		    !queue_list_id_valid(path + 4) :
		    (strncmp(path, "incoming/", 9) != 0 ||
		    !queue_list_id_valid(path + 9)) &&
		    (strncmp(path, "deferred/", 9) != 0 ||
		    !queue_list_id_valid(path + 9)))
			log_fatal("bad queue path in request: %.64s", path);
		local_worker_refresh();
		buf_reset(&out);
		if (now)
			local_request_now(path, &out);
		else {
			char **fl = strv_split(flags, ",");
			bool recover = strv_contains_case(fl, "recover");

			strv_free(&fl);
			local_request(path, (size_t)idx, recover, &out);
		}
		if (fdio_write_all(fd, out.data, out.len) < 0)
			_exit(0);	/* qmgr went away */
		free(path);
		free(flags);
		free(line);
		strv_free(&f);
	}
}

/* ---- the listener ---- */

static void
local_accept(int fd, int events, void *ctx)
{
	(void)events;
	(void)ctx;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warning("accept: %m");
			return;
		}
		pid = fork();
		if (pid < 0) {
			log_warning("fork: %m");
			close(cfd);
			return;
		}
		if (pid == 0) {
			sigset_t none;

			/* The loop's signalfd does not belong to workers. */
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			/* A request in progress is finished (an mbox append
			 * must not be cut short); the worker exits when qmgr
			 * closes the connection. */
			signal(SIGTERM, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
			signal(SIGCHLD, SIG_DFL);
			close(listen_fd);
			local_worker(cfd);
		}
		worker_count++;
		close(cfd);
	}
}

static void
local_sigchld(int signo, void *ctx)
{
	int status;
	pid_t pid;

	(void)signo;
	(void)ctx;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (worker_count > 0)
			worker_count--;
		if (WIFSIGNALED(status))
			log_warning("worker %ld killed by signal %d",
			    (long)pid, WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			log_warning("worker %ld exited with status %d",
			    (long)pid, WEXITSTATUS(status));
	}
}

static void
local_sigterm(int signo, void *ctx)
{
	(void)ctx;
	log_info("stopping on signal %d", signo);
	/* Workers finish their request and exit when qmgr disconnects. */
	ioloop_stop();
}

static void
local_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	if (cfg_load(cfg_path()) != 0)
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
	else
		log_info("configuration reloaded");
}

static void
local_listen(void)
{
	char *path = xasprintf("%s/private/local", queue_dir);
	int fd;

	fd = fdio_unix_bind(path, SOCK_STREAM, 0600, 64);
	if (fd < 0)
		log_fatal("cannot listen on %s: %m", path);
	if (root_mode) {
		/* Only qmgr and smtpd (run_user) may ask for deliveries. */
		struct passwd *pw = getpwnam(cfg_get("run_user"));

		if (pw == NULL)
			log_fatal("run_user %s does not exist",
			    cfg_get("run_user"));
		if (chown(path, pw->pw_uid, pw->pw_gid) < 0)
			log_fatal("chown %s: %m", path);
	}
	free(path);
	listen_fd = fd;
	listen_io = io_add(fd, IOLOOP_READ, local_accept, NULL);
}

int
main(int argc, char **argv)
{
	const char *config = CFG_DEFAULT_PATH;
	struct stat st;
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		default:
			fprintf(stderr, "usage: local [-c CONFIG]\n");
			return 2;
		}
	}
	log_init("local", false);
	if (cfg_load(config) != 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "cannot load the configuration");
	if (stat(cfg_path(), &st) == 0) {
		cfg_mtime = st.st_mtim;
		cfg_size = st.st_size;
	}
	root_mode = geteuid() == 0;
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	queue_dir = xstrdup(cfg_get("queue_directory"));

	ioloop_init();
	local_listen();
	ioloop_signal(SIGTERM, local_sigterm, NULL);
	ioloop_signal(SIGINT, local_sigterm, NULL);
	ioloop_signal(SIGHUP, local_sighup, NULL);
	ioloop_signal(SIGCHLD, local_sigchld, NULL);
	log_info("started (%s mode)", root_mode ? "root" : "unprivileged");
	ioloop_run();
	io_remove(&listen_io);
	close(listen_fd);
	log_info("stopped");
	return 0;
}
