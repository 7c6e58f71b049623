/*
 * Status lines and messages of the result codes (src/fsm/codes.h, the wire contract's spec §2.3):
 * clustermgr 9xx codes whose number is the HTTP status, and the generic errors.
 */
#ifndef CM_ERRORS_H
#define CM_ERRORS_H

#include "../fsm/codes.h"

/* HTTP status and message of a code above; NULL message for unknown codes. */
int cm_err_status(int code);
const char *cm_err_message(int code);

#endif
