/*
 * pop3_capa: the CAPA response of both POP3 processes (see pop3_capa.h).
 */
#include "config.h"

#include "buf.h"
#include "cfg.h"
#include "pop3_capa.h"

void
pop3_capa_append(struct buf *out, const char *auth_lines)
{
	long long expire = cfg_get_int("pop3_expire_days");
	long long delay = cfg_get_int("pop3_login_delay");

	buf_append_str(out, "+OK Capability list follows\r\n"
	    "CAPA\r\n"
	    "TOP\r\n"
	    "UIDL\r\n"
	    "RESP-CODES\r\n"
	    "PIPELINING\r\n"
	    /* RFC 3206 §6: [AUTH] and [SYS/...] on failed logins. */
	    "AUTH-RESP-CODE\r\n");
	if (auth_lines != NULL)
		buf_append_str(out, auth_lines);
	/*
	 * RFC 2449 §6.7: the minimum number of days mail stays on the
	 * server.  Postern never deletes on its own, so any value it
	 * announces holds; the setting lets an admin announce a site
	 * policy carried out elsewhere (a cron job).  0 = not announced.
	 */
	if (expire > 0)
		buf_printf(out, "EXPIRE %lld\r\n", expire);
	/* RFC 2449 §6.5: enforced by the pop3 process at login. */
	if (delay > 0)
		buf_printf(out, "LOGIN-DELAY %lld\r\n", delay);
	buf_append_str(out, "IMPLEMENTATION Postern\r\n.\r\n");
}
