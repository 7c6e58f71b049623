/* Route lookup over the table of src/api/routes.c. */
#include "router.h"

#include <string.h>

const struct cm_route *cm_route_lookup(const char *path, int method, int *allowed)
{
    size_t n;
    const struct cm_route *routes = cm_routes(&n);
    *allowed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cm_route *r = &routes[i];
        bool match;
        if (r->flags & CM_R_PREFIX)
            match = strncmp(path, r->path, strlen(r->path)) == 0;
        else
            match = strcmp(path, r->path) == 0;
        if (!match)
            continue;
        if (r->methods & method)
            return r;
        *allowed |= r->methods;
    }
    return NULL;
}
