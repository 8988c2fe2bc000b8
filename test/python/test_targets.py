"""One target vocabulary ("cpu", "gpu", "gpu-emulated") for every entry point
that takes a target: each accepts the same spellings (and ``Target``
members) and rejects the others with one message that names the valid
targets and what that entry point supports. The pipelines the targets map
to; the LLVM install found by configuration (environment, the build's
record, llvm-config) in that order; IR text formatted by ``ir_text`` only."""
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import moe_mlir
from moe_mlir import aot, compiler, ir_text, targets, toolchain
from moe_mlir.targets import Target

PACKAGE = os.path.dirname(os.path.abspath(moe_mlir.__file__))

IDENTITY = """func.func @forward(%a: tensor<?xf32>) -> tensor<?xf32> {
  return %a : tensor<?xf32>
}
"""

ROUTE = """func.func @route(%logits: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %logits, %c0 : tensor<?x8xf32>
  %ids0 = tensor.empty(%t) : tensor<?x2xi32>
  %w0 = tensor.empty(%t) : tensor<?x2xf32>
  %ids, %w = moe.route %logits experts = <compute = 8> k = 2 strategy = top_k
      into(%ids0, %w0) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
"""


def _moe_run(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-m", "moe_mlir.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _unsupported(target, entry):
    supported = ", ".join(repr(str(t)) for t in targets.SUPPORT[entry])
    return f"target '{target}' is not supported by {entry} (supported: {supported})"


def _unknown(target, entry):
    supported = ", ".join(repr(str(t)) for t in targets.SUPPORT[entry])
    return (f"unknown target {target!r} (valid targets: 'cpu', 'gpu', 'gpu-emulated'; "
            f"{entry} supports {supported})")


# ---------------------------------------------------------------------------
# The vocabulary
# ---------------------------------------------------------------------------
def test_vocabulary():
    assert targets.TARGETS == ("cpu", "gpu", "gpu-emulated")
    assert Target("gpu-emulated") is Target.GPU_EMULATED and Target.CPU == "cpu"
    assert str(Target.GPU) == "gpu" and f"{Target.GPU_EMULATED}" == "gpu-emulated"
    assert set(targets.ENTRY_POINTS) == {"compile", "compile_route", "compile_layer", "load_hf",
                                         "load_gguf", "moe-run", "build_shared_library"}
    for entry in ("compile", "compile_route", "compile_layer", "load_hf", "load_gguf", "moe-run"):
        assert targets.supported_targets(entry) == (Target.CPU, Target.GPU_EMULATED)
    assert targets.supported_targets("build_shared_library") == (Target.CPU, Target.GPU)
    for target in Target:
        assert target.description


@pytest.mark.parametrize("entry", sorted(targets.SUPPORT))
def test_check_target_messages(entry):
    """Every entry point: its targets pass (spelled or as Target), a target
    it does not support names what it supports and where the target is
    supported, anything else names the valid targets."""
    for target in targets.SUPPORT[entry]:
        assert targets.check_target(str(target), entry) is target
        assert targets.check_target(target, entry) is target
    for target in set(Target) - set(targets.SUPPORT[entry]):
        with pytest.raises(ValueError) as error:
            targets.check_target(str(target), entry)
        assert str(error.value).startswith(_unsupported(target, entry))
        assert "is supported by" in str(error.value)
    for bad in ("tpu", "CPU", "gpu_emulated", "", None, 3):
        with pytest.raises(ValueError) as error:
            targets.check_target(bad, entry)
        assert str(error.value) == _unknown(bad, entry)
    with pytest.raises(KeyError, match="no entry point"):
        targets.check_target("cpu", "no-such-entry-point")


# ---------------------------------------------------------------------------
# Each entry point accepts the same spellings and rejects the others
# ---------------------------------------------------------------------------
def _compile(target):
    return moe_mlir.compile(IDENTITY, "forward", target=target)


def _compile_route(target):
    return moe_mlir.compile_route(8, 2, target=target)


def _compile_layer(target):
    return moe_mlir.compile_layer(8, 16, 4, 2, target=target)


def _load_hf(target):
    # The target is checked before the folder is read.
    return moe_mlir.load_hf("/no/such/folder", target=target)


def _aot(target, tmp_path):
    return aot.build_shared_library(ROUTE, str(tmp_path / "lib.so"), target=target,
                                    chips=("sm_80",), cpu="x86-64")


ENTRY_POINTS = {"compile": _compile, "compile_route": _compile_route,
                "compile_layer": _compile_layer, "load_hf": _load_hf}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("target", ["gpu", "tpu", "CPU", None])
def test_python_entry_points_reject(entry, target):
    message = _unsupported(target, entry) if target == "gpu" else _unknown(target, entry)
    with pytest.raises(ValueError) as error:
        ENTRY_POINTS[entry](target)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("target", ["gpu-emulated", "tpu", "GPU"])
def test_aot_rejects(target, tmp_path):
    entry = "build_shared_library"
    message = _unsupported(target, entry) if target == "gpu-emulated" else _unknown(target, entry)
    with pytest.raises(ValueError) as error:
        _aot(target, tmp_path)
    assert str(error.value).startswith(message)
    assert not os.path.exists(tmp_path / "lib.so")


@pytest.mark.parametrize("target", ["cpu", Target.CPU, "gpu-emulated", Target.GPU_EMULATED])
def test_jit_entry_points_accept(target):
    """compile, compile_route and compile_layer run code of both host targets."""
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(_compile(target)(x), x)
    logits = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    ids, weights = _compile_route(target)(logits)
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(np.argsort(-logits, axis=1)[:, :2],
                                                                axis=1))
    layer = _compile_layer(target)
    rng = np.random.default_rng(2)
    args = dict(w_router=rng.standard_normal((8, 4), dtype=np.float32),
                w_up=rng.standard_normal((4, 8, 16), dtype=np.float32),
                w_down=rng.standard_normal((4, 16, 8), dtype=np.float32),
                w_gate=rng.standard_normal((4, 8, 16), dtype=np.float32))
    assert layer(rng.standard_normal((3, 8), dtype=np.float32), **args).shape == (3, 8)


def test_compile_target_options():
    """instrument_ffn is an option of "cpu" only; an explicit pipeline wins."""
    with pytest.raises(ValueError, match="'instrument_ffn' is an option of target 'cpu', not of "
                                         "target 'gpu-emulated'"):
        moe_mlir.compile(IDENTITY, "forward", target="gpu-emulated", instrument_ffn=True)
    f = moe_mlir.compile(IDENTITY, "forward", target="gpu-emulated",
                         pipeline=targets.cpu_pipeline(parallel=False))
    assert f.module.pipeline == "moe-cpu-pipeline{target-cpu=native}"
    f = moe_mlir.compile(IDENTITY, "forward", target="gpu-emulated")
    assert f.module.pipeline == "moe-test-gpu-emulation-pipeline"


@pytest.mark.parametrize("target", ["cpu", Target.CPU])
def test_aot_accepts_cpu(target, tmp_path):
    _aot(target, tmp_path)
    meta = json.loads((tmp_path / "lib.so.json").read_text())
    assert meta["target"] == "cpu" and not meta["device_arguments"]


@pytest.mark.parametrize("target", ["gpu", Target.GPU])
def test_aot_accepts_gpu(target, tmp_path):
    """"gpu" is accepted (its options checked: instrument_ffn is not one);
    where the CUDA runtime and ptxas are there, the library is built."""
    with pytest.raises(ValueError, match="'instrument_ffn' is an option of target 'cpu', not of "
                                         "target 'gpu'"):
        aot.build_shared_library(ROUTE, str(tmp_path / "lib.so"), target=target,
                                 instrument_ffn=True)
    with pytest.raises(ValueError, match="'device_arguments' is an option of target 'gpu', "
                                         "not of target 'cpu'"):
        aot.build_shared_library(ROUTE, str(tmp_path / "lib.so"), device_arguments=True)
    try:
        aot.cuda_runtime_library()
        _aot(target, tmp_path)
    except (RuntimeError, compiler.CompileError) as error:
        pytest.skip(f"no GPU toolchain here: {str(error).splitlines()[0]}")
    meta = json.loads((tmp_path / "lib.so.json").read_text())
    assert meta["target"] == "gpu"


def test_moe_run_targets(tmp_path):
    (tmp_path / "ok.mlir").write_text(IDENTITY)
    np.save(tmp_path / "x.npy", np.arange(3, dtype=np.float32))
    for target in ("gpu", "tpu"):
        run = _moe_run("ok.mlir", "-i", "x.npy", "--target", target, cwd=tmp_path)
        assert run.returncode == 2, run.stderr
        message = _unsupported(target, "moe-run") if target == "gpu" else \
            _unknown(target, "moe-run")
        assert f"moe-run: {message}" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    run = _moe_run("ok.mlir", "-i", "x.npy", "--target", "gpu-emulated", "--count-ffn",
                   cwd=tmp_path)
    assert run.returncode == 2 and "--count-ffn needs --target cpu" in run.stderr, run.stderr
    for target in ("cpu", "gpu-emulated"):
        run = _moe_run("ok.mlir", "-i", "x.npy", "-o", f"y_{target}.npy", "--target", target,
                       cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        np.testing.assert_array_equal(np.load(tmp_path / f"y_{target}.npy"), np.arange(3))


def test_aot_command_line_target(tmp_path):
    (tmp_path / "route.mlir").write_text(ROUTE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    command = [sys.executable, "-m", "moe_mlir", "aot", "route.mlir", "-o", "lib.so",
               "--cpu", "x86-64"]
    run = subprocess.run(command + ["--target", "gpu-emulated"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert _unsupported("gpu-emulated", "build_shared_library") in run.stderr
    run = subprocess.run(command + ["--target", "cpu"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------------------
# Pipelines: one function per pipeline, in targets
# ---------------------------------------------------------------------------
def test_pipelines():
    # The JIT compiles for the host, so the CPU pipeline chooses its
    # schedules for it; ahead-of-time builds pass their cpu.
    assert targets.pipeline("cpu", parallel=False) == "moe-cpu-pipeline{target-cpu=native}"
    assert targets.pipeline("cpu", parallel=False, target_cpu=None) == "moe-cpu-pipeline"
    assert targets.pipeline("cpu", instrument_ffn=True, parallel=True, target_cpu="znver3") == \
        "moe-cpu-pipeline{target-cpu=znver3 instrument-ffn=true parallel=true}"
    with pytest.raises(ValueError, match="'target_cpu' must be an LLVM CPU name"):
        targets.cpu_pipeline(target_cpu="znver3 parallel=true")
    assert targets.pipeline("cpu") == targets.cpu_pipeline()
    assert targets.pipeline("gpu") == "moe-gpu-pipeline{chips=sm_80,sm_90a}"
    assert targets.pipeline(Target.GPU, chips=["sm_90a"], device_arguments=True) == \
        "moe-gpu-pipeline{chips=sm_90a device-arguments=true}"
    assert targets.pipeline("gpu-emulated") == "moe-test-gpu-emulation-pipeline"
    with pytest.raises(ValueError, match="chips must be NVIDIA targets"):
        targets.pipeline("gpu", chips=["gfx90a"])
    with pytest.raises(ValueError, match="'parallel' is an option of target 'cpu'"):
        targets.pipeline("gpu", parallel=True)
    assert targets.pipeline_is_gpu(targets.gpu_pipeline())
    assert not targets.pipeline_is_gpu(targets.cpu_pipeline())
    assert targets.pipeline_has_device_arguments(targets.gpu_pipeline(device_arguments=True))
    assert targets.pipeline_needs_openmp(targets.cpu_pipeline(parallel=True))
    # The older homes of the pipeline functions are the same functions.
    assert compiler.cpu_pipeline is targets.cpu_pipeline
    assert aot.gpu_pipeline is targets.gpu_pipeline
    assert aot.DEFAULT_CHIPS == targets.DEFAULT_CHIPS == ("sm_80", "sm_90a")


# ---------------------------------------------------------------------------
# The LLVM install: environment, then the build's record, then llvm-config
# ---------------------------------------------------------------------------
def _fake_llvm(root, name):
    """An LLVM prefix with bin/clang and lib/libomp.so."""
    prefix = root / name
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    (prefix / "bin" / "clang").write_text("")
    (prefix / "lib" / "libomp.so").write_text("")
    return prefix


def _fake_llvm_config(directory, name, prefix):
    directory.mkdir(exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do case $a in\n"
                      f"  --prefix) echo {prefix};; --bindir) echo {prefix}/bin;;\n"
                      f"  --libdir) echo {prefix}/lib;; esac; done\n")
    script.chmod(0o755)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No prefix variable, no build record, an empty PATH: each test adds
    what it needs."""
    monkeypatch.delenv(toolchain.LLVM_PREFIX_VARIABLE, raising=False)
    monkeypatch.delenv("MOE_MLIR_OMP_LIB", raising=False)
    monkeypatch.setitem(sys.modules, toolchain.BUILD_CONFIG_MODULE, None)  # import fails
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    toolchain._ask_llvm_config.cache_clear()
    yield tmp_path
    toolchain._ask_llvm_config.cache_clear()


def _build_record(monkeypatch, prefix):
    record = types.ModuleType(toolchain.BUILD_CONFIG_MODULE)
    record.LLVM_PREFIX = str(prefix)
    record.LLVM_TOOLS_BINARY_DIR = str(prefix / "bin")
    record.LLVM_LIBRARY_DIR = str(prefix / "lib")
    monkeypatch.setitem(sys.modules, toolchain.BUILD_CONFIG_MODULE, record)


def test_llvm_lookup_order(isolated, monkeypatch):
    tmp = isolated
    from_env, from_build, versioned, plain = (_fake_llvm(tmp, n) for n in
                                              ("env", "build", "versioned", "plain"))
    bin_dir = tmp / "path"
    _fake_llvm_config(bin_dir, f"llvm-config-{toolchain.LLVM_MAJOR}", versioned)
    _fake_llvm_config(bin_dir, "llvm-config", plain)
    monkeypatch.setenv("PATH", str(bin_dir))
    _build_record(monkeypatch, from_build)
    monkeypatch.setenv(toolchain.LLVM_PREFIX_VARIABLE, str(from_env))

    # 1. The environment variable wins over everything.
    install = toolchain.llvm_install()
    assert install.prefix == str(from_env) and install.lib_dir == str(from_env / "lib")
    assert toolchain.LLVM_PREFIX_VARIABLE in install.found_by
    # 2. Then what CMake recorded.
    monkeypatch.delenv(toolchain.LLVM_PREFIX_VARIABLE)
    install = toolchain.llvm_install()
    assert install.prefix == str(from_build) and install.bin_dir == str(from_build / "bin")
    assert toolchain.BUILD_CONFIG_MODULE in install.found_by
    # 3. Then llvm-config-<major>, then llvm-config.
    monkeypatch.setitem(sys.modules, toolchain.BUILD_CONFIG_MODULE, None)
    install = toolchain.llvm_install()
    assert install.prefix == str(versioned) and install.lib_dir == str(versioned / "lib")
    assert f"llvm-config-{toolchain.LLVM_MAJOR}" in install.found_by
    os.remove(bin_dir / f"llvm-config-{toolchain.LLVM_MAJOR}")
    assert toolchain.llvm_prefix() == str(plain)


def test_llvm_record_of_a_moved_install_is_skipped(isolated, monkeypatch):
    tmp = isolated
    _build_record(monkeypatch, tmp / "gone")
    plain = _fake_llvm(tmp, "plain")
    _fake_llvm_config(tmp / "path", "llvm-config", plain)
    monkeypatch.setenv("PATH", str(tmp / "path"))
    assert toolchain.llvm_prefix() == str(plain)


def test_llvm_not_found(isolated, monkeypatch):
    with pytest.raises(RuntimeError) as error:
        toolchain.llvm_install()
    message = str(error.value)
    for tried in (toolchain.LLVM_PREFIX_VARIABLE, toolchain.BUILD_CONFIG_MODULE,
                  f"llvm-config-{toolchain.LLVM_MAJOR}", "llvm-config (not on PATH)"):
        assert tried in message, message
    # What needs LLVM says so; the OpenMP runtime is then just not there.
    assert toolchain.openmp_runtime() is None
    assert targets.cpu_pipeline() == "moe-cpu-pipeline{target-cpu=native}"
    with pytest.raises(RuntimeError, match="the LLVM install was not found"):
        toolchain.llvm_tool("clang")
    monkeypatch.setenv(toolchain.LLVM_PREFIX_VARIABLE, str(isolated / "missing"))
    with pytest.raises(RuntimeError, match="MOE_MLIR_LLVM_PREFIX=.*missing is not a directory"):
        toolchain.llvm_install()


def test_tools_and_openmp_from_the_install(isolated, monkeypatch):
    prefix = _fake_llvm(isolated, "llvm")
    monkeypatch.setenv(toolchain.LLVM_PREFIX_VARIABLE, str(prefix))
    assert toolchain.llvm_tool("clang") == str(prefix / "bin" / "clang")
    with pytest.raises(RuntimeError, match="ld.lld is not installed in"):
        toolchain.llvm_tool("ld.lld")
    assert toolchain.openmp_runtime() == str(prefix / "lib" / "libomp.so")
    assert compiler.openmp_runtime() == str(prefix / "lib" / "libomp.so")
    override = isolated / "my-libomp.so"
    override.write_text("")
    monkeypatch.setenv("MOE_MLIR_OMP_LIB", str(override))
    assert toolchain.openmp_runtime() == str(override)


def test_no_llvm_path_literals_in_the_package():
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(directory, name)).read()
                assert "llvm-22" not in text and "/usr/lib/llvm" not in text, name


# ---------------------------------------------------------------------------
# IR text: one module knows the syntax
# ---------------------------------------------------------------------------
# Op syntax in a format string: what only ir_text should write.
_SYNTAX = re.compile(r"""f["'][^"'\n]*(func\.func|func\.call|arith\.constant|tensor\.(dim|empty|"""
                     r"""extract)|linalg\.(matmul|fill|generic|yield)|scf\.(for|yield)|"""
                     r"""moe\.(route|layer|dispatch|expert_ffn|combine) |tensor<|affine_map<|"""
                     r"""dense<|loc\()""")


def test_ir_syntax_only_in_ir_text():
    offenders = []
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(directory, name)
            if not name.endswith(".py") or path == os.path.join(PACKAGE, "ir_text.py"):
                continue
            for number, line in enumerate(open(path), 1):
                if _SYNTAX.search(line):
                    offenders.append(f"{os.path.relpath(path, PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_route_module_text():
    """The text of compile_route's module (ir_text's layout)."""
    route = moe_mlir.compile_route(4, 2, num_null=1, strategy="top_p", p=0.5,
                                   normalize="non_null")
    assert route.config.attributes() == (
        "experts = <compute = 4, null = 1> k = 2 scoring = softmax strategy = top_p<p = "
        "0x3F000000> normalize = non_null scale = 0x3F800000")
    layer = moe_mlir.compile_layer(8, 16, 4, 2, num_null=1, strategy="top_p", p=0.5,
                                   normalize="non_null")
    text, entry, names = layer.module_text(("b_router",), packed=True, weight_dtype="bf16")
    assert entry == "layer" and names == ["x", "w_router", "b_router", "w_up", "w_gate",
                                          "w_down"]
    assert text == (
        "func.func @layer(\n"
        "    %x: tensor<?x8xf32>,\n"
        "    %w_router: tensor<8x5xf32>,\n"
        "    %b_router: tensor<5xf32>,\n"
        "    %w_up: tensor<4x1x8x32xbf16>,\n"
        "    %w_gate: tensor<4x1x8x32xbf16>,\n"
        "    %w_down: tensor<4x1x16x32xbf16>) -> (tensor<?x8xf32>) {\n"
        "  %y = moe.layer %x router(%w_router : tensor<8x5xf32>) router_bias(%b_router : "
        "tensor<5xf32>) up(%w_up : tensor<4x1x8x32xbf16>) gate(%w_gate : "
        "tensor<4x1x8x32xbf16>) down(%w_down : tensor<4x1x16x32xbf16>) "
        + route.config.attributes() + " activation = silu gated packed : tensor<?x8xf32> -> "
        "tensor<?x8xf32>\n"
        "  return %y : tensor<?x8xf32>\n"
        "}\n")


def test_ir_text_functions():
    x = ir_text.Typed("%x", ir_text.tensor_type((None, 4)))
    w = ir_text.Typed("%w", ir_text.tensor_type((4, 3)))
    init = ir_text.Typed("%i", ir_text.tensor_type((None, 3)))
    assert ir_text.tensor_type((None, 4, 2), "bf16") == "tensor<?x4x2xbf16>"
    assert ir_text.f32_literal(1.0) == "0x3F800000" and ir_text.f32_literal(1e40) == "0x7F800000"
    assert ir_text.f64_literal(1.25) == "0x3FF4000000000000"
    assert ir_text.assign(["%a", "%b"], "op") == "%a, %b = op"
    assert ir_text.assign(x, "op") == "%x = op"
    assert ir_text.matmul(x, w, init) == ("linalg.matmul ins(%x, %w : tensor<?x4xf32>, "
                                          "tensor<4x3xf32>) outs(%i : tensor<?x3xf32>) -> "
                                          "tensor<?x3xf32>")
    assert ir_text.location(["a", 'b"c']) == ' loc(fused["a", "b\\"c"])'
    assert ir_text.location(None) == ""
    assert ir_text.func_call("f", [x, "%c0"], [x.type, "index"], [x.type]) == \
        "func.call @f(%x, %c0) : (tensor<?x4xf32>, index) -> (tensor<?x4xf32>)"
    assert ir_text.experts_attr(8, copy=2) == "<compute = 8, copy = 2>"
    with pytest.raises(ValueError, match="unknown operand keyword"):
        ir_text.moe_layer(x, {"weights": w}, "", "silu", True)
