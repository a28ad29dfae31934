/*
 * authd: the pieces of the auth service shared between authd.c (start,
 * sockets, settings, reload) and auth_conn.c (connections, requests,
 * password checks in worker threads).  Protocol: doc/internals.md
 * "Authentication" and "auth <-> posternd".
 */
#ifndef POSTERN_AUTHD_H
#define POSTERN_AUTHD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Connections served at once (smtpd, login processes, posternd). */
#define MAX_AUTH_CONNS		256
/* Exchanges open at once on one connection. */
#define MAX_AUTH_CONN_REQUESTS	1024
/* Bytes of replies queued for a client that does not read. */
#define MAX_AUTH_OUTBUF		(1024 * 1024)
/*
 * Stack of a worker thread: PAM modules (pam_cap, pam_sss, ...) are
 * written for a process's main stack and keep big buffers on it.
 * Address space only; pages are used as touched.
 */
#define AUTH_WORKER_STACK	(8 * 1024 * 1024)
/* How long an exchange may wait for the client's next response. */
#define AUTH_CONT_TIMEOUT_MS	(5 * 60 * 1000)

/*
 * The settings the loop thread uses, copied from the configuration at
 * start and at each reload, so that only the worker threads call
 * cfg_get() between reloads.
 */
struct authd_settings {
	char	 *hostname;		/* myhostname (CRAM-MD5) */
	char	 *mail_location;	/* USER replies: mail= */
	char	 *username_format;	/* auth_username_format */
	bool	  disable_plaintext;	/* disable_plaintext_auth */
	uint64_t  failure_delay_ms;	/* auth_failure_delay */
	char	**mechs;		/* offered, canonical names */
};

extern struct authd_settings authd_set;

/*
 * Held for reading by a worker while it runs a check (passdb, userdb and
 * the config they read); held for writing by the loop while it reloads
 * the configuration.
 */
extern pthread_rwlock_t authd_cfg_lock;

/* ---- auth_conn.c ---- */

/* Start the worker threads and the tables. */
void	auth_conn_init(int workers);
/* A new connection on a listening socket (master: auth-master). */
void	auth_conn_accept(int listen_fd, bool master);
/* Close every connection (exit). */
void	auth_conn_deinit(void);

/*
 * Whether mech is offered now, and whether it sends the password itself.
 * name is canonical (upper case).
 */
bool	authd_mech_offered(const char *name);
bool	authd_mech_plaintext(const char *name);

#endif
