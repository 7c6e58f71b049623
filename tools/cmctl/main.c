/*
 * cmctl: the admin command line of clustermgr. Command table, help texts, option parsing and
 * every online command; the snapshot commands are in snapshot.c, HTTP and failover in http.c.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util/base64.h"
#include "../../src/util/json.h"
#include "cmctl.h"

#ifndef CM_VERSION
#define CM_VERSION "dev"
#endif

/* ---------------------------------------------------------------------------------------- */
/* options                                                                                  */

/* Options that take a value ("--name value" or "--name=value"); all others are flags. */
static const char *const value_opts[] = {
    "host",        "timeout",     "node-host", "cluster-id", "node-id", "peers", "http",
    "prefix",      "marker",      "count",     "status",     "idc",     "rack",  "file",
    "value",       "host-filter", "timeout-s", "secret",     "from",    "to",    "out",
    "lease-hosts", "bid-margin",  "id-margin", NULL,
};
static const char *const flag_opts[] = {"json",    "help",   "learner", "all", "init",
                                        "verbose", "base64", "verify",  NULL};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

const char *cmctl_opt(struct cmctl *c, const char *name)
{
    for (int i = c->n_opts - 1; i >= 0; i--)
        if (strcmp(c->opts[i].name, name) == 0)
            return c->opts[i].value;
    return NULL;
}

bool cmctl_flag(struct cmctl *c, const char *name)
{
    return cmctl_opt(c, name) != NULL;
}

static int parse_args(struct cmctl *c, int argc, char **argv)
{
    c->pos = cm_calloc((size_t)argc + 1, sizeof *c->pos);
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            c->pos[c->n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0)
            a = "--help";
        if (a[1] != '-')
            return cmctl_fail(CMCTL_ERR_USAGE, "unknown option %s (options are --name)", a);
        char *name = a + 2, *eq = strchr(name, '=');
        const char *value = NULL;
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        if (in_list(value_opts, name)) {
            if (!eq) {
                if (i + 1 >= argc)
                    return cmctl_fail(CMCTL_ERR_USAGE, "option --%s needs a value", name);
                value = argv[++i];
            }
        } else if (in_list(flag_opts, name)) {
            if (eq)
                return cmctl_fail(CMCTL_ERR_USAGE, "option --%s takes no value", name);
            value = "";
        } else
            return cmctl_fail(CMCTL_ERR_USAGE, "unknown option --%s (see cmctl help)", name);
        if (c->n_opts == (int)(sizeof c->opts / sizeof c->opts[0]))
            return cmctl_fail(CMCTL_ERR_USAGE, "too many options");
        c->opts[c->n_opts++] = (struct cmctl_opt){name, value};
    }
    return 0;
}

static int parse_u64(const char *s, const char *what, uint64_t max, uint64_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (s[0] == '\0' || s[0] == '-' || s[0] == '+' || isspace((unsigned char)s[0]) || *e || errno ||
        v > max)
        return cmctl_fail(CMCTL_ERR_USAGE, "%s: \"%s\" is not a number in 0..%llu", what, s,
                          (unsigned long long)max);
    *out = v;
    return 0;
}

static int parse_bool(const char *s, const char *what, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "yes") == 0)
        return *out = true, 0;
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "no") == 0)
        return *out = false, 0;
    return cmctl_fail(CMCTL_ERR_USAGE, "%s: \"%s\" is not true or false", what, s);
}

/* ---------------------------------------------------------------------------------------- */
/* request helpers                                                                          */

static void print_body(struct cmctl_resp *r)
{
    if (r->body.len == 0)
        return;
    fwrite(r->body.data, 1, r->body.len, stdout);
    if (r->body.data[r->body.len - 1] != '\n')
        fputc('\n', stdout);
}

/* Send, check, and print the answer's body (when `print`). */
static int call(struct cmctl *c, const char *method, const char *path, struct json_object *body,
                bool print)
{
    size_t len = 0;
    char *text = body ? cm_json_render_put(body, &len) : NULL;
    struct cmctl_resp r;
    int rc = cmctl_request(c, method, path, NULL, text, len, &r);
    free(text);
    if (rc)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "%s %s", method, path);
    rc = cmctl_check(&r, what);
    if (rc == 0 && print)
        print_body(&r);
    cmctl_resp_free(&r);
    return rc;
}

/* Send and hand back a parsed JSON answer (NULL for an empty body); with `quiet_404` a 404 is
 * returned as CMCTL_ERR_NOT_FOUND without a message (a route this server does not have). */
static int call_json_ex(struct cmctl *c, const char *method, const char *path,
                        struct json_object *body, struct json_object **out, bool quiet_404)
{
    size_t len = 0;
    char *text = body ? cm_json_render_put(body, &len) : NULL;
    struct cmctl_resp r;
    *out = NULL;
    int rc = cmctl_request(c, method, path, NULL, text, len, &r);
    free(text);
    if (rc)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "%s %s", method, path);
    rc = quiet_404 && r.status == 404 ? CMCTL_ERR_NOT_FOUND : cmctl_check(&r, what);
    if (rc == 0 && r.body.len) {
        char err[256];
        *out = cm_json_parse(r.body.data, r.body.len, false, err, sizeof err);
        if (*out == NULL)
            rc = cmctl_fail(CMCTL_ERR_ANSWER, "%s: the answer is not JSON: %s", what, err);
    }
    cmctl_resp_free(&r);
    return rc;
}

int cmctl_call_json(struct cmctl *c, const char *method, const char *path, struct json_object *body,
                    struct json_object **out)
{
    return call_json_ex(c, method, path, body, out, false);
}

int cmctl_get_json_if_any(struct cmctl *c, const char *path, struct json_object **out)
{
    return call_json_ex(c, "GET", path, NULL, out, true);
}

static void print_json(struct json_object *o)
{
    size_t len;
    char *s = cm_json_render(o, &len);
    fwrite(s, 1, len, stdout);
    fputc('\n', stdout);
    free(s);
}

static struct json_object *obj(void)
{
    return json_object_new_object();
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_uint64(v));
}

/* A JSON argument: the text itself, @file, or - for stdin. */
static int json_arg(const char *arg, struct json_object **out)
{
    struct cm_buf b = {0};
    if (arg[0] == '@' || strcmp(arg, "-") == 0) {
        FILE *f = strcmp(arg, "-") == 0 ? stdin : fopen(arg + 1, "rb");
        if (f == NULL)
            return cmctl_fail(CMCTL_ERR_LOCAL, "cannot open %s: %s", arg + 1, strerror(errno));
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            cm_buf_append(&b, chunk, n);
        if (f != stdin)
            fclose(f);
    } else
        cm_buf_puts(&b, arg);
    char err[256];
    *out = cm_json_parse(b.data ? b.data : "", b.len, false, err, sizeof err);
    cm_buf_free(&b);
    if (*out == NULL)
        return cmctl_fail(CMCTL_ERR_USAGE, "the JSON argument is not valid JSON: %s", err);
    return 0;
}

static char *path_q(const char *base, const char *name, const char *value)
{
    char *esc = cmctl_escape(value);
    size_t n = strlen(base) + strlen(name) + strlen(esc) + 4;
    char *p = cm_malloc(n);
    snprintf(p, n, "%s?%s=%s", base, name, esc);
    free(esc);
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* commands                                                                                 */

typedef int (*cmd_fn)(struct cmctl *c, char **a);

static const char *str_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static uint64_t u64_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_uint64(v) : 0;
}

static int c_stat(struct cmctl *c, char **a)
{
    (void)a;
    if (c->json)
        return call(c, "GET", "/stat", NULL, true);
    struct json_object *o;
    int rc = cmctl_call_json(c, "GET", "/stat", NULL, &o);
    if (rc)
        return rc;
    struct json_object *rs, *sp, *vs, *peers;
    json_object_object_get_ex(o, "raft_status", &rs);
    json_object_object_get_ex(o, "space_stat", &sp);
    json_object_object_get_ex(o, "volume_stat", &vs);
    const char *lh = str_of(o, "leader_host");
    printf("leader      %llu  %s\n", (unsigned long long)u64_of(rs, "leader"),
           lh[0] ? lh : "(unknown)");
    printf("this node   %llu  %s  term %llu  commit %llu  applied %llu\n",
           (unsigned long long)u64_of(rs, "nodeId"), str_of(rs, "raftState"),
           (unsigned long long)u64_of(rs, "term"), (unsigned long long)u64_of(rs, "commit"),
           (unsigned long long)u64_of(rs, "applied"));
    if (json_object_object_get_ex(rs, "peers", &peers) && peers &&
        json_object_is_type(peers, json_type_array)) {
        printf("peers       id  host                     match     state                  "
               "active  learner\n");
        for (size_t i = 0; i < json_object_array_length(peers); i++) {
            struct json_object *p = json_object_array_get_idx(peers, i), *act, *lrn;
            json_object_object_get_ex(p, "active", &act);
            json_object_object_get_ex(p, "isLearner", &lrn);
            printf("            %-3llu %-24s %-9llu %-22s %-7s %s\n",
                   (unsigned long long)u64_of(p, "id"), str_of(p, "host"),
                   (unsigned long long)u64_of(p, "match"), str_of(p, "state"),
                   json_object_get_boolean(act) ? "yes" : "no",
                   json_object_get_boolean(lrn) ? "yes" : "no");
        }
    } else
        printf("peers       (replication progress is shown by the leader)\n");
    if (sp)
        printf("space       total %llu  free %llu  used %llu  writable %llu  blobnodes %llu  "
               "disks %llu\n",
               (unsigned long long)u64_of(sp, "total_space"),
               (unsigned long long)u64_of(sp, "free_space"),
               (unsigned long long)u64_of(sp, "used_space"),
               (unsigned long long)u64_of(sp, "writable_space"),
               (unsigned long long)u64_of(sp, "total_blob_node"),
               (unsigned long long)u64_of(sp, "total_disk"));
    if (vs)
        printf("volumes     total %llu  idle %llu  allocatable %llu  active %llu  locked %llu  "
               "unlocking %llu\n",
               (unsigned long long)u64_of(vs, "total_volume"),
               (unsigned long long)u64_of(vs, "idle_volume"),
               (unsigned long long)u64_of(vs, "can_alloc_volume"),
               (unsigned long long)u64_of(vs, "active_volume"),
               (unsigned long long)u64_of(vs, "lock_volume"),
               (unsigned long long)u64_of(vs, "unlocking_volume"));
    json_object_put(o);
    return 0;
}

/* member */
static int peer_body(char *id, struct json_object **out)
{
    uint64_t v;
    int rc = parse_u64(id, "peer id", UINT64_MAX, &v);
    if (rc)
        return rc;
    *out = obj();
    add_u64(*out, "peer_id", v);
    return 0;
}

static int c_member_add(struct cmctl *c, char **a)
{
    uint64_t id;
    int rc = parse_u64(a[0], "peer id", UINT64_MAX, &id);
    if (rc)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "peer_id", id);
    json_object_object_add(o, "host", json_object_new_string(a[1]));
    add_u64(o, "member_type", cmctl_flag(c, "learner") ? 1 : 2);
    const char *nh = cmctl_opt(c, "node-host");
    if (nh)
        json_object_object_add(o, "node_host", json_object_new_string(nh));
    return call(c, "POST", "/member/add", o, true);
}

static int c_peer_route(struct cmctl *c, char **a, const char *path)
{
    struct json_object *o;
    int rc = peer_body(a[0], &o);
    return rc ? rc : call(c, "POST", path, o, true);
}

static int c_member_remove(struct cmctl *c, char **a)
{
    return c_peer_route(c, a, "/member/remove");
}
static int c_member_promote(struct cmctl *c, char **a)
{
    return c_peer_route(c, a, "/member/promote");
}
static int c_member_transfer(struct cmctl *c, char **a)
{
    return c_peer_route(c, a, "/leadership/transfer");
}

/* config */
static int c_config_get(struct cmctl *c, char **a)
{
    char *p = path_q("/config/get", "key", a[0]);
    int rc;
    if (c->json)
        rc = call(c, "GET", p, NULL, true);
    else {
        struct json_object *o;
        rc = cmctl_call_json(c, "GET", p, NULL, &o);
        if (rc == 0) {
            printf("%s\n", o ? json_object_get_string(o) : "");
            json_object_put(o);
        }
    }
    free(p);
    return rc;
}

static int c_config_list(struct cmctl *c, char **a)
{
    (void)a;
    if (c->json)
        return call(c, "GET", "/config/list", NULL, true);
    struct json_object *o, *cfgs;
    int rc = cmctl_call_json(c, "GET", "/config/list", NULL, &o);
    if (rc)
        return rc;
    if (o && json_object_object_get_ex(o, "configs", &cfgs) && cfgs) {
        json_object_object_foreach(cfgs, k, v) printf("%s\t%s\n", k, json_object_get_string(v));
    }
    json_object_put(o);
    return 0;
}

static int c_config_set(struct cmctl *c, char **a)
{
    struct json_object *o = obj();
    json_object_object_add(o, "key", json_object_new_string(a[0]));
    json_object_object_add(o, "value", json_object_new_string(a[1]));
    return call(c, "POST", "/config/set", o, true);
}

static int c_config_del(struct cmctl *c, char **a)
{
    char *p = path_q("/config/delete", "key", a[0]);
    int rc = call(c, "POST", p, NULL, true);
    free(p);
    return rc;
}

/* task switches */
static const char *const switches[] = {"disk_repair",    "balance",      "disk_drop",
                                       "blob_delete",    "shard_repair", "vol_inspect",
                                       "volume_inspect", "data_inspect", NULL};

static int check_switch(const char *s)
{
    if (in_list(switches, s))
        return 0;
    return cmctl_fail(CMCTL_ERR_USAGE,
                      "unknown task switch \"%s\" (one of disk_repair, balance, disk_drop, "
                      "blob_delete, shard_repair, volume_inspect (vol_inspect), data_inspect)",
                      s);
}

static int set_switch(struct cmctl *c, const char *sw, const char *value)
{
    int rc = check_switch(sw);
    if (rc)
        return rc;
    struct json_object *o = obj();
    json_object_object_add(o, "key", json_object_new_string(sw));
    json_object_object_add(o, "value", json_object_new_string(value));
    return call(c, "POST", "/config/set", o, true);
}

static int c_task_enable(struct cmctl *c, char **a)
{
    return set_switch(c, a[0], "Enable");
}
static int c_task_disable(struct cmctl *c, char **a)
{
    return set_switch(c, a[0], "Disable");
}

/* One switch per request (/config/get): /config/list would carry the whole store, which is
 * the KV store since CubeFS v3.3 and may be refused when large. */
static int c_task_status(struct cmctl *c, char **a)
{
    if (a[0] && check_switch(a[0]))
        return CMCTL_ERR_USAGE;
    for (const char *const *s = switches; *s; s++) {
        if (a[0] && strcmp(a[0], *s) != 0)
            continue;
        char *p = path_q("/config/get", "key", *s);
        struct cmctl_resp r;
        int rc = cmctl_request(c, "GET", p, NULL, NULL, 0, &r);
        free(p);
        if (rc)
            return rc;
        char *val = NULL;
        if (r.status == 404) {
            val = cm_strdup("(unset)");
        } else if ((rc = cmctl_check(&r, "GET /config/get")) == 0) {
            char err[256];
            struct json_object *o = cm_json_parse(r.body.data, r.body.len, false, err, sizeof err);
            val = cm_strdup(
                o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : "?");
            json_object_put(o);
        }
        cmctl_resp_free(&r);
        if (rc)
            return rc;
        if (a[0])
            printf("%s\n", val);
        else
            printf("%-15s %s\n", *s, val);
        free(val);
    }
    return 0;
}

/* disks (spec §5.2) */
static int c_disk_alloc_id(struct cmctl *c, char **a)
{
    (void)a;
    return call(c, "POST", "/diskid/alloc", json_object_new_null(), true);
}

static int c_disk_get(struct cmctl *c, char **a)
{
    uint64_t id;
    int rc = parse_u64(a[0], "disk id", UINT32_MAX, &id);
    if (rc)
        return rc;
    char *p = path_q("/disk/info", "disk_id", a[0]);
    rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static const char *const disk_status_names[] = {"",         "normal",  "broken", "repairing",
                                                "repaired", "dropped", NULL};

static int disk_status(const char *s, uint64_t *out)
{
    for (int i = 1; disk_status_names[i]; i++)
        if (strcmp(s, disk_status_names[i]) == 0)
            return *out = (uint64_t)i, 0;
    return parse_u64(s, "disk status (1 normal, 2 broken, 3 repairing, 4 repaired, 5 dropped)", 255,
                     out);
}

/* Page through a list route into `all`: `items` is the array field; the next page starts after
 * the answer's marker, until an empty page, an empty body or a marker that does not move.
 * `all` may be NULL (nothing kept); `on_page` (may be NULL) sees every page's items and the
 * number of items so far. */
int cmctl_list_pages(struct cmctl *c, const char *base, const char *items, const char *query,
                     struct json_object *all, cmctl_page_fn on_page, void *arg)
{
    char marker[1200] = "";
    size_t total = 0;
    int rc = 0;
    for (;;) {
        char path[4096];
        char *em = cmctl_escape(marker);
        snprintf(path, sizeof path, "%s?%s%s%s%s", base, query, query[0] ? "&" : "",
                 marker[0] ? "marker=" : "", marker[0] ? em : "");
        free(em);
        struct json_object *o, *arr = NULL, *m = NULL;
        rc = cmctl_call_json(c, "GET", path, NULL, &o);
        if (rc)
            break;
        if (o == NULL) /* routes that answer an empty body at the end */
            break;
        json_object_object_get_ex(o, items, &arr);
        json_object_object_get_ex(o, "marker", &m);
        size_t n =
            arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
        for (size_t i = 0; i < n && all; i++)
            json_object_array_add(all, json_object_get(json_object_array_get_idx(arr, i)));
        total += n;
        if (on_page && n)
            on_page(arg, arr, total);
        const char *next = m ? json_object_get_string(m) : "";
        bool done =
            n == 0 || next[0] == '\0' || strcmp(next, "0") == 0 || strcmp(next, marker) == 0;
        snprintf(marker, sizeof marker, "%s", next);
        json_object_put(o);
        if (done)
            break;
    }
    return rc;
}

/* Page through a list route and print every page as one {"<items>":[...]}. */
static int list_all(struct cmctl *c, const char *base, const char *items, const char *query)
{
    struct json_object *all = json_object_new_array();
    int rc = cmctl_list_pages(c, base, items, query, all, NULL, NULL);
    if (rc == 0) {
        struct json_object *o = obj();
        json_object_object_add(o, items, all);
        print_json(o);
        json_object_put(o);
    } else
        json_object_put(all);
    return rc;
}

static void q_add(char *q, size_t cap, const char *name, const char *value)
{
    if (value == NULL)
        return;
    char *e = cmctl_escape(value);
    size_t l = strlen(q);
    snprintf(q + l, cap - l, "%s%s=%s", l ? "&" : "", name, e);
    free(e);
}

static int c_disk_list(struct cmctl *c, char **a)
{
    (void)a;
    char q[2048] = "";
    const char *st = cmctl_opt(c, "status");
    char stnum[8];
    if (st) {
        uint64_t v;
        if (disk_status(st, &v))
            return CMCTL_ERR_USAGE;
        snprintf(stnum, sizeof stnum, "%llu", (unsigned long long)v);
        st = stnum;
    }
    q_add(q, sizeof q, "idc", cmctl_opt(c, "idc"));
    q_add(q, sizeof q, "rack", cmctl_opt(c, "rack"));
    q_add(q, sizeof q, "host", cmctl_opt(c, "host-filter"));
    q_add(q, sizeof q, "status", st);
    q_add(q, sizeof q, "count", cmctl_opt(c, "count"));
    if (cmctl_flag(c, "all"))
        return list_all(c, "/disk/list", "disks", q);
    q_add(q, sizeof q, "marker", cmctl_opt(c, "marker"));
    char path[2100];
    snprintf(path, sizeof path, "/disk/list%s%s", q[0] ? "?" : "", q);
    return call(c, "GET", path, NULL, true);
}

static int c_json_post(struct cmctl *c, const char *path, const char *arg)
{
    struct json_object *o;
    int rc = json_arg(arg, &o);
    return rc ? rc : call(c, "POST", path, o, true);
}

static int c_disk_add(struct cmctl *c, char **a)
{
    return c_json_post(c, "/disk/add", a[0]);
}
static int c_disk_heartbeat(struct cmctl *c, char **a)
{
    return c_json_post(c, "/disk/heartbeat", a[0]);
}
static int c_disk_update(struct cmctl *c, char **a)
{
    return c_json_post(c, "/admin/disk/update", a[0]);
}

/* nodes and copy sets (CubeFS v3.5.1+) */
static int c_node_add(struct cmctl *c, char **a)
{
    return c_json_post(c, "/node/add", a[0]);
}

static int c_node_get(struct cmctl *c, char **a)
{
    uint64_t id;
    int rc = parse_u64(a[0], "node id", UINT32_MAX, &id);
    if (rc)
        return rc;
    char *p = path_q("/node/info", "node_id", a[0]);
    rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static int c_node_drop(struct cmctl *c, char **a)
{
    uint64_t id;
    int rc = parse_u64(a[0], "node id", UINT32_MAX, &id);
    if (rc)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "node_id", id);
    return call(c, "POST", "/node/drop", o, true);
}

static int c_node_topo(struct cmctl *c, char **a)
{
    (void)a;
    return call(c, "GET", "/topo/info", NULL, true);
}

static int disk_id_body(const char *s, struct json_object **out)
{
    uint64_t id;
    int rc = parse_u64(s, "disk id", UINT32_MAX, &id);
    if (rc)
        return rc;
    *out = obj();
    add_u64(*out, "disk_id", id);
    return 0;
}

static int c_disk_set(struct cmctl *c, char **a)
{
    struct json_object *o;
    uint64_t st;
    int rc = disk_status(a[1], &st);
    if (rc || (rc = disk_id_body(a[0], &o)) != 0)
        return rc;
    add_u64(o, "status", st);
    return call(c, "POST", "/disk/set", o, true);
}

static int c_disk_drop(struct cmctl *c, char **a)
{
    struct json_object *o;
    int rc = disk_id_body(a[0], &o);
    return rc ? rc : call(c, "POST", "/disk/drop", o, true);
}

static int c_disk_dropped(struct cmctl *c, char **a)
{
    struct json_object *o;
    int rc = disk_id_body(a[0], &o);
    return rc ? rc : call(c, "POST", "/disk/dropped", o, true);
}

static int c_disk_dropping(struct cmctl *c, char **a)
{
    (void)a;
    return call(c, "GET", "/disk/droppinglist", NULL, true);
}

static int c_disk_access(struct cmctl *c, char **a)
{
    struct json_object *o;
    bool ro;
    int rc = parse_bool(a[1], "readonly", &ro);
    if (rc || (rc = disk_id_body(a[0], &o)) != 0)
        return rc;
    json_object_object_add(o, "readonly", json_object_new_boolean(ro));
    return call(c, "POST", "/disk/access", o, true);
}

/* volumes (spec §5.4, §5.5) and chunks (§5.6) */
static int c_volume_get(struct cmctl *c, char **a)
{
    uint64_t v;
    int rc = parse_u64(a[0], "vid", UINT32_MAX, &v);
    if (rc)
        return rc;
    char *p = path_q("/volume/get", "vid", a[0]);
    rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static int c_volume_list(struct cmctl *c, char **a)
{
    (void)a;
    char q[256] = "";
    const char *count = cmctl_opt(c, "count");
    q_add(q, sizeof q, "count", count ? count : "10");
    if (cmctl_flag(c, "all"))
        return list_all(c, "/volume/list", "volumes", q);
    q_add(q, sizeof q, "marker", cmctl_opt(c, "marker"));
    char path[300];
    snprintf(path, sizeof path, "/volume/list?%s", q);
    return call(c, "GET", path, NULL, true);
}

static int c_volume_list_status(struct cmctl *c, char **a)
{
    uint64_t v;
    int rc = parse_u64(a[0], "volume status", 255, &v);
    if (rc)
        return rc;
    char *p = path_q("/v2/volume/list", "status", a[0]);
    rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static int c_volume_alloc(struct cmctl *c, char **a)
{
    uint64_t mode, count;
    int rc = parse_u64(a[0], "code mode", 255, &mode);
    if (rc || (rc = parse_u64(a[1], "count", INT32_MAX, &count)) != 0)
        return rc;
    struct json_object *o = obj();
    json_object_object_add(o, "is_init", json_object_new_boolean(cmctl_flag(c, "init")));
    add_u64(o, "code_mode", mode);
    add_u64(o, "count", count);
    return call(c, "POST", "/volume/alloc", o, true);
}

static int c_volume_allocated(struct cmctl *c, char **a)
{
    uint64_t mode;
    int rc = parse_u64(a[1], "code mode", 255, &mode);
    if (rc)
        return rc;
    char *h = cmctl_escape(a[0]);
    char path[600];
    snprintf(path, sizeof path, "/volume/allocated/list?host=%s&code_mode=%llu", h,
             (unsigned long long)mode);
    free(h);
    return call(c, "GET", path, NULL, true);
}

static int c_volume_retain(struct cmctl *c, char **a)
{
    struct json_object *o = obj(), *arr = json_object_new_array();
    for (int i = 0; a[i]; i++)
        json_object_array_add(arr, json_object_new_string(a[i]));
    json_object_object_add(o, "tokens", arr);
    return call(c, "POST", "/volume/retain", o, true);
}

static int vid_route(struct cmctl *c, char **a, const char *path)
{
    uint64_t v;
    int rc = parse_u64(a[0], "vid", UINT32_MAX, &v);
    if (rc)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "vid", v);
    return call(c, "POST", path, o, true);
}

static int c_volume_lock(struct cmctl *c, char **a)
{
    return vid_route(c, a, "/volume/lock");
}
static int c_volume_unlock(struct cmctl *c, char **a)
{
    return vid_route(c, a, "/volume/unlock");
}

static int c_volume_update(struct cmctl *c, char **a)
{
    uint64_t oldv, newv, disk;
    int rc = parse_u64(a[0], "old vuid", UINT64_MAX, &oldv);
    if (rc || (rc = parse_u64(a[1], "new vuid", UINT64_MAX, &newv)) != 0 ||
        (rc = parse_u64(a[2], "new disk id", UINT32_MAX, &disk)) != 0)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "new_vuid", newv);
    add_u64(o, "new_disk_id", disk);
    add_u64(o, "old_vuid", oldv);
    return call(c, "POST", "/volume/update", o, true);
}

static int c_volume_admin_update(struct cmctl *c, char **a)
{
    return c_json_post(c, "/admin/update/volume", a[0]);
}
static int c_volume_unit_update(struct cmctl *c, char **a)
{
    return c_json_post(c, "/admin/update/volume/unit", a[0]);
}

static int c_volume_unit_alloc(struct cmctl *c, char **a)
{
    uint64_t v;
    int rc = parse_u64(a[0], "vuid", UINT64_MAX, &v);
    if (rc)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "vuid", v);
    return call(c, "POST", "/volume/unit/alloc", o, true);
}

static int c_volume_unit_release(struct cmctl *c, char **a)
{
    uint64_t v, disk;
    int rc = parse_u64(a[0], "vuid", UINT64_MAX, &v);
    if (rc || (rc = parse_u64(a[1], "disk id", UINT32_MAX, &disk)) != 0)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "vuid", v);
    add_u64(o, "disk_id", disk);
    return call(c, "POST", "/volume/unit/release", o, true);
}

static int c_volume_units(struct cmctl *c, char **a)
{
    uint64_t d;
    int rc = parse_u64(a[0], "disk id", UINT32_MAX, &d);
    if (rc)
        return rc;
    char *p = path_q("/volume/unit/list", "disk_id", a[0]);
    rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static int c_chunk_compact(struct cmctl *c, char **a)
{
    uint64_t v;
    bool on;
    int rc = parse_u64(a[0], "vuid", UINT64_MAX, &v);
    if (rc || (rc = parse_bool(a[1], "compact", &on)) != 0)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "vuid", v);
    json_object_object_add(o, "compact", json_object_new_boolean(on));
    return call(c, "POST", "/chunk/set/compact", o, true);
}

static int c_chunk_report(struct cmctl *c, char **a)
{
    struct cm_buf b = {0};
    FILE *f = strcmp(a[0], "-") == 0 ? stdin : fopen(a[0], "rb");
    if (f == NULL)
        return cmctl_fail(CMCTL_ERR_LOCAL, "cannot open %s: %s", a[0], strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cm_buf_append(&b, chunk, n);
    if (f != stdin)
        fclose(f);
    struct cmctl_resp r;
    int rc = cmctl_request(c, "POST", "/chunk/report", "application/octet-stream",
                           b.data ? b.data : "", b.len, &r);
    cm_buf_free(&b);
    if (rc)
        return rc;
    rc = cmctl_check(&r, "POST /chunk/report");
    if (rc == 0)
        print_body(&r);
    cmctl_resp_free(&r);
    return rc;
}

/* services (spec §5.3) */
static int c_service_register(struct cmctl *c, char **a)
{
    uint64_t cluster, timeout = 60;
    int rc = parse_u64(a[0], "cluster id", UINT32_MAX, &cluster);
    const char *t = cmctl_opt(c, "timeout-s");
    if (rc || (t && (rc = parse_u64(t, "--timeout-s", INT32_MAX, &timeout)) != 0))
        return rc;
    struct json_object *o = obj();
    add_u64(o, "cluster_id", cluster);
    json_object_object_add(o, "name", json_object_new_string(a[1]));
    json_object_object_add(o, "host", json_object_new_string(a[2]));
    json_object_object_add(o, "idc", json_object_new_string(a[3]));
    add_u64(o, "timeout", timeout);
    return call(c, "POST", "/service/register", o, true);
}

static int service_key(struct cmctl *c, char **a, const char *path)
{
    struct json_object *o = obj();
    json_object_object_add(o, "name", json_object_new_string(a[0]));
    json_object_object_add(o, "host", json_object_new_string(a[1]));
    return call(c, "POST", path, o, true);
}

static int c_service_unregister(struct cmctl *c, char **a)
{
    return service_key(c, a, "/service/unregister");
}
static int c_service_heartbeat(struct cmctl *c, char **a)
{
    return service_key(c, a, "/service/heartbeat");
}

static int c_service_get(struct cmctl *c, char **a)
{
    char *p = path_q("/service/get", "name", a[0]);
    int rc = call(c, "GET", p, NULL, true);
    free(p);
    return rc;
}

static int c_service_list(struct cmctl *c, char **a)
{
    (void)a;
    return call(c, "GET", "/service/list", NULL, true);
}

/* kv (decisions.md) */
static char *kv_path(const char *base, const char *key)
{
    char *e = cmctl_escape(key);
    size_t n = strlen(base) + strlen(e) + 1;
    char *p = cm_malloc(n);
    snprintf(p, n, "%s%s", base, e);
    free(e);
    return p;
}

static int c_kv_get(struct cmctl *c, char **a)
{
    char *p = kv_path("/kv/get/", a[0]);
    int rc;
    if (c->json) {
        rc = call(c, "GET", p, NULL, true);
        free(p);
        return rc;
    }
    struct json_object *o;
    rc = cmctl_call_json(c, "GET", p, NULL, &o);
    free(p);
    if (rc)
        return rc;
    const char *v = str_of(o, "value");
    size_t vlen = strlen(v);
    if (cmctl_flag(c, "base64"))
        printf("%s\n", v);
    else {
        char *raw = cm_malloc(cm_b64_dec_max(vlen) + 1);
        long n = cm_b64_decode(v, vlen, raw);
        if (n < 0)
            rc = cmctl_fail(CMCTL_ERR_ANSWER, "the value is not valid base64");
        else
            fwrite(raw, 1, (size_t)n, stdout);
        free(raw);
    }
    json_object_put(o);
    return rc;
}

static int c_kv_set(struct cmctl *c, char **a)
{
    struct cm_buf val = {0};
    const char *file = cmctl_opt(c, "file");
    if ((a[1] != NULL) == (file != NULL))
        return cmctl_fail(CMCTL_ERR_USAGE, "kv set takes the value as an argument or --file, "
                                           "not both (see cmctl help kv)");
    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (f == NULL)
            return cmctl_fail(CMCTL_ERR_LOCAL, "cannot open %s: %s", file, strerror(errno));
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            cm_buf_append(&val, chunk, n);
        if (f != stdin)
            fclose(f);
    } else
        cm_buf_puts(&val, a[1]);
    char *b64 = cm_malloc(cm_b64_enc_len(val.len) + 1);
    size_t n = cm_b64_encode(val.data ? val.data : "", val.len, b64);
    b64[n] = '\0';
    cm_buf_free(&val);
    struct json_object *o = obj();
    json_object_object_add(o, "key", json_object_new_string(a[0]));
    json_object_object_add(o, "value", json_object_new_string_len(b64, (int)n));
    free(b64);
    return call(c, "POST", "/kv/set", o, true);
}

static int c_kv_del(struct cmctl *c, char **a)
{
    char *p = kv_path("/kv/delete/", a[0]);
    int rc = call(c, "POST", p, NULL, true);
    free(p);
    return rc;
}

static int c_kv_list(struct cmctl *c, char **a)
{
    (void)a;
    char q[4096] = "";
    q_add(q, sizeof q, "prefix", cmctl_opt(c, "prefix"));
    q_add(q, sizeof q, "count", cmctl_opt(c, "count"));
    if (cmctl_flag(c, "all"))
        return list_all(c, "/kv/list", "kvs", q);
    q_add(q, sizeof q, "marker", cmctl_opt(c, "marker"));
    char path[4200];
    snprintf(path, sizeof path, "/kv/list%s%s", q[0] ? "?" : "", q);
    return call(c, "GET", path, NULL, true);
}

static int c_bid_alloc(struct cmctl *c, char **a)
{
    uint64_t n;
    int rc = parse_u64(a[0], "count", UINT64_MAX, &n);
    if (rc)
        return rc;
    struct json_object *o = obj();
    add_u64(o, "count", n);
    return call(c, "POST", "/bid/alloc", o, true);
}

static int c_snapshot(struct cmctl *c, char **a)
{
    (void)a;
    return cmctl_snapshot(c);
}

static int c_migrate(struct cmctl *c, char **a)
{
    (void)a;
    return cmctl_migrate(c);
}

static int c_raw(struct cmctl *c, char **a)
{
    const char *m = a[0];
    if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0)
        return cmctl_fail(CMCTL_ERR_USAGE, "raw: the method is GET or POST");
    if (a[1][0] != '/')
        return cmctl_fail(CMCTL_ERR_USAGE, "raw: the path starts with /");
    struct cmctl_resp r;
    const char *body = a[2] ? a[2] : NULL;
    int rc = cmctl_request(c, m, a[1], NULL, body, body ? strlen(body) : 0, &r);
    if (rc)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "%s %s", m, a[1]);
    rc = cmctl_check(&r, what);
    if (rc == 0)
        print_body(&r);
    cmctl_resp_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* the command table and help                                                               */

struct command {
    const char *group;
    const char *sub; /* NULL for one-word commands */
    int min, max;    /* positional arguments after the command words; max -1: any */
    cmd_fn fn;
    const char *usage;
    const char *help;
};

static const struct command commands[] = {
    {"stat", NULL, 0, 0, c_stat, "stat [--json]",
     "Leader, raft state, replication progress (when asking the leader), space and volume "
     "statistics of the node asked. --json prints the raw GET /stat answer."},

    {"member", "add", 2, 2, c_member_add,
     "member add <peer-id> <raft-ip:port> [--learner] [--node-host <http-ip:port>]",
     "Add a member (POST /member/add): a voter, or a learner with --learner. --node-host is its "
     "HTTP address, used to forward requests to it."},
    {"member", "remove", 1, 1, c_member_remove, "member remove <peer-id>",
     "Remove a member (POST /member/remove). The leader cannot be removed: transfer first."},
    {"member", "promote", 1, 1, c_member_promote, "member promote <peer-id>",
     "Turn a learner into a voter (POST /member/promote)."},
    {"member", "transfer", 1, 1, c_member_transfer, "member transfer <peer-id>",
     "Move leadership to a voter (POST /leadership/transfer); returns at once."},

    {"config", "get", 1, 1, c_config_get, "config get <key> [--json]",
     "Print a config value (GET /config/get). Exit 4 when the key is not set."},
    {"config", "list", 0, 0, c_config_list, "config list [--json]",
     "Print every config entry as key<TAB>value lines, sorted (GET /config/list)."},
    {"config", "set", 2, 2, c_config_set, "config set <key> <value>",
     "Set a config value (POST /config/set)."},
    {"config", "del", 1, 1, c_config_del, "config del <key>",
     "Delete a config override (POST /config/delete); the file's default shows again."},

    {"task", "enable", 1, 1, c_task_enable, "task enable <switch>",
     "Set a task switch to Enable. Switches: disk_repair, balance, disk_drop, blob_delete, "
     "shard_repair, vol_inspect."},
    {"task", "disable", 1, 1, c_task_disable, "task disable <switch>",
     "Set a task switch to Disable."},
    {"task", "status", 0, 1, c_task_status, "task status [<switch>]",
     "Print the value (Enable/Disable) of one switch, or of all six."},

    {"disk", "alloc-id", 0, 0, c_disk_alloc_id, "disk alloc-id",
     "Allocate a disk id (POST /diskid/alloc)."},
    {"disk", "get", 1, 1, c_disk_get, "disk get <disk-id>", "Disk info (GET /disk/info)."},
    {"node", "add", 1, 1, c_node_add, "node add <node-info-json | @file | ->",
     "Register a blobnode (POST /node/add); answers its node id, the same id again for the "
     "same host and disk type."},
    {"node", "get", 1, 1, c_node_get, "node get <node-id>", "Node info (GET /node/info)."},
    {"node", "drop", 1, 1, c_node_drop, "node drop <node-id>",
     "Drop a node whose disks are all repaired or dropped (POST /node/drop)."},
    {"node", "topo", 0, 0, c_node_topo, "node topo", "Node sets and disk sets (GET /topo/info)."},
    {"disk", "list", 0, 0, c_disk_list,
     "disk list [--idc I] [--rack R] [--host-filter H] [--status S] [--marker M] [--count N] "
     "[--all]",
     "List disks (GET /disk/list). --all follows the markers and prints every page as one "
     "{\"disks\":[...]}. Status: a number or normal, broken, repairing, repaired, dropped."},
    {"disk", "add", 1, 1, c_disk_add, "disk add <disk-info-json | @file | ->",
     "Register a disk (POST /disk/add) from a DiskInfo JSON object."},
    {"disk", "set", 2, 2, c_disk_set, "disk set <disk-id> <status>",
     "Change a disk's status (POST /disk/set)."},
    {"disk", "heartbeat", 1, 1, c_disk_heartbeat, "disk heartbeat <json | @file | ->",
     "Send a disk heartbeat (POST /disk/heartbeat), body {\"disks\":[...]}."},
    {"disk", "drop", 1, 1, c_disk_drop, "disk drop <disk-id>",
     "Start dropping a disk (POST /disk/drop)."},
    {"disk", "dropped", 1, 1, c_disk_dropped, "disk dropped <disk-id>",
     "Mark a dropping disk dropped (POST /disk/dropped)."},
    {"disk", "dropping", 0, 0, c_disk_dropping, "disk dropping",
     "List the disks being dropped (GET /disk/droppinglist)."},
    {"disk", "access", 2, 2, c_disk_access, "disk access <disk-id> <true|false>",
     "Set or clear a disk's readonly flag (POST /disk/access)."},
    {"disk", "update", 1, 1, c_disk_update, "disk update <json | @file | ->",
     "Admin update of a disk record (POST /admin/disk/update)."},

    {"volume", "get", 1, 1, c_volume_get, "volume get <vid>", "Volume info (GET /volume/get)."},
    {"volume", "list", 0, 0, c_volume_list, "volume list [--marker M] [--count N] [--all]",
     "List volumes (GET /volume/list, count defaults to 10). --all pages to the end."},
    {"volume", "list-status", 1, 1, c_volume_list_status, "volume list-status <status>",
     "Volumes in one status (GET /v2/volume/list)."},
    {"volume", "alloc", 2, 2, c_volume_alloc, "volume alloc <code-mode> <count> [--init]",
     "Allocate volumes to this host (POST /volume/alloc)."},
    {"volume", "allocated", 2, 2, c_volume_allocated, "volume allocated <host-ip> <code-mode>",
     "Volumes leased to a host (GET /volume/allocated/list)."},
    {"volume", "retain", 1, -1, c_volume_retain, "volume retain <token>...",
     "Renew volume leases (POST /volume/retain)."},
    {"volume", "lock", 1, 1, c_volume_lock, "volume lock <vid>", "POST /volume/lock."},
    {"volume", "unlock", 1, 1, c_volume_unlock, "volume unlock <vid>", "POST /volume/unlock."},
    {"volume", "update", 3, 3, c_volume_update, "volume update <old-vuid> <new-vuid> <new-disk-id>",
     "Switch a unit to a new chunk (POST /volume/update)."},
    {"volume", "admin-update", 1, 1, c_volume_admin_update,
     "volume admin-update <json | @file | ->", "POST /admin/update/volume."},
    {"volume", "unit-update", 1, 1, c_volume_unit_update, "volume unit-update <json | @file | ->",
     "POST /admin/update/volume/unit."},
    {"volume", "unit-alloc", 1, 1, c_volume_unit_alloc, "volume unit-alloc <vuid>",
     "Reserve a new chunk for a unit (POST /volume/unit/alloc)."},
    {"volume", "unit-release", 2, 2, c_volume_unit_release, "volume unit-release <vuid> <disk-id>",
     "Release an old chunk (POST /volume/unit/release)."},
    {"volume", "units", 1, 1, c_volume_units, "volume units <disk-id>",
     "Units on a disk (GET /volume/unit/list)."},

    {"chunk", "report", 1, 1, c_chunk_report, "chunk report <file | ->",
     "Send a binary chunk report (POST /chunk/report, spec layout)."},
    {"chunk", "compact", 2, 2, c_chunk_compact, "chunk compact <vuid> <true|false>",
     "Set a unit's compacting flag (POST /chunk/set/compact)."},

    {"service", "register", 4, 4, c_service_register,
     "service register <cluster-id> <name> <http://ip:port> <idc> [--timeout-s S]",
     "Register a service node (POST /service/register); it expires S seconds (default 60) "
     "after its last register or heartbeat."},
    {"service", "unregister", 2, 2, c_service_unregister, "service unregister <name> <host>",
     "Remove a service node (POST /service/unregister). Exit 4 when it is not registered."},
    {"service", "heartbeat", 2, 2, c_service_heartbeat, "service heartbeat <name> <host>",
     "Renew a service node (POST /service/heartbeat). Exit 4 when it is not registered."},
    {"service", "get", 1, 1, c_service_get, "service get <name>",
     "The live (not expired) nodes of a service (GET /service/get)."},
    {"service", "list", 0, 0, c_service_list, "service list",
     "Every registered node, expired ones too (GET /service/list)."},

    {"kv", "get", 1, 1, c_kv_get, "kv get <key> [--base64 | --json]",
     "Print a value: its raw bytes (no newline added), base64 with --base64, or the answer "
     "with --json. Exit 4 when the key is absent."},
    {"kv", "set", 1, 2, c_kv_set, "kv set <key> (<value> | --file <path | ->)",
     "Store a value (POST /kv/set). Keys: 1..1024 bytes of UTF-8 without NUL; values: up to "
     "1 MiB."},
    {"kv", "del", 1, 1, c_kv_del, "kv del <key>",
     "Delete a key (POST /kv/delete/<key>); deleting an absent key succeeds."},
    {"kv", "list", 0, 0, c_kv_list, "kv list [--prefix P] [--marker M] [--count N] [--all]",
     "List keys in byte order (GET /kv/list): after --marker (exclusive), up to --count (10 by "
     "default, 1000 at most). --all pages to the end and prints one {\"kvs\":[...]}."},

    {"bid", "alloc", 1, 1, c_bid_alloc, "bid alloc <count>",
     "Allocate a range of blob ids (POST /bid/alloc, count 1..100000)."},

    {"snapshot", "save", 1, 1, c_snapshot, "snapshot save <file>",
     "Save GET /snapshot/dump of the first host that answers into <file> (checked, written "
     "atomically). Prints the applied index it corresponds to on stderr."},
    {"snapshot", "inspect", 1, 1, c_snapshot, "snapshot inspect <file>",
     "Check a snapshot file (magic, CRC) and list its sections."},
    {"snapshot", "restore", 2, 2, c_snapshot,
     "snapshot restore <file> <data-dir> --node-id N --peers id=ip:port,... [--cluster-id C] "
     "[--http id=ip:port,...]",
     "Offline: build the data directory of node N of a NEW cluster that starts with the state "
     "of <file>. Run it once per node with the same --peers (the raft addresses of all voters) "
     "and that node's --node-id, then start every node with a config whose raft_wal_dir is its "
     "directory, whose nodeId is N and whose cluster_id is C (default 1). The old cluster's "
     "member HTTP addresses are dropped: --http sets the new ones, else the new leader takes "
     "them from its config's `nodes` map. <data-dir> must be new or empty."},

    {"migrate", NULL, 0, 0, c_migrate,
     "migrate --from h1,... --out <file> [--lease-hosts ip,...] [--bid-margin N] [--id-margin N] "
     "| migrate --verify --from h1,... --to h1,...",
     "Read a running clustermgr (the reference or ours, either API generation) through its HTTP "
     "API and write its state as our snapshot stream, which `snapshot restore` turns into the "
     "data directories of a new cluster: disks, nodes, volumes and units, leases (of the "
     "registered services' hosts and --lease-hosts), services, config, KV. The new cluster's "
     "ids start above the source's: bids by --bid-margin (default 1000000000), disk ids, vids "
     "and node ids by --id-margin (default 1000). A source that is not a clustermgr, has no "
     "leader or keeps changing is refused and nothing is written. --verify compares two "
     "clusters kind by kind (rules in docs/operations.md) and exits 0 only when they agree. "
     "--secret signs the requests of both."},

    {"raw", NULL, 2, 3, c_raw, "raw <GET|POST> <path?query> [body]",
     "Send any request and print the answer; exit codes as for every command."},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char *const group_help[][2] = {
    {"stat", "cluster and node status"},
    {"member", "raft membership: add, remove, promote, transfer"},
    {"config", "the config store: get, list, set, del"},
    {"task", "background task switches: enable, disable, status"},
    {"disk", "disks: alloc-id, get, list, add, set, heartbeat, drop, dropped, dropping, "
             "access, update"},
    {"node", "blobnodes and copy sets (CubeFS v3.5.1+): add, get, drop, topo"},
    {"volume", "volumes and units: get, list, list-status, alloc, allocated, retain, lock, "
               "unlock, update, admin-update, unit-update, unit-alloc, unit-release, units"},
    {"chunk", "chunk reports and compaction: report, compact"},
    {"service", "service registry: register, unregister, heartbeat, get, list"},
    {"kv", "the KV store: get, set, del, list"},
    {"bid", "blob id ranges: alloc"},
    {"snapshot", "state snapshots: save, inspect, restore (offline)"},
    {"migrate", "move a running cluster's state into a new one; compare two clusters"},
    {"raw", "any request"},
};

static void print_wrapped(FILE *f, const char *text, int indent, int first_col)
{
    int col = first_col;
    bool line_start = true;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w == 0)
            break;
        if (!line_start && col + 1 + (int)w > 96) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            line_start = true;
        }
        if (!line_start) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)w, p);
        col += (int)w;
        p += w;
        line_start = false;
    }
    fputc('\n', f);
}

static void usage_all(FILE *f)
{
    fprintf(f,
            "cmctl %s: the admin command line of clustermgr\n\n"
            "usage: cmctl [--host h1,h2,...] [--timeout ms] [--verbose] <command> [args]\n\n"
            "commands:\n",
            CM_VERSION);
    for (size_t i = 0; i < sizeof group_help / sizeof group_help[0]; i++) {
        fprintf(f, "  %-9s ", group_help[i][0]);
        print_wrapped(f, group_help[i][1], 12, 12);
    }
    fprintf(f,
            "  help      cmctl help <command> [<subcommand>] describes a command\n\n"
            "global options:\n"
            "  --host h1,h2,...  clustermgr HTTP addresses (ip:port or http://ip:port), tried in\n"
            "                    order: a host that is down, has no leader (907), cannot reach\n"
            "                    the leader (502) or is shutting down (503) is skipped. Default:\n"
            "                    $CMCTL_HOST, else 127.0.0.1:9998.\n"
            "  --timeout ms      per-request timeout (default 15000)\n"
            "  --secret S        sign every request with the cluster's auth secret (spec 2.5;\n"
            "                    default $CMCTL_SECRET); needed when auth is enabled\n"
            "  --verbose         print each request on stderr\n\n"
            "exit codes: 0 ok; 1 the cluster answered with an error; 2 usage error; 3 no host\n"
            "could serve the request (all down, no leader, no quorum: 906/907/908, 502, 503;\n"
            "or a write's outcome is unknown); 4 not found (404); 5 local failure (file,\n"
            "damaged snapshot).\n");
}

static const char *group_summary(const char *group)
{
    for (size_t i = 0; i < sizeof group_help / sizeof group_help[0]; i++)
        if (strcmp(group_help[i][0], group) == 0)
            return group_help[i][1];
    return "";
}

/* A manual page for one command group, or for one command of it. */
static int help_for(const char *group, const char *sub)
{
    const struct command *match[64];
    size_t n = 0;
    for (size_t i = 0; i < N_COMMANDS && n < 64; i++) {
        const struct command *cm = &commands[i];
        if (strcmp(cm->group, group) == 0 && (!sub || !cm->sub || strcmp(cm->sub, sub) == 0))
            match[n++] = cm;
    }
    if (n == 0)
        return cmctl_fail(CMCTL_ERR_USAGE, "no command \"%s%s%s\" (see cmctl help)", group,
                          sub ? " " : "", sub ? sub : "");
    printf("NAME\n    cmctl %s%s%s - ", group, sub && match[0]->sub ? " " : "",
           sub && match[0]->sub ? sub : "");
    print_wrapped(stdout, n == 1 && match[0]->sub ? match[0]->help : group_summary(group), 8,
                  (int)(strlen(group) + strlen(sub && match[0]->sub ? sub : "") + 15));
    printf("\nSYNOPSIS\n");
    for (size_t i = 0; i < n; i++)
        printf("    cmctl [--host h1,h2,...] %s\n", match[i]->usage);
    printf("\nDESCRIPTION\n");
    for (size_t i = 0; i < n; i++) {
        printf("    %s\n        ", match[i]->usage);
        print_wrapped(stdout, match[i]->help, 8, 8);
        if (i + 1 < n)
            printf("\n");
    }
    printf("\nGLOBAL OPTIONS\n"
           "    --host h1,h2,...  hosts tried in order (default $CMCTL_HOST, else "
           "127.0.0.1:9998)\n"
           "    --timeout ms      per-request timeout (default 15000)\n"
           "    --secret S        sign requests with the auth secret (default $CMCTL_SECRET)\n"
           "    --verbose         print each request on stderr\n"
           "\nEXIT STATUS\n"
           "    0 success; 1 the cluster answered with an error; 2 usage error; 3 no host could\n"
           "    serve the request (down, no leader, no quorum, or a write's outcome unknown);\n"
           "    4 not found (404); 5 local failure (file, damaged snapshot).\n");
    return 0;
}

int cmctl_run(struct cmctl *c)
{
    if (c->n_pos == 0) {
        usage_all(cmctl_flag(c, "help") ? stdout : stderr);
        return cmctl_flag(c, "help") ? 0 : CMCTL_ERR_USAGE;
    }
    const char *g = c->pos[0];
    if (strcmp(g, "help") == 0) {
        if (c->n_pos == 1) {
            usage_all(stdout);
            return 0;
        }
        return help_for(c->pos[1], c->n_pos > 2 ? c->pos[2] : NULL);
    }
    if (strcmp(g, "version") == 0 || strcmp(g, "--version") == 0) {
        printf("cmctl %s\n", CM_VERSION);
        return 0;
    }
    bool group_known = false;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct command *cm = &commands[i];
        if (strcmp(cm->group, g) != 0)
            continue;
        group_known = true;
        int words = cm->sub ? 2 : 1;
        if (cm->sub && (c->n_pos < 2 || strcmp(cm->sub, c->pos[1]) != 0))
            continue;
        if (cmctl_flag(c, "help"))
            return help_for(g, cm->sub);
        int n = c->n_pos - words;
        if (n < cm->min || (cm->max >= 0 && n > cm->max)) {
            cmctl_fail(0, "wrong number of arguments; usage: cmctl %s", cm->usage);
            return CMCTL_ERR_USAGE;
        }
        return cm->fn(c, c->pos + words);
    }
    if (group_known) {
        if (cmctl_flag(c, "help") || c->n_pos == 1) {
            help_for(g, NULL);
            return cmctl_flag(c, "help") ? 0 : CMCTL_ERR_USAGE;
        }
        return cmctl_fail(CMCTL_ERR_USAGE, "unknown command \"%s %s\" (see cmctl help %s)", g,
                          c->pos[1], g);
    }
    return cmctl_fail(CMCTL_ERR_USAGE, "unknown command \"%s\" (see cmctl help)", g);
}

static void split_hosts(struct cmctl *c, const char *list)
{
    char *copy = cm_strdup(list);
    int cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    c->hosts = cm_calloc((size_t)cap, sizeof *c->hosts);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t)
            c->hosts[c->n_hosts++] = cm_strdup(t);
    }
    free(copy);
}

int main(int argc, char **argv)
{
    struct cmctl c = {.argv0 = argv[0], .timeout_ms = 15000};
    int rc = parse_args(&c, argc, argv);
    if (rc == 0) {
        const char *hosts = cmctl_opt(&c, "host");
        if (hosts == NULL)
            hosts = getenv("CMCTL_HOST");
        split_hosts(&c, hosts && hosts[0] ? hosts : "127.0.0.1:9998");
        const char *t = cmctl_opt(&c, "timeout");
        uint64_t ms;
        if (t && (rc = parse_u64(t, "--timeout", 86400000, &ms)) == 0)
            c.timeout_ms = (long)ms;
        c.json = cmctl_flag(&c, "json");
        c.secret = cmctl_opt(&c, "secret");
        if (c.secret == NULL || c.secret[0] == '\0')
            c.secret = getenv("CMCTL_SECRET");
        if (c.secret && c.secret[0] == '\0')
            c.secret = NULL;
        c.verbose = cmctl_flag(&c, "verbose");
    }
    if (rc == 0 && c.n_hosts == 0)
        rc = cmctl_fail(CMCTL_ERR_USAGE, "--host is empty");
    if (rc == 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = cmctl_run(&c);
        curl_global_cleanup();
    }
    for (int i = 0; i < c.n_hosts; i++)
        free(c.hosts[i]);
    free(c.hosts);
    free(c.pos);
    fflush(stdout);
    return rc;
}
