/*
 * tls: the OpenSSL wrapper behind STARTTLS, implicit TLS and outbound TLS.
 * Each call runs one step of OpenSSL's state machine on a non-blocking
 * socket and maps SSL_get_error() onto errno EAGAIN plus the event to wait
 * for, so sessions drive TLS exactly like a plain socket from ioloop
 * callbacks.  Error texts are taken from OpenSSL's error queue and clipped
 * to one printable line.  This file keeps no global state other than the
 * buffer behind the error_r strings of the context functions.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cfg.h"
#include "fdio.h"
#include "str.h"
#include "tls.h"
#include "xmalloc.h"

#define TLS_ERROR_MAX		256
#define TLS_INFO_MAX		128
#define TLS_HOSTNAME_MAX	253
#define TLS_SESSION_TIMEOUT	300	/* seconds, Postfix's default */
#define TLS_SESSION_ID_CTX	"postern"
/* A combined PEM file bigger than this holds no certificate chain. */
#define TLS_MAX_PEM_FILE	(2 * 1024 * 1024)
/* Certificate pairs one context serves: one per key type. */
#define TLS_MAX_PAIRS		4
/* PEM blocks in one combined file (keys, certificates, others). */
#define TLS_MAX_PEM_BLOCKS	64
/* "path (pair N)" in error texts. */
#define TLS_WHAT_MAX		(PATH_MAX + 32)

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#define SSL_get1_peer_certificate SSL_get_peer_certificate
#endif

struct tls_server_ctx {
	SSL_CTX		*ssl_ctx;
};

struct tls_client_ctx {
	SSL_CTX		*ssl_ctx;
	bool		 verify;
};

struct tls_conn {
	SSL		*ssl;
	int		 want;		/* IOLOOP_READ/WRITE after EAGAIN */
	bool		 established;
	char		 info[TLS_INFO_MAX];
	char		 error[TLS_ERROR_MAX];
};

/* Behind the error_r strings of functions without a connection; one per
 * thread, since the smtp agent's threads set up client sessions at the
 * same time. */
static __thread char tls_errbuf[TLS_ERROR_MAX];

/* Replace anything unprintable so the text stays one log line. */
static void
tls_clip_line(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
	}
}

/*
 * "prefix: reason" with the reason from OpenSSL's error queue (its most
 * specific entry, which OpenSSL queues first) or from errno; drains the
 * queue.  Writes into dst and returns it.
 */
static const char *
tls_error_fmt(char *dst, size_t size, const char *prefix, int saved_errno)
{
	unsigned long e, first;
	const char *data = NULL, *r;
	char reason[160];
	int flags = 0;

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	first = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
#else
	first = ERR_get_error_line_data(NULL, NULL, &data, &flags);
#endif
	if ((flags & ERR_TXT_STRING) == 0 || data == NULL)
		data = "";
	if (first != 0) {
		if (ERR_GET_LIB(first) == ERR_LIB_SYS) {
			str_lcpy(reason, strerror(ERR_GET_REASON(first)),
			    sizeof(reason));
			data = "";
		} else if ((r = ERR_reason_error_string(first)) != NULL) {
			str_lcpy(reason, r, sizeof(reason));
		} else {
			ERR_error_string_n(first, reason, sizeof(reason));
		}
	} else if (saved_errno != 0)
		str_lcpy(reason, strerror(saved_errno), sizeof(reason));
	else
		str_lcpy(reason, "unknown error", sizeof(reason));
	/* Truncation is fine: the text is for a log line. */
	(void)snprintf(dst, size, "%s: %s%s%s%s", prefix, reason,
	    *data != '\0' ? " (" : "", data, *data != '\0' ? ")" : "");
	while ((e = ERR_get_error()) != 0)
		;
	tls_clip_line(dst);
	return dst;
}

static const char *
tls_error(const char *prefix)
{
	return tls_error_fmt(tls_errbuf, sizeof(tls_errbuf), prefix, errno);
}

static const char *
tls_error_text(const char *text)
{
	ERR_clear_error();
	/* Truncation is fine: the text is for a log line. */
	(void)str_lcpy(tls_errbuf, text, sizeof(tls_errbuf));
	tls_clip_line(tls_errbuf);
	return tls_errbuf;
}

/* Options both sides share. */
static int
tls_ctx_common(SSL_CTX *ssl_ctx)
{
	uint64_t opts;

	if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1)
		return -1;
	opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A TCP close without close_notify is EOF, not an error. */
	opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
	SSL_CTX_set_options(ssl_ctx, opts);
	/*
	 * Partial writes so tls_conn_write() behaves like write(2); a moving
	 * buffer because callers retry from a buffer that may be compacted.
	 */
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ssl_ctx, TLS_DEFAULT_CIPHERS) != 1)
		return -1;
	if (SSL_CTX_set1_groups_list(ssl_ctx, TLS_DEFAULT_GROUPS) != 1)
		return -1;
	return 0;
}

/* Check that path can be opened, for an error naming file and errno. */
static int
tls_check_readable(const char *what, const char *path, const char **error_r)
{
	char prefix[PATH_MAX + 64];
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		(void)snprintf(prefix, sizeof(prefix), "%s %s", what, path);
		ERR_clear_error();
		*error_r = tls_error(prefix);
		return -1;
	}
	close(fd);
	return 0;
}

/* An encrypted key never prompts on a terminal: it just fails to load. */
static int
tls_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
tls_ctx_load_pair(SSL_CTX *ssl_ctx, const char *cert_file,
    const char *key_file, const char **error_r)
{
	char prefix[2 * PATH_MAX + 64];
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	X509 *leaf;
	int ret = -1;

	if (tls_check_readable("certificate", cert_file, error_r) == -1 ||
	    tls_check_readable("private key", key_file, error_r) == -1)
		return -1;
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert_file) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load certificate %s", cert_file);
		*error_r = tls_error(prefix);
		return -1;
	}
	/*
	 * The key is checked against this certificate before OpenSSL files
	 * it by its type: with two pairs loaded, a key of the other type
	 * would otherwise land next to the other certificate.
	 */
	leaf = SSL_CTX_get0_certificate(ssl_ctx);
	if ((bio = BIO_new_file(key_file, "r")) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password,
	    NULL)) == NULL) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load private key %s", key_file);
		*error_r = tls_error(prefix);
		goto out;
	}
	if (leaf == NULL || X509_check_private_key(leaf, pkey) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "private key %s does not match certificate %s",
		    key_file, cert_file);
		*error_r = tls_error_text(prefix);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ssl_ctx, pkey) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load private key %s", key_file);
		*error_r = tls_error(prefix);
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return ret;
}

/* Key type of the certificate last loaded into ssl_ctx, or NID_undef. */
static int
tls_ctx_cert_type(SSL_CTX *ssl_ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ssl_ctx);
	EVP_PKEY *pk = x != NULL ? X509_get0_pubkey(x) : NULL;

	return pk != NULL ? EVP_PKEY_base_id(pk) : NID_undef;
}

static const char *
tls_type_name(int type)
{
	switch (type) {
	case EVP_PKEY_RSA:
		return "RSA";
	case EVP_PKEY_RSA_PSS:
		return "RSA-PSS";
	case EVP_PKEY_EC:
		return "ECDSA";
	case EVP_PKEY_ED25519:
		return "Ed25519";
	case EVP_PKEY_ED448:
		return "Ed448";
	}
	return "unknown";
}

/*
 * One pair from PEM text in memory: the first certificate is the leaf,
 * the others its chain, plus the private key.  what names the source in
 * errors.
 */
static int
tls_ctx_load_mem_pair(SSL_CTX *ssl_ctx, const char *pem, size_t len,
    const char *what, const char **error_r)
{
	char prefix[TLS_WHAT_MAX + 64];
	EVP_PKEY *pkey = NULL;
	X509 *leaf = NULL, *x;
	BIO *bio;
	int ret = -1;

	ERR_clear_error();
	/* UNSAFE: len <= TLS_MAX_PEM_FILE + TLS_MAX_PEM_BLOCKS fits an int. */
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		abort();
	if ((leaf = PEM_read_bio_X509_AUX(bio, NULL, tls_no_password,
	    NULL)) == NULL ||
	    SSL_CTX_use_certificate(ssl_ctx, leaf) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load certificate %s", what);
		*error_r = tls_error(prefix);
		goto out;
	}
	if (SSL_CTX_clear_chain_certs(ssl_ctx) != 1)
		abort();
	while ((x = PEM_read_bio_X509(bio, NULL, tls_no_password,
	    NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ssl_ctx, x) != 1) {
			X509_free(x);
			(void)snprintf(prefix, sizeof(prefix),
			    "cannot load certificate chain %s", what);
			*error_r = tls_error(prefix);
			goto out;
		}
	}
	/* The end of the chain reads as "no start line". */
	ERR_clear_error();
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		abort();
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password,
	    NULL)) == NULL) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load private key %s", what);
		*error_r = tls_error(prefix);
		goto out;
	}
	/*
	 * Checked here: OpenSSL would file it next to a certificate of its
	 * own type (see tls_ctx_load_pair()).
	 */
	if (X509_check_private_key(leaf, pkey) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "private key does not match certificate %s", what);
		*error_r = tls_error_text(prefix);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ssl_ctx, pkey) != 1) {
		(void)snprintf(prefix, sizeof(prefix),
		    "cannot load private key %s", what);
		*error_r = tls_error(prefix);
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	X509_free(leaf);
	EVP_PKEY_free(pkey);
	return ret;
}

/* Whole file into a malloc'ed NUL-terminated buffer, at most max bytes. */
static char *
tls_read_file(const char *path, size_t max, size_t *len_r)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || st.st_size < 0 ||
	    !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max)
		goto fail;
	data = xmalloc(max + 1);
	for (;;) {
		ssize_t n = read(fd, data + len, max - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == max)
			goto fail;	/* grew while read: not a PEM file */
	}
	close(fd);
	data[len] = '\0';
	*len_r = len;
	return data;
fail:
	if (data != NULL) {
		explicit_bzero(data, max + 1);
		free(data);
	}
	close(fd);
	return NULL;
}

struct tls_pem_block {
	size_t	 start, end;	/* offsets: "-----BEGIN", past END */
	bool	 key, cert;
};

/* The PEM blocks of text, at most max of them; returns how many. */
static size_t
tls_pem_blocks(const char *text, struct tls_pem_block *blk, size_t max)
{
	const char *p = text, *label, *le, *end;
	char endline[96];
	size_t n = 0, llen;

	while (n < max && (p = strstr(p, "-----BEGIN ")) != NULL) {
		label = p + 11;
		if ((le = strstr(label, "-----")) == NULL)
			break;
		llen = le - label;
		if (llen == 0 || llen > 64 || memchr(label, '\n', llen)) {
			p = label;
			continue;
		}
		(void)snprintf(endline, sizeof(endline), "-----END %.*s-----",
		    (int)llen, label);
		if ((end = strstr(le + 5, endline)) == NULL)
			break;
		blk[n].start = p - text;
		blk[n].end = (end - text) + strlen(endline);
		blk[n].key = llen >= 11 &&
		    memcmp(label + llen - 11, "PRIVATE KEY", 11) == 0;
		blk[n].cert = llen >= 11 &&
		    memcmp(label + llen - 11, "CERTIFICATE", 11) == 0;
		n++;
		p = text + blk[n - 1].end;
	}
	return n;
}

/*
 * A file holding several pairs, each a private key and its certificate
 * chain in either order (posternd hands smtpd all its pairs in one
 * memory file, master/master_tls.c).  A key after a key, or a certificate
 * after a complete pair, starts the next pair.  0, 1 when the file holds
 * fewer than two keys (the caller loads it as one pair), -1 on error.
 */
static int
tls_ctx_load_multi(SSL_CTX *ssl_ctx, const char *path, const char **error_r)
{
	struct tls_pem_block blk[TLS_MAX_PEM_BLOCKS];
	int types[TLS_MAX_PAIRS];
	char what[TLS_WHAT_MAX], *text, *pem = NULL;
	size_t len, n, i, keys = 0, npairs = 0;
	int ret = -1;

	if ((text = tls_read_file(path, TLS_MAX_PEM_FILE, &len)) == NULL)
		return 1;	/* the single-pair loader reports why */
	n = tls_pem_blocks(text, blk, TLS_MAX_PEM_BLOCKS);
	for (i = 0; i < n; i++)
		keys += blk[i].key;
	if (keys < 2) {
		ret = 1;
		goto out;
	}
	/*
	 * UNSAFE: a pair's blocks are disjoint parts of text, each copied
	 * with one newline: at most len + n bytes, n <= TLS_MAX_PEM_BLOCKS.
	 */
	pem = xmalloc(len + TLS_MAX_PEM_BLOCKS);
	for (i = 0; i < n;) {
		size_t certs = 0, plen = 0, first = i, k;
		bool have_key = false;
		int t;

		/* Gather one pair: its certificates first, then its key. */
		for (; i < n; i++) {
			if ((blk[i].key && have_key) ||
			    (blk[i].cert && have_key && certs > 0))
				break;
			have_key |= blk[i].key;
			certs += blk[i].cert;
		}
		for (k = first; k < i; k++) {
			if (!blk[k].cert)
				continue;
			memcpy(pem + plen, text + blk[k].start,
			    blk[k].end - blk[k].start);
			plen += blk[k].end - blk[k].start;
			pem[plen++] = '\n';
		}
		for (k = first; k < i; k++) {
			if (!blk[k].key)
				continue;
			memcpy(pem + plen, text + blk[k].start,
			    blk[k].end - blk[k].start);
			plen += blk[k].end - blk[k].start;
			pem[plen++] = '\n';
		}
		(void)snprintf(what, sizeof(what), "%s (pair %zu)", path,
		    npairs + 1);
		if (npairs == TLS_MAX_PAIRS) {
			(void)snprintf(what, sizeof(what),
			    "%s: more than %d certificates", path,
			    TLS_MAX_PAIRS);
			*error_r = tls_error_text(what);
			goto out;
		}
		if (tls_ctx_load_mem_pair(ssl_ctx, pem, plen, what,
		    error_r) == -1)
			goto out;
		t = tls_ctx_cert_type(ssl_ctx);
		for (k = 0; k < npairs; k++) {
			if (types[k] == t) {
				char text2[PATH_MAX + 96];

				(void)snprintf(text2, sizeof(text2),
				    "%s: two %s certificates (one per key "
				    "type)", path, tls_type_name(t));
				*error_r = tls_error_text(text2);
				goto out;
			}
		}
		types[npairs++] = t;
	}
	ret = 0;
out:
	if (pem != NULL) {
		explicit_bzero(pem, len + TLS_MAX_PEM_BLOCKS);
		free(pem);
	}
	explicit_bzero(text, len);
	free(text);
	return ret;
}

/*
 * The primary pair: a certificate chain file and a key file, or one file
 * holding both, or one file holding several pairs of different key types.
 */
static int
tls_ctx_load_file(SSL_CTX *ssl_ctx, const char *cert_file,
    const char *key_file, const char **error_r)
{
	int r;

	if (strcmp(cert_file, key_file) == 0 &&
	    (r = tls_ctx_load_multi(ssl_ctx, cert_file, error_r)) != 1)
		return r;
	return tls_ctx_load_pair(ssl_ctx, cert_file, key_file, error_r);
}

/*
 * The second pair configured with cert_file (tls_server_alt_pair()), of
 * another key type than the first: OpenSSL keeps one certificate per key
 * type and picks per client from the signature algorithms it offers.
 */
static int
tls_ctx_load_alt(SSL_CTX *ssl_ctx, const char *cert_file,
    const char **error_r)
{
	const char *param, *alt_cert, *alt_key, *error;
	char text[PATH_MAX + 160];
	int first, second;

	if (!tls_server_alt_pair(cert_file, &param, &alt_cert, &alt_key))
		return 0;
	first = tls_ctx_cert_type(ssl_ctx);
	if (tls_ctx_load_pair(ssl_ctx, alt_cert, alt_key, &error) == -1) {
		(void)snprintf(text, sizeof(text), "%s: %s", param, error);
		*error_r = tls_error_text(text);
		return -1;
	}
	second = tls_ctx_cert_type(ssl_ctx);
	if (second == first) {
		(void)snprintf(text, sizeof(text), "%s %s has an %s key like "
		    "%s; the second certificate needs another key type "
		    "(ECDSA next to RSA)", param, alt_cert,
		    tls_type_name(second), cert_file);
		*error_r = tls_error_text(text);
		return -1;
	}
	return 0;
}

struct tls_server_ctx *
tls_server_ctx_new(const char *cert_file, const char *key_file,
    const char **error_r)
{
	struct tls_server_ctx *ctx;
	SSL_CTX *ssl_ctx;

	ERR_clear_error();
	if ((ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		*error_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ssl_ctx) == -1) {
		*error_r = tls_error("TLS defaults");
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	/* The server's order wins among the client's offers. */
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* DHE only for TLS 1.2 clients without ECDHE: well-known groups. */
	SSL_CTX_set_dh_auto(ssl_ctx, 1);
	/*
	 * Resumption: an in-process session cache plus tickets (on by
	 * default).  Each login process has its own cache and ticket keys.
	 */
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_timeout(ssl_ctx, TLS_SESSION_TIMEOUT);
	(void)SSL_CTX_set_session_id_context(ssl_ctx,
	    (const unsigned char *)TLS_SESSION_ID_CTX,
	    sizeof(TLS_SESSION_ID_CTX) - 1);
	if (tls_ctx_load_file(ssl_ctx, cert_file, key_file, error_r) == -1 ||
	    tls_ctx_load_alt(ssl_ctx, cert_file, error_r) == -1) {
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = ssl_ctx;
	return ctx;
}

int
tls_server_ctx_add_cert(struct tls_server_ctx *ctx, const char *cert_file,
    const char *key_file, const char **error_r)
{
	return tls_ctx_load_pair(ctx->ssl_ctx, cert_file, key_file, error_r);
}

/*
 * The second pair that goes with the primary certificate cert_file: Postfix
 * names it smtpd_tls_eccert_file/eckey_file next to smtpd_tls_cert_file,
 * Dovecot ssl_alt_cert/ssl_alt_key next to ssl_cert.  As the services fall
 * back from one family of names to the other for the primary pair, the
 * other family's second pair applies too when its own primary is unset or
 * the same file.
 */
bool
tls_server_alt_pair(const char *cert_file, const char **param_r,
    const char **cert_r, const char **key_r)
{
	static const struct {
		const char *cert, *alt_cert, *alt_key;
	} fam[2] = {
		{ "smtpd_tls_cert_file", "smtpd_tls_eccert_file",
		    "smtpd_tls_eckey_file" },
		{ "ssl_cert", "ssl_alt_cert", "ssl_alt_key" },
	};
	int i, j;

	if (cert_file == NULL || *cert_file == '\0')
		return false;
	for (i = 0; i < 2; i++) {
		if (strcmp(cfg_get(fam[i].cert), cert_file) != 0)
			continue;
		for (j = 0; j < 2; j++) {
			/* Its own family first, then the other one. */
			int k = j == 0 ? i : 1 - i;
			const char *other = cfg_get(fam[k].cert);

			if (*cfg_get(fam[k].alt_cert) == '\0')
				continue;
			if (k != i && *other != '\0' &&
			    strcmp(other, cert_file) != 0)
				continue;
			*param_r = fam[k].alt_cert;
			*cert_r = cfg_get(fam[k].alt_cert);
			*key_r = cfg_get(fam[k].alt_key);
			/* Postfix: the key may be in the certificate file. */
			if (**key_r == '\0')
				*key_r = *cert_r;
			return true;
		}
		return false;
	}
	return false;
}

int
tls_server_alt_check(const char **error_r)
{
	static const char *const fam[2][3] = {
		{ "smtpd_tls_cert_file", "smtpd_tls_eccert_file",
		    "smtpd_tls_eckey_file" },
		{ "ssl_cert", "ssl_alt_cert", "ssl_alt_key" },
	};
	char text[160];
	int i;

	for (i = 0; i < 2; i++) {
		if (*cfg_get(fam[i][2]) != '\0' &&
		    *cfg_get(fam[i][1]) == '\0') {
			(void)snprintf(text, sizeof(text),
			    "%s is set but %s is not", fam[i][2], fam[i][1]);
			*error_r = tls_error_text(text);
			return -1;
		}
		/*
		 * The second pair comes in addition to a configured one;
		 * alone it would be dropped next to the self-signed pair.
		 */
		if (*cfg_get(fam[i][1]) != '\0' &&
		    *cfg_get(fam[0][0]) == '\0' &&
		    *cfg_get(fam[1][0]) == '\0') {
			(void)snprintf(text, sizeof(text),
			    "%s is set but neither smtpd_tls_cert_file nor "
			    "ssl_cert is: the second certificate comes in "
			    "addition to a first one", fam[i][1]);
			*error_r = tls_error_text(text);
			return -1;
		}
	}
	return 0;
}

int
tls_server_ctx_set_ciphers(struct tls_server_ctx *ctx, const char *ciphers,
    const char **error_r)
{
	char prefix[128];

	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx->ssl_ctx, ciphers) != 1) {
		(void)snprintf(prefix, sizeof(prefix), "cipher list %.64s",
		    ciphers);
		*error_r = tls_error(prefix);
		return -1;
	}
	return 0;
}

static int
tls_ctx_set_protocols(SSL_CTX *ssl_ctx, const char *min, const char *max,
    const char **error_r)
{
	const char *names[2] = { min, max };
	int vers[2] = { 0, 0 }, i;

	for (i = 0; i < 2; i++) {
		if (names[i] == NULL)
			continue;
		if (strcmp(names[i], "TLSv1.2") == 0)
			vers[i] = TLS1_2_VERSION;
		else if (strcmp(names[i], "TLSv1.3") == 0)
			vers[i] = TLS1_3_VERSION;
		else {
			*error_r = tls_error_text("unsupported TLS protocol "
			    "version (TLSv1.2 or TLSv1.3)");
			return -1;
		}
	}
	if ((vers[0] != 0 &&
	    SSL_CTX_set_min_proto_version(ssl_ctx, vers[0]) != 1) ||
	    (vers[1] != 0 &&
	    SSL_CTX_set_max_proto_version(ssl_ctx, vers[1]) != 1)) {
		*error_r = tls_error("TLS protocol range");
		return -1;
	}
	return 0;
}

int
tls_server_ctx_set_protocols(struct tls_server_ctx *ctx, const char *min,
    const char *max, const char **error_r)
{
	return tls_ctx_set_protocols(ctx->ssl_ctx, min, max, error_r);
}

int
tls_server_ctx_set_policy(struct tls_server_ctx *ctx,
    const char *min_protocol, const char *ciphers, const char **error_r)
{
	char text[160];

	if (min_protocol != NULL && *min_protocol != '\0' &&
	    strcmp(min_protocol, "TLSv1.2") != 0 &&
	    strcmp(min_protocol, "TLSv1.3") != 0) {
		/* Nothing older than TLS 1.2 is spoken (DESIGN §8). */
		(void)snprintf(text, sizeof(text), "ssl_min_protocol %.32s: "
		    "not supported (TLSv1.2 or TLSv1.3)", min_protocol);
		*error_r = tls_error_text(text);
		return -1;
	}
	if (min_protocol != NULL && *min_protocol != '\0' &&
	    tls_server_ctx_set_protocols(ctx, min_protocol, NULL,
	    error_r) < 0)
		return -1;
	if (ciphers != NULL && *ciphers != '\0') {
		ERR_clear_error();
		if (SSL_CTX_set_cipher_list(ctx->ssl_ctx, ciphers) != 1) {
			(void)snprintf(text, sizeof(text),
			    "ssl_cipher_list %.64s", ciphers);
			*error_r = tls_error(text);
			return -1;
		}
	}
	return 0;
}

int
tls_client_ctx_set_protocols(struct tls_client_ctx *ctx, const char *min,
    const char *max, const char **error_r)
{
	return tls_ctx_set_protocols(ctx->ssl_ctx, min, max, error_r);
}

void
tls_server_ctx_free(struct tls_server_ctx **ctxp)
{
	struct tls_server_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
	*ctxp = NULL;
}

struct tls_client_ctx *
tls_client_ctx_new(bool verify, const char *cafile, const char **error_r)
{
	return tls_client_ctx_new_ca(verify, cafile, NULL, error_r);
}

struct tls_client_ctx *
tls_client_ctx_new_ca(bool verify, const char *cafile, const char *capath,
    const char **error_r)
{
	struct tls_client_ctx *ctx;
	SSL_CTX *ssl_ctx;
	char prefix[PATH_MAX + 64];
	int ok;

	if (cafile != NULL && *cafile == '\0')
		cafile = NULL;
	if (capath != NULL && *capath == '\0')
		capath = NULL;

	ERR_clear_error();
	if ((ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ssl_ctx) == -1) {
		*error_r = tls_error("TLS defaults");
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	if (cafile != NULL || capath != NULL) {
		if ((cafile != NULL && tls_check_readable("CA file", cafile,
		    error_r) == -1) ||
		    (capath != NULL && tls_check_readable("CA directory",
		    capath, error_r) == -1)) {
			SSL_CTX_free(ssl_ctx);
			return NULL;
		}
		/* A hashed directory (c_rehash) is read as needed. */
		ok = SSL_CTX_load_verify_locations(ssl_ctx, cafile, capath);
	} else
		ok = SSL_CTX_set_default_verify_paths(ssl_ctx);
	if (ok != 1) {
		(void)snprintf(prefix, sizeof(prefix), "cannot load CA %s %s",
		    cafile != NULL ? "file" : "directory",
		    cafile != NULL ? cafile : capath != NULL ? capath :
		    "(system default)");
		*error_r = tls_error(prefix);
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	/*
	 * Without verify the chain is still checked and the result kept for
	 * tls_conn_verified(); it just does not stop the handshake.
	 */
	SSL_CTX_set_verify(ssl_ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = ssl_ctx;
	ctx->verify = verify;
	return ctx;
}

void
tls_client_ctx_free(struct tls_client_ctx **ctxp)
{
	struct tls_client_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
	*ctxp = NULL;
}

static struct tls_conn *
tls_conn_alloc(SSL_CTX *ssl_ctx, int fd)
{
	struct tls_conn *c;

	ERR_clear_error();
	c = xcalloc(1, sizeof(*c));
	/* These fail only on ENOMEM: abort like xmalloc. */
	if ((c->ssl = SSL_new(ssl_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, fd) != 1)
		abort();
	return c;
}

struct tls_conn *
tls_conn_new(struct tls_server_ctx *ctx, int fd)
{
	struct tls_conn *c;

	c = tls_conn_alloc(ctx->ssl_ctx, fd);
	SSL_set_accept_state(c->ssl);
	return c;
}

static bool
tls_is_ip_literal(const char *name)
{
	unsigned char tmp[16];

	return strchr(name, ':') != NULL ||
	    inet_pton(AF_INET, name, tmp) == 1;
}

struct tls_conn *
tls_client_conn_new(struct tls_client_ctx *ctx, int fd,
    const char *servername)
{
	struct tls_conn *c;

	c = tls_conn_alloc(ctx->ssl_ctx, fd);
	SSL_set_connect_state(c->ssl);
	if (servername != NULL) {
		/* RFC 6066 §3: no SNI for IP literals. */
		if (!tls_is_ip_literal(servername))
			(void)SSL_set_tlsext_host_name(c->ssl, servername);
		/* No wildcard beyond the leftmost label (RFC 6125 §6.4.3). */
		SSL_set_hostflags(c->ssl,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, servername) != 1)
			abort();
	}
	return c;
}

void
tls_conn_free(struct tls_conn **connp)
{
	struct tls_conn *c = *connp;

	if (c == NULL)
		return;
	SSL_free(c->ssl);
	free(c);
	*connp = NULL;
}

/*
 * Map the result ret of an SSL call named op onto errno: EAGAIN with
 * c->want set, 0-byte EOF (returned as 0 with errno 0), or an error with
 * c->error set.  Returns -1 for EAGAIN/error, 0 for EOF.
 */
static int
tls_conn_fail(struct tls_conn *c, const char *op, int ret)
{
	int saved_errno = errno, err;
	long verr;
	size_t len;

	err = SSL_get_error(c->ssl, ret);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		c->want = IOLOOP_READ;
		ERR_clear_error();
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->want = IOLOOP_WRITE;
		ERR_clear_error();
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		errno = 0;
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			if (saved_errno == 0) {
				/* EOF that OpenSSL did not treat as one. */
				(void)snprintf(c->error, sizeof(c->error),
				    "%s: connection closed by peer", op);
				errno = ECONNRESET;
				return -1;
			}
			tls_error_fmt(c->error, sizeof(c->error), op,
			    saved_errno);
			errno = saved_errno;
			return -1;
		}
		/* FALLTHROUGH */
	default:
		tls_error_fmt(c->error, sizeof(c->error), op, 0);
		if (!SSL_is_server(c->ssl) &&
		    (verr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
			len = strlen(c->error);
			(void)snprintf(c->error + len, sizeof(c->error) - len,
			    " (%s)", X509_verify_cert_error_string(verr));
			tls_clip_line(c->error);
		}
		errno = EPROTO;
		return -1;
	}
}

int
tls_conn_handshake(struct tls_conn *c)
{
	int ret;

	c->want = 0;
	if (c->established)
		return 0;
	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_do_handshake(c->ssl)) == 1) {
		c->established = true;
		return 0;
	}
	if (tls_conn_fail(c, SSL_is_server(c->ssl) ? "SSL_accept" :
	    "SSL_connect", ret) == 0) {
		/* close_notify in the middle of a handshake. */
		(void)snprintf(c->error, sizeof(c->error),
		    "handshake: connection closed by peer");
		errno = ECONNRESET;
	}
	return -1;
}

ssize_t
tls_conn_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t n;

	c->want = 0;
	if (!c->established && tls_conn_handshake(c) == -1)
		return -1;
	if (len == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(c->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return tls_conn_fail(c, "SSL_read", 0);
}

ssize_t
tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
	size_t n;

	c->want = 0;
	if (!c->established && tls_conn_handshake(c) == -1)
		return -1;
	if (len == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	if (SSL_write_ex(c->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	if (tls_conn_fail(c, "SSL_write", 0) == 0) {
		(void)snprintf(c->error, sizeof(c->error),
		    "SSL_write: connection closed by peer");
		errno = EPIPE;
	}
	return -1;
}

int
tls_conn_shutdown(struct tls_conn *c)
{
	int ret;

	c->want = 0;
	/* Nothing to close before the handshake is done. */
	if (!c->established || SSL_in_init(c->ssl))
		return 0;
	ERR_clear_error();
	errno = 0;
	/* 0: our close_notify is out, the peer's not awaited. */
	if ((ret = SSL_shutdown(c->ssl)) >= 0)
		return 0;
	if (tls_conn_fail(c, "SSL_shutdown", ret) == 0)
		return 0;
	return -1;
}

int
tls_conn_want(const struct tls_conn *c)
{
	return c->want;
}

size_t
tls_conn_pending(const struct tls_conn *c)
{
	int n;

	if ((n = SSL_pending(c->ssl)) > 0)
		return (size_t)n;
	return SSL_has_pending(c->ssl) ? 1 : 0;
}

bool
tls_conn_is_established(const struct tls_conn *c)
{
	return c->established;
}

const char *
tls_conn_info(struct tls_conn *c)
{
	const SSL_CIPHER *cipher;
	int alg_bits, bits;

	if (!c->established)
		return "";
	if (c->info[0] == '\0') {
		cipher = SSL_get_current_cipher(c->ssl);
		bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
		(void)snprintf(c->info, sizeof(c->info),
		    "%s with cipher %s (%d/%d bits)", SSL_get_version(c->ssl),
		    SSL_CIPHER_get_name(cipher), bits, alg_bits);
	}
	return c->info;
}

const char *
tls_conn_version(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

bool
tls_conn_verified(const struct tls_conn *c)
{
	X509 *peer;

	if (!c->established)
		return false;
	if ((peer = SSL_get1_peer_certificate(c->ssl)) == NULL)
		return false;
	X509_free(peer);
	return SSL_get_verify_result(c->ssl) == X509_V_OK;
}

const char *
tls_conn_error(const struct tls_conn *c)
{
	return c->error[0] != '\0' ? c->error : "no error";
}

/* ---- self-signed certificate ---- */

static bool
tls_hostname_ok(const char *name)
{
	size_t len = strlen(name), i;
	unsigned char ch;

	if (len == 0 || len > TLS_HOSTNAME_MAX || name[0] == '.' ||
	    name[0] == '-')
		return false;
	for (i = 0; i < len; i++) {
		ch = (unsigned char)name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_'))
			return false;
	}
	return true;
}

static EVP_PKEY *
tls_keygen(enum tls_key_type type)
{
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pkey = NULL;
	int ok;

	pctx = EVP_PKEY_CTX_new_id(type == TLS_KEY_RSA2048 ? EVP_PKEY_RSA :
	    EVP_PKEY_EC, NULL);
	if (pctx == NULL)
		return NULL;
	ok = EVP_PKEY_keygen_init(pctx) == 1;
	if (ok && type == TLS_KEY_RSA2048)
		ok = EVP_PKEY_CTX_set_rsa_keygen_bits(pctx, 2048) == 1;
	else if (ok) {
		ok = EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx,
		    NID_X9_62_prime256v1) == 1 &&
		    EVP_PKEY_CTX_set_ec_param_enc(pctx,
		    OPENSSL_EC_NAMED_CURVE) == 1;
	}
	if (ok && EVP_PKEY_keygen(pctx, &pkey) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

static int
tls_x509_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static X509 *
tls_make_x509(EVP_PKEY *pkey, const char *hostname)
{
	X509 *x;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	char san[TLS_HOSTNAME_MAX + 8];
	int ok;

	if ((x = X509_new()) == NULL)
		return NULL;
	/* A positive random 64-bit serial (RFC 5280 §4.1.2.2). */
	ok = X509_set_version(x, 2) == 1 && (bn = BN_new()) != NULL &&
	    BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
	    X509_time_adj_ex(X509_getm_notAfter(x), TLS_SELF_SIGNED_DAYS, 0,
	    NULL) != NULL && X509_set_pubkey(x, pkey) == 1;
	/* CN is at most 64 bytes (RFC 5280 ub-common-name); SAN counts. */
	name = X509_get_subject_name(x);
	if (ok && strlen(hostname) <= 64) {
		ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		    (const unsigned char *)hostname, -1, -1, 0) == 1;
	}
	ok = ok && X509_set_issuer_name(x, name) == 1;
	/* hostname holds no ',' or ':' (tls_hostname_ok), so no injection. */
	ok = ok && snprintf(san, sizeof(san), "DNS:%s", hostname) <
	    (int)sizeof(san);
	ok = ok && tls_x509_add_ext(x, NID_basic_constraints,
	    "critical,CA:FALSE") == 0 &&
	    tls_x509_add_ext(x, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment") == 0 &&
	    tls_x509_add_ext(x, NID_ext_key_usage, "serverAuth") == 0 &&
	    tls_x509_add_ext(x, NID_subject_key_identifier, "hash") == 0 &&
	    tls_x509_add_ext(x, NID_subject_alt_name, san) == 0;
	ok = ok && X509_sign(x, pkey, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The directory part of path, for fsync; "." when there is none. */
static void
tls_dirname(const char *path, char *dst, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL) {
		str_lcpy(dst, ".", size);
		return;
	}
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= size)
		len = size - 1;
	memcpy(dst, path, len);
	dst[len] = '\0';
}

/* Write the PEM in mem to path through a temporary file and rename(). */
static int
tls_write_atomic(const char *path, BIO *mem, mode_t mode,
    const char **error_r)
{
	char tmp[PATH_MAX], dir[PATH_MAX], prefix[PATH_MAX + 64];
	char *data;
	long len;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >=
	    (int)sizeof(tmp)) {
		*error_r = tls_error_text("certificate path too long");
		return -1;
	}
	len = BIO_get_mem_data(mem, &data);
	/* mkstemp creates the file 0600, so the key is never readable. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		(void)snprintf(prefix, sizeof(prefix), "mkstemp(%s)", tmp);
		goto fail;
	}
	if (fchmod(fd, mode) == -1 ||
	    fdio_write_all(fd, data, (size_t)len) == -1 || fsync(fd) == -1) {
		(void)snprintf(prefix, sizeof(prefix), "write(%s)", tmp);
		goto fail_unlink;
	}
	if (close(fd) == -1) {
		fd = -1;
		(void)snprintf(prefix, sizeof(prefix), "close(%s)", tmp);
		goto fail_unlink;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		(void)snprintf(prefix, sizeof(prefix), "rename(%s, %s)", tmp,
		    path);
		goto fail_unlink;
	}
	tls_dirname(path, dir, sizeof(dir));
	if (fdio_fsync_dir(dir) == -1) {
		(void)snprintf(prefix, sizeof(prefix), "fsync(%s)", dir);
		goto fail;
	}
	return 0;

fail_unlink: {
		int saved_errno = errno;

		if (fd != -1)
			close(fd);
		(void)unlink(tmp);
		errno = saved_errno;
	}
fail:
	ERR_clear_error();
	*error_r = tls_error(prefix);
	return -1;
}

int
tls_make_self_signed_type(const char *cert_path, const char *key_path,
    const char *hostname, enum tls_key_type type, const char **error_r)
{
	EVP_PKEY *pkey;
	X509 *x;
	BIO *kmem = NULL, *cmem = NULL;
	int ret = -1;

	if (!tls_hostname_ok(hostname)) {
		*error_r = tls_error_text(
		    "self-signed certificate: invalid hostname");
		return -1;
	}
	ERR_clear_error();
	if ((pkey = tls_keygen(type)) == NULL) {
		*error_r = tls_error("key generation");
		return -1;
	}
	if ((x = tls_make_x509(pkey, hostname)) == NULL) {
		*error_r = tls_error("certificate creation");
		EVP_PKEY_free(pkey);
		return -1;
	}
	if ((kmem = BIO_new(BIO_s_mem())) == NULL ||
	    (cmem = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(kmem, pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || PEM_write_bio_X509(cmem, x) != 1) {
		*error_r = tls_error("PEM encoding");
		goto out;
	}
	/* The key first: a certificate without its key is useless. */
	if (tls_write_atomic(key_path, kmem, 0600, error_r) == -1 ||
	    tls_write_atomic(cert_path, cmem, 0644, error_r) == -1)
		goto out;
	ret = 0;
out:
	BIO_free(kmem);	/* BUF_MEM_free wipes the key's PEM */
	BIO_free(cmem);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}

int
tls_make_self_signed(const char *cert_path, const char *key_path,
    const char *hostname, const char **error_r)
{
	/* RSA: every client and MTA out there can use it. */
	return tls_make_self_signed_type(cert_path, key_path, hostname,
	    TLS_KEY_RSA2048, error_r);
}
