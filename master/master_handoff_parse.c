/*
 * master_handoff_parse: the checks posternd makes on the text of a
 * HANDOFF packet and of the auth service's USER answer (see
 * master_handoff.h).  Pure: no sockets, no globals, no logging.  Every
 * field is bounded and decoded once to be checked; what is passed on to
 * the mail process is the checked encoded text.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base64.h"
#include "buf.h"
#include "mailproc.h"
#include "master_handoff.h"
#include "str.h"
#include "xmalloc.h"

/*
 * Check one xtext field: it decodes, and the result is at most max bytes
 * without control characters (UTF-8 is fine).  Returns the decoded text
 * (malloc'ed) or NULL.
 */
static char *
handoff_field_check(const char *xtext, size_t max)
{
	char *plain = xtext_decode(xtext);
	const unsigned char *p;

	if (plain == NULL)
		return NULL;
	if (strlen(plain) > max) {
		free(plain);
		return NULL;
	}
	for (p = (const unsigned char *)plain; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			free(plain);
			return NULL;
		}
	}
	return plain;
}

static bool
handoff_ip_ok(const char *xtext)
{
	char *ip = handoff_field_check(xtext, INET6_ADDRSTRLEN);
	unsigned char a[16];
	bool ok;

	if (ip == NULL)
		return false;
	ok = inet_pton(AF_INET, ip, a) == 1 || inet_pton(AF_INET6, ip, a) == 1;
	free(ip);
	return ok;
}

static bool
handoff_port_ok(const char *s)
{
	long long v;

	return str_to_ll(s, 0, 65535, &v) == 0;
}

static bool
handoff_base64_ok(const char *s)
{
	struct buf b;
	bool ok;

	buf_init(&b, MAILPROC_MAX_MSG);
	ok = base64_decode(&b, s, strlen(s)) == 0;
	buf_free(&b);
	return ok;
}

/* ---- HANDOFF ---- */

const char *
master_handoff_parse(char *text, const char *proto,
    struct master_handoff_msg *m)
{
	static const char *const keys[] = {
		"rip", "rport", "lip", "lport", "tls", "pre", "tag"
	};
	const char *seen[7] = { NULL, NULL, NULL, NULL, NULL, NULL, NULL };
	char **f = strv_split(text, " ");
	struct buf fields;
	long long id;
	size_t i, k;
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (strv_len(f) < 8 || strcmp(f[0], "HANDOFF") != 0) {
		why = "not a HANDOFF";
		goto out;
	}
	if (str_to_ll(f[1], 0, 0xffffffffLL, &id) < 0) {
		why = "bad id";
		goto out;
	}
	if (strcmp(f[2], proto) != 0) {
		why = "wrong protocol";
		goto out;
	}
	if (strlen(f[3]) > HANDOFF_MAX_TICKET ||
	    strspn(f[3], "0123456789abcdefABCDEF") != strlen(f[3])) {
		why = "bad ticket";
		goto out;
	}
	for (i = 4; f[i] != NULL; i++) {
		char *eq = strchr(f[i], '=');

		if (eq == NULL) {
			why = "field without a value";
			goto out;
		}
		*eq = '\0';
		for (k = 0; k < 7; k++)
			if (strcmp(f[i], keys[k]) == 0)
				break;
		if (k == 7 || seen[k] != NULL) {
			why = "unknown or repeated field";
			goto out;
		}
		seen[k] = eq + 1;
	}
	for (k = 0; k < 4; k++) {
		if (seen[k] == NULL) {
			why = "missing field";
			goto out;
		}
	}
	if (!handoff_ip_ok(seen[0]) || !handoff_ip_ok(seen[2]) ||
	    !handoff_port_ok(seen[1]) || !handoff_port_ok(seen[3])) {
		why = "bad address";
		goto out;
	}
	for (k = 4; k < 7; k += 2) {
		char *plain;

		if (seen[k] == NULL)
			continue;
		plain = handoff_field_check(seen[k], HANDOFF_MAX_FIELD);
		if (plain == NULL) {
			why = k == 4 ? "bad tls" : "bad tag";
			goto out;
		}
		free(plain);
	}
	if (seen[5] != NULL && !handoff_base64_ok(seen[5])) {
		why = "bad pre";
		goto out;
	}
	buf_init(&fields, 0);
	for (k = 0; k < 7; k++)
		if (seen[k] != NULL)
			buf_printf(&fields, "%s%s=%s", k > 0 ? " " : "",
			    keys[k], seen[k]);
	m->id = (unsigned long)id;
	m->ticket = xstrdup(f[3]);
	m->fields = buf_steal(&fields);
out:
	strv_free(&f);
	return why;
}

void
master_handoff_msg_free(struct master_handoff_msg *m)
{
	if (m->ticket != NULL)
		explicit_bzero(m->ticket, strlen(m->ticket));
	free(m->ticket);
	free(m->fields);
	memset(m, 0, sizeof(*m));
}

/* ---- USER ---- */

void
master_handoff_user_free(struct master_handoff_user *u)
{
	free(u->name);
	free(u->home);
	free(u->mail);
	free(u->name_plain);
	memset(u, 0, sizeof(*u));
}

int
master_handoff_user_parse(char **f, struct master_handoff_user *u)
{
	bool have_uid = false, have_gid = false;
	char *home = NULL;
	size_t i;

	memset(u, 0, sizeof(*u));
	for (i = 0; f[i] != NULL; i++) {
		char *eq = strchr(f[i], '=');
		const char *v;
		long long n;

		if (eq == NULL)
			continue;
		*eq = '\0';
		v = eq + 1;
		if (strcmp(f[i], "user") == 0 && u->name == NULL) {
			if ((u->name_plain = handoff_field_check(v,
			    HANDOFF_MAX_FIELD)) == NULL ||
			    *u->name_plain == '\0')
				goto bad;
			u->name = xstrdup(v);
		} else if (strcmp(f[i], "uid") == 0) {
			if (str_to_ll(v, 0, 0xfffffffeLL, &n) < 0)
				goto bad;
			u->uid = (uid_t)n;
			have_uid = true;
		} else if (strcmp(f[i], "gid") == 0) {
			if (str_to_ll(v, 0, 0xfffffffeLL, &n) < 0)
				goto bad;
			u->gid = (gid_t)n;
			have_gid = true;
		} else if (strcmp(f[i], "home") == 0 && u->home == NULL) {
			home = handoff_field_check(v, HANDOFF_MAX_PATH);
			if (home == NULL || home[0] != '/')
				goto bad;
			u->home = xstrdup(v);
		} else if (strcmp(f[i], "mail") == 0 && u->mail == NULL) {
			char *m = handoff_field_check(v, HANDOFF_MAX_PATH);

			if (m == NULL)
				goto bad;
			free(m);
			u->mail = xstrdup(v);
		}
	}
	free(home);
	if (u->name == NULL || u->home == NULL || !have_uid || !have_gid)
		goto bad2;
	return 0;
bad:
	free(home);
bad2:
	master_handoff_user_free(u);
	return -1;
}
