/*
 * portreg: a lock-free registry of backend HTTP ports.
 *
 * A broker fronts local backend daemons. Each daemon may start an HTTP
 * status server and report the port it got in a BackendHttpReady frame.
 * For every backend id the registry holds one of three states:
 *
 *   UNTRACKED       the registry has never heard of it, or it was untracked;
 *   PENDING         tracked, no port reported yet;
 *   BOUND(port)     tracked, its HTTP server listens on 127.0.0.1:port.
 *
 * Concurrency contract
 * --------------------
 * - Every function except portreg_create() and portreg_destroy() may be
 *   called from any number of threads at once, with no per-thread setup.
 *   A thread's first call on a registry allocates a small per-thread epoch
 *   record (about 256 bytes; it is recycled when the thread exits) and a
 *   link to it in malloc's memory (16 bytes, plus 8 bytes of the thread's
 *   link array per registry slot number up to the registry's; slot
 *   numbers are reused, so they stay below the most registries alive).
 *   portreg_thread_attach() does that step up front and reports failure.
 *   Threads may exit at any time, also while the registry is destroyed.
 *   A first call made from a thread-specific-data destructor while the
 *   thread exits is given back only if that destructor runs before glibc's
 *   last round of destructors (PTHREAD_DESTRUCTOR_ITERATIONS); otherwise
 *   the record stays registered until portreg_destroy(), and the thread's
 *   link and array of links are never freed, nor the registry's anchor
 *   (about 40 bytes) that the link holds. On Windows the library's exit
 *   handler is a fiber-local storage callback that runs once. A call made
 *   on an exiting thread after it (from a fiber-local storage callback
 *   allocated later, a DLL_THREAD_DETACH handler, a TLS callback, a C++
 *   thread_local destructor) links records as any call does; the library
 *   keeps a handle to the thread and hands them back for it once it has
 *   ended (at the next thread's first call on any registry, or at a
 *   portreg_destroy()). A thread whose first call of all is made there
 *   keeps its record until portreg_destroy(), as above.
 *   A library built by mingw-w64 GCC, whose thread-locals are emulated in
 *   blocks the C runtime frees while the thread exits, must get no such
 *   call at all: under Wine one hung the next thread's start or corrupted
 *   the heap. Built by clang for the same target (native thread-locals),
 *   it answers.
 * - The library stays loaded once loaded: a thread that used a registry
 *   runs the library's exit handler when it exits, also after dlclose().
 *   The shared library is linked with -z nodelete, and the static one
 *   asks for it in whatever shared object it goes into through
 *   pkg-config --static or the CMake target portreg::portreg_static (a
 *   plugin that links libportreg.a by hand must add -Wl,-z,nodelete).
 * - portreg_lookup() and portreg_get() are wait-free: no lock, no
 *   allocation (after the thread's first call), no system call, and no loop
 *   that a concurrent writer can make repeat. A lookup hashes the id and
 *   compares at most probe_max + 1 table entries (portreg_stats_t), each
 *   one key compare: the table never holds tombstones, the only thing that
 *   makes ck_ht_get_spmc() start over. libck grows its map before probe_max
 *   could pass 2 * max(64, buckets / 8); the registry rebuilds the table
 *   with fresh hash keys long before that (see "Hostile ids"), so in
 *   practice probe_max stays below log2 of the bucket count (about 20 at a
 *   million ids).
 * - Handle reads (portreg_handle_lookup(), portreg_handle_get()) are one
 *   atomic load: wait-free, no hash, no probe, no epoch section.
 * - Changing the state of a backend that the table already holds (register,
 *   re-register, unbind, untrack, re-track) is one compare-and-swap on the
 *   backend's packed state word: lock-free, no allocation. So is every
 *   operation that inserts nothing (unbind, untrack, a conflicting
 *   conditional call) on an id the table does not hold, also while a
 *   compaction is dropping it. Inserting a new id, growing the table and
 *   rebuilding it (compaction, reseeding) take the registry's writer lock;
 *   readers never wait for it, and nothing waits for readers while holding
 *   it.
 * - The state word packs status, port and version into one atomic 64-bit
 *   word, so every read returns one state the backend really had.
 * - Each operation is linearizable: it takes effect atomically at one point
 *   between its call and its return.
 * - Memory that readers may still hold is freed after an epoch grace
 *   period, so a reader never touches freed memory and churn never leaks.
 *   Readers enter an epoch section with plain stores where membarrier(2)
 *   is available (see portreg_options_t.no_membarrier). The first time a
 *   registry defers memory it starts one helper thread (all signals
 *   blocked) that frees deferred memory within about 200 ms of its grace
 *   period ending (a few tens of ms when no reader held it up), also when
 *   all writers have stopped, and sleeps while nothing is deferred
 *   (portreg_options_t.no_reclaim_thread turns it off). Writers free as
 *   well, at the latest after 32 deferred blocks or 1 MiB since the last
 *   attempt, so under churn the backlog is bounded by count and bytes as
 *   long as readers leave their sections (portreg_stats_t.deferred_bytes
 *   shows it).
 * - fork(): a child may go on using a registry (destroy included) if no
 *   thread of the parent was inside a call that holds the writer lock at
 *   the moment of the fork, as with any lock; the reclaim thread does not
 *   survive the fork, and the child starts its own on its next deferral.
 *   Threads of the parent that were exiting are forgotten. One that was
 *   inside a lookup or an iteration stays inside it in the child, where it
 *   holds back every later grace period: deferred memory then waits for
 *   portreg_destroy() (a child that execs at once is not affected). One
 *   that was freeing deferred memory leaves the child the one block (or
 *   compaction's batch) it was inside: the child cannot tell how far that
 *   free got, and fork() never waits for an allocator hook. Any number of
 *   the child's threads may then call in at once. The library's fork
 *   handlers hold its own locks across the fork (never while a hook
 *   runs); it
 *   registers them when it is loaded, from a constructor of priority 101.
 *   Fork handlers registered after that may create and destroy
 *   registries. Ones registered before it must not, nor may a thread that
 *   holds a lock such a handler takes: handlers registered by a shared
 *   library initialised before libportreg, by a constructor of priority
 *   101 or less, or before libportreg was dlopen()ed.
 *   An open iteration holds back every grace period that starts after it:
 *   keep iterations short.
 *
 * Hostile ids
 * -----------
 * Ids come from daemons the broker may not trust. Each table hashes ids
 * with four secret 64-bit keys derived from a random seed; every input
 * block is mixed with key material on both sides of each multiply, so no
 * id chosen without the keys lands in a chosen bucket, and no input can
 * cancel the seed. This resists blind flooding; it is not a cryptographic
 * MAC: someone who learns the keys, or the hash values of many chosen ids,
 * can build colliding ids. Then probe sequences grow, and when an insert
 * leaves probe_max above 16 + 2 * log2(buckets) (three times what random
 * ids reach) the table is rebuilt with fresh keys (portreg_stats_t.reseeds
 * counts it; no backend's state or version changes; at most once per 50%
 * growth of the table, so the cost stays O(1) amortized).
 * portreg_options_t.max_ids bounds the memory that ids can take.

 * Versions
 * --------
 * Each state carries a 32-bit version. Every applied change (track of an
 * untracked id, every register, unbind of a bound id, untrack of a tracked
 * id) gives the backend a version greater than any it had before in this
 * registry, also across untrack and re-track. An untracked backend reads as
 * version 0 and a tracked one never does. Versions come from a per-id
 * counter that resumes above every version a compacted-away id ever had, so
 * the guarantee holds for 2^32 - 1 changes per registry lifetime.
 *
 * Errors
 * ------
 * Functions that can fail return 0 or a negative PORTREG_E* code, and a
 * failed call changes nothing. portreg_strerror() names every code.
 *
 * Ids are byte strings of 1..PORTREG_ID_MAX bytes, compared byte for byte;
 * NUL bytes are allowed. The registry copies them.
 */
#ifndef PORTREG_H
#define PORTREG_H

/* Platforms: Linux (glibc, musl), other POSIX systems (macOS, the BSDs)
 * and Windows 8 or later, 64-bit only. Every contract in this header holds
 * on all of them, except where a declaration says what differs:
 * portreg_eventfd() (an eventfd on Linux, a socket on other POSIX systems, an
 * event object's HANDLE on Windows), the read side of the epochs (plain
 * stores with membarrier(2) on Linux; an atomic exchange per lookup
 * elsewhere, as with portreg_options_t.no_membarrier) and fork() (Windows
 * has none). The build picks the backend (PORTREG_OS; "posix" may also be
 * chosen on Linux).
 *
 * Windows: link the DLL through its import library (portreg.lib or
 * libportreg.dll.a), or the static library (libportreg.a) with
 * PORTREG_STATIC_DEFINE defined before this header (CMake's
 * portreg::portreg_static and pkg-config --static do that).
 *
 * Windows fibers: a thread's fibers share its epoch records (they are the
 * thread's, not the fiber's). A fiber must not move to another thread, nor
 * be deleted, while it holds an iteration open. A thread's records are
 * handed back at its exit when the fiber running then (or the thread, if
 * it is no fiber then) is the one whose call first set them up on that
 * thread; otherwise they stay with the registry until portreg_destroy() (a
 * record per registry per such thread). Deleting a fiber never hands back
 * the records of the thread that deletes it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Aligns the opaque buffers of caller-allocated structs, in every language
 * mode the header supports: C99 (GNU attribute), C11 and later, C++11 and
 * later. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define PORTREG__ALIGNAS(n) alignas(n)
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define PORTREG__ALIGNAS(n) _Alignas(n)
#elif defined(__GNUC__)
#define PORTREG__ALIGNAS(n) __attribute__((aligned(n)))
#else
#error "portreg.h needs C11, C++11 or a GNU-compatible compiler (to align its opaque structs)"
#endif

#if defined(PORTREG_STATIC_DEFINE)
#define PORTREG_API
#elif defined(_WIN32) && defined(PORTREG_BUILDING_DLL)
#define PORTREG_API __declspec(dllexport)
#elif defined(_WIN32)
#define PORTREG_API __declspec(dllimport)
#elif defined(__GNUC__)
#define PORTREG_API __attribute__((visibility("default")))
#else
#define PORTREG_API
#endif

#define PORTREG_VERSION_MAJOR 0
#define PORTREG_VERSION_MINOR 3
#define PORTREG_VERSION_PATCH 0
/* 0xMMmmpp: compare with >= in preprocessor checks. */
#define PORTREG_VERSION_HEX                                                                        \
    ((PORTREG_VERSION_MAJOR << 16) | (PORTREG_VERSION_MINOR << 8) | PORTREG_VERSION_PATCH)

/* Longest id, in bytes. */
#define PORTREG_ID_MAX 255

/* Return codes: PORTREG_OK (0) on success, or one of the negative codes.
 * This list is their only definition: it makes the enum constants below,
 * and portreg_strerror() and portreg_err_name() expand it for their texts.
 * XX(name, value, message). Values never change once released.
 *   PORTREG_EINVAL      NULL registry or required out-pointer, bad id, NULL body
 *   PORTREG_ENOMEM      allocation failed; the registry is unchanged
 *   PORTREG_EDECODE     the frame body is not a valid BackendHttpReady
 *   PORTREG_ERANGE      port is 0 or above 65535
 *   PORTREG_ECONFLICT   conditional update: the version did not match
 *   PORTREG_ETIMEDOUT   portreg_wait(): no change before the timeout
 *   PORTREG_EVERSION    frame: framing version other than 1
 *   PORTREG_ETOOLARGE   frame: declared body longer than the reader's limit
 *   PORTREG_ETRUNCATED  frame: the stream ended inside a frame
 *   PORTREG_ESYSTEM     a system call failed; portreg_last_errno() says why
 *   PORTREG_EFULL       a new id would exceed portreg_options_t.max_ids */
#define PORTREG_ERRNO_MAP(XX)                                                                      \
    XX(PORTREG_OK, 0, "success")                                                                   \
    XX(PORTREG_EINVAL, -1, "invalid argument")                                                     \
    XX(PORTREG_ENOMEM, -2, "out of memory; nothing changed")                                       \
    XX(PORTREG_EDECODE, -3, "frame body is not a valid BackendHttpReady")                          \
    XX(PORTREG_ERANGE, -4, "port out of range (must be 1..65535)")                                 \
    XX(PORTREG_ECONFLICT, -5, "version did not match; nothing changed")                            \
    XX(PORTREG_ETIMEDOUT, -6, "timed out waiting for a change")                                    \
    XX(PORTREG_EVERSION, -7, "unsupported framing version")                                        \
    XX(PORTREG_ETOOLARGE, -8, "frame body larger than the limit")                                  \
    XX(PORTREG_ETRUNCATED, -9, "stream ended inside a frame")                                      \
    XX(PORTREG_ESYSTEM, -10, "system call failed (see portreg_last_errno())")                      \
    XX(PORTREG_EFULL, -11, "the registry holds max_ids ids; nothing changed")

#define PORTREG__ERRNO_ENUM(name, value, message) name = (value),
enum { PORTREG_ERRNO_MAP(PORTREG__ERRNO_ENUM) };
#undef PORTREG__ERRNO_ENUM

typedef struct portreg portreg_t;

typedef enum {
    PORTREG_UNTRACKED = 0,
    PORTREG_PENDING = 1,
    PORTREG_BOUND = 2,
} portreg_status_t;

typedef struct {
    portreg_status_t status;
    uint16_t port;    /* 1..65535 when BOUND, else 0 */
    uint32_t version; /* 0 when UNTRACKED */
} portreg_state_t;

/* Allocator for everything the registry allocates. ctx is alloc_ctx. */
typedef void *(*portreg_alloc_fn)(void *ctx, size_t size);
typedef void (*portreg_free_fn)(void *ctx, void *ptr, size_t size);

typedef struct {
    /* Ids the table holds before its first grow; rounded up. 0: 64. */
    size_t initial_capacity;
    /* Seed from which each table's secret hash keys are derived (see
     * "Hostile ids"). 0 (recommended): random, from getrandom(2)
     * (BCryptGenRandom() on Windows) at create and again at every reseed.
     * Should the system's random source fail, create does not: it falls
     * back to a seed made from an address and the process id, and a reseed
     * to one derived from the previous seed, which an attacker may guess.
     * Non-zero: reproducible tables and reseeds, for tests; a seed an
     * attacker can guess defeats the keys. */
    uint64_t hash_seed;
    /* Both NULL: malloc/free. Both set: every allocation of the registry
     * goes through them (they must be thread-safe), except what may
     * outlive the registry, which uses malloc: portreg_snapshot()'s result,
     * and a few dozen bytes per registry and per thread using it that a
     * thread's exit may still read after portreg_destroy(). One set without
     * the other: EINVAL. */
    portreg_alloc_fn alloc;
    portreg_free_fn free;
    void *alloc_ctx;
    /* false (default): where the kernel offers membarrier(2), readers
     * enter their epoch section with plain stores and reclamation makes
     * every running thread of the process execute a memory barrier (an
     * interrupt to the cores running them, a few microseconds, at each
     * attempt to free deferred memory: at most every 10 ms from the
     * reclaim thread while memory waits, backing off to 160 ms while a
     * reader holds it up, and from writers once per 32 deferrals or 1 MiB).
     * true: readers pay an atomic exchange per section instead and no
     * other core is ever interrupted. */
    bool no_membarrier;
    /* Most ids the table may hold at once: tracked ids, untracked ids not
     * yet compacted away, wait placeholders and ids held by handles. An
     * insert that would exceed it first compacts the table, then fails
     * with PORTREG_EFULL and changes nothing. The compaction runs only if
     * at least 1/16 of max_ids could go (or is untracked and was inserted
     * since the last compaction, or 1/16 of max_ids inserts were refused
     * since), so churn at the limit costs O(1) amortized per insert. Ids
     * already held can always change state. 0: no limit. */
    size_t max_ids;
    /* false (default): the registry starts one helper thread the first
     * time it defers memory; while memory is deferred it tries to free it
     * every 10 ms (a grace period needs two such steps once readers have
     * left; up to 160 ms apart while a reader holds it up), also when
     * every writer has gone quiet, and it sleeps on a condition variable
     * while nothing is deferred. true: no thread; deferred memory is freed
     * by later writers (once 32 deferrals or 1 MiB have piled up; at every
     * writer-lock release with no_membarrier) and by portreg_reclaim(). */
    bool no_reclaim_thread;
    /* Must be zero (portreg_options_init() sees to it). Options added by
     * later versions take this space, zero meaning their default, so the
     * struct keeps its size; a library that finds a non-zero byte here that
     * it does not understand refuses it (portreg_create() fails, EINVAL). */
    uint64_t reserved[6];
} portreg_options_t;

/* Run-time version, PORTREG_VERSION_HEX of the library actually linked. */
PORTREG_API unsigned portreg_version(void);
/* "0.3.0": PORTREG_VERSION_MAJOR.MINOR.PATCH of the library linked. */
PORTREG_API const char *portreg_version_string(void);

/* A short message for any int: 0, every PORTREG_E* code, and a generic
 * text for anything else. Never NULL; the string is static. */
PORTREG_API const char *portreg_strerror(int code);
/* The code's name, "PORTREG_EINVAL"; "PORTREG_UNKNOWN" for unknown codes. */
PORTREG_API const char *portreg_err_name(int code);

/* Fills opts with the defaults (all zero, as documented above). */
PORTREG_API void portreg_options_init(portreg_options_t *opts);

/* Creates an empty registry; opts NULL means defaults. Returns NULL and sets
 * errno (ENOMEM, EINVAL, or EAGAIN when the process has no thread-specific
 * key left for the library's one key, which the first create makes and
 * nothing deletes) on failure. Not thread-safe with respect to the registry it
 * creates (nobody else can see it yet). */
PORTREG_API portreg_t *portreg_create(const portreg_options_t *opts);

/* Frees the registry and everything it holds. No other call on reg may be
 * running or start. Threads that used reg may exit before, during or after
 * it (a thread whose exit is handing its epoch record back as destroy
 * begins delays it by those few stores); a thread that outlives reg keeps
 * a link to it (a few dozen bytes of malloc's memory) until it exits or
 * next makes a first call on some registry. Any number of registries may
 * live at once; a thread finds its record in any of them in one step.
 * It waits for the registry's reclaim thread to leave the library's code;
 * on Windows it waits for neither that thread's start nor its end, which
 * need the loader lock, so it may run where that lock is held (DllMain, a
 * TLS callback, a C++ thread_local destructor). NULL is a no-op. */
PORTREG_API void portreg_destroy(portreg_t *reg);

/* Sets up the calling thread's epoch record now instead of on its first
 * call. Returns 0, PORTREG_EINVAL (reg NULL) or PORTREG_ENOMEM. Optional.
 * Lock-free. */
PORTREG_API int portreg_thread_attach(portreg_t *reg);

/* untracked -> pending; a tracked backend keeps its state and version.
 * Returns 0, PORTREG_EINVAL, PORTREG_ENOMEM or PORTREG_EFULL (a new id
 * beyond max_ids). Lock-free for known ids; takes the writer lock to
 * insert a new id. */
PORTREG_API int portreg_track(portreg_t *reg, const char *id, size_t id_len);

/* Any state -> bound(port), inserting the id if it is untracked. *prev (if
 * prev is not NULL) receives the state it replaced. Returns 0,
 * PORTREG_EINVAL, PORTREG_ERANGE (port 0), PORTREG_ENOMEM or PORTREG_EFULL.
 * Lock-free for known ids; takes the writer lock to insert a new id. */
PORTREG_API int portreg_register(portreg_t *reg, const char *id, size_t id_len, uint16_t port,
                                 portreg_state_t *prev);

/* True, and *port (if port is not NULL) set, iff the backend is bound.
 * False for bad arguments, and if the thread's first-call setup fails for
 * lack of memory (see portreg_thread_attach()).
 * Wait-free. */
PORTREG_API bool portreg_lookup(portreg_t *reg, const char *id, size_t id_len, uint16_t *port);

/* One id for portreg_lookup_many(). */
typedef struct {
    const char *id;
    size_t id_len;
} portreg_id_t;

/* Looks up ids[0 .. n) at once: ports[i] receives the port of ids[i] if it
 * is bound, else 0 (no bound backend has port 0), exactly as
 * portreg_lookup() would answer for that id, invalid ids included (0).
 * Returns the number of bound ids; PORTREG_EINVAL (reg NULL, or ids or
 * ports NULL while n > 0) or PORTREG_ENOMEM (first-call setup, as for
 * portreg_lookup()), writing nothing. ports must not overlap ids.
 * Each id's result is a state that id had at some instant during the
 * call; different ids may be read at different instants (not a snapshot).
 * The lookups of a batch overlap their memory accesses (prefetching), so
 * a large table answers many ids faster than one call per id.
 * Wait-free: each id costs at most what portreg_lookup() costs for it.
 * Safe with any concurrent call except destroy. */
PORTREG_API ptrdiff_t portreg_lookup_many(portreg_t *reg, const portreg_id_t *ids, size_t n,
                                          uint16_t *ports);

/* The backend's whole state. Returns 0, PORTREG_EINVAL or PORTREG_ENOMEM
 * (first-call setup). Wait-free. */
PORTREG_API int portreg_get(portreg_t *reg, const char *id, size_t id_len, portreg_state_t *state);

/* Tracked -> untracked; an untracked id returns 0 with prev UNTRACKED
 * (idempotent). Returns 0, PORTREG_EINVAL or PORTREG_ENOMEM (the thread's
 * first call could not allocate its epoch record; nothing changed).
 * Lock-free; afterwards it may compact untracked ids away if the writer
 * lock is free at that moment (a try-lock: it never waits for it). */
PORTREG_API int portreg_untrack(portreg_t *reg, const char *id, size_t id_len,
                                portreg_state_t *prev);

/* Bound -> pending (the backend's HTTP server went away, the backend is
 * still known). Pending and untracked ids are left as they are. Returns 0,
 * PORTREG_EINVAL or PORTREG_ENOMEM (first-call setup, as for untrack).
 * Lock-free. */
PORTREG_API int portreg_unbind(portreg_t *reg, const char *id, size_t id_len,
                               portreg_state_t *prev);

/* Like portreg_register(), applied only if the backend's version still
 * equals expected_version (0: only if untracked). Otherwise returns
 * PORTREG_ECONFLICT with the current state in *prev and changes nothing.
 * Every result but PORTREG_EINVAL, PORTREG_ERANGE, PORTREG_ENOMEM and
 * PORTREG_EFULL fills *prev. Lock-free for known ids; takes the writer lock to insert a new
 * id. */
PORTREG_API int portreg_register_if(portreg_t *reg, const char *id, size_t id_len, uint16_t port,
                                    uint32_t expected_version, portreg_state_t *prev);

/* Like portreg_untrack(), applied only if the backend's version still
 * equals expected_version; otherwise PORTREG_ECONFLICT with the current
 * state in *prev. expected_version 0 on an untracked backend succeeds with
 * no change. Also PORTREG_EINVAL, PORTREG_ENOMEM (first-call setup).
 * Lock-free. */
PORTREG_API int portreg_untrack_if(portreg_t *reg, const char *id, size_t id_len,
                                   uint32_t expected_version, portreg_state_t *prev);

/* Tracked backends. Exact when no writer runs; under concurrent writers, a
 * value the count had during the call, give or take writers in flight.
 * Wait-free. */
PORTREG_API size_t portreg_count(portreg_t *reg);

/* Decodes body (the bytes inside the wire framing) as a BackendHttpReady
 * and registers its port for id. *port (if port is not NULL) receives the
 * port. Returns 0, PORTREG_EINVAL (bad id, or body NULL with body_len > 0),
 * PORTREG_EDECODE (malformed: a varint longer than 10 bytes or truncated,
 * a tag of field 0 or above 2^29-1, a wrong wire type for port, a length
 * past the end, a group, a port value above 32 bits), PORTREG_ERANGE (port 0,
 * which includes the empty body, or above 65535), PORTREG_ENOMEM or
 * PORTREG_EFULL. Unknown
 * well-formed fields are skipped; if port appears twice the last one wins.
 * On any error the registry is exactly as it was. Lock-free as
 * portreg_register(). */
PORTREG_API int portreg_decode_and_register(portreg_t *reg, const char *id, size_t id_len,
                                            const uint8_t *body, size_t body_len, uint16_t *port);

/* Decodes a BackendHttpReady body without touching any registry; same
 * codes as portreg_decode_and_register(). */
PORTREG_API int portreg_decode_port(const uint8_t *body, size_t body_len, uint16_t *port);

/* Decodes a BackendHttpReady body and stores the port field exactly as
 * decoded in *value (0 when absent), with no range check: for callers that
 * report the offending value of a PORTREG_ERANGE. Returns 0, PORTREG_EINVAL
 * (value NULL, or body NULL with body_len > 0) or PORTREG_EDECODE. */
PORTREG_API int portreg_decode_ready(const uint8_t *body, size_t body_len, uint32_t *value);

/* Encodes BackendHttpReady{port} into buf (at most PORTREG_READY_MAX_SIZE
 * bytes). Returns the encoded length, or PORTREG_EINVAL if buf is NULL or
 * cap too small. Port 0 encodes as the empty body, as proto3 does. */
#define PORTREG_READY_MAX_SIZE 6
PORTREG_API int portreg_encode_ready(uint32_t port, uint8_t *buf, size_t cap);

/* Snapshot iterator
 * -----------------
 * Walks every tracked backend without blocking anyone; the walk runs inside
 * an epoch section from init to fini, so keep it short (it delays the
 * reclamation of memory, never a reader or writer: portreg_reclaim() on
 * another thread waits for it without holding any lock). Weakly consistent:
 * - every backend tracked for the whole iteration is returned exactly once;
 * - no id is returned twice;
 * - each entry's state is one the backend really had during the iteration;
 * - backends tracked or untracked during the iteration may or may not show.
 * entry->id points into the registry and stays valid until
 * portreg_iter_fini(). Iterators may nest and run on many threads at once;
 * one iterator belongs to one thread. Calls on the same registry are fine
 * between init and fini. */
typedef struct {
    const char *id;
    size_t id_len;
    portreg_state_t state;
} portreg_entry_t;

typedef struct {
    /* Private: the iterator's position and the epoch record it holds. */
    PORTREG__ALIGNAS(8) unsigned char opaque[96];
} portreg_iter_t;

/* Starts an iteration. If the thread's first-call setup fails for lack of
 * memory, the iteration is empty. */
PORTREG_API void portreg_iter_init(portreg_iter_t *it, portreg_t *reg);
/* The next tracked backend; false when done. Wait-free per call. */
PORTREG_API bool portreg_iter_next(portreg_iter_t *it, portreg_entry_t *entry);
/* Ends the iteration; entries' ids are invalid afterwards. */
PORTREG_API void portreg_iter_fini(portreg_iter_t *it);

/* A copy-out snapshot, sorted by id (bytewise, shorter first on a tie),
 * with the same guarantees as the iterator. It owns its ids and outlives
 * the registry. Returns 0, PORTREG_EINVAL or PORTREG_ENOMEM. */
typedef struct {
    size_t count;
    portreg_entry_t *entries;
} portreg_snapshot_t;

PORTREG_API int portreg_snapshot(portreg_t *reg, portreg_snapshot_t *snap);
/* Frees what portreg_snapshot() allocated; a zeroed snapshot is fine. */
PORTREG_API void portreg_snapshot_free(portreg_snapshot_t *snap);

/* Waiting for changes
 * -------------------
 * Blocks until the backend's version differs from seen_version (0 for
 * "untracked"), then stores its state in *state (if not NULL) and returns 0.
 * Returns at once if it already differs. Once asleep it also returns on
 * any change at all, so a wait on 0 returns when the id is tracked even
 * if it is untracked again before the waiter runs (the state it reports
 * may then be UNTRACKED). A waiter is asleep, in that sense, from the
 * instant a placeholder it inserts for an id the table lacks appears.
 * timeout_ns < 0, or so large that the deadline would overflow, waits
 * forever; otherwise PORTREG_ETIMEDOUT after that long with *state the
 * current state. Also PORTREG_EINVAL, PORTREG_ENOMEM and PORTREG_EFULL (an
 * untracked id needs a placeholder slot to sleep on; it counts toward
 * max_ids while someone sleeps on it and is compacted away after). Sleeps
 * on the system's word wait (a futex on Linux, WaitOnAddress on Windows, a
 * condition variable elsewhere): no polling, every waiter sleeps however many there are, and
 * writers pay nothing unless someone waits on that backend. Blocking. */
PORTREG_API int portreg_wait(portreg_t *reg, const char *id, size_t id_len, uint32_t seen_version,
                             int64_t timeout_ns, portreg_state_t *state);

/* The number of changes applied to the registry so far. Wait-free. */
PORTREG_API uint64_t portreg_changes(portreg_t *reg);

/* An eventfd (EFD_NONBLOCK | EFD_CLOEXEC) that becomes readable after any
 * change, for event loops: read it (8 bytes) to re-arm, then compare
 * portreg_changes() with the value you saw last. Created on first call; the
 * same fd afterwards; closed by portreg_destroy(). With the POSIX backend
 * (not Linux) it is one end of a Unix socket pair instead (O_NONBLOCK,
 * FD_CLOEXEC, set just after it is made), one byte per change (none once
 * its buffer is full: it is readable anyway): read until EAGAIN to re-arm.
 * Closing it is harmless there (never SIGPIPE). After fork() the child
 * shares it with the parent on every POSIX backend: a change in one makes
 * it readable in both, and a read in one re-arms it in both, so only one
 * of them should wait on it.
 * On Windows it is the HANDLE of an auto-reset event object, as an int
 * (Windows handles fit in 32 bits): (HANDLE)(intptr_t)portreg_eventfd(reg);
 * it is set after any change (an auto-reset event: one waiter wakes per
 * signal, so give it to one event loop), and a successful wait on it
 * (WaitForSingleObject(), WaitForMultipleObjects(),
 * RegisterWaitForSingleObject()) re-arms it; do not close it. Until it
 * exists, writers
 * make no system call for it. Returns the fd, or PORTREG_EINVAL,
 * PORTREG_ESYSTEM (portreg_last_errno() says why). Lock-free. examples/epoll_changes.c shows
 * the loop. */
PORTREG_API int portreg_eventfd(portreg_t *reg);

/* Statistics, for tests and capacity planning. Wait-free, approximate under
 * concurrent writers. */
typedef struct {
    size_t tracked;        /* same as portreg_count() */
    size_t slots;          /* ids the table holds: what max_ids counts */
    size_t table_capacity; /* buckets in the hash table */
    size_t bytes;          /* table + slots + ids, excluding allocator overhead */
    uint64_t compactions;  /* rebuilds that dropped untracked ids */
    uint64_t changes;      /* same as portreg_changes() */
    size_t probe_max;      /* longest probe sequence of the current table */
    uint64_t reseeds;      /* rebuilds with fresh hash keys (abnormal probing) */
    size_t deferred_bytes; /* part of bytes waiting for a grace period */
    uint64_t reserved[5];  /* zero; room for later statistics */
} portreg_stats_t;

PORTREG_API int portreg_stats(portreg_t *reg, portreg_stats_t *stats);

/* Frees all memory deferred before the call, waiting for the readers in
 * an epoch section now to leave it. Never needed for correctness. Holds no
 * lock while it waits, so other calls (inserts included, from iterations
 * too) go on meanwhile; if another thread is freeing some of that memory,
 * it waits for it to finish. Returns 0, PORTREG_EINVAL (reg NULL, or
 * called inside an iteration on this thread, or from an allocator hook
 * while it frees a registry's memory: it could wait for itself) or
 * PORTREG_ESYSTEM (membarrier(2) failed; nothing was freed). Blocking. */
PORTREG_API int portreg_reclaim(portreg_t *reg);

/* Handles
 * -------
 * A handle resolves an id once; reads through it then cost one atomic load
 * (no hash, no probe, no epoch section). The id need not be tracked: the
 * handle follows it through track, register, unbind, untrack and re-track.
 * While a handle is open, the id's slot stays in the table (compaction,
 * growth and reseeding carry it over), so many handles on one id share one
 * slot and one pin count. An untracked id held by a handle is never
 * compacted away; after its last handle closes it goes with the next
 * compaction, whether it was untracked before or after the close. One is
 * due at the latest once the table has doubled since the last one with
 * half its slots untracked (at max_ids, an insert compacts at the latest
 * after max_ids/16 refusals). Handles may be shared freely between threads;
 * portreg_handle_close() must not race with other calls on the same handle;
 * every handle must be closed before portreg_destroy(): builds without
 * NDEBUG abort in portreg_destroy() if one is still open; with NDEBUG the
 * slot is freed and the handle dangles (any later use is undefined). */
typedef struct portreg_handle portreg_handle_t;

/* Resolves id, inserting an untracked slot for it if the table has none.
 * Returns 0 with *out set, PORTREG_EINVAL, PORTREG_ENOMEM or PORTREG_EFULL.
 * Blocking (takes the writer lock). */
PORTREG_API int portreg_handle_open(portreg_t *reg, const char *id, size_t id_len,
                                    portreg_handle_t **out);
/* Same result as portreg_lookup() on the handle's id at one instant inside
 * the call. False for a NULL handle. Wait-free: one atomic load. */
PORTREG_API bool portreg_handle_lookup(const portreg_handle_t *h, uint16_t *port);
/* Same as portreg_get(). Returns 0 or PORTREG_EINVAL. Wait-free. */
PORTREG_API int portreg_handle_get(const portreg_handle_t *h, portreg_state_t *state);
/* Same as portreg_wait() on the handle's id; never allocates. Blocking. */
PORTREG_API int portreg_handle_wait(const portreg_handle_t *h, uint32_t seen_version,
                                    int64_t timeout_ns, portreg_state_t *state);
/* The handle's id (not NUL-terminated), valid until the handle is closed. */
PORTREG_API const char *portreg_handle_id(const portreg_handle_t *h, size_t *id_len);
/* Releases the handle; the id's state is untouched. NULL is a no-op.
 * Lock-free. */
PORTREG_API void portreg_handle_close(portreg_handle_t *h);

/* The errno of the calling thread's most recent call that returned
 * PORTREG_ESYSTEM (0 if none): thread-local, untouched by other calls. */
PORTREG_API int portreg_last_errno(void);

/* Wire framing
 * ------------
 * Daemons send [u8 version = 1][u32 little-endian body length][body].
 * The reader takes bytes as they arrive, in any split, and hands out whole
 * bodies. The declared length is checked against the limit before any
 * allocation. One reader per stream; not thread-safe. */
#define PORTREG_FRAME_VERSION     1
#define PORTREG_FRAME_HEADER_SIZE 5
#define PORTREG_FRAME_MAX_BODY    (16u * 1024u * 1024u)

typedef struct {
    /* Private. */
    PORTREG__ALIGNAS(8) unsigned char opaque[64];
} portreg_frame_reader_t;

/* max_body 0 means PORTREG_FRAME_MAX_BODY; larger values are clamped to it. */
PORTREG_API void portreg_frame_reader_init(portreg_frame_reader_t *fr, size_t max_body);

/* Consumes bytes from data[0..len) and stops right after a frame completes.
 * *consumed receives the number of bytes used. Returns 1 with *body and
 * *body_len set when a frame completed (the body is a copy that stays valid
 * until the next call), 0 when all of data was used and more is needed, or:
 * - PORTREG_EVERSION / PORTREG_ETOOLARGE: the stream is broken; *consumed
 *   counts the bytes up to and including the offending one, and every later
 *   call repeats the error;
 * - PORTREG_ENOMEM: nothing was consumed (*consumed is 0) and the reader is
 *   as it was: repeat the same call later;
 * - PORTREG_EINVAL: a NULL argument (data may be NULL only when len is 0);
 *   the reader is untouched. */
PORTREG_API int portreg_frame_feed(portreg_frame_reader_t *fr, const uint8_t *data, size_t len,
                                   size_t *consumed, const uint8_t **body, size_t *body_len);

/* Call at end of stream: 0 if it ended between frames, PORTREG_ETRUNCATED
 * if inside one, or the stream's earlier error. */
PORTREG_API int portreg_frame_finish(const portreg_frame_reader_t *fr);

/* Frees the reader's buffer. */
PORTREG_API void portreg_frame_reader_fini(portreg_frame_reader_t *fr);

/* The layout of every caller-allocated struct is part of the ABI: these
 * checks stop a build (of the library or of a caller, in C or C++) whose
 * compiler lays them out differently, and a change to the header that
 * would silently break callers. Options and statistics grow into their
 * reserved space, never past it. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define PORTREG__CHECK(name, cond) static_assert(cond, "portreg.h: " #name)
#define PORTREG__ALIGNOF(t)        alignof(t)
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define PORTREG__CHECK(name, cond) _Static_assert(cond, "portreg.h: " #name)
#define PORTREG__ALIGNOF(t)        _Alignof(t)
#else
#define PORTREG__CHECK(name, cond) typedef char portreg__check_##name[(cond) ? 1 : -1]
#define PORTREG__ALIGNOF(t)        __alignof__(t)
#endif
PORTREG__CHECK(iter_size, sizeof(portreg_iter_t) == 96);
PORTREG__CHECK(iter_align, PORTREG__ALIGNOF(portreg_iter_t) == 8);
PORTREG__CHECK(frame_reader_size, sizeof(portreg_frame_reader_t) == 64);
PORTREG__CHECK(frame_reader_align, PORTREG__ALIGNOF(portreg_frame_reader_t) == 8);
PORTREG__CHECK(state_size, sizeof(portreg_state_t) == 12);
#if defined(__LP64__)
PORTREG__CHECK(options_size, sizeof(portreg_options_t) == 112);
PORTREG__CHECK(options_align, PORTREG__ALIGNOF(portreg_options_t) == 8);
PORTREG__CHECK(stats_size, sizeof(portreg_stats_t) == 112);
PORTREG__CHECK(stats_align, PORTREG__ALIGNOF(portreg_stats_t) == 8);
PORTREG__CHECK(entry_size, sizeof(portreg_entry_t) == 32);
PORTREG__CHECK(snapshot_size, sizeof(portreg_snapshot_t) == 16);
#endif
#undef PORTREG__CHECK
#undef PORTREG__ALIGNOF
#undef PORTREG__ALIGNAS

#ifdef __cplusplus
}
#endif

#endif /* PORTREG_H */
