/* The code-mode table (spec §4.5, current-release.md §3.8). */
#include "codemode.h"

#include <stddef.h>
#include <string.h>

static const struct cm_codemode modes[] = {
    {"EC15P12", 1, 15, 12, 0, 3, 24, 2048},    {"EC6P6", 2, 6, 6, 0, 3, 11, 2048},
    {"EC16P20L2", 3, 16, 20, 2, 2, 34, 2048},  {"EC6P10L2", 4, 6, 10, 2, 2, 14, 2048},
    {"EC6P3L3", 5, 6, 3, 3, 3, 9, 2048},       {"EC6P6Align0", 6, 6, 6, 0, 3, 11, 0},
    {"EC6P6Align512", 7, 6, 6, 0, 3, 11, 512}, {"EC4P4L2", 8, 4, 4, 2, 2, 6, 2048},
    {"EC12P4", 9, 12, 4, 0, 1, 15, 2048},      {"EC16P4", 10, 16, 4, 0, 1, 19, 2048},
    {"EC3P3", 11, 3, 3, 0, 1, 5, 2048},        {"EC10P4", 12, 10, 4, 0, 1, 13, 2048},
    {"EC6P3", 13, 6, 3, 0, 1, 8, 2048},        {"EC12P9", 14, 12, 9, 0, 3, 20, 2048},
};

/* Replica modes (M = L = 0) of CubeFS v3.5.1 and later. Their volumes are placed through copy
 * sets, which we do not implement yet, so they live outside the table above: no lookup by id
 * finds them and no volume of such a mode can exist. */
static const struct cm_codemode replica_modes[] = {
    {"Replica3", 100, 3, 0, 0, 3, 3, 0},
    {"Replica3OneAZ", 101, 3, 0, 0, 1, 3, 0},
};

const struct cm_codemode *cm_codemode_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(modes[i].name, name) == 0)
            return &modes[i];
    return NULL;
}

const struct cm_codemode *cm_codemode_replica_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof replica_modes / sizeof replica_modes[0]; i++)
        if (strcmp(replica_modes[i].name, name) == 0)
            return &replica_modes[i];
    return NULL;
}

const struct cm_codemode *cm_codemode_by_id(unsigned id)
{
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (modes[i].id == id)
            return &modes[i];
    return NULL;
}

int cm_codemode_az_units(const struct cm_codemode *c, int az, int *out)
{
    int n = c->n / c->az_count, m = c->m / c->az_count, l = c->l / c->az_count, k = 0;
    for (int i = 0; i < n; i++)
        out[k++] = az * n + i;
    for (int i = 0; i < m; i++)
        out[k++] = c->n + az * m + i;
    for (int i = 0; i < l; i++)
        out[k++] = c->n + c->m + az * l + i;
    return k;
}
