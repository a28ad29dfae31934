/*
 * imap_utf7: modified UTF-7, the IMAP4rev1 mailbox name encoding (RFC
 * 3501 §5.1.3, RFC 9051 §5.1.3), to and from UTF-8.  Postern keeps
 * names in UTF-8 everywhere past the parser; clients that did not
 * enable UTF8=ACCEPT (RFC 6855) send and receive modified UTF-7.
 *
 * Decoding is strict, as the RFC asks of servers: a name that is not in
 * the one canonical form (superfluous shifts, printable ASCII inside a
 * base64 run, a run that does not end in '-', bits left over, a lone
 * surrogate) is refused rather than guessed at.
 */
#ifndef POSTERN_IMAP_UTF7_H
#define POSTERN_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/*
 * Decode src[0..len) and append the UTF-8 text to dest.  Returns 0, or
 * -1 when src is not valid modified UTF-7 (dest may then hold part of
 * the text) or dest's maximum size was reached.
 */
int	imap_utf7_to_utf8(const char *src, size_t len, struct buf *dest);

/*
 * Encode the UTF-8 text src[0..len) and append it to dest.  Returns 0,
 * or -1 when src is not valid UTF-8 or holds a NUL, or dest's maximum
 * size was reached.
 */
int	imap_utf7_from_utf8(const char *src, size_t len, struct buf *dest);

/* Whether src[0..len) is valid modified UTF-7. */
bool	imap_utf7_valid(const char *src, size_t len);

#endif
