/*
 * BackendHttpReady decoding and encoding, with nanopb-generated code.
 */
#include <pb_decode.h>
#include <pb_encode.h>

#include "backend.pb.h"
#include "internal.h"

int portreg_decode_port(const uint8_t *body, size_t body_len, uint16_t *port)
{
    running_process_broker_v2_BackendHttpReady msg =
        running_process_broker_v2_BackendHttpReady_init_zero;

    if (body == NULL && body_len > 0)
        return PORTREG_EINVAL;
    /* nanopb rejects bad varints, wrong wire types for field 1, truncation
     * and values that do not fit the uint32 field; it skips unknown fields. */
    pb_istream_t in = pb_istream_from_buffer(body != NULL ? body : (const uint8_t *)"", body_len);
    if (!pb_decode(&in, running_process_broker_v2_BackendHttpReady_fields, &msg))
        return PORTREG_EDECODE;
    /* proto3 leaves an absent field at 0, so the empty body lands here. */
    if (msg.port == 0 || msg.port > UINT16_MAX)
        return PORTREG_ERANGE;
    if (port != NULL)
        *port = (uint16_t)msg.port;
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
