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
 *   smtpd_check.c    smtpd_*_restrictions: relay, sender, recipient
 *                    decisions, lookups off the loop
 *   smtpd_access.c   access(5) tables, where an address goes
 *   smtpd_rbl.c      DNS block lists
 *   smtpd_policy.c   policy servers (check_policy_service)
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
	uint64_t	 in_flow_delay_ms; /* in_flow_delay; 0 = off */
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
	/* smtpd_*_restrictions, their tables and codes (smtpd_check.c) */
	struct smtpd_restrictions *restrictions;
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
	SMTPD_STATE_AUTH_WAIT,	/* the auth service decides; input not read */
	SMTPD_STATE_CHECK	/* a restriction waits for DNS or a policy
				 * server (smtpd_check.c); input not read */
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
	/* Header address rewriting (smtpd_data.c, rewrite.h): the first
	 * hdr_pending bytes of hdrline are an address field held back
	 * until its continuation lines are in. */
	bool		 rewrite_hdrs;
	size_t		 hdr_pending;
	/* Restrictions (smtpd_check.c): the sender as the client gave it
	 * (qualified; t->sender is the rewritten one), DISCARD and HOLD
	 * actions that apply to the whole message, and their reasons. */
	char		*sender_given;
	bool		 discard;
	bool		 hold;
	char		*last_rcpt;	/* last accepted RCPT, for the log */
	char		**prepend;	/* PREPEND headers, NULL-terminated */
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
	/* restriction lookups under way and their answers (smtpd_check.c) */
	struct smtpd_check_state *check;
	struct smtpd_session *prev, *next;
};

/* smtpd_session.c */
/*
 * Start a session on an accepted socket (greeting sent from here; after
 * the TLS handshake when smtps).
 */
void	smtpd_session_new(int fd, enum smtpd_service service);
/*
 * The client is identified (smtpd_check_connect() is done): log
 * "connect from", apply the session limits and send the greeting, or the
 * refusal smtpd_check_denied() holds.  May free s.
 */
void	smtpd_session_connected(struct smtpd_session *s);
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
/*
 * The message passed smtpd_check_eod(): deliver at accept or commit, as
 * smtpd_data_end() does (for a session parked by that check).
 */
void	smtpd_data_accept(struct smtpd_session *s);
/* Log "QID: from=<S>, size=N, nrcpt=K (queue active)" once. */
void	smtpd_data_log_from(struct smtpd_session *s);
/* The error reply for a failed transaction (status != OK). */
const char *smtpd_data_error_reply(const struct smtpd_session *s);
/* Log a failed transaction as a Postfix-style reject line. */
void	smtpd_data_log_reject(struct smtpd_session *s, const char *stage,
	    const char *reply);

/* smtpd_check.c: smtpd_*_restrictions with Postfix's semantics */
struct smtpd_lrm *smtpd_check_lrm_new(void);
void	smtpd_check_lrm_free(struct smtpd_lrm **lrm);
/*
 * Compile set->restrictions from the configuration (the restriction
 * lists, their tables, policy servers and reply codes); also (re)reads
 * the DNS and address rewriting settings.  The free function releases
 * what it made.
 */
void	smtpd_check_settings_load(struct smtpd_settings *set);
void	smtpd_check_settings_free(struct smtpd_settings *set);
/*
 * A new connection: the client's name (reverse DNS, forward-confirmed)
 * and, with smtpd_delay_reject = no, the client restrictions.  Returns
 * true when a lookup parked the session (SMTPD_STATE_CHECK); it then
 * calls smtpd_session_connected() itself.  false: call it now.
 */
bool	smtpd_check_connect(struct smtpd_session *s);
/* The reply that refused the client at connect, or NULL. */
const char *smtpd_check_denied(const struct smtpd_session *s);
/* The session ends; a lookup still running is forgotten. */
void	smtpd_check_session_free(struct smtpd_session *s);
/*
 * A command handler got SMTPD_CHECK pending (the session is in
 * SMTPD_STATE_CHECK): keep its line to run it again with the answer.
 */
void	smtpd_check_save_line(struct smtpd_session *s, const char *line,
	    size_t len);
/* MAIL accepted: a new transaction for policy servers ("instance"). */
void	smtpd_check_new_txn(struct smtpd_session *s);
/*
 * The checks of one command.  Each returns 0 to go on, -1 with *reply_r
 * (malloc'ed, already logged as a "reject" line) to refuse, or 1 when a
 * lookup parked the session: the handler returns without a reply and the
 * command runs again when the answer is in.
 *
 *   helo: HELO/EHLO (cmd) with smtpd_delay_reject = no
 *   mail: MAIL with smtpd_delay_reject = no; sender as given, qualified
 *   rcpt: RCPT or VRFY (cmd); addr qualified, raw as the client sent it;
 *         bare: "postmaster" without a domain (RFC 5321 §4.5.1: always
 *         accepted).  On 0, *addrs_r (when not NULL) gets the final
 *         recipients after virtual alias expansion (a NULL-terminated
 *         strv), and DISCARD/HOLD actions mark s->txn.
 *   data: DATA or BDAT (cmd), smtpd_data_restrictions
 */
int	smtpd_check_helo(struct smtpd_session *s, const char *cmd,
	    const char *helo, char **reply_r);
int	smtpd_check_mail(struct smtpd_session *s, const char *sender,
	    char **reply_r);
int	smtpd_check_rcpt(struct smtpd_session *s, const char *cmd,
	    const char *addr, const char *raw, bool bare, char ***addrs_r,
	    char **reply_r);
int	smtpd_check_data(struct smtpd_session *s, const char *cmd,
	    char **reply_r);
/*
 * End of the message, before the commit (smtpd_data_end): the
 * end-of-data restrictions, DISCARD (the message is dropped, the client
 * told 250) and HOLD (the file goes to hold/).  Returns 0 to commit as
 * usual, 1 when the transaction ended here or a lookup parked the
 * session (smtpd_data_accept() follows when it answers).
 */
int	smtpd_check_eod(struct smtpd_session *s);

/* smtpd_access.c: access(5) tables and where an address goes */
#define SMTPD_CLASS_SENDER	"Sender address"
#define SMTPD_CLASS_RECIPIENT	"Recipient address"

struct smtpd_access_map;
/* A table named in a restriction; opened now (a failure is logged and
 * retried at each use), re-read when its file changes. */
struct smtpd_access_map *smtpd_access_map_new(const char *spec);
void	smtpd_access_map_free(struct smtpd_access_map **am);
const char *smtpd_access_map_spec(const struct smtpd_access_map *am);
/*
 * Lookups: 1 with *value_r (malloc'ed), 0 not found, -1 the table is
 * unusable (logged).  find: one key.  find_domain: a host or domain
 * name and its parents.  find_ip: an address and its shorter network
 * prefixes.  find_host: find_domain(name) unless "unknown", then
 * find_ip(ip).  find_mail: a mail address in access(5) order.
 */
int	smtpd_access_find(struct smtpd_access_map *am, const char *key,
	    char **value_r);
int	smtpd_access_find_domain(struct smtpd_access_map *am,
	    const char *domain, char **value_r);
int	smtpd_access_find_ip(struct smtpd_access_map *am, const char *ip,
	    char **value_r);
int	smtpd_access_find_host(struct smtpd_access_map *am, const char *name,
	    const char *ip, char **value_r);
int	smtpd_access_find_mail(struct smtpd_access_map *am, const char *addr,
	    char **value_r);
/*
 * The sendmail tag ("connect", "from", "to") of the lookups that follow,
 * or NULL; it counts only with $sendmail_access_tags = yes.
 */
void	smtpd_access_map_tag(struct smtpd_access_map *am, const char *tag);
/* Whether $parent_domain_matches_subdomains names param. */
bool	smtpd_access_parent_style(const char *param);
/* A quoted local part without quotes and backslashes; malloc'ed. */
char	*smtpd_access_unquote(const char *local);

enum smtpd_access_verb {
	SMTPD_ACCESS_DUNNO = 0,
	SMTPD_ACCESS_OK,		/* OK, RELAY, PERMIT, all digits */
	SMTPD_ACCESS_REJECT,
	SMTPD_ACCESS_DEFER,
	SMTPD_ACCESS_DEFER_IF_REJECT,
	SMTPD_ACCESS_DEFER_IF_PERMIT,
	SMTPD_ACCESS_DISCARD,
	SMTPD_ACCESS_HOLD,
	SMTPD_ACCESS_WARN,
	SMTPD_ACCESS_INFO,
	SMTPD_ACCESS_PREPEND,		/* PREPEND header: text */
	SMTPD_ACCESS_IGNORED,		/* FILTER, REDIRECT, BCC */
	SMTPD_ACCESS_CODE,		/* 4NN text, 5NN text */
	SMTPD_ACCESS_RESTRICTIONS,	/* a list of restrictions */
	SMTPD_ACCESS_BAD		/* a lookup table in the answer */
};

struct smtpd_access_action {
	enum smtpd_access_verb verb;
	int		 code;		/* SMTPD_ACCESS_CODE */
	const char	*word;		/* the first word of the value */
	size_t		 word_len;
	const char	*text;		/* what follows it (borrowed) */
};

/* What a table answer means (access(5)); a points into value. */
void	smtpd_access_parse(const char *value, struct smtpd_access_action *a);
/*
 * A text that starts with an RFC 3463 status ("5.1.1 text") gives it in
 * dsn (size bytes), else def_dsn is copied; returns the rest.
 */
const char *smtpd_access_dsn_split(const char *text, const char *def_dsn,
	    char *dsn, size_t size);
/* Make an X.1.Y status fit the reply class, as Postfix does. */
void	smtpd_access_dsn_fix(char *dsn, const char *reply_class);

enum smtpd_access_class {
	SMTPD_CLASS_LOCAL,		/* $mydestination, interfaces */
	SMTPD_CLASS_VIRTUAL_ALIAS,	/* $virtual_alias_domains */
	SMTPD_CLASS_VIRTUAL_MAILBOX,	/* $virtual_mailbox_domains */
	SMTPD_CLASS_RELAY,		/* $relay_domains */
	SMTPD_CLASS_DEFAULT		/* anywhere else */
};

struct smtpd_route_opts {
	bool	 swap_bangpath;		/* site!user is user@site */
	bool	 percent_hack;		/* user%site is user@site */
	bool	 untrusted_routing;	/* allow_untrusted_routing */
};

struct smtpd_access_route {
	char	*addr;			/* the address it resolves to */
	char	*domain;		/* its domain, lower case */
	enum smtpd_access_class cls;
	bool	 routed;		/* the sender chose the route */
};

/* Where addr goes (Postfix's trivial-rewrite resolve); free the route. */
void	smtpd_access_resolve(const char *addr,
	    const struct smtpd_route_opts *o, struct smtpd_access_route *r);
void	smtpd_access_route_free(struct smtpd_access_route *r);
enum smtpd_access_class smtpd_access_domain_class(const char *domain);
/* Is domain in the domain list param (relay_domains...)? */
bool	smtpd_access_domain_listed(const char *param, const char *domain);

/* smtpd_rbl.c: DNS block lists */
struct smtpd_rbl_result {
	int		 status;	/* enum dns_status */
	const char	*why;		/* static text on failure */
	char		**addrs;	/* A records (DNS_OK) */
	char		*txt;		/* TXT records joined, or NULL */
};

/* The query for an IP address or a domain (of an address) in zone;
 * NULL when there is nothing to ask.  Malloc'ed. */
char	*smtpd_rbl_query_addr(const char *ip, const char *zone);
char	*smtpd_rbl_query_domain(const char *what, const char *zone);
/* 1 addr matches "127.0.0.[2..11]", 0 no, -1 bad pattern. */
int	smtpd_rbl_pattern_match(const char *pattern, const char *addr);
bool	smtpd_rbl_pattern_valid(const char *pattern);
/* Some answer matches pattern (NULL: any answer lists). */
bool	smtpd_rbl_listed(const char *pattern, char *const *addrs);
/* Blocking: A, then TXT when listed (worker threads). */
void	smtpd_rbl_lookup(const char *query, struct smtpd_rbl_result *res);
void	smtpd_rbl_result_free(struct smtpd_rbl_result *res);

struct smtpd_rbl_vars {
	const char	*code, *cls, *what, *domain, *reason;
	const char	*client_address, *client_name, *helo_name;
	const char	*sender, *recipient;
};
/* A reply template ($rbl_code ... ${rbl_reason?; $rbl_reason});
 * malloc'ed, or NULL when it does not parse. */
char	*smtpd_rbl_expand(const char *template,
	    const struct smtpd_rbl_vars *v);

/* smtpd_policy.c: Postfix's policy delegation protocol, client side */
struct smtpd_policy_server;
/* "inet:host:port" or "unix:path"; NULL + *error_r when malformed. */
struct smtpd_policy_server *smtpd_policy_server_new(const char *spec,
	    const char **error_r);
void	smtpd_policy_server_free(struct smtpd_policy_server **ps);
const char *smtpd_policy_server_spec(const struct smtpd_policy_server *ps);
/* $smtpd_policy_service_default_action, used when the server fails. */
const char *smtpd_policy_default_action(const struct smtpd_policy_server
	    *ps);
/* Append "name=value\n" (line ends in value replaced). */
void	smtpd_policy_attr(struct buf *b, const char *name, const char *value);
/*
 * Blocking, for a worker thread: send request (attribute lines and the
 * empty line), return 0 with the "action=" value in *action_r
 * (malloc'ed), or -1 with why (a short text for the log).
 */
int	smtpd_policy_query(struct smtpd_policy_server *ps,
	    const char *request, char **action_r, char *why, size_t why_size);
/* Parse an answer block: 0 with *action_r, -1 malformed. */
int	smtpd_policy_parse_reply(const char *data, size_t len,
	    char **action_r);

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
