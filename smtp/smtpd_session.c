/*
 * smtpd_session: one SMTP connection.  Owns the socket, the bounded input
 * and output buffers, the I/O state (enum smtpd_state, changed only by
 * smtpd_session_enter_state()), the idle timeout, the error counter with
 * its delay and hard limit, and reply output with RFC 2920 pipelining:
 * every complete command already in the input buffer is executed and its
 * reply queued; queued replies are written when the input runs dry, when
 * a command ends a pipeline group, or when the session parks.  While a
 * session is parked (queue commit in a worker thread, delivery at accept
 * by local, error delay) or its output is not drained, its input is not
 * read (DESIGN §12 back-pressure).
 *
 * What commands mean is smtpd_cmd.c's business, what happens to message
 * bytes smtpd_data.c's; this file only moves bytes and keeps time.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "local_client.h"
#include "log.h"
#include "smtpd.h"
#include "tlsio.h"
#include "xmalloc.h"

/* Bytes asked from the kernel per read(2). */
#define SMTPD_READ_SIZE	(16 * 1024)

static struct smtpd_session *smtpd_sessions;
static unsigned smtpd_nsessions;
static uint64_t smtpd_next_id = 1;

static const char *const smtpd_state_names[] = {
	"CMD", "DATA", "BDAT", "COMMIT", "LOCAL", "SLEEP", "TLS", "CLOSE",
	"AUTH", "AUTH-WAIT", "CHECK"
};

static const char *const smtpd_stat_names[SMTPD_STAT_COUNT] = {
	/* Postfix's order: "ehlo=2 starttls=1 auth=1 mail=1 ..." */
	"ehlo", "helo", "starttls", "auth", "mail", "rcpt", "bdat", "data",
	"rset", "noop", "vrfy", "expn", "help", "etrn", "quit", "unknown"
};

static void	smtpd_session_io(int fd, int events, void *ctx);
static void	smtpd_session_process(struct smtpd_session *s);
static void	smtpd_session_done(struct smtpd_session *s);
static void	smtpd_session_handshake(struct smtpd_session *s);
static void	smtpd_session_process_loop(struct smtpd_session *s);

/* ---- identity ---- */

const char *
smtpd_session_client(const struct smtpd_session *s)
{
	static char buf[300];

	snprintf(buf, sizeof(buf), "%s[%s]", s->name, s->addr);
	return buf;
}

const char *
smtpd_session_proto(const struct smtpd_session *s)
{
	bool tls = smtpd_session_tls_active(s);
	bool auth = s->sasl_user != NULL;

	if (s->local)
		return "LOCAL";
	/* RFC 6531 §3.7.3 and its IANA registry: UTF8SMTP for ESMTP;
	 * RFC 3848: ESMTPS with TLS, ESMTPA after AUTH, ESMTPSA both. */
	if (s->txn != NULL && s->txn->smtputf8) {
		if (tls)
			return auth ? "UTF8SMTPSA" : "UTF8SMTPS";
		return auth ? "UTF8SMTPA" : "UTF8SMTP";
	}
	if (!s->esmtp)
		return "SMTP";
	if (tls)
		return auth ? "ESMTPSA" : "ESMTPS";
	return auth ? "ESMTPA" : "ESMTP";
}

bool
smtpd_session_tls_active(const struct smtpd_session *s)
{
	return s->tls != NULL && tls_conn_is_established(s->tls);
}

const char *
smtpd_session_tls_info(const struct smtpd_session *s)
{
	return smtpd_session_tls_active(s) ? tls_conn_info(s->tls) : NULL;
}

static void
smtpd_session_identify(struct smtpd_session *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (s->local) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);

		s->uid = (uid_t)-1;
		if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
			s->uid = cred.uid;
		s->name = xstrdup("localhost");
		s->addr = xstrdup("local");
		s->rfc_addr = xstrdup("local");
		return;
	}
	memset(&ss, 0, sizeof(ss));
	if (getpeername(s->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    netaddr_from_sockaddr((struct sockaddr *)&ss, &s->naddr) < 0) {
		s->name = xstrdup("unknown");
		s->addr = xstrdup("unknown");
		s->rfc_addr = xstrdup("unknown");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		s->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* Show a mapped client as the IPv4 client it is. */
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host,
			    sizeof(host));
			s->addr = xstrdup(host);
			s->rfc_addr = xstrdup(host);
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, host,
			    sizeof(host));
			s->addr = xstrdup(host);
			s->rfc_addr = xasprintf("IPv6:%s", host);
		}
		s->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
		    in6->sin6_addr.s6_addr[12] == 127);
		s->name = xstrdup(s->loopback ? "localhost" : "unknown");
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		s->port = ntohs(in->sin_port);
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		s->addr = xstrdup(host);
		s->rfc_addr = xstrdup(host);
		/* No blocking DNS on the loop: loopback is "localhost". */
		s->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		s->name = xstrdup(s->loopback ? "localhost" : "unknown");
	}
}

/* ---- lifecycle ---- */

static void
smtpd_session_timeout(void *ctx)
{
	struct smtpd_session *s = ctx;

	s->timeout = NULL;
	if (s->state == SMTPD_STATE_TLS) {
		/* No plaintext reply inside a half-done handshake. */
		log_info("timeout during TLS handshake from %s",
		    smtpd_session_client(s));
		buf_reset(&s->out);
		s->dead = true;
		smtpd_session_done(s);
		return;
	}
	log_info("timeout after %s from %s", s->last_cmd,
	    smtpd_session_client(s));
	smtpd_session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
	    s->set->myhostname);
	smtpd_session_close(s);
	s->dead = true;		/* no waiting for a sleeping client */
	smtpd_session_done(s);
}

/* Parked: waiting for us, not for the client (no idle timeout). */
static bool
smtpd_state_parked(enum smtpd_state state)
{
	return state == SMTPD_STATE_COMMIT || state == SMTPD_STATE_LOCAL ||
	    state == SMTPD_STATE_SLEEP;
}

static void
smtpd_session_arm_timeout(struct smtpd_session *s)
{
	timer_remove(&s->timeout);
	if (!smtpd_state_parked(s->state))
		s->timeout = timer_add(s->set->timeout_ms,
		    smtpd_session_timeout, s);
}

/*
 * Whether the client already has smtpd_client_connection_count_limit
 * sessions (Postfix's limit; $mynetworks clients are exempt, as with
 * Postfix's default smtpd_client_event_limit_exceptions).
 */
static bool
smtpd_session_over_ip_limit(const struct smtpd_session *s)
{
	const struct smtpd_session *o;
	long long limit = cfg_get_int("smtpd_client_connection_count_limit");
	long long n = 0;

	if (limit <= 0 || s->local || s->addr == NULL ||
	    netaddr_list_match(s->set->mynetworks, &s->naddr))
		return false;
	for (o = smtpd_sessions; o != NULL; o = o->next)
		if (o != s && !o->local && o->addr != NULL &&
		    strcmp(o->addr, s->addr) == 0 && ++n >= limit)
			return true;
	return false;
}

void
smtpd_session_new(int fd, enum smtpd_service service)
{
	struct smtpd_session *s = xcalloc(1, sizeof(*s));
	bool smtps = service == SMTPD_SERVICE_SMTPS;

	s->id = smtpd_next_id++;
	s->fd = fd;
	s->service = service;
	s->local = service == SMTPD_SERVICE_PICKUP;
	s->smtps = smtps;
	s->set = smtpd_settings_get();
	s->phase = SMTPD_PHASE_INIT;
	s->last_cmd = "CONNECT";
	buf_init(&s->in, SMTPD_MAX_INBUF);
	buf_init(&s->out, 0);
	smtpd_line_parser_init(&s->lp);
	smtpd_session_identify(s);

	s->next = smtpd_sessions;
	if (smtpd_sessions != NULL)
		smtpd_sessions->prev = s;
	smtpd_sessions = s;
	smtpd_nsessions++;

	s->io = io_add(fd, 0, smtpd_session_io, s);
	/* The client's name (DNS, in a worker) and, with
	 * smtpd_delay_reject = no, the client restrictions come first;
	 * smtpd_check.c calls smtpd_session_connected() when parked. */
	if (smtpd_check_connect(s)) {
		smtpd_session_done(s);
		return;
	}
	smtpd_session_connected(s);
}

/* The greeting, or the refusal of smtpd_client_restrictions. */
static void
smtpd_session_greet(struct smtpd_session *s)
{
	const char *deny = smtpd_check_denied(s);

	if (deny != NULL)
		smtpd_session_reply(s, "%s", deny);
	else
		buf_printf(&s->out, "220 %s\r\n", s->set->banner);
}

void
smtpd_session_connected(struct smtpd_session *s)
{
	bool smtps = s->smtps;
	int fd = s->fd;

	if (s->local)
		log_info("connect from %s uid=%ld", smtpd_session_client(s),
		    (long)s->uid);
	else
		log_info("connect from %s", smtpd_session_client(s));
	if (smtpd_nsessions > SMTPD_MAX_SESSIONS) {
		log_warning("too many sessions (%u): rejecting %s",
		    smtpd_nsessions, smtpd_session_client(s));
		smtpd_session_reply(s, "421 4.3.2 %s Service temporarily "
		    "unavailable", s->set->myhostname);
		smtpd_session_close(s);
	} else if (smtpd_session_over_ip_limit(s)) {
		log_warning("Connection concurrency limit exceeded: %s "
		    "(smtpd_client_connection_count_limit)",
		    smtpd_session_client(s));
		smtpd_session_reply(s, "421 4.7.0 %s Error: too many "
		    "connections from %s", s->set->myhostname, s->addr);
		smtpd_session_close(s);
	} else if (smtps && s->set->tls_ctx == NULL) {
		log_warning("smtps connection from %s: no usable certificate",
		    smtpd_session_client(s));
		s->dead = true;
	} else if (smtps) {
		/* RFC 8314 §3.3: the handshake comes first. */
		s->tls = tls_conn_new(s->set->tls_ctx, fd);
		smtpd_session_enter_state(s, SMTPD_STATE_TLS);
		smtpd_session_handshake(s);
	} else {
		smtpd_session_greet(s);
		smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	}
	smtpd_session_flush(s);
	smtpd_session_done(s);
}

static void
smtpd_session_log_disconnect(struct smtpd_session *s)
{
	struct buf line;
	unsigned ok = 0, total = 0;
	int i;

	buf_init(&line, 0);
	buf_printf(&line, "disconnect from %s", smtpd_session_client(s));
	for (i = 0; i < SMTPD_STAT_COUNT; i++) {
		if (s->stat_total[i] == 0)
			continue;
		ok += s->stat_ok[i];
		total += s->stat_total[i];
		if (s->stat_ok[i] == s->stat_total[i])
			buf_printf(&line, " %s=%u", smtpd_stat_names[i],
			    s->stat_total[i]);
		else
			buf_printf(&line, " %s=%u/%u", smtpd_stat_names[i],
			    s->stat_ok[i], s->stat_total[i]);
	}
	if (ok == total)
		buf_printf(&line, " commands=%u", total);
	else
		buf_printf(&line, " commands=%u/%u", ok, total);
	log_info("%s", buf_cstr(&line));
	buf_free(&line);
}

static void
smtpd_session_free(struct smtpd_session *s)
{
	smtpd_session_log_disconnect(s);
	smtpd_auth_abort(s);
	smtpd_auth_reset(s);
	smtpd_check_session_free(s);
	io_remove(&s->io);
	timer_remove(&s->pending_timer);
	tls_conn_free(&s->tls);
	if (s->fd >= 0)
		close(s->fd);
	timer_remove(&s->timeout);
	timer_remove(&s->sleep_timer);
	smtpd_txn_free(&s->txn);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		smtpd_sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	smtpd_nsessions--;
	smtpd_settings_unref(&s->set);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s->bdat_reply);
	free(s->name);
	free(s->addr);
	free(s->rfc_addr);
	free(s->helo);
	free(s);
}

/* States that read the client's bytes. */
static bool
smtpd_state_reads(enum smtpd_state state)
{
	return state == SMTPD_STATE_CMD || state == SMTPD_STATE_DATA ||
	    state == SMTPD_STATE_BDAT || state == SMTPD_STATE_AUTH;
}

/* The session wants client input now. */
static bool
smtpd_session_wants_input(const struct smtpd_session *s)
{
	return smtpd_state_reads(s->state) && !s->eof && !s->dead &&
	    s->out.len < SMTPD_OUT_HIGH && s->in.len < s->in.max;
}

static void
smtpd_session_pending(void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending_timer = NULL;
	smtpd_session_io(s->fd, IOLOOP_READ, s);
}

static void
smtpd_session_update_io(struct smtpd_session *s)
{
	bool rd;

	if (s->state == SMTPD_STATE_TLS && s->tls != NULL) {
		/* Handshake: OpenSSL says what it waits for. */
		io_set_events(s->io, tlsio_handshake_events(s->tls));
		return;
	}
	rd = smtpd_session_wants_input(s);
	/* Records OpenSSL already took from the socket are invisible to
	 * epoll: come back for them from the loop. */
	if (rd && tlsio_pending(s->tls) && s->pending_timer == NULL)
		s->pending_timer = timer_add(0, smtpd_session_pending, s);
	io_set_events(s->io, tlsio_events(rd, s->tls_rwant, s->out.len > 0,
	    s->tls_wwant));
}

/*
 * The session ends while local delivers its message at accept: the
 * client never saw 250 and will send again, so the message is dropped
 * (copies local already made stay: a duplicate, never a loss).
 */
static void
smtpd_session_drop_local(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	if (t == NULL || t->lreq == NULL)
		return;
	local_client_cancel(&t->lreq);
	smtpd_session_count_stat(s, t->bdat ? SMTPD_STAT_BDAT :
	    SMTPD_STAT_DATA, false);
	log_info("%s: session ended during delivery at accept: message "
	    "dropped, the client will send it again", t->qid);
	smtpd_txn_free(&s->txn);	/* unlinks tmp/ID */
}

/*
 * End of every callback that touched s: free a dead session (unless a
 * worker still holds it for a commit), else recompute the I/O interest.
 */
static void
smtpd_session_done(struct smtpd_session *s)
{
	if (s->busy > 0)
		return;
	if (s->dead) {
		if (s->state == SMTPD_STATE_COMMIT) {
			/* Freed by smtpd_session_commit_done(). */
			io_set_events(s->io, 0);
			timer_remove(&s->timeout);
			return;
		}
		smtpd_session_drop_local(s);
		smtpd_session_free(s);
		return;
	}
	smtpd_session_update_io(s);
}

void
smtpd_session_enter_state(struct smtpd_session *s, enum smtpd_state state)
{
	if (s->state != state)
		log_debug("session %llu: %s -> %s",
		    (unsigned long long)s->id, smtpd_state_names[s->state],
		    smtpd_state_names[state]);
	s->state = state;
	if (smtpd_state_parked(state))
		timer_remove(&s->timeout);
	else if (s->timeout == NULL)
		smtpd_session_arm_timeout(s);
}

/* ---- output ---- */

static void
smtpd_session_count_error(struct smtpd_session *s, int code)
{
	s->last_code = code;
	if (code < 400 || code == 421)
		return;
	s->errors++;
	/* Postfix smtpd_soft_error_limit: delay every error reply from
	 * here on by smtpd_error_sleep_time. */
	if (s->errors >= s->set->soft_error_limit &&
	    s->set->error_sleep_ms > 0)
		s->sleep_pending = true;
}

void
smtpd_session_reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;
	size_t start = s->out.len;
	int code = 0;

	va_start(ap, fmt);
	(void)buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	(void)buf_append(&s->out, "\r\n", 2);
	if (s->out.len - start >= 3)
		code = (s->out.data[start] - '0') * 100 +
		    (s->out.data[start + 1] - '0') * 10 +
		    (s->out.data[start + 2] - '0');
	smtpd_session_count_error(s, code);
}

void
smtpd_session_reply_raw(struct smtpd_session *s, const char *text)
{
	(void)buf_append_str(&s->out, text);
	s->last_code = atoi(text);
}

void
smtpd_session_count_stat(struct smtpd_session *s, enum smtpd_stat stat,
    bool ok)
{
	s->stat_total[stat]++;
	if (ok)
		s->stat_ok[stat]++;
}

static void
smtpd_session_lost(struct smtpd_session *s)
{
	/* After QUIT or 421 a reset by the client is no news. */
	if (!s->dead && s->state != SMTPD_STATE_CLOSE)
		log_info("lost connection after %s from %s", s->last_cmd,
		    smtpd_session_client(s));
	s->dead = true;
}

void
smtpd_session_flush(struct smtpd_session *s)
{
	ssize_t n;

	if (s->dead)
		return;
	if (s->state == SMTPD_STATE_TLS && s->tls != NULL)
		return;		/* handshake under way: nothing to say */
	n = tlsio_flush(s->tls, s->fd, &s->out, &s->tls_wwant);
	if (n < 0) {
		smtpd_session_lost(s);
		return;
	}
	if (n > 0 && s->timeout != NULL)
		smtpd_session_arm_timeout(s);
	if (s->out.len == 0 && s->state == SMTPD_STATE_CLOSE)
		s->dead = true;
	if (s->out.len == 0 && s->state == SMTPD_STATE_TLS &&
	    s->tls == NULL) {
		/* The 220 to STARTTLS is out in plaintext: handshake. */
		s->tls = tls_conn_new(s->set->tls_ctx, s->fd);
		smtpd_session_handshake(s);
	}
}

void
smtpd_session_starttls(struct smtpd_session *s)
{
	/* RFC 3207 §4.2, CVE-2011-0411: commands the client pipelined
	 * after STARTTLS were sent in the clear and must not be taken as
	 * coming from inside TLS. */
	if (s->in.len > 0)
		log_info("discarding %zu bytes pipelined after STARTTLS "
		    "from %s", s->in.len, smtpd_session_client(s));
	buf_reset(&s->in);
	smtpd_line_parser_init(&s->lp);
	smtpd_session_enter_state(s, SMTPD_STATE_TLS);
}

/*
 * One step of the server handshake.  Done: log it, forget everything
 * said in plaintext (RFC 3207 §4.2: back to before EHLO) and greet the
 * smtps client.
 */
static void
smtpd_session_handshake(struct smtpd_session *s)
{
	if (tls_conn_handshake(s->tls) < 0) {
		if (errno == EAGAIN)
			return;		/* update_io waits for tls_conn_want */
		log_info("TLS handshake failed from %s: %s",
		    smtpd_session_client(s), tls_conn_error(s->tls));
		buf_reset(&s->out);
		s->dead = true;
		return;
	}
	log_info("Anonymous TLS connection established from %s: %s",
	    smtpd_session_client(s), tls_conn_info(s->tls));
	smtpd_txn_free(&s->txn);
	smtpd_auth_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->phase = SMTPD_PHASE_INIT;
	s->tls_rwant = 0;
	s->tls_wwant = 0;
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	smtpd_session_arm_timeout(s);
	if (s->smtps)
		smtpd_session_greet(s);
	smtpd_session_flush(s);
}

void
smtpd_session_close(struct smtpd_session *s)
{
	timer_remove(&s->sleep_timer);
	smtpd_session_enter_state(s, SMTPD_STATE_CLOSE);
	smtpd_session_flush(s);
}

/* ---- input ---- */

static void
smtpd_session_sleep_done(void *ctx)
{
	struct smtpd_session *s = ctx;

	s->sleep_timer = NULL;
	s->busy++;
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	smtpd_session_flush(s);
	smtpd_session_process(s);
	s->busy--;
	smtpd_session_done(s);
}

/* One chunk of BDAT data has been read completely. */
static void
smtpd_session_bdat_chunk_end(struct smtpd_session *s)
{
	if (s->bdat_discard) {
		s->bdat_discard = false;
		smtpd_session_count_stat(s, SMTPD_STAT_BDAT, false);
		smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		smtpd_session_reply(s, "%s", s->bdat_reply);
		free(s->bdat_reply);
		s->bdat_reply = NULL;
		return;
	}
	if (s->bdat_last) {
		smtpd_bdat_finish(&s->txn->bd, &s->txn->decoded);
		if (s->txn->decoded.len > 0)
			smtpd_data_input(s, s->txn->decoded.data,
			    s->txn->decoded.len);
		buf_reset(&s->txn->decoded);
		smtpd_data_end(s);
		return;
	}
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	if (smtpd_data_failed(s)) {
		/* RFC 3030 §2: the client sends no more chunks after an
		 * error; the transaction is over. */
		const char *reply = smtpd_data_error_reply(s);

		smtpd_data_log_reject(s, "BDAT", reply);
		smtpd_session_count_stat(s, SMTPD_STAT_BDAT, false);
		smtpd_session_reply(s, "%s", reply);
		smtpd_txn_free(&s->txn);
		s->phase = s->helo != NULL ? SMTPD_PHASE_HELO :
		    SMTPD_PHASE_INIT;
		return;
	}
	smtpd_session_count_stat(s, SMTPD_STAT_BDAT, true);
	smtpd_session_reply(s, "250 2.0.0 Ok: %llu octets",
	    (unsigned long long)s->bdat_chunk);
}

static bool
smtpd_session_idle(const struct smtpd_session *s)
{
	/* A BDAT transaction under way is not idle: let it finish. */
	return s->state == SMTPD_STATE_CMD &&
	    (s->txn == NULL || !s->txn->bdat || s->txn->qw == NULL);
}

/*
 * Drop n bytes of input that held a secret (an AUTH line): the bytes
 * buf_consume() leaves behind the new end are wiped (STYLE §3).
 */
static void
smtpd_session_consume_secret(struct smtpd_session *s, size_t n)
{
	buf_consume(&s->in, n);
	if (n > 0)
		explicit_bzero(s->in.data + s->in.len, n);
}

/* "AUTH ..." (case-insensitive, leading blanks allowed). */
static bool
smtpd_line_is_auth(const char *line, size_t len)
{
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	return len >= 4 && strncasecmp(line, "AUTH", 4) == 0 &&
	    (len == 4 || line[4] == ' ' || line[4] == '\t');
}

/* One line of a SASL exchange (SMTPD_STATE_AUTH).  false: need more. */
static bool
smtpd_session_auth_line(struct smtpd_session *s)
{
	const char *lp;
	size_t consumed, llen;
	int r;

	s->lp.max = SMTPD_MAX_AUTH_LINE;
	r = smtpd_line_parse(&s->lp, s->in.data, s->in.len, &consumed, &lp,
	    &llen);
	s->lp.max = MAX_SMTP_LINE;
	if (r == 0) {
		smtpd_session_consume_secret(s, consumed);
		return false;
	}
	if (r < 0) {
		smtpd_session_consume_secret(s, consumed);
		smtpd_auth_overlong(s);
		return true;
	}
	{
		char *line = xmalloc(llen + 1);

		memcpy(line, lp, llen);
		line[llen] = '\0';
		smtpd_session_consume_secret(s, consumed);
		smtpd_auth_response(s, line, llen);
		explicit_bzero(line, llen);
		free(line);
	}
	return true;
}

static void
smtpd_session_process(struct smtpd_session *s)
{
	bool was_processing = s->processing;

	s->processing = true;
	smtpd_session_process_loop(s);
	s->processing = was_processing;
}

static void
smtpd_session_process_loop(struct smtpd_session *s)
{
	char line[MAX_SMTP_LINE + 1];

	while (!s->dead) {
		if (s->out.len >= SMTPD_OUT_HIGH)
			break;
		if (s->shutdown && smtpd_session_idle(s)) {
			smtpd_session_reply(s, "421 4.3.2 %s Service shutting "
			    "down", s->set->myhostname);
			smtpd_session_close(s);
			break;
		}
		if (s->state == SMTPD_STATE_CMD) {
			const char *lp;
			size_t consumed, llen;
			int r;

			r = smtpd_line_parse(&s->lp, s->in.data, s->in.len,
			    &consumed, &lp, &llen);
			if (r == 0) {
				buf_consume(&s->in, consumed);
				break;
			}
			if (r < 0) {
				buf_consume(&s->in, consumed);
				s->last_cmd = "UNKNOWN";
				smtpd_session_count_stat(s,
				    SMTPD_STAT_UNKNOWN, false);
				smtpd_session_reply(s,
				    "500 5.5.2 Error: line too long");
			} else {
				bool secret = smtpd_line_is_auth(lp, llen);

				memcpy(line, lp, llen);
				line[llen] = '\0';
				if (secret)
					smtpd_session_consume_secret(s,
					    consumed);
				else
					buf_consume(&s->in, consumed);
				/* Postfix smtpd_hard_error_limit */
				if (s->errors >= s->set->hard_error_limit) {
					log_info("too many errors after %s "
					    "from %s", s->last_cmd,
					    smtpd_session_client(s));
					smtpd_session_reply(s, "421 4.7.0 %s "
					    "Error: too many errors",
					    s->set->myhostname);
					smtpd_session_close(s);
					break;
				}
				smtpd_cmd_execute(s, line, llen);
				if (secret)
					explicit_bzero(line, llen);
			}
		} else if (s->state == SMTPD_STATE_AUTH) {
			if (!smtpd_session_auth_line(s))
				break;
		} else if (s->state == SMTPD_STATE_DATA) {
			struct smtpd_txn *t = s->txn;
			size_t consumed;
			int r;

			if (s->in.len == 0)
				break;
			r = smtpd_data_decode(&t->dd, s->in.data, s->in.len,
			    &consumed, &t->decoded);
			buf_consume(&s->in, consumed);
			if (t->decoded.len > 0)
				smtpd_data_input(s, t->decoded.data,
				    t->decoded.len);
			buf_reset(&t->decoded);
			if (r == 1)
				smtpd_data_end(s);
		} else if (s->state == SMTPD_STATE_BDAT) {
			size_t n;

			if (s->bdat_remaining > 0 && s->in.len == 0)
				break;
			n = s->in.len;
			if ((uint64_t)n > s->bdat_remaining)
				n = (size_t)s->bdat_remaining;
			if (!s->bdat_discard && n > 0) {
				struct smtpd_txn *t = s->txn;

				smtpd_bdat_decode(&t->bd, s->in.data, n,
				    &t->decoded);
				smtpd_data_input(s, t->decoded.data,
				    t->decoded.len);
				buf_reset(&t->decoded);
			}
			buf_consume(&s->in, n);
			s->bdat_remaining -= n;
			if (s->bdat_remaining == 0)
				smtpd_session_bdat_chunk_end(s);
		} else
			break;	/* parked or closing */

		if (s->sleep_pending && !s->dead &&
		    s->state == SMTPD_STATE_CMD) {
			s->sleep_pending = false;
			smtpd_session_enter_state(s, SMTPD_STATE_SLEEP);
			s->sleep_timer = timer_add(s->set->error_sleep_ms,
			    smtpd_session_sleep_done, s);
			return;	/* the replies go out after the delay */
		}
	}
	if (s->dead)
		return;
	if (s->eof && smtpd_state_reads(s->state)) {
		/* The client is gone: what is left is a partial command or
		 * an unfinished message, never to be completed. */
		smtpd_session_flush(s);
		smtpd_session_lost(s);
		return;
	}
	smtpd_session_flush(s);
}

static void
smtpd_session_read(struct smtpd_session *s)
{
	ssize_t n = tlsio_read(s->tls, s->fd, &s->in, SMTPD_READ_SIZE,
	    &s->tls_rwant);

	if (n < 0) {
		if (errno != EAGAIN)
			smtpd_session_lost(s);
		return;
	}
	if (n == 0)
		s->eof = true;
	else
		smtpd_session_arm_timeout(s);
}

static void
smtpd_session_io(int fd, int events, void *ctx)
{
	struct smtpd_session *s = ctx;

	(void)fd;
	s->busy++;
	if (s->state == SMTPD_STATE_TLS && s->tls != NULL) {
		smtpd_session_handshake(s);
		if (s->state == SMTPD_STATE_TLS || s->dead) {
			s->busy--;
			smtpd_session_done(s);
			return;
		}
		events = IOLOOP_READ;	/* data may follow the Finished */
	}
	if (s->tls != NULL) {
		/* OpenSSL may need the other direction: try both. */
		if (s->out.len > 0)
			smtpd_session_flush(s);
		if (!s->dead && smtpd_session_wants_input(s))
			smtpd_session_read(s);
	} else {
		if (events & IOLOOP_WRITE)
			smtpd_session_flush(s);
		if (!s->dead && (events & IOLOOP_READ) &&
		    (io_get_events(s->io) & IOLOOP_READ))
			smtpd_session_read(s);
	}
	if (!s->dead)
		smtpd_session_process(s);
	s->busy--;
	smtpd_session_done(s);
}

/* ---- commit completion, shutdown ---- */

void
smtpd_session_commit_done(struct smtpd_session *s, int ret,
    const char *error)
{
	struct smtpd_txn *t = s->txn;
	enum smtpd_stat stat = t->bdat ? SMTPD_STAT_BDAT : SMTPD_STAT_DATA;

	s->busy++;
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
	if (ret == 0) {
		smtpd_data_log_from(s);
		if (!t->removed)
			queue_notify_qmgr(s->set->queue_dir, t->qid);
		smtpd_session_count_stat(s, stat, true);
		smtpd_session_reply(s, "250 2.0.0 Ok: queued as %s", t->qid);
	} else {
		log_warning("%s: queue file commit failed: %s", t->qid,
		    error);
		smtpd_session_count_stat(s, stat, false);
		smtpd_session_reply(s, "451 4.3.0 Error: queue file write "
		    "error");
	}
	smtpd_txn_free(&s->txn);
	s->phase = s->helo != NULL ? SMTPD_PHASE_HELO : SMTPD_PHASE_INIT;
	if (!s->dead)
		smtpd_session_process(s);
	s->busy--;
	smtpd_session_done(s);
}

void
smtpd_session_resume(struct smtpd_session *s)
{
	if (s->processing)
		return;		/* the loop we are called from goes on */
	s->busy++;
	if (s->sleep_pending && s->state == SMTPD_STATE_CMD && !s->dead) {
		/* The error delay (smtpd_error_sleep_time) before the
		 * reply, as for errors found in the loop. */
		s->sleep_pending = false;
		smtpd_session_enter_state(s, SMTPD_STATE_SLEEP);
		s->sleep_timer = timer_add(s->set->error_sleep_ms,
		    smtpd_session_sleep_done, s);
	} else if (!s->dead)
		smtpd_session_process(s);
	s->busy--;
	smtpd_session_done(s);
}

void
smtpd_sessions_shutdown(void)
{
	struct smtpd_session *s, *next;

	for (s = smtpd_sessions; s != NULL; s = next) {
		next = s->next;
		s->shutdown = true;
		if (s->state == SMTPD_STATE_AUTH) {
			/* Waiting for the client's SASL answer: idle. */
			smtpd_auth_abort(s);
			smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		}
		if (s->state == SMTPD_STATE_SLEEP) {
			timer_remove(&s->sleep_timer);
			smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		}
		if (smtpd_session_idle(s)) {
			smtpd_session_reply(s, "421 4.3.2 %s Service shutting "
			    "down", s->set->myhostname);
			smtpd_session_close(s);
			smtpd_session_done(s);
		}
	}
}

void
smtpd_sessions_exit(void)
{
	struct smtpd_session *s, *next;

	for (s = smtpd_sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == SMTPD_STATE_LOCAL) {
			smtpd_session_reply(s, "421 4.3.2 %s Service shutting "
			    "down", s->set->myhostname);
			smtpd_session_flush(s);
			smtpd_session_drop_local(s);
			smtpd_session_free(s);
		}
	}
}

unsigned
smtpd_session_count(void)
{
	return smtpd_nsessions;
}
