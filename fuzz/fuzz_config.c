/*
 * Fuzz target: the JSON configuration parser (relay_config_parse_json and the `relay train` layout
 * with its "train" section). Invariants: no crash or leak on any text; a rejected text changes
 * nothing; an accepted configuration written back with relay_config_to_json parses again to the
 * same JSON (so every value, 64-bit seeds included, round-trips exactly).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/train_run.h"
#include "relay/log.h"
#include "relay/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_log_set_level(RELAY_LOG_OFF);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    relay_config cfg, before;
    relay_config_default(&cfg);
    before = cfg;
    if (relay_config_parse_json(&cfg, text) != RELAY_OK) {
        if (memcmp(&cfg, &before, sizeof cfg) != 0)
            abort(); /* a rejected configuration must change nothing */
    } else {
        char *once = NULL, *twice = NULL;
        relay_config again;
        relay_config_default(&again);
        if (relay_config_to_json(&cfg, &once) != RELAY_OK ||
            relay_config_parse_json(&again, once) != RELAY_OK ||
            relay_config_to_json(&again, &twice) != RELAY_OK || strcmp(once, twice) != 0)
            abort();
        free(once);
        free(twice);
    }

    rly_train_config tc;
    rly_train_config_default(&tc);
    (void)rly_train_config_parse(&tc, text);
    free(text);
    return 0;
}
