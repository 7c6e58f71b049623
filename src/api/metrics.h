/*
 * GET /metrics: Prometheus text format (version 0.0.4), answered by every node from its own state.
 *
 * A scrape renders, in this order: the reference's `blobstore_clusterMgr_*` gauges (spec §12),
 * the node's own raft and request metrics, then every registered source. A domain (disks,
 * volumes, ...) contributes metrics by registering a source from its jobs init:
 *
 *     static const char *const fams[] = {"blobstore_clusterMgr_disk_heartbeat_change", NULL};
 *     static void render(struct cm_node *n, struct cm_prom *p, void *arg) {
 *         cm_prom_family(p, "blobstore_clusterMgr_disk_heartbeat_change", "gauge", "...");
 *         cm_prom_sample_u64(p, "blobstore_clusterMgr_disk_heartbeat_change", changes,
 *                            "region", p->region, "cluster", p->cluster, NULL);
 *     }
 *     cm_metrics_register(n, &(struct cm_metrics_source){"disk", fams, render, state});
 *
 * Every family must appear once per scrape with all its samples together. The built-in reference
 * gauges are rendered from the `space_stat` and `volume_stat` objects of /stat (so they follow
 * whatever /stat reports) and with zeros for the event gauges; a family named in a source's
 * `families` list is left to that source instead.
 *
 * Everything here runs on the loop thread.
 */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

struct cm_node;

/* One scrape being written. */
struct cm_prom {
    struct cm_buf out;
    const char *region;    /* value of the reference's `region` label */
    const char *cluster;   /* value of the `cluster` label (the cluster id) */
    const char *is_leader; /* "true" or "false" */
};

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram, untyped). */
void cm_prom_family(struct cm_prom *p, const char *name, const char *type, const char *help);
/* One sample: name{k="v",...} value. The variadic part is label name/value string pairs ending
 * with NULL; values are escaped. */
void cm_prom_sample(struct cm_prom *p, const char *name, double value, ...)
    __attribute__((sentinel));
void cm_prom_sample_u64(struct cm_prom *p, const char *name, uint64_t value, ...)
    __attribute__((sentinel));

/* A latency histogram with fixed bucket bounds (seconds, ascending, at most CM_HIST_MAX). */
#define CM_HIST_MAX 16
struct cm_hist {
    const double *bounds;
    size_t n;
    uint64_t bucket[CM_HIST_MAX]; /* observations in (bounds[i-1], bounds[i]]; not cumulative */
    uint64_t count;
    double sum;
};
void cm_hist_init(struct cm_hist *h, const double *bounds, size_t n);
void cm_hist_observe(struct cm_hist *h, double seconds);
/* The samples of a histogram family (name_bucket, name_sum, name_count) with extra labels. */
void cm_prom_hist(struct cm_prom *p, const char *name, const struct cm_hist *h, ...)
    __attribute__((sentinel));

struct cm_metrics_source {
    const char *name;            /* for logs */
    const char *const *families; /* families this source renders, NULL-terminated; may be NULL */
    void (*render)(struct cm_node *n, struct cm_prom *p, void *arg);
    void *arg; /* owned by the caller; free it in the domain's on_stop */
};
/* Register a source (loop thread, normally from the domain's jobs init). Copied. */
void cm_metrics_register(struct cm_node *n, const struct cm_metrics_source *src);

/* Render a whole scrape into `out` (the body of GET /metrics). */
void cm_metrics_render(struct cm_node *n, struct cm_buf *out);

#endif
