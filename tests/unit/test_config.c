/* The config-file parser: good files load with the right values, bad ones fail naming the field. */
#include "testutil.h"

static void expect_fail(const char *text, const char *needle)
{
    struct cm_config cfg;
    char err[512] = "";
    int rc = cm_config_parse(text, strlen(text), "t.conf", &cfg, err, sizeof err);
    if (rc == 0) {
        cm_config_free(&cfg);
        fail_msg("expected failure containing \"%s\" for: %s", needle, text);
    }
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_good_config(void **state)
{
    (void)state;
    struct cm_config cfg;
    cmt_load_config(&cfg);
    assert_string_equal(cfg.http_ip, "127.0.0.1");
    assert_int_equal(cfg.http_port, 9998);
    assert_int_equal(cfg.cluster_id, 1);
    assert_int_equal(cfg.n_idc, 1);
    assert_true(cfg.node_id == 1);
    assert_int_equal(cfg.raft_port, 10110);
    assert_string_equal(cfg.raft_addr, "127.0.0.1:10110");
    assert_string_equal(cfg.raft_listen_ip, "127.0.0.1");
    assert_int_equal(cfg.n_peers, 2);
    assert_string_equal(cm_config_node_http(&cfg, 2), "127.0.0.1:9999");
    /* control-plane defaults */
    assert_int_equal(cfg.heartbeat_ms, 100);
    assert_int_equal(cfg.election_ms, 750);
    assert_int_equal(cfg.propose_timeout_ms, 10000);
    assert_true(cfg.snapshot_threshold >= 1000);
    /* defaults of the config store */
    assert_string_equal(cm_config_default(&cfg, "balance"), "Disable");
    assert_string_equal(cm_config_default(&cfg, "init_volume_num"), "100");
    assert_string_equal(cm_config_default(&cfg, "volume_reserve_size"), "10485760");
    assert_string_equal(cm_config_default(&cfg, "volume_chunk_size"), "16777216");
    assert_string_equal(cm_config_default(&cfg, "code_mode"),
                        "[{\"mode_name\":\"EC3P3\",\"min_size\":0,\"max_size\":1024,\"size_ratio\":"
                        "0.2,\"enable\":true},{\"mode_name\":\"EC6P6\",\"min_size\":1025,"
                        "\"max_size\":2048,\"size_ratio\":0.8,\"enable\":false}]");
    for (size_t i = 1; i < cfg.n_defaults; i++)
        assert_true(strcmp(cfg.defaults[i - 1].key, cfg.defaults[i].key) < 0);
    assert_int_equal(cfg.n_policies, 2);
    assert_int_equal(cfg.policies[0].code_mode, 11);
    cm_config_free(&cfg);
}

static void test_ticks_and_ms(void **state)
{
    (void)state;
    struct cm_config cfg;
    char err[512];
    const char *t = cmt_config_text(NULL, ",\"tick_interval\":1,\"heartbeat_tick\":1,"
                                          "\"election_tick\":3");
    assert_int_equal(cm_config_parse(t, strlen(t), "t", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_int_equal(cfg.election_ms, 3000);
    cm_config_free(&cfg);
    t = cmt_config_text(NULL, ",\"heartbeat_timeout_ms\":20,\"election_timeout_ms\":200,"
                              "\"propose_timeout\":3,\"snapshot_threshold\":2048");
    assert_int_equal(cm_config_parse(t, strlen(t), "t", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.heartbeat_ms, 20);
    assert_int_equal(cfg.election_ms, 200);
    assert_int_equal(cfg.propose_timeout_ms, 3000);
    assert_int_equal(cfg.snapshot_threshold, 2048);
    cm_config_free(&cfg);
    expect_fail(cmt_config_text(NULL, ",\"heartbeat_timeout_ms\":500,\"election_timeout_ms\":400"),
                "election timeout");
}

static void test_comments_and_go_only_fields(void **state)
{
    (void)state;
    const char *base = cmt_config_text(",\"normal_db_path\":\"/tmp/x\",\"max_procs\":0,"
                                       "\"normal_db_option\":{\"create_if_missing\":true}",
                                       ",\"raft_wal_sync\":true");
    char text[9000];
    snprintf(text, sizeof text, "# a comment\n// another\n/* block */ %s", base);
    struct cm_config cfg;
    char err[512];
    assert_int_equal(cm_config_parse(text, strlen(text), "t", &cfg, err, sizeof err), 0);
    cm_config_free(&cfg);
    /* '#' inside a string is data, not a comment */
    const char *t = cmt_config_text(",\"region\":\"r#1//x\"", NULL);
    assert_int_equal(cm_config_parse(t, strlen(t), "t", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.region, "r#1//x");
    cm_config_free(&cfg);
}

static void test_bad_configs(void **state)
{
    (void)state;
    expect_fail("", "not valid JSON");
    expect_fail("{", "not valid JSON");
    expect_fail("[]", "must be an object");
    expect_fail(cmt_config_text(",\"bind_host\":\"x\"", NULL), "unknown field \"bind_host\"");
    expect_fail(cmt_config_text(NULL, ",\"bogus\":1"),
                "unknown field \"raft_config.server_config.bogus\"");
    expect_fail(cmt_config_text(",\"disk_mgr_config\":{\"refresh\":1}", NULL),
                "unknown field \"disk_mgr_config.refresh\"");
    expect_fail(cmt_config_text(",\"region\":5", NULL), "\"region\" must be a string");
    expect_fail(cmt_config_text(",\"readonly\":\"yes\"", NULL), "\"readonly\" must be a boolean");
    expect_fail(cmt_config_text(NULL, ",\"tick_interval\":-1"), "tick_interval");
    expect_fail(cmt_config_text(",\"log\":{\"level\":\"loud\"}", NULL), "log.level");
    expect_fail(cmt_config_text(",\"unavailable_idc\":\"z9\"", NULL), "unavailable_idc");
    expect_fail(cmt_config_text(",\"auth\":{\"enable_auth\":true}", NULL), "auth.secret");
    expect_fail(cmt_config_text(",\"cluster_config\":{\"volume_reserve_size\":\"ten\"}", NULL),
                "volume_reserve_size");

    /* missing required fields */
    struct {
        const char *field, *text;
    } missing[] = {
        {"bind_addr", "{\"idc\":[\"z0\"],\"code_mode_policies\":[],\"cluster_config\":{}}"},
        {"idc", "{\"bind_addr\":\":1\",\"code_mode_policies\":[],\"cluster_config\":{}}"},
        {"raft_config", "{\"bind_addr\":\":1\",\"idc\":[\"z0\"],\"cluster_config\":{}}"},
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        expect_fail(missing[i].text, missing[i].field);

    char t[9000];
    const char *good = cmt_config_text(NULL, NULL);
    /* replace one piece of the good config */
    struct {
        const char *from, *to, *needle;
    } edits[] = {
        {"\"nodeId\":1", "\"nodeId\":0", "nodeId must not be 0"},
        {"\"nodeId\":1", "\"nodeId\":\"1\"", "\"nodeId\" must be an unsigned integer"},
        {"\"nodeId\":1,", "", "\"nodeId\" is required"},
        {"\"listen_port\":10110", "\"listen_port\":70000", "listen_port"},
        {"\"listen_port\":10110", "\"listen_port\":10119", "does not match"},
        {"\"raft_wal_dir\":\"/tmp/cm-unit\",", "", "\"raft_wal_dir\" is required"},
        {"\"bind_addr\":\"127.0.0.1:9998\"", "\"bind_addr\":\"nope\"", "bind_addr"},
        {"\"cluster_id\":1", "\"cluster_id\":4294967296", "cluster_id"},
        {"\"cluster_id\":1", "\"cluster_id\":-1", "cluster_id"},
        {"\"idc\":[\"z0\"]", "\"idc\":[]", "idc"},
        {"\"2\":\"127.0.0.1:10111\"", "\"x\":\"127.0.0.1:10111\"", "not a node id"},
        {"\"2\":\"127.0.0.1:10111\"", "\"2\":\"127.0.0.1\"", "ip:port"},
        {"\"2\":\"127.0.0.1:10111\"", "\"2\":\"127.0.0.1:10110\"", "used by two members"},
        {"\"EC3P3\"", "\"EC99\"", "unknown code mode"},
        {"\"min_size\":0", "\"min_size\":5", "must start at 0"},
        {"\"min_size\":1025,\"max_size\":2048,\"size_ratio\":0.8,\"enable\":false",
         "\"min_size\":1026,\"max_size\":2048,\"size_ratio\":0.8,\"enable\":true", "contiguous"},
        {"\"enable\":true", "\"enable\":false", "at least one policy must be enabled"},
        {"\"node_protocol\":\"http://\"", "\"node_protocol\":\"ftp://\"", "node_protocol"},
        {"\"chunk_size\":16777216", "\"chunk_size\":0", "chunk_size"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(good, edits[i].from);
        assert_non_null(at);
        snprintf(t, sizeof t, "%.*s%s%s", (int)(at - good), good, edits[i].to,
                 at + strlen(edits[i].from));
        expect_fail(t, edits[i].needle);
    }
    /* the AZ count of an enabled mode must match the number of IDCs */
    const char *at = strstr(good, "\"EC3P3\"");
    snprintf(t, sizeof t, "%.*s\"EC6P6\"%s", (int)(at - good), good, at + strlen("\"EC3P3\""));
    expect_fail(t, "availability zones");
}

static void test_joining_node_address(void **state)
{
    (void)state;
    /* a node in neither peers nor learners derives its raft address from its listen address */
    const char *good = cmt_config_text(NULL, NULL);
    char t[9000];
    const char *at = strstr(good, "\"nodeId\":1,\"listen_port\":10110");
    snprintf(t, sizeof t, "%.*s\"nodeId\":4,\"listen_port\":10113%s", (int)(at - good), good,
             at + strlen("\"nodeId\":1,\"listen_port\":10110"));
    struct cm_config cfg;
    char err[512];
    assert_int_equal(cm_config_parse(t, strlen(t), "t", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.raft_addr, "127.0.0.1:10113");
    assert_string_equal(cfg.raft_listen_ip, "0.0.0.0");
    cm_config_free(&cfg);
}

int main(void)
{
    cmt_quiet();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_config),
        cmocka_unit_test(test_ticks_and_ms),
        cmocka_unit_test(test_comments_and_go_only_fields),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_joining_node_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
