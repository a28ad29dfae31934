/*
 * store_msg: reading a message as clients get it.  The stored bytes go
 * through one filter (store_filter_run) that
 *   - turns a bare LF into CRLF (a CRLF already there stays as it is; a
 *     bare CR is passed through unchanged), since POP3 and IMAP speak
 *     CRLF (RFC 1939 §3, RFC 3501 §2.2), and
 *   - for mbox, removes one level of mboxrd quoting (RFC 4155 §2): a line
 *     that starts with one or more '>' followed by "From " loses one '>'
 *     (local writes mboxrd, so this is exactly the inverse of its
 *     quoting; for an mboxo writer, a ">From " line of the original
 *     message reads back as "From ", which mboxo cannot tell apart).
 * The same filter computes vsize (store_vsize_fd), in counting mode, so
 * the size the index reports is by construction what store_msg_read()
 * yields.  The filter keeps its state between calls, so input and
 * output may be cut at any byte.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store_private.h"
#include "xmalloc.h"

static const char store_from[] = "From ";

void
store_filter_init(struct store_filter *f, bool unquote)
{
	memset(f, 0, sizeof(*f));
	f->unquote = unquote;
	f->bol = true;
}

bool
store_filter_pending(const struct store_filter *f)
{
	return f->owe_gt > 0 || f->pend_pos < f->pend_len || f->checking;
}

/* Output what is owed; false when out is full first. */
static bool
store_filter_flush(struct store_filter *f, char *out, size_t outsize,
    size_t *o)
{
	while (f->owe_gt > 0) {
		if (out != NULL) {
			if (*o == outsize)
				return false;
			out[*o] = '>';
		}
		(*o)++;
		f->owe_gt--;
		f->out_count++;
	}
	while (f->pend_pos < f->pend_len) {
		if (out != NULL) {
			if (*o == outsize)
				return false;
			out[*o] = f->pend[f->pend_pos];
		}
		(*o)++;
		f->pend_pos++;
		f->out_count++;
	}
	f->pend_pos = f->pend_len = 0;
	return true;
}

/* A line start turned out not to be quoting: owe what was held back. */
static void
store_filter_release(struct store_filter *f, bool matched)
{
	f->owe_gt = matched ? f->gt - 1 : f->gt;
	memcpy(f->pend, store_from, f->from);
	f->pend_len = f->from;
	f->pend_pos = 0;
	f->checking = false;
	f->gt = 0;
	f->from = 0;
	f->prev_cr = false;
}

size_t
store_filter_run(struct store_filter *f, const char *in, size_t inlen,
    char *out, size_t outsize, size_t *outlen_r)
{
	size_t i = 0, o = 0;

	for (;;) {
		char c;

		if (!store_filter_flush(f, out, outsize, &o) || i == inlen ||
		    (out != NULL && o == outsize))
			break;
		c = in[i];
		if (f->bol && f->unquote && !f->checking && c == '>') {
			f->checking = true;
			f->bol = false;
		}
		if (f->checking) {
			if (c == '>' && f->from == 0) {
				f->gt++;
				i++;
				continue;
			}
			if (c == store_from[f->from]) {
				i++;
				if (++f->from == sizeof(store_from) - 1)
					store_filter_release(f, true);
				continue;
			}
			/* Not quoting: owe the bytes, then c as usual. */
			store_filter_release(f, false);
			continue;
		}
		if (c == '\n') {
			if (!f->prev_cr) {
				f->pend[0] = '\r';
				f->pend[1] = '\n';
				f->pend_len = 2;
			} else {
				f->pend[0] = '\n';
				f->pend_len = 1;
			}
			f->pend_pos = 0;
			f->bol = true;
			f->prev_cr = false;
			i++;
			continue;
		}
		/* The common case: copy up to the next CR or LF at once. */
		{
			size_t run = inlen - i, room;
			const char *nl = memchr(in + i, '\n', run);

			if (nl != NULL)
				run = (size_t)(nl - (in + i));
			if (out != NULL) {
				room = outsize - o;
				if (run > room)
					run = room;
				memcpy(out + o, in + i, run);
			}
			o += run;
			f->out_count += run;
			i += run;
			f->bol = false;
			f->prev_cr = in[i - 1] == '\r';
		}
	}
	*outlen_r = o;
	return i;
}

size_t
store_filter_finish(struct store_filter *f, char *out, size_t outsize)
{
	size_t o = 0;

	if (f->checking)
		store_filter_release(f, false);
	(void)store_filter_flush(f, out, outsize, &o);
	return o;
}

int
store_vsize_fd(int fd, off_t offset, off_t len, bool unquote,
    uint64_t *vsize_r)
{
	struct store_filter f;
	char *chunk = xmalloc(STORE_IO_CHUNK);
	off_t done = 0;
	size_t olen;

	store_filter_init(&f, unquote);
	while (done < len) {
		size_t want = (size_t)(len - done) < STORE_IO_CHUNK ?
		    (size_t)(len - done) : STORE_IO_CHUNK;
		ssize_t n = pread(fd, chunk, want, offset + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;	/* shorter than it was */
			free(chunk);
			return -1;
		}
		(void)store_filter_run(&f, chunk, (size_t)n, NULL, 0, &olen);
		done += n;
	}
	(void)store_filter_finish(&f, NULL, 0);
	free(chunk);
	*vsize_r = f.out_count;
	return 0;
}

/* ---- streams ---- */

struct store_msg_stream {
	int		 fd;
	off_t		 pos, end;	/* raw bytes still to read */
	struct store_filter f;
	char		*raw;
	size_t		 raw_len, raw_pos;
	bool		 finished;
};

int
store_msg_open(struct store_mailbox *mb, uint32_t idx,
    struct store_msg_stream **s_r, const char **error_r)
{
	struct store_msg_stream *s;
	off_t off, len;
	int fd;

	if (idx >= mb->count)
		log_panic("store_msg_open: index %u out of range", idx);
	if (mb->be->msg_open(mb, idx, &fd, &off, &len, error_r) < 0)
		return -1;
	s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->pos = off;
	s->end = off + len;
	s->raw = xmalloc(STORE_IO_CHUNK);
	store_filter_init(&s->f, mb->unquote);
	*s_r = s;
	return 0;
}

ssize_t
store_msg_read(struct store_msg_stream *s, void *buf, size_t size)
{
	size_t o = 0, olen, used;

	while (o < size) {
		if (s->raw_pos == s->raw_len && s->pos < s->end) {
			size_t want = (size_t)(s->end - s->pos) <
			    STORE_IO_CHUNK ? (size_t)(s->end - s->pos) :
			    STORE_IO_CHUNK;
			ssize_t n = pread(s->fd, s->raw, want, s->pos);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n == 0)
					errno = EIO;	/* file shrank */
				return o > 0 ? (ssize_t)o : -1;
			}
			s->pos += n;
			s->raw_len = (size_t)n;
			s->raw_pos = 0;
		}
		if (s->raw_pos == s->raw_len) {
			/* All input given: what a line start held back. */
			o += store_filter_finish(&s->f, (char *)buf + o,
			    size - o);
			break;
		}
		used = store_filter_run(&s->f, s->raw + s->raw_pos,
		    s->raw_len - s->raw_pos, (char *)buf + o, size - o, &olen);
		s->raw_pos += used;
		o += olen;
		if (olen == 0 && used == 0)
			break;
	}
	return (ssize_t)o;
}

void
store_msg_close(struct store_msg_stream **sp)
{
	struct store_msg_stream *s = *sp;

	if (s == NULL)
		return;
	close(s->fd);
	free(s->raw);
	free(s);
	*sp = NULL;
}
