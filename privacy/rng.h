/* rng.h: the cryptographically secure random generator behind all DP noise.
 *
 * What it is: ChaCha20 (Bernstein 2008; block function as in RFC 8439 Sec. 2.3, with the
 * original 64-bit block counter and 64-bit nonce) keyed with 256 bits from getrandom(2).
 * Outputs are the keystream words, buffered 32 blocks (2 KiB) at a time.
 *
 * Why shaped so: DP noise must be unpredictable to an adversary who sees model updates; a
 * Mersenne Twister or rand() is predictable from its outputs, so they are never used. ChaCha20
 * is fast in portable C (no dependence on AES-NI) and is what Linux's own /dev/urandom uses.
 * After fork() a child would replay its parent's stream, so a pthread_atfork handler bumps a
 * generation counter in the child; every draw compares it (one relaxed load) and a stale
 * generator drops its buffered keystream and re-keys from getrandom before the next word
 * (a pid check at refill also catches raw clone() calls that skip atfork handlers). A deterministic
 * mode (key derived from a 64-bit seed) exists for tests and benchmarks only; it says so in a debug
 * log line and shoal_dp_rng_is_deterministic() lets callers refuse it in production paths. If
 * re-keying after fork fails (getrandom broken), the process aborts rather than emit
 * predictable noise.
 * Not thread-safe: one generator per thread.
 *
 * Tested by tests/privacy/test_noise.c (RFC 8439 block vector, fork re-keying, bytes API).
 */
#ifndef SHOAL_PRIVACY_RNG_H
#define SHOAL_PRIVACY_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct shoal_dp_rng shoal_dp_rng;

/* A generator keyed from getrandom(2) (blocks only until the kernel's pool is initialised at
 * boot). IO when getrandom fails. The caller owns *out. */
shoal_status shoal_dp_rng_init(shoal_dp_rng **out);
/* TEST ONLY: a reproducible generator whose key is derived from seed. Never for real noise. */
shoal_status shoal_dp_rng_init_deterministic(shoal_dp_rng **out, uint64_t seed);
void shoal_dp_rng_free(shoal_dp_rng *r);
int shoal_dp_rng_is_deterministic(const shoal_dp_rng *r);

uint64_t shoal_dp_rng_u64(shoal_dp_rng *r);
void shoal_dp_rng_bytes(shoal_dp_rng *r, void *buf, size_t n);

/* The ChaCha20 block function: out = 20 rounds of in, plus in (RFC 8439 Sec. 2.3). */
void shoal_dp_chacha20_block(const uint32_t in[16], uint32_t out[16]);

/* 8 consecutive blocks (counter in state[12..13], advanced by 8) into out[128], block by
 * block, with implementation impl: 0 portable vector code, 1 AVX2 (what the generator uses
 * when the CPU has it). Returns 0, writing nothing, when impl is not available here. For
 * tests comparing the implementations with the block function. */
int shoal_dp_chacha20_blocks8(uint32_t state[16], uint32_t out[128], int impl);

#endif
