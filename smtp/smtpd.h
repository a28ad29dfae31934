/*
 * smtpd: the SMTP server process (DESIGN §2, §3, §9).  One event-driven
 * process serves every session of the smtp and submission listeners and
 * of the local submission socket public/pickup.  This header is shared by
 * the smtpd_*.c files only:
 *
 *   smtpd.c          process: config snapshot, listeners, signals
 *   smtpd_parse.c    pure parsers (smtpd_parse.h)
 *   smtpd_session.c  connection, buffers, state, timeouts, error counter,
 *                    reply output with RFC 2920 pipelining
 *   smtpd_cmd.c      the command table and one handler per command
 *   smtpd_data.c     DATA/BDAT into the queue file, header scan, delivery
 *                    at accept (local_client.h), commit pool (fsync off
 *                    the event loop)
 *   smtpd_check.c    recipient, relay and sender decisions
 *   smtpd_auth.c     SMTP AUTH (RFC 4954) through the auth service
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "limits_pst.h"
#include "netaddr.h"
#include "queue_file.h"
#include "smtpd_parse.h"
#include "tls.h"

struct auth_request;

/* Sessions one smtpd process serves at once; more get 421 at connect. */
#define SMTPD_MAX_SESSIONS	4096
/* Client input buffered per session (a command line is MAX_SMTP_LINE). */
#define SMTPD_MAX_INBUF		(64 * 1024)
/* Replies queued before we stop reading the client (back-pressure). */
#define SMTPD_OUT_HIGH		(64 * 1024)
/* Threads doing queue commits (fsync) off the event loop (DESIGN §12). */
#define SMTPD_COMMIT_THREADS	16
/* Message-ID value kept for the log. */
#define SMTPD_MAX_MSGID		998
/* Seconds a SIGTERM'ed smtpd waits for transactions in progress. */
#define SMTPD_SHUTDOWN_WAIT	30
/*
 * A client's line during a SASL exchange, CRLF included.  RFC 4954 §4
 * calls 12288 enough for deployed mechanisms; ours must also fit, base64
 * as it is, into one auth protocol line (MAX_IPC_LINE), so a little less.
 */
#define SMTPD_MAX_AUTH_LINE	(MAX_IPC_LINE - 256)
/* Authenticated user name kept for the log and the Received header. */
#define SMTPD_MAX_SASL_USER	256

/*
 * The configuration as one session sees it: taken at connect, so a reload
 * (SIGHUP) changes new sessions only.  Reference counted.
 */
struct smtpd_settings {
	int		 refcount;
	char		*myhostname;
	char		*banner;
	char		*mail_name;
	char		*queue_dir;
	uint64_t	 size_limit;	/* 0 = unlimited */
	unsigned	 rcpt_limit;
	unsigned	 soft_error_limit;
	unsigned	 hard_error_limit;
	uint64_t	 error_sleep_ms;
	uint64_t	 timeout_ms;
	unsigned	 hopcount_limit;
	bool		 vrfy_disabled;
	bool		 smtputf8;
	bool		 helo_required;
	bool		 local_at_accept; /* local_delivery_at_accept */
	struct netaddr	*mynetworks;	/* terminated by family 0 */
	/* local_recipient_maps, see smtpd_check.c */
	struct smtpd_lrm *lrm;
	/* TLS (DESIGN §8): NULL when no certificate is usable */
	struct tls_server_ctx *tls_ctx;
	int		 tls_level;	/* SMTPD_TLS_* */

	/* SMTP AUTH (RFC 4954) and the submission policy */
	bool		 sasl_enable;	/* smtpd_sasl_auth_enable (port 25) */
	bool		 sasl_broken;	/* broken_sasl_auth_clients */
	bool		 sasl_header;	/* smtpd_sasl_authenticated_header */
	bool		 tls_auth_only;	/* smtpd_tls_auth_only */
	bool		 plaintext_disabled; /* disable_plaintext_auth */
	bool		 plaintext_loopback; /* plaintext_auth_loopback */
	bool		 submission_auth; /* submission_auth_required */
	bool		 delay_reject;	/* smtpd_delay_reject */
	/* permit_sasl_authenticated lets clients relay, see smtpd_check.c */
	bool		 sasl_relay;
	/* smtpd_sender_restrictions and smtpd_sender_login_maps */
	struct smtpd_sender_checks *sender_checks;
};

/* smtpd_tls_security_level (Dovecot's ssl = no maps to NONE). */
#define SMTPD_TLS_NONE		0
#define SMTPD_TLS_MAY		1
#define SMTPD_TLS_ENCRYPT	2

/* The self-signed pair posternd creates when no certificate is set. */
#define SMTPD_TLS_DEFAULT_CERT	"ssl/postern.crt"	/* in data_directory */
#define SMTPD_TLS_DEFAULT_KEY	"ssl/postern.key"

struct smtpd_settings *smtpd_settings_get(void);	/* adds a ref */
void	smtpd_settings_unref(struct smtpd_settings **set);

/* ---- sessions ---- */

/* Which listener a session came from (POSTERN_LISTEN service names). */
enum smtpd_service {
	SMTPD_SERVICE_SMTP = 0,		/* 25: MX traffic */
	SMTPD_SERVICE_SUBMISSION,	/* 587 (RFC 6409) */
	SMTPD_SERVICE_SMTPS,		/* 465, implicit TLS (RFC 8314) */
	SMTPD_SERVICE_PICKUP		/* public/pickup: local submission */
};

/* I/O state: what the session does with input (one enter_state()). */
enum smtpd_state {
	SMTPD_STATE_CMD = 0,	/* reading command lines */
	SMTPD_STATE_DATA,	/* reading DATA message text */
	SMTPD_STATE_BDAT,	/* reading a BDAT chunk */
	SMTPD_STATE_COMMIT,	/* parked: queue file commit in a worker */
	SMTPD_STATE_LOCAL,	/* parked: local delivers at accept */
	SMTPD_STATE_SLEEP,	/* parked: error delay before the reply */
	SMTPD_STATE_TLS,	/* 220 to STARTTLS going out, then handshake */
	SMTPD_STATE_CLOSE,	/* flushing the last replies, then close */
	SMTPD_STATE_AUTH,	/* reading the client's SASL response line */
	SMTPD_STATE_AUTH_WAIT	/* the auth service decides; input not read */
};

/* SMTP protocol phase, used by the command table's allowed states. */
#define SMTPD_PHASE_INIT	0x1	/* no HELO/EHLO yet */
#define SMTPD_PHASE_HELO	0x2	/* greeted, no transaction */
#define SMTPD_PHASE_MAIL	0x4	/* MAIL accepted, no recipient */
#define SMTPD_PHASE_RCPT	0x8	/* at least one recipient */
#define SMTPD_PHASE_ANY		0xf

/* Counters for the Postfix 3 style "disconnect from" line. */
enum smtpd_stat {
	SMTPD_STAT_EHLO = 0, SMTPD_STAT_HELO, SMTPD_STAT_STARTTLS,
	SMTPD_STAT_AUTH, SMTPD_STAT_MAIL, SMTPD_STAT_RCPT, SMTPD_STAT_BDAT,
	SMTPD_STAT_DATA, SMTPD_STAT_RSET, SMTPD_STAT_NOOP, SMTPD_STAT_VRFY,
	SMTPD_STAT_EXPN, SMTPD_STAT_HELP, SMTPD_STAT_ETRN, SMTPD_STAT_QUIT,
	SMTPD_STAT_UNKNOWN,
	SMTPD_STAT_COUNT
};

struct smtpd_rcpt {
	char	*addr;		/* as stored (qualified) */
	/* the R record: ADDR[\tNOTIFY=..][\tORCPT=..] */
	char	*record;
	/* duplicate filter: the record with the domain lower-cased */
	char	*key;
};

/* Message data state inside a transaction. */
enum smtpd_data_status {
	SMTPD_DATA_OK = 0,
	SMTPD_DATA_TOO_BIG,	/* 552 5.3.4 */
	SMTPD_DATA_WRITE_ERR,	/* 451 4.3.0 */
	SMTPD_DATA_HOPS		/* 554 5.4.0 */
};

/*
 * One mail transaction (MAIL .. end of DATA/BDAT); freed at RSET,
 * HELO/EHLO, the end of the message or the end of the session.
 */
struct smtpd_txn {
	char		*sender;	/* "" for <> */
	char		*params;	/* normalised f record */
	bool		 smtputf8;
	uint64_t	 size_declared;
	struct smtpd_rcpt *rcpts;
	size_t		 rcpt_count;	/* stored (duplicates dropped) */
	size_t		 rcpt_accepted;	/* RCPT commands accepted */

	/* message data */
	struct queue_writer *qw;
	struct local_client_req *lreq;	/* delivery at accept under way */
	bool		 from_logged;	/* "from=.. (queue active)" logged */
	bool		 removed;	/* all delivered at accept: no queue */
	char		 qid[QUEUE_ID_MAX];
	bool		 bdat;		/* CHUNKING used in this txn */
	enum smtpd_data_status status;
	uint64_t	 received;	/* message bytes from the client */
	uint64_t	 msg_size;	/* bytes in the M record */
	struct buf	 decoded;	/* decoder output, drained */
	struct smtpd_data_decoder dd;
	struct smtpd_bdat_decoder bd;
	/* header scan */
	bool		 in_headers;
	bool		 last_was_header; /* for continuation lines */
	bool		 in_msgid;
	bool		 have_date, have_msgid, have_from;
	bool		 have_to;	/* To:, Cc: or Bcc: (not added) */
	unsigned	 received_hdrs;
	struct buf	 hdrline;	/* current physical header line */
	struct buf	 msgid;		/* Message-ID, for the log */
	bool		 ends_in_lf;	/* last byte written was LF */
};

struct smtpd_session {
	uint64_t	 id;
	int		 fd;
	struct io	*io;
	struct timer	*timeout;
	struct timer	*sleep_timer;
	struct smtpd_settings *set;
	enum smtpd_state state;
	unsigned	 phase;		/* SMTPD_PHASE_* */
	struct buf	 in;
	struct buf	 out;
	struct smtpd_line_parser lp;

	/* client */
	char		*name;		/* "localhost" / "unknown" */
	char		*addr;		/* "192.0.2.1", "2001:db8::1" */
	char		*rfc_addr;	/* "192.0.2.1", "IPv6:2001:db8::1" */
	unsigned	 port;
	struct netaddr	 naddr;
	bool		 loopback;	/* 127.0.0.0/8, ::1 */
	enum smtpd_service service;
	bool		 local;		/* public/pickup: trusted */
	uid_t		 uid;
	char		*helo;
	bool		 esmtp;

	/* TLS: s->tls is set from the start of the handshake on */
	struct tls_conn	*tls;
	bool		 smtps;		/* implicit TLS listener (RFC 8314) */
	int		 tls_rwant;	/* event a TLS read waits for, or 0 */
	int		 tls_wwant;	/* event a TLS write waits for, or 0 */
	struct timer	*pending_timer;	/* OpenSSL holds unread input */

	/* SMTP AUTH: the identity is dropped at STARTTLS (RFC 3207 §4.2) */
	char		*sasl_user;	/* authenticated name, or NULL */
	char		*sasl_method;	/* its mechanism, "PLAIN" ... */
	struct auth_request *auth_req;	/* exchange under way, or NULL */
	char		*auth_mech;	/* mechanism of that exchange */
	bool		 processing;	/* inside smtpd_session_process() */

	/* protocol */
	struct smtpd_txn *txn;
	unsigned	 errors;
	bool		 sleep_pending;
	uint64_t	 bdat_remaining;
	uint64_t	 bdat_chunk;	/* size of the current chunk */
	bool		 bdat_last;
	bool		 bdat_discard;	/* chunk read and dropped */
	char		*bdat_reply;	/* reply after a dropped chunk */
	enum smtpd_stat	 cur_stat;
	unsigned	 stat_ok[SMTPD_STAT_COUNT];
	unsigned	 stat_total[SMTPD_STAT_COUNT];
	const char	*last_cmd;	/* for "lost connection after X" */
	int		 last_code;

	bool		 eof;		/* client closed its side */
	bool		 dead;		/* free at end of callback */
	bool		 shutdown;	/* SIGTERM: 421 when idle */
	int		 busy;		/* callback depth */
	struct smtpd_session *prev, *next;
};

/* smtpd_session.c */
/*
 * Start a session on an accepted socket (greeting sent from here; after
 * the TLS handshake when smtps).
 */
void	smtpd_session_new(int fd, enum smtpd_service service);
/*
 * STARTTLS accepted (its 220 queued): drop the input pipelined after it
 * (RFC 3207 §4.2, DESIGN §8), send the 220, then do the handshake.
 */
void	smtpd_session_starttls(struct smtpd_session *s);
/* The session runs over an established TLS connection. */
bool	smtpd_session_tls_active(const struct smtpd_session *s);
/* "TLSv1.3 with cipher ..." or NULL without TLS. */
const char *smtpd_session_tls_info(const struct smtpd_session *s);
/* Queue one reply line "CODE TEXT" (CRLF added); counts 4xx/5xx errors. */
void	smtpd_session_reply(struct smtpd_session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Queue raw reply text (multi-line replies); must end in CRLF. */
void	smtpd_session_reply_raw(struct smtpd_session *s, const char *text);
void	smtpd_session_enter_state(struct smtpd_session *s,
	    enum smtpd_state state);
/* Try to write queued replies now (RFC 2920: end of a pipeline group). */
void	smtpd_session_flush(struct smtpd_session *s);
/* Flush the queued replies, then close. */
void	smtpd_session_close(struct smtpd_session *s);
/*
 * The message of s is safe (ret 0: committed, or delivered at accept
 * and removed) or could not be kept (ret -1, error says why): log,
 * reply 250 or 451, end the transaction and resume reading.
 */
void	smtpd_session_commit_done(struct smtpd_session *s, int ret,
	    const char *error);
/*
 * Something the session waited for outside the client (the auth service)
 * answered and queued its reply: go on with the client's input, after
 * the error delay when one is due.  Safe to call from inside the
 * session's own processing (it then returns and the loop goes on).
 */
void	smtpd_session_resume(struct smtpd_session *s);
/* SIGTERM: 421 to idle sessions, the rest after their transaction. */
void	smtpd_sessions_shutdown(void);
/* The loop stopped: drop the messages still waiting for local. */
void	smtpd_sessions_exit(void);
unsigned smtpd_session_count(void);
/* "NAME[ADDR]" of the client, for log lines; static buffer. */
const char *smtpd_session_client(const struct smtpd_session *s);
/* Protocol name for the Received header, the C record and the log. */
const char *smtpd_session_proto(const struct smtpd_session *s);
void	smtpd_session_count_stat(struct smtpd_session *s,
	    enum smtpd_stat stat, bool ok);

/* smtpd_cmd.c */
/* Execute one command line (len bytes, no line end). */
void	smtpd_cmd_execute(struct smtpd_session *s, const char *line,
	    size_t len);
void	smtpd_txn_free(struct smtpd_txn **txn);

/* smtpd_data.c */
void	smtpd_data_pool_init(void);
/* At exit, after the loop ended (no commit is outstanding then). */
void	smtpd_data_pool_stop(void);
/*
 * Start the message: create the queue file, write the envelope and our
 * Received header.  Returns 0, or -1 after logging (reply 451 4.3.0).
 */
int	smtpd_data_begin(struct smtpd_session *s);
/* Decoded message bytes (LF line ends) from DATA or BDAT. */
void	smtpd_data_input(struct smtpd_session *s, const char *data,
	    size_t len);
/* True when the data received so far already failed (size, I/O). */
bool	smtpd_data_failed(const struct smtpd_session *s);
/*
 * The message ended.  Either hands the queue file to local for delivery
 * at accept (SMTPD_STATE_LOCAL) or to the commit pool
 * (SMTPD_STATE_COMMIT) and parks the session, or replies the error,
 * frees the transaction and returns to SMTPD_STATE_CMD.
 */
void	smtpd_data_end(struct smtpd_session *s);
/* Log "QID: from=<S>, size=N, nrcpt=K (queue active)" once. */
void	smtpd_data_log_from(struct smtpd_session *s);
/* The error reply for a failed transaction (status != OK). */
const char *smtpd_data_error_reply(const struct smtpd_session *s);
/* Log a failed transaction as a Postfix-style reject line. */
void	smtpd_data_log_reject(struct smtpd_session *s, const char *stage,
	    const char *reply);

/* smtpd_check.c */
struct smtpd_lrm *smtpd_check_lrm_new(void);
void	smtpd_check_lrm_free(struct smtpd_lrm **lrm);
/*
 * Decide on a recipient (already parsed, qualified).  bare: the client
 * sent "postmaster" without a domain (always accepted).  Returns 0 to
 * accept, or -1 with *reply_r (malloc'ed) a complete reply line such as
 * "550 5.1.1 ...".
 */
int	smtpd_check_rcpt(struct smtpd_session *s, const char *addr,
	    bool bare, char **reply_r);
/* Log "NOQUEUE: reject: CMD from NAME[ADDR]: REPLY; from=<> to=<> ..." */
void	smtpd_check_log_reject(struct smtpd_session *s, const char *cmd,
	    const char *reply, const char *rcpt);
/*
 * Fill set->sasl_relay and set->sender_checks from the configuration
 * (smtpd_relay_restrictions, smtpd_recipient_restrictions,
 * smtpd_sender_restrictions, smtpd_sender_login_maps); the free
 * function releases what it made.
 */
void	smtpd_check_settings_load(struct smtpd_settings *set);
void	smtpd_check_settings_free(struct smtpd_settings *set);
/*
 * smtpd_sender_restrictions for the envelope sender (qualified, "" for
 * the null sender): the SASL login checks of Postfix.  Returns 0 to go
 * on, or -1 with *reply_r (malloc'ed) a complete reply line.
 */
int	smtpd_check_sender(struct smtpd_session *s, const char *sender,
	    char **reply_r);

/* smtpd_auth.c */
/* AUTH is offered in EHLO (listener, smtpd_tls_auth_only, TLS). */
bool	smtpd_auth_offered(const struct smtpd_session *s);
/* The EHLO lines "250-AUTH ..." (and "250-AUTH=..."), or nothing. */
void	smtpd_auth_ehlo(struct smtpd_session *s, struct buf *reply);
/* The AUTH command (RFC 4954 §4). */
void	smtpd_auth_cmd(struct smtpd_session *s, const char *args);
/* One line from the client during the exchange (SMTPD_STATE_AUTH). */
void	smtpd_auth_response(struct smtpd_session *s, const char *line,
	    size_t len);
/* That line was longer than SMTPD_MAX_AUTH_LINE. */
void	smtpd_auth_overlong(struct smtpd_session *s);
/* Drop an exchange under way (session ends, shutdown, STARTTLS). */
void	smtpd_auth_abort(struct smtpd_session *s);
/* Forget the login (STARTTLS, end of session). */
void	smtpd_auth_reset(struct smtpd_session *s);
/*
 * MAIL on submission/smtps before AUTH: returns false after answering
 * 530 when submission_auth_required says the client must log in first.
 */
bool	smtpd_auth_mail_allowed(struct smtpd_session *s);

#endif
