/*
 * imap_parse_dump: one-line descriptions of parsed commands, for the
 * unit tests (which compare them with expected strings), the fuzzer
 * (which compares them between ways of feeding the same bytes) and
 * debug logs.  Client strings are quoted with every byte outside
 * printable ASCII escaped, so a dump is always one safe line.
 */
#include "config.h"

#include <string.h>

#include "buf.h"
#include "imap_date.h"
#include "imap_parse_private.h"

void
imap_dump_string(struct buf *out, const char *s)
{
	const unsigned char *c;

	if (s == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append_char(out, '"');
	for (c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			buf_printf(out, "\\%c", *c);
		else if (*c < 0x20 || *c > 0x7e)
			buf_printf(out, "\\x%02x", *c);
		else
			buf_append_char(out, (char)*c);
	}
	buf_append_char(out, '"');
}

void
imap_dump_seqset(struct buf *out, const struct imap_seqset *set)
{
	if (set->saved) {
		buf_append_char(out, '$');
		return;
	}
	imap_seqset_format(set->ranges, set->count, out);
	if (set->star) {
		if (set->count > 0)
			buf_append_char(out, ',');
		if (set->star_from == IMAP_SEQSET_STAR_ONLY)
			buf_append_char(out, '*');
		else
			buf_printf(out, "%u:*", set->star_from);
	}
}

/* Names of the set bits of mask, comma-separated. */
static void
dump_bits(struct buf *out, unsigned int mask, const char *const *names,
    size_t count)
{
	size_t i;
	bool first = true;

	for (i = 0; i < count; i++) {
		if ((mask & (1u << i)) == 0)
			continue;
		if (!first)
			buf_append_char(out, ',');
		buf_append_str(out, names[i]);
		first = false;
	}
}

static const char *const dump_status_names[] = {
	"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
	"HIGHESTMODSEQ", "SIZE", "DELETED", "APPENDLIMIT", "MAILBOXID"
};

static void
dump_flags(struct buf *out, const struct imap_flags *f)
{
	static const char *const names[] = {
		"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"
	};
	size_t i;
	bool first = true;

	buf_append_char(out, '(');
	for (i = 0; i < 5; i++) {
		if ((f->system & (1u << i)) == 0)
			continue;
		buf_printf(out, "%s%s", first ? "" : " ", names[i]);
		first = false;
	}
	for (i = 0; i < f->keyword_count; i++) {
		buf_printf(out, "%s%s", first ? "" : " ", f->keywords[i]);
		first = false;
	}
	buf_append_char(out, ')');
}

static void
dump_date(struct buf *out, time_t t)
{
	char d[IMAP_DATETIME_SIZE];

	imap_date_format_datetime(t, 0, d);
	buf_append(out, d, 11);		/* "01-Feb-1994" */
}

static const char *const dump_search_names[] = {
	[IMAP_SEARCH_AND] = "AND", [IMAP_SEARCH_OR] = "OR",
	[IMAP_SEARCH_NOT] = "NOT", [IMAP_SEARCH_ALL] = "ALL",
	[IMAP_SEARCH_ANSWERED] = "ANSWERED",
	[IMAP_SEARCH_DELETED] = "DELETED", [IMAP_SEARCH_DRAFT] = "DRAFT",
	[IMAP_SEARCH_FLAGGED] = "FLAGGED", [IMAP_SEARCH_NEW] = "NEW",
	[IMAP_SEARCH_OLD] = "OLD", [IMAP_SEARCH_RECENT] = "RECENT",
	[IMAP_SEARCH_SEEN] = "SEEN", [IMAP_SEARCH_UNANSWERED] = "UNANSWERED",
	[IMAP_SEARCH_UNDELETED] = "UNDELETED",
	[IMAP_SEARCH_UNDRAFT] = "UNDRAFT",
	[IMAP_SEARCH_UNFLAGGED] = "UNFLAGGED",
	[IMAP_SEARCH_UNSEEN] = "UNSEEN", [IMAP_SEARCH_KEYWORD] = "KEYWORD",
	[IMAP_SEARCH_UNKEYWORD] = "UNKEYWORD", [IMAP_SEARCH_BCC] = "BCC",
	[IMAP_SEARCH_BODY] = "BODY", [IMAP_SEARCH_CC] = "CC",
	[IMAP_SEARCH_FROM] = "FROM", [IMAP_SEARCH_SUBJECT] = "SUBJECT",
	[IMAP_SEARCH_TEXT] = "TEXT", [IMAP_SEARCH_TO] = "TO",
	[IMAP_SEARCH_HEADER] = "HEADER", [IMAP_SEARCH_BEFORE] = "BEFORE",
	[IMAP_SEARCH_ON] = "ON", [IMAP_SEARCH_SINCE] = "SINCE",
	[IMAP_SEARCH_SENTBEFORE] = "SENTBEFORE",
	[IMAP_SEARCH_SENTON] = "SENTON", [IMAP_SEARCH_SENTSINCE] = "SENTSINCE",
	[IMAP_SEARCH_SAVEDBEFORE] = "SAVEDBEFORE",
	[IMAP_SEARCH_SAVEDON] = "SAVEDON",
	[IMAP_SEARCH_SAVEDSINCE] = "SAVEDSINCE",
	[IMAP_SEARCH_SAVEDATESUPPORTED] = "SAVEDATESUPPORTED",
	[IMAP_SEARCH_LARGER] = "LARGER", [IMAP_SEARCH_SMALLER] = "SMALLER",
	[IMAP_SEARCH_OLDER] = "OLDER", [IMAP_SEARCH_YOUNGER] = "YOUNGER",
	[IMAP_SEARCH_MODSEQ] = "MODSEQ", [IMAP_SEARCH_SEQSET] = "SEQSET",
	[IMAP_SEARCH_UID] = "UID", [IMAP_SEARCH_EMAILID] = "EMAILID",
	[IMAP_SEARCH_THREADID] = "THREADID",
};

static void
dump_search_key(struct buf *out, const struct imap_search_key *k)
{
	static const char *const entries[] = {
		"", "priv", "shared", "all"
	};
	const struct imap_search_key *c;

	buf_append_str(out, dump_search_names[k->type]);
	switch (k->type) {
	case IMAP_SEARCH_AND:
	case IMAP_SEARCH_OR:
	case IMAP_SEARCH_NOT:
		buf_append_char(out, '(');
		for (c = k->child; c != NULL; c = c->next) {
			dump_search_key(out, c);
			if (c->next != NULL)
				buf_append_char(out, ',');
		}
		buf_append_char(out, ')');
		return;
	case IMAP_SEARCH_KEYWORD:
	case IMAP_SEARCH_UNKEYWORD:
	case IMAP_SEARCH_BCC:
	case IMAP_SEARCH_BODY:
	case IMAP_SEARCH_CC:
	case IMAP_SEARCH_FROM:
	case IMAP_SEARCH_SUBJECT:
	case IMAP_SEARCH_TEXT:
	case IMAP_SEARCH_TO:
	case IMAP_SEARCH_EMAILID:
	case IMAP_SEARCH_THREADID:
		buf_append_char(out, '(');
		imap_dump_string(out, k->str);
		buf_append_char(out, ')');
		return;
	case IMAP_SEARCH_HEADER:
		buf_append_char(out, '(');
		imap_dump_string(out, k->field);
		buf_append_char(out, ',');
		imap_dump_string(out, k->str);
		buf_append_char(out, ')');
		return;
	case IMAP_SEARCH_BEFORE:
	case IMAP_SEARCH_ON:
	case IMAP_SEARCH_SINCE:
	case IMAP_SEARCH_SENTBEFORE:
	case IMAP_SEARCH_SENTON:
	case IMAP_SEARCH_SENTSINCE:
	case IMAP_SEARCH_SAVEDBEFORE:
	case IMAP_SEARCH_SAVEDON:
	case IMAP_SEARCH_SAVEDSINCE:
		buf_append_char(out, '(');
		dump_date(out, k->date);
		buf_append_char(out, ')');
		return;
	case IMAP_SEARCH_LARGER:
	case IMAP_SEARCH_SMALLER:
	case IMAP_SEARCH_OLDER:
	case IMAP_SEARCH_YOUNGER:
		buf_printf(out, "(%llu)", (unsigned long long)k->num);
		return;
	case IMAP_SEARCH_MODSEQ:
		buf_append_char(out, '(');
		if (k->field != NULL) {
			imap_dump_string(out, k->field);
			buf_printf(out, ",%s,", entries[k->entry_type]);
		}
		buf_printf(out, "%llu)", (unsigned long long)k->num);
		return;
	case IMAP_SEARCH_SEQSET:
	case IMAP_SEARCH_UID:
		buf_append_char(out, '(');
		imap_dump_seqset(out, &k->set);
		buf_append_char(out, ')');
		return;
	default:
		return;
	}
}

static void
dump_search(struct buf *out, const struct imap_cmd_search *se)
{
	static const char *const rets[] = {
		"MIN", "MAX", "ALL", "COUNT", "SAVE"
	};

	if (se->esearch) {
		buf_append_str(out, " return=");
		dump_bits(out, se->ret, rets, 5);
	}
	if (se->charset != NULL) {
		buf_append_str(out, " charset=");
		imap_dump_string(out, se->charset);
	}
	buf_append_str(out, " key=");
	dump_search_key(out, se->key);
}

static void
dump_fetch(struct buf *out, const struct imap_cmd_fetch *f)
{
	static const char *const items[] = {
		"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
		"BODY", "BODYSTRUCTURE", "RFC822", "RFC822.HEADER",
		"RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE",
		"PREVIEW"
	};
	size_t i;

	buf_append_str(out, " set=");
	imap_dump_seqset(out, &f->set);
	buf_append_str(out, " items=");
	dump_bits(out, f->items, items, sizeof(items) / sizeof(items[0]));
	for (i = 0; i < f->body_count; i++) {
		const struct imap_fetch_body *b = &f->bodies[i];

		buf_printf(out, " %s%s", b->name, b->peek &&
		    b->kind != IMAP_FETCH_KIND_BINARY_SIZE ? "/peek" : "");
		if (b->partial)
			buf_printf(out, "<%llu.%llu>",
			    (unsigned long long)b->offset,
			    (unsigned long long)b->length);
	}
	if (f->has_changedsince)
		buf_printf(out, " changedsince=%llu",
		    (unsigned long long)f->changedsince);
	if (f->vanished)
		buf_append_str(out, " vanished");
	if (f->sets_seen)
		buf_append_str(out, " seen");
}

static void
dump_list(struct buf *out, const struct imap_cmd_list *l)
{
	static const char *const sel[] = {
		"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"
	};
	static const char *const ret[] = {
		"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"
	};
	size_t i;

	buf_append_str(out, " ref=");
	imap_dump_string(out, l->reference);
	buf_append_str(out, " patterns=");
	for (i = 0; i < l->pattern_count; i++) {
		if (i > 0)
			buf_append_char(out, ',');
		imap_dump_string(out, l->patterns[i]);
	}
	if (l->select != 0) {
		buf_append_str(out, " select=");
		dump_bits(out, l->select, sel, 4);
	}
	if (l->ret != 0) {
		buf_append_str(out, " return=");
		dump_bits(out, l->ret, ret, 4);
	}
	if (l->status != 0) {
		buf_append_str(out, " status=");
		dump_bits(out, l->status, dump_status_names, 10);
	}
	if (l->extended)
		buf_append_str(out, " extended");
}

static void
dump_append_msg(struct buf *out, const struct imap_append_msg *m)
{
	char d[IMAP_DATETIME_SIZE];

	buf_printf(out, " msg%u=(size=%llu flags=", m->index,
	    (unsigned long long)m->size);
	dump_flags(out, &m->flags);
	if (m->has_date) {
		imap_date_format_datetime(m->date, m->tz, d);
		buf_printf(out, " date=\"%s\"", d);
	}
	if (!m->sync)
		buf_append_str(out, " nonsync");
	if (m->binary)
		buf_append_str(out, " binary");
	if (m->utf8)
		buf_append_str(out, " utf8");
	if (m->nul_seen)
		buf_append_str(out, " nul");
	if (m->nparts > 0) {
		size_t i;

		/* CATENATE (RFC 4469): TEXT sizes, URLs as sent. */
		buf_append_str(out, " catenate=(");
		for (i = 0; i < m->nparts; i++) {
			if (i > 0)
				buf_append_char(out, ' ');
			if (m->parts[i].url) {
				buf_append_str(out, "URL ");
				imap_dump_string(out, m->parts[i].data);
			} else
				buf_printf(out, "TEXT %zu", m->parts[i].len);
		}
		buf_append_char(out, ')');
	}
	buf_append_char(out, ')');
}

static void
dump_select(struct buf *out, const struct imap_cmd_select *s)
{
	buf_append_str(out, " mailbox=");
	imap_dump_string(out, s->mailbox);
	if (s->condstore)
		buf_append_str(out, " condstore");
	if (!s->qresync)
		return;
	buf_printf(out, " qresync=(uidvalidity=%u modseq=%llu", s->uidvalidity,
	    (unsigned long long)s->modseq);
	if (s->has_known_uids) {
		buf_append_str(out, " known=");
		imap_dump_seqset(out, &s->known_uids);
	}
	if (s->has_seq_match) {
		buf_append_str(out, " seqs=");
		imap_dump_seqset(out, &s->known_seqs);
		buf_append_str(out, " uids=");
		imap_dump_seqset(out, &s->known_seq_uids);
	}
	buf_append_char(out, ')');
}

void
imap_command_dump(const struct imap_command *cmd, bool show_secrets,
    struct buf *out)
{
	static const char *const uses[] = {
		"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
		"\\Sent", "\\Trash", "other"
	};
	static const char *const sorts[] = {
		"", "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
		"DISPLAYFROM", "DISPLAYTO"
	};
	size_t i;

	buf_printf(out, "%s %s%s", cmd->tag, cmd->uid ? "UID " : "",
	    cmd->name);
	switch (cmd->type) {
	case IMAP_CMD_AUTHENTICATE:
		buf_printf(out, " mech=%s", cmd->u.authenticate.mech);
		if (cmd->u.authenticate.initial != NULL) {
			buf_append_str(out, " initial=");
			if (show_secrets)
				imap_dump_string(out,
				    cmd->u.authenticate.initial);
			else
				buf_append_str(out, "***");
		}
		break;
	case IMAP_CMD_LOGIN:
		buf_append_str(out, " user=");
		imap_dump_string(out, cmd->u.login.user);
		buf_append_str(out, " password=");
		if (show_secrets)
			imap_dump_string(out, cmd->u.login.password);
		else
			buf_append_str(out, "***");
		break;
	case IMAP_CMD_ENABLE:
		buf_append_str(out, " caps=");
		for (i = 0; i < cmd->u.enable.count; i++)
			buf_printf(out, "%s%s", i > 0 ? "," : "",
			    cmd->u.enable.caps[i]);
		break;
	case IMAP_CMD_SELECT:
	case IMAP_CMD_EXAMINE:
		dump_select(out, &cmd->u.select);
		break;
	case IMAP_CMD_CREATE:
		buf_append_str(out, " mailbox=");
		imap_dump_string(out, cmd->u.create.mailbox);
		if (cmd->u.create.use != 0) {
			buf_append_str(out, " use=");
			dump_bits(out, cmd->u.create.use, uses, 8);
		}
		break;
	case IMAP_CMD_DELETE:
	case IMAP_CMD_SUBSCRIBE:
	case IMAP_CMD_UNSUBSCRIBE:
	case IMAP_CMD_GETQUOTAROOT:
		buf_append_str(out, " mailbox=");
		imap_dump_string(out, cmd->u.mailbox.mailbox);
		break;
	case IMAP_CMD_RENAME:
		buf_append_str(out, " from=");
		imap_dump_string(out, cmd->u.rename.from);
		buf_append_str(out, " to=");
		imap_dump_string(out, cmd->u.rename.to);
		break;
	case IMAP_CMD_LIST:
	case IMAP_CMD_LSUB:
		dump_list(out, &cmd->u.list);
		break;
	case IMAP_CMD_STATUS:
		buf_append_str(out, " mailbox=");
		imap_dump_string(out, cmd->u.status.mailbox);
		buf_append_str(out, " items=");
		dump_bits(out, cmd->u.status.items, dump_status_names, 10);
		break;
	case IMAP_CMD_APPEND:
		buf_append_str(out, " mailbox=");
		imap_dump_string(out, cmd->u.append.mailbox);
		for (i = 0; i < cmd->u.append.count; i++)
			dump_append_msg(out, &cmd->u.append.msgs[i]);
		break;
	case IMAP_CMD_EXPUNGE:
		if (cmd->uid) {
			buf_append_str(out, " set=");
			imap_dump_seqset(out, &cmd->u.expunge.set);
		}
		break;
	case IMAP_CMD_SEARCH:
		dump_search(out, &cmd->u.search);
		break;
	case IMAP_CMD_FETCH:
		dump_fetch(out, &cmd->u.fetch);
		break;
	case IMAP_CMD_STORE:
		buf_append_str(out, " set=");
		imap_dump_seqset(out, &cmd->u.store.set);
		buf_printf(out, " %sFLAGS%s ", cmd->u.store.mode > 0 ? "+" :
		    cmd->u.store.mode < 0 ? "-" : "",
		    cmd->u.store.silent ? ".SILENT" : "");
		dump_flags(out, &cmd->u.store.flags);
		if (cmd->u.store.has_unchangedsince)
			buf_printf(out, " unchangedsince=%llu",
			    (unsigned long long)cmd->u.store.unchangedsince);
		break;
	case IMAP_CMD_COPY:
	case IMAP_CMD_MOVE:
		buf_append_str(out, " set=");
		imap_dump_seqset(out, &cmd->u.copy.set);
		buf_append_str(out, " mailbox=");
		imap_dump_string(out, cmd->u.copy.mailbox);
		break;
	case IMAP_CMD_ID:
		if (cmd->u.id.count == 0 && cmd->u.id.fields == NULL) {
			buf_append_str(out, " NIL");
			break;
		}
		buf_append_str(out, " (");
		for (i = 0; i < cmd->u.id.count; i++) {
			if (i > 0)
				buf_append_char(out, ' ');
			imap_dump_string(out, cmd->u.id.fields[i]);
			buf_append_char(out, ':');
			imap_dump_string(out, cmd->u.id.values[i]);
		}
		buf_append_char(out, ')');
		break;
	case IMAP_CMD_SORT:
		buf_append_str(out, " criteria=");
		for (i = 0; i < cmd->u.sort.criteria_count; i++)
			buf_printf(out, "%s%s%s", i > 0 ? "," : "",
			    cmd->u.sort.criteria[i].reverse ? "REVERSE " : "",
			    sorts[cmd->u.sort.criteria[i].key]);
		dump_search(out, &cmd->u.sort.search);
		break;
	case IMAP_CMD_THREAD:
		buf_printf(out, " alg=%s", cmd->u.thread.alg ==
		    IMAP_THREAD_REFERENCES ? "REFERENCES" : "ORDEREDSUBJECT");
		dump_search(out, &cmd->u.thread.search);
		break;
	case IMAP_CMD_GETQUOTA:
	case IMAP_CMD_SETQUOTA:
		buf_append_str(out, " root=");
		imap_dump_string(out, cmd->u.getquota.root);
		break;
	default:
		break;
	}
}
