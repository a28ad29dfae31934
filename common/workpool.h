/*
 * workpool: a fixed set of threads that run blocking work (fsync, PAM,
 * password hashing) off the event loop.  The work function runs in a
 * worker thread and must touch only the job's own data; the done
 * function runs later in the loop thread, in completion order, woken
 * through an eventfd.
 *
 * A process may have several pools.  Jobs are never cancelled: whoever
 * submits one must keep its context alive until done runs (or until the
 * process exits).
 */
#ifndef POSTERN_WORKPOOL_H
#define POSTERN_WORKPOOL_H

#include <stddef.h>

struct workpool;

typedef void workpool_work_fn(void *ctx);	/* worker thread */
typedef void workpool_done_fn(void *ctx);	/* loop thread */

/* Start nthreads workers; name is for error messages.  Needs ioloop_init().
 * Exits with log_fatal() when threads or the eventfd cannot be made. */
struct workpool *workpool_new(const char *name, int nthreads);
/* The same with threads of stack_size bytes (0: the default, 256 KiB):
 * code such as PAM modules expects a main-thread-sized stack. */
struct workpool *workpool_new_stack(const char *name, int nthreads,
	    size_t stack_size);
/* Queue work(ctx) for a worker, then done(ctx) in the loop. */
void	workpool_submit(struct workpool *wp, workpool_work_fn *work,
	    workpool_done_fn *done, void *ctx);
/* Detach the pool from the loop (process shutdown).  Workers still busy
 * die with the process; pending done callbacks are not run. */
void	workpool_stop(struct workpool **wpp);

#endif
