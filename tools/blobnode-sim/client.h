/*
 * The clustermgr side of the simulator, shared by client.c (transport, scheduling, and the
 * conversation both protocol generations have: disk listing, registration, heartbeats, broken
 * disks) and current.c (what only a current blobnode says: service, node, chunk reports, the
 * chunk garbage check, the task switch). Everything here runs on the main thread.
 */
#ifndef CM_SIM_CLIENT_H
#define CM_SIM_CLIENT_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdint.h>

#include "../../src/util/buf.h"
#include "sim.h"

enum {
    K_LIST,
    K_ALLOC,
    K_ADD,
    K_HEARTBEAT,
    K_SET,
    /* current generation only */
    K_SVC_REGISTER,
    K_SVC_HEARTBEAT,
    K_NODE_ADD,
    K_REPORT,
    K_UNIT_LIST,
    K_VOLUME_GET,
    K_SWITCH_GET,
    K_SWITCH_SET
};

struct req {
    struct shost *h;
    int kind;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    struct cm_buf resp;
    uint64_t start_us;
    int n_disks;              /* heartbeat: disks reported */
    struct sdisk *disk;       /* set, add (current), unit list: the disk */
    uint32_t add_id;          /* add (current): the disk id sent */
    struct gc_item *reported; /* report: the chunks sent, marked dirty again on failure */
    size_t n_reported;
    struct req *prev, *next;
};

struct client {
    struct sim *s;
    CURLM *multi;
    int epfd;            /* curl's sockets (CURLMOPT_SOCKETFUNCTION) */
    int64_t timer_at_ms; /* when curl wants CURL_SOCKET_TIMEOUT; -1: no timer */
    int inflight;
    struct req *live;                /* every request in flight */
    struct shost *rq_head, *rq_tail; /* hosts with something to send, in arrival order */
    uint64_t last_log_ms;
    uint64_t errors_logged;
    int stops_logged;
};

/* A request with a JSON body (NULL: the text "null", as the 2022 client posts). Takes `body`. */
struct req *sim_start(struct client *cl, struct shost *h, int kind, const char *method,
                      const char *path, char *body);
/* A request with `len` bytes of `body` (taken; NULL and 0: an empty body, Content-Length: 0) of
 * content type `ctype` (NULL: none). */
struct req *sim_start_raw(struct client *cl, struct shost *h, int kind, const char *method,
                          const char *path, char *body, size_t len, const char *ctype);
/* One log line, at most one every 2 s across the fleet (the rest are counted). */
void sim_log_limited(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct json_object *sim_parse(struct req *r);
uint32_t sim_get_u32(struct json_object *o, const char *name);
/* The answer as text for a log line (at most 300 bytes of it). */
int sim_resp_len(const struct req *r);
const char *sim_resp_text(const struct req *r);

/* current.c */
/* The host's next request in the current generation; returns false when it has nothing to send
 * in its phase beyond what client.c does (RUN: the disk heartbeat, broken disks). */
bool cur_step(struct client *cl, struct shost *h, uint64_t now, bool hb_due);
void cur_complete(struct client *cl, struct req *r, long status, struct json_object *o,
                  uint64_t now);
/* A request failed over to the next clustermgr node: send it again soon. */
void cur_retry(struct client *cl, struct req *r);
/* Earliest time one of the current generation's loops wants to send (RUN). */
uint64_t cur_next_due(const struct shost *h);
void cur_enter_run(struct sim *s, struct shost *h, uint64_t now);
/* After the host's disk list: which disks to add; false when the host had to stop. */
bool cur_listed(struct client *cl, struct shost *h);
/* The heartbeat answer's status for one of this host's disks. */
void cur_disk_status(struct client *cl, struct shost *h, struct sdisk *d, uint8_t status);
/* Start over from /service/register (the cluster forgot the host's disks). */
void cur_restart(struct shost *h);
/* Stop a host as a real blobnode exits: it sends nothing more and closes its port. */
void cur_stop_host(struct client *cl, struct shost *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cur_free(struct shost *h);

#endif
