/*
 * admin: the postern command and its sendmail, mailq and newaliases
 * faces (DESIGN §1).  postern.c parses the global options and dispatches;
 * each admin_*.c file implements one family of subcommands and returns
 * the process exit status.
 *
 * None of these run as a service: they read the configuration, talk to
 * posternd and its services over their sockets (doc/internals.md), or
 * work on the files directly when those are not running.
 */
#ifndef POSTERN_ADMIN_H
#define POSTERN_ADMIN_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* LSB status code of "postern status" when not running. */
#define ADMIN_EXIT_NOT_RUNNING	3

/* ---- postern.c ---- */

/* Name for messages: "postern", "sendmail", "mailq", "newaliases". */
extern const char *admin_progname;
/* -c FILE of the postern command line, or NULL. */
extern const char *admin_config_override;

/* The configuration file to use: -c, $POSTERN_CONFIG, or the default. */
const char *admin_config_file(void);
/*
 * Load the configuration; on errors print them as "FILE:LINE: message"
 * on stderr and return -1.
 */
int	admin_load_config(void);
/* "PROG: fmt\n" on stderr. */
void	admin_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- admin_control.c: start stop reload status check config map
 * aliases ---- */

int	admin_cmd_start(int argc, char **argv);
int	admin_cmd_stop(int argc, char **argv);
int	admin_cmd_reload(int argc, char **argv);
int	admin_cmd_status(int argc, char **argv);
int	admin_cmd_check(int argc, char **argv);
int	admin_cmd_config(int argc, char **argv);
int	admin_cmd_map(int argc, char **argv);
int	admin_cmd_aliases(int argc, char **argv);
/*
 * Whether posternd runs: 1 with *pid_r (0 when the pid file is locked but
 * unreadable), 0 not running, -1 cannot tell (message printed).  Needs a
 * loaded configuration (data_directory).
 */
int	admin_daemon_pid(pid_t *pid_r);

/* ---- admin_queue.c: queue, mailq ---- */

int	admin_cmd_queue(int argc, char **argv);
/* mailq / queue list: exit status. */
int	admin_queue_list(void);
/* queue flush / sendmail -q: exit status. */
int	admin_queue_flush(void);

/* ---- admin_user.c: user, pw ---- */

int	admin_cmd_user(int argc, char **argv);
int	admin_cmd_pw(int argc, char **argv);
/*
 * A password from pw_arg if given, else from the terminal (asked twice
 * without echo when confirm) or one line of stdin.  Returns malloc'ed
 * text (wipe it after use) or NULL after printing why.
 */
char	*admin_read_password(const char *pw_arg, bool confirm);

/* ---- sendmail.c: sendmail, mailq, newaliases ---- */

/* argv[0]'s base name selects the default mode. */
int	sendmail_main(int argc, char **argv);

#endif
