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
 *
 * That digest has no separator between path and query and does not cover the method. For the
 * CubeFS routes this is harmless (no route takes its key from the path, and each path has one
 * method); for our extensions it is not, so the server adds two rules (docs/security.md,
 * "Tokens on our own routes"):
 *   - a path-keyed route (/kv/get/<key>, /kv/set/<key>, /kv/delete/<key>) refuses any query
 *     string when auth is on, so path || query is the path alone and cannot be re-split;
 *   - a path that answers more than one method (/log/level) takes the CubeFS token for GET only;
 *     any other method needs the method-bound token:
 *
 *   token = base64url-with-padding( ts (8 bytes LE)
 *                                   || MD5( method || 0x00 || len(path) (4 bytes LE) || path
 *                                           || raw query || ts (8 bytes LE) || secret ) )
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

/* The method-bound token (see above), for non-GET requests on multi-method paths. */
void cm_auth_token_bound(const char *method, const char *path, const char *raw_query, int64_t ts,
                         const char *secret, char *out);
int cm_auth_verify_bound(const char *token, const char *method, const char *path,
                         const char *raw_query, const char *secret, int64_t now, int64_t max_age_s,
                         const char **why);

#endif
