/* Small socket helpers. */
#ifndef CM_NET_H
#define CM_NET_H

#include <stdint.h>

/* 0 when a TCP listener could bind ip:port now (IPv4; "" or unparsable means any address),
 * else the errno of the failed bind. */
int cm_port_probe(const char *ip, uint16_t port);

#endif
