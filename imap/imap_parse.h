/*
 * imap_parse: the IMAP command parser (DESIGN §10 "a bounded parser that
 * turns bytes into commands").  Client bytes go in as they arrive; typed
 * commands come out.  No sockets, no configuration file, no globals, no
 * replies written: the session decides what to answer, this module says
 * what the client sent (STYLE §1, §7).
 *
 * Two layers:
 *
 *   1. A byte-driven tokenizer (RFC 3501 §4, §9; RFC 9051 §4, §9): tag,
 *      command name, atoms, quoted strings with \" and \\, literals {n},
 *      non-synchronizing literals {n+} (RFC 7888), literal8 ~{n} for
 *      APPEND (RFC 3516), parenthesized lists.  Resumable at every byte:
 *      feeding input whole or one byte at a time gives the same events.
 *   2. Command parsing: the tokens of a complete command become a
 *      struct imap_command with one typed member per command family.
 *
 * Bounds (every one gives a BAD, never unbounded memory, DESIGN §9):
 * the non-literal bytes of one command (imap_max_line_length), the
 * literal bytes kept in memory for one command, list depth, argument
 * count, search key nesting.  APPEND message literals are never held in
 * memory: the parser stops at each one and passes its bytes through to
 * the caller, which streams them to a file.
 *
 * Input policy: a line ends at LF; a CR just before the LF is part of
 * the line end, a CR anywhere else outside a literal is an error.  NUL
 * is refused everywhere except inside an APPEND message.  Atoms are
 * ASCII; quoted strings may hold UTF-8 (RFC 9051 §4.3, RFC 6855), which
 * must be well-formed.  Runs of spaces count as one; spaces after '(',
 * before ')' and before the line end are ignored.  Empty lines are
 * skipped without a reply.
 *
 * Feeding protocol:
 *
 *	for (;;) {
 *		r = imap_parser_feed(p, in, in_len, &used);
 *		(act on r, see enum imap_parse_result)
 *		drop the first `used` bytes of in;
 *		if (r == IMAP_PARSE_MORE) break;	(read more input)
 *	}
 *
 * Feeding with in_len 0 is allowed (some events need no input).  While a
 * command runs the caller stops feeding (STYLE §6); everything the
 * parser returned for that command stays valid until the next
 * imap_parser_feed(), imap_parser_expect_line() or imap_parser_free().
 * The exception is an APPEND message's description, which lasts from
 * IMAP_PARSE_APPEND through its data to the call after
 * IMAP_PARSE_APPEND_END.
 *
 * Return convention elsewhere (STYLE §4): -1 error, 0 success.
 */
#ifndef POSTERN_IMAP_PARSE_H
#define POSTERN_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_seqset.h"

struct buf;
struct imap_parser;

/* ---- limits ---- */

struct imap_parser_limits {
	/* Non-literal bytes of one command, line ends included (the
	 * imap_max_line_length parameter; MAX_IMAP_LINE by default). */
	size_t		max_line;
	/* Literal bytes one command may keep in memory, all its literals
	 * together; APPEND messages do not count (MAX_IMAP_LITERAL). */
	size_t		max_literal;
	/* Parenthesized list nesting (MAX_IMAP_LIST_DEPTH). */
	unsigned int	max_depth;
	/* Arguments of one command, lists and their members included
	 * (MAX_IMAP_ARGS). */
	unsigned int	max_args;
	/* LITERAL- (RFC 7888 §5) instead of LITERAL+: a non-synchronizing
	 * literal over 4096 bytes is refused, with [TOOBIG]. */
	bool		literal_minus;
};

/* The defaults of limits_pst.h. */
void	imap_parser_limits_default(struct imap_parser_limits *lim);

/* ---- the parser ---- */

/*
 * A parser for one connection.  lim is copied; NULL means the defaults.
 * Limits of 0 are replaced by the defaults.
 */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *lim);
/* Free the parser and everything it returned; *pp becomes NULL.  Held
 * credentials are wiped first. */
void	imap_parser_free(struct imap_parser **pp);

/*
 * UTF8=ACCEPT was enabled (RFC 6855 §3): mailbox names are taken as
 * UTF-8 from now on, not decoded as modified UTF-7.  Never undone on a
 * connection.
 */
void	imap_parser_set_utf8(struct imap_parser *p, bool on);

enum imap_parse_result {
	/* The client sent a bad command, or a raw line was too long:
	 * imap_parser_error() says what to answer.  The parser has already
	 * begun to skip the rest of the command (to its line end, through
	 * any non-synchronizing literal, RFC 7888 §4) and returns to
	 * commands by itself. */
	IMAP_PARSE_ERROR = -1,
	/* All input was used; read more. */
	IMAP_PARSE_MORE = 0,
	/* A whole command: imap_parser_command(). */
	IMAP_PARSE_COMMAND = 1,
	/* A synchronizing literal was announced and is acceptable: send a
	 * continuation request ("+ OK") before feeding on (RFC 9051 §7.5). */
	IMAP_PARSE_CONTINUE = 2,
	/*
	 * An APPEND message literal was announced: imap_parser_append()
	 * describes it (mailbox, flags, date, size).  Either accept it:
	 * send "+ OK" when append->sync, then feed on and receive its
	 * bytes as IMAP_PARSE_APPEND_DATA events; or refuse it with
	 * imap_parser_append_reject() and answer NO/BAD yourself.
	 */
	IMAP_PARSE_APPEND = 3,
	/* Bytes of the message: the first *consumed_r bytes of the input
	 * given to this call. */
	IMAP_PARSE_APPEND_DATA = 4,
	/* The message is complete (always comes, also for {0});
	 * imap_parser_append() again, with nul_seen set.  The command goes
	 * on: another message or the end of the line (IMAP_PARSE_COMMAND,
	 * where the session commits the messages, RFC 3502 §6.3.11). */
	IMAP_PARSE_APPEND_END = 5,
	/* A raw line, after imap_parser_expect_line(): imap_parser_line(). */
	IMAP_PARSE_LINE = 6,
};

/*
 * Parse input data[0..len).  *consumed_r bytes were used (the rest is
 * for the next call).  See the enum for each result.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
	    const void *data, size_t len, size_t *consumed_r);

/*
 * The next line of input is not a command but a raw line (AUTHENTICATE
 * responses, RFC 9051 §6.2.2; "DONE" ending IDLE, RFC 2177): it comes
 * back as IMAP_PARSE_LINE, or as IMAP_PARSE_ERROR (untagged) when it is
 * longer than max_line or holds a NUL.  Call only between commands
 * (after IMAP_PARSE_COMMAND or IMAP_PARSE_LINE).  This drops the last
 * command: copy what is still needed (its tag) first.  The line is
 * wiped from memory when dropped, as LOGIN and AUTHENTICATE commands are.
 */
void	imap_parser_expect_line(struct imap_parser *p);

/* After IMAP_PARSE_LINE: the line without its line end, NUL-terminated
 * (NUL bytes are refused), its length in *len_r. */
const char *imap_parser_line(const struct imap_parser *p, size_t *len_r);

/* Whether line is "DONE" in any case: the end of IDLE (RFC 2177 §3). */
bool	imap_parser_line_is_done(const char *line, size_t len);

struct imap_parse_error {
	/* Tag of the command, or NULL (answer untagged "* BAD"). */
	const char	*tag;
	/* Human text for the reply, e.g. "Unknown command". */
	const char	*text;
	/* Response code without brackets ("TOOBIG", "CANNOT"), or NULL. */
	const char	*code;
	/* Answer NO instead of BAD: the syntax was fine, the value is not
	 * usable (a mailbox name that is not valid modified UTF-7). */
	bool		 no;
	/* The connection cannot be resynchronized (a non-synchronizing
	 * literal whose size overflows): answer "* BYE" and close; the
	 * parser ignores all further input. */
	bool		 fatal;
};

/*
 * After IMAP_PARSE_ERROR: what to answer; valid until the next call.
 * The error texts are fixed English phrases: they never echo client
 * bytes, so they can be sent and logged as they are.
 */
const struct imap_parse_error *imap_parser_error(
	    const struct imap_parser *p);

/*
 * Refuse the APPEND message announced by the last IMAP_PARSE_APPEND,
 * being received (after IMAP_PARSE_APPEND_DATA) or just received (after
 * IMAP_PARSE_APPEND_END, e.g. its data held a NUL or could not be
 * stored): the rest of the command is dropped.  A synchronizing literal the client still waits for the
 * "+" of is never sent by it; any other literal bytes, and the rest of
 * the command, are skipped (RFC 7888 §4).  The caller answers with its
 * tagged NO (e.g. "[TRYCREATE]", "[TOOBIG]") or BAD.
 */
void	imap_parser_append_reject(struct imap_parser *p);

/* ---- flags ---- */

/* System flags (RFC 9051 §2.3.2); the values are those of store.h's
 * STORE_* so a session can pass them on unchanged. */
#define IMAP_FLAG_SEEN		0x01
#define IMAP_FLAG_ANSWERED	0x02
#define IMAP_FLAG_FLAGGED	0x04
#define IMAP_FLAG_DELETED	0x08
#define IMAP_FLAG_DRAFT		0x10

struct imap_flags {
	uint32_t		 system;	/* IMAP_FLAG_* */
	const char *const	*keywords;	/* as sent, no duplicates
						 * (compared ignoring case) */
	size_t			 keyword_count;
};

/* ---- commands ---- */

enum imap_cmd_type {
	IMAP_CMD_CAPABILITY = 1,
	IMAP_CMD_NOOP,
	IMAP_CMD_LOGOUT,
	IMAP_CMD_STARTTLS,
	IMAP_CMD_AUTHENTICATE,
	IMAP_CMD_LOGIN,
	IMAP_CMD_ENABLE,
	IMAP_CMD_SELECT,
	IMAP_CMD_EXAMINE,
	IMAP_CMD_CREATE,
	IMAP_CMD_DELETE,
	IMAP_CMD_RENAME,
	IMAP_CMD_SUBSCRIBE,
	IMAP_CMD_UNSUBSCRIBE,
	IMAP_CMD_LIST,
	IMAP_CMD_LSUB,
	IMAP_CMD_NAMESPACE,
	IMAP_CMD_STATUS,
	IMAP_CMD_APPEND,
	IMAP_CMD_IDLE,
	IMAP_CMD_CHECK,
	IMAP_CMD_CLOSE,
	IMAP_CMD_UNSELECT,
	IMAP_CMD_EXPUNGE,
	IMAP_CMD_SEARCH,
	IMAP_CMD_FETCH,
	IMAP_CMD_STORE,
	IMAP_CMD_COPY,
	IMAP_CMD_MOVE,
	IMAP_CMD_ID,
	IMAP_CMD_SORT,
	IMAP_CMD_THREAD,
	IMAP_CMD_GETQUOTAROOT,
	IMAP_CMD_GETQUOTA,
	IMAP_CMD_SETQUOTA,
	IMAP_CMD_COMPRESS,
	IMAP_CMD_CANCELUPDATE,	/* RFC 5267 §4.3.5: u.enable holds the
				 * tags */
};

/* AUTHENTICATE mech [initial-response] (RFC 9051 §6.2.2, RFC 4959). */
struct imap_cmd_authenticate {
	const char	*mech;		/* upper case */
	/* SASL-IR initial response, base64 as sent; "" for "=" (an empty
	 * response); NULL when none was given. */
	const char	*initial;
};

/* LOGIN user password (astrings). */
struct imap_cmd_login {
	const char	*user;
	const char	*password;
};

/* ENABLE cap... (RFC 5161): names as sent. */
struct imap_cmd_enable {
	const char *const	*caps;
	size_t			 count;
};

/* SELECT/EXAMINE mailbox [(CONDSTORE | QRESYNC (...))] (RFC 7162). */
struct imap_cmd_select {
	const char		*mailbox;
	bool			 condstore;
	bool			 qresync;
	/* QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]) */
	uint32_t		 uidvalidity;
	uint64_t		 modseq;
	bool			 has_known_uids;
	struct imap_seqset	 known_uids;
	bool			 has_seq_match;
	struct imap_seqset	 known_seqs;
	struct imap_seqset	 known_seq_uids;
};

/* Special-use attributes (RFC 6154 §2) for CREATE (USE (...)). */
#define IMAP_USE_ALL		0x01
#define IMAP_USE_ARCHIVE	0x02
#define IMAP_USE_DRAFTS		0x04
#define IMAP_USE_FLAGGED	0x08
#define IMAP_USE_JUNK		0x10
#define IMAP_USE_SENT		0x20
#define IMAP_USE_TRASH		0x40
#define IMAP_USE_OTHER		0x80	/* an extension attribute: answer
					 * NO [USEATTR] unless supported */

struct imap_cmd_create {
	const char	*mailbox;
	unsigned int	 use;		/* IMAP_USE_* */
};

/* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT: one mailbox. */
struct imap_cmd_mailbox {
	const char	*mailbox;
};

struct imap_cmd_rename {
	const char	*from;
	const char	*to;
};

/* STATUS items (RFC 9051 §6.3.11, RFC 3501, RFC 7162, RFC 8438, RFC
 * 7889, RFC 8474), also for LIST ... RETURN (STATUS (...)). */
#define IMAP_STATUS_MESSAGES		0x001
#define IMAP_STATUS_RECENT		0x002
#define IMAP_STATUS_UIDNEXT		0x004
#define IMAP_STATUS_UIDVALIDITY		0x008
#define IMAP_STATUS_UNSEEN		0x010
#define IMAP_STATUS_HIGHESTMODSEQ	0x020
#define IMAP_STATUS_SIZE		0x040
#define IMAP_STATUS_DELETED		0x080
#define IMAP_STATUS_APPENDLIMIT		0x100
#define IMAP_STATUS_MAILBOXID		0x200

struct imap_cmd_status {
	const char	*mailbox;
	unsigned int	 items;		/* IMAP_STATUS_*, never 0 */
};

/* LIST selection options (RFC 5258 §3.1, RFC 6154 §5.1). */
#define IMAP_LIST_SEL_SUBSCRIBED	0x01
#define IMAP_LIST_SEL_REMOTE		0x02
#define IMAP_LIST_SEL_RECURSIVEMATCH	0x04
#define IMAP_LIST_SEL_SPECIAL_USE	0x08
/* LIST return options (RFC 5258 §3.2, RFC 6154 §5.1, RFC 5819). */
#define IMAP_LIST_RET_SUBSCRIBED	0x01
#define IMAP_LIST_RET_CHILDREN		0x02
#define IMAP_LIST_RET_SPECIAL_USE	0x04
#define IMAP_LIST_RET_STATUS		0x08

/* LIST [(sel...)] reference (pattern | (pattern...)) [RETURN (...)];
 * LSUB reference pattern. */
struct imap_cmd_list {
	const char		*reference;	/* UTF-8 */
	const char *const	*patterns;	/* UTF-8; '%' and '*' kept */
	size_t			 pattern_count;	/* >= 1 */
	unsigned int		 select;	/* IMAP_LIST_SEL_* */
	unsigned int		 ret;		/* IMAP_LIST_RET_* */
	unsigned int		 status;	/* IMAP_STATUS_*, RET_STATUS */
	/* An RFC 5258 form was used: answer in the extended way. */
	bool			 extended;
};

/* One part of a CATENATE message (RFC 4469 §5): TEXT literal or URL. */
struct imap_cat_part {
	bool		 url;
	const char	*data;		/* the literal's bytes, or the URL */
	size_t		 len;
};

/* One message of APPEND (RFC 9051 §6.3.12, RFC 3502 MULTIAPPEND). */
struct imap_append_msg {
	const char		*tag;		/* of the APPEND command, for
						 * the NO of a refusal */
	const char		*mailbox;	/* UTF-8, "INBOX" normalised */
	struct imap_flags	 flags;
	bool			 has_date;
	time_t			 date;		/* internal date */
	int			 tz;		/* its zone, minutes east */
	uint64_t		 size;		/* literal size */
	bool			 binary;	/* literal8 ~{n} (RFC 3516) */
	bool			 sync;		/* "+" wanted before the data */
	bool			 utf8;		/* UTF8 (~{n}) (RFC 6855) */
	/* At IMAP_PARSE_APPEND_END: the data held a NUL byte (a normal
	 * literal must not, RFC 3516 §4.2: answer NO). */
	bool			 nul_seen;
	unsigned int		 index;		/* 0 for the first message */
	/* CATENATE (RFC 4469): the message is built from these parts at
	 * IMAP_PARSE_COMMAND (no APPEND events); 0 for a literal. */
	const struct imap_cat_part *parts;
	size_t			 nparts;
};

/* The whole APPEND, at IMAP_PARSE_COMMAND once every message was passed
 * through: the session commits them all now, or none (RFC 3502 §6.3.11:
 * MULTIAPPEND is atomic). */
struct imap_cmd_append {
	const char			*mailbox;
	const struct imap_append_msg	*msgs;
	size_t				 count;		/* >= 1 */
};

/* ---- SEARCH ---- */

enum imap_search_type {
	IMAP_SEARCH_AND = 1,	/* children: all must match */
	IMAP_SEARCH_OR,		/* children: exactly two */
	IMAP_SEARCH_NOT,	/* children: exactly one */
	IMAP_SEARCH_ALL,
	IMAP_SEARCH_ANSWERED,
	IMAP_SEARCH_DELETED,
	IMAP_SEARCH_DRAFT,
	IMAP_SEARCH_FLAGGED,
	IMAP_SEARCH_NEW,
	IMAP_SEARCH_OLD,
	IMAP_SEARCH_RECENT,
	IMAP_SEARCH_SEEN,
	IMAP_SEARCH_UNANSWERED,
	IMAP_SEARCH_UNDELETED,
	IMAP_SEARCH_UNDRAFT,
	IMAP_SEARCH_UNFLAGGED,
	IMAP_SEARCH_UNSEEN,
	IMAP_SEARCH_KEYWORD,	/* str */
	IMAP_SEARCH_UNKEYWORD,	/* str */
	IMAP_SEARCH_BCC,	/* str: substring of the field */
	IMAP_SEARCH_BODY,
	IMAP_SEARCH_CC,
	IMAP_SEARCH_FROM,
	IMAP_SEARCH_SUBJECT,
	IMAP_SEARCH_TEXT,
	IMAP_SEARCH_TO,
	IMAP_SEARCH_HEADER,	/* field: name, str: substring */
	IMAP_SEARCH_BEFORE,	/* date: internal date */
	IMAP_SEARCH_ON,
	IMAP_SEARCH_SINCE,
	IMAP_SEARCH_SENTBEFORE,	/* date: Date: header */
	IMAP_SEARCH_SENTON,
	IMAP_SEARCH_SENTSINCE,
	IMAP_SEARCH_SAVEDBEFORE, /* date: save date (RFC 8514) */
	IMAP_SEARCH_SAVEDON,
	IMAP_SEARCH_SAVEDSINCE,
	IMAP_SEARCH_SAVEDATESUPPORTED,
	IMAP_SEARCH_LARGER,	/* num: RFC822.SIZE */
	IMAP_SEARCH_SMALLER,
	IMAP_SEARCH_OLDER,	/* num: seconds (RFC 5032) */
	IMAP_SEARCH_YOUNGER,
	IMAP_SEARCH_MODSEQ,	/* num; field/entry_type when given */
	IMAP_SEARCH_SEQSET,	/* set: sequence numbers (or "$") */
	IMAP_SEARCH_UID,	/* set: UIDs (or "$") */
	IMAP_SEARCH_EMAILID,	/* str (RFC 8474) */
	IMAP_SEARCH_THREADID,	/* str */
};

/* MODSEQ "/flags/..." entry types (RFC 7162 §3.1.5). */
enum imap_modseq_entry {
	IMAP_MODSEQ_ENTRY_NONE = 0,
	IMAP_MODSEQ_ENTRY_PRIV,
	IMAP_MODSEQ_ENTRY_SHARED,
	IMAP_MODSEQ_ENTRY_ALL,
};

struct imap_search_key {
	enum imap_search_type	 type;
	/* AND/OR/NOT: the first child; children are linked by next. */
	const struct imap_search_key *child;
	const struct imap_search_key *next;
	const char		*str;
	const char		*field;	/* HEADER name; MODSEQ entry name */
	enum imap_modseq_entry	 entry_type;
	uint64_t		 num;
	time_t			 date;	/* 00:00 UTC of the day */
	struct imap_seqset	 set;
};

/* SEARCH RETURN options (RFC 4731, RFC 5182, RFC 5267 ESORT). */
#define IMAP_SEARCH_RET_MIN	0x01
#define IMAP_SEARCH_RET_MAX	0x02
#define IMAP_SEARCH_RET_ALL	0x04
#define IMAP_SEARCH_RET_COUNT	0x08
#define IMAP_SEARCH_RET_SAVE	0x10
#define IMAP_SEARCH_RET_PARTIAL	0x20	/* RFC 5267 §4.4 */
#define IMAP_SEARCH_RET_CONTEXT	0x40	/* RFC 5267 §4.2 (a hint) */
#define IMAP_SEARCH_RET_UPDATE	0x80	/* RFC 5267 §4.3 */

struct imap_cmd_search {
	const char		*charset;	/* NULL when not given */
	/* RETURN (...) was given: answer ESEARCH.  "RETURN ()" means
	 * ALL (RFC 4731 §3.1). */
	bool			 esearch;
	unsigned int		 ret;		/* IMAP_SEARCH_RET_* */
	uint32_t		 partial_lo;	/* PARTIAL lo:hi, lo <= hi */
	uint32_t		 partial_hi;
	const struct imap_search_key *key;	/* an AND of the program */
};

/* SORT keys (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO). */
enum imap_sort_key {
	IMAP_SORT_ARRIVAL = 1,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM,
	IMAP_SORT_DISPLAYTO,
};

struct imap_sort_criterion {
	enum imap_sort_key	key;
	bool			reverse;
};

struct imap_cmd_sort {
	const struct imap_sort_criterion *criteria;
	size_t			 criteria_count;	/* >= 1 */
	struct imap_cmd_search	 search;		/* charset set */
};

enum imap_thread_alg {
	IMAP_THREAD_ORDEREDSUBJECT = 1,
	IMAP_THREAD_REFERENCES,
	IMAP_THREAD_REFS,	/* REFERENCES without subject merging,
				 * threads by their latest date */
};

struct imap_cmd_thread {
	enum imap_thread_alg	 alg;
	struct imap_cmd_search	 search;	/* charset set */
};

/* ---- FETCH ---- */

#define IMAP_FETCH_UID			0x0001
#define IMAP_FETCH_FLAGS		0x0002
#define IMAP_FETCH_INTERNALDATE		0x0004
#define IMAP_FETCH_RFC822_SIZE		0x0008
#define IMAP_FETCH_ENVELOPE		0x0010
#define IMAP_FETCH_BODY			0x0020	/* BODY: the structure,
						 * no extension data */
#define IMAP_FETCH_BODYSTRUCTURE	0x0040
#define IMAP_FETCH_RFC822		0x0080	/* sets \Seen */
#define IMAP_FETCH_RFC822_HEADER	0x0100
#define IMAP_FETCH_RFC822_TEXT		0x0200	/* sets \Seen */
#define IMAP_FETCH_MODSEQ		0x0400
#define IMAP_FETCH_EMAILID		0x0800
#define IMAP_FETCH_THREADID		0x1000
#define IMAP_FETCH_SAVEDATE		0x2000
#define IMAP_FETCH_PREVIEW		0x4000	/* RFC 8970; "(LAZY)" is
						 * accepted and ignored */

enum imap_fetch_kind {
	IMAP_FETCH_KIND_BODY = 1,	/* BODY[...] / BODY.PEEK[...] */
	IMAP_FETCH_KIND_BINARY,		/* BINARY[...] / BINARY.PEEK[...] */
	IMAP_FETCH_KIND_BINARY_SIZE,	/* BINARY.SIZE[...] */
};

enum imap_section_text {
	IMAP_SECTION_ALL = 0,		/* [] or [1.2]: the whole part */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,		/* only after a part number */
};

struct imap_fetch_body {
	enum imap_fetch_kind	 kind;
	bool			 peek;		/* no \Seen */
	const uint32_t		*part;		/* "1.2.3": {1, 2, 3} */
	size_t			 part_count;
	enum imap_section_text	 text;
	const char *const	*fields;	/* HEADER.FIELDS names */
	size_t			 field_count;
	bool			 partial;	/* <offset.length> */
	uint64_t		 offset;
	uint64_t		 length;	/* >= 1 */
	/* The item name of the reply, without "<origin>":
	 * "BODY[HEADER.FIELDS (From To)]", "BINARY.SIZE[1]". */
	const char		*name;
};

struct imap_cmd_fetch {
	struct imap_seqset	 set;
	uint32_t		 items;		/* IMAP_FETCH_* */
	const struct imap_fetch_body *bodies;	/* in the order sent */
	size_t			 body_count;
	/* UID FETCH adds IMAP_FETCH_UID to items (RFC 9051 §6.4.9). */
	bool			 has_changedsince;	/* RFC 7162 §3.1.4 */
	uint64_t		 changedsince;
	bool			 vanished;		/* UID FETCH only */
	/* Some item sets \Seen (RFC822, RFC822.TEXT, BODY[...] or
	 * BINARY[...] without .PEEK). */
	bool			 sets_seen;
};

/* ---- STORE, COPY, MOVE, EXPUNGE ---- */

struct imap_cmd_store {
	struct imap_seqset	 set;
	/* 0 FLAGS (replace), 1 +FLAGS (add), -1 -FLAGS (remove): the
	 * mode argument of store_msg_set_flags(). */
	int			 mode;
	bool			 silent;
	struct imap_flags	 flags;
	bool			 has_unchangedsince;	/* RFC 7162 §3.1.3 */
	uint64_t		 unchangedsince;
};

struct imap_cmd_copy {
	struct imap_seqset	 set;
	const char		*mailbox;
};

/* UID EXPUNGE set (RFC 4315 §2.1); EXPUNGE has no set. */
struct imap_cmd_expunge {
	struct imap_seqset	 set;
};

/* ID (RFC 2971): NIL, or up to 30 field/value pairs. */
struct imap_cmd_id {
	const char *const	*fields;	/* NULL-free */
	const char *const	*values;	/* NULL for NIL */
	size_t			 count;		/* 0 for NIL */
};

/* GETQUOTA root, SETQUOTA root (resource limit ...) (RFC 9208): a quota
 * root name, not a mailbox; SETQUOTA's limits are checked, not kept. */
struct imap_cmd_getquota {
	const char	*root;
};

/* COMPRESS mechanism (RFC 4978 §3): the atom as sent. */
struct imap_cmd_compress {
	const char	*mech;
};

struct imap_command {
	const char		*tag;
	/* The command name in upper case ("FETCH"); with uid set the
	 * client sent "UID FETCH". */
	const char		*name;
	enum imap_cmd_type	 type;
	bool			 uid;
	union {
		struct imap_cmd_authenticate	authenticate;
		struct imap_cmd_login		login;
		struct imap_cmd_enable		enable;
		struct imap_cmd_select		select;	/* and EXAMINE */
		struct imap_cmd_create		create;
		struct imap_cmd_mailbox		mailbox; /* DELETE, SUBSCRIBE,
							 * UNSUBSCRIBE,
							 * GETQUOTAROOT */
		struct imap_cmd_rename		rename;
		struct imap_cmd_list		list;	/* and LSUB */
		struct imap_cmd_status		status;
		struct imap_cmd_append		append;
		struct imap_cmd_search		search;
		struct imap_cmd_fetch		fetch;
		struct imap_cmd_store		store;
		struct imap_cmd_copy		copy;	/* and MOVE */
		struct imap_cmd_expunge		expunge;
		struct imap_cmd_id		id;
		struct imap_cmd_sort		sort;
		struct imap_cmd_thread		thread;
		struct imap_cmd_getquota	getquota;
		struct imap_cmd_compress	compress;
	} u;
};

/* After IMAP_PARSE_COMMAND: the command (owned by the parser). */
const struct imap_command *imap_parser_command(const struct imap_parser *p);

/* After IMAP_PARSE_APPEND or IMAP_PARSE_APPEND_END: the message. */
const struct imap_append_msg *imap_parser_append(const struct imap_parser *p);

/*
 * A one-line description of cmd for tests and debug logs: the command
 * with its typed fields, e.g. "t1 UID FETCH set=1:* items=FLAGS".
 * The LOGIN password and the AUTHENTICATE initial response are shown
 * only when show_secrets is set.
 */
void	imap_command_dump(const struct imap_command *cmd, bool show_secrets,
	    struct buf *out);

#endif
