/*
 * pop3_parse: the pure parsers of the POP3 server, shared by pop3-login
 * and the pop3 mail process.  Bytes in, tokens out; no sockets, no
 * configuration, no globals, every parser resumable when input arrives
 * in pieces (STYLE §1, §7):
 *
 *   - keyword / argument split of one command line (RFC 2449 §3);
 *   - message numbers and line counts, overflow-checked;
 *   - the multi-line response encoder: byte-stuffing, CRLF line ends,
 *     and the header/body line counting of TOP (RFC 1939 §3, §7);
 *   - expansion of pop3_uidl_format (Dovecot's %u/%v variables with
 *     width, offset and hex modifiers) and of pop3_logout_format.
 *
 * Command lines are split by common/linebuf.h, with POP3_MAX_LINE.
 *
 * Return convention (STYLE §4): -1 error, 0 need more input, 1 done.
 */
#ifndef POSTERN_POP3_PARSE_H
#define POSTERN_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * Longest command line the mail process accepts, CRLF included.  RFC
 * 2449 §4 allows 255 octets; clients that send a little more (long user
 * names in logs, sloppy SASL) are tolerated up to this.
 */
#define POP3_MAX_LINE		2048
/* Longest keyword; RFC 2449 §3 keywords are 3 or 4 characters. */
#define POP3_KEYWORD_MAX	16
/* Longest pop3_uidl_format result for one message. */
#define POP3_MAX_UIDL		70
/* Longest user name accepted by USER (RFC 1939 gives no limit). */
#define POP3_MAX_USER		255

/* ---- command lines ---- */

struct pop3_command {
	char	 keyword[POP3_KEYWORD_MAX];	/* upper case; "" if none */
	char	*args;		/* in the line, trimmed, never NULL */
	bool	 keyword_too_long;
};

/*
 * Split a command line (a writable NUL-terminated copy of len bytes;
 * modified) into keyword and arguments.  Keywords are case-insensitive
 * (RFC 1939 §3).  Returns 0, or -1 when the line holds a NUL byte.
 */
int	pop3_command_parse(char *line, size_t len, struct pop3_command *cmd);

/*
 * Split args in place at spaces into at most max words.  Returns the
 * number of words, or -1 when there are more than max.
 */
int	pop3_args_split(char *args, char **argv, int max);

/*
 * A message number (RFC 1939 §3: msg, 1*DIGIT, no sign): decimal digits
 * only, no overflow, at least 1.  0 and *num_r, or -1.
 */
int	pop3_parse_msgnum(const char *s, uint32_t *num_r);
/* A line count for TOP: decimal digits, 0 allowed.  0 or -1. */
int	pop3_parse_count(const char *s, uint64_t *count_r);

/* ---- multi-line responses ---- */

/*
 * Turns message bytes into the body of a multi-line response (RFC 1939
 * §3): every line ends in CRLF (a bare LF becomes CRLF; a CR not followed
 * by LF is content), a line starting with "." gets one more, and TOP
 * stops after the header, the empty line and the given number of body
 * lines (RFC 1939 §7).  Resumable: the message may come in any pieces.
 */
struct pop3_stuffer {
	bool	 bol;		/* at the start of a line */
	bool	 pending_cr;	/* a CR whose successor is not seen yet */
	bool	 line_empty;	/* the current line has no content yet */
	bool	 in_body;	/* the empty line after the header passed */
	bool	 limited;	/* TOP: body_left counts */
	bool	 done;		/* TOP limit reached: ignore the rest */
	uint64_t body_left;	/* body lines still to send */
};

/* top_lines: body lines to send, or -1 for the whole message (RETR). */
void	pop3_stuffer_init(struct pop3_stuffer *st, int64_t top_lines);
/*
 * Encode len bytes into out.  Returns true when the TOP limit was
 * reached (the rest of the message is not needed); then st->done is set
 * and further input is ignored.
 */
bool	pop3_stuff(struct pop3_stuffer *st, const char *in, size_t len,
	    struct buf *out);
/* End the response: a CRLF if the last line had none, then ".\r\n". */
void	pop3_stuff_finish(struct pop3_stuffer *st, struct buf *out);

/* ---- pop3_uidl_format ---- */

/*
 * Check a pop3_uidl_format value: the variables Postern can give are %u
 * / %{uid} (the IMAP UID) and %v / %{uidvalidity}, with Dovecot's
 * [-][0]WIDTH[.[0][-]WIDTH] offset/width prefix and the L, U and X
 * modifiers (X: the decimal value as lower-case hex, so the default
 * "%08Xu%08Xv" gives exactly Dovecot's UIDLs).  %% is a percent sign.
 * Every UIDL must be 1..70 printable characters (RFC 1939 §7), so the
 * format must produce at least one character and only "!".."~".
 * Returns 0, or -1 with a static message in *error_r.
 */
int	pop3_uidl_format_check(const char *fmt, const char **error_r);
/*
 * Append the UIDL of one message to out.  fmt must have passed
 * pop3_uidl_format_check(); the result is clipped to POP3_MAX_UIDL.
 */
void	pop3_uidl_expand(struct buf *out, const char *fmt, uint32_t uid,
	    uint32_t uidvalidity);

/* ---- pop3_logout_format ---- */

/* What the pop3 process knows at logout (Dovecot's variables). */
struct pop3_logout_stats {
	uint64_t	top_count, top_bytes;		/* %t %p */
	uint64_t	retr_count, retr_bytes;		/* %r %b */
	uint64_t	deleted_count;			/* %d */
	uint64_t	deleted_bytes;			/* %{deleted_bytes} */
	uint64_t	message_count, message_bytes;	/* %m %s */
	uint64_t	input, output;			/* %i %o */
};

/* Dovecot's default pop3_logout_format. */
#define POP3_LOGOUT_FORMAT_DEFAULT \
	"top=%t/%p, retr=%r/%b, del=%d/%m, size=%s"

/*
 * Append fmt expanded with st to out.  Unknown variables expand to
 * nothing; the result is clipped at 512 bytes.
 */
void	pop3_logout_expand(struct buf *out, const char *fmt,
	    const struct pop3_logout_stats *st);

#endif
