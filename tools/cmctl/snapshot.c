/*
 * cmctl snapshot save | inspect | restore.
 *
 * save:    GET /snapshot/dump from the first host that answers, checked (magic, CRC) and
 *          written atomically to the file.
 * inspect: checks a file and lists its sections.
 * restore: builds a data directory from which a node of a NEW cluster starts with the state of
 *          the snapshot. The directory gets canonical raft's own files, written through raft's
 *          I/O layer (raft_uv): term 1 and a raft snapshot at index 1 whose configuration is
 *          --peers (all voters) and whose data is the snapshot stream; and the node's identity
 *          file node.json. Every member of the new cluster is restored from the same file with
 *          its own --node-id and the same --peers, then started with a config whose nodeId,
 *          cluster_id and raft address match.
 *
 *          The members section of the stream (HTTP addresses of the OLD cluster's members) is
 *          replaced: by --http id=ip:port,... when given, else emptied, in which case the new
 *          cluster's first leader records every member's address from the `nodes` map of its
 *          config file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include "../../src/fsm/cmd.h"
#include "../../src/fsm/fsm.h"
#include "../../src/util/codec.h"
#include "cmctl.h"

int cmctl_read_file(const char *path, struct cm_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return cmctl_fail(CMCTL_ERR_LOCAL, "cannot open %s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cm_buf_append(out, chunk, n);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad)
        return cmctl_fail(CMCTL_ERR_LOCAL, "cannot read %s", path);
    return 0;
}

int cmctl_write_file_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path) + 16;
    char *tmp = cm_malloc(plen);
    snprintf(tmp, plen, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = cmctl_fail(CMCTL_ERR_LOCAL, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = cmctl_fail(CMCTL_ERR_LOCAL, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        rc = cmctl_fail(CMCTL_ERR_LOCAL, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    return rc;
}

/* Walk the sections of a checked stream. Returns 0, or -1 when the layout is broken. */
struct section {
    uint8_t id;
    const uint8_t *data;
    uint64_t len;
};

static int sections(const struct cm_buf *s, struct section *out, uint32_t *n_out)
{
    struct cm_dec d;
    cm_dec_init(&d, s->data + 8, s->len - 12);
    uint32_t n = cm_get_u32(&d);
    if (d.err || n > CM_MOD_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        out[i].id = cm_get_u8(&d);
        out[i].len = cm_get_u64(&d);
        if (d.err || out[i].len > cm_dec_left(&d))
            return -1;
        out[i].data = d.p;
        d.p += out[i].len;
    }
    if (cm_dec_left(&d) != 0)
        return -1;
    *n_out = n;
    return 0;
}

static int load_checked(const char *path, struct cm_buf *s, uint32_t *crc)
{
    int rc = cmctl_read_file(path, s);
    if (rc)
        return rc;
    char err[256];
    if (cm_fsm_snap_check(s->data, s->len, crc, err, sizeof err) != 0)
        return cmctl_fail(CMCTL_ERR_LOCAL, "%s: %s", path, err);
    return 0;
}

static int snap_save(struct cmctl *c, const char *file)
{
    /* The dump is answered from the node's local state. A linearizable read on the same node
     * first makes it apply everything the cluster acknowledged before this command started,
     * so the saved file contains it (a small one: /config/list carries the whole KV store). */
    struct cmctl_resp r;
    int rc = cmctl_request(c, "GET", "/disk/list?count=1", NULL, NULL, 0, &r);
    if (rc)
        return rc;
    rc = cmctl_check(&r, "read barrier before the dump");
    cmctl_resp_free(&r);
    if (rc)
        return rc;
    char hostbuf[sizeof r.host];
    snprintf(hostbuf, sizeof hostbuf, "%s", r.host);
    char *host = hostbuf;
    int n_hosts = c->n_hosts;
    char **hosts = c->hosts;
    c->hosts = &host;
    c->n_hosts = 1;
    rc = cmctl_request(c, "GET", "/snapshot/dump", NULL, NULL, 0, &r);
    c->hosts = hosts;
    c->n_hosts = n_hosts;
    if (rc)
        return rc;
    rc = cmctl_check(&r, "snapshot dump");
    if (rc == 0) {
        char err[256];
        uint32_t crc;
        if (cm_fsm_snap_check(r.body.data ? r.body.data : "", r.body.len, &crc, err, sizeof err) !=
            0)
            rc = cmctl_fail(CMCTL_ERR_LOCAL, "the dump from %s is damaged: %s", r.host, err);
        else if ((rc = cmctl_write_file_atomic(file, r.body.data, r.body.len)) == 0)
            fprintf(stderr, "saved %zu bytes (applied index %s, %s, crc %08x) from %s to %s\n",
                    r.body.len, r.index[0] ? r.index : "?", r.name[0] ? r.name : "unnamed", crc,
                    r.host, file);
    }
    cmctl_resp_free(&r);
    return rc;
}

static int snap_inspect(struct cmctl *c, const char *file)
{
    (void)c;
    struct cm_buf s = {0};
    uint32_t crc;
    int rc = load_checked(file, &s, &crc);
    struct section sec[CM_MOD_MAX];
    uint32_t n = 0;
    if (rc == 0 && sections(&s, sec, &n) != 0)
        rc = cmctl_fail(CMCTL_ERR_LOCAL, "%s: the sections are malformed", file);
    if (rc == 0) {
        printf("format CMSNAP01, %zu bytes, crc %08x, %u sections\n", s.len, crc, n);
        for (uint32_t i = 0; i < n; i++) {
            struct cm_dec d;
            cm_dec_init(&d, sec[i].data, (size_t)sec[i].len);
            /* the node section starts with its two set counters, then its node count */
            if (sec[i].id == CM_MOD_NODE)
                cm_get_u64(&d);
            uint64_t count = sec[i].len ? cm_get_uvar(&d) : 0;
            const struct cm_module *m = cm_fsm_module(sec[i].id);
            const char *name = m ? m->name : "unknown";
            printf("  %-8s (module %u): %" PRIu64 " bytes, %" PRIu64 " entries\n", name, sec[i].id,
                   sec[i].len, count);
        }
    }
    cm_buf_free(&s);
    return rc;
}

/* "1=127.0.0.1:10110,2=..." */
struct addr_map {
    uint64_t id[64];
    char addr[64][128];
    int n;
};

static int parse_map(const char *text, const char *what, struct addr_map *m)
{
    m->n = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char idtext[32];
        size_t idlen = eq ? (size_t)(eq - p) : 0;
        if (eq == NULL || idlen == 0 || idlen >= sizeof idtext || len - idlen - 1 == 0 ||
            len - idlen - 1 >= sizeof m->addr[0] || m->n == 64)
            return cmctl_fail(CMCTL_ERR_USAGE, "%s: expected id=ip:port,... near \"%.*s\"", what,
                              (int)len, p);
        memcpy(idtext, p, idlen);
        idtext[idlen] = '\0';
        char *e;
        errno = 0;
        unsigned long long id = strtoull(idtext, &e, 10);
        if (*e || errno || id == 0 || idtext[0] == '-')
            return cmctl_fail(CMCTL_ERR_USAGE, "%s: \"%s\" is not a node id", what, idtext);
        for (int i = 0; i < m->n; i++)
            if (m->id[i] == id)
                return cmctl_fail(CMCTL_ERR_USAGE, "%s: node %llu is given twice", what, id);
        m->id[m->n] = id;
        memcpy(m->addr[m->n], eq + 1, len - idlen - 1);
        m->addr[m->n][len - idlen - 1] = '\0';
        if (strchr(m->addr[m->n], ':') == NULL)
            return cmctl_fail(CMCTL_ERR_USAGE, "%s: \"%s\" is not ip:port", what, m->addr[m->n]);
        m->n++;
        p += len + (end ? 1 : 0);
    }
    if (m->n == 0)
        return cmctl_fail(CMCTL_ERR_USAGE, "%s is empty", what);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The stream with the members section replaced by `http` (sorted by id), new CRC. */
static void rewrite_members(const struct section *sec, uint32_t n, const struct addr_map *http,
                            struct cm_buf *out)
{
    cm_buf_append(out, "CMSNAP01", 8);
    cm_put_u32(out, n);
    for (uint32_t i = 0; i < n; i++) {
        cm_put_u8(out, sec[i].id);
        if (sec[i].id != CM_MOD_MEMBERS) {
            cm_put_u64(out, sec[i].len);
            cm_buf_append(out, sec[i].data, (size_t)sec[i].len);
            continue;
        }
        struct cm_buf m = {0};
        uint64_t ids[64];
        int k = http ? http->n : 0;
        for (int j = 0; j < k; j++)
            ids[j] = http->id[j];
        qsort(ids, (size_t)k, sizeof ids[0], cmp_u64);
        cm_put_uvar(&m, (uint64_t)k);
        for (int j = 0; j < k; j++)
            for (int x = 0; x < k; x++)
                if (http->id[x] == ids[j]) {
                    cm_put_u64(&m, ids[j]);
                    cm_put_str(&m, http->addr[x]);
                }
        cm_put_u64(out, m.len);
        cm_buf_append(out, m.data, m.len);
        cm_buf_free(&m);
    }
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)out->data, (uInt)out->len);
    cm_put_u32(out, crc);
}

static int mkdir_p(const char *path)
{
    char *tmp = cm_strdup(path);
    int rc = 0;
    for (char *p = tmp + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(tmp, 0755) != 0 && errno != EEXIST)
        rc = -1;
    free(tmp);
    return rc;
}

static bool dir_empty_or_absent(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

struct put_ctx {
    bool done;
    int status;
};

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
    struct put_ctx *p = req->data;
    p->done = true;
    p->status = status;
}

static void io_closed(struct raft_io *io)
{
    *(bool *)io->data = true;
}

static int write_raft_dir(const char *dir, uint64_t node_id, const struct addr_map *peers,
                          struct cm_buf *stream)
{
    const char *self_addr = NULL;
    for (int i = 0; i < peers->n; i++)
        if (peers->id[i] == node_id)
            self_addr = peers->addr[i];
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_configuration conf;
    int rc = CMCTL_ERR_LOCAL, rv;
    bool closed = false;
    uv_loop_init(&loop);
    memset(&transport, 0, sizeof transport);
    memset(&io, 0, sizeof io);
    raft_configuration_init(&conf);
    if ((rv = raft_uv_tcp_init(&transport, &loop)) != 0) {
        cmctl_fail(0, "raft transport: %s", raft_strerror(rv));
        goto out_loop;
    }
    if ((rv = raft_uv_init(&io, &loop, dir, &transport)) != 0) {
        cmctl_fail(0, "raft storage in %s: %s", dir, io.errmsg);
        goto out_transport;
    }
    io.data = &closed;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *loaded = NULL;
    raft_index start;
    struct raft_entry *entries = NULL;
    size_t n_entries = 0;
    if ((rv = io.init(&io, node_id, self_addr)) != 0 ||
        (rv = io.load(&io, &term, &vote, &loaded, &start, &entries, &n_entries)) != 0) {
        cmctl_fail(0, "raft storage in %s: %s", dir, io.errmsg);
        goto out_io;
    }
    if (loaded != NULL || n_entries != 0 || term != 0) {
        cmctl_fail(0, "%s already holds raft state; refusing to overwrite it", dir);
        goto out_io;
    }
    for (int i = 0; i < peers->n; i++)
        if (raft_configuration_add(&conf, peers->id[i], peers->addr[i], RAFT_VOTER) != 0) {
            cmctl_fail(0, "cannot build the raft configuration");
            goto out_io;
        }
    if ((rv = io.set_term(&io, 1)) != 0) {
        cmctl_fail(0, "writing the raft term in %s: %s", dir, io.errmsg);
        goto out_io;
    }
    struct raft_buffer buf = {.base = stream->data, .len = stream->len};
    struct raft_snapshot snap = {
        .index = 1,
        .term = 1,
        .configuration = conf,
        .configuration_index = 1,
        .bufs = &buf,
        .n_bufs = 1,
    };
    struct put_ctx put = {0};
    struct raft_io_snapshot_put req = {.data = &put};
    if ((rv = io.snapshot_put(&io, 0, &req, &snap, put_cb)) != 0) {
        cmctl_fail(0, "writing the raft snapshot in %s: %s", dir, io.errmsg);
        goto out_io;
    }
    while (!put.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    if (!put.done || put.status != 0) {
        cmctl_fail(0, "writing the raft snapshot in %s failed: %s", dir,
                   put.done ? raft_strerror(put.status) : "the I/O loop stopped");
        goto out_io;
    }
    rc = 0;
out_io:
    io.close(&io, io_closed);
    while (!closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    raft_uv_close(&io);
out_transport:
    raft_uv_tcp_close(&transport);
out_loop:
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    raft_configuration_close(&conf);
    return rc;
}

static int snap_restore(struct cmctl *c, const char *file, const char *dir)
{
    const char *node = cmctl_opt(c, "node-id");
    const char *peers_text = cmctl_opt(c, "peers");
    const char *http_text = cmctl_opt(c, "http");
    const char *cluster_text = cmctl_opt(c, "cluster-id");
    if (node == NULL || peers_text == NULL)
        return cmctl_fail(CMCTL_ERR_USAGE, "snapshot restore needs --node-id and --peers (see "
                                           "cmctl help snapshot)");
    char *e;
    errno = 0;
    unsigned long long node_id = strtoull(node, &e, 10);
    if (*e || errno || node_id == 0 || node[0] == '-')
        return cmctl_fail(CMCTL_ERR_USAGE, "--node-id: \"%s\" is not a node id", node);
    unsigned long long cluster_id = 1;
    if (cluster_text) {
        errno = 0;
        cluster_id = strtoull(cluster_text, &e, 10);
        if (*e || errno || cluster_id > UINT32_MAX || cluster_text[0] == '-')
            return cmctl_fail(CMCTL_ERR_USAGE, "--cluster-id: \"%s\" is not a cluster id",
                              cluster_text);
    }
    struct addr_map peers, http;
    int rc = parse_map(peers_text, "--peers", &peers);
    if (rc)
        return rc;
    if (http_text && (rc = parse_map(http_text, "--http", &http)) != 0)
        return rc;
    bool in = false;
    for (int i = 0; i < peers.n; i++)
        in |= peers.id[i] == node_id;
    if (!in)
        return cmctl_fail(CMCTL_ERR_USAGE, "--node-id %llu is not one of --peers", node_id);
    if (!dir_empty_or_absent(dir))
        return cmctl_fail(CMCTL_ERR_LOCAL,
                          "%s exists and is not empty; restore only into a new directory", dir);

    struct cm_buf s = {0}, out = {0};
    uint32_t crc;
    struct section sec[CM_MOD_MAX];
    uint32_t n;
    if ((rc = load_checked(file, &s, &crc)) != 0)
        goto done;
    if (sections(&s, sec, &n) != 0) {
        rc = cmctl_fail(CMCTL_ERR_LOCAL, "%s: the sections are malformed", file);
        goto done;
    }
    rewrite_members(sec, n, http_text ? &http : NULL, &out);
    if (mkdir_p(dir) != 0) {
        rc = cmctl_fail(CMCTL_ERR_LOCAL, "cannot create %s: %s", dir, strerror(errno));
        goto done;
    }
    if ((rc = write_raft_dir(dir, node_id, &peers, &out)) != 0)
        goto done;
    char ident[160];
    int len =
        snprintf(ident, sizeof ident, "{\"node_id\":%llu,\"cluster_id\":%llu,\"member\":true}\n",
                 node_id, cluster_id);
    size_t plen = strlen(dir) + 16;
    char *path = cm_malloc(plen);
    snprintf(path, plen, "%s/node.json", dir);
    rc = cmctl_write_file_atomic(path, ident, (size_t)len);
    free(path);
    if (rc == 0)
        fprintf(stderr,
                "restored %s into %s: node %llu of cluster %llu, %d voter(s); start the node "
                "with a config whose raft_wal_dir is this directory\n",
                file, dir, node_id, cluster_id, peers.n);
done:
    cm_buf_free(&s);
    cm_buf_free(&out);
    return rc;
}

int cmctl_snapshot(struct cmctl *c)
{
    const char *sub = c->n_pos > 1 ? c->pos[1] : "";
    if (strcmp(sub, "save") == 0 && c->n_pos == 3)
        return snap_save(c, c->pos[2]);
    if (strcmp(sub, "inspect") == 0 && c->n_pos == 3)
        return snap_inspect(c, c->pos[2]);
    if (strcmp(sub, "restore") == 0 && c->n_pos == 4)
        return snap_restore(c, c->pos[2], c->pos[3]);
    return cmctl_fail(CMCTL_ERR_USAGE, "usage: cmctl snapshot save <file> | inspect <file> | "
                                       "restore <file> <data-dir> --node-id N --peers "
                                       "id=ip:port,... (see cmctl help snapshot)");
}
