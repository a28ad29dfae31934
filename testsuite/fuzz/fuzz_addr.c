/*
 * fuzz_addr: addr_parse_path() of common/addr.c, the parser of the
 * MAIL FROM:/RCPT TO: path, on the input as a string (the low bit of the
 * first byte turns SMTPUTF8 on), then the helpers that take its result:
 * addr_split, addr_strip_ext (recipient_delimiter "+-"), addr_normalize
 * and addr_qualify.  Two properties are checked: *rest_r points into the
 * input, and an accepted address written back in angle brackets parses
 * again to itself (the parser keeps an address as the client wrote it).
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "fuzz_stubs.h"
#include "xmalloc.h"

/* An SMTP command line is at most 2048 bytes (limits_pst.h). */
#define MAX_FUZZ_ADDR_INPUT	4096

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *err;

	(void)argc;
	(void)argv;
	if (cfg_load(NULL) != 0 ||
	    cfg_set("recipient_delimiter", "+-", &err) != 0 ||
	    cfg_set("myorigin", "example.org", &err) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *addr = NULL, *again = NULL, *copy, *local, *domain, *base;
	char *ext = NULL;
	const char *rest, *rest2, *err;
	bool utf8;

	if (size < 1 || size > MAX_FUZZ_ADDR_INPUT)
		return 0;
	utf8 = (data[0] & 1) != 0;
	s = fuzz_cstring(data + 1, size - 1);
	if (addr_parse_path(s, utf8, &addr, &rest, &err) != 1) {
		free(s);
		return 0;
	}
	if (rest < s || rest > s + strlen(s)) {
		fprintf(stderr, "addr_parse_path: rest outside the input\n");
		abort();
	}
	copy = xasprintf("<%s>", addr);
	if (addr_parse_path(copy, utf8, &again, &rest2, &err) != 1 ||
	    strcmp(again, addr) != 0 || *rest2 != '\0') {
		fprintf(stderr, "addr_parse_path: \"%s\" gave \"%s\", but "
		    "\"%s\" does not give it back (%s)\n", s, addr, copy,
		    again != NULL ? again : err);
		abort();
	}
	addr_split(addr, &local, &domain);
	base = addr_strip_ext(local, &ext);
	free(base);
	free(ext);
	free(local);
	free(domain);
	free(addr_normalize(addr));
	free(addr_qualify(addr));
	free(again);
	free(copy);
	free(addr);
	free(s);
	return 0;
}
