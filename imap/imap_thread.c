/*
 * imap_thread: THREAD=ORDEREDSUBJECT, THREAD=REFERENCES and THREAD=REFS
 * (imap_thread.h).  REFERENCES follows RFC 5256 §3 step by step; the
 * comments name the steps.  Messages and the dummies that stand for
 * referenced but absent messages are nodes of one tree under a root;
 * Message IDs are found through a hash table.  Every loop is bounded by
 * the number of nodes: a link that would make a loop is never made
 * (steps 1.A, 1.B), so walking up from a node always ends.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_thread.h"
#include "xmalloc.h"

struct tnode {
	const struct imap_thread_msg *msg;	/* NULL: a dummy */
	size_t		 seq;			/* mailbox order */
	struct tnode	*parent, *child, *next;
	/* the sort key: the message's, or a dummy's first child's */
	int64_t		 date;
	size_t		 kseq;
	int64_t		 latest;	/* REFS: newest in thread */
	const char	*tsubj;		/* step 5: thread subject */
};

struct tctx {
	struct tnode	**nodes;	/* every node made */
	size_t		 nnodes, cap;
	/* Message ID -> node */
	char		**keys;
	struct tnode	**vals;
	size_t		 hsize, hused;
	size_t		 dummies, max_dummies;
};

/* ---- nodes and the Message ID table ---- */

static struct tnode *
tnode_new(struct tctx *t)
{
	struct tnode *n = xcalloc(1, sizeof(*n));

	if (t->nnodes == t->cap) {
		t->cap = t->cap == 0 ? 64 : t->cap * 2;
		t->nodes = xreallocarray(t->nodes, t->cap, sizeof(*t->nodes));
	}
	t->nodes[t->nnodes++] = n;
	return n;
}

static size_t
thash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void thash_put(struct tctx *t, char *key, struct tnode *n);

static void
thash_grow(struct tctx *t)
{
	char **keys = t->keys;
	struct tnode **vals = t->vals;
	size_t old = t->hsize, i;

	t->hsize = old == 0 ? 64 : old * 2;
	t->keys = xcalloc(t->hsize, sizeof(*t->keys));
	t->vals = xcalloc(t->hsize, sizeof(*t->vals));
	t->hused = 0;
	for (i = 0; i < old; i++)
		if (keys[i] != NULL)
			thash_put(t, keys[i], vals[i]);
	free(keys);
	free(vals);
}

static struct tnode *
thash_get(const struct tctx *t, const char *key)
{
	size_t i;

	if (t->hsize == 0)
		return NULL;
	for (i = thash(key) & (t->hsize - 1); t->keys[i] != NULL;
	    i = (i + 1) & (t->hsize - 1))
		if (strcmp(t->keys[i], key) == 0)
			return t->vals[i];
	return NULL;
}

/* key is taken over. */
static void
thash_put(struct tctx *t, char *key, struct tnode *n)
{
	size_t i;

	if ((t->hused + 1) * 2 > t->hsize)
		thash_grow(t);
	for (i = thash(key) & (t->hsize - 1); t->keys[i] != NULL;
	    i = (i + 1) & (t->hsize - 1))
		;
	t->keys[i] = key;
	t->vals[i] = n;
	t->hused++;
}

/*
 * The Message IDs of a field, normalized (RFC 5256 §3: quoting must not
 * matter): the text between '<' and '>', without quotes, backslashes
 * and white space.  Up to max of them, the last ones kept; the count.
 * Comparisons stay case-sensitive (RFC 5256 §3, step 1.A).
 */
static size_t
thread_ids(const char *s, char ***ids_r, size_t max)
{
	char **ids = NULL;
	size_t n = 0;

	while (s != NULL && (s = strchr(s, '<')) != NULL) {
		const char *e = s + 1;
		struct buf b;
		const char *p;

		/* One pass: up to the '>', or restart at a '<' ("<a <b@c>"),
		 * so "<<<<..." costs no more than its length. */
		while (*e != '\0' && *e != '<' && *e != '>')
			e++;
		if (*e == '\0')
			break;
		if (*e == '<') {
			s = e;
			continue;
		}
		buf_init(&b, 0);
		for (p = s + 1; p < e; p++) {
			if (*p == '\\' && p + 1 < e) {
				p++;
				buf_append_char(&b, *p);
			} else if (*p != '"' && *p != ' ' && *p != '\t' &&
			    *p != '\r' && *p != '\n')
				buf_append_char(&b, *p);
		}
		s = e + 1;
		/* A valid msg-id has id-left "@" id-right. */
		if (b.len < 3 || b.len > IMAP_THREAD_MAX_ID ||
		    memchr(b.data, '@', b.len) == NULL) {
			buf_free(&b);
			continue;
		}
		if (n == max) {
			free(ids[0]);
			memmove(ids, ids + 1, (n - 1) * sizeof(*ids));
			n--;
		}
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		ids[n++] = buf_steal(&b);
	}
	*ids_r = ids;
	return n;
}

static void
thread_ids_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* The node of Message ID id: a dummy made for it when there is none;
 * NULL when no more dummies may be made. */
static struct tnode *
thread_id_node(struct tctx *t, const char *id)
{
	struct tnode *n = thash_get(t, id);

	if (n == NULL) {
		if (t->dummies >= t->max_dummies)
			return NULL;
		t->dummies++;
		n = tnode_new(t);
		thash_put(t, xstrdup(id), n);
	}
	return n;
}

/* ---- links ---- */

/* Whether a is b or below b; also true when a is too deep to get a
 * child (IMAP_THREAD_MAX_DEPTH). */
static bool
tnode_within(const struct tnode *a, const struct tnode *b)
{
	unsigned int depth = 0;

	for (; a != NULL; a = a->parent)
		if (a == b || ++depth > IMAP_THREAD_MAX_DEPTH)
			return true;
	return false;
}

static void
tnode_unlink(struct tnode *c)
{
	struct tnode **pp;

	if (c->parent == NULL)
		return;
	for (pp = &c->parent->child; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	c->next = NULL;
	c->parent = NULL;
}

/* Make c (which has no parent) a child of p.  Put first, in constant
 * time: every set of siblings is sorted by date before it is shown. */
static void
tnode_add_child(struct tnode *p, struct tnode *c)
{
	c->next = p->child;
	p->child = c;
	c->parent = p;
}

/* ---- sorting siblings by sent date (RFC 5256 §2.2) ---- */

static int
tnode_cmp(const void *a, const void *b)
{
	const struct tnode *x = *(struct tnode *const *)a;
	const struct tnode *y = *(struct tnode *const *)b;

	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return x->kseq < y->kseq ? -1 : x->kseq > y->kseq;
}

static int
tnode_cmp_latest(const void *a, const void *b)
{
	const struct tnode *x = *(struct tnode *const *)a;
	const struct tnode *y = *(struct tnode *const *)b;

	if (x->latest != y->latest)
		return x->latest < y->latest ? -1 : 1;
	return tnode_cmp(a, b);
}

/* Sort the list *head with cmp; returns its length. */
static void
tlist_sort(struct tnode **head, int (*cmp)(const void *, const void *))
{
	struct tnode *c, **v = NULL;
	size_t n = 0, i;

	for (c = *head; c != NULL; c = c->next)
		n++;
	if (n < 2)
		return;
	v = xreallocarray(NULL, n, sizeof(*v));
	for (i = 0, c = *head; c != NULL; c = c->next)
		v[i++] = c;
	qsort(v, n, sizeof(*v), cmp);
	for (i = 0; i + 1 < n; i++)
		v[i]->next = v[i + 1];
	v[n - 1]->next = NULL;
	*head = v[0];
	free(v);
}

/*
 * Step 6 (and 4): sort every set of siblings below n, the deepest
 * first; a dummy takes the key of its first child.  Also the newest
 * date of each subtree, for REFS.  Recursion depth is the tree's depth,
 * bounded by the number of messages; iterative would be no clearer.
 */
static void
tnode_sort_all(struct tnode *n)
{
	struct tnode *c;

	n->latest = n->msg != NULL ? n->date : INT64_MIN;
	for (c = n->child; c != NULL; c = c->next) {
		tnode_sort_all(c);
		if (c->latest > n->latest)
			n->latest = c->latest;
	}
	tlist_sort(&n->child, tnode_cmp);
	if (n->msg == NULL && n->child != NULL) {
		n->date = n->child->date;
		n->kseq = n->child->kseq;
	}
}

/* ---- step 3: pruning dummies ---- */

/*
 * Prune the children of p: a dummy without children goes; one with
 * children is replaced by them, except at the root (p is the root) when
 * it has more than one.
 */
static void
tnode_prune(struct tnode *p, bool root)
{
	struct tnode **pp = &p->child;

	while (*pp != NULL) {
		struct tnode *c = *pp;

		tnode_prune(c, false);
		if (c->msg != NULL || (root && c->child != NULL &&
		    c->child->next != NULL)) {
			pp = &c->next;
			continue;
		}
		/* Splice c's children in c's place. */
		if (c->child == NULL)
			*pp = c->next;
		else {
			struct tnode *k, *last = NULL;

			for (k = c->child; k != NULL; k = k->next) {
				k->parent = p;
				last = k;
			}
			last->next = c->next;
			*pp = c->child;
			c->child = NULL;
			/* The promoted ones are looked at again (a promoted
			 * dummy at the root keeps its own rule). */
		}
		c->next = NULL;
		c->parent = NULL;
	}
}

/* ---- step 5: threads with the same subject ---- */

static const struct imap_thread_msg *
tnode_thread_msg(const struct tnode *n)
{
	if (n->msg != NULL)
		return n->msg;
	return n->child != NULL ? n->child->msg : NULL;
}

/* The slot of key in the table (which holds it). */
static size_t
thash_slot(const struct tctx *t, const char *key)
{
	size_t i;

	for (i = thash(key) & (t->hsize - 1); strcmp(t->keys[i], key) != 0;
	    i = (i + 1) & (t->hsize - 1))
		;
	return i;
}

static void
thread_merge_subjects(struct tctx *t, struct tnode *root)
{
	struct tctx st;		/* the subject table: subject -> node */
	struct tnode *c, **pp;
	size_t i;

	memset(&st, 0, sizeof(st));
	/* (A), (B): one node per thread subject. */
	for (c = root->child; c != NULL; c = c->next) {
		const struct imap_thread_msg *m = tnode_thread_msg(c);
		struct tnode *have;

		/* Taken now: merging changes first children. */
		c->tsubj = m != NULL ? m->subject : "";
		if (c->tsubj[0] == '\0')
			continue;
		if ((have = thash_get(&st, c->tsubj)) == NULL)
			thash_put(&st, xstrdup(c->tsubj), c);
		else if (have->msg != NULL && (c->msg == NULL ||
		    (have->msg->reply && !c->msg->reply)))
			st.vals[thash_slot(&st, c->tsubj)] = c;
	}
	/* (C) merge, walking the root's list so that taking c out of
	 * it costs nothing. */
	pp = &root->child;
	while ((c = *pp) != NULL) {
		struct tnode *have, *h2, *k;

		if (c->tsubj[0] == '\0' ||
		    (have = st.vals[thash_slot(&st, c->tsubj)]) == c) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;		/* c leaves the root */
		c->next = NULL;
		c->parent = NULL;
		if (have->msg == NULL && c->msg == NULL) {
			/* Both dummies: c's children join have's. */
			while ((k = c->child) != NULL) {
				c->child = k->next;
				tnode_add_child(have, k);
			}
		} else if (have->msg == NULL ||
		    (c->msg != NULL && c->msg->reply && !have->msg->reply))
			tnode_add_child(have, c);
		else {
			/*
			 * A new dummy holds both, in have's place: have's
			 * node becomes the dummy (so nothing in the root's
			 * list moves) and its message goes to a new node.
			 */
			h2 = tnode_new(t);
			h2->msg = have->msg;
			h2->seq = have->seq;
			h2->kseq = have->kseq;
			h2->date = have->date;
			h2->child = have->child;
			for (k = h2->child; k != NULL; k = k->next)
				k->parent = h2;
			have->msg = NULL;
			have->child = NULL;
			tnode_add_child(have, h2);
			tnode_add_child(have, c);
		}
	}
	for (i = 0; i < st.hsize; i++)
		free(st.keys[i]);
	free(st.keys);
	free(st.vals);
}

/* ---- output (RFC 5256 §4 thread-list) ---- */

static void thread_write_list(const struct tnode *n, struct buf *out);

/* thread-members [SP thread-nested], from n down. */
static void
thread_write_members(const struct tnode *n, struct buf *out)
{
	const struct tnode *c;

	if (n->msg == NULL) {	/* a dummy: its children are nested */
		for (c = n->child; c != NULL; c = c->next)
			thread_write_list(c, out);
		return;
	}
	for (;;) {
		buf_printf(out, "%u", n->msg->num);
		if (n->child == NULL)
			return;
		buf_append_char(out, ' ');
		if (n->child->next != NULL) {
			for (c = n->child; c != NULL; c = c->next)
				thread_write_list(c, out);
			return;
		}
		n = n->child;
		if (n->msg == NULL) {
			thread_write_members(n, out);
			return;
		}
	}
}

static void
thread_write_list(const struct tnode *n, struct buf *out)
{
	buf_append_char(out, '(');
	thread_write_members(n, out);
	buf_append_char(out, ')');
}

/* ---- ORDEREDSUBJECT ---- */

static const struct imap_thread_msg *os_msgs;

static int
os_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = strcmp(os_msgs[x].subject, os_msgs[y].subject);

	if (r != 0)
		return r;
	if (os_msgs[x].date != os_msgs[y].date)
		return os_msgs[x].date < os_msgs[y].date ? -1 : 1;
	return x < y ? -1 : x > y;
}

static void
thread_orderedsubject(const struct imap_thread_msg *msgs, size_t n,
    struct tctx *t, struct tnode *root)
{
	size_t *ord = xreallocarray(NULL, n + 1, sizeof(*ord));
	struct tnode *head = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		ord[i] = i;
	/* The subjects are casemapped: comparing their octets is the
	 * i;unicode-casemap collation (RFC 5051). */
	os_msgs = msgs;
	qsort(ord, n, sizeof(*ord), os_cmp);
	os_msgs = NULL;
	for (i = 0; i < n; i++) {
		struct tnode *m = tnode_new(t);

		m->msg = &msgs[ord[i]];
		m->seq = m->kseq = ord[i];
		m->date = m->msg->date;
		if (head != NULL &&
		    strcmp(head->msg->subject, m->msg->subject) == 0)
			tnode_add_child(head, m);	/* a sibling of the
							 * second */
		else {
			head = m;
			tnode_add_child(root, m);
		}
	}
	/* Threads by the sent date of their first message; the others of
	 * a thread in the order they came (added first, so reversed). */
	for (head = root->child; head != NULL; head = head->next)
		tlist_sort(&head->child, tnode_cmp);
	tlist_sort(&root->child, tnode_cmp);
	free(ord);
}

/* ---- REFERENCES, REFS ---- */

static void
thread_references(const struct imap_thread_msg *msgs, size_t n,
    struct tctx *t, struct tnode *root, bool subjects)
{
	size_t i, j;

	/* (1) */
	for (i = 0; i < n; i++) {
		const struct imap_thread_msg *m = &msgs[i];
		struct tnode *cur = NULL, *prev, *last;
		char **ids, **refs;
		size_t nids, nrefs;

		nids = thread_ids(m->message_id, &ids, 1);
		if (nids > 0) {
			cur = thash_get(t, ids[0]);
			if (cur == NULL) {
				cur = tnode_new(t);
				thash_put(t, ids[0], cur);
				ids[0] = NULL;
			} else if (cur->msg != NULL)
				cur = NULL;	/* a duplicate: unique */
		}
		thread_ids_free(ids, nids);
		if (cur == NULL)	/* no usable Message ID: unique */
			cur = tnode_new(t);
		cur->msg = m;
		cur->seq = cur->kseq = i;
		cur->date = m->date;

		nrefs = thread_ids(m->references, &refs,
		    IMAP_THREAD_MAX_REFS);
		if (nrefs == 0) {
			thread_ids_free(refs, nrefs);
			/* Only the first Message ID of In-Reply-To. */
			nrefs = thread_ids(m->in_reply_to, &refs,
			    IMAP_THREAD_MAX_REFS);
			for (j = 1; j < nrefs; j++)
				free(refs[j]);
			if (nrefs > 1)
				nrefs = 1;
		}
		/* (A) link the references as parent and child. */
		prev = NULL;
		for (j = 0; j < nrefs; j++) {
			struct tnode *r = thread_id_node(t, refs[j]);

			if (r == NULL) {	/* too many dummies */
				prev = NULL;
				continue;
			}
			if (prev != NULL && r != prev && r->parent == NULL &&
			    !tnode_within(prev, r))
				tnode_add_child(prev, r);
			prev = r;
		}
		/* (B) the last reference is the parent. */
		last = prev;
		if (cur->parent != NULL && cur->parent != last)
			tnode_unlink(cur);
		if (last != NULL && cur->parent == NULL && last != cur &&
		    !tnode_within(last, cur))
			tnode_add_child(last, cur);
		thread_ids_free(refs, nrefs);
	}
	/* (2) the nodes without a parent go under the root. */
	for (i = 0; i < t->nnodes; i++)
		if (t->nodes[i]->parent == NULL && t->nodes[i] != root)
			tnode_add_child(root, t->nodes[i]);
	/* (3) */
	tnode_prune(root, true);
	/* (4) */
	tnode_sort_all(root);
	if (subjects) {
		/* (5), then (6) again over the new shape. */
		thread_merge_subjects(t, root);
		tnode_sort_all(root);
	} else	/* REFS: threads by their newest message */
		tlist_sort(&root->child, tnode_cmp_latest);
}

void
imap_thread_write(enum imap_thread_alg alg,
    const struct imap_thread_msg *msgs, size_t n, struct buf *out)
{
	struct tctx t;
	struct tnode *root, *c;
	size_t i;

	memset(&t, 0, sizeof(t));
	t.max_dummies = n * IMAP_THREAD_DUMMIES_PER_MSG + 1000;
	root = tnode_new(&t);
	if (alg == IMAP_THREAD_ORDEREDSUBJECT)
		thread_orderedsubject(msgs, n, &t, root);
	else
		thread_references(msgs, n, &t, root,
		    alg == IMAP_THREAD_REFERENCES);
	for (c = root->child; c != NULL; c = c->next)
		thread_write_list(c, out);
	for (i = 0; i < t.nnodes; i++)
		free(t.nodes[i]);
	free(t.nodes);
	for (i = 0; i < t.hsize; i++)
		free(t.keys[i]);
	free(t.keys);
	free(t.vals);
}

/* ---- is the subject a reply (RFC 5256 §2.1 and §3) ---- */

static bool
subj_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP: its length, or 0. */
static size_t
subj_blob(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] != '[')
		return 0;
	for (i = 1; i < len && s[i] != '[' && s[i] != ']'; i++)
		;
	if (i == len || s[i] != ']')
		return 0;
	for (i++; i < len && subj_wsp(s[i]); i++)
		;
	return i;
}

/* *subj-blob subj-refwd: its length, or 0. */
static size_t
subj_refwd(const char *s, size_t len)
{
	size_t i = 0, b;

	while ((b = subj_blob(s + i, len - i)) > 0)
		i += b;
	if (len - i >= 2 && strncasecmp(s + i, "re", 2) == 0)
		i += 2;
	else if (len - i >= 2 && strncasecmp(s + i, "fw", 2) == 0) {
		i += 2;
		if (i < len && (s[i] == 'd' || s[i] == 'D'))
			i++;
	} else
		return 0;
	while (i < len && subj_wsp(s[i]))
		i++;
	i += subj_blob(s + i, len - i);
	return i < len && s[i] == ':' ? i + 1 : 0;
}

bool
imap_thread_subject_is_reply(const char *s, size_t len)
{
	size_t start = 0, end = len, l;
	bool changed;

	for (;;) {
		/* (2) trailers */
		for (;;) {
			if (end > start && subj_wsp(s[end - 1]))
				end--;
			else if (end - start >= 5 &&
			    strncasecmp(s + end - 5, "(fwd)", 5) == 0)
				return true;
			else
				break;
		}
		/* (3)-(5) leaders */
		do {
			changed = false;
			while (start < end && subj_wsp(s[start])) {
				start++;
				changed = true;
			}
			if (subj_refwd(s + start, end - start) > 0)
				return true;
			l = subj_blob(s + start, end - start);
			if (l > 0 && start + l < end) {
				start += l;
				changed = true;
			}
		} while (changed);
		/* (6) */
		if (end - start >= 6 &&
		    strncasecmp(s + start, "[fwd:", 5) == 0 &&
		    s[end - 1] == ']')
			return true;
		return false;
	}
}
