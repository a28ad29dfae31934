/*
 * str: small string helpers shared by every role (see str.h).
 *
 * Bounded copies, ASCII case folding, NULL-terminated string vectors,
 * RFC 3461 xtext and one overflow-checked decimal parser.  Nothing here
 * is locale dependent: mail protocols are ASCII where it matters, and a
 * locale must never change how an address or a keyword compares.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "xmalloc.h"

static int
str_ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int
str_is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

size_t
str_lcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

char *
str_lower(char *s)
{
	unsigned char *p;

	for (p = (unsigned char *)s; *p != '\0'; p++)
		*p = (unsigned char)str_ascii_lower(*p);
	return s;
}

bool
str_case_eq(const char *a, const char *b)
{
	const unsigned char *p = (const unsigned char *)a;
	const unsigned char *q = (const unsigned char *)b;

	for (; *p != '\0' && *q != '\0'; p++, q++) {
		if (str_ascii_lower(*p) != str_ascii_lower(*q))
			return false;
	}
	return *p == *q;
}

bool
str_starts_case(const char *s, const char *prefix)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *q = (const unsigned char *)prefix;

	for (; *q != '\0'; p++, q++) {
		if (*p == '\0' || str_ascii_lower(*p) != str_ascii_lower(*q))
			return false;
	}
	return true;
}

char *
str_trim(char *s)
{
	size_t len;

	while (str_is_space((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && str_is_space((unsigned char)s[len - 1]))
		len--;
	s[len] = '\0';
	return s;
}

char **
strv_split(const char *s, const char *seps)
{
	char **v = xcalloc(1, sizeof(*v));
	const char *p = s;

	while (*p != '\0') {
		size_t n;

		p += strspn(p, seps);
		if (*p == '\0')
			break;
		n = strcspn(p, seps);
		{
			char *w = xstrndup(p, n);

			strv_push(&v, w);
			free(w);
		}
		p += n;
	}
	return v;
}

size_t
strv_len(char *const *v)
{
	size_t n = 0;

	if (v == NULL)
		return 0;
	while (v[n] != NULL)
		n++;
	return n;
}

void
strv_push(char ***v, const char *s)
{
	size_t n = strv_len(*v);

	/* UNSAFE: n + 2 cannot overflow, n counts allocated pointers. */
	*v = xreallocarray(*v, n + 2, sizeof(**v));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

bool
strv_contains_case(char *const *v, const char *s)
{
	size_t i;

	if (v == NULL)
		return false;
	for (i = 0; v[i] != NULL; i++) {
		if (str_case_eq(v[i], s))
			return true;
	}
	return false;
}

void
strv_free(char ***v)
{
	size_t i;

	if (*v == NULL)
		return;
	for (i = 0; (*v)[i] != NULL; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
}

/*
 * RFC 3461 §4: xchar is any ASCII "!" (33) to "~" (126) except "+" and
 * "="; everything else is "+" followed by two upper case hex digits.
 */
static bool
xtext_is_xchar(unsigned char c)
{
	return c >= '!' && c <= '~' && c != '+' && c != '=';
}

char *
xtext_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	char *out, *o;
	size_t i;

	/* UNSAFE: worst case 3 bytes per input byte plus NUL. */
	if (len > (SIZE_MAX - 1) / 3)
		abort();
	out = xmalloc(len * 3 + 1);
	o = out;
	for (i = 0; i < len; i++) {
		if (xtext_is_xchar(p[i])) {
			*o++ = (char)p[i];
		} else {
			*o++ = '+';
			*o++ = hex[p[i] >> 4];
			*o++ = hex[p[i] & 0x0f];
		}
	}
	*o = '\0';
	return out;
}

static int
xtext_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	/* RFC 3461 requires upper case; accept lower case on input. */
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
xtext_decode(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(strlen(s) + 1);
	char *o = out;

	while (*p != '\0') {
		if (*p == '+') {
			int hi = xtext_hexval(p[1]);
			int lo = hi < 0 ? -1 : xtext_hexval(p[2]);

			/* A NUL byte cannot be returned in a C string. */
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			p += 3;
		} else if (xtext_is_xchar(*p)) {
			*o++ = (char)*p++;
		} else {
			goto bad;
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

int
str_to_ll(const char *s, long long min, long long max, long long *val_r)
{
	const char *p = s;
	bool neg = false;
	unsigned long long acc = 0, limit;

	if (*p == '-') {
		if (min >= 0)
			return -1;
		neg = true;
		p++;
	}
	if (*p == '\0')
		return -1;
	/* Magnitude limit: LLONG_MAX, or |LLONG_MIN| when negative. */
	limit = neg ? (unsigned long long)LLONG_MAX + 1 :
	    (unsigned long long)LLONG_MAX;
	for (; *p != '\0'; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return -1;
		d = (unsigned)(*p - '0');
		if (acc > (limit - d) / 10)
			return -1;
		acc = acc * 10 + d;
	}
	{
		long long v;

		if (neg)
			v = acc == (unsigned long long)LLONG_MAX + 1 ?
			    LLONG_MIN : -(long long)acc;
		else
			v = (long long)acc;
		if (v < min || v > max)
			return -1;
		*val_r = v;
	}
	return 0;
}

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
bool
str_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}
