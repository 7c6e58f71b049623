/*
 * Raft behaviour with our state machine, through canonical raft's deterministic in-memory
 * fixture: replication of group-committed batches, snapshots sent to a lagging follower, leader
 * changes, a member added later. After each scenario every live server holds byte-identical state.
 */
#include "testutil.h"

#include <raft/fixture.h>

#include "../../src/fsm/fsm.h"
#include "../../src/fsm/mod_config.h"

#define N_MAX 5

static struct cm_config cfg;

struct fx {
    struct raft_fixture f;
    struct raft_fsm fsms[N_MAX];
    struct cm_fsm *cm[N_MAX];
    unsigned n;
    int apply_callbacks;
    uint64_t next_req;
};

/* A plain synchronous adapter (fsm version 1: raft owns snapshot buffers). */
static int fx_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    cm_fsm_apply_buf(f->data, buf->base, buf->len);
    *result = NULL;
    return 0;
}

static int fx_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cm_buf b = {0};
    cm_fsm_snapshot(f->data, &b);
    *bufs = raft_malloc(sizeof **bufs);
    (*bufs)[0].base = raft_malloc(b.len);
    memcpy((*bufs)[0].base, b.data, b.len);
    (*bufs)[0].len = b.len;
    *n_bufs = 1;
    cm_buf_free(&b);
    return 0;
}

static int fx_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    char err[256];
    if (cm_fsm_restore(f->data, buf->base, buf->len, err, sizeof err) != 0)
        return RAFT_CORRUPT;
    raft_free(buf->base);
    return 0;
}

static void add_server(struct fx *x)
{
    unsigned i = x->n++;
    x->cm[i] = cm_fsm_new(&cfg.fsm, i + 1);
    x->fsms[i] = (struct raft_fsm){.version = 1,
                                   .data = x->cm[i],
                                   .apply = fx_apply,
                                   .snapshot = fx_snapshot,
                                   .restore = fx_restore};
    assert_int_equal(raft_fixture_grow(&x->f, &x->fsms[i]), 0);
}

static int setup(void **state)
{
    struct fx *x = cm_calloc(1, sizeof *x);
    x->next_req = 1;
    assert_int_equal(raft_fixture_initialize(&x->f), 0);
    for (int i = 0; i < 3; i++)
        add_server(x);
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&x->f, 3, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&x->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&x->f), 0);
    raft_fixture_elect(&x->f, 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    raft_fixture_close(&x->f);
    for (unsigned i = 0; i < x->n; i++)
        cm_fsm_free(x->cm[i]);
    free(x);
    return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct fx *x = req->data;
    if (status == 0)
        x->apply_callbacks++;
    free(req);
}

/* Propose `count` config sets as one multi-buffer raft_apply on the current leader. Returns the
 * index of the last entry. */
static raft_index propose_batch(struct fx *x, int count, const char *prefix)
{
    unsigned li = raft_fixture_leader_index(&x->f);
    assert_true(li < x->n);
    struct raft *r = raft_fixture_get(&x->f, li);
    struct raft_buffer *bufs = cm_calloc((size_t)count, sizeof *bufs);
    for (int i = 0; i < count; i++) {
        char k[64], v[64];
        snprintf(k, sizeof k, "%s-%d", prefix, i);
        snprintf(v, sizeof v, "v%llu", (unsigned long long)x->next_req);
        struct cm_buf p = {0};
        cm_config_enc_set(&p, k, v);
        struct cm_cmd c = {.module = CM_MOD_CONFIG,
                           .op = CM_CONFIG_OP_SET,
                           .node_id = li + 1,
                           .req_id = x->next_req++,
                           .ts_ns = 1,
                           .payload = (uint8_t *)p.data,
                           .len = p.len};
        assert_int_equal(cm_cmd_encode(&c, &bufs[i]), 0);
        cm_buf_free(&p);
    }
    struct raft_apply *req = cm_malloc(sizeof *req);
    req->data = x;
    assert_int_equal(raft_apply(r, req, bufs, (unsigned)count, apply_cb), 0);
    raft_index last = req->index + (raft_index)count - 1;
    free(bufs);
    return last;
}

static void snapshot_of(struct cm_fsm *fsm, struct cm_buf *out)
{
    out->len = 0;
    cm_fsm_snapshot(fsm, out);
}

static void assert_all_equal(struct fx *x)
{
    struct cm_buf first = {0}, other = {0};
    bool have = false;
    for (unsigned i = 0; i < x->n; i++) {
        if (!raft_fixture_alive(&x->f, i))
            continue;
        if (!have) {
            snapshot_of(x->cm[i], &first);
            have = true;
            continue;
        }
        snapshot_of(x->cm[i], &other);
        if (other.len != first.len || memcmp(other.data, first.data, first.len) != 0)
            fail_msg("server %u's state differs from the first live server's", i);
    }
    cm_buf_free(&first);
    cm_buf_free(&other);
}

static void test_group_commit_batches_replicate(void **state)
{
    struct fx *x = *state;
    raft_index last = 0;
    for (int b = 0; b < 5; b++)
        last = propose_batch(x, 10, "batch");
    assert_true(raft_fixture_step_until_applied(&x->f, x->n, last, 5000));
    /* raft 0.15 calls back once per multi-buffer apply, for its first entry only: completion
     * must come from the FSM (by request id), which is why the node never relies on it */
    assert_int_equal(x->apply_callbacks, 5);
    for (unsigned i = 0; i < x->n; i++) {
        assert_string_equal(cm_config_get(x->cm[i], "batch-9"), "v50");
        assert_int_equal(x->cm[i]->n_applied, 50);
    }
    /* every command entry in the leader's log has a length that is a multiple of 8 */
    struct raft *r = raft_fixture_get(&x->f, raft_fixture_leader_index(&x->f));
    for (raft_index idx = 2; idx <= last; idx++) {
        const struct raft_entry *e = NULL;
        size_t pos = (r->log.front + (size_t)(idx - r->log.offset - 1)) % r->log.size;
        e = &r->log.entries[pos];
        if (e->type == RAFT_COMMAND)
            assert_int_equal(e->buf.len % 8, 0);
    }
    assert_all_equal(x);
}

static void test_snapshot_catches_up_lagging_follower(void **state)
{
    struct fx *x = *state;
    for (unsigned i = 0; i < x->n; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&x->f, i), 16);
        raft_set_snapshot_trailing(raft_fixture_get(&x->f, i), 4);
    }
    /* cut server 2 off, write enough to snapshot and truncate the log past it */
    raft_fixture_saturate(&x->f, 0, 2);
    raft_fixture_saturate(&x->f, 2, 0);
    raft_fixture_saturate(&x->f, 1, 2);
    raft_fixture_saturate(&x->f, 2, 1);
    raft_index last = 0;
    for (int b = 0; b < 10; b++)
        last = propose_batch(x, 8, "lag");
    assert_true(raft_fixture_step_until_applied(&x->f, 0, last, 5000));
    assert_true(raft_fixture_step_until_applied(&x->f, 1, last, 5000));
    struct raft *leader = raft_fixture_get(&x->f, 0);
    assert_true(leader->log.snapshot.last_index > 0);
    assert_int_equal(x->cm[2]->n_applied, 0);
    raft_fixture_desaturate(&x->f, 0, 2);
    raft_fixture_desaturate(&x->f, 2, 0);
    raft_fixture_desaturate(&x->f, 1, 2);
    raft_fixture_desaturate(&x->f, 2, 1);
    assert_true(raft_fixture_step_until_applied(&x->f, 2, last, 10000));
    /* it got there through a snapshot, not by replaying every entry */
    assert_true(x->cm[2]->n_applied < 80);
    assert_string_equal(cm_config_get(x->cm[2], "lag-7"), cm_config_get(x->cm[0], "lag-7"));
    assert_all_equal(x);
}

static void test_leader_change_keeps_state(void **state)
{
    struct fx *x = *state;
    raft_index last = propose_batch(x, 20, "before");
    assert_true(raft_fixture_step_until_applied(&x->f, x->n, last, 5000));
    raft_fixture_depose(&x->f);
    assert_true(raft_fixture_step_until_has_leader(&x->f, 10000));
    last = propose_batch(x, 20, "after");
    assert_true(raft_fixture_step_until_applied(&x->f, x->n, last, 5000));
    for (unsigned i = 0; i < x->n; i++) {
        assert_non_null(cm_config_get(x->cm[i], "before-19"));
        assert_non_null(cm_config_get(x->cm[i], "after-19"));
    }
    assert_all_equal(x);
}

static void change_cb(struct raft_change *req, int status)
{
    *(int *)req->data = status == 0 ? 1 : -1;
}

static bool change_done(struct raft_fixture *f, void *arg)
{
    (void)f;
    return *(int *)arg != 0;
}

static void test_new_member_catches_up(void **state)
{
    struct fx *x = *state;
    raft_index last = propose_batch(x, 30, "early");
    assert_true(raft_fixture_step_until_applied(&x->f, x->n, last, 5000));
    add_server(x);
    assert_int_equal(raft_start(raft_fixture_get(&x->f, 3)), 0);
    struct raft *r = raft_fixture_get(&x->f, 0);
    int done = 0;
    struct raft_change req = {.data = &done};
    assert_int_equal(raft_add(r, &req, 4, "4", change_cb), 0);
    assert_true(raft_fixture_step_until(&x->f, change_done, &done, 5000));
    assert_int_equal(done, 1);
    done = 0;
    assert_int_equal(raft_assign(r, &req, 4, RAFT_STANDBY, change_cb), 0);
    assert_true(raft_fixture_step_until(&x->f, change_done, &done, 5000));
    assert_int_equal(done, 1);
    last = propose_batch(x, 5, "late");
    assert_true(raft_fixture_step_until_applied(&x->f, x->n, last, 10000));
    assert_string_equal(cm_config_get(x->cm[3], "early-29"), cm_config_get(x->cm[0], "early-29"));
    assert_all_equal(x);
}

int main(void)
{
    cmt_quiet();
    cmt_load_config(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_batches_replicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_catches_up_lagging_follower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_change_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_member_catches_up, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cm_config_free(&cfg);
    return rc;
}
