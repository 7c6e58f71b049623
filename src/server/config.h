/*
 * The node's configuration: the CubeFS `clustermgr.conf` JSON format (spec §10) plus our
 * extensions. Parsing is strict: unknown fields, wrong types and missing required fields stop
 * the start with a message naming the field; fields that only make sense for the Go
 * implementation (RocksDB options, DB paths) are accepted and ignored with a log line.
 *
 * The struct is immutable once loaded and may be read from any thread.
 */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../fsm/settings.h"
#include "../raft/settings.h"

/* Task-switch values the node writes (see docs/compatibility.md). */
enum {
    CM_SWITCH_CURRENT = 0, /* "true"/"false": CubeFS v3.2 and later */
    CM_SWITCH_2022 = 1     /* "Enable"/"Disable": the 2022 standalone blobstore */
};

struct cm_config {
    /* What the state machine reads (src/fsm/settings.h): the fields by name, and the whole as
     * `fsm`, the argument of cm_fsm_new. */
    union {
        struct {
            CM_FSM_SETTINGS_FIELDS
        };
        struct cm_fsm_settings fsm;
    };
    /* What consensus reads (src/raft/settings.h), the same way, as `raft`. */
    union {
        struct {
            CM_RAFT_SETTINGS_FIELDS
        };
        struct cm_raft_settings raft;
    };

    char path[CM_PATH_MAX];

    char bind_addr[CM_ADDR_MAX]; /* as written, e.g. ":9998" or "127.0.0.1:9998" */

    char region[CM_NAME_MAX];
    char unavailable_idc[CM_NAME_MAX];
    bool readonly;
    int shutdown_timeout_s;

    int log_level;
    char log_file[CM_PATH_MAX];
    char audit_dir[CM_PATH_MAX];

    bool auth_enable;
    char auth_secret[256];
    int64_t auth_max_age_s; /* 0 = no freshness check */

    /* TLS on the HTTP API (and for calls to other nodes and blobnodes) */
    char tls_cert[CM_PATH_MAX];
    char tls_key[CM_PATH_MAX];
    char tls_client_ca[CM_PATH_MAX]; /* require client certificates signed by this CA */
    char tls_ca[CM_PATH_MAX];        /* verify the servers this node calls */

    /* volume_mgr_config */
    int64_t retain_time_s;
    int64_t retain_threshold;
    int64_t check_expired_volume_interval_s;
    int64_t min_allocable_volume_count;
    int64_t allocatable_disk_load_threshold;
    int64_t blobnode_timeout_ms;
    int64_t alloc_factor;
    int task_switch_format; /* CM_SWITCH_* */

    /* disk_mgr_config */
    int64_t refresh_interval_s;

    int64_t heartbeat_notify_interval_s;
    int64_t max_heartbeat_notify_num;
    int64_t metric_report_interval_m;

    /* raft */
    unsigned max_reads_per_barrier; /* reads answered per barrier, 0 = all waiting */
    char node_protocol[16];

    /* HTTP server limits */
    unsigned http_threads;
    unsigned max_connections;
    unsigned max_body_bytes;
    unsigned max_queued_requests; /* requests waiting on the loop before 503 */
    unsigned per_ip_connections;  /* 0 = unlimited */
    unsigned connection_timeout_s;
    uint64_t body_budget_bytes; /* request bodies buffered at once, all connections together */

    /* limits: quotas checked before proposing (apply enforces the built-in ceilings of mod_kv.h
     * and mod_service.h, which these cannot exceed) */
    uint64_t kv_max_entries;          /* KV and config entries (one store) */
    uint64_t kv_max_bytes;            /* keys + values + per-entry overhead */
    uint64_t service_max_entries;     /* service nodes */
    uint64_t service_max_bytes;       /* names, hosts, idcs + per-entry overhead */
    uint64_t disk_max_entries;        /* registered disks */
    uint64_t disk_max_bytes;          /* their strings + per-disk overhead */
    uint64_t node_max_entries;        /* registered blobnodes (CubeFS v3.5.1 nodes) */
    uint64_t node_max_bytes;          /* their strings + per-node overhead */
    uint64_t max_concurrent_dumps;    /* /snapshot/dump answers in flight; more get 503 */
    uint64_t config_list_max_bytes;   /* /config/list refuses a store with more key+value bytes */
    uint64_t service_collect_after_s; /* the leader unregisters nodes expired this long */
};

/* Load and validate `path`. Returns 0, or -1 with a message naming the problem in `err`. */
int cm_config_load(const char *path, struct cm_config *cfg, char *err, size_t errlen);
/* Same, from text (used by tests). `origin` names the source in messages. */
int cm_config_parse(const char *text, size_t len, const char *origin, struct cm_config *cfg,
                    char *err, size_t errlen);
void cm_config_free(struct cm_config *cfg);

/* Lookups in the static maps; NULL when absent. */
const char *cm_config_node_http(const struct cm_config *cfg, uint64_t id);
const struct cm_policy *cm_config_policy(const struct cm_config *cfg, unsigned code_mode);
const char *cm_config_default(const struct cm_config *cfg, const char *key);
bool cm_config_has_idc(const struct cm_config *cfg, const char *idc);

/* Task switches (docs/compatibility.md, "Task switches"). A switch key is one of the names the
 * CubeFS daemons poll (disk_repair, balance, disk_drop, volume_inspect or vol_inspect,
 * shard_repair, blob_delete, data_inspect, shard_disk_repair, shard_node_blob_delete). */
bool cm_config_is_switch(const char *key);
/* `value` (true/false/Enable/Disable in any case) in the spelling of `format` (CM_SWITCH_*),
 * or NULL when it is none of those. */
const char *cm_config_switch_value(int format, const char *value);

/* Remove comments (#..., //..., / *...* /) outside strings, in place; returns the new length. */
size_t cm_config_strip_comments(char *text, size_t len);

#endif
