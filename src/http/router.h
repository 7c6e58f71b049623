/*
 * Routes: method, path, how the request executes (on the leader, as a linearizable read, from
 * local state, or right on the HTTP thread), its argument parser and its handler.
 */
#ifndef CM_ROUTER_H
#define CM_ROUTER_H

#include "job.h"

enum cm_route_flags {
    CM_R_WRITE = 1 << 0,      /* runs on the leader; followers forward it */
    CM_R_READ = 1 << 1,       /* linearizable read of replicated state unless ?stale=true */
    CM_R_LOCAL = 1 << 2,      /* answered by this node from its own state, on the loop */
    CM_R_INLINE = 1 << 3,     /* answered on the HTTP thread; never reaches the loop */
    CM_R_PREFIX = 1 << 4,     /* `path` is a prefix, e.g. /kv/get/<key> */
    CM_R_RAW_BODY = 1 << 5,   /* the body is not JSON */
    CM_R_INTERNAL = 1 << 6,   /* node-to-node; not forwarded */
    CM_R_NO_AUTH = 1 << 7,    /* exempt from auth tokens (health, metrics) */
    CM_R_QUERY_ARGS = 1 << 8, /* a POST whose arguments are in the query, body ignored */
};

struct cm_route {
    const char *path;
    int methods;
    int flags;
    unsigned max_body; /* 0: the configured default */
    /* HTTP thread: parse and validate the request alone (no replicated state). Return 0, or -1
     * after setting an error response. NULL: nothing to parse. */
    int (*parse)(struct cm_job *j);
    /* Loop thread (HTTP thread for CM_R_INLINE). */
    void (*handle)(struct cm_job *j);
    const char *name; /* metrics label */
};

/* Find the route for path+method. When the path exists but not for this method, returns NULL
 * and sets *allowed to the methods it takes (0 when the path is unknown). */
const struct cm_route *cm_route_lookup(const char *path, int method, int *allowed);
/* The table, for documentation and metrics. */
const struct cm_route *cm_routes(size_t *n);

#endif
