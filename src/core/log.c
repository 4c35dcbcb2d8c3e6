/* Logging facility: a level filter, a replaceable sink, and a default stderr sink. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Atomic int rly_log_min_level = RELAY_LOG_WARN;

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static relay_log_fn sink_fn;
static void *sink_user;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int relay_log_level_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= RELAY_LOG_OFF; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return RELAY_LOG_WARN;
    return -1;
}

static void read_env_level(void)
{
    int lvl = relay_log_level_parse(getenv("RELAY_LOG"));
    if (lvl >= 0)
        atomic_store(&rly_log_min_level, lvl);
}

__attribute__((constructor)) static void log_init(void)
{
    pthread_once(&env_once, read_env_level);
}

void relay_log_set_level(relay_log_level level)
{
    if ((int)level < RELAY_LOG_DEBUG || level > RELAY_LOG_OFF)
        return;
    atomic_store(&rly_log_min_level, (int)level);
}

relay_log_level relay_log_get_level(void)
{
    return (relay_log_level)atomic_load(&rly_log_min_level);
}

void relay_log_set_sink(relay_log_fn fn, void *user)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_user = user;
    pthread_mutex_unlock(&sink_lock);
}

void rly_log_write(relay_log_level level, const char *module, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);

    /* The sink is read under the lock but called outside it. */
    pthread_mutex_lock(&sink_lock);
    relay_log_fn fn = sink_fn;
    void *user = sink_user;
    pthread_mutex_unlock(&sink_lock);
    if (fn) {
        fn(level, module, text, user);
        return;
    }
    if ((unsigned)level > RELAY_LOG_ERROR)
        level = RELAY_LOG_ERROR;
    fprintf(stderr, "relay %s [%s] %s\n", level_names[level], module ? module : "-", text);
}
