/*
 * The erasure-code modes of the blob store (spec §4.5, current-release.md §3.8): a fixed table
 * of names, ids and shard counts that every module and client agrees on.
 */
#ifndef CM_CODEMODE_H
#define CM_CODEMODE_H

#include <stdint.h>

struct cm_codemode {
    const char *name;
    uint8_t id;
    int n, m, l;
    int az_count;
    int put_quorum;
    int min_shard_size;
};

/* Erasure-code modes only; NULL when unknown. */
const struct cm_codemode *cm_codemode_by_name(const char *name);
const struct cm_codemode *cm_codemode_by_id(unsigned id);
/* The replica modes CubeFS knows (Replica3, Replica3OneAZ), which we do not support yet: only
 * so that a config naming one is refused with a clear message. NULL for any other name. */
const struct cm_codemode *cm_codemode_replica_by_name(const char *name);

static inline int cm_codemode_units(const struct cm_codemode *c)
{
    return c->n + c->m + c->l;
}

/* Lowest health score at which a volume of this mode is still allocatable (PutQuorum - units). */
static inline int cm_codemode_min_health(const struct cm_codemode *c)
{
    return c->put_quorum - cm_codemode_units(c);
}

/* Unit index of the i-th unit (0-based) of availability zone `az`, in the order data, parity,
 * local parity; returns the number of units in that zone. `out` has room for all units. */
int cm_codemode_az_units(const struct cm_codemode *c, int az, int *out);

#endif
