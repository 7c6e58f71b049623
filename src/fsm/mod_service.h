/*
 * Service module: the registry of service nodes (allocators, MQ proxies, workers; spec §4.9).
 *
 * A node is keyed by (name, host); registering again replaces it. Its expiry is the proposer's
 * timestamp of the register or heartbeat command plus the node's timeout, so every replica
 * stores the same expiry (the reference computed it from each node's own clock). Reads compare
 * expiry with the reading node's clock: /service/get hides expired nodes, /service/list shows
 * them all. Nothing is purged by apply (it never reads the clock): the leader unregisters nodes
 * that expired limits.service_collect_after_s ago (default CM_SERVICE_COLLECT_AFTER_S,
 * src/jobs/service_jobs.c); a timeout of 0 or less is accepted, as the reference does, and
 * expires at once.
 *
 * Quota: from cluster version 2 on, a register of a new (name, host) that would take the
 * registry past CM_SERVICE_HARD_MAX_ENTRIES nodes or CM_SERVICE_HARD_MAX_BYTES charged bytes
 * (name + host + idc + CM_SERVICE_ENTRY_OVERHEAD per node) changes nothing and answers
 * CM_ERR_ILLEGAL_ARGUMENTS on every replica; the proposer checks the configured quotas
 * (limits.service_max_*) first. Version 1 applied every register, and so does this code there.
 *
 * Nodes live in one array sorted by (name, host): lookups are binary searches, /service/get of
 * a name is a contiguous run, and the snapshot section is canonical without sorting.
 */
#ifndef CM_MOD_SERVICE_H
#define CM_MOD_SERVICE_H

#include <json-c/json.h>

#include "fsm.h"

enum { CM_SERVICE_OP_REGISTER = 1, CM_SERVICE_OP_UNREGISTER = 2, CM_SERVICE_OP_HEARTBEAT = 3 };

#define CM_SERVICE_NAME_MAX 256
#define CM_SERVICE_HOST_MAX 256
#define CM_SERVICE_IDC_MAX 128
/* Bytes charged to a node beyond its strings (the array slot, three allocations). */
#define CM_SERVICE_ENTRY_OVERHEAD 96
#define CM_SERVICE_HARD_MAX_ENTRIES 200000ull
#define CM_SERVICE_HARD_MAX_BYTES (256ull << 20)
/* A node expired this long is unregistered by the leader. */
#define CM_SERVICE_COLLECT_AFTER_S 86400

struct cm_service_node {
    char *name;
    char *host;
    char *idc;
    uint64_t cluster_id;
    int64_t timeout_s;
    int64_t expires_ns; /* proposer time of the last register/heartbeat + timeout (saturated) */
};

void cm_service_enc_register(struct cm_buf *b, const char *name, const char *host, const char *idc,
                             uint64_t cluster_id, int64_t timeout_s);
/* Unregister and heartbeat carry (name, host). */
void cm_service_enc_key(struct cm_buf *b, const char *name, const char *host);

/* The node (name, host) or NULL. */
const struct cm_service_node *cm_service_find(struct cm_fsm *fsm, const char *name,
                                              const char *host);
/* {"nodes":[...]} of the nodes of `name` (all names when NULL); with now_ns > 0 only those that
 * expire after now_ns. "nodes" is null when there is none, as in the reference. */
struct json_object *cm_service_nodes_json(struct cm_fsm *fsm, const char *name, int64_t now_ns);
size_t cm_service_count(struct cm_fsm *fsm);
/* Charged bytes of the registry: strings plus CM_SERVICE_ENTRY_OVERHEAD per node. */
uint64_t cm_service_charged(struct cm_fsm *fsm);
/* True when registering (name, host) with these strings keeps the registry within the limits
 * (replacing an existing node never counts as a new one). */
bool cm_service_fits(struct cm_fsm *fsm, const char *name, const char *host, const char *idc,
                     uint64_t max_entries, uint64_t max_bytes);
/* Up to `max` nodes that expired at or before `before_ns`, as (name, host) copies the caller
 * frees (names[i], hosts[i], then the arrays); returns how many. */
size_t cm_service_expired(struct cm_fsm *fsm, int64_t before_ns, size_t max, char ***names,
                          char ***hosts);

/* Saturating `ts_ns + timeout_s * 1e9` (shared with tests). */
int64_t cm_service_expiry(int64_t ts_ns, int64_t timeout_s);

#endif
