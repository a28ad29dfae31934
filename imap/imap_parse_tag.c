/*
 * imap_parse_tag: the tag of the command the parser is reading, for the
 * session's tagged NO when it refuses an APPEND message before the
 * command is complete (imap_parser_append_reject()).  Kept apart from
 * the parser's own files: only the mail process needs it.
 */
#include "config.h"

#include "imap.h"
#include "imap_parse_private.h"

const char *
imap_parser_tag(const struct imap_parser *p)
{
	/* The tag is the first token: read (and NUL-ended) once the
	 * command name follows it, which an APPEND message always does. */
	if (p->pre < 1 || p->text.data == NULL)
		return "*";
	return p->text.data + p->tag_off;
}
