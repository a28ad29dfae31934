/*
 * fuzz_rewrite_header: the header address rewriter of smtp/rewrite.c
 * (rewrite_header_value) on arbitrary header values, with generic and
 * canonical tables and masquerading that match many of the addresses a
 * fuzzer finds (catch-alls, user keys, quoted local parts).  The low
 * bits of the first byte pick the header name and the kind of rewriting;
 * the rest is the value (folding, comments, quotes and all).  The same
 * text also goes through the envelope functions (rewrite_sender,
 * rewrite_recipient with a catch-all virtual alias table).
 *
 * Checked beyond "no crash": only address headers are rewritten, and a
 * value that comes back rewritten differs from the input and is bounded
 * in size; an expansion returns at least one address and never more
 * than MAX_ALIAS_EXPANSION.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "fuzz_stubs.h"
#include "limits_pst.h"
#include "rewrite.h"
#include "str.h"
#include "xmalloc.h"

#define MAX_FUZZ_REWRITE_INPUT	(16 * 1024)

static const char *const fuzz_hdr_names[] = {
	"From", "To", "Cc", "Reply-To", "Sender", "Resent-To", "Bcc",
	"Subject"
};

static void
fuzz_set(const char *name, const char *value)
{
	const char *err;

	if (cfg_set(name, value, &err) != 0) {
		fprintf(stderr, "cfg_set %s: %s\n", name, err);
		abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (cfg_load(NULL) != 0)
		abort();
	fuzz_set("myhostname", "mail.example.org");
	fuzz_set("mydestination", "$myhostname, localhost, example.org");
	fuzz_set("recipient_delimiter", "+-");
	fuzz_set("smtp_generic_maps", "inline:{ root@somehost.localdomain="
	    "root@bruno.ourdomain.com, @somehost.localdomain=@example.com, "
	    "{ a = \"b c\"@example.com }, @x=%1@y }");
	fuzz_set("canonical_maps", "inline:{ @example.org=@example.com, "
	    "a=A@example.com, b=b, c@example.com=@example.net }");
	fuzz_set("masquerade_domains", "!sub.example.com, example.com, "
	    "example.net");
	fuzz_set("masquerade_exceptions", "root");
	fuzz_set("virtual_alias_domains", "example.net, x");
	fuzz_set("virtual_alias_maps", "inline:{ @example.net=a, "
	    "{ a@example.net = a@example.org, b@x, @example.com }, "
	    "@x=%1%2%3@example.net, b=error:nouser gone }");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *name, *why;
	enum rewrite_hdr how;
	char *s, *out, **addrs = NULL;
	size_t len, i;

	if (size < 1 || size > MAX_FUZZ_REWRITE_INPUT)
		return 0;
	name = fuzz_hdr_names[data[0] & 7];
	how = (data[0] & 8) != 0 ? REWRITE_HDR_GENERIC :
	    REWRITE_HDR_CANONICAL;
	s = fuzz_cstring(data + 1, size - 1);
	len = strlen(s);
	out = rewrite_header_value(name, s, how);
	if (out != NULL) {
		size_t olen = strlen(out);

		if (strcmp(out, s) == 0 || olen > len * 2 + 8 * MAX_ADDRESS ||
		    !rewrite_header_is_address(name, strlen(name))) {
			fprintf(stderr, "rewrite_header_value(%s, \"%s\") "
			    "gave \"%s\"\n", name, s, out);
			abort();
		}
		free(out);
	}
	if (len <= 2 * MAX_ADDRESS) {
		out = rewrite_sender(s, &why);
		free(out);
		free(rewrite_generic(s));
		if (rewrite_recipient(s, &addrs, &why) == 1) {
			for (i = 0; addrs[i] != NULL; i++)
				;
			if (i == 0 || i > MAX_ALIAS_EXPANSION) {
				fprintf(stderr, "rewrite_recipient(\"%s\"): "
				    "%zu addresses\n", s, i);
				abort();
			}
			strv_free(&addrs);
		}
	}
	free(s);
	return 0;
}
