/*
 * pop3-login: the POP3 AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC
 * 2595, RFC 5034).  Runs unprivileged and chrooted (DESIGN §2): greets,
 * answers CAPA, STLS and QUIT, takes USER/PASS or a SASL exchange (AUTH)
 * through the auth service, and hands the logged-in client to the user's
 * pop3 process, which answers the PASS/AUTH with "+OK Logged in." once
 * it has the maildrop (or [IN-USE] / [LOGIN-DELAY] / [SYS/TEMP] when it
 * cannot have it).
 *
 * Connections, TLS, the auth connection and the hand-off are the login
 * library's (login/login.h); this file is only the POP3 dialogue.  APOP
 * is not offered: it needs the plaintext password on the server, which
 * the password schemes we store do not give.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "auth_client.h"
#include "base64.h"
#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "login.h"
#include "pop3_capa.h"
#include "pop3_parse.h"
#include "str.h"
#include "xmalloc.h"

/* RFC 4422 §3.1: mechanism names are at most 20 characters. */
#define POP3_LOGIN_MAX_MECH	20

#define POP3_MSG_PLAINTEXT_DISALLOWED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure " \
	"(SSL/TLS) connections.\r\n"

enum pop3_login_state {
	POP3_LOGIN_CMD = 0,	/* reading commands */
	POP3_LOGIN_AUTH,	/* waiting for the auth service */
	POP3_LOGIN_SASL,	/* waiting for the client's SASL response */
	POP3_LOGIN_HANDOFF,	/* posternd is passing us on */
	POP3_LOGIN_CLOSED	/* disconnecting */
};

/* Per-client state (login_client_ctx()). */
struct pop3_login {
	enum pop3_login_state state;
	char	*user;		/* from USER, until PASS or STLS */
	char	 mech[POP3_LOGIN_MAX_MECH + 1];
	bool	 cancelled;	/* the client sent "*" */
	const char *fail_text;	/* -ERR text for the coming FAIL, or NULL */
};

typedef void pop3_login_cmd_fn(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args);

struct pop3_login_cmd {
	const char		*name;
	pop3_login_cmd_fn	*run;
};

static void
pop3_login_enter_state(struct pop3_login *pl, enum pop3_login_state state)
{
	if (pl->state != POP3_LOGIN_CLOSED)
		pl->state = state;
}

static void
pop3_login_close(struct login_client *c, struct pop3_login *pl,
    const char *reason)
{
	pl->state = POP3_LOGIN_CLOSED;
	login_client_close(c, reason);
}

/* A client error: true when it was one too many and the client is gone. */
static bool
pop3_login_bad(struct login_client *c, struct pop3_login *pl)
{
	if (login_client_bad(c)) {
		pl->state = POP3_LOGIN_CLOSED;
		return true;
	}
	return false;
}

static void
pop3_login_forget_user(struct pop3_login *pl)
{
	if (pl->user != NULL) {
		explicit_bzero(pl->user, strlen(pl->user));
		free(pl->user);
		pl->user = NULL;
	}
}

/* ssl = required: nothing but CAPA, STLS and QUIT before TLS. */
static bool
pop3_login_allowed(struct login_client *c)
{
	return login_client_is_tls(c) || !login_client_tls_required(c);
}

/* USER/PASS and PLAIN/LOGIN may be used now (RFC 2595 §2.3). */
static bool
pop3_login_plaintext_ok(struct login_client *c)
{
	return pop3_login_allowed(c) && login_client_plaintext_ok(c);
}

/* ---- auth results ---- */

static void
pop3_login_auth_cb(enum auth_client_result result, const char *user,
    const char *data, const char *reason, void *ctx)
{
	struct login_client *c = ctx;
	struct pop3_login *pl = login_client_ctx(c);

	(void)reason;	/* the login library logs it */
	if (pl->state == POP3_LOGIN_CLOSED)
		return;
	switch (result) {
	case AUTH_CLIENT_CONTINUE:
		/* RFC 5034 §4: "+ " and the challenge, "+ " when empty. */
		login_client_printf(c, "+ %s\r\n", data != NULL ? data : "");
		pop3_login_enter_state(pl, POP3_LOGIN_SASL);
		return;
	case AUTH_CLIENT_OK:
		if (data == NULL || user == NULL) {
			/* No ticket: posternd could not tell who it is. */
			log_error("auth service gave no ticket for a pop3 "
			    "login");
			login_client_printf(c, "-ERR [SYS/TEMP] Temporary "
			    "authentication failure.\r\n");
			break;
		}
		pop3_login_forget_user(pl);
		pop3_login_enter_state(pl, POP3_LOGIN_HANDOFF);
		/* The pop3 process answers "+OK Logged in." */
		login_client_handoff(c, user, data, pl->mech, NULL);
		return;
	case AUTH_CLIENT_FAIL:
		if (pl->fail_text != NULL)
			login_client_printf(c, "%s\r\n", pl->fail_text);
		else if (pl->cancelled)
			login_client_printf(c, "-ERR Authentication aborted "
			    "by client.\r\n");
		else
			login_client_printf(c, "-ERR [AUTH] Authentication "
			    "failed.\r\n");
		break;
	case AUTH_CLIENT_TEMPFAIL:
		login_client_printf(c, "-ERR [SYS/TEMP] Temporary "
		    "authentication failure.\r\n");
		break;
	}
	/* RFC 1939 §7: after a failed PASS the client starts again with
	 * USER; RFC 5034 §4: as if AUTH had not been issued. */
	pop3_login_forget_user(pl);
	pl->cancelled = false;
	pl->fail_text = NULL;
	pl->mech[0] = '\0';
	pop3_login_enter_state(pl, POP3_LOGIN_CMD);
	/* Commands pipelined after it are the library's to pass on. */
	if (result == AUTH_CLIENT_FAIL)
		(void)pop3_login_bad(c, pl);
}

static void
pop3_login_start_auth(struct login_client *c, struct pop3_login *pl,
    const char *mech, const char *initial)
{
	str_lcpy(pl->mech, mech, sizeof(pl->mech));
	pl->cancelled = false;
	pl->fail_text = NULL;
	pop3_login_enter_state(pl, POP3_LOGIN_AUTH);
	login_client_auth(c, mech, initial, pop3_login_auth_cb);
}

/* ---- commands ---- */

static void
pop3_login_cmd_capa(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	struct buf out, extra;
	bool plain_ok = pop3_login_plaintext_ok(c);

	(void)pl;
	(void)args;
	(void)raw_args;
	buf_init(&out, 0);
	buf_init(&extra, 0);
	/* RFC 2595 §4: STLS only while it can still be used. */
	if (login_client_tls_available(c))
		buf_append_str(&extra, "STLS\r\n");
	if (pop3_login_allowed(c)) {
		const char *mechs;

		/* RFC 2449 §6.3: USER only where it may be used. */
		if (plain_ok && auth_client_mech_offered("PLAIN", true))
			buf_append_str(&extra, "USER\r\n");
		/* RFC 5034 §6: no plaintext mechanism before TLS. */
		mechs = auth_client_mechs(plain_ok);
		if (mechs[0] != '\0')
			buf_printf(&extra, "SASL %s\r\n", mechs);
	}
	pop3_capa_append(&out, buf_cstr(&extra));
	login_client_write(c, out.data, out.len);
	buf_free(&out);
	buf_free(&extra);
}

static void
pop3_login_cmd_quit(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	(void)args;
	(void)raw_args;
	login_client_printf(c, "+OK Logging out.\r\n");
	pop3_login_close(c, pl, "Disconnected: Logged out");
}

static void
pop3_login_cmd_stls(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	(void)args;
	(void)raw_args;
	if (login_client_is_tls(c)) {
		login_client_printf(c, "-ERR TLS is already active.\r\n");
		return;
	}
	if (!login_client_tls_available(c)) {
		login_client_printf(c, "-ERR TLS support isn't enabled.\r\n");
		return;
	}
	/*
	 * RFC 2595 §4: the client discards what it knew; so do we (a USER
	 * given in plaintext does not carry over into TLS).  The library
	 * drops input pipelined after STLS (DESIGN §8).
	 */
	pop3_login_forget_user(pl);
	login_client_printf(c, "+OK Begin TLS negotiation now.\r\n");
	login_client_starttls(c);
}

static void
pop3_login_cmd_user(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	(void)raw_args;
	if (!pop3_login_plaintext_ok(c)) {
		login_client_printf(c, POP3_MSG_PLAINTEXT_DISALLOWED);
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (args[0] == '\0') {
		login_client_printf(c, "-ERR No username given.\r\n");
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (strlen(args) > POP3_MAX_USER) {
		login_client_printf(c, "-ERR Username too long.\r\n");
		(void)pop3_login_bad(c, pl);
		return;
	}
	pop3_login_forget_user(pl);
	pl->user = xstrdup(args);
	login_client_printf(c, "+OK\r\n");
}

static void
pop3_login_cmd_pass(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	struct buf plain, b64;
	size_t ulen;

	(void)args;
	if (!pop3_login_plaintext_ok(c)) {
		login_client_printf(c, POP3_MSG_PLAINTEXT_DISALLOWED);
		pop3_login_forget_user(pl);
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (pl->user == NULL) {
		login_client_printf(c, "-ERR No username given.\r\n");
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (!auth_client_mech_offered("PLAIN", true)) {
		login_client_printf(c, "-ERR [AUTH] USER/PASS is not "
		    "available here.\r\n");
		pop3_login_forget_user(pl);
		(void)pop3_login_bad(c, pl);
		return;
	}
	/*
	 * RFC 1939 §7: PASS has one argument, which may contain spaces:
	 * everything after the single space is the password.  It goes to
	 * auth as a SASL PLAIN response (RFC 4616): "\0user\0password".
	 */
	ulen = strlen(pl->user);
	buf_init(&plain, 0);
	buf_init(&b64, 0);
	buf_append_char(&plain, '\0');
	buf_append(&plain, pl->user, ulen);
	buf_append_char(&plain, '\0');
	buf_append_str(&plain, raw_args);
	base64_encode(&b64, plain.data, plain.len);
	explicit_bzero(plain.data, plain.cap);
	buf_free(&plain);
	pop3_login_start_auth(c, pl, "PLAIN", buf_cstr(&b64));
	explicit_bzero(b64.data, b64.cap);
	buf_free(&b64);
}

static bool
pop3_login_mech_valid(const char *mech)
{
	size_t i;

	for (i = 0; mech[i] != '\0'; i++) {
		char ch = mech[i];

		if (i >= POP3_LOGIN_MAX_MECH)
			return false;
		/* RFC 4422 §3.1: upper-case letters, digits, "-", "_". */
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
	}
	return i > 0;
}

static void
pop3_login_cmd_auth(struct login_client *c, struct pop3_login *pl,
    char *args, const char *raw_args)
{
	char *argv[2];
	char mech[POP3_LOGIN_MAX_MECH + 1];
	int argc;

	(void)raw_args;
	argc = pop3_args_split(args, argv, 2);
	if (argc == 0) {
		/*
		 * "AUTH" alone: the mechanism list of RFC 1734, which some
		 * older clients ask for instead of CAPA.
		 */
		const char *mechs = pop3_login_allowed(c) ?
		    auth_client_mechs(pop3_login_plaintext_ok(c)) : "";
		char **v = strv_split(mechs, " ");
		size_t i;

		login_client_printf(c, "+OK\r\n");
		for (i = 0; v[i] != NULL; i++)
			login_client_printf(c, "%s\r\n", v[i]);
		login_client_printf(c, ".\r\n");
		strv_free(&v);
		return;
	}
	if (argc < 0 || !pop3_login_mech_valid(argv[0])) {
		login_client_printf(c, "-ERR Invalid AUTH arguments.\r\n");
		(void)pop3_login_bad(c, pl);
		return;
	}
	str_lcpy(mech, argv[0], sizeof(mech));
	for (char *p = mech; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	if (!pop3_login_allowed(c)) {
		login_client_printf(c, POP3_MSG_PLAINTEXT_DISALLOWED);
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (!auth_client_mech_offered(mech, true)) {
		login_client_printf(c, "-ERR Unsupported authentication "
		    "mechanism.\r\n");
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (!auth_client_mech_offered(mech, pop3_login_plaintext_ok(c))) {
		login_client_printf(c, POP3_MSG_PLAINTEXT_DISALLOWED);
		(void)pop3_login_bad(c, pl);
		return;
	}
	if (argc == 2 && strcmp(argv[1], "=") != 0) {
		/* RFC 5034 §4: a response that is not base64 is refused. */
		struct buf dec;
		int r;

		buf_init(&dec, LOGIN_MAX_LINE);
		r = base64_decode(&dec, argv[1], strlen(argv[1]));
		explicit_bzero(dec.data, dec.cap);
		buf_free(&dec);
		if (r < 0) {
			login_client_printf(c, "-ERR Invalid base64 data in "
			    "initial response.\r\n");
			(void)pop3_login_bad(c, pl);
			return;
		}
	}
	pop3_login_forget_user(pl);
	pop3_login_start_auth(c, pl, mech, argc == 2 ? argv[1] : NULL);
}

/*
 * The AUTHORIZATION state's commands (RFC 1939 §4, RFC 2449 §5, RFC
 * 2595 §4, RFC 5034 §4).  Everything else is unknown before login.
 */
static const struct pop3_login_cmd pop3_login_cmds[] = {
	{ "AUTH", pop3_login_cmd_auth },
	{ "CAPA", pop3_login_cmd_capa },
	{ "PASS", pop3_login_cmd_pass },
	{ "QUIT", pop3_login_cmd_quit },
	{ "STLS", pop3_login_cmd_stls },
	{ "USER", pop3_login_cmd_user },
};

static void
pop3_login_execute(struct login_client *c, struct pop3_login *pl, char *line,
    size_t len)
{
	struct pop3_command cmd;
	char *raw_args;
	size_t i, k;

	/*
	 * RFC 1939 §7: PASS has one argument, which may hold spaces, even
	 * at its ends: keep everything after the keyword and one space
	 * before the parser trims the line.
	 */
	for (k = 0; k < len && (line[k] == ' ' || line[k] == '\t'); k++)
		;
	while (k < len && line[k] != ' ' && line[k] != '\t')
		k++;
	if (k < len)
		k++;
	raw_args = xstrndup(line + k, len - k);
	if (pop3_command_parse(line, len, &cmd) < 0 || cmd.keyword[0] == '\0')
		goto unknown;
	for (i = 0; i < sizeof(pop3_login_cmds) / sizeof(pop3_login_cmds[0]);
	    i++) {
		if (strcmp(cmd.keyword, pop3_login_cmds[i].name) == 0) {
			pop3_login_cmds[i].run(c, pl, cmd.args, raw_args);
			goto out;
		}
	}
unknown:
	login_client_printf(c, "-ERR Unknown command.\r\n");
	(void)pop3_login_bad(c, pl);
out:
	explicit_bzero(raw_args, len - k);
	free(raw_args);
}

/* ---- the login library's callbacks ---- */

static void
pop3_login_greet(struct login_client *c)
{
	/* No <timestamp> in the greeting: APOP is not offered. */
	login_client_printf(c, "+OK %s\r\n", cfg_get("login_greeting"));
}

/* A SASL response line from the client (RFC 5034 §4). */
static void
pop3_login_sasl_response(struct login_client *c, struct pop3_login *pl,
    const char *line)
{
	if (strcmp(line, "*") == 0)
		pl->cancelled = true;
	pop3_login_enter_state(pl, POP3_LOGIN_AUTH);
	login_client_auth_continue(c, line);
}

static void
pop3_login_input(struct login_client *c)
{
	struct pop3_login *pl = login_client_ctx(c);

	while (pl->state == POP3_LOGIN_CMD || pl->state == POP3_LOGIN_SASL) {
		struct buf *in = login_client_input(c);
		size_t consume;
		ssize_t n;
		char *line;

		n = login_client_line(c, &consume);
		if (n < 0) {
			/* The library skips the rest of the line. */
			login_client_consume(c, consume);
			if (pl->state == POP3_LOGIN_SASL) {
				/* RFC 5034 §4: a bad response ends AUTH
				 * with one -ERR, when auth has answered. */
				pl->fail_text = "-ERR Authentication response "
				    "too long.";
				pop3_login_sasl_response(c, pl, "*");
				continue;
			}
			login_client_printf(c, "-ERR Input line too long.\r\n");
			if (pop3_login_bad(c, pl))
				return;
			continue;
		}
		if (n == 0 && consume == 0)
			return;
		if (n > 0 && memchr(in->data, '\0', (size_t)n) != NULL) {
			/*
			 * A NUL byte is never part of a command nor of
			 * base64: an unknown command, or a response the
			 * auth service will refuse.
			 */
			line = xstrdup(pl->state == POP3_LOGIN_SASL ? "!" : "");
			n = 0;
		} else
			line = xstrndup(in->data, (size_t)n);
		login_client_consume(c, consume);
		if (pl->state == POP3_LOGIN_SASL)
			pop3_login_sasl_response(c, pl, line);
		else if (n == 0) {
			login_client_printf(c, "-ERR Unknown command.\r\n");
			(void)pop3_login_bad(c, pl);
		} else
			pop3_login_execute(c, pl, line, (size_t)n);
		explicit_bzero(line, strlen(line));
		free(line);
	}
}

static void
pop3_login_tls_done(struct login_client *c)
{
	struct pop3_login *pl = login_client_ctx(c);

	/* RFC 2595 §4: a fresh AUTHORIZATION state, no new greeting. */
	pop3_login_forget_user(pl);
	pop3_login_enter_state(pl, POP3_LOGIN_CMD);
}

static void
pop3_login_handoff_failed(struct login_client *c, const char *reason)
{
	struct pop3_login *pl = login_client_ctx(c);

	(void)reason;	/* logged by the library; not for the client */
	login_client_printf(c, "-ERR [SYS/TEMP] Mailbox unavailable, try "
	    "again later.\r\n");
	pop3_login_enter_state(pl, POP3_LOGIN_CMD);
}

static void
pop3_login_destroy(struct login_client *c)
{
	struct pop3_login *pl = login_client_ctx(c);

	pop3_login_forget_user(pl);
	pl->state = POP3_LOGIN_CLOSED;
}

static const struct login_proto pop3_login_proto = {
	.name = "pop3",
	.plain_service = "pop3",
	.tls_service = "pop3s",
	.client_size = sizeof(struct pop3_login),
	.greet = pop3_login_greet,
	.input = pop3_login_input,
	.tls_done = pop3_login_tls_done,
	.handoff_failed = pop3_login_handoff_failed,
	.destroy = pop3_login_destroy,
};

int
main(int argc, char **argv)
{
	return login_main(&pop3_login_proto, argc, argv);
}
