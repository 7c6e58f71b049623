/*
 * clustermgr: the cluster manager of an erasure-coded blob store, replicated with raft.
 *
 *   clustermgr -f <config.json>     run a node
 *   clustermgr -f <config.json> --check   validate the config file and exit
 *   clustermgr -f <config.json> --force-new-cluster [--peers id=ip:port,...]
 *                                    recover a stopped node after a loss of quorum, and exit
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dispatch/dispatch.h"
#include "../http/server.h"
#include "../jobs/jobs.h"
#include "../ops/ops.h"
#include "../raft/node.h"
#include "../util/log.h"
#include "config.h"

#ifndef CM_VERSION
#define CM_VERSION "dev"
#endif

/* The dispatch layer calls this first when the node begins to stop. */
static void quiesce_http(void *http)
{
    cm_http_quiesce(http);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clustermgr -f <config.json> [--check]\n"
            "       clustermgr -f <config.json> --force-new-cluster [--peers id=ip:port,...]\n"
            "       clustermgr --version\n"
            "\n"
            "Runs one node of a clustermgr cluster. The config file is the CubeFS clustermgr.conf\n"
            "format; see the README for every field. --check validates the file and exits.\n"
            "--force-new-cluster rewrites the raft configuration of this stopped node to itself\n"
            "alone (or to --peers) after the cluster lost its quorum for good, then exits; see\n"
            "docs/operations.md.\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check = false, force = false;
    const char *peers = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--check") == 0)
            check = true;
        else if (strcmp(argv[i], "--force-new-cluster") == 0)
            force = true;
        else if (strcmp(argv[i], "--peers") == 0 && i + 1 < argc)
            peers = argv[++i];
        else if (strcmp(argv[i], "--version") == 0) {
            printf("clustermgr %s\n", CM_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "clustermgr: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || (peers && !force)) {
        usage(stderr);
        return 2;
    }
    /* A follower that dies mid-write must not take the leader down with it. */
    signal(SIGPIPE, SIG_IGN);

    static struct cm_config cfg;
    char err[1024];
    if (cm_config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "clustermgr: refusing to start: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: ok (node %llu, cluster %u, http %s, raft %s, data %s)\n", path,
               (unsigned long long)cfg.node_id, cfg.cluster_id, cfg.bind_addr, cfg.raft_addr,
               cfg.data_dir);
        cm_config_free(&cfg);
        return 0;
    }
    if (force) {
        int rc_force = cm_recover(&cfg, peers, err, sizeof err);
        if (rc_force != 0)
            fprintf(stderr, "clustermgr: %s\n", err);
        cm_config_free(&cfg);
        return rc_force ? 1 : 0;
    }
    if (cm_log_open(cfg.log_file) != 0) {
        fprintf(stderr, "clustermgr: refusing to start: cannot open log file %s\n", cfg.log_file);
        return 2;
    }
    cm_log_set_level(cfg.log_level);
    if (cm_audit_open(cfg.audit_dir, err, sizeof err) != 0) {
        fprintf(stderr, "clustermgr: refusing to start: %s\n", err);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct cm_node *node = NULL;
    int rc = cm_node_init(&node, &cfg.raft, &cfg.fsm, err, sizeof err);
    if (rc == -1) {
        CM_ERROR("node", "refusing to start: %s", err);
        fprintf(stderr, "clustermgr: refusing to start: %s\n", err);
        cm_config_free(&cfg);
        curl_global_cleanup();
        cm_audit_close();
        return 1;
    }
    cm_node_set_ext(node, CM_EXT_CONFIG, &cfg); /* cm_node_cfg, for every layer above consensus */
    /* the layers above consensus: leader jobs (their hooks run before the writes that waited
     * for a new leader), dispatch, then the HTTP front end */
    cm_jobs_init(node);
    cm_dispatch_init(node);
    struct cm_http *http = NULL;
    if (cm_http_start(&http, node, &cfg, err, sizeof err) != 0) {
        rc = -2;
        CM_ERROR("node", "refusing to start: %s", err);
        fprintf(stderr, "clustermgr: refusing to start: %s\n", err);
        cm_node_stop(node, "start-up failed"); /* raft is running */
    } else {
        cm_dispatch_set_quiesce(node, quiesce_http, http);
        CM_INFO("node", "serving HTTP on %s", cfg.bind_addr);
    }
    int exit_code = cm_node_run(node);
    /* the loop answered every job it held; the front end's workers answer what they hold (the
     * writes they forward themselves) and stop before the dispatch layer goes */
    if (http)
        cm_http_stop(http);
    cm_dispatch_free(node);
    cm_node_free(node);
    CM_INFO("node", "stopped");
    cm_audit_close();
    cm_config_free(&cfg);
    curl_global_cleanup();
    return rc == -2 ? 1 : exit_code;
}
