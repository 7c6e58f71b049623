/* The config-file parser: good files load with the right values, bad ones fail naming the field. */
#include "testutil.h"

#include "../../src/fsm/codemode.h"

static int parse(const char *text, struct cm_config *cfg, char *err, size_t errlen)
{
    return cm_config_parse(text, strlen(text), "t.conf", cfg, err, errlen);
}

static void expect_ok(const char *text, struct cm_config *cfg)
{
    char err[512] = "";
    if (parse(text, cfg, err, sizeof err) != 0)
        fail_msg("expected to load, got \"%s\" for: %s", err, text);
}

/* `text` with the first `from` replaced by `to`, in one of a few static buffers (so that the
 * result of one edit can be edited again). */
static const char *edit(const char *text, const char *from, const char *to)
{
    static char bufs[4][16384];
    static unsigned next;
    char *out = bufs[next++ % 4];
    const char *at = strstr(text, from);
    if (at == NULL)
        fail_msg("\"%s\" is not in: %s", from, text);
    snprintf(out, sizeof bufs[0], "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

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
    /* replica modes are known but refused, enabled or not */
    expect_fail(edit(good, "\"EC3P3\"", "\"Replica3OneAZ\""),
                "replica code modes are not supported yet (\"Replica3OneAZ\": copy-set placement");
    expect_fail(edit(good, "\"EC6P6\"", "\"Replica3\""),
                "code_mode_policies[1]: replica code modes are not supported yet");
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

/* A file whose policies are all disabled loads (as in the reference); nothing is enabled. */
static void test_all_policies_disabled(void **state)
{
    (void)state;
    struct cm_config cfg;
    expect_ok(edit(cmt_config_text(NULL, NULL), "\"enable\":true", "\"enable\":false"), &cfg);
    assert_int_equal(cfg.n_policies, 2);
    assert_false(cfg.policies[0].enable);
    assert_false(cfg.policies[1].enable);
    assert_non_null(strstr(cm_config_default(&cfg, "code_mode"), "\"EC3P3\""));
    assert_null(strstr(cm_config_default(&cfg, "code_mode"), "true"));
    cm_config_free(&cfg);
    /* the size ranges of disabled policies are not checked */
    expect_ok(edit(edit(cmt_config_text(NULL, NULL), "\"enable\":true", "\"enable\":false"),
                   "\"min_size\":0", "\"min_size\":7"),
              &cfg);
    cm_config_free(&cfg);
}

static void test_code_modes(void **state)
{
    (void)state;
    const struct cm_codemode *m = cm_codemode_by_name("EC12P9");
    assert_non_null(m);
    assert_int_equal(m->id, 14);
    assert_int_equal(m->n, 12);
    assert_int_equal(m->m, 9);
    assert_int_equal(m->l, 0);
    assert_int_equal(m->az_count, 3);
    assert_int_equal(m->put_quorum, 20);
    assert_int_equal(m->min_shard_size, 2048);
    assert_ptr_equal(cm_codemode_by_id(14), m);
    /* units of each AZ: 4 data and 3 parity */
    int units[32];
    assert_int_equal(cm_codemode_az_units(m, 2, units), 7);
    assert_int_equal(units[0], 8);
    assert_int_equal(units[4], 12 + 6);
    /* replica modes are known by name only, never as a volume's mode */
    assert_null(cm_codemode_by_name("Replica3"));
    assert_null(cm_codemode_by_id(100));
    assert_null(cm_codemode_by_id(101));
    const struct cm_codemode *r = cm_codemode_replica_by_name("Replica3OneAZ");
    assert_non_null(r);
    assert_int_equal(r->id, 101);
    assert_int_equal(r->az_count, 1);
    assert_int_equal(cm_codemode_replica_by_name("Replica3")->id, 100);
    assert_null(cm_codemode_replica_by_name("EC3P3"));
    /* a three-IDC cluster may use EC12P9 */
    struct cm_config cfg;
    expect_ok(edit(edit(cmt_config_text(NULL, NULL), "\"idc\":[\"z0\"]",
                        "\"idc\":[\"z0\",\"z1\",\"z2\"]"),
                   "\"EC3P3\"", "\"EC12P9\""),
              &cfg);
    assert_int_equal(cfg.policies[0].code_mode, 14);
    cm_config_free(&cfg);
}

/* The shape of the v3.5.1 sample clustermgr.conf, comments and Go-only fields included. */
static const char sample_351[] =
    "{\n"
    "  \"bind_addr\":\":9998\", \"cluster_id\":1, \"idc\":[\"z0\"], \"chunk_size\": 16777216,\n"
    "  \"log\": {\"level\": \"info\", \"filename\": \"./run/logs/clustermgr.log\"},\n"
    "  \"auditlog\": {\"logdir\": \"./run/auditlog/clustermgr\"},\n"
    "  \"auth\": {\"enable_auth\": false, \"secret\": \"testsecret\"},\n"
    "  \"region\": \"test-region\",\n"
    "  \"db_path\": \"./run/db\",\n"
    "  \"code_mode_policies\": [\n"
    "    {\"mode_name\":\"EC3P3\",\"min_size\":0,\"max_size\":5368709120,\"size_ratio\":1,"
    "\"enable\":true}\n"
    "  ],\n"
    "  \"raft_config\": {\n"
    "    \"snapshot_patch_num\": 64,\n"
    "    \"server_config\": {\"nodeId\": 2, \"listen_port\": 10111, \"raft_wal_dir\": "
    "\"./run/raftwal2\"},\n"
    "    \"raft_node_config\": {\n"
    "      \"flush_num_interval\": 10000, \"flush_time_interval_s\": 10,\n"
    "      \"truncate_num_interval\": 10, \"node_protocol\": \"http://\",\n"
    "      \"members\": [\n"
    "        {\"id\":1, \"host\":\"127.0.0.1:10110\", \"learner\": false, "
    "\"node_host\":\"127.0.0.1:9998\"},\n"
    "        {\"id\":2, \"host\":\"127.0.0.1:10111\", \"learner\": false, "
    "\"node_host\":\"127.0.0.1:9999\"},\n"
    "        {\"id\":3, \"host\":\"127.0.0.1:10112\", \"learner\": false, "
    "\"node_host\":\"127.0.0.1:10000\"}\n"
    "      ]\n"
    "    }\n"
    "  },\n"
    "  \"volume_mgr_config\": {\"allocatable_size\": 1048576},\n"
    "  \"disk_mgr_config\": {\"refresh_interval_s\": 10, \"rack_aware\": false, "
    "\"host_aware\": false}\n"
    "}\n";

static void test_current_release_sample(void **state)
{
    (void)state;
    struct cm_config cfg;
    expect_ok(sample_351, &cfg);
    assert_int_equal(cfg.http_port, 9998);
    assert_int_equal(cfg.node_id, 2);
    assert_int_equal(cfg.n_peers, 3);
    assert_int_equal(cfg.n_learners, 0);
    assert_int_equal(cfg.n_nodes, 3);
    assert_string_equal(cfg.raft_addr, "127.0.0.1:10111");
    assert_string_equal(cm_config_node_http(&cfg, 1), "127.0.0.1:9998");
    assert_string_equal(cm_config_node_http(&cfg, 3), "127.0.0.1:10000");
    assert_true(cfg.allocatable_size == 1048576);
    assert_true(cfg.alloc_factor == 5);
    assert_true(cfg.refresh_interval_s == 10);
    assert_false(cfg.rack_aware);
    assert_false(cfg.host_aware);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].node_set_cap, 108);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].node_set_rack_cap, 6);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].disk_set_cap, 2160);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].disk_count_per_node_in_disk_set, 20);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_SSD].node_set_cap, 0);
    /* no cluster_config: only the forced keys, no task switch, the current spelling */
    assert_int_equal(cfg.n_defaults, 3);
    assert_string_equal(cm_config_default(&cfg, "volume_reserve_size"), "10485760");
    assert_null(cm_config_default(&cfg, "balance"));
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_CURRENT);
    cm_config_free(&cfg);
    /* cluster_config is optional in this form only: a 2022-form file needs one */
    expect_fail(edit(cmt_config_text(NULL, NULL),
                     "\"cluster_config\":{\"balance\":\"Disable\",\"disk_repair\":\"Disable\","
                     "\"init_volume_num\":100},",
                     ""),
                "field \"cluster_config\" is required (it may be {}) in a file without "
                "raft_config.raft_node_config.members");
    /* without allocatable_size the volume_reserve_size governs (-1) */
    expect_ok(edit(sample_351, "\"allocatable_size\": 1048576", "\"alloc_factor\": 7"), &cfg);
    assert_true(cfg.allocatable_size == -1);
    assert_true(cfg.alloc_factor == 7);
    cm_config_free(&cfg);
    expect_fail(edit(sample_351, "\"allocatable_size\": 1048576", "\"allocatable_size\": -1"),
                "allocatable_size");
    expect_fail(edit(sample_351, "\"allocatable_size\": 1048576", "\"alloc_factor\": \"5\""),
                "alloc_factor");
}

/* Every Go-only field the releases since 2022 added is accepted (and ignored). */
static void test_go_only_fields_of_later_releases(void **state)
{
    (void)state;
    const char *t = edit(sample_351, "\"db_path\": \"./run/db\",",
                         "\"db_path\": \"./run/db\", \"kv_db_path\": \"./kv\", \"kv_db_option\": "
                         "{\"create_if_missing\": true}, \"db_cache_size\": 1073741824, "
                         "\"consistent_check_interval_m\": 360, \"consul_token\": \"t\", "
                         "\"consul_token_file\": \"/etc/t\", \"normal_db_path\": \"./n\",");
    t = edit(t, "\"raft_wal_dir\": \"./run/raftwal2\"",
             "\"raft_wal_dir\": \"./run/raftwal2\", \"use_rocksdb\": true, "
             "\"disable_proposal_forwarding\": true, \"server_timeout_min\": 10");
    t = edit(t, "\"node_protocol\": \"http://\",",
             "\"node_protocol\": \"http://\", "
             "\"apply_flush\": true,");
    t = edit(t, "\"allocatable_size\": 1048576",
             "\"allocatable_size\": 1048576, \"shard_num\": 16, \"alloc_factor\": 3");
    t = edit(t, "\"host_aware\": false", "\"host_aware\": false, \"reserved_space\": 1024");
    struct cm_config cfg;
    expect_ok(t, &cfg);
    assert_true(cfg.alloc_factor == 3);
    assert_int_equal(cfg.n_peers, 3);
    cm_config_free(&cfg);
    /* a real unknown field next to them still fails */
    expect_fail(edit(t, "\"shard_num\": 16", "\"shard_nums\": 16"),
                "unknown field \"volume_mgr_config.shard_nums\"");
}

static void test_members(void **state)
{
    (void)state;
    struct cm_config cfg;
    /* a learner and a member without node_host */
    const char *t = edit(sample_351,
                         "{\"id\":3, \"host\":\"127.0.0.1:10112\", \"learner\": false, "
                         "\"node_host\":\"127.0.0.1:10000\"}",
                         "{\"id\":3, \"host\":\"127.0.0.1:10112\", \"learner\": true, "
                         "\"node_host\":\"127.0.0.1:10000\"}, {\"id\":4, \"host\":"
                         "\"127.0.0.1:10113\"}");
    expect_ok(t, &cfg);
    assert_int_equal(cfg.n_peers, 3); /* "learner" absent: a voter */
    assert_true(cfg.peers[2].id == 4 && strcmp(cfg.peers[2].addr, "127.0.0.1:10113") == 0);
    assert_int_equal(cfg.n_learners, 1);
    assert_true(cfg.learners[0].id == 3 && strcmp(cfg.learners[0].addr, "127.0.0.1:10112") == 0);
    assert_int_equal(cfg.n_nodes, 3);
    assert_null(cm_config_node_http(&cfg, 4));
    cm_config_free(&cfg);

    /* both forms, saying the same: accepted */
    const char *both = edit(sample_351, "\"raft_wal_dir\": \"./run/raftwal2\"",
                            "\"raft_wal_dir\": \"./run/raftwal2\", \"peers\": {\"3\": "
                            "\"127.0.0.1:10112\", \"1\": \"127.0.0.1:10110\", \"2\": "
                            "\"127.0.0.1:10111\"}");
    both = edit(both, "\"node_protocol\": \"http://\",",
                "\"node_protocol\": \"http://\", \"nodes\": {\"1\": \"127.0.0.1:9998\", \"2\": "
                "\"127.0.0.1:9999\", \"3\": \"127.0.0.1:10000\"},");
    expect_ok(both, &cfg);
    assert_int_equal(cfg.n_peers, 3);
    assert_int_equal(cfg.n_nodes, 3);
    cm_config_free(&cfg);
    char copy[16384];
    snprintf(copy, sizeof copy, "%s", both);
    /* ... and refused as soon as they disagree */
    expect_fail(edit(copy, "\"3\": \"127.0.0.1:10112\"", "\"3\": \"127.0.0.1:10122\""),
                "raft_node_config.members and raft_config.server_config.peers disagree about "
                "node 3 (127.0.0.1:10122 there, 127.0.0.1:10112 in members)");
    expect_fail(edit(copy, "\"3\": \"127.0.0.1:10112\", ",
                     "\"3\": \"127.0.0.1:10112\", \"5\": \"127.0.0.1:10115\", "),
                "disagree about node 5 (127.0.0.1:10115 there, absent in members)");
    expect_fail(edit(copy, "\"3\": \"127.0.0.1:10112\", ", ""),
                "disagree about node 3 (absent there");
    expect_fail(edit(copy, "\"3\": \"127.0.0.1:10000\"", "\"3\": \"127.0.0.1:10001\""),
                "members and raft_config.raft_node_config.nodes disagree about node 3");
    expect_fail(edit(copy, "\"2\": \"127.0.0.1:10111\"}",
                     "\"2\": \"127.0.0.1:10111\"}, \"learners\": {\"9\": \"127.0.0.1:10119\"}"),
                "server_config.learners disagree about node 9 (127.0.0.1:10119 there, absent");
    /* a learner in members but a peer in server_config */
    expect_fail(edit(copy, "\"id\":3, \"host\":\"127.0.0.1:10112\", \"learner\": false",
                     "\"id\":3, \"host\":\"127.0.0.1:10112\", \"learner\": true"),
                "disagree about node 3");

    /* bad entries */
    expect_fail(edit(sample_351, "{\"id\":1,", "{\"id\":0,"), "members[0].id must not be 0");
    expect_fail(edit(sample_351, "{\"id\":3,", "{\"id\":2,"), "node id 2 is listed twice");
    expect_fail(edit(sample_351, "\"host\":\"127.0.0.1:10112\"", "\"host\":\"127.0.0.1:10111\""),
                "address 127.0.0.1:10111 is used by two members");
    expect_fail(edit(sample_351, "\"host\":\"127.0.0.1:10112\"", "\"host\":\"nowhere\""),
                "members[2].host: \"nowhere\" is not an address");
    expect_fail(edit(sample_351, "\"node_host\":\"127.0.0.1:10000\"", "\"node_host\":\"x:y\""),
                "members[2].node_host");
    expect_fail(edit(sample_351, "\"learner\": false, \"node_host\":\"127.0.0.1:9998\"",
                     "\"learner\": false, \"nodehost\":\"127.0.0.1:9998\""),
                "unknown field \"raft_config.raft_node_config.members[0].nodehost\"");
    expect_fail(edit(sample_351, "\"learner\": false, \"node_host\":\"127.0.0.1:9998\"",
                     "\"learner\": \"no\", \"node_host\":\"127.0.0.1:9998\""),
                "\"learner\" must be a boolean");
    expect_fail(edit(sample_351, "{\"id\":1, \"host\":\"127.0.0.1:10110\",", "{\"id\":1,"),
                "members[0]: field \"host\" is required");
    expect_fail(edit(sample_351, "\"members\": [", "\"members\": 1, \"apply_flush\": ["),
                "members must be an array");
    /* this node's own entry must match its listen port */
    expect_fail(edit(sample_351, "\"listen_port\": 10111", "\"listen_port\": 10119"),
                "does not match");
}

static void test_copy_set_configs(void **state)
{
    (void)state;
    struct cm_config cfg;
    const char *at = "\"host_aware\": false";
    expect_ok(edit(sample_351, at,
                   "\"host_aware\": false, \"copy_set_configs\": {\"blobnode\": {\"hdd\": "
                   "{\"node_set_cap\": 24, \"disk_set_cap\": 0, \"node_set_rack_cap\": 3}, "
                   "\"SSD\": {\"node_set_cap\": 12, \"disk_count_per_node_in_disk_set\": 4}}, "
                   "\"shardnode\": {\"nvmessd\": {\"node_set_cap\": 12}}}"),
              &cfg);
    /* hdd: given values, unset (0 or absent) ones at their defaults */
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].node_set_cap, 24);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].node_set_rack_cap, 3);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].disk_set_cap, 2160);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_HDD].disk_count_per_node_in_disk_set, 20);
    /* ssd: no defaults, names compared without case */
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_SSD].node_set_cap, 12);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_SSD].node_set_rack_cap, 0);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_SSD].disk_set_cap, 0);
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_SSD].disk_count_per_node_in_disk_set, 4);
    /* shardnode entries are ignored */
    assert_int_equal(cfg.copy_set[CM_DISK_TYPE_NVMESSD].node_set_cap, 0);
    cm_config_free(&cfg);

    struct {
        const char *value, *needle;
    } bad[] = {
        {"{\"blobnode\": {\"1\": {}}}", "\"1\" is not a disk type name (hdd, ssd, nvmessd)"},
        {"{\"1\": {\"hdd\": {}}}", "\"1\" is not a node role name"},
        {"{\"blobnode\": {\"hdd\": {\"node_set_cap\": -1}}}", "node_set_cap"},
        {"{\"blobnode\": {\"hdd\": {\"node_set_caps\": 1}}}",
         "unknown field \"disk_mgr_config.copy_set_configs.blobnode.hdd.node_set_caps\""},
        {"{\"blobnode\": {\"hdd\": 5}}", "copy_set_configs.blobnode.hdd must be an object"},
        {"{\"blobnode\": [1]}", "copy_set_configs.blobnode must be an object"},
        {"[]", "copy_set_configs must be an object"},
        /* the G3 shape (disk type at the top) is not the G2 one */
        {"{\"hdd\": {\"node_set_cap\": 1}}", "\"hdd\" is not a node role name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char to[512];
        snprintf(to, sizeof to, "\"host_aware\": false, \"copy_set_configs\": %s", bad[i].value);
        expect_fail(edit(sample_351, at, to), bad[i].needle);
    }
}

static void test_task_switch_format(void **state)
{
    (void)state;
    struct cm_config cfg;
    /* a 2022 file spells its switches Enable/Disable: that spelling stays */
    cmt_load_config(&cfg);
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_2022);
    assert_string_equal(cm_config_default(&cfg, "balance"), "Disable");
    cm_config_free(&cfg);
    const char *base = cmt_config_text(NULL, NULL);
    const char *cc = "\"cluster_config\":{\"balance\":\"Disable\",\"disk_repair\":\"Disable\",";
    /* true/false, or no switch at all: the current spelling */
    expect_ok(edit(base, cc, "\"cluster_config\":{\"balance\":\"true\","), &cfg);
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_CURRENT);
    assert_string_equal(cm_config_default(&cfg, "balance"), "true");
    cm_config_free(&cfg);
    expect_ok(edit(base, cc, "\"cluster_config\":{"), &cfg);
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_CURRENT);
    assert_null(cm_config_default(&cfg, "balance"));
    assert_null(cm_config_default(&cfg, "volume_inspect"));
    cm_config_free(&cfg);
    /* given explicitly, the format respells the defaults; vol_inspect names volume_inspect too */
    expect_ok(edit(edit(base, cc,
                        "\"cluster_config\":{\"balance\":\"ENABLE\",\"disk_repair\":\"Disable\","
                        "\"vol_inspect\":\"enable\",\"other\":\"Enable\","),
                   "\"chunk_size\"", "\"task_switch_format\":\"current\",\"chunk_size\""),
              &cfg);
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_CURRENT);
    assert_string_equal(cm_config_default(&cfg, "balance"), "true");
    assert_string_equal(cm_config_default(&cfg, "disk_repair"), "false");
    assert_string_equal(cm_config_default(&cfg, "vol_inspect"), "true");
    assert_string_equal(cm_config_default(&cfg, "volume_inspect"), "true");
    assert_string_equal(cm_config_default(&cfg, "other"), "Enable"); /* not a switch */
    for (size_t i = 1; i < cfg.n_defaults; i++)
        assert_true(strcmp(cfg.defaults[i - 1].key, cfg.defaults[i].key) < 0);
    cm_config_free(&cfg);
    expect_ok(edit(edit(base, cc,
                        "\"cluster_config\":{\"data_inspect\":\"true\","
                        "\"volume_inspect\":\"false\",\"balance\":\"maybe\","),
                   "\"chunk_size\"", "\"task_switch_format\":\"2022\",\"chunk_size\""),
              &cfg);
    assert_int_equal(cfg.task_switch_format, CM_SWITCH_2022);
    assert_string_equal(cm_config_default(&cfg, "data_inspect"), "Enable");
    assert_string_equal(cm_config_default(&cfg, "vol_inspect"), "Disable");
    assert_string_equal(cm_config_default(&cfg, "balance"), "maybe"); /* kept as written */
    cm_config_free(&cfg);
    expect_fail(edit(base, "\"chunk_size\"", "\"task_switch_format\":\"new\",\"chunk_size\""),
                "task_switch_format must be");
    expect_fail(edit(base, cc,
                     "\"cluster_config\":{\"vol_inspect\":\"true\","
                     "\"volume_inspect\":\"false\","),
                "cluster_config.vol_inspect (\"true\") and cluster_config.volume_inspect "
                "(\"false\") name the same task switch but differ");

    /* the value normaliser */
    assert_string_equal(cm_config_switch_value(CM_SWITCH_CURRENT, "Enable"), "true");
    assert_string_equal(cm_config_switch_value(CM_SWITCH_CURRENT, "DISABLE"), "false");
    assert_string_equal(cm_config_switch_value(CM_SWITCH_CURRENT, "True"), "true");
    assert_string_equal(cm_config_switch_value(CM_SWITCH_2022, "true"), "Enable");
    assert_string_equal(cm_config_switch_value(CM_SWITCH_2022, "False"), "Disable");
    assert_null(cm_config_switch_value(CM_SWITCH_2022, "on"));
    assert_null(cm_config_switch_value(CM_SWITCH_CURRENT, ""));
    assert_true(cm_config_is_switch("volume_inspect") && cm_config_is_switch("vol_inspect"));
    assert_true(cm_config_is_switch("data_inspect") && cm_config_is_switch("balance"));
    assert_false(cm_config_is_switch("volume_reserve_size"));
    assert_string_equal(cm_config_switch_alias("vol_inspect"), "volume_inspect");
    assert_string_equal(cm_config_switch_alias("volume_inspect"), "vol_inspect");
    assert_null(cm_config_switch_alias("balance"));
}

/* limits: quotas of the replicated stores and of dumps, defaults sized for a large region */
static void test_limits(void **state)
{
    (void)state;
    struct cm_config cfg;
    cmt_load_config(&cfg);
    assert_true(cfg.kv_max_entries == 1000000 && cfg.kv_max_bytes == 1ull << 30);
    assert_true(cfg.service_max_entries == 100000 && cfg.service_max_bytes == 64ull << 20);
    assert_true(cfg.max_concurrent_dumps == 2 && cfg.config_list_max_bytes == 32u << 20);
    assert_true(cfg.service_collect_after_s == 86400);
    assert_true(cfg.body_budget_bytes == 256ull << 20);
    assert_true(cfg.disk_max_entries == 1000000 && cfg.disk_max_bytes == 2ull << 30);
    assert_true(cfg.node_max_entries == 100000 && cfg.node_max_bytes == 256ull << 20);
    assert_false(cfg.peer_secret_is_api); /* auth off */
    cm_config_free(&cfg);
    expect_ok(cmt_config_text(",\"http\":{\"body_budget_bytes\":12345678},\"auth\":{"
                              "\"enable_auth\":true,\"secret\":\"s\"}",
                              NULL),
              &cfg);
    assert_true(cfg.body_budget_bytes == 12345678);
    assert_true(cfg.peer_secret_is_api); /* auth on, no peer secret: the API secret */
    cm_config_free(&cfg);
    expect_ok(cmt_config_text(",\"auth\":{\"enable_auth\":true,\"secret\":\"s\","
                              "\"peer_secret\":\"p\"}",
                              NULL),
              &cfg);
    assert_false(cfg.peer_secret_is_api);
    cm_config_free(&cfg);
    expect_ok(cmt_config_text(",\"limits\":{\"kv_max_entries\":10,\"kv_max_bytes\":4096,"
                              "\"service_max_entries\":5,\"service_max_bytes\":1000,"
                              "\"max_concurrent_dumps\":0,\"config_list_max_bytes\":7,"
                              "\"service_collect_after_s\":3}",
                              NULL),
              &cfg);
    assert_true(cfg.kv_max_entries == 10 && cfg.kv_max_bytes == 4096);
    assert_true(cfg.service_max_entries == 5 && cfg.service_max_bytes == 1000);
    assert_true(cfg.max_concurrent_dumps == 1); /* 0 would refuse every dump */
    assert_true(cfg.config_list_max_bytes == 7 && cfg.service_collect_after_s == 3);
    cm_config_free(&cfg);
    /* no quota above what apply enforces */
    expect_fail(cmt_config_text(",\"limits\":{\"kv_max_entries\":2000001}", NULL),
                "kv_max_entries");
    expect_fail(cmt_config_text(",\"limits\":{\"service_max_entries\":200001}", NULL),
                "service_max_entries");
    expect_fail(cmt_config_text(",\"limits\":{\"disk_max_entries\":16777217}", NULL),
                "disk_max_entries");
    expect_fail(cmt_config_text(",\"limits\":{\"node_max_bytes\":1073741825}", NULL),
                "node_max_bytes");
    expect_fail(cmt_config_text(",\"limits\":{\"service_max_bytes\":268435457}", NULL),
                "service_max_bytes");
    expect_fail(cmt_config_text(",\"limits\":{\"max_dumps\":1}", NULL), "limits.max_dumps");
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
        cmocka_unit_test(test_all_policies_disabled),
        cmocka_unit_test(test_code_modes),
        cmocka_unit_test(test_current_release_sample),
        cmocka_unit_test(test_go_only_fields_of_later_releases),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_copy_set_configs),
        cmocka_unit_test(test_task_switch_format),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
