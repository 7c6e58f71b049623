/* The volume module: vuid packing, every command (valid and invalid), the pending/commit/abort
 * protocol, leases, tasks, unit replacement, chunk reports, health, allocation pre-selection,
 * and the snapshot section (byte-identical round trip, copy-on-write while a snapshot is held). */
#include "testutil.h"

#include <zlib.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/fsm/mod_volume.h"
#include "../../src/http/errors.h"

#define CS 16777216ULL /* chunk_size of the test config */
#define NS 1000000000LL
#define T0 (1700000000LL * NS)
#define EC3P3 11
#define EC6P6 2
#define FREEZE 10485760ULL

static struct cm_config cfg;
static int last_code;
static struct cm_vol_granted *last_granted;
static uint64_t last_v0;

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)arg, (void)cmd;
    last_code = res->code;
    last_v0 = res->v[0];
    free(last_granted);
    last_granted = NULL;
    if (res->data && cmd->module == CM_MOD_VOLUME &&
        (cmd->op == CM_VOL_OP_ALLOC || cmd->op == CM_VOL_OP_RETAIN)) {
        struct cm_vol_granted *g = res->data;
        last_granted = cm_malloc(sizeof *g + (g->n + 1) * sizeof g->vids[0]);
        memcpy(last_granted, g, sizeof *g + g->n * sizeof g->vids[0]);
    }
}

static int apply_raw(struct cm_fsm *fsm, uint8_t module, uint8_t op, const void *p, size_t len,
                     int64_t ts)
{
    static uint64_t req = 1;
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 7,
                       .req_id = req++,
                       .ts_ns = ts,
                       .payload = p,
                       .len = len};
    struct raft_buffer rb;
    assert_int_equal(cm_cmd_encode(&c, &rb), 0);
    last_code = 12345;
    cm_fsm_apply_buf(fsm, rb.base, rb.len);
    raft_free(rb.base);
    assert_int_not_equal(last_code, 12345);
    return last_code;
}

static int apply_at(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *b, int64_t ts)
{
    int rc = apply_raw(fsm, module, op, b->data, b->len, ts);
    cm_buf_free(b);
    return rc;
}

static int vapply(struct cm_fsm *fsm, uint8_t op, struct cm_buf *b)
{
    return apply_at(fsm, CM_MOD_VOLUME, op, b, T0);
}

static void check(struct cm_fsm *fsm)
{
    char err[256];
    if (cm_volume_selfcheck(fsm, err, sizeof err) != 0)
        fail_msg("volume self-check: %s", err);
    if (cm_disk_selfcheck(fsm, err, sizeof err) != 0)
        fail_msg("disk self-check: %s", err);
}

/* A state machine with `n` disks 1..n on hosts h<i % hosts>, all writable for an hour. */
static struct cm_fsm *new_fsm(unsigned n)
{
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    fsm->on_applied = record;
    struct cm_buf b = {0};
    cm_scope_reserve(fsm, "diskid", n, &b);
    apply_at(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, T0);
    for (unsigned i = 1; i <= n; i++) {
        char host[64], path[64];
        snprintf(host, sizeof host, "http://10.0.0.%u:8899", i);
        snprintf(path, sizeof path, "/data/%u", i);
        struct cm_disk_info d = {.disk_id = i,
                                 .cluster_id = 1,
                                 .idc = "z0",
                                 .rack = "r0",
                                 .host = host,
                                 .path = path,
                                 .create_time = "2022-03-24T17:33:45Z",
                                 .last_update_time = "2022-03-24T17:33:45Z",
                                 .status = CM_DISK_NORMAL,
                                 .size = 1000 * (int64_t)CS,
                                 .free = 1000 * (int64_t)CS};
        cm_disk_enc_add(&b, &d, &cfg.fsm);
        assert_int_equal(apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &b, T0), 0);
    }
    return fsm;
}

static int pending(struct cm_fsm *fsm, uint32_t vid, uint8_t mode, const uint32_t *disks,
                   unsigned n)
{
    struct cm_vol_place p[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < n; i++)
        p[i] = (struct cm_vol_place){disks[i], 1};
    struct cm_buf b = {0};
    cm_volume_enc_pending(&b, vid, mode, CS, p, n);
    return vapply(fsm, CM_VOL_OP_PENDING, &b);
}

static int resolve(struct cm_fsm *fsm, uint32_t vid, bool commit)
{
    struct cm_vol v;
    assert_true(cm_volume_get(fsm, vid, &v));
    uint32_t e[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < v.n_units; i++) {
        struct cm_vunit u;
        cm_volume_unit(fsm, vid, i, &u);
        e[i] = u.epoch;
    }
    struct cm_buf b = {0};
    cm_volume_enc_resolve(&b, vid, e, v.n_units);
    return vapply(fsm, commit ? CM_VOL_OP_COMMIT : CM_VOL_OP_ABORT, &b);
}

/* An idle EC3P3 volume `vid` on disks first..first+5. */
static void make_volume(struct cm_fsm *fsm, uint32_t vid, uint32_t first)
{
    uint32_t d[6];
    for (unsigned i = 0; i < 6; i++)
        d[i] = first + i;
    assert_int_equal(pending(fsm, vid, EC3P3, d, 6), 0);
    assert_int_equal(resolve(fsm, vid, true), 0);
}

static struct cm_vol get(struct cm_fsm *fsm, uint32_t vid)
{
    struct cm_vol v;
    assert_true(cm_volume_get(fsm, vid, &v));
    return v;
}

static struct cm_vunit unit(struct cm_fsm *fsm, uint32_t vid, unsigned i)
{
    struct cm_vunit u;
    cm_volume_unit(fsm, vid, i, &u);
    return u;
}

static int alloc(struct cm_fsm *fsm, const char *host, int64_t expire, const uint32_t *vids,
                 size_t n, int64_t ts)
{
    struct cm_buf b = {0};
    cm_volume_enc_alloc(&b, EC3P3, host, expire, FREEZE, vids, n);
    return apply_at(fsm, CM_MOD_VOLUME, CM_VOL_OP_ALLOC, &b, ts);
}

static int op_vid(struct cm_fsm *fsm, uint8_t op, uint32_t vid)
{
    struct cm_buf b = {0};
    cm_volume_enc_vid(&b, vid);
    return vapply(fsm, op, &b);
}

static int disk_health(struct cm_fsm *fsm, uint32_t disk, bool bad)
{
    struct cm_disk_mark m = {disk, bad};
    struct cm_buf b = {0};
    cm_volume_enc_disk_health(&b, &m, 1);
    return vapply(fsm, CM_VOL_OP_DISK_HEALTH, &b);
}

static int compact(struct cm_fsm *fsm, uint64_t vuid, bool on)
{
    struct cm_buf b = {0};
    cm_volume_enc_set_compact(&b, vuid, on);
    return vapply(fsm, CM_VOL_OP_SET_COMPACT, &b);
}

static struct cm_volume_counts counts(struct cm_fsm *fsm)
{
    struct cm_volume_counts c;
    cm_volume_counts(fsm, 0, &c);
    return c;
}

/* ------------------------------------------------------------------------------------------ */

static void test_vuid_packing(void **state)
{
    (void)state;
    /* the examples of spec §3.1 */
    assert_true(cm_vuid_make(1, 0, 1) == 4294967297ULL);
    assert_true(cm_vuid_make(1, 1, 1) == 4311744513ULL);
    assert_true(cm_vuid_make(12, 5, 3) == 51623493635ULL);
    uint64_t v = cm_vuid_make(UINT32_MAX, 255, CM_EPOCH_MAX);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cm_vuid_vid(v), UINT32_MAX);
    assert_int_equal(cm_vuid_index(v), 255);
    assert_int_equal(cm_vuid_epoch(v), CM_EPOCH_MAX);
    assert_true(cm_vuid_prefix(v) == (UINT64_MAX & ~0xffffffULL));
    assert_true(cm_vuid_prefix(51623493635ULL) + 3 == 51623493635ULL);
    assert_false(cm_vuid_valid(0));
    assert_false(cm_vuid_valid(cm_vuid_make(5, 2, 0)));
    assert_true(cm_vuid_valid(cm_vuid_make(5, 2, 1)));
}

static void test_pending_commit_abort(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(14);
    uint32_t d[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(pending(fsm, 1, EC3P3, d, 6), 0);
    assert_int_equal(last_v0, 1);
    /* recorded, scope raised, invisible to listing and to the counters of created volumes */
    assert_int_equal(cm_scope_current(fsm, "vid"), 1);
    assert_int_equal(get(fsm, 1).state, CM_VOL_PENDING);
    assert_int_equal(get(fsm, 1).create_by, 7);
    assert_int_equal(cm_volume_next(fsm, 0), 0);
    assert_int_equal(counts(fsm).total, 0);
    assert_int_equal(counts(fsm).pending, 1);
    assert_int_equal(cm_volume_units_on_disk(fsm, 3), 1); /* but it holds its disks (930) */
    /* the vid is taken */
    uint32_t d2[6] = {7, 8, 9, 10, 11, 12};
    assert_int_equal(pending(fsm, 1, EC3P3, d2, 6), CM_ERR_UNEXPECT);
    /* invalid records change nothing */
    uint32_t dup[6] = {7, 8, 9, 10, 11, 7}, unknown[6] = {7, 8, 9, 10, 11, 99};
    assert_int_equal(pending(fsm, 2, EC3P3, dup, 6), CM_ERR_UNEXPECT);
    assert_int_equal(pending(fsm, 2, EC3P3, unknown, 6), CM_ERR_UNEXPECT);
    assert_int_equal(pending(fsm, 2, EC3P3, d2, 5), CM_ERR_UNEXPECT);
    assert_int_equal(pending(fsm, 2, 99, d2, 6), CM_ERR_UNEXPECT);
    assert_int_equal(pending(fsm, 0, EC3P3, d2, 6), CM_ERR_UNEXPECT);
    assert_int_equal(pending(fsm, 5000000, EC3P3, d2, 6), CM_ERR_UNEXPECT); /* far ahead */
    assert_false(cm_volume_get(fsm, 2, NULL));
    assert_int_equal(cm_scope_current(fsm, "vid"), 1);

    /* a failed unit moves to another disk with the next epoch (compare-and-set on the epoch) */
    struct cm_vol_move mv = {.index = 2, .old_epoch = 1, .new_epoch = 2, .new_disk = 13};
    struct cm_buf b = {0};
    cm_volume_enc_pending_units(&b, 1, &mv, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_PENDING_UNITS, &b), 0);
    assert_int_equal(unit(fsm, 1, 2).disk_id, 13);
    assert_int_equal(unit(fsm, 1, 2).epoch, 2);
    assert_true(unit(fsm, 1, 2).vuid == cm_vuid_make(1, 2, 2));
    assert_int_equal(cm_volume_units_on_disk(fsm, 3), 0);
    assert_int_equal(cm_volume_units_on_disk(fsm, 13), 1);
    cm_volume_enc_pending_units(&b, 1, &mv, 1); /* replayed: the epoch no longer matches */
    assert_int_equal(vapply(fsm, CM_VOL_OP_PENDING_UNITS, &b), CM_ERR_OLD_VUID_NOT_MATCH);
    mv = (struct cm_vol_move){.index = 0, .old_epoch = 1, .new_epoch = 2, .new_disk = 2};
    cm_volume_enc_pending_units(&b, 1, &mv, 1); /* onto a disk of the volume */
    assert_int_equal(vapply(fsm, CM_VOL_OP_PENDING_UNITS, &b), CM_ERR_UNEXPECT);
    check(fsm);

    /* commit with stale epochs (a deposed leader's view) is refused */
    uint32_t stale[6] = {1, 1, 1, 1, 1, 1};
    cm_volume_enc_resolve(&b, 1, stale, 6);
    assert_int_equal(vapply(fsm, CM_VOL_OP_COMMIT, &b), CM_ERR_OLD_VUID_NOT_MATCH);
    assert_int_equal(get(fsm, 1).state, CM_VOL_PENDING);
    assert_int_equal(resolve(fsm, 1, true), 0);
    struct cm_vol v = get(fsm, 1);
    assert_int_equal(v.state, CM_VOL_CREATED);
    assert_int_equal(v.status, CM_VOL_IDLE);
    assert_int_equal(v.health, 0);
    assert_true(v.total == 3 * CS && v.free == 3 * CS && v.used == 0);
    assert_int_equal(cm_volume_next(fsm, 0), 1);
    assert_int_equal(counts(fsm).total, 1);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(counts(fsm).pending, 0);
    assert_int_equal(resolve(fsm, 1, true), CM_ERR_VOLUME_NOT_EXIST); /* not pending any more */

    /* abort: a tombstone keeps the vid, the disks are free again */
    assert_int_equal(pending(fsm, 2, EC3P3, d2, 6), 0);
    assert_int_equal(cm_volume_units_on_disk(fsm, 7), 1);
    assert_int_equal(resolve(fsm, 2, false), 0);
    assert_int_equal(get(fsm, 2).state, CM_VOL_ABORTED);
    assert_int_equal(get(fsm, 2).n_units, 0);
    assert_int_equal(cm_volume_units_on_disk(fsm, 7), 0);
    assert_int_equal(counts(fsm).aborted, 1);
    assert_int_equal(pending(fsm, 2, EC3P3, d2, 6), CM_ERR_UNEXPECT); /* never reused */
    assert_int_equal(cm_volume_next(fsm, 1), 0);
    /* a higher vid raises the scope too */
    assert_int_equal(pending(fsm, 9, EC3P3, d2, 6), 0);
    assert_int_equal(cm_scope_current(fsm, "vid"), 9);
    size_t n;
    uint32_t *p = cm_volume_pending(fsm, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0], 9);
    free(p);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_alloc_retain_expire(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 7);
    make_volume(fsm, 3, 1);
    int64_t exp = T0 + 600 * NS;
    uint32_t want[] = {1, 2, 2, 77};
    assert_int_equal(alloc(fsm, "10.1.1.1", exp, want, 4, T0), 0);
    assert_int_equal(last_granted->n, 2); /* duplicates and unknown vids are skipped */
    struct cm_vol v = get(fsm, 1);
    assert_int_equal(v.status, CM_VOL_ACTIVE);
    assert_string_equal(v.token_host, "10.1.1.1");
    assert_true(v.expire_ns == exp);
    assert_int_equal(counts(fsm).active, 2);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(cm_volume_disk_load(fsm, 1), 1);
    /* not idle any more: nothing granted a second time */
    assert_int_equal(alloc(fsm, "10.9.9.9", exp, want, 1, T0), 0);
    assert_int_equal(last_granted->n, 0);
    assert_true(cm_volume_retainable(fsm, 1, "10.1.1.1", 0, T0));
    assert_false(cm_volume_retainable(fsm, 1, "10.9.9.9", 0, T0));
    assert_false(cm_volume_retainable(fsm, 1, "10.1.1.1", 1, T0)); /* threshold above health */
    assert_false(cm_volume_retainable(fsm, 1, "10.1.1.1", 0, exp));

    /* retain: only the right host, before expiry, above the threshold */
    struct cm_vol_lease l[] = {{1, "10.1.1.1"}, {2, "10.2.2.2"}, {3, "10.1.1.1"}};
    struct cm_buf b = {0};
    cm_volume_enc_retain(&b, exp + 100, FREEZE, 0, l, 3);
    assert_int_equal(apply_at(fsm, CM_MOD_VOLUME, CM_VOL_OP_RETAIN, &b, T0 + NS), 0);
    assert_int_equal(last_granted->n, 1);
    assert_int_equal(last_granted->vids[0], 1);
    assert_true(get(fsm, 1).expire_ns == exp + 100);
    cm_volume_enc_retain(&b, exp + 200, FREEZE, 1, l, 1); /* positive thresholds work */
    assert_int_equal(apply_at(fsm, CM_MOD_VOLUME, CM_VOL_OP_RETAIN, &b, T0 + NS), 0);
    assert_int_equal(last_granted->n, 0);
    cm_volume_enc_retain(&b, exp + 300, FREEZE, 0, l + 1, 1); /* volume 2 lapsed at `exp` */
    assert_int_equal(apply_at(fsm, CM_MOD_VOLUME, CM_VOL_OP_RETAIN, &b, exp + NS), 0);
    assert_int_equal(last_granted->n, 0);

    /* expiry: every expired volume of the batch, skipping the renewed one in the middle */
    size_t n;
    uint32_t *ex = cm_volume_expired(fsm, exp + 50, 100, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ex[0], 2);
    free(ex);
    uint32_t batch[] = {1, 2, 3};
    cm_volume_enc_vids(&b, batch, 3);
    assert_int_equal(apply_at(fsm, CM_MOD_VOLUME, CM_VOL_OP_EXPIRE, &b, exp + 50), 0);
    assert_int_equal(last_v0, 1);
    assert_int_equal(get(fsm, 2).status, CM_VOL_IDLE);
    assert_string_equal(get(fsm, 2).token_host, "10.1.1.1"); /* the token record is kept */
    assert_int_equal(get(fsm, 1).status, CM_VOL_ACTIVE);
    assert_int_equal(counts(fsm).allocatable, 2);
    assert_int_equal(cm_volume_disk_load(fsm, 7), 0);
    check(fsm);

    /* a full volume (free at the freeze threshold) is neither granted nor allocatable */
    struct cm_chunk_rec rec = {cm_vuid_make(3, 0, 1), CS, CS - FREEZE / 3, FREEZE / 3};
    cm_volume_enc_chunk_report(&b, &rec, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_true(get(fsm, 3).free <= FREEZE);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(alloc(fsm, "10.1.1.1", exp, batch + 2, 1, T0), 0);
    assert_int_equal(last_granted->n, 0);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_lock_unlock_tasks(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 7);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 9), CM_ERR_VOLUME_NOT_EXIST);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 9), CM_ERR_VOLUME_NOT_EXIST);
    /* unlocking an idle volume is done already (CubeFS v3.3; the 2022 contract said 903) */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 1), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).status, CM_VOL_IDLE);
    assert_int_equal(get(fsm, 1).task_type, CM_TASK_NONE);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 1), 0);
    uint32_t t1 = (uint32_t)last_v0;
    struct cm_vol v = get(fsm, 1);
    assert_int_equal(v.status, CM_VOL_LOCK);
    assert_int_equal(v.task_type, CM_TASK_LOCK);
    assert_int_equal(v.task_id, t1);
    assert_int_equal(counts(fsm).lock, 1);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 1), 0); /* already locked: fine */
    assert_int_equal(get(fsm, 1).task_id, t1);
    uint32_t two = 2;
    assert_int_equal(alloc(fsm, "h", T0 + NS, &two, 1, T0), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 2), CM_ERR_LOCK_NOT_ALLOW); /* active */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 2), CM_ERR_UNLOCK_NOT_ALLOW);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 2), CM_ERR_UNLOCK_NOT_ALLOW);
    assert_int_equal(get(fsm, 2).status, CM_VOL_ACTIVE);
    /* the readonly task finishes: the record goes, the status stays lock */
    struct cm_buf b = {0};
    cm_volume_enc_task_done(&b, 1, CM_TASK_LOCK, t1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_TASK_DONE, &b), 0);
    assert_int_equal(get(fsm, 1).task_type, CM_TASK_NONE);
    assert_int_equal(get(fsm, 1).status, CM_VOL_LOCK);
    /* unlock: unlocking with a newer task; an old task's completion changes nothing */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 1), 0);
    uint32_t t2 = (uint32_t)last_v0;
    assert_true(t2 > t1);
    assert_int_equal(get(fsm, 1).status, CM_VOL_UNLOCKING);
    /* unlocking already: nothing new, the task stays */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 1), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).task_id, t2);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 1), CM_ERR_LOCK_NOT_ALLOW);
    size_t n;
    uint32_t *tasks = cm_volume_tasks(fsm, &n);
    assert_int_equal(n, 1);
    assert_int_equal(tasks[0], 1);
    free(tasks);
    cm_volume_enc_task_done(&b, 1, CM_TASK_UNLOCK, t1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_TASK_DONE, &b), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).status, CM_VOL_UNLOCKING);
    cm_volume_enc_task_done(&b, 1, CM_TASK_UNLOCK, t2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_TASK_DONE, &b), 0);
    assert_int_equal(last_v0, 1);
    assert_int_equal(get(fsm, 1).status, CM_VOL_IDLE);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(counts(fsm).unlocking, 0);
    check(fsm);
    cm_fsm_free(fsm);
}

/* A forced unlock (CubeFS v3.5.1) takes over a locked or unlocking volume with a task of its
 * own; the task it replaced completes into nothing. */
static void test_forced_unlock(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 7);
    make_volume(fsm, 3, 1);
    /* of format 2: proposed only once every member applies it (a format-1 node would skip it) */
    struct cm_cmd c = {.module = CM_MOD_VOLUME, .op = CM_VOL_OP_UNLOCK_FORCE};
    assert_int_equal(cm_fsm_cmd_version(&c), 2);
    c.op = CM_VOL_OP_UNLOCK;
    assert_int_equal(cm_fsm_cmd_version(&c), 1);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 9), CM_ERR_VOLUME_NOT_EXIST);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 1), 0); /* idle: nothing to do */
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).task_type, CM_TASK_NONE);
    /* unlocking with a plain task: the forced one replaces it */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 1), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 1), 0);
    uint32_t plain = (uint32_t)last_v0;
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 1), 0);
    uint32_t forced = (uint32_t)last_v0;
    assert_true(forced > plain);
    struct cm_vol v = get(fsm, 1);
    assert_int_equal(v.status, CM_VOL_UNLOCKING);
    assert_int_equal(v.task_type, CM_TASK_UNLOCK_FORCE);
    assert_int_equal(v.task_id, forced);
    assert_int_equal(counts(fsm).unlocking, 1);
    /* a forced unlock under way is not restarted, by a forced or a plain unlock */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 1), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 1), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).task_id, forced);
    struct cm_buf b = {0};
    cm_volume_enc_task_done(&b, 1, CM_TASK_UNLOCK, plain); /* the replaced task */
    assert_int_equal(vapply(fsm, CM_VOL_OP_TASK_DONE, &b), 0);
    assert_int_equal(last_v0, 0);
    assert_int_equal(get(fsm, 1).status, CM_VOL_UNLOCKING);
    cm_volume_enc_task_done(&b, 1, CM_TASK_UNLOCK_FORCE, forced);
    assert_int_equal(vapply(fsm, CM_VOL_OP_TASK_DONE, &b), 0);
    assert_int_equal(last_v0, 1);
    assert_int_equal(get(fsm, 1).status, CM_VOL_IDLE);
    assert_int_equal(get(fsm, 1).task_type, CM_TASK_NONE);
    /* straight from lock, replacing the lock task */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 3), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 3), 0);
    assert_int_equal(get(fsm, 3).status, CM_VOL_UNLOCKING);
    assert_int_equal(get(fsm, 3).task_type, CM_TASK_UNLOCK_FORCE);
    /* an unlocking volume without a task (an admin update) gets one */
    cm_volume_enc_admin_volume(&b, 2, CM_VOL_UNLOCKING, 0, 0, 0);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_VOLUME, &b), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK, 2), 0);
    assert_int_equal(get(fsm, 2).task_type, CM_TASK_NONE);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 2), 0);
    assert_int_equal(get(fsm, 2).task_type, CM_TASK_UNLOCK_FORCE);
    size_t n;
    uint32_t *tasks = cm_volume_tasks(fsm, &n);
    assert_int_equal(n, 2);
    free(tasks);
    check(fsm);
    cm_fsm_free(fsm);
}

/* volume_mgr_config.allocatable_size (CubeFS v3.3) decides what is allocatable; the freeze
 * threshold still decides retain. */
static void test_allocatable_size(void **state)
{
    (void)state;
    const uint64_t min = 40ULL << 20; /* a fresh EC3P3 volume has 48 MiB */
    cfg.allocatable_size = (int64_t)min;
    struct cm_fsm *fsm = new_fsm(12);
    assert_true(cm_volume_alloc_threshold(fsm) == min);
    assert_true(cm_volume_freeze(fsm) == FREEZE);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 7);
    assert_int_equal(counts(fsm).allocatable, 2);
    /* 30 MiB free: above the freeze threshold, not above allocatable_size */
    struct cm_chunk_rec rec[] = {{cm_vuid_make(1, 2, 1), CS, CS - (10ULL << 20), 10ULL << 20},
                                 {cm_vuid_make(2, 0, 1), CS, CS - (10ULL << 20), 10ULL << 20}};
    struct cm_buf b = {0};
    cm_volume_enc_chunk_report(&b, rec, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_true(get(fsm, 1).free == 30ULL << 20);
    assert_int_equal(counts(fsm).allocatable, 1);
    uint32_t out[4];
    assert_int_equal(cm_volume_pick(fsm, EC3P3, 4, NULL, 0, 0, out, NULL), 1);
    assert_int_equal(out[0], 2);
    cm_volume_unmark(fsm, out, 1);
    /* apply grants by the threshold in the command: the proposer's, not this node's */
    uint32_t both[] = {1, 2};
    cm_volume_enc_alloc(&b, EC3P3, "10.1.1.1", T0 + 600 * NS, min, both, 2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC, &b), 0);
    assert_int_equal(last_granted->n, 1);
    assert_int_equal(last_granted->vids[0], 2);
    assert_int_equal(get(fsm, 1).status, CM_VOL_IDLE);
    cm_volume_enc_alloc(&b, EC3P3, "10.1.1.1", T0 + 600 * NS, FREEZE, both, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC, &b), 0);
    assert_int_equal(last_granted->n, 1);
    /* a lease below allocatable_size but above the freeze threshold is still retained */
    cm_volume_enc_chunk_report(&b, rec + 1, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_true(get(fsm, 2).free == 30ULL << 20);
    assert_true(cm_volume_retainable(fsm, 2, "10.1.1.1", 0, T0));
    struct cm_vol_lease l = {2, "10.1.1.1"};
    cm_volume_enc_retain(&b, T0 + 900 * NS, cm_volume_freeze(fsm), 0, &l, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_RETAIN, &b), 0);
    assert_int_equal(last_granted->n, 1);
    check(fsm);
    cm_fsm_free(fsm);
    /* unset (-1): volume_reserve_size governs allocation too, as in the 2022 contract */
    cfg.allocatable_size = -1;
    fsm = new_fsm(6);
    assert_true(cm_volume_alloc_threshold(fsm) == FREEZE);
    make_volume(fsm, 1, 1);
    cm_volume_enc_chunk_report(&b, rec, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_int_equal(counts(fsm).allocatable, 1);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_unit_migration(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(14);
    make_volume(fsm, 1, 1);
    uint64_t old = cm_vuid_make(1, 3, 1), next = cm_vuid_make(1, 3, 2);
    struct cm_buf b = {0};
    /* 1: reserve the next epoch; a second reservation of the same epoch is concurrent (914) */
    cm_volume_enc_alloc_unit(&b, old, 2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC_UNIT, &b), 0);
    assert_int_equal(unit(fsm, 1, 3).next_epoch, 2);
    assert_int_equal(unit(fsm, 1, 3).epoch, 1);
    cm_volume_enc_alloc_unit(&b, old, 2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC_UNIT, &b), CM_ERR_CONCURRENT_ALLOC_UNIT);
    cm_volume_enc_alloc_unit(&b, cm_vuid_make(1, 9, 1), 2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC_UNIT, &b), CM_ERR_VOLUME_NOT_EXIST);
    /* 3: switch; wrong old, wrong new, unknown disk change nothing */
    cm_volume_enc_update_unit(&b, cm_vuid_make(1, 3, 5), next, 13);
    assert_int_equal(vapply(fsm, CM_VOL_OP_UPDATE_UNIT, &b), CM_ERR_OLD_VUID_NOT_MATCH);
    cm_volume_enc_update_unit(&b, old, cm_vuid_make(1, 3, 3), 13);
    assert_int_equal(vapply(fsm, CM_VOL_OP_UPDATE_UNIT, &b), CM_ERR_NEW_VUID_NOT_MATCH);
    cm_volume_enc_update_unit(&b, old, next, 99);
    assert_int_equal(vapply(fsm, CM_VOL_OP_UPDATE_UNIT, &b), CM_ERR_DISK_NOT_FOUND);
    assert_int_equal(compact(fsm, old, true), 0);
    assert_int_equal(get(fsm, 1).health, -1);
    cm_volume_enc_update_unit(&b, old, next, 13);
    assert_int_equal(vapply(fsm, CM_VOL_OP_UPDATE_UNIT, &b), 0);
    struct cm_vunit u = unit(fsm, 1, 3);
    assert_true(u.vuid == next);
    assert_int_equal(u.disk_id, 13);
    assert_false(u.compacting);
    assert_int_equal(get(fsm, 1).health, 0);
    assert_int_equal(cm_volume_units_on_disk(fsm, 4), 0);
    size_t n;
    uint64_t *on = cm_volume_disk_units(fsm, 13, &n);
    assert_int_equal(n, 1);
    assert_true(on[0] == cm_vuid_prefix(next));
    free(on);
    cm_volume_enc_update_unit(&b, old, next, 13); /* a retry: already done */
    assert_int_equal(vapply(fsm, CM_VOL_OP_UPDATE_UNIT, &b), 0);
    /* a stale chunk report for the old vuid is ignored */
    struct cm_chunk_rec rec = {old, CS, 5, CS - 5};
    cm_volume_enc_chunk_report(&b, &rec, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_int_equal(last_v0, 0);
    check(fsm);

    /* the admin update of a unit moves the index (no phantom unit on the old disk) */
    cm_volume_enc_admin_unit(&b, next, 4, 6, 14, true);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_UNIT, &b), 0);
    u = unit(fsm, 1, 3);
    assert_int_equal(u.epoch, 4);
    assert_int_equal(u.next_epoch, 6);
    assert_int_equal(u.disk_id, 14);
    assert_true(u.compacting);
    assert_int_equal(cm_volume_units_on_disk(fsm, 13), 0);
    assert_int_equal(cm_volume_units_on_disk(fsm, 14), 1);
    cm_volume_enc_admin_unit(&b, next, 7, 6, 14, false); /* epoch above next */
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_UNIT, &b), CM_ERR_ILLEGAL_ARGUMENTS);
    cm_volume_enc_admin_unit(&b, next, 7, 8, 0, false);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_UNIT, &b), CM_ERR_DISK_NOT_FOUND);
    cm_volume_enc_admin_unit(&b, cm_vuid_make(1, 6, 1), 1, 1, 1, false);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_UNIT, &b), CM_ERR_VOLUME_UNIT_NOT_EXIST);
    check(fsm);
    cm_fsm_free(fsm);
}

static void put_rec(uint8_t *p, uint64_t vuid, uint32_t disk, uint64_t total, uint64_t used,
                    uint64_t free_)
{
    char id[34];
    snprintf(id, sizeof id, "%016llx-%016llx", (unsigned long long)vuid, 0x16dfa0e05a1b2c3dULL);
    memcpy(p, id, 33);
    cm_wbe64(p + 33, vuid);
    cm_wbe32(p + 41, disk);
    cm_wbe64(p + 45, total);
    cm_wbe64(p + 53, used);
    cm_wbe64(p + 61, free_);
    cm_wbe64(p + 69, total);
    p[77] = 1;
    p[78] = 0;
}

static void test_chunk_report(void **state)
{
    (void)state;
    /* the binary body: count, then 79-byte records */
    uint8_t body[4 + 3 * 79];
    cm_wbe32(body, 3);
    put_rec(body + 4, cm_vuid_make(1, 0, 1), 1, CS, 100, CS - 100);
    put_rec(body + 4 + 79, cm_vuid_make(1, 4, 1), 5, CS, 3000, CS - 3000);
    put_rec(body + 4 + 158, cm_vuid_make(1, 2, 9), 3, CS, 1, CS - 1); /* stale epoch */
    struct cm_chunk_rec *r;
    size_t n;
    assert_int_equal(cm_chunk_report_decode(body, sizeof body, &r, &n), 0);
    assert_int_equal(n, 3);
    assert_true(r[1].vuid == cm_vuid_make(1, 4, 1) && r[1].used == 3000 && r[1].free == CS - 3000 &&
                r[1].total == CS);
    /* short, long, empty and lying counts are refused */
    struct cm_chunk_rec *x;
    size_t m;
    assert_int_equal(cm_chunk_report_decode(body, sizeof body - 1, &x, &m), -1);
    assert_int_equal(cm_chunk_report_decode(body, 3, &x, &m), -1);
    uint8_t big[4 + 80];
    memcpy(big, body, sizeof big);
    cm_wbe32(big, 1);
    assert_int_equal(cm_chunk_report_decode(big, sizeof big, &x, &m), -1);
    cm_wbe32(big, 0xffffffff);
    assert_int_equal(cm_chunk_report_decode(big, sizeof big, &x, &m), -1);
    uint8_t zero[4] = {0};
    assert_int_equal(cm_chunk_report_decode(zero, 4, &x, &m), 0);
    assert_int_equal(m, 0);
    free(x);
    /* at most 65,536 records, as the CubeFS v3.5 decoder: one more is refused */
    size_t most = 4 + (size_t)(CM_CHUNK_REPORT_MAX + 1) * CM_CHUNK_REPORT_REC;
    uint8_t *many = cm_calloc(1, most);
    for (uint32_t i = 0; i <= CM_CHUNK_REPORT_MAX; i++)
        put_rec(many + 4 + (size_t)i * CM_CHUNK_REPORT_REC, cm_vuid_make(i + 1, 0, 1), 1, CS, 0,
                CS);
    cm_wbe32(many, CM_CHUNK_REPORT_MAX);
    assert_int_equal(cm_chunk_report_decode(many, most - CM_CHUNK_REPORT_REC, &x, &m), 0);
    assert_int_equal(m, CM_CHUNK_REPORT_MAX);
    free(x);
    cm_wbe32(many, CM_CHUNK_REPORT_MAX + 1);
    assert_int_equal(cm_chunk_report_decode(many, most, &x, &m), -1);
    free(many);

    struct cm_fsm *fsm = new_fsm(6);
    make_volume(fsm, 1, 1);
    struct cm_buf b = {0};
    cm_volume_enc_chunk_report(&b, r, n);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_int_equal(last_v0, 2);
    free(r);
    assert_true(unit(fsm, 1, 0).used == 100);
    assert_true(unit(fsm, 1, 4).free == CS - 3000);
    /* the volume follows its fullest unit, times N (3) */
    struct cm_vol v = get(fsm, 1);
    assert_true(v.free == 3 * (CS - 3000) && v.used == 9000 && v.total == 3 * CS);
    /* that unit frees space again: the next fullest takes over (no stale minimum) */
    struct cm_chunk_rec again = {cm_vuid_make(1, 4, 1), CS, 0, CS};
    cm_volume_enc_chunk_report(&b, &again, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    v = get(fsm, 1);
    assert_true(v.free == 3 * (CS - 100) && v.used == 300);
    /* absurd numbers saturate instead of wrapping */
    struct cm_chunk_rec huge = {cm_vuid_make(1, 1, 1), UINT64_MAX, UINT64_MAX, 1};
    cm_volume_enc_chunk_report(&b, &huge, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    v = get(fsm, 1);
    assert_true(v.total == UINT64_MAX && v.used == UINT64_MAX && v.free == 3);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_health(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 4); /* shares disks 4-6 with volume 1 */
    assert_int_equal(compact(fsm, cm_vuid_make(1, 0, 1), true), 0);
    assert_int_equal(get(fsm, 1).health, -1);
    assert_int_equal(counts(fsm).allocatable, 2);                   /* EC3P3 tolerates -1 */
    assert_int_equal(compact(fsm, cm_vuid_make(1, 0, 1), true), 0); /* same: no-op */
    assert_int_equal(compact(fsm, cm_vuid_make(1, 0, 2), true), CM_ERR_VOLUME_UNIT_NOT_EXIST);
    assert_int_equal(compact(fsm, cm_vuid_make(1, 8, 1), true), CM_ERR_VOLUME_UNIT_NOT_EXIST);
    assert_int_equal(compact(fsm, cm_vuid_make(8, 0, 1), true), CM_ERR_VOLUME_NOT_EXIST);
    /* a bad disk counts for every unit on it */
    assert_int_equal(disk_health(fsm, 5, true), 0);
    assert_int_equal(last_v0, 1);
    assert_true(cm_volume_disk_bad(fsm, 5));
    assert_int_equal(get(fsm, 1).health, -2);
    assert_int_equal(get(fsm, 2).health, -1);
    assert_int_equal(counts(fsm).allocatable, 1);
    assert_int_equal(disk_health(fsm, 5, true), 0); /* no change */
    assert_int_equal(last_v0, 0);
    assert_int_equal(disk_health(fsm, 999, true), 0); /* unknown disks are ignored */
    assert_false(cm_volume_disk_bad(fsm, 999));
    check(fsm);
    assert_int_equal(disk_health(fsm, 5, false), 0);
    assert_int_equal(compact(fsm, cm_vuid_make(1, 0, 1), false), 0);
    assert_int_equal(get(fsm, 1).health, 0);
    assert_int_equal(get(fsm, 2).health, 0);
    assert_int_equal(counts(fsm).allocatable, 2);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_admin_volume(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(6);
    make_volume(fsm, 1, 1);
    struct cm_buf b = {0};
    cm_volume_enc_admin_volume(&b, 2, CM_VOL_LOCK, 0, 0, 0);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_VOLUME, &b), CM_ERR_VOLUME_NOT_EXIST);
    /* active without a lease: allowed, the next expiry scan returns it to idle */
    cm_volume_enc_admin_volume(&b, 1, CM_VOL_ACTIVE, 0, 7, 0);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_VOLUME, &b), 0);
    struct cm_vol v = get(fsm, 1);
    assert_int_equal(v.status, CM_VOL_ACTIVE);
    assert_true(v.free == 7 && v.total == 3 * CS);
    assert_null(v.token_host);
    size_t n;
    uint32_t *ex = cm_volume_expired(fsm, T0, 10, &n);
    assert_int_equal(n, 1);
    free(ex);
    cm_volume_enc_admin_volume(&b, 1, 9, 0, 0, 0); /* status out of range: unchanged */
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_VOLUME, &b), 0);
    assert_int_equal(get(fsm, 1).status, CM_VOL_ACTIVE);
    cm_volume_enc_admin_volume(&b, 1, CM_VOL_UNLOCKING, 0, 0, 0);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ADMIN_VOLUME, &b), 0);
    assert_int_equal(counts(fsm).unlocking, 1);
    assert_int_equal(counts(fsm).allocatable, 0); /* not idle: never allocatable */
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_pick(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    for (uint32_t v = 1; v <= 6; v++)
        make_volume(fsm, v, v <= 3 ? 1 : 7);
    assert_int_equal(compact(fsm, cm_vuid_make(6, 0, 1), true), 0); /* the newest is unhealthy */
    uint32_t out[8];
    uint32_t ex[] = {5};
    size_t n = cm_volume_pick(fsm, EC3P3, 3, ex, 1, 0, out, NULL);
    /* newest first, healthy before unhealthy, excluded skipped */
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 2);
    /* marked ones are not picked twice until unmarked */
    n = cm_volume_pick(fsm, EC3P3, 8, NULL, 0, 0, out + 3, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(out[3], 5);
    assert_int_equal(out[4], 1);
    assert_int_equal(out[5], 6);
    assert_int_equal(cm_volume_pick(fsm, EC3P3, 8, NULL, 0, 0, out, NULL), 0);
    cm_volume_unmark(fsm, out, 6);
    assert_int_equal(cm_volume_pick(fsm, EC6P6, 8, NULL, 0, 0, out, NULL), 0);
    /* disk load: volumes 1-3 sit on disks 1-6; lease two of them, then prefer 4-6 */
    uint32_t lease[] = {1, 2};
    assert_int_equal(alloc(fsm, "h", T0 + NS, lease, 2, T0), 0);
    assert_int_equal(cm_volume_disk_load(fsm, 3), 2);
    bool over;
    n = cm_volume_pick(fsm, EC3P3, 4, NULL, 0, 1, out, &over);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 3); /* load 2: over the threshold of 1 */
    assert_int_equal(out[3], 6); /* unhealthy last */
    assert_true(over);
    check(fsm);
    cm_fsm_free(fsm);
}

static void snapshot(struct cm_fsm *fsm, struct cm_buf *out)
{
    memset(out, 0, sizeof *out);
    cm_fsm_snapshot(fsm, out);
}

/* A state with every kind of record. */
static struct cm_fsm *rich(void)
{
    struct cm_fsm *fsm = new_fsm(14);
    make_volume(fsm, 1, 1);
    make_volume(fsm, 2, 7);
    uint32_t d[6] = {2, 3, 4, 5, 6, 7};
    assert_int_equal(pending(fsm, 3, EC3P3, d, 6), 0);
    assert_int_equal(pending(fsm, 4, EC3P3, d, 6), 0);
    assert_int_equal(resolve(fsm, 4, false), 0);
    make_volume(fsm, 5, 8);
    uint32_t one = 1;
    assert_int_equal(alloc(fsm, "10.1.1.1", T0 + 600 * NS, &one, 1, T0), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 2), 0);
    assert_int_equal(compact(fsm, cm_vuid_make(5, 1, 1), true), 0);
    assert_int_equal(disk_health(fsm, 9, true), 0);
    struct cm_chunk_rec rec[] = {{cm_vuid_make(1, 0, 1), CS, 77, CS - 77},
                                 {cm_vuid_make(5, 2, 1), CS + 1, 1ULL << 40, 3}};
    struct cm_buf b = {0};
    cm_volume_enc_chunk_report(&b, rec, 2);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    cm_volume_enc_alloc_unit(&b, cm_vuid_make(5, 3, 1), 4);
    assert_int_equal(vapply(fsm, CM_VOL_OP_ALLOC_UNIT, &b), 0);
    make_volume(fsm, 7, 9); /* a forced unlock under way */
    assert_int_equal(op_vid(fsm, CM_VOL_OP_LOCK, 7), 0);
    assert_int_equal(op_vid(fsm, CM_VOL_OP_UNLOCK_FORCE, 7), 0);
    return fsm;
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    struct cm_fsm *a = rich();
    check(a);
    struct cm_buf s1, s2;
    snapshot(a, &s1);
    struct cm_fsm *b = cm_fsm_new(&cfg.fsm, 2);
    b->on_applied = record;
    char err[256];
    assert_int_equal(cm_fsm_restore(b, s1.data, s1.len, err, sizeof err), 0);
    check(b);
    snapshot(b, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    /* what readers see is the same */
    assert_int_equal(get(b, 7).task_type, CM_TASK_UNLOCK_FORCE);
    for (uint32_t v = 1; v <= 7; v++) {
        if (v == 6)
            continue;
        struct cm_vol x = get(a, v), y = get(b, v);
        assert_int_equal(x.state, y.state);
        assert_int_equal(x.status, y.status);
        assert_int_equal(x.health, y.health);
        assert_true(x.free == y.free && x.used == y.used && x.total == y.total);
        assert_true(x.expire_ns == y.expire_ns && x.task_id == y.task_id &&
                    x.task_type == y.task_type);
        assert_true((x.token_host == NULL) == (y.token_host == NULL));
        for (unsigned i = 0; i < x.n_units; i++) {
            struct cm_vunit p = unit(a, v, i), q = unit(b, v, i);
            assert_memory_equal(&p, &q, sizeof p);
        }
    }
    struct cm_volume_counts ca = counts(a), cb = counts(b);
    assert_memory_equal(&ca, &cb, sizeof ca);
    assert_int_equal(get(b, 4).state, CM_VOL_ABORTED);
    assert_int_equal(get(b, 3).state, CM_VOL_PENDING);
    assert_true(cm_volume_disk_bad(b, 9));
    /* commands keep working on the restored state, the same way */
    assert_int_equal(resolve(b, 3, true), 0);
    assert_int_equal(resolve(a, 3, true), 0);
    cm_buf_free(&s1);
    cm_buf_free(&s2);
    snapshot(a, &s1);
    snapshot(b, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    /* corrupt sections are refused and leave the state alone */
    s2.data[s2.len - 20] ^= 0x40;
    assert_int_equal(cm_fsm_restore(b, s2.data, s2.len, err, sizeof err), -1);
    check(b);
    cm_buf_free(&s1);
    cm_buf_free(&s2);
    cm_fsm_free(a);
    cm_fsm_free(b);
}

static void test_snapshot_copy_on_write(void **state)
{
    (void)state;
    struct cm_fsm *fsm = rich();
    struct cm_buf before;
    snapshot(fsm, &before);
    /* take a copy, change everything it shares, then encode the copy */
    struct cm_snap_taken *t = cm_fsm_snap_take(fsm);
    make_volume(fsm, 6, 1);
    uint32_t five = 5;
    assert_int_equal(alloc(fsm, "10.2.2.2", T0 + NS, &five, 1, T0), 0);
    struct cm_chunk_rec rec = {cm_vuid_make(1, 1, 1), 5, 4, 1};
    struct cm_buf b = {0};
    cm_volume_enc_chunk_report(&b, &rec, 1);
    assert_int_equal(vapply(fsm, CM_VOL_OP_CHUNK_REPORT, &b), 0);
    assert_int_equal(disk_health(fsm, 9, false), 0);
    struct cm_buf held = {0};
    cm_fsm_snap_write(t, &held);
    assert_int_equal(held.len, before.len);
    assert_memory_equal(held.data, before.data, held.len);
    /* and the live state did change */
    struct cm_buf after;
    snapshot(fsm, &after);
    assert_true(after.len != before.len || memcmp(after.data, before.data, after.len) != 0);
    check(fsm);
    /* a copy outliving its state */
    t = cm_fsm_snap_take(fsm);
    cm_fsm_free(fsm);
    struct cm_buf late = {0};
    cm_fsm_snap_write(t, &late);
    assert_int_equal(late.len, after.len);
    assert_memory_equal(late.data, after.data, late.len);
    cm_buf_free(&before);
    cm_buf_free(&held);
    cm_buf_free(&after);
    cm_buf_free(&late);
}

/* Bad payloads of every op: logged no-ops that never crash and never change state. */
static void test_malformed(void **state)
{
    (void)state;
    struct cm_fsm *fsm = rich();
    struct cm_buf before;
    snapshot(fsm, &before);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(0xff - i * 7);
    for (uint8_t op = 0; op <= 20; op++)
        for (size_t len = 0; len <= sizeof junk; len += 3) {
            apply_raw(fsm, CM_MOD_VOLUME, op, junk, len, T0);
            if (len == 0)
                assert_int_equal(last_code, CM_ERR_UNEXPECT); /* every op needs a payload */
        }
    /* the junk happened to be valid for no volume: nothing changed */
    struct cm_buf after;
    snapshot(fsm, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, after.len);
    check(fsm);
    cm_buf_free(&before);
    cm_buf_free(&after);
    cm_fsm_free(fsm);
}

/* Found by fuzzing snapshot restore: a disk id of 2^26 in the bad-disk set sized the
 * units-by-disk table to 1.5 GiB. Ids beyond the disk module's bound are refused. */
static void test_snapshot_disk_id_bound(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(12);
    make_volume(fsm, 1, 1);
    assert_int_equal(disk_health(fsm, 5, true), 0);
    struct cm_buf snap;
    snapshot(fsm, &snap);
    struct cm_fsm *other = new_fsm(12);
    char err[256];
    assert_int_equal(cm_fsm_restore(other, snap.data, snap.len, err, sizeof err), 0);
    assert_true(cm_volume_disk_bad(other, 5));
    /* walk to the volume section: magic, section count, then (u8 id, u64 length, data) */
    uint8_t *p = (uint8_t *)snap.data + 12, *vol = NULL;
    for (uint32_t i = 0; i < cm_be32((uint8_t *)snap.data + 8); i++) {
        if (p[0] == CM_MOD_VOLUME)
            vol = p + 9;
        p += 9 + cm_be64(p + 1);
    }
    assert_non_null(vol);
    assert_int_equal(vol[8], 1);           /* after the u64 task sequence: one bad disk, */
    assert_int_equal(cm_be32(vol + 9), 5); /* disk 5 */
    for (uint32_t id = CM_DISK_ID_MAX + 1; id != 0 && id <= 1u << 26; id <<= 1) {
        cm_wbe32(vol + 9, id);
        cm_wbe32((uint8_t *)snap.data + snap.len - 4,
                 (uint32_t)crc32(0L, (const Bytef *)snap.data, (uInt)(snap.len - 4)));
        assert_int_equal(cm_fsm_restore(other, snap.data, snap.len, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad disk id"));
        assert_true(cm_volume_disk_bad(other, 5)); /* the state was kept */
    }
    cm_buf_free(&snap);
    cm_fsm_free(other);
    cm_fsm_free(fsm);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vuid_packing),
        cmocka_unit_test(test_pending_commit_abort),
        cmocka_unit_test(test_alloc_retain_expire),
        cmocka_unit_test(test_lock_unlock_tasks),
        cmocka_unit_test(test_forced_unlock),
        cmocka_unit_test(test_allocatable_size),
        cmocka_unit_test(test_unit_migration),
        cmocka_unit_test(test_chunk_report),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_admin_volume),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_copy_on_write),
        cmocka_unit_test(test_snapshot_disk_id_bound),
        cmocka_unit_test(test_malformed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(last_granted);
    cm_config_free(&cfg);
    return rc;
}
