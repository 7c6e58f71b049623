/*
 * Configuration file parser; see config.h.
 *
 * Each JSON object of the file is checked against a list of the fields we understand and a list
 * of fields that only mean something to the Go implementation. Anything else is an error that
 * names the field with its full path, so an operator's typo never silently falls back to a
 * default.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../fsm/codemode.h"
#include "../fsm/mod_disk.h"
#include "../fsm/mod_kv.h"
#include "../fsm/mod_node.h"
#include "../fsm/mod_service.h"
#include "../util/buf.h"
#include "../util/json.h"
#include "../util/log.h"

struct pctx {
    const char *origin;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct pctx *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s: ", p->origin);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static bool in_list(const char *key, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* Reject unknown fields of `o`; log the Go-only ones. */
static int check_fields(struct pctx *p, struct json_object *o, const char *path,
                        const char *const *known, const char *const *go_only)
{
    if (!json_object_is_type(o, json_type_object))
        return fail(p, "%s must be an object", path[0] ? path : "the top level");
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        if (in_list(key, known))
            continue;
        if (in_list(key, go_only)) {
            CM_INFO("config", "ignoring %s%s%s: it configures the Go implementation only", path,
                    path[0] ? "." : "", key);
            continue;
        }
        return fail(p, "unknown field \"%s%s%s\"", path, path[0] ? "." : "", key);
    }
    return 0;
}

static struct json_object *sub(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(o, name, &v);
    return v;
}

static int get_u64(struct pctx *p, struct json_object *o, const char *path, const char *name,
                   bool required, uint64_t max, uint64_t *out)
{
    char e[256];
    int rc = cm_json_get_u64(o, name, required, max, out, e, sizeof e);
    if (rc == CM_JSON_ERROR)
        return fail(p, "%s%s%s", path, path[0] ? ": " : "", e);
    return rc;
}

static int get_i64(struct pctx *p, struct json_object *o, const char *path, const char *name,
                   int64_t min, int64_t max, int64_t *out)
{
    char e[256];
    int rc = cm_json_get_i64(o, name, false, min, max, out, e, sizeof e);
    if (rc == CM_JSON_ERROR)
        return fail(p, "%s%s%s", path, path[0] ? ": " : "", e);
    return rc;
}

static int get_bool(struct pctx *p, struct json_object *o, const char *path, const char *name,
                    bool *out)
{
    char e[256];
    int rc = cm_json_get_bool(o, name, false, out, e, sizeof e);
    if (rc == CM_JSON_ERROR)
        return fail(p, "%s%s%s", path, path[0] ? ": " : "", e);
    return rc;
}

static int get_str(struct pctx *p, struct json_object *o, const char *path, const char *name,
                   bool required, char *out, size_t cap)
{
    char e[256];
    const char *s;
    size_t n;
    int rc = cm_json_get_str(o, name, required, &s, &n, e, sizeof e);
    if (rc == CM_JSON_ERROR)
        return fail(p, "%s%s%s", path, path[0] ? ": " : "", e);
    if (rc == CM_JSON_OK) {
        if (n >= cap)
            return fail(p, "%s%sfield \"%s\" is too long (%zu bytes, at most %zu)", path,
                        path[0] ? ": " : "", name, n, cap - 1);
        memcpy(out, s, n + 1);
    }
    return rc;
}

/* Split "host:port" / ":port" / "[v6]:port". */
static int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return -1;
        if ((size_t)(rb - s - 1) >= hostcap)
            return -1;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= hostcap)
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int parse_peer_map(struct pctx *p, struct json_object *o, const char *path,
                          struct cm_peer **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (o == NULL)
        return 0;
    if (!json_object_is_type(o, json_type_object))
        return fail(p, "%s must be an object mapping node ids to \"ip:port\"", path);
    size_t cnt = (size_t)json_object_object_length(o);
    struct cm_peer *peers = cm_calloc(cnt ? cnt : 1, sizeof *peers);
    size_t i = 0;
    json_object_object_foreach(o, key, val)
    {
        char *end;
        errno = 0;
        unsigned long long id = strtoull(key, &end, 10);
        if (errno || *end || end == key || id == 0 || key[0] == '-') {
            free(peers);
            return fail(p, "%s: key \"%s\" is not a node id (a positive integer)", path, key);
        }
        if (!json_object_is_type(val, json_type_string)) {
            free(peers);
            return fail(p, "%s.%s must be a string \"ip:port\"", path, key);
        }
        const char *addr = json_object_get_string(val);
        char host[CM_ADDR_MAX];
        uint16_t port;
        if (strlen(addr) >= CM_ADDR_MAX || parse_hostport(addr, host, sizeof host, &port) != 0 ||
            host[0] == '\0') {
            free(peers);
            return fail(p, "%s.%s: \"%s\" is not an address of the form ip:port", path, key, addr);
        }
        for (size_t j = 0; j < i; j++)
            if (peers[j].id == id) {
                free(peers);
                return fail(p, "%s: node id %llu is listed twice", path, id);
            }
        peers[i].id = id;
        snprintf(peers[i].addr, sizeof peers[i].addr, "%s", addr);
        i++;
    }
    *out = peers;
    *n = i;
    return 0;
}

/* Check one address "ip:port" of a member entry. */
static int member_addr(struct pctx *p, struct json_object *o, const char *path, const char *name,
                       bool required, char *out)
{
    if (get_str(p, o, path, name, required, out, CM_ADDR_MAX) < 0)
        return -1;
    char host[CM_ADDR_MAX];
    uint16_t port;
    if (out[0] == '\0') {
        if (required)
            return fail(p, "%s.%s must not be empty", path, name);
        return 0;
    }
    if (parse_hostport(out, host, sizeof host, &port) != 0 || host[0] == '\0')
        return fail(p, "%s.%s: \"%s\" is not an address of the form ip:port", path, name, out);
    return 0;
}

static const char *peer_addr(const struct cm_peer *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return v[i].addr;
    return NULL;
}

/* Does the map `given` (from the S-era fields) say exactly what `want` (from members) says? */
static int same_map(struct pctx *p, const char *what, const struct cm_peer *given, size_t ngiven,
                    const struct cm_peer *want, size_t nwant)
{
    for (size_t i = 0; i < nwant; i++) {
        const char *a = peer_addr(given, ngiven, want[i].id);
        if (a == NULL || strcmp(a, want[i].addr) != 0)
            return fail(p,
                        "raft_config.raft_node_config.members and %s disagree about node %llu "
                        "(%s there, %s in members): give one of the two forms",
                        what, (unsigned long long)want[i].id, a ? a : "absent", want[i].addr);
    }
    for (size_t i = 0; i < ngiven; i++)
        if (peer_addr(want, nwant, given[i].id) == NULL)
            return fail(p,
                        "raft_config.raft_node_config.members and %s disagree about node %llu "
                        "(%s there, absent in members): give one of the two forms",
                        what, (unsigned long long)given[i].id, given[i].addr);
    return 0;
}

/*
 * raft_node_config.members (CubeFS v3.2 and later): [{id, host, learner, node_host}] stands for
 * server_config.peers and learners (the raft addresses) and raft_node_config.nodes (the HTTP
 * addresses). A file may give both forms only if they agree.
 */
static int merge_members(struct pctx *p, struct json_object *arr, struct cm_config *cfg)
{
    static const char *const known[] = {"id", "host", "learner", "node_host", NULL};
    const char *path = "raft_config.raft_node_config.members";
    if (arr == NULL)
        return 0;
    if (!json_object_is_type(arr, json_type_array))
        return fail(p, "%s must be an array of {id, host, learner, node_host}", path);
    size_t n = json_object_array_length(arr);
    struct cm_peer *voters = cm_calloc(n + 1, sizeof *voters);
    struct cm_peer *learners = cm_calloc(n + 1, sizeof *learners);
    struct cm_peer *nodes = cm_calloc(n + 1, sizeof *nodes);
    size_t nv = 0, nl = 0, nn = 0;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        char ipath[96];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        uint64_t id;
        bool learner = false;
        char host[CM_ADDR_MAX] = "", node_host[CM_ADDR_MAX] = "";
        if (check_fields(p, o, ipath, known, NULL) < 0 ||
            get_u64(p, o, ipath, "id", true, UINT64_MAX, &id) < 0 ||
            get_bool(p, o, ipath, "learner", &learner) < 0 ||
            member_addr(p, o, ipath, "host", true, host) < 0 ||
            member_addr(p, o, ipath, "node_host", false, node_host) < 0)
            goto out;
        if (id == 0) {
            fail(p, "%s.id must not be 0", ipath);
            goto out;
        }
        if (peer_addr(voters, nv, id) || peer_addr(learners, nl, id)) {
            fail(p, "%s: node id %llu is listed twice", path, (unsigned long long)id);
            goto out;
        }
        for (size_t j = 0; j < nv + nl; j++)
            if (strcmp(j < nv ? voters[j].addr : learners[j - nv].addr, host) == 0) {
                fail(p, "%s: address %s is used by two members", path, host);
                goto out;
            }
        struct cm_peer *e = learner ? &learners[nl++] : &voters[nv++];
        e->id = id;
        memcpy(e->addr, host, sizeof e->addr);
        if (node_host[0]) {
            nodes[nn].id = id;
            memcpy(nodes[nn].addr, node_host, sizeof nodes[nn].addr);
            nn++;
        }
    }
    if (cfg->n_peers || cfg->n_learners) {
        if (same_map(p, "raft_config.server_config.peers", cfg->peers, cfg->n_peers, voters, nv) <
                0 ||
            same_map(p, "raft_config.server_config.learners", cfg->learners, cfg->n_learners,
                     learners, nl) < 0)
            goto out;
        CM_INFO("config", "%s repeats server_config.peers and learners", path);
    }
    if (cfg->n_nodes) {
        if (same_map(p, "raft_config.raft_node_config.nodes", cfg->nodes, cfg->n_nodes, nodes, nn) <
            0)
            goto out;
        CM_INFO("config", "%s repeats raft_node_config.nodes", path);
    }
    free(cfg->peers);
    free(cfg->learners);
    free(cfg->nodes);
    cfg->peers = voters, cfg->n_peers = nv;
    cfg->learners = learners, cfg->n_learners = nl;
    cfg->nodes = nodes, cfg->n_nodes = nn;
    return 0;
out:
    free(voters);
    free(learners);
    free(nodes);
    return rc;
}

/* A map key that names an enumeration value, compared without regard to case. */
static bool name_is(const char *key, const char *name)
{
    return strcasecmp(key, name) == 0;
}

/*
 * disk_mgr_config.copy_set_configs in the shape of CubeFS v3.5.1-v3.5.3 (current-release.md
 * §2.3): role name -> disk type name -> caps. Only names work as keys. Caps of 0 are unset; the
 * blobnode/hdd entry falls back to its defaults field by field, every other entry stays 0.
 */
static int parse_copy_sets(struct pctx *p, struct json_object *o, struct cm_config *cfg)
{
    static const char *const caps_known[] = {"node_set_cap", "node_set_rack_cap", "disk_set_cap",
                                             "disk_count_per_node_in_disk_set", NULL};
    static const char *const types[] = {
        [CM_DISK_TYPE_HDD] = "hdd", [CM_DISK_TYPE_SSD] = "ssd", [CM_DISK_TYPE_NVMESSD] = "nvmessd"};
    const char *path = "disk_mgr_config.copy_set_configs";
    if (o == NULL)
        return 0;
    if (!json_object_is_type(o, json_type_object))
        return fail(p, "%s must be an object keyed by node role (\"blobnode\")", path);
    json_object_object_foreach(o, role, per_type)
    {
        if (name_is(role, "shardnode")) {
            CM_INFO("config", "ignoring %s.%s: shardnodes are not supported", path, role);
            continue;
        }
        if (!name_is(role, "blobnode"))
            return fail(p, "%s: \"%s\" is not a node role name (blobnode, shardnode)", path, role);
        char rpath[96];
        snprintf(rpath, sizeof rpath, "%s.%s", path, role);
        if (per_type == NULL || !json_object_is_type(per_type, json_type_object))
            return fail(p, "%s must be an object keyed by disk type (hdd, ssd, nvmessd)", rpath);
        json_object_object_foreach(per_type, tname, caps)
        {
            int t = 0;
            for (int k = 1; k <= CM_DISK_TYPE_MAX; k++)
                if (name_is(tname, types[k]))
                    t = k;
            if (t == 0)
                return fail(p, "%s: \"%s\" is not a disk type name (hdd, ssd, nvmessd)", rpath,
                            tname);
            char tpath[128];
            snprintf(tpath, sizeof tpath, "%s.%s", rpath, tname);
            if (caps == NULL || check_fields(p, caps, tpath, caps_known, NULL) < 0)
                return caps == NULL ? fail(p, "%s must be an object", tpath) : -1;
            int64_t v[4] = {0, 0, 0, 0};
            for (int k = 0; k < 4; k++)
                if (get_i64(p, caps, tpath, caps_known[k], 0, INT32_MAX, &v[k]) < 0)
                    return -1;
            struct cm_copyset_caps *c = &cfg->copy_set[t];
            const struct cm_copyset_caps dflt = t == CM_DISK_TYPE_HDD
                                                    ? (struct cm_copyset_caps){108, 6, 2160, 20}
                                                    : (struct cm_copyset_caps){0, 0, 0, 0};
            c->node_set_cap = v[0] ? (uint32_t)v[0] : dflt.node_set_cap;
            c->node_set_rack_cap = v[1] ? (uint32_t)v[1] : dflt.node_set_rack_cap;
            c->disk_set_cap = v[2] ? (uint32_t)v[2] : dflt.disk_set_cap;
            c->disk_count_per_node_in_disk_set =
                v[3] ? (uint32_t)v[3] : dflt.disk_count_per_node_in_disk_set;
        }
    }
    return 0;
}

/* ---- task switches (docs/compatibility.md, "Task switches") ------------------------------ */

static const char *const switch_keys[] = {"disk_repair",
                                          "balance",
                                          "disk_drop",
                                          "volume_inspect",
                                          "vol_inspect",
                                          "shard_repair",
                                          "blob_delete",
                                          "data_inspect",
                                          "shard_disk_repair",
                                          "shard_node_blob_delete",
                                          NULL};

bool cm_config_is_switch(const char *key)
{
    return in_list(key, switch_keys);
}

const char *cm_config_switch_value(int format, const char *value)
{
    bool on;
    if (strcasecmp(value, "true") == 0 || strcasecmp(value, "enable") == 0)
        on = true;
    else if (strcasecmp(value, "false") == 0 || strcasecmp(value, "disable") == 0)
        on = false;
    else
        return NULL;
    if (format == CM_SWITCH_2022)
        return on ? "Enable" : "Disable";
    return on ? "true" : "false";
}

static int cmp_policy(const void *a, const void *b)
{
    const struct cm_policy *x = a, *y = b;
    return x->min_size < y->min_size ? -1 : x->min_size > y->min_size;
}

static int parse_policies(struct pctx *p, struct json_object *arr, struct cm_config *cfg,
                          struct cm_buf *code_mode_json)
{
    if (arr == NULL)
        return fail(p, "field \"code_mode_policies\" is required");
    if (!json_object_is_type(arr, json_type_array))
        return fail(p, "code_mode_policies must be an array");
    size_t n = json_object_array_length(arr);
    if (n == 0)
        return fail(p, "code_mode_policies must not be empty");
    static const char *const known[] = {"mode_name",  "min_size", "max_size",
                                        "size_ratio", "enable",   NULL};
    cfg->policies = cm_calloc(n, sizeof *cfg->policies);
    cfg->n_policies = n;
    struct json_object **ratio_src = cm_calloc(n, sizeof *ratio_src);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        char path[64];
        snprintf(path, sizeof path, "code_mode_policies[%zu]", i);
        struct cm_policy *pol = &cfg->policies[i];
        if (check_fields(p, o, path, known, NULL) < 0)
            goto out;
        if (get_str(p, o, path, "mode_name", true, pol->mode_name, sizeof pol->mode_name) < 0)
            goto out;
        const struct cm_codemode *cm = cm_codemode_by_name(pol->mode_name);
        if (cm == NULL && cm_codemode_replica_by_name(pol->mode_name) != NULL) {
            fail(p,
                 "%s: replica code modes are not supported yet (\"%s\": copy-set placement of "
                 "replica volumes is not implemented); use an erasure-code mode",
                 path, pol->mode_name);
            goto out;
        }
        if (cm == NULL) {
            fail(p, "%s: unknown code mode \"%s\"", path, pol->mode_name);
            goto out;
        }
        pol->code_mode = cm->id;
        if (get_i64(p, o, path, "min_size", 0, INT64_MAX, &pol->min_size) < 0 ||
            get_i64(p, o, path, "max_size", 0, INT64_MAX, &pol->max_size) < 0 ||
            get_bool(p, o, path, "enable", &pol->enable) < 0)
            goto out;
        char e[256];
        if (cm_json_get_f64(o, "size_ratio", false, &pol->size_ratio, e, sizeof e) ==
            CM_JSON_ERROR) {
            fail(p, "%s: %s", path, e);
            goto out;
        }
        if (pol->size_ratio < 0) {
            fail(p, "%s: size_ratio must not be negative", path);
            goto out;
        }
        if (pol->max_size < pol->min_size) {
            fail(p, "%s: max_size %" PRId64 " is below min_size %" PRId64, path, pol->max_size,
                 pol->min_size);
            goto out;
        }
        ratio_src[i] = sub(o, "size_ratio");
    }
    /* sort (stable for equal min_size is not needed: equal enabled ranges are rejected below) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp_policy(&cfg->policies[j - 1], &cfg->policies[j]) > 0; j--) {
            struct cm_policy t = cfg->policies[j];
            cfg->policies[j] = cfg->policies[j - 1];
            cfg->policies[j - 1] = t;
            struct json_object *r = ratio_src[j];
            ratio_src[j] = ratio_src[j - 1];
            ratio_src[j - 1] = r;
        }
    int64_t next = 0;
    size_t enabled = 0;
    for (size_t i = 0; i < n; i++) {
        struct cm_policy *pol = &cfg->policies[i];
        if (!pol->enable)
            continue;
        if (pol->min_size != next) {
            if (enabled == 0)
                fail(p,
                     "code_mode_policies: the enabled policy with the smallest min_size (%s) "
                     "must start at 0, not %" PRId64,
                     pol->mode_name, pol->min_size);
            else
                fail(p,
                     "code_mode_policies: enabled size ranges must be contiguous: %s starts at "
                     "%" PRId64 ", expected %" PRId64,
                     pol->mode_name, pol->min_size, next);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (cfg->policies[j].enable &&
                strcmp(cfg->policies[j].mode_name, pol->mode_name) == 0) {
                fail(p, "code_mode_policies: %s is enabled twice", pol->mode_name);
                goto out;
            }
        if (cfg->unavailable_idc[0] == '\0' &&
            (size_t)cm_codemode_by_id(pol->code_mode)->az_count != cfg->n_idc) {
            fail(p,
                 "code_mode_policies: %s spreads over %d availability zones but %zu idc %s "
                 "configured",
                 pol->mode_name, cm_codemode_by_id(pol->code_mode)->az_count, cfg->n_idc,
                 cfg->n_idc == 1 ? "is" : "are");
            goto out;
        }
        next = pol->max_size == INT64_MAX ? INT64_MAX : pol->max_size + 1;
        enabled++;
    }
    /* The reference accepts a file whose policies are all disabled; such a cluster creates no
     * volume and allocates none until a policy is enabled (and the nodes restarted). */
    if (enabled == 0)
        CM_WARN("config",
                "no code_mode_policies entry is enabled: this cluster creates no volumes and "
                "/volume/alloc finds none until one is enabled");
    /* The `code_mode` config value: the sorted policy list as compact JSON (spec §4.7). */
    cm_buf_puts(code_mode_json, "[");
    for (size_t i = 0; i < n; i++) {
        struct cm_policy *pol = &cfg->policies[i];
        cm_buf_printf(code_mode_json,
                      "%s{\"mode_name\":\"%s\",\"min_size\":%" PRId64 ",\"max_size\":%" PRId64
                      ",\"size_ratio\":",
                      i ? "," : "", pol->mode_name, pol->min_size, pol->max_size);
        if (ratio_src[i])
            cm_buf_puts(code_mode_json,
                        json_object_to_json_string_ext(ratio_src[i], JSON_C_TO_STRING_PLAIN));
        else
            cm_buf_puts(code_mode_json, "0");
        cm_buf_printf(code_mode_json, ",\"enable\":%s}", pol->enable ? "true" : "false");
    }
    cm_buf_puts(code_mode_json, "]");
    rc = 0;
out:
    free(ratio_src);
    return rc;
}

static void add_default(struct cm_config *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < cfg->n_defaults; i++)
        if (strcmp(cfg->defaults[i].key, key) == 0) {
            free(cfg->defaults[i].value);
            cfg->defaults[i].value = cm_strdup(value);
            return;
        }
    cfg->defaults = cm_realloc(cfg->defaults, (cfg->n_defaults + 1) * sizeof *cfg->defaults);
    cfg->defaults[cfg->n_defaults].key = cm_strdup(key);
    cfg->defaults[cfg->n_defaults].value = cm_strdup(value);
    cfg->n_defaults++;
}

static int cmp_default(const void *a, const void *b)
{
    return strcmp(((const struct cm_kv_default *)a)->key, ((const struct cm_kv_default *)b)->key);
}

/*
 * The spelling of task switches (see docs/compatibility.md): task_switch_format when given, else
 * the spelling of the switches in cluster_config (a 2022 file spells them Enable/Disable), else
 * the current one. Switch defaults are then written in that spelling, and vol_inspect and
 * volume_inspect, two names of one switch, get the same default.
 */
static int switch_defaults(struct pctx *p, struct json_object *o, struct cm_config *cfg,
                           bool format_given)
{
    if (!format_given) {
        cfg->task_switch_format = CM_SWITCH_CURRENT;
        json_object_object_foreach(o, key, val)
        {
            const char *v = val && json_object_is_type(val, json_type_string)
                                ? json_object_get_string(val)
                                : "";
            if (cm_config_is_switch(key) &&
                (strcasecmp(v, "enable") == 0 || strcasecmp(v, "disable") == 0)) {
                cfg->task_switch_format = CM_SWITCH_2022;
                CM_INFO("config",
                        "task switches are spelled Enable/Disable, as cluster_config.%s is: the "
                        "2022 clients read them so (set task_switch_format to \"current\" for "
                        "CubeFS v3.2 and later, which read true/false)",
                        key);
                break;
            }
        }
    }
    for (size_t i = 0; i < cfg->n_defaults; i++) {
        struct cm_kv_default *d = &cfg->defaults[i];
        const char *v = cm_config_is_switch(d->key)
                            ? cm_config_switch_value(cfg->task_switch_format, d->value)
                            : NULL;
        if (v != NULL && strcmp(v, d->value) != 0) {
            CM_INFO("config", "cluster_config.%s: switch value \"%s\" is written \"%s\"", d->key,
                    d->value, v);
            free(d->value);
            d->value = cm_strdup(v);
        }
    }
    const char *a = cm_config_default(cfg, "vol_inspect");
    const char *b = cm_config_default(cfg, "volume_inspect");
    if (a && b && strcmp(a, b) != 0)
        return fail(p,
                    "cluster_config.vol_inspect (\"%s\") and cluster_config.volume_inspect "
                    "(\"%s\") name the same task switch but differ",
                    a, b);
    if (a && !b)
        add_default(cfg, "volume_inspect", a);
    else if (b && !a)
        add_default(cfg, "vol_inspect", b);
    return 0;
}

/*
 * `current_file`: the file is in the form of CubeFS v3.2 and later (raft_node_config.members).
 * Those releases make cluster_config optional (the v3.5 sample has none); the 2022 release
 * requires it, so a 2022-form file without one is neither and stays refused.
 */
static int parse_cluster_config(struct pctx *p, struct json_object *o, struct cm_config *cfg,
                                const char *code_mode_json, bool format_given, bool current_file)
{
    struct json_object *empty = NULL;
    if (o == NULL && !current_file)
        return fail(p, "field \"cluster_config\" is required (it may be {}) in a file without "
                       "raft_config.raft_node_config.members");
    if (o == NULL)
        o = empty = json_object_new_object();
    if (!json_object_is_type(o, json_type_object))
        return fail(p, "cluster_config must be an object");
    json_object_object_foreach(o, key, val)
    {
        if (val != NULL && json_object_is_type(val, json_type_string))
            add_default(cfg, key, json_object_get_string(val));
        else if (val == NULL)
            add_default(cfg, key, "null");
        else
            add_default(cfg, key,
                        json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    }
    const char *reserve = cm_config_default(cfg, "volume_reserve_size");
    if (reserve == NULL)
        add_default(cfg, "volume_reserve_size", "10485760");
    else {
        char *end;
        errno = 0;
        strtoull(reserve, &end, 10);
        if (errno || *end || end == reserve || reserve[0] == '-')
            return fail(p,
                        "cluster_config.volume_reserve_size must be an unsigned decimal "
                        "integer, got \"%s\"",
                        reserve);
    }
    char chunk[32];
    snprintf(chunk, sizeof chunk, "%" PRIu64, cfg->chunk_size);
    add_default(cfg, "volume_chunk_size", chunk);
    add_default(cfg, "code_mode", code_mode_json);
    int rc = switch_defaults(p, o, cfg, format_given);
    json_object_put(empty);
    if (rc < 0)
        return -1;
    qsort(cfg->defaults, cfg->n_defaults, sizeof *cfg->defaults, cmp_default);
    return 0;
}

static int parse_raft(struct pctx *p, struct json_object *raft, struct cm_config *cfg)
{
    static const char *const raft_known[] = {"server_config", "raft_node_config", NULL};
    static const char *const raft_go[] = {"raft_db_path", "raft_db_option", "snapshot_patch_num",
                                          NULL};
    static const char *const sc_known[] = {"nodeId",
                                           "listen_port",
                                           "raft_wal_dir",
                                           "peers",
                                           "learners",
                                           "tick_interval",
                                           "heartbeat_tick",
                                           "election_tick",
                                           "propose_timeout",
                                           "heartbeat_timeout_ms",
                                           "election_timeout_ms",
                                           "snapshot_threshold",
                                           "snapshot_trailing",
                                           "snapshot_min_interval_ms",
                                           "max_batch_entries",
                                           "max_reads_per_barrier",
                                           "listen_ip",
                                           NULL};
    static const char *const sc_go[] = {"raft_wal_sync",
                                        "max_snapshots",
                                        "snapshot_timeout",
                                        "use_rocksdb",
                                        "disable_proposal_forwarding",
                                        "server_timeout_min",
                                        NULL};
    static const char *const nc_known[] = {"node_protocol", "nodes", "members", NULL};
    static const char *const nc_go[] = {"flush_num_interval", "flush_time_interval_s",
                                        "truncate_num_interval", "apply_flush", NULL};
    if (raft == NULL)
        return fail(p, "field \"raft_config\" is required");
    if (check_fields(p, raft, "raft_config", raft_known, raft_go) < 0)
        return -1;
    struct json_object *sc = sub(raft, "server_config");
    if (sc == NULL)
        return fail(p, "field \"raft_config.server_config\" is required");
    const char *path = "raft_config.server_config";
    if (check_fields(p, sc, path, sc_known, sc_go) < 0)
        return -1;
    uint64_t v;
    if (get_u64(p, sc, path, "nodeId", true, UINT64_MAX, &cfg->node_id) < 0)
        return -1;
    if (cfg->node_id == 0)
        return fail(p, "%s.nodeId must not be 0", path);
    if (get_u64(p, sc, path, "listen_port", true, 65535, &v) < 0)
        return -1;
    if (v == 0)
        return fail(p, "%s.listen_port must be a port number 1..65535", path);
    cfg->raft_port = (uint16_t)v;
    if (get_str(p, sc, path, "raft_wal_dir", true, cfg->data_dir, sizeof cfg->data_dir) < 0)
        return -1;
    if (cfg->data_dir[0] == '\0')
        return fail(p, "%s.raft_wal_dir must not be empty", path);
    if (parse_peer_map(p, sub(sc, "peers"), "raft_config.server_config.peers", &cfg->peers,
                       &cfg->n_peers) < 0 ||
        parse_peer_map(p, sub(sc, "learners"), "raft_config.server_config.learners", &cfg->learners,
                       &cfg->n_learners) < 0)
        return -1;

    struct json_object *nc = sub(raft, "raft_node_config");
    snprintf(cfg->node_protocol, sizeof cfg->node_protocol, "http://");
    if (nc != NULL) {
        const char *npath = "raft_config.raft_node_config";
        if (check_fields(p, nc, npath, nc_known, nc_go) < 0)
            return -1;
        if (get_str(p, nc, npath, "node_protocol", false, cfg->node_protocol,
                    sizeof cfg->node_protocol) < 0)
            return -1;
        if (strcmp(cfg->node_protocol, "http://") != 0 &&
            strcmp(cfg->node_protocol, "https://") != 0)
            return fail(p, "%s.node_protocol must be \"http://\" or \"https://\"", npath);
        if (parse_peer_map(p, sub(nc, "nodes"), "raft_config.raft_node_config.nodes", &cfg->nodes,
                           &cfg->n_nodes) < 0)
            return -1;
        if (merge_members(p, sub(nc, "members"), cfg) < 0)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_learners; i++)
        for (size_t j = 0; j < cfg->n_peers; j++) {
            if (cfg->learners[i].id == cfg->peers[j].id)
                return fail(p, "%s: node %llu is both a peer and a learner", path,
                            (unsigned long long)cfg->peers[j].id);
            if (strcmp(cfg->learners[i].addr, cfg->peers[j].addr) == 0)
                return fail(p, "%s: address %s is used by two members", path, cfg->peers[j].addr);
        }
    for (size_t i = 0; i < cfg->n_peers; i++)
        for (size_t j = i + 1; j < cfg->n_peers; j++)
            if (strcmp(cfg->peers[i].addr, cfg->peers[j].addr) == 0)
                return fail(p, "%s.peers: address %s is used by two members", path,
                            cfg->peers[i].addr);

    /* Timing. The reference counts in ticks of tick_interval seconds; we honour those when given
     * and otherwise use millisecond defaults suited to a control plane. */
    uint64_t tick = 0, hb_tick = 1, el_tick = 5, hb_ms = 0, el_ms = 0, pt = 10;
    int have_tick = get_u64(p, sc, path, "tick_interval", false, 3600, &tick);
    if (have_tick < 0 || get_u64(p, sc, path, "heartbeat_tick", false, 1000, &hb_tick) < 0 ||
        get_u64(p, sc, path, "election_tick", false, 1000, &el_tick) < 0 ||
        get_u64(p, sc, path, "heartbeat_timeout_ms", false, 600000, &hb_ms) < 0 ||
        get_u64(p, sc, path, "election_timeout_ms", false, 600000, &el_ms) < 0 ||
        get_u64(p, sc, path, "propose_timeout", false, 3600, &pt) < 0)
        return -1;
    cfg->heartbeat_ms = 100;
    cfg->election_ms = 750;
    if (have_tick == CM_JSON_OK || sub(sc, "heartbeat_tick") || sub(sc, "election_tick")) {
        if (tick == 0)
            tick = 2;
        cfg->heartbeat_ms = (unsigned)(tick * hb_tick * 1000);
        cfg->election_ms = (unsigned)(tick * el_tick * 1000);
    }
    if (hb_ms)
        cfg->heartbeat_ms = (unsigned)hb_ms;
    if (el_ms)
        cfg->election_ms = (unsigned)el_ms;
    if (cfg->heartbeat_ms == 0 || cfg->election_ms <= cfg->heartbeat_ms)
        return fail(p,
                    "%s: the election timeout (%u ms) must be longer than the heartbeat "
                    "interval (%u ms)",
                    path, cfg->election_ms, cfg->heartbeat_ms);
    if (pt == 0)
        pt = 10;
    cfg->propose_timeout_ms = (unsigned)(pt * 1000);
    uint64_t thr = 8192, trail = 2048;
    if (get_u64(p, sc, path, "snapshot_threshold", false, 100000000, &thr) < 0 ||
        get_u64(p, sc, path, "snapshot_trailing", false, 100000000, &trail) < 0)
        return -1;
    if (thr < 2)
        return fail(p, "%s.snapshot_threshold must be at least 2", path);
    cfg->snapshot_threshold = (unsigned)thr;
    cfg->snapshot_trailing = (unsigned)trail;
    uint64_t gap = 10000;
    if (get_u64(p, sc, path, "snapshot_min_interval_ms", false, 86400000, &gap) < 0)
        return -1;
    cfg->snapshot_min_interval_ms = (unsigned)gap;
    /* tuning knobs, for measuring what group commit and read batching buy */
    uint64_t mb = 1024, mr = 0;
    if (get_u64(p, sc, path, "max_batch_entries", false, 1024, &mb) < 0 ||
        get_u64(p, sc, path, "max_reads_per_barrier", false, 1000000, &mr) < 0)
        return -1;
    cfg->max_batch_entries = mb ? (unsigned)mb : 1;
    cfg->max_reads_per_barrier = (unsigned)mr;
    if (get_str(p, sc, path, "listen_ip", false, cfg->raft_listen_ip, sizeof cfg->raft_listen_ip) <
        0)
        return -1;

    /* Our own raft address: as the member maps name it, else derived from the listen address. */
    const char *self = NULL;
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (cfg->peers[i].id == cfg->node_id)
            self = cfg->peers[i].addr;
    for (size_t i = 0; i < cfg->n_learners; i++)
        if (cfg->learners[i].id == cfg->node_id)
            self = cfg->learners[i].addr;
    if (self) {
        char host[CM_ADDR_MAX];
        uint16_t port;
        parse_hostport(self, host, sizeof host, &port);
        if (port != cfg->raft_port)
            return fail(p,
                        "%s: listen_port %u does not match this node's own address %s in the "
                        "member map",
                        path, cfg->raft_port, self);
        snprintf(cfg->raft_addr, sizeof cfg->raft_addr, "%s", self);
        if (cfg->raft_listen_ip[0] == '\0')
            snprintf(cfg->raft_listen_ip, sizeof cfg->raft_listen_ip, "%s", host);
    } else {
        const char *ip =
            cfg->raft_listen_ip[0] && strcmp(cfg->raft_listen_ip, "0.0.0.0") != 0
                ? cfg->raft_listen_ip
                : (cfg->http_ip[0] && strcmp(cfg->http_ip, "0.0.0.0") != 0 ? cfg->http_ip
                                                                           : "127.0.0.1");
        char addr[CM_ADDR_MAX + 8];
        snprintf(addr, sizeof addr, "%s:%u", ip, cfg->raft_port);
        if (strlen(addr) >= sizeof cfg->raft_addr)
            return fail(p, "%s: listen address %s is too long", path, addr);
        memcpy(cfg->raft_addr, addr, strlen(addr) + 1);
        if (cfg->raft_listen_ip[0] == '\0')
            snprintf(cfg->raft_listen_ip, sizeof cfg->raft_listen_ip, "0.0.0.0");
    }
    return 0;
}

int cm_config_parse(const char *text_in, size_t len, const char *origin, struct cm_config *cfg,
                    char *err, size_t errlen)
{
    struct pctx pc = {origin, err, errlen}, *p = &pc;
    memset(cfg, 0, sizeof *cfg);
    char *text = cm_strndup(text_in, len);
    len = cm_config_strip_comments(text, len);
    char perr[256];
    struct json_object *root = cm_json_parse(text, len, false, perr, sizeof perr);
    free(text);
    struct cm_buf code_mode_json = {0};
    int rc = -1;
    if (root == NULL) {
        fail(p, "not valid JSON: %s", perr);
        goto out;
    }
    static const char *const top_known[] = {"bind_addr",
                                            "cluster_id",
                                            "idc",
                                            "region",
                                            "chunk_size",
                                            "code_mode_policies",
                                            "cluster_config",
                                            "volume_mgr_config",
                                            "disk_mgr_config",
                                            "raft_config",
                                            "log",
                                            "auth",
                                            "auditlog",
                                            "unavailable_idc",
                                            "readonly",
                                            "shutdown_timeout_s",
                                            "heartbeat_notify_interval_s",
                                            "max_heartbeat_notify_num",
                                            "metric_report_interval_m",
                                            "http",
                                            "tls",
                                            "task_switch_format",
                                            "limits",
                                            NULL};
    static const char *const top_go[] = {"max_procs", "normal_db_path", "normal_db_option",
                                         "consul_agent_addr", "cluster_report_interval_s",
                                         /* CubeFS v3.2 and later */
                                         "db_path", "kv_db_path", "kv_db_option", "db_cache_size",
                                         "consistent_check_interval_m", "consul_token",
                                         "consul_token_file", NULL};
    if (check_fields(p, root, "", top_known, top_go) < 0)
        goto out;

    if (get_str(p, root, "", "bind_addr", true, cfg->bind_addr, sizeof cfg->bind_addr) < 0)
        goto out;
    if (parse_hostport(cfg->bind_addr, cfg->http_ip, sizeof cfg->http_ip, &cfg->http_port) != 0) {
        fail(p, "bind_addr \"%s\" is not of the form [ip]:port", cfg->bind_addr);
        goto out;
    }
    uint64_t v;
    if (get_u64(p, root, "", "cluster_id", false, UINT32_MAX, &v) < 0)
        goto out;
    cfg->cluster_id = (uint32_t)v;
    if (get_str(p, root, "", "region", false, cfg->region, sizeof cfg->region) < 0 ||
        get_str(p, root, "", "unavailable_idc", false, cfg->unavailable_idc,
                sizeof cfg->unavailable_idc) < 0 ||
        get_bool(p, root, "", "readonly", &cfg->readonly) < 0)
        goto out;
    cfg->chunk_size = 17179869184ULL;
    if (get_u64(p, root, "", "chunk_size", false, UINT64_MAX, &cfg->chunk_size) < 0)
        goto out;
    if (cfg->chunk_size == 0) {
        fail(p, "chunk_size must be positive");
        goto out;
    }
    int64_t i64 = 30;
    if (get_i64(p, root, "", "shutdown_timeout_s", 0, 3600, &i64) < 0)
        goto out;
    cfg->shutdown_timeout_s = (int)i64;

    struct json_object *idc = sub(root, "idc");
    if (idc == NULL || !json_object_is_type(idc, json_type_array) ||
        json_object_array_length(idc) == 0) {
        fail(p, "idc must be a non-empty array of IDC names");
        goto out;
    }
    cfg->n_idc = json_object_array_length(idc);
    cfg->idc = cm_calloc(cfg->n_idc, sizeof *cfg->idc);
    for (size_t i = 0; i < cfg->n_idc; i++) {
        struct json_object *s = json_object_array_get_idx(idc, i);
        if (s == NULL || !json_object_is_type(s, json_type_string) ||
            json_object_get_string_len(s) == 0 || json_object_get_string_len(s) >= CM_NAME_MAX) {
            cfg->n_idc = i;
            fail(p, "idc[%zu] must be a non-empty string shorter than %d bytes", i, CM_NAME_MAX);
            goto out;
        }
        cfg->idc[i] = cm_strdup(json_object_get_string(s));
    }
    if (cfg->unavailable_idc[0] && !cm_config_has_idc(cfg, cfg->unavailable_idc)) {
        fail(p, "unavailable_idc \"%s\" is not one of the configured idc", cfg->unavailable_idc);
        goto out;
    }

    /* log */
    cfg->log_level = CM_LOG_INFO;
    struct json_object *lo = sub(root, "log");
    if (lo) {
        static const char *const known[] = {"level", "filename", NULL};
        static const char *const go[] = {"maxsize", "maxage", "maxbackups", NULL};
        if (check_fields(p, lo, "log", known, go) < 0)
            goto out;
        struct json_object *lv = sub(lo, "level");
        if (lv) {
            int level = -1;
            if (json_object_is_type(lv, json_type_string))
                level = cm_log_parse_level(json_object_get_string(lv));
            else if (json_object_is_type(lv, json_type_int) && json_object_get_int64(lv) >= 0 &&
                     json_object_get_int64(lv) <= 5)
                level = json_object_get_int(lv) == 5 ? CM_LOG_FATAL : json_object_get_int(lv);
            if (level < 0) {
                fail(p, "log.level must be 0..5 or one of debug, info, warn, error, panic, fatal");
                goto out;
            }
            cfg->log_level = level;
        }
        if (get_str(p, lo, "log", "filename", false, cfg->log_file, sizeof cfg->log_file) < 0)
            goto out;
    }
    struct json_object *au = sub(root, "auth");
    if (au) {
        static const char *const known[] = {"enable_auth", "secret", "max_age_s", "peer_secret",
                                            NULL};
        if (check_fields(p, au, "auth", known, NULL) < 0 ||
            get_bool(p, au, "auth", "enable_auth", &cfg->auth_enable) < 0 ||
            get_str(p, au, "auth", "secret", false, cfg->auth_secret, sizeof cfg->auth_secret) <
                0 ||
            get_str(p, au, "auth", "peer_secret", false, cfg->peer_secret,
                    sizeof cfg->peer_secret) < 0 ||
            get_i64(p, au, "auth", "max_age_s", 0, 86400 * 365, &cfg->auth_max_age_s) < 0)
            goto out;
        /* raft peers authenticate with peer_secret, else with the API secret when auth is on
         * (as the first releases did: requiring a separate one would stop every rolling upgrade
         * of a cluster with auth on, since a member with another secret cannot reach the old
         * ones; the node warns instead, see docs/security.md) */
        if (cfg->peer_secret[0] == '\0' && cfg->auth_enable)
            memcpy(cfg->peer_secret, cfg->auth_secret, sizeof cfg->peer_secret);
        cfg->peer_secret_is_api =
            cfg->auth_enable && strcmp(cfg->peer_secret, cfg->auth_secret) == 0;
        if (cfg->auth_enable && cfg->auth_secret[0] == '\0') {
            fail(p, "auth.enable_auth is set but auth.secret is empty");
            goto out;
        }
    }
    struct json_object *al = sub(root, "auditlog");
    if (al) {
        static const char *const known[] = {"logdir", NULL};
        static const char *const go[] = {"chunkbits",       "bodylimit",  "rotate_new",
                                         "log_file_suffix", "backup",     "metric_config",
                                         "keep_file_num",   "log_format", "filters",
                                         "no2xx_body",      NULL};
        if (check_fields(p, al, "auditlog", known, go) < 0 ||
            get_str(p, al, "auditlog", "logdir", false, cfg->audit_dir, sizeof cfg->audit_dir) < 0)
            goto out;
    }
    cfg->http_threads = 0; /* auto: see below */
    cfg->max_connections = 32768;
    cfg->max_body_bytes = 4u << 20;
    cfg->max_queued_requests = 20000;
    cfg->connection_timeout_s = 30;
    cfg->body_budget_bytes = 256ull << 20;
    struct json_object *ht = sub(root, "http");
    if (ht) {
        static const char *const known[] = {"threads",
                                            "max_connections",
                                            "max_body_bytes",
                                            "max_queued_requests",
                                            "per_ip_connections",
                                            "connection_timeout_s",
                                            "body_budget_bytes",
                                            NULL};
        uint64_t t = cfg->http_threads, mc = cfg->max_connections, mb = cfg->max_body_bytes,
                 mq = cfg->max_queued_requests, pi = 0, ct = cfg->connection_timeout_s,
                 bb = cfg->body_budget_bytes;
        if (check_fields(p, ht, "http", known, NULL) < 0 ||
            get_u64(p, ht, "http", "threads", false, 64, &t) < 0 ||
            get_u64(p, ht, "http", "max_connections", false, 1000000, &mc) < 0 ||
            get_u64(p, ht, "http", "max_body_bytes", false, 1u << 30, &mb) < 0 ||
            get_u64(p, ht, "http", "max_queued_requests", false, 10000000, &mq) < 0 ||
            get_u64(p, ht, "http", "per_ip_connections", false, 1000000, &pi) < 0 ||
            get_u64(p, ht, "http", "connection_timeout_s", false, 3600, &ct) < 0 ||
            get_u64(p, ht, "http", "body_budget_bytes", false, 1ull << 40, &bb) < 0)
            goto out;
        cfg->body_budget_bytes = bb ? bb : cfg->body_budget_bytes;
        cfg->http_threads = (unsigned)t;
        cfg->max_connections = mc ? (unsigned)mc : 1;
        cfg->max_body_bytes = mb ? (unsigned)mb : 1;
        cfg->max_queued_requests = mq ? (unsigned)mq : 1;
        cfg->per_ip_connections = (unsigned)pi;
        cfg->connection_timeout_s = ct ? (unsigned)ct : 30;
    }
    if (cfg->http_threads == 0) {
        /* auto: half the processors, the other half for raft, apply and fsync; measured on 2
         * cores, one HTTP loop serves 40 % more reads than four (bench/README.md) */
        long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
        cfg->http_threads = n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
    }
    /* quotas of the replicated stores and of concurrent dumps (README, "limits") */
    cfg->kv_max_entries = 1000000;
    cfg->kv_max_bytes = 1ull << 30;
    cfg->service_max_entries = 100000;
    cfg->service_max_bytes = 64ull << 20;
    cfg->max_concurrent_dumps = 2;
    cfg->config_list_max_bytes = 32u << 20;
    cfg->service_collect_after_s = CM_SERVICE_COLLECT_AFTER_S;
    cfg->disk_max_entries = 1000000;
    cfg->disk_max_bytes = 2ull << 30;
    cfg->node_max_entries = 100000;
    cfg->node_max_bytes = 256ull << 20;
    struct json_object *lim = sub(root, "limits");
    if (lim) {
        static const char *const known[] = {
            "kv_max_entries",          "kv_max_bytes",         "service_max_entries",
            "service_max_bytes",       "max_concurrent_dumps", "config_list_max_bytes",
            "service_collect_after_s", "disk_max_entries",     "disk_max_bytes",
            "node_max_entries",        "node_max_bytes",       NULL};
        if (check_fields(p, lim, "limits", known, NULL) < 0 ||
            get_u64(p, lim, "limits", "kv_max_entries", false, CM_KV_HARD_MAX_ENTRIES,
                    &cfg->kv_max_entries) < 0 ||
            get_u64(p, lim, "limits", "kv_max_bytes", false, CM_KV_HARD_MAX_BYTES,
                    &cfg->kv_max_bytes) < 0 ||
            get_u64(p, lim, "limits", "service_max_entries", false, CM_SERVICE_HARD_MAX_ENTRIES,
                    &cfg->service_max_entries) < 0 ||
            get_u64(p, lim, "limits", "service_max_bytes", false, CM_SERVICE_HARD_MAX_BYTES,
                    &cfg->service_max_bytes) < 0 ||
            get_u64(p, lim, "limits", "max_concurrent_dumps", false, 64,
                    &cfg->max_concurrent_dumps) < 0 ||
            get_u64(p, lim, "limits", "config_list_max_bytes", false, CM_KV_HARD_MAX_BYTES,
                    &cfg->config_list_max_bytes) < 0 ||
            get_u64(p, lim, "limits", "service_collect_after_s", false, 100ull * 365 * 86400,
                    &cfg->service_collect_after_s) < 0 ||
            get_u64(p, lim, "limits", "disk_max_entries", false, CM_DISK_ID_MAX,
                    &cfg->disk_max_entries) < 0 ||
            get_u64(p, lim, "limits", "disk_max_bytes", false, CM_DISK_HARD_MAX_BYTES,
                    &cfg->disk_max_bytes) < 0 ||
            get_u64(p, lim, "limits", "node_max_entries", false, CM_NODE_ID_MAX,
                    &cfg->node_max_entries) < 0 ||
            get_u64(p, lim, "limits", "node_max_bytes", false, CM_NODE_HARD_MAX_BYTES,
                    &cfg->node_max_bytes) < 0)
            goto out;
        if (cfg->max_concurrent_dumps == 0)
            cfg->max_concurrent_dumps = 1;
    }
    struct json_object *tls = sub(root, "tls");
    if (tls) {
        static const char *const known[] = {"cert_file", "key_file", "client_ca_file", "ca_file",
                                            NULL};
        if (check_fields(p, tls, "tls", known, NULL) < 0 ||
            get_str(p, tls, "tls", "cert_file", true, cfg->tls_cert, sizeof cfg->tls_cert) < 0 ||
            get_str(p, tls, "tls", "key_file", true, cfg->tls_key, sizeof cfg->tls_key) < 0 ||
            get_str(p, tls, "tls", "client_ca_file", false, cfg->tls_client_ca,
                    sizeof cfg->tls_client_ca) < 0 ||
            get_str(p, tls, "tls", "ca_file", false, cfg->tls_ca, sizeof cfg->tls_ca) < 0)
            goto out;
    }

    /* volume_mgr_config */
    cfg->retain_time_s = 600;
    cfg->check_expired_volume_interval_s = 60;
    cfg->min_allocable_volume_count = 5;
    cfg->blobnode_timeout_ms = 10000;
    cfg->allocatable_size = -1;
    cfg->alloc_factor = 5;
    struct json_object *vm = sub(root, "volume_mgr_config");
    if (vm) {
        static const char *const known[] = {"retain_time_s",
                                            "retain_threshold",
                                            "check_expired_volume_interval_s",
                                            "min_allocable_volume_count",
                                            "allocatable_disk_load_threshold",
                                            "blob_node_config",
                                            "allocatable_size",
                                            "alloc_factor",
                                            NULL};
        static const char *const go[] = {
            "volume_db_path",    "volume_db_option", "flush_interval_s", "volume_slice_map_num",
            "apply_concurrency", "local_host",       "shard_num",        NULL};
        const char *path = "volume_mgr_config";
        if (check_fields(p, vm, path, known, go) < 0 ||
            get_i64(p, vm, path, "retain_time_s", 0, 86400 * 30, &cfg->retain_time_s) < 0 ||
            get_i64(p, vm, path, "retain_threshold", -1000, 1000, &cfg->retain_threshold) < 0 ||
            get_i64(p, vm, path, "check_expired_volume_interval_s", 0, 86400,
                    &cfg->check_expired_volume_interval_s) < 0 ||
            get_i64(p, vm, path, "min_allocable_volume_count", 0, 1000000,
                    &cfg->min_allocable_volume_count) < 0 ||
            get_i64(p, vm, path, "allocatable_disk_load_threshold", INT32_MIN, INT32_MAX,
                    &cfg->allocatable_disk_load_threshold) < 0 ||
            get_i64(p, vm, path, "allocatable_size", 0, INT64_MAX, &cfg->allocatable_size) < 0 ||
            get_i64(p, vm, path, "alloc_factor", 0, 1000000, &cfg->alloc_factor) < 0)
            goto out;
        if (cfg->alloc_factor == 0)
            cfg->alloc_factor = 5;
        if (cfg->retain_time_s == 0)
            cfg->retain_time_s = 600;
        if (cfg->check_expired_volume_interval_s == 0)
            cfg->check_expired_volume_interval_s = 60;
        struct json_object *bn = sub(vm, "blob_node_config");
        if (bn) {
            static const char *const bknown[] = {"client_timeout_ms", NULL};
            static const char *const bgo[] = {"body_bandwidth_mbps", "body_base_timeout_ms",
                                              "transport_config", NULL};
            if (check_fields(p, bn, "volume_mgr_config.blob_node_config", bknown, bgo) < 0 ||
                get_i64(p, bn, "volume_mgr_config.blob_node_config", "client_timeout_ms", 0,
                        3600000, &cfg->blobnode_timeout_ms) < 0)
                goto out;
            if (cfg->blobnode_timeout_ms == 0)
                cfg->blobnode_timeout_ms = 10000;
        }
    }
    /* disk_mgr_config */
    cfg->refresh_interval_s = 300;
    cfg->heartbeat_expire_interval_s = 60;
    cfg->copy_set[CM_DISK_TYPE_HDD] = (struct cm_copyset_caps){108, 6, 2160, 20};
    struct json_object *dm = sub(root, "disk_mgr_config");
    if (dm) {
        static const char *const known[] = {"refresh_interval_s",
                                            "rack_aware",
                                            "host_aware",
                                            "heartbeat_expire_interval_s",
                                            "alloc_tolerate_buffer",
                                            "copy_set_configs",
                                            NULL};
        static const char *const go[] = {"flush_interval_s", "apply_concurrency",
                                         "blob_node_config", "ensure_index",
                                         "reserved_space",   NULL};
        const char *path = "disk_mgr_config";
        if (check_fields(p, dm, path, known, go) < 0 ||
            get_i64(p, dm, path, "refresh_interval_s", 0, 86400, &cfg->refresh_interval_s) < 0 ||
            get_bool(p, dm, path, "rack_aware", &cfg->rack_aware) < 0 ||
            get_bool(p, dm, path, "host_aware", &cfg->host_aware) < 0 ||
            get_i64(p, dm, path, "heartbeat_expire_interval_s", 0, 86400,
                    &cfg->heartbeat_expire_interval_s) < 0 ||
            get_i64(p, dm, path, "alloc_tolerate_buffer", INT32_MIN, INT32_MAX,
                    &cfg->alloc_tolerate_buffer) < 0)
            goto out;
        if (cfg->refresh_interval_s == 0)
            cfg->refresh_interval_s = 300;
        if (cfg->heartbeat_expire_interval_s == 0)
            cfg->heartbeat_expire_interval_s = 60;
        if (cfg->alloc_tolerate_buffer < 0)
            cfg->alloc_tolerate_buffer = 50;
        if (parse_copy_sets(p, sub(dm, "copy_set_configs"), cfg) < 0)
            goto out;
    }
    cfg->heartbeat_notify_interval_s = 10;
    cfg->max_heartbeat_notify_num = 2000;
    cfg->metric_report_interval_m = 2;
    /* -1 (our extension): propose every heartbeat, none is "too frequent" */
    if (get_i64(p, root, "", "heartbeat_notify_interval_s", -1, 86400,
                &cfg->heartbeat_notify_interval_s) < 0 ||
        get_i64(p, root, "", "max_heartbeat_notify_num", 0, INT32_MAX,
                &cfg->max_heartbeat_notify_num) < 0 ||
        get_i64(p, root, "", "metric_report_interval_m", 0, 1440, &cfg->metric_report_interval_m) <
            0)
        goto out;
    if (cfg->heartbeat_notify_interval_s == 0)
        cfg->heartbeat_notify_interval_s = 10;

    if (parse_raft(p, sub(root, "raft_config"), cfg) < 0)
        goto out;
    if (cfg->tls_cert[0] && strcmp(cfg->node_protocol, "https://") != 0) {
        fail(p,
             "tls is configured: raft_config.raft_node_config.node_protocol must be \"https://\"");
        goto out;
    }
    if (parse_policies(p, sub(root, "code_mode_policies"), cfg, &code_mode_json) < 0)
        goto out;
    char fmt[16] = "";
    if (get_str(p, root, "", "task_switch_format", false, fmt, sizeof fmt) < 0)
        goto out;
    if (strcmp(fmt, "2022") == 0)
        cfg->task_switch_format = CM_SWITCH_2022;
    else if (strcmp(fmt, "current") == 0 || fmt[0] == '\0')
        cfg->task_switch_format = CM_SWITCH_CURRENT;
    else {
        fail(p, "task_switch_format must be \"current\" (true/false) or \"2022\" (Enable/Disable)");
        goto out;
    }
    if (parse_cluster_config(
            p, sub(root, "cluster_config"), cfg, code_mode_json.data, fmt[0] != '\0',
            sub(sub(sub(root, "raft_config"), "raft_node_config"), "members") != NULL) < 0)
        goto out;
    rc = 0;
out:
    cm_buf_free(&code_mode_json);
    json_object_put(root);
    if (rc != 0)
        cm_config_free(cfg);
    return rc;
}

int cm_config_load(const char *path, struct cm_config *cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct cm_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        cm_buf_append(&b, chunk, n);
        if (b.len > (64u << 20)) {
            fclose(f);
            cm_buf_free(&b);
            snprintf(err, errlen, "%s: file is larger than 64 MiB", path);
            return -1;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        cm_buf_free(&b);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    int rc = cm_config_parse(b.data ? b.data : "", b.len, path, cfg, err, errlen);
    cm_buf_free(&b);
    if (rc == 0)
        snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return rc;
}

void cm_config_free(struct cm_config *cfg)
{
    for (size_t i = 0; i < cfg->n_idc; i++)
        free(cfg->idc[i]);
    free(cfg->idc);
    free(cfg->policies);
    for (size_t i = 0; i < cfg->n_defaults; i++) {
        free(cfg->defaults[i].key);
        free(cfg->defaults[i].value);
    }
    free(cfg->defaults);
    free(cfg->peers);
    free(cfg->learners);
    free(cfg->nodes);
    memset(cfg, 0, sizeof *cfg);
}

const char *cm_config_node_http(const struct cm_config *cfg, uint64_t id)
{
    return cm_settings_node_http(&cfg->fsm, id);
}

const struct cm_policy *cm_config_policy(const struct cm_config *cfg, unsigned code_mode)
{
    for (size_t i = 0; i < cfg->n_policies; i++)
        if (cfg->policies[i].code_mode == code_mode)
            return &cfg->policies[i];
    return NULL;
}

const char *cm_config_default(const struct cm_config *cfg, const char *key)
{
    return cm_settings_default(&cfg->fsm, key);
}

bool cm_config_has_idc(const struct cm_config *cfg, const char *idc)
{
    for (size_t i = 0; i < cfg->n_idc; i++)
        if (strcmp(cfg->idc[i], idc) == 0)
            return true;
    return false;
}

size_t cm_config_strip_comments(char *t, size_t len)
{
    size_t r = 0, w = 0;
    while (r < len) {
        char c = t[r];
        if (c == '"') {
            t[w++] = t[r++];
            while (r < len && t[r] != '"') {
                if (t[r] == '\\' && r + 1 < len)
                    t[w++] = t[r++];
                t[w++] = t[r++];
            }
            if (r < len)
                t[w++] = t[r++];
        } else if (c == '#' || (c == '/' && r + 1 < len && t[r + 1] == '/')) {
            while (r < len && t[r] != '\n')
                r++;
        } else if (c == '/' && r + 1 < len && t[r + 1] == '*') {
            r += 2;
            while (r + 1 < len && !(t[r] == '*' && t[r + 1] == '/'))
                r++;
            r = r + 2 <= len ? r + 2 : len;
            t[w++] = ' ';
        } else
            t[w++] = t[r++];
    }
    t[w] = '\0';
    return w;
}
