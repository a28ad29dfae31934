/*
 * pop3_parse: byte-level parsers and encoders of the POP3 server (see
 * pop3_parse.h).  Everything here is pure and resumable, so the unit
 * tests and the fuzzer can feed it one byte at a time.  This module does
 * not reply, log or decide policy: it reports what the bytes say and
 * produces the bytes a response needs.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"
#include "pop3_parse.h"
#include "str.h"

/* ---- command lines ---- */

int
pop3_command_parse(char *line, size_t len, struct pop3_command *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->args = line + len;
	if (memchr(line, '\0', len) != NULL)
		return -1;
	/* RFC 2449 §3: a keyword, then arguments separated by one space
	 * (more white space is tolerated). */
	linebuf_split_command(line, len, cmd->keyword, sizeof(cmd->keyword),
	    &cmd->keyword_too_long, &cmd->args);
	return 0;
}

int
pop3_args_split(char *args, char **argv, int max)
{
	int n = 0;
	char *p = args;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (n >= max)
			return -1;
		argv[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

int
pop3_parse_count(const char *s, uint64_t *count_r)
{
	long long v;

	/* STYLE §7: one overflow-checked parser for client numbers. */
	if (str_to_ll(s, 0, INT64_MAX, &v) < 0)
		return -1;
	*count_r = (uint64_t)v;
	return 0;
}

int
pop3_parse_msgnum(const char *s, uint32_t *num_r)
{
	uint64_t v;

	if (pop3_parse_count(s, &v) < 0 || v == 0 || v > UINT32_MAX)
		return -1;
	*num_r = (uint32_t)v;
	return 0;
}

/* ---- multi-line responses ---- */

void
pop3_stuffer_init(struct pop3_stuffer *st, int64_t top_lines)
{
	memset(st, 0, sizeof(*st));
	st->bol = true;
	st->line_empty = true;
	if (top_lines >= 0) {
		st->limited = true;
		st->body_left = (uint64_t)top_lines;
	}
}

/*
 * End a line: CRLF on the wire.  RFC 1939 §7: TOP sends the header,
 * the empty line after it, then body_left body lines.  Returns true when
 * that is complete.
 */
static bool
pop3_stuffer_end_line(struct pop3_stuffer *st, struct buf *out)
{
	bool was_empty = st->line_empty;

	buf_append(out, "\r\n", 2);
	st->bol = true;
	st->line_empty = true;
	if (!st->in_body) {
		if (was_empty) {
			st->in_body = true;
			if (st->limited && st->body_left == 0)
				st->done = true;
		}
	} else if (st->limited) {
		if (st->body_left > 0)
			st->body_left--;
		if (st->body_left == 0)
			st->done = true;
	}
	return st->done;
}

/* Line content; RFC 1939 §3: a line starting with "." gets one more. */
static void
pop3_stuffer_content(struct pop3_stuffer *st, const char *p, size_t n,
    struct buf *out)
{
	if (n == 0)
		return;
	if (st->bol && p[0] == '.')
		buf_append_char(out, '.');
	buf_append(out, p, n);
	st->bol = false;
	st->line_empty = false;
}

bool
pop3_stuff(struct pop3_stuffer *st, const char *in, size_t len,
    struct buf *out)
{
	size_t i = 0;

	if (st->done)
		return true;
	while (i < len) {
		size_t j;

		if (st->pending_cr) {
			st->pending_cr = false;
			if (in[i] == '\n') {
				i++;
				if (pop3_stuffer_end_line(st, out))
					return true;
				continue;
			}
			/* A CR without LF is content, sent as it is. */
			pop3_stuffer_content(st, "\r", 1, out);
		}
		if (in[i] == '\r') {
			st->pending_cr = true;
			i++;
			continue;
		}
		if (in[i] == '\n') {
			/* A bare LF ends a line too: CRLF on the wire. */
			i++;
			if (pop3_stuffer_end_line(st, out))
				return true;
			continue;
		}
		for (j = i; j < len && in[j] != '\r' && in[j] != '\n'; j++)
			;
		pop3_stuffer_content(st, in + i, j - i, out);
		i = j;
	}
	return false;
}

void
pop3_stuff_finish(struct pop3_stuffer *st, struct buf *out)
{
	if (!st->done) {
		/* A message ending in CR or in the middle of a line still
		 * needs CRLF before the terminator (RFC 1939 §3). */
		if (st->pending_cr || !st->bol) {
			st->pending_cr = false;
			(void)pop3_stuffer_end_line(st, out);
		}
	}
	st->done = true;
	buf_append(out, ".\r\n", 3);
}

/* ---- pop3_uidl_format ---- */

/* Dovecot allows up to this many modifiers per variable. */
#define POP3_VAR_MAX_MODIFIERS	10
/* Widths and offsets are capped here: anything larger is nonsense. */
#define POP3_VAR_MAX_WIDTH	1000

struct pop3_var {
	int	 offset;	/* characters to skip; <0 counts from the end */
	int	 width;		/* 0 none; <0 drop that many at the end */
	bool	 zero_padding;
	char	 modifiers[POP3_VAR_MAX_MODIFIERS];
	int	 modifier_count;
	char	 key;		/* short key, or 0 for a long one */
	char	 long_key[32];	/* {name}, clipped */
};

/*
 * Parse "[-][0]WIDTH[.[0][-]WIDTH][MODIFIERS](KEY|{NAME})" after a '%'
 * the way Dovecot's var_expand() reads it.  Returns the position after
 * the variable, or NULL at the end of the string.
 */
static const char *
pop3_var_parse(const char *p, const char *modifiers, struct pop3_var *v)
{
	int sign = 1;

	memset(v, 0, sizeof(*v));
	if (*p == '-') {
		sign = -1;
		p++;
	}
	if (*p == '0') {
		v->zero_padding = true;
		p++;
	}
	while (*p >= '0' && *p <= '9') {
		if (v->width < POP3_VAR_MAX_WIDTH)
			v->width = v->width * 10 + (*p - '0');
		p++;
	}
	if (*p == '.') {
		/* What came before the dot was the offset. */
		v->offset = sign * v->width;
		sign = 1;
		v->width = 0;
		p++;
		v->zero_padding = false;
		if (*p == '0') {
			v->zero_padding = true;
			p++;
		}
		if (*p == '-') {
			sign = -1;
			p++;
		}
		while (*p >= '0' && *p <= '9') {
			if (v->width < POP3_VAR_MAX_WIDTH)
				v->width = v->width * 10 + (*p - '0');
			p++;
		}
		v->width *= sign;
	}
	while (v->modifier_count < POP3_VAR_MAX_MODIFIERS && *p != '\0' &&
	    strchr(modifiers, *p) != NULL)
		v->modifiers[v->modifier_count++] = *p++;
	if (*p == '\0')
		return NULL;
	if (*p == '{') {
		const char *end = strchr(p, '}');
		size_t n;

		if (end == NULL)
			return NULL;
		n = (size_t)(end - p - 1);
		if (n >= sizeof(v->long_key))
			n = sizeof(v->long_key) - 1;
		memcpy(v->long_key, p + 1, n);
		v->long_key[n] = '\0';
		return end + 1;
	}
	v->key = *p;
	return p + 1;
}

/* Apply one modifier to value (at most 63 characters, in place). */
static void
pop3_var_modify(char *value, size_t size, char modifier)
{
	char *p;

	switch (modifier) {
	case 'L':
		for (p = value; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		break;
	case 'U':
		for (p = value; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
		break;
	case 'X': {
		/* Dovecot: the decimal value in lower-case hex, 0 when the
		 * value is not a number. */
		unsigned long long l = strtoull(value, NULL, 10);

		snprintf(value, size, "%llx", l);
		break;
	}
	}
}

/*
 * Append value to out as v's offset, width and padding say (Dovecot's
 * var_expand() rules: width truncates unless zero-padded, zero padding
 * never truncates).
 */
static void
pop3_var_append(struct buf *out, const char *value, const struct pop3_var *v)
{
	size_t len = strlen(value);
	int width = v->width;

	if (v->offset < 0) {
		if (len > (size_t)-v->offset) {
			value += len - (size_t)-v->offset;
			len = (size_t)-v->offset;
		}
	} else {
		size_t off = (size_t)v->offset < len ? (size_t)v->offset : len;

		value += off;
		len -= off;
	}
	if (width == 0) {
		buf_append(out, value, len);
	} else if (!v->zero_padding) {
		/* A negative width drops that many characters at the end;
		 * more than there are leaves the value whole, as Dovecot's
		 * arithmetic does. */
		if (width < 0)
			width = (int)len + width;
		if (width > 0 && (size_t)width < len)
			len = (size_t)width;
		buf_append(out, value, len);
	} else {
		for (; width > 0 && (size_t)width > len; width--)
			buf_append_char(out, '0');
		buf_append(out, value, len);
	}
}

/* The value of variable v as text; false when it is not one we know. */
typedef bool pop3_var_value_fn(const struct pop3_var *v, const void *ctx,
    char *value, size_t size);

/*
 * Expand fmt into out with the variables value_fn knows (modifiers: the
 * modifier letters allowed), at most max bytes.  Returns false when a
 * variable was unknown (it is left out).
 */
static bool
pop3_expand(struct buf *out, const char *fmt, const char *modifiers,
    size_t max, pop3_var_value_fn *value_fn, const void *ctx)
{
	struct pop3_var v;
	const char *p = fmt;
	size_t start = out->len;
	bool known = true;

	while (*p != '\0' && out->len - start <= max) {
		const char *pct = strchr(p, '%');
		char value[64];
		int i;

		if (pct == NULL) {
			buf_append_str(out, p);
			break;
		}
		buf_append(out, p, (size_t)(pct - p));
		p = pop3_var_parse(pct + 1, modifiers, &v);
		if (p == NULL)
			break;
		if (!value_fn(&v, ctx, value, sizeof(value))) {
			known = false;
			continue;
		}
		for (i = 0; i < v.modifier_count; i++)
			pop3_var_modify(value, sizeof(value), v.modifiers[i]);
		pop3_var_append(out, value, &v);
	}
	if (out->len - start > max)
		out->len = start + max;
	return known;
}

/* The UID and UIDVALIDITY a UIDL is made of. */
struct pop3_uidl_vars {
	uint32_t	uid, uidvalidity;
};

/* The value of a UIDL variable (pop3_var_value_fn). */
static bool
pop3_uidl_var_value(const struct pop3_var *v, const void *ctx, char *value,
    size_t size)
{
	const struct pop3_uidl_vars *uv = ctx;

	if (v->key == '%') {
		snprintf(value, size, "%%");
	} else if (v->key == 'u' || (v->key == '\0' &&
	    strcmp(v->long_key, "uid") == 0)) {
		snprintf(value, size, "%" PRIu32, uv->uid);
	} else if (v->key == 'v' || (v->key == '\0' &&
	    strcmp(v->long_key, "uidvalidity") == 0)) {
		snprintf(value, size, "%" PRIu32, uv->uidvalidity);
	} else
		return false;
	return true;
}

/* Expand fmt; returns false at an unknown variable (skipped). */
static bool
pop3_uidl_expand_full(struct buf *out, const char *fmt, uint32_t uid,
    uint32_t uidvalidity, size_t max)
{
	struct pop3_uidl_vars uv = { uid, uidvalidity };

	return pop3_expand(out, fmt, "LUX", max, pop3_uidl_var_value, &uv);
}

int
pop3_uidl_format_check(const char *fmt, const char **error_r)
{
	static const uint32_t samples[][2] = {
		{ 1, 1 }, { UINT32_MAX, UINT32_MAX }, { 0x10000, 1700000000 }
	};
	struct buf b;
	size_t i, k;
	int ret = 0;

	*error_r = NULL;
	buf_init(&b, 0);
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]) && ret == 0;
	    i++) {
		buf_reset(&b);
		if (!pop3_uidl_expand_full(&b, fmt, samples[i][0],
		    samples[i][1], SIZE_MAX)) {
			*error_r = "unsupported variable (Postern knows %u, "
			    "%v, %{uid} and %{uidvalidity})";
			ret = -1;
		} else if (b.len == 0) {
			*error_r = "the UIDL would be empty";
			ret = -1;
		} else if (b.len > POP3_MAX_UIDL) {
			*error_r = "the UIDL may be longer than 70 characters "
			    "(RFC 1939 section 7)";
			ret = -1;
		}
		for (k = 0; k < b.len && ret == 0; k++)
			if (b.data[k] < '!' || b.data[k] > '~') {
				*error_r = "the UIDL would hold a character "
				    "other than 0x21..0x7E (RFC 1939 "
				    "section 7)";
				ret = -1;
			}
	}
	buf_free(&b);
	return ret;
}

void
pop3_uidl_expand(struct buf *out, const char *fmt, uint32_t uid,
    uint32_t uidvalidity)
{
	(void)pop3_uidl_expand_full(out, fmt, uid, uidvalidity,
	    POP3_MAX_UIDL);
}

/* ---- pop3_logout_format ---- */

#define POP3_MAX_LOGOUT_TEXT	512
/* A variable: its short key ('\0': none), its name {field}, its field. */
#define POP3_LOGOUT_VAR(key, field) \
	{ key, #field, offsetof(struct pop3_logout_stats, field) }

static bool
pop3_logout_value(const struct pop3_var *v, const struct pop3_logout_stats *st,
    uint64_t *val_r)
{
	static const struct {
		char		 key;
		const char	*name;
		size_t		 off;
	} vars[] = {
		POP3_LOGOUT_VAR('t', top_count),
		POP3_LOGOUT_VAR('p', top_bytes),
		POP3_LOGOUT_VAR('r', retr_count),
		POP3_LOGOUT_VAR('b', retr_bytes),
		POP3_LOGOUT_VAR('d', deleted_count),
		POP3_LOGOUT_VAR('\0', deleted_bytes),
		POP3_LOGOUT_VAR('m', message_count),
		POP3_LOGOUT_VAR('s', message_bytes),
		POP3_LOGOUT_VAR('i', input),
		POP3_LOGOUT_VAR('o', output),
	};
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		bool hit = v->key != '\0' ? v->key == vars[i].key :
		    strcmp(v->long_key, vars[i].name) == 0;

		if (hit) {
			memcpy(val_r, (const char *)st + vars[i].off,
			    sizeof(*val_r));
			return true;
		}
	}
	return false;
}

/* The value of a pop3_logout_format variable (pop3_var_value_fn). */
static bool
pop3_logout_var_value(const struct pop3_var *v, const void *ctx,
    char *value, size_t size)
{
	uint64_t n;

	if (v->key == '%')
		snprintf(value, size, "%%");
	else if (pop3_logout_value(v, ctx, &n))
		snprintf(value, size, "%" PRIu64, n);
	else
		return false;
	return true;
}

void
pop3_logout_expand(struct buf *out, const char *fmt,
    const struct pop3_logout_stats *st)
{
	(void)pop3_expand(out, fmt, "", POP3_MAX_LOGOUT_TEXT,
	    pop3_logout_var_value, st);
}
