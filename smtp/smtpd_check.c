/*
 * smtpd_check: who may receive mail through this server (issue 2 scope;
 * the full smtpd_*_restrictions come later).
 *
 *   - A recipient in a local domain ($mydestination, addr_domain_is_local)
 *     must exist in $local_recipient_maps: "unix:passwd.byname" (also with
 *     "proxy:") asks the userdb, other elements are lookup tables (alias
 *     tables are read as aliases); empty means "accept anyone", as in
 *     Postfix.  postmaster is always accepted (RFC 5321 §4.5.1).
 *   - Any other domain is relayed only for $mynetworks clients and for
 *     local submission (public/pickup).
 *
 * Tables are opened lazily and reopened after a failure, so building a
 * missing alias database takes effect without a reload.  Lookups here may
 * block briefly on local files (passwd, Berkeley DB); they never touch the
 * network.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "map.h"
#include "smtpd.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

struct smtpd_lrm_elem {
	char		*spec;
	bool		 userdb;	/* unix:passwd.byname */
	enum map_kind	 kind;
	struct map	*map;		/* NULL until opened */
};

struct smtpd_lrm {
	struct smtpd_lrm_elem *elems;
	size_t		 count;
};

struct smtpd_lrm *
smtpd_check_lrm_new(void)
{
	struct smtpd_lrm *lrm = xcalloc(1, sizeof(*lrm));
	char **list = cfg_get_list("local_recipient_maps");
	char **aliases = cfg_get_list("alias_maps");
	size_t i, n = strv_len(list);

	lrm->elems = xcalloc(n + 1, sizeof(*lrm->elems));
	for (i = 0; i < n; i++) {
		struct smtpd_lrm_elem *e = &lrm->elems[lrm->count++];
		const char *spec = list[i];

		if (strncmp(spec, "proxy:", 6) == 0 &&
		    strcmp(spec + 6, "unix:passwd.byname") == 0)
			spec += 6;
		e->spec = xstrdup(spec);
		e->userdb = strcmp(spec, "unix:passwd.byname") == 0;
		e->kind = strv_contains_case(aliases, list[i]) ?
		    MAP_KIND_ALIASES : MAP_KIND_PLAIN;
	}
	cfg_list_free(&aliases);
	cfg_list_free(&list);
	return lrm;
}

void
smtpd_check_lrm_free(struct smtpd_lrm **lrmp)
{
	struct smtpd_lrm *lrm = *lrmp;
	size_t i;

	if (lrm == NULL)
		return;
	*lrmp = NULL;
	for (i = 0; i < lrm->count; i++) {
		map_close(&lrm->elems[i].map);
		free(lrm->elems[i].spec);
	}
	free(lrm->elems);
	free(lrm);
}

/* 1 found, 0 not found, -1 temporary error. */
static int
smtpd_check_userdb(const char *name)
{
	struct userdb_user u;
	const char *error;
	char *lower = str_lower(xstrdup(name));
	int r;

	/* Postfix folds the key to lower case; system names usually are.
	 * A passwd-file may hold mixed case: try the name as given too. */
	r = userdb_lookup(lower, &u, &error);
	if (r == 0 && strcmp(lower, name) != 0)
		r = userdb_lookup(name, &u, &error);
	if (r > 0)
		userdb_user_free(&u);
	else if (r < 0)
		log_warning("userdb lookup of %s failed: %s", name, error);
	free(lower);
	return r;
}

static int
smtpd_check_map(struct smtpd_lrm_elem *e, const char *const keys[])
{
	const char *error;
	char *value = NULL;
	size_t i;
	int r;

	if (e->map == NULL) {
		e->map = map_open(e->spec, e->kind, &error);
		if (e->map == NULL) {
			log_warning("local_recipient_maps: %s: %s", e->spec,
			    error);
			return -1;
		}
	} else if (map_refresh(e->map, &error) < 0) {
		log_warning("local_recipient_maps: %s: %s", e->spec, error);
		map_close(&e->map);
		return -1;
	}
	for (i = 0; keys[i] != NULL; i++) {
		/* Alias tables are keyed by local part only. */
		if (e->kind == MAP_KIND_ALIASES && strchr(keys[i], '@'))
			continue;
		r = map_lookup(e->map, keys[i], &value);
		free(value);
		value = NULL;
		if (r != 0) {
			if (r < 0)
				log_warning("local_recipient_maps: %s: lookup "
				    "of %s failed", e->spec, keys[i]);
			return r;
		}
	}
	return 0;
}

/*
 * A local part in the internal form Postfix looks up: a quoted string
 * ("carol+x y") loses its quotes and backslashes (RFC 5321 §4.1.2
 * Quoted-string), so it names the same user as the unquoted spelling.
 * Malloc'ed.
 */
static char *
smtpd_check_unquote(const char *local)
{
	size_t len = strlen(local), i, o = 0;
	char *out;

	if (len < 2 || local[0] != '"' || local[len - 1] != '"')
		return xstrdup(local);
	out = xmalloc(len);
	for (i = 1; i < len - 1; i++) {
		if (local[i] == '\\' && i + 1 < len - 1)
			i++;
		out[o++] = local[i];
	}
	out[o] = '\0';
	return out;
}

/* Is local@domain a known local recipient?  1 / 0 / -1 (temporary). */
static int
smtpd_check_local(struct smtpd_lrm *lrm, const char *local,
    const char *domain)
{
	char *base = addr_strip_ext(local, NULL);
	char *llocal = str_lower(xstrdup(local));
	char *lbase = str_lower(xstrdup(base));
	char *full = xasprintf("%s@%s", llocal, domain);
	char *fullbase = xasprintf("%s@%s", lbase, domain);
	const char *keys[5];
	size_t i;
	bool tempfail = false;
	int found = 0;

	str_lower(full);
	str_lower(fullbase);
	keys[0] = full;
	keys[1] = fullbase;
	keys[2] = llocal;
	keys[3] = lbase;
	keys[4] = NULL;
	if (lrm->count == 0)
		found = 1;		/* Postfix: empty = no check */
	for (i = 0; i < lrm->count && found == 0; i++) {
		int r;

		if (lrm->elems[i].userdb)
			r = smtpd_check_userdb(base);
		else
			r = smtpd_check_map(&lrm->elems[i], keys);
		if (r > 0)
			found = 1;
		else if (r < 0)
			tempfail = true;
	}
	free(base);
	free(llocal);
	free(lbase);
	free(full);
	free(fullbase);
	if (found == 0 && tempfail)
		return -1;
	return found;
}

int
smtpd_check_rcpt(struct smtpd_session *s, const char *addr, bool bare,
    char **reply_r)
{
	char *quoted, *local, *domain;
	int ret = 0;

	*reply_r = NULL;
	if (bare)
		return 0;	/* RFC 5321 §4.5.1: bare postmaster */
	addr_split(addr, &quoted, &domain);
	local = smtpd_check_unquote(quoted);
	free(quoted);
	if (addr_domain_is_local(domain)) {
		int r;

		if (str_case_eq(local, "postmaster"))
			goto done;
		r = smtpd_check_local(s->set->lrm, local, domain);
		if (r == 0) {
			long long code =
			    cfg_get_int("unknown_local_recipient_reject_code");

			*reply_r = xasprintf("%lld %lld.1.1 <%s>: Recipient "
			    "address rejected: User unknown in local "
			    "recipient table", code, code / 100, addr);
			ret = -1;
		} else if (r < 0) {
			*reply_r = xasprintf("451 4.3.0 <%s>: Temporary lookup "
			    "failure", addr);
			ret = -1;
		}
		goto done;
	}
	if (s->local || (s->naddr.family != 0 &&
	    netaddr_list_match(s->set->mynetworks, &s->naddr)))
		goto done;
	*reply_r = xasprintf("554 5.7.1 <%s>: Relay access denied", addr);
	ret = -1;
done:
	free(local);
	free(domain);
	return ret;
}

void
smtpd_check_log_reject(struct smtpd_session *s, const char *cmd,
    const char *reply, const char *rcpt)
{
	char helo[256];
	const char *h = s->helo != NULL ? s->helo : "";

	log_escape(helo, sizeof(helo), h, strlen(h));
	log_info("NOQUEUE: reject: %s from %s: %s; from=<%s> to=<%s> "
	    "proto=%s helo=<%s>", cmd, smtpd_session_client(s), reply,
	    s->txn != NULL ? s->txn->sender : "", rcpt,
	    smtpd_session_proto(s), helo);
}
