/*
 * workpool: worker threads with an eventfd back into the loop.
 */
#include "config.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioloop.h"
#include "log.h"
#include "xmalloc.h"

#include "workpool.h"

#define WORKPOOL_STACK	(256 * 1024)

struct workpool_job {
	struct workpool_job	*next;
	workpool_work_fn	*work;
	workpool_done_fn	*done;
	void			*ctx;
};

struct workpool {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct workpool_job	*todo;
	struct workpool_job	**tail;
	struct workpool_job	*finished;	/* LIFO */
	int			 efd;
	struct io		*io;
};

static void *
workpool_worker(void *arg)
{
	struct workpool *wp = arg;
	uint64_t one = 1;

	for (;;) {
		struct workpool_job *job;

		pthread_mutex_lock(&wp->lock);
		while (wp->todo == NULL)
			pthread_cond_wait(&wp->cond, &wp->lock);
		job = wp->todo;
		wp->todo = job->next;
		if (wp->todo == NULL)
			wp->tail = &wp->todo;
		pthread_mutex_unlock(&wp->lock);

		job->work(job->ctx);

		pthread_mutex_lock(&wp->lock);
		job->next = wp->finished;
		wp->finished = job;
		pthread_mutex_unlock(&wp->lock);
		while (write(wp->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void
workpool_collect(int fd, int events, void *ctx)
{
	struct workpool *wp = ctx;
	struct workpool_job *list, *rev = NULL, *job;
	uint64_t n;

	(void)events;
	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&wp->lock);
	list = wp->finished;
	wp->finished = NULL;
	pthread_mutex_unlock(&wp->lock);
	/* Reverse into completion order. */
	while (list != NULL) {
		job = list;
		list = job->next;
		job->next = rev;
		rev = job;
	}
	while (rev != NULL) {
		job = rev;
		rev = job->next;
		job->done(job->ctx);
		free(job);
	}
}

struct workpool *
workpool_new(const char *name, int nthreads)
{
	return workpool_new_stack(name, nthreads, 0);
}

struct workpool *
workpool_new_stack(const char *name, int nthreads, size_t stack_size)
{
	struct workpool *wp = xcalloc(1, sizeof(*wp));
	pthread_attr_t attr;
	int i;

	pthread_mutex_init(&wp->lock, NULL);
	pthread_cond_init(&wp->cond, NULL);
	wp->tail = &wp->todo;
	wp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wp->efd < 0)
		log_fatal("%s: eventfd: %m", name);
	wp->io = io_add(wp->efd, IOLOOP_READ, workpool_collect, wp);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, stack_size != 0 ? stack_size :
	    WORKPOOL_STACK);
	for (i = 0; i < nthreads; i++) {
		pthread_t tid;
		int err = pthread_create(&tid, &attr, workpool_worker, wp);

		if (err != 0)
			log_fatal("%s: pthread_create: %s", name,
			    strerror(err));
	}
	pthread_attr_destroy(&attr);
	return wp;
}

void
workpool_submit(struct workpool *wp, workpool_work_fn *work,
    workpool_done_fn *done, void *ctx)
{
	struct workpool_job *job = xcalloc(1, sizeof(*job));

	job->work = work;
	job->done = done;
	job->ctx = ctx;
	pthread_mutex_lock(&wp->lock);
	*wp->tail = job;
	wp->tail = &job->next;
	pthread_cond_signal(&wp->cond);
	pthread_mutex_unlock(&wp->lock);
}

void
workpool_stop(struct workpool **wpp)
{
	struct workpool *wp = *wpp;

	if (wp == NULL)
		return;
	*wpp = NULL;
	/* Workers may still sleep in pthread_cond_wait or run a job: the
	 * structure and the eventfd stay for them (closing the eventfd could
	 * let a worker write into a reused descriptor); only the loop's
	 * watch goes. */
	io_remove(&wp->io);
}
