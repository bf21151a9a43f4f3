/*
 * Writes the seed corpora for the fuzz targets: make_corpus DIR creates
 * DIR/decode and DIR/frame. Valid messages come from the library's own
 * encoder, so the seeds follow it if the encoding ever changes; the
 * malformed ones are built by hand, one file per way of being wrong.
 */
#include "portreg.h"

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

/* A seed being built; every seed here is far below 512 bytes. */
struct buf {
    uint8_t b[512];
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
    decode_seeds();
    frame_seeds();
    return failures == 0 ? 0 : 1;
}
