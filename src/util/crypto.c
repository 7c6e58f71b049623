/* Crypto wrappers over libcrypto; see crypto.h. */
#include "crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#include "buf.h"

void cm_md5(const void *const *parts, const size_t *lens, size_t n, uint8_t out[16])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 16;
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(ctx, parts[i], lens[i]);
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

void cm_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                    size_t n, uint8_t out[32])
{
    /* HMAC over the concatenation of the parts */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    uint8_t small[512];
    uint8_t *msg = total <= sizeof small ? small : cm_malloc(total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(msg + off, parts[i], lens[i]);
        off += lens[i];
    }
    unsigned len = 32;
    HMAC(EVP_sha256(), key, (int)keylen, msg, total, out, &len);
    if (msg != small)
        free(msg);
}

int cm_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}

bool cm_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
