"""Copies librelay.so into the package when it is found, so an installed relay is self-contained.

Looked up, in order: $RELAY_LIB, then ../build/src/librelay.so next to this directory.  Without
it the package still installs and finds librelay through $RELAY_LIB or the system loader.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        src = os.environ.get("RELAY_LIB") or os.path.join(HERE, "..", "build", "src",
                                                            "librelay.so")
        if os.path.exists(src):
            dst = os.path.join(self.build_lib, "relay", "_lib")
            os.makedirs(dst, exist_ok=True)
            shutil.copy2(os.path.realpath(src), os.path.join(dst, "librelay.so"))


setup(cmdclass={"build_py": BuildPyWithLib})
