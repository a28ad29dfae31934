/*
 * imap_cmd_sort: SORT and UID SORT (RFC 5256 §3, with DISPLAYFROM and
 * DISPLAYTO of RFC 5957 and the RETURN options of ESORT, RFC 5267 §3),
 * THREAD and UID THREAD (RFC 5256 §3; the algorithms are in
 * imap_thread.c).
 *
 * The search program runs first (imap_search_run()); then the sort keys
 * of the messages that matched come from the store's cache (store.h:
 * base subject, first addresses, display names, sent date, the
 * Message-ID fields), so a SORT of a big mailbox reads no message file
 * once the cache is filled.  Messages the cache does not know yet are
 * read to fill it, IMAP_SEARCH_BATCH of them per turn of the event loop.
 * Strings compare under i;unicode-casemap (RFC 5255 §4, RFC 5051): they
 * are casemapped once when loaded, then compared as octets.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "imap_search.h"
#include "imap_thread.h"
#include "log.h"
#include "store.h"
#include "unicase.h"
#include "xmalloc.h"

/* The most sort criteria one SORT may give (each key once is 9; a
 * REVERSE of each doubles nothing). */
#define IMAP_SORT_MAX_CRITERIA	16
/* Bytes of a string sort key kept per message: strings equal that far
 * compare equal (then mailbox order decides); this bounds the memory of
 * a SORT of many messages with huge headers. */
#define IMAP_SORT_MAX_KEY	1024
/* The same for THREAD: Message-ID and In-Reply-To (their start), and
 * References (its end: the nearest ancestors). */
#define IMAP_THREAD_MAX_FIELD	(16 * 1024)

struct imap_sort_ent {
	uint32_t	 pos;		/* view position */
	int64_t		 num[IMAP_SORT_MAX_CRITERIA];
	char		*str[IMAP_SORT_MAX_CRITERIA];
	/* THREAD */
	struct imap_thread_msg tm;
	char		*subject, *message_id, *in_reply_to, *references;
};

struct imap_sort {
	bool		 thread;
	enum imap_thread_alg alg;
	const struct imap_sort_criterion *cr;
	size_t		 ncr;
	const struct imap_cmd_search *search;
	bool		 uid;
	struct imap_sort_ent *e;
	size_t		 n, next;	/* next entry to load */
	bool		 read_error;
};

static void
imap_sort_free(void *ctx)
{
	struct imap_sort *so = ctx;
	size_t i, j;

	if (so->e != NULL)
		for (i = 0; i < so->n; i++) {
			for (j = 0; j < so->ncr; j++)
				free(so->e[i].str[j]);
			free(so->e[i].subject);
			free(so->e[i].message_id);
			free(so->e[i].in_reply_to);
			free(so->e[i].references);
		}
	free(so->e);
	free(so);
}

/* ---- keys ---- */

/*
 * A string field of message idx from the cache (computed now when it is
 * not there: *computed_r).  casemap: RFC 5051 mapped.  "" when absent,
 * too large for the cache, or unreadable (RFC 5256 §3: an absent field
 * sorts as the empty string).
 */
static char *
imap_sort_string(struct imap_session *s, struct imap_sort *so, uint32_t idx,
    enum store_cache_field field, bool casemap, bool *computed_r)
{
	size_t max = field == STORE_CACHE_MESSAGE_ID ||
	    field == STORE_CACHE_IN_REPLY_TO ||
	    field == STORE_CACHE_REFERENCES ? IMAP_THREAD_MAX_FIELD :
	    IMAP_SORT_MAX_KEY;
	const char *v, *error;
	struct buf b;
	size_t len;
	int r;

	r = store_msg_cached(s->sel->mb, idx, field, &v, &len, &error);
	if (r == 2)
		*computed_r = true;
	if (r < 0)
		so->read_error = true;
	if (r <= 0) {
		v = "";
		len = 0;
	}
	if (len > max && field == STORE_CACHE_REFERENCES) {
		v += len - max;
		len = max;
	}
	buf_init(&b, 0);
	if (casemap)	/* at most max bytes of the mapping are kept */
		(void)unicase_fold(v, len < max ? len : max, &b);
	else
		(void)buf_append(&b, v, len < max ? len : max);
	if (b.len > max)
		b.len = max;
	/* A NUL inside would cut the string: the cache holds header
	 * text, where NUL is not allowed (RFC 5322 §3.5) anyway. */
	v = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return (char *)v;
}

/* RFC 5256 §2.2: the sent date, or the internal date without one. */
static int64_t
imap_sort_sent_date(struct imap_session *s, struct imap_sort *so,
    uint32_t idx, const struct store_msg *m, bool *computed_r)
{
	const char *error;
	int64_t t;
	int r;

	r = store_msg_cached_num(s->sel->mb, idx, STORE_CACHE_SENT_DATE, &t,
	    &error);
	if (r == 2)
		*computed_r = true;
	if (r < 0)
		so->read_error = true;
	if (r <= 0 || t == STORE_CACHE_NO_DATE)
		return (int64_t)m->internal_date;
	return t;
}

static void
imap_sort_load(struct imap_session *s, struct imap_sort *so,
    struct imap_sort_ent *e, bool *computed_r)
{
	int64_t idx = imap_view_index(s, e->pos);
	const struct store_msg *m;
	size_t j;

	if (idx < 0) {
		/* Expunged since the search: the keys of an empty
		 * message, it is reported gone soon. */
		for (j = 0; j < so->ncr; j++)
			e->str[j] = xstrdup("");
		e->subject = xstrdup("");
		e->message_id = xstrdup("");
		e->in_reply_to = xstrdup("");
		e->references = xstrdup("");
		return;
	}
	m = store_mailbox_msg(s->sel->mb, (uint32_t)idx);
	if (so->thread) {
		const char *v, *error;
		size_t len;
		int r;

		e->subject = imap_sort_string(s, so, (uint32_t)idx,
		    STORE_CACHE_SUBJECT_BASE, true, computed_r);
		e->message_id = imap_sort_string(s, so, (uint32_t)idx,
		    STORE_CACHE_MESSAGE_ID, false, computed_r);
		e->in_reply_to = imap_sort_string(s, so, (uint32_t)idx,
		    STORE_CACHE_IN_REPLY_TO, false, computed_r);
		e->references = imap_sort_string(s, so, (uint32_t)idx,
		    STORE_CACHE_REFERENCES, false, computed_r);
		/* Whether the original subject is a reply: from the
		 * decoded Subject: SEARCH matches. */
		r = store_msg_cached(s->sel->mb, (uint32_t)idx,
		    STORE_CACHE_SEARCH_SUBJECT, &v, &len, &error);
		e->tm.reply = r > 0 && imap_thread_subject_is_reply(v, len);
		e->tm.date = imap_sort_sent_date(s, so, (uint32_t)idx, m,
		    computed_r);
		return;
	}
	for (j = 0; j < so->ncr; j++) {
		enum store_cache_field f = 0;

		switch (so->cr[j].key) {
		case IMAP_SORT_ARRIVAL:
			e->num[j] = (int64_t)m->internal_date;
			continue;
		case IMAP_SORT_SIZE:
			e->num[j] = (int64_t)m->vsize;
			continue;
		case IMAP_SORT_DATE:
			e->num[j] = imap_sort_sent_date(s, so, (uint32_t)idx,
			    m, computed_r);
			continue;
		case IMAP_SORT_CC:
			f = STORE_CACHE_CC_MAILBOX;
			break;
		case IMAP_SORT_FROM:
			f = STORE_CACHE_FROM_MAILBOX;
			break;
		case IMAP_SORT_TO:
			f = STORE_CACHE_TO_MAILBOX;
			break;
		case IMAP_SORT_SUBJECT:
			f = STORE_CACHE_SUBJECT_BASE;
			break;
		case IMAP_SORT_DISPLAYFROM:
			f = STORE_CACHE_FROM_DISPLAY;
			break;
		case IMAP_SORT_DISPLAYTO:
			f = STORE_CACHE_TO_DISPLAY;
			break;
		}
		e->str[j] = imap_sort_string(s, so, (uint32_t)idx, f, true,
		    computed_r);
	}
}

/* ---- sorting ---- */

/* qsort() has no context argument; the process is single-threaded. */
static const struct imap_sort *imap_sort_cur;

static bool
imap_sort_is_num(enum imap_sort_key k)
{
	return k == IMAP_SORT_ARRIVAL || k == IMAP_SORT_SIZE ||
	    k == IMAP_SORT_DATE;
}

static int
imap_sort_cmp(const void *a, const void *b)
{
	const struct imap_sort_ent *x = a, *y = b;
	const struct imap_sort *so = imap_sort_cur;
	size_t j;

	for (j = 0; j < so->ncr; j++) {
		int r;

		if (imap_sort_is_num(so->cr[j].key))
			r = x->num[j] < y->num[j] ? -1 : x->num[j] > y->num[j];
		else
			/* Casemapped already: octets compare as
			 * i;unicode-casemap; "" first (RFC 5256 §3). */
			r = strcmp(x->str[j], y->str[j]);
		if (r != 0)
			return so->cr[j].reverse ? -r : r;
	}
	/* RFC 5256 §3: then the mailbox order, never reversed. */
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void
imap_sort_answer(struct imap_session *s, struct imap_sort *so,
    uint64_t modseq)
{
	uint32_t *pos = xreallocarray(NULL, so->n + 1, sizeof(*pos));
	struct buf b;
	size_t i;

	imap_sort_cur = so;
	qsort(so->e, so->n, sizeof(*so->e), imap_sort_cmp);
	imap_sort_cur = NULL;
	for (i = 0; i < so->n; i++)
		pos[i] = so->e[i].pos;
	if (so->search->esearch) {
		/* RFC 5267 §3: ESORT answers ESEARCH, in sort order. */
		if ((so->search->ret & IMAP_SEARCH_RET_SAVE) != 0)
			imap_search_save(s, so->search, pos, so->n);
		imap_search_esearch(s, so->search, so->uid, pos, so->n, true,
		    modseq);
	} else {
		buf_init(&b, 0);
		buf_append_str(&b, "* SORT");
		for (i = 0; i < so->n; i++)
			buf_printf(&b, " %u", so->uid ?
			    s->view[pos[i]].uid : pos[i] + 1);
		/* RFC 7162 §3.1.5 */
		if (modseq != 0)
			buf_printf(&b, " (MODSEQ %llu)",
			    (unsigned long long)modseq);
		imap_reply(s, "%s", buf_cstr(&b));
		buf_free(&b);
	}
	free(pos);
}

static void
imap_thread_answer(struct imap_session *s, struct imap_sort *so)
{
	struct imap_thread_msg *tm;
	struct buf b;
	size_t i;

	tm = xreallocarray(NULL, so->n + 1, sizeof(*tm));
	for (i = 0; i < so->n; i++) {
		struct imap_sort_ent *e = &so->e[i];

		tm[i] = e->tm;
		tm[i].num = so->uid ? s->view[e->pos].uid : e->pos + 1;
		tm[i].subject = e->subject;
		tm[i].message_id = e->message_id;
		tm[i].in_reply_to = e->in_reply_to;
		tm[i].references = e->references;
	}
	buf_init(&b, 0);
	buf_append_str(&b, "* THREAD");
	if (so->n > 0)
		buf_append_char(&b, ' ');
	imap_thread_write(so->alg, tm, so->n, &b);
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
	free(tm);
}

/* The program was evaluated: load keys in batches, then answer. */
static int
imap_sort_done(struct imap_session *s, struct imap_search *sc, void *ctx)
{
	struct imap_sort *so = ctx;
	unsigned int reads = 0;

	if (so->e == NULL) {
		const uint32_t *hits = imap_search_hits(sc, &so->n);
		size_t i;

		so->e = xcalloc(so->n + 1, sizeof(*so->e));
		for (i = 0; i < so->n; i++)
			so->e[i].pos = hits[i];
	}
	while (so->next < so->n) {
		bool computed = false;

		imap_sort_load(s, so, &so->e[so->next++], &computed);
		/* The others get a turn after IMAP_SEARCH_BATCH messages
		 * read, or a hundred times that many from the cache. */
		reads += computed ? 100 : 1;
		if (reads >= IMAP_SEARCH_BATCH * 100 && so->next < so->n)
			return 0;
	}
	if (so->read_error)
		log_warning("imap(%s): %s could not read some messages",
		    s->log_user, so->thread ? "THREAD" : "SORT");
	if (so->thread) {
		imap_thread_answer(s, so);
		imap_tagged(s, "OK", "Thread completed.");
	} else {
		imap_sort_answer(s, so, imap_search_modseq(sc));
		imap_tagged(s, "OK", "Sort completed.");
	}
	return 1;
}

void
imap_cmd_sort(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_sort *c = &cmd->u.sort;
	struct imap_sort *so;

	if (c->criteria_count > IMAP_SORT_MAX_CRITERIA) {
		imap_tagged(s, "BAD", "Too many sort criteria.");
		(void)imap_session_bad(s);
		return;
	}
	so = xcalloc(1, sizeof(*so));
	so->cr = c->criteria;
	so->ncr = c->criteria_count;
	so->search = &c->search;
	so->uid = cmd->uid;
	(void)imap_search_run(s, &c->search, cmd->uid, imap_sort_done, so,
	    imap_sort_free);
}

void
imap_cmd_thread(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd_thread *c = &cmd->u.thread;
	struct imap_sort *so;

	so = xcalloc(1, sizeof(*so));
	so->thread = true;
	so->alg = c->alg;
	so->search = &c->search;
	so->uid = cmd->uid;
	(void)imap_search_run(s, &c->search, cmd->uid, imap_sort_done, so,
	    imap_sort_free);
}
