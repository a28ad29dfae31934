/*
 * base64: encoder and strict decoder for RFC 4648 §4 base64, used by the
 * SASL mechanisms and by the protocols that carry them.
 */
#include <stdbool.h>
#include <stdint.h>

#include "base64.h"
#include "buf.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;	/* UNSAFE: callers bound n */
}

int
base64_encode(struct buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i, o, start = out->len;
	char *d;

	if (buf_reserve(out, base64_encoded_len(len)) < 0)
		return -1;
	d = out->data + start;
	for (i = 0, o = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
		    p[i + 2];

		d[o++] = base64_alphabet[v >> 18 & 63];
		d[o++] = base64_alphabet[v >> 12 & 63];
		d[o++] = base64_alphabet[v >> 6 & 63];
		d[o++] = base64_alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		d[o++] = base64_alphabet[v >> 18 & 63];
		d[o++] = base64_alphabet[v >> 12 & 63];
		d[o++] = i + 1 < len ? base64_alphabet[v >> 6 & 63] : '=';
		d[o++] = '=';
	}
	out->len = start + o;
	return 0;
}

static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(struct buf *out, const char *in, size_t len)
{
	size_t i, start = out->len, o = 0;
	char *d;

	if (len % 4 != 0)
		return -1;
	if (buf_reserve(out, len / 4 * 3) < 0)
		return -1;
	d = out->data + start;
	for (i = 0; i < len; i += 4) {
		int a = base64_value(in[i]), b = base64_value(in[i + 1]);
		int c = base64_value(in[i + 2]), e = base64_value(in[i + 3]);
		bool last = i + 4 == len;

		if (a < 0 || b < 0)
			return -1;
		if (c < 0 || e < 0) {
			/* Only "xx==" or "xxx=" at the very end. */
			if (!last || in[i + 3] != '=' ||
			    (c < 0 && in[i + 2] != '='))
				return -1;
			if (c < 0) {
				if ((b & 15) != 0)
					return -1;
				d[o++] = (char)(a << 2 | b >> 4);
			} else {
				if ((c & 3) != 0)
					return -1;
				d[o++] = (char)(a << 2 | b >> 4);
				d[o++] = (char)((b & 15) << 4 | c >> 2);
			}
			break;
		}
		d[o++] = (char)(a << 2 | b >> 4);
		d[o++] = (char)((b & 15) << 4 | c >> 2);
		d[o++] = (char)((c & 3) << 6 | e);
	}
	out->len = start + o;
	return 0;
}
