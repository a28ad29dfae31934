/*
 * imap-login: the IMAP not-authenticated state (RFC 9051 §3.1, §6.1,
 * §6.2; RFC 3501).  Runs unprivileged and chrooted (DESIGN §2): greets
 * with the capabilities, answers CAPABILITY, NOOP, LOGOUT, ID (RFC 2971)
 * and STARTTLS (RFC 2595, RFC 9051 §6.2.1), takes LOGIN or AUTHENTICATE
 * (with SASL-IR, RFC 4959) through the auth service, and hands the
 * logged-in client with the tag of its login command to the user's imap
 * process, which answers "TAG OK [CAPABILITY ...] Logged in".
 *
 * Commands are read with the shared IMAP parser (imap_parse.h), so
 * literals in LOGIN ("{5}" and "{5+}", RFC 7888) work as in the mail
 * process; its limits are the login process's (LOGIN_MAX_LINE).
 * Connections, TLS, the auth connection and the hand-off are the login
 * library's (login/login.h); this file is only the IMAP dialogue.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "auth_client.h"
#include "base64.h"
#include "buf.h"
#include "cfg.h"
#include "imap.h"
#include "imap_parse.h"
#include "log.h"
#include "login.h"
#include "str.h"
#include "xmalloc.h"

/* RFC 4422 §3.1: mechanism names are at most 20 characters. */
#define IMAP_LOGIN_MAX_MECH	20
/* Longest tag we keep for the reply to a pending command. */
#define IMAP_LOGIN_MAX_TAG	256

#define IMAP_MSG_PLAINTEXT_DISALLOWED \
	"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on " \
	"non-secure (SSL/TLS) connections."

enum imap_login_state {
	IMAP_LOGIN_CMD = 0,	/* reading commands */
	IMAP_LOGIN_AUTH,	/* waiting for the auth service */
	IMAP_LOGIN_SASL,	/* waiting for the client's SASL response */
	IMAP_LOGIN_HANDOFF,	/* posternd is passing us on */
	IMAP_LOGIN_CLOSED	/* disconnecting */
};

/* Per-client state (login_client_ctx()). */
struct imap_login {
	enum imap_login_state state;
	struct imap_parser *parser;
	char	 tag[IMAP_LOGIN_MAX_TAG + 1];	/* of the command */
	char	 mech[IMAP_LOGIN_MAX_MECH + 1];
	bool	 cancelled;	/* the client sent "*" */
	bool	 is_login;	/* LOGIN, not AUTHENTICATE */
	const char *fail_text;	/* tagged text for the coming FAIL */
};

static void
imap_login_enter_state(struct imap_login *il, enum imap_login_state state)
{
	if (il->state != IMAP_LOGIN_CLOSED)
		il->state = state;
}

static struct imap_parser *
imap_login_parser_new(void)
{
	struct imap_parser_limits lim;

	imap_parser_limits_default(&lim);
	/* Nothing before login needs more than a line of text. */
	lim.max_line = LOGIN_MAX_LINE;
	lim.max_literal = LOGIN_MAX_LINE;
	lim.max_args = 64;
	return imap_parser_new(&lim);
}

/* A client error: true when it was one too many and the client is gone. */
static bool
imap_login_bad(struct login_client *c, struct imap_login *il)
{
	if (login_client_bad(c)) {
		login_client_printf(c, "* BYE Too many invalid IMAP "
		    "commands.\r\n");
		il->state = IMAP_LOGIN_CLOSED;
		return true;
	}
	return false;
}

/* ssl = required: nothing but CAPABILITY, STARTTLS, ... before TLS. */
static bool
imap_login_allowed(struct login_client *c)
{
	return login_client_is_tls(c) || !login_client_tls_required(c);
}

/* LOGIN and PLAIN/LOGIN may be used now (RFC 9051 §6.2.3, RFC 2595). */
static bool
imap_login_plaintext_ok(struct login_client *c)
{
	return imap_login_allowed(c) && login_client_plaintext_ok(c);
}

/* The pre-login capability list (RFC 9051 §7.2.2). */
static void
imap_login_capability(struct login_client *c, struct buf *out)
{
	bool plain_ok = imap_login_plaintext_ok(c);

	buf_append_str(out, IMAP_CAPABILITY_PRELOGIN);
	if (login_client_tls_available(c))
		buf_append_str(out, " STARTTLS");
	/* RFC 9051 §6.2.3: LOGIN is refused until TLS. */
	if (!plain_ok)
		buf_append_str(out, " LOGINDISABLED");
	if (imap_login_allowed(c)) {
		char **v = strv_split(auth_client_mechs(plain_ok), " ");
		size_t i;

		for (i = 0; v[i] != NULL; i++)
			buf_printf(out, " AUTH=%s", v[i]);
		strv_free(&v);
	}
}

static void
imap_login_tagged(struct login_client *c, const char *tag, const char *text)
{
	login_client_printf(c, "%s %s\r\n", tag, text);
}

/* ---- auth results ---- */

static void
imap_login_auth_cb(enum auth_client_result result, const char *user,
    const char *data, const char *reason, void *ctx)
{
	struct login_client *c = ctx;
	struct imap_login *il = login_client_ctx(c);
	bool counted = false;

	(void)reason;	/* the login library logs it */
	if (il->state == IMAP_LOGIN_CLOSED)
		return;
	switch (result) {
	case AUTH_CLIENT_CONTINUE:
		/* RFC 9051 §6.2.2: "+ " and the challenge in base64. */
		login_client_printf(c, "+ %s\r\n", data != NULL ? data : "");
		imap_parser_expect_line(il->parser);
		imap_login_enter_state(il, IMAP_LOGIN_SASL);
		return;
	case AUTH_CLIENT_OK:
		if (data == NULL || user == NULL) {
			log_error("auth service gave no ticket for an imap "
			    "login");
			imap_login_tagged(c, il->tag, "NO [UNAVAILABLE] "
			    "Temporary authentication failure.");
			break;
		}
		imap_login_enter_state(il, IMAP_LOGIN_HANDOFF);
		/* The imap process answers "TAG OK [CAPABILITY ...]". */
		login_client_handoff(c, user, data, il->mech, il->tag);
		return;
	case AUTH_CLIENT_FAIL:
		counted = !il->cancelled && il->fail_text == NULL;
		if (il->fail_text != NULL)
			imap_login_tagged(c, il->tag, il->fail_text);
		else if (il->cancelled)
			/* RFC 9051 §6.2.2: a cancel is answered with BAD. */
			imap_login_tagged(c, il->tag, "BAD Authentication "
			    "aborted by client.");
		else
			imap_login_tagged(c, il->tag, "NO "
			    "[AUTHENTICATIONFAILED] Authentication failed.");
		break;
	case AUTH_CLIENT_TEMPFAIL:
		imap_login_tagged(c, il->tag, "NO [UNAVAILABLE] Temporary "
		    "authentication failure.");
		break;
	}
	il->cancelled = false;
	il->fail_text = NULL;
	il->mech[0] = '\0';
	imap_login_enter_state(il, IMAP_LOGIN_CMD);
	/* A wrong password counts like a bad command (DESIGN §9). */
	if (counted)
		(void)imap_login_bad(c, il);
}

static void
imap_login_start_auth(struct login_client *c, struct imap_login *il,
    const char *mech, const char *initial)
{
	str_lcpy(il->mech, mech, sizeof(il->mech));
	il->cancelled = false;
	il->fail_text = NULL;
	imap_login_enter_state(il, IMAP_LOGIN_AUTH);
	login_client_auth(c, mech, initial, imap_login_auth_cb);
}

/* ---- commands ---- */

static void
imap_login_cmd_capability(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	struct buf b;

	(void)il;
	buf_init(&b, 0);
	buf_append_str(&b, "* CAPABILITY ");
	imap_login_capability(c, &b);
	buf_printf(&b, "\r\n%s OK Pre-login capabilities listed, post-login "
	    "capabilities have more.\r\n", cmd->tag);
	login_client_write(c, b.data, b.len);
	buf_free(&b);
}

static void
imap_login_cmd_noop(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	(void)il;
	imap_login_tagged(c, cmd->tag, "OK NOOP completed.");
}

static void
imap_login_cmd_logout(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	login_client_printf(c, "* BYE Logging out\r\n%s OK Logout "
	    "completed.\r\n", cmd->tag);
	il->state = IMAP_LOGIN_CLOSED;
	login_client_close(c, "Disconnected: Logged out");
}

static void
imap_login_cmd_id(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	struct buf b;

	(void)il;
	buf_init(&b, 0);
	/* RFC 2971 §3.1: what the client says is for our log only. */
	buf_printf(&b, "* ID %s\r\n%s OK ID completed.\r\n", IMAP_ID_REPLY,
	    cmd->tag);
	login_client_write(c, b.data, b.len);
	buf_free(&b);
}

static void
imap_login_cmd_starttls(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	if (login_client_is_tls(c)) {
		imap_login_tagged(c, cmd->tag, "BAD TLS is already active.");
		(void)imap_login_bad(c, il);
		return;
	}
	if (!login_client_tls_available(c)) {
		imap_login_tagged(c, cmd->tag, "BAD TLS support isn't "
		    "enabled.");
		(void)imap_login_bad(c, il);
		return;
	}
	/*
	 * RFC 9051 §6.2.1: the client discards what it knew; the library
	 * drops input pipelined after STARTTLS (DESIGN §8), and a new
	 * parser forgets any state of the plaintext side.
	 */
	imap_login_tagged(c, cmd->tag, "OK Begin TLS negotiation now.");
	imap_parser_free(&il->parser);
	il->parser = imap_login_parser_new();
	login_client_starttls(c);
}

static void
imap_login_cmd_login(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	const char *user = cmd->u.login.user, *pass = cmd->u.login.password;
	struct buf plain, b64;

	if (!imap_login_plaintext_ok(c)) {
		imap_login_tagged(c, cmd->tag, IMAP_MSG_PLAINTEXT_DISALLOWED);
		(void)imap_login_bad(c, il);
		return;
	}
	if (auth_client_mechs(true)[0] == '\0') {
		/* The auth service cannot be reached. */
		imap_login_tagged(c, cmd->tag, "NO [UNAVAILABLE] Temporary "
		    "authentication failure.");
		return;
	}
	if (!auth_client_mech_offered("PLAIN", true)) {
		imap_login_tagged(c, cmd->tag, "NO [CANNOT] LOGIN is not "
		    "available here, use AUTHENTICATE.");
		(void)imap_login_bad(c, il);
		return;
	}
	if (strlen(user) > LOGIN_MAX_LINE || strlen(pass) > LOGIN_MAX_LINE ||
	    user[0] == '\0') {
		imap_login_tagged(c, cmd->tag, "NO [AUTHENTICATIONFAILED] "
		    "Authentication failed.");
		(void)imap_login_bad(c, il);
		return;
	}
	/* LOGIN goes to auth as a SASL PLAIN response (RFC 4616). */
	buf_init(&plain, 0);
	buf_init(&b64, 0);
	buf_append_char(&plain, '\0');
	buf_append_str(&plain, user);
	buf_append_char(&plain, '\0');
	buf_append_str(&plain, pass);
	base64_encode(&b64, plain.data, plain.len);
	explicit_bzero(plain.data, plain.cap);
	buf_free(&plain);
	il->is_login = true;
	imap_login_start_auth(c, il, "PLAIN", buf_cstr(&b64));
	explicit_bzero(b64.data, b64.cap);
	buf_free(&b64);
}

static void
imap_login_cmd_authenticate(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	const char *mech = cmd->u.authenticate.mech;
	const char *ir = cmd->u.authenticate.initial;

	if (strlen(mech) > IMAP_LOGIN_MAX_MECH ||
	    !auth_client_mech_offered(mech, true)) {
		imap_login_tagged(c, cmd->tag, "NO Unsupported "
		    "authentication mechanism.");
		(void)imap_login_bad(c, il);
		return;
	}
	if (!imap_login_allowed(c) ||
	    !auth_client_mech_offered(mech, imap_login_plaintext_ok(c))) {
		imap_login_tagged(c, cmd->tag, IMAP_MSG_PLAINTEXT_DISALLOWED);
		(void)imap_login_bad(c, il);
		return;
	}
	if (ir != NULL && ir[0] != '\0') {
		/* RFC 4959 §3: an initial response that is not base64 is
		 * refused with BAD. */
		struct buf dec;
		int r;

		buf_init(&dec, LOGIN_MAX_LINE);
		r = base64_decode(&dec, ir, strlen(ir));
		if (dec.data != NULL)
			explicit_bzero(dec.data, dec.cap);
		buf_free(&dec);
		if (r < 0) {
			imap_login_tagged(c, cmd->tag, "BAD Invalid base64 "
			    "data in initial response.");
			(void)imap_login_bad(c, il);
			return;
		}
	}
	il->is_login = false;
	/* SASL-IR "=" is an empty response: "=" for the auth service. */
	imap_login_start_auth(c, il, mech, ir == NULL ? NULL :
	    ir[0] == '\0' ? "=" : ir);
}

static void
imap_login_cmd_later(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	/* RFC 9051 §6.3: these need an authenticated session. */
	imap_login_tagged(c, cmd->tag, "BAD Command not valid before "
	    "login.");
	(void)imap_login_bad(c, il);
}

typedef void imap_login_cmd_fn(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd);

struct imap_login_cmd {
	enum imap_cmd_type	 type;
	imap_login_cmd_fn	*run;
};

/* The not-authenticated state's commands (RFC 9051 §6.1, §6.2). */
static const struct imap_login_cmd imap_login_cmds[] = {
	{ IMAP_CMD_CAPABILITY, imap_login_cmd_capability },
	{ IMAP_CMD_NOOP, imap_login_cmd_noop },
	{ IMAP_CMD_LOGOUT, imap_login_cmd_logout },
	{ IMAP_CMD_ID, imap_login_cmd_id },
	{ IMAP_CMD_STARTTLS, imap_login_cmd_starttls },
	{ IMAP_CMD_LOGIN, imap_login_cmd_login },
	{ IMAP_CMD_AUTHENTICATE, imap_login_cmd_authenticate },
};

static void
imap_login_execute(struct login_client *c, struct imap_login *il,
    const struct imap_command *cmd)
{
	size_t i;

	if (strlen(cmd->tag) > IMAP_LOGIN_MAX_TAG) {
		login_client_printf(c, "* BAD Tag too long.\r\n");
		(void)imap_login_bad(c, il);
		return;
	}
	str_lcpy(il->tag, cmd->tag, sizeof(il->tag));
	for (i = 0; i < sizeof(imap_login_cmds) / sizeof(imap_login_cmds[0]);
	    i++) {
		if (imap_login_cmds[i].type != cmd->type)
			continue;
		if (cmd->uid)
			break;
		imap_login_cmds[i].run(c, il, cmd);
		return;
	}
	imap_login_cmd_later(c, il, cmd);
}

/* ---- the login library's callbacks ---- */

static void
imap_login_greet(struct login_client *c)
{
	struct imap_login *il = login_client_ctx(c);
	struct buf b;

	il->parser = imap_login_parser_new();
	buf_init(&b, 0);
	buf_append_str(&b, "* OK [CAPABILITY ");
	imap_login_capability(c, &b);
	buf_printf(&b, "] %s\r\n", cfg_get("login_greeting"));
	login_client_write(c, b.data, b.len);
	buf_free(&b);
}

/* A SASL response line from the client (RFC 9051 §6.2.2). */
static void
imap_login_sasl_response(struct login_client *c, struct imap_login *il,
    const char *line)
{
	if (strcmp(line, "*") == 0)
		il->cancelled = true;
	imap_login_enter_state(il, IMAP_LOGIN_AUTH);
	login_client_auth_continue(c, line);
}

static void
imap_login_parse_error(struct login_client *c, struct imap_login *il)
{
	const struct imap_parse_error *e = imap_parser_error(il->parser);

	if (il->state == IMAP_LOGIN_SASL) {
		/* An overlong or NUL-holding response ends the exchange
		 * with one tagged answer, when auth has answered. */
		il->fail_text = "BAD Invalid SASL response.";
		imap_login_sasl_response(c, il, "*");
		return;
	}
	if (e->fatal) {
		login_client_printf(c, "* BYE %s\r\n", e->text);
		il->state = IMAP_LOGIN_CLOSED;
		login_client_close(c, "Disconnected: Protocol error");
		return;
	}
	login_client_printf(c, "%s %s %s%s%s%s\r\n",
	    e->tag != NULL && strlen(e->tag) <= IMAP_LOGIN_MAX_TAG ?
	    e->tag : "*", e->no ? "NO" : "BAD",
	    e->code != NULL ? "[" : "", e->code != NULL ? e->code : "",
	    e->code != NULL ? "] " : "", e->text);
	(void)imap_login_bad(c, il);
}

static void
imap_login_input(struct login_client *c)
{
	struct imap_login *il = login_client_ctx(c);

	while (il->state == IMAP_LOGIN_CMD || il->state == IMAP_LOGIN_SASL) {
		struct buf *in = login_client_input(c);
		enum imap_parse_result r;
		size_t used;

		r = imap_parser_feed(il->parser, in->data, in->len, &used);
		login_client_consume(c, used);
		switch (r) {
		case IMAP_PARSE_MORE:
			return;
		case IMAP_PARSE_ERROR:
			imap_login_parse_error(c, il);
			break;
		case IMAP_PARSE_CONTINUE:
			/* RFC 9051 §7.5: ready for the literal. */
			login_client_printf(c, "+ OK\r\n");
			break;
		case IMAP_PARSE_COMMAND:
			if (il->state == IMAP_LOGIN_SASL)
				break;	/* not possible: a raw line */
			imap_login_execute(c, il,
			    imap_parser_command(il->parser));
			break;
		case IMAP_PARSE_LINE: {
			size_t len;
			const char *line = imap_parser_line(il->parser, &len);

			if (il->state == IMAP_LOGIN_SASL)
				imap_login_sasl_response(c, il, line);
			break;
		}
		case IMAP_PARSE_APPEND: {
			const char *tag = imap_parser_tag(il->parser);

			/* Not before login (refused at the name). */
			login_client_printf(c, "%s BAD Command not valid "
			    "before login.\r\n", strlen(tag) <=
			    IMAP_LOGIN_MAX_TAG ? tag : "*");
			imap_parser_append_reject(il->parser);
			(void)imap_login_bad(c, il);
			break;
		}
		case IMAP_PARSE_APPEND_DATA:
		case IMAP_PARSE_APPEND_END:
			break;
		}
	}
}

static void
imap_login_tls_done(struct login_client *c)
{
	struct imap_login *il = login_client_ctx(c);

	/* RFC 9051 §6.2.1: no new greeting; the client asks CAPABILITY. */
	imap_login_enter_state(il, IMAP_LOGIN_CMD);
}

static void
imap_login_handoff_failed(struct login_client *c, const char *reason)
{
	struct imap_login *il = login_client_ctx(c);

	(void)reason;	/* logged by the library; not for the client */
	imap_login_tagged(c, il->tag, "NO [UNAVAILABLE] Mailbox "
	    "unavailable, try again later.");
	imap_login_enter_state(il, IMAP_LOGIN_CMD);
}

static void
imap_login_destroy(struct login_client *c)
{
	struct imap_login *il = login_client_ctx(c);

	imap_parser_free(&il->parser);
	il->state = IMAP_LOGIN_CLOSED;
}

static const struct login_proto imap_login_proto = {
	.name = "imap",
	.plain_service = "imap",
	.tls_service = "imaps",
	.client_size = sizeof(struct imap_login),
	.greet = imap_login_greet,
	.input = imap_login_input,
	.tls_done = imap_login_tls_done,
	.handoff_failed = imap_login_handoff_failed,
	.destroy = imap_login_destroy,
};

int
main(int argc, char **argv)
{
	return login_main(&imap_login_proto, argc, argv);
}
