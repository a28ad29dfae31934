/*
 * imap_cmd_compress: COMPRESS (RFC 4978) in the authenticated and
 * selected states.  The command only decides and answers; the
 * compression itself is the connection's (login/mailconn.h), which sits
 * above the TLS relay of imap-login, as RFC 4978 §3 orders.
 */
#include "config.h"

#include <strings.h>

#include "imap.h"
#include "log.h"

void
imap_cmd_compress(struct imap_session *s, const struct imap_command *cmd)
{
	const char *error;

	/* RFC 4978 §3: DEFLATE is the one mechanism defined. */
	if (strcasecmp(cmd->u.compress.mech, "DEFLATE") != 0) {
		imap_tagged(s, "BAD", "Unknown compression mechanism.");
		return;
	}
	/* RFC 4978 §3: never twice; the code tells the client why. */
	if (mailconn_compressed(&s->conn)) {
		imap_tagged(s, "NO", "[COMPRESSIONACTIVE] DEFLATE active "
		    "via COMPRESS.");
		return;
	}
	/*
	 * The tagged OK is queued first and goes out uncompressed; every
	 * byte after its CRLF is compressed (RFC 4978 §3).  Pending
	 * untagged updates go before it, as with any command.
	 */
	imap_tagged(s, "OK", "DEFLATE active.");
	if (mailconn_compress(&s->conn, &error) < 0) {
		/* The OK is out already: nothing else can be said. */
		log_error("imap(%s): COMPRESS: %s", s->log_user, error);
		imap_session_close(s, "Disconnected: Compression failed");
	}
}
