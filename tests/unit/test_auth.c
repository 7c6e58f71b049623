/* Request tokens: byte-exact with the CubeFS clients, and strict on everything else. */
#include "testutil.h"

#include "../../src/security/auth.h"
#include "../../src/util/base64.h"

static void test_known_vectors(void **state)
{
    (void)state;
    char tok[CM_AUTH_TOKEN_LEN + 1];
    /* computed independently: base64url(ts_le || md5(path + query + ts_le + secret)) */
    cm_auth_token("/config/get", "key=balance", 1700000000, "testsecret", tok);
    assert_string_equal(tok, "APFTZQAAAAAB046-zT7Uy1OtP9PpRNVf");
    cm_auth_token("/stat", "", 0, "s", tok);
    assert_string_equal(tok, "AAAAAAAAAAAQ5kDeqQIsf76naHd8enQM");
}

static void test_verify(void **state)
{
    (void)state;
    char tok[CM_AUTH_TOKEN_LEN + 1];
    const char *why = NULL;
    int64_t now = 1700000000;
    cm_auth_token("/bid/alloc", "", now, "sec", tok);
    assert_int_equal(cm_auth_verify(tok, "/bid/alloc", "", "sec", now, 0, &why), 0);
    assert_int_equal(cm_auth_verify(tok, "/bid/alloc", "", "sec", now + 10, 60, &why), 0);
    assert_int_equal(cm_auth_verify(tok, "/bid/alloc", "", "other", now, 0, &why), -1);
    assert_string_equal(why, "mismatch");
    assert_int_equal(cm_auth_verify(tok, "/bid/allocx", "", "sec", now, 0, &why), -1);
    assert_int_equal(cm_auth_verify(tok, "/bid/alloc", "a=1", "sec", now, 0, &why), -1);
    assert_int_equal(cm_auth_verify(tok, "/bid/alloc", "", "sec", now + 3600, 60, &why), -1);
    assert_string_equal(why, "expired");
    assert_int_equal(cm_auth_verify(NULL, "/", "", "sec", now, 0, &why), -1);
    assert_string_equal(why, "missing");
    assert_int_equal(cm_auth_verify("", "/", "", "sec", now, 0, &why), -1);
    const char *bad[] = {"!!!!", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", tok + 1, "A=AA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cm_auth_verify(bad[i], "/bid/alloc", "", "sec", now, 0, &why), -1);
        assert_string_equal(why, "malformed");
    }
    /* a token over standard base64 ('+' '/') is accepted as the same bytes */
    char std[CM_AUTH_TOKEN_LEN + 1];
    strcpy(std, tok);
    for (char *p = std; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    assert_int_equal(cm_auth_verify(std, "/bid/alloc", "", "sec", now, 0, &why), 0);
}

/* The method-bound token of our multi-method paths: a known vector, and neither the method, the
 * path/query split nor the kind of token can be swapped. */
static void test_bound(void **state)
{
    (void)state;
    char tok[CM_AUTH_TOKEN_LEN + 1];
    const char *why;
    cm_auth_token_bound("POST", "/log/level", "level=debug", 1700000000, "testsecret", tok);
    assert_string_equal(tok, "APFTZQAAAACTBvlaCMM9p60OS9HdmR2C");
    int64_t now = 1700000000;
    assert_int_equal(
        cm_auth_verify_bound(tok, "POST", "/log/level", "level=debug", "testsecret", now, 60, &why),
        0);
    assert_int_equal(
        cm_auth_verify_bound(tok, "GET", "/log/level", "level=debug", "testsecret", now, 60, &why),
        -1);
    assert_string_equal(why, "mismatch");
    assert_int_equal(
        cm_auth_verify_bound(tok, "POST", "/log/levellevel=debug", "", "testsecret", now, 60, &why),
        -1);
    assert_int_equal(
        cm_auth_verify_bound(tok, "POST", "/log/level", "level=debug", "other", now, 60, &why), -1);
    assert_int_equal(cm_auth_verify(tok, "/log/level", "level=debug", "testsecret", now, 60, &why),
                     -1);
    /* the CubeFS token is not a method-bound one */
    cm_auth_token("/log/level", "level=debug", now, "testsecret", tok);
    assert_int_equal(
        cm_auth_verify_bound(tok, "POST", "/log/level", "level=debug", "testsecret", now, 60, &why),
        -1);
    /* the CubeFS token cannot tell /kv/delete/abc from /kv/delete/ab?c; the bound one can */
    cm_auth_token("/kv/delete/abc", "", now, "s", tok);
    assert_int_equal(cm_auth_verify(tok, "/kv/delete/ab", "c", "s", now, 0, &why), 0);
    cm_auth_token_bound("POST", "/kv/delete/abc", "", now, "s", tok);
    assert_int_equal(cm_auth_verify_bound(tok, "POST", "/kv/delete/ab", "c", "s", now, 0, &why),
                     -1);
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t in[40], out[40];
    char enc[64];
    for (size_t n = 0; n < sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        size_t len = cm_b64url_encode(in, n, enc);
        assert_int_equal(len % 4, 0);
        assert_int_equal(cm_b64url_decode(enc, len, out, sizeof out), (long)n);
        assert_memory_equal(in, out, n);
    }
    assert_int_equal(cm_b64url_decode("AAAA", 4, out, 2), -1); /* does not fit */
}

int main(void)
{
    cmt_quiet();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
