/*
 * KV module: the generic key/value store of decisions.md (/kv/get, /kv/set, /kv/delete,
 * /kv/list).
 *
 * Keys are non-empty UTF-8 strings without NUL of at most CM_KV_KEY_MAX bytes; values are raw
 * bytes (base64 only on the wire) of at most CM_KV_VALUE_MAX bytes. Keys are kept in a red-black
 * tree (libbsd's <bsd/sys/tree.h>) in byte order, which serves get, prefix/marker scans and the
 * canonical snapshot section alike.
 *
 * A key/value pair is one immutable, reference-counted item; a set replaces the tree node's item.
 * Taking a snapshot therefore only collects item pointers in key order (cheap, on the loop);
 * the encoding runs on another thread over items that can no longer change.
 *
 * The tree is also the config store (mod_config.h): /config/set and /config/delete write it as
 * /kv/set and /kv/delete do, so a key reads the same through both families of routes.
 * Two keys are one: every write of "vol_inspect" or "volume_inspect", the 2022 and the current
 * name of the volume-inspection task switch, is applied to both.
 */
#ifndef CM_MOD_KV_H
#define CM_MOD_KV_H

#include <json-c/json.h>

#include "fsm.h"

enum { CM_KV_OP_SET = 1, CM_KV_OP_DELETE = 2 };

#define CM_KV_KEY_MAX 1024
#define CM_KV_VALUE_MAX (1u << 20)
/* Memory charged to an entry beyond its key and value bytes (tree node, item header, allocator
 * slack), so a million empty values count for what they cost. */
#define CM_KV_ENTRY_OVERHEAD 64
/* Ceilings that apply enforces from cluster version 2 on: a set that would take the store past
 * them is refused with CM_ERR_ILLEGAL_ARGUMENTS on every replica alike (no config-file input).
 * The configured quotas (limits.kv_max_entries, limits.kv_max_bytes) are checked before
 * proposing and cannot exceed these. */
#define CM_KV_HARD_MAX_ENTRIES 2000000ull
#define CM_KV_HARD_MAX_BYTES (4ull << 30)
#define CM_KV_LIST_DEFAULT 10
#define CM_KV_LIST_MAX 1000
/* A page also ends once its keys and values exceed this many bytes (at least one entry is
 * returned), so a list of large values cannot build a response of gigabytes. */
#define CM_KV_LIST_BYTES (4u << 20)

/* Payloads. SET: string key, then the value as every remaining byte (so the HTTP parser can
 * base64-decode straight into the payload). DELETE: string key. */
void cm_kv_enc_set(struct cm_buf *b, const void *key, size_t klen, const void *val, size_t vlen);
void cm_kv_enc_delete(struct cm_buf *b, const void *key, size_t klen);

/* True when `key` is acceptable: 1..CM_KV_KEY_MAX bytes of valid UTF-8 without NUL. */
bool cm_kv_key_valid(const char *key, size_t klen);

/* The value of `key` (pointer into the store, valid until the next apply; a NUL follows the
 * value's last byte). */
bool cm_kv_get(struct cm_fsm *fsm, const char *key, size_t klen, const char **val, size_t *vlen);
/* Apply-time writes of the store, shared with the config module; `key` must be valid and the
 * value at most CM_KV_VALUE_MAX bytes. Both write the partner of an aliased switch key too. */
void cm_kv_store_set(struct cm_fsm *fsm, const char *key, size_t klen, const void *val,
                     size_t vlen);
void cm_kv_store_delete(struct cm_fsm *fsm, const char *key, size_t klen);
/* Every entry in key order. */
typedef void (*cm_kv_each_fn)(void *arg, const char *key, size_t klen, const char *val,
                              size_t vlen);
void cm_kv_each(struct cm_fsm *fsm, cm_kv_each_fn fn, void *arg);
/* {"kvs":[{"key","value"(base64)}...],"marker":"<last key returned when more follow, else ''>"}
 * of up to `count` keys that start with `prefix` and sort strictly after `marker`, and no more
 * than CM_KV_LIST_BYTES of them. */
struct json_object *cm_kv_list_json(struct cm_fsm *fsm, const char *prefix, size_t plen,
                                    const char *marker, size_t mlen, size_t count);
size_t cm_kv_count(struct cm_fsm *fsm);
/* Sum of key and value bytes stored. */
uint64_t cm_kv_bytes(struct cm_fsm *fsm);
/* Bytes charged to the store: keys, values and CM_KV_ENTRY_OVERHEAD per entry. */
uint64_t cm_kv_charged(struct cm_fsm *fsm);
/* True when setting `key` (and its aliased partner, when the cluster version writes it) to a value
 * of `vlen` bytes keeps the store within `max_entries` entries and `max_bytes` charged bytes. A
 * write that does not grow the store always fits. */
bool cm_kv_fits(struct cm_fsm *fsm, const char *key, size_t klen, size_t vlen, uint64_t max_entries,
                uint64_t max_bytes);

#endif
