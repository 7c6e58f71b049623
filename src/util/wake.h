#ifndef CM_UTIL_WAKE_H
#define CM_UTIL_WAKE_H

#include <stdatomic.h>
#include <uv.h>

/* Wake a libuv loop from another thread: an eventfd watched by a uv_poll_t, written only when
 * no wake-up is pending yet.
 *
 * Why not uv_async_t: in libuv 1.44 the woken loop spins, then calls sched_yield, while a
 * sender is between its two atomic steps around the eventfd write. The write itself wakes the
 * loop's thread, which on a busy machine often runs before the sender finishes: measured here,
 * hundreds of sched_yield calls per second on a node's loop under load, each about 0.3 ms. This
 * one has no second step: the loop clears `pending` before it looks at the work, so what is
 * queued after that gets a wake-up of its own. */
struct cm_wake {
    uv_poll_t poll;
    int fd;
    atomic_int pending;
    void (*cb)(struct cm_wake *w);
    void *data;
};

/* On the loop's thread. Returns 0 or a negative errno. */
int cm_wake_init(uv_loop_t *loop, struct cm_wake *w, void (*cb)(struct cm_wake *w));
/* Any thread; the work it announces must be published (a mutex, an atomic) before the call. */
void cm_wake_send(struct cm_wake *w);
/* On the loop's thread: stop watching and close the eventfd. Safe after the handle was closed
 * by a walk over the loop's handles (only the eventfd is closed then). */
void cm_wake_close(struct cm_wake *w);

#endif
