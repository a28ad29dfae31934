/*
 * mime_header: RFC 5322 header blocks and the structured fields IMAP
 * needs (see mime.h).
 *
 * Everything here works on bytes the caller holds in memory: a header
 * block (for HEADER.FIELDS and SEARCH HEADER) or one field value (for the
 * parser in mime.c and for ENVELOPE).  Parsing is lenient the way mail
 * readers are: comments are skipped wherever CFWS may appear, a missing
 * ';' between parameters or an unquoted value with spaces is still read,
 * and nothing is ever rejected except a Content-Type whose type/subtype
 * is not a token (RFC 2045 §5.2 then says: text/plain).
 *
 * This module does not decode charsets itself (mime_decode.c does) and
 * does not know about parts or offsets (mime.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mime.h"
#include "str.h"
#include "xmalloc.h"

static bool
mh_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* White space of an unfolded value: folding leaves CR/LF only when the
 * input had bare ones, which count as white space too. */
static bool
mh_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A NUL-terminated copy of s[0..len) with NUL bytes as '?'. */
static char *
mh_strndup_nonul(const char *s, size_t len)
{
	char *r = xmalloc(len + 1);	/* UNSAFE: len < SIZE_MAX (in memory) */
	size_t i;

	for (i = 0; i < len; i++)
		r[i] = s[i] == '\0' ? '?' : s[i];
	r[len] = '\0';
	return r;
}

/* ------------------------------------------------------------------ */
/* Header blocks                                                       */

/* End of the line at pos: index after its LF, or len. */
static size_t
mh_line_end(const char *hdr, size_t len, size_t pos)
{
	const char *nl = memchr(hdr + pos, '\n', len - pos);

	return nl == NULL ? len : (size_t)(nl - hdr) + 1;
}

/* Whether the line at pos is empty ("\n" or "\r\n"). */
static bool
mh_line_blank(const char *hdr, size_t len, size_t pos)
{
	if (hdr[pos] == '\n')
		return true;
	return hdr[pos] == '\r' && pos + 1 < len && hdr[pos + 1] == '\n';
}

int
mime_header_next(const char *hdr, size_t len, size_t *pos,
    struct mime_field *f_r)
{
	size_t start = *pos, end, first_end, colon, vend;
	const char *c;

	if (start >= len || mh_line_blank(hdr, len, start))
		return 0;
	first_end = end = mh_line_end(hdr, len, start);
	/* Continuation lines start with white space (RFC 5322 §2.2.3). */
	while (end < len && mh_is_wsp((unsigned char)hdr[end]))
		end = mh_line_end(hdr, len, end);

	/* Content of the first line without its line end. */
	vend = first_end;
	if (vend > start && hdr[vend - 1] == '\n')
		vend--;
	if (vend > start && hdr[vend - 1] == '\r')
		vend--;
	c = memchr(hdr + start, ':', vend - start);
	f_r->name = hdr + start;
	f_r->raw = hdr + start;
	f_r->raw_len = end - start;
	if (c == NULL) {
		/* Not a field: the whole line is its name. */
		f_r->name_len = vend - start;
		f_r->value = hdr + vend;
		f_r->value_len = 0;
	} else {
		colon = (size_t)(c - hdr);
		f_r->name_len = colon - start;
		/* RFC 5322 §4.5 obs-optional: white space before ':'. */
		while (f_r->name_len > 0 &&
		    mh_is_wsp((unsigned char)f_r->name[f_r->name_len - 1]))
			f_r->name_len--;
		f_r->value = hdr + colon + 1;
		vend = end;
		if (vend > colon + 1 && hdr[vend - 1] == '\n')
			vend--;
		if (vend > colon + 1 && hdr[vend - 1] == '\r')
			vend--;
		f_r->value_len = vend - (colon + 1);
	}
	*pos = end;
	return 1;
}

int
mime_field_unfold(const char *value, size_t len, struct buf *out)
{
	size_t start = 0, end = len, i, run;

	while (start < end && mh_is_space((unsigned char)value[start]))
		start++;
	while (end > start && mh_is_space((unsigned char)value[end - 1]))
		end--;
	/* Unfolding removes the line ends and keeps the white space. */
	for (i = start; i < end; i += run) {
		if (value[i] == '\r' || value[i] == '\n') {
			run = 1;
			continue;
		}
		for (run = 0; i + run < end && value[i + run] != '\r' &&
		    value[i + run] != '\n'; run++)
			;
		if (buf_append(out, value + i, run) < 0)
			return -1;
	}
	return 0;
}

static bool
mh_name_eq(const struct mime_field *f, const char *name)
{
	size_t n = strlen(name);

	return n == f->name_len && strncasecmp(f->name, name, n) == 0;
}

int
mime_header_get(const char *hdr, size_t len, const char *name, size_t idx,
    struct buf *out)
{
	struct mime_field f;
	size_t pos = 0;

	while (mime_header_next(hdr, len, &pos, &f) == 1) {
		if (!mh_name_eq(&f, name))
			continue;
		if (idx-- > 0)
			continue;
		return mime_field_unfold(f.value, f.value_len, out) < 0 ?
		    -1 : 1;
	}
	return 0;
}

size_t
mime_header_get_all(const char *hdr, size_t len, const char *name,
    char ***values_r)
{
	struct mime_field f;
	struct buf b;
	size_t pos = 0, n = 0;
	char **v = xcalloc(1, sizeof(*v));

	buf_init(&b, 0);
	while (mime_header_next(hdr, len, &pos, &f) == 1) {
		char *s;

		if (!mh_name_eq(&f, name))
			continue;
		buf_reset(&b);
		(void)mime_field_unfold(f.value, f.value_len, &b);
		s = mh_strndup_nonul(b.data != NULL ? b.data : "", b.len);
		strv_push(&v, s);
		free(s);
		n++;
	}
	buf_free(&b);
	*values_r = v;
	return n;
}

/* Append raw header bytes with every line end as CRLF. */
static int
mh_append_crlf(struct buf *out, const char *s, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (s[i] != '\n' || (i > 0 && s[i - 1] == '\r'))
			continue;
		if (buf_append(out, s + start, i - start) < 0 ||
		    buf_append(out, "\r\n", 2) < 0)
			return -1;
		start = i + 1;
	}
	if (buf_append(out, s + start, len - start) < 0)
		return -1;
	/* The last field of a block without line end still ends one. */
	if (len > 0 && s[len - 1] != '\n')
		return buf_append(out, "\r\n", 2);
	return 0;
}

int
mime_header_fields(const char *hdr, size_t len, const char *const *names,
    size_t n, bool negate, struct buf *out)
{
	struct mime_field f;
	size_t pos = 0, i;

	while (mime_header_next(hdr, len, &pos, &f) == 1) {
		bool match = false;

		for (i = 0; i < n && !match; i++)
			match = mh_name_eq(&f, names[i]);
		if (match != negate &&
		    mh_append_crlf(out, f.raw, f.raw_len) < 0)
			return -1;
	}
	/* mime_header_next() stopped at the blank line, or at the end. */
	if (pos < len)
		return buf_append(out, "\r\n", 2);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Content-Type, Content-Disposition (RFC 2045 §5.1, RFC 2183, 2231)   */

/* RFC 2045 §5.1 tspecials. */
static bool
mh_is_tspecial(unsigned char c)
{
	return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool
mh_is_token(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !mh_is_tspecial(c);
}

/* Skip white space and RFC 5322 comments (nested, with quoted-pairs). */
static const char *
mh_skip_cfws(const char *p, const char *end)
{
	while (p < end) {
		if (mh_is_space((unsigned char)*p)) {
			p++;
		} else if (*p == '(') {
			unsigned int depth = 0;

			for (; p < end; p++) {
				if (*p == '\\' && p + 1 < end) {
					p++;
				} else if (*p == '(') {
					depth++;
				} else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return p;
}

static const char *
mh_token_end(const char *p, const char *end)
{
	while (p < end && mh_is_token((unsigned char)*p))
		p++;
	return p;
}

/* RFC 2231 §7 attribute-char: token chars except '*', '\'' and '%'. */
static bool
mh_is_attr_char(unsigned char c)
{
	return mh_is_token(c) && c != '*' && c != '\'' && c != '%';
}

/* A parameter as written, before RFC 2231 joining. */
struct mh_rawparam {
	char	*attr;
	char	*value;
	char	*base;		/* attr without "*N*" */
	int	 section;	/* -1: not an RFC 2231 form; -2: "name*" */
	bool	 ext;		/* value is charset'lang'%-encoded */
	bool	 used;
};

/* Read a parameter value: quoted string or the text up to ';'. */
static const char *
mh_param_value(const char *p, const char *end, struct buf *v)
{
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (*p == '\r' || *p == '\n')
				continue;
			(void)buf_append_char(v, *p);
		}
		if (p < end)
			p++;
		return p;
	}
	/*
	 * Unquoted: a token by RFC 2045, but mailers write spaces, '/' and
	 * other tspecials unquoted; take the text up to ';' or up to a
	 * comment that follows white space ("utf-8 (Unicode)").
	 */
	while (p < end && *p != ';') {
		if (*p == '(' && v->len > 0 &&
		    mh_is_space((unsigned char)v->data[v->len - 1]))
			break;
		if (*p != '\r' && *p != '\n')
			(void)buf_append_char(v, *p);
		p++;
	}
	while (v->len > 0 && mh_is_space((unsigned char)v->data[v->len - 1]))
		v->len--;
	return p;
}

/* Split "name*3*" into base, section and the extended flag. */
static void
mh_rawparam_classify(struct mh_rawparam *r)
{
	const char *star = strchr(r->attr, '*');
	const char *q;
	long long sec;
	char num[8];
	size_t n;

	r->section = -1;
	r->ext = false;
	if (star == NULL || star == r->attr) {
		r->base = xstrdup(r->attr);
		return;
	}
	q = star + 1;
	if (*q == '\0') {
		r->section = -2;
		r->ext = true;
	} else {
		for (n = 0; q[n] >= '0' && q[n] <= '9'; n++)
			;
		if (n == 0 || n >= sizeof(num) ||
		    (q[n] != '\0' && strcmp(q + n, "*") != 0)) {
			r->base = xstrdup(r->attr);	/* not RFC 2231 */
			return;
		}
		memcpy(num, q, n);
		num[n] = '\0';
		if (str_to_ll(num, 0, MAX_MIME_PARAMS * 100, &sec) < 0) {
			r->base = xstrdup(r->attr);
			return;
		}
		r->section = (int)sec;
		r->ext = q[n] == '*';
	}
	r->base = xstrndup(r->attr, (size_t)(star - r->attr));
}

/* Append s with the bytes that are not attribute-char as %XX. */
static void
mh_pct_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (mh_is_attr_char(*p)) {
			(void)buf_append_char(b, (char)*p);
		} else {
			(void)buf_append_char(b, '%');
			(void)buf_append_char(b, hex[*p >> 4]);
			(void)buf_append_char(b, hex[*p & 0x0f]);
		}
	}
}

/*
 * Join the RFC 2231 pieces of raw[first] and its siblings (same base
 * name, same form) into one parameter (RFC 2231 §3, §4.1).  Pieces are
 * ordered by section number; a repeated number keeps the first piece;
 * a gap is closed up.  Plain pieces of an extended value are %-encoded so
 * the joined value reads as one extended value.
 */
static void
mh_join_2231(struct mh_rawparam *raw, size_t nraw, size_t first,
    struct mime_param *out)
{
	size_t order[MAX_MIME_PARAMS], n = 0, i, j;
	bool ext = false;
	struct buf v;

	for (i = first; i < nraw; i++) {
		if (raw[i].used || raw[i].section == -1 ||
		    (raw[i].section == -2) != (raw[first].section == -2) ||
		    strcasecmp(raw[i].base, raw[first].base) != 0)
			continue;
		raw[i].used = true;
		for (j = 0; j < n; j++) {
			if (raw[order[j]].section == raw[i].section)
				break;
		}
		if (j < n)
			continue;		/* repeated section */
		/* Insertion sort: at most MAX_MIME_PARAMS pieces. */
		for (j = n; j > 0 && raw[order[j - 1]].section >
		    raw[i].section; j--)
			order[j] = order[j - 1];
		order[j] = i;
		n++;
		ext = ext || raw[i].ext;
	}
	buf_init(&v, 0);
	for (j = 0; j < n; j++) {
		const struct mh_rawparam *r = &raw[order[j]];

		if (!ext) {
			(void)buf_append_str(&v, r->value);
		} else if (j == 0) {
			const char *q1 = r->ext ? strchr(r->value, '\'') :
			    NULL;
			const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') :
			    NULL;

			/* charset'language' opens the first piece only. */
			if (q2 != NULL) {
				(void)buf_append_str(&v, r->value);
			} else {
				(void)buf_append_str(&v, "''");
				if (r->ext)
					(void)buf_append_str(&v, r->value);
				else
					mh_pct_encode(&v, r->value);
			}
		} else if (r->ext) {
			(void)buf_append_str(&v, r->value);
		} else {
			mh_pct_encode(&v, r->value);
		}
	}
	out->name = ext ? xasprintf("%s*", raw[first].base) :
	    xstrdup(raw[first].base);
	out->value = buf_steal(&v);
	out->extended = ext;
}

/* Parse "; attr=value ..." up to end into *params_r. */
static void
mh_parse_params(const char *p, const char *end, struct mime_param **params_r,
    size_t *nparams_r)
{
	struct mh_rawparam raw[MAX_MIME_PARAMS];
	struct mime_param *params;
	size_t nraw = 0, n = 0, i;
	struct buf v;

	buf_init(&v, MAX_MIME_FIELD);
	while (p < end && nraw < MAX_MIME_PARAMS) {
		const char *a, *ae;

		p = mh_skip_cfws(p, end);
		if (p < end && *p == ';') {
			p++;
			continue;
		}
		if (p >= end)
			break;
		/* Attribute; no ';' before it is tolerated. */
		a = p;
		ae = mh_token_end(p, end);
		p = mh_skip_cfws(ae, end);
		if (ae == a || p >= end || *p != '=') {
			/* Junk or a parameter without value: skip it. */
			while (p < end && *p != ';')
				p++;
			continue;
		}
		p = mh_skip_cfws(p + 1, end);
		buf_reset(&v);
		p = mh_param_value(p, end, &v);
		/* Junk after a quoted value, up to the next ';'. */
		while (p < end && *p != ';' && mh_is_space((unsigned char)*p))
			p++;
		raw[nraw].attr = xstrndup(a, (size_t)(ae - a));
		raw[nraw].value = mh_strndup_nonul(v.data != NULL ? v.data :
		    "", v.len);
		raw[nraw].used = false;
		mh_rawparam_classify(&raw[nraw]);
		nraw++;
	}
	buf_free(&v);

	params = nraw == 0 ? NULL : xcalloc(nraw, sizeof(*params));
	for (i = 0; i < nraw; i++) {
		if (raw[i].used)
			continue;
		if (raw[i].section == -1) {
			raw[i].used = true;
			params[n].name = xstrdup(raw[i].attr);
			params[n].value = xstrdup(raw[i].value);
			params[n].extended = false;
		} else {
			mh_join_2231(raw, nraw, i, &params[n]);
		}
		n++;
	}
	for (i = 0; i < nraw; i++) {
		free(raw[i].attr);
		free(raw[i].value);
		free(raw[i].base);
	}
	*params_r = params;
	*nparams_r = n;
}

int
mime_content_parse(const char *value, size_t len, bool with_subtype,
    char **type_r, char **subtype_r, struct mime_param **params_r,
    size_t *nparams_r)
{
	const char *p = value, *end = value + len, *t, *te, *s = NULL;
	const char *se = NULL;

	*type_r = NULL;
	if (subtype_r != NULL)
		*subtype_r = NULL;
	*params_r = NULL;
	*nparams_r = 0;

	p = mh_skip_cfws(p, end);
	t = p;
	te = p = mh_token_end(p, end);
	if (te == t)
		return -1;
	if (with_subtype) {
		p = mh_skip_cfws(p, end);
		if (p >= end || *p != '/')
			return -1;
		p = mh_skip_cfws(p + 1, end);
		s = p;
		se = p = mh_token_end(p, end);
		if (se == s)
			return -1;
	}
	*type_r = xstrndup(t, (size_t)(te - t));
	if (with_subtype && subtype_r != NULL)
		*subtype_r = xstrndup(s, (size_t)(se - s));
	mh_parse_params(p, end, params_r, nparams_r);
	return 0;
}

void
mime_params_free(struct mime_param **params, size_t n)
{
	size_t i;

	if (*params == NULL)
		return;
	for (i = 0; i < n; i++) {
		free((*params)[i].name);
		free((*params)[i].value);
	}
	free(*params);
	*params = NULL;
}

const struct mime_param *
mime_param_find(const struct mime_param *params, size_t n, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++) {
		const char *pn = params[i].name;

		if (strcasecmp(pn, name) == 0)
			return &params[i];
		if (strncasecmp(pn, name, len) == 0 && pn[len] == '*' &&
		    pn[len + 1] == '\0')
			return &params[i];
	}
	return NULL;
}

static int
mh_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
mime_param_decode(const struct mime_param *p, struct buf *out)
{
	const char *v = p->value, *q1, *q2, *d;
	char *charset;
	struct buf raw;
	int ret;

	if (!p->extended)
		return mime_decode_words(v, strlen(v), out);
	/* RFC 2231 §4: charset'language'%-encoded octets. */
	q1 = strchr(v, '\'');
	q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
	if (q2 == NULL) {
		charset = xstrdup("");
		d = v;
	} else {
		charset = xstrndup(v, (size_t)(q1 - v));
		d = q2 + 1;
	}
	buf_init(&raw, 0);
	for (; *d != '\0'; d++) {
		int hi, lo;

		if (*d == '%' && (hi = mh_hexval((unsigned char)d[1])) >= 0 &&
		    (lo = mh_hexval((unsigned char)d[2])) >= 0) {
			(void)buf_append_char(&raw, (char)(hi << 4 | lo));
			d += 2;
		} else {
			(void)buf_append_char(&raw, *d);
		}
	}
	ret = mime_charset_to_utf8(charset, raw.data, raw.len, out);
	buf_free(&raw);
	free(charset);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Address lists (RFC 5322 §3.4, obsolete forms of §4.4)               */

enum mh_tok {
	MH_TOK_END,
	MH_TOK_WORD,		/* atom or quoted string (unquoted) */
	MH_TOK_LITERAL,		/* [domain literal], brackets kept */
	MH_TOK_SPECIAL,		/* one of < > , : ; @ . */
};

struct mh_lexer {
	const char	*p, *end;
	struct buf	 text;		/* current token's text */
	struct buf	 comment;	/* last comment seen */
	enum mh_tok	 tok;
	char		 c;		/* the special */
	bool		 space_before;	/* white space or comment before */
	bool		 unget;		/* return the same token again */
};

static bool
mh_is_addr_special(unsigned char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

/* Read a comment at lx->p ('('), keeping its text in lx->comment. */
static void
mh_lex_comment(struct mh_lexer *lx)
{
	unsigned int depth = 0;

	buf_reset(&lx->comment);
	for (; lx->p < lx->end; lx->p++) {
		char c = *lx->p;

		if (c == '\\' && lx->p + 1 < lx->end) {
			lx->p++;
			c = *lx->p;
		} else if (c == '(') {
			if (depth++ == 0)
				continue;
		} else if (c == ')') {
			if (--depth == 0) {
				lx->p++;
				break;
			}
		}
		if (c == '\r' || c == '\n')
			continue;
		(void)buf_append_char(&lx->comment, c == '\0' ? '?' : c);
	}
}

static void
mh_lex_next(struct mh_lexer *lx)
{
	if (lx->unget) {
		lx->unget = false;
		return;
	}
	lx->space_before = false;
	buf_reset(&lx->text);
	for (;;) {
		if (lx->p >= lx->end) {
			lx->tok = MH_TOK_END;
			return;
		}
		if (mh_is_space((unsigned char)*lx->p) || *lx->p == ')') {
			/* A stray ')' is dropped like white space. */
			lx->space_before = true;
			lx->p++;
		} else if (*lx->p == '(') {
			mh_lex_comment(lx);
			lx->space_before = true;
		} else {
			break;
		}
	}
	switch (*lx->p) {
	case '"':
		lx->tok = MH_TOK_WORD;
		for (lx->p++; lx->p < lx->end && *lx->p != '"'; lx->p++) {
			char c = *lx->p;

			if (c == '\\' && lx->p + 1 < lx->end)
				c = *++lx->p;
			if (c == '\r' || c == '\n')
				continue;
			(void)buf_append_char(&lx->text, c == '\0' ? '?' : c);
		}
		if (lx->p < lx->end)
			lx->p++;
		return;
	case '[':
		lx->tok = MH_TOK_LITERAL;
		for (; lx->p < lx->end; lx->p++) {
			char c = *lx->p;

			if (c == '\\' && lx->p + 1 < lx->end)
				c = *++lx->p;
			if (c == '\r' || c == '\n')
				continue;
			(void)buf_append_char(&lx->text, c == '\0' ? '?' : c);
			if (c == ']') {
				lx->p++;
				break;
			}
		}
		return;
	case '<': case '>': case ',': case ':': case ';': case '@': case '.':
		lx->tok = MH_TOK_SPECIAL;
		lx->c = *lx->p++;
		return;
	default:
		break;
	}
	/* An atom; a lone '\\' or ']' is taken as part of one. */
	lx->tok = MH_TOK_WORD;
	do {
		char c = *lx->p;

		(void)buf_append_char(&lx->text, c == '\0' ? '?' : c);
		lx->p++;
	} while (lx->p < lx->end && !mh_is_space((unsigned char)*lx->p) &&
	    (!mh_is_addr_special((unsigned char)*lx->p) || *lx->p == '\\' ||
	    *lx->p == ']'));
}

static bool
mh_lex_is(const struct mh_lexer *lx, char c)
{
	return lx->tok == MH_TOK_SPECIAL && lx->c == c;
}

/* Skip junk after an address, up to ',', ';' or the end (kept). */
static void
mh_skip_to_separator(struct mh_lexer *lx)
{
	for (;;) {
		mh_lex_next(lx);
		if (lx->tok == MH_TOK_END || mh_lex_is(lx, ',') ||
		    mh_lex_is(lx, ';'))
			break;
	}
	lx->unget = true;
}

struct mh_addrlist {
	struct mime_address	*v;
	size_t			 n;
	size_t			 cap;
};

static char *
mh_buf_dup_or_null(const struct buf *b)
{
	return b->len == 0 ? NULL : xstrndup(b->data, b->len);
}

static void
mh_addr_push(struct mh_addrlist *l, const struct buf *name,
    const struct buf *route, const struct buf *mailbox, const struct buf *host,
    bool group)
{
	struct mime_address *a;

	if (l->n >= MAX_MIME_ADDRESSES)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 4 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	a = &l->v[l->n++];
	a->name = name != NULL ? mh_buf_dup_or_null(name) : NULL;
	a->route = route != NULL ? mh_buf_dup_or_null(route) : NULL;
	if (group) {
		/* Group start (mailbox = name) or end (all NULL). */
		a->mailbox = mailbox != NULL ? xstrndup(mailbox->data != NULL ?
		    mailbox->data : "", mailbox->len) : NULL;
		a->host = NULL;
		return;
	}
	a->mailbox = mailbox->len == 0 ? xstrdup("MISSING_MAILBOX") :
	    xstrndup(mailbox->data, mailbox->len);
	a->host = host->len == 0 ? xstrdup("MISSING_DOMAIN") :
	    xstrndup(host->data, host->len);
}

/* Read a domain (after '@') into host; stops before any other special. */
static void
mh_parse_domain(struct mh_lexer *lx, struct buf *host)
{
	for (;;) {
		mh_lex_next(lx);
		if (lx->tok == MH_TOK_WORD || lx->tok == MH_TOK_LITERAL)
			(void)buf_append(host, lx->text.data, lx->text.len);
		else if (mh_lex_is(lx, '.'))
			(void)buf_append_char(host, '.');
		else
			break;
	}
	lx->unget = true;
}

/* Inside <...>: [route ":"] local-part ["@" domain] [">"]. */
static void
mh_parse_angle(struct mh_lexer *lx, struct buf *route, struct buf *local,
    struct buf *host)
{
	mh_lex_next(lx);
	if (mh_lex_is(lx, '@')) {
		/* Obsolete route "@a,@b:" (RFC 5322 §4.4) or "<@domain>". */
		struct buf dom;

		buf_init(&dom, 0);
		for (;;) {
			buf_reset(&dom);
			mh_parse_domain(lx, &dom);
			(void)buf_append_char(route, '@');
			(void)buf_append(route, dom.data, dom.len);
			mh_lex_next(lx);
			if (mh_lex_is(lx, ',')) {
				(void)buf_append_char(route, ',');
				mh_lex_next(lx);
				if (mh_lex_is(lx, '@'))
					continue;
				break;
			}
			if (mh_lex_is(lx, ':')) {
				mh_lex_next(lx);
				break;
			}
			/* "<@domain>": no local part, the domain is it. */
			if (memchr(route->data, ',', route->len) == NULL) {
				(void)buf_append(host, dom.data, dom.len);
				buf_reset(route);
			}
			buf_free(&dom);
			goto close;
		}
		buf_free(&dom);
	}
	for (;; mh_lex_next(lx)) {
		if (lx->tok == MH_TOK_WORD || lx->tok == MH_TOK_LITERAL)
			(void)buf_append(local, lx->text.data, lx->text.len);
		else if (mh_lex_is(lx, '.'))
			(void)buf_append_char(local, '.');
		else
			break;
	}
	if (mh_lex_is(lx, '@')) {
		mh_parse_domain(lx, host);
		mh_lex_next(lx);
	}
close:
	if (!mh_lex_is(lx, '>'))
		lx->unget = true;
}

size_t
mime_address_parse(const char *value, size_t len,
    struct mime_address **list_r)
{
	struct mh_lexer lx;
	struct mh_addrlist l = { NULL, 0, 0 };
	struct buf phrase, local, route, host, empty;
	bool in_group = false, words = false;

	memset(&lx, 0, sizeof(lx));
	lx.p = value;
	lx.end = value + len;
	buf_init(&lx.text, 0);
	buf_init(&lx.comment, 0);
	buf_init(&phrase, 0);
	buf_init(&local, 0);
	buf_init(&route, 0);
	buf_init(&host, 0);
	buf_init(&empty, 0);

#define MH_RESET() do {							\
	buf_reset(&phrase); buf_reset(&local); buf_reset(&route);	\
	buf_reset(&host); buf_reset(&lx.comment); words = false;	\
} while (0)

	for (;;) {
		mh_lex_next(&lx);
		if (l.n >= MAX_MIME_ADDRESSES)
			break;
		if (lx.tok == MH_TOK_WORD || lx.tok == MH_TOK_LITERAL) {
			/* A phrase keeps one space where the input had
			 * some; a local part keeps none. */
			if (lx.space_before && phrase.len > 0)
				(void)buf_append_char(&phrase, ' ');
			(void)buf_append(&phrase, lx.text.data, lx.text.len);
			(void)buf_append(&local, lx.text.data, lx.text.len);
			words = true;
			continue;
		}
		if (mh_lex_is(&lx, '.')) {
			(void)buf_append_char(&phrase, '.');
			(void)buf_append_char(&local, '.');
			continue;
		}
		if (mh_lex_is(&lx, '@')) {
			/* addr-spec; a comment is the name (obsolete
			 * "user@host (Real Name)" form). */
			mh_parse_domain(&lx, &host);
			mh_lex_next(&lx);	/* what ended the domain */
			lx.unget = true;
			mh_addr_push(&l, &lx.comment, NULL, &local, &host,
			    false);
			MH_RESET();
			mh_skip_to_separator(&lx);
			continue;
		}
		if (mh_lex_is(&lx, '<')) {
			buf_reset(&local);
			buf_reset(&lx.comment);
			mh_parse_angle(&lx, &route, &local, &host);
			mh_addr_push(&l, &phrase, &route, &local, &host, false);
			MH_RESET();
			mh_skip_to_separator(&lx);
			continue;
		}
		if (mh_lex_is(&lx, ':') && !in_group) {
			mh_addr_push(&l, NULL, NULL, &phrase, NULL, true);
			in_group = true;
			MH_RESET();
			continue;
		}
		/* ',', ';', '>', a second ':', or the end: a pending bare
		 * local part ("root") is an address without domain. */
		if (words)
			mh_addr_push(&l, &lx.comment, NULL, &local, &empty,
			    false);
		MH_RESET();
		if (mh_lex_is(&lx, ';') && in_group) {
			mh_addr_push(&l, NULL, NULL, NULL, NULL, true);
			in_group = false;
		}
		if (lx.tok == MH_TOK_END)
			break;
	}
#undef MH_RESET
	if (in_group)
		mh_addr_push(&l, NULL, NULL, NULL, NULL, true);
	buf_free(&lx.text);
	buf_free(&lx.comment);
	buf_free(&phrase);
	buf_free(&local);
	buf_free(&route);
	buf_free(&host);
	buf_free(&empty);
	*list_r = l.v;
	return l.n;
}

void
mime_addresses_free(struct mime_address **list, size_t n)
{
	size_t i;

	if (*list == NULL)
		return;
	for (i = 0; i < n; i++) {
		free((*list)[i].name);
		free((*list)[i].route);
		free((*list)[i].mailbox);
		free((*list)[i].host);
	}
	free(*list);
	*list = NULL;
}

/* ------------------------------------------------------------------ */
/* Dates (RFC 5322 §3.3, §4.3)                                         */

enum mh_dtok_type { MH_D_NUM, MH_D_ALPHA, MH_D_CHAR };

struct mh_dtok {
	enum mh_dtok_type	 type;
	long			 num;
	unsigned int		 ndigits;
	char			 text[4];	/* first letters, lower */
	unsigned int		 alen;		/* letters in the word */
};

#define MH_DATE_TOKENS	24

static size_t
mh_date_tokens(const char *s, size_t len, struct mh_dtok *t)
{
	const char *p = s, *end = s + len;
	size_t n = 0;

	while (n < MH_DATE_TOKENS) {
		p = mh_skip_cfws(p, end);
		if (p >= end)
			break;
		memset(&t[n], 0, sizeof(t[n]));
		if (*p >= '0' && *p <= '9') {
			t[n].type = MH_D_NUM;
			for (; p < end && *p >= '0' && *p <= '9'; p++) {
				if (t[n].ndigits++ < 9)
					t[n].num = t[n].num * 10 + (*p - '0');
			}
		} else if ((*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z')) {
			t[n].type = MH_D_ALPHA;
			for (; p < end && ((*p >= 'a' && *p <= 'z') ||
			    (*p >= 'A' && *p <= 'Z')); p++) {
				/* The first three letters, lower case. */
				if (t[n].alen < 3)
					t[n].text[t[n].alen] =
					    (char)(*p | 0x20);
				t[n].alen++;
			}
		} else {
			t[n].type = MH_D_CHAR;
			t[n].text[0] = *p++;
		}
		n++;
	}
	return n;
}

static int
mh_month(const struct mh_dtok *t)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	int i;

	if (t->type != MH_D_ALPHA || t->alen < 3)
		return -1;
	for (i = 0; i < 12; i++) {
		if (memcmp(months + i * 3, t->text, 3) == 0)
			return i + 1;
	}
	return -1;
}

static bool
mh_dayname(const struct mh_dtok *t)
{
	static const char days[] = "montuewedthufrisatsun";
	int i;

	if (t->type != MH_D_ALPHA || t->alen < 3)
		return false;
	for (i = 0; i < 7; i++) {
		if (memcmp(days + i * 3, t->text, 3) == 0)
			return true;
	}
	return false;
}

static bool
mh_dchar(const struct mh_dtok *t, size_t i, size_t n, char c)
{
	return i < n && t[i].type == MH_D_CHAR && t[i].text[0] == c;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long long
mh_days_from_civil(long long y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
mh_days_in_month(long y, int m)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return mdays[m - 1];
}

/* The year of a token: RFC 5322 §4.3 for two and three digits. */
static long
mh_year(const struct mh_dtok *t)
{
	if (t->ndigits == 2)
		return t->num < 50 ? 2000 + t->num : 1900 + t->num;
	if (t->ndigits == 3)
		return 1900 + t->num;
	return t->ndigits == 4 ? t->num : -1;
}

/* hh:mm[:ss] at t[*i]; advances *i. */
static bool
mh_time(const struct mh_dtok *t, size_t *i, size_t n, int *h, int *m,
    int *s)
{
	size_t k = *i;

	if (k + 2 >= n || t[k].type != MH_D_NUM || !mh_dchar(t, k + 1, n,
	    ':') || t[k + 2].type != MH_D_NUM || t[k].ndigits > 2 ||
	    t[k + 2].ndigits > 2)
		return false;
	*h = (int)t[k].num;
	*m = (int)t[k + 2].num;
	*s = 0;
	k += 3;
	if (mh_dchar(t, k, n, ':') && k + 1 < n && t[k + 1].type == MH_D_NUM &&
	    t[k + 1].ndigits <= 2) {
		*s = (int)t[k + 1].num;
		k += 2;
	}
	*i = k;
	return *h <= 23 && *m <= 59 && *s <= 60;
}

/* A zone at t[*i]: "+hhmm", "-hhmm" or a name; minutes east of UTC. */
static bool
mh_zone(const struct mh_dtok *t, size_t *i, size_t n, int *tz)
{
	static const struct {
		const char	*name;
		int		 hours;
	} names[] = {
		{ "est", -5 }, { "edt", -4 }, { "cst", -6 }, { "cdt", -5 },
		{ "mst", -7 }, { "mdt", -6 }, { "pst", -8 }, { "pdt", -7 },
	};
	size_t k = *i, j;

	if ((mh_dchar(t, k, n, '+') || mh_dchar(t, k, n, '-')) &&
	    k + 1 < n && t[k + 1].type == MH_D_NUM &&
	    (t[k + 1].ndigits == 4 || t[k + 1].ndigits == 2)) {
		long v = t[k + 1].ndigits == 4 ? t[k + 1].num :
		    t[k + 1].num * 100;

		if (v % 100 > 59)
			return false;
		*tz = (int)(v / 100 * 60 + v % 100);
		if (t[k].text[0] == '-')
			*tz = -*tz;
		*i = k + 2;
		return true;
	}
	if (k < n && t[k].type == MH_D_ALPHA) {
		*tz = 0;
		/* UT, GMT, UTC, military letters and unknown names are
		 * -0000 (RFC 5322 §4.3). */
		if (t[k].alen == 3) {
			for (j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
				if (memcmp(names[j].name, t[k].text, 3) == 0)
					*tz = names[j].hours * 60;
			}
		}
		*i = k + 1;
		return true;
	}
	return false;
}

int
mime_date_parse(const char *s, size_t len, time_t *t_r, int *tz_r)
{
	struct mh_dtok t[MH_DATE_TOKENS];
	size_t n = mh_date_tokens(s, len, t), i = 0;
	long year = -1;
	int mon, day, h = 0, m = 0, sec = 0, tz = 0;
	long long secs;

	if (i < n && mh_dayname(&t[i])) {
		i++;
		if (mh_dchar(t, i, n, ','))
			i++;
	}
	if (i < n && t[i].type == MH_D_NUM) {
		/* day month year [time] [zone]; '-' also separates
		 * ("2-Jan-2006", the IMAP date form). */
		if (t[i].ndigits > 2)
			return -1;
		day = (int)t[i++].num;
		if (mh_dchar(t, i, n, '-'))
			i++;
		if (i >= n || (mon = mh_month(&t[i])) < 0)
			return -1;
		i++;
		if (mh_dchar(t, i, n, '-'))
			i++;
		if (i >= n || t[i].type != MH_D_NUM ||
		    (year = mh_year(&t[i])) < 0)
			return -1;
		i++;
		if (i < n && t[i].type == MH_D_NUM &&
		    !mh_time(t, &i, n, &h, &m, &sec))
			return -1;
		if (i < n && !mh_zone(t, &i, n, &tz))
			tz = 0;
	} else if (i < n && (mon = mh_month(&t[i])) > 0) {
		/* asctime(): month day time [zone] year. */
		i++;
		if (i >= n || t[i].type != MH_D_NUM || t[i].ndigits > 2)
			return -1;
		day = (int)t[i++].num;
		if (!mh_time(t, &i, n, &h, &m, &sec))
			return -1;
		while (i < n && year < 0) {
			if (t[i].type == MH_D_NUM) {
				if ((year = mh_year(&t[i])) < 0)
					return -1;
				i++;
			} else if (!mh_zone(t, &i, n, &tz)) {
				return -1;
			}
		}
		if (year < 0)
			return -1;
		if (i < n)
			(void)mh_zone(t, &i, n, &tz);
	} else {
		return -1;
	}
	if (year < 1900 || year > 9999 || day < 1 ||
	    day > mh_days_in_month(year, mon))
		return -1;
	if (sec == 60)
		sec = 59;		/* a leap second */
	secs = mh_days_from_civil(year, mon, day) * 86400LL +
	    h * 3600LL + m * 60LL + sec - tz * 60LL;
	*t_r = (time_t)secs;
	*tz_r = tz;
	return 0;
}
