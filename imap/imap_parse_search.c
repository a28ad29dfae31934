/*
 * imap_parse_search: SEARCH, SORT and THREAD arguments.  The search
 * program (RFC 9051 §6.4.4 and §9 search-key; RFC 3501 for RECENT, NEW,
 * OLD; RFC 4731/5182/5267 RETURN options; RFC 7162 MODSEQ; RFC 5032
 * OLDER/YOUNGER; RFC 8514 SAVED*; RFC 8474 EMAILID/THREADID; RFC 5256
 * SORT and THREAD) becomes a tree of struct imap_search_key.
 *
 * Keys nest through parentheses, OR and NOT; the recursion takes a depth
 * and stops at MAX_IMAP_SEARCH_DEPTH with a BAD (STYLE §7).  Charsets are
 * passed through: whether one is supported ([BADCHARSET]) is the
 * session's answer.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "imap_date.h"
#include "imap_parse_private.h"
#include "limits_pst.h"

enum search_arg {
	SARG_NONE = 0,
	SARG_ASTRING,		/* str */
	SARG_KEYWORD,		/* str: flag-keyword */
	SARG_DATE,		/* date */
	SARG_NUMBER64,		/* num: 0..2^63-1 */
	SARG_NZNUMBER,		/* num: 1..2^32-1 */
	SARG_OBJECTID,		/* str: RFC 8474 objectid */
	SARG_HEADER,		/* field, str */
	SARG_MODSEQ,		/* [field entry-type] num */
	SARG_SEQSET,		/* set */
	SARG_NOT,
	SARG_OR,
};

static const struct {
	const char		*name;
	enum imap_search_type	 type;
	enum search_arg		 arg;
} search_keys[] = {
	{ "ALL", IMAP_SEARCH_ALL, SARG_NONE },
	{ "ANSWERED", IMAP_SEARCH_ANSWERED, SARG_NONE },
	{ "DELETED", IMAP_SEARCH_DELETED, SARG_NONE },
	{ "DRAFT", IMAP_SEARCH_DRAFT, SARG_NONE },
	{ "FLAGGED", IMAP_SEARCH_FLAGGED, SARG_NONE },
	{ "NEW", IMAP_SEARCH_NEW, SARG_NONE },
	{ "OLD", IMAP_SEARCH_OLD, SARG_NONE },
	{ "RECENT", IMAP_SEARCH_RECENT, SARG_NONE },
	{ "SEEN", IMAP_SEARCH_SEEN, SARG_NONE },
	{ "UNANSWERED", IMAP_SEARCH_UNANSWERED, SARG_NONE },
	{ "UNDELETED", IMAP_SEARCH_UNDELETED, SARG_NONE },
	{ "UNDRAFT", IMAP_SEARCH_UNDRAFT, SARG_NONE },
	{ "UNFLAGGED", IMAP_SEARCH_UNFLAGGED, SARG_NONE },
	{ "UNSEEN", IMAP_SEARCH_UNSEEN, SARG_NONE },
	{ "SAVEDATESUPPORTED", IMAP_SEARCH_SAVEDATESUPPORTED, SARG_NONE },
	{ "KEYWORD", IMAP_SEARCH_KEYWORD, SARG_KEYWORD },
	{ "UNKEYWORD", IMAP_SEARCH_UNKEYWORD, SARG_KEYWORD },
	{ "BCC", IMAP_SEARCH_BCC, SARG_ASTRING },
	{ "BODY", IMAP_SEARCH_BODY, SARG_ASTRING },
	{ "CC", IMAP_SEARCH_CC, SARG_ASTRING },
	{ "FROM", IMAP_SEARCH_FROM, SARG_ASTRING },
	{ "SUBJECT", IMAP_SEARCH_SUBJECT, SARG_ASTRING },
	{ "TEXT", IMAP_SEARCH_TEXT, SARG_ASTRING },
	{ "TO", IMAP_SEARCH_TO, SARG_ASTRING },
	{ "HEADER", IMAP_SEARCH_HEADER, SARG_HEADER },
	{ "BEFORE", IMAP_SEARCH_BEFORE, SARG_DATE },
	{ "ON", IMAP_SEARCH_ON, SARG_DATE },
	{ "SINCE", IMAP_SEARCH_SINCE, SARG_DATE },
	{ "SENTBEFORE", IMAP_SEARCH_SENTBEFORE, SARG_DATE },
	{ "SENTON", IMAP_SEARCH_SENTON, SARG_DATE },
	{ "SENTSINCE", IMAP_SEARCH_SENTSINCE, SARG_DATE },
	{ "SAVEDBEFORE", IMAP_SEARCH_SAVEDBEFORE, SARG_DATE },
	{ "SAVEDON", IMAP_SEARCH_SAVEDON, SARG_DATE },
	{ "SAVEDSINCE", IMAP_SEARCH_SAVEDSINCE, SARG_DATE },
	{ "LARGER", IMAP_SEARCH_LARGER, SARG_NUMBER64 },
	{ "SMALLER", IMAP_SEARCH_SMALLER, SARG_NUMBER64 },
	{ "OLDER", IMAP_SEARCH_OLDER, SARG_NZNUMBER },
	{ "YOUNGER", IMAP_SEARCH_YOUNGER, SARG_NZNUMBER },
	{ "MODSEQ", IMAP_SEARCH_MODSEQ, SARG_MODSEQ },
	{ "UID", IMAP_SEARCH_UID, SARG_SEQSET },
	{ "EMAILID", IMAP_SEARCH_EMAILID, SARG_OBJECTID },
	{ "THREADID", IMAP_SEARCH_THREADID, SARG_OBJECTID },
	{ "NOT", IMAP_SEARCH_NOT, SARG_NOT },
	{ "OR", IMAP_SEARCH_OR, SARG_OR },
};

struct search_ctx {
	struct imap_parser	*p;
	const struct imap_arg	*args;
	size_t			 count;
	size_t			 i;	/* next argument */
};

static int search_key(struct search_ctx *s, unsigned int depth,
    struct imap_search_key **key_r);

/* The next argument, or a BAD when there is none. */
static const struct imap_arg *
search_next(struct search_ctx *s)
{
	if (s->i >= s->count) {
		(void)imap_parse_fail(s->p, "Missing search argument");
		return NULL;
	}
	return &s->args[s->i++];
}

/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474 §7) */
static bool
search_objectid_valid(const struct imap_arg *a)
{
	size_t i;

	if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 255)
		return false;
	for (i = 0; i < a->len; i++) {
		char c = a->str[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* MODSEQ ["/flags/..." ("priv" / "shared" / "all")] mod-sequence-valzer */
static int
search_modseq(struct search_ctx *s, struct imap_search_key *k)
{
	const struct imap_arg *a;

	if ((a = search_next(s)) == NULL)
		return -1;
	if (imap_arg_is_string(a)) {
		const struct imap_arg *t;

		if (strncasecmp(a->str, "/flags/", 7) != 0 || a->len <= 7)
			return imap_parse_fail(s->p, "Invalid MODSEQ entry");
		k->field = a->str;
		if ((t = search_next(s)) == NULL)
			return -1;
		if (imap_arg_atom_is(t, "priv"))
			k->entry_type = IMAP_MODSEQ_ENTRY_PRIV;
		else if (imap_arg_atom_is(t, "shared"))
			k->entry_type = IMAP_MODSEQ_ENTRY_SHARED;
		else if (imap_arg_atom_is(t, "all"))
			k->entry_type = IMAP_MODSEQ_ENTRY_ALL;
		else
			return imap_parse_fail(s->p,
			    "Invalid MODSEQ entry type");
		if ((a = search_next(s)) == NULL)
			return -1;
	}
	return imap_arg_number(s->p, a, 0, INT64_MAX, &k->num);
}

/* The argument(s) of a named key. */
static int
search_key_args(struct search_ctx *s, enum search_arg arg, unsigned int depth,
    struct imap_search_key *k)
{
	const struct imap_arg *a;
	struct imap_search_key *c1, *c2;
	size_t j;

	switch (arg) {
	case SARG_NONE:
		return 0;
	case SARG_NOT:
		if (search_key(s, depth + 1, &c1) < 0)
			return -1;
		k->child = c1;
		return 0;
	case SARG_OR:
		if (search_key(s, depth + 1, &c1) < 0 ||
		    search_key(s, depth + 1, &c2) < 0)
			return -1;
		c1->next = c2;
		k->child = c1;
		return 0;
	case SARG_MODSEQ:
		return search_modseq(s, k);
	default:
		break;
	}
	if ((a = search_next(s)) == NULL)
		return -1;
	switch (arg) {
	case SARG_ASTRING:
		return imap_arg_astring(s->p, a, false, &k->str);
	case SARG_KEYWORD:
		if (a->type != IMAP_ARG_ATOM)
			return imap_parse_fail(s->p, "Invalid keyword");
		for (j = 0; j < a->len; j++)
			if (!imap_char_is_atom((unsigned char)a->str[j]))
				return imap_parse_fail(s->p,
				    "Invalid keyword");
		k->str = a->str;
		return 0;
	case SARG_DATE:
		/* date = date-text / DQUOTE date-text DQUOTE */
		if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED) ||
		    imap_date_parse(a->str, &k->date) < 0)
			return imap_parse_fail(s->p, "Invalid date");
		return 0;
	case SARG_NUMBER64:
		return imap_arg_number(s->p, a, 0, INT64_MAX, &k->num);
	case SARG_NZNUMBER:
		return imap_arg_number(s->p, a, 1, UINT32_MAX, &k->num);
	case SARG_OBJECTID:
		if (!search_objectid_valid(a))
			return imap_parse_fail(s->p, "Invalid object id");
		k->str = a->str;
		return 0;
	case SARG_HEADER:
		if (imap_arg_astring(s->p, a, false, &k->field) < 0)
			return -1;
		if ((a = search_next(s)) == NULL)
			return -1;
		return imap_arg_astring(s->p, a, false, &k->str);
	case SARG_SEQSET:
		return imap_arg_seqset(s->p, a, 0, &k->set);
	default:
		abort();
	}
}

/* A parenthesized list or the program: an AND of 1+ keys. */
static int
search_and(struct imap_parser *p, const struct imap_arg *args, size_t count,
    unsigned int depth, struct imap_search_key **key_r)
{
	struct search_ctx s;
	struct imap_search_key *k, *c, *last = NULL;

	if (count == 0)
		return imap_parse_fail(p, "Missing search key");
	memset(&s, 0, sizeof(s));
	s.p = p;
	s.args = args;
	s.count = count;
	k = imap_parse_alloc(p, sizeof(*k));
	k->type = IMAP_SEARCH_AND;
	while (s.i < s.count) {
		if (search_key(&s, depth + 1, &c) < 0)
			return -1;
		if (last == NULL)
			k->child = c;
		else
			last->next = c;
		last = c;
	}
	*key_r = k;
	return 0;
}

static int
search_key(struct search_ctx *s, unsigned int depth,
    struct imap_search_key **key_r)
{
	const struct imap_arg *a;
	struct imap_search_key *k;
	size_t j;

	if (depth > MAX_IMAP_SEARCH_DEPTH)
		return imap_parse_fail(s->p, "Too deep nesting of search keys");
	if ((a = search_next(s)) == NULL)
		return -1;
	if (a->type == IMAP_ARG_LIST)
		return search_and(s->p, a->list, a->count, depth, key_r);
	if (a->type != IMAP_ARG_ATOM)
		return imap_parse_fail(s->p, "Invalid search key");
	k = imap_parse_alloc(s->p, sizeof(*k));
	for (j = 0; j < sizeof(search_keys) / sizeof(search_keys[0]); j++) {
		if (strcasecmp(a->str, search_keys[j].name) == 0) {
			k->type = search_keys[j].type;
			if (search_key_args(s, search_keys[j].arg, depth,
			    k) < 0)
				return -1;
			*key_r = k;
			return 0;
		}
	}
	/* A bare sequence set (or "$", RFC 5182). */
	if (imap_arg_seqset(s->p, a, 0, &k->set) < 0)
		return imap_parse_fail(s->p, "Unknown search key");
	k->type = IMAP_SEARCH_SEQSET;
	*key_r = k;
	return 0;
}

/* partial-range = nz-number ":" nz-number (RFC 5267 §5; 500:400 is
 * 400:500, no "*"). */
static int
search_partial(const struct imap_arg *a, struct imap_cmd_search *se)
{
	unsigned long long lo, hi;
	char *end;
	const char *colon;

	if (a->type != IMAP_ARG_ATOM || a->len > 21 ||
	    (colon = strchr(a->str, ':')) == NULL)
		return -1;
	if (a->str[0] < '1' || a->str[0] > '9' || colon[1] < '1' ||
	    colon[1] > '9')
		return -1;
	lo = strtoull(a->str, &end, 10);
	if (end != colon || lo > UINT32_MAX)
		return -1;
	hi = strtoull(colon + 1, &end, 10);
	if (*end != '\0' || hi > UINT32_MAX)
		return -1;
	se->partial_lo = (uint32_t)(lo < hi ? lo : hi);
	se->partial_hi = (uint32_t)(lo < hi ? hi : lo);
	return 0;
}

/* [RETURN (opts)] at args[*ip] (RFC 4731 §3.1, RFC 5182, RFC 5267). */
static int
search_return(struct imap_parser *p, const struct imap_arg *args,
    size_t count, size_t *ip, struct imap_cmd_search *se)
{
	const struct imap_arg *l;
	size_t i = *ip, j;

	if (i >= count || !imap_arg_atom_is(&args[i], "RETURN"))
		return 0;
	if (i + 1 >= count || args[i + 1].type != IMAP_ARG_LIST)
		return imap_parse_fail(p, "Invalid RETURN options");
	l = &args[i + 1];
	se->esearch = true;
	for (j = 0; j < l->count; j++) {
		if (imap_arg_atom_is(&l->list[j], "MIN"))
			se->ret |= IMAP_SEARCH_RET_MIN;
		else if (imap_arg_atom_is(&l->list[j], "MAX"))
			se->ret |= IMAP_SEARCH_RET_MAX;
		else if (imap_arg_atom_is(&l->list[j], "ALL"))
			se->ret |= IMAP_SEARCH_RET_ALL;
		else if (imap_arg_atom_is(&l->list[j], "COUNT"))
			se->ret |= IMAP_SEARCH_RET_COUNT;
		else if (imap_arg_atom_is(&l->list[j], "SAVE"))
			se->ret |= IMAP_SEARCH_RET_SAVE;
		else if (imap_arg_atom_is(&l->list[j], "CONTEXT"))
			se->ret |= IMAP_SEARCH_RET_CONTEXT;
		else if (imap_arg_atom_is(&l->list[j], "UPDATE"))
			se->ret |= IMAP_SEARCH_RET_UPDATE;
		else if (imap_arg_atom_is(&l->list[j], "PARTIAL")) {
			if ((se->ret & IMAP_SEARCH_RET_PARTIAL) != 0 ||
			    ++j >= l->count ||
			    search_partial(&l->list[j], se) < 0)
				return imap_parse_fail(p,
				    "Invalid PARTIAL range");
			se->ret |= IMAP_SEARCH_RET_PARTIAL;
		} else
			return imap_parse_fail(p, "Unknown RETURN option");
	}
	/* RFC 5267 §4.4: one PARTIAL or one ALL, not both. */
	if ((se->ret & IMAP_SEARCH_RET_PARTIAL) != 0 &&
	    (se->ret & IMAP_SEARCH_RET_ALL) != 0)
		return imap_parse_fail(p, "PARTIAL and ALL together");
	/* "RETURN ()" is "RETURN (ALL)" (RFC 4731 §3.1). */
	if (se->ret == 0)
		se->ret = IMAP_SEARCH_RET_ALL;
	*ip = i + 2;
	return 0;
}

/* [CHARSET charset] (SEARCH) or charset (SORT, THREAD), then keys. */
static int
search_program(struct imap_parser *p, const struct imap_arg *args,
    size_t count, size_t i, bool charset_required,
    struct imap_cmd_search *se)
{
	struct imap_search_key *key;

	if (charset_required) {
		if (i >= count)
			return imap_parse_fail(p, "Missing charset");
		if (imap_arg_astring(p, &args[i], false, &se->charset) < 0)
			return -1;
		i++;
	} else if (i < count && imap_arg_atom_is(&args[i], "CHARSET")) {
		if (i + 1 >= count)
			return imap_parse_fail(p, "Missing charset");
		if (imap_arg_astring(p, &args[i + 1], false,
		    &se->charset) < 0)
			return -1;
		i += 2;
	}
	if (search_and(p, args + i, count - i, 0, &key) < 0)
		return -1;
	se->key = key;
	return 0;
}

int
imap_parse_cmd_search(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_search *se = &cmd->u.search;
	size_t i = 0;

	if (search_return(p, args, count, &i, se) < 0)
		return -1;
	return search_program(p, args, count, i, false, se);
}

/* SORT [RETURN (...)] (criteria) charset keys (RFC 5256 §3, 5267). */
int
imap_parse_cmd_sort(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	static const struct {
		const char		*name;
		enum imap_sort_key	 key;
	} keys[] = {
		{ "ARRIVAL", IMAP_SORT_ARRIVAL },
		{ "CC", IMAP_SORT_CC },
		{ "DATE", IMAP_SORT_DATE },
		{ "FROM", IMAP_SORT_FROM },
		{ "SIZE", IMAP_SORT_SIZE },
		{ "SUBJECT", IMAP_SORT_SUBJECT },
		{ "TO", IMAP_SORT_TO },
		{ "DISPLAYFROM", IMAP_SORT_DISPLAYFROM },
		{ "DISPLAYTO", IMAP_SORT_DISPLAYTO },
	};
	struct imap_cmd_sort *so = &cmd->u.sort;
	struct imap_sort_criterion *cr;
	const struct imap_arg *l;
	size_t i = 0, j, k, n = 0;

	if (search_return(p, args, count, &i, &so->search) < 0)
		return -1;
	if (i >= count || args[i].type != IMAP_ARG_LIST ||
	    args[i].count == 0)
		return imap_parse_fail(p, "Expected sort criteria");
	l = &args[i++];
	cr = imap_parse_alloc_array(p, l->count, sizeof(*cr));
	for (j = 0; j < l->count; j++) {
		if (imap_arg_atom_is(&l->list[j], "REVERSE")) {
			if (++j >= l->count)
				return imap_parse_fail(p,
				    "REVERSE needs a sort key");
			cr[n].reverse = true;
		}
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (imap_arg_atom_is(&l->list[j], keys[k].name))
				break;
		if (k == sizeof(keys) / sizeof(keys[0]))
			return imap_parse_fail(p, "Unknown sort key");
		cr[n++].key = keys[k].key;
	}
	so->criteria = cr;
	so->criteria_count = n;
	return search_program(p, args, count, i, true, &so->search);
}

/* THREAD algorithm charset keys (RFC 5256 §3). */
int
imap_parse_cmd_thread(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_thread *t = &cmd->u.thread;

	if (count < 1)
		return imap_parse_fail(p, "Expected a threading algorithm");
	if (imap_arg_atom_is(&args[0], "ORDEREDSUBJECT"))
		t->alg = IMAP_THREAD_ORDEREDSUBJECT;
	else if (imap_arg_atom_is(&args[0], "REFERENCES"))
		t->alg = IMAP_THREAD_REFERENCES;
	else if (imap_arg_atom_is(&args[0], "REFS"))
		t->alg = IMAP_THREAD_REFS;
	else
		return imap_parse_fail(p, "Unknown threading algorithm");
	return search_program(p, args, count, 1, true, &t->search);
}

/* CANCELUPDATE 1*(SP quoted) (RFC 5267 §5): the tags, in u.enable. */
int
imap_parse_cmd_cancelupdate(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	const char **tags;
	size_t i;

	if (count == 0)
		return imap_parse_fail(p, "Expected search tags");
	tags = imap_parse_alloc_array(p, count, sizeof(*tags));
	for (i = 0; i < count; i++) {
		if (args[i].type != IMAP_ARG_QUOTED)
			return imap_parse_fail(p, "Expected a quoted tag");
		tags[i] = args[i].str;
	}
	cmd->u.enable.caps = tags;
	cmd->u.enable.count = count;
	return 0;
}
