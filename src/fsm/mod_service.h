/*
 * Service module: the registry of service nodes (allocators, MQ proxies, workers; spec §4.9).
 *
 * A node is keyed by (name, host); registering again replaces it. Its expiry is the proposer's
 * timestamp of the register or heartbeat command plus the node's timeout, so every replica
 * stores the same expiry (the reference computed it from each node's own clock). Reads compare
 * expiry with the reading node's clock: /service/get hides expired nodes, /service/list shows
 * them all, and nothing is ever purged automatically.
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

/* Saturating `ts_ns + timeout_s * 1e9` (shared with tests). */
int64_t cm_service_expiry(int64_t ts_ns, int64_t timeout_s);

#endif
