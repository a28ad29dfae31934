/*
 * base64: the RFC 4648 §4 alphabet with "=" padding, as SASL exchanges
 * use it (RFC 4422 §5, RFC 4954 §4).  Decoding is strict: padding is
 * required, no whitespace or other bytes are accepted, and non-zero bits
 * in the last character are refused, so each input has one meaning.
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

struct buf;

/* Length of the encoding of n bytes (without a NUL). */
size_t	base64_encoded_len(size_t n);
/* Append the encoding of data to out; -1 if out's maximum is passed. */
int	base64_encode(struct buf *out, const void *data, size_t len);
/*
 * Append the decoding of in (len bytes) to out.  Returns 0, or -1 when
 * the input is not valid base64 or out's maximum is passed (out is then
 * left as it was).
 */
int	base64_decode(struct buf *out, const char *in, size_t len);

#endif
