/*
 * Loop-side operations state (extension slot CM_EXT_OPS): apply and fsync latency histograms
 * and the service-manager notifications. See ops.h.
 *
 * Timing works by wrapping two entries of raft's function tables after raft started:
 *   - the FSM's `apply` (struct raft_fsm, owned by the node): the time one command takes to
 *     apply to the state machine;
 *   - the log's `append` (struct raft_io): the time from handing entries to the log until its
 *     callback says they are durable, i.e. the disk write plus fsync, including time queued
 *     behind an earlier write. The wrapper substitutes its own request so that raft's request
 *     and callback are untouched.
 * Both run on the loop thread; the cost is two clock reads per command and per append.
 *
 * A third wrapper, around the log's `snapshot_put`, guards forced recovery (recover.c):
 * canonical raft 0.15 writes the recovered configuration entry with term 1, and its storage
 * orders snapshots by term before index. A snapshot ending exactly at that entry would therefore
 * rank below the older snapshots of higher terms, and a restart would load an old snapshot whose
 * following entries were already compacted away. Log terms never decrease otherwise, so a
 * snapshot with a lower term than the one raft already has is refused (raft retries a few
 * entries later, when the last entry carries the current term).
 *
 * The
 * original entries are put back in on_stop, before the state is freed; appends still in flight
 * then complete through their own small wrapper, which no longer records anything.
 */
#include "ops.h"

#include <errno.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../api/metrics.h"
#include "../raft/node.h"
#include "../util/log.h"
#include "../util/timeutil.h"

typedef int (*apply_fn)(struct raft_fsm *, const struct raft_buffer *, void **);
typedef int (*append_fn)(struct raft_io *, struct raft_io_append *, const struct raft_entry[],
                         unsigned, raft_io_append_cb);
typedef int (*snapshot_put_fn)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                               const struct raft_snapshot *, raft_io_snapshot_put_cb);

static const double apply_bounds[] = {0.000001, 0.0000025, 0.000005, 0.00001, 0.000025,
                                      0.00005,  0.0001,    0.00025,  0.0005,  0.001,
                                      0.0025,   0.01,      0.1};
static const double fsync_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

struct cm_ops {
    struct cm_node *node;
    int64_t started_ns;
    struct cm_hist apply, fsync;
    uint64_t applied;          /* commands applied */
    uint64_t appended_entries; /* entries made durable in this node's log */
    uint64_t appended_bytes;
    apply_fn orig_apply;
    append_fn orig_append;
    snapshot_put_fn orig_snapshot_put;

    bool ready_sent;
    char status[200];
    uint64_t watchdog_us; /* 0: no watchdog requested */
    uint64_t last_watchdog_us;
};

struct timed_append {
    struct raft_io_append req; /* handed to the log; first member */
    struct raft_io_append *outer;
    raft_io_append_cb cb;
    struct cm_node *node;
    uint64_t t0_us;
    size_t entries, bytes;
};

int64_t cm_ops_started_ns(struct cm_node *n)
{
    struct cm_ops *o = cm_node_ext(n, CM_EXT_OPS);
    return o ? o->started_ns : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* timing wrappers                                                                             */

static int timed_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    struct cm_node *n = f->data;
    struct cm_ops *o = cm_node_ext(n, CM_EXT_OPS);
    uint64_t t0 = cm_mono_us();
    int rc = o->orig_apply(f, buf, result);
    cm_hist_observe(&o->apply, (double)(cm_mono_us() - t0) / 1e6);
    o->applied++;
    return rc;
}

static void timed_append_cb(struct raft_io_append *req, int status)
{
    struct timed_append *t = (struct timed_append *)req;
    struct cm_ops *o = cm_node_ext(t->node, CM_EXT_OPS);
    if (o && status == 0) {
        cm_hist_observe(&o->fsync, (double)(cm_mono_us() - t->t0_us) / 1e6);
        o->appended_entries += t->entries;
        o->appended_bytes += t->bytes;
    }
    struct raft_io_append *outer = t->outer;
    raft_io_append_cb cb = t->cb;
    free(t);
    if (cb)
        cb(outer, status);
}

static int timed_append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct raft *r = io->data;
    struct cm_node *node = r->data;
    struct cm_ops *o = cm_node_ext(node, CM_EXT_OPS);
    struct timed_append *t = cm_calloc(1, sizeof *t);
    t->outer = req;
    t->cb = cb;
    t->node = node;
    t->t0_us = cm_mono_us();
    t->entries = n;
    for (unsigned i = 0; i < n; i++)
        t->bytes += entries[i].buf.len;
    int rc = o->orig_append(io, &t->req, entries, n, timed_append_cb);
    if (rc != 0)
        free(t);
    return rc;
}

static int guarded_snapshot_put(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct raft *r = io->data;
    struct cm_ops *o = cm_node_ext(r->data, CM_EXT_OPS);
    if (snapshot->term < r->log.snapshot.last_term) {
        CM_INFO("snapshot",
                "not storing a snapshot at index %llu of term %llu: the last one is of term %llu "
                "(the entry written by a forced recovery); the next snapshot will be",
                (unsigned long long)snapshot->index, (unsigned long long)snapshot->term,
                (unsigned long long)r->log.snapshot.last_term);
        return RAFT_BUSY;
    }
    return o->orig_snapshot_put(io, trailing, req, snapshot, cb);
}

static void install_timing(struct cm_node *n, struct cm_ops *o)
{
    struct raft *r = cm_node_raft(n);
    /* The wrappers find the node through these back pointers; check they hold. */
    if (r->data != n || r->io == NULL || r->io->data != r || r->fsm == NULL || r->fsm->data != n) {
        CM_WARN("ops", "raft's back pointers are not as expected; apply and fsync latency are "
                       "not measured");
        return;
    }
    o->orig_apply = r->fsm->apply;
    r->fsm->apply = timed_apply;
    o->orig_append = r->io->append;
    r->io->append = timed_append;
    o->orig_snapshot_put = r->io->snapshot_put;
    r->io->snapshot_put = guarded_snapshot_put;
}

static void uninstall_timing(struct cm_node *n, struct cm_ops *o)
{
    struct raft *r = cm_node_raft(n);
    if (o->orig_apply)
        r->fsm->apply = o->orig_apply;
    if (o->orig_append)
        r->io->append = o->orig_append;
    if (o->orig_snapshot_put)
        r->io->snapshot_put = o->orig_snapshot_put;
}

/* ------------------------------------------------------------------------------------------ */
/* metrics                                                                                     */

static void render(struct cm_node *n, struct cm_prom *p, void *arg)
{
    (void)n;
    struct cm_ops *o = arg;
    const char *f = "clustermgr_raft_apply_duration_seconds";
    cm_prom_family(p, f, "histogram", "time to apply one command to the state machine");
    cm_prom_hist(p, f, &o->apply, NULL);
    f = "clustermgr_raft_fsync_duration_seconds";
    cm_prom_family(p, f, "histogram",
                   "time from handing entries to the raft log until they are durable (write and "
                   "fsync, including queueing behind an earlier write)");
    cm_prom_hist(p, f, &o->fsync, NULL);
    f = "clustermgr_raft_applied_commands_total";
    cm_prom_family(p, f, "counter", "commands applied to the state machine by this node");
    cm_prom_sample_u64(p, f, o->applied, NULL);
    f = "clustermgr_raft_log_appended_entries_total";
    cm_prom_family(p, f, "counter", "entries made durable in this node's raft log");
    cm_prom_sample_u64(p, f, o->appended_entries, NULL);
    f = "clustermgr_raft_log_appended_bytes_total";
    cm_prom_family(p, f, "counter", "payload bytes made durable in this node's raft log");
    cm_prom_sample_u64(p, f, o->appended_bytes, NULL);
    f = "clustermgr_process_start_time_seconds";
    cm_prom_family(p, f, "gauge", "start time of the process, Unix seconds");
    cm_prom_sample_u64(p, f, (uint64_t)(o->started_ns / 1000000000LL), NULL);
    f = "clustermgr_log_level";
    cm_prom_family(p, f, "gauge", "current log level (0 debug, 1 info, 2 warn, 3 error, 4 fatal)");
    cm_prom_sample_u64(p, f, (uint64_t)cm_log_get_level(), NULL);
    uint64_t lines = 0, dropped = 0;
    cm_audit_counts(&lines, &dropped);
    f = "clustermgr_audit_lines_total";
    cm_prom_family(p, f, "counter", "lines written to the audit log");
    cm_prom_sample_u64(p, f, lines, NULL);
    f = "clustermgr_audit_dropped_total";
    cm_prom_family(p, f, "counter", "audit lines dropped because the disk could not keep up");
    cm_prom_sample_u64(p, f, dropped, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* service manager                                                                             */

static void status_text(struct cm_node *n, char *out, size_t cap)
{
    struct raft *r = cm_node_raft(n);
    uint64_t lid = cm_node_leader_id(n);
    char why[160];
    bool ready = cm_node_ready(n, why, sizeof why);
    if (strcmp(why, "removed from the cluster") == 0)
        snprintf(out, cap, "removed from the cluster; not serving");
    else if (r->configuration.n == 0)
        snprintf(out, cap, "waiting to be added to a cluster (node %llu)",
                 (unsigned long long)cm_node_id(n));
    else if (lid == 0)
        snprintf(out, cap, "no leader, term %llu: waiting for a quorum",
                 (unsigned long long)r->current_term);
    else
        snprintf(out, cap, "leader %llu%s, term %llu%s", (unsigned long long)lid,
                 lid == cm_node_id(n) ? " (this node)" : "", (unsigned long long)r->current_term,
                 ready ? "" : "; catching up");
}

static void on_tick(struct cm_node *n, void *arg)
{
    struct cm_ops *o = arg;
    char st[sizeof o->status];
    status_text(n, st, sizeof st);
    if (!o->ready_sent || strcmp(st, o->status) != 0) {
        char msg[sizeof st + 32];
        snprintf(msg, sizeof msg, "%sSTATUS=%s", o->ready_sent ? "" : "READY=1\n", st);
        int rc = cm_notify(msg);
        if (rc == -EAGAIN)
            return; /* the manager's queue is full: try again at the next tick */
        if (rc < 0)
            CM_WARN("ops", "cannot notify the service manager: %s", strerror(-rc));
        o->ready_sent = true;
        snprintf(o->status, sizeof o->status, "%s", st);
    }
    if (o->watchdog_us) {
        uint64_t now = cm_mono_us();
        if (now - o->last_watchdog_us >= o->watchdog_us / 2) {
            cm_notify("WATCHDOG=1");
            o->last_watchdog_us = now;
        }
    }
}

static void on_stop(struct cm_node *n, void *arg)
{
    struct cm_ops *o = arg;
    if (o->ready_sent)
        cm_notify("STOPPING=1\nSTATUS=stopping");
    uninstall_timing(n, o);
    cm_node_set_ext(n, CM_EXT_OPS, NULL);
    free(o);
}

void cm_ops_init(struct cm_node *n)
{
    struct cm_ops *o = cm_calloc(1, sizeof *o);
    o->node = n;
    o->started_ns = cm_now_ns();
    cm_hist_init(&o->apply, apply_bounds, sizeof apply_bounds / sizeof apply_bounds[0]);
    cm_hist_init(&o->fsync, fsync_bounds, sizeof fsync_bounds / sizeof fsync_bounds[0]);
    /* systemd's watchdog: WATCHDOG_USEC, for this process when WATCHDOG_PID says so */
    const char *wu = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
    if (wu && (wp == NULL || strtoll(wp, NULL, 10) == (long long)getpid()))
        o->watchdog_us = strtoull(wu, NULL, 10);
    cm_node_set_ext(n, CM_EXT_OPS, o);
    install_timing(n, o);
    cm_node_add_hooks(n, &(struct cm_node_hooks){.on_tick = on_tick, .on_stop = on_stop, .arg = o});
    cm_metrics_register(n, &(struct cm_metrics_source){"ops", NULL, render, o});
}
