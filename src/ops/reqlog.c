/*
 * The end of a request, on the HTTP thread that answered it: its log line and, for writes, its
 * audit line. See ops.h for what goes where.
 *
 * At info level a read costs one comparison here: reads are logged at debug only, writes that
 * succeeded go to the audit log (when configured) rather than to the main log.
 */
#include <stdio.h>
#include <string.h>

#include "../http/job.h"
#include "../http/router.h"
#include "../raft/node.h"
#include "../util/codec.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "ops.h"

#define SLOW_US 1000000ull

/* A JSON string body: quotes, backslashes and control characters escaped, bytes that are not
 * well-formed UTF-8 written as U+FFFD: the line must decode, and the raw bytes came from the
 * client. */
static size_t json_str(char *out, size_t cap, const char *s)
{
    size_t k = 0, left = s ? strlen(s) : 0;
    for (; s && *s && k + 7 < cap; s++, left--) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x80) {
            size_t n = cm_utf8_seq((const unsigned char *)s, left);
            if (n == 0)
                k += (size_t)snprintf(out + k, cap - k, "\\ufffd");
            else {
                memcpy(out + k, s, n);
                k += n;
                s += n - 1, left -= n - 1;
            }
        } else if (c == '"' || c == '\\') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(out + k, cap - k, "\\u%04x", c);
        else
            out[k++] = (char)c;
    }
    out[k] = '\0';
    return k;
}

static void audit(const struct cm_job *j, const char *rid, int status, uint64_t us)
{
    char t[64], erid[160], euri[600], eclient[140], epeer[140];
    cm_format_rfc3339(cm_now_ns(), t, sizeof t);
    json_str(erid, sizeof erid, rid);
    json_str(euri, sizeof euri, j->uri);
    json_str(eclient, sizeof eclient, j->client_ip);
    /* `client` is what the caller claims (X-Real-Ip, X-Forwarded-For, as CubeFS logs it);
     * `peer` the TCP address the request came from, which the caller cannot choose */
    json_str(epeer, sizeof epeer, j->peer_ip);
    char line[1400];
    int n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"node\":%llu,\"req_id\":\"%s\",\"client\":\"%s\","
                     "\"peer\":\"%s\",\"method\":\"%s\",\"uri\":\"%s\",\"route\":\"%s\","
                     "\"status\":%d,\"latency_us\":%llu,\"body_bytes\":%zu,\"resp_bytes\":%zu,"
                     "\"hops\":%d}",
                     t, (unsigned long long)cm_node_id(j->node), erid, eclient, epeer,
                     cm_method_name(j->method), euri, j->route ? j->route->name : "-", status,
                     (unsigned long long)us, j->body.len, j->resp_len, j->hops);
    if (n > 0)
        cm_audit_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void cm_reqlog_done(struct cm_job *j, uint64_t us)
{
    int status = j->status ? j->status : 200;
    bool write = j->method != CM_GET && j->method != CM_HEAD;
    bool slow = us >= SLOW_US;
    bool failed_write = write && status != 200;
    bool debug = cm_log_get_level() <= CM_LOG_DEBUG;
    bool aud = write && cm_audit_enabled();
    if (!debug && !slow && !failed_write && !aud)
        return;
    char rid[130];
    cm_reqlog_id(j, rid, sizeof rid);
    const char *route = j->route ? j->route->name : "-";
    /* client= is the identity the caller claims (X-Real-Ip, X-Forwarded-For); when that is not
     * the TCP peer, the peer is logged too, so a claim can always be checked against it */
    char peer[80] = "";
    if (strcmp(j->peer_ip, j->client_ip) != 0)
        snprintf(peer, sizeof peer, " peer=%s", j->peer_ip[0] ? j->peer_ip : "-");
    if (slow)
        CM_WARN("http",
                "slow request: req=%s %s %.256s route=%s status=%d latency_us=%llu "
                "client=%s%s",
                rid, cm_method_name(j->method), j->uri, route, status, (unsigned long long)us,
                j->client_ip, peer);
    else if (failed_write)
        CM_INFO("http", "req=%s %s %.256s route=%s status=%d latency_us=%llu client=%s%s", rid,
                cm_method_name(j->method), j->uri, route, status, (unsigned long long)us,
                j->client_ip, peer);
    else if (debug)
        cm_logf(CM_LOG_DEBUG, "http",
                "req=%s %s %.256s route=%s status=%d latency_us=%llu client=%s%s", rid,
                cm_method_name(j->method), j->uri, route, status, (unsigned long long)us,
                j->client_ip, peer);
    if (aud)
        audit(j, rid, status, us);
}
