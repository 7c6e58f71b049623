/*
 * The route table: every path the node serves, how it executes, and its handler.
 * Order matters only for prefix routes (listed after exact ones that share the prefix).
 */
#include "api.h"

static const struct cm_route routes[] = {
    /* config and task switches */
    {"/config/set", CM_POST, CM_R_WRITE, 0, parse_config_set, h_config_set, "config_set"},
    {"/config/get", CM_GET, CM_R_READ, 0, parse_config_key, h_config_get, "config_get"},
    {"/config/delete", CM_POST, CM_R_WRITE | CM_R_QUERY_ARGS, 0, parse_config_key, h_config_delete,
     "config_delete"},
    {"/config/list", CM_GET, CM_R_READ, 0, NULL, h_config_list, "config_list"},

    /* membership */
    {"/member/add", CM_POST, CM_R_WRITE, 0, parse_member_add, h_member_add, "member_add"},
    {"/member/remove", CM_POST, CM_R_WRITE, 0, parse_peer_id, h_member_remove, "member_remove"},
    {"/member/promote", CM_POST, CM_R_WRITE, 0, parse_peer_id, h_member_promote, "member_promote"},
    {"/leadership/transfer", CM_POST, CM_R_WRITE, 0, parse_peer_id, h_leadership_transfer,
     "leadership_transfer"},

    /* id scopes */
    {"/bid/alloc", CM_POST, CM_R_WRITE, 0, parse_bid_alloc, h_bid_alloc, "bid_alloc"},
    {"/diskid/alloc", CM_POST, CM_R_WRITE, 0, NULL, h_diskid_alloc, "diskid_alloc"},

    /* disks and blobnodes */
    {"/disk/add", CM_POST, CM_R_WRITE, 0, parse_disk_add, h_disk_add, "disk_add"},
    {"/disk/info", CM_GET, CM_R_READ, 0, parse_disk_info, h_disk_info, "disk_info"},
    {"/disk/list", CM_GET, CM_R_READ, 0, parse_disk_list, h_disk_list, "disk_list"},
    {"/disk/set", CM_POST, CM_R_WRITE, 0, parse_disk_set, h_disk_set, "disk_set"},
    {"/disk/heartbeat", CM_POST, CM_R_WRITE, 0, parse_disk_heartbeat, h_disk_heartbeat,
     "disk_heartbeat"},
    {"/disk/drop", CM_POST, CM_R_WRITE, 0, parse_disk_id, h_disk_drop, "disk_drop"},
    {"/disk/dropped", CM_POST, CM_R_WRITE, 0, parse_disk_id, h_disk_dropped, "disk_dropped"},
    {"/disk/droppinglist", CM_GET, CM_R_READ, 0, NULL, h_disk_droppinglist, "disk_droppinglist"},
    {"/disk/access", CM_POST, CM_R_WRITE, 0, parse_disk_access, h_disk_access, "disk_access"},
    {"/admin/disk/update", CM_POST, CM_R_WRITE, 0, parse_admin_disk_update, h_admin_disk_update,
     "admin_disk_update"},

    /* blobnodes and copy sets (CubeFS v3.5.1 and later) */
    {"/node/add", CM_POST, CM_R_WRITE, 0, parse_node_add, h_node_add, "node_add"},
    {"/node/drop", CM_POST, CM_R_WRITE, 0, parse_node_id_body, h_node_drop, "node_drop"},
    {"/node/info", CM_GET, CM_R_READ, 0, parse_node_info, h_node_info, "node_info"},
    {"/topo/info", CM_GET, CM_R_READ, 0, NULL, h_topo_info, "topo_info"},

    /* volumes, units and chunks */
    {"/volume/get", CM_GET, CM_R_READ, 0, parse_volume_vid_query, h_volume_get, "volume_get"},
    {"/volume/list", CM_GET, CM_R_READ, 0, parse_volume_list, h_volume_list, "volume_list"},
    {"/v2/volume/list", CM_GET, CM_R_READ, 0, parse_v2_volume_list, h_v2_volume_list,
     "v2_volume_list"},
    {"/volume/alloc", CM_POST, CM_R_WRITE, 0, parse_volume_alloc, h_volume_alloc, "volume_alloc"},
    {"/volume/retain", CM_POST, CM_R_WRITE, 0, parse_volume_retain, h_volume_retain,
     "volume_retain"},
    {"/volume/lock", CM_POST, CM_R_WRITE, 0, parse_volume_vid_body, h_volume_lock, "volume_lock"},
    {"/volume/unlock", CM_POST, CM_R_WRITE, 0, parse_volume_vid_body, h_volume_unlock,
     "volume_unlock"},
    {"/volume/update", CM_POST, CM_R_WRITE, 0, parse_volume_update, h_volume_update,
     "volume_update"},
    {"/volume/allocated/list", CM_GET, CM_R_READ, 0, parse_volume_allocated_list,
     h_volume_allocated_list, "volume_allocated_list"},
    {"/admin/update/volume", CM_POST, CM_R_WRITE, 0, parse_admin_update_volume,
     h_admin_update_volume, "admin_update_volume"},
    {"/admin/update/volume/unit", CM_POST, CM_R_WRITE, 0, parse_admin_update_unit,
     h_admin_update_unit, "admin_update_volume_unit"},
    {"/volume/unit/alloc", CM_POST, CM_R_WRITE, 0, parse_volume_unit_body, h_volume_unit_alloc,
     "volume_unit_alloc"},
    {"/volume/unit/release", CM_POST, CM_R_WRITE, 0, parse_volume_unit_body, h_volume_unit_release,
     "volume_unit_release"},
    {"/volume/unit/list", CM_GET, CM_R_READ, 0, parse_volume_unit_list, h_volume_unit_list,
     "volume_unit_list"},
    {"/chunk/report", CM_POST, CM_R_WRITE | CM_R_RAW_BODY, 8u << 20, parse_chunk_report,
     h_chunk_report, "chunk_report"},
    {"/chunk/set/compact", CM_POST, CM_R_WRITE, 0, parse_chunk_set_compact, h_chunk_set_compact,
     "chunk_set_compact"},

    /* service registry */
    {"/service/register", CM_POST, CM_R_WRITE, 0, parse_service_register, h_service_register,
     "service_register"},
    {"/service/unregister", CM_POST, CM_R_WRITE, 0, parse_service_key, h_service_unregister,
     "service_unregister"},
    {"/service/heartbeat", CM_POST, CM_R_WRITE, 0, parse_service_key, h_service_heartbeat,
     "service_heartbeat"},
    {"/service/get", CM_GET, CM_R_READ, 0, parse_service_name, h_service_get, "service_get"},
    {"/service/list", CM_GET, CM_R_READ, 0, NULL, h_service_list, "service_list"},

    /* kv store (decisions.md); values up to 1 MiB arrive base64-encoded */
    {"/kv/get/", CM_GET, CM_R_READ | CM_R_PREFIX, 0, parse_kv_path_key, h_kv_get, "kv_get"},
    {"/kv/set", CM_POST, CM_R_WRITE, 8u << 20, parse_kv_set, h_kv_set, "kv_set"},
    {"/kv/set/", CM_POST, CM_R_WRITE | CM_R_PREFIX, 8u << 20, parse_kv_set, h_kv_set, "kv_set"},
    {"/kv/delete/", CM_POST, CM_R_WRITE | CM_R_PREFIX | CM_R_QUERY_ARGS, 0, parse_kv_path_key,
     h_kv_delete, "kv_delete"},
    {"/kv/list", CM_GET, CM_R_READ, 0, parse_kv_list, h_kv_list, "kv_list"},

    /* snapshot dump: this node's own state, never forwarded */
    {"/snapshot/dump", CM_GET, CM_R_LOCAL, 0, NULL, h_snapshot_dump, "snapshot_dump"},

    /* node state */
    {"/stat", CM_GET, CM_R_LOCAL, 0, NULL, h_stat, "stat"},
    {"/livez", CM_GET, CM_R_INLINE | CM_R_NO_AUTH, 0, NULL, h_livez, "livez"},
    {"/readyz", CM_GET, CM_R_LOCAL | CM_R_NO_AUTH, 0, NULL, h_readyz, "readyz"},

    /* operations: answered by every node itself, never forwarded (spec §12) */
    {"/metrics", CM_GET, CM_R_LOCAL | CM_R_NO_AUTH, 0, NULL, h_metrics, "metrics"},
    {"/log/level", CM_GET | CM_POST, CM_R_INLINE | CM_R_RAW_BODY, 4096, parse_log_level,
     h_log_level, "log_level"},
    {"/", CM_GET, CM_R_INLINE | CM_R_NO_AUTH, 0, NULL, h_web_index, "dashboard"},
    {"/web/", CM_GET, CM_R_INLINE | CM_R_NO_AUTH | CM_R_PREFIX, 0, NULL, h_web_asset,
     "dashboard_asset"},
    {"/dashboard/data", CM_GET, CM_R_LOCAL, 0, NULL, h_dashboard_data, "dashboard_data"},
    {"/dashboard/history", CM_GET, CM_R_LOCAL, 0, NULL, h_dashboard_history, "dashboard_history"},

    {"/internal/member", CM_GET, CM_R_LOCAL | CM_R_INTERNAL, 0, parse_member_query, h_member_view,
     "internal_member"},
    {"/internal/version", CM_GET, CM_R_LOCAL | CM_R_INTERNAL, 0, NULL, h_internal_version,
     "internal_version"},
    {"/internal/forward", CM_POST, CM_R_LOCAL | CM_R_INTERNAL | CM_R_RAW_BODY, 8u << 20,
     cm_fwd_parse, cm_fwd_handle, "internal_forward"},
    {"/internal/readindex", CM_GET, CM_R_READ | CM_R_INTERNAL, 0, NULL, h_readindex,
     "internal_readindex"},
};

const struct cm_route *cm_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

const struct cm_config *cm_job_cfg(struct cm_job *j)
{
    return j->cfg;
}
