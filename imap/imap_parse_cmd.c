/*
 * imap_parse_cmd: the command table and the parsers of the commands with
 * simple arguments (everything but FETCH, STORE, SEARCH, SORT and THREAD,
 * which have their own files), plus the argument helpers they all share:
 * astring, number, sequence set, mailbox name, flag list.
 *
 * Each parser gets the argument tree of one complete command and fills
 * its member of struct imap_command, or records a BAD and returns -1.
 * Where the RFCs say "MUST respond with BAD" to something unknown
 * (select parameters, LIST options, STATUS items, FETCH modifiers) we
 * do; we never guess at what a client meant.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_date.h"
#include "imap_parse_private.h"
#include "imap_utf7.h"
#include "str.h"

/* RFC 2971 §3.3 */
#define IMAP_ID_MAX_PAIRS	30
#define IMAP_ID_MAX_FIELD	30
#define IMAP_ID_MAX_VALUE	1024

/* ---- shared helpers ---- */

int
imap_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *val_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		uint64_t d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		if (v > max)
			return -1;
	}
	*val_r = v;
	return 0;
}

bool
imap_char_is_atom(unsigned char c)
{
	/* ATOM-CHAR: CHAR except atom-specials (RFC 9051 §9). */
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

bool
imap_arg_atom_is(const struct imap_arg *a, const char *word)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

bool
imap_arg_is_string(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL;
}

int
imap_arg_astring(struct imap_parser *p, const struct imap_arg *a,
    bool list_chars, const char **s_r)
{
	size_t i;

	if (imap_arg_is_string(a)) {
		*s_r = a->str;
		return 0;
	}
	if (a->type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Expected a string");
	for (i = 0; i < a->len; i++) {
		unsigned char c = (unsigned char)a->str[i];

		/* ASTRING-CHAR = ATOM-CHAR / resp-specials; list-char adds
		 * the list wildcards. */
		if (!imap_char_is_atom(c) && c != ']' &&
		    !(list_chars && (c == '%' || c == '*')))
			return imap_parse_fail(p, "Invalid characters in atom");
	}
	*s_r = a->str;
	return 0;
}

int
imap_arg_number(struct imap_parser *p, const struct imap_arg *a,
    uint64_t min, uint64_t max, uint64_t *val_r)
{
	if (a->type != IMAP_ARG_ATOM ||
	    imap_parse_u64(a->str, a->len, max, val_r) < 0 || *val_r < min)
		return imap_parse_fail(p, "Invalid number");
	return 0;
}

static void *
parse_seq_alloc(void *ctx, size_t n, size_t size)
{
	return imap_parse_alloc_array(ctx, n, size);
}

int
imap_arg_seqset(struct imap_parser *p, const struct imap_arg *a,
    unsigned int flags, struct imap_seqset *set_r)
{
	const char *error;

	if (a->type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Invalid sequence set");
	if (imap_seqset_parse_with(a->str, a->len, flags, parse_seq_alloc, p,
	    set_r, &error) < 0)
		return imap_parse_fail(p, error);
	return 0;
}

int
imap_arg_mailbox(struct imap_parser *p, const struct imap_arg *a,
    bool pattern, const char **name_r)
{
	const char *raw, *name;
	size_t i, len;

	if (imap_arg_astring(p, a, pattern, &raw) < 0)
		return -1;
	len = a->len;
	if (p->utf8) {
		/* RFC 6855 §3: names are UTF-8, '&' means itself. */
		if (!str_utf8_valid(raw, len))
			return imap_parse_fail_code(p, true, "CANNOT",
			    "Mailbox name is not valid UTF-8");
		name = raw;
	} else {
		struct buf b;

		buf_init(&b, 0);
		if (imap_utf7_to_utf8(raw, len, &b) < 0) {
			buf_free(&b);
			return imap_parse_fail_code(p, true, "CANNOT",
			    "Mailbox name is not valid modified UTF-7");
		}
		name = imap_parse_strdup(p, b.len > 0 ? b.data : "", b.len);
		len = b.len;
		buf_free(&b);
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return imap_parse_fail_code(p, true, "CANNOT",
			    "Mailbox name contains control characters");
	}
	/* INBOX is case-insensitive, other names are not (RFC 9051 §5.1). */
	if (!pattern && strcasecmp(name, "INBOX") == 0)
		name = "INBOX";
	*name_r = name;
	return 0;
}

static const struct {
	const char	*name;
	uint32_t	 bit;
} imap_system_flags[] = {
	{ "\\Seen", IMAP_FLAG_SEEN },
	{ "\\Answered", IMAP_FLAG_ANSWERED },
	{ "\\Flagged", IMAP_FLAG_FLAGGED },
	{ "\\Deleted", IMAP_FLAG_DELETED },
	{ "\\Draft", IMAP_FLAG_DRAFT },
};

int
imap_parse_flags(struct imap_parser *p, const struct imap_arg *args,
    size_t count, struct imap_flags *flags_r)
{
	const char **kw;
	size_t i, j, nkw = 0;

	memset(flags_r, 0, sizeof(*flags_r));
	kw = imap_parse_alloc_array(p, count > 0 ? count : 1, sizeof(*kw));
	for (i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		bool dup = false;

		if (a->type != IMAP_ARG_ATOM)
			return imap_parse_fail(p, "Invalid flag");
		if (a->str[0] == '\\') {
			for (j = 0; j < sizeof(imap_system_flags) /
			    sizeof(imap_system_flags[0]); j++) {
				if (strcasecmp(a->str,
				    imap_system_flags[j].name) == 0)
					break;
			}
			if (j == sizeof(imap_system_flags) /
			    sizeof(imap_system_flags[0]))
				return imap_parse_fail(p, strcasecmp(a->str,
				    "\\Recent") == 0 ?
				    "\\Recent can not be set" :
				    "Invalid system flag");
			flags_r->system |= imap_system_flags[j].bit;
			continue;
		}
		/* flag-keyword = atom */
		for (j = 0; j < a->len; j++)
			if (!imap_char_is_atom((unsigned char)a->str[j]))
				return imap_parse_fail(p, "Invalid keyword");
		for (j = 0; j < nkw && !dup; j++)
			dup = strcasecmp(kw[j], a->str) == 0;
		if (!dup)
			kw[nkw++] = a->str;
	}
	flags_r->keywords = kw;
	flags_r->keyword_count = nkw;
	return 0;
}

/* STATUS items: a list of at least one known name. */
static int
parse_status_items(struct imap_parser *p, const struct imap_arg *a,
    unsigned int *items_r)
{
	static const struct {
		const char	*name;
		unsigned int	 bit;
	} items[] = {
		{ "MESSAGES", IMAP_STATUS_MESSAGES },
		{ "RECENT", IMAP_STATUS_RECENT },
		{ "UIDNEXT", IMAP_STATUS_UIDNEXT },
		{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY },
		{ "UNSEEN", IMAP_STATUS_UNSEEN },
		{ "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
		{ "SIZE", IMAP_STATUS_SIZE },
		{ "DELETED", IMAP_STATUS_DELETED },
		{ "APPENDLIMIT", IMAP_STATUS_APPENDLIMIT },
		{ "MAILBOXID", IMAP_STATUS_MAILBOXID },
	};
	size_t i, j;

	if (a->type != IMAP_ARG_LIST || a->count == 0)
		return imap_parse_fail(p, "Expected a list of status items");
	*items_r = 0;
	for (i = 0; i < a->count; i++) {
		for (j = 0; j < sizeof(items) / sizeof(items[0]); j++)
			if (imap_arg_atom_is(&a->list[i], items[j].name))
				break;
		if (j == sizeof(items) / sizeof(items[0]))
			return imap_parse_fail(p, "Unknown status item");
		*items_r |= items[j].bit;
	}
	return 0;
}

int
imap_parse_append_opts(struct imap_parser *p, const struct imap_arg *args,
    size_t count, struct imap_append_msg *msg)
{
	size_t i = 0;

	if (i < count && args[i].type == IMAP_ARG_LIST) {
		if (imap_parse_flags(p, args[i].list, args[i].count,
		    &msg->flags) < 0)
			return -1;
		i++;
	}
	if (i < count && imap_arg_is_string(&args[i])) {
		if (imap_date_parse_datetime(args[i].str, &msg->date,
		    &msg->tz) < 0)
			return imap_parse_fail(p, "Invalid date-time");
		msg->has_date = true;
		i++;
	}
	if (i < count)
		return imap_parse_fail(p, "Unknown APPEND option");
	return 0;
}

/* ---- the commands ---- */

static int
cmd_none(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	(void)cmd;
	(void)args;
	if (count != 0)
		return imap_parse_fail(p, "Unexpected arguments");
	return 0;
}

/* AUTHENTICATE auth-type [SP (base64 / "=")] (RFC 9051 §6.2.2). */
static int
cmd_authenticate(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_authenticate *c = &cmd->u.authenticate;
	char *mech;
	size_t i;

	if (count < 1 || count > 2 || args[0].type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Expected a SASL mechanism");
	for (i = 0; i < args[0].len; i++)
		if (!imap_char_is_atom((unsigned char)args[0].str[i]))
			return imap_parse_fail(p, "Invalid SASL mechanism");
	mech = imap_parse_strdup(p, args[0].str, args[0].len);
	for (i = 0; mech[i] != '\0'; i++)
		mech[i] = (char)toupper((unsigned char)mech[i]);
	c->mech = mech;
	if (count == 2) {
		const struct imap_arg *a = &args[1];

		if (a->type != IMAP_ARG_ATOM)
			return imap_parse_fail(p, "Invalid initial response");
		if (strcmp(a->str, "=") == 0) {
			c->initial = "";
			return 0;
		}
		for (i = 0; i < a->len; i++) {
			unsigned char ch = (unsigned char)a->str[i];

			if (!isalnum(ch) && ch != '+' && ch != '/' &&
			    ch != '=')
				return imap_parse_fail(p,
				    "Invalid initial response");
		}
		c->initial = a->str;
	}
	return 0;
}

static int
cmd_login(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 2)
		return imap_parse_fail(p, "Expected user name and password");
	if (imap_arg_astring(p, &args[0], false, &cmd->u.login.user) < 0 ||
	    imap_arg_astring(p, &args[1], false, &cmd->u.login.password) < 0)
		return -1;
	return 0;
}

static int
cmd_enable(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	const char **caps;
	size_t i;

	if (count == 0)
		return imap_parse_fail(p, "Expected capability names");
	caps = imap_parse_alloc_array(p, count, sizeof(*caps));
	for (i = 0; i < count; i++) {
		if (args[i].type != IMAP_ARG_ATOM)
			return imap_parse_fail(p, "Invalid capability name");
		caps[i] = args[i].str;
	}
	cmd->u.enable.caps = caps;
	cmd->u.enable.count = count;
	return 0;
}

/* QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]) (RFC 7162). */
static int
parse_qresync(struct imap_parser *p, const struct imap_arg *q,
    struct imap_cmd_select *s)
{
	const unsigned int fl = IMAP_SEQSET_NO_STAR | IMAP_SEQSET_NO_SAVED;
	uint64_t v;
	size_t k = 2;

	if (q->type != IMAP_ARG_LIST || q->count < 2)
		return imap_parse_fail(p, "Invalid QRESYNC parameter");
	if (imap_arg_number(p, &q->list[0], 1, UINT32_MAX, &v) < 0)
		return -1;
	s->uidvalidity = (uint32_t)v;
	if (imap_arg_number(p, &q->list[1], 1, INT64_MAX, &s->modseq) < 0)
		return -1;
	if (k < q->count && q->list[k].type == IMAP_ARG_ATOM) {
		if (imap_arg_seqset(p, &q->list[k], fl, &s->known_uids) < 0)
			return -1;
		s->has_known_uids = true;
		k++;
	}
	if (k < q->count && q->list[k].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &q->list[k];

		if (m->count != 2 ||
		    imap_arg_seqset(p, &m->list[0], fl, &s->known_seqs) < 0 ||
		    imap_arg_seqset(p, &m->list[1], fl,
		    &s->known_seq_uids) < 0)
			return imap_parse_fail(p, "Invalid QRESYNC parameter");
		s->has_seq_match = true;
		k++;
	}
	if (k != q->count)
		return imap_parse_fail(p, "Invalid QRESYNC parameter");
	s->qresync = true;
	return 0;
}

/* SELECT/EXAMINE mailbox [SP "(" select-param ... ")"] (RFC 4466). */
static int
cmd_select(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_select *s = &cmd->u.select;
	const struct imap_arg *l;
	size_t j;

	if (count < 1 || count > 2)
		return imap_parse_fail(p, "Expected a mailbox");
	if (imap_arg_mailbox(p, &args[0], false, &s->mailbox) < 0)
		return -1;
	if (count == 1)
		return 0;
	l = &args[1];
	if (l->type != IMAP_ARG_LIST)
		return imap_parse_fail(p, "Expected select parameters");
	for (j = 0; j < l->count; j++) {
		const struct imap_arg *a = &l->list[j];

		if (imap_arg_atom_is(a, "CONDSTORE") && !s->condstore) {
			s->condstore = true;
		} else if (imap_arg_atom_is(a, "QRESYNC") && !s->qresync &&
		    j + 1 < l->count) {
			if (parse_qresync(p, &l->list[++j], s) < 0)
				return -1;
		} else
			return imap_parse_fail(p, "Unknown select parameter");
	}
	return 0;
}

/* CREATE mailbox [SP "(" "USE" SP "(" use-attr ... ")" ")"] (RFC 6154). */
static int
cmd_create(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	static const struct {
		const char	*name;
		unsigned int	 bit;
	} uses[] = {
		{ "\\All", IMAP_USE_ALL },
		{ "\\Archive", IMAP_USE_ARCHIVE },
		{ "\\Drafts", IMAP_USE_DRAFTS },
		{ "\\Flagged", IMAP_USE_FLAGGED },
		{ "\\Junk", IMAP_USE_JUNK },
		{ "\\Sent", IMAP_USE_SENT },
		{ "\\Trash", IMAP_USE_TRASH },
	};
	struct imap_cmd_create *c = &cmd->u.create;
	const struct imap_arg *l, *u;
	size_t i, j;

	if (count < 1 || count > 2)
		return imap_parse_fail(p, "Expected a mailbox");
	if (imap_arg_mailbox(p, &args[0], false, &c->mailbox) < 0)
		return -1;
	if (count == 1)
		return 0;
	l = &args[1];
	if (l->type != IMAP_ARG_LIST || l->count != 2 ||
	    !imap_arg_atom_is(&l->list[0], "USE") ||
	    l->list[1].type != IMAP_ARG_LIST)
		return imap_parse_fail(p, "Unknown CREATE parameter");
	u = &l->list[1];
	for (i = 0; i < u->count; i++) {
		const struct imap_arg *a = &u->list[i];

		if (a->type != IMAP_ARG_ATOM || a->str[0] != '\\' ||
		    a->len < 2)
			return imap_parse_fail(p, "Invalid special-use "
			    "attribute");
		for (j = 0; j < sizeof(uses) / sizeof(uses[0]); j++)
			if (strcasecmp(a->str, uses[j].name) == 0)
				break;
		c->use |= j < sizeof(uses) / sizeof(uses[0]) ? uses[j].bit :
		    IMAP_USE_OTHER;
	}
	return 0;
}

/* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT. */
static int
cmd_mailbox(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 1)
		return imap_parse_fail(p, "Expected a mailbox");
	return imap_arg_mailbox(p, &args[0], false, &cmd->u.mailbox.mailbox);
}

static int
cmd_rename(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 2)
		return imap_parse_fail(p, "Expected two mailboxes");
	if (imap_arg_mailbox(p, &args[0], false, &cmd->u.rename.from) < 0 ||
	    imap_arg_mailbox(p, &args[1], false, &cmd->u.rename.to) < 0)
		return -1;
	return 0;
}

/* LIST (RFC 9051 §6.3.9, RFC 5258, RFC 6154, RFC 5819). */
static int
cmd_list(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_list *l = &cmd->u.list;
	const char **pats;
	size_t i = 0, j;

	if (count > 0 && args[0].type == IMAP_ARG_LIST) {
		const struct imap_arg *o = &args[0];

		l->extended = true;
		for (j = 0; j < o->count; j++) {
			const struct imap_arg *a = &o->list[j];

			if (imap_arg_atom_is(a, "SUBSCRIBED"))
				l->select |= IMAP_LIST_SEL_SUBSCRIBED;
			else if (imap_arg_atom_is(a, "REMOTE"))
				l->select |= IMAP_LIST_SEL_REMOTE;
			else if (imap_arg_atom_is(a, "RECURSIVEMATCH"))
				l->select |= IMAP_LIST_SEL_RECURSIVEMATCH;
			else if (imap_arg_atom_is(a, "SPECIAL-USE"))
				l->select |= IMAP_LIST_SEL_SPECIAL_USE;
			else
				return imap_parse_fail(p,
				    "Unknown LIST selection option");
		}
		/* RFC 5258 §3.1: RECURSIVEMATCH needs a base option. */
		if ((l->select & IMAP_LIST_SEL_RECURSIVEMATCH) != 0 &&
		    (l->select & (IMAP_LIST_SEL_SUBSCRIBED |
		    IMAP_LIST_SEL_SPECIAL_USE)) == 0)
			return imap_parse_fail(p,
			    "RECURSIVEMATCH needs another selection option");
		i++;
	}
	if (count - i < 2)
		return imap_parse_fail(p, "Expected reference and pattern");
	if (imap_arg_mailbox(p, &args[i], true, &l->reference) < 0)
		return -1;
	i++;
	if (args[i].type == IMAP_ARG_LIST) {
		const struct imap_arg *o = &args[i];

		if (o->count == 0)
			return imap_parse_fail(p, "Empty pattern list");
		l->extended = true;
		pats = imap_parse_alloc_array(p, o->count, sizeof(*pats));
		for (j = 0; j < o->count; j++)
			if (imap_arg_mailbox(p, &o->list[j], true,
			    &pats[j]) < 0)
				return -1;
		l->pattern_count = o->count;
	} else {
		pats = imap_parse_alloc(p, sizeof(*pats));
		if (imap_arg_mailbox(p, &args[i], true, &pats[0]) < 0)
			return -1;
		l->pattern_count = 1;
	}
	l->patterns = pats;
	i++;
	if (i < count) {
		const struct imap_arg *o;

		if (count - i != 2 || !imap_arg_atom_is(&args[i], "RETURN") ||
		    args[i + 1].type != IMAP_ARG_LIST)
			return imap_parse_fail(p, "Unexpected LIST arguments");
		o = &args[i + 1];
		l->extended = true;
		for (j = 0; j < o->count; j++) {
			const struct imap_arg *a = &o->list[j];

			if (imap_arg_atom_is(a, "SUBSCRIBED"))
				l->ret |= IMAP_LIST_RET_SUBSCRIBED;
			else if (imap_arg_atom_is(a, "CHILDREN"))
				l->ret |= IMAP_LIST_RET_CHILDREN;
			else if (imap_arg_atom_is(a, "SPECIAL-USE"))
				l->ret |= IMAP_LIST_RET_SPECIAL_USE;
			else if (imap_arg_atom_is(a, "STATUS") &&
			    j + 1 < o->count) {
				if (parse_status_items(p, &o->list[++j],
				    &l->status) < 0)
					return -1;
				l->ret |= IMAP_LIST_RET_STATUS;
			} else
				return imap_parse_fail(p,
				    "Unknown LIST return option");
		}
	}
	return 0;
}

static int
cmd_lsub(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_list *l = &cmd->u.list;
	const char **pats;

	if (count != 2)
		return imap_parse_fail(p, "Expected reference and pattern");
	pats = imap_parse_alloc(p, sizeof(*pats));
	if (imap_arg_mailbox(p, &args[0], true, &l->reference) < 0 ||
	    imap_arg_mailbox(p, &args[1], true, &pats[0]) < 0)
		return -1;
	l->patterns = pats;
	l->pattern_count = 1;
	return 0;
}

static int
cmd_status(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 2)
		return imap_parse_fail(p, "Expected mailbox and status items");
	if (imap_arg_mailbox(p, &args[0], false,
	    &cmd->u.status.mailbox) < 0)
		return -1;
	return parse_status_items(p, &args[1], &cmd->u.status.items);
}

/* CATENATE (1*(TEXT literal / URL astring)) (RFC 4469 §5). */
static int
parse_catenate(struct imap_parser *p, const struct imap_arg *l,
    struct imap_append_msg *msg)
{
	struct imap_cat_part *parts;
	size_t i, n = 0;

	if (l->count == 0 || l->count % 2 != 0)
		return imap_parse_fail(p, "Invalid CATENATE parts");
	parts = imap_parse_alloc_array(p, l->count / 2, sizeof(*parts));
	for (i = 0; i < l->count; i += 2) {
		const struct imap_arg *k = &l->list[i], *v = &l->list[i + 1];

		if (imap_arg_atom_is(k, "TEXT") &&
		    v->type == IMAP_ARG_LITERAL) {
			parts[n].url = false;
		} else if (imap_arg_atom_is(k, "URL")) {
			const char *u;

			if (imap_arg_astring(p, v, false, &u) < 0)
				return -1;
			parts[n].url = true;
		} else
			return imap_parse_fail(p, "Invalid CATENATE parts");
		parts[n].data = v->str;
		parts[n].len = v->len;
		n++;
	}
	msg->parts = parts;
	msg->nparts = n;
	return 0;
}

/* APPEND mailbox 1*([flag-list] [date-time] (literal | UTF8 (lit8) |
 * CATENATE (parts))). */
static int
cmd_append(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_append *c = &cmd->u.append;
	struct imap_append_msg *msgs;
	size_t i, start, n = 0, ncat = 0;

	if (count < 2)
		return imap_parse_fail(p, "Missing message literal");
	if (imap_arg_mailbox(p, &args[0], false, &c->mailbox) < 0)
		return -1;
	msgs = imap_parse_alloc_array(p, count, sizeof(*msgs));
	for (i = start = 1; i < count; i++) {
		const struct imap_arg *m, *cat = NULL;
		size_t end = i;
		bool utf8 = false;

		if (args[i].type == IMAP_ARG_MESSAGE)
			m = &args[i];
		else if (imap_arg_atom_is(&args[i], "CATENATE") &&
		    i + 1 < count && args[i + 1].type == IMAP_ARG_LIST) {
			m = NULL;
			cat = &args[i + 1];
			i++;
			ncat++;
		}
		else if (imap_arg_atom_is(&args[i], "UTF8") && i + 1 < count &&
		    args[i + 1].type == IMAP_ARG_LIST &&
		    args[i + 1].count == 1 &&
		    args[i + 1].list[0].type == IMAP_ARG_MESSAGE) {
			m = &args[i + 1].list[0];
			utf8 = true;
			i++;
		} else
			continue;
		if (imap_parse_append_opts(p, &args[start], end - start,
		    &msgs[n]) < 0)
			return -1;
		msgs[n].tag = cmd->tag;
		msgs[n].mailbox = c->mailbox;
		msgs[n].index = (unsigned int)n;
		if (cat != NULL) {
			if (parse_catenate(p, cat, &msgs[n]) < 0)
				return -1;
			n++;
			start = i + 1;
			continue;
		}
		msgs[n].size = m->size;
		msgs[n].binary = (m->flags & IMAP_ARG_F_BINARY) != 0;
		msgs[n].sync = (m->flags & IMAP_ARG_F_NONSYNC) == 0;
		msgs[n].utf8 = utf8;
		msgs[n].nul_seen = (m->flags & IMAP_ARG_F_NUL) != 0;
		msgs[n].index = (unsigned int)n;
		n++;
		start = i + 1;
	}
	if (n == 0 || start != count)
		return imap_parse_fail(p, "Missing message literal");
	/* The literals were saved as they came; a CATENATE message is
	 * built at the end: one transaction cannot do both in order. */
	if (ncat > 0 && ncat != n)
		return imap_parse_fail(p, "CATENATE cannot be mixed with "
		    "message literals");
	c->msgs = msgs;
	c->count = n;
	return 0;
}

/* COPY/MOVE sequence-set mailbox. */
static int
cmd_copy(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 2)
		return imap_parse_fail(p, "Expected messages and a mailbox");
	if (imap_arg_seqset(p, &args[0], 0, &cmd->u.copy.set) < 0)
		return -1;
	return imap_arg_mailbox(p, &args[1], false, &cmd->u.copy.mailbox);
}

/* EXPUNGE, or UID EXPUNGE sequence-set (RFC 4315 §2.1). */
static int
cmd_expunge(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (!cmd->uid)
		return cmd_none(p, cmd, args, count);
	if (count != 1)
		return imap_parse_fail(p, "Expected UIDs");
	return imap_arg_seqset(p, &args[0], 0, &cmd->u.expunge.set);
}

/* ID ("field" "value" ...) / NIL (RFC 2971 §3.3). */
static int
cmd_id(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_id *c = &cmd->u.id;
	const char **fields, **values;
	const struct imap_arg *l;
	size_t i, n;

	if (count != 1)
		return imap_parse_fail(p, "Expected a parameter list or NIL");
	if (imap_arg_atom_is(&args[0], "NIL"))
		return 0;
	l = &args[0];
	if (l->type != IMAP_ARG_LIST || l->count % 2 != 0)
		return imap_parse_fail(p, "Invalid ID parameters");
	n = l->count / 2;
	if (n > IMAP_ID_MAX_PAIRS)
		return imap_parse_fail(p, "Too many ID parameters");
	fields = imap_parse_alloc_array(p, n > 0 ? n : 1, sizeof(*fields));
	values = imap_parse_alloc_array(p, n > 0 ? n : 1, sizeof(*values));
	for (i = 0; i < n; i++) {
		const struct imap_arg *f = &l->list[2 * i];
		const struct imap_arg *v = &l->list[2 * i + 1];

		if (!imap_arg_is_string(f) || f->len > IMAP_ID_MAX_FIELD)
			return imap_parse_fail(p, "Invalid ID field");
		if (imap_arg_atom_is(v, "NIL"))
			values[i] = NULL;
		else if (imap_arg_is_string(v) && v->len <= IMAP_ID_MAX_VALUE)
			values[i] = v->str;
		else
			return imap_parse_fail(p, "Invalid ID value");
		fields[i] = f->str;
	}
	c->fields = fields;
	c->values = values;
	c->count = n;
	return 0;
}

static int
cmd_getquota(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 1)
		return imap_parse_fail(p, "Expected a quota root");
	return imap_arg_astring(p, &args[0], false, &cmd->u.getquota.root);
}

/* SETQUOTA root (resource limit ...) (RFC 9208 §4.1.3, §7). */
static int
cmd_setquota(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	const struct imap_arg *l;
	uint64_t v;
	size_t i, j;

	if (count != 2 || args[1].type != IMAP_ARG_LIST ||
	    args[1].count % 2 != 0)
		return imap_parse_fail(p, "Expected a quota root and limits");
	if (imap_arg_astring(p, &args[0], false, &cmd->u.getquota.root) < 0)
		return -1;
	l = &args[1];
	for (i = 0; i < l->count; i += 2) {
		const struct imap_arg *r = &l->list[i];

		if (r->type != IMAP_ARG_ATOM || r->len == 0)
			return imap_parse_fail(p, "Invalid quota resource");
		for (j = 0; j < r->len; j++)
			if (!imap_char_is_atom((unsigned char)r->str[j]))
				return imap_parse_fail(p,
				    "Invalid quota resource");
		/* number64 (RFC 9208 §7: setquota_resource). */
		if (imap_arg_number(p, &l->list[i + 1], 0, INT64_MAX,
		    &v) < 0)
			return -1;
	}
	return 0;
}

/* COMPRESS mechanism (RFC 4978 §5): checked by the command. */
static int
cmd_compress(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	if (count != 1 || args[0].type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Expected a compression mechanism");
	cmd->u.compress.mech = args[0].str;
	return 0;
}

/* ---- the table ---- */

static const struct imap_cmd_def imap_cmd_defs[] = {
	{ "APPEND", IMAP_CMD_APPEND, IMAP_KIND_APPEND, 0, cmd_append },
	{ "AUTHENTICATE", IMAP_CMD_AUTHENTICATE, IMAP_KIND_PLAIN, 0,
	    cmd_authenticate },
	{ "CANCELUPDATE", IMAP_CMD_CANCELUPDATE, IMAP_KIND_PLAIN, 0,
	    imap_parse_cmd_cancelupdate },
	{ "CAPABILITY", IMAP_CMD_CAPABILITY, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "CHECK", IMAP_CMD_CHECK, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "CLOSE", IMAP_CMD_CLOSE, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "COMPRESS", IMAP_CMD_COMPRESS, IMAP_KIND_PLAIN, 0, cmd_compress },
	{ "COPY", IMAP_CMD_COPY, IMAP_KIND_PLAIN, IMAP_CMD_F_UID, cmd_copy },
	{ "CREATE", IMAP_CMD_CREATE, IMAP_KIND_PLAIN, 0, cmd_create },
	{ "DELETE", IMAP_CMD_DELETE, IMAP_KIND_PLAIN, 0, cmd_mailbox },
	{ "ENABLE", IMAP_CMD_ENABLE, IMAP_KIND_PLAIN, 0, cmd_enable },
	{ "EXAMINE", IMAP_CMD_EXAMINE, IMAP_KIND_PLAIN, 0, cmd_select },
	{ "EXPUNGE", IMAP_CMD_EXPUNGE, IMAP_KIND_PLAIN, IMAP_CMD_F_UID,
	    cmd_expunge },
	{ "FETCH", IMAP_CMD_FETCH, IMAP_KIND_FETCH, IMAP_CMD_F_UID,
	    imap_parse_cmd_fetch },
	{ "GETQUOTA", IMAP_CMD_GETQUOTA, IMAP_KIND_PLAIN, 0, cmd_getquota },
	{ "GETQUOTAROOT", IMAP_CMD_GETQUOTAROOT, IMAP_KIND_PLAIN, 0,
	    cmd_mailbox },
	{ "ID", IMAP_CMD_ID, IMAP_KIND_PLAIN, 0, cmd_id },
	{ "IDLE", IMAP_CMD_IDLE, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "LIST", IMAP_CMD_LIST, IMAP_KIND_PLAIN, 0, cmd_list },
	{ "LOGIN", IMAP_CMD_LOGIN, IMAP_KIND_PLAIN, 0, cmd_login },
	{ "LOGOUT", IMAP_CMD_LOGOUT, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "LSUB", IMAP_CMD_LSUB, IMAP_KIND_PLAIN, 0, cmd_lsub },
	{ "MOVE", IMAP_CMD_MOVE, IMAP_KIND_PLAIN, IMAP_CMD_F_UID, cmd_copy },
	{ "NAMESPACE", IMAP_CMD_NAMESPACE, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "NOOP", IMAP_CMD_NOOP, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "RENAME", IMAP_CMD_RENAME, IMAP_KIND_PLAIN, 0, cmd_rename },
	{ "SEARCH", IMAP_CMD_SEARCH, IMAP_KIND_PLAIN, IMAP_CMD_F_UID,
	    imap_parse_cmd_search },
	{ "SELECT", IMAP_CMD_SELECT, IMAP_KIND_PLAIN, 0, cmd_select },
	{ "SETQUOTA", IMAP_CMD_SETQUOTA, IMAP_KIND_PLAIN, 0, cmd_setquota },
	{ "SORT", IMAP_CMD_SORT, IMAP_KIND_PLAIN, IMAP_CMD_F_UID,
	    imap_parse_cmd_sort },
	{ "STARTTLS", IMAP_CMD_STARTTLS, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "STATUS", IMAP_CMD_STATUS, IMAP_KIND_PLAIN, 0, cmd_status },
	{ "STORE", IMAP_CMD_STORE, IMAP_KIND_PLAIN, IMAP_CMD_F_UID,
	    imap_parse_cmd_store },
	{ "SUBSCRIBE", IMAP_CMD_SUBSCRIBE, IMAP_KIND_PLAIN, 0, cmd_mailbox },
	{ "THREAD", IMAP_CMD_THREAD, IMAP_KIND_PLAIN, IMAP_CMD_F_UID,
	    imap_parse_cmd_thread },
	{ "UID", 0, IMAP_KIND_UID, 0, NULL },
	{ "UNSELECT", IMAP_CMD_UNSELECT, IMAP_KIND_PLAIN, 0, cmd_none },
	{ "UNSUBSCRIBE", IMAP_CMD_UNSUBSCRIBE, IMAP_KIND_PLAIN, 0,
	    cmd_mailbox },
};

const struct imap_cmd_def *
imap_cmd_lookup(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(imap_cmd_defs) / sizeof(imap_cmd_defs[0]);
	    i++) {
		const struct imap_cmd_def *d = &imap_cmd_defs[i];

		if (strlen(d->name) == len &&
		    strncasecmp(d->name, name, len) == 0)
			return d;
	}
	return NULL;
}

const struct imap_cmd_def *
imap_cmd_lookup_uid(const char *name, size_t len)
{
	const struct imap_cmd_def *d = imap_cmd_lookup(name, len);

	return d != NULL && (d->flags & IMAP_CMD_F_UID) != 0 ? d : NULL;
}
