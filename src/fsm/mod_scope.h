/*
 * Scope module: monotonic id counters ("bid", "diskid", "vid"; spec §4.8).
 *
 * The leader reserves a range by raising a leader-local counter and proposes the new upper
 * bound; apply raises the replicated counter to it and never lowers it. A range is handed out
 * only once its proposal is applied, so ranges never overlap, across leader changes too: a ready
 * leader starts from max(its own reservations, the applied counter), and the applied counter
 * already covers everything an earlier leader committed. A proposal that fails leaves a hole.
 */
#ifndef CM_MOD_SCOPE_H
#define CM_MOD_SCOPE_H

#include "fsm.h"

enum { CM_SCOPE_OP_ALLOC = 1 };

#define CM_SCOPE_NAME_MAX 32
#define CM_SCOPE_MAX_COUNT 1000000

/* Reserve `count` ids on the leader: returns the new upper bound (the range is
 * [upper-count+1, upper]) and writes the payload to propose. */
uint64_t cm_scope_reserve(struct cm_fsm *fsm, const char *name, uint64_t count,
                          struct cm_buf *payload);
/* Apply side of another module: raise the applied counter to `value` (never lowers it). Used by
 * commands that take an id and record it in one entry (a volume's vid). */
void cm_scope_raise(struct cm_fsm *fsm, const char *name, uint64_t value);
/* The applied counter (0 when never used). */
uint64_t cm_scope_current(struct cm_fsm *fsm, const char *name);

#endif
