/*
 * imap_thread: the threading algorithms of THREAD (RFC 5256 §3):
 * ORDEREDSUBJECT, REFERENCES (RFC 5256 §3, "REFERENCES", steps 1-6) and
 * REFS (REFERENCES without the merging of threads by subject, step 5,
 * and with the threads ordered by their latest message).  Pure: the
 * messages' data in, the THREAD response's threads out, so the unit
 * tests run it without a mailbox.
 */
#ifndef POSTERN_IMAP_THREAD_H
#define POSTERN_IMAP_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"

struct buf;

/* At most this many Message IDs of one References field are used (the
 * last ones: the nearest ancestors). */
#define IMAP_THREAD_MAX_REFS	256
/* Message IDs longer than this are not taken as Message IDs. */
#define IMAP_THREAD_MAX_ID	998
/* Threads deeper than this are cut (a link below it is not made), which
 * bounds the time of the loop checks and the depth of the recursion. */
#define IMAP_THREAD_MAX_DEPTH	1000
/* Dummies (referenced, absent messages) made per message threaded: a
 * bound on the memory of mail made to have many References. */
#define IMAP_THREAD_DUMMIES_PER_MSG	16

struct imap_thread_msg {
	uint32_t	 num;		/* what the answer shows: sequence
					 * number or UID */
	int64_t		 date;		/* sent date (RFC 5256 §2.2) */
	/* Base subject (RFC 5256 §2.1), casemapped (i;unicode-casemap),
	 * and whether base subject extraction found a reply or forward. */
	const char	*subject;
	bool		 reply;
	/* The fields' values as in the header ("" when absent). */
	const char	*message_id;
	const char	*in_reply_to;
	const char	*references;
};

/*
 * Thread msgs[0..n) (in mailbox order: the tie-break of equal dates)
 * with alg, appending the threads ("(2)(3 6 (4 23)(44 7 96))") to out.
 */
void	imap_thread_write(enum imap_thread_alg alg,
	    const struct imap_thread_msg *msgs, size_t n, struct buf *out);

/*
 * Whether RFC 5256 §2.1 base subject extraction of a decoded subject
 * removes a subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper
 * (§3 REFERENCES: the message is a reply or forward).
 */
bool	imap_thread_subject_is_reply(const char *s, size_t len);

#endif
