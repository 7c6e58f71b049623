/* Config module; see mod_config.h. */
#include "mod_config.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/map.h"

struct config_state {
    struct cm_smap overrides; /* key -> malloc'd value */
};

void cm_config_enc_set(struct cm_buf *b, const char *key, const char *value)
{
    cm_put_str(b, key);
    cm_put_str(b, value);
}

void cm_config_enc_delete(struct cm_buf *b, const char *key)
{
    cm_put_str(b, key);
}

static void *config_create(struct cm_fsm *fsm)
{
    (void)fsm;
    struct config_state *s = cm_calloc(1, sizeof *s);
    cm_smap_init(&s->overrides);
    return s;
}

static void config_destroy(void *state)
{
    struct config_state *s = state;
    size_t it = 0;
    void *v;
    while (cm_smap_next(&s->overrides, &it, NULL, &v))
        free(v);
    cm_smap_free(&s->overrides);
    free(s);
}

static void put_override(struct config_state *s, const char *key, char *value)
{
    free(cm_smap_put(&s->overrides, key, value));
}

static void config_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                         struct cm_result *res)
{
    (void)fsm;
    struct config_state *s = state;
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

const char *cm_config_get(struct cm_fsm *fsm, const char *key)
{
    struct config_state *s = fsm->mods[CM_MOD_CONFIG];
    const char *v = cm_smap_get(&s->overrides, key);
    if (v != NULL && v[0] != '\0')
        return v;
    return cm_config_default(fsm->cfg, key);
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

struct json_object *cm_config_list(struct cm_fsm *fsm)
{
    struct config_state *s = fsm->mods[CM_MOD_CONFIG];
    const struct cm_config *cfg = fsm->cfg;
    struct json_object *o = json_object_new_object();
    size_t n;
    const char **keys = sorted_keys(s, &n);
    size_t i = 0, j = 0;
    /* merge the sorted overrides with the sorted defaults */
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
    (void)fsm, (void)err, (void)errlen;
    struct config_state *s = state;
    uint64_t n = cm_get_uvar(d);
    for (uint64_t i = 0; i < n && !d->err; i++) {
        char *k = cm_get_strdup(d);
        char *v = cm_get_strdup(d);
        put_override(s, k, v);
        free(k);
    }
    return d->err ? -1 : 0;
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
};
