/*
 * Table-driven JSON configuration: one table of keys drives loading (unknown keys warn, bad
 * values fail naming the key), validation and the effective-config writer. The agent's table is
 * here; the CLI adds its own table for training options with the same engine.
 */
#ifndef RLY_AGENT_CONFIG_H
#define RLY_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "relay/relay.h"

struct cJSON;

/* RLY_CFG_EXACT_MAX (2^53 - 1) is the largest integer written as a JSON number; larger U64
   values are written and accepted as strings of decimal digits, so they round-trip exactly. */
#define RLY_CFG_EXACT_MAX 9007199254740991ull

typedef enum rly_cfg_type {
    RLY_CFG_U32,
    RLY_CFG_U64, /* a JSON number up to RLY_CFG_EXACT_MAX, or a string of decimal digits */
    RLY_CFG_F32,
    RLY_CFG_BOOL,
    RLY_CFG_STR,       /* char[size] */
    RLY_CFG_STR_ENUM,  /* char[size] restricted to names */
    RLY_CFG_ENUM_BOOL, /* bool stored from names[0] (false) / names[1] (true) */
} rly_cfg_type;

/* rly_cfg_key describes one dotted key ("a.b.c") and the struct field it sets. */
typedef struct rly_cfg_key {
    const char *name;
    rly_cfg_type type;
    size_t offset, size;
    uint64_t min, max;        /* integer range */
    const char *const *names; /* NULL-terminated choices */
} rly_cfg_key;

/* rly_cfg_parse applies a JSON object to base using keys[0..n). */
relay_err rly_cfg_parse(void *base, const rly_cfg_key *keys, size_t n, const char *json);

/* rly_cfg_to_json adds every key of base to root (nested objects for dotted names). */
relay_err rly_cfg_to_json(const void *base, const rly_cfg_key *keys, size_t n, struct cJSON *root);

/* rly_cfg_read_file reads a whole text file (<= 16 MiB) into a malloc'd NUL-terminated string. */
relay_err rly_cfg_read_file(const char *path, char **text);

/* rly_agent_config_keys returns the agent's key table. */
const rly_cfg_key *rly_agent_config_keys(size_t *n);

/* rly_config_validate checks cross-field rules, naming the offending key. */
relay_err rly_config_validate(const relay_config *c);

#endif
