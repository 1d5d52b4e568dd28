/* ref_fixture.c: see ref_fixture.h. */
#include "ref_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"

char ref_model_dir[4096];
int32_t ref_tokens[REF_B * REF_T], ref_targets[REF_B * REF_T];
uint8_t ref_mask[REF_B * REF_T];
static shoal_safetensors *ref;

int ref_fixture_open(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    if (!src) src = ".";
    char path[4096];
    snprintf(ref_model_dir, sizeof ref_model_dir, "%s/tests/data/model/gpt2_tiny", src);
    snprintf(path, sizeof path, "%s/tests/data/model/gpt2_tiny_ref.safetensors", src);
    if (shoal_safetensors_open(path, &ref) != SHOAL_OK) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    memcpy(ref_tokens, ref_need("tokens")->data, sizeof ref_tokens);
    memcpy(ref_targets, ref_need("targets")->data, sizeof ref_targets);
    memcpy(ref_mask, ref_need("mask")->data, sizeof ref_mask);
    return 0;
}

void ref_fixture_close(void) {
    shoal_safetensors_close(ref);
    ref = NULL;
}

const shoal_st_tensor *ref_need(const char *name) {
    const shoal_st_tensor *t = shoal_safetensors_find(ref, name);
    if (!t) {
        fprintf(stderr, "fixture lacks %s\n", name);
        exit(2);
    }
    return t;
}

float *ref_f32(const char *name, size_t *n) {
    const shoal_st_tensor *t = ref_need(name);
    float *x = malloc(t->nelem * sizeof(float));
    if (!x || shoal_convert_to_f32(x, t->data, t->dtype, t->nelem) != 0) exit(2);
    if (n) *n = t->nelem;
    return x;
}

double maxabs_rel(const float *a, const float *b, size_t n) {
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        md = d > md ? d : md;
        mb = fabs((double)b[i]) > mb ? fabs((double)b[i]) : mb;
    }
    return mb > 0 ? md / mb : md;
}
