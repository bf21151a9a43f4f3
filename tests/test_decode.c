/* Decoding BackendHttpReady frames: good ports register, everything else
 * is rejected with a precise code and leaves the registry as it was. */
#include <criterion/criterion.h>
#include <string.h>

#include "portreg.h"

#define ID(s) (s), (sizeof(s) - 1)

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
    cr_assert_eq(memcmp(before, after, sizeof before), 0);
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

Test(decode, eight_ff_bytes_are_edecode_and_registry_untouched)
{
    const uint8_t body[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
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

Test(decode, truncated_varint_is_edecode)
{
    const uint8_t body[] = {0x08, 0x80, 0x80};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, tag_without_value_is_edecode)
{
    const uint8_t body[] = {0x08};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, value_above_32_bits_is_edecode)
{
    /* 2^32 as a varint: 0x80 0x80 0x80 0x80 0x10 */
    const uint8_t body[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x10};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, overlong_varint_is_edecode)
{
    const uint8_t body[] = {0x08, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, wrong_wire_types_for_port_are_edecode)
{
    const uint8_t fixed32[] = {0x0d, 0x50, 0x1f, 0x00, 0x00};
    const uint8_t fixed64[] = {0x09, 0x50, 0x1f, 0, 0, 0, 0, 0, 0};
    const uint8_t bytes[] = {0x0a, 0x02, 0x1f, 0x50};
    assert_rejected(fixed32, sizeof fixed32, PORTREG_EDECODE);
    assert_rejected(fixed64, sizeof fixed64, PORTREG_EDECODE);
    assert_rejected(bytes, sizeof bytes, PORTREG_EDECODE);
}

Test(decode, truncated_unknown_field_is_edecode)
{
    /* field 2, length-delimited, claims 5 bytes, has 1 */
    const uint8_t body[] = {0x08, 0x50, 0x12, 0x05, 0x41};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
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

Test(decode, repeated_port_field_takes_the_last_value)
{
    const uint8_t body[] = {0x08, 0x50, 0x08, 0x51};
    uint16_t port = 0;
    cr_assert_eq(portreg_decode_port(body, sizeof body, &port), 0);
    cr_assert_eq(port, 0x51);
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

Test(decode, overlong_varint_in_an_unknown_field_is_edecode)
{
    /* field 2 varint of 13 bytes, then port 80 */
    const uint8_t body[] = {0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                            0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x08, 0x50};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, tag_above_32_bits_is_edecode)
{
    /* 35 bits: nanopb would truncate it to a valid-looking tag */
    const uint8_t five_byte_tag[] = {0xf8, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x08, 0x50};
    assert_rejected(five_byte_tag, sizeof five_byte_tag, PORTREG_EDECODE);
    /* a tag padded to 10 bytes is non-minimal but legal */
    const uint8_t padded_tag[] = {0x90, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x00, 0x01, 0x08, 0x50};
    uint16_t port = 0;
    cr_assert_eq(portreg_decode_port(padded_tag, sizeof padded_tag, &port), 0);
    cr_assert_eq(port, 80);
}

Test(decode, field_number_zero_and_groups_are_edecode)
{
    const uint8_t field_zero[] = {0x00, 0x01, 0x08, 0x50};
    const uint8_t group[] = {0x13, 0x14, 0x08, 0x50};
    const uint8_t wire_type_7[] = {0x0f, 0x08, 0x50};
    assert_rejected(field_zero, sizeof field_zero, PORTREG_EDECODE);
    assert_rejected(group, sizeof group, PORTREG_EDECODE);
    assert_rejected(wire_type_7, sizeof wire_type_7, PORTREG_EDECODE);
}

Test(decode, length_past_the_end_is_edecode)
{
    const uint8_t body[] = {0x08, 0x50, 0x1a, 0x7f, 0x00};
    assert_rejected(body, sizeof body, PORTREG_EDECODE);
}

Test(decode, non_minimal_varint_within_ten_bytes_is_accepted)
{
    /* port 80 spelled in 10 bytes: legal protobuf */
    const uint8_t body[] = {0x08, 0xd0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    uint16_t port = 0;
    cr_assert_eq(portreg_decode_port(body, sizeof body, &port), 0);
    cr_assert_eq(port, 80);
}
