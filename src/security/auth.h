/*
 * Request tokens (header BLOB-STORE-AUTH-TOKEN), computed exactly as the CubeFS clients compute
 * them so unmodified clients keep working:
 *
 *   token = base64url-with-padding( ts (8 bytes, little endian, Unix seconds)
 *                                   || MD5( path || raw query || ts (8 bytes LE) || secret ) )
 *
 * where `path` is the decoded URL path and `raw query` the query string as sent, without '?'.
 * Unlike the reference, a token that does not decode is refused (decisions.md), and an optional
 * freshness window refuses replayed old tokens.
 */
#ifndef CM_AUTH_H
#define CM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define CM_AUTH_HEADER "BLOB-STORE-AUTH-TOKEN"
#define CM_AUTH_TOKEN_LEN 32 /* base64 of 24 bytes */

/* Writes a NUL-terminated token into out (CM_AUTH_TOKEN_LEN + 1 bytes). */
void cm_auth_token(const char *path, const char *raw_query, int64_t ts, const char *secret,
                   char *out);

/* 0 when valid; otherwise -1 with a reason ("missing", "malformed", "mismatch", "expired"). */
int cm_auth_verify(const char *token, const char *path, const char *raw_query, const char *secret,
                   int64_t now, int64_t max_age_s, const char **why);

#endif
