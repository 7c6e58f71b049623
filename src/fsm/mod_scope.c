/* Scope module; see mod_scope.h. */
#include "mod_scope.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"

#define MAX_SCOPES 16

struct scope {
    char name[CM_SCOPE_NAME_MAX];
    uint64_t current;  /* replicated */
    uint64_t reserved; /* leader-local: highest value handed to a proposal */
};

struct scope_state {
    struct scope s[MAX_SCOPES];
    size_t n;
};

static struct scope *find(struct scope_state *st, const char *name, bool create)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->s[i].name, name) == 0)
            return &st->s[i];
    if (!create || st->n == MAX_SCOPES || strlen(name) >= CM_SCOPE_NAME_MAX)
        return NULL;
    struct scope *sc = &st->s[st->n++];
    memset(sc, 0, sizeof *sc);
    strcpy(sc->name, name);
    return sc;
}

uint64_t cm_scope_reserve(struct cm_fsm *fsm, const char *name, uint64_t count,
                          struct cm_buf *payload)
{
    struct scope_state *st = fsm->mods[CM_MOD_SCOPE];
    struct scope *sc = find(st, name, true);
    if (sc == NULL)
        return 0;
    if (sc->reserved < sc->current)
        sc->reserved = sc->current;
    sc->reserved += count;
    cm_put_str(payload, name);
    cm_put_u64(payload, sc->reserved);
    return sc->reserved;
}

void cm_scope_raise(struct cm_fsm *fsm, const char *name, uint64_t value)
{
    struct scope *sc = find(fsm->mods[CM_MOD_SCOPE], name, true);
    if (sc && value > sc->current)
        sc->current = value;
}

uint64_t cm_scope_current(struct cm_fsm *fsm, const char *name)
{
    struct scope *sc = find(fsm->mods[CM_MOD_SCOPE], name, false);
    return sc ? sc->current : 0;
}

static void *scope_create(struct cm_fsm *fsm)
{
    (void)fsm;
    return cm_calloc(1, sizeof(struct scope_state));
}

static void scope_destroy(void *state)
{
    free(state);
}

static void scope_apply(struct cm_fsm *fsm, void *state, const struct cm_cmd *cmd,
                        struct cm_result *res)
{
    (void)fsm;
    struct cm_dec d;
    cm_dec_init(&d, cmd->payload, cmd->len);
    char name[CM_SCOPE_NAME_MAX];
    cm_get_strbuf(&d, name, sizeof name);
    uint64_t current = cm_get_u64(&d);
    struct scope *sc = d.err || cmd->op != CM_SCOPE_OP_ALLOC ? NULL : find(state, name, true);
    if (sc == NULL) {
        CM_ERROR("scope", "ignoring malformed scope command op %u", cmd->op);
        res->code = -1;
        return;
    }
    if (current > sc->current)
        sc->current = current;
    res->v[0] = sc->current;
}

static int cmp_scope(const void *a, const void *b)
{
    return strcmp(((const struct scope *)a)->name, ((const struct scope *)b)->name);
}

static void *scope_snap_take(void *state)
{
    struct scope_state copy = *(struct scope_state *)state;
    qsort(copy.s, copy.n, sizeof copy.s[0], cmp_scope);
    struct cm_buf b = {0};
    cm_put_uvar(&b, copy.n);
    for (size_t i = 0; i < copy.n; i++) {
        cm_put_str(&b, copy.s[i].name);
        cm_put_u64(&b, copy.s[i].current);
    }
    return cm_snap_take_encoded(&b);
}

static int scope_snap_load(struct cm_fsm *fsm, void *state, struct cm_dec *d, char *err,
                           size_t errlen)
{
    (void)fsm, (void)err, (void)errlen;
    uint64_t n = cm_get_uvar(d);
    if (n > MAX_SCOPES)
        return -1;
    for (uint64_t i = 0; i < n && !d->err; i++) {
        char name[CM_SCOPE_NAME_MAX];
        cm_get_strbuf(d, name, sizeof name);
        uint64_t cur = cm_get_u64(d);
        struct scope *sc = d->err ? NULL : find(state, name, true);
        if (sc)
            sc->current = cur;
    }
    return d->err ? -1 : 0;
}

const struct cm_module cm_mod_scope = {
    .id = CM_MOD_SCOPE,
    .name = "scope",
    .create = scope_create,
    .destroy = scope_destroy,
    .apply = scope_apply,
    .snap_take = scope_snap_take,
    .snap_write = cm_snap_write_encoded,
    .snap_drop = cm_snap_drop_encoded,
    .snap_load = scope_snap_load,
};
