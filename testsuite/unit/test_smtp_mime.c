/*
 * Unit tests for smtp_mime: the 8BITMIME downgrade plan of the outbound
 * client.  Each message is written to a file at an offset (as in a queue
 * file), planned, and the planned pieces put together the way the
 * client sends them; a converted message must be 7-bit, keep what needs
 * no change, and decode to the same text.  Mangled messages must never
 * crash or give pieces outside the message.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "smtp.h"
#include "test.h"
#include "xmalloc.h"

#define PREFIX	"QUEUE-RECORDS\n"

static int
msg_file(const char *msg, size_t len, off_t *off_r)
{
	FILE *f = tmpfile();
	int fd;

	if (f == NULL)
		abort();
	fd = dup(fileno(f));
	fclose(f);
	if (write(fd, PREFIX, strlen(PREFIX)) < 0 ||
	    write(fd, msg, len) != (ssize_t)len ||
	    write(fd, "TRAILER", 7) != 7)
		abort();
	*off_r = (off_t)strlen(PREFIX);
	return fd;
}

/* The pieces put together as the client reads them (LF line ends). */
static char *
assemble(int fd, const struct smtp_body *b, off_t off, off_t size,
    bool *inside_r)
{
	struct buf out;
	size_t i;
	char *r;

	buf_init(&out, 0);
	*inside_r = true;
	for (i = 0; i < b->nsegs; i++) {
		const struct smtp_seg *s = &b->segs[i];
		char *tmp;
		struct smtp_qp q;

		if (s->kind == SMTP_SEG_TEXT) {
			(void)buf_append(&out, s->text, s->tlen);
			continue;
		}
		if (s->off < off || s->len < 0 || s->off + s->len > off + size) {
			*inside_r = false;
			continue;
		}
		tmp = xmalloc((size_t)s->len + 1);
		if (pread(fd, tmp, (size_t)s->len, s->off) != s->len)
			abort();
		if (s->kind == SMTP_SEG_QP) {
			smtp_qp_init(&q);
			smtp_qp_feed(&q, tmp, (size_t)s->len, &out);
			smtp_qp_finish(&q, &out);
		} else
			(void)buf_append(&out, tmp, (size_t)s->len);
		free(tmp);
	}
	r = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return r;
}

static int
plan(const char *msg, char **out_r, const char **why_r)
{
	struct smtp_body b = { NULL, 0 };
	off_t off;
	int fd = msg_file(msg, strlen(msg), &off);
	bool inside;
	int r;

	r = smtp_mime_downgrade(fd, off, (off_t)strlen(msg), NULL, 0, &b,
	    why_r);
	*out_r = r == 1 ? assemble(fd, &b, off, (off_t)strlen(msg), &inside) :
	    NULL;
	if (r == 1)
		test_assert(inside);
	smtp_body_free(&b);
	close(fd);
	return r;
}

static bool
is_7bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static void
test_converted(void)
{
	const char *why;
	char *out;

	test_begin("downgrade: one-part 8bit text");
	test_assert(plan("MIME-Version: 1.0\nSubject: x\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n", &out,
	    &why) == 1);
	test_assert_streq(out, "MIME-Version: 1.0\nSubject: x\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9\n");
	free(out);
	test_end();

	test_begin("downgrade: no encoding field, one is added");
	test_assert(plan("MIME-Version: 1.0\n\n\xe9t\xe9\n", &out, &why) == 1);
	test_assert_streq(out, "MIME-Version: 1.0\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n=E9t=E9\n");
	free(out);
	test_end();

	test_begin("downgrade: nested message/rfc822 in a multipart");
	test_assert(plan("MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\nContent-Type: text/plain\n\nascii\n"
	    "--a\nContent-Type: message/rfc822\n"
	    "Content-Transfer-Encoding: 8bit\n\n"
	    "Subject: inner\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=latin1\n\nna\xefve\n"
	    "--a\nContent-Type: image/png\nContent-Transfer-Encoding: base64"
	    "\n\niVBORw0K\n--a--\n", &out, &why) == 1);
	test_assert(is_7bit(out));
	test_assert(strstr(out, "--a\nContent-Type: text/plain\n\nascii\n--a"
	    "\n") != NULL);
	test_assert(strstr(out, "Content-Type: message/rfc822\n"
	    "Content-Transfer-Encoding: 7bit\n\nSubject: inner\n") != NULL);
	test_assert(strstr(out, "charset=latin1\n"
	    "Content-Transfer-Encoding: quoted-printable\n\nna=EFve\n--a\n")
	    != NULL);
	test_assert(strstr(out, "base64\n\niVBORw0K\n--a--\n") != NULL);
	free(out);
	test_end();
}

static void
test_refused(void)
{
	const char *why;
	char *out;

	test_begin("downgrade: not MIME, 8-bit header, nothing to do");
	test_assert(plan("Subject: x\n\ncaf\xc3\xa9\n", &out, &why) == 0);
	test_assert_streq(why, "the message is not MIME");
	test_assert(plan("MIME-Version: 1.0\nSubject: caf\xc3\xa9\n\nx\xe9\n",
	    &out, &why) == 0);
	test_assert_streq(why, "a header has 8-bit bytes");
	test_assert(plan("MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=a\n\n\xe9 preamble\n"
	    "--a\n\nascii\n--a--\n", &out, &why) == 0);
	test_assert(plan("MIME-Version: 1.0\n"
	    "Content-Transfer-Encoding: base64\n\n\xe9\xe9\n", &out, &why) ==
	    0);
	test_end();
}

/* Mangled input: any outcome, but no crash and no piece outside. */
static void
test_mangled(void)
{
	static const char base[] = "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\n"
	    "Content-Transfer-Encoding: binary\n\n"
	    "--b\nContent-Type: multipart/alternative; boundary=c\n\n"
	    "--c\nContent-Type: text/plain\n\n\xe9t\xe9 \n--c\n"
	    "Content-Type: text/html\nContent-Transfer-Encoding: 8bit\n\n"
	    "<p>\xe9</p>\n--c--\n--b\nContent-Type: message/rfc822\n\n"
	    "MIME-Version: 1.0\n\n\xe9\n--b--\n";
	char msg[sizeof(base)];
	const char *why;
	char *out;
	unsigned seed = 1;
	size_t len = sizeof(base) - 1, i, j;
	int r;

	test_begin("downgrade: mangled and cut messages");
	for (i = 0; i < 3000; i++) {
		memcpy(msg, base, sizeof(base));
		for (j = 0; j < 1 + i % 4; j++) {
			seed = seed * 1103515245 + 12345;
			msg[(seed >> 8) % len] = "-\n:\xe9 ;=\"b"[(seed >> 20) %
			    10];
		}
		seed = seed * 1103515245 + 12345;
		if (i % 7 == 0)
			msg[(seed >> 8) % len] = '\0';
		r = plan(msg, &out, &why);
		test_assert(r == 0 || r == 1);
		if (r == 1) {
			test_assert(is_7bit(out));
			free(out);
		}
	}
	test_end();
}

int
main(void)
{
	test_converted();
	test_refused();
	test_mangled();
	return test_done();
}
