/* Growable byte buffer and never-failing allocation helpers; see buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "clustermgr: out of memory allocating %zu bytes\n", n);
    abort();
}

void *cm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *cm_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *cm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *cm_strdup(const char *s)
{
    return cm_strndup(s, strlen(s));
}

char *cm_strndup(const char *s, size_t n)
{
    char *p = cm_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void cm_buf_reserve(struct cm_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = cm_realloc(b->data, cap);
    b->cap = cap;
}

void cm_buf_append(struct cm_buf *b, const void *p, size_t n)
{
    cm_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cm_buf_puts(struct cm_buf *b, const char *s)
{
    cm_buf_append(b, s, strlen(s));
}

void cm_buf_printf(struct cm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        cm_buf_append(b, small, (size_t)n);
        return;
    }
    cm_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *cm_buf_steal(struct cm_buf *b, size_t *len)
{
    if (b->data == NULL)
        cm_buf_reserve(b, 0), b->data[0] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void cm_buf_free(struct cm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
