/*
 * mime: RFC 5322 / MIME (RFC 2045, 2046, 2047, 2231) parsing for IMAP
 * FETCH and SEARCH (DESIGN §6, §12 "One pass over message bytes").
 *
 * Three layers, three files:
 *
 *   mime.c         A streaming parser: message bytes go in, in chunks of
 *                  any size, and a tree of parts comes out.  The parser
 *                  keeps no message body, only offsets, line counts and
 *                  the few header fields IMAP needs, so a 50 MB message
 *                  costs the same memory as a small one.  Renders IMAP's
 *                  ENVELOPE and BODY/BODYSTRUCTURE (RFC 3501 §7.4.2) and
 *                  resolves BODY[section] part numbers (RFC 3501 §6.4.5).
 *   mime_header.c  Header blocks held in memory: field iteration, raw
 *                  values, HEADER.FIELDS[.NOT] subsetting, Content-Type
 *                  and Content-Disposition with RFC 2231 parameters,
 *                  address lists, dates.
 *   mime_decode.c  What SEARCH needs: charsets to UTF-8 (built in for
 *                  UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and
 *                  Windows-1252; glibc iconv for the rest), RFC 2047
 *                  encoded words, base64 and quoted-printable bodies, and
 *                  a case-insensitive UTF-8 substring matcher.
 *
 * Malformed input never fails: it degrades the way IMAP servers commonly
 * do (a multipart without boundary or without any part is a text/plain
 * part, an unknown charset is read as UTF-8 with Windows-1252 for the
 * bytes that are not UTF-8, a header without blank line ends at the end
 * of the message or at the next boundary).  Every count and size is
 * bounded by the MAX_MIME_* limits below; what passes a limit is ignored,
 * never kept.
 *
 * What this module does not do: it does not read mailboxes (store/ hands
 * it the bytes), does not cache (the store's cache keeps rendered
 * strings), and does not send anything: rendering appends to a struct buf.
 *
 * Offsets.  Every part has a raw range (offsets into the bytes the parser
 * was fed) and a virtual range: the same bytes as an IMAP client sees
 * them, where a bare LF counts as CRLF (2 bytes).  For input that already
 * has CRLF line ends both are equal.  A bare CR is one byte in both.
 * Sizes in BODYSTRUCTURE and the ranges of BODY[section] are virtual.
 */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;

/* Nesting of multiparts and message/rfc822 parts; the top message is at
 * depth 0.  A multipart or message/rfc822 deeper than this is a leaf
 * (application/octet-stream). */
#define MAX_MIME_DEPTH		20
/* Parts in one message, the message itself included.  Further
 * delimiters only extend the enclosing multipart's body. */
#define MAX_MIME_PARTS		1000
/* Bytes of one unfolded header field kept for parsing; the rest of a
 * longer field is ignored. */
#define MAX_MIME_FIELD		(64 * 1024)
/* Header fields looked at in one header block; later fields still belong
 * to the header (offsets) but are not parsed. */
#define MAX_MIME_FIELDS		1000
/* Parameters of one Content-Type or Content-Disposition field (RFC 2231
 * continuations count one each before they are joined). */
#define MAX_MIME_PARAMS		64
/* RFC 2046 §5.1.1 allows 70; a longer boundary is ignored. */
#define MAX_MIME_BOUNDARY	200
/* Bytes of header values the parser keeps for one message (all parts);
 * fields past it are ignored. */
#define MAX_MIME_KEPT		(2 * 1024 * 1024)
/* Addresses in one address list; later ones are dropped. */
#define MAX_MIME_ADDRESSES	5000
/* Language tags of one Content-Language field. */
#define MAX_MIME_LANGUAGES	32

/* ------------------------------------------------------------------ */
/* Part tree                                                           */

enum mime_encoding {
	MIME_ENC_7BIT,		/* also the default and unknown tokens */
	MIME_ENC_8BIT,
	MIME_ENC_BINARY,
	MIME_ENC_BASE64,
	MIME_ENC_QP,		/* quoted-printable */
};

/* A byte range of the message: raw and as the client sees it. */
struct mime_range {
	uint64_t	off;	/* raw offset in the parsed input */
	uint64_t	len;	/* raw length */
	uint64_t	voff;	/* offset with CRLF line ends */
	uint64_t	vlen;	/* length with CRLF line ends */
};

/*
 * A parameter as IMAP shows it (RFC 3501 body-fld-param).  RFC 2231
 * continuations are joined: "title*0*=us-ascii'en'This%20is; title*1=
 * \" a test\"" becomes name "title*", value "us-ascii'en'This%20is%20a%20
 * test", extended true.  mime_param_decode() gives the UTF-8 text.
 */
struct mime_param {
	char	*name;
	char	*value;
	bool	 extended;	/* value is charset'language'%-encoded */
};

/* The fields of an RFC 5322 header that ENVELOPE shows, raw (unfolded,
 * outer white space removed); NULL when absent (RFC 3501 §7.4.2). */
struct mime_envelope {
	char	*date;
	char	*subject;
	char	*from;
	char	*sender;
	char	*reply_to;
	char	*to;
	char	*cc;
	char	*bcc;
	char	*in_reply_to;
	char	*message_id;
};

#define MIME_PART_MULTIPART	0x01	/* children are the body parts */
#define MIME_PART_MESSAGE	0x02	/* message/rfc822: one child, the
					   encapsulated message */
#define MIME_PART_TEXT		0x04	/* type "text" */
#define MIME_PART_HAS_CTYPE	0x08	/* a usable Content-Type field */
#define MIME_PART_EOH		0x10	/* header ends with a blank line */
#define MIME_PART_DEGRADED	0x20	/* type replaced: broken multipart,
					   or a limit was reached */

/*
 * One part.  The top message is a part whose header is the message
 * header; a message/rfc822 part has one child whose header is the
 * encapsulated message's header.  Strings are NUL-terminated (a NUL byte
 * of the header became '?'), raw as in the header (unfolded, outer white
 * space removed, RFC 2047 words not decoded), NULL when absent.  The tree
 * owns everything; it lives until mime_part_free().
 */
struct mime_part {
	struct mime_part	*parent;
	struct mime_part	*children;	/* first child */
	struct mime_part	*next;		/* next sibling */
	unsigned int		 depth;		/* top message 0 */
	unsigned int		 flags;		/* MIME_PART_* */

	struct mime_range	 header;	/* with the blank line */
	struct mime_range	 body;
	uint64_t		 lines;		/* line ends in the body */

	/* Content-Type, defaulted as RFC 2045 §5.2 and RFC 2046 §5.1.5
	 * say; never NULL. */
	char			*type;
	char			*subtype;
	struct mime_param	*params;
	size_t			 nparams;

	enum mime_encoding	 encoding;
	char			*encoding_name;	/* NULL: none given */
	char			*id;
	char			*description;
	char			*md5;
	char			*location;
	char			*disposition;	/* the type */
	struct mime_param	*disp_params;
	size_t			 ndisp_params;
	char			**languages;	/* NULL-terminated, or NULL */

	/* The message header of the top part and of a message/rfc822
	 * part's child; NULL for other parts. */
	struct mime_envelope	*envelope;
};

/*
 * Streaming parser.  Feed the message in chunks of any size (one byte at
 * a time gives the same tree as the whole message at once), then finish.
 * Never fails; memory is bounded by the limits above whatever the input.
 */
struct mime_parser;

struct mime_parser *mime_parser_new(void);
void	mime_parser_feed(struct mime_parser *p, const void *data,
	    size_t len);
/* End of input: returns the tree (owned by the caller) and frees the
 * parser; *pp becomes NULL. */
struct mime_part *mime_parser_finish(struct mime_parser **pp);
/* Free a parser without taking its tree (error paths). */
void	mime_parser_free(struct mime_parser **pp);

/* The whole message in memory. */
struct mime_part *mime_parse(const void *data, size_t len);
/*
 * Read fd from its current position to EOF and parse what was read.
 * Returns 0 and *root_r, or -1 with *error_r (a strerror() text) when
 * read() fails.
 */
int	mime_parse_fd(int fd, struct mime_part **root_r,
	    const char **error_r);
/* Free a tree from its top part; *rootp becomes NULL. */
void	mime_part_free(struct mime_part **rootp);

/* Value of parameter name (case-insensitive; "name*" extended forms
 * are found by their base name); NULL when absent.  Borrowed from the
 * part. */
const struct mime_param *mime_param_find(const struct mime_param *params,
	    size_t n, const char *name);
/* The charset parameter of a part, "us-ascii" when there is none. */
const char *mime_part_charset(const struct mime_part *part);
/*
 * Attachment file name as UTF-8: Content-Disposition filename, else
 * Content-Type name (RFC 2231 and RFC 2047 decoded).  Returns 1 and
 * appends to out, 0 when there is none, -1 when out's maximum is passed.
 */
int	mime_part_filename(const struct mime_part *part, struct buf *out);

/* ------------------------------------------------------------------ */
/* IMAP rendering (RFC 3501 §7.4.2, §9 formal syntax)                  */

/*
 * Append BODYSTRUCTURE (extended true) or BODY (extended false) of part
 * (usually the top one) to out, e.g. ("text" "plain" ("charset"
 * "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL).  Strings are quoted
 * when they can be, literals {n}CRLF otherwise.  Returns 0, or -1 when
 * out's maximum is passed (out then holds a partial rendering).
 */
int	mime_render_bodystructure(const struct mime_part *part,
	    bool extended, struct buf *out);
/*
 * Append ENVELOPE of msg: the top part or the child of a message/rfc822
 * part (a part without envelope renders as all NIL).  Sender and
 * Reply-To default to From as RFC 3501 says.  Returns 0 or -1 as above.
 */
int	mime_render_envelope(const struct mime_part *msg, struct buf *out);
/* Append s as an IMAP string (quoted or literal), or NIL when s is
 * NULL.  Returns 0 or -1 as above. */
int	mime_imap_nstring(struct buf *out, const char *s);
/* Append an RFC 5322 address list (raw field value) as an IMAP address
 * list "((name adl mailbox host)...)" or NIL when it holds no address. */
int	mime_render_addresses(struct buf *out, const char *value,
	    size_t len);

/* ------------------------------------------------------------------ */
/* BODY[section] (RFC 3501 §6.4.5)                                     */

enum mime_section_kind {
	MIME_SECTION_ALL,		/* BODY[]: header and body */
	MIME_SECTION_HEADER,		/* HEADER */
	MIME_SECTION_HEADER_FIELDS,	/* HEADER.FIELDS (list not here) */
	MIME_SECTION_HEADER_FIELDS_NOT,	/* HEADER.FIELDS.NOT */
	MIME_SECTION_TEXT,		/* TEXT */
	MIME_SECTION_MIME,		/* n.MIME */
	MIME_SECTION_PART,		/* n: the part's body */
};

struct mime_section {
	enum mime_section_kind	 kind;
	const struct mime_part	*part;	/* the part the range belongs to */
	/* The bytes to send; for HEADER.FIELDS[.NOT] the header block to
	 * give mime_header_fields(). */
	struct mime_range	 range;
};

/*
 * Resolve a section-spec without its header list: "", "HEADER", "TEXT",
 * "HEADER.FIELDS", "HEADER.FIELDS.NOT", "1", "1.2", "1.2.MIME",
 * "3.HEADER", "3.TEXT", "3.HEADER.FIELDS[.NOT]" (keywords in any case).
 * Returns 1 and *sec_r; 0 when the syntax is valid but the message has
 * no such part (HEADER of a part that is not message/rfc822, a part
 * number past the last, MIME without part number...: the server answers
 * with an empty string); -1 when the syntax is invalid (BAD).
 */
int	mime_section_find(const struct mime_part *root, const char *spec,
	    struct mime_section *sec_r);

/* ------------------------------------------------------------------ */
/* Header blocks in memory (mime_header.c)                             */

/* One field of a header block; pointers into the block. */
struct mime_field {
	const char	*name;		/* without trailing white space */
	size_t		 name_len;
	const char	*value;		/* after ':', folded, no final EOL */
	size_t		 value_len;
	const char	*raw;		/* the whole field with its EOL(s) */
	size_t		 raw_len;
};

/*
 * Iterate over the fields of hdr[0..len): start with *pos = 0.  Returns
 * 1 with *f_r, or 0 at the blank line or at the end.  A line without ':'
 * is a field whose name is the whole line and whose value is empty.
 */
int	mime_header_next(const char *hdr, size_t len, size_t *pos,
	    struct mime_field *f_r);
/* Append value unfolded (RFC 5322 §2.2.3: CRLF/LF before white space
 * removed) with outer white space trimmed.  0, or -1 past out's max. */
int	mime_field_unfold(const char *value, size_t len, struct buf *out);
/*
 * Append the unfolded value of occurrence idx (0 = first) of field name
 * (case-insensitive).  Returns 1, 0 when there is no such occurrence,
 * -1 when out's maximum is passed.
 */
int	mime_header_get(const char *hdr, size_t len, const char *name,
	    size_t idx, struct buf *out);
/* Every occurrence of name, unfolded: a NULL-terminated string vector
 * (strv_free() it; NULs became '?'); returns the count. */
size_t	mime_header_get_all(const char *hdr, size_t len, const char *name,
	    char ***values_r);
/*
 * HEADER.FIELDS (negate false) or HEADER.FIELDS.NOT (negate true): the
 * fields of hdr whose name matches (case-insensitively, exactly) one of
 * names[0..n), or none of them, as they are (folding kept) with CRLF
 * line ends, then the blank line CRLF when hdr has one (RFC 3501
 * §6.4.5: the blank line is part of every header fetch, except for a
 * message without body and without blank line).  0, or -1 past max.
 */
int	mime_header_fields(const char *hdr, size_t len,
	    const char *const *names, size_t n, bool negate,
	    struct buf *out);

/*
 * Content-Type (with_subtype true) or Content-Disposition (false) field
 * value.  Returns 0 and fills the outputs (free with mime_params_free()
 * and free()), or -1 when the type (and subtype) are not valid tokens
 * (RFC 2045 §5.1; the caller then uses the defaults).  Comments are
 * removed, RFC 2231 continuations joined (see struct mime_param); at
 * most MAX_MIME_PARAMS parameters are read.  Type and subtype are as
 * written.
 */
int	mime_content_parse(const char *value, size_t len, bool with_subtype,
	    char **type_r, char **subtype_r, struct mime_param **params_r,
	    size_t *nparams_r);
void	mime_params_free(struct mime_param **params, size_t n);
/* Decoded value of a parameter as UTF-8 (RFC 2231 charset'lang'%XX, or
 * RFC 2047 words in a plain value).  0, or -1 past out's max. */
int	mime_param_decode(const struct mime_param *p, struct buf *out);

/*
 * One address of an RFC 5322 address list as ENVELOPE shows it: a
 * mailbox has host set; a group start has host NULL and mailbox the group
 * name; a group end has mailbox and host NULL.  Quoting removed (RFC 3501
 * errata: addr-name and addr-mailbox without RFC 5322 quoting), encoded
 * words kept.  A missing local part is "MISSING_MAILBOX", a missing
 * domain "MISSING_DOMAIN".
 */
struct mime_address {
	char	*name;		/* display name or comment, or NULL */
	char	*route;		/* "@a,@b" obsolete source route, or NULL */
	char	*mailbox;
	char	*host;
};

/* Parse an address list (at most MAX_MIME_ADDRESSES); returns the count
 * (0 for nothing usable) and *list_r (free with mime_addresses_free). */
size_t	mime_address_parse(const char *value, size_t len,
	    struct mime_address **list_r);
void	mime_addresses_free(struct mime_address **list, size_t n);

/*
 * RFC 5322 §3.3 date-time, with the obsolete forms of §4.3 (two- and
 * three-digit years, alphabetic and military zones, comments anywhere,
 * missing seconds and day name) and the asctime() order some programs
 * write ("Mon Jan  2 15:04:05 2006").  A missing zone is +0000.  Returns
 * 0 with *t_r (UTC) and *tz_r (zone offset in minutes; the date as
 * written, which SENTBEFORE and friends compare, is the UTC date of
 * *t_r + *tz_r * 60), or -1.
 */
int	mime_date_parse(const char *s, size_t len, time_t *t_r, int *tz_r);

/* ------------------------------------------------------------------ */
/* Decoding for SEARCH (mime_decode.c); all output is valid UTF-8.     */

/*
 * A streaming converter from a charset to UTF-8.  Unknown or unusable
 * charset names are read as UTF-8 where the bytes are UTF-8 and as
 * Windows-1252 elsewhere; bytes invalid in a known charset become
 * U+FFFD.  A character split between two feeds is kept for the next.
 */
struct mime_charset;

struct mime_charset *mime_charset_new(const char *charset);
/* 0, or -1 when out's maximum is passed (bytes may be lost then). */
int	mime_charset_feed(struct mime_charset *cs, const void *data,
	    size_t len, struct buf *out);
/* Flush an incomplete trailing character (as U+FFFD); the converter can
 * be fed again afterwards. */
int	mime_charset_finish(struct mime_charset *cs, struct buf *out);
void	mime_charset_free(struct mime_charset **csp);
/* Whether the charset is one this module converts (built in or iconv);
 * for SEARCH CHARSET and [BADCHARSET] (RFC 3501 §6.4.4). */
bool	mime_charset_known(const char *charset);
/* One-shot conversion. */
int	mime_charset_to_utf8(const char *charset, const void *data,
	    size_t len, struct buf *out);

/*
 * Decode a header value (folded or not) to UTF-8: RFC 2047 encoded words
 * (B and Q, "charset*lang" allowed) are decoded, white space between two
 * adjacent encoded words is dropped (RFC 2047 §6.2), other text is kept
 * (8-bit text read as UTF-8, else Windows-1252).  0, or -1 past max.
 */
int	mime_decode_words(const char *s, size_t len, struct buf *out);

/*
 * A streaming body decoder for SEARCH: content transfer decoding (base64,
 * quoted-printable; other encodings pass unchanged) then charset to
 * UTF-8.  charset NULL gives the transfer-decoded bytes unconverted.
 */
struct mime_body_decoder;

struct mime_body_decoder *mime_body_decoder_new(enum mime_encoding enc,
	    const char *charset);
/* Append what data decodes to; 0, or -1 past out's maximum. */
int	mime_body_decoder_feed(struct mime_body_decoder *d, const void *data,
	    size_t len, struct buf *out);
int	mime_body_decoder_finish(struct mime_body_decoder *d,
	    struct buf *out);
void	mime_body_decoder_free(struct mime_body_decoder **dp);
/* Content-Transfer-Encoding token to enum (unknown: MIME_ENC_7BIT). */
enum mime_encoding mime_encoding_parse(const char *name);

/*
 * Case folding for SEARCH (RFC 3501 §6.4.4 says substring matching is
 * case-insensitive): ASCII, plus the simple folding of Latin-1, Latin
 * Extended-A and Additional, Greek, Cyrillic, Armenian and fullwidth
 * Latin.  Invalid UTF-8 bytes become U+FFFD.  0, or -1 past max.
 */
int	mime_fold_utf8(const char *s, size_t len, struct buf *out);

/*
 * A substring matcher fed text in pieces (a body as it is decoded):
 * needle and text are UTF-8, compared after mime_fold_utf8().  The match
 * may span feeds.  Once found, stays found until reset.
 */
struct mime_search;

struct mime_search *mime_search_new(const char *needle, size_t len);
/* Returns true when the needle has been found so far. */
bool	mime_search_feed(struct mime_search *s, const char *text,
	    size_t len);
void	mime_search_reset(struct mime_search *s);
void	mime_search_free(struct mime_search **sp);
/* One-shot: whether needle occurs in hay (both UTF-8). */
bool	mime_search_contains(const char *hay, size_t hay_len,
	    const char *needle, size_t needle_len);

#endif
