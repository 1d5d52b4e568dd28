/* rng.c: ChaCha20 keystream generator keyed from getrandom(2). See rng.h.
 * Tested by tests/privacy/test_noise.c. */
#define SHOAL_LOG_SUBSYS "privacy"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "privacy/rng_impl.h"

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))
#define QR(a, b, c, d)                                                                             \
    (a += b, d ^= a, d = ROTL(d, 16), c += d, b ^= c, b = ROTL(b, 12), a += b, d ^= a,             \
     d = ROTL(d, 8), c += d, b ^= c, b = ROTL(b, 7))

void shoal_dp_chacha20_block(const uint32_t in[16], uint32_t out[16]) {
    uint32_t x[16];
    memcpy(x, in, sizeof x);
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++)
        out[i] = x[i] + in[i];
}

static void set_key(shoal_dp_rng *r, const uint8_t key[32]) {
    static const uint32_t sigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    memcpy(r->state, sigma, sizeof sigma);
    for (int i = 0; i < 8; i++)
        r->state[4 + i] = (uint32_t)key[4 * i] | (uint32_t)key[4 * i + 1] << 8 |
                          (uint32_t)key[4 * i + 2] << 16 | (uint32_t)key[4 * i + 3] << 24;
    r->state[12] = r->state[13] = r->state[14] = r->state[15] = 0;
    r->pos = RNG_WORDS;
    r->nbits = 0;
    r->bits = 0;
}

static shoal_status os_key(uint8_t key[32]) {
    size_t got = 0;
    while (got < 32) {
        ssize_t k = getrandom(key + got, 32 - got, 0);
        if (k < 0 && errno == EINTR) continue;
        SHOAL_REQUIRE(k > 0, SHOAL_ERR_IO, "getrandom failed: %s", strerror(errno));
        got += (size_t)k;
    }
    return SHOAL_OK;
}

/* RNG_BLOCKS blocks at once, one block per vector lane (GCC/Clang vector extensions: SSE2 or
 * AVX2 where the target has it, scalar code elsewhere); same output as RNG_BLOCKS calls of
 * shoal_dp_chacha20_block with counters c, c+1, ... (checked in test_noise.c). Advances the
 * 64-bit block counter in state[12..13]. */
typedef uint32_t lanes __attribute__((vector_size(4 * RNG_BLOCKS)));
#define VROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define VQR(a, b, c, d)                                                                            \
    (a += b, d ^= a, d = VROTL(d, 16), c += d, b ^= c, b = VROTL(b, 12), a += b, d ^= a,           \
     d = VROTL(d, 8), c += d, b ^= c, b = VROTL(b, 7))

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
/* AVX2 when the CPU has it (8 lanes in one register), SSE2 otherwise; chosen once at load
 * time by the ifunc resolver the attribute generates. */
#define CHACHA_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CHACHA_CLONES
#endif
CHACHA_CLONES static void chacha20_blocks(uint32_t state[16], uint32_t *out) {
    lanes x[16], in[16];
    uint64_t ctr = (uint64_t)state[12] | (uint64_t)state[13] << 32;
    for (int w = 0; w < 16; w++)
        for (int l = 0; l < RNG_BLOCKS; l++)
            in[w][l] = state[w];
    for (int l = 0; l < RNG_BLOCKS; l++) {
        in[12][l] = (uint32_t)(ctr + (uint64_t)l);
        in[13][l] = (uint32_t)((ctr + (uint64_t)l) >> 32);
    }
    memcpy(x, in, sizeof x);
    for (int i = 0; i < 10; i++) {
        VQR(x[0], x[4], x[8], x[12]);
        VQR(x[1], x[5], x[9], x[13]);
        VQR(x[2], x[6], x[10], x[14]);
        VQR(x[3], x[7], x[11], x[15]);
        VQR(x[0], x[5], x[10], x[15]);
        VQR(x[1], x[6], x[11], x[12]);
        VQR(x[2], x[7], x[8], x[13]);
        VQR(x[3], x[4], x[9], x[14]);
    }
    for (int w = 0; w < 16; w++)
        x[w] += in[w];
    for (int l = 0; l < RNG_BLOCKS; l++)
        for (int w = 0; w < 16; w++)
            out[16 * l + w] = x[w][l];
    ctr += RNG_BLOCKS; /* 2^64 blocks: never wraps in practice */
    state[12] = (uint32_t)ctr;
    state[13] = (uint32_t)(ctr >> 32);
}

_Atomic unsigned shoal_dp_fork_gen_;

static void on_fork_child(void) {
    atomic_fetch_add(&shoal_dp_fork_gen_, 1u);
}
static void register_atfork(void) {
    pthread_atfork(NULL, NULL, on_fork_child);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void shoal_dp_rng_refill_(shoal_dp_rng *r) {
    /* After fork (atfork generation changed, or a pid change from a raw clone the handler
     * did not see) the child re-keys and drops the parent's buffered keystream. */
    if (!r->deterministic && (rng_stale(r) || getpid() != r->pid)) {
        /* forked child: never replay the parent's stream */
        uint8_t key[32];
        if (os_key(key) != SHOAL_OK) {
            fprintf(stderr, "shoal: cannot re-key the DP random generator after fork\n");
            abort(); /* no safe way to continue producing noise */
        }
        set_key(r, key);
        memset(key, 0, sizeof key);
        r->pid = getpid();
        r->gen = atomic_load(&shoal_dp_fork_gen_);
    }
    for (int i = 0; i < RNG_REFILL_CALLS; i++) /* consecutive counters: one keystream */
        chacha20_blocks(r->state, r->buf + 16 * RNG_BLOCKS * i);
    r->pos = 0;
}

shoal_status shoal_dp_rng_init(shoal_dp_rng **out) {
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    shoal_dp_rng *r = calloc(1, sizeof *r);
    if (!r) return SHOAL_ERR_NOMEM;
    pthread_once(&atfork_once, register_atfork);
    uint8_t key[32];
    shoal_status st = os_key(key);
    if (st != SHOAL_OK) {
        free(r);
        return st;
    }
    set_key(r, key);
    memset(key, 0, sizeof key);
    r->pid = getpid();
    r->gen = atomic_load(&shoal_dp_fork_gen_);
    *out = r;
    return SHOAL_OK;
}

shoal_status shoal_dp_rng_init_deterministic(shoal_dp_rng **out, uint64_t seed) {
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    shoal_dp_rng *r = calloc(1, sizeof *r);
    if (!r) return SHOAL_ERR_NOMEM;
    uint8_t key[32] = {0};
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(seed >> (8 * i));
    key[31] = 0x5a; /* domain separation from an all-zero key */
    set_key(r, key);
    r->pid = getpid();
    r->deterministic = 1;
    SHOAL_LOG_DEBUG("deterministic DP generator (seed %llu): for tests only, not private",
                    (unsigned long long)seed);
    *out = r;
    return SHOAL_OK;
}

void shoal_dp_rng_free(shoal_dp_rng *r) {
    if (!r) return;
    memset(r, 0, sizeof *r); /* keystream state is key material */
    free(r);
}

int shoal_dp_rng_is_deterministic(const shoal_dp_rng *r) {
    return r ? r->deterministic : 0;
}

uint64_t shoal_dp_rng_u64(shoal_dp_rng *r) {
    return rng_u64(r);
}

void shoal_dp_rng_bytes(shoal_dp_rng *r, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        uint32_t w = rng_u32(r);
        size_t k = n < 4 ? n : 4;
        memcpy(p, &w, k);
        p += k;
        n -= k;
    }
}
