/*
 * admin_user: postern user add|passwd|del|list and postern pw.
 *
 * Users live in the Dovecot-format passwd-file named by passdb or userdb
 * (DESIGN §1); userdb.c does the atomic edits.  Lines written here leave
 * uid, gid and home empty, meaning "the user Postern runs as" and
 * "$data_directory/home/USER".  Passwords are hashed with SHA512-CRYPT
 * unless -s names another scheme (password.c; "postern pw -l" lists
 * them); a password is taken from -p, from the terminal without echo
 * (asked twice), or from one line of standard input, and wiped from
 * memory once hashed.  "postern pw" prints a hash as "doveadm pw" does,
 * and "postern pw -t HASH" checks a password against one.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "cfg.h"
#include "password.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

/* Longest password accepted (crypt(3) takes at most 512 bytes). */
#define ADMIN_MAX_PASSWORD	500

/* Read one line from fp without its line end; NULL at EOF or too long. */
static char *
admin_read_line(FILE *fp)
{
	char line[ADMIN_MAX_PASSWORD + 3];
	size_t len;
	char *res;

	if (fgets(line, sizeof(line), fp) == NULL)
		return NULL;
	len = strlen(line);
	if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
		explicit_bzero(line, sizeof(line));
		admin_err("password too long (at most %d bytes)",
		    ADMIN_MAX_PASSWORD);
		return NULL;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	res = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return res;
}

/* Prompt on the terminal with echo off. */
static char *
admin_prompt(const char *prompt)
{
	struct termios old, noecho;
	bool restore = false;
	char *pw;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) == 0;
	}
	pw = admin_read_line(stdin);
	if (restore)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return pw;
}

char *
admin_read_password(const char *pw_arg, bool confirm)
{
	char *pw, *again;

	if (pw_arg != NULL)
		pw = xstrdup(pw_arg);
	else if (isatty(STDIN_FILENO)) {
		if ((pw = admin_prompt("Enter new password: ")) == NULL)
			return NULL;
		if (confirm) {
			again = admin_prompt("Retype new password: ");
			if (again == NULL || strcmp(pw, again) != 0) {
				admin_err("passwords do not match");
				explicit_bzero(pw, strlen(pw));
				free(pw);
				if (again != NULL) {
					explicit_bzero(again, strlen(again));
					free(again);
				}
				return NULL;
			}
			explicit_bzero(again, strlen(again));
			free(again);
		}
	} else if ((pw = admin_read_line(stdin)) == NULL) {
		admin_err("no password given (use -p or one line on stdin)");
		return NULL;
	}
	if (*pw == '\0') {
		admin_err("empty password refused");
		free(pw);
		return NULL;
	}
	if (strlen(pw) > ADMIN_MAX_PASSWORD) {
		admin_err("password too long (at most %d bytes)",
		    ADMIN_MAX_PASSWORD);
		explicit_bzero(pw, strlen(pw));
		free(pw);
		return NULL;
	}
	return pw;
}

static char *
admin_hash_password(const char *scheme, const char *pw_arg, bool confirm)
{
	char *pw, *hash;

	if ((pw = admin_read_password(pw_arg, confirm)) == NULL)
		return NULL;
	hash = password_hash(scheme, pw);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (hash == NULL)
		admin_err("cannot hash the password with %s",
		    scheme != NULL ? scheme : PASSWORD_DEFAULT_SCHEME);
	return hash;
}

/* ---- the passwd-file ---- */

struct admin_user_find {
	const char	*name;
	bool		 found;
};

static void
admin_user_find_cb(const struct userdb_user *u, void *ctx)
{
	struct admin_user_find *f = ctx;

	if (strcmp(u->name, f->name) == 0)
		f->found = true;
}

/* 1 NAME is in the file, 0 not (or no file yet), -1 unreadable. */
static int
admin_user_exists(const char *path, const char *name)
{
	struct admin_user_find f = { name, false };

	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (userdb_file_list(path, admin_user_find_cb, &f) < 0)
		return -1;
	return f.found ? 1 : 0;
}

static void
admin_user_list_cb(const struct userdb_user *u, void *ctx)
{
	(void)ctx;
	printf("%s\n", u->name);
}

/*
 * A passwd-file created by root: readable by the services that run as
 * run_user (smtpd checks recipients), not by everybody.
 */
static void
admin_user_file_perms(const char *path)
{
	struct passwd *pw;

	if (geteuid() != 0 || (pw = getpwnam(cfg_get("run_user"))) == NULL)
		return;
	if (chown(path, 0, pw->pw_gid) < 0 || chmod(path, 0640) < 0)
		admin_err("warning: %s: %s", path, strerror(errno));
}

/*
 * The value of option opt ("-p") at argv[*i], given as "-p VALUE" or
 * "-pVALUE"; advances *i past it.  NULL if argv[*i] is not that option
 * or its value is missing.
 */
static const char *
admin_opt_value(int argc, char **argv, int *i, const char *opt)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] != '\0')
		return argv[*i] + n;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* Split "NAME [-p PW] [-s SCHEME]" in any order. */
static int
admin_user_args(int argc, char **argv, const char **name_r,
    const char **pw_r, const char **scheme_r, bool allow_pw)
{
	const char *v;
	int i;

	*name_r = *pw_r = *scheme_r = NULL;
	for (i = 2; i < argc; i++) {
		if (allow_pw &&
		    (v = admin_opt_value(argc, argv, &i, "-p")) != NULL)
			*pw_r = v;
		else if (allow_pw &&
		    (v = admin_opt_value(argc, argv, &i, "-s")) != NULL)
			*scheme_r = v;
		else if (argv[i][0] == '-' || *name_r != NULL)
			return -1;
		else
			*name_r = argv[i];
	}
	return *name_r != NULL ? 0 : -1;
}

/* The known schemes, space separated, on stdout or in an error. */
static void
admin_print_schemes(FILE *fp)
{
	const char *n;
	size_t i;

	for (i = 0; (n = password_scheme_name(i)) != NULL; i++)
		fprintf(fp, "%s%s", i > 0 ? " " : "", n);
	fputc('\n', fp);
}

/* Whether scheme is usable; says why not. */
static bool
admin_scheme_ok(const char *scheme)
{
	if (scheme == NULL || password_scheme_known(scheme))
		return true;
	fprintf(stderr, "%s: unknown scheme %s; known: ", admin_progname,
	    scheme);
	admin_print_schemes(stderr);
	return false;
}

int
admin_cmd_user(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "", *path, *name, *pw, *error;
	const char *scheme;
	char *hash;
	bool is_add, is_passwd, created;
	int rc;

	is_add = strcmp(sub, "add") == 0;
	is_passwd = strcmp(sub, "passwd") == 0;
	if (!is_add && !is_passwd && strcmp(sub, "del") != 0 &&
	    strcmp(sub, "list") != 0)
		goto usage;
	if (admin_load_config() < 0)
		return 1;
	if ((path = userdb_passwd_file()) == NULL) {
		admin_err("user: passdb = %s and userdb = %s: postern user "
		    "edits passwd-file: users only", cfg_get("passdb"),
		    cfg_get("userdb"));
		return 1;
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 2)
			goto usage;
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return 0;
		return userdb_file_list(path, admin_user_list_cb, NULL) < 0 ?
		    1 : 0;
	}
	if (admin_user_args(argc, argv, &name, &pw, &scheme,
	    is_add || is_passwd) < 0)
		goto usage;
	if (!admin_scheme_ok(scheme))
		return 1;
	if ((rc = admin_user_exists(path, name)) < 0)
		return 1;
	if (is_add && rc == 1) {
		admin_err("user %s already exists (postern user passwd %s "
		    "changes the password)", name, name);
		return 1;
	}
	if (!is_add && rc == 0) {
		admin_err("no user %s in %s", name, path);
		return 1;
	}
	if (strcmp(sub, "del") == 0) {
		if (userdb_file_del(path, name, &error) < 0) {
			admin_err("%s", error);
			return 1;
		}
		return 0;
	}
	if ((hash = admin_hash_password(scheme, pw, true)) == NULL)
		return 1;
	created = access(path, F_OK) < 0;
	rc = userdb_file_set(path, name, hash, &error);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	if (rc < 0) {
		admin_err("%s", error);
		return 1;
	}
	if (created)
		admin_user_file_perms(path);
	return 0;

usage:
	admin_err("usage: postern [-c FILE] user add NAME [-s SCHEME] "
	    "[-p PASSWORD] | passwd NAME [-s SCHEME] [-p PASSWORD] | "
	    "del NAME | list");
	return 2;
}

/*
 * postern pw [-s SCHEME] [-p PASSWORD] | -l | -t HASH [-p PASSWORD], as
 * doveadm pw: print a new hash, list the schemes, or check a password
 * against a hash (exit 0 and "(verified)" on a match, 1 otherwise).
 */
int
admin_cmd_pw(int argc, char **argv)
{
	const char *scheme = PASSWORD_DEFAULT_SCHEME, *pw = NULL, *test = NULL;
	const char *v;
	bool list = false;
	char *hash, *p;
	int i, ret;

	for (i = 1; i < argc; i++) {
		if ((v = admin_opt_value(argc, argv, &i, "-s")) != NULL)
			scheme = v;
		else if ((v = admin_opt_value(argc, argv, &i, "-p")) != NULL)
			pw = v;
		else if ((v = admin_opt_value(argc, argv, &i, "-t")) != NULL)
			test = v;
		else if (strcmp(argv[i], "-l") == 0)
			list = true;
		else
			goto usage;
	}
	if (list) {
		if (pw != NULL || test != NULL)
			goto usage;
		admin_print_schemes(stdout);
		return 0;
	}
	if (test != NULL) {
		if ((p = admin_read_password(pw, false)) == NULL)
			return 1;
		ret = password_verify(test, p);
		explicit_bzero(p, strlen(p));
		free(p);
		if (ret < 0) {
			admin_err("unknown scheme or malformed hash");
			return 1;
		}
		if (ret == 0) {
			admin_err("password mismatch");
			return 1;
		}
		printf("%s (verified)\n", test);
		return 0;
	}
	if (!admin_scheme_ok(scheme))
		return 1;
	if ((hash = admin_hash_password(scheme, pw, true)) == NULL)
		return 1;
	printf("%s\n", hash);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	return 0;

usage:
	admin_err("usage: postern pw [-s SCHEME] [-p PASSWORD] | pw -l | "
	    "pw -t HASH [-p PASSWORD]");
	return 2;
}
