/*
 * Leader job of the service registry: unregister nodes that expired long ago.
 *
 * Apply never reads the clock, so expiry cannot purge anything by itself (mod_service.h). Once a
 * second the leader looks for nodes whose expiry lies more than limits.service_collect_after_s
 * behind its clock and proposes an ordinary unregister for up to BATCH of them; a node that
 * heartbeats or registers again meanwhile only answers 404 to the stale unregister if it was
 * removed, and a fresh register after the unregister simply adds it back. Nodes registered with a
 * timeout of 0 or less are expired from the start and go the same way.
 */
#include <stdlib.h>

#include "../dispatch/dispatch.h"
#include "../fsm/mod_service.h"
#include "../raft/node.h"
#include "../server/config.h"
#include "../util/timeutil.h"

#define BATCH 256
#define EVERY_MS 1000

struct service_jobs {
    unsigned inflight;
    bool stopped; /* freed by the last callback when proposals are still out at stop */
    uint64_t next_ms;
};

static void unregistered(struct cm_node *n, void *arg, int status, struct cm_result *res)
{
    (void)n;
    (void)status;
    (void)res;
    struct service_jobs *sj = arg;
    if (--sj->inflight == 0 && sj->stopped)
        free(sj);
}

static void service_tick(struct cm_node *n, void *arg)
{
    struct service_jobs *sj = arg;
    uint64_t now_ms = cm_mono_ms();
    if (sj->stopped || !cm_node_is_leader(n) || sj->inflight || now_ms < sj->next_ms)
        return;
    sj->next_ms = now_ms + EVERY_MS;
    int64_t after_ns = (int64_t)cm_node_cfg(n)->service_collect_after_s * 1000000000;
    int64_t now_ns = cm_now_ns();
    char **names, **hosts;
    size_t k = cm_service_expired(cm_node_fsm(n), now_ns - after_ns, BATCH, &names, &hosts);
    for (size_t i = 0; i < k; i++) {
        struct cm_buf b = {0};
        cm_service_enc_key(&b, names[i], hosts[i]);
        sj->inflight++;
        cm_node_propose(n, CM_MOD_SERVICE, CM_SERVICE_OP_UNREGISTER, &b, unregistered, sj);
        free(names[i]);
        free(hosts[i]);
    }
    free(names);
    free(hosts);
}

static void service_stop(struct cm_node *n, void *arg)
{
    (void)n;
    struct service_jobs *sj = arg;
    sj->stopped = true;
    if (sj->inflight == 0)
        free(sj);
}

void cm_service_jobs_init(struct cm_node *n)
{
    struct cm_node_hooks h = {.on_tick = service_tick, .on_stop = service_stop};
    h.arg = cm_calloc(1, sizeof(struct service_jobs));
    cm_node_add_hooks(n, &h);
}
