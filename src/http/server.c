/*
 * HTTP front end on libuv + http-parser (+ GnuTLS); see server.h and job.h.
 *
 * `http.threads` workers each run a libuv loop and accept from the same listening socket. A
 * connection lives on one worker. Its bytes go through the TLS session (when configured) into
 * the parser; a request's callbacks build its job: at the end of the headers the route is found
 * and everything decidable from the headers is checked (client certificate, token, limits, the
 * body budget); the body is collected (bounded); at the end of the message the arguments are
 * parsed and the job is either answered on the worker or handed to the node's loop. While a job
 * is out the connection reads nothing more (pipelined requests wait in its buffer). The loop
 * gives the job back through the worker's queue and wakes it; the worker writes the response
 * and, once it is written, counts the request, logs it, frees the job and reads the next one.
 *
 * Idle connections sit in epoll and in a list ordered by last activity, which a one-second
 * timer walks from the oldest end only as far as the first one that is not yet due: their cost
 * does not grow with their number.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../ops/ops.h"
#include "../security/auth.h"
#include "../util/log.h"
#include "../util/map.h"
#include "../util/timeutil.h"
#include "../util/wake.h"
#include "errors.h"
#include "router.h"
#include "stats.h"

/* Request bodies buffered at once, all connections together. A body reserves its declared
 * Content-Length when its headers arrive (chunked bodies reserve as they grow); a request that
 * would go past the budget is answered 503 before its body is read. Without it 20,000
 * connections could each hold a body of up to 8 MiB. */
#define BODY_BUDGET_BYTES (256ull << 20)
#define READ_CHUNK (64 * 1024)
#define STREAM_CHUNK (64 * 1024)
/* Bytes of later (pipelined) requests a connection buffers while one is out. The socket is
 * still read while a request is out (stopping and restarting it costs two epoll_ctl calls per
 * request); past PIPELINE_PAUSE it is not, until the answer is written. */
#define PIPELINE_MAX (1u << 20)
#define PIPELINE_PAUSE (256u << 10)

struct worker;

struct cm_conn {
    uv_tcp_t tcp;
    struct worker *w;
    http_parser parser;
    gnutls_session_t tls; /* NULL on plain HTTP */
    bool handshaken;
    struct cm_buf tls_in; /* ciphertext not yet taken by GnuTLS */
    size_t tls_in_off;
    struct cm_buf tls_out; /* ciphertext GnuTLS produced, not yet handed to uv_write */
    char peer_ip[64];
    struct cm_job *job; /* the request being read, processed or answered */
    /* request being parsed */
    struct cm_buf url, hname, hval;
    bool in_value;
    bool expect_continue;
    bool discard;   /* refused at the headers: the body is read and dropped */
    uint64_t limit; /* body limit of the route */
    /* plaintext received and not yet parsed */
    struct cm_buf in;
    size_t in_off;
    bool busy;        /* a request is out (in the loop or being answered): parse nothing */
    bool read_paused; /* the socket is not read (uv_read_stop) until the answer is written */
    bool close_after; /* close once the response is written */
    bool closed;      /* uv_close called */
    bool job_out;     /* the job is in the node's loop: the connection waits for it */
    bool http10;
    bool responding; /* the response of the current request is being written */
    bool lingering;  /* answered and half-closed: reading (and dropping) until the client closes */
    uint64_t linger_bytes;
    uv_shutdown_t shut;
    bool ip_counted; /* holds one of its address's connections (http.per_ip_connections) */
    int writes;      /* uv_write requests in flight */
    /* streamed body of the response being written */
    uint64_t stream_pos;
    bool streaming, chunked_out;
    uint64_t last_ms;
    size_t last_wq;                /* bytes queued for writing at the last sweep */
    struct cm_conn *lprev, *lnext; /* the worker's connections, least recently active first */
    struct cm_conn *sprev, *snext; /* on the worker's `soon` list: a write finished at once */
    bool in_soon;
};

struct worker {
    struct cm_http *h;
    unsigned index;
    pthread_t thread;
    uv_loop_t loop;
    uv_tcp_t listener;
    bool listening;
    struct cm_wake wake;
    uv_timer_t sweep;
    pthread_mutex_t mu;
    struct cm_job *done_head, *done_tail; /* jobs the loop gave back */
    /* Work for later in this loop turn, without a wake-up: connections whose write finished
     * at once (uv_try_write) and jobs answered on this thread (forwarded writes). Run by
     * `soon_check` after the poll phase, or by `soon_idle` before it when queued elsewhere. */
    uv_check_t soon_check;
    uv_idle_t soon_idle;
    struct cm_conn *soon_head, *soon_tail;
    struct cm_jlist own;
    bool quiesce, stop;
    void *svc; /* the dispatch layer's forwarder on this loop (cm_dispatch_worker_stop) */
    struct cm_conn *lhead, *ltail;
    char readbuf[READ_CHUNK];
    char date[40];
    time_t date_t;
};

struct cm_http {
    struct cm_node *node;
    const struct cm_config *cfg;
    int listen_fd;
    unsigned nworkers;
    struct worker *workers;
    atomic_ullong next_id;
    atomic_ullong body_reserved; /* bytes of request bodies reserved, see BODY_BUDGET_BYTES */
    uint64_t body_budget;
    pthread_mutex_t ip_mu;
    struct cm_smap per_ip; /* peer address -> (uintptr_t) open connections, when limited */
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    bool tls;
    /* per route, fixed at start (see check_token) */
    bool query_splits[CM_ROUTE_STATS_MAX]; /* path || query could be re-split onto another route */
    int path_methods[CM_ROUTE_STATS_MAX];  /* every method the route's path answers */
};

static http_parser_settings parser_settings;

/* ------------------------------------------------------------------------------------------ */
/* routes and tokens                                                                           */

/* Which routes a CubeFS token cannot pin. A route's path || query can be re-split onto another
 * route when the route takes its key from the path (/kv/get/<key>) or when its path is the start
 * of another route's path (/kv/set and /kv/set/<key>, /disk/drop and /disk/droppinglist): the
 * token of one would then sign the other. */
static void classify_routes(struct cm_http *h)
{
    size_t n;
    const struct cm_route *r = cm_routes(&n);
    for (size_t i = 0; i < n && i < CM_ROUTE_STATS_MAX; i++) {
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
    size_t idx = j->route ? (size_t)(j->route - cm_routes(&n)) : CM_ROUTE_STATS_MAX;
    bool known = idx < CM_ROUTE_STATS_MAX;
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

static int method_of(enum http_method m)
{
    switch (m) {
    case HTTP_GET:
        return CM_GET;
    case HTTP_POST:
        return CM_POST;
    case HTTP_PUT:
        return CM_PUT;
    case HTTP_DELETE:
        return CM_DELETE;
    case HTTP_HEAD:
        return CM_HEAD;
    default:
        return 0;
    }
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

/* With tls.client_ca_file the server asks for a client certificate; accept the request only
 * when one was presented and verifies against that CA. */
static bool client_cert_ok(struct cm_conn *c)
{
    if (c->tls == NULL)
        return false;
    unsigned list_size = 0;
    if (gnutls_certificate_get_peers(c->tls, &list_size) == NULL || list_size == 0)
        return false;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(c->tls, &status) != 0)
        return false;
    return status == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* connections                                                                                 */

static void lru_unlink(struct worker *w, struct cm_conn *c)
{
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else if (w->lhead == c)
        w->lhead = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else if (w->ltail == c)
        w->ltail = c->lprev;
    c->lprev = c->lnext = NULL;
}

static void touch(struct cm_conn *c)
{
    struct worker *w = c->w;
    c->last_ms = uv_now(&w->loop);
    if (w->ltail == c)
        return;
    lru_unlink(w, c);
    c->lprev = w->ltail;
    if (w->ltail)
        w->ltail->lnext = c;
    else
        w->lhead = c;
    w->ltail = c;
}

static void body_release(struct cm_http *h, struct cm_job *j)
{
    if (j->body_reserved)
        atomic_fetch_sub(&h->body_reserved, j->body_reserved);
    j->body_reserved = 0;
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

/* The request is over (answered, or its connection died): count it, log it, free it. */
static void finish_job(struct cm_conn *c, struct cm_job *j)
{
    struct cm_http *h = c->w->h;
    body_release(h, j);
    cm_http_account(j);
    cm_job_free(j);
}

void cm_http_account(struct cm_job *j)
{
    uint64_t us = cm_mono_us() - j->start_us;
    if (j->route)
        cm_route_stats_record(j->route, j->status, us);
    cm_reqlog_done(j, us); /* request log line, audit line */
}

static void ip_release(struct cm_http *h, const char *ip)
{
    if (h->cfg->per_ip_connections == 0)
        return;
    pthread_mutex_lock(&h->ip_mu);
    uintptr_t n = (uintptr_t)cm_smap_get(&h->per_ip, ip);
    if (n <= 1)
        cm_smap_del(&h->per_ip, ip);
    else
        cm_smap_put(&h->per_ip, ip, (void *)(n - 1));
    pthread_mutex_unlock(&h->ip_mu);
}

static bool ip_acquire(struct cm_http *h, const char *ip)
{
    if (h->cfg->per_ip_connections == 0)
        return true;
    pthread_mutex_lock(&h->ip_mu);
    uintptr_t n = (uintptr_t)cm_smap_get(&h->per_ip, ip);
    bool ok = n < h->cfg->per_ip_connections;
    if (ok)
        cm_smap_put(&h->per_ip, ip, (void *)(n + 1));
    pthread_mutex_unlock(&h->ip_mu);
    return ok;
}

static void soon_unlink(struct worker *w, struct cm_conn *c)
{
    if (!c->in_soon)
        return;
    if (c->sprev)
        c->sprev->snext = c->snext;
    else
        w->soon_head = c->snext;
    if (c->snext)
        c->snext->sprev = c->sprev;
    else
        w->soon_tail = c->sprev;
    c->sprev = c->snext = NULL;
    c->in_soon = false;
}

static void conn_free(struct cm_conn *c)
{
    soon_unlink(c->w, c);
    cm_buf_free(&c->tls_in);
    cm_buf_free(&c->tls_out);
    cm_buf_free(&c->url);
    cm_buf_free(&c->hname);
    cm_buf_free(&c->hval);
    cm_buf_free(&c->in);
    if (c->tls)
        gnutls_deinit(c->tls);
    free(c);
}

static void on_conn_closed(uv_handle_t *hd)
{
    struct cm_conn *c = hd->data;
    struct cm_http *h = c->w->h;
    atomic_fetch_sub(&cm_http_open_connections, 1);
    if (c->ip_counted)
        ip_release(h, c->peer_ip);
    if (c->job_out)
        return; /* the job's return frees the connection */
    if (c->job)
        finish_job(c, c->job);
    conn_free(c);
}

static void conn_close(struct cm_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    lru_unlink(c->w, c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                     */

struct wreq {
    uv_write_t req;
    struct cm_conn *c;
    char *bufs[2];
};

static void stream_next(struct cm_conn *c);
static void request_done(struct cm_conn *c);

static void run_soon(struct worker *w);

static void on_soon_check(uv_check_t *h)
{
    run_soon(h->data);
}

static void on_soon_idle(uv_idle_t *h)
{
    run_soon(h->data);
}

/* Have run_soon called in this loop turn: after the poll phase if that is where we are, or
 * before it (the idle handle also keeps the poll from blocking meanwhile). */
static void soon_start(struct worker *w)
{
    if (uv_is_closing((uv_handle_t *)&w->soon_check))
        return; /* stopping: worker_main runs what is left */
    uv_check_start(&w->soon_check, on_soon_check);
    uv_idle_start(&w->soon_idle, on_soon_idle);
}

/* What follows a finished write: the next piece of a stream, or the next request. */
static void after_write(struct cm_conn *c)
{
    if (c->closed)
        return;
    touch(c);
    if (c->writes > 0 || !c->responding)
        return; /* more to come, or an interim write (100 Continue, TLS handshake) */
    if (c->streaming)
        stream_next(c);
    else
        request_done(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct cm_conn *c = wr->c;
    free(wr->bufs[0]);
    free(wr->bufs[1]);
    free(wr);
    c->writes--;
    if (c->closed)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    after_write(c);
}

/* Queue bytes on the socket; takes ownership of a and b (either may be NULL). Most answers fit
 * the socket buffer: they are written at once, and what follows runs later in this loop turn
 * (a uv_write would make libuv re-arm the socket in epoll after every answer). */
static void raw_write(struct cm_conn *c, char *a, size_t alen, char *b, size_t blen)
{
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (a && alen)
        bufs[n++] = uv_buf_init(a, (unsigned)alen);
    if (b && blen)
        bufs[n++] = uv_buf_init(b, (unsigned)blen);
    if (n == 0) {
        free(a);
        free(b);
        conn_close(c);
        return;
    }
    size_t total = 0;
    for (unsigned k = 0; k < n; k++)
        total += bufs[k].len;
    int done = 0;
    if (c->writes == 0 && !c->closed)
        done = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (done < 0)
        done = 0; /* EAGAIN, or an error uv_write reports below */
    if ((size_t)done == total) {
        free(a);
        free(b);
        if (!c->in_soon) {
            struct worker *w = c->w;
            c->in_soon = true;
            c->snext = NULL;
            c->sprev = w->soon_tail;
            if (w->soon_tail)
                w->soon_tail->snext = c;
            else
                w->soon_head = c;
            w->soon_tail = c;
            soon_start(w);
        }
        return;
    }
    /* skip what went out */
    size_t skip = (size_t)done;
    unsigned first = 0;
    while (skip >= bufs[first].len) {
        skip -= bufs[first].len;
        first++;
    }
    bufs[first].base += skip;
    bufs[first].len -= skip;
    struct wreq *wr = cm_calloc(1, sizeof *wr);
    wr->c = c;
    wr->bufs[0] = a;
    wr->bufs[1] = b;
    c->writes++;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs + first, n - first, on_written) != 0) {
        c->writes--;
        free(a);
        free(b);
        free(wr);
        conn_close(c);
    }
}

/* Hand GnuTLS's output to the socket. */
static void tls_flush(struct cm_conn *c)
{
    if (c->tls_out.len == 0)
        return;
    size_t len;
    char *data = cm_buf_steal(&c->tls_out, &len);
    raw_write(c, data, len, NULL, 0);
}

/* Send plaintext (takes ownership of a and b). */
static void conn_send(struct cm_conn *c, char *a, size_t alen, char *b, size_t blen)
{
    if (c->tls == NULL) {
        raw_write(c, a, alen, b, blen);
        return;
    }
    const char *parts[2] = {a, b};
    size_t lens[2] = {alen, blen};
    for (int k = 0; k < 2; k++) {
        size_t off = 0;
        while (off < lens[k]) {
            ssize_t r = gnutls_record_send(c->tls, parts[k] + off, lens[k] - off);
            if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                continue; /* the push function never blocks; cannot loop for long */
            if (r < 0) {
                free(a);
                free(b);
                conn_close(c);
                return;
            }
            off += (size_t)r;
        }
    }
    free(a);
    free(b);
    tls_flush(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return NULL;
    }
}

static const char *http_date(struct worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_t) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_t = now;
    }
    return w->date;
}

/* Write j's response on c (status line, headers, body or the first piece of its stream). */
static void send_response(struct cm_conn *c, struct cm_job *j)
{
    struct cm_buf hb = {0};
    int status = j->status ? j->status : 200;
    const char *rs = reason(status);
    char line[64];
    if (rs)
        snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, rs);
    else
        snprintf(line, sizeof line, "HTTP/1.1 %d status code %d\r\n", status, status);
    cm_buf_reserve(&hb, 256);
    cm_buf_append(&hb, line, strlen(line));
    cm_buf_printf(&hb, "Date: %s\r\n", http_date(c->w));
    if (j->resp_ctype)
        cm_buf_printf(&hb, "Content-Type: %s\r\n", j->resp_ctype);
    for (int i = 0; i < j->n_hdrs; i++)
        cm_buf_printf(&hb, "%s: %s\r\n", j->hdrs[i].name, j->hdrs[i].value);
    bool head = j->method == CM_HEAD;
    c->streaming = j->stream != NULL && !head;
    c->chunked_out = c->streaming && !c->http10;
    if (c->streaming && c->http10)
        c->close_after = true; /* the end of the body is the end of the connection */
    if (j->stream == NULL)
        cm_buf_printf(&hb, "Content-Length: %zu\r\n", j->resp ? j->resp_len : (size_t)0);
    else if (c->chunked_out)
        cm_buf_printf(&hb, "Transfer-Encoding: chunked\r\n");
    if (c->close_after)
        cm_buf_printf(&hb, "Connection: close\r\n");
    else if (c->http10)
        cm_buf_printf(&hb, "Connection: keep-alive\r\n");
    cm_buf_append(&hb, "\r\n", 2);
    size_t hlen;
    char *hdr = cm_buf_steal(&hb, &hlen);
    char *body = NULL;
    size_t blen = 0;
    if (!head && j->stream == NULL && j->resp && j->resp_len) {
        body = j->resp;
        blen = j->resp_len;
        j->resp = NULL;
        j->resp_len = 0;
    }
    c->stream_pos = 0;
    c->responding = true;
    conn_send(c, hdr, hlen, body, blen);
}

/* The next piece of a streamed body; called once everything before it is written. */
static void stream_next(struct cm_conn *c)
{
    struct cm_job *j = c->job;
    char *buf = cm_malloc(STREAM_CHUNK + 16);
    long n = j->stream_read(j->stream, c->stream_pos, buf + 10, STREAM_CHUNK);
    if (n == CM_STREAM_END) {
        c->streaming = false;
        if (c->chunked_out) {
            memcpy(buf, "0\r\n\r\n", 5);
            conn_send(c, buf, 5, NULL, 0);
        } else {
            free(buf);
            request_done(c);
        }
        return;
    }
    if (n <= 0) { /* an error: end the connection without the final chunk */
        free(buf);
        CM_WARN("http", "request %llu: streamed response failed after %llu bytes",
                (unsigned long long)j->id, (unsigned long long)c->stream_pos);
        c->streaming = false;
        c->close_after = true;
        request_done(c);
        return;
    }
    c->stream_pos += (uint64_t)n;
    if (!c->chunked_out) {
        memmove(buf, buf + 10, (size_t)n);
        conn_send(c, buf, (size_t)n, NULL, 0);
        return;
    }
    char pre[12];
    int pl = snprintf(pre, sizeof pre, "%lx\r\n", n);
    memcpy(buf + 10 - pl, pre, (size_t)pl);
    memcpy(buf + 10 + n, "\r\n", 2);
    /* the chunk starts at buf + 10 - pl: move it to the front (the writer frees buf) */
    memmove(buf, buf + 10 - pl, (size_t)pl + (size_t)n + 2);
    conn_send(c, buf, (size_t)pl + (size_t)n + 2, NULL, 0);
}

static void parse_pending(struct cm_conn *c);
static void linger(struct cm_conn *c);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* The response of the current request is written. */
static void request_done(struct cm_conn *c)
{
    struct cm_job *j = c->job;
    c->job = NULL;
    c->responding = false;
    if (j)
        finish_job(c, j);
    if (c->close_after) {
        linger(c);
        return;
    }
    c->busy = false;
    if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
        http_parser_pause(&c->parser, 0);
    parse_pending(c);
    if (!c->closed && !c->busy && c->read_paused) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* Answer the current request now (status and body set on the job) and stop parsing. */
static void answer(struct cm_conn *c)
{
    c->busy = true;
    http_parser_pause(&c->parser, 1);
    send_response(c, c->job);
}

/* ------------------------------------------------------------------------------------------ */
/* parser callbacks                                                                            */

static struct cm_job *new_job(struct cm_conn *c)
{
    struct cm_http *h = c->w->h;
    struct cm_job *j = cm_calloc(1, sizeof *j);
    j->conn = c;
    j->http = h;
    j->node = h->node;
    j->cfg = h->cfg;
    j->start_us = cm_mono_us();
    j->id = atomic_fetch_add(&h->next_id, 1) + 1;
    snprintf(j->peer_ip, sizeof j->peer_ip, "%s", c->peer_ip);
    j->worker_loop = &c->w->loop;
    j->worker_slot = &c->w->svc;
    return j;
}

static int on_message_begin(http_parser *p)
{
    struct cm_conn *c = p->data;
    c->job = new_job(c);
    c->url.len = c->hname.len = c->hval.len = 0;
    c->in_value = false;
    c->expect_continue = false;
    c->discard = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct cm_conn *c = p->data;
    cm_buf_append(&c->url, at, len);
    return 0;
}

static char *hdr_value(struct cm_conn *c)
{
    size_t n = c->hval.len;
    while (n && (c->hval.data[n - 1] == ' ' || c->hval.data[n - 1] == '\t'))
        n--;
    return cm_strndup(c->hval.data ? c->hval.data : "", n);
}

/* One complete header: keep what the request path reads (the first of each). */
static void commit_header(struct cm_conn *c)
{
    struct cm_job *j = c->job;
    size_t n = c->hname.len;
    const char *name = c->hname.data ? c->hname.data : "";
    char **slot = NULL;
#define IS(s) (n == sizeof(s) - 1 && strncasecmp(name, s, n) == 0)
    if (IS("X-Forwarded-For"))
        slot = &j->xff;
    else if (IS("BLOB-STORE-AUTH-TOKEN"))
        slot = &j->auth_token;
    else if (IS("X-Request-Id"))
        slot = &j->req_id_hdr;
    else if (IS("X-Real-Ip") || IS("X-Clustermgr-Hops") || IS("X-Clustermgr-Stale") ||
             IS("Expect")) {
        char *v = hdr_value(c);
        if (IS("X-Real-Ip")) {
            if (j->client_ip[0] == '\0')
                snprintf(j->client_ip, sizeof j->client_ip, "%s", v[0] ? v : "");
        } else if (IS("X-Clustermgr-Hops")) {
            if (j->hops == 0) {
                int hv = parse_hops(v);
                j->hops = hv < 0 ? -1 : hv;
            }
        } else if (IS("X-Clustermgr-Stale")) {
            if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0)
                j->stale = true;
        } else if (strcasecmp(v, "100-continue") == 0)
            c->expect_continue = true;
        free(v);
    }
#undef IS
    if (slot && *slot == NULL) {
        *slot = hdr_value(c);
        if (slot == &j->req_id_hdr && strlen(*slot) > 128)
            (*slot)[128] = '\0';
    }
    c->hname.len = c->hval.len = 0;
    c->in_value = false;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct cm_conn *c = p->data;
    if (c->in_value)
        commit_header(c);
    cm_buf_append(&c->hname, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct cm_conn *c = p->data;
    cm_buf_append(&c->hval, at, len);
    c->in_value = true;
    return 0;
}

/* Everything decidable from the request line and the headers. Returns 0 to read the body, or
 * -1 with the response set on the job. */
static int check_headers(struct cm_conn *c)
{
    struct cm_http *h = c->w->h;
    struct cm_job *j = c->job;
    http_parser *p = &c->parser;
    const char *method = http_method_str((enum http_method)p->method);
    int allowed = 0;
    j->route = cm_route_lookup(j->path, j->method, &allowed);
    if (h->cfg->tls_client_ca[0] && !client_cert_ok(c)) {
        cm_job_set_error(j, 403, "a client certificate signed by the cluster CA is required", NULL);
        return -1;
    }
    if (h->cfg->auth_enable && !(j->route && (j->route->flags & CM_R_NO_AUTH)) &&
        check_token(h, j, method) != 0)
        return -1;
    if (j->hops < 0) {
        cm_job_set_error(j, 400, "X-Clustermgr-Hops must be an integer from 0 to 999", "Argument");
        return -1;
    }
    if (j->route == NULL) {
        char msg[512], ms[64];
        if (allowed) {
            snprintf(msg, sizeof msg, "method %s is not allowed on %.200s (allowed: %s)", method,
                     j->path, method_list(allowed, ms, sizeof ms));
            cm_job_set_error(j, 405, msg, NULL);
            cm_job_add_header(j, "Allow", ms);
        } else {
            snprintf(msg, sizeof msg, "404 page not found: %.200s", j->path);
            cm_job_set_error(j, 404, msg, NULL);
        }
        return -1;
    }
    c->limit = j->route->max_body ? j->route->max_body : h->cfg->max_body_bytes;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (!chunked && p->content_length != ULLONG_MAX) {
        uint64_t len = p->content_length;
        if (len > c->limit && strcmp(j->route->name, "chunk_report") == 0) {
            /* what blobnodes get from the reference for an oversized chunk report, in
             * both contracts (2022 §5.6.1, current §2.1) */
            cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
            return -1;
        }
        if (len > c->limit) {
            char msg[200];
            snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %llu bytes",
                     (unsigned long long)len, (unsigned long long)c->limit);
            cm_job_set_error(j, 413, msg, NULL);
            return -1;
        }
        if (len > 0 && !body_reserve(h, j, len)) {
            body_budget_spent(j);
            return -1;
        }
    } else if (chunked && !(j->route->flags & CM_R_QUERY_ARGS) && j->route->parse) {
        /* Answered once the body has been read (and discarded): a reply while the client
         * still sends chunks reaches it as a reset or a broken pipe instead. */
        cm_job_set_error(j, 400, "Unknown content length in request", "Argument");
        c->discard = true;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct cm_conn *c = p->data;
    struct cm_job *j = c->job;
    if (c->in_value || c->hname.len)
        commit_header(c);
    cm_job_set_target(j, c->url.data ? c->url.data : "/", c->url.len ? c->url.len : 1);
    j->method = method_of((enum http_method)p->method);
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    /* X-Real-Ip was kept in client_ip while the headers arrived */
    char rip[64];
    snprintf(rip, sizeof rip, "%s", j->client_ip);
    client_identity(j, rip, j->xff);
    const char *sq = cm_job_query(j, "stale");
    if (sq && (strcmp(sq, "1") == 0 || strcasecmp(sq, "true") == 0))
        j->stale = true;
    bool has_body =
        (p->flags & F_CHUNKED) || (p->content_length != ULLONG_MAX && p->content_length > 0);
    if (check_headers(c) != 0 && !c->discard) {
        /* Refused. A body still to come is not read: the connection ends after the answer
         * (a small one would be cheap to drain, but a client told 413 or 503 should not send
         * it, and one that waits for 100 Continue will not). */
        if (has_body)
            c->close_after = true;
        answer(c);
        return 0;
    }
    if (has_body && c->expect_continue && !c->discard)
        conn_send(c, cm_strdup("HTTP/1.1 100 Continue\r\n\r\n"), 25, NULL, 0);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct cm_conn *c = p->data;
    struct cm_job *j = c->job;
    struct cm_http *h = c->w->h;
    if (j == NULL || c->discard || j->status)
        return 0;
    if (j->body.len + len > c->limit) {
        cm_job_set_error(j, 413, "request body exceeds the limit", NULL);
        c->close_after = true;
        answer(c);
        return 0;
    }
    if (j->body.len + len > j->body_reserved &&
        !body_reserve(h, j, j->body.len + len - j->body_reserved)) {
        body_budget_spent(j);
        c->close_after = true;
        answer(c);
        return 0;
    }
    cm_buf_append(&j->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct cm_conn *c = p->data;
    struct cm_job *j = c->job;
    struct cm_http *h = c->w->h;
    if (c->busy || j == NULL) /* answered already, at its headers */
        return 0;
    if (!http_should_keep_alive(p))
        c->close_after = true;
    /* A write's arguments are parsed by cm_node_submit unless the write goes to the leader as
     * it is (the leader parses it then, and answers a bad one as this node would have). */
    j->args_later = (j->route->flags & (CM_R_WRITE | CM_R_INLINE)) == CM_R_WRITE;
    if (j->status || (!j->args_later && j->route->parse && j->route->parse(j) != 0)) {
        answer(c);
        return 0;
    }
    if (j->route->flags & CM_R_INLINE) {
        j->route->handle(j);
        answer(c);
        return 0;
    }
    c->busy = true;
    http_parser_pause(p, 1);
    c->job_out = true;
    int sub = cm_node_submit(h->node, j);
    if (sub != CM_SUBMIT_OK) {
        c->job_out = false;
        if (sub == CM_SUBMIT_ANSWERED)
            ; /* its arguments did not parse: the 4xx is set */
        else if (sub == CM_SUBMIT_BUSY) {
            cm_job_set_error(j, 503, "the node is overloaded: too many requests in flight; retry",
                             NULL);
            cm_job_add_header(j, "Retry-After", "1");
        } else
            cm_job_set_error(j, 503, "the node is shutting down", NULL);
        send_response(c, j);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */

static void bad_request(struct cm_conn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->job == NULL)
        c->job = new_job(c);
    struct cm_job *j = c->job;
    if (j->uri == NULL)
        j->uri = cm_strndup(c->url.data ? c->url.data : "", c->url.len);
    if (j->path == NULL)
        j->path = cm_strdup("");
    char msg[200];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
    cm_job_set_error(j, e == HPE_HEADER_OVERFLOW ? 431 : 400, msg, NULL);
    c->close_after = true;
    c->busy = true;
    send_response(c, j);
}

/* Run the parser over the buffered plaintext until it is used up or a request goes out. */
static void parse_pending(struct cm_conn *c)
{
    while (!c->busy && !c->closed && c->in_off < c->in.len) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in.data + c->in_off,
                                       c->in.len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED)
            break;
        if (e != HPE_OK) {
            c->in_off = c->in.len;
            if (!c->busy)
                bad_request(c);
            else
                c->close_after = true;
            break;
        }
        if (n == 0)
            break;
    }
    if (c->in_off == c->in.len)
        c->in.len = c->in_off = 0;
    else if (c->in_off > (64u << 10)) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (c->busy && !c->closed && !c->read_paused && c->in.len - c->in_off >= PIPELINE_PAUSE) {
        c->read_paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void feed(struct cm_conn *c, const char *data, size_t len)
{
    if (c->busy && c->in.len - c->in_off + len > PIPELINE_MAX) {
        conn_close(c); /* a client that keeps sending while its request is out */
        return;
    }
    cm_buf_append(&c->in, data, len);
    parse_pending(c);
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct cm_conn *c = ptr;
    size_t avail = c->tls_in.len - c->tls_in_off;
    if (avail == 0) {
        gnutls_transport_set_errno(c->tls, EAGAIN);
        return -1;
    }
    if (len > avail)
        len = avail;
    memcpy(buf, c->tls_in.data + c->tls_in_off, len);
    c->tls_in_off += len;
    if (c->tls_in_off == c->tls_in.len)
        c->tls_in.len = c->tls_in_off = 0;
    return (ssize_t)len;
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    struct cm_conn *c = ptr;
    cm_buf_append(&c->tls_out, buf, len);
    return (ssize_t)len;
}

static void tls_read(struct cm_conn *c, const char *data, size_t len)
{
    cm_buf_append(&c->tls_in, data, len);
    if (!c->handshaken) {
        int r = gnutls_handshake(c->tls);
        tls_flush(c);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            return;
        if (r < 0) {
            CM_DEBUG("http", "TLS handshake with %s failed: %s", c->peer_ip, gnutls_strerror(r));
            conn_close(c);
            return;
        }
        c->handshaken = true;
    }
    char buf[16384];
    while (!c->closed) {
        ssize_t r = gnutls_record_recv(c->tls, buf, sizeof buf);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            break;
        if (r <= 0) { /* 0: close_notify */
            tls_flush(c);
            if (c->busy || c->job_out || c->writes)
                c->close_after = true;
            else
                conn_close(c);
            return;
        }
        feed(c, buf, (size_t)r);
    }
    if (!c->closed)
        tls_flush(c);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct cm_conn *c = hd->data;
    *buf = uv_buf_init(c->w->readbuf, sizeof c->w->readbuf);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req, (void)status;
}

/* Bytes a connection that is being closed still reads and drops before it is cut. */
#define LINGER_MAX (16u << 20)

/* The connection ends after its answer: send the end (TLS close_notify, then FIN) and read what
 * the client still sends until it closes too. Closing at once, with its request body still
 * arriving, would reset the connection and could destroy the answer before the client read it
 * (a client told 413 while it sends 8 MiB). The inactivity timeout bounds the wait. */
static void linger(struct cm_conn *c)
{
    if (c->lingering || c->closed)
        return;
    c->lingering = true;
    c->busy = true;
    if (c->tls) {
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        tls_flush(c);
    }
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    c->read_paused = false;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cm_conn *c = s->data;
    if (nread == 0)
        return;
    if (c->lingering) {
        if (nread < 0 || (c->linger_bytes += (uint64_t)nread) > LINGER_MAX)
            conn_close(c);
        else
            touch(c);
        return;
    }
    if (nread < 0) {
        if (c->busy || c->job_out || c->writes) {
            /* the client is gone or half-closed; the answer is written if it can be */
            uv_read_stop(s);
            c->read_paused = true;
            c->close_after = true;
            return;
        }
        conn_close(c);
        return;
    }
    touch(c);
    if (c->tls)
        tls_read(c, buf->base, (size_t)nread);
    else
        feed(c, buf->base, (size_t)nread);
}

/* ------------------------------------------------------------------------------------------ */
/* accepting                                                                                   */

static const char refuse_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s";

static void refuse(struct cm_conn *c, const char *why)
{
    char body[160], *msg = cm_malloc(512);
    snprintf(body, sizeof body, "{\"error\":\"%s\"}", why);
    int n = snprintf(msg, 512, refuse_503, strlen(body), body);
    c->close_after = true;
    c->busy = true;
    if (c->tls) { /* refusing would take a handshake: just close */
        free(msg);
        conn_close(c);
        return;
    }
    c->responding = true;
    raw_write(c, msg, (size_t)n, NULL, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void peer_of(struct cm_conn *c)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    c->peer_ip[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer_ip, sizeof c->peer_ip);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer_ip,
                  sizeof c->peer_ip);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct worker *w = server->data;
    struct cm_http *h = w->h;
    if (status < 0)
        return;
    struct cm_conn *c = cm_calloc(1, sizeof *c);
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closed = true;
        atomic_fetch_add(&cm_http_open_connections, 1);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    peer_of(c);
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    touch(c);
    unsigned open = atomic_fetch_add(&cm_http_open_connections, 1) + 1;
    bool ip_ok = ip_acquire(h, c->peer_ip);
    c->ip_counted = ip_ok;
    if (h->tls) {
        gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK);
        gnutls_priority_set(c->tls, h->prio);
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, h->cred);
        if (h->cfg->tls_client_ca[0])
            gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUEST);
        gnutls_transport_set_ptr(c->tls, c);
        gnutls_transport_set_push_function(c->tls, tls_push);
        gnutls_transport_set_pull_function(c->tls, tls_pull);
    }
    if (open > h->cfg->max_connections) {
        refuse(c, "the node has too many open connections; retry");
        return;
    }
    if (!ip_ok) {
        refuse(c, "too many open connections from this address; retry");
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ------------------------------------------------------------------------------------------ */
/* jobs coming back from the loop, timers, the worker thread                                   */

static _Thread_local struct worker *tl_worker; /* the worker whose thread this is */

void cm_http_resume(struct cm_job *j)
{
    struct worker *w = j->conn->w;
    j->qnext = NULL;
    if (w == tl_worker) { /* answered on this worker's own thread: no wake-up needed */
        cm_jlist_push(&w->own, j);
        soon_start(w);
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (w->done_tail)
        w->done_tail->qnext = j;
    else
        w->done_head = j;
    w->done_tail = j;
    pthread_mutex_unlock(&w->mu);
    cm_wake_send(&w->wake);
}

static void close_listener(struct worker *w)
{
    if (w->listening) {
        w->listening = false;
        uv_close((uv_handle_t *)&w->listener, NULL);
    }
}

static void walk_close(uv_handle_t *hd, void *arg)
{
    (void)arg;
    if (uv_is_closing(hd))
        return;
    if (hd->type == UV_TCP && hd->data && hd->data != hd->loop->data) {
        conn_close(hd->data);
        return;
    }
    uv_close(hd, NULL);
}

/* A job is back from the node's loop (or from this worker's forwarder): answer it. */
static void job_back(struct cm_job *j)
{
    struct cm_conn *c = j->conn;
    c->job_out = false;
    if (c->closed) { /* the connection went away while the loop held the job */
        c->job = NULL;
        finish_job(c, j);
        conn_free(c);
    } else
        send_response(c, j);
}

/* The work soon_start asked for, until none is left. */
static void run_soon(struct worker *w)
{
    for (;;) {
        struct cm_job *j = cm_jlist_pop(&w->own);
        if (j) {
            job_back(j);
            continue;
        }
        struct cm_conn *c = w->soon_head;
        if (c == NULL)
            break;
        soon_unlink(w, c);
        after_write(c);
    }
    uv_check_stop(&w->soon_check);
    uv_idle_stop(&w->soon_idle);
}

static void on_wake(struct cm_wake *a)
{
    struct worker *w = a->data;
    pthread_mutex_lock(&w->mu);
    bool stopping = w->stop;
    pthread_mutex_unlock(&w->mu);
    if (stopping && w->svc) { /* it answers what it holds: those jobs come back just below */
        cm_dispatch_worker_stop(w->svc);
        w->svc = NULL;
    }
    pthread_mutex_lock(&w->mu);
    struct cm_job *j = w->done_head;
    w->done_head = w->done_tail = NULL;
    bool quiesce = w->quiesce, stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        struct cm_job *next = j->qnext;
        job_back(j);
        j = next;
    }
    if (stop)
        run_soon(w);
    if (quiesce || stop)
        close_listener(w);
    if (stop)
        uv_walk(&w->loop, walk_close, NULL);
}

static void on_sweep(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    uint64_t idle_ms = (uint64_t)w->h->cfg->connection_timeout_s * 1000;
    struct cm_conn *c = w->lhead;
    while (c && now - c->last_ms >= idle_ms) {
        struct cm_conn *next = c->lnext;
        size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        if (c->job_out || (c->writes && wq != c->last_wq)) {
            c->last_wq = wq;
            touch(c); /* waiting for the loop, or a slow reader taking its answer */
        } else
            conn_close(c);
        c = next;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "cm-http-%u", w->index);
    pthread_setname_np(pthread_self(), name);
    tl_worker = w;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* jobs given back after the last wake: their connections are closed */
    on_wake(&w->wake);
    run_soon(w);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* start and stop                                                                              */

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
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on the HTTP address %s: %s", cfg->bind_addr,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The open-file limit a node needs: every HTTP connection, plus raft, storage and clients. */
static void raise_nofile(const struct cm_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)cfg->max_connections + 1024;
    if (rl.rlim_cur >= need)
        return;
    rlim_t want = need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        want = rl.rlim_max;
        CM_WARN("http",
                "the open-file hard limit is %llu, below the %llu that http.max_connections = %u "
                "needs: connections beyond about %llu will be refused; raise LimitNOFILE (systemd) "
                "or `ulimit -Hn`",
                (unsigned long long)rl.rlim_max, (unsigned long long)need, cfg->max_connections,
                (unsigned long long)(want > 1024 ? want - 1024 : 0));
    }
    if (want <= rl.rlim_cur)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        CM_INFO("http", "open-file limit raised from %llu to %llu for up to %u connections",
                (unsigned long long)was, (unsigned long long)want, cfg->max_connections);
}

static void http_free(struct cm_http *h)
{
    if (h->tls) {
        gnutls_certificate_free_credentials(h->cred);
        gnutls_priority_deinit(h->prio);
    }
    cm_smap_free(&h->per_ip);
    pthread_mutex_destroy(&h->ip_mu);
    free(h->workers);
    free(h);
}

static int tls_setup(struct cm_http *h, const struct cm_config *cfg, char *err, size_t errlen)
{
    int r = gnutls_certificate_allocate_credentials(&h->cred);
    if (r == 0)
        r = gnutls_certificate_set_x509_key_file(h->cred, cfg->tls_cert, cfg->tls_key,
                                                 GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        snprintf(err, errlen, "cannot load the TLS certificate %s and key %s: %s", cfg->tls_cert,
                 cfg->tls_key, gnutls_strerror(r));
        return -1;
    }
    if (cfg->tls_client_ca[0]) {
        r = gnutls_certificate_set_x509_trust_file(h->cred, cfg->tls_client_ca,
                                                   GNUTLS_X509_FMT_PEM);
        if (r <= 0) {
            snprintf(err, errlen, "cannot load the client CA %s: %s", cfg->tls_client_ca,
                     r == 0 ? "no certificate in it" : gnutls_strerror(r));
            return -1;
        }
    }
    if ((r = gnutls_priority_init(&h->prio, "NORMAL", NULL)) < 0) {
        snprintf(err, errlen, "TLS priorities: %s", gnutls_strerror(r));
        return -1;
    }
    h->tls = true;
    return 0;
}

int cm_http_start(struct cm_http **out, struct cm_node *node, const struct cm_config *cfg,
                  char *err, size_t errlen)
{
    parser_settings = (http_parser_settings){
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    struct cm_http *h = cm_calloc(1, sizeof *h);
    h->node = node;
    h->cfg = cfg;
    pthread_mutex_init(&h->ip_mu, NULL);
    cm_smap_init(&h->per_ip);
    classify_routes(h);
    h->body_budget = cfg->body_budget_bytes ? cfg->body_budget_bytes : BODY_BUDGET_BYTES;
    if (h->body_budget < 2ull * cfg->max_body_bytes)
        h->body_budget = 2ull * cfg->max_body_bytes;
    if (cfg->tls_cert[0] && tls_setup(h, cfg, err, errlen) != 0) {
        http_free(h);
        return -1;
    }
    raise_nofile(cfg);
    h->listen_fd = open_listener(cfg, err, errlen);
    if (h->listen_fd < 0) {
        http_free(h);
        return -1;
    }
    h->nworkers = cfg->http_threads ? cfg->http_threads : 1;
    h->workers = cm_calloc(h->nworkers, sizeof *h->workers);
    for (unsigned i = 0; i < h->nworkers; i++) {
        struct worker *w = &h->workers[i];
        w->h = h;
        w->index = i;
        pthread_mutex_init(&w->mu, NULL);
        uv_loop_init(&w->loop);
        w->loop.data = w;
        int wr = cm_wake_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_timer_init(&w->loop, &w->sweep);
        w->sweep.data = w;
        uv_timer_start(&w->sweep, on_sweep, 1000, 1000);
        uv_check_init(&w->loop, &w->soon_check);
        w->soon_check.data = w;
        uv_idle_init(&w->loop, &w->soon_idle);
        w->soon_idle.data = w;
        uv_tcp_init(&w->loop, &w->listener);
        w->listener.data = w;
        int fd = wr != 0 ? -1 : dup(h->listen_fd);
        int r = wr != 0 ? wr : fd < 0 ? -errno : uv_tcp_open(&w->listener, fd);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection);
        if (r != 0) {
            snprintf(err, errlen, "cannot serve HTTP on %s: %s", cfg->bind_addr, uv_strerror(r));
            /* the threads started so far stop through cm_http_stop's path */
            h->nworkers = i + 1;
            w->listening = true;
            *out = h;
            cm_http_stop(h);
            *out = NULL;
            return -1;
        }
        w->listening = true;
    }
    for (unsigned i = 0; i < h->nworkers; i++)
        pthread_create(&h->workers[i].thread, NULL, worker_main, &h->workers[i]);
    CM_INFO("http", "serving %s on %s with %u threads, up to %u connections (%u per address)",
            h->tls ? "HTTPS" : "HTTP", cfg->bind_addr, h->nworkers, cfg->max_connections,
            cfg->per_ip_connections);
    *out = h;
    return 0;
}

static void signal_workers(struct cm_http *h, bool stop)
{
    for (unsigned i = 0; i < h->nworkers; i++) {
        struct worker *w = &h->workers[i];
        pthread_mutex_lock(&w->mu);
        if (stop)
            w->stop = true;
        else
            w->quiesce = true;
        pthread_mutex_unlock(&w->mu);
        cm_wake_send(&w->wake);
    }
}

void cm_http_quiesce(struct cm_http *h)
{
    signal_workers(h, false);
}

void cm_http_stop(struct cm_http *h)
{
    signal_workers(h, true);
    for (unsigned i = 0; i < h->nworkers; i++) {
        struct worker *w = &h->workers[i];
        if (w->thread)
            pthread_join(w->thread, NULL);
        else { /* never started (failed start): run its loop here to close its handles */
            w->stop = true;
            on_wake(&w->wake);
            uv_run(&w->loop, UV_RUN_DEFAULT);
        }
        uv_loop_close(&w->loop);
        cm_wake_close(&w->wake);
        pthread_mutex_destroy(&w->mu);
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    http_free(h);
}
