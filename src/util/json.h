/*
 * JSON helpers over json-c: strict parsing of request bodies and typed field access with errors
 * that name the field.
 *
 * json-c clamps integers beyond the int64/uint64 range silently (2^64 parses as 2^64-1), so
 * cm_json_parse first scans the text and rejects integer literals outside [-2^63, 2^64-1]; it
 * also rejects single-quoted strings, which json-c accepts even in strict mode.
 */
#ifndef CM_JSON_H
#define CM_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parse a whole document. Returns NULL with a message on error. A body of "null" yields a new
 * empty object when `null_is_empty` is set (the Go client posts `null` for routes without
 * arguments). */
struct json_object *cm_json_parse(const char *text, size_t len, bool null_is_empty, char *err,
                                  size_t errlen);

enum { CM_JSON_ABSENT = 1, CM_JSON_OK = 0, CM_JSON_ERROR = -1 };

/* Each getter returns CM_JSON_OK, CM_JSON_ABSENT (field missing or null and not required), or
 * CM_JSON_ERROR with `err` filled. */
int cm_json_get_u64(struct json_object *o, const char *name, bool required, uint64_t max,
                    uint64_t *out, char *err, size_t errlen);
int cm_json_get_i64(struct json_object *o, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *out, char *err, size_t errlen);
int cm_json_get_bool(struct json_object *o, const char *name, bool required, bool *out, char *err,
                     size_t errlen);
/* The string stays owned by `o`. Embedded NUL bytes are rejected. */
int cm_json_get_str(struct json_object *o, const char *name, bool required, const char **out,
                    size_t *len, char *err, size_t errlen);
int cm_json_get_f64(struct json_object *o, const char *name, bool required, double *out, char *err,
                    size_t errlen);

/* Typed checks of an arbitrary value (used for array elements and nested objects). */
int cm_json_as_u64(struct json_object *v, const char *what, uint64_t max, uint64_t *out, char *err,
                   size_t errlen);
int cm_json_as_i64(struct json_object *v, const char *what, int64_t min, int64_t max, int64_t *out,
                   char *err, size_t errlen);

/* Compact rendering without escaping '/'; returns a malloc'd string. */
char *cm_json_render(struct json_object *o, size_t *len);
/* Render and release `o`. */
char *cm_json_render_put(struct json_object *o, size_t *len);

#endif
