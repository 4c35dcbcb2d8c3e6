/* relay: the command-line entry point (train, eval, inspect, version). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_support.h"
#include "relay/sink.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: relay <command> [options]\n"
               "  train     train a policy with actors on routers and an in-process learner\n"
               "  server    the training server of distributed training (NATS JetStream)\n"
               "  actors    an actor process of distributed training\n"
               "  eval      evaluate a policy (ONNX or bundle) on an environment\n"
               "  inspect   print schema, counts, returns and first rows of a trajectory file\n"
               "  version   print the version\n"
               "Run `relay <command> --help` for its options; docs/CLI.md has the details.\n");
}

static int inspect(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout, "usage: relay inspect FILE [--rows N]\n");
        return argc < 2 ? 2 : 0;
    }
    unsigned rows = 5;
    if (argc >= 4 && strcmp(argv[2], "--rows") == 0) {
        if (sscanf(argv[3], "%u", &rows) != 1) {
            fprintf(stderr, "relay inspect: --rows needs a number\n");
            return 2;
        }
    }
    relay_err e = relay_inspect_file(argv[1], stdout, rows);
    if (e) {
        fprintf(stderr, "relay inspect: %s: %s\n", argv[1], relay_strerror(e));
        return e == RELAY_EIO ? 1 : 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return rly_cli_train(argc - 1, argv + 1);
    if (strcmp(cmd, "server") == 0)
        return rly_cli_server(argc - 1, argv + 1);
    if (strcmp(cmd, "actors") == 0)
        return rly_cli_actors(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return rly_cli_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "inspect") == 0)
        return inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("relay 0.1.0\n");
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "relay: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
