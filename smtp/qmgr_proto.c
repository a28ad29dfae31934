/*
 * qmgr_proto: the reply lines of the smtp delivery agent, as qmgr reads
 * them (doc/internals.md, "Delivery: qmgr -> smtp"):
 *
 *   RCPT <index> <sent|defer|bounce> <dsn-code> <relay> <text>
 *   DONE <conn-seconds> <xfer-seconds>
 *
 * Fields are separated by exactly one space and xtext-encoded; an empty
 * text is allowed, nothing else may be empty.  The parser is pure: it
 * checks one line's syntax, the DSN code against the status, and the
 * bounds; what the line means for a request (is the index one of it,
 * was it answered before) is qmgr.c's business.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "limits_pst.h"
#include "qmgr.h"
#include "str.h"
#include "xmalloc.h"

bool
qmgr_dsn_valid(const char *dsn)
{
	const char *p = dsn;
	int part;

	/* RFC 3463 §2: class "." subject "." detail, 1-3 digits each. */
	if (*p != '2' && *p != '4' && *p != '5')
		return false;
	p++;
	for (part = 0; part < 2; part++) {
		int n = 0;

		if (*p++ != '.')
			return false;
		while (*p >= '0' && *p <= '9' && n < 4) {
			p++;
			n++;
		}
		if (n == 0 || n > 3)
			return false;
	}
	return *p == '\0';
}

/*
 * Split a copy of line at every single space, empty fields kept ("a  b"
 * is three fields).  Returns the number of fields, or max + 1 when there
 * are more than max.
 */
static size_t
qmgr_proto_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line, *sp;

	for (;;) {
		if (n == max)
			return max + 1;
		f[n++] = p;
		if ((sp = strchr(p, ' ')) == NULL)
			return n;
		*sp = '\0';
		p = sp + 1;
	}
}

/* Seconds as the agent writes them: "0.52", "12". */
static int
qmgr_proto_secs(const char *s, double *val_r)
{
	size_t len = strlen(s), digits = strspn(s, "0123456789");
	char *end;

	if (len == 0 || len > 20 || digits == 0)
		return -1;
	if (s[digits] != '\0' && (s[digits] != '.' || len == digits + 1 ||
	    strspn(s + digits + 1, "0123456789") != len - digits - 1))
		return -1;
	*val_r = strtod(s, &end);
	if (*end != '\0' || !(*val_r >= 0 && *val_r <= 1e7))
		return -1;
	return 0;
}

/* A relay name: printable, no spaces, bounded, not empty. */
static bool
qmgr_proto_relay_valid(const char *relay)
{
	const unsigned char *p;

	if (relay[0] == '\0' || strlen(relay) > QMGR_MAX_RELAY)
		return false;
	for (p = (const unsigned char *)relay; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	}
	return true;
}

void
qmgr_agent_reply_free(struct qmgr_agent_reply *r)
{
	free(r->dsn);
	free(r->relay);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

int
qmgr_agent_reply_parse(const char *line, struct qmgr_agent_reply *r,
    const char **error_r)
{
	char *copy, *f[7];
	size_t n;
	long long v;

	memset(r, 0, sizeof(*r));
	if (strlen(line) > MAX_IPC_LINE) {
		*error_r = "line too long";
		return -1;
	}
	copy = xstrdup(line);
	n = qmgr_proto_fields(copy, f, 6);
	if (n == 3 && strcmp(f[0], "DONE") == 0) {
		r->done = true;
		if (qmgr_proto_secs(f[1], &r->conn_s) < 0 ||
		    qmgr_proto_secs(f[2], &r->xfer_s) < 0) {
			*error_r = "bad DONE line";
			goto bad;
		}
		free(copy);
		return 0;
	}
	if (n != 6 || strcmp(f[0], "RCPT") != 0) {
		*error_r = "unexpected reply";
		goto bad;
	}
	if (str_to_ll(f[1], 0, INT_MAX, &v) < 0) {
		*error_r = "bad recipient index";
		goto bad;
	}
	r->idx = (size_t)v;
	if (strcmp(f[2], "sent") == 0)
		r->status = QMGR_STATUS_SENT;
	else if (strcmp(f[2], "relayed") == 0) {
		r->status = QMGR_STATUS_SENT;
		r->relayed = true;
	}
	else if (strcmp(f[2], "defer") == 0)
		r->status = QMGR_STATUS_DEFER;
	else if (strcmp(f[2], "bounce") == 0)
		r->status = QMGR_STATUS_BOUNCE;
	else {
		*error_r = "bad RCPT status";
		goto bad;
	}
	r->dsn = xtext_decode(f[3]);
	r->relay = xtext_decode(f[4]);
	r->text = xtext_decode(f[5]);
	if (r->dsn == NULL || r->relay == NULL || r->text == NULL) {
		*error_r = "bad xtext in RCPT line";
		goto bad;
	}
	/* The class must say what the status says (RFC 3463 §3.1). */
	if (!qmgr_dsn_valid(r->dsn) || r->dsn[0] !=
	    "245"[r->status == QMGR_STATUS_SENT ? 0 :
	    r->status == QMGR_STATUS_DEFER ? 1 : 2]) {
		*error_r = "bad DSN code in RCPT line";
		goto bad;
	}
	if (!qmgr_proto_relay_valid(r->relay)) {
		*error_r = "bad relay in RCPT line";
		goto bad;
	}
	free(copy);
	return 0;
bad:
	free(copy);
	qmgr_agent_reply_free(r);
	return -1;
}
