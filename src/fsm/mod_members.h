/*
 * Members module: the HTTP address of every raft member, replicated so that forwarding to the
 * leader and `leader_host` work for members added at runtime (decisions.md), not only for those
 * in the static `raft_node_config.nodes` map. Raft itself keeps the membership and raft addresses.
 */
#ifndef CM_MOD_MEMBERS_H
#define CM_MOD_MEMBERS_H

#include "fsm.h"

enum { CM_MEMBERS_OP_SET_HTTP = 1, CM_MEMBERS_OP_DEL = 2 };

void cm_members_enc_set_http(struct cm_buf *b, uint64_t id, const char *http_addr);
void cm_members_enc_del(struct cm_buf *b, uint64_t id);

/* Replicated HTTP address of `id`, else the static config's, else NULL. */
const char *cm_members_http(struct cm_fsm *fsm, uint64_t id);
/* Only the replicated one. */
const char *cm_members_http_replicated(struct cm_fsm *fsm, uint64_t id);

#endif
