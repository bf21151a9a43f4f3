/* portreg_wait(), portreg_changes() and the change eventfd. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "fixture.h"

#define SECOND_NS INT64_C(1000000000)

TestSuite(wait, .init = registry_setup, .fini = registry_teardown);

/* The fixture's background wait, and the waiting thread's id, so that the
 * test can see it asleep. */
struct waiter {
    struct bg_wait bg;
    _Atomic long tid;
};

#if defined(_WIN32)
static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, (long)GetCurrentThreadId());
    return bg_wait_run(&w->bg);
}

/* Windows shows no thread's scheduling state as simply as /proc: the
 * waiter counts as asleep once it runs, so these tests also cover a wait
 * that begins after the change (portreg_wait() must see it then). */
static bool asleep(long tid)
{
    (void)tid;
    return true;
}
#else
static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, (long)syscall(SYS_gettid));
    return bg_wait_run(&w->bg);
}

/* True once the thread is asleep in the kernel (state S, in a futex). */
static bool asleep(long tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'S';
}
#endif

static void start_and_wait_until_asleep(pthread_t *t, struct waiter *w)
{
    atomic_store(&w->tid, 0);
    cr_assert_eq(pthread_create(t, NULL, wait_thread, w), 0);
    while (atomic_load(&w->tid) == 0 || !asleep(atomic_load(&w->tid)))
        sched_yield();
}

Test(wait, returns_at_once_when_the_version_already_differs)
{
    cr_assert_eq(portreg_register(reg, ID("b"), 8000, NULL), 0);
    portreg_state_t s;
    cr_assert_eq(portreg_wait(reg, ID("b"), 0, 0, &s), 0);
    cr_assert_eq(s.status, PORTREG_BOUND);
    cr_assert_eq(s.port, 8000);
    cr_assert_eq(portreg_wait(reg, ID("b"), s.version - 1, -1, &s), 0);
}

Test(wait, times_out_when_nothing_changes)
{
    cr_assert_eq(portreg_register(reg, ID("b"), 8000, NULL), 0);
    portreg_state_t s, now;
    cr_assert_eq(portreg_get(reg, ID("b"), &now), 0);
    cr_assert_eq(portreg_wait(reg, ID("b"), now.version, 20 * 1000 * 1000, &s), PORTREG_ETIMEDOUT);
    cr_assert(state_eq(s, now), "the current state comes back");
    cr_assert_eq(portreg_wait(reg, ID("b"), now.version, 0, &s), PORTREG_ETIMEDOUT);
    cr_assert_eq(portreg_wait(reg, ID("never"), 0, 0, &s), PORTREG_ETIMEDOUT);
    cr_assert_eq(s.status, PORTREG_UNTRACKED);
}

Test(wait, sleeping_waiter_wakes_on_register)
{
    cr_assert_eq(portreg_track(reg, ID("b")), 0);
    portreg_state_t now;
    cr_assert_eq(portreg_get(reg, ID("b"), &now), 0);
    struct waiter w = {
        .bg = {.id = "b", .len = 1, .seen = now.version, .timeout = 30 * SECOND_NS, .rc = 99}};
    pthread_t t;
    start_and_wait_until_asleep(&t, &w);
    cr_assert_eq(portreg_register(reg, ID("b"), 4444, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.bg.rc, 0);
    cr_assert_eq(w.bg.state.status, PORTREG_BOUND);
    cr_assert_eq(w.bg.state.port, 4444);
    cr_assert_gt(w.bg.state.version, now.version);
}

Test(wait, waiter_on_an_untracked_id_wakes_when_it_is_tracked)
{
    struct waiter w = {
        .bg = {.id = "later", .len = 5, .seen = 0, .timeout = 30 * SECOND_NS, .rc = 99}};
    pthread_t t;
    start_and_wait_until_asleep(&t, &w);
    cr_assert_eq(portreg_count(reg), 0, "the placeholder is not a tracked backend");
    cr_assert_eq(portreg_track(reg, ID("later")), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.bg.rc, 0);
    cr_assert_eq(w.bg.state.status, PORTREG_PENDING);
    cr_assert_gt(w.bg.state.version, 0);
}

Test(wait, every_waiter_wakes_for_one_change)
{
    cr_assert_eq(portreg_register(reg, ID("b"), 1, NULL), 0);
    portreg_state_t now;
    cr_assert_eq(portreg_get(reg, ID("b"), &now), 0);
    struct waiter w[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (struct waiter){
            .bg = {.id = "b", .len = 1, .seen = now.version, .timeout = 30 * SECOND_NS, .rc = 99}};
        start_and_wait_until_asleep(&t[i], &w[i]);
    }
    cr_assert_eq(portreg_unbind(reg, ID("b"), NULL), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].bg.rc, 0);
        cr_assert_eq(w[i].bg.state.status, PORTREG_PENDING);
    }
}

static atomic_int done;

static void *busy_writer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 20000; i++)
        cr_assert_eq(portreg_register(reg, ID("busy"), (uint16_t)i, NULL), 0);
    atomic_store(&done, 1);
    return NULL;
}

Test(wait, wait_on_a_busy_backend_never_misses_a_change, .timeout = 120)
{
    cr_assert_eq(portreg_track(reg, ID("busy")), 0);
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, ID("busy"), &s), 0);
    uint32_t seen = s.version;
    atomic_store(&done, 0);
    pthread_t t;
    pthread_create(&t, NULL, busy_writer, NULL);
    long wakeups = 0;
    /* Each wait must return a newer version; the last one is port 20000.
     * A lost wake-up would show as a 10 s timeout. */
    while (!(s.status == PORTREG_BOUND && s.port == 20000)) {
        int rc = portreg_wait(reg, ID("busy"), seen, 10 * SECOND_NS, &s);
        cr_assert_eq(rc, 0, "missed a change after version %u: %s", seen, portreg_err_name(rc));
        cr_assert_gt(s.version, seen);
        seen = s.version;
        wakeups++;
    }
    pthread_join(t, NULL);
    cr_log_info("%ld wake-ups for 20000 changes", wakeups);
    cr_assert_geq(wakeups, 1);
}

Test(wait, bad_arguments_are_einval)
{
    cr_assert_eq(portreg_wait(NULL, ID("x"), 0, 0, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_wait(reg, NULL, 1, 0, 0, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_wait(reg, "x", 0, 0, 0, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_eventfd(NULL), PORTREG_EINVAL);
}

#if defined(_WIN32)
/* Windows: an auto-reset event's HANDLE, set by a change; one wait takes
 * it. */
Test(wait, eventfd_becomes_readable_after_a_change)
{
    int fd = portreg_eventfd(reg);
    cr_assert_gt(fd, 0);
    cr_assert_eq(portreg_eventfd(reg), fd, "one event per registry");
    HANDLE h = (HANDLE)(intptr_t)fd;
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_TIMEOUT, "nothing changed yet");

    uint64_t before = portreg_changes(reg);
    cr_assert_eq(portreg_register(reg, ID("e"), 1, NULL), 0);
    cr_assert_eq(portreg_register(reg, ID("e"), 2, NULL), 0);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    cr_assert_eq(portreg_changes(reg), before + 2);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_TIMEOUT, "re-armed");

    /* No-ops are not changes. */
    cr_assert_eq(portreg_track(reg, ID("e")), 0);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
}
#else
Test(wait, eventfd_becomes_readable_after_a_change)
{
    int fd = portreg_eventfd(reg);
    cr_assert_geq(fd, 0);
    cr_assert_eq(portreg_eventfd(reg), fd, "one fd per registry");
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 0), 0, "nothing changed yet");

    uint64_t before = portreg_changes(reg);
    cr_assert_eq(portreg_register(reg, ID("e"), 1, NULL), 0);
    cr_assert_eq(portreg_register(reg, ID("e"), 2, NULL), 0);
    cr_assert_eq(poll(&p, 1, 0), 1);
    /* An eventfd (Linux) holds the count; the POSIX backend's socket one
     * byte per change. */
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    uint64_t n = 0;
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        char bytes[16];
        cr_assert_eq(read(fd, bytes, sizeof bytes), 2, "one byte per change");
    } else {
        cr_assert_eq(read(fd, &n, sizeof n), (ssize_t)sizeof n);
        cr_assert_eq(n, 2, "one event per change");
    }
    cr_assert_eq(portreg_changes(reg), before + 2);
    cr_assert_eq(read(fd, &n, sizeof n), -1, "re-armed");
    cr_assert_eq(errno, EAGAIN);

    /* No-ops are not changes. */
    cr_assert_eq(portreg_track(reg, ID("e")), 0);
    cr_assert_eq(poll(&p, 1, 0), 0);
}
#endif

/* After fork() the child shares the registry's notifier with its parent:
 * a change the child makes wakes the parent's event loop (a wake-up with
 * no change for the parent), and the child's own fd works as before. */
Test(wait, eventfd_is_shared_with_a_forked_child)
{
#if defined(_WIN32)
    cr_skip_test("Windows has no fork()");
#else
    int fd = portreg_eventfd(reg);
    cr_assert_geq(fd, 0);
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 0), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct pollfd q = {portreg_eventfd(reg), POLLIN, 0};
        bool ok =
            q.fd == fd && portreg_register(reg, ID("forked"), 7, NULL) == 0 && poll(&q, 1, 0) == 1;
        _exit(ok ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's notifier works");
    cr_assert_eq(poll(&p, 1, 1000), 1, "the child's change reached the parent's fd");
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, ID("forked"), &s), 0);
    cr_assert_eq(s.status, PORTREG_UNTRACKED, "the parent's registry did not change");
#endif
}
