/*
 * cfg_params: every parameter postern.conf knows, with its type, default
 * and range (see cfg_params.h).  Defaults are Postfix's (or Dovecot's for
 * Dovecot names) unless a comment says otherwise.  The order here is for
 * reading; lookups go through a sorted index built by cfg_param_find().
 *
 * Components add their own parameters in the marked sections at the end.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_params.h"
#include "xmalloc.h"

#define P(n, t, d, w, lo, hi, f)	{ n, t, d, NULL, w, lo, hi, f }
#define P_STR(n, d)		P(n, CFG_T_STRING, d, NULL, 0, 0, 0)
#define P_RAW(n, d)		P(n, CFG_T_STRING, d, NULL, 0, 0, CFG_F_RAW)
#define P_LIST(n, d)		P(n, CFG_T_LIST, d, NULL, 0, 0, 0)
#define P_INT(n, d, lo, hi)	P(n, CFG_T_INT, d, NULL, lo, hi, 0)
#define P_SIZE(n, d)		P(n, CFG_T_SIZE, d, NULL, 0, SIZE_CEIL, 0)
#define P_TIME(n, d)		P(n, CFG_T_TIME, d, NULL, 0, TIME_CEIL, 0)
#define P_BOOL(n, d)		P(n, CFG_T_BOOL, d, NULL, 0, 0, 0)
#define P_ENUM(n, d, w)		P(n, CFG_T_ENUM, d, w, 0, 0, 0)
#define P_MULTI(n, d, w)	P(n, CFG_T_ENUM, d, w, 0, 0, CFG_F_MULTI)
#define P_LISTEN(n, d)		P(n, CFG_T_LISTEN, d, NULL, 0, 0, 0)
#define P_MAPS(n, d)		P(n, CFG_T_MAPS, d, NULL, 0, 0, 0)
#define P_DOMAINS(n, d)		P(n, CFG_T_DOMAINS, d, NULL, 0, 0, CFG_F_FILES)
#define P_COMPUTED(n, t, fn, f)	{ n, t, NULL, fn, NULL, 0, 0, f }
/* Dovecot names: quotes around the value are removed. */
#define D_STR(n, d)	P(n, CFG_T_STRING, d, NULL, 0, 0, CFG_F_DOVECOT)
#define D_PATH(n, d)	P(n, CFG_T_STRING, d, NULL, 0, 0, \
			    CFG_F_DOVECOT | CFG_F_LTPATH)
#define D_INT(n, d, lo, hi) P(n, CFG_T_INT, d, NULL, lo, hi, CFG_F_DOVECOT)
#define D_TIME(n, d)	P(n, CFG_T_TIME, d, NULL, 0, TIME_CEIL, CFG_F_DOVECOT)
#define D_BOOL(n, d)	P(n, CFG_T_BOOL, d, NULL, 0, 0, CFG_F_DOVECOT)
#define D_ENUM(n, d, w)	P(n, CFG_T_ENUM, d, w, 0, 0, CFG_F_DOVECOT)
#define D_MULTI(n, d, w) P(n, CFG_T_ENUM, d, w, 0, 0, \
			    CFG_F_DOVECOT | CFG_F_MULTI)

/* 1 TiB and 10 years: larger sizes and times are typing errors. */
#define SIZE_CEIL	(1LL << 40)
#define TIME_CEIL	(10LL * 366 * 86400)

#define REWRITE_CLASSES	\
	"envelope_sender|envelope_recipient|header_sender|header_recipient"

#define TLS_CIPHERS	"export|low|medium|high|null"

#define SASL_OPTIONS \
	"noanonymous|noplaintext|noactive|nodictionary|mutual_auth|" \
	"forward_secrecy"

const struct cfg_param cfg_params[] = {
	/* ---- core: names, destinations, networks ---- */
	P_COMPUTED("myhostname", CFG_T_STRING, cfg_default_myhostname, 0),
	P_COMPUTED("mydomain", CFG_T_STRING, cfg_default_mydomain, 0),
	P_STR("myorigin", "$myhostname"),
	P_DOMAINS("mydestination",
	    "$myhostname, localhost.$mydomain, localhost"),
	P_LIST("inet_interfaces", "all"),
	P_MULTI("inet_protocols", "all", "all|ipv4|ipv6"),
	/* Empty: netaddr_mynetworks() derives it from mynetworks_style. */
	P("mynetworks", CFG_T_NETWORKS, "", NULL, 0, 0, CFG_F_FILES),
	P_ENUM("mynetworks_style", "host", "host|subnet|class"),
	P_DOMAINS("relay_domains", ""),
	P_STR("relayhost", ""),
	P_LIST("proxy_interfaces", ""),

	/* ---- mailboxes and aliases ---- */
	P_STR("home_mailbox", ""),
	P_STR("mail_spool_directory", "/var/mail"),
	/* One store setting for delivery and reading (DESIGN §1). */
	P_COMPUTED("mail_location", CFG_T_MAILLOC,
	    cfg_default_mail_location, CFG_F_DOVECOT),
	P_MAPS("alias_maps", "hash:/etc/aliases"),
	P_MAPS("alias_database", "hash:/etc/aliases"),
	P_SIZE("message_size_limit", "10240000"),
	P_SIZE("mailbox_size_limit", "51200000"),
	P_STR("always_bcc", ""),
	P_MAPS("sender_bcc_maps", ""),
	P_MAPS("recipient_bcc_maps", ""),
	P_STR("recipient_delimiter", ""),
	P_SIZE("virtual_mailbox_limit", "51200000"),

	/* ---- identity, directories, users ---- */
	P_STR("mail_name", "Postern"),
	P_STR("smtpd_banner", "$myhostname ESMTP $mail_name"),
	P_STR("queue_directory", "/var/spool/postern"),
	P_STR("data_directory", "/var/lib/postern"),
	P_STR("daemon_directory", PKGLIBEXECDIR),
	P_STR("run_user", "postern"),
	P_STR("mail_owner", "$run_user"),
	P("passdb", CFG_T_PASSDB, "pam", NULL, 0, 0, 0),
	P("userdb", CFG_T_USERDB, "passwd", NULL, 0, 0, 0),
	P_STR("default_privs", "nobody"),

	/* ---- listeners (DESIGN §1): empty disables the service ---- */
	P_LISTEN("smtp_listen", "25"),
	P_LISTEN("submission_listen", "587"),
	P_LISTEN("smtps_listen", "465"),
	P_LISTEN("pop3_listen", "110"),
	P_LISTEN("pop3s_listen", "995"),
	P_LISTEN("imap_listen", "143"),
	P_LISTEN("imaps_listen", "993"),

	/* ---- smtpd ---- */
	P_INT("smtpd_recipient_limit", "1000", 1, INT_MAX),
	P_INT("smtpd_hard_error_limit", "20", 1, INT_MAX),
	P_INT("smtpd_soft_error_limit", "10", 1, INT_MAX),
	P_TIME("smtpd_error_sleep_time", "1s"),
	P_TIME("smtpd_timeout", "300s"),
	P_BOOL("disable_vrfy_command", "yes"),
	P_BOOL("smtputf8_enable", "yes"),
	P_BOOL("smtpd_peername_lookup", "yes"),
	P_INT("smtpd_client_connection_count_limit", "50", 0, INT_MAX),
	P_BOOL("smtpd_helo_required", "no"),
	P_BOOL("strict_rfc821_envelopes", "no"),
	P_MAPS("local_recipient_maps", "proxy:unix:passwd.byname $alias_maps"),
	P_INT("unknown_local_recipient_reject_code", "550", 400, 599),
	P_TIME("in_flow_delay", "1s"),
	P_LIST("smtpd_relay_restrictions", "permit_mynetworks, "
	    "permit_sasl_authenticated, defer_unauth_destination"),
	P_LIST("smtpd_recipient_restrictions", ""),
	P_LIST("smtpd_client_restrictions", ""),
	P_LIST("smtpd_helo_restrictions", ""),
	P_LIST("smtpd_sender_restrictions", ""),
	P_LIST("smtpd_data_restrictions", ""),
	P_BOOL("smtpd_delay_reject", "yes"),
	P_MAPS("header_checks", ""),
	P_MAPS("body_checks", ""),
	P_INT("smtpd_process_limit", "100", 1, INT_MAX),
	P_BOOL("smtpd_reject_unlisted_recipient", "yes"),
	P_SIZE("header_size_limit", "102400"),
	P_INT("line_length_limit", "2048", 1, INT_MAX),
	P_STR("message_reject_characters", ""),
	P_STR("message_strip_characters", ""),
	P_INT("smtpd_client_message_rate_limit", "0", 0, INT_MAX),
	P_INT("smtpd_client_connection_rate_limit", "0", 0, INT_MAX),
	P_TIME("anvil_rate_time_unit", "60s"),
	P_BOOL("disable_dns_lookups", "no"),
	/* Reply codes of restrictions (smtpd_check). */
	P_INT("unknown_address_reject_code", "450", 400, 599),
	P_INT("unknown_client_reject_code", "450", 400, 599),
	P_INT("unknown_hostname_reject_code", "450", 400, 599),
	P_INT("unverified_recipient_reject_code", "450", 400, 599),
	P_INT("relay_domains_reject_code", "554", 400, 599),
	P_INT("access_map_reject_code", "554", 400, 599),
	P_INT("maps_rbl_reject_code", "554", 400, 599),
	P_INT("invalid_hostname_reject_code", "501", 400, 599),
	P_INT("non_fqdn_reject_code", "504", 400, 599),

	/* ---- qmgr, local, bounces ---- */
	P_INT("local_destination_concurrency_limit", "16", 1, INT_MAX),
	P_TIME("minimal_backoff_time", "300s"),
	P_TIME("maximal_backoff_time", "4000s"),
	P_TIME("queue_run_delay", "300s"),
	P_TIME("maximal_queue_lifetime", "5d"),
	P_TIME("bounce_queue_lifetime", "5d"),
	P_TIME("delay_warning_time", "0h"),
	P_MULTI("notify_classes", "resource, software",
	    "bounce|2bounce|data|delay|policy|protocol|resource|software"),
	P_STR("bounce_notice_recipient", "postmaster"),
	P_STR("2bounce_notice_recipient", "postmaster"),
	P_STR("delay_notice_recipient", "postmaster"),
	P_STR("error_notice_recipient", "postmaster"),
	P_STR("double_bounce_sender", "double-bounce"),
	P_SIZE("bounce_size_limit", "50000"),
	P_INT("hopcount_limit", "50", 1, INT_MAX),
	P_MULTI("allow_mail_to_commands", "alias, forward",
	    "alias|forward|include"),
	P_MULTI("allow_mail_to_files", "alias, forward",
	    "alias|forward|include"),
	/* $home, $user, ... are expanded by local at delivery time. */
	P_RAW("forward_path", "$home/.forward"),
	P_TIME("command_time_limit", "1000s"),
	P_RAW("mailbox_command", ""),
	P_BOOL("biff", "yes"),
	P_STR("local_transport", "local:$myhostname"),
	P_STR("mailbox_transport", ""),
	P_STR("fallback_transport", ""),
	/* $user, $domain, ... are expanded by local at delivery time. */
	P_RAW("luser_relay", ""),
	P_INT("default_destination_concurrency_limit", "20", 1, INT_MAX),
	P_INT("smtp_destination_concurrency_limit",
	    "$default_destination_concurrency_limit", 1, INT_MAX),
	P_INT("initial_destination_concurrency", "5", 1, INT_MAX),

	/* ---- SASL and TLS (used by later components) ---- */
	P_BOOL("smtpd_sasl_auth_enable", "no"),
	P_MULTI("smtpd_sasl_security_options", "noanonymous", SASL_OPTIONS),
	P_STR("smtpd_sasl_type", "postern"),
	P_STR("smtpd_sasl_path", "private/auth"),
	P_BOOL("broken_sasl_auth_clients", "no"),
	P_STR("smtpd_tls_cert_file", ""),
	P_STR("smtpd_tls_key_file", ""),
	/* A second pair of the other key type (ECDSA next to RSA). */
	P_STR("smtpd_tls_eccert_file", ""),
	P_STR("smtpd_tls_eckey_file", ""),
	P_ENUM("smtpd_tls_security_level", "", "|none|may|encrypt"),
	P_BOOL("smtpd_use_tls", "no"),
	P_BOOL("smtpd_tls_auth_only", "no"),
	P_STR("smtpd_tls_session_cache_database", ""),
	P_TIME("smtpd_tls_session_cache_timeout", "3600s"),
	P_INT("smtpd_tls_loglevel", "0", 0, 4),
	P_STR("smtpd_tls_CAfile", ""),
	P_STR("smtpd_tls_CApath", ""),
	P_BOOL("smtpd_tls_received_header", "no"),
	P_LIST("smtpd_tls_protocols", ">=TLSv1"),
	P_LIST("smtpd_tls_mandatory_protocols", ">=TLSv1"),
	P_ENUM("smtpd_tls_ciphers", "medium", TLS_CIPHERS),
	P_ENUM("smtpd_tls_mandatory_ciphers", "medium", TLS_CIPHERS),
	P_STR("smtpd_sasl_local_domain", ""),
	P_BOOL("smtpd_sasl_authenticated_header", "no"),
	P_ENUM("smtp_tls_security_level", "may",
	    "none|may|encrypt|dane|dane-only|fingerprint|verify|secure"),
	P_STR("smtp_tls_CApath", ""),
	P_STR("smtp_tls_CAfile", ""),
	P_STR("smtp_tls_session_cache_database", ""),
	P_INT("smtp_tls_loglevel", "0", 0, 4),
	P_BOOL("smtp_tls_note_starttls_offer", "no"),
	P_LIST("smtp_tls_mandatory_protocols", ">=TLSv1"),
	P_BOOL("smtp_sasl_auth_enable", "no"),
	P_MAPS("smtp_sasl_password_maps", ""),
	P_MULTI("smtp_sasl_security_options", "noplaintext, noanonymous",
	    SASL_OPTIONS),
	P_MULTI("smtp_sasl_tls_security_options",
	    "$smtp_sasl_security_options", SASL_OPTIONS),
	P_TIME("smtp_connect_timeout", "30s"),
	P_TIME("smtp_helo_timeout", "300s"),
	P_TIME("smtp_data_done_timeout", "600s"),
	P_MULTI("smtp_host_lookup", "dns", "dns|native"),
	P_INT("default_process_limit", "100", 1, INT_MAX),
	P_INT("smtp_destination_recipient_limit", "50", 1, INT_MAX),
	P_TIME("smtp_connection_cache_time_limit", "2s"),
	P_BOOL("smtp_connection_cache_on_demand", "yes"),
	P_STR("smtp_helo_name", "$myhostname"),
	P_STR("smtp_bind_address", ""),
	P_STR("smtp_bind_address6", ""),
	P_ENUM("smtp_address_preference", "any", "any|ipv4|ipv6"),
	P_TIME("smtp_mail_timeout", "300s"),
	P_TIME("smtp_rcpt_timeout", "300s"),
	P_TIME("smtp_data_init_timeout", "120s"),
	P_TIME("smtp_data_xfer_timeout", "180s"),
	P_TIME("smtp_quit_timeout", "300s"),
	P_TIME("smtp_starttls_timeout", "300s"),
	P_INT("smtp_mx_address_limit", "5", 0, INT_MAX),
	P_INT("smtp_mx_session_limit", "2", 0, INT_MAX),
	P_LIST("smtp_sasl_mechanism_filter", ""),
	P_STR("smtp_tls_cert_file", ""),
	P_STR("smtp_tls_key_file", ""),
	P_ENUM("smtp_tls_mandatory_ciphers", "medium", TLS_CIPHERS),
	/* Name servers to ask instead of /etc/resolv.conf ("ip", "[ip]:port"). */
	P_LIST("dns_servers", ""),

	/* ---- rewriting, virtual domains, transports ---- */
	P_MAPS("smtp_generic_maps", ""),
	P_MAPS("canonical_maps", ""),
	P_MAPS("sender_canonical_maps", ""),
	P_MAPS("recipient_canonical_maps", ""),
	P_DOMAINS("masquerade_domains", ""),
	P_LIST("masquerade_exceptions", ""),
	P_MAPS("virtual_alias_maps", ""),
	P_DOMAINS("virtual_alias_domains", "$virtual_alias_maps"),
	P_DOMAINS("virtual_mailbox_domains", "$virtual_mailbox_maps"),
	P_MAPS("virtual_mailbox_maps", ""),
	P_STR("virtual_mailbox_base", ""),
	P_MAPS("virtual_uid_maps", ""),
	P_MAPS("virtual_gid_maps", ""),
	P_INT("virtual_minimum_uid", "100", 0, INT_MAX),
	P_STR("virtual_transport", "virtual"),
	P_MAPS("transport_maps", ""),
	P_MAPS("relay_recipient_maps", ""),
	P_STR("default_transport", "smtp"),
	P_STR("relay_transport", "relay"),

	/* ---- accepted for main.cf compatibility ---- */
	P_STR("compatibility_level", "3.6"),
	P_BOOL("append_dot_mydomain", "no"),
	P_STR("readme_directory", "no"),
	P_STR("html_directory", "no"),
	P_STR("manpage_directory", "/usr/share/man"),
	P_STR("sample_directory", "/usr/share/doc/postern"),
	P_STR("setgid_group", "postdrop"),
	P_STR("sendmail_path", SBINDIR "/sendmail"),
	P_STR("mailq_path", SBINDIR "/mailq"),
	P_STR("newaliases_path", SBINDIR "/newaliases"),
	P_STR("command_directory", SBINDIR),
	P_ENUM("syslog_facility", "mail", "mail|daemon|user|auth|authpriv|"
	    "local0|local1|local2|local3|local4|local5|local6|local7"),
	P_STR("syslog_name", "postern"),
	P_STR("maillog_file", ""),

	/* ---- POP3, IMAP and auth: Dovecot names ---- */
	D_ENUM("ssl", "yes", "yes|no|required"),
	D_PATH("ssl_cert", ""),
	D_PATH("ssl_key", ""),
	/* Dovecot's second pair of another key type ("</path" too). */
	D_PATH("ssl_alt_cert", ""),
	D_PATH("ssl_alt_key", ""),
	D_BOOL("disable_plaintext_auth", "yes"),
	D_MULTI("auth_mechanisms", "plain login",
	    "plain|login|cram-md5|scram-sha-1|scram-sha-256|digest-md5|"
	    "external|anonymous|xoauth2|oauthbearer|apop|ntlm|gssapi|otp"),
	D_MULTI("protocols", "imap pop3 lmtp",
	    "imap|pop3|lmtp|submission|sieve|none"),
	D_STR("mail_privileged_group", ""),
	D_INT("first_valid_uid", "500", 0, INT_MAX),
	D_STR("login_greeting", "Postern ready."),
	D_TIME("auth_failure_delay", "2s"),
	D_INT("mail_max_userip_connections", "10", 0, INT_MAX),
	P("pop3_uidl_format", CFG_T_STRING, "%08Xu%08Xv", NULL, 0, 0,
	    CFG_F_DOVECOT | CFG_F_RAW),
	D_STR("ssl_min_protocol", "TLSv1.2"),
	D_STR("ssl_cipher_list", ""),
	D_STR("ssl_prefer_server_ciphers", "no"),
	D_STR("pop3_logout_format", ""),
	D_BOOL("pop3_no_flag_updates", "no"),
	D_INT("pop3_login_delay", "0", 0, INT_MAX),
	D_INT("pop3_expire_days", "0", 0, INT_MAX),
	D_INT("imap_max_line_length", "65536", 1024, 16777216),
	D_TIME("imap_idle_notify_interval", "2m"),
	D_STR("mail_uid", ""),
	D_STR("mail_gid", ""),
	D_STR("auth_username_format", "%Lu"),
	D_INT("login_max_connections_per_ip", "50", 0, INT_MAX),

	/* ---- auth and login: Postern's own ---- */
	/* Login processes started per protocol (Dovecot's service
	 * imap-login { process_min_avail }); 0: one per CPU, at most 4. */
	P_INT("imap_login_process_min_avail", "0", 0, 16),
	P_INT("pop3_login_process_min_avail", "0", 0, 16),
	/* Loopback clients count as secure for plaintext passwords (as
	 * Dovecot treats localhost); "no" makes tests see what a remote
	 * client sees. */
	P_BOOL("plaintext_auth_loopback", "yes"),
	/* Submission (587) and smtps (465) require AUTH before MAIL. */
	P_BOOL("submission_auth_required", "yes"),
	/* Threads of the auth service that run password checks. */
	P_INT("auth_worker_count", "4", 1, 64),

	/* ---- added by smtpd ---- */
	P_MAPS("smtpd_sender_login_maps", ""),
	/* Restrictions (smtp/smtpd_check.c): Postfix's names and defaults. */
	P_LIST("smtpd_end_of_data_restrictions", ""),
	/* Names of user-defined parameters that are restriction lists. */
	P_LIST("smtpd_restriction_classes", ""),
	/* sendmail access files: From:/To:/Connect: keys (smtpd_access.c) */
	P_BOOL("sendmail_access_tags", "no"),
	P_LIST("permit_mx_backup_networks", ""),
	P_INT("unverified_sender_reject_code", "450", 400, 599),
	P_INT("unverified_recipient_defer_code", "450", 400, 599),
	P_INT("unverified_sender_defer_code", "450", 400, 599),
	P_STR("unverified_recipient_reject_reason", ""),
	P_STR("unverified_sender_reject_reason", ""),
	P_INT("reject_code", "554", 400, 599),
	P_INT("defer_code", "450", 400, 599),
	P_INT("access_map_defer_code", "450", 400, 599),
	P_INT("unknown_virtual_alias_reject_code", "550", 400, 599),
	P_INT("unknown_virtual_mailbox_reject_code", "550", 400, 599),
	P_INT("unknown_relay_recipient_reject_code", "550", 400, 599),
	P_INT("multi_recipient_bounce_reject_code", "550", 400, 599),
	P_INT("plaintext_reject_code", "450", 400, 599),
	P_LIST("parent_domain_matches_subdomains", "debug_peer_list, "
	    "fast_flush_domains, mynetworks, permit_mx_backup_networks, "
	    "qmqpd_authorized_clients, relay_domains, smtpd_access_maps"),
	P_STR("smtpd_null_access_lookup_key", "<>"),
	P_BOOL("smtpd_reject_unlisted_sender", "no"),
	P_BOOL("allow_untrusted_routing", "no"),
	P_BOOL("swap_bangpath", "yes"),
	P_BOOL("allow_percent_hack", "yes"),
	/* $rbl_code etc. are expanded by smtpd per reply, not by cfg. */
	P_RAW("default_rbl_reply", "$rbl_code Service unavailable; $rbl_class "
	    "[$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}"),
	P_MAPS("rbl_reply_maps", ""),
	P_TIME("smtpd_policy_service_timeout", "100s"),
	P_TIME("smtpd_policy_service_max_idle", "300s"),
	P_TIME("smtpd_policy_service_max_ttl", "1000s"),
	P_INT("smtpd_policy_service_try_limit", "2", 1, 100),
	P_TIME("smtpd_policy_service_retry_delay", "1s"),
	P_INT("smtpd_policy_service_request_limit", "0", 0, INT_MAX),
	P_STR("smtpd_policy_service_default_action",
	    "451 4.3.5 Server configuration problem"),
	P_STR("smtpd_policy_service_policy_context", ""),

	/* ---- added by qmgr/local ---- */
	/* Delivery at accept: smtpd has local write plain mailbox copies
	 * before it answers DATA (doc/internals.md). */
	P_BOOL("local_delivery_at_accept", "yes"),
	P_INT("local_delivery_at_accept_limit", "32", 1, 1024),
	/* Messages qmgr holds open at once (Postfix: 20000; each one here
	 * is an open file).  When they are all waiting, in_flow_delay
	 * slows smtpd down. */
	P_INT("qmgr_message_active_limit", "500", 1, 100000),

	/* ---- added by rewrite (smtp/rewrite.c) ---- */
	/* Which addresses each kind of rewriting applies to (Postfix). */
	P_MULTI("canonical_classes", "envelope_sender, envelope_recipient, "
	    "header_sender, header_recipient", REWRITE_CLASSES),
	P_MULTI("sender_canonical_classes", "envelope_sender, header_sender",
	    REWRITE_CLASSES),
	P_MULTI("recipient_canonical_classes",
	    "envelope_recipient, header_recipient", REWRITE_CLASSES),
	P_MULTI("masquerade_classes",
	    "envelope_sender, header_sender, header_recipient",
	    REWRITE_CLASSES),
	P_MULTI("propagate_unmatched_extensions", "canonical, virtual",
	    "canonical|virtual|alias|forward|include|generic"),
	/* Whose message headers smtpd rewrites (canonical, masquerade). */
	P_LIST("local_header_rewrite_clients", "permit_inet_interfaces"),
	P_STR("remote_header_rewrite_domain", ""),

	/* ---- added by master/admin ---- */
	/* A pop3/imap mail process leaves after this long without a
	 * session (login/mailproc.h; Postfix's max_idle for its daemons). */
	P_TIME("mail_process_max_idle", "60s"),

	/* ---- added by imap quota (store/store_quota.c) ---- */
	/* Dovecot's "*:storage=1G:messages=100000"; empty: no quota. */
	D_STR("quota_rule", ""),

};

const size_t cfg_params_count = sizeof(cfg_params) / sizeof(cfg_params[0]);

static const struct cfg_param **cfg_params_sorted;

static int
cfg_params_cmp(const void *a, const void *b)
{
	const struct cfg_param *const *pa = a, *const *pb = b;

	return strcmp((*pa)->name, (*pb)->name);
}

static int
cfg_params_key_cmp(const void *key, const void *elem)
{
	const struct cfg_param *const *pe = elem;

	return strcmp(key, (*pe)->name);
}

const struct cfg_param *
cfg_param_find(const char *name)
{
	const struct cfg_param **pp;

	if (cfg_params_sorted == NULL) {
		size_t i;

		cfg_params_sorted = xreallocarray(NULL, cfg_params_count,
		    sizeof(*cfg_params_sorted));
		for (i = 0; i < cfg_params_count; i++)
			cfg_params_sorted[i] = &cfg_params[i];
		qsort(cfg_params_sorted, cfg_params_count,
		    sizeof(*cfg_params_sorted), cfg_params_cmp);
	}
	pp = bsearch(name, cfg_params_sorted, cfg_params_count,
	    sizeof(*cfg_params_sorted), cfg_params_key_cmp);
	return pp == NULL ? NULL : *pp;
}
