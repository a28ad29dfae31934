/*
 * smtp: the outbound SMTP delivery agent's service (see smtp.h): the
 * listener on private/smtp, one thread per qmgr connection, the request
 * parser and the answers, the settings snapshot, and the choice of
 * servers for a next hop (MX records, A/AAAA fallback, null MX, loops
 * back to ourselves, $smtp_mx_address_limit, $smtp_mx_session_limit, the
 * session cache).
 *
 * Threads do blocking I/O with timeouts; the main thread only accepts
 * connections and handles signals.  A reload (SIGHUP) builds a new
 * settings snapshot; deliveries in progress finish with the old one.
 * Modules that read the configuration themselves (dns, rewrite) are
 * called under a read lock that the reload takes for writing, so the
 * configuration never changes under such a call.
 *
 * Malformed requests from qmgr are fatal (doc/internals.md: a malformed
 * internal message is fatal to the receiver; posternd restarts us).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "dns.h"
#include "fdio.h"
#include "ioloop.h"
#include "limits_pst.h"
#include "log.h"
#include "map.h"
#include "queue_file.h"
#include "queue_list.h"
#include "rewrite.h"
#include "smtp.h"
#include "str.h"
#include "tls.h"
#include "xmalloc.h"

static char *queue_dir;
static int listen_fd = -1;
static struct io *listen_io;

/* Connections and requests in progress, for the limit and for SIGTERM. */
static pthread_mutex_t smtp_count_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t smtp_count_cond = PTHREAD_COND_INITIALIZER;
static unsigned smtp_clients;
static unsigned smtp_busy;
/* The qmgr connections, so that a stop can end their threads. */
static int smtp_client_fds[SMTP_MAX_CLIENTS];
static bool smtp_stopping;

/* ---- settings ---- */

static pthread_rwlock_t smtp_cfg_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t smtp_settings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct smtp_settings *smtp_settings_cur;

void
smtp_cfg_rdlock(void)
{
	(void)pthread_rwlock_rdlock(&smtp_cfg_lock);
}

void
smtp_cfg_unlock(void)
{
	(void)pthread_rwlock_unlock(&smtp_cfg_lock);
}

static unsigned
smtp_cfg_seconds(const char *name)
{
	long long v = cfg_get_time(name);

	return v < 1 ? 1 : v > INT_MAX / 1000 ? INT_MAX / 1000 : (unsigned)v;
}

static unsigned
smtp_cfg_uint(const char *name)
{
	long long v = cfg_get_int(name);

	return v < 0 ? 0 : v > INT_MAX ? INT_MAX : (unsigned)v;
}

static char *
smtp_cfg_opt(const char *name)
{
	const char *v = cfg_get(name);

	return *v != '\0' ? xstrdup(v) : NULL;
}

static enum smtp_tls_level
smtp_tls_level_parse(const char *v)
{
	if (strcmp(v, "none") == 0)
		return SMTP_TLS_NONE;
	/* DANE needs DNSSEC, which the stub resolver cannot vouch for:
	 * "dane" is opportunistic as Postfix makes it without TLSA
	 * records, "dane-only" and "fingerprint" at least verify. */
	if (strcmp(v, "may") == 0 || strcmp(v, "dane") == 0 || *v == '\0')
		return SMTP_TLS_MAY;
	if (strcmp(v, "encrypt") == 0)
		return SMTP_TLS_ENCRYPT;
	if (strcmp(v, "secure") == 0)
		return SMTP_TLS_SECURE;
	return SMTP_TLS_VERIFY;
}

static int
smtp_inet_family(void)
{
	char **l = cfg_get_list("inet_protocols");
	bool v4 = strv_contains_case(l, "ipv4"), v6 = strv_contains_case(l,
	    "ipv6");
	int fam = 0;

	if (!strv_contains_case(l, "all") && v4 != v6)
		fam = v4 ? 4 : 6;
	cfg_list_free(&l);
	return fam;
}

/* Build the settings from the loaded configuration (main thread). */
static struct smtp_settings *
smtp_settings_new(void)
{
	struct smtp_settings *s = xcalloc(1, sizeof(*s));
	const char *cafile = cfg_get("smtp_tls_CAfile"), *err, *maps;
	const char *capath = cfg_get("smtp_tls_CApath");

	s->refs = 1;
	s->myhostname = xstrdup(cfg_get("myhostname"));
	s->helo_name = xstrdup(cfg_get("smtp_helo_name"));
	if (*s->helo_name == '\0') {
		free(s->helo_name);
		s->helo_name = xstrdup(s->myhostname);
	}
	s->family = smtp_inet_family();
	s->bind4 = smtp_cfg_opt("smtp_bind_address");
	s->bind6 = smtp_cfg_opt("smtp_bind_address6");
	s->connect_timeout = smtp_cfg_seconds("smtp_connect_timeout");
	s->helo_timeout = smtp_cfg_seconds("smtp_helo_timeout");
	s->starttls_timeout = smtp_cfg_seconds("smtp_starttls_timeout");
	s->mail_timeout = smtp_cfg_seconds("smtp_mail_timeout");
	s->rcpt_timeout = smtp_cfg_seconds("smtp_rcpt_timeout");
	s->data_init_timeout = smtp_cfg_seconds("smtp_data_init_timeout");
	s->data_xfer_timeout = smtp_cfg_seconds("smtp_data_xfer_timeout");
	s->data_done_timeout = smtp_cfg_seconds("smtp_data_done_timeout");
	s->quit_timeout = smtp_cfg_seconds("smtp_quit_timeout");
	s->mx_address_limit = smtp_cfg_uint("smtp_mx_address_limit");
	s->mx_session_limit = smtp_cfg_uint("smtp_mx_session_limit");
	s->cache_time = cfg_get_time("smtp_connection_cache_time_limit") > 0 ?
	    (unsigned)cfg_get_time("smtp_connection_cache_time_limit") : 0;
	s->tls_level = smtp_tls_level_parse(cfg_get("smtp_tls_security_level"));
	s->tls_note_offer = cfg_get_bool("smtp_tls_note_starttls_offer");

	if (s->tls_level != SMTP_TLS_NONE) {
		/* The CA file also tells "Trusted" from "Untrusted" in the
		 * log at the opportunistic levels. */
		s->tls_ctx = tls_client_ctx_new_ca(false, cafile, capath,
		    &err);
		if (s->tls_ctx == NULL && (*cafile != '\0' ||
		    *capath != '\0')) {
			log_warning("smtp_tls_CAfile/smtp_tls_CApath: %s",
			    err);
			s->tls_ctx = tls_client_ctx_new(false, NULL, &err);
		}
		if (s->tls_ctx == NULL) {
			log_warning("cannot set up the TLS client: %s", err);
			s->tls_error = xstrdup(err);
		}
	}
	if (s->tls_level >= SMTP_TLS_VERIFY) {
		/* Both set: OpenSSL trusts what either holds, as Postfix's
		 * smtp_tls_CAfile and smtp_tls_CApath together. */
		s->tls_vctx = tls_client_ctx_new_ca(true, cafile, capath,
		    &err);
		if (s->tls_vctx == NULL) {
			log_warning("cannot set up TLS verification: %s", err);
			free(s->tls_error);
			s->tls_error = xstrdup(err);
		}
	}

	s->sasl_enable = cfg_get_bool("smtp_sasl_auth_enable");
	pthread_mutex_init(&s->sasl_lock, NULL);
	maps = cfg_get("smtp_sasl_password_maps");
	if (s->sasl_enable && *maps != '\0') {
		s->sasl_maps = map_list_open(maps, MAP_KIND_PLAIN, &err);
		if (s->sasl_maps == NULL) {
			s->sasl_maps_error = xasprintf(
			    "smtp_sasl_password_maps: %s", err);
			log_warning("%s", s->sasl_maps_error);
		}
	}
	s->sasl_opts = cfg_get_list("smtp_sasl_security_options");
	s->sasl_tls_opts = cfg_get_list("smtp_sasl_tls_security_options");
	s->sasl_filter = cfg_get_list("smtp_sasl_mechanism_filter");
	s->generic = *cfg_get("smtp_generic_maps") != '\0';
	return s;
}

static void
smtp_settings_free(struct smtp_settings *s)
{
	free(s->myhostname);
	free(s->helo_name);
	free(s->bind4);
	free(s->bind6);
	tls_client_ctx_free(&s->tls_ctx);
	tls_client_ctx_free(&s->tls_vctx);
	free(s->tls_error);
	map_list_free(&s->sasl_maps);
	pthread_mutex_destroy(&s->sasl_lock);
	free(s->sasl_maps_error);
	cfg_list_free(&s->sasl_opts);
	cfg_list_free(&s->sasl_tls_opts);
	cfg_list_free(&s->sasl_filter);
	free(s);
}

struct smtp_settings *
smtp_settings_get(void)
{
	struct smtp_settings *s;

	pthread_mutex_lock(&smtp_settings_lock);
	s = smtp_settings_cur;
	s->refs++;
	pthread_mutex_unlock(&smtp_settings_lock);
	return s;
}

void
smtp_settings_put(struct smtp_settings **sp)
{
	struct smtp_settings *s = *sp;
	bool last;

	if (s == NULL)
		return;
	pthread_mutex_lock(&smtp_settings_lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&smtp_settings_lock);
	if (last)
		smtp_settings_free(s);
	*sp = NULL;
}

static void
smtp_settings_install(struct smtp_settings *s)
{
	struct smtp_settings *old;

	pthread_mutex_lock(&smtp_settings_lock);
	old = smtp_settings_cur;
	smtp_settings_cur = s;
	pthread_mutex_unlock(&smtp_settings_lock);
	smtp_settings_put(&old);
}

/* ---- routing: the servers of a next hop ---- */

struct smtp_target {
	char		*host;
	struct dns_addr	 addr;
};

/*
 * The addresses to try for d's next hop, in order.  Returns the count
 * (>= 1) with *targets_r, or 0 when the recipients already have their
 * answer (null MX, a name that does not exist, a DNS failure, a loop).
 */
static size_t
smtp_targets(struct smtp_delivery *d, struct smtp_target **targets_r)
{
	const struct smtp_settings *set = d->set;
	struct dns_mx *mx = NULL, self = { 0, d->domain };
	size_t nmx = 0, i, n = 0, cut;
	struct smtp_target *t = NULL;
	enum dns_status st;
	const char *why = "";
	bool tempfail = false;
	char lasterr[600] = "";
	const char *lastdsn = "5.4.4";

	*targets_r = NULL;
	if (d->mx) {
		smtp_cfg_rdlock();
		st = dns_lookup_mx(d->domain, &mx, &nmx, &why);
		smtp_cfg_unlock();
		switch (st) {
		case DNS_OK:
			break;
		case DNS_NULLMX:
			/* RFC 7505 §4.2. */
			smtp_delivery_fail(d, true, "5.1.10", NULL, "Domain %s "
			    "does not accept mail (nullMX)", d->domain);
			return 0;
		case DNS_NOTFOUND:
			/* RFC 5321 §5.1: no MX, the domain is its own host. */
			break;
		case DNS_TEMPFAIL:
			smtp_delivery_fail(d, false, "4.4.3", NULL, "Host or "
			    "domain name not found. Name service error for "
			    "name=%s type=MX: %s", d->domain, why);
			return 0;
		default:
			smtp_delivery_fail(d, true, "5.4.4", NULL, "Host or "
			    "domain name not found. Name service error for "
			    "name=%s type=MX: %s", d->domain, why);
			return 0;
		}
	}
	if (nmx > 0) {
		/*
		 * We are one of the MX hosts: only better ones may get the
		 * mail (RFC 5321 §5.1); none left means a loop.
		 */
		for (cut = 0; cut < nmx; cut++)
			if (str_case_eq(mx[cut].host, set->myhostname))
				break;
		if (cut < nmx) {
			unsigned pref = mx[cut].pref;

			for (cut = 0; cut < nmx && mx[cut].pref < pref; cut++)
				;
		}
		if (cut == 0) {
			smtp_delivery_fail(d, true, "5.4.6", NULL,
			    "mail for %s loops back to myself", d->domain);
			dns_mx_free(mx, nmx);
			return 0;
		}
	} else
		cut = 1;	/* the domain itself */

	for (i = 0; i < cut; i++) {
		const char *host = nmx > 0 ? mx[i].host : self.host;
		struct dns_addr *addrs = NULL;
		size_t na = 0, j;

		if (set->mx_address_limit > 0 && n >= set->mx_address_limit)
			break;
		smtp_cfg_rdlock();
		st = dns_lookup_host(host, set->family, &addrs, &na, &why);
		smtp_cfg_unlock();
		if (st != DNS_OK) {
			if (st == DNS_TEMPFAIL)
				tempfail = true;
			(void)snprintf(lasterr, sizeof(lasterr), "Host or "
			    "domain name not found. Name service error for "
			    "name=%s type=%s: %s", host,
			    set->family == 6 ? "AAAA" : "A", why);
			continue;
		}
		for (j = 0; j < na; j++) {
			if (set->mx_address_limit > 0 &&
			    n >= set->mx_address_limit)
				break;
			t = xreallocarray(t, n + 1, sizeof(*t));
			t[n].host = xstrdup(host);
			t[n].addr = addrs[j];
			n++;
		}
		free(addrs);
	}
	if (nmx > 0)
		dns_mx_free(mx, nmx);
	if (n == 0) {
		if (tempfail)
			lastdsn = "4.4.3";
		smtp_delivery_fail(d, !tempfail, lastdsn, NULL, "%s",
		    lasterr[0] != '\0' ? lasterr : "no address to deliver to");
		return 0;
	}
	*targets_r = t;
	return n;
}

static void
smtp_targets_free(struct smtp_target *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(t[i].host);
	free(t);
}

static void
smtp_set_port(struct dns_addr *a, unsigned port)
{
	if (a->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
}

/* Try the servers of the next hop until no recipient is pending. */
static void
smtp_route(struct smtp_delivery *d)
{
	struct smtp_target *t;
	size_t n, i;
	unsigned sessions = 0;
	struct smtp_conn *c;
	enum smtp_session_result res;

	if (d->set->cache_time > 0 &&
	    (c = smtp_cache_take(d->nexthop)) != NULL) {
		res = smtp_proto_session(d, &c, true, true, false);
		if (c != NULL)
			smtp_cache_put(c, d->nexthop, d->set->cache_time);
		/* A dead cached session says nothing about the server. */
		if (res != SMTP_SESS_STALE)
			return;
	}
	if ((n = smtp_targets(d, &t)) == 0)
		return;
	for (i = 0; i < n && smtp_delivery_pending(d) > 0; i++) {
		bool no_tls = false;
		char err[600];

		smtp_set_port(&t[i].addr, d->port);
		for (;;) {
			c = smtp_conn_connect(d->set,
			    (struct sockaddr *)&t[i].addr.ss, t[i].addr.len,
			    t[i].host, err, sizeof(err));
			if (c == NULL) {
				smtp_delivery_fail(d, false, "4.4.1", NULL,
				    "%s", err);
				break;
			}
			d->handshaken = false;
			res = smtp_proto_session(d, &c, false, i == n - 1,
			    no_tls);
			if (d->handshaken)
				sessions++;
			if (c != NULL)
				smtp_cache_put(c, d->nexthop,
				    d->set->cache_time);
			/* "may": a failed handshake is retried once on a new
			 * connection without TLS. */
			if (res == SMTP_SESS_RETRY_PLAIN && !no_tls) {
				no_tls = true;
				continue;
			}
			break;
		}
		if (d->set->mx_session_limit > 0 &&
		    sessions >= d->set->mx_session_limit)
			break;
	}
	smtp_targets_free(t, n);
}

/* ---- one request ---- */

static void
smtp_answer_line(struct buf *out, size_t idx, const char *status,
    const char *dsn, const char *relay, const char *text)
{
	char *r = xtext_encode(relay, strlen(relay));
	char *t = xtext_encode(text, strlen(text));
	char *s = xtext_encode(dsn, strlen(dsn));

	/* The class of the code is the status's (qmgr checks it). */
	s[0] = strcmp(status, "sent") == 0 ||
	    strcmp(status, "relayed") == 0 ? '2' :
	    strcmp(status, "bounce") == 0 ? '5' : '4';

	(void)buf_printf(out, "RCPT %zu %s %s %s %s\n", idx, status, s, r, t);
	free(r);
	free(t);
	free(s);
}

/* Every recipient gets the same answer (nothing could be tried). */
static void
smtp_answer_all(struct buf *out, const size_t *idx, size_t n,
    const char *dsn, const char *text)
{
	size_t i;

	for (i = 0; i < n; i++)
		smtp_answer_line(out, idx[i], "defer", dsn, "none", text);
	(void)buf_append_str(out, "DONE 0 0\n");
}

static void
smtp_request(const char *path, const char *nexthop, const size_t *idx,
    size_t nidx, struct buf *out)
{
	struct smtp_delivery d;
	char *full, secs[2][32];
	const char *err;
	uint64_t end;
	size_t i;
	int r;

	memset(&d, 0, sizeof(d));
	d.start_ms = smtp_now_ms();
	d.set = smtp_settings_get();
	d.queue_id = strchr(path, '/') + 1;
	d.nexthop = xstrdup(nexthop);
	full = xasprintf("%s/%s", queue_dir, path);
	d.fd = open(full, O_RDONLY | O_CLOEXEC);
	if (d.fd < 0) {
		char text[300];

		(void)snprintf(text, sizeof(text), "cannot open queue file: "
		    "%s", strerror(errno));
		log_warning("%s: %s", d.queue_id, text);
		smtp_answer_all(out, idx, nidx, "4.3.0", text);
		goto out;
	}
	r = queue_file_read(d.fd, &d.msg, &err);
	if (r != 1) {
		log_warning("%s: cannot read queue file: %s", d.queue_id,
		    r == 0 ? "incomplete" : err);
		smtp_answer_all(out, idx, nidx, "4.3.0",
		    "cannot read queue file");
		goto out;
	}
	if (smtp_nexthop_parse(nexthop, d.domain, sizeof(d.domain), &d.port,
	    &d.mx) < 0) {
		log_warning("%s: malformed next hop: %.100s", d.queue_id,
		    nexthop);
		smtp_answer_all(out, idx, nidx, "4.3.5",
		    "mail system configuration error: malformed next hop");
		goto out;
	}
	/* $smtp_generic_maps: only when set, so nothing is copied else. */
	d.sender = NULL;
	if (d.set->generic) {
		smtp_cfg_rdlock();
		d.sender = rewrite_generic(d.msg.sender);
		smtp_cfg_unlock();
	}
	if (d.sender == NULL)
		d.sender = xstrdup(d.msg.sender);
	d.rcpts = xcalloc(nidx, sizeof(*d.rcpts));
	d.nrcpts = nidx;
	for (i = 0; i < nidx; i++) {
		struct smtp_rcpt *rc = &d.rcpts[i];

		rc->idx = idx[i];
		if (idx[i] >= d.msg.rcpt_count) {
			smtp_rcpt_set(rc, SMTP_RCPT_DEFER, "4.3.0", NULL,
			    "no recipient %zu in the queue file", idx[i]);
			rc->out_addr = xstrdup("");
			continue;
		}
		rc->addr = d.msg.rcpts[idx[i]].addr;
		rc->out_addr = NULL;
		if (d.set->generic) {
			smtp_cfg_rdlock();
			rc->out_addr = rewrite_generic(rc->addr);
			smtp_cfg_unlock();
		}
		if (rc->out_addr == NULL)
			rc->out_addr = xstrdup(rc->addr);
	}

	smtp_route(&d);

	end = smtp_now_ms();
	for (i = 0; i < nidx; i++) {
		struct smtp_rcpt *rc = &d.rcpts[i];
		const char *st;

		switch (rc->status) {
		case SMTP_RCPT_SENT:
			st = rc->relayed ? "relayed" : "sent";
			break;
		case SMTP_RCPT_BOUNCE:
			st = "bounce";
			break;
		default:
			st = "defer";
			break;
		}
		smtp_answer_line(out, rc->idx, st, rc->dsn[0] != '\0' ?
		    rc->dsn : "4.4.0", rc->relay != NULL ? rc->relay : "none",
		    rc->text != NULL ? rc->text : "delivery not attempted");
	}
	if (d.xfer_start_ms == 0)
		d.xfer_start_ms = end;
	(void)snprintf(secs[0], sizeof(secs[0]), "%.3f",
	    (double)(d.xfer_start_ms - d.start_ms) / 1000);
	(void)snprintf(secs[1], sizeof(secs[1]), "%.3f",
	    (double)(end - d.xfer_start_ms) / 1000);
	(void)buf_printf(out, "DONE %s %s\n", secs[0], secs[1]);
out:
	for (i = 0; i < d.nrcpts; i++) {
		free(d.rcpts[i].out_addr);
		free(d.rcpts[i].relay);
		free(d.rcpts[i].text);
	}
	free(d.rcpts);
	smtp_delivery_free_body(&d);
	free(d.sender);
	free(d.nexthop);
	if (d.fd >= 0)
		close(d.fd);
	queue_msg_free(&d.msg);
	free(full);
	smtp_settings_put(&d.set);
}

/*
 * Parse "SEND <queue-path> <nexthop> <rcpt-indexes> <flags>"; a
 * malformed line is fatal.  Returns the decoded path and next hop and
 * the indexes (duplicates dropped).
 */
static void
smtp_parse_request(const char *line, char **path_r, char **nexthop_r,
    size_t **idx_r, size_t *nidx_r)
{
	char **f = strv_split(line, " "), **l = NULL, *path, *hop, *flags;
	size_t *idx = NULL, n = 0, i, j;

	if (strv_len(f) != 5 || strcmp(f[0], "SEND") != 0 ||
	    (path = xtext_decode(f[1])) == NULL ||
	    (hop = xtext_decode(f[2])) == NULL ||
	    (flags = xtext_decode(f[4])) == NULL)
		log_fatal("malformed request: %.64s", line);
	/* Only queue files, never another path. */
	if ((strncmp(path, "incoming/", 9) != 0 &&
	    strncmp(path, "deferred/", 9) != 0) ||
	    !queue_list_id_valid(path + 9))
		log_fatal("bad queue path in request: %.64s", path);
	if (*hop == '\0')
		log_fatal("empty next hop in request");
	l = strv_split(f[3], ",");
	if (strv_len(l) == 0 || strv_len(l) > SMTP_MAX_REQUEST_RCPTS)
		log_fatal("bad recipient list in request: %.64s", f[3]);
	idx = xreallocarray(NULL, strv_len(l), sizeof(*idx));
	for (i = 0; l[i] != NULL; i++) {
		long long v;
		bool dup = false;

		if (str_to_ll(l[i], 0, INT_MAX, &v) < 0)
			log_fatal("bad recipient index in request: %.32s",
			    l[i]);
		for (j = 0; j < n; j++)
			if (idx[j] == (size_t)v)
				dup = true;
		if (!dup)
			idx[n++] = (size_t)v;
	}
	/* Flags: none are defined; unknown ones are ignored. */
	free(flags);
	strv_free(&l);
	strv_free(&f);
	*path_r = path;
	*nexthop_r = hop;
	*idx_r = idx;
	*nidx_r = n;
}

/* ---- qmgr connections ---- */

/* Under smtp_count_lock. */
static void
smtp_client_forget(int fd)
{
	size_t i;

	for (i = 0; i < SMTP_MAX_CLIENTS; i++)
		if (smtp_client_fds[i] == fd + 1) {
			smtp_client_fds[i] = 0;
			return;
		}
}

/* Under smtp_count_lock: remember fd (stored as fd + 1, 0 is free). */
static void
smtp_client_remember(int fd)
{
	size_t i;

	for (i = 0; i < SMTP_MAX_CLIENTS; i++)
		if (smtp_client_fds[i] == 0) {
			smtp_client_fds[i] = fd + 1;
			return;
		}
}

static void *
smtp_client_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct buf in, out;

	buf_init(&in, 0);
	buf_init(&out, 0);
	for (;;) {
		char *nl = NULL, *line, *path, *hop;
		size_t *idx, nidx;
		ssize_t n;

		while (in.len == 0 ||
		    (nl = memchr(in.data, '\n', in.len)) == NULL) {
			if (in.len > MAX_IPC_LINE)
				log_fatal("request line too long");
			if (buf_reserve(&in, 4096) < 0)
				log_panic("buf_reserve");
			n = read(fd, in.data + in.len, 4096);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto done;	/* qmgr is done with us */
			in.len += (size_t)n;
		}
		if (memchr(in.data, '\0', (size_t)(nl - in.data)) != NULL)
			log_fatal("NUL byte in request");
		line = xstrndup(in.data, (size_t)(nl - in.data));
		buf_consume(&in, (size_t)(nl - in.data) + 1);
		smtp_parse_request(line, &path, &hop, &idx, &nidx);
		pthread_mutex_lock(&smtp_count_lock);
		smtp_busy++;
		pthread_mutex_unlock(&smtp_count_lock);

		buf_reset(&out);
		smtp_request(path, hop, idx, nidx, &out);

		pthread_mutex_lock(&smtp_count_lock);
		smtp_busy--;
		pthread_cond_broadcast(&smtp_count_cond);
		pthread_mutex_unlock(&smtp_count_lock);
		free(path);
		free(hop);
		free(idx);
		free(line);
		if (fdio_write_all(fd, out.data, out.len) < 0)
			goto done;	/* qmgr went away */
	}
done:
	buf_free(&in);
	buf_free(&out);
	pthread_mutex_lock(&smtp_count_lock);
	smtp_client_forget(fd);
	close(fd);
	smtp_clients--;
	pthread_cond_broadcast(&smtp_count_cond);
	pthread_mutex_unlock(&smtp_count_lock);
	return NULL;
}

static void
smtp_accept(int fd, int events, void *ctx)
{
	(void)events;
	(void)ctx;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_attr_t attr;
		pthread_t t;
		bool full;
		int e;

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warning("accept: %m");
			return;
		}
		pthread_mutex_lock(&smtp_count_lock);
		full = smtp_clients >= SMTP_MAX_CLIENTS || smtp_stopping;
		if (!full) {
			smtp_clients++;
			smtp_client_remember(cfd);
		}
		pthread_mutex_unlock(&smtp_count_lock);
		if (full) {
			log_warning("too many connections from qmgr (%d), "
			    "closing one", SMTP_MAX_CLIENTS);
			close(cfd);
			continue;
		}
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* Modest stacks: many threads, shallow calls. */
		pthread_attr_setstacksize(&attr, 512 * 1024);
		e = pthread_create(&t, &attr, smtp_client_thread,
		    (void *)(intptr_t)cfd);
		pthread_attr_destroy(&attr);
		if (e != 0) {
			log_warning("pthread_create: %s", strerror(e));
			pthread_mutex_lock(&smtp_count_lock);
			smtp_client_forget(cfd);
			close(cfd);
			smtp_clients--;
			pthread_mutex_unlock(&smtp_count_lock);
		}
	}
}

/* ---- signals, main ---- */

static void
smtp_sigterm(int signo, void *ctx)
{
	(void)ctx;
	log_info("stopping on signal %d", signo);
	ioloop_stop();
}

static void
smtp_sighup(int signo, void *ctx)
{
	const char *err;

	(void)signo;
	(void)ctx;
	/* Wait until no thread is inside dns/rewrite, then swap. */
	(void)pthread_rwlock_wrlock(&smtp_cfg_lock);
	if (cfg_load(cfg_path()) != 0) {
		(void)pthread_rwlock_unlock(&smtp_cfg_lock);
		log_warning("reload failed, keeping the old configuration: %s",
		    cfg_first_error() != NULL ? cfg_first_error() : "?");
		return;
	}
	if (dns_init(&err) < 0)
		log_warning("DNS settings: %s", err);
	rewrite_reset();
	if (rewrite_init(&err) < 0)
		log_warning("rewriting: %s", err);
	smtp_settings_install(smtp_settings_new());
	(void)pthread_rwlock_unlock(&smtp_cfg_lock);
	/* Cached sessions were set up under the old settings. */
	smtp_cache_flush(false);
	log_info("configuration reloaded");
}

static void
smtp_listen(void)
{
	char *path = xasprintf("%s/private/smtp", queue_dir);

	/* Owned by run_user, as qmgr: only it may ask for deliveries. */
	listen_fd = fdio_unix_bind(path, SOCK_STREAM, 0600, 64);
	if (listen_fd < 0)
		log_fatal("cannot listen on %s: %m", path);
	free(path);
	listen_io = io_add(listen_fd, IOLOOP_READ, smtp_accept, NULL);
}

/*
 * After SIGTERM: let deliveries in progress finish, for a while, then end
 * the connections from qmgr so that their threads exit (and with them
 * their OpenSSL and libc thread state) before the process does.
 */
static void
smtp_drain(void)
{
	struct timespec ts;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += SMTP_STOP_WAIT;
	pthread_mutex_lock(&smtp_count_lock);
	smtp_stopping = true;
	while (smtp_busy > 0) {
		if (pthread_cond_timedwait(&smtp_count_cond, &smtp_count_lock,
		    &ts) == ETIMEDOUT) {
			log_warning("stopping with %u deliveries in progress",
			    smtp_busy);
			pthread_mutex_unlock(&smtp_count_lock);
			return;
		}
	}
	/* Idle threads wait in read(): make it return 0. */
	for (i = 0; i < SMTP_MAX_CLIENTS; i++)
		if (smtp_client_fds[i] != 0)
			(void)shutdown(smtp_client_fds[i] - 1, SHUT_RDWR);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	while (smtp_clients > 0)
		if (pthread_cond_timedwait(&smtp_count_cond, &smtp_count_lock,
		    &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&smtp_count_lock);
}

int
main(int argc, char **argv)
{
	const char *config = CFG_DEFAULT_PATH, *err;
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		default:
			fprintf(stderr, "usage: smtp [-c CONFIG]\n");
			return 2;
		}
	}
	log_init("smtp", false);
	if (cfg_load(config) != 0)
		log_fatal("%s", cfg_first_error() != NULL ?
		    cfg_first_error() : "cannot load the configuration");
	if (geteuid() == 0)
		log_fatal("must not run as root: posternd starts it as "
		    "run_user");
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	queue_dir = xstrdup(cfg_get("queue_directory"));
	if (dns_init(&err) < 0)
		log_fatal("DNS settings: %s", err);
	if (rewrite_init(&err) < 0)
		log_fatal("rewriting: %s", err);
	smtp_settings_install(smtp_settings_new());

	ioloop_init();
	/* Signals first: threads inherit the blocked mask. */
	ioloop_signal(SIGTERM, smtp_sigterm, NULL);
	ioloop_signal(SIGINT, smtp_sigterm, NULL);
	ioloop_signal(SIGHUP, smtp_sighup, NULL);
	smtp_listen();
	smtp_cache_start();
	log_info("started");
	ioloop_run();
	io_remove(&listen_io);
	close(listen_fd);
	smtp_drain();
	smtp_cache_stop();
	smtp_settings_install(NULL);
	log_info("stopped");
	return 0;
}
