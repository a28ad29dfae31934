/*
 * smtpd_auth: SMTP AUTH (RFC 4954) for smtpd, through the auth service
 * (auth/auth_client.h, doc/internals.md "Authentication").  smtpd never
 * sees a password database: it checks the command's syntax and the
 * session's right to authenticate, relays the SASL exchange (334
 * challenges, base64 client lines) and keeps the name the auth service
 * vouched for.
 *
 * Where AUTH is offered: always on the submission and smtps listeners,
 * on port 25 only with smtpd_sasl_auth_enable = yes, never on local
 * submission (public/pickup).  smtpd_tls_auth_only = yes hides it until
 * TLS is up.  Mechanisms that send the password itself (PLAIN, LOGIN)
 * are offered only over TLS, from loopback with plaintext_auth_loopback
 * = yes, or with disable_plaintext_auth = no (DESIGN §7); RFC 4954 §4
 * requires a server to be configurable that way.
 *
 * While the auth service decides, the session reads nothing from the
 * client (SMTPD_STATE_AUTH_WAIT): commands pipelined after an AUTH with
 * an initial response (RFC 4954 §4 allows that for PLAIN) are taken
 * once the outcome is known, under the identity it gave.
 *
 * Failures are logged in the form Postfix uses and fail2ban's
 * postfix-sasl filter matches:
 *   warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: REASON
 * The reason comes from the auth service, which never tells a wrong
 * password from an unknown user; the client gets the same 535 for both.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "auth_client.h"
#include "base64.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

/* Bytes of the auth service's failure reason kept for the log. */
#define SMTPD_AUTH_MAX_REASON	100

static void	smtpd_auth_done(enum auth_client_result result,
	    const char *user, const char *data, const char *reason, void *ctx);

/* ---- policy ---- */

/* The connection protects a password: TLS, or trusted loopback. */
static bool
smtpd_auth_secured(const struct smtpd_session *s)
{
	return smtpd_session_tls_active(s) ||
	    (s->loopback && s->set->plaintext_loopback);
}

/* PLAIN and LOGIN may be used on this connection (DESIGN §7). */
static bool
smtpd_auth_plaintext_ok(const struct smtpd_session *s)
{
	return !s->set->plaintext_disabled || smtpd_auth_secured(s);
}

/* The AUTH command exists for this session at all. */
static bool
smtpd_auth_enabled(const struct smtpd_session *s)
{
	if (s->local)
		return false;
	return s->service != SMTPD_SERVICE_SMTP || s->set->sasl_enable;
}

bool
smtpd_auth_offered(const struct smtpd_session *s)
{
	return smtpd_auth_enabled(s) &&
	    !(s->set->tls_auth_only && !smtpd_session_tls_active(s));
}

void
smtpd_auth_ehlo(struct smtpd_session *s, struct buf *reply)
{
	const char *mechs;

	if (!smtpd_auth_offered(s))
		return;
	mechs = auth_client_mechs(smtpd_auth_plaintext_ok(s));
	if (*mechs == '\0')
		return;		/* none usable here, or auth is down */
	buf_printf(reply, "250-AUTH %s\r\n", mechs);
	/* Postfix broken_sasl_auth_clients: Outlook Express 4 and other
	 * clients of RFC 2554 drafts look for "AUTH=". */
	if (s->set->sasl_broken)
		buf_printf(reply, "250-AUTH=%s\r\n", mechs);
}

bool
smtpd_auth_mail_allowed(struct smtpd_session *s)
{
	char helo[256];
	const char *h = s->helo != NULL ? s->helo : "";
	const char *r = "530 5.7.0 Authentication required";

	if (s->sasl_user != NULL || !s->set->submission_auth ||
	    (s->service != SMTPD_SERVICE_SUBMISSION &&
	    s->service != SMTPD_SERVICE_SMTPS))
		return true;
	/* RFC 4954 §6: 530 when the policy needs AUTH first. */
	log_escape(helo, sizeof(helo), h, strlen(h));
	log_info("NOQUEUE: reject: MAIL from %s: %s; proto=%s helo=<%s>",
	    smtpd_session_client(s), r, smtpd_session_proto(s), helo);
	smtpd_session_reply(s, "%s", r);
	return false;
}

/* ---- helpers ---- */

/* Is text (len bytes) valid base64 (RFC 4954 §4: strict)? */
static bool
smtpd_auth_base64_ok(const char *text, size_t len)
{
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = base64_decode(&b, text, len) == 0;
	if (b.data != NULL)
		explicit_bzero(b.data, b.cap);	/* a password, maybe */
	buf_free(&b);
	return ok;
}

/* Is mech (upper case) a word of the space separated list? */
static bool
smtpd_auth_listed(const char *list, const char *mech)
{
	size_t len = strlen(mech);
	const char *p = list;

	while ((p = strstr(p, mech)) != NULL) {
		if ((p == list || p[-1] == ' ') &&
		    (p[len] == '\0' || p[len] == ' '))
			return true;
		p += len;
	}
	return false;
}

/* The numeric local address of the session, for the auth request. */
static void
smtpd_auth_local_addr(const struct smtpd_session *s, char *dst,
    size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	str_lcpy(dst, "unknown", size);
	memset(&ss, 0, sizeof(ss));
	if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], dst,
			    (socklen_t)size);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, dst,
			    (socklen_t)size);
	} else if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    dst, (socklen_t)size);
}

/*
 * The reason for the failure log line, in the characters fail2ban's
 * postfix-sasl filter accepts after "failed:" (letters, digits, space,
 * '+', '/', ':'); anything else becomes a space.
 */
static void
smtpd_auth_clean_reason(char *dst, size_t size, const char *reason)
{
	size_t i;

	if (reason == NULL || *reason == '\0')
		reason = "authentication failure";
	str_lcpy(dst, reason, size);
	for (i = 0; dst[i] != '\0'; i++) {
		char c = dst[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == ' ' || c == '+' ||
		    c == '/' || c == ':'))
			dst[i] = ' ';
	}
}

/* The exchange is over (any outcome): back to commands. */
static void
smtpd_auth_end(struct smtpd_session *s, bool ok)
{
	free(s->auth_mech);
	s->auth_mech = NULL;
	smtpd_session_count_stat(s, SMTPD_STAT_AUTH, ok);
	smtpd_session_enter_state(s, SMTPD_STATE_CMD);
}

void
smtpd_auth_abort(struct smtpd_session *s)
{
	if (s->auth_req != NULL)
		auth_request_abort(&s->auth_req);
	free(s->auth_mech);
	s->auth_mech = NULL;
}

void
smtpd_auth_reset(struct smtpd_session *s)
{
	free(s->sasl_user);
	free(s->sasl_method);
	s->sasl_user = NULL;
	s->sasl_method = NULL;
}

/* ---- the command ---- */

/* A reply that ends the AUTH command before any exchange began. */
static void
smtpd_auth_refuse(struct smtpd_session *s, const char *reply)
{
	smtpd_session_count_stat(s, SMTPD_STAT_AUTH, false);
	smtpd_session_reply(s, "%s", reply);
}

void
smtpd_auth_cmd(struct smtpd_session *s, const char *args)
{
	struct auth_request_info info;
	char mech[32], lip[INET6_ADDRSTRLEN];
	const char *initial = NULL, *sp;
	char *all;
	bool plaintext_ok, offered;
	size_t mlen, i;

	if (!smtpd_auth_enabled(s)) {
		smtpd_auth_refuse(s, "503 5.5.1 Error: authentication not "
		    "enabled");
		return;
	}
	if (s->phase == SMTPD_PHASE_INIT) {
		smtpd_auth_refuse(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	/* RFC 4954 §4: not during a transaction, not twice. */
	if (s->txn != NULL) {
		smtpd_auth_refuse(s, "503 5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	if (s->sasl_user != NULL) {
		smtpd_auth_refuse(s, "503 5.5.1 Error: already "
		    "authenticated");
		return;
	}
	if (s->set->tls_auth_only && !smtpd_session_tls_active(s)) {
		/* smtpd_tls_auth_only; RFC 4954 §6 gives 538 for this. */
		smtpd_auth_refuse(s, "538 5.7.11 Encryption required for "
		    "requested authentication mechanism");
		return;
	}

	/* "AUTH" SP mechanism [SP initial-response] */
	sp = args + strcspn(args, " \t");
	mlen = (size_t)(sp - args);
	if (*sp != '\0') {
		initial = sp + strspn(sp, " \t");
		if (initial[strcspn(initial, " \t")] != '\0')
			mlen = 0;	/* a third word */
	}
	if (mlen == 0) {
		smtpd_auth_refuse(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	if (mlen >= sizeof(mech)) {
		smtpd_auth_refuse(s, "504 5.5.4 Unrecognized authentication "
		    "type");
		return;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	if (!smtpd_sasl_mech_valid(mech)) {
		smtpd_auth_refuse(s, "504 5.5.4 Unrecognized authentication "
		    "type");
		return;
	}
	for (i = 0; i < mlen; i++)
		if (mech[i] >= 'a' && mech[i] <= 'z')
			mech[i] = (char)(mech[i] - 32);

	/*
	 * One look at the mechanisms: when auth cannot be reached, asking
	 * connects again, and that blocks (auth_client.h).
	 */
	plaintext_ok = smtpd_auth_plaintext_ok(s);
	all = xstrdup(auth_client_mechs(true));
	if (*all == '\0') {
		free(all);
		log_warning("%s: SASL %s: authentication service unavailable",
		    smtpd_session_client(s), mech);
		smtpd_auth_refuse(s, "454 4.7.0 Temporary authentication "
		    "failure");
		return;
	}
	offered = smtpd_auth_listed(all, mech);
	free(all);
	if (!offered) {
		smtpd_auth_refuse(s, "504 5.5.4 Unrecognized authentication "
		    "type");
		return;
	}
	if (!plaintext_ok &&
	    !smtpd_auth_listed(auth_client_mechs(false), mech)) {
		/* A password in the clear on an unprotected connection. */
		smtpd_auth_refuse(s, "538 5.7.11 Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	/* RFC 4954 §4: "=" is an empty initial response. */
	if (initial != NULL && strcmp(initial, "=") != 0 &&
	    !smtpd_auth_base64_ok(initial, strlen(initial))) {
		smtpd_auth_refuse(s, "501 5.5.2 Cannot decode response");
		return;
	}

	smtpd_auth_local_addr(s, lip, sizeof(lip));
	memset(&info, 0, sizeof(info));
	info.service = "smtp";	/* RFC 4954 §4, also for submission */
	info.rip = s->addr;
	info.lip = lip;
	info.secured = smtpd_auth_secured(s);
	s->auth_mech = xstrdup(mech);
	/* Parked before the request: its answer may come at any time. */
	smtpd_session_enter_state(s, SMTPD_STATE_AUTH_WAIT);
	s->auth_req = auth_request_new(mech, &info, initial, smtpd_auth_done,
	    s);
	if (s->auth_req == NULL) {
		smtpd_auth_end(s, false);
		smtpd_session_reply(s, "454 4.7.0 Temporary authentication "
		    "failure");
	}
}

void
smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		/* RFC 4954 §4: the client cancels; 501.  Postfix's line,
		 * which fail2ban does not count as a failure. */
		log_warning("%s: SASL %s authentication aborted",
		    smtpd_session_client(s), s->auth_mech != NULL ?
		    s->auth_mech : "?");
		smtpd_auth_abort(s);
		smtpd_auth_end(s, false);
		smtpd_session_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (!smtpd_auth_base64_ok(line, len)) {
		/* RFC 4954 §4: 501 5.5.2 for what is not base64. */
		smtpd_auth_abort(s);
		smtpd_auth_end(s, false);
		smtpd_session_reply(s, "501 5.5.2 Cannot decode response");
		return;
	}
	smtpd_session_enter_state(s, SMTPD_STATE_AUTH_WAIT);
	auth_request_continue(s->auth_req, line);
}

void
smtpd_auth_overlong(struct smtpd_session *s)
{
	/* RFC 4954 §4: longer than our authentication buffer. */
	smtpd_auth_abort(s);
	smtpd_auth_end(s, false);
	smtpd_session_reply(s, "500 5.5.6 Authentication Exchange line is "
	    "too long");
}

/* The auth service's answer (from the loop). */
static void
smtpd_auth_done(enum auth_client_result result, const char *user,
    const char *data, const char *reason, void *ctx)
{
	struct smtpd_session *s = ctx;
	const char *mech = s->auth_mech != NULL ? s->auth_mech : "?";
	char why[SMTPD_AUTH_MAX_REASON], name[SMTPD_MAX_SASL_USER];

	if (result == AUTH_CLIENT_CONTINUE) {
		/* RFC 4954 §4: the challenge alone; "334 " if empty. */
		smtpd_session_reply(s, "334 %s", data != NULL ? data : "");
		smtpd_session_enter_state(s, SMTPD_STATE_AUTH);
		smtpd_session_resume(s);
		return;
	}
	/* Final: the library frees the request when we return. */
	s->auth_req = NULL;
	if (result == AUTH_CLIENT_OK && (user == NULL || *user == '\0'))
		result = AUTH_CLIENT_TEMPFAIL;	/* cannot happen */
	switch (result) {
	case AUTH_CLIENT_OK:
		/* The name goes into the log, the C record and the
		 * Received header: printable, bounded. */
		log_escape(name, sizeof(name), user, strlen(user));
		s->sasl_user = xstrdup(name);
		s->sasl_method = xstrdup(mech);
		smtpd_auth_end(s, true);
		smtpd_session_reply(s, "235 2.7.0 Authentication successful");
		break;
	case AUTH_CLIENT_FAIL:
		smtpd_auth_clean_reason(why, sizeof(why), reason);
		log_warning("%s: SASL %s authentication failed: %s",
		    smtpd_session_client(s), mech, why);
		smtpd_auth_end(s, false);
		smtpd_session_reply(s, "535 5.7.8 Authentication credentials "
		    "invalid");
		break;
	default:
		/* Not the client's fault: no "failed" for fail2ban. */
		smtpd_auth_clean_reason(why, sizeof(why), reason != NULL ?
		    reason : "authentication service unavailable");
		log_warning("%s: SASL %s authentication temporarily "
		    "unavailable: %s", smtpd_session_client(s), mech, why);
		smtpd_auth_end(s, false);
		smtpd_session_reply(s, "454 4.7.0 Temporary authentication "
		    "failure");
		break;
	}
	smtpd_session_resume(s);
}
