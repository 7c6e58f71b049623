/*
 * What the consensus layer needs of the node's configuration, given at cm_node_init. The
 * server's config (src/server/config.h) embeds these fields by name (CM_RAFT_SETTINGS_FIELDS)
 * and the whole as `raft`, as it does for the state machine's settings (src/fsm/settings.h).
 */
#ifndef CM_RAFT_SETTINGS_H
#define CM_RAFT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../fsm/settings.h"

#define CM_RAFT_SETTINGS_FIELDS                                                                    \
    uint64_t node_id;                                                                              \
    uint32_t cluster_id;                                                                           \
    uint16_t raft_port;                                                                            \
    char raft_listen_ip[CM_ADDR_MAX]; /* bind address of the raft port */                          \
    char raft_addr[CM_ADDR_MAX];      /* this node's raft address as peers know it */              \
    char data_dir[CM_PATH_MAX];       /* raft_wal_dir */                                           \
    struct cm_peer *peers;                                                                         \
    size_t n_peers;                                                                                \
    struct cm_peer *learners;                                                                      \
    size_t n_learners;                                                                             \
    unsigned heartbeat_ms;                                                                         \
    unsigned election_ms;                                                                          \
    unsigned propose_timeout_ms;                                                                   \
    unsigned snapshot_threshold;                                                                   \
    unsigned snapshot_trailing;                                                                    \
    unsigned snapshot_min_interval_ms; /* at most one snapshot per interval */                     \
    unsigned max_batch_entries;        /* commands per raft_apply (group commit), 1..1024 */       \
    char peer_secret[256];             /* raft peer authentication; "" = off */                    \
    bool peer_secret_is_api; /* the peer secret is the API secret (derived or set equal) */        \
    /* the HTTP port, checked free at start with the raft port */                                  \
    char http_ip[CM_ADDR_MAX]; /* "" means every interface */                                      \
    uint16_t http_port;

struct cm_raft_settings {
    CM_RAFT_SETTINGS_FIELDS
};

#endif
