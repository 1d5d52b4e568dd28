/* test_loader.c: the batch loader (worker/train/loader.h). Shards are written with token id
 * = global position (vocab 2^20), so every row tells where it came from. Checked: rows are
 * contiguous windows with targets shifted by one and the mask of the targets; an epoch visits
 * every window once; seeds and epochs change the order, the same seed repeats it; world=2 at
 * B equals world=1 at 2B step by step, ranks disjoint; save/encode/decode/restore continues
 * bit-exactly (also at another world size with the same global batch); bad states refused;
 * eval padding; a dataset prepared by worker/train/prepare.h opens by split. */
#include <stdint.h>

#include "common/fileio.h"
#include "test.h"
#include "worker/train/dataset.h"
#include "worker/train/loader.h"
#include "worker/train/prepare.h"
#include "worker/train/shard.h"

#define VOCAB (1u << 20)

static char paths[4][512];
static const char *path_ptrs[4];
static int n_paths;
static uint64_t shard_start[5]; /* global position of each shard's first token */

/* Shards of the given sizes; token = global position, mask = 0 on every 5th position. */
static void make_shards(const uint64_t *sizes, int n) {
    uint64_t pos = 0;
    n_paths = n;
    for (int s = 0; s < n; s++) {
        uint64_t len = sizes[s];
        int32_t *tok = malloc(len * sizeof *tok);
        uint8_t *mask = malloc(len);
        for (uint64_t i = 0; i < len; i++) {
            tok[i] = (int32_t)(pos + i);
            mask[i] = (pos + i) % 5 != 0;
        }
        uint64_t offs[2] = {0, len};
        snprintf(paths[s], sizeof paths[s], "%s/loader-%d-%llu.bin", test_tmpdir(), s,
                 (unsigned long long)len);
        path_ptrs[s] = paths[s];
        CHECK_EQ_INT(shoal_shard_write(paths[s], VOCAB, NULL, tok, mask, len, offs, 1), SHOAL_OK);
        shard_start[s] = pos;
        pos += len;
        free(tok);
        free(mask);
    }
    shard_start[n] = pos;
}

typedef struct {
    int32_t *tok, *tgt;
    uint8_t *mask;
} batch;

static batch batch_new(int B, int T) {
    batch b = {malloc((size_t)B * T * sizeof(int32_t)), malloc((size_t)B * T * sizeof(int32_t)),
               malloc((size_t)B * T)};
    return b;
}
static void batch_free(batch *b) {
    free(b->tok);
    free(b->tgt);
    free(b->mask);
}

static shoal_loader *open_loader(int B, int T, int rank, int world, uint64_t seed, int shuffle,
                                 int drop_last) {
    shoal_loader_config c = {B, T, rank, world, seed, shuffle, drop_last};
    shoal_loader *l = NULL;
    CHECK_EQ_INT(shoal_loader_open_files(path_ptrs, n_paths, &c, &l), SHOAL_OK);
    return l;
}

/* Each row is a window: contiguous positions inside one shard starting at a multiple of T
 * from the shard start; returns the window's first position. */
static int64_t check_row(const int32_t *tok, const int32_t *tgt, const uint8_t *m, int T) {
    int64_t p0 = tok[0];
    int s = 0;
    while (s < n_paths && (uint64_t)p0 >= shard_start[s + 1])
        s++;
    CHECK(s < n_paths);
    CHECK(((uint64_t)p0 - shard_start[s]) % (uint64_t)T == 0);
    CHECK((uint64_t)p0 + (uint64_t)T < shard_start[s + 1]); /* target T+1 fits in the shard */
    for (int t = 0; t < T; t++) {
        CHECK_EQ_INT(tok[t], p0 + t);
        CHECK_EQ_INT(tgt[t], p0 + t + 1);
        CHECK_EQ_INT(m[t], (p0 + t + 1) % 5 != 0);
    }
    return p0;
}

static void test_sequential_and_windows(void) {
    uint64_t sizes[3] = {1000, 37, 517};
    make_shards(sizes, 3);
    int B = 4, T = 16;
    shoal_loader *l = open_loader(B, T, 0, 1, 1, 0, 1);
    if (!l) return;
    /* (1000-1)/16 = 62, (37-1)/16 = 2, (517-1)/16 = 32 */
    CHECK_EQ_INT(shoal_loader_n_windows(l), 96);
    CHECK_EQ_INT(shoal_loader_steps_per_epoch(l), 24);
    CHECK_EQ_INT(shoal_loader_vocab_size(l), VOCAB);
    batch b = batch_new(B, T);
    int64_t prev = -1;
    for (int step = 0; step < 24; step++) {
        CHECK_EQ_INT(shoal_loader_next(l, b.tok, b.tgt, b.mask), SHOAL_OK);
        for (int r = 0; r < B; r++) {
            int64_t p = check_row(b.tok + r * T, b.tgt + r * T, b.mask + r * T, T);
            CHECK(p > prev); /* file order */
            prev = p;
        }
    }
    /* epoch 2 starts over in file order */
    CHECK_EQ_INT(shoal_loader_next(l, b.tok, b.tgt, b.mask), SHOAL_OK);
    CHECK_EQ_INT(b.tok[0], 0);
    batch_free(&b);
    shoal_loader_free(l);
}

/* Collects the first positions of all rows of `steps` steps into out. */
static void run_steps(shoal_loader *l, int B, int T, int steps, int64_t *out) {
    batch b = batch_new(B, T);
    for (int s = 0; s < steps; s++) {
        CHECK_EQ_INT(shoal_loader_next(l, b.tok, b.tgt, b.mask), SHOAL_OK);
        for (int r = 0; r < B; r++)
            out[s * B + r] = check_row(b.tok + r * T, b.tgt + r * T, b.mask + r * T, T);
    }
    batch_free(&b);
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_shuffle_epochs(void) {
    uint64_t sizes[2] = {2049, 1025}; /* 128 + 64 windows of T=16 */
    make_shards(sizes, 2);
    int B = 8, T = 16, steps = 24; /* one epoch = 192 windows */
    int64_t e1[192], e2[192], again[192], other[192];
    shoal_loader *l = open_loader(B, T, 0, 1, 1234, 1, 1);
    if (!l) return;
    run_steps(l, B, T, steps, e1);
    run_steps(l, B, T, steps, e2);
    shoal_loader_free(l);
    l = open_loader(B, T, 0, 1, 1234, 1, 1);
    run_steps(l, B, T, steps, again);
    shoal_loader_free(l);
    l = open_loader(B, T, 0, 1, 1235, 1, 1);
    run_steps(l, B, T, steps, other);
    shoal_loader_free(l);
    CHECK(memcmp(e1, again, sizeof e1) == 0);
    CHECK(memcmp(e1, e2, sizeof e1) != 0);
    CHECK(memcmp(e1, other, sizeof e1) != 0);
    int64_t sorted[192];
    memcpy(sorted, e1, sizeof sorted);
    qsort(sorted, 192, sizeof *sorted, cmp64);
    for (int i = 1; i < 192; i++)
        CHECK(sorted[i] != sorted[i - 1]); /* each window once */
    memcpy(sorted, e2, sizeof sorted);
    qsort(sorted, 192, sizeof *sorted, cmp64);
    for (int i = 1; i < 192; i++)
        CHECK(sorted[i] != sorted[i - 1]);
    int in_order = 1;
    for (int i = 1; i < 192; i++)
        in_order &= e1[i] > e1[i - 1];
    CHECK(!in_order);
}

/* world=2 at B sees exactly world=1 at 2B, step by step, across epoch boundaries. */
static void test_rank_sharding(void) {
    uint64_t sizes[2] = {1601, 1601}; /* 100 + 100 windows at T=16 */
    make_shards(sizes, 2);
    int B = 3, T = 16, steps = 80; /* 200 / 6 = 33 steps per epoch: crosses two boundaries */
    int64_t *one = malloc(sizeof(int64_t) * steps * 2 * B);
    int64_t *r0 = malloc(sizeof(int64_t) * steps * B), *r1 = malloc(sizeof(int64_t) * steps * B);
    shoal_loader *l1 = open_loader(2 * B, T, 0, 1, 99, 1, 1);
    shoal_loader *a = open_loader(B, T, 0, 2, 99, 1, 1), *b = open_loader(B, T, 1, 2, 99, 1, 1);
    if (!l1 || !a || !b) goto done;
    CHECK_EQ_INT(shoal_loader_steps_per_epoch(l1), 33);
    CHECK_EQ_INT(shoal_loader_steps_per_epoch(a), 33);
    run_steps(l1, 2 * B, T, steps, one);
    run_steps(a, B, T, steps, r0);
    run_steps(b, B, T, steps, r1);
    for (int s = 0; s < steps; s++) {
        int64_t u[6], v[6];
        memcpy(u, one + s * 2 * B, sizeof u);
        memcpy(v, r0 + s * B, B * sizeof *v);
        memcpy(v + B, r1 + s * B, B * sizeof *v);
        qsort(u, 6, sizeof *u, cmp64);
        qsort(v, 6, sizeof *v, cmp64);
        CHECK(memcmp(u, v, sizeof u) == 0);
        for (int i = 1; i < 6; i++)
            CHECK(v[i] != v[i - 1]); /* ranks disjoint */
    }
    /* within an epoch the two ranks never share a window */
    int64_t all[198];
    memcpy(all, r0, 99 * sizeof *all);
    memcpy(all + 99, r1, 99 * sizeof *all);
    qsort(all, 198, sizeof *all, cmp64);
    for (int i = 1; i < 198; i++)
        CHECK(all[i] != all[i - 1]);
done:
    shoal_loader_free(l1);
    shoal_loader_free(a);
    shoal_loader_free(b);
    free(one);
    free(r0);
    free(r1);
}

static void test_save_restore(void) {
    uint64_t sizes[1] = {3201}; /* 200 windows */
    make_shards(sizes, 1);
    int B = 4, T = 16;
    shoal_loader *l = open_loader(B, T, 0, 1, 7, 1, 1);
    if (!l) return;
    int64_t skip[4 * 61], cont[4 * 30], resumed[4 * 30];
    run_steps(l, B, T, 61, skip); /* past the first epoch of 50 steps */
    shoal_loader_state st;
    shoal_loader_get_state(l, &st);
    CHECK_EQ_INT(st.epoch, 1);
    CHECK_EQ_INT(st.cursor, 11 * 4);
    uint8_t blob[SHOAL_LOADER_STATE_BYTES];
    shoal_loader_state_encode(&st, blob);
    run_steps(l, B, T, 30, cont);
    shoal_loader_free(l);

    shoal_loader_state back;
    CHECK_EQ_INT(shoal_loader_state_decode(blob, sizeof blob, &back), SHOAL_OK);
    CHECK(back.seed == 7 && back.epoch == 1 && back.cursor == 44 && back.n_windows == 200 &&
          back.T == 16);
    l = open_loader(B, T, 0, 1, 555, 1, 1); /* another seed: the saved one wins */
    CHECK_EQ_INT(shoal_loader_set_state(l, &back), SHOAL_OK);
    run_steps(l, B, T, 30, resumed);
    CHECK(memcmp(cont, resumed, sizeof cont) == 0);
    shoal_loader_free(l);

    /* resume at world=2, B=2 (same global batch): the union per step is the same */
    shoal_loader *a = open_loader(2, T, 0, 2, 1, 1, 1), *b = open_loader(2, T, 1, 2, 1, 1, 1);
    CHECK_EQ_INT(shoal_loader_set_state(a, &back), SHOAL_OK);
    CHECK_EQ_INT(shoal_loader_set_state(b, &back), SHOAL_OK);
    int64_t ra[60], rb[60];
    run_steps(a, 2, T, 30, ra);
    run_steps(b, 2, T, 30, rb);
    for (int s = 0; s < 30; s++) {
        CHECK_EQ_INT(ra[2 * s], cont[4 * s]);
        CHECK_EQ_INT(ra[2 * s + 1], cont[4 * s + 1]);
        CHECK_EQ_INT(rb[2 * s], cont[4 * s + 2]);
        CHECK_EQ_INT(rb[2 * s + 1], cont[4 * s + 3]);
    }
    shoal_loader_free(a);
    shoal_loader_free(b);

    /* states that do not fit */
    l = open_loader(B, T, 0, 1, 7, 1, 1);
    shoal_loader_state bad = back;
    bad.T = 32;
    CHECK_EQ_INT(shoal_loader_set_state(l, &bad), SHOAL_ERR_INVALID_ARG);
    bad = back;
    bad.n_windows = 201;
    CHECK_EQ_INT(shoal_loader_set_state(l, &bad), SHOAL_ERR_INVALID_ARG);
    bad = back;
    bad.cursor = 6;
    CHECK_EQ_INT(shoal_loader_set_state(l, &bad), SHOAL_ERR_INVALID_ARG);
    bad = back;
    bad.cursor = 204;
    CHECK_EQ_INT(shoal_loader_set_state(l, &bad), SHOAL_ERR_INVALID_ARG);
    shoal_loader_free(l);
    uint8_t corrupt[SHOAL_LOADER_STATE_BYTES];
    memcpy(corrupt, blob, sizeof corrupt);
    corrupt[0] = 'X';
    CHECK_EQ_INT(shoal_loader_state_decode(corrupt, sizeof corrupt, &back), SHOAL_ERR_FORMAT);
    memcpy(corrupt, blob, sizeof corrupt);
    corrupt[4] = 2;
    CHECK_EQ_INT(shoal_loader_state_decode(corrupt, sizeof corrupt, &back), SHOAL_ERR_FORMAT);
    memcpy(corrupt, blob, sizeof corrupt);
    memset(corrupt + 8, 0, 4);
    CHECK_EQ_INT(shoal_loader_state_decode(corrupt, sizeof corrupt, &back), SHOAL_ERR_FORMAT);
    CHECK_EQ_INT(shoal_loader_state_decode(blob, sizeof blob - 1, &back), SHOAL_ERR_FORMAT);
}

static void test_eval_padding(void) {
    uint64_t sizes[1] = {161}; /* 10 windows of T=16 */
    make_shards(sizes, 1);
    int B = 4, T = 16;
    shoal_loader *l = open_loader(B, T, 0, 1, 0, 0, 0);
    if (!l) return;
    CHECK_EQ_INT(shoal_loader_steps_per_epoch(l), 3);
    batch b = batch_new(B, T);
    int real_rows = 0;
    for (int s = 0; s < 3; s++) {
        CHECK_EQ_INT(shoal_loader_next(l, b.tok, b.tgt, b.mask), SHOAL_OK);
        for (int r = 0; r < B; r++) {
            int any = 0;
            for (int t = 0; t < T; t++)
                any |= b.mask[r * T + t];
            if (s == 2 && r >= 2) {
                CHECK(!any); /* padding */
                CHECK_EQ_INT(b.tok[r * T], 0);
            } else {
                check_row(b.tok + r * T, b.tgt + r * T, b.mask + r * T, T);
                real_rows++;
            }
        }
    }
    CHECK_EQ_INT(real_rows, 10);
    CHECK_EQ_INT(shoal_loader_rewind(l, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_loader_next(l, b.tok, b.tgt, b.mask), SHOAL_OK);
    CHECK_EQ_INT(b.tok[0], 0);
    CHECK_EQ_INT(b.tok[T], 16);
    batch_free(&b);
    shoal_loader_free(l);
    /* training needs one full global batch */
    shoal_loader_config c = {11, T, 0, 1, 0, 1, 1};
    CHECK_EQ_INT(shoal_loader_open_files(path_ptrs, 1, &c, &l), SHOAL_ERR_INVALID_ARG);
    CHECK(l == NULL);
    shoal_loader_config bad = {4, T, 2, 2, 0, 1, 1};
    CHECK_EQ_INT(shoal_loader_open_files(path_ptrs, 1, &bad, &l), SHOAL_ERR_INVALID_ARG);
}

static shoal_status byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    (void)ctx;
    *ids = malloc(len ? len * sizeof **ids : 1);
    if (!*ids) return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return SHOAL_OK;
}

/* Prepared dataset -> loader by split, including a manifest/shard mismatch. */
static void test_open_split(void) {
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/split.jsonl", test_tmpdir());
    snprintf(out, sizeof out, "%s/split-ds", test_tmpdir());
    char text[64 * 200];
    size_t len = 0;
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "{\"prompt\": \"p%03d\", \"completion\": \" c%03d\"}\n", i, i);
    CHECK_EQ_INT(shoal_file_write_atomic(in, text, len), SHOAL_OK);
    shoal_text_encoder enc = {NULL, 257, 256, byte_encode};
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){in, out, 0.1, 5, 0}, &enc, NULL),
                 SHOAL_OK);
    shoal_dataset *ds = NULL;
    CHECK_EQ_INT(shoal_dataset_load(out, &ds), SHOAL_OK);
    if (!ds) return;
    shoal_loader_config c = {4, 12, 0, 1, 1, 1, 1};
    shoal_loader *tr = NULL, *va = NULL;
    CHECK_EQ_INT(shoal_loader_open_split(ds, "train", &c, &tr), SHOAL_OK);
    c.shuffle = 0;
    c.drop_last = 0;
    CHECK_EQ_INT(shoal_loader_open_split(ds, "val", &c, &va), SHOAL_OK);
    /* 180 docs x 10 tokens = 1800 tokens: (1800-1)/12 = 149 windows */
    CHECK_EQ_INT(shoal_loader_n_windows(tr), 149);
    CHECK_EQ_INT(shoal_loader_n_windows(va), 16);
    int32_t tok[48], tgt[48];
    uint8_t m[48];
    CHECK_EQ_INT(shoal_loader_next(va, tok, tgt, m), SHOAL_OK);
    /* first val window: "pNNN c" ... prompt bytes masked, completion and EOT trained */
    CHECK_EQ_INT(tok[0], 'p');
    CHECK_EQ_INT(m[0], 0); /* target: a prompt digit */
    CHECK_EQ_INT(tgt[3], ' ');
    CHECK_EQ_INT(m[3], 1);     /* target: first completion byte */
    CHECK_EQ_INT(tgt[8], 256); /* end of text after " cNNN" */
    CHECK_EQ_INT(m[8], 1);
    CHECK_EQ_INT(m[9], 0); /* next document's 'p' */
    shoal_loader *none = NULL;
    CHECK_EQ_INT(shoal_loader_open_split(ds, "test", &c, &none), SHOAL_ERR_INVALID_ARG);
    CHECK(none == NULL);
    shoal_loader_free(tr);
    shoal_loader_free(va);
    ds->train.shards[0].tokens--; /* the manifest disagrees with the shard */
    shoal_loader *x = NULL;
    CHECK_EQ_INT(shoal_loader_open_split(ds, "train", &c, &x), SHOAL_ERR_FORMAT);
    CHECK(x == NULL);
    shoal_dataset_free(ds);
}

int main(void) {
    TEST_RUN(test_sequential_and_windows);
    TEST_RUN(test_shuffle_epochs);
    TEST_RUN(test_rank_sharding);
    TEST_RUN(test_save_restore);
    TEST_RUN(test_eval_padding);
    TEST_RUN(test_open_split);
    return TEST_EXIT();
}
