/* Error strings, generated from the single RELAY_ERR_LIST table. */
#include "relay/err.h"

#define RLY_ERR_MSG_(name, value, msg) [value] = msg,
#define RLY_ERR_NAME_(name, value, msg) [value] = #name,
static const char *const err_msgs[] = {RELAY_ERR_LIST(RLY_ERR_MSG_)};
static const char *const err_names[] = {RELAY_ERR_LIST(RLY_ERR_NAME_)};
#undef RLY_ERR_MSG_
#undef RLY_ERR_NAME_

_Static_assert(sizeof(err_msgs) / sizeof(err_msgs[0]) == RELAY_ERR_COUNT_,
               "error table must be dense and match the enum");

const char *relay_strerror(relay_err err)
{
    if ((unsigned)err >= RELAY_ERR_COUNT_)
        return "unknown error";
    return err_msgs[err];
}

const char *relay_errname(relay_err err)
{
    if ((unsigned)err >= RELAY_ERR_COUNT_)
        return "RELAY_E?";
    return err_names[err];
}
