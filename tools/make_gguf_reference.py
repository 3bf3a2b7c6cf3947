"""Reference data for the GGUF reader and the block formats, written with the `gguf` package
(llama.cpp's own Python library) so the Rust tests compare against an independent implementation.

Writes llm/tests/data/gguf/reference.gguf, a GGUF v3 file holding:
- metadata of every value type (scalars, strings, arrays of numbers and of strings);
- for each block type T in Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, MXFP4, Q5_0, Q5_1: `T.packed`
  (the raw blocks, random codes with finite scales) and `T.expected` (F32,
  `gguf.quants.dequantize` of them);
- for Q8_0, Q4_0, Q4_1, MXFP4, Q5_0 and Q5_1: `T.source` (F32 values) and `T.quantized`
  (`gguf.quants.quantize` of them);
- (Q5_0's and Q5_1's tensors are drawn last, so that every tensor before them keeps the values
  it had before they were added;)
- F16 and BF16 tensors with their F32 values;
- `fp8.table` (the 256 E4M3 values from ml_dtypes' float8_e4m3fn), `fp8.weight` (I8 bytes
  [130, 136]), `fp8.scale_inv` (F32 [2, 2]) and `fp8.expected` (weight * scale per 128x128 tile);
- `mxfp4_split.blocks` (I8 [3, 2, 16]), `mxfp4_split.scales` (I8 [3, 2]) and
  `mxfp4_split.expected` (F32 [3, 64]) in gpt-oss's safetensors layout, decoded the way
  transformers' `convert_moe_packed_tensors` does (low nibble first, ldexp by scale - 127).

Usage: python tools/make_gguf_reference.py   (needs `pip install gguf ml_dtypes`)
"""

import os

import gguf
import ml_dtypes
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

OUT = os.path.join(os.path.dirname(__file__), "..", "llm", "tests", "data", "gguf", "reference.gguf")
rng = np.random.default_rng(15)


def random_blocks(qtype, n_blocks):
    """Random block bytes whose f16 (or e8m0) scale fields hold finite, moderate values."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def f16(n):
        return (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8).reshape(n, 2)

    if qtype in (T.Q8_0, T.Q4_0):
        raw[:, 0:2] = f16(n_blocks)
    elif qtype == T.Q4_1:
        raw[:, 0:2] = f16(n_blocks)
        raw[:, 2:4] = f16(n_blocks)
    elif qtype == T.Q5_0:
        raw[:, 0:2] = f16(n_blocks)
    elif qtype == T.Q5_1:
        raw[:, 0:2] = f16(n_blocks)
        raw[:, 2:4] = f16(n_blocks)
    elif qtype in (T.Q4_K, T.Q5_K):
        raw[:, 0:2] = f16(n_blocks)
        raw[:, 2:4] = f16(n_blocks)
    elif qtype == T.Q6_K:
        raw[:, 208:210] = f16(n_blocks)
    elif qtype == T.MXFP4:
        # Scales over the whole range, subnormal halves (0 and 1) included, short of overflow.
        raw[:, 0] = rng.integers(0, 250, size=n_blocks, dtype=np.uint8)
        raw[:3, 0] = [0, 1, 2]
    return raw, block_size


def main():
    w = gguf.GGUFWriter(OUT, "reference")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 2.718281828)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "bc", ""])
    w.add_array("test.array_f32", [0.5, -1.5])

    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q5_K, T.Q6_K, T.MXFP4):
        raw, block_size = random_blocks(qtype, 6)
        n = raw.shape[0] * block_size
        # Two rows, so the stored shape is [2, n/2] (ggml order [n/2, 2]).
        packed = raw.reshape(2, -1)
        values = gguf.quants.dequantize(packed, qtype).astype(np.float32)
        assert values.shape == (2, n // 2)
        w.add_tensor(f"{qtype.name.lower()}.packed", packed, raw_dtype=qtype)
        w.add_tensor(f"{qtype.name.lower()}.expected", values)

    for qtype in (T.Q8_0, T.Q4_0):
        src = (rng.standard_normal((4, 64)) * rng.uniform(0.01, 2, size=(4, 1))).astype(np.float32)
        src[0, :32] = 0.0  # an all-zero block
        src[1, 5] = -src[1, :32].__abs__().max() * 1.5  # a negative maximum
        src[2, 3] = src[2, 7] = 4.0  # tied maxima
        src[2, 40:64] = np.round(src[2, 40:64] * 127) / 127 * 0.5  # halfway points
        q = gguf.quants.quantize(src, qtype)
        w.add_tensor(f"{qtype.name.lower()}.source", src)
        w.add_tensor(f"{qtype.name.lower()}.quantized", q, raw_dtype=qtype)

    half = (rng.standard_normal((3, 5)) * 10).astype(np.float32)
    w.add_tensor("f16.packed", half.astype(np.float16))
    w.add_tensor("f16.expected", half.astype(np.float16).astype(np.float32))
    bf = gguf.quants.quantize(half, T.BF16)
    w.add_tensor("bf16.packed", bf, raw_dtype=T.BF16)
    w.add_tensor("bf16.expected", gguf.quants.dequantize(bf, T.BF16).astype(np.float32))

    table = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    w.add_tensor("fp8.table", table)
    weight = rng.integers(0, 256, size=(130, 136), dtype=np.uint8)
    weight[(weight & 0x7F) == 0x7F] = 0x10  # no NaN codes in the block-scaled case
    scale_inv = rng.uniform(1e-4, 1e-2, size=(2, 2)).astype(np.float32)
    wf = weight.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    tiles = np.repeat(np.repeat(scale_inv, 128, axis=0), 128, axis=1)[:130, :136]
    w.add_tensor("fp8.weight", weight.view(np.int8))
    w.add_tensor("fp8.scale_inv", scale_inv)
    w.add_tensor("fp8.expected", (wf * tiles).astype(np.float32))

    blocks = rng.integers(0, 256, size=(3, 2, 16), dtype=np.uint8)
    scales = rng.integers(110, 140, size=(3, 2), dtype=np.uint8)
    lut = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)
    out = np.empty((3, 2, 32), dtype=np.float32)
    out[..., 0::2] = lut[blocks & 0x0F]
    out[..., 1::2] = lut[blocks >> 4]
    out = np.ldexp(out, (scales.astype(np.int32) - 127)[..., None]).astype(np.float32)
    w.add_tensor("mxfp4_split.blocks", blocks.view(np.int8))
    w.add_tensor("mxfp4_split.scales", scales.view(np.int8))
    w.add_tensor("mxfp4_split.expected", out.reshape(3, 64))

    # MXFP4 encoding (ggml's quantize_row_mxfp4_ref, as gguf.quants has it), drawn last so the
    # cases above keep their values.
    src = (rng.standard_normal((4, 64)) * rng.uniform(0.01, 8, size=(4, 1))).astype(np.float32)
    src[0, :32] = 0.0  # an all-zero block
    src[1, 5] = -np.abs(src[1, :32]).max() * 1.5  # a negative maximum
    src[2, :32] = np.float32(0.75) * np.array([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8] * 2, dtype=np.float32)  # midpoints: ties
    src[3, 32:64] = np.float32(2.0) ** rng.integers(-20, 20, size=32)  # powers of two, wide range
    q = gguf.quants.quantize(src, T.MXFP4)
    w.add_tensor("mxfp4.source", src)
    w.add_tensor("mxfp4.quantized", q, raw_dtype=T.MXFP4)

    # Q4_1 encoding (ggml's quantize_row_q4_1_ref), drawn after the cases above.
    src = (rng.standard_normal((4, 64)) * rng.uniform(0.01, 4, size=(4, 1)) + rng.uniform(-1, 1, size=(4, 1))).astype(np.float32)
    src[0, :32] = 0.25  # a constant block: d = 0
    src[1, 32:64] = np.linspace(-1, 1, 32, dtype=np.float32)  # evenly spread: codes at every step
    q = gguf.quants.quantize(src, T.Q4_1)
    w.add_tensor("q4_1.source", src)
    w.add_tensor("q4_1.quantized", q, raw_dtype=T.Q4_1)

    # Q5_0 and Q5_1 (Gemma 3's llama.cpp K-quant files hold Q5_0 matrices), drawn after every case
    # above so those keep their values: random blocks decoded by gguf.quants.dequantize (ggml's
    # dequantize_row_q5_0/q5_1), then ggml's reference encodings (quantize_row_q5_{0,1}_ref).
    for qtype in (T.Q5_0, T.Q5_1):
        raw, block_size = random_blocks(qtype, 6)
        packed = raw.reshape(2, -1)
        values = gguf.quants.dequantize(packed, qtype).astype(np.float32)
        assert values.shape == (2, raw.shape[0] * block_size // 2)
        w.add_tensor(f"{qtype.name.lower()}.packed", packed, raw_dtype=qtype)
        w.add_tensor(f"{qtype.name.lower()}.expected", values)
    src = (rng.standard_normal((4, 64)) * rng.uniform(0.01, 2, size=(4, 1))).astype(np.float32)
    src[0, :32] = 0.0  # an all-zero block
    src[1, 5] = -np.abs(src[1, :32]).max() * 1.5  # a negative maximum
    src[2, 3] = src[2, 7] = 4.0  # tied maxima
    q = gguf.quants.quantize(src, T.Q5_0)
    w.add_tensor("q5_0.source", src)
    w.add_tensor("q5_0.quantized", q, raw_dtype=T.Q5_0)
    src = (rng.standard_normal((4, 64)) * rng.uniform(0.01, 4, size=(4, 1)) + rng.uniform(-1, 1, size=(4, 1))).astype(np.float32)
    src[0, :32] = 0.25  # a constant block: d = 0
    src[1, 32:64] = np.linspace(-1, 1, 32, dtype=np.float32)  # evenly spread: codes at every step
    q = gguf.quants.quantize(src, T.Q5_1)
    w.add_tensor("q5_1.source", src)
    w.add_tensor("q5_1.quantized", q, raw_dtype=T.Q5_1)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
