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

/* Percent-decoding as libmicrohttpd does it ('+' is a space in query arguments). */
static char *decode(const char *s, size_t n, bool plus)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = cm_hexval(s[i + 1])) >= 0 &&
            (l = cm_hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
    }
    out[o] = '\0';
    return out;
}

static void add_qarg(struct cm_job *j, const char *s, size_t n)
{
    if (j->n_qargs >= 256)
        return;
    const char *eq = memchr(s, '=', n);
    j->qargs = realloc(j->qargs, (j->n_qargs + 1) * sizeof *j->qargs);
    struct cm_qarg *q = &j->qargs[j->n_qargs++];
    q->key = decode(s, eq ? (size_t)(eq - s) : n, true);
    q->value = eq ? decode(eq + 1, n - (size_t)(eq - s) - 1, true) : NULL;
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
    j->uri = malloc(plen + 1 + llen + 1);
    memcpy(j->uri, r->path, plen);
    size_t ulen = plen;
    if ((r->flags & CM_R_PREFIX) == 0 && llen && in[0] != '?')
        j->uri[ulen++] = '?';
    memcpy(j->uri + ulen, in, llen);
    j->uri[ulen + llen] = '\0';
#else
    const char *sp = memchr(in, ' ', llen);
    j->method = sp ? parse_method(in, (size_t)(sp - in)) : 0;
    if (j->method == 0) {
        free(j);
        return 0;
    }
    j->uri = strndup(sp + 1, llen - (size_t)(sp + 1 - in));
#endif
    const char *q = strchr(j->uri, '?');
    j->path = decode(j->uri, q ? (size_t)(q - j->uri) : strlen(j->uri), false);
#ifndef FUZZ_ROUTE
    int allowed = 0;
    const struct cm_route *r = cm_route_lookup(j->path, j->method, &allowed);
    if (r == NULL) {
        cm_job_free(j);
        return 0;
    }
#endif
    j->route = r;
    for (const char *a = q ? q + 1 : NULL; a && *a;) {
        const char *amp = strchr(a, '&');
        size_t n = amp ? (size_t)(amp - a) : strlen(a);
        if (n)
            add_qarg(j, a, n);
        a = amp ? amp + 1 : NULL;
    }
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
