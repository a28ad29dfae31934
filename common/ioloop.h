/*
 * ioloop: a small epoll event loop with fd watches and one-shot timers.
 * Single-threaded; callbacks run from ioloop_run().  Signals are turned into
 * loop events with ioloop_signal() (signalfd underneath), so handlers run in
 * normal context.  Does not do buffering or TLS: see iostream.h.
 */
#ifndef POSTERN_IOLOOP_H
#define POSTERN_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>

#define IOLOOP_READ	0x1
#define IOLOOP_WRITE	0x2

struct io;
struct timer;

typedef void io_cb_t(int fd, int events, void *ctx);
typedef void timer_cb_t(void *ctx);
typedef void signal_cb_t(int signo, void *ctx);

void	ioloop_init(void);
/* Run until ioloop_stop(). */
void	ioloop_run(void);
void	ioloop_stop(void);
/* Milliseconds since an arbitrary start, monotonic; updated per iteration. */
uint64_t ioloop_now_ms(void);

/* Watch fd for events (IOLOOP_READ|IOLOOP_WRITE). */
struct io *io_add(int fd, int events, io_cb_t *cb, void *ctx);
/* Change the watched events (0 = pause the watch without removing it). */
void	io_set_events(struct io *io, int events);
int	io_get_events(const struct io *io);
/* Remove the watch (does not close fd); sets *iop to NULL. */
void	io_remove(struct io **iop);

/* One-shot timer after msecs. */
struct timer *timer_add(uint64_t msecs, timer_cb_t *cb, void *ctx);
void	timer_remove(struct timer **tp);

/* Deliver signo through the loop.  Blocks the signal for normal delivery. */
void	ioloop_signal(int signo, signal_cb_t *cb, void *ctx);

#endif
