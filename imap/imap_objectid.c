/*
 * imap_objectid: the object ids of RFC 8474 that SEARCH EMAILID compares
 * and FETCH EMAILID shows.
 *
 * An EMAILID must not change while the message exists and must never
 * name another message (RFC 8474 §5.1).  The pair (UIDVALIDITY, UID)
 * has both properties within a mailbox: UIDs are never reused under one
 * UIDVALIDITY, and the store keeps both across restarts.  The id does
 * not follow a message into another mailbox (COPY gives a new one),
 * which RFC 8474 §5.1 allows ("SHOULD", not "MUST").  Mailboxes are
 * told apart by UIDVALIDITY only, which the store picks from the clock
 * at creation: two mailboxes made in the same second may share ids,
 * which only matters to a client comparing ids across mailboxes.
 */
#include "config.h"

#include <stdio.h>

#include "imap.h"
#include "store.h"

void
imap_msg_emailid(const struct imap_mbox *m, const struct store_msg *sm,
    char *out, size_t size)
{
	/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474 §7):
	 * a letter first, so it never looks like a number. */
	(void)snprintf(out, size, "M%08x%08x", m->uidvalidity, sm->uid);
}
