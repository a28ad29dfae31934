/*
 * admin_user: postern user add|passwd|del|list and postern pw.
 *
 * Users live in the Dovecot-format passwd-file named by passdb or userdb
 * (DESIGN §1); userdb.c does the atomic edits.  Lines written here leave
 * uid, gid and home empty, meaning "the user Postern runs as" and
 * "$data_directory/home/USER".  Passwords are hashed with SHA512-CRYPT
 * (password.c); a password is taken from -p, from the terminal without
 * echo (asked twice), or from one line of standard input, and wiped from
 * memory once hashed.
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

/* Split "NAME [-p PW]" in any order. */
static int
admin_user_args(int argc, char **argv, const char **name_r,
    const char **pw_r, bool allow_pw)
{
	int i;

	*name_r = *pw_r = NULL;
	for (i = 2; i < argc; i++) {
		if (allow_pw && strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			*pw_r = argv[++i];
		else if (allow_pw && strncmp(argv[i], "-p", 2) == 0 &&
		    argv[i][2] != '\0')
			*pw_r = argv[i] + 2;
		else if (argv[i][0] == '-' || *name_r != NULL)
			return -1;
		else
			*name_r = argv[i];
	}
	return *name_r != NULL ? 0 : -1;
}

int
admin_cmd_user(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "", *path, *name, *pw, *error;
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
	if (admin_user_args(argc, argv, &name, &pw, is_add || is_passwd) < 0)
		goto usage;
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
	if ((hash = admin_hash_password(NULL, pw, true)) == NULL)
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
	admin_err("usage: postern [-c FILE] user add NAME [-p PASSWORD] | "
	    "passwd NAME [-p PASSWORD] | del NAME | list");
	return 2;
}

int
admin_cmd_pw(int argc, char **argv)
{
	const char *scheme = PASSWORD_DEFAULT_SCHEME, *pw = NULL;
	char *hash;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			scheme = argv[++i];
		else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			pw = argv[++i];
		else {
			admin_err("usage: postern pw [-s SCHEME] [-p PASSWORD]");
			return 2;
		}
	}
	if (!password_scheme_known(scheme)) {
		admin_err("unknown scheme %s (SHA512-CRYPT SHA256-CRYPT "
		    "BLF-CRYPT MD5-CRYPT CRYPT PLAIN)", scheme);
		return 1;
	}
	if ((hash = admin_hash_password(scheme, pw, true)) == NULL)
		return 1;
	printf("%s\n", hash);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	return 0;
}
