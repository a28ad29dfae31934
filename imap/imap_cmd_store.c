/*
 * imap_cmd_store: STORE and UID STORE (RFC 9051 §6.4.6): replace, add
 * or remove flags and keywords.  Each change goes to the store at once
 * (Maildir: a rename, the ":2," suffix being the truth); the new flags
 * are answered with an untagged FETCH unless .SILENT, and queued to the
 * other sessions of the mailbox.  A message expunged meanwhile is
 * skipped (RFC 2180 §4.2.1).  The answer is a continuation, so a STORE
 * over 100,000 messages obeys the output bound like a FETCH.
 *
 * CONDSTORE (RFC 7162 §3.1.3): with UNCHANGEDSINCE only the messages
 * whose modseq is not above it are changed; the others are named in the
 * [MODIFIED set] of the tagged OK.
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
	/* UNCHANGEDSINCE (RFC 7162 §3.1.3) and the messages that failed
	 * it (sequence numbers, or UIDs for UID STORE), ascending. */
	bool		 conditional;
	uint64_t	 unchangedsince;
	uint32_t	*modified;
	size_t		 nmodified;
};

static void
imap_store_free(void *ctx)
{
	struct imap_store *sc = ctx;

	free(sc->pos);
	free(sc->modified);
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
		uint64_t okw, omodseq;
		const char *error;
		struct buf b;
		bool modseq;

		if (idx < 0)
			continue;
		m = store_mailbox_msg(mb, (uint32_t)idx);
		if (sc->conditional && m->modseq > sc->unchangedsince) {
			/*
			 * RFC 7162 §3.1.3: changed since the client looked:
			 * left alone, named in [MODIFIED], and its state
			 * told with the tagged reply (Example 10).
			 */
			sc->modified[sc->nmodified++] = sc->uid ? m->uid :
			    pos + 1;
			imap_session_mark_flags(s, m->uid);
			continue;
		}
		oflags = m->flags;
		okw = m->keywords;
		omodseq = m->modseq;
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
		/*
		 * With CONDSTORE on, a FETCH with the MODSEQ (and UID, RFC
		 * 7162 §3.2.4) even for .SILENT when the modseq moved, and
		 * always for a conditional STORE (§3.1.3), which also
		 * answers a STORE that changed nothing: its modseq stays
		 * (§3.1.11).
		 */
		modseq = s->condstore && imap_session_modseq_ok(s);
		if (sc->silent && !(modseq && (sc->conditional ||
		    m->modseq != omodseq)))
			continue;
		buf_init(&b, 0);
		buf_printf(&b, "* %u FETCH (", pos + 1);
		if (sc->uid || modseq)
			buf_printf(&b, "UID %u ", m->uid);
		if (!sc->silent) {
			buf_append_str(&b, "FLAGS ");
			imap_flags_format(s, m, (s->view[pos].flags &
			    IMAP_VIEW_RECENT) != 0, &b);
			if ((s->view[pos].flags & IMAP_VIEW_FLAGCHG) != 0) {
				s->view[pos].flags &= ~IMAP_VIEW_FLAGCHG;
				s->flagchg--;
			}
			buf_append_char(&b, ' ');
		}
		if (modseq)
			buf_printf(&b, "MODSEQ (%llu) ",
			    (unsigned long long)m->modseq);
		b.len--;	/* the last space */
		buf_append_char(&b, ')');
		imap_reply(s, "%s", buf_cstr(&b));
		buf_free(&b);
		if (imap_session_out_full(s))
			return 0;
	}
	if (sc->failed)
		imap_tagged(s, "NO", "[SERVERBUG] Some flags could not be "
		    "changed. Refer to server log for more information.");
	else if (sc->nmodified > 0) {
		struct buf b;

		buf_init(&b, 0);
		imap_numbers_format(sc->modified, sc->nmodified, &b);
		imap_tagged(s, "OK", "[MODIFIED %s] Conditional STORE failed.",
		    buf_cstr(&b));
		buf_free(&b);
	} else
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
		/* RFC 7162 §3.1.2.2 */
		if (!imap_session_modseq_ok(s)) {
			imap_tagged(s, "BAD", "Mailbox has no modsequences "
			    "(NOMODSEQ).");
			(void)imap_session_bad(s);
			return;
		}
		imap_session_condstore(s);
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
	if (st->has_unchangedsince) {
		sc->conditional = true;
		sc->unchangedsince = st->unchangedsince;
		sc->modified = xreallocarray(NULL, sc->n + 1,
		    sizeof(*sc->modified));
	}
	imap_session_continue(s, imap_store_cont, sc, imap_store_free);
}
