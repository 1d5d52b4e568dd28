/* test_hostfile.c: coordinator/hostfile.c — a good hostfile (comments, blank lines, defaults,
 * gpus, CRLF) parses to the right slots, and one malformed input per rule is refused. */
#include <stdlib.h>
#include <string.h>

#include "coordinator/hostfile.h"
#include "test.h"

static shoal_status parse(const char *text, shoal_host **h, int *n) {
    return shoal_hostfile_parse(text, strlen(text), "test", h, n);
}

static void test_good(void) {
    shoal_host *h = NULL;
    int n = 0;
    CHECK_EQ_INT(parse("node1 slots=8 gpus=4\r\n  node2\tslots=2 # rack 2\n\n# x\nnode-3.lab\n",
                       &h, &n),
                 SHOAL_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_STR(h[0].name, "node1");
        CHECK_STR(h[0].addr, "node1");
        CHECK_EQ_INT(h[0].cpu_slots, 8);
        CHECK_EQ_INT(h[0].gpus, 4);
        CHECK_EQ_INT(h[1].cpu_slots, 2);
        CHECK_EQ_INT(h[1].gpus, 0);
        CHECK_STR(h[2].name, "node-3.lab");
        CHECK_EQ_INT(h[2].cpu_slots, 1);
    }
    free(h);
    /* no trailing newline */
    CHECK_EQ_INT(parse("solo slots=4", &h, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 1);
    free(h);
}

static void test_bad(void) {
    static const char *const bad[] = {
        "",                       /* no hosts */
        "# only a comment\n\n",   /* no hosts */
        "node1 slots=abc\n",      /* not a number */
        "node1 slots=0\n",        /* below 1 */
        "node1 slots=-2\n",
        "node1 slots=4097\n",     /* above SHOAL_MAX_JOB_RANKS */
        "node1 slots=99999999999999999999\n",
        "node1 gpus=1025\n",
        "node1 slots=\n",
        "node1 slots=2x\n",
        "node1 cpus=4\n",         /* unknown key */
        "node1 slots\n",
        "node1\nnode1 slots=2\n", /* duplicate */
        "no/de\n",                /* bad character */
        "node;rm -rf /\n",
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"), /* 137-byte name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        shoal_host *h = (shoal_host *)1;
        int n = -1;
        shoal_status st = parse(bad[i], &h, &n);
        if (st == SHOAL_OK) fprintf(stderr, "  accepted bad hostfile %zu: %s\n", i, bad[i]);
        CHECK(st != SHOAL_OK);
        CHECK(h == NULL && n == 0);
    }
    /* an embedded NUL is not a character of any name */
    shoal_host *h = NULL;
    int n = 0;
    CHECK(shoal_hostfile_parse("no\0de\n", 6, "nul", &h, &n) != SHOAL_OK);
}

int main(void) {
    shoal_log_set_level(SHOAL_LOG_WARN);
    TEST_RUN(test_good);
    TEST_RUN(test_bad);
    return TEST_EXIT();
}
