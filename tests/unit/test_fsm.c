/* The state machine: config and members modules, apply dispatch, the snapshot stream. */
#include "testutil.h"

#include <json-c/json.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_config.h"
#include "../../src/fsm/mod_members.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/util/json.h"

static struct cm_config cfg;

struct applied_log {
    int n;
    uint64_t last_req;
    int last_code;
};

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    struct applied_log *l = arg;
    l->n++;
    l->last_req = cmd->req_id;
    l->last_code = res->code;
}

static void apply(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *payload,
                  uint64_t req)
{
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = req,
                       .ts_ns = 1000,
                       .payload = (const uint8_t *)payload->data,
                       .len = payload->len};
    struct raft_buffer rb;
    assert_int_equal(cm_cmd_encode(&c, &rb), 0);
    cm_fsm_apply_buf(fsm, rb.base, rb.len);
    raft_free(rb.base);
    cm_buf_free(payload);
}

static void set(struct cm_fsm *fsm, const char *k, const char *v)
{
    struct cm_buf b = {0};
    cm_config_enc_set(&b, k, v);
    apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &b, 1);
}

static void del(struct cm_fsm *fsm, const char *k)
{
    struct cm_buf b = {0};
    cm_config_enc_delete(&b, k);
    apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_DELETE, &b, 2);
}

static void test_config_module(void **state)
{
    (void)state;
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    /* defaults come from the config file */
    assert_string_equal(cm_config_get(fsm, "balance"), "Disable");
    assert_null(cm_config_get(fsm, "nope"));
    set(fsm, "balance", "Enable");
    set(fsm, "demo", "v1");
    assert_string_equal(cm_config_get(fsm, "balance"), "Enable");
    assert_string_equal(cm_config_get(fsm, "demo"), "v1");
    /* an empty override reads as absent: the default shows through */
    set(fsm, "balance", "");
    assert_string_equal(cm_config_get(fsm, "balance"), "Disable");
    set(fsm, "balance", "Enable");
    del(fsm, "balance");
    assert_string_equal(cm_config_get(fsm, "balance"), "Disable");
    del(fsm, "never-there");
    del(fsm, "demo");
    assert_null(cm_config_get(fsm, "demo"));

    set(fsm, "zz", "last");
    set(fsm, "aa", "first");
    struct json_object *l = cm_config_list(fsm);
    size_t len;
    char *s = cm_json_render_put(l, &len);
    /* sorted, overrides and defaults merged */
    assert_non_null(strstr(s, "\"aa\":\"first\",\"balance\":\"Disable\""));
    assert_non_null(strstr(s, "\"zz\":\"last\"}"));
    free(s);
    cm_fsm_free(fsm);
}

static void test_apply_never_fails_on_garbage(void **state)
{
    (void)state;
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    struct applied_log log = {0};
    fsm->on_applied = record;
    fsm->on_applied_arg = &log;
    /* not a command at all */
    uint8_t junk[16] = {1, 2, 3};
    cm_fsm_apply_buf(fsm, junk, sizeof junk);
    assert_int_equal(fsm->n_rejected, 1);
    assert_int_equal(log.n, 0);
    /* unknown module */
    struct cm_buf b = {0};
    cm_put_str(&b, "x");
    apply(fsm, 0, 1, &b, 5); /* module id 0 is not in use */
    assert_int_equal(log.n, 1);
    assert_int_equal(log.last_code, 900);
    /* truncated config payload */
    struct cm_buf t = {0};
    cm_put_uvar(&t, 100); /* claims 100 bytes of key */
    apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &t, 6);
    assert_int_equal(log.last_code, 900);
    assert_int_equal(log.last_req, 6);
    assert_int_equal(fsm->n_rejected, 3);
    /* state untouched */
    struct json_object *l = cm_config_list(fsm);
    assert_int_equal(json_object_object_length(l), (int)cfg.n_defaults);
    json_object_put(l);
    cm_fsm_free(fsm);
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    struct cm_fsm *a = cm_fsm_new(&cfg.fsm, 1);
    char k[32], v[32];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        snprintf(v, sizeof v, "value-%d", i * 7);
        set(a, k, v);
    }
    for (int i = 0; i < 500; i += 5) {
        snprintf(k, sizeof k, "key%03d", i);
        del(a, k);
    }
    struct cm_buf m = {0};
    cm_members_enc_set_http(&m, 4, "127.0.0.1:10001");
    apply(a, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, &m, 9);

    struct cm_buf s1 = {0}, s2 = {0};
    cm_fsm_snapshot(a, &s1);
    uint32_t crc1;
    char err[256];
    assert_int_equal(cm_fsm_snap_check(s1.data, s1.len, &crc1, err, sizeof err), 0);

    struct cm_fsm *b = cm_fsm_new(&cfg.fsm, 2);
    set(b, "junk", "to be replaced");
    assert_int_equal(cm_fsm_restore(b, s1.data, s1.len, err, sizeof err), 0);
    assert_null(cm_config_get(b, "junk"));
    assert_string_equal(cm_config_get(b, "key001"), "value-7");
    assert_null(cm_config_get(b, "key005"));
    assert_string_equal(cm_members_http(b, 4), "127.0.0.1:10001");
    /* canonical encoding: the same state gives the same bytes */
    cm_fsm_snapshot(b, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);

    /* an equal state built in another order gives the same bytes too */
    struct cm_fsm *c = cm_fsm_new(&cfg.fsm, 3);
    for (int i = 499; i >= 0; i--) {
        if (i % 5 == 0)
            continue;
        snprintf(k, sizeof k, "key%03d", i);
        snprintf(v, sizeof v, "value-%d", i * 7);
        set(c, k, v);
    }
    struct cm_buf m2 = {0};
    cm_members_enc_set_http(&m2, 4, "127.0.0.1:10001");
    apply(c, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, &m2, 9);
    struct cm_buf s3 = {0};
    cm_fsm_snapshot(c, &s3);
    assert_int_equal(s1.len, s3.len);
    assert_memory_equal(s1.data, s3.data, s1.len);

    cm_buf_free(&s1);
    cm_buf_free(&s2);
    cm_buf_free(&s3);
    cm_fsm_free(a);
    cm_fsm_free(b);
    cm_fsm_free(c);
}

static void test_snapshot_rejects_damage(void **state)
{
    (void)state;
    struct cm_fsm *a = cm_fsm_new(&cfg.fsm, 1);
    set(a, "k", "v");
    struct cm_buf s = {0};
    cm_fsm_snapshot(a, &s);
    char err[256];
    struct cm_fsm *b = cm_fsm_new(&cfg.fsm, 2);
    set(b, "keep", "me");
    /* every single-byte corruption is caught by the checksum, and the state stays as it was */
    for (size_t i = 0; i < s.len; i++) {
        s.data[i] ^= 0x5a;
        assert_int_equal(cm_fsm_restore(b, s.data, s.len, err, sizeof err), -1);
        s.data[i] ^= 0x5a;
    }
    /* every truncation too */
    for (size_t cut = 0; cut < s.len; cut++)
        assert_int_equal(cm_fsm_restore(b, s.data, cut, err, sizeof err), -1);
    assert_string_equal(cm_config_get(b, "keep"), "me");
    assert_int_equal(cm_fsm_restore(b, s.data, s.len, err, sizeof err), 0);
    assert_string_equal(cm_config_get(b, "k"), "v");
    cm_buf_free(&s);
    cm_fsm_free(a);
    cm_fsm_free(b);
}

static void test_scope_never_lowers(void **state)
{
    (void)state;
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    struct cm_buf b = {0};
    uint64_t end = cm_scope_reserve(fsm, "bid", 10, &b);
    assert_true(end == 10);
    struct cm_buf b2 = {0};
    uint64_t end2 = cm_scope_reserve(fsm, "bid", 5, &b2); /* reserved, not yet applied */
    assert_true(end2 == 15);
    apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b2, 1);
    assert_true(cm_scope_current(fsm, "bid") == 15);
    apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, 2); /* a lower bound applied late */
    assert_true(cm_scope_current(fsm, "bid") == 15);
    assert_true(cm_scope_current(fsm, "vid") == 0);
    /* a fresh leader state (after restore) starts from the applied value */
    struct cm_buf snap = {0};
    cm_fsm_snapshot(fsm, &snap);
    struct cm_fsm *other = cm_fsm_new(&cfg.fsm, 2);
    char err[128];
    assert_int_equal(cm_fsm_restore(other, snap.data, snap.len, err, sizeof err), 0);
    struct cm_buf b3 = {0};
    assert_true(cm_scope_reserve(other, "bid", 1, &b3) == 16);
    cm_buf_free(&b3);
    cm_buf_free(&snap);
    cm_fsm_free(other);
    cm_fsm_free(fsm);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_module),
        cmocka_unit_test(test_apply_never_fails_on_garbage),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_rejects_damage),
        cmocka_unit_test(test_scope_never_lowers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cm_config_free(&cfg);
    return rc;
}
