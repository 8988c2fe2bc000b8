"""moe-mlir: variable-k Mixture-of-Experts as first-class MLIR.

Submodules:
  reference    -- the NumPy reference of every op of the `moe` dialect (the
                  oracle of all numeric tests; pure NumPy, never imports the
                  compiler).
  conformance  -- the semantics contract's conformance rule (section 5) as a
                  reusable comparison helper.
"""

__version__ = "0.1.0"
__all__ = ["reference", "conformance"]
