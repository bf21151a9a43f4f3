/*
 * The input format of fuzz_ops, shared by the target and the seed writer
 * (make_corpus) so that seeds keep meaning what they meant.
 *
 * An input is [options][ids][operations], read byte by byte; a read past
 * the end yields 0, so every byte string is a valid input.
 *
 * options, 5 bytes:
 *   [flags] bits 0-4: initial_capacity (0 means the default);
 *           bit 5: no_membarrier; bit 6: start the reclaim thread;
 *           bit 7: set max_ids
 *   [max]   max_ids = 1 + max % OPS_MAX_IDS_RANGE, when flags bit 7 is set
 *   [seed lo][seed hi]  hash_seed = 1 + this 16-bit value
 *   [n]     1 + n % OPS_MAX_NIDS ids follow
 *
 * id, one per [mode] byte; mode & 3 picks how its bytes are made:
 *   OPS_ID_LITERAL  [len] then len bytes
 *   OPS_ID_RUN      [len lo][len hi] (len % (OPS_ID_LEN_LIMIT + 1)) [byte]
 *   OPS_ID_FLIP     [j] an earlier id, [pos][xor]: byte pos % len ^= xor
 *   OPS_ID_RESIZE   [j] an earlier id, [len lo][len hi] new length, [fill]
 * (FLIP and RESIZE on the first id read as LITERAL.) mode >= 0xfc passes a
 * NULL pointer with that length. Lengths run to OPS_ID_LEN_LIMIT, past
 * PORTREG_ID_MAX, so invalid ids are common.
 *
 * operation: [op] [who] then the op's arguments. op % OPS_COUNT picks it;
 * who & 0x7f picks the id (modulo their number) or the handle slot
 * (modulo OPS_HANDLES), and who & 0x80 passes NULL for the optional
 * out-pointer (prev, port, state).
 *   register, register_if: [port lo][port hi]
 *   register_if, untrack_if: [expect]: expect % 4 == 0 the model's current
 *     version, 1 zero, 2 current + 1 + (expect >> 2), 3 the next 4 bytes
 *   decode_and_register: [len] then len body bytes; len 0xff passes a NULL
 *     body of length 0 or 1 (the op's who bit 6)
 *   handle_open: [id]
 *   iterate with who & 0x80: up to OPS_ITER_STEPS steps [b]: b odd takes
 *     the next entry; b even changes id [id]: (b >> 1) % 4 picks track,
 *     register (port 1 + b), unbind or untrack; then the rest is drained
 *   fail_alloc: [n]: the (1 + n % 8)-th allocation of the registry from
 *     now on fails
 */
#ifndef PORTREG_FUZZ_OPS_FORMAT_H
#define PORTREG_FUZZ_OPS_FORMAT_H

/* Enough distinct ids for 64 untracked ones, which sets off compaction. */
#define OPS_MAX_NIDS      100
#define OPS_MAX_IDS_RANGE 48
#define OPS_ID_LEN_LIMIT  300
#define OPS_HANDLES       4
#define OPS_ITER_STEPS    64
#define OPS_NULL_ID_MODE  0xfc

enum ops_id_mode { OPS_ID_LITERAL, OPS_ID_RUN, OPS_ID_FLIP, OPS_ID_RESIZE };

enum ops_op {
    OPS_TRACK,
    OPS_REGISTER,
    OPS_REGISTER_IF,
    OPS_UNBIND,
    OPS_UNTRACK,
    OPS_UNTRACK_IF,
    OPS_GET,
    OPS_LOOKUP,
    OPS_DECODE_AND_REGISTER,
    OPS_ITERATE,
    OPS_SNAPSHOT,
    OPS_HANDLE_OPEN,
    OPS_HANDLE_LOOKUP,
    OPS_HANDLE_GET,
    OPS_HANDLE_CLOSE,
    OPS_RECLAIM,
    OPS_STATS,
    OPS_FAIL_ALLOC,
    OPS_COUNT
};

enum ops_expect { OPS_EXPECT_CURRENT, OPS_EXPECT_ZERO, OPS_EXPECT_ABOVE, OPS_EXPECT_RAW };

#endif
