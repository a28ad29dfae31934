/*
 * smtpd_parse: byte-level parsers of the SMTP server (see smtpd_parse.h).
 * Everything here is pure and resumable so it can be fed one byte at a
 * time in the unit tests and by the fuzzer.  This module does not reply,
 * log or decide policy: it reports what the bytes say.
 */
#include "config.h"

#include <string.h>

#include "limits_pst.h"
#include "smtpd_parse.h"
#include "str.h"

/* ---- command lines ---- */

void
smtpd_line_parser_init(struct smtpd_line_parser *p)
{
	linebuf_init(&p->lb);
	p->max = MAX_SMTP_LINE;
}

int
smtpd_line_parse(struct smtpd_line_parser *p, const char *data, size_t len,
    size_t *consumed_r, const char **line_r, size_t *line_len_r)
{
	return linebuf_parse(&p->lb, data, len,
	    p->max > 0 ? p->max : MAX_SMTP_LINE, consumed_r, line_r,
	    line_len_r);
}

int
smtpd_command_parse(char *line, size_t len, struct smtpd_command *cmd)
{
	size_t i;

	memset(cmd, 0, sizeof(*cmd));
	cmd->args = line + len;
	if (memchr(line, '\0', len) != NULL)
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] >= 0x80) {
			cmd->eight_bit = true;
			break;
		}
	cmd->utf8_valid = !cmd->eight_bit || str_utf8_valid(line, len);

	/* Leading white space is tolerated, as Postfix does. */
	linebuf_split_command(line, len, cmd->verb, sizeof(cmd->verb),
	    &cmd->verb_too_long, &cmd->args);
	return 0;
}

const char *
smtpd_parse_path_keyword(const char *args, const char *keyword)
{
	size_t i;

	for (i = 0; keyword[i] != '\0'; i++) {
		char c = args[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c != keyword[i])
			return NULL;
	}
	if (args[i] != ':')
		return NULL;
	return args + i + 1;
}

bool
smtpd_sasl_mech_valid(const char *mech)
{
	size_t i;

	for (i = 0; mech[i] != '\0'; i++) {
		char c = mech[i];

		if (i >= 20 || !((c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return false;
	}
	return i > 0;
}

/* ---- ESMTP parameters ---- */

static bool
is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

int
smtpd_params_parse(char *s, struct smtpd_param *params, size_t max)
{
	size_t n = 0;
	char *p = s;

	for (;;) {
		char *key, *val = NULL;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (n >= max)
			return -1;
		key = p;
		if (!is_alnum((unsigned char)*p))
			return -1;
		for (; *p != '\0' && *p != ' ' && *p != '='; p++) {
			if (!is_alnum((unsigned char)*p) && *p != '-')
				return -1;
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
		}
		if (*p == '=') {
			*p++ = '\0';
			val = p;
			for (; *p != '\0' && *p != ' '; p++) {
				unsigned char c = (unsigned char)*p;

				/* esmtp-value, RFC 5321 §4.1.2; UTF-8 per
				 * RFC 6531 §3.3 (validated by the caller). */
				if (c < 33 || c == '=' || c == 127)
					return -1;
			}
			if (p == val)
				return -1;
		}
		if (*p == ' ')
			*p++ = '\0';
		params[n].key = key;
		params[n].value = val;
		n++;
	}
	return (int)n;
}

static bool
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	    (c >= 'a' && c <= 'f');
}

bool
smtpd_xtext_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p == '+') {
			if (!is_hex(p[1]) || !is_hex(p[2]))
				return false;
			p += 2;
		} else if (*p < 33 || *p > 126 || *p == '=')
			return false;
	}
	return true;
}

int
smtpd_parse_number(const char *s, uint64_t max, uint64_t *val_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (d > max || v > (max - d) / 10)	/* UNSAFE: overflow */
			return -1;
		v = v * 10 + d;
	}
	*val_r = v;
	return 0;
}


/* ---- DATA decoder ---- */

void
smtpd_data_decoder_init(struct smtpd_data_decoder *d)
{
	d->state = SMTPD_DATA_BOL;
}

/*
 * Output helpers: the output buffer is unbounded (the caller drains it
 * after every call), so an append cannot fail.
 */
static void
out_c(struct buf *out, char c)
{
	(void)buf_append_char(out, c);
}

int
smtpd_data_decode(struct smtpd_data_decoder *d, const char *in, size_t len,
    size_t *consumed_r, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		char c = in[i];

		switch (d->state) {
		case SMTPD_DATA_TEXT: {
			/* Fast path: copy a run of ordinary bytes at once. */
			size_t j = i;

			while (j < len && in[j] != '\r' && in[j] != '\n')
				j++;
			if (j > i) {
				(void)buf_append(out, in + i, j - i);
				i = j;
				continue;
			}
			if (c == '\r')
				d->state = SMTPD_DATA_TEXT_CR;
			else {
				/* Bare LF: a line, but not a clean one. */
				out_c(out, '\n');
				d->state = SMTPD_DATA_BOL_LF;
			}
			break;
		}
		case SMTPD_DATA_TEXT_CR:
			if (c == '\n') {
				out_c(out, '\n');
				d->state = SMTPD_DATA_BOL;
			} else if (c == '\r')
				out_c(out, '\r');	/* the earlier CR */
			else {
				out_c(out, '\r');
				out_c(out, c);
				d->state = SMTPD_DATA_TEXT;
			}
			break;
		case SMTPD_DATA_BOL:
		case SMTPD_DATA_BOL_LF:
			if (c == '.')
				d->state = d->state == SMTPD_DATA_BOL ?
				    SMTPD_DATA_DOT : SMTPD_DATA_LFDOT;
			else if (c == '\r')
				d->state = SMTPD_DATA_TEXT_CR;
			else if (c == '\n') {
				out_c(out, '\n');
				d->state = SMTPD_DATA_BOL_LF;
			} else {
				out_c(out, c);
				d->state = SMTPD_DATA_TEXT;
			}
			break;
		case SMTPD_DATA_DOT:
		case SMTPD_DATA_LFDOT:
			if (c == '\r')
				d->state = d->state == SMTPD_DATA_DOT ?
				    SMTPD_DATA_DOT_CR : SMTPD_DATA_LFDOT_CR;
			else if (c == '\n') {
				/* ".<LF>" is content, never an end. */
				out_c(out, '.');
				out_c(out, '\n');
				d->state = SMTPD_DATA_BOL_LF;
			} else {
				/* RFC 5321 §4.5.2: drop the stuffed dot. */
				out_c(out, c);
				d->state = SMTPD_DATA_TEXT;
			}
			break;
		case SMTPD_DATA_DOT_CR:
			if (c == '\n') {
				/* <CR><LF>.<CR><LF>: the only end of data. */
				d->state = SMTPD_DATA_END;
				*consumed_r = i + 1;
				return 1;
			}
			/* ".<CR>x": a line with more than the dot. */
			out_c(out, '\r');
			if (c == '\r')
				d->state = SMTPD_DATA_TEXT_CR;
			else {
				out_c(out, c);
				d->state = SMTPD_DATA_TEXT;
			}
			break;
		case SMTPD_DATA_LFDOT_CR:
			if (c == '\n') {
				/* "<LF>.<CR><LF>": a dot line, content; it
				 * ends in CRLF, so the next line is clean. */
				out_c(out, '.');
				out_c(out, '\n');
				d->state = SMTPD_DATA_BOL;
				break;
			}
			out_c(out, '\r');
			if (c == '\r')
				d->state = SMTPD_DATA_TEXT_CR;
			else {
				out_c(out, c);
				d->state = SMTPD_DATA_TEXT;
			}
			break;
		case SMTPD_DATA_END:
			*consumed_r = i;
			return 1;
		}
		i++;
	}
	*consumed_r = len;
	return 0;
}

/* ---- BDAT decoder ---- */

void
smtpd_bdat_decoder_init(struct smtpd_bdat_decoder *d)
{
	d->pending_cr = false;
}

void
smtpd_bdat_decode(struct smtpd_bdat_decoder *d, const char *in, size_t len,
    struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		const char *cr;
		size_t run;

		if (d->pending_cr) {
			d->pending_cr = false;
			if (in[i] == '\n') {
				out_c(out, '\n');
				i++;
				continue;
			}
			out_c(out, '\r');
		}
		cr = memchr(in + i, '\r', len - i);
		run = cr == NULL ? len - i : (size_t)(cr - (in + i));
		(void)buf_append(out, in + i, run);
		i += run;
		if (i < len) {
			d->pending_cr = true;	/* in[i] is CR */
			i++;
		}
	}
}

void
smtpd_bdat_finish(struct smtpd_bdat_decoder *d, struct buf *out)
{
	if (d->pending_cr)
		out_c(out, '\r');
	d->pending_cr = false;
}

/* ---- message headers ---- */

bool
smtpd_header_name(const char *line, size_t len, size_t *name_len_r)
{
	size_t i, n;

	/* RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126 */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 33 || c > 126 || c == ':')
			break;
	}
	n = i;
	if (n == 0)
		return false;
	/* RFC 5322 §4.5: obsolete WSP between name and colon. */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i >= len || line[i] != ':')
		return false;
	*name_len_r = n;
	return true;
}
