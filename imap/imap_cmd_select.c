/*
 * imap_cmd_select: opening and leaving a mailbox and removing its
 * deleted messages: SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3), CLOSE
 * (§6.4.1), UNSELECT (RFC 3691, §6.4.2), EXPUNGE and UID EXPUNGE
 * (§6.4.3, RFC 4315 §2.1), and STATUS (§6.3.11), which reads a mailbox
 * without selecting it.  With them the CONDSTORE and QRESYNC parts (RFC
 * 7162): HIGHESTMODSEQ or NOMODSEQ at SELECT, SELECT ... (QRESYNC ...),
 * [HIGHESTMODSEQ] after an EXPUNGE, STATUS HIGHESTMODSEQ; and MAILBOXID
 * (RFC 8474 §4).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

/*
 * The MAILBOXID of m (RFC 8474 §4): the store's id of the mailbox, which
 * a RENAME keeps and a DELETE ends.  Only a mailbox whose UID map cannot
 * be written has none; it gets the name-based id of imap_mbox_id().
 */
static void
select_mbox_id(struct imap_mbox *m, char *id, size_t size)
{
	const char *guid = store_mailbox_guid(m->mb);

	if (guid != NULL)
		(void)snprintf(id, size, "%s", guid);
	else
		imap_mbox_id(m, id, size);
}

/* Answer NO for a mailbox that could not be opened. */
static void
imap_open_failed(struct imap_session *s, int kind, const char *error)
{
	if (kind == STORE_ERR_NONEXISTENT)
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
	else
		imap_tagged_fail(s, "open", error);
}

/*
 * SELECT ... (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))
 * after the usual responses (RFC 7162 §3.2.5): what the client missed,
 * as VANISHED (EARLIER) and the FETCHes of the messages changed since
 * its modseq.  Returns true when that answer (a continuation) also
 * sends the tagged OK.
 */
static bool
imap_select_qresync(struct imap_session *s, const struct imap_cmd_select *c,
    bool ro)
{
	struct store_mailbox *mb = s->sel->mb;
	struct imap_seqset all;
	struct imap_seq_range r;
	const struct imap_seqset *known;
	uint32_t uidnext = store_mailbox_uidnext(mb), min_uid = 0;
	char text[64];

	/* A wrong UIDVALIDITY, or no modseqs: as if nothing changed; the
	 * client sees the UIDVALIDITY and decides (§3.2.5, §3.2.5.1). */
	if (c->uidvalidity != store_mailbox_uidvalidity(mb) ||
	    !imap_session_modseq_ok(s))
		return false;
	memset(&all, 0, sizeof(all));
	if (c->has_known_uids)
		known = &c->known_uids;
	else {
		/* "1:<maxuid>" (§3.2.5.1); nothing for a mailbox that
		 * never had a message. */
		if (uidnext <= 1)
			return false;
		r.lo = 1;
		r.hi = uidnext - 1;
		all.ranges = &r;
		all.count = 1;
		known = &all;
	}
	if (c->has_seq_match) {
		/*
		 * §3.2.5.2: the client knows of every expunge up to the
		 * last pair of its sample that still matches, in order,
		 * up to the first that does not.
		 */
		struct imap_seq_range *sr, *ur;
		size_t ns, nu, a = 0, b = 0;
		uint32_t seq, uid;

		sr = xreallocarray(NULL, c->known_seqs.count + 1,
		    sizeof(*sr));
		ur = xreallocarray(NULL, c->known_seq_uids.count + 1,
		    sizeof(*ur));
		ns = imap_seqset_resolve(&c->known_seqs, 0, sr);
		nu = imap_seqset_resolve(&c->known_seq_uids, 0, ur);
		seq = ns > 0 ? sr[0].lo : 0;
		uid = nu > 0 ? ur[0].lo : 0;
		while (a < ns && b < nu) {
			if (seq == 0 || seq > s->count ||
			    s->view[seq - 1].uid != uid)
				break;
			min_uid = uid;
			if (seq++ == sr[a].hi && ++a < ns)
				seq = sr[a].lo;
			if (uid++ == ur[b].hi && ++b < nu)
				uid = ur[b].lo;
		}
		free(sr);
		free(ur);
	}
	imap_vanished_earlier(s, known, 0, c->modseq, min_uid);
	(void)snprintf(text, sizeof(text), "[%s] %s completed.",
	    ro ? "READ-ONLY" : "READ-WRITE", ro ? "Examine" : "Select");
	imap_fetch_changed(s, known, c->modseq, text);
	return true;
}

void
imap_cmd_select(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_select *c = &cmd->u.select;
	bool ro = cmd->type == IMAP_CMD_EXAMINE;
	struct store_mailbox *mb;
	struct imap_mbox *m;
	const char *error;
	struct buf name, b;
	uint32_t i, recent = 0, unseen = 0;
	char id[IMAP_OBJECTID_MAX];
	int kind;

	/* RFC 7162 §3.2.5: QRESYNC only after ENABLE QRESYNC; the
	 * selected mailbox stays selected. */
	if (c->qresync && !s->qresync) {
		imap_tagged(s, "BAD", "QRESYNC is not enabled.");
		(void)imap_session_bad(s);
		return;
	}
	/* RFC 9051 §6.3.2: a SELECT first leaves the selected mailbox,
	 * without expunging, whether or not the new one can be opened;
	 * RFC 7162 §3.2.11: [CLOSED] marks where its responses end. */
	if (s->sel != NULL) {
		imap_session_unselect(s);
		imap_reply(s, "* OK [CLOSED] Previous mailbox closed.");
	}
	/* RFC 7162 §3.1.8: an enabling command; HIGHESTMODSEQ follows. */
	if (c->condstore || c->qresync)
		s->condstore = true;
	buf_init(&name, 0);
	if (imap_name_to_store(c->mailbox, &name) < 0) {
		buf_free(&name);
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
		return;
	}
	m = imap_mbox_get(s->u, buf_cstr(&name), ro, &kind, &error);
	buf_free(&name);
	if (m == NULL) {
		imap_open_failed(s, kind, error);
		return;
	}
	if (imap_mbox_sync(m, &error) < 0) {
		imap_mbox_unref(&m);
		imap_tagged_fail(s, "sync", error);
		return;
	}
	imap_session_select(s, m, ro);
	mb = m->mb;
	for (i = 0; i < s->count; i++) {
		if ((s->view[i].flags & IMAP_VIEW_RECENT) != 0)
			recent++;
		if (unseen == 0 && (store_mailbox_msg(mb, i)->flags &
		    STORE_SEEN) == 0)
			unseen = i + 1;
	}
	buf_init(&b, 0);
	imap_flags_all(mb, false, &b);
	imap_reply(s, "* FLAGS %s", buf_cstr(&b));
	buf_reset(&b);
	if (ro)
		imap_reply(s, "* OK [PERMANENTFLAGS ()] Read-only mailbox.");
	else {
		imap_flags_all(mb, true, &b);
		imap_reply(s, "* OK [PERMANENTFLAGS %s] Flags permitted.",
		    buf_cstr(&b));
	}
	buf_free(&b);
	imap_reply(s, "* %u EXISTS", s->count);
	if (!s->rev2) {
		imap_reply(s, "* %u RECENT", recent);
		if (unseen > 0)
			imap_reply(s, "* OK [UNSEEN %u] First unseen.", unseen);
	}
	imap_reply(s, "* OK [UIDVALIDITY %u] UIDs valid",
	    store_mailbox_uidvalidity(mb));
	imap_reply(s, "* OK [UIDNEXT %u] Predicted next UID",
	    store_mailbox_uidnext(mb));
	select_mbox_id(m, id, sizeof(id));
	imap_reply(s, "* OK [MAILBOXID (%s)] Ok", id);	/* RFC 8474 §4.2 */
	if (s->condstore) {
		/* RFC 7162 §3.1.2 */
		if (imap_session_modseq_ok(s))
			imap_reply(s, "* OK [HIGHESTMODSEQ %llu] Highest",
			    (unsigned long long)
			    store_mailbox_highestmodseq(mb));
		else
			imap_reply(s, "* OK [NOMODSEQ] No permanent "
			    "modsequences");
	}
	if (c->qresync && imap_select_qresync(s, c, ro))
		return;
	imap_tagged_only(s, "OK", "[%s] %s completed.", ro ? "READ-ONLY" :
	    "READ-WRITE", ro ? "Examine" : "Select");
}

void
imap_cmd_unselect(struct imap_session *s, const struct imap_command *cmd)
{
	(void)cmd;
	imap_session_unselect(s);
	imap_tagged_only(s, "OK", "Unselect completed.");
}

/*
 * Remove the messages of the view marked \Deleted (those in only when
 * given).  The number removed, or -1 with *error_r.
 */
static int
imap_expunge_deleted(struct imap_session *s, const uint32_t *only,
    size_t nonly, const char **error_r)
{
	struct store_mailbox *mb = s->sel->mb;
	uint32_t *uids = xreallocarray(NULL, s->count + 1, sizeof(*uids));
	size_t n = 0, i;
	int ret;

	for (i = 0; i < (only != NULL ? nonly : s->count); i++) {
		uint32_t pos = only != NULL ? only[i] : (uint32_t)i;
		int64_t idx = imap_view_index(s, pos);
		const struct store_msg *sm;

		if (idx < 0)
			continue;
		sm = store_mailbox_msg(mb, (uint32_t)idx);
		if ((sm->flags & STORE_DELETED) == 0)
			continue;
		uids[n++] = sm->uid;
		/* For the sessions that cannot be told at once. */
		imap_mbox_ghost_add(s->sel, sm);
	}
	ret = store_mailbox_expunge_uids(mb, uids, n, error_r);
	free(uids);
	if (ret < 0)
		return -1;
	/* The store view changes at the sync; every session of the
	 * mailbox learns it there. */
	if (n > 0 && imap_mbox_sync(s->sel, error_r) < 0)
		return -1;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

void
imap_cmd_close(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error;

	(void)cmd;
	/* RFC 9051 §6.4.1: expunge silently, then leave; on read-only
	 * mailboxes just leave. */
	if (!s->readonly && imap_expunge_deleted(s, NULL, 0, &error) < 0)
		log_error("imap(%s): CLOSE could not expunge %s: %s",
		    s->log_user, s->sel->name, error);
	imap_session_unselect(s);
	imap_tagged_only(s, "OK", "Close completed.");
}

void
imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd)
{
	uint32_t *pos = NULL;
	const char *error;
	size_t n = 0;
	int r;

	if (s->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only.");
		return;
	}
	if (cmd->uid && imap_set_resolve(s, &cmd->u.expunge.set, true, &pos,
	    &n, &error) < 0) {
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	r = imap_expunge_deleted(s, cmd->uid ? pos : NULL, n, &error);
	free(pos);
	if (r < 0) {
		imap_tagged_fail(s, "EXPUNGE", error);
		return;
	}
	/* The EXPUNGE (or VANISHED) responses come with the tagged OK;
	 * after QRESYNC with the modseq of the expunge (RFC 7162 §3.2.7,
	 * §3.2.9), which the sync gave. */
	if (r > 0 && s->qresync && imap_session_modseq_ok(s))
		imap_tagged(s, "OK", "[HIGHESTMODSEQ %llu] Expunge completed.",
		    (unsigned long long)store_mailbox_highestmodseq(
		    s->sel->mb));
	else
		imap_tagged(s, "OK", "Expunge completed.");
}

/* ---- STATUS ---- */

struct imap_mbox *
imap_status_open(struct imap_session *s, const char *store_name, int *kind_r,
    const char **error_r)
{
	struct imap_mbox *m;

	*kind_r = 0;
	/* The open copy is current; a new one is opened read-only so it
	 * does not take \Recent away from a later SELECT. */
	m = imap_mbox_find(s->u, store_name, false);
	if (m == NULL)
		m = imap_mbox_find(s->u, store_name, true);
	if (m != NULL) {
		m->refs++;
		if (imap_mbox_sync(m, error_r) < 0) {
			imap_mbox_unref(&m);
			*kind_r = STORE_ERR_TEMP;
			return NULL;
		}
		return m;
	}
	return imap_mbox_get(s->u, store_name, true, kind_r, error_r);
}

void
imap_status_items(struct imap_session *s, struct imap_mbox *m,
    unsigned int items, struct buf *out)
{
	struct store_mailbox *mb = m->mb;
	uint32_t i, n = store_mailbox_count(mb), unseen = 0, deleted = 0;
	uint64_t size = 0;
	bool first = true;

	(void)s;
	for (i = 0; i < n; i++) {
		const struct store_msg *sm = store_mailbox_msg(mb, i);

		if ((sm->flags & STORE_SEEN) == 0)
			unseen++;
		if ((sm->flags & STORE_DELETED) != 0)
			deleted++;
		size += sm->vsize;
	}
#define ITEM(bit, fmt, val) \
	if ((items & (bit)) != 0) { \
		buf_printf(out, "%s" fmt, first ? "" : " ", (val)); \
		first = false; \
	}
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES %u", n);
	ITEM(IMAP_STATUS_RECENT, "RECENT %u", store_mailbox_recent(mb));
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT %u", store_mailbox_uidnext(mb));
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY %u",
	    store_mailbox_uidvalidity(mb));
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN %u", unseen);
	ITEM(IMAP_STATUS_SIZE, "SIZE %llu", (unsigned long long)size);
	ITEM(IMAP_STATUS_DELETED, "DELETED %u", deleted);
	/* RFC 7162 §3.1.7: 0 for a mailbox without persistent modseqs. */
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu",
	    store_mailbox_modseq_persistent(mb) ? (unsigned long long)
	    store_mailbox_highestmodseq(mb) : 0ULL);
	if ((items & IMAP_STATUS_MAILBOXID) != 0) {
		char id[IMAP_OBJECTID_MAX];

		select_mbox_id(m, id, sizeof(id));
		ITEM(IMAP_STATUS_MAILBOXID, "MAILBOXID (%s)", id);
	}
	ITEM(IMAP_STATUS_APPENDLIMIT, "APPENDLIMIT %s",
	    imap_append_limit_text());
#undef ITEM
}

void
imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_status *c = &cmd->u.status;
	struct imap_mbox *m;
	const char *error;
	struct buf name, b;
	int kind;

	buf_init(&name, 0);
	if (imap_name_to_store(c->mailbox, &name) < 0) {
		buf_free(&name);
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
		return;
	}
	m = imap_status_open(s, buf_cstr(&name), &kind, &error);
	buf_free(&name);
	if (m == NULL) {
		imap_open_failed(s, kind, error);
		return;
	}
	/* RFC 7162 §3.1: STATUS (HIGHESTMODSEQ) enables CONDSTORE. */
	if ((c->items & IMAP_STATUS_HIGHESTMODSEQ) != 0)
		imap_session_condstore(s);
	buf_init(&b, 0);
	buf_append_str(&b, "* STATUS ");
	imap_session_name_write(s, &b, c->mailbox);
	buf_append_str(&b, " (");
	imap_status_items(s, m, c->items, &b);
	buf_append_char(&b, ')');
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
	imap_mbox_unref(&m);
	imap_tagged(s, "OK", "Status completed.");
}
