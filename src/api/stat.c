/* /stat (spec §6), health probes, and the leader's side of follower read-index requests. */
#include <string.h>

#include "../fsm/mod_disk.h"
#include "../util/json.h"
#include "../util/timeutil.h"
#include "api.h"

/* space_stat (spec §6.3): live from the disk module, as of this node's clock. */
struct json_object *cm_space_stat(struct cm_node *n)
{
    return cm_disk_space_stat(cm_node_fsm(n), cm_now_ns());
}

/* cm_volume_stat (volume_stat): src/api/volume.c */

/*
 * raft_status with "applyingLength" (CubeFS v3.3) placed after "transferee", where the
 * reference has it. The reference counts batches queued between raft and its state machine. We
 * have no such queue: canonical raft calls the state machine's apply synchronously on the loop
 * thread for each entry that is committed and stored locally (src/raft/node.c fsm_apply). What
 * can wait is an entry that is committed but not yet applied here (a follower still writing it,
 * or one held back while a snapshot is installed), so the count is commit - applied.
 */
static struct json_object *raft_status(struct cm_node *n)
{
    struct json_object *in = cm_node_raft_status(n), *out = json_object_new_object();
    const struct raft *r = cm_node_raft(n);
    uint64_t applying = r->commit_index > r->last_applied ? r->commit_index - r->last_applied : 0;
    bool added = false;
    json_object_object_foreach(in, key, val)
    {
        if (!added && strcmp(key, "peers") == 0) {
            json_object_object_add(out, "applyingLength", json_object_new_uint64(applying));
            added = true;
        }
        json_object_object_add(out, key, json_object_get(val));
    }
    if (!added)
        json_object_object_add(out, "applyingLength", json_object_new_uint64(applying));
    json_object_put(in);
    return out;
}

struct json_object *cm_stat_json(struct cm_node *n)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "leader_host", json_object_new_string(cm_node_leader_host(n)));
    /* the top-level `readonly` of the config file (CubeFS v3.2); access skips such a cluster */
    json_object_object_add(o, "read_only", json_object_new_boolean(cm_node_cfg(n)->readonly));
    json_object_object_add(o, "raft_status", raft_status(n));
    json_object_object_add(o, "space_stat", cm_space_stat(n));
    json_object_object_add(o, "volume_stat", cm_volume_stat(n));
    cm_version_stat(n, o);
    return o;
}

void h_stat(struct cm_job *j)
{
    cm_reply_json(j, cm_stat_json(j->node));
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
