/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The port's run_beside (fleetota/port.h): one helper thread, started at
 * the first call and kept until the port closes, runs the core's other
 * job while the calling thread runs its own; the call returns when both
 * are done. Only with async_slot_writes (ota-agent: one device in the
 * process); the fleet simulator's devices run both jobs on their own
 * thread, as they do when the thread cannot be started. A job the helper
 * has not started by the time the caller's own is done, the caller takes
 * back and runs itself: on a busy machine it does not wait for the
 * helper to be scheduled.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "ota_linux.h"

struct ota_beside {
	void (*job)(void *arg); /* the job handed over, NULL once done or taken back */
	void *arg;
	bool running; /* the helper runs job */
	bool quit;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

static void *beside_main(void *p)
{
	struct ota_beside *b = p;
	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->job && !b->quit)
			pthread_cond_wait(&b->cond, &b->lock);
		if (!b->job)
			break;
		void (*job)(void *) = b->job;
		b->running = true;
		pthread_mutex_unlock(&b->lock);
		job(b->arg);
		pthread_mutex_lock(&b->lock);
		b->job = NULL;
		b->running = false;
		pthread_cond_broadcast(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static struct ota_beside *beside_get(struct ota_linux_port *lx)
{
	if (lx->beside || !lx->async_slot_writes)
		return lx->beside;
	struct ota_beside *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	if (pthread_cond_init(&b->cond, NULL) != 0) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	if (pthread_create(&b->thread, NULL, beside_main, b) != 0) {
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	lx->beside = b;
	return b;
}

void ota_linux_run_beside(void *ctx, void (*beside)(void *arg), void *beside_arg,
			  void (*own)(void *arg), void *own_arg)
{
	struct ota_beside *b = beside_get(ctx);
	if (!b) {
		own(own_arg);
		beside(beside_arg);
		return;
	}
	pthread_mutex_lock(&b->lock);
	b->job = beside;
	b->arg = beside_arg;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	own(own_arg);
	/* the mutex makes the job's writes visible here */
	pthread_mutex_lock(&b->lock);
	bool mine = b->job && !b->running;
	if (mine)
		b->job = NULL; /* not started: taken back */
	while (b->job)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (mine)
		beside(beside_arg);
}

void ota_linux_beside_close(struct ota_linux_port *lx)
{
	struct ota_beside *b = lx->beside;
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->quit = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
	lx->beside = NULL;
}
