/* Format versions: the version byte each command carries, the cluster version and its snapshot
 * section, a node that meets a later format (stops applying, never applies part of the log), and
 * snapshots of a later format or with an unknown section refused with the reason. */
#include "testutil.h"

#include <zlib.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_cluster.h"
#include "../../src/fsm/mod_config.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_kv.h"
#include "../../src/fsm/mod_node.h"

#define T0 (1700000000LL * 1000000000LL)

static struct cm_config cfg;
static int applied;

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)arg, (void)cmd, (void)res;
    applied++;
}

static struct cm_fsm *new_fsm(void)
{
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    fsm->on_applied = record;
    return fsm;
}

/* Apply a command whose header carries `version` (0: what the proposer would write). */
static void apply_v(struct cm_fsm *fsm, uint8_t version, uint8_t module, uint8_t op,
                    struct cm_buf *payload)
{
    static uint64_t req = 1;
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = req++,
                       .ts_ns = T0,
                       .payload = (const uint8_t *)payload->data,
                       .len = payload->len};
    c.version = version ? version : cm_fsm_cmd_version(&c);
    assert_int_equal(cm_fsm_apply_cmd(fsm, &c), 0);
    cm_buf_free(payload);
}

static void kv_set(struct cm_fsm *fsm, uint8_t version, const char *k, const char *v)
{
    struct cm_buf b = {0};
    cm_kv_enc_set(&b, k, strlen(k), v, strlen(v));
    apply_v(fsm, version, CM_MOD_KV, CM_KV_OP_SET, &b);
}

static void set_version(struct cm_fsm *fsm, unsigned v)
{
    struct cm_buf b = {0};
    cm_cluster_enc_set_version(&b, v);
    apply_v(fsm, 0, CM_MOD_CLUSTER, CM_CLUSTER_OP_SET_VERSION, &b);
}

static uint32_t sections(const struct cm_buf *snap)
{
    return cm_be32((const uint8_t *)snap->data + 8);
}

static void test_command_versions(void **state)
{
    (void)state;
    struct cm_buf b = {0};
    struct cm_cmd c = {.module = CM_MOD_KV, .op = CM_KV_OP_SET};
    assert_int_equal(cm_fsm_cmd_version(&c), 1);
    c.module = CM_MOD_NODE, c.op = CM_NODE_OP_ADD;
    assert_int_equal(cm_fsm_cmd_version(&c), 2);
    /* a disk add is of format 1 unless it names a node */
    struct cm_disk_info d = {.disk_id = 1,
                             .cluster_id = 1,
                             .idc = "z0",
                             .rack = "r",
                             .host = "h",
                             .path = "/p",
                             .create_time = "x",
                             .last_update_time = "y",
                             .status = 1};
    cm_disk_enc_add(&b, &d, &cfg.fsm);
    c = (struct cm_cmd){.module = CM_MOD_DISK,
                        .op = CM_DISK_OP_ADD,
                        .payload = (const uint8_t *)b.data,
                        .len = b.len};
    assert_int_equal(cm_fsm_cmd_version(&c), 1);
    struct cm_node_caps caps = {0};
    cm_disk_enc_add_node(&b, 7, &caps);
    c.payload = (const uint8_t *)b.data, c.len = b.len;
    assert_int_equal(cm_fsm_cmd_version(&c), 2);
    cm_buf_free(&b);
    /* a raise to version v is of format v */
    cm_cluster_enc_set_version(&b, 2);
    c = (struct cm_cmd){.module = CM_MOD_CLUSTER,
                        .op = CM_CLUSTER_OP_SET_VERSION,
                        .payload = (const uint8_t *)b.data,
                        .len = b.len};
    assert_int_equal(cm_fsm_cmd_version(&c), 2);
    cm_buf_free(&b);
}

static void test_cluster_version_and_its_section(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    assert_int_equal(cm_cluster_version(fsm), 1);
    kv_set(fsm, 0, "a", "1");
    struct cm_buf v1 = {0};
    cm_fsm_snapshot(fsm, &v1);
    /* at version 1: the modules of the first format only, what the previous release writes */
    assert_int_equal(sections(&v1), 7);
    set_version(fsm, 2);
    assert_int_equal(cm_cluster_version(fsm), 2);
    set_version(fsm, 1); /* never lowered */
    assert_int_equal(cm_cluster_version(fsm), 2);
    struct cm_buf v2 = {0};
    cm_fsm_snapshot(fsm, &v2);
    assert_int_equal(sections(&v2), 8);
    struct cm_fsm *copy = new_fsm();
    char err[256];
    assert_int_equal(cm_fsm_restore(copy, v2.data, v2.len, err, sizeof err), 0);
    assert_int_equal(cm_cluster_version(copy), 2);
    /* a stream of version 1 loads into a node at version 2 as version 1 (a restore replaces) */
    assert_int_equal(cm_fsm_restore(copy, v1.data, v1.len, err, sizeof err), 0);
    assert_int_equal(cm_cluster_version(copy), 1);
    cm_buf_free(&v1);
    cm_buf_free(&v2);
    cm_fsm_free(copy);
    cm_fsm_free(fsm);
}

static void test_later_format_stops_applying(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    kv_set(fsm, 0, "a", "1");
    struct cm_buf before = {0};
    cm_fsm_snapshot(fsm, &before);
    applied = 0;
    kv_set(fsm, CM_FORMAT_VERSION + 1, "b", "2"); /* written by a later release */
    assert_int_equal(fsm->blocked_need, CM_FORMAT_VERSION + 1);
    kv_set(fsm, 0, "c", "3"); /* nothing after it either: never a partial apply */
    assert_int_equal(applied, 0);
    assert_int_equal(fsm->n_blocked, 2);
    const char *v;
    size_t n;
    assert_false(cm_kv_get(fsm, "b", 1, &v, &n));
    assert_false(cm_kv_get(fsm, "c", 1, &v, &n));
    struct cm_buf after = {0};
    cm_fsm_snapshot(fsm, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    cm_buf_free(&before);
    cm_buf_free(&after);
    cm_fsm_free(fsm);
}

/* A stream with a cluster section of version v (CRC fixed). */
static void with_cluster_section(struct cm_buf *out, uint8_t module, uint32_t v)
{
    struct cm_fsm *fsm = new_fsm();
    struct cm_buf s = {0};
    cm_fsm_snapshot(fsm, &s);
    cm_fsm_free(fsm);
    uint8_t *p = (uint8_t *)s.data;
    cm_wbe32(p + 8, cm_be32(p + 8) + 1);
    s.len -= 4; /* drop the CRC */
    cm_put_u8(&s, module);
    cm_put_u64(&s, 4);
    cm_put_u32(&s, v);
    cm_put_u32(&s, (uint32_t)crc32(0L, (const Bytef *)s.data, (uInt)s.len));
    *out = s;
}

static void test_later_snapshots_refused_with_the_reason(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    kv_set(fsm, 0, "keep", "me");
    char err[256];
    struct cm_buf s;
    with_cluster_section(&s, CM_MOD_CLUSTER, CM_FORMAT_VERSION + 1);
    assert_int_equal(cm_fsm_restore(fsm, s.data, s.len, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster at version"));
    cm_buf_free(&s);
    with_cluster_section(&s, CM_MOD_MAX, 2);
    assert_int_equal(cm_fsm_restore(fsm, s.data, s.len, err, sizeof err), -1);
    assert_non_null(strstr(err, "later release"));
    cm_buf_free(&s);
    with_cluster_section(&s, CM_MOD_CLUSTER, 2); /* this one loads */
    assert_int_equal(cm_fsm_restore(fsm, s.data, s.len, err, sizeof err), 0);
    assert_int_equal(cm_cluster_version(fsm), 2);
    cm_buf_free(&s);
    cm_fsm_free(fsm);
}

static void cfg_set(struct cm_fsm *fsm, const char *k, const char *v)
{
    struct cm_buf b = {0};
    cm_config_enc_set(&b, k, v);
    apply_v(fsm, 0, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &b);
}

/* At cluster version 1 config values are kept apart from the KV store and a switch name is
 * written alone, as format 1 does; the raise to 2 moves them into the one store. */
static void test_config_store_by_version(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    cfg_set(fsm, "a", "1");
    cfg_set(fsm, "b", "");
    kv_set(fsm, 0, "vol_inspect", "Enable");
    const char *v;
    size_t n;
    assert_false(cm_kv_get(fsm, "a", 1, &v, &n));
    assert_string_equal(cm_config_get(fsm, "a"), "1");
    assert_false(cm_kv_get(fsm, "volume_inspect", 14, &v, &n));
    struct cm_buf s1 = {0};
    cm_fsm_snapshot(fsm, &s1);
    /* the config section holds both overrides, as the first releases write it */
    static const uint8_t conf[] = {CM_MOD_CONFIG, 0, 0,   0, 0,   0, 0, 0, 8, 2, 1,
                                   'a',           1, '1', 1, 'b', 0};
    assert_non_null(memmem(s1.data, s1.len, conf, sizeof conf));
    cm_buf_free(&s1);
    set_version(fsm, 2);
    assert_true(cm_kv_get(fsm, "a", 1, &v, &n) && n == 1 && v[0] == '1');
    assert_false(cm_kv_get(fsm, "b", 1, &v, &n)); /* an empty override read as absent */
    assert_true(cm_kv_get(fsm, "volume_inspect", 14, &v, &n)); /* the names agree now */
    assert_string_equal(cm_config_get(fsm, "a"), "1");
    struct cm_buf s2 = {0};
    cm_fsm_snapshot(fsm, &s2);
    static const uint8_t empty[] = {CM_MOD_CONFIG, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_non_null(memmem(s2.data, s2.len, empty, sizeof empty));
    cm_buf_free(&s2);
    cm_fsm_free(fsm);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_versions),
        cmocka_unit_test(test_cluster_version_and_its_section),
        cmocka_unit_test(test_later_format_stops_applying),
        cmocka_unit_test(test_later_snapshots_refused_with_the_reason),
        cmocka_unit_test(test_config_store_by_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
