/*
 * Authenticated raft transport; see transport.h for the handshake.
 *
 * Handles handed to raft (accepted and connected streams) are raft_malloc'd uv_tcp_t, because
 * raft closes and frees them itself. Every other handle belongs to this file and is freed in its
 * close callback; the transport's close callback fires once all of them are gone.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/buf.h"
#include "../util/codec.h"
#include "../util/crypto.h"
#include "../util/log.h"
#include "../util/timeutil.h"

#define MAGIC "CMRAFT01"
#define NONCE 32
#define MAC 32
#define HELLO_HDR (8 + 8 + NONCE + 2)
#define CHALLENGE (8 + NONCE + MAC)
#define MAX_ADDR 255
#define HANDSHAKE_TIMEOUT_MS 5000
/* Admission of incoming handshakes. A peer sends its HELLO as soon as it is connected and
 * answers the challenge within one round trip, so an incoming handshake gets IN_STEP_MS for
 * each of its two steps. At most IN_PER_SOURCE may be pending from one IP address and IN_MAX in
 * all; a connection over either cap evicts the oldest pending one it competes with, preferring
 * one that has not sent a byte, so strangers holding idle sockets (or churning them) never keep
 * a peer's fresh connection from being accepted: the peer's is always the newest. */
#define IN_STEP_MS 1000
#define IN_PER_SOURCE 64
#define IN_MAX 512
#define LISTEN_BACKLOG 1024

/* Bounds on what an authenticated peer may make canonical raft allocate. raft sizes its buffers
 * from the wire without limits (a header length is a u64, an AppendEntries names up to 2^32
 * entries and reads their descriptors past a short header, a snapshot's length is a u64), so
 * garbage from a peer that holds the secret (a bug, a bit flip, a compromised node) could make
 * it try to allocate up to 2^64 bytes or read past its buffer. A legitimate header is 40 bytes +
 * 16 per entry; a legitimate payload is a batch of entries or a snapshot. */
#define MAX_MSG_HEADER (64u << 20)
#define MAX_MSG_PAYLOAD ((uint64_t)16 << 30)

struct hs; /* a connection in handshake, either direction */

/* An accepted stream as handed to raft: the TCP handle first, so raft_free of the handle frees
 * the whole, then the state of the framing check that sees every byte before raft does. */
struct guarded_tcp {
    uv_tcp_t tcp;
    uv_read_cb raft_read;
    int stage; /* 0 preamble, 1 header, 2 payload */
    uint8_t pre[16];
    uint64_t type, hlen, pos, payload;
    uint64_t n; /* AppendEntries: entry count; InstallSnapshot: configuration length */
    uint64_t data_len, entry_size;
    bool bad_entry;
};

struct cm_tp {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    char bind[128];
    char *secret;
    raft_id id;
    char address[MAX_ADDR + 1];
    raft_uv_accept_cb accept_cb;
    uv_tcp_t listener;
    bool listening;
    bool closing;
    unsigned handles; /* open handles owned here (listener, pending tcp, timers) */
    raft_uv_transport_close_cb close_cb;
    struct hs *pending; /* list of handshakes in progress */
    unsigned n_pending;
    struct hs *in_head, *in_tail; /* incoming handshakes in progress, oldest first */
    unsigned n_in;
    struct cm_transport_stats stats;
    uint64_t last_reject_log_ms;
    unsigned suppressed;
};

enum hs_state {
    IN_HELLO_HDR,
    IN_HELLO_ADDR,
    IN_PROOF,
    IN_SENDING_OK,
    OUT_CONNECTING,
    OUT_CHALLENGE,
    OUT_OK,
};

struct hs {
    struct cm_tp *tp;
    bool incoming;
    enum hs_state state;
    uv_tcp_t *tcp; /* raft_malloc'd: ownership passes to raft on success */
    uv_timer_t timer;
    uv_connect_t conn;
    /* every write has its own request and buffer: libuv keeps both until the write's callback,
     * and the peer may answer (and we write again) before that callback runs */
    struct {
        uv_write_t req;
        uint8_t data[HELLO_HDR + MAX_ADDR];
    } w[2];
    int n_writes;
    uint8_t buf[HELLO_HDR + MAX_ADDR + CHALLENGE];
    size_t need, got;
    uint8_t nonce_c[NONCE], nonce_s[NONCE];
    raft_id peer_id;
    char peer_addr[MAX_ADDR + 1];
    char remote[96];             /* ip:port of the TCP peer, for logs */
    char src[INET6_ADDRSTRLEN];  /* IP of the TCP peer (incoming), for the per-source cap */
    struct raft_uv_connect *req; /* outgoing */
    bool failed;
    int writing;      /* uv_writes in flight */
    bool ok_received; /* outgoing: OK arrived while our proof was still being written */
    int closes;       /* handle close callbacks still to come */
    struct hs *prev, *next;
    struct hs *in_prev, *in_next; /* incoming only: admission order */
    bool in_listed;
};

static struct cm_tp *tp_of(struct raft_uv_transport *t)
{
    return t->impl;
}

static void maybe_closed(struct cm_tp *tp)
{
    if (tp->closing && tp->handles == 0 && tp->close_cb) {
        raft_uv_transport_close_cb cb = tp->close_cb;
        tp->close_cb = NULL;
        cb(tp->t);
    }
}

static void list_add(struct cm_tp *tp, struct hs *h)
{
    h->prev = NULL;
    h->next = tp->pending;
    if (tp->pending)
        tp->pending->prev = h;
    tp->pending = h;
    tp->n_pending++;
}

static void list_del(struct cm_tp *tp, struct hs *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else if (tp->pending == h)
        tp->pending = h->next;
    else
        return;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    tp->n_pending--;
}

static void in_add(struct cm_tp *tp, struct hs *h)
{
    h->in_next = NULL;
    h->in_prev = tp->in_tail;
    if (tp->in_tail)
        tp->in_tail->in_next = h;
    else
        tp->in_head = h;
    tp->in_tail = h;
    h->in_listed = true;
    tp->n_in++;
}

static void in_del(struct cm_tp *tp, struct hs *h)
{
    if (!h->in_listed)
        return;
    if (h->in_prev)
        h->in_prev->in_next = h->in_next;
    else
        tp->in_head = h->in_next;
    if (h->in_next)
        h->in_next->in_prev = h->in_prev;
    else
        tp->in_tail = h->in_prev;
    h->in_prev = h->in_next = NULL;
    h->in_listed = false;
    tp->n_in--;
}

static void mac(struct cm_tp *tp, const char *role, const uint8_t *n1, const uint8_t *n2,
                raft_id id, const char *addr, uint8_t out[MAC])
{
    uint8_t idb[8];
    cm_wbe64(idb, id);
    const void *parts[5] = {role, n1, n2, idb, addr};
    size_t lens[5] = {strlen(role), NONCE, NONCE, 8, strlen(addr)};
    cm_hmac_sha256(tp->secret, strlen(tp->secret), parts, lens, 5, out);
}

static void log_reject(struct cm_tp *tp, struct hs *h, const char *why)
{
    tp->stats.rejected++;
    uint64_t now = cm_mono_ms();
    if (now - tp->last_reject_log_ms < 1000) {
        tp->suppressed++;
        return;
    }
    if (tp->suppressed)
        CM_WARN("raft", "(%u more rejected raft connections not logged)", tp->suppressed);
    tp->suppressed = 0;
    tp->last_reject_log_ms = now;
    CM_WARN("raft", "dropped a raft connection from %s (claims id %llu): %s", h->remote,
            (unsigned long long)h->peer_id, why);
}

static void hs_free_if_done(struct hs *h)
{
    if (h->closes > 0)
        return;
    struct cm_tp *tp = h->tp;
    if (!h->incoming && h->req) {
        /* tell raft the connection attempt failed */
        struct raft_uv_connect *req = h->req;
        h->req = NULL;
        req->cb(req, NULL, tp->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
    }
    free(h);
    maybe_closed(tp);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct hs *h = handle->data;
    struct cm_tp *tp = h->tp;
    if (handle == (uv_handle_t *)h->tcp) {
        raft_free(h->tcp);
        h->tcp = NULL;
    }
    tp->handles--;
    h->closes--;
    hs_free_if_done(h);
}

/* Abandon a handshake: close its handles; the connect callback (outgoing) fires when closed. */
static void hs_fail(struct hs *h)
{
    if (h->failed)
        return;
    h->failed = true;
    struct cm_tp *tp = h->tp;
    list_del(tp, h);
    in_del(tp, h);
    if (!h->incoming)
        tp->stats.connect_failed++;
    uv_timer_stop(&h->timer);
    h->closes = 2;
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)h->tcp, on_handle_closed);
}

/* Success: stop our handles and hand the stream to raft. */
static void timer_closed_after_success(uv_handle_t *handle)
{
    struct hs *h = handle->data;
    struct cm_tp *tp = h->tp;
    tp->handles--;
    free(h);
    maybe_closed(tp);
}

static uint64_t le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* One header byte at offset g->pos: collect the fields raft sizes things from. */
static void guard_header_byte(struct guarded_tcp *g, uint8_t b)
{
    uint64_t p = g->pos;
    if (p >= 32 && p < 40) {
        g->n |= (uint64_t)b << (8 * (p - 32)); /* AppendEntries: entry count */
        return;
    }
    if (g->type == RAFT_IO_APPEND_ENTRIES && p >= 40) {
        uint64_t i = (p - 40) / 16, r = (p - 40) % 16;
        if (i >= g->n)
            return;
        if (r == 8 && b != RAFT_COMMAND && b != RAFT_BARRIER && b != RAFT_CHANGE)
            g->bad_entry = true;
        if (r >= 12)
            g->entry_size |= (uint64_t)b << (8 * (r - 12));
        if (r == 15) {
            g->payload += g->entry_size;
            g->entry_size = 0;
        }
    } else if (g->type == RAFT_IO_INSTALL_SNAPSHOT && p >= 40 && p - 40 >= g->n &&
               p - 40 - g->n < 8) {
        g->data_len |= (uint64_t)b << (8 * (p - 40 - g->n)); /* after the configuration */
    }
}

/* NULL when the header just completed is one raft can decode within its length, else why not. */
static const char *guard_header_done(struct guarded_tcp *g)
{
    uint64_t h = g->hlen;
    switch (g->type) {
    case RAFT_IO_APPEND_ENTRIES:
        if (h < 40 || g->n > (h - 40) / 16)
            return "AppendEntries names more entries than its header holds";
        if (g->bad_entry)
            return "AppendEntries with an unknown entry type";
        break;
    case RAFT_IO_INSTALL_SNAPSHOT:
        if (h < 48 || g->n > h - 48) /* g->n holds the configuration length here */
            return "InstallSnapshot configuration longer than its header";
        g->payload = g->data_len;
        break;
    case RAFT_IO_REQUEST_VOTE:
    case RAFT_IO_APPEND_ENTRIES_RESULT:
    case RAFT_IO_TIMEOUT_NOW:
        if (h < (g->type == RAFT_IO_REQUEST_VOTE ? 32 : 24))
            return "message header too short";
        g->payload = 0;
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        if (h < 16)
            return "message header too short";
        g->payload = 0;
        break;
    default:
        return "unknown message type";
    }
    if (g->payload > MAX_MSG_PAYLOAD)
        return "message payload over the limit";
    return NULL;
}

/* Sees each chunk raft has just read into its own buffer, before raft acts on it. raft reads
 * exactly the bytes of one part (preamble, header, payload) at a time, so a chunk never spans
 * two parts. On garbage raft is told the read failed, and it closes the connection. */
static void guard_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct guarded_tcp *g = (struct guarded_tcp *)s;
    const char *why = NULL;
    if (nread > 0) {
        const uint8_t *p = (const uint8_t *)buf->base;
        for (ssize_t i = 0; i < nread && why == NULL; i++) {
            if (g->stage == 0) {
                g->pre[g->pos++] = p[i];
                if (g->pos < 16)
                    continue;
                g->type = le_get(g->pre, 8);
                g->hlen = le_get(g->pre + 8, 8);
                if (g->type < RAFT_IO_APPEND_ENTRIES || g->type > RAFT_IO_TIMEOUT_NOW)
                    why = "unknown message type";
                else if (g->hlen == 0 || g->hlen > MAX_MSG_HEADER)
                    why = "message header length over the limit";
                g->stage = 1;
                g->pos = g->n = g->data_len = g->entry_size = g->payload = 0;
                g->bad_entry = false;
            } else if (g->stage == 1) {
                guard_header_byte(g, p[i]);
                if (++g->pos < g->hlen)
                    continue;
                why = guard_header_done(g);
                g->stage = g->payload ? 2 : 0;
                g->pos = 0;
            } else {
                uint64_t take = (uint64_t)(nread - i);
                if (take > g->payload - g->pos)
                    take = g->payload - g->pos;
                g->pos += take;
                i += (ssize_t)take - 1;
                if (g->pos == g->payload)
                    g->stage = 0, g->pos = 0;
            }
        }
    }
    if (why) {
        CM_WARN("raft", "closed a raft connection from an authenticated peer: %s", why);
        g->raft_read(s, UV_EPROTO, buf);
        return;
    }
    g->raft_read(s, nread, buf);
}

/* The handover runs from a timer callback, never from inside a libuv callback of the stream
 * itself: raft starts its own reads and writes on the stream, which must not happen while libuv
 * is still iterating our read or write completions for it. Until then reading is stopped, so raft
 * bytes that arrive meanwhile wait in the socket. */
static void finish_handover(uv_timer_t *t)
{
    struct hs *h = t->data;
    struct cm_tp *tp = h->tp;
    list_del(tp, h);
    in_del(tp, h);
    uv_tcp_t *tcp = h->tcp;
    /* raft writes small messages: without this, Nagle's algorithm meets the peer's delayed ACK
     * and a commit waits ~40 ms */
    uv_tcp_nodelay(tcp, 1);
    h->tcp = NULL;
    tcp->data = NULL;
    tp->handles--; /* the tcp handle now belongs to raft */
    if (h->incoming) {
        tp->stats.accepted++;
        tp->accept_cb(tp->t, h->peer_id, h->peer_addr, (uv_stream_t *)tcp);
        /* raft started reading in its accept callback (and never restarts): interpose */
        struct guarded_tcp *g = (struct guarded_tcp *)tcp;
        if (uv_is_active((uv_handle_t *)tcp) && tcp->read_cb != NULL) {
            g->raft_read = tcp->read_cb;
            tcp->read_cb = guard_read;
        }
    } else {
        tp->stats.connected++;
        struct raft_uv_connect *req = h->req;
        h->req = NULL;
        req->cb(req, (uv_stream_t *)tcp, 0);
    }
    uv_close((uv_handle_t *)&h->timer, timer_closed_after_success);
}

static void hs_succeed(struct hs *h)
{
    uv_read_stop((uv_stream_t *)h->tcp);
    uv_timer_stop(&h->timer);
    uv_timer_start(&h->timer, finish_handover, 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct hs *h = t->data;
    if (h->incoming)
        log_reject(h->tp, h, "handshake timed out");
    else
        CM_DEBUG("raft", "handshake with %s timed out", h->peer_addr);
    hs_fail(h);
}

static void alloc_exact(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct hs *h = handle->data;
    buf->base = (char *)h->buf + h->got;
    buf->len = h->need - h->got;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void expect(struct hs *h, size_t n)
{
    h->need = n;
    h->got = 0;
}

static void on_write(uv_write_t *w, int status)
{
    struct hs *h = w->data;
    h->writing--;
    if (h->failed)
        return;
    if (status != 0) {
        hs_fail(h);
        return;
    }
    if (h->writing == 0 && (h->state == IN_SENDING_OK || h->ok_received))
        hs_succeed(h);
}

static void send_bytes(struct hs *h, const void *p, size_t n)
{
    if (h->n_writes == 2 || n > sizeof h->w[0].data) {
        hs_fail(h);
        return;
    }
    int k = h->n_writes++;
    memcpy(h->w[k].data, p, n);
    uv_buf_t b = uv_buf_init((char *)h->w[k].data, (unsigned)n);
    h->w[k].req.data = h;
    h->writing++;
    if (uv_write(&h->w[k].req, (uv_stream_t *)h->tcp, &b, 1, on_write) != 0) {
        h->writing--;
        hs_fail(h);
    }
}

static void incoming_step(struct hs *h)
{
    struct cm_tp *tp = h->tp;
    switch (h->state) {
    case IN_HELLO_HDR: {
        if (memcmp(h->buf, MAGIC, 8) != 0) {
            log_reject(tp, h, "not a clustermgr raft handshake (wrong protocol or no peer secret)");
            hs_fail(h);
            return;
        }
        h->peer_id = cm_be64(h->buf + 8);
        memcpy(h->nonce_c, h->buf + 16, NONCE);
        size_t alen = (size_t)((h->buf[16 + NONCE] << 8) | h->buf[17 + NONCE]);
        if (alen == 0 || alen > MAX_ADDR || h->peer_id == 0) {
            log_reject(tp, h, "malformed hello");
            hs_fail(h);
            return;
        }
        h->state = IN_HELLO_ADDR;
        expect(h, alen);
        return;
    }
    case IN_HELLO_ADDR: {
        memcpy(h->peer_addr, h->buf, h->need);
        h->peer_addr[h->need] = '\0';
        if (memchr(h->peer_addr, '\0', h->need) != NULL) {
            log_reject(tp, h, "malformed address");
            hs_fail(h);
            return;
        }
        if (cm_random_bytes(h->nonce_s, NONCE) != 0) {
            hs_fail(h);
            return;
        }
        uint8_t ch[CHALLENGE];
        memcpy(ch, MAGIC, 8);
        memcpy(ch + 8, h->nonce_s, NONCE);
        mac(tp, "server", h->nonce_c, h->nonce_s, h->peer_id, h->peer_addr, ch + 8 + NONCE);
        h->state = IN_PROOF;
        uv_timer_start(&h->timer, on_timeout, IN_STEP_MS, 0); /* one round trip for the proof */
        expect(h, MAC);
        send_bytes(h, ch, sizeof ch);
        return;
    }
    case IN_PROOF: {
        uint8_t want[MAC];
        mac(tp, "client", h->nonce_s, h->nonce_c, h->peer_id, h->peer_addr, want);
        if (!cm_ct_equal(want, h->buf, MAC)) {
            log_reject(tp, h, "wrong proof: it does not hold the cluster's peer secret");
            hs_fail(h);
            return;
        }
        uv_read_stop((uv_stream_t *)h->tcp);
        h->state = IN_SENDING_OK;
        uint8_t ok = 1;
        send_bytes(h, &ok, 1);
        return;
    }
    default:
        hs_fail(h);
    }
}

static void outgoing_step(struct hs *h)
{
    struct cm_tp *tp = h->tp;
    switch (h->state) {
    case OUT_CHALLENGE: {
        if (memcmp(h->buf, MAGIC, 8) != 0) {
            CM_WARN("raft", "peer %s does not speak the authenticated raft protocol", h->peer_addr);
            hs_fail(h);
            return;
        }
        memcpy(h->nonce_s, h->buf + 8, NONCE);
        uint8_t want[MAC];
        mac(tp, "server", h->nonce_c, h->nonce_s, tp->id, tp->address, want);
        if (!cm_ct_equal(want, h->buf + 8 + NONCE, MAC)) {
            CM_WARN("raft", "peer %s failed to prove it holds the cluster's peer secret",
                    h->peer_addr);
            hs_fail(h);
            return;
        }
        uint8_t proof[MAC];
        mac(tp, "client", h->nonce_s, h->nonce_c, tp->id, tp->address, proof);
        h->state = OUT_OK;
        expect(h, 1);
        send_bytes(h, proof, sizeof proof);
        return;
    }
    case OUT_OK:
        if (h->buf[0] != 1) {
            hs_fail(h);
            return;
        }
        if (h->writing) { /* finish when our writes complete */
            uv_read_stop((uv_stream_t *)h->tcp);
            h->ok_received = true;
            return;
        }
        hs_succeed(h);
        return;
    default:
        hs_fail(h);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct hs *h = s->data;
    if (h == NULL || h->failed)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (h->incoming && h->state != IN_HELLO_HDR)
            log_reject(h->tp, h, "closed during the handshake");
        hs_fail(h);
        return;
    }
    h->got += (size_t)nread;
    if (h->got < h->need)
        return;
    if (h->incoming)
        incoming_step(h);
    else
        outgoing_step(h);
}

static struct hs *hs_new(struct cm_tp *tp, bool incoming)
{
    struct hs *h = cm_calloc(1, sizeof *h);
    h->tp = tp;
    h->incoming = incoming;
    h->tcp = raft_malloc(sizeof(struct guarded_tcp)); /* see struct guarded_tcp */
    if (h->tcp == NULL) {
        free(h);
        return NULL;
    }
    memset(h->tcp, 0, sizeof(struct guarded_tcp));
    uv_tcp_init(tp->loop, h->tcp);
    h->tcp->data = h;
    uv_timer_init(tp->loop, &h->timer);
    h->timer.data = h;
    tp->handles += 2;
    uv_timer_start(&h->timer, on_timeout, HANDSHAKE_TIMEOUT_MS, 0);
    list_add(tp, h);
    return h;
}

/* True when the connection has not sent a byte yet (none read, none waiting in the socket). */
static bool hs_silent(struct hs *h)
{
    if (h->state != IN_HELLO_HDR || h->got > 0)
        return false;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)h->tcp, &fd) != 0)
        return true;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The oldest pending incoming handshake (from `src`, or from anywhere when NULL), preferring one
 * that has not sent a byte; `count` gets how many there are. */
static struct hs *oldest_victim(struct cm_tp *tp, const char *src, unsigned *count)
{
    struct hs *first = NULL, *silent = NULL;
    unsigned n = 0;
    for (struct hs *x = tp->in_head; x; x = x->in_next) {
        if (src && strcmp(x->src, src) != 0)
            continue;
        n++;
        if (first == NULL)
            first = x;
        if (silent == NULL && hs_silent(x))
            silent = x;
    }
    *count = n;
    return silent ? silent : first;
}

/* Make room for the new incoming handshake `h` (not yet listed) within both caps. */
static void admit(struct cm_tp *tp, struct hs *h)
{
    unsigned n;
    struct hs *v = oldest_victim(tp, h->src, &n);
    if (n >= IN_PER_SOURCE && v) {
        tp->stats.evicted++;
        log_reject(tp, v, "evicted: too many raft handshakes pending from its address");
        hs_fail(v);
    }
    if (tp->n_in >= IN_MAX) {
        v = oldest_victim(tp, NULL, &n);
        if (v) {
            tp->stats.evicted++;
            log_reject(tp, v, "evicted: too many raft handshakes pending");
            hs_fail(v);
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct cm_tp *tp = server->data;
    if (status != 0 || tp->closing)
        return;
    struct hs *h = hs_new(tp, true);
    if (h == NULL)
        return;
    if (uv_accept(server, (uv_stream_t *)h->tcp) != 0) {
        hs_fail(h);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(h->remote, sizeof h->remote, "?");
    if (uv_tcp_getpeername(h->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(h->src, sizeof h->src, "%s", ip);
            snprintf(h->remote, sizeof h->remote, "%s:%u", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(h->src, sizeof h->src, "%s", ip);
            snprintf(h->remote, sizeof h->remote, "[%s]:%u", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
    }
    admit(tp, h);
    in_add(tp, h);
    uv_timer_start(&h->timer, on_timeout, IN_STEP_MS, 0);
    h->state = IN_HELLO_HDR;
    expect(h, HELLO_HDR);
    uv_read_start((uv_stream_t *)h->tcp, alloc_exact, on_read);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon;
    const char *hs = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (rb == NULL || rb[1] != ':')
            return -1;
        hs = addr + 1;
        hl = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl >= sizeof host)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return -1;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -1;
}

static int tp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct cm_tp *tp = tp_of(t);
    tp->id = id;
    snprintf(tp->address, sizeof tp->address, "%s", address);
    return 0;
}

static int tp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct cm_tp *tp = tp_of(t);
    struct sockaddr_storage ss;
    if (parse_addr(tp->bind, &ss) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "bad raft bind address %s", tp->bind);
        return RAFT_INVALID;
    }
    tp->accept_cb = cb;
    uv_tcp_init(tp->loop, &tp->listener);
    tp->listener.data = tp;
    tp->handles++;
    tp->listening = true;
    int rc = uv_tcp_bind(&tp->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&tp->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen on %s: %s", tp->bind, uv_strerror(rc));
        return RAFT_IOERR;
    }
    return 0;
}

static void on_connected(uv_connect_t *c, int status)
{
    struct hs *h = c->data;
    if (h->failed)
        return;
    if (status != 0) {
        hs_fail(h);
        return;
    }
    struct cm_tp *tp = h->tp;
    size_t alen = strlen(tp->address);
    uint8_t hello[HELLO_HDR + MAX_ADDR];
    memcpy(hello, MAGIC, 8);
    cm_wbe64(hello + 8, tp->id);
    memcpy(hello + 16, h->nonce_c, NONCE);
    hello[16 + NONCE] = (uint8_t)(alen >> 8);
    hello[17 + NONCE] = (uint8_t)alen;
    memcpy(hello + HELLO_HDR, tp->address, alen);
    h->state = OUT_CHALLENGE;
    expect(h, CHALLENGE);
    uv_read_start((uv_stream_t *)h->tcp, alloc_exact, on_read);
    send_bytes(h, hello, HELLO_HDR + alen);
}

static int tp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct cm_tp *tp = tp_of(t);
    struct sockaddr_storage ss;
    if (tp->closing)
        return RAFT_CANCELED;
    if (parse_addr(address, &ss) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg,
                 "raft address %s is not ip:port (names are not resolved with peer auth)", address);
        return RAFT_NOCONNECTION;
    }
    struct hs *h = hs_new(tp, false);
    if (h == NULL)
        return RAFT_NOMEM;
    req->cb = cb;
    h->req = req;
    h->peer_id = id;
    snprintf(h->peer_addr, sizeof h->peer_addr, "%s", address);
    snprintf(h->remote, sizeof h->remote, "%s", address);
    if (cm_random_bytes(h->nonce_c, NONCE) != 0) {
        hs_fail(h);
        return 0;
    }
    h->state = OUT_CONNECTING;
    h->conn.data = h;
    int rc = uv_tcp_connect(&h->conn, h->tcp, (struct sockaddr *)&ss, on_connected);
    if (rc != 0) {
        /* fail asynchronously: raft expects the callback, not an error, once we accepted */
        hs_fail(h);
    }
    return 0;
}

static void listener_closed(uv_handle_t *handle)
{
    struct cm_tp *tp = handle->data;
    tp->handles--;
    maybe_closed(tp);
}

static void tp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct cm_tp *tp = tp_of(t);
    tp->closing = true;
    tp->close_cb = cb;
    if (tp->listening) {
        tp->listening = false;
        uv_close((uv_handle_t *)&tp->listener, listener_closed);
    }
    while (tp->pending)
        hs_fail(tp->pending);
    maybe_closed(tp);
}

int cm_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const char *bind_addr,
                      const char *secret)
{
    struct cm_tp *tp = cm_calloc(1, sizeof *tp);
    tp->t = t;
    tp->loop = loop;
    snprintf(tp->bind, sizeof tp->bind, "%s", bind_addr);
    tp->secret = cm_strdup(secret);
    memset(t, 0, sizeof *t);
    t->impl = tp;
    t->init = tp_init;
    t->listen = tp_listen;
    t->connect = tp_connect;
    t->close = tp_close;
    return 0;
}

void cm_transport_free(struct raft_uv_transport *t)
{
    struct cm_tp *tp = tp_of(t);
    if (tp == NULL)
        return;
    free(tp->secret);
    free(tp);
    t->impl = NULL;
}

const struct cm_transport_stats *cm_transport_stats(struct raft_uv_transport *t)
{
    return &tp_of(t)->stats;
}

/* ---- canonical raft's own TCP transport, with TCP_NODELAY on its streams ---- */

struct wrap {
    struct raft_uv_transport inner;
    struct raft_uv_transport *outer;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

struct wrap_connect {
    struct raft_uv_connect req;
    struct raft_uv_connect *orig;
    raft_uv_connect_cb orig_cb;
};

static int wrap_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct wrap *w = t->impl;
    return w->inner.init(&w->inner, id, address);
}

static void wrap_accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                        struct uv_stream_s *stream)
{
    struct wrap *w = inner->data;
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    w->accept_cb(w->outer, id, address, stream);
}

static int wrap_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct wrap *w = t->impl;
    w->accept_cb = cb;
    int rc = w->inner.listen(&w->inner, wrap_accept);
    if (rc != 0)
        memcpy(t->errmsg, w->inner.errmsg, sizeof t->errmsg);
    return rc;
}

static void wrap_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct wrap_connect *c = req->data;
    if (status == 0 && stream != NULL)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    struct raft_uv_connect *orig = c->orig;
    raft_uv_connect_cb cb = c->orig_cb;
    free(c);
    cb(orig, stream, status);
}

static int wrap_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                        const char *address, raft_uv_connect_cb cb)
{
    struct wrap *w = t->impl;
    struct wrap_connect *c = cm_calloc(1, sizeof *c);
    c->req.data = c;
    c->orig = req;
    c->orig_cb = cb;
    req->cb = cb;
    int rc = w->inner.connect(&w->inner, &c->req, id, address, wrap_connected);
    if (rc != 0) {
        memcpy(t->errmsg, w->inner.errmsg, sizeof t->errmsg);
        free(c);
    }
    return rc;
}

static void wrap_closed(struct raft_uv_transport *inner)
{
    struct wrap *w = inner->data;
    w->close_cb(w->outer);
}

static void wrap_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct wrap *w = t->impl;
    w->close_cb = cb;
    w->inner.close(&w->inner, wrap_closed);
}

int cm_transport_init_plain(struct raft_uv_transport *t, uv_loop_t *loop, const char *bind_addr)
{
    struct wrap *w = cm_calloc(1, sizeof *w);
    int rc = raft_uv_tcp_init(&w->inner, loop);
    if (rc == 0)
        rc = raft_uv_tcp_set_bind_address(&w->inner, bind_addr);
    if (rc != 0) {
        free(w);
        return rc;
    }
    w->inner.data = w;
    w->outer = t;
    memset(t, 0, sizeof *t);
    t->impl = w;
    t->init = wrap_init;
    t->listen = wrap_listen;
    t->connect = wrap_connect;
    t->close = wrap_close;
    return 0;
}

void cm_transport_free_plain(struct raft_uv_transport *t)
{
    struct wrap *w = t->impl;
    if (w == NULL)
        return;
    raft_uv_tcp_close(&w->inner);
    free(w);
    t->impl = NULL;
}
