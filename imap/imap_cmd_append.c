/*
 * imap_cmd_append: saving messages: APPEND with MULTIAPPEND (RFC 9051
 * §6.3.12, RFC 3502), COPY (§6.4.7), MOVE (RFC 6851), each answered
 * with the UIDs of the new messages (UIDPLUS, RFC 4315: APPENDUID,
 * COPYUID).
 *
 * APPEND arrives in pieces, before its command is complete: the parser
 * announces each message literal (IMAP_PARSE_APPEND), passes its bytes
 * (IMAP_PARSE_APPEND_DATA), ends it (IMAP_PARSE_APPEND_END), and only
 * then gives the command.  The bytes go straight into a file of the
 * store (store_append_*), never into memory; nothing is visible until
 * the command ends and every message was received, so a MULTIAPPEND is
 * all or nothing (RFC 3502 §6.3.11).  A message refused on the way
 * (unknown mailbox, too big, a NUL byte, a write error) ends the command
 * with a tagged NO at once; the parser skips what the client still
 * sends of it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "imap.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "xmalloc.h"

struct imap_append_ctx {
	char		*tag;
	struct imap_mbox *m;
	struct store_append *sa;
	uint32_t	 flags;
	uint64_t	 keywords;
	time_t		 date;
	bool		 open;		/* a message being written */
	/* quota (RFC 9208): checked as each message is announced */
	bool		 quota;		/* a limit is set */
	struct store_quota_limit qlimit;
	struct store_quota_usage qusage;
	uint64_t	 qbytes;	/* announced so far, literal sizes */
	uint64_t	 qstored;	/* as stored: without CRs */
	uint64_t	 qcount;
};

void
imap_append_free(struct imap_session *s)
{
	struct imap_append_ctx *a = s->append;

	if (a == NULL)
		return;
	store_append_abort(&a->sa);
	imap_mbox_unref(&a->m);
	free(a->tag);
	free(a);
	s->append = NULL;
}

/* Refuse the APPEND now: the parser drops the rest of it. */
static void
imap_append_refuse(struct imap_session *s, const char *tag, const char *text)
{
	imap_parser_append_reject(s->parser);
	imap_reply(s, "%s NO %s", tag, text);
	imap_append_free(s);
}

/* The biggest message accepted (message_size_limit; 0: no limit). */
static uint64_t
imap_append_limit(void)
{
	long long n = cfg_get_size("message_size_limit");

	return n > 0 ? (uint64_t)n : UINT64_MAX;
}

const char *
imap_append_limit_text(void)
{
	static char text[32];
	uint64_t n = imap_append_limit();

	/* RFC 7889 §4: NIL is "no limit". */
	if (n == UINT64_MAX)
		return "NIL";
	snprintf(text, sizeof(text), "%llu", (unsigned long long)n);
	return text;
}

void
imap_append_limit_capability(struct buf *out)
{
	uint64_t n = imap_append_limit();

	/* RFC 7889 §3: one limit for every mailbox, in the capability. */
	if (n != UINT64_MAX)
		buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)n);
}

/* RFC 9208 §4.3, RFC 5530 §3: the text of a refusal for quota. */
#define IMAP_OVERQUOTA \
	"[OVERQUOTA] Quota exceeded (mailbox for user is full)."

/*
 * The refusal of a message the store could not write, from the errno the
 * failing call left: a file system quota or a full disk is the user's
 * OVERQUOTA (RFC 5530 §3: deleting mail helps, retrying as is does not),
 * a mailbox made read-only NOPERM, anything else our SERVERBUG.
 */
static const char *
imap_append_write_error(int err)
{
	if (err == EDQUOT)
		return IMAP_OVERQUOTA;
	if (err == ENOSPC)
		return "[OVERQUOTA] Not enough disk space.";
	if (err == EACCES || err == EPERM || err == EROFS)
		return "[NOPERM] The mailbox is not writable.";
	return "[SERVERBUG] Internal error occurred. Refer to server log "
	    "for more information.";
}

void
imap_append_begin(struct imap_session *s, const struct imap_append_msg *msg)
{
	struct imap_append_ctx *a = s->append;
	const char *tag = imap_parser_tag(s->parser), *error;
	struct buf name;
	int kind, r;

	if (msg->index == 0) {
		imap_append_free(s);
		a = xcalloc(1, sizeof(*a));
		a->tag = xstrdup(tag);
		s->append = a;
		buf_init(&name, 0);
		if (imap_name_to_store(msg->mailbox, &name) < 0) {
			buf_free(&name);
			imap_append_refuse(s, a->tag, "[TRYCREATE] Mailbox "
			    "doesn't exist.");
			return;
		}
		a->m = imap_mbox_get(s->u, buf_cstr(&name), false, &kind,
		    &error);
		buf_free(&name);
		if (a->m == NULL) {
			if (kind == STORE_ERR_NONEXISTENT)
				/* RFC 9051 §6.3.12: the client may CREATE
				 * it and try again. */
				imap_append_refuse(s, a->tag, "[TRYCREATE] "
				    "Mailbox doesn't exist.");
			else {
				log_error("imap(%s): APPEND: %s", s->log_user,
				    error);
				imap_append_refuse(s, a->tag, "[SERVERBUG] "
				    "Internal error occurred. Refer to "
				    "server log for more information.");
			}
			return;
		}
		if (store_append_begin(a->m->mb, &a->sa, &error) < 0) {
			log_error("imap(%s): APPEND: %s", s->log_user, error);
			imap_append_refuse(s, a->tag, "[SERVERBUG] Internal "
			    "error occurred. Refer to server log for more "
			    "information.");
			return;
		}
		r = imap_quota_get(s, &a->qlimit, &a->qusage, &error);
		if (r < 0) {
			log_error("imap(%s): APPEND: quota: %s", s->log_user,
			    error);
			imap_append_refuse(s, a->tag, "[SERVERBUG] Internal "
			    "error occurred. Refer to server log for more "
			    "information.");
			return;
		}
		a->quota = r == 1;
	} else if (a == NULL) {
		/* An earlier message was refused: the parser skips. */
		return;
	}
	if (msg->utf8 && !s->utf8_accept) {
		/* RFC 6855 §4: the UTF8 form is for clients that enabled
		 * UTF8=ACCEPT.  (8-bit header fields in a plain literal are
		 * kept as they are: mail copied from elsewhere has them.) */
		imap_append_refuse(s, a->tag, "[CANNOT] UTF8 needs ENABLE "
		    "UTF8=ACCEPT first.");
		return;
	}
	if (msg->size > imap_append_limit()) {
		imap_append_refuse(s, a->tag, "[TOOBIG] Message too large.");
		return;
	}
	/* Refused before its data arrives: nothing of the command is
	 * saved (MULTIAPPEND is all or nothing). */
	if (a->quota && !store_quota_fits(&a->qlimit, &a->qusage,
	    a->qbytes + msg->size, a->qcount + 1)) {
		imap_append_refuse(s, a->tag, IMAP_OVERQUOTA);
		return;
	}
	a->qbytes += msg->size;
	a->qcount++;
	if (imap_flags_to_store(a->m->mb, &msg->flags, true, &a->flags,
	    &a->keywords, &error) < 0) {
		imap_append_refuse(s, a->tag, "[LIMIT] Too many keywords.");
		return;
	}
	a->date = msg->has_date ? msg->date : 0;
	if (store_append_msg_begin(a->sa, &error) < 0) {
		int err = errno;

		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, imap_append_write_error(err));
		return;
	}
	a->open = true;
	/* RFC 9051 §7.5: the client waits for this before the data. */
	if (msg->sync)
		imap_reply(s, "+ OK");
}

void
imap_append_data(struct imap_session *s, const void *data, size_t len)
{
	struct imap_append_ctx *a = s->append;
	const char *error;

	if (a == NULL || !a->open)
		return;
	if (a->quota) {
		const char *p = data, *end = p + len;
		size_t crs = 0;

		/* Maildir keeps LF line ends: the size on disk. */
		while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
			crs++;
			p++;
		}
		a->qstored += len - crs;
	}
	if (store_append_write(a->sa, data, len, &error) < 0) {
		int err = errno;

		/* DESIGN §3: ENOSPC and friends are a NO, never an OK. */
		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, imap_append_write_error(err));
	}
}

void
imap_append_end(struct imap_session *s, const struct imap_append_msg *msg)
{
	struct imap_append_ctx *a = s->append;
	const char *error;

	if (a == NULL || !a->open)
		return;
	a->open = false;
	if (msg->nul_seen && !msg->binary) {
		/* RFC 3516 §4.2: NUL only in a literal8. */
		imap_append_refuse(s, a->tag, "Message contains NUL "
		    "characters.");
		return;
	}
	if (store_append_msg_end(a->sa, a->flags, a->keywords, a->date,
	    &error) < 0) {
		int err = errno;

		log_error("imap(%s): APPEND: %s", s->log_user, error);
		imap_append_refuse(s, a->tag, imap_append_write_error(err));
	}
}

/* "304,319:320" of a list of UIDs in the order given. */
static void
imap_uid_list(const uint32_t *uids, size_t n, struct buf *out)
{
	struct imap_seq_range *r = xreallocarray(NULL, n + 1, sizeof(*r));
	size_t nr = 0, i;

	for (i = 0; i < n; i++) {
		if (nr > 0 && r[nr - 1].hi + 1 == uids[i])
			r[nr - 1].hi = uids[i];
		else {
			r[nr].lo = r[nr].hi = uids[i];
			nr++;
		}
	}
	imap_seqset_format(r, nr, out);
	free(r);
}

/* ---- CATENATE (RFC 4469) ---- */

/* Bytes of a URL part read from its message per step. */
#define IMAP_CAT_CHUNK		(64 * 1024)

static int
imap_cat_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 5092 §9 enc-mailbox: %XX escapes into out; -1 on a bad escape. */
static int
imap_cat_unescape(const char *s, size_t len, struct buf *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = imap_cat_hex((unsigned char)s[i + 1]);
			lo = imap_cat_hex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			buf_append_char(out, (char)(hi * 16 + lo));
			i += 2;
		} else
			buf_append_char(out, s[i]);
	}
	return 0;
}

/* A decimal number of 1..UINT32_MAX at *pp, which moves past it. */
static bool
imap_cat_number(const char **pp, uint32_t *val_r)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (*p < '1' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*pp = p;
	*val_r = (uint32_t)v;
	return true;
}

/*
 * Append the message or part a URL names to the message being saved:
 * "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=spec]", or ";UID=n..."
 * relative to the selected mailbox (RFC 4469 §5, RFC 5092 §6; keys in
 * any case).  Absolute URLs, PARTIAL, URLAUTH: BADURL (false).
 * *total counts the bytes of the message; *toobig_r when it would pass
 * the limit.
 */
static bool
imap_cat_url(struct imap_session *s, struct store_append *sa,
    const struct imap_cat_part *part, uint64_t *total, uint64_t *stored,
    bool *toobig_r)
{
	const char *url = part->data, *p, *semi, *error;
	struct imap_mbox *m = NULL;
	struct buf name, sname, data;
	uint32_t uidvalidity = 0, uid;
	const struct mime_part *tree;
	struct mime_section sec;
	uint64_t off, len, done;
	int64_t idx;
	int kind;
	bool ok = false;

	*toobig_r = false;
	if (strlen(url) != part->len)
		return false;
	buf_init(&name, 0);
	buf_init(&sname, 0);
	buf_init(&data, 0);
	if (url[0] == '/') {
		const char *end;

		p = url + 1;
		end = strstr(p, "/;");
		if (end == NULL)
			goto out;
		semi = memchr(p, ';', (size_t)(end - p));
		if (imap_cat_unescape(p, (size_t)((semi != NULL ? semi : end) -
		    p), &name) < 0 || name.len == 0)
			goto out;
		if (semi != NULL) {
			p = semi + 1;
			if (strncasecmp(p, "UIDVALIDITY=", 12) != 0)
				goto out;
			p += 12;
			if (!imap_cat_number(&p, &uidvalidity) || p != end)
				goto out;
		}
		p = end + 1;
		if (imap_name_to_store(buf_cstr(&name), &sname) < 0)
			goto out;
		m = imap_status_open(s, buf_cstr(&sname), &kind, &error);
	} else if (url[0] == ';' && s->sel != NULL) {
		/* Relative to the selected mailbox (RFC 4469 §5). */
		p = url;
		m = s->sel;
		m->refs++;
		if (imap_mbox_sync(m, &error) < 0) {
			imap_mbox_unref(&m);
			goto out;
		}
	} else
		goto out;
	if (m == NULL)
		goto out;
	if (uidvalidity != 0 && uidvalidity != store_mailbox_uidvalidity(m->mb))
		goto out;
	if (strncasecmp(p, ";UID=", 5) != 0)
		goto out;
	p += 5;
	if (!imap_cat_number(&p, &uid))
		goto out;
	idx = store_mailbox_find_uid(m->mb, uid);
	if (idx < 0)
		goto out;
	if (*p == '\0') {
		off = 0;
		len = store_mailbox_msg(m->mb, (uint32_t)idx)->vsize;
	} else {
		int r;

		if (strncasecmp(p, "/;SECTION=", 10) != 0 || p[10] == '\0')
			goto out;
		buf_reset(&name);
		if (imap_cat_unescape(p + 10, strlen(p + 10), &name) < 0 ||
		    strchr(buf_cstr(&name), '/') != NULL ||
		    strchr(buf_cstr(&name), ';') != NULL)
			goto out;
		if (imap_msg_tree(m, (uint32_t)idx, &tree, &error) < 0)
			goto out;
		r = mime_section_find(tree, buf_cstr(&name), &sec);
		/* HEADER.FIELDS needs a list a URL cannot carry. */
		if (r != 1 || sec.kind == MIME_SECTION_HEADER_FIELDS ||
		    sec.kind == MIME_SECTION_HEADER_FIELDS_NOT)
			goto out;
		off = sec.range.voff;
		len = sec.range.vlen;
	}
	if (*total + len > imap_append_limit() || *total + len < *total) {
		*toobig_r = true;
		goto out;
	}
	/* RFC 4469 §5: the octets as FETCH BODY[section] gives them. */
	for (done = 0; done < len; ) {
		uint64_t step = len - done < IMAP_CAT_CHUNK ? len - done :
		    IMAP_CAT_CHUNK;
		const char *q;
		size_t crs = 0;

		buf_reset(&data);
		if (imap_msg_read_range(m->mb, (uint32_t)idx, off + done, step,
		    IMAP_CAT_CHUNK, &data, &error) < 0 || data.len == 0)
			goto out;
		if (store_append_write(sa, data.data, data.len, &error) < 0) {
			log_error("imap(%s): APPEND: %s", s->log_user, error);
			goto out;
		}
		for (q = data.data; (q = memchr(q, '\r', (size_t)(data.data +
		    data.len - q))) != NULL; q++)
			crs++;
		*stored += data.len - crs;
		done += data.len;
	}
	*total += len;
	ok = true;
out:
	if (m != NULL)
		imap_mbox_unref(&m);
	buf_free(&name);
	buf_free(&sname);
	buf_free(&data);
	return ok;
}

/* "[BADURL url]" with what resp-text-code cannot hold (']', controls)
 * percent-encoded. */
static void
imap_cat_badurl(struct buf *b, const struct imap_cat_part *part)
{
	size_t i;

	buf_append_str(b, "[BADURL ");
	for (i = 0; i < part->len && i < 1000; i++) {
		unsigned char c = (unsigned char)part->data[i];

		if (c == ']' || c < 0x20 || c == 0x7f || c == 0xff)
			buf_printf(b, "%%%02X", c);
		else
			buf_append_char(b, (char)c);
	}
	buf_append_str(b, "] ");
}

/* APPEND with CATENATE: every message built and saved, or none. */
static void
imap_catenate(struct imap_session *s, const struct imap_cmd_append *c)
{
	struct store_quota_limit ql;
	struct store_quota_usage qu;
	struct store_append *sa = NULL;
	struct store_sync_cb cb;
	struct imap_mbox *m;
	uint32_t *uids = NULL;
	uint64_t qstored = 0;
	const char *error;
	struct buf name, b;
	size_t i, j, n = 0;
	int kind, qr;

	buf_init(&name, 0);
	buf_init(&b, 0);
	if (imap_name_to_store(c->mailbox, &name) < 0) {
		buf_free(&name);
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist.");
		return;
	}
	m = imap_mbox_get(s->u, buf_cstr(&name), false, &kind, &error);
	buf_free(&name);
	if (m == NULL) {
		if (kind == STORE_ERR_NONEXISTENT)
			imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't "
			    "exist.");
		else
			imap_tagged_fail(s, "APPEND", error);
		return;
	}
	if ((qr = imap_quota_get(s, &ql, &qu, &error)) < 0 ||
	    store_append_begin(m->mb, &sa, &error) < 0)
		goto fail;
	for (i = 0; i < c->count; i++) {
		const struct imap_append_msg *msg = &c->msgs[i];
		uint64_t total = 0;
		uint32_t flags;
		uint64_t kw;

		if (imap_flags_to_store(m->mb, &msg->flags, true, &flags, &kw,
		    &error) < 0) {
			buf_append_str(&b, "[LIMIT] Too many keywords.");
			goto refuse;
		}
		if (store_append_msg_begin(sa, &error) < 0)
			goto fail;
		for (j = 0; j < msg->nparts; j++) {
			const struct imap_cat_part *part = &msg->parts[j];
			bool toobig;

			if (!part->url) {
				const char *q;

				if (total + part->len > imap_append_limit()) {
					buf_append_str(&b, "[TOOBIG] Message "
					    "too large.");
					goto refuse;
				}
				if (store_append_write(sa, part->data,
				    part->len, &error) < 0)
					goto fail;
				total += part->len;
				qstored += part->len;
				for (q = part->data; (q = memchr(q, '\r',
				    (size_t)(part->data + part->len - q))) !=
				    NULL; q++)
					qstored--;
				continue;
			}
			if (!imap_cat_url(s, sa, part, &total, &qstored,
			    &toobig)) {
				if (toobig)
					buf_append_str(&b, "[TOOBIG] Message "
					    "too large.");
				else {
					imap_cat_badurl(&b, part);
					buf_append_str(&b, "CATENATE append "
					    "failed.");
				}
				goto refuse;
			}
		}
		if (store_append_msg_end(sa, flags, kw, msg->has_date ?
		    msg->date : 0, &error) < 0)
			goto fail;
	}
	if (qr == 1 && !store_quota_fits(&ql, &qu, qstored, c->count)) {
		buf_append_str(&b, IMAP_OVERQUOTA);
		goto refuse;
	}
	imap_mbox_sync_cb(m, &cb);
	if (store_append_commit(&sa, &cb, &uids, &n, &error) < 0)
		goto fail;
	imap_mbox_saved(m, uids, n);
	if (qr == 1)
		store_quota_update(s->u->su, (int64_t)qstored,
		    (int64_t)c->count);
	if (imap_mbox_sync(m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    m->name, error);
	if (uids != NULL) {
		/* RFC 4315 §3 */
		buf_printf(&b, "[APPENDUID %u ",
		    store_mailbox_uidvalidity(m->mb));
		imap_uid_list(uids, n, &b);
		buf_append_str(&b, "] ");
	}
	free(uids);
	imap_mbox_unref(&m);
	imap_tagged(s, "OK", "%sAppend completed.", buf_cstr(&b));
	buf_free(&b);
	return;
refuse:
	store_append_abort(&sa);
	imap_mbox_unref(&m);
	imap_tagged(s, "NO", "%s", buf_cstr(&b));
	buf_free(&b);
	return;
fail:
	store_append_abort(&sa);
	imap_mbox_unref(&m);
	buf_free(&b);
	imap_tagged_fail(s, "APPEND", error);
}

void
imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_append_ctx *a = s->append;
	struct store_sync_cb cb;
	uint32_t *uids = NULL;
	const char *error;
	size_t n = 0;
	struct buf b;

	if (a == NULL && cmd->u.append.count > 0 &&
	    cmd->u.append.msgs[0].nparts > 0) {
		imap_catenate(s, &cmd->u.append);
		return;
	}
	if (a == NULL || a->open) {
		/* Not reached: a refused APPEND gives no command. */
		imap_tagged(s, "NO", "Append failed.");
		imap_append_free(s);
		return;
	}
	imap_mbox_sync_cb(a->m, &cb);
	if (store_append_commit(&a->sa, &cb, &uids, &n, &error) < 0) {
		imap_append_free(s);
		imap_tagged_fail(s, "APPEND", error);
		return;
	}
	imap_mbox_saved(a->m, uids, n);
	if (a->quota)
		store_quota_update(s->u->su, (int64_t)a->qstored,
		    (int64_t)a->qcount);
	if (imap_mbox_sync(a->m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    a->m->name, error);
	buf_init(&b, 0);
	if (uids != NULL) {
		/* RFC 4315 §3 */
		buf_printf(&b, "[APPENDUID %u ",
		    store_mailbox_uidvalidity(a->m->mb));
		imap_uid_list(uids, n, &b);
		buf_append_str(&b, "] ");
	}
	free(uids);
	imap_append_free(s);
	imap_tagged(s, "OK", "%sAppend completed.", buf_cstr(&b));
	buf_free(&b);
}

/* ---- COPY and MOVE ---- */

void
imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd)
{
	bool move = cmd->type == IMAP_CMD_MOVE;
	struct store_mailbox *src = s->sel->mb;
	struct store_append *sa = NULL;
	uint32_t *pos = NULL, *src_uids = NULL, *dst_uids = NULL;
	struct imap_mbox *m;
	struct store_sync_cb cb;
	const char *error;
	struct buf name, b;
	size_t n = 0, i, k = 0, nd = 0;
	struct store_quota_limit ql;
	struct store_quota_usage qu;
	uint64_t qbytes = 0;
	int kind, qr = 0;

	if (imap_set_resolve(s, &cmd->u.copy.set, cmd->uid, &pos, &n,
	    &error) < 0) {
		imap_tagged(s, "BAD", "%s.", error);
		(void)imap_session_bad(s);
		return;
	}
	if (move && s->readonly) {
		free(pos);
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only.");
		return;
	}
	buf_init(&name, 0);
	if (imap_name_to_store(cmd->u.copy.mailbox, &name) < 0) {
		buf_free(&name);
		free(pos);
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist.");
		return;
	}
	if (move && strcmp(buf_cstr(&name), s->sel->name) == 0) {
		buf_free(&name);
		free(pos);
		imap_tagged(s, "NO", "[CANNOT] Can't move to the same "
		    "mailbox.");
		return;
	}
	m = imap_mbox_get(s->u, buf_cstr(&name), false, &kind, &error);
	buf_free(&name);
	if (m == NULL) {
		free(pos);
		if (kind == STORE_ERR_NONEXISTENT)
			imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't "
			    "exist.");
		else
			imap_tagged_fail(s, move ? "MOVE" : "COPY", error);
		return;
	}
	if (n == 0) {
		/* RFC 9051 §6.4.9: a UID set that names nothing is fine. */
		free(pos);
		imap_mbox_unref(&m);
		imap_tagged(s, "OK", "No messages found.");
		return;
	}
	if ((qr = imap_quota_get(s, &ql, &qu, &error)) < 0)
		goto fail;
	/* Counted even without a limit: MOVE's expunge takes the sizes
	 * off any maildirsize there is. */
	for (i = 0; i < n; i++) {
		int64_t idx = imap_view_index(s, pos[i]);

		if (idx >= 0)
			qbytes += store_quota_msg_size(src, (uint32_t)idx);
	}
	/* A MOVE leaves the usage as it was (one quota root for every
	 * mailbox), so a user over quota can still move mail to Trash. */
	if (qr == 1 && !move && !store_quota_fits(&ql, &qu, qbytes, n)) {
		free(pos);
		imap_mbox_unref(&m);
		imap_tagged(s, "NO", IMAP_OVERQUOTA);
		return;
	}
	if (store_append_begin(m->mb, &sa, &error) < 0)
		goto fail;
	src_uids = xreallocarray(NULL, n, sizeof(*src_uids));
	for (i = 0; i < n; i++) {
		int64_t idx = imap_view_index(s, pos[i]);
		const struct store_msg *sm;

		if (idx < 0) {
			/* RFC 2180 §4.4.1: all or nothing. */
			store_append_abort(&sa);
			free(pos);
			free(src_uids);
			imap_mbox_unref(&m);
			imap_tagged(s, "NO", "[EXPUNGEISSUED] Some of the "
			    "requested messages no longer exist.");
			return;
		}
		sm = store_mailbox_msg(src, (uint32_t)idx);
		if (store_append_copy(sa, src, (uint32_t)idx,
		    sm->flags & ~STORE_RECENT,
		    imap_keywords_map(src, sm->keywords, m->mb),
		    sm->internal_date, &error) < 0)
			goto fail;
		src_uids[k++] = sm->uid;
	}
	imap_mbox_sync_cb(m, &cb);
	if (store_append_commit(&sa, &cb, &dst_uids, &nd, &error) < 0)
		goto fail;
	imap_mbox_saved(m, dst_uids, nd);
	store_quota_update(s->u->su, (int64_t)qbytes, (int64_t)k);
	if (imap_mbox_sync(m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    m->name, error);
	buf_init(&b, 0);
	if (dst_uids != NULL && nd == k) {
		/* RFC 4315 §3 */
		buf_printf(&b, "[COPYUID %u ",
		    store_mailbox_uidvalidity(m->mb));
		imap_uid_list(src_uids, k, &b);
		buf_append_char(&b, ' ');
		imap_uid_list(dst_uids, nd, &b);
		buf_append_str(&b, "] ");
	}
	imap_mbox_unref(&m);
	if (!move) {
		imap_tagged(s, "OK", "%sCopy completed.", buf_cstr(&b));
	} else {
		/* RFC 6851 §3.3: COPYUID first, then the EXPUNGEs. */
		if (b.len > 0)
			imap_reply(s, "* OK %sMoved UIDs.", buf_cstr(&b));
		if (store_mailbox_expunge_uids(src, src_uids, k, &error) < 0 ||
		    imap_mbox_sync(s->sel, &error) < 0)
			imap_tagged_fail(s, "MOVE", error);
		else
			imap_tagged(s, "OK", "Move completed.");
	}
	buf_free(&b);
	free(pos);
	free(src_uids);
	free(dst_uids);
	return;
fail:
	store_append_abort(&sa);
	imap_mbox_unref(&m);
	free(pos);
	free(src_uids);
	imap_tagged_fail(s, move ? "MOVE" : "COPY", error);
}
