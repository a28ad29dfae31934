/*
 * postern: the one administration command (DESIGN §1).
 *
 *   postern [-c FILE] COMMAND [ARGS]
 *
 * Called as sendmail, mailq or newaliases (install symlinks), it behaves
 * as those commands do (sendmail.c).  Otherwise it parses the global
 * options and hands the rest of the command line to the subcommand.
 * Exit statuses: 0 success, 1 failure, 2 usage; "status" follows LSB
 * (3 = not running); the sendmail faces use sysexits.h.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cfg.h"
#include "log.h"

const char *admin_progname = "postern";
const char *admin_config_override;

struct admin_cmd {
	const char	*name;
	int		(*run)(int argc, char **argv);
	const char	*usage;
};

static int admin_cmd_version(int argc, char **argv);
static int admin_cmd_help(int argc, char **argv);
static int admin_cmd_sendmail(int argc, char **argv);

static const struct admin_cmd admin_cmds[] = {
	{ "start", admin_cmd_start, "start [--foreground]" },
	{ "stop", admin_cmd_stop, "stop" },
	{ "reload", admin_cmd_reload, "reload" },
	{ "status", admin_cmd_status, "status" },
	{ "check", admin_cmd_check, "check" },
	{ "config", admin_cmd_config, "config [-n] [-r] [NAME...]" },
	{ "queue", admin_cmd_queue,
	    "queue [list | show ID | flush | delete ID...|ALL |\n"
	    "                hold ID...|ALL | release ID...|ALL]" },
	{ "map", admin_cmd_map,
	    "map build [TYPE:]FILE... | map lookup TYPE:FILE KEY" },
	{ "aliases", admin_cmd_aliases, "aliases" },
	{ "newaliases", admin_cmd_aliases, NULL },
	{ "user", admin_cmd_user,
	    "user add NAME [-s SCHEME] [-p PASSWORD] |\n"
	    "               passwd NAME [-s SCHEME] [-p PASSWORD] |\n"
	    "               del NAME | list" },
	{ "pw", admin_cmd_pw,
	    "pw [-s SCHEME] [-p PASSWORD] | pw -l | pw -t HASH [-p PASSWORD]" },
	{ "sendmail", admin_cmd_sendmail, "sendmail [OPTIONS] [ADDRESS...]" },
	{ "mailq", admin_cmd_sendmail, NULL },
	{ "version", admin_cmd_version, "version" },
	{ "help", admin_cmd_help, "help" },
};

#define ADMIN_CMD_COUNT (sizeof(admin_cmds) / sizeof(admin_cmds[0]))

void
admin_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", admin_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
admin_config_file(void)
{
	const char *env;

	if (admin_config_override != NULL)
		return admin_config_override;
	if ((env = getenv("POSTERN_CONFIG")) != NULL && *env != '\0')
		return env;
	return CFG_DEFAULT_PATH;
}

int
admin_load_config(void)
{
	if (cfg_load(admin_config_file()) != 0) {
		cfg_print_errors(stderr);
		return -1;
	}
	return 0;
}

static void
admin_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: postern [-c FILE] COMMAND\n\ncommands:\n");
	for (i = 0; i < ADMIN_CMD_COUNT; i++)
		if (admin_cmds[i].usage != NULL)
			fprintf(out, "  %s\n", admin_cmds[i].usage);
	fprintf(out, "\nThe configuration file is FILE, $POSTERN_CONFIG or "
	    "%s.\nCalled as sendmail, mailq or newaliases, postern acts as "
	    "those commands.\nSee postern(1).\n", CFG_DEFAULT_PATH);
}

static int
admin_cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("postern %s\n", PACKAGE_VERSION);
	return 0;
}

static int
admin_cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	admin_usage(stdout);
	return 0;
}

/* postern sendmail ... / postern mailq ...: argv[0] is the name. */
static int
admin_cmd_sendmail(int argc, char **argv)
{
	return sendmail_main(argc, argv);
}

static const char *
admin_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *name = argc > 0 ? admin_basename(argv[0]) : "postern";
	size_t i;
	int c;

	/* Messages of the common modules (map builds, ...) on stderr. */
	log_init("postern", true);
	if (strcmp(name, "sendmail") == 0 || strcmp(name, "mailq") == 0 ||
	    strcmp(name, "newaliases") == 0)
		return sendmail_main(argc, argv);

	/* "+": options end at the command, whose own options follow it. */
	while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			admin_config_override = optarg;
			break;
		case 'h':
			admin_usage(stdout);
			return 0;
		case 'V':
			return admin_cmd_version(0, NULL);
		default:
			admin_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		admin_usage(stderr);
		return 2;
	}
	for (i = 0; i < ADMIN_CMD_COUNT; i++) {
		if (strcmp(argv[optind], admin_cmds[i].name) == 0)
			return admin_cmds[i].run(argc - optind, argv + optind);
	}
	admin_err("unknown command \"%s\" (postern help lists them)",
	    argv[optind]);
	return 2;
}
