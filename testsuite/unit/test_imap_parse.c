/*
 * Unit tests for the IMAP parser (imap/): the tokenizer and every
 * command form, the strings real clients send, bad input, sequence sets,
 * modified UTF-7 and dates.
 *
 * Conversations are scripts: client bytes in, a transcript out, one line
 * per parser event, written the way a session would act on it.  Each
 * script is fed whole, one byte at a time and in several chunk sizes,
 * and must give the same transcript each way (STYLE §8).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_date.h"
#include "imap_parse.h"
#include "imap_seqset.h"
#include "imap_utf7.h"
#include "test.h"

/* ---- the script driver ---- */

struct script_opts {
	const struct imap_parser_limits *lim;
	bool		 utf8;
	/* APPEND messages of this size are refused (the session's NO). */
	uint64_t	 reject_size;
	bool		 reject;
};

static void
esc_bytes(struct buf *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			buf_append_str(out, "\\r");
		else if (c == '\n')
			buf_append_str(out, "\\n");
		else if (c < 0x20 || c > 0x7e || c == '\\')
			buf_printf(out, "\\x%02x", c);
		else
			buf_append_char(out, (char)c);
	}
}

/*
 * Run input through a parser in pieces of at most step bytes (0: all at
 * once), acting like a session: "+" for a continuation, a raw line after
 * IDLE or AUTHENTICATE without an initial response, APPEND messages
 * collected (or refused per opts).  Returns the transcript, malloc'ed.
 */
static char *
run_script(const char *input, size_t len, size_t step,
    const struct script_opts *opts)
{
	struct imap_parser *p = imap_parser_new(opts->lim);
	struct buf in, out, msg;
	size_t off = 0;
	bool eof = false;

	imap_parser_set_utf8(p, opts->utf8);
	buf_init(&in, 0);
	buf_init(&out, 0);
	buf_init(&msg, 0);
	while (!eof) {
		size_t n = step == 0 || len - off < step ? len - off : step;

		buf_append(&in, input + off, n);
		off += n;
		eof = off == len;
		for (;;) {
			const struct imap_parse_error *e;
			const struct imap_append_msg *am;
			const struct imap_command *cmd;
			const char *line;
			size_t used, llen;
			enum imap_parse_result r;

			r = imap_parser_feed(p, in.data, in.len, &used);
			switch (r) {
			case IMAP_PARSE_MORE:
				break;
			case IMAP_PARSE_COMMAND:
				cmd = imap_parser_command(p);
				imap_command_dump(cmd, true, &out);
				buf_append_char(&out, '\n');
				if (cmd->type == IMAP_CMD_IDLE ||
				    (cmd->type == IMAP_CMD_AUTHENTICATE &&
				    cmd->u.authenticate.initial == NULL)) {
					buf_consume(&in, used);
					imap_parser_expect_line(p);
					continue;
				}
				break;
			case IMAP_PARSE_CONTINUE:
				buf_append_str(&out, "+\n");
				break;
			case IMAP_PARSE_ERROR:
				e = imap_parser_error(p);
				buf_printf(&out, "%s %s %s%s%s%s\n",
				    e->fatal ? "BYE" : e->no ? "NO" : "BAD",
				    e->tag != NULL ? e->tag : "*",
				    e->code != NULL ? "[" : "",
				    e->code != NULL ? e->code : "",
				    e->code != NULL ? "] " : "", e->text);
				break;
			case IMAP_PARSE_APPEND:
				am = imap_parser_append(p);
				buf_printf(&out, "APPEND %s %u %s %llu%s\n",
				    am->tag, am->index, am->mailbox,
				    (unsigned long long)am->size,
				    am->sync ? " +" : "");
				buf_reset(&msg);
				if (opts->reject &&
				    am->size == opts->reject_size) {
					buf_append_str(&out, "NO refused\n");
					imap_parser_append_reject(p);
				}
				break;
			case IMAP_PARSE_APPEND_DATA:
				buf_append(&msg, in.data, used);
				break;
			case IMAP_PARSE_APPEND_END:
				am = imap_parser_append(p);
				buf_append_str(&out, "DATA ");
				esc_bytes(&out, msg.data, msg.len);
				buf_printf(&out, "%s\n", am->nul_seen ?
				    " (NUL)" : "");
				break;
			case IMAP_PARSE_LINE:
				line = imap_parser_line(p, &llen);
				buf_append_str(&out, "LINE ");
				esc_bytes(&out, line, llen);
				buf_append_char(&out, '\n');
				break;
			}
			buf_consume(&in, used);
			if (r == IMAP_PARSE_MORE)
				break;
		}
	}
	imap_parser_free(&p);
	test_assert(p == NULL);
	buf_free(&in);
	buf_free(&msg);
	if (out.len == 0)
		buf_append_str(&out, "");
	return buf_steal(&out);
}

static void
check_script_opts(const char *name, const char *input, size_t len,
    const struct script_opts *opts, const char *want)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7, 64 };
	size_t i;

	test_begin(name);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *got = run_script(input, len, steps[i], opts);

		test_assert_streq(got, want);
		free(got);
	}
	test_end();
}

/* A script given as a string literal, NUL bytes and all. */
#define CHECK_OPTS(name, lit, opts, want) \
	check_script_opts((name), (lit), sizeof(lit) - 1, (opts), (want))

static void
check_script(const char *name, const char *input, const char *want)
{
	struct script_opts opts;

	memset(&opts, 0, sizeof(opts));
	check_script_opts(name, input, strlen(input), &opts, want);
}

/* ---- simple commands ---- */

static void
test_simple(void)
{
	struct imap_parser_limits lim;

	test_begin("default limits");
	imap_parser_limits_default(&lim);
	test_assert(lim.max_line == 65536 && lim.max_literal == 65536 &&
	    lim.max_depth == 32 && lim.max_args == 4096 &&
	    !lim.literal_minus);
	test_end();

	check_script("no-argument commands",
	    "a1 CAPABILITY\r\na2 noop\r\na3 Logout\r\nA4 STARTTLS\r\n"
	    "a5 NAMESPACE\r\na6 CHECK\r\na7 CLOSE\r\na8 UNSELECT\r\n",
	    "a1 CAPABILITY\na2 NOOP\na3 LOGOUT\nA4 STARTTLS\n"
	    "a5 NAMESPACE\na6 CHECK\na7 CLOSE\na8 UNSELECT\n");
	check_script("bare LF, empty lines, extra spaces",
	    "\r\n\na1 NOOP\n\r\na2 NOOP \r\na3   NOOP\r\n"
	    "a4 FETCH  1 ( FLAGS  UID )  \r\n",
	    "a1 NOOP\na2 NOOP\na3 NOOP\na4 FETCH set=1 items=UID,FLAGS\n");
	check_script("Apple Mail tags and pipelining",
	    "1.854 CAPABILITY\r\n2.854 NOOP\r\n3.854 LOGOUT\r\n",
	    "1.854 CAPABILITY\n2.854 NOOP\n3.854 LOGOUT\n");
	check_script("arguments where none belong",
	    "a NOOP x\r\nb CAPABILITY (x)\r\nc NOOP\r\n",
	    "BAD a Unexpected arguments\n"
	    "BAD b Unexpected arguments\nc NOOP\n");
	check_script("IDLE and DONE",
	    "a IDLE\r\nDONE\r\nb IDLE\r\ndone\nc NOOP\r\n",
	    "a IDLE\nLINE DONE\nb IDLE\nLINE done\nc NOOP\n");
	test_begin("DONE recognition");
	test_assert(imap_parser_line_is_done("DONE", 4));
	test_assert(imap_parser_line_is_done("Done", 4));
	test_assert(!imap_parser_line_is_done("DONE ", 5));
	test_assert(!imap_parser_line_is_done("DON", 3));
	test_end();
}

/* ---- login and authentication ---- */

static void
test_login(void)
{
	check_script("LOGIN with atoms and quoted strings",
	    "a LOGIN fred \"a \\\"b\\\\ c\"\r\nb login \"\" \"\"\r\n",
	    "a LOGIN user=\"fred\" password=\"a \\\"b\\\\ c\"\n"
	    "b LOGIN user=\"\" password=\"\"\n");
	check_script("LOGIN with synchronizing literals",
	    "a LOGIN {4}\r\nfred {8}\r\npass wor\r\n",
	    "+\n+\na LOGIN user=\"fred\" password=\"pass wor\"\n");
	/* The example of RFC 7888 §3. */
	check_script("LOGIN with non-synchronizing literals",
	    "A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n",
	    "A001 LOGIN user=\"FRED FOOBAR\" password=\"fat man\"\n");
	check_script("LOGIN with an empty literal and CRLF inside",
	    "a LOGIN {0}\r\n {4+}\r\na\r\nb\r\n",
	    "+\na LOGIN user=\"\" password=\"a\\x0d\\x0ab\"\n");
	check_script("LOGIN argument errors",
	    "a LOGIN fred\r\nb LOGIN a b c\r\nc LOGIN (a) b\r\n"
	    "d LOGIN a% b\r\n",
	    "BAD a Expected user name and password\n"
	    "BAD b Expected user name and password\n"
	    "BAD c Expected a string\n"
	    "BAD d Invalid characters in atom\n");
	check_script("AUTHENTICATE with SASL-IR",
	    "a AUTHENTICATE plain AGZyZWQAZmF0IG1hbg==\r\n"
	    "b AUTHENTICATE PLAIN =\r\n",
	    "a AUTHENTICATE mech=PLAIN initial=\"AGZyZWQAZmF0IG1hbg==\"\n"
	    "b AUTHENTICATE mech=PLAIN initial=\"\"\n");
	check_script("AUTHENTICATE with a challenge round",
	    "68 authenticate PLAIN\r\nAGZyZWQAZmF0IG1hbg==\r\n69 NOOP\r\n",
	    "68 AUTHENTICATE mech=PLAIN\nLINE AGZyZWQAZmF0IG1hbg==\n"
	    "69 NOOP\n");
	check_script("AUTHENTICATE errors",
	    "a AUTHENTICATE\r\nb AUTHENTICATE PLAIN a!b\r\n"
	    "c AUTHENTICATE \"PLAIN\"\r\n",
	    "BAD a Expected a SASL mechanism\n"
	    "BAD b Invalid initial response\n"
	    "BAD c Expected a SASL mechanism\n");

	test_begin("secrets are hidden in the dump unless asked for");
	{
		struct imap_parser *p = imap_parser_new(NULL);
		const char *in = "a LOGIN fred secret\r\n";
		struct buf b;
		size_t used;

		buf_init(&b, 0);
		test_assert(imap_parser_feed(p, in, strlen(in), &used) ==
		    IMAP_PARSE_COMMAND);
		imap_command_dump(imap_parser_command(p), false, &b);
		test_assert_streq(buf_cstr(&b),
		    "a LOGIN user=\"fred\" password=***");
		buf_free(&b);
		imap_parser_free(&p);
	}
	test_end();
}

/* ---- mailboxes ---- */

static void
test_mailboxes(void)
{
	struct script_opts opts;
	const char *in;

	check_script("SELECT and EXAMINE",
	    "a SELECT INBOX\r\nb select \"inbox\"\r\nc EXAMINE Archive\r\n"
	    "d SELECT \"[Gmail]/All Mail\" (CONDSTORE)\r\n"
	    "e SELECT INBOX/Sub\r\n",
	    "a SELECT mailbox=\"INBOX\"\nb SELECT mailbox=\"INBOX\"\n"
	    "c EXAMINE mailbox=\"Archive\"\n"
	    "d SELECT mailbox=\"[Gmail]/All Mail\" condstore\n"
	    "e SELECT mailbox=\"INBOX/Sub\"\n");
	/* RFC 7162 §3.2.5.2 examples. */
	check_script("SELECT with QRESYNC",
	    "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 "
	    "41,43:211,214:541))\r\n"
	    "B02 SELECT INBOX (QRESYNC (67890007 90060115194045000 "
	    "41:211,214:541 (1:5,9:10 41:45,100:101)) CONDSTORE)\r\n"
	    "C02 EXAMINE INBOX (QRESYNC (1 2 (1 2)))\r\n",
	    "A02 SELECT mailbox=\"INBOX\" qresync=(uidvalidity=67890007 "
	    "modseq=20050715194045000 known=41,43:211,214:541)\n"
	    "B02 SELECT mailbox=\"INBOX\" condstore qresync=("
	    "uidvalidity=67890007 modseq=90060115194045000 "
	    "known=41:211,214:541 seqs=1:5,9:10 uids=41:45,100:101)\n"
	    "C02 EXAMINE mailbox=\"INBOX\" qresync=(uidvalidity=1 "
	    "modseq=2 seqs=1 uids=2)\n");
	check_script("SELECT parameter errors",
	    "a SELECT INBOX (FOO)\r\nb SELECT INBOX (QRESYNC (0 1))\r\n"
	    "c SELECT INBOX (QRESYNC (1 1 1:*))\r\n"
	    "d SELECT INBOX (CONDSTORE CONDSTORE)\r\ne SELECT\r\n"
	    "f SELECT INBOX (QRESYNC (1 0))\r\n"
	    "g SELECT INBOX (QRESYNC)\r\n",
	    "BAD a Unknown select parameter\nBAD b Invalid number\n"
	    "BAD c '*' not allowed here\n"
	    "BAD d Unknown select parameter\nBAD e Expected a mailbox\n"
	    "BAD f Invalid number\nBAD g Unknown select parameter\n");
	check_script("CREATE, DELETE, RENAME, SUBSCRIBE",
	    "a CREATE Sent (USE (\\Sent))\r\n"
	    "b CREATE x (USE (\\Junk \\Foo))\r\n"
	    "c DELETE \"Old Mail\"\r\nd RENAME a b\r\ne SUBSCRIBE Sent\r\n"
	    "f UNSUBSCRIBE Sent\r\ng CREATE x (FOO)\r\nh RENAME a\r\n"
	    "i CREATE x (USE (Sent))\r\n",
	    "a CREATE mailbox=\"Sent\" use=\\Sent\n"
	    "b CREATE mailbox=\"x\" use=\\Junk,other\n"
	    "c DELETE mailbox=\"Old Mail\"\n"
	    "d RENAME from=\"a\" to=\"b\"\ne SUBSCRIBE mailbox=\"Sent\"\n"
	    "f UNSUBSCRIBE mailbox=\"Sent\"\n"
	    "BAD g Unknown CREATE parameter\n"
	    "BAD h Expected two mailboxes\n"
	    "BAD i Invalid special-use attribute\n");
	/* RFC 3501 §5.1.3's example name, and a bad one. */
	check_script("modified UTF-7 names",
	    "a SELECT \"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"\r\n"
	    "b CREATE Entw&APw-rfe\r\nc SELECT \"a&b\"\r\n"
	    "d SELECT \"&AGE-\"\r\ne CREATE \"Entw\xc3\xbcrfe\"\r\n"
	    "f SELECT \"a&-b\"\r\ng SELECT \"&AAE-\"\r\n",
	    "a SELECT mailbox=\"~peter/mail/\\xe5\\x8f\\xb0\\xe5\\x8c\\x97/"
	    "\\xe6\\x97\\xa5\\xe6\\x9c\\xac\\xe8\\xaa\\x9e\"\n"
	    "b CREATE mailbox=\"Entw\\xc3\\xbcrfe\"\n"
	    "NO c [CANNOT] Mailbox name is not valid modified UTF-7\n"
	    "NO d [CANNOT] Mailbox name is not valid modified UTF-7\n"
	    "NO e [CANNOT] Mailbox name is not valid modified UTF-7\n"
	    "f SELECT mailbox=\"a&b\"\n"
	    "NO g [CANNOT] Mailbox name contains control characters\n");

	memset(&opts, 0, sizeof(opts));
	opts.utf8 = true;
	in = "a CREATE \"Entw\xc3\xbcrfe\"\r\nb SELECT \"a&b\"\r\n"
	    "c SELECT {3}\r\n\xc3\x28x\r\n"
	    "d APPEND \"\xc3\xa9t\xc3\xa9\" {1+}\r\nx\r\n";
	check_script_opts("UTF8=ACCEPT names", in, strlen(in), &opts,
	    "a CREATE mailbox=\"Entw\\xc3\\xbcrfe\"\n"
	    "b SELECT mailbox=\"a&b\"\n+\n"
	    "NO c [CANNOT] Mailbox name is not valid UTF-8\n"
	    "APPEND d 0 \xc3\xa9t\xc3\xa9 1\nDATA x\n"
	    "d APPEND mailbox=\"\\xc3\\xa9t\\xc3\\xa9\" msg0=(size=1 "
	    "flags=() nonsync)\n");

	check_script("LIST forms",
	    "a LIST \"\" \"*\"\r\nb list \"\" %\r\nc LIST \"\" \"\"\r\n"
	    "d LIST (SPECIAL-USE) \"\" \"*\"\r\n"
	    "e LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" "
	    "RETURN (CHILDREN)\r\n"
	    "f LIST \"\" (INBOX \"Sent\" Ar*) RETURN (STATUS (MESSAGES "
	    "UNSEEN) SPECIAL-USE)\r\n"
	    "g LIST \"\" [Gmail]/%\r\nh LSUB \"\" \"*\"\r\n"
	    "i LIST () \"\" * RETURN ()\r\n"
	    "j LIST \"Entw&APw-rfe/\" &AOk-*\r\n",
	    "a LIST ref=\"\" patterns=\"*\"\nb LIST ref=\"\" patterns=\"%\"\n"
	    "c LIST ref=\"\" patterns=\"\"\n"
	    "d LIST ref=\"\" patterns=\"*\" select=SPECIAL-USE extended\n"
	    "e LIST ref=\"\" patterns=\"%\" select=SUBSCRIBED,RECURSIVEMATCH "
	    "return=CHILDREN extended\n"
	    "f LIST ref=\"\" patterns=\"INBOX\",\"Sent\",\"Ar*\" "
	    "return=SPECIAL-USE,STATUS status=MESSAGES,UNSEEN extended\n"
	    "g LIST ref=\"\" patterns=\"[Gmail]/%\"\n"
	    "h LSUB ref=\"\" patterns=\"*\"\n"
	    "i LIST ref=\"\" patterns=\"*\" extended\n"
	    "j LIST ref=\"Entw\\xc3\\xbcrfe/\" patterns=\"\\xc3\\xa9*\"\n");
	check_script("LIST errors",
	    "a LIST (RECURSIVEMATCH) \"\" *\r\nb LIST (FOO) \"\" *\r\n"
	    "c LIST \"\" * RETURN (FOO)\r\nd LIST \"\"\r\n"
	    "e LIST \"\" () \r\nf LIST \"\" * RETURN (STATUS ())\r\n"
	    "g LSUB \"\"\r\nh LIST \"\" * EXTRA\r\n",
	    "BAD a RECURSIVEMATCH needs another selection option\n"
	    "BAD b Unknown LIST selection option\n"
	    "BAD c Unknown LIST return option\n"
	    "BAD d Expected reference and pattern\n"
	    "BAD e Empty pattern list\n"
	    "BAD f Expected a list of status items\n"
	    "BAD g Expected reference and pattern\n"
	    "BAD h Unexpected LIST arguments\n");
	check_script("STATUS",
	    "a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN "
	    "HIGHESTMODSEQ SIZE)\r\n"
	    "b STATUS Archive (RECENT DELETED APPENDLIMIT MAILBOXID)\r\n"
	    "c STATUS INBOX ()\r\nd STATUS INBOX (FOO)\r\n"
	    "e STATUS INBOX MESSAGES\r\n",
	    "a STATUS mailbox=\"INBOX\" items=MESSAGES,UIDNEXT,UIDVALIDITY,"
	    "UNSEEN,HIGHESTMODSEQ,SIZE\n"
	    "b STATUS mailbox=\"Archive\" items=RECENT,DELETED,APPENDLIMIT,"
	    "MAILBOXID\n"
	    "BAD c Expected a list of status items\n"
	    "BAD d Unknown status item\n"
	    "BAD e Expected a list of status items\n");
	check_script("GETQUOTAROOT, GETQUOTA, ENABLE",
	    "a GETQUOTAROOT \"INBOX\"\r\nb GETQUOTA \"\"\r\n"
	    "c ENABLE QRESYNC CONDSTORE\r\nd ENABLE\r\n"
	    "e ENABLE \"X\"\r\n",
	    "a GETQUOTAROOT mailbox=\"INBOX\"\nb GETQUOTA root=\"\"\n"
	    "c ENABLE caps=QRESYNC,CONDSTORE\n"
	    "BAD d Expected capability names\n"
	    "BAD e Invalid capability name\n");
}

/* ---- APPEND ---- */

static void
test_append(void)
{
	struct script_opts opts;
	const char *in;

	/* RFC 9051 §6.3.12's example, shortened. */
	check_script("APPEND with flags and date",
	    "A003 APPEND saved-messages (\\Seen) \"07-Feb-1994 21:52:25 "
	    "-0800\" {11}\r\nHello World\r\nA004 NOOP\r\n",
	    "APPEND A003 0 saved-messages 11 +\nDATA Hello World\n"
	    "A003 APPEND mailbox=\"saved-messages\" msg0=(size=11 "
	    "flags=(\\Seen) date=\"07-Feb-1994 21:52:25 -0800\")\n"
	    "A004 NOOP\n");
	check_script("MULTIAPPEND, sync then non-sync",
	    "a APPEND INBOX {3}\r\nabc (\\Flagged $Work) {2+}\r\n\r\n\r\n",
	    "APPEND a 0 INBOX 3 +\nDATA abc\nAPPEND a 1 INBOX 2\n"
	    "DATA \\r\\n\n"
	    "a APPEND mailbox=\"INBOX\" msg0=(size=3 flags=()) "
	    "msg1=(size=2 flags=(\\Flagged $Work) nonsync)\n");
	check_script("APPEND of an empty message and a literal mailbox",
	    "a APPEND {5}\r\nDraft {0}\r\n\r\n",
	    "+\nAPPEND a 0 Draft 0 +\nDATA \n"
	    "a APPEND mailbox=\"Draft\" msg0=(size=0 flags=())\n");
	CHECK_OPTS("APPEND literal8 and NUL bytes",
	    "a APPEND INBOX ~{3}\r\na\0b\r\nb APPEND INBOX {3}\r\na\0b\r\n",
	    &(struct script_opts){ 0 },
	    "APPEND a 0 INBOX 3 +\nDATA a\\x00b (NUL)\n"
	    "a APPEND mailbox=\"INBOX\" msg0=(size=3 flags=() binary nul)\n"
	    "APPEND b 0 INBOX 3 +\nDATA a\\x00b (NUL)\n"
	    "b APPEND mailbox=\"INBOX\" msg0=(size=3 flags=() nul)\n");
	check_script("APPEND in the UTF8 form (RFC 6855 §4)",
	    "a APPEND INBOX (\\Seen) UTF8 (~{2+}\r\nhi)\r\n",
	    "APPEND a 0 INBOX 2\nDATA hi\n"
	    "a APPEND mailbox=\"INBOX\" msg0=(size=2 flags=(\\Seen) nonsync "
	    "binary utf8)\n");
	check_script("APPEND errors before the data",
	    "a APPEND INBOX (\\Recent) {3}\r\nb APPEND INBOX \"32-Jan-2000 "
	    "00:00:00 +0000\" {3}\r\nc APPEND &x {3}\r\n"
	    "d APPEND INBOX (\\Seen) \"bad\" {3+}\r\nabc e NOOP\r\n"
	    "e NOOP\r\nf APPEND (\\Seen) {3}\r\ng NOOP\r\n",
	    "BAD a \\Recent can not be set\nBAD b Invalid date-time\n"
	    "NO c [CANNOT] Mailbox name is not valid modified UTF-7\n"
	    "BAD d Invalid date-time\ne NOOP\nBAD f Expected a string\n"
	    "g NOOP\n");
	check_script("APPEND errors at the end",
	    "a APPEND INBOX\r\nb APPEND INBOX {1}\r\nx FOO\r\n"
	    "c APPEND INBOX {1+}\r\nx ()\r\nd NOOP\r\n"
	    "e APPEND INBOX ~{1}\r\n",
	    "BAD a Missing message literal\nAPPEND b 0 INBOX 1 +\nDATA x\n"
	    "BAD b Missing message literal\nAPPEND c 0 INBOX 1\nDATA x\n"
	    "BAD c Missing message literal\nd NOOP\n"
	    "APPEND e 0 INBOX 1 +\n");
	check_script("literal8 outside APPEND",
	    "a LOGIN ~{3}\r\nb NOOP\r\nc LOGIN ~{3+}\r\nabc\r\nd NOOP\r\n"
	    "e SELECT ~user\r\n",
	    "BAD a literal8 is only allowed for APPEND messages\nb NOOP\n"
	    "BAD c literal8 is only allowed for APPEND messages\nd NOOP\n"
	    "e SELECT mailbox=\"~user\"\n");

	memset(&opts, 0, sizeof(opts));
	opts.reject = true;
	opts.reject_size = 5;
	in = "a APPEND INBOX {5}\r\nb NOOP\r\n"
	    "c APPEND INBOX {5+}\r\nc NOOP x {3}\r\n\r\nd NOOP\r\n"
	    "e APPEND INBOX {1}\r\nx {5}\r\nf NOOP\r\n";
	check_script_opts("APPEND refused by the session", in, strlen(in),
	    &opts,
	    "APPEND a 0 INBOX 5 +\nNO refused\nb NOOP\n"
	    "APPEND c 0 INBOX 5\nNO refused\nd NOOP\n"
	    "APPEND e 0 INBOX 1 +\nDATA x\nAPPEND e 1 INBOX 5 +\nNO refused\n"
	    "f NOOP\n");

	test_begin("APPEND refused after its data");
	{
		struct imap_parser *p = imap_parser_new(NULL);
		const char *s = "a APPEND INBOX {1+}\r\nx (x) {1}\r\nb NOOP\r\n";
		size_t used, off = 0, len = strlen(s);

		test_assert(imap_parser_feed(p, s, len, &used) ==
		    IMAP_PARSE_APPEND);
		test_assert_streq(imap_parser_append(p)->tag, "a");
		off = used;
		test_assert(imap_parser_feed(p, s + off, len - off, &used) ==
		    IMAP_PARSE_APPEND_DATA && used == 1);
		off += used;
		test_assert(imap_parser_feed(p, s + off, len - off, &used) ==
		    IMAP_PARSE_APPEND_END && used == 0);
		imap_parser_append_reject(p);
		test_assert(imap_parser_feed(p, s + off, len - off, &used) ==
		    IMAP_PARSE_COMMAND);
		test_assert_streq(imap_parser_command(p)->tag, "b");
		imap_parser_free(&p);
	}
	test_end();

	test_begin("APPEND refused while its data arrives");
	{
		struct imap_parser *p = imap_parser_new(NULL);
		const char *s =
		    "a APPEND INBOX {6+}\r\nabcdef {2}\r\nb NOOP\r\n";
		size_t used, off = 0, len = strlen(s);

		test_assert(imap_parser_feed(p, s, 21, &used) ==
		    IMAP_PARSE_APPEND);
		off = used;
		test_assert(imap_parser_feed(p, s + off, 2, &used) ==
		    IMAP_PARSE_APPEND_DATA && used == 2);
		off += used;
		imap_parser_append_reject(p);
		test_assert(imap_parser_feed(p, s + off, len - off, &used) ==
		    IMAP_PARSE_COMMAND);
		test_assert_streq(imap_parser_command(p)->tag, "b");
		imap_parser_free(&p);
	}
	test_end();
}

/* ---- FETCH and STORE ---- */

static void
test_fetch(void)
{
	/* What Thunderbird, mutt, Apple Mail and Outlook send. */
	check_script("FETCH as clients send it",
	    "11 UID fetch 1:* (FLAGS)\r\n"
	    "12 UID fetch 3 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
	    "(From To Cc Bcc Subject Date Message-ID Priority X-Priority "
	    "References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n"
	    "a0005 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
	    "BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC "
	    "MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
	    "IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL X-ORIGINAL-TO)])"
	    "\r\n"
	    "ap UID FETCH 1:* (FLAGS UID) (CHANGEDSINCE 123)\r\n"
	    "8.859 UID FETCH 1:6131 (FLAGS UID) (CHANGEDSINCE 1433050)\r\n"
	    "9.3 UID FETCH 1:918045 (FLAGS UID) (CHANGEDSINCE 3124051 "
	    "VANISHED)\r\n"
	    "o1 UID FETCH 7 (UID FLAGS)\r\no2 UID FETCH 7 (BODY.PEEK[])\r\n"
	    "o3 UID FETCH 7 (BODY.PEEK[HEADER])\r\n",
	    "11 UID FETCH set=1:* items=UID,FLAGS\n"
	    "12 UID FETCH set=3 items=UID,FLAGS,RFC822.SIZE "
	    "BODY[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID "
	    "Priority X-Priority References Newsgroups In-Reply-To "
	    "Content-Type Reply-To)]/peek\n"
	    "a0005 UID FETCH set=1:* items=UID,FLAGS,INTERNALDATE,"
	    "RFC822.SIZE BODY[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC "
	    "MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
	    "IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL X-ORIGINAL-TO)]"
	    "/peek\n"
	    "ap UID FETCH set=1:* items=UID,FLAGS changedsince=123\n"
	    "8.859 UID FETCH set=1:6131 items=UID,FLAGS "
	    "changedsince=1433050\n"
	    "9.3 UID FETCH set=1:918045 items=UID,FLAGS changedsince=3124051 "
	    "vanished\n"
	    "o1 UID FETCH set=7 items=UID,FLAGS\n"
	    "o2 UID FETCH set=7 items=UID BODY[]/peek\n"
	    "o3 UID FETCH set=7 items=UID BODY[HEADER]/peek\n");
	check_script("FETCH macros and single items",
	    "a FETCH 1 ALL\r\nb FETCH 1:2 fast\r\nc FETCH * FULL\r\n"
	    "d FETCH 2,4 ENVELOPE\r\ne FETCH 1 BODY[]\r\n"
	    "f FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT BODYSTRUCTURE "
	    "MODSEQ EMAILID THREADID SAVEDATE)\r\n",
	    "a FETCH set=1 items=FLAGS,INTERNALDATE,RFC822.SIZE,ENVELOPE\n"
	    "b FETCH set=1:2 items=FLAGS,INTERNALDATE,RFC822.SIZE\n"
	    "c FETCH set=* items=FLAGS,INTERNALDATE,RFC822.SIZE,ENVELOPE,"
	    "BODY\n"
	    "d FETCH set=2,4 items=ENVELOPE\n"
	    "e FETCH set=1 items= BODY[] seen\n"
	    "f FETCH set=1 items=BODYSTRUCTURE,RFC822,RFC822.HEADER,"
	    "RFC822.TEXT,MODSEQ,EMAILID,THREADID,SAVEDATE seen\n");
	check_script("FETCH body sections",
	    "a FETCH 1 (BODY[1.2.MIME] BODY.PEEK[2.HEADER.FIELDS.NOT "
	    "(\"X-Spam\" Received)] BODY[TEXT]<0.1024> BODY.peek[3]<10.5>)"
	    "\r\n"
	    "b FETCH 1 (BINARY[1]<0.10> BINARY.PEEK[] BINARY.SIZE[1.2])\r\n"
	    "c FETCH 1 (body[header.fields (a\"b\")])\r\n"
	    "d FETCH 1 BODY[HEADER.FIELDS (\"Odd(name)\" \"Q\\\\\")]\r\n",
	    "a FETCH set=1 items= BODY[1.2.MIME] BODY[2.HEADER.FIELDS.NOT "
	    "(X-Spam Received)]/peek BODY[TEXT]<0.1024> BODY[3]/peek<10.5> "
	    "seen\n"
	    "b FETCH set=1 items= BINARY[1]<0.10> BINARY[]/peek "
	    "BINARY.SIZE[1.2] seen\n"
	    "BAD c Invalid header field list\n"
	    "d FETCH set=1 items= BODY[HEADER.FIELDS (\"Odd(name)\" "
	    "\"Q\\\\\")] seen\n");
	check_script("FETCH errors",
	    "a FETCH 1 (FOO)\r\nb FETCH 1 (BODY[1.])\r\n"
	    "c FETCH 1 BODY[MIME]\r\n"
	    "d FETCH 1 BODY[0]\r\ne FETCH 1 BODY[TEXT]<1.0>\r\n"
	    "f FETCH 1 (FLAGS) (VANISHED)\r\ng UID FETCH 1 (FLAGS) (VANISHED)"
	    "\r\nh FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\ni FETCH 1 ()\r\n"
	    "j FETCH 1 (ALL)\r\nk FETCH 1 BINARY[TEXT]\r\n"
	    "l FETCH 1 BINARY.SIZE[1]<0.1>\r\nm FETCH 1 BODY[HEADER.FIELDS ()]"
	    "\r\nn FETCH 1 BODY[HEADER.FIELDS (a:b)]\r\no FETCH 1 BODY[1\r\n"
	    "p FETCH 1 BODY.PEEK(x)\r\nq FETCH 1 (FLAGS) (FOO)\r\n"
	    "r FETCH 1 BODY[4294967296]\r\ns FETCH\r\n"
	    "t FETCH 1 BODY[HEADER.FIELDS ({3}\r\n",
	    "BAD a Unknown FETCH attribute\nBAD b Invalid section\n"
	    "BAD c MIME needs a part number\nBAD d Invalid section part\n"
	    "BAD e Invalid partial range\n"
	    "BAD f VANISHED is only allowed with UID FETCH\n"
	    "BAD g VANISHED needs CHANGEDSINCE\nBAD h Invalid number\n"
	    "BAD i Empty FETCH item list\nBAD j Unknown FETCH attribute\n"
	    "BAD k Invalid BINARY section\nBAD l Invalid FETCH attribute\n"
	    "BAD m Invalid header field list\n"
	    "BAD n Invalid header field list\nBAD o Missing ']'\n"
	    "BAD p Missing space before '('\nBAD q Unknown FETCH modifier\n"
	    "BAD r Invalid section part\nBAD s Expected messages and items\n"
	    "BAD t Literals are not supported inside sections\n");
	check_script("STORE",
	    "a UID STORE 5 +FLAGS (\\Seen)\r\n"
	    "b STORE 1:3 -FLAGS.SILENT \\Deleted\r\nc STORE 1 FLAGS ()\r\n"
	    "d STORE 1 (UNCHANGEDSINCE 12345) +flags.silent ($Forwarded "
	    "$forwarded \\ANSWERED Junk)\r\n"
	    "e STORE 2 FLAGS \\Seen \\Draft $MDNSent\r\n",
	    "a UID STORE set=5 +FLAGS (\\Seen)\n"
	    "b STORE set=1:3 -FLAGS.SILENT (\\Deleted)\n"
	    "c STORE set=1 FLAGS ()\n"
	    "d STORE set=1 +FLAGS.SILENT (\\Answered $Forwarded Junk) "
	    "unchangedsince=12345\n"
	    "e STORE set=2 FLAGS (\\Seen \\Draft $MDNSent)\n");
	check_script("STORE errors",
	    "a STORE 1 +FLAGS (\\Recent)\r\nb STORE 1 +FLAGS (\\Foo)\r\n"
	    "c STORE 1 FLAG (\\Seen)\r\nd STORE 1 +FLAGS\r\n"
	    "e STORE 1 (FOO 1) FLAGS ()\r\nf STORE 1 FLAGS (a%b)\r\n"
	    "g STORE 1 FLAGS (\"x\")\r\nh STORE x FLAGS ()\r\n",
	    "BAD a \\Recent can not be set\nBAD b Invalid system flag\n"
	    "BAD c Invalid STORE item\n"
	    "BAD d Expected messages, item and flags\n"
	    "BAD e Unknown STORE modifier\nBAD f Invalid keyword\n"
	    "BAD g Invalid flag\nBAD h Invalid sequence set\n");
	check_script("COPY, MOVE, EXPUNGE",
	    "a COPY 1:3 Trash\r\nb UID MOVE 4,7:9 \"Deleted Items\"\r\n"
	    "c UID COPY $ Archive\r\nd EXPUNGE\r\ne UID EXPUNGE 3:5,9\r\n"
	    "f EXPUNGE 1\r\ng UID EXPUNGE\r\nh MOVE 1\r\n",
	    "a COPY set=1:3 mailbox=\"Trash\"\n"
	    "b UID MOVE set=4,7:9 mailbox=\"Deleted Items\"\n"
	    "c UID COPY set=$ mailbox=\"Archive\"\nd EXPUNGE\n"
	    "e UID EXPUNGE set=3:5,9\nBAD f Unexpected arguments\n"
	    "BAD g Expected UIDs\nBAD h Expected messages and a mailbox\n");
}

/* ---- SEARCH, SORT, THREAD ---- */

static void
test_search(void)
{
	check_script("SEARCH keys",
	    "a SEARCH UNSEEN\r\n"
	    "b UID SEARCH CHARSET UTF-8 OR FROM \"x\" SUBJECT {3}\r\nfoo"
	    " NOT DELETED\r\n"
	    "c SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"
	    "d SEARCH (SEEN (ANSWERED DRAFT)) 2:4,* UID 1:*\r\n"
	    "e SEARCH HEADER Message-ID \"<x@y>\" LARGER 1000 SMALLER 0\r\n"
	    "f SEARCH BEFORE \"31-Dec-1999\" ON 29-feb-2000 SENTBEFORE "
	    "1-Jan-2000 SENTON 2-Jan-2000 SENTSINCE 3-Jan-2000\r\n"
	    "g SEARCH OLDER 3600 YOUNGER 60 KEYWORD $Junk UNKEYWORD foo\r\n"
	    "h SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 MODSEQ 5\r\n"
	    "i SEARCH $ UID $\r\nj SEARCH ALL ANSWERED DELETED DRAFT NEW OLD "
	    "RECENT UNANSWERED UNDELETED UNDRAFT UNFLAGGED BCC a BODY b CC c "
	    "TEXT d TO e\r\n"
	    "k SEARCH SAVEDBEFORE 1-Jan-2020 SAVEDON 1-Jan-2020 SAVEDSINCE "
	    "1-Jan-2020 SAVEDATESUPPORTED EMAILID M6d99ac3 THREADID T64b478a7"
	    "\r\n",
	    "a SEARCH key=AND(UNSEEN)\n+\n"
	    "b UID SEARCH charset=\"UTF-8\" key=AND(OR(FROM(\"x\"),"
	    "SUBJECT(\"foo\")),NOT(DELETED))\n"
	    "c SEARCH key=AND(FLAGGED,SINCE(01-Feb-1994),NOT(FROM("
	    "\"Smith\")))\n"
	    "d SEARCH key=AND(AND(SEEN,AND(ANSWERED,DRAFT)),SEQSET(2:4,*),"
	    "UID(1:*))\n"
	    "e SEARCH key=AND(HEADER(\"Message-ID\",\"<x@y>\"),LARGER(1000),"
	    "SMALLER(0))\n"
	    "f SEARCH key=AND(BEFORE(31-Dec-1999),ON(29-Feb-2000),"
	    "SENTBEFORE(01-Jan-2000),SENTON(02-Jan-2000),SENTSINCE("
	    "03-Jan-2000))\n"
	    "g SEARCH key=AND(OLDER(3600),YOUNGER(60),KEYWORD(\"$Junk\"),"
	    "UNKEYWORD(\"foo\"))\n"
	    "h SEARCH key=AND(MODSEQ(\"/flags/\\\\draft\",all,620162338),"
	    "MODSEQ(5))\n"
	    "i SEARCH key=AND(SEQSET($),UID($))\n"
	    "j SEARCH key=AND(ALL,ANSWERED,DELETED,DRAFT,NEW,OLD,RECENT,"
	    "UNANSWERED,UNDELETED,UNDRAFT,UNFLAGGED,BCC(\"a\"),BODY(\"b\"),"
	    "CC(\"c\"),TEXT(\"d\"),TO(\"e\"))\n"
	    "k SEARCH key=AND(SAVEDBEFORE(01-Jan-2020),SAVEDON(01-Jan-2020),"
	    "SAVEDSINCE(01-Jan-2020),SAVEDATESUPPORTED,EMAILID(\"M6d99ac3\"),"
	    "THREADID(\"T64b478a7\"))\n");
	check_script("SEARCH RETURN (ESEARCH, SEARCHRES)",
	    "a SEARCH RETURN (MIN MAX COUNT) UNDELETED\r\n"
	    "b UID SEARCH RETURN () ALL\r\n"
	    "c SEARCH RETURN (SAVE) SINCE 1-Feb-1994\r\n"
	    "d SEARCH RETURN (ALL) CHARSET US-ASCII SEEN\r\n",
	    "a SEARCH return=MIN,MAX,COUNT key=AND(UNDELETED)\n"
	    "b UID SEARCH return=ALL key=AND(ALL)\n"
	    "c SEARCH return=SAVE key=AND(SINCE(01-Feb-1994))\n"
	    "d SEARCH return=ALL charset=\"US-ASCII\" key=AND(SEEN)\n");
	check_script("SEARCH errors",
	    "a SEARCH\r\nb SEARCH FOO\r\nc SEARCH SINCE 30-Feb-2000\r\n"
	    "d SEARCH OR SEEN\r\ne SEARCH NOT\r\nf SEARCH LARGER -1\r\n"
	    "g SEARCH RETURN (FOO) ALL\r\nh SEARCH CHARSET\r\n"
	    "i SEARCH RETURN ALL\r\nj SEARCH OLDER 0\r\n"
	    "k SEARCH MODSEQ \"/x\" all 1\r\nl SEARCH MODSEQ \"/flags/a\" x 1"
	    "\r\nm SEARCH ()\r\nn SEARCH UID 0\r\no SEARCH EMAILID a.b\r\n"
	    "p SEARCH KEYWORD \\Seen\r\nq SEARCH HEADER x\r\n",
	    "BAD a Missing search key\nBAD b Unknown search key\n"
	    "BAD c Invalid date\nBAD d Missing search argument\n"
	    "BAD e Missing search argument\nBAD f Invalid number\n"
	    "BAD g Unknown RETURN option\nBAD h Missing charset\n"
	    "BAD i Invalid RETURN options\nBAD j Invalid number\n"
	    "BAD k Invalid MODSEQ entry\nBAD l Invalid MODSEQ entry type\n"
	    "BAD m Missing search key\nBAD n Invalid sequence set\n"
	    "BAD o Invalid object id\nBAD p Invalid keyword\n"
	    "BAD q Missing search argument\n");
	check_script("SORT and THREAD",
	    "a SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\n"
	    "b UID SORT (REVERSE ARRIVAL) US-ASCII UNDELETED SINCE "
	    "1-Feb-1994\r\n"
	    "c SORT RETURN (MIN) (SIZE) UTF-8 ALL\r\n"
	    "d THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n"
	    "e UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n"
	    "f SORT (DISPLAYFROM CC TO FROM DISPLAYTO) UTF-8 ALL\r\n",
	    "a SORT criteria=REVERSE DATE,SUBJECT charset=\"UTF-8\" "
	    "key=AND(ALL)\n"
	    "b UID SORT criteria=REVERSE ARRIVAL charset=\"US-ASCII\" "
	    "key=AND(UNDELETED,SINCE(01-Feb-1994))\n"
	    "c SORT criteria=SIZE return=MIN charset=\"UTF-8\" key=AND(ALL)\n"
	    "d THREAD alg=REFERENCES charset=\"UTF-8\" key=AND(SINCE("
	    "05-Mar-2000))\n"
	    "e UID THREAD alg=ORDEREDSUBJECT charset=\"UTF-8\" key=AND(ALL)\n"
	    "f SORT criteria=DISPLAYFROM,CC,TO,FROM,DISPLAYTO "
	    "charset=\"UTF-8\" key=AND(ALL)\n");
	check_script("SORT and THREAD errors",
	    "a SORT DATE UTF-8 ALL\r\nb SORT (REVERSE) UTF-8 ALL\r\n"
	    "c SORT (FOO) UTF-8 ALL\r\nd SORT (DATE) UTF-8\r\n"
	    "e THREAD X UTF-8 ALL\r\nf THREAD REFERENCES\r\n"
	    "g SORT () UTF-8 ALL\r\n",
	    "BAD a Expected sort criteria\nBAD b REVERSE needs a sort key\n"
	    "BAD c Unknown sort key\nBAD d Missing search key\n"
	    "BAD e Unknown threading algorithm\nBAD f Missing charset\n"
	    "BAD g Expected sort criteria\n");

	test_begin("search nesting is bounded");
	{
		struct buf in;
		char *got;
		struct script_opts opts;
		int i;

		memset(&opts, 0, sizeof(opts));
		buf_init(&in, 0);
		buf_append_str(&in, "a SEARCH");
		for (i = 0; i < 200; i++)
			buf_append_str(&in, " NOT");
		buf_append_str(&in, " ALL\r\nb SEARCH");
		for (i = 0; i < 60; i++)
			buf_append_str(&in, " NOT");
		buf_append_str(&in, " ALL\r\n");
		got = run_script(in.data, in.len, 0, &opts);
		test_assert(strncmp(got, "BAD a Too deep nesting of search "
		    "keys\nb SEARCH key=AND(NOT(NOT(", 54) == 0);
		free(got);
		buf_free(&in);
	}
	test_end();
}

/* ---- ID, unknown commands ---- */

static void
test_misc(void)
{
	struct buf in, want;
	int i;

	check_script("ID",
	    "a ID NIL\r\n"
	    "1.3 ID (\"name\" \"Mac OS X Mail\" \"version\" \"16.0 "
	    "(3696.80.82.1.1)\" \"os\" \"Mac OS X\" \"os-version\" \"12.3 "
	    "(21E230)\" \"vendor\" \"Apple Inc.\")\r\n"
	    "b ID (\"name\" NIL)\r\nc ID ()\r\n",
	    "a ID NIL\n"
	    "1.3 ID (\"name\":\"Mac OS X Mail\" \"version\":\"16.0 "
	    "(3696.80.82.1.1)\" \"os\":\"Mac OS X\" \"os-version\":\"12.3 "
	    "(21E230)\" \"vendor\":\"Apple Inc.\")\n"
	    "b ID (\"name\":NIL)\nc ID ()\n");
	buf_init(&in, 0);
	buf_append_str(&in, "a ID (");
	for (i = 0; i < 31; i++)
		buf_printf(&in, "%s\"f%d\" \"v\"", i > 0 ? " " : "", i);
	buf_append_str(&in, ")\r\nb ID (\"name\")\r\nc ID (name \"x\")\r\n"
	    "d ID (\"0123456789012345678901234567890\" \"x\")\r\n");
	check_script("ID errors", buf_cstr(&in),
	    "BAD a Too many ID parameters\nBAD b Invalid ID parameters\n"
	    "BAD c Invalid ID field\nBAD d Invalid ID field\n");
	buf_free(&in);
	/* Big commands: their buffers are given back afterwards. */
	buf_init(&in, 0);
	buf_init(&want, 0);
	buf_append_str(&in, "a LOGIN {5000+}\r\n");
	buf_append_str(&want, "a LOGIN user=\"");
	for (i = 0; i < 5000; i++) {
		buf_append_char(&in, 'u');
		buf_append_char(&want, 'u');
	}
	buf_append_str(&in, " p\r\nb SEARCH");
	buf_append_str(&want, "\" password=\"p\"\nb SEARCH key=AND(");
	for (i = 0; i < 300; i++) {
		buf_append_str(&in, " SEEN");
		buf_append_str(&want, i > 0 ? ",SEEN" : "SEEN");
	}
	buf_append_str(&in, "\r\nc NOOP\r\n");
	buf_append_str(&want, ")\nc NOOP\n");
	check_script("big commands", buf_cstr(&in), buf_cstr(&want));
	buf_free(&in);
	buf_free(&want);

	check_script("unknown commands",
	    "a FOO bar\r\nb UID FOO 1\r\nc XLIST \"\" *\r\nd UID\r\n"
	    "e UID NOOP\r\nf\r\ng (x)\r\n",
	    "BAD a Unknown command\nBAD b Unknown command\n"
	    "BAD c Unknown command\nBAD d Missing command after UID\n"
	    "BAD e Unknown command\nBAD f Missing command\n"
	    "BAD g Invalid command name\n");
	/* A bad command's literal is never read as commands (RFC 7888 §4):
	 * the non-synchronizing one is skipped with the line after it, the
	 * synchronizing one ends the command (the client waits for "+"). */
	check_script("literals of bad commands are skipped",
	    "a FOO {10+}\r\nb LOGOUT\r\n x\r\nb NOOP\r\n"
	    "c FOO {9}\r\nd NOOP\r\n"
	    "e LOGIN a\"b {5+}\r\nf NOOP {4+}\r\n{1}\r\ng NOOP\r\n"
	    "h FETCH 1 BODY[HEADER.FIELDS (X {6+}\r\nLOGOUT)]\r\ni NOOP\r\n",
	    "BAD a Unknown command\nb NOOP\nBAD c Unknown command\nd NOOP\n"
	    "BAD e Invalid characters in atom\ng NOOP\n"
	    "BAD h Literals are not supported inside sections\ni NOOP\n");
}

/* ---- bad input and bounds ---- */

static void
test_bad_input(void)
{
	struct imap_parser_limits lim;
	struct script_opts opts;
	struct buf in, want;
	int i;

	check_script("unbalanced parentheses",
	    "a FETCH 1 (FLAGS\r\nb NOOP )\r\nc FETCH 1 ((FLAGS)\r\n"
	    "d FETCH 1 FLAGS)\r\ne FETCH 1 (FLAGS)(UID)\r\nf NOOP\r\n",
	    "BAD a Missing ')'\nBAD b Unexpected ')'\nBAD c Missing ')'\n"
	    "BAD d Unexpected ')'\nBAD e Missing space between arguments\n"
	    "f NOOP\n");
	check_script("bad sequence sets",
	    "a FETCH 0 FLAGS\r\nb FETCH 1: FLAGS\r\nc FETCH 1,,2 FLAGS\r\n"
	    "d FETCH a:b FLAGS\r\ne FETCH 4294967296 FLAGS\r\n"
	    "f FETCH 1, FLAGS\r\ng FETCH 01 FLAGS\r\nh FETCH $,1 FLAGS\r\n"
	    "i FETCH \"1\" FLAGS\r\nj FETCH 4294967295:1 FLAGS\r\n"
	    "k FETCH *:3,5:* FLAGS\r\n",
	    "BAD a Invalid sequence set\nBAD b Invalid sequence set\n"
	    "BAD c Invalid sequence set\nBAD d Invalid sequence set\n"
	    "BAD e Invalid sequence set\nBAD f Invalid sequence set\n"
	    "BAD g Invalid sequence set\nBAD h Invalid sequence set\n"
	    "BAD i Invalid sequence set\n"
	    "j FETCH set=1:4294967295 items=FLAGS\n"
	    "k FETCH set=3:* items=FLAGS\n");
	check_script("8-bit and control characters",
	    "a SELECT caf\xc3\xa9\r\nb NOOP\r\nc SELECT \"caf\xc3\"\r\n"
	    "d SELECT a\tb\r\ne LOGIN \"a\tb\" c\r\n\xff NOOP\r\n",
	    "BAD a 8-bit characters are not allowed in atoms\nb NOOP\n"
	    "BAD c Invalid UTF-8 in quoted string\n"
	    "BAD d Invalid characters in atom\n"
	    "e LOGIN user=\"a\\x09b\" password=\"c\"\nBAD * Invalid tag\n");
	CHECK_OPTS("NUL bytes",
	    "a NO\0OP\r\nb LOGIN \"a\0\" b\r\nc LOGIN {3}\r\na\0b c\r\n"
	    "d LOGIN {3+}\r\nab\0 c\r\ne NOOP\r\n", &(struct script_opts){ 0 },
	    "BAD a Invalid characters in atom\nBAD b NUL in quoted string\n"
	    "+\nBAD c NUL in literal\nBAD d NUL in literal\ne NOOP\n");
	check_script("tags",
	    "a+b NOOP\r\n* NOOP\r\n\"a\" NOOP\r\n NOOP\r\na]b NOOP\r\n"
	    "{3}\r\n",
	    "BAD * Invalid tag\nBAD * Invalid tag\nBAD * Invalid tag\n"
	    "BAD * Invalid tag\na]b NOOP\nBAD * Invalid tag\n");
	check_script("CR without LF",
	    "a NOOP\rb NOOP\r\n\rc NOOP\r\nd NO\rOP\r\ne NOOP\r\n",
	    "BAD a CR without LF\nBAD * CR without LF\n"
	    "BAD d Unknown command\ne NOOP\n");
	check_script("quoted string escapes",
	    "a LOGIN \"a\\b\" c\r\nb LOGIN \"a\r\nc NOOP\r\n",
	    "BAD a Invalid escape in quoted string\nBAD b Missing '\"'\n"
	    "c NOOP\n");
	check_script("literal syntax",
	    "a LOGIN {x}\r\nb LOGIN {}\r\nc LOGIN {3+x}\r\nd LOGIN {3} x\r\n"
	    "e LOGIN {3}\rx\r\nf NOOP\r\n",
	    "BAD a Invalid literal size\nBAD b Invalid literal size\n"
	    "BAD c Invalid literal size\n"
	    "BAD d Missing line end after literal\nBAD e CR without LF\n"
	    "f NOOP\n");

	/* A huge literal: refused before any of it is read. */
	check_script("huge literals",
	    "a LOGIN {99999999}\r\nb NOOP\r\n"
	    "e LOGIN {99999999999999999999}\r\nf NOOP\r\n",
	    "BAD a [TOOBIG] Literal too big\nb NOOP\n"
	    "BAD e [TOOBIG] Literal too big\nf NOOP\n");
	/* A non-synchronizing one is read and dropped (RFC 7888 §4). */
	buf_init(&in, 0);
	buf_append_str(&in, "c LOGIN {70000+}\r\n");
	for (i = 0; i < 70000; i++)
		buf_append_char(&in, i % 100 == 0 ? '\n' : 'x');
	buf_append_str(&in, " y\r\nd NOOP\r\n");
	check_script("huge non-synchronizing literal", buf_cstr(&in),
	    "BAD c [TOOBIG] Literal too big\nd NOOP\n");
	buf_free(&in);
	check_script("an uncountable non-synchronizing literal",
	    "a LOGIN {99999999999999999999+}\r\nb NOOP\r\n",
	    "BYE a [TOOBIG] Literal size too large\n");
	check_script("uncountable literal in a skipped line",
	    "a FOO {99999999999999999999+}\r\nb NOOP\r\n",
	    "BAD a Unknown command\nBYE * [TOOBIG] Literal size too large\n");

	/* Literals of one command add up against the bound. */
	imap_parser_limits_default(&lim);
	lim.max_literal = 10;
	memset(&opts, 0, sizeof(opts));
	opts.lim = &lim;
	CHECK_OPTS("literal bytes per command",
	    "a LOGIN {5+}\r\nabcde {5+}\r\nabcde\r\n"
	    "b LOGIN {6+}\r\nabcdef {5+}\r\nabcde\r\nc NOOP\r\n", &opts,
	    "a LOGIN user=\"abcde\" password=\"abcde\"\n"
	    "BAD b [TOOBIG] Literal too big\nc NOOP\n");

	imap_parser_limits_default(&lim);
	lim.literal_minus = true;
	CHECK_OPTS("LITERAL-",
	    "a LOGIN {4097+}\r\nb NOOP\r\nc LOGIN {4096+}\r\n", &opts,
	    "BAD a [TOOBIG] Non-synchronizing literal too big\n");

	/* Overlong lines: refused, and the next command works; literals
	 * do not count against the line. */
	imap_parser_limits_default(&lim);
	lim.max_line = 1024;
	buf_init(&in, 0);
	buf_init(&want, 0);
	buf_append_str(&in, "a LOGIN ");
	for (i = 0; i < 1100; i++)
		buf_append_char(&in, 'x');
	buf_append_str(&in, " y\r\nb NOOP\r\nc LOGIN x ");
	for (i = 0; i < 1020; i++)
		buf_append_char(&in, 'y');
	buf_append_str(&in, "\r\nd NOOP\r\ne LOGIN {2000+}\r\n");
	buf_append_str(&want, "BAD a Too long command line\nb NOOP\n"
	    "BAD c Too long command line\nd NOOP\ne LOGIN user=\"");
	for (i = 0; i < 2000; i++) {
		buf_append_char(&in, 'z');
		buf_append_char(&want, 'z');
	}
	buf_append_str(&in, " x\r\nf NOOP\r\n");
	buf_append_str(&want, "\" password=\"x\"\nf NOOP\n");
	check_script_opts("line length bound", in.data, in.len, &opts,
	    buf_cstr(&want));
	buf_free(&in);
	buf_free(&want);

	/* The line bound counts the command's text, line ends included. */
	lim.max_line = 12;
	CHECK_OPTS("line length edge",
	    "a NOOP    \r\nb NOOP     \r\nc NOOP\r\n", &opts,
	    "a NOOP\nBAD b Too long command line\nc NOOP\n");

	imap_parser_limits_default(&lim);
	lim.max_args = 10;
	CHECK_OPTS("argument count bound",
	    "a FETCH 1 (A B C D E F G H I J)\r\nb FETCH 1 (A B C D E F G H)"
	    "\r\nc NOOP\r\n", &opts,
	    "BAD a Too many arguments\nBAD b Unknown FETCH attribute\n"
	    "c NOOP\n");

	imap_parser_limits_default(&lim);
	lim.max_depth = 3;
	CHECK_OPTS("list depth bound",
	    "a SEARCH ((((ALL))))\r\nb SEARCH (((ALL)))\r\n", &opts,
	    "BAD a Too deep nesting of lists\n"
	    "b SEARCH key=AND(AND(AND(AND(ALL))))\n");

	imap_parser_limits_default(&lim);
	lim.max_line = 1024;
	CHECK_OPTS("raw lines are bounded too",
	    "a AUTHENTICATE PLAIN\r\nab\0c\r\nb AUTHENTICATE PLAIN\r\n"
	    "x\r\r\n", &opts,
	    "a AUTHENTICATE mech=PLAIN\nBAD * NUL in line\n"
	    "b AUTHENTICATE mech=PLAIN\nLINE x\\r\n");
}

/* ---- sequence sets ---- */

static char *
seq_str(const char *s, unsigned int flags)
{
	struct imap_seqset set;
	const char *error;
	struct buf b;

	buf_init(&b, 0);
	if (imap_seqset_parse(s, strlen(s), flags, &set, &error) < 0) {
		buf_printf(&b, "!%s", error);
		return buf_steal(&b);
	}
	if (set.saved)
		buf_append_char(&b, '$');
	imap_seqset_format(set.ranges, set.count, &b);
	if (set.star)
		buf_printf(&b, "|*from=%u", set.star_from);
	if (b.len == 0)
		buf_append_str(&b, "(empty)");
	imap_seqset_free(&set);
	return buf_steal(&b);
}

static void
check_seq(const char *s, unsigned int flags, const char *want)
{
	char *got = seq_str(s, flags);

	test_assert_streq(got, want);
	free(got);
}

static void
test_seqset(void)
{
	struct imap_seq_range out[8];
	struct imap_seqset set;
	const char *error;
	struct buf b;
	size_t n;

	test_begin("sequence set parsing");
	check_seq("1", 0, "1");
	check_seq("1:3,5,7:9", 0, "1:3,5,7:9");
	check_seq("9:7,5,3:1", 0, "1:3,5,7:9");
	check_seq("1:3,4,6:8,7,2", 0, "1:4,6:8");
	check_seq("5,4,3,2,1", 0, "1:5");
	check_seq("4294967295", 0, "4294967295");
	check_seq("4294967294:4294967295,1", 0, "1,4294967294:4294967295");
	check_seq("*", 0, "|*from=4294967295");
	check_seq("1:*", 0, "|*from=1");
	check_seq("*:7,9:*,3", 0, "3|*from=7");
	check_seq("$", 0, "$");
	check_seq("$", IMAP_SEQSET_NO_SAVED, "!Saved search result not "
	    "allowed here");
	check_seq("1:*", IMAP_SEQSET_NO_STAR, "!'*' not allowed here");
	check_seq("", 0, "!Empty sequence set");
	check_seq("0", 0, "!Invalid sequence set");
	check_seq("1:0", 0, "!Invalid sequence set");
	check_seq("4294967296", 0, "!Invalid sequence set");
	check_seq("1::2", 0, "!Invalid sequence set");
	check_seq("1:2:3", 0, "!Invalid sequence set");
	check_seq(",1", 0, "!Invalid sequence set");
	check_seq("1,", 0, "!Invalid sequence set");
	check_seq("**", 0, "!Invalid sequence set");
	check_seq("$$", 0, "!Invalid sequence set");
	check_seq("-1", 0, "!Invalid sequence set");
	check_seq("+1", 0, "!Invalid sequence set");
	check_seq("1 ", 0, "!Invalid sequence set");
	test_end();

	test_begin("sequence set membership with '*'");
	test_assert(imap_seqset_parse("2:4,10:*", 8, 0, &set, &error) == 0);
	test_assert(!imap_seqset_contains(&set, 1, 20));
	test_assert(imap_seqset_contains(&set, 2, 20));
	test_assert(imap_seqset_contains(&set, 4, 20));
	test_assert(!imap_seqset_contains(&set, 5, 20));
	test_assert(imap_seqset_contains(&set, 10, 20));
	test_assert(imap_seqset_contains(&set, 20, 20));
	test_assert(!imap_seqset_contains(&set, 21, 20));
	/* "10:*" with 6 messages is 6:10: the last message is in. */
	test_assert(imap_seqset_contains(&set, 6, 6));
	test_assert(!imap_seqset_contains(&set, 5, 6));
	test_assert(!imap_seqset_contains(&set, 6, 0));
	test_assert(!imap_seqset_contains(&set, 0, 20));
	test_assert(imap_seqset_highest(&set, 20) == 20);
	test_assert(imap_seqset_highest(&set, 6) == 6);
	test_assert(imap_seqset_highest(&set, 0) == 4);
	n = imap_seqset_resolve(&set, 20, out);
	test_assert(n == 2 && out[0].lo == 2 && out[0].hi == 4 &&
	    out[1].lo == 10 && out[1].hi == 20);
	n = imap_seqset_resolve(&set, 5, out);
	test_assert(n == 1 && out[0].lo == 2 && out[0].hi == 5);
	n = imap_seqset_resolve(&set, 0, out);
	test_assert(n == 1 && out[0].lo == 2 && out[0].hi == 4);
	imap_seqset_free(&set);
	test_assert(set.ranges == NULL && set.count == 0);

	test_assert(imap_seqset_parse("*", 1, 0, &set, &error) == 0);
	test_assert(imap_seqset_contains(&set, 7, 7));
	test_assert(!imap_seqset_contains(&set, 6, 7));
	n = imap_seqset_resolve(&set, 7, out);
	test_assert(n == 1 && out[0].lo == 7 && out[0].hi == 7);
	imap_seqset_free(&set);

	test_assert(imap_seqset_parse("1,4294967295", 12, 0, &set,
	    &error) == 0);
	test_assert(imap_seqset_contains(&set, 4294967295u, 10));
	test_assert(!imap_seqset_contains(&set, 10, 10));
	test_assert(imap_seqset_highest(&set, 10) == 4294967295u);
	imap_seqset_free(&set);
	test_end();

	test_begin("sequence set formatting");
	buf_init(&b, 0);
	out[0].lo = 1;
	out[0].hi = 1;
	out[1].lo = 3;
	out[1].hi = 7;
	imap_seqset_format(out, 2, &b);
	test_assert_streq(buf_cstr(&b), "1,3:7");
	buf_reset(&b);
	imap_seqset_format(out, 0, &b);
	test_assert(b.len == 0);
	buf_free(&b);
	test_end();
}

/* ---- modified UTF-7 ---- */

static void
check_utf7(const char *utf8, const char *utf7)
{
	struct buf b;

	buf_init(&b, 0);
	test_assert(imap_utf7_from_utf8(utf8, strlen(utf8), &b) == 0);
	test_assert_streq(buf_cstr(&b), utf7);
	buf_reset(&b);
	test_assert(imap_utf7_to_utf8(utf7, strlen(utf7), &b) == 0);
	test_assert_streq(buf_cstr(&b), utf8);
	test_assert(imap_utf7_valid(utf7, strlen(utf7)));
	buf_free(&b);
}

static void
test_utf7(void)
{
	static const char *const bad[] = {
		"&", "a&b", "&AGE-", "&AOk", "&AOk-&AOk-", "&AOl-", "&2D0-",
		"&3gA-", "&2D3YPQ-", "\xc3\xa9", "a\tb", "&AOk+", "&AOkA-",
		"&AAA-", "&A-", "&AOk/-",
	};
	struct buf b;
	size_t i;

	test_begin("modified UTF-7 round trips");
	check_utf7("", "");
	check_utf7("INBOX", "INBOX");
	check_utf7("a&b", "a&-b");
	check_utf7("&", "&-");
	check_utf7("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	check_utf7("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_utf7("\xc3\xa9\xc3\xa9", "&AOkA6Q-");
	check_utf7("\xf0\x9f\x98\x80", "&2D3eAA-");
	check_utf7("a\tb", "a&AAk-b");
	check_utf7("\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2"
	    "\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5",
	    "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
	test_end();

	test_begin("invalid modified UTF-7 is refused");
	buf_init(&b, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&b);
		if (imap_utf7_to_utf8(bad[i], strlen(bad[i]), &b) == 0)
			printf("# accepted: %s\n", bad[i]);
		test_assert(!imap_utf7_valid(bad[i], strlen(bad[i])));
	}
	buf_reset(&b);
	test_assert(imap_utf7_from_utf8("\xc3", 1, &b) < 0);
	test_assert(imap_utf7_from_utf8("a\0b", 3, &b) < 0);
	test_assert(imap_utf7_from_utf8("\xed\xa0\x80", 3, &b) < 0);
	/* An empty buffer's data (found by fuzz_utf7: memchr(NULL, 0)). */
	test_assert(imap_utf7_from_utf8(NULL, 0, &b) == 0 && b.len == 0);
	buf_free(&b);
	test_end();
}

/* ---- dates ---- */

static void
test_dates(void)
{
	char d[IMAP_DATETIME_SIZE];
	time_t t;
	int tz;

	test_begin("date");
	test_assert(imap_date_parse("1-Feb-1994", &t) == 0 && t == 760060800);
	test_assert(imap_date_parse("01-feb-1994", &t) == 0 &&
	    t == 760060800);
	test_assert(imap_date_parse("29-Feb-2000", &t) == 0 && t == 951782400);
	test_assert(imap_date_parse("1-Jan-1970", &t) == 0 && t == 0);
	test_assert(imap_date_parse("31-Dec-1969", &t) == 0 && t == -86400);
	test_assert(imap_date_parse("29-Feb-1900", &t) < 0);
	test_assert(imap_date_parse("29-Feb-2001", &t) < 0);
	test_assert(imap_date_parse("31-Apr-2001", &t) < 0);
	test_assert(imap_date_parse("0-Jan-2001", &t) < 0);
	test_assert(imap_date_parse("1-Foo-2001", &t) < 0);
	test_assert(imap_date_parse("1-Jan-01", &t) < 0);
	test_assert(imap_date_parse("1-Jan-20011", &t) < 0);
	test_assert(imap_date_parse("123-Jan-2001", &t) < 0);
	test_assert(imap_date_parse("1 Jan 2001", &t) < 0);
	test_assert(imap_date_parse("", &t) < 0);
	test_assert(imap_date_parse("1-Ja", &t) < 0);
	test_end();

	test_begin("date-time");
	test_assert(imap_date_parse_datetime("17-Jul-1996 02:44:25 -0700",
	    &t, &tz) == 0 && t == 837596665 && tz == -420);
	test_assert(imap_date_parse_datetime(" 7-Feb-1994 21:52:25 +0130",
	    &t, &tz) == 0 && tz == 90 && t == 760652545);
	test_assert(imap_date_parse_datetime("7-Feb-1994 21:52:25 +0000",
	    &t, &tz) == 0 && t == 760657945);
	test_assert(imap_date_parse_datetime("07-Feb-1994 24:00:00 +0000",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994 21:60:00 +0000",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994 21:52:25 +0060",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994 21:52:25 0000",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994 21:52:25 +00000",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994 21:52 +0000",
	    &t, &tz) < 0);
	test_assert(imap_date_parse_datetime("07-Feb-1994", &t, &tz) < 0);
	test_end();

	test_begin("date-time formatting");
	imap_date_format_datetime(837596665, -420, d);
	test_assert_streq(d, "17-Jul-1996 02:44:25 -0700");
	imap_date_format_datetime(0, 0, d);
	test_assert_streq(d, "01-Jan-1970 00:00:00 +0000");
	imap_date_format_datetime(951782400 - 1, 60, d);
	test_assert_streq(d, "29-Feb-2000 00:59:59 +0100");
	test_assert(imap_date_parse_datetime(d, &t, &tz) == 0 &&
	    t == 951782400 - 1 && tz == 60);
	test_end();
}

int
main(void)
{
	test_simple();
	test_login();
	test_mailboxes();
	test_append();
	test_fetch();
	test_search();
	test_misc();
	test_bad_input();
	test_seqset();
	test_utf7();
	test_dates();
	return test_done();
}
