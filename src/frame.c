/*
 * Wire framing: [u8 version = 1][u32 little-endian body length][body].
 *
 * The reader is a small state machine over caller-owned storage. The header
 * is parsed byte by byte, so any split of the stream gives the same frames,
 * and the version and length are judged the moment their bytes arrive: a bad
 * version costs one byte and an oversized length is refused before a single
 * body byte is buffered, let alone allocated.
 */
#include "portreg.h"

#include <stdlib.h>
#include <string.h>

struct frame_reader {
    uint8_t *buf;        /* body bytes of the current frame; cap bytes */
    size_t cap;          /* never above max_body */
    uint32_t max_body;   /* limit on a declared length, <= PORTREG_FRAME_MAX_BODY */
    uint32_t body_len;   /* declared length, complete once header_have is HEADER_SIZE */
    uint32_t body_have;  /* body bytes in buf */
    int error;           /* sticky stream error; 0 while the stream is sound */
    uint8_t header_have; /* header bytes seen: 0 between frames, HEADER_SIZE in a body */
};

_Static_assert(sizeof(struct frame_reader) <= sizeof(portreg_frame_reader_t),
               "struct frame_reader must fit in portreg_frame_reader_t");
_Static_assert(_Alignof(struct frame_reader) <= _Alignof(portreg_frame_reader_t),
               "struct frame_reader must not need more alignment than portreg_frame_reader_t");
_Static_assert(PORTREG_FRAME_MAX_BODY <= UINT32_MAX, "a body length is a u32 on the wire");

#define HEADER_SIZE PORTREG_FRAME_HEADER_SIZE

/* Smallest buffer worth allocating: a BackendHttpReady body is 6 bytes, so
 * one allocation serves every ordinary frame. */
#define MIN_CAP 256u
/* Above this, a buffer left over from a big frame is dropped when a frame
 * under a quarter of its size begins, so one large frame does not pin its
 * memory for the rest of a long-lived stream. */
#define KEEP_CAP (64u * 1024u)

/* Returned for a zero-length body: callers get a non-NULL pointer even when
 * no buffer has ever been allocated. */
static const uint8_t empty_body[1];

static inline struct frame_reader *reader_of(portreg_frame_reader_t *fr)
{
    return (struct frame_reader *)(void *)fr->opaque;
}

static inline const struct frame_reader *const_reader_of(const portreg_frame_reader_t *fr)
{
    return (const struct frame_reader *)(const void *)fr->opaque;
}

PORTREG_API void portreg_frame_reader_init(portreg_frame_reader_t *fr, size_t max_body)
{
    if (fr == NULL)
        return;
    struct frame_reader *r = reader_of(fr);
    memset(fr, 0, sizeof(*fr));
    if (max_body == 0 || max_body > PORTREG_FRAME_MAX_BODY)
        max_body = PORTREG_FRAME_MAX_BODY;
    r->max_body = (uint32_t)max_body;
}

/* Makes room for need body bytes (need <= body_len <= max_body). Grows by
 * doubling so that a body arriving in many small pieces is copied a bounded
 * number of times, but never past the declared length: a peer that declares
 * 16 MiB and sends a trickle makes us hold only about twice what it sent.
 * On failure the reader is unchanged apart from a dropped spare buffer. */
static bool reserve(struct frame_reader *r, size_t need)
{
    if (r->body_have == 0 && r->cap > KEEP_CAP && r->body_len < r->cap / 4) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    if (need <= r->cap)
        return true;
    size_t cap = r->cap < MIN_CAP ? MIN_CAP : r->cap;
    while (cap < need)
        cap *= 2;
    if (cap > r->body_len)
        cap = r->body_len;
    uint8_t *p;
    if (r->body_have == 0) {
        /* Nothing in the old buffer is worth realloc()'s copy. */
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
        p = malloc(cap);
    } else {
        p = realloc(r->buf, cap);
    }
    if (p == NULL)
        return false;
    r->buf = p;
    r->cap = cap;
    return true;
}

static int fail(struct frame_reader *r, int code)
{
    r->error = code;
    return code;
}

/*
 * The body is always copied into the reader's buffer, even when the whole
 * frame sits in data: a pointer into data would only live as long as the
 * caller's buffer, while the header promises "until the next call", and a
 * caller may well refill its read buffer before it is done with the body.
 * On an error, *consumed counts the bytes read up to and including the one
 * that showed the error; on ENOMEM it is 0 and the reader is exactly as it
 * was before the call, so the same call can simply be repeated.
 */
PORTREG_API int portreg_frame_feed(portreg_frame_reader_t *fr, const uint8_t *data, size_t len,
                                   size_t *consumed, const uint8_t **body, size_t *body_len)
{
    if (consumed != NULL)
        *consumed = 0;
    if (body != NULL)
        *body = NULL;
    if (body_len != NULL)
        *body_len = 0;
    /* Bad arguments say nothing about the stream, so they do not poison it. */
    if (fr == NULL || consumed == NULL || body == NULL || body_len == NULL ||
        (data == NULL && len > 0))
        return PORTREG_EINVAL;
    struct frame_reader *r = reader_of(fr);
    if (r->error != 0)
        return r->error;

    /* The header bytes are the only state this call changes before it can
     * run out of memory; remember them so ENOMEM can put them back. */
    const uint8_t saved_header_have = r->header_have;
    const uint32_t saved_body_len = r->body_len;
    size_t used = 0;

    while (r->header_have < HEADER_SIZE) {
        if (used == len) {
            *consumed = used;
            return 0;
        }
        const uint8_t byte = data[used++];
        if (r->header_have == 0) {
            if (byte != PORTREG_FRAME_VERSION) {
                *consumed = used;
                return fail(r, PORTREG_EVERSION);
            }
            r->body_len = 0;
        } else {
            r->body_len |= (uint32_t)byte << (8 * (r->header_have - 1));
        }
        r->header_have++;
        if (r->header_have == HEADER_SIZE && r->body_len > r->max_body) {
            *consumed = used;
            return fail(r, PORTREG_ETOOLARGE);
        }
    }

    const size_t missing = r->body_len - r->body_have;
    const size_t take = len - used < missing ? len - used : missing;
    if (take > 0) {
        if (!reserve(r, (size_t)r->body_have + take)) {
            r->header_have = saved_header_have;
            r->body_len = saved_body_len;
            *consumed = 0;
            return PORTREG_ENOMEM;
        }
        memcpy(r->buf + r->body_have, data + used, take);
        r->body_have += (uint32_t)take;
        used += take;
    }
    *consumed = used;
    if (r->body_have < r->body_len)
        return 0;

    *body = r->body_len > 0 ? r->buf : empty_body;
    *body_len = r->body_len;
    /* Back to "between frames"; buf keeps the body until the next call. */
    r->header_have = 0;
    r->body_have = 0;
    return 1;
}

PORTREG_API int portreg_frame_finish(const portreg_frame_reader_t *fr)
{
    if (fr == NULL)
        return PORTREG_EINVAL;
    const struct frame_reader *r = const_reader_of(fr);
    if (r->error != 0)
        return r->error;
    return r->header_have > 0 ? PORTREG_ETRUNCATED : 0;
}

/* Leaves the reader empty with its limit, so a second fini (or reuse) is
 * harmless. */
PORTREG_API void portreg_frame_reader_fini(portreg_frame_reader_t *fr)
{
    if (fr == NULL)
        return;
    struct frame_reader *r = reader_of(fr);
    const uint32_t max_body = r->max_body;
    free(r->buf);
    memset(fr, 0, sizeof(*fr));
    r->max_body = max_body;
}
