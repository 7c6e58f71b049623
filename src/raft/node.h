/*
 * The node: one libuv loop thread that owns raft and the whole replicated state machine.
 *
 * HTTP threads hand jobs over with cm_node_submit; everything else here runs on the loop.
 * Writes execute on the leader once it has applied everything committed by earlier terms
 * (a barrier right after election); followers forward them. Reads are linearizable: the leader
 * answers after a barrier that covers every read that arrived before it, a follower asks the
 * leader for a read index and waits until it has applied that far. Commands proposed in the
 * same loop turn go to raft as one multi-buffer raft_apply (group commit), and client requests
 * are completed from the FSM's apply by (node id, request id), never from raft's callback.
 */
#ifndef CM_NODE_H
#define CM_NODE_H

#include <json-c/json.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../fsm/fsm.h"
#include "../http/job.h"
#include "../server/config.h"

struct cm_node;
struct cm_httpc;

int cm_node_init(struct cm_node **out, struct cm_config *cfg, char *err, size_t errlen);
/* Run the loop until the node stops (signal or cm_node_stop). Returns the exit status. */
int cm_node_run(struct cm_node *n);
void cm_node_stop(struct cm_node *n, const char *why);
void cm_node_free(struct cm_node *n);

/* Any thread: hand a job to the loop. Returns CM_SUBMIT_OK, or CM_SUBMIT_BUSY when too many
 * requests already wait on the loop (http.max_queued_requests), or CM_SUBMIT_STOPPING when the
 * node is shutting down; the caller then answers the job itself. Must be called with the
 * connection not yet suspended; it suspends it. */
enum { CM_SUBMIT_OK = 0, CM_SUBMIT_BUSY = 1, CM_SUBMIT_STOPPING = 2 };
int cm_node_submit(struct cm_node *n, struct cm_job *j);

/* ---- loop thread API for route handlers ---- */

struct cm_fsm *cm_node_fsm(struct cm_node *n);
const struct cm_config *cm_node_cfg(struct cm_node *n);
struct raft *cm_node_raft(struct cm_node *n);
struct cm_httpc *cm_node_httpc(struct cm_node *n);
uv_loop_t *cm_node_loop(struct cm_node *n);
bool cm_node_is_leader(struct cm_node *n);
uint64_t cm_node_leader_id(struct cm_node *n);
/* HTTP address of the current leader or NULL. */
const char *cm_node_leader_http(struct cm_node *n);
uint64_t cm_node_id(struct cm_node *n);

/* Replies: fill the response, detach the job from whatever it waits on, resume the connection.
 * The job must not be touched afterwards. */
void cm_reply(struct cm_job *j, int status, const char *ctype, char *body, size_t len);
void cm_reply_json(struct cm_job *j, struct json_object *o); /* 200; releases o */
void cm_reply_empty(struct cm_job *j);                       /* 200, empty body */
void cm_reply_code(struct cm_job *j, int code);              /* errors.h code */
void cm_reply_error(struct cm_job *j, int status, const char *msg, const char *code);
/* Reply what the HTTP thread already set in the job (status, body). */
void cm_reply_prepared(struct cm_job *j);

/* Outcome of a proposal. */
enum {
    CM_APPLIED = 0,
    CM_PROPOSE_TIMEOUT = 1, /* not known to be applied within propose_timeout */
    CM_PROPOSE_LOST = 2,    /* another entry took its place in the log: not applied */
    CM_PROPOSE_FAILED = 3,  /* raft refused it (e.g. not leader): not applied */
};

typedef void (*cm_job_applied_fn)(struct cm_job *j, int status, struct cm_result *res);
/* For a job's applied callback: answer 906 when the proposal did not apply, or the error code
 * apply decided; true when it answered (the job must not be touched then). */
bool cm_reply_failed(struct cm_job *j, int status, const struct cm_result *res);
typedef void (*cm_applied_fn)(struct cm_node *n, void *arg, int status, struct cm_result *res);

/* Propose a command on behalf of a job. `cb` runs when the outcome is known, unless the job was
 * answered before (timeout). With cb NULL: 200 empty on success, res.code as an error code,
 * 906 otherwise. `payload` is consumed (freed). */
void cm_job_propose(struct cm_job *j, uint8_t module, uint8_t op, struct cm_buf *payload,
                    cm_job_applied_fn cb);
/* Propose on behalf of the node itself (leader jobs). `cb` always runs exactly once. */
void cm_node_propose(struct cm_node *n, uint8_t module, uint8_t op, struct cm_buf *payload,
                     cm_applied_fn cb, void *arg);

/* Run `handle` of the job's route again later (after a state change). */
void cm_node_redispatch(struct cm_node *n, struct cm_job *j);

/* Membership (leader only); they reply to the job themselves. */
void cm_node_member_add(struct cm_node *n, struct cm_job *j, uint64_t id, const char *raft_addr,
                        const char *http_addr, bool learner);
void cm_node_member_remove(struct cm_node *n, struct cm_job *j, uint64_t id);
void cm_node_member_promote(struct cm_node *n, struct cm_job *j, uint64_t id);
void cm_node_transfer(struct cm_node *n, struct cm_job *j, uint64_t id);

/* What this node knows about member `id` (GET /internal/member, used by removal probes). */
struct json_object *cm_node_member_view(struct cm_node *n, uint64_t id);

/* For a write handler on the leader about to answer from state because the write would change
 * nothing: true when it may, as the job already waited for a barrier like a linearizable read;
 * otherwise the job is queued behind the next read barrier (the handler then runs again from the
 * start, and may find a change to propose after all) and the handler must return. */
bool cm_node_write_confirmed(struct cm_job *j);

/* Mark an outgoing request as node-to-node (and sign it when auth is on). */
struct cm_httpc_req;
void cm_node_internal_headers(struct cm_node *n, struct cm_httpc_req *r, const char *path,
                              const char *query);

/* The raft_status object of /stat. */
struct json_object *cm_node_raft_status(struct cm_node *n);
/* leader_host of /stat: "" when unknown. */
const char *cm_node_leader_host(struct cm_node *n);

/* Health for /readyz: a leader is known and this node has applied its commit index. */
bool cm_node_ready(struct cm_node *n, char *why, size_t whylen);

/* Counters for /metrics. */
struct cm_node_stats {
    uint64_t leader_changes;
    uint64_t proposals;
    uint64_t proposals_committed;
    uint64_t proposals_failed;
    uint64_t batches;
    uint64_t barriers;
    uint64_t read_index_requests;
    uint64_t forwarded;
    uint64_t snapshots_taken;
    uint64_t snapshots_restored;
    uint64_t jobs_timed_out;
};
const struct cm_node_stats *cm_node_stats(struct cm_node *n);

/* Recent leader changes, newest last (for the dashboard). */
struct cm_leader_event {
    int64_t at_ns;
    uint64_t term;
    uint64_t leader;
};
size_t cm_node_leader_history(struct cm_node *n, const struct cm_leader_event **ev);

/* Hooks run on the loop when this node becomes a ready leader / stops being leader, and on every
 * tick (100 ms). Modules with leader jobs register here. */
struct cm_node_hooks {
    void (*on_leader)(struct cm_node *n, void *arg);
    void (*on_follower)(struct cm_node *n, void *arg);
    void (*on_tick)(struct cm_node *n, void *arg);
    void (*on_stop)(struct cm_node *n, void *arg); /* before raft closes; free what arg owns */
    void *arg;
};
void cm_node_add_hooks(struct cm_node *n, const struct cm_node_hooks *h);

/* Per-domain loop-side state that is not replicated (leader caches, task queues, metrics).
 * One slot per domain; owners set it in their jobs init and free it in on_stop. */
enum cm_ext_slot {
    CM_EXT_DISK = 0,
    CM_EXT_VOLUME,
    CM_EXT_SERVICE,
    CM_EXT_KV,
    CM_EXT_METRICS,
    CM_EXT_AUTH,
    CM_EXT_OPS,
    CM_EXT_VERSION,
    CM_EXT_MAX
};
void *cm_node_ext(struct cm_node *n, enum cm_ext_slot slot);
void cm_node_set_ext(struct cm_node *n, enum cm_ext_slot slot, void *state);

/* Called once on the loop thread before the HTTP server starts (src/jobs/jobs.c): registers the
 * leader jobs and hooks of every domain. */
void cm_jobs_init(struct cm_node *n);

#endif
