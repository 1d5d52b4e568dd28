/* guarded_ctx.h: TEST ONLY: a CPU context whose memory host code cannot touch.
 *
 * What: the CPU op table with every buffer from its mem_alloc mmap'd and kept PROT_NONE except
 * while one of its ops or copies runs (each entry unprotects all its buffers, calls the CPU
 * op, protects them again). host_visible is 0, so the model and trainer take their device
 * paths (explicit copies) exactly as on CUDA; any direct host read or write of a buffer the
 * model handed to ops segfaults. Results are the CPU table's, bit for bit.
 * Why: no GPU runs in CI, but the device-memory discipline of worker/model and worker/train
 * must not rot; this makes every slip a crash in a unit test.
 * Tested by tests/model/test_gpt_guarded.c (which also checks that a direct access faults).
 */
#ifndef SHOAL_TESTS_GUARDED_CTX_H
#define SHOAL_TESTS_GUARDED_CTX_H

#include "kernels/ops.h"

/* A CPU context (n_threads as shoal_ctx_init_cpu) on the guarded table. Process-wide registry:
 * one thread of compute at a time. */
shoal_status test_guarded_ctx_init(shoal_ctx *ctx, int n_threads);
/* Number of guarded buffers alive, and of op/copy calls made through the table. */
int test_guarded_live(void);
long test_guarded_calls(void);

#endif
