/* Members module; see mod_members.h. */
#include "mod_members.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/map.h"

struct members_state {
    struct cm_map http; /* id -> malloc'd "ip:port" */
};

void cm_members_enc_set_http(struct cm_buf *b, uint64_t id, const char *http_addr)
{
    cm_put_u64(b, id);
    cm_put_str(b, http_addr);
}

void cm_members_enc_del(struct cm_buf *b, uint64_t id)
{
    cm_put_u64(b, id);
}

static void *members_create(struct cm_fsm *fsm)
{
    (void)fsm;
    struct members_state *s = cm_calloc(1, sizeof *s);
    cm_map_init(&s->http);
    return s;
}

static void members_destroy(void *state)
{
    struct members_state *s = state;
    size_t it = 0;
    void *v;
    while (cm_map_next(&s->http, &it, NULL, &v))
        free(v);
    cm_map_free(&s->http);
    free(s);
}

static void members_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                          struct cm_result *res)
{
    (void)fsm;
    struct members_state *s = state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    uint64_t id = cm_get_u64(&d);
    if (cmd->op == CM_MEMBERS_OP_SET_HTTP) {
        char *addr = cm_get_strdup(&d);
        if (!d.err && id != 0) {
            free(cm_map_put(&s->http, id, addr));
            return;
        }
        free(addr);
    } else if (cmd->op == CM_MEMBERS_OP_DEL && !d.err) {
        free(cm_map_del(&s->http, id));
        return;
    }
    CM_ERROR("members", "ignoring malformed members command op %u", cmd->op);
    res->code = -1;
}

const char *cm_members_http_replicated(struct cm_fsm *fsm, uint64_t id)
{
    struct members_state *s = fsm->mods[CM_MOD_MEMBERS];
    return cm_map_get(&s->http, id);
}

const char *cm_members_http(struct cm_fsm *fsm, uint64_t id)
{
    const char *a = cm_members_http_replicated(fsm, id);
    return a ? a : cm_settings_node_http(fsm->cfg, id);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *members_snap_take(void *state)
{
    struct members_state *s = state;
    struct cm_buf b = {0};
    uint64_t *ids = cm_malloc((s->http.n + 1) * sizeof *ids);
    size_t it = 0, n = 0;
    uint64_t k;
    while (cm_map_next(&s->http, &it, &k, NULL))
        ids[n++] = k;
    qsort(ids, n, sizeof *ids, cmp_u64);
    cm_put_uvar(&b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_u64(&b, ids[i]);
        cm_put_str(&b, cm_map_get(&s->http, ids[i]));
    }
    free(ids);
    return cm_snap_take_encoded(&b);
}

static int members_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                             size_t errlen)
{
    (void)fsm, (void)err, (void)errlen;
    struct members_state *s = state;
    uint64_t n = cm_get_uvar(d);
    for (uint64_t i = 0; i < n && !d->err; i++) {
        uint64_t id = cm_get_u64(d);
        char *addr = cm_get_strdup(d);
        if (id == 0)
            d->err = true;
        free(cm_map_put(&s->http, id ? id : 1, addr));
    }
    return d->err ? -1 : 0;
}

const struct cm_module cm_mod_members = {
    .id = CM_MOD_MEMBERS,
    .name = "members",
    .create = members_create,
    .destroy = members_destroy,
    .apply = members_apply,
    .snap_take = members_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_load = members_snap_load,
};
