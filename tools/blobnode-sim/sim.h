/*
 * blobnode-sim: one process that plays a fleet of blobnodes against a clustermgr cluster.
 *
 * It speaks one of two protocol generations (--generation):
 * - current (the default): a CubeFS v3.5.1-v3.5.3 blobnode (blobnode/startup.go of v3.5.3): it
 *   registers as service BLOBNODE, adds itself as a node (/node/add) before its disks and sends
 *   node_id on /disk/add, then reports chunks, collects stale chunks and polls its task switch;
 * - 2022: the blobnode of the standalone 2022 blobstore: disks only, no service, no node.
 *
 * Two halves share the fleet state under one mutex:
 * - the client (client.c and current.c, the main thread): one libcurl multi handle drives every
 *   host's conversation with clustermgr -- list its registered disks, /diskid/alloc + /disk/add
 *   the rest, then heartbeat every period, report broken disks with /disk/set -- failing over
 *   between the clustermgr nodes given;
 * - the servers (serve.c): one libmicrohttpd daemon per host on its own loopback port, serving the
 *   blobnode chunk API that clustermgr calls (chunks are kept in memory) and the /sim/ control and
 *   debug routes.
 */
#ifndef CM_SIM_H
#define CM_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct MHD_Daemon;

struct chunk {
    uint64_t vuid;
    int64_t size;
    int64_t created_ns;
    uint8_t status; /* 1 normal, 2 readonly */
    bool dirty;     /* changed since the last /chunk/report (current generation) */
};

struct sdisk {
    struct shost *host;
    int index;
    char path[32];
    uint32_t id;    /* 0 until registered */
    uint8_t status; /* as clustermgr last told us */
    bool active;    /* registered, normal: heartbeated */
    bool failed;    /* could not be registered */
    bool need_add;  /* current generation: /disk/add is still to be sent */
    /* knobs */
    bool report_broken; /* send /disk/set status 2 (until 200 or 913) */
    bool silent;        /* leave it out of heartbeats */
    bool refuse_create;
    int delay_ms; /* answer the chunk API this late */
    /* space */
    int64_t size, used;
    struct chunk *chunks;
    size_t n_chunks, cap_chunks;
};

enum { GEN_2022 = 0, GEN_CURRENT };

/* A host's phases: 2022 starts at PH_LIST, current at PH_SERVICE (then PH_NODE, PH_LIST, ...).
 * PH_STOPPED is where a current host goes on an answer that makes a real blobnode exit. */
enum { PH_LIST = 0, PH_REGISTER, PH_RUN, PH_SERVICE, PH_NODE, PH_STOPPED };

struct shost {
    int index;
    char url[96]; /* http://ip:port */
    uint16_t port;
    const char *idc;
    char rack[32];
    struct sdisk *disks;
    int n_disks;
    struct MHD_Daemon *daemon;
    void *daemon_ctx;
    /* client side (main thread only) */
    int phase;
    uint32_t marker;
    uint32_t pending_id; /* allocated, not yet added */
    int cm;              /* index of the clustermgr node in use */
    bool busy;
    atomic_bool attention; /* a disk waits to be reported broken (set by the knob route) */
    uint64_t next_ms;      /* not before (backoff) */
    bool queued;           /* waiting for a request slot */
    struct shost *rq_next;
    uint64_t next_hb_ms; /* next heartbeat */
    /* what /sim/hosts shows, published by the main thread after every answer */
    atomic_int shown_phase;
    atomic_uint shown_node_id;
    atomic_bool shown_inspect, shown_svc_ok;
    /* current generation (main thread only) */
    uint32_t node_id;
    uint64_t next_svc_ms, next_report_ms, next_gc_ms, next_switch_ms;
    bool switch_set;      /* data_inspect was Not Found: write "false" */
    bool svc_failing;     /* the last service heartbeat failed (log changes only) */
    bool data_inspect;    /* the task switch as last read */
    bool gc_running;      /* a chunk garbage check is under way */
    bool gc_last;         /* the last request was the check's: let a heartbeat go next */
    int gc_disk;          /* disk being checked */
    struct gc_item *gc_q; /* chunks to compare with /volume/get */
    size_t gc_n, gc_i, gc_cap;
};

struct gc_item {
    struct sdisk *disk;
    uint64_t vuid;
};

struct sim_counters {
    atomic_ullong create, create_refused, stat, release, readonly, readwrite, not_found;
    atomic_ullong hb_ok, hb_err, hb_disks, failovers, allocs, adds, reused, set_broken;
    /* current generation */
    atomic_ullong svc_registers, svc_hb_ok, svc_hb_err, node_adds, reports, reported_chunks, readds,
        report_errors, gc_runs, gc_released, switch_polls, switch_sets, dropped, hosts_stopped;
};

struct sim {
    /* options */
    int n_hosts, n_disks, n_racks;
    char **idcs;
    int n_idcs;
    char **cms; /* clustermgr base URLs */
    int n_cms;
    char bind_ip[64];
    int port_base;
    int64_t interval_ms; /* 0: back to back */
    int64_t disk_size;
    int64_t chunk_size;
    uint32_t cluster_id;
    int concurrency;
    int timeout_ms;
    double duration_s; /* 0: until SIGTERM */
    bool serve;
    bool json;
    bool refuse_create_all;
    int delay_ms_all;
    uint64_t seed;
    int generation; /* GEN_CURRENT or GEN_2022 */
    /* current generation only */
    int64_t svc_interval_ms, report_interval_ms, gc_interval_ms, switch_interval_ms;
    int64_t protection_ms; /* chunks younger than this are left out of the garbage check */
    bool re_add_disk;
    int disk_type; /* 1 hdd, 2 ssd, 3 nvmessd */

    struct shost *hosts;
    pthread_mutex_t mu; /* fleet state shared with the servers */
    struct sim_counters c;
    atomic_int stop;

    /* measurement (main thread) */
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
    uint64_t measure_from_us;
    uint64_t hb_ok_at_start, hb_disks_at_start;
};

/* serve.c */
int sim_serve_start(struct sim *s, char *err, size_t errlen);
void sim_serve_stop(struct sim *s);
/* Close one host's port (a stopped blobnode). */
void sim_serve_stop_host(struct sim *s, struct shost *h);

/* client.c: runs until stop (or the duration elapsed); returns the exit status */
int sim_client_run(struct sim *s);

uint64_t sim_rand(struct sim *s);
int64_t sim_now_ns(void);
uint64_t sim_mono_us(void);

#endif
