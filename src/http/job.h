/*
 * A job is one HTTP request on its way through the node.
 *
 * Life cycle: an HTTP thread creates it, reads the body, parses the arguments (route->parse) and
 * either answers at once (bad input, routes served on the HTTP thread) or hands the job to the
 * loop (cm_node_submit); its connection reads nothing more until the job comes back. On the loop
 * the job waits in at most one place at a time -- a waiting list, a raft proposal, a forwarded
 * request, a blobnode call -- until a reply function (cm_reply_*) fills the response, detaches it
 * from wherever it waited and gives it back to its connection's thread (cm_http_resume). After that
 * the loop never touches the job again; the HTTP thread sends the response and frees the job once
 * it is written.
 */
#ifndef CM_JOB_H
#define CM_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

struct cm_conn;
struct cm_route;
struct cm_jlist;
struct cm_http;
struct cm_node;
struct cm_config;

enum cm_method { CM_GET = 1, CM_POST = 2, CM_PUT = 4, CM_DELETE = 8, CM_HEAD = 16 };

struct cm_qarg {
    char *key;
    char *value; /* NULL when given without '=' */
};

struct cm_hdr {
    const char *name;
    char *value;
};

#define CM_JOB_MAX_HDRS 4

enum { CM_STREAM_END = -1, CM_STREAM_ERROR = -2 };

enum cm_job_state { CM_JOB_NEW = 0, CM_JOB_RECEIVING, CM_JOB_IN_LOOP, CM_JOB_REPLIED };

struct cm_job {
    /* request, immutable once the job reached the loop */
    struct cm_conn *conn; /* the front end's connection (src/http/server.c) */
    struct cm_http *http;
    struct cm_node *node;
    const struct cm_config *cfg; /* the node's immutable config: what parsers may read */
    const struct cm_route *route;
    int method;
    char *uri;  /* raw request target, path and query, as sent */
    char *path; /* decoded path */
    struct cm_qarg *qargs;
    size_t n_qargs;
    struct cm_buf body;
    bool body_too_large;
    /* bytes of the server's request body budget this request holds */
    uint64_t body_reserved;
    char peer_ip[64];   /* TCP peer */
    char client_ip[64]; /* caller identity of spec §4.6.1 */
    char *xff;          /* X-Forwarded-For as received */
    char *auth_token;   /* BLOB-STORE-AUTH-TOKEN as received */
    char *req_id_hdr;   /* X-Request-Id as received, for the logs */
    bool stale;         /* ?stale=true or X-Clustermgr-Stale: 1 */
    bool internal;      /* node-to-node request */
    int hops;           /* X-Clustermgr-Hops: forwards so far */
    void *args;         /* parsed arguments, owned */
    /* Not parsed yet: the front end left route->parse of a write to cm_node_submit, which
     * parses only when the write does not go to the leader unparsed (the leader parses it). */
    bool args_later;
    void (*args_free)(void *);
    uint64_t start_us;
    uint64_t id;

    /* response */
    int status;
    char *resp;
    size_t resp_len;
    const char *resp_ctype;
    struct cm_hdr hdrs[CM_JOB_MAX_HDRS];
    int n_hdrs;
    /* a streamed body instead of resp, called from the HTTP thread: bytes written to buf, or
     * CM_STREAM_END at the end, or CM_STREAM_ERROR (the connection is cut short) */
    void *stream;
    long (*stream_read)(void *stream, uint64_t pos, char *buf, size_t max);
    void (*stream_free)(void *stream);

    /* loop side */
    enum cm_job_state state;
    struct cm_job *qnext; /* incoming queue */
    struct cm_job *wprev, *wnext;
    struct cm_jlist *wlist;       /* the waiting list the job is on, if any */
    struct cm_job *aprev, *anext; /* all jobs in the loop, oldest first (deadlines) */
    uint64_t deadline_ms;
    void **backref; /* slot of an async operation that points at this job */
    uint64_t read_index;
    void *hstate; /* handler continuation state */
    void (*hstate_free)(void *);
    /* A job with no connection (one write of a forwarded batch on the leader): called on the
     * loop thread when it is answered, instead of giving it back to a connection. */
    void (*on_done)(struct cm_job *j);
    void *done_arg;
    /* The front end's worker that reads this job's connection: its libuv loop and a slot the
     * dispatch layer keeps its forwarder in (touched only on that worker's thread). */
    void *worker_loop;
    void **worker_slot;
};

struct cm_jlist {
    struct cm_job *head, *tail;
    size_t n;
};

void cm_jlist_push(struct cm_jlist *l, struct cm_job *j);
void cm_jlist_remove(struct cm_job *j);
struct cm_job *cm_jlist_pop(struct cm_jlist *l);
/* Move every job of `from` to the end of `to`. */
void cm_jlist_splice(struct cm_jlist *to, struct cm_jlist *from);

/* "GET", "POST", ... for a cm_method value. */
const char *cm_method_name(int method);

/* Query argument; NULL when missing or empty (spec §2.1: empty counts as missing). */
const char *cm_job_query(const struct cm_job *j, const char *name);
const char *cm_job_query_raw(const struct cm_job *j, const char *name, bool *present);

/* Attach a response header (value copied). */
void cm_job_add_header(struct cm_job *j, const char *name, const char *value);

/* Fill the response without sending it (usable on any thread before the job is handed off). */
void cm_job_set_response(struct cm_job *j, int status, const char *ctype, char *body, size_t len);
/* {"error":msg[,"code":code]} */
void cm_job_set_error(struct cm_job *j, int status, const char *msg, const char *code);
/* A clustermgr 9xx code or a generic HTTP error with its standard message (errors.h). */
void cm_job_set_code(struct cm_job *j, int code);
/* The request target as sent (path and query, uri[0..len)): sets uri, the %-decoded path, and the
 * query arguments ('+' is a space there, a '%' that starts no escape stays, at most 256). */
void cm_job_set_target(struct cm_job *j, const char *uri, size_t len);
/* Free a job and everything it owns (arguments, response, stream and handler state). */
void cm_job_free(struct cm_job *j);

#endif
