"""Quantized expert weights (GGUF Q8_0 and Q4_0 blocks in tiles).

* The block quantizer reproduces ggml's bytes: golden vectors produced with
  ggml-org/ggml at d99724f2b141fed9e1a9f402213506c081433465
  (`ggml_quantize_chunk`, i.e. `quantize_row_q8_0_ref` /
  `quantize_row_q4_0_ref`, built with GGML_NATIVE=OFF, no FMA contraction),
  for the input `x[i] = sinf(0.37f * i) * (1 + i % 7) - 0.25f` and for
  `(i - 16) / 4` and zeros.
* Tiles hold the blocks' bytes, rearranged, never re-quantised.
* The compiled expert FFN on quantized tiles equals the f32 kernel on the
  dequantised weights bit for bit (dequantisation is exact in f32), for
  several schedules (the q4_0 nibbles of 4, 8 and 16 lanes), gated and not,
  with bf16 rows; and conforms to the reference on the dequantised weights.
* bind(weight_dtype="q8_0" | "q4_0") quantizes once; its error against the
  f32 weights stays within the documented bound (docs/Quantization.md).
"""
import functools

import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance, quant
from moe_mlir import reference as ref
from moe_mlir.routing import compile_layer, pack_panels

I = np.arange(256)
GOLDEN_X = (np.sin(np.float32(0.37) * I.astype(np.float32)).astype(np.float32)
            * (1 + I % 7).astype(np.float32) - np.float32(0.25)).astype(np.float32)
GOLDEN = {
    ("q8_0", "x"): "462bfc081f3b53615e0502f2d6b59681ece4e9fc1c436a0d1d25200be7baedda"
                   "c7bdc92abdd4fd02152e4756543ffef4ddbea08b86efeefc183c627f0d191807e8bd90e9",
    ("q4_0", "x"): "373b7889aaccfd9eaea8a897654371604746bcbafc9b98886745240373646889aaccfe9f",
    ("q8_0", "c"): "082881899199a1a9b1b9c0c8d0d8e0e8f0f8000810182028303840474f575f676f77",
    ("q4_0", "c"): "0038809191a2a2b3b3c4c4d5d5e6e6f7f7f8",
    ("q8_0", "zeros"): "00" * 34,
    ("q4_0", "zeros"): "0080" + "88" * 16,
}
INPUTS = {"x": GOLDEN_X[:64], "c": ((np.arange(32) - 16) / 4).astype(np.float32),
          "zeros": np.zeros(32, np.float32)}


@pytest.mark.parametrize("fmt,name", sorted(GOLDEN))
def test_ggml_golden_bytes(fmt, name):
    assert quant.quantize_blocks(INPUTS[name], fmt).tobytes().hex() == GOLDEN[(fmt, name)]


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_dequantize_is_ggml_and_exact(fmt):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 3, 96)) * np.exp(rng.uniform(-6, 6, (5, 3, 1)))).astype(np.float32)
    blocks = quant.quantize_blocks(x, fmt)
    got = quant.dequantize_blocks(blocks, fmt)
    # ggml: value (int) times the f16 scale widened to f32, one f32 product;
    # exact, so the f64 product agrees.
    d = blocks[..., :2].copy().view(np.float16)[..., 0].astype(np.float64)
    body = blocks[..., 2:]
    if fmt == "q8_0":
        q = body.view(np.int8).astype(np.float64)
    else:
        q = np.concatenate([(body & 15), (body >> 4)], axis=-1).astype(np.float64) - 8
    assert np.array_equal(got.astype(np.float64), (q * d[..., None]).reshape(got.shape))
    # Quantization error: half a step of the block's scale (q8_0: d = amax/127;
    # q4_0: d = |m|/8, a whole step where +8 is clamped to 7), plus the f16
    # rounding of d times the largest |q| (127 or 8): relative 2^-11 each.
    big = 127 if fmt == "q8_0" else 8
    bound = np.abs(d) * ((0.5 if fmt == "q8_0" else 1.0) + big * 2.0 ** -11)
    err = np.abs(got - x).reshape(blocks.shape[:-1] + (32,)).astype(np.float64)
    assert np.all(err <= bound[..., None] * (1 + 1e-6))


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_tiles_move_bytes(fmt):
    rng = np.random.default_rng(2)
    E, N, K = 3, 70, 96  # 70 columns: a padded last panel
    blocks = quant.quantize_blocks(rng.standard_normal((E, N, K)).astype(np.float32), fmt)
    tiles = quant.tiles_from_blocks(blocks, fmt)
    assert tiles.shape == (E, 3, K // 32, quant.TILE_BYTES[fmt]) and tiles.dtype == np.int8
    assert np.array_equal(quant.blocks_from_tiles(tiles, fmt, N), blocks)
    # Tile (e, p, b): column 32p + j's scale at bytes 2j, its depth i at row i.
    e, p, b, j, i = 2, 1, 2, 5, 17
    t = tiles[e, p, b].view(np.uint8)
    assert t[2 * j: 2 * j + 2].tobytes() == blocks[e, 32 * p + j, b, :2].tobytes()
    if fmt == "q8_0":
        assert t[64 + 32 * i + j] == blocks[e, 32 * p + j, b, 2 + i]
    else:
        byte = blocks[e, 32 * p + j, b, 2 + i % 16]
        u = (byte >> 4) if i >= 16 else (byte & 15)
        assert (t[64 + 16 * i + j % 16] >> (4 * (j >= 16))) & 15 == u
    # Past N: zero scales and quants.
    assert not np.any(tiles[:, 2].view(np.uint8)[..., 2 * (N - 64):64])
    deq = quant.dequantize_tiles(tiles, fmt, N)
    assert np.array_equal(deq, np.swapaxes(quant.dequantize_blocks(blocks, fmt), 1, 2))


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        quant.quantize_blocks(np.zeros(40, np.float32), "q8_0")
    with pytest.raises(ValueError, match="finite"):
        quant.quantize_blocks(np.full(32, np.nan, np.float32), "q4_0")
    with pytest.raises(ValueError, match="f16 range"):
        quant.quantize_blocks(np.full(32, 3e38, np.float32), "q8_0")
    with pytest.raises(ValueError, match="unknown quantization format 'q5_0'"):
        quant.quantize_blocks(np.zeros(32, np.float32), "q5_0")


@functools.lru_cache(maxsize=None)
def _compile(text, entry):
    """The f32 modules the quantized ones are compared with are shared by
    both formats' tests."""
    return moe_mlir.compile(text, entry)


def _ffn_text(E, H, F, fmt, gated, biases, element="f32", schedule=None):
    row = f"tensor<?x{H}x{element}>"
    if fmt in quant.FORMATS:
        up = f"tensor<{E}x{F // 32}x{H // 32}x{quant.TILE_BYTES[fmt]}xi8>"
        down = f"tensor<{E}x{H // 32}x{F // 32}x{quant.TILE_BYTES[fmt]}xi8>"
        layout = f" packed quant = {fmt}"
    else:
        up = f"tensor<{E}x{-(-F // 32)}x{H}x32xf32>"
        down = f"tensor<{E}x{-(-H // 32)}x{F}x32xf32>"
        layout = " packed"
    args = [f"%rows: {row}", f"%offsets: tensor<{E + 1}xi32>", f"%wu: {up}"]
    ops = f"up(%wu : {up})"
    if gated:
        args.append(f"%wg: {up}")
        ops += f" gate(%wg : {up})"
    args.append(f"%wd: {down}")
    ops += f" down(%wd : {down})"
    if biases:
        args += [f"%bu: tensor<{E}x{F}xf32>", f"%bd: tensor<{E}x{H}xf32>"]
        ops += f" up_bias(%bu : tensor<{E}x{F}xf32>) down_bias(%bd : tensor<{E}x{H}xf32>)"
    attrs = (f" attributes {{moe.matmul_schedule = #moe.matmul_schedule<{schedule}>}}"
             if schedule else "")
    return f"""
func.func @ffn({", ".join(args)}) -> {row}{attrs} {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : {row}
  %init = tensor.empty(%r) : {row}
  %y = moe.expert_ffn %rows, %offsets {ops} activation = {"silu gated" if gated else "gelu"}{layout}
      into(%init) : {row}, tensor<{E + 1}xi32> into {row}
  return %y : {row}
}}"""


@pytest.mark.parametrize("fmt", quant.FORMATS)
@pytest.mark.parametrize("schedule", [None, "lanes = 8", "lanes = 4, rows = 3, depth_block = 40",
                                      "depth_block = 0, prefetch = 2, prefetch_min_rows = 1"])
@pytest.mark.parametrize("gated", [True, False], ids=["gated", "biases"])
def test_expert_ffn_quantized(fmt, schedule, gated):
    """Experts with 0..13 rows (every block size), H = 64, F = 160 (5 panels:
    a group of 4 and a lone one): the kernel on tiles gives the bits of the
    f32 kernel on the dequantised weights, and conforms to the reference."""
    H, F = 64, 160
    counts = [0, 1, 2, 3, 5, 8, 13]
    E = len(counts)
    rng = np.random.default_rng(3)
    w = {"wu": rng.standard_normal((E, H, F)).astype(np.float32) / 8,
         "wd": rng.standard_normal((E, F, H)).astype(np.float32) / 12}
    if gated:
        w["wg"] = rng.standard_normal((E, H, F)).astype(np.float32) / 8
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    rows = rng.standard_normal((int(offsets[-1]) + 1, H)).astype(np.float32)  # one row past offsets[E]
    tiles = {k: quant.quantize_weights(v, fmt) for k, v in w.items()}
    deq = {k: quant.dequantize_tiles(tiles[k], fmt, v.shape[2]) for k, v in w.items()}
    order = ["wu"] + (["wg"] if gated else []) + ["wd"]
    biases = [] if gated else [rng.standard_normal((E, F)).astype(np.float32),
                               rng.standard_normal((E, H)).astype(np.float32)]
    got = moe_mlir.compile(_ffn_text(E, H, F, fmt, gated, not gated, schedule=schedule), "ffn")(
        rows, offsets, *[tiles[k] for k in order], *biases)
    plain = _compile(_ffn_text(E, H, F, "f32", gated, not gated, schedule=schedule), "ffn")(
        rows, offsets, *[pack_panels(deq[k]) for k in order], *biases)
    assert got.tobytes() == plain.tobytes()
    want = ref.expert_ffn(rows, offsets, deq["wu"], deq["wd"], w_gate=deq.get("wg"),
                          b_up=biases[0] if biases else None, b_down=biases[1] if biases else None,
                          activation="silu" if gated else "gelu", gated=gated)
    conformance.assert_close_rows(got, want)
    assert not np.any(got[-1])  # the row past offsets[E] is zero


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_expert_ffn_quantized_bf16_rows(fmt):
    H, F, E = 32, 64, 2
    rng = np.random.default_rng(4)
    w = [rng.standard_normal(s).astype(np.float32) / 6 for s in ((E, H, F), (E, H, F), (E, F, H))]
    tiles = [quant.quantize_weights(x, fmt) for x in w]
    deq = [quant.dequantize_tiles(t, fmt, x.shape[2]) for t, x in zip(tiles, w)]
    offsets = np.array([0, 3, 7], np.int32)
    rows = rng.standard_normal((7, H)).astype(np.float32)
    got = moe_mlir.compile(_ffn_text(E, H, F, fmt, True, False, "bf16"), "ffn")(rows, offsets, *tiles)
    plain = _compile(_ffn_text(E, H, F, "f32", True, False, "bf16"), "ffn")(
        rows, offsets, *[pack_panels(d) for d in deq])
    assert got.tobytes() == plain.tobytes()


#: Documented bounds (docs/Quantization.md) of the relative row error
#: ||y_quant - y_f32|| / ||y_f32|| of a layer whose weights are quantized, for
#: Gaussian weights and inputs (measured: q8_0 about 0.6%, q4_0 about 10%).
ROW_ERROR_BOUND = {"q8_0": 0.02, "q4_0": 0.25}


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_bind_quantized_layer(fmt):
    H, F, E, K = 64, 96, 8, 2
    rng = np.random.default_rng(5)
    wr = rng.standard_normal((H, E)).astype(np.float32)
    wu, wg = (rng.standard_normal((E, H, F)).astype(np.float32) / 8 for _ in range(2))
    wd = rng.standard_normal((E, F, H)).astype(np.float32) / 10
    x = rng.standard_normal((33, H)).astype(np.float32)
    layer = compile_layer(H, F, E, K)
    bound = layer.bind(wr, wu, wd, wg, weight_dtype=fmt)
    assert bound.weights["w_up"].shape == quant.tile_shape(E, H, F, fmt)
    y = bound(x)
    deq = [quant.dequantize_tiles(quant.quantize_weights(w, fmt), fmt, w.shape[2])
           for w in (wu, wg, wd)]
    conformance.assert_close_rows(
        y, ref.layer(x, wr, deq[0], deq[2], ref.ExpertSpace(compute=E), K, w_gate=deq[1]))
    assert np.array_equal(y, layer.bind(wr, deq[0], deq[2], deq[1])(x))
    exact = layer(x, wr, wu, wd, w_gate=wg)
    row_error = np.linalg.norm(y - exact, axis=1) / np.linalg.norm(exact, axis=1)
    assert row_error.max() <= ROW_ERROR_BOUND[fmt], row_error.max()


def test_bind_quantized_errors():
    rng = np.random.default_rng(6)
    layer = compile_layer(40, 64, 2, 1)
    args = (rng.standard_normal((40, 2)).astype(np.float32),
            np.zeros((2, 40, 64), np.float32), np.zeros((2, 64, 40), np.float32),
            np.zeros((2, 40, 64), np.float32))
    with pytest.raises(ValueError, match="hidden and ffn to be multiples of 32.*hidden=40"):
        layer.bind(*args, weight_dtype="q8_0")
    with pytest.raises(ValueError, match="'weight_dtype' must be one of"):
        layer.bind(*args, weight_dtype="q5_k")
    emulated = compile_layer(64, 64, 2, 1, target="gpu-emulated")
    with pytest.raises(ValueError, match="supported by target 'cpu' only"):
        emulated.bind(np.zeros((64, 2), np.float32), np.zeros((2, 64, 64), np.float32),
                      np.zeros((2, 64, 64), np.float32), np.zeros((2, 64, 64), np.float32),
                      weight_dtype="q4_0")
