/*
 * HTTP server on libmicrohttpd; see server.h and job.h.
 *
 * The access handler runs on MHD's threads. First call: create the job state, find the route,
 * refuse oversized or unframed bodies. Body calls: accumulate (bounded). Final call: parse the
 * arguments and either answer at once or suspend the connection and hand the job to the loop.
 * When the loop resumes the connection the handler is called once more and queues the response.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../ops/ops.h"
#include "../raft/node.h"
#include "../security/auth.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "errors.h"
#include "router.h"

#define MAX_ROUTES 128

/* Request bodies buffered at once, all connections together. A body reserves its declared
 * Content-Length when its headers arrive (chunked bodies reserve as they grow); a request that
 * would go past the budget is answered 503 before its body is read. Without it 4,096 connections
 * could each hold a body of up to 8 MiB. */
#define BODY_BUDGET_BYTES (256ull << 20)

const double cm_http_latency_bounds_s[12] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

struct route_stats {
    atomic_ullong count[6];
    atomic_ullong latency_us_sum;
    atomic_ullong bucket[12];
};

struct cm_http {
    struct MHD_Daemon *d;
    char *tls_cert, *tls_key, *tls_trust; /* PEM contents, kept while the daemon runs */
    struct cm_node *node;
    const struct cm_config *cfg;
    int listen_fd;
    atomic_ullong next_id;
    atomic_ullong body_reserved; /* bytes of request bodies reserved, see BODY_BUDGET_BYTES */
    uint64_t body_budget;
    struct route_stats stats[MAX_ROUTES];
    struct cm_http_route_stats snapshot[MAX_ROUTES];
    /* per route, fixed at start (see check_token) */
    bool query_splits[MAX_ROUTES]; /* path || query could be re-split onto another route */
    int path_methods[MAX_ROUTES];  /* every method the route's path answers */
};

/* Which routes a CubeFS token cannot pin. A route's path || query can be re-split onto another
 * route when the route takes its key from the path (/kv/get/<key>) or when its path is the start
 * of another route's path (/kv/set and /kv/set/<key>, /disk/drop and /disk/droppinglist): the
 * token of one would then sign the other. */
static void classify_routes(struct cm_http *h)
{
    size_t n;
    const struct cm_route *r = cm_routes(&n);
    for (size_t i = 0; i < n && i < MAX_ROUTES; i++) {
        size_t li = strlen(r[i].path);
        h->query_splits[i] = (r[i].flags & CM_R_PREFIX) != 0;
        h->path_methods[i] = 0;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(r[k].path, r[i].path) == 0)
                h->path_methods[i] |= r[k].methods;
            else if (!(r[k].flags & CM_R_NO_AUTH) && strlen(r[k].path) > li &&
                     strncmp(r[k].path, r[i].path, li) == 0)
                h->query_splits[i] = true;
        }
    }
}

const struct cm_http_route_stats *cm_http_stats(struct cm_http *h, size_t i)
{
    if (i >= MAX_ROUTES)
        return NULL;
    struct cm_http_route_stats *s = &h->snapshot[i];
    for (int k = 0; k < 6; k++)
        s->count[k] = atomic_load_explicit(&h->stats[i].count[k], memory_order_relaxed);
    s->latency_us_sum = atomic_load_explicit(&h->stats[i].latency_us_sum, memory_order_relaxed);
    for (int k = 0; k < 12; k++)
        s->latency_bucket[k] = atomic_load_explicit(&h->stats[i].bucket[k], memory_order_relaxed);
    return s;
}

void cm_http_suspend(struct cm_job *j)
{
    MHD_suspend_connection(j->conn);
}

void cm_http_resume(struct cm_job *j)
{
    MHD_resume_connection(j->conn);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct cm_http *h = cls;
    struct cm_job *j = cm_calloc(1, sizeof *j);
    j->conn = conn;
    j->http = h;
    j->node = h->node;
    j->cfg = h->cfg;
    j->uri = cm_strdup(uri ? uri : "/");
    j->start_us = cm_mono_us();
    j->id = atomic_fetch_add(&h->next_id, 1) + 1;
    return j;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct cm_job *j = cls;
    if (j->n_qargs >= 256)
        return MHD_NO;
    j->qargs = cm_realloc(j->qargs, (j->n_qargs + 1) * sizeof *j->qargs);
    j->qargs[j->n_qargs].key = cm_strdup(key ? key : "");
    j->qargs[j->n_qargs].value = value ? cm_strdup(value) : NULL;
    j->n_qargs++;
    return MHD_YES;
}

/* Reserve `more` bytes of the body budget for j; false (nothing reserved) when it is spent. */
static bool body_reserve(struct cm_http *h, struct cm_job *j, uint64_t more)
{
    uint64_t was = atomic_fetch_add(&h->body_reserved, more);
    if (was + more > h->body_budget) {
        atomic_fetch_sub(&h->body_reserved, more);
        return false;
    }
    j->body_reserved += more;
    return true;
}

static void body_budget_spent(struct cm_job *j)
{
    cm_job_set_error(j, 503, "the node is buffering too many request bodies; retry", NULL);
    cm_job_add_header(j, "Retry-After", "1");
}

/* X-Clustermgr-Hops: forwards so far, 0..999; anything else (negative, not a number, out of
 * range) is refused rather than read as 0 or as a value that defeats the loop guard. */
static int parse_hops(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int method_count(int methods)
{
    int n = 0;
    for (int m = methods & (CM_GET | CM_POST | CM_PUT | CM_DELETE); m; m &= m - 1)
        n++;
    return n;
}

/* Request tokens (auth.h). A token must pin the request it was made for: on a route whose path ||
 * query could be re-split onto another route (classify_routes) the request may carry no query
 * at all, and on a path answering several methods anything but GET needs the method-bound token.
 * Every other route takes the CubeFS token as the clients compute it. Returns 0, or -1 with the
 * response set. */
static int check_token(struct cm_http *h, struct cm_job *j, const char *method)
{
    const char *q = strchr(j->uri, '?');
    const char *why = NULL;
    const char *query = q ? q + 1 : "";
    int64_t now = cm_now_ns() / 1000000000LL;
    size_t n;
    size_t idx = j->route ? (size_t)(j->route - cm_routes(&n)) : MAX_ROUTES;
    bool known = idx < MAX_ROUTES;
    bool bound = known && method_count(h->path_methods[idx]) > 1 && j->method != CM_GET &&
                 j->method != CM_HEAD;
    int rc = bound ? cm_auth_verify_bound(j->auth_token, method, j->path, query,
                                          h->cfg->auth_secret, now, h->cfg->auth_max_age_s, &why)
                   : cm_auth_verify(j->auth_token, j->path, query, h->cfg->auth_secret, now,
                                    h->cfg->auth_max_age_s, &why);
    char msg[200];
    if (rc != 0) {
        snprintf(msg, sizeof msg, "auth token %s%s", why,
                 bound ? " (this path takes a method-bound token for methods other than GET)" : "");
        cm_job_set_error(j, 403, msg, NULL);
        return -1;
    }
    if (known && h->query_splits[idx] && q) {
        cm_job_set_error(j, 403,
                         "auth token cannot pin a query on this route (path and query could be "
                         "re-split onto another route): send no '?'; in a key, encode it as %3F",
                         NULL);
        return -1;
    }
    return 0;
}

static int parse_method(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return CM_GET;
    if (strcmp(m, "POST") == 0)
        return CM_POST;
    if (strcmp(m, "PUT") == 0)
        return CM_PUT;
    if (strcmp(m, "DELETE") == 0)
        return CM_DELETE;
    if (strcmp(m, "HEAD") == 0)
        return CM_HEAD;
    return 0;
}

static const char *hdr(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Caller identity (spec §4.6.1): X-Real-Ip, else the first X-Forwarded-For hop, else the peer;
 * a port is cut off ("ip:port" -> "ip"), IPv6 literals are kept whole. */
static void client_identity(struct cm_job *j, const char *real_ip, const char *xff)
{
    const char *src = j->peer_ip;
    char first[64];
    if (real_ip && real_ip[0])
        src = real_ip;
    else if (xff && xff[0]) {
        size_t k = strcspn(xff, ",");
        while (k && xff[k - 1] == ' ')
            k--;
        while (*xff == ' ' && k)
            xff++, k--;
        if (k >= sizeof first)
            k = sizeof first - 1;
        memcpy(first, xff, k);
        first[k] = '\0';
        src = first;
    }
    snprintf(j->client_ip, sizeof j->client_ip, "%s", src);
    char *c = strchr(j->client_ip, ':');
    if (c && strchr(c + 1, ':') == NULL)
        *c = '\0'; /* IPv4 with a port */
    else if (j->client_ip[0] == '[') {
        char *rb = strchr(j->client_ip, ']');
        if (rb) {
            *rb = '\0';
            memmove(j->client_ip, j->client_ip + 1, strlen(j->client_ip));
        }
    }
}

static void peer_address(struct cm_job *j)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    j->peer_ip[0] = '\0';
    if (ci == NULL || ci->client_addr == NULL)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, j->peer_ip,
                  sizeof j->peer_ip);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, j->peer_ip,
                  sizeof j->peer_ip);
}

static const char *method_list(int m, char *buf, size_t cap)
{
    buf[0] = '\0';
    static const struct {
        int m;
        const char *s;
    } names[] = {{CM_GET, "GET"}, {CM_POST, "POST"}, {CM_PUT, "PUT"}, {CM_DELETE, "DELETE"}};
    for (size_t i = 0; i < 4; i++)
        if (m & names[i].m) {
            if (buf[0])
                strncat(buf, ", ", cap - strlen(buf) - 1);
            strncat(buf, names[i].s, cap - strlen(buf) - 1);
        }
    return buf;
}

/* With tls.client_ca_file the server asks for a client certificate; accept the request only
 * when one was presented and verifies against that CA. */
static bool client_cert_ok(struct cm_job *j)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return false;
    gnutls_session_t session = (gnutls_session_t)ci->tls_session;
    unsigned list_size = 0;
    if (gnutls_certificate_get_peers(session, &list_size) == NULL || list_size == 0)
        return false;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) != 0)
        return false;
    return status == 0;
}

static enum MHD_Result send_job_response(struct cm_job *j)
{
    struct MHD_Response *r;
    if (j->stream) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                              (MHD_ContentReaderCallback)j->stream_read, j->stream,
                                              (MHD_ContentReaderFreeCallback)j->stream_free);
        j->stream = NULL;
    } else if (j->resp && j->resp_len) {
        r = MHD_create_response_from_buffer(j->resp_len, j->resp, MHD_RESPMEM_MUST_FREE);
        j->resp = NULL;
    } else
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    if (j->resp_ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, j->resp_ctype);
    for (int i = 0; i < j->n_hdrs; i++)
        MHD_add_response_header(r, j->hdrs[i].name, j->hdrs[i].value);
    int status = j->status ? j->status : 200;
    enum MHD_Result rc = MHD_queue_response(j->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct cm_http *h = cls;
    struct cm_job *j = *con_cls;
    if (j == NULL) { /* no URI log callback ran (should not happen) */
        j = uri_log(h, url, conn);
        *con_cls = j;
    }

    if (j->state == CM_JOB_NEW) {
        j->state = CM_JOB_RECEIVING;
        j->method = parse_method(method);
        j->path = cm_strdup(url);
        peer_address(j);
        const char *xff = hdr(conn, "X-Forwarded-For");
        const char *rip = hdr(conn, "X-Real-Ip");
        if (xff)
            j->xff = cm_strdup(xff);
        client_identity(j, rip, xff);
        const char *tok = hdr(conn, "BLOB-STORE-AUTH-TOKEN");
        if (tok)
            j->auth_token = cm_strdup(tok);
        const char *rid = hdr(conn, "X-Request-Id");
        if (rid)
            j->req_id_hdr = cm_strndup(rid, strnlen(rid, 128));
        const char *hops = hdr(conn, "X-Clustermgr-Hops");
        int hops_v = hops ? parse_hops(hops) : 0;
        j->hops = hops_v < 0 ? 0 : hops_v;
        const char *stale = hdr(conn, "X-Clustermgr-Stale");
        if (stale && (strcmp(stale, "1") == 0 || strcasecmp(stale, "true") == 0))
            j->stale = true;
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, j);
        const char *sq = cm_job_query(j, "stale");
        if (sq && (strcmp(sq, "1") == 0 || strcasecmp(sq, "true") == 0))
            j->stale = true;

        int allowed = 0;
        j->route = cm_route_lookup(j->path, j->method, &allowed);
        if (h->cfg->tls_client_ca[0] && !client_cert_ok(j)) {
            cm_job_set_error(j, 403, "a client certificate signed by the cluster CA is required",
                             NULL);
            return send_job_response(j);
        }
        if (h->cfg->auth_enable && !(j->route && (j->route->flags & CM_R_NO_AUTH)) &&
            check_token(h, j, method) != 0)
            return send_job_response(j);
        if (hops_v < 0) {
            cm_job_set_error(j, 400, "X-Clustermgr-Hops must be an integer from 0 to 999",
                             "Argument");
            return send_job_response(j);
        }
        if (j->route == NULL) {
            char msg[512], ms[64];
            if (allowed) {
                snprintf(msg, sizeof msg, "method %s is not allowed on %.200s (allowed: %s)",
                         method, j->path, method_list(allowed, ms, sizeof ms));
                cm_job_set_error(j, 405, msg, NULL);
                cm_job_add_header(j, "Allow", ms);
            } else {
                snprintf(msg, sizeof msg, "404 page not found: %.200s", j->path);
                cm_job_set_error(j, 404, msg, NULL);
            }
            return send_job_response(j);
        }
        unsigned limit = j->route->max_body ? j->route->max_body : h->cfg->max_body_bytes;
        const char *cl = hdr(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = hdr(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long len = strtoull(cl, &end, 10);
            if (!errno && !*end && len > limit && strcmp(j->route->name, "chunk_report") == 0) {
                /* what blobnodes get from the reference for an oversized chunk report, in
                 * both contracts (2022 §5.6.1, current §2.1) */
                cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
                return send_job_response(j);
            }
            if (errno || *end || len > limit) {
                char msg[200];
                snprintf(msg, sizeof msg, "request body of %s bytes exceeds the limit of %u bytes",
                         cl, limit);
                cm_job_set_error(j, 413, msg, NULL);
                return send_job_response(j);
            }
            if (len > 0 && !body_reserve(h, j, len)) {
                body_budget_spent(j);
                return send_job_response(j);
            }
        } else if (te && !(j->route->flags & (CM_R_QUERY_ARGS)) && j->route->parse) {
            /* Answered once the body has been read (and discarded): a reply while the client
             * still sends chunks reaches it as a reset or a broken pipe instead. */
            cm_job_set_error(j, 400, "Unknown content length in request", "Argument");
        }
        return MHD_YES;
    }

    if (j->state == CM_JOB_RECEIVING && *upload_size != 0) {
        unsigned limit = j->route->max_body ? j->route->max_body : h->cfg->max_body_bytes;
        if (j->status) /* already refused: discard */
            ;
        else if (j->body.len + *upload_size > limit)
            j->body_too_large = true;
        else if (j->body.len + *upload_size > j->body_reserved &&
                 !body_reserve(h, j, j->body.len + *upload_size - j->body_reserved))
            body_budget_spent(j);
        else
            cm_buf_append(&j->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }

    if (j->state == CM_JOB_RECEIVING) {
        if (j->status) /* refused when the headers arrived */
            return send_job_response(j);
        if (j->body_too_large) {
            cm_job_set_error(j, 413, "request body exceeds the limit", NULL);
            return send_job_response(j);
        }
        if (j->route->parse && j->route->parse(j) != 0)
            return send_job_response(j);
        if (j->route->flags & CM_R_INLINE) {
            j->route->handle(j);
            return send_job_response(j);
        }
        int sub = cm_node_submit(h->node, j);
        if (sub == CM_SUBMIT_BUSY) {
            cm_job_set_error(j, 503, "the node is overloaded: too many requests in flight; retry",
                             NULL);
            cm_job_add_header(j, "Retry-After", "1");
            return send_job_response(j);
        }
        if (sub != CM_SUBMIT_OK) {
            cm_job_set_error(j, 503, "the node is shutting down", NULL);
            return send_job_response(j);
        }
        return MHD_YES;
    }

    if (j->state == CM_JOB_REPLIED)
        return send_job_response(j);
    return MHD_YES; /* spurious wake while in the loop */
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)conn, (void)toe;
    struct cm_http *h = cls;
    struct cm_job *j = *con_cls;
    if (j == NULL)
        return;
    *con_cls = NULL;
    if (j->body_reserved)
        atomic_fetch_sub(&h->body_reserved, j->body_reserved);
    j->body_reserved = 0;
    uint64_t us = cm_mono_us() - j->start_us;
    if (j->route) {
        size_t n;
        const struct cm_route *routes = cm_routes(&n);
        size_t idx = (size_t)(j->route - routes);
        if (idx < MAX_ROUTES) {
            struct route_stats *s = &h->stats[idx];
            int st = j->status ? j->status : 200;
            int cls_i = st >= 900 ? 0 : (st / 100 >= 1 && st / 100 <= 5 ? st / 100 : 5);
            atomic_fetch_add_explicit(&s->count[cls_i], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->latency_us_sum, us, memory_order_relaxed);
            for (int k = 0; k < 12; k++)
                if ((double)us / 1e6 <= cm_http_latency_bounds_s[k]) {
                    atomic_fetch_add_explicit(&s->bucket[k], 1, memory_order_relaxed);
                    break;
                }
        }
    }
    cm_reqlog_done(j, us); /* request log line, audit line */
    if (j->state == CM_JOB_IN_LOOP) {
        /* Cannot happen: a job in the loop keeps its connection suspended until replied. */
        CM_ERROR("http", "request %llu completed while the loop still held it",
                 (unsigned long long)j->id);
        return;
    }
    cm_job_free(j);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
        msg[--l] = '\0';
    CM_WARN("http", "%s", msg);
}

static int open_listener(const struct cm_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    int family = AF_INET;
    if (cfg->http_ip[0] && strchr(cfg->http_ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(cfg->http_port);
        if (inet_pton(AF_INET6, cfg->http_ip, &s6->sin6_addr) != 1) {
            snprintf(err, errlen, "bind_addr: \"%s\" is not an IP address", cfg->http_ip);
            return -1;
        }
        family = AF_INET6;
        sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(cfg->http_port);
        if (cfg->http_ip[0] == '\0')
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, cfg->http_ip, &s4->sin_addr) != 1) {
            snprintf(err, errlen, "bind_addr: \"%s\" is not an IP address", cfg->http_ip);
            return -1;
        }
        sl = sizeof *s4;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "cannot listen on the HTTP address %s: %s", cfg->bind_addr,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct cm_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1u << 20))
        cm_buf_append(&b, chunk, n);
    fclose(f);
    if (b.len == 0) {
        snprintf(err, errlen, "%s is empty", path);
        cm_buf_free(&b);
        return NULL;
    }
    return cm_buf_steal(&b, NULL);
}

static void http_free(struct cm_http *h)
{
    free(h->tls_cert);
    free(h->tls_key);
    free(h->tls_trust);
    free(h);
}

int cm_http_start(struct cm_http **out, struct cm_node *node, const struct cm_config *cfg,
                  char *err, size_t errlen)
{
    struct cm_http *h = cm_calloc(1, sizeof *h);
    h->node = node;
    h->cfg = cfg;
    classify_routes(h);
    h->body_budget = cfg->body_budget_bytes ? cfg->body_budget_bytes : BODY_BUDGET_BYTES;
    if (h->body_budget < 2ull * cfg->max_body_bytes)
        h->body_budget = 2ull * cfg->max_body_bytes;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (cfg->tls_cert[0]) {
        if ((h->tls_cert = read_file(cfg->tls_cert, err, errlen)) == NULL ||
            (h->tls_key = read_file(cfg->tls_key, err, errlen)) == NULL ||
            (cfg->tls_client_ca[0] &&
             (h->tls_trust = read_file(cfg->tls_client_ca, err, errlen)) == NULL)) {
            http_free(h);
            return -1;
        }
        flags |= MHD_USE_TLS;
    }
    h->listen_fd = open_listener(cfg, err, errlen);
    if (h->listen_fd < 0) {
        http_free(h);
        return -1;
    }
    struct MHD_OptionItem tls_opts[4];
    int k = 0;
    if (h->tls_cert) {
        tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        if (h->tls_trust)
            tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->tls_trust};
    }
    tls_opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_connections,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, cfg->http_threads,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, h, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_END);
    if (h->d == NULL) {
        snprintf(err, errlen, "cannot start the HTTP server on %s%s", cfg->bind_addr,
                 h->tls_cert ? " (check the TLS certificate and key)" : "");
        close(h->listen_fd);
        http_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

void cm_http_quiesce(struct cm_http *h)
{
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
        h->listen_fd = -1;
    }
}

void cm_http_stop(struct cm_http *h)
{
    MHD_stop_daemon(h->d);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    http_free(h);
}
