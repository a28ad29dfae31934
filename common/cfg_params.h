/*
 * cfg_params: the table of every postern.conf parameter (name, type,
 * default, range), and the few helpers cfg.c shares with other common
 * modules.  Users of the configuration include cfg.h, not this header;
 * this one is for cfg.c, map.c, userdb.c and the unit tests.
 *
 * A default is a raw value, expanded like a value from the file, so
 * "$myhostname" in a default follows the file's myhostname.  A NULL
 * default with a compute function is a derived default computed at lookup
 * time (myhostname, mydomain, mail_location).
 */
#ifndef POSTERN_CFG_PARAMS_H
#define POSTERN_CFG_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
	CFG_T_STRING,	/* anything */
	CFG_T_LIST,	/* list of words, not checked here */
	CFG_T_INT,	/* decimal integer in [min, max] */
	CFG_T_SIZE,	/* bytes, optional k/m/g suffix, in [min, max] */
	CFG_T_TIME,	/* seconds; s/m/h/d/w suffix; bare = default's unit */
	CFG_T_BOOL,	/* yes/no/true/false/1/0 */
	CFG_T_ENUM,	/* one of words (or a list of them: CFG_F_MULTI) */
	CFG_T_LISTEN,	/* list of PORT, ADDR:PORT, [V6]:PORT */
	CFG_T_MAPS,	/* list of type:name lookup tables */
	CFG_T_NETWORKS,	/* list of CIDR, host address, /file, type:name */
	CFG_T_DOMAINS,	/* list of domains, /file, type:name */
	CFG_T_PASSDB,	/* pam | shadow | passwd-file:PATH */
	CFG_T_USERDB,	/* passwd | passwd-file:PATH */
	CFG_T_MAILLOC	/* maildir:PATH[:opts] | mbox:PATH[:opts] */
};

/* "/path" list elements name files of more elements (Postfix lists). */
#define CFG_F_FILES	0x01
/* Not expanded by cfg_get(): $names in it are expanded at delivery time by
 * the user of the value (forward_path, mailbox_command). */
#define CFG_F_RAW	0x02
/* CFG_T_ENUM: the value is a list of the words (possibly empty). */
#define CFG_F_MULTI	0x04
/* Dovecot name: a value in double quotes has them removed. */
#define CFG_F_DOVECOT	0x08
/* Dovecot path: a leading '<' (Dovecot's "read from file") is dropped. */
#define CFG_F_LTPATH	0x10

struct cfg_param {
	const char	*name;
	enum cfg_type	 type;
	const char	*def;		/* raw default, or NULL if computed */
	/* Derived default: returns a malloc'ed final (expanded) value. */
	char		*(*compute)(void);
	const char	*words;		/* CFG_T_ENUM: "yes|no|required" */
	long long	 min, max;	/* CFG_T_INT, _SIZE, _TIME */
	unsigned	 flags;
};

extern const struct cfg_param cfg_params[];
extern const size_t cfg_params_count;

/* Derived defaults, implemented in cfg.c. */
char	*cfg_default_myhostname(void);
char	*cfg_default_mydomain(void);
char	*cfg_default_mail_location(void);

/* The parameter called name, or NULL. */
const struct cfg_param *cfg_param_find(const char *name);

/*
 * Split a value in Postfix list syntax: elements separated by whitespace
 * and commas; "{ ... }" groups text with separators into one element
 * (inline:{ a=b, c=d } stays whole; a bare "{ text }" element becomes
 * "text").  Returns a NULL-terminated malloc'ed vector (strv_free()).
 */
char	**cfg_list_split(const char *value);

/*
 * Check a value of the given parameter (already expanded).  Returns 0, or
 * -1 with a static message such as "expected a size" in *why_r.
 */
int	cfg_param_check(const struct cfg_param *p, const char *value,
	    const char **why_r);

/*
 * Typed parsers used by the getters and the checker.  Each returns 0 and
 * the value, or -1.  unit: the default unit of a bare time number, in
 * seconds.
 */
int	cfg_parse_size(const char *s, long long *val_r);
int	cfg_parse_time(const char *s, long long unit, long long *val_r);
int	cfg_parse_bool(const char *s, bool *val_r);

/*
 * fopen(path, "r") for files named by settings (list files, tables, user
 * files): only a regular file is opened.  A FIFO would block the open and
 * a device such as /dev/zero would make getline() read without end.
 * NULL with errno set otherwise (EINVAL: not a regular file).
 */
FILE	*cfg_fopen_regular(const char *path);

#endif
