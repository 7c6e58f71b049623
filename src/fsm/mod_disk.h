/*
 * Disk module: every disk of every blobnode (spec §4.1-§4.3), its status lifecycle, heartbeats,
 * the indexes behind /disk/list, the space statistics of /stat and the placement index that
 * volume creation draws disks from.
 *
 * Replicated state, per disk: the DiskInfo fields (identity, status, readonly, the latest
 * heartbeat numbers and chunk counters), the dropping flag and the heartbeat lease (expire and
 * previous expire, Unix ns). The lease end is stamped by the proposer: a command carries the
 * proposer's heartbeat_expire_interval_s and apply computes `cmd->ts_ns + interval`, so every node
 * agrees on it, also after a restart (the reference computed it locally at apply time).
 *
 * Everything else is derived and rebuilt from those fields on snapshot load:
 * - disks by id: an array indexed by disk id (ids are dense, handed out by /diskid/alloc);
 * - sorted id sets per host, per (idc, rack), per idc, per status and for dropping disks, so every
 *   /disk/list path walks disk ids in ascending order and a marker means "strictly after";
 * - the host+path filter: at most one disk that is neither repaired nor dropped per (host, path),
 *   keyed with the host length as a separator;
 * - per-IDC counters and per-host sums that /stat reads without walking the disks;
 * - the placement index IDC -> rack -> host -> disk: a Fenwick tree of host weights per IDC and per
 *   rack, and one of rack weights per IDC. A disk's weight is its free chunk count (minus
 *   alloc_tolerate_buffer and chunks charged since its last heartbeat) while it is writable, else
 * 0. Every apply that touches a disk updates its weight at once (O(log hosts)), so a new, repaired
 *   or changed disk is eligible, or not, immediately; nothing is rebuilt on a timer.
 *
 * Expiry is the one time-dependent input. Apply never reads the clock; readers do: the derived
 * view keeps a per-disk "live" flag and a min-heap of lease ends, and cm_disk_advance(now) (called
 * by every reader below that depends on time, and every 100 ms by the node) moves disks whose
 * lease ended out of the writable aggregates. Answers are therefore exact for the reader's clock.
 */
#ifndef CM_MOD_DISK_H
#define CM_MOD_DISK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "fsm.h"

enum {
    CM_DISK_OP_ADD = 1,
    CM_DISK_OP_SET_STATUS = 2,
    CM_DISK_OP_DROP = 3,
    CM_DISK_OP_DROPPED = 4,
    CM_DISK_OP_HEARTBEAT = 5,
    CM_DISK_OP_ACCESS = 6,
    CM_DISK_OP_ADMIN_UPDATE = 7,
};

/* Disk status (spec §4.2). */
enum {
    CM_DISK_NORMAL = 1,
    CM_DISK_BROKEN = 2,
    CM_DISK_REPAIRING = 3,
    CM_DISK_REPAIRED = 4,
    CM_DISK_DROPPED = 5,
};

/* Limits on the strings of a DiskInfo (bytes, without the NUL). */
#define CM_DISK_IDC_MAX 64
#define CM_DISK_RACK_MAX 256
#define CM_DISK_HOST_MAX 256
#define CM_DISK_PATH_MAX 1024
#define CM_DISK_TIME_MAX 64

/* Disks are indexed by id in a dense table (as long as the largest id), so ids are bounded:
 * 1..CM_DISK_ID_MAX, 16,777,216, far above the 200,000 disks the module is sized for. An add or a
 * snapshot record beyond it is refused rather than sizing the table to up to 2^32 entries. */
#define CM_DISK_ID_MAX (1u << 24)

/* Quota accounting (limits.disk_max_entries, limits.disk_max_bytes): a disk counts its strings
 * plus this overhead; from cluster version 2 on apply refuses an add past the ceiling, which no
 * configured quota may exceed (the count is held to CM_DISK_ID_MAX by the id bound already). */
#define CM_DISK_ENTRY_OVERHEAD 256u
#define CM_DISK_HARD_MAX_BYTES (8ull << 30)

/* Bounds of the numbers of a disk (so that sums over every disk cannot overflow): bytes at most
 * 2^50 (1 PiB), chunk counts at most 2^32. */
#define CM_DISK_BYTES_MAX (1LL << 50)
#define CM_DISK_CHUNKS_MAX (1LL << 32)

/* Placement refused: fewer writable disks (or free chunks) in the IDC than units asked for. */
#define CM_DISK_ENOSPC (-28)

/* A disk as readers see it. The strings point into the module and stay valid until the next
 * apply or snapshot restore. */
struct cm_disk_info {
    uint32_t disk_id;
    uint32_t cluster_id;
    const char *idc, *rack, *host, *path;
    const char *create_time, *last_update_time; /* RFC 3339, stored as the caller sent them */
    uint8_t status;
    bool readonly;
    bool dropping;
    int64_t used, free, size;
    int64_t max_chunk_cnt, free_chunk_cnt, used_chunk_cnt;
    int64_t expire_ns;      /* heartbeat lease end (0: never expires) */
    int64_t last_expire_ns; /* lease end before the last heartbeat */
};

/* One element of a heartbeat. */
struct cm_disk_hb {
    uint32_t disk_id;
    int64_t used, free, size, used_chunk_cnt;
};

/* ---- status rules (spec §4.2) ---- */

/* A change from `from` to `to` (to != from) is allowed: forward by one step, or to dropped. */
bool cm_disk_transition_ok(uint8_t from, uint8_t to);
const char *cm_disk_status_name(uint8_t status);

/* ---- command payloads (docs/formats.md) ---- */

/* Add and heartbeat carry the proposer's heartbeat_expire_interval_s and chunk_size from `cfg`
 * (apply computes the lease end and the chunk counters from them, not from its own config).
 * max/free chunk counts of `d` are not carried. */
void cm_disk_enc_add(struct cm_buf *b, const struct cm_disk_info *d,
                     const struct cm_fsm_settings *cfg);
/* Appended to an add (after cm_disk_enc_add) when the disk belongs to a node: the node and the
 * proposer's disk-set caps; apply refuses the add (934) when the node is gone by then. */
struct cm_node_caps;
void cm_disk_enc_add_node(struct cm_buf *b, uint32_t node_id, const struct cm_node_caps *caps);
void cm_disk_enc_set_status(struct cm_buf *b, uint32_t disk_id, uint8_t status);
void cm_disk_enc_id(struct cm_buf *b, uint32_t disk_id); /* drop, dropped */
void cm_disk_enc_heartbeat(struct cm_buf *b, const struct cm_disk_hb *hb, size_t n,
                           const struct cm_fsm_settings *cfg);
void cm_disk_enc_access(struct cm_buf *b, uint32_t disk_id, bool readonly);
/* status outside 1-5 and counts <= 0 leave those fields unchanged. */
void cm_disk_enc_admin_update(struct cm_buf *b, uint32_t disk_id, uint8_t status,
                              int64_t max_chunk_cnt, int64_t free_chunk_cnt);

/* ---- readers (loop thread) ---- */

bool cm_disk_get(struct cm_fsm *fsm, uint32_t disk_id, struct cm_disk_info *out);
size_t cm_disk_count(struct cm_fsm *fsm);
/* Bytes the disks count for the quota, and what one more disk with these strings would add. */
uint64_t cm_disk_bytes(struct cm_fsm *fsm);
uint64_t cm_disk_entry_bytes(const char *idc, const char *rack, const char *host, const char *path,
                             const char *ctime, const char *utime);
/* The disk id that holds (host, path) in the uniqueness filter, 0 when free. */
uint32_t cm_disk_hostpath_owner(struct cm_fsm *fsm, const char *host, const char *path);

struct cm_disk_filter {
    const char *idc;  /* NULL: any */
    const char *rack; /* NULL: any (only meaningful with idc) */
    const char *host; /* NULL: any */
    uint8_t status;   /* 1-5, anything else: any */
};
/* Up to `max` ids of disks matching `f`, ascending, strictly after `marker`. */
size_t cm_disk_list(struct cm_fsm *fsm, const struct cm_disk_filter *f, uint32_t marker,
                    uint32_t *out, size_t max);
/* Ids of the disks with the dropping flag, ascending; caller frees. */
uint32_t *cm_disk_dropping(struct cm_fsm *fsm, size_t *n);

/* Update the expiry view to `now_ns` (local wall clock). Cheap when nothing expired. */
void cm_disk_advance(struct cm_fsm *fsm, int64_t now_ns);
/* available (normal, not readonly, not dropping) and its lease not ended at `now_ns`. */
bool cm_disk_writable(struct cm_fsm *fsm, uint32_t disk_id, int64_t now_ns);

/* The space_stat object of /stat (spec §6.3) as of `now_ns`. */
struct json_object *cm_disk_space_stat(struct cm_fsm *fsm, int64_t now_ns);

/* ---- placement (leader only; never called from apply) ----
 *
 * cm_disk_place chooses `count` distinct writable disks in IDC `idc` by weighted random selection
 * (weight: free chunk count - alloc_tolerate_buffer - chunks charged since the disk's last
 * heartbeat), as of `now_ns`:
 * - host_aware (config): the disks are on distinct hosts, and hosts that own an excluded disk are
 *   not used; with rack_aware as well, racks are drawn first (weighted by their hosts' weights)
 *   and the units spread over racks round by round: no rack gets a second unit before every rack
 *   that still has an eligible host got one;
 * - without host_aware: distinct disks, hosts may repeat; excluded disks are skipped.
 * `exclude` lists disk ids (of any IDC) that must not be chosen. `rng` is the caller's generator
 * state (cm_disk_rand); the index is left exactly as it was. Returns 0 with the ids in `out`
 * (`count` entries), or CM_DISK_ENOSPC ("no enough space to alloc") when the IDC is unknown, has
 * fewer than `count` free chunks in total, or the constraints cannot be met.
 */
int cm_disk_place(struct cm_fsm *fsm, const char *idc, unsigned count, const uint32_t *exclude,
                  size_t n_exclude, int64_t now_ns, uint64_t *rng, uint32_t *out);
/* A chunk was created on `disk_id`: lower its placement weight by `chunks` until its next
 * heartbeat (leader-local, not replicated; the reference lowered free_chunk_cnt itself). */
void cm_disk_charge(struct cm_fsm *fsm, uint32_t disk_id, int64_t chunks);
/* Sum of placement weights in `idc` (0 when unknown), as of the last advance. */
int64_t cm_disk_idc_weight(struct cm_fsm *fsm, const char *idc);
/* splitmix64: the generator placement uses. */
uint64_t cm_disk_rand(uint64_t *state);

/* ---- hooks implemented by the volume module ----
 *
 * Number of volume units recorded on `disk_id` (the /disk/dropped check, error 930), pending
 * ones included; defined in mod_volume.c.
 */
size_t cm_volume_units_on_disk(struct cm_fsm *fsm, uint32_t disk_id);

/* Tests: recompute every derived index and aggregate from the disks and compare. 0 or -1. */
int cm_disk_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen);

#endif
