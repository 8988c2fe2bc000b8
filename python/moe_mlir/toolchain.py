"""The LLVM install that moe_mlir uses at run time, found by configuration.

Compiled code may need pieces of the LLVM toolchain that the project was
built against: the OpenMP runtime (``libomp``) for parallel code, and
``clang`` for the AddressSanitizer builds of ``MOE_MLIR_SANITIZE=1``.
``llvm_install()`` finds that install, in this order:

1. the environment variable ``MOE_MLIR_LLVM_PREFIX`` (the install prefix,
   with ``bin/`` and ``lib/`` below it; an error when it is not a
   directory);
2. what CMake recorded at configure time: ``_moe_mlir_build_config``, a
   module the build writes next to the compiler extension (in
   ``<build>/python_packages``) from ``LLVMConfig.cmake``;
3. ``llvm-config-<major>``, then ``llvm-config``, on ``PATH``.

It raises ``RuntimeError`` naming what it tried when none of them gives an
existing directory. Nothing here imports the compiler extension.
"""

import functools
import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ["LLVMInstall", "LLVM_PREFIX_VARIABLE", "llvm_install", "llvm_prefix", "llvm_tool",
           "openmp_runtime"]

#: The environment variable that names the LLVM prefix (it wins over the rest).
LLVM_PREFIX_VARIABLE = "MOE_MLIR_LLVM_PREFIX"

#: The LLVM major version the project is built against (scripts/setup.sh): the
#: versioned ``llvm-config`` is tried before the unversioned one.
LLVM_MAJOR = 22

#: The module CMake writes into the build's python_packages directory.
BUILD_CONFIG_MODULE = "_moe_mlir_build_config"


@dataclass(frozen=True)
class LLVMInstall:
    """An LLVM install: its prefix, its tools and libraries, and how it was
    found (for messages)."""
    prefix: str
    bin_dir: str
    lib_dir: str
    found_by: str


def _build_config():
    """The values CMake recorded, or None when the build did not write them
    (an older build tree, or the pure-Python files alone)."""
    try:
        return importlib.import_module(BUILD_CONFIG_MODULE)
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def _ask_llvm_config(executable: str) -> Optional[Tuple[str, str, str]]:
    """(prefix, bindir, libdir) that ``executable`` reports, or None."""
    try:
        run = subprocess.run([executable, "--prefix", "--bindir", "--libdir"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = run.stdout.split("\n")
    if run.returncode != 0 or len(lines) < 3 or not all(lines[:3]):
        return None
    return lines[0].strip(), lines[1].strip(), lines[2].strip()


def _llvm_config_names() -> Tuple[str, ...]:
    return (f"llvm-config-{LLVM_MAJOR}", "llvm-config")


def llvm_install() -> LLVMInstall:
    """The LLVM install: ``MOE_MLIR_LLVM_PREFIX``, else the configure-time
    record of the build, else ``llvm-config`` on PATH. Raises
    ``RuntimeError`` naming what was tried when none is found."""
    prefix = os.environ.get(LLVM_PREFIX_VARIABLE)
    if prefix:
        if not os.path.isdir(prefix):
            raise RuntimeError(f"{LLVM_PREFIX_VARIABLE}={prefix} is not a directory (it must "
                               f"name the prefix of an LLVM install)")
        return LLVMInstall(prefix, os.path.join(prefix, "bin"), os.path.join(prefix, "lib"),
                           f"${LLVM_PREFIX_VARIABLE}")
    tried = [f"${LLVM_PREFIX_VARIABLE} (not set)"]

    config = _build_config()
    if config is not None:
        prefix = getattr(config, "LLVM_PREFIX", "")
        if prefix and os.path.isdir(prefix):
            return LLVMInstall(prefix,
                               getattr(config, "LLVM_TOOLS_BINARY_DIR", "")
                               or os.path.join(prefix, "bin"),
                               getattr(config, "LLVM_LIBRARY_DIR", "")
                               or os.path.join(prefix, "lib"),
                               f"{BUILD_CONFIG_MODULE} ({getattr(config, '__file__', '?')})")
        tried.append(f"{BUILD_CONFIG_MODULE} (records LLVM_PREFIX={prefix!r}, not a directory)")
    else:
        tried.append(f"{BUILD_CONFIG_MODULE} (not importable: the build writes it into "
                     f"<build>/python_packages at configure time)")

    for name in _llvm_config_names():
        executable = shutil.which(name)
        if executable is None:
            tried.append(f"{name} (not on PATH)")
            continue
        answer = _ask_llvm_config(executable)
        if answer is None or not os.path.isdir(answer[0]):
            tried.append(f"{executable} (no usable --prefix)")
            continue
        return LLVMInstall(answer[0], answer[1], answer[2], f"{executable} --prefix")
    raise RuntimeError("the LLVM install was not found; tried " + ", ".join(tried)
                       + f". Set {LLVM_PREFIX_VARIABLE} to its prefix (the directory with "
                       f"bin/clang and lib/libomp.so)")


def llvm_prefix() -> str:
    """The prefix of the LLVM install (see ``llvm_install``)."""
    return llvm_install().prefix


def llvm_tool(name: str) -> str:
    """The path of the LLVM tool ``name`` (e.g. ``clang``) in the install's
    bin directory; raises ``RuntimeError`` when it is not there."""
    install = llvm_install()
    path = os.path.join(install.bin_dir, name)
    if not os.path.exists(path):
        raise RuntimeError(f"{name} is not installed in {install.bin_dir} (the LLVM install "
                           f"found by {install.found_by})")
    return path


#: The names of the LLVM OpenMP runtime in the install's library directory.
_OPENMP_NAMES = ("libomp.so", "libomp.so.5")


def openmp_runtime() -> Optional[str]:
    """The LLVM OpenMP runtime that parallel code needs: ``MOE_MLIR_OMP_LIB``,
    else libomp in the LLVM install's library directory; None when it is not
    installed (or no LLVM install is found)."""
    override = os.environ.get("MOE_MLIR_OMP_LIB")
    if override and os.path.exists(override):
        return override
    try:
        lib_dir = llvm_install().lib_dir
    except RuntimeError:
        return None
    for name in _OPENMP_NAMES:
        path = os.path.join(lib_dir, name)
        if os.path.exists(path):
            return path
    return None
