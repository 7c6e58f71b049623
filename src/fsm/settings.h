/*
 * The few settings of the node's configuration that the state machine reads: allocation limits,
 * the IDCs, copy-set caps, code-mode policies, the defaults of the config store and the static
 * map of members' HTTP addresses. The server's config (src/server/config.h) holds them as a part
 * of itself and hands that part to cm_fsm_new; the state machine never sees the rest.
 *
 * The types the settings are made of live here too, so that the state machine includes nothing
 * above itself. Settings are immutable for the life of the state machine that borrows them.
 */
#ifndef CM_FSM_SETTINGS_H
#define CM_FSM_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_ADDR_MAX 128
#define CM_NAME_MAX 64
#define CM_PATH_MAX 1024

struct cm_peer {
    uint64_t id;
    char addr[CM_ADDR_MAX]; /* "ip:port" */
};

struct cm_policy {
    char mode_name[CM_NAME_MAX];
    uint8_t code_mode; /* id from the code-mode table */
    int64_t min_size;
    int64_t max_size;
    double size_ratio;
    bool enable;
};

/* Copy-set caps of one (role, disk type) (current-release.md §2.3); 0 = unset. */
struct cm_copyset_caps {
    uint32_t node_set_cap;
    uint32_t node_set_rack_cap;
    uint32_t disk_set_cap;
    uint32_t disk_count_per_node_in_disk_set;
};

/* Disk types of a node (DiskType); names "hdd", "ssd", "nvmessd". */
enum { CM_DISK_TYPE_HDD = 1, CM_DISK_TYPE_SSD = 2, CM_DISK_TYPE_NVMESSD = 3, CM_DISK_TYPE_MAX = 3 };

struct cm_kv_default {
    char *key;
    char *value;
};

/* The members of struct cm_fsm_settings, listed once: struct cm_config embeds the same list
 * (anonymously, next to a `fsm` view of it) so that both name the same fields. */
#define CM_FSM_SETTINGS_FIELDS                                                                     \
    char **idc; /* configured IDC names, duplicates kept (spec §10.1) */                          \
    size_t n_idc;                                                                                  \
    uint64_t chunk_size;                                                                           \
    struct cm_policy *policies; /* sorted by min_size */                                           \
    size_t n_policies;                                                                             \
    /* Defaults of the config store: cluster_config plus the forced keys (spec §4.7), sorted. */  \
    struct cm_kv_default *defaults;                                                                \
    size_t n_defaults;                                                                             \
    int64_t allocatable_size; /* -1: not set, volume_reserve_size governs allocation as well */    \
    bool rack_aware;                                                                               \
    bool host_aware;                                                                               \
    int64_t heartbeat_expire_interval_s;                                                           \
    int64_t alloc_tolerate_buffer;                                                                 \
    /* disk_mgr_config.copy_set_configs, blobnode role, indexed by disk type (1..3); defaults for  \
     * hdd 108/6/2160/20, the others all 0 */                                                      \
    struct cm_copyset_caps copy_set[CM_DISK_TYPE_MAX + 1];                                         \
    struct cm_peer *nodes; /* raft id -> HTTP "ip:port" (raft_node_config.nodes) */                \
    size_t n_nodes;

struct cm_fsm_settings {
    CM_FSM_SETTINGS_FIELDS
};

/* Lookups; NULL when absent. */
const char *cm_settings_default(const struct cm_fsm_settings *s, const char *key);
const char *cm_settings_node_http(const struct cm_fsm_settings *s, uint64_t id);

/* The other name of a task switch with two names (vol_inspect <-> volume_inspect), else NULL
 * (src/server/config.h lists the switches). */
const char *cm_config_switch_alias(const char *key);

#endif
