/*
 * cmctl migrate --verify: read two clusters with the reader of migrate and compare them kind by
 * kind. What is compared and what is ignored on purpose (and why) is the table "What --verify
 * compares" of docs/operations.md; keep the two in step.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/fsm/mod_volume.h"
#include "../../src/util/base64.h"
#include "migrate.h"

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

int mig_verify(struct cmctl *c, const char *from, const char *to)
{
    struct cmctl ca = *c, cb = *c;
    mig_use_hosts(&ca, from);
    mig_use_hosts(&cb, to);
    struct mig_state a = {0}, b = {0};
    const char *lh = cmctl_opt(c, "lease-hosts");
    fprintf(stderr, "cmctl: reading the source\n");
    int rc = mig_read_cluster(&ca, lh, &a);
    if (rc == 0) {
        fprintf(stderr, "cmctl: reading the target\n");
        rc = mig_read_cluster(&cb, lh, &b);
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
    mig_state_free(&a);
    mig_state_free(&b);
    mig_drop_hosts(&ca);
    mig_drop_hosts(&cb);
    return rc;
}
