/*
 * The dispatch layer: the job queue from the front end, dispatch to route handlers, forwarding
 * to the leader, read barriers and read indexes, proposals and membership changes on behalf of
 * jobs, deadlines, removal probes, and the replies. See dispatch.h for the model.
 *
 * Everything here runs on the loop thread except cm_node_submit (any thread).
 */
#include "dispatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "../client/httpc.h"
#include "../client/plink.h"
#include "fwdwire.h"
#include "../fsm/mod_members.h"
#include "../http/errors.h"
#include "../http/router.h"
#include "../security/auth.h"
#include "../util/wake.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/timeutil.h"

#define MAX_HOPS 3
#define MAX_PROBES 16
/* Forwarded write batches (docs/formats.md): at most this many on their way to the leader at
 * once; the writes that arrive meanwhile wait and go together in the next one. */
#define FWD_MAX_INFLIGHT 2
#define FWD_MAX_BYTES (4u << 20)   /* bodies per batch (a first write always goes) */
#define FWD_ALONE_BYTES (1u << 20) /* a write with a larger body is forwarded on its own */
#define FWD_LEGACY_MS 60000        /* a leader without the batch route: one by one this long */

struct job_proposal;

struct cm_dispatch {
    struct cm_node *node;
    const struct cm_config *cfg;
    struct cm_httpc *httpc;
    struct cm_plink *plink; /* to other members over plain HTTP, on the loop itself */
    struct cm_wake wake;
    atomic_uint queued; /* jobs handed to the loop and not yet answered */
    void (*quiesce)(void *arg);
    void *quiesce_arg;

    pthread_mutex_t qlock;
    struct cm_job *q_head, *q_tail;
    bool q_closed;

    /* jobs on the loop */
    struct cm_job *all_head, *all_tail; /* by deadline */
    struct cm_jlist write_wait;         /* writes waiting for the new leader to be ready */
    struct cm_jlist reads_next, reads_inflight;
    bool rb_inflight;
    struct raft_barrier rb_req;
    struct cm_jlist ri_next, ri_inflight;
    bool ri_busy;
    struct cm_jlist apply_wait; /* reads waiting until this node applied their read index */
    struct cm_jlist fwd_next;   /* writes for the leader, to go in the next batch */
    unsigned fwd_inflight;      /* batches on their way to the leader */
    uint64_t fwd_legacy_until_ms;
    /* where the HTTP workers send the writes they read (worker_forward), published each turn */
    pthread_mutex_t hint_mu;
    bool hint_ok;
    char hint_url[320];
    atomic_ullong w_forwarded, w_batches; /* folded into stats each turn */
    struct job_proposal *proposals;

    uint64_t last_probe_ms;
    unsigned probes_inflight;

    struct cm_dispatch_stats stats;
};

static void dispatch(struct cm_dispatch *d, struct cm_job *j);

static struct cm_dispatch *dispatch_of(struct cm_node *n)
{
    return cm_node_ext(n, CM_EXT_DISPATCH);
}

struct cm_httpc *cm_node_httpc(struct cm_node *n)
{
    return dispatch_of(n)->httpc;
}

/* A request to another member: on the loop's own pipelined connections when it can (plain
 * HTTP to an IP address), else through the client thread (TLS, names). */
static void submit_peer(struct cm_dispatch *d, struct cm_httpc_req *r)
{
    if (d->plink == NULL || cm_plink_submit(d->plink, r) != 0)
        cm_httpc_submit(d->httpc, r);
}

const struct cm_dispatch_stats *cm_dispatch_stats(struct cm_node *n)
{
    return &dispatch_of(n)->stats;
}

void cm_reqlog_id(const struct cm_job *j, char *out, size_t cap)
{
    if (j->req_id_hdr && j->req_id_hdr[0])
        snprintf(out, cap, "%s", j->req_id_hdr);
    else
        snprintf(out, cap, "%llu-%llu", (unsigned long long)cm_node_id(j->node),
                 (unsigned long long)j->id);
}

/* ------------------------------------------------------------------------------------------ */
/* job bookkeeping and replies                                                                */

static void all_push(struct cm_dispatch *d, struct cm_job *j)
{
    j->aprev = d->all_tail;
    j->anext = NULL;
    if (d->all_tail)
        d->all_tail->anext = j;
    else
        d->all_head = j;
    d->all_tail = j;
}

static void all_remove(struct cm_dispatch *d, struct cm_job *j)
{
    if (j->aprev == NULL && d->all_head != j)
        return; /* not on the list */
    if (j->aprev)
        j->aprev->anext = j->anext;
    else
        d->all_head = j->anext;
    if (j->anext)
        j->anext->aprev = j->aprev;
    else
        d->all_tail = j->aprev;
    j->aprev = j->anext = NULL;
}

static void job_detach(struct cm_job *j)
{
    cm_jlist_remove(j);
    all_remove(dispatch_of(j->node), j);
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
    atomic_fetch_sub_explicit(&dispatch_of(j->node)->queued, 1, memory_order_relaxed);
    if (j->on_done)
        j->on_done(j);
    else
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

static bool worker_forward(struct cm_dispatch *d, struct cm_job *j);

int cm_node_submit(struct cm_node *n, struct cm_job *j)
{
    struct cm_dispatch *d = dispatch_of(n);
    if (d == NULL)
        return CM_SUBMIT_STOPPING;
    bool busy =
        atomic_load_explicit(&d->queued, memory_order_relaxed) >= d->cfg->max_queued_requests;
    if (!busy && worker_forward(d, j))
        return CM_SUBMIT_OK;
    if (j->args_later) { /* not going to the leader as it is: parsed here, before the 503 */
        j->args_later = false;
        if (j->route->parse && j->route->parse(j) != 0)
            return CM_SUBMIT_ANSWERED;
    }
    if (busy)
        return CM_SUBMIT_BUSY;
    pthread_mutex_lock(&d->qlock);
    if (d->q_closed) {
        pthread_mutex_unlock(&d->qlock);
        return CM_SUBMIT_STOPPING;
    }
    atomic_fetch_add_explicit(&d->queued, 1, memory_order_relaxed);
    j->state = CM_JOB_IN_LOOP;
    j->qnext = NULL;
    if (d->q_tail)
        d->q_tail->qnext = j;
    else
        d->q_head = j;
    d->q_tail = j;
    pthread_mutex_unlock(&d->qlock);
    cm_wake_send(&d->wake);
    return CM_SUBMIT_OK;
}

static struct cm_job *take_queue(struct cm_dispatch *d, bool close)
{
    pthread_mutex_lock(&d->qlock);
    struct cm_job *j = d->q_head;
    d->q_head = d->q_tail = NULL;
    if (close)
        d->q_closed = true;
    pthread_mutex_unlock(&d->qlock);
    return j;
}

static void on_wake(struct cm_wake *a)
{
    struct cm_dispatch *d = a->data;
    struct cm_job *j = take_queue(d, false);
    uint64_t now = cm_mono_ms();
    while (j) {
        struct cm_job *next = j->qnext;
        j->qnext = NULL;
        j->deadline_ms = now + d->cfg->propose_timeout_ms;
        all_push(d, j);
        dispatch(d, j);
        j = next;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* proposals on behalf of jobs                                                                 */

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

/* A job's proposal: the job is cleared through its backref when it is answered elsewhere
 * (deadline, stop) before the outcome is known. Those still pending when the loop ends are
 * freed with the layer. */
struct job_proposal {
    struct cm_job *job;
    cm_job_applied_fn cb;
    struct job_proposal *prev, *next;
};

static void jp_unlink(struct cm_dispatch *d, struct job_proposal *jp)
{
    if (jp->prev)
        jp->prev->next = jp->next;
    else
        d->proposals = jp->next;
    if (jp->next)
        jp->next->prev = jp->prev;
}

static void job_applied(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    struct job_proposal *jp = arg;
    struct cm_job *j = jp->job;
    cm_job_applied_fn cb = jp->cb;
    jp_unlink(dispatch_of(n), jp);
    free(jp);
    if (j == NULL)
        return;
    j->backref = NULL;
    if (status == CM_PROPOSE_FAILED && !cm_node_is_leader(n) && !cm_node_stopping(n))
        cm_node_redispatch(n, j); /* never appended: let the new leader do it */
    else if (cb)
        cb(j, status, res);
    else if (!cm_reply_failed(j, status, res))
        cm_reply_empty(j);
}

void cm_job_propose(struct cm_job *j, uint8_t module, uint8_t op, struct cm_buf *payload,
                    cm_job_applied_fn cb)
{
    struct cm_dispatch *d = dispatch_of(j->node);
    struct job_proposal *jp = cm_malloc(sizeof *jp);
    jp->job = j;
    jp->cb = cb;
    jp->prev = NULL;
    jp->next = d->proposals;
    if (d->proposals)
        d->proposals->prev = jp;
    d->proposals = jp;
    j->backref = (void **)&jp->job;
    cm_node_propose(j->node, module, op, payload, job_applied, jp);
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

/* The leader's HTTP address; NULL when there is no leader or it is this node. */
static const char *leader_addr(struct cm_dispatch *d)
{
    struct cm_node *n = d->node;
    uint64_t lid = cm_node_leader_id(n);
    if (lid == 0 || lid == d->cfg->node_id)
        return NULL;
    return cm_members_http(cm_node_fsm(n), lid);
}

/* X-Forwarded-For as the leader should see it: the client's chain, then the client's peer. */
static void forwarded_for(const struct cm_job *j, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", j->xff ? j->xff : "", j->xff ? ", " : "", j->peer_ip);
}

/* One write as a request of its own (a large body, or a leader of a release without batches). */
static void forward_one(struct cm_dispatch *d, struct cm_job *j, const char *addr)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s%s", d->cfg->node_protocol, addr, j->uri);
    struct cm_httpc_req *r = cm_httpc_req_new(cm_method_name(j->method), url);
    char h[512];
    cm_httpc_req_header(r, "Content-Type: application/json");
    snprintf(h, sizeof h, "X-Real-Ip: %s", j->client_ip);
    cm_httpc_req_header(r, h);
    char xff[400];
    forwarded_for(j, xff, sizeof xff);
    snprintf(h, sizeof h, "X-Forwarded-For: %s", xff);
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
    r->timeout_ms = (long)d->cfg->propose_timeout_ms + 2000;
    r->done = forward_done;
    r->data = j;
    all_remove(d, j); /* the forwarded request carries its own timeout */
    j->backref = &r->data;
    d->stats.forwarded++;
    d->stats.forward_batches++;
    submit_peer(d, r);
}

/* A write that reached a follower: it waits for the next batch (start_forward, at the end of
 * this loop turn or when a batch in flight comes back). */
static void forward(struct cm_dispatch *d, struct cm_job *j)
{
    const char *addr = leader_addr(d);
    if (addr == NULL) {
        cm_reply_code(j, CM_ERR_NO_LEADER);
        return;
    }
    if (j->hops >= MAX_HOPS) {
        cm_reply_error(j, 907, "no leader (forwarding loop between nodes)", NULL);
        return;
    }
    if (j->body.len > FWD_ALONE_BYTES || cm_mono_ms() < d->fwd_legacy_until_ms) {
        forward_one(d, j, addr);
        return;
    }
    cm_jlist_push(&d->fwd_next, j);
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
    cm_jlist_push(&dispatch_of(j->node)->reads_next, j);
    return false;
}

static void dispatch(struct cm_dispatch *d, struct cm_job *j)
{
    struct cm_node *n = d->node;
    int flags = j->route->flags;
    if (cm_node_stopping(n)) {
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        return;
    }
    if (flags & CM_R_LOCAL) {
        run_handler(j);
        return;
    }
    if (cm_node_removed(n)) {
        cm_reply_error(j, 503, "this node was removed from the cluster and no longer serves", NULL);
        return;
    }
    if (cm_node_fsm(n)->blocked_need) { /* its state lags the log: no read or write can be right */
        char why[200];
        cm_node_ready(n, why, sizeof why);
        cm_reply_error(j, 503, why, NULL);
        return;
    }
    if (flags & CM_R_WRITE) {
        j->read_index = 0; /* not confirmed by a barrier yet */
        if (!cm_node_is_leader(n))
            forward(d, j);
        else if (!cm_node_leader_ready(n))
            cm_jlist_push(&d->write_wait, j);
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
        cm_jlist_push(&d->reads_next, j);
    else if (j->route->flags & CM_R_INTERNAL)
        cm_reply_code(j, CM_ERR_NO_LEADER); /* a read-index request reached a non-leader */
    else if (cm_node_leader_id(n) == 0)
        cm_reply_code(j, CM_ERR_NO_LEADER);
    else
        cm_jlist_push(&d->ri_next, j);
}

void cm_node_redispatch(struct cm_node *n, struct cm_job *j)
{
    cm_jlist_remove(j);
    dispatch(dispatch_of(n), j);
}

static void read_barrier_cb(struct raft_barrier *req, int status)
{
    struct cm_dispatch *d = req->data;
    d->rb_inflight = false;
    struct cm_jlist batch = {0};
    cm_jlist_splice(&batch, &d->reads_inflight);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&batch)) != NULL) {
        if (status == 0) {
            if (j->route->flags & CM_R_WRITE) /* a write that changes nothing: answer now */
                j->read_index = WRITE_CONFIRMED;
            run_handler(j);
        } else
            dispatch(d, j);
    }
}

static void start_read_barrier(struct cm_dispatch *d)
{
    if (d->rb_inflight || d->reads_next.n == 0 || !cm_node_is_leader(d->node))
        return;
    d->rb_req.data = d;
    int rc = cm_node_barrier(d->node, &d->rb_req, read_barrier_cb);
    if (rc != 0) {
        CM_WARN("raft", "read barrier failed: %s", raft_strerror(rc));
        struct cm_job *j;
        while ((j = cm_jlist_pop(&d->reads_next)) != NULL)
            cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
        return;
    }
    d->rb_inflight = true;
    if (d->cfg->max_reads_per_barrier == 0)
        cm_jlist_splice(&d->reads_inflight, &d->reads_next);
    else
        for (unsigned k = 0; k < d->cfg->max_reads_per_barrier && d->reads_next.head; k++)
            cm_jlist_push(&d->reads_inflight, cm_jlist_pop(&d->reads_next));
}

static void release_applied(struct cm_dispatch *d)
{
    uint64_t applied = cm_node_raft(d->node)->last_applied;
    while (d->apply_wait.head && d->apply_wait.head->read_index <= applied) {
        struct cm_job *j = cm_jlist_pop(&d->apply_wait);
        run_handler(j);
    }
}

static void read_index_done(struct cm_httpc_req *r)
{
    struct cm_dispatch *d = r->data;
    struct cm_node *n = d->node;
    d->ri_busy = false;
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
    cm_jlist_splice(&batch, &d->ri_inflight);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&batch)) != NULL) {
        if (!ok) {
            if (cm_node_stopping(n) || r->status != 0 || cm_node_leader_id(n) == 0)
                cm_reply_code(j, r->status == 907 || cm_node_leader_id(n) == 0
                                     ? CM_ERR_NO_LEADER
                                     : CM_ERR_RAFT_READ_INDEX);
            else
                cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
            continue;
        }
        j->read_index = index;
        cm_jlist_push(&d->apply_wait, j);
    }
    if (!ok && r->status == 0)
        CM_WARN("read", "read-index request to the leader failed: %s", r->error);
    cm_httpc_req_free(r);
    release_applied(d);
}

/* Node-to-node requests carry a token like any client's when auth is on. */
void cm_node_internal_headers(struct cm_node *n, struct cm_httpc_req *r, const char *path,
                              const char *query)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    cm_httpc_req_header(r, "X-Clustermgr-Internal: 1");
    if (cfg->auth_enable) {
        char tok[CM_AUTH_TOKEN_LEN + 1], h[64 + CM_AUTH_TOKEN_LEN];
        cm_auth_token(path, query, cm_now_ns() / 1000000000LL, cfg->auth_secret, tok);
        snprintf(h, sizeof h, "%s: %s", CM_AUTH_HEADER, tok);
        cm_httpc_req_header(r, h);
    }
}

static void start_read_index(struct cm_dispatch *d)
{
    struct cm_node *n = d->node;
    if (d->ri_busy || d->ri_next.n == 0)
        return;
    if (cm_node_is_leader(n)) { /* became leader meanwhile */
        struct cm_job *j;
        while ((j = cm_jlist_pop(&d->ri_next)) != NULL)
            cm_jlist_push(&d->reads_next, j);
        return;
    }
    const char *addr = cm_node_leader_http(n);
    if (addr == NULL) {
        struct cm_job *j;
        while ((j = cm_jlist_pop(&d->ri_next)) != NULL)
            cm_reply_code(j, CM_ERR_NO_LEADER);
        return;
    }
    char url[512];
    snprintf(url, sizeof url, "%s%s/internal/readindex", d->cfg->node_protocol, addr);
    struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
    cm_node_internal_headers(n, r, "/internal/readindex", "");
    r->timeout_ms = (long)d->cfg->propose_timeout_ms;
    r->done = read_index_done;
    r->data = d;
    d->ri_busy = true;
    d->stats.read_index_requests++;
    cm_jlist_splice(&d->ri_inflight, &d->ri_next);
    submit_peer(d, r);
}

/* ------------------------------------------------------------------------------------------ */
/* forwarded write batches: the follower's side                                                */

/* One batch on its way to the leader: jobs[i] is cleared (through the job's backref) when that
 * write is answered elsewhere meanwhile (the node stops). */
struct fwd_out {
    struct cm_dispatch *d;
    size_t n;
    struct cm_job *jobs[];
};

static const char *const fwd_header_names[] = {"Retry-After", "Allow", "Cache-Control",
                                               "X-Content-Type-Options"};

/* Set a forwarded write's response to the leader's result, as forward_done does for a single
 * one. */
static void set_result(struct cm_job *j, const struct cm_fwd_result *res)
{
    char *body = NULL;
    if (res->body.n) {
        body = cm_malloc(res->body.n + 1);
        memcpy(body, res->body.p, res->body.n);
        body[res->body.n] = '\0';
    }
    const char *ct = NULL;
    if (res->ctype.n)
        ct = memmem(res->ctype.p, res->ctype.n, "json", 4) ? "application/json"
                                                           : "text/plain; charset=utf-8";
    cm_job_set_response(j, res->status, ct, body, res->body.n);
    for (unsigned i = 0; i < res->n_hdrs; i++)
        for (size_t k = 0; k < sizeof fwd_header_names / sizeof *fwd_header_names; k++) {
            const char *name = fwd_header_names[k];
            if (strlen(name) == res->hdr_name[i].n &&
                strncasecmp(name, res->hdr_name[i].p, res->hdr_name[i].n) == 0) {
                char *v = cm_strndup(res->hdr_value[i].p, res->hdr_value[i].n);
                cm_job_add_header(j, name, v);
                free(v);
            }
        }
}

static void start_forward(struct cm_dispatch *d);

/* The answers to a batch request, given to each of its jobs (NULL entries skipped) through
 * `answer` with the response set. Returns false, answering none, when the leader has no batch
 * route (a leader of an earlier release: it applied none of them). */
static bool batch_results(struct cm_httpc_req *r, struct cm_job **jobs, size_t n,
                          void (*answer)(struct cm_job *j))
{
    if (r->status == 404)
        return false;
    if (r->status != 200) {
        /* the batch as a whole was refused or failed: every write gets that answer */
        char msg[512];
        if (r->status == 0)
            snprintf(msg, sizeof msg, "forwarding to the leader failed: %s", r->error);
        bool json = strstr(r->ctype, "json") != NULL;
        for (size_t i = 0; i < n; i++) {
            struct cm_job *j = jobs[i];
            if (j == NULL)
                continue;
            if (r->status == 0)
                cm_job_set_error(j, 502, msg, NULL);
            else
                cm_job_set_response(
                    j, (int)r->status, json ? "application/json" : "text/plain; charset=utf-8",
                    r->resp.len ? cm_strndup(r->resp.data, r->resp.len) : NULL, r->resp.len);
            answer(j);
        }
        return true;
    }
    struct cm_fwd_result *res = cm_calloc(n, sizeof *res);
    struct cm_dec dec;
    cm_dec_init(&dec, r->resp.data ? r->resp.data : "", r->resp.len);
    size_t count = 0;
    char err[160] = "";
    bool ok = cm_fwd_get_header(&dec, &count, err, sizeof err) == 0 && count == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = cm_fwd_get_result(&dec, &res[i]) == 0;
    ok = ok && cm_dec_left(&dec) == 0;
    if (!ok)
        CM_WARN("forward", "the leader's answer to a batch of %zu writes is malformed%s%s", n,
                err[0] ? ": " : "", err);
    for (size_t i = 0; i < n; i++) {
        struct cm_job *j = jobs[i];
        if (j == NULL)
            continue;
        if (ok)
            set_result(j, &res[i]);
        else
            cm_job_set_error(j, 502, "the leader's answer to forwarded writes could not be read",
                             NULL);
        answer(j);
    }
    free(res);
    return true;
}

static void note_legacy(struct cm_dispatch *d)
{
    if (cm_mono_ms() >= d->fwd_legacy_until_ms)
        CM_INFO("forward",
                "the leader takes no forwarded write batches (an earlier release): forwarding "
                "writes one by one for %d s",
                FWD_LEGACY_MS / 1000);
    d->fwd_legacy_until_ms = cm_mono_ms() + FWD_LEGACY_MS;
}

static void fwd_done(struct cm_httpc_req *r)
{
    struct fwd_out *o = r->data;
    struct cm_dispatch *d = o->d;
    d->fwd_inflight--;
    for (size_t i = 0; i < o->n; i++)
        if (o->jobs[i])
            o->jobs[i]->backref = NULL;
    if (!batch_results(r, o->jobs, o->n, cm_reply_prepared)) {
        note_legacy(d);
        for (size_t i = 0; i < o->n; i++)
            if (o->jobs[i])
                forward(d, o->jobs[i]);
    }
    cm_httpc_req_free(r);
    free(o);
    start_forward(d);
}

/* The request that carries jobs[0..n) to the leader's batch route at `url` (any thread). */
static struct cm_httpc_req *batch_request(struct cm_dispatch *d, const char *url,
                                          struct cm_job **jobs, size_t n)
{
    struct cm_buf body = {0};
    cm_fwd_put_header(&body, n);
    for (size_t i = 0; i < n; i++) {
        char xff[400];
        forwarded_for(jobs[i], xff, sizeof xff);
        cm_fwd_put_write(&body, jobs[i], xff);
    }
    struct cm_httpc_req *r = cm_httpc_req_new("POST", url);
    cm_node_internal_headers(d->node, r, "/internal/forward", "");
    cm_httpc_req_header(r, "Content-Type: " CM_FWD_CTYPE);
    size_t len;
    char *data = cm_buf_steal(&body, &len);
    cm_httpc_req_body(r, data, len);
    r->timeout_ms = (long)d->cfg->propose_timeout_ms + 2000;
    return r;
}

/* Up to one batch of the writes waiting on `from`, oldest first: at most CM_FWD_MAX_WRITES and
 * FWD_MAX_BYTES of bodies (a first write always goes). Returns how many went to jobs[]. */
static size_t take_batch(struct cm_jlist *from, struct cm_job **jobs)
{
    size_t n = 0, bytes = 0;
    while (from->head && n < CM_FWD_MAX_WRITES &&
           (n == 0 || bytes + from->head->body.len <= FWD_MAX_BYTES)) {
        struct cm_job *j = cm_jlist_pop(from);
        bytes += j->body.len;
        jobs[n++] = j;
    }
    return n;
}

/* Send what waits in fwd_next to the leader, one batch per request, at most FWD_MAX_INFLIGHT
 * batches at a time. The leader proposes them with its group commit and answers each write with
 * what it would have answered the client directly. */
static void start_forward(struct cm_dispatch *d)
{
    struct cm_job *j;
    while (d->fwd_next.n && d->fwd_inflight < FWD_MAX_INFLIGHT) {
        const char *addr = leader_addr(d);
        if (addr == NULL || cm_mono_ms() < d->fwd_legacy_until_ms) {
            /* this node leads now, or no one does, or the leader takes no batches */
            struct cm_jlist waiting = {0};
            cm_jlist_splice(&waiting, &d->fwd_next);
            while ((j = cm_jlist_pop(&waiting)) != NULL)
                dispatch(d, j);
            return;
        }
        struct fwd_out *o = cm_malloc(sizeof *o + CM_FWD_MAX_WRITES * sizeof o->jobs[0]);
        o->d = d;
        o->n = take_batch(&d->fwd_next, o->jobs);
        for (size_t i = 0; i < o->n; i++) {
            all_remove(d, o->jobs[i]); /* the batch request carries the timeout */
            o->jobs[i]->backref = (void **)&o->jobs[i];
        }
        char url[512];
        snprintf(url, sizeof url, "%s%s/internal/forward", d->cfg->node_protocol, addr);
        struct cm_httpc_req *r = batch_request(d, url, o->jobs, o->n);
        r->done = fwd_done;
        r->data = o;
        d->fwd_inflight++;
        d->stats.forwarded += o->n;
        d->stats.forward_batches++;
        submit_peer(d, r);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* forwarded write batches from the HTTP workers                                               */

/* A write that a follower's front end read goes to the leader from that HTTP worker's own loop:
 * the writes read in one turn of it leave together at the end of the turn (a uv_check) on a
 * pipelined connection of that loop (src/client/plink.c), and their answers are written by the
 * same worker. The node's loop never sees them, and no other thread is woken on their way. The
 * loop publishes where they go (publish_hint); anything it cannot decide there (no leader, this
 * node leads, TLS between nodes, a leader of an earlier release, large bodies) takes the loop's
 * path above. */
struct wfwd {
    struct cm_dispatch *d;
    uv_loop_t *loop;
    uv_check_t flush;
    struct cm_plink *link;
    struct cm_jlist next; /* writes for the next batch */
    char url[320];        /* where they go */
    unsigned inflight;
    bool closing;
};

struct wfwd_out {
    struct wfwd *wf;
    size_t n;
    struct cm_job *jobs[];
};

/* A forwarded write is answered: back to its connection on this same worker. */
static void wfwd_answer(struct cm_job *j)
{
    j->state = CM_JOB_REPLIED;
    atomic_fetch_sub_explicit(&dispatch_of(j->node)->queued, 1, memory_order_relaxed);
    cm_http_resume(j);
}

/* Give a job to the node's loop after all (it was counted in `queued` already). */
static void wfwd_to_loop(struct cm_dispatch *d, struct cm_job *j)
{
    atomic_fetch_sub_explicit(&d->queued, 1, memory_order_relaxed);
    j->worker_slot = NULL; /* not this way again */
    int sub = cm_node_submit(d->node, j);
    if (sub != CM_SUBMIT_OK) {
        if (sub != CM_SUBMIT_ANSWERED)
            cm_job_set_error(j, 503, "the node is shutting down", NULL);
        j->state = CM_JOB_REPLIED;
        cm_http_resume(j);
    }
}

static void wfwd_flush(uv_check_t *h);

static void wfwd_done(struct cm_httpc_req *r)
{
    struct wfwd_out *o = r->data;
    struct wfwd *wf = o->wf;
    wf->inflight--;
    if (!batch_results(r, o->jobs, o->n, wfwd_answer)) {
        /* a leader of an earlier release: the loop's own batch of these meets the same 404,
         * which makes it forward one by one and stop publishing this path (publish_hint) */
        for (size_t i = 0; i < o->n; i++)
            wfwd_to_loop(wf->d, o->jobs[i]);
    }
    cm_httpc_req_free(r);
    free(o);
    if (!wf->closing && wf->next.head)
        uv_check_start(&wf->flush, wfwd_flush);
}

static void wfwd_flush(uv_check_t *h)
{
    struct wfwd *wf = h->data;
    struct cm_dispatch *d = wf->d;
    while (wf->next.head && wf->inflight < FWD_MAX_INFLIGHT) {
        struct wfwd_out *o = cm_malloc(sizeof *o + CM_FWD_MAX_WRITES * sizeof o->jobs[0]);
        o->wf = wf;
        o->n = take_batch(&wf->next, o->jobs);
        struct cm_httpc_req *r = batch_request(d, wf->url, o->jobs, o->n);
        r->done = wfwd_done;
        r->data = o;
        wf->inflight++;
        atomic_fetch_add_explicit(&d->w_forwarded, o->n, memory_order_relaxed);
        atomic_fetch_add_explicit(&d->w_batches, 1, memory_order_relaxed);
        if (cm_plink_submit(wf->link, r) != 0) { /* cannot happen: the hint checked the URL */
            wf->inflight--;
            for (size_t i = 0; i < o->n; i++)
                wfwd_to_loop(d, o->jobs[i]);
            cm_httpc_req_free(r);
            free(o);
        }
    }
    if (wf->next.head == NULL || wf->inflight >= FWD_MAX_INFLIGHT)
        uv_check_stop(&wf->flush); /* wfwd_done starts it again */
}

static void wfwd_closed(uv_handle_t *h)
{
    free(h->data);
}

void cm_dispatch_worker_stop(void *forwarder)
{
    struct wfwd *wf = forwarder;
    wf->closing = true;
    struct cm_job *j;
    while ((j = cm_jlist_pop(&wf->next)) != NULL) {
        cm_job_set_error(j, 503, "the node is shutting down", NULL);
        wfwd_answer(j);
    }
    cm_plink_close(wf->link); /* answers the batches in flight (502) */
    uv_close((uv_handle_t *)&wf->flush, wfwd_closed);
}

/* On the HTTP worker's thread: take a write that goes to the leader from here. */
static bool worker_forward(struct cm_dispatch *d, struct cm_job *j)
{
    if (j->worker_slot == NULL || j->on_done ||
        (j->route->flags & (CM_R_WRITE | CM_R_LOCAL)) != CM_R_WRITE ||
        j->body.len > FWD_ALONE_BYTES || j->hops >= MAX_HOPS)
        return false;
    char url[sizeof d->hint_url];
    pthread_mutex_lock(&d->hint_mu);
    bool ok = d->hint_ok;
    if (ok)
        memcpy(url, d->hint_url, sizeof url);
    pthread_mutex_unlock(&d->hint_mu);
    if (!ok)
        return false;
    struct wfwd *wf = *j->worker_slot;
    if (wf == NULL) {
        wf = cm_calloc(1, sizeof *wf);
        wf->d = d;
        wf->loop = j->worker_loop;
        wf->link = cm_plink_new(wf->loop);
        uv_check_init(wf->loop, &wf->flush);
        wf->flush.data = wf;
        *j->worker_slot = wf;
    }
    if (wf->closing)
        return false;
    if (wf->next.head && strcmp(wf->url, url) != 0)
        wfwd_flush(&wf->flush); /* the leader changed: what waits goes where it was meant to */
    memcpy(wf->url, url, sizeof wf->url);
    atomic_fetch_add_explicit(&d->queued, 1, memory_order_relaxed);
    j->state = CM_JOB_IN_LOOP;
    cm_jlist_push(&wf->next, j);
    uv_check_start(&wf->flush, wfwd_flush);
    return true;
}

/* On the loop, each turn: tell the workers whether writes go straight to the leader, and where. */
static void publish_hint(struct cm_dispatch *d)
{
    struct cm_node *n = d->node;
    d->stats.forwarded += atomic_exchange(&d->w_forwarded, 0);
    d->stats.forward_batches += atomic_exchange(&d->w_batches, 0);
    bool ok = false;
    char url[sizeof d->hint_url] = "";
    const char *addr;
    if (!cm_node_stopping(n) && !cm_node_removed(n) && !cm_node_fsm(n)->blocked_need &&
        !cm_node_is_leader(n) && cm_mono_ms() >= d->fwd_legacy_until_ms &&
        strcmp(d->cfg->node_protocol, "http://") == 0 && (addr = leader_addr(d)) != NULL) {
        snprintf(url, sizeof url, "http://%s/internal/forward", addr);
        ok = cm_plink_url_ok(url);
    }
    if (ok == d->hint_ok && strcmp(url, d->hint_url) == 0)
        return;
    pthread_mutex_lock(&d->hint_mu);
    d->hint_ok = ok;
    memcpy(d->hint_url, url, sizeof url);
    pthread_mutex_unlock(&d->hint_mu);
}

/* ------------------------------------------------------------------------------------------ */
/* forwarded write batches: the leader's side                                                  */

/* The writes of one batch, each a job without a connection. */
struct fwd_in {
    struct cm_job *parent;
    size_t n, pending;
    struct cm_job **subs;
};

static void fwd_in_free(void *p)
{
    struct fwd_in *b = p;
    for (size_t i = 0; i < b->n; i++)
        cm_job_free(b->subs[i]);
    free(b->subs);
    free(b);
}

int cm_fwd_parse(struct cm_job *j)
{
    struct cm_dec dec;
    cm_dec_init(&dec, j->body.data ? j->body.data : "", j->body.len);
    size_t count;
    char err[160];
    if (cm_fwd_get_header(&dec, &count, err, sizeof err) != 0) {
        cm_job_set_error(j, 400, err, "Argument");
        return -1;
    }
    struct fwd_in *b = cm_calloc(1, sizeof *b);
    b->subs = cm_calloc(count, sizeof *b->subs);
    j->args = b;
    j->args_free = fwd_in_free;
    for (size_t i = 0; i < count; i++) {
        struct cm_fwd_write w;
        if (cm_fwd_get_write(&dec, &w) != 0) {
            snprintf(err, sizeof err, "write %zu of the forwarded batch is malformed", i + 1);
            cm_job_set_error(j, 400, err, "Argument");
            return -1;
        }
        struct cm_job *s = cm_calloc(1, sizeof *s);
        b->subs[b->n++] = s;
        s->http = j->http;
        s->node = j->node;
        s->cfg = j->cfg;
        s->start_us = cm_mono_us();
        s->id = j->id;
        memcpy(s->peer_ip, j->peer_ip, sizeof s->peer_ip);
        cm_job_set_target(s, w.uri.p, w.uri.n);
        s->method = w.method;
        s->hops = w.hops;
        memcpy(s->client_ip, w.client_ip.p, w.client_ip.n);
        s->client_ip[w.client_ip.n] = '\0';
        if (w.xff.n)
            s->xff = cm_strndup(w.xff.p, w.xff.n);
        if (w.req_id.n)
            s->req_id_hdr = cm_strndup(w.req_id.p, w.req_id.n);
        cm_buf_append(&s->body, w.body.p, w.body.n);
        int allowed = 0;
        s->route = cm_route_lookup(s->path, s->method, &allowed);
        if (s->route == NULL || !(s->route->flags & CM_R_WRITE)) {
            cm_job_set_error(s, 400, "only writes are forwarded in a batch", "Argument");
            continue;
        }
        unsigned limit = s->route->max_body ? s->route->max_body : j->cfg->max_body_bytes;
        if (s->body.len > limit) {
            cm_job_set_error(s, 413, "request body exceeds the limit", NULL);
            continue;
        }
        if (s->route->parse)
            s->route->parse(s);
    }
    if (cm_dec_left(&dec) != 0) {
        cm_job_set_error(j, 400, "trailing bytes after the forwarded batch", "Argument");
        return -1;
    }
    cm_buf_free(&j->body); /* each write holds its own copy */
    return 0;
}

/* One write of a batch was answered; the last one answers the batch. */
static void fwd_sub_done(struct cm_job *s)
{
    struct fwd_in *b = s->done_arg;
    if (--b->pending > 0)
        return;
    struct cm_buf out = {0};
    cm_fwd_put_header(&out, b->n);
    for (size_t i = 0; i < b->n; i++) {
        cm_fwd_put_result(&out, b->subs[i]);
        cm_http_account(b->subs[i]); /* counted and logged (audit) here, as a client's */
        cm_job_free(b->subs[i]);
    }
    b->n = 0;
    size_t len;
    char *body = cm_buf_steal(&out, &len);
    cm_reply(b->parent, 200, CM_FWD_CTYPE, body, len);
}

void cm_fwd_handle(struct cm_job *j)
{
    struct cm_dispatch *d = dispatch_of(j->node);
    struct fwd_in *b = j->args;
    all_remove(d, j); /* its writes carry the deadlines */
    b->parent = j;
    b->pending = b->n;
    /* the last write answered answers the batch, which may then be freed at once */
    size_t n = b->n;
    struct cm_job **subs = b->subs;
    uint64_t now = cm_mono_ms();
    atomic_fetch_add_explicit(&d->queued, (unsigned)n, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        struct cm_job *s = subs[i];
        s->on_done = fwd_sub_done;
        s->done_arg = b;
        s->state = CM_JOB_IN_LOOP;
        s->deadline_ms = now + d->cfg->propose_timeout_ms;
        all_push(d, s);
        if (s->status)
            cm_reply_prepared(s);
        else
            dispatch(d, s);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* removal probes                                                                              */

/* A removed member is not told (see cm_node_removal_suspect): when a member has had no leader
 * for a while it asks the other members; if the leader answers that this node is not in the
 * committed configuration, the node stops serving. */
static void probe_done(struct cm_httpc_req *r)
{
    struct cm_dispatch *d = r->data;
    struct cm_node *n = d->node;
    d->probes_inflight--;
    if (r->status == 200 && !cm_node_removed(n) && !cm_node_stopping(n)) {
        char err[128];
        struct json_object *o =
            cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err, sizeof err);
        bool is_leader = false, member = true;
        uint64_t term = 0;
        if (o && cm_json_get_bool(o, "is_leader", true, &is_leader, err, sizeof err) == 0 &&
            cm_json_get_bool(o, "member", true, &member, err, sizeof err) == 0 &&
            cm_json_get_u64(o, "term", true, UINT64_MAX, &term, err, sizeof err) == 0 &&
            is_leader && !member)
            cm_node_learn_removed(n, r->url, term);
        json_object_put(o);
    }
    cm_httpc_req_free(r);
}

static void probe_removal(struct cm_dispatch *d)
{
    struct cm_node *n = d->node;
    uint64_t now = cm_mono_ms();
    if (d->probes_inflight || !cm_node_removal_suspect(n) || now - d->last_probe_ms < 2000)
        return;
    d->last_probe_ms = now;
    const char *addrs[MAX_PROBES];
    size_t n_addrs = cm_node_peers_http(n, addrs, MAX_PROBES);
    for (size_t i = 0; i < n_addrs; i++) {
        char url[512];
        snprintf(url, sizeof url, "%s%s/internal/member?id=%llu", d->cfg->node_protocol, addrs[i],
                 (unsigned long long)d->cfg->node_id);
        struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
        char q[40];
        snprintf(q, sizeof q, "id=%llu", (unsigned long long)d->cfg->node_id);
        cm_node_internal_headers(n, r, "/internal/member", q);
        r->timeout_ms = 2000;
        r->done = probe_done;
        r->data = d;
        d->probes_inflight++;
        cm_httpc_submit(cm_node_httpc(n), r);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* membership changes on behalf of jobs                                                        */

static void change_done(struct cm_node *n, void *arg, int outcome, const char *msg)
{
    (void)n;
    struct cm_job *j = arg;
    switch (outcome) {
    case CM_CHANGE_DONE:
        cm_reply_empty(j);
        break;
    case CM_CHANGE_DUPLICATE:
        cm_reply_code(j, CM_ERR_DUPLICATED_MEMBER);
        break;
    case CM_CHANGE_UNKNOWN:
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        break;
    case CM_CHANGE_SELF:
        cm_reply_code(j, CM_ERR_REQUEST_NOT_ALLOW);
        break;
    case CM_CHANGE_BUSY:
        cm_reply_error(j, 409, "another membership change is in progress; retry when it is done",
                       NULL);
        break;
    case CM_CHANGE_NOT_VOTER:
        cm_reply_error(j, 400, "Illegal Arguments: the target is not a voter", NULL);
        break;
    case CM_CHANGE_STOPPING:
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        break;
    default:
        cm_reply_error(j, 500, msg, "InternalServerError");
        break;
    }
}

/* A change can take several catch-up rounds: the job leaves the deadline list, and the change
 * answers it (on stop too). */
void cm_job_member_add(struct cm_job *j, uint64_t id, const char *raft_addr, const char *http_addr,
                       bool learner)
{
    all_remove(dispatch_of(j->node), j);
    cm_node_member_add(j->node, id, raft_addr, http_addr, learner, change_done, j);
}

void cm_job_member_remove(struct cm_job *j, uint64_t id)
{
    all_remove(dispatch_of(j->node), j);
    cm_node_member_remove(j->node, id, change_done, j);
}

void cm_job_member_promote(struct cm_job *j, uint64_t id)
{
    all_remove(dispatch_of(j->node), j);
    cm_node_member_promote(j->node, id, change_done, j);
}

void cm_job_transfer(struct cm_job *j, uint64_t id)
{
    char msg[160] = "";
    change_done(j->node, j, cm_node_transfer(j->node, id, msg, sizeof msg), msg);
}

/* ------------------------------------------------------------------------------------------ */
/* what the consensus layer tells us                                                           */

static void on_turn(struct cm_node *n, void *arg)
{
    (void)n;
    struct cm_dispatch *d = arg;
    start_read_barrier(d);
    start_read_index(d);
    start_forward(d);
    publish_hint(d);
    release_applied(d);
}

static void on_tick(struct cm_node *n, void *arg)
{
    (void)n;
    struct cm_dispatch *d = arg;
    uint64_t now = cm_mono_ms();
    /* jobs past their deadline */
    while (d->all_head && d->all_head->deadline_ms <= now) {
        struct cm_job *j = d->all_head;
        d->stats.jobs_timed_out++;
        if (j->route->flags & CM_R_WRITE)
            cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
        else
            cm_reply_code(j, CM_ERR_RAFT_READ_INDEX);
    }
    probe_removal(d);
}

/* Writes that waited for this node to become a ready leader run now, or go to the new leader. */
static void redispatch_writes(struct cm_node *n, void *arg)
{
    (void)n;
    struct cm_dispatch *d = arg;
    struct cm_jlist waiting = {0};
    cm_jlist_splice(&waiting, &d->write_wait);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&waiting)) != NULL)
        dispatch(d, j);
}

static void fail_all_jobs(struct cm_dispatch *d)
{
    struct cm_job *j = take_queue(d, true);
    while (j) {
        struct cm_job *next = j->qnext;
        j->qnext = NULL;
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        j = next;
    }
    while (d->all_head)
        cm_reply_error(d->all_head, 503, "the node is shutting down", NULL);
}

/* Forwarded jobs and jobs in membership changes are off the deadline list; httpc's close
 * completes the former, the consensus layer answers the latter as it stops. */
static void on_stopping(struct cm_node *n, void *arg)
{
    (void)n;
    struct cm_dispatch *d = arg;
    if (d->quiesce)
        d->quiesce(d->quiesce_arg);
    publish_hint(d); /* the node stops: the workers forward nothing more themselves */
    fail_all_jobs(d);
}

struct close_ctx {
    struct cm_dispatch *d;
    void (*done)(struct cm_node *n);
};

static void on_httpc_closed(void *arg)
{
    struct close_ctx *c = arg;
    struct cm_dispatch *d = c->d;
    void (*done)(struct cm_node * n) = c->done;
    free(c);
    d->httpc = NULL;
    done(d->node);
}

/* After the hooks' on_stop: closing the client completes the forwarded jobs and the calls still
 * in flight; then raft closes. */
static void on_close(struct cm_node *n, void *arg, void (*done)(struct cm_node *n))
{
    struct cm_dispatch *d = arg;
    if (d->plink) { /* completes what is in flight on it (status 0) */
        cm_plink_close(d->plink);
        d->plink = NULL;
    }
    if (d->httpc == NULL) {
        done(n);
        return;
    }
    struct close_ctx *c = cm_malloc(sizeof *c);
    c->d = d;
    c->done = done;
    cm_httpc_close(d->httpc, on_httpc_closed, c);
}

void cm_dispatch_init(struct cm_node *n)
{
    struct cm_dispatch *d = cm_calloc(1, sizeof *d);
    d->node = n;
    d->cfg = cm_node_cfg(n);
    pthread_mutex_init(&d->qlock, NULL);
    pthread_mutex_init(&d->hint_mu, NULL);
    d->httpc = cm_httpc_new(cm_node_loop(n));
    d->plink = cm_plink_new(cm_node_loop(n));
    if (d->cfg->tls_cert[0])
        cm_httpc_set_tls(d->httpc, d->cfg->tls_ca, d->cfg->tls_cert, d->cfg->tls_key);
    int rc = cm_wake_init(cm_node_loop(n), &d->wake, on_wake);
    if (rc != 0) {
        CM_ERROR("node", "cannot start: no eventfd for the request queue: %s", uv_strerror(rc));
        exit(1);
    }
    d->wake.data = d;
    cm_node_set_ext(n, CM_EXT_DISPATCH, d);
    cm_node_set_upper(n, &(struct cm_node_upper){.turn = on_turn,
                                                 .tick = on_tick,
                                                 .leader_ready = redispatch_writes,
                                                 .not_leader = redispatch_writes,
                                                 .stopping = on_stopping,
                                                 .close = on_close,
                                                 .arg = d});
}

void cm_dispatch_set_quiesce(struct cm_node *n, void (*quiesce)(void *arg), void *arg)
{
    struct cm_dispatch *d = dispatch_of(n);
    d->quiesce = quiesce;
    d->quiesce_arg = arg;
}

void cm_dispatch_free(struct cm_node *n)
{
    struct cm_dispatch *d = dispatch_of(n);
    if (d == NULL)
        return;
    /* every job has been answered: remaining ones were failed on stop */
    fail_all_jobs(d);
    while (d->proposals) {
        struct job_proposal *jp = d->proposals;
        d->proposals = jp->next;
        free(jp);
    }
    cm_node_set_ext(n, CM_EXT_DISPATCH, NULL);
    cm_wake_close(&d->wake);
    pthread_mutex_destroy(&d->qlock);
    pthread_mutex_destroy(&d->hint_mu);
    free(d);
}
