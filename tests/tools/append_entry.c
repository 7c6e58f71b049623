/*
 * append_entry: append one command entry to the raft log of a stopped node's data directory,
 * through canonical raft's own I/O layer, as a node of a later release would have written it
 * (tests/cluster/test_upgrade.py: a node meets a command of a format it does not apply).
 *
 *   append_entry <data dir> <node id> <raft address> <format version> <module> <op> <payload hex>
 *
 * The command header is the one of docs/formats.md (magic 0xC7, format version, module, op,
 * payload length, proposer id, request id, proposer time), padded to a multiple of 8 bytes. The
 * entry gets the directory's current term; a leader of that cluster commits it after a restart.
 */
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

struct done {
    bool done;
    int status;
};

static void append_cb(struct raft_io_append *req, int status)
{
    struct done *d = req->data;
    d->done = true;
    d->status = status;
}

static void closed_cb(struct raft_io *io)
{
    *(bool *)io->data = true;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: append_entry <dir> <node id> <raft address> <format version> "
                        "<module> <op> <payload hex>\n");
        return 2;
    }
    const char *hex = argv[7];
    size_t plen = strlen(hex) / 2;
    size_t total = 32 + plen, padded = (total + 7) & ~(size_t)7;
    uint8_t *cmd = raft_calloc(1, padded);
    cmd[0] = 0xC7;
    cmd[1] = (uint8_t)atoi(argv[4]);
    cmd[2] = (uint8_t)atoi(argv[5]);
    cmd[3] = (uint8_t)atoi(argv[6]);
    put_be(cmd + 4, plen, 4);
    put_be(cmd + 8, strtoull(argv[2], NULL, 10), 8);
    put_be(cmd + 16, 0x5EED000000000001ULL, 8);
    put_be(cmd + 24, (uint64_t)time(NULL) * 1000000000ULL, 8);
    for (size_t i = 0; i < plen; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            fprintf(stderr, "append_entry: bad payload hex\n");
            return 2;
        }
        cmd[32 + i] = (uint8_t)v;
    }

    uv_loop_t loop;
    struct raft_uv_transport transport = {0};
    struct raft_io io = {0};
    bool closed = false;
    int rc = 1, rv;
    uv_loop_init(&loop);
    if ((rv = raft_uv_tcp_init(&transport, &loop)) != 0 ||
        (rv = raft_uv_init(&io, &loop, argv[1], &transport)) != 0) {
        fprintf(stderr, "append_entry: raft storage in %s: %s\n", argv[1], raft_strerror(rv));
        return 1;
    }
    io.data = &closed;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap = NULL;
    raft_index start;
    struct raft_entry *entries = NULL;
    size_t n = 0;
    if ((rv = io.init(&io, strtoull(argv[2], NULL, 10), argv[3])) != 0 ||
        (rv = io.load(&io, &term, &vote, &snap, &start, &entries, &n)) != 0) {
        fprintf(stderr, "append_entry: loading %s: %s\n", argv[1], io.errmsg);
        goto out;
    }
    struct raft_entry e = {.term = term, .type = RAFT_COMMAND};
    e.buf.base = cmd;
    e.buf.len = padded;
    struct done d = {0};
    struct raft_io_append req = {.data = &d};
    if ((rv = io.append(&io, &req, &e, 1, append_cb)) != 0) {
        fprintf(stderr, "append_entry: append: %s\n", io.errmsg);
        goto out;
    }
    while (!d.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    if (!d.done || d.status != 0) {
        fprintf(stderr, "append_entry: append failed: %s\n", raft_strerror(d.status));
        goto out;
    }
    printf("appended a format-%s entry at index %llu, term %llu\n", argv[4],
           (unsigned long long)(start + n), (unsigned long long)term);
    rc = 0;
out:
    /* loaded entries point into one batch per segment, or own their buffer */
    for (size_t i = 0; i < n; i++) {
        if (entries[i].batch == NULL)
            raft_free(entries[i].buf.base);
        else if (i == 0 || entries[i].batch != entries[i - 1].batch)
            raft_free(entries[i].batch);
    }
    raft_free(entries);
    if (snap) {
        raft_configuration_close(&snap->configuration);
        for (unsigned i = 0; i < snap->n_bufs; i++)
            raft_free(snap->bufs[i].base);
        raft_free(snap->bufs);
        raft_free(snap);
    }
    io.close(&io, closed_cb);
    while (!closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    raft_free(cmd);
    return rc;
}
