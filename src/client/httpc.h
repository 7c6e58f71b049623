/*
 * Outgoing HTTP: forwarding writes to the leader, read-index requests, blobnode chunk calls.
 *
 * A worker thread drives one libcurl multi handle (connections are pooled and reused across
 * requests). Requests are submitted from any thread; each completion is delivered on the loop
 * thread through a uv_async, so `done` may touch loop state freely.
 */
#ifndef CM_HTTPC_H
#define CM_HTTPC_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../util/buf.h"

struct cm_httpc;

struct cm_httpc_req {
    /* request: fill, then submit; the client owns it until `done` */
    const char *method; /* "GET", "POST", ... (static string) */
    char *url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    long timeout_ms;
    size_t max_response; /* 0: 64 MiB */

    /* response */
    long status; /* 0 when the request failed before a status line arrived */
    struct cm_buf resp;
    char ctype[128];
    char error[CURL_ERROR_SIZE];

    /* completion on the loop thread; `done` must free the request (cm_httpc_req_free) */
    void (*done)(struct cm_httpc_req *r);
    void *data;

    /* internal */
    CURL *easy;
    struct cm_httpc_req *next;
    struct cm_httpc_req *iprev, *inext;
    bool too_large;
    uint64_t deadline_ms; /* cm_plink */
};

/* Whether `host` may be registered as the address of a blobnode (disks and nodes): "http://" or
 * "https://", an IPv4 literal, a bracketed IPv6 literal or a DNS name, ":port" (1-65535) and at
 * most one trailing "/"; no user info, path, query or fragment (docs/security.md). */
bool cm_httpc_host_ok(const char *host);

struct cm_httpc *cm_httpc_new(uv_loop_t *loop);
/* Stop the worker; requests still in flight complete with status 0 ("client closed"). The
 * close finishes asynchronously on the loop; `closed` (may be NULL) is called then. */
void cm_httpc_close(struct cm_httpc *c, void (*closed)(void *arg), void *arg);

/* Verify servers against `ca_file` (system CAs when empty) and present `cert`/`key` as client
 * certificate; call before submitting. Strings are copied. */
void cm_httpc_set_tls(struct cm_httpc *c, const char *ca_file, const char *cert, const char *key);

struct cm_httpc_req *cm_httpc_req_new(const char *method, const char *url);
void cm_httpc_req_header(struct cm_httpc_req *r, const char *header_line);
/* Take ownership of a malloc'd body. */
void cm_httpc_req_body(struct cm_httpc_req *r, char *body, size_t len);
void cm_httpc_req_free(struct cm_httpc_req *r);
void cm_httpc_submit(struct cm_httpc *c, struct cm_httpc_req *r);

#endif
