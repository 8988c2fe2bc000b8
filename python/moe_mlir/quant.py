"""Block-quantized expert weights: GGUF's Q8_0 and Q4_0, and the tiles the
CPU kernels read (`moe.expert_ffn ... packed quant = q8_0 | q4_0`).

The block formats are ggml's (ggml-org/ggml, src/ggml-common.h and
src/ggml-quants.c at d99724f2b141fed9e1a9f402213506c081433465): 32 values of
a row along the contraction dimension share one f16 scale `d`.

* Q8_0, 34 bytes: `d` (f16, little-endian), then 32 int8 `q`; `x = q * d`.
  Quantization: `amax = max |x|`, `d = amax / 127`, `id = 1 / d` (0 when
  d = 0), `q = roundf(x * id)` (ties away from zero), all in f32.
* Q4_0, 18 bytes: `d`, then 16 bytes; byte j holds element j in its low
  nibble and element j + 16 in its high one, each `u` in [0, 15],
  `x = (u - 8) * d`. Quantization: `m` = the element of largest magnitude
  (the first one on ties), `d = m / -8`, `id = 1 / d` (0 when d = 0),
  `u = min(15, trunc(x * id + 8.5))` with the product and the sum each
  rounded to f32 (ggml's C reference as built without FMA contraction;
  llama.cpp's gguf-py and FMA-contracted builds round the product only once
  and differ on about one value in 6.4 million).

Both round `d` to f16 to nearest even and quantize with the f32 `id`, not
the rounded `d`; dequantization is exact (`q * d` needs at most 19 bits).

The kernels read tiles of 32 columns x 32 depths (the tile layout is the
one `moe.expert_ffn` documents): a weight `w[e, k, n]` (contraction `k`, as
the contract's `w_up [E, H, F]`) becomes `[E, ceil(N/32), K/32, B]` int8,
`B` = 1088 (Q8_0) or 576 (Q4_0). The bytes of ggml's block (row `n`, block
`b`) are moved into tile `(n // 32, b)`, never re-quantised, so a GGUF
tensor's blocks can be tiled as they are (`tiles_from_blocks`).

Pure NumPy: the reference and the GGUF reader use it without the compiler.
"""

from typing import Tuple

import numpy as np

__all__ = ["FORMATS", "QK", "BLOCK_BYTES", "TILE_BYTES", "quantize_blocks", "dequantize_blocks",
           "tiles_from_blocks", "blocks_from_tiles", "quantize_weights", "dequantize_tiles",
           "check_format"]

#: The block formats, in the spelling of `quant = ...` and `weight_dtype`.
FORMATS = ("q8_0", "q4_0")
#: Values per block (along the contraction dimension), and per tile side.
QK = 32
#: Bytes of one GGUF block.
BLOCK_BYTES = {"q8_0": 2 + QK, "q4_0": 2 + QK // 2}
#: Bytes of one tile: 32 f16 scales, then 32 rows of quants.
TILE_BYTES = {"q8_0": 2 * QK + QK * QK, "q4_0": 2 * QK + QK * QK // 2}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown quantization format {fmt!r} (formats: {', '.join(FORMATS)})")
    return fmt


def _blocks_of(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] % QK:
        raise ValueError(f"{what}: the quantized dimension must be a multiple of {QK}, got shape "
                         f"{tuple(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: quantization needs finite values")
    return x.reshape(x.shape[:-1] + (x.shape[-1] // QK, QK))


def _f16_scale(d: np.ndarray, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        half = d.astype(np.float16)
    if not np.all(np.isfinite(half)):
        raise ValueError(f"{what}: a block scale exceeds the f16 range (|values| up to "
                         f"{float(np.max(np.abs(d))):.3g} per quant)")
    return half


def quantize_blocks(x: np.ndarray, fmt: str) -> np.ndarray:
    """Rows ``x[..., K]`` (K a multiple of 32) as GGUF blocks: uint8
    ``[..., K/32, BLOCK_BYTES[fmt]]``, bit-compatible with ggml's
    ``quantize_row_q8_0_ref`` / ``quantize_row_q4_0_ref``."""
    check_format(fmt)
    v = _blocks_of(x, f"quantize_blocks({fmt})")
    if fmt == "q8_0":
        amax = np.max(np.abs(v), axis=-1)
        d = (amax / np.float32(127)).astype(np.float32)
        inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)),
                       np.float32(0)).astype(np.float32)
        scaled = (v * inv[..., None]).astype(np.float32)
        # roundf: half away from zero (exact in f64 for these magnitudes).
        wide = scaled.astype(np.float64)
        q = (np.sign(wide) * np.floor(np.abs(wide) + 0.5)).astype(np.int8)
        half = _f16_scale(d, "quantize_blocks(q8_0)")
        out = np.empty(v.shape[:-1] + (BLOCK_BYTES[fmt],), np.uint8)
        out[..., :2] = half[..., None].view(np.uint8).reshape(half.shape + (2,))
        out[..., 2:] = q.view(np.uint8)
        return out
    magnitude = np.abs(v)
    first = np.argmax(magnitude, axis=-1)  # the first of equal magnitudes, as ggml's strict <
    m = np.take_along_axis(v, first[..., None], axis=-1)[..., 0]
    d = (m / np.float32(-8)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)),
                   np.float32(0)).astype(np.float32)
    scaled = (v * inv[..., None]).astype(np.float32)
    shifted = (scaled + np.float32(8.5)).astype(np.float32)
    u = np.minimum(15, np.trunc(shifted).astype(np.int32)).astype(np.uint8)
    half = _f16_scale(d, "quantize_blocks(q4_0)")
    out = np.empty(v.shape[:-1] + (BLOCK_BYTES[fmt],), np.uint8)
    out[..., :2] = half[..., None].view(np.uint8).reshape(half.shape + (2,))
    out[..., 2:] = u[..., :QK // 2] | (u[..., QK // 2:] << 4)
    return out


def _scales(blocks: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(blocks[..., :2]).view(np.float16)[..., 0].astype(np.float32)


def _quants(blocks: np.ndarray, fmt: str) -> np.ndarray:
    """The blocks' values as integers (q, or u - 8), [..., 32] int8."""
    body = blocks[..., 2:]
    if fmt == "q8_0":
        return np.ascontiguousarray(body).view(np.int8)
    low = (body & 0x0F).astype(np.int8) - 8
    high = (body >> 4).astype(np.int8) - 8
    return np.concatenate([low, high], axis=-1)


def dequantize_blocks(blocks: np.ndarray, fmt: str) -> np.ndarray:
    """GGUF blocks ``[..., K/32, BLOCK_BYTES[fmt]]`` -> f32 ``[..., K]``
    (ggml's ``dequantize_row_q8_0`` / ``dequantize_row_q4_0``; exact)."""
    check_format(fmt)
    blocks = np.asarray(blocks, np.uint8)
    if blocks.ndim < 2 or blocks.shape[-1] != BLOCK_BYTES[fmt]:
        raise ValueError(f"dequantize_blocks({fmt}): blocks must be [..., {BLOCK_BYTES[fmt]}] "
                         f"bytes, got shape {tuple(blocks.shape)}")
    values = _quants(blocks, fmt).astype(np.float32) * _scales(blocks)[..., None]
    return values.reshape(blocks.shape[:-2] + (blocks.shape[-2] * QK,))


def tiles_from_blocks(blocks: np.ndarray, fmt: str) -> np.ndarray:
    """GGUF blocks of ``[E, N, K/32, BLOCK_BYTES]`` (rows n = outputs, as a
    GGUF ``[in, out, experts]`` tensor) -> tiles ``[E, ceil(N/32), K/32,
    TILE_BYTES]`` int8 (bytes moved, columns past N zero)."""
    check_format(fmt)
    blocks = np.asarray(blocks, np.uint8)
    if blocks.ndim != 4 or blocks.shape[-1] != BLOCK_BYTES[fmt]:
        raise ValueError(f"tiles_from_blocks({fmt}): blocks must be [E, N, K/32, "
                         f"{BLOCK_BYTES[fmt]}], got shape {tuple(blocks.shape)}")
    E, N, KB, _ = blocks.shape
    P = -(-N // QK)
    padded = np.zeros((E, P * QK, KB, blocks.shape[-1]), np.uint8)
    padded[:, :N] = blocks
    per_column = padded.reshape(E, P, QK, KB, -1).transpose(0, 1, 3, 2, 4)  # [E,P,KB,j,bytes]
    tiles = np.empty((E, P, KB, TILE_BYTES[fmt]), np.uint8)
    tiles[..., :2 * QK] = per_column[..., :2].reshape(E, P, KB, 2 * QK)
    body = per_column[..., 2:]
    if fmt == "q8_0":
        # row i of the tile: the i-th quant of each column's block.
        tiles[..., 2 * QK:] = body.transpose(0, 1, 2, 4, 3).reshape(E, P, KB, QK * QK)
    else:
        u = np.concatenate([body & 0x0F, body >> 4], axis=-1)  # [E,P,KB,j,i] nibbles, i = depth
        rows = u.transpose(0, 1, 2, 4, 3)  # [E,P,KB,i,j]
        packed = rows[..., :QK // 2] | (rows[..., QK // 2:] << 4)
        tiles[..., 2 * QK:] = packed.reshape(E, P, KB, QK * QK // 2)
    return tiles.view(np.int8)


def blocks_from_tiles(tiles: np.ndarray, fmt: str, n: int) -> np.ndarray:
    """The inverse of ``tiles_from_blocks`` for the first ``n`` columns."""
    check_format(fmt)
    tiles = np.asarray(tiles).view(np.uint8)
    E, P, KB, _ = tiles.shape
    scales = tiles[..., :2 * QK].reshape(E, P, KB, QK, 2)
    body = tiles[..., 2 * QK:]
    if fmt == "q8_0":
        quants = body.reshape(E, P, KB, QK, QK).transpose(0, 1, 2, 4, 3)  # [E,P,KB,j,i]
    else:
        rows = body.reshape(E, P, KB, QK, QK // 2)
        u = np.concatenate([rows & 0x0F, rows >> 4], axis=-1).transpose(0, 1, 2, 4, 3)  # [..,j,i]
        quants = u[..., :QK // 2] | (u[..., QK // 2:] << 4)
    per_column = np.concatenate([scales, quants], axis=-1)  # [E,P,KB,j,bytes]
    return np.ascontiguousarray(
        per_column.transpose(0, 1, 3, 2, 4).reshape(E, P * QK, KB, -1)[:, :n])


def quantize_weights(w: np.ndarray, fmt: str) -> np.ndarray:
    """Expert weights ``w[E, K, N]`` (contraction K, a multiple of 32) ->
    tiles: each column ``w[e, :, n]`` is quantized as one GGUF row."""
    check_format(fmt)
    w = np.asarray(w, np.float32)
    if w.ndim != 3:
        raise ValueError(f"quantize_weights: w must be [E, K, N], got shape {tuple(w.shape)}")
    return tiles_from_blocks(quantize_blocks(np.swapaxes(w, 1, 2), fmt), fmt)


def dequantize_tiles(tiles: np.ndarray, fmt: str, n: int) -> np.ndarray:
    """Tiles -> the f32 weights ``[E, K, n]`` the kernels compute with."""
    blocks = blocks_from_tiles(tiles, fmt, n)
    return np.ascontiguousarray(np.swapaxes(dequantize_blocks(blocks, fmt), 1, 2))


def tile_shape(experts: int, depth: int, columns: int, fmt: str) -> Tuple[int, int, int, int]:
    """The tiles' shape for weights ``[experts, depth, columns]``."""
    return (experts, -(-columns // QK), depth // QK, TILE_BYTES[check_format(fmt)])
