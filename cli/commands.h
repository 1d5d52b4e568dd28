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
int shoal_cmd_data(int argc, char **argv);

#endif
