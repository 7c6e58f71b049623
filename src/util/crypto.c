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

size_t cm_base64url_encode(const void *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    out[len] = '\0';
    return (size_t)len;
}

long cm_base64_decode(const char *in, size_t n, void *out, size_t cap)
{
    if (n % 4 != 0)
        return -1;
    char small[256];
    char *tmp = n < sizeof small ? small : cm_malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '+' || c == '/' || c == '=')) {
            if (tmp != small)
                free(tmp);
            return -1;
        }
        tmp[i] = c;
    }
    size_t pad = 0;
    if (n >= 1 && tmp[n - 1] == '=')
        pad++;
    if (n >= 2 && tmp[n - 2] == '=')
        pad++;
    for (size_t i = 0; i + pad < n; i++)
        if (tmp[i] == '=') { /* padding only at the end */
            if (tmp != small)
                free(tmp);
            return -1;
        }
    long res = -1;
    size_t need = n / 4 * 3;
    if (need <= cap + 2) {
        unsigned char *dst = need <= cap ? out : cm_malloc(need);
        int len = EVP_DecodeBlock(dst, (const unsigned char *)tmp, (int)n);
        if (len >= 0 && (size_t)len >= pad && (size_t)len - pad <= cap) {
            res = (long)((size_t)len - pad);
            if (dst != out)
                memcpy(out, dst, (size_t)res);
        }
        if (dst != out)
            free(dst);
    }
    if (tmp != small)
        free(tmp);
    return res;
}
