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

/* RNG_BLOCKS (8) blocks at once, one block per vector lane (GCC/Clang vector extensions:
 * SSE2 on any x86-64, scalar code elsewhere); same output as 8 calls of
 * shoal_dp_chacha20_block with counters c, c+1, ... (checked in test_noise.c). Advances the
 * 64-bit block counter in state[12..13]. */
typedef uint32_t lanes __attribute__((vector_size(4 * RNG_BLOCKS)));
#define VROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define VQR(a, b, c, d)                                                                            \
    (a += b, d ^= a, d = VROTL(d, 16), c += d, b ^= c, b = VROTL(b, 12), a += b, d ^= a,           \
     d = VROTL(d, 8), c += d, b ^= c, b = VROTL(b, 7))

static void chacha20_blocks(uint32_t state[16], uint32_t *out) {
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SHOAL_CHACHA_AVX2 1
/* The same 8 blocks with AVX2 intrinsics, for CPUs that have it (checked at run time): the
 * rotations by 16 and 8 are byte shuffles (one instruction instead of three), and the 16x8
 * word matrix goes back to block order by two 8x8 transposes in registers (unpack and
 * permute) instead of 128 scalar extractions. Identical output (test_noise.c). */
#define AROTL(v, n) _mm256_or_si256(_mm256_slli_epi32(v, n), _mm256_srli_epi32(v, 32 - (n)))
#define AQR(a, b, c, d)                                                                            \
    do {                                                                                           \
        a = _mm256_add_epi32(a, b);                                                                \
        d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), r16);                                      \
        c = _mm256_add_epi32(c, d);                                                                \
        b = _mm256_xor_si256(b, c);                                                                \
        b = AROTL(b, 12);                                                                          \
        a = _mm256_add_epi32(a, b);                                                                \
        d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), r8);                                       \
        c = _mm256_add_epi32(c, d);                                                                \
        b = _mm256_xor_si256(b, c);                                                                \
        b = AROTL(b, 7);                                                                           \
    } while (0)

/* rows r[0..7] (word w of blocks 0..7) -> out + 16·l (8 words of block l) */
__attribute__((target("avx2"))) static void transpose8_store(const __m256i *r, uint32_t *out) {
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    /* u0 holds column 0 of rows 0-3 (low half) and column 4 (high half); u4 the same for
     * rows 4-7; u1/u5 columns 1 and 5, u2/u6 2 and 6, u3/u7 3 and 7 */
    _mm256_storeu_si256((__m256i *)(out + 16 * 0), _mm256_permute2x128_si256(u0, u4, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16 * 1), _mm256_permute2x128_si256(u1, u5, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16 * 2), _mm256_permute2x128_si256(u2, u6, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16 * 3), _mm256_permute2x128_si256(u3, u7, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16 * 4), _mm256_permute2x128_si256(u0, u4, 0x31));
    _mm256_storeu_si256((__m256i *)(out + 16 * 5), _mm256_permute2x128_si256(u1, u5, 0x31));
    _mm256_storeu_si256((__m256i *)(out + 16 * 6), _mm256_permute2x128_si256(u2, u6, 0x31));
    _mm256_storeu_si256((__m256i *)(out + 16 * 7), _mm256_permute2x128_si256(u3, u7, 0x31));
}

__attribute__((target("avx2"))) static void chacha20_blocks_avx2(uint32_t state[16],
                                                                 uint32_t *out) {
    const __m256i r16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3,
                                         0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m256i r8 = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0,
                                        1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
    uint64_t ctr = (uint64_t)state[12] | (uint64_t)state[13] << 32;
    uint32_t lo[8], hi[8];
    for (int l = 0; l < 8; l++) {
        lo[l] = (uint32_t)(ctr + (uint64_t)l);
        hi[l] = (uint32_t)((ctr + (uint64_t)l) >> 32);
    }
    __m256i in[16], x[16];
    for (int w = 0; w < 16; w++)
        in[w] = _mm256_set1_epi32((int)state[w]);
    in[12] = _mm256_loadu_si256((const __m256i *)lo);
    in[13] = _mm256_loadu_si256((const __m256i *)hi);
    for (int w = 0; w < 16; w++)
        x[w] = in[w];
    for (int i = 0; i < 10; i++) {
        AQR(x[0], x[4], x[8], x[12]);
        AQR(x[1], x[5], x[9], x[13]);
        AQR(x[2], x[6], x[10], x[14]);
        AQR(x[3], x[7], x[11], x[15]);
        AQR(x[0], x[5], x[10], x[15]);
        AQR(x[1], x[6], x[11], x[12]);
        AQR(x[2], x[7], x[8], x[13]);
        AQR(x[3], x[4], x[9], x[14]);
    }
    for (int w = 0; w < 16; w++)
        x[w] = _mm256_add_epi32(x[w], in[w]);
    transpose8_store(x, out);         /* words 0-7 of each block */
    transpose8_store(x + 8, out + 8); /* words 8-15 */
    ctr += 8;
    state[12] = (uint32_t)ctr;
    state[13] = (uint32_t)(ctr >> 32);
}
#endif

/* 1 when the AVX2 path runs on this CPU (decided once; never a silent mix). */
static int use_avx2(void) {
#ifdef SHOAL_CHACHA_AVX2
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx2") ? 1 : 0; /* idempotent: a race is harmless */
    return v;
#else
    return 0;
#endif
}

int shoal_dp_chacha20_blocks8(uint32_t state[16], uint32_t out[128], int impl) {
    if (impl == 0) {
        chacha20_blocks(state, out);
        return 1;
    }
#ifdef SHOAL_CHACHA_AVX2
    if (impl == 1 && __builtin_cpu_supports("avx2")) {
        chacha20_blocks_avx2(state, out);
        return 1;
    }
#endif
    return 0;
}

_Atomic unsigned shoal_dp_fork_gen_;

/* Every generator keyed from the OS, so that a forked child can empty their buffers: the
 * prepare handler holds the lock across fork(), so the list is consistent in the child,
 * which is single-threaded when its handler runs. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static shoal_dp_rng *reg_head;

static void on_fork_prepare(void) {
    pthread_mutex_lock(&reg_lock);
}
static void on_fork_parent(void) {
    pthread_mutex_unlock(&reg_lock);
}
static void on_fork_child(void) {
    atomic_fetch_add(&shoal_dp_fork_gen_, 1u);
    for (shoal_dp_rng *r = reg_head; r; r = r->next) {
        memset(r->buf, 0, sizeof r->buf); /* the parent's keystream is not the child's */
        r->pos = RNG_WORDS;
        r->bits = 0;
        r->nbits = 0;
    }
    pthread_mutex_unlock(&reg_lock);
}
static void register_atfork(void) {
    pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void reg_add(shoal_dp_rng *r) {
    pthread_mutex_lock(&reg_lock);
    r->prev = NULL;
    r->next = reg_head;
    if (reg_head) reg_head->prev = r;
    reg_head = r;
    pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(shoal_dp_rng *r) {
    pthread_mutex_lock(&reg_lock);
    if (r->prev)
        r->prev->next = r->next;
    else if (reg_head == r)
        reg_head = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&reg_lock);
}

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
    int avx2 = use_avx2();
    for (int i = 0; i < RNG_REFILL_CALLS; i++) { /* consecutive counters: one keystream */
#ifdef SHOAL_CHACHA_AVX2
        if (avx2) {
            chacha20_blocks_avx2(r->state, r->buf + 16 * RNG_BLOCKS * i);
            continue;
        }
#endif
        chacha20_blocks(r->state, r->buf + 16 * RNG_BLOCKS * i);
    }
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
    reg_add(r);
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
    if (!r->deterministic) reg_remove(r);
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
