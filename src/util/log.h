/*
 * Logging: one line per event on stderr (or a file), "time level [component] message".
 *
 * The level is process-wide and may be changed at runtime (GET/POST /log/level), from any thread,
 * so it is the one piece of global state outside the loop context; it is an atomic int.
 */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stdint.h>
#include <stdio.h>

enum cm_log_level { CM_LOG_DEBUG = 0, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR, CM_LOG_FATAL };

/* Send log lines to `path` (appending) or stderr when path is NULL or empty. Returns 0 or -errno.
 */
int cm_log_open(const char *path);
void cm_log_set_level(int level);
int cm_log_get_level(void);
const char *cm_log_level_name(int level);
/* Parse "debug".."fatal" or "0".."5"; returns the level or -1. */
int cm_log_parse_level(const char *s);
void cm_log_set_node(uint64_t node_id);

void cm_logf(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CM_DEBUG(comp, ...)                                                                        \
    do {                                                                                           \
        if (cm_log_get_level() <= CM_LOG_DEBUG)                                                    \
            cm_logf(CM_LOG_DEBUG, comp, __VA_ARGS__);                                              \
    } while (0)
#define CM_INFO(comp, ...) cm_logf(CM_LOG_INFO, comp, __VA_ARGS__)
#define CM_WARN(comp, ...) cm_logf(CM_LOG_WARN, comp, __VA_ARGS__)
#define CM_ERROR(comp, ...) cm_logf(CM_LOG_ERROR, comp, __VA_ARGS__)

#endif
