/*
 * imap_cmd_idle: IDLE (RFC 2177, RFC 9051 §6.3.13).  The session waits
 * for "DONE" and meanwhile gets every change of its selected mailbox as
 * soon as the open mailbox hears of it (another session of this process
 * at once, a delivery through inotify within IMAP_SYNC_DELAY_MS).  Where
 * inotify is not available the mailbox is looked at every
 * IMAP_IDLE_POLL_MS.  Every imap_idle_notify_interval an "OK Still here"
 * keeps NAT boxes from forgetting the connection.
 */
#include "config.h"

#include <stdlib.h>

#include "cfg.h"
#include "imap.h"
#include "ioloop.h"
#include "log.h"

static void imap_idle_arm(struct imap_session *s);

static uint64_t
imap_idle_interval_ms(struct imap_session *s)
{
	long long keep = cfg_get_time("imap_idle_notify_interval");
	uint64_t ms = keep > 0 ? (uint64_t)keep * 1000 : 0;

	/* Without inotify the mailbox is polled. */
	if (s->sel != NULL && s->sel->notify_io == NULL &&
	    (ms == 0 || ms > IMAP_IDLE_POLL_MS))
		ms = IMAP_IDLE_POLL_MS;
	return ms;
}

static void
imap_idle_timer(void *ctx)
{
	struct imap_session *s = ctx;
	const char *error;

	s->idle_timer = NULL;
	if (s->io_state != IMAP_IO_IDLE)
		return;
	if (s->sel != NULL && s->sel->notify_io == NULL &&
	    imap_mbox_sync(s->sel, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    s->sel->name, error);
	imap_reply(s, "* OK Still here");
	imap_idle_arm(s);
	/* Out with it now: nothing else wakes the session. */
	imap_session_poke(s);
}

static void
imap_idle_arm(struct imap_session *s)
{
	uint64_t ms = imap_idle_interval_ms(s);

	timer_remove(&s->idle_timer);
	if (ms > 0)
		s->idle_timer = timer_add(ms, imap_idle_timer, s);
}

void
imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error;

	(void)cmd;
	if (s->sel != NULL && imap_mbox_sync(s->sel, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    s->sel->name, error);
	/* What is known already goes out first (RFC 2177 §3). */
	imap_session_updates(s, true);
	imap_reply(s, "+ idling");
	/* The tag was copied into s->tag; the command may go. */
	imap_parser_expect_line(s->parser);
	imap_session_enter_io(s, IMAP_IO_IDLE);
	imap_idle_arm(s);
}

void
imap_idle_stop(struct imap_session *s)
{
	timer_remove(&s->idle_timer);
	if (s->io_state == IMAP_IO_IDLE)
		imap_session_enter_io(s, IMAP_IO_CMD);
}

void
imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	imap_idle_stop(s);
	if (imap_parser_line_is_done(line, len)) {
		imap_tagged(s, "OK", "Idle completed.");
		return;
	}
	/* RFC 2177 §3: anything but DONE ends IDLE with BAD. */
	imap_tagged(s, "BAD", "Expected DONE.");
	(void)imap_session_bad(s);
}
