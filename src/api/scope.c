/* Id allocation routes: POST /bid/alloc (spec §5.7) and POST /diskid/alloc (spec §5.2.1). */
#include <stdlib.h>

#include "../fsm/mod_scope.h"
#include "api.h"

#define BID_MAX_COUNT 100000

struct bid_args {
    uint64_t count;
};

int parse_bid_alloc(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct bid_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = free;
    int rc = cm_args_u64(j, o, "count", false, UINT64_MAX, &a->count) < 0 ? -1 : 0;
    json_object_put(o);
    if (rc == 0 && a->count > BID_MAX_COUNT) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return -1;
    }
    if (rc == 0 && a->count == 0) {
        cm_job_set_error(j, 500, "request count is invalid", "InternalServerError");
        return -1;
    }
    return rc;
}

static void bid_applied(struct cm_job *j, int status, struct cm_result *res)
{
    (void)res;
    if (status != CM_APPLIED) {
        cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
        return;
    }
    struct bid_args *a = j->args;
    uint64_t end = (uint64_t)(uintptr_t)j->hstate;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "start_bid", json_object_new_uint64(end - a->count + 1));
    json_object_object_add(o, "end_bid", json_object_new_uint64(end));
    cm_reply_json(j, o);
}

void h_bid_alloc(struct cm_job *j)
{
    struct bid_args *a = j->args;
    struct cm_buf b = {0};
    uint64_t end = cm_scope_reserve(cm_node_fsm(j->node), "bid", a->count, &b);
    j->hstate = (void *)(uintptr_t)end;
    cm_job_propose(j, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, bid_applied);
}

static void diskid_applied(struct cm_job *j, int status, struct cm_result *res)
{
    (void)res;
    if (status != CM_APPLIED) {
        cm_reply_error(j, 500, "raft propose error", "InternalServerError");
        return;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "disk_id", json_object_new_uint64((uint64_t)(uintptr_t)j->hstate));
    cm_reply_json(j, o);
}

void h_diskid_alloc(struct cm_job *j)
{
    struct cm_buf b = {0};
    uint64_t id = cm_scope_reserve(cm_node_fsm(j->node), "diskid", 1, &b);
    j->hstate = (void *)(uintptr_t)id;
    cm_job_propose(j, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, diskid_applied);
}
