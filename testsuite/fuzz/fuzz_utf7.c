/*
 * fuzz_utf7: the modified UTF-7 mailbox name codec (imap/imap_utf7.c,
 * RFC 3501 §5.1.3), both directions.  The input is tried as a name a
 * client sent (mUTF-7 to UTF-8) and as a name on disk (UTF-8 to mUTF-7).
 *
 * Checked beyond "no crash":
 *   - a string the decoder accepts has one encoding only, so it encodes
 *     back to itself, and imap_utf7_valid() agrees with the decoder;
 *   - whatever UTF-8 the encoder accepts, its output is printable ASCII,
 *     valid, and decodes back to the input;
 *   - the encoder accepts exactly the valid UTF-8 without NUL.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "imap_utf7.h"
#include "str.h"

#define MAX_FUZZ_UTF7_INPUT	(16 * 1024)

static void __attribute__((noreturn))
fuzz_utf7_fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "imap_utf7: %s: \"%.*s\"\n", what,
	    (int)(size > 200 ? 200 : size), (const char *)data);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct buf a, b;
	size_t i;
	int r;

	if (size > MAX_FUZZ_UTF7_INPUT)
		return 0;
	buf_init(&a, 0);
	buf_init(&b, 0);

	/* As a name from a client. */
	r = imap_utf7_to_utf8(s, size, &a);
	if ((r == 0) != imap_utf7_valid(s, size))
		fuzz_utf7_fail("valid() and the decoder disagree", data, size);
	if (r == 0) {
		if (!str_utf8_valid(a.data, a.len))
			fuzz_utf7_fail("decoded to invalid UTF-8", data, size);
		if (imap_utf7_from_utf8(a.data, a.len, &b) != 0)
			fuzz_utf7_fail("decoded, cannot encode back", data,
			    size);
		if (b.len != size ||
		    (size != 0 && memcmp(b.data, s, size) != 0))
			fuzz_utf7_fail("decoded, encodes to something else",
			    data, size);
	}
	buf_reset(&a);
	buf_reset(&b);

	/* As a name on disk. */
	r = imap_utf7_from_utf8(s, size, &a);
	if ((r == 0) != (str_utf8_valid(s, size) &&
	    memchr(s, '\0', size) == NULL))
		fuzz_utf7_fail("encoder refused valid UTF-8 (or took bad)",
		    data, size);
	if (r == 0) {
		for (i = 0; i < a.len; i++) {
			unsigned char c = (unsigned char)a.data[i];

			if (c < 0x20 || c > 0x7e)
				fuzz_utf7_fail("encoded to a non-printable",
				    data, size);
		}
		if (imap_utf7_to_utf8(a.data, a.len, &b) != 0)
			fuzz_utf7_fail("encoded, decoder refuses it", data,
			    size);
		if (b.len != size ||
		    (size != 0 && memcmp(b.data, s, size) != 0))
			fuzz_utf7_fail("encoded, decodes to something else",
			    data, size);
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
