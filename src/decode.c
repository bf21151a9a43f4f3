/*
 * BackendHttpReady decoding and encoding, with nanopb-generated code.
 */
#include <pb_decode.h>
#include <pb_encode.h>

#include "backend.pb.h"
#include "internal.h"

/* A varint of at most 10 bytes whose value fits 64 bits. nanopb accepts
 * longer ones in unknown fields and truncates oversized tags; we do not. */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10 && *p < end; i++) {
        uint8_t b = *(*p)++;
        if (i == 9 && b > 1)
            return false; /* bits beyond 64 */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *value = v;
            return true;
        }
    }
    return false; /* truncated, or longer than 10 bytes */
}

/* The framing of every field is well formed: tags are valid field numbers
 * (1..2^29-1), varints are at most 10 bytes, lengths stay inside the body,
 * and there are no groups (proto3 has none). Field values are nanopb's
 * business. */
static bool wire_valid(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t tag, v;
        if (!wire_varint(&p, end, &tag) || tag > UINT32_MAX || (tag >> 3) == 0)
            return false;
        switch (tag & 7) {
        case 0: /* varint */
            if (!wire_varint(&p, end, &v))
                return false;
            break;
        case 1: /* fixed64 */
            if ((size_t)(end - p) < 8)
                return false;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (!wire_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            p += v;
            break;
        case 5: /* fixed32 */
            if ((size_t)(end - p) < 4)
                return false;
            p += 4;
            break;
        default: /* groups (3, 4) and the unused 6, 7 */
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
    if (body_len > 0 && !wire_valid(body, body_len))
        return PORTREG_EDECODE;
    /* nanopb rejects wrong wire types for field 1 and values that do not
     * fit the uint32 field; it skips unknown fields. */
    pb_istream_t in = pb_istream_from_buffer(body != NULL ? body : (const uint8_t *)"", body_len);
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
