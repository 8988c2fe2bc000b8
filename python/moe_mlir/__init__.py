"""moe-mlir: variable-k Mixture-of-Experts as first-class MLIR.

Compiler entry points (they need the native extension, built by
``scripts/setup.sh``; put ``build/python_packages`` on ``PYTHONPATH``):

  compile(mlir_text, entry)   -- JIT-compile a module, return a callable
  compile_route(...)          -- a compiled moe.route for a configuration
  compile_layer(...)          -- a compiled moe.layer for a configuration
  CompileError                -- verifier, pass or code generation failures

Pure-NumPy submodules (no compiler needed):

  reference    -- the NumPy reference of every op of the `moe` dialect (the
                  oracle of all numeric tests; it never imports the compiler)
  conformance  -- the contract's comparison rule (section 5)
"""

__version__ = "0.1.0"

from .compiler import CompileError, compile, lower, set_num_threads  # noqa: E402,F401
from .routing import compile_layer, compile_route  # noqa: E402,F401

__all__ = ["CompileError", "compile", "compile_route", "compile_layer", "set_num_threads",
           "reference", "conformance"]
