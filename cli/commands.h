/* commands.h: the subcommands of the `shoal` binary. Each takes argv from its own name on
 * (argv[0] is the subcommand) and returns the process exit code. */
#ifndef SHOAL_CLI_COMMANDS_H
#define SHOAL_CLI_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} shoal_command;

int shoal_cmd_version(int argc, char **argv);
int shoal_cmd_inspect(int argc, char **argv);
int shoal_cmd_convert(int argc, char **argv);
int shoal_cmd_privacy(int argc, char **argv);
int shoal_cmd_tokenize(int argc, char **argv);
int shoal_cmd_generate(int argc, char **argv);
#ifdef SHOAL_WITH_COORDINATOR
int shoal_cmd_coordinator(int argc, char **argv);
int shoal_cmd_submit(int argc, char **argv);
int shoal_cmd_jobs(int argc, char **argv);
int shoal_cmd_job(int argc, char **argv);
int shoal_cmd_watch(int argc, char **argv);
int shoal_cmd_logs(int argc, char **argv);
int shoal_cmd_cancel(int argc, char **argv);
#endif
int shoal_cmd_data(int argc, char **argv);
int shoal_cmd_train(int argc, char **argv);

#endif
