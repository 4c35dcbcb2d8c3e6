/* Shared helpers for cmocka test programs. */
#ifndef RELAY_TEST_UTIL_H
#define RELAY_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "relay/err.h"

/* assert_ok fails the test with the error's name and message when e is not RELAY_OK. */
#define assert_ok(e)                                                                               \
    do {                                                                                           \
        relay_err e_ = (e);                                                                        \
        if (e_ != RELAY_OK)                                                                        \
            fail_msg("%s = %s (%s)", #e, relay_errname(e_), relay_strerror(e_));                   \
    } while (0)

/* assert_err fails unless e equals the expected error. */
#define assert_err(e, want)                                                                        \
    do {                                                                                           \
        relay_err e_ = (e);                                                                        \
        if (e_ != (want))                                                                          \
            fail_msg("%s = %s, want %s", #e, relay_errname(e_), relay_errname(want));              \
    } while (0)

/* test_sanitized reports whether the tests run under a sanitizer (smaller loads then). */
static inline int test_sanitized(void)
{
    return getenv("RELAY_SANITIZED") != NULL;
}

#endif
