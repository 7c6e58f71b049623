/*
 * history.c: the last hour of this node, for the console's charts (GET /dashboard/history).
 *
 * A fixed ring of CM_HISTORY_SAMPLES samples taken every CM_HISTORY_INTERVAL_S seconds on the
 * loop (from the node's tick hook), from public accessors only: the per-route request counters
 * and latency buckets of the HTTP server, the raft commit index and (on the leader) the match
 * index of every member, the leader and term, and the free chunks of every IDC. Nothing is
 * allocated after init, so the memory is cm_history_bytes() for the node's whole life (stated in
 * docs/operations.md). Not replicated: each node keeps what it saw.
 */
#ifndef CM_HISTORY_H
#define CM_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define CM_HISTORY_INTERVAL_S 5
#define CM_HISTORY_SAMPLES 720 /* one hour at 5 s */
#define CM_HISTORY_MEMBERS 8   /* replication lag kept for at most this many members */
#define CM_HISTORY_IDCS 8      /* free space kept for at most this many IDCs */

struct cm_node;
struct json_object;

/* What happened during the CM_HISTORY_INTERVAL_S before `at_ms`. */
struct cm_history_sample {
    int64_t at_ms;         /* Unix milliseconds */
    uint64_t term, leader; /* as this node knew them at the sample */
    uint64_t commit;       /* commit index */
    float writes_per_s;    /* answered requests on write routes (forwarded ones included) */
    float reads_per_s;     /* answered requests on every other route */
    float write_p99_ms;    /* upper bound of the latency bucket holding the 99th percentile */
    float commit_per_s;    /* commit index growth */
    uint8_t n_lag;         /* members with a known lag (0 on a follower) */
    uint8_t n_idc;
    uint8_t is_leader;
    uint8_t pad_;
    struct {
        uint32_t id;  /* raft ids of this project fit in 32 bits; larger ones are not charted */
        uint32_t lag; /* entries the leader has that the member has not stored (saturated) */
    } lag[CM_HISTORY_MEMBERS];
    int64_t free_bytes[CM_HISTORY_IDCS]; /* per configured IDC, in the order of the config */
};

/* Loop thread, from the jobs init: allocate the ring and register the sampler. */
void cm_history_init(struct cm_node *n);
/* Bytes the history of one node takes (ring and bookkeeping). */
size_t cm_history_bytes(void);
/* The JSON served by GET /dashboard/history. Loop thread. */
struct json_object *cm_history_json(struct cm_node *n);

#endif
