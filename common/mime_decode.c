/*
 * mime_decode: from message bytes to UTF-8 text for SEARCH (see mime.h).
 *
 * Charsets: UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and Windows-1252
 * are converted here, because they are most of the mail there is and a
 * table is faster than iconv; every other name goes to glibc's iconv.
 * ISO-8859-1 is read as Windows-1252, as browsers do: mail labelled
 * Latin-1 often has Windows quotes in 0x80-0x9F, where Latin-1 only has
 * control characters nobody writes.  US-ASCII, UTF-8 and unknown names
 * are read as UTF-8 with each byte that is not part of a UTF-8 sequence
 * taken as Windows-1252, so mislabelled 8-bit text is still searchable.
 * Output is always well-formed UTF-8 (RFC 3629).
 *
 * Transfer encodings are decoded leniently: base64 ignores bytes outside
 * its alphabet (RFC 2045 §6.8 says to), quoted-printable keeps a '='
 * that does not start a valid escape and drops transport padding (RFC
 * 2045 §6.7 rule 3).  Everything streams: state between two feeds is a
 * few bytes.
 *
 * Not here: HTML to text, and full Unicode case folding or
 * normalisation (simple folding of the common alphabets only).
 */
#include "config.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mime.h"
#include "xmalloc.h"

/* Charset names longer than this are not looked up in iconv. */
#define MD_MAX_CHARSET	64
/* An incomplete character kept between two feeds of an iconv charset. */
#define MD_ICONV_PEND	32

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

static int
md_put_cp(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;

	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(out, b, n);
}

/* Windows-1252 0x80-0x9F; the five unassigned bytes stay C1 controls. */
static const uint16_t md_cp1252[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static uint32_t
md_cp1252_cp(unsigned char b)
{
	return b >= 0x80 && b < 0xA0 ? md_cp1252[b - 0x80] : b;
}

/*
 * Simple case folding of one code point (a subset of the Unicode
 * CaseFolding "C" and "S" mappings: the alphabets mail is written in).
 */
static uint32_t
md_fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c < 0x100) {
		if (c == 0xB5)
			return 0x3BC;		/* micro sign: mu */
		if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
			return c + 32;
		return c;
	}
	if (c < 0x180) {
		if (c == 0x130)
			return 'i';
		if (c == 0x178)
			return 0xFF;
		if (c == 0x17F)
			return 's';
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
			return (c & 1) ? c + 1 : c;
		if (c <= 0x137 || (c >= 0x14A && c <= 0x177))
			return (c & 1) ? c : c + 1;
		return c;
	}
	if (c < 0x250) {
		if (c >= 0x1CD && c <= 0x1DC)
			return (c & 1) ? c + 1 : c;
		if ((c >= 0x1DE && c <= 0x1EF) || (c >= 0x1F8 && c <= 0x21F) ||
		    (c >= 0x222 && c <= 0x233))
			return (c & 1) ? c : c + 1;
		return c;
	}
	if (c >= 0x370 && c < 0x400) {
		if (c == 0x386)
			return 0x3AC;
		if (c >= 0x388 && c <= 0x38A)
			return c + 37;
		if (c == 0x38C)
			return 0x3CC;
		if (c == 0x38E || c == 0x38F)
			return c + 63;
		if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB))
			return c + 32;
		if (c == 0x3C2)
			return 0x3C3;		/* final sigma */
		return c;
	}
	if (c >= 0x400 && c < 0x530) {
		if (c <= 0x40F)
			return c + 80;
		if (c <= 0x42F)
			return c + 32;
		if (c == 0x4C0)
			return 0x4CF;
		if (c >= 0x4C1 && c <= 0x4CE)
			return (c & 1) ? c + 1 : c;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) ||
		    c >= 0x4D0)
			return (c & 1) ? c : c + 1;
		return c;
	}
	if (c >= 0x531 && c <= 0x556)
		return c + 48;			/* Armenian */
	if (c >= 0x1E00 && c <= 0x1EFF) {
		if (c == 0x1E9E)
			return 0xDF;		/* capital sharp s */
		if (c <= 0x1E95 || c >= 0x1EA0)
			return (c & 1) ? c : c + 1;
		return c;
	}
	if (c == 0x2126)
		return 0x3C9;			/* ohm: omega */
	if (c == 0x212A)
		return 'k';			/* kelvin */
	if (c == 0x212B)
		return 0xE5;			/* angstrom */
	if (c >= 0xFF21 && c <= 0xFF3A)
		return c + 32;			/* fullwidth A-Z */
	return c;
}

/* A UTF-8 decoder that keeps an unfinished sequence between calls. */
struct md_utf8 {
	uint32_t	cp;
	unsigned int	need;		/* continuation bytes still due */
	unsigned char	lo, hi;		/* allowed range of the next one */
	unsigned char	seq[4];
	unsigned int	nseq;
};

/* Where decoded code points go. */
struct md_sink {
	struct buf	*out;
	bool		 fold;		/* mime_fold_utf8() */
	bool		 cp1252;	/* invalid bytes: Windows-1252 */
	int		 err;		/* -1 once out's max was passed */
};

static void
md_emit_cp(struct md_sink *k, uint32_t cp)
{
	if (k->fold)
		cp = md_fold_cp(cp);
	if (md_put_cp(k->out, cp) < 0)
		k->err = -1;
}

static void
md_emit_ascii(struct md_sink *k, const unsigned char *s, size_t n)
{
	char *o;
	size_t i;

	if (!k->fold) {
		if (buf_append(k->out, s, n) < 0)
			k->err = -1;
		return;
	}
	if (buf_reserve(k->out, n) < 0) {
		k->err = -1;
		return;
	}
	o = k->out->data + k->out->len;
	for (i = 0; i < n; i++)
		o[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	k->out->len += n;
}

static void
md_emit_invalid(struct md_sink *k, unsigned char b)
{
	md_emit_cp(k, k->cp1252 ? md_cp1252_cp(b) : 0xFFFD);
}

static void
md_utf8_run(struct md_utf8 *d, const unsigned char *s, size_t len,
    struct md_sink *k)
{
	size_t i = 0, j, x;

	while (i < len) {
		unsigned char b = s[i];

		if (d->need > 0) {
			if (b >= d->lo && b <= d->hi) {
				d->cp = d->cp << 6 | (b & 0x3F);
				d->seq[d->nseq++] = b;
				d->lo = 0x80;
				d->hi = 0xBF;
				i++;
				if (--d->need == 0) {
					md_emit_cp(k, d->cp);
					d->nseq = 0;
				}
				continue;
			}
			/* A broken sequence: its bytes are invalid, and b
			 * is looked at again as a start. */
			for (x = 0; x < d->nseq; x++)
				md_emit_invalid(k, d->seq[x]);
			d->need = 0;
			d->nseq = 0;
			continue;
		}
		if (b < 0x80) {
			for (j = i; j < len && s[j] < 0x80; j++)
				;
			md_emit_ascii(k, s + i, j - i);
			i = j;
			continue;
		}
		i++;
		d->lo = 0x80;
		d->hi = 0xBF;
		if (b >= 0xC2 && b <= 0xDF) {
			d->need = 1;
			d->cp = b & 0x1F;
		} else if (b >= 0xE0 && b <= 0xEF) {
			d->need = 2;
			d->cp = b & 0x0F;
			/* No overlongs, no surrogates (RFC 3629 §4). */
			if (b == 0xE0)
				d->lo = 0xA0;
			else if (b == 0xED)
				d->hi = 0x9F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			d->need = 3;
			d->cp = b & 0x07;
			if (b == 0xF0)
				d->lo = 0x90;
			else if (b == 0xF4)
				d->hi = 0x8F;
		} else {
			md_emit_invalid(k, b);
			continue;
		}
		d->seq[0] = b;
		d->nseq = 1;
	}
}

static void
md_utf8_finish(struct md_utf8 *d, struct md_sink *k)
{
	unsigned int x;

	for (x = 0; x < d->nseq; x++)
		md_emit_invalid(k, d->seq[x]);
	d->need = 0;
	d->nseq = 0;
}

int
mime_fold_utf8(const char *s, size_t len, struct buf *out)
{
	struct md_utf8 d;
	struct md_sink k = { out, true, false, 0 };

	memset(&d, 0, sizeof(d));
	md_utf8_run(&d, (const unsigned char *)s, len, &k);
	md_utf8_finish(&d, &k);
	return k.err;
}

/* ------------------------------------------------------------------ */
/* Charsets                                                            */

enum md_kind {
	MD_HYBRID,		/* UTF-8, other bytes as Windows-1252 */
	MD_CP1252,
	MD_LATIN9,		/* ISO-8859-15 */
	MD_ICONV,
};

struct mime_charset {
	enum md_kind	 kind;
	struct md_utf8	 u;
	iconv_t		 cd;
	char		 pend[MD_ICONV_PEND];
	size_t		 npend;
};

struct md_alias {
	const char	*name;
	enum md_kind	 kind;
};

static const struct md_alias md_aliases[] = {
	{ "utf-8", MD_HYBRID }, { "utf8", MD_HYBRID },
	{ "us-ascii", MD_HYBRID }, { "ascii", MD_HYBRID },
	{ "ansi_x3.4-1968", MD_HYBRID }, { "iso646-us", MD_HYBRID },
	{ "us", MD_HYBRID }, { "unknown-8bit", MD_HYBRID },
	{ "x-unknown", MD_HYBRID }, { "", MD_HYBRID },
	{ "iso-8859-1", MD_CP1252 }, { "iso8859-1", MD_CP1252 },
	{ "iso_8859-1", MD_CP1252 }, { "iso_8859-1:1987", MD_CP1252 },
	{ "latin1", MD_CP1252 }, { "latin-1", MD_CP1252 },
	{ "l1", MD_CP1252 }, { "cp819", MD_CP1252 },
	{ "iso-ir-100", MD_CP1252 }, { "windows-1252", MD_CP1252 },
	{ "cp1252", MD_CP1252 }, { "x-cp1252", MD_CP1252 },
	{ "iso-8859-15", MD_LATIN9 }, { "iso8859-15", MD_LATIN9 },
	{ "iso_8859-15", MD_LATIN9 }, { "latin9", MD_LATIN9 },
	{ "latin-9", MD_LATIN9 },
};

/* Names mail uses that glibc knows by another name. */
static const char *const md_iconv_names[][2] = {
	{ "iso-8859-8-i", "ISO-8859-8" },
	{ "ks_c_5601-1987", "CP949" },
	{ "x-gbk", "GBK" },
	{ "unicode-1-1-utf-7", "UTF-7" },
	{ "x-mac-roman", "MACINTOSH" },
};

/*
 * Lower-case copy of a charset name without quotes and white space;
 * false when it is too long or has bytes a charset name never has (iconv
 * must not see "//" suffixes or paths from a message).
 */
static bool
md_charset_norm(const char *name, char *dst, size_t size)
{
	size_t n = 0;
	const char *p;

	for (p = name; *p == ' ' || *p == '\t' || *p == '"'; p++)
		;
	for (; *p != '\0' && *p != '"' && *p != ' ' && *p != '\t'; p++) {
		char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-_.:+()", c) != NULL))
			return false;
		if (n + 1 >= size)
			return false;
		dst[n++] = c;
	}
	dst[n] = '\0';
	return true;
}

static bool
md_builtin(const char *norm, enum md_kind *kind_r)
{
	size_t i;

	for (i = 0; i < sizeof(md_aliases) / sizeof(md_aliases[0]); i++) {
		if (strcmp(norm, md_aliases[i].name) == 0) {
			*kind_r = md_aliases[i].kind;
			return true;
		}
	}
	return false;
}

static iconv_t
md_iconv_open(const char *norm)
{
	size_t i;

	for (i = 0; i < sizeof(md_iconv_names) / sizeof(md_iconv_names[0]);
	    i++) {
		if (strcmp(norm, md_iconv_names[i][0]) == 0)
			return iconv_open("UTF-8", md_iconv_names[i][1]);
	}
	return iconv_open("UTF-8", norm);
}

struct mime_charset *
mime_charset_new(const char *charset)
{
	struct mime_charset *cs = xcalloc(1, sizeof(*cs));
	char norm[MD_MAX_CHARSET];

	cs->kind = MD_HYBRID;
	cs->cd = (iconv_t)-1;
	if (charset == NULL || !md_charset_norm(charset, norm, sizeof(norm)))
		return cs;
	if (md_builtin(norm, &cs->kind))
		return cs;
	cs->cd = md_iconv_open(norm);
	if (cs->cd != (iconv_t)-1)
		cs->kind = MD_ICONV;
	return cs;
}

bool
mime_charset_known(const char *charset)
{
	char norm[MD_MAX_CHARSET];
	enum md_kind kind;
	iconv_t cd;

	if (!md_charset_norm(charset, norm, sizeof(norm)) || norm[0] == '\0')
		return false;
	if (md_builtin(norm, &kind))
		return true;
	if ((cd = md_iconv_open(norm)) == (iconv_t)-1)
		return false;
	iconv_close(cd);
	return true;
}

void
mime_charset_free(struct mime_charset **csp)
{
	if (*csp == NULL)
		return;
	if ((*csp)->cd != (iconv_t)-1)
		iconv_close((*csp)->cd);
	free(*csp);
	*csp = NULL;
}

/*
 * Convert in[0..len) with iconv; *consumed_r says how far.  Without
 * final an incomplete character at the end is left unconsumed; invalid
 * bytes become U+FFFD.
 */
static int
md_iconv_run(struct mime_charset *cs, const char *in, size_t len,
    bool final, struct buf *out, size_t *consumed_r)
{
	char *ip = (char *)(uintptr_t)in;	/* iconv's prototype */
	size_t left = len;

	while (left > 0) {
		char ob[1024], *op = ob;
		size_t oleft = sizeof(ob), r;
		int e;

		r = iconv(cs->cd, &ip, &left, &op, &oleft);
		e = errno;
		if (op > ob && buf_append(out, ob, (size_t)(op - ob)) < 0)
			return -1;
		if (r != (size_t)-1)
			break;
		if (e == E2BIG)
			continue;
		if (e == EINVAL && !final)
			break;
		/* EILSEQ, or a truncated character at the very end. */
		if (md_put_cp(out, 0xFFFD) < 0)
			return -1;
		ip++;
		left--;
	}
	*consumed_r = len - left;
	return 0;
}

static int
md_iconv_feed(struct mime_charset *cs, const char *data, size_t len,
    struct buf *out)
{
	size_t c, rest;

	/* First finish the character left over from the last feed. */
	while (cs->npend > 0 && len > 0) {
		char tmp[MD_ICONV_PEND];
		size_t take = sizeof(tmp) - cs->npend;

		if (take > len)
			take = len;
		memcpy(tmp, cs->pend, cs->npend);
		memcpy(tmp + cs->npend, data, take);
		if (md_iconv_run(cs, tmp, cs->npend + take, false, out,
		    &c) < 0)
			return -1;
		if (c >= cs->npend) {
			data += c - cs->npend;
			len -= c - cs->npend;
			cs->npend = 0;
			break;
		}
		if (take == len) {
			/* Still incomplete: everything waits. */
			rest = cs->npend + take - c;
			memmove(cs->pend, tmp + c, rest);
			cs->npend = rest;
			return 0;
		}
		/* No charset has characters this long: give one up. */
		if (md_put_cp(out, 0xFFFD) < 0)
			return -1;
		memmove(cs->pend, tmp + c + 1, cs->npend - c - 1);
		cs->npend -= c + 1;
	}
	if (md_iconv_run(cs, data, len, false, out, &c) < 0)
		return -1;
	rest = len - c;
	while (rest > sizeof(cs->pend)) {
		if (md_put_cp(out, 0xFFFD) < 0)
			return -1;
		c++;
		rest--;
	}
	memcpy(cs->pend, data + c, rest);
	cs->npend = rest;
	return 0;
}

int
mime_charset_feed(struct mime_charset *cs, const void *data, size_t len,
    struct buf *out)
{
	const unsigned char *s = data;
	struct md_sink k = { out, false, true, 0 };
	size_t i, j;

	if (len == 0)
		return 0;		/* data may be NULL then */
	switch (cs->kind) {
	case MD_HYBRID:
		md_utf8_run(&cs->u, s, len, &k);
		return k.err;
	case MD_CP1252:
	case MD_LATIN9:
		for (i = 0; i < len; i = j) {
			uint32_t cp;

			for (j = i; j < len && s[j] < 0x80; j++)
				;
			if (buf_append(out, s + i, j - i) < 0)
				return -1;
			if (j == len)
				break;
			cp = s[j++];
			if (cs->kind == MD_CP1252) {
				cp = md_cp1252_cp((unsigned char)cp);
			} else {
				/* The eight ISO-8859-15 changes to Latin-1. */
				switch (cp) {
				case 0xA4: cp = 0x20AC; break;
				case 0xA6: cp = 0x160; break;
				case 0xA8: cp = 0x161; break;
				case 0xB4: cp = 0x17D; break;
				case 0xB8: cp = 0x17E; break;
				case 0xBC: cp = 0x152; break;
				case 0xBD: cp = 0x153; break;
				case 0xBE: cp = 0x178; break;
				default: break;
				}
			}
			if (md_put_cp(out, cp) < 0)
				return -1;
		}
		return 0;
	case MD_ICONV:
		return md_iconv_feed(cs, data, len, out);
	}
	return 0;
}

int
mime_charset_finish(struct mime_charset *cs, struct buf *out)
{
	struct md_sink k = { out, false, true, 0 };
	char ob[64], *op = ob;
	size_t oleft = sizeof(ob), c;

	switch (cs->kind) {
	case MD_HYBRID:
		md_utf8_finish(&cs->u, &k);
		return k.err;
	case MD_ICONV:
		if (cs->npend > 0 &&
		    md_iconv_run(cs, cs->pend, cs->npend, true, out, &c) < 0)
			return -1;
		cs->npend = 0;
		/* Back to the initial shift state (ISO-2022-JP...). */
		(void)iconv(cs->cd, NULL, NULL, &op, &oleft);
		if (op > ob && buf_append(out, ob, (size_t)(op - ob)) < 0)
			return -1;
		return 0;
	default:
		return 0;
	}
}

int
mime_charset_to_utf8(const char *charset, const void *data, size_t len,
    struct buf *out)
{
	struct mime_charset *cs = mime_charset_new(charset);
	int ret;

	ret = mime_charset_feed(cs, data, len, out);
	if (ret == 0)
		ret = mime_charset_finish(cs, out);
	mime_charset_free(&cs);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Transfer encodings                                                  */

/* RFC 4648 §4 alphabet: value of each byte, -1 outside it. */
static const signed char md_b64_tab[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
	['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31,
	['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41,
	['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46,
	['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51,
	['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61,
	['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int
md_b64_val(unsigned char c)
{
	/* The table holds value + 1 so that its zeros mean "not base64". */
	return md_b64_tab[c] - 1;
}

static int
md_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

struct md_b64 {
	uint32_t	acc;
	unsigned int	n;		/* sextets in acc */
};

/* A quantum cut short by '=' or the end gives its whole bytes. */
static int
md_b64_flush(struct md_b64 *st, struct buf *out)
{
	unsigned char b[2];
	int ret = 0;

	if (st->n == 2) {
		b[0] = (unsigned char)(st->acc >> 4);
		ret = buf_append(out, b, 1);
	} else if (st->n == 3) {
		b[0] = (unsigned char)(st->acc >> 10);
		b[1] = (unsigned char)(st->acc >> 2);
		ret = buf_append(out, b, 2);
	}
	st->acc = 0;
	st->n = 0;
	return ret;
}

static int
md_b64_run(struct md_b64 *st, const unsigned char *s, size_t len,
    struct buf *out)
{
	unsigned char *o;
	size_t i;

	/* At most 3 bytes per 4 input bytes, plus a quantum begun before:
	 * room for all of it once, then no checks per byte. */
	if (buf_reserve(out, len / 4 * 3 + 3) < 0)
		return -1;
	o = (unsigned char *)out->data + out->len;
	for (i = 0; i < len; i++) {
		int v = md_b64_val(s[i]);

		if (v < 0) {
			/* RFC 2045 §6.8: other bytes are ignored. */
			if (s[i] != '=')
				continue;
			/* '=' ends a quantum: its whole bytes count. */
			if (st->n == 2) {
				*o++ = (unsigned char)(st->acc >> 4);
			} else if (st->n == 3) {
				*o++ = (unsigned char)(st->acc >> 10);
				*o++ = (unsigned char)(st->acc >> 2);
			}
			st->acc = 0;
			st->n = 0;
			continue;
		}
		st->acc = st->acc << 6 | (uint32_t)v;
		if (++st->n == 4) {
			*o++ = (unsigned char)(st->acc >> 16);
			*o++ = (unsigned char)(st->acc >> 8);
			*o++ = (unsigned char)st->acc;
			st->acc = 0;
			st->n = 0;
		}
	}
	out->len = (size_t)(o - (unsigned char *)out->data);
	return 0;
}

enum md_qp_state {
	MD_QP_TEXT,
	MD_QP_EQ,		/* after '=' */
	MD_QP_EQ_HEX,		/* after '=' and one hex digit */
	MD_QP_SOFT,		/* '=' then white space: a soft break */
};

#define MD_QP_WS	64

struct md_qp {
	enum md_qp_state state;
	unsigned char	 h1;
	bool		 cr;		/* a CR waits for its LF */
	char		 ws[MD_QP_WS];	/* white space that may be padding */
	size_t		 nws;
};

static int
md_qp_flush_ws(struct md_qp *q, struct buf *out)
{
	int ret = buf_append(out, q->ws, q->nws);

	q->nws = 0;
	return ret;
}

static int
md_qp_run(struct md_qp *q, const unsigned char *s, size_t len,
    struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		char b;

		switch (q->state) {
		case MD_QP_TEXT:
			if (q->cr) {
				q->cr = false;
				if (c == '\n') {
					/* Hard line break: white space before
					 * it is transport padding. */
					q->nws = 0;
					if (buf_append_char(out, '\n') < 0)
						return -1;
					i++;
					continue;
				}
				if (md_qp_flush_ws(q, out) < 0 ||
				    buf_append_char(out, '\r') < 0)
					return -1;
			}
			i++;
			if (c == '=') {
				if (md_qp_flush_ws(q, out) < 0)
					return -1;
				q->state = MD_QP_EQ;
			} else if (c == ' ' || c == '\t') {
				if (q->nws == MD_QP_WS &&
				    md_qp_flush_ws(q, out) < 0)
					return -1;
				q->ws[q->nws++] = (char)c;
			} else if (c == '\r') {
				q->cr = true;
			} else if (c == '\n') {
				q->nws = 0;
				if (buf_append_char(out, '\n') < 0)
					return -1;
			} else {
				if (md_qp_flush_ws(q, out) < 0 ||
				    buf_append_char(out, (char)c) < 0)
					return -1;
			}
			break;
		case MD_QP_EQ:
			if (md_hexval(c) >= 0) {
				q->h1 = c;
				q->state = MD_QP_EQ_HEX;
				i++;
			} else if (c == '\n') {
				q->state = MD_QP_TEXT;
				i++;
			} else if (c == '\r' || c == ' ' || c == '\t') {
				q->state = MD_QP_SOFT;
				i++;
			} else {
				/* Not an escape: the '=' is text. */
				if (buf_append_char(out, '=') < 0)
					return -1;
				q->state = MD_QP_TEXT;
			}
			break;
		case MD_QP_EQ_HEX:
			q->state = MD_QP_TEXT;
			if (md_hexval(c) >= 0) {
				b = (char)(md_hexval(q->h1) << 4 |
				    md_hexval(c));
				if (buf_append_char(out, b) < 0)
					return -1;
				i++;
			} else if (buf_append_char(out, '=') < 0 ||
			    buf_append_char(out, (char)q->h1) < 0) {
				return -1;
			}
			break;
		case MD_QP_SOFT:
			if (c == '\n') {
				q->state = MD_QP_TEXT;
				i++;
			} else if (c == '\r' || c == ' ' || c == '\t') {
				i++;
			} else {
				/* "= x": keep the '=', drop the space. */
				if (buf_append_char(out, '=') < 0)
					return -1;
				q->state = MD_QP_TEXT;
			}
			break;
		}
	}
	return 0;
}

static int
md_qp_finish(struct md_qp *q, struct buf *out)
{
	int ret = 0;

	if (q->state == MD_QP_EQ)
		ret = buf_append_char(out, '=');
	else if (q->state == MD_QP_EQ_HEX && buf_append_char(out, '=') == 0)
		ret = buf_append_char(out, (char)q->h1);
	else if (q->state == MD_QP_EQ_HEX)
		ret = -1;
	q->state = MD_QP_TEXT;
	q->nws = 0;		/* trailing white space: padding */
	q->cr = false;
	return ret;
}

/* ------------------------------------------------------------------ */
/* RFC 2047 encoded words                                              */

#define MD_WORD_CHARSET	64

struct md_word {
	char		 charset[MD_WORD_CHARSET];
	char		 enc;		/* 'b' or 'q' */
	const char	*text;
	size_t		 text_len;
	size_t		 len;		/* of the whole word */
};

/*
 * "=?charset?enc?text?=" at s (RFC 2047 §2), "charset*language" allowed
 * (RFC 2231 §5).  Encoded text has no white space and no '?'.
 */
static bool
md_word_parse(const char *s, size_t len, struct md_word *w)
{
	size_t i = 2, cs = 0, t;

	if (len < 8 || s[0] != '=' || s[1] != '?')
		return false;
	for (; i < len && s[i] != '?'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || cs + 1 >= sizeof(w->charset))
			return false;
		w->charset[cs++] = (char)c;
	}
	w->charset[cs] = '\0';
	if (cs == 0 || i + 3 >= len || s[i + 2] != '?')
		return false;
	w->enc = (char)(s[i + 1] | 0x20);
	if (w->enc != 'b' && w->enc != 'q')
		return false;
	t = i + 3;
	for (i = t; i < len && s[i] != '?'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f)
			return false;
	}
	if (i + 1 >= len || s[i + 1] != '=')
		return false;
	w->text = s + t;
	w->text_len = i - t;
	w->len = i + 2;
	{
		char *star = strchr(w->charset, '*');

		if (star != NULL)
			*star = '\0';
	}
	return true;
}

static int
md_word_decode(const struct md_word *w, struct buf *raw)
{
	size_t i;

	if (w->enc == 'b') {
		struct md_b64 st = { 0, 0 };

		if (md_b64_run(&st, (const unsigned char *)w->text,
		    w->text_len, raw) < 0)
			return -1;
		return md_b64_flush(&st, raw);
	}
	/* RFC 2047 §4.2: '_' is a space, =XX an octet. */
	for (i = 0; i < w->text_len; i++) {
		char c = w->text[i];
		int hi, lo;

		if (c == '_') {
			c = ' ';
		} else if (c == '=' && i + 2 < w->text_len &&
		    (hi = md_hexval((unsigned char)w->text[i + 1])) >= 0 &&
		    (lo = md_hexval((unsigned char)w->text[i + 2])) >= 0) {
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (buf_append_char(raw, c) < 0)
			return -1;
	}
	return 0;
}

struct md_words {
	struct buf	*out;
	struct buf	 raw;		/* decoded bytes of adjacent words */
	char		 charset[MD_WORD_CHARSET];
	struct buf	 plain;		/* text between words */
};

static int
md_words_flush_raw(struct md_words *st)
{
	int ret = 0;

	if (st->raw.len > 0)
		ret = mime_charset_to_utf8(st->charset, st->raw.data,
		    st->raw.len, st->out);
	buf_reset(&st->raw);
	return ret;
}

static int
md_words_flush_plain(struct md_words *st)
{
	int ret = 0;

	if (st->plain.len > 0)
		ret = mime_charset_to_utf8("utf-8", st->plain.data,
		    st->plain.len, st->out);
	buf_reset(&st->plain);
	return ret;
}

int
mime_decode_words(const char *s, size_t len, struct buf *out)
{
	struct md_words st;
	struct md_word w;
	size_t i = 0, ws = 0;
	bool after_word = false;
	int ret = 0;

	st.out = out;
	buf_init(&st.raw, 0);
	buf_init(&st.plain, 0);
	st.charset[0] = '\0';
	while (i < len && ret == 0) {
		char c = s[i];

		if (c == '=' && md_word_parse(s + i, len - i, &w)) {
			/* White space between two words is dropped (RFC
			 * 2047 §6.2); before the first it is text. */
			if (!after_word)
				ret = md_words_flush_plain(&st);
			/* Bytes of words in one charset are converted
			 * together: a character may be split between
			 * two words. */
			if (ret == 0 &&
			    strcasecmp(st.charset, w.charset) != 0) {
				ret = md_words_flush_raw(&st);
				memcpy(st.charset, w.charset,
				    sizeof(st.charset));
			}
			if (ret == 0)
				ret = md_word_decode(&w, &st.raw);
			i += w.len;
			after_word = true;
			ws = 0;
			continue;
		}
		i++;
		if (c == '\r' || c == '\n')
			continue;		/* unfolding */
		if (after_word && (c == ' ' || c == '\t')) {
			ws++;
			continue;
		}
		if (after_word) {
			ret = md_words_flush_raw(&st);
			st.charset[0] = '\0';
			after_word = false;
			/* The white space after the word is text. */
			while (ret == 0 && ws > 0) {
				ret = buf_append_char(&st.plain, ' ');
				ws--;
			}
		}
		if (ret == 0)
			ret = buf_append_char(&st.plain, c);
	}
	if (ret == 0)
		ret = md_words_flush_raw(&st);
	if (ret == 0)
		ret = md_words_flush_plain(&st);
	/* Trailing white space after the last word is dropped. */
	buf_free(&st.raw);
	buf_free(&st.plain);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Body decoder                                                        */

struct mime_body_decoder {
	enum mime_encoding	 enc;
	struct mime_charset	*cs;	/* NULL: bytes as decoded */
	struct buf		 tmp;
	struct md_b64		 b64;
	struct md_qp		 qp;
};

enum mime_encoding
mime_encoding_parse(const char *name)
{
	static const struct {
		const char		*name;
		enum mime_encoding	 enc;
	} encs[] = {
		{ "7bit", MIME_ENC_7BIT }, { "8bit", MIME_ENC_8BIT },
		{ "binary", MIME_ENC_BINARY }, { "base64", MIME_ENC_BASE64 },
		{ "quoted-printable", MIME_ENC_QP },
	};
	size_t i;

	if (name == NULL)
		return MIME_ENC_7BIT;
	for (i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
		if (strcasecmp(name, encs[i].name) == 0)
			return encs[i].enc;
	}
	return MIME_ENC_7BIT;
}

struct mime_body_decoder *
mime_body_decoder_new(enum mime_encoding enc, const char *charset)
{
	struct mime_body_decoder *d = xcalloc(1, sizeof(*d));

	d->enc = enc;
	d->cs = charset != NULL ? mime_charset_new(charset) : NULL;
	buf_init(&d->tmp, 0);
	return d;
}

/* Hand what the transfer decoding gave on to the charset. */
static int
md_body_pass(struct mime_body_decoder *d, const void *data, size_t len,
    struct buf *out)
{
	if (d->cs == NULL)
		return buf_append(out, data, len);
	return mime_charset_feed(d->cs, data, len, out);
}

int
mime_body_decoder_feed(struct mime_body_decoder *d, const void *data,
    size_t len, struct buf *out)
{
	int ret;

	switch (d->enc) {
	case MIME_ENC_BASE64:
		buf_reset(&d->tmp);
		ret = md_b64_run(&d->b64, data, len, &d->tmp);
		break;
	case MIME_ENC_QP:
		buf_reset(&d->tmp);
		ret = md_qp_run(&d->qp, data, len, &d->tmp);
		break;
	default:
		return md_body_pass(d, data, len, out);
	}
	if (ret == 0)
		ret = md_body_pass(d, d->tmp.data, d->tmp.len, out);
	buf_reset(&d->tmp);
	return ret;
}

int
mime_body_decoder_finish(struct mime_body_decoder *d, struct buf *out)
{
	int ret = 0;

	buf_reset(&d->tmp);
	if (d->enc == MIME_ENC_BASE64)
		ret = md_b64_flush(&d->b64, &d->tmp);
	else if (d->enc == MIME_ENC_QP)
		ret = md_qp_finish(&d->qp, &d->tmp);
	if (ret == 0 && d->tmp.len > 0)
		ret = md_body_pass(d, d->tmp.data, d->tmp.len, out);
	if (ret == 0 && d->cs != NULL)
		ret = mime_charset_finish(d->cs, out);
	buf_reset(&d->tmp);
	return ret;
}

void
mime_body_decoder_free(struct mime_body_decoder **dp)
{
	if (*dp == NULL)
		return;
	mime_charset_free(&(*dp)->cs);
	buf_free(&(*dp)->tmp);
	free(*dp);
	*dp = NULL;
}

/* ------------------------------------------------------------------ */
/* Substring search                                                    */

struct mime_search {
	unsigned char	*needle;	/* folded */
	size_t		 len;
	size_t		*fail;		/* KMP failure function */
	size_t		 matched;	/* needle bytes matched so far */
	bool		 found;
	struct md_utf8	 u;
	struct buf	 scratch;
};

struct mime_search *
mime_search_new(const char *needle, size_t len)
{
	struct mime_search *s = xcalloc(1, sizeof(*s));
	struct buf b;
	size_t i, k;

	buf_init(&b, 0);
	(void)mime_fold_utf8(needle, len, &b);
	s->len = b.len;
	s->needle = (unsigned char *)buf_steal(&b);
	s->fail = xcalloc(s->len + 1, sizeof(*s->fail));
	/* fail[i]: length of the longest proper border of needle[0..i]. */
	for (i = 1, k = 0; i < s->len; i++) {
		while (k > 0 && s->needle[i] != s->needle[k])
			k = s->fail[k - 1];
		if (s->needle[i] == s->needle[k])
			k++;
		s->fail[i] = k;
	}
	buf_init(&s->scratch, 0);
	s->found = s->len == 0;
	return s;
}

bool
mime_search_feed(struct mime_search *s, const char *text, size_t len)
{
	struct md_sink k = { &s->scratch, true, false, 0 };
	const unsigned char *t;
	size_t i, m = s->matched;

	if (s->found)
		return true;
	buf_reset(&s->scratch);
	md_utf8_run(&s->u, (const unsigned char *)text, len, &k);
	t = (const unsigned char *)s->scratch.data;
	/* Folded UTF-8 is self-synchronising: a byte match is a character
	 * match. */
	for (i = 0; i < s->scratch.len; i++) {
		while (m > 0 && t[i] != s->needle[m])
			m = s->fail[m - 1];
		if (t[i] == s->needle[m] && ++m == s->len) {
			s->found = true;
			break;
		}
	}
	s->matched = m;
	buf_reset(&s->scratch);
	return s->found;
}

void
mime_search_reset(struct mime_search *s)
{
	s->matched = 0;
	s->found = s->len == 0;
	memset(&s->u, 0, sizeof(s->u));
}

void
mime_search_free(struct mime_search **sp)
{
	if (*sp == NULL)
		return;
	free((*sp)->needle);
	free((*sp)->fail);
	buf_free(&(*sp)->scratch);
	free(*sp);
	*sp = NULL;
}

bool
mime_search_contains(const char *hay, size_t hay_len, const char *needle,
    size_t needle_len)
{
	struct mime_search *s = mime_search_new(needle, needle_len);
	bool found = mime_search_feed(s, hay, hay_len);

	mime_search_free(&s);
	return found;
}
