/* Test fixture: a shared library that forgot to export relay_env_plugin. */
#include "relay/export.h"

RELAY_API int relay_env_plugin_typo = 1;
