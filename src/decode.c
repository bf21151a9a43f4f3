/*
 * BackendHttpReady decoding and encoding, with nanopb-generated code.
 *
 * nanopb decides what a valid body is. It is lenient in three places the
 * header promises to reject, all in the framing around a value rather than
 * in the port itself: body_rules below lists them, one predicate each, and
 * every field must pass all of them before pb_decode() sees the body. The
 * other malformed bodies the header lists (field number 0, groups and
 * wire types 6 and 7, a truncated field, a length past the end, a port that
 * is not a varint or does not fit 32 bits) nanopb rejects by itself, so no
 * rule repeats them; tests/test_decode.c checks both halves of that split
 * against nanopb alone.
 */
#include <pb_decode.h>
#include <pb_encode.h>

#include "backend.pb.h"
#include "internal.h"

/* One field as it sits in the body: the bytes of its tag, and the bytes
 * after the tag up to the next field (for wire type 2, the length varint
 * and then the payload). */
struct field {
    const uint8_t *tag;
    size_t tag_len;
    pb_wire_type_t wire_type;
    const uint8_t *value;
    size_t value_len;
};

/* The varint at the start of bytes, read with nanopb's 64-bit decoder, so
 * "a valid varint" means what it means for the port: at most 10 bytes and
 * 64 bits. */
static bool varint_at(const uint8_t *bytes, size_t len, uint64_t *value)
{
    pb_istream_t in = pb_istream_from_buffer(bytes, len);
    return pb_decode_varint(&in, value);
}

/* nanopb reads a tag as a 32-bit varint, and where the bits above 32 look
 * like a sign extension it drops them instead of failing: the 35-bit tag
 * f8 ff ff ff 7f reads as field 2^29-1 and is skipped as unknown. A tag
 * that does not fit 32 bits names a field above 2^29-1, which no message
 * can have. */
static bool tag_fits_32_bits(const struct field *f)
{
    uint64_t tag;
    return varint_at(f->tag, f->tag_len, &tag) && tag <= UINT32_MAX;
}

/* nanopb decodes the port with the limits above, but skips a varint of an
 * unknown field by looking for the first byte without the continuation
 * bit, however far away: an 11-byte varint in field 2, or a 10-byte one
 * whose last byte carries bits above 64, passes. */
static bool varint_fits_64_bits(const struct field *f)
{
    uint64_t value;
    return f->wire_type != PB_WT_VARINT || varint_at(f->value, f->value_len, &value);
}

/* nanopb reads a length the way it reads a tag, with the same truncation:
 * the length 80 80 80 80 78 (about 2^34) reads as 2^31, so in a body of
 * 2 GiB or more the field ends early and its payload is parsed as fields.
 * Lengths are at most 32 bits. */
static bool length_fits_32_bits(const struct field *f)
{
    uint64_t len;
    return f->wire_type != PB_WT_STRING ||
           (varint_at(f->value, f->value_len, &len) && len <= UINT32_MAX);
}

/* What a body needs besides nanopb's approval, checked field by field. */
static bool (*const body_rules[])(const struct field *) = {
    tag_fits_32_bits,
    varint_fits_64_bits,
    length_fits_32_bits,
};

/* Walks the fields with nanopb's own field reader (pb_decode_tag() and
 * pb_skip_field()), so each field starts and ends where pb_decode() will
 * find it, and applies body_rules to each. Where that reader fails,
 * pb_decode() fails on the same field (it reads the port's varint where
 * the walk skips it, and a skip fails only where the body ends inside the
 * varint), so the walk stops there and leaves the verdict to it. */
static bool body_follows_rules(const uint8_t *body, size_t len)
{
    pb_istream_t in = pb_istream_from_buffer(body, len);
    while (in.bytes_left > 0) {
        struct field f = {.tag = body + (len - in.bytes_left)};
        uint32_t number;
        bool eof;
        if (!pb_decode_tag(&in, &f.wire_type, &number, &eof))
            return true;
        f.value = body + (len - in.bytes_left);
        f.tag_len = (size_t)(f.value - f.tag);
        if (!pb_skip_field(&in, f.wire_type))
            return true;
        f.value_len = (size_t)(body + (len - in.bytes_left) - f.value);
        for (size_t i = 0; i < sizeof body_rules / sizeof body_rules[0]; i++) {
            if (!body_rules[i](&f))
                return false;
        }
    }
    return true;
}

int portreg_decode_ready(const uint8_t *body, size_t body_len, uint32_t *value)
{
    running_process_broker_v2_BackendHttpReady msg =
        running_process_broker_v2_BackendHttpReady_init_zero;

    if (value == NULL || (body == NULL && body_len > 0))
        return PORTREG_EINVAL;
    if (body == NULL)
        body = (const uint8_t *)""; /* body_len is 0 */
    if (!body_follows_rules(body, body_len))
        return PORTREG_EDECODE;
    /* Besides rejecting what the comment at the top lists, nanopb skips
     * well-formed unknown fields and keeps the last port. */
    pb_istream_t in = pb_istream_from_buffer(body, body_len);
    if (!pb_decode(&in, running_process_broker_v2_BackendHttpReady_fields, &msg))
        return PORTREG_EDECODE;
    *value = msg.port; /* proto3 leaves an absent field at 0 */
    return 0;
}

int portreg_decode_port(const uint8_t *body, size_t body_len, uint16_t *port)
{
    uint32_t v;

    if (body == NULL && body_len > 0)
        return PORTREG_EINVAL;
    int rc = portreg_decode_ready(body, body_len, &v);
    if (rc != 0)
        return rc;
    /* The empty body decodes as port 0 and lands here. */
    if (v == 0 || v > UINT16_MAX)
        return PORTREG_ERANGE;
    if (port != NULL)
        *port = (uint16_t)v;
    return 0;
}

int portreg_decode_and_register(portreg_t *reg, const char *id, size_t id_len, const uint8_t *body,
                                size_t body_len, uint16_t *port)
{
    uint16_t p;

    if (reg == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    /* Decode completely before touching the registry: an error leaves it
     * exactly as it was. */
    int rc = portreg_decode_port(body, body_len, &p);
    if (rc != 0)
        return rc;
    rc = portreg_register(reg, id, id_len, p, NULL);
    if (rc == 0 && port != NULL)
        *port = p;
    return rc;
}

int portreg_encode_ready(uint32_t port, uint8_t *buf, size_t cap)
{
    running_process_broker_v2_BackendHttpReady msg = {.port = port};

    if (buf == NULL)
        return PORTREG_EINVAL;
    pb_ostream_t out = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode(&out, running_process_broker_v2_BackendHttpReady_fields, &msg))
        return PORTREG_EINVAL;
    return (int)out.bytes_written;
}
