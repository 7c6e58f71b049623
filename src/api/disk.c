/*
 * Disk routes (spec §5.2): registration, info and listing, status changes, heartbeats, the drop
 * workflow, the readonly switch and the admin update. Validation happens here on the leader, in
 * the order of the spec, so that apply (mod_disk.c) only repeats the checks a concurrent change
 * could invalidate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/httpc.h"
#include "../fsm/mod_disk.h"
#include "../fsm/mod_node.h"
#include "../fsm/mod_scope.h"
#include "../jobs/version_jobs.h"
#include "../util/json.h"
#include "../util/timeutil.h"
#include "api.h"

#define LIST_DEFAULT 10
#define LIST_MAX 200
#define ZERO_TIME "0001-01-01T00:00:00Z"

struct disk_args {
    uint32_t disk_id;
    uint32_t node_id; /* add: the owning node (CubeFS v3.5.1+), 0 for older blobnodes */
    uint8_t status;
    bool readonly;
    struct cm_disk_info info;     /* add, admin update */
    char *own[6];                 /* strings of info */
    struct cm_disk_filter filter; /* list */
    char *fown[3];
    uint32_t marker;
    size_t count;
    struct cm_disk_hb *hb; /* heartbeat */
    size_t n_hb;
};

static void disk_args_free(void *p)
{
    struct disk_args *a = p;
    for (int i = 0; i < 6; i++)
        free(a->own[i]);
    for (int i = 0; i < 3; i++)
        free(a->fown[i]);
    free(a->hb);
    free(a);
}

static struct disk_args *new_args(struct cm_job *j)
{
    struct disk_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = disk_args_free;
    return a;
}

/* The shape Go's time.Time accepts in JSON: RFC 3339, optional fraction, Z or a numeric zone. */
static bool is_rfc3339(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; pat[i]; i++) {
        if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
            return false;
    }
    if (s[i] == '.') {
        size_t k = ++i;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == k)
            return false;
    }
    if (s[i] == 'Z')
        return s[i + 1] == '\0';
    if (s[i] != '+' && s[i] != '-')
        return false;
    static const char zone[] = "dd:dd";
    for (size_t k = 0; zone[k]; k++) {
        char c = s[i + 1 + k];
        if (zone[k] == 'd' ? !(c >= '0' && c <= '9') : c != zone[k])
            return false;
    }
    return s[i + 6] == '\0';
}

static int body_u32(struct cm_job *j, struct json_object *o, const char *name, uint32_t *out)
{
    uint64_t v = 0;
    int rc = cm_args_u64(j, o, name, false, UINT32_MAX, &v);
    *out = (uint32_t)v;
    return rc < 0 ? -1 : 0;
}

static int body_u8(struct cm_job *j, struct json_object *o, const char *name, uint8_t *out)
{
    uint64_t v = 0;
    int rc = cm_args_u64(j, o, name, false, UINT8_MAX, &v);
    *out = (uint8_t)v;
    return rc < 0 ? -1 : 0;
}

static int body_str(struct cm_job *j, struct json_object *o, const char *name, size_t max,
                    char **own, const char **out, const char *dflt)
{
    int rc = cm_args_strdup(j, o, name, false, max, own);
    if (rc < 0)
        return -1;
    if (*own == NULL)
        *own = cm_strdup(dflt);
    *out = *own;
    return 0;
}

static int body_num(struct cm_job *j, struct json_object *o, const char *name, int64_t max,
                    int64_t *out)
{
    *out = 0;
    return cm_args_i64(j, o, name, false, 0, max, out) < 0 ? -1 : 0;
}

/* A DiskInfo body (spec §4.1.1). `admin`: the status is not checked (out-of-range is ignored). */
static int parse_diskinfo(struct cm_job *j, bool admin)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct disk_args *a = new_args(j);
    struct cm_disk_info *d = &a->info;
    uint32_t ignored_set = 0;
    int rc = -1;
    if (body_u32(j, o, "cluster_id", &d->cluster_id) < 0 ||
        body_str(j, o, "idc", CM_DISK_IDC_MAX, &a->own[0], &d->idc, "") < 0 ||
        body_str(j, o, "rack", CM_DISK_RACK_MAX, &a->own[1], &d->rack, "") < 0 ||
        body_str(j, o, "host", CM_DISK_HOST_MAX, &a->own[2], &d->host, "") < 0 ||
        body_str(j, o, "path", CM_DISK_PATH_MAX, &a->own[3], &d->path, "") < 0 ||
        body_u8(j, o, "status", &d->status) < 0 ||
        cm_args_bool(j, o, "readonly", false, &d->readonly) < 0 ||
        body_str(j, o, "create_time", CM_DISK_TIME_MAX, &a->own[4], &d->create_time, ZERO_TIME) <
            0 ||
        body_str(j, o, "last_update_time", CM_DISK_TIME_MAX, &a->own[5], &d->last_update_time,
                 ZERO_TIME) < 0 ||
        body_u32(j, o, "disk_id", &d->disk_id) < 0 || body_u32(j, o, "node_id", &a->node_id) < 0 ||
        body_u32(j, o, "disk_set_id", &ignored_set) < 0 || /* the server assigns it */
        body_num(j, o, "used", CM_DISK_BYTES_MAX, &d->used) < 0 ||
        body_num(j, o, "free", CM_DISK_BYTES_MAX, &d->free) < 0 ||
        body_num(j, o, "size", CM_DISK_BYTES_MAX, &d->size) < 0 ||
        body_num(j, o, "max_chunk_cnt", CM_DISK_CHUNKS_MAX, &d->max_chunk_cnt) < 0 ||
        body_num(j, o, "free_chunk_cnt", CM_DISK_CHUNKS_MAX, &d->free_chunk_cnt) < 0 ||
        body_num(j, o, "used_chunk_cnt", CM_DISK_CHUNKS_MAX, &d->used_chunk_cnt) < 0)
        goto out;
    if (!is_rfc3339(d->create_time) || !is_rfc3339(d->last_update_time)) {
        cm_args_fail(j, "field \"%s\" is not an RFC 3339 time",
                     is_rfc3339(d->create_time) ? "last_update_time" : "create_time");
        goto out;
    }
    if (!admin && (d->status < CM_DISK_NORMAL || d->status > CM_DISK_DROPPED)) {
        cm_job_set_code(j, CM_ERR_INVALID_DISK_STATUS);
        goto out;
    }
    /* The leader calls the host of a disk: only a blobnode address (docs/security.md). A disk of
     * a node takes the node's host, so it may leave its own empty. */
    if (d->host[0] != '\0' ? !cm_httpc_host_ok(d->host) : (!admin && a->node_id == 0)) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    a->disk_id = d->disk_id;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

int parse_disk_add(struct cm_job *j)
{
    return parse_diskinfo(j, false);
}

int parse_admin_disk_update(struct cm_job *j)
{
    return parse_diskinfo(j, true);
}

/* {"disk_id"} and optionally {"status"} / {"readonly"}. */
static int parse_id_body(struct cm_job *j, const char *extra)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct disk_args *a = new_args(j);
    int rc = body_u32(j, o, "disk_id", &a->disk_id);
    if (rc == 0 && extra && strcmp(extra, "status") == 0)
        rc = body_u8(j, o, "status", &a->status);
    if (rc == 0 && extra && strcmp(extra, "readonly") == 0)
        rc = cm_args_bool(j, o, "readonly", false, &a->readonly) < 0 ? -1 : 0;
    json_object_put(o);
    return rc;
}

int parse_disk_id(struct cm_job *j)
{
    return parse_id_body(j, NULL);
}

int parse_disk_set(struct cm_job *j)
{
    if (parse_id_body(j, "status") != 0)
        return -1;
    struct disk_args *a = j->args;
    /* /disk/set takes normal..repaired; dropped only comes from the drop workflow */
    if (a->status < CM_DISK_NORMAL || a->status >= CM_DISK_DROPPED) {
        cm_job_set_code(j, CM_ERR_INVALID_DISK_STATUS);
        return -1;
    }
    return 0;
}

int parse_disk_access(struct cm_job *j)
{
    return parse_id_body(j, "readonly");
}

int parse_disk_info(struct cm_job *j)
{
    uint64_t id;
    if (cm_args_q_u64(j, "disk_id", true, UINT32_MAX, &id) < 0)
        return -1;
    new_args(j)->disk_id = (uint32_t)id;
    return 0;
}

int parse_disk_list(struct cm_job *j)
{
    struct disk_args *a = new_args(j);
    const char *idc = NULL, *rack = NULL, *host = NULL;
    uint64_t status = 0, marker = 0;
    int64_t count = 0;
    if (cm_args_q_str(j, "idc", false, CM_DISK_IDC_MAX, &idc) < 0 ||
        cm_args_q_str(j, "rack", false, CM_DISK_RACK_MAX, &rack) < 0 ||
        cm_args_q_str(j, "host", false, CM_DISK_HOST_MAX, &host) < 0 ||
        cm_args_q_u64(j, "status", false, UINT8_MAX, &status) < 0 ||
        cm_args_q_u64(j, "marker", false, UINT32_MAX, &marker) < 0 ||
        cm_args_q_i64(j, "count", false, 0, INT32_MAX, &count) < 0)
        return -1;
    if (rack && !idc) { /* a rack name is only unique within its IDC */
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return -1;
    }
    a->filter.idc = idc ? (a->fown[0] = cm_strdup(idc)) : NULL;
    a->filter.rack = rack ? (a->fown[1] = cm_strdup(rack)) : NULL;
    a->filter.host = host ? (a->fown[2] = cm_strdup(host)) : NULL;
    a->filter.status = (uint8_t)status;
    a->marker = (uint32_t)marker;
    a->count = count == 0 ? LIST_DEFAULT : count > LIST_MAX ? LIST_MAX : (size_t)count;
    return 0;
}

int parse_disk_heartbeat(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct disk_args *a = new_args(j);
    int rc = -1;
    struct json_object *arr = NULL;
    json_object_object_get_ex(o, "disks", &arr);
    if (arr != NULL && !json_object_is_type(arr, json_type_array)) {
        cm_args_fail(j, "field \"disks\" must be an array");
        goto out;
    }
    size_t n = arr ? json_object_array_length(arr) : 0;
    a->hb = cm_calloc(n + 1, sizeof *a->hb);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        struct cm_disk_hb *h = &a->hb[i];
        char err[256];
        uint64_t id = 0;
        int64_t ignored;
        if (!json_object_is_type(e, json_type_object)) {
            cm_args_fail(j, "disks[%zu] must be an object", i);
            goto out;
        }
        if (cm_json_get_u64(e, "disk_id", false, UINT32_MAX, &id, err, sizeof err) < 0 ||
            cm_json_get_i64(e, "used", false, 0, CM_DISK_BYTES_MAX, &h->used, err, sizeof err) <
                0 ||
            cm_json_get_i64(e, "free", false, 0, CM_DISK_BYTES_MAX, &h->free, err, sizeof err) <
                0 ||
            cm_json_get_i64(e, "size", false, 0, CM_DISK_BYTES_MAX, &h->size, err, sizeof err) <
                0 ||
            cm_json_get_i64(e, "used_chunk_cnt", false, 0, CM_DISK_CHUNKS_MAX, &h->used_chunk_cnt,
                            err, sizeof err) < 0 ||
            /* sent by blobnodes and ignored (clustermgr computes them), but typed */
            cm_json_get_i64(e, "max_chunk_cnt", false, INT64_MIN, INT64_MAX, &ignored, err,
                            sizeof err) < 0 ||
            cm_json_get_i64(e, "free_chunk_cnt", false, INT64_MIN, INT64_MAX, &ignored, err,
                            sizeof err) < 0) {
            cm_args_fail(j, "disks[%zu]: %s", i, err);
            goto out;
        }
        h->disk_id = (uint32_t)id;
    }
    a->n_hb = n;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

/* A DiskInfo with the v3.5.1 fields node_id and disk_set_id; a disk that has a node shows the
 * node's idc, rack and host (as v3.5.3 does). */
static struct json_object *diskinfo_json(struct cm_fsm *fsm, const struct cm_disk_info *d)
{
    uint32_t node_id, disk_set_id;
    cm_node_of_disk(fsm, d->disk_id, &node_id, &disk_set_id, NULL);
    struct cm_node_info n = {.idc = d->idc, .rack = d->rack, .host = d->host};
    if (node_id)
        cm_node_get(fsm, node_id, &n);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "cluster_id", json_object_new_uint64(d->cluster_id));
    json_object_object_add(o, "idc", json_object_new_string(n.idc));
    json_object_object_add(o, "rack", json_object_new_string(n.rack));
    json_object_object_add(o, "host", json_object_new_string(n.host));
    json_object_object_add(o, "path", json_object_new_string(d->path));
    json_object_object_add(o, "status", json_object_new_int(d->status));
    json_object_object_add(o, "readonly", json_object_new_boolean(d->readonly));
    json_object_object_add(o, "create_time", json_object_new_string(d->create_time));
    json_object_object_add(o, "last_update_time", json_object_new_string(d->last_update_time));
    json_object_object_add(o, "disk_id", json_object_new_uint64(d->disk_id));
    json_object_object_add(o, "used", json_object_new_int64(d->used));
    json_object_object_add(o, "free", json_object_new_int64(d->free));
    json_object_object_add(o, "size", json_object_new_int64(d->size));
    json_object_object_add(o, "max_chunk_cnt", json_object_new_int64(d->max_chunk_cnt));
    json_object_object_add(o, "free_chunk_cnt", json_object_new_int64(d->free_chunk_cnt));
    json_object_object_add(o, "used_chunk_cnt", json_object_new_int64(d->used_chunk_cnt));
    json_object_object_add(o, "disk_set_id", json_object_new_uint64(disk_set_id));
    json_object_object_add(o, "node_id", json_object_new_uint64(node_id));
    return o;
}

/* {"disks":[...],"marker":m} for a list of ids; `null_when_empty` as /disk/droppinglist does. */
static struct json_object *disks_json(struct cm_fsm *fsm, const uint32_t *ids, size_t n,
                                      uint32_t marker, bool null_when_empty)
{
    struct json_object *o = json_object_new_object();
    struct json_object *arr = n == 0 && null_when_empty ? NULL : json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct cm_disk_info d;
        if (cm_disk_get(fsm, ids[i], &d))
            json_object_array_add(arr, diskinfo_json(fsm, &d));
    }
    json_object_object_add(o, "disks", arr);
    json_object_object_add(o, "marker", json_object_new_uint64(marker));
    return o;
}

void h_disk_info(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_disk_info d;
    if (!cm_disk_get(cm_node_fsm(j->node), a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    cm_reply_json(j, diskinfo_json(cm_node_fsm(j->node), &d));
}

/* The order of checks is v3.5.3's (current-release.md §3.1), with two supersets: a disk without
 * a node (blobnodes of 3.5.0 and older) is still accepted, its idc checked against the config,
 * and a disk that has a node takes the node's idc, rack and host (as master does), so the
 * host+path rule and every listing by host see the node's host. */
void h_disk_add(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    const struct cm_config *cfg = cm_node_cfg(j->node);
    struct cm_disk_info *d = &a->info;
    struct cm_node_info n = {0};
    if (a->node_id != 0 && !cm_version_require(j, 2, "POST /disk/add with a node_id"))
        return;
    if (a->node_id != 0 && (!cm_node_get(fsm, a->node_id, &n) || n.status == CM_NODE_DROPPED)) {
        cm_reply_code(j, CM_ERR_NODE_NOT_FOUND);
        return;
    }
    struct cm_node_caps caps = {0};
    if (a->node_id != 0) {
        d->idc = n.idc, d->rack = n.rack, d->host = n.host;
        cm_node_caps_from_config(&cfg->fsm, n.disk_type, &caps);
    }
    struct cm_disk_info old;
    if (cm_disk_get(fsm, d->disk_id, &old)) {
        uint32_t old_node;
        cm_node_of_disk(fsm, d->disk_id, &old_node, NULL, NULL);
        /* the compatible re-register: a disk registered before its blobnode knew nodes */
        if (a->node_id != 0 && old_node == 0 && strcmp(old.host, n.host) == 0 &&
            strcmp(old.idc, n.idc) == 0 && strcmp(old.rack, n.rack) == 0) {
            struct cm_buf b = {0};
            cm_node_enc_attach(&b, d->disk_id, a->node_id, &caps);
            cm_job_propose(j, CM_MOD_NODE, CM_NODE_OP_ATTACH_DISK, &b, NULL);
            return;
        }
        cm_reply_code(j, CM_ERR_EXIST);
        return;
    }
    /* the quota (limits.disk_max_*): a full table still takes repairs, never new disks */
    if (cm_disk_count(fsm) >= cfg->disk_max_entries ||
        cm_disk_bytes(fsm) + cm_disk_entry_bytes(d->idc, d->rack, d->host, d->path, d->create_time,
                                                 d->last_update_time) >
            cfg->disk_max_bytes) {
        cm_reply_error(j, 400,
                       "the disk table is full (limits.disk_max_entries, "
                       "limits.disk_max_bytes)",
                       "Argument");
        return;
    }
    bool terminal = d->status == CM_DISK_REPAIRED || d->status == CM_DISK_DROPPED;
    if ((!terminal && cm_disk_hostpath_owner(fsm, d->host, d->path) != 0) ||
        d->cluster_id != cfg->cluster_id || (a->node_id == 0 && !cm_config_has_idc(cfg, d->idc)) ||
        d->disk_id == 0 || d->disk_id > CM_DISK_ID_MAX ||
        d->disk_id > cm_scope_current(fsm, "diskid") ||
        a->node_id > cm_scope_current(fsm, "nodeid")) {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    struct cm_buf b = {0};
    cm_disk_enc_add(&b, d, &cfg->fsm);
    if (a->node_id != 0)
        cm_disk_enc_add_node(&b, a->node_id, &caps);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_ADD, &b, NULL);
}

void h_disk_list(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    /* a marker that names no disk is fine: "strictly after this id" (access pages broken disks
     * from marker=1 whether or not disk 1 exists) */
    uint32_t ids[LIST_MAX];
    size_t n = cm_disk_list(fsm, &a->filter, a->marker, ids, a->count);
    cm_reply_json(j, disks_json(fsm, ids, n, n ? ids[n - 1] : 0, false));
}

/* A disk command that can change the disk's writability applied: the volumes with a unit on it
 * get their health recomputed before the answer (the reference's VolumeMgr op 8). */
static void disk_changed(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    cm_volume_disk_refresh(j, ((struct disk_args *)j->args)->disk_id);
}

void h_disk_set(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_disk_info d;
    if (!cm_disk_get(cm_node_fsm(j->node), a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    if (d.status == a->status) {
        if (cm_node_write_confirmed(j)) /* a deposed leader must not say "done" */
            cm_reply_empty(j);
        return;
    }
    /* v3.5.1+: 913 for a dropping disk (3.2-3.5.0 said 932; a current blobnode retries its
     * "set broken" until 200 or 913) */
    if (d.dropping || !cm_disk_transition_ok(d.status, a->status)) {
        cm_reply_code(j, CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW);
        return;
    }
    struct cm_buf b = {0};
    cm_disk_enc_set_status(&b, a->disk_id, a->status);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_SET_STATUS, &b, disk_changed);
}

static void heartbeat_applied(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    struct json_object *o = j->hstate;
    j->hstate = NULL;
    cm_reply_json(j, o);
}

static void put_json(void *p)
{
    json_object_put(p);
}

/* Every disk of a heartbeat is answered, but only those whose last applied heartbeat is at least
 * heartbeat_notify_interval_s old are proposed (v3.3+, the reference's IsFrequentHeatBeat): a
 * blobnode that beats more often than that costs no raft entry. */
void h_disk_heartbeat(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    const struct cm_config *cfg = cm_node_cfg(j->node);
    int64_t now = cm_now_ns();
    int64_t lease_ns = cfg->heartbeat_expire_interval_s * 1000000000LL;
    int64_t notify_ns = cfg->heartbeat_notify_interval_s * 1000000000LL;
    /* Answer from the state before this heartbeat (status and readonly do not change with it),
     * but only once it is committed: an acknowledged heartbeat survives a leader change. */
    struct json_object *arr = json_object_new_array();
    struct cm_disk_hb *due = cm_calloc(a->n_hb + 1, sizeof *due);
    size_t n_due = 0;
    for (size_t i = 0; i < a->n_hb; i++) {
        struct cm_disk_info d;
        if (!cm_disk_get(fsm, a->hb[i].disk_id, &d)) {
            free(due);
            json_object_put(arr);
            cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
            return;
        }
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "disk_id", json_object_new_uint64(d.disk_id));
        json_object_object_add(e, "status", json_object_new_int(d.status));
        json_object_object_add(e, "read_only", json_object_new_boolean(d.readonly));
        json_object_array_add(arr, e);
        bool frequent =
            notify_ns > 0 && d.expire_ns != 0 && now - (d.expire_ns - lease_ns) < notify_ns;
        if (!frequent)
            due[n_due++] = a->hb[i];
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "disks", arr);
    if (n_due == 0) {
        free(due);
        cm_reply_json(j, o);
        return;
    }
    if (j->hstate && j->hstate_free) /* handled again after a leader change */
        j->hstate_free(j->hstate);
    j->hstate = o;
    j->hstate_free = put_json;
    struct cm_buf b = {0};
    cm_disk_enc_heartbeat(&b, due, n_due, &cfg->fsm);
    free(due);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, &b, heartbeat_applied);
}

void h_disk_drop(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_disk_info d;
    if (!cm_disk_get(cm_node_fsm(j->node), a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    if (d.dropping) {
        cm_reply_empty(j);
        return;
    }
    /* since v3.2: only a normal disk that is readonly already (operators switch it first) */
    if (d.status != CM_DISK_NORMAL || !d.readonly) {
        cm_reply_code(j, CM_ERR_DISK_ABNORMAL);
        return;
    }
    struct cm_buf b = {0};
    cm_disk_enc_id(&b, a->disk_id);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_DROP, &b, disk_changed);
}

void h_disk_dropped(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_disk_info d;
    if (!cm_disk_get(fsm, a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    if (d.status == CM_DISK_DROPPED) {
        cm_reply_empty(j);
        return;
    }
    if (!d.dropping) {
        cm_reply_code(j, CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW);
        return;
    }
    if (cm_volume_units_on_disk(fsm, a->disk_id) > 0) {
        cm_reply_code(j, CM_ERR_DROPPED_DISK_HAS_UNIT);
        return;
    }
    struct cm_buf b = {0};
    cm_disk_enc_id(&b, a->disk_id);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_DROPPED, &b, disk_changed);
}

void h_disk_droppinglist(struct cm_job *j)
{
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    size_t n;
    uint32_t *ids = cm_disk_dropping(fsm, &n);
    cm_reply_json(j, disks_json(fsm, ids, n, 0, true));
    free(ids);
}

void h_disk_access(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_disk_info d;
    if (!cm_disk_get(cm_node_fsm(j->node), a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    if (d.readonly == a->readonly) {
        cm_reply_empty(j);
        return;
    }
    if (d.dropping) {
        cm_reply_code(j, CM_ERR_DISK_DROPPING);
        return;
    }
    struct cm_buf b = {0};
    cm_disk_enc_access(&b, a->disk_id, a->readonly);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_ACCESS, &b, disk_changed);
}

void h_admin_disk_update(struct cm_job *j)
{
    struct disk_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_disk_info d;
    if (!cm_disk_get(fsm, a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    uint8_t to = a->info.status;
    if (to >= CM_DISK_NORMAL && to <= CM_DISK_DROPPED && to != d.status && to != CM_DISK_REPAIRED &&
        to != CM_DISK_DROPPED) {
        /* reviving a disk must not give its host+path to two disks */
        uint32_t owner = cm_disk_hostpath_owner(fsm, d.host, d.path);
        if (owner != 0 && owner != d.disk_id) {
            cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
            return;
        }
    }
    struct cm_buf b = {0};
    cm_disk_enc_admin_update(&b, a->disk_id, to, a->info.max_chunk_cnt, a->info.free_chunk_cnt);
    cm_job_propose(j, CM_MOD_DISK, CM_DISK_OP_ADMIN_UPDATE, &b, disk_changed);
}
