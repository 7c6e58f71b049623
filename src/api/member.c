/* Membership routes (spec §5.8, §7; decisions.md adds /member/promote and node_host). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

struct member_args {
    uint64_t peer_id;
    char host[CM_ADDR_MAX];
    char node_host[CM_ADDR_MAX];
    uint64_t member_type;
};

static bool valid_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long port = atol(colon + 1);
    return port > 0 && port <= 65535;
}

int parse_member_add(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct member_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = free;
    int rc = -1;
    if (cm_args_u64(j, o, "peer_id", true, UINT64_MAX, &a->peer_id) < 0 ||
        cm_args_strbuf(j, o, "host", true, a->host, sizeof a->host) < 0 ||
        cm_args_u64(j, o, "member_type", true, 255, &a->member_type) < 0 ||
        cm_args_strbuf(j, o, "node_host", false, a->node_host, sizeof a->node_host) < 0)
        goto out;
    if (a->member_type != 1 && a->member_type != 2) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    if (a->peer_id == 0) {
        cm_args_fail(j, "field \"peer_id\" must not be 0");
        goto out;
    }
    if (!valid_hostport(a->host)) {
        cm_args_fail(j, "field \"host\" must be the member's raft address ip:port");
        goto out;
    }
    if (a->node_host[0] && !valid_hostport(a->node_host)) {
        cm_args_fail(j, "field \"node_host\" must be the member's HTTP address ip:port");
        goto out;
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

void h_member_add(struct cm_job *j)
{
    struct member_args *a = j->args;
    cm_job_member_add(j, a->peer_id, a->host, a->node_host, a->member_type == 1);
}

int parse_peer_id(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct member_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = free;
    int rc = cm_args_u64(j, o, "peer_id", true, UINT64_MAX, &a->peer_id) < 0 ? -1 : 0;
    json_object_put(o);
    return rc;
}

void h_member_remove(struct cm_job *j)
{
    cm_job_member_remove(j, ((struct member_args *)j->args)->peer_id);
}

void h_member_promote(struct cm_job *j)
{
    cm_job_member_promote(j, ((struct member_args *)j->args)->peer_id);
}

void h_leadership_transfer(struct cm_job *j)
{
    cm_job_transfer(j, ((struct member_args *)j->args)->peer_id);
}

int parse_member_query(struct cm_job *j)
{
    struct member_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = free;
    return cm_args_q_u64(j, "id", true, UINT64_MAX, &a->peer_id) < 0 ? -1 : 0;
}

void h_member_view(struct cm_job *j)
{
    cm_reply_json(j, cm_node_member_view(j->node, ((struct member_args *)j->args)->peer_id));
}
