/*
 * fuzz_smtp_mime: the 8BITMIME downgrade of the outbound SMTP client
 * (smtp/smtp_mime.c, RFC 6152 §3).  Byte 0: bits 0-2 the number of
 * bytes of the input that come before the message in the file (a queue
 * file has records there), bit 3 a replacement top header (what
 * $smtp_generic_maps gives).  The rest is the file.
 *
 * Checked beyond "no crash", when the downgrade says it converted:
 *   - every file range of the plan lies inside the message, in order
 *     and without overlap;
 *   - the message as the client would send it (text, copied ranges and
 *     quoted-printable encoded ranges) is 7-bit;
 *   - a refusal always gives a reason.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "smtp.h"
#include "smtp_parse.h"

#define MAX_FUZZ_MIME_INPUT	(256 * 1024)

static const char fuzz_top[] =
    "From: sender@example.org\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n\n";

static char *fuzz_path;

static void __attribute__((noreturn))
fuzz_smtp_mime_fail(const char *what)
{
	fprintf(stderr, "smtp_mime: %s\n", what);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_body b;
	struct smtp_qp qp;
	struct buf out;
	const char *why = NULL;
	off_t off, msize, end;
	size_t i, j;
	int fd, r;

	if (size < 1 || size > MAX_FUZZ_MIME_INPUT)
		return 0;
	off = data[0] & 7;
	if ((size_t)off > size - 1)
		off = (off_t)(size - 1);
	msize = (off_t)(size - 1) - off;
	if (fuzz_path == NULL)
		fuzz_path = fuzz_scratch_path("queuefile");
	fuzz_write_file(fuzz_path, data + 1, size - 1);
	fd = open(fuzz_path, O_RDONLY);
	if (fd < 0)
		fuzz_smtp_mime_fail("cannot open the scratch file");

	memset(&b, 0, sizeof(b));
	if (data[0] & 8)
		r = smtp_mime_downgrade(fd, off, msize, fuzz_top,
		    sizeof(fuzz_top) - 1, &b, &why);
	else
		r = smtp_mime_downgrade(fd, off, msize, NULL, 0, &b, &why);
	if (r < 0)
		fuzz_smtp_mime_fail("read error on a whole file");
	if (r == 0) {
		if (why == NULL)
			fuzz_smtp_mime_fail("refused without a reason");
		if (b.nsegs != 0)
			fuzz_smtp_mime_fail("refused, segments left");
		close(fd);
		return 0;
	}

	buf_init(&out, 0);
	end = off;
	for (i = 0; i < b.nsegs; i++) {
		const struct smtp_seg *g = &b.segs[i];

		if (g->kind == SMTP_SEG_TEXT) {
			(void)buf_append(&out, g->text, g->tlen);
			continue;
		}
		if (g->len < 0 || g->off < end || g->off + g->len > off + msize)
			fuzz_smtp_mime_fail("a file range out of order or "
			    "outside the message");
		end = g->off + g->len;
		if (g->len == 0)
			continue;
		if (g->kind == SMTP_SEG_FILE) {
			(void)buf_append(&out, data + 1 + g->off,
			    (size_t)g->len);
			continue;
		}
		smtp_qp_init(&qp);
		/* In two pieces, as reads of any size must give the same. */
		j = (size_t)g->len / 2;
		smtp_qp_feed(&qp, (const char *)data + 1 + g->off, j, &out);
		smtp_qp_feed(&qp, (const char *)data + 1 + g->off + j,
		    (size_t)g->len - j, &out);
		smtp_qp_finish(&qp, &out);
	}
	for (i = 0; i < out.len; i++)
		if ((unsigned char)out.data[i] >= 0x80)
			fuzz_smtp_mime_fail("converted, but 8-bit bytes left");
	buf_free(&out);
	smtp_body_free(&b);
	close(fd);
	return 0;
}
