/*
 * fuzz_cfg: the postern.conf parser (common/cfg.c) and what a loaded
 * configuration is used for.  The input is written to a file and loaded
 * with cfg_load().  When it loads without errors, every parameter is read
 * through the getter of its type and the configuration is dumped,
 * expanded and raw, so $name expansion, the typed parsers and the list
 * splitter run on everything the parser accepted: a getter must never
 * panic on a value cfg_load() let through.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cfg.h"
#include "cfg_params.h"
#include "fuzz_stubs.h"

/* Larger inputs only repeat what smaller ones reach, more slowly. */
#define MAX_FUZZ_CFG_INPUT	(64 * 1024)

static char *fuzz_cfg_path;
static FILE *fuzz_cfg_null;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_cfg_path = fuzz_scratch_path("postern.conf");
	if ((fuzz_cfg_null = fopen("/dev/null", "w")) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i;

	if (size > MAX_FUZZ_CFG_INPUT)
		return 0;
	fuzz_write_file(fuzz_cfg_path, data, size);
	if (cfg_load(fuzz_cfg_path) != 0) {
		cfg_print_errors(fuzz_cfg_null);
		return 0;
	}
	for (i = 0; i < cfg_params_count; i++) {
		const struct cfg_param *p = &cfg_params[i];
		char **list;

		(void)cfg_get(p->name);
		(void)cfg_is_set(p->name);
		switch (p->type) {
		case CFG_T_STRING:
			break;
		case CFG_T_INT:
		case CFG_T_SIZE:
		case CFG_T_TIME:
			(void)cfg_get_int(p->name);
			break;
		case CFG_T_BOOL:
			(void)cfg_get_bool(p->name);
			break;
		default:
			list = cfg_get_list(p->name);
			cfg_list_free(&list);
			break;
		}
	}
	(void)cfg_dump(fuzz_cfg_null, false, false, NULL);
	(void)cfg_dump(fuzz_cfg_null, true, true, NULL);
	free(cfg_expand_user(cfg_get("mail_location"), "user+ext@example.com",
	    "/home/user"));
	free(cfg_expand_user(cfg_get("forward_path"), "user", "/home/user"));
	return 0;
}
