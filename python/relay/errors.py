"""relay.Error and one subclass per relay_err code (include/relay/err.h).

Every failed librelay call raises the subclass of its code.  The exception carries the code
(``.code``, an int), its enum name (``.name``, e.g. "RELAY_ENOTFOUND"), librelay's message for it
(``.strerror``) and, when librelay logged why on the calling thread, that detail (``.detail``).
"""
import atexit
import sys
import threading

from ._ffi import ffi, lib


class Error(Exception):
    """A librelay call failed; code is the relay_err value."""

    code = -1

    def __init__(self, code, what="", detail=None):
        self.code = int(code)
        self.name = ffi.string(lib.relay_errname(self.code)).decode()
        self.strerror = ffi.string(lib.relay_strerror(self.code)).decode()
        self.detail = detail
        text = "%s: %s (%s)" % (what, self.strerror, self.name) if what else self.strerror
        if detail:
            text += ": " + detail
        super().__init__(text)


_NAMES = {
    1: "InvalidArgument", 2: "OutOfMemory", 3: "Timeout", 4: "ShutDown", 5: "Full", 6: "Empty",
    7: "NotFound", 8: "AlreadyExists", 9: "DispatchError", 10: "RouterNotFound",
    11: "NotAssigned", 12: "IOError", 13: "FormatError", 14: "Truncated", 15: "TooBig",
    16: "ChecksumError", 17: "AuthError", 18: "Unsupported", 19: "VersionError",
    20: "ShapeError", 21: "DtypeError", 22: "ConfigError", 23: "NoModel", 24: "Busy",
    25: "TryAgain", 26: "Canceled", 27: "DlopenError", 28: "CompressionError", 29: "StateError",
    30: "Dropped", 31: "InternalError", 32: "ConnectionClosed",
}

ERRORS = {}
for _code, _name in _NAMES.items():
    ERRORS[_code] = type(_name, (Error,), {"code": _code, "__doc__": "relay_err %d." % _code})
    globals()[_name] = ERRORS[_code]


# librelay logs the cause of a failure (which key, which actor) before returning the code; the
# last error-level record of each Python thread is kept so the exception can name the cause.
_last = threading.local()
_state = {"installed": False}


@ffi.callback("void(relay_log_level, const char *, const char *, void *)")
def _log_sink(level, module, text, user):
    msg = ffi.string(text).decode(errors="replace")
    mod = ffi.string(module).decode(errors="replace") if module != ffi.NULL else ""
    if level >= 3:
        _last.msg = "%s: %s" % (mod, msg) if mod else msg
    names = ("debug", "info", "warn", "error")
    sys.stderr.write("relay %s [%s] %s\n" % (names[min(max(level, 0), 3)], mod or "-", msg))


def install_log_capture():
    """Route librelay's log records through Python (stderr output kept) to name error causes."""
    if not _state["installed"]:
        lib.relay_log_set_sink(_log_sink, ffi.NULL)
        _state["installed"] = True


def _uninstall():
    if _state["installed"]:
        lib.relay_log_set_sink(ffi.NULL, ffi.NULL)  # no callbacks into a finalising interpreter
        _state["installed"] = False


atexit.register(_uninstall)


def clear_detail():
    """Forget this thread's last logged error (called before a librelay call)."""
    _last.msg = None


def take_detail():
    """Return and forget this thread's last logged error (to hand it to another thread)."""
    msg = getattr(_last, "msg", None)
    _last.msg = None
    return msg


def set_detail(msg):
    """Make msg this thread's last logged error."""
    _last.msg = msg


def check(err, what=""):
    """Raise the Error subclass of err (a relay_err) unless it is RELAY_OK."""
    if err:
        detail = getattr(_last, "msg", None)
        _last.msg = None
        raise ERRORS.get(int(err), Error)(err, what, detail)
