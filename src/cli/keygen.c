/*
 * `relay keygen OUT_PREFIX`: writes a ZeroMQ CURVE key pair for `relay server --zmq` and
 * `relay actors --zmq`: OUT_PREFIX.key (the secret key, mode 0600) and OUT_PREFIX.pub (the public
 * key), each a 40-character Z85 line after a comment line. Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "relay/relay.h"
#include "transport/transport.h"

static int write_key(const char *path, const char *what, const char *key, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        fprintf(stderr, "relay keygen: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (remove it first: keys are never overwritten)" : "");
        return 1;
    }
    char text[160];
    int n = snprintf(text, sizeof text, "# relay CURVE %s key (Z85)\n%s\n", what, key);
    bool ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "relay keygen: cannot write %s: %s\n", path, strerror(errno));
        unlink(path);
        return 1;
    }
    return 0;
}

int rly_cli_keygen(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: relay keygen OUT_PREFIX\n"
               "  writes OUT_PREFIX.key (CURVE secret key, mode 0600) and OUT_PREFIX.pub (public\n"
               "  key) for `relay server --zmq` / `relay actors --zmq` (docs/DISTRIBUTED.md)\n");
        return 0;
    }
    if (argc != 2 || !argv[1][0] || argv[1][0] == '-') {
        fprintf(stderr, "usage: relay keygen OUT_PREFIX\n");
        return 2;
    }
    char pub[41], sec[41], path_key[RELAY_PATH_MAX + 8], path_pub[RELAY_PATH_MAX + 8];
    if (strlen(argv[1]) >= RELAY_PATH_MAX) {
        fprintf(stderr, "relay keygen: OUT_PREFIX is longer than %d bytes\n", RELAY_PATH_MAX - 1);
        return 2;
    }
    snprintf(path_key, sizeof path_key, "%s.key", argv[1]);
    snprintf(path_pub, sizeof path_pub, "%s.pub", argv[1]);
    if (rly_tp_zmq_keygen(pub, sec) != RELAY_OK) {
        fprintf(stderr, "relay keygen: this libzmq cannot make CURVE keys\n");
        return 1;
    }
    int rc = write_key(path_key, "secret", sec, 0600);
    memset(sec, 0, sizeof sec);
    if (rc)
        return rc;
    if ((rc = write_key(path_pub, "public", pub, 0644))) {
        unlink(path_key);
        return rc;
    }
    printf("%s\n", pub);
    return 0;
}
