/* The node module: node registration, node-set and disk-set assignment (current-release.md §2.3),
 * drops, the snapshot section, and the same assignments after a snapshot restore. */
#include "testutil.h"

#include <json-c/json.h>
#include <zlib.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_node.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/http/errors.h"

#define GIB (1LL << 30)
#define T0 (1700000000LL * 1000000000LL)

static struct cm_config cfg;
static int last_code;
static uint64_t last_v0;

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)arg, (void)cmd;
    last_code = res->code;
    last_v0 = res->v[0];
}

static struct cm_fsm *new_fsm(void)
{
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    fsm->on_applied = record;
    return fsm;
}

static int apply(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *payload)
{
    static uint64_t req = 1;
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = req++,
                       .ts_ns = T0,
                       .payload = (const uint8_t *)payload->data,
                       .len = payload->len};
    last_code = 12345;
    assert_int_equal(cm_fsm_apply_cmd(fsm, &c), 0);
    cm_buf_free(payload);
    assert_int_not_equal(last_code, 12345);
    return last_code;
}

static void check(struct cm_fsm *fsm)
{
    char err[256];
    if (cm_node_selfcheck(fsm, err, sizeof err) != 0)
        fail_msg("node self-check: %s", err);
    if (cm_disk_selfcheck(fsm, err, sizeof err) != 0)
        fail_msg("disk self-check: %s", err);
}

static const struct cm_node_caps small = {.node_set_cap = 3,
                                          .node_set_rack_cap = 1,
                                          .node_set_idc_cap = 2,
                                          .disk_set_cap = 4,
                                          .disk_per_node = 2,
                                          .rack_aware = false};

/* Add a node; returns its id (or 0 with last_code set). */
static uint32_t add_node(struct cm_fsm *fsm, const char *host, const char *idc, const char *rack,
                         uint8_t type, uint32_t want_set, const struct cm_node_caps *caps)
{
    struct cm_node_info n = {
        .cluster_id = 1, .disk_type = type, .role = 1, .idc = idc, .rack = rack, .host = host};
    struct cm_buf b = {0};
    cm_node_enc_add(&b, &n, want_set, caps);
    return apply(fsm, CM_MOD_NODE, CM_NODE_OP_ADD, &b) == 0 ? (uint32_t)last_v0 : 0;
}

static uint32_t node_set(struct cm_fsm *fsm, uint32_t id)
{
    struct cm_node_info n;
    assert_true(cm_node_get(fsm, id, &n));
    return n.node_set_id;
}

static int add_disk(struct cm_fsm *fsm, uint32_t node_id, const char *path,
                    const struct cm_node_caps *caps)
{
    struct cm_buf b = {0};
    uint64_t id = cm_scope_reserve(fsm, "diskid", 1, &b);
    apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b);
    struct cm_node_info n = {.idc = "z0", .rack = "r0", .host = "h"};
    if (node_id)
        cm_node_get(fsm, node_id, &n);
    struct cm_disk_info d = {.disk_id = (uint32_t)id,
                             .cluster_id = 1,
                             .idc = n.idc,
                             .rack = n.rack,
                             .host = n.host,
                             .path = path,
                             .create_time = "2022-03-24T17:33:45Z",
                             .last_update_time = "2022-03-24T17:33:45Z",
                             .status = CM_DISK_NORMAL,
                             .size = 100 * GIB,
                             .free = 100 * GIB};
    cm_disk_enc_add(&b, &d, fsm->cfg);
    if (node_id)
        cm_disk_enc_add_node(&b, node_id, caps);
    int rc = apply(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &b);
    return rc == 0 ? (int)id : -rc;
}

static uint32_t disk_set(struct cm_fsm *fsm, uint32_t disk_id, bool *member)
{
    uint32_t node, set;
    cm_node_of_disk(fsm, disk_id, &node, &set, member);
    return set;
}

static int disk_op(struct cm_fsm *fsm, uint8_t op, uint32_t disk_id, uint8_t arg)
{
    struct cm_buf b = {0};
    if (op == CM_DISK_OP_SET_STATUS)
        cm_disk_enc_set_status(&b, disk_id, arg);
    else if (op == CM_DISK_OP_ACCESS)
        cm_disk_enc_access(&b, disk_id, arg);
    else
        cm_disk_enc_id(&b, disk_id);
    return apply(fsm, CM_MOD_DISK, op, &b);
}

static char *topo(struct cm_fsm *fsm)
{
    struct json_object *o = cm_node_topo_json(fsm);
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

static void test_add_is_idempotent_and_ids_come_from_the_scope(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    char *empty = topo(fsm);
    /* the reference's answer for an empty cluster, byte for byte */
    assert_string_equal(empty, "{\"cur_node_set_ids\":{\"blobnode\":1},\"cur_disk_set_ids\":"
                               "{\"blobnode\":1},\"all_node_sets\":{\"blobnode\":{}}}");
    free(empty);
    uint32_t a = add_node(fsm, "http://10.0.0.1:8899", "z0", "r0", CM_DISK_TYPE_HDD, 0, &small);
    assert_int_equal(a, 1);
    assert_int_equal(cm_scope_current(fsm, "nodeid"), 1);
    /* same host and disk type: the same id, nothing changes (not even the rack) */
    assert_int_equal(add_node(fsm, "http://10.0.0.1:8899", "z0", "other", 1, 0, &small), a);
    struct cm_node_info n;
    assert_true(cm_node_get(fsm, a, &n));
    assert_string_equal(n.rack, "r0");
    assert_int_equal(n.status, CM_NODE_NORMAL);
    assert_int_equal(n.node_set_id, 2); /* 1 is the synthetic EC set */
    assert_int_equal(cm_scope_current(fsm, "nodeid"), 1);
    /* another disk type on the same host is another node */
    uint32_t b = add_node(fsm, "http://10.0.0.1:8899", "z0", "r0", CM_DISK_TYPE_SSD, 0, &small);
    assert_int_equal(b, 2);
    assert_int_equal(cm_node_find(fsm, "http://10.0.0.1:8899", CM_DISK_TYPE_SSD), 2);
    assert_int_not_equal(node_set(fsm, b), node_set(fsm, a)); /* sets are per disk type */
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_node_set_rules(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    /* node_set_cap 3, at most 2 of one IDC per set */
    uint32_t n1 = add_node(fsm, "h1", "z0", "r0", 1, 0, &small);
    uint32_t n2 = add_node(fsm, "h2", "z0", "r1", 1, 0, &small);
    uint32_t n3 = add_node(fsm, "h3", "z0", "r2", 1, 0, &small); /* z0 full in set 2 */
    uint32_t n4 = add_node(fsm, "h4", "z1", "r0", 1, 0, &small);
    uint32_t n5 = add_node(fsm, "h5", "z1", "r0", 1, 0, &small); /* set 2 has 3 nodes */
    assert_int_equal(node_set(fsm, n1), 2);
    assert_int_equal(node_set(fsm, n2), 2);
    assert_int_equal(node_set(fsm, n3), 3);
    assert_int_equal(node_set(fsm, n4), 2);
    assert_int_equal(node_set(fsm, n5), 3);
    assert_int_equal(cm_node_cur_set_id(fsm), 3);
    /* rack_aware: at most node_set_rack_cap (1) per rack, then the rack limit is dropped */
    struct cm_node_caps racks = small;
    racks.rack_aware = true;
    racks.node_set_cap = 10;
    racks.node_set_idc_cap = 10;
    uint32_t r1 = add_node(fsm, "x1", "z0", "rack-a", CM_DISK_TYPE_NVMESSD, 0, &racks);
    uint32_t r2 = add_node(fsm, "x2", "z0", "rack-a", CM_DISK_TYPE_NVMESSD, 0, &racks);
    uint32_t r3 = add_node(fsm, "x3", "z0", "rack-b", CM_DISK_TYPE_NVMESSD, 0, &racks);
    assert_int_equal(node_set(fsm, r1), 4);
    assert_int_equal(node_set(fsm, r2), 4); /* no set without rack-a: rescan ignoring racks */
    assert_int_equal(node_set(fsm, r3), 4);
    /* caps of 0 (a disk type without an entry): a node set per node */
    struct cm_node_caps none = {0};
    uint32_t s1 = add_node(fsm, "s1", "z0", "r", CM_DISK_TYPE_SSD, 0, &none);
    uint32_t s2 = add_node(fsm, "s2", "z0", "r", CM_DISK_TYPE_SSD, 0, &none);
    assert_int_equal(node_set(fsm, s1), 5);
    assert_int_equal(node_set(fsm, s2), 6);
    /* a requested set: 1 and sets beyond the counter are illegal, another type's is not found */
    assert_int_equal(add_node(fsm, "q1", "z0", "r", 1, 1, &small), 0);
    assert_int_equal(last_code, CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(add_node(fsm, "q1", "z0", "r", 1, 99, &small), 0);
    assert_int_equal(last_code, CM_ERR_ILLEGAL_ARGUMENTS);
    assert_int_equal(add_node(fsm, "q1", "z0", "r", 1, 5, &small), 0);
    assert_int_equal(last_code, CM_ERR_NODESET_NOT_FOUND);
    uint32_t before = (uint32_t)cm_scope_current(fsm, "nodeid");
    uint32_t q = add_node(fsm, "q1", "z0", "r", 1, 2, &small); /* full, but asked for */
    assert_int_equal(node_set(fsm, q), 2);
    assert_int_equal(q, before + 1); /* refused requests took no id */
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_disk_sets_and_leaving_them(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    uint32_t a = add_node(fsm, "ha", "z0", "r0", 1, 0, &small);
    uint32_t b = add_node(fsm, "hb", "z0", "r1", 1, 0, &small);
    /* disk_set_cap 4, at most 2 disks of one node per set */
    int a1 = add_disk(fsm, a, "/1", &small), a2 = add_disk(fsm, a, "/2", &small);
    int a3 = add_disk(fsm, a, "/3", &small);
    int b1 = add_disk(fsm, b, "/1", &small), b2 = add_disk(fsm, b, "/2", &small);
    int b3 = add_disk(fsm, b, "/3", &small);
    bool m;
    assert_int_equal(disk_set(fsm, a1, &m), 2);
    assert_true(m);
    assert_int_equal(disk_set(fsm, a2, NULL), 2);
    assert_int_equal(disk_set(fsm, a3, NULL), 3); /* a has 2 in set 2 */
    assert_int_equal(disk_set(fsm, b1, NULL), 2);
    assert_int_equal(disk_set(fsm, b2, NULL), 2); /* set 2 now holds 4 */
    assert_int_equal(disk_set(fsm, b3, NULL), 3);
    check(fsm);
    /* a disk that becomes dropping leaves its set for good and frees its place */
    assert_int_equal(disk_op(fsm, CM_DISK_OP_ACCESS, a1, 1), 0);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_DROP, a1, 0), 0);
    assert_int_equal(disk_set(fsm, a1, &m), 2);
    assert_false(m);
    int a4 = add_disk(fsm, a, "/4", &small);
    assert_int_equal(disk_set(fsm, a4, NULL), 2);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_ACCESS, a1, 0), 0); /* 932 is the proposer's */
    disk_set(fsm, a1, &m);
    assert_false(m); /* not put back */
    /* broken disks stay members, repaired ones leave */
    assert_int_equal(disk_op(fsm, CM_DISK_OP_SET_STATUS, b1, CM_DISK_BROKEN), 0);
    disk_set(fsm, b1, &m);
    assert_true(m);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_SET_STATUS, b1, CM_DISK_REPAIRING), 0);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_SET_STATUS, b1, CM_DISK_REPAIRED), 0);
    disk_set(fsm, b1, &m);
    assert_false(m);
    assert_int_equal(cm_node_member_disks(fsm), 5);
    check(fsm);
    /* a disk of an unknown node is refused; a disk without a node has no set */
    assert_int_equal(add_disk(fsm, 99, "/x", &small), -CM_ERR_NODE_NOT_FOUND);
    int legacy = add_disk(fsm, 0, "/legacy", &small);
    assert_true(legacy > 0);
    uint32_t node;
    cm_node_of_disk(fsm, legacy, &node, NULL, &m);
    assert_int_equal(node, 0);
    assert_false(m);
    /* ... until it is re-registered under its node (the compatible re-register) */
    struct cm_buf buf = {0};
    cm_node_enc_attach(&buf, legacy, b, &small);
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_ATTACH_DISK, &buf), 0);
    cm_node_of_disk(fsm, legacy, &node, NULL, &m);
    assert_int_equal(node, b);
    assert_true(m);
    check(fsm);
    cm_fsm_free(fsm);
}

static void test_drop_node(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    uint32_t a = add_node(fsm, "ha", "z0", "r0", 1, 0, &small);
    uint32_t b = add_node(fsm, "hb", "z0", "r0", 1, 0, &small);
    int d = add_disk(fsm, a, "/1", &small);
    struct cm_buf buf = {0};
    cm_node_enc_drop(&buf, 77);
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &buf), CM_ERR_NODE_NOT_FOUND);
    cm_node_enc_drop(&buf, a);
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &buf), CM_ERR_NODE_DISKS_IN_USE);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_ACCESS, d, 1), 0);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_DROP, d, 0), 0);
    cm_node_enc_drop(&buf, a); /* a dropping disk is still in use */
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &buf), CM_ERR_NODE_DISKS_IN_USE);
    assert_int_equal(disk_op(fsm, CM_DISK_OP_DROPPED, d, 0), 0);
    cm_node_enc_drop(&buf, a);
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &buf), 0);
    cm_node_enc_drop(&buf, a);
    assert_int_equal(apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &buf), 0); /* already dropped */
    struct cm_node_info n;
    cm_node_get(fsm, a, &n);
    assert_int_equal(n.status, CM_NODE_DROPPED);
    assert_int_equal(cm_node_live_count(fsm), 1);
    /* a dropped node keeps its key (the reference does too) and takes no disks */
    assert_int_equal(add_node(fsm, "ha", "z0", "r0", 1, 0, &small), a);
    assert_int_equal(add_disk(fsm, a, "/2", &small), -CM_ERR_NODE_NOT_FOUND);
    assert_true(add_disk(fsm, b, "/2", &small) > 0);
    check(fsm);
    cm_fsm_free(fsm);
}

/* A random history; then a restore from its snapshot must give the same topology, and the same
 * further commands must assign the same sets on the original and the restored state. */
static void random_ops(struct cm_fsm *fsm, uint64_t *rng, int n, uint32_t *disks, size_t *nd)
{
    static const char *const idcs[] = {"z0", "z1", "z2"};
    static const char *const racks[] = {"r0", "r1", "r2", "r3"};
    for (int i = 0; i < n; i++) {
        uint64_t r = cm_disk_rand(rng);
        uint32_t nodes = (uint32_t)cm_scope_current(fsm, "nodeid");
        switch (r % 6) {
        case 0: {
            char host[32];
            snprintf(host, sizeof host, "http://h%u:1", (unsigned)(r >> 8) % 40);
            struct cm_node_caps c = small;
            c.rack_aware = (r >> 20) & 1;
            add_node(fsm, host, idcs[(r >> 12) % 3], racks[(r >> 16) % 4],
                     (uint8_t)(1 + (r >> 24) % 2), 0, &c);
            break;
        }
        case 1:
        case 2:
            if (nodes) {
                char path[32];
                snprintf(path, sizeof path, "/d%d", i);
                int d = add_disk(fsm, 1 + (uint32_t)(r >> 8) % nodes, path, &small);
                if (d > 0)
                    disks[(*nd)++] = (uint32_t)d;
            }
            break;
        case 3:
            if (*nd) {
                uint32_t d = disks[(r >> 8) % *nd];
                disk_op(fsm, CM_DISK_OP_ACCESS, d, 1);
                disk_op(fsm, CM_DISK_OP_DROP, d, 0);
            }
            break;
        case 4:
            if (*nd)
                disk_op(fsm, CM_DISK_OP_SET_STATUS, disks[(r >> 8) % *nd],
                        (uint8_t)(2 + (r >> 16) % 4));
            break;
        case 5:
            if (nodes) {
                struct cm_buf b = {0};
                cm_node_enc_drop(&b, 1 + (uint32_t)(r >> 8) % nodes);
                apply(fsm, CM_MOD_NODE, CM_NODE_OP_DROP, &b);
            }
            break;
        }
    }
}

static void test_snapshot_restore_keeps_assignments(void **state)
{
    (void)state;
    struct cm_fsm *a = new_fsm();
    /* no node yet: no node section, the stream is what the previous release writes */
    struct cm_buf s0 = {0};
    cm_fsm_snapshot(a, &s0);
    uint32_t sections = cm_be32((const uint8_t *)s0.data + 8);
    assert_int_equal(sections, 7);
    cm_buf_free(&s0);

    uint32_t disks[4096];
    size_t nd = 0;
    uint64_t rng = 42;
    random_ops(a, &rng, 1500, disks, &nd);
    check(a);
    /* the history is not trivial: nodes of both types, dropped ones, many disk sets */
    assert_true(nd > 200);
    assert_true(cm_node_live_count(a) > 10);
    assert_true(cm_node_live_count(a) < cm_scope_current(a, "nodeid"));
    assert_true(cm_node_member_disks(a) > 50 && cm_node_member_disks(a) < nd);
    struct cm_buf snap = {0};
    cm_fsm_snapshot(a, &snap);
    struct cm_fsm *b = new_fsm();
    char err[256];
    assert_int_equal(cm_fsm_restore(b, snap.data, snap.len, err, sizeof err), 0);
    check(b);
    char *ta = topo(a), *tb = topo(b);
    assert_string_equal(ta, tb);
    free(ta), free(tb);
    /* the same continuation on both */
    size_t nd_b = nd;
    uint32_t disks_b[4096];
    memcpy(disks_b, disks, sizeof disks);
    uint64_t rng_a = 7, rng_b = 7;
    random_ops(a, &rng_a, 1500, disks, &nd);
    random_ops(b, &rng_b, 1500, disks_b, &nd_b);
    check(a);
    check(b);
    ta = topo(a), tb = topo(b);
    assert_string_equal(ta, tb);
    free(ta), free(tb);
    struct cm_buf sa = {0}, sb = {0};
    cm_fsm_snapshot(a, &sa);
    cm_fsm_snapshot(b, &sb);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.data, sb.data, sa.len);
    cm_buf_free(&sa);
    cm_buf_free(&sb);
    cm_buf_free(&snap);
    cm_fsm_free(a);
    cm_fsm_free(b);
}

static void test_snapshot_refuses_invalid_records(void **state)
{
    (void)state;
    struct cm_fsm *a = new_fsm();
    uint32_t n = add_node(a, "h", "z0", "r0", 1, 0, &small);
    add_disk(a, n, "/1", &small);
    struct cm_buf snap = {0};
    cm_fsm_snapshot(a, &snap);
    /* flip every byte of the node section in turn (fixing the CRC): a load either refuses it
     * and keeps the old state, or passes the self-checks */
    uint8_t *p = (uint8_t *)snap.data;
    size_t end = snap.len - 4;
    size_t start = end;
    /* the node section is last: find it by its header (module 8) */
    for (size_t i = 12; i + 9 < end; i++) {
        if (p[i] == CM_MOD_NODE && cm_be64(p + i + 1) == end - (i + 9)) {
            start = i + 9;
            break;
        }
    }
    assert_true(start < end);
    for (size_t i = start; i < end; i++) {
        for (int bit = 0; bit < 8; bit++) {
            p[i] ^= (uint8_t)(1u << bit);
            cm_wbe32(p + end, (uint32_t)crc32(0L, p, (uInt)end));
            struct cm_fsm *b = new_fsm();
            char err[256];
            if (cm_fsm_restore(b, p, snap.len, err, sizeof err) == 0)
                check(b);
            cm_fsm_free(b);
            p[i] ^= (uint8_t)(1u << bit);
        }
    }
    cm_buf_free(&snap);
    cm_fsm_free(a);
}

static void test_garbage_payloads(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    uint64_t rng = 9;
    for (int i = 0; i < 2000; i++) {
        uint8_t junk[64];
        size_t len = cm_disk_rand(&rng) % sizeof junk;
        for (size_t k = 0; k < len; k++)
            junk[k] = (uint8_t)cm_disk_rand(&rng);
        struct cm_buf b = {0};
        cm_buf_append(&b, junk, len);
        apply(fsm, CM_MOD_NODE, (uint8_t)(1 + i % 4), &b);
    }
    check(fsm);
    cm_fsm_free(fsm);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_is_idempotent_and_ids_come_from_the_scope),
        cmocka_unit_test(test_node_set_rules),
        cmocka_unit_test(test_disk_sets_and_leaving_them),
        cmocka_unit_test(test_drop_node),
        cmocka_unit_test(test_snapshot_restore_keeps_assignments),
        cmocka_unit_test(test_snapshot_refuses_invalid_records),
        cmocka_unit_test(test_garbage_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
