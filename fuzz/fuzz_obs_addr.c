/*
 * Fuzz target: the metrics address parser (config key metrics_addr, --metrics-addr) and the
 * Prometheus label escaping and histogram paths, which see user-chosen strings and numbers.
 */
#include <stdlib.h>
#include <string.h>

#include "obs/obs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char host[256], err[320];
    uint16_t port = 0;
    if (rly_obs_parse_addr(s, host, sizeof host, &port, err, sizeof err) == RELAY_OK) {
        /* accepted: the host fits, has no NUL-hidden tail, and is made of address characters */
        if (strlen(host) == 0 || strlen(host) >= sizeof host)
            abort();
        for (const char *p = host; *p; p++)
            if (*p == ' ' || *p == '/' || *p == '"')
                abort();
    } else if (strstr(err, "bad metrics address") == NULL) {
        abort(); /* every refusal says why */
    }
    char esc[64];
    rly_obs_label_escape(s, esc, sizeof esc);
    if (strlen(esc) >= sizeof esc)
        abort();
    rly_obs_hist h;
    double v[4] = {0};
    memcpy(v, data, size < sizeof v ? size : sizeof v);
    if (rly_obs_hist_init_exp(&h, 1, 2, 8) == RELAY_OK) {
        for (int i = 0; i < 4; i++)
            rly_obs_hist_observe(&h, v[i]);
        rly_obs_out *o = rly_obs_out_new();
        if (o) {
            rly_obs_hist_write(o, "relay_fuzz", "Fuzzed.", esc, &h);
            rly_obs_out_free(o);
        }
    }
    free(s);
    return 0;
}
