/*
 * Run-directory file helpers shared by the `relay` subcommands (train, server, actors): directory
 * creation and whole-file atomic writes. Stateless; any thread may call them; the caller owns
 * every buffer and reports errors (the functions return the errno value, they print nothing).
 */
#ifndef RLY_CLI_FILES_H
#define RLY_CLI_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* rly_cli_mkdirs creates path and its missing parents (mode 0755); 0 or the errno value. */
int rly_cli_mkdirs(const char *path);

/*
 * rly_cli_write_atomic writes len bytes to path through "path.tmp" renamed into place, so the
 * file is either complete or absent; with sync the data is fsync'ed before the rename. Returns 0
 * or the errno value of the failing step (the temporary file is removed on failure).
 */
int rly_cli_write_atomic(const char *path, const void *data, size_t len, bool sync);

#endif
