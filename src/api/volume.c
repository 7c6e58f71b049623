/*
 * Volume routes (spec §5.4-§5.6): reading and listing volumes, allocation and lease renewal,
 * lock/unlock, the four-call unit migration, the admin updates, chunk reports and the compact
 * flag. Validation happens here on the leader in the order of the spec; apply (mod_volume.c)
 * repeats what a concurrent change could invalidate.
 *
 * Requests that wait on something other than their own proposal -- an allocation whose
 * pre-selected volumes must be released whatever happens, a blobnode call -- keep an operation
 * registered with the volume domain (volume_jobs.h) and point the job's backref at it: a reply
 * (also a timeout) clears the operation's job pointer, and the completion, which finds the
 * operation by id, answers only when the job is still there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/blobnode.h"
#include "../fsm/codemode.h"
#include "../fsm/mod_cluster.h"
#include "../fsm/mod_disk.h"
#include "../fsm/mod_volume.h"
#include "../jobs/volume_jobs.h"
#include "../util/json.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "api.h"

#define LIST_MAX 2000 /* /volume/list cap: 500 in the 2022 contract, 2000 since CubeFS v3.3 */
#define ALLOC_MAX 10000
#define TOKENS_MAX 100000
#define EXCLUDES_MAX 100000
#define TOKEN_MAX 128
#define REPORT_MAX (8u << 20)
#define UNIT_ALLOC_TRIES 3

struct vol_args {
    uint32_t vid;
    uint32_t marker;
    int64_t count;
    uint8_t status, code_mode;
    bool is_init;
    uint32_t *excludes;
    size_t n_excludes;
    char **tokens;
    size_t n_tokens;
    uint64_t vuid, old_vuid, new_vuid;
    uint32_t disk_id;
    bool compact;
    bool force; /* /volume/unlock */
    char host[CM_VOL_HOST_MAX + 1];
    uint64_t total, free, used;
    uint64_t epoch, next_epoch;
    struct cm_chunk_rec *recs;
    size_t n_recs;
};

static void vol_args_free(void *p)
{
    struct vol_args *a = p;
    free(a->excludes);
    for (size_t i = 0; i < a->n_tokens; i++)
        free(a->tokens[i]);
    free(a->tokens);
    free(a->recs);
    free(a);
}

static struct vol_args *new_args(struct cm_job *j)
{
    struct vol_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = vol_args_free;
    return a;
}

static int body_u32(struct cm_job *j, struct json_object *o, const char *name, uint32_t *out)
{
    uint64_t v = 0;
    int rc = cm_args_u64(j, o, name, false, UINT32_MAX, &v);
    *out = (uint32_t)v;
    return rc < 0 ? -1 : 0;
}

static int body_u8(struct cm_job *j, struct json_object *o, const char *name, uint8_t *out)
{
    uint64_t v = 0;
    int rc = cm_args_u64(j, o, name, false, UINT8_MAX, &v);
    *out = (uint8_t)v;
    return rc < 0 ? -1 : 0;
}

static int body_u64(struct cm_job *j, struct json_object *o, const char *name, uint64_t *out)
{
    *out = 0;
    return cm_args_u64(j, o, name, false, UINT64_MAX, out) < 0 ? -1 : 0;
}

/* ---- parsers (HTTP threads) ---------------------------------------------------------------- */

int parse_volume_vid_query(struct cm_job *j)
{
    uint64_t v;
    if (cm_args_q_u64(j, "vid", true, UINT32_MAX, &v) < 0)
        return -1;
    new_args(j)->vid = (uint32_t)v;
    return 0;
}

int parse_volume_list(struct cm_job *j)
{
    uint64_t marker = 0;
    int64_t count = 0;
    if (cm_args_q_u64(j, "marker", false, UINT32_MAX, &marker) < 0 ||
        cm_args_q_i64(j, "count", true, INT64_MIN, INT64_MAX, &count) < 0)
        return -1;
    struct vol_args *a = new_args(j);
    a->marker = (uint32_t)marker;
    a->count = count;
    return 0;
}

int parse_v2_volume_list(struct cm_job *j)
{
    uint64_t st;
    if (cm_args_q_u64(j, "status", true, UINT8_MAX, &st) < 0)
        return -1;
    new_args(j)->status = (uint8_t)st;
    return 0;
}

int parse_volume_alloc(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc = -1;
    if (cm_args_bool(j, o, "is_init", false, &a->is_init) < 0 ||
        body_u8(j, o, "code_mode", &a->code_mode) < 0 ||
        cm_args_i64(j, o, "count", false, INT64_MIN, INT64_MAX, &a->count) < 0)
        goto out;
    struct json_object *ex = NULL;
    json_object_object_get_ex(o, "excludes", &ex);
    if (ex && !json_object_is_type(ex, json_type_null)) {
        if (!json_object_is_type(ex, json_type_array)) {
            cm_args_fail(j, "field \"excludes\" must be an array of vids");
            goto out;
        }
        size_t n = json_object_array_length(ex);
        if (n > EXCLUDES_MAX) {
            cm_args_fail(j, "field \"excludes\" has more than %d vids", EXCLUDES_MAX);
            goto out;
        }
        a->excludes = cm_malloc((n + 1) * sizeof *a->excludes);
        for (size_t i = 0; i < n; i++) {
            char what[32], err[256];
            uint64_t v;
            snprintf(what, sizeof what, "excludes[%zu]", i);
            if (cm_json_as_u64(json_object_array_get_idx(ex, i), what, UINT32_MAX, &v, err,
                               sizeof err) != CM_JSON_OK) {
                cm_args_fail(j, "%s", err);
                goto out;
            }
            a->excludes[a->n_excludes++] = (uint32_t)v;
        }
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

int parse_volume_retain(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc = -1;
    struct json_object *arr = NULL;
    json_object_object_get_ex(o, "tokens", &arr);
    if (arr && !json_object_is_type(arr, json_type_null)) {
        if (!json_object_is_type(arr, json_type_array)) {
            cm_args_fail(j, "field \"tokens\" must be an array of strings");
            goto out;
        }
        size_t n = json_object_array_length(arr);
        if (n > TOKENS_MAX) {
            cm_args_fail(j, "field \"tokens\" has more than %d tokens", TOKENS_MAX);
            goto out;
        }
        a->tokens = cm_calloc(n + 1, sizeof *a->tokens);
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(arr, i);
            if (!json_object_is_type(e, json_type_string)) {
                cm_args_fail(j, "tokens[%zu] must be a string", i);
                goto out;
            }
            const char *s = json_object_get_string(e);
            size_t len = (size_t)json_object_get_string_len(e);
            if (len > TOKEN_MAX || strlen(s) != len) {
                cm_args_fail(j, "tokens[%zu] is too long or has a NUL byte", i);
                goto out;
            }
            a->tokens[a->n_tokens++] = cm_strdup(s);
        }
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

/* {"vid"} of /volume/lock; {"vid","force"} of /volume/unlock (CubeFS v3.5.1 added `force`). */
int parse_volume_vid_body(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc = body_u32(j, o, "vid", &a->vid);
    if (rc == 0 && j->route && j->route->handle == h_volume_unlock &&
        cm_args_bool(j, o, "force", false, &a->force) < 0)
        rc = -1;
    json_object_put(o);
    return rc;
}

int parse_volume_update(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc = body_u64(j, o, "new_vuid", &a->new_vuid) < 0 ||
                     body_u32(j, o, "new_disk_id", &a->disk_id) < 0 ||
                     body_u64(j, o, "old_vuid", &a->old_vuid) < 0
                 ? -1
                 : 0;
    json_object_put(o);
    return rc;
}

int parse_volume_allocated_list(struct cm_job *j)
{
    const char *host;
    uint64_t mode;
    if (cm_args_q_str(j, "host", true, CM_VOL_HOST_MAX, &host) < 0 ||
        cm_args_q_u64(j, "code_mode", true, UINT8_MAX, &mode) < 0)
        return -1;
    struct vol_args *a = new_args(j);
    snprintf(a->host, sizeof a->host, "%s", host);
    a->code_mode = (uint8_t)mode;
    return 0;
}

int parse_admin_update_volume(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int64_t health;
    uint64_t by;
    int rc = body_u32(j, o, "vid", &a->vid) < 0 || body_u8(j, o, "code_mode", &a->code_mode) < 0 ||
                     body_u8(j, o, "status", &a->status) < 0 ||
                     cm_args_i64(j, o, "health_score", false, INT64_MIN, INT64_MAX, &health) < 0 ||
                     body_u64(j, o, "total", &a->total) < 0 ||
                     body_u64(j, o, "free", &a->free) < 0 || body_u64(j, o, "used", &a->used) < 0 ||
                     body_u64(j, o, "create_by_node_id", &by) < 0
                 ? -1
                 : 0;
    json_object_put(o);
    return rc;
}

int parse_admin_update_unit(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    uint64_t ignored;
    uint32_t epoch = 0, next = 0;
    char *host = NULL;
    int rc = body_u32(j, o, "epoch", &epoch) < 0 || body_u32(j, o, "next_epoch", &next) < 0 ||
                     body_u64(j, o, "vuid", &a->vuid) < 0 ||
                     body_u32(j, o, "disk_id", &a->disk_id) < 0 ||
                     body_u64(j, o, "total", &ignored) < 0 ||
                     body_u64(j, o, "free", &ignored) < 0 || body_u64(j, o, "used", &ignored) < 0 ||
                     cm_args_bool(j, o, "compact", false, &a->compact) < 0 ||
                     cm_args_strdup(j, o, "host", false, CM_DISK_HOST_MAX, &host) < 0
                 ? -1
                 : 0;
    free(host);
    a->epoch = epoch;
    a->next_epoch = next;
    json_object_put(o);
    return rc;
}

int parse_volume_unit_body(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc =
        body_u64(j, o, "vuid", &a->vuid) < 0 || body_u32(j, o, "disk_id", &a->disk_id) < 0 ? -1 : 0;
    json_object_put(o);
    return rc;
}

int parse_volume_unit_list(struct cm_job *j)
{
    uint64_t d;
    if (cm_args_q_u64(j, "disk_id", true, UINT32_MAX, &d) < 0)
        return -1;
    new_args(j)->disk_id = (uint32_t)d;
    return 0;
}

int parse_chunk_report(struct cm_job *j)
{
    struct vol_args *a = new_args(j);
    if (j->body.len > REPORT_MAX) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return -1;
    }
    if (cm_chunk_report_decode(j->body.data, j->body.len, &a->recs, &a->n_recs) != 0) {
        cm_job_set_code(j, CM_ERR_UNEXPECT);
        return -1;
    }
    return 0;
}

int parse_chunk_set_compact(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct vol_args *a = new_args(j);
    int rc = body_u64(j, o, "vuid", &a->vuid) < 0 ||
                     cm_args_bool(j, o, "compact", false, &a->compact) < 0
                 ? -1
                 : 0;
    json_object_put(o);
    return rc;
}

/* ---- rendering ----------------------------------------------------------------------------- */

static struct json_object *vol_json(struct cm_fsm *fsm, const struct cm_vol *v, bool lease)
{
    struct json_object *o = json_object_new_object();
    struct json_object *units = json_object_new_array_ext(v->n_units);
    for (unsigned i = 0; i < v->n_units; i++) {
        struct cm_vunit u;
        struct cm_disk_info d;
        cm_volume_unit(fsm, v->vid, i, &u);
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "vuid", json_object_new_uint64(u.vuid));
        json_object_object_add(e, "disk_id", json_object_new_uint64(u.disk_id));
        json_object_object_add(
            e, "host", json_object_new_string(cm_disk_get(fsm, u.disk_id, &d) ? d.host : ""));
        json_object_array_add(units, e);
    }
    json_object_object_add(o, "units", units);
    json_object_object_add(o, "vid", json_object_new_uint64(v->vid));
    json_object_object_add(o, "code_mode", json_object_new_int(v->code_mode));
    json_object_object_add(o, "status", json_object_new_int(v->status));
    json_object_object_add(o, "health_score", json_object_new_int(v->health));
    json_object_object_add(o, "total", json_object_new_uint64(v->total));
    json_object_object_add(o, "free", json_object_new_uint64(v->free));
    json_object_object_add(o, "used", json_object_new_uint64(v->used));
    json_object_object_add(o, "create_by_node_id", json_object_new_uint64(v->create_by));
    if (lease) {
        char tok[CM_VOL_HOST_MAX + 16];
        snprintf(tok, sizeof tok, "%s;%" PRIu32, v->token_host ? v->token_host : "", v->vid);
        json_object_object_add(o, "token", json_object_new_string(tok));
        json_object_object_add(o, "expire_time", json_object_new_int64(v->expire_ns));
    }
    return o;
}

static bool created(struct cm_fsm *fsm, uint32_t vid, struct cm_vol *v)
{
    return cm_volume_get(fsm, vid, v) && v->state == CM_VOL_CREATED;
}

/* ---- reads -------------------------------------------------------------------------------- */

void h_volume_get(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    if (!created(fsm, a->vid, &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    cm_reply_json(j, vol_json(fsm, &v, false));
}

static struct json_object *volumes_obj(struct json_object *arr, uint32_t marker)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "volumes", arr);
    json_object_object_add(o, "marker", json_object_new_uint64(marker));
    return o;
}

void h_volume_list(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    int64_t count = a->count > LIST_MAX ? LIST_MAX : a->count;
    struct json_object *arr = json_object_new_array();
    uint32_t last = 0;
    /* strictly after the marker, whether or not the marker is a volume */
    for (uint32_t vid = a->marker; count > 0 && (vid = cm_volume_next(fsm, vid)) != 0; count--) {
        struct cm_vol v;
        cm_volume_get(fsm, vid, &v);
        json_object_array_add(arr, vol_json(fsm, &v, false));
        last = vid;
    }
    cm_reply_json(j, volumes_obj(arr, last));
}

void h_v2_volume_list(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    if (a->status < CM_VOL_IDLE || a->status > CM_VOL_UNLOCKING) {
        cm_reply_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return;
    }
    if (a->status == CM_VOL_IDLE) {
        cm_reply_code(j, CM_ERR_NOT_SUPPORT_IDLE);
        return;
    }
    struct json_object *arr = json_object_new_array();
    for (uint32_t vid = 0; (vid = cm_volume_next(fsm, vid)) != 0;) {
        struct cm_vol v;
        cm_volume_get(fsm, vid, &v);
        if (v.status == a->status)
            json_object_array_add(arr, vol_json(fsm, &v, false));
    }
    cm_reply_json(j, volumes_obj(arr, 0));
}

/* The leases of `host` with `code_mode` that could be retained now; NULL when none (as the
 * reference answers). */
static struct json_object *leases_of(struct cm_job *j, const char *host, uint8_t code_mode)
{
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    const struct cm_config *cfg = cm_node_cfg(j->node);
    int64_t now = cm_now_ns();
    struct json_object *arr = NULL;
    for (uint32_t vid = 0; (vid = cm_volume_next(fsm, vid)) != 0;) {
        struct cm_vol v;
        cm_volume_get(fsm, vid, &v);
        if (v.code_mode != code_mode ||
            !cm_volume_retainable(fsm, vid, host, cfg->retain_threshold, now))
            continue;
        if (arr == NULL)
            arr = json_object_new_array();
        json_object_array_add(arr, vol_json(fsm, &v, true));
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "alloc_volume_infos", arr);
    return o;
}

void h_volume_allocated_list(struct cm_job *j)
{
    struct vol_args *a = j->args;
    cm_reply_json(j, leases_of(j, a->host, a->code_mode));
}

void h_volume_unit_list(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    size_t n;
    uint64_t *p = cm_volume_disk_units(fsm, a->disk_id, &n);
    struct cm_disk_info d;
    const char *host = cm_disk_get(fsm, a->disk_id, &d) ? d.host : "";
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct cm_vol v;
        uint32_t vid = cm_vuid_vid(p[i]);
        if (!created(fsm, vid, &v))
            continue; /* a volume still being created is not shown */
        struct cm_vunit u;
        cm_volume_unit(fsm, vid, cm_vuid_index(p[i]), &u);
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "vuid", json_object_new_uint64(u.vuid));
        json_object_object_add(e, "disk_id", json_object_new_uint64(u.disk_id));
        json_object_object_add(e, "total", json_object_new_uint64(u.total));
        json_object_object_add(e, "free", json_object_new_uint64(u.free));
        json_object_object_add(e, "used", json_object_new_uint64(u.used));
        json_object_object_add(e, "compact", json_object_new_boolean(u.compacting));
        json_object_object_add(e, "host", json_object_new_string(host));
        json_object_array_add(arr, e);
    }
    free(p);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "volume_unit_infos", arr);
    cm_reply_json(j, o);
}

/* ---- allocation and leases ------------------------------------------------------------------ */

struct alloc_op {
    uint64_t id;
    struct cm_job *job;
    int64_t expire;
    size_t n;
    uint32_t vids[];
};

static void alloc_applied(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    struct alloc_op *op = cm_vol_ctx_get(n, id);
    if (op == NULL)
        return;
    cm_vol_ctx_del(n, id);
    struct cm_fsm *fsm = cm_node_fsm(n);
    cm_volume_unmark(fsm, op->vids, op->n); /* granted or not, they are no longer reserved */
    struct cm_job *j = op->job;
    if (j)
        j->backref = NULL; /* it points into op */
    free(op);
    const struct cm_vol_granted *g = status == CM_APPLIED && res->code == 0 ? res->data : NULL;
    if (j) {
        if (status != CM_APPLIED)
            cm_reply_code(j, CM_ERR_RAFT_PROPOSE);
        else if (res->code)
            cm_reply_code(j, res->code);
        else if (g == NULL || g->n == 0)
            cm_reply_code(j, CM_ERR_NO_AVAILABLE_VOLUME);
        else {
            struct json_object *arr = json_object_new_array_ext((int)g->n);
            for (size_t i = 0; i < g->n; i++) {
                struct cm_vol v;
                if (cm_volume_get(fsm, g->vids[i], &v))
                    json_object_array_add(arr, vol_json(fsm, &v, true));
            }
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "alloc_volume_infos", arr);
            cm_reply_json(j, o);
        }
    }
    cm_volume_pool_wake(n);
}

void h_volume_alloc(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_node *n = j->node;
    const struct cm_config *cfg = cm_node_cfg(n);
    if (a->is_init) { /* a read of the caller's leases: as linearizable as one */
        if (cm_node_write_confirmed(j))
            cm_reply_json(j, leases_of(j, j->client_ip, a->code_mode));
        return;
    }
    if (a->count <= 0) {
        cm_reply_code(j, CM_ERR_ALLOC_VOLUME_INVALID_PARAMS);
        return;
    }
    if (cm_config_policy(cfg, a->code_mode) == NULL) {
        cm_reply_code(j, CM_ERR_INVALID_CODE_MODE);
        return;
    }
    size_t want = a->count > ALLOC_MAX ? ALLOC_MAX : (size_t)a->count;
    struct alloc_op *op = cm_malloc(sizeof *op + (want + 1) * sizeof op->vids[0]);
    bool over = false;
    op->n = cm_volume_pick(cm_node_fsm(n), a->code_mode, want, a->excludes, a->n_excludes,
                           cfg->allocatable_disk_load_threshold, op->vids, &over);
    cm_volume_note_alloc(n, over);
    if (op->n == 0) {
        free(op);
        cm_reply_code(j, CM_ERR_NO_AVAILABLE_VOLUME);
        cm_volume_pool_wake(n);
        return;
    }
    op->job = j;
    op->expire = cm_now_ns() + cfg->retain_time_s * 1000000000LL;
    op->id = cm_vol_ctx_add(n, op, free);
    if (op->id == 0) {
        cm_volume_unmark(cm_node_fsm(n), op->vids, op->n);
        free(op);
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        return;
    }
    j->backref = (void **)&op->job;
    struct cm_buf b = {0};
    cm_volume_enc_alloc(&b, a->code_mode, j->client_ip, op->expire,
                        cm_volume_alloc_threshold(cm_node_fsm(n)), op->vids, op->n);
    cm_node_propose(n, CM_MOD_VOLUME, CM_VOL_OP_ALLOC, &b, alloc_applied,
                    (void *)(uintptr_t)op->id);
}

struct retain_state {
    int64_t expire;
};

static void retain_applied(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    const struct retain_state *rs = j->hstate;
    const struct cm_vol_granted *g = res->data;
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; g && i < g->n; i++) {
        char tok[CM_VOL_HOST_MAX + 16];
        snprintf(tok, sizeof tok, "%s;%" PRIu32, j->client_ip, g->vids[i]);
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "token", json_object_new_string(tok));
        json_object_object_add(e, "expire_time", json_object_new_int64(rs->expire));
        json_object_array_add(arr, e);
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "retain_vol_tokens", arr);
    cm_reply_json(j, o);
}

/* "<host>;<vid>" with a decimal uint32 vid; 0 when it does not decode. */
static uint32_t token_vid(const char *tok, const char **host_end)
{
    const char *semi = strchr(tok, ';');
    if (semi == NULL || semi[1] == '\0')
        return 0;
    uint64_t v = 0;
    for (const char *p = semi + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > UINT32_MAX / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > UINT32_MAX)
        return 0;
    *host_end = semi;
    return (uint32_t)v;
}

static int cmp_lease(const void *a, const void *b)
{
    uint32_t x = ((const struct cm_vol_lease *)a)->vid, y = ((const struct cm_vol_lease *)b)->vid;
    return x < y ? -1 : x > y;
}

void h_volume_retain(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_node *n = j->node;
    struct cm_fsm *fsm = cm_node_fsm(n);
    const struct cm_config *cfg = cm_node_cfg(n);
    int64_t now = cm_now_ns();
    struct cm_vol_lease *l = cm_malloc((a->n_tokens + 1) * sizeof *l);
    size_t nl = 0;
    uint64_t bad = 0;
    size_t hl = strlen(j->client_ip);
    for (size_t i = 0; i < a->n_tokens; i++) {
        const char *end = NULL;
        uint32_t vid = token_vid(a->tokens[i], &end);
        struct cm_vol v;
        if (vid == 0 || (size_t)(end - a->tokens[i]) != hl ||
            memcmp(a->tokens[i], j->client_ip, hl) != 0 || !created(fsm, vid, &v) ||
            v.token_host == NULL || strcmp(v.token_host, j->client_ip) != 0) {
            bad++; /* undecodable, someone else's, unknown or not the volume's token */
            continue;
        }
        /* full, unhealthy, not active or lapsed: dropped, not counted */
        if (!cm_volume_retainable(fsm, vid, j->client_ip, cfg->retain_threshold, now))
            continue;
        l[nl++] = (struct cm_vol_lease){vid, j->client_ip};
    }
    cm_volume_note_retain(n, bad);
    /* a token sent twice is renewed (and answered) once */
    qsort(l, nl, sizeof *l, cmp_lease);
    size_t k = 0;
    for (size_t i = 0; i < nl; i++)
        if (k == 0 || l[k - 1].vid != l[i].vid)
            l[k++] = l[i];
    nl = k;
    if (nl == 0) {
        free(l);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "retain_vol_tokens", json_object_new_array());
        cm_reply_json(j, o);
        return;
    }
    if (j->hstate && j->hstate_free) /* handled again after a leader change */
        j->hstate_free(j->hstate);
    struct retain_state *rs = cm_malloc(sizeof *rs);
    rs->expire = now + cfg->retain_time_s * 1000000000LL;
    j->hstate = rs;
    j->hstate_free = free;
    struct cm_buf b = {0};
    cm_volume_enc_retain(&b, rs->expire, cm_volume_freeze(fsm), cfg->retain_threshold, l, nl);
    free(l);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_RETAIN, &b, retain_applied);
}

/* ---- lock / unlock ----------------------------------------------------------------------------
 */

static void status_change_applied(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    struct vol_args *a = j->args;
    if (res->v[0]) /* a task record was written: run it */
        cm_volume_task_kick(j->node, a->vid);
    cm_reply_empty(j);
}

void h_volume_lock(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_vol v;
    if (!created(cm_node_fsm(j->node), a->vid, &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    if (v.status == CM_VOL_LOCK) {
        if (cm_node_write_confirmed(j)) /* a deposed leader must not say "locked" */
            cm_reply_empty(j);
        return;
    }
    if (v.status != CM_VOL_IDLE) {
        cm_reply_code(j, CM_ERR_LOCK_NOT_ALLOW);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_vid(&b, a->vid);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_LOCK, &b, status_change_applied);
}

/* The rules of CubeFS v3.3 and later (the 2022 contract answered 903 unless locked): idle, and
 * unlocking without `force`, are answered 200 at once -- the scheduler unlocks volumes that may
 * be idle already and no longer takes 903 for success; only an active volume is 903. A locked
 * volume becomes unlocking. With `force` (v3.5.1) an unlocking volume is taken over too: a new
 * task replaces the queued one and failed readwrite calls on the blobnodes do not hold it up. */
void h_volume_unlock(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_vol v;
    if (!created(cm_node_fsm(j->node), a->vid, &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    if (v.status == CM_VOL_ACTIVE) {
        cm_reply_code(j, CM_ERR_UNLOCK_NOT_ALLOW);
        return;
    }
    /* a forced unlock is a command of format 2: while the cluster is at version 1 (a rolling
     * upgrade) `force` is ignored, as CubeFS clients before v3.5.1 never send it */
    bool force = a->force && cm_cluster_version(cm_node_fsm(j->node)) >= 2;
    if (v.status == CM_VOL_IDLE ||
        (v.status == CM_VOL_UNLOCKING && (!force || v.task_type == CM_TASK_UNLOCK_FORCE))) {
        if (cm_node_write_confirmed(j))
            cm_reply_empty(j);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_vid(&b, a->vid);
    cm_job_propose(j, CM_MOD_VOLUME, force ? CM_VOL_OP_UNLOCK_FORCE : CM_VOL_OP_UNLOCK, &b,
                   status_change_applied);
}

/* ---- unit migration (spec §4.11) ------------------------------------------------------------ */

/* A request waiting on a blobnode. */
struct unit_op {
    uint64_t id;
    struct cm_job *job;
    uint64_t vuid; /* create: the new vuid; stat: new_vuid; release: the vuid */
    uint32_t disk;
    char idc[CM_DISK_IDC_MAX + 1];
    uint32_t exclude[CM_VOL_UNITS_MAX + UNIT_ALLOC_TRIES];
    size_t n_exclude;
    int tries;
};

static struct unit_op *op_new(struct cm_job *j)
{
    struct unit_op *op = cm_calloc(1, sizeof *op);
    op->job = j;
    op->id = cm_vol_ctx_add(j->node, op, free);
    if (op->id == 0) {
        free(op);
        cm_reply_error(j, 503, "the node is shutting down", NULL);
        return NULL;
    }
    j->backref = (void **)&op->job;
    return op;
}

/* The op of a completion and its job; NULL when the op is gone. The op is unregistered and
 * freed by the caller through op_end. */
static struct unit_op *op_find(struct cm_node *n, uint64_t owner)
{
    return cm_vol_ctx_get(n, owner);
}

static void op_end(struct cm_node *n, struct unit_op *op)
{
    if (op->job)
        op->job->backref = NULL;
    cm_vol_ctx_del(n, op->id);
    free(op);
}

static void reply_500(struct cm_job *j, const char *msg)
{
    cm_reply_error(j, 500, msg, "InternalServerError");
}

static void unit_create_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                             const struct cm_bn_result *r);

/* Place the new chunk and ask its blobnode to create it. */
static void unit_place_and_create(struct cm_node *n, struct unit_op *op)
{
    struct cm_fsm *fsm = cm_node_fsm(n);
    struct cm_job *j = op->job;
    uint32_t disk;
    if (cm_disk_place(fsm, op->idc, 1, op->exclude, op->n_exclude, cm_now_ns(), cm_vol_rng(n),
                      &disk) != 0) {
        op->job = NULL;
        if (j) {
            j->backref = NULL;
            reply_500(j, "no enough space to alloc");
        }
        op_end(n, op);
        return;
    }
    struct cm_disk_info d;
    cm_disk_get(fsm, disk, &d);
    op->disk = disk;
    op->tries++;
    op->exclude[op->n_exclude++] = disk;
    cm_blobnode_call(n, d.host, "create", disk, op->vuid, op->id, 0, unit_create_done);
}

static void unit_create_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                             const struct cm_bn_result *r)
{
    (void)tag;
    struct unit_op *op = op_find(n, owner);
    if (op == NULL)
        return;
    if (r->outcome == CM_BN_OK || r->outcome == CM_BN_EXISTS) {
        cm_disk_charge(cm_node_fsm(n), op->disk, 1);
        if (op->job) {
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "vuid", json_object_new_uint64(op->vuid));
            json_object_object_add(o, "disk_id", json_object_new_uint64(op->disk));
            struct cm_job *j = op->job;
            j->backref = NULL;
            op->job = NULL;
            cm_reply_json(j, o);
        }
        op_end(n, op);
        return;
    }
    CM_WARN("volume", "creating chunk %" PRIu64 " on disk %u failed (%ld %s)", op->vuid, op->disk,
            r->status, r->status ? r->body : r->error);
    if (op->job && op->tries < UNIT_ALLOC_TRIES &&
        op->n_exclude < sizeof op->exclude / sizeof op->exclude[0]) {
        unit_place_and_create(n, op); /* another disk of the same IDC */
        return;
    }
    if (op->job) {
        struct cm_job *j = op->job;
        j->backref = NULL;
        op->job = NULL;
        reply_500(j, "blob node create chunk failed");
    }
    op_end(n, op);
}

static void unit_alloc_applied(struct cm_job *j, int status, struct cm_result *res)
{
    if (cm_reply_failed(j, status, res))
        return;
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    struct cm_vunit cur;
    struct cm_disk_info d;
    unsigned index = cm_vuid_index(a->vuid);
    if (!created(fsm, cm_vuid_vid(a->vuid), &v) || index >= v.n_units) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    cm_volume_unit(fsm, v.vid, index, &cur);
    if (!cm_disk_get(fsm, cur.disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    struct unit_op *op = op_new(j);
    if (op == NULL)
        return;
    op->vuid = cm_vuid_make(v.vid, index, (uint32_t)res->v[0]);
    snprintf(op->idc, sizeof op->idc, "%s", d.idc);
    for (unsigned i = 0; i < v.n_units; i++) { /* every disk of the volume */
        struct cm_vunit u;
        cm_volume_unit(fsm, v.vid, i, &u);
        op->exclude[op->n_exclude++] = u.disk_id;
    }
    unit_place_and_create(j->node, op);
}

void h_volume_unit_alloc(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    if (!created(fsm, cm_vuid_vid(a->vuid), &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    unsigned index = cm_vuid_index(a->vuid);
    if (index >= v.n_units) {
        cm_reply_code(j, CM_ERR_VOLUME_UNIT_NOT_EXIST);
        return;
    }
    struct cm_vunit u;
    cm_volume_unit(fsm, v.vid, index, &u);
    if (u.vuid != a->vuid) { /* CubeFS v3.5.1: only the current unit moves (2022: any epoch) */
        cm_reply_code(j, CM_ERR_OLD_VUID_NOT_MATCH);
        return;
    }
    if (!cm_disk_get(fsm, u.disk_id, NULL)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    if (u.next_epoch >= CM_EPOCH_MAX) {
        reply_500(j, "the unit has used up its epochs");
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_alloc_unit(&b, u.vuid, u.next_epoch + 1);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_ALLOC_UNIT, &b, unit_alloc_applied);
}

static void update_stat_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                             const struct cm_bn_result *r)
{
    (void)tag;
    struct unit_op *op = op_find(n, owner);
    if (op == NULL)
        return;
    struct cm_job *j = op->job;
    if (j == NULL) {
        op_end(n, op);
        return;
    }
    uint32_t disk = op->disk;
    op_end(n, op); /* clears the job's backref */
    if (r->outcome != CM_BN_OK) {
        cm_reply_code(j, CM_ERR_STAT_CHUNK_FAILED);
        return;
    }
    char err[128];
    struct json_object *o = cm_json_parse(r->body, r->len, false, err, sizeof err), *v;
    uint64_t got = 0;
    bool ok = o && json_object_object_get_ex(o, "diskid", &v) &&
              cm_json_as_u64(v, "diskid", UINT32_MAX, &got, err, sizeof err) == CM_JSON_OK;
    json_object_put(o);
    if (!ok) {
        cm_reply_code(j, CM_ERR_STAT_CHUNK_FAILED);
        return;
    }
    if (got != disk) {
        cm_reply_code(j, CM_ERR_NEW_DISKID_NOT_MATCH);
        return;
    }
    struct vol_args *a = j->args;
    struct cm_buf b = {0};
    cm_volume_enc_update_unit(&b, a->old_vuid, a->new_vuid, a->disk_id);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_UPDATE_UNIT, &b, NULL);
}

/* The created volume and unit index a vuid names; answers 904 (no such volume) or 400 (no such
 * unit: the reference crashed here) and returns false when either is missing. */
static bool vuid_unit(struct cm_job *j, uint64_t vuid, const char *field, struct cm_vol *v,
                      unsigned *index)
{
    uint32_t vid = cm_vuid_vid(vuid);
    *index = cm_vuid_index(vuid);
    if (!created(cm_node_fsm(j->node), vid, v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return false;
    }
    if (*index >= v->n_units) {
        char msg[160];
        snprintf(msg, sizeof msg, "Illegal Arguments: %s has unit index %u, volume %u has %u",
                 field, *index, vid, v->n_units);
        cm_reply_error(j, 400, msg, NULL);
        return false;
    }
    return true;
}

void h_volume_update(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    uint32_t vid = cm_vuid_vid(a->old_vuid);
    unsigned index;
    if (!vuid_unit(j, a->old_vuid, "old_vuid", &v, &index))
        return;
    struct cm_vunit u;
    cm_volume_unit(fsm, vid, index, &u);
    uint64_t next = cm_vuid_make(vid, index, u.next_epoch);
    /* 918 means exactly "old_vuid is not the unit's current vuid" (nor the switch done already):
     * the CubeFS v3.5 scheduler panics on it */
    if ((u.vuid != a->old_vuid && u.vuid != a->new_vuid) ||
        u.next_epoch < cm_vuid_epoch(a->old_vuid)) {
        cm_reply_code(j, CM_ERR_OLD_VUID_NOT_MATCH);
        return;
    }
    /* a retry of a switch that was applied: done, also when a later /volume/unit/alloc moved
     * the reserved epoch on (v3.5 answers this before the 919 check, the 2022 contract after) */
    if (u.vuid == a->new_vuid) {
        cm_reply_empty(j);
        return;
    }
    if (next != a->new_vuid) {
        cm_reply_code(j, CM_ERR_NEW_VUID_NOT_MATCH);
        return;
    }
    struct cm_disk_info d;
    if (!cm_disk_get(fsm, a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    struct unit_op *op = op_new(j);
    if (op == NULL)
        return;
    op->disk = a->disk_id;
    op->vuid = a->new_vuid;
    cm_blobnode_call(j->node, d.host, "stat", a->disk_id, a->new_vuid, op->id, 0, update_stat_done);
}

static void release_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                         const struct cm_bn_result *r)
{
    (void)tag;
    struct unit_op *op = op_find(n, owner);
    if (op == NULL)
        return;
    struct cm_job *j = op->job;
    op_end(n, op);
    if (j == NULL)
        return;
    if (r->status == 200)
        cm_reply_empty(j);
    else if (r->status == 0)
        reply_500(j, r->error[0] ? r->error : "blob node unreachable");
    else /* the blobnode's status and body, unchanged */
        cm_reply(j, (int)r->status, r->len ? (r->ctype[0] ? "application/json" : NULL) : NULL,
                 r->len ? cm_strndup(r->body, r->len) : NULL, r->len);
}

void h_volume_unit_release(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_disk_info d;
    if (!cm_disk_get(fsm, a->disk_id, &d)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    struct cm_vol v;
    uint32_t vid = cm_vuid_vid(a->vuid);
    unsigned index = cm_vuid_index(a->vuid);
    if (cm_volume_get(fsm, vid, &v) && v.state != CM_VOL_ABORTED && index < v.n_units) {
        struct cm_vunit u;
        cm_volume_unit(fsm, vid, index, &u);
        if (u.vuid == a->vuid) { /* releasing it would delete live data */
            char msg[200];
            snprintf(msg, sizeof msg,
                     "Illegal Arguments: vuid %" PRIu64
                     " is the current unit %u of volume %u; only replaced units can be released",
                     a->vuid, index, vid);
            cm_reply_error(j, 400, msg, NULL);
            return;
        }
    }
    struct unit_op *op = op_new(j);
    if (op == NULL)
        return;
    cm_blobnode_call(j->node, d.host, "release", a->disk_id, a->vuid, op->id, 0, release_done);
}

/* ---- admin updates ----------------------------------------------------------------------------
 */

void h_admin_update_volume(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_vol v;
    if (!created(cm_node_fsm(j->node), a->vid, &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_admin_volume(&b, a->vid, a->status, a->total, a->free, a->used);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_ADMIN_VOLUME, &b, NULL);
}

void h_admin_update_unit(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    unsigned index;
    if (!vuid_unit(j, a->vuid, "vuid", &v, &index))
        return;
    if (a->epoch < 1 || a->epoch > CM_EPOCH_MAX || a->next_epoch < 1 ||
        a->next_epoch > CM_EPOCH_MAX) {
        reply_500(j, "args not valid");
        return;
    }
    if (a->epoch > a->next_epoch) {
        cm_reply_error(j, 400, "Illegal Arguments: epoch must not exceed next_epoch", NULL);
        return;
    }
    if (a->disk_id == 0) {
        cm_reply_error(j, 400, "Illegal Arguments: disk_id must name the unit's disk", NULL);
        return;
    }
    if (!cm_disk_get(fsm, a->disk_id, NULL)) {
        cm_reply_code(j, CM_ERR_DISK_NOT_FOUND);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_admin_unit(&b, a->vuid, (uint32_t)a->epoch, (uint32_t)a->next_epoch, a->disk_id,
                             a->compact);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_ADMIN_UNIT, &b, NULL);
}

/* ---- chunks -----------------------------------------------------------------------------------
 */

void h_chunk_report(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    size_t k = 0;
    for (size_t i = 0; i < a->n_recs; i++) { /* keep what would apply: the log stays small */
        const struct cm_chunk_rec *r = &a->recs[i];
        struct cm_vol v;
        unsigned index = cm_vuid_index(r->vuid);
        if (!created(fsm, cm_vuid_vid(r->vuid), &v) || index >= v.n_units)
            continue;
        struct cm_vunit u;
        cm_volume_unit(fsm, v.vid, index, &u);
        if (u.vuid == r->vuid && (u.total != r->total || u.free != r->free || u.used != r->used))
            a->recs[k++] = *r;
    }
    if (k == 0) {
        cm_reply_empty(j);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_chunk_report(&b, a->recs, k);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_CHUNK_REPORT, &b, NULL);
}

void h_chunk_set_compact(struct cm_job *j)
{
    struct vol_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    struct cm_vol v;
    if (!created(fsm, cm_vuid_vid(a->vuid), &v)) {
        cm_reply_code(j, CM_ERR_VOLUME_NOT_EXIST);
        return;
    }
    unsigned index = cm_vuid_index(a->vuid);
    struct cm_vunit u;
    cm_volume_unit(fsm, v.vid, index, &u);
    if (index >= v.n_units || u.vuid != a->vuid) {
        cm_reply_code(j, CM_ERR_VOLUME_UNIT_NOT_EXIST);
        return;
    }
    if (u.compacting == a->compact) {
        if (cm_node_write_confirmed(j))
            cm_reply_empty(j);
        return;
    }
    struct cm_buf b = {0};
    cm_volume_enc_set_compact(&b, a->vuid, a->compact);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_SET_COMPACT, &b, NULL);
}

/* ---- /stat ------------------------------------------------------------------------------------
 */

struct json_object *cm_volume_stat(struct cm_node *n)
{
    struct cm_volume_counts c;
    cm_volume_counts(cm_node_fsm(n), 0, &c);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "total_volume", json_object_new_int64(c.total));
    json_object_object_add(o, "idle_volume", json_object_new_int64(c.idle));
    json_object_object_add(o, "can_alloc_volume", json_object_new_int64(c.allocatable));
    json_object_object_add(o, "active_volume", json_object_new_int64(c.active));
    json_object_object_add(o, "lock_volume", json_object_new_int64(c.lock));
    json_object_object_add(o, "unlocking_volume", json_object_new_int64(c.unlocking));
    return o;
}
