/* Per-route request counters; see stats.h. */
#include "stats.h"

#include <stdatomic.h>

const double cm_http_latency_bounds_s[12] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

struct route_stats {
    atomic_ullong count[6];
    atomic_ullong latency_us_sum;
    atomic_ullong bucket[12];
};

static struct route_stats stats[CM_ROUTE_STATS_MAX];

atomic_uint cm_http_open_connections;

void cm_route_stats_record(const struct cm_route *r, int status, uint64_t us)
{
    size_t n;
    const struct cm_route *routes = cm_routes(&n);
    if (r == NULL || r < routes || (size_t)(r - routes) >= n ||
        (size_t)(r - routes) >= CM_ROUTE_STATS_MAX)
        return;
    struct route_stats *s = &stats[r - routes];
    int st = status ? status : 200;
    int cls = st >= 900 ? 0 : (st / 100 >= 1 && st / 100 <= 5 ? st / 100 : 5);
    atomic_fetch_add_explicit(&s->count[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->latency_us_sum, us, memory_order_relaxed);
    for (int k = 0; k < 12; k++)
        if ((double)us / 1e6 <= cm_http_latency_bounds_s[k]) {
            atomic_fetch_add_explicit(&s->bucket[k], 1, memory_order_relaxed);
            break;
        }
}

bool cm_route_stats_get(size_t i, struct cm_http_route_stats *out)
{
    size_t n;
    cm_routes(&n);
    if (i >= n || i >= CM_ROUTE_STATS_MAX)
        return false;
    const struct route_stats *s = &stats[i];
    for (int k = 0; k < 6; k++)
        out->count[k] = atomic_load_explicit(&s->count[k], memory_order_relaxed);
    out->latency_us_sum = atomic_load_explicit(&s->latency_us_sum, memory_order_relaxed);
    for (int k = 0; k < 12; k++)
        out->latency_bucket[k] = atomic_load_explicit(&s->bucket[k], memory_order_relaxed);
    return true;
}
