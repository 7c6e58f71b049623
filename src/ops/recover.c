/*
 * Forced recovery after a loss of quorum (`clustermgr -f node.conf --force-new-cluster`).
 *
 * When a majority of the voters is gone for good, the survivors cannot elect a leader and
 * nothing can be changed through raft any more. raft_recover() appends a configuration entry
 * straight to this node's log on disk; when the node next starts, that configuration (by default
 * this node alone) is the one in force, so it elects itself and serves everything it had
 * applied and logged. New members are then added the usual way (/member/add).
 *
 * This runs offline, on a stopped node, before the node's loop exists: it opens the data
 * directory with raft's own storage, appends the entry, and closes it again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "../server/config.h"
#include "../util/json.h"
#include "../util/net.h"
#include "ops.h"

#define MAX_PEERS 16

static int no_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    (void)f, (void)buf;
    *result = NULL;
    return 0;
}

static void io_closed(struct raft *r)
{
    (void)r;
}

/* "id=ip:port,id=ip:port" -> configuration. */
static int parse_peers(const char *s, struct raft_configuration *conf, uint64_t self, char *err,
                       size_t errlen)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    bool has_self = false;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        unsigned long long id = eq ? strtoull(tok, &end, 10) : 0;
        if (eq == NULL || end != eq || id == 0 || eq[1] == '\0' || strchr(eq + 1, ':') == NULL) {
            snprintf(err, errlen, "--peers: \"%s\" is not of the form id=ip:port", tok);
            return -1;
        }
        int rc = raft_configuration_add(conf, id, eq + 1, RAFT_VOTER);
        if (rc != 0) {
            snprintf(err, errlen, "--peers: cannot add %s: %s", tok, raft_strerror(rc));
            return -1;
        }
        has_self |= id == self;
    }
    if (!has_self) {
        snprintf(err, errlen, "--peers must include this node (id %llu)", (unsigned long long)self);
        return -1;
    }
    return 0;
}

/* The data directory must be this node's and hold raft state. */
static int check_dir(const struct cm_config *cfg, char *err, size_t errlen)
{
    char path[CM_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/node.json", cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen,
                 "%s: %s; --force-new-cluster needs the data directory of a node "
                 "that was a member",
                 path, strerror(errno));
        return -1;
    }
    char text[512];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char perr[128];
    uint64_t id = 0, cluster = 0;
    struct json_object *o = cm_json_parse(text, len, false, perr, sizeof perr);
    int bad = o == NULL ||
              cm_json_get_u64(o, "node_id", true, UINT64_MAX, &id, perr, sizeof perr) != 0 ||
              cm_json_get_u64(o, "cluster_id", true, UINT32_MAX, &cluster, perr, sizeof perr) != 0;
    json_object_put(o);
    if (bad || id != cfg->node_id || cluster != cfg->cluster_id) {
        snprintf(err, errlen, "%s does not belong to node %llu of cluster %u", path,
                 (unsigned long long)cfg->node_id, cfg->cluster_id);
        return -1;
    }
    struct stat st;
    char m1[CM_PATH_MAX + 16], m2[CM_PATH_MAX + 16];
    snprintf(m1, sizeof m1, "%s/metadata1", cfg->data_dir);
    snprintf(m2, sizeof m2, "%s/metadata2", cfg->data_dir);
    if (stat(m1, &st) != 0 && stat(m2, &st) != 0) {
        snprintf(err, errlen, "%s holds no raft state: nothing to recover", cfg->data_dir);
        return -1;
    }
    return 0;
}

/* A running node holds its raft port. */
static int check_stopped(const struct cm_config *cfg, char *err, size_t errlen)
{
    int rc = cm_port_probe(cfg->raft_listen_ip, cfg->raft_port);
    if (rc != 0) {
        snprintf(err, errlen,
                 "the raft port %u is in use: stop the node before forcing a new "
                 "configuration",
                 cfg->raft_port);
        return -1;
    }
    return 0;
}

int cm_recover(const struct cm_config *cfg, const char *peers, char *err, size_t errlen)
{
    if (check_dir(cfg, err, errlen) != 0 || check_stopped(cfg, err, errlen) != 0)
        return -1;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rc;
    if (peers && peers[0]) {
        if (parse_peers(peers, &conf, cfg->node_id, err, errlen) != 0) {
            raft_configuration_close(&conf);
            return -1;
        }
    } else if ((rc = raft_configuration_add(&conf, cfg->node_id, cfg->raft_addr, RAFT_VOTER)) !=
               0) {
        snprintf(err, errlen, "configuration: %s", raft_strerror(rc));
        raft_configuration_close(&conf);
        return -1;
    }

    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft r;
    struct raft_fsm fsm = {.version = 1, .apply = no_apply};
    int ret = -1;
    uv_loop_init(&loop);
    if ((rc = raft_uv_tcp_init(&transport, &loop)) != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rc));
        goto out_loop;
    }
    if ((rc = raft_uv_init(&io, &loop, cfg->data_dir, &transport)) != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", cfg->data_dir, io.errmsg);
        goto out_transport;
    }
    if ((rc = raft_init(&r, &io, &fsm, cfg->node_id, cfg->raft_addr)) != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&r));
        raft_uv_close(&io);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto out_transport;
    }
    rc = raft_recover(&r, &conf);
    if (rc != 0)
        snprintf(err, errlen, "forcing the configuration in %s failed: %s", cfg->data_dir,
                 raft_errmsg(&r)[0] ? raft_errmsg(&r) : raft_strerror(rc));
    else {
        ret = 0;
        printf("node %llu: forced a new raft configuration in %s with %u voter(s):",
               (unsigned long long)cfg->node_id, cfg->data_dir, conf.n);
        for (unsigned i = 0; i < conf.n; i++)
            printf(" %llu=%s", (unsigned long long)conf.servers[i].id, conf.servers[i].address);
        printf("\nstart the node normally; it serves everything it had, and new members join "
               "with /member/add\n");
    }
    raft_close(&r, io_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    raft_uv_close(&io);
    uv_run(&loop, UV_RUN_DEFAULT);
out_transport:
    raft_uv_tcp_close(&transport);
    uv_run(&loop, UV_RUN_DEFAULT);
out_loop:
    uv_loop_close(&loop);
    raft_configuration_close(&conf);
    return ret;
}
