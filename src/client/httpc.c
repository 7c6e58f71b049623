/* Outgoing HTTP client; see httpc.h. */
#include "httpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/log.h"

struct cm_httpc {
    uv_loop_t *loop;
    uv_async_t done_async;
    pthread_t thread;
    CURLM *multi;
    pthread_mutex_t lock;
    struct cm_httpc_req *submit_head, *submit_tail; /* loop -> worker */
    struct cm_httpc_req *done_head, *done_tail;     /* worker -> loop */
    struct cm_httpc_req *inflight;                  /* worker only */
    atomic_bool stop;
    bool closing;
    void (*closed)(void *);
    void *closed_arg;
    char *tls_ca, *tls_cert, *tls_key;
};

static void push(struct cm_httpc_req **head, struct cm_httpc_req **tail, struct cm_httpc_req *r)
{
    r->next = NULL;
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
}

struct cm_httpc_req *cm_httpc_req_new(const char *method, const char *url)
{
    struct cm_httpc_req *r = cm_calloc(1, sizeof *r);
    r->method = method;
    r->url = cm_strdup(url);
    r->timeout_ms = 10000;
    return r;
}

void cm_httpc_req_header(struct cm_httpc_req *r, const char *line)
{
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (l)
        r->headers = l;
}

void cm_httpc_req_body(struct cm_httpc_req *r, char *body, size_t len)
{
    free(r->body);
    r->body = body;
    r->body_len = len;
}

void cm_httpc_req_free(struct cm_httpc_req *r)
{
    if (r == NULL)
        return;
    free(r->url);
    curl_slist_free_all(r->headers);
    free(r->body);
    cm_buf_free(&r->resp);
    free(r);
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct cm_httpc_req *r = arg;
    size_t len = size * n;
    size_t max = r->max_response ? r->max_response : (64u << 20);
    if (r->resp.len + len > max) {
        r->too_large = true;
        return 0;
    }
    cm_buf_append(&r->resp, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct cm_httpc_req *r = arg;
    size_t len = size * n;
    if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        const char *v = p + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof r->ctype)
            vl = sizeof r->ctype - 1;
        memcpy(r->ctype, v, vl);
        r->ctype[vl] = '\0';
    }
    return len;
}

/* dotted quad of four decimal octets without leading zeros */
static bool is_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part && (i >= n || s[i++] != '.'))
            return false;
        size_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
    }
    return i == n;
}

static bool is_ipv6(const char *s, size_t n)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

/* letters, digits and hyphens in labels of 1-63 not starting or ending with a hyphen; at most
 * 253 bytes; not all digits and dots (that would be a malformed IPv4 literal) */
static bool is_dns_name(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    bool alpha = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!letter && ch != '-' && !(ch >= '0' && ch <= '9'))
            return false;
        if (ch == '-' && label == 0)
            return false;
        alpha = alpha || letter || ch == '-';
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-' && alpha;
}

bool cm_httpc_host_ok(const char *host)
{
    const char *p;
    if (strncmp(host, "http://", 7) == 0)
        p = host + 7;
    else if (strncmp(host, "https://", 8) == 0)
        p = host + 8;
    else
        return false;
    const char *colon;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || !is_ipv6(p + 1, (size_t)(close - p - 1)))
            return false;
        colon = close + 1;
    } else {
        colon = strchr(p, ':');
        if (colon == NULL)
            return false;
        size_t n = (size_t)(colon - p);
        if (!is_ipv4(p, n) && !is_dns_name(p, n))
            return false;
    }
    if (*colon != ':')
        return false;
    const char *d = colon + 1;
    unsigned long port = 0;
    size_t digits = 0;
    while (d[digits] >= '0' && d[digits] <= '9' && digits < 5)
        port = port * 10 + (unsigned long)(d[digits++] - '0');
    if (digits == 0 || d[0] == '0' || port > 65535)
        return false;
    d += digits;
    return d[0] == '\0' || (d[0] == '/' && d[1] == '\0');
}

static void start_one(struct cm_httpc *c, struct cm_httpc_req *r)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(r->error, sizeof r->error, "curl_easy_init failed");
        pthread_mutex_lock(&c->lock);
        push(&c->done_head, &c->done_tail, r);
        pthread_mutex_unlock(&c->lock);
        uv_async_send(&c->done_async);
        return;
    }
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms < 3000 ? r->timeout_ms : 3000L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* Hosts come from clients (disk and node registrations): speak HTTP(S) only, whatever the
     * URL says, and never follow a redirect to somewhere else. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* forward the request target verbatim: no removal of (escaped) dot segments */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    /* never wait for "100 Continue" */
    cm_httpc_req_header(r, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (c->tls_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->tls_ca);
    if (c->tls_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->tls_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->tls_key);
    }
    if (strcmp(r->method, "GET") == 0)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (strcmp(r->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    r->iprev = NULL;
    r->inext = c->inflight;
    if (c->inflight)
        c->inflight->iprev = r;
    c->inflight = r;
    curl_multi_add_handle(c->multi, e);
}

static void finish_one(struct cm_httpc *c, CURL *e, CURLcode rc)
{
    struct cm_httpc_req *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    else {
        r->status = 0;
        if (r->too_large)
            snprintf(r->error, sizeof r->error, "response larger than the limit");
        else if (r->error[0] == '\0')
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
    }
    curl_multi_remove_handle(c->multi, e);
    curl_easy_cleanup(e);
    if (r->iprev)
        r->iprev->inext = r->inext;
    else
        c->inflight = r->inext;
    if (r->inext)
        r->inext->iprev = r->iprev;
    r->easy = NULL;
    pthread_mutex_lock(&c->lock);
    push(&c->done_head, &c->done_tail, r);
    pthread_mutex_unlock(&c->lock);
    uv_async_send(&c->done_async);
}

static void *worker(void *arg)
{
    struct cm_httpc *c = arg;
    while (!atomic_load(&c->stop)) {
        pthread_mutex_lock(&c->lock);
        struct cm_httpc_req *r = c->submit_head;
        c->submit_head = c->submit_tail = NULL;
        pthread_mutex_unlock(&c->lock);
        while (r) {
            struct cm_httpc_req *next = r->next;
            start_one(c, r);
            r = next;
        }
        int running = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                finish_one(c, m->easy_handle, m->data.result);
        curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
    }
    /* fail whatever is still in flight or queued */
    while (c->inflight) {
        snprintf(c->inflight->error, sizeof c->inflight->error, "client closed");
        finish_one(c, c->inflight->easy, CURLE_ABORTED_BY_CALLBACK);
    }
    pthread_mutex_lock(&c->lock);
    struct cm_httpc_req *r = c->submit_head;
    c->submit_head = c->submit_tail = NULL;
    while (r) {
        struct cm_httpc_req *next = r->next;
        snprintf(r->error, sizeof r->error, "client closed");
        push(&c->done_head, &c->done_tail, r);
        r = next;
    }
    pthread_mutex_unlock(&c->lock);
    uv_async_send(&c->done_async);
    return NULL;
}

static void deliver(uv_async_t *a)
{
    struct cm_httpc *c = a->data;
    pthread_mutex_lock(&c->lock);
    struct cm_httpc_req *r = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (r) {
        struct cm_httpc_req *next = r->next;
        if (r->done)
            r->done(r);
        else
            cm_httpc_req_free(r);
        r = next;
    }
}

struct cm_httpc *cm_httpc_new(uv_loop_t *loop)
{
    struct cm_httpc *c = cm_calloc(1, sizeof *c);
    c->loop = loop;
    c->multi = curl_multi_init();
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    pthread_mutex_init(&c->lock, NULL);
    uv_async_init(loop, &c->done_async, deliver);
    c->done_async.data = c;
    if (pthread_create(&c->thread, NULL, worker, c) != 0) {
        CM_ERROR("httpc", "cannot start the HTTP client thread");
        abort();
    }
    return c;
}

void cm_httpc_set_tls(struct cm_httpc *c, const char *ca_file, const char *cert, const char *key)
{
    pthread_mutex_lock(&c->lock);
    free(c->tls_ca);
    free(c->tls_cert);
    free(c->tls_key);
    c->tls_ca = ca_file && ca_file[0] ? cm_strdup(ca_file) : NULL;
    c->tls_cert = cert && cert[0] ? cm_strdup(cert) : NULL;
    c->tls_key = key && key[0] ? cm_strdup(key) : NULL;
    pthread_mutex_unlock(&c->lock);
}

void cm_httpc_submit(struct cm_httpc *c, struct cm_httpc_req *r)
{
    pthread_mutex_lock(&c->lock);
    push(&c->submit_head, &c->submit_tail, r);
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
}

static void on_async_closed(uv_handle_t *h)
{
    struct cm_httpc *c = h->data;
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->lock);
    free(c->tls_ca);
    free(c->tls_cert);
    free(c->tls_key);
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    free(c);
    if (closed)
        closed(arg);
}

void cm_httpc_close(struct cm_httpc *c, void (*closed)(void *), void *arg)
{
    atomic_store(&c->stop, true);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    deliver(&c->done_async); /* run the last completions now */
    c->closed = closed;
    c->closed_arg = arg;
    uv_close((uv_handle_t *)&c->done_async, on_async_closed);
}
