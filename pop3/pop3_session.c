/*
 * pop3_session: one logged-in POP3 connection in the mail process.  Owns
 * the descriptor (the client socket, or the TLS relay of pop3-login), the
 * bounded input and output buffers, the I/O state (enum pop3_state,
 * changed only by pop3_session_enter_state()), the autologout timer and
 * the bad-command counter.
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
#include "ioloop.h"
#include "log.h"
#include "mailproc.h"
#include "pop3.h"
#include "store.h"
#include "xmalloc.h"

static struct pop3_session *pop3_sessions;
static uint64_t pop3_next_id = 1;

static void	pop3_session_io(int fd, int events, void *ctx);
static void	pop3_session_run(struct pop3_session *s);
static void	pop3_session_done(struct pop3_session *s);

struct pop3_session *
pop3_sessions_first(void)
{
	return pop3_sessions;
}

/* ---- output ---- */

void
pop3_session_reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_append(&s->out, "\r\n", 2);
}

static void
pop3_session_arm_timeout(struct pop3_session *s);

/* Write what we can without blocking. */
static void
pop3_session_flush(struct pop3_session *s)
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
		s->stats.output += (uint64_t)n;
		progress = true;
	}
	/* A client that reads its answer is not idle. */
	if (progress)
		pop3_session_arm_timeout(s);
}

/* ---- lifecycle ---- */

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

static void
pop3_session_timeout(void *ctx)
{
	struct pop3_session *s = ctx;

	s->timeout = NULL;
	/* RFC 1939 §3: the autologout timer closes without UPDATE. */
	pop3_session_reply(s, "-ERR Disconnected for inactivity.");
	pop3_session_flush(s);
	s->reason = "Disconnected for inactivity";
	s->dead = true;
	pop3_session_done(s);
}

static void
pop3_session_arm_timeout(struct pop3_session *s)
{
	timer_remove(&s->timeout);
	if (!s->dead)
		s->timeout = timer_add(POP3_IDLE_TIMEOUT_MS,
		    pop3_session_timeout, s);
}

void
pop3_session_close(struct pop3_session *s, const char *reason)
{
	if (s->reason == NULL)
		s->reason = reason;
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

/* "Disconnected: Logged out top=0/0, retr=1/123, ..." as Dovecot says. */
static void
pop3_session_log_logout(struct pop3_session *s)
{
	const char *fmt = cfg_get("pop3_logout_format");
	struct buf line;

	buf_init(&line, 0);
	if (s->locked) {
		s->stats.message_count = s->count;
		s->stats.message_bytes = s->total_bytes;
		pop3_logout_expand(&line, fmt[0] != '\0' ? fmt :
		    POP3_LOGOUT_FORMAT_DEFAULT, &s->stats);
		log_info("pop3(%s)<%ld>: %s %s", s->log_user, (long)getpid(),
		    s->reason != NULL ? s->reason :
		    "Disconnected: Connection closed", buf_cstr(&line));
	} else {
		log_info("pop3(%s)<%ld>: %s", s->log_user, (long)getpid(),
		    s->reason != NULL ? s->reason :
		    "Disconnected: Connection closed");
	}
	buf_free(&line);
}

static void
pop3_session_free(struct pop3_session *s)
{
	pop3_session_log_logout(s);
	io_remove(&s->io);
	timer_remove(&s->timeout);
	if (s->fd >= 0)
		close(s->fd);
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
	buf_free(&s->in);
	buf_free(&s->out);
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
	mailproc_session_ended();
}

/* The session wants client input now. */
static bool
pop3_session_wants_input(const struct pop3_session *s)
{
	return s->state == POP3_STATE_CMD && !s->eof && !s->dead &&
	    s->out.len < POP3_OUT_HIGH && s->in.len < s->in.max;
}

/*
 * End of every callback that touched s: free it when it is finished,
 * else recompute what to wait for.
 */
static void
pop3_session_done(struct pop3_session *s)
{
	int ev = 0;

	if (s->busy > 0)
		return;
	if (!s->dead && s->state == POP3_STATE_CLOSE && s->out.len == 0)
		s->dead = true;
	if (!s->dead && s->eof && s->state == POP3_STATE_CMD &&
	    s->out.len == 0) {
		/* The client went away: RFC 1939 §6, no UPDATE. */
		s->dead = true;
	}
	if (s->dead) {
		pop3_session_free(s);
		return;
	}
	if (pop3_session_wants_input(s))
		ev |= IOLOOP_READ;
	if (s->out.len > 0)
		ev |= IOLOOP_WRITE;
	io_set_events(s->io, ev);
}

/* ---- input ---- */

static void
pop3_session_read(struct pop3_session *s)
{
	while (pop3_session_wants_input(s)) {
		size_t room = s->in.max - s->in.len;
		ssize_t n;

		if (room > POP3_READ_SIZE)
			room = POP3_READ_SIZE;
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
		s->stats.input += (uint64_t)n;
		pop3_session_arm_timeout(s);
	}
}

/*
 * Execute what can be executed now: continue a multi-line response,
 * then the commands already in the input buffer.  Returns true when it
 * stopped only because the output reached its high-water mark.
 */
static bool
pop3_session_run_once(struct pop3_session *s)
{
	while (!s->dead) {
		const char *line;
		size_t consumed, len;
		char *copy;
		int r;

		if (s->out.len >= POP3_OUT_HIGH)
			return s->state != POP3_STATE_CLOSE;
		if (s->state == POP3_STATE_STREAM) {
			r = s->cont(s);
			if (r < 0) {
				/* The +OK is out: nothing to tell the
				 * client that it could trust. */
				s->dead = true;
				if (s->reason == NULL)
					s->reason = "Disconnected: "
					    "Internal error";
				break;
			}
			if (r > 0) {
				s->cont = NULL;
				pop3_session_enter_state(s, POP3_STATE_CMD);
			}
			continue;
		}
		if (s->state != POP3_STATE_CMD)
			break;
		r = pop3_line_parse(&s->lp, s->in.data, s->in.len,
		    POP3_MAX_LINE, &consumed, &line, &len);
		if (r == 0) {
			buf_consume(&s->in, consumed);
			break;
		}
		if (r < 0) {
			buf_consume(&s->in, consumed);
			pop3_session_reply(s, "-ERR Input line too long.");
			(void)pop3_session_bad(s);
			continue;
		}
		copy = xstrndup(line, len);
		/* A NUL byte makes the line unknown, not shorter. */
		if (memchr(line, '\0', len) != NULL)
			copy[0] = '\0';
		buf_consume(&s->in, consumed);
		pop3_cmd_execute(s, copy, strlen(copy));
		free(copy);
	}
	return false;
}

/*
 * Run and write until the client must catch up (output not drained) or
 * there is nothing left to do: a client that sent its last commands and
 * closed its side gets every answer before the session ends.
 */
static void
pop3_session_run(struct pop3_session *s)
{
	bool more;

	do {
		more = pop3_session_run_once(s);
		pop3_session_flush(s);
	} while (more && !s->dead && s->out.len < POP3_OUT_HIGH);
}

static void
pop3_session_io(int fd, int events, void *ctx)
{
	struct pop3_session *s = ctx;

	(void)fd;
	s->busy++;
	if ((events & IOLOOP_WRITE) != 0)
		pop3_session_flush(s);
	if ((events & IOLOOP_READ) != 0)
		pop3_session_read(s);
	pop3_session_run(s);
	s->busy--;
	pop3_session_done(s);
}

/* ---- login ---- */

/* Open INBOX and take the snapshot the session works on (RFC 1939 §5). */
static int
pop3_session_open(struct pop3_session *s, const char **error_r)
{
	uint32_t i, count;

	if (store_user_open(s->mail, s->user, s->home, &s->su, error_r) < 0)
		return -1;
	if (store_mailbox_open(s->su, "INBOX", 0, &s->mb, error_r) < 0)
		return -1;
	if (store_mailbox_sync(s->mb, NULL, error_r) < 0)
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
	int fl;

	s->id = pop3_next_id++;
	s->fd = ms->fd;
	s->user = xstrdup(ms->user != NULL ? ms->user : "");
	log_escape(esc, sizeof(esc), s->user, strlen(s->user));
	s->log_user = xstrdup(esc);
	s->home = xstrdup(ms->home != NULL ? ms->home : "");
	s->mail = xstrdup(ms->mail != NULL && ms->mail[0] != '\0' ?
	    ms->mail : cfg_get("mail_location"));
	s->rip = xstrdup(ms->rip != NULL ? ms->rip : "");
	buf_init(&s->in, POP3_MAX_INBUF);
	buf_init(&s->out, 0);
	pop3_line_parser_init(&s->lp);
	pop3_session_settings(s);

	s->next = pop3_sessions;
	if (pop3_sessions != NULL)
		pop3_sessions->prev = s;
	pop3_sessions = s;

	fl = fcntl(s->fd, F_GETFL);
	if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_warning("pop3(%s): O_NONBLOCK: %s", s->log_user,
		    strerror(errno));
	(void)fcntl(s->fd, F_SETFD, FD_CLOEXEC);
	s->io = io_add(s->fd, 0, pop3_session_io, s);

	s->busy++;
	pop3_session_login(s);
	/* Commands pipelined after PASS/AUTH, read by pop3-login. */
	if (ms->prelen > 0 && s->state == POP3_STATE_CMD) {
		size_t n = ms->prelen < s->in.max ? ms->prelen : s->in.max;

		buf_append(&s->in, ms->pre, n);
	}
	pop3_session_arm_timeout(s);
	pop3_session_run(s);
	s->busy--;
	pop3_session_done(s);
}
