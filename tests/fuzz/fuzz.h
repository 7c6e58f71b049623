/*
 * Shared pieces of the fuzz targets (tests/fuzz/README.md): the node config they run with, a
 * state machine with some state in every module, and the snapshot oracles.
 *
 * Each target defines LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize). Built with
 * clang's -fsanitize=fuzzer it is a libFuzzer binary; built with replay.c it is a plain program
 * that runs every file it is given once (make unit replays the corpus that way, with any
 * compiler and with the sanitizer build).
 */
#ifndef CM_FUZZ_H
#define CM_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_config.h"
#include "../../src/fsm/mod_disk.h"
#include "../../src/fsm/mod_kv.h"
#include "../../src/fsm/mod_members.h"
#include "../../src/fsm/mod_node.h"
#include "../../src/fsm/mod_scope.h"
#include "../../src/fsm/mod_service.h"
#include "../../src/fsm/mod_volume.h"
#include "../../src/server/config.h"
#include "../../src/util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message: libFuzzer records the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed: %s: ", #cond);                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Proposer time of the commands the targets build: 2024-01-01T00:00:00Z. */
#define FUZZ_T0_NS 1704067200000000000LL

static const char fuzz_config_json[] =
    "{\"bind_addr\":\"127.0.0.1:9998\",\"cluster_id\":1,\"region\":\"r\","
    "\"idc\":[\"z0\",\"z1\",\"z2\"],\"chunk_size\":16777216,\"log\":{\"level\":\"error\"},"
    "\"code_mode_policies\":[{\"mode_name\":\"EC6P6\",\"min_size\":0,\"max_size\":1024,"
    "\"size_ratio\":0.2,\"enable\":true},{\"mode_name\":\"EC15P12\",\"min_size\":1025,"
    "\"max_size\":2048,\"size_ratio\":0.8,\"enable\":false}],"
    "\"cluster_config\":{\"balance\":\"Disable\",\"disk_repair\":\"Enable\"},"
    "\"disk_mgr_config\":{\"host_aware\":true,\"rack_aware\":true},"
    "\"raft_config\":{\"server_config\":{\"nodeId\":1,\"listen_port\":10110,"
    "\"raft_wal_dir\":\"/nonexistent/fuzz\",\"peers\":{\"1\":\"127.0.0.1:10110\"}},"
    "\"raft_node_config\":{\"nodes\":{\"1\":\"127.0.0.1:9998\"}}}}";

static inline const struct cm_config *fuzz_config(void)
{
    static struct cm_config cfg;
    static bool loaded;
    if (!loaded) {
        char err[512];
        if (cm_config_parse(fuzz_config_json, sizeof fuzz_config_json - 1, "fuzz", &cfg, err,
                            sizeof err) != 0) {
            fprintf(stderr, "fuzz config: %s\n", err);
            abort();
        }
        cm_log_set_level(CM_LOG_FATAL); /* apply logs every refused command */
        loaded = true;
    }
    return &cfg;
}

static uint64_t fuzz_req_id;

/* Apply one command built from its parts; `payload` is consumed. */
static inline void fuzz_apply(struct cm_fsm *fsm, uint8_t module, uint8_t op, int64_t ts_ns,
                              struct cm_buf *payload)
{
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = ++fuzz_req_id,
                       .ts_ns = ts_ns,
                       .payload = (const uint8_t *)payload->data,
                       .len = payload->len};
    FUZZ_CHECK(cm_fsm_apply_cmd(fsm, &c) == 0, "encode");
    cm_buf_free(payload);
}

/* A state machine with something in every module: members, config overrides, id scopes,
 * services, disks in three IDCs (some broken, dropping, readonly, heartbeaten) and kv keys. */
static inline struct cm_fsm *fuzz_fsm(void)
{
    const struct cm_config *cfg = fuzz_config();
    struct cm_fsm *fsm = cm_fsm_new(&cfg->fsm, 1);
    struct cm_buf b = {0};
    int64_t t = FUZZ_T0_NS;
    for (uint64_t id = 1; id <= 3; id++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%llu", 9997ULL + id);
        cm_members_enc_set_http(&b, id, addr);
        fuzz_apply(fsm, CM_MOD_MEMBERS, CM_MEMBERS_OP_SET_HTTP, t, &b);
    }
    cm_config_enc_set(&b, "balance", "Enable");
    fuzz_apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_SET, t, &b);
    cm_config_enc_set(&b, "k", "v");
    fuzz_apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_SET, t, &b);
    cm_scope_reserve(fsm, "bid", 1000, &b);
    fuzz_apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, t, &b);
    cm_scope_reserve(fsm, "diskid", 24, &b);
    fuzz_apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, t, &b);
    /* three blobnodes (CubeFS v3.5.1+) in two node sets; disks 19..24 belong to them */
    const struct cm_node_caps caps = {.node_set_cap = 2,
                                      .node_set_rack_cap = 1,
                                      .node_set_idc_cap = 1,
                                      .disk_set_cap = 3,
                                      .disk_per_node = 2};
    for (int i = 0; i < 3; i++) {
        char host[40], idc[16];
        snprintf(host, sizeof host, "http://127.0.1.%d:8899", i + 1);
        snprintf(idc, sizeof idc, "z%d", i);
        struct cm_node_info n = {
            .cluster_id = 1, .disk_type = 1, .role = 1, .idc = idc, .rack = "r0", .host = host};
        cm_node_enc_add(&b, &n, 0, &caps);
        fuzz_apply(fsm, CM_MOD_NODE, CM_NODE_OP_ADD, t, &b);
    }
    for (int i = 0; i < 4; i++) {
        char host[40];
        snprintf(host, sizeof host, "http://127.0.0.%d:9100", i + 1);
        cm_service_enc_register(&b, i % 2 ? "proxy" : "scheduler", host, "z0", 1, 30 + i);
        fuzz_apply(fsm, CM_MOD_SERVICE, CM_SERVICE_OP_REGISTER, t, &b);
    }
    for (uint32_t id = 1; id <= 24; id++) {
        char idc[8], rack[8], host[40], path[32];
        uint32_t node = id > 18 ? 1 + id % 3 : 0;
        snprintf(idc, sizeof idc, "z%u", node ? node - 1 : id % 3);
        snprintf(rack, sizeof rack, "r%u", node ? 0 : id % 2);
        if (node)
            snprintf(host, sizeof host, "http://127.0.1.%u:8899", node);
        else
            snprintf(host, sizeof host, "http://127.0.0.%u:8000", 1 + id % 6);
        snprintf(path, sizeof path, "/data/%u", id);
        struct cm_disk_info d = {.disk_id = id,
                                 .cluster_id = 1,
                                 .idc = idc,
                                 .rack = rack,
                                 .host = host,
                                 .path = path,
                                 .create_time = "2024-01-01T00:00:00Z",
                                 .last_update_time = "2024-01-01T00:00:00Z",
                                 .status = 1,
                                 .used = 0,
                                 .free = 1LL << 40,
                                 .size = 1LL << 40};
        cm_disk_enc_add(&b, &d, &cfg->fsm);
        if (node)
            cm_disk_enc_add_node(&b, node, &caps);
        fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, t, &b);
    }
    cm_disk_enc_set_status(&b, 2, 2);
    fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_SET_STATUS, t, &b);
    cm_disk_enc_id(&b, 3);
    fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_DROP, t, &b);
    cm_disk_enc_access(&b, 4, true);
    fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_ACCESS, t, &b);
    struct cm_disk_hb hb[3] = {{5, 1 << 30, (1LL << 40) - (1 << 30), 1LL << 40, 7},
                               {6, 0, 1LL << 39, 1LL << 40, 0},
                               {7, 1LL << 40, 0, 1LL << 40, 65536}};
    cm_disk_enc_heartbeat(&b, hb, 3, &cfg->fsm);
    fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, t + 1000000000LL, &b);
    /* volumes of EC6P6 (12 units) on disks 1..12: vid 1 leased, vid 2 idle, vid 3 pending */
    for (uint32_t vid = 1; vid <= 3; vid++) {
        struct cm_vol_place u[12];
        uint32_t epochs[12];
        for (unsigned i = 0; i < 12; i++) {
            u[i] = (struct cm_vol_place){.disk_id = 1 + (i + vid) % 18, .epoch = 1};
            epochs[i] = 1;
        }
        cm_volume_enc_pending(&b, vid, 2, 16777216, u, 12);
        fuzz_apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_PENDING, t, &b);
        if (vid < 3) {
            cm_volume_enc_resolve(&b, vid, epochs, 12);
            fuzz_apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_COMMIT, t, &b);
        }
    }
    uint32_t leased = 1;
    cm_volume_enc_alloc(&b, 2, "10.0.0.1", t + 600000000000LL, 10485760, &leased, 1);
    fuzz_apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_ALLOC, t, &b);
    struct cm_chunk_rec rep = {
        .vuid = cm_vuid_make(2, 3, 1), .total = 16777216, .used = 4096, .free = 16777216 - 4096};
    cm_volume_enc_chunk_report(&b, &rep, 1);
    fuzz_apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_CHUNK_REPORT, t, &b);
    for (int i = 0; i < 6; i++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "key/%d", i);
        snprintf(val, sizeof val, "value %d", i);
        cm_kv_enc_set(&b, key, strlen(key), val, strlen(val));
        fuzz_apply(fsm, CM_MOD_KV, CM_KV_OP_SET, t, &b);
    }
    return fsm;
}

/* The snapshot stream of `fsm` (malloc'd). */
static inline char *fuzz_snapshot(struct cm_fsm *fsm, size_t *len)
{
    struct cm_buf b = {0};
    cm_fsm_snapshot(fsm, &b);
    return cm_buf_steal(&b, len);
}

/* What /stat derives from the disk indexes, as text (compared between states that must agree). */
static inline char *fuzz_space_stat(struct cm_fsm *fsm)
{
    struct json_object *o = cm_disk_space_stat(fsm, FUZZ_T0_NS + 5000000000LL);
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

/* Oracle: the disk and volume modules' indexes agree with their records. */
static inline void fuzz_selfcheck(struct cm_fsm *fsm, const char *when)
{
    char err[256];
    int rc = cm_disk_selfcheck(fsm, err, sizeof err);
    if (rc == 0)
        rc = cm_node_selfcheck(fsm, err, sizeof err);
    FUZZ_CHECK(rc == 0, "disk indexes inconsistent %s: %s", when, err);
    rc = cm_volume_selfcheck(fsm, err, sizeof err);
    FUZZ_CHECK(rc == 0, "volume indexes inconsistent %s: %s", when, err);
}

/* Oracle: restoring the snapshot of `fsm` gives a state with the same snapshot and the same
 * derived indexes (an index kept up to date by apply equals the one rebuilt on load). */
static inline void fuzz_check_roundtrip(struct cm_fsm *fsm)
{
    fuzz_selfcheck(fsm, "before the snapshot");
    size_t len;
    char *snap = fuzz_snapshot(fsm, &len);
    struct cm_fsm *copy = cm_fsm_new(&fuzz_config()->fsm, 1);
    char err[256];
    int rc = cm_fsm_restore(copy, snap, len, err, sizeof err);
    FUZZ_CHECK(rc == 0, "a snapshot the state machine wrote does not load: %s", err);
    size_t len2;
    char *snap2 = fuzz_snapshot(copy, &len2);
    FUZZ_CHECK(len == len2 && memcmp(snap, snap2, len) == 0,
               "snapshot -> restore -> snapshot changed the stream (%zu -> %zu bytes)", len, len2);
    char *s1 = fuzz_space_stat(fsm), *s2 = fuzz_space_stat(copy);
    FUZZ_CHECK(strcmp(s1, s2) == 0, "space_stat differs after restore:\n%s\n%s", s1, s2);
    fuzz_selfcheck(copy, "after a restore");
    free(s1);
    free(s2);
    free(snap);
    free(snap2);
    cm_fsm_free(copy);
}

#endif
