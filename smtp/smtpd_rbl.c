/*
 * smtpd_rbl: DNS block lists for reject_rbl_client and the reject_rhsbl_*
 * restrictions, as Postfix does them.
 *
 *   - The query name: the client's IPv4 address with its octets reversed
 *     ("4.3.2.1.zen.example"), an IPv6 address as 32 reversed nibbles,
 *     or a domain for the right-hand-side lists ("example.com.dbl.example";
 *     skipped for names that end in a number, as Postfix does).
 *   - "zone=127.0.0.[2..11]" lists only the A answers matching the
 *     pattern: each of the four octets is a number or a bracketed list of
 *     numbers and ranges separated by ';' ("127.0.0.[2;4..7]").
 *   - The lookup itself (A, then TXT when listed) runs in a worker thread
 *     of smtpd_check.c; its result is cached per session.
 *   - The reply: $default_rbl_reply (or a template of $rbl_reply_maps for
 *     the zone) with $rbl_code, $rbl_class, $rbl_what, $rbl_domain,
 *     $rbl_reason, $client_address, $client_name, $helo_name, $sender and
 *     $recipient, and Postfix's ${name?text} / ${name:text} forms.
 *
 * A lookup that fails (timeout, SERVFAIL) does not list the client: mail
 * is not refused because a block list is down (Postfix does the same).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "smtpd.h"
#include "str.h"
#include "xmalloc.h"

/* TXT bytes kept for the reply, several records joined by " / ". */
#define SMTPD_RBL_TXT_LIMIT	500
/* Bytes of an expanded reply template. */
#define SMTPD_RBL_MAX_REPLY	1024
/* Nesting of ${name?...} in a template. */
#define SMTPD_RBL_MAX_DEPTH	4

char *
smtpd_rbl_query_addr(const char *ip, const char *zone)
{
	struct in6_addr a6;
	struct in_addr a4;
	struct buf b;
	int i;

	buf_init(&b, 0);
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		const unsigned char *o = (const unsigned char *)&a4;

		buf_printf(&b, "%u.%u.%u.%u.%s", o[3], o[2], o[1], o[0], zone);
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		for (i = 15; i >= 0; i--)
			buf_printf(&b, "%x.%x.", a6.s6_addr[i] & 0xf,
			    a6.s6_addr[i] >> 4);
		buf_append_str(&b, zone);
	} else {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* Letters, digits, '-' and '_' in dot-separated labels of 1-63 bytes. */
static bool
smtpd_rbl_hostname_ok(const char *name)
{
	size_t label = 0, total = 0;
	const char *p;

	for (p = name; *p != '\0'; p++, total++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return total > 0 && total <= 253 && label > 0;
}

char *
smtpd_rbl_query_domain(const char *what, const char *zone)
{
	const char *domain = strrchr(what, '@');
	const char *last;
	char *d, *q;
	size_t len;

	domain = domain != NULL ? domain + 1 : what;
	if (domain[0] == '\0' || domain[0] == '[')
		return NULL;
	d = str_lower(xstrdup(domain));
	len = strlen(d);
	if (len > 1 && d[len - 1] == '.')
		d[len - 1] = '\0';
	/* Some lists refuse numerical names: skip those ending in digits. */
	last = strrchr(d, '.');
	last = last != NULL ? last + 1 : d;
	if (*last == '\0' || strspn(last, "0123456789") == strlen(last) ||
	    !smtpd_rbl_hostname_ok(d)) {
		free(d);
		return NULL;
	}
	q = xasprintf("%s.%s", d, zone);
	free(d);
	return q;
}

/* One octet pattern: "N" or "[a;b..c;...]".  Returns true on a match;
 * *ok_r false when the pattern is malformed. */
static bool
smtpd_rbl_octet(const char *pat, size_t len, unsigned value, bool *ok_r)
{
	char buf[64];
	char *item, *save = NULL;
	bool match = false;

	*ok_r = false;
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, pat, len);
	buf[len] = '\0';
	if (buf[0] != '[') {
		long long v;

		if (str_to_ll(buf, 0, 255, &v) < 0)
			return false;
		*ok_r = true;
		return (unsigned)v == value;
	}
	if (len < 3 || buf[len - 1] != ']')
		return false;
	buf[len - 1] = '\0';
	for (item = strtok_r(buf + 1, ";", &save); item != NULL;
	    item = strtok_r(NULL, ";", &save)) {
		char *dots = strstr(item, "..");
		long long lo, hi;

		if (dots != NULL) {
			*dots = '\0';
			if (str_to_ll(item, 0, 255, &lo) < 0 ||
			    str_to_ll(dots + 2, 0, 255, &hi) < 0 || lo > hi)
				return false;
		} else if (str_to_ll(item, 0, 255, &lo) < 0)
			return false;
		else
			hi = lo;
		if (value >= (unsigned)lo && value <= (unsigned)hi)
			match = true;
	}
	*ok_r = true;
	return match;
}

int
smtpd_rbl_pattern_match(const char *pattern, const char *addr)
{
	struct in_addr a;
	const unsigned char *o = (const unsigned char *)&a;
	const char *p = pattern;
	bool all = true;
	int i;

	if (inet_pton(AF_INET, addr, &a) != 1)
		return 0;
	for (i = 0; i < 4; i++) {
		const char *end;
		bool ok;

		if (*p == '[') {
			end = strchr(p, ']');
			if (end == NULL)
				return -1;
			end++;
		} else
			end = p + strcspn(p, ".");
		if (!smtpd_rbl_octet(p, (size_t)(end - p), o[i], &ok))
			all = false;
		if (!ok)
			return -1;
		if (i < 3) {
			if (*end != '.')
				return -1;
			p = end + 1;
		} else if (*end != '\0')
			return -1;
	}
	return all ? 1 : 0;
}

bool
smtpd_rbl_listed(const char *pattern, char *const *addrs)
{
	size_t i;

	if (addrs == NULL || addrs[0] == NULL)
		return false;
	if (pattern == NULL)
		return true;
	for (i = 0; addrs[i] != NULL; i++)
		if (smtpd_rbl_pattern_match(pattern, addrs[i]) == 1)
			return true;
	return false;
}

bool
smtpd_rbl_pattern_valid(const char *pattern)
{
	return smtpd_rbl_pattern_match(pattern, "0.0.0.0") >= 0;
}

void
smtpd_rbl_lookup(const char *query, struct smtpd_rbl_result *res)
{
	char **addrs = NULL, **txt = NULL;
	const char *why = NULL;
	enum dns_status st;

	memset(res, 0, sizeof(*res));
	st = dns_lookup_a(query, &addrs, &why);
	res->status = st;
	if (st != DNS_OK) {
		res->why = why;
		return;
	}
	res->addrs = addrs;
	if (dns_lookup_txt(query, &txt, &why) == DNS_OK && txt != NULL) {
		struct buf b;
		size_t i;

		buf_init(&b, 0);
		for (i = 0; txt[i] != NULL && b.len < SMTPD_RBL_TXT_LIMIT;
		    i++) {
			size_t room = SMTPD_RBL_TXT_LIMIT - b.len;
			size_t n = strlen(txt[i]);

			if (i > 0)
				buf_append_str(&b, " / ");
			buf_append(&b, txt[i], n < room ? n : room);
		}
		res->txt = buf_steal(&b);
		strv_free(&txt);
	}
}

void
smtpd_rbl_result_free(struct smtpd_rbl_result *res)
{
	strv_free(&res->addrs);
	free(res->txt);
	res->txt = NULL;
}

/* ---- reply templates ---- */

static const char *
smtpd_rbl_var(const struct smtpd_rbl_vars *v, const char *name, size_t len)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} vars[] = {
#define V(n, f) { n, offsetof(struct smtpd_rbl_vars, f) }
		V("rbl_code", code), V("rbl_class", cls), V("rbl_what", what),
		V("rbl_domain", domain), V("rbl_reason", reason),
		V("rbl_txt", reason), V("client_address", client_address),
		V("client_name", client_name), V("helo_name", helo_name),
		V("sender", sender), V("recipient", recipient),
#undef V
	};
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		if (strlen(vars[i].name) == len &&
		    strncmp(vars[i].name, name, len) == 0) {
			const char *s = *(const char *const *)
			    ((const char *)v + vars[i].off);

			return s != NULL ? s : "";
		}
	}
	return NULL;
}

static int
smtpd_rbl_expand_to(struct buf *out, const char *t, size_t tlen,
    const struct smtpd_rbl_vars *v, int depth)
{
	size_t i = 0;

	if (depth > SMTPD_RBL_MAX_DEPTH)
		return -1;
	while (i < tlen) {
		const char *name, *val;
		size_t nlen;

		if (t[i] != '$') {
			buf_append_char(out, t[i++]);
			continue;
		}
		i++;
		if (i < tlen && t[i] == '$') {
			buf_append_char(out, t[i++]);
			continue;
		}
		if (i < tlen && t[i] == '{') {
			size_t start = ++i, level = 1, end;
			char op = 0;

			name = t + start;
			while (i < tlen && (isalnum((unsigned char)t[i]) ||
			    t[i] == '_'))
				i++;
			nlen = i - start;
			if (i < tlen && (t[i] == '?' || t[i] == ':'))
				op = t[i++];
			end = i;
			while (end < tlen && level > 0) {
				if (t[end] == '{')
					level++;
				else if (t[end] == '}')
					level--;
				if (level > 0)
					end++;
			}
			if (end >= tlen || (op == 0 && end != i))
				return -1;
			val = smtpd_rbl_var(v, name, nlen);
			if (val == NULL)
				return -1;
			if (op == 0)
				buf_append_str(out, val);
			else if ((op == '?') == (*val != '\0')) {
				if (smtpd_rbl_expand_to(out, t + i, end - i, v,
				    depth + 1) < 0)
					return -1;
			}
			i = end + 1;
			continue;
		}
		name = t + i;
		while (i < tlen && (isalnum((unsigned char)t[i]) ||
		    t[i] == '_'))
			i++;
		nlen = (size_t)(t + i - name);
		if (nlen == 0 || (val = smtpd_rbl_var(v, name, nlen)) == NULL)
			return -1;
		buf_append_str(out, val);
	}
	return 0;
}

char *
smtpd_rbl_expand(const char *template, const struct smtpd_rbl_vars *v)
{
	struct buf b;

	buf_init(&b, SMTPD_RBL_MAX_REPLY);
	if (smtpd_rbl_expand_to(&b, template, strlen(template), v, 0) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}
