/*
 * cmctl migrate: reading a cluster through its public HTTP API (either API generation, the
 * reference's or ours). A kind is read, then read again for its shape only (ids and what the
 * cutover must not lose); when the two differ it is read again, at most MIG_ATTEMPTS times, then
 * refused. Only one copy of a kind is held. Progress goes to stderr.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/fsm/mod_volume.h"
#include "../../src/util/json.h"
#include "../../src/util/timeutil.h"
#include "migrate.h"

#define MIG_ATTEMPTS 3

void mig_state_free(struct mig_state *s)
{
    struct json_object **all[] = {&s->disks,  &s->dropping, &s->nodes,   &s->volumes, &s->units,
                                  &s->leases, &s->services, &s->configs, &s->kvs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        json_object_put(*all[i]);
        *all[i] = NULL;
    }
}

void mig_progress_cb(void *arg, size_t n)
{
    struct mig_progress *p = arg;
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

typedef int (*read_fn)(struct cmctl *c, struct mig_progress *p, struct json_object **out);

/* One read of a kind: the whole of it (shape == NULL), or only its shape into `shape`. */
static int read_once(struct cmctl *c, const char *kind, read_fn fn, const char *const *fields,
                     size_t expect, struct cm_buf *shape, struct json_object **out)
{
    struct mig_progress p = {kind, cm_mono_us(), 0, expect, fields, shape};
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
    struct mig_progress *p = arg;
    for (size_t i = 0; p->shape && i < jlen(page); i++)
        shape_add(p->shape, jat(page, i), p->fields);
    mig_progress_cb(p, total);
}

static int read_list(struct cmctl *c, struct mig_progress *p, const char *base, const char *items,
                     const char *query, struct json_object **out)
{
    *out = p->shape ? NULL : json_object_new_array();
    return cmctl_list_pages(c, base, items, query, *out, on_page, p);
}

static int rd_disks(struct cmctl *c, struct mig_progress *p, struct json_object **out)
{
    return read_list(c, p, "/disk/list", "disks", "count=200", out);
}

static int rd_volumes(struct cmctl *c, struct mig_progress *p, struct json_object **out)
{
    return read_list(c, p, "/volume/list", "volumes", "count=500", out);
}

static int rd_dropping(struct cmctl *c, struct mig_progress *p, struct json_object **out)
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

static int rd_services(struct cmctl *c, struct mig_progress *p, struct json_object **out)
{
    (void)p;
    int rc = get_field(c, "/service/list", "nodes", out);
    if (rc == 0 && !json_object_is_type(*out, json_type_array)) { /* "nodes":null: none */
        json_object_put(*out);
        *out = json_object_new_array();
    }
    return rc;
}

static int rd_configs(struct cmctl *c, struct mig_progress *p, struct json_object **out)
{
    (void)p;
    int rc = get_field(c, "/config/list", "configs", out);
    if (rc == 0 && !json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = json_object_new_object();
    }
    return rc;
}

static int rd_kvs(struct cmctl *c, struct mig_progress *p, struct json_object **out)
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

bool mig_str_in(struct json_object *arr, const char *s)
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
        if (ip[0] && !mig_str_in(hosts, ip))
            json_object_array_add(hosts, json_object_new_string(ip));
    }
    if (extra_hosts) {
        char *copy = cm_strdup(extra_hosts), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            host_ip(t, ip, sizeof ip);
            if (ip[0] && !mig_str_in(hosts, ip))
                json_object_array_add(hosts, json_object_new_string(ip));
        }
        free(copy);
    }
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        struct json_object *v = jat(s->volumes, i);
        char m[8];
        snprintf(m, sizeof m, "%u", (unsigned)ju64(v, "code_mode"));
        if (ju64(v, "status") == CM_VOL_ACTIVE && !mig_str_in(modes, m))
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
int mig_read_cluster(struct cmctl *c, const char *lease_hosts, struct mig_state *s)
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

/* High-water marks: one id of each allocator of the source (the only way the API tells them). */
int mig_read_scopes(struct cmctl *c, struct mig_state *s)
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

void mig_use_hosts(struct cmctl *c, const char *list)
{
    char *copy = cm_strdup(list), *save = NULL;
    c->hosts = cm_calloc(strlen(list) + 1, sizeof *c->hosts);
    c->n_hosts = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            c->hosts[c->n_hosts++] = cm_strdup(t);
    free(copy);
}

void mig_drop_hosts(struct cmctl *c)
{
    for (int i = 0; i < c->n_hosts; i++)
        free(c->hosts[i]);
    free(c->hosts);
}
