/*
 * imap_cmd_store: STORE and UID STORE (RFC 9051 §6.4.6): replace, add
 * or remove flags and keywords.  Each change goes to the store at once
 * (Maildir: a rename, the ":2," suffix being the truth); the new flags
 * are answered with an untagged FETCH unless .SILENT, and queued to the
 * other sessions of the mailbox.  A message expunged meanwhile is
 * skipped (RFC 2180 §4.2.1).  The answer is a continuation, so a STORE
 * over 100,000 messages obeys the output bound like a FETCH.
 */
#include "config.h"

#include <stdlib.h>

#include "imap.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

struct imap_store {
	uint32_t	*pos;
	size_t		 n, i;
	uint32_t	 flags;
	uint64_t	 keywords;
	int		 mode;
	bool		 silent;
	bool		 uid;
	bool		 failed;
};

static void
imap_store_free(void *ctx)
{
	struct imap_store *sc = ctx;

	free(sc->pos);
	free(sc);
}

static int
imap_store_cont(struct imap_session *s)
{
	struct imap_store *sc = s->cont_ctx;
	struct store_mailbox *mb = s->sel->mb;

	while (sc->i < sc->n) {
		uint32_t pos = sc->pos[sc->i++];
		int64_t idx = imap_view_index(s, pos);
		const struct store_msg *m;
		uint32_t oflags;
		uint64_t okw;
		const char *error;
		struct buf b;

		if (idx < 0)
			continue;
		m = store_mailbox_msg(mb, (uint32_t)idx);
		oflags = m->flags;
		okw = m->keywords;
		if (store_msg_set_flags(mb, (uint32_t)idx, sc->flags,
		    sc->keywords, sc->mode, &error) < 0) {
			log_error("imap(%s): STORE on message %u: %s",
			    s->log_user, m->uid, error);
			sc->failed = true;
			continue;
		}
		m = store_mailbox_msg(mb, (uint32_t)idx);
		if (m->flags != oflags || m->keywords != okw)
			imap_mbox_flags_changed(s->sel, m->uid, s);
		if (sc->silent)
			continue;
		buf_init(&b, 0);
		imap_flags_format(s, m, (s->view[pos].flags &
		    IMAP_VIEW_RECENT) != 0, &b);
		if (sc->uid)
			imap_reply(s, "* %u FETCH (UID %u FLAGS %s)", pos + 1,
			    m->uid, buf_cstr(&b));
		else
			imap_reply(s, "* %u FETCH (FLAGS %s)", pos + 1,
			    buf_cstr(&b));
		buf_free(&b);
		if ((s->view[pos].flags & IMAP_VIEW_FLAGCHG) != 0) {
			s->view[pos].flags &= ~IMAP_VIEW_FLAGCHG;
			s->flagchg--;
		}
		if (imap_session_out_full(s))
			return 0;
	}
	if (sc->failed)
		imap_tagged(s, "NO", "[SERVERBUG] Some flags could not be "
		    "changed. Refer to server log for more information.");
	else
		imap_tagged(s, "OK", "Store completed.");
	return 1;
}

void
imap_cmd_store(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_store *st = &cmd->u.store;
	struct imap_store *sc;
	const char *error;

	if (st->has_unchangedsince) {
		imap_tagged(s, "BAD", "UNCHANGEDSINCE is not supported.");
		(void)imap_session_bad(s);
		return;
	}
	if (s->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only.");
		return;
	}
	sc = xcalloc(1, sizeof(*sc));
	if (imap_set_resolve(s, &st->set, cmd->uid, &sc->pos, &sc->n,
	    &error) < 0) {
		imap_store_free(sc);
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	/* Removing a keyword the mailbox never had needs no new name. */
	if (imap_flags_to_store(s->sel->mb, &st->flags, st->mode >= 0,
	    &sc->flags, &sc->keywords, &error) < 0) {
		imap_store_free(sc);
		imap_tagged(s, "NO", "[LIMIT] %s.", error);
		return;
	}
	sc->mode = st->mode;
	sc->silent = st->silent;
	sc->uid = cmd->uid;
	imap_session_continue(s, imap_store_cont, sc, imap_store_free);
}
