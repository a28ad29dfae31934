/*
 * pop3: the process of the POP3 mail server that runs as the user (see
 * pop3.h).  posternd starts one per uid and passes it the sessions that
 * pop3-login authenticated; mailproc (login/mailproc.h) receives them.
 * This file holds what spans sessions: the maildrop lock (one POP3
 * session per maildrop, RFC 1939 §8; every session of the uid lives in
 * this process, so a list walk is the lock) and the LOGIN-DELAY record.
 *
 * What happens inside a session is pop3_session.c's and pop3_cmd.c's.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "mailproc.h"
#include "pop3.h"

/* Where the time of the last POP3 login is kept: its mtime, in home. */
#define POP3_LOGIN_STAMP	".postern-pop3-login"

bool
pop3_maildrop_in_use(const struct pop3_session *s)
{
	const struct pop3_session *o;

	for (o = pop3_sessions_first(); o != NULL; o = o->next) {
		/* A session past its UPDATE state has let go. */
		if (o == s || !o->locked || o->conn.dead ||
		    o->state == POP3_STATE_CLOSE)
			continue;
		if (strcmp(o->user, s->user) == 0 &&
		    strcmp(o->mail, s->mail) == 0)
			return true;
	}
	return false;
}

static int
pop3_login_stamp_path(const struct pop3_session *s, char *path, size_t size)
{
	int n;

	if (s->home[0] != '/')
		return -1;
	n = snprintf(path, size, "%s/%s", s->home, POP3_LOGIN_STAMP);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

bool
pop3_login_delay_ok(const struct pop3_session *s)
{
	long long delay = cfg_get_int("pop3_login_delay");
	char path[4096];
	struct stat st;
	time_t now = time(NULL);

	if (delay <= 0 || pop3_login_stamp_path(s, path, sizeof(path)) < 0)
		return true;
	if (stat(path, &st) < 0)
		return true;
	/*
	 * RFC 2449 §6.5: the delay counts from the last +OK to a login.
	 * A stamp in the future (the clock was set back) says nothing.
	 */
	if (st.st_mtime > now)
		return true;
	return now - st.st_mtime >= delay;
}

void
pop3_login_delay_mark(const struct pop3_session *s)
{
	char path[4096];
	int fd;

	if (cfg_get_int("pop3_login_delay") <= 0 ||
	    pop3_login_stamp_path(s, path, sizeof(path)) < 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || futimens(fd, NULL) < 0)
		log_warning("pop3(%s): cannot record the login time for "
		    "pop3_login_delay in %s: %s", s->log_user, path,
		    strerror(errno));
	if (fd >= 0)
		close(fd);
}

int
main(int argc, char **argv)
{
	return mailproc_main("pop3", argc, argv, pop3_session_new);
}
