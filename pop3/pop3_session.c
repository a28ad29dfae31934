/*
 * pop3_session: one logged-in POP3 session in the mail process: its state
 * (enum pop3_state, changed only by pop3_session_enter_state()), the
 * bad-command counter, the multi-line response in progress and the
 * logout line.  The connection itself (descriptor, bounded buffers,
 * output with back-pressure, autologout timer) is a struct mailconn
 * (login/mailconn.h).
 *
 * Pipelining (RFC 2449 §6.6): every complete command already received is
 * executed in order and its response queued; responses are written when
 * the input runs dry.  Long multi-line responses (RETR, TOP, LIST, UIDL)
 * are produced a piece at a time as the output drains, and no further
 * command is read meanwhile, so a session never holds more than about
 * POP3_OUT_HIGH + POP3_MSG_CHUNK bytes of output (DESIGN §12).
 *
 * At login the session takes the maildrop lock, checks LOGIN-DELAY, opens
 * INBOX and takes its snapshot, then answers the PASS/AUTH pop3-login
 * left to it.  What commands mean is pop3_cmd.c's business.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "mailproc.h"
#include "pop3.h"
#include "store.h"
#include "xmalloc.h"

static struct pop3_session *pop3_sessions;
static uint64_t pop3_next_id = 1;

static enum mailconn_mode pop3_session_mode(void *ctx);
static enum mailconn_step pop3_session_step(void *ctx);
static bool	pop3_session_input(void *ctx);
static void	pop3_session_free(void *ctx);

static const struct mailconn_proto pop3_conn_proto = {
	.name = "pop3",
	.max_inbuf = POP3_MAX_INBUF,
	.out_high = POP3_OUT_HIGH,
	.read_size = POP3_READ_SIZE,
	.idle_ms = POP3_IDLE_TIMEOUT_MS,
	/* RFC 1939 §3: the autologout timer closes without UPDATE. */
	.idle_line = "-ERR Disconnected for inactivity.",
	.mode = pop3_session_mode,
	.step = pop3_session_step,
	.input = pop3_session_input,
	.free = pop3_session_free,
};

struct pop3_session *
pop3_sessions_first(void)
{
	return pop3_sessions;
}

void
pop3_session_reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mailconn_vreply(&s->conn, fmt, ap);
	va_end(ap);
}

/* ---- states ---- */

void
pop3_session_enter_state(struct pop3_session *s, enum pop3_state state)
{
	static const char *const names[] = { "CMD", "STREAM", "CLOSE" };

	if (s->state == state)
		return;
	log_debug("pop3(%s)<%ld>: state %s -> %s", s->log_user,
	    (long)getpid(), names[s->state], names[state]);
	s->state = state;
}

static enum mailconn_mode
pop3_session_mode(void *ctx)
{
	const struct pop3_session *s = ctx;

	switch (s->state) {
	case POP3_STATE_CMD:
		return MAILCONN_READ;
	case POP3_STATE_STREAM:
		return MAILCONN_CONT;
	case POP3_STATE_CLOSE:
		break;
	}
	return MAILCONN_CLOSE;
}

void
pop3_session_close(struct pop3_session *s, const char *reason)
{
	mailconn_close(&s->conn, reason);
	pop3_session_enter_state(s, POP3_STATE_CLOSE);
}

bool
pop3_session_bad(struct pop3_session *s)
{
	if (++s->bad < POP3_MAX_BAD)
		return false;
	pop3_session_reply(s, "-ERR Too many bad commands.");
	pop3_session_close(s, "Disconnected: Too many bad commands");
	return true;
}

void
pop3_session_stream(struct pop3_session *s, pop3_cont_fn *cont)
{
	s->cont = cont;
	pop3_session_enter_state(s, POP3_STATE_STREAM);
}

/* The next piece of the multi-line response (mailconn_proto.step). */
static enum mailconn_step
pop3_session_step(void *ctx)
{
	struct pop3_session *s = ctx;
	int r = s->cont(s);

	if (r < 0)
		return MAILCONN_STEP_FAIL;	/* the +OK is out */
	if (r == 0)
		return MAILCONN_STEP_MORE;
	s->cont = NULL;
	pop3_session_enter_state(s, POP3_STATE_CMD);
	return MAILCONN_STEP_DONE;
}

/* One command line from the input (mailconn_proto.input). */
static bool
pop3_session_input(void *ctx)
{
	struct pop3_session *s = ctx;
	struct buf *in = &s->conn.in;
	const char *line;
	size_t consumed, len;
	char *copy;
	int r;

	r = linebuf_parse(&s->lp, in->data, in->len, POP3_MAX_LINE,
	    &consumed, &line, &len);
	if (r == 0) {
		buf_consume(in, consumed);
		return false;
	}
	if (r < 0) {
		buf_consume(in, consumed);
		pop3_session_reply(s, "-ERR Input line too long.");
		(void)pop3_session_bad(s);
		return true;
	}
	copy = xstrndup(line, len);
	/* A NUL byte makes the line unknown, not shorter. */
	if (memchr(line, '\0', len) != NULL)
		copy[0] = '\0';
	buf_consume(in, consumed);
	pop3_cmd_execute(s, copy, strlen(copy));
	free(copy);
	return true;
}

/* ---- end ---- */

/* "Disconnected: Logged out top=0/0, retr=1/123, ..." as Dovecot says. */
static void
pop3_session_log_logout(struct pop3_session *s)
{
	const char *fmt = cfg_get("pop3_logout_format");
	const char *reason = s->conn.reason != NULL ? s->conn.reason :
	    "Disconnected: Connection closed";
	struct buf line;

	buf_init(&line, 0);
	if (s->locked) {
		s->stats.message_count = s->count;
		s->stats.message_bytes = s->total_bytes;
		s->stats.input = s->conn.bytes_in;
		s->stats.output = s->conn.bytes_out;
		pop3_logout_expand(&line, fmt[0] != '\0' ? fmt :
		    POP3_LOGOUT_FORMAT_DEFAULT, &s->stats);
		log_info("pop3(%s)<%ld>: %s %s", s->log_user, (long)getpid(),
		    reason, buf_cstr(&line));
	} else {
		log_info("pop3(%s)<%ld>: %s", s->log_user, (long)getpid(),
		    reason);
	}
	buf_free(&line);
}

/* The session is over (mailconn_proto.free). */
static void
pop3_session_free(void *ctx)
{
	struct pop3_session *s = ctx;

	pop3_session_log_logout(s);
	mailconn_deinit(&s->conn);
	if (s->msg != NULL)
		store_msg_close(&s->msg);
	if (s->mb != NULL)
		store_mailbox_close(&s->mb);
	if (s->su != NULL)
		store_user_close(&s->su);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		pop3_sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s->uids);
	free(s->sizes);
	free(s->mflags);
	free(s->user);
	free(s->log_user);
	free(s->home);
	free(s->mail);
	free(s->rip);
	free(s->uidl_format);
	free(s);
}

/* ---- login ---- */

/* Open INBOX and take the snapshot the session works on (RFC 1939 §5). */
static int
pop3_session_open(struct pop3_session *s, const char **error_r)
{
	uint32_t i, count;

	if (store_user_open(s->mail, s->user, s->home, &s->su, error_r) < 0)
		return -1;
	/* Opening syncs the mailbox: a second sync would only list the
	 * directories again. */
	if (store_mailbox_open(s->su, "INBOX", 0, &s->mb, error_r) < 0)
		return -1;
	count = store_mailbox_count(s->mb);
	if (count > POP3_MAX_MESSAGES) {
		log_warning("pop3(%s)<%ld>: INBOX holds %u messages; this "
		    "session shows the first %u", s->log_user,
		    (long)getpid(), count, POP3_MAX_MESSAGES);
		count = POP3_MAX_MESSAGES;
	}
	s->uidvalidity = store_mailbox_uidvalidity(s->mb);
	s->uids = xcalloc(count > 0 ? count : 1, sizeof(*s->uids));
	s->sizes = xcalloc(count > 0 ? count : 1, sizeof(*s->sizes));
	s->mflags = xcalloc(count > 0 ? count : 1, sizeof(*s->mflags));
	for (i = 0; i < count; i++) {
		const struct store_msg *m = store_mailbox_msg(s->mb, i);

		if (m == NULL) {
			*error_r = "message missing from the index";
			return -1;
		}
		s->uids[i] = m->uid;
		s->sizes[i] = m->vsize;
		s->total_bytes += m->vsize;
	}
	s->count = count;
	return 0;
}

static void
pop3_session_settings(struct pop3_session *s)
{
	const char *fmt = cfg_get("pop3_uidl_format");
	const char *error;

	if (pop3_uidl_format_check(fmt, &error) < 0) {
		log_error("pop3_uidl_format = %s: %s; using %s", fmt, error,
		    "%08Xu%08Xv");
		fmt = "%08Xu%08Xv";
	}
	s->uidl_format = xstrdup(fmt);
	s->no_flag_updates = cfg_get_bool("pop3_no_flag_updates");
}

/* Answer the login pop3-login left to us, or refuse the maildrop. */
static void
pop3_session_login(struct pop3_session *s)
{
	const char *error;

	if (pop3_maildrop_in_use(s)) {
		/* RFC 2449 §8.1.2: authenticated, but the maildrop is
		 * locked by another session. */
		pop3_session_reply(s, "-ERR [IN-USE] Mailbox is locked by "
		    "another POP3 session.");
		pop3_session_close(s, "Disconnected: Mailbox is in use by "
		    "another POP3 session");
		return;
	}
	if (!pop3_login_delay_ok(s)) {
		/* RFC 2449 §8.1.1. */
		pop3_session_reply(s, "-ERR [LOGIN-DELAY] Logged in too "
		    "recently, try again later (pop3_login_delay %lld s).",
		    cfg_get_int("pop3_login_delay"));
		pop3_session_close(s, "Disconnected: Login delay not passed");
		return;
	}
	if (pop3_session_open(s, &error) < 0) {
		log_error("pop3(%s)<%ld>: Couldn't open INBOX: %s",
		    s->log_user, (long)getpid(), error);
		pop3_session_reply(s, "-ERR [SYS/TEMP] Couldn't open INBOX, "
		    "try again later.");
		pop3_session_close(s, "Disconnected: INBOX could not be "
		    "opened");
		return;
	}
	s->locked = true;
	pop3_login_delay_mark(s);
	pop3_session_reply(s, "+OK Logged in.");
}

void
pop3_session_new(const struct mailproc_session *ms)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	char esc[POP3_MAX_USER + 8];

	s->id = pop3_next_id++;
	s->user = xstrdup(ms->user != NULL ? ms->user : "");
	log_escape(esc, sizeof(esc), s->user, strlen(s->user));
	s->log_user = xstrdup(esc);
	s->home = xstrdup(ms->home != NULL ? ms->home : "");
	s->mail = xstrdup(ms->mail != NULL && ms->mail[0] != '\0' ?
	    ms->mail : cfg_get("mail_location"));
	s->rip = xstrdup(ms->rip != NULL ? ms->rip : "");
	linebuf_init(&s->lp);
	pop3_session_settings(s);

	s->next = pop3_sessions;
	if (pop3_sessions != NULL)
		pop3_sessions->prev = s;
	pop3_sessions = s;

	mailconn_init(&s->conn, ms->fd, &pop3_conn_proto, s, s->log_user);
	pop3_session_login(s);
	/* Commands pipelined after PASS/AUTH, read by pop3-login. */
	if (ms->prelen > 0 && s->state == POP3_STATE_CMD)
		mailconn_preload(&s->conn, ms->pre, ms->prelen);
	mailconn_start(&s->conn);
}
