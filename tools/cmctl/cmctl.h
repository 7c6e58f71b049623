/*
 * cmctl: the admin command line of clustermgr. One HTTP request (or a few, for paging) per
 * command against the first host of --host that answers; see `cmctl help`.
 *
 * Exit codes (stable, for scripts):
 *   0  success
 *   1  the cluster answered with an error (the message is printed on stderr)
 *   2  usage error: unknown command, missing or malformed argument
 *   3  no host could serve the request: all down, no leader (907), no quorum or a timeout
 *      (906 raft propose error, 908 read index error), or a write's outcome is unknown
 *   4  not found (HTTP 404: unknown key, service, config entry, ...)
 *   5  local failure: a file could not be read or written, a snapshot is damaged
 */
#ifndef CMCTL_H
#define CMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/util/buf.h"

enum {
    CMCTL_OK = 0,
    CMCTL_ERR_ANSWER = 1,
    CMCTL_ERR_USAGE = 2,
    CMCTL_ERR_UNAVAILABLE = 3,
    CMCTL_ERR_NOT_FOUND = 4,
    CMCTL_ERR_LOCAL = 5,
};

/* Parsed command line: positional arguments and --options. */
struct cmctl_opt {
    const char *name;
    const char *value; /* "" for flags */
};

struct cmctl {
    const char *argv0;
    char **pos;
    int n_pos;
    struct cmctl_opt opts[32];
    int n_opts;
    /* global settings */
    char **hosts;
    int n_hosts;
    long timeout_ms;
    const char *secret; /* --secret: sign requests (BLOB-STORE-AUTH-TOKEN) */
    bool json;
    bool verbose;
};

const char *cmctl_opt(struct cmctl *c, const char *name);
bool cmctl_flag(struct cmctl *c, const char *name);
/* Print "cmctl: <msg>" to stderr and return `code`. */
int cmctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One answer from the cluster. */
struct cmctl_resp {
    long status;
    struct cm_buf body;
    char host[256]; /* the host that answered */
    char index[32]; /* Raft-Snapshot-Index, when sent */
    char name[96];  /* Raft-Snapshot-Name, when sent */
};

/* Send `method path` with an optional body to the first host that can serve it (see http.c for
 * the failover rules). Returns 0 with `r` filled (any HTTP status), or another exit code after
 * printing why. */
int cmctl_request(struct cmctl *c, const char *method, const char *path, const char *ctype,
                  const void *body, size_t len, struct cmctl_resp *r);
void cmctl_resp_free(struct cmctl_resp *r);
/* Map an answer to an exit code, printing the error of a non-200 answer. */
int cmctl_check(struct cmctl_resp *r, const char *what);
/* Percent-encode for a path segment or query value (malloc'd). */
char *cmctl_escape(const char *s);

struct json_object;
/* Send, check the status (printing the error of a non-200 answer) and hand back the parsed JSON
 * answer (NULL for an empty body). */
int cmctl_call_json(struct cmctl *c, const char *method, const char *path, struct json_object *body,
                    struct json_object **out);
/* GET as cmctl_call_json, but a 404 (a route an older server lacks) returns CMCTL_ERR_NOT_FOUND
 * without printing anything. */
int cmctl_get_json_if_any(struct cmctl *c, const char *path, struct json_object **out);
/* Page through a list route (`items`: the array field) into the array `all` (NULL: keep
 * nothing); `on_page` (may be NULL) sees each page's items and the number of items so far. */
typedef void (*cmctl_page_fn)(void *arg, struct json_object *page, size_t total);
int cmctl_list_pages(struct cmctl *c, const char *base, const char *items, const char *query,
                     struct json_object *all, cmctl_page_fn on_page, void *arg);

/* Files (snapshot.c): read all of `path` ("-": stdin); write through a temporary file that is
 * renamed over `path` only once everything is on disk. */
int cmctl_read_file(const char *path, struct cm_buf *out);
int cmctl_write_file_atomic(const char *path, const void *data, size_t len);

/* commands */
int cmctl_snapshot(struct cmctl *c);
int cmctl_migrate(struct cmctl *c);
int cmctl_run(struct cmctl *c);

#endif
