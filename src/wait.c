/*
 * Waiting for a backend to change: futexes on the version half of the
 * state word, plus a registry-wide eventfd for event loops.
 *
 * A waiter adds itself to the waiter count in the state word (low half)
 * and sleeps on the high half, which holds the version. Every applied
 * change bumps the version, so FUTEX_WAIT cannot miss one: if the change
 * came before the kernel compares, the compare fails; if after, the writer
 * saw the waiter count in the word it replaced and wakes us. Writers look
 * at that count for free (it is in the word they just swapped) and make the
 * system call only when it is not zero.
 *
 * A slot with waiters is never retired by compaction, so a sleeping waiter
 * needs no epoch section to keep it alive.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The 32-bit half of the state word that holds the version. */
static uint32_t *version_half(struct slot *s)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *)(void *)&s->state + 1;
#else
    return (uint32_t *)(void *)&s->state;
#endif
}

void notify_change(struct portreg *reg, struct slot *s, uint64_t old)
{
    /* release: pairs with the acquire in portreg_changes(). */
    atomic_fetch_add_explicit(&reg->changes, 1, memory_order_release);
    if (st_waiters(old) != 0)
        syscall(SYS_futex, version_half(s), FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    int fd = atomic_load_explicit(&reg->efd, memory_order_acquire);
    if (fd >= 0) {
        uint64_t one = 1;
        /* EAGAIN means the counter is saturated: already readable. */
        ssize_t n = write(fd, &one, sizeof one);
        (void)n;
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Inserts an untracked placeholder for id (if the table has no slot for
 * it) so a waiter has a word to sleep on. It reads as untracked, counts
 * as dead, and compaction drops it once nobody waits on it. */
static int placeholder(struct portreg *reg, const char *id, size_t id_len)
{
    int rc = 0;

    writer_lock(reg);
    ck_ht_t *ht = atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
    if (table_find(ht, id, id_len) == NULL)
        rc = table_insert(reg, id, id_len, st_pack(PORTREG_UNTRACKED, 0, reg->version_floor), NULL);
    writer_unlock(reg);
    return rc;
}

int portreg_wait(portreg_t *reg, const char *id, size_t id_len, uint32_t seen_version,
                 int64_t timeout_ns, portreg_state_t *state)
{
    if (reg == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    struct reader *r = reader_get(reg);
    if (r == NULL)
        return PORTREG_ENOMEM;
    int64_t deadline = timeout_ns >= 0 ? now_ns() + timeout_ns : -1;

    for (;;) {
        reader_begin(reg, r);
        struct slot *s = table_find(table_current(reg), id, id_len);
        uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire)
                               : st_pack(PORTREG_UNTRACKED, 0, 0);
        bool timed_out = deadline >= 0 && now_ns() >= deadline;
        if (st_public_version(w) != seen_version || timed_out) {
            reader_end(reg, r);
            if (state != NULL)
                *state = st_public(w);
            return st_public_version(w) != seen_version ? 0 : PORTREG_ETIMEDOUT;
        }
        if (s == NULL || st_status(w) == ST_RETIRED) {
            /* Nothing to sleep on in this table: make (or find) one. */
            reader_end(reg, r);
            int rc = placeholder(reg, id, id_len);
            if (rc != 0)
                return rc;
            continue;
        }
        /* acquire on success: our later loads come after this word. */
        if (st_waiters(w) == ST_WAITERS_MAX ||
            !atomic_compare_exchange_strong_explicit(&s->state, &w, w + ST_WAITER_ONE,
                                                     memory_order_acquire, memory_order_relaxed)) {
            reader_end(reg, r);
            if (st_waiters(w) == ST_WAITERS_MAX)
                sched_yield();
            continue;
        }
        /* Our count keeps s out of compaction's hands: leave the section
         * so a long sleep does not hold back reclamation. */
        reader_end(reg, r);

        struct timespec ts, *tsp = NULL;
        if (deadline >= 0) {
            ts.tv_sec = deadline / 1000000000;
            ts.tv_nsec = deadline % 1000000000;
            tsp = &ts;
        }
        /* Sleeps only while the version half still holds the version we
         * saw (raw: an untracked slot's internal version). Absolute
         * CLOCK_MONOTONIC deadline, so early wake-ups do not stretch it. */
        syscall(SYS_futex, version_half(s), FUTEX_WAIT_BITSET_PRIVATE, st_version(w), tsp, NULL,
                FUTEX_BITSET_MATCH_ANY);
        /* release: our accesses to s come before compaction may drop it. */
        atomic_fetch_sub_explicit(&s->state, ST_WAITER_ONE, memory_order_release);
    }
}

int portreg_eventfd(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    int fd = atomic_load_explicit(&reg->efd, memory_order_acquire);
    if (fd >= 0)
        return fd;
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return portreg__system_error(errno);
    int expected = -1;
    /* acq_rel: one fd wins; losers close theirs and use the winner's. */
    if (!atomic_compare_exchange_strong_explicit(&reg->efd, &expected, fd, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        close(fd);
        return expected;
    }
    return fd;
}
