/*
 * KV routes (decisions.md): GET /kv/get/<key>, POST /kv/set[/<key>], POST /kv/delete/<key>,
 * GET /kv/list?prefix=&marker=&count=.
 *
 * The store is also the config store (mod_config.h). As in CubeFS v3.3 and later, the keys the
 * cluster derives from its config file (code_mode, volume_reserve_size, volume_chunk_size) cannot
 * be written here: /kv/set answers 400 Illegal Arguments, /kv/delete 933.
 *
 * The write path does its work on the HTTP thread: the parser validates the key and decodes the
 * base64 value straight into the command payload, so the loop only checks the quota and
 * proposes. Keys in a path are percent-decoded here from the raw request target (not from the
 * server's decoded path, which would cut a key at an encoded NUL).
 */
#include <stdlib.h>
#include <string.h>

#include "../fsm/mod_config.h"
#include "../fsm/mod_kv.h"
#include "../util/base64.h"
#include "../util/json.h"
#include "api.h"

struct kv_args {
    char *key; /* NUL-terminated for convenience; keys never contain NUL */
    size_t klen;
    size_t vlen;
    struct cm_buf payload; /* set: ready to propose */
    char *prefix;
    char *marker;
    uint64_t count;
};

static void kv_args_free(void *p)
{
    struct kv_args *a = p;
    free(a->key);
    cm_buf_free(&a->payload);
    free(a->prefix);
    free(a->marker);
    free(a);
}

static struct kv_args *new_args(struct cm_job *j)
{
    struct kv_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = kv_args_free;
    return a;
}

/* The key after `prefix` in the raw request path, percent-decoded. NULL after setting an
 * error response, or with *len 0 when the path has no key. */
static char *path_key(struct cm_job *j, const char *prefix, size_t *len)
{
    const char *raw = j->uri;
    size_t plen = strlen(prefix);
    size_t end = strcspn(raw, "?#");
    *len = 0;
    if (end < plen || strncmp(raw, prefix, plen) != 0) {
        cm_args_fail(j, "the key must follow %s in the path", prefix);
        return NULL;
    }
    char *out = cm_malloc(end - plen + 1);
    size_t n = 0;
    for (size_t i = plen; i < end; i++) {
        char c = raw[i];
        if (c == '%') {
            int h = i + 2 < end ? cm_hexval(raw[i + 1]) : -1;
            int l = h >= 0 ? cm_hexval(raw[i + 2]) : -1;
            if (l < 0) {
                free(out);
                cm_args_fail(j, "the key in the path has a malformed %%-escape");
                return NULL;
            }
            c = (char)(h << 4 | l);
            i += 2;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static int check_key(struct cm_job *j, const char *key, size_t klen)
{
    if (klen == 0) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        return -1;
    }
    if (klen > CM_KV_KEY_MAX)
        return cm_args_fail(j, "key is too long (%zu bytes, at most %u)", klen, CM_KV_KEY_MAX);
    if (!cm_kv_key_valid(key, klen))
        return cm_args_fail(j, "key must be valid UTF-8 without NUL bytes");
    return 0;
}

int parse_kv_path_key(struct cm_job *j)
{
    const char *prefix = j->route->path;
    size_t klen;
    char *key = path_key(j, prefix, &klen);
    if (key == NULL)
        return -1;
    struct kv_args *a = new_args(j);
    a->key = key;
    a->klen = klen;
    return check_key(j, key, klen);
}

int parse_kv_set(struct cm_job *j)
{
    struct kv_args *a = new_args(j);
    bool in_path = j->route->flags & CM_R_PREFIX;
    if (in_path) {
        a->key = path_key(j, j->route->path, &a->klen);
        if (a->key == NULL)
            return -1;
    }
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    int rc = -1;
    const char *bkey = NULL, *val = NULL;
    size_t bklen = 0, vlen = 0;
    char err[256];
    int krc = cm_json_get_str(o, "key", false, &bkey, &bklen, err, sizeof err);
    int vrc = cm_json_get_str(o, "value", false, &val, &vlen, err, sizeof err);
    if (krc == CM_JSON_ERROR || vrc == CM_JSON_ERROR) {
        cm_args_fail(j, "%s", err);
        goto out;
    }
    if (in_path) {
        if (krc == CM_JSON_OK && (bklen != a->klen || memcmp(bkey, a->key, bklen) != 0)) {
            cm_args_fail(j, "field \"key\" differs from the key in the path");
            goto out;
        }
    } else if (krc == CM_JSON_OK) {
        a->key = cm_strndup(bkey, bklen);
        a->klen = bklen;
    }
    if (check_key(j, a->key ? a->key : "", a->klen) != 0)
        goto out;
    if (vrc != CM_JSON_OK || /* a missing value is an error; "" is an empty value */
        cm_config_is_system_key(a->key)) {
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    if (cm_b64_dec_max(vlen) > CM_KV_VALUE_MAX + 2) {
        cm_args_fail(j, "value is too large (about %zu bytes, at most %u)", cm_b64_dec_max(vlen),
                     CM_KV_VALUE_MAX);
        goto out;
    }
    /* payload: the key, then the decoded value as the rest */
    cm_put_bytes(&a->payload, a->key, a->klen);
    cm_buf_reserve(&a->payload, cm_b64_dec_max(vlen));
    long n = cm_b64_decode(val, vlen, a->payload.data + a->payload.len);
    if (n < 0) {
        cm_args_fail(j, "field \"value\" is not valid base64 (standard alphabet, padded)");
        goto out;
    }
    if ((size_t)n > CM_KV_VALUE_MAX) {
        cm_args_fail(j, "value is too large (%ld bytes, at most %u)", n, CM_KV_VALUE_MAX);
        goto out;
    }
    a->payload.len += (size_t)n;
    a->vlen = (size_t)n;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

void h_kv_set(struct cm_job *j)
{
    struct kv_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    const struct cm_config *cfg = cm_job_cfg(j);
    if (!cm_kv_fits(fsm, a->key, a->klen, a->vlen, cfg->kv_max_entries, cfg->kv_max_bytes)) {
        cm_reply_error(j, 400, "the kv store is full (limits.kv_max_entries, limits.kv_max_bytes)",
                       "Argument");
        return;
    }
    struct cm_buf b = a->payload;
    memset(&a->payload, 0, sizeof a->payload);
    cm_job_propose(j, CM_MOD_KV, CM_KV_OP_SET, &b, NULL);
}

void h_kv_delete(struct cm_job *j)
{
    struct kv_args *a = j->args;
    if (cm_config_is_system_key(a->key)) {
        cm_reply_code(j, CM_ERR_DELETE_SYSTEM_CONFIG);
        return;
    }
    struct cm_buf b = {0};
    cm_kv_enc_delete(&b, a->key, a->klen);
    cm_job_propose(j, CM_MOD_KV, CM_KV_OP_DELETE, &b, NULL);
}

void h_kv_get(struct cm_job *j)
{
    struct kv_args *a = j->args;
    const char *val;
    size_t vlen;
    if (!cm_kv_get(cm_node_fsm(j->node), a->key, a->klen, &val, &vlen)) {
        cm_reply_code(j, CM_ERR_NOT_FOUND);
        return;
    }
    /* base64 needs no JSON escaping: render by hand */
    static const char head[] = "{\"value\":\"", tail[] = "\"}";
    size_t len = sizeof head - 1 + cm_b64_enc_len(vlen) + sizeof tail - 1;
    char *body = cm_malloc(len + 1);
    memcpy(body, head, sizeof head - 1);
    size_t n = sizeof head - 1 + cm_b64_encode(val, vlen, body + sizeof head - 1);
    memcpy(body + n, tail, sizeof tail);
    cm_reply(j, 200, "application/json", body, len);
}

int parse_kv_list(struct cm_job *j)
{
    if (strstr(j->uri, "%00")) {
        cm_args_fail(j, "keys cannot contain NUL bytes");
        return -1;
    }
    struct kv_args *a = new_args(j);
    const char *prefix = NULL, *marker = NULL;
    if (cm_args_q_str(j, "prefix", false, CM_KV_KEY_MAX, &prefix) < 0 ||
        cm_args_q_str(j, "marker", false, CM_KV_KEY_MAX, &marker) < 0 ||
        cm_args_q_u64(j, "count", false, UINT64_MAX, &a->count) < 0)
        return -1;
    a->prefix = cm_strdup(prefix ? prefix : "");
    a->marker = cm_strdup(marker ? marker : "");
    if (a->count == 0)
        a->count = CM_KV_LIST_DEFAULT;
    if (a->count > CM_KV_LIST_MAX)
        a->count = CM_KV_LIST_MAX;
    return 0;
}

void h_kv_list(struct cm_job *j)
{
    struct kv_args *a = j->args;
    cm_reply_json(j, cm_kv_list_json(cm_node_fsm(j->node), a->prefix, strlen(a->prefix), a->marker,
                                     strlen(a->marker), (size_t)a->count));
}
