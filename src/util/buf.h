/*
 * A growable byte buffer. Allocation failure aborts the process: a control plane that cannot get
 * a few kilobytes has no sensible way to continue, and every caller would otherwise carry an
 * untestable error path.
 */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf {
    char *data;
    size_t len;
    size_t cap;
};

void cm_buf_reserve(struct cm_buf *b, size_t extra);
void cm_buf_append(struct cm_buf *b, const void *p, size_t n);
void cm_buf_puts(struct cm_buf *b, const char *s);
void cm_buf_printf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes over (NUL-terminated) and reset the buffer. */
char *cm_buf_steal(struct cm_buf *b, size_t *len);
void cm_buf_free(struct cm_buf *b);

/* Allocation helpers that never return NULL. */
void *cm_malloc(size_t n);
void *cm_calloc(size_t n, size_t size);
void *cm_realloc(void *p, size_t n);
char *cm_strdup(const char *s);
char *cm_strndup(const char *s, size_t n);

#endif
