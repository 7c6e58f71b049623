#include "wake.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct cm_wake *w = h->data;
    uint64_t v;
    while (read(w->fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    atomic_store(&w->pending, 0); /* before the work is looked at: see wake.h */
    w->cb(w);
}

int cm_wake_init(uv_loop_t *loop, struct cm_wake *w, void (*cb)(struct cm_wake *w))
{
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0)
        return -errno;
    atomic_init(&w->pending, 0);
    w->cb = cb;
    int rc = uv_poll_init(loop, &w->poll, w->fd);
    if (rc == 0) {
        w->poll.data = w;
        rc = uv_poll_start(&w->poll, UV_READABLE, on_readable);
    }
    if (rc != 0) {
        close(w->fd);
        w->fd = -1;
    }
    return rc;
}

void cm_wake_send(struct cm_wake *w)
{
    if (atomic_load_explicit(&w->pending, memory_order_relaxed) != 0)
        return;
    if (atomic_exchange(&w->pending, 1) != 0)
        return;
    uint64_t one = 1;
    while (write(w->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void cm_wake_close(struct cm_wake *w)
{
    if (w->fd < 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&w->poll))
        uv_close((uv_handle_t *)&w->poll, NULL);
    close(w->fd);
    w->fd = -1;
}
