/*
 * imap_parse_fetch: FETCH and STORE arguments (RFC 9051 §6.4.5, §6.4.6;
 * RFC 3516 BINARY; RFC 7162 CHANGEDSINCE, VANISHED, UNCHANGEDSINCE;
 * RFC 8474 EMAILID/THREADID; RFC 8514 SAVEDATE; RFC 8970 PREVIEW).  A
 * body section such
 * as "BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.2048>" arrives as one
 * atom (the tokenizer keeps FETCH brackets whole) and is taken apart
 * here into part numbers, section text, header names and partial
 * range.  Nothing here reads a message.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_parse_private.h"

static const struct {
	const char	*name;
	uint32_t	 bit;
} fetch_simple[] = {
	{ "UID", IMAP_FETCH_UID },
	{ "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
	{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
	{ "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
	{ "MODSEQ", IMAP_FETCH_MODSEQ },
	{ "EMAILID", IMAP_FETCH_EMAILID },
	{ "THREADID", IMAP_FETCH_THREADID },
	{ "SAVEDATE", IMAP_FETCH_SAVEDATE },
	{ "PREVIEW", IMAP_FETCH_PREVIEW },
};

/* Macros (RFC 9051 §6.4.5), only as the whole item argument. */
#define FETCH_FAST	(IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | \
			 IMAP_FETCH_RFC822_SIZE)
#define FETCH_ALL	(FETCH_FAST | IMAP_FETCH_ENVELOPE)
#define FETCH_FULL	(FETCH_ALL | IMAP_FETCH_BODY)

/* A header field name: RFC 5322 ftext (printable ASCII but ':'). */
static bool
fetch_field_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ':')
			return false;
	return true;
}

/* Append s as an astring: an atom when it can be one, else quoted. */
static void
fetch_put_astring(struct buf *b, const char *s)
{
	const char *c;
	bool atom = *s != '\0';

	for (c = s; *c != '\0' && atom; c++)
		atom = imap_char_is_atom((unsigned char)*c) || *c == ']';
	if (atom) {
		buf_append_str(b, s);
		return;
	}
	buf_append_char(b, '"');
	for (c = s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, *c);
	}
	buf_append_char(b, '"');
}

/*
 * header-list: "(" header-fld-name *(SP header-fld-name) ")" where the
 * names are astrings (atoms or quoted strings here; the tokenizer does
 * not allow literals inside sections).  s[*ip] is just past "(".
 */
static int
fetch_header_list(struct imap_parser *p, const char *s, size_t len,
    size_t *ip, struct imap_fetch_body *b)
{
	const char **names;
	struct buf name;
	size_t i = *ip, n = 0, max = len / 2 + 1;

	names = imap_parse_alloc_array(p, max, sizeof(*names));
	buf_init(&name, 0);
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i < len && s[i] == ')' && n > 0) {
			i++;
			break;
		}
		if (i >= len || n == max)
			goto bad;
		buf_reset(&name);
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				buf_append_char(&name, s[i]);
			}
			if (i >= len)
				goto bad;
			i++;
		} else {
			for (; i < len && s[i] != ' ' && s[i] != ')'; i++) {
				unsigned char c = (unsigned char)s[i];

				if (!imap_char_is_atom(c) && c != ']')
					goto bad;
				buf_append_char(&name, s[i]);
			}
		}
		if (i < len && s[i] != ' ' && s[i] != ')')
			goto bad;
		if (!fetch_field_name_valid(name.data, name.len))
			goto bad;
		names[n++] = imap_parse_strdup(p, name.data, name.len);
	}
	buf_free(&name);
	b->fields = names;
	b->field_count = n;
	*ip = i;
	return 0;
bad:
	buf_free(&name);
	return imap_parse_fail(p, "Invalid header field list");
}

/* section-spec of BODY[...] or section-part of BINARY[...]. */
static int
fetch_section(struct imap_parser *p, const char *s, size_t len,
    struct imap_fetch_body *b)
{
	static const struct {
		const char		*name;
		enum imap_section_text	 text;
	} texts[] = {
		{ "HEADER.FIELDS.NOT", IMAP_SECTION_HEADER_FIELDS_NOT },
		{ "HEADER.FIELDS", IMAP_SECTION_HEADER_FIELDS },
		{ "HEADER", IMAP_SECTION_HEADER },
		{ "TEXT", IMAP_SECTION_TEXT },
		{ "MIME", IMAP_SECTION_MIME },
	};
	uint32_t *parts;
	size_t i = 0, j, n = 0;

	parts = imap_parse_alloc_array(p, len / 2 + 1, sizeof(*parts));
	/* section-part = nz-number *("." nz-number) */
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		uint64_t v;

		for (j = i; j < len && s[j] >= '0' && s[j] <= '9'; j++)
			;
		if (s[i] == '0' ||
		    imap_parse_u64(s + i, j - i, UINT32_MAX, &v) < 0)
			return imap_parse_fail(p, "Invalid section part");
		parts[n++] = (uint32_t)v;
		i = j;
		if (i == len)
			break;
		if (s[i] != '.' || i + 1 == len)
			return imap_parse_fail(p, "Invalid section");
		i++;
	}
	b->part = parts;
	b->part_count = n;
	if (i == len)
		return 0;
	if (b->kind != IMAP_FETCH_KIND_BODY)
		return imap_parse_fail(p, "Invalid BINARY section");
	for (j = 0; j < sizeof(texts) / sizeof(texts[0]); j++) {
		size_t tl = strlen(texts[j].name);

		if (len - i >= tl && strncasecmp(s + i, texts[j].name,
		    tl) == 0 && (i + tl == len || s[i + tl] == ' '))
			break;
	}
	if (j == sizeof(texts) / sizeof(texts[0]))
		return imap_parse_fail(p, "Invalid section");
	b->text = texts[j].text;
	i += strlen(texts[j].name);
	/* MIME only describes a part (RFC 9051 §6.4.5). */
	if (b->text == IMAP_SECTION_MIME && n == 0)
		return imap_parse_fail(p, "MIME needs a part number");
	if (b->text == IMAP_SECTION_HEADER_FIELDS ||
	    b->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		if (len - i < 2 || s[i] != ' ' || s[i + 1] != '(')
			return imap_parse_fail(p, "Invalid header field list");
		i += 2;
		if (fetch_header_list(p, s, len, &i, b) < 0)
			return -1;
	}
	if (i != len)
		return imap_parse_fail(p, "Invalid section");
	return 0;
}

/* The reply name: "BODY[1.HEADER.FIELDS (A B)]", "BINARY.SIZE[2]". */
static const char *
fetch_body_name(struct imap_parser *p, const struct imap_fetch_body *b)
{
	static const char *const texts[] = {
		[IMAP_SECTION_ALL] = "",
		[IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT",
		[IMAP_SECTION_MIME] = "MIME",
	};
	struct buf n;
	const char *name;
	size_t i;

	buf_init(&n, 0);
	buf_append_str(&n, b->kind == IMAP_FETCH_KIND_BODY ? "BODY[" :
	    b->kind == IMAP_FETCH_KIND_BINARY ? "BINARY[" : "BINARY.SIZE[");
	for (i = 0; i < b->part_count; i++)
		buf_printf(&n, i > 0 ? ".%u" : "%u", b->part[i]);
	if (b->text != IMAP_SECTION_ALL) {
		if (b->part_count > 0)
			buf_append_char(&n, '.');
		buf_append_str(&n, texts[b->text]);
	}
	if (b->field_count > 0) {
		buf_append_str(&n, " (");
		for (i = 0; i < b->field_count; i++) {
			if (i > 0)
				buf_append_char(&n, ' ');
			fetch_put_astring(&n, b->fields[i]);
		}
		buf_append_char(&n, ')');
	}
	buf_append_char(&n, ']');
	name = imap_parse_strdup(p, n.data, n.len);
	buf_free(&n);
	return name;
}

/* "<" number "." nz-number ">" (RFC 9051 §9 partial, 63-bit). */
static int
fetch_partial(struct imap_parser *p, const char *s, size_t len,
    struct imap_fetch_body *b)
{
	const char *dot;

	if (len < 5 || s[0] != '<' || s[len - 1] != '>' ||
	    (dot = memchr(s, '.', len)) == NULL)
		return imap_parse_fail(p, "Invalid partial range");
	if (imap_parse_u64(s + 1, (size_t)(dot - s) - 1, INT64_MAX,
	    &b->offset) < 0 ||
	    imap_parse_u64(dot + 1, (size_t)(s + len - 1 - dot) - 1,
	    INT64_MAX, &b->length) < 0 || b->length == 0)
		return imap_parse_fail(p, "Invalid partial range");
	b->partial = true;
	return 0;
}

/* One fetch-att atom. */
static int
fetch_att(struct imap_parser *p, const struct imap_arg *a,
    struct imap_cmd_fetch *f, struct imap_fetch_body *bodies)
{
	static const struct {
		const char		*name;
		enum imap_fetch_kind	 kind;
		bool			 peek;
	} kinds[] = {
		{ "BODY", IMAP_FETCH_KIND_BODY, false },
		{ "BODY.PEEK", IMAP_FETCH_KIND_BODY, true },
		{ "BINARY", IMAP_FETCH_KIND_BINARY, false },
		{ "BINARY.PEEK", IMAP_FETCH_KIND_BINARY, true },
		{ "BINARY.SIZE", IMAP_FETCH_KIND_BINARY_SIZE, true },
	};
	struct imap_fetch_body *b;
	const char *s = a->str, *br, *end;
	size_t i, nlen;
	bool quoted = false;

	if (a->type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Invalid FETCH attribute");
	br = memchr(s, '[', a->len);
	if (br == NULL) {
		for (i = 0; i < sizeof(fetch_simple) / sizeof(fetch_simple[0]);
		    i++) {
			if (strcasecmp(s, fetch_simple[i].name) == 0) {
				f->items |= fetch_simple[i].bit;
				if (fetch_simple[i].bit == IMAP_FETCH_RFC822 ||
				    fetch_simple[i].bit ==
				    IMAP_FETCH_RFC822_TEXT)
					f->sets_seen = true;
				return 0;
			}
		}
		return imap_parse_fail(p, "Unknown FETCH attribute");
	}
	nlen = (size_t)(br - s);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == nlen &&
		    strncasecmp(s, kinds[i].name, nlen) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		return imap_parse_fail(p, "Unknown FETCH attribute");
	/* The matching ']' outside quoted names. */
	for (end = br + 1; end < s + a->len; end++) {
		if (quoted && *end == '\\' && end + 1 < s + a->len)
			end++;
		else if (*end == '"')
			quoted = !quoted;
		else if (*end == ']' && !quoted)
			break;
	}
	if (end >= s + a->len)
		return imap_parse_fail(p, "Missing ']'");
	b = &bodies[f->body_count];
	memset(b, 0, sizeof(*b));
	b->kind = kinds[i].kind;
	b->peek = kinds[i].peek;
	if (fetch_section(p, br + 1, (size_t)(end - br - 1), b) < 0)
		return -1;
	end++;
	if (end < s + a->len) {
		if (b->kind == IMAP_FETCH_KIND_BINARY_SIZE)
			return imap_parse_fail(p, "Invalid FETCH attribute");
		if (fetch_partial(p, end, (size_t)(s + a->len - end), b) < 0)
			return -1;
	}
	b->name = fetch_body_name(p, b);
	if (!b->peek)
		f->sets_seen = true;
	f->body_count++;
	return 0;
}

/* PREVIEW modifiers (RFC 8970 §3): "(" "LAZY" ")"; nothing else is
 * defined. */
static int
fetch_preview_mods(struct imap_parser *p, const struct imap_arg *m)
{
	size_t i;

	if (m->count == 0)
		return imap_parse_fail(p, "Invalid PREVIEW modifiers");
	for (i = 0; i < m->count; i++)
		if (!imap_arg_atom_is(&m->list[i], "LAZY"))
			return imap_parse_fail(p, "Unknown PREVIEW modifier");
	return 0;
}

int
imap_parse_cmd_fetch(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_fetch *f = &cmd->u.fetch;
	struct imap_fetch_body *bodies;
	const struct imap_arg *items;
	size_t i;

	if (count < 2 || count > 3)
		return imap_parse_fail(p, "Expected messages and items");
	if (imap_arg_seqset(p, &args[0], 0, &f->set) < 0)
		return -1;
	items = &args[1];
	if (items->type == IMAP_ARG_LIST) {
		if (items->count == 0)
			return imap_parse_fail(p, "Empty FETCH item list");
		bodies = imap_parse_alloc_array(p, items->count,
		    sizeof(*bodies));
		for (i = 0; i < items->count; i++) {
			if (fetch_att(p, &items->list[i], f, bodies) < 0)
				return -1;
			/* RFC 8970 §3: PREVIEW (LAZY): the server may answer
			 * NIL rather than compute it; we always compute. */
			if (imap_arg_atom_is(&items->list[i], "PREVIEW") &&
			    i + 1 < items->count &&
			    items->list[i + 1].type == IMAP_ARG_LIST) {
				if (fetch_preview_mods(p,
				    &items->list[++i]) < 0)
					return -1;
			}
		}
	} else if (imap_arg_atom_is(items, "ALL")) {
		f->items = FETCH_ALL;
		bodies = NULL;
	} else if (imap_arg_atom_is(items, "FAST")) {
		f->items = FETCH_FAST;
		bodies = NULL;
	} else if (imap_arg_atom_is(items, "FULL")) {
		f->items = FETCH_FULL;
		bodies = NULL;
	} else {
		bodies = imap_parse_alloc(p, sizeof(*bodies));
		if (fetch_att(p, items, f, bodies) < 0)
			return -1;
	}
	f->bodies = bodies;
	/* RFC 9051 §6.4.9: UID FETCH always answers with the UID. */
	if (cmd->uid)
		f->items |= IMAP_FETCH_UID;
	if (count == 3) {
		const struct imap_arg *m = &args[2];

		if (m->type != IMAP_ARG_LIST || m->count == 0)
			return imap_parse_fail(p, "Invalid FETCH modifiers");
		for (i = 0; i < m->count; i++) {
			if (imap_arg_atom_is(&m->list[i], "CHANGEDSINCE") &&
			    !f->has_changedsince && i + 1 < m->count) {
				if (imap_arg_number(p, &m->list[++i], 1,
				    INT64_MAX, &f->changedsince) < 0)
					return -1;
				f->has_changedsince = true;
			} else if (imap_arg_atom_is(&m->list[i], "VANISHED") &&
			    !f->vanished)
				f->vanished = true;
			else
				return imap_parse_fail(p,
				    "Unknown FETCH modifier");
		}
		/* RFC 7162 §3.2.6 */
		if (f->vanished && !cmd->uid)
			return imap_parse_fail(p,
			    "VANISHED is only allowed with UID FETCH");
		if (f->vanished && !f->has_changedsince)
			return imap_parse_fail(p,
			    "VANISHED needs CHANGEDSINCE");
	}
	return 0;
}

/* STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags. */
int
imap_parse_cmd_store(struct imap_parser *p, struct imap_command *cmd,
    const struct imap_arg *args, size_t count)
{
	struct imap_cmd_store *st = &cmd->u.store;
	const char *att;
	size_t i = 1;

	if (count < 3)
		return imap_parse_fail(p, "Expected messages, item and flags");
	if (imap_arg_seqset(p, &args[0], 0, &st->set) < 0)
		return -1;
	if (args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &args[1];
		size_t j;

		if (m->count == 0)
			return imap_parse_fail(p, "Invalid STORE modifiers");
		for (j = 0; j < m->count; j++) {
			if (!imap_arg_atom_is(&m->list[j], "UNCHANGEDSINCE") ||
			    st->has_unchangedsince || j + 1 >= m->count)
				return imap_parse_fail(p,
				    "Unknown STORE modifier");
			if (imap_arg_number(p, &m->list[++j], 0, INT64_MAX,
			    &st->unchangedsince) < 0)
				return -1;
			st->has_unchangedsince = true;
		}
		i++;
	}
	if (i + 1 >= count || args[i].type != IMAP_ARG_ATOM)
		return imap_parse_fail(p, "Expected item and flags");
	att = args[i].str;
	if (*att == '+' || *att == '-') {
		st->mode = *att == '+' ? 1 : -1;
		att++;
	}
	if (strcasecmp(att, "FLAGS.SILENT") == 0)
		st->silent = true;
	else if (strcasecmp(att, "FLAGS") != 0)
		return imap_parse_fail(p, "Invalid STORE item");
	i++;
	/* A flag list, or bare flags (RFC 9051 §9 store-att-flags). */
	if (i + 1 == count && args[i].type == IMAP_ARG_LIST)
		return imap_parse_flags(p, args[i].list, args[i].count,
		    &st->flags);
	return imap_parse_flags(p, &args[i], count - i, &st->flags);
}
