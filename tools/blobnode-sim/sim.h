/*
 * blobnode-sim: one process that plays a fleet of blobnodes against a clustermgr cluster.
 *
 * Two halves share the fleet state under one mutex:
 * - the client (client.c, the main thread): one libcurl multi handle drives every host's
 *   conversation with clustermgr -- list its registered disks, /diskid/alloc + /disk/add the rest,
 *   then heartbeat every period, report broken disks with /disk/set -- failing over between the
 *   clustermgr nodes given;
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
};

struct sdisk {
    struct shost *host;
    int index;
    char path[32];
    uint32_t id;    /* 0 until registered */
    uint8_t status; /* as clustermgr last told us */
    bool active;    /* registered, normal: heartbeated */
    bool failed;    /* could not be registered */
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

enum { PH_LIST = 0, PH_REGISTER, PH_RUN };

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
};

struct sim_counters {
    atomic_ullong create, create_refused, stat, release, readonly, readwrite, not_found;
    atomic_ullong hb_ok, hb_err, hb_disks, failovers, allocs, adds, reused, set_broken;
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

/* client.c: runs until stop (or the duration elapsed); returns the exit status */
int sim_client_run(struct sim *s);

uint64_t sim_rand(struct sim *s);
int64_t sim_now_ns(void);
uint64_t sim_mono_us(void);

#endif
