/*
 * mailconn_zlib: the compression layer of a mail connection (IMAP
 * COMPRESS=DEFLATE, RFC 4978), written for mailconn.c and not used
 * elsewhere.  One deflate stream for what the session says and one
 * inflate stream for what the client sends, both raw deflate (RFC 1951:
 * no zlib header or checksum, RFC 4978 §4).  It moves bytes between
 * buffers only; reading, writing, back-pressure and the end of the
 * session stay in mailconn.c, which sits below the protocol and above
 * TLS (the TLS relay of the login process), as RFC 4978 §3 orders.
 *
 * Memory is bounded: the two zlib streams (about 300 KB together with
 * zlib's default settings), the compressed output waiting for the socket
 * (below MAILCONN_ZLIB_OUT_HIGH plus one chunk) and the compressed input
 * (at most the protocol's input buffer size).  A decompression bomb
 * cannot grow anything: inflate writes only into the room left in the
 * protocol's bounded input buffer and stops there until the protocol
 * consumed a command.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mailconn.h"
#include "xmalloc.h"

/* Compressed bytes made per deflate() call. */
#define MAILCONN_ZLIB_CHUNK	(16 * 1024)
/* Compressed output queued for the socket before deflating pauses: the
 * plaintext then stays in the session's output and back-pressure works
 * as without compression. */
#define MAILCONN_ZLIB_OUT_HIGH	(32 * 1024)
/* RFC 4978 §4: any window from 2^8 to 2^15 may be used by the peer, so
 * inflate takes the largest; negative means raw deflate to zlib. */
#define MAILCONN_ZLIB_WBITS	(-15)
/* zlib's default trade of speed against size (RFC 4978 §3: ours to
 * pick). */
#define MAILCONN_ZLIB_LEVEL	6
#define MAILCONN_ZLIB_MEMLEVEL	8

struct mailconn_zlib {
	z_stream	 ds;		/* deflate: our output */
	z_stream	 is;		/* inflate: the client's input */
	struct buf	 out;		/* compressed, for the socket */
	struct buf	 in;		/* compressed, from the socket */
	/* The last deflate() filled its output: part of the sync flush
	 * may still be inside zlib. */
	bool		 out_held;
	/* The last inflate() filled its output: more may be inside. */
	bool		 in_held;
	/* The client ended its stream (Z_STREAM_END). */
	bool		 in_ended;
};

struct mailconn_zlib *
mailconn_zlib_new(size_t max_in, const char **error_r)
{
	struct mailconn_zlib *z;

	z = xcalloc(1, sizeof(*z));
	if (deflateInit2(&z->ds, MAILCONN_ZLIB_LEVEL, Z_DEFLATED,
	    MAILCONN_ZLIB_WBITS, MAILCONN_ZLIB_MEMLEVEL,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		*error_r = "deflateInit2() failed";
		free(z);
		return NULL;
	}
	if (inflateInit2(&z->is, MAILCONN_ZLIB_WBITS) != Z_OK) {
		*error_r = "inflateInit2() failed";
		(void)deflateEnd(&z->ds);
		free(z);
		return NULL;
	}
	buf_init(&z->out, 0);
	buf_init(&z->in, max_in);
	return z;
}

void
mailconn_zlib_free(struct mailconn_zlib **zp)
{
	struct mailconn_zlib *z = *zp;

	if (z == NULL)
		return;
	*zp = NULL;
	(void)deflateEnd(&z->ds);
	(void)inflateEnd(&z->is);
	buf_free(&z->out);
	buf_free(&z->in);
	free(z);
}

struct buf *
mailconn_zlib_out(struct mailconn_zlib *z)
{
	return &z->out;
}

struct buf *
mailconn_zlib_in(struct mailconn_zlib *z)
{
	return &z->in;
}

bool
mailconn_zlib_pending(const struct mailconn_zlib *z)
{
	return z->out.len > 0 || z->out_held;
}

int
mailconn_zlib_deflate(struct mailconn_zlib *z, struct buf *plain)
{
	while (z->out.len < MAILCONN_ZLIB_OUT_HIGH &&
	    (plain->len > 0 || z->out_held)) {
		size_t avail = plain->len < UINT_MAX ? plain->len : UINT_MAX;
		size_t made, used;
		int ret;

		if (buf_reserve(&z->out, MAILCONN_ZLIB_CHUNK) < 0)
			return -1;
		z->ds.next_in = (Bytef *)plain->data;
		z->ds.avail_in = (uInt)avail;
		z->ds.next_out = (Bytef *)z->out.data + z->out.len;
		z->ds.avail_out = MAILCONN_ZLIB_CHUNK;
		/*
		 * Z_SYNC_FLUSH every time: whatever the session queued is
		 * complete on the wire when it is written, so a client
		 * waiting for a response (or idling) is never left with
		 * it stuck in the compressor.  Z_BUF_ERROR only says
		 * nothing was left to do.
		 */
		ret = deflate(&z->ds, Z_SYNC_FLUSH);
		if (ret != Z_OK && ret != Z_BUF_ERROR)
			return -1;
		used = avail - z->ds.avail_in;
		made = MAILCONN_ZLIB_CHUNK - z->ds.avail_out;
		buf_consume(plain, used);
		z->out.len += made;
		/* zlib: a flush is complete once it left room unused. */
		z->out_held = z->ds.avail_out == 0;
	}
	return 0;
}

int
mailconn_zlib_inflate(struct mailconn_zlib *z, struct buf *plain)
{
	size_t room, used, made;
	int ret;

	if (z->in_ended)
		return 0;
	if (z->in.len == 0 && !z->in_held)
		return 0;
	room = plain->max - plain->len;
	if (room == 0)
		return 0;
	if (room > UINT_MAX)
		room = UINT_MAX;
	if (buf_reserve(plain, room) < 0)
		return 0;
	z->is.next_in = (Bytef *)z->in.data;
	z->is.avail_in = (uInt)z->in.len;
	z->is.next_out = (Bytef *)plain->data + plain->len;
	z->is.avail_out = (uInt)room;
	ret = inflate(&z->is, Z_SYNC_FLUSH);
	used = z->in.len - z->is.avail_in;
	made = room - z->is.avail_out;
	buf_consume(&z->in, used);
	plain->len += made;
	switch (ret) {
	case Z_STREAM_END:
		/* The client closed its stream: nothing may follow. */
		z->in_ended = true;
		z->in_held = false;
		return made > 0 ? 1 : 0;
	case Z_OK:
	case Z_BUF_ERROR:
		break;
	default:
		/* Z_DATA_ERROR (not deflate data), Z_NEED_DICT (a zlib
		 * header: raw deflate has none), Z_MEM_ERROR.  Nothing
		 * after it can be decoded. */
		z->in_ended = true;
		z->in_held = false;
		return -1;
	}
	z->in_held = z->is.avail_out == 0;
	return used > 0 || made > 0 ? 1 : 0;
}

bool
mailconn_zlib_ended(const struct mailconn_zlib *z)
{
	return z->in_ended;
}
