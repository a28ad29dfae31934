/*
 * login: the process plumbing shared by pop3-login and imap-login (see
 * login.h, DESIGN §2 and §12, doc/internals.md "Handing a logged-in
 * session to the mail process").
 *
 * One event loop serves every pre-login client of the process: accepting
 * on the inherited listeners (implicit TLS on pop3s/imaps), a per-IP
 * connection cap, bounded input and output, the idle timeout, STARTTLS
 * with the pipelined-bytes rule, SASL through the auth service, and the
 * hand-off.  After a successful login the client goes to posternd over
 * POSTERN_MASTER_FD with the auth service's ticket: a plaintext client's
 * socket itself (this process then forgets it), or for a TLS client one
 * end of a socketpair, the other end of which this process keeps to relay
 * decrypted bytes between the TLS connection and the mail process, with
 * a bounded buffer per direction (a side that does not read stops the
 * other side's reading).
 *
 * Privileges (root mode): posternd starts the process as root because
 * chroot(2) needs root and the certificate and configuration must be
 * loaded before it.  login_main() loads both, then chroots to
 * $data_directory/login (which holds only the auth socket) and drops to
 * run_user before it accepts a single connection: no network byte is
 * ever read as root or outside the chroot.
 *
 * The protocols (commands, replies, capabilities) are not here.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth_client.h"
#include "base64.h"
#include "buf.h"
#include "cfg.h"
#include "fdpass.h"
#include "ioloop.h"
#include "listener.h"
#include "log.h"
#include "login.h"
#include "login_ipshare.h"
#include "mailproc.h"
#include "str.h"
#include "tls.h"
#include "tlsio.h"
#include "xmalloc.h"

/* Clients one login process serves at most. */
#define LOGIN_MAX_CLIENTS	4096
/* Queued output of a pre-login client; a client that lets it grow past
 * this does not read its replies and is dropped. */
#define LOGIN_OUT_MAX		(256 * 1024)
/* Commands are not read while this much output waits. */
#define LOGIN_OUT_HIGH		(64 * 1024)
/* Relay buffer per direction (TLS client <-> mail process). */
#define LOGIN_RELAY_BUF		(64 * 1024)
#define LOGIN_READ_SIZE		16384
/* Seconds the last output may take to leave before the connection is
 * dropped anyway. */
#define LOGIN_CLOSE_TIMEOUT	10
#define LOGIN_IP_BUCKETS	256
/* The self-signed pair posternd makes when no certificate is set
 * (master_make_cert()), relative to data_directory. */
#define LOGIN_DEFAULT_CERT	"ssl/postern.crt"
#define LOGIN_DEFAULT_KEY	"ssl/postern.key"
/* Inside the chroot: the auth socket the auth service binds there. */
#define LOGIN_CHROOT_AUTH	"/auth"

enum login_state {
	LOGIN_STATE_HANDSHAKE,		/* TLS handshake (implicit/STARTTLS) */
	LOGIN_STATE_CMD,		/* pre-login commands */
	LOGIN_STATE_STARTTLS,		/* reply to STARTTLS going out */
	LOGIN_STATE_AUTH,		/* waiting for the auth service */
	LOGIN_STATE_AUTH_CLIENT,	/* waiting for a SASL response */
	LOGIN_STATE_HANDOFF,		/* waiting for posternd */
	LOGIN_STATE_RELAY,		/* relaying a TLS session */
	LOGIN_STATE_CLOSING		/* last output going out */
};

static const char *const login_state_names[] = {
	"HANDSHAKE", "CMD", "STARTTLS", "AUTH", "AUTH_CLIENT", "HANDOFF",
	"RELAY", "CLOSING"
};

/* Connections per remote address (login_max_connections_per_ip). */
struct login_ip {
	struct login_ip	*next;
	unsigned	 count;
	unsigned	 row;		/* in the shared counts */
	char		 ip[INET6_ADDRSTRLEN];
};

struct login_client {
	struct login_client	*prev, *next;
	struct login_client	*handoff_next;	/* waiting for posternd */
	int			 fd;
	struct io		*io;
	struct tls_conn		*tls;
	int			 tls_rwant, tls_wwant;
	struct timer		*timeout;
	struct timer		*pending_timer;
	enum login_state	 state;
	bool			 implicit_tls;
	bool			 greeted;
	bool			 dead;
	bool			 eof;		/* client closed its side */
	bool			 skip_line;	/* rest of an overlong line */
	bool			 proto_gone;	/* destroy() was called */
	bool			 logged_in;	/* Login: line logged */
	unsigned		 busy;
	struct buf		 in, out;
	char			 rip[INET6_ADDRSTRLEN];
	char			 lip[INET6_ADDRSTRLEN];
	int			 rport, lport;
	bool			 loopback;
	struct login_ip		*ip;
	uint64_t		 connected_ms;
	unsigned		 bad;
	/* auth */
	struct auth_request	*auth;
	auth_request_cb		*auth_cb;
	unsigned		 auth_attempts, auth_failures;
	unsigned		 auth_successes;
	bool			 auth_tempfail;
	char			*auth_user, *auth_mech;
	/* end of the session */
	char			*close_reason;
	char			*tls_error;
	/* hand-off and relay */
	unsigned long		 handoff_id;
	char			*handoff_msg;	/* not sent yet */
	int			 handoff_fd;	/* goes with it */
	int			 relay_fd;	/* our end of the socketpair */
	struct io		*relay_io;
	bool			 client_eof, mail_eof;
	uint64_t		 relay_in, relay_out;
	void			*ctx;		/* the protocol's */
};

/* A packet for posternd, with the descriptor it carries (ours to close
 * once it is sent). */
struct login_msg {
	struct login_msg	*next;
	char			*text;
	int			 fd;
};

enum login_ssl {
	LOGIN_SSL_NO,
	LOGIN_SSL_YES,
	LOGIN_SSL_REQUIRED
};

static const struct login_proto *login_proto;
static char login_log_name[32];
static const char *login_config;
static struct tls_server_ctx *login_tls_ctx;
static enum login_ssl login_ssl;
static bool login_disable_plaintext;
static bool login_loopback_secure;
static unsigned login_max_per_ip;
static struct login_client *login_clients;
static unsigned login_nclients;
static struct login_ip *login_ips[LOGIN_IP_BUCKETS];
/* The counts of every login process of the protocol (login_ipshare.h),
 * NULL when this one is alone, and our column there. */
static uint32_t *login_ipshare;
static unsigned login_ipshare_slot;
static bool login_stopping;
static bool login_chrooted;
static int login_master_fd = -1;
static struct io *login_master_io;
static struct login_msg *login_master_queue;
static struct login_client *login_handoffs;
static unsigned long login_next_handoff = 1;

static void login_client_io(int fd, int events, void *ctx);
static void login_client_process(struct login_client *c);
static void login_client_done(struct login_client *c);
static void login_client_flush(struct login_client *c);
static void login_client_handshake(struct login_client *c);
static void login_relay_pump(struct login_client *c);
static void login_client_handoff_send(struct login_client *c);

/* ---- per-IP counts ---- */

static unsigned
login_ip_hash(const char *ip)
{
	unsigned h = 5381;

	while (*ip != '\0')
		h = h * 33 + (unsigned char)*ip++;
	return h % LOGIN_IP_BUCKETS;
}

static struct login_ip *
login_ip_find(const char *ip)
{
	struct login_ip *e;

	for (e = login_ips[login_ip_hash(ip)]; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	return NULL;
}

static struct login_ip *
login_ip_ref(const char *ip)
{
	struct login_ip *e = login_ip_find(ip);

	if (e == NULL) {
		unsigned h = login_ip_hash(ip);

		e = xcalloc(1, sizeof(*e));
		str_lcpy(e->ip, ip, sizeof(e->ip));
		e->row = login_ipshare_row(ip);
		e->next = login_ips[h];
		login_ips[h] = e;
	}
	e->count++;
	if (login_ipshare != NULL)
		(void)__atomic_add_fetch(login_ipshare_cell(login_ipshare,
		    e->row, login_ipshare_slot), 1, __ATOMIC_RELAXED);
	return e;
}

/* Connections from ip now: of every login process of the protocol. */
static unsigned
login_ip_count(const char *ip, const struct login_ip *e)
{
	if (login_ipshare != NULL)
		return login_ipshare_total(login_ipshare,
		    login_ipshare_row(ip));
	return e != NULL ? e->count : 0;
}

/*
 * Map the shared counts posternd gives when it runs several login
 * processes of this protocol (POSTERN_LOGIN_IPSHARE_FD and _SLOT); alone,
 * or on any doubt, the process counts by itself.
 */
static void
login_ipshare_init(void)
{
	const char *fdenv = getenv("POSTERN_LOGIN_IPSHARE_FD");
	const char *slotenv = getenv("POSTERN_LOGIN_IPSHARE_SLOT");
	long long fd, slot;
	struct stat st;
	void *map;

	unsetenv("POSTERN_LOGIN_IPSHARE_FD");
	unsetenv("POSTERN_LOGIN_IPSHARE_SLOT");
	if (fdenv == NULL || slotenv == NULL)
		return;
	if (str_to_ll(fdenv, 3, 65535, &fd) < 0 ||
	    str_to_ll(slotenv, 0, LOGIN_IPSHARE_SLOTS - 1, &slot) < 0) {
		log_warning("invalid POSTERN_LOGIN_IPSHARE_FD/SLOT: "
		    "connections per IP counted by this process only");
		return;
	}
	if (fstat((int)fd, &st) < 0 ||
	    (size_t)st.st_size < LOGIN_IPSHARE_SIZE) {
		log_warning("shared per-IP counts unusable: connections per "
		    "IP counted by this process only");
		(void)close((int)fd);
		return;
	}
	map = mmap(NULL, LOGIN_IPSHARE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED, (int)fd, 0);
	(void)close((int)fd);
	if (map == MAP_FAILED) {
		log_warning("mmap of the shared per-IP counts: %m");
		return;
	}
	login_ipshare = map;
	login_ipshare_slot = (unsigned)slot;
}

static void
login_ip_unref(struct login_ip *e)
{
	struct login_ip **ep;

	if (login_ipshare != NULL)
		(void)__atomic_sub_fetch(login_ipshare_cell(login_ipshare,
		    e->row, login_ipshare_slot), 1, __ATOMIC_RELAXED);
	if (--e->count > 0)
		return;
	for (ep = &login_ips[login_ip_hash(e->ip)]; *ep != e;
	    ep = &(*ep)->next)
		;
	*ep = e->next;
	free(e);
}

/* ---- facts and log lines ---- */

void *
login_client_ctx(struct login_client *c)
{
	return c->ctx;
}

const char *
login_client_rip(const struct login_client *c)
{
	return c->rip;
}

const char *
login_client_lip(const struct login_client *c)
{
	return c->lip;
}

bool
login_client_is_tls(const struct login_client *c)
{
	return c->tls != NULL && tls_conn_is_established(c->tls);
}

bool
login_client_tls_available(const struct login_client *c)
{
	return login_tls_ctx != NULL && c->tls == NULL &&
	    c->state == LOGIN_STATE_CMD;
}

/* TLS, or a loopback client counted as secure (as Dovecot counts a
 * client whose address is its own). */
static bool
login_client_secured(const struct login_client *c)
{
	return login_client_is_tls(c) || (c->loopback &&
	    login_loopback_secure);
}

bool
login_client_plaintext_ok(const struct login_client *c)
{
	return login_client_secured(c) || !login_disable_plaintext;
}

/* ssl = required: no login without TLS, loopback included
 * (postern.conf(5)); plaintext_auth_loopback is about passwords only. */
bool
login_client_tls_required(const struct login_client *c)
{
	return login_ssl == LOGIN_SSL_REQUIRED && !login_client_is_tls(c);
}

/* The user name for a log line, escaped; valid until the next call. */
static const char *
login_client_log_user(const struct login_client *c)
{
	static char esc[256];

	if (c->auth_user == NULL)
		return "";
	return log_escape(esc, sizeof(esc), c->auth_user,
	    strlen(c->auth_user));
}

/* ", user=<x>, method=M, rip=A, lip=B[, TLS[ handshaking: ...]]" */
static void
login_client_log_facts(struct login_client *c, struct buf *b, bool login)
{
	buf_printf(b, "user=<%s>", login_client_log_user(c));
	if (c->auth_mech != NULL) {
		char esc[64];

		buf_printf(b, ", method=%s", log_escape(esc, sizeof(esc),
		    c->auth_mech, strlen(c->auth_mech)));
	}
	buf_printf(b, ", rip=%s, lip=%s", c->rip, c->lip);
	if (login)
		return;
	if (login_client_is_tls(c))
		buf_append_str(b, ", TLS");
	else if (c->tls != NULL) {
		buf_append_str(b, ", TLS handshaking");
		if (c->tls_error != NULL)
			buf_printf(b, ": %s", c->tls_error);
	}
}

/*
 * The one line a client that did not log in leaves, as Dovecot writes it
 * (fail2ban's dovecot filter matches it):
 *   Disconnected (auth failed, 1 attempts): user=<bob>, method=PLAIN,
 *       rip=192.0.2.7, lip=192.0.2.1, TLS
 *   Disconnected: Inactivity (no auth attempts in 180 secs): user=<>, ...
 */
static void
login_client_log_disconnect(struct login_client *c)
{
	struct buf b;
	unsigned secs = (unsigned)((ioloop_now_ms() - c->connected_ms) / 1000);

	buf_init(&b, 0);
	/* A reason may come complete ("Disconnected: Logged out"). */
	if (c->close_reason != NULL &&
	    strncmp(c->close_reason, "Disconnected", 12) == 0)
		buf_append_str(&b, c->close_reason);
	else if (c->close_reason != NULL)
		buf_printf(&b, "Disconnected: %s", c->close_reason);
	else
		buf_append_str(&b, "Disconnected");
	if (c->auth_failures > 0)
		buf_printf(&b, " (auth failed, %u attempts)",
		    c->auth_attempts);
	else if (c->auth_successes > 0)
		buf_printf(&b, " (internal failure, %u successful auths)",
		    c->auth_successes);
	else if (c->auth_tempfail)
		buf_append_str(&b, " (auth service unavailable)");
	else if (c->auth_attempts > 0)
		buf_printf(&b, " (auth aborted, %u attempts)",
		    c->auth_attempts);
	else
		buf_printf(&b, " (no auth attempts in %u secs)", secs);
	buf_append_str(&b, ": ");
	login_client_log_facts(c, &b, false);
	log_info("%s", buf_cstr(&b));
	buf_free(&b);
}

static void
login_client_log_login(struct login_client *c, long mpid)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "Login: ");
	login_client_log_facts(c, &b, true);
	buf_printf(&b, ", mpid=%ld", mpid);
	if (login_client_is_tls(c))
		buf_append_str(&b, ", TLS");
	log_info("%s", buf_cstr(&b));
	buf_free(&b);
	c->logged_in = true;
}

/* ---- client life cycle ---- */

static void
login_client_enter_state(struct login_client *c, enum login_state state)
{
	if (c->state != state)
		log_debug("client %s:%d: %s -> %s", c->rip, c->rport,
		    login_state_names[c->state], login_state_names[state]);
	c->state = state;
}

static void
login_client_timeout(void *ctx)
{
	struct login_client *c = ctx;

	c->timeout = NULL;
	if (c->state == LOGIN_STATE_CLOSING) {
		c->dead = true;	/* the last output did not leave */
	} else {
		free(c->close_reason);
		c->close_reason = xstrdup("Inactivity");
		c->dead = true;
	}
	login_client_done(c);
}

static void
login_client_arm_timeout(struct login_client *c)
{
	uint64_t secs;

	timer_remove(&c->timeout);
	switch (c->state) {
	case LOGIN_STATE_HANDOFF:
		/* posternd always answers; only the client reading our
		 * last replies may take long. */
		if (c->handoff_msg == NULL)
			return;
		secs = LOGIN_IDLE_TIMEOUT;
		break;
	case LOGIN_STATE_RELAY:
		/* The mail process keeps its own idle timeouts. */
		if (!c->client_eof && !c->mail_eof)
			return;
		secs = LOGIN_CLOSE_TIMEOUT;
		break;
	case LOGIN_STATE_CLOSING:
		secs = LOGIN_CLOSE_TIMEOUT;
		break;
	default:
		secs = LOGIN_IDLE_TIMEOUT;
		break;
	}
	c->timeout = timer_add(secs * 1000, login_client_timeout, c);
}

static void
login_handoff_unlink(struct login_client *c)
{
	struct login_client **cp;

	for (cp = &login_handoffs; *cp != NULL; cp = &(*cp)->handoff_next) {
		if (*cp == c) {
			*cp = c->handoff_next;
			c->handoff_next = NULL;
			return;
		}
	}
}

static void
login_client_destroy_proto(struct login_client *c)
{
	if (c->proto_gone)
		return;
	c->proto_gone = true;
	login_proto->destroy(c);
}

static void
login_client_free(struct login_client *c)
{
	if (c->state == LOGIN_STATE_RELAY)
		log_debug("TLS session of %s from %s ended: %llu bytes in, "
		    "%llu out", login_client_log_user(c), c->rip, (unsigned long long)c->relay_in,
		    (unsigned long long)c->relay_out);
	else if (!c->logged_in)
		login_client_log_disconnect(c);
	if (c->auth != NULL)
		auth_request_abort(&c->auth);
	login_handoff_unlink(c);
	login_client_destroy_proto(c);
	io_remove(&c->io);
	io_remove(&c->relay_io);
	timer_remove(&c->timeout);
	timer_remove(&c->pending_timer);
	if (c->tls != NULL && c->fd >= 0 && tls_conn_is_established(c->tls))
		(void)tls_conn_shutdown(c->tls);	/* close_notify, once */
	tls_conn_free(&c->tls);
	if (c->fd >= 0)
		(void)close(c->fd);
	if (c->relay_fd >= 0)
		(void)close(c->relay_fd);
	if (c->handoff_fd >= 0)
		(void)close(c->handoff_fd);
	free(c->handoff_msg);
	if (c->ip != NULL)
		login_ip_unref(c->ip);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		login_clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	login_nclients--;
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->auth_user);
	free(c->auth_mech);
	free(c->close_reason);
	free(c->tls_error);
	free(c->ctx);
	free(c);
	if (login_stopping && login_nclients == 0)
		ioloop_stop();
}

/* The client may send commands now. */
static bool
login_client_wants_input(const struct login_client *c)
{
	return (c->state == LOGIN_STATE_CMD ||
	    c->state == LOGIN_STATE_AUTH_CLIENT) && !c->eof && !c->dead &&
	    c->out.len < LOGIN_OUT_HIGH && c->in.len < c->in.max;
}

static void
login_client_pending(void *ctx)
{
	struct login_client *c = ctx;

	c->pending_timer = NULL;
	login_client_io(c->fd, IOLOOP_READ, c);
}

static void
login_client_update_io(struct login_client *c)
{
	bool rd;

	if (c->state == LOGIN_STATE_HANDSHAKE) {
		io_set_events(c->io, tlsio_handshake_events(c->tls));
		return;
	}
	if (c->state == LOGIN_STATE_RELAY) {
		int rev = 0;

		rd = !c->client_eof && c->in.len < c->in.max;
		if (!c->mail_eof && c->out.len < LOGIN_RELAY_BUF)
			rev |= IOLOOP_READ;
		if (c->in.len > 0)
			rev |= IOLOOP_WRITE;
		io_set_events(c->relay_io, rev);
	} else
		rd = login_client_wants_input(c);
	io_set_events(c->io, tlsio_events(rd, c->tls_rwant, c->out.len > 0,
	    c->tls_wwant));
	/* Records OpenSSL already took from the socket are invisible to
	 * epoll: come back for them from the loop. */
	if (rd && tlsio_pending(c->tls) && c->pending_timer == NULL)
		c->pending_timer = timer_add(0, login_client_pending, c);
}

/*
 * End of every callback that touched c: free a dead client, close an
 * idle one when the process is stopping, else recompute the events.
 */
static void
login_client_done(struct login_client *c)
{
	if (c->busy > 0)
		return;
	if (!c->dead && login_stopping && (c->state == LOGIN_STATE_CMD ||
	    c->state == LOGIN_STATE_AUTH_CLIENT) && c->out.len == 0) {
		free(c->close_reason);
		c->close_reason = xstrdup("Shutting down");
		c->dead = true;
	}
	if (c->dead) {
		login_client_free(c);
		return;
	}
	login_client_update_io(c);
}

static void
login_sockaddr_text(const struct sockaddr_storage *ss, socklen_t len,
    char *ip, size_t iplen, int *port_r)
{
	char serv[16];

	if (getnameinfo((const struct sockaddr *)ss, len, ip, (socklen_t)iplen,
	    serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		str_lcpy(ip, "unknown", iplen);
		*port_r = 0;
		return;
	}
	/* An IPv4 client on a dual-stack socket is logged as IPv4. */
	if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
	*port_r = atoi(serv);
}

static bool
login_ip_is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

static void
login_client_new(int fd, bool implicit_tls,
    const struct sockaddr_storage *peer, socklen_t peerlen)
{
	struct sockaddr_storage local;
	socklen_t locallen = sizeof(local);
	struct login_client *c;
	struct login_ip *e;

	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->relay_fd = -1;
	c->handoff_fd = -1;
	c->implicit_tls = implicit_tls;
	c->connected_ms = ioloop_now_ms();
	c->state = LOGIN_STATE_CMD;
	login_sockaddr_text(peer, peerlen, c->rip, sizeof(c->rip), &c->rport);
	if (getsockname(fd, (struct sockaddr *)&local, &locallen) == 0)
		login_sockaddr_text(&local, locallen, c->lip, sizeof(c->lip),
		    &c->lport);
	else
		str_lcpy(c->lip, "unknown", sizeof(c->lip));
	c->loopback = login_ip_is_loopback(c->rip);
	buf_init(&c->in, LOGIN_MAX_LINE + 2);
	buf_init(&c->out, LOGIN_OUT_MAX);
	c->ctx = xcalloc(1, login_proto->client_size > 0 ?
	    login_proto->client_size : 1);
	c->next = login_clients;
	if (login_clients != NULL)
		login_clients->prev = c;
	login_clients = c;
	login_nclients++;
	c->io = io_add(fd, 0, login_client_io, c);
	c->busy++;

	e = login_ip_find(c->rip);
	if (login_nclients > LOGIN_MAX_CLIENTS) {
		log_warning("%u clients: connection from %s refused",
		    login_nclients - 1, c->rip);
		c->close_reason = xstrdup("Too many clients");
		c->dead = true;
		c->proto_gone = true;	/* never greeted */
	} else if (login_max_per_ip > 0 &&
	    login_ip_count(c->rip, e) >= login_max_per_ip) {
		c->close_reason = xasprintf("Too many connections from this "
		    "IP (login_max_connections_per_ip=%u)", login_max_per_ip);
		c->dead = true;
		c->proto_gone = true;
	} else if (implicit_tls && login_tls_ctx == NULL) {
		static bool warned;

		if (!warned)
			log_warning("%s connections are closed: TLS is off "
			    "(ssl = no) or has no usable certificate",
			    login_proto->tls_service);
		warned = true;
		c->close_reason = xstrdup("TLS unavailable");
		c->dead = true;
		c->proto_gone = true;
	} else {
		c->ip = login_ip_ref(c->rip);
		if (implicit_tls) {
			/* RFC 8314 §3.3: the handshake comes first. */
			c->tls = tls_conn_new(login_tls_ctx, fd);
			login_client_enter_state(c, LOGIN_STATE_HANDSHAKE);
			login_client_arm_timeout(c);
			login_client_handshake(c);
		} else {
			login_client_arm_timeout(c);
			c->greeted = true;
			login_proto->greet(c);
			login_client_flush(c);
		}
	}
	c->busy--;
	login_client_done(c);
}

/* ---- output ---- */

static void
login_client_lost(struct login_client *c)
{
	c->dead = true;
	buf_reset(&c->out);
}

void
login_client_write(struct login_client *c, const void *data, size_t len)
{
	if (c->dead || c->state == LOGIN_STATE_RELAY)
		return;
	if (buf_append(&c->out, data, len) < 0) {
		/* The client does not read what it asks for. */
		free(c->close_reason);
		c->close_reason = xstrdup("Output buffer full");
		login_client_lost(c);
	}
}

void
login_client_printf(struct login_client *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_fatal("vasprintf: out of memory");
	login_client_write(c, s, (size_t)n);
	free(s);
}

static void
login_client_start_tls(struct login_client *c)
{
	c->tls = tls_conn_new(login_tls_ctx, c->fd);
	login_client_enter_state(c, LOGIN_STATE_HANDSHAKE);
	login_client_arm_timeout(c);
	login_client_handshake(c);
}

/* Send what is queued; -> STARTTLS handshake / close when it is out. */
static void
login_client_flush(struct login_client *c)
{
	ssize_t n;

	if (c->dead || c->state == LOGIN_STATE_HANDSHAKE)
		return;
	n = tlsio_flush(c->tls, c->fd, &c->out, &c->tls_wwant);
	if (n < 0) {
		login_client_lost(c);
		return;
	}
	if (c->state == LOGIN_STATE_RELAY)
		c->relay_out += (uint64_t)n;
	if (c->out.len > 0)
		return;
	if (c->state == LOGIN_STATE_CLOSING)
		c->dead = true;
	else if (c->state == LOGIN_STATE_STARTTLS)
		login_client_start_tls(c);
	else if (c->state == LOGIN_STATE_HANDOFF)
		login_client_handoff_send(c);
}

void
login_client_close(struct login_client *c, const char *reason)
{
	if (c->dead || c->state == LOGIN_STATE_CLOSING)
		return;
	free(c->close_reason);
	c->close_reason = reason != NULL && *reason != '\0' ?
	    xstrdup(reason) : NULL;
	if (c->auth != NULL)
		auth_request_abort(&c->auth);
	login_handoff_unlink(c);
	if (c->tls != NULL && !tls_conn_is_established(c->tls)) {
		c->dead = true;
		return;
	}
	login_client_enter_state(c, LOGIN_STATE_CLOSING);
	login_client_arm_timeout(c);
	if (c->busy == 0)
		login_client_flush(c);
	else if (c->out.len == 0)
		c->dead = true;
}

bool
login_client_bad(struct login_client *c)
{
	if (++c->bad < LOGIN_MAX_BAD)
		return false;
	login_client_close(c, "Too many invalid commands");
	return true;
}

/* ---- input ---- */

struct buf *
login_client_input(struct login_client *c)
{
	return &c->in;
}

void
login_client_consume(struct login_client *c, size_t n)
{
	if (n > c->in.len)
		log_panic("login_client_consume(%zu) with %zu bytes", n,
		    c->in.len);
	buf_consume(&c->in, n);
}

ssize_t
login_client_line(struct login_client *c, size_t *consume_r)
{
	const char *nl = memchr(c->in.data, '\n', c->in.len);
	size_t len;

	if (nl == NULL) {
		if (c->in.len > LOGIN_MAX_LINE) {
			/* What follows up to the line end is dropped
			 * before the protocol sees input again. */
			*consume_r = c->in.len;
			c->skip_line = true;
			return -1;
		}
		*consume_r = 0;
		return 0;
	}
	len = (size_t)(nl - c->in.data);
	*consume_r = len + 1;
	if (len > 0 && c->in.data[len - 1] == '\r')
		len--;
	if (len > LOGIN_MAX_LINE)
		return -1;
	return (ssize_t)len;
}

static void
login_client_read(struct login_client *c)
{
	ssize_t n = tlsio_read(c->tls, c->fd, &c->in, LOGIN_READ_SIZE,
	    &c->tls_rwant);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		c->eof = true;
		return;
	}
	login_client_arm_timeout(c);
}

/* Drop the rest of an overlong line.  true when input may be parsed. */
static bool
login_client_skip(struct login_client *c)
{
	const char *nl;

	if (!c->skip_line)
		return true;
	nl = memchr(c->in.data, '\n', c->in.len);
	if (nl == NULL) {
		buf_reset(&c->in);
		return false;
	}
	buf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
	c->skip_line = false;
	return true;
}

/* Let the protocol parse what arrived, as long as it makes progress. */
static void
login_client_process(struct login_client *c)
{
	while (!c->dead && (c->state == LOGIN_STATE_CMD ||
	    c->state == LOGIN_STATE_AUTH_CLIENT) &&
	    c->out.len < LOGIN_OUT_HIGH && login_client_skip(c) &&
	    c->in.len > 0) {
		size_t before = c->in.len;
		enum login_state st = c->state;

		c->busy++;
		login_proto->input(c);
		c->busy--;
		if (c->in.len == before && c->state == st)
			break;
	}
	if (c->dead)
		return;
	if ((c->state == LOGIN_STATE_CMD ||
	    c->state == LOGIN_STATE_AUTH_CLIENT) && c->in.len >= c->in.max) {
		/* The protocol did not take a whole buffer of input. */
		login_client_close(c, "Input buffer full");
	} else if (c->eof && (c->state == LOGIN_STATE_CMD ||
	    c->state == LOGIN_STATE_AUTH_CLIENT)) {
		/* What is left can never become a command. */
		c->dead = true;
		return;
	}
	login_client_flush(c);
}

/* ---- TLS ---- */

static void
login_client_handshake(struct login_client *c)
{
	if (tls_conn_handshake(c->tls) < 0) {
		if (errno == EAGAIN)
			return;
		c->tls_error = xstrdup(tls_conn_error(c->tls));
		c->dead = true;
		return;
	}
	log_debug("TLS established from %s: %s", c->rip,
	    tls_conn_info(c->tls));
	c->tls_rwant = 0;
	c->tls_wwant = 0;
	login_client_enter_state(c, LOGIN_STATE_CMD);
	login_client_arm_timeout(c);
	c->busy++;
	if (!c->greeted) {
		c->greeted = true;
		login_proto->greet(c);
	} else
		login_proto->tls_done(c);
	c->busy--;
	login_client_flush(c);
}

void
login_client_starttls(struct login_client *c)
{
	if (login_tls_ctx == NULL || c->tls != NULL ||
	    c->state != LOGIN_STATE_CMD)
		log_panic("login_client_starttls without TLS available");
	/*
	 * RFC 2595 §4, RFC 3207 §4.2: what the client sent after the
	 * command came in the clear and must not be taken as coming from
	 * inside TLS.
	 */
	if (c->in.len > 0)
		log_info("discarding %zu bytes pipelined after STARTTLS from "
		    "%s", c->in.len, c->rip);
	buf_reset(&c->in);
	c->skip_line = false;
	login_client_enter_state(c, LOGIN_STATE_STARTTLS);
	if (c->busy == 0)
		login_client_flush(c);
}

/* ---- auth ---- */

static void
login_auth_cb(enum auth_client_result result, const char *user,
    const char *data, const char *reason, void *ctx)
{
	struct login_client *c = ctx;

	if (result != AUTH_CLIENT_CONTINUE)
		c->auth = NULL;		/* freed by the library */
	if (user != NULL && *user != '\0') {
		free(c->auth_user);
		c->auth_user = xstrdup(user);
	}
	switch (result) {
	case AUTH_CLIENT_CONTINUE:
		login_client_enter_state(c, LOGIN_STATE_AUTH_CLIENT);
		break;
	case AUTH_CLIENT_OK:
		c->auth_successes++;
		login_client_enter_state(c, LOGIN_STATE_CMD);
		break;
	case AUTH_CLIENT_FAIL:
		c->auth_failures++;
		login_client_enter_state(c, LOGIN_STATE_CMD);
		break;
	case AUTH_CLIENT_TEMPFAIL:
		c->auth_tempfail = true;
		log_warning("auth unavailable for %s: %s", c->rip,
		    reason != NULL ? reason : "temporary failure");
		login_client_enter_state(c, LOGIN_STATE_CMD);
		break;
	}
	login_client_arm_timeout(c);
	c->busy++;
	c->auth_cb(result, user, data, reason, c);
	/* Commands pipelined behind the exchange. */
	login_client_process(c);
	c->busy--;
	login_client_done(c);
}

void
login_client_auth(struct login_client *c, const char *mech,
    const char *initial, auth_request_cb *cb)
{
	struct auth_request_info info;
	char *m;

	if (c->state != LOGIN_STATE_CMD || c->auth != NULL)
		log_panic("login_client_auth in state %s",
		    login_state_names[c->state]);
	memset(&info, 0, sizeof(info));
	info.service = login_proto->name;
	info.rip = c->rip;
	info.lip = c->lip;
	info.secured = login_client_secured(c);
	free(c->auth_mech);
	c->auth_mech = xstrdup(mech);
	for (m = c->auth_mech; *m != '\0'; m++)
		if (*m >= 'a' && *m <= 'z')
			*m = (char)(*m - 'a' + 'A');
	c->auth_attempts++;
	c->auth_cb = cb;
	login_client_enter_state(c, LOGIN_STATE_AUTH);
	c->auth = auth_request_new(mech, &info, initial, login_auth_cb, c);
}

void
login_client_auth_continue(struct login_client *c, const char *line)
{
	if (c->state != LOGIN_STATE_AUTH_CLIENT || c->auth == NULL)
		log_panic("login_client_auth_continue in state %s",
		    login_state_names[c->state]);
	login_client_enter_state(c, LOGIN_STATE_AUTH);
	auth_request_continue(c->auth, line);
}

/* ---- the link to posternd ---- */

static void
login_master_flush(void)
{
	while (login_master_queue != NULL) {
		struct login_msg *m = login_master_queue;

		if (fdpass_send(login_master_fd, m->text, strlen(m->text),
		    m->fd) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_fatal("posternd socket: %m");
		}
		login_master_queue = m->next;
		if (m->fd >= 0)
			(void)close(m->fd);
		free(m->text);
		free(m);
	}
	io_set_events(login_master_io, IOLOOP_READ |
	    (login_master_queue != NULL ? IOLOOP_WRITE : 0));
}

static void
login_master_send(char *text, int fd)
{
	struct login_msg *m = xcalloc(1, sizeof(*m)), **mp;

	m->text = text;
	m->fd = fd;
	for (mp = &login_master_queue; *mp != NULL; mp = &(*mp)->next)
		;
	*mp = m;
	login_master_flush();
}

/* posternd's answer to a hand-off. */
static void
login_handoff_done(struct login_client *c, bool ok, long mpid,
    const char *reason)
{
	login_handoff_unlink(c);
	c->busy++;
	if (ok) {
		login_client_log_login(c, mpid);
		c->busy++;
		login_client_destroy_proto(c);
		c->busy--;
		if (c->relay_fd < 0) {
			/* The mail process has the socket: forget it. */
			io_remove(&c->io);
			(void)close(c->fd);
			c->fd = -1;
			c->dead = true;
		} else {
			/* The pipelined bytes went along in pre=. */
			buf_free(&c->in);
			buf_init(&c->in, LOGIN_RELAY_BUF);
			login_client_enter_state(c, LOGIN_STATE_RELAY);
			c->relay_io = io_add(c->relay_fd, IOLOOP_READ,
			    login_client_io, c);
			login_relay_pump(c);
		}
	} else {
		if (c->relay_fd >= 0) {
			(void)close(c->relay_fd);
			c->relay_fd = -1;
		}
		log_warning("hand-off of %s from %s failed: %s",
		    login_client_log_user(c), c->rip, reason);
		login_client_enter_state(c, LOGIN_STATE_CMD);
		login_client_arm_timeout(c);
		login_proto->handoff_failed(c, reason);
		login_client_process(c);
	}
	c->busy--;
	login_client_done(c);
}

static void
login_master_reply(char *text)
{
	char **f = strv_split(text, " ");
	struct login_client *c;
	long long id, mpid = 0;
	bool ok;
	char *reason = NULL;

	if (strv_len(f) != 3 || (strcmp(f[0], "OK") != 0 &&
	    strcmp(f[0], "FAIL") != 0) ||
	    str_to_ll(f[1], 0, 0xffffffffLL, &id) < 0)
		log_fatal("malformed message from posternd");
	ok = strcmp(f[0], "OK") == 0;
	if (ok && str_to_ll(f[2], 1, 0x7fffffffLL, &mpid) < 0)
		log_fatal("malformed OK from posternd");
	if (!ok && (reason = xtext_decode(f[2])) == NULL)
		log_fatal("malformed FAIL from posternd");
	for (c = login_handoffs; c != NULL; c = c->handoff_next)
		if (c->handoff_id == (unsigned long)id)
			break;
	if (c != NULL)
		login_handoff_done(c, ok, (long)mpid, reason);
	free(reason);
	strv_free(&f);
}

static void
login_master_event(int fd, int events, void *ctx)
{
	char buf[1024];
	int i;

	(void)ctx;
	if (events & IOLOOP_WRITE)
		login_master_flush();
	if (!(events & IOLOOP_READ))
		return;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			return;
		if (n <= 0) {
			/* posternd is gone: so are the mail processes
			 * behind every relayed session. */
			log_info("posternd went away: exiting");
			exit(0);
		}
		buf[n] = '\0';
		login_master_reply(buf);
	}
}

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" from tls_conn_info(). */
static char *
login_tls_summary(struct login_client *c)
{
	const char *info = tls_conn_info(c->tls);
	const char *p = strstr(info, " with cipher ");
	const char *end;

	if (p == NULL)
		return xstrdup(info);
	p += strlen(" with cipher ");
	end = strchr(p, ' ');
	return xasprintf("%s/%.*s", tls_conn_version(c->tls),
	    (int)(end != NULL ? (size_t)(end - p) : strlen(p)), p);
}

/*
 * Send the prepared HANDOFF once our replies have left: a plaintext
 * client's socket goes to the mail process, and what we still had to
 * say to the client must not come after what it says.  (A TLS client's
 * replies go on through the relay, in order.)
 */
static void
login_client_handoff_send(struct login_client *c)
{
	if (c->handoff_msg == NULL || (c->relay_fd < 0 && c->out.len > 0))
		return;
	login_master_send(c->handoff_msg, c->handoff_fd);
	c->handoff_msg = NULL;
	c->handoff_fd = -1;
}

void
login_client_handoff(struct login_client *c, const char *user,
    const char *ticket, const char *mech, const char *tag)
{
	struct buf msg;
	int sp[2], fd;
	char *x;

	if (c->state != LOGIN_STATE_CMD)
		log_panic("login_client_handoff in state %s",
		    login_state_names[c->state]);
	if (user != NULL && *user != '\0') {
		free(c->auth_user);
		c->auth_user = xstrdup(user);
	}
	if (mech != NULL) {
		free(c->auth_mech);
		c->auth_mech = xstrdup(mech);
	}
	if (ticket == NULL || *ticket == '\0' ||
	    strspn(ticket, "0123456789abcdefABCDEF") != strlen(ticket)) {
		log_error("no ticket from the auth service for %s",
		    login_client_log_user(c));
		c->busy++;
		login_proto->handoff_failed(c, "no ticket");
		c->busy--;
		return;
	}
	c->handoff_id = login_next_handoff++;
	if (login_next_handoff > 0xffffffffUL)	/* posternd's id range */
		login_next_handoff = 1;
	buf_init(&msg, MAILPROC_MAX_MSG);
	(void)buf_printf(&msg, "HANDOFF %lu %s %s rip=%s rport=%d lip=%s "
	    "lport=%d", c->handoff_id, login_proto->name, ticket, c->rip,
	    c->rport, c->lip, c->lport);
	if (login_client_is_tls(c)) {
		char *sum = login_tls_summary(c);

		x = xtext_encode(sum, strlen(sum));
		(void)buf_printf(&msg, " tls=%s", x);
		free(x);
		free(sum);
	}
	if (c->in.len > 0) {
		(void)buf_append_str(&msg, " pre=");
		(void)base64_encode(&msg, c->in.data, c->in.len);
	}
	if (tag != NULL) {
		x = xtext_encode(tag, strlen(tag));
		(void)buf_printf(&msg, " tag=%s", x);
		free(x);
	}
	/* The buffer stops at MAILPROC_MAX_MSG: a cut message is refused. */
	if (buf_append_char(&msg, '\0') < 0) {
		buf_free(&msg);
		c->busy++;
		login_proto->handoff_failed(c, "session too large");
		c->busy--;
		return;
	}
	if (login_client_is_tls(c)) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0, sp) < 0) {
			log_error("socketpair: %m");
			buf_free(&msg);
			c->busy++;
			login_proto->handoff_failed(c, "socketpair failed");
			c->busy--;
			return;
		}
		/* The mail process's end blocks like a client socket
		 * would not: give it the same non-blocking mode. */
		c->relay_fd = sp[0];
		fd = sp[1];
	} else if ((fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		log_error("dup: %m");
		buf_free(&msg);
		c->busy++;
		login_proto->handoff_failed(c, "dup failed");
		c->busy--;
		return;
	}
	login_client_enter_state(c, LOGIN_STATE_HANDOFF);
	timer_remove(&c->timeout);
	c->handoff_next = login_handoffs;
	login_handoffs = c;
	c->handoff_msg = buf_steal(&msg);
	c->handoff_fd = fd;
	login_client_handoff_send(c);
	if (c->handoff_msg != NULL)
		login_client_arm_timeout(c);	/* the client must read */
}

/* ---- TLS relay ---- */

/*
 * Move bytes both ways until nothing moves: client (TLS) -> in -> mail
 * process, mail process -> out -> client.  A full buffer stops the
 * reading on its side (back-pressure); a side that closes ends the
 * session once what it sent was passed on.
 */
static void
login_relay_pump(struct login_client *c)
{
	bool progress = true;

	while (progress && !c->dead) {
		ssize_t n;
		size_t room;

		progress = false;
		/* client -> in */
		if (!c->client_eof && c->in.len < c->in.max) {
			n = tlsio_read(c->tls, c->fd, &c->in, LOGIN_READ_SIZE,
			    &c->tls_rwant);
			if (n > 0)
				c->relay_in += (uint64_t)n;
			else if (n == 0 || errno != EAGAIN)
				c->client_eof = true;
			if (n >= 0 || errno != EAGAIN)
				progress = true;
		}
		/* in -> mail process */
		if (c->in.len > 0 && !c->mail_eof) {
			n = send(c->relay_fd, c->in.data, c->in.len,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				buf_consume(&c->in, (size_t)n);
				progress = true;
			} else if (n < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR) {
				c->mail_eof = true;
				buf_reset(&c->in);
				progress = true;
			}
		} else if (c->mail_eof)
			buf_reset(&c->in);
		/* mail process -> out */
		room = c->out.len < LOGIN_RELAY_BUF ?
		    LOGIN_RELAY_BUF - c->out.len : 0;
		if (!c->mail_eof && room > 0) {
			if (room > LOGIN_READ_SIZE)
				room = LOGIN_READ_SIZE;
			if (buf_reserve(&c->out, room) < 0)
				log_panic("relay buffer");
			n = read(c->relay_fd, c->out.data + c->out.len, room);
			if (n > 0) {
				c->out.len += (size_t)n;
				progress = true;
			} else if (n == 0 || (errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR)) {
				c->mail_eof = true;
				progress = true;
			}
		}
		/* out -> client */
		if (c->out.len > 0 && !c->client_eof) {
			size_t before = c->out.len;

			login_client_flush(c);
			if (c->dead) {
				c->dead = false;	/* decided below */
				c->client_eof = true;
				buf_reset(&c->out);
			}
			if (c->out.len != before)
				progress = true;
		} else if (c->client_eof)
			buf_reset(&c->out);
	}
	/*
	 * The client left: what it sent is with the mail process, which
	 * sees the end of the stream when we close our end.  The mail
	 * process left: its last words are with the client.
	 */
	if ((c->client_eof && c->in.len == 0) ||
	    (c->mail_eof && c->out.len == 0))
		c->dead = true;
	else if (c->client_eof || c->mail_eof) {
		if (c->timeout == NULL)
			login_client_arm_timeout(c);
	}
}

/* ---- the client's events ---- */

static void
login_client_io(int fd, int events, void *ctx)
{
	struct login_client *c = ctx;

	c->busy++;
	if (c->state == LOGIN_STATE_RELAY) {
		(void)fd;
		login_relay_pump(c);
		c->busy--;
		login_client_done(c);
		return;
	}
	if (c->state == LOGIN_STATE_HANDSHAKE) {
		login_client_handshake(c);
		if (c->state == LOGIN_STATE_HANDSHAKE || c->dead) {
			c->busy--;
			login_client_done(c);
			return;
		}
		events = IOLOOP_READ;	/* data may follow the Finished */
	}
	if (c->tls != NULL) {
		/* OpenSSL may need the other direction: try both. */
		if (c->out.len > 0)
			login_client_flush(c);
		if (!c->dead && login_client_wants_input(c))
			login_client_read(c);
	} else {
		if (events & IOLOOP_WRITE)
			login_client_flush(c);
		if (!c->dead && (events & IOLOOP_READ) &&
		    login_client_wants_input(c))
			login_client_read(c);
	}
	if (!c->dead)
		login_client_process(c);
	c->busy--;
	login_client_done(c);
}

/* ---- listeners ---- */

/* Listener kinds (common/listener.h). */
#define LOGIN_LISTEN_PLAIN	0
#define LOGIN_LISTEN_TLS	1

static void
login_accept(int fd, int kind, const struct sockaddr_storage *peer,
    socklen_t peerlen)
{
	login_client_new(fd, kind == LOGIN_LISTEN_TLS, peer, peerlen);
}

static int
login_listen_kind(const char *service)
{
	if (strcmp(service, login_proto->plain_service) == 0)
		return LOGIN_LISTEN_PLAIN;
	if (strcmp(service, login_proto->tls_service) == 0)
		return LOGIN_LISTEN_TLS;
	return -1;
}

/* ---- settings ---- */

/*
 * The certificate (DESIGN §8): Dovecot's ssl_cert/ssl_key, else smtpd's
 * smtpd_tls_cert_file/key_file (one certificate for the whole server is
 * the usual case), else the self-signed pair posternd made in
 * data_directory.  ssl_min_protocol and ssl_cipher_list apply.
 */
static void
login_tls_init(void)
{
	const char *ssl = cfg_get("ssl");
	const char *cert = cfg_get("ssl_cert"), *key = cfg_get("ssl_key");
	const char *error = NULL;
	char *dcert = NULL, *dkey = NULL;

	login_ssl = strcmp(ssl, "no") == 0 ? LOGIN_SSL_NO :
	    strcmp(ssl, "required") == 0 ? LOGIN_SSL_REQUIRED : LOGIN_SSL_YES;
	if (login_ssl == LOGIN_SSL_NO)
		return;
	if (*cert == '\0') {
		cert = cfg_get("smtpd_tls_cert_file");
		key = cfg_get("smtpd_tls_key_file");
	}
	if (*cert == '\0') {
		const char *dir = cfg_get("data_directory");

		dcert = xasprintf("%s/%s", dir, LOGIN_DEFAULT_CERT);
		dkey = xasprintf("%s/%s", dir, LOGIN_DEFAULT_KEY);
		cert = dcert;
		key = dkey;
	}
	if (*key == '\0')
		key = cert;	/* the key may be in the certificate file */
	login_tls_ctx = tls_server_ctx_new(cert, key, &error);
	if (login_tls_ctx == NULL) {
		log_warning("TLS unavailable: %s", error != NULL ? error :
		    "cannot load the certificate");
		goto out;
	}
	/* posternd refused to start when this fails (master_check_tls). */
	if (tls_server_ctx_set_policy(login_tls_ctx,
	    cfg_get("ssl_min_protocol"), cfg_get("ssl_cipher_list"),
	    &error) < 0) {
		log_warning("TLS unavailable: %s", error);
		tls_server_ctx_free(&login_tls_ctx);
	}
out:
	free(dcert);
	free(dkey);
}

static void
login_settings_load(void)
{
	long long n = cfg_get_int("login_max_connections_per_ip");

	login_max_per_ip = n > 0 && n < (long long)UINT32_MAX ?
	    (unsigned)n : 0;
	login_disable_plaintext = cfg_get_bool("disable_plaintext_auth");
	login_loopback_secure = cfg_get_bool("plaintext_auth_loopback");
	login_tls_init();
}

/* ---- privileges ---- */

/*
 * Root mode: chroot to the directory posternd names and become run_user,
 * for good.  Returns whether the process is chrooted (the auth socket is
 * then LOGIN_CHROOT_AUTH).
 */
static bool
login_drop_privileges(void)
{
	const char *dir = getenv("POSTERN_LOGIN_CHROOT");
	const char *us = getenv("POSTERN_LOGIN_UID");
	const char *gs = getenv("POSTERN_LOGIN_GID");
	long long uid, gid;
	gid_t g;

	if (geteuid() != 0 && getuid() != 0)
		return false;	/* unprivileged mode */
	if (dir == NULL || us == NULL || gs == NULL ||
	    str_to_ll(us, 1, 0xfffffffeLL, &uid) < 0 ||
	    str_to_ll(gs, 0, 0xfffffffeLL, &gid) < 0)
		log_fatal("started as root without a chroot directory and a "
		    "run_user uid from posternd: refusing to serve clients "
		    "as root");
	if (chroot(dir) < 0)
		log_fatal("chroot(%s): %m", dir);
	if (chdir("/") < 0)
		log_fatal("chdir(/) in %s: %m", dir);
	g = (gid_t)gid;
	if (setgroups(1, &g) < 0)
		log_fatal("setgroups: %m");
	if (setgid(g) < 0)
		log_fatal("setgid(%lld): %m", gid);
	if (setuid((uid_t)uid) < 0)
		log_fatal("setuid(%lld): %m", uid);
	if (getuid() != (uid_t)uid || geteuid() != (uid_t)uid ||
	    getgid() != g || getegid() != g || setuid(0) == 0)
		log_fatal("privileges not dropped to uid %lld", uid);
	/* A credential change clears it: ask again. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		log_fatal("posternd is gone");
	unsetenv("POSTERN_LOGIN_CHROOT");
	unsetenv("POSTERN_LOGIN_UID");
	unsetenv("POSTERN_LOGIN_GID");
	return true;
}

#if defined(__SANITIZE_ADDRESS__)
/*
 * Sanitizer builds: LeakSanitizer reads /proc at exit, which the chroot
 * does not have, and would report that as a fatal error.  Leaks of the
 * login code are found by the unprivileged-mode runs.
 */
int	__lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return login_chrooted;
}
#endif

/* ---- signals and main ---- */

static void
login_sigterm(int signo, void *ctx)
{
	struct login_client *c, *next;

	(void)ctx;
	if (login_stopping)
		return;
	log_info("terminating on signal %d", signo);
	login_stopping = true;
	listener_close_all();
	/*
	 * Idle pre-login clients go now; logins under way finish, and
	 * relayed TLS sessions go on until they end (posternd's stop ends
	 * their mail processes).
	 */
	for (c = login_clients; c != NULL; c = next) {
		next = c->next;
		if (c->state == LOGIN_STATE_CMD ||
		    c->state == LOGIN_STATE_HANDSHAKE ||
		    c->state == LOGIN_STATE_STARTTLS ||
		    c->state == LOGIN_STATE_AUTH_CLIENT) {
			free(c->close_reason);
			c->close_reason = xstrdup("Shutting down");
			c->dead = true;
			login_client_done(c);
		}
	}
	if (login_nclients == 0)
		ioloop_stop();
}

static void
login_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	/* Chrooted, we cannot read the configuration again: posternd
	 * replaces the process on reload. */
	log_debug("SIGHUP ignored: posternd restarts login processes on "
	    "reload");
}

static void __attribute__((noreturn))
login_usage(void)
{
	fprintf(stderr, "usage: %s [-c config]\n", login_log_name);
	exit(2);
}

int
login_main(const struct login_proto *proto, int argc, char **argv)
{
	const char *env;
	long long fd;
	struct stat st;
	int ch;

	login_proto = proto;
	snprintf(login_log_name, sizeof(login_log_name), "%s-login",
	    proto->name);
	login_config = getenv("POSTERN_CONFIG");
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			login_config = optarg;
			break;
		default:
			login_usage();
		}
	}
	if (optind != argc)
		login_usage();
	/* Opens the syslog socket now (LOG_NDELAY): no /dev/log inside
	 * the chroot. */
	log_init(login_log_name, false);
	if (cfg_load(login_config) > 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "configuration error");
	tzset();	/* no zoneinfo inside the chroot either */
	(void)signal(SIGPIPE, SIG_IGN);
	ioloop_init();
	login_settings_load();

	env = getenv("POSTERN_MASTER_FD");
	if (env == NULL || str_to_ll(env, 3, 65535, &fd) < 0 ||
	    fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("POSTERN_MASTER_FD unset or not a socket: %s is "
		    "started by posternd", login_log_name);
	login_master_fd = (int)fd;
	if (fcntl(login_master_fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(login_master_fd, F_SETFL, O_NONBLOCK) < 0)
		log_fatal("fcntl: %m");
	unsetenv("POSTERN_MASTER_FD");
	login_ipshare_init();
	listener_add_env(login_listen_kind);
	if (listener_count() == 0)
		log_fatal("no %s or %s listeners in POSTERN_LISTEN",
		    proto->plain_service, proto->tls_service);

	login_chrooted = login_drop_privileges();
	auth_client_init(login_chrooted ? LOGIN_CHROOT_AUTH : "private/auth");

	login_master_io = io_add(login_master_fd, IOLOOP_READ,
	    login_master_event, NULL);
	listener_start(login_accept);
	ioloop_signal(SIGTERM, login_sigterm, NULL);
	ioloop_signal(SIGINT, login_sigterm, NULL);
	ioloop_signal(SIGHUP, login_sighup, NULL);

	ioloop_run();
	auth_client_deinit();
	tls_server_ctx_free(&login_tls_ctx);
	exit(0);
}
