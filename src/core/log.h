/* Internal logging: rly_log(level, module, fmt, ...) formats only when the level is enabled. */
#ifndef RLY_CORE_LOG_H
#define RLY_CORE_LOG_H

#include <stdatomic.h>

#include "relay/log.h"

extern _Atomic int rly_log_min_level;

/* rly_log_write formats and emits one record; use the rly_log* macros instead. */
void rly_log_write(relay_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rly_log(level, module, ...)                                                                \
    do {                                                                                           \
        if ((int)(level) >= atomic_load_explicit(&rly_log_min_level, memory_order_relaxed))        \
            rly_log_write((level), (module), __VA_ARGS__);                                         \
    } while (0)
#define rly_debug(module, ...) rly_log(RELAY_LOG_DEBUG, module, __VA_ARGS__)
#define rly_info(module, ...) rly_log(RELAY_LOG_INFO, module, __VA_ARGS__)
#define rly_warn(module, ...) rly_log(RELAY_LOG_WARN, module, __VA_ARGS__)
#define rly_error(module, ...) rly_log(RELAY_LOG_ERROR, module, __VA_ARGS__)

#endif
