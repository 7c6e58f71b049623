/* Argument parsing; see args.h. */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/json.h"

int cm_args_fail(struct cm_job *j, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cm_job_set_error(j, 400, msg, "Argument");
    return -1;
}

struct json_object *cm_args_body(struct cm_job *j, bool null_ok)
{
    if (null_ok && j->body.len == 0)
        return json_object_new_object();
    char err[256];
    struct json_object *o =
        cm_json_parse(j->body.data ? j->body.data : "", j->body.len, true, err, sizeof err);
    if (o == NULL) {
        cm_args_fail(j, "%s", err);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        cm_args_fail(j, "request body must be a JSON object");
        return NULL;
    }
    return o;
}

static int wrap(struct cm_job *j, int rc, const char *err)
{
    if (rc == CM_JSON_ERROR)
        return cm_args_fail(j, "%s", err);
    return rc;
}

int cm_args_u64(struct cm_job *j, struct json_object *o, const char *name, bool required,
                uint64_t max, uint64_t *out)
{
    char err[256];
    return wrap(j, cm_json_get_u64(o, name, required, max, out, err, sizeof err), err);
}

int cm_args_i64(struct cm_job *j, struct json_object *o, const char *name, bool required,
                int64_t min, int64_t max, int64_t *out)
{
    char err[256];
    return wrap(j, cm_json_get_i64(o, name, required, min, max, out, err, sizeof err), err);
}

int cm_args_bool(struct cm_job *j, struct json_object *o, const char *name, bool required,
                 bool *out)
{
    char err[256];
    return wrap(j, cm_json_get_bool(o, name, required, out, err, sizeof err), err);
}

int cm_args_strbuf(struct cm_job *j, struct json_object *o, const char *name, bool required,
                   char *out, size_t cap)
{
    char err[256];
    const char *s;
    size_t n;
    int rc = wrap(j, cm_json_get_str(o, name, required, &s, &n, err, sizeof err), err);
    if (rc != 0) {
        if (rc == 1)
            out[0] = '\0';
        return rc;
    }
    if (n >= cap)
        return cm_args_fail(j, "field \"%s\" is too long (%zu bytes, at most %zu)", name, n,
                            cap - 1);
    memcpy(out, s, n + 1);
    return 0;
}

int cm_args_strdup(struct cm_job *j, struct json_object *o, const char *name, bool required,
                   size_t maxlen, char **out)
{
    char err[256];
    const char *s;
    size_t n;
    *out = NULL;
    int rc = wrap(j, cm_json_get_str(o, name, required, &s, &n, err, sizeof err), err);
    if (rc != 0)
        return rc;
    if (n > maxlen)
        return cm_args_fail(j, "field \"%s\" is too long (%zu bytes, at most %zu)", name, n,
                            maxlen);
    *out = cm_strndup(s, n);
    return 0;
}

static int q_missing(struct cm_job *j, const char *name, bool required)
{
    if (required)
        return cm_args_fail(j, "missing required argument \"%s\"", name);
    return 1;
}

int cm_args_q_u64(struct cm_job *j, const char *name, bool required, uint64_t max, uint64_t *out)
{
    const char *v = cm_job_query(j, name);
    if (v == NULL)
        return q_missing(j, name, required);
    char *end;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (v[0] == '-' || v[0] == '+' || v[0] == ' ' || *end || errno)
        return cm_args_fail(j, "argument \"%s\": \"%.64s\" is not an unsigned integer%s", name, v,
                            errno == ERANGE ? " in range" : "");
    if (u > max)
        return cm_args_fail(j, "argument \"%s\" is out of range: %llu > %" PRIu64, name, u, max);
    *out = u;
    return 0;
}

int cm_args_q_i64(struct cm_job *j, const char *name, bool required, int64_t min, int64_t max,
                  int64_t *out)
{
    const char *v = cm_job_query(j, name);
    if (v == NULL)
        return q_missing(j, name, required);
    char *end;
    errno = 0;
    long long s = strtoll(v, &end, 10);
    if (v[0] == ' ' || v[0] == '+' || *end || errno)
        return cm_args_fail(j, "argument \"%s\": \"%.64s\" is not an integer%s", name, v,
                            errno == ERANGE ? " in range" : "");
    if (s < min || s > max)
        return cm_args_fail(
            j, "argument \"%s\" is out of range: %lld not in [%" PRId64 ", %" PRId64 "]", name, s,
            min, max);
    *out = s;
    return 0;
}

int cm_args_q_bool(struct cm_job *j, const char *name, bool required, bool *out)
{
    const char *v = cm_job_query(j, name);
    if (v == NULL)
        return q_missing(j, name, required);
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, t[i]) == 0)
            return *out = true, 0;
        if (strcmp(v, f[i]) == 0)
            return *out = false, 0;
    }
    return cm_args_fail(j, "argument \"%s\": \"%.64s\" is not a boolean", name, v);
}

int cm_args_q_str(struct cm_job *j, const char *name, bool required, size_t maxlen,
                  const char **out)
{
    const char *v = cm_job_query(j, name);
    if (v == NULL)
        return q_missing(j, name, required);
    if (strlen(v) > maxlen)
        return cm_args_fail(j, "argument \"%s\" is too long (at most %zu bytes)", name, maxlen);
    *out = v;
    return 0;
}

int cm_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
