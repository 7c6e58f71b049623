/*
 * The /config routes (spec §5.1, current-release.md §3.2): the config store and the task
 * switches. The store is shared with the KV routes (mod_config.h).
 *
 * Task switches: /config/set of a switch key writes true/false/Enable/Disable (any case) in the
 * spelling this node's task_switch_format asks for; other values are stored as given, as the
 * reference does. A missing switch reads 404 {"error":"Not Found"}, which current clients answer
 * by writing "false" (docs/compatibility.md, "Task switches").
 */
#include <stdlib.h>
#include <string.h>

#include "../fsm/mod_config.h"
#include "../fsm/mod_kv.h"
#include "../util/json.h"
#include "api.h"

struct config_args {
    char *key;
    char *value;
};

static void config_args_free(void *p)
{
    struct config_args *a = p;
    free(a->key);
    free(a->value);
    free(a);
}

static struct config_args *new_args(struct cm_job *j)
{
    struct config_args *a = cm_calloc(1, sizeof *a);
    j->args = a;
    j->args_free = config_args_free;
    return a;
}

int parse_config_set(struct cm_job *j)
{
    struct json_object *o = cm_args_body(j, false);
    if (o == NULL)
        return -1;
    struct config_args *a = new_args(j);
    int rc = -1;
    if (cm_args_strdup(j, o, "key", true, CM_CONFIG_KEY_MAX, &a->key) < 0 ||
        cm_args_strdup(j, o, "value", true, CM_CONFIG_VALUE_MAX, &a->value) < 0)
        goto out;
    if (a->key[0] == '\0') {
        cm_args_fail(j, "field \"key\" must not be empty");
        goto out;
    }
    if (!cm_kv_key_valid(a->key, strlen(a->key))) {
        cm_args_fail(j, "field \"key\" must be valid UTF-8");
        goto out;
    }
    if (strcmp(a->key, "code_mode") == 0) {
        /* code_mode is derived from code_mode_policies of the config file */
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    if (cm_config_is_switch(a->key)) {
        const char *v = cm_config_switch_value(cm_job_cfg(j)->task_switch_format, a->value);
        if (v != NULL && strcmp(v, a->value) != 0) {
            free(a->value);
            a->value = cm_strdup(v);
        }
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

void h_config_set(struct cm_job *j)
{
    struct config_args *a = j->args;
    struct cm_fsm *fsm = cm_node_fsm(j->node);
    size_t klen = strlen(a->key), vlen = strlen(a->value);
    const struct cm_config *cfg = cm_job_cfg(j);
    /* the config store is the KV store (mod_config.h); an empty value deletes */
    if (vlen && !cm_kv_fits(fsm, a->key, klen, vlen, cfg->kv_max_entries, cfg->kv_max_bytes)) {
        cm_reply_error(j, 400, "the kv store is full (limits.kv_max_entries, limits.kv_max_bytes)",
                       "Argument");
        return;
    }
    struct cm_buf b = {0};
    cm_config_enc_set(&b, a->key, a->value);
    cm_job_propose(j, CM_MOD_CONFIG, CM_CONFIG_OP_SET, &b, NULL);
}

int parse_config_key(struct cm_job *j)
{
    const char *key;
    if (cm_args_q_str(j, "key", true, CM_CONFIG_KEY_MAX, &key) < 0)
        return -1;
    new_args(j)->key = cm_strdup(key);
    return 0;
}

void h_config_get(struct cm_job *j)
{
    struct config_args *a = j->args;
    const char *v;
    size_t vlen;
    if (!cm_config_lookup(cm_node_fsm(j->node), a->key, &v, &vlen)) {
        cm_reply_code(j, CM_ERR_NOT_FOUND);
        return;
    }
    cm_reply_json(j, cm_config_json_string(v, vlen));
}

void h_config_delete(struct cm_job *j)
{
    struct config_args *a = j->args;
    if (cm_config_is_system_key(a->key)) {
        cm_reply_code(j, CM_ERR_DELETE_SYSTEM_CONFIG);
        return;
    }
    if (!cm_kv_key_valid(a->key, strlen(a->key))) {
        /* no value can be stored under it: deleting what is absent succeeds */
        cm_reply_empty(j);
        return;
    }
    struct cm_buf b = {0};
    cm_config_enc_delete(&b, a->key);
    cm_job_propose(j, CM_MOD_CONFIG, CM_CONFIG_OP_DELETE, &b, NULL);
}

/* The 2022 route (removed in CubeFS v3.3): every stored key and every default. */
void h_config_list(struct cm_job *j)
{
    /* one body of the whole store: refuse rather than build hundreds of megabytes */
    uint64_t max = cm_job_cfg(j)->config_list_max_bytes;
    if (cm_kv_bytes(cm_node_fsm(j->node)) > max) {
        cm_reply_error(j, 400,
                       "the config store is too large to list in one answer "
                       "(limits.config_list_max_bytes); read it with /kv/list",
                       "Argument");
        return;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "configs", cm_config_list(cm_node_fsm(j->node)));
    cm_reply_json(j, o);
}
