/*
 * Unit tests of auth/auth_client.c against a scripted auth server in a
 * child process (a real UNIX socket, the real protocol).  The fake
 * server answers by the mechanism name the client asks for:
 *
 *   PLAIN     OK when the initial response is "\0u\0good", else FAIL
 *   LOGIN     a challenge; then OK with a ticket, or FAIL on "*"
 *   TEMP      FAIL temp
 *   CLOSE     closes the connection (requests in flight fail)
 *   GARBAGE   answers a line that is not in the protocol
 *
 * and answers each batch of lines it reads in reverse order, so replies
 * arrive in another order than the requests went out.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_client.h"
#include "buf.h"
#include "ioloop.h"
#include "str.h"
#include "test.h"
#include "xmalloc.h"

/* base64 of "\0u\0good" */
#define GOOD_PLAIN	"AHUAZ29vZA=="

static char tmpdir[] = "/tmp/pst-authc-XXXXXX";
static char sock_path[256];
static pid_t server_pid;

/* ---- the fake server (child) ---- */

static void
fake_reply(int fd, const char *line)
{
	char **f = strv_split(line, " ");
	size_t n = strv_len(f), i;
	char out[512];
	const char *resp = NULL;

	out[0] = '\0';
	if (n >= 3 && strcmp(f[0], "AUTH") == 0) {
		for (i = 3; i < n; i++)
			if (strncmp(f[i], "resp=", 5) == 0)
				resp = f[i] + 5;
		if (strcmp(f[2], "PLAIN") == 0) {
			if (resp != NULL && strcmp(resp, GOOD_PLAIN) == 0)
				snprintf(out, sizeof(out), "OK %s user=u",
				    f[1]);
			else
				snprintf(out, sizeof(out), "FAIL %s user=u "
				    "reason=authentication+20failed", f[1]);
		} else if (strcmp(f[2], "LOGIN") == 0)
			snprintf(out, sizeof(out), "CONT %s VXNlcm5hbWU6",
			    f[1]);
		else if (strcmp(f[2], "TEMP") == 0)
			snprintf(out, sizeof(out), "FAIL %s temp "
			    "reason=passdb+20down", f[1]);
		else if (strcmp(f[2], "GARBAGE") == 0)
			snprintf(out, sizeof(out), "BOGUS %s", f[1]);
		else
			snprintf(out, sizeof(out), "FAIL %s "
			    "reason=unsupported", f[1]);
	} else if (n >= 2 && strcmp(f[0], "CONT") == 0) {
		if (n == 3 && strcmp(f[2], "*") == 0)
			snprintf(out, sizeof(out), "FAIL %s reason=cancelled",
			    f[1]);
		else if (n == 3) {
			char *x = xtext_encode(f[2], strlen(f[2]));

			snprintf(out, sizeof(out), "OK %s user=%s ticket=abc",
			    f[1], x);
			free(x);
		}
		else
			snprintf(out, sizeof(out), "OK %s user=empty", f[1]);
	}
	strv_free(&f);
	if (out[0] != '\0') {
		strncat(out, "\n", sizeof(out) - strlen(out) - 1);
		(void)!write(fd, out, strlen(out));
	}
}

/* One connection: handshake, then batches of lines. */
static void
fake_conn(int fd)
{
	static const char hs[] = "VERSION 1\nMECH PLAIN plaintext\n"
	    "MECH LOGIN plaintext\nMECH CRAM-MD5\nSOMETHING new\nDONE\n";
	char buf[65536];
	size_t len = 0;
	ssize_t n;

	(void)!write(fd, hs, sizeof(hs) - 1);
	for (;;) {
		char *lines[512];
		size_t nl = 0, start = 0, i;
		bool close_it = false;

		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		for (i = 0; i < len && nl < 512; i++) {
			if (buf[i] != '\n')
				continue;
			buf[i] = '\0';
			lines[nl++] = buf + start;
			start = i + 1;
		}
		/* Reverse order. */
		for (i = nl; i-- > 0; ) {
			if (strstr(lines[i], " CLOSE ") != NULL)
				close_it = true;
			else
				fake_reply(fd, lines[i]);
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (close_it)
			return;
	}
}

static void
fake_server(int lfd)
{
	int fd;

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(1);
		fake_conn(fd);
		close(fd);
	}
}

static int
start_server(void)
{
	struct sockaddr_un sun;
	int fd;

	snprintf(sock_path, sizeof(sock_path), "%s/auth", tmpdir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	str_lcpy(sun.sun_path, sock_path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 16) < 0)
		return -1;
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0)
		fake_server(fd);
	close(fd);
	return 0;
}

/* ---- the client side ---- */

struct result {
	int			 calls;
	enum auth_client_result	 result;
	char			 user[64];
	char			 data[64];
	char			 reason[64];
	bool			 null_data;
	bool			 abort_on_continue;
	struct auth_request	*req;
	const char		*answer;	/* to a challenge */
};

static int pending;

static void
cb(enum auth_client_result result, const char *user, const char *data,
    const char *reason, void *ctx)
{
	struct result *r = ctx;

	r->calls++;
	r->result = result;
	str_lcpy(r->user, user != NULL ? user : "(null)", sizeof(r->user));
	str_lcpy(r->data, data != NULL ? data : "(null)", sizeof(r->data));
	str_lcpy(r->reason, reason != NULL ? reason : "(null)",
	    sizeof(r->reason));
	r->null_data = data == NULL;
	if (result == AUTH_CLIENT_CONTINUE) {
		if (r->abort_on_continue) {
			auth_request_abort(&r->req);
			pending--;
		} else
			auth_request_continue(r->req, r->answer);
		return;
	}
	r->req = NULL;
	pending--;
}

static void
stop_cb(void *ctx)
{
	(void)ctx;
	ioloop_stop();
}

static void
check_cb(void *ctx)
{
	struct timer **t = ctx;

	*t = NULL;
	if (pending <= 0)
		ioloop_stop();
	else
		*t = timer_add(5, check_cb, ctx);
}

/* Run the loop until every pending request ended (or 10 s passed). */
static bool
run_until_done(void)
{
	struct timer *check = timer_add(5, check_cb, &check);
	struct timer *limit = timer_add(10000, stop_cb, NULL);

	ioloop_run();
	timer_remove(&check);
	timer_remove(&limit);
	return pending <= 0;
}

static void
run_for(uint64_t ms)
{
	struct timer *t = timer_add(ms, stop_cb, NULL);

	ioloop_run();
	(void)t;
}

static const struct auth_request_info info = {
	"smtp", "192.0.2.1", "127.0.0.1", true
};

static struct auth_request *
start(struct result *r, const char *mech, const char *initial)
{
	memset(r, 0, sizeof(*r));
	pending++;
	r->req = auth_request_new(mech, &info, initial, cb, r);
	return r->req;
}

static void
test_mechs(void)
{
	test_begin("auth_client: mechanisms");
	test_assert(auth_client_connect() == 0);
	test_assert_streq(auth_client_mechs(true), "PLAIN LOGIN CRAM-MD5");
	test_assert_streq(auth_client_mechs(false), "CRAM-MD5");
	test_assert(auth_client_mech_offered("plain", true));
	test_assert(!auth_client_mech_offered("plain", false));
	test_assert(auth_client_mech_offered("cram-md5", false));
	test_assert(!auth_client_mech_offered("PLAI", true));
	test_assert(!auth_client_mech_offered("", true));
	test_assert(!auth_client_mech_offered("SOMETHING", true));
	test_end();
}

static void
test_plain(void)
{
	struct result ok, bad, none;

	test_begin("auth_client: OK and FAIL, never synchronously");
	start(&ok, "PLAIN", GOOD_PLAIN);
	start(&bad, "PLAIN", "AHUAYmFk");
	start(&none, "PLAIN", NULL);
	test_assert(ok.req != NULL && bad.req != NULL && none.req != NULL);
	test_assert(ok.calls == 0 && bad.calls == 0 && none.calls == 0);
	test_assert(run_until_done());
	test_assert(ok.calls == 1 && ok.result == AUTH_CLIENT_OK);
	test_assert_streq(ok.user, "u");
	test_assert(ok.null_data);
	test_assert(bad.calls == 1 && bad.result == AUTH_CLIENT_FAIL);
	test_assert_streq(bad.user, "u");
	test_assert_streq(bad.reason, "authentication failed");
	test_assert(none.calls == 1 && none.result == AUTH_CLIENT_FAIL);
	test_end();
}

static void
test_challenge(void)
{
	struct result r, e, a;

	test_begin("auth_client: challenges, empty answer, abort");
	start(&r, "LOGIN", NULL);
	r.answer = "dQ==";
	start(&e, "LOGIN", NULL);
	e.answer = "";
	start(&a, "LOGIN", NULL);
	a.abort_on_continue = true;
	test_assert(run_until_done());
	test_assert(r.calls == 2 && r.result == AUTH_CLIENT_OK);
	test_assert_streq(r.user, "dQ==");
	test_assert_streq(r.data, "abc");
	test_assert(e.calls == 2 && e.result == AUTH_CLIENT_OK);
	test_assert_streq(e.user, "empty");
	/* The aborted one saw its challenge, nothing after. */
	test_assert(a.calls == 1 && a.result == AUTH_CLIENT_CONTINUE);
	test_assert_streq(a.data, "VXNlcm5hbWU6");
	/* The server got "*" and said FAIL: dropped quietly. */
	run_for(100);
	test_assert(a.calls == 1);
	test_end();
}

static void
test_bad_input(void)
{
	struct result r, t, c;
	char *big = xmalloc(10000);

	test_begin("auth_client: bad base64, long lines, TEMP");
	start(&r, "PLAIN", "not base64");
	test_assert(r.calls == 0);
	memset(big, 'A', 9999);
	big[9999] = '\0';
	start(&t, "PLAIN", big);
	start(&c, "TEMP", NULL);
	test_assert(run_until_done());
	test_assert(r.calls == 1 && r.result == AUTH_CLIENT_FAIL);
	test_assert(strstr(r.reason, "base64") != NULL);
	test_assert(t.calls == 1 && t.result == AUTH_CLIENT_FAIL);
	test_assert_streq(t.reason, "initial response too long");
	test_assert(c.calls == 1 && c.result == AUTH_CLIENT_TEMPFAIL);
	test_assert_streq(c.reason, "passdb down");

	/* Answers that cannot go on one line: cancelled, with a reason. */
	start(&r, "LOGIN", NULL);
	r.answer = big;
	start(&c, "LOGIN", NULL);
	c.answer = "a b\r\n";
	test_assert(run_until_done());
	test_assert(r.calls == 2 && r.result == AUTH_CLIENT_FAIL);
	test_assert_streq(r.reason, "response too long");
	test_assert(c.calls == 2 && c.result == AUTH_CLIENT_FAIL);
	test_assert_streq(c.reason, "invalid base64 in the response");
	free(big);
	test_end();
}

static void
test_many(void)
{
	struct result r[200];
	int i, good = 0;

	test_begin("auth_client: 200 exchanges at once, routed by id");
	for (i = 0; i < 200; i++)
		start(&r[i], "PLAIN", i % 3 == 0 ? "AHUAYmFk" : GOOD_PLAIN);
	test_assert(run_until_done());
	for (i = 0; i < 200; i++) {
		if (r[i].calls == 1 && r[i].result ==
		    (i % 3 == 0 ? AUTH_CLIENT_FAIL : AUTH_CLIENT_OK))
			good++;
	}
	test_assert(good == 200);
	test_end();
}

static void
test_broken(void)
{
	struct result a, b, c, d;

	test_begin("auth_client: connection lost, then reconnected");
	start(&a, "LOGIN", NULL);
	a.answer = "eA==";
	start(&b, "CLOSE", NULL);
	test_assert(run_until_done());
	/* Whatever was in flight fails as temporary. */
	test_assert(b.calls == 1 && b.result == AUTH_CLIENT_TEMPFAIL);
	test_assert_streq(b.reason, "auth service unavailable");
	test_assert(a.result == AUTH_CLIENT_TEMPFAIL ||
	    a.result == AUTH_CLIENT_OK);
	/* The next request connects again. */
	start(&c, "PLAIN", GOOD_PLAIN);
	test_assert(run_until_done());
	test_assert(c.calls == 1 && c.result == AUTH_CLIENT_OK);
	/* A reply outside the protocol: same thing. */
	start(&d, "GARBAGE", NULL);
	test_assert(run_until_done());
	test_assert(d.calls == 1 && d.result == AUTH_CLIENT_TEMPFAIL);
	start(&c, "PLAIN", GOOD_PLAIN);
	test_assert(run_until_done());
	test_assert(c.calls == 1 && c.result == AUTH_CLIENT_OK);
	/* The mechanisms of the last handshake are still known. */
	test_assert_streq(auth_client_mechs(true), "PLAIN LOGIN CRAM-MD5");
	test_end();
}

static void
test_down(void)
{
	struct result r, a;

	test_begin("auth_client: service down");
	kill(server_pid, SIGKILL);
	(void)waitpid(server_pid, NULL, 0);
	server_pid = 0;
	start(&r, "PLAIN", GOOD_PLAIN);
	test_assert(r.calls == 0);
	test_assert(run_until_done());
	test_assert(r.calls == 1 && r.result == AUTH_CLIENT_TEMPFAIL);
	/* Known once: no long wait for a service that went away. */
	unlink(sock_path);
	start(&r, "PLAIN", GOOD_PLAIN);
	test_assert(run_until_done());
	test_assert(r.calls == 1 && r.result == AUTH_CLIENT_TEMPFAIL);
	test_assert_streq(auth_client_mechs(true), "");
	/* Aborting a request that is failing: no callback. */
	start(&a, "PLAIN", GOOD_PLAIN);
	auth_request_abort(&a.req);
	test_assert(a.req == NULL);
	pending--;
	run_for(50);
	test_assert(a.calls == 0);
	test_end();
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL || start_server() < 0) {
		printf("Bail out! cannot start the fake server\n");
		return 1;
	}
	ioloop_init();
	auth_client_init(sock_path);
	test_mechs();
	test_plain();
	test_challenge();
	test_bad_input();
	test_many();
	test_broken();
	test_down();
	auth_client_deinit();
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		(void)waitpid(server_pid, NULL, 0);
	}
	unlink(sock_path);
	rmdir(tmpdir);
	return test_done();
}
