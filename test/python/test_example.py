"""The README's main job (examples/adamoe_torch.py): its model takes one
sequence of tokens ``[T, H]``, not transformers' ``[B, S, H]``; the exporter
reads that convention from the model (a call on two tokens) and verifies the
export in it. A model that runs on neither layout is an ExportError naming
both attempts."""
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from moe_mlir.export import ExportError, export  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _example():
    spec = importlib.util.spec_from_file_location(
        "adamoe_torch", os.path.join(ROOT, "examples", "adamoe_torch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_model_exports_in_its_own_convention():
    example = _example()
    model = example.build_model()
    # probes: one sequence of 7 tokens (the default probes cost ~10 s here)
    exported = export(model, path="model", probes=(7,))
    assert exported.info["max_difference"] < 1e-4
    x = np.random.default_rng(1).standard_normal((5, example.HIDDEN)).astype(np.float32)
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()
    got = exported.compile()(x)
    assert np.abs(got - eager).max() < 1e-4


def test_model_that_runs_on_neither_layout_is_an_export_error():
    example = _example()
    model = example.build_model()

    def broken(x):
        raise RuntimeError("this model runs on nothing")
    model.forward = broken
    with pytest.raises(ExportError, match=r"runs on neither a \[B, S, H\] nor a \[T, H\] "
                                          r"input \(\[1, 2, 256\]: RuntimeError: this model "
                                          r"runs on nothing; \[2, 256\]: RuntimeError"):
        export(model, path="model")
