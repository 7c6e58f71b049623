/* Logging: see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static atomic_int log_level = CM_LOG_INFO;
static _Atomic(uint64_t) log_node;
static FILE *log_file;

int cm_log_open(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        log_file = NULL;
        return 0;
    }
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    log_file = f;
    return 0;
}

void cm_log_set_level(int level)
{
    if (level < CM_LOG_DEBUG)
        level = CM_LOG_DEBUG;
    if (level > CM_LOG_FATAL)
        level = CM_LOG_FATAL;
    atomic_store(&log_level, level);
}

int cm_log_get_level(void)
{
    return atomic_load(&log_level);
}

void cm_log_set_node(uint64_t node_id)
{
    atomic_store(&log_node, node_id);
}

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

const char *cm_log_level_name(int level)
{
    if (level < 0 || level > CM_LOG_FATAL)
        return "unknown";
    return level_names[level];
}

int cm_log_parse_level(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i <= CM_LOG_FATAL; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return CM_LOG_WARN;
    if (strcasecmp(s, "panic") == 0)
        return CM_LOG_FATAL;
    if (s[0] >= '0' && s[0] <= '5' && s[1] == '\0')
        return s[0] == '5' ? CM_LOG_FATAL : s[0] - '0';
    return -1;
}

void cm_logf(int level, const char *component, const char *fmt, ...)
{
    if (level < atomic_load(&log_level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %-5s node=%llu [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000, cm_log_level_name(level),
                     (unsigned long long)atomic_load(&log_node), component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, log_file ? log_file : stderr);
}
