/* Cross-thread wake-ups of a loop (src/util/wake.c): nothing queued is left without one. */
#include "testutil.h"

#include <pthread.h>

#include "../../src/util/wake.h"

#define PRODUCERS 4
#define ITEMS 50000

struct shared {
    struct cm_wake wake;
    uv_timer_t deadline;
    pthread_mutex_t mu;
    long queued;  /* items pushed and not yet taken */
    long taken;   /* items the loop took */
    long wakeups; /* callbacks run */
    long target;  /* items in all */
    bool timed_out;
    pthread_cond_t cv; /* ping-pong: signalled when the loop took something */
};

static void on_wake(struct cm_wake *w)
{
    struct shared *sh = w->data;
    sh->wakeups++;
    pthread_mutex_lock(&sh->mu);
    sh->taken += sh->queued;
    sh->queued = 0;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    if (sh->taken == sh->target) {
        uv_timer_stop(&sh->deadline);
        uv_close((uv_handle_t *)&sh->deadline, NULL);
        cm_wake_close(w);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct shared *sh = t->data;
    pthread_mutex_lock(&sh->mu);
    sh->timed_out = true;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    uv_close((uv_handle_t *)t, NULL);
    cm_wake_close(&sh->wake);
}

static void *producer(void *arg)
{
    struct shared *sh = arg;
    for (int i = 0; i < ITEMS; i++) {
        pthread_mutex_lock(&sh->mu);
        sh->queued++;
        pthread_mutex_unlock(&sh->mu);
        cm_wake_send(&sh->wake);
        if (i % 1000 == 0)
            sched_yield(); /* let the loop drain mid-stream, so the flag flips often */
    }
    return NULL;
}

/* One item at a time, the next pushed as soon as the loop took the previous one: the push lands
 * while the loop is still in its callback, so a wake-up lost there stalls the exchange. */
static void *ping_pong(void *arg)
{
    struct shared *sh = arg;
    pthread_mutex_lock(&sh->mu);
    for (long i = 0; i < sh->target && !sh->timed_out; i++) {
        sh->queued++;
        pthread_mutex_unlock(&sh->mu);
        cm_wake_send(&sh->wake);
        pthread_mutex_lock(&sh->mu);
        while (sh->taken <= i && !sh->timed_out)
            pthread_cond_wait(&sh->cv, &sh->mu);
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

static void setup_shared(uv_loop_t *loop, struct shared *sh, long target, uint64_t deadline_ms)
{
    uv_loop_init(loop);
    memset(sh, 0, sizeof *sh);
    sh->target = target;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cv, NULL);
    assert_int_equal(cm_wake_init(loop, &sh->wake, on_wake), 0);
    sh->wake.data = sh;
    uv_timer_init(loop, &sh->deadline);
    sh->deadline.data = sh;
    uv_timer_start(&sh->deadline, on_deadline, deadline_ms, 0);
}

/* After the loop ran: it took everything in time, and closed everything it opened. */
static void finish_shared(uv_loop_t *loop, struct shared *sh)
{
    assert_false(sh->timed_out);
    assert_int_equal(sh->taken, sh->target);
    assert_int_equal(uv_loop_close(loop), 0);
    pthread_mutex_destroy(&sh->mu);
    pthread_cond_destroy(&sh->cv);
}

static void test_every_wake_up_counts(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct shared sh;
    setup_shared(&loop, &sh, 20000, 20000);
    pthread_t th;
    pthread_create(&th, NULL, ping_pong, &sh);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(sh.target, 20000);
    finish_shared(&loop, &sh);
}

/* Four threads push 200,000 items, waking the loop after each: the loop takes every one, each
 * wake-up runs the callback at most once per eventfd read, and far fewer wake-ups than items
 * are needed (a pending wake-up is not written again). */
static void test_no_item_is_left_behind(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct shared sh;
    setup_shared(&loop, &sh, (long)PRODUCERS * ITEMS, 20000);
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, &sh);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    finish_shared(&loop, &sh);
    assert_true(sh.wakeups >= 1);
    assert_true(sh.wakeups < (long)PRODUCERS * ITEMS);
}

/* A wake-up sent before the loop runs is kept; closing twice is harmless. */
static void test_wake_before_run_and_double_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct shared sh;
    setup_shared(&loop, &sh, (long)PRODUCERS * ITEMS, 5000);
    sh.queued = (long)PRODUCERS * ITEMS; /* everything at once, announced by one wake-up */
    cm_wake_send(&sh.wake);
    cm_wake_send(&sh.wake); /* pending already: not written again */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(sh.wakeups, 1);
    cm_wake_close(&sh.wake);
    assert_int_equal(sh.wake.fd, -1);
    finish_shared(&loop, &sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_wake_up_counts),
        cmocka_unit_test(test_no_item_is_left_behind),
        cmocka_unit_test(test_wake_before_run_and_double_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
