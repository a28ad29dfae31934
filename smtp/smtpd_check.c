/*
 * smtpd_check: who may send mail through this server and to whom, with
 * Postfix's smtpd_*_restrictions semantics (postconf(5), access(5)).
 *
 * Lists.  smtpd_client_restrictions, smtpd_helo_restrictions,
 * smtpd_sender_restrictions, smtpd_relay_restrictions,
 * smtpd_recipient_restrictions, smtpd_data_restrictions and
 * smtpd_end_of_data_restrictions are compiled at settings load.  Each list
 * is evaluated in order; the first element that permits, rejects or
 * defers decides for that list, DUNNO goes on.  With smtpd_delay_reject =
 * yes (the default) the client, HELO and sender lists are evaluated at
 * each RCPT TO, as in Postfix; with no, at connect, HELO and MAIL, and a
 * client refused at connect gets the refusal instead of the greeting and
 * "503 5.7.0 Error: access denied" for every command but QUIT.  At RCPT
 * the relay list, then the recipient list must both pass; then, unless
 * smtpd_reject_unlisted_recipient = no, the recipient must exist
 * (local_recipient_maps, virtual alias and virtual mailbox tables,
 * relay_recipient_maps).  A configuration in which neither the relay nor
 * the recipient list can refuse anything would be an open relay: every
 * recipient then gets "451 4.3.5 Server configuration error".
 *
 * Replies and log lines use Postfix's wording and its reply code
 * parameters (reject_code, relay_domains_reject_code, ...), so log tools
 * and habits keep working: "NOQUEUE: reject: RCPT from name[addr]: 554
 * 5.7.1 <x@y>: Relay access denied; from=<a@b> to=<x@y> proto=ESMTP
 * helo=<h>".
 *
 * Lookups that leave the machine (DNS for block lists, unknown domains and
 * the client's name; policy servers) never run on the event loop: the
 * first time an evaluation needs one, it is started in a worker thread,
 * the session parks in SMTPD_STATE_CHECK, and when the answer is in it is
 * kept in a small per-session cache and the command is run again from the
 * start.  Everything else an evaluation does is deterministic and free of
 * side effects until it ends (log lines are queued, not written), so
 * running it again costs only table lookups.  DNS answers stay cached for
 * the session (the client's block list result serves every RCPT); policy
 * answers for one command.
 *
 * Local submission (public/pickup) does not pass the restrictions, as
 * Postfix's pickup does not pass smtpd; local recipients must still exist.
 *
 * Table actions that act on the message (DISCARD, HOLD, PREPEND) are
 * kept in the transaction when the command that triggered them is
 * accepted; smtpd_data.c writes the PREPEND headers above our Received:
 * header, smtpd_check_eod() carries out DISCARD and HOLD.
 *
 * Restriction classes (smtpd_restriction_classes): a name listed there is
 * a parameter of the configuration file holding a list; the name may be
 * used as a restriction in any list, in another class or as a table's
 * answer, and is looked up when evaluated, so classes may name each
 * other in any order (recursion is bounded as for table answers).
 *
 * Server checks (check_{client,helo,sender,recipient}_{mx,ns}_access,
 * check_{client,reverse_client,helo,sender,recipient}_a_access): the MX
 * hosts (a domain without MX is its own), the DNS servers (a name
 * without NS records: its parent domains, nearest first) or the name
 * itself are found in DNS, then each host name is looked up as
 * check_client_access looks up a client name (not for _a_access), and
 * each of its addresses as a client address.  An OK answer is refused
 * for safety (logged, then DUNNO), as in Postfix: a spammer chooses his
 * MX and NS records.  DNS trouble is logged and the check says DUNNO.
 *
 * reject_unverified_recipient / _sender: Postern verifies the addresses
 * it delivers itself, from its tables (virtual aliases, local recipients
 * and aliases, virtual mailboxes), without probes; an address that goes
 * to another host is not verified (no probe through the outbound path)
 * and passes.
 *
 * Not implemented: client certificates (permit_tls_clientcerts never
 * permits), the FILTER, REDIRECT and BCC table actions (logged, then
 * ignored), and address verification probes for remote addresses.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "cfg.h"
#include "cfg_params.h"
#include "dns.h"
#include "log.h"
#include "map.h"
#include "rewrite.h"
#include "smtpd.h"
#include "str.h"
#include "userdb.h"
#include "workpool.h"
#include "xmalloc.h"

/* What one restriction says (Postfix's SMTPD_CHECK_*). */
#define SC_DUNNO	0
#define SC_OK		1
#define SC_REJECT	2
#define SC_PENDING	3	/* a lookup was started: run again later */

/* Nesting of restriction lists inside table answers (Postfix: 100). */
#define SMTPD_CHECK_MAX_RECURSION	100
/* Lookup answers kept per session (the excess goes after a command). */
#define SMTPD_CHECK_MAX_CACHE		64
/* Lookups one command may start: a bound on what table answers that
 * are lists of block lists can make us do. */
#define SMTPD_CHECK_MAX_LOOKUPS		100
/* Log lines one evaluation may queue. */
#define SMTPD_CHECK_MAX_LOGS		64
/* PREPEND headers one message may get, and the bytes of one. */
#define SMTPD_CHECK_MAX_PREPEND		16
#define SMTPD_CHECK_MAX_PREPEND_LEN	998
/* Bytes of a reply line we build, without CRLF (RFC 5321 §4.5.3.1.5). */
#define SMTPD_CHECK_MAX_REPLY		510
/* Worker threads for DNS lookups and for policy server queries. */
#define SMTPD_CHECK_DNS_THREADS		16
#define SMTPD_CHECK_POLICY_THREADS	8

/* Reply classes ("<x>: Sender address rejected: ..."). */
#define CLASS_CLIENT	"Client host"
#define CLASS_REV_CLIENT "Unverified Client host"
#define CLASS_HELO	"Helo command"
#define CLASS_DATA	"Data command"
#define CLASS_EOD	"End-of-data"

enum smtpd_rtype {
	R_PERMIT, R_REJECT, R_DEFER, R_DEFER_IF_PERMIT, R_DEFER_IF_REJECT,
	R_WARN_IF_REJECT, R_PERMIT_MYNETWORKS, R_PERMIT_SASL,
	R_PERMIT_TLS_CERTS, R_REJECT_UNAUTH_DEST, R_DEFER_UNAUTH_DEST,
	R_PERMIT_AUTH_DEST, R_REJECT_UNAUTH_PIPELINING, R_REJECT_PLAINTEXT,
	R_UNKNOWN_SENDER_DOMAIN, R_UNKNOWN_RCPT_DOMAIN, R_NON_FQDN_SENDER,
	R_NON_FQDN_RCPT, R_NON_FQDN_HELO, R_INVALID_HELO, R_UNKNOWN_HELO,
	R_UNKNOWN_CLIENT, R_UNKNOWN_REVERSE_CLIENT, R_UNLISTED_RCPT,
	R_UNLISTED_SENDER, R_MULTI_RCPT_BOUNCE, R_RBL_CLIENT, R_RHSBL_CLIENT,
	R_RHSBL_REVERSE_CLIENT, R_RHSBL_HELO, R_RHSBL_SENDER, R_RHSBL_RCPT,
	R_CHECK_CLIENT, R_CHECK_REVERSE_CLIENT, R_CHECK_HELO, R_CHECK_SENDER,
	R_CHECK_RCPT, R_POLICY, R_LOGIN_MISMATCH, R_AUTH_LOGIN_MISMATCH,
	R_UNAUTH_LOGIN_MISMATCH, R_KNOWN_LOGIN_MISMATCH, R_CLASS,
	R_PERMIT_MX_BACKUP, R_UNVERIFIED_RCPT, R_UNVERIFIED_SENDER,
	R_CLIENT_MX, R_CLIENT_NS, R_CLIENT_A, R_REV_CLIENT_A, R_HELO_MX,
	R_HELO_NS, R_HELO_A, R_SENDER_MX, R_SENDER_NS, R_SENDER_A, R_RCPT_MX,
	R_RCPT_NS, R_RCPT_A, R_BAD
};

/* The element takes the next word as its argument. */
#define RF_MAP		0x1	/* type:name */
#define RF_ZONE		0x2	/* DNS zone[=pattern] */
#define RF_POLICY	0x4	/* inet:host:port / unix:path */
/* The element can refuse relaying (Postfix's open relay safety net). */
#define RF_RELAY_SAFE	0x8

static const struct {
	const char		*name;
	enum smtpd_rtype	 type;
	unsigned		 flags;
} smtpd_rnames[] = {
	{ "permit", R_PERMIT, 0 },
	{ "reject", R_REJECT, RF_RELAY_SAFE },
	{ "defer", R_DEFER, RF_RELAY_SAFE },
	{ "defer_if_permit", R_DEFER_IF_PERMIT, RF_RELAY_SAFE },
	{ "defer_if_reject", R_DEFER_IF_REJECT, 0 },
	{ "warn_if_reject", R_WARN_IF_REJECT, 0 },
	{ "permit_mynetworks", R_PERMIT_MYNETWORKS, 0 },
	{ "permit_sasl_authenticated", R_PERMIT_SASL, 0 },
	{ "permit_tls_clientcerts", R_PERMIT_TLS_CERTS, 0 },
	{ "permit_tls_all_clientcerts", R_PERMIT_TLS_CERTS, 0 },
	{ "reject_unauth_destination", R_REJECT_UNAUTH_DEST, RF_RELAY_SAFE },
	{ "defer_unauth_destination", R_DEFER_UNAUTH_DEST, RF_RELAY_SAFE },
	{ "check_relay_domains", R_REJECT_UNAUTH_DEST, RF_RELAY_SAFE },
	{ "permit_auth_destination", R_PERMIT_AUTH_DEST, 0 },
	{ "reject_unauth_pipelining", R_REJECT_UNAUTH_PIPELINING, 0 },
	{ "reject_plaintext_session", R_REJECT_PLAINTEXT, 0 },
	{ "reject_unknown_sender_domain", R_UNKNOWN_SENDER_DOMAIN, 0 },
	{ "reject_unknown_address", R_UNKNOWN_SENDER_DOMAIN, 0 },
	{ "reject_unknown_recipient_domain", R_UNKNOWN_RCPT_DOMAIN, 0 },
	{ "reject_non_fqdn_sender", R_NON_FQDN_SENDER, 0 },
	{ "reject_non_fqdn_recipient", R_NON_FQDN_RCPT, 0 },
	{ "reject_non_fqdn_helo_hostname", R_NON_FQDN_HELO, 0 },
	{ "reject_non_fqdn_hostname", R_NON_FQDN_HELO, 0 },
	{ "reject_invalid_helo_hostname", R_INVALID_HELO, 0 },
	{ "reject_invalid_hostname", R_INVALID_HELO, 0 },
	{ "reject_unknown_helo_hostname", R_UNKNOWN_HELO, 0 },
	{ "reject_unknown_hostname", R_UNKNOWN_HELO, 0 },
	{ "reject_unknown_client_hostname", R_UNKNOWN_CLIENT, 0 },
	{ "reject_unknown_client", R_UNKNOWN_CLIENT, 0 },
	{ "reject_unknown_reverse_client_hostname", R_UNKNOWN_REVERSE_CLIENT,
	    0 },
	{ "reject_unlisted_recipient", R_UNLISTED_RCPT, 0 },
	{ "check_recipient_maps", R_UNLISTED_RCPT, 0 },
	{ "reject_unlisted_sender", R_UNLISTED_SENDER, 0 },
	{ "reject_multi_recipient_bounce", R_MULTI_RCPT_BOUNCE, 0 },
	{ "reject_rbl_client", R_RBL_CLIENT, RF_ZONE },
	{ "reject_rbl", R_RBL_CLIENT, RF_ZONE },
	{ "reject_rhsbl_client", R_RHSBL_CLIENT, RF_ZONE },
	{ "reject_rhsbl_reverse_client", R_RHSBL_REVERSE_CLIENT, RF_ZONE },
	{ "reject_rhsbl_helo", R_RHSBL_HELO, RF_ZONE },
	{ "reject_rhsbl_sender", R_RHSBL_SENDER, RF_ZONE },
	{ "reject_rhsbl_recipient", R_RHSBL_RCPT, RF_ZONE },
	{ "check_client_access", R_CHECK_CLIENT, RF_MAP },
	{ "check_reverse_client_hostname_access", R_CHECK_REVERSE_CLIENT,
	    RF_MAP },
	{ "check_helo_access", R_CHECK_HELO, RF_MAP },
	{ "check_sender_access", R_CHECK_SENDER, RF_MAP },
	{ "check_recipient_access", R_CHECK_RCPT, RF_MAP },
	{ "check_policy_service", R_POLICY, RF_POLICY },
	{ "reject_sender_login_mismatch", R_LOGIN_MISMATCH, 0 },
	{ "reject_authenticated_sender_login_mismatch", R_AUTH_LOGIN_MISMATCH,
	    0 },
	{ "reject_unauthenticated_sender_login_mismatch",
	    R_UNAUTH_LOGIN_MISMATCH, 0 },
	{ "reject_known_sender_login_mismatch", R_KNOWN_LOGIN_MISMATCH, 0 },
	{ "permit_mx_backup", R_PERMIT_MX_BACKUP, 0 },
	{ "reject_unverified_recipient", R_UNVERIFIED_RCPT, 0 },
	{ "reject_unverified_sender", R_UNVERIFIED_SENDER, 0 },
	{ "check_client_mx_access", R_CLIENT_MX, RF_MAP },
	{ "check_client_ns_access", R_CLIENT_NS, RF_MAP },
	{ "check_client_a_access", R_CLIENT_A, RF_MAP },
	{ "check_reverse_client_a_access", R_REV_CLIENT_A, RF_MAP },
	{ "check_helo_mx_access", R_HELO_MX, RF_MAP },
	{ "check_helo_ns_access", R_HELO_NS, RF_MAP },
	{ "check_helo_a_access", R_HELO_A, RF_MAP },
	{ "check_sender_mx_access", R_SENDER_MX, RF_MAP },
	{ "check_sender_ns_access", R_SENDER_NS, RF_MAP },
	{ "check_sender_a_access", R_SENDER_A, RF_MAP },
	{ "check_recipient_mx_access", R_RCPT_MX, RF_MAP },
	{ "check_recipient_ns_access", R_RCPT_NS, RF_MAP },
	{ "check_recipient_a_access", R_RCPT_A, RF_MAP },
};

/* Server checks: what DNS is asked about the checked name. */
#define SERVERS_MX	'M'
#define SERVERS_NS	'N'
#define SERVERS_A	'A'
/* Host names and addresses one server check looks up, at most. */
#define SMTPD_CHECK_MAX_SERVERS	256
/* Addresses of one server host we look up, at most. */
#define SMTPD_CHECK_MAX_SERVER_ADDRS	16
/* Server hosts whose addresses are looked up: each lookup may take a
 * resolver timeout, and the session waits for all of them. */
#define SMTPD_CHECK_MAX_SERVER_HOSTS	32

struct smtpd_restriction {
	enum smtpd_rtype type;
	char		*name;		/* as written, for warnings */
	char		*arg;		/* table, zone or endpoint */
	struct smtpd_access_map *map;	/* borrowed from the restrictions */
	struct smtpd_policy_server *policy; /* borrowed */
};

struct smtpd_rlist {
	struct smtpd_restriction *r;
	size_t		 n;
};

/* A restriction class: a name from smtpd_restriction_classes. */
struct smtpd_rclass {
	char		*name;
	struct smtpd_rlist list;
};

/* One table of smtpd_sender_login_maps, opened at first use. */
struct smtpd_slm_elem {
	char		*spec;
	struct map	*map;
};

struct smtpd_restrictions {
	struct smtpd_rlist client, helo, sender, relay, recipient, data, eod;
	struct smtpd_rclass *classes;	/* smtpd_restriction_classes */
	size_t		 nclasses;
	struct netaddr	*mx_backup_nets; /* permit_mx_backup_networks, or
					 * NULL: any domain */
	struct smtpd_access_map **maps;	/* every table named, once */
	size_t		 nmaps;
	struct smtpd_policy_server **policies;
	size_t		 npolicies;
	struct smtpd_slm_elem *slm;
	size_t		 nslm;
	struct smtpd_access_map *rbl_reply_maps; /* or NULL */
	struct smtpd_access_map **mynet_maps;	/* type:table in mynetworks */
	size_t		 nmynet_maps;
	char		*rbl_reply;	/* $default_rbl_reply, raw */
	char		*null_key;	/* $smtpd_null_access_lookup_key */
	bool		 relay_safe;
	bool		 peername_lookup;
	bool		 reject_unlisted_rcpt;
	bool		 reject_unlisted_sender;
	bool		 sasl_enable;
	struct smtpd_route_opts route;
	int		 reject_code, defer_code, relay_code;
	int		 map_reject_code, map_defer_code;
	int		 unk_addr_code, unk_client_code, unk_name_code;
	int		 bad_name_code, non_fqdn_code, rbl_code;
	int		 mul_rcpt_code, plaintext_code;
	int		 local_rcpt_code, virt_alias_code, virt_mailbox_code;
	int		 relay_rcpt_code;
	int		 unv_rcpt_code, unv_sender_code;
	int		 unv_rcpt_defer, unv_sender_defer;
	char		*unv_rcpt_reason, *unv_sender_reason;
};

/* ---- per-session state: lookups under way and their answers ---- */

enum smtpd_async {
	ASYNC_RBL,		/* key: query name */
	ASYNC_MAILHOST,		/* key: domain; MX, else A/AAAA */
	ASYNC_HOST,		/* key: host name; A/AAAA, else MX */
	ASYNC_POLICY,		/* key: endpoint LF request */
	ASYNC_PTR,		/* the client's name at connect */
	ASYNC_SERVERS		/* key: "MX name", "NS name", "A name" */
};

struct smtpd_check_entry {
	enum smtpd_async kind;
	char		*key;
	bool		 per_command;	/* dropped when the command ends */
	int		 status;	/* enum dns_status; policy: 0 / -1 */
	char		**addrs;	/* RBL: the A records; servers: "H pref
					 * host" and "I address" lines */
	char		*text;		/* RBL: TXT; policy: the action */
};

enum smtpd_resume {
	RESUME_CMD = 0,		/* run the saved command line again */
	RESUME_CONNECT,		/* go on with the connection */
	RESUME_EOD		/* the end-of-data checks again */
};

/* A deferral kept for later (Postfix's defer_if_permit/_reject). */
struct smtpd_defer {
	bool		 active;
	char		*reply;		/* "450 4.7.1 text" */
};

/* Client name facts (Postfix's name_status / reverse_name_status). */
#define PEER_OK		0
#define PEER_TEMP	4
#define PEER_PERM	5

struct smtpd_check_state {
	struct smtpd_check_entry *cache;
	size_t		 ncache;
	struct smtpd_check_job *job;	/* under way, or NULL */
	enum smtpd_resume resume;
	char		*line;		/* RESUME_CMD */
	size_t		 line_len;
	unsigned	 lookups;	/* started by the current command */
	bool		 name_done;	/* the client's name is known */
	int		 name_status;
	char		*reverse_name;
	int		 reverse_status;
	char		*denied;	/* refused at connect: the reply */
	struct smtpd_defer dip_prev;	/* defer_if_permit of earlier
					 * stages (smtpd_delay_reject = no) */
	char		*server_addr;	/* our end, for policy servers */
	unsigned	 server_port;
	unsigned	 txn_seq;	/* for the policy "instance" */
	/* MAIL-stage actions (smtpd_delay_reject = no) for the new txn */
	bool		 mail_discard, mail_hold;
	char		**mail_prepend;
};

struct smtpd_check_job {
	struct smtpd_session *s;	/* NULL once the session is gone */
	struct smtpd_settings *set;	/* a reference: the policy server */
	enum smtpd_async kind;
	char		*key;
	struct smtpd_policy_server *policy;
	const char	*request;	/* inside key */
	struct sockaddr_storage ss;	/* ASYNC_PTR */
	/* results */
	int		 status;
	char		**addrs;
	char		*text;
	char		 why[160];
	char		*name;		/* ASYNC_PTR */
	char		*reverse;
	int		 name_status;
	int		 reverse_status;
};

static struct workpool *smtpd_check_dns_pool;
static struct workpool *smtpd_check_policy_pool;

/* ---- one evaluation ---- */

struct smtpd_eval {
	struct smtpd_session *s;
	const struct smtpd_restrictions *rs;
	const char	*cmd;		/* "RCPT", "CONNECT", ... */
	const char	*qid;		/* "NOQUEUE" or the queue ID */
	const char	*helo;		/* NULL: none */
	const char	*sender;	/* NULL: none; "" the null sender */
	const char	*recipient;	/* NULL: none; qualified */
	const char	*rcpt_raw;	/* as the client gave it */
	const char	*sender_raw;
	char		 namaddr[300];	/* "name[addr]" of the client */
	int		 recursion;
	int		 warn_if_reject;
	struct smtpd_defer dip, dir;
	bool		 discard;
	bool		 hold;
	bool		 rcptmap_checked;
	bool		 sender_rcptmap_checked;
	bool		 no_actions;	/* HOLD/DISCARD make no sense here */
	bool		 eod;		/* too late for PREPEND */
	char		**prepend;	/* PREPEND headers */
	char		*reply;		/* the REJECT reply */
	char		**logs;		/* lines to log when it is final */
	size_t		 nlogs;
	char		**rcpt_addrs;	/* virtual alias expansion */
	int		 rcpt_rewrite;	/* rewrite_recipient(): -2 not yet */
	char		*rcpt_why;
	struct smtpd_access_route rroute, sroute;
	bool		 rroute_done, sroute_done;
};

static int	smtpd_eval_reject_line(struct smtpd_eval *, const char *);
static int	smtpd_check_list(struct smtpd_eval *,
	    const struct smtpd_rlist *, const char *, const char *,
	    enum smtpd_rtype);
static void	smtpd_check_rlist_free(struct smtpd_rlist *);

/* ---- local_recipient_maps (kept from the first smtpd) ---- */

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
smtpd_check_lrm_map(struct smtpd_lrm_elem *e, const char *const keys[])
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
			r = smtpd_check_lrm_map(&lrm->elems[i], keys);
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

/* ---- settings ---- */

static struct smtpd_access_map *
smtpd_check_rs_map(struct smtpd_restrictions *rs, const char *spec)
{
	size_t i;

	for (i = 0; i < rs->nmaps; i++)
		if (strcmp(smtpd_access_map_spec(rs->maps[i]), spec) == 0)
			return rs->maps[i];
	rs->maps = xreallocarray(rs->maps, rs->nmaps + 1, sizeof(*rs->maps));
	rs->maps[rs->nmaps] = smtpd_access_map_new(spec);
	return rs->maps[rs->nmaps++];
}

static struct smtpd_policy_server *
smtpd_check_rs_policy(struct smtpd_restrictions *rs, const char *spec,
    const char *param)
{
	struct smtpd_policy_server *ps;
	const char *error = "";
	size_t i;

	for (i = 0; i < rs->npolicies; i++)
		if (strcmp(smtpd_policy_server_spec(rs->policies[i]), spec)
		    == 0)
			return rs->policies[i];
	ps = smtpd_policy_server_new(spec, &error);
	if (ps == NULL) {
		log_warning("%s: check_policy_service %s: %s", param, spec,
		    error);
		return NULL;
	}
	rs->policies = xreallocarray(rs->policies, rs->npolicies + 1,
	    sizeof(*rs->policies));
	rs->policies[rs->npolicies++] = ps;
	return ps;
}

static const struct smtpd_rclass *
smtpd_check_class_find(const struct smtpd_restrictions *rs, const char *name)
{
	size_t i;

	for (i = 0; rs != NULL && i < rs->nclasses; i++)
		if (strcmp(rs->classes[i].name, name) == 0)
			return &rs->classes[i];
	return NULL;
}

/*
 * Compile the words of a list.  rs is NULL for a list from a table
 * answer: tables and policy servers are not allowed there (Postfix
 * refuses them too).  crs has the restriction class names.  def_acl is
 * the check a bare "type:name" element stands for (R_BAD: none).
 */
static void
smtpd_check_compile(struct smtpd_restrictions *rs,
    const struct smtpd_restrictions *crs, char *const *words,
    const char *param, enum smtpd_rtype def_acl, struct smtpd_rlist *out,
    bool *relay_safe)
{
	size_t nwords = strv_len(words), i, j;

	out->r = xcalloc(nwords + 1, sizeof(*out->r));
	out->n = 0;
	for (i = 0; i < nwords; i++) {
		struct smtpd_restriction *r = &out->r[out->n++];
		const char *w = words[i];
		unsigned flags = 0;

		r->name = xstrdup(w);
		r->type = R_BAD;
		for (j = 0; j < sizeof(smtpd_rnames) / sizeof(smtpd_rnames[0]);
		    j++) {
			if (str_case_eq(w, smtpd_rnames[j].name)) {
				r->type = smtpd_rnames[j].type;
				flags = smtpd_rnames[j].flags;
				break;
			}
		}
		if (r->type == R_BAD && smtpd_check_class_find(crs, w) !=
		    NULL) {
			r->type = R_CLASS;
			r->arg = xstrdup(w);
			continue;
		}
		if (r->type == R_BAD && strchr(w, ':') != NULL &&
		    def_acl != R_BAD) {
			/* "check_client_access a:b, c:d": c:d uses the
			 * same check (Postfix's default table kind). */
			r->type = def_acl;
			flags = RF_MAP;
			r->arg = xstrdup(w);
		} else if (flags & (RF_MAP | RF_ZONE | RF_POLICY)) {
			if (i + 1 >= nwords) {
				log_warning("%s: %s needs an argument", param,
				    w);
				r->type = R_BAD;
				continue;
			}
			r->arg = xstrdup(words[++i]);
		}
		if (relay_safe != NULL && (flags & RF_RELAY_SAFE))
			*relay_safe = true;
		if (r->type == R_BAD) {
			if (rs != NULL)
				log_warning("%s: unknown restriction \"%s\"",
				    param, w);
			continue;
		}
		if ((flags & RF_MAP) && strchr(r->arg, ':') == NULL) {
			log_warning("%s: %s %s: need type:name", param, w,
			    r->arg);
			r->type = R_BAD;
		} else if ((flags & (RF_MAP | RF_POLICY)) && rs == NULL) {
			r->type = R_BAD;	/* a table inside a table */
		} else if (flags & RF_MAP) {
			r->map = smtpd_check_rs_map(rs, r->arg);
		} else if (flags & RF_POLICY) {
			r->policy = smtpd_check_rs_policy(rs, r->arg, param);
			if (r->policy == NULL)
				r->type = R_BAD;
		} else if (flags & RF_ZONE) {
			const char *eq = strchr(r->arg, '=');

			if (eq != NULL && !smtpd_rbl_pattern_valid(eq + 1)) {
				if (rs != NULL)
					log_warning("%s: %s %s: bad reply "
					    "pattern", param, w, r->arg);
				r->type = R_BAD;
			}
		}
	}
}

static void
smtpd_check_load_list(struct smtpd_restrictions *rs, const char *param,
    enum smtpd_rtype def_acl, struct smtpd_rlist *out, bool *relay_safe)
{
	char **words;

	if (!cfg_known(param)) {
		out->r = xcalloc(1, sizeof(*out->r));
		out->n = 0;
		return;
	}
	words = cfg_get_list(param);
	smtpd_check_compile(rs, rs, words, param, def_acl, out, relay_safe);
	cfg_list_free(&words);
}

/*
 * smtpd_restriction_classes: the names first, so that lists and classes
 * may use any class whatever the order.  A class the file does not
 * define is a list that refuses with 451 4.3.5: a missing class must not
 * let mail through that it was meant to refuse.
 */
static void
smtpd_check_load_classes(struct smtpd_restrictions *rs)
{
	char **names = cfg_get_list("smtpd_restriction_classes");
	char **words;
	size_t n = strv_len(names), i, j;

	rs->classes = xcalloc(n + 1, sizeof(*rs->classes));
	for (i = 0; i < n; i++) {
		bool builtin = false;

		for (j = 0; j < sizeof(smtpd_rnames) / sizeof(smtpd_rnames[0]);
		    j++)
			if (str_case_eq(names[i], smtpd_rnames[j].name))
				builtin = true;
		if (builtin || strchr(names[i], ':') != NULL ||
		    smtpd_check_class_find(rs, names[i]) != NULL) {
			log_warning("smtpd_restriction_classes: \"%s\" is "
			    "not usable as a class name", names[i]);
			continue;
		}
		rs->classes[rs->nclasses++].name = xstrdup(names[i]);
	}
	cfg_list_free(&names);
	for (i = 0; i < rs->nclasses; i++) {
		struct smtpd_rclass *c = &rs->classes[i];
		const char *value = cfg_get_user(c->name);

		if (value == NULL) {
			log_warning("restriction class %s is not defined in "
			    "the configuration: it answers 451 4.3.5",
			    c->name);
			words = strv_split("_undefined_class_", " ");
		} else
			words = cfg_list_split(value);
		smtpd_check_compile(rs, rs, words, c->name, R_BAD, &c->list,
		    NULL);
		strv_free(&words);
	}
}

static void
smtpd_check_rlist_free(struct smtpd_rlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->r[i].name);
		free(l->r[i].arg);
	}
	free(l->r);
	l->r = NULL;
	l->n = 0;
}

static int
smtpd_check_code(const char *param)
{
	return (int)cfg_get_int(param);
}

void
smtpd_check_settings_load(struct smtpd_settings *set)
{
	struct smtpd_restrictions *rs = xcalloc(1, sizeof(*rs));
	const char *error = NULL;
	char **list;
	size_t i, n;

	/* DNS servers and address rewriting follow the configuration
	 * (start and reload); rewrite tables open at their first use. */
	if (dns_init(&error) < 0)
		log_warning("DNS: %s", error != NULL ? error : "unusable");
	rewrite_reset();

	smtpd_check_load_classes(rs);
	smtpd_check_load_list(rs, "smtpd_client_restrictions",
	    R_CHECK_CLIENT, &rs->client, NULL);
	smtpd_check_load_list(rs, "smtpd_helo_restrictions", R_CHECK_HELO,
	    &rs->helo, NULL);
	smtpd_check_load_list(rs, "smtpd_sender_restrictions",
	    R_CHECK_SENDER, &rs->sender, NULL);
	smtpd_check_load_list(rs, "smtpd_relay_restrictions", R_CHECK_RCPT,
	    &rs->relay, &rs->relay_safe);
	smtpd_check_load_list(rs, "smtpd_recipient_restrictions",
	    R_CHECK_RCPT, &rs->recipient, &rs->relay_safe);
	smtpd_check_load_list(rs, "smtpd_data_restrictions", R_BAD,
	    &rs->data, NULL);
	smtpd_check_load_list(rs, "smtpd_end_of_data_restrictions", R_BAD,
	    &rs->eod, NULL);
	if (!rs->relay_safe)
		log_warning("neither smtpd_relay_restrictions nor "
		    "smtpd_recipient_restrictions can refuse relaying (name "
		    "reject_unauth_destination, defer_unauth_destination, "
		    "reject, defer or defer_if_permit): every recipient gets "
		    "451 4.3.5 until that is fixed");

	list = cfg_get_list("smtpd_sender_login_maps");
	n = strv_len(list);
	rs->slm = xcalloc(n + 1, sizeof(*rs->slm));
	for (i = 0; i < n; i++)
		rs->slm[rs->nslm++].spec = xstrdup(list[i]);
	cfg_list_free(&list);

	/* mynetworks may name tables of client addresses (Postfix allows
	 * it; the tutorials use hash:/etc/postfix/access): netaddr.c leaves
	 * them to us. */
	if (cfg_is_set("mynetworks")) {
		list = cfg_get_list("mynetworks");
		for (i = 0; list[i] != NULL; i++) {
			const char *w = list[i];
			size_t k = strspn(w, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ");

			if (k == 0 || w[k] != ':')
				continue;
			rs->mynet_maps = xreallocarray(rs->mynet_maps,
			    rs->nmynet_maps + 1, sizeof(*rs->mynet_maps));
			rs->mynet_maps[rs->nmynet_maps++] =
			    smtpd_access_map_new(w);
		}
		cfg_list_free(&list);
	}
	rs->rbl_reply = xstrdup(cfg_get("default_rbl_reply"));
	if (cfg_get("rbl_reply_maps")[0] != '\0')
		rs->rbl_reply_maps = smtpd_access_map_new(
		    cfg_get("rbl_reply_maps"));
	rs->null_key = xstrdup(cfg_get("smtpd_null_access_lookup_key"));
	rs->peername_lookup = cfg_get_bool("smtpd_peername_lookup");
	rs->reject_unlisted_rcpt =
	    cfg_get_bool("smtpd_reject_unlisted_recipient");
	rs->reject_unlisted_sender =
	    cfg_get_bool("smtpd_reject_unlisted_sender");
	rs->sasl_enable = cfg_get_bool("smtpd_sasl_auth_enable");
	rs->route.swap_bangpath = cfg_get_bool("swap_bangpath");
	rs->route.percent_hack = cfg_get_bool("allow_percent_hack");
	rs->route.untrusted_routing = cfg_get_bool("allow_untrusted_routing");
	rs->reject_code = smtpd_check_code("reject_code");
	rs->defer_code = smtpd_check_code("defer_code");
	rs->relay_code = smtpd_check_code("relay_domains_reject_code");
	rs->map_reject_code = smtpd_check_code("access_map_reject_code");
	rs->map_defer_code = smtpd_check_code("access_map_defer_code");
	rs->unk_addr_code = smtpd_check_code("unknown_address_reject_code");
	rs->unk_client_code = smtpd_check_code("unknown_client_reject_code");
	rs->unk_name_code = smtpd_check_code("unknown_hostname_reject_code");
	rs->bad_name_code = smtpd_check_code("invalid_hostname_reject_code");
	rs->non_fqdn_code = smtpd_check_code("non_fqdn_reject_code");
	rs->rbl_code = smtpd_check_code("maps_rbl_reject_code");
	rs->mul_rcpt_code =
	    smtpd_check_code("multi_recipient_bounce_reject_code");
	rs->plaintext_code = smtpd_check_code("plaintext_reject_code");
	rs->local_rcpt_code =
	    smtpd_check_code("unknown_local_recipient_reject_code");
	rs->virt_alias_code =
	    smtpd_check_code("unknown_virtual_alias_reject_code");
	rs->virt_mailbox_code =
	    smtpd_check_code("unknown_virtual_mailbox_reject_code");
	rs->relay_rcpt_code =
	    smtpd_check_code("unknown_relay_recipient_reject_code");
	rs->unv_rcpt_code = smtpd_check_code("unverified_recipient_reject_code");
	rs->unv_sender_code = smtpd_check_code("unverified_sender_reject_code");
	rs->unv_rcpt_defer = smtpd_check_code("unverified_recipient_defer_code");
	rs->unv_sender_defer = smtpd_check_code("unverified_sender_defer_code");
	rs->unv_rcpt_reason = xstrdup(cfg_get(
	    "unverified_recipient_reject_reason"));
	rs->unv_sender_reason = xstrdup(cfg_get(
	    "unverified_sender_reject_reason"));
	list = cfg_get_list("permit_mx_backup_networks");
	n = strv_len(list);
	if (n > 0) {
		size_t k = 0;

		rs->mx_backup_nets = xcalloc(n + 1,
		    sizeof(*rs->mx_backup_nets));
		for (i = 0; i < n; i++) {
			if (netaddr_parse(list[i], &rs->mx_backup_nets[k]) == 0)
				k++;
			else
				log_warning("permit_mx_backup_networks: bad "
				    "network \"%s\" (ignored)", list[i]);
		}
		rs->mx_backup_nets[k].family = 0;
	}
	cfg_list_free(&list);
	set->restrictions = rs;
}

void
smtpd_check_settings_free(struct smtpd_settings *set)
{
	struct smtpd_restrictions *rs = set->restrictions;
	size_t i;

	if (rs == NULL)
		return;
	set->restrictions = NULL;
	smtpd_check_rlist_free(&rs->client);
	smtpd_check_rlist_free(&rs->helo);
	smtpd_check_rlist_free(&rs->sender);
	smtpd_check_rlist_free(&rs->relay);
	smtpd_check_rlist_free(&rs->recipient);
	smtpd_check_rlist_free(&rs->data);
	smtpd_check_rlist_free(&rs->eod);
	for (i = 0; i < rs->nclasses; i++) {
		smtpd_check_rlist_free(&rs->classes[i].list);
		free(rs->classes[i].name);
	}
	free(rs->classes);
	free(rs->mx_backup_nets);
	free(rs->unv_rcpt_reason);
	free(rs->unv_sender_reason);
	for (i = 0; i < rs->nmaps; i++)
		smtpd_access_map_free(&rs->maps[i]);
	free(rs->maps);
	for (i = 0; i < rs->npolicies; i++)
		smtpd_policy_server_free(&rs->policies[i]);
	free(rs->policies);
	for (i = 0; i < rs->nslm; i++) {
		map_close(&rs->slm[i].map);
		free(rs->slm[i].spec);
	}
	free(rs->slm);
	smtpd_access_map_free(&rs->rbl_reply_maps);
	for (i = 0; i < rs->nmynet_maps; i++)
		smtpd_access_map_free(&rs->mynet_maps[i]);
	free(rs->mynet_maps);
	free(rs->rbl_reply);
	free(rs->null_key);
	free(rs);
	/* The rewrite tables are shared by all settings: closing them here
	 * (reload, exit) only makes the next lookup open them again. */
	rewrite_reset();
}

/* ---- session state ---- */

static struct smtpd_check_state *
smtpd_check_state(struct smtpd_session *s)
{
	if (s->check == NULL)
		s->check = xcalloc(1, sizeof(*s->check));
	return s->check;
}

static void
smtpd_check_entry_free(struct smtpd_check_entry *e)
{
	free(e->key);
	strv_free(&e->addrs);
	free(e->text);
}

static void
smtpd_check_defer_clear(struct smtpd_defer *d)
{
	free(d->reply);
	d->reply = NULL;
	d->active = false;
}

static void
smtpd_check_job_free(struct smtpd_check_job *job)
{
	smtpd_settings_unref(&job->set);
	free(job->key);
	strv_free(&job->addrs);
	free(job->text);
	free(job->name);
	free(job->reverse);
	free(job);
}

void
smtpd_check_session_free(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = s->check;
	size_t i;

	if (cs == NULL)
		return;
	s->check = NULL;
	/* A worker may still run the job: it is freed when it reports. */
	if (cs->job != NULL)
		cs->job->s = NULL;
	for (i = 0; i < cs->ncache; i++)
		smtpd_check_entry_free(&cs->cache[i]);
	free(cs->cache);
	free(cs->line);
	free(cs->reverse_name);
	free(cs->denied);
	free(cs->server_addr);
	smtpd_check_defer_clear(&cs->dip_prev);
	strv_free(&cs->mail_prepend);
	free(cs);
}

const char *
smtpd_check_denied(const struct smtpd_session *s)
{
	return s->check != NULL ? s->check->denied : NULL;
}

void
smtpd_check_save_line(struct smtpd_session *s, const char *line,
    size_t len)
{
	struct smtpd_check_state *cs = smtpd_check_state(s);

	free(cs->line);
	cs->line = xstrndup(line, len);
	cs->line_len = len;
	cs->resume = RESUME_CMD;
}

/* Move an evaluation's message actions into the transaction. */
static void
smtpd_check_txn_actions(struct smtpd_txn *t, bool discard, bool hold,
    char ***prepend)
{
	size_t i;

	t->discard |= discard;
	t->hold |= hold;
	for (i = 0; *prepend != NULL && (*prepend)[i] != NULL; i++)
		if (strv_len(t->prepend) < SMTPD_CHECK_MAX_PREPEND)
			strv_push(&t->prepend, (*prepend)[i]);
	strv_free(prepend);
}

void
smtpd_check_new_txn(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = smtpd_check_state(s);

	cs->txn_seq++;
	if (s->txn != NULL)
		smtpd_check_txn_actions(s->txn, cs->mail_discard,
		    cs->mail_hold, &cs->mail_prepend);
	cs->mail_discard = cs->mail_hold = false;
}

/* The command ended: forget what was only for it, keep the cache small. */
static void
smtpd_check_command_done(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = s->check;
	size_t i, o = 0;

	if (cs == NULL)
		return;
	cs->lookups = 0;
	for (i = 0; i < cs->ncache; i++) {
		if (cs->cache[i].per_command ||
		    cs->ncache > SMTPD_CHECK_MAX_CACHE)
			smtpd_check_entry_free(&cs->cache[i]);
		else
			cs->cache[o++] = cs->cache[i];
	}
	cs->ncache = o;
}

/* ---- worker side ---- */

static void
smtpd_check_work_ptr(struct smtpd_check_job *job)
{
	struct dns_addr *addrs = NULL;
	const char *why = NULL;
	enum dns_status st;
	size_t count = 0, i;
	char *name = NULL;

	st = dns_lookup_ptr((struct sockaddr *)&job->ss, &name, &why);
	if (st != DNS_OK) {
		job->name_status = job->reverse_status =
		    st == DNS_TEMPFAIL ? PEER_TEMP : PEER_PERM;
		return;
	}
	job->reverse = name;
	job->reverse_status = PEER_OK;
	/* Forward-confirmed reverse DNS: the name must lead back. */
	st = dns_lookup_host(name, 0, &addrs, &count, &why);
	if (st != DNS_OK) {
		job->name_status = st == DNS_TEMPFAIL ? PEER_TEMP : PEER_PERM;
		snprintf(job->why, sizeof(job->why), "hostname %s "
		    "verification failed: %s", name, why != NULL ? why :
		    "lookup failed");
		free(addrs);
		return;
	}
	for (i = 0; i < count; i++) {
		const struct sockaddr *a = (struct sockaddr *)&addrs[i].ss;
		const struct sockaddr *c = (struct sockaddr *)&job->ss;

		if (a->sa_family != c->sa_family)
			continue;
		if (a->sa_family == AF_INET &&
		    memcmp(&((struct sockaddr_in *)a)->sin_addr,
		    &((struct sockaddr_in *)c)->sin_addr, 4) == 0)
			break;
		if (a->sa_family == AF_INET6 &&
		    memcmp(&((struct sockaddr_in6 *)a)->sin6_addr,
		    &((struct sockaddr_in6 *)c)->sin6_addr, 16) == 0)
			break;
	}
	free(addrs);
	if (i == count) {
		job->name_status = PEER_PERM;
		snprintf(job->why, sizeof(job->why), "hostname %s does not "
		    "resolve to address %s", name, job->key);
		return;
	}
	job->name = xstrdup(name);
	job->name_status = PEER_OK;
}

/* Append one host and (up to a bound) its addresses as result lines. */
static void
smtpd_check_servers_host(char ***out, size_t *n, unsigned pref,
    const char *host, struct smtpd_check_job *job)
{
	struct dns_addr *addrs = NULL;
	const char *why = NULL;
	enum dns_status st;
	size_t count = 0, i;
	char *line;

	if (*n >= SMTPD_CHECK_MAX_SERVERS)
		return;
	line = xasprintf("H %u %s", pref, host);
	strv_push(out, line);
	free(line);
	(*n)++;
	st = dns_lookup_host(host, 0, &addrs, &count, &why);
	if (st != DNS_OK) {
		if (st != DNS_NOTFOUND && job->why[0] == '\0')
			snprintf(job->why, sizeof(job->why), "unable to look "
			    "up host %s: %s", host, why != NULL ? why :
			    "lookup failed");
		return;
	}
	for (i = 0; i < count && i < SMTPD_CHECK_MAX_SERVER_ADDRS &&
	    *n < SMTPD_CHECK_MAX_SERVERS; i++) {
		char text[INET6_ADDRSTRLEN];
		const struct sockaddr *sa = (struct sockaddr *)&addrs[i].ss;
		const void *a = sa->sa_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (inet_ntop(sa->sa_family, a, text, sizeof(text)) == NULL)
			continue;
		line = xasprintf("I %s", text);
		strv_push(out, line);
		free(line);
		(*n)++;
	}
	free(addrs);
}

/*
 * The servers of a name (ASYNC_SERVERS): MX hosts by preference (a domain
 * without MX is its own, RFC 5321 §5.1), DNS servers (a name without NS
 * records: its nearest parent that has some), or the name itself, each
 * with its addresses.
 */
static void
smtpd_check_work_servers(struct smtpd_check_job *job)
{
	const char *name = strchr(job->key, ' ') + 1, *why = NULL;
	char **out = xcalloc(1, sizeof(*out)), **hosts = NULL;
	struct dns_mx *mx = NULL;
	enum dns_status st = DNS_OK;
	size_t count = 0, n = 0, i;

	switch (job->key[0]) {
	case SERVERS_MX:
		st = dns_lookup_mx(name, &mx, &count, &why);
		if (st == DNS_OK) {
			for (i = 0; i < count &&
			    i < SMTPD_CHECK_MAX_SERVER_HOSTS; i++)
				smtpd_check_servers_host(&out, &n, mx[i].pref,
				    mx[i].host, job);
			dns_mx_free(mx, count);
		} else if (st == DNS_NOTFOUND) {
			smtpd_check_servers_host(&out, &n, 0, name, job);
			st = DNS_OK;
		}
		break;
	case SERVERS_NS:
		/* Labels are at least two bytes with their dot: the walk
		 * to the top is bounded by the name's length. */
		for (;;) {
			st = dns_lookup_ns(name, &hosts, &why);
			if (st != DNS_NOTFOUND || strchr(name, '.') == NULL)
				break;
			name = strchr(name, '.') + 1;
		}
		if (st == DNS_OK) {
			for (i = 0; hosts[i] != NULL &&
			    i < SMTPD_CHECK_MAX_SERVER_HOSTS; i++)
				smtpd_check_servers_host(&out, &n, 0,
				    hosts[i], job);
			dns_strv_free(&hosts);
		}
		break;
	default:
		smtpd_check_servers_host(&out, &n, 0, name, job);
		break;
	}
	if (st != DNS_OK && st != DNS_NOTFOUND && st != DNS_NULLMX)
		snprintf(job->why, sizeof(job->why), "unable to look up %s "
		    "host for %s: %s", job->key[0] == SERVERS_MX ? "MX" : "NS",
		    name, why != NULL ? why : "lookup failed");
	job->status = st;
	job->addrs = out;
}

static void
smtpd_check_work(void *ctx)
{
	struct smtpd_check_job *job = ctx;
	const char *why = NULL;
	struct smtpd_rbl_result rbl;
	struct dns_mx *mx = NULL;
	struct dns_addr *addrs = NULL;
	size_t count = 0;
	enum dns_status st;

	switch (job->kind) {
	case ASYNC_RBL:
		smtpd_rbl_lookup(job->key, &rbl);
		job->status = rbl.status;
		job->addrs = rbl.addrs;
		job->text = rbl.txt;
		if (rbl.status != DNS_OK && rbl.status != DNS_NOTFOUND)
			snprintf(job->why, sizeof(job->why), "%s: RBL lookup "
			    "error: %s", job->key, rbl.why != NULL ? rbl.why :
			    "failed");
		break;
	case ASYNC_MAILHOST:
		st = dns_lookup_mx(job->key, &mx, &count, &why);
		if (st == DNS_OK)
			dns_mx_free(mx, count);
		if (st == DNS_NOTFOUND) {
			st = dns_lookup_host(job->key, 0, &addrs, &count, &why);
			free(addrs);
		}
		job->status = st;
		break;
	case ASYNC_HOST:
		st = dns_lookup_host(job->key, 0, &addrs, &count, &why);
		free(addrs);
		if (st == DNS_NOTFOUND) {
			mx = NULL;
			st = dns_lookup_mx(job->key, &mx, &count, &why);
			if (st == DNS_OK)
				dns_mx_free(mx, count);
			if (st == DNS_NULLMX)
				st = DNS_OK;	/* an MTA may have null MX */
		}
		job->status = st;
		break;
	case ASYNC_POLICY:
		job->status = smtpd_policy_query(job->policy, job->request,
		    &job->text, job->why, sizeof(job->why));
		break;
	case ASYNC_PTR:
		smtpd_check_work_ptr(job);
		break;
	case ASYNC_SERVERS:
		smtpd_check_work_servers(job);
		break;
	}
}

/* ---- loop side: answers come back ---- */

static bool	smtpd_check_connect_step(struct smtpd_session *s);
static void	smtpd_check_eod_step(struct smtpd_session *s);

static void
smtpd_check_apply_ptr(struct smtpd_session *s, struct smtpd_check_job *job)
{
	struct smtpd_check_state *cs = s->check;

	cs->name_done = true;
	cs->name_status = job->name_status;
	cs->reverse_status = job->reverse_status;
	free(cs->reverse_name);
	cs->reverse_name = xstrdup(job->reverse != NULL ? job->reverse :
	    "unknown");
	free(s->name);
	s->name = xstrdup(job->name != NULL ? job->name : "unknown");
	if (job->why[0] != '\0')
		log_warning("%s", job->why);
}

static void
smtpd_check_job_done(void *ctx)
{
	struct smtpd_check_job *job = ctx;
	struct smtpd_session *s = job->s;
	struct smtpd_check_state *cs;
	struct smtpd_check_entry *e;
	char *line;
	size_t len;

	if (s == NULL) {
		smtpd_check_job_free(job);
		return;
	}
	cs = s->check;
	cs->job = NULL;
	if (job->kind == ASYNC_PTR)
		smtpd_check_apply_ptr(s, job);
	else {
		if (job->why[0] != '\0') {
			if (job->kind == ASYNC_POLICY)
				log_warning("problem talking to server %s: %s",
				    smtpd_policy_server_spec(job->policy),
				    job->why);
			else
				log_warning("%s", job->why);
		}
		cs->cache = xreallocarray(cs->cache, cs->ncache + 1,
		    sizeof(*cs->cache));
		e = &cs->cache[cs->ncache++];
		memset(e, 0, sizeof(*e));
		e->kind = job->kind;
		e->key = job->key;
		job->key = NULL;
		e->per_command = job->kind == ASYNC_POLICY;
		e->status = job->status;
		e->addrs = job->addrs;
		job->addrs = NULL;
		e->text = job->text;
		job->text = NULL;
	}
	smtpd_check_job_free(job);

	switch (cs->resume) {
	case RESUME_CONNECT:
		if (!smtpd_check_connect_step(s))
			smtpd_session_connected(s);
		return;
	case RESUME_EOD:
		smtpd_check_eod_step(s);
		break;
	case RESUME_CMD:
		line = cs->line;
		len = cs->line_len;
		cs->line = NULL;
		smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		if (line != NULL)
			smtpd_cmd_execute(s, line, len);
		free(line);
		break;
	}
	smtpd_session_resume(s);
}

/*
 * The answer of an earlier lookup, or NULL after starting it (the
 * evaluation then ends as SC_PENDING) or when no more lookups may be
 * started (*failed set: the caller treats it as a failed lookup).
 */
static const struct smtpd_check_entry *
smtpd_check_async(struct smtpd_eval *ev, enum smtpd_async kind,
    const char *key, struct smtpd_policy_server *policy, bool *failed)
{
	struct smtpd_session *s = ev->s;
	struct smtpd_check_state *cs = smtpd_check_state(s);
	struct smtpd_check_job *job;
	size_t i;

	*failed = false;
	for (i = 0; i < cs->ncache; i++)
		if (cs->cache[i].kind == kind &&
		    strcmp(cs->cache[i].key, key) == 0)
			return &cs->cache[i];
	if (cs->job != NULL || cs->lookups >= SMTPD_CHECK_MAX_LOOKUPS) {
		if (cs->job == NULL)
			log_warning("%s: too many lookups for one command",
			    smtpd_session_client(s));
		*failed = true;
		return NULL;
	}
	cs->lookups++;
	job = xcalloc(1, sizeof(*job));
	job->s = s;
	job->set = s->set;
	s->set->refcount++;
	job->kind = kind;
	job->key = xstrdup(key);
	job->policy = policy;
	if (kind == ASYNC_POLICY)
		job->request = strchr(job->key, '\n') + 1;
	cs->job = job;
	smtpd_session_enter_state(s, SMTPD_STATE_CHECK);
	if (kind == ASYNC_POLICY) {
		if (smtpd_check_policy_pool == NULL)
			smtpd_check_policy_pool = workpool_new("smtpd policy",
			    SMTPD_CHECK_POLICY_THREADS);
		workpool_submit(smtpd_check_policy_pool, smtpd_check_work,
		    smtpd_check_job_done, job);
	} else {
		if (smtpd_check_dns_pool == NULL)
			smtpd_check_dns_pool = workpool_new("smtpd dns",
			    SMTPD_CHECK_DNS_THREADS);
		workpool_submit(smtpd_check_dns_pool, smtpd_check_work,
		    smtpd_check_job_done, job);
	}
	return NULL;
}

/* ---- replies and log lines ---- */

static void
smtpd_eval_init(struct smtpd_eval *ev, struct smtpd_session *s,
    const char *cmd)
{
	memset(ev, 0, sizeof(*ev));
	ev->s = s;
	ev->rs = s->set->restrictions;
	ev->cmd = cmd;
	ev->qid = "NOQUEUE";
	str_lcpy(ev->namaddr, smtpd_session_client(s), sizeof(ev->namaddr));
	ev->helo = s->helo;
	ev->rcpt_rewrite = -2;
	if (s->txn != NULL) {
		ev->sender = s->txn->sender_given;
		ev->sender_raw = ev->sender;
	}
}

static void
smtpd_eval_free(struct smtpd_eval *ev)
{
	size_t i;

	for (i = 0; i < ev->nlogs; i++)
		free(ev->logs[i]);
	free(ev->logs);
	free(ev->reply);
	smtpd_check_defer_clear(&ev->dip);
	smtpd_check_defer_clear(&ev->dir);
	strv_free(&ev->rcpt_addrs);
	strv_free(&ev->prepend);
	free(ev->rcpt_why);
	if (ev->rroute_done)
		smtpd_access_route_free(&ev->rroute);
	if (ev->sroute_done)
		smtpd_access_route_free(&ev->sroute);
}

/* Client text in a log line: clipped, control characters escaped. */
static const char *
smtpd_check_esc(char *buf, size_t size, const char *s)
{
	return log_escape(buf, size, s, strlen(s));
}

/*
 * Postfix's log_whatsup(): "QID: WHAT: CMD from NAME[ADDR]: TEXT;
 * from=<S> to=<R> proto=P helo=<H>", queued until the evaluation is
 * final.
 */
static void
smtpd_eval_log(struct smtpd_eval *ev, const char *what, const char *text)
{
	char esc[1100], esct[1100];
	struct buf b;

	if (ev->nlogs >= SMTPD_CHECK_MAX_LOGS)
		return;
	buf_init(&b, 0);
	buf_printf(&b, "%s: %s: %s from %s: %s;", ev->qid, what, ev->cmd,
	    smtpd_session_client(ev->s),
	    smtpd_check_esc(esct, sizeof(esct), text));
	if (ev->sender != NULL)
		buf_printf(&b, " from=<%s>", smtpd_check_esc(esc, sizeof(esc),
		    ev->sender));
	if (ev->recipient != NULL)
		buf_printf(&b, " to=<%s>", smtpd_check_esc(esc, sizeof(esc),
		    ev->recipient));
	buf_printf(&b, " proto=%s", smtpd_session_proto(ev->s));
	if (ev->helo != NULL)
		buf_printf(&b, " helo=<%s>", smtpd_check_esc(esc, sizeof(esc),
		    ev->helo));
	ev->logs = xreallocarray(ev->logs, ev->nlogs + 1, sizeof(*ev->logs));
	ev->logs[ev->nlogs++] = buf_steal(&b);
}

/*
 * "CODE D.S.N text" with the DSN class made to agree with the code and
 * the text made safe for one reply line.
 */
static char *
smtpd_check_format(int code, const char *dsn, const char *fmt, va_list ap)
{
	struct buf b;
	char *text, *line, *p;

	text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		log_fatal("out of memory");
	buf_init(&b, 0);
	buf_printf(&b, "%d %s %s", code, dsn, text);
	free(text);
	line = buf_steal(&b);
	/* The DSN class follows the reply code (Postfix does the same). */
	line[4] = line[0];
	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (strlen(line) > SMTPD_CHECK_MAX_REPLY)
		line[SMTPD_CHECK_MAX_REPLY] = '\0';
	return line;
}

/* Postfix's smtpd_check_reject(). */
static int
smtpd_eval_reject(struct smtpd_eval *ev, int code, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
smtpd_eval_reject(struct smtpd_eval *ev, int code, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;
	char *line;

	if (code < 400 || code > 599 || strlen(dsn) < 5) {
		log_warning("bad reply code %d or status %s in a restriction",
		    code, dsn);
		code = 451;
		dsn = "4.3.5";
		fmt = "%s";
	}
	va_start(ap, fmt);
	line = smtpd_check_format(code, dsn, fmt, ap);
	va_end(ap);
	/* defer_if_reject turns a later 5xx into the deferral it kept. */
	if (!ev->warn_if_reject && ev->dir.active && line[0] == '5') {
		free(line);
		line = ev->dir.reply;
		ev->dir.reply = NULL;
		ev->dir.active = false;
	}
	if (ev->warn_if_reject) {
		smtpd_eval_log(ev, "reject_warning", line);
		free(line);
		return SC_DUNNO;
	}
	smtpd_eval_log(ev, "reject", line);
	free(ev->reply);
	ev->reply = line;
	return SC_REJECT;
}

/* A configuration error: refuse for now whatever warn_if_reject says. */
static int
smtpd_eval_server_error(struct smtpd_eval *ev)
{
	ev->warn_if_reject = 0;
	smtpd_check_defer_clear(&ev->dir);
	return smtpd_eval_reject(ev, 451, "4.3.5",
	    "Server configuration error");
}

static int
smtpd_eval_defer_if(struct smtpd_defer *d, int code, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Postfix's defer_if(): keep the first reason. */
static int
smtpd_eval_defer_if(struct smtpd_defer *d, int code, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	if (d->active)
		return SC_DUNNO;
	d->active = true;
	va_start(ap, fmt);
	d->reply = smtpd_check_format(code, dsn, fmt, ap);
	va_end(ap);
	return SC_DUNNO;
}

/* defer_if_permit at the end of a stage: the kept deferral, if any. */
static int
smtpd_eval_apply_dip(struct smtpd_eval *ev, int status)
{
	if (status == SC_REJECT || status == SC_PENDING || !ev->dip.active)
		return status;
	ev->warn_if_reject = 0;
	smtpd_check_defer_clear(&ev->dir);
	return smtpd_eval_reject_line(ev, ev->dip.reply);
}

/* ---- addresses ---- */

static const struct smtpd_access_route *
smtpd_eval_rroute(struct smtpd_eval *ev)
{
	if (!ev->rroute_done) {
		smtpd_access_resolve(ev->recipient, &ev->rs->route,
		    &ev->rroute);
		ev->rroute_done = true;
	}
	return &ev->rroute;
}

static const struct smtpd_access_route *
smtpd_eval_sroute(struct smtpd_eval *ev)
{
	if (!ev->sroute_done) {
		smtpd_access_resolve(ev->sender, &ev->rs->route, &ev->sroute);
		ev->sroute_done = true;
	}
	return &ev->sroute;
}

static bool
smtpd_class_final(enum smtpd_access_class c)
{
	return c == SMTPD_CLASS_LOCAL || c == SMTPD_CLASS_VIRTUAL_ALIAS ||
	    c == SMTPD_CLASS_VIRTUAL_MAILBOX;
}

/* Postfix's permit_auth_destination(): SC_OK or SC_DUNNO. */
static int
smtpd_eval_auth_dest(struct smtpd_eval *ev)
{
	const struct smtpd_access_route *r = smtpd_eval_rroute(ev);

	/* Sender-specified routing (user%remote@here, remote!user@here,
	 * "user@remote"@here) has an uncertain destination. */
	if (!ev->rs->route.untrusted_routing && r->routed)
		return SC_DUNNO;
	if (smtpd_class_final(r->cls) || r->cls == SMTPD_CLASS_RELAY)
		return SC_OK;
	return SC_DUNNO;
}

/* ---- host names ---- */

/* Postfix's valid_hostname(): LDH labels (and '_'), not all-numeric. */
static bool
smtpd_check_valid_hostname(const char *name)
{
	size_t label = 0, total = 0;
	bool digits_only = true;
	const char *p;

	if (*name == '\0' || strlen(name) > 255)
		return false;
	for (p = name; *p != '\0'; p++, total++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			digits_only = true;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (label == 0 && c == '-')
			return false;
		if (!(c >= '0' && c <= '9'))
			digits_only = false;
		if (++label > 63)
			return false;
	}
	if (label == 0 || p[-1] == '-')
		return false;
	/* A numeric last label is an address, not a name. */
	return !digits_only;
}

static bool
smtpd_check_valid_hostaddr(const char *s)
{
	struct netaddr n;

	if (str_starts_case(s, "IPv6:"))
		s += 5;
	return netaddr_parse_host(s, &n) == 0;
}

/* "name." but not "name.." loses its dot.  Malloc'ed. */
static char *
smtpd_check_strip_dot(const char *name)
{
	char *d = xstrdup(name);
	size_t len = strlen(d);

	if (len > 1 && d[len - 1] == '.' && d[len - 2] != '.')
		d[len - 1] = '\0';
	return d;
}

static int
smtpd_eval_invalid_hostaddr(struct smtpd_eval *ev, const char *addr,
    const char *reply_name, const char *reply_class)
{
	size_t len = strlen(addr);
	char *inner;
	bool ok;

	if (addr[0] != '[' || len < 3 || addr[len - 1] != ']')
		ok = false;
	else {
		inner = xstrndup(addr + 1, len - 2);
		ok = smtpd_check_valid_hostaddr(inner);
		free(inner);
	}
	if (ok)
		return SC_DUNNO;
	return smtpd_eval_reject(ev, ev->rs->bad_name_code, "5.5.2",
	    "<%s>: %s rejected: invalid ip address", reply_name, reply_class);
}

static int
smtpd_eval_invalid_hostname(struct smtpd_eval *ev, const char *name)
{
	char *t = smtpd_check_strip_dot(name);
	bool ok = smtpd_check_valid_hostname(t) ||
	    smtpd_check_valid_hostaddr(t);

	free(t);
	if (ok)
		return SC_DUNNO;
	return smtpd_eval_reject(ev, ev->rs->bad_name_code, "5.5.2",
	    "<%s>: %s rejected: Invalid name", name, CLASS_HELO);
}

static int
smtpd_eval_non_fqdn_hostname(struct smtpd_eval *ev, const char *name)
{
	char *t = smtpd_check_strip_dot(name);
	bool ok = smtpd_check_valid_hostname(t) && strchr(t, '.') != NULL;

	free(t);
	if (ok)
		return SC_DUNNO;
	return smtpd_eval_reject(ev, ev->rs->non_fqdn_code, "5.5.2",
	    "<%s>: %s rejected: need fully-qualified hostname", name,
	    CLASS_HELO);
}

static int
smtpd_eval_non_fqdn_address(struct smtpd_eval *ev, const char *addr,
    const char *reply_class)
{
	const char *at = strrchr(addr, '@');
	const char *domain = at != NULL ? at + 1 : "";
	char *t;
	bool ok;

	if (domain[0] == '[' && domain[strlen(domain) - 1] == ']')
		return SC_DUNNO;
	t = smtpd_check_strip_dot(domain);
	ok = t[0] != '\0' && strchr(t, '.') != NULL &&
	    (smtpd_check_valid_hostname(t) ||
	    (ev->s->txn != NULL && ev->s->txn->smtputf8));
	free(t);
	if (ok)
		return SC_DUNNO;
	return smtpd_eval_reject(ev, ev->rs->non_fqdn_code, "4.5.2",
	    "<%s>: %s rejected: need fully-qualified address", addr,
	    reply_class);
}

static int
smtpd_eval_unknown_helo(struct smtpd_eval *ev, const char *name)
{
	const struct smtpd_check_entry *e;
	char *t = smtpd_check_strip_dot(name);
	bool failed;
	int status;

	/* A name that cannot exist is not worth a question. */
	if (!smtpd_check_valid_hostname(t)) {
		free(t);
		return smtpd_eval_reject(ev, ev->rs->unk_name_code, "4.7.1",
		    "<%s>: %s rejected: Host not found", name, CLASS_HELO);
	}
	e = smtpd_check_async(ev, ASYNC_HOST, t, NULL, &failed);
	free(t);
	if (e == NULL)
		return failed ? SC_DUNNO : SC_PENDING;
	status = e->status;
	if (status == DNS_OK)
		return SC_DUNNO;
	if (status == DNS_TEMPFAIL)
		return smtpd_eval_defer_if(&ev->dip, 450, "4.7.1",
		    "<%s>: %s rejected: Host not found", name, CLASS_HELO);
	return smtpd_eval_reject(ev, ev->rs->unk_name_code, "4.7.1",
	    "<%s>: %s rejected: %s", name, CLASS_HELO,
	    status == DNS_FAIL ? "Malformed DNS server reply" :
	    "Host not found");
}

/* reject_unknown_sender_domain / _recipient_domain */
static int
smtpd_eval_unknown_address(struct smtpd_eval *ev, bool sender)
{
	const struct smtpd_access_route *r = sender ? smtpd_eval_sroute(ev) :
	    smtpd_eval_rroute(ev);
	const char *name = sender ? ev->sender : ev->recipient;
	const char *cls = sender ? SMTPD_CLASS_SENDER : SMTPD_CLASS_RECIPIENT;
	const struct smtpd_check_entry *e;
	const char *p;
	bool failed;

	if (smtpd_class_final(r->cls) || r->domain[0] == '\0' ||
	    r->domain[0] == '[')
		return SC_DUNNO;
	/* An internationalized domain would need IDNA to be asked about
	 * (RFC 5891); it is not refused for that. */
	for (p = r->domain; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return SC_DUNNO;
	if (!smtpd_check_valid_hostname(r->domain))
		return smtpd_eval_reject(ev, ev->rs->unk_addr_code,
		    sender ? "4.1.8" : "4.1.2", "<%s>: %s rejected: Domain not "
		    "found", name, cls);
	e = smtpd_check_async(ev, ASYNC_MAILHOST, r->domain, NULL, &failed);
	if (e == NULL)
		return failed ? SC_DUNNO : SC_PENDING;
	switch (e->status) {
	case DNS_OK:
		return SC_DUNNO;
	case DNS_NULLMX:
		return smtpd_eval_reject(ev, sender ? 550 : 556,
		    sender ? "4.7.27" : "4.1.10", "<%s>: %s rejected: Domain "
		    "%s does not accept mail (nullMX)", name, cls, r->domain);
	case DNS_TEMPFAIL:
		return smtpd_eval_defer_if(&ev->dip, 450,
		    sender ? "4.1.8" : "4.1.2",
		    "<%s>: %s rejected: Domain not found", name, cls);
	default:
		return smtpd_eval_reject(ev, ev->rs->unk_addr_code,
		    sender ? "4.1.8" : "4.1.2", "<%s>: %s rejected: %s", name,
		    cls, e->status == DNS_FAIL ? "Malformed DNS server reply" :
		    "Domain not found");
	}
}

/* ---- block lists ---- */

static int
smtpd_eval_rbl_reply(struct smtpd_eval *ev, const struct smtpd_check_entry
    *e, const char *domain, const char *what, const char *reply_class)
{
	struct smtpd_rbl_vars v;
	char code[8], dsn[16], *template = NULL, *text;
	const char *rest;
	int r;

	if (ev->rs->rbl_reply_maps != NULL &&
	    smtpd_access_find(ev->rs->rbl_reply_maps, domain, &template) < 0)
		return smtpd_eval_server_error(ev);
	snprintf(code, sizeof(code), "%d", ev->rs->rbl_code);
	memset(&v, 0, sizeof(v));
	v.code = code;
	v.cls = reply_class;
	v.what = what;
	v.domain = domain;
	v.reason = e->text;
	v.client_address = ev->s->addr;
	v.client_name = ev->s->name;
	v.helo_name = ev->helo;
	v.sender = ev->sender;
	v.recipient = ev->recipient;
	text = smtpd_rbl_expand(template != NULL ? template :
	    ev->rs->rbl_reply, &v);
	if (text == NULL && template != NULL) {
		log_warning("bad rbl reply template for domain %s: %s", domain,
		    template);
		text = smtpd_rbl_expand(ev->rs->rbl_reply, &v);
	}
	free(template);
	if (text == NULL || (text[0] != '4' && text[0] != '5') ||
	    strspn(text, "0123456789") != 3 || text[3] != ' ') {
		log_warning("rbl response code configuration error: %s",
		    text != NULL ? text : "(bad template)");
		free(text);
		return smtpd_eval_reject(ev, 450, "4.7.1",
		    "Service unavailable");
	}
	rest = smtpd_access_dsn_split(text + 4, "4.7.1", dsn, sizeof(dsn));
	smtpd_access_dsn_fix(dsn, reply_class);
	r = smtpd_eval_reject(ev, atoi(text), dsn, "%s",
	    *rest != '\0' ? rest : "Service unavailable");
	free(text);
	return r;
}

static int
smtpd_eval_rbl(struct smtpd_eval *ev, const char *zone, const char *query,
    const char *what, const char *reply_class)
{
	const struct smtpd_check_entry *e;
	const char *eq = strchr(zone, '=');
	char *domain = eq != NULL ? xstrndup(zone, (size_t)(eq - zone)) :
	    xstrdup(zone);
	bool failed;
	int r = SC_DUNNO;

	e = smtpd_check_async(ev, ASYNC_RBL, query, NULL, &failed);
	if (e == NULL)
		r = failed ? SC_DUNNO : SC_PENDING;
	else if (e->status == DNS_OK &&
	    smtpd_rbl_listed(eq != NULL ? eq + 1 : NULL, e->addrs))
		r = smtpd_eval_rbl_reply(ev, e, domain, what, reply_class);
	free(domain);
	return r;
}

static int
smtpd_eval_rbl_client(struct smtpd_eval *ev, const char *zone)
{
	const char *eq = strchr(zone, '=');
	char *domain, *query;
	int r;

	if (ev->s->naddr.family == 0)
		return SC_DUNNO;
	domain = eq != NULL ? xstrndup(zone, (size_t)(eq - zone)) :
	    xstrdup(zone);
	query = smtpd_rbl_query_addr(ev->s->addr, domain);
	free(domain);
	if (query == NULL)
		return SC_DUNNO;
	r = smtpd_eval_rbl(ev, zone, query, ev->s->addr, CLASS_CLIENT);
	free(query);
	return r;
}

static int
smtpd_eval_rhsbl(struct smtpd_eval *ev, const char *zone, const char *what,
    const char *reply_class)
{
	const char *eq = strchr(zone, '=');
	char *domain, *query;
	int r;

	domain = eq != NULL ? xstrndup(zone, (size_t)(eq - zone)) :
	    xstrdup(zone);
	query = smtpd_rbl_query_domain(what, domain);
	free(domain);
	if (query == NULL)
		return SC_DUNNO;
	r = smtpd_eval_rbl(ev, zone, query, what, reply_class);
	free(query);
	return r;
}

/* ---- tables ---- */

/* Postfix's check_table_result(). */
static int
smtpd_eval_table_result(struct smtpd_eval *ev, const char *table,
    const char *value, const char *reply_name, const char *reply_class,
    enum smtpd_rtype def_acl)
{
	struct smtpd_access_action a;
	char dsn[16], def[8], word[32];
	const char *text;

	smtpd_access_parse(value, &a);
	switch (a.verb) {
	case SMTPD_ACCESS_DUNNO:
		return SC_DUNNO;
	case SMTPD_ACCESS_OK:
		return SC_OK;
	case SMTPD_ACCESS_REJECT:
	case SMTPD_ACCESS_DEFER:
		text = smtpd_access_dsn_split(a.text, a.verb ==
		    SMTPD_ACCESS_REJECT ? "5.7.1" : "4.7.1", dsn, sizeof(dsn));
		smtpd_access_dsn_fix(dsn, reply_class);
		return smtpd_eval_reject(ev, a.verb == SMTPD_ACCESS_REJECT ?
		    ev->rs->map_reject_code : ev->rs->map_defer_code, dsn,
		    "<%s>: %s rejected: %s", reply_name, reply_class,
		    *text != '\0' ? text : "Access denied");
	case SMTPD_ACCESS_CODE:
		snprintf(def, sizeof(def), "%c.7.1", a.word[0]);
		text = smtpd_access_dsn_split(a.text, def, dsn, sizeof(dsn));
		smtpd_access_dsn_fix(dsn, reply_class);
		return smtpd_eval_reject(ev, a.code, dsn,
		    "<%s>: %s rejected: %s", reply_name, reply_class,
		    *text != '\0' ? text : "Access denied");
	case SMTPD_ACCESS_DEFER_IF_PERMIT:
	case SMTPD_ACCESS_DEFER_IF_REJECT:
		text = smtpd_access_dsn_split(a.text, "4.7.1", dsn,
		    sizeof(dsn));
		smtpd_access_dsn_fix(dsn, reply_class);
		return smtpd_eval_defer_if(a.verb ==
		    SMTPD_ACCESS_DEFER_IF_PERMIT ? &ev->dip : &ev->dir,
		    ev->rs->map_defer_code, dsn, "<%s>: %s rejected: %s",
		    reply_name, reply_class,
		    *text != '\0' ? text : "Service unavailable");
	case SMTPD_ACCESS_WARN:
	case SMTPD_ACCESS_INFO:
		smtpd_eval_log(ev, a.verb == SMTPD_ACCESS_WARN ? "warn" :
		    "info", a.text);
		return SC_DUNNO;
	case SMTPD_ACCESS_HOLD:
	case SMTPD_ACCESS_DISCARD: {
		bool hold = a.verb == SMTPD_ACCESS_HOLD;
		char *t;

		/* They act on a message: not from client or HELO checks
		 * outside a transaction (smtpd_delay_reject = no). */
		if (ev->no_actions || ev->sender == NULL) {
			log_warning("access table %s: action %s is skipped "
			    "outside a mail transaction", table,
			    hold ? "HOLD" : "DISCARD");
			return SC_DUNNO;
		}
		if (hold && ev->hold)
			return SC_DUNNO;
		t = xasprintf("<%s>: %s %s", reply_name, reply_class,
		    *a.text != '\0' ? a.text : hold ? "triggers HOLD action" :
		    "triggers DISCARD action");
		smtpd_eval_log(ev, hold ? "hold" : "discard", t);
		free(t);
		if (hold) {
			ev->hold = true;
			return SC_DUNNO;
		}
		ev->discard = true;
		return SC_OK;
	}
	case SMTPD_ACCESS_PREPEND: {
		size_t nlen = strcspn(a.text, ": \t");

		if (ev->no_actions || ev->sender == NULL || ev->eod) {
			log_warning("access table %s: action PREPEND is "
			    "skipped %s", table, ev->eod ?
			    "at the end of the message" :
			    "outside a mail transaction");
			return SC_DUNNO;
		}
		/* "Name: value", a header that fits one line (RFC 5322
		 * §2.1.1) and has no control characters. */
		if (nlen == 0 || a.text[nlen] != ':' ||
		    strlen(a.text) > SMTPD_CHECK_MAX_PREPEND_LEN ||
		    strpbrk(a.text, "\r\n") != NULL) {
			log_warning("access table %s entry \"%s\" requires "
			    "header: text", table, value);
			return SC_DUNNO;
		}
		if (strv_len(ev->prepend) < SMTPD_CHECK_MAX_PREPEND)
			strv_push(&ev->prepend, a.text);
		return SC_DUNNO;
	}
	case SMTPD_ACCESS_IGNORED: {
		char *t;
		size_t i;

		for (i = 0; i < a.word_len && i + 1 < sizeof(word); i++)
			word[i] = (char)(a.word[i] | 0x20);
		word[i] = '\0';
		t = xasprintf("<%s>: %s triggers %.*s %s (not supported here: "
		    "ignored)", reply_name, reply_class, (int)a.word_len,
		    a.word, a.text);
		smtpd_eval_log(ev, word, t);
		free(t);
		return SC_DUNNO;
	}
	case SMTPD_ACCESS_BAD:
		log_warning("access table %s has entry with lookup table: %s",
		    table, value);
		return smtpd_eval_server_error(ev);
	case SMTPD_ACCESS_RESTRICTIONS: {
		struct smtpd_rlist l;
		char **words;
		int r;

		if (ev->recursion > SMTPD_CHECK_MAX_RECURSION) {
			log_warning("access table %s entry %s causes "
			    "unreasonable recursion", table, value);
			return smtpd_eval_server_error(ev);
		}
		words = strv_split(value, ", \t");
		smtpd_check_compile(NULL, ev->rs, words, table, R_BAD, &l,
		    NULL);
		strv_free(&words);
		r = smtpd_check_list(ev, &l, reply_name, reply_class,
		    def_acl);
		smtpd_check_rlist_free(&l);
		return r;
	}
	}
	return SC_DUNNO;
}

/* A lookup result (1 found, 0 not, -1 table trouble) as a status. */
static int
smtpd_eval_lookup(struct smtpd_eval *ev, const struct smtpd_restriction *r,
    int found, char *value, const char *reply_name, const char *reply_class)
{
	int st = SC_DUNNO;

	if (found > 0)
		st = smtpd_eval_table_result(ev, r->arg, value, reply_name,
		    reply_class, r->type);
	else if (found < 0)
		st = smtpd_eval_table_result(ev, r->arg,
		    "451 4.3.5 Server configuration error", reply_name,
		    reply_class, r->type);
	free(value);
	return st;
}

/* ---- SASL sender login checks (smtpd_sender_login_maps) ---- */

static int
smtpd_check_slm_lookup(const struct smtpd_restrictions *rs, const char *key,
    char **owners_r)
{
	const char *error;
	size_t i;
	int r;

	for (i = 0; i < rs->nslm; i++) {
		struct smtpd_slm_elem *e = &rs->slm[i];

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
 * The owners of a sender address, in Postfix's lookup order for address
 * tables: user+ext@domain, user@domain, then for our own domains
 * user+ext and user, then @domain.  1 / 0 / -1 as above.
 */
static int
smtpd_check_owners(const struct smtpd_restrictions *rs, const char *sender,
    char **owners_r)
{
	char *quoted, *domain, *local, *base, *keys[5];
	size_t i, n = 0;
	int r = 0;

	*owners_r = NULL;
	addr_split(sender, &quoted, &domain);
	local = smtpd_access_unquote(quoted);
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
		r = smtpd_check_slm_lookup(rs, keys[i], owners_r);
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
 * One login check.  auth: a logged-in client must own the address
 * (allow_unknown: unless nobody owns it); unauth: a client that did not
 * log in must not use an owned address.
 */
static int
smtpd_eval_login(struct smtpd_eval *ev, bool auth, bool allow_unknown,
    bool unauth)
{
	struct smtpd_session *s = ev->s;
	const char *sender = ev->sender;
	char *owners = NULL;
	int r;

	if (sender == NULL || sender[0] == '\0' || ev->rs->nslm == 0 ||
	    (s->sasl_user != NULL ? !auth : !unauth))
		return SC_DUNNO;
	r = smtpd_check_owners(ev->rs, sender, &owners);
	if (r < 0)
		return smtpd_eval_reject(ev, 451, "4.3.0",
		    "<%s>: Temporary lookup failure", sender);
	if (s->sasl_user == NULL) {
		free(owners);
		if (r == 0)
			return SC_DUNNO;
		return smtpd_eval_reject(ev, 553, "5.7.1",
		    "<%s>: Sender address rejected: not logged in", sender);
	}
	if (r == 0 && allow_unknown)
		return SC_DUNNO;
	if (r > 0 && smtpd_check_owner_match(owners, s->sasl_user)) {
		free(owners);
		return SC_DUNNO;
	}
	free(owners);
	return smtpd_eval_reject(ev, 553, "5.7.1",
	    "<%s>: Sender address rejected: not owned by user %s", sender,
	    s->sasl_user);
}

/* ---- recipient and sender tables (reject_unlisted_*) ---- */

/* rewrite_recipient() once per evaluation. */
static int
smtpd_eval_rewrite_rcpt(struct smtpd_eval *ev)
{
	const char *why = NULL;

	if (ev->rcpt_rewrite == -2) {
		ev->rcpt_rewrite = rewrite_recipient(ev->recipient,
		    &ev->rcpt_addrs, &why);
		ev->rcpt_why = xstrdup(why != NULL ? why : "");
	}
	return ev->rcpt_rewrite;
}

/* A reply "CODE D.S.N TEXT" made by another module, as our reject. */
static int
smtpd_eval_reject_line(struct smtpd_eval *ev, const char *line)
{
	char dsn[16];
	const char *text;
	int code = atoi(line);

	if (strlen(line) < 4 || code < 400 || code > 599)
		return smtpd_eval_server_error(ev);
	text = smtpd_access_dsn_split(line + 4, code >= 500 ? "5.0.0" :
	    "4.0.0", dsn, sizeof(dsn));
	return smtpd_eval_reject(ev, code, dsn, "%s", text);
}

/* Postfix's check_rcpt_maps() for a recipient. */
static int
smtpd_eval_rcpt_maps(struct smtpd_eval *ev)
{
	const struct smtpd_access_route *r;
	const char *addr = ev->recipient;
	int rc;

	if (ev->rcptmap_checked)
		return SC_DUNNO;
	if (!ev->warn_if_reject)
		ev->rcptmap_checked = true;
	rc = smtpd_eval_rewrite_rcpt(ev);
	if (rc < 0)
		return smtpd_eval_reject(ev, 451, "4.3.0",
		    "<%s>: Temporary lookup failure", addr);
	if (rc == 0) {
		char *line = rewrite_recipient_reply(addr, 0, ev->rcpt_why);
		int st = smtpd_eval_reject_line(ev, line);

		free(line);
		return st;
	}
	/* An address that a virtual alias (or canonical) table maps is
	 * known (Postfix's check_rcpt_maps() does the same). */
	if (ev->rcpt_addrs != NULL && (ev->rcpt_addrs[1] != NULL ||
	    strcmp(ev->rcpt_addrs[0], addr) != 0))
		return SC_DUNNO;
	r = smtpd_eval_rroute(ev);
	switch (r->cls) {
	case SMTPD_CLASS_LOCAL: {
		char *quoted, *domain, *local;
		int found;

		addr_split(r->addr, &quoted, &domain);
		local = smtpd_access_unquote(quoted);
		/* RFC 5321 §4.5.1; qmgr and bounce take these. */
		if (str_case_eq(local, "postmaster") ||
		    str_case_eq(local, "MAILER-DAEMON") ||
		    str_case_eq(local, cfg_get("double_bounce_sender")))
			found = 1;
		else
			found = smtpd_check_local(ev->s->set->lrm, local,
			    domain);
		free(quoted);
		free(domain);
		free(local);
		if (found < 0)
			return smtpd_eval_reject(ev, 451, "4.3.0",
			    "<%s>: Temporary lookup failure", addr);
		if (found == 0)
			return smtpd_eval_reject(ev, ev->rs->local_rcpt_code,
			    "5.1.1", "<%s>: %s rejected: User unknown in "
			    "local recipient table", addr,
			    SMTPD_CLASS_RECIPIENT);
		return SC_DUNNO;
	}
	case SMTPD_CLASS_VIRTUAL_MAILBOX: {
		char *path = NULL;
		const char *why = NULL;
		uid_t uid;
		gid_t gid;

		if (cfg_get("virtual_mailbox_maps")[0] == '\0')
			return SC_DUNNO;
		rc = rewrite_virtual_mailbox(r->addr, &path, &uid, &gid, &why);
		free(path);
		/* An entry that local cannot use (a uid below
		 * virtual_minimum_uid) makes the address known: local
		 * defers its delivery and says why, as Postfix's virtual
		 * does.  A table we cannot read says nothing. */
		if (rc == REWRITE_VMBOX_NOTFOUND)
			return smtpd_eval_reject(ev, ev->rs->virt_mailbox_code,
			    "5.1.1", "<%s>: %s rejected: User unknown in "
			    "virtual mailbox table", addr,
			    SMTPD_CLASS_RECIPIENT);
		if (rc == REWRITE_VMBOX_TEMPFAIL) {
			log_warning("virtual_mailbox_maps: %s: %s", addr,
			    why != NULL ? why : "lookup failed");
			return smtpd_eval_reject(ev, 451, "4.3.0",
			    "<%s>: Temporary lookup failure", addr);
		}
		return SC_DUNNO;
	}
	case SMTPD_CLASS_RELAY: {
		struct smtpd_access_map *am;
		char *value = NULL;

		if (cfg_get("relay_recipient_maps")[0] == '\0')
			return SC_DUNNO;
		am = smtpd_access_map_new(cfg_get("relay_recipient_maps"));
		rc = smtpd_access_find_mail(am, r->addr, &value);
		free(value);
		smtpd_access_map_free(&am);
		if (rc < 0)
			return smtpd_eval_reject(ev, 451, "4.3.0",
			    "<%s>: Temporary lookup failure", addr);
		if (rc == 0)
			return smtpd_eval_reject(ev, ev->rs->relay_rcpt_code,
			    "5.1.1", "<%s>: %s rejected: User unknown in "
			    "relay recipient table", addr,
			    SMTPD_CLASS_RECIPIENT);
		return SC_DUNNO;
	}
	default:
		return SC_DUNNO;
	}
}

/* reject_unlisted_sender: a sender in our domains must exist. */
static int
smtpd_eval_sender_maps(struct smtpd_eval *ev)
{
	const struct smtpd_access_route *r;
	const char *why = NULL;
	char **addrs = NULL;
	int rc, found = 1;

	if (ev->sender_rcptmap_checked || ev->sender == NULL ||
	    ev->sender[0] == '\0')
		return SC_DUNNO;
	if (!ev->warn_if_reject)
		ev->sender_rcptmap_checked = true;
	rc = rewrite_recipient(ev->sender, &addrs, &why);
	if (rc > 0 && (addrs[1] != NULL || strcmp(addrs[0], ev->sender) != 0))
		rc = 2;
	strv_free(&addrs);
	if (rc < 0)
		return smtpd_eval_reject(ev, 451, "4.3.0",
		    "<%s>: Temporary lookup failure", ev->sender);
	if (rc == 0)
		return smtpd_eval_reject(ev, ev->rs->virt_alias_code, "5.1.0",
		    "<%s>: %s rejected: User unknown in virtual alias table",
		    ev->sender, SMTPD_CLASS_SENDER);
	if (rc == 2)
		return SC_DUNNO;
	r = smtpd_eval_sroute(ev);
	if (r->cls == SMTPD_CLASS_LOCAL) {
		char *quoted, *domain, *local;

		addr_split(r->addr, &quoted, &domain);
		local = smtpd_access_unquote(quoted);
		if (!str_case_eq(local, "postmaster") &&
		    !str_case_eq(local, "MAILER-DAEMON"))
			found = smtpd_check_local(ev->s->set->lrm, local,
			    domain);
		free(quoted);
		free(domain);
		free(local);
		if (found == 0)
			return smtpd_eval_reject(ev, ev->rs->local_rcpt_code,
			    "5.1.0", "<%s>: %s rejected: User unknown in "
			    "local recipient table", ev->sender,
			    SMTPD_CLASS_SENDER);
	} else if (r->cls == SMTPD_CLASS_VIRTUAL_MAILBOX &&
	    cfg_get("virtual_mailbox_maps")[0] != '\0') {
		char *path = NULL;
		uid_t uid;
		gid_t gid;

		found = rewrite_virtual_mailbox(r->addr, &path, &uid, &gid,
		    &why);
		free(path);
		if (found == REWRITE_VMBOX_UNUSABLE)
			found = 1;	/* known, see smtpd_eval_rcpt_maps() */
		if (found == REWRITE_VMBOX_NOTFOUND)
			return smtpd_eval_reject(ev, ev->rs->virt_mailbox_code,
			    "5.1.0", "<%s>: %s rejected: User unknown in "
			    "virtual mailbox table", ev->sender,
			    SMTPD_CLASS_SENDER);
	}
	if (found < 0)
		return smtpd_eval_reject(ev, 451, "4.3.0",
		    "<%s>: Temporary lookup failure", ev->sender);
	return SC_DUNNO;
}

/* ---- server checks: check_*_{mx,ns,a}_access ---- */

/* The name a server check asks DNS about: lower case, no final dot. */
static char *
smtpd_check_server_name(const char *name)
{
	char *t;

	if (name == NULL || name[0] == '\0' || name[0] == '[' ||
	    strcmp(name, "unknown") == 0)
		return NULL;
	t = str_lower(smtpd_check_strip_dot(name));
	if (!smtpd_check_valid_hostname(t)) {
		free(t);
		return NULL;
	}
	return t;
}

/* The domain of an address, for a server check; NULL: nothing to ask. */
static char *
smtpd_check_server_domain(const char *addr)
{
	const char *at;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return NULL;
	return smtpd_check_server_name(at + 1);
}

/* One host or address of a server check: an OK is unavailable. */
static int
smtpd_eval_server_lookup(struct smtpd_eval *ev,
    const struct smtpd_restriction *r, int found, char *value,
    const char *reply_name, const char *reply_class)
{
	struct smtpd_access_action a;

	if (found > 0) {
		smtpd_access_parse(value, &a);
		if (a.verb == SMTPD_ACCESS_OK) {
			log_warning("access table %s: with %s specified, "
			    "action %s is unavailable", r->arg, r->name,
			    value);
			free(value);
			return SC_DUNNO;
		}
	}
	return smtpd_eval_lookup(ev, r, found, value, reply_name,
	    reply_class);
}

static int
smtpd_eval_servers(struct smtpd_eval *ev, const struct smtpd_restriction *r,
    char kind, char *name, const char *reply_name, const char *reply_class)
{
	const struct smtpd_check_entry *e;
	char *key, *value;
	bool failed;
	size_t i;
	int st = SC_DUNNO, found;

	if (name == NULL)
		return SC_DUNNO;
	key = xasprintf("%s %s", kind == SERVERS_MX ? "MX" :
	    kind == SERVERS_NS ? "NS" : "A", name);
	free(name);
	e = smtpd_check_async(ev, ASYNC_SERVERS, key, NULL, &failed);
	free(key);
	if (e == NULL)
		return failed ? SC_DUNNO : SC_PENDING;
	if (e->status != DNS_OK || e->addrs == NULL)
		return SC_DUNNO;
	for (i = 0; e->addrs[i] != NULL && st == SC_DUNNO; i++) {
		const char *line = e->addrs[i];

		value = NULL;
		if (line[0] == 'H') {
			/* _a_access: only the addresses count. */
			if (kind == SERVERS_A)
				continue;
			found = smtpd_access_find_domain(r->map,
			    strchr(line + 2, ' ') + 1, &value);
		} else
			found = smtpd_access_find_ip(r->map, line + 2, &value);
		st = smtpd_eval_server_lookup(ev, r, found, value, reply_name,
		    reply_class);
	}
	return st;
}

/* ---- permit_mx_backup ---- */

static bool
smtpd_check_addr_is_mine(const char *ip)
{
	char *lit = xasprintf(strchr(ip, ':') != NULL ? "[IPv6:%s]" : "[%s]",
	    ip);
	bool mine = addr_domain_is_local(lit);

	free(lit);
	return mine;
}

/*
 * Postfix's permit_mx_backup: a destination of ours, or a domain for
 * which this host is an MX host but not one of the best preference (a
 * primary MX that accepts its own domain's mail only through this rule
 * would loop).  With permit_mx_backup_networks, some address of a
 * primary MX host must be in those networks.
 */
static int
smtpd_eval_mx_backup(struct smtpd_eval *ev)
{
	const struct smtpd_access_route *r = smtpd_eval_rroute(ev);
	const struct smtpd_check_entry *e;
	bool failed, mine = false, primary_mine = false, nets_ok;
	unsigned best = 0, pref = 0;
	const char *at;
	char *key;
	size_t i;

	if (!ev->rs->route.untrusted_routing && r->routed)
		return SC_DUNNO;
	if (smtpd_class_final(r->cls) || r->cls == SMTPD_CLASS_RELAY)
		return SC_OK;
	if (r->domain[0] == '\0' || r->domain[0] == '[' ||
	    !smtpd_check_valid_hostname(r->domain))
		return SC_DUNNO;
	/* A local part with routing operators would be routed again by
	 * the primary: an uncertain destination (user%other@backup). */
	at = strrchr(r->addr, '@');
	if (at != NULL && strcspn(r->addr, "@%!") < (size_t)(at - r->addr))
		return SC_DUNNO;
	key = xasprintf("MX %s", r->domain);
	e = smtpd_check_async(ev, ASYNC_SERVERS, key, NULL, &failed);
	free(key);
	if (e == NULL)
		return failed ? SC_DUNNO : SC_PENDING;
	if (e->status == DNS_TEMPFAIL)
		return smtpd_eval_defer_if(&ev->dip, 450, "4.4.4",
		    "<%s>: %s rejected: Unable to look up mail exchanger "
		    "information", ev->recipient, SMTPD_CLASS_RECIPIENT);
	if (e->status != DNS_OK || e->addrs == NULL || e->addrs[0] == NULL)
		return SC_DUNNO;
	best = (unsigned)strtoul(e->addrs[0] + 2, NULL, 10);
	nets_ok = ev->rs->mx_backup_nets == NULL;
	for (i = 0; e->addrs[i] != NULL; i++) {
		const char *line = e->addrs[i];
		struct netaddr n;

		if (line[0] == 'H') {
			pref = (unsigned)strtoul(line + 2, NULL, 10);
			continue;
		}
		if (smtpd_check_addr_is_mine(line + 2)) {
			mine = true;
			if (pref == best)
				primary_mine = true;
		}
		if (pref == best && !nets_ok &&
		    netaddr_parse_host(line + 2, &n) == 0 &&
		    netaddr_list_match(ev->rs->mx_backup_nets, &n))
			nets_ok = true;
	}
	if (!mine || primary_mine || !nets_ok)
		return SC_DUNNO;
	return SC_OK;
}

/* ---- reject_unverified_recipient / _sender ---- */

/* What verification found out about an address. */
enum smtpd_verify {
	VERIFY_OK,		/* we deliver it */
	VERIFY_BOUNCE,		/* undeliverable: why says so */
	VERIFY_TEMP,		/* a table could not be read */
	VERIFY_REMOTE		/* another host's: not verified */
};

/*
 * The verdict on one address from our own tables, as a probe through
 * our delivery agents would find it (their bounce texts).  *why_r gets a
 * malloc'ed text for VERIFY_BOUNCE and VERIFY_TEMP.
 */
static enum smtpd_verify
smtpd_check_verify_one(struct smtpd_eval *ev, const char *addr, char **why_r)
{
	struct smtpd_access_route r;
	enum smtpd_verify v = VERIFY_REMOTE;
	const char *why = NULL;
	char *path = NULL;
	uid_t uid;
	gid_t gid;
	int rc;

	smtpd_access_resolve(addr, &ev->rs->route, &r);
	switch (r.cls) {
	case SMTPD_CLASS_LOCAL: {
		char *quoted, *domain, *local;

		addr_split(r.addr, &quoted, &domain);
		local = smtpd_access_unquote(quoted);
		if (str_case_eq(local, "postmaster") ||
		    str_case_eq(local, "MAILER-DAEMON"))
			rc = 1;
		else
			rc = smtpd_check_local(ev->s->set->lrm, local, domain);
		if (rc == 0)
			*why_r = xasprintf("unknown user: \"%s\"", local);
		else if (rc < 0)
			*why_r = xstrdup("local recipient lookup failed");
		v = rc > 0 ? VERIFY_OK : rc == 0 ? VERIFY_BOUNCE : VERIFY_TEMP;
		free(quoted);
		free(domain);
		free(local);
		break;
	}
	case SMTPD_CLASS_VIRTUAL_MAILBOX:
		if (cfg_get("virtual_mailbox_maps")[0] == '\0') {
			v = VERIFY_OK;
			break;
		}
		rc = rewrite_virtual_mailbox(r.addr, &path, &uid, &gid, &why);
		free(path);
		if (rc == REWRITE_VMBOX_NOTFOUND) {
			*why_r = xasprintf("unknown user: \"%s\"", r.addr);
			v = VERIFY_BOUNCE;
		} else if (rc == REWRITE_VMBOX_TEMPFAIL) {
			*why_r = xasprintf("virtual mailbox lookup failed: %s",
			    why != NULL ? why : "table unusable");
			v = VERIFY_TEMP;
		} else
			v = VERIFY_OK;	/* an unusable entry defers */
		break;
	case SMTPD_CLASS_VIRTUAL_ALIAS:
		/* Left unexpanded by rewrite_recipient(): no entry. */
		*why_r = xstrdup("User unknown in virtual alias table");
		v = VERIFY_BOUNCE;
		break;
	default:
		break;
	}
	smtpd_access_route_free(&r);
	return v;
}

/*
 * Verify an address: virtual aliases first (an "error:" entry bounces),
 * then every address it expands to.  It is deliverable when one of them
 * is; it bounces when all of them do.
 */
static enum smtpd_verify
smtpd_check_verify(struct smtpd_eval *ev, const char *addr, char **why_r)
{
	enum smtpd_verify v, res = VERIFY_BOUNCE;
	const char *why = NULL;
	char **addrs = NULL, *w;
	size_t i;
	int rc;

	*why_r = NULL;
	rc = rewrite_recipient(addr, &addrs, &why);
	if (rc < 0) {
		*why_r = xstrdup(why != NULL ? why : "lookup failed");
		return VERIFY_TEMP;
	}
	if (rc == 0) {
		/* "550 5.1.1 text": the text. */
		const char *t = why != NULL ? why : "";
		char dsn[16];

		if (strlen(t) > 4 && strspn(t, "0123456789") == 3)
			t += 4;
		t = smtpd_access_dsn_split(t, "5.1.1", dsn, sizeof(dsn));
		while (*t == ' ')
			t++;
		*why_r = xstrdup(*t != '\0' ? t : "undeliverable address");
		return VERIFY_BOUNCE;
	}
	for (i = 0; addrs[i] != NULL; i++) {
		w = NULL;
		v = smtpd_check_verify_one(ev, addrs[i], &w);
		if (v == VERIFY_OK) {
			free(w);
			res = VERIFY_OK;
			break;
		}
		/* Any temporary trouble or remote address outranks a bounce;
		 * the first reason is kept. */
		if (v != VERIFY_BOUNCE && res == VERIFY_BOUNCE) {
			free(*why_r);
			*why_r = w;
			res = v;
			continue;
		}
		if (v == VERIFY_BOUNCE && res == VERIFY_BOUNCE &&
		    *why_r == NULL) {
			*why_r = w;
			continue;
		}
		free(w);
	}
	strv_free(&addrs);
	if (res == VERIFY_OK || res == VERIFY_REMOTE) {
		free(*why_r);
		*why_r = NULL;
	}
	return res;
}

static int
smtpd_eval_unverified(struct smtpd_eval *ev, bool sender)
{
	const struct smtpd_restrictions *rs = ev->rs;
	const char *addr = sender ? ev->sender : ev->recipient;
	const char *cls = sender ? SMTPD_CLASS_SENDER : SMTPD_CLASS_RECIPIENT;
	const char *reason = sender ? rs->unv_sender_reason :
	    rs->unv_rcpt_reason;
	static bool remote_logged;
	enum smtpd_verify v;
	char *why = NULL;
	int st = SC_DUNNO, code;

	if (addr == NULL || addr[0] == '\0')
		return SC_DUNNO;
	v = smtpd_check_verify(ev, addr, &why);
	switch (v) {
	case VERIFY_OK:
		break;
	case VERIFY_REMOTE:
		if (!remote_logged) {
			log_info("reject_unverified_%s: addresses of other "
			    "hosts are not probed; they pass", sender ?
			    "sender" : "recipient");
			remote_logged = true;
		}
		break;
	case VERIFY_BOUNCE:
		code = sender ? rs->unv_sender_code : rs->unv_rcpt_code;
		if (reason[0] != '\0')
			st = smtpd_eval_reject(ev, code, sender ? "5.1.7" :
			    "5.1.1", "<%s>: %s rejected: %s", addr, cls,
			    reason);
		else
			st = smtpd_eval_reject(ev, code, sender ? "5.1.7" :
			    "5.1.1", "<%s>: %s rejected: unverified address: "
			    "%s", addr, cls, why);
		break;
	case VERIFY_TEMP:
		/* Postfix's default unverified_*_tempfail_action. */
		log_warning("address verification of %s: %s", addr, why);
		st = smtpd_eval_defer_if(&ev->dip, sender ?
		    rs->unv_sender_defer : rs->unv_rcpt_defer, "4.1.1",
		    "<%s>: %s rejected: unverified address: Address "
		    "verification in progress", addr, cls);
		break;
	}
	free(why);
	return st;
}

/* ---- the policy request ---- */

static char *
smtpd_eval_policy_request(struct smtpd_eval *ev)
{
	struct smtpd_session *s = ev->s;
	struct smtpd_check_state *cs = smtpd_check_state(s);
	struct smtpd_txn *t = s->txn;
	const char *state = ev->cmd;
	char num[64];
	struct buf b;

	buf_init(&b, 0);
	if (strcmp(state, "BDAT") == 0)
		state = "DATA";
	smtpd_policy_attr(&b, "request", "smtpd_access_policy");
	smtpd_policy_attr(&b, "protocol_state", state);
	smtpd_policy_attr(&b, "protocol_name", s->esmtp ? "ESMTP" : "SMTP");
	smtpd_policy_attr(&b, "client_address", s->addr);
	smtpd_policy_attr(&b, "client_name", s->name);
	snprintf(num, sizeof(num), "%u", s->port);
	smtpd_policy_attr(&b, "client_port", num);
	smtpd_policy_attr(&b, "reverse_client_name", cs->reverse_name != NULL ?
	    cs->reverse_name : s->name);
	smtpd_policy_attr(&b, "server_address", cs->server_addr);
	snprintf(num, sizeof(num), "%u", cs->server_port);
	smtpd_policy_attr(&b, "server_port", num);
	smtpd_policy_attr(&b, "helo_name", ev->helo);
	smtpd_policy_attr(&b, "sender", ev->sender);
	smtpd_policy_attr(&b, "recipient", ev->recipient);
	snprintf(num, sizeof(num), "%zu", t != NULL &&
	    (strcmp(state, "DATA") == 0 ||
	    strcmp(state, "END-OF-MESSAGE") == 0) ? t->rcpt_count : 0);
	smtpd_policy_attr(&b, "recipient_count", num);
	smtpd_policy_attr(&b, "queue_id", t != NULL && t->qid[0] != '\0' ?
	    t->qid : "");
	/* One value per mail transaction: postgrey keys on it.  Before
	 * MAIL is accepted it is the one of the transaction to come. */
	snprintf(num, sizeof(num), "%lx.%llx.%x", (long)getpid(),
	    (unsigned long long)s->id, cs->txn_seq + (t == NULL ? 1 : 0));
	smtpd_policy_attr(&b, "instance", num);
	snprintf(num, sizeof(num), "%llu", t == NULL ? 0ULL :
	    (unsigned long long)(t->msg_size > 0 ? t->msg_size :
	    t->size_declared));
	smtpd_policy_attr(&b, "size", num);
	smtpd_policy_attr(&b, "etrn_domain", "");
	smtpd_policy_attr(&b, "stress", "");
	smtpd_policy_attr(&b, "sasl_method", s->sasl_method);
	smtpd_policy_attr(&b, "sasl_username", s->sasl_user);
	smtpd_policy_attr(&b, "sasl_sender", "");
	smtpd_policy_attr(&b, "ccert_subject", "");
	smtpd_policy_attr(&b, "ccert_issuer", "");
	smtpd_policy_attr(&b, "ccert_fingerprint", "");
	smtpd_policy_attr(&b, "ccert_pubkey_fingerprint", "");
	smtpd_policy_attr(&b, "encryption_protocol", "");
	smtpd_policy_attr(&b, "encryption_cipher", "");
	smtpd_policy_attr(&b, "encryption_keysize", "0");
	smtpd_policy_attr(&b, "policy_context",
	    cfg_get("smtpd_policy_service_policy_context"));
	smtpd_policy_attr(&b, "compatibility_level",
	    cfg_get("compatibility_level"));
	smtpd_policy_attr(&b, "mail_version", PACKAGE_VERSION);
	buf_append_char(&b, '\n');
	return buf_steal(&b);
}

static int
smtpd_eval_policy(struct smtpd_eval *ev, const struct smtpd_restriction *r,
    const char *reply_name, const char *reply_class)
{
	const struct smtpd_check_entry *e;
	char *request = smtpd_eval_policy_request(ev);
	char *key = xasprintf("%s\n%s", r->arg, request);
	bool failed;
	int st;

	free(request);
	e = smtpd_check_async(ev, ASYNC_POLICY, key, r->policy, &failed);
	free(key);
	if (e == NULL && !failed)
		return SC_PENDING;
	st = smtpd_eval_table_result(ev, r->arg, e != NULL && e->status == 0 ?
	    e->text : smtpd_policy_default_action(r->policy), reply_name,
	    reply_class, R_BAD);
	return st;
}

/* ---- one restriction ---- */

static int
smtpd_check_one(struct smtpd_eval *ev, const struct smtpd_restriction *r,
    const char *reply_name, const char *reply_class)
{
	struct smtpd_session *s = ev->s;
	const struct smtpd_restrictions *rs = ev->rs;
	struct smtpd_check_state *cs = smtpd_check_state(s);
	char *value = NULL;
	int found;

	switch (r->type) {
	case R_PERMIT:
		return SC_OK;
	case R_REJECT:
		return smtpd_eval_reject(ev, rs->reject_code, "5.7.1",
		    "<%s>: %s rejected: Access denied", reply_name,
		    reply_class);
	case R_DEFER:
		return smtpd_eval_reject(ev, rs->defer_code, "4.3.2",
		    "<%s>: %s rejected: Try again later", reply_name,
		    reply_class);
	case R_DEFER_IF_PERMIT:
		return smtpd_eval_defer_if(&ev->dip, 450, "4.7.0",
		    "<%s>: %s rejected: defer_if_permit requested",
		    reply_name, reply_class);
	case R_DEFER_IF_REJECT:
		return smtpd_eval_defer_if(&ev->dir, 450, "4.7.0",
		    "<%s>: %s rejected: defer_if_reject requested",
		    reply_name, reply_class);
	case R_WARN_IF_REJECT:
		return SC_DUNNO;	/* handled by the list */
	case R_PERMIT_MYNETWORKS: {
		size_t i;

		if (s->naddr.family == 0)
			return SC_DUNNO;
		if (netaddr_list_match(s->set->mynetworks, &s->naddr))
			return SC_OK;
		/* Tables in mynetworks: the client's address (and its
		 * networks), then its name (and its parent domains), as
		 * access(5) reads them.  Postfix trusts any value; the
		 * tutorials name their access table here ("av.com REJECT"
		 * next to "192.168.1 OK"), so a refusing or DUNNO value
		 * does not trust. */
		for (i = 0; i < rs->nmynet_maps; i++) {
			struct smtpd_access_action a;

			found = smtpd_access_find_ip(rs->mynet_maps[i],
			    s->addr, &value);
			if (found == 0 && strcmp(s->name, "unknown") != 0)
				found = smtpd_access_find_domain(
				    rs->mynet_maps[i], s->name, &value);
			if (found > 0) {
				smtpd_access_parse(value, &a);
				if (a.verb == SMTPD_ACCESS_REJECT ||
				    a.verb == SMTPD_ACCESS_DEFER ||
				    a.verb == SMTPD_ACCESS_CODE ||
				    a.verb == SMTPD_ACCESS_DUNNO ||
				    a.verb == SMTPD_ACCESS_DEFER_IF_PERMIT ||
				    a.verb == SMTPD_ACCESS_DEFER_IF_REJECT ||
				    a.verb == SMTPD_ACCESS_DISCARD)
					found = 0;
			}
			free(value);
			value = NULL;
			if (found > 0)
				return SC_OK;
			if (found < 0)
				return smtpd_eval_reject(ev, 451, "4.3.0",
				    "<%s>: Temporary lookup failure",
				    reply_name);
		}
		return SC_DUNNO;
	}
	case R_PERMIT_SASL:
		return s->sasl_user != NULL ? SC_OK : SC_DUNNO;
	case R_PERMIT_TLS_CERTS:
		/* No client certificates are asked for. */
		return SC_DUNNO;
	case R_REJECT_UNAUTH_DEST:
	case R_DEFER_UNAUTH_DEST:
		if (ev->recipient == NULL ||
		    smtpd_eval_auth_dest(ev) == SC_OK)
			return SC_DUNNO;
		return smtpd_eval_reject(ev, r->type == R_REJECT_UNAUTH_DEST ?
		    rs->relay_code : rs->relay_code - 100,
		    r->type == R_REJECT_UNAUTH_DEST ? "5.7.1" : "4.7.1",
		    "<%s>: Relay access denied", ev->recipient);
	case R_PERMIT_AUTH_DEST:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_auth_dest(ev);
	case R_REJECT_UNAUTH_PIPELINING:
		/* Commands sent ahead of the reply where RFC 2920 does not
		 * allow it: without EHLO, or right after DATA. */
		if (s->in.len > 0 && (!s->esmtp ||
		    strcmp(ev->cmd, "DATA") == 0))
			return smtpd_eval_reject(ev, 503, "5.5.0",
			    "<%s>: %s rejected: Improper use of SMTP command "
			    "pipelining", reply_name, reply_class);
		return SC_DUNNO;
	case R_REJECT_PLAINTEXT:
		if (!s->local && !smtpd_session_tls_active(s))
			return smtpd_eval_reject(ev, rs->plaintext_code,
			    "4.7.1", "Session encryption is required");
		return SC_DUNNO;
	case R_UNKNOWN_SENDER_DOMAIN:
		if (ev->sender == NULL || ev->sender[0] == '\0')
			return SC_DUNNO;
		return smtpd_eval_unknown_address(ev, true);
	case R_UNKNOWN_RCPT_DOMAIN:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_unknown_address(ev, false);
	case R_NON_FQDN_SENDER:
		if (ev->sender_raw == NULL || ev->sender_raw[0] == '\0')
			return SC_DUNNO;
		return smtpd_eval_non_fqdn_address(ev, ev->sender_raw,
		    SMTPD_CLASS_SENDER);
	case R_NON_FQDN_RCPT:
		if (ev->rcpt_raw == NULL)
			return SC_DUNNO;
		return smtpd_eval_non_fqdn_address(ev, ev->rcpt_raw,
		    SMTPD_CLASS_RECIPIENT);
	case R_NON_FQDN_HELO:
		if (ev->helo == NULL)
			return SC_DUNNO;
		if (ev->helo[0] == '[')
			return smtpd_eval_invalid_hostaddr(ev, ev->helo,
			    ev->helo, CLASS_HELO);
		return smtpd_eval_non_fqdn_hostname(ev, ev->helo);
	case R_INVALID_HELO:
		if (ev->helo == NULL)
			return SC_DUNNO;
		if (ev->helo[0] == '[')
			return smtpd_eval_invalid_hostaddr(ev, ev->helo,
			    ev->helo, CLASS_HELO);
		return smtpd_eval_invalid_hostname(ev, ev->helo);
	case R_UNKNOWN_HELO:
		if (ev->helo == NULL)
			return SC_DUNNO;
		if (ev->helo[0] == '[')
			return smtpd_eval_invalid_hostaddr(ev, ev->helo,
			    ev->helo, CLASS_HELO);
		return smtpd_eval_unknown_helo(ev, ev->helo);
	case R_UNKNOWN_CLIENT:
		/* RFC 7372: 4.7.25 */
		if (!s->local && cs->name_status != PEER_OK)
			return smtpd_eval_reject(ev,
			    cs->name_status == PEER_PERM ? rs->unk_client_code :
			    450, "4.7.25", "Client host rejected: cannot find "
			    "your hostname, [%s]", s->addr);
		return SC_DUNNO;
	case R_UNKNOWN_REVERSE_CLIENT:
		if (!s->local && cs->reverse_status != PEER_OK)
			return smtpd_eval_reject(ev,
			    cs->reverse_status == PEER_PERM ?
			    rs->unk_client_code : 450, "4.7.1",
			    "Client host rejected: cannot find your reverse "
			    "hostname, [%s]", s->addr);
		return SC_DUNNO;
	case R_UNLISTED_RCPT:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_rcpt_maps(ev);
	case R_UNLISTED_SENDER:
		return smtpd_eval_sender_maps(ev);
	case R_MULTI_RCPT_BOUNCE: {
		size_t n = s->txn != NULL ? s->txn->rcpt_accepted : 0;

		if (ev->sender != NULL && ev->sender[0] == '\0' &&
		    n > (strcmp(ev->cmd, "RCPT") != 0 ? 1u : 0u))
			return smtpd_eval_reject(ev, rs->mul_rcpt_code,
			    "5.5.3", "<%s>: %s rejected: Multi-recipient "
			    "bounce", reply_name, reply_class);
		return SC_DUNNO;
	}
	case R_RBL_CLIENT:
		return smtpd_eval_rbl_client(ev, r->arg);
	case R_RHSBL_CLIENT:
		if (strcmp(s->name, "unknown") == 0 || s->local)
			return SC_DUNNO;
		return smtpd_eval_rhsbl(ev, r->arg, s->name, CLASS_CLIENT);
	case R_RHSBL_REVERSE_CLIENT:
		if (cs->reverse_name == NULL ||
		    strcmp(cs->reverse_name, "unknown") == 0)
			return SC_DUNNO;
		return smtpd_eval_rhsbl(ev, r->arg, cs->reverse_name,
		    CLASS_REV_CLIENT);
	case R_RHSBL_HELO:
		if (ev->helo == NULL)
			return SC_DUNNO;
		return smtpd_eval_rhsbl(ev, r->arg, ev->helo, CLASS_HELO);
	case R_RHSBL_SENDER:
		if (ev->sender == NULL || ev->sender[0] == '\0')
			return SC_DUNNO;
		return smtpd_eval_rhsbl(ev, r->arg, ev->sender,
		    SMTPD_CLASS_SENDER);
	case R_RHSBL_RCPT:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_rhsbl(ev, r->arg, ev->recipient,
		    SMTPD_CLASS_RECIPIENT);
	case R_CHECK_CLIENT:
		if (s->local)
			return SC_DUNNO;
		smtpd_access_map_tag(r->map, "connect");
		found = smtpd_access_find_host(r->map, s->name,
		    s->naddr.family != 0 ? s->addr : NULL, &value);
		smtpd_access_map_tag(r->map, NULL);
		return smtpd_eval_lookup(ev, r, found, value, ev->namaddr,
		    CLASS_CLIENT);
	case R_CHECK_REVERSE_CLIENT:
		if (s->local)
			return SC_DUNNO;
		smtpd_access_map_tag(r->map, "connect");
		found = smtpd_access_find_host(r->map, cs->reverse_name,
		    s->naddr.family != 0 ? s->addr : NULL, &value);
		smtpd_access_map_tag(r->map, NULL);
		return smtpd_eval_lookup(ev, r, found, value,
		    cs->reverse_name != NULL ? cs->reverse_name : "unknown",
		    CLASS_REV_CLIENT);
	case R_CHECK_HELO:
		if (ev->helo == NULL)
			return SC_DUNNO;
		found = smtpd_access_find_domain(r->map, ev->helo, &value);
		return smtpd_eval_lookup(ev, r, found, value, ev->helo,
		    CLASS_HELO);
	case R_CHECK_SENDER:
		if (ev->sender == NULL)
			return SC_DUNNO;
		smtpd_access_map_tag(r->map, "from");
		if (ev->sender[0] == '\0')
			found = smtpd_access_find(r->map, rs->null_key, &value);
		else
			found = smtpd_access_find_mail(r->map,
			    smtpd_eval_sroute(ev)->addr, &value);
		smtpd_access_map_tag(r->map, NULL);
		return smtpd_eval_lookup(ev, r, found, value, ev->sender,
		    SMTPD_CLASS_SENDER);
	case R_CHECK_RCPT: {
		int st;

		if (ev->recipient == NULL)
			return SC_DUNNO;
		smtpd_access_map_tag(r->map, "to");
		found = smtpd_access_find_mail(r->map,
		    smtpd_eval_rroute(ev)->addr, &value);
		smtpd_access_map_tag(r->map, NULL);
		st = smtpd_eval_lookup(ev, r, found, value, ev->recipient,
		    SMTPD_CLASS_RECIPIENT);
		/* A routed recipient is too suspicious for an OK. */
		if (st == SC_OK && !rs->route.untrusted_routing &&
		    smtpd_eval_rroute(ev)->routed && !ev->discard)
			st = SC_DUNNO;
		return st;
	}
	case R_POLICY:
		return smtpd_eval_policy(ev, r, reply_name, reply_class);
	case R_LOGIN_MISMATCH:
		return smtpd_eval_login(ev, true, false, true);
	case R_AUTH_LOGIN_MISMATCH:
		return smtpd_eval_login(ev, true, false, false);
	case R_UNAUTH_LOGIN_MISMATCH:
		return smtpd_eval_login(ev, false, false, true);
	case R_KNOWN_LOGIN_MISMATCH:
		return smtpd_eval_login(ev, true, true, true);
	case R_CLASS: {
		const struct smtpd_rclass *c = smtpd_check_class_find(rs,
		    r->arg);

		if (c == NULL)
			return smtpd_eval_server_error(ev);
		if (ev->recursion > SMTPD_CHECK_MAX_RECURSION) {
			log_warning("restriction class %s causes unreasonable "
			    "recursion", r->arg);
			return smtpd_eval_server_error(ev);
		}
		return smtpd_check_list(ev, &c->list, reply_name, reply_class,
		    R_BAD);
	}
	case R_PERMIT_MX_BACKUP:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_mx_backup(ev);
	case R_UNVERIFIED_RCPT:
		return smtpd_eval_unverified(ev, false);
	case R_UNVERIFIED_SENDER:
		return smtpd_eval_unverified(ev, true);
	case R_CLIENT_MX:
	case R_CLIENT_NS:
	case R_CLIENT_A:
		if (s->local)
			return SC_DUNNO;
		return smtpd_eval_servers(ev, r, r->type == R_CLIENT_MX ?
		    SERVERS_MX : r->type == R_CLIENT_NS ? SERVERS_NS :
		    SERVERS_A, smtpd_check_server_name(s->name), ev->namaddr,
		    CLASS_CLIENT);
	case R_REV_CLIENT_A:
		if (s->local)
			return SC_DUNNO;
		return smtpd_eval_servers(ev, r, SERVERS_A,
		    smtpd_check_server_name(cs->reverse_name),
		    cs->reverse_name != NULL ? cs->reverse_name : "unknown",
		    CLASS_REV_CLIENT);
	case R_HELO_MX:
	case R_HELO_NS:
	case R_HELO_A:
		if (ev->helo == NULL)
			return SC_DUNNO;
		return smtpd_eval_servers(ev, r, r->type == R_HELO_MX ?
		    SERVERS_MX : r->type == R_HELO_NS ? SERVERS_NS :
		    SERVERS_A, smtpd_check_server_name(ev->helo), ev->helo,
		    CLASS_HELO);
	case R_SENDER_MX:
	case R_SENDER_NS:
	case R_SENDER_A:
		if (ev->sender == NULL || ev->sender[0] == '\0')
			return SC_DUNNO;
		return smtpd_eval_servers(ev, r, r->type == R_SENDER_MX ?
		    SERVERS_MX : r->type == R_SENDER_NS ? SERVERS_NS :
		    SERVERS_A, smtpd_check_server_domain(ev->sender),
		    ev->sender, SMTPD_CLASS_SENDER);
	case R_RCPT_MX:
	case R_RCPT_NS:
	case R_RCPT_A:
		if (ev->recipient == NULL)
			return SC_DUNNO;
		return smtpd_eval_servers(ev, r, r->type == R_RCPT_MX ?
		    SERVERS_MX : r->type == R_RCPT_NS ? SERVERS_NS :
		    SERVERS_A, smtpd_check_server_domain(ev->recipient),
		    ev->recipient, SMTPD_CLASS_RECIPIENT);
	case R_BAD:
		log_warning("unknown smtpd restriction: \"%s\"", r->name);
		return smtpd_eval_server_error(ev);
	}
	return SC_DUNNO;
}

/* Postfix's generic_checks(). */
static int
smtpd_check_list(struct smtpd_eval *ev, const struct smtpd_rlist *l,
    const char *reply_name, const char *reply_class,
    enum smtpd_rtype def_acl)
{
	int saved = ev->recursion++;
	int status = SC_DUNNO;
	size_t i;

	(void)def_acl;
	for (i = 0; i < l->n; i++) {
		const struct smtpd_restriction *r = &l->r[i];

		if (ev->discard)
			break;
		if (r->type == R_WARN_IF_REJECT) {
			if (ev->warn_if_reject == 0)
				ev->warn_if_reject = ev->recursion;
			continue;
		}
		status = smtpd_check_one(ev, r, reply_name, reply_class);
		if (status == SC_PENDING)
			break;
		if (ev->warn_if_reject >= ev->recursion)
			ev->warn_if_reject = 0;
		if (status != SC_DUNNO)
			break;
		if (ev->dip.active && ev->dir.active)
			break;
	}
	ev->recursion = saved;
	if (ev->warn_if_reject > ev->recursion)
		ev->warn_if_reject = 0;
	return status;
}

/* Postfix's SMTPD_CHECK_RESET() between protocol stages. */
static void
smtpd_eval_stage(struct smtpd_eval *ev)
{
	ev->recursion = 0;
	ev->warn_if_reject = 0;
	smtpd_check_defer_clear(&ev->dir);
}

/*
 * An evaluation ends.  Pending: nothing happened (it runs again).
 * Otherwise the queued log lines are written and per-command answers
 * dropped.  Returns 1 pending, 0 accepted, -1 rejected with *reply_r.
 */
static int
smtpd_eval_finish(struct smtpd_eval *ev, int status, char **reply_r)
{
	size_t i;

	if (reply_r != NULL)
		*reply_r = NULL;
	if (status == SC_PENDING)
		return 1;
	for (i = 0; i < ev->nlogs; i++)
		log_info("%s", ev->logs[i]);
	smtpd_check_command_done(ev->s);
	if (status == SC_REJECT) {
		if (reply_r != NULL) {
			*reply_r = ev->reply;
			ev->reply = NULL;
		}
		return -1;
	}
	return 0;
}

/* Keep the stage's defer_if_permit for the next stages (delay = no). */
static void
smtpd_eval_keep_dip(struct smtpd_eval *ev)
{
	struct smtpd_check_state *cs = smtpd_check_state(ev->s);

	smtpd_check_defer_clear(&cs->dip_prev);
	if (ev->dip.active) {
		cs->dip_prev.active = true;
		cs->dip_prev.reply = xstrdup(ev->dip.reply);
	}
}

static void
smtpd_eval_take_dip(struct smtpd_eval *ev)
{
	struct smtpd_check_state *cs = smtpd_check_state(ev->s);

	smtpd_check_defer_clear(&ev->dip);
	if (cs->dip_prev.active) {
		ev->dip.active = true;
		ev->dip.reply = xstrdup(cs->dip_prev.reply);
	}
}

/* The client, HELO and sender stages; SC_REJECT or SC_PENDING end it. */
static int
smtpd_eval_early(struct smtpd_eval *ev, bool client, bool helo, bool sender)
{
	const struct smtpd_restrictions *rs = ev->rs;
	int st = SC_DUNNO;

	if (client && rs->client.n > 0) {
		smtpd_eval_stage(ev);
		st = smtpd_check_list(ev, &rs->client, ev->namaddr,
		    CLASS_CLIENT, R_CHECK_CLIENT);
		if (st == SC_REJECT || st == SC_PENDING)
			return st;
	}
	if (helo && ev->helo != NULL && rs->helo.n > 0) {
		smtpd_eval_stage(ev);
		st = smtpd_check_list(ev, &rs->helo, ev->helo, CLASS_HELO,
		    R_CHECK_HELO);
		if (st == SC_REJECT || st == SC_PENDING)
			return st;
	}
	if (sender && ev->sender != NULL) {
		smtpd_eval_stage(ev);
		if (rs->sender.n > 0)
			st = smtpd_check_list(ev, &rs->sender, ev->sender,
			    SMTPD_CLASS_SENDER, R_CHECK_SENDER);
		if (st == SC_REJECT || st == SC_PENDING)
			return st;
		if (rs->reject_unlisted_sender && !ev->discard)
			st = smtpd_eval_sender_maps(ev);
		if (st == SC_REJECT || st == SC_PENDING)
			return st;
	}
	return SC_DUNNO;
}

/* ---- connect ---- */

static void
smtpd_check_local_addr(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = smtpd_check_state(s);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	cs->server_addr = xstrdup("");
	if (s->local || getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		cs->server_port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		cs->server_port = ntohs(in6->sin6_port);
	} else
		return;
	free(cs->server_addr);
	cs->server_addr = xstrdup(host);
}

/* 127.0.0.1 and ::1 are "localhost" without asking the DNS. */
static bool
smtpd_check_is_localhost(const struct smtpd_session *s)
{
	return strcmp(s->addr, "127.0.0.1") == 0 || strcmp(s->addr, "::1") == 0;
}

/*
 * The client's name, then (smtpd_delay_reject = no) the client
 * restrictions.  true: parked, a lookup is under way.
 */
static bool
smtpd_check_connect_step(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = smtpd_check_state(s);
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_eval ev;
	char *reply = NULL;
	int st;

	cs->resume = RESUME_CONNECT;
	if (!cs->name_done) {
		struct smtpd_check_job *job;

		job = xcalloc(1, sizeof(*job));
		job->s = s;
		job->set = s->set;
		s->set->refcount++;
		job->kind = ASYNC_PTR;
		job->key = xstrdup(s->addr);
		/* From the text form: an IPv4-mapped client is the IPv4
		 * client it is (smtpd_session.c shows it so). */
		if (inet_pton(AF_INET, s->addr,
		    &((struct sockaddr_in *)&job->ss)->sin_addr) == 1)
			job->ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, s->addr,
		    &((struct sockaddr_in6 *)&job->ss)->sin6_addr) == 1)
			job->ss.ss_family = AF_INET6;
		cs->job = job;
		smtpd_session_enter_state(s, SMTPD_STATE_CHECK);
		if (smtpd_check_dns_pool == NULL)
			smtpd_check_dns_pool = workpool_new("smtpd dns",
			    SMTPD_CHECK_DNS_THREADS);
		workpool_submit(smtpd_check_dns_pool, smtpd_check_work,
		    smtpd_check_job_done, job);
		return true;
	}
	if (s->set->delay_reject || s->local || rs->client.n == 0) {
		cs->resume = RESUME_CMD;
		return false;
	}
	smtpd_eval_init(&ev, s, "CONNECT");
	ev.no_actions = true;
	st = smtpd_eval_early(&ev, true, false, false);
	if (st != SC_PENDING)
		smtpd_eval_keep_dip(&ev);
	st = smtpd_eval_finish(&ev, st, &reply);
	smtpd_eval_free(&ev);
	if (st > 0)
		return true;
	cs->resume = RESUME_CMD;
	cs->denied = reply;
	return false;
}

bool
smtpd_check_connect(struct smtpd_session *s)
{
	struct smtpd_check_state *cs = smtpd_check_state(s);
	const struct smtpd_restrictions *rs = s->set->restrictions;

	smtpd_check_local_addr(s);
	cs->name_status = cs->reverse_status = PEER_OK;
	cs->name_done = true;
	if (!s->local && s->naddr.family != 0 && !smtpd_check_is_localhost(s)) {
		if (rs->peername_lookup)
			cs->name_done = false;
		else if (strcmp(s->name, "localhost") != 0) {
			/* Postfix: without the lookup every name is
			 * unknown, and permanently so. */
			cs->name_status = cs->reverse_status = PEER_PERM;
		}
	} else if (!s->local && s->naddr.family == 0)
		cs->name_status = cs->reverse_status = PEER_PERM;
	cs->reverse_name = xstrdup(s->name);
	return smtpd_check_connect_step(s);
}

/* ---- commands ---- */

int
smtpd_check_helo(struct smtpd_session *s, const char *cmd, const char *helo,
    char **reply_r)
{
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_eval ev;
	int st = SC_DUNNO;

	*reply_r = NULL;
	if (s->set->delay_reject || s->local || rs->helo.n == 0)
		return 0;
	smtpd_eval_init(&ev, s, cmd);
	ev.helo = helo;
	ev.sender = NULL;
	ev.no_actions = true;
	smtpd_eval_take_dip(&ev);
	st = smtpd_eval_early(&ev, false, true, false);
	if (st != SC_PENDING && st != SC_REJECT)
		smtpd_eval_keep_dip(&ev);
	st = smtpd_eval_finish(&ev, st, reply_r);
	smtpd_eval_free(&ev);
	return st;
}

int
smtpd_check_mail(struct smtpd_session *s, const char *sender,
    char **reply_r)
{
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_eval ev;
	int st;

	*reply_r = NULL;
	if (s->set->delay_reject || s->local)
		return 0;
	if (rs->sender.n == 0 && !rs->reject_unlisted_sender)
		return 0;
	smtpd_eval_init(&ev, s, "MAIL");
	ev.sender = ev.sender_raw = sender;
	smtpd_eval_take_dip(&ev);
	st = smtpd_eval_early(&ev, false, false, true);
	if (st != SC_PENDING && st != SC_REJECT)
		smtpd_eval_keep_dip(&ev);
	st = smtpd_eval_finish(&ev, st, reply_r);
	if (st == 0) {
		/* For the transaction MAIL is about to create. */
		struct smtpd_check_state *cs = smtpd_check_state(s);

		cs->mail_discard = ev.discard;
		cs->mail_hold = ev.hold;
		strv_free(&cs->mail_prepend);
		cs->mail_prepend = ev.prepend;
		ev.prepend = NULL;
	}
	smtpd_eval_free(&ev);
	return st;
}

int
smtpd_check_rcpt(struct smtpd_session *s, const char *cmd, const char *addr,
    const char *raw, bool bare, char ***addrs_r, char **reply_r)
{
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_txn *t = s->txn;
	struct smtpd_eval ev;
	int st = SC_DUNNO, ret;

	*reply_r = NULL;
	if (addrs_r != NULL)
		*addrs_r = NULL;
	smtpd_eval_init(&ev, s, cmd);
	ev.recipient = addr;
	ev.rcpt_raw = raw;
	if (!bare && !s->local) {
		if (s->set->delay_reject)
			st = smtpd_eval_early(&ev, true, true, true);
		else
			smtpd_eval_take_dip(&ev);
		if (st != SC_REJECT && st != SC_PENDING) {
			smtpd_eval_stage(&ev);
			st = smtpd_check_list(&ev, &rs->relay, addr,
			    SMTPD_CLASS_RECIPIENT, R_CHECK_RCPT);
			if (st != SC_REJECT && st != SC_PENDING)
				st = smtpd_check_list(&ev, &rs->recipient,
				    addr, SMTPD_CLASS_RECIPIENT, R_CHECK_RCPT);
			if (st != SC_REJECT && st != SC_PENDING &&
			    !rs->relay_safe)
				st = smtpd_eval_server_error(&ev);
		}
		st = smtpd_eval_apply_dip(&ev, st);
		if (st != SC_REJECT && st != SC_PENDING &&
		    rs->reject_unlisted_rcpt && !ev.discard)
			st = smtpd_eval_rcpt_maps(&ev);
	} else if (s->local && !bare)
		st = smtpd_eval_rcpt_maps(&ev);
	/* The final recipients: the virtual alias expansion (an address
	 * without a table entry is itself). */
	if (st != SC_REJECT && st != SC_PENDING) {
		int rc = smtpd_eval_rewrite_rcpt(&ev);

		if (rc < 0)
			st = smtpd_eval_reject(&ev, 451, "4.3.0",
			    "<%s>: Temporary lookup failure", addr);
		else if (rc == 0 && !ev.discard && !bare) {
			char *line = rewrite_recipient_reply(addr, 0,
			    ev.rcpt_why);

			st = smtpd_eval_reject_line(&ev, line);
			free(line);
		}
	}
	ret = smtpd_eval_finish(&ev, st, reply_r);
	if (ret == 0) {
		if (t != NULL && strcmp(cmd, "RCPT") == 0)
			smtpd_check_txn_actions(t, ev.discard, ev.hold,
			    &ev.prepend);
		if (addrs_r != NULL) {
			if (ev.rcpt_rewrite > 0 && ev.rcpt_addrs != NULL) {
				*addrs_r = ev.rcpt_addrs;
				ev.rcpt_addrs = NULL;
			} else {
				*addrs_r = xcalloc(2, sizeof(char *));
				(*addrs_r)[0] = xstrdup(addr);
			}
		}
	}
	smtpd_eval_free(&ev);
	return ret;
}

int
smtpd_check_data(struct smtpd_session *s, const char *cmd, char **reply_r)
{
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_eval ev;
	int st;

	*reply_r = NULL;
	if (s->local || rs->data.n == 0)
		return 0;
	smtpd_eval_init(&ev, s, cmd);
	/* One recipient is logged; several are not (Postfix). */
	if (s->txn != NULL && s->txn->rcpt_accepted == 1)
		ev.recipient = s->txn->last_rcpt;
	ev.no_actions = false;
	st = smtpd_check_list(&ev, &rs->data, "DATA", CLASS_DATA, R_BAD);
	st = smtpd_eval_apply_dip(&ev, st);
	st = smtpd_eval_finish(&ev, st, reply_r);
	if (st == 0 && s->txn != NULL)
		smtpd_check_txn_actions(s->txn, ev.discard, ev.hold,
		    &ev.prepend);
	smtpd_eval_free(&ev);
	return st;
}

/* ---- end of data ---- */

/*
 * The end-of-data checks, then the message's fate: 0 commit as usual
 * (smtpd_data_accept), 1 done here (refused, discarded) or parked.
 */
static int
smtpd_check_eod_run(struct smtpd_session *s)
{
	const struct smtpd_restrictions *rs = s->set->restrictions;
	struct smtpd_txn *t = s->txn;
	struct smtpd_eval ev;
	enum smtpd_stat stat = t->bdat ? SMTPD_STAT_BDAT : SMTPD_STAT_DATA;
	char *reply = NULL;
	int st = SC_DUNNO;

	if (!s->local && rs->eod.n > 0 && !t->discard) {
		smtpd_eval_init(&ev, s, "END-OF-MESSAGE");
		ev.qid = t->qid;
		ev.eod = true;
		if (t->rcpt_accepted == 1)
			ev.recipient = t->last_rcpt;
		st = smtpd_check_list(&ev, &rs->eod, "END-OF-MESSAGE",
		    CLASS_EOD, R_BAD);
		st = smtpd_eval_apply_dip(&ev, st);
		st = smtpd_eval_finish(&ev, st, &reply);
		if (st == 0) {
			t->discard |= ev.discard;
			t->hold |= ev.hold;
		}
		smtpd_eval_free(&ev);
		if (st > 0) {
			smtpd_check_state(s)->resume = RESUME_EOD;
			return 1;
		}
		if (st < 0) {
			smtpd_session_enter_state(s, SMTPD_STATE_CMD);
			smtpd_session_count_stat(s, stat, false);
			smtpd_session_reply(s, "%s", reply);
			free(reply);
			smtpd_txn_free(&s->txn);
			s->phase = s->helo != NULL ? SMTPD_PHASE_HELO :
			    SMTPD_PHASE_INIT;
			return 1;
		}
	}
	if (t->discard) {
		/* Accept and drop: the client is told it was queued. */
		log_info("%s: discarded (DISCARD action)", t->qid);
		smtpd_session_enter_state(s, SMTPD_STATE_CMD);
		smtpd_session_count_stat(s, stat, true);
		smtpd_session_reply(s, "250 2.0.0 Ok: queued as %s", t->qid);
		smtpd_txn_free(&s->txn);	/* removes tmp/ID */
		s->phase = s->helo != NULL ? SMTPD_PHASE_HELO :
		    SMTPD_PHASE_INIT;
		return 1;
	}
	if (t->hold) {
		/* Into hold/: no delivery until "postern queue release". */
		queue_writer_set_dir(t->qw, "hold");
		log_info("%s: placed on hold (HOLD action)", t->qid);
		t->removed = true;	/* nothing for qmgr yet */
		t->from_logged = true;
	}
	return 0;
}

static void
smtpd_check_eod_step(struct smtpd_session *s)
{
	int r;

	r = smtpd_check_eod_run(s);
	if (r == 0)
		smtpd_data_accept(s);
}

int
smtpd_check_eod(struct smtpd_session *s)
{
	return smtpd_check_eod_run(s);
}
