/*
 * imap_session: one logged-in IMAP session in the mail process: the
 * command parser, the states (enum imap_state: authenticated, selected,
 * logout; enum imap_io: what is done with input, changed only by
 * imap_session_enter_io()), the command table, the bad-command counter
 * and the session's view of its selected mailbox.  The connection itself
 * (descriptor, bounded buffers, output with back-pressure, autologout
 * timer) is a struct mailconn (login/mailconn.h).
 *
 * Commands are executed in order as they arrive (pipelining, RFC 9051
 * §5.5).  Long answers (FETCH of many messages or big bodies, SEARCH
 * that reads messages) are produced a piece at a time as the output
 * drains, and no further input is read meanwhile, so a session never
 * holds more than about IMAP_OUT_HIGH + IMAP_MSG_CHUNK bytes of output
 * (DESIGN §12 "Back-pressure").
 *
 * The view: sequence number n is view[n - 1], a UID.  The store view of
 * the shared mailbox moves on at every sync; this session's view follows
 * it only when the protocol lets it tell the client: new messages at the
 * end of a command, expunges too except during FETCH, STORE and SEARCH
 * (RFC 9051 §7.5.1), and at once while idling (RFC 2177).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "imap.h"
#include "ioloop.h"
#include "log.h"
#include "mailproc.h"
#include "store.h"
#include "xmalloc.h"

static struct imap_session *imap_sessions;
static uint64_t imap_next_id = 1;

static enum mailconn_mode imap_session_mode(void *ctx);
static enum mailconn_step imap_session_step(void *ctx);
static bool	imap_session_input(void *ctx);
static void	imap_session_free(void *ctx);

static const struct mailconn_proto imap_conn_proto = {
	.name = "imap",
	.max_inbuf = IMAP_MAX_INBUF,
	.out_high = IMAP_OUT_HIGH,
	.read_size = IMAP_READ_SIZE,
	.idle_ms = IMAP_AUTOLOGOUT_MS,
	/* RFC 9051 §5.4: the autologout timer. */
	.idle_line = "* BYE Disconnected for inactivity.",
	.mode = imap_session_mode,
	.step = imap_session_step,
	.input = imap_session_input,
	.free = imap_session_free,
};

/* ---- the command table (STYLE §1) ---- */

#define IMAP_ST_AUTH		0x1
#define IMAP_ST_SELECTED	0x2
#define IMAP_ST_ANY		(IMAP_ST_AUTH | IMAP_ST_SELECTED)

/* RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE, SEARCH. */
#define IMAP_CMDF_NO_EXPUNGE	0x1

struct imap_cmd_def {
	enum imap_cmd_type	 type;
	unsigned int		 states;
	unsigned int		 flags;
	imap_cmd_fn		*run;
};

static const struct imap_cmd_def imap_cmds[] = {
	{ IMAP_CMD_CAPABILITY, IMAP_ST_ANY, 0, imap_cmd_capability },
	{ IMAP_CMD_NOOP, IMAP_ST_ANY, 0, imap_cmd_noop },
	{ IMAP_CMD_LOGOUT, IMAP_ST_ANY, 0, imap_cmd_logout },
	{ IMAP_CMD_ID, IMAP_ST_ANY, 0, imap_cmd_id },
	{ IMAP_CMD_ENABLE, IMAP_ST_AUTH, 0, imap_cmd_enable },
	{ IMAP_CMD_SELECT, IMAP_ST_ANY, 0, imap_cmd_select },
	{ IMAP_CMD_EXAMINE, IMAP_ST_ANY, 0, imap_cmd_select },
	{ IMAP_CMD_CREATE, IMAP_ST_ANY, 0, imap_cmd_create },
	{ IMAP_CMD_DELETE, IMAP_ST_ANY, 0, imap_cmd_delete },
	{ IMAP_CMD_RENAME, IMAP_ST_ANY, 0, imap_cmd_rename },
	{ IMAP_CMD_SUBSCRIBE, IMAP_ST_ANY, 0, imap_cmd_subscribe },
	{ IMAP_CMD_UNSUBSCRIBE, IMAP_ST_ANY, 0, imap_cmd_subscribe },
	{ IMAP_CMD_LIST, IMAP_ST_ANY, 0, imap_cmd_list },
	{ IMAP_CMD_LSUB, IMAP_ST_ANY, 0, imap_cmd_list },
	{ IMAP_CMD_NAMESPACE, IMAP_ST_ANY, 0, imap_cmd_namespace },
	{ IMAP_CMD_STATUS, IMAP_ST_ANY, 0, imap_cmd_status },
	{ IMAP_CMD_APPEND, IMAP_ST_ANY, 0, imap_cmd_append },
	{ IMAP_CMD_IDLE, IMAP_ST_ANY, 0, imap_cmd_idle },
	{ IMAP_CMD_COMPRESS, IMAP_ST_ANY, 0, imap_cmd_compress },
	{ IMAP_CMD_CHECK, IMAP_ST_SELECTED, 0, imap_cmd_check },
	{ IMAP_CMD_CLOSE, IMAP_ST_SELECTED, 0, imap_cmd_close },
	{ IMAP_CMD_UNSELECT, IMAP_ST_SELECTED, 0, imap_cmd_unselect },
	{ IMAP_CMD_EXPUNGE, IMAP_ST_SELECTED, 0, imap_cmd_expunge },
	{ IMAP_CMD_SEARCH, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_search },
	{ IMAP_CMD_SORT, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE, imap_cmd_sort },
	{ IMAP_CMD_CANCELUPDATE, IMAP_ST_SELECTED, 0, imap_cmd_cancelupdate },
	{ IMAP_CMD_THREAD, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_thread },
	{ IMAP_CMD_FETCH, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_fetch },
	{ IMAP_CMD_STORE, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_store },
	{ IMAP_CMD_COPY, IMAP_ST_SELECTED, 0, imap_cmd_copy },
	{ IMAP_CMD_MOVE, IMAP_ST_SELECTED, 0, imap_cmd_copy },
	{ IMAP_CMD_GETQUOTA, IMAP_ST_ANY, 0, imap_cmd_getquota },
	{ IMAP_CMD_GETQUOTAROOT, IMAP_ST_ANY, 0, imap_cmd_getquotaroot },
	{ IMAP_CMD_SETQUOTA, IMAP_ST_ANY, 0, imap_cmd_setquota },
};

/* ---- output ---- */

void
imap_write(struct imap_session *s, const void *data, size_t len)
{
	mailconn_write(&s->conn, data, len);
}

void
imap_reply(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mailconn_vreply(&s->conn, fmt, ap);
	va_end(ap);
}

static void
imap_vtagged(struct imap_session *s, const char *status, const char *fmt,
    va_list ap)
{
	buf_printf(&s->conn.out, "%s %s ", s->tag != NULL ? s->tag : "*",
	    status);
	buf_vprintf(&s->conn.out, fmt, ap);
	buf_append(&s->conn.out, "\r\n", 2);
	/* DESIGN §9: a limit for errors in a row, not in a lifetime. */
	if (strcmp(status, "OK") == 0)
		s->bad = 0;
}

void
imap_tagged(struct imap_session *s, const char *status, const char *fmt,
    ...)
{
	va_list ap;

	imap_session_updates(s, !s->cmd_no_expunge);
	va_start(ap, fmt);
	imap_vtagged(s, status, fmt, ap);
	va_end(ap);
}

void
imap_tagged_only(struct imap_session *s, const char *status,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_vtagged(s, status, fmt, ap);
	va_end(ap);
}

void
imap_tagged_fail(struct imap_session *s, const char *what, const char *error)
{
	/* STYLE §4 tier 2: logged in full, told in general terms. */
	log_error("imap(%s)<%ld>: %s: %s", s->log_user, (long)getpid(), what,
	    error != NULL ? error : "unknown error");
	imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred. Refer to "
	    "server log for more information.");
}

bool
imap_session_out_full(const struct imap_session *s)
{
	return mailconn_out_full(&s->conn);
}

/* ---- states ---- */

void
imap_session_enter_io(struct imap_session *s, enum imap_io io)
{
	static const char *const names[] = { "CMD", "CONT", "IDLE", "CLOSE" };

	if (s->io_state == io)
		return;
	log_debug("imap(%s)<%ld>: io %s -> %s", s->log_user, (long)getpid(),
	    names[s->io_state], names[io]);
	s->io_state = io;
}

static enum mailconn_mode
imap_session_mode(void *ctx)
{
	const struct imap_session *s = ctx;

	switch (s->io_state) {
	case IMAP_IO_CMD:
	case IMAP_IO_IDLE:
		return MAILCONN_READ;
	case IMAP_IO_CONT:
		return MAILCONN_CONT;
	case IMAP_IO_CLOSE:
		break;
	}
	return MAILCONN_CLOSE;
}

void
imap_session_close(struct imap_session *s, const char *reason)
{
	mailconn_close(&s->conn, reason);
	imap_session_enter_io(s, IMAP_IO_CLOSE);
	s->state = IMAP_STATE_LOGOUT;
}

bool
imap_session_bad(struct imap_session *s)
{
	if (++s->bad < IMAP_MAX_BAD)
		return false;
	imap_reply(s, "* BYE Too many invalid IMAP commands.");
	imap_session_close(s, "Disconnected: Too many invalid commands");
	return true;
}

void
imap_session_continue(struct imap_session *s, imap_cont_fn *fn, void *ctx,
    void (*free_fn)(void *ctx))
{
	s->cont = fn;
	s->cont_ctx = ctx;
	s->cont_free = free_fn;
	imap_session_enter_io(s, IMAP_IO_CONT);
}

static void
imap_session_cont_end(struct imap_session *s)
{
	if (s->cont_free != NULL && s->cont_ctx != NULL)
		s->cont_free(s->cont_ctx);
	s->cont = NULL;
	s->cont_ctx = NULL;
	s->cont_free = NULL;
}

/* The next piece of the long answer (mailconn_proto.step). */
static enum mailconn_step
imap_session_step(void *ctx)
{
	struct imap_session *s = ctx;
	int r = s->cont(s);

	if (r < 0)
		return MAILCONN_STEP_FAIL;
	if (r == 0)
		return MAILCONN_STEP_YIELD;
	imap_session_cont_end(s);
	if (s->io_state == IMAP_IO_CONT)
		imap_session_enter_io(s, IMAP_IO_CMD);
	return MAILCONN_STEP_DONE;
}

/* ---- the view of the selected mailbox ---- */

void
imap_session_select(struct imap_session *s, struct imap_mbox *mbox,
    bool readonly)
{
	struct store_mailbox *mb = mbox->mb;
	uint32_t i, n = store_mailbox_count(mb);

	s->sel = mbox;
	s->readonly = readonly;
	s->sel_prev = NULL;
	s->sel_next = mbox->sessions;
	if (mbox->sessions != NULL)
		mbox->sessions->sel_prev = s;
	mbox->sessions = s;
	s->cap = n > 0 ? n : 8;
	s->view = xreallocarray(NULL, s->cap, sizeof(*s->view));
	for (i = 0; i < n; i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);

		s->view[i].uid = m->uid;
		s->view[i].flags = 0;
		/* RFC 9051 §2.3.2: \Recent goes to one session only. */
		if (imap_mbox_is_recent(mbox, m))
			s->view[i].flags |= IMAP_VIEW_RECENT;
	}
	if (n > 0 && s->view[n - 1].uid > mbox->recent_upto)
		mbox->recent_upto = s->view[n - 1].uid;
	s->count = n;
	s->flagchg = 0;
	s->expunge_gen = mbox->expunge_gen;
	s->uidvalidity = mbox->uidvalidity;
	s->state = IMAP_STATE_SELECTED;
}

void
imap_session_unselect(struct imap_session *s)
{
	struct imap_mbox *m = s->sel;

	if (m == NULL)
		return;
	imap_search_context_free(s);
	if (s->sel_prev != NULL)
		s->sel_prev->sel_next = s->sel_next;
	else
		m->sessions = s->sel_next;
	if (s->sel_next != NULL)
		s->sel_next->sel_prev = s->sel_prev;
	s->sel_next = s->sel_prev = NULL;
	/* It may have been the last one not told of an expunge. */
	imap_mbox_ghosts_prune(m);
	free(s->view);
	s->view = NULL;
	s->count = s->cap = 0;
	s->flagchg = 0;
	free(s->saved);
	s->saved = NULL;
	s->nsaved = 0;
	s->sel = NULL;
	imap_mbox_unref(&m);
	if (s->state == IMAP_STATE_SELECTED)
		s->state = IMAP_STATE_AUTH;
}

void
imap_session_mark_flags(struct imap_session *s, uint32_t uid)
{
	int64_t pos = imap_view_find(s, uid);

	if (pos < 0 || (s->view[pos].flags & IMAP_VIEW_FLAGCHG) != 0)
		return;
	s->view[pos].flags |= IMAP_VIEW_FLAGCHG;
	s->flagchg++;
}

bool
imap_session_modseq_ok(const struct imap_session *s)
{
	return s->sel != NULL && store_mailbox_modseq_persistent(s->sel->mb);
}

void
imap_session_condstore(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	/* RFC 7162 §3.1: the first enabling command with a mailbox
	 * selected tells its HIGHESTMODSEQ (NOMODSEQ mailboxes refuse
	 * the commands that would get here). */
	if (imap_session_modseq_ok(s))
		imap_reply(s, "* OK [HIGHESTMODSEQ %llu] Highest",
		    (unsigned long long)store_mailbox_highestmodseq(
		    s->sel->mb));
}

/*
 * "* VANISHED uids" in lines of at most IMAP_VANISHED_LINE numbers
 * (RFC 7162 §3.2.10.2; several responses mean the same as one).
 */
static void
imap_session_send_vanished(struct imap_session *s, const uint32_t *uids,
    size_t n)
{
	struct buf b;
	size_t i, k;

	buf_init(&b, 0);
	for (i = 0; i < n; i += k) {
		k = n - i < IMAP_VANISHED_LINE ? n - i : IMAP_VANISHED_LINE;
		buf_reset(&b);
		buf_append_str(&b, "* VANISHED ");
		imap_numbers_format(uids + i, k, &b);
		imap_reply(s, "%s", buf_cstr(&b));
	}
	buf_free(&b);
}

/*
 * The untagged EXPUNGEs (highest first, so every number is right when
 * it is read, RFC 9051 §7.5.1) and the view without those messages.
 * After ENABLE QRESYNC one VANISHED instead (RFC 7162 §3.2.10), unless
 * the mailbox said NOMODSEQ.
 */
static void
imap_session_send_expunges(struct imap_session *s, bool all)
{
	struct store_mailbox *mb = s->sel->mb;
	bool vanished = s->qresync && imap_session_modseq_ok(s);
	uint32_t i, o, *uids = NULL;
	size_t nuids = 0;
	bool any = false;

	if (vanished)
		uids = xreallocarray(NULL, s->count + 1, sizeof(*uids));
	for (i = s->count; i-- > 0; ) {
		if (all || store_mailbox_find_uid(mb, s->view[i].uid) < 0) {
			if (vanished)
				uids[nuids++] = s->view[i].uid;
			else
				imap_reply(s, "* %u EXPUNGE", i + 1);
			if ((s->view[i].flags & IMAP_VIEW_FLAGCHG) != 0)
				s->flagchg--;
			s->view[i].uid = 0;
			any = true;
		}
	}
	if (nuids > 0) {
		/* Gathered highest first. */
		for (i = 0; i < nuids / 2; i++) {
			uint32_t t = uids[i];

			uids[i] = uids[nuids - 1 - i];
			uids[nuids - 1 - i] = t;
		}
		imap_session_send_vanished(s, uids, nuids);
	}
	free(uids);
	if (!any)
		return;
	for (i = 0, o = 0; i < s->count; i++)
		if (s->view[i].uid != 0)
			s->view[o++] = s->view[i];
	s->count = o;
}

/* First store index with a UID above uid. */
static uint32_t
imap_session_store_after(struct store_mailbox *mb, uint32_t uid)
{
	uint32_t lo = 0, hi = store_mailbox_count(mb);

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (store_mailbox_msg(mb, mid)->uid <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
imap_session_updates(struct imap_session *s, bool allow_expunge)
{
	struct imap_mbox *m = s->sel;
	struct store_mailbox *mb;
	uint32_t i, n, first, last, recent = 0;

	if (m == NULL || s->conn.dead)
		return;
	mb = m->mb;
	if (s->uidvalidity != m->uidvalidity) {
		/*
		 * UIDVALIDITY changed: every message we showed is gone;
		 * until we may say so, nothing else is said either.
		 */
		if (!allow_expunge)
			return;
		imap_search_context_expunge(s);
		imap_session_send_expunges(s, true);
		s->uidvalidity = m->uidvalidity;
		s->expunge_gen = m->expunge_gen;
		imap_mbox_ghosts_prune(m);
		imap_reply(s, "* OK [UIDVALIDITY %u] UIDs are new.",
		    s->uidvalidity);
	} else if (allow_expunge && s->expunge_gen != m->expunge_gen) {
		s->expunge_gen = m->expunge_gen;
		imap_search_context_expunge(s);
		imap_session_send_expunges(s, false);
		imap_mbox_ghosts_prune(m);
	}
	/* New messages: UIDs above every UID of the view. */
	last = s->count > 0 ? s->view[s->count - 1].uid : 0;
	n = store_mailbox_count(mb);
	first = imap_session_store_after(mb, last);
	if (first < n) {
		if (s->count + (n - first) > s->cap) {
			s->cap = s->count + (n - first);
			s->view = xreallocarray(s->view, s->cap,
			    sizeof(*s->view));
		}
		for (i = first; i < n; i++) {
			const struct store_msg *sm = store_mailbox_msg(mb, i);
			struct imap_view_msg *v = &s->view[s->count++];

			v->uid = sm->uid;
			v->flags = 0;
			if (imap_mbox_is_recent(m, sm)) {
				v->flags |= IMAP_VIEW_RECENT;
				m->recent_upto = sm->uid;
			}
		}
		imap_reply(s, "* %u EXISTS", s->count);
		if (!s->rev2) {
			for (i = 0; i < s->count; i++)
				if ((s->view[i].flags & IMAP_VIEW_RECENT) != 0)
					recent++;
			imap_reply(s, "* %u RECENT", recent);
		}
	}
	/* Flags changed by another session or program. */
	for (i = 0; i < s->count && s->flagchg > 0; i++) {
		const struct store_msg *sm;
		struct buf b;
		int64_t idx;

		if ((s->view[i].flags & IMAP_VIEW_FLAGCHG) == 0)
			continue;
		s->view[i].flags &= ~IMAP_VIEW_FLAGCHG;
		s->flagchg--;
		idx = store_mailbox_find_uid(mb, s->view[i].uid);
		if (idx < 0)
			continue;
		buf_init(&b, 0);
		sm = store_mailbox_msg(mb, (uint32_t)idx);
		imap_flags_format(s, sm,
		    (s->view[i].flags & IMAP_VIEW_RECENT) != 0, &b);
		/* RFC 7162 §3.1.4.2, §3.2.4: with MODSEQ once enabled. */
		if (s->condstore && imap_session_modseq_ok(s))
			buf_printf(&b, " MODSEQ (%llu)",
			    (unsigned long long)sm->modseq);
		imap_reply(s, "* %u FETCH (UID %u FLAGS %s)", i + 1,
		    s->view[i].uid, buf_cstr(&b));
		buf_free(&b);
	}
	imap_search_context_update(s);
}

void
imap_session_poke(struct imap_session *s)
{
	/* Only an idling session may be told now (RFC 2177 §3); the
	 * others hear it at the end of their next command. */
	if (s->io_state != IMAP_IO_IDLE || s->conn.dead)
		return;
	imap_session_updates(s, true);
	mailconn_update(&s->conn);
}

/* ---- lifecycle ---- */

/* The session is over (mailconn_proto.free). */
static void
imap_session_free(void *ctx)
{
	struct imap_session *s = ctx;

	log_info("imap(%s)<%ld><%llu>: %s in=%llu out=%llu", s->log_user,
	    (long)getpid(), (unsigned long long)s->id,
	    s->conn.reason != NULL ? s->conn.reason :
	    "Disconnected: Connection closed",
	    (unsigned long long)s->conn.bytes_in,
	    (unsigned long long)s->conn.bytes_out);
	mailconn_deinit(&s->conn);
	timer_remove(&s->idle_timer);
	imap_session_cont_end(s);
	imap_append_free(s);
	imap_session_unselect(s);
	imap_user_unref(&s->u);
	imap_parser_free(&s->parser);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		imap_sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s->tag);
	free(s->user);
	free(s->log_user);
	free(s->rip);
	free(s);
}

/* ---- input ---- */

static void
imap_session_execute(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_def *def = NULL;
	unsigned int st;
	size_t i;

	free(s->tag);
	s->tag = xstrdup(cmd->tag);
	s->cmd = cmd;
	s->cmd_no_expunge = false;
	for (i = 0; i < sizeof(imap_cmds) / sizeof(imap_cmds[0]); i++)
		if (imap_cmds[i].type == cmd->type) {
			def = &imap_cmds[i];
			break;
		}
	if (def == NULL) {
		if (cmd->type == IMAP_CMD_LOGIN ||
		    cmd->type == IMAP_CMD_AUTHENTICATE)
			imap_tagged(s, "BAD", "Already logged in.");
		else if (cmd->type == IMAP_CMD_STARTTLS)
			imap_tagged(s, "BAD", "TLS is possible only before "
			    "login.");
		else
			imap_tagged(s, "BAD", "Unknown command.");
		(void)imap_session_bad(s);
		return;
	}
	st = s->state == IMAP_STATE_SELECTED ? IMAP_ST_SELECTED :
	    IMAP_ST_AUTH;
	if ((def->states & st) == 0) {
		if (st == IMAP_ST_AUTH)
			imap_tagged(s, "BAD", "No mailbox selected.");
		else
			imap_tagged(s, "BAD", "Command not valid in the "
			    "selected state.");
		(void)imap_session_bad(s);
		return;
	}
	s->cmd_no_expunge = (def->flags & IMAP_CMDF_NO_EXPUNGE) != 0;
	def->run(s, cmd);
}

static void
imap_session_parse_error(struct imap_session *s)
{
	const struct imap_parse_error *e = imap_parser_error(s->parser);
	const char *tag = e->tag != NULL ? e->tag : "*";

	if (e->fatal) {
		imap_reply(s, "* BYE %s", e->text);
		imap_session_close(s, "Disconnected: Protocol error");
		return;
	}
	if (s->io_state == IMAP_IO_IDLE) {
		/* An overlong or broken line ends IDLE (RFC 2177 §3). */
		imap_idle_line(s, "", 0);
		return;
	}
	if (s->append != NULL) {
		/* A broken APPEND after its messages were read. */
		imap_append_free(s);
	}
	imap_reply(s, "%s %s %s%s%s%s", tag, e->no ? "NO" : "BAD",
	    e->code != NULL ? "[" : "", e->code != NULL ? e->code : "",
	    e->code != NULL ? "] " : "", e->text);
	(void)imap_session_bad(s);
}

/* What the parser makes of the input (mailconn_proto.input). */
static bool
imap_session_input(void *ctx)
{
	struct imap_session *s = ctx;
	struct buf *in = &s->conn.in;
	size_t used, len;
	const char *line;

	switch (imap_parser_feed(s->parser, in->data, in->len, &used)) {
	case IMAP_PARSE_MORE:
		buf_consume(in, used);
		return false;
	case IMAP_PARSE_ERROR:
		buf_consume(in, used);
		imap_session_parse_error(s);
		break;
	case IMAP_PARSE_CONTINUE:
		buf_consume(in, used);
		/* RFC 9051 §7.5: go on with the literal. */
		imap_reply(s, "+ OK");
		break;
	case IMAP_PARSE_COMMAND:
		buf_consume(in, used);
		imap_session_execute(s, imap_parser_command(s->parser));
		break;
	case IMAP_PARSE_LINE:
		buf_consume(in, used);
		line = imap_parser_line(s->parser, &len);
		if (s->io_state == IMAP_IO_IDLE)
			imap_idle_line(s, line, len);
		break;
	case IMAP_PARSE_APPEND:
		buf_consume(in, used);
		imap_append_begin(s, imap_parser_append(s->parser));
		break;
	case IMAP_PARSE_APPEND_DATA:
		/* The data are the first bytes of what was fed. */
		imap_append_data(s, in->data, used);
		buf_consume(in, used);
		break;
	case IMAP_PARSE_APPEND_END:
		buf_consume(in, used);
		imap_append_end(s, imap_parser_append(s->parser));
		break;
	}
	return true;
}

/* ---- login ---- */

static struct imap_parser *
imap_session_parser_new(void)
{
	struct imap_parser_limits lim;

	imap_parser_limits_default(&lim);
	lim.max_line = (size_t)cfg_get_int("imap_max_line_length");
	return imap_parser_new(&lim);
}

void
imap_session_new(const struct mailproc_session *ms)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	const char *mail, *error, *tag;
	char esc[512];
	struct buf caps;

	s->id = imap_next_id++;
	s->user = xstrdup(ms->user != NULL ? ms->user : "");
	log_escape(esc, sizeof(esc), s->user, strlen(s->user));
	s->log_user = xstrdup(esc);
	s->rip = xstrdup(ms->rip != NULL ? ms->rip : "");
	s->parser = imap_session_parser_new();
	s->state = IMAP_STATE_AUTH;

	s->next = imap_sessions;
	if (imap_sessions != NULL)
		imap_sessions->prev = s;
	imap_sessions = s;

	mailconn_init(&s->conn, ms->fd, &imap_conn_proto, s, s->log_user);
	tag = ms->tag != NULL && ms->tag[0] != '\0' ? ms->tag : NULL;
	s->tag = xstrdup(tag != NULL ? tag : "*");
	mail = ms->mail != NULL && ms->mail[0] != '\0' ? ms->mail :
	    cfg_get("mail_location");
	s->u = imap_user_get(s->user, ms->home != NULL ? ms->home : "", mail,
	    &error);
	if (s->u == NULL) {
		log_error("imap(%s)<%ld>: cannot open the mail store: %s",
		    s->log_user, (long)getpid(), error);
		imap_tagged_only(s, "NO", "[UNAVAILABLE] Mailbox unavailable, "
		    "try again later.");
		imap_session_close(s, "Disconnected: Mail store unavailable");
	} else {
		imap_user_autocreate(s->u);
		buf_init(&caps, 0);
		imap_capability_write(&caps);
		/* RFC 9051 §6.2.3: the capabilities may come with the OK. */
		if (tag != NULL)
			imap_tagged_only(s, "OK", "[CAPABILITY %s] Logged in",
			    buf_cstr(&caps));
		else
			imap_reply(s, "* PREAUTH [CAPABILITY %s] Logged in",
			    buf_cstr(&caps));
		buf_free(&caps);
		log_debug("imap(%s)<%ld><%llu>: Logged in from %s",
		    s->log_user, (long)getpid(), (unsigned long long)s->id,
		    s->rip);
		/* Commands pipelined after the login, read by imap-login. */
		if (ms->prelen > 0)
			mailconn_preload(&s->conn, ms->pre, ms->prelen);
	}
	mailconn_start(&s->conn);
}
