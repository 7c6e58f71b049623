/*
 * Fuzz target: snapshot restore (the stream of docs/formats.md, as raft installs it and as
 * `cmctl snapshot restore` loads it).
 *
 * The raw input goes through the stream check first; then its last four bytes are replaced by
 * the right CRC, so that the fuzzer spends its time in the section decoders rather than on the
 * checksum, and it is restored into a state machine that already holds state.
 *
 * Oracles besides the sanitizers: a refused stream leaves the state exactly as it was; a loaded
 * one survives snapshot -> restore -> snapshot unchanged with the same derived disk statistics,
 * also after a few commands that go through the indexes rebuilt on load.
 */
#include <zlib.h>

#include "../../src/util/codec.h"
#include "fuzz.h"

static void poke(struct cm_fsm *fsm)
{
    const struct cm_config *cfg = fuzz_config();
    struct cm_buf b = {0};
    int64_t t = FUZZ_T0_NS + 2000000000LL;
    struct cm_disk_hb hb[4] = {{1, 10, 1LL << 39, 1LL << 40, 1},
                               {8, 0, 1LL << 40, 1LL << 40, 0},
                               {17, 5, 100, 1LL << 40, 3},
                               {40, 1, 1, 1, 1}};
    cm_disk_enc_heartbeat(&b, hb, 4, &cfg->fsm);
    fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_HEARTBEAT, t, &b);
    for (uint32_t id = 1; id <= 20; id += 3) {
        cm_disk_enc_set_status(&b, id, (uint8_t)(2 + id % 4));
        fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_SET_STATUS, t, &b);
        cm_disk_enc_id(&b, id + 1);
        fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_DROP, t, &b);
        cm_disk_enc_admin_update(&b, id + 2, 1, 100, 50);
        fuzz_apply(fsm, CM_MOD_DISK, CM_DISK_OP_ADMIN_UPDATE, t, &b);
    }
    cm_scope_reserve(fsm, "diskid", 1, &b);
    fuzz_apply(fsm, CM_MOD_SCOPE, CM_SCOPE_OP_ALLOC, t, &b);
    cm_kv_enc_set(&b, "key/3", 5, "x", 1);
    fuzz_apply(fsm, CM_MOD_KV, CM_KV_OP_SET, t, &b);
    cm_kv_enc_delete(&b, "key/1", 5);
    fuzz_apply(fsm, CM_MOD_KV, CM_KV_OP_DELETE, t, &b);
    cm_service_enc_key(&b, "proxy", "http://127.0.0.2:9100");
    fuzz_apply(fsm, CM_MOD_SERVICE, CM_SERVICE_OP_HEARTBEAT, t, &b);
    cm_config_enc_delete(&b, "k");
    fuzz_apply(fsm, CM_MOD_CONFIG, CM_CONFIG_OP_DELETE, t, &b);
    cm_members_enc_del(&b, 2);
    fuzz_apply(fsm, CM_MOD_MEMBERS, CM_MEMBERS_OP_DEL, t, &b);
}

/* FUZZ_WRITE_STATE=<file>: write the snapshot of the initial state (every module, volumes
 * included) to <file> and exit: how corpus/snapshot/state-* was made. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *path = getenv("FUZZ_WRITE_STATE");
    if (path == NULL)
        return 0;
    struct cm_fsm *fsm = fuzz_fsm();
    size_t len;
    char *snap = fuzz_snapshot(fsm, &len);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(snap, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
    free(snap);
    cm_fsm_free(fsm);
    exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint32_t crc;
    (void)cm_fsm_snap_check(data, size, &crc, err, sizeof err);
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    if (size >= 4)
        cm_wbe32(buf + size - 4, (uint32_t)crc32(0L, buf, (uInt)(size - 4)));
    struct cm_fsm *fsm = fuzz_fsm();
    size_t l0;
    char *s0 = fuzz_snapshot(fsm, &l0);
    int rc = cm_fsm_restore(fsm, buf, size, err, sizeof err);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "restore: %s\n", rc ? err : "ok");
    if (rc != 0) {
        size_t l1;
        char *s1 = fuzz_snapshot(fsm, &l1);
        FUZZ_CHECK(l0 == l1 && memcmp(s0, s1, l0) == 0, "a refused snapshot changed the state (%s)",
                   err);
        free(s1);
    } else {
        fuzz_selfcheck(fsm, "after loading the input");
        fuzz_check_roundtrip(fsm);
        poke(fsm);
        fuzz_check_roundtrip(fsm);
    }
    free(s0);
    free(buf);
    cm_fsm_free(fsm);
    return 0;
}
