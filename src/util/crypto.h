/*
 * Thin wrappers over OpenSSL's libcrypto: digests, HMAC, randomness and constant-time comparison.
 */
#ifndef CM_CRYPTO_H
#define CM_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void cm_md5(const void *const *parts, const size_t *lens, size_t n, uint8_t out[16]);
void cm_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                    size_t n, uint8_t out[32]);
/* Returns 0, or -1 when the system has no randomness to give. */
int cm_random_bytes(void *out, size_t n);
bool cm_ct_equal(const void *a, const void *b, size_t n);

#endif
