/*
 * smtpd_parse: the pure parsers of the SMTP server.  Bytes in, tokens out;
 * no sockets, no configuration, no globals, and every parser resumable when
 * input arrives in pieces (STYLE §1, §7):
 *
 *   - command line extraction with the MAX_SMTP_LINE bound;
 *   - verb / argument split of one command line;
 *   - ESMTP parameter lists (KEY=VALUE) and the RFC 3461 xtext check;
 *   - the DATA decoder: dot-unstuffing, CRLF -> LF, end-of-data detection
 *     that only accepts <CR><LF>.<CR><LF> (no SMTP smuggling, DESIGN §9);
 *   - the BDAT decoder (RFC 3030): CRLF -> LF across chunk boundaries;
 *   - recognition of an RFC 5322 header field name.
 *
 * Return convention (STYLE §4): -1 error, 0 need more input, 1 done.
 */
#ifndef POSTERN_SMTPD_PARSE_H
#define POSTERN_SMTPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "linebuf.h"

/* ---- command lines ---- */

struct smtpd_line_parser {
	struct linebuf lb;
	size_t	max;		/* longest line, terminator included */
};

/* max starts as MAX_SMTP_LINE; the caller may change it between lines. */
void	smtpd_line_parser_init(struct smtpd_line_parser *p);

/*
 * Find the next command line in data[0..len): linebuf_parse() with
 * p->max as the bound (common/linebuf.h has the return values).  On -1
 * the caller answers "500 5.5.2 Error: line too long" once.
 */
int	smtpd_line_parse(struct smtpd_line_parser *p, const char *data,
	    size_t len, size_t *consumed_r, const char **line_r,
	    size_t *line_len_r);

#define SMTPD_VERB_MAX	16

struct smtpd_command {
	char	 verb[SMTPD_VERB_MAX];	/* upper case; "" if none */
	char	*args;		/* in the line, trimmed, never NULL */
	bool	 verb_too_long;	/* unknown command then */
	bool	 eight_bit;	/* a byte >= 0x80 in the line */
	bool	 utf8_valid;	/* the line is well-formed UTF-8 */
};

/*
 * Split a command line (NUL-terminated copy in a writable buffer, len
 * bytes before the terminator; the buffer is modified) into verb and
 * arguments.  Returns 0, or -1 when the line holds a NUL byte.
 */
int	smtpd_command_parse(char *line, size_t len,
	    struct smtpd_command *cmd);

/*
 * "FROM:<a> ..." / "TO:<a> ...": check the keyword (case-insensitive) and
 * its colon; returns the text after the colon, or NULL.  Spaces between
 * keyword and colon are not allowed, after the colon they are (Postfix).
 */
const char *smtpd_parse_path_keyword(const char *args, const char *keyword);

/*
 * RFC 4422 §3.1 mechanism name: 1 to 20 characters of upper-case letters
 * (lower case accepted here: SMTP verbs and arguments are
 * case-insensitive), digits, "-" and "_".
 */
bool	smtpd_sasl_mech_valid(const char *mech);

/* ---- ESMTP parameters (RFC 5321 §4.1.2 esmtp-param) ---- */

#define SMTPD_MAX_PARAMS	16

struct smtpd_param {
	char	*key;		/* upper-cased in place */
	char	*value;		/* NULL when no "=VALUE" was given */
};

/*
 * Parse "KEY=VALUE KEY2 ..." in place (s is modified).  Keys are
 * esmtp-keyword (ALPHA/DIGIT then ALPHA/DIGIT/"-"); values are 1*(%d33-60 /
 * %d62-126) plus UTF-8 (RFC 6531 §3.3).  Returns the number of parameters
 * (0..SMTPD_MAX_PARAMS), or -1 on bad syntax or too many.
 */
int	smtpd_params_parse(char *s, struct smtpd_param *params, size_t max);

/* RFC 3461 §4: xtext (+HH with upper or lower case hex accepted). */
bool	smtpd_xtext_valid(const char *s);

/* Whole string of decimal digits, no overflow, <= max.  0 or -1. */
int	smtpd_parse_number(const char *s, uint64_t max, uint64_t *val_r);


/* ---- DATA decoder ---- */

enum smtpd_data_state {
	SMTPD_DATA_BOL = 0,	/* line start after CRLF, or first line */
	SMTPD_DATA_BOL_LF,	/* line start after a bare LF */
	SMTPD_DATA_TEXT,	/* inside a line */
	SMTPD_DATA_TEXT_CR,	/* inside a line, CR seen */
	SMTPD_DATA_DOT,		/* "." at a clean line start */
	SMTPD_DATA_DOT_CR,	/* ".\r" at a clean line start */
	SMTPD_DATA_LFDOT,	/* "." at a line start after bare LF */
	SMTPD_DATA_LFDOT_CR,	/* ".\r" at a line start after bare LF */
	SMTPD_DATA_END		/* end of data seen */
};

struct smtpd_data_decoder {
	enum smtpd_data_state state;
};

void	smtpd_data_decoder_init(struct smtpd_data_decoder *d);

/*
 * Decode DATA input (RFC 5321 §4.1.4, §4.5.2): message bytes with LF line
 * ends are appended to out.  The end of data is only <CR><LF>.<CR><LF>,
 * where the first CRLF may be the start of the data; a line ending in a
 * bare LF is stored as a line but never starts or ends the end sequence,
 * and a bare CR is kept as it is (DESIGN §9).  A leading dot is removed
 * from a line that has other characters (dot-unstuffing).
 *
 * Returns 1 when the end was found (*consumed_r = bytes used up to and
 * including the final LF; the rest belongs to the next command), else 0
 * with *consumed_r = len.
 */
int	smtpd_data_decode(struct smtpd_data_decoder *d, const char *in,
	    size_t len, size_t *consumed_r, struct buf *out);

/* ---- BDAT decoder (RFC 3030) ---- */

struct smtpd_bdat_decoder {
	bool	pending_cr;	/* chunk ended in CR: LF may follow */
};

void	smtpd_bdat_decoder_init(struct smtpd_bdat_decoder *d);
/* CRLF -> LF, also when the pair is split between chunks. */
void	smtpd_bdat_decode(struct smtpd_bdat_decoder *d, const char *in,
	    size_t len, struct buf *out);
/* After the LAST chunk: a CR still pending is content. */
void	smtpd_bdat_finish(struct smtpd_bdat_decoder *d, struct buf *out);

/* ---- message headers ---- */

/*
 * If line (len bytes, LF excluded) starts an RFC 5322 header field
 * ("Name:", obsolete white space before the colon allowed), return true
 * and the length of the name.
 */
bool	smtpd_header_name(const char *line, size_t len, size_t *name_len_r);

#endif
