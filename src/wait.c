/*
 * Waiting for a backend to change: word waits (os.h: a futex on Linux) on
 * the version half of the state word, plus a registry-wide notifier (an
 * eventfd on Linux, a pipe elsewhere) for event loops.
 *
 * A waiter adds itself to the waiter count in the state word (low half)
 * and sleeps on the high half, which holds the version. Every applied
 * change bumps the version, so FUTEX_WAIT cannot miss one: if the change
 * came before the kernel compares, the compare fails; if after, the writer
 * saw the waiter count in the word it replaced and wakes us (os.h promises
that portreg__os_wait32() loses no wake that follows a change). Writers look
 * at that count for free (it is in the word they just swapped) and make the
 * system call only when it is not zero.
 *
 * A slot with waiters is never retired by compaction, so a sleeping waiter
 * needs no epoch section to keep it alive. The count saturates rather than
 * overflowing (state.h), so every waiter sleeps, however many there are.
 */
#include <errno.h>
#include <stdint.h>

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

/* The notifier's two fds in one word, so that one CAS publishes both. */
static uint64_t notifier_pack(const struct portreg_os_notifier *n)
{
    return (uint64_t)(uint32_t)n->poll_fd | (uint64_t)(uint32_t)n->signal_fd << 32;
}

static struct portreg_os_notifier notifier_unpack(uint64_t packed)
{
    struct portreg_os_notifier n = {.poll_fd = (int)(uint32_t)packed,
                                    .signal_fd = (int)(uint32_t)(packed >> 32)};
    return n;
}

void portreg__notify_change(struct portreg *reg, struct slot *s, uint64_t old)
{
    books_changed(reg);
    if (st_waiters(old) != 0)
        portreg__os_wake32(version_half(s));
    /* seq_cst: the load half of the store-buffering pair with
     * portreg_eventfd(); see books_changed(). Either this load sees the new
     * notifier and we signal it, or the creator's next read of the change
     * count sees our increment. */
    uint64_t packed = atomic_load_explicit(&reg->notifier, memory_order_seq_cst);
    if (packed != NOTIFIER_NONE) {
        struct portreg_os_notifier n = notifier_unpack(packed);
        portreg__os_notifier_signal(&n);
    }
}

void portreg__notifier_close(struct portreg *reg)
{
    uint64_t packed = atomic_load_explicit(&reg->notifier, memory_order_relaxed);
    if (packed != NOTIFIER_NONE) {
        struct portreg_os_notifier n = notifier_unpack(packed);
        portreg__os_notifier_close(&n);
    }
}

static int64_t now_ns(void)
{
    return portreg__os_now_ns();
}

/* The absolute deadline, or -1 for none: negative timeouts, and timeouts
 * so long that the deadline would overflow (centuries), wait forever. */
static int64_t deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return -1;
    int64_t now = now_ns();
    return timeout_ns > INT64_MAX - now ? -1 : now + timeout_ns;
}

enum join { JOINED, JOIN_CHANGED, JOIN_RETIRED };

/* Counts the caller as a waiter on s, starting from its word *w, unless
 * the public version already differs from seen. The count is taken with a
 * CAS on the whole word, so it is taken only on a word whose version is
 * the one we compare against, and never on a RETIRED slot. A saturated
 * count stays saturated (state.h): nothing to add. */
static enum join waiter_join(struct slot *s, uint64_t *w, uint32_t seen)
{
    for (;;) {
        if (st_public_version(*w) != seen)
            return JOIN_CHANGED;
        if (st_status(*w) == ST_RETIRED)
            return JOIN_RETIRED;
        if (st_waiters(*w) == ST_WAITERS_MAX)
            return JOINED;
        /* acquire on success: our later loads come after this word. */
        if (atomic_compare_exchange_weak_explicit(&s->state, w, *w + ST_WAITER_ONE,
                                                  memory_order_acquire, memory_order_acquire))
            return JOINED;
    }
}

/* reg NULL: a wait through a handle, whose pin keeps the slot from being
 * droppable, so there is nothing to settle. */
static void waiter_leave(struct portreg *reg, struct slot *s)
{
    /* After our decrement a compaction may retire s; inside a read section
     * it is not freed before we are done with it. The thread's record
     * exists: this wait took it. */
    struct epoch_record *r = reg != NULL ? epoch_record(reg, &reg->epoch) : NULL;
    if (r != NULL)
        epoch_begin(&reg->epoch, r);
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    bool counted = true;
    do {
        if (st_waiters(w) == ST_WAITERS_MAX) {
            counted = false; /* saturated: stays so */
            break;
        }
        /* release: our reads of s come before a compaction that sees the
         * count at zero and drops it. */
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &w, w - ST_WAITER_ONE,
                                                    memory_order_release, memory_order_relaxed));
    /* Decided on the word our CAS replaced, so of two waiters leaving at
     * once exactly one is the last: an untracked slot nobody pins is
     * droppable from here on. (A rebuild that retires it first clears its
     * flag, and then this does nothing.) */
    if (r != NULL && counted && st_waiters(w) == 1 && !st_tracked(w) &&
        atomic_load_explicit(&s->pins, memory_order_relaxed) == 0)
        portreg__slot_released(reg, s);
    if (r != NULL)
        epoch_end(&reg->epoch, r);
}

/* The caller is counted on s (joined on word w0): s stays in the table and
 * alive until we leave. Sleeps until the version moves off w0's or the
 * deadline passes. With seen 0 on an untracked id this returns on any
 * change at all (a track, even if an untrack follows before we run). */
static int wait_counted(struct portreg *reg, struct slot *s, uint64_t w0, int64_t deadline,
                        portreg_state_t *state)
{
    uint32_t raw0 = st_version(w0);
    uint64_t w;
    int rc;

    for (;;) {
        w = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st_version(w) != raw0) {
            rc = 0;
            break;
        }
        if (deadline >= 0 && now_ns() >= deadline) {
            rc = PORTREG_ETIMEDOUT;
            break;
        }
        /* Sleeps only while the version half still holds raw0; may return
         * early, hence the loop. The deadline is absolute: early wake-ups
         * do not stretch it. */
        portreg__os_wait32(version_half(s), raw0, deadline);
    }
    if (state != NULL)
        *state = st_public(w);
    waiter_leave(reg, s);
    return rc;
}

int portreg__slot_wait(struct slot *s, uint32_t seen_version, int64_t timeout_ns,
                       portreg_state_t *state)
{
    int64_t deadline = deadline_after(timeout_ns);
    uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);

    /* s is pinned by a handle: never RETIRED. */
    if (waiter_join(s, &w, seen_version) != JOINED) {
        if (state != NULL)
            *state = st_public(w);
        return 0;
    }
    return wait_counted(NULL, s, w, deadline, state);
}

int portreg_wait(portreg_t *reg, const char *id, size_t id_len, uint32_t seen_version,
                 int64_t timeout_ns, portreg_state_t *state)
{
    if (reg == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    struct epoch_record *r = epoch_record(reg, &reg->epoch);
    if (r == NULL)
        return PORTREG_ENOMEM;
    int64_t deadline = deadline_after(timeout_ns);

    for (;;) {
        /* Fast path: the table holds the id. Counting ourselves inside the
         * read section keeps the slot from being retired once we leave it. */
        epoch_begin(&reg->epoch, r);
        struct slot *s = table_find(table_current(reg), id, id_len);
        uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire)
                               : st_pack(PORTREG_UNTRACKED, 0, 0);
        enum join j = s != NULL ? waiter_join(s, &w, seen_version)
                                : (seen_version != 0 ? JOIN_CHANGED : JOIN_RETIRED);
        epoch_end(&reg->epoch, r);

        if (j == JOIN_RETIRED) {
            /* Untracked, with nothing to sleep on in this table: under the
             * lock, find or insert a slot and count ourselves on it. The
             * lock is taken with our deadline: a writer holding it for
             * long (a rebuild, a slow allocation) does not stretch it. */
            if (deadline >= 0 && now_ns() >= deadline) {
                if (state != NULL)
                    *state = st_public(w);
                return PORTREG_ETIMEDOUT;
            }
            if (!portreg__writer_lock_until(reg, deadline))
                continue; /* read the id once more: changed, or timed out */
            /* A placeholder we insert counts us from its first word on:
             * track and untrack are lock-free and may both run before we
             * could count ourselves, and an untracked word's public
             * version is 0 whatever happened, so a later join would take
             * the word after both as its baseline and sleep through them.
             * Its first word is our baseline instead. */
            int rc = portreg__table_hold(reg, id, id_len, true, &s, &w);
            if (rc == 1) {
                j = JOINED;
            } else if (rc == 0) {
                w = atomic_load_explicit(&s->state, memory_order_acquire);
                j = waiter_join(s, &w, seen_version);
            }
            portreg__writer_unlock(reg);
            if (rc < 0)
                return rc;
            if (j == JOIN_RETIRED)
                continue; /* cannot happen under the lock; never sleep on it */
        }
        if (j == JOIN_CHANGED) {
            if (state != NULL)
                *state = st_public(w);
            return 0;
        }
        return wait_counted(reg, s, w, deadline, state);
    }
}

int portreg_eventfd(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    uint64_t packed = atomic_load_explicit(&reg->notifier, memory_order_acquire);
    if (packed != NOTIFIER_NONE)
        return notifier_unpack(packed).poll_fd;
    struct portreg_os_notifier n;
    int err = portreg__os_notifier_open(&n);
    if (err != 0)
        return portreg__system_error(err);
    uint64_t expected = NOTIFIER_NONE;
    /* seq_cst: one notifier wins (losers close theirs and use the
     * winner's), and the publication is the store half of the
     * store-buffering pair with portreg__notify_change(); the caller's
     * next portreg_changes() is a seq_cst load. */
    if (!atomic_compare_exchange_strong_explicit(&reg->notifier, &expected, notifier_pack(&n),
                                                 memory_order_seq_cst, memory_order_acquire)) {
        portreg__os_notifier_close(&n);
        return notifier_unpack(expected).poll_fd;
    }
    return n.poll_fd;
}
