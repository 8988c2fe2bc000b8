"""Make the package importable in the tests.

`python/` gives `moe_mlir` (the reference needs nothing else); the build's
`python_packages/` gives the compiler extension `_moe_mlir_native`
(MOE_BUILD_DIR overrides the default `<repo>/build`).
"""
import os
import sys

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
_BUILD = os.path.abspath(os.environ.get("MOE_BUILD_DIR", os.path.join(_REPO, "build")))
for path in (os.path.join(_BUILD, "python_packages"), os.path.join(_REPO, "python")):
    if path not in sys.path:
        sys.path.insert(0, path)


# Under the sanitizers (scripts/sanitize.sh sets MOE_MLIR_SANITIZE=1) every
# compiled test function goes through clang with AddressSanitizer, which is
# several times slower than the JIT. To keep a full CI run within its time
# budget, the parametrized tests run a deterministic sample there (every n-th
# case of each test function, the first one always): the large grids one case
# in 8 or 16, the edge cases (the most sanitizer-relevant) one in 5, the API
# and target checks one in 2, and the export tests (whole PyTorch models,
# pure-Python exporters; Hugging Face folders and GGUF files) one test in 4
# to 8; every other test (hostile inputs among them) runs whole. Everything
# runs whole in the plain test run.
_SAMPLED_MODULES = {"test_compiled_layer": 8, "test_bind": 16, "test_gpu_emulated": 8,
                    "test_fusion": 8, "test_export": 6, "test_export_published": 4, "test_compiled_route": 8,
                    "test_matmul_kernel": 16, "test_matmul_schedules": 16, "test_quant": 16,
                    "test_compiled_edge_cases": 5, "test_isa": 3, "test_python_api": 2,
                    "test_targets": 2, "test_hf": 4, "test_gguf": 8, "test_gpu_tensor_cores": 8}
# Modules whose plain (not parametrized) tests are sampled too.
_SAMPLE_WHOLE_MODULE = {"test_export", "test_export_published", "test_hf", "test_gguf"}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MOE_MLIR_SANITIZE") != "1":
        return
    seen = {}
    kept, dropped = [], []
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        callspec = getattr(item, "callspec", None)
        if module not in _SAMPLED_MODULES or (callspec is None and
                                               module not in _SAMPLE_WHOLE_MODULE):
            kept.append(item)
            continue
        key = (module, None if module in _SAMPLE_WHOLE_MODULE else item.originalname)
        index = seen.get(key, 0)
        seen[key] = index + 1
        (kept if index % _SAMPLED_MODULES[module] == 0 else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
