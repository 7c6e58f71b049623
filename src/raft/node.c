/*
 * The node's consensus layer: raft wiring, proposals with group commit, barriers, leadership,
 * membership changes, the snapshot hooks, storage failures, the identity of the data directory
 * and the view of raft that /stat shows. See node.h for the model; requests are the business of
 * the dispatch layer above (src/dispatch/).
 *
 * Everything here runs on the loop thread except fsm_snapshot_async (a libuv worker thread,
 * which touches only the snapshot copy).
 */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft/uv.h>
#include <uv.h>

#include "../fsm/mod_cluster.h"
#include "../fsm/mod_members.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/map.h"
#include "../util/net.h"
#include "../util/timeutil.h"
#include "transport.h"

#define BATCH_MAX_ENTRIES 1024
#define BATCH_MAX_BYTES (8u << 20)
#define TICK_MS 100
#define MAX_HOOKS 16

/* Internal states of raft_progress (canonical raft 0.15 progress.h). */
enum { PROGRESS_PROBE = 0, PROGRESS_PIPELINE = 1, PROGRESS_SNAPSHOT = 2 };

struct pending {
    uint64_t req_id;
    uint64_t index; /* log index once appended; 0 before */
    uint64_t deadline_ms;
    cm_applied_fn cb;
    void *arg;
    bool resolved;
    bool in_heap;
    struct pending *fprev, *fnext;
};

struct member_change {
    struct raft_change req;
    struct cm_node *node;
    cm_change_fn cb; /* NULL once told (the node stopped first) */
    void *arg;
    uint64_t id;
    char raft_addr[CM_ADDR_MAX];
    int role;
    int step;
};

struct cm_node {
    const struct cm_raft_settings *cfg;
    const struct cm_fsm_settings *fsm_settings;
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm_if;
    struct cm_fsm *fsm;
    uv_check_t check;
    uv_timer_t tick;
    uv_signal_t sig_int, sig_term;
    bool raft_started;
    bool auth_transport;

    /* proposals */
    struct raft_buffer *bbufs;
    struct pending **bpend;
    unsigned bn;
    size_t bbytes;
    uint64_t next_req;
    struct cm_map pending; /* req_id -> pending */
    struct pending **heap; /* min-heap by index */
    size_t heap_n, heap_cap;
    struct pending *pf_head, *pf_tail; /* by deadline */

    /* leadership */
    unsigned short last_state;
    uint64_t last_leader;
    uint64_t last_term;
    bool leader_ready;
    bool lb_inflight;
    struct raft_barrier lb_req;
    uint64_t lb_term;
    struct member_change *change;
    struct raft_transfer transfer_req;
    bool transfer_busy;
    uint64_t conf_index_seen;

    bool removed;
    bool storage_failed; /* raft could not write its log (the node exits at once) */
    bool addr_warned;    /* warned that the configuration knows this node by another address */
    bool was_member;
    bool stopping;
    int exit_code;
    uint64_t no_leader_since_ms;
    uint64_t last_wait_log_ms;

    /* raft_uv's write operations, wrapped to notice storage failures */
    int (*io_append)(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
    int (*io_snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
    struct io_wrap *io_abandoned; /* requests raft_uv failed synchronously but may still hold */

    /* snapshots */
    struct cm_snap_taken *snap_taken;
    uint64_t snap_start_ms;
    uint64_t last_snap_ms;
    uint64_t last_snap_dur_ms;
    bool snap_forced; /* the cluster version moved: snapshot now (see on_applied) */
    uint64_t snap_index;

    struct cm_node_stats stats;
    struct cm_leader_event hist[32];
    size_t hist_n;
    struct cm_node_hooks hooks[MAX_HOOKS];
    size_t n_hooks;
    struct cm_node_upper upper;
    void *ext[CM_EXT_MAX];
};

static void leader_barrier_cb(struct raft_barrier *req, int status);
static void flush_batch(struct cm_node *n);

/* ------------------------------------------------------------------------------------------ */
/* small accessors                                                                            */

struct cm_fsm *cm_node_fsm(struct cm_node *n)
{
    return n->fsm;
}
struct raft *cm_node_raft(struct cm_node *n)
{
    return &n->raft;
}
uv_loop_t *cm_node_loop(struct cm_node *n)
{
    return &n->loop;
}
uint64_t cm_node_id(struct cm_node *n)
{
    return n->cfg->node_id;
}
const struct cm_node_stats *cm_node_stats(struct cm_node *n)
{
    return &n->stats;
}
uint64_t cm_node_term(struct cm_node *n)
{
    return n->raft.current_term;
}
bool cm_node_leader_ready(struct cm_node *n)
{
    return n->leader_ready;
}
bool cm_node_removed(struct cm_node *n)
{
    return n->removed;
}
bool cm_node_stopping(struct cm_node *n)
{
    return n->stopping;
}

bool cm_node_is_leader(struct cm_node *n)
{
    return n->raft_started && raft_state(&n->raft) == RAFT_LEADER;
}

uint64_t cm_node_leader_id(struct cm_node *n)
{
    if (!n->raft_started)
        return 0;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &id, &addr);
    return id;
}

const char *cm_node_leader_http(struct cm_node *n)
{
    uint64_t id = cm_node_leader_id(n);
    return id ? cm_members_http(n->fsm, id) : NULL;
}

const char *cm_node_leader_host(struct cm_node *n)
{
    const char *h = cm_node_leader_http(n);
    return h ? h : "";
}

void cm_node_add_hooks(struct cm_node *n, const struct cm_node_hooks *h)
{
    if (n->n_hooks < MAX_HOOKS)
        n->hooks[n->n_hooks++] = *h;
}

void cm_node_set_upper(struct cm_node *n, const struct cm_node_upper *u)
{
    n->upper = *u;
}

void *cm_node_ext(struct cm_node *n, enum cm_ext_slot slot)
{
    return slot < CM_EXT_MAX ? n->ext[slot] : NULL;
}

void cm_node_set_ext(struct cm_node *n, enum cm_ext_slot slot, void *state)
{
    if (slot < CM_EXT_MAX)
        n->ext[slot] = state;
}

size_t cm_node_leader_history(struct cm_node *n, const struct cm_leader_event **ev)
{
    *ev = n->hist;
    return n->hist_n;
}

/* ------------------------------------------------------------------------------------------ */
/* proposals                                                                                   */

static void heap_push(struct cm_node *n, struct pending *p)
{
    if (n->heap_n == n->heap_cap) {
        n->heap_cap = n->heap_cap ? n->heap_cap * 2 : 64;
        n->heap = cm_realloc(n->heap, n->heap_cap * sizeof *n->heap);
    }
    size_t i = n->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (n->heap[parent]->index <= p->index)
            break;
        n->heap[i] = n->heap[parent];
        i = parent;
    }
    n->heap[i] = p;
    p->in_heap = true;
}

static struct pending *heap_pop(struct cm_node *n)
{
    struct pending *top = n->heap[0];
    struct pending *last = n->heap[--n->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n->heap_n)
            break;
        if (c + 1 < n->heap_n && n->heap[c + 1]->index < n->heap[c]->index)
            c++;
        if (last->index <= n->heap[c]->index)
            break;
        n->heap[i] = n->heap[c];
        i = c;
    }
    if (n->heap_n)
        n->heap[i] = last;
    top->in_heap = false;
    return top;
}

static void pf_remove(struct cm_node *n, struct pending *p)
{
    if (p->fprev)
        p->fprev->fnext = p->fnext;
    else if (n->pf_head == p)
        n->pf_head = p->fnext;
    else
        return;
    if (p->fnext)
        p->fnext->fprev = p->fprev;
    else
        n->pf_tail = p->fprev;
    p->fprev = p->fnext = NULL;
}

static void resolve(struct cm_node *n, struct pending *p, int status, struct cm_result *res)
{
    if (p->resolved)
        return;
    p->resolved = true;
    cm_map_del(&n->pending, p->req_id);
    pf_remove(n, p);
    struct cm_result empty = {0};
    if (res == NULL)
        res = &empty;
    if (status != CM_APPLIED)
        n->stats.proposals_failed++;
    else
        n->stats.proposals_committed++;
    if (p->cb)
        p->cb(n, p->arg, status, res);
    if (!p->in_heap)
        free(p);
}

static struct pending *propose(struct cm_node *n, uint8_t module, uint8_t op,
                               struct cm_buf *payload)
{
    struct cm_cmd c = {
        .module = module,
        .op = op,
        .node_id = n->cfg->node_id,
        .req_id = n->next_req++,
        .ts_ns = cm_now_ns(),
        .payload = (const uint8_t *)payload->data,
        .len = payload->len,
    };
    c.version = cm_fsm_cmd_version(&c);
    struct pending *p = cm_calloc(1, sizeof *p);
    p->req_id = c.req_id;
    p->deadline_ms = cm_mono_ms() + n->cfg->propose_timeout_ms;
    struct raft_buffer rb;
    int rc;
    if (c.version > cm_cluster_version(n->fsm) && c.module != CM_MOD_CLUSTER) {
        /* the routes refuse such requests with a message first; this is the backstop that
         * keeps a command of a later format out of the log of a cluster not yet there */
        CM_ERROR("raft",
                 "not proposing a command of format %u (module %u op %u): the cluster runs "
                 "version %u",
                 c.version, c.module, c.op, cm_cluster_version(n->fsm));
        rc = -1;
    } else
        rc = cm_cmd_encode(&c, &rb);
    cm_buf_free(payload);
    cm_map_put(&n->pending, p->req_id, p);
    p->fprev = n->pf_tail;
    if (n->pf_tail)
        n->pf_tail->fnext = p;
    else
        n->pf_head = p;
    n->pf_tail = p;
    if (rc != 0) {
        if (c.version <= cm_cluster_version(n->fsm))
            CM_ERROR("raft", "cannot encode a command of %zu bytes", c.len);
        p->index = 0;
        return p; /* resolved as failed by the caller */
    }
    if (n->bn >= n->cfg->max_batch_entries || n->bbytes + rb.len > BATCH_MAX_BYTES) {
        /* flush what we have first; the check handler would do it at the end of the turn */
        flush_batch(n);
    }
    if (n->bbufs == NULL) {
        n->bbufs = cm_malloc(BATCH_MAX_ENTRIES * sizeof *n->bbufs);
        n->bpend = cm_malloc(BATCH_MAX_ENTRIES * sizeof *n->bpend);
    }
    n->bbufs[n->bn] = rb;
    n->bpend[n->bn] = p;
    n->bn++;
    n->bbytes += rb.len;
    n->stats.proposals++;
    return p;
}

void cm_node_propose(struct cm_node *n, uint8_t module, uint8_t op, struct cm_buf *payload,
                     cm_applied_fn cb, void *arg)
{
    struct pending *p = propose(n, module, op, payload);
    p->cb = cb;
    p->arg = arg;
    if (n->bn == 0 || n->bpend[n->bn - 1] != p)
        resolve(n, p, CM_PROPOSE_FAILED, NULL);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct cm_node *n = req->data;
    if (status != 0 && status != RAFT_SHUTDOWN)
        CM_DEBUG("raft", "batch at index %llu: %s (its entries may still commit)",
                 (unsigned long long)req->index, raft_strerror(status));
    (void)n;
    free(req);
}

static void flush_batch(struct cm_node *n)
{
    if (n->bn == 0)
        return;
    unsigned cnt = n->bn;
    n->bn = 0;
    n->bbytes = 0;
    int rc = RAFT_NOTLEADER;
    struct raft_apply *req = NULL;
    if (cm_node_is_leader(n) && !n->stopping) {
        req = cm_malloc(sizeof *req);
        req->data = n;
        rc = raft_apply(&n->raft, req, n->bbufs, cnt, apply_cb);
    }
    if (rc != 0) {
        free(req);
        if (rc != RAFT_NOTLEADER)
            CM_WARN("raft", "proposing %u command(s) failed: %s", cnt, raft_strerror(rc));
        for (unsigned i = 0; i < cnt; i++) {
            raft_free(n->bbufs[i].base);
            resolve(n, n->bpend[i], CM_PROPOSE_FAILED, NULL);
        }
        return;
    }
    n->stats.batches++;
    for (unsigned i = 0; i < cnt; i++) {
        struct pending *p = n->bpend[i];
        p->index = req->index + i;
        if (p->resolved) /* answered while waiting in the batch (cannot happen today) */
            continue;
        heap_push(n, p);
    }
}

/* The FSM hook: complete the proposer's request, and fail every one of our proposals whose log
 * slot went to a different entry. */
static void on_applied(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    struct cm_node *n = arg;
    uint64_t index = n->raft.last_applied + 1; /* raft sets last_applied after apply returns */
    if (cmd->module == CM_MOD_CLUSTER && res->code == 0) {
        /* Snapshot right away: from then on this data directory holds a snapshot with the
         * cluster section, which every earlier release refuses to start from, instead of a log
         * whose later entries it would skip. raft checks the threshold after this apply. */
        n->snap_forced = true;
        raft_set_snapshot_threshold(&n->raft, 1);
    }
    if (cmd->node_id == n->cfg->node_id) {
        struct pending *p = cm_map_get(&n->pending, cmd->req_id);
        if (p)
            resolve(n, p, CM_APPLIED, res);
    }
    while (n->heap_n && n->heap[0]->index <= index) {
        struct pending *p = heap_pop(n);
        if (p->resolved)
            free(p);
        else
            resolve(n, p, CM_PROPOSE_LOST, NULL); /* frees it: it left the heap */
    }
}

int cm_node_barrier(struct cm_node *n, struct raft_barrier *req, raft_barrier_cb cb)
{
    int rc = raft_barrier(&n->raft, req, cb);
    if (rc == 0)
        n->stats.barriers++;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* leadership and membership observation                                                      */

static bool config_has(const struct raft_configuration *c, uint64_t id, int *role)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id) {
            if (role)
                *role = c->servers[i].role;
            return true;
        }
    return false;
}

static int write_identity(struct cm_node *n, bool member, char *err, size_t errlen);

static void members_addr_done(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)n, (void)arg, (void)res;
    if (status != CM_APPLIED)
        CM_DEBUG("raft", "recording a member's HTTP address did not complete (%d)", status);
}

/* On a new leader: make sure every member's HTTP address is replicated, seeding from the static
 * `nodes` map of the config file. */
static void seed_member_addrs(struct cm_node *n)
{
    struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t id = c->servers[i].id;
        if (cm_members_http_replicated(n->fsm, id) != NULL)
            continue;
        const char *addr = cm_settings_node_http(n->fsm_settings, id);
        if (addr == NULL)
            continue;
        struct cm_buf b = {0};
        cm_members_enc_set_http(&b, id, addr);
        cm_node_propose(n, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, &b, members_addr_done, NULL);
    }
}

static void leader_barrier_cb(struct raft_barrier *req, int status)
{
    struct cm_node *n = req->data;
    n->lb_inflight = false;
    if (status != 0 || !cm_node_is_leader(n) || n->raft.current_term != n->lb_term) {
        if (status != 0 && status != RAFT_SHUTDOWN)
            CM_INFO("raft", "lost leadership before the first barrier of term %llu applied (%s)",
                    (unsigned long long)n->lb_term, raft_strerror(status));
        return;
    }
    n->leader_ready = true;
    CM_INFO("raft",
            "leader of term %llu is ready: everything committed earlier is applied (index %llu)",
            (unsigned long long)n->lb_term, (unsigned long long)n->raft.last_applied);
    seed_member_addrs(n);
    for (size_t i = 0; i < n->n_hooks; i++)
        if (n->hooks[i].on_leader)
            n->hooks[i].on_leader(n, n->hooks[i].arg);
    if (n->upper.leader_ready)
        n->upper.leader_ready(n, n->upper.arg);
}

static void become_leader(struct cm_node *n)
{
    n->leader_ready = false;
    n->lb_term = n->raft.current_term;
    n->lb_req.data = n;
    if (n->lb_inflight) /* a barrier of a previous term is still pending; it will be ignored */
        return;
    int rc = raft_barrier(&n->raft, &n->lb_req, leader_barrier_cb);
    if (rc != 0) {
        CM_WARN("raft", "cannot append the leader barrier: %s", raft_strerror(rc));
        return;
    }
    n->lb_inflight = true;
    CM_INFO("raft", "elected leader of term %llu; applying everything committed by earlier terms",
            (unsigned long long)n->lb_term);
}

static void lose_leader(struct cm_node *n)
{
    bool was_ready = n->leader_ready;
    n->leader_ready = false;
    if (was_ready)
        for (size_t i = 0; i < n->n_hooks; i++)
            if (n->hooks[i].on_follower)
                n->hooks[i].on_follower(n, n->hooks[i].arg);
    if (n->upper.not_leader)
        n->upper.not_leader(n, n->upper.arg);
    /* a membership change in progress reports its own outcome through raft's callback */
}

static const char *state_name(unsigned short st)
{
    switch (st) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "unavailable";
}

/* canonical raft answers a peer at the address the peer announces when it connects -- for this
 * node, cfg->raft_addr: its entry in peers/learners, else derived from listen_ip, else from the
 * IP of bind_addr, else 127.0.0.1 -- not at the address the configuration holds for it. When the
 * two differ (a node added with /member/add under one address while it derives another), the
 * answers to its votes and appends go elsewhere: it can follow, but never win an election or
 * commit as leader. Say so once. */
static void check_own_address(struct cm_node *n)
{
    struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id != n->cfg->node_id)
            continue;
        if (strcmp(c->servers[i].address, n->cfg->raft_addr) != 0 && !n->addr_warned) {
            n->addr_warned = true;
            CM_WARN("node",
                    "the cluster configuration has this node's raft address as %s, but it "
                    "announces itself to its peers as %s (its entry in peers/learners, else "
                    "listen_ip, else the IP of bind_addr, else 127.0.0.1), and raft answers a "
                    "peer at the address it announces: votes and acknowledgements for this "
                    "node would go to %s. Set raft_config.server_config.listen_ip (or its "
                    "learners entry) so that the two match, and restart it",
                    c->servers[i].address, n->cfg->raft_addr, n->cfg->raft_addr);
        }
        return;
    }
}

static void observe(struct cm_node *n)
{
    if (!n->raft_started)
        return;
    unsigned short st = n->raft.state;
    uint64_t term = n->raft.current_term;
    uint64_t lid = cm_node_leader_id(n);
    if (lid != n->last_leader) {
        if (lid) {
            n->stats.leader_changes++;
            size_t cap = sizeof n->hist / sizeof n->hist[0];
            if (n->hist_n == cap) {
                memmove(n->hist, n->hist + 1, (cap - 1) * sizeof n->hist[0]);
                n->hist_n--;
            }
            n->hist[n->hist_n++] = (struct cm_leader_event){cm_now_ns(), term, lid};
            if (lid != n->cfg->node_id)
                CM_INFO("raft", "following leader %llu (term %llu)", (unsigned long long)lid,
                        (unsigned long long)term);
            n->no_leader_since_ms = 0;
        } else {
            n->no_leader_since_ms = cm_mono_ms();
            CM_INFO("raft", "lost contact with leader %llu; waiting for an election (term %llu)",
                    (unsigned long long)n->last_leader, (unsigned long long)term);
        }
    }
    if (st == RAFT_LEADER && (n->last_state != RAFT_LEADER || term != n->last_term))
        become_leader(n);
    if (st != RAFT_LEADER && n->last_state == RAFT_LEADER)
        lose_leader(n);
    n->last_state = st;
    n->last_leader = lid;
    n->last_term = term;

    /* membership: a removed node is not told; it notices its id left the configuration */
    uint64_t ci = n->raft.configuration_index > n->raft.configuration_uncommitted_index
                      ? n->raft.configuration_index
                      : n->raft.configuration_uncommitted_index;
    if (ci != n->conf_index_seen && n->raft.configuration.n > 0) {
        n->conf_index_seen = ci;
        bool in = config_has(&n->raft.configuration, n->cfg->node_id, NULL);
        check_own_address(n);
        if (in && !n->was_member) {
            n->was_member = true;
            char err[256];
            if (write_identity(n, true, err, sizeof err) != 0)
                CM_WARN("node", "%s", err);
            CM_INFO("node", "this node is a member of the cluster configuration");
        }
        if (in && n->removed) {
            n->removed = false;
            CM_INFO("node", "this node was added back to the cluster; serving again");
        }
        if (!in && n->was_member && !n->removed) {
            n->removed = true;
            CM_WARN("node",
                    "this node (id %llu) was removed from the cluster configuration; it "
                    "stops serving requests (add it back with /member/add, or wipe its "
                    "data directory to reuse the host)",
                    (unsigned long long)n->cfg->node_id);
        }
    }
}

static void wait_log(struct cm_node *n)
{
    uint64_t now = cm_mono_ms();
    if (now - n->last_wait_log_ms < 5000)
        return;
    struct raft *r = &n->raft;
    const char *what = NULL;
    char buf[256];
    if (n->removed)
        return;
    if (r->state == RAFT_FOLLOWER && r->snapshot.put.data != NULL) {
        snprintf(buf, sizeof buf, "installing a snapshot sent by leader %llu",
                 (unsigned long long)n->last_leader);
        what = buf;
    } else if (cm_node_leader_id(n) == 0) {
        unsigned voters = 0;
        for (unsigned i = 0; i < r->configuration.n; i++)
            voters += r->configuration.servers[i].role == RAFT_VOTER;
        if (r->configuration.n == 0)
            snprintf(buf, sizeof buf,
                     "waiting to be added to a cluster: this node (id %llu, raft "
                     "%s) is in no configuration yet; use /member/add on the leader",
                     (unsigned long long)n->cfg->node_id, n->cfg->raft_addr);
        else
            snprintf(buf, sizeof buf,
                     "waiting for a leader: %s in term %llu, a quorum needs %u of "
                     "%u voters",
                     state_name(r->state), (unsigned long long)r->current_term, voters / 2 + 1,
                     voters);
        what = buf;
    } else if (r->state == RAFT_FOLLOWER && r->commit_index > r->last_applied + 1000) {
        snprintf(buf, sizeof buf, "catching up: applied %llu of %llu committed entries",
                 (unsigned long long)r->last_applied, (unsigned long long)r->commit_index);
        what = buf;
    }
    if (what) {
        CM_INFO("node", "%s", what);
        n->last_wait_log_ms = now;
    }
}

bool cm_node_ready(struct cm_node *n, char *why, size_t whylen)
{
    if (n->fsm->blocked_need) {
        snprintf(why, whylen,
                 "stopped applying: the log needs format version %u, this binary applies up to "
                 "%u; restart it on a release that supports version %u",
                 n->fsm->blocked_need, CM_FORMAT_VERSION, n->fsm->blocked_need);
        return false;
    }
    if (n->removed) {
        snprintf(why, whylen, "removed from the cluster");
        return false;
    }
    if (cm_node_leader_id(n) == 0) {
        snprintf(why, whylen, "no leader");
        return false;
    }
    if (n->raft.last_applied < n->raft.commit_index) {
        snprintf(why, whylen, "applied %llu of %llu committed entries",
                 (unsigned long long)n->raft.last_applied,
                 (unsigned long long)n->raft.commit_index);
        return false;
    }
    if (cm_node_is_leader(n) && !n->leader_ready) {
        snprintf(why, whylen, "new leader still applying earlier terms");
        return false;
    }
    snprintf(why, whylen, "ok");
    return true;
}

bool cm_node_removal_suspect(struct cm_node *n)
{
    return n->was_member && !n->removed && n->no_leader_since_ms != 0 &&
           cm_node_leader_id(n) == 0 &&
           cm_mono_ms() - n->no_leader_since_ms >= 2ull * n->cfg->election_ms;
}

size_t cm_node_peers_http(struct cm_node *n, const char **addrs, size_t max)
{
    struct raft_configuration *c = &n->raft.configuration;
    size_t k = 0;
    for (unsigned i = 0; i < c->n && k < max; i++) {
        uint64_t id = c->servers[i].id;
        const char *addr = id == n->cfg->node_id ? NULL : cm_members_http(n->fsm, id);
        if (addr != NULL)
            addrs[k++] = addr;
    }
    return k;
}

void cm_node_learn_removed(struct cm_node *n, const char *who, uint64_t term)
{
    if (n->removed || n->stopping || term < n->raft.current_term)
        return;
    n->removed = true;
    CM_WARN("node",
            "the leader (%s) says this node (id %llu) is no longer in the cluster "
            "configuration: it stops serving requests (add it back with "
            "/member/add, or wipe its data directory to reuse the host)",
            who, (unsigned long long)n->cfg->node_id);
}

struct json_object *cm_node_member_view(struct cm_node *n, uint64_t id)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "leader", json_object_new_uint64(cm_node_leader_id(n)));
    json_object_object_add(o, "term", json_object_new_uint64(n->raft.current_term));
    json_object_object_add(o, "is_leader", json_object_new_boolean(cm_node_is_leader(n)));
    json_object_object_add(o, "member",
                           json_object_new_boolean(config_has(&n->raft.configuration, id, NULL)));
    json_object_object_add(o, "conf_index", json_object_new_uint64(n->raft.configuration_index));
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* the end of every loop turn, and the 100 ms tick                                            */

static void on_check(uv_check_t *c)
{
    struct cm_node *n = c->data;
    observe(n);
    flush_batch(n);
    if (n->upper.turn)
        n->upper.turn(n, n->upper.arg);
}

static void on_tick(uv_timer_t *t)
{
    struct cm_node *n = t->data;
    uint64_t now = cm_mono_ms();
    if (n->upper.tick) /* requests past their deadline, removal probes */
        n->upper.tick(n, n->upper.arg);
    /* node-internal proposals past their deadline */
    while (n->pf_head && n->pf_head->deadline_ms <= now)
        resolve(n, n->pf_head, CM_PROPOSE_TIMEOUT, NULL);
    for (size_t i = 0; i < n->n_hooks; i++)
        if (n->hooks[i].on_tick)
            n->hooks[i].on_tick(n, n->hooks[i].arg);
    wait_log(n);
}

/* ------------------------------------------------------------------------------------------ */
/* membership changes                                                                          */

static int find_server(struct cm_node *n, uint64_t id, const char *addr)
{
    struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id || (addr && strcmp(c->servers[i].address, addr) == 0))
            return (int)i;
    return -1;
}

static void change_finish(struct member_change *mc, int status, const char *what)
{
    struct cm_node *n = mc->node;
    if (mc->cb) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s", what, status ? raft_strerror(status) : "done");
        mc->cb(n, mc->arg, status == 0 ? CM_CHANGE_DONE : CM_CHANGE_FAILED, msg);
    }
    if (status == 0)
        CM_INFO("raft", "%s: done", what);
    else
        CM_WARN("raft", "%s: %s", what, raft_strerror(status));
    if (n->change == mc)
        n->change = NULL;
    free(mc);
}

static void add_cb(struct raft_change *req, int status);

static void assign_cb(struct raft_change *req, int status)
{
    struct member_change *mc = req->data;
    char what[128];
    snprintf(what, sizeof what, "make member %llu a %s", (unsigned long long)mc->id,
             mc->role == RAFT_VOTER ? "voter" : "learner");
    change_finish(mc, status, what);
}

static void add_cb(struct raft_change *req, int status)
{
    struct member_change *mc = req->data;
    struct cm_node *n = mc->node;
    char what[160];
    snprintf(what, sizeof what, "add member %llu at %s", (unsigned long long)mc->id, mc->raft_addr);
    if (status != 0) {
        change_finish(mc, status, what);
        return;
    }
    CM_INFO("raft", "%s: added as spare, assigning role %s", what,
            mc->role == RAFT_VOTER ? "voter" : "learner");
    mc->req.data = mc;
    int rc = cm_node_is_leader(n) ? raft_assign(&n->raft, &mc->req, mc->id, mc->role, assign_cb)
                                  : RAFT_NOTLEADER;
    if (rc != 0)
        change_finish(mc, rc, what);
}

static struct member_change *change_new(struct cm_node *n, uint64_t id, cm_change_fn cb, void *arg)
{
    struct member_change *mc = cm_calloc(1, sizeof *mc);
    mc->node = n;
    mc->cb = cb;
    mc->arg = arg;
    mc->id = id;
    mc->req.data = mc;
    n->change = mc;
    return mc;
}

void cm_node_member_add(struct cm_node *n, uint64_t id, const char *raft_addr,
                        const char *http_addr, bool learner, cm_change_fn cb, void *arg)
{
    if (find_server(n, id, raft_addr) >= 0) {
        cb(n, arg, CM_CHANGE_DUPLICATE, "");
        return;
    }
    if (n->change) {
        cb(n, arg, CM_CHANGE_BUSY, "");
        return;
    }
    if (http_addr && http_addr[0]) {
        struct cm_buf b = {0};
        cm_members_enc_set_http(&b, id, http_addr);
        cm_node_propose(n, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, &b, members_addr_done, NULL);
    }
    struct member_change *mc = change_new(n, id, cb, arg);
    snprintf(mc->raft_addr, sizeof mc->raft_addr, "%s", raft_addr);
    mc->role = learner ? RAFT_STANDBY : RAFT_VOTER;
    CM_INFO("raft", "adding member %llu (raft %s, http %s) as %s", (unsigned long long)id,
            raft_addr, http_addr && http_addr[0] ? http_addr : "from config",
            learner ? "learner" : "voter");
    int rc = raft_add(&n->raft, &mc->req, id, raft_addr, add_cb);
    if (rc != 0) {
        char what[160];
        snprintf(what, sizeof what, "add member %llu at %s", (unsigned long long)id, raft_addr);
        change_finish(mc, rc, what);
    }
}

static void remove_cb(struct raft_change *req, int status)
{
    struct member_change *mc = req->data;
    char what[96];
    snprintf(what, sizeof what, "remove member %llu", (unsigned long long)mc->id);
    if (status == 0 && cm_node_is_leader(mc->node)) {
        struct cm_buf b = {0};
        cm_members_enc_del(&b, mc->id);
        cm_node_propose(mc->node, CM_MOD_MEMBERS, CM_MEMBERS_OP_DEL, &b, members_addr_done, NULL);
    }
    change_finish(mc, status, what);
}

void cm_node_member_remove(struct cm_node *n, uint64_t id, cm_change_fn cb, void *arg)
{
    if (find_server(n, id, NULL) < 0) {
        cb(n, arg, CM_CHANGE_UNKNOWN, "");
        return;
    }
    if (id == n->cfg->node_id) {
        cb(n, arg, CM_CHANGE_SELF, "");
        return;
    }
    if (n->change) {
        cb(n, arg, CM_CHANGE_BUSY, "");
        return;
    }
    struct member_change *mc = change_new(n, id, cb, arg);
    CM_INFO("raft", "removing member %llu", (unsigned long long)id);
    int rc = raft_remove(&n->raft, &mc->req, id, remove_cb);
    if (rc != 0) {
        char what[96];
        snprintf(what, sizeof what, "remove member %llu", (unsigned long long)id);
        change_finish(mc, rc, what);
    }
}

void cm_node_member_promote(struct cm_node *n, uint64_t id, cm_change_fn cb, void *arg)
{
    int idx = find_server(n, id, NULL);
    if (idx < 0) {
        cb(n, arg, CM_CHANGE_UNKNOWN, "");
        return;
    }
    if (n->raft.configuration.servers[idx].role == RAFT_VOTER) {
        cb(n, arg, CM_CHANGE_DONE, "");
        return;
    }
    if (n->change) {
        cb(n, arg, CM_CHANGE_BUSY, "");
        return;
    }
    struct member_change *mc = change_new(n, id, cb, arg);
    mc->role = RAFT_VOTER;
    CM_INFO("raft", "promoting member %llu to voter", (unsigned long long)id);
    int rc = raft_assign(&n->raft, &mc->req, id, RAFT_VOTER, assign_cb);
    if (rc != 0) {
        char what[96];
        snprintf(what, sizeof what, "promote member %llu", (unsigned long long)id);
        change_finish(mc, rc, what);
    }
}

static void transfer_cb(struct raft_transfer *req)
{
    struct cm_node *n = req->data;
    n->transfer_busy = false;
    CM_INFO("raft", "leadership transfer to %llu finished; leader is now %llu",
            (unsigned long long)req->id, (unsigned long long)cm_node_leader_id(n));
}

int cm_node_transfer(struct cm_node *n, uint64_t id, char *msg, size_t msglen)
{
    int idx = find_server(n, id, NULL);
    if (idx < 0)
        return CM_CHANGE_UNKNOWN;
    if (id == n->cfg->node_id)
        return CM_CHANGE_DONE;
    if (n->raft.configuration.servers[idx].role != RAFT_VOTER)
        return CM_CHANGE_NOT_VOTER;
    if (n->transfer_busy)
        return CM_CHANGE_DONE;
    n->transfer_req.data = n;
    int rc = raft_transfer(&n->raft, &n->transfer_req, id, transfer_cb);
    if (rc != 0) {
        snprintf(msg, msglen, "leadership transfer failed: %s", raft_strerror(rc));
        return CM_CHANGE_FAILED;
    }
    n->transfer_busy = true;
    CM_INFO("raft", "transferring leadership to %llu", (unsigned long long)id);
    return CM_CHANGE_DONE;
}

/* ------------------------------------------------------------------------------------------ */
/* /stat                                                                                       */

struct json_object *cm_node_raft_status(struct cm_node *n)
{
    struct raft *r = &n->raft;
    struct json_object *o = json_object_new_object();
    const char *st = "StateFollower";
    if (r->state == RAFT_LEADER)
        st = "StateLeader";
    else if (r->state == RAFT_CANDIDATE)
        st = r->candidate_state.in_pre_vote ? "StatePreCandidate" : "StateCandidate";
    json_object_object_add(o, "nodeId", json_object_new_uint64(n->cfg->node_id));
    json_object_object_add(o, "term", json_object_new_uint64(r->current_term));
    json_object_object_add(o, "vote", json_object_new_uint64(r->voted_for));
    json_object_object_add(o, "commit", json_object_new_uint64(r->commit_index));
    json_object_object_add(o, "leader", json_object_new_uint64(cm_node_leader_id(n)));
    json_object_object_add(o, "raftState", json_object_new_string(st));
    json_object_object_add(o, "applied", json_object_new_uint64(r->last_applied));
    json_object_object_add(o, "raftApplied", json_object_new_uint64(r->last_applied));
    json_object_object_add(o, "transferee",
                           json_object_new_uint64(r->transfer ? r->transfer->id : 0));
    if (r->state != RAFT_LEADER || r->leader_state.progress == NULL) {
        json_object_object_add(o, "peers", NULL);
        return o;
    }
    struct json_object *peers = json_object_new_array();
    raft_time now = r->io->time(r->io);
    for (unsigned i = 0; i < r->configuration.n; i++) {
        struct raft_server *s = &r->configuration.servers[i];
        struct raft_progress *p = &r->leader_state.progress[i];
        bool self = s->id == n->cfg->node_id;
        struct json_object *e = json_object_new_object();
        const char *ps = p->state == PROGRESS_PIPELINE   ? "ProgressStateReplicate"
                         : p->state == PROGRESS_SNAPSHOT ? "ProgressStateSnapshot"
                                                         : "ProgressStateProbe";
        uint64_t match = self ? r->last_stored : p->match_index;
        uint64_t next = self ? r->last_stored + 1 : p->next_index;
        if (self)
            ps = "ProgressStateReplicate";
        bool paused =
            !self && (p->state == PROGRESS_SNAPSHOT ||
                      (p->state == PROGRESS_PROBE && now - p->last_send < r->heartbeat_timeout));
        uint64_t inflight =
            (!self && p->state == PROGRESS_PIPELINE && next > match + 1) ? next - match - 1 : 0;
        json_object_object_add(e, "id", json_object_new_uint64(s->id));
        json_object_object_add(e, "host", json_object_new_string(s->address));
        json_object_object_add(e, "match", json_object_new_uint64(match));
        json_object_object_add(e, "next", json_object_new_uint64(next));
        json_object_object_add(e, "state", json_object_new_string(ps));
        json_object_object_add(e, "paused", json_object_new_boolean(paused));
        json_object_object_add(
            e, "pendingSnapshot",
            json_object_new_uint64(p->state == PROGRESS_SNAPSHOT ? p->snapshot_index : 0));
        json_object_object_add(e, "active", json_object_new_boolean(self || p->recent_recv));
        json_object_object_add(e, "isLearner", json_object_new_boolean(s->role != RAFT_VOTER));
        json_object_object_add(e, "isInflightFull", json_object_new_boolean(false));
        json_object_object_add(e, "inflightCount", json_object_new_uint64(inflight));
        json_object_array_add(peers, e);
    }
    json_object_object_add(o, "peers", peers);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* raft FSM interface                                                                          */

static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    struct cm_node *n = f->data;
    cm_fsm_apply_buf(n->fsm, buf->base, buf->len);
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cm_node *n = f->data;
    uint64_t now = cm_mono_ms();
    /* Canonical raft stops appending to its log while it stores a snapshot, so every snapshot
     * is a latency spike for the writes in flight. Take one at most every
     * snapshot_min_interval_ms (and never more often than twenty times its own duration, so a
     * large state cannot keep the node busy snapshotting); the entry threshold still decides
     * when one is due. */
    uint64_t min_gap = n->cfg->snapshot_min_interval_ms;
    if (n->last_snap_dur_ms * 20 > min_gap)
        min_gap = n->last_snap_dur_ms * 20;
    if (n->fsm->blocked_need) /* the state lags the log: a snapshot would lose entries */
        return RAFT_BUSY;
    if (n->last_snap_ms && now - n->last_snap_ms < min_gap && !n->snap_forced)
        return RAFT_BUSY;
    if (n->snap_taken != NULL)
        return RAFT_BUSY;
    n->snap_start_ms = now;
    n->snap_index = n->raft.last_applied;
    n->snap_taken = cm_fsm_snap_take(n->fsm);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cm_node *n = f->data;
    struct cm_buf b = {0};
    struct cm_snap_taken *t = n->snap_taken;
    n->snap_taken = NULL;
    cm_fsm_snap_write(t, &b);
    struct raft_buffer *arr = raft_malloc(sizeof *arr);
    if (arr == NULL) {
        cm_buf_free(&b);
        return RAFT_NOMEM;
    }
    arr[0].len = b.len;
    arr[0].base = cm_buf_steal(&b, NULL);
    *bufs = arr;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cm_node *n = f->data;
    size_t bytes = 0;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            bytes += (*bufs)[i].len;
            free((*bufs)[i].base);
        }
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    if (n->snap_taken) { /* taken but never written (raft gave up) */
        cm_fsm_snap_drop(n->snap_taken);
        n->snap_taken = NULL;
    }
    uint64_t now = cm_mono_ms();
    n->last_snap_ms = now;
    n->last_snap_dur_ms = now - n->snap_start_ms;
    n->stats.snapshots_taken++;
    if (n->snap_forced) {
        n->snap_forced = false;
        raft_set_snapshot_threshold(&n->raft, n->cfg->snapshot_threshold);
    }
    CM_INFO("snapshot", "took a snapshot at index %llu: %zu bytes in %llu ms",
            (unsigned long long)n->snap_index, bytes, (unsigned long long)n->last_snap_dur_ms);
    return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct cm_node *n = f->data;
    uint64_t t0 = cm_mono_ms();
    char err[256];
    CM_INFO("snapshot", "restoring a snapshot of %zu bytes", buf->len);
    if (cm_fsm_restore(n->fsm, buf->base, buf->len, err, sizeof err) != 0) {
        CM_ERROR("snapshot", "cannot restore snapshot: %s", err);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    n->stats.snapshots_restored++;
    CM_INFO("snapshot", "restored the state from a snapshot in %llu ms",
            (unsigned long long)(cm_mono_ms() - t0));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* storage failures                                                                            */

/* raft_uv stops writing for good after a failed write (a full disk, an I/O error): every later
 * append fails at once. raft itself carries on as a follower that can store nothing, so the node
 * would linger forever, serving ever older state and never catching up. The write operations of
 * the I/O interface are wrapped to notice the first failed append; the node then stops with exit
 * status 1 (systemd restarts it; once the disk is fixed it recovers from what it had stored).
 * A failed snapshot store is only logged: raft tries again later and the log stays intact.
 *
 * raft_uv 0.15 may also return an error from append (or snapshot_put) after it queued the
 * request, when submitting the write fails: raft then frees its request, yet raft_uv can still
 * complete it later. Such a request is marked abandoned here: its late completion is swallowed
 * instead of reaching freed memory, and what is never completed is freed with the node. */

struct io_wrap {
    union {
        struct raft_io_append append;
        struct raft_io_snapshot_put put;
    } req; /* what raft_uv sees */
    void *orig;
    void (*cb)(void);
    struct cm_node *n;
    bool abandoned;
    struct io_wrap *next; /* on the node's abandoned list */
};

static struct cm_node *node_of_io(struct raft_io *io)
{
    return (struct cm_node *)(void *)((char *)io - offsetof(struct cm_node, io));
}

static struct io_wrap *io_wrap_new(struct cm_node *n, void *orig, void (*cb)(void))
{
    struct io_wrap *w = cm_calloc(1, sizeof *w);
    w->req.append.data = w; /* `data` is the first member of both request types */
    w->orig = orig;
    w->cb = cb;
    w->n = n;
    return w;
}

static void io_wrap_abandon(struct io_wrap *w)
{
    w->abandoned = true;
    w->next = w->n->io_abandoned;
    w->n->io_abandoned = w;
}

/* A completion: true when it must reach raft (the request was not abandoned). */
static bool io_wrap_done(struct io_wrap *w)
{
    if (!w->abandoned) {
        free(w);
        return true;
    }
    for (struct io_wrap **pp = &w->n->io_abandoned; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    free(w);
    return false;
}

static void storage_failed(struct cm_node *n, const char *what, int status)
{
    if (status == 0 || status == RAFT_CANCELED || n->stopping || n->storage_failed)
        return;
    n->storage_failed = true;
    CM_ERROR("storage",
             "%s in %s failed: %s (raft error %d%s%s); raft cannot write its log any more, so "
             "the node stops (exit status 1): free space or repair the disk, then start it again",
             what, n->cfg->data_dir, raft_strerror(status), status, n->io.errmsg[0] ? ": " : "",
             n->io.errmsg);
    /* Stop here, without unwinding into raft or closing it. canonical raft 0.15 does not survive
     * its own error paths after a failed append: a leader whose disk filled crashed with SIGSEGV
     * on the way out in a chaos campaign (2 of 12 full-disk faults), after this message. Nothing
     * a clean stop would still do is worth that: everything this node acknowledged is stored by
     * a majority, and a restart recovers from what it had stored, as after kill -9. */
    fflush(NULL);
    _exit(1);
}

static void snapshot_failed(struct cm_node *n, int status)
{
    if (status != 0 && status != RAFT_CANCELED && !n->stopping)
        CM_WARN("storage", "storing a snapshot in %s failed: %s (raft error %d%s%s)",
                n->cfg->data_dir, raft_strerror(status), status, n->io.errmsg[0] ? ": " : "",
                n->io.errmsg);
}

static void io_append_cb(struct raft_io_append *req, int status)
{
    struct io_wrap *w = req->data;
    struct cm_node *n = w->n;
    struct raft_io_append *orig = w->orig;
    raft_io_append_cb cb = (raft_io_append_cb)w->cb;
    storage_failed(n, "appending to the raft log", status);
    if (io_wrap_done(w))
        cb(orig, status);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n_entries, raft_io_append_cb cb)
{
    struct cm_node *n = node_of_io(io);
    struct io_wrap *w = io_wrap_new(n, req, (void (*)(void))cb);
    int rv = n->io_append(io, &w->req.append, entries, n_entries, io_append_cb);
    if (rv != 0) {
        io_wrap_abandon(w);
        storage_failed(n, "appending to the raft log", rv);
    }
    return rv;
}

static void io_snapshot_put_cb(struct raft_io_snapshot_put *req, int status)
{
    struct io_wrap *w = req->data;
    struct cm_node *n = w->n;
    struct raft_io_snapshot_put *orig = w->orig;
    raft_io_snapshot_put_cb cb = (raft_io_snapshot_put_cb)w->cb;
    snapshot_failed(n, status);
    if (io_wrap_done(w))
        cb(orig, status);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct cm_node *n = node_of_io(io);
    struct io_wrap *w = io_wrap_new(n, req, (void (*)(void))cb);
    int rv = n->io_snapshot_put(io, trailing, &w->req.put, snapshot, io_snapshot_put_cb);
    if (rv != 0) {
        io_wrap_abandon(w);
        snapshot_failed(n, rv);
    }
    return rv;
}

/* ------------------------------------------------------------------------------------------ */
/* start-up                                                                                    */

static int check_port_free(const char *ip, uint16_t port, const char *what, char *err,
                           size_t errlen)
{
    int e = cm_port_probe(ip, port);
    if (e != 0) {
        snprintf(err, errlen, "cannot listen on the %s port %s:%u: %s", what,
                 ip[0] ? ip : "0.0.0.0", port, strerror(e));
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *path, char *err, size_t errlen)
{
    char tmp[CM_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", tmp, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_identity(struct cm_node *n, bool member, char *err, size_t errlen)
{
    char path[CM_PATH_MAX + 32], tmp[CM_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/node.json", n->cfg->data_dir);
    snprintf(tmp, sizeof tmp, "%s/node.json.tmp", n->cfg->data_dir);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "the data directory %s is not writable: %s", n->cfg->data_dir,
                 strerror(errno));
        return -1;
    }
    fprintf(f, "{\"node_id\":%llu,\"cluster_id\":%u,\"member\":%s}\n",
            (unsigned long long)n->cfg->node_id, n->cfg->cluster_id, member ? "true" : "false");
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The data directory remembers which node and cluster it belongs to, so a config mix-up cannot
 * start node 3 on node 2's log. */
static int check_identity(struct cm_node *n, char *err, size_t errlen)
{
    char path[CM_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/node.json", n->cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return write_identity(n, false, err, errlen);
    char text[512];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char perr[128];
    struct json_object *o = cm_json_parse(text, len, false, perr, sizeof perr);
    uint64_t id = 0, cluster = 0;
    bool member = false;
    if (o == NULL || cm_json_get_u64(o, "node_id", true, UINT64_MAX, &id, perr, sizeof perr) ||
        cm_json_get_u64(o, "cluster_id", true, UINT32_MAX, &cluster, perr, sizeof perr)) {
        json_object_put(o);
        snprintf(err, errlen,
                 "%s is damaged (%s); refusing to start on a data directory of unknown "
                 "identity",
                 path, perr);
        return -1;
    }
    cm_json_get_bool(o, "member", false, &member, perr, sizeof perr);
    json_object_put(o);
    if (id != n->cfg->node_id || cluster != n->cfg->cluster_id) {
        snprintf(err, errlen,
                 "the data directory %s belongs to node %llu of cluster %llu, but the "
                 "config says node %llu of cluster %u; refusing to start",
                 n->cfg->data_dir, (unsigned long long)id, (unsigned long long)cluster,
                 (unsigned long long)n->cfg->node_id, n->cfg->cluster_id);
        return -1;
    }
    n->was_member = member;
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct cm_node *n = s->data;
    cm_node_stop(n, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

int cm_node_init(struct cm_node **out, const struct cm_raft_settings *cfg,
                 const struct cm_fsm_settings *fs, char *err, size_t errlen)
{
    struct cm_node *n = cm_calloc(1, sizeof *n);
    int rc;
    n->cfg = cfg;
    n->fsm_settings = fs;
    cm_log_set_node(cfg->node_id);
    /* request ids: random start so that ids of a previous incarnation, replayed from the log,
     * never match a new proposal */
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &n->next_req, sizeof n->next_req) != sizeof n->next_req)
        n->next_req = (uint64_t)cm_now_ns();
    if (fd >= 0)
        close(fd);
    n->next_req = (n->next_req & 0x7fffffffffffffffULL) | 1;
    cm_map_init(&n->pending);

    if (mkdir_p(cfg->data_dir, err, errlen) != 0 || check_identity(n, err, errlen) != 0)
        goto fail;
    if (check_port_free(cfg->raft_listen_ip, cfg->raft_port, "raft", err, errlen) != 0 ||
        check_port_free(cfg->http_ip, cfg->http_port, "HTTP", err, errlen) != 0)
        goto fail;

    uv_loop_init(&n->loop);
    n->fsm = cm_fsm_new(fs, cfg->node_id);
    n->fsm->on_applied = on_applied;
    n->fsm->on_applied_arg = n;

    char bind[CM_ADDR_MAX + 8];
    snprintf(bind, sizeof bind, "%s:%u", cfg->raft_listen_ip, cfg->raft_port);
    if (cfg->peer_secret[0]) {
        /* only members that prove they hold the peer secret may speak raft to us */
        rc = cm_transport_init(&n->transport, &n->loop, bind, cfg->peer_secret);
        n->auth_transport = true;
        CM_INFO("node", "raft peers authenticate with the cluster's peer secret");
        if (cfg->peer_secret_is_api)
            CM_WARN("node",
                    "raft peers authenticate with the API secret (auth.peer_secret is not set "
                    "or equals auth.secret): every client that can sign requests can also "
                    "speak raft to this node; give every node the same separate "
                    "auth.peer_secret (docs/security.md)");
    } else {
        rc = cm_transport_init_plain(&n->transport, &n->loop, bind);
        CM_WARN("node",
                "raft peer authentication is off (no auth.peer_secret): anyone who can "
                "reach raft port %u can speak raft to this node",
                cfg->raft_port);
    }
    if (rc != 0) {
        snprintf(err, errlen, "raft transport on %s: %s", bind, raft_strerror(rc));
        goto fail;
    }
    rc = raft_uv_init(&n->io, &n->loop, cfg->data_dir, &n->transport);
    if (rc != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", cfg->data_dir, n->io.errmsg);
        goto fail;
    }
    n->io.version = 2; /* enables async snapshots (fsm v3); raft_uv_init leaves it at 1 */
    raft_uv_set_connect_retry_delay(&n->io, 200);
    n->io_append = n->io.append;
    n->io.append = io_append;
    n->io_snapshot_put = n->io.snapshot_put;
    n->io.snapshot_put = io_snapshot_put;

    n->fsm_if.version = 3;
    n->fsm_if.data = n;
    n->fsm_if.apply = fsm_apply;
    n->fsm_if.snapshot = fsm_snapshot;
    n->fsm_if.restore = fsm_restore;
    n->fsm_if.snapshot_finalize = fsm_snapshot_finalize;
    n->fsm_if.snapshot_async = fsm_snapshot_async;

    rc = raft_init(&n->raft, &n->io, &n->fsm_if, cfg->node_id, cfg->raft_addr);
    if (rc != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&n->raft));
        goto fail;
    }
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, cfg->election_ms);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_ms);
    raft_set_pre_vote(&n->raft, true);
    raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing);
    raft_set_install_snapshot_timeout(&n->raft, 30000);

    bool in_maps = false;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        raft_configuration_add(&conf, cfg->peers[i].id, cfg->peers[i].addr, RAFT_VOTER);
        in_maps |= cfg->peers[i].id == cfg->node_id;
    }
    for (size_t i = 0; i < cfg->n_learners; i++) {
        raft_configuration_add(&conf, cfg->learners[i].id, cfg->learners[i].addr, RAFT_STANDBY);
        in_maps |= cfg->learners[i].id == cfg->node_id;
    }
    if (in_maps && cfg->n_peers > 0) {
        rc = raft_bootstrap(&n->raft, &conf);
        if (rc == 0)
            CM_INFO("node", "bootstrapped a new cluster: %zu voter(s), %zu learner(s)",
                    cfg->n_peers, cfg->n_learners);
        else if (rc == RAFT_CANTBOOTSTRAP)
            CM_INFO("node",
                    "found existing raft state in %s: recovering from disk (peers and "
                    "learners of the config file are ignored)",
                    cfg->data_dir);
        else {
            raft_configuration_close(&conf);
            snprintf(err, errlen, "bootstrap: %s", raft_errmsg(&n->raft));
            goto fail;
        }
    } else
        CM_INFO("node",
                "node %llu is not in peers/learners: it starts empty and joins when a "
                "leader adds it with /member/add",
                (unsigned long long)cfg->node_id);
    raft_configuration_close(&conf);

    uint64_t t0 = cm_mono_ms();
    rc = raft_start(&n->raft);
    if (rc != 0) {
        snprintf(err, errlen, "raft start: %s", raft_errmsg(&n->raft));
        goto fail;
    }
    n->raft_started = true;
    CM_INFO("node",
            "raft started in %llu ms: term %llu, %llu entries in the log after snapshot "
            "%llu, listening on %s",
            (unsigned long long)(cm_mono_ms() - t0), (unsigned long long)n->raft.current_term,
            (unsigned long long)(raft_last_index(&n->raft) - n->raft.log.snapshot.last_index),
            (unsigned long long)n->raft.log.snapshot.last_index, bind);

    uv_check_init(&n->loop, &n->check);
    n->check.data = n;
    uv_check_start(&n->check, on_check);
    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(&n->loop, &n->sig_int);
    uv_signal_init(&n->loop, &n->sig_term);
    n->sig_int.data = n->sig_term.data = n;
    uv_signal_start(&n->sig_int, on_signal, SIGINT);
    uv_signal_start(&n->sig_term, on_signal, SIGTERM);

    *out = n;
    return 0;
fail:
    cm_map_free(&n->pending);
    cm_fsm_free(n->fsm);
    free(n);
    *out = NULL;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* shutdown                                                                                    */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle(h);
}

static void on_raft_closed(struct raft *r)
{
    struct cm_node *n = r->data;
    raft_uv_close(&n->io);
    if (n->auth_transport)
        cm_transport_free(&n->transport);
    else
        cm_transport_free_plain(&n->transport);
    uv_walk(&n->loop, walk_close, NULL);
}

/* The layer above closed what it holds on the loop: raft goes next, then every handle. */
static void on_upper_closed(struct cm_node *n)
{
    if (n->raft_started)
        raft_close(&n->raft, on_raft_closed);
    else
        uv_walk(&n->loop, walk_close, NULL);
}

void cm_node_stop(struct cm_node *n, const char *why)
{
    if (n->stopping)
        return;
    n->stopping = true;
    CM_INFO("node", "stopping (%s)", why);
    if (n->upper.stopping) /* the layer above answers what waits on it */
        n->upper.stopping(n, n->upper.arg);
    if (n->change && n->change->cb) { /* raft_close completes the change itself later */
        cm_change_fn cb = n->change->cb;
        n->change->cb = NULL;
        cb(n, n->change->arg, CM_CHANGE_STOPPING, "the node is shutting down");
    }
    for (size_t i = 0; i < n->n_hooks; i++)
        if (n->leader_ready && n->hooks[i].on_follower)
            n->hooks[i].on_follower(n, n->hooks[i].arg);
    n->leader_ready = false;
    for (size_t i = 0; i < n->n_hooks; i++)
        if (n->hooks[i].on_stop)
            n->hooks[i].on_stop(n, n->hooks[i].arg);
    uv_timer_stop(&n->tick);
    uv_check_stop(&n->check);
    if (n->upper.close)
        n->upper.close(n, n->upper.arg, on_upper_closed);
    else
        on_upper_closed(n);
}

int cm_node_run(struct cm_node *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return n->exit_code;
}

void cm_node_free(struct cm_node *n)
{
    if (n == NULL)
        return;
    uv_loop_close(&n->loop);
    /* pendings still registered: free them */
    size_t it = 0;
    void *v;
    while (cm_map_next(&n->pending, &it, NULL, &v)) {
        struct pending *p = v;
        if (!p->in_heap)
            free(p);
    }
    for (size_t i = 0; i < n->heap_n; i++)
        free(n->heap[i]);
    free(n->heap);
    cm_map_free(&n->pending);
    for (unsigned i = 0; i < n->bn; i++)
        raft_free(n->bbufs[i].base);
    free(n->bbufs);
    free(n->bpend);
    if (n->snap_taken)
        cm_fsm_snap_drop(n->snap_taken);
    while (n->io_abandoned) {
        struct io_wrap *w = n->io_abandoned;
        n->io_abandoned = w->next;
        free(w);
    }
    cm_fsm_free(n->fsm);
    free(n);
}
