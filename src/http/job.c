/* Job helpers that do not depend on the loop; see job.h. */
#include "job.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../util/codec.h"
#include "../util/json.h"
#include "args.h"
#include "errors.h"

void cm_jlist_push(struct cm_jlist *l, struct cm_job *j)
{
    j->wlist = l;
    j->wnext = NULL;
    j->wprev = l->tail;
    if (l->tail)
        l->tail->wnext = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

void cm_jlist_remove(struct cm_job *j)
{
    struct cm_jlist *l = j->wlist;
    if (l == NULL)
        return;
    if (j->wprev)
        j->wprev->wnext = j->wnext;
    else
        l->head = j->wnext;
    if (j->wnext)
        j->wnext->wprev = j->wprev;
    else
        l->tail = j->wprev;
    l->n--;
    j->wlist = NULL;
    j->wprev = j->wnext = NULL;
}

struct cm_job *cm_jlist_pop(struct cm_jlist *l)
{
    struct cm_job *j = l->head;
    if (j)
        cm_jlist_remove(j);
    return j;
}

void cm_jlist_splice(struct cm_jlist *to, struct cm_jlist *from)
{
    struct cm_job *j;
    while ((j = cm_jlist_pop(from)) != NULL)
        cm_jlist_push(to, j);
}

const char *cm_job_query_raw(const struct cm_job *j, const char *name, bool *present)
{
    for (size_t i = 0; i < j->n_qargs; i++)
        if (strcmp(j->qargs[i].key, name) == 0) {
            if (present)
                *present = true;
            return j->qargs[i].value;
        }
    if (present)
        *present = false;
    return NULL;
}

const char *cm_job_query(const struct cm_job *j, const char *name)
{
    const char *v = cm_job_query_raw(j, name, NULL);
    return (v == NULL || v[0] == '\0') ? NULL : v;
}

void cm_job_add_header(struct cm_job *j, const char *name, const char *value)
{
    if (j->n_hdrs >= CM_JOB_MAX_HDRS)
        return;
    j->hdrs[j->n_hdrs].name = name;
    j->hdrs[j->n_hdrs].value = cm_strdup(value);
    j->n_hdrs++;
}

void cm_job_set_response(struct cm_job *j, int status, const char *ctype, char *body, size_t len)
{
    free(j->resp);
    j->status = status;
    j->resp_ctype = ctype;
    j->resp = body;
    j->resp_len = body ? len : 0;
}

/* A copy of s that is valid UTF-8: every byte that does not start a well-formed sequence (a raw
 * byte from the request, a character cut by a length limit) becomes U+FFFD. Error messages echo
 * what the client sent; a JSON answer must still decode. */
static char *utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *out = cm_malloc(n * 3 + 1), *w = out;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t k = cm_utf8_seq(p, n - (size_t)(p - (const unsigned char *)s));
        if (k == 0) {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            p++;
        } else {
            memcpy(w, p, k);
            w += k;
            p += k;
        }
    }
    *w = '\0';
    return out;
}

void cm_job_set_error(struct cm_job *j, int status, const char *msg, const char *code)
{
    struct json_object *o = json_object_new_object();
    char *clean = utf8_clean(msg);
    json_object_object_add(o, "error", json_object_new_string(clean));
    free(clean);
    if (code)
        json_object_object_add(o, "code", json_object_new_string(code));
    size_t len;
    char *s = cm_json_render_put(o, &len);
    cm_job_set_response(j, status, "application/json", s, len);
}

void cm_job_set_code(struct cm_job *j, int code)
{
    const char *msg = cm_err_message(code);
    int status = cm_err_status(code);
    if (code == CM_ERR_UNEXPECTED)
        cm_job_set_error(j, status, msg, "InternalServerError");
    else
        cm_job_set_error(j, status, msg ? msg : "error", NULL);
}

const char *cm_method_name(int m)
{
    switch (m) {
    case CM_GET:
        return "GET";
    case CM_POST:
        return "POST";
    case CM_PUT:
        return "PUT";
    case CM_DELETE:
        return "DELETE";
    case CM_HEAD:
        return "HEAD";
    }
    return "OTHER";
}

void cm_job_free(struct cm_job *j)
{
    free(j->uri);
    free(j->path);
    for (size_t i = 0; i < j->n_qargs; i++) {
        free(j->qargs[i].key);
        free(j->qargs[i].value);
    }
    free(j->qargs);
    cm_buf_free(&j->body);
    free(j->xff);
    free(j->auth_token);
    free(j->req_id_hdr);
    if (j->args && j->args_free)
        j->args_free(j->args);
    free(j->resp);
    for (int i = 0; i < j->n_hdrs; i++)
        free(j->hdrs[i].value);
    if (j->stream && j->stream_free)
        j->stream_free(j->stream);
    if (j->hstate && j->hstate_free)
        j->hstate_free(j->hstate);
    free(j);
}

/* ------------------------------------------------------------------------------------------ */
/* request target: what the front end (and the fuzzers) give a job */

/* %XX decoding of s[0..n) into a new string; in a query '+' is a space too. A '%' that starts no
 * escape stays as it is. */
static char *unescape(const char *s, size_t n, bool query)
{
    char *out = cm_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = cm_hexval(s[i + 1])) >= 0 &&
            (lo = cm_hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else if (query && s[i] == '+')
            *o++ = ' ';
        else
            *o++ = s[i];
    }
    *o = '\0';
    return out;
}

static void add_qarg(struct cm_job *j, const char *s, size_t n)
{
    if (n == 0 || j->n_qargs >= 256)
        return;
    const char *eq = memchr(s, '=', n);
    j->qargs = cm_realloc(j->qargs, (j->n_qargs + 1) * sizeof *j->qargs);
    j->qargs[j->n_qargs].key = unescape(s, eq ? (size_t)(eq - s) : n, true);
    j->qargs[j->n_qargs].value = eq ? unescape(eq + 1, n - (size_t)(eq - s) - 1, true) : NULL;
    j->n_qargs++;
}

void cm_job_set_target(struct cm_job *j, const char *uri, size_t len)
{
    j->uri = cm_strndup(uri, len);
    const char *q = strchr(j->uri, '?');
    size_t plen = q ? (size_t)(q - j->uri) : strlen(j->uri);
    j->path = unescape(j->uri, plen, false);
    if (q == NULL)
        return;
    const char *s = q + 1;
    while (*s) {
        size_t k = strcspn(s, "&");
        add_qarg(j, s, k);
        s += k;
        if (*s == '&')
            s++;
    }
}
