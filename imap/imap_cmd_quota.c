/*
 * imap_cmd_quota: GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208).
 *
 * A user has at most one quota root, named "" as Dovecot names it by
 * default, holding every mailbox.  Its resources are STORAGE (in units
 * of 1024 octets, RFC 9208 §5.1) and MESSAGE (§5.2); limits come from
 * quota_rule in the configuration, overridden by the passwd-file extra
 * field userdb_quota_rule (store/store_quota.c has the syntax).  Limits
 * are the administrator's: SETQUOTA is parsed and refused.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "imap.h"
#include "log.h"
#include "store.h"
#include "userdb.h"
#include "xmalloc.h"

/* The limits of s's user: the userdb field wins over quota_rule. */
static int
imap_quota_limit(struct imap_session *s, struct store_quota_limit *l,
    const char **error_r)
{
	struct userdb_user uu;
	const char *err;
	char *rule = NULL;
	int r;

	/* A passwd-file the mail process cannot read (root mode with a
	 * private file) leaves the global rule. */
	memset(&uu, 0, sizeof(uu));
	if (userdb_passwd_file() != NULL &&
	    userdb_lookup(s->user, &uu, &err) == 1) {
		rule = userdb_extra_get(&uu, "quota_rule");
		userdb_user_free(&uu);
	}
	r = store_quota_rule_parse(rule != NULL ? rule :
	    cfg_get("quota_rule"), l, error_r);
	free(rule);
	return r;
}

int
imap_quota_get(struct imap_session *s, struct store_quota_limit *l,
    struct store_quota_usage *u, const char **error_r)
{
	if (imap_quota_limit(s, l, error_r) < 0)
		return -1;
	if (!store_quota_limited(l))
		return 0;
	if (store_quota_usage(s->u->su, l, u, error_r) < 0)
		return -1;
	return 1;
}

/* "* QUOTA "" (STORAGE 10 512 MESSAGE 1 1000)" (RFC 9208 §5.1: KiB,
 * rounded up so that a non-empty mailbox never shows 0). */
static void
imap_quota_write(struct imap_session *s, const struct store_quota_limit *l,
    const struct store_quota_usage *u)
{
	struct buf b;
	bool first = true;

	buf_init(&b, 0);
	buf_append_str(&b, "* QUOTA \"\" (");
	if (l->bytes > 0) {
		buf_printf(&b, "STORAGE %" PRIu64 " %" PRIu64,
		    (u->bytes + 1023) / 1024, l->bytes / 1024);
		first = false;
	}
	if (l->messages > 0 && store_user_location(s->u->su)->format ==
	    STORE_FORMAT_MAILDIR)
		buf_printf(&b, "%sMESSAGE %" PRIu64 " %" PRIu64,
		    first ? "" : " ", u->messages, l->messages);
	buf_append_char(&b, ')');
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
}

void
imap_cmd_getquotaroot(struct imap_session *s, const struct imap_command *cmd)
{
	struct store_quota_limit l;
	struct store_quota_usage u;
	const char *error;
	struct buf name, b;
	int r;

	buf_init(&name, 0);
	if (imap_name_to_store(cmd->u.mailbox.mailbox, &name) < 0 ||
	    store_folder_exists(s->u->su, buf_cstr(&name)) != 1) {
		buf_free(&name);
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
		return;
	}
	buf_free(&name);
	r = imap_quota_get(s, &l, &u, &error);
	if (r < 0) {
		imap_tagged_fail(s, "GETQUOTAROOT", error);
		return;
	}
	/* RFC 9208 §4.1.2: QUOTAROOT, then a QUOTA for each root. */
	buf_init(&b, 0);
	buf_append_str(&b, "* QUOTAROOT ");
	imap_session_name_write(s, &b, cmd->u.mailbox.mailbox);
	if (r == 1)
		buf_append_str(&b, " \"\"");
	imap_reply(s, "%s", buf_cstr(&b));
	buf_free(&b);
	if (r == 1)
		imap_quota_write(s, &l, &u);
	imap_tagged(s, "OK", "Getquotaroot completed.");
}

void
imap_cmd_getquota(struct imap_session *s, const struct imap_command *cmd)
{
	struct store_quota_limit l;
	struct store_quota_usage u;
	const char *error;
	int r;

	r = imap_quota_get(s, &l, &u, &error);
	if (r < 0) {
		imap_tagged_fail(s, "GETQUOTA", error);
		return;
	}
	if (r == 0 || strcmp(cmd->u.getquota.root, "") != 0) {
		imap_tagged(s, "NO", "[NONEXISTENT] Quota root doesn't "
		    "exist.");
		return;
	}
	imap_quota_write(s, &l, &u);
	imap_tagged(s, "OK", "Getquota completed.");
}

void
imap_cmd_setquota(struct imap_session *s, const struct imap_command *cmd)
{
	(void)cmd;
	/* RFC 9208 §4.1.3: a user may not change the limits the
	 * administrator set (quota_rule). */
	imap_tagged(s, "NO", "[NOPERM] Quota is set by the administrator.");
}
