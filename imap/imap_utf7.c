/*
 * imap_utf7: modified UTF-7 <-> UTF-8 for mailbox names (RFC 3501
 * §5.1.3).  Printable ASCII but '&' stands for itself, "&-" is '&', and
 * everything else is UTF-16 in base64 with ',' for '/', between '&' and
 * '-'.  The decoder accepts only the canonical form (see imap_utf7.h).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "imap_utf7.h"
#include "str.h"

static const char utf7_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
utf7_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int
utf7_put_utf8(struct buf *dest, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(dest, u, n);
}

/*
 * Decode the base64 run starting at src[*ip] (just after '&') up to and
 * including its '-'.  Returns 0 with *ip past the '-', or -1.
 */
static int
utf7_decode_run(const char *src, size_t len, size_t *ip, struct buf *dest)
{
	uint32_t acc = 0, high = 0;
	unsigned int nbits = 0;
	size_t i = *ip, units = 0;

	for (;; i++) {
		int v;

		if (i >= len)
			return -1;	/* a name must end in ASCII */
		if (src[i] == '-')
			break;
		v = utf7_b64_value((unsigned char)src[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 16) {
			uint32_t unit = (acc >> (nbits - 16)) & 0xffff;

			nbits -= 16;
			acc &= (1u << nbits) - 1;
			units++;
			if (unit >= 0xd800 && unit <= 0xdbff) {
				if (high != 0)
					return -1;
				high = unit;
				continue;
			}
			if (unit >= 0xdc00 && unit <= 0xdfff) {
				if (high == 0)
					return -1;
				unit = 0x10000 + ((high - 0xd800) << 10) +
				    (unit - 0xdc00);
				high = 0;
			} else if (high != 0)
				return -1;
			/* Printable ASCII must stand for itself, and NUL is
			 * never a name character. */
			if ((unit >= 0x20 && unit <= 0x7e) || unit == 0)
				return -1;
			if (utf7_put_utf8(dest, unit) < 0)
				return -1;
		}
	}
	/* Padding: fewer than 6 bits, all zero; no empty run, no lone
	 * high surrogate. */
	if (units == 0 || nbits >= 6 || acc != 0 || high != 0)
		return -1;
	*ip = i + 1;
	return 0;
}

int
imap_utf7_to_utf8(const char *src, size_t len, struct buf *dest)
{
	size_t i = 0;
	bool after_run = false;

	while (i < len) {
		unsigned char c = (unsigned char)src[i];

		if (c == '&') {
			if (i + 1 < len && src[i + 1] == '-') {
				if (buf_append_char(dest, '&') < 0)
					return -1;
				i += 2;
				after_run = false;
				continue;
			}
			/* "-&": two runs in a row should have been one. */
			if (after_run)
				return -1;
			i++;
			if (utf7_decode_run(src, len, &i, dest) < 0)
				return -1;
			after_run = true;
			continue;
		}
		if (c < 0x20 || c > 0x7e)
			return -1;
		if (buf_append_char(dest, (char)c) < 0)
			return -1;
		after_run = false;
		i++;
	}
	return 0;
}

bool
imap_utf7_valid(const char *src, size_t len)
{
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = imap_utf7_to_utf8(src, len, &b) == 0;
	buf_free(&b);
	return ok;
}

/* Next code point of valid UTF-8 at s[*ip]. */
static uint32_t
utf7_next_cp(const unsigned char *s, size_t *ip)
{
	size_t i = *ip;
	uint32_t cp;

	if (s[i] < 0x80) {
		*ip = i + 1;
		return s[i];
	}
	if (s[i] < 0xe0) {
		cp = ((uint32_t)(s[i] & 0x1f) << 6) | (s[i + 1] & 0x3f);
		*ip = i + 2;
	} else if (s[i] < 0xf0) {
		cp = ((uint32_t)(s[i] & 0x0f) << 12) |
		    ((uint32_t)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
		*ip = i + 3;
	} else {
		cp = ((uint32_t)(s[i] & 0x07) << 18) |
		    ((uint32_t)(s[i + 1] & 0x3f) << 12) |
		    ((uint32_t)(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
		*ip = i + 4;
	}
	return cp;
}

struct utf7_out {
	struct buf	*dest;
	uint32_t	 acc;
	unsigned int	 nbits;
	bool		 in_run;
	bool		 failed;
};

static void
utf7_put(struct utf7_out *o, char c)
{
	if (buf_append_char(o->dest, c) < 0)
		o->failed = true;
}

static void
utf7_put_unit(struct utf7_out *o, uint32_t unit)
{
	o->acc = (o->acc << 16) | unit;
	o->nbits += 16;
	while (o->nbits >= 6) {
		o->nbits -= 6;
		utf7_put(o, utf7_b64[(o->acc >> o->nbits) & 0x3f]);
	}
	o->acc &= (1u << o->nbits) - 1;
}

static void
utf7_end_run(struct utf7_out *o)
{
	if (!o->in_run)
		return;
	if (o->nbits > 0)
		utf7_put(o, utf7_b64[(o->acc << (6 - o->nbits)) & 0x3f]);
	utf7_put(o, '-');
	o->acc = 0;
	o->nbits = 0;
	o->in_run = false;
}

int
imap_utf7_from_utf8(const char *src, size_t len, struct buf *dest)
{
	const unsigned char *s = (const unsigned char *)src;
	struct utf7_out o;
	size_t i = 0;

	if (!str_utf8_valid(src, len) ||
	    (len > 0 && memchr(src, '\0', len) != NULL))
		return -1;
	memset(&o, 0, sizeof(o));
	o.dest = dest;
	while (i < len && !o.failed) {
		uint32_t cp = utf7_next_cp(s, &i);

		if (cp >= 0x20 && cp <= 0x7e) {
			utf7_end_run(&o);
			utf7_put(&o, (char)cp);
			if (cp == '&')
				utf7_put(&o, '-');
			continue;
		}
		if (!o.in_run) {
			utf7_put(&o, '&');
			o.in_run = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			utf7_put_unit(&o, 0xd800 + (cp >> 10));
			utf7_put_unit(&o, 0xdc00 + (cp & 0x3ff));
		} else
			utf7_put_unit(&o, cp);
	}
	utf7_end_run(&o);
	return o.failed ? -1 : 0;
}
