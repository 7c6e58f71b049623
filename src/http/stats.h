/*
 * Per-route request counters: what the front end records when a request completes, what
 * /metrics and the console's history read. Process-wide (one front end per process); every
 * counter is a relaxed atomic, written from the front end's threads and read from any thread.
 */
#ifndef CM_HTTP_STATS_H
#define CM_HTTP_STATS_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "router.h"

#define CM_ROUTE_STATS_MAX 128

struct cm_http_route_stats {
    unsigned long long count[6]; /* by status class 1xx..5xx; [0] = 9xx */
    unsigned long long latency_us_sum;
    unsigned long long
        latency_bucket[12]; /* per bucket of cm_http_latency_bounds_s, not cumulative */
};

extern const double cm_http_latency_bounds_s[12];

/* Count one completed request of route r with its status and latency. */
void cm_route_stats_record(const struct cm_route *r, int status, uint64_t latency_us);
/* A copy of route i's counters (index into cm_routes()); false past the end. */
bool cm_route_stats_get(size_t route_index, struct cm_http_route_stats *out);

/* Open HTTP connections of this process's front end (a gauge it keeps). */
extern atomic_uint cm_http_open_connections;

#endif
