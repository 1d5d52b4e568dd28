/* cmd_data.c: `shoal data prepare` (JSONL -> token shards + dataset.json) and
 * `shoal data inspect` (validate a prepared directory and print its summary).
 *
 * Argument parsing only: the work is in worker/train/prepare.h and dataset.h, with the GPT-2
 * tokenizer of worker/tokenizer as the encoder. Exit codes: 0 done, 1 the data or a file was
 * bad (the message names the file and line), 2 usage. Tested by tests/train/test_data_cli.sh.
 */
#define SHOAL_LOG_SUBSYS "data"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/fileio.h"
#include "common/limits.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/train/dataset.h"
#include "worker/train/prepare.h"
#include "worker/train/shard.h"

static const char *prepare_usage =
    "usage: shoal data prepare --tokenizer DIR --input FILE.jsonl --out DIR\n"
    "                          [--val-fraction F] [--seed N] [--shard-tokens N]\n\n"
    "Tokenizes a JSONL dataset ({\"text\": ...} or {\"prompt\": ..., \"completion\": ...} per\n"
    "line) into token shards with a loss mask (prompts are not trained on) and writes\n"
    "dataset.json. --val-fraction (default 0.05, at most 0.5) of the examples, chosen by\n"
    "--seed (default 1), form the validation split. DIR must not exist; on any error nothing\n"
    "is left behind.\n";

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static shoal_status encode_gpt2(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    return shoal_tokenizer_encode(ctx, text, len, ids, n);
}

static int cmd_prepare(int argc, char **argv) {
    const char *tok_dir = NULL, *input = NULL, *out = NULL;
    shoal_prepare_config cfg = {0};
    cfg.val_fraction = 0.05;
    cfg.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(prepare_usage, stdout);
            return 0;
        } else if (strcmp(a, "--tokenizer") == 0 && v) {
            tok_dir = v;
            i++;
        } else if (strcmp(a, "--input") == 0 && v) {
            input = v;
            i++;
        } else if (strcmp(a, "--out") == 0 && v) {
            out = v;
            i++;
        } else if (strcmp(a, "--val-fraction") == 0 && v) {
            if (!parse_double(v, &cfg.val_fraction) || !(cfg.val_fraction >= 0) ||
                cfg.val_fraction > 0.5) {
                fprintf(stderr,
                        "shoal data prepare: --val-fraction '%s' must be a number in "
                        "[0, 0.5]\n",
                        v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            if (!parse_u64(v, &cfg.seed)) {
                fprintf(stderr,
                        "shoal data prepare: --seed '%s' must be a non-negative "
                        "integer\n",
                        v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--shard-tokens") == 0 && v) {
            if (!parse_u64(v, &cfg.shard_tokens) || cfg.shard_tokens == 0) {
                fprintf(stderr,
                        "shoal data prepare: --shard-tokens '%s' must be a positive "
                        "integer\n",
                        v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "shoal data prepare: unexpected argument '%s'\n\n%s", a, prepare_usage);
            return 2;
        }
    }
    if (!tok_dir || !input || !out) {
        fprintf(stderr, "shoal data prepare: --tokenizer, --input and --out are required\n\n%s",
                prepare_usage);
        return 2;
    }
    cfg.input_path = input;
    cfg.out_dir = out;
    shoal_tokenizer *tok = NULL;
    shoal_status st = shoal_tokenizer_load(tok_dir, &tok);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal data prepare: cannot load the tokenizer from %s: %s\n", tok_dir,
                shoal_status_str(st));
        return 1;
    }
    shoal_text_encoder enc = {tok, (uint32_t)shoal_tokenizer_vocab_size(tok),
                              shoal_tokenizer_eot_id(tok), encode_gpt2};
    shoal_prepare_result res;
    st = shoal_data_prepare(&cfg, &enc, &res);
    shoal_tokenizer_free(tok);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal data prepare: failed (%s); nothing was written to %s\n",
                shoal_status_str(st), out);
        return 1;
    }
    printf("prepared %llu examples from %s (sha256 %s)\n", (unsigned long long)res.examples, input,
           res.sha256);
    const char *names[2] = {"train", "val"};
    for (int s = 0; s < 2; s++)
        printf("  %-5s %8llu documents %10llu tokens %10llu trained  %d shard%s\n", names[s],
               (unsigned long long)res.docs[s], (unsigned long long)res.tokens[s],
               (unsigned long long)res.trained_tokens[s], res.shards[s],
               res.shards[s] == 1 ? "" : "s");
    printf("wrote %s/dataset.json\n", out);
    return 0;
}

/* Validates the manifest, re-hashes and fully validates every shard, prints a summary. */
static int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        int help = argc == 2 && strcmp(argv[1], "--help") == 0;
        fprintf(help ? stdout : stderr, "usage: shoal data inspect DIR\n");
        return help ? 0 : 2;
    }
    shoal_dataset *ds = NULL;
    shoal_status st = shoal_dataset_load(argv[1], &ds);
    if (st == SHOAL_OK) st = shoal_dataset_verify(ds);
    const char *names[2] = {"train", "val"};
    for (int s = 0; st == SHOAL_OK && s < 2; s++) {
        const shoal_dataset_split *sp = shoal_dataset_get_split(ds, names[s]);
        for (int i = 0; st == SHOAL_OK && i < sp->n_shards; i++) {
            char path[SHOAL_MAX_PATH];
            shoal_shard *sh = NULL;
            st = shoal_path_join(path, sizeof path, ds->dir, sp->shards[i].file);
            if (st == SHOAL_OK) st = shoal_shard_open(path, &sh);
            shoal_shard_close(sh);
        }
    }
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal data inspect: %s: %s\n", argv[1], shoal_status_str(st));
        shoal_dataset_free(ds);
        return 1;
    }
    printf("%s: %llu examples, vocab %u, end-of-text %d, source sha256 %s\n", argv[1],
           (unsigned long long)ds->examples, ds->vocab_size, ds->eot_id, ds->source_sha256);
    for (int s = 0; s < 2; s++) {
        const shoal_dataset_split *sp = shoal_dataset_get_split(ds, names[s]);
        printf("  %-5s %8llu documents %10llu tokens %10llu trained  %d shard%s\n", names[s],
               (unsigned long long)sp->documents, (unsigned long long)sp->tokens,
               (unsigned long long)sp->trained_tokens, sp->n_shards, sp->n_shards == 1 ? "" : "s");
    }
    printf("valid: every shard matches its sha256 and passes validation\n");
    shoal_dataset_free(ds);
    return 0;
}

int shoal_cmd_data(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "prepare") == 0) return cmd_prepare(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0) return cmd_inspect(argc - 1, argv + 1);
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fprintf(help ? stdout : stderr,
            "usage: shoal data <subcommand>\n\n"
            "  prepare   tokenize a JSONL dataset into token shards (see --help)\n"
            "  inspect   validate a prepared dataset directory and summarise it\n");
    return help ? 0 : 2;
}
