/*
 * rewrite: see rewrite.h.  (Placeholder until the tables are wired:
 * everything is returned unchanged.)
 */
#include "config.h"

#include <stdlib.h>

#include "rewrite.h"
#include "str.h"
#include "xmalloc.h"

int
rewrite_init(const char **error_r)
{
	(void)error_r;
	return 0;
}

void
rewrite_reset(void)
{
}

char *
rewrite_sender(const char *addr, const char **why_r)
{
	(void)why_r;
	return xstrdup(addr);
}

int
rewrite_recipient(const char *addr, char ***addrs_r, const char **why_r)
{
	(void)why_r;
	*addrs_r = xcalloc(2, sizeof(char *));
	(*addrs_r)[0] = xstrdup(addr);
	return 1;
}

bool
rewrite_is_virtual_alias_domain(const char *domain)
{
	(void)domain;
	return false;
}

bool
rewrite_is_virtual_mailbox_domain(const char *domain)
{
	(void)domain;
	return false;
}

int
rewrite_virtual_mailbox(const char *addr, char **path_r, uid_t *uid_r,
    gid_t *gid_r, const char **why_r)
{
	(void)addr; (void)path_r; (void)uid_r; (void)gid_r; (void)why_r;
	return 0;
}

char **
rewrite_bcc(const char *sender, char *const *rcpts)
{
	(void)sender; (void)rcpts;
	return xcalloc(1, sizeof(char *));
}

char *
rewrite_header_value(const char *name, const char *value,
    enum rewrite_hdr how)
{
	(void)name; (void)value; (void)how;
	return NULL;
}

char *
rewrite_generic(const char *addr)
{
	(void)addr;
	return NULL;
}
