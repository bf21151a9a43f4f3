/*
 * Writes the seed corpora for the fuzz targets: make_corpus DIR creates
 * DIR/decode, DIR/frame and DIR/ops. Valid messages come from the library's
 * own encoder, so the seeds follow it if the encoding ever changes; the
 * malformed ones are built by hand, one file per way of being wrong. The
 * ops seeds are scripts in fuzz_ops's input format (ops_format.h), one per
 * situation worth starting from.
 */
#include "portreg.h"

#include "ops_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;
static int failures;

static void make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

static void put_file(const char *target, const char *name, const void *bytes, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(bytes, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        failures++;
    }
}

/* A seed being built; every seed here is far below 4 KiB. */
struct buf {
    uint8_t b[4096];
    size_t n;
};

static void add(struct buf *out, const void *bytes, size_t len)
{
    if (out->n + len > sizeof(out->b)) {
        fprintf(stderr, "make_corpus: seed too large\n");
        exit(1);
    }
    memcpy(out->b + out->n, bytes, len);
    out->n += len;
}

#define ADD_LIT(out, lit) add((out), (lit), sizeof(lit) - 1)

static void add_ready(struct buf *out, uint32_t port)
{
    uint8_t msg[PORTREG_READY_MAX_SIZE];
    int len = portreg_encode_ready(port, msg, sizeof(msg));
    if (len < 0) {
        fprintf(stderr, "make_corpus: portreg_encode_ready(%u): %s\n", port, portreg_strerror(len));
        exit(1);
    }
    add(out, msg, (size_t)len);
}

static void add_header(struct buf *out, uint8_t version, uint32_t declared)
{
    uint8_t h[PORTREG_FRAME_HEADER_SIZE] = {version, (uint8_t)declared, (uint8_t)(declared >> 8),
                                            (uint8_t)(declared >> 16), (uint8_t)(declared >> 24)};
    add(out, h, sizeof(h));
}

static void add_frame(struct buf *out, const struct buf *body)
{
    add_header(out, PORTREG_FRAME_VERSION, (uint32_t)body->n);
    add(out, body->b, body->n);
}

/* fuzz_decode reads [selector][body]: the selector picks the id and what is
 * done to it first, so each body goes in once per id, each with a different
 * preparation (none, track, register, untrack). */
static void put_decode(const char *name, const struct buf *body)
{
    static const uint8_t selectors[] = {0x00, 0x05, 0x0a, 0x0f};
    for (size_t i = 0; i < sizeof(selectors); i++) {
        struct buf in = {.n = 0};
        add(&in, &selectors[i], 1);
        add(&in, body->b, body->n);
        char file[256];
        snprintf(file, sizeof(file), "%s.%zu", name, i);
        put_file("decode", file, in.b, in.n);
    }
}

#define DECODE_LIT(name, lit)                                                                      \
    do {                                                                                           \
        struct buf b_ = {.n = 0};                                                                  \
        ADD_LIT(&b_, lit);                                                                         \
        put_decode(name, &b_);                                                                     \
    } while (0)

static void decode_seeds(void)
{
    static const uint32_t ports[] = {1, 80, 8080, 49152, 65535, 0, 65536, 70000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        struct buf b = {.n = 0};
        add_ready(&b, ports[i]);
        char name[64];
        snprintf(name, sizeof(name), "port_%u", ports[i]);
        put_decode(name, &b);
    }

    DECODE_LIT("truncated_tag_only", "\x08");
    DECODE_LIT("truncated_varint", "\x08\x80");
    DECODE_LIT("truncated_varint_long", "\x08\xff\xff\xff");
    DECODE_LIT("overlong_10_byte_varint_80", "\x08\xd0\x80\x80\x80\x80\x80\x80\x80\x80\x00");
    DECODE_LIT("overlong_11_byte_varint", "\x08\xd0\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00");
    DECODE_LIT("varint_2_pow_32", "\x08\x80\x80\x80\x80\x10");
    DECODE_LIT("varint_2_pow_64_minus_1", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    DECODE_LIT("eight_ff", "\xff\xff\xff\xff\xff\xff\xff\xff");
    DECODE_LIT("wire_fixed32_field_1", "\x0d\x50\x00\x00\x00");
    DECODE_LIT("wire_length_delimited_field_1", "\x0a\x01\x50");
    DECODE_LIT("wire_fixed64_field_1", "\x09\x50\x00\x00\x00\x00\x00\x00\x00");
    DECODE_LIT("wire_group_field_1", "\x0b\x08\x50\x0c");
    DECODE_LIT("wire_type_6", "\x0e\x08\x50");
    DECODE_LIT("field_number_0", "\x00\x08\x50");
    DECODE_LIT("tag_over_32_bits", "\xf8\xff\xff\xff\x1f\x01\x08\x50");
    DECODE_LIT("largest_field_number", "\xf8\xff\xff\xff\x0f\x01\x08\x50");
    DECODE_LIT("unknown_group", "\x13\x14\x08\x50");
    DECODE_LIT("unknown_length_huge", "\x12\xff\xff\xff\xff\x0f");
    DECODE_LIT("unknown_length_truncated", "\x12\x05\x01");
    DECODE_LIT("unknown_fixed32_truncated", "\x15\x01\x02\x03");
    DECODE_LIT("unknown_long_varint",
               "\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00\x08\x50");

    struct buf b = {.n = 0};
    ADD_LIT(&b, "\x10\x05\x15\x01\x02\x03\x04\x19\x01\x02\x03\x04\x05\x06\x07\x08\x22\x02hi");
    add_ready(&b, 443);
    put_decode("unknown_fields_before", &b);

    b.n = 0;
    add_ready(&b, 443);
    ADD_LIT(&b, "\x1a\x03"
                "abc"
                "\x20\x7f\x2d\x00\x00\x00\x00");
    put_decode("unknown_fields_after", &b);

    b.n = 0;
    add_ready(&b, 80);
    add_ready(&b, 8080);
    put_decode("duplicate_last_wins", &b);

    b.n = 0;
    add_ready(&b, 8080);
    ADD_LIT(&b, "\x08\x00");
    put_decode("duplicate_last_is_zero", &b);

    b.n = 0;
    add_ready(&b, 80);
    add_ready(&b, 70000);
    put_decode("duplicate_last_too_large", &b);
}

static void frame_seeds(void)
{
    struct buf ready = {.n = 0}, empty = {.n = 0}, junk = {.n = 0}, s = {.n = 0};
    add_ready(&ready, 8080);
    ADD_LIT(&junk, "\xff\x00\x01\x08\x80");

    add_frame(&s, &ready);
    put_file("frame", "one_ready", s.b, s.n);

    struct buf other = {.n = 0};
    add_ready(&other, 65535);
    add_frame(&s, &other);
    put_file("frame", "two_ready", s.b, s.n);

    s.n = 0;
    add_frame(&s, &empty);
    put_file("frame", "zero_length", s.b, s.n);
    add_frame(&s, &ready);
    add_frame(&s, &empty);
    add_frame(&s, &junk);
    put_file("frame", "mixed", s.b, s.n);

    s.n = 0;
    for (int i = 0; i < 20; i++)
        add_frame(&s, &empty);
    put_file("frame", "many_empty", s.b, s.n);

    s.n = 0;
    add_header(&s, 0, (uint32_t)ready.n);
    add(&s, ready.b, ready.n);
    put_file("frame", "version_0", s.b, s.n);

    s.n = 0;
    add_frame(&s, &ready);
    add_header(&s, 2, (uint32_t)ready.n);
    add(&s, ready.b, ready.n);
    put_file("frame", "version_2_second", s.b, s.n);

    s.n = 0;
    add_header(&s, PORTREG_FRAME_VERSION, UINT32_MAX);
    add(&s, ready.b, ready.n);
    put_file("frame", "length_ffffffff", s.b, s.n);

    s.n = 0;
    add_header(&s, PORTREG_FRAME_VERSION, PORTREG_FRAME_MAX_BODY + 1);
    put_file("frame", "length_over_limit", s.b, s.n);

    s.n = 0;
    add_header(&s, PORTREG_FRAME_VERSION, 64);
    add(&s, junk.b, junk.n);
    put_file("frame", "length_over_small_limit", s.b, s.n);

    s.n = 0;
    add_frame(&s, &ready);
    s.n -= 1;
    put_file("frame", "truncated_body", s.b, s.n);
    s.n = 3;
    put_file("frame", "truncated_header", s.b, s.n);
}

/* fuzz_ops seeds: an options block, the ids, then operations. */
static void ops_begin(struct buf *s, uint8_t flags, uint8_t max, uint16_t seed, size_t nids)
{
    uint8_t h[5] = {flags, max, (uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(nids - 1)};
    s->n = 0;
    add(s, h, sizeof(h));
}

static void ops_literal_id(struct buf *s, const void *bytes, uint8_t len)
{
    uint8_t h[2] = {OPS_ID_LITERAL, len};
    add(s, h, sizeof(h));
    add(s, bytes, len);
}

/* mode OPS_NULL_ID_MODE | OPS_ID_RUN gives a NULL pointer of that length. */
static void ops_run_id(struct buf *s, uint8_t mode, uint16_t len, uint8_t byte)
{
    uint8_t h[4] = {mode, (uint8_t)len, (uint8_t)(len >> 8), byte};
    add(s, h, sizeof(h));
}

/* OPS_MAX_NIDS ids as runs of 1..50 bytes: the first 50 of byte a, the
 * rest of byte b. */
static void ops_run_ids(struct buf *s, uint8_t a, uint8_t b)
{
    for (uint8_t i = 0; i < OPS_MAX_NIDS; i++)
        ops_run_id(s, OPS_ID_RUN, (uint16_t)(1 + i % 50), i < 50 ? a : b);
}

static void ops_flip_id(struct buf *s, uint8_t from, uint8_t pos, uint8_t x)
{
    uint8_t h[4] = {OPS_ID_FLIP, from, pos, x};
    add(s, h, sizeof(h));
}

static void ops_resize_id(struct buf *s, uint8_t from, uint16_t len, uint8_t fill)
{
    uint8_t h[5] = {OPS_ID_RESIZE, from, (uint8_t)len, (uint8_t)(len >> 8), fill};
    add(s, h, sizeof(h));
}

/* who: the id or handle slot, | 0x80 for a NULL out-pointer. */
static void ops_op(struct buf *s, enum ops_op op, uint8_t who)
{
    uint8_t h[2] = {(uint8_t)op, who};
    add(s, h, sizeof(h));
}

static void add_port(struct buf *s, uint16_t port)
{
    uint8_t p[2] = {(uint8_t)port, (uint8_t)(port >> 8)};
    add(s, p, sizeof(p));
}

static void ops_register(struct buf *s, uint8_t who, uint16_t port)
{
    ops_op(s, OPS_REGISTER, who);
    add_port(s, port);
}

static void ops_register_if(struct buf *s, uint8_t who, uint16_t port, enum ops_expect e)
{
    ops_op(s, OPS_REGISTER_IF, who);
    add_port(s, port);
    uint8_t x = (uint8_t)e;
    add(s, &x, 1);
    if (e == OPS_EXPECT_RAW)
        add(s, "\x01\x00\x00\x00", 4);
}

static void ops_untrack_if(struct buf *s, uint8_t who, enum ops_expect e)
{
    ops_op(s, OPS_UNTRACK_IF, who);
    uint8_t x = (uint8_t)e;
    add(s, &x, 1);
}

static void ops_decode(struct buf *s, uint8_t who, const struct buf *body)
{
    ops_op(s, OPS_DECODE_AND_REGISTER, who);
    uint8_t len = (uint8_t)body->n;
    add(s, &len, 1);
    add(s, body->b, body->n);
}

static void ops_handle_open(struct buf *s, uint8_t slot, uint8_t id)
{
    ops_op(s, OPS_HANDLE_OPEN, slot);
    add(s, &id, 1);
}

/* Every state change, read back every way, on four ordinary ids. */
static void ops_seed_lifecycle(void)
{
    struct buf s, ready = {.n = 0}, bad = {.n = 0};
    add_ready(&ready, 443);
    ADD_LIT(&bad, "\x08\x80");

    ops_begin(&s, 0, 0, 1, 4);
    ops_literal_id(&s, "a", 1);
    ops_literal_id(&s, "backend-2", 9);
    ops_literal_id(&s, "nul\0inside", 10);
    ops_run_id(&s, OPS_ID_RUN, PORTREG_ID_MAX, 'z');
    for (uint8_t i = 0; i < 4; i++) {
        ops_op(&s, OPS_TRACK, i);
        ops_register(&s, i, (uint16_t)(8080 + i));
        ops_op(&s, OPS_GET, i);
        ops_op(&s, OPS_LOOKUP, i);
        ops_register_if(&s, i, 9090, OPS_EXPECT_CURRENT);
        ops_register_if(&s, i, 9091, OPS_EXPECT_ABOVE);
        ops_op(&s, OPS_UNBIND, i);
        ops_op(&s, OPS_UNBIND, i);
        ops_op(&s, OPS_ITERATE, 0);
        ops_untrack_if(&s, i, OPS_EXPECT_ZERO);
        ops_untrack_if(&s, i, OPS_EXPECT_CURRENT);
        ops_op(&s, OPS_UNTRACK, i);
        ops_register_if(&s, i, 7, OPS_EXPECT_ZERO);
        ops_decode(&s, i, &ready);
        ops_decode(&s, i, &bad);
        ops_register(&s, i, 0);
        ops_op(&s, OPS_SNAPSHOT, 0);
    }
    ops_op(&s, OPS_RECLAIM, 0);
    ops_op(&s, OPS_STATS, 0);
    put_file("ops", "lifecycle", s.b, s.n);
}

/* Empty, too long and NULL ids: every operation must say EINVAL. */
static void ops_seed_invalid_ids(void)
{
    struct buf s, ready = {.n = 0};
    add_ready(&ready, 80);

    ops_begin(&s, 0, 0, 2, 5);
    ops_literal_id(&s, "", 0);
    ops_run_id(&s, OPS_ID_RUN, PORTREG_ID_MAX + 1, 'x');
    ops_run_id(&s, OPS_ID_RUN, OPS_ID_LEN_LIMIT, 0);
    ops_run_id(&s, OPS_NULL_ID_MODE | OPS_ID_RUN, 5, 'n');
    ops_literal_id(&s, "ok", 2);
    for (uint8_t i = 0; i < 5; i++) {
        ops_op(&s, OPS_TRACK, i);
        ops_register(&s, i, 1);
        ops_register_if(&s, i, 1, OPS_EXPECT_ZERO);
        ops_op(&s, OPS_UNBIND, i);
        ops_op(&s, OPS_UNTRACK, i);
        ops_untrack_if(&s, i, OPS_EXPECT_ZERO);
        ops_op(&s, OPS_GET, i);
        ops_op(&s, OPS_GET, i | 0x80);
        ops_op(&s, OPS_LOOKUP, i);
        ops_decode(&s, i, &ready);
        ops_handle_open(&s, 0, i);
    }
    ops_op(&s, OPS_ITERATE, 0);
    put_file("ops", "invalid_ids", s.b, s.n);
}

/* max_ids 3 with six ids: inserts fail, tracked ids still change, and
 * untracking makes room again (after compaction). */
static void ops_seed_max_ids(void)
{
    struct buf s;

    ops_begin(&s, 0x80 | 2, 2, 3, 6);
    for (uint8_t i = 0; i < 6; i++)
        ops_run_id(&s, OPS_ID_RUN, (uint16_t)(i + 1), (uint8_t)('a' + i));
    for (uint8_t i = 0; i < 6; i++)
        ops_register(&s, i, (uint16_t)(100 + i));
    ops_register(&s, 0, 200);
    ops_op(&s, OPS_UNBIND, 1);
    ops_op(&s, OPS_UNTRACK, 2);
    ops_op(&s, OPS_TRACK, 4);
    ops_op(&s, OPS_TRACK, 2);
    ops_op(&s, OPS_UNTRACK, 0);
    ops_handle_open(&s, 0, 0);
    ops_handle_open(&s, 1, 5);
    ops_op(&s, OPS_TRACK, 5);
    ops_op(&s, OPS_HANDLE_CLOSE, 0);
    ops_op(&s, OPS_TRACK, 5);
    ops_op(&s, OPS_STATS, 0);
    put_file("ops", "max_ids", s.b, s.n);
}

/* 100 ids registered, untracked and registered again: enough untracked
 * ids for compaction, and versions must still only grow. */
static void ops_seed_churn(void)
{
    struct buf s;

    ops_begin(&s, 1, 0, 4, OPS_MAX_NIDS);
    ops_run_ids(&s, 'a', 'b');
    for (int round = 0; round < 2; round++) {
        for (uint8_t i = 0; i < OPS_MAX_NIDS; i++)
            ops_register(&s, i, (uint16_t)(1000 + i));
        ops_op(&s, OPS_SNAPSHOT, 0);
        for (uint8_t i = 0; i < OPS_MAX_NIDS; i++)
            ops_op(&s, OPS_UNTRACK, i);
    }
    ops_op(&s, OPS_STATS, 0);
    put_file("ops", "churn", s.b, s.n);
}

/* Ids one byte, one NUL or a prefix apart. */
static void ops_seed_near_duplicates(void)
{
    struct buf s;

    ops_begin(&s, 0, 0, 5, 8);
    ops_literal_id(&s, "service", 7);
    ops_flip_id(&s, 0, 6, 1);
    ops_resize_id(&s, 0, 8, 0);
    ops_resize_id(&s, 0, 6, 0);
    ops_flip_id(&s, 0, 0, 0); /* the same bytes as id 0 */
    ops_resize_id(&s, 0, PORTREG_ID_MAX, 0);
    ops_flip_id(&s, 5, 254, 0x80);
    ops_resize_id(&s, 5, PORTREG_ID_MAX + 1, 0);
    for (uint8_t i = 0; i < 8; i++)
        ops_register(&s, i, (uint16_t)(2000 + i));
    ops_op(&s, OPS_UNTRACK, 4);
    ops_op(&s, OPS_SNAPSHOT, 0);
    ops_op(&s, OPS_ITERATE, 0);
    put_file("ops", "near_duplicates", s.b, s.n);
}

/* The ids that cancelled 0.2.0's seed: 9..16 bytes ending in one 8-byte
 * constant, and longer ids starting with another; tiny initial table. */
static void ops_seed_hostile(void)
{
    static const uint8_t tail[8] = {0x6b, 0x2a, 0xed, 0x8a, 0x62, 0x51, 0xe1, 0xb7};
    static const uint8_t head[8] = {0xd1, 0x31, 0x9f, 0x29, 0x22, 0x38, 0x09, 0xa4};
    struct buf s;
    uint8_t id[40];

    ops_begin(&s, 1, 0, 6, 64);
    for (uint8_t i = 0; i < 32; i++) {
        uint8_t len = (uint8_t)(9 + i % 8);
        memset(id, i, len - 8);
        memcpy(id + len - 8, tail, 8);
        ops_literal_id(&s, id, len);
    }
    for (uint8_t i = 0; i < 32; i++) {
        uint8_t len = (uint8_t)(17 + i % 16);
        memcpy(id, head, 8);
        memset(id + 8, i, len - 8);
        ops_literal_id(&s, id, len);
    }
    for (uint8_t i = 0; i < 64; i++)
        ops_register(&s, i, (uint16_t)(3000 + i));
    ops_op(&s, OPS_STATS, 0);
    ops_op(&s, OPS_SNAPSHOT, 0);
    put_file("ops", "hostile", s.b, s.n);
}

/* Handles follow their id through every state; two share one id. */
static void ops_seed_handles(void)
{
    struct buf s;

    ops_begin(&s, 0, 0, 7, 2);
    ops_literal_id(&s, "h", 1);
    ops_literal_id(&s, "other", 5);
    ops_handle_open(&s, 0, 0);
    ops_handle_open(&s, 1, 0);
    ops_op(&s, OPS_HANDLE_GET, 0);
    ops_op(&s, OPS_TRACK, 0);
    ops_op(&s, OPS_HANDLE_GET, 1);
    ops_register(&s, 0, 5000);
    ops_op(&s, OPS_HANDLE_LOOKUP, 0);
    ops_op(&s, OPS_HANDLE_LOOKUP, 1 | 0x40);
    ops_op(&s, OPS_UNTRACK, 0);
    ops_op(&s, OPS_HANDLE_GET, 0);
    ops_op(&s, OPS_HANDLE_CLOSE, 0);
    ops_op(&s, OPS_RECLAIM, 0);
    ops_register(&s, 0, 5001);
    ops_op(&s, OPS_HANDLE_GET, 1);
    ops_op(&s, OPS_HANDLE_CLOSE, 1);
    ops_op(&s, OPS_HANDLE_CLOSE, 1);
    ops_op(&s, OPS_HANDLE_GET, 2);
    ops_handle_open(&s, 3, 1);
    put_file("ops", "handles", s.b, s.n);
}

/* Allocations fail one at a time: at the first insert, amid growth of a
 * small table, at handle_open and during untrack's compaction. */
static void ops_seed_alloc_failure(void)
{
    struct buf s;

    ops_begin(&s, 1, 0, 8, 80);
    for (uint8_t i = 0; i < 80; i++)
        ops_run_id(&s, OPS_ID_RUN, (uint16_t)(1 + i % 40), (uint8_t)(i < 40 ? 'x' : 'y'));
    for (uint8_t i = 0; i < 80; i++) {
        ops_op(&s, OPS_FAIL_ALLOC, 0);
        add(&s, &i, 1);
        ops_register(&s, i, (uint16_t)(4000 + i));
        ops_op(&s, OPS_TRACK, i);
    }
    ops_op(&s, OPS_FAIL_ALLOC, 0);
    add(&s, "\x00", 1);
    ops_handle_open(&s, 0, 3);
    for (uint8_t i = 0; i < 80; i++) {
        if (i % 8 == 0) {
            ops_op(&s, OPS_FAIL_ALLOC, 0);
            add(&s, &i, 1);
        }
        ops_op(&s, OPS_UNTRACK, i);
    }
    ops_op(&s, OPS_SNAPSHOT, 0);
    put_file("ops", "alloc_failure", s.b, s.n);
}

/* An iteration beside changes: untracks enough for a compaction, inserts
 * (growth), re-registers and re-tracks, between entries. */
static void ops_seed_iterate_meanwhile(void)
{
    struct buf s;

    ops_begin(&s, 1, 0, 9, OPS_MAX_NIDS);
    ops_run_ids(&s, 'p', 'q');
    for (uint8_t i = 0; i < 80; i++)
        ops_register(&s, i, (uint16_t)(6000 + i));
    for (uint8_t i = 0; i < 50; i++)
        ops_op(&s, OPS_UNTRACK, i);
    ops_op(&s, OPS_ITERATE, 0x80);
    for (uint8_t k = 0; k < OPS_ITER_STEPS / 2; k++) {
        /* step: 1 = next; 2k: change (kind (2k >> 1) % 4) of an id */
        uint8_t step[3] = {1, (uint8_t)(2 * (k % 4 == 1 ? 1 : 3)), (uint8_t)(50 + k)};
        if (k % 4 == 1)
            step[2] = (uint8_t)(80 + k % 20); /* register a new id */
        add(&s, step, sizeof(step));
    }
    ops_op(&s, OPS_STATS, 0);
    put_file("ops", "iterate_meanwhile", s.b, s.n);
}

/* At max_ids, after a compaction dropped an id: a handle on that id while
 * one allocation of the insert fails (the slot, or the table growing).
 * fuzz_ops found a pin left behind here once. */
static void ops_seed_handle_at_limit(void)
{
    for (uint8_t n = 0; n < 4; n++) {
        struct buf s;
        ops_begin(&s, 0x80 | 0x40 | 2, 2, 3, 4);
        ops_run_id(&s, OPS_ID_RUN, 1, 0);
        ops_run_id(&s, OPS_ID_RUN, 75, 'U');
        ops_run_id(&s, OPS_ID_RUN, 146, 'd');
        ops_run_id(&s, OPS_ID_RUN, 213, 0);
        for (uint8_t i = 0; i < 3; i++)
            ops_op(&s, OPS_TRACK, i);
        ops_op(&s, OPS_UNTRACK, 0);
        ops_op(&s, OPS_UNTRACK, 2);
        ops_op(&s, OPS_TRACK, 3);
        ops_op(&s, OPS_FAIL_ALLOC, 0);
        add(&s, &n, 1);
        ops_handle_open(&s, 1, 2);
        ops_op(&s, OPS_TRACK, 2);
        ops_op(&s, OPS_HANDLE_GET, 1);
        ops_op(&s, OPS_HANDLE_CLOSE, 1);
        ops_op(&s, OPS_STATS, 0);
        char name[64];
        snprintf(name, sizeof(name), "handle_at_limit.%u", n);
        put_file("ops", name, s.b, s.n);
    }
}

static void ops_seeds(void)
{
    ops_seed_lifecycle();
    ops_seed_invalid_ids();
    ops_seed_max_ids();
    ops_seed_churn();
    ops_seed_near_duplicates();
    ops_seed_hostile();
    ops_seed_handles();
    ops_seed_alloc_failure();
    ops_seed_iterate_meanwhile();
    ops_seed_handle_at_limit();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    char path[4096];
    make_dir(root);
    snprintf(path, sizeof(path), "%s/decode", root);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/frame", root);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/ops", root);
    make_dir(path);
    decode_seeds();
    frame_seeds();
    ops_seeds();
    return failures == 0 ? 0 : 1;
}
