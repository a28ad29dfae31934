/*
 * fuzz_sasl: the server side of every SASL mechanism (auth/sasl.c), as
 * the auth service runs it for SMTP AUTH, POP3 AUTH and IMAP
 * AUTHENTICATE: PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256, both on raw
 * responses and on the base64 lines clients send.
 *
 * Byte 0: bits 0-1 the mechanism, bit 2 base64 lines (else raw steps),
 * bits 3-4 the stored secret the lookup returns ({PLAIN}, {CRAM-MD5},
 * {SCRAM-SHA-256} with 2 iterations, none).  The rest is the client's
 * side: base64 mode splits it into lines at '\n'; raw mode reads steps
 * as one length byte and that many bytes.
 *
 * Checked beyond "no crash":
 *   - once a step says OK or FAIL the exchange is over (the harness
 *     stops; a further step must not be reached);
 *   - OK only with a user name of 1..MAX_SASL_USER bytes without NUL,
 *     CR or LF, and only for the user "fz" (the only one whose
 *     password is right); an authzid, if any, is that user;
 *   - a challenge is never larger than a few kilobytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "password.h"
#include "sasl.h"
#include "xmalloc.h"

#define MAX_FUZZ_SASL_INPUT	(16 * 1024)
#define MAX_FUZZ_SASL_STEPS	16

static const char *const fuzz_mechs[] = {
	"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"
};

static char *fuzz_secrets[4];

static void __attribute__((noreturn))
fuzz_sasl_fail(const char *what)
{
	fprintf(stderr, "sasl: %s\n", what);
	abort();
}

static int
fuzz_sasl_lookup(enum sasl_lookup_op op, const char *user,
    const char *password, char **secret_r, void *ctx,
    const char **error_r)
{
	unsigned kind = *(unsigned *)ctx;

	(void)error_r;
	if (strcmp(user, "tmp") == 0)
		return -1;
	if (strcmp(user, "fz") != 0)
		return 0;
	if (op == SASL_LOOKUP_VERIFY)
		return strcmp(password, "pw") == 0 ? 1 : 0;
	if (fuzz_secrets[kind] == NULL)
		return 0;
	*secret_r = xstrdup(fuzz_secrets[kind]);
	return 1;
}

static void
fuzz_sasl_init(void)
{
	static const unsigned char salt[4] = { 's', 'a', 'l', 't' };

	if (fuzz_secrets[0] != NULL)
		return;
	fuzz_secrets[0] = xstrdup("{PLAIN}pw");
	fuzz_secrets[1] = password_hash("CRAM-MD5", "pw");
	fuzz_secrets[2] = password_scram_sha256_secret("pw", salt,
	    sizeof(salt), 2);
	fuzz_secrets[3] = NULL;
	if (fuzz_secrets[1] == NULL)
		fuzz_sasl_fail("no CRAM-MD5 secret");
}

static void
fuzz_sasl_check_ok(struct sasl_server *s)
{
	const char *user = sasl_server_user(s);
	const char *authz = sasl_server_authzid(s);
	size_t len;

	if (user == NULL)
		fuzz_sasl_fail("OK without a user");
	len = strlen(user);
	if (len == 0 || len > MAX_SASL_USER || strpbrk(user, "\r\n") != NULL)
		fuzz_sasl_fail("OK with a malformed user name");
	if (strcmp(user, "fz") != 0)
		fuzz_sasl_fail("OK for a user whose password is unknown");
	if (authz != NULL && authz[0] != '\0' && strcmp(authz, user) != 0)
		fuzz_sasl_fail("OK for another authorization identity");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server *s;
	struct buf out;
	unsigned kind;
	const char *mech, *error;
	enum sasl_result r = SASL_CONTINUE;
	size_t i = 1, steps = 0;
	bool b64;

	if (size < 1 || size > MAX_FUZZ_SASL_INPUT)
		return 0;
	fuzz_sasl_init();
	mech = fuzz_mechs[data[0] & 3];
	b64 = (data[0] & 4) != 0;
	kind = (data[0] >> 3) & 3;
	s = sasl_server_new(mech, "smtp", "mail.example.test",
	    fuzz_sasl_lookup, &kind);
	if (s == NULL)
		fuzz_sasl_fail("sasl_server_new");
	/* A fixed nonce: runs are reproducible. */
	sasl_server_set_nonce(s, "fuzznonce0123456789");
	buf_init(&out, 0);
	/* The first step is the initial response (or none). */
	while (r == SASL_CONTINUE && steps++ < MAX_FUZZ_SASL_STEPS) {
		buf_reset(&out);
		if (b64) {
			const uint8_t *nl = i < size ?
			    memchr(data + i, '\n', size - i) : NULL;
			size_t len = nl != NULL ? (size_t)(nl - (data + i)) :
			    size - i;
			char *line = xstrndup((const char *)data + i, len);

			i += len + (nl != NULL);
			r = sasl_server_step_base64(s, line, &out, &error);
			free(line);
		} else {
			size_t len = i < size ? data[i++] : 0;

			if (len > size - i)
				len = size - i;
			r = sasl_server_step(s, data + i, len, &out, &error);
			i += len;
		}
		if (out.len > 4096)
			fuzz_sasl_fail("challenge too large");
		if (r == SASL_OK)
			fuzz_sasl_check_ok(s);
		if (i >= size && r == SASL_CONTINUE)
			break;
	}
	buf_free(&out);
	sasl_server_free(&s);
	return 0;
}
