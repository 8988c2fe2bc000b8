"""The capturable form of GPU libraries (moe-gpu-pipeline{capturable},
moe-gpu-capturable): built here (no GPU), loaded, and called as far as a
machine without a device allows.

Checked here: the library's workspace query sizes the workspace from the
argument shapes only (device pointers are never read), in 256-byte aligned
buffers that grow with the tokens; a call with a smaller workspace reports
status 11 and launches nothing (no CUDA call is made, so no CUDA error is
recorded); a call with a large enough workspace reaches the kernel launches
(which fail here, without a driver, with the runtime's recorded error); the
wrong wrapper for a library is refused. What a device must check (its run
is in scripts/gpu-device-check.sh): the results, and that a CUDA graph
captures a call and replays it."""
import json

import numpy as np
import pytest

from moe_mlir import aot, compiler, cuda

H, E, F, K = 32, 4, 48, 2

LAYER = f"""
func.func @layer(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{E}xf32>, %wu: tensor<{E}x{H}x{F}xf32>,
                 %wg: tensor<{E}x{H}x{F}xf32>, %wd: tensor<{E}x{F}x{H}xf32>) -> tensor<?x{H}xf32> {{
  %y = moe.layer %x router(%wr : tensor<{H}x{E}xf32>) up(%wu : tensor<{E}x{H}x{F}xf32>)
      gate(%wg : tensor<{E}x{H}x{F}xf32>) down(%wd : tensor<{E}x{F}x{H}xf32>)
      experts = <compute = {E}> k = {K} scoring = softmax strategy = top_k
      normalize = selected scale = 1.0 activation = silu gated
      : tensor<?x{H}xf32> -> tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("capturable")
    path = str(out / "liblayer_capturable.so")
    try:
        runtime = aot.cuda_runtime_library()
        aot.build_shared_library(LAYER, path, target="gpu", capturable=True, cpu="x86-64")
    except (RuntimeError, compiler.CompileError) as error:
        pytest.skip(f"no GPU toolchain here: {str(error).splitlines()[0]}")
    rt = cuda.Runtime(runtime)
    if rt.device_count() > 0:
        pytest.skip("a GPU is present: the device check runs these libraries")
    return rt, path


def _fake(shape, dtype=np.float32):
    """A device array that is never dereferenced (shapes only)."""
    return cuda.DeviceArray(0x1000, shape, dtype)


def _args(T):
    return [_fake((T, H)), _fake((H, E)), _fake((E, H, F)), _fake((E, H, F)), _fake((E, F, H))]


def test_metadata_and_wrappers(library):
    rt, path = library
    meta = json.load(open(path + ".json"))
    assert meta["capturable"] and meta["device_arguments"]
    with pytest.raises(ValueError, match="built with capturable=True: call it through "
                                         "CapturableFunction"):
        cuda.DeviceFunction(rt, path, "layer")


def test_workspace_size_from_shapes(library):
    rt, path = library
    f = cuda.CapturableFunction(rt, path, "layer")
    sizes = {T: f.workspace_size(*_args(T)) for T in (0, 1, 7, 64, 1000)}
    assert all(size % 256 == 0 and size > 0 for size in sizes.values()), sizes
    # At least the layer's own rows: T*K dispatched rows of H floats, the
    # gate and up activations (T*K*F) and the output (T*H).
    for T, size in sizes.items():
        assert size >= 4 * (T * K * H + T * K * F + T * H), (T, size)
    assert sizes[0] < sizes[1] <= sizes[7] < sizes[64] < sizes[1000]
    # Affine in T beyond the alignment padding.
    per_token = (sizes[1000] - sizes[64]) / 936
    assert abs((sizes[64] - sizes[7]) / 57 - per_token) < 256 * 12 / 57


def test_small_workspace_launches_nothing(library):
    rt, path = library
    f = cuda.CapturableFunction(rt, path, "layer")
    args = _args(5)
    need = f.workspace_size(*args)
    rt.lib.moeCudaClearError()
    with pytest.raises(ValueError, match=r"layer: the workspace is smaller than "
                                         r"layer_workspace_size\(\) bytes"):
        f(*args, workspace=_fake((need - 1,), np.uint8), stream=0x10)
    assert rt.lib.moeCudaLastError() is None  # no CUDA call was made
    with pytest.raises(ValueError, match="1-D uint8 device array"):
        f(*args, workspace=_fake((need,), np.float32))


def test_fitting_workspace_reaches_the_launches(library):
    rt, path = library
    f = cuda.CapturableFunction(rt, path, "layer")
    args = _args(5)
    rt.lib.moeCudaClearError()
    with pytest.raises(cuda.CudaError, match="mgpuModuleGetFunction|mgpuLaunchKernel"):
        f(*args, workspace=_fake((f.workspace_size(*args),), np.uint8), stream=0x10)
