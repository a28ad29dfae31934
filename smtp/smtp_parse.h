/*
 * smtp_parse: the pure parts of the outbound SMTP client (smtp.h): the
 * reply parser (RFC 5321 §4.2, multi-line replies), the EHLO keyword
 * parser (RFC 5321 §4.1.1.1 and the extensions the client uses), the
 * message encoder that turns a stored message (LF line ends) into the
 * bytes of DATA or BDAT, and the next-hop syntax of qmgr's requests.
 *
 * Nothing here touches a socket, a file, the configuration or a global:
 * bytes in, structures out, so that every function can be unit tested and
 * fuzzed.  Every input is bounded (SMTP_MAX_REPLY_*).
 */
#ifndef POSTERN_SMTP_PARSE_H
#define POSTERN_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* One reply line, CRLF excluded.  RFC 5321 §4.5.3.1.5 says 512; servers
 * are generous with text, so more is accepted. */
#define SMTP_MAX_REPLY_LINE	2048
/* Lines of one multi-line reply (an EHLO answer has a dozen). */
#define SMTP_MAX_REPLY_LINES	128
/* Bytes of reply text kept for logs and bounces (longer: clipped). */
#define SMTP_MAX_REPLY_TEXT	2048
/* SASL mechanisms remembered from the AUTH keyword. */
#define SMTP_MAX_AUTH_MECHS	16

struct smtp_reply {
	int		 code;		/* 200..599; 0: incomplete */
	char		 dsn[16];	/* "5.1.1" (first line) or "" */
	/* The lines as sent, codes included, joined by one space and
	 * clipped to SMTP_MAX_REPLY_TEXT: what Postfix logs ("550-5.1.1
	 * first line 550 5.1.1 second"). */
	struct buf	 text;
	/* Each line's text after "NNN-" (for EHLO keywords). */
	char		**lines;
	size_t		 nlines;
	bool		 done;
};

void	smtp_reply_init(struct smtp_reply *r);
void	smtp_reply_reset(struct smtp_reply *r);
void	smtp_reply_free(struct smtp_reply *r);
/*
 * Add one line (without CRLF) of a reply.  Returns 1 when the reply is
 * complete (the line had a space or nothing after the code), 0 when more
 * lines follow, -1 when the line is malformed (not three digits 2xx..5xx,
 * a code that differs from the first line's, a NUL byte, too many lines);
 * *why_r then says what was wrong.  Lines longer than
 * SMTP_MAX_REPLY_LINE are the caller's to refuse (smtp_conn reads them).
 */
int	smtp_reply_add_line(struct smtp_reply *r, const char *line,
	    size_t len, const char **why_r);
/* "4.0.0"-style code for a reply without an enhanced status code. */
const char *smtp_reply_dsn(const struct smtp_reply *r);

/* What the server announced in its EHLO reply. */
#define SMTP_FEAT_PIPELINING	0x001
#define SMTP_FEAT_SIZE		0x002
#define SMTP_FEAT_8BITMIME	0x004
#define SMTP_FEAT_SMTPUTF8	0x008
#define SMTP_FEAT_DSN		0x010
#define SMTP_FEAT_CHUNKING	0x020
#define SMTP_FEAT_STARTTLS	0x040
#define SMTP_FEAT_AUTH		0x080
#define SMTP_FEAT_ENHANCED	0x100

struct smtp_features {
	unsigned	 flags;
	unsigned long long size_max;	/* SIZE n; 0 = no limit given */
	char		*auth[SMTP_MAX_AUTH_MECHS];	/* upper case */
	size_t		 nauth;
	char		 name[256];	/* the server's name */
};

void	smtp_features_free(struct smtp_features *f);
/*
 * Fill f from a complete 250 reply to EHLO.  Unknown keywords are
 * ignored; "AUTH=LOGIN PLAIN" (the pre-RFC form) counts like AUTH.
 */
void	smtp_features_parse(struct smtp_features *f,
	    const struct smtp_reply *r);
bool	smtp_features_has_auth(const struct smtp_features *f,
	    const char *mech);

/*
 * The message encoder.  A stored message has LF line ends and may hold
 * bare CR bytes (smtpd keeps them as content).  On the wire every line
 * ends in CRLF and no CR or LF appears on its own (no SMTP smuggling:
 * a receiver that took a bare CR or LF for a line end could otherwise see
 * an end of data we did not send):
 *
 *   LF            -> CR LF
 *   CR LF         -> CR LF      (one line end, not two)
 *   CR otherwise  -> SP         (as Postfix's cleanup_replace_stray_cr_lf)
 *
 * In DATA mode a line starting with '.' gets another one (RFC 5321
 * §4.5.2), and smtp_enc_finish() appends CRLF when the message did not
 * end with a line end, then ".\r\n".  In BDAT mode (RFC 3030) nothing is
 * stuffed and no terminator is added, but the last line still ends in
 * CRLF.
 */
struct smtp_enc {
	bool	 dot;		/* DATA: dot-stuffing, terminator */
	bool	 bol;		/* at the beginning of a line */
	bool	 cr;		/* a CR is pending (LF may follow) */
};

void	smtp_enc_init(struct smtp_enc *e, bool data_mode);
/* Encode len bytes of the stored message, appending to out. */
void	smtp_enc_feed(struct smtp_enc *e, const char *in, size_t len,
	    struct buf *out);
/* After the last byte: the pending CR, the last line end, the ".". */
void	smtp_enc_finish(struct smtp_enc *e, struct buf *out);

/*
 * A streaming quoted-printable encoder (RFC 2045 §6.7) for the 8BITMIME
 * downgrade (RFC 6152 §3): the body of a text part with LF (or CR LF)
 * line ends in, the same lines encoded out, with LF line ends (the
 * message encoder above makes them CRLF).  Printable ASCII but '=' is
 * kept; other bytes become =XX; a space or tab is kept unless it ends a
 * line (rule 3); lines longer than 76 characters get soft breaks (rule
 * 5).  A CR not followed by LF is content (=0D).  Feeding in pieces of any
 * size gives the same output.
 */
struct smtp_qp {
	unsigned	 col;		/* characters on the output line */
	int		 ws;		/* a held space or tab, or -1 */
	bool		 cr;		/* a CR is held (LF may follow) */
};

void	smtp_qp_init(struct smtp_qp *q);
void	smtp_qp_feed(struct smtp_qp *q, const char *in, size_t len,
	    struct buf *out);
/* After the last byte: the held CR and white space, encoded.  No line
 * end is added (the body of a MIME part ends where its boundary line's
 * CRLF begins). */
void	smtp_qp_finish(struct smtp_qp *q, struct buf *out);

/*
 * A next hop as qmgr gives it (doc/internals.md "Delivery: qmgr ->
 * smtp"): "example.com", "example.com:2525", "[mx.example.com]",
 * "[192.0.2.1]:587", "[2001:db8::1]:25".  Brackets mean no MX lookup.
 * Port names "smtp" (25) and "submission" (587) are understood too.
 * Returns 0 and fills host (without brackets, at most hostsize-1 bytes),
 * *port_r (25 when not given) and *mx_r (MX lookup wanted), or -1.
 */
int	smtp_nexthop_parse(const char *nexthop, char *host, size_t hostsize,
	    unsigned *port_r, bool *mx_r);

#endif
