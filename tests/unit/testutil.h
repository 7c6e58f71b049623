/* Helpers shared by the unit tests. */
#ifndef CM_TESTUTIL_H
#define CM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/server/config.h"
#include "../../src/util/log.h"

/* A valid single-IDC config; `extra` is spliced in at the top level (e.g. ",\"region\":\"r\""),
 * `server_extra` inside raft_config.server_config. */
static inline char *cmt_config_text(const char *extra, const char *server_extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"bind_addr\":\"127.0.0.1:9998\",\"cluster_id\":1,\"idc\":[\"z0\"],"
             "\"chunk_size\":16777216,"
             "\"code_mode_policies\":[{\"mode_name\":\"EC3P3\",\"min_size\":0,\"max_size\":1024,"
             "\"size_ratio\":0.2,\"enable\":true},{\"mode_name\":\"EC6P6\",\"min_size\":1025,"
             "\"max_size\":2048,\"size_ratio\":0.8,\"enable\":false}],"
             "\"cluster_config\":{\"balance\":\"Disable\",\"disk_repair\":\"Disable\","
             "\"init_volume_num\":100},"
             "\"raft_config\":{\"server_config\":{\"nodeId\":1,\"listen_port\":10110,"
             "\"raft_wal_dir\":\"/tmp/cm-unit\",\"peers\":{\"1\":\"127.0.0.1:10110\","
             "\"2\":\"127.0.0.1:10111\"}%s},"
             "\"raft_node_config\":{\"node_protocol\":\"http://\",\"nodes\":{\"1\":"
             "\"127.0.0.1:9998\",\"2\":\"127.0.0.1:9999\"}}}%s}",
             server_extra ? server_extra : "", extra ? extra : "");
    return buf;
}

static inline void cmt_load_config(struct cm_config *cfg)
{
    char err[512];
    const char *t = cmt_config_text(NULL, NULL);
    int rc = cm_config_parse(t, strlen(t), "test", cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("config: %s", err);
}

static inline void cmt_quiet(void)
{
    cm_log_set_level(CM_LOG_FATAL);
}

#endif
