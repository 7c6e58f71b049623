/*
 * Leader jobs of the volume domain:
 *
 * - the pool keeper: per enabled code mode, keep max(min_allocable_volume_count,
 *   floor(total_disk x size_ratio / units)) allocatable idle volumes (spec §11), woken after
 *   allocations and on every tick, at most MAX_NEW creations in flight, backing off per code
 *   mode after a failure;
 * - the creation protocol (below), including the takeover of half-created volumes;
 * - lease expiry every check_expired_volume_interval_s;
 * - the lock/unlock task runner (spec §4.10): blobnode readonly/readwrite on every unit, then a
 *   TASK_DONE proposal; one run per vid at a time, at most MAX_TASKS at once, retried after
 *   min(errors, 30) seconds, at once when a newer task replaced it meanwhile. Units on a disk
 *   that is not normal (broken, repairing, repaired, dropped) or unknown are skipped: their
 *   blobnode no longer serves them, waiting for it would hold the volume forever (CubeFS
 *   v3.5.1 skips broken disks). A forced unlock counts failed readwrite calls as done;
 * - the health watcher: every second, each disk's writability (cm_disk_writable) against the
 *   replicated bad-disk set; differences are proposed as DISK_HEALTH with the decision in the
 *   payload. A disk that is only expired (no heartbeat) is judged bad only once this node has
 *   led for a whole heartbeat lease, so a cluster that was down does not mark every disk bad
 *   before the blobnodes had a chance to heartbeat; more than max_heartbeat_notify_num such
 *   expiries at once are not proposed (as the reference does).
 *
 * Creation protocol (each step is a proposal; every proposal on a pending volume compares the
 * epochs it expects, so a stale leader's step changes nothing):
 *   1. choose a vid (one above the "vid" scope, the records and this leader's proposals; a vid
 *      whose PENDING surely did not apply is used again) and the disks: per availability zone one
 * IDC (the configured IDCs minus unavailable_idc, zones shuffled), cm_disk_place in that IDC
 *      excluding the disks already chosen (host and rack awareness come from the config);
 *   2. PENDING {vid, code mode, chunk size, disk and epoch 1 per unit}: the record is replicated
 *      (and in snapshots) before any chunk exists, and invisible to every route;
 *   3. create the chunks on the blobnodes in parallel ("already exists" counts as created, so
 *      retries are idempotent); a failed unit moves to another disk of the same IDC (excluding
 *      the volume's disks and the disks that failed) with epoch + 1 by PENDING_UNITS, and the
 *      failed attempt's chunk is released best-effort; UNIT_TRIES failures of one unit abort;
 *   4. COMMIT {vid, epochs}: the volume becomes idle (allocatable);
 *   abort: release every unit's chunk best-effort, then ABORT {vid, epochs}: a tombstone keeps
 *   the vid from being reused.
 * A new leader (and, every ADOPT_SCAN_MS, any leader for a pending record it does not drive)
 * takes over: PENDING_UNITS moves every unit to epoch + 1 on the same disk -- from then on
 * nothing the old leader still does to the old vuids (creating, releasing, committing) can touch
 * the volume -- then releases the old vuids best-effort and continues at step 3. A pending
 * volume of a code mode that is no longer enabled is aborted instead.
 */
#include "volume_jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dispatch/dispatch.h"
#include "../api/api.h"
#include "../api/metrics.h"
#include "../client/blobnode.h"
#include "../fsm/codemode.h"
#include "../fsm/mod_disk.h"
#include "../fsm/mod_scope.h"
#include "../fsm/mod_volume.h"
#include "../raft/node.h"
#include "../util/log.h"
#include "../util/map.h"
#include "../util/timeutil.h"

#define MODES 32
#define MAX_NEW 4           /* new volumes in creation at once */
#define UNIT_TRIES 3        /* creation attempts of one unit before the volume is aborted */
#define MAX_TASKS 10        /* lock/unlock tasks running at once */
#define ADOPT_SCAN_MS 2000  /* look for pending volumes nobody drives */
#define HEALTH_SCAN_MS 1000 /* compare disk writability with the bad-disk set */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define EXPIRE_BATCH 100000
#define HEALTH_BATCH 10000

struct reg {
    void *ctx;
    void (*drop)(void *);
};

struct sweep {
    uint64_t due_ms;
    uint64_t vuid;
    uint32_t disk;
};

struct vjobs {
    struct cm_node *n;
    struct cm_map reg; /* id -> struct reg */
    uint64_t next_id;
    bool leader;
    uint64_t term;
    uint64_t leader_since_ms;
    uint64_t rng;
    /* creation */
    struct cm_map creating; /* vid -> ctx id */
    int n_new;
    int by_mode[MODES]; /* creations in flight per code mode (new and adopted) */
    uint64_t backoff_until[MODES], backoff_ms[MODES];
    uint32_t vid_hi;     /* highest vid proposed in this term */
    uint32_t *free_vids; /* proposed vids whose PENDING was surely not applied */
    size_t n_free, cap_free;
    uint64_t next_adopt_ms;
    /* expiry and health */
    uint64_t next_expire_ms;
    bool expire_busy;
    uint64_t next_health_ms;
    bool health_busy;
    bool health_capped;
    /* superseded chunks to release once more, later (a create still queued at a blobnode) */
    struct sweep *sweeps;
    size_t n_sweeps, cap_sweeps;
    /* tasks */
    struct cm_map tasks; /* vid -> ctx id */
    int tasks_running;
    /* figures */
    uint64_t retain_bad;
    bool over_load;
    uint64_t committed, aborted, adopted;
};

static struct vjobs *VJ(struct cm_node *n)
{
    return cm_node_ext(n, CM_EXT_VOLUME);
}

/* ------------------------------------------------------------------------------------------ */
/* registry                                                                                     */

uint64_t cm_vol_ctx_add(struct cm_node *n, void *ctx, void (*drop)(void *ctx))
{
    struct vjobs *vj = VJ(n);
    if (vj == NULL)
        return 0;
    struct reg *r = cm_malloc(sizeof *r);
    *r = (struct reg){ctx, drop};
    uint64_t id = ++vj->next_id;
    cm_map_put(&vj->reg, id, r);
    return id;
}

void *cm_vol_ctx_get(struct cm_node *n, uint64_t id)
{
    struct vjobs *vj = VJ(n);
    struct reg *r = vj ? cm_map_get(&vj->reg, id) : NULL;
    return r ? r->ctx : NULL;
}

void cm_vol_ctx_del(struct cm_node *n, uint64_t id)
{
    struct vjobs *vj = VJ(n);
    if (vj)
        free(cm_map_del(&vj->reg, id));
}

uint64_t *cm_vol_rng(struct cm_node *n)
{
    static uint64_t fallback = 0x5eed;
    struct vjobs *vj = VJ(n);
    return vj ? &vj->rng : &fallback;
}

void cm_volume_note_retain(struct cm_node *n, uint64_t bad_tokens)
{
    struct vjobs *vj = VJ(n);
    if (vj)
        vj->retain_bad = bad_tokens;
}

void cm_volume_note_alloc(struct cm_node *n, bool over_disk_load)
{
    struct vjobs *vj = VJ(n);
    if (vj)
        vj->over_load = over_disk_load;
}

static bool leading(struct vjobs *vj, uint64_t term)
{
    return vj->leader && cm_node_is_leader(vj->n) && cm_node_raft(vj->n)->current_term == term;
}

static void *arg_of(uint64_t id)
{
    return (void *)(uintptr_t)id;
}

static uint64_t id_of(void *arg)
{
    return (uint64_t)(uintptr_t)arg;
}

/* ------------------------------------------------------------------------------------------ */
/* creation                                                                                     */

enum { P_PENDING = 1, P_BUMP, P_CREATE, P_MOVE, P_COMMIT, P_RELEASE, P_ABORT };
enum { U_TODO = 0, U_BUSY, U_DONE, U_FAILED };
enum { K_CREATE = 1, K_RELEASE = 2, K_FREE = 3 }; /* call kinds (the tag's top byte) */

struct ucell {
    uint32_t disk, epoch;
    uint8_t st, tries;
};

struct vcreate {
    uint64_t id;
    struct vjobs *vj;
    uint32_t vid;
    uint8_t mode, n;
    bool adopted;
    int phase;
    int calls; /* create/release calls in flight */
    uint64_t term;
    struct ucell u[CM_VOL_UNITS_MAX];
    struct cm_vol_move moves[CM_VOL_UNITS_MAX]; /* proposed by the PENDING_UNITS in flight */
    unsigned n_moves;
    uint32_t tried[64]; /* disks that failed a creation */
    unsigned n_tried;
};

static void vc_free(void *p)
{
    free(p);
}

static void vc_drop(struct vcreate *c)
{
    struct vjobs *vj = c->vj;
    cm_map_del(&vj->creating, c->vid);
    if (!c->adopted)
        vj->n_new--;
    vj->by_mode[c->mode % MODES]--;
    cm_vol_ctx_del(vj->n, c->id);
    free(c);
}

static void backoff(struct vjobs *vj, unsigned mode)
{
    uint64_t b = vj->backoff_ms[mode % MODES] * 2;
    if (b < BACKOFF_MIN_MS)
        b = BACKOFF_MIN_MS;
    if (b > BACKOFF_MAX_MS)
        b = BACKOFF_MAX_MS;
    vj->backoff_ms[mode % MODES] = b;
    vj->backoff_until[mode % MODES] = cm_mono_ms() + b;
}

static uint64_t tag_of(int kind, unsigned index, uint32_t epoch)
{
    return ((uint64_t)kind << 56) | ((uint64_t)index << 32) | epoch;
}

static void create_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                        const struct cm_bn_result *r);
static void start_creates(struct vcreate *c);
static void start_abort(struct vcreate *c, const char *why);

static void propose(struct vcreate *c, uint8_t op, struct cm_buf *b, int phase);

/* Release a chunk without waiting for the answer (cleanup of a failed or superseded attempt),
 * and once more after twice the blobnode timeout: a create sent earlier (possibly by a leader
 * that died since) may still be queued at the blobnode and land after the first release. */
static void free_chunk(struct vjobs *vj, uint32_t disk, uint64_t vuid)
{
    struct cm_disk_info d;
    if (!cm_disk_get(cm_node_fsm(vj->n), disk, &d))
        return;
    cm_blobnode_call(vj->n, d.host, "release", disk, vuid, 0, tag_of(K_FREE, 0, 0), create_done);
    if (vj->n_sweeps == vj->cap_sweeps) {
        vj->cap_sweeps = vj->cap_sweeps ? vj->cap_sweeps * 2 : 16;
        vj->sweeps = cm_realloc(vj->sweeps, vj->cap_sweeps * sizeof *vj->sweeps);
    }
    uint64_t later = 2 * (uint64_t)cm_node_cfg(vj->n)->blobnode_timeout_ms;
    vj->sweeps[vj->n_sweeps++] = (struct sweep){cm_mono_ms() + later, vuid, disk};
}

static void sweep(struct vjobs *vj, uint64_t now)
{
    size_t k = 0;
    struct cm_fsm *fsm = cm_node_fsm(vj->n);
    for (size_t i = 0; i < vj->n_sweeps; i++) {
        struct sweep *w = &vj->sweeps[i];
        if (w->due_ms > now) {
            vj->sweeps[k++] = *w;
            continue;
        }
        /* never a chunk that became a unit's current one meanwhile */
        struct cm_vol v;
        struct cm_vunit u;
        struct cm_disk_info d;
        uint32_t vid = cm_vuid_vid(w->vuid);
        unsigned index = cm_vuid_index(w->vuid);
        if (cm_volume_get(fsm, vid, &v) && index < v.n_units) {
            cm_volume_unit(fsm, vid, index, &u);
            if (u.vuid == w->vuid)
                continue;
        }
        if (cm_disk_get(fsm, w->disk, &d))
            cm_blobnode_call(vj->n, d.host, "release", w->disk, w->vuid, 0, tag_of(K_FREE, 0, 0),
                             create_done);
    }
    vj->n_sweeps = k;
}

static void commit(struct vcreate *c)
{
    uint32_t e[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < c->n; i++)
        e[i] = c->u[i].epoch;
    struct cm_buf b = {0};
    cm_volume_enc_resolve(&b, c->vid, e, c->n);
    propose(c, CM_VOL_OP_COMMIT, &b, P_COMMIT);
}

static void propose_abort(struct vcreate *c)
{
    uint32_t e[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < c->n; i++)
        e[i] = c->u[i].epoch;
    struct cm_buf b = {0};
    cm_volume_enc_resolve(&b, c->vid, e, c->n);
    propose(c, CM_VOL_OP_ABORT, &b, P_ABORT);
}

/* Move every failed unit to a new disk of its IDC with the next epoch. */
static void replace_failed(struct vcreate *c)
{
    if (c->phase != P_CREATE)
        return;
    struct cm_fsm *fsm = cm_node_fsm(c->vj->n);
    uint32_t exclude[CM_VOL_UNITS_MAX * 2 + 64];
    size_t nx = 0;
    for (unsigned i = 0; i < c->n; i++)
        exclude[nx++] = c->u[i].disk;
    for (unsigned i = 0; i < c->n_tried; i++)
        exclude[nx++] = c->tried[i];
    c->n_moves = 0;
    for (unsigned i = 0; i < c->n; i++) {
        struct ucell *u = &c->u[i];
        if (u->st != U_FAILED)
            continue;
        if (u->tries >= UNIT_TRIES || u->epoch >= CM_EPOCH_MAX) {
            start_abort(c, "a unit failed too often");
            return;
        }
        struct cm_disk_info d;
        uint32_t to;
        if (!cm_disk_get(fsm, u->disk, &d) ||
            cm_disk_place(fsm, d.idc, 1, exclude, nx, cm_now_ns(), &c->vj->rng, &to) != 0) {
            start_abort(c, "no disk left to replace a failed unit");
            return;
        }
        exclude[nx++] = to;
        c->moves[c->n_moves++] = (struct cm_vol_move){(uint8_t)i, u->epoch, u->epoch + 1, to};
    }
    if (c->n_moves == 0)
        return;
    struct cm_buf b = {0};
    cm_volume_enc_pending_units(&b, c->vid, c->moves, c->n_moves);
    propose(c, CM_VOL_OP_PENDING_UNITS, &b, P_MOVE);
}

static void creation_step(struct vcreate *c)
{
    if (c->phase != P_CREATE)
        return;
    bool failed = false, all = true;
    for (unsigned i = 0; i < c->n; i++) {
        failed |= c->u[i].st == U_FAILED;
        all &= c->u[i].st == U_DONE;
    }
    if (all)
        commit(c);
    else if (failed)
        replace_failed(c);
}

static void start_creates(struct vcreate *c)
{
    struct vjobs *vj = c->vj;
    struct cm_fsm *fsm = cm_node_fsm(vj->n);
    c->phase = P_CREATE;
    for (unsigned i = 0; i < c->n; i++) {
        struct ucell *u = &c->u[i];
        if (u->st != U_TODO)
            continue;
        struct cm_disk_info d;
        if (!cm_disk_get(fsm, u->disk, &d)) {
            u->st = U_FAILED;
            u->tries++;
            continue;
        }
        u->st = U_BUSY;
        c->calls++;
        cm_blobnode_call(vj->n, d.host, "create", u->disk, cm_vuid_make(c->vid, i, u->epoch), c->id,
                         tag_of(K_CREATE, i, u->epoch), create_done);
    }
    if (c->calls == 0)
        creation_step(c);
}

static void start_abort(struct vcreate *c, const char *why)
{
    CM_WARN("volume", "aborting the creation of volume %u: %s", c->vid, why);
    struct cm_fsm *fsm = cm_node_fsm(c->vj->n);
    c->phase = P_RELEASE;
    for (unsigned i = 0; i < c->n; i++) {
        struct cm_disk_info d;
        if (!cm_disk_get(fsm, c->u[i].disk, &d))
            continue;
        c->calls++;
        cm_blobnode_call(c->vj->n, d.host, "release", c->u[i].disk,
                         cm_vuid_make(c->vid, i, c->u[i].epoch), c->id,
                         tag_of(K_RELEASE, i, c->u[i].epoch), create_done);
    }
    if (c->calls == 0)
        propose_abort(c);
}

static void create_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                        const struct cm_bn_result *r)
{
    struct vjobs *vj = VJ(n);
    int kind = (int)(tag >> 56);
    if (vj == NULL || kind == K_FREE)
        return;
    struct vcreate *c = cm_vol_ctx_get(n, owner);
    if (c == NULL)
        return;
    c->calls--;
    if (!leading(vj, c->term)) {
        vc_drop(c);
        return;
    }
    unsigned index = (unsigned)((tag >> 32) & 0xff);
    uint32_t epoch = (uint32_t)tag;
    if (kind == K_RELEASE) {
        if (r->outcome == CM_BN_FAIL)
            CM_WARN("volume", "could not release chunk %" PRIu64 " of aborted volume %u: %s",
                    cm_vuid_make(c->vid, index, epoch), c->vid, r->status ? r->body : r->error);
        if (c->calls == 0 && c->phase == P_RELEASE)
            propose_abort(c);
        return;
    }
    if (index >= c->n || c->u[index].epoch != epoch || c->u[index].st != U_BUSY) {
        if (c->calls == 0 && c->phase == P_RELEASE)
            propose_abort(c);
        return;
    }
    struct ucell *u = &c->u[index];
    if (c->phase == P_RELEASE) { /* created after the abort's release went out: once more */
        u->st = U_DONE;
        if (r->outcome == CM_BN_OK)
            free_chunk(vj, u->disk, cm_vuid_make(c->vid, index, epoch));
        if (c->calls == 0)
            propose_abort(c);
        return;
    }
    if (r->outcome == CM_BN_OK || r->outcome == CM_BN_EXISTS) {
        u->st = U_DONE;
        cm_disk_charge(cm_node_fsm(n), u->disk, 1);
    } else {
        CM_WARN("volume", "creating chunk %" PRIu64 " on disk %u failed (%ld %s)",
                cm_vuid_make(c->vid, index, epoch), u->disk, r->status,
                r->status ? r->body : r->error);
        u->st = U_FAILED;
        u->tries++;
        if (c->n_tried < sizeof c->tried / sizeof c->tried[0])
            c->tried[c->n_tried++] = u->disk;
        free_chunk(vj, u->disk, cm_vuid_make(c->vid, index, epoch)); /* it may exist */
    }
    if (c->calls == 0 || u->st == U_FAILED)
        creation_step(c);
}

static void created_cb(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    struct vjobs *vj = VJ(n);
    struct vcreate *c = vj ? cm_vol_ctx_get(n, id_of(arg)) : NULL;
    if (c == NULL)
        return;
    bool ok = status == CM_APPLIED && res->code == 0;
    if (!leading(vj, c->term)) {
        vc_drop(c);
        return;
    }
    switch (c->phase) {
    case P_PENDING:
        if (!ok) {
            if (status == CM_PROPOSE_LOST || status == CM_PROPOSE_FAILED) {
                if (vj->n_free == vj->cap_free) {
                    vj->cap_free = vj->cap_free ? vj->cap_free * 2 : 8;
                    vj->free_vids = cm_realloc(vj->free_vids, vj->cap_free * sizeof(uint32_t));
                }
                vj->free_vids[vj->n_free++] = c->vid; /* surely not applied: reuse it */
            }
            CM_WARN("volume", "recording volume %u failed (status %d, code %d)", c->vid, status,
                    res->code);
            backoff(vj, c->mode);
            vc_drop(c);
            return;
        }
        start_creates(c);
        return;
    case P_BUMP:
    case P_MOVE:
        if (!ok) { /* the takeover scan starts over from the replicated record */
            vc_drop(c);
            return;
        }
        if (c->phase == P_BUMP) {
            for (unsigned i = 0; i < c->n; i++) {
                free_chunk(vj, c->u[i].disk, cm_vuid_make(c->vid, i, c->u[i].epoch));
                c->u[i].epoch++;
                c->u[i].st = U_TODO;
            }
        } else {
            for (unsigned k = 0; k < c->n_moves; k++) {
                struct ucell *u = &c->u[c->moves[k].index];
                u->disk = c->moves[k].new_disk;
                u->epoch = c->moves[k].new_epoch;
                u->st = U_TODO;
            }
        }
        c->n_moves = 0;
        start_creates(c);
        if (c->phase == P_CREATE && c->calls > 0)
            creation_step(c); /* units that failed while the move was in flight */
        return;
    case P_COMMIT:
        if (ok) {
            vj->committed++;
            vj->backoff_ms[c->mode % MODES] = 0;
            CM_INFO("volume", "volume %u created (code mode %u)", c->vid, c->mode);
        }
        vc_drop(c);
        return;
    case P_ABORT:
        if (ok) {
            vj->aborted++;
            CM_INFO("volume", "volume %u aborted; its vid stays unused", c->vid);
        }
        if (!c->adopted)
            backoff(vj, c->mode);
        vc_drop(c);
        return;
    }
}

static void propose(struct vcreate *c, uint8_t op, struct cm_buf *b, int phase)
{
    c->phase = phase;
    cm_node_propose(c->vj->n, CM_MOD_VOLUME, op, b, created_cb, arg_of(c->id));
}

static struct vcreate *vc_new(struct vjobs *vj, uint32_t vid, uint8_t mode, unsigned n,
                              bool adopted)
{
    struct vcreate *c = cm_calloc(1, sizeof *c);
    c->vj = vj;
    c->vid = vid;
    c->mode = mode;
    c->n = (uint8_t)n;
    c->adopted = adopted;
    c->term = cm_node_raft(vj->n)->current_term;
    c->id = cm_vol_ctx_add(vj->n, c, vc_free);
    cm_map_put(&vj->creating, vid, arg_of(c->id));
    if (!adopted)
        vj->n_new++;
    vj->by_mode[mode % MODES]++;
    return c;
}

/* Steps 1 and 2 for a new volume. Returns 0, or -1 when no placement is possible now. */
static int start_new(struct vjobs *vj, const struct cm_codemode *cm)
{
    struct cm_node *n = vj->n;
    struct cm_fsm *fsm = cm_node_fsm(n);
    const struct cm_config *cfg = cm_node_cfg(n);
    const char *idcs[16];
    int k = 0;
    for (size_t i = 0; i < cfg->n_idc && k < 16; i++)
        if (!cfg->unavailable_idc[0] || strcmp(cfg->idc[i], cfg->unavailable_idc) != 0)
            idcs[k++] = cfg->idc[i];
    if (k != cm->az_count) {
        CM_WARN("volume", "cannot create %s volumes: %d availability zones, %d usable IDCs",
                cm->name, cm->az_count, k);
        return -1;
    }
    int perm[16];
    for (int i = 0; i < k; i++)
        perm[i] = i;
    for (int i = k - 1; i > 0; i--) { /* which IDC serves which zone */
        int j = (int)(cm_disk_rand(&vj->rng) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    unsigned units = (unsigned)cm_codemode_units(cm);
    struct cm_vol_place place[CM_VOL_UNITS_MAX];
    uint32_t chosen[CM_VOL_UNITS_MAX], out[CM_VOL_UNITS_MAX];
    size_t nch = 0;
    int64_t now = cm_now_ns();
    for (int az = 0; az < k; az++) {
        int idx[CM_VOL_UNITS_MAX];
        int cnt = cm_codemode_az_units(cm, az, idx);
        if (cm_disk_place(fsm, idcs[perm[az]], (unsigned)cnt, chosen, nch, now, &vj->rng, out) != 0)
            return -1;
        for (int j = 0; j < cnt; j++) {
            place[idx[j]] = (struct cm_vol_place){out[j], 1};
            chosen[nch++] = out[j];
        }
    }
    uint32_t vid = 0;
    while (vj->n_free && vid == 0) {
        uint32_t v = vj->free_vids[--vj->n_free];
        if (!cm_volume_get(fsm, v, NULL))
            vid = v;
    }
    if (vid == 0) {
        /* the next vid after everything recorded or in flight; the PENDING apply raises the
         * "vid" scope, so a vid is recorded in the same entry that takes it */
        uint64_t top = cm_scope_current(fsm, "vid");
        if (top < cm_volume_max_vid(fsm))
            top = cm_volume_max_vid(fsm);
        if (top < vj->vid_hi)
            top = vj->vid_hi;
        if (top >= UINT32_MAX)
            return -1;
        vid = (uint32_t)top + 1;
        vj->vid_hi = vid;
    }
    struct vcreate *c = vc_new(vj, vid, cm->id, units, false);
    for (unsigned i = 0; i < units; i++)
        c->u[i] = (struct ucell){place[i].disk_id, 1, U_TODO, 0};
    struct cm_buf b = {0};
    cm_volume_enc_pending(&b, vid, cm->id, cfg->chunk_size, place, units);
    propose(c, CM_VOL_OP_PENDING, &b, P_PENDING);
    return 0;
}

/* Take over a pending volume nobody here drives. */
static void adopt(struct vjobs *vj, uint32_t vid)
{
    struct cm_fsm *fsm = cm_node_fsm(vj->n);
    struct cm_vol v;
    if (!cm_volume_get(fsm, vid, &v) || v.state != CM_VOL_PENDING ||
        cm_map_get(&vj->creating, vid) != NULL)
        return;
    struct vcreate *c = vc_new(vj, vid, v.code_mode, v.n_units, true);
    vj->adopted++;
    bool too_old = false;
    for (unsigned i = 0; i < v.n_units; i++) {
        struct cm_vunit u;
        cm_volume_unit(fsm, vid, i, &u);
        c->u[i] = (struct ucell){u.disk_id, u.epoch, U_TODO, 0};
        too_old |= u.epoch >= CM_EPOCH_MAX;
    }
    const struct cm_policy *p = cm_config_policy(cm_node_cfg(vj->n), v.code_mode);
    CM_INFO("volume", "taking over the creation of volume %u (started by node %" PRIu64 ")", vid,
            v.create_by);
    if (p == NULL || !p->enable || too_old) {
        start_abort(c, p == NULL || !p->enable ? "its code mode is not enabled" : "epochs used up");
        return;
    }
    c->n_moves = 0;
    for (unsigned i = 0; i < c->n; i++)
        c->moves[c->n_moves++] =
            (struct cm_vol_move){(uint8_t)i, c->u[i].epoch, c->u[i].epoch + 1, c->u[i].disk};
    struct cm_buf b = {0};
    cm_volume_enc_pending_units(&b, vid, c->moves, c->n_moves);
    propose(c, CM_VOL_OP_PENDING_UNITS, &b, P_BUMP);
}

static void adopt_all(struct vjobs *vj)
{
    size_t n;
    uint32_t *p = cm_volume_pending(cm_node_fsm(vj->n), &n);
    for (size_t i = 0; i < n; i++)
        adopt(vj, p[i]);
    free(p);
}

static void keep_pools(struct vjobs *vj, uint64_t now)
{
    struct cm_node *n = vj->n;
    struct cm_fsm *fsm = cm_node_fsm(n);
    const struct cm_config *cfg = cm_node_cfg(n);
    int64_t disks = (int64_t)cm_disk_count(fsm);
    for (size_t i = 0; i < cfg->n_policies; i++) {
        const struct cm_policy *p = &cfg->policies[i];
        const struct cm_codemode *cm = cm_codemode_by_id(p->code_mode);
        if (!p->enable || cm == NULL)
            continue;
        int64_t target = (int64_t)((double)disks * p->size_ratio / cm_codemode_units(cm));
        if (target < cfg->min_allocable_volume_count)
            target = cfg->min_allocable_volume_count;
        struct cm_volume_counts cnt;
        cm_volume_counts(fsm, cm->id, &cnt);
        int64_t have = cnt.allocatable + vj->by_mode[cm->id % MODES];
        while (have < target && vj->n_new < MAX_NEW && now >= vj->backoff_until[cm->id % MODES]) {
            if (start_new(vj, cm) != 0) {
                backoff(vj, cm->id);
                break;
            }
            have++;
        }
    }
}

void cm_volume_pool_wake(struct cm_node *n)
{
    struct vjobs *vj = VJ(n);
    if (vj && vj->leader && cm_node_is_leader(n))
        keep_pools(vj, cm_mono_ms());
}

/* ------------------------------------------------------------------------------------------ */
/* lease expiry                                                                                 */

static void expired_cb(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)arg;
    struct vjobs *vj = VJ(n);
    if (vj == NULL)
        return;
    vj->expire_busy = false;
    if (status == CM_APPLIED && res->v[0] > 0)
        cm_volume_pool_wake(n);
    if (status != CM_APPLIED) /* try again soon */
        vj->next_expire_ms = cm_mono_ms() + 1000;
}

static void expire_leases(struct vjobs *vj, uint64_t now)
{
    if (vj->expire_busy || now < vj->next_expire_ms)
        return;
    const struct cm_config *cfg = cm_node_cfg(vj->n);
    vj->next_expire_ms = now + (uint64_t)cfg->check_expired_volume_interval_s * 1000;
    size_t n;
    uint32_t *vids = cm_volume_expired(cm_node_fsm(vj->n), cm_now_ns(), EXPIRE_BATCH, &n);
    if (n) {
        if (n == EXPIRE_BATCH)
            vj->next_expire_ms = now; /* more after this batch */
        struct cm_buf b = {0};
        cm_volume_enc_vids(&b, vids, n);
        vj->expire_busy = true;
        cm_node_propose(vj->n, CM_MOD_VOLUME, CM_VOL_OP_EXPIRE, &b, expired_cb, NULL);
    }
    free(vids);
}

/* ------------------------------------------------------------------------------------------ */
/* health                                                                                       */

/* Whether units on `disk` should count as unhealthy; -1: no judgement yet (keep as is). */
static int judge(struct vjobs *vj, struct cm_fsm *fsm, uint32_t disk, int64_t now_ns, bool *expiry)
{
    struct cm_disk_info d;
    *expiry = false;
    if (!cm_disk_get(fsm, disk, &d))
        return -1;
    if (cm_disk_writable(fsm, disk, now_ns))
        return 0;
    bool available = d.status == CM_DISK_NORMAL && !d.readonly && !d.dropping;
    if (!available)
        return 1;
    /* expired only: judge once this leader had a whole lease to hear from the blobnode */
    const struct cm_config *cfg = cm_node_cfg(vj->n);
    *expiry = true;
    if (cm_mono_ms() - vj->leader_since_ms < (uint64_t)cfg->heartbeat_expire_interval_s * 1000)
        return -1;
    return 1;
}

static void health_cb(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)arg, (void)status, (void)res;
    struct vjobs *vj = VJ(n);
    if (vj)
        vj->health_busy = false;
}

static void watch_health(struct vjobs *vj, uint64_t now)
{
    if (vj->health_busy || now < vj->next_health_ms)
        return;
    vj->next_health_ms = now + HEALTH_SCAN_MS;
    struct cm_fsm *fsm = cm_node_fsm(vj->n);
    const struct cm_config *cfg = cm_node_cfg(vj->n);
    uint64_t max = cm_scope_current(fsm, "diskid");
    int64_t now_ns = cm_now_ns();
    cm_disk_advance(fsm, now_ns);
    struct cm_disk_mark *m = NULL;
    size_t nm = 0, cap = 0, dead = 0;
    for (uint64_t id = 1; id <= max && nm < HEALTH_BATCH; id++) {
        bool expiry;
        int bad = judge(vj, fsm, (uint32_t)id, now_ns, &expiry);
        if (bad < 0 || (bad == 1) == cm_volume_disk_bad(fsm, (uint32_t)id))
            continue;
        if (bad && expiry)
            dead++;
        if (nm == cap)
            m = cm_realloc(m, (cap = cap ? cap * 2 : 16) * sizeof *m);
        m[nm++] = (struct cm_disk_mark){(uint32_t)id, bad == 1};
    }
    if (cfg->max_heartbeat_notify_num > 0 && dead > (size_t)cfg->max_heartbeat_notify_num) {
        /* too many disks stopped heartbeating at once: more likely our view than the disks */
        if (!vj->health_capped)
            CM_WARN("volume",
                    "%zu disks expired at once (more than max_heartbeat_notify_num %" PRId64
                    "): not marking their volumes unhealthy",
                    dead, cfg->max_heartbeat_notify_num);
        vj->health_capped = true;
        size_t k = 0;
        for (size_t i = 0; i < nm; i++) {
            bool expiry;
            int bad = judge(vj, fsm, m[i].disk_id, now_ns, &expiry);
            if (!(bad == 1 && expiry))
                m[k++] = m[i];
        }
        nm = k;
    } else
        vj->health_capped = false;
    if (nm) {
        CM_INFO("volume", "health: %zu disk(s) changed writability (first: disk %u %s)", nm,
                m[0].disk_id, m[0].bad ? "bad" : "good");
        struct cm_buf b = {0};
        cm_volume_enc_disk_health(&b, m, nm);
        vj->health_busy = true;
        cm_node_propose(vj->n, CM_MOD_VOLUME, CM_VOL_OP_DISK_HEALTH, &b, health_cb, NULL);
    }
    free(m);
}

void cm_volume_disk_refresh(struct cm_job *j, uint32_t disk_id)
{
    struct vjobs *vj = VJ(j->node);
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    bool expiry;
    int bad = vj ? judge(vj, fsm, disk_id, cm_now_ns(), &expiry) : -1;
    if (bad < 0 || (bad == 1) == cm_volume_disk_bad(fsm, disk_id)) {
        cm_reply_empty(j);
        return;
    }
    struct cm_disk_mark m = {disk_id, bad == 1};
    struct cm_buf b = {0};
    cm_volume_enc_disk_health(&b, &m, 1);
    cm_job_propose(j, CM_MOD_VOLUME, CM_VOL_OP_DISK_HEALTH, &b, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* lock / unlock tasks                                                                          */

enum { T_WAIT = 0, T_CALLING, T_PROPOSING };

struct vtask {
    uint64_t id;
    struct vjobs *vj;
    uint32_t vid;
    uint8_t type;
    uint32_t task_id;
    int phase;
    int calls;
    bool failed;
    bool again; /* a newer task was written meanwhile */
    int errs;
    uint64_t next_ms;
    uint64_t term;
};

static const char *task_name(uint8_t type)
{
    return type == CM_TASK_LOCK ? "lock" : type == CM_TASK_UNLOCK ? "unlock" : "forced unlock";
}

static void vt_drop(struct vtask *t)
{
    cm_map_del(&t->vj->tasks, t->vid);
    cm_vol_ctx_del(t->vj->n, t->id);
    free(t);
}

void cm_volume_task_kick(struct cm_node *n, uint32_t vid)
{
    struct vjobs *vj = VJ(n);
    if (vj == NULL || !vj->leader)
        return;
    uint64_t id = (uint64_t)(uintptr_t)cm_map_get(&vj->tasks, vid);
    struct vtask *t = id ? cm_vol_ctx_get(n, id) : NULL;
    if (t) {
        t->again = true;
        if (t->phase == T_WAIT)
            t->next_ms = cm_mono_ms();
        return;
    }
    t = cm_calloc(1, sizeof *t);
    t->vj = vj;
    t->vid = vid;
    t->term = cm_node_raft(n)->current_term;
    t->next_ms = cm_mono_ms();
    t->id = cm_vol_ctx_add(n, t, vc_free);
    cm_map_put(&vj->tasks, vid, arg_of(t->id));
}

static void task_done_cb(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)res;
    struct vjobs *vj = VJ(n);
    struct vtask *t = vj ? cm_vol_ctx_get(n, id_of(arg)) : NULL;
    if (t == NULL)
        return;
    t->phase = T_WAIT;
    if (!leading(vj, t->term)) {
        vt_drop(t);
        return;
    }
    if (status != CM_APPLIED) {
        t->next_ms = cm_mono_ms() + 1000;
        return;
    }
    struct cm_vol v;
    if (t->again || (cm_volume_get(cm_node_fsm(n), t->vid, &v) && v.task_type != CM_TASK_NONE)) {
        t->again = false;
        t->errs = 0;
        t->next_ms = cm_mono_ms();
        return;
    }
    CM_INFO("volume", "%s task of volume %u done", task_name(t->type), t->vid);
    vt_drop(t);
}

static void task_finish_calls(struct vtask *t)
{
    struct vjobs *vj = t->vj;
    vj->tasks_running--;
    if (t->again) { /* replaced by a newer task (a forced unlock): run that one now */
        t->errs = 0;
        t->phase = T_WAIT;
        t->next_ms = cm_mono_ms();
        return;
    }
    if (t->failed) {
        t->errs++;
        t->phase = T_WAIT;
        t->next_ms = cm_mono_ms() + (uint64_t)(t->errs < 30 ? t->errs : 30) * 1000;
        return;
    }
    t->phase = T_PROPOSING;
    struct cm_buf b = {0};
    cm_volume_enc_task_done(&b, t->vid, t->type, t->task_id);
    cm_node_propose(vj->n, CM_MOD_VOLUME, CM_VOL_OP_TASK_DONE, &b, task_done_cb, arg_of(t->id));
}

static void task_call_done(struct cm_node *n, uint64_t owner, uint64_t tag,
                           const struct cm_bn_result *r)
{
    struct vjobs *vj = VJ(n);
    struct vtask *t = vj ? cm_vol_ctx_get(n, owner) : NULL;
    if (t == NULL || t->phase != T_CALLING)
        return;
    t->calls--;
    if (r->outcome == CM_BN_FAIL && t->type == CM_TASK_UNLOCK_FORCE)
        CM_WARN("volume", "readwrite of unit %u of volume %u failed (%ld %s); ignored (forced)",
                (unsigned)tag, t->vid, r->status, r->status ? r->body : r->error);
    else if (r->outcome == CM_BN_FAIL) {
        CM_WARN("volume", "%s of unit %u of volume %u failed (%ld %s); retrying later",
                t->type == CM_TASK_LOCK ? "readonly" : "readwrite", (unsigned)tag, t->vid,
                r->status, r->status ? r->body : r->error);
        t->failed = true;
    } else if (r->outcome == CM_BN_NOT_FOUND)
        CM_WARN("volume", "unit %u of volume %u has no chunk on its blobnode; skipped",
                (unsigned)tag, t->vid);
    if (t->calls == 0)
        task_finish_calls(t);
}

static void task_start(struct vtask *t)
{
    struct vjobs *vj = t->vj;
    struct cm_fsm *fsm = cm_node_fsm(vj->n);
    struct cm_vol v;
    t->again = false;
    if (!cm_volume_get(fsm, t->vid, &v) || v.state != CM_VOL_CREATED ||
        v.task_type == CM_TASK_NONE) {
        vt_drop(t);
        return;
    }
    t->type = v.task_type;
    t->task_id = v.task_id;
    t->phase = T_CALLING;
    t->failed = false;
    t->calls = 0;
    vj->tasks_running++;
    /* a status changed behind the task's back (admin update): nothing to set on the chunks */
    bool current = v.status == (t->type == CM_TASK_LOCK ? CM_VOL_LOCK : CM_VOL_UNLOCKING);
    for (unsigned i = 0; current && i < v.n_units; i++) {
        struct cm_vunit u;
        struct cm_disk_info d;
        cm_volume_unit(fsm, t->vid, i, &u);
        /* a chunk on a broken, repairing, repaired or dropped disk is not served any more */
        if (!cm_disk_get(fsm, u.disk_id, &d) || d.status != CM_DISK_NORMAL)
            continue;
        t->calls++;
        cm_blobnode_call(vj->n, d.host, t->type == CM_TASK_LOCK ? "readonly" : "readwrite",
                         u.disk_id, u.vuid, t->id, i, task_call_done);
    }
    if (t->calls == 0)
        task_finish_calls(t);
}

static void run_tasks(struct vjobs *vj, uint64_t now)
{
    size_t it = 0;
    void *v;
    uint64_t ids[MAX_TASKS * 4];
    size_t n = 0;
    while (n < sizeof ids / sizeof ids[0] && vj->tasks_running + (int)n < MAX_TASKS &&
           cm_map_next(&vj->tasks, &it, NULL, &v)) {
        struct vtask *t = cm_vol_ctx_get(vj->n, id_of(v));
        if (t && t->phase == T_WAIT && t->next_ms <= now)
            ids[n++] = t->id;
    }
    for (size_t i = 0; i < n; i++) { /* starting may drop a task: not while iterating */
        struct vtask *t = cm_vol_ctx_get(vj->n, ids[i]);
        if (t)
            task_start(t);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* hooks                                                                                        */

static void drop_all_work(struct vjobs *vj)
{
    size_t it = 0;
    void *v;
    uint64_t *ids = cm_malloc((vj->creating.n + vj->tasks.n + 1) * sizeof *ids);
    size_t n = 0;
    while (cm_map_next(&vj->creating, &it, NULL, &v))
        ids[n++] = id_of(v);
    it = 0;
    while (cm_map_next(&vj->tasks, &it, NULL, &v))
        ids[n++] = id_of(v);
    for (size_t i = 0; i < n; i++) {
        struct reg *r = cm_map_del(&vj->reg, ids[i]);
        if (r) {
            r->drop(r->ctx);
            free(r);
        }
    }
    free(ids);
    cm_map_free(&vj->creating);
    cm_map_init(&vj->creating);
    cm_map_free(&vj->tasks);
    cm_map_init(&vj->tasks);
    vj->n_new = 0;
    memset(vj->by_mode, 0, sizeof vj->by_mode);
    vj->tasks_running = 0;
    vj->n_free = 0;
    vj->n_sweeps = 0;
    vj->vid_hi = 0;
    vj->expire_busy = vj->health_busy = false;
}

static void on_leader(struct cm_node *n, void *arg)
{
    struct vjobs *vj = arg;
    drop_all_work(vj);
    vj->leader = true;
    vj->term = cm_node_raft(n)->current_term;
    vj->leader_since_ms = cm_mono_ms();
    memset(vj->backoff_until, 0, sizeof vj->backoff_until);
    memset(vj->backoff_ms, 0, sizeof vj->backoff_ms);
    uint64_t now = cm_mono_ms();
    vj->next_expire_ms = now;
    vj->next_health_ms = now;
    vj->next_adopt_ms = now + ADOPT_SCAN_MS;
    adopt_all(vj);
    size_t k;
    uint32_t *t = cm_volume_tasks(cm_node_fsm(n), &k);
    for (size_t i = 0; i < k; i++)
        cm_volume_task_kick(n, t[i]);
    free(t);
}

static void on_follower(struct cm_node *n, void *arg)
{
    (void)n;
    struct vjobs *vj = arg;
    vj->leader = false;
    drop_all_work(vj);
}

static void on_tick(struct cm_node *n, void *arg)
{
    struct vjobs *vj = arg;
    if (!vj->leader)
        return;
    if (!cm_node_is_leader(n) || cm_node_raft(n)->current_term != vj->term) {
        vj->leader = false;
        drop_all_work(vj);
        return;
    }
    uint64_t now = cm_mono_ms();
    if (now >= vj->next_adopt_ms) {
        vj->next_adopt_ms = now + ADOPT_SCAN_MS;
        adopt_all(vj);
    }
    keep_pools(vj, now);
    expire_leases(vj, now);
    watch_health(vj, now);
    run_tasks(vj, now);
    sweep(vj, now);
}

static void on_stop(struct cm_node *n, void *arg)
{
    struct vjobs *vj = arg;
    cm_node_set_ext(n, CM_EXT_VOLUME, NULL);
    size_t it = 0;
    void *v;
    while (cm_map_next(&vj->reg, &it, NULL, &v)) {
        struct reg *r = v;
        r->drop(r->ctx);
        free(r);
    }
    cm_map_free(&vj->reg);
    cm_map_free(&vj->creating);
    cm_map_free(&vj->tasks);
    free(vj->free_vids);
    free(vj->sweeps);
    free(vj);
}

/* ------------------------------------------------------------------------------------------ */
/* metrics                                                                                      */

static const char *const families[] = {"blobstore_clusterMgr_vol_retain_error",
                                       "blobstore_clusterMgr_vol_alloc_over_disk_load", NULL};

static void render(struct cm_node *n, struct cm_prom *p, void *arg)
{
    struct vjobs *vj = arg;
    const char *f = "blobstore_clusterMgr_vol_retain_error";
    cm_prom_family(p, f, "gauge", "bad tokens in the last volume retain call");
    cm_prom_sample_u64(p, f, vj->retain_bad, "region", p->region, "cluster", p->cluster,
                       "is_leader", p->is_leader, NULL);
    f = "blobstore_clusterMgr_vol_alloc_over_disk_load";
    cm_prom_family(p, f, "gauge",
                   "whether the last volume allocation chose a volume above the disk-load "
                   "threshold");
    cm_prom_sample_u64(p, f, vj->over_load, "region", p->region, "cluster", p->cluster, "is_leader",
                       p->is_leader, NULL);
    struct cm_volume_counts c;
    cm_volume_counts(cm_node_fsm(n), 0, &c);
    f = "clustermgr_volume_records";
    cm_prom_family(p, f, "gauge",
                   "volume records by state: created, pending (being created) and aborted "
                   "(tombstones of vids never to be reused)");
    cm_prom_sample(p, f, (double)c.total, "state", "created", NULL);
    cm_prom_sample(p, f, (double)c.pending, "state", "pending", NULL);
    cm_prom_sample(p, f, (double)c.aborted, "state", "aborted", NULL);
    f = "clustermgr_volume_vid_scope";
    cm_prom_family(p, f, "gauge", "highest vid handed out");
    cm_prom_sample_u64(p, f, cm_scope_current(cm_node_fsm(n), "vid"), NULL);
    f = "clustermgr_volume_creations_total";
    cm_prom_family(p, f, "counter", "volume creations finished by this node as leader");
    cm_prom_sample_u64(p, f, vj->committed, "result", "committed", NULL);
    cm_prom_sample_u64(p, f, vj->aborted, "result", "aborted", NULL);
    cm_prom_sample_u64(p, f, vj->adopted, "result", "taken_over", NULL);
    f = "clustermgr_volume_jobs";
    cm_prom_family(p, f, "gauge", "volume work in flight on this node");
    cm_prom_sample_u64(p, f, vj->creating.n, "job", "creations", NULL);
    cm_prom_sample_u64(p, f, vj->tasks.n, "job", "tasks", NULL);
    cm_prom_sample_u64(p, f, cm_blobnode_inflight(), "job", "blobnode_calls", NULL);
}

void cm_volume_jobs_init(struct cm_node *n)
{
    struct vjobs *vj = cm_calloc(1, sizeof *vj);
    vj->n = n;
    vj->rng = (uint64_t)cm_now_ns() ^ ((uint64_t)cm_node_id(n) << 48);
    cm_map_init(&vj->reg);
    cm_map_init(&vj->creating);
    cm_map_init(&vj->tasks);
    cm_node_set_ext(n, CM_EXT_VOLUME, vj);
    cm_node_add_hooks(n, &(struct cm_node_hooks){.on_leader = on_leader,
                                                 .on_follower = on_follower,
                                                 .on_tick = on_tick,
                                                 .on_stop = on_stop,
                                                 .arg = vj});
    cm_metrics_register(n, &(struct cm_metrics_source){"volume", families, render, vj});
}
