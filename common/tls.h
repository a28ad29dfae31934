/*
 * tls: OpenSSL for sessions driven by the non-blocking ioloop.  Server and
 * client contexts (TLS 1.2 and 1.3 only, ECDHE, no compression, session
 * resumption on the server), one connection type for both sides whose
 * handshake, read, write and shutdown never block: when OpenSSL needs the
 * socket they fail with errno EAGAIN and tls_conn_want() says whether to
 * wait for IOLOOP_READ or IOLOOP_WRITE (a read may need a write and the
 * other way round, e.g. during a TLS 1.3 key update).  Also makes the
 * self-signed certificate used when none is configured (DESIGN §8).
 *
 * Does not own the fd (never closes it), does not touch the ioloop, does
 * not log: errors come back as one clipped line for the caller to log.
 * Returned error strings are borrowed and valid until the next tls_ call.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ioloop.h"

/* TLS 1.2 suites; TLS 1.3 suites stay OpenSSL's defaults (all AEAD). */
#define TLS_DEFAULT_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS"
#define TLS_DEFAULT_GROUPS	"X25519:P-256:P-384"
/* Self-signed certificates are valid this long (DESIGN §8). */
#define TLS_SELF_SIGNED_DAYS	3650

struct tls_server_ctx;
struct tls_client_ctx;
struct tls_conn;

enum tls_key_type {
	TLS_KEY_RSA2048,
	TLS_KEY_EC_P256
};

/*
 * Server context from a PEM certificate chain file and a PEM key file.
 * Returns NULL and sets *error_r (one line naming the file and the
 * reason) when a file is missing, unreadable, not PEM, or the key does not
 * match the certificate.  Free with tls_server_ctx_free().
 *
 * Two certificates of different key types (RSA and ECDSA) are served at
 * once, OpenSSL picking per client from the signature algorithms it
 * offers:
 *  - when cert_file is the configured smtpd_tls_cert_file or ssl_cert,
 *    the second pair configured with it (tls_server_alt_pair()) is loaded
 *    too; an error names its parameter;
 *  - when cert_file and key_file are one file holding several keys, each
 *    key with its certificate chain (either order) is one pair (posternd
 *    passes smtpd all its pairs this way).
 * A second pair of the same key type as the first is an error.
 */
struct tls_server_ctx *tls_server_ctx_new(const char *cert_file,
	    const char *key_file, const char **error_r);
/*
 * The second pair configured with the primary certificate file cert_file:
 * smtpd_tls_eccert_file/smtpd_tls_eckey_file with smtpd_tls_cert_file
 * (Postfix), ssl_alt_cert/ssl_alt_key with ssl_cert (Dovecot); the other
 * family's pair when cert_file's own has none and the other family's
 * primary is unset or the same file.  *param_r is the certificate
 * parameter's name, *key_r is *cert_r when no key file is set.  Strings
 * borrowed from cfg.  false when there is none.
 */
bool	tls_server_alt_pair(const char *cert_file, const char **param_r,
	    const char **cert_r, const char **key_r);
/*
 * Start check of the second-pair settings: a key without a certificate,
 * or a second certificate with no first one configured.  0, or -1 with
 * *error_r naming the parameter.
 */
int	tls_server_alt_check(const char **error_r);
/*
 * Add a second certificate and key of another key type (RSA next to
 * ECDSA); OpenSSL picks per client.  0, or -1 with *error_r.
 */
int	tls_server_ctx_add_cert(struct tls_server_ctx *ctx,
	    const char *cert_file, const char *key_file, const char **error_r);
/* TLS 1.2 cipher list in OpenSSL syntax (ssl_cipher_list).  0 or -1. */
int	tls_server_ctx_set_ciphers(struct tls_server_ctx *ctx,
	    const char *ciphers, const char **error_r);
/*
 * Protocol range (ssl_min_protocol): "TLSv1.2" or "TLSv1.3", NULL leaves
 * that end unchanged.  Nothing older than TLS 1.2 is accepted.  0 or -1.
 */
int	tls_server_ctx_set_protocols(struct tls_server_ctx *ctx,
	    const char *min, const char *max, const char **error_r);
/*
 * The admin's policy for a server context, from ssl_min_protocol and
 * ssl_cipher_list: min_protocol "TLSv1.2" or "TLSv1.3" ("" keeps TLS
 * 1.2), ciphers an OpenSSL cipher string for TLS 1.2 ("" keeps
 * TLS_DEFAULT_CIPHERS; TLS 1.3 suites are not affected).  Every server
 * (smtpd, the login processes) applies it to each context it makes, and
 * posternd checks it at start.  0, or -1 with *error_r naming the
 * setting.
 */
int	tls_server_ctx_set_policy(struct tls_server_ctx *ctx,
	    const char *min_protocol, const char *ciphers,
	    const char **error_r);
void	tls_server_ctx_free(struct tls_server_ctx **ctxp);

/*
 * Client context for outbound SMTP.  verify: fail the handshake unless the
 * peer's chain is trusted and names the host given to tls_client_conn_new()
 * (smtp_tls_security_level = verify).  Without verify the handshake
 * succeeds anyway and tls_conn_verified() tells the result (may/encrypt).
 * cafile: PEM trust anchors (smtp_tls_CAfile); NULL uses the system store.
 */
struct tls_client_ctx *tls_client_ctx_new(bool verify, const char *cafile,
	    const char **error_r);
/*
 * The same with a hashed CA directory too (smtp_tls_CApath, made with
 * openssl rehash); cafile and capath NULL or "" each; both unset uses the
 * system store.
 */
struct tls_client_ctx *tls_client_ctx_new_ca(bool verify, const char *cafile,
	    const char *capath, const char **error_r);
int	tls_client_ctx_set_protocols(struct tls_client_ctx *ctx,
	    const char *min, const char *max, const char **error_r);
void	tls_client_ctx_free(struct tls_client_ctx **ctxp);

/*
 * A connection over the connected non-blocking socket fd, which stays the
 * caller's.  The context must outlive the connection.  Plaintext the
 * caller read before the handshake is none of this module's business: the
 * caller must discard it (STARTTLS injection, RFC 3207 §4.2).
 */
struct tls_conn *tls_conn_new(struct tls_server_ctx *ctx, int fd);
/*
 * servername: sent as SNI (unless it is an IP literal) and checked against
 * the certificate; NULL sends no SNI and checks no name.
 */
struct tls_conn *tls_client_conn_new(struct tls_client_ctx *ctx, int fd,
	    const char *servername);
/* Frees OpenSSL state; does not close the fd.  Sets *connp to NULL. */
void	tls_conn_free(struct tls_conn **connp);

/*
 * Drive the handshake.  0 when done; -1 with errno EAGAIN when it must wait
 * for tls_conn_want(); -1 with another errno (EPROTO, or the socket's
 * error) when it failed: tls_conn_error() says why.
 */
int	tls_conn_handshake(struct tls_conn *c);
/*
 * Read up to len decrypted bytes.  >0 bytes read; 0 at the end of the
 * stream (close_notify, or EOF without one: mail protocols delimit their
 * own data); -1 with errno EAGAIN (see tls_conn_want()) or another errno
 * on error.  The handshake is done first if it is not yet.
 */
ssize_t	tls_conn_read(struct tls_conn *c, void *buf, size_t len);
/*
 * Write up to len bytes; returns how many were taken (at least one record,
 * maybe fewer than len), or -1 with errno EAGAIN / another errno.  After
 * EAGAIN call again with the same bytes: the buffer may move but len must
 * not shrink (OpenSSL requires it).  len 0 returns 0.
 */
ssize_t	tls_conn_write(struct tls_conn *c, const void *buf, size_t len);
/*
 * Send close_notify.  0 when sent (the peer's is not awaited), -1 with
 * errno EAGAIN (see tls_conn_want()) or another errno.
 */
int	tls_conn_shutdown(struct tls_conn *c);

/*
 * After a call failed with EAGAIN: IOLOOP_READ or IOLOOP_WRITE, the event
 * to wait for before calling the same function again.  0 otherwise.
 */
int	tls_conn_want(const struct tls_conn *c);
/*
 * Nonzero when OpenSSL holds received data that epoll cannot see: call
 * tls_conn_read() again before waiting for IOLOOP_READ.  The value is the
 * number of decrypted bytes ready, or 1 when only raw record data waits.
 */
size_t	tls_conn_pending(const struct tls_conn *c);
bool	tls_conn_is_established(const struct tls_conn *c);

/*
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for log
 * lines and Received headers; "" before the handshake is done.  Borrowed,
 * lives as long as the connection.
 */
const char *tls_conn_info(struct tls_conn *c);
/* "TLSv1.2", "TLSv1.3"; borrowed from OpenSSL. */
const char *tls_conn_version(const struct tls_conn *c);
/* Client side: the peer's certificate was trusted and matched the name. */
bool	tls_conn_verified(const struct tls_conn *c);
/* Why the last call failed: one line, borrowed until the next call on c. */
const char *tls_conn_error(const struct tls_conn *c);

/*
 * Create a self-signed certificate for hostname (CN and SAN dNSName),
 * valid TLS_SELF_SIGNED_DAYS, with a fresh key.  Both files are written
 * through a temporary file and rename(), the key 0600, the certificate
 * 0644, and the directories fsynced.  hostname must be a plain DNS name
 * (letters, digits, '-', '.', '_'; at most 253 bytes).  0, or -1 with
 * *error_r.
 */
int	tls_make_self_signed(const char *cert_path, const char *key_path,
	    const char *hostname, const char **error_r);
int	tls_make_self_signed_type(const char *cert_path, const char *key_path,
	    const char *hostname, enum tls_key_type type,
	    const char **error_r);

#endif
