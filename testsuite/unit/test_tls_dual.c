/*
 * Unit tests of common/tls.c serving an RSA and an ECDSA certificate at
 * once: several pairs in one combined file (either order, as posternd
 * hands them to smtpd), the second pair configured next to the first
 * (smtpd_tls_eccert_file, ssl_alt_cert), which certificate a client that
 * offers only ECDSA or only RSA signature algorithms gets, one-line
 * errors for a broken or same-type second pair, the start check, and
 * the client's CA directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cfg.h"
#include "test.h"
#include "tls.h"

#define HOST		"mail.example.test"
#define MAX_STEPS	100000

static char tmpdir[] = "/tmp/test_tls_dual.XXXXXX";
static char cert_rsa[128], key_rsa[128], cert_ec[128], key_ec[128];
static char cert_rsa2[128], key_rsa2[128], bad_key[128];

static bool
one_line(const char *s)
{
	return s != NULL && *s != '\0' && strchr(s, '\n') == NULL &&
	    strchr(s, '\r') == NULL && strlen(s) < 256;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[4][16384];
	static int next;
	char *b = buf[next++ % 4];
	size_t n;

	if (f == NULL)
		abort();
	n = fread(b, 1, sizeof(buf[0]) - 1, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

/* Concatenate files into tmpdir/name; returns the path (static). */
static const char *
combine(const char *name, const char *const *files)
{
	static char path[4][160];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	(void)snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	if ((f = fopen(p, "w")) == NULL)
		abort();
	for (; *files != NULL; files++)
		fprintf(f, "%s", slurp(*files));
	fclose(f);
	return p;
}

/*
 * Handshake of a server context with a plain OpenSSL client that offers
 * only the signature algorithms sigalgs (TLS 1.2 when tls12); returns
 * the key type of the certificate the server sent, or NID_undef.
 */
static int
served_type(struct tls_server_ctx *sctx, const char *sigalgs, bool tls12)
{
	struct tls_conn *srv;
	SSL_CTX *cctx;
	SSL *cli;
	X509 *peer;
	bool sdone = false, cdone = false;
	int sv[2], i, type = NID_undef;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
	srv = tls_conn_new(sctx, sv[0]);
	if ((cctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set1_sigalgs_list(cctx, sigalgs) != 1)
		abort();
	if (tls12) {
		(void)SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
		(void)SSL_CTX_set_cipher_list(cctx,
		    "ECDHE-RSA-AES128-GCM-SHA256:"
		    "ECDHE-ECDSA-AES128-GCM-SHA256");
	}
	cli = SSL_new(cctx);
	SSL_set_fd(cli, sv[1]);
	SSL_set_connect_state(cli);
	for (i = 0; i < MAX_STEPS && (!sdone || !cdone); i++) {
		if (!sdone && (tls_conn_handshake(srv) == 0 || errno != EAGAIN))
			sdone = true;
		if (!cdone) {
			int r = SSL_do_handshake(cli);

			if (r == 1 || (SSL_get_error(cli, r) !=
			    SSL_ERROR_WANT_READ && SSL_get_error(cli, r) !=
			    SSL_ERROR_WANT_WRITE))
				cdone = true;
		}
	}
	if (SSL_is_init_finished(cli) &&
	    (peer = SSL_get_peer_certificate(cli)) != NULL) {
		type = EVP_PKEY_base_id(X509_get0_pubkey(peer));
		X509_free(peer);
	}
	ERR_clear_error();
	SSL_free(cli);
	SSL_CTX_free(cctx);
	tls_conn_free(&srv);
	close(sv[0]);
	close(sv[1]);
	return type;
}

#define EC_ONLY		"ECDSA+SHA256"
#define RSA_ONLY	"RSA-PSS+SHA256:RSA+SHA256"

static void
check_both(struct tls_server_ctx *ctx)
{
	test_assert(ctx != NULL);
	if (ctx == NULL)
		return;
	test_assert(served_type(ctx, EC_ONLY, false) == EVP_PKEY_EC);
	test_assert(served_type(ctx, RSA_ONLY, false) == EVP_PKEY_RSA);
	test_assert(served_type(ctx, EC_ONLY, true) == EVP_PKEY_EC);
	test_assert(served_type(ctx, RSA_ONLY, true) == EVP_PKEY_RSA);
}

static void
setup(void)
{
	const char *error = NULL;

	if (mkdtemp(tmpdir) == NULL)
		abort();
	(void)snprintf(cert_rsa, sizeof(cert_rsa), "%s/rsa.crt", tmpdir);
	(void)snprintf(key_rsa, sizeof(key_rsa), "%s/rsa.key", tmpdir);
	(void)snprintf(cert_ec, sizeof(cert_ec), "%s/ec.crt", tmpdir);
	(void)snprintf(key_ec, sizeof(key_ec), "%s/ec.key", tmpdir);
	(void)snprintf(cert_rsa2, sizeof(cert_rsa2), "%s/rsa2.crt", tmpdir);
	(void)snprintf(key_rsa2, sizeof(key_rsa2), "%s/rsa2.key", tmpdir);
	(void)snprintf(bad_key, sizeof(bad_key), "%s/bad.key", tmpdir);
	if (tls_make_self_signed_type(cert_rsa, key_rsa, HOST,
	    TLS_KEY_RSA2048, &error) < 0 ||
	    tls_make_self_signed_type(cert_ec, key_ec, HOST,
	    TLS_KEY_EC_P256, &error) < 0 ||
	    tls_make_self_signed_type(cert_rsa2, key_rsa2, HOST,
	    TLS_KEY_RSA2048, &error) < 0) {
		printf("Bail out! %s\n", error);
		exit(1);
	}
	FILE *f = fopen(bad_key, "w");
	fprintf(f, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n"
	    "-----END PRIVATE KEY-----\n");
	fclose(f);
}

static void
test_single(void)
{
	struct tls_server_ctx *ctx;
	const char *error = NULL;

	test_begin("tls dual: one certificate is served to every client");
	cfg_load(NULL);
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(ctx != NULL);
	/* No ECDSA certificate: an ECDSA-only client gets none. */
	test_assert(served_type(ctx, RSA_ONLY, false) == EVP_PKEY_RSA);
	test_assert(served_type(ctx, EC_ONLY, false) == NID_undef);
	tls_server_ctx_free(&ctx);
	test_end();
}

static void
test_combined(void)
{
	const char *certs_first[] = { cert_rsa, key_rsa, cert_ec, key_ec,
	    NULL };
	const char *keys_first[] = { key_ec, cert_ec, key_rsa, cert_rsa,
	    NULL };
	const char *same[] = { cert_rsa, key_rsa, cert_rsa2, key_rsa2, NULL };
	const char *broken[] = { cert_rsa, key_rsa, cert_ec, bad_key, NULL };
	const char *mismatch[] = { cert_rsa, key_rsa, cert_ec, key_rsa2,
	    NULL };
	struct tls_server_ctx *ctx;
	const char *error = NULL, *p;

	test_begin("tls dual: several pairs in one file");
	cfg_load(NULL);
	p = combine("both1.pem", certs_first);
	ctx = tls_server_ctx_new(p, p, &error);
	check_both(ctx);
	tls_server_ctx_free(&ctx);
	p = combine("both2.pem", keys_first);
	ctx = tls_server_ctx_new(p, p, &error);
	check_both(ctx);
	tls_server_ctx_free(&ctx);

	/* Blocks back to back, no line end between them (or at the end). */
	{
		char packed[160];
		FILE *f;
		int i;

		(void)snprintf(packed, sizeof(packed), "%s/packed.pem",
		    tmpdir);
		if ((f = fopen(packed, "w")) == NULL)
			abort();
		for (i = 0; certs_first[i] != NULL; i++) {
			char *b = slurp(certs_first[i]);
			size_t n = strlen(b);

			while (n > 0 && b[n - 1] == '\n')
				n--;
			fwrite(b, 1, n, f);
		}
		fclose(f);
		error = NULL;
		ctx = tls_server_ctx_new(packed, packed, &error);
		check_both(ctx);
		tls_server_ctx_free(&ctx);
	}

	p = combine("same.pem", same);
	error = NULL;
	ctx = tls_server_ctx_new(p, p, &error);
	test_assert(ctx == NULL && one_line(error));
	test_assert(error != NULL &&
	    strstr(error, "two RSA certificates") != NULL);
	printf("# %s\n", error != NULL ? error : "");

	p = combine("broken.pem", broken);
	error = NULL;
	ctx = tls_server_ctx_new(p, p, &error);
	test_assert(ctx == NULL && one_line(error));
	test_assert(error != NULL && strstr(error, "pair 2") != NULL);
	printf("# %s\n", error != NULL ? error : "");

	p = combine("mismatch.pem", mismatch);
	error = NULL;
	ctx = tls_server_ctx_new(p, p, &error);
	test_assert(ctx == NULL && one_line(error));
	printf("# %s\n", error != NULL ? error : "");
	test_assert(error != NULL && strstr(error, "does not match") != NULL);
	test_end();
}

static void
set(const char *name, const char *value)
{
	const char *error = NULL;

	if (cfg_set(name, value, &error) < 0) {
		printf("Bail out! cfg_set %s: %s\n", name, error);
		exit(1);
	}
}

static void
test_configured(void)
{
	struct tls_server_ctx *ctx;
	const char *error = NULL, *param, *c, *k;
	char lt[160];

	test_begin("tls dual: Postfix smtpd_tls_eccert_file");
	cfg_load(NULL);
	set("smtpd_tls_cert_file", cert_rsa);
	set("smtpd_tls_key_file", key_rsa);
	set("smtpd_tls_eccert_file", cert_ec);
	set("smtpd_tls_eckey_file", key_ec);
	test_assert(tls_server_alt_check(&error) == 0);
	test_assert(tls_server_alt_pair(cert_rsa, &param, &c, &k));
	test_assert_streq(param, "smtpd_tls_eccert_file");
	test_assert_streq(k, key_ec);
	test_assert(!tls_server_alt_pair(cert_ec, &param, &c, &k));
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	check_both(ctx);
	tls_server_ctx_free(&ctx);
	/* Any other file is loaded alone (tests, the self-signed pair). */
	ctx = tls_server_ctx_new(cert_rsa2, key_rsa2, &error);
	test_assert(ctx != NULL &&
	    served_type(ctx, EC_ONLY, false) == NID_undef);
	tls_server_ctx_free(&ctx);
	test_end();

	test_begin("tls dual: Dovecot ssl_alt_cert, shared with smtpd");
	cfg_load(NULL);
	(void)snprintf(lt, sizeof(lt), "<%s", cert_rsa);
	set("ssl_cert", lt);
	(void)snprintf(lt, sizeof(lt), "<%s", key_rsa);
	set("ssl_key", lt);
	(void)snprintf(lt, sizeof(lt), "<%s", cert_ec);
	set("ssl_alt_cert", lt);
	(void)snprintf(lt, sizeof(lt), "<%s", key_ec);
	set("ssl_alt_key", lt);
	test_assert(tls_server_alt_check(&error) == 0);
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	check_both(ctx);
	tls_server_ctx_free(&ctx);
	/* smtpd's own first pair: Dovecot's second one is not its match. */
	set("smtpd_tls_cert_file", cert_rsa2);
	set("smtpd_tls_key_file", key_rsa2);
	test_assert(!tls_server_alt_pair(cert_rsa2, &param, &c, &k));
	/* ... unless it is the same file. */
	set("smtpd_tls_cert_file", cert_rsa);
	test_assert(tls_server_alt_pair(cert_rsa, &param, &c, &k));
	test_assert_streq(param, "ssl_alt_cert");
	test_end();

	test_begin("tls dual: broken or same-type second pair");
	cfg_load(NULL);
	set("smtpd_tls_cert_file", cert_rsa);
	set("smtpd_tls_key_file", key_rsa);
	set("smtpd_tls_eccert_file", cert_ec);
	set("smtpd_tls_eckey_file", bad_key);
	error = NULL;
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(ctx == NULL && one_line(error));
	test_assert(error != NULL &&
	    strncmp(error, "smtpd_tls_eccert_file: ", 23) == 0 &&
	    strstr(error, bad_key) != NULL);
	printf("# %s\n", error != NULL ? error : "");
	set("smtpd_tls_eckey_file", key_rsa);
	error = NULL;
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	printf("# %s\n", error != NULL ? error : "");
	test_assert(ctx == NULL && one_line(error) &&
	    strstr(error, "does not match") != NULL);
	set("smtpd_tls_eccert_file", cert_rsa2);
	set("smtpd_tls_eckey_file", key_rsa2);
	error = NULL;
	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(ctx == NULL && one_line(error) &&
	    strstr(error, "another key type") != NULL);
	printf("# %s\n", error != NULL ? error : "");
	test_end();

	test_begin("tls dual: start check of the settings");
	cfg_load(NULL);
	set("smtpd_tls_eckey_file", key_ec);
	error = NULL;
	test_assert(tls_server_alt_check(&error) == -1 && one_line(error) &&
	    strstr(error, "smtpd_tls_eccert_file is not") != NULL);
	cfg_load(NULL);
	set("ssl_alt_cert", cert_ec);
	error = NULL;
	test_assert(tls_server_alt_check(&error) == -1 && one_line(error) &&
	    strstr(error, "ssl_alt_cert") != NULL);
	printf("# %s\n", error != NULL ? error : "");
	cfg_load(NULL);
	test_assert(tls_server_alt_check(&error) == 0);
	test_end();
}

static void
test_client_capath(void)
{
	struct tls_client_ctx *c;
	const char *error = NULL;

	test_begin("tls client CA directory");
	c = tls_client_ctx_new_ca(true, NULL, tmpdir, &error);
	test_assert(c != NULL);
	tls_client_ctx_free(&c);
	c = tls_client_ctx_new_ca(true, "", "", &error);
	test_assert(c != NULL);
	tls_client_ctx_free(&c);
	error = NULL;
	c = tls_client_ctx_new_ca(true, NULL, "/nonexistent/certs", &error);
	test_assert(c == NULL && one_line(error) &&
	    strstr(error, "/nonexistent/certs") != NULL);
	test_end();
}

static void
cleanup(void)
{
	char cmd[256];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", tmpdir);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setup();
	test_single();
	test_combined();
	test_configured();
	test_client_capath();
	cleanup();
	return test_done();
}
