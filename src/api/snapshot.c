/*
 * GET /snapshot/dump (spec §8.1, decisions.md): the whole state machine as one snapshot stream
 * (docs/formats.md), answered by the receiving node from its own state.
 *
 * The handler takes the snapshot copy on the loop (cheap: module copies, see fsm.h) at the
 * applied index it reports in Raft-Snapshot-Index, then hands the copy to the response. The
 * HTTP thread encodes it when the first bytes are wanted and sends it in chunks. The response's
 * free callback releases the copy and the encoded bytes, whether the body was sent in full,
 * the client went away mid-stream or the response was never started.
 *
 * Each answer in flight holds a whole encoded stream (the size of the state), so at most
 * limits.max_concurrent_dumps of them run at once per process; another request gets 503 until
 * one ends. The count is taken on the loop and given back by whichever thread frees the
 * response, hence an atomic (the one piece of process-wide state here: every dump of the process
 * draws on the same memory).
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../fsm/fsm.h"
#include "api.h"

static atomic_uint dumps_in_flight;

struct dump_stream {
    struct cm_snap_taken *taken; /* until encoded */
    struct cm_buf out;
    bool encoded;
};

static long dump_read(void *p, uint64_t pos, char *buf, size_t max)
{
    struct dump_stream *s = p;
    if (!s->encoded) {
        cm_fsm_snap_write(s->taken, &s->out); /* releases the copy */
        s->taken = NULL;
        s->encoded = true;
    }
    if (pos >= s->out.len)
        return CM_STREAM_END;
    size_t n = s->out.len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + pos, n);
    return (long)n;
}

static void dump_free(void *p)
{
    struct dump_stream *s = p;
    if (s->taken)
        cm_fsm_snap_drop(s->taken);
    cm_buf_free(&s->out);
    free(s);
    atomic_fetch_sub(&dumps_in_flight, 1);
}

void h_snapshot_dump(struct cm_job *j)
{
    struct raft *r = cm_node_raft(j->node);
    unsigned max = (unsigned)cm_job_cfg(j)->max_concurrent_dumps;
    if (atomic_fetch_add(&dumps_in_flight, 1) >= max) {
        atomic_fetch_sub(&dumps_in_flight, 1);
        cm_job_add_header(j, "Retry-After", "1");
        cm_reply_error(j, 503, "too many snapshot dumps in progress (limits.max_concurrent_dumps)",
                       NULL);
        return;
    }
    struct dump_stream *s = cm_calloc(1, sizeof *s);
    s->taken = cm_fsm_snap_take(cm_node_fsm(j->node));
    char v[64];
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->last_applied);
    cm_job_add_header(j, "Raft-Snapshot-Index", v);
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
        rnd = (unsigned)j->id;
    snprintf(v, sizeof v, "snapshot-%lld%u", (long long)time(NULL), rnd % 100000);
    cm_job_add_header(j, "Raft-Snapshot-Name", v);
    j->stream = s;
    j->stream_read = dump_read;
    j->stream_free = dump_free;
    j->status = 200;
    cm_reply_prepared(j);
}
