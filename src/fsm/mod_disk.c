/* Disk module; see mod_disk.h for the model and its invariants. */
#include "mod_disk.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/map.h"
#include "codes.h"
#include "codemode.h"
#include "mod_cluster.h"
#include "mod_node.h"
#include "mod_scope.h"

#define NS_PER_S 1000000000LL

/* ------------------------------------------------------------------------------------------ */
/* sorted sets of disk ids                                                                    */

struct idset {
    uint32_t *v;
    uint32_t n, cap;
};

/* First position whose id is greater than x. */
static uint32_t idset_after(const struct idset *s, uint32_t x)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->v[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void idset_add(struct idset *s, uint32_t x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->v = cm_realloc(s->v, s->cap * sizeof *s->v);
    }
    if (s->n == 0 || s->v[s->n - 1] < x) { /* ids mostly arrive in ascending order */
        s->v[s->n++] = x;
        return;
    }
    uint32_t i = idset_after(s, x);
    if (i > 0 && s->v[i - 1] == x)
        return;
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
    s->v[i] = x;
    s->n++;
}

static void idset_del(struct idset *s, uint32_t x)
{
    uint32_t i = idset_after(s, x);
    if (i == 0 || s->v[i - 1] != x)
        return;
    memmove(s->v + i - 1, s->v + i, (s->n - i) * sizeof *s->v);
    s->n--;
}

static void idset_free(struct idset *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Fenwick trees of weights (appendable)                                                       */

struct fen {
    int64_t *t;      /* 1-based */
    uint32_t *owner; /* position -> node index */
    uint32_t n, cap;
    int64_t total;
};

static void fen_add(struct fen *f, uint32_t pos, int64_t d)
{
    f->total += d;
    for (uint32_t k = pos + 1; k <= f->n; k += k & (~k + 1))
        f->t[k] += d;
}

/* Append an element of weight 0 owned by `owner`; returns its position. */
static uint32_t fen_append(struct fen *f, uint32_t owner)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->t = cm_realloc(f->t, (f->cap + 1) * sizeof *f->t);
        f->owner = cm_realloc(f->owner, f->cap * sizeof *f->owner);
        f->t[0] = 0;
    }
    uint32_t i = ++f->n;
    int64_t s = 0;
    uint32_t low = i & (~i + 1);
    for (uint32_t j = 1; j < low; j <<= 1)
        s += f->t[i - j];
    f->t[i] = s;
    f->owner[i - 1] = owner;
    return i - 1;
}

/* Position of the element that covers r, for 0 <= r < total. */
static uint32_t fen_find(const struct fen *f, int64_t r)
{
    uint32_t pos = 0, step = 1;
    while (step * 2 <= f->n)
        step *= 2;
    for (; step; step >>= 1)
        if (pos + step <= f->n && f->t[pos + step] <= r) {
            pos += step;
            r -= f->t[pos];
        }
    return pos < f->n ? pos : f->n - 1;
}

/* Weight of one element. */
static int64_t fen_get(const struct fen *f, uint32_t pos)
{
    uint32_t i = pos + 1;
    int64_t v = f->t[i];
    uint32_t low = i & (~i + 1);
    for (uint32_t j = 1; j < low; j <<= 1)
        v -= f->t[i - j];
    return v;
}

static void fen_free(struct fen *f)
{
    free(f->t);
    free(f->owner);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------------------------ */
/* state                                                                                       */

struct inode { /* an IDC */
    char *name;
    struct idset disks;
    struct fen hosts; /* host weights */
    struct fen racks; /* rack weights (sum of their hosts) */
    int64_t total, total_chunk, total_free_chunk, available, readonly, expired;
    int64_t broken, repairing, repaired, dropped, dropping;
    uint64_t space, free_space; /* size and free of available disks (wrap, never overflow) */
    uint64_t ro_space, ro_free; /* size and free of normal disks that are readonly or dropping */
    int64_t live_hosts;         /* hosts with at least one writable disk */
};

struct rnode { /* a rack within an IDC */
    char *name;
    uint32_t idc;
    uint32_t pos; /* in the IDC's rack tree */
    struct idset disks;
    struct fen hosts;
};

struct hostset { /* a host string: the disks of one blobnode */
    char *name;
    struct idset disks;
};

struct hnode {          /* a host within an IDC: the placement unit */
    uint32_t idc, rack; /* rack: the rack of the host's first disk in this IDC */
    uint32_t pos_idc, pos_rack;
    struct hostset *hs;
    struct idset disks;
    int64_t nwritable;
    uint64_t wfree; /* summed free bytes of the writable disks */
    int64_t weight;
};

struct disk {
    uint32_t id, cluster_id;
    uint32_t idc, rack, host; /* inode, rnode, hnode */
    uint8_t status;
    bool readonly, dropping;
    bool live;  /* derived: lease not ended as of the last advance */
    char *strs; /* path \0 create_time \0 last_update_time \0 */
    uint16_t ctime_off, utime_off;
    int64_t used, free, size, max_chunk, free_chunk, used_chunk;
    int64_t expire_ns, last_expire_ns;
    int64_t pending; /* derived, leader-local: chunks charged since the last heartbeat */
    int64_t weight;  /* derived: placement weight counted in the host */
};

struct hent {
    int64_t at;
    uint32_t id;
};

/* The host+path filter: open addressing over disk ids, hashed and compared by the disks' own
 * host and path strings (no key copies: 4 bytes a slot). */
struct hptab {
    uint32_t *slot; /* 0: empty */
    size_t cap;     /* power of two or 0 */
    size_t n;
};

struct disk_state {
    uint64_t bytes; /* strings + overhead of every disk (quota accounting) */
    const struct cm_fsm_settings *cfg;
    struct disk **by_id;
    size_t cap; /* by_id has cap slots */
    size_t n;
    struct idset status[6];
    struct idset dropping;
    struct hptab hostpath;   /* (host, path) -> disk id */
    struct cm_smap idc_idx;  /* name -> index + 1 */
    struct cm_smap rack_idx; /* "<idc>:<rack>" -> index + 1 */
    struct cm_smap host_idx; /* "<idc>:<host>" -> index + 1 */
    struct cm_smap hostsets; /* host -> struct hostset */
    struct inode *idcs;
    uint32_t n_idcs, cap_idcs;
    struct rnode *racks;
    uint32_t n_racks, cap_racks;
    struct hnode *hosts;
    uint32_t n_hosts, cap_hosts;
    struct hent *heap; /* lease ends of live disks (lazy: stale entries are skipped) */
    size_t hn, hcap;
    int64_t adv_now;
    int64_t tolerate;
};

static struct disk_state *S(struct cm_fsm *fsm)
{
    return fsm->mods[CM_MOD_DISK];
}

static struct disk *get(struct disk_state *st, uint32_t id)
{
    return id < st->cap ? st->by_id[id] : NULL;
}

static const char *d_path(const struct disk *d)
{
    return d->strs;
}
static const char *d_ctime(const struct disk *d)
{
    return d->strs + d->ctime_off;
}
static const char *d_utime(const struct disk *d)
{
    return d->strs + d->utime_off;
}

static bool available(const struct disk *d)
{
    return d->status == CM_DISK_NORMAL && !d->readonly && !d->dropping;
}

static bool terminal(uint8_t status)
{
    return status == CM_DISK_REPAIRED || status == CM_DISK_DROPPED;
}

static uint32_t smap_idx(const struct cm_smap *m, const char *key)
{
    return (uint32_t)(uintptr_t)cm_smap_get(m, key);
}

/* ------------------------------------------------------------------------------------------ */
/* status rules                                                                                */

static int status_seq(uint8_t s)
{
    return s >= CM_DISK_NORMAL && s <= CM_DISK_DROPPED ? s - 1 : -1;
}

bool cm_disk_transition_ok(uint8_t from, uint8_t to)
{
    int a = status_seq(from), b = status_seq(to);
    if (a < 0 || b < 0 || b <= a)
        return false;
    return b - a == 1 || to == CM_DISK_DROPPED;
}

const char *cm_disk_status_name(uint8_t status)
{
    static const char *const names[] = {"", "normal", "broken", "repairing", "repaired", "dropped"};
    return status >= 1 && status <= 5 ? names[status] : "invalid";
}

/* ------------------------------------------------------------------------------------------ */
/* nodes of the placement index                                                                */

static uint32_t idc_get(struct disk_state *st, const char *name)
{
    uint32_t i = smap_idx(&st->idc_idx, name);
    if (i)
        return i - 1;
    if (st->n_idcs == st->cap_idcs) {
        st->cap_idcs = st->cap_idcs ? st->cap_idcs * 2 : 4;
        st->idcs = cm_realloc(st->idcs, st->cap_idcs * sizeof *st->idcs);
    }
    struct inode *I = &st->idcs[st->n_idcs];
    memset(I, 0, sizeof *I);
    I->name = cm_strdup(name);
    cm_smap_put(&st->idc_idx, name, (void *)(uintptr_t)(st->n_idcs + 1));
    return st->n_idcs++;
}

static void node_key(char *key, size_t cap, uint32_t idc, const char *name)
{
    snprintf(key, cap, "%u:%s", idc, name);
}

static uint32_t rack_get(struct disk_state *st, uint32_t idc, const char *name)
{
    char key[CM_DISK_RACK_MAX + 16];
    node_key(key, sizeof key, idc, name);
    uint32_t i = smap_idx(&st->rack_idx, key);
    if (i)
        return i - 1;
    if (st->n_racks == st->cap_racks) {
        st->cap_racks = st->cap_racks ? st->cap_racks * 2 : 8;
        st->racks = cm_realloc(st->racks, st->cap_racks * sizeof *st->racks);
    }
    uint32_t r = st->n_racks++;
    struct rnode *R = &st->racks[r];
    memset(R, 0, sizeof *R);
    R->name = cm_strdup(name);
    R->idc = idc;
    R->pos = fen_append(&st->idcs[idc].racks, r);
    cm_smap_put(&st->rack_idx, key, (void *)(uintptr_t)(r + 1));
    return r;
}

static uint32_t host_get(struct disk_state *st, uint32_t idc, uint32_t rack, const char *name)
{
    char key[CM_DISK_HOST_MAX + 16];
    node_key(key, sizeof key, idc, name);
    uint32_t i = smap_idx(&st->host_idx, key);
    if (i)
        return i - 1;
    struct hostset *hs = cm_smap_get(&st->hostsets, name);
    if (hs == NULL) {
        hs = cm_calloc(1, sizeof *hs);
        hs->name = cm_strdup(name);
        cm_smap_put(&st->hostsets, name, hs);
    }
    if (st->n_hosts == st->cap_hosts) {
        st->cap_hosts = st->cap_hosts ? st->cap_hosts * 2 : 16;
        st->hosts = cm_realloc(st->hosts, st->cap_hosts * sizeof *st->hosts);
    }
    uint32_t h = st->n_hosts++;
    struct hnode *H = &st->hosts[h];
    memset(H, 0, sizeof *H);
    H->idc = idc;
    H->rack = rack;
    H->hs = hs;
    H->pos_idc = fen_append(&st->idcs[idc].hosts, h);
    H->pos_rack = fen_append(&st->racks[rack].hosts, h);
    cm_smap_put(&st->host_idx, key, (void *)(uintptr_t)(h + 1));
    return h;
}

/* Change a host's placement weight by `delta`, in every tree that counts it. */
static void host_delta(struct disk_state *st, struct hnode *H, int64_t delta)
{
    if (delta == 0)
        return;
    H->weight += delta;
    struct inode *I = &st->idcs[H->idc];
    struct rnode *R = &st->racks[H->rack];
    fen_add(&I->hosts, H->pos_idc, delta);
    fen_add(&R->hosts, H->pos_rack, delta);
    fen_add(&I->racks, R->pos, delta);
}

/* ------------------------------------------------------------------------------------------ */
/* derived aggregates: every change of a disk is bracketed by unaccount() / account()          */

static void count(struct disk_state *st, struct disk *d, int64_t s)
{
    struct inode *I = &st->idcs[d->idc];
    I->total += s;
    I->total_chunk += s * d->max_chunk;
    I->total_free_chunk += s * d->free_chunk;
    if (d->readonly)
        I->readonly += s;
    if (d->dropping)
        I->dropping += s;
    switch (d->status) {
    case CM_DISK_BROKEN:
        I->broken += s;
        break;
    case CM_DISK_REPAIRING:
        I->repairing += s;
        break;
    case CM_DISK_REPAIRED:
        I->repaired += s;
        break;
    case CM_DISK_DROPPED:
        I->dropped += s;
        break;
    }
    if (d->status == CM_DISK_NORMAL && !available(d)) {
        I->ro_space += (uint64_t)(s * d->size);
        I->ro_free += (uint64_t)(s * d->free);
    }
    if (!available(d))
        return;
    I->available += s;
    I->space += (uint64_t)(s * d->size);
    I->free_space += (uint64_t)(s * d->free);
    if (!d->live) {
        I->expired += s;
        return;
    }
    struct hnode *H = &st->hosts[d->host];
    if (H->nwritable == 0 && s > 0)
        I->live_hosts++;
    H->nwritable += s;
    H->wfree += (uint64_t)(s * d->free);
    if (H->nwritable == 0 && s < 0)
        I->live_hosts--;
}

static void reweigh(struct disk_state *st, struct disk *d)
{
    int64_t w = 0;
    if (available(d) && d->live) {
        w = d->free_chunk - d->pending - st->tolerate;
        if (w < 0)
            w = 0;
    }
    host_delta(st, &st->hosts[d->host], w - d->weight);
    d->weight = w;
}

static void unaccount(struct disk_state *st, struct disk *d)
{
    count(st, d, -1);
}

static void account(struct disk_state *st, struct disk *d)
{
    count(st, d, 1);
    reweigh(st, d);
}

/* ------------------------------------------------------------------------------------------ */
/* expiry view                                                                                 */

static void heap_push(struct disk_state *st, int64_t at, uint32_t id);

static void heap_rebuild(struct disk_state *st)
{
    st->hn = 0;
    for (size_t i = 0; i < st->cap; i++) {
        struct disk *d = st->by_id[i];
        if (d && d->live && d->expire_ns != 0)
            heap_push(st, d->expire_ns, d->id);
    }
}

static void heap_push(struct disk_state *st, int64_t at, uint32_t id)
{
    if (st->hn > 2 * st->n + 1024) { /* mostly stale entries: start over */
        st->hn = 0;
        heap_rebuild(st);
    }
    if (st->hn == st->hcap) {
        st->hcap = st->hcap ? st->hcap * 2 : 64;
        st->heap = cm_realloc(st->heap, st->hcap * sizeof *st->heap);
    }
    size_t i = st->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (st->heap[p].at <= at)
            break;
        st->heap[i] = st->heap[p];
        i = p;
    }
    st->heap[i] = (struct hent){at, id};
}

static struct hent heap_pop(struct disk_state *st)
{
    struct hent top = st->heap[0];
    struct hent last = st->heap[--st->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= st->hn)
            break;
        if (c + 1 < st->hn && st->heap[c + 1].at < st->heap[c].at)
            c++;
        if (st->heap[c].at >= last.at)
            break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (st->hn)
        st->heap[i] = last;
    return top;
}

static void set_live(struct disk_state *st, struct disk *d, bool live)
{
    if (d->live == live)
        return;
    unaccount(st, d);
    d->live = live;
    account(st, d);
}

static void advance(struct disk_state *st, int64_t now)
{
    if (now < st->adv_now - NS_PER_S) {
        /* the clock went back: decide every disk again */
        for (size_t i = 0; i < st->cap; i++) {
            struct disk *d = st->by_id[i];
            if (d)
                set_live(st, d, d->expire_ns == 0 || d->expire_ns > now);
        }
        heap_rebuild(st);
    }
    st->adv_now = now;
    while (st->hn && st->heap[0].at <= now) {
        struct hent e = heap_pop(st);
        struct disk *d = get(st, e.id);
        if (d && d->live && d->expire_ns == e.at)
            set_live(st, d, false);
    }
}

void cm_disk_advance(struct cm_fsm *fsm, int64_t now_ns)
{
    advance(S(fsm), now_ns);
}

/* ------------------------------------------------------------------------------------------ */
/* host+path filter                                                                            */

static const char *d_host(struct disk_state *st, const struct disk *d)
{
    return st->hosts[d->host].hs->name;
}

/* Host and path hashed as two separate strings, so "h1" + "/a" and "h" + "1/a" differ. */
static uint64_t hp_hash(const char *host, const char *path)
{
    uint64_t a = cm_hash_bytes(host, strlen(host)), b = cm_hash_bytes(path, strlen(path));
    return cm_hash_u64(a ^ (b * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL));
}

static size_t hp_home(struct disk_state *st, uint32_t id)
{
    struct disk *d = st->by_id[id];
    return (size_t)hp_hash(d_host(st, d), d_path(d)) & (st->hostpath.cap - 1);
}

/* Slot holding (host, path), or of the empty slot where it would go. */
static size_t hp_find(struct disk_state *st, const char *host, const char *path)
{
    struct hptab *t = &st->hostpath;
    size_t i = (size_t)hp_hash(host, path) & (t->cap - 1);
    for (; t->slot[i]; i = (i + 1) & (t->cap - 1)) {
        struct disk *d = st->by_id[t->slot[i]];
        if (strcmp(d_path(d), path) == 0 && strcmp(d_host(st, d), host) == 0)
            break;
    }
    return i;
}

static uint32_t hp_owner(struct disk_state *st, const char *host, const char *path)
{
    return st->hostpath.cap ? st->hostpath.slot[hp_find(st, host, path)] : 0;
}

static void hp_insert(struct disk_state *st, uint32_t id)
{
    struct hptab *t = &st->hostpath;
    if ((t->n + 1) * 4 > t->cap * 3) {
        uint32_t *old = t->slot;
        size_t ocap = t->cap;
        t->cap = t->cap ? t->cap * 2 : 64;
        t->slot = cm_calloc(t->cap, sizeof *t->slot);
        for (size_t k = 0; k < ocap; k++)
            if (old[k]) {
                size_t i = hp_home(st, old[k]);
                while (t->slot[i])
                    i = (i + 1) & (t->cap - 1);
                t->slot[i] = old[k];
            }
        free(old);
    }
    struct disk *d = st->by_id[id];
    t->slot[hp_find(st, d_host(st, d), d_path(d))] = id;
    t->n++;
}

/* Backward-shift deletion keeps probe sequences intact without tombstones. */
static void hp_remove(struct disk_state *st, size_t i)
{
    struct hptab *t = &st->hostpath;
    size_t mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->slot[j]; j = (j + 1) & mask) {
        size_t k = hp_home(st, t->slot[j]);
        /* move slot j back to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            t->slot[i] = t->slot[j];
            i = j;
        }
    }
    t->slot[i] = 0;
    t->n--;
}

/* Register d when it is active and the key is free; unregister it when it is terminal. */
static void hp_update(struct disk_state *st, struct disk *d)
{
    uint32_t owner = hp_owner(st, d_host(st, d), d_path(d));
    if (terminal(d->status)) {
        if (owner == d->id)
            hp_remove(st, hp_find(st, d_host(st, d), d_path(d)));
    } else if (owner == 0)
        hp_insert(st, d->id);
}

uint32_t cm_disk_hostpath_owner(struct cm_fsm *fsm, const char *host, const char *path)
{
    return hp_owner(S(fsm), host, path);
}

/* ------------------------------------------------------------------------------------------ */
/* create / destroy / insert                                                                   */

static void *disk_create(struct cm_fsm *fsm)
{
    struct disk_state *st = cm_calloc(1, sizeof *st);
    st->cfg = fsm->cfg;
    st->tolerate = fsm->cfg ? fsm->cfg->alloc_tolerate_buffer : 0;
    cm_smap_init(&st->idc_idx);
    cm_smap_init(&st->rack_idx);
    cm_smap_init(&st->host_idx);
    cm_smap_init(&st->hostsets);
    /* configured IDCs first, so their indexes follow the config */
    if (fsm->cfg)
        for (size_t i = 0; i < fsm->cfg->n_idc; i++)
            idc_get(st, fsm->cfg->idc[i]);
    return st;
}

static void disk_destroy(void *state)
{
    struct disk_state *st = state;
    for (size_t i = 0; i < st->cap; i++)
        if (st->by_id[i]) {
            free(st->by_id[i]->strs);
            free(st->by_id[i]);
        }
    free(st->by_id);
    for (int i = 0; i < 6; i++)
        idset_free(&st->status[i]);
    idset_free(&st->dropping);
    for (uint32_t i = 0; i < st->n_idcs; i++) {
        free(st->idcs[i].name);
        idset_free(&st->idcs[i].disks);
        fen_free(&st->idcs[i].hosts);
        fen_free(&st->idcs[i].racks);
    }
    free(st->idcs);
    for (uint32_t i = 0; i < st->n_racks; i++) {
        free(st->racks[i].name);
        idset_free(&st->racks[i].disks);
        fen_free(&st->racks[i].hosts);
    }
    free(st->racks);
    for (uint32_t i = 0; i < st->n_hosts; i++)
        idset_free(&st->hosts[i].disks);
    free(st->hosts);
    size_t it = 0;
    void *v;
    while (cm_smap_next(&st->hostsets, &it, NULL, &v)) {
        struct hostset *hs = v;
        free(hs->name);
        idset_free(&hs->disks);
        free(hs);
    }
    cm_smap_free(&st->hostsets);
    free(st->hostpath.slot);
    cm_smap_free(&st->idc_idx);
    cm_smap_free(&st->rack_idx);
    cm_smap_free(&st->host_idx);
    free(st->heap);
    free(st);
}

/* Everything a disk record holds (the replicated fields). */
struct rec {
    uint32_t id, cluster_id;
    const char *idc, *rack, *host, *path, *ctime, *utime;
    uint8_t status;
    bool readonly, dropping;
    int64_t used, free, size, max_chunk, free_chunk, used_chunk;
    int64_t expire_ns, last_expire_ns;
};

static void insert(struct disk_state *st, const struct rec *r)
{
    if (r->id >= st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap <= r->id)
            cap *= 2;
        st->by_id = cm_realloc(st->by_id, cap * sizeof *st->by_id);
        memset(st->by_id + st->cap, 0, (cap - st->cap) * sizeof *st->by_id);
        st->cap = cap;
    }
    struct disk *d = cm_calloc(1, sizeof *d);
    d->id = r->id;
    d->cluster_id = r->cluster_id;
    d->idc = idc_get(st, r->idc);
    d->rack = rack_get(st, d->idc, r->rack);
    d->host = host_get(st, d->idc, d->rack, r->host);
    d->status = r->status;
    d->readonly = r->readonly;
    d->dropping = r->dropping;
    d->live = true;
    size_t lp = strlen(r->path), lc = strlen(r->ctime), lu = strlen(r->utime);
    d->strs = cm_malloc(lp + lc + lu + 3);
    memcpy(d->strs, r->path, lp + 1);
    memcpy(d->strs + lp + 1, r->ctime, lc + 1);
    memcpy(d->strs + lp + lc + 2, r->utime, lu + 1);
    d->ctime_off = (uint16_t)(lp + 1);
    d->utime_off = (uint16_t)(lp + lc + 2);
    d->used = r->used;
    d->free = r->free;
    d->size = r->size;
    d->max_chunk = r->max_chunk;
    d->free_chunk = r->free_chunk;
    d->used_chunk = r->used_chunk;
    d->expire_ns = r->expire_ns;
    d->last_expire_ns = r->last_expire_ns;
    st->by_id[d->id] = d;
    st->n++;
    st->bytes += cm_disk_entry_bytes(r->idc, r->rack, r->host, r->path, r->ctime, r->utime);

    struct hnode *H = &st->hosts[d->host];
    idset_add(&st->idcs[d->idc].disks, d->id);
    idset_add(&st->racks[d->rack].disks, d->id);
    idset_add(&H->disks, d->id);
    idset_add(&H->hs->disks, d->id);
    idset_add(&st->status[d->status], d->id);
    if (d->dropping)
        idset_add(&st->dropping, d->id);
    hp_update(st, d);
    account(st, d);
    if (d->expire_ns != 0)
        heap_push(st, d->expire_ns, d->id);
}

/* ------------------------------------------------------------------------------------------ */
/* payloads                                                                                     */

static void put_i64s(struct cm_buf *b, const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cm_put_i64(b, v[i]);
}

/* The proposer's lease length and chunk size travel with the command, so apply does not depend
 * on each node's own config. */
static void put_stamp(struct cm_buf *b, const struct cm_fsm_settings *cfg)
{
    cm_put_u32(b, (uint32_t)cfg->heartbeat_expire_interval_s);
    cm_put_u64(b, cfg->chunk_size);
}

void cm_disk_enc_add(struct cm_buf *b, const struct cm_disk_info *d,
                     const struct cm_fsm_settings *cfg)
{
    cm_put_u32(b, d->disk_id);
    cm_put_u32(b, d->cluster_id);
    cm_put_str(b, d->idc);
    cm_put_str(b, d->rack);
    cm_put_str(b, d->host);
    cm_put_str(b, d->path);
    cm_put_u8(b, d->status);
    cm_put_bool(b, d->readonly);
    cm_put_str(b, d->create_time);
    cm_put_str(b, d->last_update_time);
    int64_t v[4] = {d->used, d->free, d->size, d->used_chunk_cnt};
    put_i64s(b, v, 4);
    put_stamp(b, cfg);
}

void cm_disk_enc_add_node(struct cm_buf *b, uint32_t node_id, const struct cm_node_caps *caps)
{
    cm_put_u32(b, node_id);
    cm_put_u32(b, caps->disk_set_cap);
    cm_put_u32(b, caps->disk_per_node);
}

void cm_disk_enc_set_status(struct cm_buf *b, uint32_t disk_id, uint8_t status)
{
    cm_put_u32(b, disk_id);
    cm_put_u8(b, status);
}

void cm_disk_enc_id(struct cm_buf *b, uint32_t disk_id)
{
    cm_put_u32(b, disk_id);
}

void cm_disk_enc_heartbeat(struct cm_buf *b, const struct cm_disk_hb *hb, size_t n,
                           const struct cm_fsm_settings *cfg)
{
    put_stamp(b, cfg);
    cm_put_uvar(b, n);
    for (size_t i = 0; i < n; i++) {
        cm_put_u32(b, hb[i].disk_id);
        int64_t v[4] = {hb[i].used, hb[i].free, hb[i].size, hb[i].used_chunk_cnt};
        put_i64s(b, v, 4);
    }
}

void cm_disk_enc_access(struct cm_buf *b, uint32_t disk_id, bool readonly)
{
    cm_put_u32(b, disk_id);
    cm_put_bool(b, readonly);
}

void cm_disk_enc_admin_update(struct cm_buf *b, uint32_t disk_id, uint8_t status,
                              int64_t max_chunk_cnt, int64_t free_chunk_cnt)
{
    cm_put_u32(b, disk_id);
    cm_put_u8(b, status);
    cm_put_i64(b, max_chunk_cnt);
    cm_put_i64(b, free_chunk_cnt);
}

/* ------------------------------------------------------------------------------------------ */
/* apply                                                                                        */

static int64_t chunk_size(struct disk_state *st)
{
    return st->cfg && st->cfg->chunk_size ? (int64_t)st->cfg->chunk_size : 17179869184LL;
}

static bool bytes_ok(int64_t v)
{
    return v >= 0 && v <= CM_DISK_BYTES_MAX;
}

static bool chunks_ok(int64_t v)
{
    return v >= 0 && v <= CM_DISK_CHUNKS_MAX;
}

/* Chunk counters of spec §4.1.3 (clamped at 0 on add too). */
static void set_counters(struct disk *d, int64_t cs, int64_t used, int64_t free, int64_t size,
                         int64_t used_chunk, bool heartbeat)
{
    d->used = used;
    d->free = free;
    d->size = size;
    d->used_chunk = used_chunk;
    d->max_chunk = size / cs > CM_DISK_CHUNKS_MAX ? CM_DISK_CHUNKS_MAX : size / cs;
    int64_t fc = d->max_chunk - used_chunk;
    if (heartbeat && free / cs < fc)
        fc = free / cs;
    d->free_chunk = fc < 0 ? 0 : fc;
}

static void apply_add(struct cm_fsm *fsm, struct disk_state *st, struct cm_dec *dec,
                      const struct cm_cmd *cmd, struct cm_result *res)
{
    char idc[CM_DISK_IDC_MAX + 1], rack[CM_DISK_RACK_MAX + 1], host[CM_DISK_HOST_MAX + 1];
    char path[CM_DISK_PATH_MAX + 1], ctime[CM_DISK_TIME_MAX + 1], utime[CM_DISK_TIME_MAX + 1];
    struct rec r = {
        .idc = idc, .rack = rack, .host = host, .path = path, .ctime = ctime, .utime = utime};
    r.id = cm_get_u32(dec);
    r.cluster_id = cm_get_u32(dec);
    cm_get_strbuf(dec, idc, sizeof idc);
    cm_get_strbuf(dec, rack, sizeof rack);
    cm_get_strbuf(dec, host, sizeof host);
    cm_get_strbuf(dec, path, sizeof path);
    r.status = cm_get_u8(dec);
    r.readonly = cm_get_bool(dec);
    cm_get_strbuf(dec, ctime, sizeof ctime);
    cm_get_strbuf(dec, utime, sizeof utime);
    int64_t used = cm_get_i64(dec), free_ = cm_get_i64(dec), size = cm_get_i64(dec);
    int64_t used_chunk = cm_get_i64(dec);
    uint32_t expire_s = cm_get_u32(dec);
    uint64_t cs = cm_get_u64(dec);
    /* since the node API: the owning node and the proposer's disk-set caps (absent: no node) */
    uint32_t node_id = 0;
    struct cm_node_caps caps = {0};
    if (cm_dec_left(dec) > 0) {
        node_id = cm_get_u32(dec);
        caps.disk_set_cap = cm_get_u32(dec);
        caps.disk_per_node = cm_get_u32(dec);
    }
    if (dec->err || status_seq(r.status) < 0 || !bytes_ok(used) || !bytes_ok(free_) ||
        !bytes_ok(size) || !chunks_ok(used_chunk) || cs == 0 || cs > INT64_MAX) {
        res->code = -1;
        return;
    }
    if (get(st, r.id) != NULL) {
        res->code = CM_ERR_EXIST;
        return;
    }
    if (r.id == 0 || r.id > CM_DISK_ID_MAX || r.id > cm_scope_current(fsm, "diskid") ||
        (!terminal(r.status) && hp_owner(st, host, path) != 0)) {
        CM_WARN("disk", "not adding disk %u: id never allocated or host+path in use", r.id);
        res->code = CM_ERR_ILLEGAL_ARGUMENTS;
        return;
    }
    if (node_id != 0 && !cm_node_usable(fsm, node_id)) { /* dropped since the proposal */
        res->code = CM_ERR_NODE_NOT_FOUND;
        return;
    }
    if (cm_cluster_version(fsm) >= 2 &&
        st->bytes + cm_disk_entry_bytes(idc, rack, host, path, ctime, utime) >
            CM_DISK_HARD_MAX_BYTES) {
        CM_WARN("disk", "not adding disk %u: the disk table is at its ceiling", r.id);
        res->code = CM_ERR_ILLEGAL_ARGUMENTS;
        return;
    }
    r.expire_ns = cmd->ts_ns + (int64_t)expire_s * NS_PER_S;
    struct disk tmp = {0};
    set_counters(&tmp, (int64_t)cs, used, free_, size, used_chunk, false);
    r.used = tmp.used, r.free = tmp.free, r.size = tmp.size, r.used_chunk = tmp.used_chunk;
    r.max_chunk = tmp.max_chunk, r.free_chunk = tmp.free_chunk;
    insert(st, &r);
    if (node_id != 0)
        cm_node_disk_added(fsm, r.id, node_id, !terminal(r.status), &caps);
}

static void change_status(struct disk_state *st, struct disk *d, uint8_t to)
{
    unaccount(st, d);
    idset_del(&st->status[d->status], d->id);
    d->status = to;
    idset_add(&st->status[to], d->id);
    hp_update(st, d);
    account(st, d);
}

static void apply_heartbeat(struct disk_state *st, struct cm_dec *dec, const struct cm_cmd *cmd,
                            struct cm_result *res)
{
    uint32_t expire_s = cm_get_u32(dec);
    uint64_t cs = cm_get_u64(dec);
    uint64_t n = cm_get_uvar(dec);
    if (dec->err || n > cm_dec_left(dec) / 36 || cs == 0 || cs > INT64_MAX) {
        res->code = -1;
        return;
    }
    int64_t expire = cmd->ts_ns + (int64_t)expire_s * NS_PER_S;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t id = cm_get_u32(dec);
        int64_t used = cm_get_i64(dec), free_ = cm_get_i64(dec), size = cm_get_i64(dec);
        int64_t used_chunk = cm_get_i64(dec);
        struct disk *d = get(st, id);
        if (dec->err) {
            res->code = -1;
            return;
        }
        if (d == NULL || !bytes_ok(used) || !bytes_ok(free_) || !bytes_ok(size) ||
            !chunks_ok(used_chunk))
            continue;
        unaccount(st, d);
        set_counters(d, (int64_t)cs, used, free_, size, used_chunk, true);
        d->last_expire_ns = d->expire_ns;
        d->expire_ns = expire;
        d->live = true;
        d->pending = 0;
        account(st, d);
        heap_push(st, expire, id);
    }
}

static void disk_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                       struct cm_result *res)
{
    struct disk_state *st = state;
    struct disk *d = NULL;
    struct cm_dec dec;
    cm_dec_init(&dec, cmd->payload, cmd->len);
    if (cmd->op == CM_DISK_OP_ADD) {
        apply_add(fsm, st, &dec, cmd, res);
        goto out;
    }
    if (cmd->op == CM_DISK_OP_HEARTBEAT) {
        apply_heartbeat(st, &dec, cmd, res);
        goto out;
    }
    uint32_t id = cm_get_u32(&dec);
    d = get(st, id);
    switch (cmd->op) {
    case CM_DISK_OP_SET_STATUS: {
        uint8_t to = cm_get_u8(&dec);
        if (dec.err)
            break;
        if (d == NULL)
            res->code = CM_ERR_DISK_NOT_FOUND;
        else if (status_seq(to) < 0)
            res->code = CM_ERR_INVALID_DISK_STATUS;
        else if (to != d->status) {
            if (cm_disk_transition_ok(d->status, to))
                change_status(st, d, to);
            else /* a race with another change; on replay this is a silent no-op */
                res->code = CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW;
        }
        goto out;
    }
    case CM_DISK_OP_DROP:
        if (dec.err)
            break;
        if (d == NULL)
            res->code = CM_ERR_DISK_NOT_FOUND;
        else if (!d->dropping) {
            if (d->status != CM_DISK_NORMAL)
                res->code = CM_ERR_DISK_ABNORMAL;
            else {
                unaccount(st, d);
                d->dropping = true;
                idset_add(&st->dropping, d->id);
                account(st, d);
            }
        }
        goto out;
    case CM_DISK_OP_DROPPED:
        if (dec.err)
            break;
        if (d == NULL)
            res->code = CM_ERR_DISK_NOT_FOUND;
        else if (d->status != CM_DISK_DROPPED) {
            if (!d->dropping)
                res->code = CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW;
            else {
                unaccount(st, d);
                d->dropping = false;
                idset_del(&st->dropping, d->id);
                account(st, d);
                change_status(st, d, CM_DISK_DROPPED);
            }
        }
        goto out;
    case CM_DISK_OP_ACCESS: {
        bool ro = cm_get_bool(&dec);
        if (dec.err)
            break;
        if (d == NULL)
            res->code = CM_ERR_DISK_NOT_FOUND;
        else if (d->readonly != ro) {
            unaccount(st, d);
            d->readonly = ro;
            account(st, d);
        }
        goto out;
    }
    case CM_DISK_OP_ADMIN_UPDATE: {
        uint8_t to = cm_get_u8(&dec);
        int64_t max_chunk = cm_get_i64(&dec), free_chunk = cm_get_i64(&dec);
        if (dec.err)
            break;
        if (d == NULL) {
            res->code = CM_ERR_DISK_NOT_FOUND;
            goto out;
        }
        if (status_seq(to) >= 0 && to != d->status) {
            /* no transition rules, but the indexes and the host+path filter follow */
            uint32_t owner = hp_owner(st, d_host(st, d), d_path(d));
            if (!terminal(to) && owner != 0 && owner != d->id) {
                res->code = CM_ERR_ILLEGAL_ARGUMENTS;
                goto out;
            }
            change_status(st, d, to);
        }
        if (max_chunk > 0 || free_chunk > 0) {
            unaccount(st, d);
            if (max_chunk > 0)
                d->max_chunk = max_chunk > CM_DISK_CHUNKS_MAX ? CM_DISK_CHUNKS_MAX : max_chunk;
            if (free_chunk > 0)
                d->free_chunk = free_chunk > CM_DISK_CHUNKS_MAX ? CM_DISK_CHUNKS_MAX : free_chunk;
            account(st, d);
        }
        goto out;
    }
    }
    CM_ERROR("disk", "ignoring malformed disk command op %u", cmd->op);
    res->code = -1;
    return;
out:
    if (res->code == -1)
        CM_ERROR("disk", "ignoring malformed disk command op %u", cmd->op);
    /* a disk that became dropping, repaired or dropped leaves its disk set for good */
    if (d != NULL && (d->dropping || terminal(d->status)))
        cm_node_disk_left(fsm, d->id);
}

/* ------------------------------------------------------------------------------------------ */
/* snapshot                                                                                     */

struct snap_copy {
    struct rec *recs; /* strings point into arena */
    size_t n;
    char *arena;
};

static void *disk_snap_take(void *state)
{
    struct disk_state *st = state;
    struct snap_copy *c = cm_calloc(1, sizeof *c);
    size_t bytes = 0;
    for (size_t i = 0; i < st->cap; i++) {
        struct disk *d = st->by_id[i];
        if (d == NULL)
            continue;
        bytes += strlen(st->idcs[d->idc].name) + strlen(st->racks[d->rack].name) +
                 strlen(d_host(st, d)) + 3;
        bytes += d->utime_off + strlen(d_utime(d)) + 1;
    }
    c->recs = cm_malloc((st->n + 1) * sizeof *c->recs);
    c->arena = cm_malloc(bytes + 1);
    char *p = c->arena;
#define COPY(dst, src)                                                                             \
    do {                                                                                           \
        size_t l_ = strlen(src) + 1;                                                               \
        memcpy(p, src, l_);                                                                        \
        dst = p;                                                                                   \
        p += l_;                                                                                   \
    } while (0)
    for (size_t i = 0; i < st->cap; i++) {
        struct disk *d = st->by_id[i];
        if (d == NULL)
            continue;
        struct rec *r = &c->recs[c->n++];
        r->id = d->id;
        r->cluster_id = d->cluster_id;
        COPY(r->idc, st->idcs[d->idc].name);
        COPY(r->rack, st->racks[d->rack].name);
        COPY(r->host, d_host(st, d));
        size_t all = d->utime_off + strlen(d_utime(d)) + 1;
        memcpy(p, d->strs, all);
        r->path = p;
        r->ctime = p + d->ctime_off;
        r->utime = p + d->utime_off;
        p += all;
        r->status = d->status;
        r->readonly = d->readonly;
        r->dropping = d->dropping;
        r->used = d->used;
        r->free = d->free;
        r->size = d->size;
        r->max_chunk = d->max_chunk;
        r->free_chunk = d->free_chunk;
        r->used_chunk = d->used_chunk;
        r->expire_ns = d->expire_ns;
        r->last_expire_ns = d->last_expire_ns;
    }
#undef COPY
    return c;
}

static size_t str_bytes(const char *s)
{
    size_t n = strlen(s), v = 1;
    for (size_t x = n; x >= 0x80; x >>= 7)
        v++;
    return v + n;
}

static void disk_snap_write(void *taken, struct cm_buf *out)
{
    struct snap_copy *c = taken;
    /* reserve exactly: a doubling buffer would peak at twice the section */
    size_t bytes = 10;
    for (size_t i = 0; i < c->n; i++) {
        const struct rec *r = &c->recs[i];
        bytes += 75 + str_bytes(r->idc) + str_bytes(r->rack) + str_bytes(r->host) +
                 str_bytes(r->path) + str_bytes(r->ctime) + str_bytes(r->utime);
    }
    cm_buf_reserve(out, bytes);
    cm_put_uvar(out, c->n);
    for (size_t i = 0; i < c->n; i++) {
        const struct rec *r = &c->recs[i];
        cm_put_u32(out, r->id);
        cm_put_u32(out, r->cluster_id);
        cm_put_str(out, r->idc);
        cm_put_str(out, r->rack);
        cm_put_str(out, r->host);
        cm_put_str(out, r->path);
        cm_put_u8(out, r->status);
        cm_put_bool(out, r->readonly);
        cm_put_bool(out, r->dropping);
        cm_put_str(out, r->ctime);
        cm_put_str(out, r->utime);
        int64_t v[8] = {r->used,       r->free,       r->size,      r->max_chunk,
                        r->free_chunk, r->used_chunk, r->expire_ns, r->last_expire_ns};
        put_i64s(out, v, 8);
    }
}

static void disk_snap_drop(void *taken)
{
    struct snap_copy *c = taken;
    free(c->recs);
    free(c->arena);
    free(c);
    /* The copy is the largest transient allocation of a node (tens of MB with 10^5 disks);
     * freeing it raises glibc's dynamic trim threshold so that the memory would otherwise stay
     * with the process. Hand free pages back now (runs on the snapshot worker). */
    malloc_trim(0);
}

static int disk_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                          size_t errlen)
{
    (void)fsm;
    struct disk_state *st = state;
    uint64_t n = cm_get_uvar(d);
    uint32_t prev = 0;
    char idc[CM_DISK_IDC_MAX + 1], rack[CM_DISK_RACK_MAX + 1], host[CM_DISK_HOST_MAX + 1];
    char path[CM_DISK_PATH_MAX + 1], ctime[CM_DISK_TIME_MAX + 1], utime[CM_DISK_TIME_MAX + 1];
    for (uint64_t i = 0; i < n && !d->err; i++) {
        struct rec r = {
            .idc = idc, .rack = rack, .host = host, .path = path, .ctime = ctime, .utime = utime};
        r.id = cm_get_u32(d);
        r.cluster_id = cm_get_u32(d);
        cm_get_strbuf(d, idc, sizeof idc);
        cm_get_strbuf(d, rack, sizeof rack);
        cm_get_strbuf(d, host, sizeof host);
        cm_get_strbuf(d, path, sizeof path);
        r.status = cm_get_u8(d);
        r.readonly = cm_get_bool(d);
        r.dropping = cm_get_bool(d);
        cm_get_strbuf(d, ctime, sizeof ctime);
        cm_get_strbuf(d, utime, sizeof utime);
        r.used = cm_get_i64(d);
        r.free = cm_get_i64(d);
        r.size = cm_get_i64(d);
        r.max_chunk = cm_get_i64(d);
        r.free_chunk = cm_get_i64(d);
        r.used_chunk = cm_get_i64(d);
        r.expire_ns = cm_get_i64(d);
        r.last_expire_ns = cm_get_i64(d);
        if (d->err)
            break;
        /* the bounds apply keeps (so that no sum over the disks can overflow) */
        bool numbers_ok = bytes_ok(r.used) && bytes_ok(r.free) && bytes_ok(r.size) &&
                          chunks_ok(r.max_chunk) && chunks_ok(r.free_chunk) &&
                          chunks_ok(r.used_chunk);
        if (r.id <= prev || r.id > CM_DISK_ID_MAX || status_seq(r.status) < 0 || !numbers_ok) {
            snprintf(err, errlen, "disk record %" PRIu64 " (id %u) is invalid", i, r.id);
            return -1;
        }
        prev = r.id;
        insert(st, &r);
    }
    return d->err ? -1 : 0;
}

/* An add that names a node (the suffix of cm_disk_enc_add_node) is of format 2; every other
 * disk command of format 1. */
static uint8_t disk_cmd_version(const struct cm_cmd *cmd)
{
    if (cmd->op != CM_DISK_OP_ADD)
        return CM_CMD_VERSION;
    struct cm_dec d;
    size_t n;
    cm_dec_init(&d, cmd->payload, cmd->len);
    cm_get_u32(&d), cm_get_u32(&d);
    for (int i = 0; i < 4; i++)
        cm_get_bytes(&d, &n);
    cm_get_u8(&d), cm_get_u8(&d);
    cm_get_bytes(&d, &n), cm_get_bytes(&d, &n);
    for (int i = 0; i < 4; i++)
        cm_get_i64(&d);
    cm_get_u32(&d), cm_get_u64(&d);
    return !d.err && cm_dec_left(&d) > 0 ? 2 : CM_CMD_VERSION;
}

const struct cm_module cm_mod_disk = {
    .id = CM_MOD_DISK,
    .cmd_version = disk_cmd_version,
    .name = "disk",
    .create = disk_create,
    .destroy = disk_destroy,
    .apply = disk_apply,
    .snap_take = disk_snap_take,
    .snap_write = disk_snap_write,
    .snap_drop = disk_snap_drop,
    .snap_load = disk_snap_load,
};

/* ------------------------------------------------------------------------------------------ */
/* readers                                                                                      */

static void fill(struct disk_state *st, const struct disk *d, struct cm_disk_info *o)
{
    o->disk_id = d->id;
    o->cluster_id = d->cluster_id;
    o->idc = st->idcs[d->idc].name;
    o->rack = st->racks[d->rack].name;
    o->host = d_host(st, d);
    o->path = d_path(d);
    o->create_time = d_ctime(d);
    o->last_update_time = d_utime(d);
    o->status = d->status;
    o->readonly = d->readonly;
    o->dropping = d->dropping;
    o->used = d->used;
    o->free = d->free;
    o->size = d->size;
    o->max_chunk_cnt = d->max_chunk;
    o->free_chunk_cnt = d->free_chunk;
    o->used_chunk_cnt = d->used_chunk;
    o->expire_ns = d->expire_ns;
    o->last_expire_ns = d->last_expire_ns;
}

bool cm_disk_get(struct cm_fsm *fsm, uint32_t disk_id, struct cm_disk_info *out)
{
    struct disk_state *st = S(fsm);
    struct disk *d = get(st, disk_id);
    if (d == NULL)
        return false;
    if (out)
        fill(st, d, out);
    return true;
}

uint64_t cm_disk_entry_bytes(const char *idc, const char *rack, const char *host, const char *path,
                             const char *ctime, const char *utime)
{
    return strlen(idc) + strlen(rack) + strlen(host) + strlen(path) + strlen(ctime) +
           strlen(utime) + CM_DISK_ENTRY_OVERHEAD;
}

uint64_t cm_disk_bytes(struct cm_fsm *fsm)
{
    return S(fsm)->bytes;
}

size_t cm_disk_count(struct cm_fsm *fsm)
{
    return S(fsm)->n;
}

bool cm_disk_writable(struct cm_fsm *fsm, uint32_t disk_id, int64_t now_ns)
{
    struct disk_state *st = S(fsm);
    struct disk *d = get(st, disk_id);
    return d && available(d) && (d->expire_ns == 0 || d->expire_ns > now_ns);
}

size_t cm_disk_list(struct cm_fsm *fsm, const struct cm_disk_filter *f, uint32_t marker,
                    uint32_t *out, size_t max)
{
    struct disk_state *st = S(fsm);
    const struct idset *drive = NULL;
    struct hostset *hs = NULL;
    uint32_t idc = UINT32_MAX, rack = UINT32_MAX;
    uint8_t status = f->status >= 1 && f->status <= 5 ? f->status : 0;
#define CONSIDER(set)                                                                              \
    do {                                                                                           \
        if (drive == NULL || (set)->n < drive->n)                                                  \
            drive = (set);                                                                         \
    } while (0)
    if (f->host) {
        if ((hs = cm_smap_get(&st->hostsets, f->host)) == NULL)
            return 0;
        CONSIDER(&hs->disks);
    }
    if (f->idc) {
        uint32_t i = smap_idx(&st->idc_idx, f->idc);
        if (i == 0)
            return 0;
        idc = i - 1;
        CONSIDER(&st->idcs[idc].disks);
        if (f->rack) {
            char key[CM_DISK_RACK_MAX + 16];
            node_key(key, sizeof key, idc, f->rack);
            uint32_t r = smap_idx(&st->rack_idx, key);
            if (r == 0)
                return 0;
            rack = r - 1;
            CONSIDER(&st->racks[rack].disks);
        }
    }
    if (status)
        CONSIDER(&st->status[status]);
#undef CONSIDER
    size_t n = 0;
    if (drive == NULL) {
        for (size_t id = (size_t)marker + 1; id < st->cap && n < max; id++)
            if (st->by_id[id])
                out[n++] = (uint32_t)id;
        return n;
    }
    for (uint32_t i = idset_after(drive, marker); i < drive->n && n < max; i++) {
        struct disk *d = st->by_id[drive->v[i]];
        if ((hs && st->hosts[d->host].hs != hs) || (idc != UINT32_MAX && d->idc != idc) ||
            (rack != UINT32_MAX && d->rack != rack) || (status && d->status != status))
            continue;
        out[n++] = d->id;
    }
    return n;
}

uint32_t *cm_disk_dropping(struct cm_fsm *fsm, size_t *n)
{
    struct disk_state *st = S(fsm);
    uint32_t *v = cm_malloc((st->dropping.n + 1) * sizeof *v);
    if (st->dropping.n) /* memcpy from a NULL source is undefined even for 0 bytes */
        memcpy(v, st->dropping.v, st->dropping.n * sizeof *v);
    *n = st->dropping.n;
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* space statistics (spec §6.3)                                                                */

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sums of hostile inputs saturate instead of overflowing (bytes per disk are at most 2^50). */
#define STAT_MAX (INT64_MAX / 4)

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > STAT_MAX - b ? STAT_MAX : a + b;
}

static int64_t sat_u64(uint64_t v)
{
    return v > (uint64_t)STAT_MAX ? STAT_MAX : (int64_t)v;
}

/* Host-aware stripe count: repeatedly take the k largest values, count the smallest of them and
 * subtract it from each. `v` is scratch. */
static int64_t stripes(int64_t *v, size_t n, size_t k, int64_t *tmp)
{
    qsort(v, n, sizeof *v, cmp_desc);
    while (n && v[n - 1] == 0)
        n--;
    int64_t count = 0;
    while (n >= k) {
        int64_t m = v[k - 1];
        count = sat_add(count, m);
        for (size_t i = 0; i < k; i++)
            v[i] -= m;
        /* v[0..k) and v[k..n) are each still descending: merge them */
        size_t a = 0, b = k, o = 0;
        while (a < k || b < n)
            tmp[o++] = (b >= n || (a < k && v[a] >= v[b])) ? v[a++] : v[b++];
        memcpy(v, tmp, n * sizeof *v);
        while (n && v[n - 1] == 0)
            n--;
    }
    return count;
}

struct json_object *cm_disk_space_stat(struct cm_fsm *fsm, int64_t now_ns)
{
    struct disk_state *st = S(fsm);
    const struct cm_fsm_settings *cfg = fsm->cfg;
    advance(st, now_ns);
    int64_t cs = chunk_size(st);

    /* S: most units among enabled modes (all modes if none is enabled), N: its data count */
    int units = 0, data = 0;
    for (int pass = 0; pass < 2 && units == 0; pass++)
        for (size_t i = 0; i < cfg->n_policies; i++) {
            const struct cm_codemode *m = cm_codemode_by_id(cfg->policies[i].code_mode);
            if (m == NULL || (pass == 0 && !cfg->policies[i].enable))
                continue;
            if (cm_codemode_units(m) > units) {
                units = cm_codemode_units(m);
                data = m->n;
            }
        }
    int64_t k = cfg->n_idc ? units / (int64_t)cfg->n_idc : 0;
    if (k < 1)
        k = 1;

    uint64_t total_space = 0, free_space = 0, ro_space = 0;
    int64_t blob_nodes = 0, writable = -1;
    int64_t *vals = cm_malloc((st->n_hosts + 1) * sizeof *vals);
    int64_t *tmp = cm_malloc((st->n_hosts + 1) * sizeof *tmp);
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < cfg->n_idc; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(cfg->idc[j], cfg->idc[i]) == 0;
        uint32_t ix = smap_idx(&st->idc_idx, cfg->idc[i]);
        struct inode *I = ix ? &st->idcs[ix - 1] : NULL;
        if (I)
            blob_nodes += I->live_hosts; /* per entry of the list, duplicates too */
        if (dup)
            continue;
        struct inode zero = {0};
        const struct inode *c = I ? I : &zero;
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "idc", json_object_new_string(cfg->idc[i]));
        const int64_t v[] = {c->total,    c->total_chunk, c->total_free_chunk, c->available,
                             c->readonly, c->expired,     c->broken,           c->repairing,
                             c->repaired, c->dropping,    c->dropped};
        static const char *const names[] = {
            "total",  "total_chunk", "total_free_chunk", "available", "readonly", "expired",
            "broken", "repairing",   "repaired",         "dropping",  "dropped"};
        for (size_t f = 0; f < sizeof v / sizeof v[0]; f++)
            json_object_object_add(e, names[f], json_object_new_int64(v[f]));
        json_object_array_add(arr, e);
        if (I == NULL)
            continue;
        /* v3.5.1 accounting: total counts readonly and dropping disks too, free only writable
         * ones, and the free bytes of the others are readonly_space, not used space */
        total_space += I->space + I->ro_space;
        free_space += I->free_space;
        ro_space += I->ro_free;
        if (I->live_hosts == 0)
            continue;
        size_t nv = 0;
        int64_t sum = 0;
        for (uint32_t p = 0; p < I->hosts.n; p++) {
            const struct hnode *H = &st->hosts[I->hosts.owner[p]];
            if (H->nwritable > 0) {
                uint64_t c = H->wfree / (uint64_t)cs;
                vals[nv] = c > STAT_MAX ? STAT_MAX : (int64_t)c;
                sum = sat_add(sum, vals[nv++]);
            }
        }
        int64_t m = cfg->host_aware ? stripes(vals, nv, (size_t)k, tmp) : sum / k;
        if (writable < 0 || m < writable)
            writable = m;
    }
    free(vals);
    free(tmp);
    int64_t total_disk = (int64_t)st->n;
    if (cm_node_any(fsm)) { /* v3.5.1: once nodes exist, live nodes and disk-set members */
        blob_nodes = (int64_t)cm_node_live_count(fsm);
        total_disk = (int64_t)cm_node_member_disks(fsm);
    }
    struct json_object *o = json_object_new_object();
    int64_t total = sat_u64(total_space), free_sum = sat_u64(free_space), wbytes = 0;
    int64_t ro = sat_u64(ro_space);
    if (writable > 0 && (__builtin_mul_overflow(writable, (int64_t)data, &wbytes) ||
                         __builtin_mul_overflow(wbytes, cs, &wbytes)))
        wbytes = INT64_MAX;
    json_object_object_add(o, "total_space", json_object_new_int64(total));
    json_object_object_add(o, "free_space", json_object_new_int64(free_sum));
    json_object_object_add(o, "readonly_space", json_object_new_int64(ro));
    int64_t used = total - free_sum - ro;
    json_object_object_add(o, "used_space", json_object_new_int64(used < 0 ? 0 : used));
    json_object_object_add(o, "writable_space", json_object_new_int64(wbytes));
    json_object_object_add(o, "total_blob_node", json_object_new_int64(blob_nodes));
    json_object_object_add(o, "total_disk", json_object_new_int64(total_disk));
    json_object_object_add(o, "disk_stat_infos", arr);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* placement                                                                                    */

uint64_t cm_disk_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void cm_disk_charge(struct cm_fsm *fsm, uint32_t disk_id, int64_t chunks)
{
    struct disk_state *st = S(fsm);
    struct disk *d = get(st, disk_id);
    if (d == NULL)
        return;
    d->pending += chunks;
    reweigh(st, d);
}

int64_t cm_disk_idc_weight(struct cm_fsm *fsm, const char *idc)
{
    struct disk_state *st = S(fsm);
    uint32_t i = smap_idx(&st->idc_idx, idc);
    return i ? st->idcs[i - 1].hosts.total : 0;
}

/* Temporary changes made while choosing, undone before returning. */
enum { U_DISK, U_HOST, U_RACK };
struct undo {
    uint8_t kind;
    uint32_t idx;
    int64_t amount;
};
struct undo_log {
    struct undo *u;
    size_t n, cap;
};

static void undo_push(struct undo_log *l, uint8_t kind, uint32_t idx, int64_t amount)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->u = cm_realloc(l->u, l->cap * sizeof *l->u);
    }
    l->u[l->n++] = (struct undo){kind, idx, amount};
}

static void undo_one(struct disk_state *st, const struct undo *u)
{
    switch (u->kind) {
    case U_DISK: {
        struct disk *d = st->by_id[u->idx];
        d->weight += u->amount;
        host_delta(st, &st->hosts[d->host], u->amount);
        break;
    }
    case U_HOST:
        host_delta(st, &st->hosts[u->idx], u->amount);
        break;
    case U_RACK: {
        struct rnode *R = &st->racks[u->idx];
        fen_add(&st->idcs[R->idc].racks, R->pos, u->amount);
        break;
    }
    }
}

static void undo_all(struct disk_state *st, struct undo_log *l)
{
    while (l->n)
        undo_one(st, &l->u[--l->n]);
}

static void zero_disk(struct disk_state *st, struct undo_log *l, struct disk *d)
{
    int64_t w = d->weight;
    if (w == 0)
        return;
    d->weight = 0;
    host_delta(st, &st->hosts[d->host], -w);
    undo_push(l, U_DISK, d->id, w);
}

static void zero_host(struct disk_state *st, struct undo_log *l, uint32_t h)
{
    int64_t w = st->hosts[h].weight;
    if (w == 0)
        return;
    host_delta(st, &st->hosts[h], -w);
    undo_push(l, U_HOST, h, w);
}

static void hide_rack(struct disk_state *st, struct undo_log *l, uint32_t r)
{
    struct rnode *R = &st->racks[r];
    struct fen *f = &st->idcs[R->idc].racks;
    int64_t w = fen_get(f, R->pos);
    if (w == 0)
        return;
    fen_add(f, R->pos, -w);
    undo_push(l, U_RACK, r, w);
}

static struct disk *pick_disk(struct disk_state *st, const struct hnode *H, uint64_t *rng)
{
    int64_t r = (int64_t)(cm_disk_rand(rng) % (uint64_t)H->weight);
    struct disk *last = NULL;
    for (uint32_t i = 0; i < H->disks.n; i++) {
        struct disk *d = st->by_id[H->disks.v[i]];
        if (d->weight == 0)
            continue;
        last = d;
        if (r < d->weight)
            return d;
        r -= d->weight;
    }
    return last;
}

static uint32_t pick_host(const struct fen *f, uint64_t *rng)
{
    return f->owner[fen_find(f, (int64_t)(cm_disk_rand(rng) % (uint64_t)f->total))];
}

int cm_disk_place(struct cm_fsm *fsm, const char *idc, unsigned count, const uint32_t *exclude,
                  size_t n_exclude, int64_t now_ns, uint64_t *rng, uint32_t *out)
{
    struct disk_state *st = S(fsm);
    advance(st, now_ns);
    uint32_t ix = smap_idx(&st->idc_idx, idc);
    if (ix == 0)
        return CM_DISK_ENOSPC;
    struct inode *I = &st->idcs[ix - 1];
    if (count == 0)
        return 0;
    if (I->hosts.total < (int64_t)count)
        return CM_DISK_ENOSPC;
    bool host_aware = fsm->cfg->host_aware, rack_aware = host_aware && fsm->cfg->rack_aware;
    struct undo_log log = {0}, round = {0};
    for (size_t i = 0; i < n_exclude; i++) {
        struct disk *d = get(st, exclude[i]);
        if (d == NULL || d->idc != ix - 1)
            continue;
        if (host_aware)
            zero_host(st, &log, d->host);
        else
            zero_disk(st, &log, d);
    }
    int rc = 0;
    for (unsigned n = 0; n < count; n++) {
        uint32_t h;
        if (rack_aware) {
            if (I->racks.total == 0 && round.n) /* every rack has one: next round */
                undo_all(st, &round);
            if (I->racks.total == 0) {
                rc = CM_DISK_ENOSPC;
                break;
            }
            uint32_t r = I->racks.owner[fen_find(
                &I->racks, (int64_t)(cm_disk_rand(rng) % (uint64_t)I->racks.total))];
            h = pick_host(&st->racks[r].hosts, rng);
        } else {
            if (I->hosts.total == 0) {
                rc = CM_DISK_ENOSPC;
                break;
            }
            h = pick_host(&I->hosts, rng);
        }
        struct disk *d = pick_disk(st, &st->hosts[h], rng);
        out[n] = d->id;
        if (host_aware)
            zero_host(st, &log, h);
        else
            zero_disk(st, &log, d);
        if (rack_aware) /* after zeroing the host: hide what is left of its rack */
            hide_rack(st, &round, st->hosts[h].rack);
    }
    undo_all(st, &round);
    undo_all(st, &log);
    free(round.u);
    free(log.u);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* self-check (tests): recompute every derived aggregate from the disks and compare            */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

int cm_disk_selfcheck(struct cm_fsm *fsm, char *err, size_t errlen)
{
    struct disk_state *st = S(fsm);
    struct inode *want = cm_calloc(st->n_idcs + 1, sizeof *want);
    struct hnode *hw = cm_calloc(st->n_hosts + 1, sizeof *hw);
    int64_t *rackw = cm_calloc(st->n_racks + 1, sizeof *rackw);
    size_t n = 0, nst[6] = {0}, ndrop = 0, nhp = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < st->cap; i++) {
        struct disk *d = st->by_id[i];
        if (d == NULL)
            continue;
        n++;
        bytes += cm_disk_entry_bytes(st->idcs[d->idc].name, st->racks[d->rack].name, d_host(st, d),
                                     d_path(d), d_ctime(d), d_utime(d));
        CHECK(d->id == i, "disk %zu has id %u", i, d->id);
        struct inode *I = &want[d->idc];
        I->total++;
        I->total_chunk += d->max_chunk;
        I->total_free_chunk += d->free_chunk;
        I->readonly += d->readonly;
        I->dropping += d->dropping;
        I->broken += d->status == CM_DISK_BROKEN;
        I->repairing += d->status == CM_DISK_REPAIRING;
        I->repaired += d->status == CM_DISK_REPAIRED;
        I->dropped += d->status == CM_DISK_DROPPED;
        nst[d->status]++;
        ndrop += d->dropping;
        if (d->status == CM_DISK_NORMAL && !available(d)) {
            I->ro_space += d->size;
            I->ro_free += d->free;
        }
        if (available(d)) {
            I->available++;
            I->space += d->size;
            I->free_space += d->free;
            if (!d->live)
                I->expired++;
            else {
                hw[d->host].nwritable++;
                hw[d->host].wfree += d->free;
            }
        }
        int64_t w = 0;
        if (available(d) && d->live) {
            w = d->free_chunk - d->pending - st->tolerate;
            w = w < 0 ? 0 : w;
        }
        CHECK(d->weight == w, "disk %u weight %lld, want %lld", d->id, (long long)d->weight,
              (long long)w);
        hw[d->host].weight += w;
        rackw[st->hosts[d->host].rack] += w;
        CHECK(idset_after(&st->status[d->status], d->id) > 0 &&
                  st->status[d->status].v[idset_after(&st->status[d->status], d->id) - 1] == d->id,
              "disk %u missing from its status set", d->id);
        if (!terminal(d->status)) {
            CHECK(hp_owner(st, d_host(st, d), d_path(d)) != 0, "disk %u host+path unregistered",
                  d->id);
            nhp += hp_owner(st, d_host(st, d), d_path(d)) == d->id;
        }
    }
    CHECK(n == st->n, "%zu disks, counted %zu", st->n, n);
    CHECK(bytes == st->bytes, "disk bytes %llu, counted %llu", (unsigned long long)st->bytes,
          (unsigned long long)bytes);
    for (int s = 1; s <= 5; s++)
        CHECK(st->status[s].n == nst[s], "status set %d has %u, want %zu", s, st->status[s].n,
              nst[s]);
    CHECK(st->dropping.n == ndrop, "dropping set has %u, want %zu", st->dropping.n, ndrop);
    CHECK(st->hostpath.n == nhp, "host+path filter has %zu keys, want %zu", st->hostpath.n, nhp);
    for (uint32_t h = 0; h < st->n_hosts; h++) {
        struct hnode *H = &st->hosts[h];
        CHECK(H->nwritable == hw[h].nwritable && H->wfree == hw[h].wfree &&
                  H->weight == hw[h].weight,
              "host %s aggregates differ", H->hs->name);
        CHECK(fen_get(&st->idcs[H->idc].hosts, H->pos_idc) == H->weight &&
                  fen_get(&st->racks[H->rack].hosts, H->pos_rack) == H->weight,
              "host %s weight trees differ", H->hs->name);
        if (H->nwritable > 0)
            want[H->idc].live_hosts++;
    }
    for (uint32_t r = 0; r < st->n_racks; r++) {
        struct rnode *R = &st->racks[r];
        CHECK(R->hosts.total == rackw[r] && fen_get(&st->idcs[R->idc].racks, R->pos) == rackw[r],
              "rack %s weight %lld, want %lld", R->name, (long long)R->hosts.total,
              (long long)rackw[r]);
    }
    for (uint32_t i = 0; i < st->n_idcs; i++) {
        struct inode *I = &st->idcs[i], *W = &want[i];
        CHECK(I->total == W->total && I->total_chunk == W->total_chunk &&
                  I->total_free_chunk == W->total_free_chunk && I->available == W->available &&
                  I->readonly == W->readonly && I->expired == W->expired &&
                  I->broken == W->broken && I->repairing == W->repairing &&
                  I->repaired == W->repaired && I->dropped == W->dropped &&
                  I->dropping == W->dropping && I->space == W->space &&
                  I->free_space == W->free_space && I->live_hosts == W->live_hosts &&
                  I->ro_space == W->ro_space && I->ro_free == W->ro_free,
              "idc %s counters differ", I->name);
        int64_t sum = 0, rsum = 0;
        for (uint32_t p = 0; p < I->hosts.n; p++)
            sum += fen_get(&I->hosts, p);
        for (uint32_t p = 0; p < I->racks.n; p++)
            rsum += fen_get(&I->racks, p);
        CHECK(sum == I->hosts.total && rsum == I->racks.total && sum == rsum,
              "idc %s tree totals differ", I->name);
    }
    free(want);
    free(hw);
    free(rackw);
    return 0;
fail:
    free(want);
    free(hw);
    free(rackw);
    return -1;
}
