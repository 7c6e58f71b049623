/*
 * Loop-side work of the disk domain: every 100 ms, on every node, move disks whose heartbeat lease
 * ended out of the writable aggregates (space_stat, placement). Readers advance the view
 * themselves too; the tick keeps the lease heap short when nobody reads.
 */
#include "../fsm/mod_disk.h"
#include "../raft/node.h"
#include "../util/timeutil.h"

static void disk_tick(struct cm_node *n, void *arg)
{
    (void)arg;
    cm_disk_advance(cm_node_fsm(n), cm_now_ns());
}

void cm_disk_jobs_init(struct cm_node *n)
{
    struct cm_node_hooks h = {.on_tick = disk_tick};
    cm_node_add_hooks(n, &h);
}
