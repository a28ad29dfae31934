/*
 * pop3_cmd: the TRANSACTION state commands of RFC 1939 §5 and §7 (STAT,
 * LIST, RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL) and CAPA (RFC 2449 §5),
 * one handler each, and the UPDATE state (§6) that QUIT enters.
 *
 * Message numbers are those of the snapshot taken at login; they do not
 * change during the session, whatever other sessions (IMAP, a delivery)
 * do to the mailbox.  DELE only marks; nothing leaves the disk before
 * QUIT, so a dropped connection deletes nothing.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3.h"
#include "pop3_capa.h"
#include "store.h"
#include "xmalloc.h"

/* Most arguments any command takes (TOP msg n). */
#define POP3_CMD_MAX_ARGS	2

struct pop3_cmd {
	const char	*name;
	int		 min_args, max_args;
	void		(*run)(struct pop3_session *s, int argc, char **argv);
};

/* ---- helpers ---- */

/*
 * The message an argument names, as an index into the snapshot.  Replies
 * -ERR and returns -1 when there is none (RFC 1939 §5: a deleted message
 * may not be used).
 */
static int
pop3_cmd_msg(struct pop3_session *s, const char *arg, uint32_t *idx_r)
{
	uint32_t n;

	if (pop3_parse_msgnum(arg, &n) < 0) {
		pop3_session_reply(s, "-ERR Invalid message number.");
		(void)pop3_session_bad(s);
		return -1;
	}
	if (n > s->count) {
		pop3_session_reply(s, "-ERR There's no message %" PRIu32 ".",
		    n);
		return -1;
	}
	if ((s->mflags[n - 1] & POP3_MSG_DELETED) != 0) {
		pop3_session_reply(s, "-ERR Message is deleted.");
		return -1;
	}
	*idx_r = n - 1;
	return 0;
}

static void
pop3_cmd_uidl_line(struct pop3_session *s, uint32_t idx)
{
	buf_printf(&s->conn.out, "%" PRIu32 " ", idx + 1);
	pop3_uidl_expand(&s->conn.out, s->uidl_format, s->uids[idx],
	    s->uidvalidity);
	buf_append(&s->conn.out, "\r\n", 2);
}

/* ---- multi-line responses ---- */

/* LIST: "n size" for every message not deleted. */
static int
pop3_cmd_list_cont(struct pop3_session *s)
{
	while (s->cont_idx < s->count) {
		uint32_t i = s->cont_idx++;

		if ((s->mflags[i] & POP3_MSG_DELETED) == 0)
			buf_printf(&s->conn.out, "%" PRIu32 " %" PRIu64 "\r\n",
			    i + 1, s->sizes[i]);
		if (s->conn.out.len >= POP3_OUT_HIGH)
			return 0;
	}
	buf_append(&s->conn.out, ".\r\n", 3);
	return 1;
}

/* UIDL: "n unique-id" for every message not deleted. */
static int
pop3_cmd_uidl_cont(struct pop3_session *s)
{
	while (s->cont_idx < s->count) {
		uint32_t i = s->cont_idx++;

		if ((s->mflags[i] & POP3_MSG_DELETED) == 0)
			pop3_cmd_uidl_line(s, i);
		if (s->conn.out.len >= POP3_OUT_HIGH)
			return 0;
	}
	buf_append(&s->conn.out, ".\r\n", 3);
	return 1;
}

/* RETR and TOP: the message, byte-stuffed, a chunk per call. */
static int
pop3_cmd_message_cont(struct pop3_session *s)
{
	static char chunk[POP3_MSG_CHUNK];
	ssize_t n;

	n = store_msg_read(s->msg, chunk, sizeof(chunk));
	if (n < 0) {
		log_error("pop3(%s)<%ld>: reading message %" PRIu32 " (UID %"
		    PRIu32 ") failed: %s", s->log_user, (long)getpid(),
		    s->cont_idx + 1, s->uids[s->cont_idx], strerror(errno));
		store_msg_close(&s->msg);
		return -1;
	}
	if (n > 0) {
		*s->cont_bytes += (uint64_t)n;
		if (!pop3_stuff(&s->stuffer, chunk, (size_t)n, &s->conn.out))
			return 0;
	}
	/* The end of the message, or TOP has its lines. */
	pop3_stuff_finish(&s->stuffer, &s->conn.out);
	store_msg_close(&s->msg);
	return 1;
}

/* Open message idx and stream it: top_lines -1 for RETR. */
static void
pop3_cmd_send_message(struct pop3_session *s, uint32_t idx, int64_t top_lines)
{
	const char *error;

	if (store_msg_open(s->mb, idx, &s->msg, &error) < 0) {
		/* Most likely expunged by an IMAP session meanwhile. */
		log_info("pop3(%s)<%ld>: message %" PRIu32 " (UID %" PRIu32
		    ") cannot be opened: %s", s->log_user, (long)getpid(),
		    idx + 1, s->uids[idx], error);
		s->msg = NULL;
		pop3_session_reply(s, "-ERR [SYS/TEMP] Message is no longer "
		    "available.");
		return;
	}
	s->cont_idx = idx;
	pop3_stuffer_init(&s->stuffer, top_lines);
	if (top_lines < 0) {
		/* RFC 1939 §7: the size LIST gave is what follows. */
		pop3_session_reply(s, "+OK %" PRIu64 " octets", s->sizes[idx]);
		s->stats.retr_count++;
		s->cont_bytes = &s->stats.retr_bytes;
		s->mflags[idx] |= POP3_MSG_RETRIEVED;
	} else {
		pop3_session_reply(s, "+OK");
		s->stats.top_count++;
		s->cont_bytes = &s->stats.top_bytes;
	}
	pop3_session_stream(s, pop3_cmd_message_cont);
}

/* ---- commands ---- */

static void
pop3_cmd_capa(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* RFC 2449 §5: no USER, SASL or STLS after login. */
	pop3_capa_append(&s->conn.out, NULL);
}

static void
pop3_cmd_dele(struct pop3_session *s, int argc, char **argv)
{
	uint32_t idx;

	(void)argc;
	if (pop3_cmd_msg(s, argv[0], &idx) < 0)
		return;
	s->mflags[idx] |= POP3_MSG_DELETED;
	s->deleted_count++;
	s->deleted_bytes += s->sizes[idx];
	pop3_session_reply(s, "+OK Marked to be deleted.");
}

static void
pop3_cmd_list(struct pop3_session *s, int argc, char **argv)
{
	uint32_t idx;

	if (argc == 1) {
		if (pop3_cmd_msg(s, argv[0], &idx) == 0)
			pop3_session_reply(s, "+OK %" PRIu32 " %" PRIu64,
			    idx + 1, s->sizes[idx]);
		return;
	}
	pop3_session_reply(s, "+OK %" PRIu32 " messages:",
	    s->count - s->deleted_count);
	s->cont_idx = 0;
	pop3_session_stream(s, pop3_cmd_list_cont);
}

static void
pop3_cmd_noop(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	pop3_session_reply(s, "+OK");
}

static void
pop3_cmd_quit(struct pop3_session *s, int argc, char **argv)
{
	uint32_t deleted = s->deleted_count;

	(void)argc;
	(void)argv;
	/* RFC 1939 §6: QUIT from TRANSACTION enters UPDATE. */
	if (pop3_cmd_update(s) < 0)
		pop3_session_reply(s, "-ERR [SYS/TEMP] Some deleted messages "
		    "were not removed.");
	else if (deleted > 0)
		pop3_session_reply(s, "+OK Logging out, messages deleted.");
	else
		pop3_session_reply(s, "+OK Logging out.");
	pop3_session_close(s, "Disconnected: Logged out");
}

static void
pop3_cmd_retr(struct pop3_session *s, int argc, char **argv)
{
	uint32_t idx;

	(void)argc;
	if (pop3_cmd_msg(s, argv[0], &idx) < 0)
		return;
	pop3_cmd_send_message(s, idx, -1);
}

static void
pop3_cmd_rset(struct pop3_session *s, int argc, char **argv)
{
	uint32_t i;

	(void)argc;
	(void)argv;
	/* RFC 1939 §5: unmark every message marked as deleted. */
	for (i = 0; i < s->count; i++)
		s->mflags[i] &= (uint8_t)~POP3_MSG_DELETED;
	s->deleted_count = 0;
	s->deleted_bytes = 0;
	pop3_session_reply(s, "+OK");
}

static void
pop3_cmd_stat(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* RFC 1939 §5: deleted messages are not counted. */
	pop3_session_reply(s, "+OK %" PRIu32 " %" PRIu64,
	    s->count - s->deleted_count, s->total_bytes - s->deleted_bytes);
}

static void
pop3_cmd_top(struct pop3_session *s, int argc, char **argv)
{
	uint64_t lines;
	uint32_t idx;

	(void)argc;
	/* RFC 1939 §7: both arguments are required; n may be 0. */
	if (pop3_parse_count(argv[1], &lines) < 0) {
		pop3_session_reply(s, "-ERR Invalid number of lines.");
		(void)pop3_session_bad(s);
		return;
	}
	if (pop3_cmd_msg(s, argv[0], &idx) < 0)
		return;
	pop3_cmd_send_message(s, idx, (int64_t)lines);
}

static void
pop3_cmd_uidl(struct pop3_session *s, int argc, char **argv)
{
	uint32_t idx;

	if (argc == 1) {
		if (pop3_cmd_msg(s, argv[0], &idx) == 0) {
			buf_append_str(&s->conn.out, "+OK ");
			pop3_cmd_uidl_line(s, idx);
		}
		return;
	}
	pop3_session_reply(s, "+OK");
	s->cont_idx = 0;
	pop3_session_stream(s, pop3_cmd_uidl_cont);
}

/*
 * The commands of the TRANSACTION state.  USER, PASS, APOP, AUTH and
 * STLS belong to AUTHORIZATION (pop3-login) and are unknown here.
 */
static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", 0, 0, pop3_cmd_capa },
	{ "DELE", 1, 1, pop3_cmd_dele },
	{ "LIST", 0, 1, pop3_cmd_list },
	{ "NOOP", 0, 0, pop3_cmd_noop },
	{ "QUIT", 0, 0, pop3_cmd_quit },
	{ "RETR", 1, 1, pop3_cmd_retr },
	{ "RSET", 0, 0, pop3_cmd_rset },
	{ "STAT", 0, 0, pop3_cmd_stat },
	{ "TOP", 2, 2, pop3_cmd_top },
	{ "UIDL", 0, 1, pop3_cmd_uidl },
};

void
pop3_cmd_execute(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_command cmd;
	char *argv[POP3_CMD_MAX_ARGS];
	const struct pop3_cmd *c = NULL;
	size_t i;
	int argc;

	if (pop3_command_parse(line, len, &cmd) < 0 || cmd.keyword[0] == '\0') {
		pop3_session_reply(s, "-ERR Unknown command.");
		(void)pop3_session_bad(s);
		return;
	}
	for (i = 0; i < sizeof(pop3_cmds) / sizeof(pop3_cmds[0]); i++)
		if (strcmp(cmd.keyword, pop3_cmds[i].name) == 0) {
			c = &pop3_cmds[i];
			break;
		}
	if (c == NULL) {
		char esc[POP3_KEYWORD_MAX + 8];

		log_escape(esc, sizeof(esc), cmd.keyword, strlen(cmd.keyword));
		pop3_session_reply(s, "-ERR Unknown command: %s", esc);
		(void)pop3_session_bad(s);
		return;
	}
	argc = pop3_args_split(cmd.args, argv, POP3_CMD_MAX_ARGS);
	if (argc < c->min_args || argc > c->max_args) {
		pop3_session_reply(s, "-ERR %s: %s arguments.", c->name,
		    argc < c->min_args && argc >= 0 ? "Missing" : "Too many");
		(void)pop3_session_bad(s);
		return;
	}
	/* The limit is on bad commands in a row, as in Dovecot. */
	s->bad = 0;
	c->run(s, argc, argv);
}

/* ---- UPDATE ---- */

int
pop3_cmd_update(struct pop3_session *s)
{
	const char *error;
	uint32_t *uids, i, n = 0;
	int ret = 0;

	if (!s->no_flag_updates) {
		/*
		 * As Dovecot does: what was retrieved is \Seen, so IMAP
		 * clients of the same mailbox show it as read.  A failure
		 * is logged only: the client's QUIT is not about flags.
		 */
		for (i = 0; i < s->count; i++) {
			const struct store_msg *m;

			if ((s->mflags[i] & (POP3_MSG_RETRIEVED |
			    POP3_MSG_DELETED)) != POP3_MSG_RETRIEVED)
				continue;
			m = store_mailbox_msg(s->mb, i);
			if (m == NULL || (m->flags & STORE_SEEN) != 0)
				continue;
			if (store_msg_set_flags(s->mb, i, STORE_SEEN, 0, 1,
			    &error) < 0)
				log_warning("pop3(%s)<%ld>: setting \\Seen on "
				    "UID %" PRIu32 " failed: %s", s->log_user,
				    (long)getpid(), s->uids[i], error);
		}
	}
	if (s->deleted_count == 0)
		return 0;
	uids = xcalloc(s->deleted_count, sizeof(*uids));
	for (i = 0; i < s->count && n < s->deleted_count; i++)
		if ((s->mflags[i] & POP3_MSG_DELETED) != 0)
			uids[n++] = s->uids[i];
	if (store_mailbox_expunge_uids(s->mb, uids, n, &error) < 0) {
		log_error("pop3(%s)<%ld>: removing %" PRIu32 " deleted "
		    "messages failed: %s", s->log_user, (long)getpid(), n,
		    error);
		ret = -1;
	} else {
		s->stats.deleted_count = n;
		s->stats.deleted_bytes = s->deleted_bytes;
	}
	free(uids);
	return ret;
}
