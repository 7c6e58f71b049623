/*
 * What a current CubeFS blobnode (v3.5.1-v3.5.3: blobnode/startup.go, heartbeat.go,
 * chunkreport.go, chunkcheck.go and the task switch of v3.5.3) says to clustermgr beyond the
 * 2022 conversation, per simulated host:
 *   SERVICE  POST /service/register as BLOBNODE with timeout 60, then POST /service/heartbeat
 *            every --service-interval (30 s) whatever the phase;
 *   NODE     POST /node/add with the host's NodeInfo; the node_id answered goes into every
 *            /disk/add (a 201 leaves it 0, as the Go client does);
 *   LIST, REGISTER as in client.c, with the Go client's query, disks matched by cluster id, and
 *            /diskid/alloc with an empty body;
 *   RUN      besides the disk heartbeat: POST /chunk/report (application/octet-stream) every
 *            --report-interval (60 s) with the chunks changed since the last accepted report;
 *            the chunk garbage check every --gc-interval (30 min): GET /volume/unit/list?disk_id=
 *            per disk and GET /volume/get?vid= for a chunk not listed there, releasing a chunk
 *            older than --chunk-protection whose epoch is below clustermgr's; GET /config/get?
 *            key=data_inspect every --switch-interval (15 s), writing "false" with /config/set
 *            when the answer's error says Not Found (v3.5.1+).
 * Answers that make a real blobnode exit (a refused /service/register or /node/add, a refused
 * /disk/add with re_add_disk) stop the host: it sends nothing more and closes its port.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util/buf.h"
#include "../../src/util/timeutil.h"
#include "client.h"
#include "sim.h"

#define EPOCH(vuid) ((uint32_t)((vuid)&0xffffff))
#define INDEX(vuid) ((unsigned)(((vuid) >> 24) & 0xff))
#define PREFIX(vuid) ((vuid) & ~(uint64_t)0xffffff)

void cur_stop_host(struct client *cl, struct shost *h, const char *fmt, ...)
{
    struct sim *s = cl->s;
    h->phase = PH_STOPPED;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < h->n_disks; i++) {
        h->disks[i].active = false;
        h->disks[i].need_add = false;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->c.hosts_stopped, 1);
    if (cl->stops_logged < 20) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "blobnode-sim: host %s stops: ", h->url);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    } else if (cl->stops_logged == 20)
        fprintf(stderr, "blobnode-sim: more hosts stop; /sim/stats counts them\n");
    cl->stops_logged++;
    if (s->serve)
        sim_serve_stop_host(s, h);
}

void cur_restart(struct shost *h)
{
    h->phase = PH_SERVICE;
    h->node_id = 0;
    h->marker = 0;
    h->pending_id = 0;
    h->gc_running = false;
    h->gc_n = h->gc_i = 0;
    h->switch_set = false;
    h->svc_failing = false;
    for (int i = 0; i < h->n_disks; i++)
        h->disks[i].need_add = false;
}

void cur_free(struct shost *h)
{
    free(h->gc_q);
    h->gc_q = NULL;
    h->gc_n = h->gc_i = h->gc_cap = 0;
}

uint64_t cur_next_due(const struct shost *h)
{
    if (h->switch_set || h->gc_running)
        return 0;
    uint64_t t = h->next_svc_ms;
    if (h->next_switch_ms < t)
        t = h->next_switch_ms;
    if (h->next_report_ms < t)
        t = h->next_report_ms;
    if (h->next_gc_ms < t)
        t = h->next_gc_ms;
    return t;
}

void cur_enter_run(struct sim *s, struct shost *h, uint64_t now)
{
    /* the first round of every loop spread over its period across the fleet */
    uint64_t i = (uint64_t)h->index, n = (uint64_t)s->n_hosts;
    h->next_switch_ms = now + (uint64_t)s->switch_interval_ms * i / n;
    h->next_report_ms = now + (uint64_t)s->report_interval_ms * (i + 1) / n;
    h->next_gc_ms = now + (uint64_t)s->gc_interval_ms * (i + 1) / n;
}

bool cur_listed(struct client *cl, struct shost *h)
{
    struct sim *s = cl->s;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < h->n_disks; i++) {
        struct sdisk *d = &h->disks[i];
        /* unknown to the cluster: allocate and add; known and normal: add again only with
         * re_add_disk; known and not normal: left alone */
        d->need_add = d->id == 0 || (s->re_add_disk && d->status == 1);
    }
    pthread_mutex_unlock(&s->mu);
    return true;
}

/* Called with s->mu held. */
void cur_disk_status(struct client *cl, struct shost *h, struct sdisk *d, uint8_t status)
{
    (void)cl;
    bool writable = d->active;
    d->status = status;
    if (!writable)
        return;
    if (status >= 2 && status <= 4) {
        /* heartbeat.go: broken, repairing or repaired is a broken disk, reported with
         * /disk/set until 200 or 913 */
        d->active = false;
        d->report_broken = true;
        atomic_store(&h->attention, true);
        fprintf(stderr,
                "blobnode-sim: clustermgr answers disk %u (%s%s) has status %u: broken, "
                "reported with /disk/set\n",
                d->id, h->url, d->path, status);
    } else if (status == 5) {
        d->active = false;
        atomic_fetch_add(&cl->s->c.dropped, 1);
        fprintf(stderr, "blobnode-sim: disk %u (%s%s) is dropped: no longer used\n", d->id, h->url,
                d->path);
    }
}

/* ---- requests -------------------------------------------------------------------------------- */

static void svc_heartbeat(struct client *cl, struct shost *h, uint64_t now)
{
    char *body = cm_malloc(256);
    snprintf(body, 256, "{\"name\":\"BLOBNODE\",\"host\":\"%s\"}", h->url);
    h->next_svc_ms = now + (uint64_t)cl->s->svc_interval_ms;
    sim_start(cl, h, K_SVC_HEARTBEAT, "POST", "/service/heartbeat", body);
}

static void svc_register(struct client *cl, struct shost *h)
{
    struct cm_buf b = {0};
    cm_buf_printf(&b,
                  "{\"cluster_id\":%u,\"name\":\"BLOBNODE\",\"host\":\"%s\",\"idc\":\"%s\","
                  "\"timeout\":60}",
                  cl->s->cluster_id, h->url, h->idc);
    sim_start(cl, h, K_SVC_REGISTER, "POST", "/service/register", cm_buf_steal(&b, NULL));
}

static void node_add(struct client *cl, struct shost *h)
{
    struct cm_buf b = {0};
    cm_buf_printf(&b,
                  "{\"node_id\":0,\"node_set_id\":0,\"cluster_id\":%u,\"disk_type\":%d,"
                  "\"idc\":\"%s\",\"rack\":\"%s\",\"host\":\"%s\",\"role\":1,\"status\":0}",
                  cl->s->cluster_id, cl->s->disk_type, h->idc, h->rack, h->url);
    sim_start(cl, h, K_NODE_ADD, "POST", "/node/add", cm_buf_steal(&b, NULL));
}

static void put_be(struct cm_buf *b, uint64_t v, int bytes)
{
    uint8_t x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    cm_buf_append(b, x, (size_t)bytes);
}

/* The chunks changed since the last report, of the disks still writable; false when none. */
static bool chunk_report(struct client *cl, struct shost *h, uint64_t now)
{
    struct sim *s = cl->s;
    h->next_report_ms = now + (uint64_t)s->report_interval_ms;
    struct cm_buf b = {0};
    struct gc_item *sent = NULL;
    size_t n = 0, cap = 0;
    put_be(&b, 0, 4); /* the count, filled in below */
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < h->n_disks; i++) {
        struct sdisk *d = &h->disks[i];
        if (!d->active)
            continue;
        for (size_t k = 0; k < d->n_chunks; k++) {
            struct chunk *ch = &d->chunks[k];
            if (!ch->dirty)
                continue;
            ch->dirty = false;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                sent = cm_realloc(sent, cap * sizeof *sent);
            }
            sent[n++] = (struct gc_item){d, ch->vuid};
            /* 79 bytes: chunk id text, vuid, disk id, total, used, free, size, status,
             * compacting (spec 5.6.1), as /chunk/stat describes the chunk */
            char id[40];
            snprintf(id, sizeof id, "%016" PRIx64 "-%016" PRIx64, ch->vuid,
                     (uint64_t)ch->created_ns);
            cm_buf_append(&b, id, 33);
            put_be(&b, ch->vuid, 8);
            put_be(&b, d->id, 4);
            put_be(&b, (uint64_t)ch->size, 8);
            put_be(&b, 0, 8);
            put_be(&b, (uint64_t)ch->size, 8);
            put_be(&b, (uint64_t)ch->size, 8);
            put_be(&b, ch->status, 1);
            put_be(&b, 0, 1);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (n == 0) {
        cm_buf_free(&b);
        return false;
    }
    for (int i = 0; i < 4; i++)
        ((uint8_t *)b.data)[i] = (uint8_t)((uint32_t)n >> (8 * (3 - i)));
    size_t len;
    char *body = cm_buf_steal(&b, &len);
    struct req *r = sim_start_raw(cl, h, K_REPORT, "POST", "/chunk/report", body, len,
                                  "application/octet-stream");
    r->reported = sent;
    r->n_reported = n;
    return true;
}

static void redirty(struct sim *s, struct req *r)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < r->n_reported; i++) {
        struct sdisk *d = r->reported[i].disk;
        for (size_t k = 0; k < d->n_chunks; k++)
            if (d->chunks[k].vuid == r->reported[i].vuid)
                d->chunks[k].dirty = true;
    }
    pthread_mutex_unlock(&s->mu);
}

/* One request of the chunk garbage check (chunkcheck.go); false when the check is over. */
static bool gc_step(struct client *cl, struct shost *h, uint64_t now)
{
    struct sim *s = cl->s;
    char path[128];
    if (!h->gc_running) {
        h->gc_running = true;
        h->gc_disk = 0;
        h->gc_n = h->gc_i = 0;
        h->next_gc_ms = now + (uint64_t)s->gc_interval_ms;
        atomic_fetch_add(&s->c.gc_runs, 1);
    }
    if (h->gc_i < h->gc_n) {
        struct gc_item *it = &h->gc_q[h->gc_i];
        snprintf(path, sizeof path, "/volume/get?vid=%" PRIu64, it->vuid >> 32);
        sim_start_raw(cl, h, K_VOLUME_GET, "GET", path, NULL, 0, NULL)->disk = it->disk;
        return true;
    }
    /* the disks in service: writable, broken until clustermgr repairs them, or dropped until
     * they are clean */
    pthread_mutex_lock(&s->mu);
    while (h->gc_disk < h->n_disks) {
        struct sdisk *d = &h->disks[h->gc_disk];
        if (d->id && (d->active || d->status == 2 || d->status == 5))
            break;
        h->gc_disk++;
    }
    struct sdisk *d = h->gc_disk < h->n_disks ? &h->disks[h->gc_disk] : NULL;
    uint32_t id = d ? d->id : 0;
    pthread_mutex_unlock(&s->mu);
    if (d == NULL) {
        h->gc_running = false;
        return false;
    }
    snprintf(path, sizeof path, "/volume/unit/list?disk_id=%u", id);
    sim_start_raw(cl, h, K_UNIT_LIST, "GET", path, NULL, 0, NULL)->disk = d;
    return true;
}

bool cur_step(struct client *cl, struct shost *h, uint64_t now, bool hb_due)
{
    struct sim *s = cl->s;
    switch (h->phase) {
    case PH_SERVICE:
        svc_register(cl, h);
        return true;
    case PH_NODE:
    case PH_LIST:
    case PH_REGISTER:
        if (now >= h->next_svc_ms) {
            svc_heartbeat(cl, h, now);
            return true;
        }
        if (h->phase == PH_NODE) {
            node_add(cl, h);
            return true;
        }
        return false;
    case PH_RUN: {
        /* the rare loops first; the check's many requests alternate with disk heartbeats */
        bool gc_turn = !(hb_due && h->gc_last);
        h->gc_last = false;
        if (now >= h->next_svc_ms) {
            svc_heartbeat(cl, h, now);
            return true;
        }
        if (h->switch_set) {
            sim_start(cl, h, K_SWITCH_SET, "POST", "/config/set",
                      cm_strdup("{\"key\":\"data_inspect\",\"value\":\"false\"}"));
            return true;
        }
        if (now >= h->next_switch_ms) {
            h->next_switch_ms = now + (uint64_t)s->switch_interval_ms;
            sim_start_raw(cl, h, K_SWITCH_GET, "GET", "/config/get?key=data_inspect", NULL, 0,
                          NULL);
            return true;
        }
        if (now >= h->next_report_ms && chunk_report(cl, h, now))
            return true;
        if ((h->gc_running || now >= h->next_gc_ms) && gc_turn && gc_step(cl, h, now)) {
            h->gc_last = true;
            return true;
        }
        return false;
    }
    default:
        return false;
    }
}

void cur_retry(struct client *cl, struct req *r)
{
    struct shost *h = r->h;
    switch (r->kind) {
    case K_SVC_HEARTBEAT:
        h->next_svc_ms = 0;
        break;
    case K_SWITCH_GET:
        h->next_switch_ms = 0;
        break;
    case K_REPORT: /* the same chunks again, to the next clustermgr node */
        redirty(cl->s, r);
        h->next_report_ms = 0;
        break;
    default: /* the phase or the check's cursor did not move: the same request goes again */
        break;
    }
}

/* ---- answers --------------------------------------------------------------------------------- */

/* The "error" of an error answer, or "". */
static const char *error_text(struct req *r, struct json_object **keep)
{
    *keep = sim_parse(r);
    struct json_object *e;
    if (*keep && json_object_object_get_ex(*keep, "error", &e) &&
        json_object_is_type(e, json_type_string))
        return json_object_get_string(e);
    return "";
}

static void release_chunk(struct sim *s, struct sdisk *d, uint64_t vuid, uint64_t cm_vuid)
{
    for (size_t k = 0; k < d->n_chunks; k++) {
        struct chunk *ch = &d->chunks[k];
        if (ch->vuid != vuid)
            continue;
        d->used -= ch->size;
        if (d->used < 0)
            d->used = 0;
        *ch = d->chunks[--d->n_chunks];
        atomic_fetch_add(&s->c.gc_released, 1);
        fprintf(stderr,
                "blobnode-sim: disk %u (%s%s) released chunk %" PRIu64
                " (epoch %u): clustermgr's unit %" PRIu64 " is at epoch %u\n",
                d->id, d->host->url, d->path, vuid, EPOCH(vuid), cm_vuid, EPOCH(cm_vuid));
        return;
    }
}

static bool protected_chunk(struct sim *s, const struct chunk *ch, int64_t now_ns)
{
    return now_ns - ch->created_ns < s->protection_ms * 1000000;
}

static void unit_list_done(struct client *cl, struct req *r, long status, struct json_object *o)
{
    struct sim *s = cl->s;
    struct shost *h = r->h;
    struct sdisk *d = r->disk;
    h->gc_disk++;
    h->gc_n = h->gc_i = 0;
    struct json_object *arr = NULL;
    if (status != 200 || !o || !json_object_object_get_ex(o, "volume_unit_infos", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        sim_log_limited(cl, "GET /volume/unit/list?disk_id=%u answered %ld %.*s", d->id, status,
                        sim_resp_len(r), sim_resp_text(r));
        return;
    }
    size_t n = json_object_array_length(arr);
    uint64_t *listed = cm_calloc(n ? n : 1, sizeof *listed);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v;
        if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "vuid", &v))
            listed[i] = json_object_get_uint64(v);
    }
    int64_t now_ns = sim_now_ns();
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < d->n_chunks;) {
        struct chunk *ch = &d->chunks[k];
        uint64_t vuid = ch->vuid, cm_vuid = 0;
        if (protected_chunk(s, ch, now_ns)) {
            k++;
            continue;
        }
        for (size_t i = 0; i < n && !cm_vuid; i++)
            if (PREFIX(listed[i]) == PREFIX(vuid))
                cm_vuid = listed[i];
        if (cm_vuid && EPOCH(vuid) < EPOCH(cm_vuid)) {
            release_chunk(s, d, vuid, cm_vuid); /* moves the last chunk here */
            continue;
        }
        if (!cm_vuid) { /* not on this disk for clustermgr: ask for the volume */
            if (h->gc_n == h->gc_cap) {
                h->gc_cap = h->gc_cap ? h->gc_cap * 2 : 16;
                h->gc_q = cm_realloc(h->gc_q, h->gc_cap * sizeof *h->gc_q);
            }
            h->gc_q[h->gc_n++] = (struct gc_item){d, vuid};
        }
        k++;
    }
    pthread_mutex_unlock(&s->mu);
    free(listed);
}

static void volume_get_done(struct client *cl, struct req *r, long status, struct json_object *o)
{
    struct sim *s = cl->s;
    struct shost *h = r->h;
    uint64_t vuid = h->gc_q[h->gc_i].vuid;
    h->gc_i++;
    struct json_object *units = NULL;
    if (status != 200 || !o || !json_object_object_get_ex(o, "units", &units) ||
        !json_object_is_type(units, json_type_array)) {
        sim_log_limited(cl, "GET /volume/get?vid=%" PRIu64 " answered %ld %.*s", vuid >> 32, status,
                        sim_resp_len(r), sim_resp_text(r));
        return;
    }
    if (INDEX(vuid) >= json_object_array_length(units)) {
        sim_log_limited(cl, "GET /volume/get?vid=%" PRIu64 " has no unit %u for chunk %" PRIu64,
                        vuid >> 32, INDEX(vuid), vuid);
        return;
    }
    struct json_object *v;
    if (!json_object_object_get_ex(json_object_array_get_idx(units, INDEX(vuid)), "vuid", &v))
        return;
    uint64_t cm_vuid = json_object_get_uint64(v);
    if (EPOCH(vuid) >= EPOCH(cm_vuid))
        return;
    pthread_mutex_lock(&s->mu);
    release_chunk(s, r->disk, vuid, cm_vuid);
    pthread_mutex_unlock(&s->mu);
}

static void switch_value(struct client *cl, struct req *r, struct json_object *o)
{
    struct shost *h = r->h;
    if (!o || !json_object_is_type(o, json_type_string)) {
        sim_log_limited(cl,
                        "GET /config/get?key=data_inspect answered 200 with %.*s, not a JSON "
                        "string; a real blobnode cannot read it",
                        sim_resp_len(r), sim_resp_text(r));
        return;
    }
    bool on = strcmp(json_object_get_string(o), "true") == 0; /* anything else is off */
    if (on != h->data_inspect)
        fprintf(stderr, "blobnode-sim: %s: task switch data_inspect is %s (\"%s\")\n", h->url,
                on ? "on" : "off", json_object_get_string(o));
    h->data_inspect = on;
}

void cur_complete(struct client *cl, struct req *r, long status, struct json_object *o,
                  uint64_t now)
{
    struct sim *s = cl->s;
    struct shost *h = r->h;
    struct json_object *eo = NULL;
    switch (r->kind) {
    case K_SVC_REGISTER:
        if (status != 200) {
            cur_stop_host(cl, h, "POST /service/register answered %ld %.*s; a real blobnode exits",
                          status, sim_resp_len(r), sim_resp_text(r));
            break;
        }
        atomic_fetch_add(&s->c.svc_registers, 1);
        h->phase = PH_NODE;
        h->next_svc_ms = now + (uint64_t)s->svc_interval_ms;
        h->svc_failing = false;
        break;
    case K_SVC_HEARTBEAT:
        if (status == 200) {
            atomic_fetch_add(&s->c.svc_hb_ok, 1);
            if (h->svc_failing)
                fprintf(stderr, "blobnode-sim: %s: service heartbeat answered again\n", h->url);
            h->svc_failing = false;
        } else {
            atomic_fetch_add(&s->c.svc_hb_err, 1);
            if (!h->svc_failing) /* the Go client logs changes only */
                fprintf(stderr, "blobnode-sim: %s: POST /service/heartbeat answered %ld %.*s\n",
                        h->url, status, sim_resp_len(r), sim_resp_text(r));
            h->svc_failing = true;
        }
        break;
    case K_NODE_ADD:
        if (status == 200 && o == NULL) {
            cur_stop_host(cl, h,
                          "POST /node/add answered 200 with %.*s, which does not decode; a real "
                          "blobnode exits",
                          sim_resp_len(r), sim_resp_text(r));
            break;
        }
        if (status == 201) {
            /* the Go client decodes the body but returns an error, and the caller keeps the
             * node id 0 it got with it */
            fprintf(stderr,
                    "blobnode-sim: %s: POST /node/add answered 201 %.*s; a v3.5.3 blobnode goes "
                    "on with node id 0\n",
                    h->url, sim_resp_len(r), sim_resp_text(r));
            h->node_id = 0;
        } else if (status != 200) {
            cur_stop_host(cl, h, "POST /node/add answered %ld %.*s; a real blobnode exits", status,
                          sim_resp_len(r), sim_resp_text(r));
            break;
        } else {
            h->node_id = sim_get_u32(o, "node_id");
            if (h->node_id == 0)
                fprintf(stderr,
                        "blobnode-sim: %s: POST /node/add answered %.*s without a node id; a "
                        "real blobnode goes on with node id 0\n",
                        h->url, sim_resp_len(r), sim_resp_text(r));
        }
        atomic_fetch_add(&s->c.node_adds, 1);
        h->phase = PH_LIST;
        h->marker = 0;
        break;
    case K_REPORT:
        if (status / 100 == 2) { /* any 2xx, as the Go client takes it */
            atomic_fetch_add(&s->c.reports, 1);
            atomic_fetch_add(&s->c.reported_chunks, (unsigned long long)r->n_reported);
        } else {
            atomic_fetch_add(&s->c.report_errors, 1);
            redirty(s, r);
            sim_log_limited(cl, "POST /chunk/report of %s (%zu chunks) answered %ld %.*s", h->url,
                            r->n_reported, status, sim_resp_len(r), sim_resp_text(r));
        }
        break;
    case K_UNIT_LIST:
        unit_list_done(cl, r, status, o);
        break;
    case K_VOLUME_GET:
        volume_get_done(cl, r, status, o);
        break;
    case K_SWITCH_GET:
        atomic_fetch_add(&s->c.switch_polls, 1);
        if (status == 200) {
            switch_value(cl, r, o);
            break;
        }
        /* taskswitch.go since v3.5.1: an error whose message contains Not Found creates the
         * switch, off */
        if (strstr(error_text(r, &eo), "Not Found"))
            h->switch_set = true;
        else
            sim_log_limited(cl, "GET /config/get?key=data_inspect answered %ld %.*s", status,
                            sim_resp_len(r), sim_resp_text(r));
        break;
    case K_SWITCH_SET:
        h->switch_set = false;
        if (status == 200) {
            atomic_fetch_add(&s->c.switch_sets, 1);
            h->data_inspect = false;
        } else
            sim_log_limited(cl, "POST /config/set data_inspect=false answered %ld %.*s", status,
                            sim_resp_len(r), sim_resp_text(r));
        break;
    }
    json_object_put(eo);
}
