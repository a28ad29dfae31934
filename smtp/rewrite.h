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
 */
#ifndef POSTERN_REWRITE_H
#define POSTERN_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Open nothing yet, read the settings; 0 or -1 + *error_r. */
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
 *      entry ("User unknown in virtual alias table")
 *  -1  temporary failure, *why_r says which table
 */
int	rewrite_recipient(const char *addr, char ***addrs_r,
	    const char **why_r);

/* Is domain listed in $virtual_alias_domains / $virtual_mailbox_domains? */
bool	rewrite_is_virtual_alias_domain(const char *domain);
bool	rewrite_is_virtual_mailbox_domain(const char *domain);

/*
 * A recipient of a virtual mailbox domain: its $virtual_mailbox_maps
 * entry (relative to $virtual_mailbox_base; a trailing '/' means
 * Maildir), uid and gid from $virtual_uid_maps / $virtual_gid_maps
 * ("static:5000" or tables).  1 found (*path_r malloc'ed, absolute),
 * 0 no such user, -1 temporary failure.
 */
int	rewrite_virtual_mailbox(const char *addr, char **path_r,
	    uid_t *uid_r, gid_t *gid_r, const char **why_r);

/*
 * BCC recipients to add for one message: $always_bcc,
 * $sender_bcc_maps(sender), $recipient_bcc_maps(each rcpt).  Returns a
 * NULL-terminated strv (maybe empty), duplicates removed.
 */
char	**rewrite_bcc(const char *sender, char *const *rcpts);

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
 * comments and groups are kept.
 */
char	*rewrite_header_value(const char *name, const char *value,
	    enum rewrite_hdr how);

/* $smtp_generic_maps for one envelope address; NULL when unchanged. */
char	*rewrite_generic(const char *addr);

#endif
