/*
 * The dispatch layer: a parsed request (struct cm_job, src/http/job.h) on its way through the
 * node, between the front end that parsed it and the consensus layer (src/raft/node.h).
 *
 * The front end hands a job over with cm_node_submit (any thread); everything else here runs on
 * the loop. Writes run their handler on the leader once it is ready; followers forward them to
 * the leader. Reads are linearizable: the leader answers after a barrier that covers every read
 * that arrived before it, a follower asks the leader for a read index and waits until it has
 * applied that far. Handlers propose through cm_job_propose and answer with cm_reply_*; a reply
 * detaches the job from wherever it waited and gives it back to the front end (cm_http_resume).
 */
#ifndef CM_DISPATCH_H
#define CM_DISPATCH_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "../http/job.h"
#include "../raft/node.h"
#include "../server/config.h"

/* The node's whole configuration. Consensus knows only its own settings (src/raft/settings.h);
 * main.c hands the config to the layers above through this slot right after cm_node_init. */
static inline const struct cm_config *cm_node_cfg(struct cm_node *n)
{
    return cm_node_ext(n, CM_EXT_CONFIG);
}

/* Set up the layer on the loop thread, after the leader jobs registered their hooks (so that a
 * new leader runs them before the writes that waited for it) and before the front end serves. */
void cm_dispatch_init(struct cm_node *n);
/* Called first when the node begins to stop: the front end stops accepting (it may be NULL). */
void cm_dispatch_set_quiesce(struct cm_node *n, void (*quiesce)(void *arg), void *arg);
/* After cm_node_run returned: answer what is left, then free the layer. */
void cm_dispatch_free(struct cm_node *n);

/* The outgoing HTTP client of the loop (forwarding, read indexes, calls to other nodes and
 * blobnodes); NULL once closed, when the node stops. */
struct cm_httpc;
struct cm_httpc *cm_node_httpc(struct cm_node *n);

/* Any thread: hand a job to the loop. Returns CM_SUBMIT_OK, or CM_SUBMIT_BUSY when too many
 * requests already wait on the loop (http.max_queued_requests), or CM_SUBMIT_STOPPING when the
 * node is shutting down, or CM_SUBMIT_ANSWERED when the job's arguments (args_later) did not
 * parse: its answer (a 4xx) is set. The caller then answers the job itself. */
enum { CM_SUBMIT_OK = 0, CM_SUBMIT_BUSY = 1, CM_SUBMIT_STOPPING = 2, CM_SUBMIT_ANSWERED = 3 };
int cm_node_submit(struct cm_node *n, struct cm_job *j);
/* A write a follower's front end reads goes to the leader from the HTTP worker that read it
 * (batched per turn of that worker's loop, over a pipelined connection of that loop), not
 * through the node's loop; dispatch keeps that forwarder in the job's worker_slot. The worker
 * calls this on its own thread when it stops: the forwarder answers what it holds (through
 * cm_http_resume) and frees itself. */
void cm_dispatch_worker_stop(void *forwarder);

/* What the front end provides (src/http/server.c): give an answered job back to the thread of
 * its connection, which writes the response. Callable from any thread. */
void cm_http_resume(struct cm_job *j);
/* ... and count and log a request answered without a connection (a write of a forwarded batch
 * on the leader), as it does for a client's. */
void cm_http_account(struct cm_job *j);

/* POST /internal/forward, the batch of writes a follower forwards (docs/formats.md): parse it on
 * the HTTP thread into one job per write, then run each on the leader as a client's and answer
 * the batch when the last is answered. */
int cm_fwd_parse(struct cm_job *j);
void cm_fwd_handle(struct cm_job *j);

/* Replies: fill the response, detach the job from whatever it waits on, resume the connection.
 * The job must not be touched afterwards. */
void cm_reply(struct cm_job *j, int status, const char *ctype, char *body, size_t len);
void cm_reply_json(struct cm_job *j, struct json_object *o); /* 200; releases o */
void cm_reply_empty(struct cm_job *j);                       /* 200, empty body */
void cm_reply_code(struct cm_job *j, int code);              /* errors.h code */
void cm_reply_error(struct cm_job *j, int status, const char *msg, const char *code);
/* Reply what the HTTP thread already set in the job (status, body). */
void cm_reply_prepared(struct cm_job *j);

typedef void (*cm_job_applied_fn)(struct cm_job *j, int status, struct cm_result *res);
/* For a job's applied callback: answer 906 when the proposal did not apply, or the error code
 * apply decided; true when it answered (the job must not be touched then). */
bool cm_reply_failed(struct cm_job *j, int status, const struct cm_result *res);
/* Propose a command on behalf of a job. `cb` runs when the outcome is known, unless the job was
 * answered before (timeout). With cb NULL: 200 empty on success, res.code as an error code,
 * 906 otherwise. A proposal raft refused because this node stopped being leader is dispatched
 * again (forwarded to the new leader). `payload` is consumed (freed). */
void cm_job_propose(struct cm_job *j, uint8_t module, uint8_t op, struct cm_buf *payload,
                    cm_job_applied_fn cb);

/* Run `handle` of the job's route again later (after a state change). */
void cm_node_redispatch(struct cm_node *n, struct cm_job *j);

/* For a write handler on the leader about to answer from state because the write would change
 * nothing: true when it may, as the job already waited for a barrier like a linearizable read;
 * otherwise the job is queued behind the next read barrier (the handler then runs again from the
 * start, and may find a change to propose after all) and the handler must return. */
bool cm_node_write_confirmed(struct cm_job *j);

/* Membership changes on behalf of a job (leader only); they answer the job themselves. */
void cm_job_member_add(struct cm_job *j, uint64_t id, const char *raft_addr, const char *http_addr,
                       bool learner);
void cm_job_member_remove(struct cm_job *j, uint64_t id);
void cm_job_member_promote(struct cm_job *j, uint64_t id);
void cm_job_transfer(struct cm_job *j, uint64_t id);

/* Mark an outgoing request as node-to-node (and sign it when auth is on). */
struct cm_httpc_req;
void cm_node_internal_headers(struct cm_node *n, struct cm_httpc_req *r, const char *path,
                              const char *query);

/* The id a request is logged under: the client's X-Request-Id, else "<node>-<sequence>". */
void cm_reqlog_id(const struct cm_job *j, char *out, size_t cap);

/* Counters for /metrics. */
struct cm_dispatch_stats {
    uint64_t read_index_requests;
    uint64_t forwarded;       /* writes forwarded to the leader */
    uint64_t forward_batches; /* requests that carried them (batches, docs/formats.md) */
    uint64_t jobs_timed_out;
};
const struct cm_dispatch_stats *cm_dispatch_stats(struct cm_node *n);

#endif
