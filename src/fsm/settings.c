/* Lookups in the state machine's settings (settings.h). */
#include "settings.h"

#include <string.h>

const char *cm_settings_default(const struct cm_fsm_settings *s, const char *key)
{
    for (size_t i = 0; i < s->n_defaults; i++)
        if (strcmp(s->defaults[i].key, key) == 0)
            return s->defaults[i].value;
    return NULL;
}

const char *cm_settings_node_http(const struct cm_fsm_settings *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].id == id)
            return s->nodes[i].addr;
    return NULL;
}

const char *cm_config_switch_alias(const char *key)
{
    if (strcmp(key, "vol_inspect") == 0)
        return "volume_inspect";
    if (strcmp(key, "volume_inspect") == 0)
        return "vol_inspect";
    return NULL;
}
