/*
 * smtp_proto: the SMTP dialogue of one outbound session (see smtp.h):
 * greeting, EHLO (HELO when EHLO is refused), STARTTLS per
 * $smtp_tls_security_level, AUTH, then one transaction for the pending
 * recipients of a delivery: MAIL FROM with SIZE, BODY, SMTPUTF8, RET and
 * ENVID; RCPT TO with NOTIFY and ORCPT; DATA or BDAT (RFC 3030); all of
 * MAIL, RCPT and DATA in one write when the server offers PIPELINING
 * (RFC 2920).  A successful session ends with RSET so that it can be
 * cached.
 *
 * Outcomes follow Postfix's smtp(8): a 2xx makes a recipient sent, a 5xx
 * bounces it, a 4xx (and a lost or timed-out connection) leaves it
 * pending with the reason, so that the next server of the next hop gets
 * it; what is still pending after the last server is deferred.  A reply
 * to DATA applies to every recipient the server accepted.  Texts are
 * worded as Postfix words them ("host mx[1.2.3.4] said: 550 5.1.1 ...
 * (in reply to RCPT TO command)"), because admins and their log tools
 * know them.
 *
 * This module does not choose servers or answer qmgr (smtp.c) and does
 * not own the socket code (smtp_conn.c).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "rewrite.h"
#include "smtp.h"
#include "str.h"
#include "tls.h"
#include "xmalloc.h"

/* Seconds to wait for the answer to RSET (Postfix's smtp_rset_timeout). */
#define SMTP_RSET_TIMEOUT	20

/* ---- recording results ---- */

void
smtp_rcpt_set(struct smtp_rcpt *r, enum smtp_rcpt_status st, const char *dsn,
    const char *relay, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	free(r->text);
	free(r->relay);
	r->text = text;
	r->relay = relay != NULL ? xstrdup(relay) : NULL;
	(void)str_lcpy(r->dsn, dsn, sizeof(r->dsn));
	r->status = st;
}

size_t
smtp_delivery_pending(const struct smtp_delivery *d)
{
	size_t i, n = 0;

	for (i = 0; i < d->nrcpts; i++)
		if (d->rcpts[i].status == SMTP_RCPT_PENDING)
			n++;
	return n;
}

void
smtp_delivery_fail(struct smtp_delivery *d, bool bounce, const char *dsn,
    const char *relay, const char *fmt, ...)
{
	va_list ap;
	char *text;
	size_t i;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	for (i = 0; i < d->nrcpts; i++) {
		if (d->rcpts[i].status != SMTP_RCPT_PENDING)
			continue;
		smtp_rcpt_set(&d->rcpts[i], bounce ? SMTP_RCPT_BOUNCE :
		    SMTP_RCPT_PENDING, dsn, relay, "%s", text);
	}
	free(text);
}

/* "4.x.y" for a reply's enhanced code when a failure is made soft. */
static void
smtp_soft_dsn(char *dst, size_t size, const char *dsn)
{
	(void)snprintf(dst, size, "4%s", dsn + 1);
}

/* A failed reply r to RCPT TO for one recipient: 5xx bounces, 4xx stays
 * pending for the next server. */
static void
smtp_fail_rcpt(struct smtp_rcpt *rc, struct smtp_conn *c,
    struct smtp_reply *r)
{
	smtp_rcpt_set(rc, r->code >= 500 ? SMTP_RCPT_BOUNCE :
	    SMTP_RCPT_PENDING, smtp_reply_dsn(r), c->relay,
	    "host %s said: %s (in reply to RCPT TO command)", c->hostip,
	    buf_cstr(&r->text));
}

/*
 * A failed reply r to command cmd, for every recipient still pending
 * (accepted_only: only those the server accepted in this session).
 * 5xx bounces, 4xx leaves them pending for the next server.
 */
static void
smtp_fail_reply(struct smtp_delivery *d, struct smtp_conn *c,
    struct smtp_reply *r, const char *cmd, bool accepted_only)
{
	enum smtp_rcpt_status st = r->code >= 500 ? SMTP_RCPT_BOUNCE :
	    SMTP_RCPT_PENDING;
	size_t i;

	for (i = 0; i < d->nrcpts; i++) {
		struct smtp_rcpt *rc = &d->rcpts[i];

		if (rc->status != SMTP_RCPT_PENDING ||
		    (accepted_only && !rc->accepted))
			continue;
		smtp_rcpt_set(rc, st, smtp_reply_dsn(r), c->relay,
		    "host %s said: %s (in reply to %s command)", c->hostip,
		    buf_cstr(&r->text), cmd);
	}
}

/*
 * The connection broke or timed out while doing what; pending recipients
 * get the reason.  final_for_accepted: recipients the server accepted
 * are deferred for good (the message may have arrived: trying the next
 * server could deliver it twice).
 */
static void
smtp_fail_io(struct smtp_delivery *d, struct smtp_conn *c, const char *what,
    bool final_for_accepted)
{
	char text[1280];
	size_t i;

	switch (c->err) {
	case SMTP_CONN_TIMEOUT:
		(void)snprintf(text, sizeof(text), "conversation with %s "
		    "timed out while %s", c->hostip, what);
		break;
	case SMTP_CONN_PROTO:
		(void)snprintf(text, sizeof(text), "%s while %s from %s",
		    c->error, what, c->hostip);
		break;
	default:
		(void)snprintf(text, sizeof(text), "lost connection with %s "
		    "while %s", c->hostip, what);
		break;
	}
	for (i = 0; i < d->nrcpts; i++) {
		struct smtp_rcpt *rc = &d->rcpts[i];

		if (rc->status != SMTP_RCPT_PENDING)
			continue;
		smtp_rcpt_set(rc, final_for_accepted && rc->accepted ?
		    SMTP_RCPT_DEFER : SMTP_RCPT_PENDING, "4.4.2", c->relay,
		    "%s", text);
	}
}

/* Seconds a QUIT after a failed transaction waits for its 221. */
#define SMTP_QUIT_WAIT	2

/* End a session that is not cached: QUIT when it still works. */
static enum smtp_session_result
smtp_session_end(struct smtp_delivery *d, struct smtp_conn **cp)
{
	if (*cp != NULL && (*cp)->err == SMTP_CONN_OK)
		smtp_conn_quit(cp, SMTP_QUIT_WAIT);
	smtp_conn_free(cp);
	return smtp_delivery_pending(d) == 0 ? SMTP_SESS_DONE :
	    SMTP_SESS_NEXT;
}

/* Send one command line and read its reply. */
static int
smtp_command(struct smtp_conn *c, const char *line, struct smtp_reply *r,
    unsigned timeout)
{
	size_t len = strlen(line);
	char *cmd = xmalloc(len + 3);
	int ret;

	memcpy(cmd, line, len);
	memcpy(cmd + len, "\r\n", 3);
	ret = smtp_conn_write(c, cmd, len + 2, timeout);
	free(cmd);
	if (ret < 0)
		return -1;
	return smtp_conn_read_reply(c, r, timeout);
}

/* ---- greeting, EHLO, STARTTLS, AUTH ---- */

/*
 * EHLO, or HELO when EHLO is refused with 5xx (RFC 5321 §4.1.4).
 * 0 done, -1 failed (recipients updated).
 */
static int
smtp_ehlo(struct smtp_delivery *d, struct smtp_conn *c, struct smtp_reply *r,
    bool final)
{
	char *line = xasprintf("EHLO %s", d->set->helo_name);
	int ret;

	ret = smtp_command(c, line, r, d->set->helo_timeout);
	free(line);
	if (ret < 0) {
		smtp_fail_io(d, c, "performing the EHLO handshake", false);
		return -1;
	}
	if (r->code / 100 == 2) {
		smtp_features_parse(&c->feat, r);
		c->esmtp = true;
	} else if (r->code >= 500) {
		line = xasprintf("HELO %s", d->set->helo_name);
		ret = smtp_command(c, line, r, d->set->helo_timeout);
		free(line);
		if (ret < 0) {
			smtp_fail_io(d, c, "performing the HELO handshake",
			    false);
			return -1;
		}
		if (r->code / 100 != 2) {
			smtp_fail_reply(d, c, r, "HELO", false);
			return -1;
		}
		smtp_features_parse(&c->feat, r);
		/* HELO: no extensions, whatever the text said. */
		c->feat.flags = 0;
		c->esmtp = false;
	} else {
		smtp_fail_reply(d, c, r, "EHLO", false);
		return -1;
	}
	/*
	 * A server that calls itself by our name is us (or a copy of our
	 * configuration): a mail loop.  As Postfix does: the last server
	 * bounces it, another one is skipped.
	 */
	if (str_case_eq(c->feat.name, d->set->myhostname)) {
		if (final)
			smtp_delivery_fail(d, true, "5.4.6", c->relay,
			    "mail for %s loops back to myself", d->domain);
		else
			smtp_delivery_fail(d, false, "4.4.6", c->relay,
			    "host %s greeted me with my own hostname %s",
			    c->hostip, d->set->myhostname);
		return -1;
	}
	return 0;
}

/*
 * STARTTLS per $smtp_tls_security_level.  0 go on (with or without TLS),
 * -1 failed (recipients updated), 1 TLS handshake failed at "may": the
 * caller tries again without TLS.
 */
static int
smtp_starttls(struct smtp_delivery *d, struct smtp_conn *c,
    struct smtp_reply *r, bool final)
{
	const struct smtp_settings *set = d->set;
	struct tls_client_ctx *ctx;
	const char *trust, *servername;
	bool mandatory = set->tls_level >= SMTP_TLS_ENCRYPT;

	if (!(c->feat.flags & SMTP_FEAT_STARTTLS)) {
		if (!mandatory)
			return 0;
		smtp_delivery_fail(d, false, "4.7.4", c->relay, "TLS is "
		    "required, but was not offered by host %s", c->hostip);
		return -1;
	}
	ctx = set->tls_level >= SMTP_TLS_VERIFY ? set->tls_vctx : set->tls_ctx;
	if (ctx == NULL) {
		if (!mandatory)
			return 0;	/* logged at settings time */
		smtp_delivery_fail(d, false, "4.7.5", c->relay, "TLS is "
		    "required, but the TLS client is not available: %s",
		    set->tls_error != NULL ? set->tls_error : "?");
		return -1;
	}
	if (smtp_command(c, "STARTTLS", r, set->starttls_timeout) < 0) {
		smtp_fail_io(d, c, "sending STARTTLS", false);
		return -1;
	}
	if (r->code != 220) {
		if (!mandatory)
			return 0;	/* "may": go on in plaintext */
		smtp_delivery_fail(d, false, "4.7.4", c->relay, "TLS is "
		    "required, but host %s refused to start TLS: %s",
		    c->hostip, buf_cstr(&r->text));
		return -1;
	}
	/* secure: the certificate must name the next hop, which DNS did not
	 * give us (Postfix's smtp_tls_secure_cert_match = nexthop); other
	 * levels: the server's name. */
	servername = set->tls_level == SMTP_TLS_SECURE ? d->domain : c->host;
	if (smtp_conn_starttls(c, ctx, servername, set->starttls_timeout) <
	    0) {
		log_info("SSL_connect error to %s: %s", c->relay, c->error);
		if (!mandatory)
			return 1;
		smtp_delivery_fail(d, false, "4.7.5", c->relay, "Cannot start "
		    "TLS: handshake failure with %s: %s", c->hostip, c->error);
		return -1;
	}
	if (set->tls_level >= SMTP_TLS_VERIFY) {
		if (!smtp_conn_tls_verified(c)) {
			smtp_delivery_fail(d, false, "4.7.5", c->relay,
			    "Server certificate not verified");
			return -1;
		}
		trust = "Verified";
	} else
		trust = smtp_conn_tls_verified(c) ? "Trusted" : "Untrusted";
	log_info("%s TLS connection established to %s: %s", trust, c->relay,
	    c->tls_info);
	(void)final;
	return 0;
}

/* AUTH when a password is known.  0 go on, -1 failed. */
static int
smtp_auth(struct smtp_delivery *d, struct smtp_conn *c)
{
	char *user = NULL, *pass = NULL, err[768];
	const char *why;
	int r, code;

	if (!d->set->sasl_enable)
		return 0;
	r = smtp_sasl_lookup(d->set, d->nexthop, d->domain, c->host,
	    c->port, &user, &pass, &why);
	if (r < 0) {
		smtp_delivery_fail(d, false, "4.7.0", c->relay, "%s", why);
		return -1;
	}
	/* No password, or a server that does not want one: no AUTH. */
	if (r == 0 || !(c->feat.flags & SMTP_FEAT_AUTH) || !c->esmtp) {
		if (r > 0) {
			explicit_bzero(pass, strlen(pass));
			free(pass);
			free(user);
		}
		return 0;
	}
	r = smtp_sasl_auth(d->set, c, c->tls != NULL, user, pass, &code, err,
	    sizeof(err));
	explicit_bzero(pass, strlen(pass));
	free(pass);
	free(user);
	if (r == 1) {
		c->authed = true;
		return 0;
	}
	/* Postfix's smtp_sasl_auth_soft_bounce: an authentication failure
	 * is the admin's to fix; defer and try the next server. */
	smtp_delivery_fail(d, false, r == 0 ? "4.7.0" : "4.7.8", c->relay,
	    "%s", err);
	(void)code;
	return -1;
}

/* ---- the transaction ---- */

static bool
smtp_has_8bit(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/*
 * Read up to max bytes of the stored message's header block into b.
 * Returns the length of the header block including its empty line (or
 * the whole message when it has no body), or 0 when the block is longer
 * than max or unreadable.
 */
static size_t
smtp_read_headers(struct smtp_delivery *d, struct buf *b, size_t max)
{
	size_t want = (off_t)max < d->msg.msg_size ? max :
	    (size_t)d->msg.msg_size;
	ssize_t n;
	char *end;

	buf_reset(b);
	if (buf_reserve(b, want + 1) < 0)
		return 0;
	n = pread(d->fd, b->data, want, d->msg.msg_offset);
	if (n < 0 || (size_t)n != want)
		return 0;
	b->len = want;
	if (want > 0 && b->data[0] == '\n')
		return 1;
	end = memmem(b->data, b->len, "\n\n", 2);
	if (end != NULL)
		return (size_t)(end - b->data) + 2;
	if ((off_t)want == d->msg.msg_size)
		return want;	/* headers only */
	return 0;
}

/*
 * Does the message need SMTPUTF8 (RFC 6531)?  An address in UTF-8
 * always does (RFC 6531 §3.2: such an address cannot be given without
 * it).  A header in UTF-8 does when the sender asked for SMTPUTF8; a
 * message whose envelope and headers are ASCII goes to a server without
 * SMTPUTF8 unchanged, as with Postfix's smtputf8_autodetect.
 */
static bool
smtp_need_utf8(struct smtp_delivery *d)
{
	struct buf b;
	size_t i, hlen;

	if (d->need_utf8_known)
		return d->need_utf8;
	d->need_utf8_known = true;
	d->need_utf8 = smtp_has_8bit(d->sender, strlen(d->sender));
	for (i = 0; i < d->nrcpts && !d->need_utf8; i++)
		d->need_utf8 = smtp_has_8bit(d->rcpts[i].out_addr,
		    strlen(d->rcpts[i].out_addr));
	if (!d->need_utf8 && d->msg.smtputf8) {
		buf_init(&b, 0);
		hlen = smtp_read_headers(d, &b, SMTP_MAX_REWRITE_HEADERS);
		/* Unreadable or huge: assume the worst. */
		d->need_utf8 = hlen == 0 || smtp_has_8bit(b.data, hlen);
		buf_free(&b);
	}
	return d->need_utf8;
}

/* A string safe to put on a command line as a parameter value. */
static bool
smtp_param_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/*
 * MAIL FROM.  size: the bytes the server will receive (RFC 1870 §3),
 * eight: the body that goes is 8-bit.
 */
static void
smtp_mail_cmd(struct smtp_delivery *d, struct smtp_conn *c, bool utf8,
    off_t size, bool eight, struct buf *out)
{
	const struct queue_msg *m = &d->msg;

	(void)buf_printf(out, "MAIL FROM:<%s>", d->sender);
	if (!c->esmtp)
		goto end;
	if (c->feat.flags & SMTP_FEAT_SIZE)
		(void)buf_printf(out, " SIZE=%lld", (long long)size);
	/* RFC 6152 §2: 8-bit content is declared, whether the client
	 * declared it to us or not (local submissions often do not). */
	if (eight && (c->feat.flags & SMTP_FEAT_8BITMIME))
		(void)buf_append_str(out, " BODY=8BITMIME");
	if (utf8)
		(void)buf_append_str(out, " SMTPUTF8");
	if (c->feat.flags & SMTP_FEAT_DSN) {
		/* RFC 3461 §4.3, §4.4: passed on as the sender gave them. */
		if (m->ret == QUEUE_RET_FULL)
			(void)buf_append_str(out, " RET=FULL");
		else if (m->ret == QUEUE_RET_HDRS)
			(void)buf_append_str(out, " RET=HDRS");
		if (m->envid != NULL) {
			char *x = xtext_encode(m->envid, strlen(m->envid));

			(void)buf_printf(out, " ENVID=%s", x);
			free(x);
		}
	}
end:
	(void)buf_append(out, "\r\n", 2);
}

static void
smtp_rcpt_cmd(struct smtp_delivery *d, struct smtp_conn *c,
    const struct smtp_rcpt *r, struct buf *out)
{
	const struct queue_rcpt *q = &d->msg.rcpts[r->idx];

	(void)buf_printf(out, "RCPT TO:<%s>", r->out_addr);
	if (c->esmtp && (c->feat.flags & SMTP_FEAT_DSN)) {
		if (q->notify & QUEUE_NOTIFY_NEVER)
			(void)buf_append_str(out, " NOTIFY=NEVER");
		else if (q->notify != 0) {
			const char *sep = " NOTIFY=";

			if (q->notify & QUEUE_NOTIFY_SUCCESS) {
				(void)buf_printf(out, "%sSUCCESS", sep);
				sep = ",";
			}
			if (q->notify & QUEUE_NOTIFY_FAILURE) {
				(void)buf_printf(out, "%sFAILURE", sep);
				sep = ",";
			}
			if (q->notify & QUEUE_NOTIFY_DELAY)
				(void)buf_printf(out, "%sDELAY", sep);
		}
		if (q->orcpt != NULL && smtp_param_ok(q->orcpt))
			(void)buf_printf(out, " ORCPT=%s", q->orcpt);
	}
	(void)buf_append(out, "\r\n", 2);
}

/*
 * $smtp_generic_maps on the header block hdr[0..len): each address
 * field whose addresses change is written anew as "Name: value" (one
 * line; the encoder adds CRLF), every other byte is copied.
 */
static void
smtp_rewrite_headers(const char *hdr, size_t len, struct buf *out)
{
	size_t pos = 0;

	while (pos < len) {
		size_t end = pos, colon;
		char *name, *value, *nv;
		struct buf v;

		/* One field: a line and its continuation lines. */
		for (;;) {
			const char *nl = memchr(hdr + end, '\n', len - end);

			end = nl == NULL ? len : (size_t)(nl - hdr) + 1;
			if (end >= len || (hdr[end] != ' ' && hdr[end] != '\t'))
				break;
		}
		for (colon = pos; colon < end && hdr[colon] != ':' &&
		    hdr[colon] != '\n'; colon++)
			;
		/* Which fields hold addresses is rewrite's to say. */
		if (colon >= end || hdr[colon] != ':') {
			(void)buf_append(out, hdr + pos, end - pos);
			pos = end;
			continue;
		}
		/* Unfold: drop the line ends inside the field. */
		buf_init(&v, 0);
		for (size_t i = colon + 1; i < end; i++)
			if (hdr[i] != '\n' && hdr[i] != '\r')
				(void)buf_append_char(&v, hdr[i]);
		name = xstrndup(hdr + pos, colon - pos);
		(void)buf_cstr(&v);
		value = xstrdup(str_trim(v.data));
		smtp_cfg_rdlock();
		nv = rewrite_header_value(name, value, REWRITE_HDR_GENERIC);
		smtp_cfg_unlock();
		if (nv == NULL)
			(void)buf_append(out, hdr + pos, end - pos);
		else
			(void)buf_printf(out, "%s: %s\n", name, nv);
		free(nv);
		free(name);
		free(value);
		buf_free(&v);
		pos = end;
	}
}

/* ---- the message as it goes out ---- */

/* The stored message with $smtp_generic_maps applied to its header. */
static void
smtp_body_plain(struct smtp_delivery *d, struct smtp_body *b)
{
	struct buf hdr, pre;
	off_t off = d->msg.msg_offset, end = off + d->msg.msg_size;
	size_t hlen;

	if (d->set->generic) {
		buf_init(&hdr, 0);
		buf_init(&pre, 0);
		hlen = smtp_read_headers(d, &hdr, SMTP_MAX_REWRITE_HEADERS);
		if (hlen > 0) {
			smtp_rewrite_headers(hdr.data, hlen, &pre);
			smtp_body_add(b, SMTP_SEG_TEXT, 0, 0, pre.data,
			    pre.len);
			off += (off_t)hlen;
		}
		buf_free(&pre);
		buf_free(&hdr);
	}
	smtp_body_add(b, SMTP_SEG_FILE, off, end - off, NULL, 0);
}

/* Reads a struct smtp_body piece by piece. */
struct smtp_src {
	const struct smtp_body *b;
	size_t		 seg;		/* current segment */
	off_t		 pos;		/* bytes of it done */
	int		 fd;
	struct smtp_qp	 qp;
	char		*chunk;
};

static void
smtp_src_init(struct smtp_src *s, const struct smtp_body *b, int fd)
{
	memset(s, 0, sizeof(*s));
	s->b = b;
	s->fd = fd;
	s->chunk = xmalloc(SMTP_READ_CHUNK);
	smtp_qp_init(&s->qp);
}

static void
smtp_src_free(struct smtp_src *s)
{
	free(s->chunk);
	s->chunk = NULL;
}

static bool
smtp_src_eof(const struct smtp_src *s)
{
	return s->seg >= s->b->nsegs;
}

/*
 * Append the next piece of the message (at most SMTP_READ_CHUNK bytes
 * read, more when quoted-printable encoded) to out.  0, or -1 when the
 * queue file is shorter than its record says.
 */
static int
smtp_src_read(struct smtp_src *s, struct buf *out)
{
	const struct smtp_seg *g;
	size_t want;
	ssize_t n;

	if (smtp_src_eof(s))
		return 0;
	g = &s->b->segs[s->seg];
	if (g->kind == SMTP_SEG_TEXT) {
		(void)buf_append(out, g->text, g->tlen);
		s->seg++;
		return 0;
	}
	want = g->len - s->pos < SMTP_READ_CHUNK ? (size_t)(g->len - s->pos) :
	    SMTP_READ_CHUNK;
	do
		n = pread(s->fd, s->chunk, want, g->off + s->pos);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	if (g->kind == SMTP_SEG_QP)
		smtp_qp_feed(&s->qp, s->chunk, (size_t)n, out);
	else
		(void)buf_append(out, s->chunk, (size_t)n);
	s->pos += n;
	if (s->pos >= g->len) {
		if (g->kind == SMTP_SEG_QP) {
			smtp_qp_finish(&s->qp, out);
			smtp_qp_init(&s->qp);
		}
		s->seg++;
		s->pos = 0;
	}
	return 0;
}

/*
 * The size of b on the wire (RFC 1870 §3: CRLF line ends, without the
 * dot-stuffing and the terminator of DATA), and whether its bytes hold
 * 8-bit ones.  0, or -1 on a read error.
 */
static int
smtp_body_measure(int fd, const struct smtp_body *b, off_t *size_r,
    bool *eight_r)
{
	struct smtp_src src;
	struct smtp_enc enc;
	struct buf raw, out;
	off_t size = 0;
	int ret = 0;

	smtp_src_init(&src, b, fd);
	smtp_enc_init(&enc, false);
	buf_init(&raw, 0);
	buf_init(&out, 0);
	*eight_r = false;
	while (!smtp_src_eof(&src)) {
		buf_reset(&raw);
		if (smtp_src_read(&src, &raw) < 0) {
			ret = -1;
			break;
		}
		if (!*eight_r)
			*eight_r = smtp_has_8bit(raw.data, raw.len);
		buf_reset(&out);
		smtp_enc_feed(&enc, raw.data, raw.len, &out);
		size += (off_t)out.len;
	}
	buf_reset(&out);
	smtp_enc_finish(&enc, &out);
	size += (off_t)out.len;
	*size_r = size;
	buf_free(&raw);
	buf_free(&out);
	smtp_src_free(&src);
	return ret;
}

/* Work out d->body, d->wire_size and d->has_8bit once.  0 or -1. */
static int
smtp_body_prepare(struct smtp_delivery *d)
{
	bool eight;

	if (d->body_known)
		return 0;
	smtp_body_plain(d, &d->body);
	if (smtp_body_measure(d->fd, &d->body, &d->wire_size, &eight) < 0) {
		smtp_body_free(&d->body);
		return -1;
	}
	d->has_8bit = eight || d->msg.body_8bit;
	d->body_known = true;
	return 0;
}

/*
 * The body for a server without 8BITMIME: the downgraded one when the
 * message can be converted (once), else the message as it is.  NULL on
 * a read error.
 */
static const struct smtp_body *
smtp_body_downgrade(struct smtp_delivery *d, off_t *size_r)
{
	const struct smtp_seg *top;
	const char *why;
	bool eight;
	int r;

	if (d->down_state == 0) {
		top = d->body.nsegs > 0 && d->body.segs[0].kind ==
		    SMTP_SEG_TEXT ? &d->body.segs[0] : NULL;
		r = smtp_mime_downgrade(d->fd, d->msg.msg_offset,
		    d->msg.msg_size, top != NULL ? top->text : NULL,
		    top != NULL ? top->tlen : 0, &d->down, &why);
		if (r < 0)
			return NULL;
		if (r > 0 && smtp_body_measure(d->fd, &d->down, &d->down_size,
		    &eight) < 0) {
			smtp_body_free(&d->down);
			return NULL;
		}
		d->down_state = r > 0 ? 1 : -1;
		if (r == 0)
			log_info("%s: 8-bit message not converted for a server "
			    "without 8BITMIME, sent as it is: %s", d->queue_id,
			    why);
	}
	if (d->down_state > 0) {
		*size_r = d->down_size;
		return &d->down;
	}
	*size_r = d->wire_size;
	return &d->body;
}

void
smtp_delivery_free_body(struct smtp_delivery *d)
{
	smtp_body_free(&d->body);
	smtp_body_free(&d->down);
	d->body_known = false;
	d->down_state = 0;
}

/*
 * The message after a 354: encoded, dot-stuffed, terminated, then the
 * final reply.  0 reply in r, -1 I/O failure (recipients updated), -2
 * queue file read error.
 */
static int
smtp_send_data(struct smtp_delivery *d, struct smtp_conn *c,
    const struct smtp_body *b, struct smtp_reply *r)
{
	struct smtp_src src;
	struct smtp_enc enc;
	struct buf raw, out;
	int ret = 0;

	smtp_src_init(&src, b, d->fd);
	smtp_enc_init(&enc, true);
	buf_init(&raw, 0);
	buf_init(&out, 0);
	while (!smtp_src_eof(&src)) {
		buf_reset(&raw);
		if (smtp_src_read(&src, &raw) < 0) {
			ret = -2;
			goto out;
		}
		smtp_enc_feed(&enc, raw.data, raw.len, &out);
		if (out.len >= SMTP_READ_CHUNK &&
		    smtp_conn_flush(c, &out, d->set->data_xfer_timeout) < 0) {
			smtp_fail_io(d, c, "sending message body", false);
			ret = -1;
			goto out;
		}
	}
	smtp_enc_finish(&enc, &out);
	if (smtp_conn_flush(c, &out, d->set->data_xfer_timeout) < 0) {
		smtp_fail_io(d, c, "sending message body", false);
		ret = -1;
		goto out;
	}
	if (smtp_conn_read_reply(c, r, d->set->data_done_timeout) < 0) {
		/* RFC 1047: the server may have the message; the next
		 * server must not get a second copy now. */
		smtp_fail_io(d, c, "sending end of data -- message may be "
		    "sent more than once", true);
		ret = -1;
	}
out:
	smtp_src_free(&src);
	buf_free(&raw);
	buf_free(&out);
	return ret;
}

/*
 * The message as BDAT chunks (RFC 3030 §2): "BDAT n" then n bytes, the
 * last one "BDAT n LAST"; every chunk's reply is awaited.  Returns like
 * smtp_send_data(); a failed intermediate chunk's reply is left in r.
 */
static int
smtp_send_bdat(struct smtp_delivery *d, struct smtp_conn *c,
    const struct smtp_body *b, struct smtp_reply *r)
{
	struct smtp_src src;
	struct smtp_enc enc;
	struct buf raw, out, cmd;
	int ret = 0;
	bool last = false;

	smtp_src_init(&src, b, d->fd);
	smtp_enc_init(&enc, false);
	buf_init(&raw, 0);
	buf_init(&out, 0);
	buf_init(&cmd, 0);
	while (!last) {
		while (out.len < SMTP_BDAT_CHUNK && !smtp_src_eof(&src)) {
			buf_reset(&raw);
			if (smtp_src_read(&src, &raw) < 0) {
				ret = -2;
				goto out;
			}
			smtp_enc_feed(&enc, raw.data, raw.len, &out);
		}
		if (smtp_src_eof(&src)) {
			smtp_enc_finish(&enc, &out);
			last = true;
		}
		buf_reset(&cmd);
		(void)buf_printf(&cmd, "BDAT %zu%s\r\n", out.len,
		    last ? " LAST" : "");
		(void)buf_append(&cmd, out.data, out.len);
		buf_reset(&out);
		if (smtp_conn_flush(c, &cmd, d->set->data_xfer_timeout) < 0) {
			smtp_fail_io(d, c, "sending message body", false);
			ret = -1;
			goto out;
		}
		if (smtp_conn_read_reply(c, r, last ?
		    d->set->data_done_timeout : d->set->data_xfer_timeout) <
		    0) {
			smtp_fail_io(d, c, last ? "sending end of data -- "
			    "message may be sent more than once" :
			    "sending message body", last);
			ret = -1;
			goto out;
		}
		if (r->code / 100 != 2)
			break;
	}
out:
	smtp_src_free(&src);
	buf_free(&raw);
	buf_free(&out);
	buf_free(&cmd);
	return ret;
}

/* The queue file is shorter than its records say: defer everything. */
static void
smtp_file_error(struct smtp_delivery *d)
{
	size_t i;

	log_error("%s: cannot read the message from the queue file",
	    d->queue_id);
	smtp_delivery_fail(d, false, "4.3.0", NULL, "cannot read the "
	    "message from the queue file");
	for (i = 0; i < d->nrcpts; i++)
		if (d->rcpts[i].status == SMTP_RCPT_PENDING)
			d->rcpts[i].status = SMTP_RCPT_DEFER;
}

/* RSET after a transaction, so the session can go into the cache. */
static bool
smtp_rset(struct smtp_conn *c, struct smtp_reply *r)
{
	return smtp_command(c, "RSET", r, SMTP_RSET_TIMEOUT) == 0 &&
	    r->code / 100 == 2;
}

static enum smtp_session_result
smtp_transaction(struct smtp_delivery *d, struct smtp_conn **cp,
    struct smtp_reply *r, bool reused)
{
	struct smtp_conn *c = *cp;
	const struct smtp_settings *set = d->set;
	bool pipe = c->esmtp && (c->feat.flags & SMTP_FEAT_PIPELINING);
	bool bdat = c->esmtp && (c->feat.flags & SMTP_FEAT_CHUNKING);
	bool has8bitmime = c->esmtp && (c->feat.flags & SMTP_FEAT_8BITMIME);
	bool utf8 = false, ok;
	const struct smtp_body *body;
	off_t size;
	struct buf out;
	size_t i, nacc = 0, *order, norder = 0;
	int ret;

	/* What the server must support for this message. */
	if (d->msg.smtputf8 || smtp_need_utf8(d)) {
		if (c->esmtp && (c->feat.flags & SMTP_FEAT_SMTPUTF8))
			utf8 = true;
		else if (smtp_need_utf8(d)) {
			/* RFC 6531 §3.7.5: no downgrade is defined. */
			smtp_delivery_fail(d, true, "5.6.7", c->relay,
			    "SMTPUTF8 is required, but was not offered by "
			    "host %s", c->hostip);
			goto rset;
		}
	}
	/* The bytes that go: as stored, or 7-bit for a server without
	 * 8BITMIME (RFC 6152 §3; smtp_mime.c). */
	if (smtp_body_prepare(d) < 0) {
		smtp_file_error(d);
		goto rset;
	}
	body = &d->body;
	size = d->wire_size;
	if (d->has_8bit && !has8bitmime &&
	    (body = smtp_body_downgrade(d, &size)) == NULL) {
		smtp_file_error(d);
		goto rset;
	}
	if (c->esmtp && (c->feat.flags & SMTP_FEAT_SIZE) &&
	    c->feat.size_max > 0 &&
	    (unsigned long long)size > c->feat.size_max) {
		smtp_delivery_fail(d, true, "5.3.4", c->relay, "message size "
		    "%lld exceeds size limit %llu of server %s",
		    (long long)size, c->feat.size_max, c->hostip);
		goto rset;
	}

	buf_init(&out, 0);
	order = xreallocarray(NULL, d->nrcpts + 1, sizeof(*order));
	d->xfer_start_ms = smtp_now_ms();
	smtp_mail_cmd(d, c, utf8, size, d->has_8bit && body == &d->body,
	    &out);
	if (!pipe) {
		ret = smtp_conn_flush(c, &out, set->mail_timeout);
		if (ret == 0)
			ret = smtp_conn_read_reply(c, r, set->mail_timeout);
		if (ret < 0)
			goto mail_io;
		if (r->code / 100 != 2)
			goto mail_failed;
	}
	for (i = 0; i < d->nrcpts; i++) {
		struct smtp_rcpt *rc = &d->rcpts[i];

		rc->accepted = false;
		if (rc->status != SMTP_RCPT_PENDING)
			continue;
		order[norder++] = i;
		smtp_rcpt_cmd(d, c, rc, &out);
		if (pipe)
			continue;
		if (smtp_conn_flush(c, &out, set->rcpt_timeout) < 0 ||
		    smtp_conn_read_reply(c, r, set->rcpt_timeout) < 0) {
			smtp_fail_io(d, c, "sending RCPT TO", false);
			goto fail;
		}
		if (r->code / 100 == 2) {
			rc->accepted = true;
			nacc++;
		} else
			smtp_fail_rcpt(rc, c, r);
	}
	if (pipe) {
		/* MAIL, every RCPT and DATA in one write (RFC 2920 §3.1). */
		if (!bdat)
			(void)buf_append_str(&out, "DATA\r\n");
		if (smtp_conn_flush(c, &out, set->mail_timeout) < 0)
			goto mail_io;
		if (smtp_conn_read_reply(c, r, set->mail_timeout) < 0)
			goto mail_io;
		ok = r->code / 100 == 2;
		if (!ok) {
			/* Keep the reply: the ones to RCPT and DATA that
			 * follow are consequences. */
			struct smtp_reply mr;

			smtp_reply_init(&mr);
			smtp_fail_reply(d, c, r, "MAIL FROM", false);
			for (i = 0; i < norder + (bdat ? 0 : 1); i++)
				if (smtp_conn_read_reply(c, &mr,
				    set->rcpt_timeout) < 0)
					break;
			smtp_reply_free(&mr);
			goto fail;
		}
		for (i = 0; i < norder; i++) {
			struct smtp_rcpt *rc = &d->rcpts[order[i]];

			if (smtp_conn_read_reply(c, r, set->rcpt_timeout) < 0) {
				smtp_fail_io(d, c, "sending RCPT TO", false);
				goto fail;
			}
			if (r->code / 100 == 2) {
				rc->accepted = true;
				nacc++;
			} else
				smtp_fail_rcpt(rc, c, r);
		}
	}
	if (bdat) {
		if (nacc == 0)
			goto rset_out;
		ret = smtp_send_bdat(d, c, body, r);
		if (ret == -2)
			goto file_error;
		if (ret < 0)
			goto fail;
		goto result;
	}
	/* DATA (already sent when pipelining). */
	if (!pipe && nacc == 0)
		goto rset_out;
	if (!pipe) {
		if (smtp_command(c, "DATA", r, set->data_init_timeout) < 0) {
			smtp_fail_io(d, c, "sending DATA command", false);
			goto fail;
		}
	} else if (smtp_conn_read_reply(c, r, set->data_init_timeout) < 0) {
		smtp_fail_io(d, c, "sending DATA command", false);
		goto fail;
	}
	if (r->code != 354) {
		if (nacc > 0)
			smtp_fail_reply(d, c, r, "DATA", true);
		goto rset_out;
	}
	if (nacc == 0) {
		/* RFC 2920 §3.1: DATA was accepted although no recipient
		 * was; an empty message ends it, which the server refuses. */
		if (smtp_conn_write(c, ".\r\n", 3,
		    set->data_xfer_timeout) < 0 ||
		    smtp_conn_read_reply(c, r, set->data_done_timeout) < 0)
			goto fail;
		goto rset_out;
	}
	ret = smtp_send_data(d, c, body, r);
	if (ret == -2)
		goto file_error;
	if (ret < 0)
		goto fail;
result:
	if (r->code / 100 == 2) {
		for (i = 0; i < d->nrcpts; i++) {
			if (d->rcpts[i].status != SMTP_RCPT_PENDING ||
			    !d->rcpts[i].accepted)
				continue;
			smtp_rcpt_set(&d->rcpts[i], SMTP_RCPT_SENT,
			    smtp_reply_dsn(r), c->relay, "%s",
			    buf_cstr(&r->text));
			/* RFC 3461 §5.2.2: NOTIFY went on only to a server
			 * that offers DSN; else qmgr says "relayed". */
			d->rcpts[i].relayed = !(c->esmtp &&
			    (c->feat.flags & SMTP_FEAT_DSN));
		}
	} else
		smtp_fail_reply(d, c, r, bdat ? "BDAT" : "end of DATA",
		    true);
rset_out:
	free(order);
	buf_free(&out);
rset:
	if (!smtp_rset(c, r))
		smtp_conn_free(cp);
	return smtp_delivery_pending(d) == 0 ? SMTP_SESS_DONE :
	    SMTP_SESS_NEXT;

mail_io:
	/* A cached session that died while idle: not this server's fault,
	 * nothing was answered yet. */
	if (reused) {
		free(order);
		buf_free(&out);
		smtp_conn_free(cp);
		return SMTP_SESS_STALE;
	}
	smtp_fail_io(d, c, "sending MAIL FROM", false);
	goto fail;
mail_failed:
	smtp_fail_reply(d, c, r, "MAIL FROM", false);
	goto fail;
file_error:
	smtp_file_error(d);
fail:
	free(order);
	buf_free(&out);
	return smtp_session_end(d, cp);
}

enum smtp_session_result
smtp_proto_session(struct smtp_delivery *d, struct smtp_conn **cp,
    bool reused, bool final, bool no_tls)
{
	struct smtp_conn *c = *cp;
	struct smtp_reply r;
	enum smtp_session_result res;
	int ret;

	smtp_reply_init(&r);
	if (reused) {
		res = smtp_transaction(d, cp, &r, true);
		smtp_reply_free(&r);
		return res;
	}
	if (smtp_conn_read_reply(c, &r, d->set->helo_timeout) < 0) {
		smtp_fail_io(d, c, "receiving the initial server greeting",
		    false);
		goto end;
	}
	if (r.code != 220) {
		char dsn[16];

		/*
		 * Postfix's smtp_skip_5xx_greeting: a server that does not
		 * want to talk now is skipped, 5xx or not; the next one may.
		 */
		smtp_soft_dsn(dsn, sizeof(dsn), smtp_reply_dsn(&r));
		smtp_delivery_fail(d, false, dsn, c->relay, "host %s refused "
		    "to talk to me: %s", c->hostip, buf_cstr(&r.text));
		goto end;
	}
	if (smtp_ehlo(d, c, &r, final) < 0)
		goto end;
	d->handshaken = true;
	if (d->set->tls_level != SMTP_TLS_NONE && !no_tls) {
		ret = smtp_starttls(d, c, &r, final);
		if (ret == 1) {
			smtp_reply_free(&r);
			smtp_conn_free(cp);
			return SMTP_SESS_RETRY_PLAIN;
		}
		if (ret < 0)
			goto end;
		if (c->tls != NULL) {
			/* RFC 3207 §4.2: forget what the server said before,
			 * ask again. */
			if (smtp_ehlo(d, c, &r, final) < 0)
				goto end;
		}
	}
	if (c->tls == NULL && d->set->tls_note_offer &&
	    (c->feat.flags & SMTP_FEAT_STARTTLS))
		log_info("Host offered STARTTLS: [%s]", c->host);
	if (smtp_auth(d, c) < 0)
		goto end;
	res = smtp_transaction(d, cp, &r, false);
	smtp_reply_free(&r);
	return res;
end:
	smtp_reply_free(&r);
	return smtp_session_end(d, cp);
}
