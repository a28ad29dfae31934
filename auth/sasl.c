/*
 * sasl: the server side of PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 as
 * pure state machines.  Each mechanism is one step function over decoded
 * client bytes; credentials come from the lookup callback.  Secrets are
 * compared in constant time and wiped as soon as they are used.  An
 * unknown user walks the same path as a known one with a wrong password
 * (fake SCRAM salt, dummy CRAM-MD5 key), so the answers do not tell
 * them apart.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

#include "sasl.h"

#define SCRAM_KEY_LEN	SHA256_DIGEST_LENGTH
#define SCRAM_SALT_LEN	16
#define SCRAM_NONCE_RAW	18		/* 24 base64 characters */

enum sasl_mech_id {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_CRAM_MD5,
	SASL_MECH_SCRAM_SHA_256,
};

struct sasl_mech {
	const char		*name;
	enum sasl_mech_id	 id;
	bool			 needs_secret;
};

static const struct sasl_mech sasl_mechs[] = {
	{ "PLAIN",		SASL_MECH_PLAIN,		false },
	{ "LOGIN",		SASL_MECH_LOGIN,		false },
	{ "CRAM-MD5",		SASL_MECH_CRAM_MD5,		true },
	{ "SCRAM-SHA-256",	SASL_MECH_SCRAM_SHA_256,	true },
};

struct sasl_server {
	const struct sasl_mech	*mech;
	int			 state;
	bool			 finished;
	char			*service;
	char			*hostname;
	sasl_lookup_cb		*lookup;
	void			*ctx;
	char			*user;
	char			*authzid;
	char			*fixed_nonce;	/* tests */
	char			*challenge;	/* CRAM-MD5 */
	/* SCRAM-SHA-256 */
	char			*gs2_header;
	char			*client_first_bare;
	char			*server_first;
	char			*nonce;
	unsigned char		 stored_key[SCRAM_KEY_LEN];
	unsigned char		 server_key[SCRAM_KEY_LEN];
	bool			 user_ok;
};

static const struct sasl_mech *
sasl_mech_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(sasl_mechs) / sizeof(sasl_mechs[0]); i++)
		if (strcasecmp(sasl_mechs[i].name, name) == 0)
			return &sasl_mechs[i];
	return NULL;
}

bool
sasl_mech_known(const char *name)
{
	return sasl_mech_find(name) != NULL;
}

bool
sasl_mech_needs_secret(const char *name)
{
	const struct sasl_mech *m = sasl_mech_find(name);

	return m != NULL && m->needs_secret;
}

static void
sasl_random(void *p, size_t n)
{
	if (RAND_bytes(p, (int)n) != 1)
		log_fatal("RAND_bytes failed");
}

struct sasl_server *
sasl_server_new(const char *mech, const char *service, const char *hostname,
    sasl_lookup_cb *lookup, void *ctx)
{
	const struct sasl_mech *m = sasl_mech_find(mech);
	struct sasl_server *s;

	if (m == NULL)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->mech = m;
	s->service = xstrdup(service != NULL ? service : "smtp");
	s->hostname = xstrdup(hostname != NULL ? hostname : "localhost");
	s->lookup = lookup;
	s->ctx = ctx;
	return s;
}

static void
sasl_free_str(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void
sasl_server_free(struct sasl_server **sp)
{
	struct sasl_server *s = *sp;

	if (s == NULL)
		return;
	sasl_free_str(&s->service);
	sasl_free_str(&s->hostname);
	sasl_free_str(&s->user);
	sasl_free_str(&s->authzid);
	sasl_free_str(&s->fixed_nonce);
	sasl_free_str(&s->challenge);
	sasl_free_str(&s->gs2_header);
	sasl_free_str(&s->client_first_bare);
	sasl_free_str(&s->server_first);
	sasl_free_str(&s->nonce);
	explicit_bzero(s, sizeof(*s));
	free(s);
	*sp = NULL;
}

void
sasl_server_set_nonce(struct sasl_server *s, const char *nonce)
{
	sasl_free_str(&s->fixed_nonce);
	s->fixed_nonce = xstrdup(nonce);
}

const char *
sasl_server_user(const struct sasl_server *s)
{
	return s->user;
}

const char *
sasl_server_authzid(const struct sasl_server *s)
{
	return s->authzid;
}

const char *
sasl_server_mech(const struct sasl_server *s)
{
	return s->mech->name;
}

/* A user name: 1..MAX_SASL_USER bytes of valid UTF-8 without controls. */
static bool
sasl_user_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > MAX_SASL_USER || !str_utf8_valid(p, len))
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static enum sasl_result
sasl_verify(struct sasl_server *s, const char *password,
    const char **error_r)
{
	int ret;

	ret = s->lookup(SASL_LOOKUP_VERIFY, s->user, password, NULL, s->ctx,
	    error_r);
	if (ret > 0)
		return SASL_OK;
	if (ret == 0) {
		*error_r = "authentication failed";
		return SASL_FAIL;
	}
	return SASL_TEMPFAIL;
}

/*
 * PLAIN, RFC 4616 §2: [authzid] NUL authcid NUL passwd.  An authzid other
 * than the authcid would be proxy authorization, which we do not grant.
 */
static enum sasl_result
sasl_plain_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
    struct buf *out, const char **error_r)
{
	const char *p = (const char *)in, *nul1, *nul2;
	size_t zlen, clen, plen;
	enum sasl_result ret;
	char *password;

	(void)out;
	if (in == NULL) {
		if (s->state++ > 0) {
			*error_r = "missing response";
			return SASL_FAIL;
		}
		return SASL_CONTINUE;	/* empty challenge */
	}
	if ((nul1 = memchr(p, '\0', inlen)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', inlen - (nul1 + 1 - p))) == NULL) {
		*error_r = "malformed PLAIN response";
		return SASL_FAIL;
	}
	zlen = nul1 - p;
	clen = nul2 - (nul1 + 1);
	plen = inlen - (nul2 + 1 - p);
	if (memchr(nul2 + 1, '\0', plen) != NULL || plen == 0 ||
	    !sasl_user_ok(nul1 + 1, clen) ||
	    (zlen > 0 && !sasl_user_ok(p, zlen))) {
		*error_r = "malformed PLAIN response";
		return SASL_FAIL;
	}
	s->user = xstrndup(nul1 + 1, clen);
	if (zlen > 0)
		s->authzid = xstrndup(p, zlen);
	password = xstrndup(nul2 + 1, plen);
	ret = sasl_verify(s, password, error_r);
	sasl_free_str(&password);
	if (ret == SASL_OK && s->authzid != NULL &&
	    strcmp(s->authzid, s->user) != 0) {
		*error_r = "authorization identity not permitted";
		return SASL_FAIL;
	}
	return ret;
}

/* LOGIN: "Username:" and "Password:" prompts, one value per response. */
static enum sasl_result
sasl_login_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
    struct buf *out, const char **error_r)
{
	enum sasl_result ret;
	char *password;

	if (s->state == 0 && in == NULL) {
		s->state = 1;
		buf_append_str(out, "Username:");
		return SASL_CONTINUE;
	}
	if (in == NULL) {
		*error_r = "missing response";
		return SASL_FAIL;
	}
	if (s->state <= 1) {
		/* The username, as a response or as the initial response. */
		if (!sasl_user_ok((const char *)in, inlen)) {
			*error_r = "malformed LOGIN user name";
			return SASL_FAIL;
		}
		s->user = xstrndup((const char *)in, inlen);
		s->state = 2;
		buf_append_str(out, "Password:");
		return SASL_CONTINUE;
	}
	if (inlen == 0 || memchr(in, '\0', inlen) != NULL) {
		*error_r = "malformed LOGIN password";
		return SASL_FAIL;
	}
	password = xstrndup((const char *)in, inlen);
	ret = sasl_verify(s, password, error_r);
	explicit_bzero(password, inlen);
	free(password);
	return ret;
}

/* The secret's data if it is stored as plaintext ({PLAIN} and aliases). */
static const char *
sasl_plain_secret(const char *secret)
{
	return password_scheme_data(secret, "PLAIN");
}

static int
sasl_lookup_secret(struct sasl_server *s, char **secret_r,
    const char **error_r)
{
	*secret_r = NULL;
	return s->lookup(SASL_LOOKUP_SECRET, s->user, NULL, secret_r, s->ctx,
	    error_r);
}

/*
 * The HMAC-MD5 contexts of user's key from a {CRAM-MD5} secret (the
 * contexts themselves) or a {PLAIN} one.  Returns 1 usable, 0 unknown
 * user or a secret CRAM-MD5 cannot use (a crypt hash), -1 temporary
 * failure.
 */
static int
sasl_cram_md5_key(struct sasl_server *s, struct password_cram_md5 *ctx,
    const char **error_r)
{
	const char *data;
	char *secret = NULL;
	int ret;

	ret = sasl_lookup_secret(s, &secret, error_r);
	if (ret <= 0 || secret == NULL) {
		sasl_free_str(&secret);
		return ret < 0 ? -1 : 0;
	}
	if ((data = password_scheme_data(secret, "CRAM-MD5")) != NULL) {
		ret = password_cram_md5_parse(data, ctx) == 0 ? 1 : 0;
		if (ret == 0)
			log_warning("user %s: malformed CRAM-MD5 secret",
			    s->user);
	} else if ((data = sasl_plain_secret(secret)) != NULL) {
		password_cram_md5_init(ctx, data, strlen(data));
		ret = 1;
	} else
		ret = 0;
	sasl_free_str(&secret);
	return ret;
}

/*
 * CRAM-MD5, RFC 2195: challenge "<random.time@host>", response
 * "user SP hex(HMAC-MD5(password, challenge))".  The HMAC is finished
 * from the key's stored contexts (RFC 2104 §2), so a {CRAM-MD5} secret
 * serves as well as the plaintext password.
 */
static enum sasl_result
sasl_cram_md5_step(struct sasl_server *s, const unsigned char *in,
    size_t inlen, struct buf *out, const char **error_r)
{
	static const char hexdigits[] = "0123456789abcdef";
	unsigned char mac[PASSWORD_MD5_LEN];
	struct password_cram_md5 ctx;
	unsigned int i;
	char hex[2 * PASSWORD_MD5_LEN + 1];
	const char *p = (const char *)in, *sp;
	bool match;
	int ret;

	if (s->state == 0) {
		uint64_t r;

		if (in != NULL && inlen > 0) {
			*error_r = "CRAM-MD5 has no initial response";
			return SASL_FAIL;
		}
		if (s->fixed_nonce != NULL)
			s->challenge = xstrdup(s->fixed_nonce);
		else {
			sasl_random(&r, sizeof(r));
			s->challenge = xasprintf("<%llu.%lld@%s>",
			    (unsigned long long)r, (long long)time(NULL),
			    s->hostname);
		}
		buf_append_str(out, s->challenge);
		s->state = 1;
		return SASL_CONTINUE;
	}
	if (in == NULL || inlen < 34 || memchr(in, '\0', inlen) != NULL) {
		*error_r = "malformed CRAM-MD5 response";
		return SASL_FAIL;
	}
	sp = p + inlen - 33;
	if (*sp != ' ' || !sasl_user_ok(p, sp - p)) {
		*error_r = "malformed CRAM-MD5 response";
		return SASL_FAIL;
	}
	for (i = 0; i < 32; i++) {
		char c = sp[1 + i];

		if (c >= 'A' && c <= 'F')
			c = c - 'A' + 'a';
		if (strchr(hexdigits, c) == NULL || c == '\0') {
			*error_r = "malformed CRAM-MD5 digest";
			return SASL_FAIL;
		}
		hex[i] = c;
	}
	hex[32] = '\0';
	s->user = xstrndup(p, sp - p);

	ret = sasl_cram_md5_key(s, &ctx, error_r);
	if (ret < 0)
		return SASL_TEMPFAIL;
	/* Unknown user or unusable secret: same work, certain failure. */
	if (ret == 0)
		password_cram_md5_init(&ctx, "", 0);
	password_cram_md5_hmac(&ctx, s->challenge, strlen(s->challenge), mac);
	explicit_bzero(&ctx, sizeof(ctx));
	{
		char want[2 * PASSWORD_MD5_LEN + 1];

		for (i = 0; i < PASSWORD_MD5_LEN; i++) {
			want[2 * i] = hexdigits[mac[i] >> 4];
			want[2 * i + 1] = hexdigits[mac[i] & 15];
		}
		want[32] = '\0';
		match = CRYPTO_memcmp(want, hex, 32) == 0 && ret > 0;
		explicit_bzero(want, sizeof(want));
	}
	explicit_bzero(mac, sizeof(mac));
	if (!match) {
		*error_r = "authentication failed";
		return SASL_FAIL;
	}
	return SASL_OK;
}

char *
sasl_scram_sha256_secret(const char *password, const unsigned char *salt,
    size_t saltlen, unsigned int iter)
{
	return password_scram_sha256_secret(password, salt, saltlen, iter);
}

/* Decode one base64 field of exactly want bytes (want 0: 1..max bytes). */
static int
sasl_b64_field(const char *p, size_t len, unsigned char *dst, size_t want,
    size_t max, size_t *len_r)
{
	struct buf b;
	int ret = -1;

	buf_init(&b, max);
	if (base64_decode(&b, p, len) == 0 && b.len > 0 &&
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

/*
 * Decode a saslname (RFC 5802 §5.1): "=2C" is ',', "=3D" is '=', any
 * other '=' is an error.  Returns a malloc'ed string or NULL.
 */
static char *
sasl_scram_name(const char *p, size_t len)
{
	char *d = xmalloc(len + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (p[i] != '=') {
			d[o++] = p[i];
			continue;
		}
		if (i + 2 < len && p[i + 1] == '2' && p[i + 2] == 'C')
			d[o++] = ',';
		else if (i + 2 < len && p[i + 1] == '3' && p[i + 2] == 'D')
			d[o++] = '=';
		else {
			free(d);
			return NULL;
		}
		i += 2;
	}
	d[o] = '\0';
	if (!sasl_user_ok(d, o)) {
		free(d);
		return NULL;
	}
	return d;
}

/* A SCRAM nonce: printable ASCII except ',' (RFC 5802 §7). */
static bool
sasl_scram_nonce_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/* Fetch or fake the user's SCRAM keys; fills the salt for server-first. */
static enum sasl_result
sasl_scram_keys(struct sasl_server *s, unsigned char *salt, size_t *saltlen_r,
    unsigned int *iter_r, const char **error_r)
{
	static unsigned char fake_key[32];
	static bool fake_key_set;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	char *secret = NULL;
	const char *plain, *data;
	int ret;

	ret = sasl_lookup_secret(s, &secret, error_r);
	if (ret < 0)
		return SASL_TEMPFAIL;
	s->user_ok = false;
	if (ret > 0 && secret != NULL) {
		if ((data = password_scheme_data(secret,
		    "SCRAM-SHA-256")) != NULL) {
			if (password_scram_sha256_parse(data, iter_r, salt,
			    saltlen_r, s->stored_key, s->server_key) == 0)
				s->user_ok = true;
			else
				log_warning("user %s: malformed SCRAM-SHA-256 "
				    "secret", s->user);
		} else if ((plain = sasl_plain_secret(secret)) != NULL) {
			sasl_random(salt, SCRAM_SALT_LEN);
			*saltlen_r = SCRAM_SALT_LEN;
			*iter_r = SASL_SCRAM_ITERATIONS;
			password_scram_sha256_keys(plain, salt, *saltlen_r,
			    *iter_r, s->stored_key, s->server_key);
			s->user_ok = true;
		}
	}
	sasl_free_str(&secret);
	if (!s->user_ok) {
		/*
		 * Unknown user or no usable secret: a salt that is stable
		 * per user name within this process and random keys, so the
		 * exchange looks like a real one and fails at the proof.
		 */
		if (!fake_key_set) {
			sasl_random(fake_key, sizeof(fake_key));
			fake_key_set = true;
		}
		if (HMAC(EVP_sha256(), fake_key, sizeof(fake_key),
		    (const unsigned char *)s->user, strlen(s->user), mac,
		    &maclen) == NULL)
			log_fatal("HMAC-SHA-256 failed");
		memcpy(salt, mac, SCRAM_SALT_LEN);
		*saltlen_r = SCRAM_SALT_LEN;
		*iter_r = SASL_SCRAM_ITERATIONS;
		sasl_random(s->stored_key, sizeof(s->stored_key));
		sasl_random(s->server_key, sizeof(s->server_key));
	}
	return SASL_CONTINUE;
}

/* client-first-message, RFC 5802 §7; appends server-first to out. */
static enum sasl_result
sasl_scram_first(struct sasl_server *s, const char *msg, struct buf *out,
    const char **error_r)
{
	unsigned char salt[MAX_SCRAM_SALT], rnd[SCRAM_NONCE_RAW];
	const char *p = msg, *c, *bare, *cnonce;
	size_t saltlen = 0, cnonce_len;
	unsigned int iter = 0;
	enum sasl_result ret;
	struct buf b;

	*error_r = "malformed SCRAM client-first-message";
	/* gs2-header: gs2-cbind-flag "," [ authzid ] "," */
	if (p[0] == 'p' && p[1] == '=') {
		*error_r = "SCRAM channel binding not supported";
		return SASL_FAIL;
	}
	if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
		return SASL_FAIL;
	p += 2;
	if ((c = strchr(p, ',')) == NULL)
		return SASL_FAIL;
	if (c != p) {
		if (p[0] != 'a' || p[1] != '=' ||
		    (s->authzid = sasl_scram_name(p + 2, c - p - 2)) == NULL)
			return SASL_FAIL;
	}
	bare = c + 1;
	s->gs2_header = xstrndup(msg, bare - msg);
	/* client-first-message-bare: n=saslname,r=nonce[,extensions] */
	if (bare[0] == 'm' && bare[1] == '=') {
		*error_r = "SCRAM mandatory extension not supported";
		return SASL_FAIL;
	}
	if (bare[0] != 'n' || bare[1] != '=' ||
	    (c = strchr(bare + 2, ',')) == NULL ||
	    (s->user = sasl_scram_name(bare + 2, c - bare - 2)) == NULL)
		return SASL_FAIL;
	if (c[1] != 'r' || c[2] != '=')
		return SASL_FAIL;
	cnonce = c + 3;
	cnonce_len = strcspn(cnonce, ",");
	if (!sasl_scram_nonce_ok(cnonce, cnonce_len))
		return SASL_FAIL;
	s->client_first_bare = xstrdup(bare);
	if (s->authzid != NULL && strcmp(s->authzid, s->user) != 0) {
		*error_r = "authorization identity not permitted";
		return SASL_FAIL;
	}

	ret = sasl_scram_keys(s, salt, &saltlen, &iter, error_r);
	if (ret != SASL_CONTINUE)
		return ret;

	buf_init(&b, 0);
	buf_append(&b, cnonce, cnonce_len);
	if (s->fixed_nonce != NULL)
		buf_append_str(&b, s->fixed_nonce);
	else {
		sasl_random(rnd, sizeof(rnd));
		base64_encode(&b, rnd, sizeof(rnd));
	}
	s->nonce = buf_steal(&b);
	buf_init(&b, 0);
	buf_printf(&b, "r=%s,s=", s->nonce);
	base64_encode(&b, salt, saltlen);
	buf_printf(&b, ",i=%u", iter);
	s->server_first = buf_steal(&b);
	buf_append_str(out, s->server_first);
	s->state = 1;
	return SASL_CONTINUE;
}

/* client-final-message, RFC 5802 §7; appends server-final to out. */
static enum sasl_result
sasl_scram_final(struct sasl_server *s, const char *msg, struct buf *out,
    const char **error_r)
{
	unsigned char proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	unsigned char client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	unsigned char server_sig[SCRAM_KEY_LEN];
	const char *last, *p, *c;
	size_t nolen, cblen;
	unsigned int len;
	struct buf am, cb;
	bool match;
	size_t i;

	*error_r = "malformed SCRAM client-final-message";
	/* c=cbind,r=nonce[,extensions],p=proof */
	if ((last = strrchr(msg, ',')) == NULL || last[1] != 'p' ||
	    last[2] != '=')
		return SASL_FAIL;
	if (sasl_b64_field(last + 3, strlen(last + 3), proof, sizeof(proof),
	    sizeof(proof) + 3, NULL) < 0)
		return SASL_FAIL;
	nolen = last - msg;
	if (msg[0] != 'c' || msg[1] != '=' ||
	    (c = memchr(msg, ',', nolen)) == NULL)
		return SASL_FAIL;
	/* cbind-input is exactly the gs2-header: no channel binding data. */
	buf_init(&cb, MAX_SASL_INPUT);
	cblen = c - msg - 2;
	if (base64_decode(&cb, msg + 2, cblen) < 0 ||
	    cb.len != strlen(s->gs2_header) ||
	    memcmp(cb.data, s->gs2_header, cb.len) != 0) {
		buf_free(&cb);
		*error_r = "SCRAM channel binding mismatch";
		return SASL_FAIL;
	}
	buf_free(&cb);
	p = c + 1;
	if (p[0] != 'r' || p[1] != '=' ||
	    strncmp(p + 2, s->nonce, strlen(s->nonce)) != 0 ||
	    (p[2 + strlen(s->nonce)] != ',' ||
	    p + 2 + strlen(s->nonce) > last)) {
		*error_r = "SCRAM nonce mismatch";
		return SASL_FAIL;
	}

	/* AuthMessage: client-first-bare,server-first,final-without-proof */
	buf_init(&am, 0);
	buf_append_str(&am, s->client_first_bare);
	buf_append_char(&am, ',');
	buf_append_str(&am, s->server_first);
	buf_append_char(&am, ',');
	buf_append(&am, msg, nolen);

	if (HMAC(EVP_sha256(), s->stored_key, sizeof(s->stored_key),
	    (unsigned char *)am.data, am.len, sig, &len) == NULL ||
	    HMAC(EVP_sha256(), s->server_key, sizeof(s->server_key),
	    (unsigned char *)am.data, am.len, server_sig, &len) == NULL)
		log_fatal("HMAC-SHA-256 failed");
	buf_free(&am);
	for (i = 0; i < sizeof(client_key); i++)
		client_key[i] = proof[i] ^ sig[i];
	SHA256(client_key, sizeof(client_key), stored);
	match = CRYPTO_memcmp(stored, s->stored_key, sizeof(stored)) == 0 &&
	    s->user_ok;
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(sig, sizeof(sig));
	explicit_bzero(s->stored_key, sizeof(s->stored_key));
	if (!match) {
		explicit_bzero(server_sig, sizeof(server_sig));
		*error_r = "authentication failed";
		return SASL_FAIL;
	}
	buf_append_str(out, "v=");
	base64_encode(out, server_sig, sizeof(server_sig));
	explicit_bzero(server_sig, sizeof(server_sig));
	s->state = 2;
	return SASL_CONTINUE;
}

static enum sasl_result
sasl_scram_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
    struct buf *out, const char **error_r)
{
	enum sasl_result ret;
	char *msg;

	if (in == NULL) {
		if (s->state == 0 && !s->finished && s->challenge == NULL) {
			/* No initial response: empty challenge. */
			s->challenge = xstrdup("");
			return SASL_CONTINUE;
		}
		*error_r = "missing response";
		return SASL_FAIL;
	}
	if (memchr(in, '\0', inlen) != NULL) {
		*error_r = "NUL in SCRAM message";
		return SASL_FAIL;
	}
	if (s->state == 2) {
		/* The empty answer to our server-final-message. */
		if (inlen != 0) {
			*error_r = "unexpected data after SCRAM exchange";
			return SASL_FAIL;
		}
		return SASL_OK;
	}
	msg = xstrndup((const char *)in, inlen);
	if (s->state == 0)
		ret = sasl_scram_first(s, msg, out, error_r);
	else
		ret = sasl_scram_final(s, msg, out, error_r);
	explicit_bzero(msg, inlen);
	free(msg);
	return ret;
}

enum sasl_result
sasl_server_step(struct sasl_server *s, const unsigned char *in,
    size_t inlen, struct buf *out, const char **error_r)
{
	enum sasl_result ret = SASL_FAIL;

	*error_r = NULL;
	if (s->finished) {
		*error_r = "exchange already finished";
		return SASL_FAIL;
	}
	if (inlen > MAX_SASL_INPUT) {
		*error_r = "SASL response too long";
		s->finished = true;
		return SASL_FAIL;
	}
	switch (s->mech->id) {
	case SASL_MECH_PLAIN:
		ret = sasl_plain_step(s, in, inlen, out, error_r);
		break;
	case SASL_MECH_LOGIN:
		ret = sasl_login_step(s, in, inlen, out, error_r);
		break;
	case SASL_MECH_CRAM_MD5:
		ret = sasl_cram_md5_step(s, in, inlen, out, error_r);
		break;
	case SASL_MECH_SCRAM_SHA_256:
		ret = sasl_scram_step(s, in, inlen, out, error_r);
		break;
	}
	if (ret != SASL_CONTINUE)
		s->finished = true;
	if (ret != SASL_CONTINUE && *error_r == NULL)
		*error_r = ret == SASL_OK ? "" : "authentication failed";
	return ret;
}

enum sasl_result
sasl_server_step_base64(struct sasl_server *s, const char *line,
    struct buf *out, const char **error_r)
{
	enum sasl_result ret;
	struct buf in, chal;
	size_t len;

	if (line != NULL && strcmp(line, "*") == 0) {
		/* RFC 4954 §4: the client cancels the exchange. */
		s->finished = true;
		*error_r = "cancelled by client";
		return SASL_FAIL;
	}
	buf_init(&chal, 0);
	buf_init(&in, MAX_SASL_INPUT + 2);	/* decode reserves by 3/4 */
	if (line != NULL) {
		len = strlen(line);
		if (strcmp(line, "=") == 0)
			len = 0;	/* empty initial response (RFC 4954) */
		if (len > base64_encoded_len(MAX_SASL_INPUT)) {
			s->finished = true;
			*error_r = "SASL response too long";
			return SASL_FAIL;
		}
		if (base64_decode(&in, line, len) < 0) {
			s->finished = true;
			*error_r = "invalid base64 in SASL response";
			buf_free(&in);
			return SASL_FAIL;
		}
		buf_reserve(&in, 0);	/* data != NULL even when empty */
	}
	ret = sasl_server_step(s, line != NULL ?
	    (const unsigned char *)in.data : NULL, in.len, &chal, error_r);
	if (in.data != NULL)
		explicit_bzero(in.data, in.cap);
	buf_free(&in);
	if (ret == SASL_CONTINUE && base64_encode(out, chal.data,
	    chal.len) < 0) {
		s->finished = true;
		*error_r = "SASL challenge too long for output";
		ret = SASL_FAIL;
	}
	buf_free(&chal);
	return ret;
}
