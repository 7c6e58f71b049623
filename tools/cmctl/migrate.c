/*
 * cmctl migrate: move the state of a running clustermgr (the reference Go server or ours, either
 * API generation) into a new cluster of ours, through the source's public HTTP API only.
 *
 *   migrate --from h1,h2 --out FILE   reads every kind (disks, nodes, volumes and units, leases,
 *                                     services, config, KV), then builds the new cluster's state
 *                                     with the state machine's own commands (src/fsm, applied in
 *                                     process as a leader would propose them) and writes it with
 *                                     the state machine's snapshot writer: the stream that
 *                                     `cmctl snapshot restore` turns into data directories.
 *   migrate --verify --from A --to B  reads both clusters the same way and compares them kind by
 *                                     kind under the rules of docs/operations.md.
 *
 * A kind is read twice and its shape (ids and what the cutover must not lose) compared; a source
 * that changes shape between the two reads is read again, at most MIG_ATTEMPTS times, then
 * refused. Nothing is written unless everything was read and applied: the file appears by an
 * atomic rename at the very end. Progress goes to stderr.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/fsm/codemode.h"
#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_config.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_kv.h"
#include "../../src/fsm/mod_node.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/fsm/mod_service.h"
#include "../../src/fsm/mod_volume.h"
#include "../../src/server/config.h"
#include "../../src/util/base64.h"
#include "../../src/util/json.h"
#include "../../src/util/log.h"
#include "../../src/util/timeutil.h"
#include "cmctl.h"

#define MIG_ATTEMPTS 3
/* Epochs reserved above every unit's current epoch: a /volume/unit/alloc in flight on the
 * source reserved at most a few, so the new cluster hands out vuids above all of them. */
#define MIG_EPOCH_MARGIN 64u
/* Heartbeat lease the carried disks start with: time for the fleet to be pointed at the new
 * cluster before its disks count as expired. */
#define MIG_DISK_LEASE_S 600
#define MIG_DEFAULT_BID_MARGIN 1000000000ull
#define MIG_DEFAULT_ID_MARGIN 1000ull

/* Everything read from one cluster; every member is owned (NULL: the kind is absent there). */
struct mig_state {
    struct json_object *disks;    /* DiskInfo array, by disk id */
    struct json_object *dropping; /* disk ids */
    struct json_object *nodes;    /* NodeInfo array by node id; NULL: no node API (older) */
    struct json_object *volumes;  /* VolumeInfo array, by vid */
    struct json_object *units;    /* {"<vuid>": compact} of the units of unhealthy volumes */
    struct json_object *leases;   /* [{"host","code_mode","vid","token","expire_time"}] */
    struct json_object *services; /* service nodes */
    struct json_object *configs;  /* {"key":"value"} */
    struct json_object *kvs;      /* [{"key","value"(base64)}]; NULL: no KV API (older) */
    uint64_t bid_top, diskid_top; /* migrate only: the source's high-water marks */
};

static void state_free(struct mig_state *s)
{
    struct json_object **all[] = {&s->disks,  &s->dropping, &s->nodes,   &s->volumes, &s->units,
                                  &s->leases, &s->services, &s->configs, &s->kvs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        json_object_put(*all[i]);
        *all[i] = NULL;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* small JSON getters (absent or mistyped fields read as 0 / "")                             */

static struct json_object *jget(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}
static uint64_t ju64(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v ? json_object_get_uint64(v) : 0;
}
static int64_t ji64(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v ? json_object_get_int64(v) : 0;
}
static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    const char *s = v && !json_object_is_type(v, json_type_null) ? json_object_get_string(v) : "";
    return s ? s : "";
}
static bool jbool(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v && json_object_get_boolean(v);
}
static size_t jlen(struct json_object *a)
{
    return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}
static struct json_object *jat(struct json_object *a, size_t i)
{
    return json_object_array_get_idx(a, i);
}

/* ---------------------------------------------------------------------------------------- */
/* progress                                                                                 */

struct progress {
    const char *kind;
    uint64_t t0_us, last_us;
    size_t expect; /* 0: unknown */
    /* the shape pass of read_stable: list readers keep nothing and append each item's shape */
    const char *const *fields;
    struct cm_buf *shape;
};

static void progress_cb(void *arg, size_t n)
{
    struct progress *p = arg;
    uint64_t now = cm_mono_us();
    if (now - p->last_us < 1000000 && !(p->expect && n >= p->expect))
        return;
    p->last_us = now;
    double s = (double)(now - p->t0_us) / 1e6, rate = s > 0 ? (double)n / s : 0;
    if (p->expect && rate > 0 && n < p->expect)
        fprintf(stderr, "cmctl: %s: %zu of %zu read, %.0f/s, about %.0f s left\n", p->kind, n,
                p->expect, rate, (double)(p->expect - n) / rate);
    else
        fprintf(stderr, "cmctl: %s: %zu read, %.0f/s\n", p->kind, n, rate);
}

/* ---------------------------------------------------------------------------------------- */
/* reading one kind, stable                                                                  */

/* GET a route and take one field of its answer (a new reference; NULL when absent). */
static int get_field(struct cmctl *c, const char *path, const char *field, struct json_object **out)
{
    struct json_object *o;
    int rc = cmctl_call_json(c, "GET", path, NULL, &o);
    *out = rc == 0 && jget(o, field) ? json_object_get(jget(o, field)) : NULL;
    json_object_put(o);
    return rc;
}

/* The fields of an element that make up its kind's shape. */
static void shape_add(struct cm_buf *b, struct json_object *o, const char *const *fields)
{
    if (fields[0] == NULL) { /* the element itself (an id) */
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        cm_buf_append(b, s, strlen(s));
    }
    for (; *fields; fields++) {
        const char *s = json_object_to_json_string_ext(jget(o, *fields), JSON_C_TO_STRING_PLAIN);
        cm_buf_append(b, s, strlen(s));
        cm_buf_append(b, "|", 1);
    }
    cm_buf_append(b, "\n", 1);
}

static void shape_of(struct json_object *arr, const char *const *fields, struct cm_buf *out)
{
    out->len = 0;
    if (arr && json_object_is_type(arr, json_type_object)) { /* a map: the whole text */
        const char *s = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
        cm_buf_append(out, s, strlen(s));
        return;
    }
    for (size_t i = 0; i < jlen(arr); i++)
        shape_add(out, jat(arr, i), fields);
}

typedef int (*read_fn)(struct cmctl *c, struct progress *p, struct json_object **out);

/* One read of a kind: the whole of it (shape == NULL), or only its shape into `shape`. */
static int read_once(struct cmctl *c, const char *kind, read_fn fn, const char *const *fields,
                     size_t expect, struct cm_buf *shape, struct json_object **out)
{
    struct progress p = {kind, cm_mono_us(), 0, expect, fields, shape};
    *out = NULL;
    if (shape)
        shape->len = 0;
    int rc = fn(c, &p, out);
    if (rc == 0 && shape && *out) { /* a reader that does not page: shape it whole */
        shape_of(*out, fields, shape);
        json_object_put(*out);
        *out = NULL;
    }
    return rc;
}

/* Read a kind, then read its shape again: kept when both agree, else read again (at most
 * MIG_ATTEMPTS times). Only one copy of a kind is held in memory. */
static int read_stable(struct cmctl *c, const char *kind, read_fn fn, const char *const *fields,
                       size_t expect, struct json_object **out)
{
    struct json_object *keep = NULL, *none = NULL;
    struct cm_buf a = {0}, b = {0};
    int rc = 0;
    for (int attempt = 0; attempt < MIG_ATTEMPTS; attempt++) {
        if ((rc = read_once(c, kind, fn, fields, expect, NULL, &keep)) != 0 ||
            (rc = read_once(c, kind, fn, fields, expect, &b, &none)) != 0)
            goto out;
        shape_of(keep, fields, &a);
        if (a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0)) {
            *out = keep;
            keep = NULL;
            fprintf(stderr, "cmctl: %s: %zu, stable over two reads\n", kind,
                    json_object_is_type(*out, json_type_array)
                        ? jlen(*out)
                        : (size_t)json_object_object_length(*out));
            goto out;
        }
        fprintf(stderr, "cmctl: %s changed while being read; reading again\n", kind);
        json_object_put(keep);
        keep = NULL;
    }
    rc = cmctl_fail(CMCTL_ERR_UNAVAILABLE,
                    "the source's %s kept changing over %d reads; stop what changes them "
                    "(docs/operations.md, cutover) and try again",
                    kind, 2 * MIG_ATTEMPTS);
out:
    json_object_put(keep);
    cm_buf_free(&a);
    cm_buf_free(&b);
    return rc;
}

static void on_page(void *arg, struct json_object *page, size_t total)
{
    struct progress *p = arg;
    for (size_t i = 0; p->shape && i < jlen(page); i++)
        shape_add(p->shape, jat(page, i), p->fields);
    progress_cb(p, total);
}

static int read_list(struct cmctl *c, struct progress *p, const char *base, const char *items,
                     const char *query, struct json_object **out)
{
    *out = p->shape ? NULL : json_object_new_array();
    return cmctl_list_pages(c, base, items, query, *out, on_page, p);
}

static int rd_disks(struct cmctl *c, struct progress *p, struct json_object **out)
{
    return read_list(c, p, "/disk/list", "disks", "count=200", out);
}

static int rd_volumes(struct cmctl *c, struct progress *p, struct json_object **out)
{
    return read_list(c, p, "/volume/list", "volumes", "count=500", out);
}

static int rd_dropping(struct cmctl *c, struct progress *p, struct json_object **out)
{
    (void)p;
    struct json_object *disks;
    int rc = get_field(c, "/disk/droppinglist", "disks", &disks);
    *out = rc ? NULL : json_object_new_array();
    for (size_t i = 0; i < jlen(disks); i++)
        json_object_array_add(*out, json_object_new_uint64(ju64(jat(disks, i), "disk_id")));
    json_object_put(disks);
    return rc;
}

static int rd_services(struct cmctl *c, struct progress *p, struct json_object **out)
{
    (void)p;
    int rc = get_field(c, "/service/list", "nodes", out);
    if (rc == 0 && !json_object_is_type(*out, json_type_array)) { /* "nodes":null: none */
        json_object_put(*out);
        *out = json_object_new_array();
    }
    return rc;
}

static int rd_configs(struct cmctl *c, struct progress *p, struct json_object **out)
{
    (void)p;
    int rc = get_field(c, "/config/list", "configs", out);
    if (rc == 0 && !json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = json_object_new_object();
    }
    return rc;
}

static int rd_kvs(struct cmctl *c, struct progress *p, struct json_object **out)
{
    struct json_object *first;
    int rc = cmctl_get_json_if_any(c, "/kv/list?count=1", &first);
    json_object_put(first);
    if (rc)
        return rc; /* CMCTL_ERR_NOT_FOUND: no KV here */
    return read_list(c, p, "/kv/list", "kvs", "count=1000", out);
}

/* Nodes: every node id that /topo/info or a disk names, with its /node/info. */
static int rd_nodes_of(struct cmctl *c, struct json_object *disks, struct json_object **out)
{
    struct json_object *topo;
    int rc = cmctl_get_json_if_any(c, "/topo/info", &topo);
    if (rc)
        return rc;
    size_t cap = 64, n = 0;
    uint32_t *ids = cm_malloc(cap * sizeof *ids);
#define ADD_ID(v)                                                                                  \
    do {                                                                                           \
        if (n == cap)                                                                              \
            ids = cm_realloc(ids, (cap *= 2) * sizeof *ids);                                       \
        ids[n++] = (uint32_t)(v);                                                                  \
    } while (0)
    for (size_t i = 0; i < jlen(disks); i++)
        if (ju64(jat(disks, i), "node_id"))
            ADD_ID(ju64(jat(disks, i), "node_id"));
    /* G2: all_node_sets.<role>.<disk type>.<set>.nodes; G3: all_node_sets.<disk type>.<set> */
    struct json_object *all = jget(topo, "all_node_sets");
    if (all && json_object_is_type(all, json_type_object)) {
        json_object_object_foreach(all, k1, v1)
        {
            (void)k1;
            if (!json_object_is_type(v1, json_type_object))
                continue;
            json_object_object_foreach(v1, k2, v2)
            {
                (void)k2;
                if (!json_object_is_type(v2, json_type_object))
                    continue;
                struct json_object *sets = jget(v2, "nodes") ? NULL : v2;
                if (sets == NULL) { /* G3: v2 is a node set already */
                    struct json_object *nodes = jget(v2, "nodes");
                    for (size_t i = 0; i < jlen(nodes); i++)
                        ADD_ID(json_object_get_uint64(jat(nodes, i)));
                    continue;
                }
                json_object_object_foreach(sets, k3, v3)
                {
                    (void)k3;
                    struct json_object *nodes = jget(v3, "nodes");
                    for (size_t i = 0; i < jlen(nodes); i++)
                        ADD_ID(json_object_get_uint64(jat(nodes, i)));
                }
            }
        }
    }
#undef ADD_ID
    json_object_put(topo);
    /* ascending, unique */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    *out = json_object_new_array();
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && ids[i] == ids[i - 1])
            continue;
        char path[64];
        snprintf(path, sizeof path, "/node/info?node_id=%" PRIu32, ids[i]);
        struct json_object *info;
        rc = cmctl_call_json(c, "GET", path, NULL, &info);
        if (rc == 0 && info)
            json_object_array_add(*out, info);
    }
    free(ids);
    return rc;
}

static bool str_in(struct json_object *arr, const char *s)
{
    for (size_t i = 0; i < jlen(arr); i++)
        if (strcmp(json_object_get_string(jat(arr, i)), s) == 0)
            return true;
    return false;
}

/* The lease host of a service's URL (http://ip:port -> ip), as the lease token names it. */
static void host_ip(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, ":/");
    snprintf(out, cap, "%.*s", (int)n, p);
}

/* Leases: /volume/allocated/list for every lease host and every code mode of an active
 * volume. */
static int rd_leases(struct cmctl *c, struct mig_state *s, const char *extra_hosts,
                     struct json_object **out)
{
    struct json_object *hosts = json_object_new_array(), *modes = json_object_new_array();
    char ip[256];
    for (size_t i = 0; i < jlen(s->services); i++) {
        host_ip(jstr(jat(s->services, i), "host"), ip, sizeof ip);
        if (ip[0] && !str_in(hosts, ip))
            json_object_array_add(hosts, json_object_new_string(ip));
    }
    if (extra_hosts) {
        char *copy = cm_strdup(extra_hosts), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            host_ip(t, ip, sizeof ip);
            if (ip[0] && !str_in(hosts, ip))
                json_object_array_add(hosts, json_object_new_string(ip));
        }
        free(copy);
    }
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        struct json_object *v = jat(s->volumes, i);
        char m[8];
        snprintf(m, sizeof m, "%u", (unsigned)ju64(v, "code_mode"));
        if (ju64(v, "status") == CM_VOL_ACTIVE && !str_in(modes, m))
            json_object_array_add(modes, json_object_new_string(m));
    }
    int rc = 0;
    *out = json_object_new_array();
    for (size_t h = 0; h < jlen(hosts) && rc == 0; h++)
        for (size_t m = 0; m < jlen(modes) && rc == 0; m++) {
            const char *host = json_object_get_string(jat(hosts, h));
            char *eh = cmctl_escape(host), path[512];
            snprintf(path, sizeof path, "/volume/allocated/list?host=%s&code_mode=%s", eh,
                     json_object_get_string(jat(modes, m)));
            free(eh);
            struct json_object *o;
            if ((rc = cmctl_call_json(c, "GET", path, NULL, &o)) != 0)
                break;
            struct json_object *arr = jget(o, "alloc_volume_infos");
            for (size_t i = 0; i < jlen(arr); i++) {
                struct json_object *v = jat(arr, i), *l = json_object_new_object();
                json_object_object_add(l, "host", json_object_new_string(host));
                json_object_object_add(l, "code_mode",
                                       json_object_new_uint64(ju64(v, "code_mode")));
                json_object_object_add(l, "vid", json_object_new_uint64(ju64(v, "vid")));
                json_object_object_add(l, "token", json_object_new_string(jstr(v, "token")));
                json_object_object_add(l, "expire_time",
                                       json_object_new_int64(ji64(v, "expire_time")));
                json_object_array_add(*out, l);
            }
            json_object_put(o);
        }
    json_object_put(hosts);
    json_object_put(modes);
    return rc;
}

/* The compact flags of the units of unhealthy volumes (health comes from compacting units and
 * bad disks; only /volume/unit/list shows the flag), one request per disk they use. */
static int rd_units(struct cmctl *c, struct json_object *volumes, struct json_object **out)
{
    struct json_object *disks = json_object_new_object();
    for (size_t i = 0; i < jlen(volumes); i++) {
        struct json_object *v = jat(volumes, i), *units = jget(v, "units");
        if (ji64(v, "health_score") >= 0)
            continue;
        for (size_t u = 0; u < jlen(units); u++) {
            char k[16];
            snprintf(k, sizeof k, "%" PRIu64, ju64(jat(units, u), "disk_id"));
            json_object_object_add(disks, k, NULL);
        }
    }
    int rc = 0;
    *out = json_object_new_object();
    json_object_object_foreach(disks, id, unused)
    {
        (void)unused;
        char path[64];
        snprintf(path, sizeof path, "/volume/unit/list?disk_id=%s", id);
        struct json_object *o;
        if ((rc = cmctl_call_json(c, "GET", path, NULL, &o)) != 0)
            break;
        struct json_object *arr = jget(o, "volume_unit_infos");
        for (size_t i = 0; i < jlen(arr); i++) {
            char k[24];
            snprintf(k, sizeof k, "%" PRIu64, ju64(jat(arr, i), "vuid"));
            if (jbool(jat(arr, i), "compact"))
                json_object_object_add(*out, k, json_object_new_boolean(true));
        }
        json_object_put(o);
    }
    json_object_put(disks);
    return rc;
}

/* The source must be a clustermgr with a leader. */
static int check_source(struct cmctl *c, size_t *n_disks, size_t *n_volumes)
{
    struct cmctl_resp r;
    int rc = cmctl_request(c, "GET", "/stat", NULL, NULL, 0, &r);
    if (rc)
        return rc;
    char err[256];
    struct json_object *o = r.status == 200 && r.body.len
                                ? cm_json_parse(r.body.data, r.body.len, false, err, sizeof err)
                                : NULL;
    struct json_object *rs = jget(o, "raft_status");
    if (o == NULL || rs == NULL || jget(o, "leader_host") == NULL) {
        rc = cmctl_fail(CMCTL_ERR_ANSWER,
                        "%s is not a clustermgr: GET /stat answered %ld without a raft_status "
                        "and leader_host",
                        r.host, r.status);
    } else if (jstr(o, "leader_host")[0] == '\0' || ju64(rs, "leader") == 0) {
        rc = cmctl_fail(CMCTL_ERR_UNAVAILABLE,
                        "%s has no leader (GET /stat: leader_host empty); migrate reads a "
                        "cluster that has a quorum",
                        r.host);
    } else {
        struct json_object *vs = jget(o, "volume_stat"), *ss = jget(o, "space_stat");
        *n_volumes = (size_t)ju64(vs, "total_volume");
        *n_disks = (size_t)ju64(ss, "total_disk");
        fprintf(stderr, "cmctl: %s, leader %s\n", r.host, jstr(o, "leader_host"));
        /* ask the host that answered first from now on */
        for (int i = 1; i < c->n_hosts; i++)
            if (strcmp(c->hosts[i], r.host) == 0) {
                char *t = c->hosts[0];
                c->hosts[0] = c->hosts[i];
                c->hosts[i] = t;
            }
    }
    json_object_put(o);
    cmctl_resp_free(&r);
    return rc;
}

static const char *const disk_shape[] = {"disk_id", "status",  "readonly", "host",
                                         "path",    "node_id", NULL};
static const char *const vol_shape[] = {"vid", "units", NULL};
static const char *const svc_shape[] = {"name", "host", NULL};
static const char *const cfg_shape[] = {NULL}; /* a map: its whole text */
static const char *const id_shape[] = {NULL};
static const char *const kv_shape[] = {"key", "value", NULL};

/* Read every kind of one cluster. */
static int read_cluster(struct cmctl *c, const char *lease_hosts, struct mig_state *s)
{
    size_t n_disks = 0, n_volumes = 0;
    int rc = check_source(c, &n_disks, &n_volumes);
    if (rc == 0)
        rc = read_stable(c, "disks", rd_disks, disk_shape, n_disks, &s->disks);
    if (rc == 0)
        rc = read_stable(c, "dropping disks", rd_dropping, id_shape, 0, &s->dropping);
    if (rc == 0) {
        rc = rd_nodes_of(c, s->disks, &s->nodes);
        if (rc == CMCTL_ERR_NOT_FOUND) {
            fprintf(stderr, "cmctl: nodes: GET /topo/info answered 404: a release before "
                            "CubeFS v3.5.1, disks without nodes; going on\n");
            s->nodes = NULL;
            rc = 0;
        } else if (rc == 0)
            fprintf(stderr, "cmctl: nodes: %zu\n", jlen(s->nodes));
    }
    if (rc == 0)
        rc = read_stable(c, "volumes", rd_volumes, vol_shape, n_volumes, &s->volumes);
    if (rc == 0)
        rc = rd_units(c, s->volumes, &s->units);
    if (rc == 0)
        rc = read_stable(c, "services", rd_services, svc_shape, 0, &s->services);
    if (rc == 0)
        rc = rd_leases(c, s, lease_hosts, &s->leases);
    if (rc == 0)
        fprintf(stderr, "cmctl: leases: %zu\n", jlen(s->leases));
    if (rc == 0)
        rc = read_stable(c, "config", rd_configs, cfg_shape, 0, &s->configs);
    if (rc == 0) {
        rc = read_stable(c, "kv", rd_kvs, kv_shape, 0, &s->kvs);
        if (rc == CMCTL_ERR_NOT_FOUND) {
            fprintf(stderr, "cmctl: kv: GET /kv/list answered 404: a release without the KV "
                            "store; going on\n");
            s->kvs = NULL;
            rc = 0;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* building the new cluster's state with the state machine                                  */

struct builder {
    struct cm_fsm *fsm;
    struct cm_config cfg;
    int64_t ts;
    uint64_t req_id;
    int code;       /* of the last applied command */
    uint64_t v0;    /* res->v[0] */
    size_t granted; /* vids granted by the last alloc */
    char what[160]; /* the command being applied, for messages */
};

static void on_applied(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    struct builder *b = arg;
    b->code = res->code;
    b->v0 = res->v[0];
    b->granted = 0;
    if (cmd->module == CM_MOD_VOLUME && cmd->op == CM_VOL_OP_ALLOC && res->data)
        b->granted = ((struct cm_vol_granted *)res->data)->n;
}

/* Apply one command; -1 (with a message) when it changed nothing or was refused. */
static int apply(struct builder *b, uint8_t module, uint8_t op, struct cm_buf *p)
{
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = ++b->req_id,
                       .ts_ns = b->ts,
                       .payload = (const uint8_t *)p->data,
                       .len = p->len};
    c.version = cm_fsm_cmd_version(&c);
    uint64_t rejected = b->fsm->n_rejected;
    b->code = 0;
    int rc = cm_fsm_apply_cmd(b->fsm, &c);
    p->len = 0;
    if (rc != 0 || b->fsm->n_rejected != rejected || b->code != 0) {
        cmctl_fail(0, "%s: the state machine refused it (code %d)", b->what, b->code);
        return -1;
    }
    return 0;
}

static void scope_to(struct builder *b, const char *name, uint64_t value, struct cm_buf *p)
{
    uint64_t cur = cm_scope_current(b->fsm, name);
    if (value <= cur)
        return;
    cm_scope_reserve(b->fsm, name, value - cur, p);
    snprintf(b->what, sizeof b->what, "scope %s to %" PRIu64, name, value);
    apply(b, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, p);
}

static int config_for(struct mig_state *s, struct cm_config *cfg)
{
    /* the IDCs the disks and nodes name, the source's chunk size */
    struct json_object *idcs = json_object_new_array();
    for (size_t i = 0; i < jlen(s->disks); i++)
        if (jstr(jat(s->disks, i), "idc")[0] && !str_in(idcs, jstr(jat(s->disks, i), "idc")))
            json_object_array_add(idcs, json_object_new_string(jstr(jat(s->disks, i), "idc")));
    for (size_t i = 0; i < jlen(s->nodes); i++)
        if (jstr(jat(s->nodes, i), "idc")[0] && !str_in(idcs, jstr(jat(s->nodes, i), "idc")))
            json_object_array_add(idcs, json_object_new_string(jstr(jat(s->nodes, i), "idc")));
    if (jlen(idcs) == 0)
        json_object_array_add(idcs, json_object_new_string("z0"));
    uint64_t chunk = strtoull(jstr(s->configs, "volume_chunk_size"), NULL, 10);
    if (chunk == 0)
        chunk = 16777216;
    /* code mode policies: the source's, else one per code mode its volumes use */
    struct json_object *pol = cm_json_parse(jstr(s->configs, "code_mode"),
                                            strlen(jstr(s->configs, "code_mode")), false, NULL, 0);
    if (pol == NULL || jlen(pol) == 0) {
        json_object_put(pol);
        pol = json_object_new_array();
        struct json_object *seen = json_object_new_array();
        for (size_t i = 0; i < jlen(s->volumes) || jlen(seen) == 0; i++) {
            const struct cm_codemode *cm = cm_codemode_by_id(
                i < jlen(s->volumes) ? (unsigned)ju64(jat(s->volumes, i), "code_mode")
                                     : 11u /* EC3P3 */);
            if (cm == NULL || str_in(seen, cm->name))
                continue;
            json_object_array_add(seen, json_object_new_string(cm->name));
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "mode_name", json_object_new_string(cm->name));
            json_object_object_add(o, "enable", json_object_new_boolean(true));
            json_object_array_add(pol, o);
        }
        json_object_put(seen);
    }
    char *text = NULL;
    int len = asprintf(&text,
                       "{\"bind_addr\":\"127.0.0.1:9998\",\"cluster_id\":1,\"idc\":%s,"
                       "\"code_mode_policies\":%s,"
                       "\"chunk_size\":%" PRIu64 ",\"cluster_config\":{},"
                       "\"disk_mgr_config\":{\"heartbeat_expire_interval_s\":%d},"
                       "\"raft_config\":{\"server_config\":{\"nodeId\":1,\"listen_port\":10110,"
                       "\"raft_wal_dir\":\"/nonexistent\",\"peers\":{\"1\":\"127.0.0.1:10110\"}}}}",
                       json_object_to_json_string_ext(idcs, JSON_C_TO_STRING_PLAIN),
                       json_object_to_json_string_ext(pol, JSON_C_TO_STRING_PLAIN), chunk,
                       MIG_DISK_LEASE_S);
    json_object_put(idcs);
    json_object_put(pol);
    char err[512];
    int rc = len < 0 || cm_config_parse(text, (size_t)len, "migrate", cfg, err, sizeof err) != 0;
    free(text);
    if (rc)
        return cmctl_fail(CMCTL_ERR_LOCAL, "cannot make the build config: %s", err);
    return 0;
}

/* A disk type or role sent as a number or as its name. */
static uint8_t type_of(struct json_object *o, const char *k, int (*parse)(const char *))
{
    struct json_object *v = jget(o, k);
    if (v && json_object_is_type(v, json_type_string)) {
        int t = parse(json_object_get_string(v));
        return t > 0 ? (uint8_t)t : 0;
    }
    return (uint8_t)ju64(o, k);
}

/* Nodes keep their ids; each asks for its source node set when that set exists already (else
 * apply chooses, as for the source's first node of a set). `same_set` counts the nodes whose
 * set came out as on the source. */
static int build_nodes(struct builder *b, struct mig_state *s, struct cm_buf *p, size_t *dropped,
                       size_t *same_set)
{
    for (size_t i = 0; i < jlen(s->nodes); i++) {
        struct json_object *o = jat(s->nodes, i);
        uint32_t id = (uint32_t)ju64(o, "node_id");
        struct cm_node_info n = {.node_id = id,
                                 .cluster_id = (uint32_t)ju64(o, "cluster_id"),
                                 .disk_type = type_of(o, "disk_type", cm_disk_type_parse),
                                 .role = type_of(o, "role", cm_node_role_parse),
                                 .idc = jstr(o, "idc"),
                                 .rack = jstr(o, "rack"),
                                 .host = jstr(o, "host")};
        if (n.role == 0)
            n.role = CM_NODE_ROLE_BLOBNODE;
        /* apply takes the node id as the nodeid scope + 1 */
        scope_to(b, "nodeid", id - 1, p);
        struct cm_node_caps caps;
        cm_node_caps_from_config(&b->cfg, n.disk_type, &caps);
        uint32_t want = (uint32_t)ju64(o, "node_set_id");
        bool exists = want > 1 && want <= cm_node_cur_set_id(b->fsm) &&
                      cm_node_set_exists(b->fsm, want, n.disk_type);
        cm_node_enc_add(p, &n, exists ? want : 0, &caps);
        snprintf(b->what, sizeof b->what, "node %" PRIu32 " (%s)", id, n.host);
        if (apply(b, CM_MOD_NODE, CM_NODE_OP_ADD, p) != 0)
            return CMCTL_ERR_ANSWER;
        if (b->v0 != id)
            return cmctl_fail(CMCTL_ERR_ANSWER,
                              "node %" PRIu32 " (%s) would get id %" PRIu64 " (same host and "
                              "disk type as an earlier node?)",
                              id, n.host, b->v0);
        *dropped += ju64(o, "status") == CM_NODE_DROPPED;
        struct cm_node_info got;
        *same_set += cm_node_get(b->fsm, id, &got) && got.node_set_id == want;
    }
    return 0;
}

static int build_disks(struct builder *b, struct mig_state *s, struct cm_buf *p, size_t *same_set)
{
    for (size_t i = 0; i < jlen(s->disks); i++) {
        struct json_object *o = jat(s->disks, i);
        struct cm_disk_info d = {.disk_id = (uint32_t)ju64(o, "disk_id"),
                                 .cluster_id = (uint32_t)ju64(o, "cluster_id"),
                                 .idc = jstr(o, "idc"),
                                 .rack = jstr(o, "rack"),
                                 .host = jstr(o, "host"),
                                 .path = jstr(o, "path"),
                                 .create_time = jstr(o, "create_time"),
                                 .last_update_time = jstr(o, "last_update_time"),
                                 .status = (uint8_t)ju64(o, "status"),
                                 .readonly = jbool(o, "readonly"),
                                 .used = ji64(o, "used"),
                                 .free = ji64(o, "free"),
                                 .size = ji64(o, "size"),
                                 .used_chunk_cnt = ji64(o, "used_chunk_cnt")};
        cm_disk_enc_add(p, &d, &b->cfg);
        uint32_t node = (uint32_t)ju64(o, "node_id");
        if (node) {
            uint8_t type = 0;
            for (size_t k = 0; k < jlen(s->nodes); k++)
                if (ju64(jat(s->nodes, k), "node_id") == node)
                    type = type_of(jat(s->nodes, k), "disk_type", cm_disk_type_parse);
            struct cm_node_caps caps;
            cm_node_caps_from_config(&b->cfg, type, &caps);
            cm_disk_enc_add_node(p, node, &caps);
        }
        snprintf(b->what, sizeof b->what, "disk %" PRIu32 " (%s%s)", d.disk_id, d.host, d.path);
        if (apply(b, CM_MOD_DISK, CM_DISK_OP_ADD, p) != 0)
            return CMCTL_ERR_ANSWER;
        uint32_t got_node, got_set;
        cm_node_of_disk(b->fsm, d.disk_id, &got_node, &got_set, NULL);
        *same_set += got_set == (uint32_t)ju64(o, "disk_set_id");
        /* the chunk counters as the source has them (<= 0: the add's computed ones stay) */
        cm_disk_enc_admin_update(p, d.disk_id, 0, ji64(o, "max_chunk_cnt"),
                                 ji64(o, "free_chunk_cnt"));
        if (apply(b, CM_MOD_DISK, CM_DISK_OP_ADMIN_UPDATE, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    for (size_t i = 0; i < jlen(s->dropping); i++) {
        uint32_t id = (uint32_t)json_object_get_uint64(jat(s->dropping, i));
        cm_disk_enc_id(p, id);
        snprintf(b->what, sizeof b->what, "dropping flag of disk %" PRIu32, id);
        if (apply(b, CM_MOD_DISK, CM_DISK_OP_DROP, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    /* disks whose units count as unhealthy: not available (status, readonly, dropping) */
    size_t nbad = 0;
    struct cm_disk_mark *marks = cm_calloc(jlen(s->disks) + 1, sizeof *marks);
    for (size_t i = 0; i < jlen(s->disks); i++) {
        struct json_object *o = jat(s->disks, i);
        uint32_t id = (uint32_t)ju64(o, "disk_id");
        struct cm_disk_info d;
        if (cm_disk_get(b->fsm, id, &d) && (d.status != CM_DISK_NORMAL || d.readonly || d.dropping))
            marks[nbad++] = (struct cm_disk_mark){id, true};
    }
    int rc = 0;
    if (nbad) {
        cm_volume_enc_disk_health(p, marks, nbad);
        snprintf(b->what, sizeof b->what, "health of %zu unavailable disks", nbad);
        rc = apply(b, CM_MOD_VOLUME, CM_VOL_OP_DISK_HEALTH, p) ? CMCTL_ERR_ANSWER : 0;
    }
    free(marks);
    return rc;
}

static int drop_nodes(struct builder *b, struct mig_state *s, struct cm_buf *p)
{
    for (size_t i = 0; i < jlen(s->nodes); i++) {
        struct json_object *o = jat(s->nodes, i);
        if (ju64(o, "status") != CM_NODE_DROPPED)
            continue;
        cm_node_enc_drop(p, (uint32_t)ju64(o, "node_id"));
        snprintf(b->what, sizeof b->what, "drop of node %" PRIu64, ju64(o, "node_id"));
        if (apply(b, CM_MOD_NODE, CM_NODE_OP_DROP, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    return 0;
}

struct vol_summary {
    size_t volumes, units, active, leased, locked, unlocking, compacting;
};

static int build_volume(struct builder *b, struct mig_state *s, struct json_object *v,
                        struct cm_buf *p, struct vol_summary *sum)
{
    uint32_t vid = (uint32_t)ju64(v, "vid");
    uint8_t mode = (uint8_t)ju64(v, "code_mode");
    struct json_object *units = jget(v, "units");
    unsigned n = (unsigned)jlen(units);
    const struct cm_codemode *cm = cm_codemode_by_id(mode);
    if (n == 0 || n > CM_VOL_UNITS_MAX || cm == NULL)
        return cmctl_fail(CMCTL_ERR_ANSWER, "volume %" PRIu32 ": code mode %u with %u units", vid,
                          mode, n);
    struct cm_vol_place place[CM_VOL_UNITS_MAX];
    uint32_t epochs[CM_VOL_UNITS_MAX];
    uint64_t vuids[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < n; i++) {
        vuids[i] = ju64(jat(units, i), "vuid");
        epochs[i] = cm_vuid_epoch(vuids[i]);
        place[i] = (struct cm_vol_place){(uint32_t)ju64(jat(units, i), "disk_id"), epochs[i]};
    }
    snprintf(b->what, sizeof b->what, "volume %" PRIu32, vid);
    cm_volume_enc_pending(p, vid, mode, b->cfg.chunk_size, place, n);
    if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_PENDING, p) != 0)
        return CMCTL_ERR_ANSWER;
    cm_volume_enc_resolve(p, vid, epochs, n);
    if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_COMMIT, p) != 0)
        return CMCTL_ERR_ANSWER;
    for (unsigned i = 0; i < n; i++) {
        uint32_t next = epochs[i] + MIG_EPOCH_MARGIN;
        cm_volume_enc_alloc_unit(p, vuids[i], next > CM_EPOCH_MAX ? CM_EPOCH_MAX : next);
        if (epochs[i] < CM_EPOCH_MAX && apply(b, CM_MOD_VOLUME, CM_VOL_OP_ALLOC_UNIT, p) != 0)
            return CMCTL_ERR_ANSWER;
        p->len = 0;
        char k[24];
        snprintf(k, sizeof k, "%" PRIu64, vuids[i]);
        if (jget(s->units, k)) {
            cm_volume_enc_set_compact(p, vuids[i], true);
            if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_SET_COMPACT, p) != 0)
                return CMCTL_ERR_ANSWER;
            sum->compacting++;
        }
    }
    /* sizes: every unit total/free/used divided over the data units, then exact values */
    uint64_t total = ju64(v, "total"), free_ = ju64(v, "free"), used = ju64(v, "used");
    unsigned data = (unsigned)cm->n;
    struct cm_chunk_rec recs[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < n; i++)
        recs[i] = (struct cm_chunk_rec){vuids[i], total / data, used / data, free_ / data};
    cm_volume_enc_chunk_report(p, recs, n);
    if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_CHUNK_REPORT, p) != 0)
        return CMCTL_ERR_ANSWER;
    struct cm_vol got;
    cm_volume_get(b->fsm, vid, &got);
    if (got.total != total || got.free != free_ || got.used != used) {
        cm_volume_enc_admin_volume(p, vid, 0, total, free_, used);
        if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_ADMIN_VOLUME, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    sum->volumes++;
    sum->units += n;
    return 0;
}

static int build_volumes(struct builder *b, struct mig_state *s, struct cm_buf *p,
                         struct vol_summary *sum)
{
    struct progress pr = {
        .kind = "volumes built", .t0_us = cm_mono_us(), .expect = jlen(s->volumes)};
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        int rc = build_volume(b, s, jat(s->volumes, i), p, sum);
        if (rc)
            return rc;
        if ((i & 1023) == 1023 || i + 1 == jlen(s->volumes))
            progress_cb(&pr, i + 1);
    }
    /* leases, as the source's leader granted them: token host and expiry */
    for (size_t i = 0; i < jlen(s->leases); i++) {
        struct json_object *l = jat(s->leases, i);
        uint32_t vid = (uint32_t)ju64(l, "vid");
        cm_volume_enc_alloc(p, (uint8_t)ju64(l, "code_mode"), jstr(l, "host"),
                            ji64(l, "expire_time"), 0, &vid, 1);
        snprintf(b->what, sizeof b->what, "lease of volume %" PRIu32 " to %s", vid,
                 jstr(l, "host"));
        if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_ALLOC, p) != 0)
            return CMCTL_ERR_ANSWER;
        if (b->granted != 1)
            return cmctl_fail(CMCTL_ERR_ANSWER, "%s: not granted", b->what);
        sum->leased++;
    }
    /* lock states: the new leader runs their tasks again (idempotent on the blobnodes) */
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        struct json_object *v = jat(s->volumes, i);
        uint32_t vid = (uint32_t)ju64(v, "vid");
        uint64_t st = ju64(v, "status");
        sum->active += st == CM_VOL_ACTIVE;
        if (st != CM_VOL_LOCK && st != CM_VOL_UNLOCKING)
            continue;
        snprintf(b->what, sizeof b->what, "lock of volume %" PRIu32, vid);
        cm_volume_enc_vid(p, vid);
        if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_LOCK, p) != 0)
            return CMCTL_ERR_ANSWER;
        if (st == CM_VOL_UNLOCKING) {
            cm_volume_enc_vid(p, vid);
            if (apply(b, CM_MOD_VOLUME, CM_VOL_OP_UNLOCK, p) != 0)
                return CMCTL_ERR_ANSWER;
        }
        sum->locked += st == CM_VOL_LOCK;
        sum->unlocking += st == CM_VOL_UNLOCKING;
    }
    return 0;
}

static int build_rest(struct builder *b, struct mig_state *s, struct cm_buf *p)
{
    for (size_t i = 0; i < jlen(s->services); i++) {
        struct json_object *o = jat(s->services, i);
        cm_service_enc_register(p, jstr(o, "name"), jstr(o, "host"), jstr(o, "idc"),
                                ju64(o, "cluster_id"), ji64(o, "timeout"));
        snprintf(b->what, sizeof b->what, "service %s %s", jstr(o, "name"), jstr(o, "host"));
        if (apply(b, CM_MOD_SERVICE, CM_SERVICE_OP_REGISTER, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    /* config: every entry but code_mode (the new cluster's own file sets it) and the keys the
     * KV store holds (from cluster version 2 on the config store is the KV store) */
    json_object_object_foreach(s->configs, key, val)
    {
        bool in_kv = false;
        for (size_t i = 0; i < jlen(s->kvs) && !in_kv; i++)
            in_kv = strcmp(jstr(jat(s->kvs, i), "key"), key) == 0;
        if (strcmp(key, "code_mode") == 0 || in_kv)
            continue;
        cm_config_enc_set(p, key, json_object_get_string(val));
        snprintf(b->what, sizeof b->what, "config %.100s", key);
        if (apply(b, CM_MOD_CONFIG, CM_CONFIG_OP_SET, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    for (size_t i = 0; i < jlen(s->kvs); i++) {
        struct json_object *o = jat(s->kvs, i);
        const char *key = jstr(o, "key"), *v64 = jstr(o, "value");
        size_t vl = strlen(v64);
        uint8_t *val = cm_malloc(vl / 4 * 3 + 4);
        long n = cm_b64_decode(v64, vl, val);
        if (n < 0) {
            free(val);
            return cmctl_fail(CMCTL_ERR_ANSWER, "kv %s: the value is not base64", key);
        }
        cm_kv_enc_set(p, key, strlen(key), val, (size_t)n);
        free(val);
        snprintf(b->what, sizeof b->what, "kv %.100s", key);
        if (apply(b, CM_MOD_KV, CM_KV_OP_SET, p) != 0)
            return CMCTL_ERR_ANSWER;
    }
    return 0;
}

/* High-water marks: one id of each allocator of the source (the only way the API tells them). */
static int read_scopes(struct cmctl *c, struct mig_state *s)
{
    struct json_object *body = json_object_new_object(), *o = NULL;
    json_object_object_add(body, "count", json_object_new_uint64(1));
    int rc = cmctl_call_json(c, "POST", "/bid/alloc", body, &o); /* takes the body */
    if (rc)
        return rc;
    s->bid_top = ju64(o, "end_bid");
    json_object_put(o);
    if ((rc = cmctl_call_json(c, "POST", "/diskid/alloc", NULL, &o)) != 0)
        return rc;
    s->diskid_top = ju64(o, "disk_id");
    json_object_put(o);
    fprintf(stderr,
            "cmctl: scopes: the source handed out bids up to %" PRIu64 ", disk ids up to "
            "%" PRIu64 "\n",
            s->bid_top, s->diskid_top);
    return 0;
}

static int parse_margin(struct cmctl *c, const char *name, uint64_t dflt, uint64_t max,
                        uint64_t *out)
{
    const char *v = cmctl_opt(c, name);
    char *e;
    *out = dflt;
    if (v == NULL)
        return 0;
    unsigned long long x = strtoull(v, &e, 10);
    if (v[0] == '\0' || v[0] == '-' || *e || x > max)
        return cmctl_fail(CMCTL_ERR_USAGE, "--%s: \"%s\" is not a number in 0..%" PRIu64, name, v,
                          max);
    *out = x;
    return 0;
}

static void use_hosts(struct cmctl *c, const char *list)
{
    char *copy = cm_strdup(list), *save = NULL;
    c->hosts = cm_calloc(strlen(list) + 1, sizeof *c->hosts);
    c->n_hosts = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            c->hosts[c->n_hosts++] = cm_strdup(t);
    free(copy);
}

static void drop_hosts(struct cmctl *c)
{
    for (int i = 0; i < c->n_hosts; i++)
        free(c->hosts[i]);
    free(c->hosts);
}

static int migrate(struct cmctl *c, const char *from, const char *out)
{
    uint64_t bid_margin, id_margin;
    int rc = parse_margin(c, "bid-margin", MIG_DEFAULT_BID_MARGIN, 1ull << 62, &bid_margin);
    if (rc ||
        (rc = parse_margin(c, "id-margin", MIG_DEFAULT_ID_MARGIN, CM_NODE_ID_MAX, &id_margin)))
        return rc;
    struct cmctl src = *c;
    use_hosts(&src, from);
    uint64_t t0 = cm_mono_us();
    struct mig_state s = {0};
    struct builder b = {.ts = cm_now_ns()};
    struct cm_buf p = {0}, snap = {0};
    bool have_cfg = false;
    rc = read_cluster(&src, cmctl_opt(c, "lease-hosts"), &s);
    if (rc == 0)
        rc = read_scopes(&src, &s);
    if (rc)
        goto out;
    double t_read = (double)(cm_mono_us() - t0) / 1e6;
    if ((rc = config_for(&s, &b.cfg)) != 0)
        goto out;
    have_cfg = true;
    cm_log_set_level(CM_LOG_ERROR);
    b.fsm = cm_fsm_new(&b.cfg, 1);
    b.fsm->on_applied = on_applied;
    b.fsm->on_applied_arg = &b;

    uint32_t max_disk = 0, max_vid = 0, max_node = 0;
    for (size_t i = 0; i < jlen(s.disks); i++)
        if (ju64(jat(s.disks, i), "disk_id") > max_disk)
            max_disk = (uint32_t)ju64(jat(s.disks, i), "disk_id");
    for (size_t i = 0; i < jlen(s.volumes); i++)
        if (ju64(jat(s.volumes, i), "vid") > max_vid)
            max_vid = (uint32_t)ju64(jat(s.volumes, i), "vid");
    for (size_t i = 0; i < jlen(s.nodes); i++)
        if (ju64(jat(s.nodes, i), "node_id") > max_node)
            max_node = (uint32_t)ju64(jat(s.nodes, i), "node_id");
    uint64_t disk_top = s.diskid_top > max_disk ? s.diskid_top : max_disk;
    if (disk_top + id_margin > CM_DISK_ID_MAX)
        id_margin = CM_DISK_ID_MAX - disk_top;
    scope_to(&b, "diskid", disk_top + id_margin, &p);
    scope_to(&b, "bid", s.bid_top + bid_margin, &p);

    size_t dropped_nodes = 0, same_nset = 0, same_dset = 0;
    struct vol_summary sum = {0};
    if ((rc = build_nodes(&b, &s, &p, &dropped_nodes, &same_nset)) != 0 ||
        (rc = build_disks(&b, &s, &p, &same_dset)) != 0 || (rc = drop_nodes(&b, &s, &p)) != 0 ||
        (rc = build_volumes(&b, &s, &p, &sum)) != 0 || (rc = build_rest(&b, &s, &p)) != 0)
        goto out;
    /* ids the new cluster hands out start above the source's, margin included */
    scope_to(&b, "vid",
             (uint64_t)max_vid + id_margin > UINT32_MAX ? UINT32_MAX : max_vid + id_margin, &p);
    if (s.nodes) /* node ids are bounded like disk ids (a dense table) */
        scope_to(&b, "nodeid",
                 (uint64_t)max_node + id_margin > CM_NODE_ID_MAX ? CM_NODE_ID_MAX
                                                                 : max_node + id_margin,
                 &p);

    cm_fsm_snapshot(b.fsm, &snap);
    if ((rc = cmctl_write_file_atomic(out, snap.data, snap.len)) != 0)
        goto out;
    fprintf(stderr,
            "cmctl: migrated in %.1f s (reading %.1f s) into %s (%zu bytes):\n"
            "  disks %zu (dropping %zu), nodes %s%zu (dropped %zu)\n"
            "  copy sets as on the source: node sets of %zu of %zu nodes, disk sets of %zu of "
            "%zu disks\n"
            "  volumes %zu with %zu units: active %zu of which %zu leases carried (the others "
            "come across idle), lock %zu, unlocking %zu, compacting units %zu\n"
            "  services %zu, config entries %zu, kv %s%zu\n"
            "  next ids: bid %" PRIu64 ", disk id %" PRIu64 ", vid %" PRIu64 "\n",
            (double)(cm_mono_us() - t0) / 1e6, t_read, out, snap.len, jlen(s.disks),
            jlen(s.dropping), s.nodes ? "" : "(no node API) ", jlen(s.nodes), dropped_nodes,
            same_nset, jlen(s.nodes), same_dset, jlen(s.disks), sum.volumes, sum.units, sum.active,
            sum.leased, sum.locked, sum.unlocking, sum.compacting, jlen(s.services),
            (size_t)json_object_object_length(s.configs), s.kvs ? "" : "(no KV API) ", jlen(s.kvs),
            cm_scope_current(b.fsm, "bid") + 1, cm_scope_current(b.fsm, "diskid") + 1,
            cm_scope_current(b.fsm, "vid") + 1);
out:
    if (rc)
        fprintf(stderr, "cmctl: nothing written to %s\n", out);
    cm_buf_free(&p);
    cm_buf_free(&snap);
    if (b.fsm)
        cm_fsm_free(b.fsm);
    if (have_cfg)
        cm_config_free(&b.cfg);
    state_free(&s);
    drop_hosts(&src);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* verify                                                                                   */

struct diffs {
    size_t n;
};

static void diff(struct diffs *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diff(struct diffs *d, const char *fmt, ...)
{
    if (++d->n > 200) {
        if (d->n == 201)
            printf("... (more differences not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Index an array by a numeric or string field. */
static struct json_object *index_by(struct json_object *arr, const char *k1, const char *k2)
{
    struct json_object *m = json_object_new_object();
    for (size_t i = 0; i < jlen(arr); i++) {
        struct json_object *o = jat(arr, i);
        char key[2200];
        snprintf(key, sizeof key, "%s%s%s", json_object_get_string(jget(o, k1)), k2 ? " " : "",
                 k2 ? jstr(o, k2) : "");
        json_object_object_add(m, key, json_object_get(o));
    }
    return m;
}

static const char *jtext(struct json_object *o, const char *k)
{
    return json_object_to_json_string_ext(jget(o, k), JSON_C_TO_STRING_PLAIN);
}

/* Compare two maps of records on `fields`; report records missing on either side. */
static void compare_maps(struct diffs *d, const char *kind, struct json_object *a,
                         struct json_object *b, const char *const *fields)
{
    json_object_object_foreach(a, key, va)
    {
        struct json_object *vb = jget(b, key);
        if (vb == NULL) {
            diff(d, "%s %s: only on the source", kind, key);
            continue;
        }
        for (const char *const *f = fields; *f; f++)
            if (strcmp(jtext(va, *f), jtext(vb, *f)) != 0)
                diff(d, "%s %s: %s %s on the source, %s on the target", kind, key, *f,
                     jtext(va, *f), jtext(vb, *f));
    }
    json_object_object_foreach(b, keyb, vb2)
    {
        (void)vb2;
        if (jget(a, keyb) == NULL)
            diff(d, "%s %s: only on the target", kind, keyb);
    }
}

static void compare_kind(struct diffs *d, const char *kind, struct json_object *a,
                         struct json_object *b, const char *k1, const char *k2,
                         const char *const *fields)
{
    struct json_object *ma = index_by(a, k1, k2), *mb = index_by(b, k1, k2);
    compare_maps(d, kind, ma, mb, fields);
    json_object_put(ma);
    json_object_put(mb);
}

/* Volume status as the comparison sees it: an active volume whose lease no lease host holds
 * is idle (its lease is not carried), unlocking is idle (a task finishing on one side). */
static void normalize_volumes(struct mig_state *s)
{
    struct json_object *leased = json_object_new_object();
    for (size_t i = 0; i < jlen(s->leases); i++) {
        char k[16];
        snprintf(k, sizeof k, "%" PRIu64, ju64(jat(s->leases, i), "vid"));
        json_object_object_add(leased, k, NULL);
    }
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        struct json_object *v = jat(s->volumes, i);
        char k[16];
        snprintf(k, sizeof k, "%" PRIu64, ju64(v, "vid"));
        uint64_t st = ju64(v, "status");
        if ((st == CM_VOL_ACTIVE && !json_object_object_get_ex(leased, k, NULL)) ||
            st == CM_VOL_UNLOCKING)
            json_object_object_add(v, "status", json_object_new_uint64(CM_VOL_IDLE));
        /* a unit's host is its disk's, compared with the disks */
        struct json_object *units = jget(v, "units");
        for (size_t u = 0; u < jlen(units); u++)
            json_object_object_del(jat(units, u), "host");
    }
    json_object_put(leased);
}

/* A source config entry that the target holds as a KV entry with the same value is not a
 * difference: from cluster version 2 on the config store is the KV store, and the target
 * raised its version after the restore. Such entries are added to the source's KV list. */
static void config_in_kv(struct mig_state *a, struct mig_state *b)
{
    struct json_object *have = index_by(a->kvs, "key", NULL);
    for (size_t i = 0; i < jlen(b->kvs); i++) {
        struct json_object *o = jat(b->kvs, i);
        const char *key = jstr(o, "key"),
                   *val = jstr(jget(a->configs, key) ? a->configs : NULL, key);
        if (jget(have, key) || jget(a->configs, key) == NULL)
            continue;
        char *enc = cm_malloc(strlen(val) / 3 * 4 + 8);
        enc[cm_b64_encode(val, strlen(val), enc)] = '\0';
        if (strcmp(enc, jstr(o, "value")) == 0)
            json_object_array_add(a->kvs, json_object_get(o));
        free(enc);
    }
    json_object_put(have);
}

static int verify(struct cmctl *c, const char *from, const char *to)
{
    struct cmctl ca = *c, cb = *c;
    use_hosts(&ca, from);
    use_hosts(&cb, to);
    struct mig_state a = {0}, b = {0};
    const char *lh = cmctl_opt(c, "lease-hosts");
    fprintf(stderr, "cmctl: reading the source\n");
    int rc = read_cluster(&ca, lh, &a);
    if (rc == 0) {
        fprintf(stderr, "cmctl: reading the target\n");
        rc = read_cluster(&cb, lh, &b);
    }
    if (rc)
        goto out;
    struct diffs d = {0};
    static const char *const disk_f[] = {
        "cluster_id",       "idc",     "rack", "host", "path", "status", "readonly", "create_time",
        "last_update_time", "node_id", NULL};
    compare_kind(&d, "disk", a.disks, b.disks, "disk_id", NULL, disk_f);
    {
        struct json_object *da = json_object_new_array(), *db = json_object_new_array();
        for (size_t i = 0; i < jlen(a.dropping); i++) {
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_get(jat(a.dropping, i)));
            json_object_array_add(da, o);
        }
        for (size_t i = 0; i < jlen(b.dropping); i++) {
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_get(jat(b.dropping, i)));
            json_object_array_add(db, o);
        }
        static const char *const none[] = {NULL};
        compare_kind(&d, "dropping disk", da, db, "id", NULL, none);
        json_object_put(da);
        json_object_put(db);
    }
    if (a.nodes && b.nodes) {
        static const char *const node_f[] = {"cluster_id", "disk_type", "role", "status",
                                             "idc",        "rack",      "host", NULL};
        compare_kind(&d, "node", a.nodes, b.nodes, "node_id", NULL, node_f);
    } else if (a.nodes && jlen(a.nodes))
        diff(&d, "nodes: the source has %zu, the target no node API", jlen(a.nodes));
    normalize_volumes(&a);
    normalize_volumes(&b);
    static const char *const vol_f[] = {
        "code_mode", "status", "health_score", "total", "create_by_node_id", "units", NULL};
    compare_kind(&d, "volume", a.volumes, b.volumes, "vid", NULL, vol_f);
    static const char *const lease_f[] = {"code_mode", "token", "expire_time", NULL};
    compare_kind(&d, "lease", a.leases, b.leases, "vid", "host", lease_f);
    static const char *const svc_f[] = {"idc", "cluster_id", "timeout", NULL};
    compare_kind(&d, "service", a.services, b.services, "name", "host", svc_f);
    json_object_object_foreach(a.configs, key, val)
    {
        struct json_object *vb = jget(b.configs, key);
        if (strcmp(key, "code_mode") == 0)
            continue;
        if (vb == NULL)
            diff(&d, "config %s: only on the source", key);
        else if (strcmp(json_object_get_string(val), json_object_get_string(vb)) != 0)
            diff(&d, "config %s: %s on the source, %s on the target", key,
                 json_object_get_string(val), json_object_get_string(vb));
    }
    if (a.kvs && b.kvs)
        config_in_kv(&a, &b);
    if (a.kvs) {
        static const char *const kv_f[] = {"value", NULL};
        if (b.kvs)
            compare_kind(&d, "kv", a.kvs, b.kvs, "key", NULL, kv_f);
        else if (jlen(a.kvs))
            diff(&d, "kv: the source has %zu keys, the target no KV API", jlen(a.kvs));
    }
    printf("%zu difference%s: disks %zu, nodes %zu, volumes %zu, leases %zu, services %zu, "
           "config %zu, kv %zu on the source\n",
           d.n, d.n == 1 ? "" : "s", jlen(a.disks), jlen(a.nodes), jlen(a.volumes), jlen(a.leases),
           jlen(a.services), (size_t)json_object_object_length(a.configs), jlen(a.kvs));
    rc = d.n ? CMCTL_ERR_ANSWER : 0;
out:
    state_free(&a);
    state_free(&b);
    drop_hosts(&ca);
    drop_hosts(&cb);
    return rc;
}

int cmctl_migrate(struct cmctl *c)
{
    const char *from = cmctl_opt(c, "from"), *out = cmctl_opt(c, "out"), *to = cmctl_opt(c, "to");
    if (from == NULL || from[0] == '\0')
        return cmctl_fail(CMCTL_ERR_USAGE, "migrate: --from <host,...> is required");
    if (cmctl_flag(c, "verify")) {
        if (to == NULL || to[0] == '\0')
            return cmctl_fail(CMCTL_ERR_USAGE, "migrate --verify: --to <host,...> is required");
        return verify(c, from, to);
    }
    if (out == NULL || out[0] == '\0')
        return cmctl_fail(CMCTL_ERR_USAGE, "migrate: --out <file> is required");
    return migrate(c, from, out);
}
