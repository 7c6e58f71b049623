/*
 * Node module: the blobnode processes of CubeFS v3.5.1 and later (current-release.md §2.2) and
 * the copy sets they are grouped into (§2.3): node sets of nodes, and inside each node set, disk
 * sets of disks.
 *
 * Replicated state:
 * - per node: id, node set, cluster id, disk type, role, status (1 normal, 2 dropped), idc, rack
 *   and host. Ids come from the `nodeid` scope, raised by the add itself, so an add is one entry;
 * - per disk that belongs to a node: its node, its disk set (0 when it never joined one) and
 *   whether it is still a member (a disk leaves its set for good when it becomes dropping,
 *   repaired or dropped);
 * - the two counters of node-set and disk-set ids (1 is the reserved id of the synthetic EC set,
 *   so the first real set is 2).
 *
 * Derived and rebuilt on load: the host+disk type filter, each node's disks, each node set's
 * live nodes and disk sets, each disk set's member count.
 *
 * Node sets and disk sets are chosen at apply time by the deterministic rules of §2.3 from caps
 * that the proposer carries in the command, so every member computes the same answer from the
 * same log whatever its own config, also after a restart or a snapshot install. A set exists from
 * its first assignment on and is never deleted, so the scan that picks a set sees the same sets
 * whether the state was built entry by entry or loaded from a snapshot.
 *
 * Disks without a node (registered by blobnodes of CubeFS 3.5.0 and older) are not in this
 * module: their node_id and disk_set_id are 0.
 */
#ifndef CM_MOD_NODE_H
#define CM_MOD_NODE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "fsm.h"

enum {
    CM_NODE_OP_ADD = 1,
    CM_NODE_OP_DROP = 2,
    CM_NODE_OP_ATTACH_DISK = 3, /* the "compatible re-register" of a disk without a node */
};

enum { CM_NODE_NORMAL = 1, CM_NODE_DROPPED = 2 };
enum { CM_NODE_ROLE_BLOBNODE = 1, CM_NODE_ROLE_SHARDNODE = 2 };

/* Node ids are bounded like disk ids (a dense table): 1..2^20, far above 10,000 blobnodes. */
#define CM_NODE_ID_MAX (1u << 20)
/* Quota accounting (limits.node_max_*): a node counts its strings plus this overhead; apply
 * refuses an add past the ceiling, which no configured quota may exceed. */
#define CM_NODE_ENTRY_OVERHEAD 128u
#define CM_NODE_HARD_MAX_BYTES (1ull << 30)
/* Node-set and disk-set ids: a set per node or per disk at most. */
#define CM_NODE_SET_ID_MAX (1u << 25)

struct cm_node_info {
    uint32_t node_id;
    uint32_t node_set_id;
    uint32_t cluster_id;
    uint8_t disk_type;
    uint8_t role;
    uint8_t status;
    const char *idc, *rack, *host;
};

/* The caps a proposer carries (from its disk_mgr_config.copy_set_configs and idc list). */
struct cm_node_caps {
    uint32_t node_set_cap, node_set_rack_cap, node_set_idc_cap;
    uint32_t disk_set_cap, disk_per_node;
    bool rack_aware;
};
void cm_node_caps_from_config(const struct cm_fsm_settings *cfg, uint8_t disk_type,
                              struct cm_node_caps *caps);

/* Disk types and roles by name ("hdd", "ssd", "nvmessd"; "blobnode", "shardnode"). */
const char *cm_disk_type_name(uint8_t t);
int cm_disk_type_parse(const char *name); /* -1 when unknown */
const char *cm_node_role_name(uint8_t r);
int cm_node_role_parse(const char *name);

/* ---- command payloads (docs/formats.md) ---- */

/* `requested_set`: 0 = let apply choose. */
void cm_node_enc_add(struct cm_buf *b, const struct cm_node_info *n, uint32_t requested_set,
                     const struct cm_node_caps *caps);
void cm_node_enc_drop(struct cm_buf *b, uint32_t node_id);
void cm_node_enc_attach(struct cm_buf *b, uint32_t disk_id, uint32_t node_id,
                        const struct cm_node_caps *caps);

/* ---- readers (loop thread) ---- */

bool cm_node_get(struct cm_fsm *fsm, uint32_t node_id, struct cm_node_info *out);
/* The node with this host and disk type, 0 when none (dropped nodes keep their key). */
uint32_t cm_node_find(struct cm_fsm *fsm, const char *host, uint8_t disk_type);
/* Node sets so far (the counter; 1 when none was made). */
uint32_t cm_node_cur_set_id(struct cm_fsm *fsm);
/* Whether node set `id` exists for disk type `t`. */
bool cm_node_set_exists(struct cm_fsm *fsm, uint32_t id, uint8_t t);
/* Number of nodes that are not dropped; whether any node was ever added. */
size_t cm_node_live_count(struct cm_fsm *fsm);
/* Every node ever added (dropped ones keep their record), and the bytes they count. */
size_t cm_node_count(struct cm_fsm *fsm);
uint64_t cm_node_bytes(struct cm_fsm *fsm);
uint64_t cm_node_entry_bytes(const char *idc, const char *rack, const char *host);
bool cm_node_any(struct cm_fsm *fsm);
/* Disks that are members of a disk set. */
size_t cm_node_member_disks(struct cm_fsm *fsm);
/* Node and disk set of a disk (0, 0 for a disk without a node); whether it is a member of its
 * disk set. */
void cm_node_of_disk(struct cm_fsm *fsm, uint32_t disk_id, uint32_t *node_id, uint32_t *disk_set_id,
                     bool *member);
/* Ids of a node's disks, ascending; NULL when none. Valid until the next apply. */
const uint32_t *cm_node_disks(struct cm_fsm *fsm, uint32_t node_id, size_t *n);
/* GET /topo/info in the G2 shape. */
struct json_object *cm_node_topo_json(struct cm_fsm *fsm);

/* ---- hooks for the disk module (apply side) ----
 * A disk was added with a node: record it and choose its disk set (when `member`). 0, or
 * CM_ERR_NODE_NOT_FOUND when the node is unknown or dropped. */
int cm_node_disk_added(struct cm_fsm *fsm, uint32_t disk_id, uint32_t node_id, bool member,
                       const struct cm_node_caps *caps);
/* Whether the disk may be added under that node (exists, not dropped). */
bool cm_node_usable(struct cm_fsm *fsm, uint32_t node_id);
/* The disk became dropping, repaired or dropped: it leaves its disk set (idempotent). */
void cm_node_disk_left(struct cm_fsm *fsm, uint32_t disk_id);

/* Tests: rebuild every derived index from the records and compare. 0 or -1. */
int cm_node_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen);

#endif
