/* Binary codec; see codec.h. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

void cm_put_u8(struct cm_buf *b, uint8_t v)
{
    cm_buf_append(b, &v, 1);
}

void cm_put_u16(struct cm_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    cm_buf_append(b, x, 2);
}

void cm_put_u32(struct cm_buf *b, uint32_t v)
{
    uint8_t x[4];
    cm_wbe32(x, v);
    cm_buf_append(b, x, 4);
}

void cm_put_u64(struct cm_buf *b, uint64_t v)
{
    uint8_t x[8];
    cm_wbe64(x, v);
    cm_buf_append(b, x, 8);
}

void cm_put_i64(struct cm_buf *b, int64_t v)
{
    cm_put_u64(b, (uint64_t)v);
}

void cm_put_uvar(struct cm_buf *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    cm_buf_append(b, x, n);
}

void cm_put_bool(struct cm_buf *b, bool v)
{
    cm_put_u8(b, v ? 1 : 0);
}

void cm_put_bytes(struct cm_buf *b, const void *p, size_t n)
{
    cm_put_uvar(b, n);
    cm_buf_append(b, p, n);
}

void cm_put_str(struct cm_buf *b, const char *s)
{
    cm_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

void cm_dec_init(struct cm_dec *d, const void *p, size_t n)
{
    d->p = p;
    d->end = d->p + n;
    d->err = false;
}

size_t cm_dec_left(const struct cm_dec *d)
{
    return d->err ? 0 : (size_t)(d->end - d->p);
}

static const uint8_t *take(struct cm_dec *d, size_t n)
{
    if (d->err || (size_t)(d->end - d->p) < n) {
        d->err = true;
        return NULL;
    }
    const uint8_t *p = d->p;
    d->p += n;
    return p;
}

uint8_t cm_get_u8(struct cm_dec *d)
{
    const uint8_t *p = take(d, 1);
    return p ? p[0] : 0;
}

uint16_t cm_get_u16(struct cm_dec *d)
{
    const uint8_t *p = take(d, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t cm_get_u32(struct cm_dec *d)
{
    const uint8_t *p = take(d, 4);
    return p ? cm_be32(p) : 0;
}

uint64_t cm_get_u64(struct cm_dec *d)
{
    const uint8_t *p = take(d, 8);
    return p ? cm_be64(p) : 0;
}

int64_t cm_get_i64(struct cm_dec *d)
{
    return (int64_t)cm_get_u64(d);
}

uint64_t cm_get_uvar(struct cm_dec *d)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        const uint8_t *p = take(d, 1);
        if (p == NULL)
            return 0;
        if (shift == 63 && *p > 1) {
            d->err = true;
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    d->err = true;
    return 0;
}

bool cm_get_bool(struct cm_dec *d)
{
    uint8_t v = cm_get_u8(d);
    if (v > 1)
        d->err = true;
    return v == 1;
}

const void *cm_get_bytes(struct cm_dec *d, size_t *n)
{
    uint64_t len = cm_get_uvar(d);
    if (d->err || len > (uint64_t)(d->end - d->p)) {
        d->err = true;
        *n = 0;
        return "";
    }
    *n = (size_t)len;
    return take(d, (size_t)len);
}

char *cm_get_strdup(struct cm_dec *d)
{
    size_t n;
    const char *p = cm_get_bytes(d, &n);
    if (d->err || memchr(p, '\0', n) != NULL) {
        d->err = true;
        return cm_strdup("");
    }
    return cm_strndup(p, n);
}

void cm_get_strbuf(struct cm_dec *d, char *out, size_t cap)
{
    size_t n;
    const char *p = cm_get_bytes(d, &n);
    if (d->err || n >= cap || memchr(p, '\0', n) != NULL) {
        d->err = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

size_t cm_utf8_seq(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (left == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (left < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}
