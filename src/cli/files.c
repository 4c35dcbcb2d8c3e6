#include "cli/files.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/relay.h"

int rly_cli_mkdirs(const char *path)
{
    char tmp[RELAY_PATH_MAX];
    if (!path || !*path)
        return EINVAL;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp)
        return ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

int rly_cli_write_atomic(const char *path, const void *data, size_t len, bool sync)
{
    char tmp[RELAY_PATH_MAX + 8];
    if (!path || (!data && len))
        return EINVAL;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return ENAMETOOLONG;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return errno;
    int err = 0;
    if (len && fwrite(data, 1, len, f) != len)
        err = errno ? errno : EIO;
    if (!err && fflush(f) != 0)
        err = errno ? errno : EIO;
    if (!err && sync && fsync(fileno(f)) != 0)
        err = errno ? errno : EIO;
    if (fclose(f) != 0 && !err)
        err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0)
        err = errno ? errno : EIO;
    if (err)
        unlink(tmp);
    return err;
}
