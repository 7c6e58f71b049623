/* The disk module: lifecycle, counters, host+path filter, expiry stamping, listing, snapshot,
 * space_stat and the placement index. */
#include "testutil.h"

#include <json-c/json.h>
#include <zlib.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/http/errors.h"
#include "../../src/util/json.h"

#define CS 16777216LL /* chunk_size of the test config */
#define GIB (1LL << 30)
#define NS 1000000000LL
#define T0 (1700000000LL * NS)

static struct cm_config cfg;

static int last_code;

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)arg, (void)cmd;
    last_code = res->code;
}

static struct cm_fsm *new_fsm(const struct cm_config *c)
{
    struct cm_fsm *fsm = cm_fsm_new(&c->fsm, 1);
    fsm->on_applied = record;
    return fsm;
}

static int apply_at(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *payload,
                    int64_t ts)
{
    static uint64_t req = 1;
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = req++,
                       .ts_ns = ts,
                       .payload = (const uint8_t *)payload->data,
                       .len = payload->len};
    struct raft_buffer rb;
    assert_int_equal(cm_cmd_encode(&c, &rb), 0);
    last_code = 12345;
    cm_fsm_apply_buf(fsm, rb.base, rb.len);
    raft_free(rb.base);
    cm_buf_free(payload);
    assert_int_not_equal(last_code, 12345);
    return last_code;
}

static void check(struct cm_fsm *fsm)
{
    char err[256];
    if (cm_disk_selfcheck(fsm, err, sizeof err) != 0)
        fail_msg("self-check: %s", err);
}

static void alloc_ids(struct cm_fsm *fsm, uint64_t n)
{
    struct cm_buf b = {0};
    cm_scope_reserve(fsm, "diskid", n, &b);
    apply_at(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, T0);
}

struct spec {
    uint32_t id;
    const char *idc, *rack, *host, *path;
    uint8_t status;
    int64_t size, free, used_chunk;
};

static int add_at(struct cm_fsm *fsm, const struct spec *s, int64_t ts)
{
    struct cm_disk_info d = {.disk_id = s->id,
                             .cluster_id = 1,
                             .idc = s->idc ? s->idc : "z0",
                             .rack = s->rack ? s->rack : "r0",
                             .host = s->host,
                             .path = s->path,
                             .create_time = "2022-03-24T17:33:45.123456789+08:00",
                             .last_update_time = "2022-03-24T17:33:45Z",
                             .status = s->status ? s->status : CM_DISK_NORMAL,
                             .size = s->size,
                             .free = s->free,
                             .used = s->size - s->free,
                             .used_chunk_cnt = s->used_chunk,
                             .max_chunk_cnt = 777,
                             .free_chunk_cnt = 777};
    struct cm_buf b = {0};
    cm_disk_enc_add(&b, &d, fsm->cfg);
    return apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &b, ts);
}

static int add(struct cm_fsm *fsm, uint32_t id, const char *host, const char *path, int64_t size)
{
    struct spec s = {.id = id, .host = host, .path = path, .size = size, .free = size};
    return add_at(fsm, &s, T0);
}

static int set_status(struct cm_fsm *fsm, uint32_t id, uint8_t st)
{
    struct cm_buf b = {0};
    cm_disk_enc_set_status(&b, id, st);
    return apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_SET_STATUS, &b, T0);
}

static int op_id(struct cm_fsm *fsm, uint8_t op, uint32_t id)
{
    struct cm_buf b = {0};
    cm_disk_enc_id(&b, id);
    return apply_at(fsm, CM_MOD_DISK, op, &b, T0);
}

static int access_(struct cm_fsm *fsm, uint32_t id, bool ro)
{
    struct cm_buf b = {0};
    cm_disk_enc_access(&b, id, ro);
    return apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ACCESS, &b, T0);
}

static int admin(struct cm_fsm *fsm, uint32_t id, uint8_t st, int64_t maxc, int64_t freec)
{
    struct cm_buf b = {0};
    cm_disk_enc_admin_update(&b, id, st, maxc, freec);
    return apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ADMIN_UPDATE, &b, T0);
}

static void heartbeat_at(struct cm_fsm *fsm, const struct cm_disk_hb *hb, size_t n, int64_t ts)
{
    struct cm_buf b = {0};
    cm_disk_enc_heartbeat(&b, hb, n, fsm->cfg);
    assert_int_equal(apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, &b, ts), 0);
}

static struct cm_disk_info info(struct cm_fsm *fsm, uint32_t id)
{
    struct cm_disk_info d;
    assert_true(cm_disk_get(fsm, id, &d));
    return d;
}

/* A config parsed from the test template with the IDC list replaced and `extra` appended. */
static void load_cfg(struct cm_config *c, const char *idcs, const char *extra)
{
    const char *t = cmt_config_text(extra, NULL);
    char text[8192];
    const char *at = strstr(t, "\"idc\":[\"z0\"]");
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s\"idc\":%s%s", (int)(at - t), t, idcs,
             at + strlen("\"idc\":[\"z0\"]"));
    char err[512];
    if (cm_config_parse(text, strlen(text), "test", c, err, sizeof err) != 0)
        fail_msg("config: %s", err);
}

static int64_t stat_field(struct json_object *o, const char *name)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, name, &v));
    return json_object_get_int64(v);
}

static struct json_object *idc_stat(struct json_object *ss, const char *idc)
{
    struct json_object *arr;
    assert_true(json_object_object_get_ex(ss, "disk_stat_infos", &arr));
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *e = json_object_array_get_idx(arr, i), *n;
        json_object_object_get_ex(e, "idc", &n);
        if (strcmp(json_object_get_string(n), idc) == 0)
            return e;
    }
    fail_msg("no idc %s", idc);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

static void test_transition_rules(void **state)
{
    (void)state;
    /* forward by one step, or to dropped from anywhere before it */
    uint8_t ok[][2] = {{1, 2}, {2, 3}, {3, 4}, {1, 5}, {2, 5}, {3, 5}, {4, 5}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(cm_disk_transition_ok(ok[i][0], ok[i][1]));
    uint8_t bad[][2] = {{2, 1}, {1, 3}, {1, 4}, {4, 3}, {5, 1}, {5, 4}, {1, 1}, {0, 1}, {1, 6}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cm_disk_transition_ok(bad[i][0], bad[i][1]));
}

static void test_add_counters_and_filter(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 10);
    struct spec s = {.id = 1,
                     .host = "http://10.0.0.1:8899",
                     .path = "/data/d1",
                     .size = 100 * CS + 5,
                     .free = 90 * CS,
                     .used_chunk = 7};
    assert_int_equal(add_at(fsm, &s, T0), 0);
    struct cm_disk_info d = info(fsm, 1);
    /* max = size / chunk_size, free = max - used chunks; what the caller sent is ignored */
    assert_int_equal(d.max_chunk_cnt, 100);
    assert_int_equal(d.free_chunk_cnt, 93);
    assert_int_equal(d.used_chunk_cnt, 7);
    assert_string_equal(d.host, "http://10.0.0.1:8899");
    assert_string_equal(d.path, "/data/d1");
    assert_string_equal(d.rack, "r0");
    assert_string_equal(d.create_time, "2022-03-24T17:33:45.123456789+08:00");
    assert_string_equal(d.last_update_time, "2022-03-24T17:33:45Z");
    assert_int_equal(d.status, CM_DISK_NORMAL);

    /* the same id again: "Data Already Exist", nothing changes */
    s.path = "/data/other";
    assert_int_equal(add_at(fsm, &s, T0), CM_ERR_EXIST);
    assert_string_equal(info(fsm, 1).path, "/data/d1");
    /* the same host+path under another id */
    assert_int_equal(add(fsm, 2, "http://10.0.0.1:8899", "/data/d1", GIB),
                     CM_ERR_ILLEGAL_ARGUMENTS);
    assert_false(cm_disk_get(fsm, 2, NULL));
    /* the separator: "h1" + "/a" is not "h" + "1/a" */
    assert_int_equal(add(fsm, 2, "h1", "/a", GIB), 0);
    assert_int_equal(add(fsm, 3, "h", "1/a", GIB), 0);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h1", "/a"), 2);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "1/a"), 3);
    /* id 0 and ids never handed out by /diskid/alloc */
    assert_int_equal(add(fsm, 0, "h", "/zero", GIB), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(add(fsm, 11, "h", "/eleven", GIB), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(cm_disk_count(fsm), 3);
    /* used chunks above the maximum clamp the free count at 0 */
    struct spec full = {.id = 4, .host = "h", .path = "/full", .size = 10 * CS, .used_chunk = 12};
    assert_int_equal(add_at(fsm, &full, T0), 0);
    assert_int_equal(info(fsm, 4).free_chunk_cnt, 0);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_heartbeat_counters(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 3);
    assert_int_equal(add(fsm, 1, "h", "/a", 100 * CS), 0);
    assert_int_equal(add(fsm, 2, "h", "/b", 100 * CS), 0);
    struct cm_disk_hb hb[] = {
        /* free bytes bound the free chunks: min(200 - 10, 50) */
        {.disk_id = 1,
         .size = 200 * CS,
         .free = 50 * CS + 1,
         .used = 150 * CS,
         .used_chunk_cnt = 10},
        /* the chunk count binds: min(100 - 95, 80) */
        {.disk_id = 2, .size = 100 * CS, .free = 80 * CS, .used = 20 * CS, .used_chunk_cnt = 95},
        {.disk_id = 77, .size = 1, .free = 1}, /* unknown: skipped */
    };
    heartbeat_at(fsm, hb, 3, T0 + NS);
    struct cm_disk_info a = info(fsm, 1), b = info(fsm, 2);
    assert_int_equal(a.max_chunk_cnt, 200);
    assert_int_equal(a.free_chunk_cnt, 50);
    assert_int_equal(a.size, 200 * CS);
    assert_int_equal(a.free, 50 * CS + 1);
    assert_int_equal(a.used, 150 * CS);
    assert_int_equal(a.used_chunk_cnt, 10);
    assert_int_equal(b.free_chunk_cnt, 5);
    /* more used chunks than the maximum: clamped at 0 */
    struct cm_disk_hb over = {.disk_id = 2, .size = 10 * CS, .free = 10 * CS, .used_chunk_cnt = 11};
    heartbeat_at(fsm, &over, 1, T0 + 2 * NS);
    assert_int_equal(info(fsm, 2).free_chunk_cnt, 0);
    assert_false(cm_disk_get(fsm, 77, NULL));
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_lifecycle_and_filter_release(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 10);
    assert_int_equal(add(fsm, 1, "h", "/a", GIB), 0);
    assert_int_equal(set_status(fsm, 1, CM_DISK_NORMAL), 0); /* same: no-op */
    assert_int_equal(set_status(fsm, 1, CM_DISK_REPAIRING), CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW);
    assert_int_equal(info(fsm, 1).status, CM_DISK_NORMAL);
    assert_int_equal(set_status(fsm, 1, CM_DISK_BROKEN), 0);
    assert_int_equal(set_status(fsm, 1, CM_DISK_NORMAL), CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW);
    assert_int_equal(set_status(fsm, 1, 9), CM_ERR_INVALID_DISK_STATUS);
    assert_int_equal(set_status(fsm, 5, CM_DISK_BROKEN), CM_ERR_DISK_NOT_FOUND);
    /* still registered while broken or repairing */
    assert_int_equal(add(fsm, 2, "h", "/a", GIB), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(set_status(fsm, 1, CM_DISK_REPAIRING), 0);
    check(fsm);
    assert_int_equal(set_status(fsm, 1, CM_DISK_REPAIRED), 0);
    /* repaired releases host+path: a new disk can take the place */
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "/a"), 0);
    assert_int_equal(add(fsm, 2, "h", "/a", GIB), 0);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "/a"), 2);
    check(fsm);

    /* admin update: any status, no rules, but the indexes follow; reviving disk 1 would give
     * h/a to two disks and is refused */
    assert_int_equal(admin(fsm, 1, CM_DISK_NORMAL, 0, 0), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(info(fsm, 1).status, CM_DISK_REPAIRED);
    assert_int_equal(admin(fsm, 2, CM_DISK_REPAIRED, 0, 0), 0);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "/a"), 0);
    assert_int_equal(admin(fsm, 1, CM_DISK_NORMAL, 0, 0), 0);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "/a"), 1);
    struct cm_disk_filter f = {.status = CM_DISK_NORMAL};
    uint32_t ids[8];
    assert_int_equal(cm_disk_list(fsm, &f, 0, ids, 8), 1);
    assert_int_equal(ids[0], 1);
    /* chunk counts: only positive values are taken; 0 or out-of-range status changes nothing */
    assert_int_equal(admin(fsm, 1, 0, 500, 0), 0);
    assert_int_equal(info(fsm, 1).max_chunk_cnt, 500);
    assert_int_equal(admin(fsm, 1, 17, 0, 321), 0);
    assert_int_equal(info(fsm, 1).free_chunk_cnt, 321);
    assert_int_equal(info(fsm, 1).status, CM_DISK_NORMAL);
    assert_int_equal(admin(fsm, 9, 1, 1, 1), CM_ERR_DISK_NOT_FOUND);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_drop_and_readonly(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 5);
    for (uint32_t i = 1; i <= 3; i++) {
        char p[16];
        snprintf(p, sizeof p, "/d%u", i);
        assert_int_equal(add(fsm, i, "h", p, GIB), 0);
    }
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROPPED, 1), CM_ERR_CHANGE_DISK_STATUS_NOT_ALLOW);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROP, 1), 0);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROP, 1), 0); /* already dropping: no-op */
    assert_true(info(fsm, 1).dropping);
    assert_int_equal(set_status(fsm, 2, CM_DISK_BROKEN), 0);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROP, 2), CM_ERR_DISK_ABNORMAL);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROP, 9), CM_ERR_DISK_NOT_FOUND);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROP, 3), 0);
    size_t n;
    uint32_t *ids = cm_disk_dropping(fsm, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    free(ids);
    check(fsm);
    /* a dropping disk that broke meanwhile is still dropped from its status */
    assert_int_equal(set_status(fsm, 3, CM_DISK_BROKEN), 0);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROPPED, 3), 0);
    assert_int_equal(info(fsm, 3).status, CM_DISK_DROPPED);
    assert_false(info(fsm, 3).dropping);
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROPPED, 3), 0); /* already dropped: no-op */
    assert_int_equal(op_id(fsm, CM_DISK_OP_DROPPED, 1), 0);
    ids = cm_disk_dropping(fsm, &n);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(cm_disk_hostpath_owner(fsm, "h", "/d1"), 0);
    /* no units anywhere until the volume module exists */
    assert_int_equal(cm_volume_units_on_disk(fsm, 1), 0);

    assert_int_equal(access_(fsm, 4, true), CM_ERR_DISK_NOT_FOUND);
    assert_int_equal(add(fsm, 4, "h", "/d4", GIB), 0);
    assert_int_equal(access_(fsm, 4, true), 0);
    assert_true(info(fsm, 4).readonly);
    assert_false(cm_disk_writable(fsm, 4, T0));
    assert_int_equal(access_(fsm, 4, false), 0);
    assert_true(cm_disk_writable(fsm, 4, T0));
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_expiry_stamped_by_proposer(void **state)
{
    (void)state;
    /* two nodes with different lease lengths in their own configs: the proposer's wins */
    struct cm_config other;
    load_cfg(&other, "[\"z0\"]", ",\"disk_mgr_config\":{\"heartbeat_expire_interval_s\":5}");
    assert_int_equal(cfg.heartbeat_expire_interval_s, 60);
    struct cm_fsm *a = new_fsm(&cfg), *b = new_fsm(&other);
    struct spec s = {.id = 1, .host = "h", .path = "/a", .size = 10 * CS, .free = 10 * CS};
    for (int k = 0; k < 2; k++) {
        struct cm_fsm *f = k ? b : a;
        alloc_ids(f, 2);
        /* the command was encoded by node a (60 s) */
        struct cm_disk_info d = {.disk_id = 1,
                                 .cluster_id = 1,
                                 .idc = "z0",
                                 .rack = "r",
                                 .host = s.host,
                                 .path = s.path,
                                 .create_time = "x",
                                 .last_update_time = "y",
                                 .status = 1,
                                 .size = s.size,
                                 .free = s.free};
        struct cm_buf buf = {0};
        cm_disk_enc_add(&buf, &d, &cfg.fsm);
        assert_int_equal(apply_at(f, CM_MOD_DISK, CM_DISK_OP_ADD, &buf, T0), 0);
        assert_int_equal(info(f, 1).expire_ns, T0 + 60 * NS);
        struct cm_disk_hb hb = {.disk_id = 1, .size = 10 * CS, .free = 10 * CS};
        struct cm_buf hbuf = {0};
        cm_disk_enc_heartbeat(&hbuf, &hb, 1, &cfg.fsm);
        apply_at(f, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, &hbuf, T0 + 30 * NS);
        assert_int_equal(info(f, 1).expire_ns, T0 + 90 * NS);
        assert_int_equal(info(f, 1).last_expire_ns, T0 + 60 * NS);
    }
    /* readers compare with their clock: before the end, writable; after, expired */
    for (int k = 0; k < 2; k++) {
        struct cm_fsm *f = k ? b : a;
        struct json_object *ss = cm_disk_space_stat(f, T0 + 89 * NS);
        assert_int_equal(stat_field(idc_stat(ss, "z0"), "expired"), 0);
        assert_true(stat_field(ss, "writable_space") > 0);
        json_object_put(ss);
        ss = cm_disk_space_stat(f, T0 + 90 * NS);
        assert_int_equal(stat_field(idc_stat(ss, "z0"), "expired"), 1);
        assert_int_equal(stat_field(idc_stat(ss, "z0"), "available"), 1);
        assert_int_equal(stat_field(ss, "writable_space"), 0);
        assert_int_equal(stat_field(ss, "total_blob_node"), 0);
        assert_int_equal(stat_field(ss, "total_space"), 10 * CS); /* expired still counted */
        json_object_put(ss);
        check(f);
        assert_false(cm_disk_writable(f, 1, T0 + 90 * NS));
        uint64_t rng = 1;
        uint32_t out[1];
        assert_int_equal(cm_disk_place(f, "z0", 1, NULL, 0, T0 + 91 * NS, &rng, out),
                         CM_DISK_ENOSPC);
        /* the clock going back makes it live again */
        ss = cm_disk_space_stat(f, T0 + 10 * NS);
        assert_int_equal(stat_field(idc_stat(ss, "z0"), "expired"), 0);
        json_object_put(ss);
        check(f);
        /* a late heartbeat revives it */
        cm_disk_advance(f, T0 + 100 * NS);
        struct cm_disk_hb hb = {.disk_id = 1, .size = 10 * CS, .free = 10 * CS};
        heartbeat_at(f, &hb, 1, T0 + 120 * NS);
        assert_int_equal(info(f, 1).expire_ns, T0 + (k ? 125 : 180) * NS);
        ss = cm_disk_space_stat(f, T0 + 121 * NS);
        assert_int_equal(stat_field(idc_stat(ss, "z0"), "expired"), 0);
        json_object_put(ss);
        check(f);
    }
    cm_fsm_free(a);
    cm_fsm_free(b);
    cm_config_free(&other);
}

/* ---- listing ---- */

static bool matches(const struct cm_disk_info *d, const struct cm_disk_filter *f)
{
    return (!f->idc || strcmp(d->idc, f->idc) == 0) &&
           (!f->rack || strcmp(d->rack, f->rack) == 0) &&
           (!f->host || strcmp(d->host, f->host) == 0) &&
           (f->status < 1 || f->status > 5 || d->status == f->status);
}

static void test_list_order_and_paging(void **state)
{
    (void)state;
    struct cm_config c3;
    load_cfg(&c3, "[\"z0\",\"z1\",\"z2\"],\"unavailable_idc\":\"z2\"", NULL);
    struct cm_fsm *fsm = new_fsm(&c3);
    const uint32_t N = 300;
    alloc_ids(fsm, N + 20);
    /* add in a scrambled order so that no set is filled in id order */
    static const char *const idcs[] = {"z0", "z1", "z2"};
    static const char *const racks[] = {"ra", "rb"};
    for (uint32_t k = 0; k < N; k++) {
        uint32_t id = 1 + (k * 37) % (N + 13); /* distinct for k < N, gaps up to N+13 */
        char host[32], path[32];
        snprintf(host, sizeof host, "http://h%u", id % 11);
        snprintf(path, sizeof path, "/p%u", id);
        struct spec s = {.id = id,
                         .idc = idcs[id % 11 % 3],
                         .rack = racks[id % 2],
                         .host = host,
                         .path = path,
                         .size = GIB,
                         .free = GIB};
        assert_int_equal(add_at(fsm, &s, T0), 0);
    }
    for (uint32_t id = 1; id <= N + 13; id += 5)
        if (cm_disk_get(fsm, id, NULL))
            set_status(fsm, id, CM_DISK_BROKEN);
    check(fsm);
    struct cm_disk_filter filters[] = {
        {0},
        {.status = CM_DISK_BROKEN},
        {.status = CM_DISK_NORMAL},
        {.status = 9}, /* out of range: no filter */
        {.idc = "z1"},
        {.idc = "z1", .rack = "rb"},
        {.idc = "z1", .rack = "rb", .status = CM_DISK_BROKEN},
        {.host = "http://h3"},
        {.host = "http://h3", .status = CM_DISK_NORMAL},
        {.host = "http://h3", .idc = "z0"}, /* h3 is in z0: nothing */
        {.host = "http://h4", .idc = "z1", .rack = "ra"},
        {.host = "nope"},
        {.idc = "z9"},
        {.idc = "z0", .rack = "nope"},
    };
    uint32_t *want = cm_malloc(1024 * sizeof *want);
    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++) {
        const struct cm_disk_filter *f = &filters[fi];
        size_t nw = 0;
        for (uint32_t id = 1; id <= N + 20; id++) {
            struct cm_disk_info d;
            if (cm_disk_get(fsm, id, &d) && matches(&d, f))
                want[nw++] = id;
        }
        for (size_t page = 1; page <= 8; page += 3) {
            /* page through: ascending ids, each page strictly after the marker */
            size_t got = 0;
            uint32_t marker = 0, ids[16];
            for (;;) {
                size_t n = cm_disk_list(fsm, f, marker, ids, page);
                if (n == 0)
                    break;
                for (size_t i = 0; i < n; i++) {
                    assert_true(got < nw);
                    assert_int_equal(ids[i], want[got]);
                    got++;
                }
                marker = ids[n - 1];
            }
            assert_int_equal(got, nw);
        }
        /* a marker between ids starts at the next id */
        if (nw > 2) {
            uint32_t ids[4];
            size_t n = cm_disk_list(fsm, f, want[1] - 1 > want[0] ? want[1] - 1 : want[0], ids, 1);
            assert_int_equal(n, 1);
            assert_int_equal(ids[0], want[1]);
        }
    }
    free(want);
    cm_fsm_free(fsm);
    cm_config_free(&c3);
}

/* ---- snapshot ---- */

static void build_state(struct cm_fsm *fsm, bool reverse)
{
    alloc_ids(fsm, 60);
    for (uint32_t k = 0; k < 50; k++) {
        uint32_t id = reverse ? 50 - k : k + 1;
        char host[32], path[32];
        snprintf(host, sizeof host, "http://10.0.%u.1:8899", id % 7);
        snprintf(path, sizeof path, "/data/%u", id);
        struct spec s = {.id = id,
                         .rack = id % 2 ? "odd" : "even",
                         .host = host,
                         .path = path,
                         .size = (int64_t)id * GIB,
                         .free = (int64_t)id * GIB / 2,
                         .used_chunk = id};
        assert_int_equal(add_at(fsm, &s, T0 + id), 0);
    }
    struct cm_disk_hb hb[10];
    for (uint32_t i = 0; i < 10; i++)
        hb[i] = (struct cm_disk_hb){.disk_id = 3 * i + 1,
                                    .size = 8 * GIB,
                                    .free = (int64_t)i * GIB,
                                    .used = 8 * GIB - (int64_t)i * GIB,
                                    .used_chunk_cnt = i};
    heartbeat_at(fsm, hb, 10, T0 + 5 * NS);
    set_status(fsm, 4, CM_DISK_BROKEN);
    set_status(fsm, 4, CM_DISK_REPAIRING);
    op_id(fsm, CM_DISK_OP_DROP, 6);
    op_id(fsm, CM_DISK_OP_DROP, 8);
    op_id(fsm, CM_DISK_OP_DROPPED, 8);
    access_(fsm, 10, true);
    admin(fsm, 12, 0, 999, 0);
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    struct cm_fsm *a = new_fsm(&cfg);
    build_state(a, false);
    struct cm_buf s1 = {0}, s2 = {0}, s3 = {0};
    cm_fsm_snapshot(a, &s1);
    char err[256];
    struct cm_fsm *b = new_fsm(&cfg);
    alloc_ids(b, 3);
    assert_int_equal(add(b, 1, "junk", "/junk", GIB), 0);
    assert_int_equal(cm_fsm_restore(b, s1.data, s1.len, err, sizeof err), 0);
    check(b);
    assert_int_equal(cm_disk_count(b), 50);
    struct cm_disk_info x = info(a, 10), y = info(b, 10);
    assert_string_equal(x.host, y.host);
    assert_true(y.readonly);
    assert_int_equal(info(b, 4).status, CM_DISK_REPAIRING);
    assert_true(info(b, 6).dropping);
    assert_int_equal(info(b, 8).status, CM_DISK_DROPPED);
    assert_int_equal(info(b, 12).max_chunk_cnt, 999);
    assert_int_equal(info(b, 1).expire_ns, T0 + 5 * NS + 60 * NS);
    assert_int_equal(info(b, 1).last_expire_ns, T0 + 1 + 60 * NS);
    assert_int_equal(cm_disk_hostpath_owner(b, "junk", "/junk"), 0);
    /* byte-identical: restored, and built in another order */
    cm_fsm_snapshot(b, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    struct cm_fsm *c = new_fsm(&cfg);
    build_state(c, true);
    cm_fsm_snapshot(c, &s3);
    assert_int_equal(s1.len, s3.len);
    assert_memory_equal(s1.data, s3.data, s1.len);
    /* the same /stat from all three */
    struct json_object *sa = cm_disk_space_stat(a, T0), *sb = cm_disk_space_stat(b, T0),
                       *sc = cm_disk_space_stat(c, T0);
    assert_string_equal(json_object_to_json_string(sa), json_object_to_json_string(sb));
    assert_string_equal(json_object_to_json_string(sa), json_object_to_json_string(sc));
    json_object_put(sa);
    json_object_put(sb);
    json_object_put(sc);
    cm_buf_free(&s1);
    cm_buf_free(&s2);
    cm_buf_free(&s3);
    cm_fsm_free(a);
    cm_fsm_free(b);
    cm_fsm_free(c);
}

static void test_garbage_payloads(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 2);
    assert_int_equal(add(fsm, 1, "h", "/a", GIB), 0);
    uint64_t before = fsm->n_rejected;
    for (uint8_t op = 0; op <= 9; op++) {
        struct cm_buf b = {0};
        cm_put_u8(&b, 1); /* truncated everything */
        int code = apply_at(fsm, CM_MOD_DISK, op, &b, T0);
        assert_int_equal(code, 900);
    }
    /* a heartbeat that claims more entries than it carries */
    struct cm_buf b = {0};
    cm_put_u32(&b, 60);
    cm_put_u64(&b, CS);
    cm_put_uvar(&b, 1000000);
    cm_put_u32(&b, 1);
    assert_int_equal(apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, &b, T0), 900);
    /* an add with an invalid status */
    struct cm_disk_info d = {.disk_id = 2,
                             .idc = "z0",
                             .rack = "",
                             .host = "h",
                             .path = "/b",
                             .create_time = "",
                             .last_update_time = "",
                             .status = 7};
    struct cm_buf ab = {0};
    cm_disk_enc_add(&ab, &d, &cfg.fsm);
    assert_int_equal(apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &ab, T0), 900);
    /* numbers beyond the bounds: an add is refused, a heartbeat entry skipped */
    struct cm_disk_info huge = {.disk_id = 2,
                                .idc = "z0",
                                .rack = "",
                                .host = "h",
                                .path = "/b",
                                .create_time = "",
                                .last_update_time = "",
                                .status = 1,
                                .size = CM_DISK_BYTES_MAX + 1};
    struct cm_buf hb = {0};
    cm_disk_enc_add(&hb, &huge, &cfg.fsm);
    assert_int_equal(apply_at(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &hb, T0), 900);
    struct cm_disk_hb big = {.disk_id = 1, .size = INT64_MAX, .free = INT64_MAX};
    heartbeat_at(fsm, &big, 1, T0);
    assert_int_equal(info(fsm, 1).size, GIB);
    assert_int_equal(fsm->n_rejected, before + 13);
    assert_int_equal(cm_disk_count(fsm), 1);
    assert_int_equal(info(fsm, 1).status, CM_DISK_NORMAL);
    check(fsm);
    cm_fsm_free(fsm);
}

/* Found by fuzzing snapshot restore: a record with a disk id near 2^32 made the dense table
 * grow to 2^32 entries (an allocation of 32 GiB, and an abort). Such ids are refused, by a
 * snapshot load and by an add. */
static void test_disk_id_bound(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    struct cm_buf b = {0};
    cm_put_str(&b, "diskid");
    cm_put_u64(&b, UINT32_MAX);
    assert_int_equal(apply_at(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, T0), 0);
    assert_int_equal(add(fsm, UINT32_MAX - 1, "h", "/big", GIB), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(add(fsm, CM_DISK_ID_MAX + 1, "h", "/big", GIB), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(add(fsm, CM_DISK_ID_MAX, "h", "/max", GIB), 0);
    assert_int_equal(cm_disk_count(fsm), 1);
    check(fsm);
    /* a snapshot record beyond the bound is refused and the state kept */
    struct cm_buf snap = {0};
    cm_fsm_snapshot(fsm, &snap);
    struct cm_fsm *other = new_fsm(&cfg);
    char err[256];
    assert_int_equal(cm_fsm_restore(other, snap.data, snap.len, err, sizeof err), 0);
    assert_int_equal(cm_disk_count(other), 1);
    uint8_t *p = memmem(snap.data, snap.len, "\x01\x00\x00\x00\x00\x00\x00\x01", 8);
    assert_non_null(p); /* the disk record: u32 id 2^24, u32 cluster id 1 */
    cm_wbe32(p, UINT32_MAX - 1);
    cm_wbe32((uint8_t *)snap.data + snap.len - 4,
             (uint32_t)crc32(0L, (const Bytef *)snap.data, (uInt)(snap.len - 4)));
    assert_int_equal(cm_fsm_restore(other, snap.data, snap.len, err, sizeof err), -1);
    assert_non_null(strstr(err, "disk record 0"));
    assert_int_equal(cm_disk_count(other), 1);
    assert_true(cm_disk_get(other, CM_DISK_ID_MAX, NULL));
    cm_buf_free(&snap);
    cm_fsm_free(other);
    cm_fsm_free(fsm);
}

/* A snapshot stream with only a disk section holding one record with these numbers. */
static void disk_snapshot(struct cm_buf *out, int64_t size, int64_t max_chunk, int64_t used_chunk)
{
    struct cm_buf sec = {0};
    cm_put_uvar(&sec, 1);
    cm_put_u32(&sec, 1); /* id */
    cm_put_u32(&sec, 1); /* cluster */
    cm_put_str(&sec, "z0");
    cm_put_str(&sec, "r0");
    cm_put_str(&sec, "h");
    cm_put_str(&sec, "/p");
    cm_put_u8(&sec, CM_DISK_NORMAL);
    cm_put_u8(&sec, 0); /* readonly */
    cm_put_u8(&sec, 0); /* dropping */
    cm_put_str(&sec, "");
    cm_put_str(&sec, "");
    int64_t nums[] = {0, size, size, max_chunk, max_chunk, used_chunk, 0, 0};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        cm_put_u64(&sec, (uint64_t)nums[i]);
    cm_buf_append(out, "CMSNAP01", 8);
    cm_put_u32(out, 1);
    cm_put_u8(out, CM_MOD_DISK);
    cm_put_u64(out, sec.len);
    cm_buf_append(out, sec.data, sec.len);
    cm_put_u32(out, (uint32_t)crc32(0L, (const Bytef *)out->data, (uInt)out->len));
    cm_buf_free(&sec);
}

/* Found by fuzzing snapshot restore: records were loaded with any numbers, so sums over the
 * disks (space_stat, placement weights) overflowed -- undefined behaviour. A record is held to
 * the bounds apply keeps: bytes in 0..2^50, chunk counts in 0..2^32. */
static void test_snapshot_numbers_bounded(void **state)
{
    (void)state;
    struct {
        int64_t size, max_chunk, used_chunk;
        int rc;
    } cases[] = {
        {GIB, 64, 1, 0},
        {CM_DISK_BYTES_MAX, CM_DISK_CHUNKS_MAX, CM_DISK_CHUNKS_MAX, 0},
        {CM_DISK_BYTES_MAX + 1, 64, 1, -1},
        {-1, 64, 1, -1},
        {INT64_MAX, 64, 1, -1},
        {GIB, CM_DISK_CHUNKS_MAX + 1, 1, -1},
        {GIB, 64, -1, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cm_fsm *fsm = new_fsm(&cfg);
        struct cm_buf snap = {0};
        disk_snapshot(&snap, cases[i].size, cases[i].max_chunk, cases[i].used_chunk);
        char err[256];
        assert_int_equal(cm_fsm_restore(fsm, snap.data, snap.len, err, sizeof err), cases[i].rc);
        assert_int_equal(cm_disk_count(fsm), cases[i].rc == 0);
        check(fsm);
        struct json_object *ss = cm_disk_space_stat(fsm, T0);
        json_object_put(ss);
        cm_buf_free(&snap);
        cm_fsm_free(fsm);
    }
}

/* ---- space_stat ---- */

static void test_space_stat_exact(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 20);
    /* host A: 2 disks, host B: 1 disk, plus one readonly, one broken, one dropping on C */
    struct spec specs[] = {
        {.id = 1, .host = "A", .path = "/1", .size = 100 * CS, .free = 60 * CS + 7},
        {.id = 2, .host = "A", .path = "/2", .size = 100 * CS, .free = 50 * CS, .used_chunk = 3},
        {.id = 3, .host = "B", .path = "/1", .size = 200 * CS, .free = 200 * CS},
        {.id = 4, .host = "C", .path = "/1", .size = 100 * CS, .free = 100 * CS},
        {.id = 5, .host = "C", .path = "/2", .size = 100 * CS, .free = 100 * CS},
        {.id = 6, .host = "C", .path = "/3", .size = 100 * CS, .free = 100 * CS},
    };
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(add_at(fsm, &specs[i], T0), 0);
    access_(fsm, 4, true);
    set_status(fsm, 5, CM_DISK_BROKEN);
    op_id(fsm, CM_DISK_OP_DROP, 6);
    struct json_object *ss = cm_disk_space_stat(fsm, T0 + NS);
    /* available: 1, 2, 3; normal but readonly or dropping: 4, 6 (v3.5.1 accounting: in the
     * total, their free bytes are readonly_space, used = total - free - readonly) */
    assert_int_equal(stat_field(ss, "total_space"), 600 * CS);
    assert_int_equal(stat_field(ss, "free_space"), 310 * CS + 7);
    assert_int_equal(stat_field(ss, "readonly_space"), 200 * CS);
    assert_int_equal(stat_field(ss, "used_space"), 90 * CS - 7);
    assert_int_equal(stat_field(ss, "total_blob_node"), 2);
    assert_int_equal(stat_field(ss, "total_disk"), 6);
    /* EC3P3 on one IDC: k = 6; c(A) = (110 CS + 7) / CS = 110, c(B) = 200; 310 / 6 = 51 */
    assert_int_equal(stat_field(ss, "writable_space"), 51 * 3 * CS);
    struct json_object *z = idc_stat(ss, "z0");
    assert_int_equal(stat_field(z, "total"), 6);
    assert_int_equal(stat_field(z, "total_chunk"), 700);
    assert_int_equal(stat_field(z, "total_free_chunk"), 100 + 97 + 200 + 300);
    assert_int_equal(stat_field(z, "available"), 3);
    assert_int_equal(stat_field(z, "readonly"), 1);
    assert_int_equal(stat_field(z, "broken"), 1);
    assert_int_equal(stat_field(z, "dropping"), 1);
    assert_int_equal(stat_field(z, "expired"), 0);
    assert_int_equal(
        stat_field(z, "repairing") + stat_field(z, "repaired") + stat_field(z, "dropped"), 0);
    json_object_put(ss);
    check(fsm);
    cm_fsm_free(fsm);

    /* host-aware: 7 hosts of 10 chunks, k = 6. Greedy: one round of 10 stripes, then only one
     * host is left -> 10 (not 70 / 6 = 11) */
    struct cm_config ha;
    load_cfg(&ha, "[\"z0\"]", ",\"disk_mgr_config\":{\"host_aware\":true}");
    for (int aware = 0; aware < 2; aware++) {
        fsm = new_fsm(aware ? &ha : &cfg);
        alloc_ids(fsm, 7);
        for (uint32_t i = 1; i <= 7; i++) {
            char h[8];
            snprintf(h, sizeof h, "H%u", i);
            assert_int_equal(add(fsm, i, h, "/d", 10 * CS), 0);
        }
        ss = cm_disk_space_stat(fsm, T0);
        assert_int_equal(stat_field(ss, "writable_space"), (aware ? 10 : 11) * 3 * CS);
        assert_int_equal(stat_field(ss, "total_blob_node"), 7);
        json_object_put(ss);
        cm_fsm_free(fsm);
    }
    cm_config_free(&ha);

    /* three IDCs (k = 6 / 3 = 2), host-aware, each IDC uses its own hosts: z0 has hosts of
     * 3, 3, 3 chunks (greedy: 3 stripes), z1 has 5 and 5 (5 stripes), z2 is empty (ignored) */
    load_cfg(&ha, "[\"z0\",\"z1\",\"z2\"],\"unavailable_idc\":\"z2\"",
             ",\"disk_mgr_config\":{\"host_aware\":true}");
    fsm = new_fsm(&ha);
    alloc_ids(fsm, 5);
    struct spec m[] = {
        {.id = 1, .idc = "z0", .host = "a", .path = "/", .size = 3 * CS, .free = 3 * CS},
        {.id = 2, .idc = "z0", .host = "b", .path = "/", .size = 3 * CS, .free = 3 * CS},
        {.id = 3, .idc = "z0", .host = "c", .path = "/", .size = 3 * CS, .free = 3 * CS},
        {.id = 4, .idc = "z1", .host = "d", .path = "/", .size = 5 * CS, .free = 5 * CS},
        {.id = 5, .idc = "z1", .host = "e", .path = "/", .size = 5 * CS, .free = 5 * CS},
    };
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(add_at(fsm, &m[i], T0), 0);
    ss = cm_disk_space_stat(fsm, T0);
    assert_int_equal(stat_field(ss, "writable_space"), 3 * 3 * CS);
    /* every configured IDC listed once; blob nodes summed per entry of the idc list */
    assert_int_equal(stat_field(ss, "total_blob_node"), 5);
    assert_int_equal(stat_field(idc_stat(ss, "z2"), "total"), 0);
    assert_int_equal(stat_field(idc_stat(ss, "z1"), "total_chunk"), 10);
    json_object_put(ss);
    cm_fsm_free(fsm);
    cm_config_free(&ha);

    /* duplicated IDC names count their hosts once per entry and divide by the full length */
    load_cfg(&ha, "[\"z0\",\"z0\",\"z0\"],\"unavailable_idc\":\"z0\"", NULL);
    fsm = new_fsm(&ha);
    alloc_ids(fsm, 1);
    assert_int_equal(add(fsm, 1, "a", "/", 12 * CS), 0);
    ss = cm_disk_space_stat(fsm, T0);
    assert_int_equal(stat_field(ss, "total_blob_node"), 3);
    assert_int_equal(json_object_array_length(json_object_object_get(ss, "disk_stat_infos")), 1);
    assert_int_equal(stat_field(ss, "writable_space"), 6 * 3 * CS); /* 12 / (6 / 3) */
    json_object_put(ss);
    cm_fsm_free(fsm);
    cm_config_free(&ha);

    /* the largest disks allowed, many of them, and a tiny chunk: sums saturate, no overflow */
    struct cm_config tiny;
    load_cfg(&tiny, "[\"z0\"]", ",\"chunk_size\":1");
    fsm = new_fsm(&tiny);
    alloc_ids(fsm, 300);
    for (uint32_t i = 1; i <= 300; i++) {
        char h[16], p[16];
        snprintf(h, sizeof h, "h%u", i % 7);
        snprintf(p, sizeof p, "/%u", i);
        struct spec s = {
            .id = i, .host = h, .path = p, .size = CM_DISK_BYTES_MAX, .free = CM_DISK_BYTES_MAX};
        assert_int_equal(add_at(fsm, &s, T0), 0);
    }
    assert_int_equal(info(fsm, 1).max_chunk_cnt, CM_DISK_CHUNKS_MAX);
    admin(fsm, 2, 0, INT64_MAX, INT64_MAX);
    assert_int_equal(info(fsm, 2).free_chunk_cnt, CM_DISK_CHUNKS_MAX);
    ss = cm_disk_space_stat(fsm, T0);
    assert_int_equal(stat_field(ss, "total_space"), 300 * CM_DISK_BYTES_MAX);
    assert_true(stat_field(ss, "writable_space") > 0);
    json_object_put(ss);
    uint64_t rng = 1;
    uint32_t out[3];
    assert_int_equal(cm_disk_place(fsm, "z0", 3, NULL, 0, T0, &rng, out), 0);
    check(fsm);
    cm_fsm_free(fsm);
    cm_config_free(&tiny);
}

/* ---- placement ---- */

static void test_placement_distribution(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 3);
    /* weights 100 : 200 : 300 on three hosts */
    for (uint32_t i = 1; i <= 3; i++) {
        char h[8];
        snprintf(h, sizeof h, "H%u", i);
        assert_int_equal(add(fsm, i, h, "/d", (int64_t)i * 100 * CS), 0);
    }
    int64_t w0 = cm_disk_idc_weight(fsm, "z0");
    assert_int_equal(w0, 600);
    uint64_t rng = 42;
    int hits[4] = {0};
    const int rounds = 60000;
    for (int k = 0; k < rounds; k++) {
        uint32_t out;
        assert_int_equal(cm_disk_place(fsm, "z0", 1, NULL, 0, T0, &rng, &out), 0);
        hits[out]++;
    }
    for (int i = 1; i <= 3; i++) {
        double share = (double)hits[i] / rounds, want = i / 6.0;
        if (share < want - 0.015 || share > want + 0.015)
            fail_msg("disk %d chosen %.3f of the time, want %.3f", i, share, want);
    }
    /* choosing leaves the index as it was */
    assert_int_equal(cm_disk_idc_weight(fsm, "z0"), w0);
    check(fsm);
    /* a charge lowers the weight until the next heartbeat */
    cm_disk_charge(fsm, 3, 50);
    assert_int_equal(cm_disk_idc_weight(fsm, "z0"), w0 - 50);
    check(fsm);
    struct cm_disk_hb hb = {.disk_id = 3, .size = 300 * CS, .free = 300 * CS};
    heartbeat_at(fsm, &hb, 1, T0);
    assert_int_equal(cm_disk_idc_weight(fsm, "z0"), w0);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_placement_constraints(void **state)
{
    (void)state;
    struct cm_config ha, ra;
    load_cfg(&ha, "[\"z0\",\"z1\",\"z2\"],\"unavailable_idc\":\"z2\"",
             ",\"disk_mgr_config\":{\"host_aware\":true}");
    load_cfg(&ra, "[\"z0\",\"z1\",\"z2\"],\"unavailable_idc\":\"z2\"",
             ",\"disk_mgr_config\":{\"host_aware\":true,\"rack_aware\":true}");
    struct cm_config *cfgs[] = {&cfg, &ha, &ra};
    for (int mode = 0; mode < 3; mode++) {
        struct cm_fsm *fsm = new_fsm(cfgs[mode]);
        /* z0: 3 racks x 2 hosts x 3 disks; disk id = 1 + rack*6 + host*3 + disk */
        alloc_ids(fsm, 40);
        for (uint32_t r = 0; r < 3; r++)
            for (uint32_t h = 0; h < 2; h++)
                for (uint32_t k = 0; k < 3; k++) {
                    char rack[8], host[16], path[8];
                    snprintf(rack, sizeof rack, "R%u", r);
                    snprintf(host, sizeof host, "R%uH%u", r, h);
                    snprintf(path, sizeof path, "/%u", k);
                    struct spec s = {.id = 1 + r * 6 + h * 3 + k,
                                     .rack = rack,
                                     .host = host,
                                     .path = path,
                                     .size = 10 * CS,
                                     .free = 10 * CS};
                    assert_int_equal(add_at(fsm, &s, T0), 0);
                }
        /* non-writable disks in the same IDC are never chosen */
        struct spec bad[] = {
            {.id = 30,
             .rack = "R0",
             .host = "R0H0",
             .path = "/ro",
             .size = 999 * CS,
             .free = 999 * CS},
            {.id = 31,
             .rack = "R0",
             .host = "R0H0",
             .path = "/br",
             .size = 999 * CS,
             .free = 999 * CS},
            {.id = 32,
             .rack = "R1",
             .host = "R1H0",
             .path = "/dr",
             .size = 999 * CS,
             .free = 999 * CS},
            {.id = 33,
             .rack = "R9",
             .host = "EXP",
             .path = "/ex",
             .size = 999 * CS,
             .free = 999 * CS},
            {.id = 34,
             .rack = "R9",
             .host = "FULL",
             .path = "/f",
             .size = 999 * CS,
             .used_chunk = 999},
            {.id = 35,
             .idc = "z1",
             .rack = "R0",
             .host = "OTHER",
             .path = "/",
             .size = 999 * CS,
             .free = 999 * CS},
        };
        for (size_t i = 0; i < 6; i++)
            assert_int_equal(add_at(fsm, &bad[i], i == 3 ? T0 - 3600 * NS : T0), 0);
        access_(fsm, 30, true);
        set_status(fsm, 31, CM_DISK_BROKEN);
        op_id(fsm, CM_DISK_OP_DROP, 32);
        cm_disk_advance(fsm, T0); /* disk 33's lease ended an hour ago */
        int64_t w0 = cm_disk_idc_weight(fsm, "z0");
        assert_int_equal(w0, 18 * 10);
        bool host_aware = mode > 0, rack_aware = mode == 2;
        uint64_t rng = 7 + (uint64_t)mode;
        uint32_t out[32];
        for (int round = 0; round < 300; round++) {
            unsigned want = host_aware ? 6 : 18;
            unsigned count = 1 + (unsigned)round % want;
            assert_int_equal(cm_disk_place(fsm, "z0", count, NULL, 0, T0, &rng, out), 0);
            int per_rack[3] = {0};
            for (unsigned i = 0; i < count; i++) {
                assert_true(out[i] >= 1 && out[i] <= 18);
                per_rack[(out[i] - 1) / 6]++;
                for (unsigned k = 0; k < i; k++) {
                    assert_int_not_equal(out[i], out[k]);
                    if (host_aware) /* distinct hosts */
                        assert_int_not_equal((out[i] - 1) / 3, (out[k] - 1) / 3);
                }
            }
            if (rack_aware) /* spread evenly: rounds over the racks */
                for (int r = 0; r < 3; r++)
                    assert_true(per_rack[r] >= (int)count / 3 &&
                                per_rack[r] <= ((int)count + 2) / 3);
        }
        /* one more than there is room for */
        assert_int_equal(cm_disk_place(fsm, "z0", host_aware ? 7 : 19, NULL, 0, T0, &rng, out),
                         CM_DISK_ENOSPC);
        /* exclusions: disk 1 (host R0H0) and disk 10 (host R1H1) */
        uint32_t ex[] = {1, 10, 35};
        for (int round = 0; round < 200; round++) {
            unsigned count = host_aware ? 4 : 16;
            assert_int_equal(cm_disk_place(fsm, "z0", count, ex, 3, T0, &rng, out), 0);
            for (unsigned i = 0; i < count; i++) {
                assert_true(out[i] != 1 && out[i] != 10);
                if (host_aware) /* the hosts of excluded disks are skipped as a whole */
                    assert_true((out[i] - 1) / 3 != 0 && (out[i] - 1) / 3 != 3);
            }
        }
        assert_int_equal(cm_disk_place(fsm, "z0", host_aware ? 5 : 17, ex, 3, T0, &rng, out),
                         CM_DISK_ENOSPC);
        /* unknown IDC, an IDC with less room than asked */
        assert_int_equal(cm_disk_place(fsm, "nope", 1, NULL, 0, T0, &rng, out), CM_DISK_ENOSPC);
        assert_int_equal(cm_disk_place(fsm, "z2", 1, NULL, 0, T0, &rng, out), CM_DISK_ENOSPC);
        assert_int_equal(cm_disk_place(fsm, "z1", 1, NULL, 0, T0, &rng, out), 0);
        assert_int_equal(out[0], 35);
        /* the index is unchanged after all that */
        assert_int_equal(cm_disk_idc_weight(fsm, "z0"), w0);
        check(fsm);
        cm_fsm_free(fsm);
    }
    cm_config_free(&ha);
    cm_config_free(&ra);
}

static void test_placement_tolerate_buffer(void **state)
{
    (void)state;
    struct cm_config tb;
    load_cfg(&tb, "[\"z0\"]", ",\"disk_mgr_config\":{\"alloc_tolerate_buffer\":5}");
    struct cm_fsm *fsm = new_fsm(&tb);
    alloc_ids(fsm, 2);
    assert_int_equal(add(fsm, 1, "a", "/", 5 * CS), 0); /* at the buffer: never chosen */
    assert_int_equal(add(fsm, 2, "b", "/", 8 * CS), 0);
    assert_int_equal(cm_disk_idc_weight(fsm, "z0"), 3);
    uint64_t rng = 3;
    uint32_t out[2];
    for (int i = 0; i < 50; i++) {
        assert_int_equal(cm_disk_place(fsm, "z0", 1, NULL, 0, T0, &rng, out), 0);
        assert_int_equal(out[0], 2);
    }
    assert_int_equal(cm_disk_place(fsm, "z0", 2, NULL, 0, T0, &rng, out), CM_DISK_ENOSPC);
    check(fsm);
    cm_fsm_free(fsm);
    cm_config_free(&tb);
}

/* A larger random workload keeps every aggregate consistent. */
static void test_random_ops_consistent(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm(&cfg);
    alloc_ids(fsm, 500);
    uint64_t rng = 99;
    for (int step = 0; step < 5000; step++) {
        uint32_t id = 1 + (uint32_t)(cm_disk_rand(&rng) % 500);
        int64_t ts = T0 + step * NS / 10;
        switch (cm_disk_rand(&rng) % 8) {
        case 0:
        case 1: {
            char h[16], p[16];
            snprintf(h, sizeof h, "h%u", id % 37);
            snprintf(p, sizeof p, "/%u", id % 13);
            struct spec s = {.id = id,
                             .rack = id % 3 ? "a" : "b",
                             .host = h,
                             .path = p,
                             .size = (int64_t)(cm_disk_rand(&rng) % 100) * CS,
                             .free = (int64_t)(cm_disk_rand(&rng) % 50) * CS};
            add_at(fsm, &s, ts);
            break;
        }
        case 2:
            set_status(fsm, id, (uint8_t)(1 + cm_disk_rand(&rng) % 5));
            break;
        case 3: {
            struct cm_disk_hb hb = {.disk_id = id,
                                    .size = (int64_t)(cm_disk_rand(&rng) % 100) * CS,
                                    .free = (int64_t)(cm_disk_rand(&rng) % 100) * CS,
                                    .used_chunk_cnt = (int64_t)(cm_disk_rand(&rng) % 20)};
            heartbeat_at(fsm, &hb, 1, ts);
            break;
        }
        case 4:
            op_id(fsm, cm_disk_rand(&rng) % 2 ? CM_DISK_OP_DROP : CM_DISK_OP_DROPPED, id);
            break;
        case 5:
            access_(fsm, id, cm_disk_rand(&rng) % 2);
            break;
        case 6:
            admin(fsm, id, (uint8_t)(cm_disk_rand(&rng) % 7), (int64_t)(cm_disk_rand(&rng) % 3),
                  (int64_t)(cm_disk_rand(&rng) % 3));
            break;
        case 7:
            cm_disk_advance(fsm, ts + 60 * NS);
            cm_disk_charge(fsm, id, 1);
            break;
        }
        if (step % 250 == 0)
            check(fsm);
    }
    check(fsm);
    struct cm_buf s1 = {0}, s2 = {0};
    cm_fsm_snapshot(fsm, &s1);
    struct cm_fsm *b = new_fsm(&cfg);
    char err[256];
    assert_int_equal(cm_fsm_restore(b, s1.data, s1.len, err, sizeof err), 0);
    check(b);
    cm_fsm_snapshot(b, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    cm_buf_free(&s1);
    cm_buf_free(&s2);
    cm_fsm_free(b);
    cm_fsm_free(fsm);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_rules),
        cmocka_unit_test(test_add_counters_and_filter),
        cmocka_unit_test(test_heartbeat_counters),
        cmocka_unit_test(test_lifecycle_and_filter_release),
        cmocka_unit_test(test_drop_and_readonly),
        cmocka_unit_test(test_expiry_stamped_by_proposer),
        cmocka_unit_test(test_list_order_and_paging),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_garbage_payloads),
        cmocka_unit_test(test_disk_id_bound),
        cmocka_unit_test(test_snapshot_numbers_bounded),
        cmocka_unit_test(test_space_stat_exact),
        cmocka_unit_test(test_placement_distribution),
        cmocka_unit_test(test_placement_constraints),
        cmocka_unit_test(test_placement_tolerate_buffer),
        cmocka_unit_test(test_random_ops_consistent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cm_config_free(&cfg);
    return rc;
}
