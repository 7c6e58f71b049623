/*
 * Argument parsing for route parsers (HTTP thread). Every helper returns 0 when the argument was
 * present and valid, 1 when it was absent and optional, and -1 after setting a 400 response with
 * "code":"Argument" and a message naming the argument.
 */
#ifndef CM_ARGS_H
#define CM_ARGS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "job.h"

/* The body as a JSON object; `null` (and, when null_ok, an empty body) become {}. */
struct json_object *cm_args_body(struct cm_job *j, bool null_ok);

int cm_args_u64(struct cm_job *j, struct json_object *o, const char *name, bool required,
                uint64_t max, uint64_t *out);
int cm_args_i64(struct cm_job *j, struct json_object *o, const char *name, bool required,
                int64_t min, int64_t max, int64_t *out);
int cm_args_bool(struct cm_job *j, struct json_object *o, const char *name, bool required,
                 bool *out);
/* Copy into `out` (cap bytes incl. NUL); too long is an error. */
int cm_args_strbuf(struct cm_job *j, struct json_object *o, const char *name, bool required,
                   char *out, size_t cap);
/* A malloc'd copy; `maxlen` bounds the length. */
int cm_args_strdup(struct cm_job *j, struct json_object *o, const char *name, bool required,
                   size_t maxlen, char **out);

int cm_args_q_u64(struct cm_job *j, const char *name, bool required, uint64_t max, uint64_t *out);
int cm_args_q_i64(struct cm_job *j, const char *name, bool required, int64_t min, int64_t max,
                  int64_t *out);
int cm_args_q_bool(struct cm_job *j, const char *name, bool required, bool *out);
int cm_args_q_str(struct cm_job *j, const char *name, bool required, size_t maxlen,
                  const char **out);

/* The value of a hexadecimal digit, -1 if c is not one (for %-escapes). */
int cm_hexval(int c);

/* Set a 400 Argument error. Always returns -1. */
int cm_args_fail(struct cm_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
