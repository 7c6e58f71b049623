/*
 * Calls clustermgr makes to blobnodes (spec §14.1): the chunk API
 *   POST <host>/chunk/create/diskid/<id>/vuid/<vuid>?chunksize=<bytes>
 *   GET  <host>/chunk/stat/diskid/<id>/vuid/<vuid>
 *   POST <host>/chunk/release/diskid/<id>/vuid/<vuid>?force=false
 *   POST <host>/chunk/readonly/diskid/<id>/vuid/<vuid>
 *   POST <host>/chunk/readwrite/diskid/<id>/vuid/<vuid>
 * through the node's shared HTTP client (TLS settings already applied), with
 * volume_mgr_config.blob_node_config.client_timeout_ms.
 *
 * The completion runs on the loop. It is identified by (owner, tag) numbers chosen by the caller,
 * never by a pointer to the caller's state: the caller looks its state up by `owner` and ignores
 * answers for owners that are gone (cancelled, replaced, node stopping). Every call completes
 * exactly once, also when the client closes at shutdown (as a transport failure).
 */
#ifndef CM_BLOBNODE_H
#define CM_BLOBNODE_H

#include <stddef.h>
#include <stdint.h>

struct cm_node;

enum {
    CM_BN_OK = 0,        /* 200 */
    CM_BN_EXISTS = 1,    /* create: the chunk is already there (an idempotent retry) */
    CM_BN_NOT_FOUND = 2, /* 404: no such chunk (or disk) on that host */
    CM_BN_FAIL = 3,      /* any other status, or no answer */
};

struct cm_bn_result {
    int outcome;
    long status;      /* 0: no answer (transport error, timeout, shutdown) */
    const char *body; /* the answer's body (NUL-terminated), "" when none */
    size_t len;
    const char *ctype; /* the answer's Content-Type, "" when none */
    const char *error; /* transport error text */
};

typedef void (*cm_bn_done)(struct cm_node *n, uint64_t owner, uint64_t tag,
                           const struct cm_bn_result *r);

/* `op`: "create", "stat", "release", "readonly" or "readwrite". `host` is the disk's host
 * (a base URL such as http://10.0.0.1:8899; "http://" is added when it has no scheme). */
void cm_blobnode_call(struct cm_node *n, const char *host, const char *op, uint32_t disk_id,
                      uint64_t vuid, uint64_t owner, uint64_t tag, cm_bn_done done);

/* Calls in flight (all owners). */
uint64_t cm_blobnode_inflight(void);

#endif
