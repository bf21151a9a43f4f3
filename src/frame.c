/*
 * Wire framing: [u8 version = 1][u32 little-endian body length][body].
 *
 * A portreg_frame_reader_t holds a frame parser: a small state machine in
 * caller-owned storage, with one heap buffer for the body. The header is
 * parsed byte by byte, so any split of the stream gives the same frames,
 * and the version and length are judged the moment their bytes arrive: a
 * bad version costs one byte and an oversized length is refused before a
 * single body byte is buffered, let alone allocated. Body bytes are copied
 * into the buffer, which grows by doubling up to the declared length, and
 * the finished body is lent to the caller until the next call. An error in
 * the stream is sticky; an allocation failure undoes the call instead, so
 * the caller can repeat it.
 */
#include <stdlib.h>
#include <string.h>

#include "portreg.h"

/* The parser's state, kept inside portreg_frame_reader_t's opaque bytes. */
struct frame_parser {
    uint8_t *buf;        /* body bytes of the current frame; cap bytes */
    size_t cap;          /* never above max_body */
    uint32_t max_body;   /* limit on a declared length, <= PORTREG_FRAME_MAX_BODY */
    uint32_t body_len;   /* declared length, complete once header_have is HEADER_SIZE */
    uint32_t body_have;  /* body bytes in buf */
    int error;           /* sticky stream error; 0 while the stream is sound */
    uint8_t header_have; /* header bytes seen: 0 between frames, HEADER_SIZE in a body */
};

_Static_assert(sizeof(struct frame_parser) <= sizeof(portreg_frame_reader_t),
               "struct frame_parser must fit in portreg_frame_reader_t");
_Static_assert(_Alignof(struct frame_parser) <= _Alignof(portreg_frame_reader_t),
               "struct frame_parser must not need more alignment than portreg_frame_reader_t");
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

/* The parser in the caller's portreg_frame_reader_t: the public struct is
 * opaque bytes, so that its size is ABI and the layout is not. The static
 * asserts above make the cast safe. */
static inline struct frame_parser *parser_of(portreg_frame_reader_t *fr)
{
    return (struct frame_parser *)(void *)fr->opaque;
}

static inline const struct frame_parser *const_parser_of(const portreg_frame_reader_t *fr)
{
    return (const struct frame_parser *)(const void *)fr->opaque;
}

/* All zero is "between frames, no buffer, no error"; only the limit needs
 * setting. A NULL fr is ignored, as free(NULL) is: there is no code to
 * return it in. */
void portreg_frame_reader_init(portreg_frame_reader_t *fr, size_t max_body)
{
    if (fr == NULL)
        return;
    struct frame_parser *fp = parser_of(fr);
    memset(fr, 0, sizeof(*fr));
    if (max_body == 0 || max_body > PORTREG_FRAME_MAX_BODY)
        max_body = PORTREG_FRAME_MAX_BODY;
    fp->max_body = (uint32_t)max_body;
}

/* Makes room for need body bytes (need <= body_len <= max_body). Grows by
 * doubling so that a body arriving in many small pieces is copied a bounded
 * number of times, but never past the declared length: a peer that declares
 * 16 MiB and sends a trickle makes us hold only about twice what it sent.
 * On failure the parser is unchanged apart from a dropped spare buffer. */
static bool reserve(struct frame_parser *fp, size_t need)
{
    if (fp->body_have == 0 && fp->cap > KEEP_CAP && fp->body_len < fp->cap / 4) {
        free(fp->buf);
        fp->buf = NULL;
        fp->cap = 0;
    }
    if (need <= fp->cap)
        return true;
    size_t cap = fp->cap < MIN_CAP ? MIN_CAP : fp->cap;
    while (cap < need)
        cap *= 2;
    if (cap > fp->body_len)
        cap = fp->body_len;
    uint8_t *p;
    if (fp->body_have == 0) {
        /* Nothing in the old buffer is worth realloc()'s copy. */
        free(fp->buf);
        fp->buf = NULL;
        fp->cap = 0;
        p = malloc(cap);
    } else {
        p = realloc(fp->buf, cap);
    }
    if (p == NULL)
        return false;
    fp->buf = p;
    fp->cap = cap;
    return true;
}

/* Makes a broken stream stay broken: after a bad version nothing says
 * where the next frame starts, and after an oversized length getting there
 * would mean reading past a body we refused to hold. No later byte can be
 * trusted to start a frame. */
static int fail(struct frame_parser *fp, int code)
{
    fp->error = code;
    return code;
}

/*
 * The body is always copied into the parser's buffer, even when the whole
 * frame sits in data: a pointer into data would only live as long as the
 * caller's buffer, while the header promises "until the next call", and a
 * caller may well refill its read buffer before it is done with the body.
 * On an error, *consumed counts the bytes read up to and including the one
 * that showed the error; on ENOMEM it is 0 and the parser is exactly as it
 * was before the call, so the same call can simply be repeated.
 */
int portreg_frame_feed(portreg_frame_reader_t *fr, const uint8_t *data, size_t len,
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
    struct frame_parser *fp = parser_of(fr);
    if (fp->error != 0)
        return fp->error;

    /* The header bytes are the only state this call changes before it can
     * run out of memory; remember them so ENOMEM can put them back. */
    const uint8_t saved_header_have = fp->header_have;
    const uint32_t saved_body_len = fp->body_len;
    size_t used = 0;

    while (fp->header_have < HEADER_SIZE) {
        if (used == len) {
            *consumed = used;
            return 0;
        }
        const uint8_t byte = data[used++];
        if (fp->header_have == 0) {
            if (byte != PORTREG_FRAME_VERSION) {
                *consumed = used;
                return fail(fp, PORTREG_EVERSION);
            }
            fp->body_len = 0;
        } else {
            fp->body_len |= (uint32_t)byte << (8 * (fp->header_have - 1));
        }
        fp->header_have++;
        if (fp->header_have == HEADER_SIZE && fp->body_len > fp->max_body) {
            *consumed = used;
            return fail(fp, PORTREG_ETOOLARGE);
        }
    }

    const size_t missing = fp->body_len - fp->body_have;
    const size_t take = len - used < missing ? len - used : missing;
    if (take > 0) {
        if (!reserve(fp, (size_t)fp->body_have + take)) {
            fp->header_have = saved_header_have;
            fp->body_len = saved_body_len;
            *consumed = 0;
            return PORTREG_ENOMEM;
        }
        memcpy(fp->buf + fp->body_have, data + used, take);
        fp->body_have += (uint32_t)take;
        used += take;
    }
    *consumed = used;
    if (fp->body_have < fp->body_len)
        return 0;

    *body = fp->body_len > 0 ? fp->buf : empty_body;
    *body_len = fp->body_len;
    /* Back to "between frames"; buf keeps the body until the next call. */
    fp->header_have = 0;
    fp->body_have = 0;
    return 1;
}

/* Any header byte seen means a frame had begun: the stream ended inside
 * it. A sticky error wins, since it is the first thing that went wrong. */
int portreg_frame_finish(const portreg_frame_reader_t *fr)
{
    if (fr == NULL)
        return PORTREG_EINVAL;
    const struct frame_parser *fp = const_parser_of(fr);
    if (fp->error != 0)
        return fp->error;
    return fp->header_have > 0 ? PORTREG_ETRUNCATED : 0;
}

/* Leaves the parser empty with its limit, so a second fini (or reuse) is
 * harmless. */
void portreg_frame_reader_fini(portreg_frame_reader_t *fr)
{
    if (fr == NULL)
        return;
    struct frame_parser *fp = parser_of(fr);
    const uint32_t max_body = fp->max_body;
    free(fp->buf);
    memset(fr, 0, sizeof(*fr));
    fp->max_body = max_body;
}
