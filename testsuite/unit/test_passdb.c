/*
 * test_passdb: passwd-file verification in every scheme, with the same
 * result for a wrong password and an unknown user; the stored-secret
 * lookup the SASL mechanisms use.  As root, also shadow and PAM with a
 * system user created for the test (name "pst" + pid) and removed again.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "cfg.h"
#include "passdb.h"
#include "password.h"
#include "sasl.h"
#include "test.h"
#include "userdb.h"
#include "xmalloc.h"

static char tmpdir[] = "/tmp/test_passdb.XXXXXX";

static void
set(const char *name, const char *value)
{
	const char *err;

	if (cfg_set(name, value, &err) != 0) {
		printf("# cfg_set %s: %s\n", name, err);
		abort();
	}
}

static int
verify(const char *user, const char *pw)
{
	const char *err = NULL;
	int ret;

	ret = passdb_verify(user, pw, NULL, &err);
	if (ret < 0)
		printf("# passdb_verify(%s): %s\n", user, err);
	return ret;
}

static char *
write_file(void)
{
	char *path = xasprintf("%s/passwd", tmpdir);
	char *sha = password_hash("SHA512-CRYPT", "s3cret");
	char *blf = password_hash("BLF-CRYPT", "s3cret");
	char *scram = sasl_scram_sha256_secret("s3cret", NULL, 0, 4096);
	char *scram2 = password_hash("SCRAM-SHA-256", "s3cret");
	char *cram = password_hash("CRAM-MD5", "s3cret");
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *yes;
	FILE *f = fopen(path, "w");

	/* yescrypt, as Debian's shadow stores it, under {CRYPT}. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting,
	    sizeof(setting)) == NULL)
		abort();
	yes = crypt_r("s3cret", setting, cd);
	if (f == NULL || sha == NULL || blf == NULL || yes == NULL ||
	    cram == NULL || scram2 == NULL)
		abort();
	fprintf(f, "# test users\n"
	    "plain:{PLAIN}s3cret::::::\n"
	    "sha:%s::::::\n"
	    "blf:%s::::::\n"
	    "scram:%s::::::\n"
	    "scram2:%s::::::\n"
	    "cram:%s::::::\n"
	    "yes:{CRYPT}%s::::::\n"
	    "weird:{NOSUCH}s3cret::::::\n"
	    "empty:::::::\n", sha, blf, scram, scram2, cram, yes);
	fclose(f);
	free(sha);
	free(blf);
	free(scram);
	free(scram2);
	free(cram);
	free(cd);
	return path;
}

static void
test_passwd_file(void)
{
	static const char *const users[] = {
		"plain", "sha", "blf", "scram", "scram2", "cram", "yes",
	};
	struct userdb_user u;
	char *path, *spec, *secret;
	const char *err;
	size_t i;

	test_begin("passwd-file verify");
	path = write_file();
	spec = xasprintf("passwd-file:%s", path);
	set("passdb", spec);
	set("data_directory", tmpdir);
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		test_assert(verify(users[i], "s3cret") == 1);
		test_assert(verify(users[i], "wrong") == 0);
		test_assert(verify(users[i], "") == 0);
	}
	/* Unknown user: the same answer as a wrong password. */
	test_assert(verify("nobody", "s3cret") == 0);
	test_assert(verify("weird", "s3cret") == 0);
	test_assert(verify("empty", "") == 0);
	test_assert(verify("PLAIN", "s3cret") == 0);

	test_assert(passdb_verify("plain", "s3cret", &u, &err) == 1);
	test_assert_streq(u.name, "plain");
	test_assert(u.home != NULL);
	userdb_user_free(&u);

	test_assert(passdb_has_secrets());
	test_assert(passdb_lookup_secret("plain", &secret, &err) == 1);
	test_assert_streq(secret, "{PLAIN}s3cret");
	free(secret);
	test_assert(passdb_lookup_secret("cram", &secret, &err) == 1);
	test_assert(strncmp(secret, "{CRAM-MD5}", 10) == 0);
	free(secret);
	test_assert(passdb_lookup_secret("nobody", &secret, &err) == 0);
	test_assert(secret == NULL);

	/* Unreadable file: temporary failure, not "wrong password". */
	set("passdb", "passwd-file:/nonexistent/passwd");
	test_assert(passdb_verify("plain", "s3cret", NULL, &err) == -1);
	test_assert(passdb_lookup_secret("plain", &secret, &err) == -1);
	set("passdb", spec);
	unlink(path);
	free(spec);
	free(path);
	test_end();
}

/* PLAIN and SCRAM-SHA-256 through passdb_sasl_lookup. */
static void
test_sasl_lookup(void)
{
	struct sasl_server *s;
	struct buf out;
	const char *err;
	char *path, *spec;

	test_begin("SASL over passwd-file");
	path = write_file();
	spec = xasprintf("passwd-file:%s", path);
	set("passdb", spec);
	buf_init(&out, 0);
	s = sasl_server_new("PLAIN", "smtp", "localhost",
	    passdb_sasl_lookup, NULL);
	/* base64("\0sha\0s3cret") */
	test_assert(sasl_server_step_base64(s, "AHNoYQBzM2NyZXQ=", &out,
	    &err) == SASL_OK);
	sasl_server_free(&s);
	s = sasl_server_new("PLAIN", "smtp", "localhost",
	    passdb_sasl_lookup, NULL);
	/* base64("\0nobody\0s3cret") */
	test_assert(sasl_server_step_base64(s, "AG5vYm9keQBzM2NyZXQ=", &out,
	    &err) == SASL_FAIL);
	sasl_server_free(&s);
	/* SCRAM from a stored {SCRAM-SHA-256} secret gets its salt. */
	s = sasl_server_new("SCRAM-SHA-256", "smtp", "localhost",
	    passdb_sasl_lookup, NULL);
	buf_reset(&out);
	test_assert(sasl_server_step(s, (const unsigned char *)
	    "n,,n=scram,r=abc", 16, &out, &err) == SASL_CONTINUE);
	test_assert(strstr(buf_cstr(&out), ",i=4096") != NULL);
	sasl_server_free(&s);
	/*
	 * CRAM-MD5 from the {CRAM-MD5} user: the response is
	 * hex(HMAC-MD5("s3cret", challenge)), computed here with OpenSSL.
	 */
	{
		static const char chal[] = "<1.2@localhost>";
		unsigned char mac[16];
		unsigned int maclen, i;
		char resp[64];

		HMAC(EVP_md5(), "s3cret", 6, (const unsigned char *)chal,
		    strlen(chal), mac, &maclen);
		i = (unsigned int)snprintf(resp, sizeof(resp), "cram ");
		for (; i < 5 + 32; i += 2)
			snprintf(resp + i, 3, "%02x", mac[(i - 5) / 2]);
		s = sasl_server_new("CRAM-MD5", "smtp", "localhost",
		    passdb_sasl_lookup, NULL);
		sasl_server_set_nonce(s, chal);
		test_assert(sasl_server_step(s, NULL, 0, &out, &err) ==
		    SASL_CONTINUE);
		test_assert(sasl_server_step(s, (unsigned char *)resp,
		    strlen(resp), &out, &err) == SASL_OK);
		sasl_server_free(&s);
		/* The sha user's crypt hash cannot serve CRAM-MD5. */
		memcpy(resp + 1, "sha", 3);	/* resp + 1: "sha <hex>" */
		s = sasl_server_new("CRAM-MD5", "smtp", "localhost",
		    passdb_sasl_lookup, NULL);
		sasl_server_set_nonce(s, chal);
		test_assert(sasl_server_step(s, NULL, 0, &out, &err) ==
		    SASL_CONTINUE);
		test_assert(sasl_server_step(s, (unsigned char *)resp + 1,
		    strlen(resp) - 1, &out, &err) == SASL_FAIL);
		sasl_server_free(&s);
	}
	buf_free(&out);
	unlink(path);
	free(spec);
	free(path);
	test_end();
}

static int
run(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_system(void)
{
	char user[32], *cmd;
	const char *err;
	int ok;

	if (geteuid() != 0) {
		printf("ok %s # SKIP not root\n", "shadow and pam");
		return;
	}
	snprintf(user, sizeof(user), "pst%ld", (long)getpid());
	cmd = xasprintf("useradd -M -s /usr/sbin/nologin %s && "
	    "echo '%s:Pst-pw.42' | chpasswd", user, user);
	ok = run(cmd) == 0;
	free(cmd);

	test_begin("shadow and pam with a system user");
	test_assert(ok);
	set("passdb", "shadow");
	test_assert(passdb_has_secrets() == false);
	test_assert(verify(user, "Pst-pw.42") == 1);
	test_assert(verify(user, "wrong") == 0);
	test_assert(verify("pstnosuchuser", "Pst-pw.42") == 0);
	test_assert(passdb_lookup_secret(user, &cmd, &err) == 0);

	/* Without /etc/pam.d/postern PAM uses the "other" stack. */
	set("passdb", "pam");
	test_assert(verify(user, "Pst-pw.42") == 1);
	test_assert(verify(user, "wrong") == 0);
	test_assert(verify("pstnosuchuser", "Pst-pw.42") == 0);

	/* A locked account fails with the right password. */
	cmd = xasprintf("usermod -L %s", user);
	test_assert(run(cmd) == 0);
	free(cmd);
	set("passdb", "shadow");
	test_assert(verify(user, "Pst-pw.42") == 0);
	set("passdb", "pam");
	test_assert(verify(user, "Pst-pw.42") == 0);

	cmd = xasprintf("userdel %s", user);
	test_assert(run(cmd) == 0);
	free(cmd);
	test_end();
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	test_passwd_file();
	test_sasl_lookup();
	test_system();
	rmdir(tmpdir);
	return test_done();
}
