/*
 * HTTP for cmctl: libcurl easy requests with host failover.
 *
 * Hosts are tried in the order given. The next host is tried when
 *   - the connection cannot be made (refused, unreachable, name unknown): nothing was sent, so
 *     this is safe for every request;
 *   - a GET fails in any other way before an answer arrived (reads are safe to repeat);
 *   - a node answers 502 (it could not reach the leader), 503 (shutting down, or removed from
 *     the cluster) or 907 (no leader): the request was not executed there;
 *   - a GET is answered 908 (read index failed).
 * A POST that fails after it was sent (timeout, connection reset) is not repeated: it may have
 * been executed, and repeating a /bid/alloc would waste ids. That ends with exit code 3 and a
 * message saying the outcome is unknown. A 502 is retried like the reference client does: the
 * follower could not forward the write, which almost always means it never reached the leader
 * (only a leader that fails after receiving it can make a write run twice).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../src/util/base64.h"
#include "cmctl.h"

int cmctl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cmctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

struct xfer {
    struct cmctl_resp *r;
    size_t received;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    x->received += len;
    cm_buf_append(&x->r->body, p, len);
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    header_value(p, len, "Raft-Snapshot-Index", x->r->index, sizeof x->r->index);
    header_value(p, len, "Raft-Snapshot-Name", x->r->name, sizeof x->r->name);
    return len;
}

char *cmctl_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = cm_malloc(3 * n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* '.' too: clients drop ".." path segments, so a key ".." must travel escaped */
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* BLOB-STORE-AUTH-TOKEN of spec §2.5: base64url (padded) of the Unix time (8 bytes, little
 * endian) and MD5(decoded path || raw query || the same 8 bytes || secret). */
static int auth_header(const char *target, const char *secret, char *out, size_t cap)
{
    size_t plen = strcspn(target, "?");
    const char *query = target[plen] == '?' ? target + plen + 1 : "";
    char *path = cm_malloc(plen + 1); /* the server signs the decoded path */
    size_t n = 0;
    for (size_t i = 0; i < plen; i++) {
        if (target[i] == '%' && i + 2 < plen && isxdigit((unsigned char)target[i + 1]) &&
            isxdigit((unsigned char)target[i + 2])) {
            char x[3] = {target[i + 1], target[i + 2], 0};
            path[n++] = (char)strtol(x, NULL, 16);
            i += 2;
        } else
            path[n++] = target[i];
    }
    uint8_t raw[24];
    uint64_t ts = (uint64_t)time(NULL);
    for (int i = 0; i < 8; i++)
        raw[i] = (uint8_t)(ts >> (8 * i));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dlen = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(md, path, n) == 1 && EVP_DigestUpdate(md, query, strlen(query)) &&
             EVP_DigestUpdate(md, raw, 8) == 1 && EVP_DigestUpdate(md, secret, strlen(secret)) &&
             EVP_DigestFinal_ex(md, raw + 8, &dlen) == 1 && dlen == 16;
    EVP_MD_CTX_free(md);
    free(path);
    if (!ok)
        return -1;
    char tok[33];
    size_t tl = cm_b64_encode(raw, sizeof raw, tok);
    tok[tl] = '\0';
    for (char *p = tok; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    snprintf(out, cap, "BLOB-STORE-AUTH-TOKEN: %s", tok);
    return 0;
}

void cmctl_resp_free(struct cmctl_resp *r)
{
    cm_buf_free(&r->body);
}

static bool try_next_status(long status, bool is_get)
{
    return status == 502 || status == 503 || status == 907 || (is_get && status == 908);
}

int cmctl_request(struct cmctl *c, const char *method, const char *path, const char *ctype,
                  const void *body, size_t len, struct cmctl_resp *r)
{
    bool is_get = strcmp(method, "GET") == 0;
    char last_err[CURL_ERROR_SIZE + 300] = "no host given";
    memset(r, 0, sizeof *r);
    for (int h = 0; h < c->n_hosts; h++) {
        const char *host = c->hosts[h];
        bool has_scheme = strstr(host, "://") != NULL;
        size_t ulen = strlen(host) + strlen(path) + 16;
        char *url = cm_malloc(ulen);
        snprintf(url, ulen, "%s%s%s", has_scheme ? "" : "http://", host, path);
        CURL *e = curl_easy_init();
        if (e == NULL) {
            free(url);
            return cmctl_fail(CMCTL_ERR_LOCAL, "cannot initialise libcurl");
        }
        char errbuf[CURL_ERROR_SIZE] = "";
        struct xfer x = {.r = r};
        struct curl_slist *hdrs = NULL;
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (c->secret) {
            char auth[128];
            if (auth_header(path, c->secret, auth, sizeof auth) != 0) {
                curl_slist_free_all(hdrs);
                curl_easy_cleanup(e);
                free(url);
                return cmctl_fail(CMCTL_ERR_LOCAL, "cannot compute the auth token");
            }
            hdrs = curl_slist_append(hdrs, auth);
        }
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
        if (c->timeout_ms > 0)
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        if (is_get)
            curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        else {
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
            if (strcmp(method, "POST") != 0)
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        }
        if (c->verbose)
            fprintf(stderr, "cmctl: %s %s\n", method, url);
        CURLcode rc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(e);
        if (rc == CURLE_OK && !try_next_status(status, is_get)) {
            r->status = status;
            snprintf(r->host, sizeof r->host, "%s", host);
            free(url);
            return 0;
        }
        bool not_sent =
            rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
            rc == CURLE_COULDNT_RESOLVE_PROXY ||
            (rc == CURLE_OPERATION_TIMEDOUT && x.received == 0 && status == 0 && is_get);
        if (rc == CURLE_OK)
            snprintf(last_err, sizeof last_err, "%s answered %ld: %.*s", host, status,
                     (int)(r->body.len > 200 ? 200 : r->body.len),
                     r->body.data ? r->body.data : "");
        else
            snprintf(last_err, sizeof last_err, "%s: %s", host,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(url);
        if (rc != CURLE_OK && !not_sent && !is_get)
            return cmctl_fail(CMCTL_ERR_UNAVAILABLE,
                              "%s %s: %s; the request may or may not have been executed", method,
                              path, last_err);
        if (h + 1 < c->n_hosts)
            fprintf(stderr, "cmctl: %s; trying %s\n", last_err, c->hosts[h + 1]);
        cm_buf_free(&r->body);
        r->index[0] = r->name[0] = '\0';
    }
    return cmctl_fail(CMCTL_ERR_UNAVAILABLE, "%s %s: no host could serve the request (last: %s)",
                      method, path, last_err);
}

int cmctl_check(struct cmctl_resp *r, const char *what)
{
    if (r->status == 200)
        return CMCTL_OK;
    /* error bodies are {"error":"...","code":"..."}; print the message plainly */
    char msg[512] = "";
    const char *b = r->body.data ? r->body.data : "";
    const char *e = strstr(b, "\"error\":\"");
    if (e) {
        e += 9;
        size_t i = 0;
        while (*e && *e != '"' && i < sizeof msg - 1) {
            if (*e == '\\' && e[1])
                e++;
            msg[i++] = *e++;
        }
        msg[i] = '\0';
    } else
        snprintf(msg, sizeof msg, "%.*s", (int)(r->body.len > 300 ? 300 : r->body.len), b);
    cmctl_fail(0, "%s: %ld %s", what, r->status, msg[0] ? msg : "(no message)");
    if (r->status == 404)
        return CMCTL_ERR_NOT_FOUND;
    /* the cluster could not serve it: no leader, no quorum, propose or read-index timeout */
    if (r->status == 502 || r->status == 503 || (r->status >= 906 && r->status <= 908))
        return CMCTL_ERR_UNAVAILABLE;
    return CMCTL_ERR_ANSWER;
}
