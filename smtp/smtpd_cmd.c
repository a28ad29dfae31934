/*
 * smtpd_cmd: the SMTP command table and one handler per command
 * (RFC 5321 §4.1.1 and the extensions we announce: PIPELINING, SIZE,
 * ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING, STARTTLS;
 * AUTH's exchange is in smtpd_auth.c).  The table says in which
 * protocol phases a command is allowed and whether it ends a pipeline
 * group; sequence errors are answered from it, not from ifs
 * scattered over the handlers.  Replies follow Postfix's wording with
 * RFC 3463 enhanced status codes (none on the greeting and HELO/EHLO).
 *
 * The transaction (struct smtpd_txn) lives from MAIL to the end of the
 * message, RSET or HELO/EHLO.  Message bytes are smtpd_data.c's job,
 * restrictions smtpd_check.c's.  A check that must wait for DNS or a
 * policy server parks the session (SMTPD_STATE_CHECK) and the handler
 * returns without a reply; smtpd_cmd_execute() keeps the line and runs
 * the command again when the answer is in, so a handler does nothing
 * before its checks that it could not do twice.
 *
 * Envelope addresses are rewritten here (rewrite.h): the sender with
 * canonical maps and masquerading at MAIL, each recipient with canonical
 * and virtual alias maps at RCPT, where one RCPT may become several
 * recipients (each keeps the address the client gave as its ORCPT).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "limits_pst.h"
#include "local_client.h"
#include "log.h"
#include "rewrite.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

/* The command ends a pipeline group (RFC 2920 §3.1): flush replies. */
#define SMTPD_CMD_F_FLUSH	0x1
/* The handler counts the command for the disconnect line itself. */
#define SMTPD_CMD_F_NOCOUNT	0x2
/* Needs HELO/EHLO first when smtpd_helo_required = yes. */
#define SMTPD_CMD_F_HELO	0x4

/* RFC 3461 §4.4: at most 100 characters of ENVID. */
#define SMTPD_MAX_ENVID		100
/* Recipients one transaction stores after virtual alias expansion. */
#define SMTPD_MAX_TXN_RCPTS	(10 * 1000)

struct smtpd_cmd {
	const char	*name;
	unsigned	 phases;	/* SMTPD_PHASE_* where allowed */
	unsigned	 flags;
	enum smtpd_stat	 stat;
	void		(*run)(struct smtpd_session *s,
			    struct smtpd_command *cmd);
};

static void	smtpd_cmd_helo(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_ehlo(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_mail(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_rcpt(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_data(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_bdat(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_rset(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_noop(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_quit(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_vrfy(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_expn(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_help(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_etrn(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_starttls(struct smtpd_session *,
	    struct smtpd_command *);
static void	smtpd_cmd_auth(struct smtpd_session *,
	    struct smtpd_command *);

#define P_ANY	SMTPD_PHASE_ANY
#define P_NOTX	(SMTPD_PHASE_INIT | SMTPD_PHASE_HELO)
#define P_TX	(SMTPD_PHASE_MAIL | SMTPD_PHASE_RCPT)

static const struct smtpd_cmd smtpd_cmds[] = {
	{ "HELO", P_ANY, SMTPD_CMD_F_FLUSH, SMTPD_STAT_HELO, smtpd_cmd_helo },
	{ "EHLO", P_ANY, SMTPD_CMD_F_FLUSH, SMTPD_STAT_EHLO, smtpd_cmd_ehlo },
	{ "MAIL", P_NOTX, SMTPD_CMD_F_HELO, SMTPD_STAT_MAIL, smtpd_cmd_mail },
	{ "RCPT", P_TX, SMTPD_CMD_F_HELO, SMTPD_STAT_RCPT, smtpd_cmd_rcpt },
	{ "DATA", SMTPD_PHASE_RCPT, SMTPD_CMD_F_HELO | SMTPD_CMD_F_FLUSH |
	    SMTPD_CMD_F_NOCOUNT, SMTPD_STAT_DATA, smtpd_cmd_data },
	/* BDAT checks its phase itself: the chunk is read either way. */
	{ "BDAT", P_ANY, SMTPD_CMD_F_NOCOUNT, SMTPD_STAT_BDAT,
	    smtpd_cmd_bdat },
	{ "RSET", P_ANY, 0, SMTPD_STAT_RSET, smtpd_cmd_rset },
	{ "NOOP", P_ANY, 0, SMTPD_STAT_NOOP, smtpd_cmd_noop },
	{ "QUIT", P_ANY, SMTPD_CMD_F_FLUSH, SMTPD_STAT_QUIT, smtpd_cmd_quit },
	{ "VRFY", P_ANY, 0, SMTPD_STAT_VRFY, smtpd_cmd_vrfy },
	{ "EXPN", P_ANY, 0, SMTPD_STAT_EXPN, smtpd_cmd_expn },
	{ "HELP", P_ANY, 0, SMTPD_STAT_HELP, smtpd_cmd_help },
	{ "ETRN", P_ANY, 0, SMTPD_STAT_ETRN, smtpd_cmd_etrn },
	{ "STARTTLS", P_ANY, 0, SMTPD_STAT_STARTTLS, smtpd_cmd_starttls },
	/* AUTH checks its phase itself (RFC 4954 §4 replies) and counts
	 * when the exchange ends; RFC 4954 §4: last in a pipeline group. */
	{ "AUTH", P_ANY, SMTPD_CMD_F_FLUSH | SMTPD_CMD_F_NOCOUNT,
	    SMTPD_STAT_AUTH, smtpd_cmd_auth },
};

/* ---- transaction ---- */

static struct smtpd_txn *
smtpd_txn_new(void)
{
	struct smtpd_txn *t = xcalloc(1, sizeof(*t));

	buf_init(&t->decoded, 0);
	buf_init(&t->hdrline, MAX_HEADER_LINE);
	buf_init(&t->msgid, SMTPD_MAX_MSGID);
	return t;
}

void
smtpd_txn_free(struct smtpd_txn **tp)
{
	struct smtpd_txn *t = *tp;
	size_t i;

	if (t == NULL)
		return;
	*tp = NULL;
	local_client_cancel(&t->lreq);
	queue_writer_abort(&t->qw);
	for (i = 0; i < t->rcpt_count; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].record);
		free(t->rcpts[i].key);
	}
	free(t->rcpts);
	free(t->sender);
	free(t->sender_given);
	free(t->last_rcpt);
	strv_free(&t->prepend);
	free(t->params);
	buf_free(&t->decoded);
	buf_free(&t->hdrline);
	buf_free(&t->msgid);
	free(t);
}

static void
smtpd_reset(struct smtpd_session *s)
{
	smtpd_txn_free(&s->txn);
	s->phase = s->helo != NULL ? SMTPD_PHASE_HELO : SMTPD_PHASE_INIT;
}

/* ---- HELO / EHLO ---- */

static bool
smtpd_has_ctrl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool
smtpd_hello(struct smtpd_session *s, struct smtpd_command *cmd,
    const char *verb)
{
	char *reply = NULL;
	int r;

	/* The hostname goes into the Received header and the C record:
	 * no control characters (TAB included). */
	if (cmd->args[0] == '\0' || smtpd_has_ctrl(cmd->args)) {
		smtpd_session_reply(s, "501 Syntax: %s hostname", verb);
		return false;
	}
	/* smtpd_delay_reject = no: smtpd_helo_restrictions now. */
	r = smtpd_check_helo(s, verb, cmd->args, &reply);
	if (r != 0) {
		if (r < 0)
			smtpd_session_reply(s, "%s", reply);
		free(reply);
		return false;
	}
	free(s->helo);
	s->helo = xstrdup(cmd->args);
	/* RFC 5321 §4.1.4: HELO/EHLO reset the transaction. */
	smtpd_reset(s);
	return true;
}

/* STARTTLS is offered: a certificate, TLS wanted, not yet in TLS. */
static bool
smtpd_cmd_tls_offered(const struct smtpd_session *s)
{
	return s->set->tls_ctx != NULL && s->set->tls_level != SMTPD_TLS_NONE &&
	    s->tls == NULL && !s->local;
}

static void
smtpd_cmd_helo(struct smtpd_session *s, struct smtpd_command *cmd)
{
	if (!smtpd_hello(s, cmd, "HELO"))
		return;
	s->esmtp = false;
	smtpd_session_reply(s, "250 %s", s->set->myhostname);
}

static void
smtpd_cmd_ehlo(struct smtpd_session *s, struct smtpd_command *cmd)
{
	struct buf r;

	if (!smtpd_hello(s, cmd, "EHLO"))
		return;
	s->esmtp = true;
	buf_init(&r, 0);
	buf_printf(&r, "250-%s\r\n", s->set->myhostname);
	buf_append_str(&r, "250-PIPELINING\r\n");
	if (s->set->size_limit > 0)
		buf_printf(&r, "250-SIZE %llu\r\n",
		    (unsigned long long)s->set->size_limit);
	else
		buf_append_str(&r, "250-SIZE\r\n");
	if (!s->set->vrfy_disabled)
		buf_append_str(&r, "250-VRFY\r\n");
	buf_append_str(&r, "250-ENHANCEDSTATUSCODES\r\n");
	buf_append_str(&r, "250-8BITMIME\r\n");
	buf_append_str(&r, "250-DSN\r\n");
	if (smtpd_cmd_tls_offered(s))
		buf_append_str(&r, "250-STARTTLS\r\n");
	smtpd_auth_ehlo(s, &r);
	if (s->set->smtputf8)
		buf_append_str(&r, "250-SMTPUTF8\r\n");
	buf_append_str(&r, "250 CHUNKING\r\n");
	smtpd_session_reply_raw(s, buf_cstr(&r));
	buf_free(&r);
}

/* ---- MAIL ---- */

static bool
smtpd_str_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Parse the parameters after the path into a writable copy. */
static int
smtpd_cmd_params(const char *rest, char **copy_r, struct smtpd_param *params)
{
	*copy_r = xstrdup(rest);
	return smtpd_params_parse(*copy_r, params, SMTPD_MAX_PARAMS);
}

static void
smtpd_cmd_mail(struct smtpd_session *s, struct smtpd_command *cmd)
{
	struct smtpd_param params[SMTPD_MAX_PARAMS];
	const char *path, *rest, *error, *ret = NULL, *envid = NULL;
	const char *body = NULL, *auth = NULL;
	char *addr = NULL, *copy = NULL, *sender = NULL, *reply = NULL;
	bool smtputf8 = false;
	uint64_t size = 0;
	struct smtpd_txn *t;
	struct buf f;
	int i, n;

	if (s->set->tls_level == SMTPD_TLS_ENCRYPT && !s->local &&
	    !smtpd_session_tls_active(s)) {
		/* smtpd_tls_security_level = encrypt (RFC 3207 §4) */
		smtpd_session_reply(s, "530 5.7.0 Must issue a STARTTLS "
		    "command first");
		return;
	}
	/* submission_auth_required on 587 and 465 */
	if (!smtpd_auth_mail_allowed(s))
		return;
	path = smtpd_parse_path_keyword(cmd->args, "FROM");
	if (path == NULL) {
		smtpd_session_reply(s, "501 5.5.4 Syntax: MAIL "
		    "FROM:<address>");
		return;
	}
	if (addr_parse_path(path, s->set->smtputf8, &addr, &rest,
	    &error) < 0) {
		if (strncmp(error, "501 5.1.3", 9) == 0)
			error = "501 5.1.7 Bad sender address syntax";
		smtpd_session_reply(s, "%s", error);
		return;
	}
	n = smtpd_cmd_params(rest, &copy, params);
	if (n < 0) {
		smtpd_session_reply(s, "501 5.5.4 Syntax error in "
		    "parameters");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *k = params[i].key, *v = params[i].value;

		if (strcmp(k, "SIZE") == 0) {
			if (v == NULL || smtpd_parse_number(v, UINT64_MAX,
			    &size) < 0) {
				smtpd_session_reply(s, "501 5.5.4 Bad message "
				    "size syntax");
				goto out;
			}
		} else if (strcmp(k, "BODY") == 0) {
			/* RFC 6152 §2 */
			if (v == NULL || body != NULL ||
			    (!str_case_eq(v, "7BIT") &&
			    !str_case_eq(v, "8BITMIME"))) {
				smtpd_session_reply(s, "501 5.5.4 Unsupported "
				    "BODY parameter value");
				goto out;
			}
			body = str_case_eq(v, "7BIT") ? "7BIT" : "8BITMIME";
		} else if (strcmp(k, "SMTPUTF8") == 0 && s->set->smtputf8) {
			/* RFC 6531 §3.4: no value. */
			if (v != NULL) {
				smtpd_session_reply(s, "501 5.5.4 Bad SMTPUTF8 "
				    "parameter syntax");
				goto out;
			}
			smtputf8 = true;
		} else if (strcmp(k, "RET") == 0) {
			/* RFC 3461 §4.3 */
			if (v == NULL || ret != NULL ||
			    (!str_case_eq(v, "FULL") &&
			    !str_case_eq(v, "HDRS"))) {
				smtpd_session_reply(s, "501 5.5.4 Bad RET "
				    "parameter syntax");
				goto out;
			}
			ret = str_case_eq(v, "FULL") ? "FULL" : "HDRS";
		} else if (strcmp(k, "ENVID") == 0) {
			/* RFC 3461 §4.4 */
			if (v == NULL || envid != NULL ||
			    strlen(v) > SMTPD_MAX_ENVID ||
			    !smtpd_xtext_valid(v)) {
				smtpd_session_reply(s, "501 5.5.4 Bad ENVID "
				    "parameter syntax");
				goto out;
			}
			envid = v;
		} else if (strcmp(k, "AUTH") == 0) {
			/* RFC 4954 §5: AUTH=<> or an xtext mailbox, at most
			 * 500 characters; we take the submitter to be the
			 * client itself, so it is checked, then ignored. */
			if (v == NULL || auth != NULL || strlen(v) > 500 ||
			    !smtpd_xtext_valid(v)) {
				smtpd_session_reply(s, "501 5.5.4 Bad AUTH "
				    "parameter syntax");
				goto out;
			}
			auth = v;
		} else {
			smtpd_session_reply(s, "555 5.5.4 Unsupported "
			    "option: %s", k);
			goto out;
		}
	}
	if (!smtputf8 && smtpd_str_8bit(addr)) {
		smtpd_session_reply(s, "553 5.6.7 Must declare SMTPUTF8 to "
		    "send unicode address");
		goto out;
	}
	if (s->set->size_limit > 0 && size > s->set->size_limit) {
		const char *r = "552 5.3.4 Message size exceeds fixed limit";

		log_info("NOQUEUE: reject: MAIL from %s: %s; from=<%s> "
		    "proto=%s helo=<%s>", smtpd_session_client(s), r, addr,
		    s->esmtp ? "ESMTP" : "SMTP", s->helo ? s->helo : "");
		smtpd_session_reply(s, "%s", r);
		goto out;
	}
	sender = addr_qualify(addr);
	/* smtpd_delay_reject = no: sender restrictions now, else at each
	 * RCPT (Postfix). */
	switch (smtpd_check_mail(s, sender, &reply)) {
	case 0:
		break;
	case 1:
		goto out;	/* parked: the command runs again */
	default:
		smtpd_session_reply(s, "%s", reply);
		goto out;
	}
	{
		const char *why = NULL;
		char *rewritten = rewrite_sender(sender, &why);

		if (rewritten == NULL) {
			log_warning("sender <%s>: %s", sender, why);
			smtpd_session_reply(s, "451 4.3.0 <%s>: Temporary "
			    "lookup failure", sender);
			goto out;
		}
		t = smtpd_txn_new();
		t->sender = rewritten;
	}
	t->sender_given = sender;
	sender = NULL;
	t->smtputf8 = smtputf8;
	t->size_declared = size;
	/* The f record: accepted parameters, normalised (queue_file.h). */
	buf_init(&f, 0);
	if (ret != NULL)
		buf_printf(&f, " RET=%s", ret);
	if (envid != NULL)
		buf_printf(&f, " ENVID=%s", envid);
	if (body != NULL)
		buf_printf(&f, " BODY=%s", body);
	if (smtputf8)
		buf_append_str(&f, " SMTPUTF8");
	t->params = xstrdup(f.len > 0 ? buf_cstr(&f) + 1 : "");
	buf_free(&f);
	s->txn = t;
	smtpd_check_new_txn(s);
	s->phase = SMTPD_PHASE_MAIL;
	smtpd_session_reply(s, "250 2.1.0 Ok");
out:
	free(reply);
	free(sender);
	free(copy);
	free(addr);
}

/* ---- RCPT ---- */

/* RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY. */
static char *
smtpd_notify_normalise(const char *v)
{
	char **words = strv_split(v, ",");
	unsigned bits = 0;
	size_t i, n = strv_len(words);
	struct buf b;
	bool bad = n == 0 || v[0] == ',' || v[strlen(v) - 1] == ',' ||
	    strstr(v, ",,") != NULL;

	for (i = 0; i < n && !bad; i++) {
		unsigned bit;

		if (str_case_eq(words[i], "NEVER"))
			bit = QUEUE_NOTIFY_NEVER;
		else if (str_case_eq(words[i], "SUCCESS"))
			bit = QUEUE_NOTIFY_SUCCESS;
		else if (str_case_eq(words[i], "FAILURE"))
			bit = QUEUE_NOTIFY_FAILURE;
		else if (str_case_eq(words[i], "DELAY"))
			bit = QUEUE_NOTIFY_DELAY;
		else
			bad = true;
		if (!bad && (bits & bit))
			bad = true;
		bits |= bit;
	}
	strv_free(&words);
	if (bad || ((bits & QUEUE_NOTIFY_NEVER) && bits != QUEUE_NOTIFY_NEVER))
		return NULL;
	if (bits == QUEUE_NOTIFY_NEVER)
		return xstrdup("NEVER");
	buf_init(&b, 0);
	if (bits & QUEUE_NOTIFY_SUCCESS)
		buf_append_str(&b, ",SUCCESS");
	if (bits & QUEUE_NOTIFY_FAILURE)
		buf_append_str(&b, ",FAILURE");
	if (bits & QUEUE_NOTIFY_DELAY)
		buf_append_str(&b, ",DELAY");
	{
		char *r = xstrdup(buf_cstr(&b) + 1);

		buf_free(&b);
		return r;
	}
}

/* RFC 3461 §4.2: ORCPT=addr-type ";" xtext, addr-type an atom. */
static char *
smtpd_orcpt_normalise(const char *v)
{
	const char *semi = strchr(v, ';');
	char *type, *r;
	const char *p;

	if (semi == NULL || semi == v || semi[1] == '\0' ||
	    !smtpd_xtext_valid(semi + 1))
		return NULL;
	for (p = v; p < semi; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return NULL;
	type = xstrndup(v, (size_t)(semi - v));
	str_lower(type);
	r = xasprintf("%s;%s", type, semi + 1);
	free(type);
	return r;
}

static bool
smtpd_is_postmaster(const char *addr)
{
	return str_case_eq(addr, "postmaster");
}

/*
 * Store one recipient.  Like Postfix's cleanup, the same recipient with
 * the same DSN parameters twice in one transaction is stored once.
 */
static void
smtpd_cmd_add_rcpt(struct smtpd_txn *t, const char *addr,
    const char *notify, const char *orcpt)
{
	struct smtpd_rcpt *r;
	struct buf rec;
	char *norm, *key;
	size_t j;

	buf_init(&rec, 0);
	if (notify != NULL)
		buf_printf(&rec, "\tNOTIFY=%s", notify);
	if (orcpt != NULL)
		buf_printf(&rec, "\tORCPT=%s", orcpt);
	norm = addr_normalize(addr);
	key = xasprintf("%s%s", norm, buf_cstr(&rec));
	free(norm);
	for (j = 0; j < t->rcpt_count; j++)
		if (strcmp(t->rcpts[j].key, key) == 0)
			break;
	if (j < t->rcpt_count) {
		free(key);
		buf_free(&rec);
		return;
	}
	t->rcpts = xreallocarray(t->rcpts, t->rcpt_count + 1,
	    sizeof(*t->rcpts));
	r = &t->rcpts[t->rcpt_count++];
	r->addr = xstrdup(addr);
	r->record = xasprintf("%s%s", addr, buf_cstr(&rec));
	r->key = key;
	buf_free(&rec);
}

static void
smtpd_cmd_rcpt(struct smtpd_session *s, struct smtpd_command *cmd)
{
	struct smtpd_param params[SMTPD_MAX_PARAMS];
	struct smtpd_txn *t = s->txn;
	const char *path, *rest, *error;
	char *addr = NULL, *copy = NULL, *notify = NULL, *orcpt = NULL;
	char *qualified = NULL, *reply = NULL, **final = NULL;
	size_t f;
	int i, n;

	if (t->rcpt_accepted >= s->set->rcpt_limit) {
		smtpd_session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	path = smtpd_parse_path_keyword(cmd->args, "TO");
	if (path == NULL) {
		smtpd_session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (addr_parse_path(path, t->smtputf8, &addr, &rest, &error) < 0) {
		smtpd_session_reply(s, "%s", error);
		return;
	}
	if (addr[0] == '\0') {
		smtpd_session_reply(s, "501 5.1.3 Bad recipient address "
		    "syntax");
		goto out;
	}
	n = smtpd_cmd_params(rest, &copy, params);
	if (n < 0) {
		smtpd_session_reply(s, "501 5.5.4 Syntax error in "
		    "parameters");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *k = params[i].key, *v = params[i].value;

		if (strcmp(k, "NOTIFY") == 0) {
			if (v == NULL || notify != NULL ||
			    (notify = smtpd_notify_normalise(v)) == NULL) {
				smtpd_session_reply(s, "501 5.5.4 Error: Bad "
				    "NOTIFY parameter syntax");
				goto out;
			}
		} else if (strcmp(k, "ORCPT") == 0) {
			if (v == NULL || orcpt != NULL ||
			    (orcpt = smtpd_orcpt_normalise(v)) == NULL) {
				smtpd_session_reply(s, "501 5.5.4 Error: Bad "
				    "ORCPT parameter syntax");
				goto out;
			}
		} else {
			smtpd_session_reply(s, "555 5.5.4 Unsupported "
			    "option: %s", k);
			goto out;
		}
	}
	/* Bare "user" and "postmaster" get @$myorigin (RFC 5321 §4.5.1
	 * requires "postmaster" without a domain to be accepted). */
	qualified = addr_qualify(addr);
	switch (smtpd_check_rcpt(s, "RCPT", qualified, addr,
	    smtpd_is_postmaster(addr), &final, &reply)) {
	case 0:
		break;
	case 1:
		goto out;	/* parked: the command runs again */
	default:
		smtpd_session_reply(s, "%s", reply);
		goto out;
	}
	if (t->rcpt_count + strv_len(final) > SMTPD_MAX_TXN_RCPTS) {
		smtpd_session_reply(s, "452 4.5.3 Error: too many recipients");
		goto out;
	}
	for (f = 0; final[f] != NULL; f++) {
		char *o = orcpt;

		/* The address the client gave, for DSNs and the log's
		 * orig_to (RFC 3461 §4.2 lets the MTA add it). */
		if (o == NULL && strcmp(final[f], qualified) != 0) {
			char *x = xtext_encode(qualified, strlen(qualified));

			o = xasprintf("rfc822;%s", x);
			free(x);
		}
		smtpd_cmd_add_rcpt(t, final[f], notify, o);
		if (o != orcpt)
			free(o);
	}
	free(t->last_rcpt);
	t->last_rcpt = qualified;
	qualified = NULL;
	t->rcpt_accepted++;
	s->phase = SMTPD_PHASE_RCPT;
	smtpd_session_reply(s, "250 2.1.5 Ok");
out:
	strv_free(&final);
	free(reply);
	free(qualified);
	free(notify);
	free(orcpt);
	free(copy);
	free(addr);
}

/* ---- DATA, BDAT ---- */

static void
smtpd_cmd_data(struct smtpd_session *s, struct smtpd_command *cmd)
{
	char *reply = NULL;

	if (cmd->args[0] != '\0') {
		smtpd_session_reply(s, "501 5.5.4 Syntax: DATA");
		smtpd_session_count_stat(s, SMTPD_STAT_DATA, false);
		return;
	}
	if (s->txn->bdat) {
		/* RFC 3030 §3: no DATA in a BDAT transaction. */
		smtpd_session_reply(s, "503 5.5.1 Error: DATA command in "
		    "BDAT transaction");
		smtpd_session_count_stat(s, SMTPD_STAT_DATA, false);
		return;
	}
	switch (smtpd_check_data(s, "DATA", &reply)) {
	case 0:
		break;
	case 1:
		return;		/* parked: the command runs again */
	default:
		smtpd_session_reply(s, "%s", reply);
		smtpd_session_count_stat(s, SMTPD_STAT_DATA, false);
		free(reply);
		return;
	}
	if (smtpd_data_begin(s) < 0) {
		smtpd_session_reply(s, "451 4.3.0 Error: queue file write "
		    "error");
		smtpd_session_count_stat(s, SMTPD_STAT_DATA, false);
		return;
	}
	smtpd_data_decoder_init(&s->txn->dd);
	smtpd_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_session_enter_state(s, SMTPD_STATE_DATA);
}

/* Read the chunk, drop it, then answer reply (RFC 3030 §2). */
static void
smtpd_bdat_discard(struct smtpd_session *s, const char *reply)
{
	s->bdat_discard = true;
	free(s->bdat_reply);
	s->bdat_reply = xstrdup(reply);
	smtpd_session_enter_state(s, SMTPD_STATE_BDAT);
}

static void
smtpd_cmd_bdat(struct smtpd_session *s, struct smtpd_command *cmd)
{
	char **args = strv_split(cmd->args, " \t");
	size_t argc = strv_len(args);
	uint64_t size;

	/* RFC 3030 §3: "BDAT" SP chunk-size [ SP end-marker ] */
	if (argc < 1 || argc > 2 ||
	    smtpd_parse_number(args[0], (uint64_t)INT64_MAX, &size) < 0 ||
	    (argc == 2 && !str_case_eq(args[1], "LAST"))) {
		strv_free(&args);
		smtpd_session_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
		smtpd_session_count_stat(s, SMTPD_STAT_BDAT, false);
		return;
	}
	s->bdat_remaining = size;
	s->bdat_chunk = size;
	s->bdat_last = argc == 2;
	strv_free(&args);
	s->bdat_discard = false;

	if (s->phase == SMTPD_PHASE_INIT && s->set->helo_required)
		smtpd_bdat_discard(s, "503 5.5.1 Error: send HELO/EHLO first");
	else if (s->phase & (SMTPD_PHASE_INIT | SMTPD_PHASE_HELO))
		smtpd_bdat_discard(s, "503 5.5.1 Error: need MAIL command");
	else if (s->phase == SMTPD_PHASE_MAIL)
		smtpd_bdat_discard(s, "503 5.5.1 Error: need RCPT command");
	else {
		if (!s->txn->bdat) {
			char *reply = NULL;

			switch (smtpd_check_data(s, "BDAT", &reply)) {
			case 0:
				break;
			case 1:
				return;	/* parked: runs again */
			default:
				smtpd_bdat_discard(s, reply);
				free(reply);
				return;
			}
			s->txn->bdat = true;
			if (smtpd_data_begin(s) < 0) {
				smtpd_bdat_discard(s, "451 4.3.0 Error: queue "
				    "file write error");
				smtpd_reset(s);
				return;
			}
			smtpd_bdat_decoder_init(&s->txn->bd);
		}
		smtpd_session_enter_state(s, SMTPD_STATE_BDAT);
	}
}

/* ---- the rest ---- */

static void
smtpd_cmd_rset(struct smtpd_session *s, struct smtpd_command *cmd)
{
	if (cmd->args[0] != '\0') {
		smtpd_session_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtpd_reset(s);
	smtpd_session_reply(s, "250 2.0.0 Ok");
}

static void
smtpd_cmd_noop(struct smtpd_session *s, struct smtpd_command *cmd)
{
	(void)cmd;
	smtpd_session_reply(s, "250 2.0.0 Ok");
}

static void
smtpd_cmd_quit(struct smtpd_session *s, struct smtpd_command *cmd)
{
	(void)cmd;
	smtpd_session_reply(s, "221 2.0.0 Bye");
	smtpd_session_close(s);
}

static void
smtpd_cmd_vrfy(struct smtpd_session *s, struct smtpd_command *cmd)
{
	const char *rest, *error;
	char *addr = NULL, *qualified, *reply = NULL;

	if (cmd->args[0] == '\0') {
		smtpd_session_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	if (s->set->vrfy_disabled) {
		/* Our choice (issue 2): 252, not Postfix's 502. */
		smtpd_session_reply(s, "252 2.0.0 Cannot VRFY user, but will "
		    "accept message and attempt delivery");
		return;
	}
	if (addr_parse_path(cmd->args, s->set->smtputf8, &addr, &rest,
	    &error) < 0 || addr[0] == '\0' || *rest != '\0') {
		smtpd_session_reply(s, "501 5.1.3 Bad recipient address "
		    "syntax");
		free(addr);
		return;
	}
	qualified = addr_qualify(addr);
	switch (smtpd_check_rcpt(s, "VRFY", qualified, addr,
	    smtpd_is_postmaster(addr), NULL, &reply)) {
	case 0:
		smtpd_session_reply(s, "252 2.0.0 %s", qualified);
		break;
	case 1:
		break;		/* parked: the command runs again */
	default:
		smtpd_session_reply(s, "%s", reply);
		break;
	}
	free(reply);
	free(qualified);
	free(addr);
}

static void
smtpd_cmd_expn(struct smtpd_session *s, struct smtpd_command *cmd)
{
	(void)cmd;
	smtpd_session_reply(s, "502 5.5.1 EXPN command is disabled");
}

static void
smtpd_cmd_help(struct smtpd_session *s, struct smtpd_command *cmd)
{
	(void)cmd;
	smtpd_session_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT "
	    "DATA BDAT RSET NOOP QUIT VRFY HELP");
}

static void
smtpd_cmd_etrn(struct smtpd_session *s, struct smtpd_command *cmd)
{
	(void)cmd;
	smtpd_session_reply(s, "502 5.5.1 Error: command not implemented");
}

/* ---- STARTTLS (RFC 3207) ---- */

static void
smtpd_cmd_starttls(struct smtpd_session *s, struct smtpd_command *cmd)
{
	if (s->tls != NULL) {
		smtpd_session_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (cmd->args[0] != '\0') {
		smtpd_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (!smtpd_cmd_tls_offered(s)) {
		smtpd_session_reply(s, "502 5.5.1 Error: command not "
		    "implemented");
		return;
	}
	if (s->txn != NULL) {
		smtpd_session_reply(s, "503 5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	smtpd_session_reply(s, "220 2.0.0 Ready to start TLS");
	smtpd_session_starttls(s);
}

/* ---- AUTH (RFC 4954): smtpd_auth.c ---- */

static void
smtpd_cmd_auth(struct smtpd_session *s, struct smtpd_command *cmd)
{
	smtpd_auth_cmd(s, cmd->args);
	/* The initial response may hold a password. */
	explicit_bzero(cmd->args, strlen(cmd->args));
}

/* ---- dispatch ---- */

static const struct smtpd_cmd *
smtpd_cmd_find(const char *verb)
{
	size_t i;

	for (i = 0; i < sizeof(smtpd_cmds) / sizeof(smtpd_cmds[0]); i++)
		if (strcmp(smtpd_cmds[i].name, verb) == 0)
			return &smtpd_cmds[i];
	return NULL;
}

/*
 * Postfix smtpd_forbidden_commands: a web proxy request or a message
 * header sent as a command means the client is not speaking SMTP (or is
 * replaying text after a failed DATA): hang up.
 */
static bool
smtpd_cmd_forbidden(const struct smtpd_command *cmd)
{
	size_t n = strlen(cmd->verb);

	return strcmp(cmd->verb, "CONNECT") == 0 ||
	    strcmp(cmd->verb, "GET") == 0 || strcmp(cmd->verb, "POST") == 0 ||
	    (n > 1 && cmd->verb[n - 1] == ':');
}

static void
smtpd_cmd_phase_error(struct smtpd_session *s, const struct smtpd_cmd *c)
{
	if (s->phase == SMTPD_PHASE_INIT && s->set->helo_required)
		smtpd_session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
	else if (c->phases == P_NOTX)
		smtpd_session_reply(s, "503 5.5.1 Error: nested MAIL command");
	else if (s->phase & P_NOTX)
		smtpd_session_reply(s, "503 5.5.1 Error: need MAIL command");
	else
		smtpd_session_reply(s, "503 5.5.1 Error: need RCPT command");
}

void
smtpd_cmd_execute(struct smtpd_session *s, const char *line, size_t len)
{
	char copy[MAX_SMTP_LINE + 1];
	struct smtpd_command cmd;
	const struct smtpd_cmd *c;

	if (len > MAX_SMTP_LINE)
		len = MAX_SMTP_LINE;
	memcpy(copy, line, len);
	copy[len] = '\0';
	s->last_cmd = "UNKNOWN";
	if (smtpd_command_parse(copy, len, &cmd) < 0 || cmd.verb[0] == '\0') {
		/* NUL byte, empty line, absurd verb. */
		smtpd_session_count_stat(s, SMTPD_STAT_UNKNOWN, false);
		smtpd_session_reply(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	if (cmd.eight_bit && (!s->set->smtputf8 || !cmd.utf8_valid)) {
		/* RFC 6531 §3.3: UTF-8 only after SMTPUTF8 was offered. */
		smtpd_session_count_stat(s, SMTPD_STAT_UNKNOWN, false);
		smtpd_session_reply(s, "500 5.5.2 Error: %s",
		    s->set->smtputf8 ? "bad UTF-8 syntax" :
		    "non-ASCII characters in command");
		return;
	}
	c = smtpd_cmd_find(cmd.verb);
	if (c == NULL) {
		smtpd_session_count_stat(s, SMTPD_STAT_UNKNOWN, false);
		if (smtpd_cmd_forbidden(&cmd)) {
			char esc[100];

			log_warning("non-SMTP command from %s: %s",
			    smtpd_session_client(s),
			    log_escape(esc, sizeof(esc), line, len));
			smtpd_session_reply(s, "521 5.7.0 Error: I can break "
			    "rules, too. Goodbye.");
			smtpd_session_close(s);
			return;
		}
		smtpd_session_reply(s, "502 5.5.2 Error: command not "
		    "recognized");
		return;
	}
	s->last_cmd = c->name;
	if (smtpd_check_denied(s) != NULL && c->stat != SMTPD_STAT_QUIT) {
		/* smtpd_client_restrictions refused the client at connect
		 * (smtpd_delay_reject = no); RFC 5321 §3.1 lets it QUIT. */
		smtpd_session_count_stat(s, c->stat, false);
		smtpd_session_reply(s, "503 5.7.0 Error: access denied for %s",
		    smtpd_session_client(s));
		return;
	}
	if ((c->flags & SMTPD_CMD_F_HELO) && s->phase == SMTPD_PHASE_INIT &&
	    s->set->helo_required) {
		smtpd_session_count_stat(s, c->stat, false);
		smtpd_session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (!(c->phases & s->phase)) {
		smtpd_session_count_stat(s, c->stat, false);
		smtpd_cmd_phase_error(s, c);
		return;
	}
	c->run(s, &cmd);
	if (s->state == SMTPD_STATE_CHECK) {
		/* A restriction waits for a lookup: run it all again then
		 * (the line, not the parsed copy, which the parser cut). */
		smtpd_check_save_line(s, line, len);
		return;
	}
	if (!(c->flags & SMTPD_CMD_F_NOCOUNT))
		smtpd_session_count_stat(s, c->stat, s->last_code < 400);
	if (c->flags & SMTPD_CMD_F_FLUSH)
		smtpd_session_flush(s);
}
