/*
 * Unit tests of common/tls.c: a self-signed certificate made into a
 * temporary directory, then server and client connections over a
 * non-blocking socketpair in one process, stepped in turn until both
 * sides are done: handshake, data both ways including 1 MB writes that
 * need many EAGAIN rounds, pending bytes, close_notify, verification by
 * name, and clean one-line errors for bad files.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "test.h"
#include "tls.h"

#define HOST		"mail.example.test"
#define BIG_SIZE	(1024 * 1024)
#define MAX_STEPS	200000

static char tmpdir[] = "/tmp/test_tls.XXXXXX";
static char cert_rsa[128], key_rsa[128], cert_ec[128], key_ec[128];

static bool
one_line(const char *s)
{
	return s != NULL && *s != '\0' && strchr(s, '\n') == NULL &&
	    strchr(s, '\r') == NULL && strlen(s) < 256;
}

static void
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct pair {
	int sv[2];
	struct tls_conn *srv, *cli;
};

static void
pair_open(struct pair *p, struct tls_server_ctx *sctx,
    struct tls_client_ctx *cctx, const char *servername)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) == -1)
		abort();
	nonblock(p->sv[0]);
	nonblock(p->sv[1]);
	p->srv = tls_conn_new(sctx, p->sv[0]);
	p->cli = tls_client_conn_new(cctx, p->sv[1], servername);
}

static void
pair_close(struct pair *p)
{
	tls_conn_free(&p->srv);
	tls_conn_free(&p->cli);
	close(p->sv[0]);
	close(p->sv[1]);
}

/* Alternate handshake steps; 0 when both done, -1 when either failed. */
static int
pair_handshake(struct pair *p, int *srv_ret, int *cli_ret)
{
	bool sdone = false, cdone = false;
	int i, r;

	*srv_ret = *cli_ret = 1;
	for (i = 0; i < MAX_STEPS && (!sdone || !cdone); i++) {
		if (!sdone) {
			r = tls_conn_handshake(p->srv);
			if (r == 0)
				sdone = true;
			else if (errno != EAGAIN) {
				*srv_ret = -1;
				sdone = true;
			} else if (tls_conn_want(p->srv) != IOLOOP_READ &&
			    tls_conn_want(p->srv) != IOLOOP_WRITE)
				return -2;
		}
		if (!cdone) {
			r = tls_conn_handshake(p->cli);
			if (r == 0)
				cdone = true;
			else if (errno != EAGAIN) {
				*cli_ret = -1;
				cdone = true;
			} else if (tls_conn_want(p->cli) != IOLOOP_READ &&
			    tls_conn_want(p->cli) != IOLOOP_WRITE)
				return -2;
		}
	}
	if (*srv_ret == 1)
		*srv_ret = sdone ? 0 : -1;
	if (*cli_ret == 1)
		*cli_ret = cdone ? 0 : -1;
	return *srv_ret == 0 && *cli_ret == 0 ? 0 : -1;
}

/*
 * Send len bytes from w to r, alternating write and read steps; counts
 * the writes that had to wait for IOLOOP_WRITE.  true when every byte
 * arrived intact.
 */
static bool
pair_transfer(struct tls_conn *w, struct tls_conn *r, size_t len,
    unsigned int *write_waits_r)
{
	unsigned char *out, *in;
	size_t sent = 0, got = 0, i;
	ssize_t n = 0;
	int steps;
	bool ok;

	out = malloc(len);
	in = malloc(len);
	for (i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 7 + (i >> 13));
	*write_waits_r = 0;
	for (steps = 0; steps < MAX_STEPS && got < len; steps++) {
		/* Write until the socket is full... */
		while (sent < len) {
			n = tls_conn_write(w, out + sent, len - sent);
			if (n > 0) {
				sent += (size_t)n;
				continue;
			}
			if (n == -1 && errno == EAGAIN &&
			    tls_conn_want(w) == IOLOOP_WRITE)
				(*write_waits_r)++;
			break;
		}
		if (sent < len && (errno != EAGAIN || tls_conn_want(w) == 0))
			break;
		/* ...then let the reader take a bit, as a slow peer would. */
		n = tls_conn_read(r, in + got, len - got < 20000 ?
		    len - got : 20000);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			break;
		while (got < len && tls_conn_pending(r) > 0 &&
		    (n = tls_conn_read(r, in + got, len - got)) > 0)
			got += (size_t)n;
	}
	ok = sent == len && got == len && memcmp(in, out, len) == 0;
	free(out);
	free(in);
	return ok;
}

static void
test_self_signed(void)
{
	const char *error = NULL;
	struct stat st;
	X509 *x;
	FILE *f;
	GENERAL_NAMES *sans;
	GENERAL_NAME *gn;
	bool found = false;
	int i;

	test_begin("tls self-signed certificate");
	test_assert(mkdtemp(tmpdir) != NULL);
	(void)snprintf(cert_rsa, sizeof(cert_rsa), "%s/rsa.pem", tmpdir);
	(void)snprintf(key_rsa, sizeof(key_rsa), "%s/rsa.key", tmpdir);
	(void)snprintf(cert_ec, sizeof(cert_ec), "%s/ec.pem", tmpdir);
	(void)snprintf(key_ec, sizeof(key_ec), "%s/ec.key", tmpdir);
	test_assert(tls_make_self_signed(cert_rsa, key_rsa, HOST,
	    &error) == 0);
	test_assert(tls_make_self_signed_type(cert_ec, key_ec, HOST,
	    TLS_KEY_EC_P256, &error) == 0);
	test_assert(stat(key_rsa, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(stat(key_ec, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(stat(cert_rsa, &st) == 0 && (st.st_mode & 0777) == 0644);

	f = fopen(cert_rsa, "r");
	test_assert(f != NULL);
	x = f == NULL ? NULL : PEM_read_X509(f, NULL, NULL, NULL);
	if (f != NULL)
		fclose(f);
	test_assert(x != NULL);
	if (x != NULL) {
		sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
		test_assert(sans != NULL);
		for (i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans);
		    i++) {
			gn = sk_GENERAL_NAME_value(sans, i);
			if (gn->type == GEN_DNS &&
			    ASN1_STRING_length(gn->d.dNSName) ==
			    (int)strlen(HOST) &&
			    memcmp(ASN1_STRING_get0_data(gn->d.dNSName),
			    HOST, strlen(HOST)) == 0)
				found = true;
		}
		GENERAL_NAMES_free(sans);
		test_assert(found);
		test_assert(X509_check_host(x, HOST, 0, 0, NULL) == 1);
		test_assert(X509_check_host(x, "other.example.test", 0, 0,
		    NULL) != 1);
		/* About ten years. */
		test_assert(X509_cmp_time(X509_get0_notAfter(x),
		    &(time_t){ time(NULL) + 3649L * 86400 }) > 0);
		test_assert(X509_cmp_time(X509_get0_notAfter(x),
		    &(time_t){ time(NULL) + 3651L * 86400 }) < 0);
		X509_free(x);
	}

	/* No temporary files left behind. */
	{
		char cmd[256];

		(void)snprintf(cmd, sizeof(cmd),
		    "test $(ls %s | wc -l) -eq 4", tmpdir);
		test_assert(system(cmd) == 0);
	}

	error = NULL;
	test_assert(tls_make_self_signed(cert_rsa, key_rsa,
	    "bad,DNS:evil.test", &error) == -1);
	test_assert(one_line(error));
	error = NULL;
	test_assert(tls_make_self_signed("/nonexistent/dir/c.pem",
	    "/nonexistent/dir/k.pem", HOST, &error) == -1);
	test_assert(one_line(error));
	test_assert(error != NULL && strstr(error, "/nonexistent/dir") !=
	    NULL);
	test_end();
}

static void
test_bad_files(void)
{
	struct tls_server_ctx *ctx;
	struct tls_client_ctx *cctx;
	const char *error = NULL;

	test_begin("tls bad certificate and key files");
	ctx = tls_server_ctx_new(cert_rsa, "/nonexistent/key.pem", &error);
	test_assert(ctx == NULL);
	test_assert(one_line(error));
	test_assert(error != NULL &&
	    strstr(error, "/nonexistent/key.pem") != NULL &&
	    strstr(error, "No such file") != NULL);
	if (error != NULL)
		printf("# %s\n", error);

	error = NULL;
	ctx = tls_server_ctx_new("/nonexistent/cert.pem", key_rsa, &error);
	test_assert(ctx == NULL && one_line(error));

	/* A key that is not PEM at all: the certificate file. */
	error = NULL;
	ctx = tls_server_ctx_new(cert_rsa, cert_rsa, &error);
	test_assert(ctx == NULL && one_line(error));
	if (error != NULL)
		printf("# %s\n", error);

	/* A valid key of another certificate. */
	error = NULL;
	ctx = tls_server_ctx_new(cert_rsa, key_ec, &error);
	test_assert(ctx == NULL && one_line(error));
	test_assert(error != NULL && strstr(error, "does not match") != NULL);
	if (error != NULL)
		printf("# %s\n", error);

	error = NULL;
	cctx = tls_client_ctx_new(true, "/nonexistent/ca.pem", &error);
	test_assert(cctx == NULL && one_line(error));

	ctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(ctx != NULL);
	if (ctx != NULL) {
		error = NULL;
		test_assert(tls_server_ctx_set_ciphers(ctx, "NO-SUCH-CIPHER",
		    &error) == -1 && one_line(error));
		test_assert(tls_server_ctx_set_ciphers(ctx,
		    TLS_DEFAULT_CIPHERS, &error) == 0);
	}
	tls_server_ctx_free(&ctx);
	test_assert(ctx == NULL);
	test_end();
}

static void
test_conversation(void)
{
	struct tls_server_ctx *sctx;
	struct tls_client_ctx *cctx;
	struct pair p;
	const char *error = NULL;
	unsigned int waits;
	char buf[64];
	ssize_t n;
	int sr, cr, i;

	test_begin("tls handshake and data over a socketpair");
	sctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(sctx != NULL);
	cctx = tls_client_ctx_new(true, cert_rsa, &error);
	test_assert(cctx != NULL);
	if (sctx == NULL || cctx == NULL)
		abort();
	pair_open(&p, sctx, cctx, HOST);
	test_assert(!tls_conn_is_established(p.srv));
	test_assert_streq(tls_conn_info(p.srv), "");

	/* Nothing to read yet: EAGAIN and a READ wait, no block. */
	n = tls_conn_read(p.srv, buf, sizeof(buf));
	test_assert(n == -1 && errno == EAGAIN &&
	    tls_conn_want(p.srv) == IOLOOP_READ);

	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert(tls_conn_is_established(p.srv));
	test_assert(tls_conn_is_established(p.cli));
	test_assert_streq(tls_conn_info(p.srv),
	    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
	test_assert_streq(tls_conn_info(p.cli), tls_conn_info(p.srv));
	test_assert_streq(tls_conn_version(p.srv), "TLSv1.3");
	test_assert(tls_conn_verified(p.cli));
	printf("# %s\n", tls_conn_info(p.srv));

	/* Small lines both ways. */
	test_assert(tls_conn_write(p.cli, "EHLO client\r\n", 13) == 13);
	n = tls_conn_read(p.srv, buf, sizeof(buf));
	test_assert(n == 13 && memcmp(buf, "EHLO client\r\n", 13) == 0);
	test_assert(tls_conn_write(p.srv, "250 ok\r\n", 8) == 8);
	n = tls_conn_read(p.cli, buf, sizeof(buf));
	test_assert(n == 8 && memcmp(buf, "250 ok\r\n", 8) == 0);
	test_assert(tls_conn_write(p.srv, "x", 0) == 0);

	/* Part of a record read: the rest is pending inside OpenSSL. */
	test_assert(tls_conn_write(p.srv, "0123456789abcdef", 16) == 16);
	n = tls_conn_read(p.cli, buf, 4);
	test_assert(n == 4 && memcmp(buf, "0123", 4) == 0);
	test_assert(tls_conn_pending(p.cli) == 12);
	n = tls_conn_read(p.cli, buf, sizeof(buf));
	test_assert(n == 12 && memcmp(buf, "456789abcdef", 12) == 0);
	test_assert(tls_conn_pending(p.cli) == 0);

	/* 1 MB each way: the socketpair fills up many times. */
	test_assert(pair_transfer(p.srv, p.cli, BIG_SIZE, &waits));
	printf("# server->client 1 MB: %u write waits\n", waits);
	test_assert(waits > 1);
	test_assert(pair_transfer(p.cli, p.srv, BIG_SIZE, &waits));
	printf("# client->server 1 MB: %u write waits\n", waits);
	test_assert(waits > 1);

	/* close_notify: the peer reads a clean EOF. */
	test_assert(tls_conn_shutdown(p.srv) == 0);
	for (i = 0; i < 10; i++) {
		n = tls_conn_read(p.cli, buf, sizeof(buf));
		if (n != -1 || errno != EAGAIN)
			break;
	}
	test_assert(n == 0);
	pair_close(&p);

	test_end();

	test_begin("tls ECDSA certificate and TLS 1.2");
	{
		struct tls_server_ctx *ectx;
		struct tls_client_ctx *cec;

		ectx = tls_server_ctx_new(cert_ec, key_ec, &error);
		cec = tls_client_ctx_new(true, cert_ec, &error);
		test_assert(cec != NULL);
		test_assert(ectx != NULL);
		test_assert(tls_server_ctx_set_protocols(ectx, "TLSv1.1", NULL,
		    &error) == -1 && one_line(error));
		test_assert(tls_server_ctx_set_protocols(ectx, NULL, "TLSv1.2",
		    &error) == 0);
		pair_open(&p, ectx, cec, HOST);
		test_assert(pair_handshake(&p, &sr, &cr) == 0);
		test_assert_streq(tls_conn_info(p.srv), "TLSv1.2 with cipher "
		    "ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)");
		test_assert(tls_conn_verified(p.cli));
		printf("# %s\n", tls_conn_info(p.srv));
		/* Data flows over TLS 1.2 too. */
		test_assert(tls_conn_write(p.cli, "a", 1) == 1);
		test_assert(tls_conn_read(p.srv, buf, sizeof(buf)) == 1);
		pair_close(&p);

		/* Both certificates loaded: this client gets ECDSA. */
		test_assert(tls_server_ctx_add_cert(ectx, cert_rsa, key_rsa,
		    &error) == 0);
		pair_open(&p, ectx, cec, HOST);
		test_assert(pair_handshake(&p, &sr, &cr) == 0);
		test_assert(strstr(tls_conn_info(p.srv), "ECDHE-ECDSA") !=
		    NULL);
		test_assert(tls_conn_verified(p.cli));
		pair_close(&p);
		tls_client_ctx_free(&cec);
		tls_server_ctx_free(&ectx);
	}
	test_end();

	test_begin("tls client and server minimum TLS 1.3");
	{
		struct tls_client_ctx *c13;

		c13 = tls_client_ctx_new(false, NULL, &error);
		test_assert(c13 != NULL);
		test_assert(tls_client_ctx_set_protocols(c13, "TLSv1.3",
		    NULL, &error) == 0);
		pair_open(&p, sctx, c13, HOST);
		test_assert(pair_handshake(&p, &sr, &cr) == 0);
		test_assert_streq(tls_conn_version(p.cli), "TLSv1.3");
		/* Not signed by anything in the system store. */
		test_assert(!tls_conn_verified(p.cli));
		pair_close(&p);
		tls_client_ctx_free(&c13);
	}
	test_end();

	tls_client_ctx_free(&cctx);
	tls_server_ctx_free(&sctx);
}

/* ssl_min_protocol and ssl_cipher_list on a server context. */
static void
test_policy(void)
{
	struct tls_server_ctx *sctx;
	struct tls_client_ctx *c12, *cany;
	struct pair p;
	const char *error = NULL;
	int sr, cr;

	test_begin("tls server policy: bad values name the setting");
	sctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	test_assert(sctx != NULL);
	if (sctx == NULL)
		abort();
	error = NULL;
	test_assert(tls_server_ctx_set_policy(sctx, "TLSv1.1", "",
	    &error) == -1 && one_line(error));
	test_assert(error != NULL && strstr(error, "ssl_min_protocol") !=
	    NULL);
	error = NULL;
	test_assert(tls_server_ctx_set_policy(sctx, "", "NO-SUCH-CIPHER",
	    &error) == -1 && one_line(error));
	test_assert(error != NULL && strstr(error, "ssl_cipher_list") !=
	    NULL);
	if (error != NULL)
		printf("# %s\n", error);
	test_assert(tls_server_ctx_set_policy(sctx, "", "", &error) == 0);
	test_assert(tls_server_ctx_set_policy(sctx, NULL, NULL, &error) == 0);
	test_end();

	c12 = tls_client_ctx_new(false, NULL, &error);
	cany = tls_client_ctx_new(false, NULL, &error);
	test_assert(c12 != NULL && cany != NULL);
	if (c12 == NULL || cany == NULL)
		abort();
	test_assert(tls_client_ctx_set_protocols(c12, NULL, "TLSv1.2",
	    &error) == 0);

	test_begin("tls server policy: a cipher list for TLS 1.2");
	test_assert(tls_server_ctx_set_policy(sctx, "TLSv1.2",
	    "ECDHE-RSA-AES128-GCM-SHA256", &error) == 0);
	pair_open(&p, sctx, c12, HOST);
	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert_streq(tls_conn_info(p.srv), "TLSv1.2 with cipher "
	    "ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)");
	pair_close(&p);
	test_end();

	test_begin("tls server policy: ssl_min_protocol = TLSv1.3");
	test_assert(tls_server_ctx_set_policy(sctx, "TLSv1.3", "",
	    &error) == 0);
	pair_open(&p, sctx, c12, HOST);
	test_assert(pair_handshake(&p, &sr, &cr) == -1);
	test_assert(sr == -1);
	pair_close(&p);
	pair_open(&p, sctx, cany, HOST);
	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert_streq(tls_conn_version(p.srv), "TLSv1.3");
	pair_close(&p);
	test_end();

	tls_client_ctx_free(&c12);
	tls_client_ctx_free(&cany);
	tls_server_ctx_free(&sctx);
}

static void
test_verify(void)
{
	struct tls_server_ctx *sctx;
	struct tls_client_ctx *cctx, *lax;
	struct pair p;
	const char *error = NULL;
	char buf[16];
	int sr, cr;

	test_begin("tls client verification by name");
	sctx = tls_server_ctx_new(cert_rsa, key_rsa, &error);
	cctx = tls_client_ctx_new(true, cert_rsa, &error);
	lax = tls_client_ctx_new(false, cert_rsa, &error);
	test_assert(sctx != NULL && cctx != NULL && lax != NULL);
	if (sctx == NULL || cctx == NULL || lax == NULL)
		abort();

	/* verify: a name the certificate does not carry fails. */
	pair_open(&p, sctx, cctx, "other.example.test");
	test_assert(pair_handshake(&p, &sr, &cr) == -1);
	test_assert(cr == -1);
	test_assert(one_line(tls_conn_error(p.cli)));
	printf("# client: %s\n", tls_conn_error(p.cli));
	if (sr == -1) {
		test_assert(one_line(tls_conn_error(p.srv)));
		printf("# server: %s\n", tls_conn_error(p.srv));
	}
	pair_close(&p);

	/* may/encrypt: the handshake succeeds, unverified. */
	pair_open(&p, sctx, lax, "other.example.test");
	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert(!tls_conn_verified(p.cli));
	pair_close(&p);
	pair_open(&p, sctx, lax, HOST);
	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert(tls_conn_verified(p.cli));
	pair_close(&p);

	/* IP literal: no SNI, still a working session. */
	pair_open(&p, sctx, lax, "192.0.2.1");
	test_assert(pair_handshake(&p, &sr, &cr) == 0);
	test_assert(!tls_conn_verified(p.cli));
	pair_close(&p);

	/* Garbage instead of a ClientHello: a clean server error. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p.sv) == -1)
		abort();
	nonblock(p.sv[0]);
	p.srv = tls_conn_new(sctx, p.sv[0]);
	test_assert(write(p.sv[1], "EHLO x\r\nNOOP\r\n", 14) == 14);
	test_assert(tls_conn_handshake(p.srv) == -1 && errno != EAGAIN);
	test_assert(one_line(tls_conn_error(p.srv)));
	printf("# garbage: %s\n", tls_conn_error(p.srv));
	/* The peer going away mid-handshake is not EAGAIN either. */
	tls_conn_free(&p.srv);
	p.srv = tls_conn_new(sctx, p.sv[0]);
	close(p.sv[1]);
	test_assert(tls_conn_read(p.srv, buf, sizeof(buf)) == -1 &&
	    errno != EAGAIN);
	test_assert(one_line(tls_conn_error(p.srv)));
	tls_conn_free(&p.srv);
	close(p.sv[0]);

	tls_client_ctx_free(&cctx);
	tls_client_ctx_free(&lax);
	tls_server_ctx_free(&sctx);
	test_end();
}

static void
cleanup(void)
{
	char cmd[256];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)system(cmd);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_self_signed();
	test_bad_files();
	test_conversation();
	test_policy();
	test_verify();
	cleanup();
	return test_done();
}
