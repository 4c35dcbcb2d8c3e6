/* Built-in lookup, plug-in loading (dlopen) and definition checks. */
#include <dlfcn.h>
#include <string.h>

#include "core/log.h"
#include "env/builtin.h"
#include "env/env_internal.h"
#include "env/rng.h"

static const relay_env_def *const builtins[] = {
    &rly_env_cartpole,
    &rly_env_acrobot,
    &rly_env_mountain_car,
    &rly_env_pendulum,
};
#define NUM_BUILTINS (sizeof builtins / sizeof builtins[0])

const relay_env_def *relay_env_builtin(size_t i)
{
    return i < NUM_BUILTINS ? builtins[i] : NULL;
}

const relay_env_def *relay_env_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NUM_BUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

uint64_t relay_env_episode_seed(uint64_t env_seed, uint64_t episode)
{
    if (episode == 0)
        return env_seed;
    uint64_t s = env_seed ^ (episode * 0xD1B54A32D192ED03ull);
    return rly_splitmix64(&s);
}

static relay_err check_space(const char *who, const char *which, const relay_space *sp)
{
    if (sp->dim == 0 || sp->dim > RELAY_ENV_MAX_DIM) {
        rly_error("env", "%s: %s space has dim %u (must be 1..%d)", who, which, sp->dim,
                  RELAY_ENV_MAX_DIM);
        return RELAY_EINVAL;
    }
    if (sp->discrete && (sp->n <= 0 || sp->dim != 1)) {
        rly_error("env", "%s: discrete %s space needs n > 0 and dim 1 (n %d, dim %u)", who, which,
                  sp->n, sp->dim);
        return RELAY_EINVAL;
    }
    for (uint32_t i = 0; !sp->discrete && i < sp->dim; i++) {
        if (!(sp->low[i] <= sp->high[i])) {
            rly_error("env", "%s: %s space bound %u has low %g > high %g (or NaN)", who, which, i,
                      (double)sp->low[i], (double)sp->high[i]);
            return RELAY_EINVAL;
        }
    }
    return RELAY_OK;
}

relay_err rly_env_def_check(const relay_env_def *def, const char *who, relay_space *obs,
                            relay_space *act)
{
    if (def == NULL) {
        rly_error("env", "%s: environment definition is NULL", who);
        return RELAY_EINVAL;
    }
    if (def->abi_version < RELAY_ENV_ABI_OLDEST || def->abi_version > RELAY_ENV_ABI_VERSION) {
        rly_error("env", "%s: environment ABI version %u, this Relay supports %d..%d", who,
                  def->abi_version, RELAY_ENV_ABI_OLDEST, RELAY_ENV_ABI_VERSION);
        return RELAY_EVERSION;
    }
    if (def->name == NULL || def->spaces == NULL || def->reset == NULL || def->step == NULL) {
        rly_error("env", "%s: definition lacks %s", who,
                  def->name == NULL     ? "a name"
                  : def->spaces == NULL ? "the spaces function"
                  : def->reset == NULL  ? "the reset function"
                                        : "the step function");
        return RELAY_EINVAL;
    }
    if (def->state_size == 0 || def->state_size > RLY_ENV_MAX_STATE) {
        rly_error("env", "%s: state_size %zu is out of range (1..%u)", who, def->state_size,
                  (unsigned)RLY_ENV_MAX_STATE);
        return RELAY_EINVAL;
    }
    if (def->max_episode_steps < 0) {
        rly_error("env", "%s: max_episode_steps %d is negative", who, def->max_episode_steps);
        return RELAY_EINVAL;
    }
    def->spaces(obs, act);
    relay_err e = check_space(who, "observation", obs);
    if (e == RELAY_OK)
        e = check_space(who, "action", act);
    if (e == RELAY_OK && obs->discrete) {
        rly_error("env", "%s: observation space must be a float Box, not discrete", who);
        e = RELAY_EINVAL;
    }
    return e;
}

relay_err relay_env_load(const char *path, const relay_env_def **out)
{
    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL || path[0] == '\0') {
        rly_error("env", "relay_env_load: path and out must be given");
        return RELAY_EINVAL;
    }
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        rly_error("env", "cannot load environment plug-in '%s': %s", path, why ? why : "unknown");
        return RELAY_EDLOPEN;
    }
    dlerror();
    const relay_env_def *def = (const relay_env_def *)dlsym(h, "relay_env_plugin");
    if (def == NULL) {
        const char *why = dlerror();
        rly_error("env", "environment plug-in '%s' does not export relay_env_plugin: %s", path,
                  why ? why : "symbol is NULL");
        dlclose(h);
        return RELAY_EDLOPEN;
    }
    relay_space *sp = calloc(2, sizeof *sp);
    if (sp == NULL) {
        dlclose(h);
        return RELAY_ENOMEM;
    }
    relay_err e = rly_env_def_check(def, path, &sp[0], &sp[1]);
    free(sp);
    if (e != RELAY_OK) {
        dlclose(h);
        return e;
    }
    /* The handle is kept open for the life of the process: def points into the library. */
    rly_debug("env", "loaded environment '%s' from %s", def->name, path);
    *out = def;
    return RELAY_OK;
}

static bool looks_like_path(const char *name)
{
    size_t len = strlen(name);
    return strchr(name, '/') != NULL || (len >= 3 && strcmp(name + len - 3, ".so") == 0);
}

relay_err relay_env_resolve(const char *name, const relay_env_def **out)
{
    if (out != NULL)
        *out = NULL;
    if (name == NULL || out == NULL) {
        rly_error("env", "relay_env_resolve: name and out must be given");
        return RELAY_EINVAL;
    }
    if (looks_like_path(name))
        return relay_env_load(name, out);
    const relay_env_def *def = relay_env_find(name);
    if (def == NULL) {
        rly_error("env",
                  "unknown environment '%s' (built-ins: CartPole-v1, Acrobot-v1, MountainCar-v0, "
                  "Pendulum-v1; plug-ins are given by a path containing '/' or ending in .so)",
                  name);
        return RELAY_ENOTFOUND;
    }
    *out = def;
    return RELAY_OK;
}
