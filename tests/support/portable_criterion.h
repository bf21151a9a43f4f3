/*
 * A stand-in for the part of Criterion's interface the unit tests use, for
 * targets without Criterion (musl, Windows). The test sources are the same:
 * tests/support/portable/criterion/criterion.h includes this file, and the
 * build puts that directory first on the include path
 * (PORTREG_TEST_RUNNER=portable).
 *
 * What it offers: Test() and TestSuite() with .init, .fini, .timeout,
 * .signal, .exit_code and .disabled; cr_assert*() (the test stops) and
 * cr_expect*() (the test goes on, and fails at its end); cr_skip_test();
 * cr_log_*(). Order as in Criterion: suite .init, test .init, the body,
 * test .fini, suite .fini; fixtures run after a failed assertion on the
 * test's own thread too.
 *
 * Each test runs in a process of its own, so a crash, a stray thread or a
 * leaked registry cannot touch the next test:
 *   fork    (POSIX, the default) the runner forks once per test;
 *   exec    (--exec, and always on Windows) the runner starts its own
 *           program again with --run SUITE/NAME. A spawn that fails to
 *           start the process is retried (3 attempts, each failure printed
 *           as [RUNR] with its system error); a test whose process never
 *           starts counts as crashing.
 * A failed assertion on another thread than the test's ends the test's
 * process at once (exit status 1), without the fixtures' .fini.
 *
 * Command line: [--filter GLOB] [--list] [--exec] [--run SUITE/NAME]
 * [--jobs N] (accepted for Criterion's sake; tests run one at a time).
 * Exit status: 0 when every selected test passed or was skipped.
 */
#ifndef PORTREG_PORTABLE_CRITERION_H
#define PORTREG_PORTABLE_CRITERION_H

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <process.h>
#include <windows.h>
#else
#include <fnmatch.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* The printf dialect of the checks' messages: mingw-w64's own (C99, with
 * %zu) where the build asks for it with __USE_MINGW_ANSI_STDIO. */
#if defined(__MINGW32__) && !defined(__clang__)
#define PCR_PRINTF gnu_printf
#else
#define PCR_PRINTF printf
#endif

struct pcr_extra {
    void (*init)(void);
    void (*fini)(void);
    double timeout; /* seconds; 0: none */
    int signal;     /* the test passes only if it dies of this signal */
    int exit_code;  /* the test passes only if it exits with this status */
    bool disabled;
    const char *description;
};

struct pcr_suite {
    const char *name;
    struct pcr_extra extra;
};

struct pcr_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct pcr_extra extra;
};

#define PCR_MAX_TESTS  512
#define PCR_MAX_SUITES 64
/* A test's own process exits with PCR_SKIPPED when it skipped itself. */
#define PCR_SKIPPED 77

static struct pcr_test *pcr_tests[PCR_MAX_TESTS];
static size_t pcr_ntests;
static struct pcr_suite *pcr_suites[PCR_MAX_SUITES];
static size_t pcr_nsuites;

/* The test running in this process, and how to leave its body early. */
static jmp_buf pcr_jump;
static bool pcr_in_body;
static bool pcr_failed;
#if !defined(_WIN32)
static pthread_t pcr_test_thread;
#endif

static inline void pcr_register(struct pcr_test *t)
{
    if (pcr_ntests == PCR_MAX_TESTS) {
        fprintf(stderr, "portable_criterion: more than %d tests\n", PCR_MAX_TESTS);
        abort();
    }
    pcr_tests[pcr_ntests++] = t;
}

static inline void pcr_register_suite(struct pcr_suite *s)
{
    if (pcr_nsuites == PCR_MAX_SUITES) {
        fprintf(stderr, "portable_criterion: more than %d suites\n", PCR_MAX_SUITES);
        abort();
    }
    pcr_suites[pcr_nsuites++] = s;
}

#define PCR_CAT_(a, b) a##b
#define PCR_CAT(a, b)  PCR_CAT_(a, b)

#define Test(suite, name, ...)                                                                     \
    static void PCR_CAT(pcr_fn_, PCR_CAT(suite, PCR_CAT(_, name)))(void);                          \
    static struct pcr_test PCR_CAT(pcr_t_, PCR_CAT(suite, PCR_CAT(_, name))) = {                   \
        #suite, #name, PCR_CAT(pcr_fn_, PCR_CAT(suite, PCR_CAT(_, name))), {__VA_ARGS__}};         \
    __attribute__((constructor)) static void PCR_CAT(pcr_reg_,                                     \
                                                     PCR_CAT(suite, PCR_CAT(_, name)))(void)       \
    {                                                                                              \
        pcr_register(&PCR_CAT(pcr_t_, PCR_CAT(suite, PCR_CAT(_, name))));                          \
    }                                                                                              \
    static void PCR_CAT(pcr_fn_, PCR_CAT(suite, PCR_CAT(_, name)))(void)

#define TestSuite(suite, ...)                                                                      \
    static struct pcr_suite PCR_CAT(pcr_s_, suite) = {#suite, {__VA_ARGS__}};                      \
    __attribute__((constructor)) static void PCR_CAT(pcr_sreg_, suite)(void)                       \
    {                                                                                              \
        pcr_register_suite(&PCR_CAT(pcr_s_, suite));                                               \
    }

/* Leaves the test: from its body, through the fixtures' .fini; from any
 * other thread, at once. */
static inline void pcr_leave(int status)
{
    fflush(stdout);
    fflush(stderr);
#if !defined(_WIN32)
    bool on_test_thread = pthread_equal(pthread_self(), pcr_test_thread);
#else
    bool on_test_thread = true; /* the Windows runner is single-threaded here */
#endif
    if (pcr_in_body && on_test_thread && status == 1)
        longjmp(pcr_jump, 1);
    _exit(status);
}

/* Reports a failed check; the message (a format and its arguments) is
 * optional and ends with a null pointer the macros add. */
__attribute__((format(PCR_PRINTF, 4, 0))) static inline void
pcr_report(const char *file, int line, const char *expr, const char *fmt, va_list ap)
{
    fprintf(stderr, "[----] %s:%d: Assertion failed: %s\n", file, line, expr);
    if (fmt && fmt[0]) {
        fprintf(stderr, "[----]   ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
    }
}

static inline void pcr_check(bool ok, bool fatal, const char *file, int line, const char *expr, ...)
{
    if (ok)
        return;
    va_list ap;
    va_start(ap, expr);
    const char *fmt = va_arg(ap, const char *);
    pcr_report(file, line, expr, fmt, ap);
    va_end(ap);
    pcr_failed = true;
    if (fatal)
        pcr_leave(1);
}

#define PCR_CHECK(fatal, ok, expr, ...)                                                            \
    pcr_check((ok), (fatal), __FILE__, __LINE__, expr, ##__VA_ARGS__, (const char *)NULL)

#define cr_assert(c, ...)          PCR_CHECK(true, !!(c), #c, ##__VA_ARGS__)
#define cr_assert_not(c, ...)      PCR_CHECK(true, !(c), "!(" #c ")", ##__VA_ARGS__)
#define cr_assert_fail(...)        PCR_CHECK(true, false, "cr_assert_fail", ##__VA_ARGS__)
#define cr_assert_eq(a, b, ...)    PCR_CHECK(true, (a) == (b), #a " == " #b, ##__VA_ARGS__)
#define cr_assert_neq(a, b, ...)   PCR_CHECK(true, (a) != (b), #a " != " #b, ##__VA_ARGS__)
#define cr_assert_lt(a, b, ...)    PCR_CHECK(true, (a) < (b), #a " < " #b, ##__VA_ARGS__)
#define cr_assert_leq(a, b, ...)   PCR_CHECK(true, (a) <= (b), #a " <= " #b, ##__VA_ARGS__)
#define cr_assert_gt(a, b, ...)    PCR_CHECK(true, (a) > (b), #a " > " #b, ##__VA_ARGS__)
#define cr_assert_geq(a, b, ...)   PCR_CHECK(true, (a) >= (b), #a " >= " #b, ##__VA_ARGS__)
#define cr_assert_null(p, ...)     PCR_CHECK(true, (p) == NULL, #p " == NULL", ##__VA_ARGS__)
#define cr_assert_not_null(p, ...) PCR_CHECK(true, (p) != NULL, #p " != NULL", ##__VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
    PCR_CHECK(true, strcmp((a), (b)) == 0, "strcmp(" #a ", " #b ") == 0", ##__VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                                               \
    PCR_CHECK(true, strcmp((a), (b)) != 0, "strcmp(" #a ", " #b ") != 0", ##__VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...)                                                          \
    PCR_CHECK(true, memcmp((a), (b), (size)) == 0, "memcmp(" #a ", " #b ", " #size ") == 0",       \
              ##__VA_ARGS__)

#define cr_expect(c, ...)          PCR_CHECK(false, !!(c), #c, ##__VA_ARGS__)
#define cr_expect_not(c, ...)      PCR_CHECK(false, !(c), "!(" #c ")", ##__VA_ARGS__)
#define cr_expect_fail(...)        PCR_CHECK(false, false, "cr_expect_fail", ##__VA_ARGS__)
#define cr_expect_eq(a, b, ...)    PCR_CHECK(false, (a) == (b), #a " == " #b, ##__VA_ARGS__)
#define cr_expect_neq(a, b, ...)   PCR_CHECK(false, (a) != (b), #a " != " #b, ##__VA_ARGS__)
#define cr_expect_lt(a, b, ...)    PCR_CHECK(false, (a) < (b), #a " < " #b, ##__VA_ARGS__)
#define cr_expect_leq(a, b, ...)   PCR_CHECK(false, (a) <= (b), #a " <= " #b, ##__VA_ARGS__)
#define cr_expect_gt(a, b, ...)    PCR_CHECK(false, (a) > (b), #a " > " #b, ##__VA_ARGS__)
#define cr_expect_geq(a, b, ...)   PCR_CHECK(false, (a) >= (b), #a " >= " #b, ##__VA_ARGS__)
#define cr_expect_null(p, ...)     PCR_CHECK(false, (p) == NULL, #p " == NULL", ##__VA_ARGS__)
#define cr_expect_not_null(p, ...) PCR_CHECK(false, (p) != NULL, #p " != NULL", ##__VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)                                                                \
    PCR_CHECK(false, strcmp((a), (b)) == 0, "strcmp(" #a ", " #b ") == 0", ##__VA_ARGS__)
#define cr_expect_arr_eq(a, b, size, ...)                                                          \
    PCR_CHECK(false, memcmp((a), (b), (size)) == 0, "memcmp(" #a ", " #b ", " #size ") == 0",      \
              ##__VA_ARGS__)

#define cr_log_info(...)  pcr_log("[----] ", __VA_ARGS__)
#define cr_log_warn(...)  pcr_log("[WARN] ", __VA_ARGS__)
#define cr_log_error(...) pcr_log("[ERR ] ", __VA_ARGS__)
#define cr_skip_test(...) pcr_skip("" __VA_ARGS__)

__attribute__((format(PCR_PRINTF, 2, 3))) static inline void pcr_log(const char *tag,
                                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(tag, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

__attribute__((format(PCR_PRINTF, 1, 2), noreturn)) static inline void pcr_skip(const char *fmt,
                                                                                ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[SKIP] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(PCR_SKIPPED);
}

static inline const struct pcr_suite *pcr_suite_of(const struct pcr_test *t)
{
    for (size_t i = 0; i < pcr_nsuites; i++)
        if (strcmp(pcr_suites[i]->name, t->suite) == 0)
            return pcr_suites[i];
    return NULL;
}

/* The test this process runs (static: they outlive a longjmp). */
static const struct pcr_test *pcr_current;
static const struct pcr_suite *pcr_current_suite;

/* Runs t in this process; the status its process exits with. */
static inline int pcr_run_here(const struct pcr_test *t)
{
    pcr_current = t;
    pcr_current_suite = pcr_suite_of(t);
#if !defined(_WIN32)
    pcr_test_thread = pthread_self();
#endif
    pcr_failed = false;
    pcr_in_body = true;
    if (setjmp(pcr_jump) == 0) {
        if (pcr_current_suite && pcr_current_suite->extra.init)
            pcr_current_suite->extra.init();
        if (pcr_current->extra.init)
            pcr_current->extra.init();
        pcr_current->fn();
    }
    pcr_in_body = false;
    if (pcr_current->extra.fini)
        pcr_current->extra.fini();
    if (pcr_current_suite && pcr_current_suite->extra.fini)
        pcr_current_suite->extra.fini();
    fflush(stdout);
    fflush(stderr);
    return pcr_failed ? 1 : 0;
}

static inline double pcr_timeout_of(const struct pcr_test *t)
{
    const struct pcr_suite *s = pcr_suite_of(t);
    if (t->extra.timeout > 0)
        return t->extra.timeout;
    return s ? s->extra.timeout : 0;
}

static inline int pcr_signal_of(const struct pcr_test *t)
{
    const struct pcr_suite *s = pcr_suite_of(t);
    if (t->extra.signal)
        return t->extra.signal;
    return s ? s->extra.signal : 0;
}

enum pcr_outcome { PCR_PASS, PCR_FAIL, PCR_CRASH, PCR_SKIP };

/* How the test's process ended: by exit(code) (signo 0) or by signo. */
static inline enum pcr_outcome pcr_judge(const struct pcr_test *t, int code, int signo)
{
    int want_signal = pcr_signal_of(t);
    if (want_signal)
        return signo == want_signal ? PCR_PASS : PCR_FAIL;
    if (signo)
        return PCR_CRASH;
    if (code == PCR_SKIPPED)
        return PCR_SKIP;
    return code == t->extra.exit_code ? PCR_PASS : PCR_FAIL;
}

static const char *pcr_self;

#if defined(_WIN32)
#define PCR_SPAWN_ATTEMPTS 3

/* Windows has no fork: the test runs in a new process of this program,
 * which is ended at its timeout. An abort() there exits with status 3,
 * which stands for SIGABRT; an exception (an access violation, say) ends
 * it with the exception's code (0xC0000000 and up), a crash. */
static inline enum pcr_outcome pcr_run_isolated(const struct pcr_test *t, bool exec_mode)
{
    (void)exec_mode;
    char spec[512];
    snprintf(spec, sizeof spec, "%s/%s", t->suite, t->name);
    const char *args[] = {pcr_self, "--run", spec, NULL};
    fflush(stdout);
    fflush(stderr);
    /* A spawn that fails to start the process is the runner's error, not
     * the test's: under Wine it failed now and then (EINVAL, msvcrt's
     * errno for a system error it has no name for), so it is retried a
     * few times and each failure says which system error it was. */
    intptr_t h = -1;
    for (int attempt = 1; h == -1 && attempt <= PCR_SPAWN_ATTEMPTS; attempt++) {
        errno = 0;
        _doserrno = 0;
        h = _spawnv(_P_NOWAIT, pcr_self, args);
        if (h == -1)
            fprintf(stderr,
                    "[RUNR] %s::%s: spawn failed (attempt %d of %d): %s, system error %lu\n",
                    t->suite, t->name, attempt, PCR_SPAWN_ATTEMPTS, strerror(errno),
                    (unsigned long)_doserrno);
    }
    if (h == -1) {
        fprintf(stderr, "[RUNR] %s::%s: runner error: the test's process never started\n", t->suite,
                t->name);
        return PCR_CRASH;
    }
    double timeout = pcr_timeout_of(t);
    DWORD ms = timeout > 0 ? (DWORD)(timeout * 1000 + 0.5) : INFINITE;
    if (WaitForSingleObject((HANDLE)h, ms) == WAIT_TIMEOUT) {
        TerminateProcess((HANDLE)h, 0xC0000102); /* STATUS_TIMEOUT */
        WaitForSingleObject((HANDLE)h, INFINITE);
        CloseHandle((HANDLE)h);
        fprintf(stderr, "[----] %s::%s: timed out after %g s\n", t->suite, t->name, timeout);
        return pcr_judge(t, 0, SIGTERM);
    }
    DWORD code = 1;
    GetExitCodeProcess((HANDLE)h, &code);
    CloseHandle((HANDLE)h);
    if (code >= 0xC0000000u)
        return pcr_judge(t, 0, SIGSEGV);
    return pcr_judge(t, (int)code, code == 3 ? SIGABRT : 0);
}
#else
static inline enum pcr_outcome pcr_run_isolated(const struct pcr_test *t, bool exec_mode)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("portable_criterion: fork");
        return PCR_CRASH;
    }
    if (pid == 0) {
        double timeout = pcr_timeout_of(t);
        if (timeout > 0)
            alarm((unsigned)timeout + (timeout > (unsigned)timeout));
        if (exec_mode) {
            char spec[512];
            snprintf(spec, sizeof spec, "%s/%s", t->suite, t->name);
            execl(pcr_self, pcr_self, "--run", spec, (char *)NULL);
            perror("portable_criterion: exec");
            _exit(126);
        }
        _exit(pcr_run_here(t));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFSIGNALED(status)) {
        if (WTERMSIG(status) == SIGALRM)
            fprintf(stderr, "[----] %s::%s: timed out after %g s\n", t->suite, t->name,
                    pcr_timeout_of(t));
        return pcr_judge(t, 0, WTERMSIG(status));
    }
    return pcr_judge(t, WEXITSTATUS(status), 0);
}
#endif

static inline bool pcr_selected(const struct pcr_test *t, const char *filter)
{
    char spec[512];
    snprintf(spec, sizeof spec, "%s/%s", t->suite, t->name);
    if (!filter)
        return true;
#if defined(_WIN32)
    return strcmp(filter, spec) == 0;
#else
    return fnmatch(filter, spec, 0) == 0;
#endif
}

static inline int pcr_by_name(const void *a, const void *b)
{
    const struct pcr_test *x = *(const struct pcr_test *const *)a;
    const struct pcr_test *y = *(const struct pcr_test *const *)b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    const char *filter = NULL, *only = NULL;
    bool list = false, exec_mode = false;
    pcr_self = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
        else if (strcmp(argv[i], "--run") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--list") == 0)
            list = true;
        else if (strcmp(argv[i], "--exec") == 0)
            exec_mode = true;
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            i++;
        else if (strncmp(argv[i], "--jobs=", 7) == 0 || strncmp(argv[i], "-j", 2) == 0)
            ;
        else {
            fprintf(stderr, "usage: %s [--filter GLOB] [--list] [--exec] [--run SUITE/NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    qsort(pcr_tests, pcr_ntests, sizeof pcr_tests[0], pcr_by_name);

    if (only) {
        for (size_t i = 0; i < pcr_ntests; i++) {
            char spec[512];
            snprintf(spec, sizeof spec, "%s/%s", pcr_tests[i]->suite, pcr_tests[i]->name);
            if (strcmp(spec, only) == 0)
                return pcr_run_here(pcr_tests[i]);
        }
        fprintf(stderr, "portable_criterion: no test %s\n", only);
        return 2;
    }

    size_t tested = 0, passing = 0, failing = 0, crashing = 0, skipped = 0;
    for (size_t i = 0; i < pcr_ntests; i++) {
        const struct pcr_test *t = pcr_tests[i];
        if (!pcr_selected(t, filter))
            continue;
        if (list) {
            printf("%s/%s\n", t->suite, t->name);
            continue;
        }
        const struct pcr_suite *s = pcr_suite_of(t);
        if (t->extra.disabled || (s && s->extra.disabled)) {
            skipped++;
            continue;
        }
        enum pcr_outcome o = pcr_run_isolated(t, exec_mode);
        static const char *const tag[] = {"PASS", "FAIL", "CRASH", "SKIP"};
        fprintf(stderr, "[%s] %s::%s\n", tag[o], t->suite, t->name);
        if (o == PCR_SKIP) {
            skipped++;
            continue;
        }
        tested++;
        passing += o == PCR_PASS;
        failing += o == PCR_FAIL;
        crashing += o == PCR_CRASH;
    }
    if (list)
        return 0;
    fprintf(stderr,
            "[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: %zu | "
            "Skipped: %zu\n",
            tested, passing, failing, crashing, skipped);
    return failing || crashing ? 1 : 0;
}

#endif
