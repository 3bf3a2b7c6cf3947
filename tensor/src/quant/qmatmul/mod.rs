//! Products of f32 activations with Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K / MXFP4
//! weight rows, computed on the blocks: the activations are quantized as ggml quantizes `src1`
//! for the format (its `vec_dot_type`: Q8_0 per 32 values for Q8_0, Q4_0, Q5_0 and MXFP4, and for
//! Q4_1 and Q5_1 too, with each block's code sum, where ggml takes Q8_1: the same codes with the
//! scaled sum stored as f16; Q8_K per 256 for the k-quants), then
//! each output is a sum over blocks of exact integer dots of codes times the scales. The weights
//! are read once, as stored, and never widened to f32: for a decoded token that is 8.5 (Q8_0),
//! 4.5 (Q4_0, Q4_K), 5 (Q4_1), 5.5 (Q5_0, Q5_K), 6 (Q5_1) or 6.56 (Q6_K) bits per weight from
//! memory instead of 32.
//! FP8_E4M3 (the FP8 releases' weights) is the exception: its codes are not integers, so its
//! dots are floating point (`fp8`), 9 bits per weight.
//!
//! Work is split over output rows with rayon, each thread streaming its own weight rows. With
//! several activation rows every weight block loaded is used for [`ROWS_PER_PASS`] of them.

mod acts;
mod acts_k;
mod fp8;
mod scalar;
pub mod scalar_k;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_k;

use rayon::prelude::*;

pub use acts::{QuantizedActs, Row};
pub use acts_k::{QuantizedActsK, RowK};

use super::GgmlType;
use super::interleave::{self, GROUP};
use crate::cpu::isa::{self, Isa};
use scalar_k::KFormat;

/// Activation rows multiplied with each weight block while it is in registers.
pub const ROWS_PER_PASS: usize = 4;
/// Output rows (weight rows) a rayon task takes at a time.
const ROWS_PER_TASK: usize = 16;
/// Groups of 8 interleaved rows a rayon task takes at least.
const GROUPS_PER_TASK: usize = ROWS_PER_TASK / GROUP;
/// Below this many weight bytes a product runs on the calling thread.
const PARALLEL_MIN_BYTES: usize = 64 * 1024;

/// An implementation of the block dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QKernel {
    Scalar,
    /// AVX2 `maddubs` (x86-64-v3).
    Avx2,
    /// AVX-VNNI's 256-bit `vpdpbusd` (AVX2-era cores with VNNI).
    AvxVnni,
    /// AVX-512 VNNI's 512-bit `vpdpbusd`, two blocks per instruction.
    Avx512Vnni,
}

impl QKernel {
    pub const ALL: [QKernel; 4] = [QKernel::Scalar, QKernel::Avx2, QKernel::AvxVnni, QKernel::Avx512Vnni];

    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        let f = isa::features();
        match self {
            QKernel::Scalar => true,
            QKernel::Avx2 => Isa::Avx2.available(),
            QKernel::AvxVnni => f.avx_vnni,
            QKernel::Avx512Vnni => f.avx512_vnni,
        }
    }

    /// The kernel for an instruction-set path (`isa::active()` by default, so that
    /// `LLM_CPU_KERNELS` forces these kernels too): the avx512 path takes AVX-512 VNNI when the
    /// CPU has it, the avx2 path AVX-VNNI when it has that, else `maddubs`.
    pub fn for_isa(isa: Isa) -> QKernel {
        let f = isa::features();
        match isa.or_available() {
            Isa::Scalar => QKernel::Scalar,
            Isa::Avx512 if f.avx512_vnni => QKernel::Avx512Vnni,
            _ if f.avx_vnni => QKernel::AvxVnni,
            _ => QKernel::Avx2,
        }
    }

    /// The kernel itself when available, else the one `isa::active()` picks.
    fn or_available(self) -> QKernel {
        if self.available() { self } else { QKernel::for_isa(isa::active()) }
    }
}

/// The format ids of the interleaved kernels' const parameter (`scalar::group`, `x86::group_*`).
mod x86_formats {
    pub const Q8: u8 = 0;
    pub const Q4: u8 = 1;
    pub const FP4: u8 = 2;
    pub const Q41: u8 = 3;
    pub const Q50: u8 = 4;
    pub const Q51: u8 = 5;
}

/// `R` activation rows against one group of 8 interleaved Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or MXFP4
/// weight rows.
#[inline]
fn group<const R: usize>(kernel: QKernel, ty: GgmlType, w: &[u8], x: [Row; R]) -> [[f32; GROUP]; R] {
    use x86_formats::{FP4, Q4, Q8, Q41, Q50, Q51};
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! each_format {
            ($kernel:ident) => {
                match ty {
                    GgmlType::Q4_0 => x86::$kernel::<Q4, R>(w, x),
                    GgmlType::Q4_1 => x86::$kernel::<Q41, R>(w, x),
                    GgmlType::Q5_0 => x86::$kernel::<Q50, R>(w, x),
                    GgmlType::Q5_1 => x86::$kernel::<Q51, R>(w, x),
                    GgmlType::MXFP4 => x86::$kernel::<FP4, R>(w, x),
                    _ => x86::$kernel::<Q8, R>(w, x),
                }
            };
        }
        // SAFETY: `kernel` was checked available by the caller (`or_available`), and the
        // caller sized `w` and `x` to the same number of blocks.
        unsafe {
            match kernel {
                QKernel::Avx2 => return each_format!(group_avx2),
                QKernel::AvxVnni => return each_format!(group_avx_vnni),
                QKernel::Avx512Vnni => return each_format!(group_avx512_vnni),
                QKernel::Scalar => {}
            }
        }
    }
    let _ = kernel;
    match ty {
        GgmlType::Q4_0 => x.map(|x| scalar::group::<Q4>(w, x)),
        GgmlType::Q4_1 => x.map(|x| scalar::group::<Q41>(w, x)),
        GgmlType::Q5_0 => x.map(|x| scalar::group::<Q50>(w, x)),
        GgmlType::Q5_1 => x.map(|x| scalar::group::<Q51>(w, x)),
        GgmlType::MXFP4 => x.map(|x| scalar::group::<FP4>(w, x)),
        _ => x.map(|x| scalar::group::<Q8>(w, x)),
    }
}

/// `R` dots of one k-quant weight row with `R` Q8_K activation rows.
#[inline]
fn rows_k<const R: usize>(kernel: QKernel, f: KFormat, w: &[u8], x: [RowK; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    {
        use x86_k::id;
        // SAFETY: as in `rows`.
        unsafe {
            macro_rules! each_format {
                ($kernel:ident) => {
                    match f {
                        KFormat::Q4K => x86_k::$kernel::<{ id(KFormat::Q4K) }, R>(w, x),
                        KFormat::Q5K => x86_k::$kernel::<{ id(KFormat::Q5K) }, R>(w, x),
                        KFormat::Q6K => x86_k::$kernel::<{ id(KFormat::Q6K) }, R>(w, x),
                    }
                };
            }
            match kernel {
                QKernel::Avx2 => return each_format!(rows_avx2),
                QKernel::AvxVnni => return each_format!(rows_avx_vnni),
                QKernel::Avx512Vnni => return each_format!(rows_avx512_vnni),
                QKernel::Scalar => {}
            }
        }
    }
    let _ = kernel;
    x.map(|x| scalar_k::dot(f, w, x))
}

/// The k-quant format of `ty`, if it is one.
pub(crate) fn k_format(ty: GgmlType) -> Option<KFormat> {
    match ty {
        GgmlType::Q4_K => Some(KFormat::Q4K),
        GgmlType::Q5_K => Some(KFormat::Q5K),
        GgmlType::Q6_K => Some(KFormat::Q6K),
        _ => None,
    }
}

/// `out[j * m + i] = Σ_k w[j, k] x[i, k]` for the `n` weight rows of `k` weights in `w` and
/// the `m` activation rows: the output transposed, [n, m], so that each task writes one
/// contiguous range. The activations are quantized here, to Q8_K for a k-quant `ty` and to
/// Q8_0 otherwise (FP8_E4M3 takes them as f32, or as bf16 on its `vdpbf16ps` path).
/// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and FP8_E4M3 weights are interleaved by groups of 8 rows
/// (`quant::interleave`), the k-quants row after row as GGUF stores them.
pub(crate) fn matmul_t(kernel: QKernel, ty: GgmlType, w: &[u8], x: &[f32], k: usize, m: usize, out: &mut [f32]) {
    if m == 0 || out.is_empty() {
        return;
    }
    let kernel = kernel.or_available();
    let row_bytes = k / ty.block_size() * ty.type_size();
    match k_format(ty) {
        Some(f) => {
            let acts = QuantizedActsK::new(x, k);
            drive(w, row_bytes, m, out, |wr, i, o| match o.len() {
                ROWS_PER_PASS => {
                    o.copy_from_slice(&rows_k::<ROWS_PER_PASS>(kernel, f, wr, std::array::from_fn(|r| acts.row(i + r))))
                }
                _ => o[0] = rows_k(kernel, f, wr, [acts.row(i)])[0],
            });
        }
        None if ty == GgmlType::FP8_E4M3 => {
            let acts = fp8::Acts::new(fp8::Path::of(kernel), x, k);
            groups(ty, k, w, m, out, |wg, i| acts.group(wg, i), |wg, i| acts.group(wg, i));
        }
        None => {
            let acts = QuantizedActs::new(x, k);
            let pass = |wg: &[u8], i: usize| group(kernel, ty, wg, std::array::from_fn(|r| acts.row(i + r)));
            groups(ty, k, w, m, out, pass, |wg, i| group(kernel, ty, wg, [acts.row(i)]));
        }
    }
}

/// A product on weights interleaved by groups of 8 rows (`w`: every group, the last one padded;
/// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 or FP8_E4M3): `pass(group, i)` multiplies activation rows `i..i +
/// ROWS_PER_PASS` with one group while that many remain, then `one(group, i)` row `i`; in
/// parallel over groups when the weights are large enough.
fn groups(
    ty: GgmlType,
    k: usize,
    w: &[u8],
    m: usize,
    out: &mut [f32],
    pass: impl Fn(&[u8], usize) -> [[f32; GROUP]; ROWS_PER_PASS] + Sync,
    one: impl Fn(&[u8], usize) -> [[f32; GROUP]; 1] + Sync,
) {
    let group_bytes = k / ty.block_size() * interleave::tile_bytes(ty);
    let task = |(g, dst): (usize, &mut [f32])| {
        let wg = &w[g * group_bytes..(g + 1) * group_bytes];
        let rows = dst.len() / m;
        let mut put = |i: usize, dots: &[[f32; GROUP]]| {
            for (r, d) in dots.iter().enumerate() {
                for (row, &v) in d[..rows].iter().enumerate() {
                    dst[row * m + i + r] = v;
                }
            }
        };
        let mut i = 0;
        while i + ROWS_PER_PASS <= m {
            put(i, &pass(wg, i));
            i += ROWS_PER_PASS;
        }
        for i in i..m {
            put(i, &one(wg, i));
        }
    };
    if w.len() >= PARALLEL_MIN_BYTES {
        out.par_chunks_mut(GROUP * m).with_min_len(GROUPS_PER_TASK).enumerate().for_each(task);
    } else {
        out.chunks_mut(GROUP * m).enumerate().for_each(task);
    }
}

/// Runs `dots(weight row, first activation row, outputs)` over every weight row (in parallel
/// when the weights are large enough), with `ROWS_PER_PASS` activation rows per call while that
/// many remain and then one.
fn drive(w: &[u8], row_bytes: usize, m: usize, out: &mut [f32], dots: impl Fn(&[u8], usize, &mut [f32]) + Sync) {
    let task = |(t, dst): (usize, &mut [f32])| {
        for (jj, o) in dst.chunks_exact_mut(m).enumerate() {
            let j = t * ROWS_PER_TASK + jj;
            let wr = &w[j * row_bytes..(j + 1) * row_bytes];
            let mut i = 0;
            while i + ROWS_PER_PASS <= m {
                dots(wr, i, &mut o[i..i + ROWS_PER_PASS]);
                i += ROWS_PER_PASS;
            }
            for i in i..m {
                dots(wr, i, &mut o[i..i + 1]);
            }
        }
    };
    if out.len() / m * row_bytes >= PARALLEL_MIN_BYTES {
        out.par_chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(task);
    } else {
        out.chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(task);
    }
}
