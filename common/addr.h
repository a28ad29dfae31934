/*
 * addr: mail addresses as the MTA sees them.  Parsing of SMTP paths
 * (RFC 5321 §4.1.2: <local@domain>, quoted local parts, source routes
 * dropped), splitting, the local-domain test against $mydestination, and
 * recipient_delimiter handling (user+ext@domain).
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Parse the path argument of MAIL FROM:/RCPT TO: starting at s (after the
 * colon, spaces allowed before '<' as Postfix allows).  On success returns
 * 1, sets *addr_r (malloc'ed, without <>; "" for the null path <>) and
 * *rest_r to the ESMTP parameters that follow (borrowed from s).  Returns
 * -1 with *error_r (an SMTP reply text such as "501 5.1.3 Bad recipient
 * address syntax") on bad syntax.  utf8: allow UTF-8 (SMTPUTF8 given).
 */
int	addr_parse_path(const char *s, bool utf8, char **addr_r,
	    const char **rest_r, const char **error_r);

/* Split at the last '@'.  *local_r and *domain_r are malloc'ed; domain is
 * "" when there is no '@'. */
void	addr_split(const char *addr, char **local_r, char **domain_r);

/*
 * Is domain one of $mydestination (case-insensitive; also the address
 * literal of an inet_interfaces address, "[127.0.0.1]")?  Reads the config
 * on each call: cheap enough, and always current after reload.
 */
bool	addr_domain_is_local(const char *domain);

/*
 * Strip "+ext" from a local part using $recipient_delimiter (may hold
 * several characters, any of them splits).  Returns malloc'ed base; sets
 * *ext_r (malloc'ed or NULL) when ext_r != NULL.
 */
char	*addr_strip_ext(const char *local, char **ext_r);

/* Lowercase the domain part, leave the local part as is; malloc'ed. */
char	*addr_normalize(const char *addr);

/* Append "@$myorigin" to a bare local part; malloc'ed. */
char	*addr_qualify(const char *addr);

#endif
