/* rng_impl.h: privacy-internal view of shoal_dp_rng so that the samplers (noise.c) can take
 * words from the buffer inline. Not a public header: only the .c files of privacy/ include it. */
#ifndef SHOAL_PRIVACY_RNG_IMPL_H
#define SHOAL_PRIVACY_RNG_IMPL_H

#include <stdatomic.h>
#include <sys/types.h>

#include "privacy/rng.h"

#define RNG_BLOCKS 8       /* blocks per vectorised ChaCha20 call (one per lane) */
#define RNG_REFILL_CALLS 4 /* calls per refill: 2 KiB of keystream, so the refill's */
                           /* pid check (a syscall) runs once per 512 words */
#define RNG_WORDS (16 * RNG_BLOCKS * RNG_REFILL_CALLS) /* 32-bit words per refill */

struct shoal_dp_rng {
    uint32_t state[16];      /* constants, key, counter (12..13), nonce (14..15) */
    uint32_t buf[RNG_WORDS]; /* keystream not yet handed out */
    unsigned pos;            /* next unused word in buf */
    pid_t pid;               /* process that keyed the generator */
    unsigned gen;            /* shoal_dp_fork_gen_ when keyed */
    int deterministic;
    uint64_t bits; /* spare random bits for coin flips */
    unsigned nbits;
    struct shoal_dp_rng *prev, *next; /* registry of keyed generators (rng.c), for fork */
};

/* Bumped in every child by a pthread_atfork handler, which also empties the buffer and the
 * spare bits of every keyed generator (a registry in rng.c): the next draw then refills, and
 * the refill of a generator keyed in another process generation (or another pid) re-keys
 * first. So the per-word path below needs no fork check of its own. */
extern _Atomic unsigned shoal_dp_fork_gen_;

void shoal_dp_rng_refill_(shoal_dp_rng *r);

static inline int rng_stale(const shoal_dp_rng *r) {
    return r->gen != atomic_load_explicit(&shoal_dp_fork_gen_, memory_order_relaxed) &&
           !r->deterministic;
}

static inline uint32_t rng_u32(shoal_dp_rng *r) {
    if (r->pos >= RNG_WORDS) shoal_dp_rng_refill_(r);
    return r->buf[r->pos++];
}

static inline uint64_t rng_u64(shoal_dp_rng *r) {
    if (r->pos + 2 > RNG_WORDS) shoal_dp_rng_refill_(r);
    uint64_t v = (uint64_t)r->buf[r->pos] | (uint64_t)r->buf[r->pos + 1] << 32;
    r->pos += 2;
    return v;
}

static inline int rng_bit(shoal_dp_rng *r) {
    if (r->nbits == 0) {
        r->bits = rng_u64(r);
        r->nbits = 64;
    }
    int b = (int)(r->bits & 1u);
    r->bits >>= 1;
    r->nbits--;
    return b;
}

#endif
