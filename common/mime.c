/*
 * mime: the streaming MIME parser, IMAP BODYSTRUCTURE/ENVELOPE rendering
 * and BODY[section] lookup (see mime.h).
 *
 * The parser looks at the input line by line but never holds a line: it
 * keeps the first bytes of each line (enough to recognise a boundary
 * delimiter, RFC 2046 §5.1.1) and, in a header, the field being read
 * when it is one IMAP needs (Content-*, and the envelope fields of a
 * message header).  Counters give every position three ways: raw offset,
 * offset with CRLF line ends, and number of LFs so far, so the end of a
 * part is known without looking back.
 *
 * Boundaries follow RFC 2046 §5.1.1 as IMAP servers read them: a line
 * that starts with "--" and the boundary is a delimiter (what follows
 * the boundary is not checked), the longest matching boundary of the
 * open multiparts wins, a delimiter of an outer multipart also ends the
 * inner ones (§5.1.2), and the line end before a delimiter belongs to the
 * delimiter, not to the part.  A header ends at a blank line, at a
 * delimiter or at the end of the input.  A part without Content-Type is
 * text/plain; charset=us-ascii, or message/rfc822 in a multipart/digest
 * (RFC 2045 §5.2, RFC 2046 §5.1.5).  A line count is the number of LFs
 * in the body.
 *
 * What the parser does not do: decode bodies (mime_decode.c), keep
 * header fields other than the ones above (mime_header.c reads header
 * blocks the caller fetched by offset), or check that a message is
 * valid: everything parses.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "mime.h"
#include "str.h"
#include "xmalloc.h"

/* Bytes of a line kept to recognise "--boundary--". */
#define MIME_LBUF		(2 + MAX_MIME_BOUNDARY + 2)
/* A field name longer than this is not one we keep. */
#define MIME_MAX_NAME		64
/* Strings longer than this are sent as literals. */
#define MIME_MAX_QUOTED		1024

enum mime_fid {
	MIME_F_NONE,
	MIME_F_CTYPE,
	MIME_F_CTE,
	MIME_F_CID,
	MIME_F_CDESC,
	MIME_F_CDISP,
	MIME_F_CLANG,
	MIME_F_CLOC,
	MIME_F_CMD5,
	/* Envelope fields: message headers only. */
	MIME_F_DATE,
	MIME_F_SUBJECT,
	MIME_F_FROM,
	MIME_F_SENDER,
	MIME_F_REPLY_TO,
	MIME_F_TO,
	MIME_F_CC,
	MIME_F_BCC,
	MIME_F_IN_REPLY_TO,
	MIME_F_MESSAGE_ID,
};

static const struct {
	const char	*name;
	enum mime_fid	 id;
} mime_fields[] = {
	{ "content-type", MIME_F_CTYPE },
	{ "content-transfer-encoding", MIME_F_CTE },
	{ "content-id", MIME_F_CID },
	{ "content-description", MIME_F_CDESC },
	{ "content-disposition", MIME_F_CDISP },
	{ "content-language", MIME_F_CLANG },
	{ "content-location", MIME_F_CLOC },
	{ "content-md5", MIME_F_CMD5 },
	{ "date", MIME_F_DATE },
	{ "subject", MIME_F_SUBJECT },
	{ "from", MIME_F_FROM },
	{ "sender", MIME_F_SENDER },
	{ "reply-to", MIME_F_REPLY_TO },
	{ "to", MIME_F_TO },
	{ "cc", MIME_F_CC },
	{ "bcc", MIME_F_BCC },
	{ "in-reply-to", MIME_F_IN_REPLY_TO },
	{ "message-id", MIME_F_MESSAGE_ID },
};

/* A position three ways. */
struct mime_pos {
	uint64_t	pos;
	uint64_t	vpos;
	uint64_t	nlf;
};

/* A part whose end is not known yet. */
struct mime_frame {
	struct mime_part	*part;
	struct mime_part	*last_child;
	char			*boundary;	/* a multipart with parts */
	size_t			 blen;
	bool			 closed;	/* close delimiter seen */
	bool			 in_header;
	bool			 ctype_seen;
	uint64_t		 body_nlf;
};

struct mime_parser {
	struct mime_part	*root;
	struct mime_frame	 stack[MAX_MIME_DEPTH + 1];
	size_t			 nstack;
	unsigned int		 nparts;
	size_t			 kept;		/* bytes of values kept */

	struct mime_pos		 cur;		/* after the last byte */
	/* The line being read. */
	bool			 line_start;	/* next byte starts a line */
	struct mime_pos		 line;		/* where it started */
	uint64_t		 line_len;	/* bytes so far, no LF */
	bool			 line_cr;	/* its last byte is CR */
	char			 lbuf[MIME_LBUF];
	size_t			 llen;
	bool			 line_new_field;
	/* Where the line end before this line started. */
	bool			 have_peol;
	struct mime_pos		 peol;

	/* The header field being read. */
	struct buf		 field;
	bool			 field_active;
	bool			 field_skip;	/* not kept */
	bool			 field_named;
	bool			 field_trunc;
	enum mime_fid		 fid;
	unsigned int		 nfields;
};

/* ------------------------------------------------------------------ */
/* Parts                                                               */

static void
mime_part_set_type(struct mime_part *part, const char *type,
    const char *subtype, bool default_charset)
{
	free(part->type);
	free(part->subtype);
	mime_params_free(&part->params, part->nparams);
	part->nparams = 0;
	part->type = xstrdup(type);
	part->subtype = xstrdup(subtype);
	if (default_charset) {
		part->params = xcalloc(1, sizeof(*part->params));
		part->params[0].name = xstrdup("charset");
		part->params[0].value = xstrdup("us-ascii");
		part->nparams = 1;
	}
	part->flags &= ~(MIME_PART_MULTIPART | MIME_PART_MESSAGE |
	    MIME_PART_TEXT);
	if (strcasecmp(type, "text") == 0)
		part->flags |= MIME_PART_TEXT;
}

/* A multipart or message/rfc822 that cannot have parts becomes a leaf:
 * text/plain when it is broken, application/octet-stream at a limit. */
static void
mime_part_degrade(struct mime_part *part, bool to_text)
{
	if (to_text)
		mime_part_set_type(part, "text", "plain", true);
	else
		mime_part_set_type(part, "application", "octet-stream", false);
	part->flags |= MIME_PART_DEGRADED;
}

/* Type flags and defaults once the header is read. */
static void
mime_part_settle_type(struct mime_part *part)
{
	const struct mime_part *parent = part->parent;

	if ((part->flags & MIME_PART_HAS_CTYPE) == 0) {
		if (parent != NULL &&
		    (parent->flags & MIME_PART_MULTIPART) != 0 &&
		    strcasecmp(parent->subtype, "digest") == 0)
			mime_part_set_type(part, "message", "rfc822", false);
		else
			mime_part_set_type(part, "text", "plain", true);
	}
	part->flags &= ~(MIME_PART_MULTIPART | MIME_PART_MESSAGE |
	    MIME_PART_TEXT);
	if (strcasecmp(part->type, "multipart") == 0)
		part->flags |= MIME_PART_MULTIPART;
	else if (strcasecmp(part->type, "message") == 0 &&
	    strcasecmp(part->subtype, "rfc822") == 0)
		part->flags |= MIME_PART_MESSAGE;
	else if (strcasecmp(part->type, "text") == 0)
		part->flags |= MIME_PART_TEXT;
	/* RFC 2046 §4.1.2: text without charset is US-ASCII; say so, as
	 * clients otherwise guess. */
	if ((part->flags & MIME_PART_TEXT) != 0 &&
	    mime_param_find(part->params, part->nparams, "charset") == NULL) {
		struct mime_param *np;

		/* UNSAFE: nparams <= MAX_MIME_PARAMS */
		np = xcalloc(part->nparams + 1, sizeof(*np));
		np[0].name = xstrdup("charset");
		np[0].value = xstrdup("us-ascii");
		if (part->nparams > 0)
			memcpy(np + 1, part->params,
			    part->nparams * sizeof(*np));
		free(part->params);
		part->params = np;
		part->nparams++;
	}
	part->encoding = mime_encoding_parse(part->encoding_name);
}

static void
mime_part_free_one(struct mime_part *part)
{
	struct mime_envelope *e = part->envelope;

	free(part->type);
	free(part->subtype);
	mime_params_free(&part->params, part->nparams);
	free(part->encoding_name);
	free(part->id);
	free(part->description);
	free(part->md5);
	free(part->location);
	free(part->disposition);
	mime_params_free(&part->disp_params, part->ndisp_params);
	strv_free(&part->languages);
	if (e != NULL) {
		free(e->date);
		free(e->subject);
		free(e->from);
		free(e->sender);
		free(e->reply_to);
		free(e->to);
		free(e->cc);
		free(e->bcc);
		free(e->in_reply_to);
		free(e->message_id);
		free(e);
	}
	free(part);
}

void
mime_part_free(struct mime_part **rootp)
{
	struct mime_part *part = *rootp, *next;

	/* Iterative, children first: no recursion on client data. */
	while (part != NULL) {
		if (part->children != NULL) {
			next = part->children;
			part->children = NULL;
			part = next;
			continue;
		}
		next = part->next != NULL ? part->next : part->parent;
		if (part == *rootp)
			next = NULL;
		mime_part_free_one(part);
		part = next;
	}
	*rootp = NULL;
}

/* A new part starting at the current position, pushed on the stack. */
static struct mime_part *
mime_parser_push(struct mime_parser *p, struct mime_part *parent,
    bool is_message)
{
	struct mime_part *part = xcalloc(1, sizeof(*part));
	struct mime_frame *f;

	part->parent = parent;
	part->depth = parent != NULL ? parent->depth + 1 : 0;
	part->header.off = p->cur.pos;
	part->header.voff = p->cur.vpos;
	if (is_message)
		part->envelope = xcalloc(1, sizeof(*part->envelope));
	if (parent != NULL) {
		struct mime_frame *pf = &p->stack[p->nstack - 1];

		if (pf->last_child != NULL)
			pf->last_child->next = part;
		else
			parent->children = part;
		pf->last_child = part;
	}
	p->nparts++;
	f = &p->stack[p->nstack++];
	memset(f, 0, sizeof(*f));
	f->part = part;
	f->in_header = true;
	p->nfields = 0;
	p->field_active = false;
	return part;
}

/* ------------------------------------------------------------------ */
/* Header fields                                                       */

static enum mime_fid
mime_field_id(const char *name, size_t len, bool is_message)
{
	size_t i;

	for (i = 0; i < sizeof(mime_fields) / sizeof(mime_fields[0]); i++) {
		if (strlen(mime_fields[i].name) == len &&
		    strncasecmp(mime_fields[i].name, name, len) == 0) {
			if (mime_fields[i].id >= MIME_F_DATE && !is_message)
				return MIME_F_NONE;
			return mime_fields[i].id;
		}
	}
	return MIME_F_NONE;
}

static void
mime_field_begin(struct mime_parser *p)
{
	buf_reset(&p->field);
	p->field_active = true;
	p->field_named = false;
	p->field_trunc = false;
	p->fid = MIME_F_NONE;
	p->field_skip = p->nfields >= MAX_MIME_FIELDS;
	p->nfields++;
}

static void
mime_field_append(struct mime_parser *p, const char *s, size_t n)
{
	struct mime_part *part = p->stack[p->nstack - 1].part;
	size_t room, m;
	const char *colon;

	if (!p->field_active || p->field_skip || p->field_trunc)
		return;
	room = MAX_MIME_FIELD - p->field.len;
	m = n < room ? n : room;
	(void)buf_append(&p->field, s, m);
	if (m < n)
		p->field_trunc = true;
	if (p->field_named)
		return;
	colon = memchr(p->field.data, ':', p->field.len);
	/* The bound applies to where the colon is, not to what one feed
	 * happened to bring: else chunking would change the answer. */
	if (colon != NULL &&
	    (size_t)(colon - p->field.data) <= MIME_MAX_NAME) {
		size_t nlen = (size_t)(colon - p->field.data);

		while (nlen > 0 && (p->field.data[nlen - 1] == ' ' ||
		    p->field.data[nlen - 1] == '\t'))
			nlen--;
		p->fid = mime_field_id(p->field.data, nlen,
		    part->envelope != NULL);
		p->field_named = true;
		if (p->fid == MIME_F_NONE)
			p->field_skip = true;
	} else if (colon != NULL || p->field.len > MIME_MAX_NAME) {
		p->field_skip = true;
	}
	if (p->field_skip)
		buf_reset(&p->field);
}

/* Content-Language: a list of tags (RFC 3282 §2). */
static char **
mime_parse_languages(const char *v)
{
	char **langs = xcalloc(1, sizeof(*langs));
	size_t n = 0;

	while (*v != '\0' && n < MAX_MIME_LANGUAGES) {
		size_t len;

		if (*v == ' ' || *v == '\t' || *v == ',' || *v == '\r' ||
		    *v == '\n') {
			v++;
			continue;
		}
		if (*v == '(') {
			unsigned int depth = 0;

			for (; *v != '\0'; v++) {
				if (*v == '\\' && v[1] != '\0')
					v++;
				else if (*v == '(')
					depth++;
				else if (*v == ')' && --depth == 0) {
					v++;
					break;
				}
			}
			continue;
		}
		len = strcspn(v, " \t\r\n,(");
		{
			char *tag = xstrndup(v, len);

			strv_push(&langs, tag);
			free(tag);
		}
		n++;
		v += len;
	}
	if (n == 0)
		strv_free(&langs);
	return langs;
}

static void
mime_set_once(char **dst, char *v)
{
	if (*dst == NULL)
		*dst = v;
	else
		free(v);
}

/* The field is complete: keep what it says. */
static void
mime_field_finish(struct mime_parser *p)
{
	struct mime_frame *f = &p->stack[p->nstack - 1];
	struct mime_part *part = f->part;
	struct mime_envelope *e = part->envelope;
	const char *v, *end;
	char *val;
	size_t i, len;

	if (!p->field_active)
		return;
	p->field_active = false;
	if (p->field_skip || !p->field_named)
		return;
	v = memchr(p->field.data, ':', p->field.len) + 1;
	end = p->field.data + p->field.len;
	while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' ||
	    *v == '\n'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		end--;
	len = (size_t)(end - v);
	if (p->kept + len > MAX_MIME_KEPT)
		return;
	p->kept += len;
	val = xmalloc(len + 1);
	for (i = 0; i < len; i++)
		val[i] = v[i] == '\0' ? '?' : v[i];
	val[len] = '\0';

	switch (p->fid) {
	case MIME_F_CTYPE:
		/* The first Content-Type counts, valid or not. */
		if (!f->ctype_seen) {
			char *type, *subtype;
			struct mime_param *params;
			size_t n;

			f->ctype_seen = true;
			if (mime_content_parse(val, len, true, &type, &subtype,
			    &params, &n) == 0) {
				part->type = type;
				part->subtype = subtype;
				part->params = params;
				part->nparams = n;
				part->flags |= MIME_PART_HAS_CTYPE;
			}
		}
		free(val);
		break;
	case MIME_F_CDISP:
		if (part->disposition == NULL) {
			char *type;
			struct mime_param *params;
			size_t n;

			if (mime_content_parse(val, len, false, &type, NULL,
			    &params, &n) == 0) {
				part->disposition = type;
				part->disp_params = params;
				part->ndisp_params = n;
			}
		}
		free(val);
		break;
	case MIME_F_CTE:
		if (part->encoding_name == NULL) {
			char *type;
			struct mime_param *params;
			size_t n;

			/* A token, possibly with a comment around it. */
			if (mime_content_parse(val, len, false, &type, NULL,
			    &params, &n) == 0) {
				mime_params_free(&params, n);
				part->encoding_name = type;
			}
		}
		free(val);
		break;
	case MIME_F_CLANG:
		if (part->languages == NULL)
			part->languages = mime_parse_languages(val);
		free(val);
		break;
	case MIME_F_CID: mime_set_once(&part->id, val); break;
	case MIME_F_CDESC: mime_set_once(&part->description, val); break;
	case MIME_F_CLOC: mime_set_once(&part->location, val); break;
	case MIME_F_CMD5: mime_set_once(&part->md5, val); break;
	case MIME_F_DATE: mime_set_once(&e->date, val); break;
	case MIME_F_SUBJECT: mime_set_once(&e->subject, val); break;
	case MIME_F_FROM: mime_set_once(&e->from, val); break;
	case MIME_F_SENDER: mime_set_once(&e->sender, val); break;
	case MIME_F_REPLY_TO: mime_set_once(&e->reply_to, val); break;
	case MIME_F_TO: mime_set_once(&e->to, val); break;
	case MIME_F_CC: mime_set_once(&e->cc, val); break;
	case MIME_F_BCC: mime_set_once(&e->bcc, val); break;
	case MIME_F_IN_REPLY_TO: mime_set_once(&e->in_reply_to, val); break;
	case MIME_F_MESSAGE_ID: mime_set_once(&e->message_id, val); break;
	default:
		free(val);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Structure                                                           */

/* The boundary of a multipart, or NULL when it has none usable. */
static char *
mime_part_boundary(const struct mime_part *part)
{
	const struct mime_param *b;
	struct buf v;

	b = mime_param_find(part->params, part->nparams, "boundary");
	if (b == NULL)
		return NULL;
	buf_init(&v, MAX_MIME_BOUNDARY);
	if (b->extended) {
		if (mime_param_decode(b, &v) < 0) {
			buf_free(&v);
			return NULL;
		}
	} else if (buf_append_str(&v, b->value) < 0) {
		buf_free(&v);
		return NULL;
	}
	if (v.len == 0) {
		buf_free(&v);
		return NULL;
	}
	return buf_steal(&v);
}

/* The header of the top frame ended at a blank line; its body starts at
 * the current position. */
static void
mime_header_done(struct mime_parser *p)
{
	struct mime_frame *f = &p->stack[p->nstack - 1];
	struct mime_part *part = f->part;

	part->header.len = p->cur.pos - part->header.off;
	part->header.vlen = p->cur.vpos - part->header.voff;
	part->body.off = p->cur.pos;
	part->body.voff = p->cur.vpos;
	part->flags |= MIME_PART_EOH;
	f->body_nlf = p->cur.nlf;
	f->in_header = false;
	mime_part_settle_type(part);

	if ((part->flags & MIME_PART_MULTIPART) != 0) {
		char *b = mime_part_boundary(part);

		if (b == NULL) {
			/* No boundary: the body is text (RFC 2046 §5.1.1
			 * makes the parameter mandatory). */
			mime_part_degrade(part, true);
		} else if (part->depth >= MAX_MIME_DEPTH) {
			free(b);
			mime_part_degrade(part, false);
		} else {
			f->boundary = b;
			f->blen = strlen(b);
		}
	} else if ((part->flags & MIME_PART_MESSAGE) != 0) {
		if (part->depth >= MAX_MIME_DEPTH ||
		    p->nparts >= MAX_MIME_PARTS)
			mime_part_degrade(part, false);
		else
			(void)mime_parser_push(p, part, true);
	}
}

/*
 * The top frame ends at e: its header or body stops there.  A header
 * that had no blank line ends with no body; a message/rfc822 cut off in
 * its header still gets an (empty) encapsulated message, so that the
 * tree always renders.
 */
static void
mime_frame_end(struct mime_parser *p, const struct mime_pos *e)
{
	struct mime_frame *f = &p->stack[p->nstack - 1];
	struct mime_part *part = f->part;

	if (f->in_header) {
		uint64_t end = e->pos > part->header.off ? e->pos :
		    part->header.off;
		uint64_t vend = e->vpos > part->header.voff ? e->vpos :
		    part->header.voff;

		if (p->field_active && !p->line_new_field)
			mime_field_finish(p);
		p->field_active = false;
		part->header.len = end - part->header.off;
		part->header.vlen = vend - part->header.voff;
		part->body.off = end;
		part->body.voff = vend;
		part->body.len = part->body.vlen = 0;
		part->lines = 0;
		f->in_header = false;
		mime_part_settle_type(part);
		if ((part->flags & MIME_PART_MESSAGE) != 0) {
			if (part->depth >= MAX_MIME_DEPTH ||
			    p->nparts >= MAX_MIME_PARTS) {
				mime_part_degrade(part, false);
			} else {
				struct mime_part *c;
				struct mime_pos save = p->cur;

				p->cur.pos = end;
				p->cur.vpos = vend;
				c = mime_parser_push(p, part, true);
				p->cur = save;
				c->body.off = end;
				c->body.voff = vend;
				mime_part_settle_type(c);
				p->nstack--;
			}
		}
	} else {
		uint64_t end = e->pos > part->body.off ? e->pos :
		    part->body.off;
		uint64_t vend = e->vpos > part->body.voff ? e->vpos :
		    part->body.voff;

		part->body.len = end - part->body.off;
		part->body.vlen = vend - part->body.voff;
		part->lines = e->nlf > f->body_nlf && e->pos > part->body.off ?
		    e->nlf - f->body_nlf : 0;
	}
	if ((part->flags & MIME_PART_MULTIPART) != 0 &&
	    part->children == NULL)
		mime_part_degrade(part, true);	/* not one part in it */
	free(f->boundary);
	f->boundary = NULL;
	p->nstack--;
}

/*
 * Which open multipart's boundary the current line (content without
 * line end: n bytes) is a delimiter of: the stack index, or -1.
 */
static int
mime_find_boundary(struct mime_parser *p, size_t n, bool *close_r)
{
	int best = -1;
	size_t i;

	*close_r = false;
	if (n > p->llen)
		n = p->llen;
	if (n < 2 || p->lbuf[0] != '-' || p->lbuf[1] != '-')
		return -1;
	for (i = p->nstack; i-- > 0;) {
		const struct mime_frame *f = &p->stack[i];

		if (f->boundary == NULL || f->closed || f->blen > n - 2 ||
		    memcmp(p->lbuf + 2, f->boundary, f->blen) != 0)
			continue;
		if (best < 0 || f->blen > p->stack[best].blen)
			best = (int)i;
	}
	if (best >= 0) {
		size_t b = p->stack[best].blen;

		*close_r = n >= b + 4 && p->lbuf[b + 2] == '-' &&
		    p->lbuf[b + 3] == '-';
	}
	return best;
}

/* The current line is a delimiter of stack[k]. */
static void
mime_delimiter(struct mime_parser *p, size_t k, bool close, bool at_eof)
{
	struct mime_pos e;
	struct mime_frame *f, *top;
	uint64_t start;

	/*
	 * RFC 2046 §5.1.1: the line end before the delimiter is part of
	 * it, unless it is not in the innermost part: a delimiter right
	 * after a header's blank line leaves the blank line to the header
	 * and the body empty.
	 */
	top = &p->stack[p->nstack - 1];
	start = top->in_header ? top->part->header.off : top->part->body.off;
	e = p->have_peol && p->peol.pos >= start ? p->peol : p->line;
	while (p->nstack > k + 1)
		mime_frame_end(p, &e);
	f = &p->stack[k];
	if (close)
		f->closed = true;
	else if (!at_eof && p->nparts < MAX_MIME_PARTS)
		(void)mime_parser_push(p, f->part, false);
	/* Otherwise the multipart's body just goes on (limit reached). */
}

/* ------------------------------------------------------------------ */
/* Feeding                                                             */

static void
mime_line_begin(struct mime_parser *p)
{
	p->line_start = false;
	p->line = p->cur;
	p->line_len = 0;
	p->line_cr = false;
	p->llen = 0;
	p->line_new_field = false;
}

static void
mime_line_bytes(struct mime_parser *p, const char *s, size_t n)
{
	struct mime_frame *f = &p->stack[p->nstack - 1];
	size_t m;

	if (p->line_len == 0 && f->in_header) {
		/* RFC 5322 §2.2.3: a line starting with white space
		 * continues the field; any other starts a new one. */
		if ((s[0] == ' ' || s[0] == '\t') && p->field_active) {
			p->line_new_field = false;
		} else {
			mime_field_finish(p);
			mime_field_begin(p);
			p->line_new_field = true;
		}
	}
	/* Only a line starting with '-' can be a delimiter: keep its
	 * start, skip the copy for the others. */
	if (p->line_len == 0 || p->llen > 0) {
		m = s[0] != '-' && p->line_len == 0 ? 0 :
		    sizeof(p->lbuf) - p->llen;
		if (m > n)
			m = n;
		memcpy(p->lbuf + p->llen, s, m);
		p->llen += m;
	}
	if (f->in_header)
		mime_field_append(p, s, n);
	p->cur.pos += n;
	p->cur.vpos += n;
	p->line_len += n;
	p->line_cr = s[n - 1] == '\r';
}

static void
mime_line_end(struct mime_parser *p)
{
	struct mime_pos eol = p->cur;
	uint64_t content = p->line_len;
	struct mime_frame *f;
	bool close;
	int k;

	if (p->line_cr) {
		/* The CR of CRLF is part of the line end. */
		eol.pos--;
		eol.vpos--;
		content--;
	}
	p->cur.pos++;
	p->cur.vpos += p->line_cr ? 1 : 2;	/* a bare LF reads as CRLF */
	p->cur.nlf++;

	k = mime_find_boundary(p, content > MIME_LBUF ? MIME_LBUF :
	    (size_t)content, &close);
	f = &p->stack[p->nstack - 1];
	if (k >= 0) {
		if (f->in_header && p->line_new_field)
			p->field_active = false;	/* the delimiter */
		mime_delimiter(p, (size_t)k, close, false);
	} else if (f->in_header) {
		if (content == 0) {
			if (p->line_new_field)
				p->field_active = false;
			else
				mime_field_finish(p);
			mime_header_done(p);
		} else if (p->line_cr && p->field_active && !p->field_skip &&
		    !p->field_trunc && p->field.len > 0 &&
		    p->field.data[p->field.len - 1] == '\r') {
			p->field.len--;
		}
	}
	p->have_peol = true;
	p->peol = eol;
	p->line_start = true;
}

struct mime_parser *
mime_parser_new(void)
{
	struct mime_parser *p = xcalloc(1, sizeof(*p));

	buf_init(&p->field, 0);
	p->line_start = true;
	p->root = mime_parser_push(p, NULL, true);
	return p;
}

void
mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	const char *s = data;

	while (len > 0) {
		const char *nl;
		size_t n;

		if (p->line_start)
			mime_line_begin(p);
		nl = memchr(s, '\n', len);
		n = nl != NULL ? (size_t)(nl - s) : len;
		if (n > 0)
			mime_line_bytes(p, s, n);
		if (nl == NULL)
			break;
		mime_line_end(p);
		s += n + 1;
		len -= n + 1;
	}
}

void
mime_parser_free(struct mime_parser **pp)
{
	struct mime_parser *p = *pp;
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nstack; i++)
		free(p->stack[i].boundary);
	buf_free(&p->field);
	mime_part_free(&p->root);
	free(p);
	*pp = NULL;
}

struct mime_part *
mime_parser_finish(struct mime_parser **pp)
{
	struct mime_parser *p = *pp;
	struct mime_part *root;
	bool close;
	int k;

	if (!p->line_start && p->line_len > 0) {
		/* A last line without line end. */
		k = mime_find_boundary(p, p->line_len > MIME_LBUF ? MIME_LBUF :
		    (size_t)p->line_len, &close);
		if (k >= 0) {
			if (p->stack[p->nstack - 1].in_header &&
			    p->line_new_field)
				p->field_active = false;
			mime_delimiter(p, (size_t)k, close, true);
		}
	}
	if (p->stack[p->nstack - 1].in_header) {
		mime_field_finish(p);
		p->line_new_field = false;
	}
	while (p->nstack > 0)
		mime_frame_end(p, &p->cur);
	root = p->root;
	p->root = NULL;
	mime_parser_free(pp);
	return root;
}

struct mime_part *
mime_parse(const void *data, size_t len)
{
	struct mime_parser *p = mime_parser_new();

	mime_parser_feed(p, data, len);
	return mime_parser_finish(&p);
}

int
mime_parse_fd(int fd, struct mime_part **root_r, const char **error_r)
{
	struct mime_parser *p = mime_parser_new();
	char b[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, b, sizeof(b));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = strerror(errno);
			mime_parser_free(&p);
			return -1;
		}
		mime_parser_feed(p, b, (size_t)n);
	}
	*root_r = mime_parser_finish(&p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers for the IMAP layer                                          */

const char *
mime_part_charset(const struct mime_part *part)
{
	const struct mime_param *cs;

	cs = mime_param_find(part->params, part->nparams, "charset");
	return cs != NULL && !cs->extended && cs->value[0] != '\0' ?
	    cs->value : "us-ascii";
}

int
mime_part_filename(const struct mime_part *part, struct buf *out)
{
	const struct mime_param *fn;

	fn = mime_param_find(part->disp_params, part->ndisp_params,
	    "filename");
	if (fn == NULL)
		fn = mime_param_find(part->params, part->nparams, "name");
	if (fn == NULL)
		return 0;
	return mime_param_decode(fn, out) < 0 ? -1 : 1;
}

/* ------------------------------------------------------------------ */
/* Rendering (RFC 3501 §7.4.2, §9)                                     */

int
mime_imap_nstring(struct buf *out, const char *s)
{
	const unsigned char *q;
	size_t len;
	bool quoted;

	if (s == NULL)
		return buf_append_str(out, "NIL");
	len = strlen(s);
	/* quoted = DQUOTE *QUOTED-CHAR DQUOTE: 7-bit, no CR or LF. */
	quoted = len <= MIME_MAX_QUOTED;
	for (q = (const unsigned char *)s; quoted && *q != '\0'; q++)
		quoted = *q < 0x80 && *q != '\r' && *q != '\n';
	if (!quoted)
		return buf_printf(out, "{%zu}\r\n", len) < 0 ? -1 :
		    buf_append(out, s, len);
	if (buf_append_char(out, '"') < 0)
		return -1;
	for (q = (const unsigned char *)s; *q != '\0'; q++) {
		if ((*q == '"' || *q == '\\') && buf_append_char(out, '\\') < 0)
			return -1;
		if (buf_append_char(out, (char)*q) < 0)
			return -1;
	}
	return buf_append_char(out, '"');
}

static int
mime_render_params(struct buf *out, const struct mime_param *params,
    size_t n)
{
	size_t i;

	if (n == 0)
		return buf_append_str(out, "NIL");
	if (buf_append_char(out, '(') < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if ((i > 0 && buf_append_char(out, ' ') < 0) ||
		    mime_imap_nstring(out, params[i].name) < 0 ||
		    buf_append_char(out, ' ') < 0 ||
		    mime_imap_nstring(out, params[i].value) < 0)
			return -1;
	}
	return buf_append_char(out, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static int
mime_render_ext_tail(struct buf *out, const struct mime_part *part)
{
	size_t i, n;

	if (part->disposition == NULL) {
		if (buf_append_str(out, "NIL") < 0)
			return -1;
	} else if (buf_append_char(out, '(') < 0 ||
	    mime_imap_nstring(out, part->disposition) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_params(out, part->disp_params,
	    part->ndisp_params) < 0 || buf_append_char(out, ')') < 0) {
		return -1;
	}
	if (buf_append_char(out, ' ') < 0)
		return -1;
	n = strv_len(part->languages);
	if (n == 0) {
		if (buf_append_str(out, "NIL") < 0)
			return -1;
	} else if (n == 1) {
		if (mime_imap_nstring(out, part->languages[0]) < 0)
			return -1;
	} else {
		if (buf_append_char(out, '(') < 0)
			return -1;
		for (i = 0; i < n; i++) {
			if ((i > 0 && buf_append_char(out, ' ') < 0) ||
			    mime_imap_nstring(out, part->languages[i]) < 0)
				return -1;
		}
		if (buf_append_char(out, ')') < 0)
			return -1;
	}
	if (buf_append_char(out, ' ') < 0)
		return -1;
	return mime_imap_nstring(out, part->location);
}

int
mime_render_addresses(struct buf *out, const char *value, size_t len)
{
	struct mime_address *list;
	size_t n, i;
	int ret = 0;

	n = value != NULL ? mime_address_parse(value, len, &list) : 0;
	if (n == 0) {
		if (value != NULL)
			mime_addresses_free(&list, n);
		return buf_append_str(out, "NIL");
	}
	if (buf_append_char(out, '(') < 0)
		ret = -1;
	for (i = 0; i < n && ret == 0; i++) {
		const struct mime_address *a = &list[i];

		if (buf_append_char(out, '(') < 0 ||
		    mime_imap_nstring(out, a->name) < 0 ||
		    buf_append_char(out, ' ') < 0 ||
		    mime_imap_nstring(out, a->route) < 0 ||
		    buf_append_char(out, ' ') < 0 ||
		    mime_imap_nstring(out, a->mailbox) < 0 ||
		    buf_append_char(out, ' ') < 0 ||
		    mime_imap_nstring(out, a->host) < 0 ||
		    buf_append_char(out, ')') < 0)
			ret = -1;
	}
	if (ret == 0)
		ret = buf_append_char(out, ')');
	mime_addresses_free(&list, n);
	return ret;
}

/* An address field; Sender and Reply-To fall back to From. */
static int
mime_render_addr_field(struct buf *out, const char *value,
    const char *fallback)
{
	struct mime_address *list;
	size_t n;

	if (value != NULL && fallback != NULL) {
		n = mime_address_parse(value, strlen(value), &list);
		mime_addresses_free(&list, n);
		if (n == 0)
			value = NULL;	/* present but empty */
	}
	if (value == NULL)
		value = fallback;
	return mime_render_addresses(out, value,
	    value != NULL ? strlen(value) : 0);
}

int
mime_render_envelope(const struct mime_part *msg, struct buf *out)
{
	static const struct mime_envelope none;
	const struct mime_envelope *e = msg->envelope != NULL ?
	    msg->envelope : &none;

	if (buf_append_char(out, '(') < 0 ||
	    mime_imap_nstring(out, e->date) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, e->subject) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->from, NULL) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->sender, e->from) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->reply_to, e->from) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->to, NULL) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->cc, NULL) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_addr_field(out, e->bcc, NULL) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, e->in_reply_to) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, e->message_id) < 0)
		return -1;
	return buf_append_char(out, ')');
}

/* Recursion is bounded: a tree is at most MAX_MIME_DEPTH deep. */
int
mime_render_bodystructure(const struct mime_part *part, bool extended,
    struct buf *out)
{
	const struct mime_part *c;

	if (buf_append_char(out, '(') < 0)
		return -1;
	if ((part->flags & MIME_PART_MULTIPART) != 0 &&
	    part->children != NULL) {
		/* body-type-mpart = 1*body SP media-subtype
		 *     [SP body-ext-mpart] */
		for (c = part->children; c != NULL; c = c->next) {
			if (mime_render_bodystructure(c, extended, out) < 0)
				return -1;
		}
		if (buf_append_char(out, ' ') < 0 ||
		    mime_imap_nstring(out, part->subtype) < 0)
			return -1;
		if (extended && (buf_append_char(out, ' ') < 0 ||
		    mime_render_params(out, part->params,
		    part->nparams) < 0 || buf_append_char(out, ' ') < 0 ||
		    mime_render_ext_tail(out, part) < 0))
			return -1;
		return buf_append_char(out, ')');
	}
	/* body-fields */
	if (mime_imap_nstring(out, part->type) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, part->subtype) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_params(out, part->params, part->nparams) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, part->id) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, part->description) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, part->encoding_name != NULL ?
	    part->encoding_name : "7bit") < 0 ||
	    buf_printf(out, " %llu", (unsigned long long)part->body.vlen) < 0)
		return -1;
	if ((part->flags & MIME_PART_MESSAGE) != 0 &&
	    part->children != NULL) {
		/* body-type-msg: envelope, body and lines follow. */
		if (buf_append_char(out, ' ') < 0 ||
		    mime_render_envelope(part->children, out) < 0 ||
		    buf_append_char(out, ' ') < 0 ||
		    mime_render_bodystructure(part->children, extended,
		    out) < 0 ||
		    buf_printf(out, " %llu",
		    (unsigned long long)part->lines) < 0)
			return -1;
	} else if ((part->flags & MIME_PART_TEXT) != 0) {
		if (buf_printf(out, " %llu",
		    (unsigned long long)part->lines) < 0)
			return -1;
	}
	/* body-ext-1part = body-fld-md5 SP body-fld-dsp SP ... */
	if (extended && (buf_append_char(out, ' ') < 0 ||
	    mime_imap_nstring(out, part->md5) < 0 ||
	    buf_append_char(out, ' ') < 0 ||
	    mime_render_ext_tail(out, part) < 0))
		return -1;
	return buf_append_char(out, ')');
}

/* ------------------------------------------------------------------ */
/* BODY[section]                                                       */

/* Part n (1-based) inside msg, a message (the top one or an
 * encapsulated one): its parts when multipart, else only part 1, msg
 * itself (RFC 3501 §6.4.5). */
static const struct mime_part *
mime_msg_child(const struct mime_part *msg, unsigned long n)
{
	const struct mime_part *c;

	if ((msg->flags & MIME_PART_MULTIPART) == 0)
		return n == 1 ? msg : NULL;
	for (c = msg->children; c != NULL && n > 1; c = c->next)
		n--;
	return c;
}

static void
mime_range_join(const struct mime_part *part, struct mime_range *r)
{
	r->off = part->header.off;
	r->voff = part->header.voff;
	r->len = part->body.off + part->body.len - part->header.off;
	r->vlen = part->body.voff + part->body.vlen - part->header.voff;
}

int
mime_section_find(const struct mime_part *root, const char *spec,
    struct mime_section *sec_r)
{
	const struct mime_part *part = NULL, *msg = root;
	const char *p = spec;
	bool missing = false, numbered = false;

	memset(sec_r, 0, sizeof(*sec_r));
	/* section-part = nz-number *("." nz-number) */
	while (*p >= '1' && *p <= '9') {
		unsigned long n = 0;
		int digits = 0;

		for (; *p >= '0' && *p <= '9'; p++) {
			if (++digits > 9)
				return -1;
			n = n * 10 + (unsigned long)(*p - '0');
		}
		numbered = true;
		if (!missing) {
			if (part == NULL) {
				part = mime_msg_child(root, n);
			} else if ((part->flags & MIME_PART_MESSAGE) != 0 &&
			    part->children != NULL) {
				part = mime_msg_child(part->children, n);
			} else if ((part->flags & MIME_PART_MULTIPART) != 0) {
				const struct mime_part *c = part->children;

				for (; c != NULL && n > 1; c = c->next)
					n--;
				part = c;
			} else {
				part = NULL;
			}
			missing = part == NULL;
		}
		if (*p == '\0')
			break;
		if (*p != '.')
			return -1;
		p++;
		if (*p == '\0')
			return -1;	/* "1." */
		if (!(*p >= '1' && *p <= '9'))
			break;		/* a keyword follows */
	}
	if (numbered && *p == '\0') {
		if (missing)
			return 0;
		sec_r->kind = MIME_SECTION_PART;
		sec_r->part = part;
		sec_r->range = part->body;
		return 1;
	}
	if (*p == '\0') {
		sec_r->kind = MIME_SECTION_ALL;
		sec_r->part = root;
		mime_range_join(root, &sec_r->range);
		return 1;
	}
	if (strcasecmp(p, "MIME") == 0) {
		if (!numbered)
			return -1;	/* MIME needs a part number */
		if (missing)
			return 0;
		sec_r->kind = MIME_SECTION_MIME;
		sec_r->part = part;
		sec_r->range = part->header;
		return 1;
	}
	if (strcasecmp(p, "HEADER") == 0)
		sec_r->kind = MIME_SECTION_HEADER;
	else if (strcasecmp(p, "HEADER.FIELDS") == 0)
		sec_r->kind = MIME_SECTION_HEADER_FIELDS;
	else if (strcasecmp(p, "HEADER.FIELDS.NOT") == 0)
		sec_r->kind = MIME_SECTION_HEADER_FIELDS_NOT;
	else if (strcasecmp(p, "TEXT") == 0)
		sec_r->kind = MIME_SECTION_TEXT;
	else
		return -1;
	if (missing)
		return 0;
	if (numbered) {
		/* Only a message/rfc822 part has a header and text. */
		if ((part->flags & MIME_PART_MESSAGE) == 0 ||
		    part->children == NULL)
			return 0;
		msg = part->children;
	}
	sec_r->part = msg;
	sec_r->range = sec_r->kind == MIME_SECTION_TEXT ? msg->body :
	    msg->header;
	return 1;
}
