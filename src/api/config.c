/* The /config routes (spec §5.1): the config store and the task switches. */
#include <stdlib.h>
#include <string.h>

#include "../fsm/mod_config.h"
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
    if (strcmp(a->key, "code_mode") == 0) {
        /* code_mode is derived from code_mode_policies of the config file */
        cm_job_set_code(j, CM_ERR_ILLEGAL_ARGUMENTS);
        goto out;
    }
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

void h_config_set(struct cm_job *j)
{
    struct config_args *a = j->args;
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
    const char *v = cm_config_get(cm_node_fsm(j->node), a->key);
    if (v == NULL) {
        cm_reply_code(j, CM_ERR_NOT_FOUND);
        return;
    }
    cm_reply_json(j, json_object_new_string(v));
}

void h_config_delete(struct cm_job *j)
{
    struct config_args *a = j->args;
    struct cm_buf b = {0};
    cm_config_enc_delete(&b, a->key);
    cm_job_propose(j, CM_MOD_CONFIG, CM_CONFIG_OP_DELETE, &b, NULL);
}

void h_config_list(struct cm_job *j)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "configs", cm_config_list(cm_node_fsm(j->node)));
    cm_reply_json(j, o);
}
