/* Service module; see mod_service.h. */
#include "mod_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "mod_cluster.h"
#include "mod_config.h"
#include "../util/log.h"

struct service_state {
    struct cm_service_node *v; /* sorted by (name, host) */
    size_t n, cap;
    uint64_t bytes; /* strings of every node, for the quota */
};

static uint64_t node_bytes(const struct cm_service_node *e)
{
    return strlen(e->name) + strlen(e->host) + strlen(e->idc);
}

void cm_service_enc_register(struct cm_buf *b, const char *name, const char *host, const char *idc,
                             uint64_t cluster_id, int64_t timeout_s)
{
    cm_put_str(b, name);
    cm_put_str(b, host);
    cm_put_str(b, idc);
    cm_put_u64(b, cluster_id);
    cm_put_i64(b, timeout_s);
}

void cm_service_enc_key(struct cm_buf *b, const char *name, const char *host)
{
    cm_put_str(b, name);
    cm_put_str(b, host);
}

int64_t cm_service_expiry(int64_t ts_ns, int64_t timeout_s)
{
    const int64_t ns = 1000000000;
    if (timeout_s > INT64_MAX / ns)
        return INT64_MAX;
    if (timeout_s < INT64_MIN / ns)
        return INT64_MIN;
    int64_t d = timeout_s * ns;
    if (d > 0 && ts_ns > INT64_MAX - d)
        return INT64_MAX;
    if (d < 0 && ts_ns < INT64_MIN - d)
        return INT64_MIN;
    return ts_ns + d;
}

static int cmp_key(const struct cm_service_node *e, const char *name, const char *host)
{
    int c = strcmp(e->name, name);
    return c ? c : strcmp(e->host, host);
}

/* Index of (name, host), or of where it would go; *found tells which. */
static size_t lower_bound(struct service_state *s, const char *name, const char *host, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(&s->v[mid], name, host) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->n && cmp_key(&s->v[lo], name, host) == 0;
    return lo;
}

static void node_free(struct cm_service_node *e)
{
    free(e->name);
    free(e->host);
    free(e->idc);
}

/* Insert or replace; takes ownership of the strings of `e`. */
static void upsert(struct service_state *s, struct cm_service_node *e)
{
    bool found;
    size_t i = lower_bound(s, e->name, e->host, &found);
    s->bytes += node_bytes(e);
    if (found) {
        s->bytes -= node_bytes(&s->v[i]);
        node_free(&s->v[i]);
        s->v[i] = *e;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = cm_realloc(s->v, s->cap * sizeof *s->v);
    }
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
    s->v[i] = *e;
    s->n++;
}

static void *service_create(struct cm_fsm *fsm)
{
    (void)fsm;
    return cm_calloc(1, sizeof(struct service_state));
}

static void service_destroy(void *state)
{
    struct service_state *s = state;
    for (size_t i = 0; i < s->n; i++)
        node_free(&s->v[i]);
    free(s->v);
    free(s);
}

static bool fits(struct service_state *s, const char *name, const char *host, const char *idc,
                 uint64_t max_entries, uint64_t max_bytes)
{
    bool found;
    size_t i = lower_bound(s, name, host, &found);
    uint64_t add = strlen(name) + strlen(host) + strlen(idc);
    uint64_t charged = s->bytes + (uint64_t)s->n * CM_SERVICE_ENTRY_OVERHEAD;
    if (found) {
        uint64_t old = node_bytes(&s->v[i]);
        return add <= old || charged - old + add <= max_bytes;
    }
    return s->n + 1 <= max_entries && charged + add + CM_SERVICE_ENTRY_OVERHEAD <= max_bytes;
}

bool cm_service_fits(struct cm_fsm *fsm, const char *name, const char *host, const char *idc,
                     uint64_t max_entries, uint64_t max_bytes)
{
    return fits(fsm->mods[CM_MOD_SERVICE], name, host, idc, max_entries, max_bytes);
}

uint64_t cm_service_charged(struct cm_fsm *fsm)
{
    struct service_state *s = fsm->mods[CM_MOD_SERVICE];
    return s->bytes + (uint64_t)s->n * CM_SERVICE_ENTRY_OVERHEAD;
}

size_t cm_service_expired(struct cm_fsm *fsm, int64_t before_ns, size_t max, char ***names,
                          char ***hosts)
{
    struct service_state *s = fsm->mods[CM_MOD_SERVICE];
    size_t k = 0;
    *names = NULL;
    *hosts = NULL;
    for (size_t i = 0; i < s->n && k < max; i++) {
        if (s->v[i].expires_ns > before_ns)
            continue;
        if (k == 0) {
            *names = cm_calloc(max, sizeof **names);
            *hosts = cm_calloc(max, sizeof **hosts);
        }
        (*names)[k] = cm_strdup(s->v[i].name);
        (*hosts)[k] = cm_strdup(s->v[i].host);
        k++;
    }
    return k;
}

static void service_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                          struct cm_result *res)
{
    struct service_state *s = state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    char *name = cm_get_strdup(&d);
    char *host = cm_get_strdup(&d);
    bool found;
    size_t i;
    switch (cmd->op) {
    case CM_SERVICE_OP_REGISTER: {
        struct cm_service_node e = {.name = name, .host = host};
        e.idc = cm_get_strdup(&d);
        e.cluster_id = cm_get_u64(&d);
        e.timeout_s = cm_get_i64(&d);
        if (d.err) {
            free(e.idc);
            break;
        }
        /* the first format registered whatever the leader proposed */
        if (cm_cluster_version(fsm) >= 2 &&
            !fits(s, e.name, e.host, e.idc, CM_SERVICE_HARD_MAX_ENTRIES,
                  CM_SERVICE_HARD_MAX_BYTES)) {
            node_free(&e);
            res->code = CM_ERR_ILLEGAL_ARGUMENTS;
            return;
        }
        e.expires_ns = cm_service_expiry(cmd->ts_ns, e.timeout_s);
        upsert(s, &e);
        return;
    }
    case CM_SERVICE_OP_UNREGISTER:
        if (d.err)
            break;
        i = lower_bound(s, name, host, &found);
        if (found) {
            s->bytes -= node_bytes(&s->v[i]);
            node_free(&s->v[i]);
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
            s->n--;
        } else
            res->code = CM_ERR_NOT_FOUND; /* removed meanwhile: as the leader would have said */
        free(name);
        free(host);
        return;
    case CM_SERVICE_OP_HEARTBEAT:
        if (d.err)
            break;
        i = lower_bound(s, name, host, &found);
        if (found)
            s->v[i].expires_ns = cm_service_expiry(cmd->ts_ns, s->v[i].timeout_s);
        else
            res->code = CM_ERR_NOT_FOUND;
        free(name);
        free(host);
        return;
    }
    free(name);
    free(host);
    CM_ERROR("service", "ignoring malformed service command op %u", cmd->op);
    res->code = -1;
}

const struct cm_service_node *cm_service_find(struct cm_fsm *fsm, const char *name,
                                              const char *host)
{
    struct service_state *s = fsm->mods[CM_MOD_SERVICE];
    bool found;
    size_t i = lower_bound(s, name, host, &found);
    return found ? &s->v[i] : NULL;
}

size_t cm_service_count(struct cm_fsm *fsm)
{
    return ((struct service_state *)fsm->mods[CM_MOD_SERVICE])->n;
}

struct json_object *cm_service_nodes_json(struct cm_fsm *fsm, const char *name, int64_t now_ns)
{
    struct service_state *s = fsm->mods[CM_MOD_SERVICE];
    struct json_object *arr = NULL;
    size_t i = 0;
    if (name) {
        bool found;
        i = lower_bound(s, name, "", &found);
    }
    for (; i < s->n; i++) {
        const struct cm_service_node *e = &s->v[i];
        if (name && strcmp(e->name, name) != 0)
            break;
        if (now_ns > 0 && e->expires_ns <= now_ns)
            continue;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "cluster_id", json_object_new_uint64(e->cluster_id));
        /* registers refuse bytes that are not UTF-8; ones replicated before that render as
         * U+FFFD, so one bad node cannot break every later list */
        json_object_object_add(o, "name", cm_config_json_string(e->name, strlen(e->name)));
        json_object_object_add(o, "host", cm_config_json_string(e->host, strlen(e->host)));
        json_object_object_add(o, "idc", cm_config_json_string(e->idc, strlen(e->idc)));
        if (arr == NULL)
            arr = json_object_new_array();
        json_object_array_add(arr, o);
    }
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "nodes", arr);
    return r;
}

static void *service_snap_take(void *state)
{
    struct service_state *s = state;
    struct cm_buf b = {0};
    cm_put_uvar(&b, s->n);
    for (size_t i = 0; i < s->n; i++) {
        const struct cm_service_node *e = &s->v[i];
        cm_put_str(&b, e->name);
        cm_put_str(&b, e->host);
        cm_put_str(&b, e->idc);
        cm_put_u64(&b, e->cluster_id);
        cm_put_i64(&b, e->timeout_s);
        cm_put_i64(&b, e->expires_ns);
    }
    return cm_snap_take_encoded(&b);
}

static int service_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                             size_t errlen)
{
    (void)fsm;
    struct service_state *s = state;
    uint64_t n = cm_get_uvar(d);
    for (uint64_t i = 0; i < n && !d->err; i++) {
        struct cm_service_node e;
        e.name = cm_get_strdup(d);
        e.host = cm_get_strdup(d);
        e.idc = cm_get_strdup(d);
        e.cluster_id = cm_get_u64(d);
        e.timeout_s = cm_get_i64(d);
        e.expires_ns = cm_get_i64(d);
        /* canonical streams are strictly sorted; anything else is damage */
        if (!d->err && s->n && cmp_key(&s->v[s->n - 1], e.name, e.host) >= 0) {
            snprintf(err, errlen, "service nodes are not in (name, host) order");
            d->err = true;
        }
        if (d->err) {
            node_free(&e);
            break;
        }
        upsert(s, &e);
    }
    return d->err ? -1 : 0;
}

const struct cm_module cm_mod_service = {
    .id = CM_MOD_SERVICE,
    .name = "service",
    .create = service_create,
    .destroy = service_destroy,
    .apply = service_apply,
    .snap_take = service_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_load = service_snap_load,
};
