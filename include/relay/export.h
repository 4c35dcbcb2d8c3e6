/* Export macro for Relay's public API: everything else is hidden in the shared library. */
#ifndef RELAY_EXPORT_H
#define RELAY_EXPORT_H

#if defined(__GNUC__)
#define RELAY_API __attribute__((visibility("default")))
#else
#define RELAY_API
#endif

#endif
