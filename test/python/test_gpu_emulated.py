"""The GPU kernels of convert-moe-to-gpu, run on the host (target
"gpu-emulated": the same kernel bodies as scf loops through the CPU
pipeline), against the NumPy reference with the section-5 rule: every
routing strategy the GPU lowers, null/copy/const experts, gated and plain
FFNs, packed and bf16-stored weights, per-token k, zero tokens. What the
GPU lowering rejects (capacity, expert choice) is rejected with a message."""
import numpy as np
import pytest

from moe_mlir import compiler, conformance
from moe_mlir import reference as ref
from moe_mlir.routing import compile_layer

CASES = [
    # (name, compile_layer kwargs, reference kwargs)
    ("top_k", dict(), dict()),
    ("top_p", dict(strategy="top_p", p=0.6, normalize="selected"),
     dict(strategy=ref.TopP(0.6), normalize="selected")),
    ("adaptive", dict(strategy="adaptive", tau=0.1, num_null=2, normalize="non_null"),
     dict(strategy=ref.Adaptive(0.1), normalize="non_null")),
    ("threshold", dict(strategy="threshold", tau=0.2, k_min=1, scoring="sigmoid"),
     dict(strategy=ref.Threshold(0.2, 1), scoring="sigmoid")),
    ("groups", dict(groups=(2, 1), scoring="sigmoid", normalize="selected", scale=2.5),
     dict(groups=ref.Groups(2, 1), scoring="sigmoid", normalize="selected", scale=2.5)),
    ("groups_max", dict(groups=(4, 2, "max"), scoring="sigmoid", normalize="selected"),
     dict(groups=ref.Groups(4, 2, "max"), scoring="sigmoid", normalize="selected")),
    ("zero_copy_const", dict(num_null=1, num_copy=1, num_const=2, normalize="non_null"),
     dict(normalize="non_null")),
    ("plain_gelu", dict(activation="gelu", gated=False), dict(activation="gelu", gated=False)),
    # Cross-token steps: one device thread.
    ("capacity_position", dict(capacity=(0.75, "position"), num_null=1),
     dict(capacity=ref.Capacity(0.75, "position"))),
    ("capacity_score", dict(capacity=(0.5, "score"), normalize="selected"),
     dict(capacity=ref.Capacity(0.5, "score"), normalize="selected")),
    ("expert_choice", dict(strategy="expert_choice", capacity_factor=1.5, normalize="selected"),
     dict(strategy=ref.ExpertChoice(1.5), normalize="selected")),
]


def _weights(rng, H, F, E, S, gated=True, biases=False, num_const=0):
    w = dict(w_router=rng.standard_normal((H, S), dtype=np.float32) / np.sqrt(H),
             w_up=rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),
             w_down=rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F))
    if gated:
        w["w_gate"] = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    if biases:
        w["b_up"] = rng.standard_normal((E, F), dtype=np.float32)
        w["b_down"] = rng.standard_normal((E, H), dtype=np.float32)
    if num_const:
        w["wc"] = rng.standard_normal((num_const, H, 2), dtype=np.float32)
        w["v"] = rng.standard_normal((num_const, H), dtype=np.float32)
    return w


@pytest.mark.parametrize("name,kwargs,refkw", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("T", [0, 1, 13, 64])
def test_layer_conforms(name, kwargs, refkw, T):
    H, F, E, K = 24, 40, 4, 2
    kwargs = dict(kwargs)
    gated = kwargs.get("gated", True)
    layer = compile_layer(H, F, E, K, target="gpu-emulated", **kwargs)
    rng = np.random.default_rng(T * 7 + len(name))
    S = E + kwargs.get("num_null", 0) + kwargs.get("num_copy", 0) + kwargs.get("num_const", 0)
    w = _weights(rng, H, F, E, S, gated=gated, biases=not gated,
                 num_const=kwargs.get("num_const", 0))
    x = rng.standard_normal((T, H), dtype=np.float32)
    y = layer(x, **w)
    experts = ref.ExpertSpace(compute=E, null=kwargs.get("num_null", 0),
                              copy=kwargs.get("num_copy", 0), const=kwargs.get("num_const", 0))
    extra = {k: w[k] for k in ("w_gate", "b_up", "b_down", "wc", "v") if k in w}
    conformance.assert_layer_conforms(y, x, w["w_router"], w["w_up"], w["w_down"], experts, K,
                                      **refkw, **extra)


def test_dynamic_k_and_bound_weights():
    H, F, E, K = 32, 64, 4, 3
    layer = compile_layer(H, F, E, K, strategy="dynamic_k", normalize="selected",
                          target="gpu-emulated")
    rng = np.random.default_rng(5)
    w = _weights(rng, H, F, E, E)
    x = rng.standard_normal((17, H), dtype=np.float32)
    k = rng.integers(-1, 5, size=17).astype(np.int32)  # out of range values are clamped
    y = layer(x, k_per_token=k, **w)
    conformance.assert_layer_conforms(y, x, w["w_router"], w["w_up"], w["w_down"],
                                      ref.ExpertSpace(compute=E), K, strategy=ref.DynamicK(),
                                      k_per_token=k, normalize="selected", w_gate=w["w_gate"])
    # Packed weights (the `packed` layout) give the same values.
    packed = layer.bind(**w)(x, k_per_token=k)
    np.testing.assert_allclose(packed, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [100, 700])  # 700 * 2 slots: several dispatch chunks
def test_agrees_with_cpu_kernels(T):
    H, F, E, K = 48, 80, 8, 2
    rng = np.random.default_rng(11)
    w = _weights(rng, H, F, E, E + 4)
    x = rng.standard_normal((T, H), dtype=np.float32)
    gpu = compile_layer(H, F, E, K, num_null=4, target="gpu-emulated")(x, **w)
    cpu = compile_layer(H, F, E, K, num_null=4)(x, **w)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)


def test_fused_route_dispatch_runs():
    """moe.route_dispatch alone through the GPU kernels (emulated): the ids and
    weights conform to the reference's routing of x @ w_router (the layer-level
    bit-equality with the unfused kernels is in test_fusion.py)."""
    from moe_mlir import compiler, conformance
    text = """func.func @f(%x: tensor<?x16xf32>, %wr: tensor<16x4xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x4xf32>) experts = <compute = 4> k = 2
      strategy = top_k normalize = none
      : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>,
        tensor<5xi32>, tensor<?x2xi32>
  return %0#0, %0#1 : tensor<?x2xi32>, tensor<?x2xf32>
}"""
    f = compiler.compile(text, "f", target="gpu-emulated")
    rng = np.random.default_rng(5)
    for T in (0, 1, 37):
        x = rng.standard_normal((T, 16), dtype=np.float32)
        wr = rng.standard_normal((16, 4), dtype=np.float32)
        ids, w = f(x, wr)
        assert ids.shape == (T, 2) and w.shape == (T, 2)
        if T:
            conformance.assert_route_conforms(ids, w, x @ wr, experts=ref.ExpertSpace(4),
                                              k=2, strategy=ref.TopK(), normalize="none")


def _dispatch_text(E, H, K, r_max=None):
    """moe.dispatch returning its offsets and slot rows, and its rows when
    they have a static count (the GPU lowering keeps dynamic-R rows on the
    device, for moe ops only)."""
    rows = "?" if r_max is None else str(r_max)
    results = [f"tensor<{E + 1}xi32>", f"tensor<?x{K}xi32>"]
    values = ["%offsets", "%slot_rows"]
    if r_max is not None:
        results.insert(0, f"tensor<{rows}x{H}xf32>")
        values.insert(0, "%rows")
    return f"""
func.func @f(%x: tensor<?x{H}xf32>, %ids: tensor<?x{K}xi32>) -> ({', '.join(results)}) {{
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = {E}
      : tensor<?x{H}xf32>, tensor<?x{K}xi32>
      -> tensor<{rows}x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>
  return {', '.join(values)} : {', '.join(results)}
}}
"""


@pytest.mark.parametrize("T,r_max", [(0, None), (5, None), (300, None), (300, 7),
                                     (300, 333), (300, 900)])
def test_dispatch_kernels_match_reference(T, r_max):
    """The dispatch kernels (a thread per chunk of 256 slots counts and
    assigns, a thread per expert scans its chunks): several chunks, ids that
    are null (>= E), negative or out of range, every slot of a token on one
    expert, and the padded form (R_max smaller and larger than the compute
    slots): offsets and slot rows exactly the reference's, and the rows."""
    E, H, K = 6, 5, 3
    rng = np.random.default_rng(T + (r_max or 0))
    x = rng.standard_normal((T, H)).astype(np.float32)
    ids = rng.integers(-2, E + 3, size=(T, K)).astype(np.int32)
    if T:
        ids[0] = 2           # one token's slots all on expert 2
        ids[-1] = [E, -1, 2 ** 31 - 1]
    f = compiler.compile(_dispatch_text(E, H, K, r_max), "f", target="gpu-emulated")
    results = f(x, ids)
    offsets, slot_rows = results[-2:]
    r_rows, r_off, r_sr = ref.dispatch(x, ids, E, r_max=r_max)
    assert np.array_equal(offsets, r_off) and np.array_equal(slot_rows, r_sr)
    n = int(r_off[E])
    compute = int(np.sum((ids >= 0) & (ids < E)))
    assert n == (compute if r_max is None else min(r_max, compute))
    if r_max is not None:
        assert np.array_equal(results[0][:n], r_rows[:n])
