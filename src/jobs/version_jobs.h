/*
 * The cluster version job (version_jobs.c) and the gate that routes of a later format pass.
 */
#ifndef CM_VERSION_JOBS_H
#define CM_VERSION_JOBS_H

#include <stdbool.h>
#include <stdint.h>

struct cm_node;
struct cm_job;

void cm_version_jobs_init(struct cm_node *n);
/* The format version member `id` last said its binary applies (0: no answer yet). */
unsigned cm_version_of_member(struct cm_node *n, uint64_t id);
/* For a request whose command is of format `need`: true when the cluster version allows it.
 * Otherwise the job is answered 503 with the reason (`what` names the feature), or, on a leader
 * that may be about to raise the version (no member said it applies less; right after a new
 * cluster started some are not heard from yet), parked for up to 3 s and handled again once it
 * moved. */
bool cm_version_require(struct cm_job *j, unsigned need, const char *what);

#endif
