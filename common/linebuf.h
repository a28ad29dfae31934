/*
 * linebuf: the bounded line splitter of the line-based servers (smtpd,
 * the pop3 mail process): finds the next line in the caller's input
 * buffer, refuses a line longer than a bound and skips the rest of such a
 * line as it arrives, without ever holding more than one buffer of it
 * (STYLE §7).  Pure and resumable: the input may come in any pieces.  It
 * does not reply, log or look at what the line says (NUL bytes included:
 * the command parsers reject those).  Also the keyword / arguments split
 * that the line-based protocols share.
 */
#ifndef POSTERN_LINEBUF_H
#define POSTERN_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

struct linebuf {
	bool	skipping;	/* skipping the rest of an overlong line */
};

void	linebuf_init(struct linebuf *lb);

/*
 * Find the next line in data[0..len) (data may be NULL when len is 0).
 * A line ends in LF; one CR before the LF is removed too, a CR elsewhere
 * is content.  A line longer than max bytes, terminator included, is an
 * error.
 *
 * Returns 1: *line_r / *line_len_r (terminator excluded) point into data
 *            and *consumed_r bytes (terminator included) are used up;
 *         0: no complete line yet; the caller drops *consumed_r bytes
 *            (the tail of an overlong line being skipped, or 0) and keeps
 *            the rest for the next call;
 *        -1: overlong line: the caller drops *consumed_r bytes and
 *            answers one error; the rest of the line up to its LF is
 *            skipped by the following calls.
 */
int	linebuf_parse(struct linebuf *lb, const char *data, size_t len,
	    size_t max, size_t *consumed_r, const char **line_r,
	    size_t *line_len_r);

/*
 * Split a command line into its keyword and its arguments (SMTP verbs,
 * POP3 keywords): line is a writable NUL-terminated copy of len bytes
 * without NUL bytes, and is modified.  White space (space, tab) before
 * and after the keyword and at the end of the line is dropped: telnet
 * users type it.  The keyword is copied upper case into keyword (size
 * bytes); a longer one leaves keyword "" and sets *too_long_r.  *args_r
 * points to the arguments in line, "" when there are none.
 */
void	linebuf_split_command(char *line, size_t len, char *keyword,
	    size_t size, bool *too_long_r, char **args_r);

#endif
