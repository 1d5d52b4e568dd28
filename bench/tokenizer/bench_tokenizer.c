/* bench_tokenizer.c: GPT-2 encode throughput on English text, one thread.
 *
 * The corpus is built in memory from bench/tokenizer/english.txt (paragraphs written for this
 * project): its sentences in a seeded random order, with one in four carrying an invented
 * name and a number so that the word cache also sees words it has not seen before. Figures:
 *   one call   the whole corpus in one encode call (the data-prepare case)
 *   per para   one call per paragraph (~500 B: the serving/prompt case, cold cache)
 *   pretok     the pre-tokenisation scan alone: the ceiling for the BPE half
 * Baseline (DESIGN's method): the pre-tokeniser alone, from the same run; gpt-3-encoder's
 * rate on the same corpus is recorded by hand in docs/BENCHMARKS.md. Target: >= 5 MB/s.
 * usage: bench_tokenizer [MB (default 8)] [FILE: also write the corpus there, for baselines];
 * needs the GPT-2 vocabulary (exit 77 without). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "common/version.h"
#include "worker/tokenizer/pretokenize.h"
#include "worker/tokenizer/tokenizer.h"

/* Seconds of CPU this thread has used: on a shared machine the honest measure of one core's
 * throughput (wall-clock rates are printed beside it). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 1 << 20;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(1);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void make_corpus(const char *src, size_t len, size_t want, buf *out) {
    /* sentences: end at ". ", "? ", "! " or a newline */
    const char *sent[512];
    size_t slen[512];
    int ns = 0;
    size_t i = 0;
    while (i < len && ns < 512) {
        while (i < len && (src[i] == ' ' || src[i] == '\n'))
            i++;
        size_t st = i;
        while (i < len && !(strchr(".?!", src[i]) &&
                            (i + 1 == len || src[i + 1] == ' ' || src[i + 1] == '\n')))
            i++;
        if (i < len) i++;
        if (i > st) {
            sent[ns] = src + st;
            slen[ns++] = i - st;
        }
    }
    static const char *syl[] = {"ka",  "ven", "dro", "li",  "mar", "tesh", "ol", "qui",
                                "zan", "bel", "rho", "sti", "nu",  "gor",  "ae", "fyn"};
    int in_para = 0;
    while (out->n < want) {
        int k = (int)(next_rand() % (uint32_t)ns);
        if (in_para) put(out, " ", 1);
        put(out, sent[k], slen[k]);
        if (next_rand() % 4 == 0) {
            char name[64], tail[96];
            size_t m = 0;
            int parts = 2 + (int)(next_rand() % 3);
            for (int p = 0; p < parts; p++) {
                const char *s = syl[next_rand() % 16];
                m += (size_t)snprintf(name + m, sizeof name - m, "%s", s);
            }
            name[0] = (char)(name[0] - 'a' + 'A');
            int t = snprintf(tail, sizeof tail, " %s paid %u.%02u on %u March.", name,
                             next_rand() % 5000, next_rand() % 100, 1 + next_rand() % 28);
            put(out, tail, (size_t)t);
        }
        if (++in_para >= 4 + (int)(next_rand() % 4)) {
            put(out, "\n\n", 2);
            in_para = 0;
        }
    }
    out->p[out->n] = '\0';
}

int main(int argc, char **argv) {
    double mb = argc > 1 ? atof(argv[1]) : 8.0;
    char dir[1024];
    const char *env = getenv("SHOAL_VOCAB_DIR");
    snprintf(dir, sizeof dir, "%s", env && env[0] ? env : "");
    if (!dir[0])
        snprintf(dir, sizeof dir, "%s/.cache/shoal/gpt2-vocab",
                 getenv("HOME") ? getenv("HOME") : "");
    shoal_tokenizer *t = NULL;
    double t0 = shoal_now_s();
    if (shoal_tokenizer_load(dir, &t) != SHOAL_OK) {
        printf("skipped: no GPT-2 vocabulary in %s\n", dir);
        return 77;
    }
    double load_s = shoal_now_s() - t0;
    const char *srcdir = getenv("SHOAL_SOURCE_DIR");
    char path[1200];
    snprintf(path, sizeof path, "%s/bench/tokenizer/english.txt",
             srcdir && srcdir[0] ? srcdir : SHOAL_SOURCE_DIR_DEFAULT);
    char *src = NULL;
    size_t srclen = 0;
    if (shoal_file_read(path, 1 << 24, &src, &srclen) != SHOAL_OK) return 1;
    buf corpus = {0};
    make_corpus(src, srclen, (size_t)(mb * 1e6), &corpus);
    if (argc > 2 && shoal_file_write_atomic(argv[2], corpus.p, corpus.n) != SHOAL_OK) return 1;

    struct utsname u;
    uname(&u);
    printf("bench_tokenizer: shoal %s (%s), %s %s, 1 thread\n", shoal_build()->version,
           shoal_build()->commit, u.sysname, u.machine);
    printf("vocabulary: %d tokens, loaded in %.0f ms; corpus: %.2f MB of English from %s\n",
           shoal_tokenizer_vocab_size(t), load_s * 1e3, corpus.n / 1e6, "english.txt");

    /* one call, best of 3 */
    double best = 1e30, best_w = 1e30;
    size_t n_ids = 0;
    for (int rep = 0; rep < 3; rep++) {
        int32_t *ids = NULL;
        double c = cpu_s(), w = shoal_now_s();
        if (shoal_tokenizer_encode(t, corpus.p, corpus.n, &ids, &n_ids) != SHOAL_OK) return 1;
        double e = cpu_s() - c, ew = shoal_now_s() - w;
        if (e < best) best = e;
        if (ew < best_w) best_w = ew;
        free(ids);
    }
    double one = corpus.n / best / 1e6, one_w = corpus.n / best_w / 1e6;
    /* one call per paragraph */
    double s = cpu_s(), sw = shoal_now_s();
    size_t pos = 0, n_para = 0;
    while (pos < corpus.n) {
        char *end = strstr(corpus.p + pos, "\n\n");
        size_t e = end ? (size_t)(end - corpus.p) + 2 : corpus.n;
        int32_t *ids = NULL;
        size_t k = 0;
        if (shoal_tokenizer_encode(t, corpus.p + pos, e - pos, &ids, &k) != SHOAL_OK) return 1;
        free(ids);
        pos = e;
        n_para++;
    }
    double para = corpus.n / (cpu_s() - s) / 1e6, para_w = corpus.n / (shoal_now_s() - sw) / 1e6;
    /* pre-tokeniser alone */
    best = 1e30;
    best_w = 1e30;
    size_t pieces = 0;
    for (int rep = 0; rep < 3; rep++) {
        double c = cpu_s(), w = shoal_now_s();
        pieces = 0;
        for (size_t p = 0; p < corpus.n; pieces++)
            p = shoal_pretok_next((const uint8_t *)corpus.p, corpus.n, p);
        double e = cpu_s() - c, ew = shoal_now_s() - w;
        if (e < best) best = e;
        if (ew < best_w) best_w = ew;
    }
    double pre = corpus.n / best / 1e6, pre_w = corpus.n / best_w / 1e6;
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    printf("load average %.1f (MB/s per CPU-second is the figure; wall-clock beside it)\n",
           load[0]);
    printf("%-34s %10s %10s\n", "case", "MB/s cpu", "MB/s wall");
    printf("%-34s %10.1f %10.1f   (%zu tokens, %.2f bytes/token)\n", "encode, one call", one, one_w,
           n_ids, (double)corpus.n / (double)n_ids);
    printf("%-34s %10.1f %10.1f   (%zu calls)\n", "encode, one call per paragraph", para, para_w,
           n_para);
    printf("%-34s %10.1f %10.1f   (%zu pieces; baseline: the scan alone)\n", "pre-tokenise only",
           pre, pre_w, pieces);
    printf("target >= 5 MB/s: %s\n", one >= 5.0 && para >= 5.0 ? "met" : "NOT met");
    free(corpus.p);
    free(src);
    shoal_tokenizer_free(t);
    return 0;
}
