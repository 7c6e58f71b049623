/*
 * Binary codec for commands and snapshots: fixed-width big-endian integers, unsigned varints,
 * and length-prefixed byte strings.
 *
 * Decoding never reads past the end: a short or malformed input sets `err` and every further
 * read returns zero/empty, so decoders check `err` once at the end instead of after every field.
 */
#ifndef CM_CODEC_H
#define CM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

void cm_put_u8(struct cm_buf *b, uint8_t v);
void cm_put_u16(struct cm_buf *b, uint16_t v);
void cm_put_u32(struct cm_buf *b, uint32_t v);
void cm_put_u64(struct cm_buf *b, uint64_t v);
void cm_put_i64(struct cm_buf *b, int64_t v);
void cm_put_uvar(struct cm_buf *b, uint64_t v);
void cm_put_bool(struct cm_buf *b, bool v);
/* uvarint length, then the bytes. */
void cm_put_bytes(struct cm_buf *b, const void *p, size_t n);
void cm_put_str(struct cm_buf *b, const char *s); /* NULL is encoded as "" */

struct cm_dec {
    const uint8_t *p;
    const uint8_t *end;
    bool err;
};

void cm_dec_init(struct cm_dec *d, const void *p, size_t n);
uint8_t cm_get_u8(struct cm_dec *d);
uint16_t cm_get_u16(struct cm_dec *d);
uint32_t cm_get_u32(struct cm_dec *d);
uint64_t cm_get_u64(struct cm_dec *d);
int64_t cm_get_i64(struct cm_dec *d);
uint64_t cm_get_uvar(struct cm_dec *d);
bool cm_get_bool(struct cm_dec *d);
/* Points into the input; not NUL-terminated. */
const void *cm_get_bytes(struct cm_dec *d, size_t *n);
/* A fresh NUL-terminated copy (caller frees); strings with an embedded NUL are an error. */
char *cm_get_strdup(struct cm_dec *d);
/* Copy into a fixed buffer; too long (or embedded NUL) is an error. */
void cm_get_strbuf(struct cm_dec *d, char *out, size_t cap);
size_t cm_dec_left(const struct cm_dec *d);

/* Length (1..4) of the well-formed UTF-8 sequence at p (no overlong forms, surrogates or code
 * points past U+10FFFF), 0 when there is none within `left` bytes. */
size_t cm_utf8_seq(const unsigned char *p, size_t left);

/* Big-endian helpers for raw byte arrays. */
static inline uint32_t cm_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t cm_be64(const uint8_t *p)
{
    return ((uint64_t)cm_be32(p) << 32) | cm_be32(p + 4);
}
static inline void cm_wbe32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}
static inline void cm_wbe64(uint8_t *p, uint64_t v)
{
    cm_wbe32(p, (uint32_t)(v >> 32));
    cm_wbe32(p + 4, (uint32_t)v);
}

#endif
