/* Request tokens; see auth.h. */
#include "auth.h"

#include <string.h>

#include "../util/base64.h"
#include "../util/crypto.h"

static void digest(const char *path, const char *query, const uint8_t ts[8], const char *secret,
                   uint8_t out[16])
{
    const void *parts[4] = {path, query ? query : "", ts, secret};
    size_t lens[4] = {strlen(path), query ? strlen(query) : 0, 8, strlen(secret)};
    cm_md5(parts, lens, 4, out);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void cm_auth_token(const char *path, const char *raw_query, int64_t ts, const char *secret,
                   char *out)
{
    uint8_t raw[24];
    put_le64(raw, (uint64_t)ts);
    digest(path, raw_query, raw, secret, raw + 8);
    cm_b64url_encode(raw, sizeof raw, out);
}

/* The method-bound digest: the method and the path's length come first, so neither the method
 * nor the split between path and query can be changed without changing the digest. */
static void digest_bound(const char *method, const char *path, const char *query,
                         const uint8_t ts[8], const char *secret, uint8_t out[16])
{
    uint8_t plen[4];
    size_t pl = strlen(path);
    for (int i = 0; i < 4; i++)
        plen[i] = (uint8_t)(pl >> (8 * i));
    const void *parts[7] = {method, "", plen, path, query ? query : "", ts, secret};
    size_t lens[7] = {strlen(method), 1, 4, pl, query ? strlen(query) : 0, 8, strlen(secret)};
    cm_md5(parts, lens, 7, out);
}

void cm_auth_token_bound(const char *method, const char *path, const char *raw_query, int64_t ts,
                         const char *secret, char *out)
{
    uint8_t raw[24];
    put_le64(raw, (uint64_t)ts);
    digest_bound(method, path, raw_query, raw, secret, raw + 8);
    cm_b64url_encode(raw, sizeof raw, out);
}

static int verify(const char *token, const char *method, const char *path, const char *raw_query,
                  const char *secret, int64_t now, int64_t max_age_s, const char **why)
{
    if (token == NULL || token[0] == '\0') {
        *why = "missing";
        return -1;
    }
    uint8_t raw[24];
    if (cm_b64url_decode(token, strlen(token), raw, sizeof raw) != 24) {
        *why = "malformed";
        return -1;
    }
    uint8_t want[16];
    if (method)
        digest_bound(method, path, raw_query, raw, secret, want);
    else
        digest(path, raw_query, raw, secret, want);
    if (!cm_ct_equal(want, raw + 8, 16)) {
        *why = "mismatch";
        return -1;
    }
    if (max_age_s > 0) {
        int64_t ts = 0;
        for (int i = 7; i >= 0; i--)
            ts = (int64_t)(((uint64_t)ts << 8) | raw[i]);
        if (ts < now - max_age_s || ts > now + max_age_s) {
            *why = "expired";
            return -1;
        }
    }
    return 0;
}

int cm_auth_verify(const char *token, const char *path, const char *raw_query, const char *secret,
                   int64_t now, int64_t max_age_s, const char **why)
{
    return verify(token, NULL, path, raw_query, secret, now, max_age_s, why);
}

int cm_auth_verify_bound(const char *token, const char *method, const char *path,
                         const char *raw_query, const char *secret, int64_t now, int64_t max_age_s,
                         const char **why)
{
    return verify(token, method, path, raw_query, secret, now, max_age_s, why);
}
