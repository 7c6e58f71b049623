/*
 * cmctl migrate, shared by its parts: what is read from one cluster (migrate_read.c), the state
 * built from it (migrate.c) and the comparison of two clusters (migrate_verify.c).
 */
#ifndef CMCTL_MIGRATE_H
#define CMCTL_MIGRATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmctl.h"

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

/* Read every kind of the cluster `c` asks (each until two reads agree), the leases of the
 * registered services' hosts and of `lease_hosts` (comma separated, may be NULL). */
int mig_read_cluster(struct cmctl *c, const char *lease_hosts, struct mig_state *s);
/* The source's bid and disk id high-water marks: one id of each allocator. */
int mig_read_scopes(struct cmctl *c, struct mig_state *s);
void mig_state_free(struct mig_state *s);

/* Point `c` at the hosts of a comma-separated list (its own copy); drop them again. */
void mig_use_hosts(struct cmctl *c, const char *list);
void mig_drop_hosts(struct cmctl *c);

/* Progress of a kind on stderr: count, rate and time left, at most once a second. */
struct mig_progress {
    const char *kind;
    uint64_t t0_us, last_us;
    size_t expect; /* 0: unknown */
    /* the shape pass of read_stable: list readers keep nothing and append each item's shape */
    const char *const *fields;
    struct cm_buf *shape;
};
void mig_progress_cb(void *arg, size_t n);

/* Whether the array of strings `arr` holds `s`. */
bool mig_str_in(struct json_object *arr, const char *s);

/* migrate --verify: compare two clusters kind by kind; 0 only when they agree. */
int mig_verify(struct cmctl *c, const char *from, const char *to);

/* Small JSON getters: absent or mistyped fields read as 0 / "". */

static inline struct json_object *jget(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}
static inline uint64_t ju64(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v ? json_object_get_uint64(v) : 0;
}
static inline int64_t ji64(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v ? json_object_get_int64(v) : 0;
}
static inline const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    const char *s = v && !json_object_is_type(v, json_type_null) ? json_object_get_string(v) : "";
    return s ? s : "";
}
static inline bool jbool(struct json_object *o, const char *k)
{
    struct json_object *v = jget(o, k);
    return v && json_object_get_boolean(v);
}
static inline size_t jlen(struct json_object *a)
{
    return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}
static inline struct json_object *jat(struct json_object *a, size_t i)
{
    return json_object_array_get_idx(a, i);
}

#endif
