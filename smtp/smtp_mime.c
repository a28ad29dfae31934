/*
 * smtp_mime: the 8BITMIME downgrade of the outbound SMTP client (see
 * smtp.h).  RFC 6152 §3: a message with 8-bit content must not go to a
 * server that did not announce 8BITMIME; the client either converts it
 * to 7 bits, or fails it, or (what Postfix does by default, and what we
 * do when conversion is impossible) sends it as it is.
 *
 * The conversion is MIME-aware, like Postfix's: the message is parsed
 * with common/mime.c (offsets only, whatever its size), and the pieces
 * that change are listed as segments; nothing of the body is held in
 * memory.  For each part:
 *   - a text or other leaf part whose body holds 8-bit bytes and whose
 *     encoding is 7bit, 8bit or binary (or none) gets its
 *     Content-Transfer-Encoding replaced by quoted-printable, and its
 *     body encoded (RFC 2045 §6.7);
 *   - base64 and quoted-printable parts are already 7-bit: kept;
 *   - a multipart or message/rfc822 part is walked; when it is marked
 *     8bit or binary it is marked 7bit, which it is once its parts are
 *     (RFC 2045 §6.4: a composite type has no encoding of its own).
 * Header fields are never changed besides that one: a header with 8-bit
 * bytes (raw UTF-8 names, say) cannot be made 7-bit without knowing its
 * charset, and a message without MIME-Version has no structure to
 * declare an encoding in.  Both go as they are, as with Postfix.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "mime.h"
#include "smtp.h"
#include "xmalloc.h"

/* Bytes of one part's header block looked at (a longer one: as is). */
#define SMTP_MIME_MAX_HEADER	(64 * 1024)
/* Bytes read from the queue file at a time while parsing. */
#define SMTP_MIME_CHUNK		(64 * 1024)

void
smtp_body_free(struct smtp_body *b)
{
	size_t i;

	for (i = 0; i < b->nsegs; i++)
		free(b->segs[i].text);
	free(b->segs);
	b->segs = NULL;
	b->nsegs = 0;
}

void
smtp_body_add(struct smtp_body *b, enum smtp_seg_kind kind, off_t off,
    off_t len, const char *text, size_t tlen)
{
	struct smtp_seg *s;

	if (kind != SMTP_SEG_TEXT && len <= 0)
		return;
	if (kind == SMTP_SEG_TEXT && tlen == 0)
		return;
	b->segs = xreallocarray(b->segs, b->nsegs + 1, sizeof(*b->segs));
	s = &b->segs[b->nsegs++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->off = off;
	s->len = len;
	if (kind == SMTP_SEG_TEXT) {
		s->text = xmalloc(tlen);
		memcpy(s->text, text, tlen);
		s->tlen = tlen;
	}
}

struct smtp_mime_plan {
	int		 fd;
	off_t		 base;		/* the message's offset in fd */
	const char	*top;		/* replacement top header, or NULL */
	size_t		 toplen;
	off_t		 cursor;	/* message bytes before it are planned */
	size_t		 text_bytes;	/* TEXT bytes so far */
	bool		 changed;
	const char	*why;		/* set: cannot convert */
	bool		 ioerr;
	struct smtp_body *b;
};

static int
smtp_mime_pread(struct smtp_mime_plan *p, char *dst, size_t len, off_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(p->fd, dst + got, len - got, p->base + off +
		    (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static bool
smtp_mime_8bit(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* Does the range of the message hold an 8-bit byte? */
static bool
smtp_mime_range_8bit(struct smtp_mime_plan *p, uint64_t off, uint64_t len)
{
	char *chunk = xmalloc(SMTP_MIME_CHUNK);
	bool found = false;

	while (len > 0 && !found) {
		size_t n = len < SMTP_MIME_CHUNK ? (size_t)len :
		    SMTP_MIME_CHUNK;

		if (smtp_mime_pread(p, chunk, n, (off_t)off) < 0) {
			p->ioerr = true;
			break;
		}
		found = smtp_mime_8bit(chunk, n);
		off += n;
		len -= n;
	}
	free(chunk);
	return found;
}

/*
 * The header block of part in hdr: the replacement for the top part,
 * else read from the file.  0, or -1 (p->why or p->ioerr set).
 */
static int
smtp_mime_header(struct smtp_mime_plan *p, const struct mime_part *part,
    struct buf *hdr)
{
	buf_reset(hdr);
	if (part->parent == NULL && p->top != NULL) {
		(void)buf_append(hdr, p->top, p->toplen);
		return 0;
	}
	if (part->header.len > SMTP_MIME_MAX_HEADER) {
		p->why = "a MIME header block is too long";
		return -1;
	}
	if (buf_reserve(hdr, (size_t)part->header.len + 1) < 0)
		abort();	/* bounded above */
	if (smtp_mime_pread(p, hdr->data, (size_t)part->header.len,
	    (off_t)part->header.off) < 0) {
		p->ioerr = true;
		return -1;
	}
	hdr->len = (size_t)part->header.len;
	return 0;
}

static bool
smtp_mime_name_is(const struct mime_field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	    strncasecmp(f->name, name, f->name_len) == 0;
}

/*
 * Write part's header block with every Content-Transfer-Encoding field
 * replaced by one saying cte, as a TEXT segment for the header's range.
 */
static void
smtp_mime_replace_cte(struct smtp_mime_plan *p, const struct mime_part *part,
    const struct buf *hdr, const char *cte)
{
	struct mime_field f;
	struct buf out;
	size_t pos = 0, last = 0;

	buf_init(&out, 0);
	while (mime_header_next(hdr->data, hdr->len, &pos, &f) == 1) {
		if (!smtp_mime_name_is(&f, "Content-Transfer-Encoding"))
			(void)buf_append(&out, f.raw, f.raw_len);
		last = pos;
	}
	/* Before the blank line, or at the end of a header without one
	 * (whose last line may lack its line end). */
	if (out.len > 0 && out.data[out.len - 1] != '\n')
		(void)buf_append_char(&out, '\n');
	(void)buf_printf(&out, "Content-Transfer-Encoding: %s\n", cte);
	(void)buf_append(&out, hdr->data + last, hdr->len - last);

	p->text_bytes += out.len;
	if (p->text_bytes > SMTP_MAX_DOWNGRADE_TEXT) {
		p->why = "the MIME header blocks are too large";
		buf_free(&out);
		return;
	}
	smtp_body_add(p->b, SMTP_SEG_FILE, p->cursor,
	    (off_t)part->header.off - p->cursor, NULL, 0);
	smtp_body_add(p->b, SMTP_SEG_TEXT, 0, 0, out.data, out.len);
	p->cursor = (off_t)(part->header.off + part->header.len);
	p->changed = true;
	buf_free(&out);
}

/* Keep the top header as the replacement says, when there is one. */
static void
smtp_mime_keep_header(struct smtp_mime_plan *p, const struct mime_part *part,
    const struct buf *hdr)
{
	if (part->parent != NULL || p->top == NULL)
		return;
	smtp_body_add(p->b, SMTP_SEG_TEXT, 0, 0, hdr->data, hdr->len);
	p->cursor = (off_t)(part->header.off + part->header.len);
}

static void
smtp_mime_walk(struct smtp_mime_plan *p, const struct mime_part *part)
{
	const struct mime_part *c;
	struct buf hdr;
	bool composite = (part->flags & (MIME_PART_MULTIPART |
	    MIME_PART_MESSAGE)) != 0;
	bool eightbit = part->encoding == MIME_ENC_8BIT ||
	    part->encoding == MIME_ENC_BINARY;

	if (p->why != NULL || p->ioerr)
		return;
	if (part->flags & MIME_PART_DEGRADED) {
		p->why = "the MIME structure is broken or too deep";
		return;
	}
	buf_init(&hdr, 0);
	if (smtp_mime_header(p, part, &hdr) < 0)
		goto out;
	if (smtp_mime_8bit(hdr.data, hdr.len)) {
		p->why = "a header has 8-bit bytes";
		goto out;
	}
	if (composite) {
		if (eightbit)
			smtp_mime_replace_cte(p, part, &hdr, "7bit");
		else
			smtp_mime_keep_header(p, part, &hdr);
		for (c = part->children; c != NULL && p->why == NULL &&
		    !p->ioerr; c = c->next)
			smtp_mime_walk(p, c);
		goto out;
	}
	if (part->encoding == MIME_ENC_BASE64 || part->encoding == MIME_ENC_QP ||
	    !smtp_mime_range_8bit(p, part->body.off, part->body.len)) {
		smtp_mime_keep_header(p, part, &hdr);
		goto out;
	}
	if (p->ioerr)
		goto out;
	smtp_mime_replace_cte(p, part, &hdr, "quoted-printable");
	if (p->why != NULL)
		goto out;
	/* Between the header and the body: nothing (the header range has
	 * the blank line). */
	smtp_body_add(p->b, SMTP_SEG_FILE, p->cursor,
	    (off_t)part->body.off - p->cursor, NULL, 0);
	smtp_body_add(p->b, SMTP_SEG_QP, (off_t)part->body.off,
	    (off_t)part->body.len, NULL, 0);
	p->cursor = (off_t)(part->body.off + part->body.len);
out:
	buf_free(&hdr);
}

int
smtp_mime_downgrade(int fd, off_t off, off_t size, const char *top,
    size_t toplen, struct smtp_body *b, const char **why_r)
{
	struct smtp_mime_plan p;
	struct mime_parser *mp;
	struct mime_part *root;
	struct buf hdr, mv;
	char *chunk;
	off_t pos;
	size_t i;
	int ret;

	memset(&p, 0, sizeof(p));
	p.fd = fd;
	p.base = off;
	p.top = top;
	p.toplen = toplen;
	p.b = b;
	*why_r = NULL;

	mp = mime_parser_new();
	chunk = xmalloc(SMTP_MIME_CHUNK);
	for (pos = 0; pos < size; ) {
		size_t n = size - pos < SMTP_MIME_CHUNK ? (size_t)(size - pos) :
		    SMTP_MIME_CHUNK;

		if (smtp_mime_pread(&p, chunk, n, pos) < 0) {
			free(chunk);
			mime_parser_free(&mp);
			return -1;
		}
		mime_parser_feed(mp, chunk, n);
		pos += (off_t)n;
	}
	free(chunk);
	root = mime_parser_finish(&mp);

	/* RFC 2045 §4: without MIME-Version there is no MIME to convert. */
	buf_init(&hdr, 0);
	buf_init(&mv, 0);
	if (smtp_mime_header(&p, root, &hdr) == 0 &&
	    mime_header_get(hdr.data, hdr.len, "MIME-Version", 0, &mv) != 1)
		p.why = "the message is not MIME";
	buf_free(&mv);
	buf_free(&hdr);

	if (p.why == NULL && !p.ioerr)
		smtp_mime_walk(&p, root);
	mime_part_free(&root);
	if (p.why == NULL && !p.ioerr && !p.changed) {
		/* 8-bit bytes nowhere a part's encoding could say so (in a
		 * preamble, say): nothing to convert. */
		p.why = "no 8-bit part to convert";
	}
	if (p.why == NULL && !p.ioerr) {
		smtp_body_add(b, SMTP_SEG_FILE, p.cursor, size - p.cursor,
		    NULL, 0);
		/* What is copied must be 7-bit too (a preamble, say, or a
		 * boundary line); else the conversion would not help. */
		for (i = 0; i < b->nsegs && p.why == NULL && !p.ioerr; i++)
			if (b->segs[i].kind == SMTP_SEG_FILE &&
			    smtp_mime_range_8bit(&p, (uint64_t)b->segs[i].off,
			    (uint64_t)b->segs[i].len))
				p.why = "8-bit bytes outside the MIME parts";
	}
	if (p.ioerr)
		ret = -1;
	else if (p.why != NULL)
		ret = 0;
	else {
		/* Segments were planned relative to the message. */
		for (i = 0; i < b->nsegs; i++)
			if (b->segs[i].kind != SMTP_SEG_TEXT)
				b->segs[i].off += off;
		ret = 1;
	}
	if (ret != 1)
		smtp_body_free(b);
	*why_r = p.why;
	return ret;
}
