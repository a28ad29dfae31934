/*
 * mailproc: the side of the imap and pop3 mail processes that receives
 * logged-in sessions from posternd (doc/internals.md, "Handing a
 * logged-in session").  A mail process runs as one user's uid and serves
 * every session of that uid in one event loop; it exits after
 * MAILPROC_IDLE_EXIT seconds without sessions.
 */
#ifndef POSTERN_MAILPROC_H
#define POSTERN_MAILPROC_H

#include <stdbool.h>
#include <stddef.h>

/* Default of mail_process_max_idle (seconds). */
#define MAILPROC_IDLE_EXIT	60
/*
 * Largest HANDOFF/SESSION packet (doc/internals.md): a pre-login line of
 * pipelined bytes in base64 plus the user's name, home and mail location.
 */
#define MAILPROC_MAX_MSG	32768

struct mailproc_session {
	int		 fd;		/* client connection (or TLS relay) */
	const char	*user;
	const char	*home;
	const char	*mail;		/* mail_location for this user */
	const char	*rip, *lip;
	int		 rport, lport;
	const char	*tls;		/* "TLSv1.3/TLS_AES_..." or NULL */
	const char	*tag;		/* IMAP tag of the login, or NULL */
	const unsigned char *pre;	/* pipelined client bytes */
	size_t		 prelen;
};

/*
 * A new session: the callee owns fd from now on.  The strings are valid
 * only during the call (copy what is kept).
 */
typedef void mailproc_session_cb(const struct mailproc_session *s);

/*
 * Run the mail process: read the config (-c), set up logging as name
 * ("pop3", "imap"), then the event loop; new_session is called for each
 * SESSION from posternd.  Returns only at exit, with the exit status.
 */
int	mailproc_main(const char *name, int argc, char **argv,
	    mailproc_session_cb *new_session);
/* Tell mailproc a session ended (for the idle exit). */
void	mailproc_session_ended(void);
/* Number of live sessions (new_session calls minus ended). */
unsigned int mailproc_sessions(void);

#endif
