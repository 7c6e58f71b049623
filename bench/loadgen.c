/* loadgen: drive one HTTP endpoint with N keep-alive connections for T seconds and report ops/s
 * and latency percentiles, one parseable line per run (the same fields as bench/wrk/report.lua).
 *
 *   loadgen --url http://127.0.0.1:9998[,http://127.0.0.1:9999,...] --conns 64 --duration 10
 *           [--threads 2]
 *           [--method POST] [--path /kv/set] [--body '{"key":"{key}","value":"{value64}"}']
 *
 * In --path and --body, {key} becomes bench/<connection>/<request number mod 10000>, {key64}
 * the base64 of that, {id} <connection>-<request number mod 10000>, and {value64} the base64
 * of 64 'v' bytes. Every request's latency (from
 * the first byte written to the last byte of the answer read, CLOCK_MONOTONIC) is kept, so the
 * percentiles are exact. A connection the server closes is reopened; that is not an error.
 *
 * With several URLs (comma-separated, at most 8) every connection spreads its requests over them
 * round-robin, as CubeFS's clients spread theirs over the members: it keeps one keep-alive socket
 * per URL and sends request n of connection c to URL (c + n) mod count. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EP 8

struct conn {
    int fds[MAX_EP], id;
    int cur;    /* the endpoint of the request in flight */
    uint64_t n; /* requests sent on this connection */
    char req[4096];
    size_t req_len, sent; /* bytes of req written */
    char buf[65536];
    size_t got; /* bytes of the answer read */
    uint64_t start_ns;
    int want_out; /* registered for EPOLLOUT (a request is partly written) */
};

struct worker {
    pthread_t t;
    int first, count; /* connection ids */
    uint64_t *lat;    /* nanoseconds */
    size_t n_lat, cap_lat;
    uint64_t errors, non2xx, reconnects;
};

static struct sockaddr_in addrs[MAX_EP];
static char host_hdrs[MAX_EP][128];
static int n_ep;
static const char *method = "GET", *path = "/", *body = NULL;
static uint64_t end_ns;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void b64(const char *in, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = i + 1 < n ? A[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[o] = 0;
}

/* Expand the {key}, {key64} and {value64} tokens of tpl into out (at most cap bytes). */
static size_t expand(const char *tpl, const struct conn *c, char *out, size_t cap)
{
    char key[64], key64[96], id[48], val[65], val64[96];
    snprintf(key, sizeof key, "bench/%d/%llu", c->id, (unsigned long long)(c->n % 10000));
    snprintf(id, sizeof id, "%d-%llu", c->id, (unsigned long long)(c->n % 10000));
    b64(key, strlen(key), key64);
    memset(val, 'v', 64);
    b64(val, 64, val64);
    size_t o = 0;
    for (const char *p = tpl; *p && o + 1 < cap;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{key}", 5))
            rep = key, skip = 5;
        else if (!strncmp(p, "{key64}", 7))
            rep = key64, skip = 7;
        else if (!strncmp(p, "{id}", 4))
            rep = id, skip = 4;
        else if (!strncmp(p, "{value64}", 9))
            rep = val64, skip = 9;
        if (rep) {
            size_t l = strlen(rep);
            if (o + l >= cap)
                break;
            memcpy(out + o, rep, l);
            o += l;
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return o;
}

static void build_request(struct conn *c)
{
    char p[1024], b[2048];
    expand(path, c, p, sizeof p);
    size_t bl = body ? expand(body, c, b, sizeof b) : 0;
    int n = snprintf(c->req, sizeof c->req,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, p, host_hdrs[c->cur], bl, body ? b : "");
    c->req_len = (size_t)n < sizeof c->req ? (size_t)n : sizeof c->req - 1;
    c->sent = 0;
    c->got = 0;
}

/* epoll data of a socket: the connection's index in its worker and the endpoint */
static uint64_t tag(const struct conn *c, int first, int k)
{
    return ((uint64_t)(c->id - first) << 8) | (uint64_t)k;
}

/* Open the socket of the current endpoint. */
static int open_conn(struct conn *c, int ep, int first)
{
    int k = c->cur;
    c->fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fds[k] < 0)
        return -1;
    int one = 1;
    setsockopt(c->fds[k], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fds[k], (struct sockaddr *)&addrs[k], sizeof addrs[k]) < 0 &&
        errno != EINPROGRESS) {
        close(c->fds[k]);
        c->fds[k] = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = tag(c, first, k)};
    c->want_out = 1;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fds[k], &ev);
}

static void close_sock(struct conn *c, int ep, int k)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fds[k], NULL);
    close(c->fds[k]);
    c->fds[k] = -1;
}

/* Length of a complete answer at the start of buf, 0 if incomplete, -1 if unparsable. */
static long answer_len(const char *buf, size_t got, int *status)
{
    const char *end = memmem(buf, got, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hl = (size_t)(end - buf) + 4;
    if (got < 12 || strncmp(buf, "HTTP/1.", 7))
        return -1;
    *status = atoi(buf + 9);
    long cl = -1;
    int chunked = 0;
    for (const char *l = memchr(buf, '\n', hl); l && l < end;
         l = memchr(l + 1, '\n', (size_t)(end - l))) {
        if (!strncasecmp(l + 1, "Content-Length:", 15))
            cl = atol(l + 16);
        else if (!strncasecmp(l + 1, "Transfer-Encoding:", 18) && strstr(l, "chunked") &&
                 strstr(l, "chunked") < end)
            chunked = 1;
    }
    if (!chunked)
        return got >= hl + (size_t)(cl < 0 ? 0 : cl) ? (long)(hl + (size_t)(cl < 0 ? 0 : cl)) : 0;
    size_t at = hl;
    for (;;) { /* <hex>\r\n<data>\r\n ... 0\r\n\r\n */
        const char *crlf = memmem(buf + at, got - at, "\r\n", 2);
        if (!crlf)
            return 0;
        size_t sz = strtoul(buf + at, NULL, 16);
        at = (size_t)(crlf - buf) + 2 + sz + 2;
        if (at > got)
            return 0;
        if (sz == 0)
            return (long)at;
    }
}

static void record(struct worker *w, uint64_t ns)
{
    if (w->n_lat == w->cap_lat) {
        w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 1 << 16;
        w->lat = realloc(w->lat, w->cap_lat * sizeof *w->lat);
        if (!w->lat) {
            perror("realloc");
            exit(1);
        }
    }
    w->lat[w->n_lat++] = ns;
}

/* Write what the socket takes of the request; wait for EPOLLOUT only while some is left. */
static void send_some(struct conn *c, int ep, int first)
{
    if (c->sent == 0)
        c->start_ns = now_ns();
    while (c->sent < c->req_len) {
        ssize_t k = write(c->fds[c->cur], c->req + c->sent, c->req_len - c->sent);
        if (k <= 0)
            break;
        c->sent += (size_t)k;
    }
    int want = c->sent < c->req_len;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                                 .data.u64 = tag(c, first, c->cur)};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fds[c->cur], &ev);
        c->want_out = want;
    }
}

static void *run(void *arg)
{
    struct worker *w = arg;
    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)w->count, sizeof *cs);
    for (int i = 0; i < w->count; i++) {
        cs[i].id = w->first + i;
        for (int k = 0; k < MAX_EP; k++)
            cs[i].fds[k] = -1;
        cs[i].cur = cs[i].id % n_ep;
        build_request(&cs[i]);
        if (open_conn(&cs[i], ep, w->first) < 0) {
            perror("connect");
            exit(1);
        }
    }
    struct epoll_event evs[256];
    while (now_ns() < end_ns) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = &cs[evs[i].data.u64 >> 8];
            int sk = (int)(evs[i].data.u64 & 0xff);
            if (sk != c->cur) { /* an idle socket of another endpoint: closed, or noise */
                char junk[4096];
                ssize_t k = read(c->fds[sk], junk, sizeof junk);
                if (k == 0 || (k < 0 && errno != EAGAIN))
                    close_sock(c, ep, sk); /* reopened when its turn comes */
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->sent < c->req_len)
                send_some(c, ep, w->first);
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t k = read(c->fds[c->cur], c->buf + c->got, sizeof c->buf - c->got);
            if (k == 0 || (k < 0 && errno != EAGAIN)) { /* closed: count it, reopen */
                if (c->sent)
                    w->errors++;
                close_sock(c, ep, c->cur);
                w->reconnects++;
                build_request(c);
                if (open_conn(c, ep, w->first) < 0)
                    w->errors++;
                continue;
            }
            if (k < 0)
                continue;
            c->got += (size_t)k;
            int status = 0;
            long len = answer_len(c->buf, c->got, &status);
            if (len == 0 && c->got < sizeof c->buf)
                continue;
            uint64_t t = now_ns();
            if (len < 0 || len == 0) {
                w->errors++;
            } else {
                record(w, t - c->start_ns);
                if (status < 200 || status > 299)
                    w->non2xx++;
            }
            c->n++;
            c->cur = (int)((uint64_t)c->id + c->n) % n_ep;
            build_request(c);
            if (c->fds[c->cur] < 0) {
                if (open_conn(c, ep, w->first) < 0)
                    w->errors++;
                continue; /* sent when the socket is writable */
            }
            send_some(c, ep, w->first);
        }
    }
    for (int i = 0; i < w->count; i++)
        for (int k = 0; k < MAX_EP; k++)
            if (cs[i].fds[k] >= 0)
                close(cs[i].fds[k]);
    free(cs);
    close(ep);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int conns = 1, threads = 0;
    double duration = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--conns"))
            conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--method"))
            method = argv[i + 1];
        else if (!strcmp(argv[i], "--path"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--body"))
            body = argv[i + 1];
        else {
            fprintf(stderr, "loadgen: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!url || conns < 1 || duration <= 0) {
        fprintf(stderr,
                "usage: loadgen --url http://HOST:PORT --conns N --duration S [--threads T] "
                "[--method M] [--path P] [--body B]\n");
        return 2;
    }
    char urls[1024];
    snprintf(urls, sizeof urls, "%s", url);
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        if (n_ep == MAX_EP) {
            fprintf(stderr, "loadgen: at most %d URLs\n", MAX_EP);
            return 2;
        }
        if (!strncmp(u, "http://", 7))
            u += 7;
        char host[100];
        int port = 80;
        snprintf(host, sizeof host, "%s", u);
        char *colon = strchr(host, ':');
        if (colon) {
            *colon = 0;
            port = atoi(colon + 1);
        }
        char *slash = strchr(host, '/');
        if (slash)
            *slash = 0;
        addrs[n_ep].sin_family = AF_INET;
        addrs[n_ep].sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &addrs[n_ep].sin_addr) != 1) {
            fprintf(stderr, "loadgen: %s is not an IPv4 address\n", host);
            return 2;
        }
        snprintf(host_hdrs[n_ep], sizeof host_hdrs[n_ep], "%s:%d", host, port);
        n_ep++;
    }
    if (n_ep == 0) {
        fprintf(stderr, "loadgen: no URL\n");
        return 2;
    }
    if (threads <= 0)
        threads = conns < 8 ? 1 : 2;
    if (threads > conns)
        threads = conns;
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    uint64_t start = now_ns();
    end_ns = start + (uint64_t)(duration * 1e9);
    for (int i = 0, first = 0; i < threads; i++) {
        ws[i].first = first;
        ws[i].count = conns / threads + (i < conns % threads);
        first += ws[i].count;
        pthread_create(&ws[i].t, NULL, run, &ws[i]);
    }
    size_t total = 0;
    uint64_t errors = 0, non2xx = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].t, NULL);
        total += ws[i].n_lat;
        errors += ws[i].errors;
        non2xx += ws[i].non2xx;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t o = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + o, ws[i].lat, ws[i].n_lat * sizeof *all);
        o += ws[i].n_lat;
        free(ws[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u64);
#define PCT(p) (total ? (double)all[(size_t)((double)(total - 1) * (p) / 100.0)] / 1e6 : 0.0)
    printf("RESULT ops=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%zu "
           "errors=%llu non2xx=%llu\n",
           (double)total / secs, PCT(50), PCT(99), PCT(99.9),
           total ? (double)all[total - 1] / 1e6 : 0.0, total, (unsigned long long)(errors + non2xx),
           (unsigned long long)non2xx);
    free(all);
    free(ws);
    return 0;
}
