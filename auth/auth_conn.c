/*
 * auth_conn: the connections of the auth service and the exchanges on
 * them (protocol in doc/internals.md "Authentication" and "auth <->
 * posternd").
 *
 * A client connection (private/auth) carries many SASL exchanges at
 * once, each named by the client's id.  An exchange is held (the
 * address's failure penalty), busy (a worker thread runs one SASL step,
 * which may ask PAM, the shadow file or the passwd-file), waiting for
 * the client's next response, or delayed (its FAIL is held for the
 * failure delay).  Only the step runs in a worker; everything else,
 * tables included, belongs to the loop thread, and a request is touched
 * by one thread at a time (the work pool's queue orders the hand-overs).
 *
 * A master connection (private/auth-master, posternd) redeems tickets
 * and looks users up; the userdb lookup runs in a worker too.
 *
 * Bad input from a client (a malformed or over-long line, an unknown
 * command, a duplicate id) is logged and ends that connection only.
 * Replies queue in a bounded buffer; a client that stops reading is
 * disconnected when it fills.  When a connection closes, a busy request
 * is orphaned: the worker's result still counts (a failure is logged and
 * penalised) and is then dropped.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "log.h"
#include "str.h"
#include "userdb.h"
#include "workpool.h"
#include "xmalloc.h"

#include "auth_penalty.h"
#include "auth_ticket.h"
#include "authd.h"
#include "passdb.h"
#include "sasl.h"

/* Bytes of client text in one log field. */
#define AUTH_LOG_FIELD		128

enum auth_req_kind {
	AUTH_REQ_SASL,		/* AUTH/CONT on a client connection */
	AUTH_REQ_USERDB,	/* TICKET/USERDB on the master connection */
};

enum auth_req_state {
	AUTH_REQ_HOLD,		/* waiting for the address's penalty */
	AUTH_REQ_BUSY,		/* a worker runs it */
	AUTH_REQ_WAIT,		/* challenge sent, waiting for CONT */
	AUTH_REQ_DELAYED,	/* FAIL held for the failure delay */
};

struct auth_conn;

struct auth_req {
	struct auth_req		*next;
	struct auth_req		*prev;
	struct auth_conn	*conn;		/* NULL: orphaned */
	enum auth_req_kind	 kind;
	enum auth_req_state	 state;
	unsigned long long	 id;
	struct timer		*timer;
	/* SASL exchange */
	char			*mech;		/* canonical */
	char			*service;
	char			*rip;
	char			*lip;
	bool			 secured;
	struct sasl_server	*sasl;
	char			*fmt;		/* username format */
	/* loop -> worker: the client's data (NULL: none) */
	char			*input;
	/* worker -> loop */
	enum sasl_result	 result;
	struct buf		 chal;
	char			*error;
	char			*login_user;	/* name after the format */
	/* userdb lookup */
	char			*name;
	int			 uret;
	struct userdb_user	 u;
	/* a FAIL held for the failure delay */
	char			*reply;
};

struct auth_conn {
	struct auth_conn	*next;
	struct auth_conn	*prev;
	int			 fd;
	struct io		*io;
	bool			 master;
	bool			 dead;		/* close it in the loop */
	struct buf		 in;
	struct buf		 out;
	struct auth_req		*reqs;
	size_t			 nreqs;
	char			 peer[64];
};

static struct auth_conn *conns;
static size_t conn_count;
static struct workpool *pool;
static struct auth_penalty *penalty;
static struct auth_tickets *tickets;

static void auth_conn_close(struct auth_conn *conn);

/* ---- output ---- */

static void
auth_conn_update_io(struct auth_conn *conn)
{
	io_set_events(conn->io, IOLOOP_READ |
	    (conn->out.len > 0 ? IOLOOP_WRITE : 0));
}

static void
auth_conn_flush(struct auth_conn *conn)
{
	ssize_t n;

	while (!conn->dead && conn->out.len > 0) {
		n = send(conn->fd, conn->out.data, conn->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("client %s: write: %m", conn->peer);
				conn->dead = true;
			}
			break;
		}
		buf_consume(&conn->out, (size_t)n);
	}
	if (!conn->dead)
		auth_conn_update_io(conn);
}

/* Queue a reply line (without LF) and start writing it. */
static void
auth_conn_send(struct auth_conn *conn, const char *line)
{
	if (conn->dead)
		return;
	if (conn->out.len + strlen(line) + 1 > MAX_AUTH_OUTBUF) {
		log_warning("client %s does not read its replies: "
		    "disconnecting", conn->peer);
		conn->dead = true;
		return;
	}
	buf_append_str(&conn->out, line);
	buf_append_char(&conn->out, '\n');
	auth_conn_flush(conn);
}

static void __attribute__((format(printf, 2, 3)))
auth_conn_sendf(struct auth_conn *conn, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	auth_conn_send(conn, buf_cstr(&b));
	buf_free(&b);
}

/* Close conn if something marked it dead; call at the end of callbacks. */
static void
auth_conn_check(struct auth_conn *conn)
{
	if (conn != NULL && conn->dead)
		auth_conn_close(conn);
}

/* Log why conn is dropped; it is closed when back in the loop. */
static void __attribute__((format(printf, 2, 3)))
auth_conn_error(struct auth_conn *conn, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("client %s: %s: disconnecting", conn->peer, msg);
	conn->dead = true;
}

/* ---- requests ---- */

static struct auth_req *
auth_req_find(struct auth_conn *conn, unsigned long long id)
{
	struct auth_req *req;

	for (req = conn->reqs; req != NULL; req = req->next)
		if (req->id == id)
			return req;
	return NULL;
}

static struct auth_req *
auth_req_new(struct auth_conn *conn, enum auth_req_kind kind,
    unsigned long long id)
{
	struct auth_req *req = xcalloc(1, sizeof(*req));

	req->conn = conn;
	req->kind = kind;
	req->id = id;
	req->state = AUTH_REQ_HOLD;
	buf_init(&req->chal, 0);
	req->next = conn->reqs;
	if (conn->reqs != NULL)
		conn->reqs->prev = req;
	conn->reqs = req;
	conn->nreqs++;
	return req;
}

static void
auth_req_unlink(struct auth_req *req)
{
	struct auth_conn *conn = req->conn;

	if (conn == NULL)
		return;
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		conn->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->next = req->prev = NULL;
	req->conn = NULL;
	conn->nreqs--;
}

static void
auth_str_wipe_free(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void
auth_req_free(struct auth_req *req)
{
	auth_req_unlink(req);
	timer_remove(&req->timer);
	sasl_server_free(&req->sasl);
	free(req->mech);
	free(req->service);
	free(req->rip);
	free(req->lip);
	free(req->fmt);
	auth_str_wipe_free(&req->input);
	if (req->chal.data != NULL)
		explicit_bzero(req->chal.data, req->chal.len);
	buf_free(&req->chal);
	free(req->error);
	free(req->login_user);
	free(req->name);
	userdb_user_free(&req->u);
	free(req->reply);
	free(req);
}

/* xtext of s for a reply field (malloc'ed). */
static char *
auth_x(const char *s)
{
	return xtext_encode(s, strlen(s));
}

/* Client text made safe for a log field. */
static const char *
auth_log_str(char *dst, size_t size, const char *s)
{
	if (s == NULL)
		return "";
	return log_escape(dst, size, s, strlen(s));
}

/* The name the client claimed, once known. */
static const char *
auth_req_claimed(const struct auth_req *req)
{
	return req->sasl != NULL ? sasl_server_user(req->sasl) : NULL;
}

/* One log line about an exchange: what, then the usual fields. */
static void
auth_req_log(const struct auth_req *req, int level, const char *what,
    const char *user, const char *reason)
{
	char u[AUTH_LOG_FIELD + 4], rip[AUTH_LOG_FIELD + 4];
	char lip[AUTH_LOG_FIELD + 4], svc[AUTH_LOG_FIELD + 4];
	char why[AUTH_LOG_FIELD + 4];
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "%s: user=<%s>, method=%s, rip=%s, lip=%s, service=%s",
	    what, auth_log_str(u, sizeof(u), user), req->mech,
	    auth_log_str(rip, sizeof(rip), req->rip),
	    auth_log_str(lip, sizeof(lip), req->lip),
	    auth_log_str(svc, sizeof(svc), req->service));
	if (reason != NULL)
		buf_printf(&b, ", reason=%s",
		    auth_log_str(why, sizeof(why), reason));
	switch (level) {
	case 0:
		log_debug("%s", buf_cstr(&b));
		break;
	case 1:
		log_info("%s", buf_cstr(&b));
		break;
	default:
		log_warning("%s", buf_cstr(&b));
		break;
	}
	buf_free(&b);
}

/* A FAIL reply for req (malloc'ed line). */
static char *
auth_req_fail_line(const struct auth_req *req, bool temp, const char *reason)
{
	const char *claimed = auth_req_claimed(req);
	struct buf b;
	char *x;

	buf_init(&b, 0);
	buf_printf(&b, "FAIL %llu", req->id);
	if (claimed != NULL) {
		x = auth_x(claimed);
		buf_printf(&b, " user=%s", x);
		free(x);
	}
	if (temp)
		buf_append_str(&b, " temp");
	if (reason != NULL) {
		x = auth_x(reason);
		buf_printf(&b, " reason=%s", x);
		free(x);
	}
	return buf_steal(&b);
}

/* Answer req with FAIL now and forget it (not a password failure). */
static void
auth_req_fail_now(struct auth_req *req, bool temp, const char *reason)
{
	char *line = auth_req_fail_line(req, temp, reason);

	if (req->conn != NULL)
		auth_conn_send(req->conn, line);
	free(line);
	auth_req_free(req);
}

/*
 * auth_username_format (Dovecot): %u the name, %n its local part, %d its
 * domain, %% a percent sign; L or U before the letter lower- or
 * upper-cases the value ("%Lu", the default, lower-cases the name).
 */
static char *
auth_user_format(const char *fmt, const char *user)
{
	const char *at = strrchr(user, '@'), *src, *p;
	size_t len, i;
	struct buf b;
	char mod;

	if (fmt == NULL || *fmt == '\0')
		return xstrdup(user);
	buf_init(&b, 0);
	for (p = fmt; *p != '\0'; p++) {
		if (*p != '%') {
			buf_append_char(&b, *p);
			continue;
		}
		mod = 0;
		if (p[1] == 'L' || p[1] == 'U')
			mod = *++p;
		switch (p[1]) {
		case 'u':
			src = user;
			len = strlen(user);
			break;
		case 'n':
			src = user;
			len = at != NULL ? (size_t)(at - user) : strlen(user);
			break;
		case 'd':
			src = at != NULL ? at + 1 : "";
			len = strlen(src);
			break;
		case '%':
			buf_append_char(&b, '%');
			p++;
			continue;
		default:
			/* Not a variable: keep it as written. */
			buf_append_char(&b, '%');
			if (mod != 0)
				buf_append_char(&b, mod);
			continue;
		}
		p++;
		for (i = 0; i < len; i++) {
			char c = src[i];

			if (mod == 'L' && c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			else if (mod == 'U' && c >= 'a' && c <= 'z')
				c -= 'a' - 'A';
			buf_append_char(&b, c);
		}
	}
	return buf_steal(&b);
}

/*
 * The lookup the SASL mechanisms call, in a worker thread: the name
 * goes through auth_username_format first, and the result is what the
 * user is called from then on.
 */
static int
auth_lookup(enum sasl_lookup_op op, const char *user, const char *password,
    char **secret_r, void *ctx, const char **error_r)
{
	struct auth_req *req = ctx;

	free(req->login_user);
	req->login_user = auth_user_format(req->fmt, user);
	return passdb_sasl_lookup(op, req->login_user, password, secret_r,
	    NULL, error_r);
}

/* Worker thread: one SASL step. */
static void
auth_req_work(void *ctx)
{
	struct auth_req *req = ctx;
	const char *error = NULL;

	pthread_rwlock_rdlock(&authd_cfg_lock);
	req->result = sasl_server_step_base64(req->sasl, req->input,
	    &req->chal, &error);
	pthread_rwlock_unlock(&authd_cfg_lock);
	free(req->error);
	req->error = xstrdup(error != NULL ? error : "");
	auth_str_wipe_free(&req->input);
}

static void
auth_req_delayed_cb(void *ctx)
{
	struct auth_req *req = ctx;
	struct auth_conn *conn = req->conn;

	req->timer = NULL;
	if (conn != NULL)
		auth_conn_send(conn, req->reply);
	auth_req_free(req);
	auth_conn_check(conn);
}

static void
auth_req_cont_timeout_cb(void *ctx)
{
	struct auth_req *req = ctx;
	struct auth_conn *conn = req->conn;

	req->timer = NULL;
	auth_req_log(req, 0, "auth timed out", auth_req_claimed(req),
	    "no response from the client");
	auth_req_fail_now(req, false, "timed out");
	auth_conn_check(conn);
}

static void
auth_req_ok(struct auth_req *req)
{
	const char *user = req->login_user != NULL ? req->login_user :
	    auth_req_claimed(req);
	char ticket[AUTH_TICKET_LEN + 1];
	struct buf b;
	char *x;

	if (user == NULL)
		user = "";
	auth_req_log(req, 1, "auth ok", user, NULL);
	if (req->conn == NULL)
		return;
	x = auth_x(user);
	buf_init(&b, 0);
	buf_printf(&b, "OK %llu user=%s", req->id, x);
	free(x);
	/* Only login processes hand sessions over (to posternd). */
	if (strcmp(req->service, "pop3") == 0 ||
	    strcmp(req->service, "imap") == 0) {
		auth_tickets_issue(tickets, user, ioloop_now_ms(), ticket);
		buf_printf(&b, " ticket=%s", ticket);
		explicit_bzero(ticket, sizeof(ticket));
	}
	auth_conn_send(req->conn, buf_cstr(&b));
	explicit_bzero(b.data, b.len);
	buf_free(&b);
}

/* Loop thread: the worker finished a step. */
static void
auth_req_done(void *ctx)
{
	struct auth_req *req = ctx;
	struct auth_conn *conn = req->conn;
	uint64_t delay;
	char *line;

	switch (req->result) {
	case SASL_CONTINUE:
		if (conn == NULL)
			break;
		if (req->chal.len > 0)
			auth_conn_sendf(conn, "CONT %llu %s", req->id,
			    buf_cstr(&req->chal));
		else
			auth_conn_sendf(conn, "CONT %llu", req->id);
		req->state = AUTH_REQ_WAIT;
		req->timer = timer_add(AUTH_CONT_TIMEOUT_MS,
		    auth_req_cont_timeout_cb, req);
		auth_conn_check(conn);
		return;
	case SASL_OK:
		auth_req_ok(req);
		break;
	case SASL_FAIL:
		/* Unknown user and wrong password alike (DESIGN §7). */
		auth_req_log(req, 1, "auth failed", auth_req_claimed(req),
		    req->error);
		delay = auth_penalty_fail(penalty, req->rip, ioloop_now_ms(),
		    authd_set.failure_delay_ms);
		if (conn == NULL)
			break;
		line = auth_req_fail_line(req, false, "authentication failed");
		if (delay == 0) {
			auth_conn_send(conn, line);
			free(line);
			break;
		}
		req->reply = line;
		req->state = AUTH_REQ_DELAYED;
		req->timer = timer_add(delay, auth_req_delayed_cb, req);
		auth_conn_check(conn);
		return;
	case SASL_TEMPFAIL:
		auth_req_log(req, 2, "auth temporary failure",
		    auth_req_claimed(req), req->error);
		if (conn == NULL)
			break;
		line = auth_req_fail_line(req, true, req->error);
		auth_conn_send(conn, line);
		free(line);
		break;
	}
	auth_req_free(req);
	auth_conn_check(conn);
}

static void
auth_req_submit(struct auth_req *req)
{
	timer_remove(&req->timer);
	req->state = AUTH_REQ_BUSY;
	buf_reset(&req->chal);
	workpool_submit(pool, auth_req_work, auth_req_done, req);
}

static void
auth_req_hold_cb(void *ctx)
{
	struct auth_req *req = ctx;

	req->timer = NULL;
	auth_req_submit(req);
}

/* ---- client requests: AUTH, CONT ---- */

/* "key=value" field: the xtext-decoded value into *dst (once). */
static int
auth_field(const char *field, const char *key, char **dst)
{
	size_t klen = strlen(key);

	if (strncmp(field, key, klen) != 0 || field[klen] != '=')
		return 0;
	if (*dst != NULL)
		return -1;		/* twice */
	if ((*dst = xtext_decode(field + klen + 1)) == NULL)
		return -1;
	return 1;
}

static int
auth_parse_id(const char *s, unsigned long long *id_r)
{
	long long v;

	if (str_to_ll(s, 0, LLONG_MAX, &v) < 0)
		return -1;
	*id_r = (unsigned long long)v;
	return 0;
}

/*
 * AUTH <id> <mech> service=<s> rip=<ip> lip=<ip> [secured] [resp=<b64>]
 */
static void
auth_cmd_auth(struct auth_conn *conn, char **f, size_t n)
{
	char *mech = NULL, *service = NULL, *rip = NULL, *lip = NULL;
	const char *resp = NULL;
	unsigned long long id;
	struct auth_req *req;
	bool secured = false;
	uint64_t now, ready;
	size_t i;
	int r;

	if (n < 3 || auth_parse_id(f[1], &id) < 0) {
		auth_conn_error(conn, "malformed AUTH line");
		return;
	}
	if (auth_req_find(conn, id) != NULL) {
		auth_conn_error(conn, "request id %llu is in use", id);
		return;
	}
	if ((mech = xtext_decode(f[2])) == NULL)
		goto malformed;
	for (i = 0; mech[i] != '\0'; i++)
		if (mech[i] >= 'a' && mech[i] <= 'z')
			mech[i] -= 'a' - 'A';
	for (i = 3; i < n; i++) {
		if (strcmp(f[i], "secured") == 0) {
			secured = true;
			continue;
		}
		if (strncmp(f[i], "resp=", 5) == 0) {
			/* base64 travels as it is ("=": empty response). */
			if (resp != NULL || f[i][5] == '\0')
				goto malformed;
			resp = f[i] + 5;
			continue;
		}
		if ((r = auth_field(f[i], "service", &service)) == 0 &&
		    (r = auth_field(f[i], "rip", &rip)) == 0)
			r = auth_field(f[i], "lip", &lip);
		if (r < 0)
			goto malformed;
		/* Other fields and flags: later additions, ignored. */
	}
	if (service == NULL || service[0] == '\0')
		goto malformed;

	req = auth_req_new(conn, AUTH_REQ_SASL, id);
	req->mech = mech;
	req->service = service;
	req->rip = rip != NULL ? rip : xstrdup("");
	req->lip = lip != NULL ? lip : xstrdup("");
	req->secured = secured;
	if (conn->nreqs > MAX_AUTH_CONN_REQUESTS) {
		auth_req_log(req, 2, "auth refused", NULL,
		    "too many requests on one connection");
		auth_req_fail_now(req, true, "too many requests");
		return;
	}
	if (!authd_mech_offered(mech)) {
		auth_req_log(req, 1, "auth refused", NULL,
		    "unsupported mechanism");
		auth_req_fail_now(req, false, "unsupported mechanism");
		return;
	}
	if (authd_mech_plaintext(mech) && !secured &&
	    authd_set.disable_plaintext) {
		/* disable_plaintext_auth: no password in the clear. */
		auth_req_log(req, 1, "auth refused", NULL,
		    "plaintext authentication disallowed on non-secure "
		    "connection");
		auth_req_fail_now(req, false, "plaintext authentication "
		    "disallowed on non-secure connection");
		return;
	}
	req->fmt = xstrdup(authd_set.username_format);
	req->sasl = sasl_server_new(mech, service, authd_set.hostname,
	    auth_lookup, req);
	if (req->sasl == NULL) {
		auth_req_fail_now(req, false, "unsupported mechanism");
		return;
	}
	if (resp != NULL)
		req->input = xstrdup(resp);
	/* An address with failures waits until its last FAIL is out. */
	now = ioloop_now_ms();
	ready = auth_penalty_ready_at(penalty, req->rip, now);
	if (ready > now)
		req->timer = timer_add(ready - now, auth_req_hold_cb, req);
	else
		auth_req_submit(req);
	return;

malformed:
	free(mech);
	free(service);
	free(rip);
	free(lip);
	auth_conn_error(conn, "malformed AUTH line");
}

/* CONT <id> [<b64>|*] */
static void
auth_cmd_cont(struct auth_conn *conn, char **f, size_t n)
{
	unsigned long long id;
	struct auth_req *req;

	if (n < 2 || n > 3 || auth_parse_id(f[1], &id) < 0) {
		auth_conn_error(conn, "malformed CONT line");
		return;
	}
	if ((req = auth_req_find(conn, id)) == NULL) {
		/* It may have timed out as the answer crossed: ignore. */
		log_debug("client %s: CONT for unknown request %llu",
		    conn->peer, id);
		return;
	}
	if (req->kind != AUTH_REQ_SASL || req->state != AUTH_REQ_WAIT) {
		auth_conn_error(conn, "CONT for request %llu, which waits "
		    "for no response", id);
		return;
	}
	if (n == 3 && strcmp(f[2], "*") == 0) {
		/* RFC 4954 §4: the client cancelled; no penalty. */
		auth_req_log(req, 0, "auth cancelled", auth_req_claimed(req),
		    NULL);
		auth_req_fail_now(req, false, "cancelled");
		return;
	}
	req->input = xstrdup(n == 3 ? f[2] : "");
	auth_req_submit(req);
}

/* ---- master requests: TICKET, USERDB ---- */

static void
auth_userdb_work(void *ctx)
{
	struct auth_req *req = ctx;
	const char *error = NULL;

	pthread_rwlock_rdlock(&authd_cfg_lock);
	req->uret = userdb_lookup(req->name, &req->u, &error);
	pthread_rwlock_unlock(&authd_cfg_lock);
	free(req->error);
	req->error = xstrdup(error != NULL ? error : "userdb lookup failed");
}

static void
auth_userdb_done(void *ctx)
{
	struct auth_req *req = ctx;
	struct auth_conn *conn = req->conn;
	char *xu, *xh, *xm, *xr;

	if (req->uret < 0)
		log_warning("userdb lookup of %s failed: %s", req->name,
		    req->error);
	if (conn == NULL) {
		auth_req_free(req);
		return;
	}
	if (req->uret > 0) {
		xu = auth_x(req->u.name);
		xh = auth_x(req->u.home != NULL ? req->u.home : "");
		xm = auth_x(authd_set.mail_location);
		auth_conn_sendf(conn, "USER %llu user=%s uid=%lu gid=%lu "
		    "home=%s mail=%s", req->id, xu, (unsigned long)req->u.uid,
		    (unsigned long)req->u.gid, xh, xm);
		free(xu);
		free(xh);
		free(xm);
	} else if (req->uret == 0)
		auth_conn_sendf(conn, "NOTFOUND %llu", req->id);
	else {
		xr = auth_x(req->error);
		auth_conn_sendf(conn, "FAIL %llu temp reason=%s", req->id, xr);
		free(xr);
	}
	auth_req_free(req);
	auth_conn_check(conn);
}

/* TICKET <id> <ticket> | USERDB <id> <name> */
static void
auth_cmd_master(struct auth_conn *conn, char **f, size_t n)
{
	bool ticket = strcmp(f[0], "TICKET") == 0;
	unsigned long long id;
	struct auth_req *req;
	char *name;

	if (n != 3 || auth_parse_id(f[1], &id) < 0) {
		auth_conn_error(conn, "malformed %s line", f[0]);
		return;
	}
	if (auth_req_find(conn, id) != NULL) {
		auth_conn_error(conn, "request id %llu is in use", id);
		return;
	}
	if (ticket)
		name = auth_tickets_redeem(tickets, f[2], ioloop_now_ms());
	else if ((name = xtext_decode(f[2])) == NULL) {
		auth_conn_error(conn, "malformed USERDB line");
		return;
	}
	if (name == NULL) {
		log_info("ticket unknown, used or expired");
		auth_conn_sendf(conn, "NOTFOUND %llu", id);
		return;
	}
	req = auth_req_new(conn, AUTH_REQ_USERDB, id);
	req->name = name;
	req->state = AUTH_REQ_BUSY;
	workpool_submit(pool, auth_userdb_work, auth_userdb_done, req);
}

/* ---- connections ---- */

static void
auth_conn_line(struct auth_conn *conn, const char *line, size_t len)
{
	char cmd[32];
	char **f;
	size_t n;

	if (memchr(line, '\0', len) != NULL) {
		auth_conn_error(conn, "NUL byte in a request");
		return;
	}
	f = strv_split(line, " ");
	n = strv_len(f);
	if (n == 0)
		auth_conn_error(conn, "empty request line");
	else if (!conn->master && strcmp(f[0], "AUTH") == 0)
		auth_cmd_auth(conn, f, n);
	else if (!conn->master && strcmp(f[0], "CONT") == 0)
		auth_cmd_cont(conn, f, n);
	else if (conn->master && (strcmp(f[0], "TICKET") == 0 ||
	    strcmp(f[0], "USERDB") == 0))
		auth_cmd_master(conn, f, n);
	else {
		/* Only the command: the rest may hold a password. */
		auth_conn_error(conn, "unknown command \"%s\"",
		    log_escape(cmd, sizeof(cmd), f[0], strlen(f[0])));
	}
	strv_free(&f);
}

static void
auth_conn_read(struct auth_conn *conn)
{
	char *nl;
	ssize_t n;

	if (buf_reserve(&conn->in, 4096) < 0) {
		auth_conn_error(conn, "request line longer than %d bytes",
		    MAX_IPC_LINE);
		return;
	}
	do {
		n = read(conn->fd, conn->in.data + conn->in.len, 4096);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_debug("client %s: read: %m", conn->peer);
			conn->dead = true;
		}
		return;
	}
	if (n == 0) {
		log_debug("client %s disconnected", conn->peer);
		conn->dead = true;
		return;
	}
	conn->in.len += (size_t)n;
	while (!conn->dead &&
	    (nl = memchr(conn->in.data, '\n', conn->in.len)) != NULL) {
		size_t len = (size_t)(nl - conn->in.data);

		if (len > MAX_IPC_LINE) {
			auth_conn_error(conn, "request line longer than %d "
			    "bytes", MAX_IPC_LINE);
			break;
		}
		*nl = '\0';
		auth_conn_line(conn, conn->in.data, len);
		/* Wipe: an AUTH line may carry a password in base64. */
		explicit_bzero(conn->in.data, len);
		buf_consume(&conn->in, len + 1);
	}
	if (!conn->dead && conn->in.len > MAX_IPC_LINE)
		auth_conn_error(conn, "request line longer than %d bytes",
		    MAX_IPC_LINE);
}

static void
auth_conn_io(int fd, int events, void *ctx)
{
	struct auth_conn *conn = ctx;

	(void)fd;
	if (events & IOLOOP_WRITE)
		auth_conn_flush(conn);
	if (!conn->dead && (events & IOLOOP_READ))
		auth_conn_read(conn);
	if (!conn->dead)
		auth_conn_flush(conn);
	auth_conn_check(conn);
}

static void
auth_conn_close(struct auth_conn *conn)
{
	struct auth_req *req, *next;

	for (req = conn->reqs; req != NULL; req = next) {
		next = req->next;
		if (req->state == AUTH_REQ_BUSY)
			auth_req_unlink(req);	/* freed when done */
		else
			auth_req_free(req);
	}
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn_count--;
	io_remove(&conn->io);
	(void)close(conn->fd);
	if (conn->in.data != NULL)
		explicit_bzero(conn->in.data, conn->in.len);
	buf_free(&conn->in);
	buf_free(&conn->out);
	free(conn);
}

/* VERSION, the mechanisms, DONE: sent before anything is read. */
static void
auth_conn_handshake(struct auth_conn *conn)
{
	char **m;

	auth_conn_send(conn, "VERSION 1");
	for (m = authd_set.mechs; m != NULL && *m != NULL; m++)
		auth_conn_sendf(conn, "MECH %s%s", *m,
		    authd_mech_plaintext(*m) ? " plaintext" : "");
	auth_conn_send(conn, "DONE");
}

void
auth_conn_accept(int listen_fd, bool master)
{
	struct auth_conn *conn;
	struct ucred cred;
	socklen_t len;
	int fd, i;

	/* A few per wake-up, so one busy socket does not starve others. */
	for (i = 0; i < 16; i++) {
		fd = accept4(listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warning("accept: %m");
			return;
		}
		if (conn_count >= MAX_AUTH_CONNS) {
			log_warning("%d connections already: refusing one",
			    MAX_AUTH_CONNS);
			(void)close(fd);
			continue;
		}
		conn = xcalloc(1, sizeof(*conn));
		conn->fd = fd;
		conn->master = master;
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			snprintf(conn->peer, sizeof(conn->peer),
			    "pid=%ld uid=%ld%s", (long)cred.pid,
			    (long)cred.uid, master ? " (master)" : "");
		else
			snprintf(conn->peer, sizeof(conn->peer), "fd=%d", fd);
		/* A whole line, its LF, and one read beyond it. */
		buf_init(&conn->in, MAX_IPC_LINE + 1 + 4096);
		buf_init(&conn->out, 0);
		conn->io = io_add(fd, IOLOOP_READ, auth_conn_io, conn);
		conn->next = conns;
		if (conns != NULL)
			conns->prev = conn;
		conns = conn;
		conn_count++;
		log_debug("client %s connected", conn->peer);
		if (!master)
			auth_conn_handshake(conn);
		auth_conn_check(conn);
	}
}

void
auth_conn_init(int workers)
{
	if (workers < 1)
		workers = 1;
	pool = workpool_new_stack("auth", workers, AUTH_WORKER_STACK);
	penalty = auth_penalty_new(0);
	tickets = auth_tickets_new(0);
}

void
auth_conn_deinit(void)
{
	while (conns != NULL)
		auth_conn_close(conns);
	workpool_stop(&pool);
	/* Busy requests stay with their workers until the process exits. */
	auth_penalty_free(&penalty);
	auth_tickets_free(&tickets);
}
