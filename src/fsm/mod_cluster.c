/*
 * Cluster module: the cluster version; see mod_cluster.h.
 */
#include "mod_cluster.h"

#include <stdio.h>
#include <stdlib.h>

#include "../util/log.h"

struct cluster_state {
    unsigned version;
};

static struct cluster_state *S(struct cm_fsm *fsm)
{
    return fsm->mods[CM_MOD_CLUSTER];
}

unsigned cm_cluster_version(struct cm_fsm *fsm)
{
    return S(fsm)->version;
}

void cm_cluster_enc_set_version(struct cm_buf *b, unsigned version)
{
    cm_put_u32(b, version);
}

static void *cluster_create(struct cm_fsm *fsm)
{
    (void)fsm;
    struct cluster_state *st = cm_calloc(1, sizeof *st);
    st->version = 1;
    return st;
}

static void cluster_destroy(void *state)
{
    free(state);
}

static void cluster_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                          struct cm_result *res)
{
    struct cluster_state *st = state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    uint32_t v = cm_get_u32(&d);
    /* the command's own format version is its target: a binary that cannot apply that version
     * never gets here (fsm.c blocks first) */
    if (cmd->op != CM_CLUSTER_OP_SET_VERSION || d.err || v < 1 || v > CM_FORMAT_VERSION) {
        CM_ERROR("cluster", "ignoring malformed cluster command op %u", cmd->op);
        res->code = -1;
        return;
    }
    if (v > st->version) {
        CM_INFO("cluster",
                "cluster version %u -> %u: commands and snapshot sections of format "
                "%u are in use from here on",
                st->version, v, v);
        unsigned from = st->version;
        st->version = v;
        /* every module converts what the new format keeps differently, at this index */
        for (unsigned i = 0; i < CM_MOD_MAX; i++) {
            const struct cm_module *m = cm_fsm_module(i);
            if (m && m->on_version)
                m->on_version(fsm, fsm->mods[i], from, v);
        }
    }
    res->v[0] = st->version;
}

static void *cluster_snap_take(void *state)
{
    struct cluster_state *st = state;
    struct cm_buf b = {0};
    if (st->version > 1)
        cm_put_u32(&b, st->version);
    return cm_snap_take_encoded(&b);
}

static bool cluster_snap_skip(void *taken)
{
    return ((struct cm_buf *)taken)->len == 0;
}

static int cluster_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                             size_t errlen)
{
    (void)fsm;
    struct cluster_state *st = state;
    uint32_t v = cm_get_u32(d);
    if (d->err || v < 2 || v > CM_FORMAT_VERSION || cm_dec_left(d) != 0) {
        snprintf(err, errlen, "cluster version %u is not one this binary loads (2..%u)", v,
                 CM_FORMAT_VERSION);
        return -1;
    }
    st->version = v;
    return 0;
}

/* A raise to version v is itself of format v: only a binary that reads v applies it. */
static uint8_t cluster_cmd_version(const struct cm_cmd *cmd)
{
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    uint32_t v = cm_get_u32(&d);
    return d.err || v < 1 ? CM_CMD_VERSION : v > 255 ? 255 : (uint8_t)v;
}

const struct cm_module cm_mod_cluster = {
    .id = CM_MOD_CLUSTER,
    .name = "cluster",
    .create = cluster_create,
    .destroy = cluster_destroy,
    .apply = cluster_apply,
    .snap_take = cluster_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_skip = cluster_snap_skip,
    .snap_load = cluster_snap_load,
    .cmd_version = cluster_cmd_version,
};
