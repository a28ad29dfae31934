/*
 * Unit tests of master/master_handoff_parse.c: the HANDOFF packets a
 * login process sends posternd (which must treat them as hostile) and the
 * auth service's USER answer to a ticket.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailproc.h"
#include "master_handoff.h"
#include "str.h"
#include "test.h"

#define GOOD	"HANDOFF 7 pop3 0123456789abcdef rip=192.0.2.7 rport=40000 " \
		"lip=192.0.2.1 lport=110"

/* Parse a copy of text as a pop3-login's message; NULL or why. */
static const char *
parse(const char *text, struct master_handoff_msg *m)
{
	char *copy = strdup(text);
	const char *why = master_handoff_parse(copy, "pop3", m);

	free(copy);
	return why;
}

static bool
refused(const char *text)
{
	struct master_handoff_msg m;
	const char *why = parse(text, &m);

	if (why == NULL) {
		printf("# accepted: %.200s\n", text);
		master_handoff_msg_free(&m);
		return false;
	}
	return true;
}

static void
test_good(void)
{
	struct master_handoff_msg m;

	test_begin("HANDOFF accepted");
	test_assert(parse(GOOD, &m) == NULL);
	test_assert(m.id == 7);
	test_assert_streq(m.ticket, "0123456789abcdef");
	test_assert_streq(m.fields, "rip=192.0.2.7 rport=40000 "
	    "lip=192.0.2.1 lport=110");
	master_handoff_msg_free(&m);

	/* Optional fields, any order; passed on in a fixed order. */
	test_assert(parse("HANDOFF 1 pop3 ab tag=A001 pre=VVNFUg== "
	    "tls=TLSv1.3/TLS_AES_256_GCM_SHA384 lport=995 lip=::1 "
	    "rport=1 rip=2001:db8::1", &m) == NULL);
	test_assert_streq(m.fields, "rip=2001:db8::1 rport=1 lip=::1 "
	    "lport=995 tls=TLSv1.3/TLS_AES_256_GCM_SHA384 pre=VVNFUg== "
	    "tag=A001");
	master_handoff_msg_free(&m);

	/* An xtext tag with spaces encoded. */
	test_assert(parse(GOOD " tag=a+20b", &m) == NULL);
	master_handoff_msg_free(&m);
	test_end();
}

static void
test_bad(void)
{
	char big[MAILPROC_MAX_MSG + 64];
	size_t i;

	test_begin("HANDOFF refused");
	test_assert(refused(""));
	test_assert(refused("HANDOFF"));
	test_assert(refused("SESSION 7 pop3 ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	/* The login process's own protocol only. */
	test_assert(refused("HANDOFF 7 imap ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	/* ids */
	test_assert(refused("HANDOFF -1 pop3 ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF 99999999999999999999 pop3 ab "
	    "rip=1.2.3.4 rport=1 lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF x pop3 ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	/* tickets: hex, bounded */
	test_assert(refused("HANDOFF 1 pop3 a/b rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF 1 pop3 user=root rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1"));
	snprintf(big, sizeof(big), "HANDOFF 1 pop3 %0*d rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4 lport=1", HANDOFF_MAX_TICKET + 1, 0);
	test_assert(refused(big));
	/* fields: missing, unknown, repeated, no value */
	test_assert(refused("HANDOFF 1 pop3 ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4"));
	test_assert(refused(GOOD " user=root"));
	test_assert(refused(GOOD " uid=0"));
	test_assert(refused(GOOD " rip=10.0.0.1"));
	test_assert(refused(GOOD " tls"));
	test_assert(refused(GOOD " =x"));
	/* values */
	test_assert(refused("HANDOFF 1 pop3 ab rip=host.example rport=1 "
	    "lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF 1 pop3 ab rip=1.2.3.4 rport=65536 "
	    "lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF 1 pop3 ab rip=1.2.3.4 rport=-1 "
	    "lip=1.2.3.4 lport=1"));
	test_assert(refused("HANDOFF 1 pop3 ab rip=1.2.3.4 rport=1 "
	    "lip=1.2.3.4+0A lport=1"));
	test_assert(refused(GOOD " pre=not-base64!"));
	test_assert(refused(GOOD " pre=QQ"));
	test_assert(refused(GOOD " tag=a+0Db"));	/* CR in the tag */
	test_assert(refused(GOOD " tag=a+00b"));	/* NUL */
	test_assert(refused(GOOD " tag=a+2"));		/* cut escape */
	test_assert(refused(GOOD " tls=a b"));
	/* A tag longer than HANDOFF_MAX_FIELD. */
	i = (size_t)snprintf(big, sizeof(big), "%s tag=", GOOD);
	memset(big + i, 'x', HANDOFF_MAX_FIELD + 1);
	big[i + HANDOFF_MAX_FIELD + 1] = '\0';
	test_assert(refused(big));
	test_end();
}

/* Every prefix of a good message is refused or accepted, never more. */
static void
test_prefixes(void)
{
	const char *full = GOOD " tls=TLSv1.2/X pre=QUJD tag=T1";
	size_t len = strlen(full), n, ok = 0;
	char buf[256];

	test_begin("HANDOFF prefixes");
	for (n = 0; n <= len; n++) {
		struct master_handoff_msg m;

		memcpy(buf, full, n);
		buf[n] = '\0';
		if (parse(buf, &m) == NULL) {
			ok++;
			test_assert(m.ticket != NULL && m.fields != NULL);
			master_handoff_msg_free(&m);
		}
	}
	/* Accepted: GOOD itself and the prefixes ending inside or after
	 * a complete optional field that stays valid. */
	test_assert(ok > 0 && ok < len);
	test_end();
}

static int
user_parse(const char *text, struct master_handoff_user *u)
{
	char **f = strv_split(text, " ");
	int ret = master_handoff_user_parse(f, u);

	strv_free(&f);
	return ret;
}

static void
test_user(void)
{
	struct master_handoff_user u;

	test_begin("USER answer");
	test_assert(user_parse("user=bob uid=1001 gid=100 home=/home/bob "
	    "mail=maildir:~/Maildir", &u) == 0);
	test_assert_streq(u.name, "bob");
	test_assert_streq(u.name_plain, "bob");
	test_assert(u.uid == 1001 && u.gid == 100);
	test_assert_streq(u.home, "/home/bob");
	test_assert_streq(u.mail, "maildir:~/Maildir");
	master_handoff_user_free(&u);

	/* Any order, mail optional, unknown fields ignored, xtext. */
	test_assert(user_parse("home=/h/b+20c gid=5 extra=1 uid=7 "
	    "user=b+40example.org", &u) == 0);
	test_assert_streq(u.name_plain, "b@example.org");
	test_assert_streq(u.name, "b+40example.org");
	test_assert(u.mail == NULL);
	master_handoff_user_free(&u);

	test_assert(user_parse("uid=1 gid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=b gid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=b uid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=b uid=1 gid=1", &u) < 0);
	test_assert(user_parse("user=b uid=1 gid=1 home=relative", &u) < 0);
	test_assert(user_parse("user=b uid=-1 gid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=b uid=4294967295 gid=1 home=/h",
	    &u) < 0);
	test_assert(user_parse("user=b uid=1 gid=x home=/h", &u) < 0);
	test_assert(user_parse("user= uid=1 gid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=a+0Ab uid=1 gid=1 home=/h", &u) < 0);
	test_assert(user_parse("user=b uid=1 gid=1 home=/h mail=+ZZ",
	    &u) < 0);
	test_end();
}

int
main(void)
{
	test_good();
	test_bad();
	test_prefixes();
	test_user();
	return test_done();
}
