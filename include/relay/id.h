/* 128-bit actor ids: UUID version 4, with the canonical 36-character text form. */
#ifndef RELAY_ID_H
#define RELAY_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "relay/err.h"
#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relay_id is a 16-byte UUID in network (big-endian) byte order. */
typedef struct relay_id {
    uint8_t bytes[16];
} relay_id;

/* RELAY_ID_STRLEN is the length of the text form, without the terminating NUL. */
#define RELAY_ID_STRLEN 36

/* relay_id_new returns a fresh random (version 4, variant 1) UUID from the OS random source. */
RELAY_API relay_id relay_id_new(void);

/* relay_id_from_seed returns a version 4 UUID derived deterministically from (seed, n). */
RELAY_API relay_id relay_id_from_seed(uint64_t seed, uint64_t n);

/* relay_id_format writes the canonical lowercase form into out (>= 37 bytes) and returns out. */
RELAY_API char *relay_id_format(relay_id id, char out[RELAY_ID_STRLEN + 1]);

/* relay_id_parse reads the canonical form (either case); RELAY_EFORMAT names a malformed text. */
RELAY_API relay_err relay_id_parse(const char *text, relay_id *out);

/* relay_id_eq reports whether a and b are the same id. */
RELAY_API bool relay_id_eq(relay_id a, relay_id b);

/* relay_id_cmp orders ids bytewise (the order of their text forms); returns <0, 0 or >0. */
RELAY_API int relay_id_cmp(relay_id a, relay_id b);

/* relay_id_is_nil reports whether id is all zeros. */
RELAY_API bool relay_id_is_nil(relay_id id);

#ifdef __cplusplus
}
#endif
#endif
