/*
 * imap_cmd_append: saving messages: APPEND with MULTIAPPEND (RFC 9051
 * §6.3.12, RFC 3502), COPY (§6.4.7), MOVE (RFC 6851), each answered
 * with the UIDs of the new messages (UIDPLUS, RFC 4315: APPENDUID,
 * COPYUID).
 *
 * APPEND arrives in pieces, before its command is complete: the parser
 * announces each message literal (IMAP_PARSE_APPEND), passes its bytes
 * (IMAP_PARSE_APPEND_DATA), ends it (IMAP_PARSE_APPEND_END), and only
 * then gives the command.  The bytes go straight into a file of the
 * store (store_append_*), never into memory; nothing is visible until
 * the command ends and every message was received, so a MULTIAPPEND is
 * all or nothing (RFC 3502 §6.3.11).  A message refused on the way
 * (unknown mailbox, too big, a NUL byte, a write error) ends the command
 * with a tagged NO at once; the parser skips what the client still
 * sends of it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "imap.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

struct imap_append_ctx {
	char		*tag;
	struct imap_mbox *m;
	struct store_append *sa;
	uint32_t	 flags;
	uint64_t	 keywords;
	time_t		 date;
	bool		 open;		/* a message being written */
};

void
imap_append_free(struct imap_session *s)
{
	struct imap_append_ctx *a = s->append;

	if (a == NULL)
		return;
	store_append_abort(&a->sa);
	imap_mbox_unref(&a->m);
	free(a->tag);
	free(a);
	s->append = NULL;
}

/* Refuse the APPEND now: the parser drops the rest of it. */
static void
imap_append_refuse(struct imap_session *s, const char *tag, const char *text)
{
	imap_parser_append_reject(s->parser);
	imap_reply(s, "%s NO %s", tag, text);
	imap_append_free(s);
}

/* The biggest message accepted (message_size_limit; 0: no limit). */
static uint64_t
imap_append_limit(void)
{
	long long n = cfg_get_size("message_size_limit");

	return n > 0 ? (uint64_t)n : UINT64_MAX;
}

void
imap_append_begin(struct imap_session *s, const struct imap_append_msg *msg)
{
	struct imap_append_ctx *a = s->append;
	const char *tag = imap_parser_tag(s->parser), *error;
	struct buf name;
	int kind;

	if (msg->index == 0) {
		imap_append_free(s);
		a = xcalloc(1, sizeof(*a));
		a->tag = xstrdup(tag);
		s->append = a;
		buf_init(&name, 0);
		if (imap_name_to_store(msg->mailbox, &name) < 0) {
			buf_free(&name);
			imap_append_refuse(s, a->tag, "[TRYCREATE] Mailbox "
			    "doesn't exist.");
			return;
		}
		a->m = imap_mbox_get(s->u, buf_cstr(&name), false, &kind,
		    &error);
		buf_free(&name);
		if (a->m == NULL) {
			if (kind == STORE_ERR_NONEXISTENT)
				/* RFC 9051 §6.3.12: the client may CREATE
				 * it and try again. */
				imap_append_refuse(s, a->tag, "[TRYCREATE] "
				    "Mailbox doesn't exist.");
			else {
				log_error("imap(%s): APPEND: %s", s->log_user,
				    error);
				imap_append_refuse(s, a->tag, "[SERVERBUG] "
				    "Internal error occurred. Refer to "
				    "server log for more information.");
			}
			return;
		}
		if (store_append_begin(a->m->mb, &a->sa, &error) < 0) {
			log_error("imap(%s): APPEND: %s", s->log_user, error);
			imap_append_refuse(s, a->tag, "[SERVERBUG] Internal "
			    "error occurred. Refer to server log for more "
			    "information.");
			return;
		}
	} else if (a == NULL) {
		/* An earlier message was refused: the parser skips. */
		return;
	}
	if (msg->size > imap_append_limit()) {
		imap_append_refuse(s, a->tag, "[TOOBIG] Message too large.");
		return;
	}
	if (imap_flags_to_store(a->m->mb, &msg->flags, true, &a->flags,
	    &a->keywords, &error) < 0) {
		imap_append_refuse(s, a->tag, "[LIMIT] Too many keywords.");
		return;
	}
	a->date = msg->has_date ? msg->date : 0;
	if (store_append_msg_begin(a->sa, &error) < 0) {
		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, "[SERVERBUG] Internal error "
		    "occurred. Refer to server log for more information.");
		return;
	}
	a->open = true;
	/* RFC 9051 §7.5: the client waits for this before the data. */
	if (msg->sync)
		imap_reply(s, "+ OK");
}

void
imap_append_data(struct imap_session *s, const void *data, size_t len)
{
	struct imap_append_ctx *a = s->append;
	const char *error;

	if (a == NULL || !a->open)
		return;
	if (store_append_write(a->sa, data, len, &error) < 0) {
		/* DESIGN §3: ENOSPC and friends are a NO, never an OK. */
		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, "[SERVERBUG] Internal error "
		    "occurred. Refer to server log for more information.");
	}
}

void
imap_append_end(struct imap_session *s, const struct imap_append_msg *msg)
{
	struct imap_append_ctx *a = s->append;
	const char *error;

	if (a == NULL || !a->open)
		return;
	a->open = false;
	if (msg->nul_seen && !msg->binary) {
		/* RFC 3516 §4.2: NUL only in a literal8. */
		imap_append_refuse(s, a->tag, "Message contains NUL "
		    "characters.");
		return;
	}
	if (store_append_msg_end(a->sa, a->flags, a->keywords, a->date,
	    &error) < 0) {
		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, "[SERVERBUG] Internal error "
		    "occurred. Refer to server log for more information.");
	}
}

/* "304,319:320" of a list of UIDs in the order given. */
static void
imap_uid_list(const uint32_t *uids, size_t n, struct buf *out)
{
	struct imap_seq_range *r = xreallocarray(NULL, n + 1, sizeof(*r));
	size_t nr = 0, i;

	for (i = 0; i < n; i++) {
		if (nr > 0 && r[nr - 1].hi + 1 == uids[i])
			r[nr - 1].hi = uids[i];
		else {
			r[nr].lo = r[nr].hi = uids[i];
			nr++;
		}
	}
	imap_seqset_format(r, nr, out);
	free(r);
}

void
imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_append_ctx *a = s->append;
	struct store_sync_cb cb;
	uint32_t *uids = NULL;
	const char *error;
	size_t n = 0;
	struct buf b;

	(void)cmd;
	if (a == NULL || a->open) {
		/* Not reached: a refused APPEND gives no command. */
		imap_tagged(s, "NO", "Append failed.");
		imap_append_free(s);
		return;
	}
	imap_mbox_sync_cb(a->m, &cb);
	if (store_append_commit(&a->sa, &cb, &uids, &n, &error) < 0) {
		imap_append_free(s);
		imap_tagged_fail(s, "APPEND", error);
		return;
	}
	imap_mbox_saved(a->m, uids, n);
	if (imap_mbox_sync(a->m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    a->m->name, error);
	buf_init(&b, 0);
	if (uids != NULL) {
		/* RFC 4315 §3 */
		buf_printf(&b, "[APPENDUID %u ",
		    store_mailbox_uidvalidity(a->m->mb));
		imap_uid_list(uids, n, &b);
		buf_append_str(&b, "] ");
	}
	free(uids);
	imap_append_free(s);
	imap_tagged(s, "OK", "%sAppend completed.", buf_cstr(&b));
	buf_free(&b);
}

/* ---- COPY and MOVE ---- */

void
imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd)
{
	bool move = cmd->type == IMAP_CMD_MOVE;
	struct store_mailbox *src = s->sel->mb;
	struct store_append *sa = NULL;
	uint32_t *pos = NULL, *src_uids = NULL, *dst_uids = NULL;
	struct imap_mbox *m;
	struct store_sync_cb cb;
	const char *error;
	struct buf name, b;
	size_t n = 0, i, k = 0, nd = 0;
	int kind;

	if (imap_set_resolve(s, &cmd->u.copy.set, cmd->uid, &pos, &n,
	    &error) < 0) {
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	if (move && s->readonly) {
		free(pos);
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only.");
		return;
	}
	buf_init(&name, 0);
	if (imap_name_to_store(cmd->u.copy.mailbox, &name) < 0) {
		buf_free(&name);
		free(pos);
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist.");
		return;
	}
	if (move && strcmp(buf_cstr(&name), s->sel->name) == 0) {
		buf_free(&name);
		free(pos);
		imap_tagged(s, "NO", "[CANNOT] Can't move to the same "
		    "mailbox.");
		return;
	}
	m = imap_mbox_get(s->u, buf_cstr(&name), false, &kind, &error);
	buf_free(&name);
	if (m == NULL) {
		free(pos);
		if (kind == STORE_ERR_NONEXISTENT)
			imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't "
			    "exist.");
		else
			imap_tagged_fail(s, move ? "MOVE" : "COPY", error);
		return;
	}
	if (n == 0) {
		/* RFC 9051 §6.4.9: a UID set that names nothing is fine. */
		free(pos);
		imap_mbox_unref(&m);
		imap_tagged(s, "OK", "No messages found.");
		return;
	}
	if (store_append_begin(m->mb, &sa, &error) < 0)
		goto fail;
	src_uids = xreallocarray(NULL, n, sizeof(*src_uids));
	for (i = 0; i < n; i++) {
		int64_t idx = imap_view_index(s, pos[i]);
		const struct store_msg *sm;

		if (idx < 0) {
			/* RFC 2180 §4.4.1: all or nothing. */
			store_append_abort(&sa);
			free(pos);
			free(src_uids);
			imap_mbox_unref(&m);
			imap_tagged(s, "NO", "[EXPUNGEISSUED] Some of the "
			    "requested messages no longer exist.");
			return;
		}
		sm = store_mailbox_msg(src, (uint32_t)idx);
		if (store_append_copy(sa, src, (uint32_t)idx,
		    sm->flags & ~STORE_RECENT,
		    imap_keywords_map(src, sm->keywords, m->mb),
		    sm->internal_date, &error) < 0)
			goto fail;
		src_uids[k++] = sm->uid;
	}
	imap_mbox_sync_cb(m, &cb);
	if (store_append_commit(&sa, &cb, &dst_uids, &nd, &error) < 0)
		goto fail;
	imap_mbox_saved(m, dst_uids, nd);
	if (imap_mbox_sync(m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    m->name, error);
	buf_init(&b, 0);
	if (dst_uids != NULL && nd == k) {
		/* RFC 4315 §3 */
		buf_printf(&b, "[COPYUID %u ",
		    store_mailbox_uidvalidity(m->mb));
		imap_uid_list(src_uids, k, &b);
		buf_append_char(&b, ' ');
		imap_uid_list(dst_uids, nd, &b);
		buf_append_str(&b, "] ");
	}
	imap_mbox_unref(&m);
	if (!move) {
		imap_tagged(s, "OK", "%sCopy completed.", buf_cstr(&b));
	} else {
		/* RFC 6851 §3.3: COPYUID first, then the EXPUNGEs. */
		if (b.len > 0)
			imap_reply(s, "* OK %sMoved UIDs.", buf_cstr(&b));
		if (store_mailbox_expunge_uids(src, src_uids, k, &error) < 0 ||
		    imap_mbox_sync(s->sel, &error) < 0)
			imap_tagged_fail(s, "MOVE", error);
		else
			imap_tagged(s, "OK", "Move completed.");
	}
	buf_free(&b);
	free(pos);
	free(src_uids);
	free(dst_uids);
	return;
fail:
	store_append_abort(&sa);
	imap_mbox_unref(&m);
	free(pos);
	free(src_uids);
	imap_tagged_fail(s, move ? "MOVE" : "COPY", error);
}
