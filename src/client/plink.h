/*
 * Persistent pipelined HTTP/1.1 connections to peers, driven on one libuv loop (an HTTP worker's
 * own, for the writes a follower forwards to its leader; docs/developing.md).
 *
 * Unlike cm_httpc (libcurl on a thread of its own) a request here never leaves the loop that
 * submitted it: it is written on the connection to its host at once (behind the requests still
 * waiting for their answers) and `done` runs on the same loop when its answer arrived, in order.
 * Plain http:// to an IP literal only; anything else is refused at submit, and the caller uses
 * cm_httpc. A connection that breaks, answers garbage or lets its oldest request pass its
 * timeout is closed, and every request on it completes with status 0 and a reason in `error`.
 */
#ifndef CM_PLINK_H
#define CM_PLINK_H

#include <uv.h>

#include "httpc.h"

struct cm_plink;

struct cm_plink *cm_plink_new(uv_loop_t *loop);
/* Whether cm_plink_submit takes requests for this URL (plain http:// to an IP literal). */
bool cm_plink_url_ok(const char *url);
/* Send r (method, url, headers, body, timeout_ms, done as for cm_httpc). 0, or -1 when the URL
 * is not one cm_plink_url_ok takes (r is untouched then). */
int cm_plink_submit(struct cm_plink *l, struct cm_httpc_req *r);
/* Complete every request in flight with status 0 ("client closed") and free the client once its
 * handles are closed. Call on the loop's thread. */
void cm_plink_close(struct cm_plink *l);

#endif
