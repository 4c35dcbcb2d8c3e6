/* Relay's single error enum: every fallible call returns a relay_err, 0 means success. */
#ifndef RELAY_ERR_H
#define RELAY_ERR_H

#include <stddef.h>

#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_ERR_LIST is the one table of error codes, their pinned values and their messages. */
#define RELAY_ERR_LIST(X)                                                                          \
    X(RELAY_OK, 0, "success")                                                                      \
    X(RELAY_EINVAL, 1, "invalid argument")                                                         \
    X(RELAY_ENOMEM, 2, "out of memory")                                                            \
    X(RELAY_ETIMEDOUT, 3, "timed out")                                                             \
    X(RELAY_ESHUTDOWN, 4, "shut down")                                                             \
    X(RELAY_EFULL, 5, "queue or buffer full")                                                      \
    X(RELAY_EEMPTY, 6, "queue empty")                                                              \
    X(RELAY_ENOTFOUND, 7, "not found")                                                             \
    X(RELAY_EEXIST, 8, "already exists")                                                           \
    X(RELAY_EDISPATCH, 9, "failed to dispatch message")                                            \
    X(RELAY_EROUTER_NOT_FOUND, 10, "router not found for actor")                                   \
    X(RELAY_ENOT_ASSIGNED, 11, "actor not assigned to any router")                                 \
    X(RELAY_EIO, 12, "input/output error")                                                         \
    X(RELAY_EFORMAT, 13, "malformed input")                                                        \
    X(RELAY_ETRUNCATED, 14, "truncated input")                                                     \
    X(RELAY_ETOOBIG, 15, "limit exceeded")                                                         \
    X(RELAY_ECHECKSUM, 16, "checksum mismatch")                                                    \
    X(RELAY_EAUTH, 17, "authentication failed (wrong key or tampered data)")                       \
    X(RELAY_EUNSUPPORTED, 18, "unsupported")                                                       \
    X(RELAY_EVERSION, 19, "unsupported format version")                                            \
    X(RELAY_ESHAPE, 20, "shape mismatch")                                                          \
    X(RELAY_EDTYPE, 21, "dtype mismatch")                                                          \
    X(RELAY_ECONFIG, 22, "invalid configuration")                                                  \
    X(RELAY_ENOMODEL, 23, "no model loaded")                                                       \
    X(RELAY_EBUSY, 24, "busy")                                                                     \
    X(RELAY_EAGAIN, 25, "try again")                                                               \
    X(RELAY_ECANCELED, 26, "canceled")                                                             \
    X(RELAY_EDLOPEN, 27, "cannot load shared library")                                             \
    X(RELAY_ECOMPRESS, 28, "compression error")                                                    \
    X(RELAY_ESTATE, 29, "operation not allowed in the current state")                              \
    X(RELAY_EDROPPED, 30, "dropped by the configured backpressure policy")                         \
    X(RELAY_EINTERNAL, 31, "internal error")                                                       \
    X(RELAY_ECLOSED, 32, "connection closed or peer unreachable")

/* relay_err is the result of every fallible Relay call; RELAY_OK (0) means success. */
typedef enum relay_err {
#define RELAY_ERR_ENUM_(name, value, msg) name = value,
    RELAY_ERR_LIST(RELAY_ERR_ENUM_)
#undef RELAY_ERR_ENUM_
        RELAY_ERR_COUNT_
} relay_err;

/* relay_strerror returns a static, human-readable message for err (never NULL). */
RELAY_API const char *relay_strerror(relay_err err);

/* relay_errname returns the enum name of err, e.g. "RELAY_ETIMEDOUT" (never NULL). */
RELAY_API const char *relay_errname(relay_err err);

#ifdef __cplusplus
}
#endif
#endif
