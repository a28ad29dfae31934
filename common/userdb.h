/*
 * userdb: who the local users are.  Two sources (DESIGN §1):
 *   "passwd"             system users (getpwnam)
 *   "passwd-file:PATH"   Dovecot-format file:
 *                        user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
 *     empty uid/gid = the uid/gid Postern runs as (unprivileged mode);
 *     empty home = $data_directory/home/USER.
 * Also reads and writes the passwd-file for `postern user add|passwd|del`.
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stdbool.h>
#include <sys/types.h>

struct userdb_user {
	char	*name;
	char	*password;	/* "{SCHEME}..." from passwd-file, or NULL */
	uid_t	 uid;
	gid_t	 gid;
	char	*home;
	char	*gecos;		/* full name, may be "" */
	/* passwd-file: the extra fields (space-separated key=value, e.g.
	 * "userdb_quota_rule=*:storage=200M"), or NULL. */
	char	*extra;
};

/*
 * Look up a user in the source named by the config parameter userdb
 * (cfg_get("userdb")).  Returns 1 found (fill *u, free with
 * userdb_user_free), 0 not found, -1 temporary error (*error_r).
 * Names are matched exactly (case-sensitive, as system users are).
 */
int	userdb_lookup(const char *name, struct userdb_user *u,
	    const char **error_r);
void	userdb_user_free(struct userdb_user *u);
/*
 * The value of the extra field key of u ("quota_rule" finds
 * "userdb_quota_rule=..." or "quota_rule=..."), malloc'ed, or NULL.
 */
char	*userdb_extra_get(const struct userdb_user *u, const char *key);

/* Path of the passwd-file when userdb or passdb is passwd-file:, else NULL. */
const char *userdb_passwd_file(void);

/*
 * Edit the passwd-file atomically (write new, fsync, rename).
 * set: add or replace NAME with the given password hash ("{SCHEME}...");
 * del: remove NAME.  Returns 0 or -1 with *error_r.
 */
int	userdb_file_set(const char *path, const char *name, const char *hash,
	    const char **error_r);
int	userdb_file_del(const char *path, const char *name,
	    const char **error_r);
/* Call cb for every user in the file; returns -1 if unreadable. */
int	userdb_file_list(const char *path,
	    void (*cb)(const struct userdb_user *u, void *ctx), void *ctx);

#endif
