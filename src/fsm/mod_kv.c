/* KV module; see mod_kv.h. */
#include "mod_kv.h"

#include <bsd/sys/tree.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/base64.h"
#include "../util/codec.h"
#include "../util/log.h"
#include "codes.h"
#include "mod_cluster.h"

/* Immutable once built; shared between the tree and snapshot copies. */
struct kv_item {
    atomic_uint refs;
    uint32_t klen;
    uint32_t vlen;
    char data[]; /* key bytes, then value bytes, then a NUL (so a value reads as a C string) */
};

struct kv_node {
    RB_ENTRY(kv_node) link;
    const char *key; /* into item->data (or a caller's buffer for lookups) */
    size_t klen;
    struct kv_item *item;
};

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int node_cmp(struct kv_node *a, struct kv_node *b)
{
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

RB_HEAD(kv_tree, kv_node);
/* RB_GENERATE_STATIC needs __unused, which libbsd leaves undefined on Linux */
RB_GENERATE_INTERNAL(kv_tree, kv_node, link, node_cmp, __attribute__((unused)) static)

struct kv_state {
    struct kv_tree tree;
    size_t n;
    uint64_t bytes;
};

static struct kv_item *item_new(const void *key, size_t klen, const void *val, size_t vlen)
{
    struct kv_item *it = cm_malloc(sizeof *it + klen + vlen + 1);
    atomic_init(&it->refs, 1);
    it->klen = (uint32_t)klen;
    it->vlen = (uint32_t)vlen;
    memcpy(it->data, key, klen);
    if (vlen)
        memcpy(it->data + klen, val, vlen);
    it->data[klen + vlen] = '\0';
    return it;
}

static void item_unref(struct kv_item *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1)
        free(it);
}

void cm_kv_enc_set(struct cm_buf *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    cm_put_bytes(b, key, klen);
    cm_buf_append(b, val, vlen);
}

void cm_kv_enc_delete(struct cm_buf *b, const void *key, size_t klen)
{
    cm_put_bytes(b, key, klen);
}

bool cm_kv_key_valid(const char *key, size_t klen)
{
    if (klen == 0 || klen > CM_KV_KEY_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)key, *end = p + klen;
    while (p < end) {
        size_t len = *p ? cm_utf8_seq(p, (size_t)(end - p)) : 0;
        if (len == 0)
            return false;
        p += len;
    }
    return true;
}

static void *kv_create(struct cm_fsm *fsm)
{
    (void)fsm;
    struct kv_state *s = cm_calloc(1, sizeof *s);
    RB_INIT(&s->tree);
    return s;
}

static void kv_destroy(void *state)
{
    struct kv_state *s = state;
    struct kv_node *nd, *next;
    for (nd = RB_MIN(kv_tree, &s->tree); nd != NULL; nd = next) {
        next = RB_NEXT(kv_tree, &s->tree, nd);
        RB_REMOVE(kv_tree, &s->tree, nd);
        item_unref(nd->item);
        free(nd);
    }
    free(s);
}

static struct kv_node *find(struct kv_state *s, const char *key, size_t klen)
{
    struct kv_node probe = {.key = key, .klen = klen};
    return RB_FIND(kv_tree, &s->tree, &probe);
}

static void put(struct kv_state *s, struct kv_item *it)
{
    struct kv_node *nd = find(s, it->data, it->klen);
    if (nd) {
        s->bytes -= nd->item->klen + nd->item->vlen;
        item_unref(nd->item);
    } else {
        nd = cm_calloc(1, sizeof *nd);
        nd->klen = it->klen;
        nd->key = it->data;
        RB_INSERT(kv_tree, &s->tree, nd);
        s->n++;
    }
    nd->item = it;
    nd->key = it->data; /* same bytes, now owned by the new item */
    s->bytes += it->klen + it->vlen;
}

static void del(struct kv_state *s, const char *key, size_t klen)
{
    struct kv_node *nd = find(s, key, klen);
    if (nd) {
        RB_REMOVE(kv_tree, &s->tree, nd);
        s->n--;
        s->bytes -= nd->item->klen + nd->item->vlen;
        item_unref(nd->item);
        free(nd);
    }
}

/* The other name of a task switch with two names (see cm_kv_store_set), else NULL. */
static const char *alias_of(const char *key, size_t klen)
{
    char buf[32];
    if (klen >= sizeof buf)
        return NULL;
    memcpy(buf, key, klen);
    buf[klen] = '\0';
    return cm_config_switch_alias(buf);
}

void cm_kv_store_set(struct cm_fsm *fsm, const char *key, size_t klen, const void *val, size_t vlen)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    put(s, item_new(key, klen, val, vlen));
    /* the first format wrote the key alone */
    const char *alias = cm_cluster_version(fsm) >= 2 ? alias_of(key, klen) : NULL;
    if (alias)
        put(s, item_new(alias, strlen(alias), val, vlen));
}

void cm_kv_store_delete(struct cm_fsm *fsm, const char *key, size_t klen)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    del(s, key, klen);
    const char *alias = cm_cluster_version(fsm) >= 2 ? alias_of(key, klen) : NULL;
    if (alias)
        del(s, alias, strlen(alias));
}

/* Growth in entries and charged bytes of setting one key to a value of vlen bytes. */
static void growth(struct kv_state *s, const char *key, size_t klen, size_t vlen, uint64_t *entries,
                   int64_t *bytes)
{
    struct kv_node *nd = find(s, key, klen);
    if (nd) {
        *bytes += (int64_t)vlen - (int64_t)nd->item->vlen;
    } else {
        *entries += 1;
        *bytes += (int64_t)(klen + vlen + CM_KV_ENTRY_OVERHEAD);
    }
}

bool cm_kv_fits(struct cm_fsm *fsm, const char *key, size_t klen, size_t vlen, uint64_t max_entries,
                uint64_t max_bytes)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    uint64_t entries = 0;
    int64_t bytes = 0;
    growth(s, key, klen, vlen, &entries, &bytes);
    const char *alias = cm_cluster_version(fsm) >= 2 ? alias_of(key, klen) : NULL;
    if (alias)
        growth(s, alias, strlen(alias), vlen, &entries, &bytes);
    if (entries == 0 && bytes <= 0)
        return true; /* replacing with no more: always allowed, even over quota */
    uint64_t charged = cm_kv_charged(fsm);
    if (entries && s->n + entries > max_entries)
        return false;
    return bytes <= 0 || charged + (uint64_t)bytes <= max_bytes;
}

static void kv_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                     struct cm_result *res)
{
    (void)state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    size_t klen;
    const char *key = cm_get_bytes(&d, &klen);
    if (d.err || !cm_kv_key_valid(key, klen))
        goto bad;
    switch (cmd->op) {
    case CM_KV_OP_SET: {
        size_t vlen = cm_dec_left(&d);
        if (vlen > CM_KV_VALUE_MAX)
            goto bad;
        /* the first format stored whatever the leader proposed */
        if (cm_cluster_version(fsm) >= 2 &&
            !cm_kv_fits(fsm, key, klen, vlen, CM_KV_HARD_MAX_ENTRIES, CM_KV_HARD_MAX_BYTES)) {
            res->code = CM_ERR_ILLEGAL_ARGUMENTS;
            return;
        }
        cm_kv_store_set(fsm, key, klen, d.p, vlen);
        return;
    }
    case CM_KV_OP_DELETE: {
        if (cm_dec_left(&d) != 0)
            goto bad;
        cm_kv_store_delete(fsm, key, klen);
        return;
    }
    }
bad:
    CM_ERROR("kv", "ignoring malformed kv command op %u (%zu bytes)", cmd->op, cmd->len);
    res->code = -1;
}

bool cm_kv_get(struct cm_fsm *fsm, const char *key, size_t klen, const char **val, size_t *vlen)
{
    struct kv_node *nd = find(fsm->mods[CM_MOD_KV], key, klen);
    if (nd == NULL)
        return false;
    *val = nd->item->data + nd->item->klen;
    *vlen = nd->item->vlen;
    return true;
}

void cm_kv_each(struct cm_fsm *fsm, cm_kv_each_fn fn, void *arg)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    struct kv_node *nd;
    RB_FOREACH(nd, kv_tree, &s->tree)
    {
        fn(arg, nd->key, nd->klen, nd->item->data + nd->item->klen, nd->item->vlen);
    }
}

size_t cm_kv_count(struct cm_fsm *fsm)
{
    return ((struct kv_state *)fsm->mods[CM_MOD_KV])->n;
}

uint64_t cm_kv_charged(struct cm_fsm *fsm)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    return s->bytes + (uint64_t)s->n * CM_KV_ENTRY_OVERHEAD;
}

uint64_t cm_kv_bytes(struct cm_fsm *fsm)
{
    return ((struct kv_state *)fsm->mods[CM_MOD_KV])->bytes;
}

static bool has_prefix(const struct kv_node *nd, const char *prefix, size_t plen)
{
    return nd->klen >= plen && memcmp(nd->key, prefix, plen) == 0;
}

struct json_object *cm_kv_list_json(struct cm_fsm *fsm, const char *prefix, size_t plen,
                                    const char *marker, size_t mlen, size_t count)
{
    struct kv_state *s = fsm->mods[CM_MOD_KV];
    struct kv_node *nd;
    /* start at the first key >= prefix, or strictly after the marker when that is later */
    if (mlen > 0 && key_cmp(marker, mlen, prefix, plen) >= 0) {
        struct kv_node probe = {.key = marker, .klen = mlen};
        nd = RB_NFIND(kv_tree, &s->tree, &probe);
        if (nd && node_cmp(nd, &probe) == 0)
            nd = RB_NEXT(kv_tree, &s->tree, nd);
    } else {
        struct kv_node probe = {.key = prefix, .klen = plen};
        nd = plen ? RB_NFIND(kv_tree, &s->tree, &probe) : RB_MIN(kv_tree, &s->tree);
    }
    struct json_object *arr = json_object_new_array();
    struct kv_node *last = NULL;
    char *b64 = NULL;
    size_t b64cap = 0;
    size_t bytes = 0;
    for (size_t i = 0; nd && i < count && has_prefix(nd, prefix, plen); i++) {
        if (i > 0 && bytes + nd->klen + nd->item->vlen > CM_KV_LIST_BYTES)
            break;
        bytes += nd->klen + nd->item->vlen;
        size_t need = cm_b64_enc_len(nd->item->vlen) + 1;
        if (need > b64cap) {
            b64cap = need;
            b64 = cm_realloc(b64, b64cap);
        }
        size_t elen = cm_b64_encode(nd->item->data + nd->item->klen, nd->item->vlen, b64);
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "key", json_object_new_string_len(nd->key, (int)nd->klen));
        json_object_object_add(e, "value", json_object_new_string_len(b64, (int)elen));
        json_object_array_add(arr, e);
        last = nd;
        nd = RB_NEXT(kv_tree, &s->tree, nd);
    }
    free(b64);
    bool more = last && nd && has_prefix(nd, prefix, plen);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "kvs", arr);
    json_object_object_add(o, "marker",
                           more ? json_object_new_string_len(last->key, (int)last->klen)
                                : json_object_new_string(""));
    return o;
}

/* Snapshot copy: the items in key order, each with a reference of its own. */
struct kv_taken {
    struct kv_item **items;
    size_t n;
};

static void *kv_snap_take(void *state)
{
    struct kv_state *s = state;
    struct kv_taken *t = cm_calloc(1, sizeof *t);
    t->items = cm_malloc((s->n + 1) * sizeof *t->items);
    struct kv_node *nd;
    RB_FOREACH(nd, kv_tree, &s->tree)
    {
        atomic_fetch_add_explicit(&nd->item->refs, 1, memory_order_relaxed);
        t->items[t->n++] = nd->item;
    }
    return t;
}

static void kv_snap_write(void *taken, struct cm_buf *out)
{
    struct kv_taken *t = taken;
    cm_put_uvar(out, t->n);
    for (size_t i = 0; i < t->n; i++) {
        const struct kv_item *it = t->items[i];
        cm_put_bytes(out, it->data, it->klen);
        cm_put_bytes(out, it->data + it->klen, it->vlen);
    }
}

static void kv_snap_drop(void *taken)
{
    struct kv_taken *t = taken;
    for (size_t i = 0; i < t->n; i++)
        item_unref(t->items[i]);
    free(t->items);
    free(t);
}

static int kv_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err, size_t errlen)
{
    (void)fsm;
    struct kv_state *s = state;
    uint64_t n = cm_get_uvar(d);
    const char *prev = NULL;
    size_t prevlen = 0;
    for (uint64_t i = 0; i < n && !d->err; i++) {
        size_t klen, vlen;
        const char *key = cm_get_bytes(d, &klen);
        const char *val = cm_get_bytes(d, &vlen);
        if (d->err)
            break;
        if (!cm_kv_key_valid(key, klen) || vlen > CM_KV_VALUE_MAX) {
            snprintf(err, errlen, "kv entry %llu is invalid", (unsigned long long)i);
            return -1;
        }
        if (prev && key_cmp(prev, prevlen, key, klen) >= 0) {
            snprintf(err, errlen, "kv keys are not in byte order");
            return -1;
        }
        put(s, item_new(key, klen, val, vlen));
        prev = key;
        prevlen = klen;
    }
    return d->err ? -1 : 0;
}

const struct cm_module cm_mod_kv = {
    .id = CM_MOD_KV,
    .name = "kv",
    .create = kv_create,
    .destroy = kv_destroy,
    .apply = kv_apply,
    .snap_take = kv_snap_take,
    .snap_write = kv_snap_write,
    .snap_drop = kv_snap_drop,
    .snap_load = kv_snap_load,
};
