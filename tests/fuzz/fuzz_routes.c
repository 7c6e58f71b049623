/*
 * Fuzz target: the argument parsing and JSON bodies of every route -- each route's `parse`, run
 * on a job built by hand the way the HTTP server builds it (raw request target, decoded path,
 * decoded query arguments, body), and the handlers that run on the HTTP thread (CM_R_INLINE).
 *
 * The input is an HTTP request in short: "<METHOD> <request target>\n<body>", e.g.
 * "POST /kv/set\n{\"key\":\"a\",\"value\":\"eA==\"}" or "GET /disk/list?idc=z0&count=3\n".
 * The route is found the way the server finds it (cm_route_lookup on the decoded path); a request
 * without a route ends there. Built with -DFUZZ_ROUTE='"/some/path"' the target fuzzes that one
 * route, and the first line is only the query ("count=3&x") or, for a prefix route, what follows
 * the prefix. With -DFUZZ_BODY_ONLY as well, the whole input is the body.
 *
 * Oracle besides the sanitizers: a parser that refuses the request has set an error status,
 * one that accepts it has not.
 */
#include "../../src/api/api.h"
#include "fuzz.h"

#ifdef FUZZ_ROUTE
static const struct cm_route *fixed;
#endif

static void init(void)
{
    fuzz_config();
#ifdef FUZZ_ROUTE
    if (fixed)
        return;
    size_t n;
    const struct cm_route *all = cm_routes(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].path, FUZZ_ROUTE) == 0)
            fixed = &all[i];
    FUZZ_CHECK(fixed != NULL, "no route %s", FUZZ_ROUTE);
#endif
}

#ifndef FUZZ_ROUTE
static int parse_method(const char *m, size_t n)
{
    static const struct {
        const char *name;
        int method;
    } tab[] = {{"GET", CM_GET},
               {"POST", CM_POST},
               {"PUT", CM_PUT},
               {"DELETE", CM_DELETE},
               {"HEAD", CM_HEAD}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == n && memcmp(tab[i].name, m, n) == 0)
            return tab[i].method;
    return 0;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t llen = nl ? (size_t)(nl - in) : size;
    llen = strnlen(in, llen); /* the server sees the request line as C strings */
    const char *body = nl ? nl + 1 : in + size;
    size_t blen = (size_t)(in + size - body);

    struct cm_job *j = calloc(1, sizeof *j);
    j->cfg = fuzz_config();
#ifdef FUZZ_BODY_ONLY
    llen = 0; /* the whole input is the body */
    body = in;
    blen = size;
#endif
#ifdef FUZZ_ROUTE
    const struct cm_route *r = fixed;
    j->method = r->methods & CM_POST ? CM_POST : CM_GET;
    size_t plen = strlen(r->path);
    char *uri = malloc(plen + 1 + llen + 1);
    memcpy(uri, r->path, plen);
    size_t ulen = plen;
    if ((r->flags & CM_R_PREFIX) == 0 && llen && in[0] != '?')
        uri[ulen++] = '?';
    memcpy(uri + ulen, in, llen);
    cm_job_set_target(j, uri, ulen + llen); /* as the server does */
    free(uri);
#else
    const char *sp = memchr(in, ' ', llen);
    j->method = sp ? parse_method(in, (size_t)(sp - in)) : 0;
    if (j->method == 0) {
        free(j);
        return 0;
    }
    cm_job_set_target(j, sp + 1, llen - (size_t)(sp + 1 - in)); /* as the server does */
#endif
#ifndef FUZZ_ROUTE
    int allowed = 0;
    const struct cm_route *r = cm_route_lookup(j->path, j->method, &allowed);
    if (r == NULL) {
        cm_job_free(j);
        return 0;
    }
#endif
    j->route = r;
    if (blen)
        cm_buf_append(&j->body, body, blen);
    snprintf(j->peer_ip, sizeof j->peer_ip, "127.0.0.1");
    snprintf(j->client_ip, sizeof j->client_ip, "127.0.0.1");

    int rc = r->parse ? r->parse(j) : 0;
    if (rc != 0)
        FUZZ_CHECK(j->status >= 400, "%s refused the request without an error status (%d)", r->path,
                   j->status);
    else {
        FUZZ_CHECK(j->status == 0, "%s accepted the request but set status %d", r->path, j->status);
        if (r->flags & CM_R_INLINE) {
            r->handle(j);
            cm_log_set_level(CM_LOG_FATAL); /* POST /log/level may have changed it */
        }
    }
    cm_job_free(j);
    return 0;
}
