/* Command codec; see cmd.h. */
#include "cmd.h"

#include <string.h>

#include "../util/codec.h"

int cm_cmd_encode(const struct cm_cmd *cmd, struct raft_buffer *out)
{
    if (cmd->len > CM_CMD_MAX_PAYLOAD)
        return -1;
    size_t total = CM_CMD_HDR + cmd->len;
    size_t padded = (total + 7) & ~(size_t)7;
    uint8_t *p = raft_malloc(padded);
    if (p == NULL)
        return -1;
    p[0] = CM_CMD_MAGIC;
    p[1] = cmd->version ? cmd->version : CM_CMD_VERSION;
    p[2] = cmd->module;
    p[3] = cmd->op;
    cm_wbe32(p + 4, (uint32_t)cmd->len);
    cm_wbe64(p + 8, cmd->node_id);
    cm_wbe64(p + 16, cmd->req_id);
    cm_wbe64(p + 24, (uint64_t)cmd->ts_ns);
    if (cmd->len)
        memcpy(p + CM_CMD_HDR, cmd->payload, cmd->len);
    memset(p + total, 0, padded - total);
    out->base = p;
    out->len = padded;
    return 0;
}

int cm_cmd_decode(const void *buf, size_t len, struct cm_cmd *out)
{
    const uint8_t *p = buf;
    if (len < CM_CMD_HDR || p[0] != CM_CMD_MAGIC || p[1] < CM_CMD_VERSION)
        return -1;
    uint32_t plen = cm_be32(p + 4);
    if (plen > len - CM_CMD_HDR)
        return -1;
    out->version = p[1];
    out->module = p[2];
    out->op = p[3];
    out->len = plen;
    out->node_id = cm_be64(p + 8);
    out->req_id = cm_be64(p + 16);
    out->ts_ns = (int64_t)cm_be64(p + 24);
    out->payload = p + CM_CMD_HDR;
    return 0;
}
