/*
 * The node: raft wiring, proposals with group commit, linearizable reads, forwarding, membership,
 * the snapshot hooks and the view of raft that /stat shows. See node.h for the model.
 *
 * Everything here runs on the loop thread except cm_node_submit (any thread) and
 * fsm_snapshot_async (a libuv worker thread, which touches only the snapshot copy).
 */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft/uv.h>
#include <uv.h>

#include "../client/httpc.h"
#include "../fsm/mod_cluster.h"
#include "../fsm/mod_members.h"
#include "../http/errors.h"
#include "../http/router.h"
#include "../http/server.h"
#include "../ops/ops.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/map.h"
#include "../util/net.h"
#include "../util/timeutil.h"
#include "../security/auth.h"
#include "transport.h"

#define BATCH_MAX_ENTRIES 1024
#define BATCH_MAX_BYTES (8u << 20)
#define TICK_MS 100
#define MAX_HOPS 3
#define MAX_HOOKS 16

/* Internal states of raft_progress (canonical raft 0.15 progress.h). */
enum { PROGRESS_PROBE = 0, PROGRESS_PIPELINE = 1, PROGRESS_SNAPSHOT = 2 };

struct pending {
    uint64_t req_id;
    uint64_t index; /* log index once appended; 0 before */
    uint64_t deadline_ms;
    struct cm_job *job; /* set for job proposals; cleared when the job is answered elsewhere */
    bool is_job;
    cm_job_applied_fn jcb;
    cm_applied_fn cb;
    void *arg;
    bool resolved;
    bool in_heap;
    struct pending *fprev, *fnext;
};

struct member_change {
    struct raft_change req;
    struct cm_node *node;
    struct cm_job *job;
    uint64_t id;
    char raft_addr[CM_ADDR_MAX];
    int role;
    int step;
};

struct cm_node {
    struct cm_config *cfg;
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm_if;
    struct cm_fsm *fsm;
    struct cm_http *http;
    struct cm_httpc *httpc;
    uv_async_t wake;
    uv_check_t check;
    uv_timer_t tick;
    uv_signal_t sig_int, sig_term;
    bool raft_started;
    bool auth_transport;
    atomic_uint queued; /* jobs handed to the loop and not yet answered */

    pthread_mutex_t qlock;
    struct cm_job *q_head, *q_tail;
    bool q_closed;
    uint64_t next_job_id;

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

    /* jobs on the loop */
    struct cm_job *all_head, *all_tail;
    struct cm_jlist write_wait;
    struct cm_jlist reads_next, reads_inflight;
    bool rb_inflight;
    struct raft_barrier rb_req;
    struct cm_jlist ri_next, ri_inflight;
    bool ri_busy;
    struct cm_jlist apply_wait;

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
    uint64_t last_probe_ms;
    unsigned probes_inflight;

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
    void *ext[CM_EXT_MAX];
};

static void dispatch(struct cm_node *n, struct cm_job *j);
static void leader_barrier_cb(struct raft_barrier *req, int status);
static void flush_batch(struct cm_node *n);

/* ------------------------------------------------------------------------------------------ */
/* small accessors                                                                            */

struct cm_fsm *cm_node_fsm(struct cm_node *n)
{
    return n->fsm;
}
const struct cm_config *cm_node_cfg(struct cm_node *n)
{
    return n->cfg;
}
struct raft *cm_node_raft(struct cm_node *n)
{
    return &n->raft;
}
struct cm_httpc *cm_node_httpc(struct cm_node *n)
{
    return n->httpc;
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
/* job bookkeeping and replies                                                                */

static void all_push(struct cm_node *n, struct cm_job *j)
{
    j->aprev = n->all_tail;
    j->anext = NULL;
    if (n->all_tail)
        n->all_tail->anext = j;
    else
        n->all_head = j;
    n->all_tail = j;
}

static void all_remove(struct cm_node *n, struct cm_job *j)
{
    if (j->aprev == NULL && n->all_head != j)
        return; /* not on the list */
    if (j->aprev)
        j->aprev->anext = j->anext;
    else
        n->all_head = j->anext;
    if (j->anext)
        j->anext->aprev = j->aprev;
    else
        n->all_tail = j->aprev;
    j->aprev = j->anext = NULL;
}

static void job_detach(struct cm_job *j)
{
    cm_jlist_remove(j);
    all_remove(j->node, j);
    if (j->backref) {
        *j->backref = NULL;
        j->backref = NULL;
    }
}

void cm_reply_prepared(struct cm_job *j)
{
    if (j->state != CM_JOB_IN_LOOP)
        return;
    job_detach(j);
    j->state = CM_JOB_REPLIED;
    atomic_fetch_sub_explicit(&j->node->queued, 1, memory_order_relaxed);
    cm_http_resume(j);
}

void cm_reply(struct cm_job *j, int status, const char *ctype, char *body, size_t len)
{
    cm_job_set_response(j, status, ctype, body, len);
    cm_reply_prepared(j);
}

void cm_reply_json(struct cm_job *j, struct json_object *o)
{
    size_t len;
    char *s = cm_json_render_put(o, &len);
    cm_reply(j, 200, "application/json", s, len);
}

void cm_reply_empty(struct cm_job *j)
{
    cm_reply(j, 200, NULL, NULL, 0);
}

void cm_reply_code(struct cm_job *j, int code)
{
    cm_job_set_code(j, code);
    cm_reply_prepared(j);
}

void cm_reply_error(struct cm_job *j, int status, const char *msg, const char *code)
{
    cm_job_set_error(j, status, msg, code);
    cm_reply_prepared(j);
}

/* ------------------------------------------------------------------------------------------ */
/* submission from HTTP threads                                                                */

int cm_node_submit(struct cm_node *n, struct cm_job *j)
{
    if (atomic_load_explicit(&n->queued, memory_order_relaxed) >= n->cfg->max_queued_requests)
        return CM_SUBMIT_BUSY;
    pthread_mutex_lock(&n->qlock);
    if (n->q_closed) {
        pthread_mutex_unlock(&n->qlock);
        return CM_SUBMIT_STOPPING;
    }
    atomic_fetch_add_explicit(&n->queued, 1, memory_order_relaxed);
    /* Suspend before the loop can see the job, so its resume always comes after. */
    cm_http_suspend(j);
    j->state = CM_JOB_IN_LOOP;
    j->qnext = NULL;
    if (n->q_tail)
        n->q_tail->qnext = j;
    else
        n->q_head = j;
    n->q_tail = j;
    pthread_mutex_unlock(&n->qlock);
    uv_async_send(&n->wake);
    return CM_SUBMIT_OK;
}

static struct cm_job *take_queue(struct cm_node *n, bool close)
{
    pthread_mutex_lock(&n->qlock);
    struct cm_job *j = n->q_head;
    n->q_head = n->q_tail = NULL;
    if (close)
        n->q_closed = true;
    pthread_mutex_unlock(&n->qlock);
    return j;
}

static void on_wake(uv_async_t *a)
{
    struct cm_node *n = a->data;
    struct cm_job *j = take_queue(n, false);
    uint64_t now = cm_mono_ms();
    while (j) {
        struct cm_job *next = j->qnext;
        j->qnext = NULL;
        j->deadline_ms = now + n->cfg->propose_timeout_ms;
        all_push(n, j);
        dispatch(n, j);
        j = next;
    }
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

bool cm_reply_failed(struct cm_job *j, int status, const struct cm_result *res)
{
    if (status != CM_APPLIED) {
        cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
        return true;
    }
    if (res && res->code) {
        cm_reply_code(j, res->code);
        return true;
    }
    return false;
}

static void default_job_applied(struct cm_job *j, int status, struct cm_result *res)
{
    if (!cm_reply_failed(j, status, res))
        cm_reply_empty(j);
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
    if (p->is_job) {
        struct cm_job *j = p->job;
        if (j) {
            j->backref = NULL;
            p->job = NULL;
            if (status == CM_PROPOSE_FAILED && !cm_node_is_leader(n) && !n->stopping)
                cm_node_redispatch(n, j); /* never appended: let the new leader do it */
            else if (p->jcb)
                p->jcb(j, status, res);
            else
                default_job_applied(j, status, res);
        }
    } else if (p->cb)
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

void cm_job_propose(struct cm_job *j, uint8_t module, uint8_t op, struct cm_buf *payload,
                    cm_job_applied_fn cb)
{
    struct cm_node *n = j->node;
    struct pending *p = propose(n, module, op, payload);
    p->is_job = true;
    p->job = j;
    p->jcb = cb;
    j->backref = (void **)&p->job;
    if (n->bn == 0 || n->bpend[n->bn - 1] != p) /* encoding failed */
        resolve(n, p, CM_PROPOSE_FAILED, NULL);
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

/* ------------------------------------------------------------------------------------------ */
/* dispatch, forwarding, reads                                                                 */

static void forward_done(struct cm_httpc_req *r)
{
    struct cm_job *j = r->data;
    if (j != NULL) {
        j->backref = NULL;
        if (r->status == 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "forwarding to the leader failed: %s", r->error);
            cm_reply_error(j, 502, msg, NULL);
        } else {
            size_t len;
            char *body = cm_buf_steal(&r->resp, &len);
            if (len == 0) {
                free(body);
                body = NULL;
            }
            const char *ct = r->ctype[0] ? (strstr(r->ctype, "json") ? "application/json"
                                                                     : "text/plain; charset=utf-8")
                                         : NULL;
            cm_reply(j, (int)r->status, ct, body, len);
        }
    }
    cm_httpc_req_free(r);
}

static void forward(struct cm_node *n, struct cm_job *j)
{
    uint64_t lid = cm_node_leader_id(n);
    const char *addr = lid ? cm_members_http(n->fsm, lid) : NULL;
    if (addr == NULL || lid == n->cfg->node_id) {
        cm_reply_code(j, CM_ERR_NO_LEADER);
        return;
    }
    if (j->hops >= MAX_HOPS) {
        cm_reply_error(j, 907, "no leader (forwarding loop between nodes)", NULL);
        return;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s%s%s", n->cfg->node_protocol, addr, j->uri);
    struct cm_httpc_req *r = cm_httpc_req_new(cm_method_name(j->method), url);
    char h[512];
    cm_httpc_req_header(r, "Content-Type: application/json");
    snprintf(h, sizeof h, "X-Real-Ip: %s", j->client_ip);
    cm_httpc_req_header(r, h);
    snprintf(h, sizeof h, "X-Forwarded-For: %s%s%s", j->xff ? j->xff : "", j->xff ? ", " : "",
             j->peer_ip);
    cm_httpc_req_header(r, h);
    snprintf(h, sizeof h, "X-Clustermgr-Hops: %d", j->hops + 1);
    cm_httpc_req_header(r, h);
    if (j->auth_token) {
        snprintf(h, sizeof h, "BLOB-STORE-AUTH-TOKEN: %s", j->auth_token);
        cm_httpc_req_header(r, h);
    }
    char rid[130];
    cm_reqlog_id(j, rid, sizeof rid); /* the leader logs and audits it under the same id */
    snprintf(h, sizeof h, "X-Request-Id: %s", rid);
    cm_httpc_req_header(r, h);
    if (j->body.len)
        cm_httpc_req_body(r, cm_strndup(j->body.data, j->body.len), j->body.len);
    r->timeout_ms = (long)n->cfg->propose_timeout_ms + 2000;
    r->done = forward_done;
    r->data = j;
    all_remove(n, j); /* the forwarded request carries its own timeout */
    j->backref = &r->data;
    n->stats.forwarded++;
    cm_httpc_submit(n->httpc, r);
}

static void run_handler(struct cm_job *j)
{
    j->route->handle(j);
}

/* j->read_index of a write job on the leader: it waited for a read barrier (write jobs on the
 * leader use no read index otherwise) */
#define WRITE_CONFIRMED UINT64_MAX

bool cm_node_write_confirmed(struct cm_job *j)
{
    if (j->read_index == WRITE_CONFIRMED)
        return true;
    cm_jlist_push(&j->node->reads_next, j);
    return false;
}

static void dispatch(struct cm_node *n, struct cm_job *j)
{
    int flags = j->route->flags;
    if (n->stopping) {
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        return;
    }
    if (flags & CM_R_LOCAL) {
        run_handler(j);
        return;
    }
    if (n->removed) {
        cm_reply_error(j, 503, "this node was removed from the cluster and no longer serves", NULL);
        return;
    }
    if (n->fsm->blocked_need) { /* its state lags the log: no read or write can be right */
        char why[200];
        cm_node_ready(n, why, sizeof why);
        cm_reply_error(j, 503, why, NULL);
        return;
    }
    if (flags & CM_R_WRITE) {
        j->read_index = 0; /* not confirmed by a barrier yet */
        if (!cm_node_is_leader(n))
            forward(n, j);
        else if (!n->leader_ready)
            cm_jlist_push(&n->write_wait, j);
        else
            run_handler(j);
        return;
    }
    /* reads */
    if (j->stale) {
        run_handler(j);
        return;
    }
    if (cm_node_is_leader(n))
        cm_jlist_push(&n->reads_next, j);
    else if (j->route->flags & CM_R_INTERNAL)
        cm_reply_code(j, CM_ERR_NO_LEADER); /* a read-index request reached a non-leader */
    else if (cm_node_leader_id(n) == 0)
        cm_reply_code(j, CM_ERR_NO_LEADER);
    else
        cm_jlist_push(&n->ri_next, j);
}

void cm_node_redispatch(struct cm_node *n, struct cm_job *j)
{
    cm_jlist_remove(j);
    dispatch(n, j);
}

static void read_barrier_cb(struct raft_barrier *req, int status)
{
    struct cm_node *n = req->data;
    n->rb_inflight = false;
    struct cm_jlist batch = {0};
    cm_jlist_splice(&batch, &n->reads_inflight);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&batch)) != NULL) {
        if (status == 0) {
            if (j->route->flags & CM_R_WRITE) /* a write that changes nothing: answer now */
                j->read_index = WRITE_CONFIRMED;
            run_handler(j);
        } else
            dispatch(n, j);
    }
}

static void start_read_barrier(struct cm_node *n)
{
    if (n->rb_inflight || n->reads_next.n == 0 || !cm_node_is_leader(n))
        return;
    n->rb_req.data = n;
    int rc = raft_barrier(&n->raft, &n->rb_req, read_barrier_cb);
    if (rc != 0) {
        CM_WARN("raft", "read barrier failed: %s", raft_strerror(rc));
        struct cm_job *j;
        while ((j = cm_jlist_pop(&n->reads_next)) != NULL)
            cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
        return;
    }
    n->stats.barriers++;
    n->rb_inflight = true;
    if (n->cfg->max_reads_per_barrier == 0)
        cm_jlist_splice(&n->reads_inflight, &n->reads_next);
    else
        for (unsigned k = 0; k < n->cfg->max_reads_per_barrier && n->reads_next.head; k++)
            cm_jlist_push(&n->reads_inflight, cm_jlist_pop(&n->reads_next));
}

static void release_applied(struct cm_node *n)
{
    uint64_t applied = n->raft.last_applied;
    while (n->apply_wait.head && n->apply_wait.head->read_index <= applied) {
        struct cm_job *j = cm_jlist_pop(&n->apply_wait);
        run_handler(j);
    }
}

static void read_index_done(struct cm_httpc_req *r)
{
    struct cm_node *n = r->data;
    n->ri_busy = false;
    uint64_t index = 0;
    bool ok = false;
    if (r->status == 200) {
        char err[128];
        struct json_object *o =
            cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err, sizeof err);
        ok = o && cm_json_get_u64(o, "index", true, UINT64_MAX, &index, err, sizeof err) == 0;
        json_object_put(o);
    }
    struct cm_jlist batch = {0};
    cm_jlist_splice(&batch, &n->ri_inflight);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&batch)) != NULL) {
        if (!ok) {
            if (n->stopping || r->status != 0 || cm_node_leader_id(n) == 0)
                cm_reply_code(j, r->status == 907 || cm_node_leader_id(n) == 0
                                     ? CM_ERR_NO_LEADER
                                     : CM_ERR_RAFT_READ_INDEX);
            else
                cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
            continue;
        }
        j->read_index = index;
        cm_jlist_push(&n->apply_wait, j);
    }
    if (!ok && r->status == 0)
        CM_WARN("read", "read-index request to the leader failed: %s", r->error);
    cm_httpc_req_free(r);
    release_applied(n);
}

/* Node-to-node requests carry a token like any client's when auth is on. */
void cm_node_internal_headers(struct cm_node *n, struct cm_httpc_req *r, const char *path,
                              const char *query)
{
    cm_httpc_req_header(r, "X-Clustermgr-Internal: 1");
    if (n->cfg->auth_enable) {
        char tok[CM_AUTH_TOKEN_LEN + 1], h[64 + CM_AUTH_TOKEN_LEN];
        cm_auth_token(path, query, cm_now_ns() / 1000000000LL, n->cfg->auth_secret, tok);
        snprintf(h, sizeof h, "%s: %s", CM_AUTH_HEADER, tok);
        cm_httpc_req_header(r, h);
    }
}

static void start_read_index(struct cm_node *n)
{
    if (n->ri_busy || n->ri_next.n == 0)
        return;
    if (cm_node_is_leader(n)) { /* became leader meanwhile */
        struct cm_job *j;
        while ((j = cm_jlist_pop(&n->ri_next)) != NULL)
            cm_jlist_push(&n->reads_next, j);
        return;
    }
    const char *addr = cm_node_leader_http(n);
    if (addr == NULL) {
        struct cm_job *j;
        while ((j = cm_jlist_pop(&n->ri_next)) != NULL)
            cm_reply_code(j, CM_ERR_NO_LEADER);
        return;
    }
    char url[512];
    snprintf(url, sizeof url, "%s%s/internal/readindex", n->cfg->node_protocol, addr);
    struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
    cm_node_internal_headers(n, r, "/internal/readindex", "");
    r->timeout_ms = (long)n->cfg->propose_timeout_ms;
    r->done = read_index_done;
    r->data = n;
    n->ri_busy = true;
    n->stats.read_index_requests++;
    cm_jlist_splice(&n->ri_inflight, &n->ri_next);
    cm_httpc_submit(n->httpc, r);
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
        const char *addr = cm_config_node_http(n->cfg, id);
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
    struct cm_jlist waiting = {0};
    cm_jlist_splice(&waiting, &n->write_wait);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&waiting)) != NULL)
        dispatch(n, j);
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
    struct cm_jlist waiting = {0};
    cm_jlist_splice(&waiting, &n->write_wait);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&waiting)) != NULL)
        dispatch(n, j);
    if (n->change && n->change->job) {
        /* the change callback reports the outcome; nothing to do here */
    }
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

/* A removed member is not told: the leader stops replicating to it before the configuration
 * that drops it reaches it, so it keeps its old configuration and campaigns in vain. When a
 * member has had no leader for a while it asks the other members; if the leader answers that
 * this node is not in the committed configuration, the node stops serving. */
static void probe_done(struct cm_httpc_req *r)
{
    struct cm_node *n = r->data;
    n->probes_inflight--;
    if (r->status == 200 && !n->removed && !n->stopping) {
        char err[128];
        struct json_object *o =
            cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err, sizeof err);
        bool is_leader = false, member = true;
        uint64_t term = 0;
        if (o && cm_json_get_bool(o, "is_leader", true, &is_leader, err, sizeof err) == 0 &&
            cm_json_get_bool(o, "member", true, &member, err, sizeof err) == 0 &&
            cm_json_get_u64(o, "term", true, UINT64_MAX, &term, err, sizeof err) == 0 &&
            is_leader && !member && term >= n->raft.current_term) {
            n->removed = true;
            CM_WARN("node",
                    "the leader (%s) says this node (id %llu) is no longer in the cluster "
                    "configuration: it stops serving requests (add it back with "
                    "/member/add, or wipe its data directory to reuse the host)",
                    r->url, (unsigned long long)n->cfg->node_id);
        }
        json_object_put(o);
    }
    cm_httpc_req_free(r);
}

static void probe_removal(struct cm_node *n)
{
    uint64_t now = cm_mono_ms();
    if (!n->was_member || n->removed || n->probes_inflight || n->no_leader_since_ms == 0 ||
        cm_node_leader_id(n) != 0 || now - n->no_leader_since_ms < 2ull * n->cfg->election_ms ||
        now - n->last_probe_ms < 2000)
        return;
    n->last_probe_ms = now;
    struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t id = c->servers[i].id;
        const char *addr = id == n->cfg->node_id ? NULL : cm_members_http(n->fsm, id);
        if (addr == NULL)
            continue;
        char url[512];
        snprintf(url, sizeof url, "%s%s/internal/member?id=%llu", n->cfg->node_protocol, addr,
                 (unsigned long long)n->cfg->node_id);
        struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
        char q[40];
        snprintf(q, sizeof q, "id=%llu", (unsigned long long)n->cfg->node_id);
        cm_node_internal_headers(n, r, "/internal/member", q);
        r->timeout_ms = 2000;
        r->done = probe_done;
        r->data = n;
        n->probes_inflight++;
        cm_httpc_submit(n->httpc, r);
    }
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
    start_read_barrier(n);
    start_read_index(n);
    release_applied(n);
}

static void on_tick(uv_timer_t *t)
{
    struct cm_node *n = t->data;
    uint64_t now = cm_mono_ms();
    /* jobs past their deadline */
    while (n->all_head && n->all_head->deadline_ms <= now) {
        struct cm_job *j = n->all_head;
        n->stats.jobs_timed_out++;
        if (j->route->flags & CM_R_WRITE)
            cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
        else
            cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
    }
    /* node-internal proposals past their deadline */
    while (n->pf_head && n->pf_head->deadline_ms <= now)
        resolve(n, n->pf_head, CM_PROPOSE_TIMEOUT, NULL);
    for (size_t i = 0; i < n->n_hooks; i++)
        if (n->hooks[i].on_tick)
            n->hooks[i].on_tick(n, n->hooks[i].arg);
    probe_removal(n);
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
    struct cm_job *j = mc->job;
    if (j) {
        j->backref = NULL;
        if (status == 0)
            cm_reply_empty(j);
        else {
            char msg[256];
            snprintf(msg, sizeof msg, "%s: %s", what, raft_strerror(status));
            cm_reply_error(j, 500, msg, "InternalServerError");
        }
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

static struct member_change *change_new(struct cm_node *n, struct cm_job *j, uint64_t id)
{
    struct member_change *mc = cm_calloc(1, sizeof *mc);
    mc->node = n;
    mc->job = j;
    mc->id = id;
    mc->req.data = mc;
    j->backref = (void **)&mc->job;
    all_remove(n, j); /* promotion can take several catch-up rounds: no propose timeout */
    n->change = mc;
    return mc;
}

void cm_node_member_add(struct cm_node *n, struct cm_job *j, uint64_t id, const char *raft_addr,
                        const char *http_addr, bool learner)
{
    if (find_server(n, id, raft_addr) >= 0) {
        cm_reply_code(j, CM_ERR_DUPLICATED_MEMBER);
        return;
    }
    if (n->change) {
        cm_reply_error(j, 409, "another membership change is in progress; retry when it is done",
                       NULL);
        return;
    }
    if (http_addr && http_addr[0]) {
        struct cm_buf b = {0};
        cm_members_enc_set_http(&b, id, http_addr);
        cm_node_propose(n, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, &b, members_addr_done, NULL);
    }
    struct member_change *mc = change_new(n, j, id);
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

void cm_node_member_remove(struct cm_node *n, struct cm_job *j, uint64_t id)
{
    if (find_server(n, id, NULL) < 0) {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    if (id == n->cfg->node_id) {
        cm_reply_code(j, CM_ERR_REQUEST_NOT_ALLOW);
        return;
    }
    if (n->change) {
        cm_reply_error(j, 409, "another membership change is in progress; retry when it is done",
                       NULL);
        return;
    }
    struct member_change *mc = change_new(n, j, id);
    CM_INFO("raft", "removing member %llu", (unsigned long long)id);
    int rc = raft_remove(&n->raft, &mc->req, id, remove_cb);
    if (rc != 0) {
        char what[96];
        snprintf(what, sizeof what, "remove member %llu", (unsigned long long)id);
        change_finish(mc, rc, what);
    }
}

void cm_node_member_promote(struct cm_node *n, struct cm_job *j, uint64_t id)
{
    int idx = find_server(n, id, NULL);
    if (idx < 0) {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    if (n->raft.configuration.servers[idx].role == RAFT_VOTER) {
        cm_reply_empty(j);
        return;
    }
    if (n->change) {
        cm_reply_error(j, 409, "another membership change is in progress; retry when it is done",
                       NULL);
        return;
    }
    struct member_change *mc = change_new(n, j, id);
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

void cm_node_transfer(struct cm_node *n, struct cm_job *j, uint64_t id)
{
    int idx = find_server(n, id, NULL);
    if (idx < 0) {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    if (id == n->cfg->node_id) {
        cm_reply_empty(j);
        return;
    }
    if (n->raft.configuration.servers[idx].role != RAFT_VOTER) {
        cm_reply_error(j, 400, "Illegal Arguments: the target is not a voter", NULL);
        return;
    }
    if (n->transfer_busy) {
        cm_reply_empty(j);
        return;
    }
    n->transfer_req.data = n;
    int rc = raft_transfer(&n->raft, &n->transfer_req, id, transfer_cb);
    if (rc != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "leadership transfer failed: %s", raft_strerror(rc));
        cm_reply_error(j, 500, msg, "InternalServerError");
        return;
    }
    n->transfer_busy = true;
    CM_INFO("raft", "transferring leadership to %llu", (unsigned long long)id);
    cm_reply_empty(j);
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

int cm_node_init(struct cm_node **out, struct cm_config *cfg, char *err, size_t errlen)
{
    struct cm_node *n = cm_calloc(1, sizeof *n);
    int rc;
    n->cfg = cfg;
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
    pthread_mutex_init(&n->qlock, NULL);

    if (mkdir_p(cfg->data_dir, err, errlen) != 0 || check_identity(n, err, errlen) != 0)
        goto fail;
    if (check_port_free(cfg->raft_listen_ip, cfg->raft_port, "raft", err, errlen) != 0 ||
        check_port_free(cfg->http_ip, cfg->http_port, "HTTP", err, errlen) != 0)
        goto fail;

    uv_loop_init(&n->loop);
    n->fsm = cm_fsm_new(&cfg->fsm, cfg->node_id);
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

    n->httpc = cm_httpc_new(&n->loop);
    if (cfg->tls_cert[0])
        cm_httpc_set_tls(n->httpc, cfg->tls_ca, cfg->tls_cert, cfg->tls_key);
    uv_async_init(&n->loop, &n->wake, on_wake);
    n->wake.data = n;
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

    cm_jobs_init(n);
    if (cm_http_start(&n->http, n, cfg, err, errlen) != 0) {
        n->exit_code = 1;
        *out = n;
        return -2; /* raft is running: the caller must stop the node */
    }
    CM_INFO("node", "serving HTTP on %s", cfg->bind_addr);
    *out = n;
    return 0;
fail:
    cm_map_free(&n->pending);
    cm_fsm_free(n->fsm);
    pthread_mutex_destroy(&n->qlock);
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

static void on_httpc_closed(void *arg)
{
    struct cm_node *n = arg;
    n->httpc = NULL;
    if (n->raft_started)
        raft_close(&n->raft, on_raft_closed);
    else
        uv_walk(&n->loop, walk_close, NULL);
}

static void fail_all_jobs(struct cm_node *n)
{
    struct cm_job *j = take_queue(n, true);
    while (j) {
        struct cm_job *next = j->qnext;
        j->qnext = NULL;
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        j = next;
    }
    while (n->all_head)
        cm_reply_error(n->all_head, 503, "the node is shutting down", NULL);
}

void cm_node_stop(struct cm_node *n, const char *why)
{
    if (n->stopping)
        return;
    n->stopping = true;
    CM_INFO("node", "stopping (%s)", why);
    if (n->http)
        cm_http_quiesce(n->http);
    /* Forwarded jobs and jobs in membership changes are off the deadline list; httpc's close
     * completes the former, the latter are answered below through the all-list or by raft_close. */
    fail_all_jobs(n);
    if (n->change && n->change->job) {
        struct cm_job *j = n->change->job;
        j->backref = NULL;
        n->change->job = NULL;
        cm_reply_error(j, 503, "the node is shutting down", NULL);
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
    if (n->httpc)
        cm_httpc_close(n->httpc, on_httpc_closed, n);
    else
        on_httpc_closed(n);
}

int cm_node_run(struct cm_node *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    /* every job has been answered: remaining ones were failed on stop */
    fail_all_jobs(n);
    if (n->http) {
        cm_http_stop(n->http);
        n->http = NULL;
    }
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
    pthread_mutex_destroy(&n->qlock);
    free(n);
}
