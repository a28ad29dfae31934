/*
 * fuzz_master_handoff: what posternd (root) reads from a login process
 * and from the auth service in master/master_handoff_parse.c: HANDOFF
 * packets and USER answers.  The input is one packet (NUL bytes cut it
 * as recvmsg's NUL-terminated copy would).
 *
 * Checked beyond "no crash": an accepted HANDOFF has a hex ticket of at
 * most HANDOFF_MAX_TICKET digits and fields that parse again, as a new
 * HANDOFF, to themselves (what goes on to the mail process is checked
 * text, in a fixed order); an accepted USER record has a name, and a
 * home that starts with "/" once decoded.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stubs.h"
#include "master_handoff.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_HANDOFF_INPUT	(40 * 1024)

static void __attribute__((noreturn))
fuzz_handoff_fail(const char *what)
{
	fprintf(stderr, "master_handoff: %s\n", what);
	abort();
}

static void
fuzz_handoff(const char *text)
{
	struct master_handoff_msg m, m2;
	char *copy = xstrdup(text), *again;

	if (master_handoff_parse(copy, "pop3", &m) != NULL) {
		free(copy);
		return;
	}
	free(copy);
	if (m.ticket == NULL || m.fields == NULL ||
	    strlen(m.ticket) > HANDOFF_MAX_TICKET ||
	    strspn(m.ticket, "0123456789abcdefABCDEF") != strlen(m.ticket))
		fuzz_handoff_fail("accepted a bad ticket");
	again = xasprintf("HANDOFF %lu pop3 %s %s", m.id, m.ticket, m.fields);
	if (master_handoff_parse(again, "pop3", &m2) != NULL)
		fuzz_handoff_fail("its own output refused");
	if (strcmp(m2.fields, m.fields) != 0 || m2.id != m.id)
		fuzz_handoff_fail("its own output changed");
	free(again);
	master_handoff_msg_free(&m);
	master_handoff_msg_free(&m2);
}

static void
fuzz_user(const char *text)
{
	struct master_handoff_user u;
	char **f = strv_split(text, " ");

	if (master_handoff_user_parse(f, &u) == 0) {
		char *home = xtext_decode(u.home);

		if (u.name == NULL || u.name_plain == NULL ||
		    *u.name_plain == '\0' || home == NULL || home[0] != '/')
			fuzz_handoff_fail("accepted a bad USER record");
		free(home);
		master_handoff_user_free(&u);
	}
	strv_free(&f);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *text;

	if (size > MAX_FUZZ_HANDOFF_INPUT)
		return 0;
	text = xstrndup((const char *)data, size);
	fuzz_handoff(text);
	fuzz_user(text);
	free(text);
	return 0;
}
