/*
 * The node's own history for the console's charts: a ring of fixed-size samples, one every
 * CM_HISTORY_INTERVAL_S seconds, the oldest overwritten after an hour (history.h).
 *
 * Sampling runs from the node's tick hook (100 ms) on the loop and does its work only when the
 * interval has passed; it reads the HTTP server's request counters (cumulative, so a rate is the
 * difference to the previous sample), raft's commit and match indexes, and the space_stat of the
 * disk module. The sample before the first one is the state at init, so the first sample already
 * has rates. The state lives in the CM_EXT_HISTORY slot and is freed in on_stop.
 */
#include <stdlib.h>
#include <string.h>

#include "../dispatch/dispatch.h"
#include "../api/api.h"
#include "../http/router.h"
#include "../http/stats.h"
#include "../raft/node.h"
#include "../util/json.h"
#include "../util/timeutil.h"
#include "history.h"

/* Request counters summed over routes, as of one sample. */
struct totals {
    uint64_t writes, reads;
    uint64_t write_bucket[13]; /* cm_http_latency_bounds_s, then everything above the last */
};

struct history {
    struct cm_history_sample ring[CM_HISTORY_SAMPLES];
    size_t head, count; /* next slot to write; samples held */
    uint64_t last_mono_ms;
    uint64_t last_commit;
    struct totals last;
};

static void totals(struct cm_node *n, struct totals *t)
{
    memset(t, 0, sizeof *t);
    (void)n;
    size_t nr;
    const struct cm_route *routes = cm_routes(&nr);
    for (size_t i = 0; i < nr; i++) {
        struct cm_http_route_stats st, *s = &st;
        if (!cm_route_stats_get(i, &st))
            break;
        if (routes[i].flags & CM_R_INTERNAL)
            continue;
        uint64_t total = 0, bucketed = 0;
        for (int k = 0; k < 6; k++)
            total += s->count[k];
        if (!(routes[i].flags & CM_R_WRITE)) {
            t->reads += total;
            continue;
        }
        t->writes += total;
        for (int k = 0; k < 12; k++) {
            t->write_bucket[k] += s->latency_bucket[k];
            bucketed += s->latency_bucket[k];
        }
        t->write_bucket[12] += total > bucketed ? total - bucketed : 0;
    }
}

/* The upper bound (ms) of the bucket that holds the 99th percentile of the writes answered
 * between two samples; 0 when there were none. Above the last bound: twice the last bound. */
static float p99_ms(const struct totals *now, const struct totals *before)
{
    uint64_t d[13], all = 0;
    for (int k = 0; k < 13; k++) {
        d[k] = now->write_bucket[k] >= before->write_bucket[k]
                   ? now->write_bucket[k] - before->write_bucket[k]
                   : 0;
        all += d[k];
    }
    if (all == 0)
        return 0;
    uint64_t want = (all * 99 + 99) / 100, seen = 0;
    for (int k = 0; k < 12; k++) {
        seen += d[k];
        if (seen >= want)
            return (float)(cm_http_latency_bounds_s[k] * 1000.0);
    }
    return (float)(cm_http_latency_bounds_s[11] * 2000.0);
}

static void sample_space(struct cm_node *n, struct cm_history_sample *s)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    /* the disk module's chunk size, and its default when the config has none */
    int64_t cs = cfg->chunk_size ? (int64_t)cfg->chunk_size : 17179869184LL;
    struct json_object *ss = cm_space_stat(n), *arr;
    if (json_object_object_get_ex(ss, "disk_stat_infos", &arr) &&
        json_object_is_type(arr, json_type_array)) {
        size_t len = json_object_array_length(arr);
        for (size_t i = 0; i < len && s->n_idc < CM_HISTORY_IDCS; i++) {
            struct json_object *e = json_object_array_get_idx(arr, i), *f;
            int64_t chunks =
                json_object_object_get_ex(e, "total_free_chunk", &f) ? json_object_get_int64(f) : 0;
            s->free_bytes[s->n_idc++] = chunks * cs;
        }
    }
    json_object_put(ss);
}

static void sample_lag(struct cm_node *n, struct cm_history_sample *s)
{
    struct raft *r = cm_node_raft(n);
    if (!cm_node_is_leader(n) || r->leader_state.progress == NULL)
        return;
    uint64_t last = raft_last_index(r);
    for (unsigned i = 0; i < r->configuration.n && s->n_lag < CM_HISTORY_MEMBERS; i++) {
        uint64_t id = r->configuration.servers[i].id;
        if (id > UINT32_MAX)
            continue;
        uint64_t match =
            id == cm_node_id(n) ? r->last_stored : r->leader_state.progress[i].match_index;
        uint64_t lag = last > match ? last - match : 0;
        s->lag[s->n_lag].id = (uint32_t)id;
        s->lag[s->n_lag].lag = lag > UINT32_MAX ? UINT32_MAX : (uint32_t)lag;
        s->n_lag++;
    }
}

static void take(struct cm_node *n, struct history *h, uint64_t now_ms)
{
    struct cm_history_sample *s = &h->ring[h->head];
    memset(s, 0, sizeof *s);
    double dt = (double)(now_ms - h->last_mono_ms) / 1000.0;
    if (dt <= 0)
        dt = CM_HISTORY_INTERVAL_S;
    struct raft *r = cm_node_raft(n);
    struct totals t;
    totals(n, &t);
    s->at_ms = cm_now_ns() / 1000000;
    s->term = r->current_term;
    s->leader = cm_node_leader_id(n);
    s->commit = r->commit_index;
    s->is_leader = cm_node_is_leader(n);
    s->writes_per_s = (float)((t.writes >= h->last.writes ? t.writes - h->last.writes : 0) / dt);
    s->reads_per_s = (float)((t.reads >= h->last.reads ? t.reads - h->last.reads : 0) / dt);
    s->write_p99_ms = p99_ms(&t, &h->last);
    s->commit_per_s = (float)((s->commit >= h->last_commit ? s->commit - h->last_commit : 0) / dt);
    sample_lag(n, s);
    sample_space(n, s);
    h->last = t;
    h->last_commit = s->commit;
    h->last_mono_ms = now_ms;
    h->head = (h->head + 1) % CM_HISTORY_SAMPLES;
    if (h->count < CM_HISTORY_SAMPLES)
        h->count++;
}

static void on_tick(struct cm_node *n, void *arg)
{
    struct history *h = arg;
    uint64_t now = cm_mono_ms();
    if (now - h->last_mono_ms >= CM_HISTORY_INTERVAL_S * 1000ULL)
        take(n, h, now);
}

static void on_stop(struct cm_node *n, void *arg)
{
    cm_node_set_ext(n, CM_EXT_HISTORY, NULL);
    free(arg);
}

void cm_history_init(struct cm_node *n)
{
    struct history *h = cm_calloc(1, sizeof *h);
    h->last_mono_ms = cm_mono_ms();
    h->last_commit = cm_node_raft(n)->commit_index;
    totals(n, &h->last);
    cm_node_set_ext(n, CM_EXT_HISTORY, h);
    cm_node_add_hooks(n, &(struct cm_node_hooks){.on_tick = on_tick, .on_stop = on_stop, .arg = h});
}

size_t cm_history_bytes(void)
{
    return sizeof(struct history);
}

static struct json_object *jfloat(float v)
{
    return json_object_new_double((double)(int64_t)((double)v * 1000.0 + 0.5) / 1000.0);
}

struct json_object *cm_history_json(struct cm_node *n)
{
    struct history *h = cm_node_ext(n, CM_EXT_HISTORY);
    const struct cm_config *cfg = cm_node_cfg(n);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "node", json_object_new_uint64(cm_node_id(n)));
    json_object_object_add(o, "interval_s", json_object_new_int(CM_HISTORY_INTERVAL_S));
    json_object_object_add(o, "capacity", json_object_new_int(CM_HISTORY_SAMPLES));
    json_object_object_add(o, "bytes", json_object_new_uint64(cm_history_bytes()));
    /* the IDCs of free_bytes, in order: the configured list without duplicates */
    struct json_object *idcs = json_object_new_array();
    for (size_t i = 0; i < cfg->n_idc; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            dup |= strcmp(cfg->idc[k], cfg->idc[i]) == 0;
        if (!dup)
            json_object_array_add(idcs, json_object_new_string(cfg->idc[i]));
    }
    json_object_object_add(o, "idcs", idcs);
    struct json_object *arr = json_object_new_array();
    for (size_t k = 0; h && k < h->count; k++) {
        const struct cm_history_sample *s =
            &h->ring[(h->head + CM_HISTORY_SAMPLES - h->count + k) % CM_HISTORY_SAMPLES];
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "t", json_object_new_int64(s->at_ms));
        json_object_object_add(e, "term", json_object_new_uint64(s->term));
        json_object_object_add(e, "leader", json_object_new_uint64(s->leader));
        json_object_object_add(e, "is_leader", json_object_new_boolean(s->is_leader));
        json_object_object_add(e, "commit", json_object_new_uint64(s->commit));
        json_object_object_add(e, "writes_per_s", jfloat(s->writes_per_s));
        json_object_object_add(e, "reads_per_s", jfloat(s->reads_per_s));
        json_object_object_add(e, "write_p99_ms", jfloat(s->write_p99_ms));
        json_object_object_add(e, "commit_per_s", jfloat(s->commit_per_s));
        struct json_object *lag = json_object_new_object();
        for (unsigned i = 0; i < s->n_lag; i++) {
            char id[16];
            snprintf(id, sizeof id, "%u", s->lag[i].id);
            json_object_object_add(lag, id, json_object_new_uint64(s->lag[i].lag));
        }
        json_object_object_add(e, "lag", lag);
        struct json_object *free_b = json_object_new_array();
        for (unsigned i = 0; i < s->n_idc; i++)
            json_object_array_add(free_b, json_object_new_int64(s->free_bytes[i]));
        json_object_object_add(e, "free_bytes", free_b);
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "samples", arr);
    /* leader changes this node saw, oldest first, to mark on the time axis */
    const struct cm_leader_event *ev;
    size_t cnt = cm_node_leader_history(n, &ev);
    struct json_object *lc = json_object_new_array();
    for (size_t k = 0; k < cnt; k++) {
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "t", json_object_new_int64(ev[k].at_ns / 1000000));
        json_object_object_add(e, "term", json_object_new_uint64(ev[k].term));
        json_object_object_add(e, "leader", json_object_new_uint64(ev[k].leader));
        json_object_array_add(lc, e);
    }
    json_object_object_add(o, "leader_changes", lc);
    return o;
}
