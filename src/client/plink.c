/*
 * Persistent pipelined HTTP/1.1 connections on one loop; see plink.h.
 */
#include "plink.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/buf.h"
#include "../util/log.h"

#define PL_MAX_CONNS 16
/* A peer answers the requests of one connection one at a time, so a request waiting behind
 * another on the same connection waits for its whole answer: up to this many connections per
 * host, a request going to an idle one first. */
#define PL_PER_HOST 4
#define PL_TICK_MS 200
#define PL_IDLE_MS 60000 /* a connection nobody used this long is closed (a former leader) */
#define PL_READ_CHUNK 65536

struct pl_conn {
    struct cm_plink *l;
    uv_tcp_t tcp;
    uv_connect_t connect;
    char host[96]; /* "ip:port" as in the URL */
    bool connected;
    http_parser parser;
    /* requests in the order their answers will come: head is the one being answered */
    struct cm_httpc_req *head, *tail;
    unsigned npending;
    struct cm_httpc_req *answered_head, *answered_tail; /* during one read */
    struct uv_buf_t pending; /* bytes written before the connection was up, in order */
    char field[16];
    size_t field_len;
    bool field_ctype, field_long;
    uint64_t last_used_ms;
    struct pl_conn *next;
};

struct cm_plink {
    uv_loop_t *loop;
    uv_timer_t tick;
    struct pl_conn *conns;
    unsigned nconns;
    unsigned open_handles; /* the timer and every connection's socket */
    bool closing;
    char rbuf[PL_READ_CHUNK];
};

struct pl_write {
    uv_write_t w;
    char data[];
};

/* ------------------------------------------------------------------------------------------ */

/* "http://host:port/path": the host part (into host) and where the path starts, or NULL. */
static const char *split_url(const char *url, char *host, size_t cap, struct sockaddr_storage *ss)
{
    if (strncmp(url, "http://", 7) != 0)
        return NULL;
    const char *h = url + 7, *path = strchr(h, '/');
    if (path == NULL || (size_t)(path - h) >= cap)
        return NULL;
    memcpy(host, h, (size_t)(path - h));
    host[path - h] = '\0';
    char ip[64];
    const char *colon;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - host - 1) >= sizeof ip)
            return NULL;
        memcpy(ip, host + 1, (size_t)(end - host - 1));
        ip[end - host - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(host, ':');
        if (colon == NULL || (size_t)(colon - host) >= sizeof ip)
            return NULL;
        memcpy(ip, host, (size_t)(colon - host));
        ip[colon - host] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return NULL;
    if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)ss) != 0)
        return NULL;
    return path;
}

bool cm_plink_url_ok(const char *url)
{
    char host[96];
    struct sockaddr_storage ss;
    return split_url(url, host, sizeof host, &ss) != NULL;
}

static void push(struct cm_httpc_req **head, struct cm_httpc_req **tail, struct cm_httpc_req *r)
{
    r->next = NULL;
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
}

static void deliver(struct cm_httpc_req *r)
{
    while (r) {
        struct cm_httpc_req *next = r->next;
        r->next = NULL;
        if (r->done)
            r->done(r);
        else
            cm_httpc_req_free(r);
        r = next;
    }
}

static void on_conn_closed(uv_handle_t *hd)
{
    struct pl_conn *c = hd->data;
    struct cm_plink *l = c->l;
    free(c->pending.base);
    free(c);
    if (--l->open_handles == 0 && l->closing)
        free(l);
}

/* Close the connection; every request on it completes with status 0 and `why`. */
static void conn_fail(struct pl_conn *c, const char *why)
{
    struct cm_plink *l = c->l;
    for (struct pl_conn **p = &l->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            l->nconns--;
            break;
        }
    struct cm_httpc_req *r = c->head;
    c->head = c->tail = NULL;
    for (struct cm_httpc_req *x = r; x; x = x->next) {
        x->status = 0;
        snprintf(x->error, sizeof x->error, "%s", why);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    deliver(c->answered_head); /* answered before the failure */
    c->answered_head = c->answered_tail = NULL;
    deliver(r);
}

/* ------------------------------------------------------------------------------------------ */
/* answers                                                                                     */

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct pl_conn *c = p->data;
    if (c->field_len == SIZE_MAX) /* a new field starts after a value */
        c->field_len = 0, c->field_long = false;
    if (c->field_len + len >= sizeof c->field)
        c->field_long = true;
    else {
        memcpy(c->field + c->field_len, at, len);
        c->field_len += len;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct pl_conn *c = p->data;
    if (c->field_len != SIZE_MAX) { /* the field's name is complete */
        c->field[c->field_len] = '\0';
        c->field_ctype = !c->field_long && strcasecmp(c->field, "Content-Type") == 0;
        c->field_len = SIZE_MAX;
    }
    struct cm_httpc_req *r = c->head;
    if (c->field_ctype && r) {
        size_t have = strlen(r->ctype);
        size_t n = len < sizeof r->ctype - 1 - have ? len : sizeof r->ctype - 1 - have;
        memcpy(r->ctype + have, at, n);
        r->ctype[have + n] = '\0';
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct pl_conn *c = p->data;
    c->field_len = 0;
    c->field_long = c->field_ctype = false;
    return c->head ? 0 : -1; /* an answer nobody asked for */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct pl_conn *c = p->data;
    struct cm_httpc_req *r = c->head;
    size_t max = r->max_response ? r->max_response : (64u << 20);
    if (r->resp.len + len > max) {
        r->too_large = true;
        return -1;
    }
    cm_buf_append(&r->resp, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct pl_conn *c = p->data;
    struct cm_httpc_req *r = c->head;
    c->head = r->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->npending--;
    r->status = p->status_code;
    push(&c->answered_head, &c->answered_tail, r);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pl_conn *c = hd->data;
    buf->base = c->l->rbuf;
    buf->len = sizeof c->l->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct pl_conn *c = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        char why[160];
        snprintf(why, sizeof why, "the connection to %s closed: %s", c->host,
                 n == UV_EOF ? "end of stream" : uv_strerror((int)n));
        conn_fail(c, why);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)n);
    bool keep = c->parser.http_errno == HPE_OK && done == (size_t)n;
    if (keep && c->answered_tail && !http_should_keep_alive(&c->parser))
        keep = false; /* the peer closes after this answer */
    if (!keep) {
        char why[160];
        if (c->head && c->head->too_large)
            snprintf(why, sizeof why, "response larger than the limit");
        else
            snprintf(why, sizeof why, "the answer from %s could not be read (%s)", c->host,
                     http_errno_name(HTTP_PARSER_ERRNO(&c->parser)));
        conn_fail(c, why);
        return;
    }
    struct cm_httpc_req *r = c->answered_head;
    c->answered_head = c->answered_tail = NULL;
    deliver(r); /* may submit more on this connection */
}

/* ------------------------------------------------------------------------------------------ */
/* requests                                                                                    */

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows as a read error or the timeout */
    free(w);
}

static void write_bytes(struct pl_conn *c, const char *p, size_t len)
{
    /* Most requests fit the socket buffer: written at once, with no copy and no libuv write
     * request (whose completion re-arms the socket in epoll). The rest is queued below. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t now = uv_buf_init((char *)p, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    struct pl_write *w = cm_malloc(sizeof *w + len);
    memcpy(w->data, p, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        free(w); /* the connection is failing; its read side reports it */
}

static void on_connected(uv_connect_t *req, int status)
{
    struct pl_conn *c = req->data;
    if (status == UV_ECANCELED)
        return; /* closed meanwhile */
    if (status != 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to %s: %s", c->host, uv_strerror(status));
        conn_fail(c, why);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->pending.len)
        write_bytes(c, c->pending.base, c->pending.len);
    free(c->pending.base);
    c->pending = uv_buf_init(NULL, 0);
}

static struct pl_conn *conn_for(struct cm_plink *l, const char *host,
                                const struct sockaddr_storage *ss)
{
    struct pl_conn *least = NULL;
    unsigned same = 0;
    for (struct pl_conn *c = l->conns; c; c = c->next)
        if (strcmp(c->host, host) == 0) {
            if (c->head == NULL)
                return c;
            same++;
            if (least == NULL || c->npending < least->npending)
                least = c;
        }
    if (least && same >= PL_PER_HOST)
        return least;                /* pipelined behind the shortest queue */
    if (l->nconns >= PL_MAX_CONNS) { /* drop the least recently used idle one, if any */
        struct pl_conn *old = NULL;
        for (struct pl_conn *c = l->conns; c; c = c->next)
            if (c->head == NULL && (old == NULL || c->last_used_ms < old->last_used_ms))
                old = c;
        if (old)
            conn_fail(old, "closed to make room");
    }
    struct pl_conn *c = cm_calloc(1, sizeof *c);
    c->l = l;
    snprintf(c->host, sizeof c->host, "%s", host);
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    l->open_handles++;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->connect.data = c;
    c->next = l->conns;
    l->conns = c;
    l->nconns++;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)ss, on_connected);
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to %s: %s", host, uv_strerror(rc));
        conn_fail(c, why);
        return NULL;
    }
    return c;
}

int cm_plink_submit(struct cm_plink *l, struct cm_httpc_req *r)
{
    char host[96];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    const char *path = split_url(r->url, host, sizeof host, &ss);
    if (path == NULL)
        return -1;
    r->status = 0;
    r->ctype[0] = '\0';
    r->error[0] = '\0';
    if (l->closing) {
        snprintf(r->error, sizeof r->error, "client closed");
        deliver(r);
        return 0;
    }
    struct pl_conn *c = conn_for(l, host, &ss);
    if (c == NULL) {
        snprintf(r->error, sizeof r->error, "cannot connect to %s", host);
        deliver(r);
        return 0;
    }
    struct cm_buf b = {0};
    char line[512];
    snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n", r->method,
             path, host, r->body_len);
    cm_buf_puts(&b, line);
    for (struct curl_slist *h = r->headers; h; h = h->next) {
        cm_buf_puts(&b, h->data);
        cm_buf_puts(&b, "\r\n");
    }
    cm_buf_puts(&b, "\r\n");
    if (r->body_len)
        cm_buf_append(&b, r->body, r->body_len);
    r->deadline_ms = uv_now(l->loop) + (uint64_t)(r->timeout_ms > 0 ? r->timeout_ms : 30000);
    c->last_used_ms = uv_now(l->loop);
    push(&c->head, &c->tail, r);
    c->npending++;
    if (c->connected)
        write_bytes(c, b.data, b.len);
    else {
        c->pending.base = cm_realloc(c->pending.base, c->pending.len + b.len);
        memcpy(c->pending.base + c->pending.len, b.data, b.len);
        c->pending.len += b.len;
    }
    cm_buf_free(&b);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    struct cm_plink *l = t->data;
    uint64_t now = uv_now(l->loop);
    struct pl_conn *c = l->conns;
    while (c) {
        struct pl_conn *next = c->next;
        if (c->head && now > c->head->deadline_ms) {
            char why[160];
            snprintf(why, sizeof why, "no answer from %s within %ld ms", c->host,
                     c->head->timeout_ms);
            conn_fail(c, why);
        } else if (c->head == NULL && now - c->last_used_ms > PL_IDLE_MS)
            conn_fail(c, "idle");
        c = next;
    }
}

static void on_tick_closed(uv_handle_t *hd)
{
    struct cm_plink *l = hd->data;
    if (--l->open_handles == 0)
        free(l);
}

struct cm_plink *cm_plink_new(uv_loop_t *loop)
{
    struct cm_plink *l = cm_calloc(1, sizeof *l);
    l->loop = loop;
    uv_timer_init(loop, &l->tick);
    l->tick.data = l;
    l->open_handles = 1;
    uv_timer_start(&l->tick, on_tick, PL_TICK_MS, PL_TICK_MS);
    uv_unref((uv_handle_t *)&l->tick);
    return l;
}

void cm_plink_close(struct cm_plink *l)
{
    l->closing = true;
    while (l->conns)
        conn_fail(l->conns, "client closed");
    uv_close((uv_handle_t *)&l->tick, on_tick_closed);
}
