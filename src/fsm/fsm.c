/*
 * State machine dispatch and the snapshot stream; see fsm.h.
 */
#include "fsm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../util/log.h"

extern const struct cm_module cm_mod_members;
extern const struct cm_module cm_mod_config;
extern const struct cm_module cm_mod_scope;
extern const struct cm_module cm_mod_disk;
extern const struct cm_module cm_mod_service;
extern const struct cm_module cm_mod_volume;
extern const struct cm_module cm_mod_kv;
extern const struct cm_module cm_mod_node;
extern const struct cm_module cm_mod_cluster;

/* Indexed by module id; NULL slots are ids not in use. One per line, for merges. */
/* clang-format off */
static const struct cm_module *const modules[CM_MOD_MAX] = {
    [CM_MOD_MEMBERS] = &cm_mod_members,
    [CM_MOD_CONFIG] = &cm_mod_config,
    [CM_MOD_SCOPE] = &cm_mod_scope,
    [CM_MOD_DISK] = &cm_mod_disk,
    [CM_MOD_SERVICE] = &cm_mod_service,
    [CM_MOD_VOLUME] = &cm_mod_volume,
    [CM_MOD_KV] = &cm_mod_kv,
    [CM_MOD_NODE] = &cm_mod_node,
    [CM_MOD_CLUSTER] = &cm_mod_cluster,
};
/* clang-format on */

static const char snap_magic[8] = {'C', 'M', 'S', 'N', 'A', 'P', '0', '1'};

const struct cm_module *cm_fsm_module(unsigned id)
{
    return id < CM_MOD_MAX ? modules[id] : NULL;
}

uint8_t cm_fsm_cmd_version(const struct cm_cmd *c)
{
    const struct cm_module *m = cm_fsm_module(c->module);
    return m && m->cmd_version ? m->cmd_version(c) : CM_CMD_VERSION;
}

void cm_result_release(struct cm_result *res)
{
    if (res->data && res->free_data)
        res->free_data(res->data);
    res->data = NULL;
    res->free_data = NULL;
}

static void create_all(struct cm_fsm *fsm, void **mods)
{
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        mods[i] = modules[i] ? modules[i]->create(fsm) : NULL;
}

static void destroy_all(void **mods)
{
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        if (modules[i] && mods[i])
            modules[i]->destroy(mods[i]);
}

struct cm_fsm *cm_fsm_new(const struct cm_fsm_settings *cfg, uint64_t self_id)
{
    struct cm_fsm *fsm = cm_calloc(1, sizeof *fsm);
    fsm->cfg = cfg;
    fsm->self_id = self_id;
    create_all(fsm, fsm->mods);
    return fsm;
}

void cm_fsm_free(struct cm_fsm *fsm)
{
    if (fsm == NULL)
        return;
    destroy_all(fsm->mods);
    free(fsm);
}

void cm_fsm_apply_buf(struct cm_fsm *fsm, const void *buf, size_t len)
{
    struct cm_cmd cmd;
    struct cm_result res = {0};
    if (fsm->blocked_need) {
        fsm->n_blocked++;
        return;
    }
    if (cm_cmd_decode(buf, len, &cmd) != 0) {
        fsm->n_rejected++;
        CM_ERROR("fsm", "skipping a log entry that is not a command of this format (%zu bytes)",
                 len);
        return;
    }
    if (cmd.version > CM_FORMAT_VERSION) {
        /* written by a newer release once the whole cluster ran it: applying it, or skipping
         * it, would make this node's state differ from the others' */
        fsm->blocked_need = cmd.version;
        fsm->n_blocked++;
        CM_ERROR("fsm",
                 "stopped applying: a log entry needs format version %u and this binary applies "
                 "up to %u (the cluster was upgraded); restart this node on a release that "
                 "supports format %u, it then applies the log from its last snapshot",
                 cmd.version, CM_FORMAT_VERSION, cmd.version);
        return;
    }
    const struct cm_module *m = cm_fsm_module(cmd.module);
    if (m == NULL) {
        fsm->n_rejected++;
        CM_ERROR("fsm", "skipping a command for unknown module %u (written by a newer version?)",
                 cmd.module);
        res.code = 900;
    } else {
        m->apply(fsm, fsm->mods[cmd.module], &cmd, &res);
        if (res.code == -1) { /* modules mark malformed payloads with -1 */
            fsm->n_rejected++;
            res.code = 900;
        }
    }
    fsm->n_applied++;
    if (cmd.ts_ns > fsm->last_ts_ns)
        fsm->last_ts_ns = cmd.ts_ns;
    if (fsm->on_applied)
        fsm->on_applied(fsm->on_applied_arg, &cmd, &res);
    cm_result_release(&res);
}

int cm_fsm_apply_cmd(struct cm_fsm *fsm, const struct cm_cmd *c)
{
    struct raft_buffer rb;
    if (cm_cmd_encode(c, &rb) != 0)
        return -1;
    cm_fsm_apply_buf(fsm, rb.base, rb.len);
    raft_free(rb.base);
    return 0;
}

struct cm_snap_taken {
    void *copies[CM_MOD_MAX];
};

struct cm_snap_taken *cm_fsm_snap_take(struct cm_fsm *fsm)
{
    struct cm_snap_taken *t = cm_calloc(1, sizeof *t);
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        if (modules[i])
            t->copies[i] = modules[i]->snap_take(fsm->mods[i]);
    return t;
}

static bool section_written(const struct cm_snap_taken *t, unsigned i)
{
    return modules[i] != NULL && !(modules[i]->snap_skip && modules[i]->snap_skip(t->copies[i]));
}

void cm_fsm_snap_write(struct cm_snap_taken *t, struct cm_buf *out)
{
    size_t start = out->len;
    cm_buf_append(out, snap_magic, sizeof snap_magic);
    uint32_t n = 0;
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        n += section_written(t, i);
    cm_put_u32(out, n);
    for (unsigned i = 0; i < CM_MOD_MAX; i++) {
        if (!section_written(t, i))
            continue;
        cm_put_u8(out, (uint8_t)i);
        size_t lenpos = out->len;
        cm_put_u64(out, 0);
        size_t before = out->len;
        modules[i]->snap_write(t->copies[i], out);
        cm_wbe64((uint8_t *)out->data + lenpos, (uint64_t)(out->len - before));
    }
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)out->data + start, (uInt)(out->len - start));
    cm_put_u32(out, crc);
    cm_fsm_snap_drop(t);
}

void cm_fsm_snap_drop(struct cm_snap_taken *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        if (modules[i] && t->copies[i])
            modules[i]->snap_drop(t->copies[i]);
    free(t);
}

void cm_fsm_snapshot(struct cm_fsm *fsm, struct cm_buf *out)
{
    cm_fsm_snap_write(cm_fsm_snap_take(fsm), out);
}

int cm_fsm_snap_check(const void *buf, size_t len, uint32_t *crc_out, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    if (len < sizeof snap_magic + 8 || memcmp(p, snap_magic, sizeof snap_magic) != 0) {
        snprintf(err, errlen, "not a clustermgr snapshot (bad magic or version)");
        return -1;
    }
    uint32_t want = cm_be32(p + len - 4);
    uint32_t got = (uint32_t)crc32(0L, (const Bytef *)p, (uInt)(len - 4));
    if (want != got) {
        snprintf(err, errlen, "snapshot checksum mismatch (stored %08x, computed %08x)", want, got);
        return -1;
    }
    if (crc_out)
        *crc_out = got;
    return 0;
}

/* Before decoding anything: a stream of a cluster whose version is above ours, or with a
 * section this binary does not know, is refused with the reason an operator can act on. */
static int check_versions(const void *buf, size_t len, char *err, size_t errlen)
{
    struct cm_dec d;
    cm_dec_init(&d, (const uint8_t *)buf + sizeof snap_magic, len - sizeof snap_magic - 4);
    uint32_t n = cm_get_u32(&d);
    for (uint32_t s = 0; s < n && !d.err; s++) {
        uint8_t id = cm_get_u8(&d);
        uint64_t slen = cm_get_u64(&d);
        if (d.err || slen > cm_dec_left(&d))
            return 0; /* malformed: the full decode says so */
        if (id == CM_MOD_CLUSTER && slen >= 4) {
            uint32_t v = cm_be32(d.p);
            if (v > CM_FORMAT_VERSION) {
                snprintf(err, errlen,
                         "the snapshot is of a cluster at version %u and this binary reads up to "
                         "version %u: run a release that supports version %u",
                         v, CM_FORMAT_VERSION, v);
                return -1;
            }
        }
        if (id >= CM_MOD_MAX || modules[id] == NULL) {
            snprintf(err, errlen,
                     "the snapshot has a section (module %u) that this binary does not know: it "
                     "was written by a later release (this binary reads format version %u)",
                     id, CM_FORMAT_VERSION);
            return -1;
        }
        d.p += slen;
    }
    return 0;
}

int cm_fsm_restore(struct cm_fsm *fsm, const void *buf, size_t len, char *err, size_t errlen)
{
    if (cm_fsm_snap_check(buf, len, NULL, err, errlen) != 0)
        return -1;
    if (check_versions(buf, len, err, errlen) != 0)
        return -1;
    void *fresh[CM_MOD_MAX];
    create_all(fsm, fresh);
    struct cm_dec d;
    cm_dec_init(&d, (const uint8_t *)buf + sizeof snap_magic, len - sizeof snap_magic - 4);
    uint32_t n = cm_get_u32(&d);
    bool seen[CM_MOD_MAX] = {false};
    for (uint32_t s = 0; s < n && !d.err; s++) {
        uint8_t id = cm_get_u8(&d);
        uint64_t slen = cm_get_u64(&d);
        if (d.err || slen > cm_dec_left(&d)) {
            snprintf(err, errlen, "snapshot section %u is truncated", s);
            goto fail;
        }
        if (id >= CM_MOD_MAX || modules[id] == NULL || seen[id]) {
            snprintf(err, errlen, "snapshot has %s section for module %u",
                     (id < CM_MOD_MAX && seen[id]) ? "a second" : "an unknown", id);
            goto fail;
        }
        seen[id] = true;
        struct cm_dec sd;
        cm_dec_init(&sd, d.p, (size_t)slen);
        d.p += slen;
        char merr[200] = "";
        if (modules[id]->snap_load(fsm, fresh[id], &sd, merr, sizeof merr) != 0 || sd.err) {
            snprintf(err, errlen, "snapshot section %s: %s", modules[id]->name,
                     merr[0] ? merr : "malformed");
            goto fail;
        }
    }
    if (d.err || cm_dec_left(&d) != 0) {
        snprintf(err, errlen, "snapshot stream is malformed");
        goto fail;
    }
    void *old[CM_MOD_MAX];
    memcpy(old, fsm->mods, sizeof old);
    memcpy(fsm->mods, fresh, sizeof fresh);
    for (unsigned i = 0; i < CM_MOD_MAX; i++)
        if (modules[i] && modules[i]->after_load)
            modules[i]->after_load(fsm, fsm->mods[i]);
    destroy_all(old);
    if (fsm->on_restored)
        fsm->on_restored(fsm->on_applied_arg);
    return 0;
fail:
    destroy_all(fresh);
    return -1;
}

void *cm_snap_take_encoded(struct cm_buf *encoded)
{
    struct cm_buf *b = cm_malloc(sizeof *b);
    *b = *encoded;
    encoded->data = NULL;
    encoded->len = encoded->cap = 0;
    return b;
}

void cm_snap_write_encoded(void *taken, struct cm_buf *out)
{
    struct cm_buf *b = taken;
    cm_buf_append(out, b->data, b->len);
}

void cm_snap_drop_encoded(void *taken)
{
    struct cm_buf *b = taken;
    cm_buf_free(b);
    free(b);
}
