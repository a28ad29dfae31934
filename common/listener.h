/*
 * listener: the listening sockets of a service that accepts clients
 * (smtpd, pop3-login, imap-login) and their accept loop.  posternd binds
 * every listener and passes them as descriptors named in POSTERN_LISTEN
 * ("FD:SERVICE:ADDR:PORT,...", doc/internals.md); a service may add its
 * own (smtpd's pickup socket).  One set per process.
 *
 * Accepting is bounded per wakeup so that one busy listener cannot starve
 * the sessions, and paused for a second when the process is out of
 * descriptors instead of spinning on the readiness it cannot clear.
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

/* Connections accepted per readiness event of one listener. */
#define LISTENER_ACCEPT_BATCH	64

/*
 * A new client: fd is non-blocking and close-on-exec and the callee's;
 * kind is what the listener was added with; peer is the client's address.
 */
typedef void listener_accept_cb(int fd, int kind,
    const struct sockaddr_storage *peer, socklen_t peerlen);
/* The caller's kind for a service name of POSTERN_LISTEN, or -1 when
 * this process does not serve it. */
typedef int listener_kind_cb(const char *service);

/* Take over the listening socket fd, for clients of kind.  Fatal when it
 * cannot be made non-blocking. */
void	listener_add(int fd, int kind);
/*
 * Add the listeners of POSTERN_LISTEN (none when it is unset) for the
 * services kind_of knows; others are logged and left alone.  A malformed
 * element is fatal: posternd wrote it.
 */
void	listener_add_env(listener_kind_cb *kind_of);
/* Listeners added and not closed. */
size_t	listener_count(void);
/* Accept on every listener from now on, calling cb for each client. */
void	listener_start(listener_accept_cb *cb);
/* Stop accepting and close every listener (the process is stopping). */
void	listener_close_all(void);

#endif
