/*
 * The node's consensus layer: one libuv loop thread that owns raft and the whole replicated state
 * machine. It knows nothing of HTTP, requests or routes; the dispatch layer above it
 * (src/dispatch/) turns requests into the calls below and is told of what happens here through
 * the upper-layer callbacks (cm_node_set_upper).
 *
 * Everything here runs on the loop. A new leader is "ready" once it has applied everything
 * committed by earlier terms (a barrier right after election). Commands proposed in the same loop
 * turn go to raft as one multi-buffer raft_apply (group commit), and proposals are completed from
 * the FSM's apply by (node id, request id), never from raft's callback. Membership changes and
 * barriers report through completion callbacks too.
 */
#ifndef CM_NODE_H
#define CM_NODE_H

#include <json-c/json.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../fsm/fsm.h"
#include "settings.h"

struct cm_node;

/* `rs` and `fs` (the server's config embeds both) must outlive the node. */
int cm_node_init(struct cm_node **out, const struct cm_raft_settings *rs,
                 const struct cm_fsm_settings *fs, char *err, size_t errlen);
/* Run the loop until the node stops (signal or cm_node_stop). Returns the exit status. */
int cm_node_run(struct cm_node *n);
void cm_node_stop(struct cm_node *n, const char *why);
void cm_node_free(struct cm_node *n);

/* ---- loop thread API ---- */

struct cm_fsm *cm_node_fsm(struct cm_node *n);
struct raft *cm_node_raft(struct cm_node *n);
uv_loop_t *cm_node_loop(struct cm_node *n);
bool cm_node_is_leader(struct cm_node *n);
uint64_t cm_node_leader_id(struct cm_node *n);
/* HTTP address of the current leader or NULL. */
const char *cm_node_leader_http(struct cm_node *n);
uint64_t cm_node_id(struct cm_node *n);
uint64_t cm_node_term(struct cm_node *n);
/* A leader that applied everything committed by earlier terms: writes may run. */
bool cm_node_leader_ready(struct cm_node *n);
/* This node left the configuration (or the leader said so): it must not serve. */
bool cm_node_removed(struct cm_node *n);
bool cm_node_stopping(struct cm_node *n);

/* Outcome of a proposal. */
enum {
    CM_APPLIED = 0,
    CM_PROPOSE_TIMEOUT = 1, /* not known to be applied within propose_timeout */
    CM_PROPOSE_LOST = 2,    /* another entry took its place in the log: not applied */
    CM_PROPOSE_FAILED = 3,  /* raft refused it (e.g. not leader): not applied */
};

typedef void (*cm_applied_fn)(struct cm_node *n, void *arg, int status, struct cm_result *res);

/* Propose a command. `cb` always runs exactly once, with CM_APPLIED and apply's result, or with
 * the reason it did not apply (possibly before this returns). `payload` is consumed (freed). */
void cm_node_propose(struct cm_node *n, uint8_t module, uint8_t op, struct cm_buf *payload,
                     cm_applied_fn cb, void *arg);

/* A raft barrier (counted in the stats): `cb` runs once everything appended before it applied.
 * Returns 0 or a raft error code (then `cb` never runs). */
int cm_node_barrier(struct cm_node *n, struct raft_barrier *req, raft_barrier_cb cb);

/* Outcome of a membership change or leadership transfer. */
enum {
    CM_CHANGE_DONE = 0,
    CM_CHANGE_DUPLICATE, /* the id or raft address is already a member */
    CM_CHANGE_UNKNOWN,   /* no member has this id */
    CM_CHANGE_SELF,      /* this node cannot remove itself */
    CM_CHANGE_BUSY,      /* another membership change is in progress */
    CM_CHANGE_NOT_VOTER, /* leadership can only go to a voter */
    CM_CHANGE_FAILED,    /* raft refused or failed it: `msg` says why */
    CM_CHANGE_STOPPING,  /* the node stopped before the change finished */
};
typedef void (*cm_change_fn)(struct cm_node *n, void *arg, int outcome, const char *msg);
/* Membership changes (leader only). `cb` runs exactly once with the outcome, possibly before the
 * call returns; a change can take several catch-up rounds, so it carries no timeout. */
void cm_node_member_add(struct cm_node *n, uint64_t id, const char *raft_addr,
                        const char *http_addr, bool learner, cm_change_fn cb, void *arg);
void cm_node_member_remove(struct cm_node *n, uint64_t id, cm_change_fn cb, void *arg);
void cm_node_member_promote(struct cm_node *n, uint64_t id, cm_change_fn cb, void *arg);
/* Start a leadership transfer; returns at once with the outcome of starting it (DONE also when
 * the target already leads or a transfer is running), `msg` filled on FAILED. */
int cm_node_transfer(struct cm_node *n, uint64_t id, char *msg, size_t msglen);

/* What this node knows about member `id` (GET /internal/member, used by removal probes). */
struct json_object *cm_node_member_view(struct cm_node *n, uint64_t id);

/* A removed member is not told: the leader stops replicating to it before the configuration that
 * drops it reaches it. True when this node was a member and has had no leader for two election
 * timeouts: time to ask the other members (the dispatch layer does, over HTTP). */
bool cm_node_removal_suspect(struct cm_node *n);
/* Members' HTTP addresses to ask: the configuration's other members with a known address. */
size_t cm_node_peers_http(struct cm_node *n, const char **addrs, size_t max);
/* The leader at `who`, in `term`, says this node is not in the committed configuration. */
void cm_node_learn_removed(struct cm_node *n, const char *who, uint64_t term);

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
    uint64_t snapshots_taken;
    uint64_t snapshots_restored;
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

/* The layer above (one), told at fixed points of the loop so that requests keep their order
 * relative to the hooks: `turn` at the end of every loop turn, after the turn's proposals went
 * to raft; `tick` at the start of every tick, before the hooks; `leader_ready` after the hooks'
 * on_leader; `not_leader` whenever this node stops being leader (after on_follower);
 * `stopping` first thing when the node begins to stop; `close` after the hooks' on_stop, to close
 * what the layer holds on the loop (outgoing requests complete as it does) and then call `done`,
 * after which raft closes. */
struct cm_node_upper {
    void (*turn)(struct cm_node *n, void *arg);
    void (*tick)(struct cm_node *n, void *arg);
    void (*leader_ready)(struct cm_node *n, void *arg);
    void (*not_leader)(struct cm_node *n, void *arg);
    void (*stopping)(struct cm_node *n, void *arg);
    void (*close)(struct cm_node *n, void *arg, void (*done)(struct cm_node *n));
    void *arg;
};
void cm_node_set_upper(struct cm_node *n, const struct cm_node_upper *u);

/* Per-domain loop-side state that is not replicated (leader caches, task queues, metrics).
 * One slot per domain; owners set it in their jobs init and free it in on_stop. */
enum cm_ext_slot {
    CM_EXT_DISK = 0,
    CM_EXT_CONFIG, /* the server's whole config, for the layers above (cm_node_cfg) */
    CM_EXT_VOLUME,
    CM_EXT_SERVICE,
    CM_EXT_KV,
    CM_EXT_METRICS,
    CM_EXT_AUTH,
    CM_EXT_OPS,
    CM_EXT_VERSION,
    CM_EXT_DISPATCH,
    CM_EXT_HISTORY,
    CM_EXT_MAX
};
void *cm_node_ext(struct cm_node *n, enum cm_ext_slot slot);
void cm_node_set_ext(struct cm_node *n, enum cm_ext_slot slot, void *state);

#endif
