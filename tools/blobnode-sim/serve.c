/*
 * The blobnode side of the simulator: one libmicrohttpd daemon per host, serving
 *   POST /chunk/create/diskid/<id>/vuid/<vuid>?chunksize=<bytes>
 *   GET  /chunk/stat/diskid/<id>/vuid/<vuid>
 *   POST /chunk/release/diskid/<id>/vuid/<vuid>?force=<bool>
 *   POST /chunk/readonly/diskid/<id>/vuid/<vuid>
 *   POST /chunk/readwrite/diskid/<id>/vuid/<vuid>
 * for the disks of that host, and on every host the fleet-wide debug and control routes
 *   GET  /sim/stats            counters (chunk calls, heartbeats, registrations)
 *   GET  /sim/disks            every disk: id, host, path, status, knobs, chunk count
 *   GET  /sim/chunks[?diskid=] the chunks kept in memory
 *   GET  /sim/hosts            every host: url, idc, rack, phase, node id, task switch
 *   POST /sim/disk/<id>?broken=1&silent=0|1&refuse_create=0|1&delay_ms=N
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/util/buf.h"
#include "sim.h"

struct conn {
    bool seen;
};

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (body[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_buf(struct MHD_Connection *c, unsigned status, struct cm_buf *b)
{
    cm_buf_append(b, "", 1);
    enum MHD_Result rc = respond(c, status, b->data);
    cm_buf_free(b);
    return rc;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    char body[256];
    snprintf(body, sizeof body, "{\"code\":\"SimError\",\"error\":\"%s\"}", msg);
    return respond(c, status, body);
}

static struct sdisk *find_disk(struct sim *s, struct shost *only, uint32_t id)
{
    if (id == 0)
        return NULL;
    for (int h = only ? only->index : 0; h < (only ? only->index + 1 : s->n_hosts); h++)
        for (int d = 0; d < s->hosts[h].n_disks; d++)
            if (s->hosts[h].disks[d].id == id)
                return &s->hosts[h].disks[d];
    return NULL;
}

static struct chunk *find_chunk(struct sdisk *d, uint64_t vuid)
{
    for (size_t i = 0; i < d->n_chunks; i++)
        if (d->chunks[i].vuid == vuid)
            return &d->chunks[i];
    return NULL;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' && *end != '/')
        return false;
    *out = v;
    return true;
}

static bool truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "True") == 0);
}

static void chunk_json(struct cm_buf *b, const struct sdisk *d, const struct chunk *ch)
{
    cm_buf_printf(b,
                  "{\"id\":\"%016" PRIx64 "-%016" PRIx64 "\",\"vuid\":%" PRIu64
                  ",\"diskid\":%u,\"total\":%" PRId64 ",\"used\":0,\"free\":%" PRId64
                  ",\"size\":%" PRId64 ",\"status\":%u,\"compacting\":false}",
                  ch->vuid, (uint64_t)ch->created_ns, ch->vuid, d->id, ch->size, ch->size, ch->size,
                  ch->status);
}

/* /chunk/<op>/diskid/<id>/vuid/<vuid> */
static enum MHD_Result chunk_api(struct sim *s, struct shost *h, struct MHD_Connection *c,
                                 const char *url, bool post)
{
    char op[16];
    uint64_t id = 0, vuid = 0;
    const char *p = url + strlen("/chunk/");
    const char *slash = strchr(p, '/');
    if (slash == NULL || (size_t)(slash - p) >= sizeof op)
        return error(c, 404, "no such route");
    memcpy(op, p, (size_t)(slash - p));
    op[slash - p] = '\0';
    if (strncmp(slash, "/diskid/", 8) != 0 || !parse_u64(slash + 8, &id) || id > UINT32_MAX)
        return error(c, 400, "bad disk id");
    const char *v = strstr(slash + 8, "/vuid/");
    if (v == NULL || !parse_u64(v + 6, &vuid) || strchr(v + 6, '/'))
        return error(c, 400, "bad vuid");
    bool is_stat = strcmp(op, "stat") == 0;
    if (is_stat == post)
        return error(c, 405, "method not allowed");

    pthread_mutex_lock(&s->mu);
    struct sdisk *d = find_disk(s, h, (uint32_t)id);
    int delay = d ? (d->delay_ms ? d->delay_ms : s->delay_ms_all) : 0;
    pthread_mutex_unlock(&s->mu);
    if (d == NULL) {
        atomic_fetch_add(&s->c.not_found, 1);
        return error(c, 404, "no such disk on this host");
    }
    if (delay > 0) { /* a slow disk: this host's daemon thread waits */
        struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }

    enum MHD_Result rc;
    pthread_mutex_lock(&s->mu);
    struct chunk *ch = find_chunk(d, vuid);
    if (strcmp(op, "create") == 0) {
        atomic_fetch_add(&s->c.create, 1);
        uint64_t size = (uint64_t)s->chunk_size;
        const char *cs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "chunksize");
        if (cs && !parse_u64(cs, &size)) {
            rc = error(c, 400, "bad chunksize");
        } else if (d->refuse_create || s->refuse_create_all || !d->active) {
            atomic_fetch_add(&s->c.create_refused, 1);
            rc = error(c, 500, "chunk creation refused");
        } else {
            if (ch == NULL) {
                if (d->n_chunks == d->cap_chunks) {
                    d->cap_chunks = d->cap_chunks ? d->cap_chunks * 2 : 8;
                    d->chunks = cm_realloc(d->chunks, d->cap_chunks * sizeof *d->chunks);
                }
                d->chunks[d->n_chunks++] =
                    (struct chunk){vuid, (int64_t)size, sim_now_ns(), 1, true};
                d->used += (int64_t)size;
                if (d->used > d->size)
                    d->used = d->size;
            }
            rc = respond(c, 200, "");
        }
    } else if (ch == NULL) {
        atomic_fetch_add(&s->c.not_found, 1);
        rc = error(c, 404, "no such chunk");
    } else if (is_stat) {
        atomic_fetch_add(&s->c.stat, 1);
        struct cm_buf b = {0};
        chunk_json(&b, d, ch);
        pthread_mutex_unlock(&s->mu);
        return respond_buf(c, 200, &b);
    } else if (strcmp(op, "release") == 0) {
        atomic_fetch_add(&s->c.release, 1);
        d->used -= ch->size;
        if (d->used < 0)
            d->used = 0;
        *ch = d->chunks[--d->n_chunks];
        rc = respond(c, 200, "");
    } else if (strcmp(op, "readonly") == 0 || strcmp(op, "readwrite") == 0) {
        bool ro = op[4] == 'o';
        atomic_fetch_add(ro ? &s->c.readonly : &s->c.readwrite, 1);
        ch->dirty |= ch->status != (ro ? 2 : 1);
        ch->status = ro ? 2 : 1;
        rc = respond(c, 200, "");
    } else
        rc = error(c, 404, "no such chunk operation");
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static enum MHD_Result sim_stats(struct sim *s, struct MHD_Connection *c)
{
    int registered = 0, active = 0, silent = 0, broken = 0;
    size_t chunks = 0;
    pthread_mutex_lock(&s->mu);
    for (int h = 0; h < s->n_hosts; h++)
        for (int i = 0; i < s->hosts[h].n_disks; i++) {
            struct sdisk *d = &s->hosts[h].disks[i];
            registered += d->id != 0;
            active += d->active;
            silent += d->silent;
            broken += d->status >= 2;
            chunks += d->n_chunks;
        }
    pthread_mutex_unlock(&s->mu);
    struct sim_counters *k = &s->c;
    struct cm_buf b = {0};
    cm_buf_printf(&b,
                  "{\"hosts\":%d,\"disks\":%d,\"registered\":%d,\"active\":%d,\"silent\":%d,"
                  "\"broken\":%d,\"chunks\":%zu,",
                  s->n_hosts, s->n_hosts * s->n_disks, registered, active, silent, broken, chunks);
    cm_buf_printf(&b,
                  "\"calls\":{\"create\":%llu,\"create_refused\":%llu,\"stat\":%llu,"
                  "\"release\":%llu,\"readonly\":%llu,\"readwrite\":%llu,\"not_found\":%llu},",
                  atomic_load(&k->create), atomic_load(&k->create_refused), atomic_load(&k->stat),
                  atomic_load(&k->release), atomic_load(&k->readonly), atomic_load(&k->readwrite),
                  atomic_load(&k->not_found));
    cm_buf_printf(&b,
                  "\"heartbeats\":{\"ok\":%llu,\"errors\":%llu,\"disks\":%llu},"
                  "\"registrations\":{\"allocs\":%llu,\"adds\":%llu,\"reused\":%llu},"
                  "\"set_broken\":%llu,\"failovers\":%llu}",
                  atomic_load(&k->hb_ok), atomic_load(&k->hb_err), atomic_load(&k->hb_disks),
                  atomic_load(&k->allocs), atomic_load(&k->adds), atomic_load(&k->reused),
                  atomic_load(&k->set_broken), atomic_load(&k->failovers));
    if (s->generation == GEN_CURRENT) {
        b.len--; /* the closing brace: the current generation's counters follow */
        cm_buf_printf(&b,
                      ",\"generation\":\"current\",\"service\":{\"registers\":%llu,"
                      "\"heartbeats_ok\":%llu,\"heartbeat_errors\":%llu},\"node_adds\":%llu,"
                      "\"readds\":%llu,\"hosts_stopped\":%llu,\"dropped\":%llu,",
                      atomic_load(&k->svc_registers), atomic_load(&k->svc_hb_ok),
                      atomic_load(&k->svc_hb_err), atomic_load(&k->node_adds),
                      atomic_load(&k->readds), atomic_load(&k->hosts_stopped),
                      atomic_load(&k->dropped));
        cm_buf_printf(&b,
                      "\"chunk_reports\":{\"ok\":%llu,\"chunks\":%llu,\"errors\":%llu},"
                      "\"gc\":{\"runs\":%llu,\"released\":%llu},"
                      "\"switch\":{\"polls\":%llu,\"sets\":%llu}}",
                      atomic_load(&k->reports), atomic_load(&k->reported_chunks),
                      atomic_load(&k->report_errors), atomic_load(&k->gc_runs),
                      atomic_load(&k->gc_released), atomic_load(&k->switch_polls),
                      atomic_load(&k->switch_sets));
    }
    return respond_buf(c, 200, &b);
}

static void json_str(struct cm_buf *b, const char *s)
{
    cm_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            cm_buf_append(b, "\\", 1);
        if ((unsigned char)*s < 0x20)
            cm_buf_printf(b, "\\u%04x", (unsigned char)*s);
        else
            cm_buf_append(b, s, 1);
    }
    cm_buf_append(b, "\"", 1);
}

static enum MHD_Result sim_disks(struct sim *s, struct MHD_Connection *c)
{
    struct cm_buf b = {0};
    cm_buf_puts(&b, "{\"disks\":[");
    pthread_mutex_lock(&s->mu);
    for (int h = 0; h < s->n_hosts; h++)
        for (int i = 0; i < s->hosts[h].n_disks; i++) {
            struct sdisk *d = &s->hosts[h].disks[i];
            if (h || i)
                cm_buf_puts(&b, ",");
            cm_buf_printf(&b, "{\"disk_id\":%u,\"host\":", d->id);
            json_str(&b, s->hosts[h].url);
            cm_buf_puts(&b, ",\"idc\":");
            json_str(&b, s->hosts[h].idc);
            cm_buf_puts(&b, ",\"rack\":");
            json_str(&b, s->hosts[h].rack);
            cm_buf_puts(&b, ",\"path\":");
            json_str(&b, d->path);
            cm_buf_printf(
                &b,
                ",\"status\":%u,\"active\":%s,\"silent\":%s,\"refuse_create\":%s,"
                "\"delay_ms\":%d,\"size\":%" PRId64 ",\"used\":%" PRId64 ",\"chunks\":%zu}",
                d->status, d->active ? "true" : "false", d->silent ? "true" : "false",
                d->refuse_create ? "true" : "false", d->delay_ms, d->size, d->used, d->n_chunks);
        }
    pthread_mutex_unlock(&s->mu);
    cm_buf_puts(&b, "]}");
    return respond_buf(c, 200, &b);
}

static enum MHD_Result sim_hosts(struct sim *s, struct MHD_Connection *c)
{
    static const char *const phases[] = {"list", "register", "run", "service", "node", "stopped"};
    struct cm_buf b = {0};
    cm_buf_puts(&b, "{\"hosts\":[");
    for (int i = 0; i < s->n_hosts; i++) {
        struct shost *h = &s->hosts[i];
        int phase = atomic_load(&h->shown_phase);
        cm_buf_puts(&b, i ? ",{\"host\":" : "{\"host\":");
        json_str(&b, h->url);
        cm_buf_puts(&b, ",\"idc\":");
        json_str(&b, h->idc);
        cm_buf_puts(&b, ",\"rack\":");
        json_str(&b, h->rack);
        cm_buf_printf(&b, ",\"phase\":\"%s\"",
                      phase >= 0 && phase <= PH_STOPPED ? phases[phase] : "?");
        if (s->generation == GEN_CURRENT)
            cm_buf_printf(&b, ",\"node_id\":%u,\"service\":%s,\"data_inspect\":%s",
                          atomic_load(&h->shown_node_id),
                          atomic_load(&h->shown_svc_ok) ? "true" : "false",
                          atomic_load(&h->shown_inspect) ? "true" : "false");
        cm_buf_puts(&b, "}");
    }
    cm_buf_puts(&b, "]}");
    return respond_buf(c, 200, &b);
}

static enum MHD_Result sim_chunks(struct sim *s, struct MHD_Connection *c)
{
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "diskid");
    uint64_t only = 0;
    if (q && !parse_u64(q, &only))
        return error(c, 400, "bad diskid");
    struct cm_buf b = {0};
    cm_buf_puts(&b, "{\"chunks\":[");
    bool first = true;
    pthread_mutex_lock(&s->mu);
    for (int h = 0; h < s->n_hosts; h++)
        for (int i = 0; i < s->hosts[h].n_disks; i++) {
            struct sdisk *d = &s->hosts[h].disks[i];
            if (only && d->id != only)
                continue;
            for (size_t k = 0; k < d->n_chunks; k++) {
                if (!first)
                    cm_buf_puts(&b, ",");
                first = false;
                chunk_json(&b, d, &d->chunks[k]);
            }
        }
    pthread_mutex_unlock(&s->mu);
    cm_buf_puts(&b, "]}");
    return respond_buf(c, 200, &b);
}

static enum MHD_Result sim_disk_knobs(struct sim *s, struct MHD_Connection *c, const char *url)
{
    uint64_t id;
    if (!parse_u64(url + strlen("/sim/disk/"), &id) || strchr(url + strlen("/sim/disk/"), '/'))
        return error(c, 400, "bad disk id");
    const char *broken = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "broken");
    const char *silent = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "silent");
    const char *refuse = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "refuse_create");
    const char *delay = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "delay_ms");
    uint64_t delay_ms = 0;
    if (delay && (!parse_u64(delay, &delay_ms) || delay_ms > 600000))
        return error(c, 400, "bad delay_ms");
    pthread_mutex_lock(&s->mu);
    struct sdisk *d = find_disk(s, NULL, (uint32_t)id);
    if (d) {
        if (truthy(broken)) {
            d->report_broken = true;
            atomic_store(&d->host->attention, true);
        }
        if (silent)
            d->silent = truthy(silent);
        if (refuse)
            d->refuse_create = truthy(refuse);
        if (delay)
            d->delay_ms = (int)delay_ms;
    }
    pthread_mutex_unlock(&s->mu);
    return d ? respond(c, 200, "") : error(c, 404, "no such disk");
}

/* The daemon context: the fleet and the host. */
struct dctx {
    struct sim *s;
    struct shost *h;
};

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload;
    struct dctx *x = cls;
    static struct conn marker;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strncmp(url, "/chunk/", 7) == 0 && (get || post))
        return chunk_api(x->s, x->h, c, url, post);
    if (get && strcmp(url, "/sim/stats") == 0)
        return sim_stats(x->s, c);
    if (get && strcmp(url, "/sim/disks") == 0)
        return sim_disks(x->s, c);
    if (get && strcmp(url, "/sim/chunks") == 0)
        return sim_chunks(x->s, c);
    if (get && strcmp(url, "/sim/hosts") == 0)
        return sim_hosts(x->s, c);
    if (post && strncmp(url, "/sim/disk/", 10) == 0)
        return sim_disk_knobs(x->s, c, url);
    return error(c, 404, "no such route");
}

int sim_serve_start(struct sim *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->n_hosts; i++) {
        struct shost *h = &s->hosts[i];
        struct dctx *x = cm_calloc(1, sizeof *x);
        x->s = s;
        x->h = h;
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(h->port);
        if (inet_pton(AF_INET, s->bind_ip, &sa.sin_addr) != 1) {
            snprintf(err, errlen, "bad bind address %s", s->bind_ip);
            free(x);
            return -1;
        }
        h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, h->port, NULL,
                                     NULL, route, x, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                     MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)128,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
        if (h->daemon == NULL) {
            snprintf(err, errlen, "cannot listen on %s:%u (port in use?)", s->bind_ip, h->port);
            free(x);
            return -1;
        }
        h->daemon_ctx = x; /* released in sim_serve_stop */
    }
    return 0;
}

void sim_serve_stop_host(struct sim *s, struct shost *h)
{
    (void)s;
    if (h->daemon) {
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
    }
}

void sim_serve_stop(struct sim *s)
{
    for (int i = 0; i < s->n_hosts; i++) {
        struct shost *h = &s->hosts[i];
        if (h->daemon) {
            MHD_stop_daemon(h->daemon);
            h->daemon = NULL;
        }
        free(h->daemon_ctx);
        h->daemon_ctx = NULL;
    }
}
