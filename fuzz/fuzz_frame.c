/*
 * libFuzzer target: the wire-framing reader, portreg_frame_*().
 *
 * The input is a byte stream. A plain one-pass parse of the whole buffer
 * (model_parse()) says which frames it holds and how it ends; the reader
 * must say the same however the stream is cut: all at once, one byte at a
 * time, and in pieces whose sizes (empty ones included) come from a hash of
 * the input. Each way runs under the default limit and under a small one, and
 * after every call finish() must agree with the position reached. Any
 * disagreement, a body over the limit, or a *consumed past the data aborts.
 */
#include "portreg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* What the stream holds, by the one-pass parse. */
struct model {
    size_t frames;
    size_t *start;      /* body offset of each complete frame */
    size_t *len;        /* body length of each complete frame */
    bool *boundary;     /* boundary[pos]: pos is between frames */
    int end;            /* 0, PORTREG_ETRUNCATED, PORTREG_EVERSION, PORTREG_ETOOLARGE */
    size_t error_after; /* for a feed error: bytes up to and including its cause */
};

static void model_parse(const uint8_t *p, size_t n, size_t limit, struct model *m)
{
    m->frames = 0;
    m->end = 0;
    m->error_after = 0;
    memset(m->boundary, 0, n + 1);
    size_t pos = 0;
    for (;;) {
        m->boundary[pos] = true;
        if (pos == n)
            return;
        if (p[pos] != PORTREG_FRAME_VERSION) {
            m->end = PORTREG_EVERSION;
            m->error_after = pos + 1;
            return;
        }
        if (n - pos < PORTREG_FRAME_HEADER_SIZE) {
            m->end = PORTREG_ETRUNCATED;
            return;
        }
        size_t len = 0;
        for (int i = 0; i < 4; i++)
            len |= (size_t)p[pos + 1 + i] << (8 * i);
        if (len > limit) {
            m->end = PORTREG_ETOOLARGE;
            m->error_after = pos + PORTREG_FRAME_HEADER_SIZE;
            return;
        }
        if (n - pos - PORTREG_FRAME_HEADER_SIZE < len) {
            m->end = PORTREG_ETRUNCATED;
            return;
        }
        m->start[m->frames] = pos + PORTREG_FRAME_HEADER_SIZE;
        m->len[m->frames++] = len;
        pos += PORTREG_FRAME_HEADER_SIZE + len;
    }
}

/* splitmix64: piece sizes that follow from the input alone. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

enum cut { CUT_WHOLE, CUT_BYTES, CUT_RANDOM };

static size_t next_piece(enum cut how, uint64_t *rng, size_t left)
{
    size_t piece = left;
    if (how == CUT_BYTES) {
        piece = 1;
    } else if (how == CUT_RANDOM) {
        uint64_t r = next_random(rng);
        if (r % 8 == 0)
            piece = 0;
        else if (r % 8 < 6)
            piece = 1 + (r >> 8) % 16;
        else
            piece = 1 + (r >> 8) % 4096;
    }
    return piece < left ? piece : left;
}

static void run(const uint8_t *p, size_t n, size_t limit, enum cut how, uint64_t seed,
                const struct model *m)
{
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, limit);
    const size_t effective = limit == 0 ? PORTREG_FRAME_MAX_BODY : limit;
    uint64_t rng = seed;
    size_t pos = 0, frames = 0;
    int rc = 0;

    while (pos < n) {
        size_t piece = next_piece(how, &rng, n - pos);
        /* A full piece until the reader has used it: feed stops after a frame. */
        size_t off = 0;
        do {
            size_t used = SIZE_MAX, body_len = SIZE_MAX;
            const uint8_t *body = (const uint8_t *)"";
            const uint8_t *data = piece == 0 ? NULL : p + pos + off;
            rc = portreg_frame_feed(&fr, data, piece - off, &used, &body, &body_len);
            if (rc < 0) {
                CHECK(rc == m->end);
                CHECK(pos + off + used == m->error_after);
                CHECK(frames == m->frames);
                CHECK(body == NULL && body_len == 0);
                goto failed;
            }
            CHECK(used <= piece - off);
            off += used;
            if (rc == 0) {
                CHECK(off == piece);
                CHECK(body == NULL && body_len == 0);
            } else {
                CHECK(rc == 1);
                CHECK(frames < m->frames);
                CHECK(body != NULL);
                CHECK(body_len <= effective);
                CHECK(body_len == m->len[frames]);
                CHECK(pos + off == m->start[frames] + body_len);
                CHECK(memcmp(body, p + m->start[frames], body_len) == 0);
                uint16_t port;
                int drc = portreg_decode_port(body, body_len, &port);
                CHECK(drc == 0 || drc == PORTREG_EDECODE || drc == PORTREG_ERANGE);
                frames++;
            }
            CHECK(portreg_frame_finish(&fr) == (m->boundary[pos + off] ? 0 : PORTREG_ETRUNCATED));
        } while (off < piece);
        pos += piece;
    }
    {
        size_t used = SIZE_MAX, body_len = SIZE_MAX;
        const uint8_t *body = (const uint8_t *)"";
        CHECK(portreg_frame_feed(&fr, NULL, 0, &used, &body, &body_len) == 0);
        CHECK(used == 0 && body == NULL && body_len == 0);
    }
    CHECK(frames == m->frames);
    CHECK(portreg_frame_finish(&fr) == m->end);
    portreg_frame_reader_fini(&fr);
    return;

failed:
    /* Sticky: the same error however the reader is called next. */
    for (int i = 0; i < 2; i++) {
        size_t used = SIZE_MAX, body_len = SIZE_MAX;
        const uint8_t *body = (const uint8_t *)"";
        CHECK(portreg_frame_feed(&fr, p, n, &used, &body, &body_len) == rc);
        CHECK(used == 0 && body == NULL && body_len == 0);
        CHECK(portreg_frame_finish(&fr) == rc);
    }
    portreg_frame_reader_fini(&fr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* FNV-1a: any change to the input changes how it is cut. */
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ data[i]) * 0x100000001b3u;

    struct model m;
    const size_t most = size / PORTREG_FRAME_HEADER_SIZE + 1;
    m.start = malloc(most * sizeof(*m.start));
    m.len = malloc(most * sizeof(*m.len));
    m.boundary = malloc(size + 1);
    CHECK(m.start != NULL && m.len != NULL && m.boundary != NULL);

    const size_t limits[2] = {0, 1 + hash % 64};
    for (int l = 0; l < 2; l++) {
        model_parse(data, size, limits[l] == 0 ? PORTREG_FRAME_MAX_BODY : limits[l], &m);
        run(data, size, limits[l], CUT_WHOLE, hash, &m);
        run(data, size, limits[l], CUT_BYTES, hash, &m);
        run(data, size, limits[l], CUT_RANDOM, hash, &m);
    }
    free(m.start);
    free(m.len);
    free(m.boundary);
    return 0;
}
