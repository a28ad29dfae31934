/*
 * pop3_capa: the CAPA response (RFC 2449 §5, §6), shared by pop3-login
 * (AUTHORIZATION state) and the pop3 mail process (TRANSACTION state) so
 * both list the same base capabilities.  RFC 2449 lets the two lists
 * differ: the login process adds STLS, USER and SASL, which are of no
 * use after login.
 */
#ifndef POSTERN_POP3_CAPA_H
#define POSTERN_POP3_CAPA_H

struct buf;

/*
 * Append the whole multi-line CAPA response to out: the +OK line, the
 * base capabilities, auth_lines (NULL, or CRLF-terminated lines the
 * login process adds: STLS, USER, SASL ...), EXPIRE and LOGIN-DELAY
 * when pop3_expire_days / pop3_login_delay are set, IMPLEMENTATION and
 * the terminating ".".  Reads the configuration.
 */
void	pop3_capa_append(struct buf *out, const char *auth_lines);

#endif
