/*
 * The HTTP server (libmicrohttpd, internal polling threads with poll(2) -- its epoll mode stalls
 * in 0.9.75). Requests are parsed on the HTTP threads, suspended and handed to the loop; the loop
 * resumes them with the response. See job.h for the life of a request.
 */
#ifndef CM_HTTP_SERVER_H
#define CM_HTTP_SERVER_H

#include <stddef.h>

#include "../server/config.h"
#include "job.h"

struct cm_node;
struct cm_http;

/* Bind and start serving. Returns 0 or -1 with a message (e.g. the port is in use). */
int cm_http_start(struct cm_http **out, struct cm_node *node, const struct cm_config *cfg,
                  char *err, size_t errlen);
/* Stop accepting new connections (existing ones finish). */
void cm_http_quiesce(struct cm_http *h);
/* Stop; every suspended connection must have been resumed. */
void cm_http_stop(struct cm_http *h);

void cm_http_suspend(struct cm_job *j);
void cm_http_resume(struct cm_job *j);

/* Request counters per route and status class, for /metrics. */
struct cm_http_route_stats {
    unsigned long long count[6]; /* by status class 1xx..5xx; [0] = 9xx */
    unsigned long long latency_us_sum;
    unsigned long long latency_bucket[12]; /* cumulative-free buckets, see server.c */
};
const struct cm_http_route_stats *cm_http_stats(struct cm_http *h, size_t route_index);
extern const double cm_http_latency_bounds_s[12];

#endif
