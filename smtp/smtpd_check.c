/*
 * smtpd_check: who may receive and send mail through this server (the
 * full smtpd_*_restrictions come later; what is here follows Postfix).
 *
 *   - A recipient in a local domain ($mydestination, addr_domain_is_local)
 *     must exist in $local_recipient_maps: "unix:passwd.byname" (also with
 *     "proxy:") asks the userdb, other elements are lookup tables (alias
 *     tables are read as aliases); empty means "accept anyone", as in
 *     Postfix.  postmaster is always accepted (RFC 5321 §4.5.1).
 *   - Any other domain is relayed only for $mynetworks clients, for
 *     local submission (public/pickup) and for SASL-authenticated
 *     clients when permit_sasl_authenticated comes before the
 *     destination check in smtpd_relay_restrictions or
 *     smtpd_recipient_restrictions (it does by default).
 *   - smtpd_sender_restrictions: the SASL login checks against
 *     $smtpd_sender_login_maps (reject_sender_login_mismatch and its
 *     authenticated / unauthenticated / known variants), with permit,
 *     permit_mynetworks and permit_sasl_authenticated ending the list as
 *     in Postfix.  Other elements are not implemented yet and are skipped.
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

/* The smtpd_sender_restrictions elements this file knows. */
enum smtpd_sender_rule {
	SMTPD_SR_PERMIT,
	SMTPD_SR_PERMIT_MYNETWORKS,
	SMTPD_SR_PERMIT_SASL,
	SMTPD_SR_LOGIN_MISMATCH,	/* reject_sender_login_mismatch */
	SMTPD_SR_AUTH_MISMATCH,		/* reject_authenticated_... */
	SMTPD_SR_UNAUTH_MISMATCH,	/* reject_unauthenticated_... */
	SMTPD_SR_KNOWN_MISMATCH		/* reject_known_sender_login_... */
};

/* One table of smtpd_sender_login_maps, opened at first use. */
struct smtpd_slm_elem {
	char		*spec;
	struct map	*map;
};

struct smtpd_sender_checks {
	enum smtpd_sender_rule *rules;
	size_t		 nrules;
	struct smtpd_slm_elem *slm;
	size_t		 nslm;
};

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

		if (strcmp(spec, "proxy:unix:passwd.byname") == 0)
			spec += 6;	/* "proxy:" */
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
	if (s->sasl_user != NULL && s->set->sasl_relay)
		goto done;	/* permit_sasl_authenticated */
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

/* ---- SASL: relay permission and sender login checks ---- */

/*
 * permit_sasl_authenticated in list before anything that decides on the
 * destination or rejects outright: Postfix evaluates the list in order,
 * so an element after reject_unauth_destination never gets to permit.
 */
static bool
smtpd_check_sasl_permits(const char *param)
{
	char **list = cfg_get_list(param);
	bool permit = false;
	size_t i;

	for (i = 0; list[i] != NULL; i++) {
		const char *w = list[i];

		if (strcmp(w, "permit_sasl_authenticated") == 0) {
			permit = true;
			break;
		}
		if (strcmp(w, "reject_unauth_destination") == 0 ||
		    strcmp(w, "defer_unauth_destination") == 0 ||
		    strcmp(w, "reject") == 0 || strcmp(w, "defer") == 0)
			break;
	}
	cfg_list_free(&list);
	return permit;
}

void
smtpd_check_settings_load(struct smtpd_settings *set)
{
	static const struct {
		const char		*name;
		enum smtpd_sender_rule	 rule;
	} names[] = {
		{ "permit", SMTPD_SR_PERMIT },
		{ "permit_mynetworks", SMTPD_SR_PERMIT_MYNETWORKS },
		{ "permit_sasl_authenticated", SMTPD_SR_PERMIT_SASL },
		{ "reject_sender_login_mismatch", SMTPD_SR_LOGIN_MISMATCH },
		{ "reject_authenticated_sender_login_mismatch",
		    SMTPD_SR_AUTH_MISMATCH },
		{ "reject_unauthenticated_sender_login_mismatch",
		    SMTPD_SR_UNAUTH_MISMATCH },
		{ "reject_known_sender_login_mismatch",
		    SMTPD_SR_KNOWN_MISMATCH },
	};
	struct smtpd_sender_checks *sc = xcalloc(1, sizeof(*sc));
	char **list;
	size_t i, j, n;

	set->sasl_relay = smtpd_check_sasl_permits("smtpd_relay_restrictions")
	    || smtpd_check_sasl_permits("smtpd_recipient_restrictions");

	list = cfg_get_list("smtpd_sender_restrictions");
	n = strv_len(list);
	sc->rules = xcalloc(n + 1, sizeof(*sc->rules));
	for (i = 0; i < n; i++) {
		for (j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (strcmp(list[i], names[j].name) == 0)
				break;
		if (j < sizeof(names) / sizeof(names[0]))
			sc->rules[sc->nrules++] = names[j].rule;
	}
	cfg_list_free(&list);

	list = cfg_get_list("smtpd_sender_login_maps");
	n = strv_len(list);
	sc->slm = xcalloc(n + 1, sizeof(*sc->slm));
	for (i = 0; i < n; i++)
		sc->slm[sc->nslm++].spec = xstrdup(list[i]);
	cfg_list_free(&list);
	set->sender_checks = sc;
}

void
smtpd_check_settings_free(struct smtpd_settings *set)
{
	struct smtpd_sender_checks *sc = set->sender_checks;
	size_t i;

	if (sc == NULL)
		return;
	set->sender_checks = NULL;
	for (i = 0; i < sc->nslm; i++) {
		map_close(&sc->slm[i].map);
		free(sc->slm[i].spec);
	}
	free(sc->slm);
	free(sc->rules);
	free(sc);
}

/*
 * Look key up in smtpd_sender_login_maps: 1 with *owners_r (malloc'ed),
 * 0 not found, -1 a table failed.
 */
static int
smtpd_check_slm_lookup(struct smtpd_sender_checks *sc, const char *key,
    char **owners_r)
{
	const char *error;
	size_t i;
	int r;

	for (i = 0; i < sc->nslm; i++) {
		struct smtpd_slm_elem *e = &sc->slm[i];

		if (e->map == NULL) {
			e->map = map_open(e->spec, MAP_KIND_PLAIN, &error);
			if (e->map == NULL) {
				log_warning("smtpd_sender_login_maps: %s: %s",
				    e->spec, error);
				return -1;
			}
		} else if (map_refresh(e->map, &error) < 0) {
			log_warning("smtpd_sender_login_maps: %s: %s",
			    e->spec, error);
			map_close(&e->map);
			return -1;
		}
		r = map_lookup(e->map, key, owners_r);
		if (r < 0)
			log_warning("smtpd_sender_login_maps: %s: lookup of "
			    "%s failed", e->spec, key);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * The owners of a sender address, in Postfix's lookup order for
 * address tables: user+ext@domain, user@domain, then for our own
 * domains user+ext and user, then @domain.  1 / 0 / -1 as above.
 */
static int
smtpd_check_owners(struct smtpd_sender_checks *sc, const char *sender,
    char **owners_r)
{
	char *quoted, *domain, *local, *base, *keys[5];
	size_t i, n = 0;
	int r = 0;

	*owners_r = NULL;
	addr_split(sender, &quoted, &domain);
	local = smtpd_check_unquote(quoted);
	base = addr_strip_ext(local, NULL);
	str_lower(local);
	str_lower(base);
	str_lower(domain);
	keys[n++] = xasprintf("%s@%s", local, domain);
	if (strcmp(base, local) != 0)
		keys[n++] = xasprintf("%s@%s", base, domain);
	if (domain[0] == '\0' || addr_domain_is_local(domain)) {
		keys[n++] = xstrdup(local);
		if (strcmp(base, local) != 0)
			keys[n++] = xstrdup(base);
	}
	if (domain[0] != '\0')
		keys[n++] = xasprintf("@%s", domain);
	for (i = 0; i < n && r == 0; i++)
		r = smtpd_check_slm_lookup(sc, keys[i], owners_r);
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(quoted);
	free(domain);
	free(local);
	free(base);
	return r;
}

/* Is user one of the owners (comma or space separated, any case)? */
static bool
smtpd_check_owner_match(const char *owners, const char *user)
{
	char **names = strv_split(owners, ", \t");
	bool found = strv_contains_case(names, user);

	strv_free(&names);
	return found;
}

/*
 * One login check.  auth: the client logged in and the address must be
 * its own (allow_unknown: unless nobody owns it); unauth: the client did
 * not log in and the address must not belong to anyone.
 */
static int
smtpd_check_login(struct smtpd_session *s, const char *sender, bool auth,
    bool allow_unknown, bool unauth, char **reply_r)
{
	struct smtpd_sender_checks *sc = s->set->sender_checks;
	char *owners = NULL;
	int r;

	if (sc->nslm == 0 || (s->sasl_user != NULL ? !auth : !unauth))
		return 0;
	r = smtpd_check_owners(sc, sender, &owners);
	if (r < 0) {
		*reply_r = xasprintf("451 4.3.0 <%s>: Temporary lookup "
		    "failure", sender);
		return -1;
	}
	if (s->sasl_user == NULL) {
		free(owners);
		if (r == 0)
			return 0;
		*reply_r = xasprintf("553 5.7.1 <%s>: Sender address "
		    "rejected: not logged in", sender);
		return -1;
	}
	if (r == 0 && allow_unknown)
		return 0;
	if (r > 0 && smtpd_check_owner_match(owners, s->sasl_user)) {
		free(owners);
		return 0;
	}
	free(owners);
	*reply_r = xasprintf("553 5.7.1 <%s>: Sender address rejected: not "
	    "owned by user %s", sender, s->sasl_user);
	return -1;
}

int
smtpd_check_sender(struct smtpd_session *s, const char *sender,
    char **reply_r)
{
	struct smtpd_sender_checks *sc = s->set->sender_checks;
	size_t i;
	int r = 0;

	*reply_r = NULL;
	/* Local submission does not pass Postfix's smtpd either; the
	 * null sender has no owner (Postfix skips it too). */
	if (s->local || sc == NULL || sender[0] == '\0')
		return 0;
	for (i = 0; i < sc->nrules && r == 0; i++) {
		switch (sc->rules[i]) {
		case SMTPD_SR_PERMIT:
			return 0;
		case SMTPD_SR_PERMIT_MYNETWORKS:
			if (s->naddr.family != 0 &&
			    netaddr_list_match(s->set->mynetworks, &s->naddr))
				return 0;
			break;
		case SMTPD_SR_PERMIT_SASL:
			if (s->sasl_user != NULL)
				return 0;
			break;
		case SMTPD_SR_LOGIN_MISMATCH:
			r = smtpd_check_login(s, sender, true, false, true,
			    reply_r);
			break;
		case SMTPD_SR_AUTH_MISMATCH:
			r = smtpd_check_login(s, sender, true, false, false,
			    reply_r);
			break;
		case SMTPD_SR_UNAUTH_MISMATCH:
			r = smtpd_check_login(s, sender, false, false, true,
			    reply_r);
			break;
		case SMTPD_SR_KNOWN_MISMATCH:
			r = smtpd_check_login(s, sender, true, true, true,
			    reply_r);
			break;
		}
	}
	return r;
}
