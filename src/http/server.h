/*
 * The HTTP front end: event-driven (libuv, epoll) worker threads, each with a loop of its own,
 * parsing with Debian's http-parser and speaking TLS through GnuTLS. An idle keep-alive
 * connection costs memory (about 1 KiB) and nothing on the request path. Requests are parsed on
 * the workers and handed to the node's loop (cm_node_submit); the loop gives each answered job
 * back (cm_http_resume) and the worker writes the response. See job.h for the life of a request
 * and docs/developing.md for the path through the layers.
 */
#ifndef CM_HTTP_SERVER_H
#define CM_HTTP_SERVER_H

#include <stddef.h>

#include "../server/config.h"
#include "job.h"

struct cm_node;
struct cm_http;

/* Bind and start serving. Returns 0 or -1 with a message (e.g. the port is in use). */
int cm_http_start(struct cm_http **out, struct cm_node *node, const struct cm_config *cfg,
                  char *err, size_t errlen);
/* Stop accepting new connections (existing ones finish). Any thread. */
void cm_http_quiesce(struct cm_http *h);
/* Stop and free; every job handed to the loop must have come back. */
void cm_http_stop(struct cm_http *h);

void cm_http_resume(struct cm_job *j);

#endif
