/*
 * volgen: build a large volume state with the real state machine, in process, and write it as a
 * snapshot stream (docs/formats.md) that `cmctl snapshot restore` turns into data directories.
 *
 * Creating a million volumes through blobnodes is impractical, so volgen applies the very
 * commands a leader would propose -- scope, disk adds, then per volume PENDING and COMMIT, some
 * leases (ALLOC) and chunk reports -- through cm_fsm_apply_buf, the function raft calls. It also
 * measures what a node pays for that state: the memory it takes, the time snap_take holds the
 * loop, the time to encode the stream, and the time to load it back.
 *
 * usage: volgen --out FILE [--volumes N] [--mode EC6P6] [--idc z0,z1,z2] [--hosts H]
 *               [--disks D] [--active PERCENT] [--reported PERCENT] [--lease-s S]
 *               [--chunk-size B] [--verify]
 * Disks are H hosts per IDC with D disks each; every volume's units of one availability zone are
 * on distinct hosts of that zone's IDC. Prints one JSON line of figures.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/fsm/codemode.h"
#include "../src/fsm/fsm.h"
#include "../src/fsm/mod_disk.h"
#include "../src/fsm/mod_scope.h"
#include "../src/fsm/mod_volume.h"
#include "../src/server/config.h"
#include "../src/util/log.h"
#include "../src/util/timeutil.h"

static uint64_t req_id;

static void apply(struct cm_fsm *fsm, uint8_t module, uint8_t op, struct cm_buf *b, int64_t ts)
{
    struct cm_cmd c = {.module = module,
                       .op = op,
                       .node_id = 1,
                       .req_id = ++req_id,
                       .ts_ns = ts,
                       .payload = (const uint8_t *)b->data,
                       .len = b->len};
    uint64_t rejected = fsm->n_rejected;
    if (cm_fsm_apply_cmd(fsm, &c) != 0) {
        fprintf(stderr, "volgen: cannot encode a command\n");
        exit(1);
    }
    cm_buf_free(b);
    if (fsm->n_rejected != rejected) {
        fprintf(stderr, "volgen: a command was rejected (module %u op %u)\n", module, op);
        exit(1);
    }
}

static int last_code;
static void on_applied(void *arg, const struct cm_cmd *cmd, struct cm_result *res)
{
    (void)arg, (void)cmd;
    last_code = res->code;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double secs_since(uint64_t t0_us)
{
    return (double)(cm_mono_us() - t0_us) / 1e6;
}

static uint64_t rnd(uint64_t *s)
{
    return cm_disk_rand(s);
}

int main(int argc, char **argv)
{
    const char *out = NULL, *mode_name = "EC6P6", *idcs = "z0,z1,z2";
    uint64_t volumes = 1000000, hosts = 100, disks = 12, lease_s = 86400;
    uint64_t chunk = 16777216;
    double active = 5, reported = 10;
    bool verify = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verify") == 0) {
            verify = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "volgen: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--volumes") == 0)
            volumes = strtoull(v, NULL, 10);
        else if (strcmp(a, "--mode") == 0)
            mode_name = v;
        else if (strcmp(a, "--idc") == 0)
            idcs = v;
        else if (strcmp(a, "--hosts") == 0)
            hosts = strtoull(v, NULL, 10);
        else if (strcmp(a, "--disks") == 0)
            disks = strtoull(v, NULL, 10);
        else if (strcmp(a, "--active") == 0)
            active = strtod(v, NULL);
        else if (strcmp(a, "--reported") == 0)
            reported = strtod(v, NULL);
        else if (strcmp(a, "--lease-s") == 0)
            lease_s = strtoull(v, NULL, 10);
        else if (strcmp(a, "--chunk-size") == 0)
            chunk = strtoull(v, NULL, 10);
        else {
            fprintf(stderr,
                    "volgen: unknown option %s (see the comment at the top of "
                    "bench/volgen.c)\n",
                    a);
            return 2;
        }
    }
    const struct cm_codemode *cm = cm_codemode_by_name(mode_name);
    if (out == NULL || cm == NULL || volumes == 0 || hosts == 0 || disks == 0) {
        fprintf(stderr, "usage: volgen --out FILE [--volumes N] [--mode EC6P6] [--idc LIST] "
                        "[--hosts H] [--disks D] [--active %%] [--reported %%] [--lease-s S] "
                        "[--verify]\n");
        return 2;
    }
    cm_log_set_level(CM_LOG_ERROR);

    /* the config of the cluster the state is meant for */
    char idc_json[512] = "", *save, *list = strdup(idcs);
    const char *names[16];
    int n_idc = 0;
    for (char *t = strtok_r(list, ",", &save); t && n_idc < 16; t = strtok_r(NULL, ",", &save)) {
        names[n_idc++] = t;
        snprintf(idc_json + strlen(idc_json), sizeof idc_json - strlen(idc_json), "%s\"%s\"",
                 n_idc > 1 ? "," : "", t);
    }
    if (n_idc != cm->az_count) {
        fprintf(stderr, "volgen: %s needs %d IDCs, %d given\n", cm->name, cm->az_count, n_idc);
        return 2;
    }
    char text[4096];
    snprintf(text, sizeof text,
             "{\"bind_addr\":\"127.0.0.1:9998\",\"cluster_id\":1,\"idc\":[%s],"
             "\"chunk_size\":%" PRIu64 ",\"code_mode_policies\":[{\"mode_name\":\"%s\","
             "\"min_size\":0,\"max_size\":1024,\"size_ratio\":0.2,\"enable\":true}],"
             "\"cluster_config\":{},\"disk_mgr_config\":{\"heartbeat_expire_interval_s\":%" PRIu64
             "},\"raft_config\":{\"server_config\":{\"nodeId\":1,\"listen_port\":10110,"
             "\"raft_wal_dir\":\"/nonexistent\",\"peers\":{\"1\":\"127.0.0.1:10110\"}}}}",
             idc_json, chunk, cm->name, lease_s);
    struct cm_config cfg;
    char err[512];
    if (cm_config_parse(text, strlen(text), "volgen", &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "volgen: config: %s\n", err);
        return 2;
    }

    long rss0 = rss_kib();
    uint64_t t0 = cm_mono_us();
    int64_t ts = cm_now_ns();
    struct cm_fsm *fsm = cm_fsm_new(&cfg.fsm, 1);
    fsm->on_applied = on_applied;
    uint64_t n_disks = (uint64_t)n_idc * hosts * disks;
    struct cm_buf b = {0};
    cm_scope_reserve(fsm, "diskid", n_disks, &b);
    apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, &b, ts);
    char host[64], path[32];
    for (uint64_t id = 1; id <= n_disks; id++) {
        uint64_t k = id - 1, idc = k / (hosts * disks), h = k / disks % hosts, d = k % disks;
        snprintf(host, sizeof host, "http://10.%" PRIu64 ".%" PRIu64 ".%" PRIu64 ":8899", idc,
                 h / 250, h % 250);
        snprintf(path, sizeof path, "/data/%" PRIu64, d);
        char rack[16];
        snprintf(rack, sizeof rack, "rack%" PRIu64, h % 10);
        struct cm_disk_info di = {.disk_id = (uint32_t)id,
                                  .cluster_id = 1,
                                  .idc = names[idc],
                                  .rack = rack,
                                  .host = host,
                                  .path = path,
                                  .create_time = "2026-01-01T00:00:00Z",
                                  .last_update_time = "2026-01-01T00:00:00Z",
                                  .status = CM_DISK_NORMAL,
                                  .size = 16LL << 40,
                                  .free = 12LL << 40,
                                  .used = 4LL << 40};
        cm_disk_enc_add(&b, &di, &cfg.fsm);
        apply(fsm, CM_MOD_DISK, CM_DISK_OP_ADD, &b, ts);
    }
    long rss_disks = rss_kib();
    double t_disks = secs_since(t0);

    /* volumes: per zone, units on distinct hosts of that zone's IDC */
    uint64_t t1 = cm_mono_us();
    unsigned units = (unsigned)cm_codemode_units(cm);
    struct cm_vol_place place[CM_VOL_UNITS_MAX];
    uint32_t epochs[CM_VOL_UNITS_MAX];
    uint64_t rng = 0x5eed;
    for (uint64_t vid = 1; vid <= volumes; vid++) {
        for (int az = 0; az < cm->az_count; az++) {
            int idx[CM_VOL_UNITS_MAX];
            int cnt = cm_codemode_az_units(cm, az, idx);
            uint64_t step = hosts / (uint64_t)cnt ? hosts / (uint64_t)cnt : 1;
            for (int j = 0; j < cnt; j++) {
                uint64_t h = (vid * 7 + (uint64_t)j * step) % hosts;
                uint64_t d = (vid / 3 + (uint64_t)j) % disks;
                uint32_t id = (uint32_t)(1 + (uint64_t)az * hosts * disks + h * disks + d);
                place[idx[j]] = (struct cm_vol_place){id, 1};
            }
        }
        cm_volume_enc_pending(&b, (uint32_t)vid, cm->id, chunk, place, units);
        apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_PENDING, &b, ts);
        if (last_code) {
            fprintf(stderr, "volgen: volume %" PRIu64 " refused (%d)\n", vid, last_code);
            return 1;
        }
        for (unsigned i = 0; i < units; i++)
            epochs[i] = 1;
        cm_volume_enc_resolve(&b, (uint32_t)vid, epochs, units);
        apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_COMMIT, &b, ts);
    }
    double t_volumes = secs_since(t1);

    /* some leases and chunk reports, so that sizes and tokens are not all alike */
    uint64_t n_active = (uint64_t)((double)volumes * active / 100);
    uint32_t *vids = malloc(1000 * sizeof *vids);
    for (uint64_t v = 1; v <= n_active;) {
        size_t n = 0;
        for (; n < 1000 && v <= n_active; v++)
            vids[n++] = (uint32_t)(1 + (v - 1) * volumes / n_active);
        cm_volume_enc_alloc(&b, cm->id, "10.200.0.1", ts + 600 * 1000000000LL, 10485760, vids, n);
        apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_ALLOC, &b, ts);
    }
    free(vids);
    uint64_t n_rep = (uint64_t)((double)volumes * reported / 100);
    struct cm_chunk_rec *recs = malloc(1000 * sizeof *recs);
    for (uint64_t v = 1; v <= n_rep;) {
        size_t n = 0;
        for (; n + units <= 1000 && v <= n_rep; v++) {
            uint32_t vid = (uint32_t)(1 + rnd(&rng) % volumes);
            for (unsigned i = 0; i < units; i++) {
                uint64_t used = rnd(&rng) % chunk;
                recs[n++] =
                    (struct cm_chunk_rec){cm_vuid_make(vid, i, 1), chunk, used, chunk - used};
            }
        }
        cm_volume_enc_chunk_report(&b, recs, n);
        apply(fsm, CM_MOD_VOLUME, CM_VOL_OP_CHUNK_REPORT, &b, ts);
    }
    free(recs);
    double t_build = secs_since(t0);
    malloc_trim(0);
    long rss_built = rss_kib();

    /* snapshot: take (on the loop in a node), encode (on a worker), write */
    uint64_t t2 = cm_mono_us();
    struct cm_snap_taken *t = cm_fsm_snap_take(fsm);
    double t_take = secs_since(t2);
    uint64_t t3 = cm_mono_us();
    struct cm_buf snap = {0};
    cm_fsm_snap_write(t, &snap);
    double t_write = secs_since(t3);
    FILE *f = fopen(out, "wb");
    if (f == NULL || fwrite(snap.data, 1, snap.len, f) != snap.len || fclose(f) != 0) {
        fprintf(stderr, "volgen: cannot write %s\n", out);
        return 1;
    }

    /* load it back, as a node does at start or when a snapshot arrives */
    double t_load = 0;
    long rss_loaded = 0;
    if (verify) {
        cm_fsm_free(fsm);
        fsm = NULL;
        malloc_trim(0);
        long rss_before = rss_kib();
        struct cm_fsm *g = cm_fsm_new(&cfg.fsm, 2);
        uint64_t t4 = cm_mono_us();
        if (cm_fsm_restore(g, snap.data, snap.len, err, sizeof err) != 0) {
            fprintf(stderr, "volgen: the stream does not load: %s\n", err);
            return 1;
        }
        t_load = secs_since(t4);
        malloc_trim(0);
        rss_loaded = rss_kib() - rss_before;
        struct cm_buf again = {0};
        cm_fsm_snapshot(g, &again);
        if (again.len != snap.len || memcmp(again.data, snap.data, snap.len) != 0) {
            fprintf(stderr, "volgen: the loaded state does not write the same stream\n");
            return 1;
        }
        cm_buf_free(&again);
        cm_fsm_free(g);
    }
    struct cm_volume_counts c = {0};
    printf("{\"volumes\":%" PRIu64 ",\"code_mode\":\"%s\",\"units\":%" PRIu64 ",\"disks\":%" PRIu64
           ",\"active\":%" PRIu64 ",\"build_s\":%.2f,\"disks_s\":%.2f,"
           "\"volumes_s\":%.2f,\"volumes_per_s\":%.0f,\"rss_mib\":%.1f,"
           "\"rss_volumes_mib\":%.1f,\"bytes_per_unit\":%.1f,\"snap_take_ms\":%.3f,"
           "\"snap_write_s\":%.2f,\"snapshot_bytes\":%zu,\"snapshot_bytes_per_volume\":%.1f,"
           "\"load_s\":%.2f,\"rss_loaded_mib\":%.1f}\n",
           volumes, cm->name, volumes * units, n_disks, n_active, t_build, t_disks, t_volumes,
           (double)volumes / t_volumes, (double)rss_built / 1024,
           (double)(rss_built - rss_disks) / 1024,
           (double)(rss_built - rss_disks) * 1024 / (double)(volumes * units), t_take * 1000,
           t_write, snap.len, (double)snap.len / (double)volumes, t_load,
           (double)rss_loaded / 1024);
    (void)c;
    (void)rss0;
    cm_buf_free(&snap);
    cm_fsm_free(fsm);
    cm_config_free(&cfg);
    free(list);
    return 0;
}
