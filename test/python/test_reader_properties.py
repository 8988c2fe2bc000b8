"""Property tests (hypothesis, derandomised: the same examples in every run)
for the readers and the API surface that takes outside data: whatever bytes,
JSON or Python values come in, the only exceptions are the documented ones
(SafetensorsError, ExportError, ValueError), never a TypeError, KeyError,
IndexError, OverflowError or RecursionError from inside."""

import json
import struct

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import moe_mlir  # noqa: E402
from moe_mlir import aot  # noqa: E402
from moe_mlir.export import ExportError, export_checkpoint, safetensors  # noqa: E402
from moe_mlir.routing import RoutingConfig  # noqa: E402

PROPERTY = settings(derandomize=True, deadline=None, database=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# JSON values: what a hostile header or config can hold.
_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
_DTYPES = sorted(safetensors.DTYPES)


def _file(tmp_path, name, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _header_bytes(header) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


@PROPERTY
@given(st.binary(max_size=256))
def test_safetensors_any_bytes(tmp_path, content):
    path = _file(tmp_path, "any.safetensors", content)
    for reader in (safetensors.load, safetensors.metadata):
        try:
            reader(path)
        except safetensors.SafetensorsError:
            pass


_ENTRY = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(_DTYPES) | _SCALARS,
    "shape": st.lists(st.integers(min_value=-2, max_value=2**66), max_size=3) | _JSON,
    "data_offsets": st.lists(st.integers(min_value=-4, max_value=80), max_size=3) | _JSON,
})


@PROPERTY
@given(st.dictionaries(st.text(max_size=4), _ENTRY | _JSON, max_size=4), st.binary(max_size=64))
def test_safetensors_hostile_headers(tmp_path, header, data):
    path = _file(tmp_path, "h.safetensors", _header_bytes(header) + data)
    try:
        tensors = safetensors.load(path)
    except safetensors.SafetensorsError:
        return
    for name, array in tensors.items():
        entry = header[name]
        assert list(array.shape) == entry["shape"]
        begin, end = entry["data_offsets"]
        assert array.nbytes == (end - begin) * (2 if entry["dtype"] == "BF16" else 1)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["F32", "F16", "F64", "I32", "I64", "I8", "U8"]),
                          st.lists(st.integers(min_value=0, max_value=4), max_size=3)),
                max_size=4))
def test_safetensors_round_trip(tmp_path, specs):
    rng = np.random.default_rng(0)
    tensors = {f"t{i}": (rng.standard_normal(shape) * 10).astype(safetensors.DTYPES[dtype])
               for i, (dtype, shape) in enumerate(specs)}
    path = str(tmp_path / "rt.safetensors")
    safetensors.save(path, tensors)
    loaded = safetensors.load(path)
    assert list(loaded) == sorted(tensors, key=lambda n: list(tensors).index(n))
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)


_MOE_FIELDS = ["ffn_size", "num_experts", "top_k", "num_null_experts", "scoring", "strategy",
               "top_p", "tau", "k_min", "capacity_factor", "normalize", "scale", "capacity",
               "groups", "activation", "gated", "router_bias", "expert_biases"]


@PROPERTY
@given(st.dictionaries(st.sampled_from(["hidden_size", "num_layers", "residual", "format"]),
                       _JSON, max_size=4),
       st.dictionaries(st.sampled_from(_MOE_FIELDS), _JSON, max_size=6))
def test_checkpoint_config_hostile_values(tmp_path, top, moe):
    config = {"format": "moe-mlir-checkpoint/1", "hidden_size": 8, "num_layers": 1,
              "moe": {"ffn_size": 4, "num_experts": 2, "top_k": 1}}
    config.update(top)
    if isinstance(config.get("moe"), dict):
        config["moe"].update(moe)
    path = _file(tmp_path, "config.json", json.dumps(config).encode())
    weights = _file(tmp_path, "w.safetensors", _header_bytes({}))
    try:
        export_checkpoint(path, weights)
    except ExportError:
        pass


_NUMBERS = (st.none() | st.booleans() | st.integers(min_value=-5, max_value=2**65)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=3)
            | st.lists(st.integers(), max_size=2))


@PROPERTY
@given(num_experts=_NUMBERS | st.integers(1, 16), k=_NUMBERS | st.integers(1, 4),
       strategy=st.sampled_from(["top_k", "top_p", "adaptive", "threshold", "dynamic_k",
                                 "expert_choice", "bogus"]),
       p=_NUMBERS, tau=_NUMBERS, k_min=_NUMBERS, capacity_factor=_NUMBERS, scale=_NUMBERS,
       capacity=st.none() | st.tuples(_NUMBERS, st.sampled_from(["score", "position", 3]))
       | _NUMBERS,
       groups=st.none() | st.tuples(_NUMBERS, _NUMBERS) | _NUMBERS)
def test_routing_config_hostile_parameters(num_experts, k, strategy, p, tau, k_min,
                                           capacity_factor, scale, capacity, groups):
    try:
        config = RoutingConfig(num_experts, k, strategy=strategy, p=p, tau=tau, k_min=k_min,
                               capacity_factor=capacity_factor, capacity=capacity,
                               groups=groups, scale=scale)
    except ValueError:
        return
    config.attributes()  # renders: every accepted value is a number of its kind


@pytest.fixture(scope="module")
def identity():
    text = """
func.func @f(%a: tensor<?x3xf32>, %i: tensor<2xi32>, %n: i32) -> (tensor<?x3xf32>, tensor<2xi32>) {
  return %a, %i : tensor<?x3xf32>, tensor<2xi32>
}"""
    return moe_mlir.compile(text, "f")


_ARRAYS = st.one_of(
    st.builds(lambda shape, dtype: np.zeros(shape, dtype),
              st.lists(st.integers(0, 4), max_size=3),
              st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.int64,
                               np.uint64, np.bool_, np.complex64, "U2", "S2", object,
                               "datetime64[s]"])),
    _NUMBERS, st.integers(min_value=-2**64, max_value=2**64))


@PROPERTY
@given(_ARRAYS, _ARRAYS, _ARRAYS)
def test_compiled_function_hostile_arguments(identity, a, i, n):
    try:
        out, ids = identity(a, i, n)
    except ValueError:
        return
    np.testing.assert_array_equal(out, np.asarray(a, np.float32))
    np.testing.assert_array_equal(ids, np.asarray(i).astype(np.int32))


@PROPERTY
@given(_JSON)
def test_aot_signatures_hostile_json(tmp_path, meta):
    path = _file(tmp_path, "lib.so.json", json.dumps(meta).encode())
    try:
        aot.read_signatures(path)
    except ValueError:
        pass


@PROPERTY
@given(st.dictionaries(st.text(max_size=4),
                       st.lists(_JSON, max_size=4) | _JSON, max_size=3))
def test_aot_signatures_hostile_functions(tmp_path, functions):
    path = _file(tmp_path, "lib.so.json",
                 json.dumps({"format": "moe_mlir.aot/1", "abi": 2, "functions": functions}).encode())
    try:
        signatures = aot.read_signatures(path)
    except ValueError:
        return
    for args, results, public, names in signatures.values():
        assert all(isinstance(t, str) for t in args + results)
        assert isinstance(public, bool) and len(names) == len(args)


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("st") / "valid.safetensors")
    safetensors.save(path, {"w": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                            "b": np.arange(3, dtype=np.int64)}, {"source": "test"})
    with open(path, "rb") as f:
        return f.read()


@PROPERTY
@given(st.integers(min_value=0, max_value=400), st.binary(max_size=64))
def test_safetensors_truncated_and_oversized(tmp_path, valid_file, cut, tail):
    """Any prefix of a valid file is refused (or, when complete, read
    exactly); extra bytes after the data are ignored."""
    cut = min(cut, len(valid_file))
    path = _file(tmp_path, "cut.safetensors", valid_file[:cut] + (tail if cut == len(valid_file)
                                                                   else b""))
    try:
        tensors = safetensors.load(path)
    except safetensors.SafetensorsError:
        assert cut < len(valid_file)
        return
    assert cut == len(valid_file)
    np.testing.assert_array_equal(tensors["w"], np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    np.testing.assert_array_equal(tensors["b"], np.arange(3))
