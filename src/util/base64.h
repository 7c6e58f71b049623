/*
 * Standard base64 (RFC 4648 §4, the alphabet with '+' and '/', '=' padding required), as Go's
 * encoding/json writes []byte. Decoding is strict: characters outside the alphabet, missing or
 * misplaced padding and non-zero trailing bits are errors, so every value has exactly one
 * encoding and a value read back is byte-identical to the one written.
 */
#ifndef CM_BASE64_H
#define CM_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes needed to encode n bytes (without a terminating NUL). */
static inline size_t cm_b64_enc_len(size_t n)
{
    return (n + 2) / 3 * 4;
}
/* Upper bound of the decoded size of n characters. */
static inline size_t cm_b64_dec_max(size_t n)
{
    return n / 4 * 3;
}

/* Encode into out (cm_b64_enc_len(n) bytes, no NUL written). Returns the length. */
size_t cm_b64_encode(const void *in, size_t n, char *out);
/* Decode into out (cm_b64_dec_max(n) bytes). Returns the decoded length, or -1 when `in` is not
 * canonical base64. */
long cm_b64_decode(const char *in, size_t n, void *out);

/* URL-safe alphabet ('-' and '_'), with padding as Go's base64.URLEncoding: encode into `out`
 * (cm_b64_enc_len(n) + 1 bytes, NUL-terminated); decode accepts either alphabet and fails (-1)
 * when the result would not fit in `cap` bytes. */
size_t cm_b64url_encode(const void *in, size_t n, char *out);
long cm_b64url_decode(const char *in, size_t n, void *out, size_t cap);

#endif
