"""The GPU test matrix: layers that the GPU pipeline compiles, with the
reference's arguments to check them. Shared by the builder
(scripts/gpu-test-matrix.py, on a machine with MLIR) and the runner
(tools/gpu-runner/run_cases.py, on a GPU machine with only NumPy): pure
Python and NumPy."""
import numpy as np

from . import reference as ref

# name: (H, F, E, K, T, compile_layer keyword arguments, reference keyword arguments)
CASES = {
    "top_k": (64, 96, 8, 2, 33, dict(), dict()),
    "top_k_zero_tokens": (32, 64, 4, 2, 0, dict(), dict()),
    "top_p": (64, 96, 8, 4, 40, dict(strategy="top_p", p=0.7, normalize="selected"),
              dict(strategy=ref.TopP(0.7), normalize="selected")),
    "adamoe_null": (64, 128, 8, 4, 64, dict(num_null=4, normalize="non_null"),
                    dict(normalize="non_null")),
    "adaptive": (48, 80, 6, 3, 25, dict(strategy="adaptive", tau=0.1),
                 dict(strategy=ref.Adaptive(0.1))),
    "threshold_sigmoid": (48, 80, 6, 3, 25,
                          dict(strategy="threshold", tau=0.3, k_min=1, scoring="sigmoid"),
                          dict(strategy=ref.Threshold(0.3, 1), scoring="sigmoid")),
    "groups_sigmoid": (64, 64, 8, 2, 30,
                    dict(groups=(4, 2), scoring="sigmoid", normalize="selected", scale=2.5),
                    dict(groups=ref.Groups(4, 2), scoring="sigmoid", normalize="selected",
                         scale=2.5)),
    "moepp_zero_copy_const": (32, 64, 4, 2, 20,
                              dict(num_null=1, num_copy=1, num_const=2, normalize="non_null"),
                              dict(normalize="non_null")),
    "plain_gelu_biases": (40, 72, 4, 2, 17, dict(activation="gelu", gated=False),
                          dict(activation="gelu", gated=False)),
    "dynamic_k": (32, 64, 4, 3, 19, dict(strategy="dynamic_k", normalize="selected"),
                  dict(strategy=ref.DynamicK(), normalize="selected")),
    "wide_128_experts": (128, 64, 64, 8, 256, dict(), dict()),
    "capacity_score": (48, 64, 6, 2, 50, dict(capacity=(0.8, "score"), normalize="selected"),
                       dict(capacity=ref.Capacity(0.8, "score"), normalize="selected")),
    "capacity_position": (48, 64, 6, 2, 50, dict(capacity=(0.5, "position"), num_null=2),
                          dict(capacity=ref.Capacity(0.5, "position"))),
    "expert_choice": (48, 64, 6, 2, 40,
                      dict(strategy="expert_choice", capacity_factor=1.25, normalize="selected"),
                      dict(strategy=ref.ExpertChoice(1.25), normalize="selected")),
    # bf16 expert weights: f32 rows on the SIMT tiles (f32 semantics), then
    # on the tensor cores (bf16-rows: mma.sync m16n8k16), with partial
    # 16-row tiles, N not a multiple of 32 and null experts.
    "bf16_weights": (64, 96, 8, 2, 37, dict(), dict()),
    "bf16_tensor_cores": (64, 72, 8, 4, 50, dict(num_null=4, normalize="non_null"),
                          dict(normalize="non_null")),
}

# Cases with other weights or pipeline options than f32 and the defaults:
# weight_dtype of module_text, and bf16_rows (moe-gpu-pipeline{bf16-rows}).
OPTIONS = {
    "bf16_weights": dict(weight_dtype="bf16", bf16_rows=False),
    "bf16_tensor_cores": dict(weight_dtype="bf16", bf16_rows=True),
}
# The expert weights that module_text(weight_dtype="bf16") takes as bf16.
_BF16_WEIGHTS = ("w_up", "w_gate", "w_down")


def options(name):
    """The case's weight_dtype and bf16_rows."""
    return dict(dict(weight_dtype="f32", bf16_rows=False), **OPTIONS.get(name, {}))


def _bf16_bits(a):
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def inputs(name):
    """The case's arguments by name (deterministic)."""
    H, F, E, K, T, kw, _ = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    S = E + kw.get("num_null", 0) + kw.get("num_copy", 0) + kw.get("num_const", 0)
    gated = kw.get("gated", True)
    a = dict(x=rng.standard_normal((T, H), dtype=np.float32),
             w_router=rng.standard_normal((H, S), dtype=np.float32) / np.float32(np.sqrt(H)),
             w_up=rng.standard_normal((E, H, F), dtype=np.float32) / np.float32(np.sqrt(H)),
             w_down=rng.standard_normal((E, F, H), dtype=np.float32) / np.float32(np.sqrt(F)))
    if gated:
        a["w_gate"] = rng.standard_normal((E, H, F), dtype=np.float32) / np.float32(np.sqrt(H))
    else:
        a["b_up"] = rng.standard_normal((E, F), dtype=np.float32)
        a["b_down"] = rng.standard_normal((E, H), dtype=np.float32)
    if kw.get("num_const"):
        a["wc"] = rng.standard_normal((kw["num_const"], H, 2), dtype=np.float32)
        a["v"] = rng.standard_normal((kw["num_const"], H), dtype=np.float32)
    if kw.get("strategy") == "dynamic_k":
        a["k_per_token"] = rng.integers(-1, K + 2, size=T).astype(np.int32)
    if options(name)["weight_dtype"] == "bf16":  # the library's bf16 bits
        for n in _BF16_WEIGHTS:
            if n in a:
                a[n] = _bf16_bits(a[n])
    return a


def optional_names(name):
    """The optional layer arguments the case passes."""
    return tuple(n for n in ("b_up", "b_down") if n in inputs(name))


def check(name, y, args):
    """Checks a result with the section-5 rule; raises AssertionError. bf16
    weights are compared as the f32 values they hold; with bf16-rows (rows
    and the FFN's intermediates rounded to bf16) with the project's bf16
    bound (conformance.MATMUL_TOL, docs/GPU.md), routing staying f32."""
    from . import conformance
    H, F, E, K, T, kw, refkw = CASES[name]
    args = {n: _bf16_values(a) if a.dtype == np.uint16 else a for n, a in args.items()}
    if options(name)["bf16_rows"]:
        refkw = dict(refkw, rtol_row=conformance.MATMUL_TOL["bf16"][0],
                     atol=conformance.MATMUL_TOL["bf16"][1])
    experts = ref.ExpertSpace(compute=E, null=kw.get("num_null", 0), copy=kw.get("num_copy", 0),
                              const=kw.get("num_const", 0))
    extra = {k: args[k] for k in ("w_gate", "b_up", "b_down", "wc", "v", "k_per_token")
             if k in args}
    conformance.assert_layer_conforms(y, args["x"], args["w_router"], args["w_up"],
                                      args["w_down"], experts, K, **refkw, **extra)
