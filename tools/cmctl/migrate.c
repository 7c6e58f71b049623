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
 * This file builds the state and writes it (reading: migrate_read.c; verify: migrate_verify.c).
 * Nothing is written unless everything was read and applied: the file appears by an atomic
 * rename at the very end.
 */
#include <inttypes.h>
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
#include "migrate.h"

/* Epochs reserved above every unit's current epoch: a /volume/unit/alloc in flight on the
 * source reserved at most a few, so the new cluster hands out vuids above all of them. */
#define MIG_EPOCH_MARGIN 64u
/* Heartbeat lease the carried disks start with: time for the fleet to be pointed at the new
 * cluster before its disks count as expired. */
#define MIG_DISK_LEASE_S 600
#define MIG_DEFAULT_BID_MARGIN 1000000000ull
#define MIG_DEFAULT_ID_MARGIN 1000ull

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
        if (jstr(jat(s->disks, i), "idc")[0] && !mig_str_in(idcs, jstr(jat(s->disks, i), "idc")))
            json_object_array_add(idcs, json_object_new_string(jstr(jat(s->disks, i), "idc")));
    for (size_t i = 0; i < jlen(s->nodes); i++)
        if (jstr(jat(s->nodes, i), "idc")[0] && !mig_str_in(idcs, jstr(jat(s->nodes, i), "idc")))
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
            if (cm == NULL || mig_str_in(seen, cm->name))
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
        cm_node_caps_from_config(&b->cfg.fsm, n.disk_type, &caps);
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
        cm_disk_enc_add(p, &d, &b->cfg.fsm);
        uint32_t node = (uint32_t)ju64(o, "node_id");
        if (node) {
            uint8_t type = 0;
            for (size_t k = 0; k < jlen(s->nodes); k++)
                if (ju64(jat(s->nodes, k), "node_id") == node)
                    type = type_of(jat(s->nodes, k), "disk_type", cm_disk_type_parse);
            struct cm_node_caps caps;
            cm_node_caps_from_config(&b->cfg.fsm, type, &caps);
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
    struct mig_progress pr = {
        .kind = "volumes built", .t0_us = cm_mono_us(), .expect = jlen(s->volumes)};
    for (size_t i = 0; i < jlen(s->volumes); i++) {
        int rc = build_volume(b, s, jat(s->volumes, i), p, sum);
        if (rc)
            return rc;
        if ((i & 1023) == 1023 || i + 1 == jlen(s->volumes))
            mig_progress_cb(&pr, i + 1);
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

static int migrate(struct cmctl *c, const char *from, const char *out)
{
    uint64_t bid_margin, id_margin;
    int rc = parse_margin(c, "bid-margin", MIG_DEFAULT_BID_MARGIN, 1ull << 62, &bid_margin);
    if (rc ||
        (rc = parse_margin(c, "id-margin", MIG_DEFAULT_ID_MARGIN, CM_NODE_ID_MAX, &id_margin)))
        return rc;
    struct cmctl src = *c;
    mig_use_hosts(&src, from);
    uint64_t t0 = cm_mono_us();
    struct mig_state s = {0};
    struct builder b = {.ts = cm_now_ns()};
    struct cm_buf p = {0}, snap = {0};
    bool have_cfg = false;
    rc = mig_read_cluster(&src, cmctl_opt(c, "lease-hosts"), &s);
    if (rc == 0)
        rc = mig_read_scopes(&src, &s);
    if (rc)
        goto out;
    double t_read = (double)(cm_mono_us() - t0) / 1e6;
    if ((rc = config_for(&s, &b.cfg)) != 0)
        goto out;
    have_cfg = true;
    cm_log_set_level(CM_LOG_ERROR);
    b.fsm = cm_fsm_new(&b.cfg.fsm, 1);
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
    mig_state_free(&s);
    mig_drop_hosts(&src);
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
        return mig_verify(c, from, to);
    }
    if (out == NULL || out[0] == '\0')
        return cmctl_fail(CMCTL_ERR_USAGE, "migrate: --out <file> is required");
    return migrate(c, from, out);
}
