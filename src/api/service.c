/* Service registry routes (spec §5.3): register, unregister, heartbeat, get, list. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "../fsm/mod_service.h"
#include "../util/codec.h"
#include "../util/timeutil.h"
#include "api.h"

struct service_args {
    char *name;
    char *host;
    char *idc;
    uint64_t cluster_id;
    int64_t timeout_s;
};

static void service_args_free(void *p)
{
    struct service_args *a = p;
    free(a->name);
    free(a->host);
    free(a->idc);
    free(a);
}

static struct service_args *new_args(struct cm_job *j)
{
    struct service_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = service_args_free;
    return a;
}

/* Valid UTF-8 (every answer of /service/list carries it as a JSON string) without controls. */
static bool valid_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        size_t len = *p >= 0x20 && *p != 0x7f ? cm_utf8_seq(p, left) : 0;
        if (len == 0)
            return false;
        p += len;
        left -= len;
    }
    return true;
}

/* "http://" + an IP literal + ":" (the reference's rule; the port is not checked, as CubeFS
 * clients register it so), and after the colon only letters, digits, '-', '.', '_': no path,
 * query, credentials or control bytes can ride along to the clients that call the host. */
static bool valid_service_host(const char *host)
{
    const char *scheme = "http://";
    if (strncmp(host, scheme, strlen(scheme)) != 0)
        return false;
    const char *ip = host + strlen(scheme);
    const char *colon = strchr(ip, ':');
    if (colon == NULL)
        return false;
    char buf[64];
    size_t n = (size_t)(colon - ip);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, ip, n);
    buf[n] = '\0';
    for (const char *q = colon + 1; *q; q++)
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
              *q == '-' || *q == '.' || *q == '_'))
            return false;
    unsigned char addr[16];
    return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

static bool idc_configured(const struct cm_config *cfg, const char *idc)
{
    for (size_t i = 0; i < cfg->n_idc; i++)
        if (strcmp(cfg->idc[i], idc) == 0)
            return true;
    return false;
}

int parse_service_register(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct service_args *a = new_args(j);
    int rc = -1;
    if (cm_args_u64(j, o, "cluster_id", false, UINT64_MAX, &a->cluster_id) < 0 ||
        cm_args_strdup(j, o, "name", false, CM_SERVICE_NAME_MAX, &a->name) < 0 ||
        cm_args_strdup(j, o, "host", false, CM_SERVICE_HOST_MAX, &a->host) < 0 ||
        cm_args_strdup(j, o, "idc", false, CM_SERVICE_IDC_MAX, &a->idc) < 0 ||
        cm_args_i64(j, o, "timeout", false, INT64_MIN, INT64_MAX, &a->timeout_s) < 0)
        goto out;
    /* absent fields are their zero value, as in the reference */
    if (a->name == NULL)
        a->name = cm_strdup("");
    if (a->host == NULL)
        a->host = cm_strdup("");
    if (a->idc == NULL)
        a->idc = cm_strdup("");
    const struct cm_config *cfg = cm_job_cfg(j);
    if ((uint32_t)a->cluster_id != cfg->cluster_id)
        cm_job_set_code(j, CM_ERR_INVALID_CLUSTER_ID);
    else if (!idc_configured(cfg, a->idc))
        cm_job_set_code(j, CM_ERR_INVALID_IDC);
    else if (!valid_service_host(a->host))
        cm_job_set_code(j, CM_ERR_REGISTER_SERVICE_INVALID);
    else if (!valid_text(a->name))
        cm_args_fail(j, "field \"name\" must be valid UTF-8 without control characters");
    else
        rc = 0;
out:
    json_object_put(o);
    return rc;
}

void h_service_register(struct cm_job *j)
{
    struct service_args *a = j->args;
    const struct cm_config *cfg = cm_job_cfg(j);
    if (!cm_service_fits(cm_node_fsm(j->node), a->name, a->host, a->idc, cfg->service_max_entries,
                         cfg->service_max_bytes)) {
        cm_reply_error(j, 400,
                       "the service registry is full (limits.service_max_entries, "
                       "limits.service_max_bytes)",
                       "Argument");
        return;
    }
    struct cm_buf b = {0};
    cm_service_enc_register(&b, a->name, a->host, a->idc, a->cluster_id, a->timeout_s);
    cm_job_propose(j, CM_MOD_SERVICE, CM_SERVICE_OP_REGISTER, &b, NULL);
}

int parse_service_key(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct service_args *a = new_args(j);
    int rc = -1;
    if (cm_args_strdup(j, o, "name", false, CM_SERVICE_NAME_MAX, &a->name) < 0 ||
        cm_args_strdup(j, o, "host", false, CM_SERVICE_HOST_MAX, &a->host) < 0)
        goto out;
    if (a->name == NULL)
        a->name = cm_strdup("");
    if (a->host == NULL)
        a->host = cm_strdup("");
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

static void propose_key(struct cm_job *j, uint8_t op)
{
    struct service_args *a = j->args;
    if (cm_service_find(cm_node_fsm(j->node), a->name, a->host) == NULL) {
        /* not found in this leader's state: a deposed leader must not say so from state a new
         * leader may have changed (the node may have registered there) */
        if (cm_node_write_confirmed(j))
            cm_reply_code(j, CM_ERR_NOT_FOUND);
        return;
    }
    struct cm_buf b = {0};
    cm_service_enc_key(&b, a->name, a->host);
    cm_job_propose(j, CM_MOD_SERVICE, op, &b, NULL);
}

void h_service_unregister(struct cm_job *j)
{
    propose_key(j, CM_SERVICE_OP_UNREGISTER);
}

void h_service_heartbeat(struct cm_job *j)
{
    propose_key(j, CM_SERVICE_OP_HEARTBEAT);
}

int parse_service_name(struct cm_job *j)
{
    const char *name;
    if (cm_args_q_str(j, "name", true, CM_SERVICE_NAME_MAX, &name) < 0)
        return -1;
    new_args(j)->name = cm_strdup(name);
    return 0;
}

void h_service_get(struct cm_job *j)
{
    struct service_args *a = j->args;
    /* expiry is replicated; "now" is this node's clock */
    cm_reply_json(j, cm_service_nodes_json(cm_node_fsm(j->node), a->name, cm_now_ns()));
}

void h_service_list(struct cm_job *j)
{
    cm_reply_json(j, cm_service_nodes_json(cm_node_fsm(j->node), NULL, 0));
}
