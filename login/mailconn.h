/*
 * mailconn: the connection of one logged-in session in a mail process
 * (pop3, imap; DESIGN §12).  It owns the descriptor posternd handed over
 * (the client socket, or the TLS relay of the login process), the bounded
 * input buffer, the output queue with its high-water mark, the autologout
 * timer and the end of the session; the protocol owns its states, its
 * commands and what it says.
 *
 * The loop it runs for the protocol: read while the protocol takes input
 * and the output is below the mark, let the protocol execute every
 * complete command already buffered (pipelining), and while a long
 * answer is produced (RETR, FETCH) read nothing and produce a step at a
 * time as the output drains, so a session never holds much more than
 * out_high bytes of output.  A client that sent its last commands and
 * closed its side gets every answer before the session ends.
 *
 * The protocol embeds a struct mailconn in its session and is called
 * back through struct mailconn_proto.  Sessions are freed only from
 * mailconn's callbacks (the free callback), never during one of the
 * protocol's own calls, so the protocol may use its session until it
 * returns.
 */
#ifndef POSTERN_MAILCONN_H
#define POSTERN_MAILCONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct io;
struct timer;
struct mailconn_zlib;

/* What the session does with input now (mailconn_proto.mode). */
enum mailconn_mode {
	MAILCONN_READ = 0,	/* reads and executes commands */
	MAILCONN_CONT,		/* produces a long answer; input waits */
	MAILCONN_CLOSE		/* the last answers go out, then close */
};

/* What one step of a long answer returns (mailconn_proto.step). */
enum mailconn_step {
	/* An error that ends the session: part of the answer is out, so
	 * nothing said now could be understood. */
	MAILCONN_STEP_FAIL = -1,
	/* Call again at once, or once the output drained when it is full. */
	MAILCONN_STEP_MORE = 0,
	/* Call again, but let the other sessions of the process run first
	 * (or once the output drained when it is full). */
	MAILCONN_STEP_YIELD,
	/* The answer is complete: the mode is no longer MAILCONN_CONT. */
	MAILCONN_STEP_DONE
};

struct mailconn_proto {
	const char	*name;		/* "pop3", "imap": log lines */
	size_t		 max_inbuf;	/* client input buffered */
	size_t		 out_high;	/* output that pauses reading */
	size_t		 read_size;	/* bytes asked per read(2) */
	unsigned int	 idle_ms;	/* autologout timer */
	const char	*idle_line;	/* said at autologout */
	/* The mode of session ctx. */
	enum mailconn_mode (*mode)(void *ctx);
	/* MAILCONN_CONT: append the next part of the answer. */
	enum mailconn_step (*step)(void *ctx);
	/*
	 * MAILCONN_READ: take at most one command (or line) from the
	 * start of c->in, consume it and execute it.  false when c->in
	 * holds no complete one (what is consumed then is consumed).
	 */
	bool	(*input)(void *ctx);
	/*
	 * The session is over (c->reason says why, NULL: the client
	 * closed): log it, mailconn_deinit() the connection, free ctx.
	 */
	void	(*free)(void *ctx);
};

struct mailconn {
	int		 fd;
	struct io	*io;
	struct timer	*timeout;	/* autologout */
	struct timer	*resume_timer;	/* a long answer goes on */
	struct buf	 in;		/* at most proto->max_inbuf */
	struct buf	 out;
	uint64_t	 bytes_in, bytes_out;
	/* For the logout line ("Disconnected: Logged out"); static text. */
	const char	*reason;
	bool		 eof;		/* the client closed */
	bool		 dead;		/* freed after the callback */
	int		 busy;		/* callback depth */
	const struct mailconn_proto *proto;
	void		*ctx;
	/* Compression (mailconn_compress()); NULL while off. */
	struct mailconn_zlib *z;
};

/*
 * Take over fd (a session handed over by posternd) for session ctx: make
 * it non-blocking and close-on-exec and watch it.  log_user names the
 * session in a warning.  The connection is held until mailconn_start():
 * the protocol greets, queues its first answers and puts pipelined bytes
 * into c->in (mailconn_preload()) meanwhile.
 */
void	mailconn_init(struct mailconn *c, int fd,
	    const struct mailconn_proto *proto, void *ctx,
	    const char *log_user);
/* Client bytes the login process read already (at most one buffer). */
void	mailconn_preload(struct mailconn *c, const void *data, size_t len);
/*
 * Start the autologout timer and run: execute what is buffered, write.
 * May free the session (through proto->free) before it returns.
 */
void	mailconn_start(struct mailconn *c);
/*
 * Release what the connection holds (watch, timers, descriptor, buffers)
 * and tell mailproc the session ended.  Called by proto->free.
 */
void	mailconn_deinit(struct mailconn *c);

/* Queue bytes as they are (nothing once the connection is dead). */
void	mailconn_write(struct mailconn *c, const void *data, size_t len);
/* Queue one line: fmt expanded, CRLF added. */
void	mailconn_vreply(struct mailconn *c, const char *fmt, va_list ap);
void	mailconn_reply(struct mailconn *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The output reached its high-water mark: a long answer pauses. */
bool	mailconn_out_full(const struct mailconn *c);
/*
 * Set the reason for the logout line unless one is set.  The protocol
 * enters its closing state itself (mode MAILCONN_CLOSE): what is queued
 * is flushed, then the session ends.
 */
void	mailconn_close(struct mailconn *c, const char *reason);
/*
 * Output was queued outside the connection's callbacks (another session
 * changed a mailbox): wait for the socket to take it.
 */
void	mailconn_update(struct mailconn *c);

/*
 * Compress the connection from now on (IMAP COMPRESS=DEFLATE, RFC 4978):
 * what is queued already (the tagged OK) goes out as it is, everything
 * queued later and everything the client sends (including what is in
 * c->in now, sent after the command) is raw deflate.  The output is
 * flushed (Z_SYNC_FLUSH) whenever it is written, so no answer waits in
 * the compressor.  Invalid compressed input ends the session.  Returns
 * 0, or -1 with *error_r (compression is on already, zlib failed).
 */
int	mailconn_compress(struct mailconn *c, const char **error_r);
/* Whether mailconn_compress() was done. */
bool	mailconn_compressed(const struct mailconn *c);

/*
 * mailconn_zlib.c, for mailconn.c only: the deflate and inflate streams
 * and their compressed buffers.
 */
/* The streams, the compressed input bounded by max_in; NULL with
 * *error_r when zlib cannot start. */
struct mailconn_zlib *mailconn_zlib_new(size_t max_in, const char **error_r);
void	mailconn_zlib_free(struct mailconn_zlib **zp);
/* The compressed output for the socket; the compressed input read. */
struct buf *mailconn_zlib_out(struct mailconn_zlib *z);
struct buf *mailconn_zlib_in(struct mailconn_zlib *z);
/* Compressed output is waiting (in the buffer or inside zlib). */
bool	mailconn_zlib_pending(const struct mailconn_zlib *z);
/*
 * Compress plain (consumed) into the output, sync-flushed, until plain is
 * empty or the output holds enough for the socket.  0, or -1 when zlib
 * failed.
 */
int	mailconn_zlib_deflate(struct mailconn_zlib *z, struct buf *plain);
/*
 * Decompress the input into plain, never past plain->max.  1 when bytes
 * were used or made, 0 when nothing can be done now (no input, plain
 * full, the stream ended), -1 on invalid compressed data.
 */
int	mailconn_zlib_inflate(struct mailconn_zlib *z, struct buf *plain);
/* The client ended its compressed stream. */
bool	mailconn_zlib_ended(const struct mailconn_zlib *z);

#endif
