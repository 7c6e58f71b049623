/*
 * Leader jobs and loop-side services of every domain are wired up here, once, before the node
 * starts serving HTTP. Each domain registers its hooks (cm_node_add_hooks) and, when it keeps
 * loop-side state, its extension slot (cm_node_set_ext).
 */
#include "jobs.h"

#include "../ops/history.h"
#include "../ops/ops.h"
#include "../raft/node.h"

void cm_disk_jobs_init(struct cm_node *n);    /* disk_jobs.c */
void cm_volume_jobs_init(struct cm_node *n);  /* volume_jobs.c */
void cm_version_jobs_init(struct cm_node *n); /* version_jobs.c */
void cm_service_jobs_init(struct cm_node *n); /* service_jobs.c */

void cm_jobs_init(struct cm_node *n)
{
    cm_ops_init(n); /* latency timing, service-manager notifications, ops metrics */
    cm_disk_jobs_init(n);
    cm_volume_jobs_init(n);
    cm_version_jobs_init(n);
    cm_service_jobs_init(n);
    cm_history_init(n); /* the console's charts: the last hour of this node */
}
