"""Make the package importable in the tests.

`python/` gives `moe_mlir` (the reference needs nothing else); the build's
`python_packages/` gives the compiler extension `_moe_mlir_native`
(MOE_BUILD_DIR overrides the default `<repo>/build`).
"""
import os
import sys

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
_BUILD = os.environ.get("MOE_BUILD_DIR", os.path.join(_REPO, "build"))
for path in (os.path.join(_BUILD, "python_packages"), os.path.join(_REPO, "python")):
    if path not in sys.path:
        sys.path.insert(0, path)
