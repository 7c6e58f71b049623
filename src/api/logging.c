/*
 * GET /log/level and POST /log/level (spec §12): read and change this node's log level at
 * runtime. Answered on the HTTP thread: the level is one atomic, nothing else is touched.
 *
 * POST takes `level` as a form field (`level=debug`, the reference's way), a query argument, or
 * a JSON body ({"level":"debug"} or {"level":0}); the value is 0..5 or a name (debug, info, warn,
 * error, panic, fatal). Both answer {"level":"<name>"}.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../util/json.h"
#include "../util/log.h"
#include "api.h"

/* Value of `name` in an application/x-www-form-urlencoded body, decoded into out. */
static bool form_value(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fe = amp ? amp : end;
        if ((size_t)(fe - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t k = 0;
            for (const char *q = p + nl + 1; q < fe && k + 1 < cap; q++) {
                if (*q == '+')
                    out[k++] = ' ';
                else if (*q == '%' && fe - q >= 3 && isxdigit((unsigned char)q[1]) &&
                         isxdigit((unsigned char)q[2])) {
                    char hex[3] = {q[1], q[2], 0};
                    out[k++] = (char)strtol(hex, NULL, 16);
                    q += 2;
                } else
                    out[k++] = *q;
            }
            out[k] = '\0';
            return true;
        }
        p = fe + 1;
    }
    return false;
}

int parse_log_level(struct cm_job *j)
{
    if (j->method != CM_POST)
        return 0;
    char val[64] = "";
    const char *q = cm_job_query(j, "level");
    const char *body = j->body.data ? j->body.data : "";
    size_t len = j->body.len;
    while (len && isspace((unsigned char)*body))
        body++, len--;
    if (q)
        snprintf(val, sizeof val, "%s", q);
    else if (len && body[0] == '{') {
        char err[160];
        struct json_object *o = cm_json_parse(body, len, false, err, sizeof err);
        struct json_object *v = NULL;
        if (o == NULL) {
            json_object_put(o);
            return cm_args_fail(j, "the body is not valid JSON: %s", err);
        }
        if (json_object_object_get_ex(o, "level", &v) && v) {
            if (json_object_is_type(v, json_type_int))
                snprintf(val, sizeof val, "%lld", (long long)json_object_get_int64(v));
            else if (json_object_is_type(v, json_type_string))
                snprintf(val, sizeof val, "%s", json_object_get_string(v));
            else {
                json_object_put(o);
                return cm_args_fail(j, "field \"level\" must be 0..5 or a level name");
            }
        }
        json_object_put(o);
    } else if (len)
        form_value(body, len, "level", val, sizeof val);
    if (val[0] == '\0')
        return cm_args_fail(j, "missing field \"level\" (0..5 or debug, info, warn, error, "
                               "panic, fatal)");
    int level = cm_log_parse_level(val);
    if (level < 0)
        return cm_args_fail(j,
                            "field \"level\": \"%.40s\" is not 0..5 or one of debug, info, "
                            "warn, error, panic, fatal",
                            val);
    j->args = cm_malloc(sizeof(int));
    *(int *)j->args = level;
    j->args_free = free;
    return 0;
}

void h_log_level(struct cm_job *j)
{
    if (j->method == CM_POST && j->args) {
        int old = cm_log_get_level(), level = *(int *)j->args;
        cm_log_set_level(level);
        if (old != level)
            CM_WARN("log", "log level changed from %s to %s by %s", cm_log_level_name(old),
                    cm_log_level_name(level), j->client_ip);
    }
    char body[64];
    int len =
        snprintf(body, sizeof body, "{\"level\":\"%s\"}", cm_log_level_name(cm_log_get_level()));
    cm_job_set_response(j, 200, "application/json", cm_strndup(body, (size_t)len), (size_t)len);
}
