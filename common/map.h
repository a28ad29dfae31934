/*
 * map: Postfix-style lookup tables "type:name" (DESIGN §5).
 *   hash:PATH      Berkeley DB hash file PATH.db built by map_build()
 *                  (keys stored with a trailing NUL as Postfix/Sendmail
 *                  do; lookups try with and without)
 *   texthash:PATH  the text source read into memory
 *   cidr:PATH      "network/len  value" lines, first match wins
 *   inline:{ k=v, k2=v2 }
 *   static:VALUE   always VALUE
 *   regexp:PATH    regexp_table(5) rules "/pattern/flags result", if/endif;
 *                  the key is a whole string (a header line), never
 *                  case-folded; first match wins; $1.. in results
 *   pcre:PATH      the same, with the common subset of Perl syntax
 * Text source syntax: "key value" or, for aliases, "key: value"; '#'
 * comments; lines starting with whitespace continue the previous one.
 * Keys are case-folded to lowercase, as Postfix does.
 */
#ifndef POSTERN_MAP_H
#define POSTERN_MAP_H

#include <stdbool.h>

struct map;

enum map_kind {
	MAP_KIND_PLAIN = 0,	/* "key value" */
	MAP_KIND_ALIASES	/* "key: value" (aliases(5)) */
};

/*
 * Open a table.  Returns NULL + *error_r when the type is unknown, the
 * file is missing, or a hash: .db is missing or older than its source (a
 * stale table is an error, not silent success).  Every *error_r of this
 * module points to a static buffer valid until the next map_* call.
 */
struct map *map_open(const char *spec, enum map_kind kind,
	    const char **error_r);
void	map_close(struct map **m);
/*
 * Look up key.  Returns 1 and a malloc'ed *value_r, 0 not found, -1 error.
 */
int	map_lookup(struct map *m, const char *key, char **value_r);
/* Reopen if the file changed on disk (cheap stat); -1 on error. */
int	map_refresh(struct map *m, const char **error_r);

/*
 * Build PATH.db from the text PATH (postern map build / postern aliases).
 * Writes to a temp file and renames, so readers never see half a table.
 * Errors in the source are reported as "PATH:LINE: message" through
 * *error_r; returns number of entries or -1.
 */
int	map_build(const char *spec, enum map_kind kind, const char **error_r);

/*
 * Lists of tables, as config values: "hash:/etc/aliases, texthash:/x".
 * map_list_lookup() asks each table in order; first hit wins.
 */
struct map_list;
struct map_list *map_list_open(const char *value, enum map_kind kind,
	    const char **error_r);
int	map_list_lookup(struct map_list *l, const char *key, char **value_r);
void	map_list_free(struct map_list **l);

#endif
