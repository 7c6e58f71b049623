/*
 * The console: GET / (the page), GET /web/<file> (its script and style, compiled into the
 * binary), GET /dashboard/data, the one JSON document the page polls, and GET
 * /dashboard/history, this node's last hour for the charts (kept by src/ops/history.c). The
 * page's actions and browsers call the client routes themselves (/member/add, /disk/list, ...).
 *
 * /dashboard/data is answered by every node from its own state: its /stat, the members of the
 * raft configuration with their HTTP addresses, the task switches of its replica of the config
 * store, the leader changes it observed. Replication progress is known only to the leader, so a
 * follower also fetches the leader's /stat (one request, one second at most) and includes it as
 * "leader_stat"; the page then shows the whole cluster whichever node serves it.
 */
#include <stdlib.h>
#include <string.h>

#include "../client/httpc.h"
#include "../fsm/mod_config.h"
#include "../fsm/mod_members.h"
#include "../ops/history.h"
#include "../ops/ops.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "../jobs/version_jobs.h"
#include "api.h"
#include "web_assets.h"

#ifndef CM_VERSION
#define CM_VERSION "dev"
#endif

static const char *const switches[] = {"disk_repair",    "balance",      "disk_drop",
                                       "blob_delete",    "shard_repair", "vol_inspect",
                                       "volume_inspect", "data_inspect"};

static void serve_asset(struct cm_job *j, const char *name)
{
    for (unsigned long i = 0; i < cm_web_assets_n; i++) {
        const struct cm_web_asset *a = &cm_web_assets[i];
        if (strcmp(a->name, name) != 0)
            continue;
        char *body = cm_malloc(a->len + 1);
        memcpy(body, a->data, a->len);
        cm_job_set_response(j, 200, a->ctype, body, a->len);
        cm_job_add_header(j, "Cache-Control", "no-cache");
        cm_job_add_header(j, "X-Content-Type-Options", "nosniff");
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "404 page not found: /web/%.100s", name);
    cm_job_set_error(j, 404, msg, NULL);
}

void h_web_index(struct cm_job *j)
{
    serve_asset(j, "index.html");
}

void h_web_asset(struct cm_job *j)
{
    const char *name = j->path + strlen("/web/");
    if (strchr(name, '/') != NULL || name[0] == '\0' || strcmp(name, "index.html") == 0) {
        cm_job_set_error(j, 404, "404 page not found", NULL);
        return;
    }
    serve_asset(j, name);
}

static struct json_object *members(struct cm_node *n)
{
    struct raft *r = cm_node_raft(n);
    struct json_object *arr = json_object_new_array();
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        struct json_object *e = json_object_new_object();
        const char *http = cm_members_http(cm_node_fsm(n), s->id);
        const char *role = s->role == RAFT_VOTER     ? "voter"
                           : s->role == RAFT_STANDBY ? "learner"
                                                     : "spare";
        json_object_object_add(e, "id", json_object_new_uint64(s->id));
        json_object_object_add(e, "raft", json_object_new_string(s->address));
        json_object_object_add(e, "http", json_object_new_string(http ? http : ""));
        json_object_object_add(e, "role", json_object_new_string(role));
        /* the format version its binary applies, as this node last heard (0: not yet) */
        json_object_object_add(e, "format_version",
                               json_object_new_int((int)cm_version_of_member(n, s->id)));
        json_object_array_add(arr, e);
    }
    return arr;
}

static struct json_object *history(struct cm_node *n)
{
    const struct cm_leader_event *ev;
    size_t cnt = cm_node_leader_history(n, &ev);
    struct json_object *arr = json_object_new_array();
    for (size_t k = cnt; k-- > 0;) { /* newest first */
        char t[64];
        cm_format_rfc3339(ev[k].at_ns, t, sizeof t);
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "time", json_object_new_string(t));
        json_object_object_add(e, "term", json_object_new_uint64(ev[k].term));
        json_object_object_add(e, "leader", json_object_new_uint64(ev[k].leader));
        json_object_array_add(arr, e);
    }
    return arr;
}

static struct json_object *dashboard_data(struct cm_node *n)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    struct json_object *o = json_object_new_object();
    struct json_object *node = json_object_new_object();
    char why[160];
    bool ready = cm_node_ready(n, why, sizeof why);
    json_object_object_add(node, "id", json_object_new_uint64(cm_node_id(n)));
    json_object_object_add(node, "version", json_object_new_string(CM_VERSION));
    json_object_object_add(node, "http", json_object_new_string(cfg->bind_addr));
    json_object_object_add(node, "region", json_object_new_string(cfg->region));
    json_object_object_add(node, "cluster_id", json_object_new_uint64(cfg->cluster_id));
    json_object_object_add(node, "is_leader", json_object_new_boolean(cm_node_is_leader(n)));
    json_object_object_add(node, "ready", json_object_new_boolean(ready));
    json_object_object_add(node, "ready_reason", json_object_new_string(why));
    json_object_object_add(node, "log_level",
                           json_object_new_string(cm_log_level_name(cm_log_get_level())));
    int64_t started = cm_ops_started_ns(n);
    json_object_object_add(
        node, "uptime_s",
        json_object_new_int64(started ? (cm_now_ns() - started) / 1000000000LL : 0));
    char now[64];
    cm_format_rfc3339(cm_now_ns(), now, sizeof now);
    json_object_object_add(node, "time", json_object_new_string(now));
    json_object_object_add(o, "node", node);
    json_object_object_add(o, "stat", cm_stat_json(n));
    json_object_object_add(o, "leader_stat", NULL);
    json_object_object_add(o, "members", members(n));
    struct json_object *sw = json_object_new_object();
    for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++) {
        const char *v = cm_config_get(cm_node_fsm(n), switches[i]);
        json_object_object_add(sw, switches[i], v ? json_object_new_string(v) : NULL);
    }
    json_object_object_add(o, "switches", sw);
    json_object_object_add(o, "leader_history", history(n));
    return o;
}

static void data_free(void *p)
{
    json_object_put(p);
}

static void leader_stat_done(struct cm_httpc_req *r)
{
    struct cm_job *j = r->data;
    if (j != NULL) {
        j->backref = NULL;
        struct json_object *o = j->hstate;
        j->hstate = NULL;
        j->hstate_free = NULL;
        struct json_object *st = NULL;
        if (r->status == 200) {
            char err[128];
            st = cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err,
                               sizeof err);
        }
        if (st)
            json_object_object_add(o, "leader_stat", st);
        else {
            char msg[300];
            snprintf(msg, sizeof msg, "the leader's /stat is not available: %s",
                     r->status ? "bad answer" : r->error);
            json_object_object_add(o, "leader_error", json_object_new_string(msg));
        }
        cm_reply_json(j, o);
    }
    cm_httpc_req_free(r);
}

void h_dashboard_data(struct cm_job *j)
{
    struct cm_node *n = j->node;
    struct json_object *o = dashboard_data(n);
    uint64_t lid = cm_node_leader_id(n);
    const char *addr = lid && lid != cm_node_id(n) ? cm_node_leader_http(n) : NULL;
    if (addr == NULL) {
        cm_reply_json(j, o);
        return;
    }
    char url[512];
    snprintf(url, sizeof url, "%s%s/stat", cm_node_cfg(n)->node_protocol, addr);
    struct cm_httpc_req *r = cm_httpc_req_new("GET", url);
    cm_node_internal_headers(n, r, "/stat", ""); /* signed when auth is on */
    r->timeout_ms = 1000;
    r->done = leader_stat_done;
    r->data = j;
    j->hstate = o;
    j->hstate_free = data_free;
    j->backref = &r->data;
    cm_httpc_submit(cm_node_httpc(n), r);
}

/* GET /dashboard/history: this node's samples of the last hour (src/ops/history.c). */
void h_dashboard_history(struct cm_job *j)
{
    cm_reply_json(j, cm_history_json(j->node));
}
