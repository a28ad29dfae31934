/*
 * smtp_sasl: SMTP AUTH as a client (RFC 4954) for relaying through a
 * provider: the password lookup in $smtp_sasl_password_maps and the PLAIN
 * (RFC 4616) and LOGIN exchanges.
 *
 * Which mechanisms may be used follows Postfix's settings:
 * $smtp_sasl_mechanism_filter (when set) keeps only the mechanisms it
 * names; $smtp_sasl_security_options (plaintext sessions) or
 * $smtp_sasl_tls_security_options (TLS sessions) exclude mechanisms by
 * property.  PLAIN and LOGIN send the password itself and withstand
 * neither active nor dictionary attacks, so "noplaintext", "noactive",
 * "nodictionary" and "mutual_auth" each rule both out, exactly as they
 * do with Cyrus SASL in Postfix.  Postfix's default, "noplaintext,
 * noanonymous", therefore allows no mechanism at all: a relayhost setup
 * sets "smtp_sasl_security_options = noanonymous", as the Postfix
 * documentation says.  PLAIN is preferred to LOGIN.
 *
 * Passwords are wiped from memory as soon as they are sent and never
 * logged; error texts carry the server's reply only.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "map.h"
#include "smtp.h"
#include "str.h"
#include "xmalloc.h"

/* Rounds of 334 challenges a mechanism may take before we give up. */
#define SMTP_SASL_MAX_STEPS	4

/* ---- password lookup ---- */

static int
smtp_sasl_try(struct smtp_settings *set, const char *key, char **value_r)
{
	char *k = xstrdup(key);
	int r;

	/* Table keys are lowercase (map.h); host names are not case
	 * sensitive. */
	(void)str_lower(k);
	pthread_mutex_lock(&set->sasl_lock);
	r = map_list_lookup(set->sasl_maps, k, value_r);
	pthread_mutex_unlock(&set->sasl_lock);
	free(k);
	return r;
}

int
smtp_sasl_lookup(struct smtp_settings *set, const char *nexthop,
    const char *domain, const char *host, unsigned port, char **user_r,
    char **pass_r, const char **why_r)
{
	char *keys[4], *value = NULL, *colon;
	size_t i, n = 0;
	int r = 0;

	*user_r = *pass_r = NULL;
	if (set->sasl_maps == NULL) {
		if (set->sasl_maps_error != NULL) {
			*why_r = set->sasl_maps_error;
			return -1;
		}
		return 0;
	}
	keys[n++] = xasprintf("[%s]:%u", host, port);
	keys[n++] = xstrdup(host);
	keys[n++] = xstrdup(domain);
	keys[n++] = xstrdup(nexthop);
	for (i = 0; i < n && r == 0; i++) {
		size_t j;
		bool seen = false;

		for (j = 0; j < i; j++)
			if (str_case_eq(keys[j], keys[i]))
				seen = true;
		if (!seen)
			r = smtp_sasl_try(set, keys[i], &value);
	}
	for (i = 0; i < n; i++)
		free(keys[i]);
	if (r < 0) {
		*why_r = "smtp_sasl_password_maps lookup failed";
		return -1;
	}
	if (r == 0)
		return 0;
	/* "user:password"; the password may hold colons. */
	if ((colon = strchr(value, ':')) == NULL) {
		*user_r = xstrdup(value);
		*pass_r = xstrdup("");
	} else {
		*user_r = xstrndup(value, (size_t)(colon - value));
		*pass_r = xstrdup(colon + 1);
	}
	explicit_bzero(value, strlen(value));
	free(value);
	return 1;
}

/* ---- mechanism choice ---- */

static bool
smtp_sasl_allowed(struct smtp_settings *set, bool tls, const char *mech)
{
	char **opts = tls ? set->sasl_tls_opts : set->sasl_opts;
	static const char *const excl[] = {
		"noplaintext", "noactive", "nodictionary", "mutual_auth", NULL
	};
	size_t i;

	if (set->sasl_filter != NULL && set->sasl_filter[0] != NULL &&
	    !strv_contains_case(set->sasl_filter, mech))
		return false;
	/* Both mechanisms we have are plaintext ones. */
	for (i = 0; excl[i] != NULL; i++)
		if (opts != NULL && strv_contains_case(opts, excl[i]))
			return false;
	return true;
}

/* ---- the exchange ---- */

static int
smtp_sasl_cmd(struct smtp_conn *c, struct buf *cmd, struct smtp_reply *r,
    unsigned timeout)
{
	int ret = smtp_conn_write(c, cmd->data, cmd->len, timeout);

	explicit_bzero(cmd->data, cmd->cap);
	buf_reset(cmd);
	if (ret < 0)
		return -1;
	return smtp_conn_read_reply(c, r, timeout);
}

/* The base64 of s, then CRLF, appended to b. */
static void
smtp_sasl_b64(struct buf *b, const char *s, size_t len)
{
	(void)base64_encode(b, s, len);
	(void)buf_append(b, "\r\n", 2);
}

int
smtp_sasl_auth(struct smtp_settings *set, struct smtp_conn *c, bool tls,
    const char *user, const char *pass, int *reply_code_r, char *errbuf,
    size_t errsize)
{
	struct smtp_reply r;
	struct buf cmd, tok;
	const char *mech = NULL;
	unsigned timeout = set->helo_timeout;
	int step, ret = -1;

	*reply_code_r = 0;
	if (smtp_features_has_auth(&c->feat, "PLAIN") &&
	    smtp_sasl_allowed(set, tls, "PLAIN"))
		mech = "PLAIN";
	else if (smtp_features_has_auth(&c->feat, "LOGIN") &&
	    smtp_sasl_allowed(set, tls, "LOGIN"))
		mech = "LOGIN";
	if (mech == NULL) {
		(void)snprintf(errbuf, errsize, "SASL authentication failed; "
		    "cannot authenticate to server %s: no mechanism available",
		    c->hostip);
		return 0;
	}
	smtp_reply_init(&r);
	buf_init(&cmd, 0);
	buf_init(&tok, 0);
	/* Room for everything at once: a buffer that grows would leave
	 * copies of the password in freed memory. */
	(void)buf_reserve(&tok, strlen(user) + strlen(pass) + 3);
	(void)buf_reserve(&cmd, base64_encoded_len(tok.cap) + 32);
	if (strcmp(mech, "PLAIN") == 0) {
		/* RFC 4616 §2: authzid NUL authcid NUL passwd, sent as the
		 * initial response (RFC 4954 §4). */
		(void)buf_append_char(&tok, '\0');
		(void)buf_append_str(&tok, user);
		(void)buf_append_char(&tok, '\0');
		(void)buf_append_str(&tok, pass);
		(void)buf_append_str(&cmd, "AUTH PLAIN ");
		smtp_sasl_b64(&cmd, tok.data, tok.len);
	} else
		(void)buf_append_str(&cmd, "AUTH LOGIN\r\n");
	for (step = 0; ; step++) {
		if (smtp_sasl_cmd(c, &cmd, &r, timeout) < 0) {
			if (c->err == SMTP_CONN_TIMEOUT)
				(void)snprintf(errbuf, errsize, "conversation "
				    "with %s timed out while performing SASL "
				    "authentication", c->hostip);
			else
				(void)snprintf(errbuf, errsize, "lost "
				    "connection with %s while performing SASL "
				    "authentication", c->hostip);
			goto out;
		}
		if (r.code != 334)
			break;
		if (step >= SMTP_SASL_MAX_STEPS) {
			(void)snprintf(errbuf, errsize, "SASL authentication "
			    "failed; server %s sent too many challenges",
			    c->hostip);
			(void)smtp_conn_write(c, "*\r\n", 3, timeout);
			goto out;
		}
		if (strcmp(mech, "PLAIN") == 0)
			/* The server ignored the initial response. */
			smtp_sasl_b64(&cmd, tok.data, tok.len);
		else if (step == 0)
			smtp_sasl_b64(&cmd, user, strlen(user));
		else
			smtp_sasl_b64(&cmd, pass, strlen(pass));
	}
	*reply_code_r = r.code;
	if (r.code == 235)
		ret = 1;
	else
		(void)snprintf(errbuf, errsize, "SASL authentication failed; "
		    "server %s said: %s", c->hostip, buf_cstr(&r.text));
out:
	explicit_bzero(tok.data, tok.cap);
	explicit_bzero(cmd.data, cmd.cap);
	buf_free(&tok);
	buf_free(&cmd);
	smtp_reply_free(&r);
	return ret;
}
