/*
 * Every hard limit of Postern in one place.  Limits that an admin may want
 * to change are also config parameters (cfg_params.c); these are the
 * compiled-in ceilings and defaults.
 */
#ifndef POSTERN_LIMITS_H
#define POSTERN_LIMITS_H

/* SMTP command line, including CRLF.  RFC 5321 §4.5.3.1.4 says 512 at
 * least; extensions (SIZE, DSN, SMTPUTF8) make longer lines legal. */
#define MAX_SMTP_LINE		2048
/* One header line (unfolded) while smtpd scans headers. */
#define MAX_HEADER_LINE		(100 * 1024)
/* Lines of one internal protocol message. */
#define MAX_IPC_LINE		8192
/* Alias / .forward / :include: nesting depth. */
#define MAX_ALIAS_DEPTH		20
/* Addresses one alias expansion may produce. */
#define MAX_ALIAS_EXPANSION	1000
/* Received headers before a message is a loop (Postfix hopcount_limit). */
#define MAX_HOPS		50
/* Bytes of bounce copy of the original message (Postfix
 * bounce_size_limit). */
#define MAX_BOUNCE_COPY		50000
/* Length of an address, local part + '@' + domain (RFC 5321 §4.5.3.1). */
#define MAX_ADDRESS		1024

/* store: messages in one mailbox view. */
#define MAX_STORE_MESSAGES	(4 * 1024 * 1024)
/* store: bytes of a UID map file (postern-uidlist, dovecot-uidlist). */
#define MAX_STORE_UIDLIST_SIZE	(512 * 1024 * 1024)
/* store: one UID map line; longer lines are ignored as damaged. */
#define MAX_STORE_UIDLIST_LINE	4096
/* store: bytes of a dovecot-keywords file. */
#define MAX_STORE_KEYWORDS_FILE	(64 * 1024)
/* store: bytes of a mbox header value kept for the fingerprint. */
#define MAX_STORE_MBOX_HDR	256

/* IMAP command text of one command, literals excluded: the default of
 * the imap_max_line_length parameter (Dovecot's default, 64 KiB). */
#define MAX_IMAP_LINE		65536
/* Literal bytes one IMAP command keeps in memory (APPEND messages are
 * streamed, not kept). */
#define MAX_IMAP_LITERAL	65536
/* Nesting of IMAP parenthesized lists, and of SEARCH keys (OR, NOT). */
#define MAX_IMAP_LIST_DEPTH	32
#define MAX_IMAP_SEARCH_DEPTH	64
/* Arguments of one IMAP command, list members included. */
#define MAX_IMAP_ARGS		4096

#endif
