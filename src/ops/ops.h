/*
 * Operations: what it takes to run the node as a service -- apply and fsync latency, the systemd
 * notify protocol, per-request logs and the audit log of writes, and forced recovery of a
 * cluster that lost its quorum. The HTTP side (metrics, dashboard, log level) is in src/api.
 */
#ifndef CM_OPS_H
#define CM_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the request path below the front end (cm_node_submit, cm_reqlog_id) */
#include "../dispatch/dispatch.h"

struct cm_node;
struct cm_job;
struct cm_config;

/* ops.c: called once from the jobs init (loop thread, before HTTP serves). Installs the timing
 * of raft's log appends and FSM applies (for /metrics), and the service-manager notifications:
 * READY=1 once the node serves, STATUS= on leader or term changes, WATCHDOG=1 when the service
 * manager asks for it, STOPPING=1 on shutdown. */
void cm_ops_init(struct cm_node *n);
/* Wall clock (Unix ns) when the node started serving; 0 before cm_ops_init. */
int64_t cm_ops_started_ns(struct cm_node *n);

/* notify.c: send `state` (e.g. "READY=1\nSTATUS=...") to the service manager through the
 * datagram socket named by $NOTIFY_SOCKET, without blocking. Returns 1 when no socket is
 * configured, 0 when sent, -errno on failure (-EAGAIN: the receiver's queue is full, dropped).
 * Any thread. */
int cm_notify(const char *state);

/* audit.c: the audit log, one JSON line per write request, in <dir>/audit.log (rotated by size).
 * Lines are queued by the HTTP threads and written by a background thread. Process-wide, like
 * the main log: opened by main before the node starts, closed after it stopped. */
int cm_audit_open(const char *dir, char *err, size_t errlen);
void cm_audit_close(void);
bool cm_audit_enabled(void);
/* Queue one line (a trailing newline is added). */
void cm_audit_write(const char *line, size_t len);
/* Lines written / dropped because the writer fell behind (for /metrics). */
void cm_audit_counts(uint64_t *lines, uint64_t *dropped);

/* reqlog.c: the end of every request (HTTP thread): debug line per request, info line for a
 * write that did not succeed, warn line for a slow request, audit line for every write. */
void cm_reqlog_done(struct cm_job *j, uint64_t latency_us);

/* recover.c: force a new raft configuration onto a stopped node's data directory (after a loss
 * of quorum). `peers` is NULL (this node alone) or "id=ip:port,..." including this node. Prints
 * what it did. Returns 0, or -1 with a message. */
int cm_recover(const struct cm_config *cfg, const char *peers, char *err, size_t errlen);

#endif
