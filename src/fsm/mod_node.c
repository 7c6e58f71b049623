/*
 * Node module: blobnodes and copy sets; see mod_node.h.
 */
#include "mod_node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/map.h"
#include "codes.h"
#include "mod_disk.h"
#include "mod_scope.h"

#define NODE_STR_MAX 1024

struct u32vec {
    uint32_t *v;
    size_t n, cap;
};

static void vec_push(struct u32vec *a, uint32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = cm_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* Keep `a` ascending; x is usually the largest, so this is an append. */
static void vec_insert_sorted(struct u32vec *a, uint32_t x)
{
    vec_push(a, x);
    size_t i = a->n - 1;
    while (i > 0 && a->v[i - 1] > x) {
        a->v[i] = a->v[i - 1];
        i--;
    }
    a->v[i] = x;
}

static void vec_remove(struct u32vec *a, uint32_t x)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i] == x) {
            memmove(a->v + i, a->v + i + 1, (a->n - i - 1) * sizeof *a->v);
            a->n--;
            return;
        }
    }
}

/* Equal contents (memcmp of an empty vector may see a NULL pointer). */
static bool vec_equal(const struct u32vec *a, const struct u32vec *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

static void vec_free(struct u32vec *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}

struct node {
    /* replicated */
    uint32_t id, set, cluster_id;
    uint8_t type, role, status;
    char *idc, *rack, *host;
    /* derived */
    struct u32vec disks; /* ascending */
};

struct dmap { /* per disk id (replicated) */
    uint32_t node_id;
    uint32_t disk_set_id;
    bool member;
};

struct nset {
    uint32_t id;
    uint8_t type;
    struct u32vec nodes; /* live nodes, ascending */
    struct u32vec dsets; /* ascending */
};

struct dset {
    uint32_t id;
    uint32_t nset;
    uint32_t count; /* member disks */
};

struct node_state {
    /* replicated */
    struct node **nodes; /* by id */
    size_t nodes_cap;
    struct dmap *dm; /* by disk id */
    size_t dm_cap;
    uint32_t cur_nset, cur_dset;
    /* derived */
    size_t n_nodes, n_live, n_dm, n_members;
    uint64_t bytes;                                /* quota accounting */
    struct cm_smap hkey;                           /* host + disk type name -> node id */
    struct cm_map nsets, dsets;                    /* id -> struct nset / struct dset */
    struct u32vec type_sets[CM_DISK_TYPE_MAX + 1]; /* node sets per disk type, ascending */
};

static struct node_state *S(struct cm_fsm *fsm)
{
    return fsm->mods[CM_MOD_NODE];
}

/* ------------------------------------------------------------------------------------------ */
/* names and caps                                                                               */

static const char *const type_names[] = {NULL, "hdd", "ssd", "nvmessd"};
static const char *const role_names[] = {NULL, "blobnode", "shardnode"};

const char *cm_disk_type_name(uint8_t t)
{
    return t >= 1 && t <= CM_DISK_TYPE_MAX ? type_names[t] : "unknown";
}

int cm_disk_type_parse(const char *name)
{
    for (int i = 1; i <= CM_DISK_TYPE_MAX; i++)
        if (strcasecmp(name, type_names[i]) == 0)
            return i;
    return -1;
}

const char *cm_node_role_name(uint8_t r)
{
    return r >= 1 && r <= 2 ? role_names[r] : "unknown";
}

int cm_node_role_parse(const char *name)
{
    for (int i = 1; i <= 2; i++)
        if (strcasecmp(name, role_names[i]) == 0)
            return i;
    return -1;
}

void cm_node_caps_from_config(const struct cm_fsm_settings *cfg, uint8_t disk_type,
                              struct cm_node_caps *caps)
{
    memset(caps, 0, sizeof *caps);
    if (disk_type >= 1 && disk_type <= CM_DISK_TYPE_MAX) {
        const struct cm_copyset_caps *c = &cfg->copy_set[disk_type];
        caps->node_set_cap = c->node_set_cap;
        caps->node_set_rack_cap = c->node_set_rack_cap;
        caps->disk_set_cap = c->disk_set_cap;
        caps->disk_per_node = c->disk_count_per_node_in_disk_set;
    }
    /* ceil(node_set_cap / len(idc)); len counts duplicate entries, as the reference does */
    size_t n_idc = cfg->n_idc ? cfg->n_idc : 1;
    caps->node_set_idc_cap = (uint32_t)((caps->node_set_cap + n_idc - 1) / n_idc);
    caps->rack_aware = cfg->rack_aware;
}

/* ------------------------------------------------------------------------------------------ */
/* state                                                                                        */

static void *node_create(struct cm_fsm *fsm)
{
    (void)fsm;
    struct node_state *st = cm_calloc(1, sizeof *st);
    st->cur_nset = st->cur_dset = 1;
    cm_smap_init(&st->hkey);
    cm_map_init(&st->nsets);
    cm_map_init(&st->dsets);
    return st;
}

static void clear_derived(struct node_state *st)
{
    for (size_t i = 0; i < st->nodes_cap; i++)
        if (st->nodes[i])
            vec_free(&st->nodes[i]->disks);
    cm_smap_free(&st->hkey);
    cm_smap_init(&st->hkey);
    uint64_t k;
    void *v;
    for (size_t it = 0; cm_map_next(&st->nsets, &it, &k, &v);) {
        struct nset *ns = v;
        vec_free(&ns->nodes);
        vec_free(&ns->dsets);
        free(ns);
    }
    for (size_t it = 0; cm_map_next(&st->dsets, &it, &k, &v);)
        free(v);
    cm_map_free(&st->nsets);
    cm_map_free(&st->dsets);
    cm_map_init(&st->nsets);
    cm_map_init(&st->dsets);
    for (int t = 0; t <= CM_DISK_TYPE_MAX; t++)
        vec_free(&st->type_sets[t]);
    st->n_nodes = st->n_live = st->n_dm = st->n_members = 0;
    st->bytes = 0;
}

static void node_destroy(void *state)
{
    struct node_state *st = state;
    clear_derived(st);
    cm_smap_free(&st->hkey);
    cm_map_free(&st->nsets);
    cm_map_free(&st->dsets);
    for (size_t i = 0; i < st->nodes_cap; i++) {
        struct node *n = st->nodes[i];
        if (n) {
            free(n->idc);
            free(n->rack);
            free(n->host);
            free(n);
        }
    }
    free(st->nodes);
    free(st->dm);
    free(st);
}

static struct node *get(struct node_state *st, uint32_t id)
{
    return id < st->nodes_cap ? st->nodes[id] : NULL;
}

static struct dmap *dget(struct node_state *st, uint32_t disk_id)
{
    return disk_id < st->dm_cap && st->dm[disk_id].node_id ? &st->dm[disk_id] : NULL;
}

static void hkey_make(char *key, size_t cap, const char *host, uint8_t type)
{
    /* the reference's key: the host followed by the disk type name */
    snprintf(key, cap, "%s%s", host, cm_disk_type_name(type));
}

static struct nset *nset_get(struct node_state *st, uint32_t id)
{
    return cm_map_get(&st->nsets, id);
}

static struct nset *nset_make(struct node_state *st, uint32_t id, uint8_t type)
{
    struct nset *ns = nset_get(st, id);
    if (ns)
        return ns;
    ns = cm_calloc(1, sizeof *ns);
    ns->id = id;
    ns->type = type;
    cm_map_put(&st->nsets, id, ns);
    vec_insert_sorted(&st->type_sets[type], id);
    return ns;
}

/* Record a node (replicated fields) and index it. */
static struct node *put_node(struct node_state *st, const struct node *src)
{
    if (src->id >= st->nodes_cap) {
        size_t cap = st->nodes_cap ? st->nodes_cap : 64;
        while (cap <= src->id)
            cap *= 2;
        st->nodes = cm_realloc(st->nodes, cap * sizeof *st->nodes);
        memset(st->nodes + st->nodes_cap, 0, (cap - st->nodes_cap) * sizeof *st->nodes);
        st->nodes_cap = cap;
    }
    struct node *n = cm_calloc(1, sizeof *n);
    *n = *src;
    memset(&n->disks, 0, sizeof n->disks);
    st->nodes[n->id] = n;
    return n;
}

static struct dmap *put_dmap(struct node_state *st, uint32_t disk_id)
{
    if (disk_id >= st->dm_cap) {
        size_t cap = st->dm_cap ? st->dm_cap : 256;
        while (cap <= disk_id)
            cap *= 2;
        st->dm = cm_realloc(st->dm, cap * sizeof *st->dm);
        memset(st->dm + st->dm_cap, 0, (cap - st->dm_cap) * sizeof *st->dm);
        st->dm_cap = cap;
    }
    return &st->dm[disk_id];
}

/* Index a node: its host key, its node set (which exists from then on), live membership. */
static void index_node(struct node_state *st, struct node *n)
{
    char key[2 * NODE_STR_MAX];
    hkey_make(key, sizeof key, n->host, n->type);
    cm_smap_put(&st->hkey, key, (void *)(uintptr_t)n->id);
    struct nset *ns = nset_make(st, n->set, n->type);
    if (n->status != CM_NODE_DROPPED) {
        vec_insert_sorted(&ns->nodes, n->id);
        st->n_live++;
    }
    st->n_nodes++;
    st->bytes += cm_node_entry_bytes(n->idc, n->rack, n->host);
}

/* Index a disk of a node: the node's disk list, its disk set (which exists from then on). */
static void index_disk(struct node_state *st, uint32_t disk_id, const struct dmap *m)
{
    struct node *n = get(st, m->node_id);
    vec_insert_sorted(&n->disks, disk_id);
    if (m->disk_set_id) {
        struct dset *ds = cm_map_get(&st->dsets, m->disk_set_id);
        if (ds == NULL) {
            ds = cm_calloc(1, sizeof *ds);
            ds->id = m->disk_set_id;
            ds->nset = n->set;
            cm_map_put(&st->dsets, ds->id, ds);
            vec_insert_sorted(&nset_get(st, n->set)->dsets, ds->id);
        }
        if (m->member)
            ds->count++;
    }
    st->n_members += m->member;
    st->n_dm++;
}

static void rebuild(struct node_state *st)
{
    clear_derived(st);
    for (size_t i = 0; i < st->nodes_cap; i++)
        if (st->nodes[i])
            index_node(st, st->nodes[i]);
    for (size_t i = 0; i < st->dm_cap; i++)
        if (st->dm[i].node_id)
            index_disk(st, (uint32_t)i, &st->dm[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* copy-set rules (current-release.md §2.3)                                                     */

static uint32_t count_in_set(struct node_state *st, const struct nset *ns, const char *idc,
                             const char *rack)
{
    uint32_t c = 0;
    for (size_t i = 0; i < ns->nodes.n; i++) {
        struct node *m = get(st, ns->nodes.v[i]);
        if (idc && strcmp(m->idc, idc) == 0)
            c++;
        if (rack && strcmp(m->rack, rack) == 0)
            c++;
    }
    return c;
}

static uint32_t choose_node_set(struct node_state *st, uint8_t type, const char *idc,
                                const char *rack, const struct cm_node_caps *caps)
{
    const struct u32vec *sets = &st->type_sets[type];
    for (int pass = 0; pass < 2; pass++) {
        bool racks = caps->rack_aware && pass == 0;
        for (size_t i = 0; i < sets->n; i++) {
            struct nset *ns = nset_get(st, sets->v[i]);
            if (ns->nodes.n >= caps->node_set_cap ||
                count_in_set(st, ns, idc, NULL) >= caps->node_set_idc_cap)
                continue;
            if (racks && count_in_set(st, ns, NULL, rack) >= caps->node_set_rack_cap)
                continue;
            return ns->id;
        }
        if (!caps->rack_aware)
            break;
    }
    return st->cur_nset + 1;
}

static uint32_t choose_disk_set(struct node_state *st, const struct node *n,
                                const struct cm_node_caps *caps)
{
    const struct nset *ns = nset_get(st, n->set);
    for (size_t i = 0; ns && i < ns->dsets.n; i++) {
        const struct dset *ds = cm_map_get(&st->dsets, ns->dsets.v[i]);
        if (ds->count >= caps->disk_set_cap)
            continue;
        uint32_t mine = 0;
        for (size_t k = 0; k < n->disks.n; k++) {
            const struct dmap *m = &st->dm[n->disks.v[k]];
            mine += m->member && m->disk_set_id == ds->id;
        }
        if (mine >= caps->disk_per_node)
            continue;
        return ds->id;
    }
    return st->cur_dset + 1;
}

/* ------------------------------------------------------------------------------------------ */
/* commands                                                                                     */

static void put_caps(struct cm_buf *b, const struct cm_node_caps *c)
{
    cm_put_u32(b, c->node_set_cap);
    cm_put_u32(b, c->node_set_rack_cap);
    cm_put_u32(b, c->node_set_idc_cap);
    cm_put_u32(b, c->disk_set_cap);
    cm_put_u32(b, c->disk_per_node);
    cm_put_bool(b, c->rack_aware);
}

static void get_caps(struct cm_dec *d, struct cm_node_caps *c)
{
    c->node_set_cap = cm_get_u32(d);
    c->node_set_rack_cap = cm_get_u32(d);
    c->node_set_idc_cap = cm_get_u32(d);
    c->disk_set_cap = cm_get_u32(d);
    c->disk_per_node = cm_get_u32(d);
    c->rack_aware = cm_get_bool(d);
}

void cm_node_enc_add(struct cm_buf *b, const struct cm_node_info *n, uint32_t requested_set,
                     const struct cm_node_caps *caps)
{
    cm_put_u32(b, n->cluster_id);
    cm_put_u8(b, n->disk_type);
    cm_put_u8(b, n->role);
    cm_put_str(b, n->idc);
    cm_put_str(b, n->rack);
    cm_put_str(b, n->host);
    cm_put_u32(b, requested_set);
    put_caps(b, caps);
}

void cm_node_enc_drop(struct cm_buf *b, uint32_t node_id)
{
    cm_put_u32(b, node_id);
}

void cm_node_enc_attach(struct cm_buf *b, uint32_t disk_id, uint32_t node_id,
                        const struct cm_node_caps *caps)
{
    cm_put_u32(b, disk_id);
    cm_put_u32(b, node_id);
    put_caps(b, caps);
}

static bool str_ok(const char *s)
{
    return s != NULL && strlen(s) <= NODE_STR_MAX;
}

static void apply_add(struct cm_fsm *fsm, struct node_state *st, struct cm_dec *d,
                      struct cm_result *res)
{
    struct node n = {0};
    n.cluster_id = cm_get_u32(d);
    n.type = cm_get_u8(d);
    n.role = cm_get_u8(d);
    char *idc = cm_get_strdup(d), *rack = cm_get_strdup(d), *host = cm_get_strdup(d);
    uint32_t want = cm_get_u32(d);
    struct cm_node_caps caps;
    get_caps(d, &caps);
    if (d->err || n.type < 1 || n.type > CM_DISK_TYPE_MAX || n.role != CM_NODE_ROLE_BLOBNODE ||
        !str_ok(idc) || !str_ok(rack) || !str_ok(host)) {
        res->code = -1;
        goto out;
    }
    char key[2 * NODE_STR_MAX + 16];
    hkey_make(key, sizeof key, host, n.type);
    uintptr_t existing = (uintptr_t)cm_smap_get(&st->hkey, key);
    if (existing) { /* idempotent by host + disk type; nothing changes */
        res->v[0] = existing;
        goto out;
    }
    if (want != 0) {
        struct nset *ns = nset_get(st, want);
        if (want == 1 || want > st->cur_nset) {
            res->code = CM_ERR_ILLEGAL_ARGUMENTS;
            goto out;
        }
        if (ns == NULL || ns->type != n.type) {
            res->code = CM_ERR_NODESET_NOT_FOUND;
            goto out;
        }
    }
    uint64_t id = cm_scope_current(fsm, "nodeid") + 1;
    if (st->bytes + cm_node_entry_bytes(idc, rack, host) > CM_NODE_HARD_MAX_BYTES) {
        CM_WARN("node", "not adding node %s: the node table is at its ceiling", host);
        res->code = CM_ERR_ILLEGAL_ARGUMENTS;
        goto out;
    }
    if (id > CM_NODE_ID_MAX) {
        CM_WARN("node", "not adding node %s: node ids exhausted", host);
        res->code = CM_ERR_ILLEGAL_ARGUMENTS;
        goto out;
    }
    cm_scope_raise(fsm, "nodeid", id);
    n.id = (uint32_t)id;
    n.set = want ? want : choose_node_set(st, n.type, idc, rack, &caps);
    if (n.set > st->cur_nset)
        st->cur_nset = n.set;
    n.status = CM_NODE_NORMAL;
    n.idc = idc, n.rack = rack, n.host = host;
    idc = rack = host = NULL;
    index_node(st, put_node(st, &n));
    res->v[0] = n.id;
out:
    free(idc);
    free(rack);
    free(host);
}

static void apply_drop(struct cm_fsm *fsm, struct node_state *st, struct cm_dec *d,
                       struct cm_result *res)
{
    uint32_t id = cm_get_u32(d);
    if (d->err) {
        res->code = -1;
        return;
    }
    struct node *n = get(st, id);
    if (n == NULL) {
        res->code = CM_ERR_NODE_NOT_FOUND;
        return;
    }
    if (n->status == CM_NODE_DROPPED)
        return;
    for (size_t i = 0; i < n->disks.n; i++) {
        struct cm_disk_info di;
        if (cm_disk_get(fsm, n->disks.v[i], &di) && di.status != CM_DISK_REPAIRED &&
            di.status != CM_DISK_DROPPED) {
            res->code = CM_ERR_NODE_DISKS_IN_USE;
            return;
        }
    }
    n->status = CM_NODE_DROPPED;
    vec_remove(&nset_get(st, n->set)->nodes, n->id);
    st->n_live--;
}

/* Record disk_id under node_id and give it a disk set when it is to be a member. */
static void attach(struct node_state *st, uint32_t disk_id, struct node *n, bool member,
                   const struct cm_node_caps *caps)
{
    struct dmap m = {.node_id = n->id, .member = member};
    if (member) {
        m.disk_set_id = choose_disk_set(st, n, caps);
        if (m.disk_set_id > st->cur_dset)
            st->cur_dset = m.disk_set_id;
    }
    *put_dmap(st, disk_id) = m;
    index_disk(st, disk_id, &m);
}

bool cm_node_usable(struct cm_fsm *fsm, uint32_t node_id)
{
    struct node *n = get(S(fsm), node_id);
    return n != NULL && n->status != CM_NODE_DROPPED;
}

int cm_node_disk_added(struct cm_fsm *fsm, uint32_t disk_id, uint32_t node_id, bool member,
                       const struct cm_node_caps *caps)
{
    struct node_state *st = S(fsm);
    struct node *n = get(st, node_id);
    if (n == NULL || n->status == CM_NODE_DROPPED)
        return CM_ERR_NODE_NOT_FOUND;
    if (dget(st, disk_id) != NULL) /* cannot happen: the disk module refused a second add */
        return CM_ERR_EXIST;
    attach(st, disk_id, n, member, caps);
    return 0;
}

void cm_node_disk_left(struct cm_fsm *fsm, uint32_t disk_id)
{
    struct node_state *st = S(fsm);
    struct dmap *m = dget(st, disk_id);
    if (m == NULL || !m->member)
        return;
    m->member = false;
    st->n_members--;
    if (m->disk_set_id) {
        struct dset *ds = cm_map_get(&st->dsets, m->disk_set_id);
        ds->count--;
    }
}

static void apply_attach(struct cm_fsm *fsm, struct node_state *st, struct cm_dec *d,
                         struct cm_result *res)
{
    uint32_t disk_id = cm_get_u32(d);
    uint32_t node_id = cm_get_u32(d);
    struct cm_node_caps caps;
    get_caps(d, &caps);
    if (d->err) {
        res->code = -1;
        return;
    }
    struct cm_disk_info di;
    if (!cm_disk_get(fsm, disk_id, &di)) {
        res->code = CM_ERR_DISK_NOT_FOUND;
        return;
    }
    struct node *n = get(st, node_id);
    if (n == NULL || n->status == CM_NODE_DROPPED) {
        res->code = CM_ERR_NODE_NOT_FOUND;
        return;
    }
    if (dget(st, disk_id) != NULL) { /* already under a node */
        res->code = dget(st, disk_id)->node_id == node_id ? 0 : CM_ERR_EXIST;
        return;
    }
    bool member = !di.dropping && di.status != CM_DISK_REPAIRED && di.status != CM_DISK_DROPPED;
    attach(st, disk_id, n, member, &caps);
}

static void node_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                       struct cm_result *res)
{
    struct node_state *st = state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    switch (cmd->op) {
    case CM_NODE_OP_ADD:
        apply_add(fsm, st, &d, res);
        break;
    case CM_NODE_OP_DROP:
        apply_drop(fsm, st, &d, res);
        break;
    case CM_NODE_OP_ATTACH_DISK:
        apply_attach(fsm, st, &d, res);
        break;
    default:
        res->code = -1;
    }
    if (res->code == -1)
        CM_ERROR("node", "ignoring malformed node command op %u", cmd->op);
}

/* ------------------------------------------------------------------------------------------ */
/* snapshot                                                                                     */

static void *node_snap_take(void *state)
{
    struct node_state *st = state;
    struct cm_buf b = {0};
    if (st->n_nodes == 0 && st->n_dm == 0 && st->cur_nset == 1 && st->cur_dset == 1)
        return cm_snap_take_encoded(&b); /* empty: the section is left out */
    cm_put_u32(&b, st->cur_nset);
    cm_put_u32(&b, st->cur_dset);
    cm_put_uvar(&b, st->n_nodes);
    for (size_t i = 0; i < st->nodes_cap; i++) {
        const struct node *n = st->nodes[i];
        if (n == NULL)
            continue;
        cm_put_u32(&b, n->id);
        cm_put_u32(&b, n->set);
        cm_put_u32(&b, n->cluster_id);
        cm_put_u8(&b, n->type);
        cm_put_u8(&b, n->role);
        cm_put_u8(&b, n->status);
        cm_put_str(&b, n->idc);
        cm_put_str(&b, n->rack);
        cm_put_str(&b, n->host);
    }
    cm_put_uvar(&b, st->n_dm);
    for (size_t i = 0; i < st->dm_cap; i++) {
        const struct dmap *m = &st->dm[i];
        if (m->node_id == 0)
            continue;
        cm_put_u32(&b, (uint32_t)i);
        cm_put_u32(&b, m->node_id);
        cm_put_u32(&b, m->disk_set_id);
        cm_put_bool(&b, m->member);
    }
    return cm_snap_take_encoded(&b);
}

static bool node_snap_skip(void *taken)
{
    return ((struct cm_buf *)taken)->len == 0;
}

static int node_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                          size_t errlen)
{
    (void)fsm;
    struct node_state *st = state;
    st->cur_nset = cm_get_u32(d);
    st->cur_dset = cm_get_u32(d);
    if (d->err || st->cur_nset < 1 || st->cur_dset < 1 || st->cur_nset > CM_NODE_SET_ID_MAX ||
        st->cur_dset > CM_NODE_SET_ID_MAX) {
        snprintf(err, errlen, "set counters out of range");
        return -1;
    }
    uint64_t nn = cm_get_uvar(d);
    if (d->err || nn > cm_dec_left(d) / 18 || nn > CM_NODE_ID_MAX) {
        snprintf(err, errlen, "bad node count");
        return -1;
    }
    uint32_t prev = 0;
    for (uint64_t i = 0; i < nn; i++) {
        struct node n = {0};
        n.id = cm_get_u32(d);
        n.set = cm_get_u32(d);
        n.cluster_id = cm_get_u32(d);
        n.type = cm_get_u8(d);
        n.role = cm_get_u8(d);
        n.status = cm_get_u8(d);
        char *idc = cm_get_strdup(d), *rack = cm_get_strdup(d), *host = cm_get_strdup(d);
        bool ok = !d->err && n.id > prev && n.id <= CM_NODE_ID_MAX && n.set >= 2 &&
                  n.set <= st->cur_nset && n.type >= 1 && n.type <= CM_DISK_TYPE_MAX &&
                  n.role == CM_NODE_ROLE_BLOBNODE &&
                  (n.status == CM_NODE_NORMAL || n.status == CM_NODE_DROPPED) && str_ok(idc) &&
                  str_ok(rack) && str_ok(host);
        char key[2 * NODE_STR_MAX + 16];
        if (ok) {
            hkey_make(key, sizeof key, host, n.type);
            struct nset *ns = nset_get(st, n.set);
            ok = cm_smap_get(&st->hkey, key) == NULL && (ns == NULL || ns->type == n.type);
        }
        if (!ok) {
            free(idc);
            free(rack);
            free(host);
            snprintf(err, errlen, "node record %" PRIu64 " is invalid", i);
            return -1;
        }
        n.idc = idc, n.rack = rack, n.host = host;
        index_node(st, put_node(st, &n));
        prev = n.id;
    }
    uint64_t nd = cm_get_uvar(d);
    if (d->err || nd > cm_dec_left(d) / 13) {
        snprintf(err, errlen, "bad disk count");
        return -1;
    }
    prev = 0;
    for (uint64_t i = 0; i < nd; i++) {
        uint32_t disk_id = cm_get_u32(d);
        struct dmap m;
        m.node_id = cm_get_u32(d);
        m.disk_set_id = cm_get_u32(d);
        m.member = cm_get_bool(d);
        struct node *n = get(st, m.node_id);
        bool ok = !d->err && disk_id > prev && disk_id <= CM_DISK_ID_MAX && n != NULL &&
                  m.disk_set_id != 1 && m.disk_set_id <= st->cur_dset &&
                  (m.disk_set_id != 0 || !m.member);
        if (ok && m.disk_set_id) { /* a disk set lives in one node set */
            struct dset *ds = cm_map_get(&st->dsets, m.disk_set_id);
            ok = ds == NULL || ds->nset == n->set;
        }
        if (!ok) {
            snprintf(err, errlen, "disk record %" PRIu64 " is invalid", i);
            return -1;
        }
        *put_dmap(st, disk_id) = m;
        index_disk(st, disk_id, &m);
        prev = disk_id;
    }
    return 0;
}

/* Every node command is of format 2 (CubeFS v3.5.1's nodes and copy sets). */
static uint8_t node_cmd_version(const struct cm_cmd *cmd)
{
    (void)cmd;
    return 2;
}

const struct cm_module cm_mod_node = {
    .id = CM_MOD_NODE,
    .name = "node",
    .create = node_create,
    .destroy = node_destroy,
    .apply = node_apply,
    .snap_take = node_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_skip = node_snap_skip,
    .snap_load = node_snap_load,
    .cmd_version = node_cmd_version,
};

/* ------------------------------------------------------------------------------------------ */
/* readers                                                                                      */

static void fill(const struct node *n, struct cm_node_info *o)
{
    o->node_id = n->id;
    o->node_set_id = n->set;
    o->cluster_id = n->cluster_id;
    o->disk_type = n->type;
    o->role = n->role;
    o->status = n->status;
    o->idc = n->idc;
    o->rack = n->rack;
    o->host = n->host;
}

bool cm_node_get(struct cm_fsm *fsm, uint32_t node_id, struct cm_node_info *out)
{
    struct node *n = get(S(fsm), node_id);
    if (n && out)
        fill(n, out);
    return n != NULL;
}

uint32_t cm_node_find(struct cm_fsm *fsm, const char *host, uint8_t disk_type)
{
    char key[2 * NODE_STR_MAX + 16];
    if (strlen(host) > NODE_STR_MAX)
        return 0;
    hkey_make(key, sizeof key, host, disk_type);
    return (uint32_t)(uintptr_t)cm_smap_get(&S(fsm)->hkey, key);
}

uint32_t cm_node_cur_set_id(struct cm_fsm *fsm)
{
    return S(fsm)->cur_nset;
}

bool cm_node_set_exists(struct cm_fsm *fsm, uint32_t id, uint8_t t)
{
    struct nset *ns = nset_get(S(fsm), id);
    return ns != NULL && ns->type == t;
}

size_t cm_node_live_count(struct cm_fsm *fsm)
{
    return S(fsm)->n_live;
}

uint64_t cm_node_entry_bytes(const char *idc, const char *rack, const char *host)
{
    return strlen(idc) + strlen(rack) + strlen(host) + CM_NODE_ENTRY_OVERHEAD;
}

size_t cm_node_count(struct cm_fsm *fsm)
{
    return S(fsm)->n_nodes;
}

uint64_t cm_node_bytes(struct cm_fsm *fsm)
{
    return S(fsm)->bytes;
}

size_t cm_node_member_disks(struct cm_fsm *fsm)
{
    return S(fsm)->n_members;
}

bool cm_node_any(struct cm_fsm *fsm)
{
    return S(fsm)->n_nodes > 0;
}

void cm_node_of_disk(struct cm_fsm *fsm, uint32_t disk_id, uint32_t *node_id, uint32_t *disk_set_id,
                     bool *member)
{
    struct dmap *m = dget(S(fsm), disk_id);
    if (node_id)
        *node_id = m ? m->node_id : 0;
    if (disk_set_id)
        *disk_set_id = m ? m->disk_set_id : 0;
    if (member)
        *member = m ? m->member : false;
}

const uint32_t *cm_node_disks(struct cm_fsm *fsm, uint32_t node_id, size_t *n)
{
    struct node *nd = get(S(fsm), node_id);
    *n = nd ? nd->disks.n : 0;
    return nd && nd->disks.n ? nd->disks.v : NULL;
}

static struct json_object *ids_json(const struct u32vec *a)
{
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < a->n; i++)
        json_object_array_add(arr, json_object_new_uint64(a->v[i]));
    return arr;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* First index of `pairs` (sorted) whose disk set (high half) is >= dsid. */
static size_t lower_bound(const uint64_t *pairs, size_t n, uint32_t dsid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pairs[mid] >> 32 < dsid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct json_object *cm_node_topo_json(struct cm_fsm *fsm)
{
    struct node_state *st = S(fsm);
    /* (disk set, disk) of every member disk, sorted: each disk set's members are one run */
    uint64_t *pairs = cm_malloc((st->n_dm + 1) * sizeof *pairs);
    size_t n_pairs = 0;
    for (size_t i = 0; i < st->dm_cap; i++)
        if (st->dm[i].node_id && st->dm[i].member && st->dm[i].disk_set_id)
            pairs[n_pairs++] = (uint64_t)st->dm[i].disk_set_id << 32 | i;
    qsort(pairs, n_pairs, sizeof *pairs, cmp_u64);
    struct json_object *o = json_object_new_object();
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "blobnode", json_object_new_uint64(st->cur_nset));
    json_object_object_add(o, "cur_node_set_ids", c);
    c = json_object_new_object();
    json_object_object_add(c, "blobnode", json_object_new_uint64(st->cur_dset));
    json_object_object_add(o, "cur_disk_set_ids", c);
    struct json_object *types = json_object_new_object();
    for (uint8_t t = 1; t <= CM_DISK_TYPE_MAX; t++) {
        const struct u32vec *sets = &st->type_sets[t];
        if (sets->n == 0)
            continue;
        struct json_object *byid = json_object_new_object();
        for (size_t i = 0; i < sets->n; i++) {
            const struct nset *ns = nset_get(st, sets->v[i]);
            struct json_object *so = json_object_new_object();
            json_object_object_add(so, "id", json_object_new_uint64(ns->id));
            json_object_object_add(so, "number", json_object_new_uint64(ns->nodes.n));
            json_object_object_add(so, "nodes", ids_json(&ns->nodes));
            struct json_object *dsets = json_object_new_object();
            for (size_t k = 0; k < ns->dsets.n; k++) {
                uint32_t dsid = ns->dsets.v[k];
                struct json_object *arr = json_object_new_array();
                size_t at = lower_bound(pairs, n_pairs, dsid);
                for (; at < n_pairs && pairs[at] >> 32 == dsid; at++)
                    json_object_array_add(arr, json_object_new_uint64(pairs[at] & 0xffffffffu));
                char key[16];
                snprintf(key, sizeof key, "%u", dsid);
                json_object_object_add(dsets, key, arr);
            }
            json_object_object_add(so, "disk_sets", dsets);
            char key[16];
            snprintf(key, sizeof key, "%u", ns->id);
            json_object_object_add(byid, key, so);
        }
        json_object_object_add(types, cm_disk_type_name(t), byid);
    }
    struct json_object *all = json_object_new_object();
    json_object_object_add(all, "blobnode", types);
    json_object_object_add(o, "all_node_sets", all);
    free(pairs);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* self-check                                                                                   */

int cm_node_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen)
{
    struct node_state *st = S(fsm);
    /* a copy of the replicated records, rebuilt from scratch */
    struct node_state *ref = node_create(fsm);
    ref->cur_nset = st->cur_nset;
    ref->cur_dset = st->cur_dset;
    for (size_t i = 0; i < st->nodes_cap; i++) {
        if (st->nodes[i] == NULL)
            continue;
        struct node n = *st->nodes[i];
        n.idc = cm_strdup(n.idc), n.rack = cm_strdup(n.rack), n.host = cm_strdup(n.host);
        put_node(ref, &n);
    }
    for (size_t i = 0; i < st->dm_cap; i++)
        if (st->dm[i].node_id)
            *put_dmap(ref, (uint32_t)i) = st->dm[i];
    rebuild(ref);
    int rc = -1;
    if (ref->n_nodes != st->n_nodes || ref->n_live != st->n_live || ref->n_dm != st->n_dm ||
        ref->n_members != st->n_members || ref->nsets.n != st->nsets.n ||
        ref->dsets.n != st->dsets.n || ref->hkey.n != st->hkey.n) {
        snprintf(err, errlen, "node index counts differ from a rebuild");
        goto out;
    }
    uint64_t k;
    void *v;
    for (size_t it = 0; cm_map_next(&st->nsets, &it, &k, &v);) {
        const struct nset *a = v, *b = nset_get(ref, (uint32_t)k);
        if (b == NULL || a->type != b->type || !vec_equal(&a->nodes, &b->nodes) ||
            !vec_equal(&a->dsets, &b->dsets)) {
            snprintf(err, errlen, "node set %" PRIu64 " differs from a rebuild", k);
            goto out;
        }
        if (a->id > st->cur_nset) {
            snprintf(err, errlen, "node set %" PRIu64 " above the counter", k);
            goto out;
        }
    }
    for (size_t it = 0; cm_map_next(&st->dsets, &it, &k, &v);) {
        const struct dset *a = v, *b = cm_map_get(&ref->dsets, k);
        if (b == NULL || a->count != b->count || a->nset != b->nset || a->id > st->cur_dset) {
            snprintf(err, errlen, "disk set %" PRIu64 " differs from a rebuild", k);
            goto out;
        }
    }
    for (int t = 0; t <= CM_DISK_TYPE_MAX; t++) {
        if (!vec_equal(&st->type_sets[t], &ref->type_sets[t])) {
            snprintf(err, errlen, "node sets of disk type %d differ from a rebuild", t);
            goto out;
        }
    }
    for (size_t i = 0; i < st->nodes_cap; i++) {
        const struct node *a = st->nodes[i];
        if (a == NULL)
            continue;
        const struct node *b = get(ref, (uint32_t)i);
        if (!vec_equal(&a->disks, &b->disks)) {
            snprintf(err, errlen, "disks of node %zu differ from a rebuild", i);
            goto out;
        }
    }
    rc = 0;
out:
    node_destroy(ref);
    return rc;
}
