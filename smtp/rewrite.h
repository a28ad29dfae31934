/*
 * rewrite: address rewriting and virtual domains (DESIGN §4 resolution
 * order), as Postfix's canonical(5), virtual(5), generic(5) and
 * masquerading.  Used by smtpd before queueing (sender, recipients,
 * header addresses, BCC additions), by local for virtual mailbox
 * domains, and by the smtp delivery agent for $smtp_generic_maps.
 *
 * Tables are opened at first use from the loaded configuration; call
 * rewrite_reset() after a reload.  Lookups follow Postfix's order for
 * each table: user@domain, then user (only for local domains), then
 * @domain; with $recipient_delimiter, user+ext@domain is looked up as
 * itself first and then as user@domain.  Every function is safe to call
 * from worker threads after rewrite_init() (tables are read-only then,
 * each lookup under one mutex).
 *
 * Addresses go in and come out in their external form (a local part
 * that needs it in double quotes, as in the queue file); table keys and
 * results are compared in the unquoted internal form, as Postfix does.
 */
#ifndef POSTERN_REWRITE_H
#define POSTERN_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Rounds of canonical mapping of one address (Postfix: 10). */
#define REWRITE_MAX_CANONICAL_ROUNDS	10
/* Addresses of one header field that are looked up; the rest is kept. */
#define REWRITE_MAX_HEADER_ADDRS	1000
/* Bytes of one header value rewrite_header_value() accepts. */
#define REWRITE_MAX_HEADER_VALUE	(100 * 1024)
/* Seconds between checks whether a table file changed on disk. */
#define REWRITE_REFRESH_INTERVAL	0

/*
 * Open the tables the settings name, so that a missing or stale one is
 * reported at start: 0, or -1 + *error_r (the first failure; lookups in
 * a table that failed are temporary failures and retry the open once a
 * second).  rewrite_reset() closes everything (after a reload; tables
 * also reopen by themselves when their parameter's value changes).
 * Tables still open at exit are closed by an atexit() handler.
 */
int	rewrite_init(const char **error_r);
void	rewrite_reset(void);

/*
 * Envelope sender: $sender_canonical_maps, then $canonical_maps, then
 * $masquerade_domains.  Returns a malloc'ed address (a copy when nothing
 * applies), or NULL + *why_r on a temporary table failure.
 */
char	*rewrite_sender(const char *addr, const char **why_r);

/*
 * Envelope recipient: $recipient_canonical_maps, $canonical_maps, then
 * $virtual_alias_maps expanded recursively (at most MAX_ALIAS_DEPTH
 * levels and MAX_ALIAS_EXPANSION addresses; an address that maps to
 * itself is kept).  Returns
 *   1  *addrs_r: NULL-terminated strv of final addresses (>= 1)
 *   0  the domain is in $virtual_alias_domains and the address has no
 *      entry ("User unknown in virtual alias table"), or its entry is a
 *      sendmail-style "error:" result; *why_r is "CODE D.S.N TEXT"
 *      ("550 5.1.1 User unknown in virtual alias table")
 *  -1  temporary failure, *why_r says which table
 * *why_r points to a per-thread buffer valid until the next call.
 * rewrite_recipient_reply() turns 0 and -1 into the SMTP reply.
 */
int	rewrite_recipient(const char *addr, char ***addrs_r,
	    const char **why_r);

/*
 * The RCPT reply for a rewrite_recipient() result ret (0 or -1) and its
 * why: "550 5.1.1 <addr>: Recipient address rejected: User unknown in
 * virtual alias table" or "451 4.3.0 <addr>: Temporary lookup failure".
 * malloc'ed.
 */
char	*rewrite_recipient_reply(const char *addr, int ret, const char *why);

/* Is domain listed in $virtual_alias_domains / $virtual_mailbox_domains? */
bool	rewrite_is_virtual_alias_domain(const char *domain);
bool	rewrite_is_virtual_mailbox_domain(const char *domain);

/*
 * A recipient of a virtual mailbox domain: its $virtual_mailbox_maps
 * entry (relative to $virtual_mailbox_base; a trailing '/' means
 * Maildir), uid and gid from $virtual_uid_maps / $virtual_gid_maps
 * ("static:5000" or tables).  Returns one of REWRITE_VMBOX_* with, when
 * FOUND, *path_r malloc'ed and absolute, and with *why_r set when
 * negative.  For a passwd-file user (below) *path_r is the inbox its
 * mail_location names (maildir with a '/').
 *
 * TEMPFAIL and UNUSABLE are kept apart because smtpd must answer them
 * differently: a table that cannot be read says nothing about the
 * address (451, try later), while an entry that exists but cannot be
 * delivered to (a uid below virtual_minimum_uid, no uid/gid entry, an
 * empty result) makes the address known: it is accepted and local
 * defers its delivery with the reason, as Postfix's virtual(8) does.
 */
#define REWRITE_VMBOX_FOUND	1
#define REWRITE_VMBOX_NOTFOUND	0	/* no such user */
#define REWRITE_VMBOX_TEMPFAIL	(-1)	/* a table could not be read */
#define REWRITE_VMBOX_UNUSABLE	(-2)	/* an entry local cannot use */
int	rewrite_virtual_mailbox(const char *addr, char **path_r,
	    uid_t *uid_r, gid_t *gid_r, const char **why_r);

/*
 * The same with the facts local needs.  A "passwd-file:PATH" element of
 * $virtual_mailbox_maps names a Dovecot passwd-file whose user names are
 * full addresses (bob@example.com): such a recipient is that user, with
 * the uid, gid and home of its line, and its mailbox is the one
 * $mail_location gives for it, the same one POP3 and IMAP open when the
 * user logs in as bob@example.com with that file as userdb.
 */
struct rewrite_vmbox {
	char	*path;		/* table entry: absolute mailbox, or NULL */
	char	*user;		/* passwd-file user, or NULL */
	char	*home;		/* passwd-file user's home, or NULL */
	uid_t	 uid;
	gid_t	 gid;
};
int	rewrite_virtual_lookup(const char *addr, struct rewrite_vmbox *vb,
	    const char **why_r);
void	rewrite_vmbox_free(struct rewrite_vmbox *vb);

/*
 * BCC recipients to add for one message: $always_bcc,
 * $sender_bcc_maps(sender), $recipient_bcc_maps(each rcpt).  Returns a
 * NULL-terminated strv (maybe empty), duplicates removed.
 */
char	**rewrite_bcc(const char *sender, char *const *rcpts);
/* The same; a table failure is -1 with *why_r instead of a log line. */
int	rewrite_bcc_lookup(const char *sender, char *const *rcpts,
	    char ***bcc_r, const char **why_r);

enum rewrite_hdr {
	REWRITE_HDR_CANONICAL,	/* smtpd: canonical + masquerading */
	REWRITE_HDR_GENERIC	/* smtp client: $smtp_generic_maps */
};

/*
 * One header field (name and unfolded value, without CRLF) whose value
 * is an address list (From, Sender, Reply-To, To, Cc, Bcc, Resent-*,
 * Return-Receipt-To, Errors-To, Disposition-Notification-To): returns
 * the malloc'ed new value when an address changed, NULL when nothing
 * applies (then the original bytes are kept exactly).  Display names,
 * comments and groups are kept.  A folded value (LF or CRLF followed by
 * white space) is accepted too and keeps its folding: only the bytes of
 * the addresses that change are replaced.
 */
char	*rewrite_header_value(const char *name, const char *value,
	    enum rewrite_hdr how);

/* Whether the field name (len bytes, no colon) is an address header. */
bool	rewrite_header_is_address(const char *name, size_t len);

/*
 * Whether rewrite_header_value() can change anything for how with the
 * current settings (canonical tables or masquerading set for header
 * classes; $smtp_generic_maps set): callers skip the header work
 * entirely otherwise.
 */
bool	rewrite_header_active(enum rewrite_hdr how);

/* $smtp_generic_maps for one envelope address; NULL when unchanged. */
char	*rewrite_generic(const char *addr);

#endif
