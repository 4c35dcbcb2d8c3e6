"""The cffi declarations in relay/_ffi.py match the C headers: every field offset and struct size
of the structs Python reads or writes is compared with what the C compiler computes."""
import os
import shutil
import subprocess

import pytest

from relay import _ffi

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _fields(name):
    t = _ffi.ffi.typeof(name)
    return [f for f, _ in t.fields]


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_struct_layout_matches_headers(tmp_path):
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "relay/relay.h"',
             '#include "relay/learn.h"', '#include "relay/learner.h"', '#include "relay/train.h"', "int main(void) {"]
    expect = []
    for name in _ffi.CHECKED_STRUCTS:
        lines.append('printf("%%zu\\n", sizeof(%s));' % name)
        expect.append(("sizeof", name, _ffi.ffi.sizeof(name)))
        for f in _fields(name):
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (name, f))
            expect.append(("offsetof", name + "." + f, _ffi.ffi.offsetof(name, f)))
    lines.append('printf("%zu\\n", sizeof(relay_config));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o",
                    str(exe)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True,
                                          text=True).stdout.split()]
    for (kind, what, want), have in zip(expect, got):
        assert want == have, "%s(%s): cffi %d, C %d -- update relay/_ffi.py" % (
            kind, what, want, have)
    assert got[-1] <= _ffi.CONFIG_BYTES, "relay_config outgrew CONFIG_BYTES"


def test_error_codes_match_header():
    import relay
    for code, cls in relay.ERRORS.items():
        name = _ffi.ffi.string(_ffi.lib.relay_errname(code)).decode()
        assert name.startswith("RELAY_E"), (code, name)
        assert cls(code).name == name
    # A code added to err.h needs its subclass in relay/errors.py.
    n = len(relay.ERRORS) + 1
    assert _ffi.ffi.string(_ffi.lib.relay_errname(n)).decode() == "RELAY_E?", \
        "err.h has a code %d that relay/errors.py does not map" % n
