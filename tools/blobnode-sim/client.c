/*
 * The clustermgr side of the simulator: every host runs the conversation of a real blobnode
 * (spec §14.1) as a small state machine, one request in flight per host, all of them on one
 * libcurl multi handle:
 *   SERVICE   (current generation) POST /service/register, see current.c;
 *   NODE      (current generation) POST /node/add, see current.c;
 *   LIST      GET /disk/list?host=<url>&count=200&marker=<m> until an empty page: reuse the
 *             registered disks of this host (normal ones are heartbeated, others left alone);
 *   REGISTER  per remaining disk POST /diskid/alloc, then POST /disk/add with the full DiskInfo;
 *   RUN       every interval POST /disk/heartbeat with the host's active disks (an answer with
 *             status >= 2 stops heartbeating that disk), and POST /disk/set status 2 for disks
 *             switched to broken (retried until 200 or 913, as a blobnode does); the current
 *             generation adds its own loops (current.c).
 * A transport error or a 5xx/906/907/908 answer moves the host to the next clustermgr node.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../../src/util/buf.h"
#include "../../src/util/json.h"
#include "../../src/util/timeutil.h"
#include "client.h"
#include "sim.h"

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    if (r->resp.len + size * n > (64u << 20))
        return 0;
    cm_buf_append(&r->resp, p, size * n);
    return size * n;
}

struct req *sim_start_raw(struct client *cl, struct shost *h, int kind, const char *method,
                          const char *path, char *body, size_t len, const char *ctype)
{
    struct sim *s = cl->s;
    struct req *r = cm_calloc(1, sizeof *r);
    r->h = h;
    r->kind = kind;
    r->body = body;
    r->start_us = sim_mono_us();
    char url[2048];
    snprintf(url, sizeof url, "%s%s", s->cms[h->cm], path);
    r->easy = curl_easy_init();
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (ctype) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype);
        r->hdrs = curl_slist_append(NULL, hdr);
    } else
        r->hdrs = curl_slist_append(NULL, "Content-Type:"); /* none, not curl's form default */
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    h->busy = true;
    cl->inflight++;
    r->next = cl->live;
    if (cl->live)
        cl->live->prev = r;
    cl->live = r;
    curl_multi_add_handle(cl->multi, r->easy);
    return r;
}

struct req *sim_start(struct client *cl, struct shost *h, int kind, const char *method,
                      const char *path, char *body)
{
    if (body == NULL && strcmp(method, "POST") == 0)
        body = cm_strdup("null");
    return sim_start_raw(cl, h, kind, method, path, body, body ? strlen(body) : 0,
                         "application/json");
}

static void req_free(struct client *cl, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        cl->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    curl_multi_remove_handle(cl->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r->reported);
    cm_buf_free(&r->resp);
    free(r);
}

static void logf_limited(struct client *cl, const char *fmt, const char *a, long b)
{
    uint64_t now = cm_mono_ms();
    cl->errors_logged++;
    if (now - cl->last_log_ms < 2000)
        return;
    cl->last_log_ms = now;
    fprintf(stderr, "blobnode-sim: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (%llu such messages so far)\n", (unsigned long long)cl->errors_logged);
}

void sim_log_limited(struct client *cl, const char *fmt, ...)
{
    uint64_t now = cm_mono_ms();
    cl->errors_logged++;
    if (now - cl->last_log_ms < 2000)
        return;
    cl->last_log_ms = now;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "blobnode-sim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%llu such messages so far)\n", (unsigned long long)cl->errors_logged);
    va_end(ap);
}

int sim_resp_len(const struct req *r)
{
    return r->resp.len > 300 ? 300 : (int)r->resp.len;
}

const char *sim_resp_text(const struct req *r)
{
    return r->resp.data ? r->resp.data : "";
}

/* ------------------------------------------------------------------------------------------ */
/* requests                                                                                     */

static void do_list(struct client *cl, struct shost *h)
{
    if (cl->s->generation == GEN_CURRENT) {
        /* as the Go client writes it: every filter, the host not escaped */
        char path[512];
        snprintf(path, sizeof path, "/disk/list?idc=&rack=&host=%s&status=0&marker=%u&count=200",
                 h->url, h->marker);
        sim_start_raw(cl, h, K_LIST, "GET", path, NULL, 0, NULL);
        return;
    }
    CURL *e = curl_easy_init();
    char *host = curl_easy_escape(e, h->url, 0);
    char path[512];
    snprintf(path, sizeof path, "/disk/list?host=%s&count=200&marker=%u", host, h->marker);
    curl_free(host);
    curl_easy_cleanup(e);
    sim_start(cl, h, K_LIST, "GET", path, NULL);
}

static void do_add(struct client *cl, struct shost *h, struct sdisk *d)
{
    struct sim *s = cl->s;
    char now[64];
    cm_format_rfc3339(sim_now_ns(), now, sizeof now);
    struct cm_buf b = {0};
    pthread_mutex_lock(&s->mu);
    int64_t used = d->used, size = d->size;
    pthread_mutex_unlock(&s->mu);
    if (s->generation == GEN_CURRENT) {
        /* DiskInfo of v3.5.1+: node_id and disk_set_id before the heartbeat part; a disk the
         * cluster knows (re-added) keeps its id */
        uint32_t id = d->id ? d->id : h->pending_id;
        cm_buf_printf(&b,
                      "{\"cluster_id\":%u,\"idc\":\"%s\",\"rack\":\"%s\",\"host\":\"%s\","
                      "\"path\":\"%s\",\"status\":1,\"readonly\":false,\"create_time\":\"%s\","
                      "\"last_update_time\":\"%s\",\"disk_set_id\":0,\"node_id\":%u,"
                      "\"disk_id\":%u,\"used\":%" PRId64 ",\"free\":%" PRId64 ",\"size\":%" PRId64
                      ",\"max_chunk_cnt\":0,\"free_chunk_cnt\":0,\"used_chunk_cnt\":0}",
                      s->cluster_id, h->idc, h->rack, h->url, d->path, now, now, h->node_id, id,
                      used, size - used, size);
        struct req *r = sim_start(cl, h, K_ADD, "POST", "/disk/add", cm_buf_steal(&b, NULL));
        r->disk = d;
        r->add_id = id;
        return;
    }
    cm_buf_printf(&b,
                  "{\"cluster_id\":%u,\"idc\":\"%s\",\"rack\":\"%s\",\"host\":\"%s\","
                  "\"path\":\"%s\",\"status\":1,\"readonly\":false,\"create_time\":\"%s\","
                  "\"last_update_time\":\"%s\",\"disk_id\":%u,\"used\":%" PRId64
                  ",\"free\":%" PRId64 ",\"size\":%" PRId64
                  ",\"max_chunk_cnt\":0,\"free_chunk_cnt\":0,\"used_chunk_cnt\":0}",
                  s->cluster_id, h->idc, h->rack, h->url, d->path, now, now, h->pending_id, used,
                  size - used, size);
    sim_start(cl, h, K_ADD, "POST", "/disk/add", cm_buf_steal(&b, NULL));
}

/* Plausible, changing numbers: a random walk of the used bytes. */
static void walk(struct sim *s, struct sdisk *d)
{
    int64_t step = s->chunk_size * 4;
    int64_t delta = (int64_t)(sim_rand(s) % 7) * step - 2 * step;
    d->used += delta;
    int64_t lo = d->size / 20, hi = d->size - d->size / 10;
    if (d->used < lo)
        d->used = lo;
    if (d->used > hi)
        d->used = hi;
}

static bool do_heartbeat(struct client *cl, struct shost *h)
{
    struct sim *s = cl->s;
    struct cm_buf b = {0};
    int n = 0;
    cm_buf_puts(&b, "{\"disks\":[");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < h->n_disks; i++) {
        struct sdisk *d = &h->disks[i];
        if (!d->active || d->silent)
            continue;
        walk(s, d);
        int64_t free_ = d->size - d->used;
        cm_buf_printf(&b,
                      "%s{\"disk_id\":%u,\"used\":%" PRId64 ",\"free\":%" PRId64
                      ",\"size\":%" PRId64 ",\"max_chunk_cnt\":%" PRId64
                      ",\"free_chunk_cnt\":%" PRId64 ",\"used_chunk_cnt\":%zu}",
                      n ? "," : "", d->id, d->used, free_, d->size, d->size / s->chunk_size,
                      free_ / s->chunk_size, d->n_chunks);
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    cm_buf_puts(&b, "]}");
    if (n == 0 && s->generation == GEN_2022) { /* a current blobnode sends the empty list */
        cm_buf_free(&b);
        return false;
    }
    sim_start(cl, h, K_HEARTBEAT, "POST", "/disk/heartbeat", cm_buf_steal(&b, NULL))->n_disks = n;
    return true;
}

/* Start the next request of host h if it is due. */
static void step(struct client *cl, struct shost *h, uint64_t now)
{
    struct sim *s = cl->s;
    if (h->busy || now < h->next_ms)
        return;
    bool current = s->generation == GEN_CURRENT;
    /* service, node, and the service heartbeat while the disks are being registered */
    if (current && h->phase != PH_RUN && cur_step(cl, h, now, false))
        return;
    switch (h->phase) {
    case PH_LIST:
        do_list(cl, h);
        return;
    case PH_REGISTER: {
        struct sdisk *next = NULL;
        for (int i = 0; i < h->n_disks && !next; i++)
            if (current ? h->disks[i].need_add && !h->disks[i].failed
                        : h->disks[i].id == 0 && !h->disks[i].failed)
                next = &h->disks[i];
        if (next == NULL) {
            h->phase = PH_RUN;
            /* spread the fleet's heartbeats over one period */
            h->next_hb_ms = now + (s->interval_ms * (uint64_t)h->index) / (uint64_t)s->n_hosts;
            if (current)
                cur_enter_run(s, h, now);
            return;
        }
        if (current && next->id == 0 && h->pending_id == 0) /* an empty body since v3.3.0 */
            sim_start_raw(cl, h, K_ALLOC, "POST", "/diskid/alloc", NULL, 0, NULL);
        else if (!current && h->pending_id == 0)
            sim_start(cl, h, K_ALLOC, "POST", "/diskid/alloc", NULL);
        else
            do_add(cl, h, next);
        return;
    }
    case PH_RUN: {
        struct sdisk *broken = NULL;
        if (atomic_load(&h->attention)) {
            pthread_mutex_lock(&s->mu);
            for (int i = 0; i < h->n_disks && !broken; i++)
                if (h->disks[i].report_broken && h->disks[i].id)
                    broken = &h->disks[i];
            if (broken == NULL)
                atomic_store(&h->attention, false);
            pthread_mutex_unlock(&s->mu);
        }
        if (broken) {
            char *body = cm_malloc(64);
            snprintf(body, 64, "{\"disk_id\":%u,\"status\":2}", broken->id);
            sim_start(cl, h, K_SET, "POST", "/disk/set", body)->disk = broken;
            return;
        }
        if (current && cur_step(cl, h, now, now >= h->next_hb_ms))
            return;
        if (now < h->next_hb_ms)
            return;
        h->next_hb_ms = s->interval_ms ? h->next_hb_ms + (uint64_t)s->interval_ms : now;
        if (h->next_hb_ms < now) /* fell behind: do not burst */
            h->next_hb_ms = now + (uint64_t)s->interval_ms;
        do_heartbeat(cl, h);
        return;
    }
    default: /* current.c's phases */
        return;
    }
}

/* Request slots go to hosts in the order they became due, so that with fewer slots than hosts
 * (and back-to-back heartbeats) every host gets its turn. */
static bool due(struct client *cl, struct shost *h, uint64_t now)
{
    if (h->busy || h->queued || now < h->next_ms || h->phase == PH_STOPPED)
        return false;
    return h->phase != PH_RUN || atomic_load(&h->attention) || now >= h->next_hb_ms ||
           (cl->s->generation == GEN_CURRENT && now >= cur_next_due(h));
}

/* What /sim/hosts shows of a host, for the servers' threads. */
static void publish(struct shost *h)
{
    atomic_store(&h->shown_phase, h->phase);
    atomic_store(&h->shown_node_id, h->node_id);
    atomic_store(&h->shown_inspect, h->data_inspect);
    atomic_store(&h->shown_svc_ok, h->phase != PH_SERVICE && !h->svc_failing);
}

static void enqueue(struct client *cl, struct shost *h)
{
    h->queued = true;
    h->rq_next = NULL;
    if (cl->rq_tail)
        cl->rq_tail->rq_next = h;
    else
        cl->rq_head = h;
    cl->rq_tail = h;
}

static void dispatch(struct client *cl, uint64_t now)
{
    while (cl->inflight < cl->s->concurrency && cl->rq_head) {
        struct shost *h = cl->rq_head;
        cl->rq_head = h->rq_next;
        if (cl->rq_head == NULL)
            cl->rq_tail = NULL;
        h->queued = false;
        step(cl, h, now);
        publish(h); /* a step may change the phase without a request */
    }
}

/* ------------------------------------------------------------------------------------------ */
/* completions                                                                                  */

static bool retryable(CURLcode rc, long status)
{
    return rc != CURLE_OK || status == 0 || status == 500 || status == 502 || status == 503 ||
           status == 504 || status == 906 || status == 907 || status == 908;
}

/* An answer the simulator retries but a current blobnode's start does not survive: a status
 * the Go client does not retry, to a request whose failure is fatal at start. */
static bool fatal_at_start(struct sim *s, struct req *r, CURLcode rc, long status)
{
    if (s->generation != GEN_CURRENT || rc != CURLE_OK || status == 0 || status == 500 ||
        status == 502 || status == 504 || status == 908)
        return false;
    return r->kind == K_SVC_REGISTER || r->kind == K_NODE_ADD || r->kind == K_LIST ||
           r->kind == K_ALLOC || (r->kind == K_ADD && s->re_add_disk);
}

struct json_object *sim_parse(struct req *r)
{
    char err[128];
    return cm_json_parse(r->resp.data ? r->resp.data : "", r->resp.len, false, err, sizeof err);
}

uint32_t sim_get_u32(struct json_object *o, const char *name)
{
    struct json_object *v;
    return json_object_object_get_ex(o, name, &v) ? (uint32_t)json_object_get_uint64(v) : 0;
}

static void list_done(struct client *cl, struct shost *h, struct json_object *o)
{
    struct sim *s = cl->s;
    bool current = s->generation == GEN_CURRENT;
    char alien[64] = "";
    struct json_object *arr = NULL;
    json_object_object_get_ex(o, "disks", &arr);
    size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i), *p;
        if (!json_object_object_get_ex(e, "path", &p))
            continue;
        uint32_t id = sim_get_u32(e, "disk_id");
        uint8_t status = (uint8_t)sim_get_u32(e, "status");
        if (current) {
            /* a registered normal disk that is not in the config stops a blobnode's start */
            bool ours = false;
            for (int k = 0; k < h->n_disks && !ours; k++)
                ours = strcmp(h->disks[k].path, json_object_get_string(p)) == 0;
            if (!ours && status == 1 && !alien[0])
                snprintf(alien, sizeof alien, "%s", json_object_get_string(p));
            /* a disk is the cluster's when its cluster id and disk id match what the disk was
             * formatted with; the simulator's disks carry the id registered for their path */
            if (sim_get_u32(e, "cluster_id") != s->cluster_id)
                continue;
        }
        if (status >= 4) /* repaired or dropped: the place is free to register again */
            continue;
        for (int k = 0; k < h->n_disks; k++) {
            struct sdisk *d = &h->disks[k];
            if (strcmp(d->path, json_object_get_string(p)) != 0 || d->id != 0)
                continue;
            d->id = id;
            d->status = status;
            d->active = status == 1;
            atomic_fetch_add(&s->c.reused, 1);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!current) {
        if (n == 0) {
            h->phase = PH_REGISTER;
            h->marker = 0;
        } else
            h->marker = sim_get_u32(o, "marker");
        return;
    }
    if (alien[0]) {
        cur_stop_host(cl, h,
                      "disk %s%s is registered and normal but not one of this host's disks; a "
                      "real blobnode refuses to start",
                      h->url, alien);
        return;
    }
    uint32_t marker = sim_get_u32(o, "marker");
    if (n > 0 && marker > h->marker) {
        h->marker = marker;
        return;
    }
    if (n > 0) /* the Go client pages until an empty page: it would ask for this one forever */
        fprintf(stderr,
                "blobnode-sim: GET /disk/list for %s answered %zu disks with marker %u after "
                "marker %u; a real blobnode would never finish listing its disks\n",
                h->url, n, marker, h->marker);
    h->phase = PH_REGISTER;
    h->marker = 0;
    cur_listed(cl, h);
}

static void heartbeat_done(struct client *cl, struct shost *h, struct json_object *o)
{
    struct sim *s = cl->s;
    struct json_object *arr = NULL;
    json_object_object_get_ex(o, "disks", &arr);
    size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        uint32_t id = sim_get_u32(e, "disk_id");
        uint8_t status = (uint8_t)sim_get_u32(e, "status");
        for (int k = 0; k < h->n_disks; k++)
            if (h->disks[k].id == id && id && s->generation == GEN_CURRENT)
                cur_disk_status(cl, h, &h->disks[k], status);
            else if (h->disks[k].id == id && id) {
                h->disks[k].status = status;
                if (status >= 2) /* clustermgr says broken or worse: stop */
                    h->disks[k].active = false;
            }
    }
    pthread_mutex_unlock(&s->mu);
}

/* /disk/add of a current blobnode (startup.go): a failure is logged, and fatal only with
 * re_add_disk unless it is 201. */
static void add_done_current(struct client *cl, struct req *r, long status)
{
    struct sim *s = cl->s;
    struct shost *h = r->h;
    struct sdisk *d = r->disk;
    bool fresh = d->id == 0;
    h->pending_id = 0;
    if (status == 200 || (status == 201 && s->re_add_disk)) {
        pthread_mutex_lock(&s->mu);
        d->id = r->add_id;
        d->status = 1;
        d->active = true;
        d->need_add = false;
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add(fresh ? &s->c.adds : &s->c.readds, 1);
        return;
    }
    if (s->re_add_disk) {
        cur_stop_host(cl, h,
                      "POST /disk/add of %s%s (disk %u) answered %ld %.*s; with re_add_disk a "
                      "real blobnode exits",
                      h->url, d->path, r->add_id, status, sim_resp_len(r), sim_resp_text(r));
        return;
    }
    if (status == 201 && fresh) /* the id is taken: get another one */
        return;
    fprintf(stderr,
            "blobnode-sim: cannot register %s%s (status %ld): %.*s (a real blobnode logs this "
            "and goes on without the disk being known)\n",
            h->url, d->path, status, sim_resp_len(r), sim_resp_text(r));
    pthread_mutex_lock(&s->mu);
    d->failed = true;
    d->need_add = false;
    pthread_mutex_unlock(&s->mu);
}

static void complete(struct client *cl, struct req *r, CURLcode rc)
{
    struct sim *s = cl->s;
    struct shost *h = r->h;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    uint64_t now_us = sim_mono_us(), now = now_us / 1000;
    h->busy = false;
    cl->inflight--;
    if (retryable(rc, status)) {
        if (r->kind == K_HEARTBEAT)
            atomic_fetch_add(&s->c.hb_err, 1);
        if (fatal_at_start(s, r, rc, status))
            sim_log_limited(cl,
                            "request to %s answered %ld at start; a real blobnode exits on that "
                            "(the Go client retries only 500, 502, 504 and 908), the simulator "
                            "tries the next clustermgr node",
                            s->cms[h->cm], status);
        else
            logf_limited(cl, "request to %s failed (status %ld); trying the next clustermgr node",
                         s->cms[h->cm], rc != CURLE_OK ? -(long)rc : status);
        h->cm = (h->cm + 1) % s->n_cms;
        atomic_fetch_add(&s->c.failovers, 1);
        h->next_ms = now + (status == 907 || rc != CURLE_OK ? 200 : 50);
        if (r->kind == K_HEARTBEAT) /* retry the same heartbeat now */
            h->next_hb_ms = h->next_ms;
        if (r->kind >= K_SVC_REGISTER)
            cur_retry(cl, r);
        return;
    }
    struct json_object *o = status == 200 ? sim_parse(r) : NULL;
    switch (r->kind) {
    case K_LIST:
        if (o)
            list_done(cl, h, o);
        else if (s->generation == GEN_CURRENT) /* NewService returns the error: it exits */
            cur_stop_host(cl, h, "GET /disk/list answered %ld %.*s; a real blobnode exits", status,
                          sim_resp_len(r), sim_resp_text(r));
        else
            h->next_ms = now + 1000;
        break;
    case K_ALLOC:
        if (o && sim_get_u32(o, "disk_id")) {
            h->pending_id = sim_get_u32(o, "disk_id");
            atomic_fetch_add(&s->c.allocs, 1);
        } else if (s->generation == GEN_CURRENT) /* opening the disk fails: fatal */
            cur_stop_host(cl, h, "POST /diskid/alloc answered %ld %.*s; a real blobnode exits",
                          status, sim_resp_len(r), sim_resp_text(r));
        else
            h->next_ms = now + 1000;
        break;
    case K_ADD: {
        if (s->generation == GEN_CURRENT) {
            add_done_current(cl, r, status);
            break;
        }
        pthread_mutex_lock(&s->mu);
        struct sdisk *d = NULL;
        for (int i = 0; i < h->n_disks && !d; i++)
            if (h->disks[i].id == 0 && !h->disks[i].failed)
                d = &h->disks[i];
        if (d && status == 200) {
            d->id = h->pending_id;
            d->status = 1;
            d->active = true;
            atomic_fetch_add(&s->c.adds, 1);
        } else if (d && status == 201) {
            /* the id is taken: get another one */
        } else if (d) {
            fprintf(stderr, "blobnode-sim: cannot register %s%s (status %ld): %.*s\n", h->url,
                    d->path, status, (int)r->resp.len, r->resp.data ? r->resp.data : "");
            d->failed = true;
        }
        pthread_mutex_unlock(&s->mu);
        h->pending_id = 0;
        break;
    }
    case K_HEARTBEAT:
        if (status == 200 && o) {
            atomic_fetch_add(&s->c.hb_ok, 1);
            atomic_fetch_add(&s->c.hb_disks, (unsigned long long)r->n_disks);
            heartbeat_done(cl, h, o);
            if (s->measure_from_us && r->start_us >= s->measure_from_us) {
                if (s->n_lat == s->cap_lat) {
                    s->cap_lat = s->cap_lat ? s->cap_lat * 2 : 4096;
                    s->lat_us = cm_realloc(s->lat_us, s->cap_lat * sizeof *s->lat_us);
                }
                uint64_t l = now_us - r->start_us;
                s->lat_us[s->n_lat++] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
            }
        } else {
            atomic_fetch_add(&s->c.hb_err, 1);
            logf_limited(cl, "heartbeat of %s refused with status %ld", h->url, status);
            if (status == 911) { /* a disk is unknown (cluster wiped?): register again */
                pthread_mutex_lock(&s->mu);
                for (int i = 0; i < h->n_disks; i++) {
                    h->disks[i].id = 0;
                    h->disks[i].active = false;
                    h->disks[i].failed = false;
                }
                pthread_mutex_unlock(&s->mu);
                h->phase = PH_LIST;
                h->marker = 0;
                h->next_ms = now + 1000;
                if (s->generation == GEN_CURRENT) /* from the start: service, node, disks */
                    cur_restart(h);
            }
        }
        break;
    case K_SET:
        atomic_fetch_add(&s->c.set_broken, 1);
        pthread_mutex_lock(&s->mu);
        if (status == 200 || status == 913) {
            r->disk->report_broken = false;
            r->disk->active = false;
            if (s->generation == GEN_2022 || r->disk->status < 2)
                r->disk->status = 2; /* (the current one keeps a later status it was told) */
        }
        pthread_mutex_unlock(&s->mu);
        if (status != 200 && status != 913)
            h->next_ms = now + 1000;
        break;
    default:
        cur_complete(cl, r, status, o, now);
        break;
    }
    json_object_put(o);
}

/* ------------------------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void report(struct sim *s, double secs)
{
    size_t n = s->n_lat;
    uint32_t *v = s->lat_us;
    qsort(v, n, sizeof *v, cmp_u32);
    uint64_t ok = atomic_load(&s->c.hb_ok) - s->hb_ok_at_start;
    uint64_t disks = atomic_load(&s->c.hb_disks) - s->hb_disks_at_start;
    double p50 = n ? v[n / 2] / 1000.0 : 0, p99 = n ? v[n * 99 / 100] / 1000.0 : 0;
    double p999 = n ? v[n * 999 / 1000] / 1000.0 : 0, max = n ? v[n - 1] / 1000.0 : 0;
    if (s->json)
        printf("{\"hosts\":%d,\"disks_per_host\":%d,\"seconds\":%.2f,\"heartbeats\":%llu,"
               "\"heartbeats_per_s\":%.1f,\"disks_per_s\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
               "\"p999_ms\":%.2f,\"max_ms\":%.2f,\"errors\":%llu,\"failovers\":%llu}\n",
               s->n_hosts, s->n_disks, secs, (unsigned long long)ok, ok / secs, disks / secs, p50,
               p99, p999, max, (unsigned long long)atomic_load(&s->c.hb_err),
               (unsigned long long)atomic_load(&s->c.failovers));
    else
        printf("%d hosts x %d disks, %.1f s: %llu heartbeats (%.0f/s, %.0f disks/s), latency "
               "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; %llu errors, %llu "
               "failovers\n",
               s->n_hosts, s->n_disks, secs, (unsigned long long)ok, ok / secs, disks / secs, p50,
               p99, p999, max, (unsigned long long)atomic_load(&s->c.hb_err),
               (unsigned long long)atomic_load(&s->c.failovers));
    fflush(stdout);
}

/* Every host is running or stopped: one line with the disks and the node ids. */
static void registered_current(struct sim *s, int stopped)
{
    int reg = 0;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < s->n_hosts; i++) {
        struct shost *h = &s->hosts[i];
        for (int k = 0; k < h->n_disks; k++)
            reg += h->disks[k].id != 0;
        if (h->phase == PH_RUN && h->node_id < lo)
            lo = h->node_id;
        if (h->phase == PH_RUN && h->node_id > hi)
            hi = h->node_id;
    }
    fprintf(stderr,
            "blobnode-sim: %d hosts registered as nodes %u-%u, %d of %d disks (%llu new, %llu "
            "reused)",
            s->n_hosts - stopped, lo == UINT32_MAX ? 0 : lo, hi, reg, s->n_hosts * s->n_disks,
            (unsigned long long)atomic_load(&s->c.adds),
            (unsigned long long)atomic_load(&s->c.reused));
    if (s->re_add_disk)
        fprintf(stderr, "; %llu added again", (unsigned long long)atomic_load(&s->c.readds));
    if (stopped)
        fprintf(stderr, "; %d hosts stopped", stopped);
    fprintf(stderr, "\n");
    s->measure_from_us = sim_mono_us();
    s->hb_ok_at_start = atomic_load(&s->c.hb_ok);
    s->hb_disks_at_start = atomic_load(&s->c.hb_disks);
}

/* curl's sockets go to an epoll set and only those with events are handed back to curl: with
 * curl_multi_perform and curl_multi_poll every turn walked (and polled) all the connections, which
 * made the fleet's own CPU per request grow with the number of connections and fall with the
 * answers gathered per turn. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
    (void)e;
    struct client *cl = arg;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(cl->epfd, EPOLL_CTL_DEL, fd, NULL); /* fails harmlessly when already closed */
        return 0;
    }
    struct epoll_event ev = {.data.fd = fd};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (epoll_ctl(cl->epfd, sockp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
        epoll_ctl(cl->epfd, sockp ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    if (sockp == NULL)
        curl_multi_assign(cl->multi, fd, cl);
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *arg)
{
    (void)m;
    struct client *cl = arg;
    cl->timer_at_ms = timeout_ms < 0 ? -1 : (int64_t)cm_mono_ms() + timeout_ms;
    return 0;
}

/* Run curl's timer when due, then wait up to max_ms for socket events and hand them to curl. */
static void curl_turn(struct client *cl, int max_ms)
{
    int running;
    if (cl->timer_at_ms >= 0 && (int64_t)cm_mono_ms() >= cl->timer_at_ms) {
        cl->timer_at_ms = -1;
        curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    int wait = max_ms;
    if (cl->timer_at_ms >= 0) {
        int64_t d = cl->timer_at_ms - (int64_t)cm_mono_ms();
        wait = d < 0 ? 0 : d < wait ? (int)d : wait;
    }
    struct epoll_event evs[256];
    int n = epoll_wait(cl->epfd, evs, 256, wait);
    for (int i = 0; i < n; i++) {
        int mask = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                   ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                   ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(cl->multi, evs[i].data.fd, mask, &running);
    }
}

int sim_client_run(struct sim *s)
{
    struct client cl = {.s = s, .timer_at_ms = -1};
    cl.multi = curl_multi_init();
    cl.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl.epfd < 0) {
        perror("blobnode-sim: epoll_create1");
        curl_multi_cleanup(cl.multi);
        return 1;
    }
    /* room for every request in flight on each member: the number in flight to one member
     * moves with the answers, and a cache sized for the total closed the idle connections of one
     * member to open new ones to another (a third of the requests spread over three members
     * opened a connection) */
    curl_multi_setopt(cl.multi, CURLMOPT_MAXCONNECTS, (long)s->concurrency * s->n_cms + 16);
    curl_multi_setopt(cl.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cl.multi, CURLMOPT_SOCKETDATA, &cl);
    curl_multi_setopt(cl.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(cl.multi, CURLMOPT_TIMERDATA, &cl);
    uint64_t last_scan = 0, registered_at = 0;
    bool all_registered = false;
    int rc = 0;
    while (!atomic_load(&s->stop)) {
        uint64_t now = cm_mono_ms();
        if (now - last_scan >= 10) {
            last_scan = now;
            bool all = true;
            int stopped = 0;
            for (int i = 0; i < s->n_hosts; i++) {
                if (due(&cl, &s->hosts[i], now))
                    enqueue(&cl, &s->hosts[i]);
                all &= s->hosts[i].phase == PH_RUN || s->hosts[i].phase == PH_STOPPED;
                stopped += s->hosts[i].phase == PH_STOPPED;
            }
            if (stopped == s->n_hosts) {
                fprintf(stderr, "blobnode-sim: every host stopped\n");
                rc = 1;
                break;
            }
            if (all && !all_registered && s->generation == GEN_CURRENT) {
                all_registered = true;
                registered_at = now;
                registered_current(s, stopped);
            } else if (all && !all_registered) {
                all_registered = true;
                registered_at = now;
                int reg = 0;
                for (int i = 0; i < s->n_hosts; i++)
                    for (int k = 0; k < s->hosts[i].n_disks; k++)
                        reg += s->hosts[i].disks[k].id != 0;
                fprintf(stderr,
                        "blobnode-sim: %d hosts registered, %d of %d disks (%llu new, %llu "
                        "reused)\n",
                        s->n_hosts, reg, s->n_hosts * s->n_disks,
                        (unsigned long long)atomic_load(&s->c.adds),
                        (unsigned long long)atomic_load(&s->c.reused));
                s->measure_from_us = sim_mono_us();
                s->hb_ok_at_start = atomic_load(&s->c.hb_ok);
                s->hb_disks_at_start = atomic_load(&s->c.hb_disks);
            }
            if (all_registered && s->duration_s > 0 &&
                (double)(now - registered_at) >= s->duration_s * 1000.0)
                break;
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(cl.multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct req *r;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            complete(&cl, r, m->data.result);
            struct shost *h = r->h;
            publish(h);
            req_free(&cl, r);
            if (due(&cl, h, cm_mono_ms()))
                enqueue(&cl, h);
        }
        dispatch(&cl, cm_mono_ms());
        curl_turn(&cl, 10);
    }
    double secs = all_registered ? (sim_mono_us() - s->measure_from_us) / 1e6 : 0;
    while (cl.live) /* abandon what is in flight */
        req_free(&cl, cl.live);
    curl_multi_cleanup(cl.multi);
    close(cl.epfd);
    if (all_registered && secs > 0)
        report(s, secs);
    for (int i = 0; i < s->n_hosts; i++)
        cur_free(&s->hosts[i]);
    return rc;
}
