/* The wire-framing reader: portreg_frame_*(). */
#include "portreg.h"

#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

/*
 * Allocation hooks: these definitions interpose on malloc for the whole
 * process (the library's calls included), counting every allocation and
 * failing them on demand. Sanitizers bring their own allocator, so under
 * them the hooks are absent and the tests that need them are skipped.
 */
#if defined(__GLIBC__) && !defined(UNDER_SANITIZER)
#define HAVE_ALLOC_HOOKS 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static atomic_size_t allocations;
static atomic_bool allocations_fail;

void *malloc(size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return atomic_load_explicit(&allocations_fail, memory_order_relaxed) ? NULL
                                                                         : __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return atomic_load_explicit(&allocations_fail, memory_order_relaxed)
               ? NULL
               : __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return atomic_load_explicit(&allocations_fail, memory_order_relaxed)
               ? NULL
               : __libc_realloc(ptr, size);
}

static size_t allocations_seen(void)
{
    return atomic_load_explicit(&allocations, memory_order_relaxed);
}

static void fail_allocations(bool on)
{
    atomic_store_explicit(&allocations_fail, on, memory_order_relaxed);
}
#else
static size_t allocations_seen(void)
{
    return 0;
}
#endif

/* Writes [version][declared, LE][body_bytes of body] to out; returns the size. */
static size_t put_frame(uint8_t *out, uint8_t version, uint32_t declared, const void *body,
                        size_t body_bytes)
{
    out[0] = version;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (uint8_t)(declared >> (8 * i));
    if (body_bytes > 0)
        memcpy(out + PORTREG_FRAME_HEADER_SIZE, body, body_bytes);
    return PORTREG_FRAME_HEADER_SIZE + body_bytes;
}

static size_t put_text_frame(uint8_t *out, const char *text)
{
    return put_frame(out, PORTREG_FRAME_VERSION, (uint32_t)strlen(text), text, strlen(text));
}

/* Bodies seen so far, copied out because a body dies on the next feed. */
struct bodies {
    size_t count;
    size_t len[8];
    char text[8][64];
};

/* Feeds all of data, collecting every completed body. Returns 0 or the
 * first error. */
static int feed_all(portreg_frame_reader_t *fr, const uint8_t *data, size_t len, struct bodies *out)
{
    for (;;) {
        size_t used = SIZE_MAX, body_len = SIZE_MAX;
        const uint8_t *body = (const uint8_t *)"poison";
        int rc = portreg_frame_feed(fr, data, len, &used, &body, &body_len);
        if (rc < 0)
            return rc;
        cr_assert_leq(used, len);
        data += used;
        len -= used;
        if (rc == 0) {
            cr_assert_eq(len, 0, "feed asked for more bytes with %zu unread", len);
            cr_assert_null(body);
            cr_assert_eq(body_len, 0);
            return 0;
        }
        cr_assert_eq(rc, 1);
        cr_assert_not_null(body);
        cr_assert_lt(out->count, 8);
        cr_assert_lt(body_len, sizeof(out->text[0]));
        memcpy(out->text[out->count], body, body_len);
        out->text[out->count][body_len] = '\0';
        out->len[out->count++] = body_len;
    }
}

Test(frame, whole_frame_in_one_call_yields_the_body)
{
    uint8_t wire[64];
    size_t n = put_text_frame(wire, "hello");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(used, n);
    cr_assert_eq(body_len, 5);
    cr_assert_arr_eq(body, "hello", 5);
    cr_assert_eq(portreg_frame_finish(&fr), 0);
    portreg_frame_reader_fini(&fr);
}

Test(frame, every_split_point_of_a_two_frame_stream_yields_both_bodies)
{
    uint8_t wire[64];
    size_t n = put_text_frame(wire, "first body");
    n += put_text_frame(wire + n, "second");

    for (size_t split = 0; split <= n; split++) {
        portreg_frame_reader_t fr;
        portreg_frame_reader_init(&fr, 0);
        struct bodies got = {0};
        cr_assert_eq(feed_all(&fr, wire, split, &got), 0, "split at %zu", split);
        cr_assert_eq(feed_all(&fr, wire + split, n - split, &got), 0, "split at %zu", split);
        cr_assert_eq(got.count, 2, "split at %zu", split);
        cr_assert_str_eq(got.text[0], "first body");
        cr_assert_str_eq(got.text[1], "second");
        cr_assert_eq(portreg_frame_finish(&fr), 0);
        portreg_frame_reader_fini(&fr);
    }
}

Test(frame, split_one_byte_at_a_time_yields_the_body)
{
    uint8_t wire[64];
    size_t n = put_text_frame(wire, "byte by byte");
    n += put_frame(wire + n, PORTREG_FRAME_VERSION, 0, NULL, 0);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    struct bodies got = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(feed_all(&fr, wire + i, 1, &got), 0);
        bool at_boundary = i + 1 == 17 || i + 1 == n;
        cr_assert_eq(portreg_frame_finish(&fr), at_boundary ? 0 : PORTREG_ETRUNCATED,
                     "after byte %zu", i);
    }
    cr_assert_eq(got.count, 2);
    cr_assert_str_eq(got.text[0], "byte by byte");
    cr_assert_eq(got.len[1], 0);
    portreg_frame_reader_fini(&fr);
}

Test(frame, zero_length_body_is_a_complete_frame)
{
    uint8_t wire[8];
    size_t n = put_frame(wire, PORTREG_FRAME_VERSION, 0, NULL, 0);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len = 99;
    const uint8_t *body = NULL;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(used, PORTREG_FRAME_HEADER_SIZE);
    cr_assert_eq(body_len, 0);
    cr_assert_not_null(body, "an empty body still gets a usable pointer");
    cr_assert_eq(portreg_frame_finish(&fr), 0);
    portreg_frame_reader_fini(&fr);
}

static void expect_version_rejected(uint8_t version)
{
    uint8_t wire[16];
    size_t n = put_frame(wire, version, 3, "abc", 3);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), PORTREG_EVERSION,
                 "version %u", version);
    cr_assert_eq(used, 1, "the version byte alone decides");
    cr_assert_null(body);
    cr_assert_eq(portreg_frame_finish(&fr), PORTREG_EVERSION);
    portreg_frame_reader_fini(&fr);
}

Test(frame, version_0_is_rejected)
{
    expect_version_rejected(0);
}

Test(frame, version_2_is_rejected)
{
    expect_version_rejected(2);
}

static void expect_length_rejected(size_t max_body, uint32_t declared)
{
    uint8_t wire[8];
    put_frame(wire, PORTREG_FRAME_VERSION, declared, NULL, 0);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, max_body);

    size_t used, body_len;
    const uint8_t *body;
    size_t allocations_before = allocations_seen();
    int rc = portreg_frame_feed(&fr, wire, PORTREG_FRAME_HEADER_SIZE, &used, &body, &body_len);
    size_t allocations_after = allocations_seen();
    cr_assert_eq(rc, PORTREG_ETOOLARGE, "declared %u, limit %zu", declared, max_body);
    cr_assert_eq(used, PORTREG_FRAME_HEADER_SIZE, "the header alone decides");
    cr_assert_eq(allocations_after, allocations_before,
                 "nothing is allocated for a refused length");
    cr_assert_eq(portreg_frame_finish(&fr), PORTREG_ETOOLARGE);
    portreg_frame_reader_fini(&fr);
}

Test(frame, length_above_a_small_limit_is_rejected_before_allocation)
{
    expect_length_rejected(16, 17);
    expect_length_rejected(1, 2);
}

Test(frame, length_0xffffffff_is_rejected_before_allocation)
{
    expect_length_rejected(0, UINT32_MAX);
    expect_length_rejected(16, UINT32_MAX);
}

Test(frame, limits_above_16_mib_are_clamped_to_16_mib)
{
    expect_length_rejected(SIZE_MAX, PORTREG_FRAME_MAX_BODY + 1);
    expect_length_rejected((size_t)PORTREG_FRAME_MAX_BODY * 2, PORTREG_FRAME_MAX_BODY + 1);
    expect_length_rejected(0, PORTREG_FRAME_MAX_BODY + 1);
}

Test(frame, length_equal_to_a_small_limit_is_accepted)
{
    uint8_t wire[32];
    size_t n = put_text_frame(wire, "sixteen bytes!!!");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 16);
    struct bodies got = {0};
    cr_assert_eq(feed_all(&fr, wire, n, &got), 0);
    cr_assert_eq(got.count, 1);
    cr_assert_str_eq(got.text[0], "sixteen bytes!!!");
    portreg_frame_reader_fini(&fr);
}

static uint8_t *make_big_frame(size_t body_bytes, size_t *n)
{
    uint8_t *wire = malloc(PORTREG_FRAME_HEADER_SIZE + body_bytes);
    cr_assert_not_null(wire);
    put_frame(wire, PORTREG_FRAME_VERSION, (uint32_t)body_bytes, NULL, 0);
    for (size_t i = 0; i < body_bytes; i++)
        wire[PORTREG_FRAME_HEADER_SIZE + i] = (uint8_t)(i * 131 + (i >> 16));
    *n = PORTREG_FRAME_HEADER_SIZE + body_bytes;
    return wire;
}

Test(frame, body_of_16_mib_at_the_limit_is_accepted)
{
    size_t n;
    uint8_t *wire = make_big_frame(PORTREG_FRAME_MAX_BODY, &n);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(used, n);
    cr_assert_eq(body_len, PORTREG_FRAME_MAX_BODY);
    cr_assert(memcmp(body, wire + PORTREG_FRAME_HEADER_SIZE, body_len) == 0);
    portreg_frame_reader_fini(&fr);
    free(wire);
}

Test(frame, body_of_16_mib_in_uneven_pieces_is_reassembled)
{
    size_t n;
    uint8_t *wire = make_big_frame(PORTREG_FRAME_MAX_BODY, &n);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t off = 0, piece = 3, body_len = 0;
    const uint8_t *body = NULL;
    int rc = 0;
    while (off < n) {
        size_t len = n - off < piece ? n - off : piece;
        size_t used;
        rc = portreg_frame_feed(&fr, wire + off, len, &used, &body, &body_len);
        cr_assert_geq(rc, 0);
        cr_assert_eq(used, len);
        off += used;
        piece = piece * 3 + 7;
    }
    cr_assert_eq(rc, 1);
    cr_assert_eq(body_len, PORTREG_FRAME_MAX_BODY);
    cr_assert(memcmp(body, wire + PORTREG_FRAME_HEADER_SIZE, body_len) == 0);
    portreg_frame_reader_fini(&fr);
    free(wire);
}

Test(frame, small_frames_after_a_large_one_are_read_correctly)
{
    size_t n;
    uint8_t *wire = make_big_frame(256 * 1024, &n);
    uint8_t small[64];
    size_t small_n = put_text_frame(small, "small after large");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(body_len, 256 * 1024);
    /* The reader may drop its big buffer here; the bodies must not notice. */
    for (int i = 0; i < 3; i++) {
        struct bodies got = {0};
        cr_assert_eq(feed_all(&fr, small, 9, &got), 0);
        cr_assert_eq(feed_all(&fr, small + 9, small_n - 9, &got), 0);
        cr_assert_eq(got.count, 1);
        cr_assert_str_eq(got.text[0], "small after large");
    }
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert(memcmp(body, wire + PORTREG_FRAME_HEADER_SIZE, body_len) == 0);
    portreg_frame_reader_fini(&fr);
    free(wire);
}

Test(frame, end_of_stream_mid_header_is_truncated)
{
    uint8_t wire[16];
    put_text_frame(wire, "abc");
    for (size_t cut = 1; cut < PORTREG_FRAME_HEADER_SIZE; cut++) {
        portreg_frame_reader_t fr;
        portreg_frame_reader_init(&fr, 0);
        struct bodies got = {0};
        cr_assert_eq(feed_all(&fr, wire, cut, &got), 0);
        cr_assert_eq(portreg_frame_finish(&fr), PORTREG_ETRUNCATED, "cut at %zu", cut);
        portreg_frame_reader_fini(&fr);
    }
}

Test(frame, end_of_stream_mid_body_is_truncated)
{
    uint8_t wire[16];
    size_t n = put_text_frame(wire, "abc");
    for (size_t cut = PORTREG_FRAME_HEADER_SIZE; cut < n; cut++) {
        portreg_frame_reader_t fr;
        portreg_frame_reader_init(&fr, 0);
        struct bodies got = {0};
        cr_assert_eq(feed_all(&fr, wire, cut, &got), 0);
        cr_assert_eq(got.count, 0);
        cr_assert_eq(portreg_frame_finish(&fr), PORTREG_ETRUNCATED, "cut at %zu", cut);
        portreg_frame_reader_fini(&fr);
    }
}

Test(frame, end_of_stream_at_a_frame_boundary_is_clean)
{
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);
    cr_assert_eq(portreg_frame_finish(&fr), 0, "an empty stream ends cleanly");

    uint8_t wire[32];
    size_t n = put_text_frame(wire, "one");
    n += put_text_frame(wire + n, "two");
    struct bodies got = {0};
    cr_assert_eq(feed_all(&fr, wire, n, &got), 0);
    cr_assert_eq(got.count, 2);
    cr_assert_eq(portreg_frame_finish(&fr), 0);
    portreg_frame_reader_fini(&fr);
}

static void expect_sticky(const uint8_t *bad, size_t bad_len, int code)
{
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 8);
    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, bad, bad_len, &used, &body, &body_len), code);

    uint8_t good[16];
    size_t n = put_text_frame(good, "ok");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(portreg_frame_feed(&fr, good, n, &used, &body, &body_len), code);
        cr_assert_eq(used, 0);
        cr_assert_null(body);
        cr_assert_eq(portreg_frame_feed(&fr, good, 0, &used, &body, &body_len), code);
        cr_assert_eq(portreg_frame_finish(&fr), code);
    }
    portreg_frame_reader_fini(&fr);
}

Test(frame, bad_version_is_sticky)
{
    uint8_t bad[] = {7};
    expect_sticky(bad, sizeof(bad), PORTREG_EVERSION);
}

Test(frame, oversized_length_is_sticky)
{
    uint8_t bad[8];
    put_frame(bad, PORTREG_FRAME_VERSION, 9, NULL, 0);
    expect_sticky(bad, PORTREG_FRAME_HEADER_SIZE, PORTREG_ETOOLARGE);
}

Test(frame, null_arguments_are_rejected)
{
    uint8_t wire[16];
    size_t n = put_text_frame(wire, "x");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);
    size_t used, body_len;
    const uint8_t *body;

    cr_assert_eq(portreg_frame_feed(NULL, wire, n, &used, &body, &body_len), PORTREG_EINVAL);
    cr_assert_eq(portreg_frame_feed(&fr, NULL, n, &used, &body, &body_len), PORTREG_EINVAL);
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, NULL, &body, &body_len), PORTREG_EINVAL);
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, NULL, &body_len), PORTREG_EINVAL);
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_frame_finish(NULL), PORTREG_EINVAL);
    portreg_frame_reader_init(NULL, 0);
    portreg_frame_reader_fini(NULL);

    cr_assert_eq(portreg_frame_feed(&fr, NULL, 0, &used, &body, &body_len), 0,
                 "no data is fine when none is promised");
    cr_assert_eq(used, 0);
    /* Argument errors say nothing about the stream, which still works. */
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(body_len, 1);
    cr_assert_eq(body[0], 'x');
    portreg_frame_reader_fini(&fr);
}

Test(frame, back_to_back_frames_stop_after_the_first)
{
    uint8_t wire[32];
    size_t first = put_text_frame(wire, "alpha");
    size_t n = first + put_text_frame(wire + first, "beta");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    cr_assert_eq(used, first, "consumed marks where the second frame starts");
    cr_assert_arr_eq(body, "alpha", body_len);
    cr_assert_eq(portreg_frame_feed(&fr, wire + used, n - used, &used, &body, &body_len), 1);
    cr_assert_eq(used, n - first);
    cr_assert_eq(body_len, 4);
    cr_assert_arr_eq(body, "beta", 4);
    portreg_frame_reader_fini(&fr);
}

Test(frame, body_outlives_the_callers_input_buffer)
{
    uint8_t wire[32];
    size_t n = put_text_frame(wire, "keep me");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    size_t used, body_len;
    const uint8_t *body;
    cr_assert_eq(portreg_frame_feed(&fr, wire, n, &used, &body, &body_len), 1);
    memset(wire, 0xAA, sizeof(wire));
    cr_assert_arr_eq(body, "keep me", 7);
    portreg_frame_reader_fini(&fr);
}

Test(frame, reader_is_reusable_after_fini)
{
    uint8_t wire[32];
    size_t n = put_text_frame(wire, "again");
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);
    struct bodies got = {0};
    cr_assert_eq(feed_all(&fr, wire, 3, &got), 0);
    portreg_frame_reader_fini(&fr);
    portreg_frame_reader_fini(&fr);

    portreg_frame_reader_init(&fr, 0);
    cr_assert_eq(feed_all(&fr, wire, n, &got), 0);
    cr_assert_eq(got.count, 1);
    cr_assert_str_eq(got.text[0], "again");
    portreg_frame_reader_fini(&fr);
}

Test(frame, out_of_memory_leaves_the_reader_where_it_was)
{
#ifndef HAVE_ALLOC_HOOKS
    cr_skip_test("needs the allocation hooks (glibc, no sanitizer)");
#else
    size_t n;
    uint8_t *wire = make_big_frame(64 * 1024, &n);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);
    size_t used = 99, body_len;
    const uint8_t *body;

    /* A whole frame in one call: the header it read is put back. */
    fail_allocations(true);
    int rc = portreg_frame_feed(&fr, wire, n, &used, &body, &body_len);
    fail_allocations(false);
    cr_assert_eq(rc, PORTREG_ENOMEM);
    cr_assert_eq(used, 0);
    cr_assert_eq(portreg_frame_finish(&fr), 0, "still between frames");

    /* Mid-body: the bytes already buffered survive. */
    size_t head = PORTREG_FRAME_HEADER_SIZE + 1000;
    cr_assert_eq(portreg_frame_feed(&fr, wire, head, &used, &body, &body_len), 0);
    cr_assert_eq(used, head);
    fail_allocations(true);
    rc = portreg_frame_feed(&fr, wire + head, n - head, &used, &body, &body_len);
    fail_allocations(false);
    cr_assert_eq(rc, PORTREG_ENOMEM);
    cr_assert_eq(used, 0);
    cr_assert_eq(portreg_frame_finish(&fr), PORTREG_ETRUNCATED, "still inside the frame");

    cr_assert_eq(portreg_frame_feed(&fr, wire + head, n - head, &used, &body, &body_len), 1);
    cr_assert_eq(used, n - head);
    cr_assert_eq(body_len, 64 * 1024);
    cr_assert(memcmp(body, wire + PORTREG_FRAME_HEADER_SIZE, body_len) == 0);
    portreg_frame_reader_fini(&fr);
    free(wire);
#endif
}

Test(frame, framed_ready_message_decodes_end_to_end)
{
    uint8_t msg[PORTREG_READY_MAX_SIZE];
    int msg_len = portreg_encode_ready(8080, msg, sizeof(msg));
    cr_assert_gt(msg_len, 0);
    uint8_t wire[32];
    size_t n = put_frame(wire, PORTREG_FRAME_VERSION, (uint32_t)msg_len, msg, (size_t)msg_len);
    portreg_frame_reader_t fr;
    portreg_frame_reader_init(&fr, 0);

    struct bodies got = {0};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(feed_all(&fr, wire + i, 1, &got), 0);
    cr_assert_eq(portreg_frame_finish(&fr), 0);
    cr_assert_eq(got.count, 1);
    const uint8_t *body = (const uint8_t *)got.text[0];

    uint16_t port = 0;
    cr_assert_eq(portreg_decode_port(body, got.len[0], &port), 0);
    cr_assert_eq(port, 8080);

    portreg_t *reg = portreg_create(NULL);
    cr_assert_not_null(reg);
    port = 0;
    cr_assert_eq(portreg_decode_and_register(reg, "api", 3, body, got.len[0], &port), 0);
    cr_assert_eq(port, 8080);
    uint16_t bound = 0;
    cr_assert(portreg_lookup(reg, "api", 3, &bound));
    cr_assert_eq(bound, 8080);
    portreg_destroy(reg);
    portreg_frame_reader_fini(&fr);
}
