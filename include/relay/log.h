/* Relay's logging controls: library code never prints, it logs through here. */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relay_log_level orders log records from most to least verbose. */
typedef enum relay_log_level {
    RELAY_LOG_DEBUG = 0,
    RELAY_LOG_INFO = 1,
    RELAY_LOG_WARN = 2,
    RELAY_LOG_ERROR = 3,
    RELAY_LOG_OFF = 4
} relay_log_level;

/* relay_log_fn receives one formatted record; it may be called from any Relay thread. */
typedef void (*relay_log_fn)(relay_log_level level, const char *module, const char *text,
                             void *user);

/* relay_log_set_level sets the minimum level recorded (default RELAY_LOG_WARN, or $RELAY_LOG). */
RELAY_API void relay_log_set_level(relay_log_level level);

/* relay_log_get_level returns the minimum level currently recorded. */
RELAY_API relay_log_level relay_log_get_level(void);

/* relay_log_set_sink routes records to fn (NULL restores the default: one line on stderr). */
RELAY_API void relay_log_set_sink(relay_log_fn fn, void *user);

/* relay_log_level_parse turns "debug", "info", "warn", "error" or "off" into a level; -1 if
 * unknown. */
RELAY_API int relay_log_level_parse(const char *name);

#ifdef __cplusplus
}
#endif
#endif
