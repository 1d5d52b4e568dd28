/* cmd_tensors.c: `shoal inspect FILE` and `shoal convert IN OUT --dtype D`.
 *
 * inspect validates a safetensors file fully (common/safetensors.h) and lists its tensors;
 * convert rewrites every F32/F16/BF16 tensor in the requested float dtype, keeps other
 * tensors and the __metadata__ map as they are, and writes atomically.
 */
#define SHOAL_LOG_SUBSYS "cli"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/safetensors.h"

static int is_float(shoal_dtype dt) {
    return dt == SHOAL_DTYPE_F32 || dt == SHOAL_DTYPE_F16 || dt == SHOAL_DTYPE_BF16;
}

int shoal_cmd_inspect(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(argc == 2 ? stdout : stderr, "usage: shoal inspect FILE.safetensors\n");
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    shoal_safetensors *st;
    shoal_status s = shoal_safetensors_open(argv[1], &st);
    if (s != SHOAL_OK) {
        fprintf(stderr, "shoal inspect: %s: %s\n", argv[1], shoal_status_str(s));
        return 1;
    }
    uint64_t total = 0, bytes = 0;
    for (int i = 0; i < shoal_safetensors_count(st); i++) {
        const shoal_st_tensor *t = shoal_safetensors_at(st, i);
        char shape[160] = "";
        size_t n = 0;
        for (int d = 0; d < t->ndim && n < sizeof shape; d++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", d ? ", " : "",
                                  (long long)t->shape[d]);
        printf("%-48s %-6s [%s]\n", t->name, shoal_dtype_name(t->dtype), shape);
        total += t->nelem;
        bytes += t->nbytes;
    }
    printf("%d tensors, %llu elements, %llu bytes of data: valid\n", shoal_safetensors_count(st),
           (unsigned long long)total, (unsigned long long)bytes);
    shoal_safetensors_close(st);
    return 0;
}

int shoal_cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dt_name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc)
            dt_name = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: shoal convert IN.safetensors OUT.safetensors --dtype F32|F16|BF16\n");
            return 0;
        } else if (!in)
            in = argv[i];
        else if (!out)
            out = argv[i];
        else {
            fprintf(stderr, "shoal convert: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    shoal_dtype to = dt_name ? shoal_dtype_from_name(dt_name) : SHOAL_DTYPE_INVALID;
    if (!in || !out || !is_float(to)) {
        fprintf(stderr, "usage: shoal convert IN.safetensors OUT.safetensors --dtype F32|F16|BF16\n");
        return 2;
    }
    shoal_safetensors *st;
    shoal_status s = shoal_safetensors_open(in, &st);
    if (s != SHOAL_OK) {
        fprintf(stderr, "shoal convert: %s: %s\n", in, shoal_status_str(s));
        return 1;
    }
    int n = shoal_safetensors_count(st), rc = 1;
    shoal_st_write_tensor *w = calloc((size_t)n + 1, sizeof *w);
    void **bufs = calloc((size_t)n + 1, sizeof *bufs);
    float *tmp = NULL;
    if (!w || !bufs) goto done;
    for (int i = 0; i < n; i++) {
        const shoal_st_tensor *t = shoal_safetensors_at(st, i);
        w[i] = (shoal_st_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
        if (!is_float(t->dtype) || t->dtype == to) continue;
        free(tmp);
        tmp = malloc(t->nelem * sizeof(float) + 1);
        bufs[i] = malloc(t->nelem * shoal_dtype_size(to) + 1);
        if (!tmp || !bufs[i]) {
            fprintf(stderr, "shoal convert: out of memory at tensor %s\n", t->name);
            goto done;
        }
        shoal_convert_to_f32(tmp, t->data, t->dtype, t->nelem);
        shoal_convert_from_f32(bufs[i], to, tmp, t->nelem);
        w[i].dtype = to;
        w[i].data = bufs[i];
    }
    /* Carry __metadata__ over unchanged: the "format" key and provenance live there. */
    const char **meta = NULL;
    int n_meta = shoal_safetensors_meta_all(st, &meta);
    if (n_meta < 0) goto done;
    s = shoal_safetensors_write(out, w, n, meta, n_meta);
    free(meta);
    if (s != SHOAL_OK) {
        fprintf(stderr, "shoal convert: %s: %s\n", out, shoal_status_str(s));
        goto done;
    }
    printf("wrote %s: %d tensors, floats as %s\n", out, n, shoal_dtype_name(to));
    rc = 0;
done:
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(tmp);
    free(w);
    shoal_safetensors_close(st);
    return rc;
}
