/*
 * pop3: the POP3 mail process (DESIGN §2, §12).  It runs as one user's
 * uid and serves every logged-in POP3 session of that uid, handed over by
 * posternd (login/mailproc.h), in one event loop: the TRANSACTION and
 * UPDATE states of RFC 1939.  AUTHORIZATION is pop3-login's.  This header
 * is shared by the pop3*.c files of the mail process only:
 *
 *   pop3.c          process: main, the maildrop lock, LOGIN-DELAY
 *   pop3_session.c  session: state, login, multi-line responses, the
 *                   logout line; its connection (buffers, output with
 *                   pipelining and back-pressure, autologout) is a
 *                   struct mailconn (login/mailconn.h)
 *   pop3_cmd.c      the command table and one handler per command
 *   pop3_parse.c    pure parsers and encoders (pop3_parse.h)
 *   pop3_capa.c     the CAPA response (pop3_capa.h)
 */
#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "linebuf.h"
#include "mailconn.h"
#include "pop3_parse.h"

struct mailproc_session;
struct store_mailbox;
struct store_msg_stream;
struct store_user;

/* Client input buffered per session: pipelined commands wait here. */
#define POP3_MAX_INBUF		(64 * 1024)
/* Output queued before we stop producing and reading (back-pressure). */
#define POP3_OUT_HIGH		(64 * 1024)
/* Bytes asked from the kernel per read(2). */
#define POP3_READ_SIZE		(16 * 1024)
/* Message bytes read from the store per step of RETR/TOP. */
#define POP3_MSG_CHUNK		(32 * 1024)
/* RFC 1939 §3: the autologout timer is at least 10 minutes. */
#define POP3_IDLE_TIMEOUT_MS	(10 * 60 * 1000)
/* Bad commands in a row before the client is disconnected. */
#define POP3_MAX_BAD		20
/* Messages one session may see; more are left for the next login. */
#define POP3_MAX_MESSAGES	(1000 * 1000)

/* What the session does with input (changed by pop3_session_enter_state). */
enum pop3_state {
	POP3_STATE_CMD = 0,	/* TRANSACTION: reading commands */
	POP3_STATE_STREAM,	/* a multi-line response is being produced */
	POP3_STATE_CLOSE	/* flushing the last response, then close */
};

/* Per-message session state (RFC 1939 §5: marks live until QUIT). */
#define POP3_MSG_DELETED	0x1
#define POP3_MSG_RETRIEVED	0x2

struct pop3_session;

/*
 * One step of a multi-line response: append some output, return 1 when
 * the response is complete, 0 to be called again once the output has
 * drained, -1 on an error that ends the session (the +OK is out).
 */
typedef int pop3_cont_fn(struct pop3_session *s);

struct pop3_session {
	/* first: the connection; conn.out is where responses go */
	struct mailconn	 conn;
	uint64_t	 id;
	enum pop3_state	 state;
	struct linebuf	 lp;

	/* who */
	char		*user;
	char		*log_user;	/* user, escaped for log lines */
	char		*home;
	char		*mail;		/* mail_location */
	char		*rip;

	/* settings, taken at login */
	char		*uidl_format;
	bool		 no_flag_updates;

	/* the maildrop as it was at login (RFC 1939 §5) */
	struct store_user *su;
	struct store_mailbox *mb;
	uint32_t	 count;
	uint32_t	 uidvalidity;
	uint32_t	*uids;
	uint64_t	*sizes;
	uint8_t		*mflags;	/* POP3_MSG_* */
	uint64_t	 total_bytes;
	uint32_t	 deleted_count;
	uint64_t	 deleted_bytes;

	/* the multi-line response in progress */
	pop3_cont_fn	*cont;
	uint32_t	 cont_idx;
	struct store_msg_stream *msg;
	struct pop3_stuffer stuffer;
	uint64_t	*cont_bytes;	/* counter of the message bytes sent */

	struct pop3_logout_stats stats;
	unsigned	 bad;
	bool		 locked;	/* holds the maildrop */
	struct pop3_session *prev, *next;
};

/* pop3.c */
/*
 * Whether another live session of this process holds the maildrop of
 * user at mail (RFC 1939 §8: the maildrop is locked for the session).
 */
bool	pop3_maildrop_in_use(const struct pop3_session *s);
/*
 * RFC 2449 §6.5: whether pop3_login_delay allows s to log in now; true
 * when no delay is set.  pop3_login_delay_mark() records a login.
 */
bool	pop3_login_delay_ok(const struct pop3_session *s);
void	pop3_login_delay_mark(const struct pop3_session *s);

/* pop3_session.c */
/* A session handed over by posternd (mailproc_session_cb). */
void	pop3_session_new(const struct mailproc_session *ms);
/* The first of the live sessions, for pop3_maildrop_in_use(). */
struct pop3_session *pop3_sessions_first(void);
/* Queue one response line (CRLF added). */
void	pop3_session_reply(struct pop3_session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Count a client error; true when the session is closed for it. */
bool	pop3_session_bad(struct pop3_session *s);
/* Start a multi-line response produced by cont (its +OK is queued). */
void	pop3_session_stream(struct pop3_session *s, pop3_cont_fn *cont);
/* Flush the queued responses, then close; reason for the logout line. */
void	pop3_session_close(struct pop3_session *s, const char *reason);
void	pop3_session_enter_state(struct pop3_session *s,
	    enum pop3_state state);

/* pop3_cmd.c */
/* Execute one command line (len bytes, no line end; modified). */
void	pop3_cmd_execute(struct pop3_session *s, char *line, size_t len);
/*
 * RFC 1939 §6, the UPDATE state: mark retrieved messages \Seen, remove
 * the deleted ones.  0, or -1 when some could not be removed (logged).
 */
int	pop3_cmd_update(struct pop3_session *s);

#endif
