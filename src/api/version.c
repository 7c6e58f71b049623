/*
 * Versions: GET /internal/version (what this binary applies, asked by the other members, see
 * src/jobs/version_jobs.c) and the version part of /stat.
 */
#include "../fsm/mod_cluster.h"
#include "../jobs/version_jobs.h"
#include "api.h"

void h_internal_version(struct cm_job *j)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(CM_FORMAT_VERSION));
    json_object_object_add(o, "min_version", json_object_new_int(CM_CMD_VERSION));
    json_object_object_add(o, "cluster_version",
                           json_object_new_int((int)cm_cluster_version(cm_node_fsm(j->node))));
    json_object_object_add(o, "build", json_object_new_string(CM_VERSION));
    cm_reply_json(j, o);
}

void cm_version_stat(struct cm_node *n, struct json_object *stat)
{
    json_object_object_add(stat, "cluster_version",
                           json_object_new_int((int)cm_cluster_version(cm_node_fsm(n))));
    struct json_object *m = json_object_new_object();
    const struct raft_configuration *c = &cm_node_raft(n)->configuration;
    for (unsigned i = 0; i < c->n; i++) {
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)c->servers[i].id);
        json_object_object_add(m, key,
                               json_object_new_int((int)cm_version_of_member(n, c->servers[i].id)));
    }
    json_object_object_add(stat, "member_versions", m);
}
