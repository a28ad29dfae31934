/*
 * smtp_parse: reply parser, EHLO keywords, message encoder and next-hop
 * syntax of the outbound SMTP client (see smtp_parse.h).  Pure code: no
 * I/O, no configuration, no globals.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_parse.h"
#include "str.h"
#include "xmalloc.h"

/* ---- replies ---- */

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, 0);
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	size_t i;

	for (i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	r->lines = NULL;
	r->nlines = 0;
	r->code = 0;
	r->dsn[0] = '\0';
	r->done = false;
	buf_reset(&r->text);
}

void
smtp_reply_free(struct smtp_reply *r)
{
	smtp_reply_reset(r);
	buf_free(&r->text);
}

static bool
smtp_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * An enhanced status code (RFC 3463 §2: class.subject.detail, subject and
 * detail at most three digits) at the start of s, followed by a space or
 * the end.  Its class must be the reply's (RFC 2034 §4), else it is text.
 */
static void
smtp_reply_find_dsn(struct smtp_reply *r, const char *s, size_t len)
{
	size_t i = 0, n;
	int part;

	if (len < 5 || s[0] != "012345"[r->code / 100] || s[1] != '.')
		return;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && smtp_is_digit(s[i]) && n < 4; i++)
			n++;
		if (n == 0 || n > 3)
			return;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return;
	if (i >= sizeof(r->dsn))
		return;
	memcpy(r->dsn, s, i);
	r->dsn[i] = '\0';
}

/* Append a line to the reply text, control bytes as spaces, clipped. */
static void
smtp_reply_add_text(struct smtp_reply *r, const char *line, size_t len)
{
	size_t i;

	/* Full: the separator and "..." would not fit any more. */
	if (r->text.len >= SMTP_MAX_REPLY_TEXT - 3)
		return;
	if (r->text.len > 0)
		(void)buf_append_char(&r->text, ' ');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (r->text.len >= SMTP_MAX_REPLY_TEXT - 3) {
			(void)buf_append_str(&r->text, "...");
			return;
		}
		(void)buf_append_char(&r->text,
		    c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
}

int
smtp_reply_add_line(struct smtp_reply *r, const char *line, size_t len,
    const char **why_r)
{
	int code;
	bool last;

	if (r->done)
		smtp_reply_reset(r);
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !smtp_is_digit(line[1]) || !smtp_is_digit(line[2])) {
		*why_r = "malformed reply line";
		return -1;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*why_r = "malformed reply line";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		*why_r = "NUL byte in reply";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines == 0) {
		r->code = code;
		if (len > 4)
			smtp_reply_find_dsn(r, line + 4, len - 4);
	} else if (code != r->code) {
		/* RFC 5321 §4.2.1: every line of a reply has the same code. */
		*why_r = "inconsistent codes in multi-line reply";
		return -1;
	}
	if (r->nlines >= SMTP_MAX_REPLY_LINES) {
		*why_r = "too many lines in reply";
		return -1;
	}
	r->lines = xreallocarray(r->lines, r->nlines + 1, sizeof(*r->lines));
	r->lines[r->nlines++] = len > 4 ? xstrndup(line + 4, len - 4) :
	    xstrdup("");
	smtp_reply_add_text(r, line, len);
	last = len == 3 || line[3] == ' ';
	r->done = last;
	return last ? 1 : 0;
}

const char *
smtp_reply_dsn(const struct smtp_reply *r)
{
	if (r->dsn[0] != '\0')
		return r->dsn;
	switch (r->code / 100) {
	case 2:
	case 3:
		return "2.0.0";
	case 4:
		return "4.0.0";
	default:
		return "5.0.0";
	}
}

/* ---- EHLO keywords (RFC 5321 §4.1.1.1) ---- */

void
smtp_features_free(struct smtp_features *f)
{
	size_t i;

	for (i = 0; i < f->nauth; i++)
		free(f->auth[i]);
	memset(f, 0, sizeof(*f));
}

bool
smtp_features_has_auth(const struct smtp_features *f, const char *mech)
{
	size_t i;

	for (i = 0; i < f->nauth; i++)
		if (str_case_eq(f->auth[i], mech))
			return true;
	return false;
}

/* A SASL mechanism name (RFC 4422 §3.1): 1..20 of [A-Z0-9-_]. */
static bool
smtp_mech_valid(const char *m)
{
	size_t i;

	for (i = 0; m[i] != '\0'; i++) {
		char c = m[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    smtp_is_digit(c) || c == '-' || c == '_'))
			return false;
	}
	return i >= 1 && i <= 20;
}

static void
smtp_features_add_auth(struct smtp_features *f, char *const *words)
{
	for (; *words != NULL; words++) {
		char *m;

		if (!smtp_mech_valid(*words) ||
		    smtp_features_has_auth(f, *words) ||
		    f->nauth >= SMTP_MAX_AUTH_MECHS)
			continue;
		m = xstrdup(*words);
		for (char *p = m; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		f->auth[f->nauth++] = m;
	}
}

void
smtp_features_parse(struct smtp_features *f, const struct smtp_reply *r)
{
	size_t i, n;

	smtp_features_free(f);
	if (r->nlines == 0)
		return;
	/* The first line: "name greeting text". */
	for (n = 0; r->lines[0][n] != '\0' && r->lines[0][n] != ' ' &&
	    n < sizeof(f->name) - 1; n++)
		f->name[n] = r->lines[0][n];
	f->name[n] = '\0';
	for (i = 1; i < r->nlines; i++) {
		char **w = strv_split(r->lines[i], " ");
		const char *k = w[0];

		if (k == NULL) {
			strv_free(&w);
			continue;
		}
		if (str_case_eq(k, "PIPELINING"))
			f->flags |= SMTP_FEAT_PIPELINING;
		else if (str_case_eq(k, "SIZE")) {
			long long v;

			f->flags |= SMTP_FEAT_SIZE;
			if (w[1] != NULL &&
			    str_to_ll(w[1], 0, (long long)1 << 60, &v) == 0)
				f->size_max = (unsigned long long)v;
		} else if (str_case_eq(k, "8BITMIME"))
			f->flags |= SMTP_FEAT_8BITMIME;
		else if (str_case_eq(k, "SMTPUTF8"))
			f->flags |= SMTP_FEAT_SMTPUTF8;
		else if (str_case_eq(k, "DSN"))
			f->flags |= SMTP_FEAT_DSN;
		else if (str_case_eq(k, "CHUNKING"))
			f->flags |= SMTP_FEAT_CHUNKING;
		else if (str_case_eq(k, "STARTTLS"))
			f->flags |= SMTP_FEAT_STARTTLS;
		else if (str_case_eq(k, "ENHANCEDSTATUSCODES"))
			f->flags |= SMTP_FEAT_ENHANCED;
		else if (str_case_eq(k, "AUTH")) {
			f->flags |= SMTP_FEAT_AUTH;
			smtp_features_add_auth(f, w + 1);
		} else if (str_starts_case(k, "AUTH=")) {
			/* Old clients' form, still sent by some servers. */
			char **w2 = strv_split(r->lines[i] + 5, " ");

			f->flags |= SMTP_FEAT_AUTH;
			smtp_features_add_auth(f, w2);
			strv_free(&w2);
		}
		strv_free(&w);
	}
}

/* ---- the message encoder ---- */

void
smtp_enc_init(struct smtp_enc *e, bool data_mode)
{
	e->dot = data_mode;
	e->bol = true;
	e->cr = false;
}

void
smtp_enc_feed(struct smtp_enc *e, const char *in, size_t len,
    struct buf *out)
{
	size_t i, start;

	/* Reserve the worst case once: every byte doubled. */
	if (len > 0 && buf_reserve(out, len * 2 + 2) < 0)	/* UNSAFE */
		abort();	/* out is unbounded: cannot happen */
	for (i = 0; i < len; ) {
		char c = in[i];

		if (e->cr) {
			e->cr = false;
			if (c == '\n') {
				/* CR LF in the store: one line end. */
				(void)buf_append(out, "\r\n", 2);
				e->bol = true;
				i++;
				continue;
			}
			/* A stray CR: a space, so nobody sees a line end. */
			(void)buf_append_char(out, ' ');
			e->bol = false;
		}
		if (c == '\r') {
			e->cr = true;
			i++;
			continue;
		}
		if (c == '\n') {
			(void)buf_append(out, "\r\n", 2);
			e->bol = true;
			i++;
			continue;
		}
		if (e->bol && c == '.' && e->dot)
			(void)buf_append_char(out, '.');
		e->bol = false;
		/* Copy the run of ordinary bytes in one go. */
		start = i;
		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		(void)buf_append(out, in + start, i - start);
	}
}

void
smtp_enc_finish(struct smtp_enc *e, struct buf *out)
{
	if (e->cr) {
		(void)buf_append_char(out, ' ');
		e->cr = false;
		e->bol = false;
	}
	if (!e->bol)
		(void)buf_append(out, "\r\n", 2);
	e->bol = true;
	if (e->dot)
		(void)buf_append(out, ".\r\n", 3);
}

/* ---- quoted-printable ---- */

/* Characters of an output line before a soft break: 75 plus the '='
 * make the 76 of RFC 2045 §6.7 rule 5. */
#define SMTP_QP_LINE	75

void
smtp_qp_init(struct smtp_qp *q)
{
	q->col = 0;
	q->ws = -1;
	q->cr = false;
}

/* One character, literal or as =XX, with a soft break before it when the
 * line would get too long. */
static void
smtp_qp_put(struct smtp_qp *q, unsigned char c, bool literal,
    struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned need = literal ? 1 : 3;

	if (q->col + need > SMTP_QP_LINE) {
		(void)buf_append(out, "=\n", 2);
		q->col = 0;
	}
	if (literal)
		(void)buf_append_char(out, (char)c);
	else {
		char x[3] = { '=', hex[c >> 4], hex[c & 15] };

		(void)buf_append(out, x, 3);
	}
	q->col += need;
}

/* The held white space: literal when more text follows on its line,
 * encoded when the line ends after it (rule 3). */
static void
smtp_qp_flush_ws(struct smtp_qp *q, bool eol, struct buf *out)
{
	if (q->ws >= 0)
		smtp_qp_put(q, (unsigned char)q->ws, !eol, out);
	q->ws = -1;
}

void
smtp_qp_feed(struct smtp_qp *q, const char *in, size_t len, struct buf *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (q->cr) {
			q->cr = false;
			if (c == '\n') {
				smtp_qp_flush_ws(q, true, out);
				(void)buf_append_char(out, '\n');
				q->col = 0;
				continue;
			}
			smtp_qp_flush_ws(q, false, out);
			smtp_qp_put(q, '\r', false, out);
		}
		if (c == '\r') {
			q->cr = true;
			continue;
		}
		if (c == '\n') {
			smtp_qp_flush_ws(q, true, out);
			(void)buf_append_char(out, '\n');
			q->col = 0;
			continue;
		}
		smtp_qp_flush_ws(q, false, out);
		if (c == ' ' || c == '\t')
			q->ws = c;
		else
			smtp_qp_put(q, c, c >= 33 && c <= 126 && c != '=',
			    out);
	}
}

void
smtp_qp_finish(struct smtp_qp *q, struct buf *out)
{
	if (q->cr) {
		smtp_qp_flush_ws(q, false, out);
		smtp_qp_put(q, '\r', false, out);
		q->cr = false;
	}
	smtp_qp_flush_ws(q, true, out);
}

/* ---- next hops ---- */

static bool
smtp_host_chars_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || c == '[' || c == ']' ||
		    c == '@' || c == '/' || c == '\\')
			return false;
	}
	return true;
}

int
smtp_nexthop_parse(const char *nexthop, char *host, size_t hostsize,
    unsigned *port_r, bool *mx_r)
{
	const char *h, *end, *port = NULL;
	size_t hlen;
	long long v;

	*port_r = 25;
	if (nexthop[0] == '[') {
		h = nexthop + 1;
		if ((end = strchr(h, ']')) == NULL)
			return -1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
		*mx_r = false;
	} else {
		h = nexthop;
		end = strchr(h, ':');
		if (end != NULL)
			port = end + 1;
		else
			end = h + strlen(h);
		*mx_r = true;
	}
	hlen = (size_t)(end - h);
	/* "example.com." is example.com. */
	if (*mx_r && hlen > 1 && h[hlen - 1] == '.')
		hlen--;
	if (!smtp_host_chars_ok(h, hlen) || hlen >= hostsize || hlen > 255)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port != NULL) {
		if (strcmp(port, "smtp") == 0)
			*port_r = 25;
		else if (strcmp(port, "submission") == 0)
			*port_r = 587;
		else if (str_to_ll(port, 1, 65535, &v) == 0)
			*port_r = (unsigned)v;
		else
			return -1;
	}
	return 0;
}
