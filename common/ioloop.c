/*
 * ioloop: epoll + signalfd event loop (see ioloop.h).  Timers are kept in an
 * unsorted array: services have few of them (one per session at most), and
 * a linear scan per iteration costs less than a heap at these sizes.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ioloop.h"
#include "log.h"
#include "xmalloc.h"

struct io {
	int		 fd;
	int		 events;
	io_cb_t		*cb;
	void		*ctx;
	bool		 removed;
	struct io	*next_dead;
};

struct timer {
	uint64_t	 when;
	timer_cb_t	*cb;
	void		*ctx;
	size_t		 idx;
};

struct sig_handler {
	signal_cb_t	*cb;
	void		*ctx;
};

static int ep_fd = -1;
static bool loop_running;
static uint64_t now_ms;
static struct timer **timers;
static size_t timer_count, timer_cap;
static struct io *dead_ios;
static int sig_fd = -1;
static struct io *sig_io;
static sigset_t sig_mask;
static struct sig_handler sig_handlers[65];

static void
update_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
ioloop_now_ms(void)
{
	if (now_ms == 0)
		update_now();
	return now_ms;
}

void
ioloop_init(void)
{
	if (ep_fd >= 0)
		return;
	ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (ep_fd < 0)
		log_fatal("epoll_create1: %m");
	sigemptyset(&sig_mask);
	update_now();
}

static uint32_t
to_epoll(int events)
{
	uint32_t e = 0;

	if (events & IOLOOP_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & IOLOOP_WRITE)
		e |= EPOLLOUT;
	return e;
}

struct io *
io_add(int fd, int events, io_cb_t *cb, void *ctx)
{
	struct io *io = xcalloc(1, sizeof(*io));
	struct epoll_event ev;

	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->ctx = ctx;
	memset(&ev, 0, sizeof(ev));
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (events != 0 && epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_panic("epoll_ctl(ADD, %d): %m", fd);
	return io;
}

void
io_set_events(struct io *io, int events)
{
	struct epoll_event ev;
	int op;

	if (io->events == events)
		return;
	/*
	 * A paused watch leaves epoll entirely: a hung-up fd would otherwise
	 * be reported (EPOLLHUP) on every iteration while nobody reads it.
	 */
	if (events == 0) {
		(void)epoll_ctl(ep_fd, EPOLL_CTL_DEL, io->fd, NULL);
		io->events = 0;
		return;
	}
	op = io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	io->events = events;
	memset(&ev, 0, sizeof(ev));
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(ep_fd, op, io->fd, &ev) < 0)
		log_panic("epoll_ctl(%d, %d): %m", op, io->fd);
}

int
io_get_events(const struct io *io)
{
	return io->events;
}

void
io_remove(struct io **iop)
{
	struct io *io = *iop;

	if (io == NULL)
		return;
	*iop = NULL;
	/* The fd may already be closed by the caller: ignore errors. */
	(void)epoll_ctl(ep_fd, EPOLL_CTL_DEL, io->fd, NULL);
	/* Freed after the current batch of events: it may still be listed. */
	io->removed = true;
	io->next_dead = dead_ios;
	dead_ios = io;
}

struct timer *
timer_add(uint64_t msecs, timer_cb_t *cb, void *ctx)
{
	struct timer *t = xcalloc(1, sizeof(*t));

	t->when = ioloop_now_ms() + msecs;
	t->cb = cb;
	t->ctx = ctx;
	if (timer_count == timer_cap) {
		timer_cap = timer_cap ? timer_cap * 2 : 16;
		timers = xreallocarray(timers, timer_cap, sizeof(*timers));
	}
	t->idx = timer_count;
	timers[timer_count++] = t;
	return t;
}

void
timer_remove(struct timer **tp)
{
	struct timer *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	timers[t->idx] = timers[--timer_count];
	timers[t->idx]->idx = t->idx;
	free(t);
}

static void
sig_read(int fd, int events, void *ctx)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)ctx;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int s = (int)si.ssi_signo;

		if (s > 0 && s < 65 && sig_handlers[s].cb != NULL)
			sig_handlers[s].cb(s, sig_handlers[s].ctx);
	}
}

void
ioloop_signal(int signo, signal_cb_t *cb, void *ctx)
{
	ioloop_init();
	sig_handlers[signo].cb = cb;
	sig_handlers[signo].ctx = ctx;
	sigaddset(&sig_mask, signo);
	if (sigprocmask(SIG_BLOCK, &sig_mask, NULL) < 0)
		log_fatal("sigprocmask: %m");
	sig_fd = signalfd(sig_fd, &sig_mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		log_fatal("signalfd: %m");
	if (sig_io == NULL)
		sig_io = io_add(sig_fd, IOLOOP_READ, sig_read, NULL);
}

void
ioloop_stop(void)
{
	loop_running = false;
}

static int
next_timeout(void)
{
	uint64_t min = UINT64_MAX;
	size_t i;

	for (i = 0; i < timer_count; i++)
		if (timers[i]->when < min)
			min = timers[i]->when;
	if (min == UINT64_MAX)
		return -1;
	if (min <= now_ms)
		return 0;
	if (min - now_ms > 60000)
		return 60000;
	return (int)(min - now_ms);
}

static void
run_timers(void)
{
	size_t i;

	for (i = 0; i < timer_count; ) {
		struct timer *t = timers[i];

		if (t->when <= now_ms) {
			timer_cb_t *cb = t->cb;
			void *ctx = t->ctx;

			timer_remove(&t);
			cb(ctx);
			i = 0;	/* the array changed under us */
			continue;
		}
		i++;
	}
}

void
ioloop_run(void)
{
	struct epoll_event evs[128];
	int n, i;

	ioloop_init();
	loop_running = true;
	while (loop_running) {
		n = epoll_wait(ep_fd, evs, 128, next_timeout());
		update_now();
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("epoll_wait: %m");
		}
		for (i = 0; i < n; i++) {
			struct io *io = evs[i].data.ptr;
			int e = 0;

			if (io->removed)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP |
			    EPOLLERR))
				e |= IOLOOP_READ;
			if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				e |= IOLOOP_WRITE;
			if ((evs[i].events & (EPOLLHUP | EPOLLERR)) == 0)
				e &= io->events;
			if (e != 0)
				io->cb(io->fd, e, io->ctx);
		}
		while (dead_ios != NULL) {
			struct io *io = dead_ios;
			dead_ios = io->next_dead;
			free(io);
		}
		run_timers();
	}
}
