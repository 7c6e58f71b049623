/*
 * Commands: what goes into a raft log entry (format documented in docs/formats.md).
 *
 *   offset size
 *   0      1    magic 0xC7
 *   1      1    format version: the lowest version of the formats (docs/formats.md, "Versions")
 *                that applies this command correctly; 1 for every command of the first format
 *   2      1    module id
 *   3      1    op (module specific)
 *   4      4    payload length (big-endian)
 *   8      8    proposer raft id
 *   16     8    request id (unique per proposer process incarnation, see node.c)
 *   24     8    proposer wall clock, Unix ns: the only "now" an apply may use
 *   32     n    payload (module specific, codec.h encoding)
 *   32+n   ..   zero padding to a multiple of 8 bytes (canonical raft 0.15 corrupts its log
 *               on restart when an entry's length is not a multiple of 8)
 */
#ifndef CM_CMD_H
#define CM_CMD_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

#define CM_CMD_MAGIC 0xC7
#define CM_CMD_VERSION 1 /* the first format */
/* The highest format version of commands and snapshot sections this binary applies and loads
 * (the "cluster version" it can take part in). 2: nodes and copy sets (CubeFS v3.5.1). A test
 * builds a binary with a later one to play a later release (tests/cluster/test_upgrade.py). */
#ifndef CM_FORMAT_VERSION
#define CM_FORMAT_VERSION 2
#endif
#define CM_CMD_HDR 32
#define CM_CMD_MAX_PAYLOAD (64u << 20)

enum cm_module_id {
    CM_MOD_MEMBERS = 1,
    CM_MOD_CONFIG = 2,
    CM_MOD_SCOPE = 3,
    CM_MOD_SERVICE = 4,
    CM_MOD_DISK = 5,
    CM_MOD_VOLUME = 6,
    CM_MOD_KV = 7,
    CM_MOD_NODE = 8,
    CM_MOD_CLUSTER = 9,
    CM_MOD_MAX = 10
};

struct cm_cmd {
    uint8_t version; /* format version byte (0 encodes as CM_CMD_VERSION) */
    uint8_t module;
    uint8_t op;
    uint64_t node_id;
    uint64_t req_id;
    int64_t ts_ns;
    const uint8_t *payload;
    size_t len;
};

/* Encode into a raft_malloc'd buffer whose length is a multiple of 8. Returns 0 or -1. */
int cm_cmd_encode(const struct cm_cmd *cmd, struct raft_buffer *out);
/* Decode; payload points into `buf`. Returns 0, or -1 when malformed. A version above
 * CM_FORMAT_VERSION decodes (the state machine refuses to apply it, see fsm.h). */
int cm_cmd_decode(const void *buf, size_t len, struct cm_cmd *out);

#endif
