/*
 * password: {SCHEME} password hashes (see password.h).
 *
 * Every crypt scheme is a crypt(3) setting prefix; hashing asks libcrypt
 * for a salt with that prefix, checking re-runs crypt_r() with the stored
 * string as the setting and compares the result in constant time.  The
 * scratch area of crypt_r() holds the password, so it is wiped after use.
 *
 * CRAM-MD5 secrets are MD5 chaining values, which no MD5 library API
 * hands out or takes back in, so this file carries its own MD5 (RFC 1321)
 * with an explicit state; the unit test holds it against OpenSSL's.
 * SCRAM-SHA-256 uses OpenSSL's PBKDF2 and HMAC.
 */
#include "config.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "buf.h"
#include "log.h"
#include "password.h"
#include "str.h"
#include "xmalloc.h"

enum password_kind {
	PASSWORD_CRYPT,
	PASSWORD_PLAIN,
	PASSWORD_CRAM,
	PASSWORD_SCRAM,
};

struct password_scheme {
	const char		*name;
	enum password_kind	 kind;
	const char		*prefix;	/* crypt_gensalt prefix */
	unsigned long		 count;		/* cost; 0: libcrypt's */
};

/*
 * Aliases are entries of their own, so "postern pw -s CLEAR" prints
 * {CLEAR} as doveadm does.  CRYPT hashes with bcrypt like Dovecot 2.3
 * (traditional DES keeps 8 bytes of the password); DES-CRYPT asks for
 * DES by name.  Every crypt scheme checks any crypt(3) string.
 */
static const struct password_scheme password_schemes[] = {
	{ "SHA512-CRYPT",	PASSWORD_CRYPT,	"$6$",	0 },
	{ "SHA256-CRYPT",	PASSWORD_CRYPT,	"$5$",	0 },
	{ "BLF-CRYPT",		PASSWORD_CRYPT,	"$2y$",	10 },
	{ "MD5-CRYPT",		PASSWORD_CRYPT,	"$1$",	0 },
	{ "CRYPT",		PASSWORD_CRYPT,	"$2y$",	10 },
	{ "DES-CRYPT",		PASSWORD_CRYPT,	"",	0 },
	{ "SCRAM-SHA-256",	PASSWORD_SCRAM,	NULL,	0 },
	{ "CRAM-MD5",		PASSWORD_CRAM,	NULL,	0 },
	{ "HMAC-MD5",		PASSWORD_CRAM,	NULL,	0 },
	{ "PLAIN",		PASSWORD_PLAIN,	NULL,	0 },
	{ "CLEAR",		PASSWORD_PLAIN,	NULL,	0 },
	{ "CLEARTEXT",		PASSWORD_PLAIN,	NULL,	0 },
};

#define PASSWORD_SCHEME_COUNT \
	(sizeof(password_schemes) / sizeof(password_schemes[0]))

static const struct password_scheme *
password_scheme_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < PASSWORD_SCHEME_COUNT; i++) {
		const char *n = password_schemes[i].name;

		if (strlen(n) == len && strncasecmp(n, name, len) == 0)
			return &password_schemes[i];
	}
	return NULL;
}

bool
password_scheme_known(const char *scheme)
{
	return password_scheme_find(scheme, strlen(scheme)) != NULL;
}

const char *
password_scheme_name(size_t i)
{
	return i < PASSWORD_SCHEME_COUNT ? password_schemes[i].name : NULL;
}

/*
 * The scheme of a stored string and where its data starts; a string
 * without braces is CRYPT.  NULL for an unknown or unterminated scheme.
 */
static const struct password_scheme *
password_stored_scheme(const char *stored, const char **data_r)
{
	const char *end;

	if (stored[0] != '{') {
		*data_r = stored;
		return password_scheme_find("CRYPT", 5);
	}
	if ((end = strchr(stored, '}')) == NULL)
		return NULL;
	*data_r = end + 1;
	return password_scheme_find(stored + 1, (size_t)(end - stored - 1));
}

const char *
password_scheme_data(const char *stored, const char *scheme)
{
	const struct password_scheme *s, *want;
	const char *data;

	if (stored[0] != '{' ||
	    (s = password_stored_scheme(stored, &data)) == NULL ||
	    (want = password_scheme_find(scheme, strlen(scheme))) == NULL ||
	    s->kind != want->kind)
		return NULL;
	/* Crypt schemes differ by more than kind. */
	if (s->kind == PASSWORD_CRYPT && s != want)
		return NULL;
	return data;
}

/*
 * Compare two byte strings without an early exit: the time depends only
 * on the longer length, never on where they differ.
 */
static bool
password_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n = alen > blen ? alen : blen;
	unsigned char diff = alen != blen;

	for (i = 0; i < n; i++) {
		unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
		unsigned char cb = i < blen ? (unsigned char)b[i] : 0;

		diff |= ca ^ cb;
	}
	return diff == 0;
}

/*
 * MD5, RFC 1321 §3, with the chaining value exposed.
 */

struct password_md5 {
	uint32_t	state[4];
	uint64_t	bytes;		/* message length so far */
	unsigned char	block[64];	/* bytes % 64 of them pending */
};

/* RFC 1321 §3.4: T[i] = floor(2^32 * abs(sin(i + 1))). */
static const uint32_t password_md5_t[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Rotation amounts of the four rounds, RFC 1321 §3.4. */
static const unsigned char password_md5_s[4][4] = {
	{ 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 },
	{ 6, 10, 15, 21 },
};

/* The initial chaining value, RFC 1321 §3.3. */
static const uint32_t password_md5_iv[4] = {
	0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
};

static uint32_t
password_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
password_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8 & 0xff;
	p[2] = v >> 16 & 0xff;
	p[3] = v >> 24 & 0xff;
}

/* One 64-byte block into the chaining value (RFC 1321 §3.4). */
static void
password_md5_block(uint32_t st[4], const unsigned char *p)
{
	uint32_t m[16], a = st[0], b = st[1], c = st[2], d = st[3], f, t;
	unsigned int i, g, s;

	for (i = 0; i < 16; i++)
		m[i] = password_le32(p + 4 * i);
	for (i = 0; i < 64; i++) {
		switch (i / 16) {
		case 0:
			f = (b & c) | (~b & d);
			g = i;
			break;
		case 1:
			f = (d & b) | (~d & c);
			g = (5 * i + 1) % 16;
			break;
		case 2:
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
			break;
		default:
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
			break;
		}
		s = password_md5_s[i / 16][i % 4];
		t = a + f + password_md5_t[i] + m[g];
		a = d;
		d = c;
		c = b;
		b = b + (t << s | t >> (32 - s));
	}
	st[0] += a;
	st[1] += b;
	st[2] += c;
	st[3] += d;
	explicit_bzero(m, sizeof(m));
}

/* Start from a chaining value that has already absorbed done bytes. */
static void
password_md5_start(struct password_md5 *ctx, const uint32_t st[4],
    uint64_t done)
{
	memcpy(ctx->state, st, sizeof(ctx->state));
	ctx->bytes = done;
}

static void
password_md5_update(struct password_md5 *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t have = ctx->bytes % 64, n;

	ctx->bytes += len;
	if (have > 0) {
		n = 64 - have < len ? 64 - have : len;
		memcpy(ctx->block + have, p, n);
		p += n;
		len -= n;
		if (have + n < 64)
			return;
		password_md5_block(ctx->state, ctx->block);
	}
	for (; len >= 64; p += 64, len -= 64)
		password_md5_block(ctx->state, p);
	memcpy(ctx->block, p, len);
}

/* Padding and length (RFC 1321 §3.1, §3.2), then the digest (§3.5). */
static void
password_md5_final(struct password_md5 *ctx,
    unsigned char out[PASSWORD_MD5_LEN])
{
	static const unsigned char pad[64] = { 0x80 };
	unsigned char len[8];
	uint64_t bits = ctx->bytes * 8;
	size_t have = ctx->bytes % 64;
	int i;

	for (i = 0; i < 8; i++)
		len[i] = bits >> (8 * i) & 0xff;
	password_md5_update(ctx, pad, have < 56 ? 56 - have : 120 - have);
	password_md5_update(ctx, len, 8);
	for (i = 0; i < 4; i++)
		password_put_le32(out + 4 * i, ctx->state[i]);
	explicit_bzero(ctx, sizeof(*ctx));
}

/*
 * CRAM-MD5 contexts, RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text)).
 */

void
password_cram_md5_init(struct password_cram_md5 *ctx, const void *pw,
    size_t len)
{
	unsigned char key[64], block[64];
	struct password_md5 md;
	size_t i;

	memset(key, 0, sizeof(key));
	if (len > sizeof(key)) {
		/* RFC 2104 §2: a longer key is replaced by its hash. */
		password_md5_start(&md, password_md5_iv, 0);
		password_md5_update(&md, pw, len);
		password_md5_final(&md, key);
	} else
		memcpy(key, pw, len);
	for (i = 0; i < sizeof(block); i++)
		block[i] = key[i] ^ 0x36;
	memcpy(ctx->inner, password_md5_iv, sizeof(ctx->inner));
	password_md5_block(ctx->inner, block);
	for (i = 0; i < sizeof(block); i++)
		block[i] = key[i] ^ 0x5c;
	memcpy(ctx->outer, password_md5_iv, sizeof(ctx->outer));
	password_md5_block(ctx->outer, block);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(block, sizeof(block));
}

static int
password_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
password_cram_md5_parse(const char *data, struct password_cram_md5 *ctx_r)
{
	unsigned char raw[32];
	size_t i;
	int hi, lo;

	if (strlen(data) != 2 * sizeof(raw))
		return -1;
	for (i = 0; i < sizeof(raw); i++) {
		if ((hi = password_hexval(data[2 * i])) < 0 ||
		    (lo = password_hexval(data[2 * i + 1])) < 0) {
			explicit_bzero(raw, sizeof(raw));
			return -1;
		}
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	/* Dovecot's order: outer a, b, c, d, then inner; little-endian. */
	for (i = 0; i < 4; i++) {
		ctx_r->outer[i] = password_le32(raw + 4 * i);
		ctx_r->inner[i] = password_le32(raw + 16 + 4 * i);
	}
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* The 64 hex digits of a context, Dovecot's order (see parse). */
static void
password_cram_md5_hex(const struct password_cram_md5 *ctx, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[32];
	size_t i;

	for (i = 0; i < 4; i++) {
		password_put_le32(raw + 4 * i, ctx->outer[i]);
		password_put_le32(raw + 16 + 4 * i, ctx->inner[i]);
	}
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[64] = '\0';
	explicit_bzero(raw, sizeof(raw));
}

void
password_cram_md5_hmac(const struct password_cram_md5 *ctx, const void *msg,
    size_t len, unsigned char mac_r[PASSWORD_MD5_LEN])
{
	unsigned char ih[PASSWORD_MD5_LEN];
	struct password_md5 md;

	/* Each state has absorbed exactly one 64-byte key block. */
	password_md5_start(&md, ctx->inner, 64);
	password_md5_update(&md, msg, len);
	password_md5_final(&md, ih);
	password_md5_start(&md, ctx->outer, 64);
	password_md5_update(&md, ih, sizeof(ih));
	password_md5_final(&md, mac_r);
	explicit_bzero(ih, sizeof(ih));
}

/*
 * SCRAM-SHA-256
 */

void
password_scram_sha256_keys(const char *pw, const unsigned char *salt,
    size_t saltlen, unsigned int iter,
    unsigned char stored_r[PASSWORD_SCRAM_KEY_LEN],
    unsigned char server_r[PASSWORD_SCRAM_KEY_LEN])
{
	unsigned char salted[PASSWORD_SCRAM_KEY_LEN];
	unsigned char client[PASSWORD_SCRAM_KEY_LEN];
	unsigned int len;

	if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)saltlen,
	    (int)iter, EVP_sha256(), sizeof(salted), salted) != 1 ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
	    (const unsigned char *)"Client Key", 10, client, &len) == NULL ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
	    (const unsigned char *)"Server Key", 10, server_r, &len) == NULL)
		log_fatal("SCRAM key derivation failed");
	SHA256(client, sizeof(client), stored_r);
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client, sizeof(client));
}

char *
password_scram_sha256_secret(const char *pw, const unsigned char *salt,
    size_t saltlen, unsigned int iter)
{
	unsigned char rsalt[16];
	unsigned char stored[PASSWORD_SCRAM_KEY_LEN];
	unsigned char server[PASSWORD_SCRAM_KEY_LEN];
	struct buf b;

	if (salt == NULL) {
		if (RAND_bytes(rsalt, sizeof(rsalt)) != 1)
			log_fatal("RAND_bytes failed");
		salt = rsalt;
		saltlen = sizeof(rsalt);
	}
	password_scram_sha256_keys(pw, salt, saltlen, iter, stored, server);
	buf_init(&b, 0);
	buf_printf(&b, "{SCRAM-SHA-256}%u,", iter);
	base64_encode(&b, salt, saltlen);
	buf_append_char(&b, ',');
	base64_encode(&b, stored, sizeof(stored));
	buf_append_char(&b, ',');
	base64_encode(&b, server, sizeof(server));
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	return buf_steal(&b);
}

/* Decode one base64 field of exactly want bytes (want 0: 1..max bytes). */
static int
password_b64_field(const char *p, size_t len, unsigned char *dst,
    size_t want, size_t max, size_t *len_r)
{
	struct buf b;
	int ret = -1;

	/* Room for what a valid field decodes to, plus decoding slack. */
	buf_init(&b, max + 3);
	if (base64_decode(&b, p, len) == 0 && b.len > 0 && b.len <= max &&
	    (want == 0 || b.len == want)) {
		memcpy(dst, b.data, b.len);
		if (len_r != NULL)
			*len_r = b.len;
		ret = 0;
	}
	if (b.data != NULL)
		explicit_bzero(b.data, b.cap);
	buf_free(&b);
	return ret;
}

int
password_scram_sha256_parse(const char *data, unsigned int *iter_r,
    unsigned char salt_r[MAX_SCRAM_SALT], size_t *saltlen_r,
    unsigned char stored_r[PASSWORD_SCRAM_KEY_LEN],
    unsigned char server_r[PASSWORD_SCRAM_KEY_LEN])
{
	const char *f[4], *p = data;
	size_t flen[4];
	long long iter;
	char num[16];
	int n = 0;

	while (n < 4) {
		const char *c = strchr(p, ',');

		f[n] = p;
		flen[n] = c != NULL ? (size_t)(c - p) : strlen(p);
		n++;
		if (c == NULL)
			break;
		p = c + 1;
	}
	if (n != 4 || strchr(f[3], ',') != NULL || flen[0] == 0 ||
	    flen[0] >= sizeof(num))
		return -1;
	memcpy(num, f[0], flen[0]);
	num[flen[0]] = '\0';
	if (str_to_ll(num, 1, MAX_SCRAM_ITERATIONS, &iter) < 0)
		return -1;
	*iter_r = (unsigned int)iter;
	if (password_b64_field(f[1], flen[1], salt_r, 0, MAX_SCRAM_SALT,
	    saltlen_r) < 0 ||
	    password_b64_field(f[2], flen[2], stored_r, PASSWORD_SCRAM_KEY_LEN,
	    PASSWORD_SCRAM_KEY_LEN, NULL) < 0 ||
	    password_b64_field(f[3], flen[3], server_r, PASSWORD_SCRAM_KEY_LEN,
	    PASSWORD_SCRAM_KEY_LEN, NULL) < 0)
		return -1;
	return 0;
}

/* Check pw against the data of a {SCRAM-SHA-256} secret. */
static int
password_scram_verify(const char *data, const char *pw)
{
	unsigned char salt[MAX_SCRAM_SALT];
	unsigned char stored[PASSWORD_SCRAM_KEY_LEN];
	unsigned char server[PASSWORD_SCRAM_KEY_LEN];
	unsigned char dstored[PASSWORD_SCRAM_KEY_LEN];
	unsigned char dserver[PASSWORD_SCRAM_KEY_LEN];
	unsigned int iter;
	size_t saltlen;
	int ret;

	if (password_scram_sha256_parse(data, &iter, salt, &saltlen, stored,
	    server) < 0)
		return -1;
	password_scram_sha256_keys(pw, salt, saltlen, iter, dstored, dserver);
	ret = CRYPTO_memcmp(stored, dstored, sizeof(stored)) == 0 &&
	    CRYPTO_memcmp(server, dserver, sizeof(server)) == 0 ? 1 : 0;
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	explicit_bzero(dstored, sizeof(dstored));
	explicit_bzero(dserver, sizeof(dserver));
	return ret;
}

/* Check pw against the data of a {CRAM-MD5} secret. */
static int
password_cram_verify(const char *data, const char *pw)
{
	struct password_cram_md5 want, got;
	int ret;

	if (password_cram_md5_parse(data, &want) < 0)
		return -1;
	password_cram_md5_init(&got, pw, strlen(pw));
	ret = CRYPTO_memcmp(&want, &got, sizeof(want)) == 0 ? 1 : 0;
	explicit_bzero(&want, sizeof(want));
	explicit_bzero(&got, sizeof(got));
	return ret;
}

/*
 * crypt(3)
 */

/* crypt_r() into a wiped scratch area; returns malloc'ed result or NULL. */
static char *
password_crypt(const char *pw, const char *setting)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	char *out, *res = NULL;

	out = crypt_r(pw, setting, cd);
	/* libcrypt reports failure as NULL or a string starting with '*'. */
	if (out != NULL && out[0] != '*' && out[0] != '\0')
		res = xstrdup(out);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return res;
}

static int
password_crypt_verify(const char *data, const char *pw)
{
	char *hash;
	int ret;

	/* An empty or locked ("*", "!") crypt string never matches. */
	if (data[0] == '\0' || data[0] == '*' || data[0] == '!')
		return 0;
	if ((hash = password_crypt(pw, data)) == NULL)
		return -1;
	ret = password_ct_equal(hash, strlen(hash), data, strlen(data)) ?
	    1 : 0;
	explicit_bzero(hash, strlen(hash));
	free(hash);
	return ret;
}

char *
password_hash(const char *scheme, const char *pw)
{
	const struct password_scheme *s;
	struct password_cram_md5 ctx;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], hex[65];
	char *hash, *res;

	if (scheme == NULL)
		scheme = PASSWORD_DEFAULT_SCHEME;
	if ((s = password_scheme_find(scheme, strlen(scheme))) == NULL)
		return NULL;
	switch (s->kind) {
	case PASSWORD_PLAIN:
		return xasprintf("{%s}%s", s->name, pw);
	case PASSWORD_SCRAM:
		return password_scram_sha256_secret(pw, NULL, 0,
		    PASSWORD_SCRAM_ITERATIONS);
	case PASSWORD_CRAM:
		password_cram_md5_init(&ctx, pw, strlen(pw));
		password_cram_md5_hex(&ctx, hex);
		res = xasprintf("{%s}%s", s->name, hex);
		explicit_bzero(&ctx, sizeof(ctx));
		explicit_bzero(hex, sizeof(hex));
		return res;
	case PASSWORD_CRYPT:
		break;
	}
	/* rbytes NULL: libcrypt reads the salt from the OS random source. */
	if (crypt_gensalt_rn(s->prefix, s->count, NULL, 0, salt,
	    sizeof(salt)) == NULL)
		return NULL;
	if ((hash = password_crypt(pw, salt)) == NULL)
		return NULL;
	res = xasprintf("{%s}%s", s->name, hash);
	free(hash);
	return res;
}

int
password_verify(const char *stored, const char *pw)
{
	const struct password_scheme *s;
	const char *data;

	if ((s = password_stored_scheme(stored, &data)) == NULL)
		return -1;
	switch (s->kind) {
	case PASSWORD_PLAIN:
		return password_ct_equal(data, strlen(data), pw, strlen(pw)) ?
		    1 : 0;
	case PASSWORD_CRAM:
		return password_cram_verify(data, pw);
	case PASSWORD_SCRAM:
		return password_scram_verify(data, pw);
	case PASSWORD_CRYPT:
		break;
	}
	return password_crypt_verify(data, pw);
}
