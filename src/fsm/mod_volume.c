/* Volume module; see mod_volume.h for the model and its invariants. */
#include "mod_volume.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/map.h"
#include "codes.h"
#include "mod_disk.h"
#include "mod_scope.h"

#define VPAGE 1024u /* volume records per page */
#define UPAGE 4096u /* units per page */
#define MODES 32u   /* code mode ids are below this */
/* disk ids are 1..CM_DISK_ID_MAX (mod_disk.h); the units-by-disk table is dense up to the highest
 * id referenced, so a larger id in a snapshot would size it beyond any real cluster */
#define DISK_ID_LIMIT (CM_DISK_ID_MAX + 1u)
#define VID_STRIDE_MAX 1000000u /* a new vid is at most this far above every known one */

/* ------------------------------------------------------------------------------------------ */
/* replicated records, in reference-counted copy-on-write pages                                */

struct vrec {
    uint64_t total, free, used;
    int64_t expire_ns;
    uint64_t create_by;
    uint32_t ustart;  /* first unit in the arena */
    uint32_t token;   /* interned lease host + 1; 0: never leased */
    uint32_t task_id; /* valid with task_type */
    uint8_t state, code_mode, status, nunits, task_type;
    uint8_t pad[3];
};

struct vpage {
    atomic_uint refs;
    struct vrec r[VPAGE];
};

#define U_COMPACT 0x80000000u
#define U_EPOCH 0x00ffffffu

struct umeta {
    uint32_t disk;
    uint32_t epoch; /* low 24 bits; U_COMPACT */
    uint32_t next;
};

enum { SZ_TOTAL = 0, SZ_FREE = 1, SZ_USED = 2 };

struct upage {
    atomic_uint refs;
    uint64_t sz[UPAGE][3];
    struct umeta m[UPAGE];
};

/* ------------------------------------------------------------------------------------------ */
/* derived state                                                                                */

enum { D_ACC = 1, D_LIST = 2, D_MARK = 4 };

struct vder {
    int8_t health;
    uint8_t flags;
    uint32_t prev, next; /* allocatable list of the code mode (vids; 0 ends) */
};

struct dent {
    uint64_t *u; /* vuid prefixes, ascending */
    uint32_t n, cap;
    uint32_t load; /* active volumes with a unit here */
    uint8_t bad;   /* replicated: units here count as unhealthy */
};

struct mstat {
    int64_t total, idle, active, lock, unlocking, allocatable, pending, aborted;
    uint32_t head; /* allocatable list, newest first */
};

struct vstate {
    const struct cm_fsm_settings *cfg;
    uint64_t freeze;    /* volume_reserve_size: retain and lease checks */
    uint64_t alloc_min; /* allocation threshold: the allocatable lists */
    struct vpage **vp;
    uint32_t n_vp;
    struct upage **up;
    uint32_t n_up;
    uint32_t n_units; /* arena slots used */
    uint32_t max_vid;
    uint64_t task_seq;
    struct vder *der; /* n_vp * VPAGE entries */
    struct dent *disks;
    uint32_t n_disks; /* entries of `disks` */
    struct mstat modes[MODES];
    struct cm_map pending; /* vid -> (void *)1 */
    char **hosts;
    uint32_t n_hosts, cap_hosts;
    struct cm_smap host_idx; /* host -> index + 1 */
};

static struct vstate *S(struct cm_fsm *fsm)
{
    return fsm->mods[CM_MOD_VOLUME];
}

static void vpage_unref(struct vpage *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

static void upage_unref(struct upage *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

static const struct vrec *vr(const struct vstate *st, uint32_t vid)
{
    uint32_t pi = vid / VPAGE;
    if (vid == 0 || pi >= st->n_vp)
        return NULL;
    const struct vrec *r = &st->vp[pi]->r[vid % VPAGE];
    return r->state == CM_VOL_EMPTY ? NULL : r;
}

/* Make sure slot `vid` exists (pages up to it, derived entries too). */
static void vgrow(struct vstate *st, uint32_t vid)
{
    uint32_t need = vid / VPAGE + 1;
    if (need <= st->n_vp)
        return;
    st->vp = cm_realloc(st->vp, need * sizeof *st->vp);
    st->der = cm_realloc(st->der, (size_t)need * VPAGE * sizeof *st->der);
    memset(st->der + (size_t)st->n_vp * VPAGE, 0,
           (size_t)(need - st->n_vp) * VPAGE * sizeof *st->der);
    for (uint32_t i = st->n_vp; i < need; i++) {
        st->vp[i] = cm_calloc(1, sizeof *st->vp[i]);
        atomic_init(&st->vp[i]->refs, 1);
    }
    st->n_vp = need;
}

/* A writable record: the page is cloned first when a snapshot still shares it. */
static struct vrec *vw(struct vstate *st, uint32_t vid)
{
    vgrow(st, vid);
    uint32_t pi = vid / VPAGE;
    struct vpage *p = st->vp[pi];
    if (atomic_load_explicit(&p->refs, memory_order_acquire) != 1) {
        struct vpage *c = cm_malloc(sizeof *c);
        memcpy(c->r, p->r, sizeof c->r);
        atomic_init(&c->refs, 1);
        st->vp[pi] = c;
        vpage_unref(p);
        p = c;
    }
    return &p->r[vid % VPAGE];
}

static const struct umeta *um(const struct vstate *st, uint32_t u)
{
    return &st->up[u / UPAGE]->m[u % UPAGE];
}

static const uint64_t *usz(const struct vstate *st, uint32_t u)
{
    return st->up[u / UPAGE]->sz[u % UPAGE];
}

static struct upage *upage_own(struct vstate *st, uint32_t u)
{
    uint32_t pi = u / UPAGE;
    struct upage *p = st->up[pi];
    if (atomic_load_explicit(&p->refs, memory_order_acquire) != 1) {
        struct upage *c = cm_malloc(sizeof *c);
        memcpy(c->sz, p->sz, sizeof c->sz);
        memcpy(c->m, p->m, sizeof c->m);
        atomic_init(&c->refs, 1);
        st->up[pi] = c;
        upage_unref(p);
        p = c;
    }
    return p;
}

static struct umeta *umw(struct vstate *st, uint32_t u)
{
    return &upage_own(st, u)->m[u % UPAGE];
}

static uint64_t *uszw(struct vstate *st, uint32_t u)
{
    return upage_own(st, u)->sz[u % UPAGE];
}

/* Room for `n` more units; returns the first. */
static uint32_t units_alloc(struct vstate *st, unsigned n)
{
    uint32_t first = st->n_units;
    uint32_t need = (first + n + UPAGE - 1) / UPAGE;
    if (need > st->n_up) {
        st->up = cm_realloc(st->up, need * sizeof *st->up);
        for (uint32_t i = st->n_up; i < need; i++) {
            st->up[i] = cm_calloc(1, sizeof *st->up[i]);
            atomic_init(&st->up[i]->refs, 1);
        }
        st->n_up = need;
    }
    st->n_units += n;
    return first;
}

static uint32_t u_epoch(const struct umeta *m)
{
    return m->epoch & U_EPOCH;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* ------------------------------------------------------------------------------------------ */
/* derived: units by disk                                                                       */

static struct dent *dent(struct vstate *st, uint32_t disk)
{
    if (disk >= st->n_disks) {
        uint32_t cap = st->n_disks ? st->n_disks : 64;
        while (cap <= disk)
            cap *= 2;
        st->disks = cm_realloc(st->disks, cap * sizeof *st->disks);
        memset(st->disks + st->n_disks, 0, (cap - st->n_disks) * sizeof *st->disks);
        st->n_disks = cap;
    }
    return &st->disks[disk];
}

static const struct dent *dent_get(const struct vstate *st, uint32_t disk)
{
    return disk < st->n_disks ? &st->disks[disk] : NULL;
}

/* First position whose prefix is >= x. */
static uint32_t dpos(const struct dent *d, uint64_t x)
{
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (d->u[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void dindex_add(struct vstate *st, uint32_t disk, uint64_t prefix)
{
    struct dent *d = dent(st, disk);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 4;
        d->u = cm_realloc(d->u, d->cap * sizeof *d->u);
    }
    if (d->n == 0 || d->u[d->n - 1] < prefix) {
        d->u[d->n++] = prefix;
        return;
    }
    uint32_t i = dpos(d, prefix);
    if (i < d->n && d->u[i] == prefix)
        return;
    memmove(d->u + i + 1, d->u + i, (d->n - i) * sizeof *d->u);
    d->u[i] = prefix;
    d->n++;
}

static void dindex_del(struct vstate *st, uint32_t disk, uint64_t prefix)
{
    if (disk >= st->n_disks)
        return;
    struct dent *d = &st->disks[disk];
    uint32_t i = dpos(d, prefix);
    if (i >= d->n || d->u[i] != prefix)
        return;
    memmove(d->u + i, d->u + i + 1, (d->n - i - 1) * sizeof *d->u);
    d->n--;
    if (d->n == 0) {
        free(d->u);
        d->u = NULL;
        d->cap = 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* derived: health, counters, allocatable lists, disk load                                     */

static int min_health(unsigned code_mode)
{
    const struct cm_codemode *c = cm_codemode_by_id(code_mode);
    return c ? cm_codemode_min_health(c) : 0;
}

static int health_of(const struct vstate *st, const struct vrec *r)
{
    int bad = 0;
    for (unsigned i = 0; i < r->nunits; i++) {
        const struct umeta *m = um(st, r->ustart + i);
        const struct dent *d = dent_get(st, m->disk);
        if ((m->epoch & U_COMPACT) || (d && d->bad))
            bad++;
    }
    return -bad;
}

static bool allocatable(const struct vstate *st, const struct vrec *r, const struct vder *d)
{
    return r->state == CM_VOL_CREATED && r->status == CM_VOL_IDLE && r->free > st->alloc_min &&
           d->health >= min_health(r->code_mode);
}

static void list_push(struct vstate *st, struct mstat *m, uint32_t vid)
{
    struct vder *d = &st->der[vid];
    d->prev = 0;
    d->next = m->head;
    if (m->head)
        st->der[m->head].prev = vid;
    m->head = vid;
    d->flags |= D_LIST;
}

static void list_remove(struct vstate *st, struct mstat *m, uint32_t vid)
{
    struct vder *d = &st->der[vid];
    if (d->prev)
        st->der[d->prev].next = d->next;
    else
        m->head = d->next;
    if (d->next)
        st->der[d->next].prev = d->prev;
    d->prev = d->next = 0;
    d->flags &= (uint8_t)~D_LIST;
}

static void count(struct vstate *st, uint32_t vid, const struct vrec *r, int s)
{
    struct mstat *m = &st->modes[r->code_mode % MODES];
    if (r->state == CM_VOL_PENDING) {
        m->pending += s;
        return;
    }
    if (r->state == CM_VOL_ABORTED) {
        m->aborted += s;
        return;
    }
    m->total += s;
    switch (r->status) {
    case CM_VOL_IDLE:
        m->idle += s;
        break;
    case CM_VOL_ACTIVE:
        m->active += s;
        for (unsigned i = 0; i < r->nunits; i++)
            dent(st, um(st, r->ustart + i)->disk)->load += (uint32_t)s;
        break;
    case CM_VOL_LOCK:
        m->lock += s;
        break;
    case CM_VOL_UNLOCKING:
        m->unlocking += s;
        break;
    }
    (void)vid;
}

/* Take a volume out of every derived aggregate before changing it ... */
static void unacc(struct vstate *st, uint32_t vid)
{
    const struct vrec *r = vr(st, vid);
    struct vder *d = &st->der[vid];
    if (r == NULL || !(d->flags & D_ACC))
        return;
    d->flags &= (uint8_t)~D_ACC;
    count(st, vid, r, -1);
    if (d->flags & D_LIST) {
        struct mstat *m = &st->modes[r->code_mode % MODES];
        list_remove(st, m, vid);
        m->allocatable--;
    }
}

/* ... and put it back afterwards (health is recomputed here). */
static void acc(struct vstate *st, uint32_t vid)
{
    const struct vrec *r = vr(st, vid);
    if (r == NULL)
        return;
    struct vder *d = &st->der[vid];
    if (d->flags & D_ACC)
        return;
    d->flags |= D_ACC;
    d->health = (int8_t)(r->state == CM_VOL_CREATED ? health_of(st, r) : 0);
    count(st, vid, r, 1);
    if (allocatable(st, r, d)) {
        struct mstat *m = &st->modes[r->code_mode % MODES];
        list_push(st, m, vid);
        m->allocatable++;
    }
}

/* Volume sizes follow the unit with the least free space (ties: the lowest index), times N. */
static void resize(struct vstate *st, uint32_t vid)
{
    const struct vrec *r = vr(st, vid);
    const struct cm_codemode *c = cm_codemode_by_id(r->code_mode);
    if (r->nunits == 0 || c == NULL)
        return;
    uint32_t best = r->ustart;
    for (unsigned i = 1; i < r->nunits; i++)
        if (usz(st, r->ustart + i)[SZ_FREE] < usz(st, best)[SZ_FREE])
            best = r->ustart + i;
    const uint64_t *s = usz(st, best);
    uint64_t n = (uint64_t)c->n;
    uint64_t total = sat_mul(s[SZ_TOTAL], n), free = sat_mul(s[SZ_FREE], n),
             used = sat_mul(s[SZ_USED], n);
    if (r->total != total || r->free != free || r->used != used) {
        struct vrec *w = vw(st, vid);
        w->total = total;
        w->free = free;
        w->used = used;
    }
}

static uint32_t intern(struct vstate *st, const char *host)
{
    uint32_t i = (uint32_t)(uintptr_t)cm_smap_get(&st->host_idx, host);
    if (i)
        return i;
    if (st->n_hosts == st->cap_hosts) {
        st->cap_hosts = st->cap_hosts ? st->cap_hosts * 2 : 8;
        st->hosts = cm_realloc(st->hosts, st->cap_hosts * sizeof *st->hosts);
    }
    st->hosts[st->n_hosts++] = cm_strdup(host);
    cm_smap_put(&st->host_idx, host, (void *)(uintptr_t)st->n_hosts);
    return st->n_hosts;
}

static const char *token_host(const struct vstate *st, const struct vrec *r)
{
    return r->token && r->token <= st->n_hosts ? st->hosts[r->token - 1] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* create / destroy                                                                             */

static uint64_t parse_freeze(const struct cm_fsm_settings *cfg)
{
    const char *s = cfg ? cm_settings_default(cfg, "volume_reserve_size") : NULL;
    if (s == NULL)
        return 10485760;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end ? 10485760 : (uint64_t)v;
}

/* volume_mgr_config.allocatable_size when set (-1 is unset), else the freeze threshold. */
static uint64_t alloc_threshold(const struct cm_fsm_settings *cfg, uint64_t freeze)
{
    return cfg && cfg->allocatable_size >= 0 ? (uint64_t)cfg->allocatable_size : freeze;
}

static void *vol_create(struct cm_fsm *fsm)
{
    struct vstate *st = cm_calloc(1, sizeof *st);
    st->cfg = fsm->cfg;
    st->freeze = parse_freeze(fsm->cfg);
    st->alloc_min = alloc_threshold(fsm->cfg, st->freeze);
    cm_map_init(&st->pending);
    cm_smap_init(&st->host_idx);
    return st;
}

static void vol_destroy(void *state)
{
    struct vstate *st = state;
    for (uint32_t i = 0; i < st->n_vp; i++)
        vpage_unref(st->vp[i]);
    for (uint32_t i = 0; i < st->n_up; i++)
        upage_unref(st->up[i]);
    free(st->vp);
    free(st->up);
    free(st->der);
    for (uint32_t i = 0; i < st->n_disks; i++)
        free(st->disks[i].u);
    free(st->disks);
    cm_map_free(&st->pending);
    for (uint32_t i = 0; i < st->n_hosts; i++)
        free(st->hosts[i]);
    free(st->hosts);
    cm_smap_free(&st->host_idx);
    free(st);
}

/* ------------------------------------------------------------------------------------------ */
/* readers                                                                                      */

bool cm_volume_get(struct cm_fsm *fsm, uint32_t vid, struct cm_vol *out)
{
    struct vstate *st = S(fsm);
    const struct vrec *r = vr(st, vid);
    if (r == NULL)
        return false;
    if (out) {
        *out = (struct cm_vol){.vid = vid,
                               .state = r->state,
                               .code_mode = r->code_mode,
                               .status = r->status,
                               .n_units = r->nunits,
                               .health = st->der[vid].health,
                               .total = r->total,
                               .free = r->free,
                               .used = r->used,
                               .create_by = r->create_by,
                               .token_host = token_host(st, r),
                               .expire_ns = r->expire_ns,
                               .task_type = r->task_type,
                               .task_id = r->task_id};
    }
    return true;
}

void cm_volume_unit(struct cm_fsm *fsm, uint32_t vid, unsigned index, struct cm_vunit *out)
{
    struct vstate *st = S(fsm);
    const struct vrec *r = vr(st, vid);
    memset(out, 0, sizeof *out);
    if (r == NULL || index >= r->nunits)
        return;
    const struct umeta *m = um(st, r->ustart + index);
    const uint64_t *s = usz(st, r->ustart + index);
    out->epoch = u_epoch(m);
    out->next_epoch = m->next;
    out->vuid = cm_vuid_make(vid, index, out->epoch);
    out->disk_id = m->disk;
    out->compacting = (m->epoch & U_COMPACT) != 0;
    out->total = s[SZ_TOTAL];
    out->free = s[SZ_FREE];
    out->used = s[SZ_USED];
}

uint32_t cm_volume_next(struct cm_fsm *fsm, uint32_t vid)
{
    struct vstate *st = S(fsm);
    for (uint64_t v = (uint64_t)vid + 1; v <= st->max_vid; v++) {
        const struct vrec *r = vr(st, (uint32_t)v);
        if (r && r->state == CM_VOL_CREATED)
            return (uint32_t)v;
    }
    return 0;
}

uint32_t cm_volume_max_vid(struct cm_fsm *fsm)
{
    return S(fsm)->max_vid;
}

void cm_volume_counts(struct cm_fsm *fsm, unsigned code_mode, struct cm_volume_counts *out)
{
    struct vstate *st = S(fsm);
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < MODES; i++) {
        if (code_mode && i != code_mode)
            continue;
        const struct mstat *m = &st->modes[i];
        out->total += m->total;
        out->idle += m->idle;
        out->allocatable += m->allocatable;
        out->active += m->active;
        out->lock += m->lock;
        out->unlocking += m->unlocking;
        out->pending += m->pending;
        out->aborted += m->aborted;
    }
}

size_t cm_volume_units_on_disk(struct cm_fsm *fsm, uint32_t disk_id)
{
    const struct dent *d = dent_get(S(fsm), disk_id);
    return d ? d->n : 0;
}

uint64_t *cm_volume_disk_units(struct cm_fsm *fsm, uint32_t disk_id, size_t *n)
{
    const struct dent *d = dent_get(S(fsm), disk_id);
    *n = d ? d->n : 0;
    uint64_t *out = cm_malloc((*n + 1) * sizeof *out);
    if (*n)
        memcpy(out, d->u, *n * sizeof *out);
    return out;
}

bool cm_volume_disk_bad(struct cm_fsm *fsm, uint32_t disk_id)
{
    const struct dent *d = dent_get(S(fsm), disk_id);
    return d && d->bad;
}

uint32_t cm_volume_disk_load(struct cm_fsm *fsm, uint32_t disk_id)
{
    const struct dent *d = dent_get(S(fsm), disk_id);
    return d ? d->load : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t *cm_volume_pending(struct cm_fsm *fsm, size_t *n)
{
    struct vstate *st = S(fsm);
    uint32_t *out = cm_malloc((st->pending.n + 1) * sizeof *out);
    size_t k = 0, it = 0;
    uint64_t key;
    while (cm_map_next(&st->pending, &it, &key, NULL))
        out[k++] = (uint32_t)key;
    qsort(out, k, sizeof *out, cmp_u32);
    *n = k;
    return out;
}

uint32_t *cm_volume_tasks(struct cm_fsm *fsm, size_t *n)
{
    struct vstate *st = S(fsm);
    size_t k = 0, cap = 16;
    uint32_t *out = cm_malloc(cap * sizeof *out);
    for (uint32_t v = 1; v <= st->max_vid; v++) {
        const struct vrec *r = vr(st, v);
        if (r == NULL || r->state != CM_VOL_CREATED || r->task_type == CM_TASK_NONE)
            continue;
        if (k == cap)
            out = cm_realloc(out, (cap *= 2) * sizeof *out);
        out[k++] = v;
    }
    *n = k;
    return out;
}

uint32_t *cm_volume_expired(struct cm_fsm *fsm, int64_t now_ns, size_t max, size_t *n)
{
    struct vstate *st = S(fsm);
    size_t k = 0, cap = 16;
    uint32_t *out = cm_malloc(cap * sizeof *out);
    for (uint32_t v = 1; v <= st->max_vid && k < max; v++) {
        const struct vrec *r = vr(st, v);
        if (r == NULL || r->state != CM_VOL_CREATED || r->status != CM_VOL_ACTIVE ||
            r->expire_ns >= now_ns)
            continue;
        if (k == cap)
            out = cm_realloc(out, (cap *= 2) * sizeof *out);
        out[k++] = v;
    }
    *n = k;
    return out;
}

uint64_t cm_volume_freeze(struct cm_fsm *fsm)
{
    return S(fsm)->freeze;
}

uint64_t cm_volume_alloc_threshold(struct cm_fsm *fsm)
{
    return S(fsm)->alloc_min;
}

bool cm_volume_retainable(struct cm_fsm *fsm, uint32_t vid, const char *host, int64_t threshold,
                          int64_t now_ns)
{
    struct vstate *st = S(fsm);
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_CREATED || r->status != CM_VOL_ACTIVE)
        return false;
    const char *h = token_host(st, r);
    return h && strcmp(h, host) == 0 && r->free > st->freeze && st->der[vid].health >= threshold &&
           r->expire_ns > now_ns;
}

/* ------------------------------------------------------------------------------------------ */
/* allocation pre-selection (leader)                                                            */

struct cand {
    uint32_t vid;
    int health;
    uint32_t load; /* highest disk load of its units */
    uint32_t order;
};

static int cmp_cand(const void *a, const void *b, void *arg)
{
    const struct cand *x = a, *y = b;
    int64_t load_limit = *(const int64_t *)arg;
    if (x->health != y->health)
        return x->health > y->health ? -1 : 1;
    if (load_limit > 0) {
        bool ox = x->load > (uint64_t)load_limit, oy = y->load > (uint64_t)load_limit;
        if (ox != oy)
            return ox ? 1 : -1;
        if (x->load != y->load)
            return x->load < y->load ? -1 : 1;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

size_t cm_volume_pick(struct cm_fsm *fsm, unsigned code_mode, size_t count,
                      const uint32_t *excludes, size_t n_excludes, int64_t disk_load_threshold,
                      uint32_t *out, bool *over_load)
{
    struct vstate *st = S(fsm);
    if (over_load)
        *over_load = false;
    if (count == 0 || code_mode >= MODES)
        return 0;
    uint32_t *ex = NULL;
    if (n_excludes) {
        ex = cm_malloc(n_excludes * sizeof *ex);
        memcpy(ex, excludes, n_excludes * sizeof *ex);
        qsort(ex, n_excludes, sizeof *ex, cmp_u32);
    }
    size_t n = 0, cap = 64, healthy = 0;
    struct cand *c = cm_malloc(cap * sizeof *c);
    uint32_t order = 0;
    for (uint32_t v = st->modes[code_mode].head; v; v = st->der[v].next) {
        const struct vder *d = &st->der[v];
        if ((d->flags & D_MARK) || (ex && bsearch(&v, ex, n_excludes, sizeof *ex, cmp_u32) != NULL))
            continue;
        uint32_t load = 0;
        if (disk_load_threshold > 0) {
            const struct vrec *r = vr(st, v);
            for (unsigned i = 0; i < r->nunits; i++) {
                const struct dent *e = dent_get(st, um(st, r->ustart + i)->disk);
                if (e && e->load > load)
                    load = e->load;
            }
        }
        if (n == cap)
            c = cm_realloc(c, (cap *= 2) * sizeof *c);
        c[n++] = (struct cand){v, d->health, load, order++};
        if (d->health == 0 && (disk_load_threshold <= 0 || load <= disk_load_threshold))
            healthy++;
        if (healthy >= count && disk_load_threshold <= 0)
            break; /* nothing later can beat these */
    }
    qsort_r(c, n, sizeof *c, cmp_cand, &disk_load_threshold);
    size_t k = n < count ? n : count;
    for (size_t i = 0; i < k; i++) {
        out[i] = c[i].vid;
        st->der[c[i].vid].flags |= D_MARK;
        if (over_load && disk_load_threshold > 0 && c[i].load > disk_load_threshold)
            *over_load = true;
    }
    free(c);
    free(ex);
    return k;
}

void cm_volume_unmark(struct cm_fsm *fsm, const uint32_t *vids, size_t n)
{
    struct vstate *st = S(fsm);
    for (size_t i = 0; i < n; i++)
        if (vids[i] / VPAGE < st->n_vp)
            st->der[vids[i]].flags &= (uint8_t)~D_MARK;
}

/* ------------------------------------------------------------------------------------------ */
/* command payloads                                                                             */

void cm_volume_enc_pending(struct cm_buf *b, uint32_t vid, uint8_t code_mode, uint64_t chunk_size,
                           const struct cm_vol_place *units, unsigned n)
{
    cm_put_u32(b, vid);
    cm_put_u8(b, code_mode);
    cm_put_u64(b, chunk_size);
    cm_put_u8(b, (uint8_t)n);
    for (unsigned i = 0; i < n; i++) {
        cm_put_u32(b, units[i].disk_id);
        cm_put_u32(b, units[i].epoch);
    }
}

void cm_volume_enc_pending_units(struct cm_buf *b, uint32_t vid, const struct cm_vol_move *m,
                                 unsigned n)
{
    cm_put_u32(b, vid);
    cm_put_u8(b, (uint8_t)n);
    for (unsigned i = 0; i < n; i++) {
        cm_put_u8(b, m[i].index);
        cm_put_u32(b, m[i].old_epoch);
        cm_put_u32(b, m[i].new_epoch);
        cm_put_u32(b, m[i].new_disk);
    }
}

void cm_volume_enc_resolve(struct cm_buf *b, uint32_t vid, const uint32_t *epochs, unsigned n)
{
    cm_put_u32(b, vid);
    cm_put_u8(b, (uint8_t)n);
    for (unsigned i = 0; i < n; i++)
        cm_put_u32(b, epochs[i]);
}

void cm_volume_enc_alloc(struct cm_buf *b, uint8_t code_mode, const char *host, int64_t expire_ns,
                         uint64_t threshold, const uint32_t *vids, size_t n)
{
    cm_put_u8(b, code_mode);
    cm_put_str(b, host);
    cm_put_i64(b, expire_ns);
    cm_put_u64(b, threshold);
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++)
        cm_put_u32(b, vids[i]);
}

void cm_volume_enc_retain(struct cm_buf *b, int64_t expire_ns, uint64_t freeze, int64_t threshold,
                          const struct cm_vol_lease *l, size_t n)
{
    cm_put_i64(b, expire_ns);
    cm_put_u64(b, freeze);
    cm_put_i64(b, threshold);
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_u32(b, l[i].vid);
        cm_put_str(b, l[i].host);
    }
}

void cm_volume_enc_vids(struct cm_buf *b, const uint32_t *vids, size_t n)
{
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++)
        cm_put_u32(b, vids[i]);
}

void cm_volume_enc_vid(struct cm_buf *b, uint32_t vid)
{
    cm_put_u32(b, vid);
}

void cm_volume_enc_task_done(struct cm_buf *b, uint32_t vid, uint8_t type, uint32_t task_id)
{
    cm_put_u32(b, vid);
    cm_put_u8(b, type);
    cm_put_u32(b, task_id);
}

void cm_volume_enc_update_unit(struct cm_buf *b, uint64_t old_vuid, uint64_t new_vuid,
                               uint32_t new_disk)
{
    cm_put_u64(b, old_vuid);
    cm_put_u64(b, new_vuid);
    cm_put_u32(b, new_disk);
}

void cm_volume_enc_chunk_report(struct cm_buf *b, const struct cm_chunk_rec *r, size_t n)
{
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_u64(b, r[i].vuid);
        cm_put_u64(b, r[i].total);
        cm_put_u64(b, r[i].used);
        cm_put_u64(b, r[i].free);
    }
}

void cm_volume_enc_set_compact(struct cm_buf *b, uint64_t vuid, bool compact)
{
    cm_put_u64(b, vuid);
    cm_put_bool(b, compact);
}

void cm_volume_enc_alloc_unit(struct cm_buf *b, uint64_t vuid, uint32_t next_epoch)
{
    cm_put_u64(b, vuid);
    cm_put_u32(b, next_epoch);
}

void cm_volume_enc_disk_health(struct cm_buf *b, const struct cm_disk_mark *m, size_t n)
{
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_u32(b, m[i].disk_id);
        cm_put_bool(b, m[i].bad);
    }
}

void cm_volume_enc_admin_volume(struct cm_buf *b, uint32_t vid, uint8_t status, uint64_t total,
                                uint64_t free, uint64_t used)
{
    cm_put_u32(b, vid);
    cm_put_u8(b, status);
    cm_put_u64(b, total);
    cm_put_u64(b, free);
    cm_put_u64(b, used);
}

void cm_volume_enc_admin_unit(struct cm_buf *b, uint64_t vuid, uint32_t epoch, uint32_t next_epoch,
                              uint32_t disk_id, bool compact)
{
    cm_put_u64(b, vuid);
    cm_put_u32(b, epoch);
    cm_put_u32(b, next_epoch);
    cm_put_u32(b, disk_id);
    cm_put_bool(b, compact);
}

int cm_chunk_report_decode(const void *body, size_t len, struct cm_chunk_rec **out, size_t *n)
{
    const uint8_t *p = body;
    *out = NULL;
    *n = 0;
    if (len < 4)
        return -1;
    uint32_t cnt = cm_be32(p);
    if (cnt > CM_CHUNK_REPORT_MAX || (uint64_t)cnt * CM_CHUNK_REPORT_REC != len - 4)
        return -1;
    struct cm_chunk_rec *r = cm_malloc(((size_t)cnt + 1) * sizeof *r);
    p += 4;
    for (uint32_t i = 0; i < cnt; i++, p += CM_CHUNK_REPORT_REC) {
        /* 33 bytes chunk id text, u64 vuid, u32 disk id, u64 total, used, free, size, u8 status,
         * u8 compacting */
        r[i].vuid = cm_be64(p + 33);
        r[i].total = cm_be64(p + 45);
        r[i].used = cm_be64(p + 53);
        r[i].free = cm_be64(p + 61);
    }
    *out = r;
    *n = cnt;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* apply                                                                                        */

static struct cm_vol_granted *granted_new(size_t cap)
{
    struct cm_vol_granted *g = cm_malloc(sizeof *g + (cap + 1) * sizeof g->vids[0]);
    g->n = 0;
    return g;
}

static bool disk_known(struct cm_fsm *fsm, uint32_t disk)
{
    return disk != 0 && disk < DISK_ID_LIMIT && cm_disk_get(fsm, disk, NULL);
}

/* The created volume of a vuid and its unit index, or NULL. */
static const struct vrec *created_unit(struct vstate *st, uint64_t vuid, unsigned *index)
{
    const struct vrec *r = vr(st, cm_vuid_vid(vuid));
    if (r == NULL || r->state != CM_VOL_CREATED)
        return NULL;
    *index = cm_vuid_index(vuid);
    return *index < r->nunits ? r : NULL;
}

static void set_disk(struct vstate *st, uint32_t vid, unsigned index, uint32_t u, uint32_t disk)
{
    const struct umeta *m = um(st, u);
    uint64_t prefix = cm_vuid_make(vid, index, 0);
    if (m->disk == disk)
        return;
    dindex_del(st, m->disk, prefix);
    umw(st, u)->disk = disk;
    dindex_add(st, disk, prefix);
}

static int apply_pending(struct cm_fsm *fsm, struct vstate *st, const struct cm_cmd *cmd,
                         struct cm_dec *d, struct cm_result *res)
{
    uint32_t vid = cm_get_u32(d);
    uint8_t mode = cm_get_u8(d);
    uint64_t chunk = cm_get_u64(d);
    uint8_t n = cm_get_u8(d);
    struct cm_vol_place u[CM_VOL_UNITS_MAX];
    if (n > CM_VOL_UNITS_MAX)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        u[i].disk_id = cm_get_u32(d);
        u[i].epoch = cm_get_u32(d);
    }
    if (d->err)
        return -1;
    const struct cm_codemode *c = cm_codemode_by_id(mode);
    uint64_t top = cm_scope_current(fsm, "vid");
    if (top < st->max_vid)
        top = st->max_vid;
    if (vid == 0 || vr(st, vid) != NULL || vid > top + VID_STRIDE_MAX || c == NULL ||
        n != cm_codemode_units(c) || chunk == 0)
        return CM_ERR_UNEXPECT;
    for (unsigned i = 0; i < n; i++) {
        if (u[i].epoch < 1 || u[i].epoch > CM_EPOCH_MAX || !disk_known(fsm, u[i].disk_id))
            return CM_ERR_UNEXPECT;
        for (unsigned k = 0; k < i; k++)
            if (u[k].disk_id == u[i].disk_id)
                return CM_ERR_UNEXPECT;
    }
    struct vrec *r = vw(st, vid);
    memset(r, 0, sizeof *r);
    r->state = CM_VOL_PENDING;
    r->code_mode = mode;
    r->status = CM_VOL_IDLE;
    r->nunits = n;
    r->create_by = cmd->node_id;
    r->total = r->free = sat_mul(chunk, (uint64_t)c->n);
    r->ustart = units_alloc(st, n);
    uint32_t start = r->ustart;
    for (unsigned i = 0; i < n; i++) {
        struct umeta *m = umw(st, start + i);
        m->disk = u[i].disk_id;
        m->epoch = m->next = u[i].epoch;
        uint64_t *s = uszw(st, start + i);
        s[SZ_TOTAL] = s[SZ_FREE] = chunk;
        s[SZ_USED] = 0;
        dindex_add(st, u[i].disk_id, cm_vuid_make(vid, i, 0));
    }
    if (vid > st->max_vid)
        st->max_vid = vid;
    cm_map_put(&st->pending, vid, (void *)1);
    cm_scope_raise(fsm, "vid", vid);
    acc(st, vid);
    res->v[0] = vid;
    return 0;
}

static int apply_pending_units(struct cm_fsm *fsm, struct vstate *st, struct cm_dec *d)
{
    uint32_t vid = cm_get_u32(d);
    uint8_t n = cm_get_u8(d);
    struct cm_vol_move m[CM_VOL_UNITS_MAX];
    if (n > CM_VOL_UNITS_MAX)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        m[i].index = cm_get_u8(d);
        m[i].old_epoch = cm_get_u32(d);
        m[i].new_epoch = cm_get_u32(d);
        m[i].new_disk = cm_get_u32(d);
    }
    if (d->err)
        return -1;
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_PENDING)
        return CM_ERR_VOLUME_NOT_EXIST;
    uint32_t disks[CM_VOL_UNITS_MAX];
    for (unsigned i = 0; i < r->nunits; i++)
        disks[i] = um(st, r->ustart + i)->disk;
    for (unsigned i = 0; i < n; i++) {
        if (m[i].index >= r->nunits)
            return CM_ERR_VOLUME_UNIT_NOT_EXIST;
        const struct umeta *cur = um(st, r->ustart + m[i].index);
        if (u_epoch(cur) != m[i].old_epoch || m[i].new_epoch <= m[i].old_epoch ||
            m[i].new_epoch > CM_EPOCH_MAX)
            return CM_ERR_OLD_VUID_NOT_MATCH;
        if (!disk_known(fsm, m[i].new_disk))
            return CM_ERR_DISK_NOT_FOUND;
        for (unsigned k = 0; k < i; k++)
            if (m[k].index == m[i].index)
                return CM_ERR_UNEXPECT;
        disks[m[i].index] = m[i].new_disk;
    }
    for (unsigned i = 0; i < r->nunits; i++)
        for (unsigned k = 0; k < i; k++)
            if (disks[k] == disks[i])
                return CM_ERR_UNEXPECT; /* two units on one disk */
    uint32_t start = r->ustart;
    unacc(st, vid);
    for (unsigned i = 0; i < n; i++) {
        uint32_t u = start + m[i].index;
        set_disk(st, vid, m[i].index, u, m[i].new_disk);
        struct umeta *w = umw(st, u);
        w->epoch = (w->epoch & U_COMPACT) | m[i].new_epoch;
        if (w->next < m[i].new_epoch)
            w->next = m[i].new_epoch;
    }
    acc(st, vid);
    return 0;
}

/* Commit or abort a pending volume whose epochs are those given. */
static int apply_resolve(struct vstate *st, struct cm_dec *d, bool commit)
{
    uint32_t vid = cm_get_u32(d);
    uint8_t n = cm_get_u8(d);
    uint32_t e[CM_VOL_UNITS_MAX];
    if (n > CM_VOL_UNITS_MAX)
        return -1;
    for (unsigned i = 0; i < n; i++)
        e[i] = cm_get_u32(d);
    if (d->err)
        return -1;
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_PENDING)
        return CM_ERR_VOLUME_NOT_EXIST;
    if (n != r->nunits)
        return CM_ERR_OLD_VUID_NOT_MATCH;
    for (unsigned i = 0; i < n; i++)
        if (u_epoch(um(st, r->ustart + i)) != e[i])
            return CM_ERR_OLD_VUID_NOT_MATCH;
    unacc(st, vid);
    struct vrec *w = vw(st, vid);
    cm_map_del(&st->pending, vid);
    if (commit) {
        w->state = CM_VOL_CREATED;
        w->status = CM_VOL_IDLE;
    } else {
        for (unsigned i = 0; i < w->nunits; i++)
            dindex_del(st, um(st, w->ustart + i)->disk, cm_vuid_make(vid, i, 0));
        uint8_t mode = w->code_mode;
        uint64_t by = w->create_by;
        memset(w, 0, sizeof *w);
        w->state = CM_VOL_ABORTED;
        w->code_mode = mode;
        w->create_by = by;
    }
    acc(st, vid);
    return 0;
}

static int apply_alloc(struct vstate *st, const struct cm_cmd *cmd, struct cm_dec *d,
                       struct cm_result *res)
{
    uint8_t mode = cm_get_u8(d);
    char host[CM_VOL_HOST_MAX + 1];
    cm_get_strbuf(d, host, sizeof host);
    int64_t expire = cm_get_i64(d);
    uint64_t threshold = cm_get_u64(d); /* the proposer's allocation threshold */
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 4 || host[0] == '\0')
        return -1;
    struct cm_vol_granted *g = granted_new((size_t)n);
    uint32_t tok = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t vid = cm_get_u32(d);
        const struct vrec *r = vr(st, vid);
        if (r == NULL || r->state != CM_VOL_CREATED || r->code_mode != mode ||
            r->status != CM_VOL_IDLE || r->free <= threshold ||
            st->der[vid].health < min_health(r->code_mode))
            continue;
        /* a vid listed twice: its second time finds it active already */
        if (tok == 0)
            tok = intern(st, host);
        unacc(st, vid);
        struct vrec *w = vw(st, vid);
        w->status = CM_VOL_ACTIVE;
        w->token = tok;
        w->expire_ns = expire;
        acc(st, vid);
        g->vids[g->n++] = vid;
    }
    (void)cmd;
    res->data = g;
    res->free_data = free;
    return 0;
}

static int apply_retain(struct vstate *st, const struct cm_cmd *cmd, struct cm_dec *d,
                        struct cm_result *res)
{
    int64_t expire = cm_get_i64(d);
    uint64_t freeze = cm_get_u64(d);
    int64_t threshold = cm_get_i64(d);
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 5)
        return -1;
    struct cm_vol_granted *g = granted_new((size_t)n);
    for (uint64_t i = 0; i < n && !d->err; i++) {
        uint32_t vid = cm_get_u32(d);
        char host[CM_VOL_HOST_MAX + 1];
        cm_get_strbuf(d, host, sizeof host);
        if (d->err)
            break;
        const struct vrec *r = vr(st, vid);
        if (r == NULL || r->state != CM_VOL_CREATED || r->status != CM_VOL_ACTIVE)
            continue;
        const char *h = token_host(st, r);
        if (h == NULL || strcmp(h, host) != 0 || r->expire_ns <= cmd->ts_ns || r->free <= freeze ||
            st->der[vid].health < threshold)
            continue;
        vw(st, vid)->expire_ns = expire;
        g->vids[g->n++] = vid;
    }
    if (d->err) {
        free(g);
        return -1;
    }
    res->data = g;
    res->free_data = free;
    return 0;
}

static int apply_expire(struct vstate *st, const struct cm_cmd *cmd, struct cm_dec *d,
                        struct cm_result *res)
{
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 4)
        return -1;
    uint64_t done = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t vid = cm_get_u32(d);
        const struct vrec *r = vr(st, vid);
        if (r == NULL || r->state != CM_VOL_CREATED || r->status != CM_VOL_ACTIVE ||
            r->expire_ns >= cmd->ts_ns)
            continue; /* renewed, or changed meanwhile: keep going with the others */
        unacc(st, vid);
        vw(st, vid)->status = CM_VOL_IDLE;
        acc(st, vid);
        done++;
    }
    res->v[0] = done;
    return 0;
}

/* Write a task record of `type`, replacing any other:
 * - lock: idle -> lock (locked already: nothing to do; 902 otherwise);
 * - unlock: lock -> unlocking (idle or unlocking: nothing to do, as CubeFS v3.3 and later
 *   answer, whose scheduler unlocks volumes that may be idle already; 903 when active);
 * - forced unlock (v3.5.1): lock or unlocking -> unlocking with a task whose failed readwrite
 *   calls do not count (idle, or a forced unlock under way: nothing to do; 903 when active).
 * res->v[0] is the new task id, 0 when nothing was written. */
static int apply_task(struct vstate *st, struct cm_dec *d, struct cm_result *res, uint8_t type)
{
    uint32_t vid = cm_get_u32(d);
    if (d->err)
        return -1;
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_CREATED)
        return CM_ERR_VOLUME_NOT_EXIST;
    uint8_t to = type == CM_TASK_LOCK ? CM_VOL_LOCK : CM_VOL_UNLOCKING;
    switch (type) {
    case CM_TASK_LOCK:
        if (r->status == CM_VOL_LOCK)
            return 0;
        if (r->status != CM_VOL_IDLE)
            return CM_ERR_LOCK_NOT_ALLOW;
        break;
    case CM_TASK_UNLOCK:
        if (r->status == CM_VOL_IDLE || r->status == CM_VOL_UNLOCKING)
            return 0;
        if (r->status != CM_VOL_LOCK)
            return CM_ERR_UNLOCK_NOT_ALLOW;
        break;
    default:
        if (r->status == CM_VOL_IDLE ||
            (r->status == CM_VOL_UNLOCKING && r->task_type == CM_TASK_UNLOCK_FORCE))
            return 0;
        if (r->status != CM_VOL_LOCK && r->status != CM_VOL_UNLOCKING)
            return CM_ERR_UNLOCK_NOT_ALLOW;
        break;
    }
    unacc(st, vid);
    struct vrec *w = vw(st, vid);
    w->status = to;
    w->task_type = type;
    w->task_id = (uint32_t)++st->task_seq;
    acc(st, vid);
    res->v[0] = w->task_id;
    return 0;
}

static int apply_task_done(struct vstate *st, struct cm_dec *d, struct cm_result *res)
{
    uint32_t vid = cm_get_u32(d);
    uint8_t type = cm_get_u8(d);
    uint32_t id = cm_get_u32(d);
    if (d->err)
        return -1;
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_CREATED || r->task_type != type || r->task_id != id ||
        type == CM_TASK_NONE)
        return 0; /* replaced by a newer task, or already done: nothing to do */
    unacc(st, vid);
    struct vrec *w = vw(st, vid);
    w->task_type = CM_TASK_NONE;
    w->task_id = 0;
    if ((type == CM_TASK_UNLOCK || type == CM_TASK_UNLOCK_FORCE) && w->status == CM_VOL_UNLOCKING)
        w->status = CM_VOL_IDLE;
    acc(st, vid);
    res->v[0] = 1;
    return 0;
}

static int apply_update_unit(struct cm_fsm *fsm, struct vstate *st, struct cm_dec *d)
{
    uint64_t old = cm_get_u64(d), nu = cm_get_u64(d);
    uint32_t disk = cm_get_u32(d);
    if (d->err)
        return -1;
    unsigned index;
    const struct vrec *r = created_unit(st, old, &index);
    if (r == NULL || cm_vuid_prefix(old) != cm_vuid_prefix(nu))
        return CM_ERR_VOLUME_NOT_EXIST;
    uint32_t vid = cm_vuid_vid(old), u = r->ustart + index;
    const struct umeta *m = um(st, u);
    uint64_t cur = cm_vuid_make(vid, index, u_epoch(m));
    if (cur == nu)
        return 0; /* already switched */
    if (cur != old)
        return CM_ERR_OLD_VUID_NOT_MATCH;
    if (m->next != cm_vuid_epoch(nu) || cm_vuid_epoch(nu) <= u_epoch(m))
        return CM_ERR_NEW_VUID_NOT_MATCH;
    if (!disk_known(fsm, disk))
        return CM_ERR_DISK_NOT_FOUND;
    unacc(st, vid);
    set_disk(st, vid, index, u, disk);
    umw(st, u)->epoch = cm_vuid_epoch(nu); /* the new chunk is not compacting */
    acc(st, vid);
    return 0;
}

static int apply_chunk_report(struct vstate *st, struct cm_dec *d, struct cm_result *res)
{
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 32)
        return -1;
    uint64_t done = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t vuid = cm_get_u64(d), total = cm_get_u64(d), used = cm_get_u64(d),
                 free_ = cm_get_u64(d);
        unsigned index;
        const struct vrec *r = created_unit(st, vuid, &index);
        if (r == NULL)
            continue;
        uint32_t vid = cm_vuid_vid(vuid), u = r->ustart + index;
        if (cm_vuid_make(vid, index, u_epoch(um(st, u))) != vuid)
            continue; /* an old or a future chunk of that unit */
        unacc(st, vid);
        uint64_t *s = uszw(st, u);
        s[SZ_TOTAL] = total;
        s[SZ_USED] = used;
        s[SZ_FREE] = free_;
        resize(st, vid);
        acc(st, vid);
        done++;
    }
    res->v[0] = done;
    return 0;
}

static int apply_set_compact(struct vstate *st, struct cm_dec *d)
{
    uint64_t vuid = cm_get_u64(d);
    bool compact = cm_get_bool(d);
    if (d->err)
        return -1;
    unsigned index;
    const struct vrec *r = created_unit(st, vuid, &index);
    if (r == NULL)
        return vr(st, cm_vuid_vid(vuid)) ? CM_ERR_VOLUME_UNIT_NOT_EXIST : CM_ERR_VOLUME_NOT_EXIST;
    uint32_t vid = cm_vuid_vid(vuid), u = r->ustart + index;
    const struct umeta *m = um(st, u);
    if (cm_vuid_make(vid, index, u_epoch(m)) != vuid)
        return CM_ERR_VOLUME_UNIT_NOT_EXIST;
    if (((m->epoch & U_COMPACT) != 0) == compact)
        return 0;
    unacc(st, vid);
    struct umeta *w = umw(st, u);
    w->epoch = compact ? (w->epoch | U_COMPACT) : (w->epoch & ~U_COMPACT);
    acc(st, vid);
    return 0;
}

static int apply_alloc_unit(struct vstate *st, struct cm_dec *d, struct cm_result *res)
{
    uint64_t vuid = cm_get_u64(d);
    uint32_t next = cm_get_u32(d);
    if (d->err)
        return -1;
    unsigned index;
    const struct vrec *r = created_unit(st, vuid, &index);
    if (r == NULL)
        return CM_ERR_VOLUME_NOT_EXIST;
    uint32_t u = r->ustart + index;
    if (next <= um(st, u)->next || next > CM_EPOCH_MAX)
        return CM_ERR_CONCURRENT_ALLOC_UNIT;
    umw(st, u)->next = next;
    res->v[0] = next;
    return 0;
}

static int apply_disk_health(struct cm_fsm *fsm, struct vstate *st, struct cm_dec *d,
                             struct cm_result *res)
{
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 5)
        return -1;
    uint64_t changed = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t disk = cm_get_u32(d);
        bool bad = cm_get_bool(d);
        if (d->err)
            return -1;
        if (!disk_known(fsm, disk) || (dent_get(st, disk) ? dent_get(st, disk)->bad : 0) == bad)
            continue;
        dent(st, disk); /* unacc/acc below do not grow the table: index them by disk id */
        for (uint32_t k = 0; k < st->disks[disk].n; k++)
            unacc(st, cm_vuid_vid(st->disks[disk].u[k]));
        st->disks[disk].bad = bad;
        for (uint32_t k = 0; k < st->disks[disk].n; k++)
            acc(st, cm_vuid_vid(st->disks[disk].u[k]));
        changed++;
    }
    res->v[0] = changed;
    return 0;
}

static int apply_admin_volume(struct vstate *st, struct cm_dec *d)
{
    uint32_t vid = cm_get_u32(d);
    uint8_t status = cm_get_u8(d);
    uint64_t total = cm_get_u64(d), free_ = cm_get_u64(d), used = cm_get_u64(d);
    if (d->err)
        return -1;
    const struct vrec *r = vr(st, vid);
    if (r == NULL || r->state != CM_VOL_CREATED)
        return CM_ERR_VOLUME_NOT_EXIST;
    unacc(st, vid);
    struct vrec *w = vw(st, vid);
    if (status >= CM_VOL_IDLE && status <= CM_VOL_UNLOCKING)
        w->status = status;
    if (total)
        w->total = total;
    if (free_)
        w->free = free_;
    if (used)
        w->used = used;
    acc(st, vid);
    return 0;
}

static int apply_admin_unit(struct cm_fsm *fsm, struct vstate *st, struct cm_dec *d)
{
    uint64_t vuid = cm_get_u64(d);
    uint32_t epoch = cm_get_u32(d), next = cm_get_u32(d), disk = cm_get_u32(d);
    bool compact = cm_get_bool(d);
    if (d->err)
        return -1;
    unsigned index;
    const struct vrec *r = created_unit(st, vuid, &index);
    if (r == NULL)
        return vr(st, cm_vuid_vid(vuid)) ? CM_ERR_VOLUME_UNIT_NOT_EXIST : CM_ERR_VOLUME_NOT_EXIST;
    if (epoch < 1 || epoch > CM_EPOCH_MAX || next < epoch || next > CM_EPOCH_MAX)
        return CM_ERR_ILLEGAL_ARGUMENTS;
    if (!disk_known(fsm, disk))
        return CM_ERR_DISK_NOT_FOUND;
    uint32_t vid = cm_vuid_vid(vuid), u = r->ustart + index;
    unacc(st, vid);
    set_disk(st, vid, index, u, disk);
    struct umeta *w = umw(st, u);
    w->epoch = epoch | (compact ? U_COMPACT : 0);
    w->next = next;
    acc(st, vid);
    return 0;
}

static void vol_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                      struct cm_result *res)
{
    struct vstate *st = state;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    int rc;
    switch (cmd->op) {
    case CM_VOL_OP_PENDING:
        rc = apply_pending(fsm, st, cmd, &d, res);
        break;
    case CM_VOL_OP_PENDING_UNITS:
        rc = apply_pending_units(fsm, st, &d);
        break;
    case CM_VOL_OP_COMMIT:
        rc = apply_resolve(st, &d, true);
        break;
    case CM_VOL_OP_ABORT:
        rc = apply_resolve(st, &d, false);
        break;
    case CM_VOL_OP_ALLOC:
        rc = apply_alloc(st, cmd, &d, res);
        break;
    case CM_VOL_OP_RETAIN:
        rc = apply_retain(st, cmd, &d, res);
        break;
    case CM_VOL_OP_EXPIRE:
        rc = apply_expire(st, cmd, &d, res);
        break;
    case CM_VOL_OP_LOCK:
        rc = apply_task(st, &d, res, CM_TASK_LOCK);
        break;
    case CM_VOL_OP_UNLOCK:
        rc = apply_task(st, &d, res, CM_TASK_UNLOCK);
        break;
    case CM_VOL_OP_UNLOCK_FORCE:
        rc = apply_task(st, &d, res, CM_TASK_UNLOCK_FORCE);
        break;
    case CM_VOL_OP_TASK_DONE:
        rc = apply_task_done(st, &d, res);
        break;
    case CM_VOL_OP_UPDATE_UNIT:
        rc = apply_update_unit(fsm, st, &d);
        break;
    case CM_VOL_OP_CHUNK_REPORT:
        rc = apply_chunk_report(st, &d, res);
        break;
    case CM_VOL_OP_SET_COMPACT:
        rc = apply_set_compact(st, &d);
        break;
    case CM_VOL_OP_ALLOC_UNIT:
        rc = apply_alloc_unit(st, &d, res);
        break;
    case CM_VOL_OP_DISK_HEALTH:
        rc = apply_disk_health(fsm, st, &d, res);
        break;
    case CM_VOL_OP_ADMIN_VOLUME:
        rc = apply_admin_volume(st, &d);
        break;
    case CM_VOL_OP_ADMIN_UNIT:
        rc = apply_admin_unit(fsm, st, &d);
        break;
    default:
        rc = -1;
    }
    if (rc == -1)
        CM_ERROR("volume", "ignoring malformed volume command op %u (%zu bytes)", cmd->op,
                 cmd->len);
    else if (rc != 0)
        CM_DEBUG("volume", "volume command op %u changed nothing (code %d)", cmd->op, rc);
    if (rc != 0)
        res->code = rc;
}

/* ------------------------------------------------------------------------------------------ */
/* snapshot                                                                                     */

struct vsnap {
    struct vpage **vp;
    uint32_t n_vp;
    struct upage **up;
    uint32_t n_up;
    uint32_t max_vid;
    uint64_t task_seq;
    uint32_t *bad;
    size_t n_bad;
    char **hosts; /* copies */
    uint32_t n_hosts;
};

static void *vol_snap_take(void *state)
{
    struct vstate *st = state;
    struct vsnap *c = cm_calloc(1, sizeof *c);
    c->n_vp = st->n_vp;
    c->vp = cm_malloc((c->n_vp + 1) * sizeof *c->vp);
    for (uint32_t i = 0; i < c->n_vp; i++) {
        c->vp[i] = st->vp[i];
        atomic_fetch_add_explicit(&c->vp[i]->refs, 1, memory_order_relaxed);
    }
    c->n_up = st->n_up;
    c->up = cm_malloc((c->n_up + 1) * sizeof *c->up);
    for (uint32_t i = 0; i < c->n_up; i++) {
        c->up[i] = st->up[i];
        atomic_fetch_add_explicit(&c->up[i]->refs, 1, memory_order_relaxed);
    }
    c->max_vid = st->max_vid;
    c->task_seq = st->task_seq;
    size_t nb = 0;
    for (uint32_t i = 0; i < st->n_disks; i++)
        nb += st->disks[i].bad;
    c->bad = cm_malloc((nb + 1) * sizeof *c->bad);
    for (uint32_t i = 0; i < st->n_disks; i++)
        if (st->disks[i].bad)
            c->bad[c->n_bad++] = i;
    c->n_hosts = st->n_hosts;
    c->hosts = cm_malloc((c->n_hosts + 1) * sizeof *c->hosts);
    for (uint32_t i = 0; i < c->n_hosts; i++)
        c->hosts[i] = cm_strdup(st->hosts[i]);
    return c;
}

/* Zigzag over wrapping differences: exact for every pair of uint64 values. */
static uint64_t zz(uint64_t a, uint64_t b)
{
    uint64_t d = a - b;
    return (d << 1) ^ (0 - (d >> 63));
}

static uint64_t unzz(uint64_t z, uint64_t b)
{
    return b + ((z >> 1) ^ (0 - (z & 1)));
}

static void vol_snap_write(void *taken, struct cm_buf *out)
{
    struct vsnap *c = taken;
    size_t records = 0, units = 0;
    for (uint32_t v = 1; v <= c->max_vid; v++) {
        const struct vrec *r = &c->vp[v / VPAGE]->r[v % VPAGE];
        records += r->state != CM_VOL_EMPTY;
        units += r->nunits;
    }
    cm_buf_reserve(out, 32 + 5 * c->n_bad + records * 48 + units * 16);
    cm_put_u64(out, c->task_seq);
    cm_put_uvar(out, c->n_bad);
    for (size_t i = 0; i < c->n_bad; i++)
        cm_put_u32(out, c->bad[i]);
    cm_put_uvar(out, records);
    for (uint32_t v = 1; v <= c->max_vid; v++) {
        const struct vrec *r = &c->vp[v / VPAGE]->r[v % VPAGE];
        if (r->state == CM_VOL_EMPTY)
            continue;
        cm_put_u32(out, v);
        cm_put_u8(out, r->state);
        cm_put_u8(out, r->code_mode);
        cm_put_uvar(out, r->create_by);
        if (r->state == CM_VOL_ABORTED)
            continue;
        cm_put_u8(out, r->status);
        cm_put_uvar(out, r->total);
        cm_put_uvar(out, r->free);
        cm_put_uvar(out, r->used);
        cm_put_i64(out, r->expire_ns);
        cm_put_str(out, r->token && r->token <= c->n_hosts ? c->hosts[r->token - 1] : "");
        cm_put_u8(out, r->task_type);
        cm_put_u32(out, r->task_id);
        cm_put_u8(out, r->nunits);
        uint64_t prev_total = 0;
        for (unsigned i = 0; i < r->nunits; i++) {
            uint32_t u = r->ustart + i;
            const struct umeta *m = &c->up[u / UPAGE]->m[u % UPAGE];
            const uint64_t *s = c->up[u / UPAGE]->sz[u % UPAGE];
            cm_put_uvar(out, m->epoch & U_EPOCH);
            cm_put_uvar(out, m->next - (m->epoch & U_EPOCH));
            cm_put_uvar(out, m->disk);
            cm_put_u8(out, (m->epoch & U_COMPACT) ? 1 : 0);
            cm_put_uvar(out, zz(s[SZ_TOTAL], prev_total));
            cm_put_uvar(out, zz(s[SZ_FREE], s[SZ_TOTAL]));
            cm_put_uvar(out, zz(s[SZ_USED], s[SZ_TOTAL] - s[SZ_FREE]));
            prev_total = s[SZ_TOTAL];
        }
    }
}

static void vol_snap_drop(void *taken)
{
    struct vsnap *c = taken;
    for (uint32_t i = 0; i < c->n_vp; i++)
        vpage_unref(c->vp[i]);
    for (uint32_t i = 0; i < c->n_up; i++)
        upage_unref(c->up[i]);
    free(c->vp);
    free(c->up);
    free(c->bad);
    for (uint32_t i = 0; i < c->n_hosts; i++)
        free(c->hosts[i]);
    free(c->hosts);
    free(c);
    malloc_trim(0);
}

/* Recompute every derived structure from the records (load, and the self-check). */
static void rebuild(struct vstate *st)
{
    for (uint32_t i = 0; i < st->n_disks; i++) {
        free(st->disks[i].u);
        st->disks[i].u = NULL;
        st->disks[i].n = st->disks[i].cap = 0;
        st->disks[i].load = 0;
    }
    memset(st->modes, 0, sizeof st->modes);
    if (st->der)
        memset(st->der, 0, (size_t)st->n_vp * VPAGE * sizeof *st->der);
    cm_map_free(&st->pending);
    cm_map_init(&st->pending);
    for (uint32_t v = 1; v <= st->max_vid; v++) {
        const struct vrec *r = vr(st, v);
        if (r == NULL)
            continue;
        for (unsigned i = 0; i < r->nunits; i++)
            dindex_add(st, um(st, r->ustart + i)->disk, cm_vuid_make(v, i, 0));
        if (r->state == CM_VOL_PENDING)
            cm_map_put(&st->pending, v, (void *)1);
    }
    /* ascending vids pushed to the front: the list reads newest first */
    for (uint32_t v = 1; v <= st->max_vid; v++)
        acc(st, v);
}

static int vol_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                         size_t errlen)
{
    (void)fsm;
    struct vstate *st = state;
    st->task_seq = cm_get_u64(d);
    uint64_t nb = cm_get_uvar(d);
    if (d->err || nb > cm_dec_left(d) / 4)
        return -1;
    uint32_t prev = 0;
    for (uint64_t i = 0; i < nb; i++) {
        uint32_t disk = cm_get_u32(d);
        if (d->err || disk <= prev || disk >= DISK_ID_LIMIT) {
            snprintf(err, errlen, "bad disk id %u in the bad-disk set", disk);
            return -1;
        }
        prev = disk;
        dent(st, disk)->bad = 1;
    }
    uint64_t n = cm_get_uvar(d);
    if (d->err || n > cm_dec_left(d) / 7)
        return -1;
    uint32_t last = 0;
    char host[CM_VOL_HOST_MAX + 1];
    for (uint64_t i = 0; i < n && !d->err; i++) {
        uint32_t vid = cm_get_u32(d);
        uint8_t state_ = cm_get_u8(d), mode = cm_get_u8(d);
        uint64_t by = cm_get_uvar(d);
        const struct cm_codemode *c = cm_codemode_by_id(mode);
        if (d->err)
            break;
        if (vid <= last || c == NULL || state_ < CM_VOL_PENDING || state_ > CM_VOL_ABORTED ||
            (uint64_t)vid > (uint64_t)last + VID_STRIDE_MAX) {
            snprintf(err, errlen, "volume record %" PRIu64 " (vid %u) is invalid", i, vid);
            return -1;
        }
        last = vid;
        struct vrec *r = vw(st, vid);
        memset(r, 0, sizeof *r);
        r->state = state_;
        r->code_mode = mode;
        r->create_by = by;
        st->max_vid = vid;
        if (state_ == CM_VOL_ABORTED)
            continue;
        r->status = cm_get_u8(d);
        r->total = cm_get_uvar(d);
        r->free = cm_get_uvar(d);
        r->used = cm_get_uvar(d);
        r->expire_ns = cm_get_i64(d);
        cm_get_strbuf(d, host, sizeof host);
        r->task_type = cm_get_u8(d);
        r->task_id = cm_get_u32(d);
        uint8_t nu = cm_get_u8(d);
        if (d->err)
            break;
        if (r->status < CM_VOL_IDLE || r->status > CM_VOL_UNLOCKING ||
            r->task_type > CM_TASK_UNLOCK_FORCE || nu != cm_codemode_units(c)) {
            snprintf(err, errlen, "volume %u has invalid fields", vid);
            return -1;
        }
        r->token = host[0] ? intern(st, host) : 0;
        r->nunits = nu;
        r->ustart = units_alloc(st, nu);
        uint32_t start = r->ustart;
        uint64_t prev_total = 0;
        for (unsigned k = 0; k < nu; k++) {
            uint64_t epoch = cm_get_uvar(d), dn = cm_get_uvar(d), disk = cm_get_uvar(d);
            uint8_t compact = cm_get_u8(d);
            uint64_t total = unzz(cm_get_uvar(d), prev_total);
            uint64_t free_ = unzz(cm_get_uvar(d), total);
            uint64_t used = unzz(cm_get_uvar(d), total - free_);
            prev_total = total;
            if (d->err)
                break;
            if (epoch < 1 || epoch > CM_EPOCH_MAX || dn > CM_EPOCH_MAX - epoch ||
                disk >= DISK_ID_LIMIT || compact > 1) {
                snprintf(err, errlen, "unit %u of volume %u is invalid", k, vid);
                return -1;
            }
            struct umeta *m = umw(st, start + k);
            m->disk = (uint32_t)disk;
            m->epoch = (uint32_t)epoch | (compact ? U_COMPACT : 0);
            m->next = (uint32_t)(epoch + dn);
            uint64_t *s = uszw(st, start + k);
            s[SZ_TOTAL] = total;
            s[SZ_FREE] = free_;
            s[SZ_USED] = used;
        }
    }
    if (d->err)
        return -1;
    if (st->task_seq > UINT32_MAX) {
        snprintf(err, errlen, "task counter out of range");
        return -1;
    }
    rebuild(st);
    return 0;
}

/* A forced unlock (CubeFS v3.5.1) is of format 2: a format-1 node would skip it and keep the
 * volume unlocking while the others make it idle. Every other volume command is of format 1. */
static uint8_t vol_cmd_version(const struct cm_cmd *cmd)
{
    return cmd->op == CM_VOL_OP_UNLOCK_FORCE ? 2 : CM_CMD_VERSION;
}

const struct cm_module cm_mod_volume = {
    .id = CM_MOD_VOLUME,
    .cmd_version = vol_cmd_version,
    .name = "volume",
    .create = vol_create,
    .destroy = vol_destroy,
    .apply = vol_apply,
    .snap_take = vol_snap_take,
    .snap_write = vol_snap_write,
    .snap_drop = vol_snap_drop,
    .snap_load = vol_snap_load,
};

/* ------------------------------------------------------------------------------------------ */
/* self-check (tests)                                                                           */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
            rc = -1;                                                                               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

int cm_volume_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen)
{
    struct vstate *st = S(fsm);
    int rc = 0;
    /* a second state with the same records, rebuilt from scratch */
    struct vstate *w = cm_calloc(1, sizeof *w);
    w->cfg = st->cfg;
    w->freeze = st->freeze;
    w->alloc_min = st->alloc_min;
    cm_map_init(&w->pending);
    cm_smap_init(&w->host_idx);
    w->n_vp = st->n_vp;
    w->vp = cm_malloc((w->n_vp + 1) * sizeof *w->vp);
    for (uint32_t i = 0; i < w->n_vp; i++) {
        w->vp[i] = st->vp[i];
        atomic_fetch_add(&w->vp[i]->refs, 1);
    }
    w->n_up = st->n_up;
    w->up = cm_malloc((w->n_up + 1) * sizeof *w->up);
    for (uint32_t i = 0; i < w->n_up; i++) {
        w->up[i] = st->up[i];
        atomic_fetch_add(&w->up[i]->refs, 1);
    }
    w->n_units = st->n_units;
    w->max_vid = st->max_vid;
    w->der = cm_calloc((size_t)w->n_vp * VPAGE + 1, sizeof *w->der);
    for (uint32_t i = 0; i < st->n_disks; i++)
        if (st->disks[i].bad)
            dent(w, i)->bad = 1;
    rebuild(w);
    for (uint32_t i = 0; i < MODES; i++) {
        const struct mstat *a = &st->modes[i], *b = &w->modes[i];
        CHECK(a->total == b->total && a->idle == b->idle && a->active == b->active &&
                  a->lock == b->lock && a->unlocking == b->unlocking &&
                  a->allocatable == b->allocatable && a->pending == b->pending &&
                  a->aborted == b->aborted,
              "counters of code mode %u differ", i);
        int64_t len = 0;
        for (uint32_t v = a->head; v; v = st->der[v].next) {
            CHECK(allocatable(st, vr(st, v), &st->der[v]), "vid %u listed but not allocatable", v);
            CHECK(vr(st, v)->code_mode == i, "vid %u in the list of code mode %u", v, i);
            len++;
            CHECK(len <= a->allocatable, "allocatable list of code mode %u is too long", i);
        }
        CHECK(len == a->allocatable, "allocatable list of code mode %u has %lld, counted %lld", i,
              (long long)len, (long long)a->allocatable);
    }
    for (uint32_t v = 1; v <= st->max_vid; v++) {
        const struct vrec *r = vr(st, v);
        if (r == NULL)
            continue;
        CHECK(st->der[v].flags & D_ACC, "vid %u not accounted", v);
        CHECK(st->der[v].health == w->der[v].health, "vid %u health %d, want %d", v,
              st->der[v].health, w->der[v].health);
        CHECK(((st->der[v].flags & D_LIST) != 0) == allocatable(st, r, &st->der[v]),
              "vid %u list membership wrong", v);
        CHECK((cm_map_get(&st->pending, v) != NULL) == (r->state == CM_VOL_PENDING),
              "vid %u pending set wrong", v);
        if (r->state == CM_VOL_CREATED) {
            const struct cm_codemode *c = cm_codemode_by_id(r->code_mode);
            CHECK(c && r->nunits == cm_codemode_units(c), "vid %u has %u units", v, r->nunits);
        }
        for (unsigned i = 0; i < r->nunits; i++) {
            const struct umeta *m = um(st, r->ustart + i);
            CHECK(u_epoch(m) >= 1 && u_epoch(m) <= m->next, "unit %u of vid %u epochs %u/%u", i, v,
                  u_epoch(m), m->next);
        }
    }
    CHECK(st->pending.n == w->pending.n, "pending set has %zu, want %zu", st->pending.n,
          w->pending.n);
    uint32_t nd = st->n_disks > w->n_disks ? st->n_disks : w->n_disks;
    for (uint32_t i = 0; i < nd; i++) {
        const struct dent *a = dent_get(st, i), *b = dent_get(w, i);
        uint32_t an = a ? a->n : 0, bn = b ? b->n : 0;
        CHECK(an == bn, "disk %u has %u units indexed, want %u", i, an, bn);
        CHECK(an == 0 || memcmp(a->u, b->u, an * sizeof *a->u) == 0, "disk %u unit index differs",
              i);
        CHECK((a ? a->load : 0) == (b ? b->load : 0), "disk %u load %u, want %u", i,
              a ? a->load : 0, b ? b->load : 0);
    }
out:
    vol_destroy(w);
    return rc;
}
