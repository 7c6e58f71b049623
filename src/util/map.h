/*
 * Hash maps with open addressing and linear probing:
 *   cm_map   uint64 key -> pointer
 *   cm_smap  string key (copied, owned by the map) -> pointer
 * Deletion uses backward-shift, so there are no tombstones and lookups stay short after churn.
 * Iteration order is unspecified; callers that must answer in a defined order sort or use a tree.
 */
#ifndef CM_MAP_H
#define CM_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_map_slot {
    uint64_t key;
    void *val; /* NULL marks an empty slot: values must not be NULL */
};

struct cm_map {
    struct cm_map_slot *slots;
    size_t cap; /* power of two or 0 */
    size_t n;
};

void cm_map_init(struct cm_map *m);
void cm_map_free(struct cm_map *m);
void *cm_map_get(const struct cm_map *m, uint64_t key);
/* Insert or replace; returns the previous value or NULL. `val` must not be NULL. */
void *cm_map_put(struct cm_map *m, uint64_t key, void *val);
void *cm_map_del(struct cm_map *m, uint64_t key);
/* Iterate: for (size_t it = 0; cm_map_next(m, &it, &k, &v);) */
bool cm_map_next(const struct cm_map *m, size_t *it, uint64_t *key, void **val);

struct cm_smap_slot {
    char *key; /* NULL marks an empty slot */
    uint64_t hash;
    void *val;
};

struct cm_smap {
    struct cm_smap_slot *slots;
    size_t cap;
    size_t n;
};

void cm_smap_init(struct cm_smap *m);
void cm_smap_free(struct cm_smap *m);
void *cm_smap_get(const struct cm_smap *m, const char *key);
void *cm_smap_getn(const struct cm_smap *m, const char *key, size_t keylen);
void *cm_smap_put(struct cm_smap *m, const char *key, void *val);
void *cm_smap_del(struct cm_smap *m, const char *key);
bool cm_smap_next(const struct cm_smap *m, size_t *it, const char **key, void **val);

uint64_t cm_hash_bytes(const void *p, size_t n);
uint64_t cm_hash_u64(uint64_t x);

#endif
