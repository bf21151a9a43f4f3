/* Decoding BackendHttpReady frames: good ports register, everything else
 * is rejected with a precise code and leaves the registry as it was. */
#include <criterion/criterion.h>
#include <string.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <sys/mman.h>
#endif

#include "portreg.h"
#include "testsupport.h"

/* With the generated message header on the include path (and nanopb
 * linked), the edge cases below are also run through nanopb alone, to show
 * which of them nanopb rejects by itself and which only a rule of
 * src/decode.c rejects. */
#if defined(__has_include)
#if __has_include("backend.pb.h") && __has_include(<pb_decode.h>)
#define HAVE_NANOPB 1
#include <pb_decode.h>

#include "backend.pb.h"
#endif
#endif

static portreg_t *reg;

static void setup(void)
{
    reg = portreg_create(NULL);
    cr_assert_not_null(reg);
    /* Something to disturb: a bound id and a pending one. */
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, NULL), 0);
    cr_assert_eq(portreg_track(reg, ID("zccache")), 0);
}

static void teardown(void)
{
    portreg_destroy(reg);
}

TestSuite(decode, .init = setup, .fini = teardown);

/* Asserts that decoding body for both ids fails with code and that the
 * registry is unchanged, state by state. */
static void assert_rejected(const uint8_t *body, size_t len, int code)
{
    portreg_state_t before[2], after[2];
    uint64_t changes = portreg_changes(reg);
    cr_assert_eq(portreg_get(reg, ID("fbuild"), &before[0]), 0);
    cr_assert_eq(portreg_get(reg, ID("zccache"), &before[1]), 0);
    uint16_t port = 4321;
    cr_assert_eq(portreg_decode_and_register(reg, ID("fbuild"), body, len, &port), code);
    cr_assert_eq(portreg_decode_and_register(reg, ID("zccache"), body, len, &port), code);
    cr_assert_eq(portreg_decode_and_register(reg, ID("newcomer"), body, len, &port), code);
    cr_assert_eq(port, 4321, "the out-parameter is untouched on error");
    cr_assert_eq(portreg_get(reg, ID("fbuild"), &after[0]), 0);
    cr_assert_eq(portreg_get(reg, ID("zccache"), &after[1]), 0);
    cr_assert(state_eq(before[0], after[0]));
    cr_assert(state_eq(before[1], after[1]));
    cr_assert_eq(portreg_count(reg), 2);
    cr_assert_eq(portreg_changes(reg), changes);
    cr_assert_eq(portreg_decode_port(body, len, &port), code);
}

Test(decode, port_49152_registers_49152)
{
    uint8_t buf[PORTREG_READY_MAX_SIZE];
    int n = portreg_encode_ready(49152, buf, sizeof buf);
    cr_assert_gt(n, 0);
    uint16_t port = 0;
    portreg_state_t prev;
    cr_assert_eq(portreg_get(reg, ID("zccache"), &prev), 0);
    cr_assert_eq(portreg_decode_and_register(reg, ID("zccache"), buf, (size_t)n, &port), 0);
    cr_assert_eq(port, 49152);
    uint16_t looked = 0;
    cr_assert(portreg_lookup(reg, ID("zccache"), &looked));
    cr_assert_eq(looked, 49152);
}

Test(decode, hand_encoded_frame_matches_the_wire_format)
{
    /* field 1, varint: 0x08, then 49152 = 0x80 0x80 0x03 */
    const uint8_t body[] = {0x08, 0x80, 0x80, 0x03};
    uint8_t buf[PORTREG_READY_MAX_SIZE];
    cr_assert_eq(portreg_encode_ready(49152, buf, sizeof buf), (int)sizeof body);
    cr_assert_eq(memcmp(buf, body, sizeof body), 0);
    uint16_t port = 0;
    cr_assert_eq(portreg_decode_port(body, sizeof body, &port), 0);
    cr_assert_eq(port, 49152);
}

Test(decode, port_70000_is_erange_and_registry_untouched)
{
    uint8_t buf[PORTREG_READY_MAX_SIZE];
    int n = portreg_encode_ready(70000, buf, sizeof buf);
    cr_assert_gt(n, 0);
    assert_rejected(buf, (size_t)n, PORTREG_ERANGE);
}

Test(decode, largest_uint32_is_erange)
{
    uint8_t buf[PORTREG_READY_MAX_SIZE];
    int n = portreg_encode_ready(UINT32_MAX, buf, sizeof buf);
    cr_assert_eq(n, 6);
    assert_rejected(buf, (size_t)n, PORTREG_ERANGE);
}

Test(decode, empty_body_is_port_zero_so_erange)
{
    assert_rejected((const uint8_t *)"", 0, PORTREG_ERANGE);
    assert_rejected(NULL, 0, PORTREG_ERANGE);
}

Test(decode, explicit_port_zero_is_erange)
{
    const uint8_t body[] = {0x08, 0x00};
    assert_rejected(body, sizeof body, PORTREG_ERANGE);
}

Test(decode, null_body_with_length_is_einval)
{
    assert_rejected(NULL, 3, PORTREG_EINVAL);
}

Test(decode, unknown_fields_are_skipped)
{
    /* field 2 bytes "hi", port 8080, field 3 varint 7, field 4 fixed32 */
    const uint8_t body[] = {0x12, 0x02, 'h', 'i', 0x08, 0x90, 0x3f, 0x18, 0x07, 0x25, 1, 2, 3, 4};
    uint16_t port = 0;
    cr_assert_eq(portreg_decode_and_register(reg, ID("fbuild"), body, sizeof body, &port), 0);
    cr_assert_eq(port, 8080);
    uint16_t looked = 0;
    cr_assert(portreg_lookup(reg, ID("fbuild"), &looked));
    cr_assert_eq(looked, 8080);
}

Test(decode, bad_id_is_einval_before_decoding)
{
    const uint8_t body[] = {0x08, 0x50};
    cr_assert_eq(portreg_decode_and_register(reg, NULL, 3, body, sizeof body, NULL),
                 PORTREG_EINVAL);
    cr_assert_eq(portreg_decode_and_register(reg, "x", 0, body, sizeof body, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_decode_and_register(NULL, ID("x"), body, sizeof body, NULL),
                 PORTREG_EINVAL);
    cr_assert_eq(portreg_count(reg), 2);
}

Test(decode, encode_checks_its_buffer)
{
    uint8_t buf[2];
    cr_assert_eq(portreg_encode_ready(80, NULL, 6), PORTREG_EINVAL);
    cr_assert_eq(portreg_encode_ready(49152, buf, sizeof buf), PORTREG_EINVAL);
    cr_assert_eq(portreg_encode_ready(0, buf, sizeof buf), 0);
}

Test(decode, every_valid_port_round_trips)
{
    uint8_t buf[PORTREG_READY_MAX_SIZE];
    for (uint32_t p = 1; p <= 65535; p++) {
        int n = portreg_encode_ready(p, buf, sizeof buf);
        uint16_t port = 0;
        cr_assert_eq(portreg_decode_port(buf, (size_t)n, &port), 0);
        cr_assert_eq(port, p);
    }
}

/*
 * Bodies at the edges of what decodes, one row each. A malformed body is
 * turned down either by a rule of src/decode.c (named by its function) or
 * by nanopb itself (named by the error message pb_decode() leaves); rule
 * and nanopb both set means the rule fires first but nanopb would have
 * refused the body anyway. A row that names a rule and no nanopb message is
 * the reason the rule exists: nanopb alone accepts that body.
 */
struct edge {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    int code;           /* from portreg_decode_port() */
    uint16_t port;      /* when code is 0 */
    const char *rule;   /* the rule in src/decode.c that rejects it */
    const char *nanopb; /* what pb_decode() says when it rejects it */
};

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define PAD8       0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80

static const struct edge edges[] = {
    /* Tags: nanopb reads them as 32 bits. */
    {"a 35-bit tag nanopb reads as field 2^29-1",
     BYTES(0xf8, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x08, 0x50), PORTREG_EDECODE, 0, "tag_fits_32_bits",
     NULL},
    {"a 64-bit tag, sign-extended to 10 bytes",
     BYTES(0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x08, 0x50),
     PORTREG_EDECODE, 0, "tag_fits_32_bits", NULL},
    {"a tag of 2^32 (field 2^29)", BYTES(0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x08, 0x50),
     PORTREG_EDECODE, 0, NULL, "varint overflow"},
    {"an 11-byte tag", BYTES(0x90, PAD8, 0x80, 0x80, 0x00, 0x01, 0x08, 0x50), PORTREG_EDECODE, 0,
     NULL, "varint overflow"},
    {"a truncated tag", BYTES(0x08, 0x50, 0x80), PORTREG_EDECODE, 0, NULL, "end-of-stream"},
    {"eight 0xff bytes, a tag that never ends",
     BYTES(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"field number 0", BYTES(0x00, 0x01, 0x08, 0x50), PORTREG_EDECODE, 0, NULL, "zero tag"},
    {"field 2^29-1, the largest there is", BYTES(0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x08, 0x50), 0,
     80, NULL, NULL},
    {"a tag padded to 10 bytes", BYTES(0x90, PAD8, 0x00, 0x01, 0x08, 0x50), 0, 80, NULL, NULL},

    /* Wire types: nanopb skips 0, 1, 2 and 5 only, and the port is a varint. */
    {"a group in field 2", BYTES(0x13, 0x14, 0x08, 0x50), PORTREG_EDECODE, 0, NULL,
     "invalid wire_type"},
    {"a group end in field 2", BYTES(0x14, 0x08, 0x50), PORTREG_EDECODE, 0, NULL,
     "invalid wire_type"},
    {"wire type 6 in field 2", BYTES(0x16, 0x08, 0x50), PORTREG_EDECODE, 0, NULL,
     "invalid wire_type"},
    {"the port as a group", BYTES(0x0b, 0x0c), PORTREG_EDECODE, 0, NULL, "wrong wire type"},
    {"the port with wire type 7", BYTES(0x0f, 0x08, 0x50), PORTREG_EDECODE, 0, NULL,
     "wrong wire type"},
    {"the port as fixed32", BYTES(0x0d, 0x50, 0x1f, 0x00, 0x00), PORTREG_EDECODE, 0, NULL,
     "wrong wire type"},
    {"the port as fixed64", BYTES(0x09, 0x50, 0x1f, 0, 0, 0, 0, 0, 0), PORTREG_EDECODE, 0, NULL,
     "wrong wire type"},
    {"the port as bytes", BYTES(0x0a, 0x02, 0x1f, 0x50), PORTREG_EDECODE, 0, NULL,
     "wrong wire type"},

    /* Varints: nanopb limits the ones it decodes, not the ones it skips. */
    {"an 11-byte varint in field 2", BYTES(0x10, PAD8, 0x80, 0x80, 0x00, 0x08, 0x50),
     PORTREG_EDECODE, 0, "varint_fits_64_bits", NULL},
    {"a 13-byte varint in field 2", BYTES(0x10, PAD8, 0x80, 0x80, 0x80, 0x80, 0x00, 0x08, 0x50),
     PORTREG_EDECODE, 0, "varint_fits_64_bits", NULL},
    {"a 10-byte varint in field 2 with bits above 64", BYTES(0x10, PAD8, 0x80, 0x02, 0x08, 0x50),
     PORTREG_EDECODE, 0, "varint_fits_64_bits", NULL},
    {"a 10-byte varint in field 2 up to bit 63", BYTES(0x10, PAD8, 0x80, 0x01, 0x08, 0x50), 0, 80,
     NULL, NULL},
    {"a truncated varint in field 2", BYTES(0x08, 0x50, 0x10, 0x80), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"an 11-byte port", BYTES(0x08, 0x81, PAD8, 0x80, 0x00), PORTREG_EDECODE, 0, NULL,
     "varint overflow"},
    {"a 10-byte port with bits above 64", BYTES(0x08, 0xd0, PAD8, 0x02), PORTREG_EDECODE, 0, NULL,
     "varint overflow"},
    {"a port of 2^32", BYTES(0x08, 0x80, 0x80, 0x80, 0x80, 0x10), PORTREG_EDECODE, 0, NULL,
     "integer too large"},
    {"a truncated port", BYTES(0x08, 0x80, 0x80), PORTREG_EDECODE, 0, NULL, "end-of-stream"},
    {"a tag and no port", BYTES(0x08), PORTREG_EDECODE, 0, NULL, "end-of-stream"},
    {"port 80 padded to 10 bytes", BYTES(0x08, 0xd0, PAD8, 0x00), 0, 80, NULL, NULL},

    /* Lengths and fixed-size values: nanopb checks them against the end
     * (a length it truncates is refused by length_fits_32_bits, which
     * matters only in bodies of 2 GiB or more: see the test below). */
    {"a length nanopb would truncate, in a short body",
     BYTES(0x12, 0x80, 0x80, 0x80, 0x80, 0x78, 0x41), PORTREG_EDECODE, 0, "length_fits_32_bits",
     "end-of-stream"},
    {"a length of 2^32", BYTES(0x12, 0x80, 0x80, 0x80, 0x80, 0x10, 0x08, 0x50), PORTREG_EDECODE, 0,
     NULL, "varint overflow"},
    {"an 11-byte length", BYTES(0x12, 0x81, PAD8, 0x80, 0x00, 0x41, 0x08, 0x50), PORTREG_EDECODE, 0,
     NULL, "varint overflow"},
    {"a length past the end", BYTES(0x08, 0x50, 0x1a, 0x7f, 0x00), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"a payload cut short", BYTES(0x08, 0x50, 0x12, 0x05, 0x41), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"a fixed32 cut short", BYTES(0x08, 0x50, 0x15, 0x01, 0x02), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"a fixed64 cut short", BYTES(0x08, 0x50, 0x11, 1, 2, 3, 4, 5, 6, 7), PORTREG_EDECODE, 0, NULL,
     "end-of-stream"},
    {"a length padded to 10 bytes", BYTES(0x12, 0x81, PAD8, 0x00, 0x41, 0x08, 0x50), 0, 80, NULL,
     NULL},

    /* Well-formed bodies the rules must let through. */
    {"port 49152", BYTES(0x08, 0x80, 0x80, 0x03), 0, 49152, NULL, NULL},
    {"unknown fields of every wire type around the port",
     BYTES(0x12, 0x02, 'h', 'i', 0x08, 0x90, 0x3f, 0x18, 0x07, 0x25, 1, 2, 3, 4, 0x29, 1, 2, 3, 4,
           5, 6, 7, 8),
     0, 8080, NULL, NULL},
    {"the port twice: the last one wins", BYTES(0x08, 0x50, 0x08, 0x51), 0, 0x51, NULL, NULL},
    {"port 0 spelled out", BYTES(0x08, 0x00), PORTREG_ERANGE, 0, NULL, NULL},
    {"port 65536", BYTES(0x08, 0x80, 0x80, 0x04), PORTREG_ERANGE, 0, NULL, NULL},
};

#define NEDGES (sizeof edges / sizeof edges[0])

Test(decode, each_edge_case_gives_its_code)
{
    for (size_t i = 0; i < NEDGES; i++) {
        const struct edge *e = &edges[i];
        cr_assert_eq(e->code == PORTREG_EDECODE, e->rule != NULL || e->nanopb != NULL,
                     "%s: a body is malformed exactly when something rejects it", e->what);
        if (e->code != 0) {
            assert_rejected(e->bytes, e->len, e->code);
            continue;
        }
        uint16_t port = 0;
        cr_assert_eq(portreg_decode_port(e->bytes, e->len, &port), 0, "%s", e->what);
        cr_assert_eq(port, e->port, "%s", e->what);
    }
}

/* A body of 2 GiB and 6 bytes whose only field claims about 2^34 bytes:
 * nanopb reads that length as 2^31 and finds a complete field, an empty
 * message. The pages past the first are never touched by either decoder,
 * so this costs address space, not memory. */
#define HUGE_LEN (6 + ((size_t)1 << 31))

#if defined(_WIN32)
/* Windows: the range is reserved and only its first page committed, so a
 * read past the field would fault. */
static uint8_t *huge_body(void)
{
    void *p = VirtualAlloc(NULL, HUGE_LEN, MEM_RESERVE, PAGE_NOACCESS);
    if (p == NULL || VirtualAlloc(p, 4096, MEM_COMMIT, PAGE_READWRITE) == NULL)
        cr_skip_test("cannot reserve 2 GiB of address space");
    static const uint8_t field[] = {0x12, 0x80, 0x80, 0x80, 0x80, 0x78};
    memcpy(p, field, sizeof field);
    return p;
}

static void huge_body_free(uint8_t *body)
{
    VirtualFree(body, 0, MEM_RELEASE);
}
#else
static void huge_body_free(uint8_t *body)
{
    munmap(body, HUGE_LEN);
}

static uint8_t *huge_body(void)
{
    void *p = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        cr_skip_test("cannot map 2 GiB of address space (a 32-bit process?)");
    static const uint8_t field[] = {0x12, 0x80, 0x80, 0x80, 0x80, 0x78};
    memcpy(p, field, sizeof field);
    return p;
}
#endif

Test(decode, a_length_nanopb_would_truncate_is_edecode_in_a_huge_body)
{
    uint8_t *body = huge_body();
    assert_rejected(body, HUGE_LEN, PORTREG_EDECODE);
    uint32_t value = 7;
    cr_assert_eq(portreg_decode_ready(body, HUGE_LEN, &value), PORTREG_EDECODE);
    cr_assert_eq(value, 7);
#if HAVE_NANOPB
    /* The rule length_fits_32_bits is all that stands in the way. */
    running_process_broker_v2_BackendHttpReady msg =
        running_process_broker_v2_BackendHttpReady_init_zero;
    pb_istream_t in = pb_istream_from_buffer(body, HUGE_LEN);
    cr_assert(pb_decode(&in, running_process_broker_v2_BackendHttpReady_fields, &msg));
    cr_assert_eq(msg.port, 0);
#endif
    huge_body_free(body);
}

Test(decode, nanopb_alone_rejects_exactly_what_the_table_credits_it_with)
{
#if HAVE_NANOPB
    for (size_t i = 0; i < NEDGES; i++) {
        const struct edge *e = &edges[i];
        running_process_broker_v2_BackendHttpReady msg =
            running_process_broker_v2_BackendHttpReady_init_zero;
        pb_istream_t in = pb_istream_from_buffer(e->bytes, e->len);
        bool ok = pb_decode(&in, running_process_broker_v2_BackendHttpReady_fields, &msg);
        if (e->nanopb != NULL) {
            cr_assert(!ok, "%s: nanopb rejects it by itself", e->what);
            cr_assert_str_eq(PB_GET_ERROR(&in), e->nanopb, "%s", e->what);
            continue;
        }
        /* A rule row without a nanopb message is one nanopb accepts. */
        cr_assert(ok, "%s: nanopb alone accepts it (%s)", e->what, PB_GET_ERROR(&in));
        if (e->rule == NULL) {
            uint32_t value = 0;
            cr_assert_eq(portreg_decode_ready(e->bytes, e->len, &value), 0, "%s", e->what);
            cr_assert_eq(value, msg.port, "%s: the same port as nanopb alone", e->what);
        }
    }
#else
    cr_skip_test("the generated backend.pb.h and nanopb are not available to this test");
#endif
}
