/*
 * Route handlers, one file per domain. Parsers (`parse_*`) run on HTTP threads and see only the
 * request and the immutable config; handlers (`h_*`) run on the loop and own the state.
 */
#ifndef CM_API_H
#define CM_API_H

#include "../dispatch/dispatch.h"
#include "../http/args.h"
#include "../http/errors.h"
#include "../http/job.h"
#include "../http/router.h"
#include "../raft/node.h"

/* config.c */
int parse_config_set(struct cm_job *j);
void h_config_set(struct cm_job *j);
int parse_config_key(struct cm_job *j);
void h_config_get(struct cm_job *j);
void h_config_delete(struct cm_job *j);
void h_config_list(struct cm_job *j);

/* member.c */
int parse_member_add(struct cm_job *j);
void h_member_add(struct cm_job *j);
int parse_peer_id(struct cm_job *j);
void h_member_remove(struct cm_job *j);
void h_member_promote(struct cm_job *j);
void h_leadership_transfer(struct cm_job *j);
int parse_member_query(struct cm_job *j);
void h_member_view(struct cm_job *j);

/* scope.c */
int parse_bid_alloc(struct cm_job *j);
void h_bid_alloc(struct cm_job *j);
void h_diskid_alloc(struct cm_job *j);

/* disk.c */
int parse_disk_add(struct cm_job *j);
void h_disk_add(struct cm_job *j);
int parse_disk_info(struct cm_job *j);
void h_disk_info(struct cm_job *j);
int parse_disk_list(struct cm_job *j);
void h_disk_list(struct cm_job *j);
int parse_disk_set(struct cm_job *j);
void h_disk_set(struct cm_job *j);
int parse_disk_heartbeat(struct cm_job *j);
void h_disk_heartbeat(struct cm_job *j);
int parse_disk_id(struct cm_job *j);
void h_disk_drop(struct cm_job *j);
void h_disk_dropped(struct cm_job *j);
void h_disk_droppinglist(struct cm_job *j);
int parse_disk_access(struct cm_job *j);
void h_disk_access(struct cm_job *j);
int parse_admin_disk_update(struct cm_job *j);
void h_admin_disk_update(struct cm_job *j);

/* node.c */
int parse_node_add(struct cm_job *j);
void h_node_add(struct cm_job *j);
int parse_node_id_body(struct cm_job *j);
void h_node_drop(struct cm_job *j);
int parse_node_info(struct cm_job *j);
void h_node_info(struct cm_job *j);
void h_topo_info(struct cm_job *j);
struct cm_node_info;
struct json_object *cm_node_info_json(const struct cm_node_info *n);

/* volume.c */
int parse_volume_vid_query(struct cm_job *j);
void h_volume_get(struct cm_job *j);
int parse_volume_list(struct cm_job *j);
void h_volume_list(struct cm_job *j);
int parse_v2_volume_list(struct cm_job *j);
void h_v2_volume_list(struct cm_job *j);
int parse_volume_alloc(struct cm_job *j);
void h_volume_alloc(struct cm_job *j);
int parse_volume_retain(struct cm_job *j);
void h_volume_retain(struct cm_job *j);
int parse_volume_vid_body(struct cm_job *j);
void h_volume_lock(struct cm_job *j);
void h_volume_unlock(struct cm_job *j);
int parse_volume_update(struct cm_job *j);
void h_volume_update(struct cm_job *j);
int parse_volume_allocated_list(struct cm_job *j);
void h_volume_allocated_list(struct cm_job *j);
int parse_admin_update_volume(struct cm_job *j);
void h_admin_update_volume(struct cm_job *j);
int parse_admin_update_unit(struct cm_job *j);
void h_admin_update_unit(struct cm_job *j);
int parse_volume_unit_body(struct cm_job *j);
void h_volume_unit_alloc(struct cm_job *j);
void h_volume_unit_release(struct cm_job *j);
int parse_volume_unit_list(struct cm_job *j);
void h_volume_unit_list(struct cm_job *j);
int parse_chunk_report(struct cm_job *j);
void h_chunk_report(struct cm_job *j);
int parse_chunk_set_compact(struct cm_job *j);
void h_chunk_set_compact(struct cm_job *j);
/* After a disk's status, readonly flag or dropping flag changed (src/api/disk.c): bring the
 * volume health of its units up to date, then answer the job (volume_jobs.c). */
void cm_volume_disk_refresh(struct cm_job *j, uint32_t disk_id);

/* service.c */
int parse_service_register(struct cm_job *j);
void h_service_register(struct cm_job *j);
int parse_service_key(struct cm_job *j);
void h_service_unregister(struct cm_job *j);
void h_service_heartbeat(struct cm_job *j);
int parse_service_name(struct cm_job *j);
void h_service_get(struct cm_job *j);
void h_service_list(struct cm_job *j);

/* kv.c */
int parse_kv_path_key(struct cm_job *j);
int parse_kv_set(struct cm_job *j);
void h_kv_set(struct cm_job *j);
void h_kv_get(struct cm_job *j);
void h_kv_delete(struct cm_job *j);
int parse_kv_list(struct cm_job *j);
void h_kv_list(struct cm_job *j);

/* version.c */
void h_internal_version(struct cm_job *j);
/* cluster_version and member_versions (format version each member's binary applies, 0 when
 * not heard from) of /stat */
void cm_version_stat(struct cm_node *n, struct json_object *stat);

/* snapshot.c */
void h_snapshot_dump(struct cm_job *j);

/* stat.c */
void h_stat(struct cm_job *j);
void h_readindex(struct cm_job *j);
void h_livez(struct cm_job *j);
void h_readyz(struct cm_job *j);
/* The body of GET /stat as this node answers it (also the dashboard's). */
struct json_object *cm_stat_json(struct cm_node *n);
/* The space_stat and volume_stat objects of /stat (also rendered by /metrics, the dashboard). */
struct json_object *cm_space_stat(struct cm_node *n);
struct json_object *cm_volume_stat(struct cm_node *n);

/* operations: metrics.c, dashboard.c, logging.c */
void h_metrics(struct cm_job *j);
void h_web_index(struct cm_job *j);
void h_web_asset(struct cm_job *j);
void h_dashboard_data(struct cm_job *j);
void h_dashboard_history(struct cm_job *j);
int parse_log_level(struct cm_job *j);
void h_log_level(struct cm_job *j);

/* Shared by parsers: the immutable config of the node that runs the HTTP server. */
const struct cm_config *cm_job_cfg(struct cm_job *j);

#endif
