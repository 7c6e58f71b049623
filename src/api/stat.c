/* /stat (spec §6), health probes, and the leader's side of follower read-index requests. */
#include <string.h>

#include "../util/json.h"
#include "api.h"

/* space_stat with zero counters for every configured IDC, until disks exist. */
struct json_object *cm_space_stat(struct cm_node *n)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "total_space", json_object_new_int64(0));
    json_object_object_add(o, "free_space", json_object_new_int64(0));
    json_object_object_add(o, "used_space", json_object_new_int64(0));
    json_object_object_add(o, "writable_space", json_object_new_int64(0));
    json_object_object_add(o, "total_blob_node", json_object_new_int64(0));
    json_object_object_add(o, "total_disk", json_object_new_int64(0));
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < cfg->n_idc; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            dup |= strcmp(cfg->idc[k], cfg->idc[i]) == 0;
        if (dup)
            continue;
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "idc", json_object_new_string(cfg->idc[i]));
        static const char *const fields[] = {
            "total",  "total_chunk", "total_free_chunk", "available", "readonly", "expired",
            "broken", "repairing",   "repaired",         "dropping",  "dropped"};
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            json_object_object_add(e, fields[f], json_object_new_int64(0));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "disk_stat_infos", arr);
    return o;
}

struct json_object *cm_volume_stat(struct cm_node *n)
{
    (void)n;
    struct json_object *o = json_object_new_object();
    static const char *const fields[] = {"total_volume",  "idle_volume", "can_alloc_volume",
                                         "active_volume", "lock_volume", "unlocking_volume"};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        json_object_object_add(o, fields[f], json_object_new_int64(0));
    return o;
}

void h_stat(struct cm_job *j)
{
    struct cm_node *n = j->node;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "leader_host", json_object_new_string(cm_node_leader_host(n)));
    json_object_object_add(o, "raft_status", cm_node_raft_status(n));
    json_object_object_add(o, "space_stat", cm_space_stat(n));
    json_object_object_add(o, "volume_stat", cm_volume_stat(n));
    cm_reply_json(j, o);
}

void h_readindex(struct cm_job *j)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "index", json_object_new_uint64(cm_node_raft(j->node)->last_applied));
    cm_reply_json(j, o);
}

void h_livez(struct cm_job *j)
{
    char *s = cm_strdup("{\"status\":\"ok\"}");
    cm_job_set_response(j, 200, "application/json", s, strlen(s));
}

void h_readyz(struct cm_job *j)
{
    char why[160];
    bool ok = cm_node_ready(j->node, why, sizeof why);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "ready", json_object_new_boolean(ok));
    json_object_object_add(o, "reason", json_object_new_string(why));
    size_t len;
    char *s = cm_json_render_put(o, &len);
    cm_reply(j, ok ? 200 : 503, "application/json", s, len);
}
