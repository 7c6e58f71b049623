/*
 * Cluster module: the cluster version, the format version that every member of the cluster
 * applies (docs/formats.md, "Versions").
 *
 * The leader raises it once every voter and learner announced that it runs a binary of that
 * version or later (src/jobs/version_jobs.c); it never goes down. Commands and snapshot sections
 * of a later format are proposed or written only once the cluster version reached theirs, so a
 * rolling upgrade never shows an old member something it cannot apply. Apply code whose
 * behaviour changed in a later format asks for the cluster version, so old and new binaries
 * apply the same entries the same way until the version moves.
 *
 * Replicated state: one number, 1 until the first raise. Its snapshot section is written only
 * above 1, so a stream of a cluster at version 1 is one the previous release loads, and a
 * stream of a cluster past it is refused by every release before it.
 */
#ifndef CM_MOD_CLUSTER_H
#define CM_MOD_CLUSTER_H

#include "fsm.h"

enum { CM_CLUSTER_OP_SET_VERSION = 1 };

/* The applied cluster version (1 for a new cluster until its leader raised it). */
unsigned cm_cluster_version(struct cm_fsm *fsm);
void cm_cluster_enc_set_version(struct cm_buf *b, unsigned version);

#endif
