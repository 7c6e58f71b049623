/*
 * The replicated state machine: one module per domain (members, config, scope, service, disk,
 * volume, kv), each with its in-memory indexes, its commands, its apply and its snapshot section.
 *
 * Invariants:
 * - Only the loop thread touches a cm_fsm (snapshot writing works on copies taken on the loop).
 * - apply is deterministic: it reads nothing but the state and the command (time comes from the
 *   command's proposer timestamp), and it never fails: an entry that is invalid at apply time is
 *   logged and changes nothing. A node that returned an error from apply would stop applying.
 * - Snapshot sections are written in a canonical order (sorted keys), so equal states give equal
 *   bytes on every node and the snapshot checksum doubles as a state digest.
 */
#ifndef CM_FSM_H
#define CM_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "../util/buf.h"
#include "../util/codec.h"
#include "cmd.h"

/* What an apply hands back to the proposer (only the proposing node looks at it). */
struct cm_result {
    int code;      /* 0 = done; otherwise an error code decided at apply time (e.g. 914) */
    uint64_t v[4]; /* small results (ranges, ids) */
    void *data;    /* optional larger result, released with free_data */
    void (*free_data)(void *);
};

struct cm_fsm;

struct cm_module {
    uint8_t id;
    const char *name;
    void *(*create)(struct cm_fsm *fsm);
    void (*destroy)(void *state);
    void (*apply)(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd, struct cm_result *res);
    /* Snapshot: take runs on the loop and returns a private copy; write runs on a worker
     * thread and may touch only that copy; drop releases it. */
    void *(*snap_take)(void *state);
    void (*snap_write)(void *taken, struct cm_buf *out);
    void (*snap_drop)(void *taken);
    /* Optional: true when the taken copy is empty and its section is left out of the stream
     * (a module that older versions do not know writes nothing until it is used). */
    bool (*snap_skip)(void *taken);
    /* Load a section into a fresh state. Returns 0 or -1 with a message. */
    int (*snap_load)(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err, size_t errlen);
    /* Optional: rebuild derived indexes after every section was loaded. */
    void (*after_load)(struct cm_fsm *fsm, void *state);
    /* Optional: the cluster version moved from `from` to `to` (applied at one log index on
     * every node): convert what the later format keeps differently. */
    void (*on_version)(struct cm_fsm *fsm, void *state, unsigned from, unsigned to);
    /* Optional: the format version a command needs (its header byte); 1 when absent. */
    uint8_t (*cmd_version)(const struct cm_cmd *cmd);
};

/* Callback to observe every applied command (the node completes client requests with it). */
typedef void (*cm_fsm_applied_fn)(void *arg, const struct cm_cmd *cmd, struct cm_result *res);

struct cm_fsm {
    const struct cm_fsm_settings *cfg;
    uint64_t self_id;
    void *mods[CM_MOD_MAX];
    cm_fsm_applied_fn on_applied;
    void *on_applied_arg;
    /* Invoked after a snapshot restore replaced the state (leader-local caches must reset). */
    void (*on_restored)(void *arg);
    uint64_t n_applied;
    uint64_t n_rejected; /* entries that were invalid at apply time (logged no-ops) */
    int64_t last_ts_ns;  /* proposer time of the last applied command */
    /* Set when an entry of a format above CM_FORMAT_VERSION was met: the version it needs.
     * From then on nothing is applied (never a partial apply); the node reports it, takes no
     * snapshot, and applies the whole log again once restarted on a binary that reads it. */
    unsigned blocked_need;
    uint64_t n_blocked; /* entries not applied since */
};

struct cm_fsm *cm_fsm_new(const struct cm_fsm_settings *cfg, uint64_t self_id);
void cm_fsm_free(struct cm_fsm *fsm);

/* Apply one log entry's buffer. Never fails. */
void cm_fsm_apply_buf(struct cm_fsm *fsm, const void *buf, size_t len);
/* Encode a command as the leader would and apply it (tools and tests that build state in
 * process). -1 when the command cannot be encoded, else 0. */
int cm_fsm_apply_cmd(struct cm_fsm *fsm, const struct cm_cmd *c);

const struct cm_module *cm_fsm_module(unsigned id);
/* The format version byte `c` must carry (the module's cmd_version, else 1). */
uint8_t cm_fsm_cmd_version(const struct cm_cmd *c);

/* Snapshot stream (docs/formats.md): magic "CMSNAP01", section count, sections
 * {u8 module, u64 length, bytes}, then a CRC-32 of everything before it. */
struct cm_snap_taken;
struct cm_snap_taken *cm_fsm_snap_take(struct cm_fsm *fsm);
/* Encode the taken copy (any thread) and release it. */
void cm_fsm_snap_write(struct cm_snap_taken *t, struct cm_buf *out);
void cm_fsm_snap_drop(struct cm_snap_taken *t);
/* Convenience: take + write on the calling thread. */
void cm_fsm_snapshot(struct cm_fsm *fsm, struct cm_buf *out);
/* Replace the whole state by a snapshot stream; on error the state is unchanged. */
int cm_fsm_restore(struct cm_fsm *fsm, const void *buf, size_t len, char *err, size_t errlen);
/* Validate a snapshot stream without applying it; fills the CRC (the state digest). */
int cm_fsm_snap_check(const void *buf, size_t len, uint32_t *crc, char *err, size_t errlen);

/* Helper for modules whose snapshot copy is simply their encoded section. */
void *cm_snap_take_encoded(struct cm_buf *encoded);
void cm_snap_write_encoded(void *taken, struct cm_buf *out);
void cm_snap_drop_encoded(void *taken);

void cm_result_release(struct cm_result *res);

#endif
