/*
 * An authenticated TCP transport for canonical raft (struct raft_uv_transport).
 *
 * Canonical raft's own TCP transport accepts any connection that sends its handshake, so anyone
 * who can reach a raft port can claim to be a member and change terms, leadership and the log.
 * This transport admits a connection only when both ends prove they hold the cluster's peer
 * secret, with a challenge-response before any raft message flows:
 *
 *   client -> server  HELLO      "CMRAFT01", u64 client id, 32-byte nonce Nc, u16 address length,
 *                                address (the client's raft address)
 *   server -> client  CHALLENGE  "CMRAFT01", 32-byte nonce Ns,
 *                                HMAC-SHA256(secret, "server" | Nc | Ns | id | address)
 *   client -> server  PROOF      HMAC-SHA256(secret, "client" | Ns | Nc | id | address)
 *   server -> client  OK         one byte 0x01
 *
 * (integers big-endian). Both nonces are fresh per connection, so a recorded handshake cannot be
 * replayed. The server hands the stream to raft only after a valid PROOF, the client only after
 * OK; reads are sized exactly so no raft byte is consumed by the handshake. An outgoing
 * handshake must finish within 5 seconds; an incoming one gets 1 second for the HELLO and 1 for
 * the PROOF, at most 64 may be pending per source address and 512 in all (a newer connection
 * evicts the oldest, silent ones first), and failures are logged (rate limited). After the
 * handshake, each message an accepted peer sends is checked against raft's framing before raft
 * sizes a buffer from it (limits in transport.c).
 * The handshake authenticates; it does not encrypt (see docs/security.md).
 */
#ifndef CM_TRANSPORT_H
#define CM_TRANSPORT_H

#include <raft/uv.h>
#include <stddef.h>
#include <uv.h>

/* `bind_addr` is "ip:port" (IPv4 or IPv6 literal). The secret is copied. Returns 0 or a raft
 * error code. Release with cm_transport_free after raft has closed the transport. */
int cm_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const char *bind_addr,
                      const char *secret);
void cm_transport_free(struct raft_uv_transport *t);

/* Without a peer secret: canonical raft's own TCP transport (anyone may connect), wrapped only
 * to set TCP_NODELAY on its streams. Release with cm_transport_free_plain. */
int cm_transport_init_plain(struct raft_uv_transport *t, uv_loop_t *loop, const char *bind_addr);
void cm_transport_free_plain(struct raft_uv_transport *t);

/* Counters for tests and metrics. */
struct cm_transport_stats {
    unsigned long accepted;
    unsigned long rejected;
    unsigned long connected;
    unsigned long connect_failed;
    unsigned long evicted; /* incoming handshakes dropped to make room for newer ones */
};
const struct cm_transport_stats *cm_transport_stats(struct raft_uv_transport *t);

#endif
