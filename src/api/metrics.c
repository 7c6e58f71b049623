/*
 * GET /metrics and the registry of metrics sources; see metrics.h.
 *
 * Rendering happens on the loop at scrape time from state the node keeps anyway (raft, the
 * counters of cm_node_stats, the per-route atomics of the HTTP server): serving requests costs
 * nothing extra for metrics beyond those counters.
 */
#include "metrics.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../http/stats.h"
#include "../util/json.h"
#include "../util/log.h"
#include "api.h"

#ifndef CM_VERSION
#define CM_VERSION "dev"
#endif

#define MAX_SOURCES 32

struct metrics_reg {
    struct cm_metrics_source src[MAX_SOURCES];
    size_t n;
};

static void reg_stop(struct cm_node *n, void *arg)
{
    cm_node_set_ext(n, CM_EXT_METRICS, NULL);
    free(arg);
}

static struct metrics_reg *reg_get(struct cm_node *n, bool create)
{
    struct metrics_reg *r = cm_node_ext(n, CM_EXT_METRICS);
    if (r == NULL && create) {
        r = cm_calloc(1, sizeof *r);
        cm_node_set_ext(n, CM_EXT_METRICS, r);
        cm_node_add_hooks(n, &(struct cm_node_hooks){.on_stop = reg_stop, .arg = r});
    }
    return r;
}

void cm_metrics_register(struct cm_node *n, const struct cm_metrics_source *src)
{
    struct metrics_reg *r = reg_get(n, true);
    if (r->n == MAX_SOURCES) {
        CM_ERROR("metrics", "too many metrics sources; \"%s\" is not rendered", src->name);
        return;
    }
    r->src[r->n++] = *src;
}

static bool claimed(const struct metrics_reg *r, const char *family)
{
    if (r == NULL)
        return false;
    for (size_t i = 0; i < r->n; i++)
        for (const char *const *f = r->src[i].families; f && *f; f++)
            if (strcmp(*f, family) == 0)
                return true;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* text format                                                                                 */

static void put_escaped(struct cm_buf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            cm_buf_puts(b, "\\\\");
        else if (*s == '\n')
            cm_buf_puts(b, "\\n");
        else if (*s == '"' && quote)
            cm_buf_puts(b, "\\\"");
        else
            cm_buf_append(b, s, 1);
    }
}

void cm_prom_family(struct cm_prom *p, const char *name, const char *type, const char *help)
{
    cm_buf_printf(&p->out, "# HELP %s ", name);
    put_escaped(&p->out, help, false);
    cm_buf_printf(&p->out, "\n# TYPE %s %s\n", name, type);
}

static void put_labels(struct cm_buf *b, va_list ap, const char *le)
{
    bool any = false;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        cm_buf_puts(b, any ? "," : "{");
        cm_buf_puts(b, k);
        cm_buf_puts(b, "=\"");
        put_escaped(b, v ? v : "", true);
        cm_buf_puts(b, "\"");
        any = true;
    }
    if (le) {
        cm_buf_puts(b, any ? "," : "{");
        cm_buf_printf(b, "le=\"%s\"", le);
        any = true;
    }
    if (any)
        cm_buf_puts(b, "}");
}

static void put_double(struct cm_buf *b, double v)
{
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
        cm_buf_printf(b, " %lld\n", (long long)v);
    else
        cm_buf_printf(b, " %.12g\n", v);
}

void cm_prom_sample(struct cm_prom *p, const char *name, double value, ...)
{
    cm_buf_puts(&p->out, name);
    va_list ap;
    va_start(ap, value);
    put_labels(&p->out, ap, NULL);
    va_end(ap);
    put_double(&p->out, value);
}

void cm_prom_sample_u64(struct cm_prom *p, const char *name, uint64_t value, ...)
{
    cm_buf_puts(&p->out, name);
    va_list ap;
    va_start(ap, value);
    put_labels(&p->out, ap, NULL);
    va_end(ap);
    cm_buf_printf(&p->out, " %llu\n", (unsigned long long)value);
}

void cm_hist_init(struct cm_hist *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n < CM_HIST_MAX ? n : CM_HIST_MAX;
}

void cm_hist_observe(struct cm_hist *h, double seconds)
{
    h->count++;
    h->sum += seconds;
    for (size_t i = 0; i < h->n; i++)
        if (seconds <= h->bounds[i]) {
            h->bucket[i]++;
            return;
        }
}

/* Samples of one histogram from non-cumulative bucket counts. The +Inf bucket is at least the
 * sum of the finite ones, so a scrape racing with a writer stays monotonic. */
static void hist_samples(struct cm_prom *p, const char *name, const double *bounds, size_t nb,
                         const uint64_t *bucket, uint64_t count, double sum, va_list ap)
{
    char fam[160], le[32];
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += bucket[i];
        snprintf(fam, sizeof fam, "%s_bucket", name);
        snprintf(le, sizeof le, "%g", bounds[i]);
        cm_buf_puts(&p->out, fam);
        va_list aq;
        va_copy(aq, ap);
        put_labels(&p->out, aq, le);
        va_end(aq);
        cm_buf_printf(&p->out, " %llu\n", (unsigned long long)cum);
    }
    if (count < cum)
        count = cum;
    snprintf(fam, sizeof fam, "%s_bucket", name);
    cm_buf_puts(&p->out, fam);
    va_list aq;
    va_copy(aq, ap);
    put_labels(&p->out, aq, "+Inf");
    va_end(aq);
    cm_buf_printf(&p->out, " %llu\n", (unsigned long long)count);
    cm_buf_printf(&p->out, "%s_sum", name);
    va_copy(aq, ap);
    put_labels(&p->out, aq, NULL);
    va_end(aq);
    put_double(&p->out, sum);
    cm_buf_printf(&p->out, "%s_count", name);
    va_copy(aq, ap);
    put_labels(&p->out, aq, NULL);
    va_end(aq);
    cm_buf_printf(&p->out, " %llu\n", (unsigned long long)count);
}

void cm_prom_hist(struct cm_prom *p, const char *name, const struct cm_hist *h, ...)
{
    va_list ap;
    va_start(ap, h);
    hist_samples(p, name, h->bounds, h->n, h->bucket, h->count, h->sum, ap);
    va_end(ap);
}

static void http_hist(struct cm_prom *p, const char *name, const struct cm_http_route_stats *s,
                      uint64_t count, ...)
{
    uint64_t bucket[12];
    for (int k = 0; k < 12; k++)
        bucket[k] = s->latency_bucket[k];
    va_list ap;
    va_start(ap, count);
    hist_samples(p, name, cm_http_latency_bounds_s, 12, bucket, count,
                 (double)s->latency_us_sum / 1e6, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */
/* the reference's gauges (spec §12)                                                          */

static int64_t jint(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, key, &v))
        return 0;
    return json_object_get_int64(v);
}

#define REF "region", p->region, "cluster", p->cluster

static void render_reference(struct cm_node *n, struct cm_prom *p, const struct metrics_reg *r)
{
    struct raft *rf = cm_node_raft(n);
    const char *f = "blobstore_clusterMgr_raft_stat";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "raft status of this node: term, indexes, members");
        cm_prom_sample_u64(p, f, rf->current_term, REF, "is_leader", p->is_leader, "item", "term",
                           NULL);
        cm_prom_sample_u64(p, f, rf->last_applied, REF, "is_leader", p->is_leader, "item",
                           "applied_index", NULL);
        cm_prom_sample_u64(p, f, rf->commit_index, REF, "is_leader", p->is_leader, "item",
                           "committed_index", NULL);
        cm_prom_sample_u64(p, f, rf->configuration.n, REF, "is_leader", p->is_leader, "item",
                           "peers", NULL);
    }
    f = "blobstore_clusterMgr_disk_heartbeat_change";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "disk heartbeat changes found by the last scan");
        cm_prom_sample_u64(p, f, 0, REF, NULL);
    }

    struct json_object *space = cm_space_stat(n);
    static const char *const space_items[][2] = {
        {"TotalSpace", "total_space"},        {"FreeSpace", "free_space"},
        {"UsedSpace", "used_space"},          {"WritableSpace", "writable_space"},
        {"TotalBlobNode", "total_blob_node"}, {"TotalDisk", "total_disk"}};
    f = "blobstore_clusterMgr_space_stat_info";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "space statistics of the cluster (as in /stat space_stat)");
        for (size_t i = 0; i < sizeof space_items / sizeof space_items[0]; i++)
            cm_prom_sample(p, f, (double)jint(space, space_items[i][1]), REF, "item",
                           space_items[i][0], "is_leader", p->is_leader, NULL);
    }
    struct json_object *idcs = NULL;
    if (space)
        json_object_object_get_ex(space, "disk_stat_infos", &idcs);
    size_t n_idc =
        idcs && json_object_is_type(idcs, json_type_array) ? json_object_array_length(idcs) : 0;
    static const char *const disk_items[][2] = {
        {"Total", "total"},       {"Available", "available"}, {"Readonly", "readonly"},
        {"Expired", "expired"},   {"Broken", "broken"},       {"Repairing", "repairing"},
        {"Repaired", "repaired"}, {"Dropping", "dropping"},   {"Dropped", "dropped"}};
    f = "blobstore_clusterMgr_disk_stat_info";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "disks per IDC and status (as in /stat disk_stat_infos)");
        for (size_t k = 0; k < n_idc; k++) {
            struct json_object *e = json_object_array_get_idx(idcs, k), *idc;
            const char *name =
                json_object_object_get_ex(e, "idc", &idc) ? json_object_get_string(idc) : "";
            for (size_t i = 0; i < sizeof disk_items / sizeof disk_items[0]; i++)
                cm_prom_sample(p, f, (double)jint(e, disk_items[i][1]), REF, "idc", name, "item",
                               disk_items[i][0], "is_leader", p->is_leader, NULL);
        }
    }
    f = "blobstore_clusterMgr_chunk_stat_info";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "chunks per IDC (as in /stat disk_stat_infos)");
        for (size_t k = 0; k < n_idc; k++) {
            struct json_object *e = json_object_array_get_idx(idcs, k), *idc;
            const char *name =
                json_object_object_get_ex(e, "idc", &idc) ? json_object_get_string(idc) : "";
            cm_prom_sample(p, f, (double)jint(e, "total_chunk"), REF, "idc", name, "item",
                           "TotalChunk", "is_leader", p->is_leader, NULL);
            cm_prom_sample(p, f, (double)jint(e, "total_free_chunk"), REF, "idc", name, "item",
                           "TotalFreeChunk", "is_leader", p->is_leader, NULL);
        }
    }
    json_object_put(space);

    struct json_object *vol = cm_volume_stat(n);
    static const char *const vol_items[][2] = {{"lock", "lock_volume"},
                                               {"idle", "idle_volume"},
                                               {"total", "total_volume"},
                                               {"active", "active_volume"},
                                               {"allocatable", "can_alloc_volume"},
                                               {"unlocking", "unlocking_volume"}};
    f = "blobstore_clusterMgr_vol_status_vol_count";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "volumes by status (as in /stat volume_stat)");
        for (size_t i = 0; i < sizeof vol_items / sizeof vol_items[0]; i++)
            cm_prom_sample(p, f, (double)jint(vol, vol_items[i][1]), REF, "status", vol_items[i][0],
                           "is_leader", p->is_leader, NULL);
    }
    json_object_put(vol);
    f = "blobstore_clusterMgr_vol_retain_error";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge", "bad tokens in the last volume retain call");
        cm_prom_sample_u64(p, f, 0, REF, "is_leader", p->is_leader, NULL);
    }
    f = "blobstore_clusterMgr_vol_alloc_over_disk_load";
    if (!claimed(r, f)) {
        cm_prom_family(p, f, "gauge",
                       "disk-load threshold reached by the last volume allocation when at the "
                       "configured maximum");
        cm_prom_sample_u64(p, f, 0, REF, "is_leader", p->is_leader, NULL);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* raft and requests                                                                           */

static void counter(struct cm_prom *p, const char *name, const char *help, uint64_t v)
{
    cm_prom_family(p, name, "counter", help);
    cm_prom_sample_u64(p, name, v, NULL);
}

static void gauge(struct cm_prom *p, const char *name, const char *help, uint64_t v)
{
    cm_prom_family(p, name, "gauge", help);
    cm_prom_sample_u64(p, name, v, NULL);
}

static void render_node(struct cm_node *n, struct cm_prom *p)
{
    struct raft *r = cm_node_raft(n);
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)cm_node_id(n));
    cm_prom_family(p, "clustermgr_build_info", "gauge", "version of the running binary");
    cm_prom_sample_u64(p, "clustermgr_build_info", 1, "version", CM_VERSION, "node_id", id, NULL);

    gauge(p, "clustermgr_raft_term", "current raft term", r->current_term);
    gauge(p, "clustermgr_raft_commit_index", "raft commit index", r->commit_index);
    gauge(p, "clustermgr_raft_applied_index", "last log index applied to the state machine",
          r->last_applied);
    gauge(p, "clustermgr_raft_last_log_index", "last index in this node's log", raft_last_index(r));
    gauge(p, "clustermgr_raft_is_leader", "1 when this node is the leader",
          cm_node_is_leader(n) ? 1 : 0);
    gauge(p, "clustermgr_raft_leader_id", "id of the current leader, 0 when unknown",
          cm_node_leader_id(n));
    unsigned voters = 0, others = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        if (r->configuration.servers[i].role == RAFT_VOTER)
            voters++;
        else
            others++;
    }
    cm_prom_family(p, "clustermgr_raft_members", "gauge",
                   "members of the raft configuration by role");
    cm_prom_sample_u64(p, "clustermgr_raft_members", voters, "role", "voter", NULL);
    cm_prom_sample_u64(p, "clustermgr_raft_members", others, "role", "learner", NULL);

    cm_prom_family(p, "clustermgr_raft_replication_lag_entries", "gauge",
                   "log entries the leader has that a member has not acknowledged (leader only)");
    if (cm_node_is_leader(n) && r->leader_state.progress) {
        uint64_t last = raft_last_index(r);
        for (unsigned i = 0; i < r->configuration.n; i++) {
            uint64_t pid = r->configuration.servers[i].id;
            uint64_t match =
                pid == cm_node_id(n) ? r->last_stored : r->leader_state.progress[i].match_index;
            char ps[24];
            snprintf(ps, sizeof ps, "%llu", (unsigned long long)pid);
            cm_prom_sample_u64(p, "clustermgr_raft_replication_lag_entries",
                               last > match ? last - match : 0, "peer", ps, NULL);
        }
    }

    const struct cm_node_stats *s = cm_node_stats(n);
    const struct cm_dispatch_stats *ds = cm_dispatch_stats(n);
    counter(p, "clustermgr_raft_leader_changes_total", "leader changes seen by this node",
            s->leader_changes);
    counter(p, "clustermgr_raft_proposals_total", "commands this node proposed", s->proposals);
    counter(p, "clustermgr_raft_proposals_committed_total",
            "commands this node proposed that were committed and applied", s->proposals_committed);
    counter(p, "clustermgr_raft_proposals_failed_total",
            "commands this node proposed that failed, were lost or timed out", s->proposals_failed);
    counter(p, "clustermgr_raft_proposal_batches_total",
            "raft appends carrying proposals (group commit)", s->batches);
    counter(p, "clustermgr_raft_barriers_total", "read barriers run as leader", s->barriers);
    counter(p, "clustermgr_raft_read_index_requests_total",
            "read-index requests sent to the leader", ds->read_index_requests);
    counter(p, "clustermgr_http_forwarded_total", "requests forwarded to the leader",
            ds->forwarded);
    counter(p, "clustermgr_http_forward_batches_total",
            "requests to the leader that carried forwarded writes (batches and single ones)",
            ds->forward_batches);
    counter(p, "clustermgr_raft_snapshots_taken_total", "snapshots taken", s->snapshots_taken);
    counter(p, "clustermgr_raft_snapshots_restored_total", "snapshots installed",
            s->snapshots_restored);
    counter(p, "clustermgr_http_timeouts_total", "requests answered because their deadline passed",
            ds->jobs_timed_out);
}

static void render_http(struct cm_prom *p)
{
    size_t nr;
    const struct cm_route *routes = cm_routes(&nr);
    static const char *const classes[6] = {"9xx", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const char *f = "clustermgr_http_requests_total";
    cm_prom_family(p, f, "counter", "requests answered, by route and status class");
    for (size_t i = 0; i < nr; i++) {
        struct cm_http_route_stats st, *s = &st;
        if (!cm_route_stats_get(i, &st))
            break;
        for (int k = 0; k < 6; k++)
            if (s->count[k])
                cm_prom_sample_u64(p, f, s->count[k], "route", routes[i].name, "status", classes[k],
                                   NULL);
    }
    gauge(p, "clustermgr_http_connections", "open HTTP connections (idle keep-alive included)",
          atomic_load(&cm_http_open_connections));
    f = "clustermgr_http_request_duration_seconds";
    cm_prom_family(p, f, "histogram", "time from receiving a request to answering it, by route");
    for (size_t i = 0; i < nr; i++) {
        struct cm_http_route_stats st, *s = &st;
        if (!cm_route_stats_get(i, &st))
            break;
        uint64_t total = 0;
        for (int k = 0; k < 6; k++)
            total += s->count[k];
        if (total)
            http_hist(p, f, s, total, "route", routes[i].name, NULL);
    }
}

void cm_metrics_render(struct cm_node *n, struct cm_buf *out)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    char cluster[16];
    snprintf(cluster, sizeof cluster, "%u", cfg->cluster_id);
    struct cm_prom p = {
        .region = cfg->region,
        .cluster = cluster,
        .is_leader = cm_node_is_leader(n) ? "true" : "false",
    };
    cm_buf_reserve(&p.out, 16384);
    const struct metrics_reg *r = reg_get(n, false);
    render_reference(n, &p, r);
    render_node(n, &p);
    render_http(&p);
    for (size_t i = 0; r && i < r->n; i++)
        r->src[i].render(n, &p, r->src[i].arg);
    *out = p.out;
}

void h_metrics(struct cm_job *j)
{
    struct cm_buf b = {0};
    cm_metrics_render(j->node, &b);
    size_t len;
    char *s = cm_buf_steal(&b, &len);
    cm_reply(j, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}
