/*
 * imap_parse: the tokenizer half of the IMAP parser (see imap_parse.h).
 * A byte-driven state machine reads one command at a time into a text
 * buffer and a flat token array, then builds the argument tree and hands
 * it to the command parsers of imap_parse_cmd.c and friends.
 *
 * Every byte passes through one switch, so a command split anywhere
 * gives the same events as the command in one piece.  What this file
 * does not do: know the grammar of any command beyond where APPEND
 * messages start and where FETCH allows "[...]".
 *
 * Resynchronization (RFC 7888 §4): while reading a command line, a small
 * tracker remembers whether the line so far ends in "{n}" or "{n+}".
 * When a line goes bad, the rest of it is skipped; if it ended in a
 * non-synchronizing literal those n bytes are skipped too, and the line
 * after them, so a bad command's literal data is never read as
 * commands.  A synchronizing literal ends the command: the client waits
 * for a "+" that never comes and gets the tagged BAD instead.
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_parse.h"
#include "imap_parse_private.h"
#include "limits_pst.h"
#include "str.h"
#include "xmalloc.h"

/* Largest literal size we can count (RFC 9051 number64). */
#define IMAP_LITERAL_SIZE_MAX	INT64_MAX
/* LITERAL- (RFC 7888 §5): the largest non-synchronizing literal. */
#define IMAP_LITERAL_MINUS_MAX	4096
/* Buffers bigger than this are given back between commands, so an idle
 * connection holds little memory. */
#define IMAP_KEEP_TEXT		4096
#define IMAP_KEEP_TOKS		256
#define IMAP_ARENA_CHUNK	4096

/* Skip tracker states: "{", digits, "+", "}", "}" after "+", then CR. */
enum {
	SK_NONE = 0, SK_OPEN, SK_DIGITS, SK_PLUS, SK_SYNC, SK_NONSYNC,
	SK_SYNC_CR, SK_NONSYNC_CR
};

/* ---- limits, life cycle ---- */

void
imap_parser_limits_default(struct imap_parser_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_line = MAX_IMAP_LINE;
	lim->max_literal = MAX_IMAP_LITERAL;
	lim->max_depth = MAX_IMAP_LIST_DEPTH;
	lim->max_args = MAX_IMAP_ARGS;
}

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	struct imap_parser_limits def;

	imap_parser_limits_default(&def);
	if (lim != NULL) {
		p->lim = *lim;
		if (p->lim.max_line == 0)
			p->lim.max_line = def.max_line;
		if (p->lim.max_literal == 0)
			p->lim.max_literal = def.max_literal;
		if (p->lim.max_depth == 0)
			p->lim.max_depth = def.max_depth;
		if (p->lim.max_args == 0)
			p->lim.max_args = def.max_args;
	} else
		p->lim = def;
	/* Token offsets and counts are 32-bit in places. */
	if (p->lim.max_args > UINT32_MAX - 1)
		p->lim.max_args = UINT32_MAX - 1;
	buf_init(&p->text, 0);
	p->open = xreallocarray(NULL, p->lim.max_depth, sizeof(*p->open));
	p->state = IMAP_LEX_LINE_START;
	p->pre_needed = 2;
	p->msg_first = 1;
	return p;
}

static void
arena_reset(struct imap_parser *p)
{
	struct imap_arena_chunk *c, *next;

	/* Newest chunk first; keep the oldest when it is a small one, for
	 * the next command. */
	for (c = p->arena; c != NULL; c = next) {
		next = c->next;
		if (next == NULL && c->size == IMAP_ARENA_CHUNK) {
			c->used = 0;
			p->arena = c;
			return;
		}
		free(c);
	}
	p->arena = NULL;
}

/* Drop everything of the current command; the lexer state stays. */
static void
command_reset(struct imap_parser *p)
{
	if (p->secret && p->text.data != NULL)
		explicit_bzero(p->text.data, p->text.len);
	if (p->text.cap > IMAP_KEEP_TEXT)
		buf_free(&p->text);
	else
		buf_reset(&p->text);
	if (p->toks_cap > IMAP_KEEP_TOKS) {
		free(p->toks);
		p->toks = NULL;
		p->toks_cap = 0;
	}
	p->ntoks = 0;
	p->ntop = 0;
	p->depth = 0;
	p->line_bytes = 0;
	p->literal_bytes = 0;
	p->secret = false;
	p->pre = 0;
	p->pre_needed = 2;
	p->tag_off = 0;
	p->def = NULL;
	p->uid = false;
	p->msg_first = 1;
	p->msg_index = 0;
	p->append_mailbox = NULL;
	memset(&p->append, 0, sizeof(p->append));
	memset(&p->cmd, 0, sizeof(p->cmd));
	p->line = NULL;
	p->line_len = 0;
	arena_reset(p);
	p->stale = false;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	p->stale = false;
	command_reset(p);
	arena_reset(p);
	free(p->arena);
	buf_free(&p->text);
	free(p->toks);
	free(p->open);
	free(p);
	*pp = NULL;
}

void
imap_parser_set_utf8(struct imap_parser *p, bool on)
{
	p->utf8 = on;
}

/* ---- arena ---- */

void *
imap_parse_alloc(struct imap_parser *p, size_t size)
{
	struct imap_arena_chunk *c = p->arena;
	size_t need, csize;
	void *mem;

	/* Round up to the strictest alignment. */
	need = (size + sizeof(max_align_t) - 1) /
	    sizeof(max_align_t) * sizeof(max_align_t);	/* UNSAFE */
	if (need < size)
		abort();
	if (c == NULL || c->size - c->used < need) {
		csize = need > IMAP_ARENA_CHUNK ? need : IMAP_ARENA_CHUNK;
		if (csize > SIZE_MAX - sizeof(*c))
			abort();
		c = xmalloc(sizeof(*c) + csize);
		c->size = csize;
		c->used = 0;
		c->next = p->arena;
		p->arena = c;
	}
	mem = (char *)c->data + c->used;
	c->used += need;
	memset(mem, 0, size);
	return mem;
}

void *
imap_parse_alloc_array(struct imap_parser *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		abort();
	return imap_parse_alloc(p, n * size);	/* UNSAFE: checked above */
}

char *
imap_parse_strdup(struct imap_parser *p, const char *s, size_t len)
{
	char *d;

	if (len == SIZE_MAX)
		abort();
	d = imap_parse_alloc(p, len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* ---- errors ---- */

static void
set_error(struct imap_parser *p, bool no, const char *code, const char *text)
{
	memset(&p->err, 0, sizeof(p->err));
	p->err.tag = p->pre >= 1 && p->text.data != NULL ?
	    p->text.data + p->tag_off : NULL;
	p->err.text = text;
	p->err.code = code;
	p->err.no = no;
}

int
imap_parse_fail(struct imap_parser *p, const char *text)
{
	set_error(p, false, NULL, text);
	return -1;
}

int
imap_parse_fail_code(struct imap_parser *p, bool no, const char *code,
    const char *text)
{
	set_error(p, no, code, text);
	return -1;
}

const struct imap_parse_error *
imap_parser_error(const struct imap_parser *p)
{
	return &p->err;
}

/* ---- the literal tracker for resynchronization ---- */

/* Add a decimal digit to a literal size; false on overflow. */
static bool
size_add_digit(uint64_t *v, unsigned char c)
{
	uint64_t d = (uint64_t)(c - '0');

	if (*v > (IMAP_LITERAL_SIZE_MAX - d) / 10)
		return false;
	*v = *v * 10 + d;
	return true;
}

static void
sk_track(struct imap_parser *p, unsigned char c)
{
	switch (c) {
	case '{':
		p->sk_state = SK_OPEN;
		p->sk_size = 0;
		p->sk_overflow = false;
		return;
	case '+':
		p->sk_state = p->sk_state == SK_DIGITS ? SK_PLUS : SK_NONE;
		return;
	case '}':
		if (p->sk_state == SK_DIGITS)
			p->sk_state = SK_SYNC;
		else if (p->sk_state == SK_PLUS)
			p->sk_state = SK_NONSYNC;
		else
			p->sk_state = SK_NONE;
		return;
	case '\r':
		if (p->sk_state == SK_SYNC)
			p->sk_state = SK_SYNC_CR;
		else if (p->sk_state == SK_NONSYNC)
			p->sk_state = SK_NONSYNC_CR;
		else
			p->sk_state = SK_NONE;
		return;
	default:
		if (c >= '0' && c <= '9' &&
		    (p->sk_state == SK_OPEN || p->sk_state == SK_DIGITS)) {
			if (!size_add_digit(&p->sk_size, c))
				p->sk_overflow = true;
			p->sk_state = SK_DIGITS;
		} else
			p->sk_state = SK_NONE;
	}
}

/*
 * A line being skipped ended (its LF consumed).  A "{n+}" before it
 * means n literal bytes and another line still belong to the command;
 * "{n}" or nothing ends the command.  Returns false when n cannot be
 * counted: the connection cannot be resynchronized.
 */
static bool
skip_line_end(struct imap_parser *p)
{
	unsigned int st = p->sk_state;

	p->sk_state = SK_NONE;
	if (st == SK_NONSYNC || st == SK_NONSYNC_CR) {
		if (p->sk_overflow) {
			p->state = IMAP_LEX_DEAD;
			return false;
		}
		p->lit_remaining = p->sk_size;
		p->state = p->sk_size > 0 ? IMAP_LEX_SKIP_LIT : IMAP_LEX_SKIP;
		return true;
	}
	p->state = IMAP_LEX_LINE_START;
	return true;
}

/*
 * The command is bad and its error is recorded: start skipping.  c is
 * the byte that showed it, consumed here: a LF ends the line, anything
 * else has been seen by the tracker already and the rest of the line is
 * skipped.
 */
static enum imap_parse_result
lex_abort(struct imap_parser *p, unsigned char c)
{
	p->stale = true;
	if (c == '\n') {
		if (!skip_line_end(p)) {
			/* RFC 7888 §5: a BYE for a literal SHOULD say
			 * TOOBIG. */
			p->err.fatal = true;
			p->err.code = "TOOBIG";
			p->err.text = "Literal size too large";
		}
	} else
		p->state = IMAP_LEX_SKIP;
	return IMAP_PARSE_ERROR;
}

static enum imap_parse_result
lex_fail_code(struct imap_parser *p, unsigned char c, const char *code,
    const char *text)
{
	set_error(p, false, code, text);
	return lex_abort(p, c);
}

static enum imap_parse_result
lex_fail(struct imap_parser *p, unsigned char c, const char *text)
{
	return lex_fail_code(p, c, NULL, text);
}

/* ---- tokens ---- */

static int
tok_add(struct imap_parser *p, enum imap_arg_type type, size_t off,
    size_t len, uint64_t size)
{
	struct imap_tok *t;

	if (p->ntoks >= p->lim.max_args)
		return imap_parse_fail(p, "Too many arguments");
	if (p->ntoks == p->toks_cap) {
		size_t ncap = p->toks_cap == 0 ? 32 : p->toks_cap * 2;

		p->toks = xreallocarray(p->toks, ncap, sizeof(*p->toks));
		p->toks_cap = ncap;
	}
	t = &p->toks[p->ntoks];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->off = off;
	t->len = len;
	t->size = size;
	t->parent = p->depth > 0 ? p->open[p->depth - 1] + 1 : 0;
	if (t->parent != 0)
		p->toks[t->parent - 1].len++;
	else
		p->ntop++;
	p->ntoks++;
	return 0;
}

static bool
lex_is_atom_char(unsigned char c)
{
	/* Lenient on purpose: '%', '*', ']', '\\' and '[' are kept in
	 * atoms; each command checks what its arguments allow. */
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '"';
}

/* The tag, the command name or the UID subcommand just ended. */
static int
pre_token(struct imap_parser *p, const char *s, size_t len)
{
	size_t i;

	switch (p->pre) {
	case 0:
		/* tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 §9) */
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '+' || c == '%' || c == '*' || c == '\\')
				return imap_parse_fail(p, "Invalid tag");
		}
		p->tag_off = p->tok_start;
		p->pre = 1;
		return 0;
	case 1:
		p->pre = 2;
		p->def = imap_cmd_lookup(s, len);
		if (p->def == NULL)
			return imap_parse_fail(p, "Unknown command");
		if (p->def->kind == IMAP_KIND_UID) {
			p->uid = true;
			p->pre_needed = 3;
		}
		if (p->def->type == IMAP_CMD_LOGIN ||
		    p->def->type == IMAP_CMD_AUTHENTICATE)
			p->secret = true;
		return 0;
	default:
		p->pre = 3;
		p->def = imap_cmd_lookup_uid(s, len);
		if (p->def == NULL)
			return imap_parse_fail(p, "Unknown command");
		return 0;
	}
}

/* An atom ended: a tag/name, or an argument. */
static int
atom_end(struct imap_parser *p)
{
	size_t len = p->text.len - p->tok_start;

	if (buf_append_char(&p->text, '\0') < 0)
		abort();
	if (p->pre < p->pre_needed)
		return pre_token(p, p->text.data + p->tok_start, len);
	return tok_add(p, IMAP_ARG_ATOM, p->tok_start, len, 0);
}

static void
text_add(struct imap_parser *p, unsigned char c)
{
	if (buf_append_char(&p->text, (char)c) < 0)
		abort();	/* the buffer has no maximum */
}

static enum imap_parse_result
list_open(struct imap_parser *p, unsigned char c)
{
	if (p->depth >= p->lim.max_depth)
		return lex_fail(p, c, "Too deep nesting of lists");
	if (tok_add(p, IMAP_ARG_LIST, 0, 0, 0) < 0)
		return lex_abort(p, c);
	p->open[p->depth++] = (uint32_t)(p->ntoks - 1);
	p->state = IMAP_LEX_TOKEN_START;
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result
list_close(struct imap_parser *p, unsigned char c)
{
	if (p->depth == 0)
		return lex_fail(p, c, "Unexpected ')'");
	p->depth--;
	p->state = IMAP_LEX_AFTER_TOKEN;
	return IMAP_PARSE_MORE;
}

/* ---- building the argument tree ---- */

/*
 * The tokens [from, to) as an argument array; tokens whose list starts
 * before from are top level.  Every list in the range must be complete.
 */
static struct imap_arg *
build_args(struct imap_parser *p, size_t from, size_t to, size_t *count_r)
{
	struct imap_arg *args;
	size_t *cursor;
	size_t n = to - from, k, ntop = 0, next, top = 0;

	for (k = from; k < to; k++)
		if (p->toks[k].parent == 0 || p->toks[k].parent - 1 < from)
			ntop++;
	args = imap_parse_alloc_array(p, n > 0 ? n : 1, sizeof(*args));
	cursor = imap_parse_alloc_array(p, n > 0 ? n : 1, sizeof(*cursor));
	next = ntop;
	for (k = from; k < to; k++) {
		const struct imap_tok *t = &p->toks[k];
		struct imap_arg *a;

		if (t->parent == 0 || t->parent - 1 < from)
			a = &args[top++];
		else
			a = &args[cursor[t->parent - 1 - from]++];
		a->type = t->type;
		a->flags = t->flags;
		a->size = t->size;
		switch (t->type) {
		case IMAP_ARG_LIST:
			assert(next + t->len <= n);
			a->list = &args[next];
			a->count = t->len;
			cursor[k - from] = next;
			next += t->len;
			break;
		case IMAP_ARG_MESSAGE:
			a->str = NULL;
			a->len = 0;
			break;
		default:
			a->str = p->text.data + t->off;
			a->len = t->len;
			break;
		}
	}
	*count_r = ntop;
	return args;
}

/* ---- APPEND messages ---- */

/*
 * Whether the literal being announced is an APPEND message: a top-level
 * literal after the mailbox, or the first member of the list after a
 * top-level "UTF8" (RFC 6855 §4).
 */
static bool
append_is_message(const struct imap_parser *p, bool *utf8_r)
{
	const struct imap_tok *l, *u;
	uint32_t li;

	*utf8_r = false;
	if (p->def == NULL || p->def->kind != IMAP_KIND_APPEND)
		return false;
	if (p->depth == 0)
		return p->ntop >= 1;
	if (p->depth != 1)
		return false;
	li = p->open[0];
	l = &p->toks[li];
	if (l->len != 0 || li < 2 || li - 1 < p->msg_first)
		return false;
	u = &p->toks[li - 1];
	if (u->parent != 0 || u->type != IMAP_ARG_ATOM || u->len != 4 ||
	    strcasecmp(p->text.data + u->off, "UTF8") != 0)
		return false;
	*utf8_r = true;
	return true;
}

/* Describe the announced message in p->append; -1 with the BAD set. */
static int
append_describe(struct imap_parser *p, bool utf8)
{
	const struct imap_arg *args;
	size_t count, end;

	if (p->msg_index == 0) {
		/* The mailbox; a list there would not be complete in the
		 * range [0, 1). */
		if (p->toks[0].type == IMAP_ARG_LIST)
			return imap_parse_fail(p, "Expected a string");
		args = build_args(p, 0, 1, &count);
		if (imap_arg_mailbox(p, &args[0], false,
		    &p->append_mailbox) < 0)
			return -1;
	}
	/* With the UTF8 form the "UTF8" atom and its open list are not
	 * options. */
	end = utf8 ? p->open[0] - 1 : p->ntoks;
	memset(&p->append, 0, sizeof(p->append));
	args = build_args(p, p->msg_first, end, &count);
	if (imap_parse_append_opts(p, args, count, &p->append) < 0)
		return -1;
	p->append.tag = p->text.data + p->tag_off;
	p->append.mailbox = p->append_mailbox;
	p->append.size = p->lit_size;
	p->append.binary = p->lit_binary;
	p->append.sync = !p->lit_plus;
	p->append.utf8 = utf8;
	p->append.index = p->msg_index;
	return 0;
}

/* ---- end of a command ---- */

static enum imap_parse_result
command_finish(struct imap_parser *p)
{
	const struct imap_arg *args;
	size_t count;

	args = build_args(p, 0, p->ntoks, &count);
	memset(&p->cmd, 0, sizeof(p->cmd));
	p->cmd.tag = p->text.data + p->tag_off;
	p->cmd.name = p->def->name;
	p->cmd.type = p->def->type;
	p->cmd.uid = p->uid;
	if (p->def->parse(p, &p->cmd, args, count) < 0)
		return IMAP_PARSE_ERROR;
	return IMAP_PARSE_COMMAND;
}

/* The LF of a command line, outside any literal. */
static enum imap_parse_result
lex_line_end(struct imap_parser *p, unsigned char c)
{
	enum imap_parse_result r;

	if (p->pre < p->pre_needed)
		return lex_fail(p, c, p->pre == 1 ? "Missing command" :
		    "Missing command after UID");
	if (p->depth > 0)
		return lex_fail(p, c, "Missing ')'");
	r = command_finish(p);
	p->state = IMAP_LEX_LINE_START;
	p->sk_state = SK_NONE;
	p->stale = true;
	return r;
}

/* ---- literals ---- */

/* "{n}" / "{n+}" / "~{n}" and its LF were read. */
static enum imap_parse_result
lex_literal(struct imap_parser *p, unsigned char c)
{
	bool utf8;

	if (p->lit_overflow)
		return lex_fail_code(p, c, "TOOBIG", "Literal too big");
	if (p->lim.literal_minus && p->lit_plus &&
	    p->lit_size > IMAP_LITERAL_MINUS_MAX)
		return lex_fail_code(p, c, "TOOBIG",
		    "Non-synchronizing literal too big");
	if (append_is_message(p, &utf8)) {
		if (append_describe(p, utf8) < 0 ||
		    tok_add(p, IMAP_ARG_MESSAGE, 0, 0, p->lit_size) < 0)
			return lex_abort(p, c);
		if (p->lit_binary)
			p->toks[p->ntoks - 1].flags |= IMAP_ARG_F_BINARY;
		if (p->lit_plus)
			p->toks[p->ntoks - 1].flags |= IMAP_ARG_F_NONSYNC;
		p->lit_remaining = p->lit_size;
		p->sk_state = SK_NONE;
		p->state = IMAP_LEX_APPEND_WAIT;
		return IMAP_PARSE_APPEND;
	}
	if (p->lit_binary)
		return lex_fail(p, c,
		    "literal8 is only allowed for APPEND messages");
	if (p->lit_size > p->lim.max_literal - p->literal_bytes)
		return lex_fail_code(p, c, "TOOBIG", "Literal too big");
	if (p->ntoks >= p->lim.max_args)
		return lex_fail(p, c, "Too many arguments");
	p->literal_bytes += (size_t)p->lit_size;
	p->tok_start = p->text.len;
	p->lit_remaining = p->lit_size;
	p->sk_state = SK_NONE;
	p->state = IMAP_LEX_LIT_DATA;
	return p->lit_plus ? IMAP_PARSE_MORE : IMAP_PARSE_CONTINUE;
}

static void
literal_start(struct imap_parser *p, bool binary)
{
	p->lit_size = 0;
	p->lit_digits = 0;
	p->lit_overflow = false;
	p->lit_plus = false;
	p->lit_binary = binary;
	p->state = IMAP_LEX_LIT_SIZE;
}

/* ---- the byte machine ---- */

static enum imap_parse_result
lex_after_token(struct imap_parser *p, unsigned char c)
{
	switch (c) {
	case ' ':
		p->state = IMAP_LEX_TOKEN_START;
		return IMAP_PARSE_MORE;
	case ')':
		return list_close(p, c);
	case '\r':
		p->state = IMAP_LEX_CR;
		return IMAP_PARSE_MORE;
	case '\n':
		return lex_line_end(p, c);
	default:
		return lex_fail(p, c, "Missing space between arguments");
	}
}

static enum imap_parse_result
lex_atom(struct imap_parser *p, unsigned char c)
{
	if (lex_is_atom_char(c)) {
		text_add(p, c);
		/* FETCH: "BODY[HEADER.FIELDS (A B)]" is one atom. */
		if (c == '[' && p->def != NULL &&
		    p->def->kind == IMAP_KIND_FETCH &&
		    p->pre >= p->pre_needed)
			p->state = IMAP_LEX_BRACKET;
		return IMAP_PARSE_MORE;
	}
	switch (c) {
	case ' ':
	case ')':
	case '\r':
	case '\n':
		if (atom_end(p) < 0)
			return lex_abort(p, c);
		p->state = IMAP_LEX_AFTER_TOKEN;
		return lex_after_token(p, c);
	case '(':
		return lex_fail(p, c, "Missing space before '('");
	default:
		if (c >= 0x80)
			return lex_fail(p, c,
			    "8-bit characters are not allowed in atoms");
		return lex_fail(p, c, "Invalid characters in atom");
	}
}

static enum imap_parse_result
lex_token_start(struct imap_parser *p, unsigned char c)
{
	if (p->pre < p->pre_needed) {
		/* Tag, command name and UID subcommand: atoms only. */
		if (c == ' ' && p->pre > 0)
			return IMAP_PARSE_MORE;
		if (c == '\n' || c == '\r')
			return lex_after_token(p, c);
		if (!lex_is_atom_char(c))
			return lex_fail(p, c, p->pre == 0 ?
			    "Invalid tag" : "Invalid command name");
		p->tok_start = p->text.len;
		p->state = IMAP_LEX_ATOM;
		return lex_atom(p, c);
	}
	switch (c) {
	case ' ':
		return IMAP_PARSE_MORE;
	case '\r':
	case '\n':
	case ')':
		return lex_after_token(p, c);
	case '(':
		return list_open(p, c);
	case '"':
		p->tok_start = p->text.len;
		p->tok_8bit = false;
		p->state = IMAP_LEX_QUOTED;
		return IMAP_PARSE_MORE;
	case '{':
		literal_start(p, false);
		return IMAP_PARSE_MORE;
	case '~':
		p->tok_start = p->text.len;
		text_add(p, c);
		p->state = IMAP_LEX_TILDE;
		return IMAP_PARSE_MORE;
	default:
		if (!lex_is_atom_char(c)) {
			if (c >= 0x80)
				return lex_fail(p, c,
				    "8-bit characters are not allowed in "
				    "atoms");
			return lex_fail(p, c, "Invalid characters");
		}
		p->tok_start = p->text.len;
		p->state = IMAP_LEX_ATOM;
		return lex_atom(p, c);
	}
}

static enum imap_parse_result
lex_quoted(struct imap_parser *p, unsigned char c)
{
	size_t len;

	switch (c) {
	case '"':
		len = p->text.len - p->tok_start;
		text_add(p, '\0');
		if (p->tok_8bit &&
		    !str_utf8_valid(p->text.data + p->tok_start, len))
			return lex_fail(p, c,
			    "Invalid UTF-8 in quoted string");
		if (tok_add(p, IMAP_ARG_QUOTED, p->tok_start, len, 0) < 0)
			return lex_abort(p, c);
		p->state = IMAP_LEX_AFTER_TOKEN;
		return IMAP_PARSE_MORE;
	case '\\':
		p->state = IMAP_LEX_QUOTED_ESC;
		return IMAP_PARSE_MORE;
	case '\r':
	case '\n':
		return lex_fail(p, c, "Missing '\"'");
	case '\0':
		return lex_fail(p, c, "NUL in quoted string");
	default:
		if (c >= 0x80)
			p->tok_8bit = true;
		text_add(p, c);
		return IMAP_PARSE_MORE;
	}
}

static enum imap_parse_result
lex_bracket(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case IMAP_LEX_BRACKET:
		if (c == ']')
			p->state = IMAP_LEX_ATOM;
		else if (c == '"')
			p->state = IMAP_LEX_BRACKET_QUOTED;
		else if (c == '{')
			return lex_fail(p, c,
			    "Literals are not supported inside sections");
		else if (c < 0x20 || c > 0x7e)
			return lex_fail(p, c, c == '\r' || c == '\n' ?
			    "Missing ']'" : "Invalid characters in section");
		break;
	case IMAP_LEX_BRACKET_QUOTED:
		if (c == '"')
			p->state = IMAP_LEX_BRACKET;
		else if (c == '\\')
			p->state = IMAP_LEX_BRACKET_QUOTED_ESC;
		else if (c < 0x20 || c > 0x7e)
			return lex_fail(p, c,
			    "Invalid characters in section");
		break;
	default:
		if (c != '"' && c != '\\')
			return lex_fail(p, c,
			    "Invalid escape in quoted string");
		p->state = IMAP_LEX_BRACKET_QUOTED;
		break;
	}
	text_add(p, c);
	return IMAP_PARSE_MORE;
}

/* One byte of a command line (not literal data). */
static enum imap_parse_result
lex_byte(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case IMAP_LEX_LINE_START:
		if (c == '\n')
			return IMAP_PARSE_MORE;		/* empty line */
		if (c == '\r') {
			p->state = IMAP_LEX_LINE_CR;
			return IMAP_PARSE_MORE;
		}
		command_reset(p);
		p->state = IMAP_LEX_TOKEN_START;
		break;
	case IMAP_LEX_LINE_CR:
		if (c == '\n') {
			p->state = IMAP_LEX_LINE_START;
			return IMAP_PARSE_MORE;
		}
		command_reset(p);
		sk_track(p, c);
		return lex_fail(p, c, "CR without LF");
	case IMAP_LEX_SKIP:
		if (c == '\n') {
			if (!skip_line_end(p)) {
				set_error(p, false, "TOOBIG",
				    "Literal size too large");
				p->err.tag = NULL;
				p->err.fatal = true;
				return IMAP_PARSE_ERROR;
			}
			return IMAP_PARSE_MORE;
		}
		sk_track(p, c);
		return IMAP_PARSE_MORE;
	case IMAP_LEX_RAW:
		if (c == '\n') {
			if (p->text.len > 0 &&
			    p->text.data[p->text.len - 1] == '\r')
				p->text.len--;
			p->line_len = p->text.len;
			text_add(p, '\0');
			p->line = p->text.data;
			p->state = IMAP_LEX_LINE_START;
			p->stale = true;
			return IMAP_PARSE_LINE;
		}
		if (c == '\0' || ++p->line_bytes > p->lim.max_line) {
			set_error(p, false, NULL, c == '\0' ?
			    "NUL in line" : "Too long line");
			p->state = IMAP_LEX_RAW_SKIP;
			p->stale = true;
			return IMAP_PARSE_ERROR;
		}
		text_add(p, c);
		return IMAP_PARSE_MORE;
	case IMAP_LEX_RAW_SKIP:
		if (c == '\n')
			p->state = IMAP_LEX_LINE_START;
		return IMAP_PARSE_MORE;
	default:
		break;
	}

	/* A command line byte: watched for "{n+}" (every byte of a line
	 * exactly once, also the one an error stops at), and bounded. */
	if (c != '\n')
		sk_track(p, c);
	if (++p->line_bytes > p->lim.max_line)
		return lex_fail(p, c, "Too long command line");

	switch (p->state) {
	case IMAP_LEX_TOKEN_START:
		return lex_token_start(p, c);
	case IMAP_LEX_AFTER_TOKEN:
		return lex_after_token(p, c);
	case IMAP_LEX_ATOM:
		return lex_atom(p, c);
	case IMAP_LEX_TILDE:
		if (c == '{') {
			p->text.len--;		/* the '~' */
			literal_start(p, true);
			return IMAP_PARSE_MORE;
		}
		p->state = IMAP_LEX_ATOM;
		return lex_atom(p, c);
	case IMAP_LEX_BRACKET:
	case IMAP_LEX_BRACKET_QUOTED:
	case IMAP_LEX_BRACKET_QUOTED_ESC:
		return lex_bracket(p, c);
	case IMAP_LEX_QUOTED:
		return lex_quoted(p, c);
	case IMAP_LEX_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return lex_fail(p, c,
			    "Invalid escape in quoted string");
		text_add(p, c);
		p->state = IMAP_LEX_QUOTED;
		return IMAP_PARSE_MORE;
	case IMAP_LEX_LIT_SIZE:
		if (c >= '0' && c <= '9') {
			if (!size_add_digit(&p->lit_size, c))
				p->lit_overflow = true;
			p->lit_digits++;
			return IMAP_PARSE_MORE;
		}
		if ((c == '+' || c == '}') && p->lit_digits > 0) {
			p->lit_plus = c == '+';
			p->state = c == '+' ? IMAP_LEX_LIT_CLOSE :
			    IMAP_LEX_LIT_CR;
			return IMAP_PARSE_MORE;
		}
		return lex_fail(p, c, "Invalid literal size");
	case IMAP_LEX_LIT_CLOSE:
		if (c != '}')
			return lex_fail(p, c, "Invalid literal size");
		p->state = IMAP_LEX_LIT_CR;
		return IMAP_PARSE_MORE;
	case IMAP_LEX_LIT_CR:
		if (c == '\r') {
			p->state = IMAP_LEX_LIT_LF;
			return IMAP_PARSE_MORE;
		}
		if (c == '\n')
			return lex_literal(p, c);
		return lex_fail(p, c, "Missing line end after literal");
	case IMAP_LEX_LIT_LF:
		if (c == '\n')
			return lex_literal(p, c);
		return lex_fail(p, c, "CR without LF");
	case IMAP_LEX_CR:
		if (c == '\n')
			return lex_line_end(p, c);
		return lex_fail(p, c, "CR without LF");
	default:
		abort();	/* handled by imap_parser_feed() */
	}
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
    size_t *consumed_r)
{
	const unsigned char *in = data;
	enum imap_parse_result r;
	size_t i = 0, n;

	*consumed_r = 0;
	if (p->stale)
		command_reset(p);

	/* APPEND messages: only ever at the start of a call. */
	if (p->state == IMAP_LEX_APPEND_WAIT)
		p->state = p->lit_remaining > 0 ? IMAP_LEX_APPEND_DATA :
		    IMAP_LEX_APPEND_END;
	if (p->state == IMAP_LEX_APPEND_DATA) {
		n = len < p->lit_remaining ? len : (size_t)p->lit_remaining;
		if (n == 0)
			return IMAP_PARSE_MORE;
		if (memchr(in, '\0', n) != NULL)
			p->append.nul_seen = true;
		p->lit_remaining -= n;
		if (p->lit_remaining == 0)
			p->state = IMAP_LEX_APPEND_END;
		*consumed_r = n;
		return IMAP_PARSE_APPEND_DATA;
	}
	if (p->state == IMAP_LEX_APPEND_END) {
		if (p->append.nul_seen)
			p->toks[p->ntoks - 1].flags |= IMAP_ARG_F_NUL;
		p->msg_first = p->ntoks;
		p->msg_index++;
		p->state = IMAP_LEX_AFTER_TOKEN;
		return IMAP_PARSE_APPEND_END;
	}

	for (;;) {
		if (p->state == IMAP_LEX_LIT_DATA) {
			n = len - i < p->lit_remaining ? len - i :
			    (size_t)p->lit_remaining;
			if (n > 0) {
				const unsigned char *nul = memchr(in + i, '\0',
				    n);

				if (nul != NULL) {
					n = (size_t)(nul - (in + i)) + 1;
					p->lit_remaining -= n;
					*consumed_r = i + n;
					set_error(p, false, NULL,
					    "NUL in literal");
					p->stale = true;
					p->state = p->lit_remaining > 0 ?
					    IMAP_LEX_SKIP_LIT : IMAP_LEX_SKIP;
					return IMAP_PARSE_ERROR;
				}
				if (buf_append(&p->text, in + i, n) < 0)
					abort();
				i += n;
				p->lit_remaining -= n;
			}
			if (p->lit_remaining > 0)
				break;
			text_add(p, '\0');
			if (tok_add(p, IMAP_ARG_LITERAL, p->tok_start,
			    (size_t)p->lit_size, 0) < 0)
				abort();	/* counted when announced */
			p->state = IMAP_LEX_AFTER_TOKEN;
			continue;
		}
		if (p->state == IMAP_LEX_SKIP_LIT) {
			n = len - i < p->lit_remaining ? len - i :
			    (size_t)p->lit_remaining;
			i += n;
			p->lit_remaining -= n;
			if (p->lit_remaining > 0)
				break;
			p->state = IMAP_LEX_SKIP;
			continue;
		}
		if (p->state == IMAP_LEX_DEAD) {
			i = len;
			break;
		}
		if (i == len)
			break;
		r = lex_byte(p, in[i]);
		i++;
		if (r != IMAP_PARSE_MORE) {
			*consumed_r = i;
			return r;
		}
	}
	*consumed_r = i;
	return IMAP_PARSE_MORE;
}

/* ---- raw lines, APPEND refusal, accessors ---- */

void
imap_parser_expect_line(struct imap_parser *p)
{
	assert(p->state == IMAP_LEX_LINE_START);
	command_reset(p);
	p->state = IMAP_LEX_RAW;
	/* AUTHENTICATE responses carry credentials. */
	p->secret = true;
}

const char *
imap_parser_line(const struct imap_parser *p, size_t *len_r)
{
	*len_r = p->line_len;
	return p->line;
}

bool
imap_parser_line_is_done(const char *line, size_t len)
{
	return len == 4 && strncasecmp(line, "DONE", 4) == 0;
}

void
imap_parser_append_reject(struct imap_parser *p)
{
	switch (p->state) {
	case IMAP_LEX_APPEND_WAIT:
		if (p->append.sync) {
			/* The client waits for "+" and gets the NO. */
			p->state = IMAP_LEX_LINE_START;
			break;
		}
		/* FALLTHROUGH */
	case IMAP_LEX_APPEND_DATA:
		p->state = p->lit_remaining > 0 ? IMAP_LEX_SKIP_LIT :
		    IMAP_LEX_SKIP;
		break;
	case IMAP_LEX_APPEND_END:
		p->state = IMAP_LEX_SKIP;
		break;
	case IMAP_LEX_AFTER_TOKEN:
		/* Just after IMAP_PARSE_APPEND_END. */
		if (p->def != NULL && p->def->kind == IMAP_KIND_APPEND &&
		    p->msg_index > 0) {
			p->state = IMAP_LEX_SKIP;
			break;
		}
		abort();
	default:
		abort();	/* no APPEND message is being read */
	}
	p->sk_state = SK_NONE;
	p->stale = true;
}

const struct imap_command *
imap_parser_command(const struct imap_parser *p)
{
	return &p->cmd;
}

const struct imap_append_msg *
imap_parser_append(const struct imap_parser *p)
{
	return &p->append;
}
