/* Blobnode chunk API calls; see blobnode.h. */
#include "blobnode.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../dispatch/dispatch.h"
#include "../raft/node.h"
#include "../util/log.h"
#include "httpc.h"

struct bn_call {
    struct cm_node *n;
    uint64_t owner, tag;
    cm_bn_done done;
    bool create;
};

static atomic_ullong inflight;

uint64_t cm_blobnode_inflight(void)
{
    return atomic_load(&inflight);
}

static void call_done(struct cm_httpc_req *r)
{
    struct bn_call *c = r->data;
    atomic_fetch_sub(&inflight, 1);
    cm_buf_append(&r->resp, "", 1); /* NUL-terminate */
    struct cm_bn_result res = {.status = r->status,
                               .body = r->resp.data,
                               .len = r->resp.len - 1,
                               .ctype = r->ctype,
                               .error = r->error};
    if (r->status == 200)
        res.outcome = CM_BN_OK;
    else if (r->status == 404)
        res.outcome = CM_BN_NOT_FOUND;
    else if (c->create && r->status >= 400 && strcasestr(res.body, "exist") &&
             !strcasestr(res.body, "not exist"))
        res.outcome = CM_BN_EXISTS;
    else
        res.outcome = CM_BN_FAIL;
    c->done(c->n, c->owner, c->tag, &res);
    free(c);
    cm_httpc_req_free(r);
}

void cm_blobnode_call(struct cm_node *n, const char *host, const char *op, uint32_t disk_id,
                      uint64_t vuid, uint64_t owner, uint64_t tag, cm_bn_done done)
{
    const struct cm_config *cfg = cm_node_cfg(n);
    if (cm_node_httpc(n) == NULL) /* closed: the node is stopping */
        return;
    bool create = strcmp(op, "create") == 0;
    char url[512];
    size_t hl = strlen(host);
    while (hl && host[hl - 1] == '/')
        hl--;
    snprintf(url, sizeof url, "%s%.*s/chunk/%s/diskid/%" PRIu32 "/vuid/%" PRIu64,
             strstr(host, "://") ? "" : "http://", (int)hl, host, op, disk_id, vuid);
    if (create)
        snprintf(url + strlen(url), sizeof url - strlen(url), "?chunksize=%" PRIu64,
                 cfg->chunk_size);
    else if (strcmp(op, "release") == 0)
        snprintf(url + strlen(url), sizeof url - strlen(url), "?force=false");
    struct cm_httpc_req *r = cm_httpc_req_new(strcmp(op, "stat") == 0 ? "GET" : "POST", url);
    r->timeout_ms = cfg->blobnode_timeout_ms;
    r->max_response = 1 << 20;
    struct bn_call *c = cm_calloc(1, sizeof *c);
    *c = (struct bn_call){n, owner, tag, done, create};
    r->data = c;
    r->done = call_done;
    atomic_fetch_add(&inflight, 1);
    CM_DEBUG("blobnode", "%s %s", r->method, url);
    cm_httpc_submit(cm_node_httpc(n), r);
}
