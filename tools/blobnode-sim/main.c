/* blobnode-sim: a simulated blobnode fleet for clustermgr (see sim.h and --help). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../src/util/buf.h"
#include "../../src/util/timeutil.h"
#include "sim.h"

static struct sim *the_sim; /* for the signal handler only */

static const char usage[] =
    "usage: blobnode-sim [options]\n"
    "\n"
    "Plays H blobnode hosts with D disks each against a clustermgr cluster: every host gets its\n"
    "own loopback HTTP port serving the blobnode chunk API, registers its disks through\n"
    "/diskid/alloc and /disk/add (reusing disks already registered for its host), and\n"
    "heartbeats them every period with changing space numbers. SIGTERM or SIGINT stop it.\n"
    "\n"
    "Protocol generations:\n"
    "  current (default)  a CubeFS v3.5.1-v3.5.3 blobnode. Each host registers as service\n"
    "                     BLOBNODE (/service/register, then /service/heartbeat), adds itself\n"
    "                     with POST /node/add (disk_type, role 1) and sends the node_id answered\n"
    "                     on every /disk/add; lists its disks with every filter of the Go\n"
    "                     client, allocates ids with an empty body; then besides the disk\n"
    "                     heartbeat it sends /chunk/report (application/octet-stream) with the\n"
    "                     chunks changed, runs the chunk garbage check (/volume/unit/list and\n"
    "                     /volume/get: a chunk older than the protection period whose epoch is\n"
    "                     below clustermgr's is released) and polls /config/get?key=data_inspect\n"
    "                     (writing \"false\" when Not Found). A heartbeat answer with status 2-4\n"
    "                     is a broken disk (reported with /disk/set), 5 a dropped one (no longer\n"
    "                     used). An answer that makes a real blobnode exit stops that host: it\n"
    "                     closes its port (when every host stopped, the simulator exits with\n"
    "                     status 1). Those are a refused /service/register, /disk/list or\n"
    "                     /diskid/alloc, a /node/add answered other than 200 or 201, a registered\n"
    "                     normal disk the host does not have, and with --re-add-disk a /disk/add\n"
    "                     answered other than 200 or 201. Transport errors, 5xx and 906-908\n"
    "                     are retried on the next clustermgr node in both generations; at start\n"
    "                     the log notes those a real blobnode would exit on (all but 500, 502,\n"
    "                     504 and 908). Node ids are idempotent server-side, so a restarted\n"
    "                     simulator gets its hosts' old node ids.\n"
    "  2022               the standalone 2022 blobstore's blobnode: disks only (list, alloc,\n"
    "                     add, heartbeat, /disk/set), no service, node, report or switch.\n"
    "\n"
    "      --generation G      current or 2022 (default current)\n"
    "  -c, --cm LIST           clustermgr HTTP addresses, comma separated\n"
    "                          (default 127.0.0.1:9998,127.0.0.1:9999,127.0.0.1:10000)\n"
    "  -H, --hosts N           hosts (default 3)\n"
    "  -D, --disks N           disks per host (default 6)\n"
    "      --idc LIST          IDCs, hosts spread round-robin (default z0)\n"
    "      --racks N           racks per IDC, hosts spread round-robin (default 2)\n"
    "  -p, --port-base P       host i listens on P+i (default 18000)\n"
    "      --bind IP           listen address of the hosts (default 127.0.0.1)\n"
    "  -i, --interval SEC      disk heartbeat period, fractions allowed; 0 = back to back\n"
    "                          (default 30)\n"
    "      --disk-size BYTES   size of every disk (default 1099511627776, 1 TiB)\n"
    "      --chunk-size BYTES  chunk size used for the numbers sent (default 16777216)\n"
    "      --cluster-id N      cluster id sent on /disk/add (default 1)\n"
    "      --concurrency N     requests in flight at most (default 256)\n"
    "      --timeout-ms N      per request (default 15000)\n"
    "  -d, --duration SEC      stop SEC seconds after every host registered, print a heartbeat\n"
    "                          report (requests/s, disks/s, latency) and exit (default: run)\n"
    "      --no-serve          do not open the hosts' ports (load generation only)\n"
    "      --json              print the report as one JSON line\n"
    "      --broken LIST       disks (HOST.DISK, 0-based, comma separated) reported broken\n"
    "                          with /disk/set right after registration\n"
    "      --silent LIST       disks (HOST.DISK) never heartbeated: they expire\n"
    "      --refuse-create     every disk refuses chunk creation\n"
    "      --delay-ms N        every disk answers the chunk API N ms late\n"
    "      --seed N            random seed (default: from the clock)\n"
    "  current generation only (fractions of seconds allowed):\n"
    "      --service-interval SEC  /service/heartbeat period (default 30; the timeout is 60)\n"
    "      --report-interval SEC   /chunk/report period (default 60)\n"
    "      --gc-interval SEC       chunk garbage check period (default 1800)\n"
    "      --chunk-protection SEC  chunks younger than this are never released (default 172800)\n"
    "      --switch-interval SEC   /config/get?key=data_inspect period (default 15)\n"
    "      --disk-type T       the node's disk type: hdd, ssd, nvmessd or 1-3 (default hdd)\n"
    "      --re-add-disk       /disk/add every normal disk again at start (201 accepted) and\n"
    "                          stop the host on any other failure (the re_add_disk switch)\n"
    "  -h, --help              this text\n"
    "\n"
    "Every host port also serves the fleet-wide debug and control routes:\n"
    "  GET  /sim/stats                 counters: chunk API calls, heartbeats, registrations\n"
    "  GET  /sim/disks                 every disk with its id, host, path, status and knobs\n"
    "  GET  /sim/chunks[?diskid=N]     the chunks kept in memory\n"
    "  GET  /sim/hosts                 every host: phase, node id, service, data_inspect\n"
    "  POST /sim/disk/<id>?broken=1    report the disk broken (/disk/set status 2), stop it\n"
    "  POST /sim/disk/<id>?silent=1|0  stop/resume heartbeating it (it expires)\n"
    "  POST /sim/disk/<id>?refuse_create=1|0   refuse chunk creation\n"
    "  POST /sim/disk/<id>?delay_ms=N  answer its chunk API N ms late\n";

uint64_t sim_rand(struct sim *s)
{
    /* xorshift64*; only the main thread draws */
    uint64_t x = s->seed;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->seed = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t sim_now_ns(void)
{
    return cm_now_ns();
}

uint64_t sim_mono_us(void)
{
    return cm_mono_us();
}

static void on_signal(int sig)
{
    (void)sig;
    if (the_sim)
        atomic_store(&the_sim->stop, 1);
}

static char **split(const char *list, int *n)
{
    char *copy = cm_strdup(list);
    char **out = NULL;
    *n = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        out = cm_realloc(out, (size_t)(*n + 1) * sizeof *out);
        out[(*n)++] = cm_strdup(t);
    }
    free(copy);
    return out;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool num(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* As the Go decoder takes a DiskType: a name (any case) or 1-3. */
static bool disk_type(const char *v, int *out)
{
    static const char *const names[] = {"hdd", "ssd", "nvmessd"};
    for (int i = 0; i < 3; i++)
        if (strcasecmp(v, names[i]) == 0 || (v[0] == '1' + i && v[1] == '\0')) {
            *out = i + 1;
            return true;
        }
    return false;
}

int main(int argc, char **argv)
{
    static struct sim sim;
    struct sim *s = &sim;
    s->n_hosts = 3;
    s->n_disks = 6;
    s->n_racks = 2;
    s->port_base = 18000;
    s->interval_ms = 30000;
    s->disk_size = 1099511627776LL;
    s->chunk_size = 16777216;
    s->cluster_id = 1;
    s->concurrency = 256;
    s->timeout_ms = 15000;
    s->serve = true;
    s->seed = (uint64_t)cm_now_ns() | 1;
    s->generation = GEN_CURRENT;
    s->svc_interval_ms = 30000;
    s->report_interval_ms = 60000;
    s->gc_interval_ms = 1800000;
    s->protection_ms = 172800000;
    s->switch_interval_ms = 15000;
    s->disk_type = 1;
    snprintf(s->bind_ip, sizeof s->bind_ip, "127.0.0.1");
    const char *cms = "127.0.0.1:9998,127.0.0.1:9999,127.0.0.1:10000", *idcs = "z0";

    enum {
        O_IDC = 256,
        O_RACKS,
        O_BIND,
        O_SIZE,
        O_CHUNK,
        O_CID,
        O_CONC,
        O_TMO,
        O_NOSERVE,
        O_JSON,
        O_REFUSE,
        O_DELAY,
        O_SEED,
        O_BROKEN,
        O_SILENT,
        O_GEN,
        O_SVC_INT,
        O_REPORT_INT,
        O_GC_INT,
        O_PROTECT,
        O_SWITCH_INT,
        O_DISK_TYPE,
        O_READD
    };
    const char *broken = NULL, *silent = NULL;
    int rc_early = 0;
    static const struct option opts[] = {{"cm", required_argument, 0, 'c'},
                                         {"hosts", required_argument, 0, 'H'},
                                         {"disks", required_argument, 0, 'D'},
                                         {"idc", required_argument, 0, O_IDC},
                                         {"racks", required_argument, 0, O_RACKS},
                                         {"port-base", required_argument, 0, 'p'},
                                         {"bind", required_argument, 0, O_BIND},
                                         {"interval", required_argument, 0, 'i'},
                                         {"disk-size", required_argument, 0, O_SIZE},
                                         {"chunk-size", required_argument, 0, O_CHUNK},
                                         {"cluster-id", required_argument, 0, O_CID},
                                         {"concurrency", required_argument, 0, O_CONC},
                                         {"timeout-ms", required_argument, 0, O_TMO},
                                         {"duration", required_argument, 0, 'd'},
                                         {"no-serve", no_argument, 0, O_NOSERVE},
                                         {"json", no_argument, 0, O_JSON},
                                         {"refuse-create", no_argument, 0, O_REFUSE},
                                         {"delay-ms", required_argument, 0, O_DELAY},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"broken", required_argument, 0, O_BROKEN},
                                         {"silent", required_argument, 0, O_SILENT},
                                         {"generation", required_argument, 0, O_GEN},
                                         {"service-interval", required_argument, 0, O_SVC_INT},
                                         {"report-interval", required_argument, 0, O_REPORT_INT},
                                         {"gc-interval", required_argument, 0, O_GC_INT},
                                         {"chunk-protection", required_argument, 0, O_PROTECT},
                                         {"switch-interval", required_argument, 0, O_SWITCH_INT},
                                         {"disk-type", required_argument, 0, O_DISK_TYPE},
                                         {"re-add-disk", no_argument, 0, O_READD},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "c:H:D:p:i:d:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'c':
            cms = optarg;
            break;
        case 'H':
            ok = num(optarg, 1, 100000, &v), s->n_hosts = (int)v;
            break;
        case 'D':
            ok = num(optarg, 1, 1000, &v), s->n_disks = (int)v;
            break;
        case O_IDC:
            idcs = optarg;
            break;
        case O_RACKS:
            ok = num(optarg, 1, 100000, &v), s->n_racks = (int)v;
            break;
        case 'p':
            ok = num(optarg, 1, 65535, &v), s->port_base = (int)v;
            break;
        case O_BIND:
            ok = strlen(optarg) <= 45;
            if (ok)
                snprintf(s->bind_ip, sizeof s->bind_ip, "%s", optarg);
            break;
        case 'i':
            ok = num(optarg, 0, 86400, &v), s->interval_ms = (int64_t)(v * 1000);
            break;
        case O_SIZE:
            ok = num(optarg, 0, 9e18, &v), s->disk_size = (int64_t)v;
            break;
        case O_CHUNK:
            ok = num(optarg, 1, 1e15, &v), s->chunk_size = (int64_t)v;
            break;
        case O_CID:
            ok = num(optarg, 0, 4294967295.0, &v), s->cluster_id = (uint32_t)v;
            break;
        case O_CONC:
            ok = num(optarg, 1, 100000, &v), s->concurrency = (int)v;
            break;
        case O_TMO:
            ok = num(optarg, 1, 3600000, &v), s->timeout_ms = (int)v;
            break;
        case 'd':
            ok = num(optarg, 0, 1e7, &v), s->duration_s = v;
            break;
        case O_NOSERVE:
            s->serve = false;
            break;
        case O_JSON:
            s->json = true;
            break;
        case O_REFUSE:
            s->refuse_create_all = true;
            break;
        case O_DELAY:
            ok = num(optarg, 0, 600000, &v), s->delay_ms_all = (int)v;
            break;
        case O_SEED:
            ok = num(optarg, 1, 1.8e19, &v), s->seed = (uint64_t)v;
            break;
        case O_BROKEN:
            broken = optarg;
            break;
        case O_SILENT:
            silent = optarg;
            break;
        case O_GEN:
            ok = strcmp(optarg, "current") == 0 || strcmp(optarg, "2022") == 0;
            s->generation = strcmp(optarg, "2022") == 0 ? GEN_2022 : GEN_CURRENT;
            break;
        case O_SVC_INT:
            ok = num(optarg, 0.001, 86400, &v), s->svc_interval_ms = (int64_t)(v * 1000);
            break;
        case O_REPORT_INT:
            ok = num(optarg, 0.001, 86400, &v), s->report_interval_ms = (int64_t)(v * 1000);
            break;
        case O_GC_INT:
            ok = num(optarg, 0.001, 864000, &v), s->gc_interval_ms = (int64_t)(v * 1000);
            break;
        case O_PROTECT:
            ok = num(optarg, 0, 1e8, &v), s->protection_ms = (int64_t)(v * 1000);
            break;
        case O_SWITCH_INT:
            ok = num(optarg, 0.001, 86400, &v), s->switch_interval_ms = (int64_t)(v * 1000);
            break;
        case O_DISK_TYPE:
            ok = disk_type(optarg, &s->disk_type);
            break;
        case O_READD:
            s->re_add_disk = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "blobnode-sim: bad value \"%s\" for an option\n%s", optarg, usage);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "blobnode-sim: unexpected argument \"%s\"\n%s", argv[optind], usage);
        return 2;
    }
    if (s->port_base + s->n_hosts - 1 > 65535) {
        fprintf(stderr, "blobnode-sim: %d hosts from port %d do not fit below 65536\n", s->n_hosts,
                s->port_base);
        return 2;
    }
    char **cm_list = split(cms, &s->n_cms);
    s->idcs = split(idcs, &s->n_idcs);
    if (s->n_cms == 0 || s->n_idcs == 0) {
        fprintf(stderr, "blobnode-sim: --cm and --idc need at least one entry\n");
        free_list(cm_list, s->n_cms);
        free_list(s->idcs, s->n_idcs);
        return 2;
    }
    s->cms = cm_calloc((size_t)s->n_cms, sizeof *s->cms);
    for (int i = 0; i < s->n_cms; i++) {
        const char *a = cm_list[i];
        bool scheme = strncmp(a, "http://", 7) == 0 || strncmp(a, "https://", 8) == 0;
        size_t n = strlen(a) + 8;
        s->cms[i] = cm_malloc(n);
        snprintf(s->cms[i], n, "%s%s", scheme ? "" : "http://", a);
    }
    free_list(cm_list, s->n_cms);

    pthread_mutex_init(&s->mu, NULL);
    s->hosts = cm_calloc((size_t)s->n_hosts, sizeof *s->hosts);
    for (int i = 0; i < s->n_hosts; i++) {
        struct shost *h = &s->hosts[i];
        h->index = i;
        h->port = (uint16_t)(s->port_base + i);
        snprintf(h->url, sizeof h->url, "http://%.45s:%u", s->bind_ip, h->port);
        h->idc = s->idcs[i % s->n_idcs];
        snprintf(h->rack, sizeof h->rack, "rack%d", (i / s->n_idcs) % s->n_racks);
        h->cm = i % s->n_cms;
        h->phase = s->generation == GEN_CURRENT ? PH_SERVICE : PH_LIST;
        atomic_store(&h->shown_phase, h->phase);
        h->n_disks = s->n_disks;
        h->disks = cm_calloc((size_t)s->n_disks, sizeof *h->disks);
        for (int k = 0; k < s->n_disks; k++) {
            struct sdisk *d = &h->disks[k];
            d->host = h;
            d->index = k;
            snprintf(d->path, sizeof d->path, "/data/disk%d", k + 1);
            d->size = s->disk_size;
            d->used = s->disk_size / 20 + (int64_t)(sim_rand(s) % (uint64_t)(s->disk_size / 4 + 1));
        }
    }

    for (int pass = 0; pass < 2; pass++) {
        const char *list = pass ? silent : broken;
        int n = 0;
        char **v = list ? split(list, &n) : NULL;
        for (int i = 0; i < n; i++) {
            int h, k, used = 0;
            if (sscanf(v[i], "%d.%d%n", &h, &k, &used) != 2 || v[i][used] || h < 0 ||
                h >= s->n_hosts || k < 0 || k >= s->n_disks) {
                fprintf(stderr, "blobnode-sim: no disk \"%s\" (HOST.DISK, 0-based)\n", v[i]);
                rc_early = 2;
                continue;
            }
            if (pass)
                s->hosts[h].disks[k].silent = true;
            else {
                s->hosts[h].disks[k].report_broken = true;
                atomic_store(&s->hosts[h].attention, true);
            }
        }
        free_list(v, n);
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    the_sim = s;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int rc = rc_early;
    char err[256];
    if (rc) {
        /* a bad --broken or --silent entry: already reported */
    } else if (s->serve && sim_serve_start(s, err, sizeof err) != 0) {
        fprintf(stderr, "blobnode-sim: %s\n", err);
        rc = 1;
    } else {
        fprintf(stderr,
                "blobnode-sim: %d hosts x %d disks (%s ports %d-%d), clustermgr %s%s, "
                "heartbeat every %.3g s",
                s->n_hosts, s->n_disks, s->serve ? "serving on" : "not serving,", s->port_base,
                s->port_base + s->n_hosts - 1, s->cms[0], s->n_cms > 1 ? " (+ failover)" : "",
                s->interval_ms / 1000.0);
        if (s->generation == GEN_CURRENT)
            fprintf(stderr,
                    "; current blobnode protocol (v3.5.1-v3.5.3): service heartbeat every "
                    "%.6g s, chunk report every %.6g s, chunk check every %.6g s, switch poll "
                    "every %.6g s%s",
                    s->svc_interval_ms / 1000.0, s->report_interval_ms / 1000.0,
                    s->gc_interval_ms / 1000.0, s->switch_interval_ms / 1000.0,
                    s->re_add_disk ? ", re_add_disk" : "");
        fprintf(stderr, "\n");
        rc = sim_client_run(s);
    }
    sim_serve_stop(s);
    curl_global_cleanup();
    for (int i = 0; i < s->n_hosts; i++) {
        for (int k = 0; k < s->hosts[i].n_disks; k++)
            free(s->hosts[i].disks[k].chunks);
        free(s->hosts[i].disks);
    }
    free(s->hosts);
    free(s->lat_us);
    free_list(s->cms, s->n_cms);
    free_list(s->idcs, s->n_idcs);
    pthread_mutex_destroy(&s->mu);
    fprintf(stderr, "blobnode-sim: stopped\n");
    return rc;
}
