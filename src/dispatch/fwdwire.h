/*
 * The batch of writes a follower forwards to the leader in one request (POST /internal/forward)
 * and the leader's answer, one result per write in the same order. docs/formats.md, "Forwarded
 * write batch", describes the bytes.
 *
 * Encoding works from jobs; decoding fills plain structs whose strings and bodies point into the
 * decoded buffer (valid while it lives). Decoders never read past the end and refuse trailing
 * bytes, counts past CM_FWD_MAX_WRITES and unknown versions.
 */
#ifndef CM_FWDWIRE_H
#define CM_FWDWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../http/job.h"
#include "../util/buf.h"
#include "../util/codec.h"

#define CM_FWD_MAGIC 0x434d4642u /* "CMFB" */
#define CM_FWD_VERSION 1
#define CM_FWD_MAX_WRITES 512
#define CM_FWD_CTYPE "application/x-clustermgr-batch"

/* A byte string inside the decoded buffer (not NUL-terminated). */
struct cm_fwd_str {
    const char *p;
    size_t n;
};

struct cm_fwd_write {
    uint8_t method;
    uint8_t hops; /* forwards so far, this one included */
    struct cm_fwd_str uri, client_ip, xff, req_id, body;
};

struct cm_fwd_result {
    uint16_t status;
    struct cm_fwd_str ctype, body;
    uint8_t n_hdrs;
    struct cm_fwd_str hdr_name[CM_JOB_MAX_HDRS], hdr_value[CM_JOB_MAX_HDRS];
};

/* The follower: header, then each job's write. `xff` is what the leader should see as
 * X-Forwarded-For (the client's chain with this hop appended). */
void cm_fwd_put_header(struct cm_buf *b, size_t count);
void cm_fwd_put_write(struct cm_buf *b, const struct cm_job *j, const char *xff);

/* The leader: header, then each answered job's result. */
void cm_fwd_put_result(struct cm_buf *b, const struct cm_job *j);

/* Header of a batch or of an answer: 0 with *count set, or -1 with a message in err. */
int cm_fwd_get_header(struct cm_dec *d, size_t *count, char *err, size_t cap);
/* One entry: 0, or -1 (the input is malformed) */
int cm_fwd_get_write(struct cm_dec *d, struct cm_fwd_write *w);
int cm_fwd_get_result(struct cm_dec *d, struct cm_fwd_result *r);

#endif
