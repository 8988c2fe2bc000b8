"""Ahead-of-time libraries and JIT modules compute the same thing, and an AOT
library runs where MLIR is not available."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import moe_mlir
from moe_mlir import aot

ROUTE_AND_LAYER = """
func.func @route(%logits: tensor<?x12xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %logits, %init_ids_c0 : tensor<?x12xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %logits, %init_w_c0 : tensor<?x12xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %ids, %w = moe.route %logits experts = <compute = 8, null = 4> k = 4
      strategy = top_p<p = 0.8> normalize = non_null into(%init_ids, %init_w)
      : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  return %ids, %w : tensor<?x4xi32>, tensor<?x4xf32>
}
func.func @layer(%x: tensor<?x32xf32>, %wr: tensor<32x12xf32>,
                 %wu: tensor<8x32x16xf32>, %wg: tensor<8x32x16xf32>,
                 %wd: tensor<8x16x32xf32>) -> tensor<?x32xf32> {
  %y = moe.layer %x router(%wr : tensor<32x12xf32>)
      up(%wu : tensor<8x32x16xf32>) gate(%wg : tensor<8x32x16xf32>)
      down(%wd : tensor<8x16x32xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
"""


def _layer_inputs(rng, tokens):
    return [rng.standard_normal((tokens, 32), dtype=np.float32),
            rng.standard_normal((32, 12), dtype=np.float32),
            rng.standard_normal((8, 32, 16), dtype=np.float32) / 6,
            rng.standard_normal((8, 32, 16), dtype=np.float32) / 6,
            rng.standard_normal((8, 16, 32), dtype=np.float32) / 4]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("aot") / "libmodel.so")
    signatures = aot.build_shared_library(ROUTE_AND_LAYER, path, cpu="x86-64")
    assert signatures["route"][0] == ["tensor<?x12xf32>"]
    return path


def test_aot_equals_jit(library):
    """The same module gives bit-identical results through the JIT and
    through an AOT library, for several token counts (one compile serves any
    T)."""
    rng = np.random.default_rng(7)
    lib = aot.load(library)
    jit_route = moe_mlir.compile(ROUTE_AND_LAYER, "route")
    jit_layer = moe_mlir.compile(ROUTE_AND_LAYER, "layer")
    for tokens in (0, 1, 5, 64):
        logits = rng.standard_normal((tokens, 12), dtype=np.float32) * 3
        for a, b in zip(lib["route"](logits), jit_route(logits)):
            np.testing.assert_array_equal(a, b)
        inputs = _layer_inputs(rng, tokens)
        y_aot = lib["layer"](*inputs)
        y_jit = jit_layer(*inputs)
        assert y_aot.shape == (tokens, 32)
        np.testing.assert_allclose(y_aot, y_jit, rtol=1e-6, atol=1e-6)


def test_aot_runs_without_mlir(library):
    """A fresh interpreter where the compiler extension cannot be imported
    (as on a machine without MLIR) loads the library with ctypes + NumPy and
    gets the same outputs as the JIT in this process."""
    rng = np.random.default_rng(3)
    inputs = _layer_inputs(rng, 9)
    expected = moe_mlir.compile(ROUTE_AND_LAYER, "layer")(*inputs)
    workdir = os.path.dirname(library)
    np.savez(os.path.join(workdir, "inputs.npz"), *inputs)
    python_dir = os.path.abspath(os.path.join(os.path.dirname(moe_mlir.__file__), os.pardir))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["_moe_mlir_native"] = None      # no compiler available
        sys.path.insert(0, {python_dir!r})
        import numpy as np
        from moe_mlir import aot, compiler
        assert compiler._native is None
        data = np.load({os.path.join(workdir, "inputs.npz")!r})
        y = aot.load({library!r})["layer"](*[data[f"arr_{{i}}"] for i in range(5)])
        np.save({os.path.join(workdir, "out.npy")!r}, y)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    got = np.load(os.path.join(workdir, "out.npy"))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_inputs_are_never_written():
    """Compiled functions treat their arguments as read only, also when the
    model could reuse an input's buffer (x + layer(x))."""
    text = ROUTE_AND_LAYER.replace(
        "return %y : tensor<?x32xf32>",
        "%r = arith.addf %x, %y : tensor<?x32xf32>\n  return %r : tensor<?x32xf32>")
    f = moe_mlir.compile(text, "layer")
    rng = np.random.default_rng(11)
    inputs = _layer_inputs(rng, 16)
    copies = [a.copy() for a in inputs]
    f(*inputs)
    for a, b in zip(inputs, copies):
        np.testing.assert_array_equal(a, b)


def test_load_requires_signatures(tmp_path):
    """A library without its signature file is refused with a clear error."""
    with pytest.raises(FileNotFoundError):
        aot.load(str(tmp_path / "missing.so"))
