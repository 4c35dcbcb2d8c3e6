/* UUID v4 generation, formatting and parsing. */
#include "relay/id.h"

#include <string.h>
#include <sys/random.h>

#include "core/id.h"

static relay_id stamp_v4(relay_id id)
{
    id.bytes[6] = (uint8_t)((id.bytes[6] & 0x0f) | 0x40);
    id.bytes[8] = (uint8_t)((id.bytes[8] & 0x3f) | 0x80);
    return id;
}

relay_id relay_id_new(void)
{
    relay_id id;
    size_t got = 0;
    while (got < sizeof id.bytes) {
        ssize_t n = getrandom(id.bytes + got, sizeof id.bytes - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    return stamp_v4(id);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

relay_id relay_id_from_seed(uint64_t seed, uint64_t n)
{
    uint64_t s = seed ^ (n * 0xd1342543de82ef95ULL);
    uint64_t a = splitmix64(&s), b = splitmix64(&s);
    relay_id id;
    for (int i = 0; i < 8; i++) {
        id.bytes[i] = (uint8_t)(a >> (56 - 8 * i));
        id.bytes[8 + i] = (uint8_t)(b >> (56 - 8 * i));
    }
    return stamp_v4(id);
}

char *relay_id_format(relay_id id, char out[RELAY_ID_STRLEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    if (!out)
        return NULL;
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[id.bytes[i] >> 4];
        *p++ = hex[id.bytes[i] & 15];
    }
    *p = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

relay_err relay_id_parse(const char *text, relay_id *out)
{
    if (!text || !out)
        return RELAY_EINVAL;
    if (strlen(text) != RELAY_ID_STRLEN)
        return RELAY_EFORMAT;
    relay_id id;
    int b = 0;
    for (int i = 0; i < RELAY_ID_STRLEN;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return RELAY_EFORMAT;
            i++;
            continue;
        }
        int hi = hexval(text[i]), lo = hexval(text[i + 1]);
        if (hi < 0 || lo < 0)
            return RELAY_EFORMAT;
        id.bytes[b++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    *out = id;
    return RELAY_OK;
}

bool relay_id_eq(relay_id a, relay_id b)
{
    return memcmp(a.bytes, b.bytes, 16) == 0;
}

int relay_id_cmp(relay_id a, relay_id b)
{
    return memcmp(a.bytes, b.bytes, 16);
}

bool relay_id_is_nil(relay_id id)
{
    static const relay_id nil;
    return memcmp(id.bytes, nil.bytes, 16) == 0;
}
