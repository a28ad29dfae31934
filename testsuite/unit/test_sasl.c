/*
 * test_sasl: the SASL mechanisms against the RFC examples (RFC 7677 §3
 * SCRAM-SHA-256, RFC 2195 §2 CRAM-MD5, RFC 4616 PLAIN), a small SCRAM
 * client for secrets derived from {PLAIN} and stored as {SCRAM-SHA-256},
 * CRAM-MD5 from {CRAM-MD5} contexts (ours and doveadm's), and malformed
 * input, which must end in SASL_FAIL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base64.h"
#include "buf.h"
#include "password.h"
#include "sasl.h"
#include "test.h"
#include "xmalloc.h"

static char *scram_user_secret;

/*
 * Printed by `doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf` and
 * `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19.1, Debian 12).
 */
#define DOVEADM_CRAM_TIM "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a3" \
	"54b21152711fb604ca3e035e7015116b"
#define DOVEADM_SCRAM_PENCIL "{SCRAM-SHA-256}4096,rrctbUisDGKpFbShm0cH3w==," \
	"snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=," \
	"Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8="

static int
test_lookup(enum sasl_lookup_op op, const char *user, const char *password,
    char **secret_r, void *ctx, const char **error_r)
{
	static const struct {
		const char *user, *pw;
	} plain[] = {
		{ "tim", "tanstaaftanstaaf" },
		{ "alice", "pencil" },
		{ "crypted", NULL },
	};
	size_t i;

	(void)ctx;
	if (strcmp(user, "broken") == 0) {
		*error_r = "test passdb down";
		return -1;
	}
	if (op == SASL_LOOKUP_SECRET && strcmp(user, "user") == 0) {
		*secret_r = xstrdup(scram_user_secret);
		return 1;
	}
	/* Stored secrets other than {PLAIN}, each for its own user. */
	if (op == SASL_LOOKUP_SECRET) {
		if (strcmp(user, "timctx") == 0)
			*secret_r = password_hash("CRAM-MD5",
			    "tanstaaftanstaaf");
		else if (strcmp(user, "timdove") == 0)
			*secret_r = xstrdup(DOVEADM_CRAM_TIM);
		else if (strcmp(user, "timbad") == 0)
			*secret_r = xstrdup("{CRAM-MD5}d06d4e1b26fc");
		else if (strcmp(user, "scram") == 0)
			*secret_r = password_hash("SCRAM-SHA-256", "pencil");
		else if (strcmp(user, "scramdove") == 0)
			*secret_r = xstrdup(DOVEADM_SCRAM_PENCIL);
		else if (strcmp(user, "scrambad") == 0)
			*secret_r = xstrdup("{SCRAM-SHA-256}4096,AAAA");
		if (*secret_r != NULL)
			return 1;
	}
	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strcmp(user, plain[i].user) != 0)
			continue;
		if (op == SASL_LOOKUP_VERIFY)
			return plain[i].pw != NULL &&
			    strcmp(password, plain[i].pw) == 0;
		*secret_r = plain[i].pw != NULL ?
		    xasprintf("{PLAIN}%s", plain[i].pw) :
		    xstrdup("{SHA512-CRYPT}$6$x$y");
		return 1;
	}
	return 0;
}

/* Run one step on a raw string; out gets the decoded challenge. */
static enum sasl_result
step(struct sasl_server *s, const char *in, size_t len, struct buf *out)
{
	const char *error;

	buf_reset(out);
	return sasl_server_step(s, (const unsigned char *)in, len, out,
	    &error);
}

static struct sasl_server *
mech(const char *name)
{
	return sasl_server_new(name, "smtp", "mx.example.org", test_lookup,
	    NULL);
}

static void
test_scram_rfc7677(void)
{
	static const char salt_b64[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
	static const char c1[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	static const char s1[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj"
	    ")hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	static const char c2[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaT"
	    "CAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	static const char s2[] =
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	struct sasl_server *s;
	struct buf salt, out;

	test_begin("SCRAM-SHA-256 RFC 7677 example");
	buf_init(&salt, 0);
	buf_init(&out, 0);
	test_assert(base64_decode(&salt, salt_b64, strlen(salt_b64)) == 0);
	scram_user_secret = sasl_scram_sha256_secret("pencil",
	    (unsigned char *)salt.data, salt.len, 4096);
	test_assert(strncmp(scram_user_secret, "{SCRAM-SHA-256}4096,"
	    "W22ZaJ0SNY7soEsUEjb6gQ==,", 45) == 0);

	s = mech("scram-sha-256");
	test_assert(s != NULL);
	sasl_server_set_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	test_assert(step(s, c1, strlen(c1), &out) == SASL_CONTINUE);
	test_assert_streq(buf_cstr(&out), s1);
	test_assert(step(s, c2, strlen(c2), &out) == SASL_CONTINUE);
	test_assert_streq(buf_cstr(&out), s2);
	test_assert(step(s, "", 0, &out) == SASL_OK);
	test_assert_streq(sasl_server_user(s), "user");
	sasl_server_free(&s);
	test_assert(s == NULL);

	/* The same exchange with one bit of the proof changed. */
	s = mech("SCRAM-SHA-256");
	sasl_server_set_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	test_assert(step(s, c1, strlen(c1), &out) == SASL_CONTINUE);
	{
		char *bad = xstrdup(c2);

		bad[strlen(bad) - 3] = 'W';
		test_assert(step(s, bad, strlen(bad), &out) == SASL_FAIL);
		free(bad);
	}
	sasl_server_free(&s);
	buf_free(&salt);
	buf_free(&out);
	test_end();
}

/* A minimal SCRAM-SHA-256 client; returns the final result. */
static enum sasl_result
scram_client(const char *user, const char *pw, const char *gs2)
{
	unsigned char salted[32], ck[32], sk[32], sig[32], proof[32];
	unsigned char srvsig[32];
	unsigned int len;
	struct sasl_server *s = mech("SCRAM-SHA-256");
	struct buf out, am, saltb, msg;
	enum sasl_result r;
	char *first, *sfirst, *p, *q;
	int iter, i;

	buf_init(&out, 0);
	buf_init(&am, 0);
	buf_init(&saltb, 0);
	buf_init(&msg, 0);
	first = xasprintf("%sn=%s,r=clientnonce123", gs2, user);
	r = step(s, first, strlen(first), &out);
	if (r != SASL_CONTINUE)
		goto done;
	sfirst = xstrdup(buf_cstr(&out));
	p = strstr(sfirst, ",s=") + 3;
	q = strchr(p, ',');
	base64_decode(&saltb, p, q - p);
	iter = atoi(q + 3);
	PKCS5_PBKDF2_HMAC(pw, strlen(pw), (unsigned char *)saltb.data,
	    saltb.len, iter, EVP_sha256(), 32, salted);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key",
	    10, ck, &len);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key",
	    10, sk, &len);
	buf_append_str(&msg, "c=");
	base64_encode(&msg, gs2, strlen(gs2));
	*strchr(sfirst, ',') = '\0';
	buf_printf(&msg, ",%s", sfirst);
	buf_printf(&am, "%s,%s,%s", first + strlen(gs2), buf_cstr(&out),
	    buf_cstr(&msg));
	{
		unsigned char stored[32];

		SHA256(ck, 32, stored);
		HMAC(EVP_sha256(), stored, 32, (unsigned char *)am.data,
		    am.len, sig, &len);
	}
	HMAC(EVP_sha256(), sk, 32, (unsigned char *)am.data, am.len, srvsig,
	    &len);
	for (i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	buf_append_str(&msg, ",p=");
	base64_encode(&msg, proof, 32);
	free(sfirst);
	r = step(s, msg.data, msg.len, &out);
	if (r == SASL_CONTINUE) {
		struct buf want;

		buf_init(&want, 0);
		buf_append_str(&want, "v=");
		base64_encode(&want, srvsig, 32);
		test_assert_streq(buf_cstr(&out), buf_cstr(&want));
		buf_free(&want);
		r = step(s, "", 0, &out);
	}
done:
	free(first);
	buf_free(&out);
	buf_free(&am);
	buf_free(&saltb);
	buf_free(&msg);
	sasl_server_free(&s);
	return r;
}

static void
test_scram_plain_secret(void)
{
	test_begin("SCRAM-SHA-256 from {PLAIN} secret");
	test_assert(scram_client("alice", "pencil", "n,,") == SASL_OK);
	test_assert(scram_client("alice", "pencil", "y,,") == SASL_OK);
	test_assert(scram_client("alice", "pencil", "n,a=alice,") ==
	    SASL_OK);
	test_assert(scram_client("alice", "wrong", "n,,") == SASL_FAIL);
	test_assert(scram_client("nobody", "pencil", "n,,") == SASL_FAIL);
	test_assert(scram_client("crypted", "x", "n,,") == SASL_FAIL);
	test_assert(scram_client("alice", "pencil", "n,a=bob,") ==
	    SASL_FAIL);
	test_assert(scram_client("broken", "x", "n,,") == SASL_TEMPFAIL);
	test_end();
}

static void
test_scram_stored_secret(void)
{
	test_begin("SCRAM-SHA-256 from {SCRAM-SHA-256} secrets");
	/* password_hash's secret, and the one doveadm wrote. */
	test_assert(scram_client("scram", "pencil", "n,,") == SASL_OK);
	test_assert(scram_client("scram", "pencil!", "n,,") == SASL_FAIL);
	test_assert(scram_client("scramdove", "pencil", "n,,") == SASL_OK);
	test_assert(scram_client("scramdove", "Pencil", "n,,") == SASL_FAIL);
	/* A malformed secret fails like a wrong password. */
	test_assert(scram_client("scrambad", "pencil", "n,,") == SASL_FAIL);
	test_end();
}

static void
test_scram_malformed(void)
{
	static const char *const firsts[] = {
		"p=tls-unique,,n=user,r=abc",
		"x,,n=user,r=abc",
		"n,,m=ext,n=user,r=abc",
		"n,,n=user",
		"n,,n=,r=abc",
		"n,,n=us=er,r=abc",
		"n,,n=user,r=",
		"n,,r=abc",
		"n,",
		"",
		"n,,n=user,r=a\x01" "b",
	};
	struct sasl_server *s;
	struct buf out;
	size_t i;
	static const char c1[] = "n,,n=user,r=abc";

	test_begin("SCRAM-SHA-256 malformed messages");
	buf_init(&out, 0);
	for (i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		s = mech("SCRAM-SHA-256");
		test_assert(step(s, firsts[i], strlen(firsts[i]), &out) ==
		    SASL_FAIL);
		sasl_server_free(&s);
	}
	/* NUL inside the message. */
	s = mech("SCRAM-SHA-256");
	test_assert(step(s, "n,,n=user\0,r=abc", 16, &out) == SASL_FAIL);
	sasl_server_free(&s);

	/* Bad client-final messages after a good first. */
	{
		static const char *const finals[] = {
			"c=biws,r=abcXYZ,p=AAAA",
			"c=eSws,r=abcXYZ,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmm"
			    "iz7AndVQ=",
			"c=biws,r=abcXY,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmi"
			    "z7AndVQ=",
			"c=biws,r=abcXYZ",
			"r=abcXYZ,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmm"
			    "iz7AndVQ=",
			"c=biws,r=abcXYZ,p=!!!!",
			",p=",
		};

		for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
			s = mech("SCRAM-SHA-256");
			sasl_server_set_nonce(s, "XYZ");
			test_assert(step(s, c1, strlen(c1), &out) ==
			    SASL_CONTINUE);
			test_assert(step(s, finals[i], strlen(finals[i]),
			    &out) == SASL_FAIL);
			sasl_server_free(&s);
		}
	}
	buf_free(&out);
	test_end();
}

static void
test_cram_md5(void)
{
	static const char chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	static const char *const bad[] = {
		"tim b913a602c7eda7a495b4e6e7334d3891",	/* wrong */
		"tom b913a602c7eda7a495b4e6e7334d3890",	/* unknown */
		"tim b913a602c7eda7a495b4e6e7334d389",	/* short */
		"tim b913a602c7eda7a495b4e6e7334d389g",	/* not hex */
		"timb913a602c7eda7a495b4e6e7334d3890",	/* no space */
		" b913a602c7eda7a495b4e6e7334d3890",	/* no user */
		"crypted b913a602c7eda7a495b4e6e7334d3890", /* no plain */
		"",
	};
	struct sasl_server *s;
	struct buf out;
	const char *resp;
	size_t i;

	test_begin("CRAM-MD5 RFC 2195 example");
	buf_init(&out, 0);
	s = mech("CRAM-MD5");
	sasl_server_set_nonce(s, chal);
	test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
	test_assert_streq(buf_cstr(&out), chal);
	resp = "tim b913a602c7eda7a495b4e6e7334d3890";
	test_assert(step(s, resp, strlen(resp), &out) == SASL_OK);
	test_assert_streq(sasl_server_user(s), "tim");
	sasl_server_free(&s);

	s = mech("CRAM-MD5");
	sasl_server_set_nonce(s, chal);
	test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
	resp = "tim B913A602C7EDA7A495B4E6E7334D3890";
	test_assert(step(s, resp, strlen(resp), &out) == SASL_OK);
	sasl_server_free(&s);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = mech("CRAM-MD5");
		sasl_server_set_nonce(s, chal);
		test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
		test_assert(step(s, bad[i], strlen(bad[i]), &out) ==
		    SASL_FAIL);
		sasl_server_free(&s);
	}
	/*
	 * The same RFC 2195 exchange from stored {CRAM-MD5} contexts: ours,
	 * doveadm's; a malformed one fails like a wrong password.
	 */
	{
		static const char *const users[] = { "timctx", "timdove" };
		char *r;

		for (i = 0; i < 2; i++) {
			s = mech("CRAM-MD5");
			sasl_server_set_nonce(s, chal);
			test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
			r = xasprintf("%s b913a602c7eda7a495b4e6e7334d3890",
			    users[i]);
			test_assert(step(s, r, strlen(r), &out) == SASL_OK);
			test_assert_streq(sasl_server_user(s), users[i]);
			sasl_server_free(&s);
			free(r);
			s = mech("CRAM-MD5");
			sasl_server_set_nonce(s, chal);
			test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
			r = xasprintf("%s b913a602c7eda7a495b4e6e7334d3891",
			    users[i]);
			test_assert(step(s, r, strlen(r), &out) == SASL_FAIL);
			sasl_server_free(&s);
			free(r);
		}
		s = mech("CRAM-MD5");
		sasl_server_set_nonce(s, chal);
		test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
		resp = "timbad b913a602c7eda7a495b4e6e7334d3890";
		test_assert(step(s, resp, strlen(resp), &out) == SASL_FAIL);
		sasl_server_free(&s);
	}
	/* A random challenge looks like <digits.digits@host>. */
	s = mech("CRAM-MD5");
	test_assert(step(s, NULL, 0, &out) == SASL_CONTINUE);
	test_assert(out.len > 20 && out.data[0] == '<' &&
	    strstr(buf_cstr(&out), "@mx.example.org>") != NULL);
	sasl_server_free(&s);
	/* No initial response allowed. */
	s = mech("CRAM-MD5");
	test_assert(step(s, "tim", 3, &out) == SASL_FAIL);
	sasl_server_free(&s);
	buf_free(&out);
	test_end();
}

static enum sasl_result
plain1(const char *in, size_t len, const char **user_r)
{
	struct sasl_server *s = mech("PLAIN");
	static char user[64];
	struct buf out;
	enum sasl_result r;

	buf_init(&out, 0);
	r = step(s, in, len, &out);
	snprintf(user, sizeof(user), "%s",
	    sasl_server_user(s) != NULL ? sasl_server_user(s) : "");
	if (user_r != NULL)
		*user_r = user;
	sasl_server_free(&s);
	buf_free(&out);
	return r;
}

static void
test_plain(void)
{
	struct sasl_server *s;
	struct buf out;
	const char *user, *error;

	test_begin("PLAIN");
	test_assert(plain1("\0tim\0tanstaaftanstaaf", 21, &user) == SASL_OK);
	test_assert_streq(user, "tim");
	test_assert(plain1("tim\0tim\0tanstaaftanstaaf", 24, NULL) ==
	    SASL_OK);
	test_assert(plain1("bob\0tim\0tanstaaftanstaaf", 24, NULL) ==
	    SASL_FAIL);
	test_assert(plain1("\0tim\0wrong", 10, NULL) == SASL_FAIL);
	test_assert(plain1("\0tom\0tanstaaftanstaaf", 21, NULL) ==
	    SASL_FAIL);
	test_assert(plain1("\0broken\0x", 9, NULL) == SASL_TEMPFAIL);
	/* Malformed. */
	test_assert(plain1("tim tanstaaftanstaaf", 20, NULL) == SASL_FAIL);
	test_assert(plain1("\0timtanstaaftanstaaf", 20, NULL) == SASL_FAIL);
	test_assert(plain1("\0tim\0", 5, NULL) == SASL_FAIL);
	test_assert(plain1("\0\0pw", 4, NULL) == SASL_FAIL);
	test_assert(plain1("\0tim\0tanstaaf\0tanstaaf", 22, NULL) ==
	    SASL_FAIL);
	test_assert(plain1("", 0, NULL) == SASL_FAIL);
	test_assert(plain1("\0ti\x01m\0x", 8, NULL) == SASL_FAIL);

	/* No initial response: empty challenge, then the response. */
	buf_init(&out, 0);
	s = mech("PLAIN");
	test_assert(sasl_server_step_base64(s, NULL, &out, &error) ==
	    SASL_CONTINUE);
	test_assert(out.len == 0);
	/* base64("\0tim\0tanstaaftanstaaf") */
	test_assert(sasl_server_step_base64(s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
	    &out, &error) == SASL_OK);
	test_assert(sasl_server_step_base64(s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
	    &out, &error) == SASL_FAIL);	/* already finished */
	sasl_server_free(&s);
	buf_free(&out);
	test_end();
}

static void
test_login(void)
{
	struct sasl_server *s;
	struct buf out;
	const char *error;

	test_begin("LOGIN");
	buf_init(&out, 0);
	s = mech("LOGIN");
	test_assert(sasl_server_step_base64(s, NULL, &out, &error) ==
	    SASL_CONTINUE);
	test_assert_streq(buf_cstr(&out), "VXNlcm5hbWU6");
	buf_reset(&out);
	test_assert(sasl_server_step_base64(s, "dGlt", &out, &error) ==
	    SASL_CONTINUE);
	test_assert_streq(buf_cstr(&out), "UGFzc3dvcmQ6");
	buf_reset(&out);
	test_assert(sasl_server_step_base64(s, "dGFuc3RhYWZ0YW5zdGFhZg==",
	    &out, &error) == SASL_OK);
	test_assert_streq(sasl_server_user(s), "tim");
	sasl_server_free(&s);

	/* Initial response carries the user name. */
	s = mech("LOGIN");
	test_assert(sasl_server_step_base64(s, "dGlt", &out, &error) ==
	    SASL_CONTINUE);
	test_assert(sasl_server_step_base64(s, "d3Jvbmc=", &out, &error) ==
	    SASL_FAIL);
	sasl_server_free(&s);

	s = mech("LOGIN");
	test_assert(sasl_server_step_base64(s, "=", &out, &error) ==
	    SASL_FAIL);	/* empty user name */
	sasl_server_free(&s);
	buf_free(&out);
	test_end();
}

static void
test_wire(void)
{
	static const char *const bad[] = {
		"!!!!", "abc", "AHRpbQ=B", "AHRpbQ==AAAA", "AH Rp", "AHR=",
		"AB==",
	};
	struct sasl_server *s;
	struct buf out;
	const char *error;
	char *big;
	size_t i;

	test_begin("base64 wire form and limits");
	buf_init(&out, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = mech("PLAIN");
		test_assert(sasl_server_step_base64(s, bad[i], &out,
		    &error) == SASL_FAIL);
		test_assert(error != NULL);
		sasl_server_free(&s);
	}
	s = mech("PLAIN");
	test_assert(sasl_server_step_base64(s, "*", &out, &error) ==
	    SASL_FAIL);
	sasl_server_free(&s);
	s = mech("PLAIN");
	test_assert(sasl_server_step_base64(s, "=", &out, &error) ==
	    SASL_FAIL);
	sasl_server_free(&s);

	/* Oversize: too long as base64, and too long once decoded. */
	big = xmalloc(20001);
	memset(big, 'A', 20000);
	big[20000] = '\0';
	s = mech("LOGIN");
	test_assert(sasl_server_step_base64(s, big, &out, &error) ==
	    SASL_FAIL);
	sasl_server_free(&s);
	s = mech("SCRAM-SHA-256");
	test_assert(step(s, big, 20000, &out) == SASL_FAIL);
	sasl_server_free(&s);
	free(big);

	test_assert(mech("DIGEST-MD5") == NULL);
	test_assert(sasl_mech_known("cram-md5"));
	test_assert(sasl_mech_needs_secret("SCRAM-SHA-256"));
	test_assert(!sasl_mech_needs_secret("PLAIN"));
	buf_free(&out);
	test_end();
}

static void
test_base64(void)
{
	static const struct {
		const char *raw, *enc;
	} v[] = {	/* RFC 4648 §10 */
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	struct buf b;
	size_t i;

	test_begin("base64 RFC 4648 vectors");
	buf_init(&b, 0);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_reset(&b);
		test_assert(base64_encode(&b, v[i].raw, strlen(v[i].raw)) ==
		    0);
		test_assert_streq(buf_cstr(&b), v[i].enc);
		buf_reset(&b);
		test_assert(base64_decode(&b, v[i].enc, strlen(v[i].enc)) ==
		    0);
		test_assert_streq(buf_cstr(&b), v[i].raw);
	}
	buf_free(&b);
	test_end();
}

int
main(void)
{
	test_base64();
	test_scram_rfc7677();
	test_scram_plain_secret();
	test_scram_stored_secret();
	test_scram_malformed();
	test_cram_md5();
	test_plain();
	test_login();
	test_wire();
	free(scram_user_secret);
	return test_done();
}
