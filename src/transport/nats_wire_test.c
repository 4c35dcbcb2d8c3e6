/* Unit tests: reading a JetStream delivery's ack subject (src/transport/nats_wire.h). */
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "transport/nats_wire.h"

static relay_err parse(const char *s, uint64_t *d, uint64_t *q)
{
    return rly_nw_ack_meta(s, strlen(s), d, q);
}

/* The three layouts a server sends: plain (9 tokens), with domain and account (11), and with a
 * trailing random token (12); the delivery count and stream sequence come out exactly. */
static void reads_every_layout(void **state)
{
    (void)state;
    uint64_t d = 0, q = 0;
    assert_int_equal(parse("$JS.ACK.RELAY_t.server.3.4711.4700.1733150000000000000.12", &d, &q),
                     RELAY_OK);
    assert_int_equal(d, 3);
    assert_int_equal(q, 4711);
    assert_int_equal(
        parse("$JS.ACK.hub.ACCHASH.RELAY_t.server.1.18446744073709551615.9.17.0", &d, &q),
        RELAY_OK);
    assert_int_equal(d, 1);
    assert_true(q == UINT64_MAX);
    assert_int_equal(parse("$JS.ACK.hub.ACCHASH.S.C.2.5.5.17.0.rand0m", &d, &q), RELAY_OK);
    assert_int_equal(d, 2);
    assert_int_equal(q, 5);
}

/* Anything else is refused with RELAY_EFORMAT and leaves the outputs as they were. */
static void refuses_malformed_subjects(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "$JS.ACK.",
        "$JS.ACK.S.C.1.2.3.4",                       /* 8 tokens */
        "$JS.ACK.S.C.1.2.3.4.5.6",                   /* 10 tokens */
        "$JS.ACK.a.b.S.C.1.2.3.4.5.6.7",             /* 13 tokens */
        "$JS.NAK.S.C.1.2.3.4.5",                     /* not an ack subject */
        "_INBOX.abc.1",                              /* a status reply */
        "$JS.ACK.S.C.x.2.3.4.5",                     /* delivery count not a number */
        "$JS.ACK.S.C.1.-2.3.4.5",                    /* signed */
        "$JS.ACK.S.C.1.18446744073709551616.3.4.5",  /* 2^64 */
        "$JS.ACK.S.C.1.000000000000000000001.3.4.5", /* 21 digits */
        "$JS.ACK.S..1.2.3.4.5",                      /* empty token */
        "$JS.ACK.S.C.1.2.3.4.5.",                    /* empty last token */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t d = 77, q = 88;
        if (parse(bad[i], &d, &q) != RELAY_EFORMAT)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(d, 77);
        assert_int_equal(q, 88);
    }
    /* longer than RLY_NW_ACK_MAX */
    static char big[RLY_NW_ACK_MAX + 64];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "$JS.ACK.", 8);
    uint64_t d = 0, q = 0;
    assert_int_equal(parse(big, &d, &q), RELAY_EFORMAT);
    assert_int_equal(rly_nw_ack_meta(NULL, 0, &d, &q), RELAY_EFORMAT);
    /* the length bounds the read: a valid prefix of a longer buffer is parsed as given */
    const char *s = "$JS.ACK.S.C.1.2.3.4.5XYZ";
    assert_int_equal(rly_nw_ack_meta(s, strlen(s) - 3, &d, &q), RELAY_OK);
    assert_int_equal(q, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_every_layout),
        cmocka_unit_test(refuses_malformed_subjects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
