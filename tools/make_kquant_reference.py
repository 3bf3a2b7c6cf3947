"""Reference bytes for the k-quant quantizers, made by ggml itself: the `ggml-base` shared library
that llama-cpp-python ships, called through ctypes (`quantize_row_q4_K_ref`,
`quantize_row_q5_K_ref`, `quantize_row_q6_K_ref`: what `llama-quantize` runs without an
importance matrix; `quantize_row_q8_K_ref`: the activation quantization of the k-quant dots).

Writes llm/tests/data/gguf/kquants.gguf holding `source` (F32 [rows, 1024]: rows of 256-value
blocks of several kinds: normal, uniform, heavy-tailed, all positive, all negative, constant, an
all-zero block, tiny magnitudes, one outlier) and for each of Q4_K, Q5_K, Q6_K `<type>.quantized`
(the blocks ggml wrote). For Q8_K, whose blocks ggml never stores in files, `q8_k.d` (F32, one
per block), `q8_k.qs` (I8) and `q8_k.bsums` (I16).

Usage: /work/venv/bin/python tools/make_kquant_reference.py  (needs numpy, gguf, llama-cpp-python)
"""

import ctypes
import os

import gguf
import llama_cpp
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

OUT = os.path.join(os.path.dirname(__file__), "..", "llm", "tests", "data", "gguf", "kquants.gguf")
LIB = os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")
rng = np.random.default_rng(4)


def source():
    blocks = [
        rng.standard_normal(256),
        rng.uniform(-1, 1, 256),
        rng.standard_t(2, 256),
        np.abs(rng.standard_normal(256)) + 0.5,
        -np.abs(rng.standard_normal(256)) - 0.1,
        np.full(256, 0.25),
        np.zeros(256),
        rng.standard_normal(256) * 1e-6,
        np.where(np.arange(256) == 77, 40.0, rng.standard_normal(256) * 0.02),
    ]
    while len(blocks) % 4:
        blocks.append(rng.standard_normal(256) * rng.uniform(0.01, 3))
    blocks += [rng.standard_normal(256) * rng.uniform(0.01, 3) for _ in range(12)]
    return np.concatenate(blocks).astype(np.float32).reshape(-1, 1024)


def quantize(lib, name, x, out_bytes):
    out = np.zeros(out_bytes, dtype=np.uint8)
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out


def main():
    lib = ctypes.CDLL(LIB)
    x = np.ascontiguousarray(source())
    w = gguf.GGUFWriter(OUT, "kquant-reference")
    w.add_tensor("source", x)
    for qtype, fn in [(T.Q4_K, "quantize_row_q4_K_ref"), (T.Q5_K, "quantize_row_q5_K_ref"), (T.Q6_K, "quantize_row_q6_K_ref")]:
        block, size = GGML_QUANT_SIZES[qtype]
        q = quantize(lib, fn, x, x.size // block * size).reshape(x.shape[0], -1)
        w.add_tensor(f"{qtype.name.lower()}.quantized", q, raw_dtype=qtype)
    # block_q8_K: f32 d, 256 i8 qs, 16 i16 bsums (292 bytes).
    q8 = quantize(lib, "quantize_row_q8_K_ref", x, x.size // 256 * 292).reshape(-1, 292)
    w.add_tensor("q8_k.d", np.ascontiguousarray(q8[:, 0:4]).view(np.float32).reshape(-1))
    w.add_tensor("q8_k.qs", np.ascontiguousarray(q8[:, 4:260]).view(np.int8).reshape(-1))
    w.add_tensor("q8_k.bsums", np.ascontiguousarray(q8[:, 260:292]).view(np.int16).reshape(-1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
