/*
 * Node routes of CubeFS v3.5.1 and later (current-release.md §2.2): POST /node/add, POST
 * /node/drop, GET /node/info, GET /topo/info. A current blobnode calls /node/add once at every
 * start, after registering as a service and before it lists or adds its disks; any answer but 200
 * or 201 makes it exit.
 *
 * Validation happens here on the leader in the reference's order; apply (mod_node.c) repeats the
 * checks a concurrent entry could change (the host+disk type filter, the node set, the node's
 * disks) and takes the node id from the `nodeid` scope in the same entry.
 */
#include <stdlib.h>
#include <string.h>

#include "../client/httpc.h"
#include "../fsm/mod_disk.h"
#include "../fsm/mod_node.h"
#include "../jobs/version_jobs.h"
#include "api.h"

struct node_args {
    uint32_t node_id;
    uint32_t node_set_id;
    uint32_t cluster_id;
    uint8_t disk_type, role;
    char *idc, *rack, *host;
};

static void node_args_free(void *p)
{
    struct node_args *a = p;
    free(a->idc);
    free(a->rack);
    free(a->host);
    free(a);
}

static struct node_args *new_args(struct cm_job *j)
{
    struct node_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = node_args_free;
    return a;
}

/* An enumeration that JSON gives as an integer 1..max or a case-insensitive name (§2.1 item 3).
 * Absent: 0 (validation refuses it later). A present 0, an integer out of range or an unknown
 * name is a decode error. */
static int body_enum(struct cm_job *j, struct json_object *o, const char *name, int max,
                     int (*parse)(const char *), uint8_t *out)
{
    struct json_object *v = NULL;
    *out = 0;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        int x = parse(json_object_get_string(v));
        if (x < 0)
            return cm_args_fail(j, "field \"%s\": unknown name \"%s\"", name,
                                json_object_get_string(v));
        *out = (uint8_t)x;
        return 0;
    }
    if (json_object_is_type(v, json_type_int)) {
        int64_t x = json_object_get_int64(v);
        if (x < 1 || x > max)
            return cm_args_fail(j, "field \"%s\": %lld is not a valid value", name, (long long)x);
        *out = (uint8_t)x;
        return 0;
    }
    return cm_args_fail(j, "field \"%s\" must be an integer or a name", name);
}

static int parse_role(const char *s)
{
    return cm_node_role_parse(s);
}

int parse_node_add(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct node_args *a = new_args(j);
    uint64_t set = 0, cluster = 0, ignored = 0;
    int rc = -1;
    if (cm_args_u64(j, o, "node_id", false, UINT32_MAX, &ignored) < 0 ||
        cm_args_u64(j, o, "node_set_id", false, UINT32_MAX, &set) < 0 ||
        cm_args_u64(j, o, "cluster_id", false, UINT32_MAX, &cluster) < 0 ||
        body_enum(j, o, "disk_type", CM_DISK_TYPE_MAX, cm_disk_type_parse, &a->disk_type) < 0 ||
        cm_args_strdup(j, o, "idc", false, CM_DISK_IDC_MAX, &a->idc) < 0 ||
        cm_args_strdup(j, o, "rack", false, CM_DISK_RACK_MAX, &a->rack) < 0 ||
        cm_args_strdup(j, o, "host", false, CM_DISK_HOST_MAX, &a->host) < 0 ||
        body_enum(j, o, "role", 2, parse_role, &a->role) < 0 ||
        cm_args_u64(j, o, "status", false, UINT8_MAX, &ignored) < 0)
        goto out;
    a->node_set_id = (uint32_t)set;
    a->cluster_id = (uint32_t)cluster;
    if (!a->idc)
        a->idc = cm_strdup("");
    if (!a->rack)
        a->rack = cm_strdup("");
    if (!a->host)
        a->host = cm_strdup("");
    /* the leader calls a node's disks at this host: only a blobnode address (docs/security.md) */
    if (!cm_httpc_host_ok(a->host)) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

static void node_added(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "node_id", json_object_new_uint64(res->v[0]));
    cm_reply_json(j, o);
}

void h_node_add(struct cm_job *j)
{
    struct node_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    const struct cm_config *cfg = cm_node_cfg(j->node);
    if (!cm_version_require(j, 2, "POST /node/add"))
        return;
    /* 1. idempotent by host + disk type: the existing id, nothing changed (dropped nodes too) */
    uint32_t existing = a->disk_type ? cm_node_find(fsm, a->host, a->disk_type) : 0;
    if (existing) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "node_id", json_object_new_uint64(existing));
        cm_reply_json(j, o);
        return;
    }
    /* 2-4. cluster, idc, role and disk type; a node needs a host to be told apart */
    if (a->cluster_id != cfg->cluster_id || !cm_config_has_idc(cfg, a->idc) ||
        a->role != CM_NODE_ROLE_BLOBNODE || a->disk_type == 0 || a->host[0] == '\0') {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    /* the quota (limits.node_max_*): a known host was answered above */
    if (cm_node_count(fsm) >= cfg->node_max_entries ||
        cm_node_bytes(fsm) + cm_node_entry_bytes(a->idc, a->rack, a->host) > cfg->node_max_bytes) {
        cm_reply_error(j, 400,
                       "the node table is full (limits.node_max_entries, "
                       "limits.node_max_bytes)",
                       "Argument");
        return;
    }
    /* 6. a node set the caller names must exist for its disk type (1 is the EC set) */
    if (a->node_set_id != 0) {
        if (a->node_set_id == 1 || a->node_set_id > cm_node_cur_set_id(fsm)) {
            cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
            return;
        }
        if (!cm_node_set_exists(fsm, a->node_set_id, a->disk_type)) {
            cm_reply_code(j, CM_ERR_NODESET_NOT_FOUND);
            return;
        }
    }
    struct cm_node_info n = {.cluster_id = a->cluster_id,
                             .disk_type = a->disk_type,
                             .role = a->role,
                             .idc = a->idc,
                             .rack = a->rack,
                             .host = a->host};
    struct cm_node_caps caps;
    cm_node_caps_from_config(&cfg->fsm, a->disk_type, &caps);
    struct cm_buf b = {0};
    cm_node_enc_add(&b, &n, a->node_set_id, &caps);
    cm_job_propose(j, CM_MOD_NODE, CM_NODE_OP_ADD, &b, node_added);
}

int parse_node_id_body(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    uint64_t id = 0;
    int rc = cm_args_u64(j, o, "node_id", true, UINT32_MAX, &id) < 0 ? -1 : 0;
    json_object_put(o);
    if (rc == 0)
        new_args(j)->node_id = (uint32_t)id;
    return rc;
}

void h_node_drop(struct cm_job *j)
{
    struct node_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_node_info n;
    if (!cm_version_require(j, 2, "POST /node/drop"))
        return;
    if (!cm_node_get(fsm, a->node_id, &n)) {
        cm_reply_code(j, CM_ERR_NODE_NOT_FOUND);
        return;
    }
    if (n.status == CM_NODE_DROPPED) {
        cm_reply_empty(j);
        return;
    }
    size_t nd;
    const uint32_t *disks = cm_node_disks(fsm, a->node_id, &nd);
    for (size_t i = 0; i < nd; i++) {
        struct cm_disk_info d;
        if (cm_disk_get(fsm, disks[i], &d) && d.status != CM_DISK_REPAIRED &&
            d.status != CM_DISK_DROPPED) {
            cm_reply_code(j, CM_ERR_NODE_DISKS_IN_USE);
            return;
        }
    }
    struct cm_buf b = {0};
    cm_node_enc_drop(&b, a->node_id);
    cm_job_propose(j, CM_MOD_NODE, CM_NODE_OP_DROP, &b, NULL);
}

int parse_node_info(struct cm_job *j)
{
    uint64_t id;
    if (cm_args_q_u64(j, "node_id", true, UINT32_MAX, &id) < 0)
        return -1;
    new_args(j)->node_id = (uint32_t)id;
    return 0;
}

struct json_object *cm_node_info_json(const struct cm_node_info *n)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "node_id", json_object_new_uint64(n->node_id));
    json_object_object_add(o, "node_set_id", json_object_new_uint64(n->node_set_id));
    json_object_object_add(o, "cluster_id", json_object_new_uint64(n->cluster_id));
    json_object_object_add(o, "disk_type", json_object_new_int(n->disk_type));
    json_object_object_add(o, "idc", json_object_new_string(n->idc));
    json_object_object_add(o, "rack", json_object_new_string(n->rack));
    json_object_object_add(o, "host", json_object_new_string(n->host));
    json_object_object_add(o, "role", json_object_new_int(n->role));
    json_object_object_add(o, "status", json_object_new_int(n->status));
    return o;
}

void h_node_info(struct cm_job *j)
{
    struct node_args *a = j->args;
    struct cm_node_info n;
    if (!cm_node_get(cm_node_fsm(j->node), a->node_id, &n)) {
        cm_reply_code(j, CM_ERR_NODE_NOT_FOUND);
        return;
    }
    cm_reply_json(j, cm_node_info_json(&n));
}

void h_topo_info(struct cm_job *j)
{
    cm_reply_json(j, cm_node_topo_json(cm_node_fsm(j->node)));
}
