/*
 * bounce: RFC 3464 delivery status notifications, written as new queue
 * messages (see bounce.h).  The report is built in memory except for the
 * copy of the original message, which is streamed from its queue file.
 * The notice's own queue file says in its client record that it is a
 * notice ("bounce=1", or "bounce=2" for a postmaster copy about a
 * null-sender message), which is how qmgr avoids notices about notices.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "buf.h"
#include "cfg.h"
#include "limits_pst.h"
#include "queue_file.h"
#include "str.h"
#include "xmalloc.h"

#define BOUNCE_CHUNK		(64 * 1024)
/* A Diagnostic-Code line must stay well below 998 octets (RFC 5322 §2.1.1). */
#define BOUNCE_MAX_TEXT		800

static char bounce_errbuf[512];

/* RFC 5322 §3.3 date-time in local time, C locale names. */
static void
bounce_date(time_t t, char *dst, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;
	char sign = '+';

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(dst, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
	    off / 60, off % 60);
}

/* One line of text for a header field: controls become spaces, bounded. */
static char *
bounce_clean(const char *s)
{
	size_t len = strlen(s);
	char *out, *p;

	if (len > BOUNCE_MAX_TEXT)
		len = BOUNCE_MAX_TEXT;
	out = xstrndup(s, len);
	for (p = out; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return out;
}

/* "rfc822;bob+2Bx@example.com" -> "rfc822;bob+x@example.com" */
static char *
bounce_orcpt(const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *dec, *out, *clean;

	if (semi == NULL)
		return bounce_clean(orcpt);
	/* RFC 3461 §4.2: the address part is xtext; the report carries the
	 * address itself, as Postfix and Sendmail write it. */
	dec = xtext_decode(semi + 1);
	out = xasprintf("%.*s;%s", (int)(semi - orcpt), orcpt,
	    dec != NULL ? dec : semi + 1);
	free(dec);
	clean = bounce_clean(out);
	free(out);
	return clean;
}

/*
 * The server named by a relay "mx.example.org[192.0.2.1]:25": without
 * the port ("mx.example.org[192.0.2.1]"), or just the name.
 */
static char *
bounce_remote_host(const char *relay, bool with_ip)
{
	const char *end = strchr(relay, with_ip ? ']' : '[');
	char *host;

	if (end == NULL)
		host = with_ip ? xstrdup(relay) :
		    xstrndup(relay, strcspn(relay, ":"));
	else
		host = xstrndup(relay, (size_t)(end - relay) +
		    (with_ip ? 1 : 0));
	return host;
}

/*
 * The SMTP reply in a delivery agent's text, for Diagnostic-Code:
 * "smtp; ..." (RFC 3464 §2.3.6): the text itself when it is a reply
 * ("550 5.1.1 ..."), or what follows "said: " in the agent's wording
 * ("host mx[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT TO
 * command)").  NULL when the text holds no reply.
 */
static char *
bounce_smtp_reply(const char *text)
{
	const char *p = text, *said = strstr(text, " said: "), *end;

	if (said != NULL)
		p = said + 7;
	if (!(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	    p[2] >= '0' && p[2] <= '9' &&
	    (p[3] == ' ' || p[3] == '-' || p[3] == '\0')))
		return NULL;
	end = strstr(p, " (in reply to ");
	return xstrndup(p, end != NULL ? (size_t)(end - p) : strlen(p));
}

/* Whether the message holds bytes outside US-ASCII (8bit CTE needed). */
static bool
bounce_is_8bit(const struct queue_msg *msg, int fd, bool headers_only)
{
	char *chunk;
	off_t pos = 0;
	bool eight = false;

	if (msg->body_8bit || msg->smtputf8)
		return true;
	chunk = xmalloc(BOUNCE_CHUNK);
	while (pos < msg->msg_size && !eight) {
		size_t want = (size_t)(msg->msg_size - pos) < BOUNCE_CHUNK ?
		    (size_t)(msg->msg_size - pos) : BOUNCE_CHUNK;
		ssize_t n = pread(fd, chunk, want, msg->msg_offset + pos);
		ssize_t i;

		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if ((unsigned char)chunk[i] & 0x80) {
				eight = true;
				break;
			}
			if (headers_only && i > 0 && chunk[i] == '\n' &&
			    chunk[i - 1] == '\n')
				goto out;
		}
		pos += n;
	}
out:
	free(chunk);
	return eight;
}

/*
 * Copy the original message (or its header block) into the notice.
 * Returns 0, or -1 on a read or write error.
 */
static int
bounce_copy_original(struct queue_writer *w, const struct queue_msg *msg,
    int fd, bool headers_only)
{
	char *chunk = xmalloc(BOUNCE_CHUNK);
	off_t pos = 0;
	char last = '\n', prev = '\0';
	int ret = 0;

	while (pos < msg->msg_size) {
		size_t want = (size_t)(msg->msg_size - pos) < BOUNCE_CHUNK ?
		    (size_t)(msg->msg_size - pos) : BOUNCE_CHUNK;
		ssize_t n = pread(fd, chunk, want, msg->msg_offset + pos);
		size_t len;

		if (n <= 0) {
			ret = -1;
			break;
		}
		len = (size_t)n;
		if (headers_only) {
			size_t i;
			bool end = false;

			/* Stop at the blank line after the header block. */
			for (i = 0; i < len; i++) {
				char before = i > 0 ? chunk[i - 1] : prev;

				if (chunk[i] == '\n' && before == '\n') {
					len = i;
					end = true;
					break;
				}
				if (chunk[i] == '\n' && pos == 0 && i == 0) {
					len = 0;	/* no headers at all */
					end = true;
					break;
				}
			}
			if (len > 0) {
				if (queue_writer_write(w, chunk, len) < 0) {
					ret = -1;
					break;
				}
				last = chunk[len - 1];
			}
			if (end)
				break;
			prev = chunk[n - 1];
		} else {
			if (queue_writer_write(w, chunk, len) < 0) {
				ret = -1;
				break;
			}
			last = chunk[len - 1];
		}
		pos += n;
	}
	if (ret == 0 && last != '\n' && queue_writer_write(w, "\n", 1) < 0)
		ret = -1;
	free(chunk);
	return ret;
}

static void
bounce_human_part(struct buf *b, enum bounce_type type,
    const struct queue_msg *msg, const struct bounce_rcpt *rcpts, size_t n,
    const char *host, bool postmaster)
{
	char *reply;
	size_t i;

	buf_printf(b, "This is the mail system at host %s.\n\n", host);
	switch (type) {
	case BOUNCE_FAILED:
		if (postmaster)
			buf_printf(b, "A message with the null sender <> "
			    "could not be delivered to one or\nmore of its "
			    "recipients.  Its headers are attached.\n\n");
		else
			buf_printf(b, "Your message could not be delivered "
			    "to one or more of its recipients.\nThe reasons "
			    "are listed below; your message is attached.\n\n");
		buf_printf(b, "If you need help, write to the postmaster "
		    "of this system and include\nthis report.\n\n");
		break;
	case BOUNCE_DELAYED: {
		long long warn = cfg_get_time("delay_warning_time");
		long long life = msg->sender[0] == '\0' ?
		    cfg_get_time("bounce_queue_lifetime") :
		    cfg_get_time("maximal_queue_lifetime");

		/* Hours, as Postfix says; shorter warning times (tests,
		 * impatient sites) in their own unit. */
		long long n = warn >= 3600 ? (warn + 1800) / 3600 :
		    warn >= 60 ? (warn + 30) / 60 : warn;
		const char *unit = warn >= 3600 ? "hour" : warn >= 60 ?
		    "minute" : "second";

		buf_printf(b, "This is a warning only: you do not need to "
		    "send your message again.\n\n");
		buf_printf(b, "Your message has not been delivered after "
		    "%lld %s(s).  Delivery will be\ntried again until "
		    "the message is %lld day(s) old; you will hear again "
		    "if it\nfails for good.\n\n", n, unit,
		    (life + 86399) / 86400);
		break;
	}
	case BOUNCE_DELIVERED:
		buf_printf(b, "Your message was delivered to the recipients "
		    "listed below.  Where it went\ninto a mailbox this is "
		    "the last notice about it; where it was passed on\n"
		    "to another system, that system may still report "
		    "problems.\n\n");
		break;
	}
	for (i = 0; i < n; i++) {
		char *addr = bounce_clean(rcpts[i].addr);
		char *text = bounce_clean(rcpts[i].text);

		if (rcpts[i].remote != NULL && strstr(text, " said: ") ==
		    NULL && (reply = bounce_smtp_reply(text)) != NULL) {
			/* Say who answered, as Postfix words it. */
			char *host = bounce_remote_host(rcpts[i].remote, true);
			char *chost = bounce_clean(host);

			buf_printf(b, "<%s>: host %s said: %s\n", addr, chost,
			    text);
			free(chost);
			free(host);
			free(reply);
		} else
			buf_printf(b, "<%s>: %s\n", addr, text);
		free(addr);
		free(text);
	}
}

static void
bounce_status_part(struct buf *b, enum bounce_type type,
    const struct queue_msg *msg, const struct bounce_rcpt *rcpts, size_t n,
    const char *host)
{
	static const char *const actions[] = { "failed", "delayed",
	    "delivered" };
	char date[64], now_date[64];
	char *sender = bounce_clean(msg->sender), *reply;
	size_t i;

	/* RFC 3464 §2.2: per-message fields. */
	buf_printf(b, "Reporting-MTA: dns; %s\n", host);
	buf_printf(b, "X-Postern-Queue-ID: %s\n", msg->id);
	buf_printf(b, "X-Postern-Sender: rfc822; %s\n", sender);
	free(sender);
	if (msg->envid != NULL) {
		/* RFC 3461 §6.3 (a): decoded, no xtext. */
		char *envid = bounce_clean(msg->envid);

		buf_printf(b, "Original-Envelope-Id: %s\n", envid);
		free(envid);
	}
	bounce_date(msg->arrival, date, sizeof(date));
	buf_printf(b, "Arrival-Date: %s\n", date);
	bounce_date(time(NULL), now_date, sizeof(now_date));
	/* RFC 3464 §2.3: one block per recipient. */
	for (i = 0; i < n; i++) {
		char *addr = bounce_clean(rcpts[i].addr);
		char *text = bounce_clean(rcpts[i].text);

		buf_printf(b, "\nFinal-Recipient: rfc822; %s\n", addr);
		if (rcpts[i].orcpt != NULL) {
			char *orcpt = bounce_orcpt(rcpts[i].orcpt);

			buf_printf(b, "Original-Recipient: %s\n", orcpt);
			free(orcpt);
		}
		buf_printf(b, "Action: %s\n", rcpts[i].relayed ? "relayed" :
		    actions[type]);
		buf_printf(b, "Status: %s\n", rcpts[i].dsn);
		reply = NULL;
		if (rcpts[i].remote != NULL) {
			/* RFC 3464 §2.3.5, §2.3.6: who said what. */
			char *name = bounce_remote_host(rcpts[i].remote, false);
			char *cname = bounce_clean(name);

			buf_printf(b, "Remote-MTA: dns; %s\n", cname);
			free(cname);
			free(name);
			reply = bounce_smtp_reply(text);
		}
		if (reply != NULL)
			buf_printf(b, "Diagnostic-Code: smtp; %s\n", reply);
		else
			buf_printf(b, "Diagnostic-Code: X-Postern; %s\n", text);
		free(reply);
		buf_printf(b, "Last-Attempt-Date: %s\n", now_date);
		if (type == BOUNCE_DELAYED) {
			long long life = msg->sender[0] == '\0' ?
			    cfg_get_time("bounce_queue_lifetime") :
			    cfg_get_time("maximal_queue_lifetime");

			bounce_date(msg->arrival + (time_t)life, date,
			    sizeof(date));
			buf_printf(b, "Will-Retry-Until: %s\n", date);
		}
		free(addr);
		free(text);
	}
}

int
bounce_write(const char *queue_dir, const struct queue_msg *msg, int fd,
    enum bounce_type type, const struct bounce_rcpt *rcpts, size_t n,
    const char *to, bool postmaster, char *id_r, const char **error_r)
{
	static const char *const subjects[] = {
		"Undelivered Mail Returned to Sender",
		"Delayed Mail (still being retried)",
		"Successful Mail Delivery Report"
	};
	static const char *const descriptions[] = {
		"Undelivered Message", "Delayed Message", "Delivered Message"
	};
	const char *host = cfg_get("myhostname");
	struct queue_writer *w;
	struct timeval tv;
	struct buf b;
	char date[64], boundary[160];
	const char *err;
	bool full, eight, utf8;
	char *rec, *to_clean;

	/*
	 * The whole message is returned on RET=FULL or by default, when it
	 * is small enough (bounce_size_limit); otherwise, and for delay and
	 * success reports, only its headers (RFC 3461 §4.3, RFC 3462).
	 */
	full = type == BOUNCE_FAILED && msg->ret != QUEUE_RET_HDRS &&
	    msg->msg_size <= cfg_get_size("bounce_size_limit") && !postmaster;
	eight = bounce_is_8bit(msg, fd, !full);
	utf8 = msg->smtputf8;

	if ((w = queue_writer_new(queue_dir, &err)) == NULL) {
		snprintf(bounce_errbuf, sizeof(bounce_errbuf), "%s", err);
		*error_r = bounce_errbuf;
		return -1;
	}
	str_lcpy(id_r, queue_writer_id(w), QUEUE_ID_MAX);
	gettimeofday(&tv, NULL);
	rec = xasprintf("%lld.%06ld", (long long)tv.tv_sec,
	    (long)tv.tv_usec);
	queue_writer_record(w, 'A', rec, strlen(rec));
	free(rec);
	queue_writer_record(w, 'F', "", 0);
	rec = xasprintf("%s%s%s", eight ? "BODY=8BITMIME" : "",
	    eight && utf8 ? " " : "", utf8 ? "SMTPUTF8" : "");
	if (*rec != '\0')
		queue_writer_record(w, 'f', rec, strlen(rec));
	free(rec);
	rec = xasprintf("name=localhost\taddr=127.0.0.1\tproto=LOCAL\t"
	    "user=MAILER-DAEMON\tbounce=%d", postmaster ? 2 : 1);
	queue_writer_record(w, 'C', rec, strlen(rec));
	free(rec);
	queue_writer_record(w, 'R', to, strlen(to));

	buf_init(&b, 0);
	to_clean = bounce_clean(to);
	bounce_date(tv.tv_sec, date, sizeof(date));
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", id_r,
	    (long long)tv.tv_sec, host);
	buf_printf(&b, "Date: %s\n", date);
	buf_printf(&b, "From: MAILER-DAEMON@%s (Mail Delivery System)\n",
	    host);
	buf_printf(&b, "To: %s\n", to_clean);
	buf_printf(&b, "Subject: %s%s\n", postmaster ?
	    "Postmaster Copy: " : "", subjects[type]);
	buf_printf(&b, "Message-Id: <%s.%lld@%s>\n", id_r,
	    (long long)tv.tv_sec, host);
	/* RFC 3834 §5: keeps vacation programs from answering. */
	buf_printf(&b, "Auto-Submitted: auto-replied\n");
	buf_printf(&b, "MIME-Version: 1.0\n");
	buf_printf(&b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary);
	if (eight)
		buf_printf(&b, "Content-Transfer-Encoding: 8bit\n");
	buf_printf(&b, "\nThis is a delivery status notification in MIME "
	    "format.\n\n");
	buf_printf(&b, "--%s\nContent-Description: Notification\n"
	    "Content-Type: text/plain; charset=us-ascii\n\n", boundary);
	bounce_human_part(&b, type, msg, rcpts, n, host, postmaster);
	buf_printf(&b, "\n--%s\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n", boundary);
	bounce_status_part(&b, type, msg, rcpts, n, host);
	buf_printf(&b, "\n--%s\nContent-Description: %s%s\n"
	    "Content-Type: %s\n", boundary, descriptions[type],
	    full ? "" : " Headers",
	    full ? "message/rfc822" : "text/rfc822-headers");
	if (eight)
		buf_printf(&b, "Content-Transfer-Encoding: 8bit\n");
	buf_printf(&b, "\n");
	free(to_clean);

	if (queue_writer_begin_msg(w) < 0 ||
	    queue_writer_write(w, b.data, b.len) < 0 ||
	    bounce_copy_original(w, msg, fd, !full) < 0) {
		buf_free(&b);
		queue_writer_abort(&w);
		snprintf(bounce_errbuf, sizeof(bounce_errbuf),
		    "write notice: %s", strerror(errno != 0 ? errno : EIO));
		*error_r = bounce_errbuf;
		return -1;
	}
	buf_reset(&b);
	buf_printf(&b, "\n--%s--\n", boundary);
	if (queue_writer_write(w, b.data, b.len) < 0) {
		buf_free(&b);
		queue_writer_abort(&w);
		snprintf(bounce_errbuf, sizeof(bounce_errbuf),
		    "write notice: %s", strerror(errno != 0 ? errno : EIO));
		*error_r = bounce_errbuf;
		return -1;
	}
	buf_free(&b);
	if (queue_writer_commit(&w, &err) < 0) {
		snprintf(bounce_errbuf, sizeof(bounce_errbuf), "%s", err);
		*error_r = bounce_errbuf;
		return -1;
	}
	return 0;
}

static int
bounce_mark(const struct queue_msg *msg)
{
	char *v;
	int mark;

	if (msg->sender == NULL || msg->sender[0] != '\0')
		return 0;
	if ((v = queue_client_get(msg->client, "bounce")) == NULL)
		return 0;
	mark = strcmp(v, "2") == 0 ? 2 : strcmp(v, "1") == 0 ? 1 : 0;
	free(v);
	return mark;
}

bool
bounce_is_notice(const struct queue_msg *msg)
{
	return bounce_mark(msg) != 0;
}

bool
bounce_is_postmaster_notice(const struct queue_msg *msg)
{
	return bounce_mark(msg) == 2;
}
