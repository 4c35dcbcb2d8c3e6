/*
 * `relay train --distributed K`: distributed training on this machine in one command. It starts a
 * private nats-server (JetStream, file store in a temporary directory, a free 127.0.0.1 port),
 * one `relay server` and K `relay actors` processes of this same executable, waits for the
 * server to finish, then stops everything it started, by PID, and removes the temporary
 * directory. With --zmq there is no broker: the server binds three free consecutive 127.0.0.1
 * ports (tcp://127.0.0.1:P, P+1, P+2) and the actors start once it listens. The run directory is
 * the server's (config.json, metrics.csv, learning_curve.svg, policy.onnx, ledger.csv,
 * checkpoint.bin). Single-threaded; SIGINT/SIGTERM are forwarded to the server, which stops
 * gracefully.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define MAX_PROCS 64

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* port_listening tells whether some socket listens on 127.0.0.1:port (or any address), read from
   /proc/net/tcp: unlike a probe connection, the ZeroMQ server does not see (nor log) it. */
static int port_listening(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return port_open(port);
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned addr = 0, lport = 0, st = 0;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x", &addr, &lport, &st) == 3)
            found = (int)lport == port && st == 0x0A && (addr == 0 || addr == 0x0100007F);
    }
    fclose(f);
    return found;
}

/* free_port_run finds P with P, P+1 and P+2 free (the ZeroMQ server's three ports); -1 if none. */
static int free_port_run(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int p = free_port();
        if (p <= 0 || p > 65533)
            continue;
        int ok = 1;
        for (int k = 1; k <= 2 && ok; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(p + k)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok)
            return p;
    }
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* spawn runs argv with stdout/stderr to log (NULL: inherited); returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGINT, SIG_IGN); /* the launcher decides how children stop */
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    execvp(argv[0], argv);
    fprintf(stderr, "relay train: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* stop sends sig, waits up to ms, then kills; returns the exit status (or -1). */
static int stop(pid_t pid, int sig, long ms)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    if (sig)
        kill(pid, sig);
    for (long t = 0; t < ms; t += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: relay train --distributed K [--zmq] [options]\n"
           "  K actor processes, one training server and a private nats-server on this machine\n"
           "  --zmq            ZeroMQ instead of NATS: no broker, the server binds free 127.0.0.1\n"
           "                   ports (docs/ZEROMQ.md)\n"
           "  --env E, --algo A, --out DIR, --target R, --steps N, --max-seconds S\n"
           "  --actors N, --envs-per-actor M   per actor process (default 1 x 8)\n"
           "Without --zmq it needs nats-server on PATH (scripts/install-deps installs it).\n"
           "docs/DISTRIBUTED.md.\n");
}

int rly_cli_train_distributed(int argc, char **argv)
{
    const char *k_s = NULL, *env = "CartPole-v1", *algo = "ppo", *out = NULL, *target = NULL,
               *steps = NULL, *max_s = NULL, *actors = "1", *epa = "8";
    int zmq = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--zmq")) {
            zmq = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "relay train: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--distributed"))
            k_s = v;
        else if (!strcmp(a, "--env"))
            env = v;
        else if (!strcmp(a, "--algo"))
            algo = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--target"))
            target = v;
        else if (!strcmp(a, "--steps"))
            steps = v;
        else if (!strcmp(a, "--max-seconds"))
            max_s = v;
        else if (!strcmp(a, "--actors"))
            actors = v;
        else if (!strcmp(a, "--envs-per-actor"))
            epa = v;
        else {
            fprintf(stderr,
                    "relay train: %s is not available with --distributed (see relay train "
                    "--distributed 1 --help)\n",
                    a);
            return 2;
        }
    }
    char *end = NULL;
    long k = k_s ? strtol(k_s, &end, 10) : 0;
    if (!k_s || *end || k < 1 || k > MAX_PROCS) {
        fprintf(stderr, "relay train: --distributed \"%s\" is not a whole number in 1..%d\n",
                k_s ? k_s : "", MAX_PROCS);
        return 2;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "relay train: cannot find its own executable\n");
        return 1;
    }
    self[n] = '\0';
    char tmp[] = "/tmp/relay-dist-XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "relay train: cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    int port = zmq ? free_port_run() : free_port();
    char port_s[16], url[64], store[64], log[64], run[32], out_def[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(url, sizeof url, zmq ? "tcp://127.0.0.1:%d" : "nats://127.0.0.1:%d", port);
    snprintf(store, sizeof store, "%s/store", tmp);
    snprintf(log, sizeof log, "%s/nats.log", tmp);
    snprintf(run, sizeof run, "train%d", (int)getpid());
    if (!out) {
        snprintf(out_def, sizeof out_def, "runs/dist-%ld", (long)time(NULL));
        out = out_def;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = 1;
    pid_t nats = -1, server = -1, act[MAX_PROCS];
    for (int i = 0; i < MAX_PROCS; i++)
        act[i] = -1;
    if (port <= 0) {
        fprintf(stderr, "relay train: no free 127.0.0.1 port%s\n", zmq ? "s" : "");
        goto done;
    }
    if (!zmq) {
        char *nargv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port_s, "-sd", store, NULL};
        nats = spawn(nargv, log);
        for (int t = 0; nats > 0 && t < 500 && !port_open(port); t++) {
            if (waitpid(nats, NULL, WNOHANG) == nats) {
                nats = -1;
                break;
            }
            sleep_ms(20);
        }
        if (nats <= 0 || !port_open(port)) {
            fprintf(stderr, "relay train: nats-server did not start (is it installed? see %s)\n",
                    log);
            goto done;
        }
    }
    char *sargv[24];
    int si = 0;
    sargv[si++] = self;
    sargv[si++] = "server";
    sargv[si++] = zmq ? "--zmq" : "--nats";
    sargv[si++] = url;
    sargv[si++] = "--run";
    sargv[si++] = run;
    sargv[si++] = "--env";
    sargv[si++] = (char *)env;
    sargv[si++] = "--algo";
    sargv[si++] = (char *)algo;
    sargv[si++] = "--out";
    sargv[si++] = (char *)out;
    if (target) {
        sargv[si++] = "--target";
        sargv[si++] = (char *)target;
    }
    if (steps) {
        sargv[si++] = "--steps";
        sargv[si++] = (char *)steps;
    }
    if (max_s) {
        sargv[si++] = "--max-seconds";
        sargv[si++] = (char *)max_s;
    }
    sargv[si] = NULL;
    server = spawn(sargv, NULL);
    /* brokerless: actors give up after 5 s without a server, so they start once it listens */
    for (int t = 0; zmq && t < 1500 && !port_listening(port) && !got_signal; t++) {
        int st = 0;
        if (waitpid(server, &st, WNOHANG) == server) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            server = -1;
            fprintf(stderr, "relay train: relay server ended before it listened on %s\n", url);
            goto done;
        }
        sleep_ms(20);
    }
    if (zmq && !port_listening(port)) {
        fprintf(stderr, "relay train: relay server does not listen on %s\n", url);
        goto done;
    }
    for (long i = 0; i < k; i++) {
        char seed[32];
        snprintf(seed, sizeof seed, "%ld", 1000 + i);
        char *aargv[] = {self,
                         "actors",
                         zmq ? "--zmq" : "--nats",
                         url,
                         "--run",
                         run,
                         "--env",
                         (char *)env,
                         "--actors",
                         (char *)actors,
                         "--envs-per-actor",
                         (char *)epa,
                         "--seed",
                         seed,
                         "--quiet",
                         NULL};
        act[i] = spawn(aargv, NULL);
    }
    if (zmq)
        fprintf(stderr, "relay train: ZeroMQ server on %s (no broker), %ld actor processes\n", url,
                k);
    else
        fprintf(stderr, "relay train: nats-server on %s, 1 server, %ld actor processes\n", url, k);
    int st = 0;
    for (;;) {
        pid_t r = waitpid(server, &st, WNOHANG);
        if (r == server) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            server = -1;
            break;
        }
        if (got_signal) {
            rc = stop(server, SIGTERM, 30000);
            server = -1;
            break;
        }
        sleep_ms(50);
    }
    /* actors end by themselves once the server says training finished */
    for (long i = 0; i < k; i++) {
        stop(act[i], 0, 15000);
        act[i] = -1;
    }
done:
    for (long i = 0; i < MAX_PROCS; i++)
        if (act[i] > 0)
            stop(act[i], SIGTERM, 5000);
    stop(server, SIGTERM, 10000);
    stop(nats, SIGTERM, 5000);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
