/*
 * cfg: postern.conf, in Postfix main.cf language (DESIGN §1).
 *
 *   name = value          # comment lines start with '#'
 *       continued value   # a line starting with whitespace continues
 *
 * Values are stored raw and expanded on lookup: $name, ${name},
 * ${name?text}, ${name:text} as in Postfix.  Every known parameter has a
 * default (possibly derived: mydomain from myhostname, ...), a type and a
 * validator; unknown names and bad values are errors reported as
 * "FILE:LINE: message".  The table of parameters lives in cfg_params.c.
 *
 * The header is named cfg.h because autoconf owns config.h.
 */
#ifndef POSTERN_CFG_H
#define POSTERN_CFG_H

#include <stdbool.h>
#include <stdio.h>

#define CFG_DEFAULT_PATH SYSCONFDIR "/postern/postern.conf"

/*
 * Load a config file (NULL: built-in defaults only).  Errors (unknown name,
 * bad value, syntax) are appended to an internal list; returns the number of
 * errors (0 = usable).  A missing file is one error.  May be called again
 * (reload): the previous settings are replaced only when the new file loads
 * with no errors; otherwise the old ones stay.
 */
int	cfg_load(const char *path);
/* Print the errors of the last cfg_load() as "FILE:LINE: message\n". */
void	cfg_print_errors(FILE *out);
/* First error line of the last load, or NULL. Borrowed until next load. */
const char *cfg_first_error(void);
/* Path of the loaded file ("" when built-in defaults only). */
const char *cfg_path(void);
/* Set a value as if it came from the file (tests, command-line -o). */
int	cfg_set(const char *name, const char *value, const char **error_r);

/*
 * Lookups.  name must be a known parameter (asserts otherwise: our bug).
 * cfg_get() returns the fully expanded value, never NULL; the string is
 * borrowed and stays valid until the next cfg_load()/cfg_set().
 */
const char *cfg_get(const char *name);
long long cfg_get_int(const char *name);	/* plain integer */
long long cfg_get_size(const char *name);	/* bytes; accepts k/m/g suffix */
long long cfg_get_time(const char *name);	/* seconds; s/m/h/d/w suffix */
bool	cfg_get_bool(const char *name);		/* yes/no/true/false/1/0 */
/*
 * Split a list value on whitespace and commas (Postfix list syntax; a
 * "/path" element that names a file is replaced by the file's words, as
 * Postfix does for mydestination etc. when the parameter allows it).
 * Returns a NULL-terminated malloc'ed vector; free with cfg_list_free().
 */
char	**cfg_get_list(const char *name);
void	cfg_list_free(char ***list);
/* Whether name was set in the file (not just defaulted). */
bool	cfg_is_set(const char *name);
/*
 * A user-defined parameter's expanded value (a restriction class), or
 * NULL when the file does not set it.  Borrowed, as cfg_get().
 */
const char *cfg_get_user(const char *name);
/* Whether name is a known parameter. */
bool	cfg_known(const char *name);

/*
 * postern config: print "name = value" for every parameter (or only
 * names[]), expanded unless raw; only_set: only those set in the file
 * (postconf -n).  Returns 0, or -1 if a name is unknown (message on stderr).
 */
int	cfg_dump(FILE *out, bool only_set, bool raw, char *const names[]);

/*
 * Percent expansion for per-user paths (Dovecot style): %u user, %n local
 * part, %d domain, %h home, %% percent; ~/ at the start means home.
 * Returns a malloc'ed string.
 */
char	*cfg_expand_user(const char *tmpl, const char *user, const char *home);

#endif
