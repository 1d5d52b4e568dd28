/* cmd_generate.c: `shoal generate --model DIR --prompt TEXT [...]`: sample a continuation.
 *
 * Loads the HF model directory and its tokenizer (the same directory unless --tokenizer says
 * otherwise), encodes the prompt, runs it through the KV-cache prefill and then decodes one
 * token at a time, printing each token's bytes as soon as it is chosen (streaming, as an
 * OpenAI-style client shows it). Stops at <|endoftext|>, --max-new tokens, or the model's
 * context length. Greedy unless --temperature > 0; --top-k/--top-p/--seed as in HF generate.
 * Exit codes: 0 ok, 1 bad model/tokenizer/prompt, 2 usage. Tested by
 * tests/cli/test_generate.sh.
 */
#define SHOAL_LOG_SUBSYS "cli"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "worker/model/gpt.h"
#include "worker/tokenizer/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: shoal generate --model DIR --prompt TEXT [options]\n\n"
            "  --model DIR        HF model directory (config.json + model.safetensors)\n"
            "  --tokenizer DIR    tokenizer files (default: the model directory)\n"
            "  --prompt TEXT      prompt text (required)\n"
            "  --max-new N        most tokens to generate (default 64)\n"
            "  --temperature X    0 = greedy (default 0)\n"
            "  --top-k K          keep the K most likely tokens (default 0 = all)\n"
            "  --top-p P          nucleus sampling threshold (default 1 = off)\n"
            "  --seed N           sampling seed (default 1)\n"
            "  --threads N        CPU threads (default: OMP_NUM_THREADS or all cores)\n"
            "  --no-stop          do not stop at <|endoftext|>\n");
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "shoal generate: %s expects an integer in [%ld, %ld], got '%s'\n", flag,
                lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "shoal generate: %s expects a number in [%g, %g], got '%s'\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* Print one token's bytes. */
static int emit(const shoal_tokenizer *tok, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    if (shoal_tokenizer_decode(tok, &id, 1, &text, &len) != SHOAL_OK) return -1;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    free(text);
    return 0;
}

int shoal_cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *tok_dir = NULL, *prompt = NULL;
    long max_new = 64, top_k = 0, seed = 1, threads = 0;
    float temperature = 0.0f, top_p = 1.0f;
    int stop_at_eot = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-stop") == 0) {
            stop_at_eot = 0;
            takes = 0;
        } else if (!v) {
            fprintf(stderr, "shoal generate: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--model") == 0) {
            model_dir = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            tok_dir = v;
        } else if (strcmp(a, "--prompt") == 0) {
            prompt = v;
        } else if (strcmp(a, "--max-new") == 0) {
            if (parse_long(a, v, 1, 1 << 20, &max_new)) return 2;
        } else if (strcmp(a, "--top-k") == 0) {
            if (parse_long(a, v, 0, 1 << 24, &top_k)) return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_long(a, v, 0, 0x7fffffffL, &seed)) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_long(a, v, 0, 1024, &threads)) return 2;
        } else if (strcmp(a, "--temperature") == 0) {
            if (parse_float(a, v, 0.0, 100.0, &temperature)) return 2;
        } else if (strcmp(a, "--top-p") == 0) {
            if (parse_float(a, v, 0.0, 1.0, &top_p)) return 2;
        } else {
            fprintf(stderr, "shoal generate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i += takes;
    }
    if (!model_dir || !prompt) {
        fprintf(stderr, "shoal generate: --model and --prompt are required\n");
        usage(stderr);
        return 2;
    }
    if (!tok_dir) tok_dir = model_dir;

    int rc = 1;
    shoal_gpt *m = NULL;
    shoal_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    shoal_status st = shoal_gpt_load_dir(model_dir, &m);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal generate: cannot load model from %s: %s\n", model_dir,
                shoal_status_str(st));
        goto done;
    }
    if (threads > 0 && shoal_gpt_set_threads(m, (int)threads) != SHOAL_OK) goto done;
    st = shoal_tokenizer_load(tok_dir, &tok);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal generate: cannot load a tokenizer from %s: %s\n", tok_dir,
                shoal_status_str(st));
        goto done;
    }
    const shoal_gpt_config *cfg = shoal_gpt_cfg(m);
    if (shoal_tokenizer_vocab_size(tok) > cfg->vocab_size) {
        fprintf(stderr,
                "shoal generate: the tokenizer in %s has %d tokens but the model's vocabulary "
                "is %d\n",
                tok_dir, shoal_tokenizer_vocab_size(tok), cfg->vocab_size);
        goto done;
    }
    st = shoal_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n_ids);
    if (st != SHOAL_OK || n_ids == 0) {
        fprintf(stderr, "shoal generate: the prompt encodes to no tokens\n");
        goto done;
    }
    if ((long)n_ids >= cfg->n_positions) {
        fprintf(stderr, "shoal generate: the prompt is %zu tokens; the model's context is %d\n",
                n_ids, cfg->n_positions);
        goto done;
    }
    long room = cfg->n_positions - (long)n_ids;
    if (max_new > room) max_new = room;
    shoal_sampling s = {temperature, (int)top_k, top_p, (uint64_t)seed};
    uint64_t rng = s.seed;
    int32_t eot = stop_at_eot ? shoal_tokenizer_eot_id(tok) : -1;
    const float *logits = NULL;
    float *work = malloc((size_t)cfg->vocab_size * sizeof *work);
    if (!work) goto done;
    st = shoal_gpt_decode_reset(m, (int)(n_ids + (size_t)max_new));
    if (st == SHOAL_OK) st = shoal_gpt_decode_prefill(m, ids, (int)n_ids, &logits);
    fwrite(prompt, 1, strlen(prompt), stdout);
    int pos = (int)n_ids;
    for (long k = 0; st == SHOAL_OK && k < max_new; k++) {
        memcpy(work, logits, (size_t)cfg->vocab_size * sizeof *work);
        int32_t next = shoal_gpt_sample(work, cfg->vocab_size, &s, &rng);
        if (next == eot) break;
        if (emit(tok, next) != 0) {
            /* ids the tokenizer does not know (a model vocabulary padded past the tokenizer) */
            fprintf(stderr, "\nshoal generate: token %d is not in the tokenizer\n", (int)next);
            st = SHOAL_ERR_INVALID_ARG;
            break;
        }
        if (k + 1 < max_new) st = shoal_gpt_decode_step(m, next, pos++, &logits);
    }
    free(work);
    printf("\n");
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal generate: decoding failed: %s\n", shoal_status_str(st));
        goto done;
    }
    rc = 0;
done:
    free(ids);
    shoal_tokenizer_free(tok);
    shoal_gpt_free(m);
    return rc;
}
