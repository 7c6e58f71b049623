/*
 * Config module: the flat string->string store behind the /config routes and the task switches.
 *
 * Since CubeFS v3.3 the config store and the KV store are one store (current-release.md §2.4),
 * and so they are here: this module's commands write the KV module's tree (mod_kv.h), and a
 * config value is the raw bytes of its string there. /config/get K and /kv/get K therefore read
 * the same stored value. What the KV routes do not see are the defaults: each node computes them
 * from its own config file (`cluster_config` plus the forced keys, spec §4.7), and only the
 * config routes fall back to them for a key that holds no stored value.
 *
 * Apply rules (deterministic, no config-file input):
 * - SET key value: the store holds `value` under `key`; an empty value deletes the key instead
 *   (the 2022 release read an empty override as absent; deleting keeps both routes in step).
 * - DELETE key: the key is deleted (also when absent).
 * - From cluster version 2 on, a SET that would take the one store past its ceilings
 *   (CM_KV_HARD_MAX_ENTRIES, CM_KV_HARD_MAX_BYTES, entry overhead counted) changes nothing and
 *   answers CM_ERR_ILLEGAL_ARGUMENTS; the proposer checks the configured quotas first.
 * - A key that is no valid KV key (empty, over 1024 bytes, not UTF-8, NUL) or a value over 1 MiB
 *   makes the command a logged no-op.
 * Writes of vol_inspect or volume_inspect land on both keys (mod_kv.h).
 *
 * Snapshot: the section of this module stays in the stream but is always empty (count 0). A
 * section with entries, written by an older node that kept config values apart, is loaded into
 * the KV tree: each entry replaces the KV value of its key (an empty one deletes it), in key
 * order, and then the two names of the volume-inspection switch are made equal (one that
 * exists is copied; when both exist and differ, volume_inspect's value wins).
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

/* Stored value if present, else the default, else NULL. A stored value with NUL bytes reads up to
 * its first NUL here; cm_config_lookup gives the whole value. */
const char *cm_config_get(struct cm_fsm *fsm, const char *key);
/* Same with the length; false when the key has neither a stored value nor a default. */
bool cm_config_lookup(struct cm_fsm *fsm, const char *key, const char **val, size_t *vlen);
/* {"key":"value",...} of every stored key and every default (stored values win), sorted. */
struct json_object *cm_config_list(struct cm_fsm *fsm);
/* A JSON string of `len` bytes; bytes that are not UTF-8 become U+FFFD, as Go renders them. */
struct json_object *cm_config_json_string(const char *s, size_t len);

/* Keys the cluster derives from its config file: /config/delete and /kv/delete refuse them (933),
 * /kv/set refuses them (400); /config/set refuses code_mode only (400). */
bool cm_config_is_system_key(const char *key);

#endif
