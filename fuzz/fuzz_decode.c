/*
 * libFuzzer target: portreg_decode_and_register() on arbitrary bytes.
 *
 * Input: [selector][body]. The selector picks one of four ids and a change
 * to make to it first (none, track, register, untrack), so over a run the
 * ids pass through every state and "the registry is unchanged on error"
 * means something. Properties, each fatal when violated:
 *  - the result is 0, PORTREG_EDECODE or PORTREG_ERANGE, and equals
 *    portreg_decode_port() on the same body;
 *  - it agrees with a small independent reading of the wire format wherever
 *    the header's contract decides the answer (see model_decode());
 *  - on 0 the port is 1..65535 and reads back through portreg_lookup() and
 *    portreg_get() with a newer version, and the count and change counter
 *    moved by exactly what one register does;
 *  - on an error every id's state, the count and the change counter are
 *    exactly as before.
 */
#include "portreg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_decode: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NIDS 4
static const char long_id[PORTREG_ID_MAX + 1] =
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
static const struct {
    const char *id;
    size_t len;
} ids[NIDS] = {
    {"a", 1},
    {"backend-2", 9},
    {"nul\0inside", 10},
    {long_id, PORTREG_ID_MAX},
};

/* Versions only grow, 2^32 - 1 changes per registry; a fresh registry now and
 * then keeps long runs far from that (each input makes at most two). */
#define RUNS_PER_REGISTRY (1u << 20)

static portreg_t *reg;
static unsigned runs;

static portreg_t *registry(void)
{
    if (reg != NULL && ++runs % RUNS_PER_REGISTRY != 0)
        return reg;
    portreg_destroy(reg);
    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.hash_seed = 0x5eed; /* reproducible runs */
    reg = portreg_create(&opts);
    CHECK(reg != NULL);
    CHECK(portreg_track(reg, ids[1].id, ids[1].len) == 0);
    CHECK(portreg_register(reg, ids[2].id, ids[2].len, 8080, NULL) == 0);
    return reg;
}

enum { MODEL_UNSURE = 1 };

/* Reads a varint at *pos. Returns 1 with *value, 0 if the input ends inside
 * it, -1 if it runs past 10 bytes or overflows 64 bits (the 10th byte may
 * only add bit 63). */
static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *value)
{
    uint64_t v = 0;
    for (int i = 0;; i++) {
        if (*pos == n)
            return 0;
        uint8_t byte = p[(*pos)++];
        if (i == 9 && byte > 1)
            return -1;
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80))
            break;
    }
    *value = v;
    return 1;
}

/*
 * An independent reading of BackendHttpReady{uint32 port = 1} as the header
 * describes it: field 1 must be a varint of at most 10 bytes whose value fits
 * 32 bits, and the last one wins; unknown fields of wire types 0, 1, 2 and 5
 * are skipped; anything truncated, a field number 0 and other wire types are
 * EDECODE. Where the header leaves the answer to nanopb (a tag or length
 * varint longer than 5 bytes, a tag above 32 bits, an unknown varint longer
 * than 10 bytes) it returns MODEL_UNSURE and the caller checks only the
 * weaker properties.
 */
static int model_decode(const uint8_t *p, size_t n, uint16_t *port)
{
    uint64_t value = 0, tag, len;
    size_t pos = 0;
    while (pos < n) {
        size_t start = pos;
        int rc = read_varint(p, n, &pos, &tag);
        if (rc == 0)
            return PORTREG_EDECODE;
        if (rc < 0 || pos - start > 5 || tag > UINT32_MAX)
            return MODEL_UNSURE;
        if (tag >> 3 == 0)
            return PORTREG_EDECODE;
        const bool is_port = tag >> 3 == 1;
        switch (tag & 7) {
        case 0:
            rc = read_varint(p, n, &pos, is_port ? &value : &len);
            if (rc == 0)
                return PORTREG_EDECODE;
            if (rc < 0)
                return is_port ? PORTREG_EDECODE : MODEL_UNSURE;
            if (is_port && value > UINT32_MAX)
                return PORTREG_EDECODE;
            continue;
        case 1:
            len = 8;
            break;
        case 5:
            len = 4;
            break;
        case 2:
            start = pos;
            rc = read_varint(p, n, &pos, &len);
            if (rc == 0)
                return PORTREG_EDECODE;
            if (rc < 0 || pos - start > 5)
                return MODEL_UNSURE;
            if (len > UINT32_MAX)
                return PORTREG_EDECODE;
            break;
        default:
            return PORTREG_EDECODE;
        }
        if (is_port || len > n - pos)
            return PORTREG_EDECODE;
        pos += len;
    }
    if (value == 0 || value > UINT16_MAX)
        return PORTREG_ERANGE;
    *port = (uint16_t)value;
    return 0;
}

static bool same_state(portreg_state_t a, portreg_state_t b)
{
    return a.status == b.status && a.port == b.port && a.version == b.version;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return -1;
    portreg_t *r = registry();
    const uint8_t sel = data[0];
    const uint8_t *body = data + 1;
    const size_t body_len = size - 1;
    const unsigned which = sel & 3;
    const char *id = ids[which].id;
    const size_t id_len = ids[which].len;

    switch ((sel >> 2) & 3) {
    case 1:
        CHECK(portreg_track(r, id, id_len) == 0);
        break;
    case 2:
        CHECK(portreg_register(r, id, id_len, (uint16_t)(1000 + (sel >> 4)), NULL) == 0);
        break;
    case 3:
        CHECK(portreg_untrack(r, id, id_len, NULL) == 0);
        break;
    }

    portreg_state_t before[NIDS], after[NIDS];
    for (unsigned i = 0; i < NIDS; i++)
        CHECK(portreg_get(r, ids[i].id, ids[i].len, &before[i]) == 0);
    const size_t count_before = portreg_count(r);
    const uint64_t changes_before = portreg_changes(r);

    uint16_t want_port = 0, model_port = 0, port = 0;
    const int want = portreg_decode_port(body, body_len, &want_port);
    const int model = model_decode(body, body_len, &model_port);
    /* An empty body may come as NULL; it must still read as port 0. */
    const uint8_t *arg = body_len == 0 && (sel & 0x80) ? NULL : body;
    const int rc =
        portreg_decode_and_register(r, id, id_len, arg, body_len, (sel & 0x40) ? NULL : &port);

    CHECK(rc == 0 || rc == PORTREG_EDECODE || rc == PORTREG_ERANGE);
    CHECK(rc == want);
    if (model != MODEL_UNSURE) {
        CHECK(want == model);
        CHECK(want != 0 || want_port == model_port);
    }

    for (unsigned i = 0; i < NIDS; i++)
        CHECK(portreg_get(r, ids[i].id, ids[i].len, &after[i]) == 0);
    const size_t count_after = portreg_count(r);
    const uint64_t changes_after = portreg_changes(r);

    if (rc != 0) {
        for (unsigned i = 0; i < NIDS; i++)
            CHECK(same_state(before[i], after[i]));
        CHECK(count_after == count_before);
        CHECK(changes_after == changes_before);
        return 0;
    }

    CHECK(want_port >= 1);
    CHECK((sel & 0x40) || port == want_port);
    uint16_t bound = 0;
    CHECK(portreg_lookup(r, id, id_len, &bound) && bound == want_port);
    CHECK(after[which].status == PORTREG_BOUND && after[which].port == want_port);
    CHECK(after[which].version > before[which].version);
    for (unsigned i = 0; i < NIDS; i++)
        CHECK(i == which || same_state(before[i], after[i]));
    CHECK(count_after == count_before + (before[which].status == PORTREG_UNTRACKED));
    CHECK(changes_after == changes_before + 1);
    return 0;
}
