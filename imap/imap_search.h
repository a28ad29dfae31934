/*
 * imap_search: what SEARCH (imap_cmd_search.c) shares with SORT and
 * THREAD (imap_cmd_sort.c, imap_thread.c): running a search program over
 * the view in batches, and writing ESEARCH answers.
 */
#ifndef POSTERN_IMAP_SEARCH_H
#define POSTERN_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct imap_session;
struct imap_cmd_search;
struct imap_search;

/*
 * Called once the program has been evaluated, as a continuation step
 * (imap_cont_fn): 1 when the command is answered, 0 to be called again
 * (next turn), -1 to end the session.  ctx is the caller's.
 */
typedef int imap_search_done_fn(struct imap_session *s,
    struct imap_search *sc, void *ctx);

/*
 * Evaluate c over the selected mailbox, then call done (with ctx, freed
 * by ctx_free with the search).  false when the command was answered
 * already (a BAD key, an unknown charset): ctx is freed then.
 */
bool	imap_search_run(struct imap_session *s,
	    const struct imap_cmd_search *c, bool uid,
	    imap_search_done_fn *done, void *ctx, void (*ctx_free)(void *));
/* The view positions that matched, ascending. */
const uint32_t *imap_search_hits(const struct imap_search *sc,
	    size_t *count_r);
/* The highest modseq of the hits when the program used MODSEQ (RFC
 * 7162 §3.1.5), else 0. */
uint64_t imap_search_modseq(const struct imap_search *sc);

/*
 * The ESEARCH response (RFC 4731, RFC 5267) for the results pos[0..n)
 * (view positions) in their order: MIN, MAX, COUNT, ALL, PARTIAL as c
 * asks, and MODSEQ when modseq is not 0.  MIN and MAX are the first and
 * last of pos[], ALL keeps its order (ranges only where numbers ascend,
 * RFC 5267 §3.2).  sorted: a SORT answer, where UPDATE is refused with
 * NOUPDATE (no CONTEXT=SORT).
 */
void	imap_search_esearch(struct imap_session *s,
	    const struct imap_cmd_search *c, bool uid, const uint32_t *pos,
	    size_t n, bool sorted, uint64_t modseq);
/* RETURN (SAVE) (RFC 5182 §2.4): remember the UIDs of pos[0..n) as the
 * saved result (with only MIN and MAX asked, only those). */
void	imap_search_save(struct imap_session *s,
	    const struct imap_cmd_search *c, const uint32_t *pos, size_t n);
/* Append the numbers (UIDs with uid) of pos[0..n) as a sequence set,
 * ranges only where numbers ascend by one. */
void	imap_search_set_write(struct imap_session *s, bool uid,
	    const uint32_t *pos, size_t n, struct buf *out);

#endif
