/*
 * Loop-side state of the volume domain shared by its leader jobs (volume_jobs.c) and its routes
 * (src/api/volume.c).
 *
 * Asynchronous contexts -- a volume being created, a lock/unlock task, a request waiting on a
 * blobnode -- are registered here and found again by a numeric id: proposal callbacks and
 * blobnode completions carry the id, never a pointer, so an answer that arrives after its context
 * was cancelled (lost leadership, timed-out request, shutdown) finds nothing and is dropped. Ids
 * are never reused. At shutdown every registered context is released through its `drop`.
 */
#ifndef CM_VOLUME_JOBS_H
#define CM_VOLUME_JOBS_H

#include <stdbool.h>
#include <stdint.h>

struct cm_node;
struct cm_job;

/* Register a context; returns its id (0 when the domain is stopped: the caller keeps it). */
uint64_t cm_vol_ctx_add(struct cm_node *n, void *ctx, void (*drop)(void *ctx));
/* The context of `id`, or NULL when it is gone. */
void *cm_vol_ctx_get(struct cm_node *n, uint64_t id);
/* Forget `id` (the caller frees the context). */
void cm_vol_ctx_del(struct cm_node *n, uint64_t id);

/* The leader's generator for placement decisions. */
uint64_t *cm_vol_rng(struct cm_node *n);

/* Something consumed allocatable volumes (or found none): check the pools now. */
void cm_volume_pool_wake(struct cm_node *n);
/* A lock/unlock task record was written for `vid`: run it (leader). */
void cm_volume_task_kick(struct cm_node *n, uint32_t vid);
/* Figures of the last retain and allocation, for /metrics. */
void cm_volume_note_retain(struct cm_node *n, uint64_t bad_tokens);
void cm_volume_note_alloc(struct cm_node *n, bool over_disk_load);

#endif
