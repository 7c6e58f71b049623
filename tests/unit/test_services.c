/* Service registry, KV store and the config store that shares it, and the base64 codec they rely
 * on. */
#include "testutil.h"

#include <json-c/json.h>
#include <zlib.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_cluster.h"
#include "../../src/fsm/mod_config.h"
#include "../../src/fsm/mod_kv.h"
#include "../../src/fsm/mod_service.h"
#include "../../src/http/errors.h"
#include "../../src/util/base64.h"
#include "../../src/util/json.h"

static struct cm_config cfg;

struct applied_log {
    int n;
    int last_code;
};

static void record(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)cmd;
    struct applied_log *l = arg;
    l->n++;
    l->last_code = res->code;
}

static struct applied_log alog;

static struct cm_fsm *new_fsm(void)
{
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    fsm->on_applied = record;
    fsm->on_applied_arg = &alog;
    return fsm;
}

/* Raise the cluster version to 2, where the config store is the KV store (format 1 keeps
 * config values apart; tests of format 1 are in test_version.c and the upgrade test). */
static void raise_to_v2(struct cm_fsm *fsm)
{
    struct cm_buf b = {0};
    cm_cluster_enc_set_version(&b, 2);
    struct cm_cmd c = {.version = 2,
                       .module = CM_MOD_CLUSTER,
                       .op = CM_CLUSTER_OP_SET_VERSION,
                       .node_id = 1,
                       .req_id = 424242,
                       .payload = (const uint8_t *)b.data,
                       .len = b.len};
    assert_int_equal(cm_fsm_apply_cmd(fsm, &c), 0);
    cm_buf_free(&b);
    assert_int_equal(cm_cluster_version(fsm), 2);
}

static struct cm_fsm *new_fsm_v2(void)
{
    struct cm_fsm *fsm = new_fsm();
    raise_to_v2(fsm);
    return fsm;
}

/* Apply a payload (consumed) as proposed at `ts_ns`; returns the result code. */
static int apply_at(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *payload,
                    int64_t ts_ns)
{
    static uint64_t req = 1;
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = req++,
                       .ts_ns = ts_ns,
                       .payload = (const uint8_t *)(payload->data ? payload->data : ""),
                       .len = payload->len};
    struct raft_buffer rb;
    assert_int_equal(cm_cmd_encode(&c, &rb), 0);
    cm_fsm_apply_buf(fsm, rb.base, rb.len);
    raft_free(rb.base);
    cm_buf_free(payload);
    return alog.last_code;
}

static char *render(struct json_object *o)
{
    size_t len;
    return cm_json_render_put(o, &len);
}

static void snapshot_of(struct cm_fsm *fsm, struct cm_buf *out)
{
    memset(out, 0, sizeof *out);
    cm_fsm_snapshot(fsm, out);
}

/* ---- service ------------------------------------------------------------------------- */

static int reg(struct cm_fsm *fsm, const char *name, const char *host, const char *idc,
               int64_t timeout_s, int64_t ts)
{
    struct cm_buf b = {0};
    cm_service_enc_register(&b, name, host, idc, 1, timeout_s);
    return apply_at(fsm, CM_MOD_SERVICE, CM_SERVICE_OP_REGISTER, &b, ts);
}

static int key_op(struct cm_fsm *fsm, uint8_t op, const char *name, const char *host, int64_t ts)
{
    struct cm_buf b = {0};
    cm_service_enc_key(&b, name, host);
    return apply_at(fsm, CM_MOD_SERVICE, op, &b, ts);
}

static const int64_t S = 1000000000;

static void test_service_expiry_is_stamped_by_the_proposer(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    int64_t t0 = 1700000000 * S;
    assert_int_equal(reg(fsm, "ALLOCATOR", "http://10.0.0.1:9100", "z0", 60, t0), 0);
    const struct cm_service_node *n = cm_service_find(fsm, "ALLOCATOR", "http://10.0.0.1:9100");
    assert_non_null(n);
    assert_true(n->expires_ns == t0 + 60 * S);
    /* a heartbeat proposed later moves the expiry from ITS timestamp */
    assert_int_equal(
        key_op(fsm, CM_SERVICE_OP_HEARTBEAT, "ALLOCATOR", "http://10.0.0.1:9100", t0 + 30 * S), 0);
    n = cm_service_find(fsm, "ALLOCATOR", "http://10.0.0.1:9100");
    assert_true(n->expires_ns == t0 + 90 * S);
    /* get hides what is expired at the reader's "now"; list shows everything */
    char *s = render(cm_service_nodes_json(fsm, "ALLOCATOR", t0 + 89 * S));
    assert_string_equal(s, "{\"nodes\":[{\"cluster_id\":1,\"name\":\"ALLOCATOR\",\"host\":"
                           "\"http://10.0.0.1:9100\",\"idc\":\"z0\"}]}");
    free(s);
    s = render(cm_service_nodes_json(fsm, "ALLOCATOR", t0 + 90 * S));
    assert_string_equal(s, "{\"nodes\":null}");
    free(s);
    s = render(cm_service_nodes_json(fsm, NULL, 0));
    assert_non_null(strstr(s, "ALLOCATOR"));
    free(s);
    /* timeout 0 registers a node that is never visible to get */
    assert_int_equal(reg(fsm, "w", "http://10.0.0.2:1", "z0", 0, t0), 0);
    s = render(cm_service_nodes_json(fsm, "w", t0));
    assert_string_equal(s, "{\"nodes\":null}");
    free(s);
    /* huge and negative timeouts saturate instead of overflowing */
    assert_int_equal(reg(fsm, "w", "http://10.0.0.3:1", "z0", INT64_MAX, t0), 0);
    assert_true(cm_service_find(fsm, "w", "http://10.0.0.3:1")->expires_ns == INT64_MAX);
    assert_int_equal(reg(fsm, "w", "http://10.0.0.4:1", "z0", INT64_MIN, t0), 0);
    assert_true(cm_service_find(fsm, "w", "http://10.0.0.4:1")->expires_ns == INT64_MIN);
    assert_true(cm_service_expiry(INT64_MAX - 5, 1) == INT64_MAX);
    assert_true(cm_service_expiry(INT64_MIN + 5, -1) == INT64_MIN);
    cm_fsm_free(fsm);
}

static void test_service_lifecycle_and_refusals(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    int64_t t = 5 * S;
    reg(fsm, "proxy", "http://127.0.0.1:9600", "z0", 30, t);
    reg(fsm, "proxy", "http://127.0.0.1:9600", "z1", 10, t); /* replaces */
    assert_int_equal((int)cm_service_count(fsm), 1);
    assert_string_equal(cm_service_find(fsm, "proxy", "http://127.0.0.1:9600")->idc, "z1");
    /* unregister and heartbeat of an unknown node are no-ops answered Not Found */
    assert_int_equal(key_op(fsm, CM_SERVICE_OP_UNREGISTER, "proxy", "http://x:1", t), 1404);
    assert_int_equal(key_op(fsm, CM_SERVICE_OP_HEARTBEAT, "nope", "http://x:1", t), 1404);
    assert_int_equal(key_op(fsm, CM_SERVICE_OP_UNREGISTER, "proxy", "http://127.0.0.1:9600", t), 0);
    assert_int_equal((int)cm_service_count(fsm), 0);
    /* malformed payloads change nothing and are counted */
    uint64_t rejected = fsm->n_rejected;
    struct cm_buf b = {0};
    cm_put_str(&b, "only-a-name");
    assert_int_equal(apply_at(fsm, CM_MOD_SERVICE, CM_SERVICE_OP_REGISTER, &b, t), 900);
    struct cm_buf b2 = {0};
    cm_service_enc_key(&b2, "a", "b");
    assert_int_equal(apply_at(fsm, CM_MOD_SERVICE, 99, &b2, t), 900);
    assert_true(fsm->n_rejected == rejected + 2);
    assert_int_equal((int)cm_service_count(fsm), 0);
    cm_fsm_free(fsm);
}

static void fill_services(struct cm_fsm *fsm, bool reverse)
{
    char name[32], host[64];
    for (int k = 0; k < 60; k++) {
        int i = reverse ? 59 - k : k;
        snprintf(name, sizeof name, "svc%d", i % 7);
        snprintf(host, sizeof host, "http://10.0.%d.%d:80", i / 10, i % 10);
        reg(fsm, name, host, i % 2 ? "z0" : "z1", i, (int64_t)i * S);
    }
}

static void test_service_snapshot_is_canonical(void **state)
{
    (void)state;
    struct cm_fsm *a = new_fsm(), *b = new_fsm(), *c = new_fsm();
    fill_services(a, false);
    fill_services(b, true);
    struct cm_buf sa, sb, sc;
    snapshot_of(a, &sa);
    snapshot_of(b, &sb);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.data, sb.data, sa.len);
    char err[256];
    assert_int_equal(cm_fsm_restore(c, sa.data, sa.len, err, sizeof err), 0);
    snapshot_of(c, &sc);
    assert_int_equal(sa.len, sc.len);
    assert_memory_equal(sa.data, sc.data, sa.len);
    char *la = render(cm_service_nodes_json(a, NULL, 0));
    char *lc = render(cm_service_nodes_json(c, NULL, 0));
    assert_string_equal(la, lc);
    /* list is sorted by (name, host) */
    const char *p = strstr(la, "svc0"), *q = strstr(la, "svc1");
    assert_true(p && q && p < q);
    free(la);
    free(lc);
    cm_buf_free(&sa);
    cm_buf_free(&sb);
    cm_buf_free(&sc);
    cm_fsm_free(a);
    cm_fsm_free(b);
    cm_fsm_free(c);
}

/* ---- kv ------------------------------------------------------------------------------ */

static int kv_set(struct cm_fsm *fsm, const char *k, const void *v, size_t vlen)
{
    struct cm_buf b = {0};
    cm_kv_enc_set(&b, k, strlen(k), v, vlen);
    return apply_at(fsm, CM_MOD_KV, CM_KV_OP_SET, &b, 1);
}

static int kv_del(struct cm_fsm *fsm, const char *k)
{
    struct cm_buf b = {0};
    cm_kv_enc_delete(&b, k, strlen(k));
    return apply_at(fsm, CM_MOD_KV, CM_KV_OP_DELETE, &b, 1);
}

static void test_kv_apply_get_delete(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    const char *v;
    size_t vlen;
    assert_false(cm_kv_get(fsm, "a", 1, &v, &vlen));
    assert_int_equal(kv_set(fsm, "a", "one", 3), 0);
    assert_int_equal(kv_set(fsm, "b", "", 0), 0); /* empty values are values */
    uint8_t bin[4] = {0, 255, 10, 0};
    assert_int_equal(kv_set(fsm, "c", bin, 4), 0);
    assert_true(cm_kv_get(fsm, "a", 1, &v, &vlen) && vlen == 3 && memcmp(v, "one", 3) == 0);
    assert_true(cm_kv_get(fsm, "b", 1, &v, &vlen) && vlen == 0);
    assert_true(cm_kv_get(fsm, "c", 1, &v, &vlen) && vlen == 4 && memcmp(v, bin, 4) == 0);
    assert_int_equal(kv_set(fsm, "a", "uno!", 4), 0);
    assert_true(cm_kv_get(fsm, "a", 1, &v, &vlen) && vlen == 4);
    assert_int_equal((int)cm_kv_count(fsm), 3);
    assert_true(cm_kv_bytes(fsm) == 3 + 4 + 0 + 4);
    assert_int_equal(kv_del(fsm, "a"), 0);
    assert_int_equal(kv_del(fsm, "never"), 0); /* deleting an absent key is fine */
    assert_false(cm_kv_get(fsm, "a", 1, &v, &vlen));
    assert_int_equal((int)cm_kv_count(fsm), 2);
    assert_true(cm_kv_bytes(fsm) == 2 + 4);
    cm_fsm_free(fsm);
}

static void test_kv_limits_at_apply(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    /* keys: 1..1024 bytes of UTF-8 without NUL */
    char key[CM_KV_KEY_MAX + 2];
    memset(key, 'k', sizeof key);
    key[CM_KV_KEY_MAX] = '\0';
    assert_int_equal(kv_set(fsm, key, "v", 1), 0);
    key[CM_KV_KEY_MAX] = 'k';
    key[CM_KV_KEY_MAX + 1] = '\0';
    assert_int_equal(kv_set(fsm, key, "v", 1), 900);
    assert_int_equal(kv_set(fsm, "", "v", 1), 900);
    assert_int_equal(kv_set(fsm, "bad\xff", "v", 1), 900);
    assert_int_equal(kv_set(fsm, "\xc0\xaf", "v", 1), 900);     /* overlong '/' */
    assert_int_equal(kv_set(fsm, "\xed\xa0\x80", "v", 1), 900); /* surrogate */
    assert_int_equal(kv_set(fsm, "caf\xc3\xa9 \xf0\x9f\x98\x80", "v", 1), 0);
    struct cm_buf b = {0};
    cm_put_bytes(&b, "a\0b", 3); /* NUL inside */
    assert_int_equal(apply_at(fsm, CM_MOD_KV, CM_KV_OP_SET, &b, 1), 900);
    /* values: at most 1 MiB */
    char *big = cm_calloc(1, CM_KV_VALUE_MAX + 1);
    assert_int_equal(kv_set(fsm, "big", big, CM_KV_VALUE_MAX), 0);
    assert_int_equal(kv_set(fsm, "big2", big, CM_KV_VALUE_MAX + 1), 900);
    free(big);
    /* a delete with trailing bytes is malformed */
    struct cm_buf d = {0};
    cm_kv_enc_delete(&d, "big", 3);
    cm_put_u8(&d, 1);
    assert_int_equal(apply_at(fsm, CM_MOD_KV, CM_KV_OP_DELETE, &d, 1), 900);
    assert_int_equal((int)cm_kv_count(fsm), 3);
    assert_true(cm_kv_key_valid("x", 1));
    assert_false(cm_kv_key_valid("x", 0));
    cm_fsm_free(fsm);
}

/* Every key of a listing, in order, following markers with pages of `count`. */
static size_t list_all(struct cm_fsm *fsm, const char *prefix, size_t count, char keys[][32],
                       size_t max)
{
    char marker[64] = "";
    size_t n = 0;
    for (;;) {
        struct json_object *o =
            cm_kv_list_json(fsm, prefix, strlen(prefix), marker, strlen(marker), count);
        struct json_object *kvs, *m;
        json_object_object_get_ex(o, "kvs", &kvs);
        json_object_object_get_ex(o, "marker", &m);
        size_t got = json_object_array_length(kvs);
        assert_true(got <= count);
        for (size_t i = 0; i < got && n < max; i++) {
            struct json_object *e = json_object_array_get_idx(kvs, i), *k;
            json_object_object_get_ex(e, "key", &k);
            snprintf(keys[n++], 32, "%s", json_object_get_string(k));
        }
        const char *next = json_object_get_string(m);
        if (next[0] == '\0') {
            json_object_put(o);
            return n;
        }
        assert_true(got > 0 && got <= count); /* a marker only after a non-empty page */
        snprintf(marker, sizeof marker, "%s", next);
        json_object_put(o);
    }
}

static void test_kv_list_order_paging_prefix(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    /* inserted out of order; byte order puts "B" < "a" < "a/" < "ab" < "\xc3\xa9" */
    const char *keys[] = {"ab", "a/2", "\xc3\xa9", "a", "B", "a/1", "a/10", "b", "a/", "aa"};
    size_t nk = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nk; i++)
        kv_set(fsm, keys[i], keys[i], strlen(keys[i]));
    const char *sorted[] = {"B", "a", "a/", "a/1", "a/10", "a/2", "aa", "ab", "b", "\xc3\xa9"};
    char got[16][32];
    for (size_t count = 1; count <= 11; count++) {
        size_t n = list_all(fsm, "", count, got, 16);
        assert_int_equal(n, nk);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(got[i], sorted[i]);
    }
    /* prefix: "a/" matches itself and its children only */
    size_t n = list_all(fsm, "a/", 2, got, 16);
    assert_int_equal(n, 4);
    assert_string_equal(got[0], "a/");
    assert_string_equal(got[3], "a/2");
    n = list_all(fsm, "zz", 5, got, 16);
    assert_int_equal(n, 0);
    /* a marker before the prefix starts at the prefix; a marker inside continues after it */
    struct json_object *o = cm_kv_list_json(fsm, "a/", 2, "B", 1, 10);
    char *s = render(o);
    assert_non_null(strstr(s, "{\"kvs\":[{\"key\":\"a/\""));
    free(s);
    o = cm_kv_list_json(fsm, "a/", 2, "a/10", 4, 10);
    s = render(o);
    assert_string_equal(s, "{\"kvs\":[{\"key\":\"a/2\",\"value\":\"YS8y\"}],\"marker\":\"\"}");
    free(s);
    /* a marker that is not a key works too (strictly after it) */
    o = cm_kv_list_json(fsm, "", 0, "a/0", 3, 1);
    s = render(o);
    assert_string_equal(s, "{\"kvs\":[{\"key\":\"a/1\",\"value\":\"YS8x\"}],\"marker\":\"a/1\"}");
    free(s);
    /* past the end */
    o = cm_kv_list_json(fsm, "", 0, "\xff", 1, 10);
    s = render(o);
    assert_string_equal(s, "{\"kvs\":[],\"marker\":\"\"}");
    free(s);
    cm_fsm_free(fsm);
}

static void test_kv_list_pages_are_bounded_in_bytes(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm();
    char *v = cm_calloc(1, CM_KV_VALUE_MAX);
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "big%d", i);
        kv_set(fsm, k, v, CM_KV_VALUE_MAX);
    }
    free(v);
    /* 4 MiB per page: three 1 MiB values (plus keys) fit, a fourth does not */
    struct json_object *o = cm_kv_list_json(fsm, "", 0, "", 0, 1000), *kvs, *m;
    json_object_object_get_ex(o, "kvs", &kvs);
    json_object_object_get_ex(o, "marker", &m);
    assert_int_equal((int)json_object_array_length(kvs), 3);
    assert_string_equal(json_object_get_string(m), "big2");
    json_object_put(o);
    char got[16][32];
    assert_int_equal(list_all(fsm, "big", 1000, got, 16), 10); /* paging reaches every key */
    cm_fsm_free(fsm);
}

static void test_kv_snapshot_roundtrip_and_isolation(void **state)
{
    (void)state;
    struct cm_fsm *a = new_fsm(), *b = new_fsm(), *c = new_fsm();
    char k[32];
    uint8_t v[300];
    for (int i = 0; i < 300; i++) {
        int j = (i * 7919) % 300; /* a permutation: another insertion order */
        snprintf(k, sizeof k, "key/%05d", i);
        for (int x = 0; x < i; x++)
            v[x] = (uint8_t)(x * 31 + i);
        kv_set(a, k, v, (size_t)i);
        snprintf(k, sizeof k, "key/%05d", j);
        for (int x = 0; x < j; x++)
            v[x] = (uint8_t)(x * 31 + j);
        kv_set(b, k, v, (size_t)j);
    }
    kv_del(a, "key/00007");
    kv_del(b, "key/00007");
    struct cm_buf sa, sb, sc;
    snapshot_of(a, &sa);
    snapshot_of(b, &sb);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.data, sb.data, sa.len);
    char err[256];
    assert_int_equal(cm_fsm_restore(c, sa.data, sa.len, err, sizeof err), 0);
    snapshot_of(c, &sc);
    assert_int_equal(sa.len, sc.len);
    assert_memory_equal(sa.data, sc.data, sa.len);
    assert_int_equal((int)cm_kv_count(c), 299);
    assert_true(cm_kv_bytes(c) == cm_kv_bytes(a));

    /* a taken copy is immune to later writes: it encodes the state of when it was taken */
    struct cm_snap_taken *t = cm_fsm_snap_take(a);
    kv_set(a, "key/00001", "changed", 7);
    kv_del(a, "key/00002");
    kv_set(a, "new", "x", 1);
    cm_fsm_free(a); /* even after the state itself is gone */
    struct cm_buf st = {0};
    cm_fsm_snap_write(t, &st);
    assert_int_equal(st.len, sa.len);
    assert_memory_equal(st.data, sa.data, sa.len);

    /* a section with keys out of order is refused and the state stays */
    struct cm_fsm *d = new_fsm();
    kv_set(d, "keep", "me", 2);
    struct cm_buf bad = {0};
    cm_buf_append(&bad, "CMSNAP01", 8);
    cm_put_u32(&bad, 1);
    cm_put_u8(&bad, CM_MOD_KV);
    struct cm_buf sec = {0};
    cm_put_uvar(&sec, 2);
    cm_put_bytes(&sec, "b", 1);
    cm_put_bytes(&sec, "1", 1);
    cm_put_bytes(&sec, "a", 1);
    cm_put_bytes(&sec, "2", 1);
    cm_put_u64(&bad, sec.len);
    cm_buf_append(&bad, sec.data, sec.len);
    uint32_t crc = (uint32_t)crc32(0L, (const unsigned char *)bad.data, (unsigned)bad.len);
    cm_put_u32(&bad, crc);
    assert_int_equal(cm_fsm_restore(d, bad.data, bad.len, err, sizeof err), -1);
    assert_non_null(strstr(err, "order"));
    const char *v2;
    size_t v2len;
    assert_true(cm_kv_get(d, "keep", 4, &v2, &v2len));

    cm_buf_free(&bad);
    cm_buf_free(&sec);
    cm_buf_free(&st);
    cm_buf_free(&sa);
    cm_buf_free(&sb);
    cm_buf_free(&sc);
    cm_fsm_free(b);
    cm_fsm_free(c);
    cm_fsm_free(d);
}

/* ---- config store = kv store ------------------------------------------------------------ */

static int cfg_set(struct cm_fsm *fsm, const char *k, const char *v)
{
    struct cm_buf b = {0};
    cm_config_enc_set(&b, k, v);
    return apply_at(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &b, 1);
}

static int cfg_del(struct cm_fsm *fsm, const char *k)
{
    struct cm_buf b = {0};
    cm_config_enc_delete(&b, k);
    return apply_at(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_DELETE, &b, 1);
}

/* The KV value of k as a C string, or NULL. */
static const char *kv_str(struct cm_fsm *fsm, const char *k)
{
    const char *v;
    size_t n;
    return cm_kv_get(fsm, k, strlen(k), &v, &n) ? v : NULL;
}

static void test_config_and_kv_are_one_store(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    /* a config write is a KV entry holding the raw bytes of the string */
    assert_int_equal(cfg_set(fsm, "k1", "v1"), 0);
    assert_string_equal(kv_str(fsm, "k1"), "v1");
    /* a KV write is a config value, whole (NULs included) through the length-aware lookup */
    assert_int_equal(kv_set(fsm, "k2", "a\0b", 3), 0);
    const char *v;
    size_t n;
    assert_true(cm_config_lookup(fsm, "k2", &v, &n) && n == 3 && memcmp(v, "a\0b", 3) == 0);
    assert_string_equal(cm_config_get(fsm, "k2"), "a");
    /* an empty config value deletes; an empty KV value is a value for both */
    assert_int_equal(cfg_set(fsm, "k1", ""), 0);
    assert_null(kv_str(fsm, "k1"));
    assert_null(cm_config_get(fsm, "k1"));
    assert_int_equal(kv_set(fsm, "k3", "", 0), 0);
    assert_true(cm_config_lookup(fsm, "k3", &v, &n) && n == 0);
    /* a config delete removes what /kv/set wrote, and the reverse */
    assert_int_equal(cfg_del(fsm, "k2"), 0);
    assert_null(kv_str(fsm, "k2"));
    assert_int_equal(cfg_set(fsm, "k4", "x"), 0);
    assert_int_equal(kv_del(fsm, "k4"), 0);
    assert_null(cm_config_get(fsm, "k4"));
    /* defaults show through the config view only */
    assert_int_equal(kv_set(fsm, "balance", "Enable", 6), 0);
    assert_string_equal(cm_config_get(fsm, "balance"), "Enable");
    assert_int_equal(kv_del(fsm, "balance"), 0);
    assert_string_equal(cm_config_get(fsm, "balance"), "Disable");
    assert_null(kv_str(fsm, "balance"));
    /* the two names of the volume-inspection switch are one, whichever route writes */
    assert_int_equal(cfg_set(fsm, "vol_inspect", "Enable"), 0);
    assert_string_equal(kv_str(fsm, "volume_inspect"), "Enable");
    assert_string_equal(cm_config_get(fsm, "volume_inspect"), "Enable");
    assert_int_equal(kv_set(fsm, "volume_inspect", "true", 4), 0);
    assert_string_equal(cm_config_get(fsm, "vol_inspect"), "true");
    assert_int_equal(cfg_del(fsm, "volume_inspect"), 0);
    assert_null(kv_str(fsm, "vol_inspect"));
    assert_null(kv_str(fsm, "volume_inspect"));
    assert_int_equal(kv_set(fsm, "vol_inspect", "1", 1), 0);
    assert_int_equal(kv_del(fsm, "vol_inspect"), 0);
    assert_null(kv_str(fsm, "volume_inspect"));
    /* keys the KV store cannot hold make the command a no-op */
    assert_int_equal(cfg_set(fsm, "bad\xff", "v"), 900);
    assert_int_equal(cfg_del(fsm, "bad\xff"), 900);
    char key[CM_KV_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(cfg_set(fsm, key, "v"), 900);
    assert_int_equal((int)cm_kv_count(fsm), 1); /* k3 */
    assert_true(cm_config_is_system_key("code_mode"));
    assert_true(cm_config_is_system_key("volume_reserve_size"));
    assert_true(cm_config_is_system_key("volume_chunk_size"));
    assert_false(cm_config_is_system_key("balance"));
    assert_false(cm_config_is_system_key("code_mode_extend"));
    cm_fsm_free(fsm);
}

/* Any sequence of writes through either family of commands: both views agree after each. */
static void test_config_and_kv_agree_after_any_sequence(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    static const char *const keys[] = {"a", "balance", "vol_inspect", "volume_inspect",
                                       "init_volume_num"};
    static const char *const vals[] = {"", "x", "Enable", "true", "0"};
    unsigned seed = 12345;
    for (int step = 0; step < 4000; step++) {
        seed = seed * 1103515245u + 12345u;
        const char *k = keys[(seed >> 8) % 5];
        const char *val = vals[(seed >> 12) % 5];
        switch ((seed >> 16) % 4) {
        case 0:
            cfg_set(fsm, k, val);
            break;
        case 1:
            cfg_del(fsm, k);
            break;
        case 2:
            kv_set(fsm, k, val, strlen(val));
            break;
        default:
            kv_del(fsm, k);
        }
        for (size_t i = 0; i < 5; i++) {
            const char *kv, *cv;
            size_t kn, cn;
            bool in_kv = cm_kv_get(fsm, keys[i], strlen(keys[i]), &kv, &kn);
            bool in_cfg = cm_config_lookup(fsm, keys[i], &cv, &cn);
            const char *dflt = cm_config_default(&cfg, keys[i]);
            if (in_kv)
                assert_true(in_cfg && cn == kn && memcmp(cv, kv, kn) == 0);
            else if (dflt)
                assert_true(in_cfg && strcmp(cv, dflt) == 0);
            else
                assert_false(in_cfg);
        }
        const char *x, *y;
        size_t xn, yn;
        bool hx = cm_kv_get(fsm, "vol_inspect", 11, &x, &xn);
        bool hy = cm_kv_get(fsm, "volume_inspect", 14, &y, &yn);
        assert_true(hx == hy && (!hx || (xn == yn && memcmp(x, y, xn) == 0)));
    }
    cm_fsm_free(fsm);
}

static void test_config_list_and_strings(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    kv_set(fsm, "aa", "1", 1);
    kv_set(fsm, "balance", "Enable", 6);
    kv_set(fsm, "bin",
           "a\xff"
           "b",
           3);
    kv_set(fsm, "zz", "", 0);
    cfg_set(fsm, "init_volume_numbers", "7");
    char *s = render(cm_config_list(fsm));
    /* stored keys and defaults in key order, stored values winning */
    assert_string_equal(s,
                        "{\"aa\":\"1\",\"balance\":\"Enable\",\"bin\":\"a\xef\xbf\xbd"
                        "b\","
                        "\"code_mode\":\"[{\\\"mode_name\\\":\\\"EC3P3\\\",\\\"min_size\\\":0,"
                        "\\\"max_size\\\":1024,\\\"size_ratio\\\":0.2,\\\"enable\\\":true},"
                        "{\\\"mode_name\\\":\\\"EC6P6\\\",\\\"min_size\\\":1025,\\\"max_size\\\":"
                        "2048,\\\"size_ratio\\\":0.8,\\\"enable\\\":false}]\","
                        "\"disk_repair\":\"Disable\",\"init_volume_num\":\"100\","
                        "\"init_volume_numbers\":\"7\",\"volume_chunk_size\":\"16777216\","
                        "\"volume_reserve_size\":\"10485760\",\"zz\":\"\"}");
    free(s);
    /* Go renders bytes that are not UTF-8 as U+FFFD; so do we */
    s = render(cm_config_json_string("ok \xc3\xa9 \xe2\x82 \xed\xa0\x80!", 13));
    assert_string_equal(s, "\"ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd"
                           "\xef\xbf\xbd!\"");
    free(s);
    s = render(cm_config_json_string("a\0b\"", 4));
    assert_string_equal(s, "\"a\\u0000b\\\"\"");
    free(s);
    cm_fsm_free(fsm);
}

/* A snapshot stream with the given kv and config sections (entries as key, value pairs). */
static void legacy_snapshot(struct cm_buf *out, const char *const *kv, size_t nkv,
                            const char *const *conf, size_t nconf)
{
    memset(out, 0, sizeof *out);
    cm_buf_append(out, "CMSNAP01", 8);
    cm_put_u32(out, 2);
    struct cm_buf sec = {0};
    cm_put_uvar(&sec, nconf);
    for (size_t i = 0; i < nconf; i++) {
        cm_put_str(&sec, conf[2 * i]);
        cm_put_str(&sec, conf[2 * i + 1]);
    }
    cm_put_u8(out, CM_MOD_CONFIG);
    cm_put_u64(out, sec.len);
    cm_buf_append(out, sec.data, sec.len);
    cm_buf_free(&sec);
    cm_put_uvar(&sec, nkv);
    for (size_t i = 0; i < nkv; i++) {
        cm_put_bytes(&sec, kv[2 * i], strlen(kv[2 * i]));
        cm_put_bytes(&sec, kv[2 * i + 1], strlen(kv[2 * i + 1]));
    }
    cm_put_u8(out, CM_MOD_KV);
    cm_put_u64(out, sec.len);
    cm_buf_append(out, sec.data, sec.len);
    cm_buf_free(&sec);
    uint32_t crc = (uint32_t)crc32(0L, (const unsigned char *)out->data, (unsigned)out->len);
    cm_put_u32(out, crc);
}

/* A snapshot of an older node keeps config values apart from the KV store: loading it moves them
 * in (config wins, empty deletes), makes the switch names agree, and the next snapshot is the
 * canonical one of the merged state. */
static void test_config_snapshot_of_an_older_node(void **state)
{
    (void)state;
    static const char *const kv[] = {"balance", "from-kv", "gone",        "x",
                                     "keep",    "kv",      "vol_inspect", "old"};
    static const char *const conf[] = {"balance", "Enable", "cfg_only", "c",
                                       "gone",    "",       "\xff\xfe", "bad key"};
    struct cm_buf legacy;
    /* keys of the config section must come sorted as an older node wrote them */
    char err[256];
    struct cm_fsm *b = new_fsm_v2();
    static const char *const unsorted[] = {"b", "1", "a", "2"};
    legacy_snapshot(&legacy, kv, 4, unsorted, 2);
    assert_int_equal(cm_fsm_restore(b, legacy.data, legacy.len, err, sizeof err), -1);
    assert_non_null(strstr(err, "config keys are not in byte order"));
    cm_buf_free(&legacy);

    legacy_snapshot(&legacy, kv + 0, 4, conf, 3); /* the valid entries */
    assert_int_equal(cm_fsm_restore(b, legacy.data, legacy.len, err, sizeof err), 0);
    /* a stream of format 1 loads at cluster version 1: config values stay apart until the
     * cluster version moves, then they go into the KV store */
    assert_int_equal(cm_cluster_version(b), 1);
    assert_null(kv_str(b, "cfg_only"));
    assert_string_equal(cm_config_get(b, "cfg_only"), "c");
    raise_to_v2(b);
    assert_string_equal(kv_str(b, "balance"), "Enable");
    assert_string_equal(kv_str(b, "cfg_only"), "c");
    assert_null(kv_str(b, "gone"));
    assert_null(cm_config_get(b, "gone"));
    assert_string_equal(kv_str(b, "keep"), "kv");
    assert_string_equal(kv_str(b, "vol_inspect"), "old");
    assert_string_equal(kv_str(b, "volume_inspect"), "old");
    cm_buf_free(&legacy);
    /* an entry the KV store cannot hold is dropped, the rest loads */
    struct cm_fsm *d = new_fsm_v2();
    legacy_snapshot(&legacy, kv, 4, conf, 4);
    assert_int_equal(cm_fsm_restore(d, legacy.data, legacy.len, err, sizeof err), 0);
    raise_to_v2(d);
    assert_string_equal(kv_str(d, "cfg_only"), "c");
    assert_int_equal((int)cm_kv_count(d), 5);
    cm_buf_free(&legacy);

    /* the state now snapshots with an empty config section, exactly as a state built by
     * commands does */
    struct cm_fsm *c = new_fsm_v2();
    cfg_set(c, "vol_inspect", "old");
    kv_set(c, "keep", "kv", 2);
    cfg_set(c, "cfg_only", "c");
    kv_set(c, "balance", "Enable", 6);
    struct cm_buf sb, sc, sd;
    snapshot_of(b, &sb);
    snapshot_of(c, &sc);
    snapshot_of(d, &sd);
    assert_int_equal(sb.len, sc.len);
    assert_memory_equal(sb.data, sc.data, sb.len);
    assert_int_equal(sd.len, sc.len);
    assert_memory_equal(sd.data, sc.data, sc.len);
    /* the config section in it is "0 entries" */
    static const uint8_t empty_config[] = {CM_MOD_CONFIG, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_non_null(memmem(sc.data, sc.len, empty_config, sizeof empty_config));

    /* both names present but different in an older KV section: volume_inspect's value wins */
    static const char *const kv2[] = {"vol_inspect", "Disable", "volume_inspect", "true"};
    legacy_snapshot(&legacy, kv2, 2, NULL, 0);
    assert_int_equal(cm_fsm_restore(c, legacy.data, legacy.len, err, sizeof err), 0);
    raise_to_v2(c);
    assert_string_equal(kv_str(c, "vol_inspect"), "true");
    assert_string_equal(kv_str(c, "volume_inspect"), "true");
    cm_buf_free(&legacy);
    cm_buf_free(&sb);
    cm_buf_free(&sc);
    cm_buf_free(&sd);
    cm_fsm_free(b);
    cm_fsm_free(c);
    cm_fsm_free(d);
}

/* ---- base64 -------------------------------------------------------------------------- */

/* Quotas (issue "hardening", items 4 and the KV quota): entries and bytes with a per-entry
 * overhead; apply refuses past the built-in ceilings from cluster version 2 on only, so a
 * format-1 binary and this one apply a mixed cluster's log alike. */
static void test_kv_quota_counts_entries_and_overhead(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    assert_int_equal(kv_set(fsm, "a", "", 0), 0);
    assert_int_equal(kv_set(fsm, "bb", "xyz", 3), 0);
    assert_true(cm_kv_charged(fsm) == 1 + 2 + 3 + 2 * CM_KV_ENTRY_OVERHEAD);
    uint64_t used = cm_kv_charged(fsm);
    /* a new key counts its overhead: empty values are not free */
    assert_true(cm_kv_fits(fsm, "c", 1, 0, 3, used + 1 + CM_KV_ENTRY_OVERHEAD));
    assert_false(cm_kv_fits(fsm, "c", 1, 0, 3, used + CM_KV_ENTRY_OVERHEAD));
    assert_false(cm_kv_fits(fsm, "c", 1, 0, 2, UINT64_MAX)); /* entries */
    /* replacing never adds an entry; shrinking always fits, growing counts the growth */
    assert_true(cm_kv_fits(fsm, "bb", 2, 1, 2, 0));
    assert_true(cm_kv_fits(fsm, "bb", 2, 5, 2, used + 2));
    assert_false(cm_kv_fits(fsm, "bb", 2, 5, 2, used + 1));
    /* a switch with two names charges both */
    assert_false(cm_kv_fits(fsm, "vol_inspect", 11, 4, 3, UINT64_MAX));
    assert_true(cm_kv_fits(fsm, "vol_inspect", 11, 4, 4, UINT64_MAX));
    cm_fsm_free(fsm);
}

static void fill_kv(struct cm_fsm *fsm, size_t n)
{
    char k[32];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(k, sizeof k, "%08zu", i);
        cm_kv_store_set(fsm, k, (size_t)len, "", 0);
    }
}

static void test_kv_quota_at_apply(void **state)
{
    (void)state;
    struct cm_fsm *v1 = new_fsm(), *v2 = new_fsm_v2();
    fill_kv(v1, CM_KV_HARD_MAX_ENTRIES);
    fill_kv(v2, CM_KV_HARD_MAX_ENTRIES);
    /* version 2: one more key is refused by every replica, a replacement is not */
    assert_int_equal(kv_set(v2, "one-more", "v", 1), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_true(cm_kv_count(v2) == CM_KV_HARD_MAX_ENTRIES);
    assert_int_equal(kv_set(v2, "00000001", "v", 1), 0);
    struct cm_buf b = {0};
    cm_config_enc_set(&b, "one-more", "v");
    assert_int_equal(apply_at(v2, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &b, 1),
                     CM_ERR_ILLEGAL_ARGUMENTS);
    assert_true(cm_kv_count(v2) == CM_KV_HARD_MAX_ENTRIES);
    /* version 1 applies it, as the first format did */
    assert_int_equal(kv_set(v1, "one-more", "v", 1), 0);
    assert_true(cm_kv_count(v1) == CM_KV_HARD_MAX_ENTRIES + 1);
    cm_fsm_free(v1);
    cm_fsm_free(v2);
}

static void fill_registry(struct cm_fsm *fsm, size_t n)
{
    char name[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "s%08zu", i); /* ascending: appends, no memmove */
        assert_int_equal(reg(fsm, name, "http://10.0.0.1:80", "z0", 30, S), 0);
    }
}

static void test_service_quota(void **state)
{
    (void)state;
    struct cm_fsm *v1 = new_fsm(), *v2 = new_fsm_v2();
    assert_int_equal(reg(v2, "a", "http://10.0.0.1:80", "z0", 30, S), 0);
    assert_true(cm_service_charged(v2) == 1 + 18 + 2 + CM_SERVICE_ENTRY_OVERHEAD);
    uint64_t used = cm_service_charged(v2);
    assert_false(cm_service_fits(v2, "b", "http://10.0.0.1:80", "z0", 1, UINT64_MAX));
    assert_true(cm_service_fits(v2, "a", "http://10.0.0.1:80", "z0", 1, 0)); /* replace */
    assert_true(cm_service_fits(v2, "b", "http://10.0.0.1:80", "z0", 2,
                                used + 21 + CM_SERVICE_ENTRY_OVERHEAD));
    assert_false(cm_service_fits(v2, "b", "http://10.0.0.1:80", "z0", 2,
                                 used + 20 + CM_SERVICE_ENTRY_OVERHEAD));
    assert_int_equal(key_op(v2, CM_SERVICE_OP_UNREGISTER, "a", "http://10.0.0.1:80", S), 0);
    assert_true(cm_service_charged(v2) == 0);
    fill_registry(v1, CM_SERVICE_HARD_MAX_ENTRIES);
    fill_registry(v2, CM_SERVICE_HARD_MAX_ENTRIES);
    assert_int_equal(reg(v2, "zzz", "http://10.0.0.1:80", "z0", 30, S), CM_ERR_ILLEGAL_ARGUMENTS);
    assert_true(cm_service_count(v2) == CM_SERVICE_HARD_MAX_ENTRIES);
    assert_null(cm_service_find(v2, "zzz", "http://10.0.0.1:80"));
    assert_int_equal(reg(v2, "s00000001", "http://10.0.0.1:80", "z0", 60, S), 0);
    assert_int_equal(reg(v1, "zzz", "http://10.0.0.1:80", "z0", 30, S), 0);
    assert_true(cm_service_count(v1) == CM_SERVICE_HARD_MAX_ENTRIES + 1);
    cm_fsm_free(v1);
    cm_fsm_free(v2);
}

/* A name that is not UTF-8, replicated before registers refused it, still lists as valid JSON. */
static void test_service_list_is_utf8(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    assert_int_equal(reg(fsm, "svc\xff\xfe", "http://10.0.0.1:80", "z0", 30, S), 0);
    char *out = render(cm_service_nodes_json(fsm, NULL, 0));
    assert_non_null(strstr(out, "\"name\":\"svc\xef\xbf\xbd\xef\xbf\xbd\""));
    free(out);
    cm_fsm_free(fsm);
}

/* The leader's collection job finds nodes by their replicated expiry. */
static void test_service_expired_lookup(void **state)
{
    (void)state;
    struct cm_fsm *fsm = new_fsm_v2();
    assert_int_equal(reg(fsm, "a", "http://10.0.0.1:80", "z0", -1, 10 * S), 0);
    assert_int_equal(reg(fsm, "b", "http://10.0.0.1:80", "z0", 30, 10 * S), 0);
    assert_int_equal(reg(fsm, "c", "http://10.0.0.1:80", "z0", 5, 10 * S), 0);
    char **names, **hosts;
    size_t k = cm_service_expired(fsm, 15 * S, 10, &names, &hosts);
    assert_int_equal((int)k, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "c");
    assert_string_equal(hosts[1], "http://10.0.0.1:80");
    for (size_t i = 0; i < k; i++) {
        free(names[i]);
        free(hosts[i]);
    }
    free(names);
    free(hosts);
    assert_int_equal((int)cm_service_expired(fsm, 15 * S, 1, &names, &hosts), 1);
    free(names[0]);
    free(hosts[0]);
    free(names);
    free(hosts);
    assert_int_equal((int)cm_service_expired(fsm, 8 * S, 10, &names, &hosts), 0);
    cm_fsm_free(fsm);
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t in[300], back[300];
    char enc[404];
    for (size_t n = 0; n < sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 97 + n);
        size_t e = cm_b64_encode(in, n, enc);
        assert_int_equal(e, cm_b64_enc_len(n));
        long d = cm_b64_decode(enc, e, back);
        assert_int_equal(d, (long)n);
        assert_memory_equal(in, back, n);
    }
    assert_int_equal(cm_b64_encode("hello", 5, enc), 8);
    assert_memory_equal(enc, "aGVsbG8=", 8);
    const char *bad[] = {"a",      "abc",      "ab=c",    "a===",     "====",     "QR==", "QUJ=",
                         "aGVs\n", "aGV sbG8", "aGVsbG8", "aGVs*G8=", "ab==ab==", "-_=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cm_b64_decode(bad[i], strlen(bad[i]), back), -1);
    assert_int_equal(cm_b64_decode("", 0, back), 0);
    assert_int_equal(cm_b64_decode("AA==", 4, back), 1);
    assert_int_equal(back[0], 0);
    assert_int_equal(cm_b64_decode("+/8=", 4, back), 2);
    assert_int_equal(back[0], 0xfb);
    assert_int_equal(back[1], 0xff);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_expiry_is_stamped_by_the_proposer),
        cmocka_unit_test(test_service_lifecycle_and_refusals),
        cmocka_unit_test(test_service_snapshot_is_canonical),
        cmocka_unit_test(test_kv_apply_get_delete),
        cmocka_unit_test(test_kv_limits_at_apply),
        cmocka_unit_test(test_kv_list_order_paging_prefix),
        cmocka_unit_test(test_kv_list_pages_are_bounded_in_bytes),
        cmocka_unit_test(test_kv_snapshot_roundtrip_and_isolation),
        cmocka_unit_test(test_config_and_kv_are_one_store),
        cmocka_unit_test(test_config_and_kv_agree_after_any_sequence),
        cmocka_unit_test(test_config_list_and_strings),
        cmocka_unit_test(test_config_snapshot_of_an_older_node),
        cmocka_unit_test(test_kv_quota_counts_entries_and_overhead),
        cmocka_unit_test(test_kv_quota_at_apply),
        cmocka_unit_test(test_service_quota),
        cmocka_unit_test(test_service_expired_lookup),
        cmocka_unit_test(test_service_list_is_utf8),
        cmocka_unit_test(test_base64),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cm_config_free(&cfg);
    return rc;
}
