/*
 * fuzz_map: the text parsers of common/map.c.  The first input byte
 * chooses what the rest is: the source of a texthash: table (plain or
 * aliases syntax), a cidr:, regexp: or pcre: table, the body of an inline
 * regexp:{ ... } or inline:{ ... } table, or a whole map_list_open()
 * value.  Each line of the input is then looked up, with a few fixed
 * keys, so regexp rules run against text shaped like their own.
 * hash: is left out: building and fsync()ing a Berkeley DB file for every
 * input would make the run a thousand times slower; its text side is the
 * texthash: parser.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stubs.h"
#include "map.h"
#include "xmalloc.h"

#define MAX_FUZZ_MAP_INPUT	(32 * 1024)
/* Lines of the input also used as lookup keys. */
#define MAX_FUZZ_MAP_KEYS	16

static char *fuzz_map_path;

static const char *const fuzz_map_fixed_keys[] = {
	"", "a", "postmaster", "Subject: test", "127.0.0.1", "::1",
	"192.168.1.20", "From: <user@example.com>", NULL
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_map_path = fuzz_scratch_path("table");
	return 0;
}

static void
fuzz_map_lookup_all(struct map *m, struct map_list *l, const char *text)
{
	const char *p = text;
	char *key, *v;
	size_t i, len;

	for (i = 0; fuzz_map_fixed_keys[i] != NULL; i++) {
		if (m != NULL && map_lookup(m, fuzz_map_fixed_keys[i], &v) > 0)
			free(v);
		if (l != NULL && map_list_lookup(l, fuzz_map_fixed_keys[i],
		    &v) > 0)
			free(v);
	}
	for (i = 0; i < MAX_FUZZ_MAP_KEYS && *p != '\0'; i++) {
		len = strcspn(p, "\n");
		key = xstrndup(p, len);
		if (m != NULL && map_lookup(m, key, &v) > 0)
			free(v);
		if (l != NULL && map_list_lookup(l, key, &v) > 0)
			free(v);
		free(key);
		p += len;
		if (*p == '\n')
			p++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct map *m = NULL;
	struct map_list *l = NULL;
	const char *err;
	char *text, *spec = NULL;
	enum map_kind kind = MAP_KIND_PLAIN;
	bool file = true;

	if (size < 1 || size > MAX_FUZZ_MAP_INPUT)
		return 0;
	text = fuzz_cstring(data + 1, size - 1);
	switch (data[0] % 8) {
	case 0:
		spec = xasprintf("texthash:%s", fuzz_map_path);
		break;
	case 1:
		spec = xasprintf("texthash:%s", fuzz_map_path);
		kind = MAP_KIND_ALIASES;
		break;
	case 2:
		spec = xasprintf("cidr:%s", fuzz_map_path);
		break;
	case 3:
		spec = xasprintf("regexp:%s", fuzz_map_path);
		break;
	case 4:
		spec = xasprintf("pcre:%s", fuzz_map_path);
		break;
	case 5:
		spec = xasprintf("%s:{%s}", data[0] & 0x80 ? "pcre" :
		    "regexp", text);
		file = false;
		break;
	case 6:
		spec = xasprintf("inline:{%s}", text);
		file = false;
		break;
	default:
		l = map_list_open(text, data[0] & 0x80 ? MAP_KIND_ALIASES :
		    MAP_KIND_PLAIN, &err);
		break;
	}
	if (spec != NULL) {
		if (file)
			fuzz_write_file(fuzz_map_path, data + 1, size - 1);
		m = map_open(spec, kind, &err);
	}
	if (m != NULL || l != NULL)
		fuzz_map_lookup_all(m, l, text);
	map_close(&m);
	map_list_free(&l);
	free(spec);
	free(text);
	return 0;
}
