/* The dashboard's static files (web/), compiled into the binary by scripts/embed-web.py. */
#ifndef CM_WEB_ASSETS_H
#define CM_WEB_ASSETS_H

#include <stddef.h>

struct cm_web_asset {
    const char *name;  /* base name, e.g. "app.js" */
    const char *ctype; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct cm_web_asset cm_web_assets[];
extern const unsigned long cm_web_assets_n;

#endif
