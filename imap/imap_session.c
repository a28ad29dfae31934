/*
 * imap_session: one logged-in IMAP connection in the mail process.  Owns
 * the descriptor (the client socket, or the TLS relay of imap-login), the
 * bounded input and output buffers, the command parser, the states
 * (enum imap_state: authenticated, selected, logout; enum imap_io: what
 * is done with input, changed only by imap_session_enter_io()), the
 * command table, the autologout timer and the bad-command counter, and
 * the session's view of its selected mailbox.
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

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
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

static void	imap_session_io(int fd, int events, void *ctx);
static void	imap_session_done(struct imap_session *s);
static void	imap_session_arm_timeout(struct imap_session *s);
static void	imap_session_update_io(struct imap_session *s);

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
	{ IMAP_CMD_CHECK, IMAP_ST_SELECTED, 0, imap_cmd_check },
	{ IMAP_CMD_CLOSE, IMAP_ST_SELECTED, 0, imap_cmd_close },
	{ IMAP_CMD_UNSELECT, IMAP_ST_SELECTED, 0, imap_cmd_unselect },
	{ IMAP_CMD_EXPUNGE, IMAP_ST_SELECTED, 0, imap_cmd_expunge },
	{ IMAP_CMD_SEARCH, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_search },
	{ IMAP_CMD_FETCH, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_fetch },
	{ IMAP_CMD_STORE, IMAP_ST_SELECTED, IMAP_CMDF_NO_EXPUNGE,
	    imap_cmd_store },
	{ IMAP_CMD_COPY, IMAP_ST_SELECTED, 0, imap_cmd_copy },
	{ IMAP_CMD_MOVE, IMAP_ST_SELECTED, 0, imap_cmd_copy },
};

/* ---- output ---- */

void
imap_write(struct imap_session *s, const void *data, size_t len)
{
	if (!s->dead)
		buf_append(&s->out, data, len);
}

void
imap_reply(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->dead)
		return;
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_append(&s->out, "\r\n", 2);
}

static void
imap_vtagged(struct imap_session *s, const char *status, const char *fmt,
    va_list ap)
{
	buf_printf(&s->out, "%s %s ", s->tag != NULL ? s->tag : "*", status);
	buf_vprintf(&s->out, fmt, ap);
	buf_append(&s->out, "\r\n", 2);
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
	return s->out.len >= IMAP_OUT_HIGH;
}

/* Write what we can without blocking. */
static void
imap_session_flush(struct imap_session *s)
{
	bool progress = false;

	while (s->out.len > 0 && !s->dead) {
		ssize_t n = send(s->fd, s->out.data, s->out.len,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(s->fd, s->out.data, s->out.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (s->reason == NULL)
				s->reason = "Disconnected: Connection closed";
			s->dead = true;
			break;
		}
		buf_consume(&s->out, (size_t)n);
		s->bytes_out += (uint64_t)n;
		progress = true;
	}
	/* A client that reads its answer is not idle. */
	if (progress)
		imap_session_arm_timeout(s);
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

static void
imap_session_timeout(void *ctx)
{
	struct imap_session *s = ctx;

	s->timeout = NULL;
	/* RFC 9051 §5.4: the autologout timer. */
	imap_reply(s, "* BYE Disconnected for inactivity.");
	imap_session_flush(s);
	s->reason = "Disconnected for inactivity";
	s->dead = true;
	imap_session_done(s);
}

static void
imap_session_arm_timeout(struct imap_session *s)
{
	timer_remove(&s->timeout);
	if (!s->dead)
		s->timeout = timer_add(IMAP_AUTOLOGOUT_MS,
		    imap_session_timeout, s);
}

void
imap_session_close(struct imap_session *s, const char *reason)
{
	if (s->reason == NULL)
		s->reason = reason;
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
	if (s->sel_prev != NULL)
		s->sel_prev->sel_next = s->sel_next;
	else
		m->sessions = s->sel_next;
	if (s->sel_next != NULL)
		s->sel_next->sel_prev = s->sel_prev;
	s->sel_next = s->sel_prev = NULL;
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

/* The untagged EXPUNGEs (highest first, so every number is right when
 * it is read, RFC 9051 §7.5.1) and the view without those messages. */
static void
imap_session_send_expunges(struct imap_session *s, bool all)
{
	struct store_mailbox *mb = s->sel->mb;
	uint32_t i, o;
	bool any = false;

	for (i = s->count; i-- > 0; ) {
		if (all || store_mailbox_find_uid(mb, s->view[i].uid) < 0) {
			imap_reply(s, "* %u EXPUNGE", i + 1);
			if ((s->view[i].flags & IMAP_VIEW_FLAGCHG) != 0)
				s->flagchg--;
			s->view[i].uid = 0;
			any = true;
		}
	}
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

	if (m == NULL || s->dead)
		return;
	mb = m->mb;
	if (s->uidvalidity != m->uidvalidity) {
		/*
		 * UIDVALIDITY changed: every message we showed is gone;
		 * until we may say so, nothing else is said either.
		 */
		if (!allow_expunge)
			return;
		imap_session_send_expunges(s, true);
		s->uidvalidity = m->uidvalidity;
		s->expunge_gen = m->expunge_gen;
		imap_reply(s, "* OK [UIDVALIDITY %u] UIDs are new.",
		    s->uidvalidity);
	} else if (allow_expunge && s->expunge_gen != m->expunge_gen) {
		s->expunge_gen = m->expunge_gen;
		imap_session_send_expunges(s, false);
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
		imap_flags_format(s, store_mailbox_msg(mb, (uint32_t)idx),
		    (s->view[i].flags & IMAP_VIEW_RECENT) != 0, &b);
		imap_reply(s, "* %u FETCH (UID %u FLAGS %s)", i + 1,
		    s->view[i].uid, buf_cstr(&b));
		buf_free(&b);
	}
}

void
imap_session_poke(struct imap_session *s)
{
	/* Only an idling session may be told now (RFC 2177 §3); the
	 * others hear it at the end of their next command. */
	if (s->io_state != IMAP_IO_IDLE || s->dead)
		return;
	imap_session_updates(s, true);
	if (s->busy == 0)
		imap_session_update_io(s);
}

/* ---- lifecycle ---- */

static void
imap_session_free(struct imap_session *s)
{
	log_info("imap(%s)<%ld><%llu>: %s in=%llu out=%llu", s->log_user,
	    (long)getpid(), (unsigned long long)s->id, s->reason != NULL ?
	    s->reason : "Disconnected: Connection closed",
	    (unsigned long long)s->bytes_in,
	    (unsigned long long)s->bytes_out);
	io_remove(&s->io);
	timer_remove(&s->timeout);
	timer_remove(&s->idle_timer);
	timer_remove(&s->resume_timer);
	if (s->fd >= 0)
		close(s->fd);
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
	buf_free(&s->in);
	buf_free(&s->out);
	free(s->tag);
	free(s->user);
	free(s->log_user);
	free(s->rip);
	free(s);
	mailproc_session_ended();
}

/* The session wants client input now. */
static bool
imap_session_wants_input(const struct imap_session *s)
{
	return (s->io_state == IMAP_IO_CMD || s->io_state == IMAP_IO_IDLE) &&
	    !s->eof && !s->dead && s->out.len < IMAP_OUT_HIGH &&
	    s->in.len < s->in.max;
}

static void
imap_session_update_io(struct imap_session *s)
{
	int ev = 0;

	if (imap_session_wants_input(s))
		ev |= IOLOOP_READ;
	if (s->out.len > 0 || s->dead)
		ev |= IOLOOP_WRITE;
	io_set_events(s->io, ev);
}

/*
 * End of every callback that touched s: free it when it is finished,
 * else recompute what to wait for.
 */
static void
imap_session_done(struct imap_session *s)
{
	if (s->busy > 0)
		return;
	if (!s->dead && s->io_state == IMAP_IO_CLOSE && s->out.len == 0)
		s->dead = true;
	if (!s->dead && s->eof && s->out.len == 0 &&
	    (s->io_state == IMAP_IO_CMD || s->io_state == IMAP_IO_IDLE))
		s->dead = true;		/* the client went away */
	if (s->dead) {
		imap_session_free(s);
		return;
	}
	imap_session_update_io(s);
}

/* ---- input ---- */

static void
imap_session_read(struct imap_session *s)
{
	while (imap_session_wants_input(s)) {
		size_t room = s->in.max - s->in.len;
		ssize_t n;

		if (room > IMAP_READ_SIZE)
			room = IMAP_READ_SIZE;
		if (buf_reserve(&s->in, room) < 0)
			break;
		n = read(s->fd, s->in.data + s->in.len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				s->eof = true;
				if (s->reason == NULL)
					s->reason = "Disconnected: "
					    "Connection closed";
			}
			break;
		}
		if (n == 0) {
			s->eof = true;
			break;
		}
		s->in.len += (size_t)n;
		s->bytes_in += (uint64_t)n;
		imap_session_arm_timeout(s);
	}
}

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

/*
 * Execute what can be executed now: continue a long answer, then the
 * commands already in the input buffer.  Returns true when it stopped
 * only because the output reached its high-water mark.
 */
static void imap_session_resume(void *ctx);

static bool
imap_session_run_once(struct imap_session *s)
{
	while (!s->dead) {
		enum imap_parse_result r;
		size_t used;

		if (s->out.len >= IMAP_OUT_HIGH)
			return s->io_state != IMAP_IO_CLOSE;
		if (s->io_state == IMAP_IO_CONT) {
			int cr = s->cont(s);

			if (cr < 0) {
				/* Part of the answer is out: nothing we
				 * could say now would be understood. */
				s->dead = true;
				if (s->reason == NULL)
					s->reason = "Disconnected: "
					    "Internal error";
				break;
			}
			if (cr > 0) {
				imap_session_cont_end(s);
				if (s->io_state == IMAP_IO_CONT)
					imap_session_enter_io(s, IMAP_IO_CMD);
				continue;
			}
			if (s->out.len >= IMAP_OUT_HIGH)
				return true;	/* when output drained */
			/* Let the other sessions have a turn. */
			if (s->resume_timer == NULL)
				s->resume_timer = timer_add(0,
				    imap_session_resume, s);
			return false;
		}
		if (s->io_state != IMAP_IO_CMD && s->io_state != IMAP_IO_IDLE)
			break;
		r = imap_parser_feed(s->parser, s->in.data, s->in.len, &used);
		switch (r) {
		case IMAP_PARSE_MORE:
			buf_consume(&s->in, used);
			return false;
		case IMAP_PARSE_ERROR:
			buf_consume(&s->in, used);
			imap_session_parse_error(s);
			break;
		case IMAP_PARSE_CONTINUE:
			buf_consume(&s->in, used);
			/* RFC 9051 §7.5: go on with the literal. */
			imap_reply(s, "+ OK");
			break;
		case IMAP_PARSE_COMMAND:
			buf_consume(&s->in, used);
			imap_session_execute(s, imap_parser_command(s->parser));
			break;
		case IMAP_PARSE_LINE: {
			size_t len;
			const char *line;

			buf_consume(&s->in, used);
			line = imap_parser_line(s->parser, &len);
			if (s->io_state == IMAP_IO_IDLE)
				imap_idle_line(s, line, len);
			break;
		}
		case IMAP_PARSE_APPEND:
			buf_consume(&s->in, used);
			imap_append_begin(s, imap_parser_append(s->parser));
			break;
		case IMAP_PARSE_APPEND_DATA:
			/* The data are the first bytes of what was fed. */
			imap_append_data(s, s->in.data, used);
			buf_consume(&s->in, used);
			break;
		case IMAP_PARSE_APPEND_END:
			buf_consume(&s->in, used);
			imap_append_end(s, imap_parser_append(s->parser));
			break;
		}
	}
	return false;
}

static void imap_session_run(struct imap_session *s);

static void
imap_session_resume(void *ctx)
{
	struct imap_session *s = ctx;

	s->resume_timer = NULL;
	s->busy++;
	imap_session_run(s);
	s->busy--;
	imap_session_done(s);
}

/*
 * Run and write until the client must catch up (output not drained) or
 * there is nothing left to do: a client that sent its last commands and
 * closed its side gets every answer before the session ends.
 */
static void
imap_session_run(struct imap_session *s)
{
	bool more;

	do {
		more = imap_session_run_once(s);
		imap_session_flush(s);
	} while (more && !s->dead && s->out.len < IMAP_OUT_HIGH);
}

static void
imap_session_io(int fd, int events, void *ctx)
{
	struct imap_session *s = ctx;

	(void)fd;
	s->busy++;
	if ((events & IOLOOP_WRITE) != 0)
		imap_session_flush(s);
	if ((events & IOLOOP_READ) != 0)
		imap_session_read(s);
	imap_session_run(s);
	s->busy--;
	imap_session_done(s);
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
	int fl;

	s->id = imap_next_id++;
	s->fd = ms->fd;
	s->user = xstrdup(ms->user != NULL ? ms->user : "");
	log_escape(esc, sizeof(esc), s->user, strlen(s->user));
	s->log_user = xstrdup(esc);
	s->rip = xstrdup(ms->rip != NULL ? ms->rip : "");
	buf_init(&s->in, IMAP_MAX_INBUF);
	buf_init(&s->out, 0);
	s->parser = imap_session_parser_new();
	s->state = IMAP_STATE_AUTH;

	s->next = imap_sessions;
	if (imap_sessions != NULL)
		imap_sessions->prev = s;
	imap_sessions = s;

	fl = fcntl(s->fd, F_GETFL);
	if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_warning("imap(%s): O_NONBLOCK: %s", s->log_user,
		    strerror(errno));
	(void)fcntl(s->fd, F_SETFD, FD_CLOEXEC);
	s->io = io_add(s->fd, 0, imap_session_io, s);

	s->busy++;
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
		if (ms->prelen > 0) {
			size_t n = ms->prelen < s->in.max ? ms->prelen :
			    s->in.max;

			buf_append(&s->in, ms->pre, n);
		}
	}
	imap_session_arm_timeout(s);
	imap_session_run(s);
	s->busy--;
	imap_session_done(s);
}
