/* main.c: the `shoal` binary, git-style. Dispatches to a subcommand and does nothing else.
 * Tested through tests/cli/test_cli.sh. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const shoal_command commands[] = {
    {"version", "print version, git commit and the backends this build has", shoal_cmd_version},
    {"inspect", "list and validate the tensors of a safetensors file", shoal_cmd_inspect},
    {"convert", "rewrite a safetensors file with its float tensors in another dtype",
     shoal_cmd_convert},
    {"privacy", "DP-SGD calculator: epsilon for a noise level, or noise for an epsilon",
     shoal_cmd_privacy},
    {"data", "prepare a JSONL dataset into token shards (data prepare); check one (data inspect)",
     shoal_cmd_data},
    {"generate", "sample a continuation of a prompt from a model directory (KV cache, streaming)",
     shoal_cmd_generate},
    {"tokenize", "text on stdin -> GPT-2 token ids (--decode: ids -> text)", shoal_cmd_tokenize},
    {"train", "train a GPT on a prepared dataset (one rank, or data-parallel under mpirun/srun)",
     shoal_cmd_train},
#ifdef SHOAL_WITH_COORDINATOR
    {"coordinator", "run the control plane: job store, scheduler, launchers, RPC services",
     shoal_cmd_coordinator},
    {"submit", "submit job.json to the coordinator; prints the job id", shoal_cmd_submit},
    {"jobs", "list queued and running jobs (--all: every job)", shoal_cmd_jobs},
    {"job", "show one job", shoal_cmd_job},
    {"watch", "follow a job's state and progress until it ends", shoal_cmd_watch},
    {"logs", "print a job's output (-f: follow)", shoal_cmd_logs},
    {"cancel", "cancel a job (every rank is stopped)", shoal_cmd_cancel},
#endif
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out, "usage: shoal <command> [options]\n\n"
                 "shoal fine-tunes and serves small language models on a cluster.\n\n"
                 "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'shoal <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) return shoal_cmd_version(1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "shoal: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
