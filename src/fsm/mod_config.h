/*
 * Config module: the flat string->string store behind the /config routes and the task switches.
 * Overrides are replicated; defaults come from each node's own config file (spec §4.7).
 * A stored empty value reads as absent, as in the reference.
 */
#ifndef CM_MOD_CONFIG_H
#define CM_MOD_CONFIG_H

#include <json-c/json.h>

#include "fsm.h"

enum { CM_CONFIG_OP_SET = 1, CM_CONFIG_OP_DELETE = 2 };

#define CM_CONFIG_KEY_MAX 1024
#define CM_CONFIG_VALUE_MAX (1u << 20)

void cm_config_enc_set(struct cm_buf *b, const char *key, const char *value);
void cm_config_enc_delete(struct cm_buf *b, const char *key);

/* Override if present and non-empty, else the default, else NULL. */
const char *cm_config_get(struct cm_fsm *fsm, const char *key);
/* {"key":"value",...} of every key (overrides win), sorted by key. */
struct json_object *cm_config_list(struct cm_fsm *fsm);

#endif
