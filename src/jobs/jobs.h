/* The leader background jobs of every domain (jobs.c and the files next to it). */
#ifndef CM_JOBS_H
#define CM_JOBS_H

struct cm_node;

/* Called once on the loop thread before the HTTP server starts: registers the leader jobs and
 * hooks of every domain. */
void cm_jobs_init(struct cm_node *n);

#endif
