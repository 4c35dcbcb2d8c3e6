/* Subcommands of the `relay` executable. */
#ifndef RLY_CLI_CLI_H
#define RLY_CLI_CLI_H

/* rly_cli_train implements `relay train` (argv[0] = "train"); returns the exit status. */
int rly_cli_train(int argc, char **argv);

#endif
