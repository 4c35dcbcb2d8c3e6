/* Subcommands of the `relay` executable. */
#ifndef RLY_CLI_CLI_H
#define RLY_CLI_CLI_H

/* rly_cli_train implements `relay train` (argv[0] = "train"); returns the exit status. */
int rly_cli_train(int argc, char **argv);

/*
 * rly_cli_train_distributed implements `relay train --distributed K`: a private nats-server, one
 * `relay server` and K `relay actors` processes on this machine (see launch.c).
 */
int rly_cli_train_distributed(int argc, char **argv);

/* rly_cli_server implements `relay server` (argv[0] = "server"); returns the exit status. */
int rly_cli_server(int argc, char **argv);

/* rly_cli_keygen implements `relay keygen OUT_PREFIX` (a CURVE key pair); returns the status. */
int rly_cli_keygen(int argc, char **argv);

/* rly_cli_actors implements `relay actors` (argv[0] = "actors"); returns the exit status. */
int rly_cli_actors(int argc, char **argv);

#endif
