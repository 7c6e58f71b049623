/* The forwarded write batch (src/dispatch/fwdwire.c, docs/formats.md "Forwarded write batch"). */
#include "testutil.h"

#include "../../src/dispatch/fwdwire.h"
#include "../../src/http/router.h"

static struct cm_job *write_job(int method, const char *uri, const char *body, int hops)
{
    struct cm_job *j = calloc(1, sizeof *j);
    j->method = method;
    j->uri = strdup(uri);
    snprintf(j->client_ip, sizeof j->client_ip, "10.0.0.7");
    j->req_id_hdr = strdup("req-42");
    j->hops = hops;
    if (body)
        cm_buf_append(&j->body, body, strlen(body));
    return j;
}

static void free_job(struct cm_job *j)
{
    free(j->uri);
    free(j->req_id_hdr);
    cm_buf_free(&j->body);
    free(j);
}

static bool str_is(const struct cm_fwd_str *s, const char *want)
{
    return s->n == strlen(want) && memcmp(s->p, want, s->n) == 0;
}

/* Two writes, one with a body with a NUL in it, one without a body. */
static struct cm_buf batch_of_two(void)
{
    struct cm_buf b = {0};
    struct cm_job *a = write_job(CM_POST, "/kv/set", "{\"key\":\"a\"}", 0);
    struct cm_job *c = write_job(CM_POST, "/diskid/alloc", NULL, 1);
    cm_buf_append(&a->body, "\0x", 2);
    cm_fwd_put_header(&b, 2);
    cm_fwd_put_write(&b, a, "1.2.3.4, 10.0.0.7");
    cm_fwd_put_write(&b, c, "10.0.0.7");
    free_job(a);
    free_job(c);
    return b;
}

/* Start decoding b, whose header must announce `count` entries. */
static void open_batch(struct cm_dec *d, const struct cm_buf *b, size_t count)
{
    cm_dec_init(d, b->data, b->len);
    size_t n = 0;
    char err[256];
    assert_int_equal(cm_fwd_get_header(d, &n, err, sizeof err), 0);
    assert_int_equal(n, count);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    struct cm_buf b = batch_of_two();
    struct cm_dec d;
    open_batch(&d, &b, 2);
    struct cm_fwd_write w;
    assert_int_equal(cm_fwd_get_write(&d, &w), 0);
    assert_int_equal(w.method, CM_POST);
    assert_int_equal(w.hops, 1);
    assert_true(str_is(&w.uri, "/kv/set"));
    assert_true(str_is(&w.client_ip, "10.0.0.7"));
    assert_true(str_is(&w.xff, "1.2.3.4, 10.0.0.7"));
    assert_true(str_is(&w.req_id, "req-42"));
    assert_int_equal(w.body.n, strlen("{\"key\":\"a\"}") + 2);
    assert_memory_equal(w.body.p + w.body.n - 2, "\0x", 2);
    assert_int_equal(cm_fwd_get_write(&d, &w), 0);
    assert_int_equal(w.hops, 2);
    assert_true(str_is(&w.uri, "/diskid/alloc"));
    assert_int_equal(w.body.n, 0);
    assert_int_equal(cm_dec_left(&d), 0);
    cm_buf_free(&b);
}

static void test_result_roundtrip(void **state)
{
    (void)state;
    struct cm_job j = {0};
    j.status = 409;
    j.resp_ctype = "application/json";
    char body[] = "{\"code\":409,\"error\":\"conflict\"}";
    j.resp = body;
    j.resp_len = strlen(body);
    j.n_hdrs = 1;
    j.hdrs[0].name = "Retry-After";
    char one[] = "1";
    j.hdrs[0].value = one;
    struct cm_job ok = {0}; /* status 0 is a 200 with no body */
    struct cm_buf b = {0};
    cm_fwd_put_header(&b, 2);
    cm_fwd_put_result(&b, &j);
    cm_fwd_put_result(&b, &ok);

    struct cm_dec d;
    open_batch(&d, &b, 2);
    struct cm_fwd_result r;
    assert_int_equal(cm_fwd_get_result(&d, &r), 0);
    assert_int_equal(r.status, 409);
    assert_true(str_is(&r.ctype, "application/json"));
    assert_int_equal(r.n_hdrs, 1);
    assert_true(str_is(&r.hdr_name[0], "Retry-After"));
    assert_true(str_is(&r.hdr_value[0], "1"));
    assert_true(str_is(&r.body, body));
    assert_int_equal(cm_fwd_get_result(&d, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.n, 0);
    assert_int_equal(r.n_hdrs, 0);
    assert_int_equal(cm_dec_left(&d), 0);
    cm_buf_free(&b);
}

/* Every prefix of a valid batch either decodes to fewer writes or fails: never reads past it. */
static void test_truncations_fail_cleanly(void **state)
{
    (void)state;
    struct cm_buf b = batch_of_two();
    for (size_t cut = 0; cut < b.len; cut++) {
        char *copy = malloc(cut ? cut : 1); /* exactly `cut` bytes: ASan sees any overread */
        memcpy(copy, b.data, cut);
        struct cm_dec d;
        cm_dec_init(&d, copy, cut);
        size_t n = 0;
        char err[256];
        int got = 0;
        if (cm_fwd_get_header(&d, &n, err, sizeof err) == 0) {
            struct cm_fwd_write w;
            while ((size_t)got < n && cm_fwd_get_write(&d, &w) == 0)
                got++;
        }
        assert_true(got < 2);
        free(copy);
    }
    cm_buf_free(&b);
}

static void test_refuses_bad_headers(void **state)
{
    (void)state;
    char err[256];
    size_t n;
    struct cm_dec d;
    struct cm_buf b = {0};

    cm_put_u32(&b, 0x12345678); /* not our magic */
    cm_put_u8(&b, CM_FWD_VERSION);
    cm_put_uvar(&b, 1);
    cm_dec_init(&d, b.data, b.len);
    assert_int_equal(cm_fwd_get_header(&d, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a forwarded write batch"));

    b.len = 0;
    cm_put_u32(&b, CM_FWD_MAGIC);
    cm_put_u8(&b, CM_FWD_VERSION + 1); /* a newer node's batch */
    cm_put_uvar(&b, 1);
    cm_dec_init(&d, b.data, b.len);
    assert_int_equal(cm_fwd_get_header(&d, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 2 is not known"));

    uint64_t counts[] = {0, CM_FWD_MAX_WRITES + 1, UINT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        b.len = 0;
        cm_put_u32(&b, CM_FWD_MAGIC);
        cm_put_u8(&b, CM_FWD_VERSION);
        cm_put_uvar(&b, counts[i]);
        cm_dec_init(&d, b.data, b.len);
        assert_int_equal(cm_fwd_get_header(&d, &n, err, sizeof err), -1);
        assert_non_null(strstr(err, "holds 1 to 512 writes"));
    }
    cm_buf_free(&b);
}

/* A write whose fields would not survive becoming C strings, or with an unknown method. */
static void test_refuses_bad_writes(void **state)
{
    (void)state;
    struct {
        uint8_t method;
        const char *uri;
        size_t uri_len;
        const char *ip;
    } cases[] = {
        {CM_POST, "/kv/set\0/x", 10, "1.1.1.1"}, /* NUL inside the URI */
        {CM_POST, "kv/set", 6, "1.1.1.1"},       /* not a path */
        {CM_POST, "", 0, "1.1.1.1"},             /* empty */
        {99, "/kv/set", 7, "1.1.1.1"},           /* unknown method */
        {CM_POST, "/kv/set", 7,
         "1111111111222222222233333333334444444444555555555566666666667777"}, /* too long */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cm_buf b = {0};
        cm_put_u8(&b, cases[i].method);
        cm_put_u8(&b, 1);
        cm_put_bytes(&b, cases[i].uri, cases[i].uri_len);
        cm_put_str(&b, cases[i].ip);
        cm_put_str(&b, "");
        cm_put_str(&b, "id");
        cm_put_bytes(&b, "{}", 2);
        struct cm_dec d;
        cm_dec_init(&d, b.data, b.len);
        struct cm_fwd_write w;
        assert_int_equal(cm_fwd_get_write(&d, &w), -1);
        cm_buf_free(&b);
    }
}

static void test_refuses_bad_results(void **state)
{
    (void)state;
    /* a status outside 100..999, and more headers than a job holds */
    struct cm_buf b = {0};
    cm_put_u16(&b, 42);
    cm_put_str(&b, "text/plain");
    cm_put_u8(&b, 0);
    cm_put_bytes(&b, "", 0);
    struct cm_dec d;
    cm_dec_init(&d, b.data, b.len);
    struct cm_fwd_result r;
    assert_int_equal(cm_fwd_get_result(&d, &r), -1);
    b.len = 0;
    cm_put_u16(&b, 200);
    cm_put_str(&b, "text/plain");
    cm_put_u8(&b, CM_JOB_MAX_HDRS + 1);
    cm_dec_init(&d, b.data, b.len);
    assert_int_equal(cm_fwd_get_result(&d, &r), -1);
    cm_buf_free(&b);
}

int main(void)
{
    cmt_quiet();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_roundtrip),          cmocka_unit_test(test_result_roundtrip),
        cmocka_unit_test(test_truncations_fail_cleanly), cmocka_unit_test(test_refuses_bad_headers),
        cmocka_unit_test(test_refuses_bad_writes),       cmocka_unit_test(test_refuses_bad_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
