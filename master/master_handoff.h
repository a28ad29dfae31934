/*
 * master_handoff: the text of the hand-off messages posternd receives
 * (doc/internals.md, "Handing a logged-in session to the mail process"),
 * checked apart from any socket so that it can be tested: a HANDOFF from
 * a login process, which reads network bytes and is not trusted, and the
 * auth service's USER answer to a ticket.
 */
#ifndef POSTERN_MASTER_HANDOFF_H
#define POSTERN_MASTER_HANDOFF_H

#include <stdbool.h>
#include <sys/types.h>

/* Longest ticket (hex digits). */
#define HANDOFF_MAX_TICKET	128
/* Longest user name, TLS description or IMAP tag (decoded). */
#define HANDOFF_MAX_FIELD	1024
/* Longest home directory or mail location (decoded). */
#define HANDOFF_MAX_PATH	4096

struct master_handoff_msg {
	unsigned long	 id;		/* the login process's request id */
	char		*ticket;	/* hex */
	/* "rip=.. rport=.. lip=.. lport=..[ tls=..][ pre=..][ tag=..]",
	 * every field checked, passed on as it is in SESSION. */
	char		*fields;
};

/* What the auth service said about a ticket. */
struct master_handoff_user {
	char	*name, *home, *mail;	/* xtext, as received; mail may be
					 * NULL */
	char	*name_plain;		/* decoded, for the log */
	uid_t	 uid;
	gid_t	 gid;
};

/*
 * Check "HANDOFF <id> <proto> <ticket> rip=<ip> rport=<n> lip=<ip>
 * lport=<n> [tls=<x>] [pre=<base64>] [tag=<x>]" (text is changed).
 * proto is the one the sending login process serves.  Returns NULL and
 * fills *m (free with master_handoff_msg_free()), or why the message is
 * malformed.
 */
const char *master_handoff_parse(char *text, const char *proto,
	    struct master_handoff_msg *m);
void	master_handoff_msg_free(struct master_handoff_msg *m);

/*
 * The fields after "USER <id>": user=<x> uid=<n> gid=<n> home=<x>
 * [mail=<x>], any order; unknown fields are ignored (the auth service
 * may say more).  f's strings are changed.  0, or -1 when a field is
 * missing or malformed.
 */
int	master_handoff_user_parse(char **f, struct master_handoff_user *u);
void	master_handoff_user_free(struct master_handoff_user *u);

#endif
