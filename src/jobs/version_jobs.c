/*
 * The cluster version (src/fsm/mod_cluster.h): every node asks each member of the raft
 * configuration, voters and learners, which format version its binary applies
 * (GET /internal/version; a release before this mechanism answers 404 there and counts as
 * version 1). The leader raises the cluster version to the lowest of those once every member
 * answered and that is above the current one. An unreachable member holds the version where it
 * is: it may still run an old binary.
 *
 * Every node keeps what it last heard for /stat and the status page. Asked every 2 s while the
 * cluster is below this binary's version, every 10 s after.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/httpc.h"
#include "../fsm/mod_cluster.h"
#include "../fsm/mod_members.h"
#include "../http/errors.h"
#include "../dispatch/dispatch.h"
#include "../raft/node.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "version_jobs.h"

#define MAX_MEMBERS 64

struct member_version {
    uint64_t id;
    unsigned version; /* 0: no answer yet */
    uint64_t seen_ms;
};

struct version_state {
    struct member_version m[MAX_MEMBERS];
    size_t n;
    struct cm_jlist parked; /* requests waiting for a raise that is under way */
    uint64_t parked_since_ms;
    unsigned inflight;
    bool stopped;
    bool proposing;
    uint64_t next_poll_ms;
    uint64_t last_log_ms;
};

static struct member_version *slot(struct version_state *vs, uint64_t id)
{
    for (size_t i = 0; i < vs->n; i++)
        if (vs->m[i].id == id)
            return &vs->m[i];
    if (vs->n == MAX_MEMBERS)
        return NULL;
    vs->m[vs->n] = (struct member_version){.id = id};
    return &vs->m[vs->n++];
}

unsigned cm_version_of_member(struct cm_node *n, uint64_t id)
{
    if (id == cm_node_id(n))
        return CM_FORMAT_VERSION;
    struct version_state *vs = cm_node_ext(n, CM_EXT_VERSION);
    if (vs == NULL)
        return 0;
    for (size_t i = 0; i < vs->n; i++)
        if (vs->m[i].id == id)
            return vs->m[i].version;
    return 0;
}

struct poll {
    struct cm_node *node;
    struct version_state *vs;
    uint64_t id;
};

static void poll_done(struct cm_httpc_req *r)
{
    struct poll *p = r->data;
    struct version_state *vs = p->vs;
    vs->inflight--;
    if (vs->stopped) {
        if (vs->inflight == 0)
            free(vs);
        goto out;
    }
    struct member_version *m = slot(vs, p->id);
    if (m == NULL)
        goto out;
    if (r->status == 404) { /* a release before cluster versions */
        m->version = 1;
        m->seen_ms = cm_mono_ms();
    } else if (r->status == 200) {
        char err[128];
        struct json_object *o =
            cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err, sizeof err);
        uint64_t v = 0;
        if (o && cm_json_get_u64(o, "version", true, 255, &v, err, sizeof err) == 0 && v >= 1) {
            m->version = (unsigned)v;
            m->seen_ms = cm_mono_ms();
        }
        json_object_put(o);
    }
out:
    free(p);
    cm_httpc_req_free(r);
}

static void raised(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)n, (void)res;
    struct version_state *vs = arg;
    vs->proposing = false;
    if (status != CM_APPLIED)
        CM_WARN("cluster", "raising the cluster version did not complete; trying again");
}

/* The leader: raise the cluster version when every member runs a binary that applies more. */
static void maybe_raise(struct cm_node *n, struct version_state *vs)
{
    struct cm_fsm *fsm = cm_node_fsm(n);
    unsigned cur = cm_cluster_version(fsm);
    if (!cm_node_is_leader(n) || vs->proposing || cur >= CM_FORMAT_VERSION)
        return;
    const struct raft_configuration *c = &cm_node_raft(n)->configuration;
    unsigned target = CM_FORMAT_VERSION;
    char waiting[256] = "";
    size_t w = 0;
    uint64_t now = cm_mono_ms();
    for (unsigned i = 0; i < c->n; i++) {
        unsigned v = cm_version_of_member(n, c->servers[i].id);
        struct member_version *m =
            c->servers[i].id == cm_node_id(n) ? NULL : slot(vs, c->servers[i].id);
        if (m && now - m->seen_ms > 30000) /* not heard from lately: it may have changed */
            v = 0;
        if (v < target)
            target = v;
        if (v <= cur && w < sizeof waiting - 40)
            w += (size_t)snprintf(waiting + w, sizeof waiting - w, "%s%" PRIu64 " (%s)",
                                  w ? ", " : "", (uint64_t)c->servers[i].id,
                                  v == 0   ? "no answer"
                                  : v == 1 ? "version 1"
                                           : "older");
    }
    if (target > cur) {
        CM_INFO("cluster", "every member applies format %u: raising the cluster version from %u",
                target, cur);
        struct cm_buf b = {0};
        cm_cluster_enc_set_version(&b, target);
        vs->proposing = true;
        cm_node_propose(n, CM_MOD_CLUSTER, CM_CLUSTER_OP_SET_VERSION, &b, raised, vs);
        return;
    }
    if (now - vs->last_log_ms >= 30000) {
        vs->last_log_ms = now;
        CM_INFO("cluster",
                "cluster version %u, this binary applies %u: waiting for members %s to run "
                "version %u before its commands are enabled",
                cur, CM_FORMAT_VERSION, waiting, CM_FORMAT_VERSION);
    }
}

static void refuse(struct cm_job *j, unsigned cur, unsigned need, const char *what)
{
    char msg[400];
    snprintf(msg, sizeof msg,
             "%s needs cluster version %u and the cluster runs version %u: every member must "
             "run a release that applies format %u first (GET /stat shows each member's "
             "version; see docs/operations.md, rolling upgrades)",
             what, need, cur, need);
    cm_job_add_header(j, "Retry-After", "5");
    cm_reply_error(j, 503, msg, "ClusterVersion");
}

/* Whether no member of the configuration said it applies less than `need` (a member not heard
 * from yet, as right after a new cluster started, may still say it does). */
static bool none_older(struct cm_node *n, unsigned need)
{
    const struct raft_configuration *c = &cm_node_raft(n)->configuration;
    for (unsigned i = 0; i < c->n; i++) {
        unsigned v = cm_version_of_member(n, c->servers[i].id);
        if (v != 0 && v < need)
            return false;
    }
    return c->n > 0;
}

bool cm_version_require(struct cm_job *j, unsigned need, const char *what)
{
    struct cm_node *n = j->node;
    unsigned cur = cm_cluster_version(cm_node_fsm(n));
    if (cur >= need)
        return true;
    struct version_state *vs = cm_node_ext(n, CM_EXT_VERSION);
    if (vs && cm_node_is_leader(n) && need <= CM_FORMAT_VERSION && none_older(n, need)) {
        if (vs->parked.n == 0)
            vs->parked_since_ms = cm_mono_ms();
        cm_jlist_push(&vs->parked, j);
        return false;
    }
    refuse(j, cur, need, what);
    return false;
}

/* Parked requests go on once the version moved; after 3 s they are refused with the reason. */
static void release_parked(struct cm_node *n, struct version_state *vs)
{
    if (vs->parked.n == 0)
        return;
    bool moved = cm_cluster_version(cm_node_fsm(n)) >= CM_FORMAT_VERSION;
    if (!moved && cm_mono_ms() - vs->parked_since_ms < 3000 && cm_node_is_leader(n))
        return;
    struct cm_jlist all = {0};
    cm_jlist_splice(&all, &vs->parked);
    struct cm_job *j;
    while ((j = cm_jlist_pop(&all)) != NULL)
        cm_node_redispatch(n, j); /* handled again: it proceeds, or is refused with the reason */
}

static void version_tick(struct cm_node *n, void *arg)
{
    struct version_state *vs = arg;
    uint64_t now = cm_mono_ms();
    maybe_raise(n, vs);
    release_parked(n, vs);
    if (now < vs->next_poll_ms || vs->inflight > 0)
        return;
    bool behind = cm_cluster_version(cm_node_fsm(n)) < CM_FORMAT_VERSION;
    vs->next_poll_ms = now + (behind ? 2000 : 10000);
    const struct raft_configuration *c = &cm_node_raft(n)->configuration;
    const struct cm_config *cfg = cm_node_cfg(n);
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t id = c->servers[i].id;
        const char *addr = id == cm_node_id(n) ? NULL : cm_members_http(cm_node_fsm(n), id);
        if (addr == NULL)
            addr = id == cm_node_id(n) ? NULL : cm_config_node_http(cfg, id);
        if (addr == NULL)
            continue;
        char url[512];
        snprintf(url, sizeof url, "%s%s/internal/version", cfg->node_protocol, addr);
        struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
        cm_node_internal_headers(n, r, "/internal/version", "");
        r->timeout_ms = 2000;
        r->done = poll_done;
        struct poll *p = cm_calloc(1, sizeof *p);
        p->node = n;
        p->vs = vs;
        p->id = id;
        r->data = p;
        vs->inflight++;
        cm_httpc_submit(cm_node_httpc(n), r);
    }
}

static void version_stop(struct cm_node *n, void *arg)
{
    struct version_state *vs = arg;
    struct cm_job *j;
    while ((j = cm_jlist_pop(&vs->parked)) != NULL)
        cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
    cm_node_set_ext(n, CM_EXT_VERSION, NULL);
    vs->stopped = true;
    if (vs->inflight == 0)
        free(vs);
}

void cm_version_jobs_init(struct cm_node *n)
{
    struct version_state *vs = cm_calloc(1, sizeof *vs);
    cm_node_set_ext(n, CM_EXT_VERSION, vs);
    struct cm_node_hooks h = {.on_tick = version_tick, .on_stop = version_stop, .arg = vs};
    cm_node_add_hooks(n, &h);
}
