/* Config module; see mod_config.h. From cluster version 2 on the values live in the KV module's
 * tree; at version 1 they are kept apart, as the first format keeps them. */
#include "mod_config.h"

#include <stdlib.h>
#include <string.h>

#include "../util/buf.h"
#include "../util/codec.h"
#include "../util/log.h"
#include "../util/map.h"
#include "codes.h"
#include "mod_cluster.h"
#include "mod_kv.h"

/* Entries of a config snapshot section written by an older node, held from snap_load until
 * after_load moves them into the KV tree. Empty otherwise. */
struct legacy {
    char *key;
    char *val;
    size_t klen, vlen;
};

struct config_state {
    struct cm_fsm *fsm;
    struct cm_smap overrides; /* cluster version 1: key -> malloc'd value (format 1) */
    struct legacy *legacy;
    size_t n_legacy;
};

/* The first format kept config values apart from the KV store; the one store is format 2. */
static bool one_store(struct cm_fsm *fsm)
{
    return cm_cluster_version(fsm) >= 2;
}

static void put_override(struct config_state *s, const char *key, char *value)
{
    free(cm_smap_put(&s->overrides, key, value));
}

static void drop_overrides(struct config_state *s)
{
    size_t it = 0;
    void *v;
    while (cm_smap_next(&s->overrides, &it, NULL, &v))
        free(v);
    cm_smap_free(&s->overrides);
    cm_smap_init(&s->overrides);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted keys of the overrides (pointers owned by the map). */
static const char **sorted_keys(struct config_state *s, size_t *n)
{
    const char **keys = cm_malloc((s->overrides.n + 1) * sizeof *keys);
    size_t it = 0, i = 0;
    const char *k;
    while (cm_smap_next(&s->overrides, &it, &k, NULL))
        keys[i++] = k;
    qsort(keys, i, sizeof *keys, cmp_str);
    *n = i;
    return keys;
}

void cm_config_enc_set(struct cm_buf *b, const char *key, const char *value)
{
    cm_put_str(b, key);
    cm_put_str(b, value);
}

void cm_config_enc_delete(struct cm_buf *b, const char *key)
{
    cm_put_str(b, key);
}

bool cm_config_is_system_key(const char *key)
{
    return strcmp(key, "code_mode") == 0 || strcmp(key, "volume_reserve_size") == 0 ||
           strcmp(key, "volume_chunk_size") == 0;
}

static void drop_legacy(struct config_state *s)
{
    for (size_t i = 0; i < s->n_legacy; i++) {
        free(s->legacy[i].key);
        free(s->legacy[i].val);
    }
    free(s->legacy);
    s->legacy = NULL;
    s->n_legacy = 0;
}

static void *config_create(struct cm_fsm *fsm)
{
    struct config_state *s = cm_calloc(1, sizeof *s);
    s->fsm = fsm;
    cm_smap_init(&s->overrides);
    return s;
}

static void config_destroy(void *state)
{
    struct config_state *s = state;
    drop_legacy(s);
    drop_overrides(s);
    cm_smap_free(&s->overrides);
    free(s);
}

/* One config write into the KV tree: an empty value deletes. */
static void store(struct cm_fsm *fsm, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (vlen == 0)
        cm_kv_store_delete(fsm, key, klen);
    else
        cm_kv_store_set(fsm, key, klen, val, vlen);
}

/* Format 1, exactly as the first releases apply it: any key, an empty value stored as given. */
static void apply_v1(struct config_state *s, const struct cm_cmd *cmd, struct cm_result *res)
{
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    char *key = cm_get_strdup(&d);
    switch (cmd->op) {
    case CM_CONFIG_OP_SET: {
        char *value = cm_get_strdup(&d);
        if (d.err) {
            free(value);
            break;
        }
        put_override(s, key, value);
        free(key);
        return;
    }
    case CM_CONFIG_OP_DELETE:
        if (d.err)
            break;
        free(cm_smap_del(&s->overrides, key));
        free(key);
        return;
    }
    free(key);
    CM_ERROR("config", "ignoring malformed config command op %u", cmd->op);
    res->code = -1;
}

static void config_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                         struct cm_result *res)
{
    if (!one_store(fsm)) {
        apply_v1(state, cmd, res);
        return;
    }
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    size_t klen, vlen;
    const char *key = cm_get_bytes(&d, &klen);
    if (d.err || !cm_kv_key_valid(key, klen))
        goto bad;
    switch (cmd->op) {
    case CM_CONFIG_OP_SET: {
        const char *val = cm_get_bytes(&d, &vlen);
        if (d.err || vlen > CM_CONFIG_VALUE_MAX)
            goto bad;
        /* the one store's ceilings (mod_kv.h); an empty value deletes and always fits */
        if (vlen &&
            !cm_kv_fits(fsm, key, klen, vlen, CM_KV_HARD_MAX_ENTRIES, CM_KV_HARD_MAX_BYTES)) {
            res->code = CM_ERR_ILLEGAL_ARGUMENTS;
            return;
        }
        store(fsm, key, klen, val, vlen);
        return;
    }
    case CM_CONFIG_OP_DELETE:
        cm_kv_store_delete(fsm, key, klen);
        return;
    }
bad:
    CM_ERROR("config", "ignoring malformed config command op %u (%zu bytes)", cmd->op, cmd->len);
    res->code = -1;
}

bool cm_config_lookup(struct cm_fsm *fsm, const char *key, const char **val, size_t *vlen)
{
    if (!one_store(fsm)) {
        struct config_state *s = fsm->mods[CM_MOD_CONFIG];
        const char *v = cm_smap_get(&s->overrides, key);
        if (v == NULL || v[0] == '\0')
            v = cm_settings_default(fsm->cfg, key);
        if (v == NULL)
            return false;
        *val = v;
        *vlen = strlen(v);
        return true;
    }
    size_t klen = strlen(key);
    if (klen > 0 && klen <= CM_KV_KEY_MAX && cm_kv_get(fsm, key, klen, val, vlen))
        return true;
    const char *d = cm_settings_default(fsm->cfg, key);
    if (d == NULL)
        return false;
    *val = d;
    *vlen = strlen(d);
    return true;
}

const char *cm_config_get(struct cm_fsm *fsm, const char *key)
{
    const char *v;
    size_t n;
    return cm_config_lookup(fsm, key, &v, &n) ? v : NULL;
}

struct json_object *cm_config_json_string(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;
    while (i < len && (n = cm_utf8_seq(p + i, len - i)) != 0)
        i += n;
    if (i == len)
        return json_object_new_string_len(s, (int)len);
    struct cm_buf b = {0};
    for (i = 0; i < len;) {
        n = cm_utf8_seq(p + i, len - i);
        if (n == 0) {
            cm_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            cm_buf_append(&b, s + i, n);
            i += n;
        }
    }
    struct json_object *o = json_object_new_string_len(b.data, (int)b.len);
    cm_buf_free(&b);
    return o;
}

struct list_ctx {
    const struct cm_fsm_settings *cfg;
    struct json_object *out;
    size_t j; /* next default to merge */
};

static void add_defaults_before(struct list_ctx *c, const char *key, size_t klen)
{
    while (c->j < c->cfg->n_defaults) {
        const struct cm_kv_default *d = &c->cfg->defaults[c->j];
        size_t dlen = strlen(d->key);
        int cmp = memcmp(d->key, key, dlen < klen ? dlen : klen);
        if (cmp > 0 || (cmp == 0 && dlen >= klen)) {
            if (cmp == 0 && dlen == klen)
                c->j++; /* the stored value wins */
            return;
        }
        json_object_object_add(c->out, d->key, json_object_new_string(d->value));
        c->j++;
    }
}

static void list_one(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct list_ctx *c = arg;
    add_defaults_before(c, key, klen);
    /* json-c wants a C string; keys hold no NUL (cm_kv_key_valid) */
    char *k = cm_strndup(key, klen);
    json_object_object_add(c->out, k, cm_config_json_string(val, vlen));
    free(k);
}

/* Format 1: the overrides merged with the defaults (an empty override reads the default). */
static struct json_object *list_v1(struct cm_fsm *fsm)
{
    struct config_state *s = fsm->mods[CM_MOD_CONFIG];
    const struct cm_fsm_settings *cfg = fsm->cfg;
    struct json_object *o = json_object_new_object();
    size_t n;
    const char **keys = sorted_keys(s, &n);
    size_t i = 0, j = 0;
    while (i < n || j < cfg->n_defaults) {
        int c = i == n ? 1 : j == cfg->n_defaults ? -1 : strcmp(keys[i], cfg->defaults[j].key);
        const char *key, *val;
        if (c <= 0) {
            key = keys[i];
            val = cm_smap_get(&s->overrides, key);
            if (val[0] == '\0' && c == 0)
                val = cfg->defaults[j].value;
            i++;
            if (c == 0)
                j++;
        } else {
            key = cfg->defaults[j].key;
            val = cfg->defaults[j].value;
            j++;
        }
        json_object_object_add(o, key, json_object_new_string(val));
    }
    free(keys);
    return o;
}

struct json_object *cm_config_list(struct cm_fsm *fsm)
{
    if (!one_store(fsm))
        return list_v1(fsm);
    struct list_ctx c = {fsm->cfg, json_object_new_object(), 0};
    cm_kv_each(fsm, list_one, &c);
    for (; c.j < c.cfg->n_defaults; c.j++)
        json_object_object_add(c.out, c.cfg->defaults[c.j].key,
                               json_object_new_string(c.cfg->defaults[c.j].value));
    return c.out;
}

/* At cluster version 1 the overrides, sorted (format 1); from 2 on an empty section, the values
 * are in the KV section. */
static void *config_snap_take(void *state)
{
    struct config_state *s = state;
    struct cm_buf b = {0};
    size_t n;
    const char **keys = sorted_keys(s, &n);
    cm_put_uvar(&b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_str(&b, keys[i]);
        cm_put_str(&b, cm_smap_get(&s->overrides, keys[i]));
    }
    free(keys);
    return cm_snap_take_encoded(&b);
}

static int config_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                            size_t errlen)
{
    (void)fsm;
    struct config_state *s = state;
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d)) {
        snprintf(err, errlen, "config section is truncated");
        return -1;
    }
    s->legacy = cm_calloc(n ? n : 1, sizeof *s->legacy);
    for (uint64_t i = 0; i < n && !d->err; i++) {
        size_t klen, vlen;
        const char *k = cm_get_bytes(d, &klen);
        const char *v = cm_get_bytes(d, &vlen);
        if (d->err)
            break;
        if (s->n_legacy > 0) {
            const struct legacy *p = &s->legacy[s->n_legacy - 1];
            int c = memcmp(p->key, k, p->klen < klen ? p->klen : klen);
            if (c > 0 || (c == 0 && p->klen >= klen)) {
                snprintf(err, errlen, "config keys are not in byte order");
                return -1;
            }
        }
        if (memchr(k, '\0', klen) || memchr(v, '\0', vlen)) { /* format 1 has no NUL */
            snprintf(err, errlen, "config entry %llu holds a NUL byte", (unsigned long long)i);
            return -1;
        }
        struct legacy *e = &s->legacy[s->n_legacy++];
        e->key = cm_strndup(k, klen);
        e->klen = klen;
        e->val = cm_strndup(v, vlen);
        e->vlen = vlen;
    }
    return d->err ? -1 : 0;
}

/* Into the one store (cluster version 2): each entry replaces the KV value of its key (an empty
 * one deletes it), in key order, entries that are no valid KV key are dropped (the first format
 * took any key); then the two names of the volume-inspection switch are made equal. */
static void into_kv(struct cm_fsm *fsm, const struct legacy *e, size_t n)
{
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cm_kv_key_valid(e[i].key, e[i].klen) || e[i].vlen > CM_CONFIG_VALUE_MAX) {
            CM_WARN("config", "dropping config entry %zu: not a valid kv key", i);
            continue;
        }
        store(fsm, e[i].key, e[i].klen, e[i].val, e[i].vlen);
        moved++;
    }
    if (moved)
        CM_INFO("config", "moved %zu config value(s) into the kv store", moved);
    static const char cur[] = "volume_inspect", old[] = "vol_inspect";
    const char *v;
    size_t vlen;
    if (cm_kv_get(fsm, cur, sizeof cur - 1, &v, &vlen) ||
        cm_kv_get(fsm, old, sizeof old - 1, &v, &vlen)) {
        char *copy = cm_malloc(vlen + 1);
        memcpy(copy, v, vlen);
        cm_kv_store_set(fsm, cur, sizeof cur - 1, copy, vlen); /* writes both names */
        free(copy);
    }
}

/* Runs after every section was loaded (the cluster section too): at version 1 the entries are
 * the overrides, as they were; from 2 on a section with entries (only a version-1 stream has
 * any) goes into the KV tree. */
static void config_after_load(struct cm_fsm *fsm, void *state)
{
    struct config_state *s = state;
    if (!one_store(fsm)) {
        for (size_t i = 0; i < s->n_legacy; i++)
            put_override(s, s->legacy[i].key, cm_strndup(s->legacy[i].val, s->legacy[i].vlen));
    } else if (s->n_legacy) {
        into_kv(fsm, s->legacy, s->n_legacy);
    }
    drop_legacy(s);
}

/* The cluster moved to version 2: every node moves its overrides into the KV tree, in key
 * order, at the same log index. */
static void config_on_version(struct cm_fsm *fsm, void *state, unsigned from, unsigned to)
{
    struct config_state *s = state;
    if (from >= 2 || to < 2)
        return;
    size_t n;
    const char **keys = sorted_keys(s, &n);
    struct legacy *e = cm_calloc(n ? n : 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        e[i].key = (char *)keys[i];
        e[i].klen = strlen(keys[i]);
        e[i].val = cm_smap_get(&s->overrides, keys[i]);
        e[i].vlen = strlen(e[i].val);
    }
    into_kv(fsm, e, n);
    free(e);
    free(keys);
    drop_overrides(s);
}

const struct cm_module cm_mod_config = {
    .id = CM_MOD_CONFIG,
    .name = "config",
    .create = config_create,
    .destroy = config_destroy,
    .apply = config_apply,
    .snap_take = config_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_load = config_snap_load,
    .after_load = config_after_load,
    .on_version = config_on_version,
};
