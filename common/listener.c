/*
 * listener: listening sockets and the accept loop (see listener.h).  The
 * listeners live in one array: the ioloop holds pointers into it, so
 * nothing is added once accepting has started.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioloop.h"
#include "listener.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

struct listener {
	int		 fd;
	int		 kind;
	struct io	*io;
	struct timer	*pause;		/* accepting paused (EMFILE) */
};

static struct listener *listeners;
static size_t listener_n;
static listener_accept_cb *listener_cb;
static bool listener_started;
static bool listener_closed;

void
listener_add(int fd, int kind)
{
	struct listener *l;
	int flags = fcntl(fd, F_GETFL);

	if (listener_started)
		log_panic("listener_add(%d) after listener_start()", fd);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		log_fatal("listener fd %d: %m", fd);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	listeners = xreallocarray(listeners, listener_n + 1,
	    sizeof(*listeners));
	l = &listeners[listener_n++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->kind = kind;
}

/* POSTERN_LISTEN="FD:SERVICE:ADDR:PORT,..." with ADDR "[v6]" or v4. */
void
listener_add_env(listener_kind_cb *kind_of)
{
	const char *env = getenv("POSTERN_LISTEN");
	char **items;
	size_t i;

	if (env == NULL || *env == '\0')
		return;
	items = strv_split(env, ",");
	for (i = 0; items[i] != NULL; i++) {
		char *item = items[i], *svc, *rest;
		long long fd;
		int kind;

		if ((rest = strchr(item, ':')) == NULL)
			goto bad;
		*rest++ = '\0';
		svc = rest;
		if ((rest = strchr(svc, ':')) == NULL)
			goto bad;
		*rest = '\0';
		/* 0, 1 and 2 are stdin, stdout and stderr. */
		if (str_to_ll(item, 3, 65535, &fd) < 0)
			goto bad;
		if ((kind = kind_of(svc)) >= 0)
			listener_add((int)fd, kind);
		else
			log_warning("POSTERN_LISTEN: service %s not served "
			    "here, ignoring fd %lld", svc, fd);
		continue;
bad:
		log_fatal("bad POSTERN_LISTEN element: %s", items[i]);
	}
	strv_free(&items);
}

size_t
listener_count(void)
{
	return listener_n;
}

static void listener_accept(int fd, int events, void *ctx);

static void
listener_resume(void *ctx)
{
	struct listener *l = ctx;

	l->pause = NULL;
	if (l->io != NULL)
		io_set_events(l->io, IOLOOP_READ);
}

static void
listener_accept(int fd, int events, void *ctx)
{
	struct listener *l = ctx;
	int i;

	(void)events;
	/* A callback may have stopped the process: l is gone then. */
	for (i = 0; i < LISTENER_ACCEPT_BATCH && !listener_closed; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a
				 * second instead of spinning. */
				log_warning("accept: %m");
				io_set_events(l->io, 0);
				if (l->pause == NULL)
					l->pause = timer_add(1000,
					    listener_resume, l);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warning("accept: %m");
			return;
		}
		listener_cb(c, l->kind, &ss, sslen);
	}
}

void
listener_start(listener_accept_cb *cb)
{
	size_t i;

	listener_cb = cb;
	listener_started = true;
	for (i = 0; i < listener_n; i++)
		listeners[i].io = io_add(listeners[i].fd, IOLOOP_READ,
		    listener_accept, &listeners[i]);
}

void
listener_close_all(void)
{
	size_t i;

	for (i = 0; i < listener_n; i++) {
		struct listener *l = &listeners[i];

		io_remove(&l->io);
		timer_remove(&l->pause);
		(void)close(l->fd);
	}
	free(listeners);
	listeners = NULL;
	listener_n = 0;
	listener_closed = true;
}
