/* relay: the command-line entry point (train, eval, inspect, version). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/cli_support.h"
#include "relay/sink.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: relay <command> [options]\n"
               "  train     train a policy with actors on routers and an in-process learner\n"
               "  server    the training server of distributed training (NATS or ZeroMQ)\n"
               "  actors    an actor process of distributed training\n"
               "  keygen    write a CURVE key pair for `relay server/actors --zmq`\n"
               "  eval      evaluate a policy (ONNX or bundle) on an environment\n"
               "  inspect   print schema, counts, returns and first rows of a trajectory file\n"
               "  version   print the version\n"
               "Run `relay <command> --help` for its options; docs/CLI.md has the details.\n");
}

/* INSPECT_MAX_ROWS bounds `relay inspect --rows`. */
#define INSPECT_MAX_ROWS 1000000u

static int inspect(int argc, char **argv)
{
    static const char usage_text[] =
        "usage: relay inspect FILE [--rows N]   (N first rows to print, 0..1000000, default 5)\n";
    rly_argp p = {.prog = "relay inspect", .err = stderr};
    const char *file = NULL;
    uint32_t rows = 5;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if ((r = rly_arg_match(&p, argc, argv, &i, "--rows", &v)) != 0) {
            if (r < 0 || !rly_arg_u32(&p, "--rows", v, 0, INSPECT_MAX_ROWS, &rows))
                return 2;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return rly_arg_unknown(&p, argv[i]);
        } else if (!file) {
            file = argv[i];
        } else {
            rly_arg_fail(&p, "one FILE at a time (got \"%s\" and \"%s\")", file, argv[i]);
            return 2;
        }
    }
    if (!file) {
        rly_arg_fail(&p, "a FILE to inspect is required");
        fputs(usage_text, stderr);
        return 2;
    }
    relay_err e = relay_inspect_file(file, stdout, rows);
    if (e) {
        fprintf(stderr, "relay inspect: %s: %s\n", file, relay_strerror(e));
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
    if (strcmp(cmd, "keygen") == 0)
        return rly_cli_keygen(argc - 1, argv + 1);
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
