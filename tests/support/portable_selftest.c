/* The portable runner's own check (tests/CMakeLists.txt matches the lines
 * it prints): each outcome it must tell apart, once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#if defined(_WIN32)
#include <windows.h>
/* Sleeps until the process ends. */
#define pause() Sleep(INFINITE)
#endif

static void say_fini(void)
{
    fprintf(stderr, "selftest: fini ran\n");
}

Test(selftest, passes)
{
    cr_assert_eq(1 + 1, 2);
}

Test(selftest, failed_assert_runs_fini, .fini = say_fini)
{
    cr_assert_eq(1 + 1, 3, "arithmetic %s", "works");
    fprintf(stderr, "selftest: not reached\n");
}

Test(selftest, failed_expect_goes_on)
{
    cr_expect(0);
    fprintf(stderr, "selftest: after a failed expect\n");
}

static void *fail_on_thread(void *arg)
{
    (void)arg;
    cr_assert_fail("from another thread");
    return NULL;
}

Test(selftest, failed_assert_on_another_thread)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fail_on_thread, NULL), 0);
    pthread_join(t, NULL);
    for (;;)
        pause();
}

Test(selftest, crash)
{
    raise(SIGSEGV);
}

Test(selftest, expected_signal, .signal = SIGABRT)
{
    abort();
}

Test(selftest, missing_signal_fails, .signal = SIGABRT) {}

Test(selftest, timeout_ends_the_test, .timeout = 1)
{
    for (;;)
        pause();
}

Test(selftest, skip)
{
    cr_skip_test("skipped on purpose");
}
