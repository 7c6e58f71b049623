/* JSON helpers; see json.h. */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

/* Compare a run of decimal digits against a decimal limit. */
static bool digits_exceed(const char *d, size_t n, const char *limit)
{
    while (n > 1 && *d == '0')
        d++, n--;
    size_t ln = strlen(limit);
    if (n != ln)
        return n > ln;
    return memcmp(d, limit, n) > 0;
}

/* Reject what json-c would accept but a strict parser must not. Returns 0 or -1 with err. */
static int prescan(const char *s, size_t len, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (c == '\'') {
            snprintf(err, errlen, "invalid character '\\'' looking for beginning of value");
            return -1;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            bool neg = c == '-';
            size_t start = neg ? i + 1 : i, j = start;
            while (j < len && s[j] >= '0' && s[j] <= '9')
                j++;
            bool integer = !(j < len && (s[j] == '.' || s[j] == 'e' || s[j] == 'E'));
            if (integer && digits_exceed(s + start, j - start,
                                         neg ? "9223372036854775808" : "18446744073709551615")) {
                snprintf(err, errlen, "number %.*s%s is out of range",
                         (int)((j - i) > 40 ? 40 : j - i), s + i, (j - i) > 40 ? "..." : "");
                return -1;
            }
            while (j < len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == 'e' ||
                               s[j] == 'E' || s[j] == '+' || s[j] == '-'))
                j++;
            i = j;
            continue;
        }
        i++;
    }
    return 0;
}

struct json_object *cm_json_parse(const char *text, size_t len, bool null_is_empty, char *err,
                                  size_t errlen)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i == len) {
        snprintf(err, errlen, "unexpected end of JSON input");
        return NULL;
    }
    if (prescan(text, len, err, errlen) != 0)
        return NULL;
    struct json_tokener *tok = json_tokener_new_ex(64);
    if (tok == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (e == json_tokener_continue) {
        /* a top-level literal or number ("null", "5") is complete only once json-c sees what
         * follows it: feed the end of input as a NUL */
        o = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
        if (e == json_tokener_success)
            end = len;
        else
            e = json_tokener_continue; /* it really was cut short */
    }
    json_tokener_free(tok);
    if (e == json_tokener_continue) {
        snprintf(err, errlen, "unexpected end of JSON input");
        return NULL;
    }
    if (e != json_tokener_success) {
        char ch = end < len ? text[end] : ' ';
        if (end < len && ch >= 0x20 && ch < 0x7f)
            snprintf(err, errlen, "invalid character '%c' at offset %zu: %s", ch, end,
                     json_tokener_error_desc(e));
        else
            snprintf(err, errlen, "invalid JSON at offset %zu: %s", end,
                     json_tokener_error_desc(e));
        json_object_put(o);
        return NULL;
    }
    for (; end < len; end++) {
        char ch = text[end];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
            snprintf(err, errlen, "invalid character after top-level value at offset %zu", end);
            json_object_put(o);
            return NULL;
        }
    }
    if (o == NULL) { /* the literal null */
        if (null_is_empty)
            return json_object_new_object();
        snprintf(err, errlen, "request body must be a JSON object, not null");
        return NULL;
    }
    return o;
}

static const char *type_word(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
        return "a fractional number";
    case json_type_int:
        return "a number";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "unknown";
}

static struct json_object *field(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(o, name, &v))
        return NULL;
    return v; /* may be NULL for a JSON null */
}

static int absent(const char *name, bool required, char *err, size_t errlen)
{
    if (!required)
        return CM_JSON_ABSENT;
    snprintf(err, errlen, "field \"%s\" is required", name);
    return CM_JSON_ERROR;
}

int cm_json_as_u64(struct json_object *v, const char *what, uint64_t max, uint64_t *out, char *err,
                   size_t errlen)
{
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(err, errlen, "%s must be an unsigned integer, not %s", what, type_word(v));
        return CM_JSON_ERROR;
    }
    int64_t s = json_object_get_int64(v);
    if (s < 0) {
        snprintf(err, errlen, "%s must be an unsigned integer, got %" PRId64, what, s);
        return CM_JSON_ERROR;
    }
    uint64_t u = json_object_get_uint64(v);
    if (u > max) {
        snprintf(err, errlen, "%s is out of range: %" PRIu64 " > %" PRIu64, what, u, max);
        return CM_JSON_ERROR;
    }
    *out = u;
    return CM_JSON_OK;
}

int cm_json_as_i64(struct json_object *v, const char *what, int64_t min, int64_t max, int64_t *out,
                   char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(err, errlen, "%s must be an integer, not %s", what, type_word(v));
        return CM_JSON_ERROR;
    }
    int64_t s = json_object_get_int64(v);
    if (s == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
        snprintf(err, errlen, "%s is out of range: %" PRIu64, what, json_object_get_uint64(v));
        return CM_JSON_ERROR;
    }
    if (s < min || s > max) {
        snprintf(err, errlen, "%s is out of range: %" PRId64 " not in [%" PRId64 ", %" PRId64 "]",
                 what, s, min, max);
        return CM_JSON_ERROR;
    }
    *out = s;
    return CM_JSON_OK;
}

int cm_json_get_u64(struct json_object *o, const char *name, bool required, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    struct json_object *v = field(o, name);
    if (v == NULL)
        return absent(name, required, err, errlen);
    char what[96];
    snprintf(what, sizeof what, "field \"%s\"", name);
    return cm_json_as_u64(v, what, max, out, err, errlen);
}

int cm_json_get_i64(struct json_object *o, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *out, char *err, size_t errlen)
{
    struct json_object *v = field(o, name);
    if (v == NULL)
        return absent(name, required, err, errlen);
    char what[96];
    snprintf(what, sizeof what, "field \"%s\"", name);
    return cm_json_as_i64(v, what, min, max, out, err, errlen);
}

int cm_json_get_bool(struct json_object *o, const char *name, bool required, bool *out, char *err,
                     size_t errlen)
{
    struct json_object *v = field(o, name);
    if (v == NULL)
        return absent(name, required, err, errlen);
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(err, errlen, "field \"%s\" must be a boolean, not %s", name, type_word(v));
        return CM_JSON_ERROR;
    }
    *out = json_object_get_boolean(v);
    return CM_JSON_OK;
}

int cm_json_get_str(struct json_object *o, const char *name, bool required, const char **out,
                    size_t *len, char *err, size_t errlen)
{
    struct json_object *v = field(o, name);
    if (v == NULL)
        return absent(name, required, err, errlen);
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "field \"%s\" must be a string, not %s", name, type_word(v));
        return CM_JSON_ERROR;
    }
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (memchr(s, '\0', n) != NULL) {
        snprintf(err, errlen, "field \"%s\" must not contain a NUL character", name);
        return CM_JSON_ERROR;
    }
    *out = s;
    if (len)
        *len = n;
    return CM_JSON_OK;
}

int cm_json_get_f64(struct json_object *o, const char *name, bool required, double *out, char *err,
                    size_t errlen)
{
    struct json_object *v = field(o, name);
    if (v == NULL)
        return absent(name, required, err, errlen);
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
        snprintf(err, errlen, "field \"%s\" must be a number, not %s", name, type_word(v));
        return CM_JSON_ERROR;
    }
    double d = json_object_get_double(v);
    if (!isfinite(d)) {
        snprintf(err, errlen, "field \"%s\" must be a finite number", name);
        return CM_JSON_ERROR;
    }
    *out = d;
    return CM_JSON_OK;
}

char *cm_json_render(struct json_object *o, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (len)
        *len = n;
    return cm_strndup(s, n);
}

char *cm_json_render_put(struct json_object *o, size_t *len)
{
    char *s = cm_json_render(o, len);
    json_object_put(o);
    return s;
}
