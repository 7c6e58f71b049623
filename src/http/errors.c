/* Error code table; see errors.h. */
#include "errors.h"

#include <stddef.h>

static const char *const cm_msgs[] = {
    "cm: unexpected error",
    "volume is activity status",
    "lock volume not allow",
    "unlock volume not allow",
    "volume not exist",
    "volume status not acceptable",
    "raft propose error",
    "no leader",
    "raft read index error",
    "update volume params invalid",
    "duplicated member info",
    "disk not found",
    "invalid status",
    "not allow to change status back",
    "alloc volume unit concurrently",
    "allocator request alloc volume over max threshold",
    "alloc volume request params is invalid",
    "no available volume",
    "update volume unit, old vuid not match",
    "update volume unit, new vuid not match",
    "update volume unit, new diskID not match",
    "config argument marshal error",
    "request params error, invalid clusterID",
    "request params error,invalid idc",
    "volume unit not exist",
    "register service params is invalid",
    "disk is abnormal or not readonly, can't add into dropping list",
    "stat blob node chunk failed",
    "request alloc volume codeMode not invalid",
    "retain volume is not alloc",
    "dropped disk still has volume unit remain, migrate them firstly",
    "list volume v2 not support idle status",
    "dropping disk not allow change state or set readonly",
    "reject delete system config",
    "node not found",
    "some disks are in use",
    "nodeset not found",
};

int cm_err_status(int code)
{
    if (code >= 900 && code <= 936)
        return code;
    switch (code) {
    case CM_ERR_EXIST:
        return 201;
    case CM_ERR_ILLEGAL_ARGUMENTS:
    case CM_ERR_REQUEST_NOT_ALLOW:
        return 400;
    case CM_ERR_NOT_FOUND:
        return 404;
    case CM_ERR_REQUEST_TIMEOUT:
        return 408;
    case CM_ERR_UNEXPECTED:
        return 500;
    }
    return code >= 100 && code <= 999 ? code : 500;
}

const char *cm_err_message(int code)
{
    if (code >= 900 && code <= 936)
        return cm_msgs[code - 900];
    switch (code) {
    case CM_ERR_EXIST:
        return "Data Already Exist";
    case CM_ERR_ILLEGAL_ARGUMENTS:
        return "Illegal Arguments";
    case CM_ERR_REQUEST_NOT_ALLOW:
        return "Request Not Allow";
    case CM_ERR_NOT_FOUND:
        return "Not Found";
    case CM_ERR_REQUEST_TIMEOUT:
        return "Request Timeout";
    case CM_ERR_UNEXPECTED:
        return "Unexpected Error";
    }
    return NULL;
}
