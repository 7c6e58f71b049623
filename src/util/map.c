/* Hash maps; see map.h. */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

uint64_t cm_hash_u64(uint64_t x)
{
    /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t cm_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a, then mixed */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return cm_hash_u64(h);
}

void cm_map_init(struct cm_map *m)
{
    m->slots = NULL;
    m->cap = m->n = 0;
}

void cm_map_free(struct cm_map *m)
{
    free(m->slots);
    cm_map_init(m);
}

static void map_grow(struct cm_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct cm_map_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = cm_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].val)
            cm_map_put(m, old[i].key, old[i].val);
    free(old);
}

void *cm_map_get(const struct cm_map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = cm_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].val == NULL)
            return NULL;
        if (m->slots[i].key == key)
            return m->slots[i].val;
    }
}

void *cm_map_put(struct cm_map *m, uint64_t key, void *val)
{
    if ((m->n + 1) * 4 > m->cap * 3)
        map_grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = cm_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].val == NULL) {
            m->slots[i].key = key;
            m->slots[i].val = val;
            m->n++;
            return NULL;
        }
        if (m->slots[i].key == key) {
            void *old = m->slots[i].val;
            m->slots[i].val = val;
            return old;
        }
    }
}

void *cm_map_del(struct cm_map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = cm_hash_u64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->slots[i].val == NULL)
            return NULL;
        if (m->slots[i].key == key)
            break;
    }
    void *old = m->slots[i].val;
    /* backward-shift deletion */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].val == NULL)
            break;
        size_t home = cm_hash_u64(m->slots[j].key) & mask;
        /* move j into the hole at i if home is not cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].val = NULL;
    m->slots[i].key = 0;
    m->n--;
    return old;
}

bool cm_map_next(const struct cm_map *m, size_t *it, uint64_t *key, void **val)
{
    for (; *it < m->cap; (*it)++) {
        if (m->slots[*it].val) {
            if (key)
                *key = m->slots[*it].key;
            if (val)
                *val = m->slots[*it].val;
            (*it)++;
            return true;
        }
    }
    return false;
}

void cm_smap_init(struct cm_smap *m)
{
    m->slots = NULL;
    m->cap = m->n = 0;
}

void cm_smap_free(struct cm_smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    cm_smap_init(m);
}

static void smap_insert_slot(struct cm_smap *m, char *key, uint64_t h, void *val)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == NULL) {
            m->slots[i].key = key;
            m->slots[i].hash = h;
            m->slots[i].val = val;
            m->n++;
            return;
        }
    }
}

static void smap_grow(struct cm_smap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct cm_smap_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = cm_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key)
            smap_insert_slot(m, old[i].key, old[i].hash, old[i].val);
    free(old);
}

static long smap_find(const struct cm_smap *m, const char *key, size_t len, uint64_t h)
{
    if (m->cap == 0)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == NULL)
            return -1;
        if (m->slots[i].hash == h && strncmp(m->slots[i].key, key, len) == 0 &&
            m->slots[i].key[len] == '\0')
            return (long)i;
    }
}

void *cm_smap_getn(const struct cm_smap *m, const char *key, size_t len)
{
    long i = smap_find(m, key, len, cm_hash_bytes(key, len));
    return i < 0 ? NULL : m->slots[i].val;
}

void *cm_smap_get(const struct cm_smap *m, const char *key)
{
    return cm_smap_getn(m, key, strlen(key));
}

void *cm_smap_put(struct cm_smap *m, const char *key, void *val)
{
    size_t len = strlen(key);
    uint64_t h = cm_hash_bytes(key, len);
    long i = smap_find(m, key, len, h);
    if (i >= 0) {
        void *old = m->slots[i].val;
        m->slots[i].val = val;
        return old;
    }
    if ((m->n + 1) * 4 > m->cap * 3)
        smap_grow(m);
    smap_insert_slot(m, cm_strndup(key, len), h, val);
    return NULL;
}

void *cm_smap_del(struct cm_smap *m, const char *key)
{
    size_t len = strlen(key);
    uint64_t h = cm_hash_bytes(key, len);
    long found = smap_find(m, key, len, h);
    if (found < 0)
        return NULL;
    size_t i = (size_t)found, mask = m->cap - 1;
    void *old = m->slots[i].val;
    free(m->slots[i].key);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL)
            break;
        size_t home = m->slots[j].hash & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].val = NULL;
    m->n--;
    return old;
}

bool cm_smap_next(const struct cm_smap *m, size_t *it, const char **key, void **val)
{
    for (; *it < m->cap; (*it)++) {
        if (m->slots[*it].key) {
            if (key)
                *key = m->slots[*it].key;
            if (val)
                *val = m->slots[*it].val;
            (*it)++;
            return true;
        }
    }
    return false;
}
