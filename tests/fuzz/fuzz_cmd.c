/*
 * Fuzz target: the command codec and every module's apply.
 *
 * The input is a series of records, each
 *   u8 module, u8 op, u8 seconds after T0 (the proposer time), u16 payload length (big-endian),
 *   payload
 * applied as a command to a state machine that already holds something in every module. When
 * the module byte has its 0x80 bit set, the payload is a whole log entry, header included, handed
 * to the decoder as is. A record shorter than announced takes what is left.
 *
 * Oracles besides the sanitizers: two state machines given the same commands end with the same
 * snapshot (apply is deterministic), and restoring the final snapshot gives the same snapshot
 * and the same derived disk statistics (indexes kept by apply equal those rebuilt on load).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_fsm *a = fuzz_fsm(), *b = fuzz_fsm();
    size_t pos = 0;
    while (pos + 5 <= size) {
        uint8_t module = data[pos], op = data[pos + 1], dt = data[pos + 2];
        size_t len = ((size_t)data[pos + 3] << 8) | data[pos + 4];
        pos += 5;
        if (len > size - pos)
            len = size - pos;
        const uint8_t *p = data + pos;
        pos += len;
        if (module & 0x80) {
            cm_fsm_apply_buf(a, p, len);
            cm_fsm_apply_buf(b, p, len);
            continue;
        }
        int64_t ts = FUZZ_T0_NS + (int64_t)dt * 1000000000LL;
        struct cm_buf pa = {0}, pb = {0};
        cm_buf_append(&pa, p, len);
        cm_buf_append(&pb, p, len);
        fuzz_apply(a, module, op, ts, &pa);
        fuzz_apply(b, module, op, ts, &pb);
    }
    size_t la, lb;
    char *sa = fuzz_snapshot(a, &la), *sb = fuzz_snapshot(b, &lb);
    FUZZ_CHECK(la == lb && memcmp(sa, sb, la) == 0, "the same commands gave different states");
    free(sa);
    free(sb);
    fuzz_check_roundtrip(a);
    cm_fsm_free(a);
    cm_fsm_free(b);
    return 0;
}
