/* test.h: the one tiny test header every shoal test program uses.
 *
 * A test program is a main() that calls TEST_RUN(fn) for each case and returns TEST_EXIT().
 * Checks log file:line and the expression on failure and let the case continue, so one run
 * shows every failure. Programs print "N passed, N failed" at the end; exit 0 only when no
 * check failed. TEST_SKIP() exits 77, which CTest reports as skipped (SKIP_RETURN_CODE).
 */
#ifndef SHOAL_TESTS_TEST_H
#define SHOAL_TESTS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_ = 0, test_case_failed_ = 0, test_passed_ = 0, test_failed_ = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            test_failures_++;                                                                      \
            test_case_failed_ = 1;                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, \
                    a_, b_);                                                                       \
            test_failures_++;                                                                      \
            test_case_failed_ = 1;                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, \
                    #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
            test_failures_++;                                                                      \
            test_case_failed_ = 1;                                                                 \
        }                                                                                          \
    } while (0)

/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                             \
        double s_ = fabs(b_) > 1.0 ? fabs(b_) : 1.0;                                               \
        if (!(fabs(a_ - b_) <= t_ * s_)) {                                                         \
            fprintf(stderr, "  FAIL %s:%d: %s ~= %s (%.9g vs %.9g, tol %g)\n", __FILE__, __LINE__, \
                    #a, #b, a_, b_, t_);                                                           \
            test_failures_++;                                                                      \
            test_case_failed_ = 1;                                                                 \
        }                                                                                          \
    } while (0)

#define TEST_RUN(fn)                                                                               \
    do {                                                                                           \
        test_case_failed_ = 0;                                                                     \
        fn();                                                                                      \
        if (test_case_failed_) {                                                                   \
            test_failed_++;                                                                        \
            fprintf(stderr, "[FAIL] %s\n", #fn);                                                   \
        } else {                                                                                   \
            test_passed_++;                                                                        \
            fprintf(stderr, "[ ok ] %s\n", #fn);                                                   \
        }                                                                                          \
    } while (0)

#define TEST_EXIT()                                                                                \
    (printf("%d passed, %d failed\n", test_passed_, test_failed_), test_failures_ ? 1 : 0)

#define TEST_SKIP(why)                                                                             \
    do {                                                                                           \
        printf("skipped: %s\n", why);                                                              \
        exit(77);                                                                                  \
    } while (0)

/* A fresh scratch directory under $TMPDIR (or /tmp); the path stays valid for the process. */
static inline const char *test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/shoal-test-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

#endif
