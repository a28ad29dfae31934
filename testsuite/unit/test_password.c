/*
 * test_password: every {SCHEME} hashed and checked; the CRAM-MD5
 * contexts against OpenSSL's HMAC-MD5, RFC 2202 and RFC 2195, and against
 * what `doveadm pw` wrote; SCRAM-SHA-256 secrets Dovecot wrote; yescrypt
 * strings as Debian's shadow holds them; malformed stored strings.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "password.h"
#include "test.h"
#include "xmalloc.h"

/*
 * Printed by `doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf` and
 * `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19.1, Debian 12).
 */
#define DOVEADM_CRAM_TIM "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a3" \
	"54b21152711fb604ca3e035e7015116b"
#define DOVEADM_SCRAM_PENCIL "{SCRAM-SHA-256}4096,rrctbUisDGKpFbShm0cH3w==," \
	"snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=," \
	"Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8="

static void
hex(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void
test_cram_md5_hmac(void)
{
	/* Lengths around MD5's block and padding boundaries. */
	static const size_t lens[] = {
		0, 1, 3, 54, 55, 56, 57, 63, 64, 65, 100, 119, 120, 128, 1000,
	};
	unsigned char key[1000], msg[1000], want[EVP_MAX_MD_SIZE];
	unsigned char got[PASSWORD_MD5_LEN];
	struct password_cram_md5 ctx;
	unsigned int wlen;
	size_t i, j, k;
	char h[33];

	test_begin("CRAM-MD5 contexts give OpenSSL's HMAC-MD5");
	for (i = 0; i < sizeof(key); i++) {
		key[i] = (unsigned char)(i * 7 + 3);
		msg[i] = (unsigned char)(i * 13 + 1);
	}
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			password_cram_md5_init(&ctx, key, lens[i]);
			password_cram_md5_hmac(&ctx, msg, lens[j], got);
			HMAC(EVP_md5(), key, (int)lens[i], msg, lens[j], want,
			    &wlen);
			test_assert(wlen == sizeof(got) &&
			    memcmp(got, want, sizeof(got)) == 0);
		}
	/* RFC 2202 §2, test case 1. */
	memset(key, 0x0b, 16);
	password_cram_md5_init(&ctx, key, 16);
	password_cram_md5_hmac(&ctx, "Hi There", 8, got);
	hex(got, sizeof(got), h);
	test_assert_streq(h, "9294727a3638bb1c13f48ef8158bfc9d");
	/* RFC 2202 §2, test case 6: an 80-byte key is hashed first. */
	memset(key, 0xaa, 80);
	password_cram_md5_init(&ctx, key, 80);
	k = strlen("Test Using Larger Than Block-Size Key - Hash Key First");
	password_cram_md5_hmac(&ctx,
	    "Test Using Larger Than Block-Size Key - Hash Key First", k, got);
	hex(got, sizeof(got), h);
	test_assert_streq(h, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
	test_end();
}

static void
test_cram_md5_scheme(void)
{
	static const char chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	struct password_cram_md5 ctx;
	unsigned char mac[PASSWORD_MD5_LEN];
	const char *data;
	char *h, *upper, m[33];
	size_t i;

	test_begin("{CRAM-MD5} as doveadm writes it");
	h = password_hash("CRAM-MD5", "tanstaaftanstaaf");
	test_assert_streq(h, DOVEADM_CRAM_TIM);
	test_assert(password_verify(h, "tanstaaftanstaaf") == 1);
	test_assert(password_verify(h, "tanstaaftanstaag") == 0);
	test_assert(password_verify(h, "") == 0);
	/* RFC 2195 §2's exchange from the stored contexts alone. */
	data = password_scheme_data(DOVEADM_CRAM_TIM, "CRAM-MD5");
	test_assert(data != NULL);
	test_assert(password_cram_md5_parse(data, &ctx) == 0);
	password_cram_md5_hmac(&ctx, chal, strlen(chal), mac);
	hex(mac, sizeof(mac), m);
	test_assert_streq(m, "b913a602c7eda7a495b4e6e7334d3890");
	/* Upper-case hex and the HMAC-MD5 alias are the same secret. */
	upper = xstrdup(h);
	for (i = 10; upper[i] != '\0'; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] -= 'a' - 'A';
	test_assert(password_verify(upper, "tanstaaftanstaaf") == 1);
	free(upper);
	upper = xasprintf("{HMAC-MD5}%s", h + strlen("{CRAM-MD5}"));
	test_assert(password_verify(upper, "tanstaaftanstaaf") == 1);
	test_assert(password_scheme_data(upper, "CRAM-MD5") != NULL);
	free(upper);
	free(h);
	h = password_hash("hmac-md5", "x");
	test_assert(h != NULL && strncmp(h, "{HMAC-MD5}", 10) == 0 &&
	    strlen(h) == 10 + 64);
	free(h);
	test_end();
}

static void
test_scram_scheme(void)
{
	char *h, *bad;

	test_begin("{SCRAM-SHA-256}");
	test_assert(password_verify(DOVEADM_SCRAM_PENCIL, "pencil") == 1);
	test_assert(password_verify(DOVEADM_SCRAM_PENCIL, "pencil2") == 0);
	h = password_hash("SCRAM-SHA-256", "pencil");
	test_assert(h != NULL && strncmp(h, "{SCRAM-SHA-256}4096,", 20) == 0);
	test_assert(password_verify(h, "pencil") == 1);
	test_assert(password_verify(h, "Pencil") == 0);
	/* Two hashes of one password differ: the salt is random. */
	bad = password_hash("SCRAM-SHA-256", "pencil");
	test_assert(strcmp(h, bad) != 0);
	free(bad);
	/* A changed server key is a mismatch, not a match. */
	bad = xstrdup(DOVEADM_SCRAM_PENCIL);
	bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == 'A' ? 'B' : 'A';
	test_assert(password_verify(bad, "pencil") == 0);
	free(bad);
	free(h);
	test_end();
}

static void
test_crypt_schemes(void)
{
	static const struct {
		const char *scheme, *prefix;
	} v[] = {
		{ "SHA512-CRYPT", "{SHA512-CRYPT}$6$" },
		{ "sha256-crypt", "{SHA256-CRYPT}$5$" },
		{ "BLF-CRYPT", "{BLF-CRYPT}$2y$10$" },
		{ "MD5-CRYPT", "{MD5-CRYPT}$1$" },
		{ "CRYPT", "{CRYPT}$2y$" },
		{ "DES-CRYPT", "{DES-CRYPT}" },
		{ "PLAIN", "{PLAIN}s3cret" },
		{ "CLEAR", "{CLEAR}s3cret" },
		{ "CLEARTEXT", "{CLEARTEXT}s3cret" },
		{ NULL, "{SHA512-CRYPT}$6$" },
	};
	size_t i;
	char *h;

	test_begin("crypt and plain schemes");
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		h = password_hash(v[i].scheme, "s3cret");
		test_assert(h != NULL &&
		    strncmp(h, v[i].prefix, strlen(v[i].prefix)) == 0);
		if (h == NULL)
			continue;
		test_assert(password_verify(h, "s3cret") == 1);
		test_assert(password_verify(h, "s3cres") == 0);
		free(h);
	}
	test_assert(password_hash("NOSUCH", "x") == NULL);
	test_assert(password_scheme_known("scram-sha-256"));
	test_assert(password_scheme_known("CRAM-MD5"));
	test_assert(!password_scheme_known("CRAM"));
	test_end();
}

static void
test_yescrypt(void)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE], *stored;
	struct crypt_data *cd;
	const char *out;

	test_begin("yescrypt ($y$) as {CRYPT} and without a scheme");
	cd = xcalloc(1, sizeof(*cd));
	test_assert(crypt_gensalt_rn("$y$", 0, NULL, 0, setting,
	    sizeof(setting)) != NULL);
	out = crypt_r("Pst-pw.42", setting, cd);
	test_assert(out != NULL && strncmp(out, "$y$", 3) == 0);
	stored = xasprintf("{CRYPT}%s", out);
	test_assert(password_verify(stored, "Pst-pw.42") == 1);
	test_assert(password_verify(stored, "Pst-pw.43") == 0);
	test_assert(password_verify(stored + 7, "Pst-pw.42") == 1);
	test_assert(password_verify(stored + 7, "wrong") == 0);
	free(stored);
	free(cd);
	test_end();
}

static void
test_malformed(void)
{
	static const char *const bad[] = {
		"{NOSUCH}x",
		"{PLAIN",
		"{CRAM-MD5}",
		"{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a3",
		"{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604"
		    "ca3e035e7015116b00",
		"{CRAM-MD5}g06d4e1b26fccaa4b0b61801132340a354b21152711fb604"
		    "ca3e035e7015116b",
		"{SCRAM-SHA-256}",
		"{SCRAM-SHA-256}4096",
		"{SCRAM-SHA-256}4096,c2FsdA==,AAAA,AAAA",
		"{SCRAM-SHA-256}0,rrctbUisDGKpFbShm0cH3w==,"
		    "snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
		    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=",
		"{SCRAM-SHA-256}1000001,rrctbUisDGKpFbShm0cH3w==,"
		    "snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
		    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=",
		"{SCRAM-SHA-256}4096,,"
		    "snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
		    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=",
		"{SCRAM-SHA-256}4096,rrctbUisDGKpFbShm0cH3w==,"
		    "snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
		    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=,x",
		"{SCRAM-SHA-256}-1,rrctbUisDGKpFbShm0cH3w==,"
		    "snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
		    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=",
	};
	unsigned char salt[MAX_SCRAM_SALT], k1[32], k2[32];
	unsigned int iter;
	size_t i, saltlen;
	char *big;

	test_begin("malformed stored strings");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		test_assert(password_verify(bad[i], "x") == -1);
	/* Locked and empty crypt strings never match. */
	test_assert(password_verify("{CRYPT}!$6$x$y", "x") == 0);
	test_assert(password_verify("*", "") == 0);
	test_assert(password_verify("", "") == 0);
	/* A salt above MAX_SCRAM_SALT is refused. */
	big = xmalloc(2000);
	memset(big, 'A', 1999);
	big[1999] = '\0';
	memcpy(big, "4096,", 5);
	memcpy(big + 1000, "=,", 2);
	test_assert(password_scram_sha256_parse(big, &iter, salt, &saltlen,
	    k1, k2) == -1);
	free(big);
	test_assert(password_scram_sha256_parse("4096,rrctbUisDGKpFbShm0cH3w=="
	    ",snKkzTGM2Ldf+lMV7MyKnHrSX6WZN265aja0ZYuMHe8=,"
	    "Z6BAfAMJ7j2G3ya9pm9HkpYA3w+Alst3FK70xOewuF8=", &iter, salt,
	    &saltlen, k1, k2) == 0);
	test_assert(iter == 4096 && saltlen == 16);
	test_end();
}

static void
test_names(void)
{
	const char *n;
	size_t i;
	bool cram = false, scram = false, plain = false;

	test_begin("scheme list and scheme_data");
	for (i = 0; (n = password_scheme_name(i)) != NULL; i++) {
		test_assert(password_scheme_known(n));
		cram |= strcmp(n, "CRAM-MD5") == 0;
		scram |= strcmp(n, "SCRAM-SHA-256") == 0;
		plain |= strcmp(n, "PLAIN") == 0;
	}
	test_assert(i >= 10 && cram && scram && plain);
	test_assert_streq(password_scheme_data("{CLEAR}pw", "PLAIN"), "pw");
	test_assert_streq(password_scheme_data("{plain}pw", "PLAIN"), "pw");
	test_assert(password_scheme_data("{SHA512-CRYPT}$6$", "PLAIN") ==
	    NULL);
	test_assert(password_scheme_data("{SHA512-CRYPT}$6$",
	    "SHA256-CRYPT") == NULL);
	test_assert(password_scheme_data("pw", "PLAIN") == NULL);
	test_assert(password_scheme_data("{NOSUCH}pw", "PLAIN") == NULL);
	test_end();
}

int
main(void)
{
	test_cram_md5_hmac();
	test_cram_md5_scheme();
	test_scram_scheme();
	test_crypt_schemes();
	test_yescrypt();
	test_malformed();
	test_names();
	return test_done();
}
