/*
 * Forwarded write batches: the codec (fwdwire.h, docs/formats.md "Forwarded write batch").
 */
#include "fwdwire.h"

#include "dispatch.h"

#include <stdio.h>
#include <string.h>

void cm_fwd_put_header(struct cm_buf *b, size_t count)
{
    cm_put_u32(b, CM_FWD_MAGIC);
    cm_put_u8(b, CM_FWD_VERSION);
    cm_put_uvar(b, count);
}

void cm_fwd_put_write(struct cm_buf *b, const struct cm_job *j, const char *xff)
{
    cm_put_u8(b, (uint8_t)j->method);
    cm_put_u8(b, (uint8_t)(j->hops + 1));
    cm_put_str(b, j->uri);
    cm_put_str(b, j->client_ip);
    cm_put_str(b, xff);
    char rid[130];
    cm_reqlog_id(j, rid, sizeof rid);
    cm_put_str(b, rid);
    cm_put_bytes(b, j->body.data, j->body.len);
}

void cm_fwd_put_result(struct cm_buf *b, const struct cm_job *j)
{
    cm_put_u16(b, (uint16_t)(j->status ? j->status : 200));
    cm_put_str(b, j->resp_ctype);
    cm_put_u8(b, (uint8_t)j->n_hdrs);
    for (int i = 0; i < j->n_hdrs; i++) {
        cm_put_str(b, j->hdrs[i].name);
        cm_put_str(b, j->hdrs[i].value);
    }
    cm_put_bytes(b, j->resp, j->resp ? j->resp_len : 0);
}

int cm_fwd_get_header(struct cm_dec *d, size_t *count, char *err, size_t cap)
{
    uint32_t magic = cm_get_u32(d);
    uint8_t version = cm_get_u8(d);
    uint64_t n = cm_get_uvar(d);
    if (d->err || magic != CM_FWD_MAGIC) {
        snprintf(err, cap, "not a forwarded write batch");
        return -1;
    }
    if (version != CM_FWD_VERSION) {
        snprintf(err, cap,
                 "forwarded write batch version %u is not known to this node (it reads %u)",
                 version, CM_FWD_VERSION);
        return -1;
    }
    if (n == 0 || n > CM_FWD_MAX_WRITES) {
        snprintf(err, cap, "a forwarded write batch holds 1 to %d writes, not %llu",
                 CM_FWD_MAX_WRITES, (unsigned long long)n);
        return -1;
    }
    *count = (size_t)n;
    return 0;
}

static void get_str(struct cm_dec *d, struct cm_fwd_str *s)
{
    s->p = cm_get_bytes(d, &s->n);
}

/* Text fields carry no NUL: they become C strings on the other side. */
static bool text_ok(const struct cm_fwd_str *s)
{
    return memchr(s->p, '\0', s->n) == NULL;
}

int cm_fwd_get_write(struct cm_dec *d, struct cm_fwd_write *w)
{
    memset(w, 0, sizeof *w);
    w->method = cm_get_u8(d);
    w->hops = cm_get_u8(d);
    get_str(d, &w->uri);
    get_str(d, &w->client_ip);
    get_str(d, &w->xff);
    get_str(d, &w->req_id);
    get_str(d, &w->body);
    if (d->err || w->uri.n == 0 || w->uri.p[0] != '/' || !text_ok(&w->uri) ||
        w->client_ip.n >= 64 || !text_ok(&w->client_ip) || !text_ok(&w->xff) || w->req_id.n > 128 ||
        !text_ok(&w->req_id))
        return -1;
    switch (w->method) {
    case CM_GET:
    case CM_POST:
    case CM_PUT:
    case CM_DELETE:
        return 0;
    default:
        return -1;
    }
}

int cm_fwd_get_result(struct cm_dec *d, struct cm_fwd_result *r)
{
    memset(r, 0, sizeof *r);
    r->status = cm_get_u16(d);
    get_str(d, &r->ctype);
    r->n_hdrs = cm_get_u8(d);
    if (r->n_hdrs > CM_JOB_MAX_HDRS)
        return -1;
    for (unsigned i = 0; i < r->n_hdrs; i++) {
        get_str(d, &r->hdr_name[i]);
        get_str(d, &r->hdr_value[i]);
        if (!text_ok(&r->hdr_value[i]))
            return -1;
    }
    get_str(d, &r->body);
    if (d->err || r->status < 100 || r->status > 999)
        return -1;
    return 0;
}
