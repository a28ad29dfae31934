/*
 * imap_msg: what several commands need of the selected mailbox and its
 * messages: sequence sets as positions of the session's view, flags in
 * both directions, mailbox names between the client (UTF-8 after the
 * parser, modified UTF-7 on the wire) and the store (modified UTF-7, as
 * Dovecot keeps names on disk), IMAP strings, and message bytes and
 * MIME trees as the client sees them (CRLF line ends).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap.h"
#include "imap_utf7.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "str.h"
#include "xmalloc.h"

/* ---- the view ---- */

int64_t
imap_view_find(const struct imap_session *s, uint32_t uid)
{
	uint32_t lo = 0, hi = s->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->view[mid].uid == uid)
			return mid;
		if (s->view[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* First view position whose UID is at least uid. */
static uint32_t
imap_view_lower(const struct imap_session *s, uint32_t uid)
{
	uint32_t lo = 0, hi = s->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->view[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int64_t
imap_view_index(const struct imap_session *s, uint32_t pos)
{
	if (pos >= s->count || s->sel == NULL)
		return -1;
	return store_mailbox_find_uid(s->sel->mb, s->view[pos].uid);
}

static int
imap_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
imap_set_resolve(struct imap_session *s, const struct imap_seqset *set,
    bool uid, uint32_t **pos_r, size_t *count_r, const char **error_r)
{
	struct imap_seq_range *r;
	uint32_t *pos, max;
	size_t n = 0, nr, i;

	*pos_r = NULL;
	*count_r = 0;
	pos = xreallocarray(NULL, s->count + 1, sizeof(*pos));
	if (set->saved) {
		/* RFC 5182 §2.1: "$" is the last SEARCH ... SAVE result. */
		for (i = 0; i < s->nsaved; i++) {
			int64_t p = imap_view_find(s, s->saved[i]);

			if (p >= 0)
				pos[n++] = (uint32_t)p;
		}
		qsort(pos, n, sizeof(*pos), imap_u32_cmp);
		*pos_r = pos;
		*count_r = n;
		return 0;
	}
	if (uid) {
		max = s->count > 0 ? s->view[s->count - 1].uid : 0;
	} else {
		max = s->count;
		/* RFC 9051 §6.4.4: a number past the last message is the
		 * client's error. */
		if (imap_seqset_highest(set, max) > max) {
			free(pos);
			*error_r = "Invalid messageset";
			return -1;
		}
	}
	r = xreallocarray(NULL, set->count + 1, sizeof(*r));
	nr = imap_seqset_resolve(set, max, r);
	for (i = 0; i < nr; i++) {
		uint32_t p;

		if (uid) {
			/* UIDs that are not there are skipped (RFC 9051
			 * §6.4.9). */
			for (p = imap_view_lower(s, r[i].lo);
			    p < s->count && s->view[p].uid <= r[i].hi; p++)
				pos[n++] = p;
		} else {
			uint64_t q;

			for (q = r[i].lo; q <= r[i].hi && q <= s->count; q++)
				pos[n++] = (uint32_t)(q - 1);
		}
	}
	free(r);
	*pos_r = pos;
	*count_r = n;
	return 0;
}

/* ---- flags ---- */

static const struct {
	uint32_t	 bit;
	const char	*name;
} imap_sysflags[] = {
	{ STORE_ANSWERED, "\\Answered" },
	{ STORE_FLAGGED, "\\Flagged" },
	{ STORE_DELETED, "\\Deleted" },
	{ STORE_SEEN, "\\Seen" },
	{ STORE_DRAFT, "\\Draft" },
};

void
imap_flags_format(const struct imap_session *s, const struct store_msg *m,
    bool recent, struct buf *out)
{
	struct store_mailbox *mb = s->sel->mb;
	bool first = true;
	unsigned int i;

	buf_append_char(out, '(');
	for (i = 0; i < sizeof(imap_sysflags) / sizeof(imap_sysflags[0]);
	    i++) {
		if ((m->flags & imap_sysflags[i].bit) == 0)
			continue;
		buf_printf(out, "%s%s", first ? "" : " ",
		    imap_sysflags[i].name);
		first = false;
	}
	for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
		const char *name;

		if ((m->keywords & (1ULL << i)) == 0 ||
		    (name = store_keyword_name(mb, i)) == NULL)
			continue;
		buf_printf(out, "%s%s", first ? "" : " ", name);
		first = false;
	}
	/* RFC 9051 removed \Recent; IMAP4rev1 clients still get it. */
	if (recent && !s->rev2)
		buf_printf(out, "%s\\Recent", first ? "" : " ");
	buf_append_char(out, ')');
}

void
imap_flags_all(struct store_mailbox *mb, bool permanent, struct buf *out)
{
	unsigned int i, used = 0;

	buf_append_str(out, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
		const char *name = store_keyword_name(mb, i);

		if (name != NULL) {
			buf_printf(out, " %s", name);
			used++;
		}
	}
	/* RFC 9051 §7.1: "\*" while new keywords can be made. */
	if (permanent && used < STORE_MAX_KEYWORDS)
		buf_append_str(out, " \\*");
	buf_append_char(out, ')');
}

int
imap_flags_to_store(struct store_mailbox *mb, const struct imap_flags *f,
    bool create, uint32_t *flags_r, uint64_t *kw_r, const char **error_r)
{
	size_t i;

	/* The parser's bits are the store's (imap_parse.h). */
	*flags_r = f->system & (STORE_SEEN | STORE_ANSWERED | STORE_FLAGGED |
	    STORE_DELETED | STORE_DRAFT);
	*kw_r = 0;
	for (i = 0; i < f->keyword_count; i++) {
		const char *name = f->keywords[i];
		int slot;

		/* \Recent and unknown system flags cannot be set. */
		if (name[0] == '\\')
			continue;
		slot = store_keyword_slot(mb, name, create, error_r);
		if (slot < 0) {
			if (create)
				return -1;
			continue;
		}
		*kw_r |= 1ULL << slot;
	}
	return 0;
}

uint64_t
imap_keywords_map(struct store_mailbox *src, uint64_t kw,
    struct store_mailbox *dst)
{
	uint64_t out = 0;
	unsigned int i;

	for (i = 0; i < STORE_MAX_KEYWORDS; i++) {
		const char *name, *error;
		int slot;

		if ((kw & (1ULL << i)) == 0 ||
		    (name = store_keyword_name(src, i)) == NULL)
			continue;
		slot = store_keyword_slot(dst, name, true, &error);
		if (slot >= 0)
			out |= 1ULL << slot;
		else
			log_debug("keyword %s not copied: %s", name, error);
	}
	return out;
}

/* ---- names and strings ---- */

int
imap_name_to_store(const char *utf8, struct buf *out)
{
	/* RFC 9051 §5.1: INBOX in any case; its children too. */
	if (strcasecmp(utf8, "INBOX") == 0) {
		buf_append_str(out, "INBOX");
		return 0;
	}
	if (strncasecmp(utf8, "INBOX/", 6) == 0) {
		buf_append_str(out, "INBOX/");
		utf8 += 6;
	}
	if (utf8[0] == '\0')
		return -1;
	return imap_utf7_from_utf8(utf8, strlen(utf8), out);
}

char *
imap_name_from_store(const char *store)
{
	struct buf b;

	buf_init(&b, 0);
	if (imap_utf7_to_utf8(store, strlen(store), &b) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

void
imap_astring_write(struct buf *out, const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80)
			break;
	if (*p != '\0') {
		/* RFC 9051 §4.3: what a quoted string cannot hold. */
		buf_printf(out, "{%zu}\r\n%s", strlen(s), s);
		return;
	}
	buf_append_char(out, '"');
	for (p = s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, *p);
	}
	buf_append_char(out, '"');
}

void
imap_name_write(struct buf *out, const char *utf8)
{
	struct buf b;

	buf_init(&b, 0);
	if (imap_utf7_from_utf8(utf8, strlen(utf8), &b) < 0) {
		/* Not reached for names we listed: they were checked. */
		buf_reset(&b);
		buf_append_str(&b, utf8);
	}
	imap_astring_write(out, buf_cstr(&b));
	buf_free(&b);
}

/* ---- message bytes ---- */

int
imap_msg_tree(struct imap_mbox *m, uint32_t idx,
    const struct mime_part **tree_r, const char **error_r)
{
	const struct store_msg *sm = store_mailbox_msg(m->mb, idx);
	struct mime_part *tree = imap_mbox_cache_get(m, sm->uid);
	struct store_msg_stream *st;
	struct mime_parser *p;
	char buf[IMAP_MSG_CHUNK];
	ssize_t n;

	if (tree != NULL) {
		*tree_r = tree;
		return 0;
	}
	if (store_msg_open(m->mb, idx, &st, error_r) < 0)
		return -1;
	/* The bytes as the client sees them, so every offset of the tree
	 * is an offset of what BODY[] sends. */
	p = mime_parser_new();
	while ((n = store_msg_read(st, buf, sizeof(buf))) > 0)
		mime_parser_feed(p, buf, (size_t)n);
	store_msg_close(&st);
	if (n < 0) {
		mime_parser_free(&p);
		*error_r = "reading the message failed";
		return -1;
	}
	tree = mime_parser_finish(&p);
	imap_mbox_cache_put(m, sm->uid, tree);
	*tree_r = tree;
	return 0;
}

int
imap_msg_read_range(struct store_mailbox *mb, uint32_t idx, uint64_t off,
    uint64_t len, size_t max, struct buf *out, const char **error_r)
{
	struct store_msg_stream *st;
	char buf[IMAP_MSG_CHUNK];
	uint64_t pos = 0, end = off + len;
	ssize_t n = 0;

	if (len == 0)
		return 0;
	if (store_msg_open(mb, idx, &st, error_r) < 0)
		return -1;
	while (pos < end && (n = store_msg_read(st, buf, sizeof(buf))) > 0) {
		uint64_t b0 = pos, b1 = pos + (uint64_t)n;

		pos = b1;
		if (b1 <= off)
			continue;
		if (b0 < off)
			b0 = off;
		if (b1 > end)
			b1 = end;
		if (out->len + (b1 - b0) > max)
			b1 = b0 + (max - out->len);
		buf_append(out, buf + (b0 - (pos - (uint64_t)n)),
		    (size_t)(b1 - b0));
		if (out->len >= max)
			break;
	}
	store_msg_close(&st);
	if (n < 0) {
		*error_r = "reading the message failed";
		return -1;
	}
	return 0;
}

/* ---- sets and ids ---- */

void
imap_numbers_format(const uint32_t *v, size_t n, struct buf *out)
{
	size_t i = 0, j;

	while (i < n) {
		for (j = i; j + 1 < n && v[j + 1] == v[j] + 1; j++)
			;
		if (i > 0)
			buf_append_char(out, ',');
		if (j > i)
			buf_printf(out, "%u:%u", v[i], v[j]);
		else
			buf_printf(out, "%u", v[i]);
		i = j + 1;
	}
}

void
imap_mbox_id(const struct imap_mbox *m, char *out, size_t size)
{
	/*
	 * RFC 8474 §4: the same id for the same name and UIDVALIDITY,
	 * never one id for two mailboxes at once.  UIDVALIDITY alone does
	 * not do (the store takes it from the clock: folders made in the
	 * same second share it), so the name is hashed with it (FNV-1a,
	 * 64 bits).  A RENAME thus gives a new id, which clients take as
	 * a new mailbox: they fetch it again, no data is lost.
	 */
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *c;
	unsigned int i;

	for (c = (const unsigned char *)m->name; *c != '\0'; c++) {
		h ^= *c;
		h *= 0x100000001b3ULL;
	}
	for (i = 0; i < 4; i++) {
		h ^= (m->uidvalidity >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	(void)snprintf(out, size, "F%016llx", (unsigned long long)h);
}
