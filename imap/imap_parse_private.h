/*
 * imap_parse_private: what the files of the IMAP parser share and
 * nothing outside imap_parse*.c may use: the parser state, the argument
 * tree the tokenizer builds for the command parsers, the per-command
 * arena and the error setters.
 */
#ifndef POSTERN_IMAP_PARSE_PRIVATE_H
#define POSTERN_IMAP_PARSE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_parse.h"

/* ---- the argument tree of one command ---- */

enum imap_arg_type {
	IMAP_ARG_ATOM = 1,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
	IMAP_ARG_MESSAGE,	/* an APPEND message, passed through */
};

#define IMAP_ARG_F_BINARY	0x01	/* MESSAGE: literal8 */
#define IMAP_ARG_F_NONSYNC	0x02	/* MESSAGE: {n+} */
#define IMAP_ARG_F_NUL		0x04	/* MESSAGE: the data held a NUL */

struct imap_arg {
	enum imap_arg_type	 type;
	unsigned int		 flags;
	/* ATOM, QUOTED, LITERAL: NUL-terminated text (literals have no
	 * NUL inside, the tokenizer refuses it). */
	const char		*str;
	size_t			 len;
	/* LIST: the members; MESSAGE: nothing. */
	const struct imap_arg	*list;
	size_t			 count;
	uint64_t		 size;		/* MESSAGE: its size */
};

/* ---- per-command arena ---- */

struct imap_arena_chunk {
	struct imap_arena_chunk	*next;
	size_t			 size;
	size_t			 used;
	max_align_t		 data[];
};

/* ---- tokenizer state ---- */

enum imap_lex {
	IMAP_LEX_LINE_START = 0,	/* before a tag; empty lines skipped */
	IMAP_LEX_LINE_CR,		/* CR at the start of a line */
	IMAP_LEX_TOKEN_START,		/* a token, ')' or the line end */
	IMAP_LEX_AFTER_TOKEN,		/* SP, ')' or the line end */
	IMAP_LEX_ATOM,
	IMAP_LEX_TILDE,			/* '~': literal8 or an atom */
	IMAP_LEX_BRACKET,		/* [...] inside a FETCH atom */
	IMAP_LEX_BRACKET_QUOTED,
	IMAP_LEX_BRACKET_QUOTED_ESC,
	IMAP_LEX_QUOTED,
	IMAP_LEX_QUOTED_ESC,
	IMAP_LEX_LIT_SIZE,		/* after '{' */
	IMAP_LEX_LIT_CLOSE,		/* after '+': '}' */
	IMAP_LEX_LIT_CR,		/* after '}': the line end */
	IMAP_LEX_LIT_LF,		/* after "}\r" */
	IMAP_LEX_LIT_DATA,		/* literal bytes, kept */
	IMAP_LEX_CR,			/* CR ending a command line */
	IMAP_LEX_APPEND_WAIT,		/* caller to accept or reject */
	IMAP_LEX_APPEND_DATA,		/* message bytes, passed through */
	IMAP_LEX_APPEND_END,		/* to report the end */
	IMAP_LEX_SKIP,			/* after an error: to the line end */
	IMAP_LEX_SKIP_LIT,		/* after an error: literal bytes */
	IMAP_LEX_RAW,			/* a raw line */
	IMAP_LEX_RAW_SKIP,		/* the rest of a bad raw line */
	IMAP_LEX_DEAD,			/* fatal error: input ignored */
};

/* What the tokenizer needs to know of a command. */
enum imap_cmd_kind {
	IMAP_KIND_PLAIN = 0,
	IMAP_KIND_APPEND,	/* top-level literals after the mailbox are
				 * messages */
	IMAP_KIND_FETCH,	/* atoms may hold [...] sections */
	IMAP_KIND_UID,		/* a subcommand follows */
};

struct imap_parser;

/* One entry of the command table (imap_parse_cmd.c). */
struct imap_cmd_def {
	const char		*name;
	enum imap_cmd_type	 type;
	enum imap_cmd_kind	 kind;
	unsigned int		 flags;	/* IMAP_CMD_F_* */
	int	(*parse)(struct imap_parser *p, struct imap_command *cmd,
		    const struct imap_arg *args, size_t count);
};

#define IMAP_CMD_F_UID		0x1	/* may follow "UID" */

/* One token; lists know their member count as they grow. */
struct imap_tok {
	enum imap_arg_type	 type;
	unsigned int		 flags;
	uint32_t		 parent;	/* list index + 1; 0: top */
	size_t			 off;		/* text offset (strings) */
	size_t			 len;		/* text length; LIST: members */
	uint64_t		 size;		/* MESSAGE: size */
};

struct imap_parser {
	struct imap_parser_limits lim;
	bool		 utf8;			/* UTF8=ACCEPT */

	enum imap_lex	 state;
	/* The command data (text, tokens, arena) belongs to a command the
	 * caller has seen the end of: drop it at the next call. */
	bool		 stale;

	/* ---- the command being read ---- */
	struct buf	 text;			/* token text, each NUL-ended */
	struct imap_tok	*toks;
	size_t		 ntoks;
	size_t		 ntop;			/* top-level tokens */
	size_t		 toks_cap;
	uint32_t	*open;			/* open list token indexes */
	unsigned int	 depth;
	size_t		 line_bytes;		/* non-literal bytes */
	size_t		 literal_bytes;		/* literal bytes kept */
	bool		 secret;		/* wipe the text at reset */
	/* Tag, name and UID subcommand come before the arguments. */
	unsigned int	 pre;			/* of them read so far */
	unsigned int	 pre_needed;		/* 2, or 3 after "UID" */
	size_t		 tag_off;
	const struct imap_cmd_def *def;		/* once the name is known */
	bool		 uid;
	size_t		 tok_start;		/* text offset of the token */
	bool		 tok_8bit;		/* quoted string with 8-bit */

	/* literal being announced or read */
	uint64_t	 lit_size;
	unsigned int	 lit_digits;
	bool		 lit_overflow;
	bool		 lit_plus;
	bool		 lit_binary;
	uint64_t	 lit_remaining;

	/* APPEND */
	size_t		 msg_first;		/* first token of the message */
	unsigned int	 msg_index;
	const char	*append_mailbox;	/* in the arena */
	struct imap_append_msg append;

	/* skipping after an error: the "{n+}" at a line end (RFC 7888) */
	unsigned int	 sk_state;
	uint64_t	 sk_size;
	bool		 sk_overflow;

	/* results */
	struct imap_parse_error err;
	char		 err_text[128];
	struct imap_command cmd;
	const char	*line;
	size_t		 line_len;

	struct imap_arena_chunk *arena;
};

/* ---- helpers for the command parsers ---- */

/* Zeroed arena memory, valid until the command is dropped. */
void	*imap_parse_alloc(struct imap_parser *p, size_t size);
/* Arena array of n elements of size bytes, zeroed; aborts on
 * overflow. */
void	*imap_parse_alloc_array(struct imap_parser *p, size_t n, size_t size);
char	*imap_parse_strdup(struct imap_parser *p, const char *s, size_t len);

/*
 * Record a BAD for the command; returns -1 so parsers can write
 * "return imap_parse_fail(p, ...)".  text must be static.
 */
int	imap_parse_fail(struct imap_parser *p, const char *text);
/* The same with a response code and/or NO instead of BAD. */
int	imap_parse_fail_code(struct imap_parser *p, bool no, const char *code,
	    const char *text);

/* ATOM whose text equals word ignoring ASCII case. */
bool	imap_arg_atom_is(const struct imap_arg *a, const char *word);
/* QUOTED or LITERAL. */
bool	imap_arg_is_string(const struct imap_arg *a);
/*
 * astring (RFC 9051 §9): an atom of ASTRING-CHARs, or a string.  With
 * list_chars '%' and '*' are allowed in the atom too (list-mailbox).
 * Returns 0 and the text, or -1 with the BAD recorded.
 */
int	imap_arg_astring(struct imap_parser *p, const struct imap_arg *a,
	    bool list_chars, const char **s_r);
/* Whether the byte may appear in an atom (ATOM-CHAR). */
bool	imap_char_is_atom(unsigned char c);

/*
 * The one number helper (STYLE §7): s[0..len) all decimal digits, at
 * least one, at most max.  Returns 0 or -1.
 */
int	imap_parse_u64(const char *s, size_t len, uint64_t max,
	    uint64_t *val_r);
/* An argument that is a number atom in [min, max]; BAD otherwise. */
int	imap_arg_number(struct imap_parser *p, const struct imap_arg *a,
	    uint64_t min, uint64_t max, uint64_t *val_r);

/* A sequence set argument (atom) into the arena; BAD when invalid. */
int	imap_arg_seqset(struct imap_parser *p, const struct imap_arg *a,
	    unsigned int flags, struct imap_seqset *set_r);

/*
 * A mailbox argument: astring, decoded from modified UTF-7 unless
 * UTF8=ACCEPT is on, checked for control characters; "INBOX" in any
 * case becomes "INBOX" unless pattern is set (LIST patterns and
 * references keep '%' and '*').  NO [CANNOT] for undecodable names.
 */
int	imap_arg_mailbox(struct imap_parser *p, const struct imap_arg *a,
	    bool pattern, const char **name_r);

/* A flag list's members (STORE, APPEND): NO \Recent, no unknown
 * system flags (RFC 9051 §9 flag). */
int	imap_parse_flags(struct imap_parser *p, const struct imap_arg *args,
	    size_t count, struct imap_flags *flags_r);

/* The command table lookups. */
const struct imap_cmd_def *imap_cmd_lookup(const char *name, size_t len);
const struct imap_cmd_def *imap_cmd_lookup_uid(const char *name, size_t len);

/* Per-family command parsers in their files. */
int	imap_parse_cmd_fetch(struct imap_parser *p, struct imap_command *cmd,
	    const struct imap_arg *args, size_t count);
int	imap_parse_cmd_store(struct imap_parser *p, struct imap_command *cmd,
	    const struct imap_arg *args, size_t count);
int	imap_parse_cmd_search(struct imap_parser *p, struct imap_command *cmd,
	    const struct imap_arg *args, size_t count);
int	imap_parse_cmd_sort(struct imap_parser *p, struct imap_command *cmd,
	    const struct imap_arg *args, size_t count);
int	imap_parse_cmd_cancelupdate(struct imap_parser *p,
	    struct imap_command *cmd, const struct imap_arg *args,
	    size_t count);
int	imap_parse_cmd_thread(struct imap_parser *p, struct imap_command *cmd,
	    const struct imap_arg *args, size_t count);

/*
 * Parse the options of one APPEND message, args[0..count) being what
 * came between the previous message (or the mailbox) and its literal
 * (or its "UTF8"): [flag-list] [date-time].  Fills flags and date of
 * msg.
 */
int	imap_parse_append_opts(struct imap_parser *p,
	    const struct imap_arg *args, size_t count,
	    struct imap_append_msg *msg);

/* Sequence set parsing with an allocator (imap_seqset.c). */
int	imap_seqset_parse_with(const char *s, size_t len, unsigned int flags,
	    void *(*alloc)(void *ctx, size_t n, size_t size), void *ctx,
	    struct imap_seqset *set_r, const char **error_r);

/* Dump helpers (imap_parse_dump.c). */
void	imap_dump_string(struct buf *out, const char *s);
void	imap_dump_seqset(struct buf *out, const struct imap_seqset *set);

#endif
