/*
 * The thread-local storage model of the lookup path's variables.
 *
 * initial-exec makes each access one thread-pointer-relative load, with no
 * __tls_get_addr() call, but places the variables in the static TLS block
 * that is laid out when the process starts. glibc keeps spare room there
 * for libraries loaded later by dlopen(), so its builds use it. musl keeps
 * none: dlopen() of a library (or of a plugin linking the static library)
 * with initial-exec variables fails ("initial-exec TLS resolves to dynamic
 * definition"), so other C libraries get the compiler's default model.
 */
#ifndef PORTREG_OS_TLS_H
#define PORTREG_OS_TLS_H

#include <stdlib.h> /* defines __GLIBC__ on glibc */

#if defined(__GLIBC__)
#define PORTREG_TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define PORTREG_TLS_FAST
#endif

#endif
