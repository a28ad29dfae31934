/*
 * smtp: the outbound SMTP delivery agent (DESIGN §2, §4; issue 8).
 *
 * qmgr connects to $queue_directory/private/smtp and sends one request at
 * a time per connection (doc/internals.md "Delivery: qmgr -> smtp"):
 *
 *   SEND <queue-path> <nexthop> <rcpt-indexes> <flags>
 *
 * The agent reads the envelope and the message from the queue file,
 * finds the servers of the next hop (MX records in preference order, or
 * the A/AAAA records of a bracketed host), talks SMTP to them (EHLO,
 * STARTTLS per $smtp_tls_security_level, AUTH with a password from
 * $smtp_sasl_password_maps, MAIL/RCPT/DATA or BDAT, PIPELINING) and
 * answers one "RCPT <index> <status> <dsn> <relay> <text>" line per
 * recipient, then "DONE <conn-seconds> <xfer-seconds>".  It never writes
 * the queue file: recording results is qmgr's job.
 *
 * Every qmgr connection is served by its own thread with blocking I/O
 * bounded by poll() timeouts (the smtp_*_timeout settings).  Idle
 * sessions to a next hop are kept for $smtp_connection_cache_time_limit
 * and reused by the next request for the same next hop.
 *
 * Files: smtp.c (service, requests, routing over the server list),
 * smtp_proto.c (the SMTP dialogue of one session), smtp_conn.c (sockets,
 * timeouts, TLS, the session cache), smtp_sasl.c (client AUTH),
 * smtp_parse.c (pure parsers and the message encoders), smtp_mime.c (the
 * 8BITMIME downgrade).
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"
#include "queue_file.h"
#include "smtp_parse.h"

/* qmgr connections served at once (qmgr keeps $default_process_limit). */
#define SMTP_MAX_CLIENTS	1024
/* Idle sessions kept in the cache at once. */
#define SMTP_MAX_CACHED		256
/* Recipients of one request (qmgr sends $smtp_destination_recipient_limit
 * at most; the request line is bounded by MAX_IPC_LINE anyway). */
#define SMTP_MAX_REQUEST_RCPTS	4096
/* Bytes of message read from the queue file at a time. */
#define SMTP_READ_CHUNK		(64 * 1024)
/* Bytes of one BDAT chunk (RFC 3030); most messages fit in one. */
#define SMTP_BDAT_CHUNK		(256 * 1024)
/* Bytes of header block read for $smtp_generic_maps rewriting. */
#define SMTP_MAX_REWRITE_HEADERS (1024 * 1024)
/* Input buffer of a session (a reply line and what follows it). */
#define SMTP_MAX_INBUF		(SMTP_MAX_REPLY_LINE * 4)
/* Seconds SIGTERM waits for deliveries in progress. */
#define SMTP_STOP_WAIT		30

enum smtp_tls_level {
	SMTP_TLS_NONE = 0,
	SMTP_TLS_MAY,
	SMTP_TLS_ENCRYPT,
	SMTP_TLS_VERIFY,	/* also dane, fingerprint: treated as verify */
	SMTP_TLS_SECURE
};

/*
 * The settings a delivery uses, read once from the configuration and
 * shared by reference count, so that a reload (SIGHUP) never changes
 * them under a delivery in progress.  Get with smtp_settings_get(),
 * release with smtp_settings_put().
 */
struct smtp_settings {
	unsigned	 refs;		/* under smtp_settings_lock */
	char		*myhostname;
	char		*helo_name;
	int		 family;	/* 0 both, 4, 6 (inet_protocols) */
	char		*bind4;		/* smtp_bind_address or NULL */
	char		*bind6;
	unsigned	 connect_timeout;
	unsigned	 helo_timeout;
	unsigned	 starttls_timeout;
	unsigned	 mail_timeout;
	unsigned	 rcpt_timeout;
	unsigned	 data_init_timeout;
	unsigned	 data_xfer_timeout;
	unsigned	 data_done_timeout;
	unsigned	 quit_timeout;
	unsigned	 mx_address_limit;	/* 0 = no limit */
	unsigned	 mx_session_limit;	/* 0 = no limit */
	unsigned	 cache_time;		/* seconds; 0 = no cache */
	enum smtp_tls_level tls_level;
	bool		 tls_note_offer;
	struct tls_client_ctx *tls_ctx;	/* may, encrypt */
	struct tls_client_ctx *tls_vctx;	/* verify/secure, or NULL */
	char		*tls_error;	/* why a context is missing */
	bool		 sasl_enable;
	struct map_list	*sasl_maps;	/* NULL when none */
	pthread_mutex_t	 sasl_lock;	/* map lookups: one at a time */
	char		*sasl_maps_error;
	char		**sasl_opts;	/* smtp_sasl_security_options */
	char		**sasl_tls_opts;
	char		**sasl_filter;	/* the mechanism filter */
	bool		 generic;	/* smtp_generic_maps set */
};

struct smtp_settings *smtp_settings_get(void);
void	smtp_settings_put(struct smtp_settings **sp);

/*
 * Around every call into modules that read the configuration themselves
 * (dns, rewrite): a reload waits for such calls to end and keeps new ones
 * waiting while it swaps the configuration.
 */
void	smtp_cfg_rdlock(void);
void	smtp_cfg_unlock(void);

/* ---- smtp_conn.c: one SMTP session's socket ---- */

enum smtp_conn_err {
	SMTP_CONN_OK = 0,
	SMTP_CONN_TIMEOUT,	/* no progress within the timeout */
	SMTP_CONN_LOST,		/* EOF or a socket error */
	SMTP_CONN_PROTO,	/* a malformed or overlong reply */
	SMTP_CONN_TLS		/* the TLS handshake failed */
};

/* A session is not reused after this many seconds of life. */
#define SMTP_REUSE_TIME_LIMIT	300

struct smtp_conn {
	int		 fd;
	struct tls_conn	*tls;
	char		*tls_info;	/* "TLSv1.3 with cipher ..." */
	struct buf	 in;
	char		 host[256];	/* server name, or the IP */
	char		 ip[64];
	unsigned	 port;
	char		 relay[384];	/* host[ip]:port */
	char		 hostip[352];	/* host[ip], for reply texts */
	struct smtp_features feat;
	bool		 esmtp;		/* EHLO worked (not HELO) */
	bool		 authed;
	char		 error[512];	/* why the last call failed */
	enum smtp_conn_err err;		/* and what kind of failure */
	uint64_t	 born_ms;
	/* The cache: */
	char		*nexthop;
	uint64_t	 expires_ms;
	struct smtp_conn *next;
	unsigned	 uses;
};

uint64_t smtp_now_ms(void);

/*
 * Connect to ss (port set) within timeout seconds, binding to the
 * configured source address when there is one.  Returns the session, or
 * NULL with errbuf ("connect to host[ip]:port: Connection refused").
 */
struct smtp_conn *smtp_conn_connect(const struct smtp_settings *set,
	    const struct sockaddr *sa, socklen_t salen, const char *host,
	    char *errbuf, size_t errsize);
void	smtp_conn_free(struct smtp_conn **cp);
/*
 * Read one reply within timeout seconds.  0, or -1 with c->error set to
 * "timeout" / "lost connection" / what was malformed (the caller words
 * the message with the stage it was in).
 */
int	smtp_conn_read_reply(struct smtp_conn *c, struct smtp_reply *r,
	    unsigned timeout);
/* Write all len bytes within timeout seconds (each write). 0 or -1. */
int	smtp_conn_write(struct smtp_conn *c, const void *data, size_t len,
	    unsigned timeout);
/* Write a whole buffer and empty it. */
int	smtp_conn_flush(struct smtp_conn *c, struct buf *b,
	    unsigned timeout);
/*
 * TLS handshake after a 220 to STARTTLS: plaintext already read is
 * discarded (RFC 3207 §4.2).  servername: SNI and the name checked at
 * verify/secure.  0, or -1 with c->error.
 */
int	smtp_conn_starttls(struct smtp_conn *c, struct tls_client_ctx *ctx,
	    const char *servername, unsigned timeout);
bool	smtp_conn_tls_verified(const struct smtp_conn *c);
/* Send QUIT, wait briefly for its reply, close. */
void	smtp_conn_quit(struct smtp_conn **cp, unsigned timeout);

/*
 * The session cache, keyed by next hop.  smtp_cache_take() returns an
 * idle session for nexthop (the caller owns it) or NULL.
 * smtp_cache_put() keeps c for seconds (ttl 0 or a full cache: QUIT at
 * once).  Expired sessions are closed with QUIT by a thread of the cache.
 */
struct smtp_conn *smtp_cache_take(const char *nexthop);
void	smtp_cache_put(struct smtp_conn *c, const char *nexthop,
	    unsigned ttl);
void	smtp_cache_start(void);
/* End the cache's thread and QUIT every cached session (stop). */
void	smtp_cache_stop(void);
/*
 * QUIT and close every cached session: at once and waiting for the
 * servers (wait: stop), or by the cache's thread (reload).
 */
void	smtp_cache_flush(bool wait);

/* ---- smtp.c / smtp_proto.c: one delivery request ---- */

enum smtp_rcpt_status {
	SMTP_RCPT_PENDING = 0,
	SMTP_RCPT_SENT,
	SMTP_RCPT_DEFER,
	SMTP_RCPT_BOUNCE
};

struct smtp_rcpt {
	size_t		 idx;		/* index in the queue file */
	const char	*addr;		/* as stored (msg's) */
	char		*out_addr;	/* after $smtp_generic_maps */
	enum smtp_rcpt_status status;
	char		 dsn[16];
	char		*relay;		/* host[ip]:port, or NULL */
	char		*text;
	bool		 accepted;	/* 250 to RCPT in this session */
	bool		 relayed;	/* sent to a server without DSN */
};

/*
 * The message as it goes out, as a list of pieces (smtp_mime.c): bytes
 * kept in memory (rewritten header blocks), ranges of the queue file
 * copied, and ranges quoted-printable encoded (the 8BITMIME downgrade).
 * The message encoder (smtp_enc) then makes the line ends CRLF.
 */
enum smtp_seg_kind {
	SMTP_SEG_TEXT,
	SMTP_SEG_FILE,
	SMTP_SEG_QP
};

struct smtp_seg {
	enum smtp_seg_kind kind;
	off_t		 off, len;	/* FILE, QP: a range of the file */
	char		*text;		/* TEXT */
	size_t		 tlen;
};

struct smtp_body {
	struct smtp_seg	*segs;
	size_t		 nsegs;
};

/* Bytes of rewritten header blocks one downgraded message may have. */
#define SMTP_MAX_DOWNGRADE_TEXT	(1024 * 1024)

void	smtp_body_free(struct smtp_body *b);
void	smtp_body_add(struct smtp_body *b, enum smtp_seg_kind kind,
	    off_t off, off_t len, const char *text, size_t tlen);
/*
 * Plan the 8BITMIME downgrade (RFC 6152 §3) of the message at off (size
 * bytes) of fd: the header of every MIME part whose content is 8-bit
 * text gets "Content-Transfer-Encoding: quoted-printable" and its body
 * is encoded; a multipart or message/rfc822 part marked 8bit or binary is
 * marked 7bit; base64 and quoted-printable parts stay as they are.
 * top/toplen: the top header block to use instead of the file's (after
 * $smtp_generic_maps), or NULL.  Returns 1 with b filled, 0 when the
 * message cannot be converted (*why_r: not MIME, 8-bit header fields, a
 * broken or too large structure), -1 when the file cannot be read.
 */
int	smtp_mime_downgrade(int fd, off_t off, off_t size, const char *top,
	    size_t toplen, struct smtp_body *b, const char **why_r);

struct smtp_delivery {
	struct smtp_settings *set;
	const char	*queue_id;
	int		 fd;		/* the queue file */
	struct queue_msg msg;
	char		*nexthop;	/* as qmgr gave it */
	char		 domain[256];	/* host part of nexthop */
	unsigned	 port;
	bool		 mx;		/* MX lookup wanted */
	char		*sender;	/* after $smtp_generic_maps */
	struct smtp_rcpt *rcpts;
	size_t		 nrcpts;
	bool		 need_utf8;	/* SMTPUTF8 required */
	bool		 need_utf8_known;
	bool		 handshaken;	/* this session got past EHLO */
	/* What the message looks like on the wire, worked out once for
	 * all the sessions of the delivery (smtp_proto.c). */
	bool		 body_known;
	bool		 has_8bit;	/* 8-bit bytes, declared or not */
	struct smtp_body body;		/* as stored (rewritten headers) */
	off_t		 wire_size;	/* its size with CRLF (RFC 1870) */
	int		 down_state;	/* 0 not tried, 1 planned, -1 no */
	struct smtp_body down;		/* the 8BITMIME downgrade */
	off_t		 down_size;
	/* Timing for DONE. */
	uint64_t	 start_ms;
	uint64_t	 xfer_start_ms;	/* 0 until MAIL FROM was sent */
};

/* Free what smtp_proto.c worked out about the message. */
void	smtp_delivery_free_body(struct smtp_delivery *d);

/* What a session did, for smtp.c's choice of the next server. */
enum smtp_session_result {
	SMTP_SESS_DONE = 0,	/* every recipient has a final answer */
	SMTP_SESS_NEXT,		/* try the next server for the pending */
	SMTP_SESS_RETRY_PLAIN,	/* TLS handshake failed at "may": again
				 * without STARTTLS on a new connection */
	SMTP_SESS_STALE		/* a cached session was dead */
};

/* Count of recipients still pending. */
size_t	smtp_delivery_pending(const struct smtp_delivery *d);
/* Record a result for recipient r (final unless status is PENDING). */
void	smtp_rcpt_set(struct smtp_rcpt *r, enum smtp_rcpt_status st,
	    const char *dsn, const char *relay, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/*
 * A failure for every recipient still pending: bounce them, or (bounce
 * false) leave them pending with this reason, for the next server or the
 * final deferral.
 */
void	smtp_delivery_fail(struct smtp_delivery *d, bool bounce,
	    const char *dsn, const char *relay, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/*
 * Run a session on c for the pending recipients of d: greeting (unless
 * reused), EHLO, STARTTLS, AUTH, the transaction.  final: c's server is
 * the last one to try (4xx answers are then final deferrals, else the
 * next server gets the recipient).  no_tls: do not use STARTTLS.  On
 * return *cp is NULL (closed) or a session the caller may cache (a
 * successful transaction followed by RSET).
 */
enum smtp_session_result smtp_proto_session(struct smtp_delivery *d,
	    struct smtp_conn **cp, bool reused, bool final, bool no_tls);

/* ---- smtp_sasl.c ---- */

/*
 * Look up the password for server host (port) reached for nexthop, in
 * $smtp_sasl_password_maps: "[host]:port", then "host", then the next-hop
 * domain (and the next hop as written), as Postfix does.  Returns 1 with
 * malloc'ed *user_r and *pass_r (wipe and free both), 0 when none is
 * known, -1 when a table failed (*why_r).
 */
int	smtp_sasl_lookup(struct smtp_settings *set, const char *nexthop,
	    const char *domain, const char *host, unsigned port,
	    char **user_r, char **pass_r, const char **why_r);
/*
 * Authenticate on c (which offered AUTH).  Returns 1 done, 0 when no
 * mechanism is allowed (errbuf says so), -1 on failure: errbuf has the
 * text, *reply_code_r the server's code (0: no reply, e.g. I/O).
 */
int	smtp_sasl_auth(struct smtp_settings *set, struct smtp_conn *c,
	    bool tls, const char *user, const char *pass, int *reply_code_r,
	    char *errbuf, size_t errsize);

#endif
