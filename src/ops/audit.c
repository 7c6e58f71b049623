/*
 * The audit log: one JSON line per write request in <auditlog.logdir>/audit.log.
 *
 * HTTP threads only format a line and append it to a shared buffer under a mutex; a writer
 * thread takes the buffer every 200 ms (or as soon as 64 KiB are waiting) and writes it with one
 * write(2), so a slow disk never stalls a request. Should the disk fall more than 64 MiB behind,
 * new lines are dropped and counted (clustermgr_audit_dropped_total) instead of growing without
 * bound. At 256 MiB the file is rotated: audit.log.1 .. audit.log.4 keep the previous ones.
 * Lines still queued when the process is killed with SIGKILL (at most 200 ms worth) are lost; a
 * clean stop writes everything.
 *
 * Process-wide state, like the main log: it serves the HTTP threads of the one node a process
 * runs, and outlives the node's loop (requests complete after the loop stopped).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/config.h"
#include "../util/buf.h"
#include "ops.h"

#define FLUSH_BYTES (64u << 10)
#define MAX_PENDING (64u << 20)
#define ROTATE_BYTES (256ull << 20)
#define KEEP_FILES 4
#define FLUSH_MS 200

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cm_buf pending;
    atomic_bool open;
    bool stop;
    pthread_t thread;
    int fd;
    uint64_t size;
    char dir[CM_PATH_MAX];
    atomic_ullong lines, dropped;
} audit = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static int open_file(char *err, size_t errlen)
{
    char path[CM_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/audit.log", audit.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        if (err)
            snprintf(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    audit.size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    audit.fd = fd;
    return 0;
}

static void rotate(void)
{
    char from[CM_PATH_MAX + 64], to[CM_PATH_MAX + 64];
    close(audit.fd);
    audit.fd = -1;
    for (int k = KEEP_FILES - 1; k >= 1; k--) {
        snprintf(from, sizeof from, "%s/audit.log.%d", audit.dir, k);
        snprintf(to, sizeof to, "%s/audit.log.%d", audit.dir, k + 1);
        rename(from, to);
    }
    snprintf(from, sizeof from, "%s/audit.log", audit.dir);
    snprintf(to, sizeof to, "%s/audit.log.1", audit.dir);
    rename(from, to);
    if (open_file(NULL, 0) != 0)
        fprintf(stderr, "clustermgr: cannot reopen the audit log in %s: %s\n", audit.dir,
                strerror(errno));
}

static void write_all(const char *p, size_t len)
{
    if (audit.fd < 0)
        return;
    while (len) {
        ssize_t w = write(audit.fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "clustermgr: writing the audit log failed: %s\n", strerror(errno));
            return;
        }
        p += w;
        len -= (size_t)w;
        audit.size += (uint64_t)w;
    }
    if (audit.size >= ROTATE_BYTES)
        rotate();
}

static void *writer(void *arg)
{
    (void)arg;
    struct cm_buf batch = {0};
    pthread_mutex_lock(&audit.mu);
    for (;;) {
        if (audit.pending.len < FLUSH_BYTES && !audit.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += FLUSH_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&audit.cv, &audit.mu, &ts);
        }
        /* swap buffers: the HTTP threads go on appending to an empty one */
        struct cm_buf t = audit.pending;
        audit.pending = batch;
        batch = t;
        bool stop = audit.stop;
        pthread_mutex_unlock(&audit.mu);
        if (batch.len) {
            write_all(batch.data, batch.len);
            batch.len = 0;
        }
        pthread_mutex_lock(&audit.mu);
        if (stop && audit.pending.len == 0)
            break;
    }
    pthread_mutex_unlock(&audit.mu);
    cm_buf_free(&batch);
    return NULL;
}

static int mkdirs(const char *dir, char *err, size_t errlen)
{
    char tmp[CM_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create the audit log directory %s: %s", tmp,
                     strerror(errno));
            return -1;
        }
        *p = c;
        if (c == '\0')
            return 0;
    }
}

int cm_audit_open(const char *dir, char *err, size_t errlen)
{
    if (dir == NULL || dir[0] == '\0')
        return 0;
    snprintf(audit.dir, sizeof audit.dir, "%s", dir);
    if (mkdirs(audit.dir, err, errlen) != 0 || open_file(err, errlen) != 0)
        return -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&audit.cv, &ca);
    pthread_condattr_destroy(&ca);
    audit.stop = false;
    if (pthread_create(&audit.thread, NULL, writer, NULL) != 0) {
        snprintf(err, errlen, "cannot start the audit log writer");
        close(audit.fd);
        audit.fd = -1;
        return -1;
    }
    audit.open = true;
    return 0;
}

void cm_audit_close(void)
{
    if (!audit.open)
        return;
    pthread_mutex_lock(&audit.mu);
    audit.stop = true;
    pthread_cond_signal(&audit.cv);
    pthread_mutex_unlock(&audit.mu);
    pthread_join(audit.thread, NULL);
    pthread_mutex_lock(&audit.mu);
    audit.open = false;
    cm_buf_free(&audit.pending);
    pthread_mutex_unlock(&audit.mu);
    pthread_cond_destroy(&audit.cv);
    if (audit.fd >= 0)
        close(audit.fd);
    audit.fd = -1;
}

bool cm_audit_enabled(void)
{
    return audit.open;
}

void cm_audit_write(const char *line, size_t len)
{
    pthread_mutex_lock(&audit.mu);
    if (!audit.open || audit.stop || audit.pending.len + len + 1 > MAX_PENDING) {
        bool drop = audit.open;
        pthread_mutex_unlock(&audit.mu);
        if (drop)
            atomic_fetch_add_explicit(&audit.dropped, 1, memory_order_relaxed);
        return;
    }
    cm_buf_append(&audit.pending, line, len);
    cm_buf_append(&audit.pending, "\n", 1);
    if (audit.pending.len >= FLUSH_BYTES)
        pthread_cond_signal(&audit.cv);
    pthread_mutex_unlock(&audit.mu);
    atomic_fetch_add_explicit(&audit.lines, 1, memory_order_relaxed);
}

void cm_audit_counts(uint64_t *lines, uint64_t *dropped)
{
    *lines = atomic_load_explicit(&audit.lines, memory_order_relaxed);
    *dropped = atomic_load_explicit(&audit.dropped, memory_order_relaxed);
}
