/*
 * imap_cmd_misc: the small commands of any state: CAPABILITY, NOOP,
 * LOGOUT (RFC 9051 §6.1), ENABLE (RFC 5161, RFC 9051 §6.3.1), ID (RFC
 * 2971), NAMESPACE (RFC 2342, RFC 9051 §6.3.10) and CHECK (RFC 3501
 * §6.4.1: a NOOP here, since every change is on disk when answered).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap.h"
#include "log.h"
#include "store.h"

void
imap_capability_write(struct buf *out)
{
	buf_append_str(out, IMAP_CAPABILITY);
	imap_append_limit_capability(out);	/* RFC 7889 */
}

void
imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
	struct buf b;

	(void)cmd;
	buf_init(&b, 0);
	imap_capability_write(&b);
	imap_reply(s, "* CAPABILITY %s", buf_cstr(&b));
	buf_free(&b);
	imap_tagged(s, "OK", "Capability completed.");
}

void
imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error;

	(void)cmd;
	/* RFC 9051 §6.1.2: the way to poll for changes. */
	if (s->sel != NULL && imap_mbox_sync(s->sel, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", s->log_user,
		    s->sel->name, error);
	imap_tagged(s, "OK", "NOOP completed.");
}

void
imap_cmd_check(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error;

	(void)cmd;
	if (imap_mbox_sync(s->sel, &error) < 0) {
		imap_tagged_fail(s, "CHECK", error);
		return;
	}
	imap_tagged(s, "OK", "Check completed.");
}

void
imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
	(void)cmd;
	/* RFC 9051 §6.1.3: BYE, then the tagged OK. */
	imap_reply(s, "* BYE Logging out");
	imap_tagged_only(s, "OK", "Logout completed.");
	imap_session_close(s, "Disconnected: Logged out");
}

void
imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	buf_append_str(&b, "* ENABLED");
	for (i = 0; i < cmd->u.enable.count; i++) {
		const char *cap = cmd->u.enable.caps[i];

		/* RFC 5161 §3.1: only what we support and was not on. */
		if (strcasecmp(cap, "IMAP4rev2") == 0 && !s->rev2) {
			s->rev2 = true;
			buf_append_str(&b, " IMAP4rev2");
		} else if (strcasecmp(cap, "CONDSTORE") == 0 &&
		    !s->condstore) {
			/* Not selected here (ENABLE is refused in the
			 * selected state): no HIGHESTMODSEQ to say. */
			s->condstore = true;
			buf_append_str(&b, " CONDSTORE");
		} else if (strcasecmp(cap, "QRESYNC") == 0 && !s->qresync) {
			/* RFC 7162 §3.2.3: QRESYNC implies CONDSTORE. */
			s->qresync = true;
			s->condstore = true;
			buf_append_str(&b, " QRESYNC");
		} else if (strcasecmp(cap, "UTF8=ACCEPT") == 0 &&
		    !s->utf8_accept) {
			/* RFC 6855 §3: UTF-8 names from now on. */
			s->utf8_accept = true;
			imap_parser_set_utf8(s->parser, true);
			buf_append_str(&b, " UTF8=ACCEPT");
		}
	}
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
	imap_tagged(s, "OK", "Enabled.");
}

void
imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
	(void)cmd;
	imap_reply(s, "* ID %s", IMAP_ID_REPLY);
	imap_tagged(s, "OK", "ID completed.");
}

void
imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
	(void)cmd;
	/* One personal namespace, no prefix, "/" between levels. */
	imap_reply(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_tagged(s, "OK", "Namespace completed.");
}
