/*
 * Volume module: volumes and their units (spec §4.4-§4.6, §4.10, §4.11), leases, lock/unlock
 * task records, the health score, and the half-created ("pending") volumes of the creation
 * protocol.
 *
 * Replicated state
 * ----------------
 * - A volume record per vid, in a dense array indexed by vid (vids come from the "vid" scope and
 *   are never reused). A slot is empty, pending, created or aborted:
 *   - pending: placed and recorded by a leader, chunks possibly half created. Invisible to every
 *     route, to allocation and to volume_stat; its units do count for /disk/dropped (930), so a
 *     disk cannot be dropped under a volume about to be committed.
 *   - created: a real volume (idle, active, lock or unlocking).
 *   - aborted: a tombstone that remembers the vid was used (no units).
 *   Fields: code mode, status, create_by_node_id, total/free/used, the lease (token host, expire
 *   time in Unix ns; kept when the lease lapses, as the reference does) and the lock/unlock task
 *   record (type and a task id from a replicated counter).
 * - Units: per unit epoch (24 bits), next_epoch (highest reserved, epoch <= next_epoch), disk id,
 *   compacting flag, total/free/used. A volume's units are contiguous in a unit arena; vid, index
 *   and epoch make the vuid (cm_vuid_*).
 * - The set of "bad" disks: disks whose units count as unhealthy. The leader decides it from
 *   cm_disk_writable (status, readonly, dropping, heartbeat lease) and proposes changes; apply
 *   only records the decision, so every node computes the same health.
 *
 * Memory: the volume records (64 bytes) and the units live in pages of fixed size. Unit data is
 * split in two parallel arrays per page: sizes (3 x 8 bytes) and meta (disk id, epoch+flag,
 * next epoch: 3 x 4 bytes), 36 bytes a unit. The derived units-by-disk index costs 8 bytes a unit
 * (a vuid prefix per entry, with the slack of growing arrays about 12), and a volume's record
 * and derived state 76 bytes: 1,000,000 EC6P6 volumes take 632 MiB, 55 bytes a unit (measured
 * with bench/volgen).
 *
 * Snapshots: pages are reference counted and copy-on-write. snap_take only copies the page
 * tables and takes a reference on every page (O(pages), microseconds for a million volumes); any
 * later write to a shared page clones that page first. snap_write encodes the section from the
 * shared pages on the snapshot worker. Every write of replicated data goes through vw()/uw() in
 * mod_volume.c, which do the cloning.
 *
 * Derived state (rebuilt on load, never in the snapshot)
 * ------------------------------------------------------
 * - health per volume: -(units that are compacting or on a bad disk);
 * - units by disk: per disk id the vuid prefixes of the pending and created units on it;
 * - per code mode: counters by status and the allocatable list (idle, free above the allocation
 *   threshold, health >= PutQuorum - units), newest first. The allocation threshold is
 *   volume_mgr_config.allocatable_size when the config sets it (CubeFS v3.3 and later), else the
 *   freeze threshold `volume_reserve_size`; the freeze threshold alone governs retain;
 * - per disk: the number of active volumes with a unit on it (disk load);
 * - leader-local marks of volumes chosen by an allocation whose proposal is in flight.
 *
 * Apply is deterministic ("now" is the command's proposer timestamp; the allocation and freeze
 * thresholds, expire times, placements and disk judgements are in the payload) and never fails:
 * an entry invalid at apply time changes nothing and returns an error code to the proposer.
 */
#ifndef CM_MOD_VOLUME_H
#define CM_MOD_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "codemode.h"
#include "fsm.h"

enum {
    CM_VOL_OP_PENDING = 1,       /* record a placed, not yet created volume */
    CM_VOL_OP_PENDING_UNITS = 2, /* move pending units to new epochs / disks (retry, takeover) */
    CM_VOL_OP_COMMIT = 3,        /* pending -> idle volume */
    CM_VOL_OP_ABORT = 4,         /* pending -> tombstone */
    CM_VOL_OP_ALLOC = 5,         /* lease idle volumes */
    CM_VOL_OP_RETAIN = 6,        /* renew leases */
    CM_VOL_OP_EXPIRE = 7,        /* lapsed leases: active -> idle */
    CM_VOL_OP_LOCK = 8,          /* idle -> lock + readonly task */
    CM_VOL_OP_UNLOCK = 9,        /* lock -> unlocking + readwrite task */
    CM_VOL_OP_TASK_DONE = 10,    /* a task ran on every unit: delete it (unlocking -> idle) */
    CM_VOL_OP_UPDATE_UNIT = 11,  /* /volume/update: switch a unit to its new chunk */
    CM_VOL_OP_CHUNK_REPORT = 12, /* sizes from blobnodes */
    CM_VOL_OP_SET_COMPACT = 13,  /* compacting flag of a unit */
    CM_VOL_OP_ALLOC_UNIT = 14,   /* reserve the next epoch of a unit */
    CM_VOL_OP_DISK_HEALTH = 15,  /* mark disks bad or good for health */
    CM_VOL_OP_ADMIN_VOLUME = 16, /* /admin/update/volume */
    CM_VOL_OP_ADMIN_UNIT = 17,   /* /admin/update/volume/unit */
    CM_VOL_OP_UNLOCK_FORCE = 18, /* lock or unlocking -> forced readwrite task (format 2) */
};

/* Volume status (spec §4.4.2). */
enum { CM_VOL_IDLE = 1, CM_VOL_ACTIVE = 2, CM_VOL_LOCK = 3, CM_VOL_UNLOCKING = 4 };
/* Record state. */
enum { CM_VOL_EMPTY = 0, CM_VOL_PENDING = 1, CM_VOL_CREATED = 2, CM_VOL_ABORTED = 3 };
/* Task types. A forced unlock (CubeFS v3.5.1 `force`) ignores failed readwrite calls. */
enum { CM_TASK_NONE = 0, CM_TASK_LOCK = 1, CM_TASK_UNLOCK = 2, CM_TASK_UNLOCK_FORCE = 3 };

#define CM_EPOCH_MAX 16777215u
#define CM_VOL_UNITS_MAX 64
#define CM_VOL_HOST_MAX 64 /* bytes of a lease host */

/* ---- vuid packing (spec §3.1): vid 32 bits | index 8 bits | epoch 24 bits ---- */

static inline uint64_t cm_vuid_make(uint32_t vid, unsigned index, uint32_t epoch)
{
    return ((uint64_t)vid << 32) | ((uint64_t)(index & 0xff) << 24) | (epoch & 0xffffff);
}
static inline uint32_t cm_vuid_vid(uint64_t vuid)
{
    return (uint32_t)(vuid >> 32);
}
static inline unsigned cm_vuid_index(uint64_t vuid)
{
    return (unsigned)((vuid >> 24) & 0xff);
}
static inline uint32_t cm_vuid_epoch(uint64_t vuid)
{
    return (uint32_t)(vuid & 0xffffff);
}
static inline uint64_t cm_vuid_prefix(uint64_t vuid)
{
    return vuid & ~(uint64_t)0xffffff;
}
/* Non-zero with a valid epoch (1 .. 2^24-1). */
static inline bool cm_vuid_valid(uint64_t vuid)
{
    return vuid != 0 && cm_vuid_epoch(vuid) >= 1;
}

/* ---- readers (loop thread) ---- */

struct cm_vol {
    uint32_t vid;
    uint8_t state; /* CM_VOL_PENDING, CREATED, ABORTED */
    uint8_t code_mode;
    uint8_t status;
    uint8_t n_units;
    int health;
    uint64_t total, free, used;
    uint64_t create_by;
    const char *token_host; /* NULL: never leased; valid until the next apply */
    int64_t expire_ns;
    uint8_t task_type;
    uint32_t task_id;
};

struct cm_vunit {
    uint64_t vuid;
    uint32_t disk_id;
    uint32_t epoch, next_epoch;
    bool compacting;
    uint64_t total, free, used;
};

/* Any non-empty slot. */
bool cm_volume_get(struct cm_fsm *fsm, uint32_t vid, struct cm_vol *out);
/* `index` < n_units of an existing, non-aborted volume. */
void cm_volume_unit(struct cm_fsm *fsm, uint32_t vid, unsigned index, struct cm_vunit *out);
/* The next created volume after `vid` (0 when none). */
uint32_t cm_volume_next(struct cm_fsm *fsm, uint32_t vid);
/* Highest vid with a record. */
uint32_t cm_volume_max_vid(struct cm_fsm *fsm);

struct cm_volume_counts {
    int64_t total, idle, allocatable, active, lock, unlocking; /* created volumes */
    int64_t pending, aborted;
};
/* code_mode 0: every code mode. */
void cm_volume_counts(struct cm_fsm *fsm, unsigned code_mode, struct cm_volume_counts *out);

/* Units (pending and created) on a disk. The hook of mod_disk.h (930) is this count. */
size_t cm_volume_units_on_disk(struct cm_fsm *fsm, uint32_t disk_id);
/* Vuid prefixes of the units on a disk, ascending (caller frees). */
uint64_t *cm_volume_disk_units(struct cm_fsm *fsm, uint32_t disk_id, size_t *n);
/* Whether the disk is in the replicated bad set. */
bool cm_volume_disk_bad(struct cm_fsm *fsm, uint32_t disk_id);
/* Active volumes with a unit on the disk. */
uint32_t cm_volume_disk_load(struct cm_fsm *fsm, uint32_t disk_id);

/* Vids of pending volumes, ascending (caller frees). */
uint32_t *cm_volume_pending(struct cm_fsm *fsm, size_t *n);
/* Vids of volumes with a task record, ascending (caller frees). */
uint32_t *cm_volume_tasks(struct cm_fsm *fsm, size_t *n);
/* Active volumes whose lease ended before `now_ns`, ascending, at most `max` (caller frees). */
uint32_t *cm_volume_expired(struct cm_fsm *fsm, int64_t now_ns, size_t max, size_t *n);

/* The freeze threshold (volume_reserve_size of this node's config): a volume whose free space
 * is not above it is full, its lease is not retained. */
uint64_t cm_volume_freeze(struct cm_fsm *fsm);
/* The allocation threshold: a volume is handed out and kept allocatable only with free space
 * above it (allocatable_size when configured, else the freeze threshold). */
uint64_t cm_volume_alloc_threshold(struct cm_fsm *fsm);

/* A retainable lease (spec §4.6.4 and /volume/alloc is_init): created, active, leased to
 * `host`, free above the freeze threshold, health >= `threshold`, lease not ended at `now_ns`. */
bool cm_volume_retainable(struct cm_fsm *fsm, uint32_t vid, const char *host, int64_t threshold,
                          int64_t now_ns);

/* ---- leader: allocation pre-selection (spec §4.6.3) ----
 *
 * Choose up to `count` allocatable volumes of `code_mode` not in `excludes` and not marked by an
 * allocation in flight; healthier first, then (when disk_load_threshold > 0) less loaded disks
 * first, preferring volumes whose disks carry at most that many active volumes. The chosen ones
 * are marked until cm_volume_unmark. Returns the number chosen. `over_load` (may be NULL) is set
 * when a chosen volume exceeds the disk-load threshold. */
size_t cm_volume_pick(struct cm_fsm *fsm, unsigned code_mode, size_t count,
                      const uint32_t *excludes, size_t n_excludes, int64_t disk_load_threshold,
                      uint32_t *out, bool *over_load);
void cm_volume_unmark(struct cm_fsm *fsm, const uint32_t *vids, size_t n);

/* ---- command payloads (docs/formats.md) ---- */

struct cm_vol_place {
    uint32_t disk_id;
    uint32_t epoch;
};
void cm_volume_enc_pending(struct cm_buf *b, uint32_t vid, uint8_t code_mode, uint64_t chunk_size,
                           const struct cm_vol_place *units, unsigned n);
struct cm_vol_move {
    uint8_t index;
    uint32_t old_epoch, new_epoch, new_disk;
};
void cm_volume_enc_pending_units(struct cm_buf *b, uint32_t vid, const struct cm_vol_move *m,
                                 unsigned n);
/* Commit and abort carry the epochs the proposer created / saw (compare-and-set). */
void cm_volume_enc_resolve(struct cm_buf *b, uint32_t vid, const uint32_t *epochs, unsigned n);
/* `threshold`: a volume is granted only with free space above it (cm_volume_alloc_threshold). */
void cm_volume_enc_alloc(struct cm_buf *b, uint8_t code_mode, const char *host, int64_t expire_ns,
                         uint64_t threshold, const uint32_t *vids, size_t n);
struct cm_vol_lease {
    uint32_t vid;
    const char *host;
};
void cm_volume_enc_retain(struct cm_buf *b, int64_t expire_ns, uint64_t freeze, int64_t threshold,
                          const struct cm_vol_lease *l, size_t n);
void cm_volume_enc_vids(struct cm_buf *b, const uint32_t *vids, size_t n); /* expire */
void cm_volume_enc_vid(struct cm_buf *b, uint32_t vid); /* lock, unlock, unlock force */
void cm_volume_enc_task_done(struct cm_buf *b, uint32_t vid, uint8_t type, uint32_t task_id);
void cm_volume_enc_update_unit(struct cm_buf *b, uint64_t old_vuid, uint64_t new_vuid,
                               uint32_t new_disk);
struct cm_chunk_rec {
    uint64_t vuid, total, used, free;
};
void cm_volume_enc_chunk_report(struct cm_buf *b, const struct cm_chunk_rec *r, size_t n);
void cm_volume_enc_set_compact(struct cm_buf *b, uint64_t vuid, bool compact);
void cm_volume_enc_alloc_unit(struct cm_buf *b, uint64_t vuid, uint32_t next_epoch);
struct cm_disk_mark {
    uint32_t disk_id;
    bool bad;
};
void cm_volume_enc_disk_health(struct cm_buf *b, const struct cm_disk_mark *m, size_t n);
/* status 0 and sizes 0 leave those fields unchanged. */
void cm_volume_enc_admin_volume(struct cm_buf *b, uint32_t vid, uint8_t status, uint64_t total,
                                uint64_t free, uint64_t used);
void cm_volume_enc_admin_unit(struct cm_buf *b, uint64_t vuid, uint32_t epoch, uint32_t next_epoch,
                              uint32_t disk_id, bool compact);

/* Results: ALLOC and RETAIN return the vids granted / renewed in res->data (struct
 * cm_vol_granted); PENDING returns the vid in v[0]. */
struct cm_vol_granted {
    size_t n;
    uint32_t vids[];
};

/* Decode the binary /chunk/report body (spec §5.6.1): 0 with records (caller frees) or -1, also
 * for more than CM_CHUNK_REPORT_MAX records (the limit of the CubeFS v3.5 decoder). */
int cm_chunk_report_decode(const void *body, size_t len, struct cm_chunk_rec **out, size_t *n);
#define CM_CHUNK_REPORT_REC 79
#define CM_CHUNK_REPORT_MAX 65536

/* Tests: rebuild every derived structure from the replicated records and compare. 0 or -1. */
int cm_volume_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen);

#endif
