/* ref_fixture.h: the tiny GPT-2's PyTorch reference fixture, shared by the tests that check the
 * model against it (test_gpt_ref.c on the CPU, test_gpt_cuda.c on a device).
 *
 * ref_fixture_open() finds tests/data/model/gpt2_tiny (the HF directory, in ref_model_dir) and
 * gpt2_tiny_ref.safetensors (from tests/ref/gen_gpt2_ref.py) under SHOAL_SOURCE_DIR, and copies
 * its batch (B x T tokens, targets, mask) into ref_tokens/ref_targets/ref_mask. The helpers exit
 * with 2 when the fixture lacks a tensor: a broken fixture is a setup error, not a test result.
 */
#ifndef SHOAL_TESTS_MODEL_REF_FIXTURE_H
#define SHOAL_TESTS_MODEL_REF_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "common/safetensors.h"

enum { REF_B = 3, REF_T = 32 };

extern char ref_model_dir[4096];
extern int32_t ref_tokens[REF_B * REF_T], ref_targets[REF_B * REF_T];
extern uint8_t ref_mask[REF_B * REF_T];

/* 0 when the fixture is open and the batch copied; 2 (printed why) otherwise. */
int ref_fixture_open(void);
void ref_fixture_close(void);
/* The named tensor; exits 2 when absent. */
const shoal_st_tensor *ref_need(const char *name);
/* The named tensor converted to a malloc'd fp32 array (*n its element count; n may be NULL). */
float *ref_f32(const char *name, size_t *n);
/* max |a - b| / max |b| (max |a - b| when b is all zero) */
double maxabs_rel(const float *a, const float *b, size_t n);

#endif
